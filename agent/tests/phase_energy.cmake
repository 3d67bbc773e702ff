# Energy attributed to engine phases exactly (issue 12).
ember_add_test(NAME agent_phase_energy_test
               SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/phase_energy_test.c LIBS ember_agent)
