# The whole daemon against real components (mosquitto, SQLite, a fake sysfs tree, sd_notify).
add_test(NAME agent_e2e
         COMMAND ${CMAKE_SOURCE_DIR}/tests/agent/agent_e2e.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(agent_e2e PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 180)
# Home Assistant's energy entity across kill -9 of the agent (mid-batch) and of the broker
# (mid-replay): never lower than a value already published (issue 20).
add_test(NAME agent_ha_energy
         COMMAND ${CMAKE_SOURCE_DIR}/tests/agent/agent_ha_energy.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(agent_ha_energy PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 120
                     RESOURCE_LOCK mosquitto_cpu)
