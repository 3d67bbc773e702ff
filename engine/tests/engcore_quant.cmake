# Quant block formats and kernels: exact dequantization, reference dots, SIMD variants vs scalar.
ember_add_test(NAME engcore_quant SOURCES ${CMAKE_CURRENT_LIST_DIR}/quant_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engcore_quant PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
