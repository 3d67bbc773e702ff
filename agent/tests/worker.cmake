ember_add_test(NAME agent_worker_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/worker_test.c
               LIBS ember_agent LABELS integration)
