# `ember bench` end to end (the binary): --help, usage errors (exit 2), a missing model (exit 1),
# and real runs on stories260K whose JSON Lines are parsed back.
ember_add_test(NAME agent_bench_cli_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tests/bench_cli_test.c
               LIBS PkgConfig::CJSON ${MATH_LIBRARY} LABELS integration
               ARGS ${EMBER_TEST_EMBER})
add_dependencies(agent_bench_cli_test ember)
