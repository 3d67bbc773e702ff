# deploy/: Kubernetes manifests (against the Kubernetes API schemas), the Grafana dashboard (against
# Grafana's dashboard model and a running agent's /metrics) and the bridged MQTT fleet (two real
# mosquitto brokers, TLS, ACL, a central outage). Validators live in tests/deploy/ with their npm
# packages (scripts/setup installs them).
find_program(EMBER_NODE node)
add_test(NAME deploy_k8s_validate
         COMMAND ${EMBER_NODE} ${CMAKE_SOURCE_DIR}/tests/deploy/k8s_validate.mjs
                 ${CMAKE_SOURCE_DIR}/deploy/k8s ${EMBER_TEST_EMBER})
add_test(NAME deploy_grafana
         COMMAND ${CMAKE_SOURCE_DIR}/tests/deploy/grafana_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
# The issue's 30 s outage in the plain build; 10 s under the sanitizers (same path, less waiting).
if(EMBER_SANITIZE)
    set(ember_fleet_outage 10)
else()
    set(ember_fleet_outage 30)
endif()
add_test(NAME fleet_bridge
         COMMAND ${CMAKE_SOURCE_DIR}/tests/deploy/fleet_bridge_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR} ${ember_fleet_outage})
set_tests_properties(deploy_k8s_validate deploy_grafana PROPERTIES LABELS "integration;deploy"
                     TIMEOUT 300 SKIP_RETURN_CODE 77)
set_tests_properties(fleet_bridge PROPERTIES LABELS "integration;slow;deploy" TIMEOUT 600
                     SKIP_RETURN_CODE 77)

# What `ember fleet status` takes from the network (fleet_view_ingest): corpus tests/fuzz/fleet_message/.
ember_add_fuzz(NAME fleet_message SOURCES ${CMAKE_CURRENT_LIST_DIR}/deploy/fuzz_fleet_message.c
               LIBS ember_agent_cli)
ember_add_test(NAME fleet_view_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/deploy/fleet_view_test.c
               LIBS ember_agent_cli)
