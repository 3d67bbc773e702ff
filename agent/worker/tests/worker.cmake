# The engine worker thread with a real model: queueing, streaming sinks, cancellation, prefix reuse.
ember_add_test(NAME worker_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_test.c
               LIBS ember_agent_worker LABELS integration)
