# Helpers every module uses to declare tests and fuzz targets, so a new one is a line, not a recipe.
#
#   ember_add_test(NAME name SOURCES a.c ... [LIBS lib ...] [LABELS unit|integration|bench]
#                  [ARGS arg ...] [TIMEOUT s] [ENV VAR=value ...])
#     builds an executable and registers it with ctest; exit code 77 means skipped.
#
#   ember_add_fuzz(NAME name SOURCES harness.c ... [LIBS lib ...])
#     harness.c defines LLVMFuzzerTestOneInput. Always builds a replay driver registered with
#     ctest (label fuzz) that feeds every file of tests/fuzz/<name>/ to the harness; with
#     EMBER_FUZZ=ON and clang it also builds fuzz_<name>, a real libFuzzer binary.

set(EMBER_FUZZ_CORPUS_ROOT "${CMAKE_SOURCE_DIR}/tests/fuzz")

# Programs that tests start themselves (exec, system(), scripts) rather than through ctest:
# ember_test_program(VAR target) sets VAR to the target's file, or, when cross-compiling with an
# emulator (qemu-user; the host has no binfmt_misc entry for it), to a two-line wrapper script
# that runs it through the emulator. Tests that re-run their own executable find the emulator in
# EMBER_TEST_EMULATOR (empty natively).
function(ember_test_program var target)
    if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
        set(wrapper "${CMAKE_BINARY_DIR}/emulated/${target}")
        list(JOIN CMAKE_CROSSCOMPILING_EMULATOR "\" \"" emu)
        file(GENERATE OUTPUT "${wrapper}"
             CONTENT "#!/bin/sh\nexec \"${emu}\" \"$<TARGET_FILE:${target}>\" \"$@\"\n"
             FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                              WORLD_READ WORLD_EXECUTE)
        set(${var} "${wrapper}" PARENT_SCOPE)
    else()
        set(${var} "$<TARGET_FILE:${target}>" PARENT_SCOPE)
    endif()
endfunction()
if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
    list(JOIN CMAKE_CROSSCOMPILING_EMULATOR " " EMBER_TEST_EMULATOR)
else()
    set(EMBER_TEST_EMULATOR "")
endif()
# The ember binary as tests start it.
ember_test_program(EMBER_TEST_EMBER ember)

function(ember_add_test)
    cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;ARGS;ENV" ${ARGN})
    add_executable(${T_NAME} ${T_SOURCES})
    target_link_libraries(${T_NAME} PRIVATE ${T_LIBS})
    target_include_directories(${T_NAME} PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
    target_compile_definitions(${T_NAME} PRIVATE
        EMBER_SHARED_DIR="${EMBER_SHARED_DIR}"
        EMBER_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
        EMBER_BINARY_DIR="${CMAKE_BINARY_DIR}")
    add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
    if(NOT T_LABELS)
        set(T_LABELS unit)
    endif()
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 300)
    endif()
    set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" SKIP_RETURN_CODE 77
                         TIMEOUT ${T_TIMEOUT} ENVIRONMENT "EMBER_SHARED_DIR=${EMBER_SHARED_DIR};EMBER_TEST_EMULATOR=${EMBER_TEST_EMULATOR};${T_ENV}")
endfunction()

function(ember_add_fuzz)
    cmake_parse_arguments(F "" "NAME" "SOURCES;LIBS" ${ARGN})
    set(corpus "${EMBER_FUZZ_CORPUS_ROOT}/${F_NAME}")
    add_executable(fuzz_replay_${F_NAME} ${F_SOURCES}
                   ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
    target_link_libraries(fuzz_replay_${F_NAME} PRIVATE ${F_LIBS})
    add_test(NAME fuzz_replay_${F_NAME} COMMAND fuzz_replay_${F_NAME} ${corpus})
    set_tests_properties(fuzz_replay_${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 300)
    if(EMBER_FUZZ)
        if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
            message(FATAL_ERROR "EMBER_FUZZ=ON needs clang (configure with CC=clang)")
        endif()
        add_executable(fuzz_${F_NAME} ${F_SOURCES})
        target_compile_options(fuzz_${F_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
        target_link_options(fuzz_${F_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
        target_link_libraries(fuzz_${F_NAME} PRIVATE ${F_LIBS})
    endif()
endfunction()

# Sanitizer runtime options for every test a directory declared (ember_add_test or add_test);
# each CMakeLists.txt that declares tests calls this once at its end.
function(ember_apply_test_env)
    if(EMBER_SANITIZE STREQUAL "thread")
        set(env "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${CMAKE_SOURCE_DIR}/tests/tsan.supp")
    elseif(EMBER_SANITIZE)
        set(env "ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1"
                "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
    else()
        return()
    endif()
    get_property(dir_tests DIRECTORY PROPERTY TESTS)
    foreach(t ${dir_tests})
        set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT ${env})
    endforeach()
endfunction()
