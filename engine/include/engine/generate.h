/* The generation loop: prompt in, streamed text out. eng_generate tokenizes the prompt (or
 * takes tokens), prefills it in batches of n_batch, then alternates sampling and one-token
 * decodes until an end-of-generation token, max_tokens, a stop string, a full context or the
 * caller cancels. Text reaches the caller through on_text in pieces that are always complete
 * UTF-8 and never contain any part of a stop string: text that could still become the start
 * of a stop string is held back until it cannot. The context's observer sees token, request
 * done and idle events (eng_decode itself reports prefill begin/end).
 *
 * A full context either ends the generation (ENG_CTX_FULL_STOP, reason ENG_STOP_CTX_FULL) or
 * shifts it (ENG_CTX_FULL_SHIFT): the first n_keep tokens stay, the older half of the rest is
 * dropped and the newer half is decoded again behind them (a recompute, since positions
 * change), then generation continues. A prompt that does not fit the context at all is an
 * error (-ENOSPC) in both modes. */
#ifndef ENGINE_GENERATE_H
#define ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/grammar.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

#define ENG_GEN_MAX_STOP     16  /* stop strings per request */
#define ENG_GEN_MAX_STOP_LEN 256 /* bytes per stop string */

enum eng_ctx_full {
    ENG_CTX_FULL_STOP = 0,
    ENG_CTX_FULL_SHIFT = 1,
};

enum eng_stop_reason {
    ENG_STOP_NONE = 0,
    ENG_STOP_EOG,        /* the model produced an end-of-generation token */
    ENG_STOP_MAX_TOKENS, /* max_tokens generated */
    ENG_STOP_STRING,     /* a stop string appeared (it is not part of the output) */
    ENG_STOP_CTX_FULL,   /* the context is full (ENG_CTX_FULL_STOP) */
    ENG_STOP_CANCELLED,  /* on_text or should_cancel returned nonzero */
};

/* Receives the next piece of output text (not NUL-terminated, len > 0). Return nonzero to
 * cancel: no further text is delivered and eng_generate returns 0 with ENG_STOP_CANCELLED. */
typedef int (*eng_text_fn)(void *user, const char *text, size_t len);
/* Polled between prefill batches and before each token; nonzero cancels. */
typedef int (*eng_cancel_fn)(void *user);

struct eng_gen_params {
    /* The prompt: text (prompt_len 0 = strlen), or, when prompt is NULL, tokens. */
    const char *prompt;
    size_t prompt_len;
    const int32_t *prompt_tokens;
    size_t n_prompt_tokens;
    bool add_special;   /* text prompts: BOS/EOS as the vocabulary says (default true) */
    bool parse_special; /* text prompts: recognise control tokens written in the text */
    /* With parse_special: byte ranges of the prompt where control tokens are NOT recognised
     * (the messages of a rendered chat, eng_chat_render_spans); NULL = none. */
    const struct eng_text_span *literal;
    size_t n_literal;

    /* Keep what the KV cache already holds and append the prompt after it (a chat's next
     * turn); default false: the cache is cleared first. */
    bool keep_kv;
    /* With keep_kv: the tokens the cache already holds (or their tail), fed to the penalty
     * window before the prompt so a cached prefix is penalised as if it had been prefilled. */
    const int32_t *history_tokens;
    size_t n_history_tokens;

    int32_t max_tokens; /* tokens to generate; < 0 = until EOG, a stop string or full context */
    bool ignore_eog;    /* keep going past end-of-generation tokens (benchmarks) */
    const char *stop[ENG_GEN_MAX_STOP];
    size_t n_stop;

    struct eng_sampler_params sampling;

    /* Constrain the output to a grammar (grammar.h): each step only tokens that continue a
     * string of the grammar can be sampled, and end-of-generation only once it is complete;
     * a completed grammar with no continuation ends the generation (ENG_STOP_EOG). The output
     * text is then the grammar's string unless max_tokens, a stop string or a full context
     * cut it short. grammar_vocab: the vocabulary's index (eng_grammar_vocab_new), built per
     * request when NULL; share one to save that work. */
    const struct eng_grammar *grammar;
    const struct eng_grammar_vocab *grammar_vocab;

    uint32_t n_batch; /* prompt tokens per eng_decode call; 0 = 512 */
    enum eng_ctx_full ctx_full;
    uint32_t n_keep; /* ENG_CTX_FULL_SHIFT: leading tokens never dropped (e.g. the system
                        prompt); capped to half the context */

    /* Render CONTROL tokens' text in the output (default false: "</s>" etc. print nothing). */
    bool special_text;

    eng_text_fn on_text; /* may be NULL (tokens still go to the observer) */
    eng_cancel_fn should_cancel;
    void *user;
};

struct eng_gen_result {
    enum eng_stop_reason reason;
    struct eng_request_stats stats; /* also given to the observer's request_done */
    int32_t last_token;             /* the last token sampled, -1 if none */
    size_t kv_used;                 /* KV positions in use at the end */
    bool kv_matches_text;           /* the KV cache holds exactly prompt + delivered text
                                       (false after a stop string or a context shift) */
};

/* max_tokens -1, add_special true, parse_special false, sampling defaults, n_batch 0,
 * ENG_CTX_FULL_STOP, n_keep 0. */
void eng_gen_params_defaults(struct eng_gen_params *p);

/* Runs one request on ctx (the KV cache is cleared first unless keep_kv). Returns 0 when the
 * generation ran (see result->reason, which may be ENG_STOP_CANCELLED), -EINVAL for bad params
 * (message in err), -ENOSPC when the prompt does not fit the context, -ENOMEM, or an error
 * from eng_decode. The observer's request_done fires whenever tokens were processed. */
int eng_generate(struct eng_context *ctx, const struct eng_vocab *vocab,
                 const struct eng_gen_params *params, struct eng_gen_result *result, char *err,
                 size_t err_len);

/* ---- stop strings, usable on their own (e.g. by an API that streams differently) ---- */

/* Holds back streamed text that could be the beginning of a stop string. Plain data, no free.
 * The stop strings are copied. */
struct eng_stop_filter {
    char stop[ENG_GEN_MAX_STOP][ENG_GEN_MAX_STOP_LEN];
    size_t stop_len[ENG_GEN_MAX_STOP];
    size_t n_stop;
    char hold[ENG_GEN_MAX_STOP_LEN * 2];
    size_t n_hold;
    bool stopped;
};

/* -EINVAL for more than ENG_GEN_MAX_STOP strings, or an empty or too long one. */
int eng_stop_filter_init(struct eng_stop_filter *f, const char *const *stop, size_t n_stop);

/* Feeds text; calls emit for whatever can no longer be part of a stop string (cut only at
 * UTF-8 character boundaries). Returns 0 to go on, 1 when a stop string completed (the text
 * before it has been emitted, the rest is dropped and later pushes do nothing), or 2 when
 * emit returned nonzero. */
int eng_stop_filter_push(struct eng_stop_filter *f, const char *text, size_t len, eng_text_fn emit,
                         void *user);
/* End of stream: emits the held text (it did not become a stop string). 0, or 2 when emit
 * returned nonzero. */
int eng_stop_filter_flush(struct eng_stop_filter *f, eng_text_fn emit, void *user);

#endif
