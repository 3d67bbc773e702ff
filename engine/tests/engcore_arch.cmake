# llama / qwen2 / qwen3 / k-quant models built in the test against a double-precision reference.
ember_add_test(NAME engcore_arch SOURCES ${CMAKE_CURRENT_LIST_DIR}/arch_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engcore_arch PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
