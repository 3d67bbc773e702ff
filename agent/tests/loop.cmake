ember_add_test(NAME agent_loop_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/loop_test.c
               LIBS ember_agent)
