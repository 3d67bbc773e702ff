# Row-interleaved panels: packing round trip, reference panel kernels against the reference dots,
# every SIMD panel variant the CPU has bit for bit against the reference.
ember_add_test(NAME engcore_pack SOURCES ${CMAKE_CURRENT_LIST_DIR}/pack_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engcore_pack PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
