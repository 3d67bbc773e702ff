# The command line, each sub-command end to end through the ember binary as a user meets it.
# Every sub-command (issue 21): error style, exit codes, round trips, --help and docs/ contracts
# checked against behaviour, the daemon without a model or cpufreq and across SIGHUP.
add_test(NAME cli_commands
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/commands_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(cli_commands PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
# `ember bench`: --help, usage errors (exit 2), a missing model (exit 1), and real runs on
# stories260K whose JSON Lines are parsed back.
ember_add_test(NAME cli_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_cli_test.c
               LIBS PkgConfig::CJSON ${MATH_LIBRARY} LABELS integration
               ARGS ${EMBER_TEST_EMBER})
add_dependencies(cli_bench ember)
# `ember governor sim` through its command function: outputs and usage errors.
ember_add_test(NAME cli_governor_sim SOURCES ${CMAKE_CURRENT_LIST_DIR}/governor_sim_cli_test.c
               LIBS ember_agent_cli PkgConfig::CJSON)
# `ember governor` on copies of the fake sysfs trees: status, set/restore, calibrate, usage
# errors, and a non-root user.
add_test(NAME cli_governor COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/governor_cli_test.sh
         ${EMBER_TEST_EMBER} ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(cli_governor PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
# `ember tokenize` on vocab-only GGUFs against shared/vectors/tokenizer.
ember_add_test(NAME cli_tokenize SOURCES ${CMAKE_CURRENT_LIST_DIR}/tokenize_cli_test.c
               LABELS integration)
add_dependencies(cli_tokenize ember)
target_compile_definitions(cli_tokenize PRIVATE EMBER_TEST_EMBER="${EMBER_TEST_EMBER}")
# `ember report --json --svg` on a database filled with known values: the same checks as the
# telemetry module's telstore_report_test (one source, run here with the binary as argv[1]).
ember_add_test(NAME cli_report SOURCES ${CMAKE_SOURCE_DIR}/telemetry/tests/telstore_report_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 PkgConfig::CJSON LABELS integration
               ARGS ${EMBER_TEST_EMBER})
add_dependencies(cli_report ember)
# `ember governor calibrate --profile-out` on fake trees, then `ember governor sim --profile` on
# the file it wrote: the fit at every measured point, every policy with finite numbers (issue 12).
add_test(NAME cli_calib_sim COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/calib_sim_test.sh
         ${EMBER_TEST_EMBER} ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(cli_calib_sim PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
