# `ember quantize` and `ember eval` (issue 11): the CLI end to end with every bad input and the
# accuracy checks on stories260K; byte identity with llama-quantize --pure and llama.cpp running
# our files (skips when the peer binaries are absent); a full disk on a test-mounted tmpfs
# (skips when not root).
add_test(NAME cli_quantize
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/quantize_cli_test.sh
                 ${EMBER_TEST_EMBER} ${CMAKE_SOURCE_DIR} ${EMBER_SHARED_DIR})
add_test(NAME cli_quantize_llamacpp
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/quantize_llamacpp_test.sh
                 ${EMBER_TEST_EMBER} ${EMBER_SHARED_DIR})
add_test(NAME cli_quantize_fulldisk
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/quantize_fulldisk_test.sh
                 ${EMBER_TEST_EMBER} ${EMBER_SHARED_DIR})
set_tests_properties(cli_quantize cli_quantize_llamacpp
                     cli_quantize_fulldisk
                     PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 1200)
# (the first two quantize and evaluate several models: about 4 minutes each under ASan on two
# busy cores, hence the long timeout)
