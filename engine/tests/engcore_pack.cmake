# Row-interleaved panels: packing round trip, reference panel kernels against the reference dots,
# every SIMD panel variant the CPU has bit for bit against the reference.
ember_add_test(NAME engcore_pack SOURCES ${CMAKE_CURRENT_LIST_DIR}/pack_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engcore_pack PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)

# The AVX-512 Q4_0/Q8_0 panels (VNNI and BW-only variants) against the same reference on any
# x86-64 with AVX2: panel_avx512.c compiled again over SIMDe's portable AVX-512 (libsimde-dev,
# installed by scripts/setup), so a machine without AVX-512 still proves them bit for bit.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
    find_path(SIMDE_INCLUDE_DIR simde/x86/avx512.h)
    if(SIMDE_INCLUDE_DIR)
        ember_add_test(NAME engcore_pack_avx512_simde
                       SOURCES ${CMAKE_CURRENT_LIST_DIR}/pack_test.c
                               ${CMAKE_CURRENT_LIST_DIR}/panel_avx512_simde.c
                       LIBS ember_engine LABELS unit)
        target_include_directories(engcore_pack_avx512_simde PRIVATE
                                   ${CMAKE_SOURCE_DIR}/engine/src ${SIMDE_INCLUDE_DIR})
        target_compile_definitions(engcore_pack_avx512_simde PRIVATE PACK_TEST_SIMDE)
        # -Wno-psabi: clang notes that SIMDe's emulated 512-bit vector types would be passed
        # differently with -mavx512f; every function taking them is inside this one file.
        set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/panel_avx512_simde.c
            PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-ffp-contract=off;-Wno-psabi")
    else()
        message(WARNING "SIMDe (libsimde-dev) not found: engcore_pack_avx512_simde is not built; "
                        "run scripts/setup")
    endif()
endif()
