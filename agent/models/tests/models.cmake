# The model directory: ids, subdirectories, hidden partial files, aliases, the [engine] model
# inside and outside it, broken files listed with the loader's message, rescans.
ember_add_test(NAME models_registry SOURCES ${CMAKE_CURRENT_LIST_DIR}/registry_test.c
               LIBS ember_agent_models)
# `ember models list|show|rm` and `ember pull` against a model server on loopback (Range,
# a cut connection, X-Linked-Etag, a sidecar, a corrupt file, 404, a full disk).
add_test(NAME models_cli
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/models_cli_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(models_cli PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
# The agent serving the directory to a real HTTP client: load on first use, switching, keep-alive,
# LRU eviction under a budget (SIGHUP), 404, RSS after unload, sessions per model.
add_test(NAME models_e2e
         COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/models_e2e.py ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
set_tests_properties(models_e2e PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
# The aliases value and pull sources (libFuzzer target; its corpus replays in every build).
ember_add_fuzz(NAME model_names SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_model_names.c
               LIBS ember_agent_models)
