/* Ember's inference engine: load a llama-family GGUF model (llama, qwen2, qwen3 architectures),
 * create contexts holding a KV cache, feed token batches and read logits. A model is immutable
 * after load and may be shared by several contexts; a context is used by one thread at a time
 * (it runs its own worker pool for the matrix kernels). The engine reports what it is doing
 * through an observer (prefill begin/end, token, idle, request done) and knows nothing of the
 * governor or telemetry. Tokenization lives in engine/tokenizer.h, sampling in
 * engine/sampler.h. All functions return 0 or -errno; those taking err/err_len write a
 * "what and where" message there on failure. */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct eng_model;
struct eng_context;
struct eng_vocab; /* defined by the tokenizer (engine/tokenizer.h) */

/* ---- model ---- */

/* Called during load with the fraction done in [0, 1]; return nonzero to cancel the load
 * (eng_model_load then returns -ECANCELED). */
typedef int (*eng_progress_fn)(float fraction, void *user);

struct eng_model_params {
    eng_progress_fn progress; /* may be NULL */
    void *progress_user;
    int vocab_only; /* load metadata and vocabulary only (no tensors needed, none touched) */
    int use_mmap;   /* compute on the file mapping (little RAM) instead of copying the weights into
                       anonymous huge-page memory and repacking them (the default, faster) */
};

void eng_model_params_defaults(struct eng_model_params *p);

int eng_model_load(const char *path, const struct eng_model_params *params,
                   struct eng_model **ret_model, char *err, size_t err_len);
void eng_model_free(struct eng_model *model);

struct eng_model_info {
    char arch[32];       /* general.architecture: "llama", "qwen2", "qwen3" */
    char name[64];       /* general.name, or "" */
    char file_type[16];  /* the dominant weight type, e.g. "Q4_0", "F16" */
    int32_t n_vocab;     /* rows of the output matrix (0 when vocab_only) */
    int32_t n_ctx_train; /* <arch>.context_length */
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    float rope_freq_base;
    uint64_t n_params;     /* elements in all tensors */
    uint64_t size_bytes;   /* the file's size */
    uint64_t weight_bytes; /* bytes of tensor data */
    uint64_t stream_bytes; /* weight bytes one decode step reads: every tensor but the token
                              embedding, whose rows are gathered (unless it is also the output) */
    int32_t bos_id;        /* -1 when the vocabulary has none */
    int32_t eos_id;
};

void eng_model_info(const struct eng_model *model, struct eng_model_info *ret);

/* Reads a model file's header only (metadata, tokenizer, tensor descriptions; no tensor data)
 * and fills *ret as eng_model_load would (n_vocab from the output matrix's shape). Fails with
 * the loader's own message for a malformed file, an unsupported architecture or bad
 * hyper-parameters; a file it accepts may still fail to load on a missing or misshapen tensor. */
int eng_model_probe(const char *path, struct eng_model_info *ret, char *err, size_t err_len);

/* The model's vocabulary (owned by the model); NULL if the file has no tokenizer. */
const struct eng_vocab *eng_model_vocab(const struct eng_model *model);

/* ---- context ---- */

struct eng_context_params {
    uint32_t n_ctx;     /* KV cache positions; 0 = the model's training context (capped at 4096) */
    uint32_t n_threads; /* kernel threads including the caller; 0 = online CPUs */
    uint32_t n_batch;   /* most tokens processed per forward step; longer batches are split */
    int logits_all;     /* keep logits of every token of the last eng_decode call (tests);
                           such a call may then hold at most n_batch tokens (else -E2BIG) */
    int kv_f32;         /* F32 KV cache (exact comparisons); default F16 */
    int no_fusion;      /* run the unfused graph (tests compare it with the fused one) */
};

/* The compute graph of a context before and after fusion: op count, activation tensors and the
 * bytes of the planned activation arena for n_batch tokens; scratch_bytes is the fixed part
 * (quantized activations, attention scores, logits, per-thread packing buffers). */
struct eng_graph_stats {
    int ops_unfused, ops_fused;
    int tensors_unfused, tensors_fused;
    size_t act_bytes_unfused, act_bytes_fused;
    size_t scratch_bytes;
};
void eng_graph_stats(const struct eng_context *ctx, struct eng_graph_stats *ret);

/* The largest context and prefill batch eng_context_new accepts. */
#define ENG_N_CTX_MAX   (1u << 20)
#define ENG_N_BATCH_MAX (1u << 16)

/* n_ctx 0, n_threads 0, n_batch 256, logits_all 0, kv_f32 0. */
void eng_context_params_defaults(struct eng_context_params *p);

int eng_context_new(const struct eng_model *model, const struct eng_context_params *params,
                    struct eng_context **ret_ctx, char *err, size_t err_len);
void eng_context_free(struct eng_context *ctx);

uint32_t eng_n_ctx(const struct eng_context *ctx);

/* Live thread lever: from the next eng_decode on, n_threads of the context's kernel threads (the
 * caller included; 0 = all it was made with, which stay the ceiling) take part, pinned to the
 * CPUs of cpu_mask (bit i = logical CPU i; 0 = no pinning: the threads get back the affinity
 * the context's creator had). The calling thread, which runs a share of every job, is pinned
 * too. Call it from the thread that calls eng_decode, between calls (e.g. from the observer's
 * token callback): the pool is idle then, so a matrix product never sees two settings. Idle
 * workers stay parked, so switching costs no thread creation. Results do not depend on the
 * count or the CPUs: work is split by whole rows, heads and tokens, each computed the same way
 * whichever thread runs it, so logits are bit-identical. -EINVAL, with err saying why and
 * nothing changed, for more threads than the context has or a CPU that is offline or outside
 * the process's allowed set (CPUs 64 and up cannot be named); -errno of
 * pthread_setaffinity_np otherwise (the previous pinning is put back). */
int eng_context_set_threads(struct eng_context *ctx, uint32_t n_threads, uint64_t cpu_mask,
                            char *err, size_t err_len);
/* The setting in force: threads taking part, CPUs pinned to (0 = none) and the ceiling. Any
 * pointer may be NULL. Same thread as eng_context_set_threads. */
void eng_context_threads(const struct eng_context *ctx, uint32_t *n_threads, uint64_t *cpu_mask,
                         uint32_t *max_threads);

/* Runs tokens through the model, appending them to the KV cache at the current position (more
 * than one token is a prefill; one is a decode step). Returns -ENOSPC, with nothing appended,
 * when the tokens do not fit in the remaining context; -EINVAL for an id outside the
 * vocabulary or n_tokens == 0. */
int eng_decode(struct eng_context *ctx, const int32_t *tokens, size_t n_tokens);

/* Logits (n_vocab floats) of the last token of the last eng_decode call; NULL before any.
 * Valid until the next eng_decode. */
const float *eng_get_logits(const struct eng_context *ctx);
/* Logits of token i of the last eng_decode call (logits_all contexts only, else NULL). */
const float *eng_get_logits_ith(const struct eng_context *ctx, size_t i);
int32_t eng_n_vocab(const struct eng_context *ctx);

/* KV cache: positions used, forget everything, or keep only the first n_keep positions
 * (-EINVAL when n_keep exceeds the positions used). */
size_t eng_kv_used(const struct eng_context *ctx);
void eng_kv_clear(struct eng_context *ctx);
int eng_kv_trim(struct eng_context *ctx, size_t n_keep);

/* ---- observer ---- */

struct eng_request_stats {
    uint64_t prompt_tokens;
    uint64_t gen_tokens;
    uint64_t ttft_ns;     /* request start to first generated token */
    uint64_t prefill_ns;  /* time in the prompt's prefill (not context-shift re-processing) */
    uint64_t decode_ns;   /* time in single-token decode */
    uint64_t duration_ns; /* request start to done */
    uint64_t shift_ns;    /* time re-processing kept tokens after context shifts */
    uint32_t n_shifts;    /* context shifts during the request */
};

/* Every callback may be NULL. They run on the thread calling into the engine and must be quick.
 * eng_decode calls prefill_begin/prefill_end around a batch of more than one token; the
 * generation loop reports tokens, idleness and completed requests through eng_notify_*. */
struct eng_observer {
    void (*prefill_begin)(void *user, size_t n_tokens);
    void (*prefill_end)(void *user, size_t n_tokens, uint64_t dur_ns);
    void (*token)(void *user, int32_t token);
    void (*idle)(void *user);
    void (*request_done)(void *user, const struct eng_request_stats *stats);
};

/* obs is copied; NULL removes the observer. */
void eng_set_observer(struct eng_context *ctx, const struct eng_observer *obs, void *user);
void eng_notify_token(struct eng_context *ctx, int32_t token);
void eng_notify_idle(struct eng_context *ctx);
void eng_notify_request_done(struct eng_context *ctx, const struct eng_request_stats *stats);

/* ---- machine ---- */

/* Instruction sets detected at run time and the kernel variant in use, e.g.
 * "AVX2 FMA F16C AVX512F AVX512BW AVX512VL AVX512_VNNI; kernels: avx512". */
const char *eng_cpu_features_string(void);

#endif
