# Throughput bench (label bench, not part of the default test run): `ember bench` on stories260K,
# prompt and generation tokens/s, time to first token, peak RSS and roofline percent. On any GGUF
# run `ember bench -m MODEL`; against llama.cpp, scripts/bench-vs-llamacpp (docs/performance.md).
add_test(NAME engcore_bench
         COMMAND ${EMBER_TEST_EMBER} bench -m ${EMBER_SHARED_DIR}/models/stories260K.gguf
                 -p 128 -n 64 -r 3 -t 2)
set_tests_properties(engcore_bench PROPERTIES LABELS bench TIMEOUT 300)
# Panel kernels in isolation (label bench): weight GB/s for one token, GMAC/s for 4 and 16.
ember_add_test(NAME engcore_bench_panels SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_panels.c
               LIBS ember_engine ARGS 512 1024 1 LABELS bench)
target_include_directories(engcore_bench_panels PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
