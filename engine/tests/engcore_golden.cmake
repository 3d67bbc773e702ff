# Forward pass against the stories260K reference vectors, one test per weight type (and the Q4_0
# file once more per kernel set, so every code path is covered end to end).
foreach(model F32 F16 Q8_0 Q4_0)
    string(TOLOWER ${model} lower)
    ember_add_test(NAME engcore_golden_${lower} SOURCES ${CMAKE_CURRENT_LIST_DIR}/golden_test.c
                   LIBS ember_engine PkgConfig::CJSON ARGS ${model} LABELS unit TIMEOUT 900)
endforeach()
# (TIMEOUT: the scalar set under TSan takes 150-240 s on a busy 2-CPU machine)
# Every kernel set once more on the quantized and the F16 file: a set this CPU or build lacks
# exits 77 (skipped, named in the output), never passes.
foreach(kernels scalar avx2 avx512 neon)
    foreach(model F16 Q4_0)
        string(TOLOWER ${model} lower)
        ember_add_test(NAME engcore_golden_${lower}_${kernels}
                       SOURCES ${CMAKE_CURRENT_LIST_DIR}/golden_test.c
                       LIBS ember_engine PkgConfig::CJSON ARGS ${model} LABELS unit
                       TIMEOUT 900 ENV EMBER_KERNELS=${kernels})
    endforeach()
endforeach()
