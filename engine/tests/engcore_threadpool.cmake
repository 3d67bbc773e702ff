# Kernel thread pool: exactly-once chunk execution across pool sizes and job shapes.
ember_add_test(NAME engcore_threadpool SOURCES ${CMAKE_CURRENT_LIST_DIR}/threadpool_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engcore_threadpool PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
