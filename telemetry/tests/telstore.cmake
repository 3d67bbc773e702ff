# Telemetry power sources, SQLite store and report (helper telstore).
ember_add_test(NAME telstore_store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_store_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS unit)
ember_add_test(NAME telstore_crash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_crash_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS integration TIMEOUT 120)
ember_add_test(NAME telstore_power_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_power_test.c
               LIBS ember_telemetry LABELS unit)
ember_add_test(NAME telstore_report_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_report_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 PkgConfig::CJSON LABELS unit)
# The same numbers through `ember report`: agent/cli/tests/cli.cmake (cli_report).
# CPU share and bytes per day at 1 Hz and 10 Hz (prints the figures; not in the default run).
ember_add_test(NAME telstore_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_bench.c
               LIBS ember_telemetry LABELS bench TIMEOUT 600)
# A really full file system (private 2 MiB tmpfs; skips with 77 where mounting is not allowed).
ember_add_test(NAME telstore_fulldisk_test
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_fulldisk_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS integration TIMEOUT 60)
# Energy by engine phase and its scope; migration from schema 2 (issue 12).
ember_add_test(NAME telstore_phase_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_phase_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS unit)
# `ember report --svg` on a demo-length run, rendered to PNG with rsvg-convert (issue 12).
ember_add_test(NAME telstore_chart_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_chart_test.c
               LIBS ember_telemetry LABELS unit
               ARGS ${CMAKE_CURRENT_BINARY_DIR}/telstore_chart.png)
set_tests_properties(telstore_chart_test PROPERTIES SKIP_RETURN_CODE 77)
# The wall channel: hwmon, battery and the estimate on fake sysfs trees, schema 4 -> 5 (issue 12).
ember_add_test(NAME telwall_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telwall_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS unit)
# Raspberry Pi 5 PMIC rails: fixture, the source through a command, the rails-to-wall fit; the
# parser's fuzz target (corpus in tests/fuzz/pmic_adc/).
ember_add_test(NAME telpmic_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telpmic_test.c
               LIBS ember_telemetry LABELS unit)
target_compile_definitions(telpmic_test PRIVATE
                           FIXTURE="${CMAKE_CURRENT_LIST_DIR}/fixtures/pi5_pmic_read_adc.txt")
ember_add_fuzz(NAME pmic_adc SOURCES ${CMAKE_CURRENT_LIST_DIR}/telpmic_fuzz.c LIBS ember_telemetry)
# AMD Zen package energy through powercap (the AMD RAPL driver's layout since Linux 5.8).
ember_add_test(NAME telzen_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telzen_test.c
               LIBS ember_telemetry LABELS unit)
