# govhw: the governor's hardware side (backend, sensors, safety, runtime object). The fake trees
# come from ../shared/sysfs-trees and tests/sysfs-trees; every test works on its own copy.
ember_add_test(NAME govhw_parse SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_parse_test.c
               LIBS ember_governor LABELS unit)
ember_add_test(NAME govhw_backend SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_backend_test.c
               LIBS ember_governor LABELS integration)
ember_add_test(NAME govhw_sensors SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_sensors_test.c
               LIBS ember_governor LABELS integration)
# Re-runs itself under ../shared/sysfs-trees/with-fake-cpu.sh (unshare -m + bind mount); 77 = skip.
ember_add_test(NAME govhw_cpupower SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_cpupower_test.c
               LIBS ember_governor LABELS integration)
ember_add_test(NAME govhw_runtime SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_runtime_test.c
               LIBS ember_governor LABELS integration)
# kill -9 of a process that changed settings, then a new start restores the originals.
add_executable(govhw_crash_helper ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_crash_helper.c)
target_link_libraries(govhw_crash_helper PRIVATE ember_governor)
ember_add_test(NAME govhw_crash SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_crash_test.c
               LIBS ember_governor LABELS integration)
ember_test_program(govhw_helper govhw_crash_helper)
target_compile_definitions(govhw_crash PRIVATE GOVHW_HELPER="${govhw_helper}")
add_dependencies(govhw_crash govhw_crash_helper)
ember_add_fuzz(NAME procstat SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_fuzz_procstat.c
               LIBS ember_governor)
# The same libcpupower checks without mount namespaces: open()/stat() redirected in-process.
ember_add_test(NAME govhw_cpupower_redirect
               SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_cpupower_redirect_test.c
               LIBS ember_governor LABELS integration)
target_include_directories(govhw_cpupower_redirect PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tests)
# The memory-controller (devfreq dmc) and EPP levers per phase, saved, given back and restored.
ember_add_test(NAME govhw_levers SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_levers_test.c
               LIBS ember_governor LABELS integration)
