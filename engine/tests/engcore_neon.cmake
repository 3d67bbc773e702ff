# AArch64 only: the NEON kernel set's logits equal the scalar set's bit for bit (every kernel
# of the set performs the reference's operations). On x86 the AVX2 attention kernels do not (they
# are checked within tolerances by engcore_quant), so there is no such test there.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    ember_add_test(NAME engcore_golden_neon_exact SOURCES ${CMAKE_CURRENT_LIST_DIR}/neon_exact_test.c
                   LIBS ember_engine LABELS unit)
endif()
