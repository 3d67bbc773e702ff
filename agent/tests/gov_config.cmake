ember_add_test(NAME agent_gov_config_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/gov_config_test.c
               LIBS ember_agent)
