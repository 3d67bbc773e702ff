# The knowledge base and plugin (plugins/knowledge/): the store on real SQLite files, `ember kb`
# as a user runs it, the JSONL importer's fuzz corpus, and the retrieval evaluation on the
# example knowledge base built from Ember's own docs (hit rate@3 must stay at or above 90 %).
ember_add_test(NAME kb_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/kb_test.c LIBS ember_kb)
add_test(NAME kb_cli
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/kb_cli_test.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(kb_cli PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 120)
add_test(NAME kb_eval_docs
         COMMAND ${EMBER_TEST_EMBER} kb eval --db ${EMBER_KB_EXAMPLE_DB} --min 0.9
                 ${CMAKE_CURRENT_SOURCE_DIR}/eval/ember-docs-questions.jsonl)
set_tests_properties(kb_eval_docs PROPERTIES LABELS integration TIMEOUT 120)
# The JSONL importer: corpus tests/fuzz/kb_jsonl/.
ember_add_fuzz(NAME kb_jsonl SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_kb_jsonl.c LIBS ember_kb)
# Retrieval latency on a 10,000-entry base through the agent's loader (label bench, not in
# scripts/test; scripts/bench-kb runs it).
ember_add_test(NAME kb_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/kb_bench.c
               LIBS ember_kb ember_agent_plugins LABELS bench
               ARGS ${EMBER_PLUGIN_OUTPUT_DIR} 10000 500)
add_dependencies(kb_bench knowledge)
