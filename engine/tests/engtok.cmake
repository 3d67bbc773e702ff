# Tokenizer (helper "engtok"): one conformance test per vocabulary in shared/vectors/tokenizer
# (one executable, a ctest each), the stories260K prompts, the detokenizer, the `ember tokenize`
# CLI and a fuzz target.
ember_add_test(NAME engtok_vocab_llama-spm SOURCES ${CMAKE_CURRENT_LIST_DIR}/engtok_vectors_test.c
               ARGS ggml-vocab-llama-spm.gguf LIBS ember_engine LABELS unit)
foreach(vocab deepseek-coder deepseek-llm falcon gpt-2 mpt phi-3 qwen3 refact starcoder)
    add_test(NAME engtok_vocab_${vocab} COMMAND engtok_vocab_llama-spm ggml-vocab-${vocab}.gguf)
    set_tests_properties(engtok_vocab_${vocab} PROPERTIES LABELS unit SKIP_RETURN_CODE 77
                         TIMEOUT 300 ENVIRONMENT "EMBER_SHARED_DIR=${EMBER_SHARED_DIR}")
endforeach()
add_test(NAME engtok_vocab_qwen3_special
         COMMAND engtok_vocab_llama-spm ggml-vocab-qwen3.gguf special)
set_tests_properties(engtok_vocab_qwen3_special PROPERTIES LABELS unit SKIP_RETURN_CODE 77
                     TIMEOUT 300 ENVIRONMENT "EMBER_SHARED_DIR=${EMBER_SHARED_DIR}")
ember_add_test(NAME engtok_stories SOURCES ${CMAKE_CURRENT_LIST_DIR}/engtok_stories_test.c
               LIBS ember_engine PkgConfig::CJSON LABELS unit)
ember_add_test(NAME engtok_api SOURCES ${CMAKE_CURRENT_LIST_DIR}/engtok_api_test.c
               LIBS ember_engine LABELS unit)
ember_add_fuzz(NAME tokenizer SOURCES ${CMAKE_CURRENT_LIST_DIR}/engtok_fuzz.c LIBS ember_engine)
foreach(t fuzz_replay_tokenizer fuzz_tokenizer)
    if(TARGET ${t})
        target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
        target_compile_definitions(${t} PRIVATE EMBER_SHARED_DIR="${EMBER_SHARED_DIR}")
    endif()
endforeach()
ember_add_test(NAME engtok_llamacpp SOURCES ${CMAKE_CURRENT_LIST_DIR}/engtok_llamacpp_test.c
               LIBS ember_engine LABELS unit)
target_include_directories(engtok_llamacpp PRIVATE ${CMAKE_SOURCE_DIR}/engine/src)
