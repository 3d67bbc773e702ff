/* The generation loop of generate.h: tokenize, prefill in batches, then sample / decode one
 * token at a time, streaming text through the UTF-8-safe detokenizer and the stop-string
 * filter. Everything per request (token buffers, sampler, detokenizer output) is allocated
 * once before the loop; the loop itself allocates nothing. */
#include "engine/generate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"

#define DEFAULT_N_BATCH 512

void eng_gen_params_defaults(struct eng_gen_params *p)
{
    memset(p, 0, sizeof(*p));
    p->add_special = true;
    p->max_tokens = -1;
    eng_sampler_params_defaults(&p->sampling);
    p->ctx_full = ENG_CTX_FULL_STOP;
}

static int set_err(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The caller's on_text behind a latch: once it cancels, nothing more is delivered. */
struct sink {
    const struct eng_gen_params *p;
    bool cancelled;
    bool any_text;
};

static int sink_emit(void *user, const char *text, size_t len)
{
    struct sink *s = user;
    if (s->cancelled)
        return 1;
    s->any_text = true;
    if (s->p->on_text && s->p->on_text(s->p->user, text, len)) {
        s->cancelled = true;
        return 1;
    }
    return 0;
}

struct gen {
    struct eng_context *ctx;
    const struct eng_gen_params *p;
    uint32_t n_ctx;
    int32_t *hist; /* tokens of this request in the KV cache, in order (n_ctx entries) */
    size_t n_hist;
    size_t base; /* KV positions before this request (keep_kv) */
    struct eng_request_stats *st;
};

static int cancelled(const struct gen *g)
{
    return g->p->should_cancel && g->p->should_cancel(g->p->user);
}

/* Decodes n tokens in n_batch pieces, recording them in hist; time goes to *acc_ns (the
 * prompt's prefill_ns, or shift_ns when a context shift re-processes kept tokens). */
static int prefill(struct gen *g, const int32_t *toks, size_t n, uint64_t *acc_ns, bool *ret_cancel)
{
    size_t batch = g->p->n_batch ? g->p->n_batch : DEFAULT_N_BATCH;
    for (size_t i = 0; i < n; i += batch) {
        if (cancelled(g)) {
            *ret_cancel = true;
            return 0;
        }
        size_t k = n - i < batch ? n - i : batch;
        uint64_t t = cmn_now_ns();
        int rc = eng_decode(g->ctx, toks + i, k);
        *acc_ns += cmn_now_ns() - t;
        if (rc < 0)
            return rc;
        memmove(g->hist + g->n_hist, toks + i, k * sizeof(*toks));
        g->n_hist += k;
    }
    return 0;
}

/* Context shift by recompute: keep the first n_keep positions, drop the older half of the
 * rest, decode the newer half again behind the kept ones. Returns 1 when nothing can be
 * dropped (the context is too small to shift). */
static int shift(struct gen *g, bool *ret_cancel)
{
    size_t n_keep = g->p->n_keep > g->base ? g->p->n_keep : g->base;
    if (n_keep > g->n_ctx / 2)
        n_keep = g->n_ctx / 2;
    if (n_keep < g->base)
        return 1; /* earlier turns we cannot recompute fill half the context */
    size_t used = g->base + g->n_hist;
    size_t n_discard = (used - n_keep) / 2;
    if (n_discard == 0)
        return 1;
    /* hist index of KV position q is q - base */
    size_t keep_h = n_keep - g->base; /* hist entries kept in place */
    size_t from_h = keep_h + n_discard, n_re = g->n_hist - from_h;
    int rc = eng_kv_trim(g->ctx, n_keep);
    if (rc < 0)
        return rc;
    memmove(g->hist + keep_h, g->hist + from_h, n_re * sizeof(*g->hist));
    g->n_hist = keep_h;
    /* prefill() appends to hist from n_hist, which is where the source already lies: each
     * batch is moved onto itself */
    g->st->n_shifts++;
    return prefill(g, g->hist + keep_h, n_re, &g->st->shift_ns, ret_cancel);
}

/* Whether every prompt token renders as no text (BOS only): then the first generated piece
 * starts the text and an SPM leading space is dropped. */
static bool prompt_is_textless(const struct eng_vocab *vocab, const int32_t *toks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(eng_token_attr(vocab, toks[i]) & ENG_TOKEN_ATTR_CONTROL))
            return false;
    }
    return true;
}

static int tokenize_prompt(const struct eng_vocab *vocab, const struct eng_gen_params *p,
                           size_t len, int32_t *toks, size_t cap, size_t *n)
{
    if (p->parse_special && p->literal)
        return eng_tokenize_spans(vocab, p->prompt, len, p->add_special, p->literal, p->n_literal,
                                  toks, cap, n);
    return eng_tokenize(vocab, p->prompt, len, p->add_special, p->parse_special, toks, cap, n);
}

/* The prompt as token ids: the text tokenized, or a copy of the caller's ids; each id is checked
 * against the vocabulary. On failure nothing is left to free. */
static int prompt_tokens(const struct eng_vocab *vocab, const struct eng_gen_params *p,
                         int32_t n_vocab, int32_t **ret_toks, size_t *ret_n, char *err,
                         size_t err_len)
{
    int32_t *toks = NULL;
    size_t n_toks = 0;
    int rc = 0;
    *ret_toks = NULL;
    *ret_n = 0;
    if (p->prompt) {
        size_t len = p->prompt_len ? p->prompt_len : strlen(p->prompt);
        size_t cap = len + 8, n = 0;
        toks = malloc(cap * sizeof(*toks));
        if (!toks)
            return -ENOMEM;
        rc = tokenize_prompt(vocab, p, len, toks, cap, &n);
        if (rc == -ENOSPC) {
            int32_t *bigger = realloc(toks, n * sizeof(*toks));
            if (!bigger) {
                free(toks);
                return -ENOMEM;
            }
            toks = bigger;
            cap = n;
            rc = tokenize_prompt(vocab, p, len, toks, cap, &n);
        }
        if (rc < 0) {
            free(toks);
            return set_err(err, err_len, rc, "generate: tokenizing the prompt failed (%d)", rc);
        }
        n_toks = n;
    } else if (p->n_prompt_tokens) {
        toks = malloc(p->n_prompt_tokens * sizeof(*toks));
        if (!toks)
            return -ENOMEM;
        memcpy(toks, p->prompt_tokens, p->n_prompt_tokens * sizeof(*toks));
        n_toks = p->n_prompt_tokens;
    }
    for (size_t i = 0; i < n_toks; i++) {
        if (toks[i] < 0 || toks[i] >= n_vocab) {
            int id = (int)toks[i];
            free(toks);
            return set_err(err, err_len, -EINVAL,
                           "generate: prompt token %zu: id %d outside [0, %d)", i, id,
                           (int)n_vocab);
        }
    }
    *ret_toks = toks;
    *ret_n = n_toks;
    return 0;
}

/* What the token loop works with. */
struct token_loop {
    struct gen *g;
    const struct eng_vocab *vocab;
    struct eng_sampler *smp;
    struct eng_stop_filter *stop;
    struct sink *sink;
    struct eng_detok dt;
    char *piece;
    size_t cap_piece;
    struct eng_gen_result *res;
    uint64_t t0;
    uint64_t gen; /* tokens sampled */
    bool cancel;
    /* grammar-constrained sampling (NULL gm: none): the matcher, the vocabulary's index and
     * the mask of allowed tokens it fills each step */
    struct eng_grammar_matcher *gm;
    const struct eng_grammar_vocab *gv;
    uint32_t *allow;
};

/* The token the grammar and the sampler agree on; *reason becomes EOG when the grammar is
 * complete and no token can continue it (a vocabulary without an EOG token). */
static int sample_token(struct token_loop *L, int32_t *ret_tok, enum eng_stop_reason *reason,
                        char *err, size_t err_len)
{
    struct gen *g = L->g;
    const uint32_t *mask = NULL;
    if (L->gm) {
        int32_t n_allowed = eng_grammar_mask(L->gm, L->gv, L->allow);
        if (n_allowed < 0)
            return set_err(err, err_len, n_allowed, "generate: grammar mask failed (%d)",
                           (int)n_allowed);
        if (n_allowed == 0 && eng_grammar_matcher_accepts(L->gm)) {
            *reason = ENG_STOP_EOG;
            return 0;
        }
        if (n_allowed == 0)
            return set_err(err, err_len, -EINVAL,
                           "generate: no token of the vocabulary can continue the grammar after "
                           "%llu tokens",
                           (unsigned long long)L->gen);
        mask = L->allow;
    }
    int32_t tok = eng_sampler_sample_masked(L->smp, eng_get_logits(g->ctx), mask);
    if (tok < 0 && L->gm)
        return set_err(err, err_len, -EINVAL,
                       "generate: every token the grammar allows after %llu tokens has an "
                       "infinite or NaN logit",
                       (unsigned long long)L->gen);
    if (tok < 0)
        return set_err(err, err_len, -EINVAL,
                       "generate: the logits after %zu tokens hold no finite value",
                       g->base + g->n_hist);
    if (L->gm && eng_grammar_matcher_accept_token(L->gm, L->gv, tok) < 0)
        return set_err(err, err_len, -EINVAL, "generate: token %d does not continue the grammar",
                       (int)tok);
    *ret_tok = tok;
    return 0;
}

/* Samples the next token and hands its text to the stop filter and the caller; *reason says
 * when that ends the reply. */
static int sample_and_emit(struct token_loop *L, int32_t *ret_tok, enum eng_stop_reason *reason,
                           char *err, size_t err_len)
{
    struct gen *g = L->g;
    int32_t tok = -1;
    int rc = sample_token(L, &tok, reason, err, err_len);
    if (rc < 0 || *reason != ENG_STOP_NONE)
        return rc;
    L->gen++;
    if (L->gen == 1)
        L->res->stats.ttft_ns = cmn_now_ns() - L->t0;
    L->res->last_token = tok;
    eng_sampler_accept(L->smp, tok);
    eng_notify_token(g->ctx, tok);
    *ret_tok = tok;
    if (!g->p->ignore_eog && eng_token_is_eog(L->vocab, tok)) {
        *reason = ENG_STOP_EOG;
        return 0;
    }
    size_t n_piece = 0;
    rc = eng_detok_push(&L->dt, tok, L->piece, L->cap_piece, &n_piece);
    if (rc < 0)
        return set_err(err, err_len, rc, "generate: detokenizing token %d failed (%d)", (int)tok,
                       rc);
    int fr = eng_stop_filter_push(L->stop, L->piece, n_piece, sink_emit, L->sink);
    if (fr == 1)
        *reason = ENG_STOP_STRING;
    else if (fr == 2)
        *reason = ENG_STOP_CANCELLED;
    return 0;
}

/* One turn of the token loop: sample, emit, make room when the context is full, decode the
 * token so the next one can be sampled. *reason stays ENG_STOP_NONE while the reply goes on. */
static int token_step(struct token_loop *L, enum eng_stop_reason *reason, char *err, size_t err_len)
{
    struct gen *g = L->g;
    const struct eng_gen_params *p = g->p;
    if (L->cancel || cancelled(g)) {
        *reason = ENG_STOP_CANCELLED;
        return 0;
    }
    if (p->max_tokens >= 0 && L->gen >= (uint64_t)p->max_tokens) {
        *reason = ENG_STOP_MAX_TOKENS;
        return 0;
    }
    int32_t tok;
    int rc = sample_and_emit(L, &tok, reason, err, err_len);
    if (rc < 0 || *reason != ENG_STOP_NONE)
        return rc;
    if (p->max_tokens >= 0 && L->gen >= (uint64_t)p->max_tokens) {
        *reason = ENG_STOP_MAX_TOKENS; /* no need to decode a token nobody will follow */
        return 0;
    }
    if (g->base + g->n_hist >= g->n_ctx) {
        if (p->ctx_full != ENG_CTX_FULL_SHIFT) {
            *reason = ENG_STOP_CTX_FULL;
            return 0;
        }
        rc = shift(g, &L->cancel);
        if (rc == 1) {
            *reason = ENG_STOP_CTX_FULL;
            return 0;
        }
        if (rc < 0)
            return set_err(err, err_len, rc, "generate: context shift failed (%d)", rc);
        L->res->kv_matches_text = false;
        if (L->cancel)
            return 0; /* the next turn stops */
    }
    uint64_t t = cmn_now_ns();
    rc = eng_decode(g->ctx, &tok, 1);
    L->res->stats.decode_ns += cmn_now_ns() - t;
    if (rc < 0)
        return set_err(err, err_len, rc, "generate: decoding token %llu (id %d) failed (%d)",
                       (unsigned long long)L->gen, (int)tok, rc);
    g->hist[g->n_hist++] = tok;
    return 0;
}

/* The end: whatever the detokenizer and the stop filter hold is real output unless a stop string
 * or a cancel ended the reply; the flushed tail may still complete a stop string. */
static enum eng_stop_reason flush_tail(struct token_loop *L, enum eng_stop_reason reason)
{
    if (reason == ENG_STOP_STRING || reason == ENG_STOP_CANCELLED)
        return reason;
    size_t n_piece = 0;
    if (eng_detok_flush(&L->dt, L->piece, L->cap_piece, &n_piece) == 0 && n_piece)
        eng_stop_filter_push(L->stop, L->piece, n_piece, sink_emit, L->sink);
    if (eng_stop_filter_flush(L->stop, sink_emit, L->sink) == 2 || L->sink->cancelled)
        reason = ENG_STOP_CANCELLED;
    if (L->stop->stopped && reason != ENG_STOP_CANCELLED)
        reason = ENG_STOP_STRING;
    return reason;
}

static void fill_result(struct token_loop *L, enum eng_stop_reason reason, size_t n_toks)
{
    struct eng_gen_result *res = L->res;
    res->reason = reason;
    res->stats.gen_tokens = L->gen;
    res->kv_used = eng_kv_used(L->g->ctx);
    /* The cache holds prompt + every delivered token when the last sampled token was an EOG
     * (never decoded, never shown) and nothing was held back or shifted away. */
    res->kv_matches_text = reason == ENG_STOP_EOG && res->stats.gen_tokens > 0 &&
                           res->kv_used == L->g->base + n_toks + (L->gen - 1) &&
                           L->g->n_hist == n_toks + (L->gen - 1);
}

/* The prompt goes into the KV cache after what keep_kv keeps, and into the sampler's penalty
 * window after the history; the first logits are then ready. */
static int prefill_prompt(struct gen *g, struct eng_sampler *smp, const int32_t *toks,
                          size_t n_toks, bool *cancel, char *err, size_t err_len)
{
    const struct eng_gen_params *p = g->p;
    if (p->keep_kv)
        for (size_t i = 0; i < p->n_history_tokens && p->history_tokens; i++)
            eng_sampler_accept(smp, p->history_tokens[i]);
    for (size_t i = 0; i < n_toks; i++)
        eng_sampler_accept(smp, toks[i]);
    int rc = prefill(g, toks, n_toks, &g->st->prefill_ns, cancel);
    if (rc < 0)
        return set_err(err, err_len, rc, "generate: prefill of %zu tokens failed (%d)", n_toks, rc);
    if (!*cancel && !eng_get_logits(g->ctx))
        return set_err(err, err_len, -EINVAL, "generate: no logits to sample from");
    return 0;
}

/* The stop-string filter and the sampler (*ret_stop and *ret_smp are the caller's to free, also
 * on failure). */
static int new_filters(const struct eng_gen_params *p, int32_t n_vocab,
                       struct eng_stop_filter **ret_stop, struct eng_sampler **ret_smp, char *err,
                       size_t err_len)
{
    struct eng_stop_filter *stop = *ret_stop = malloc(sizeof(*stop));
    if (!stop)
        return -ENOMEM;
    int rc = eng_stop_filter_init(stop, p->stop, p->n_stop);
    if (rc < 0)
        return set_err(err, err_len, rc, "generate: stop strings: at most %d, each 1 to %d bytes",
                       ENG_GEN_MAX_STOP, ENG_GEN_MAX_STOP_LEN - 1);
    return eng_sampler_new(n_vocab, &p->sampling, ret_smp, err, err_len);
}

/* The KV cache for this request: cleared unless keep_kv, and the prompt must fit behind what it
 * keeps. *ret_hist (the caller frees it) records the request's tokens in the cache. */
static int reserve_context(struct gen *g, size_t n_toks, int32_t **ret_hist, char *err,
                           size_t err_len)
{
    if (!g->p->keep_kv)
        eng_kv_clear(g->ctx);
    g->base = eng_kv_used(g->ctx);
    if (n_toks == 0 && g->base == 0)
        return set_err(err, err_len, -EINVAL,
                       "generate: the prompt is empty and the vocabulary adds no BOS token");
    if (g->base + n_toks > g->n_ctx)
        return set_err(err, err_len, -ENOSPC,
                       "generate: prompt of %zu tokens does not fit: context %u, %zu in use",
                       n_toks, g->n_ctx, g->base);
    *ret_hist = g->hist = malloc((size_t)g->n_ctx * sizeof(*g->hist));
    return g->hist ? 0 : -ENOMEM;
}

/* The matcher, the vocabulary index (the caller's, or one made here) and the mask buffer of a
 * grammar-constrained reply. */
struct grammar_run {
    struct eng_grammar_matcher *gm;
    struct eng_grammar_vocab *own_gv;
    const struct eng_grammar_vocab *gv;
    uint32_t *allow;
};

static int start_grammar(const struct eng_gen_params *p, const struct eng_vocab *vocab,
                         int32_t n_vocab, struct grammar_run *gr, char *err, size_t err_len)
{
    int rc;
    if (!gr->gv) {
        rc = eng_grammar_vocab_new(vocab, &gr->own_gv);
        if (rc < 0)
            return set_err(err, err_len, rc,
                           "generate: indexing the vocabulary for the grammar (%d)", rc);
        gr->gv = gr->own_gv;
    }
    if (eng_grammar_vocab_n_tokens(gr->gv) != n_vocab)
        return set_err(err, err_len, -EINVAL,
                       "generate: the grammar's vocabulary index has %d tokens, the model %d",
                       (int)eng_grammar_vocab_n_tokens(gr->gv), (int)n_vocab);
    rc = eng_grammar_matcher_new(p->grammar, &gr->gm);
    gr->allow = malloc(eng_grammar_mask_words(gr->gv) * sizeof(*gr->allow));
    if (rc < 0 || !gr->allow)
        return set_err(err, err_len, rc < 0 ? rc : -ENOMEM,
                       "generate: cannot start the grammar (%d)", rc);
    return 0;
}

/* The reply itself, once everything is in place: the prompt's prefill, then one token step
 * after another until a stop, then the result. */
static int run_reply(struct token_loop *L, const int32_t *toks, size_t n_toks, char *err,
                     size_t err_len)
{
    struct gen *g = L->g;
    int rc = prefill_prompt(g, L->smp, toks, n_toks, &L->cancel, err, err_len);
    if (rc < 0)
        return rc;
    eng_detok_init(&L->dt, L->vocab,
                   (g->p->special_text ? ENG_DETOK_SPECIAL : 0) |
                       (g->base == 0 && prompt_is_textless(L->vocab, toks, n_toks)
                            ? ENG_DETOK_STRIP_LEADING_SPACE
                            : 0));
    enum eng_stop_reason reason = ENG_STOP_NONE;
    while (reason == ENG_STOP_NONE) {
        rc = token_step(L, &reason, err, err_len);
        if (rc < 0)
            return rc;
    }
    fill_result(L, flush_tail(L, reason), n_toks);
    return 0;
}

int eng_generate(struct eng_context *ctx, const struct eng_vocab *vocab,
                 const struct eng_gen_params *p, struct eng_gen_result *res, char *err,
                 size_t err_len)
{
    struct eng_stop_filter *stop = NULL;
    struct eng_sampler *smp = NULL;
    struct grammar_run grammar = {.gv = p ? p->grammar_vocab : NULL};
    int32_t *toks = NULL, *hist = NULL;
    char *piece = NULL;
    size_t n_toks = 0;
    int rc;
    uint64_t t0 = cmn_now_ns();
    struct sink sink = {.p = p};
    struct gen g = {.ctx = ctx, .p = p, .st = &res->stats};
    bool processed = false;

    memset(res, 0, sizeof(*res));
    res->last_token = -1;
    if (!ctx || !vocab || !p)
        return set_err(err, err_len, -EINVAL, "generate: missing context, vocabulary or params");
    if (!p->prompt && !p->prompt_tokens && !p->keep_kv)
        return set_err(err, err_len, -EINVAL, "generate: no prompt (text or tokens)");
    int32_t n_vocab = eng_n_vocab(ctx);
    g.n_ctx = eng_n_ctx(ctx);

    rc = new_filters(p, n_vocab, &stop, &smp, err, err_len);
    if (rc == 0)
        rc = prompt_tokens(vocab, p, n_vocab, &toks, &n_toks, err, err_len);
    if (rc == 0 && p->grammar)
        rc = start_grammar(p, vocab, n_vocab, &grammar, err, err_len);
    if (rc == 0)
        rc = reserve_context(&g, n_toks, &hist, err, err_len);
    size_t cap_piece = eng_detok_max_out(vocab) + 8;
    if (rc == 0 && !(piece = malloc(cap_piece)))
        rc = -ENOMEM;
    if (rc < 0)
        goto fail;
    res->stats.prompt_tokens = n_toks;

    struct token_loop L = {.g = &g,
                           .vocab = vocab,
                           .smp = smp,
                           .stop = stop,
                           .sink = &sink,
                           .piece = piece,
                           .cap_piece = cap_piece,
                           .res = res,
                           .t0 = t0,
                           .gm = grammar.gm,
                           .gv = grammar.gv,
                           .allow = grammar.allow};
    processed = n_toks > 0;
    rc = run_reply(&L, toks, n_toks, err, err_len);

fail:
    res->stats.duration_ns = cmn_now_ns() - t0;
    if (rc == 0 || processed) {
        eng_notify_request_done(ctx, &res->stats);
        eng_notify_idle(ctx);
    }
    free(piece);
    free(hist);
    free(toks);
    free(grammar.allow);
    eng_grammar_matcher_free(grammar.gm);
    eng_grammar_vocab_free(grammar.own_gv);
    eng_sampler_free(smp);
    free(stop);
    return rc;
}
