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
