# Energy attributed to engine phases exactly (issue 12).
ember_add_test(NAME daemon_phase_energy_test
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/phase_energy_test.c LIBS ember_agent_daemon)
