# Throughput bench (label bench, not part of the default test run): prompt and generation tokens/s
# and resident memory on stories260K; run it by hand on any GGUF: engcore_bench MODEL [threads].
ember_add_test(NAME engcore_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/bench_engine.c
               LIBS ember_engine ARGS ${EMBER_SHARED_DIR}/models/stories260K.gguf 2 128 64 3
               LABELS bench)
