ember_add_test(NAME agent_config_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/config_test.c
               LIBS ember_agent)
ember_add_fuzz(NAME config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz_config.c LIBS ember_agent)
# etc/ember.conf must be exactly what the key table documents (regenerate with
# `ember config dump --docs --defaults > etc/ember.conf`), and must itself validate.
add_test(NAME agent_config_doc_in_sync
         COMMAND ${CMAKE_COMMAND} -DEMBER=${EMBER_TEST_EMBER}
                 -DCONF=${CMAKE_SOURCE_DIR}/etc/ember.conf
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/tests/scripts/config_doc_sync.cmake)
set_tests_properties(agent_config_doc_in_sync PROPERTIES LABELS unit)
