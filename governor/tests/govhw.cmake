# govhw: the governor's hardware side (backend, sensors, safety, runtime object). The fake trees
# come from ../shared/sysfs-trees and tests/sysfs-trees; every test works on its own copy.
ember_add_test(NAME govhw_parse SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_parse_test.c
               LIBS ember_governor LABELS unit)
ember_add_test(NAME govhw_backend SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_backend_test.c
               LIBS ember_governor LABELS integration)
ember_add_test(NAME govhw_sensors SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/govhw_sensors_test.c
               LIBS ember_governor LABELS integration)
