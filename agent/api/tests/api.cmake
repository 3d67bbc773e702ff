# The HTTP API: OpenAI wire format and Prometheus text (unit), the server over real sockets with
# curl (integration), the official openai npm client against a real `ember agent` (integration),
# and the request-body fuzz target.
ember_add_test(NAME api_openai_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_openai_test.c
               LIBS ember_agent_api)
ember_add_test(NAME api_metrics_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_metrics_test.c
               LIBS ember_agent_api)
ember_add_fuzz(NAME openai_request
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_fuzz_openai_request.c
               LIBS ember_agent_api)
ember_add_test(NAME api_http_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_http_test.c
               LIBS ember_agent_api LABELS integration TIMEOUT 120)
# The official openai npm client against a real `ember agent` (skips without tests/node/node_modules).
add_test(NAME api_node_openai
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/api_node.sh ${EMBER_TEST_EMBER}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(api_node_openai PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 600
                     ENVIRONMENT "EMBER_SHARED_DIR=${EMBER_SHARED_DIR}")
# API overhead per streamed token vs the engine's own time (prints the numbers; label bench).
ember_add_test(NAME api_stream_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_stream_bench.c
               LIBS ember_agent_api LABELS bench TIMEOUT 300)
ember_add_test(NAME api_http_worker_test
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_http_worker_test.c
               LIBS ember_agent_api LABELS integration TIMEOUT 180)
# The whole HTTP request path (raw bytes: request line, headers and body) against a real server.
ember_add_fuzz(NAME http_request
               SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_fuzz_http_request.c
               LIBS ember_agent_api)
