# Sampling, chat templates, the generation loop (helper "engsamp").
ember_add_test(NAME engsamp_sampler_test SOURCES tests/engsamp_sampler_test.c LIBS ember_engine)
ember_add_test(NAME engsamp_chat_test SOURCES tests/engsamp_chat_test.c LIBS ember_engine)
ember_add_fuzz(NAME chat_template SOURCES tests/engsamp_chat_fuzz.c LIBS ember_engine)
ember_add_test(NAME engsamp_stop_test SOURCES tests/engsamp_stop_test.c LIBS ember_engine)
ember_add_test(NAME engsamp_generate_test SOURCES tests/engsamp_generate_test.c
               LIBS ember_engine PkgConfig::CJSON)
# `ember run` end to end: the binary comes from agent/, defined after this file is read, which
# generator expressions and add_dependencies allow.
ember_add_test(NAME engsamp_run_test SOURCES tests/engsamp_run_test.c
               LIBS ember_engine PkgConfig::CJSON LABELS integration ARGS ${EMBER_TEST_EMBER})
add_dependencies(engsamp_run_test ember)
ember_add_fuzz(NAME chat_hostile SOURCES tests/engsamp_chat_hostile_fuzz.c LIBS ember_engine)
target_compile_definitions(fuzz_replay_chat_hostile PRIVATE EMBER_SHARED_DIR="${EMBER_SHARED_DIR}")
if(TARGET fuzz_chat_hostile)
    target_compile_definitions(fuzz_chat_hostile PRIVATE EMBER_SHARED_DIR="${EMBER_SHARED_DIR}")
endif()
# Grammar-constrained sampling, JSON Schema -> grammar (helper "tools").
ember_add_test(NAME grammar_test SOURCES tests/grammar_test.c LIBS ember_engine)
ember_add_test(NAME json_schema_test SOURCES tests/json_schema_test.c LIBS ember_engine)
ember_add_fuzz(NAME json_schema SOURCES tests/json_schema_fuzz.c LIBS ember_engine)
ember_add_test(NAME grammar_gen_test SOURCES tests/grammar_gen_test.c
               LIBS ember_engine PkgConfig::CJSON LABELS integration TIMEOUT 1200)
# Masking overhead (label bench, by hand): bench_grammar VOCAB.gguf [MODEL.gguf] [threads].
ember_add_test(NAME bench_grammar SOURCES tests/bench_grammar.c LIBS ember_engine
               ARGS ${EMBER_SHARED_DIR}/models/stories260K.gguf
                    ${EMBER_SHARED_DIR}/models/stories260K.gguf LABELS bench)
ember_add_test(NAME chat_tools_test SOURCES tests/chat_tools_test.c LIBS ember_engine)
ember_add_fuzz(NAME grammar SOURCES tests/grammar_fuzz.c LIBS ember_engine)
