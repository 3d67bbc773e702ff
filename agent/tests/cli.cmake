# Every sub-command end to end as a new user meets it (issue 21): error style, exit codes, round
# trips, --help and docs/ contracts checked against behaviour, the daemon without a model or
# cpufreq and across SIGHUP.
add_test(NAME agent_cli_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/scripts/cli_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(agent_cli_test PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
