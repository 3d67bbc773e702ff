/* The loaded model as the forward pass sees it: hyper-parameters resolved from metadata (with the
 * documented defaults), weight matrices as typed views of their quant blocks, and small vectors
 * (norms, biases, RoPE factors) converted to owned F32 arrays. Private to the engine. */
#ifndef ENGINE_MODEL_H
#define ENGINE_MODEL_H

#include <stdint.h>

#include "engine/engine.h"
#include "gguf.h"

enum eng_arch {
    ENG_ARCH_LLAMA,
    ENG_ARCH_QWEN2,
    ENG_ARCH_QWEN3,
};

/* A matrix of ne1 rows of ne0 elements in its GGUF type: row-major, or (packed) in the
 * row-interleaved panels of pack.h, which take the same bytes. */
struct eng_weight {
    const void *data;
    uint32_t type;
    int packed;
    int64_t ne0, ne1;
    size_t row_bytes;
};

struct eng_layer {
    float *attn_norm, *ffn_norm;
    float *bq, *bk, *bv;    /* qwen2; NULL otherwise */
    float *q_norm, *k_norm; /* qwen3 (head_dim_k each); NULL otherwise */
    struct eng_weight wq, wk, wv, wo, w_gate, w_up, w_down;
};

struct eng_hparams {
    enum eng_arch arch;
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
    int32_t head_dim_k, head_dim_v, n_rot;
    float eps, rope_freq_base, rope_freq_scale;
    int rope_neox;
};

struct eng_model {
    struct gguf_file *gguf;
    struct eng_hparams hp;
    struct eng_weight tok_embd, output;
    float *output_norm;
    float *rope_freqs; /* n_rot/2 divisors of the RoPE angles, or NULL */
    struct eng_layer *layers;
    struct eng_vocab *vocab;
    struct eng_model_info info;
    /* the weights' own copy in anonymous (huge-page) memory; NULL when computing on the file
     * mapping (eng_model_params.use_mmap) */
    void *weights;
    size_t weights_size;
};

#endif
