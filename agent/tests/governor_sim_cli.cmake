# `ember governor sim` through its command function: outputs and usage errors.
ember_add_test(NAME agent_governor_sim_cli_test
               SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/governor_sim_cli_test.c
               LIBS ember_agent PkgConfig::CJSON)
