# MQTT publisher tests: unit tests of payloads, discovery, command validation and backoff; the
# integration cases against a real mosquitto (each its own ctest entry, each well under 60 s);
# and the fuzz target for command payload parsing (corpus in tests/fuzz/mqtt_command/).
ember_add_test(NAME telmqtt_unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/telmqtt_unit.c
               LIBS ember_telemetry PkgConfig::CJSON LABELS unit TIMEOUT 60)

foreach(case plain password tls outage_stop outage_kill9 agent_kill9 hass hass_device hass_stale ha_energy commands v311
             keepalive wall_plug)
    if(NOT TARGET telmqtt_broker_test)
        add_executable(telmqtt_broker_test ${CMAKE_CURRENT_LIST_DIR}/telmqtt_broker_test.c
                       ${CMAKE_CURRENT_LIST_DIR}/telmqtt_util.c)
        target_link_libraries(telmqtt_broker_test PRIVATE ember_telemetry PkgConfig::CJSON
                              PkgConfig::MOSQUITTO PkgConfig::SQLITE3)
        target_include_directories(telmqtt_broker_test PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
        target_compile_definitions(telmqtt_broker_test PRIVATE
            EMBER_SHARED_DIR="${EMBER_SHARED_DIR}" EMBER_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
            EMBER_BINARY_DIR="${CMAKE_BINARY_DIR}")
    endif()
    add_test(NAME telmqtt_broker_${case} COMMAND telmqtt_broker_test ${case})
    set_tests_properties(telmqtt_broker_${case} PROPERTIES LABELS integration SKIP_RETURN_CODE 77
                         TIMEOUT 90 RESOURCE_LOCK mosquitto_cpu)
endforeach()

ember_add_fuzz(NAME mqtt_command SOURCES ${CMAKE_CURRENT_LIST_DIR}/telmqtt_fuzz_command.c
               LIBS ember_telemetry)

# CPU cost at 1 Hz and 10 Hz (label bench: not part of the default run).
add_test(NAME telmqtt_bench_cpu COMMAND telmqtt_broker_test bench)
set_tests_properties(telmqtt_bench_cpu PROPERTIES LABELS bench SKIP_RETURN_CODE 77 TIMEOUT 120
                     RESOURCE_LOCK mosquitto_cpu)

# Smart-plug payload parsing for the wall meter (corpus in tests/fuzz/wall_plug/).
ember_add_fuzz(NAME wall_plug SOURCES ${CMAKE_CURRENT_LIST_DIR}/telwall_fuzz_plug.c
               LIBS ember_telemetry)
