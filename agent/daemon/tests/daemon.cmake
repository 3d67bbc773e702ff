# The daemon's parts: the event loop (unit) and the systemd unit it runs under (systemd-analyze
# verify). The whole daemon against real components is tests/agent.cmake (agent_e2e).
ember_add_test(NAME daemon_loop_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/loop_test.c
               LIBS ember_agent_daemon)
add_test(NAME daemon_systemd_verify
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/systemd_verify.sh
                 ${CMAKE_SOURCE_DIR}/systemd/ember.service $<TARGET_FILE:ember>)
set_tests_properties(daemon_systemd_verify PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
