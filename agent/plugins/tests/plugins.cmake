# The plugin loader (agent/plugins/) against real shared objects: test_plugin.c built once per
# variant into <build>/test-plugins (a good plugin, a wrong ABI version, a missing descriptor, a
# failing init), loaded by plugins_test directly and by the real agent in plugins_e2e.
set(EMBER_TEST_PLUGIN_DIR ${CMAKE_BINARY_DIR}/test-plugins)
foreach(variant probe wrong_abi no_symbol init_fails)
    add_library(test_plugin_${variant} MODULE ${CMAKE_CURRENT_LIST_DIR}/test_plugin.c)
    set_target_properties(test_plugin_${variant} PROPERTIES PREFIX "" OUTPUT_NAME ${variant}
                          C_VISIBILITY_PRESET hidden
                          LIBRARY_OUTPUT_DIRECTORY ${EMBER_TEST_PLUGIN_DIR})
    target_include_directories(test_plugin_${variant} PRIVATE ${CMAKE_SOURCE_DIR}/include)
endforeach()
target_compile_definitions(test_plugin_wrong_abi PRIVATE WRONG_ABI PLUGIN_NAME="wrong_abi")
target_compile_definitions(test_plugin_no_symbol PRIVATE NO_SYMBOL PLUGIN_NAME="no_symbol")
target_compile_definitions(test_plugin_init_fails PRIVATE INIT_FAILS PLUGIN_NAME="init_fails")

ember_add_test(NAME plugins_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/plugins_test.c
               LIBS ember_agent_plugins ARGS ${EMBER_TEST_PLUGIN_DIR})
add_dependencies(plugins_test test_plugin_probe test_plugin_wrong_abi test_plugin_no_symbol
                 test_plugin_init_fails)

# The real agent (real model, real HTTP clients) with plugins: the knowledge plugin on the
# example knowledge base cites its sources in chat responses (plain and streamed), the probe
# sees every hook and answers "!ping" directly, the docs' example plugin (session_csv) writes its
# CSV, refused plugins leave the agent serving; then a plugin that crashes inside a hook takes
# the agent down with a report that names the plugin and the hook.
add_test(NAME plugins_e2e
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/plugins_e2e.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR} ${CMAKE_BINARY_DIR}
                 "${EMBER_TEST_EMULATOR}")
set_tests_properties(plugins_e2e PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300)
