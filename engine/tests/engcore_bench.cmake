# Throughput bench (label bench, not part of the default test run): prompt and generation tokens/s
# and resident memory on stories260K; run it by hand on any GGUF: engcore_bench MODEL [threads].
ember_add_test(NAME engcore_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_engine.c
               LIBS ember_engine ARGS ${EMBER_SHARED_DIR}/models/stories260K.gguf 2 128 64 3
               LABELS bench)
# Panel kernels in isolation (label bench): weight GB/s for one token, GMAC/s for 4 and 16.
ember_add_test(NAME engcore_bench_panels SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_panels.c
               LIBS ember_engine ARGS 512 1024 1 LABELS bench)
target_include_directories(engcore_bench_panels PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
