# Telemetry power sources, SQLite store and report (helper telstore).
ember_add_test(NAME telstore_store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_store_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS unit)
ember_add_test(NAME telstore_crash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_crash_test.c
               LIBS ember_telemetry PkgConfig::SQLITE3 LABELS integration TIMEOUT 120)
ember_add_test(NAME telstore_power_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/telstore_power_test.c
               LIBS ember_telemetry LABELS unit)
