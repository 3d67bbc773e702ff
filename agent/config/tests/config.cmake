# Configuration: the parser and key table (unit), its fuzz target, and etc/ember.conf in step with
# the key table's documentation (regenerate with `ember config dump --docs --defaults >
# etc/ember.conf`; it must itself validate).
ember_add_test(NAME config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.c
               LIBS ember_agent_config)
ember_add_test(NAME log_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/log_test.c
               LIBS ember_agent_config)
ember_add_fuzz(NAME config SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_config.c LIBS ember_agent_config)
add_test(NAME config_doc_in_sync
         COMMAND ${CMAKE_COMMAND} -DEMBER=${EMBER_TEST_EMBER}
                 -DCONF=${CMAKE_SOURCE_DIR}/etc/ember.conf
                 -P ${CMAKE_CURRENT_LIST_DIR}/scripts/config_doc_sync.cmake)
set_tests_properties(config_doc_in_sync PROPERTIES LABELS unit)
add_test(NAME config_check_golden
         COMMAND ${CMAKE_COMMAND} -DEMBER=${EMBER_TEST_EMBER}
                 -DBAD=${CMAKE_CURRENT_LIST_DIR}/data/every_module_key_bad.conf
                 -DEXPECTED=${CMAKE_CURRENT_LIST_DIR}/data/every_module_key_bad.expected
                 -P ${CMAKE_CURRENT_LIST_DIR}/scripts/config_check_golden.cmake)
set_tests_properties(config_check_golden PROPERTIES LABELS unit)
