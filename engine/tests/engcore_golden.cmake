# Forward pass against the stories260K reference vectors, one test per weight type (and the Q4_0
# file once more with the scalar kernels, so the reference code path is covered end to end).
foreach(model F32 F16 Q8_0 Q4_0)
    string(TOLOWER ${model} lower)
    ember_add_test(NAME engcore_golden_${lower} SOURCES ${CMAKE_CURRENT_LIST_DIR}/golden_test.c
                   LIBS ember_engine PkgConfig::CJSON ARGS ${model} LABELS unit)
endforeach()
ember_add_test(NAME engcore_golden_q4_0_scalar SOURCES ${CMAKE_CURRENT_LIST_DIR}/golden_test.c
               LIBS ember_engine PkgConfig::CJSON ARGS Q4_0 LABELS unit
               ENV EMBER_KERNELS=scalar)
