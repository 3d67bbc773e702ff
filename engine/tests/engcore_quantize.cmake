# Quantization: GGUF writer round trips and the float-to-block quantizers (ember quantize).
ember_add_test(NAME engcore_quantize SOURCES ${CMAKE_CURRENT_LIST_DIR}/quantize_test.c
               LIBS ember_engine ${MATH_LIBRARY} LABELS unit)
target_include_directories(engcore_quantize PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
