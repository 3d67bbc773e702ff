# The daemon's parts: the event loop (unit) and the systemd unit it runs under (systemd-analyze
# verify). The whole daemon against real components is tests/agent.cmake (agent_e2e).
ember_add_test(NAME daemon_loop_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/loop_test.c
               LIBS ember_agent_daemon)
add_test(NAME daemon_systemd_verify
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/systemd_verify.sh
                 ${CMAKE_SOURCE_DIR}/systemd/ember.service $<TARGET_FILE:ember>)
set_tests_properties(daemon_systemd_verify PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
# The message queue between the threads and the loop: order, bounds, many producers, request-reply
# and shutdown releasing every waiting sender.
ember_add_test(NAME daemon_queue_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/queue_test.c
               LIBS ember_agent_daemon)
# PUT /v1/governor racing SIGTERM against a real agent, repeated: every shutdown exits 0 at once,
# every client gets an answer, the CPU settings come back.
add_test(NAME daemon_shutdown_race
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/shutdown_race_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(daemon_shutdown_race PROPERTIES LABELS integration SKIP_RETURN_CODE 77
                     TIMEOUT 300)
# CPU lists as bitmaps from the governor to the power model (0-3,8-11 and 0,2,4 keep every CPU).
ember_add_test(NAME daemon_cpu_mask_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cpu_mask_test.c
               LIBS ember_agent_daemon)
# The governor's thread choice (tick result engine_threads/engine_cpus) reaching the real engine
# worker mid-generation: /metrics over HTTP shows the live count, the output stays identical.
ember_add_test(NAME daemon_engine_lever_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_lever_test.c
               LIBS ember_agent_daemon PkgConfig::CURL LABELS integration TIMEOUT 180)
# The queue rule against a real agent: balanced decodes at the knee alone and at the top step
# while a second request waits (the worker's queue depth through governor_bridge.c), issue 12.
add_test(NAME daemon_queue_clock
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/queue_clock_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(daemon_queue_clock PROPERTIES LABELS integration SKIP_RETURN_CODE 77
                     TIMEOUT 120)
