# Privilege separation (issue 13): the helper's whitelist and message checks against a fake sysfs
# tree, its restore when the agent dies, and the real agent run as an unprivileged user.
ember_add_test(NAME privsep_helper_test
               SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/privsep/tests/privsep_helper_test.c
               LIBS ember_agent_privsep)
add_test(NAME privsep_agent_e2e
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/privsep/tests/privsep_agent_e2e.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(privsep_agent_e2e PROPERTIES LABELS integration SKIP_RETURN_CODE 77
                     TIMEOUT 120)
add_test(NAME privsep_systemd_security
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/privsep/tests/systemd_security.sh
                 ${CMAKE_SOURCE_DIR}/systemd/ember.service 2.0)
set_tests_properties(privsep_systemd_security PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
