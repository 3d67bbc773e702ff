# GGUF reader: unit tests (in-memory files, malformed variants, the shared model) and fuzz target.
ember_add_test(NAME engcore_gguf SOURCES ${CMAKE_CURRENT_LIST_DIR}/gguf_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engcore_gguf PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
ember_add_fuzz(NAME gguf SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_gguf.c LIBS ember_engine)
target_include_directories(fuzz_replay_gguf PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
if(TARGET fuzz_gguf)
    target_include_directories(fuzz_gguf PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
endif()
