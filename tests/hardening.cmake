# The hardening flags of the top CMakeLists.txt really reach the ember binary (issue 14).
find_program(READELF_EXECUTABLE NAMES ${CMAKE_C_LIBRARY_ARCHITECTURE}-readelf readelf)
if(READELF_EXECUTABLE)
    add_test(NAME hardening_flags
             COMMAND ${CMAKE_SOURCE_DIR}/tests/hardening_check.sh ${READELF_EXECUTABLE}
                     $<TARGET_FILE:ember> $<CONFIG>)
    set_tests_properties(hardening_flags PROPERTIES LABELS unit TIMEOUT 60)
endif()
