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

int eng_generate(struct eng_context *ctx, const struct eng_vocab *vocab,
                 const struct eng_gen_params *p, struct eng_gen_result *res, char *err,
                 size_t err_len)
{
    struct eng_stop_filter *stop = NULL;
    struct eng_sampler *smp = NULL;
    struct eng_grammar_matcher *gm = NULL;
    struct eng_grammar_vocab *own_gv = NULL;
    const struct eng_grammar_vocab *gv = p ? p->grammar_vocab : NULL;
    uint32_t *allow = NULL;
    int32_t *toks = NULL, *hist = NULL;
    char *piece = NULL;
    size_t n_toks = 0;
    int rc;
    uint64_t t0 = cmn_now_ns();
    struct sink sink = {.p = p};
    struct gen g = {.ctx = ctx, .p = p, .st = &res->stats};
    bool processed = false, cancel = false;

    memset(res, 0, sizeof(*res));
    res->last_token = -1;
    if (!ctx || !vocab || !p)
        return set_err(err, err_len, -EINVAL, "generate: missing context, vocabulary or params");
    if (!p->prompt && !p->prompt_tokens && !p->keep_kv)
        return set_err(err, err_len, -EINVAL, "generate: no prompt (text or tokens)");
    int32_t n_vocab = eng_n_vocab(ctx);
    g.n_ctx = eng_n_ctx(ctx);

    stop = malloc(sizeof(*stop));
    if (!stop) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = eng_stop_filter_init(stop, p->stop, p->n_stop);
    if (rc < 0) {
        set_err(err, err_len, rc, "generate: stop strings: at most %d, each 1 to %d bytes",
                ENG_GEN_MAX_STOP, ENG_GEN_MAX_STOP_LEN - 1);
        goto fail;
    }
    rc = eng_sampler_new(n_vocab, &p->sampling, &smp, err, err_len);
    if (rc < 0)
        goto fail;
    if (p->grammar) {
        if (!gv) {
            rc = eng_grammar_vocab_new(vocab, &own_gv);
            if (rc < 0) {
                set_err(err, err_len, rc, "generate: indexing the vocabulary for the grammar (%d)",
                        rc);
                goto fail;
            }
            gv = own_gv;
        }
        if (eng_grammar_vocab_n_tokens(gv) != n_vocab) {
            rc = set_err(err, err_len, -EINVAL,
                         "generate: the grammar's vocabulary index has %d tokens, the model %d",
                         (int)eng_grammar_vocab_n_tokens(gv), (int)n_vocab);
            goto fail;
        }
        rc = eng_grammar_matcher_new(p->grammar, &gm);
        allow = malloc(eng_grammar_mask_words(gv) * sizeof(*allow));
        if (rc < 0 || !allow) {
            rc = set_err(err, err_len, rc < 0 ? rc : -ENOMEM,
                         "generate: cannot start the grammar (%d)", rc);
            goto fail;
        }
    }

    /* ---- the prompt as tokens ---- */
    if (p->prompt) {
        size_t len = p->prompt_len ? p->prompt_len : strlen(p->prompt);
        size_t cap = len + 8, n = 0;
        toks = malloc(cap * sizeof(*toks));
        if (!toks) {
            rc = -ENOMEM;
            goto fail;
        }
        rc = tokenize_prompt(vocab, p, len, toks, cap, &n);
        if (rc == -ENOSPC) {
            int32_t *bigger = realloc(toks, n * sizeof(*toks));
            if (!bigger) {
                rc = -ENOMEM;
                goto fail;
            }
            toks = bigger;
            cap = n;
            rc = tokenize_prompt(vocab, p, len, toks, cap, &n);
        }
        if (rc < 0) {
            set_err(err, err_len, rc, "generate: tokenizing the prompt failed (%d)", rc);
            goto fail;
        }
        n_toks = n;
    } else if (p->n_prompt_tokens) {
        toks = malloc(p->n_prompt_tokens * sizeof(*toks));
        if (!toks) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(toks, p->prompt_tokens, p->n_prompt_tokens * sizeof(*toks));
        n_toks = p->n_prompt_tokens;
    }
    for (size_t i = 0; i < n_toks; i++) {
        if (toks[i] < 0 || toks[i] >= n_vocab) {
            rc = set_err(err, err_len, -EINVAL, "generate: prompt token %zu: id %d outside [0, %d)",
                         i, (int)toks[i], (int)n_vocab);
            goto fail;
        }
    }

    if (!p->keep_kv)
        eng_kv_clear(ctx);
    g.base = eng_kv_used(ctx);
    if (n_toks == 0 && g.base == 0) {
        rc = set_err(err, err_len, -EINVAL,
                     "generate: the prompt is empty and the vocabulary adds no BOS token");
        goto fail;
    }
    if (g.base + n_toks > g.n_ctx) {
        rc = set_err(err, err_len, -ENOSPC,
                     "generate: prompt of %zu tokens does not fit: context %u, %zu in use", n_toks,
                     g.n_ctx, g.base);
        goto fail;
    }
    hist = malloc((size_t)g.n_ctx * sizeof(*hist));
    piece = malloc(eng_detok_max_out(vocab) + 8);
    if (!hist || !piece) {
        rc = -ENOMEM;
        goto fail;
    }
    g.hist = hist;
    res->stats.prompt_tokens = n_toks;

    /* ---- prefill ---- */
    if (p->keep_kv)
        for (size_t i = 0; i < p->n_history_tokens && p->history_tokens; i++)
            eng_sampler_accept(smp, p->history_tokens[i]);
    for (size_t i = 0; i < n_toks; i++)
        eng_sampler_accept(smp, toks[i]);
    processed = n_toks > 0;
    rc = prefill(&g, toks, n_toks, &g.st->prefill_ns, &cancel);
    if (rc < 0) {
        set_err(err, err_len, rc, "generate: prefill of %zu tokens failed (%d)", n_toks, rc);
        goto fail;
    }
    if (!cancel && !eng_get_logits(ctx)) {
        rc = set_err(err, err_len, -EINVAL, "generate: no logits to sample from");
        goto fail;
    }

    struct eng_detok dt;
    unsigned dflags = p->special_text ? ENG_DETOK_SPECIAL : 0;
    if (g.base == 0 && prompt_is_textless(vocab, toks, n_toks))
        dflags |= ENG_DETOK_STRIP_LEADING_SPACE;
    eng_detok_init(&dt, vocab, dflags);
    size_t cap_piece = eng_detok_max_out(vocab) + 8;

    /* ---- the token loop ---- */
    enum eng_stop_reason reason = ENG_STOP_NONE;
    uint64_t gen = 0;
    while (reason == ENG_STOP_NONE) {
        if (cancel || cancelled(&g)) {
            reason = ENG_STOP_CANCELLED;
            break;
        }
        if (p->max_tokens >= 0 && gen >= (uint64_t)p->max_tokens) {
            reason = ENG_STOP_MAX_TOKENS;
            break;
        }
        const uint32_t *mask = NULL;
        if (gm) {
            int32_t n_allowed = eng_grammar_mask(gm, gv, allow);
            if (n_allowed < 0) {
                rc = set_err(err, err_len, n_allowed, "generate: grammar mask failed (%d)",
                             (int)n_allowed);
                goto fail;
            }
            if (n_allowed == 0 && eng_grammar_matcher_accepts(gm)) {
                reason = ENG_STOP_EOG; /* complete, and the vocabulary has no EOG token */
                break;
            }
            if (n_allowed == 0) {
                rc = set_err(err, err_len, -EINVAL,
                             "generate: no token of the vocabulary can continue the grammar "
                             "after %llu tokens",
                             (unsigned long long)gen);
                goto fail;
            }
            mask = allow;
        }
        int32_t tok = eng_sampler_sample_masked(smp, eng_get_logits(ctx), mask);
        if (tok < 0 && gm) {
            rc = set_err(err, err_len, -EINVAL,
                         "generate: every token the grammar allows after %llu tokens has an "
                         "infinite or NaN logit",
                         (unsigned long long)gen);
            goto fail;
        }
        if (gm && eng_grammar_matcher_accept_token(gm, gv, tok) < 0) {
            rc = set_err(err, err_len, -EINVAL, "generate: token %d does not continue the grammar",
                         (int)tok);
            goto fail;
        }
        if (tok < 0) {
            rc = set_err(err, err_len, -EINVAL,
                         "generate: the logits after %zu tokens hold no finite value",
                         g.base + g.n_hist);
            goto fail;
        }
        gen++;
        if (gen == 1)
            res->stats.ttft_ns = cmn_now_ns() - t0;
        res->last_token = tok;
        eng_sampler_accept(smp, tok);
        eng_notify_token(ctx, tok);
        if (!p->ignore_eog && eng_token_is_eog(vocab, tok)) {
            reason = ENG_STOP_EOG;
            break;
        }
        size_t n_piece = 0;
        rc = eng_detok_push(&dt, tok, piece, cap_piece, &n_piece);
        if (rc < 0) {
            set_err(err, err_len, rc, "generate: detokenizing token %d failed (%d)", (int)tok, rc);
            goto fail;
        }
        int fr = eng_stop_filter_push(stop, piece, n_piece, sink_emit, &sink);
        if (fr == 1) {
            reason = ENG_STOP_STRING;
            break;
        }
        if (fr == 2) {
            reason = ENG_STOP_CANCELLED;
            break;
        }
        if (p->max_tokens >= 0 && gen >= (uint64_t)p->max_tokens) {
            reason = ENG_STOP_MAX_TOKENS; /* no need to decode a token nobody will follow */
            break;
        }
        if (g.base + g.n_hist >= g.n_ctx) {
            if (p->ctx_full != ENG_CTX_FULL_SHIFT) {
                reason = ENG_STOP_CTX_FULL;
                break;
            }
            rc = shift(&g, &cancel);
            if (rc == 1) {
                reason = ENG_STOP_CTX_FULL;
                break;
            }
            if (rc < 0) {
                set_err(err, err_len, rc, "generate: context shift failed (%d)", rc);
                goto fail;
            }
            res->kv_matches_text = false;
            if (cancel)
                continue;
        }
        uint64_t t = cmn_now_ns();
        rc = eng_decode(ctx, &tok, 1);
        res->stats.decode_ns += cmn_now_ns() - t;
        if (rc < 0) {
            set_err(err, err_len, rc, "generate: decoding token %llu (id %d) failed (%d)",
                    (unsigned long long)gen, (int)tok, rc);
            goto fail;
        }
        g.hist[g.n_hist++] = tok;
    }

    /* ---- the end: whatever is held is real output unless a stop string or cancel ---- */
    if (reason != ENG_STOP_STRING && reason != ENG_STOP_CANCELLED) {
        size_t n_piece = 0;
        if (eng_detok_flush(&dt, piece, cap_piece, &n_piece) == 0 && n_piece)
            eng_stop_filter_push(stop, piece, n_piece, sink_emit, &sink);
        if (eng_stop_filter_flush(stop, sink_emit, &sink) == 2 || sink.cancelled)
            reason = ENG_STOP_CANCELLED;
        if (stop->stopped && reason != ENG_STOP_CANCELLED)
            reason = ENG_STOP_STRING; /* the flushed tail completed a stop string */
    }
    res->reason = reason;
    res->stats.gen_tokens = gen;
    res->kv_used = eng_kv_used(ctx);
    /* The cache holds prompt + every delivered token when the last sampled token was an EOG
     * (never decoded, never shown) and nothing was held back or shifted away. */
    res->kv_matches_text = reason == ENG_STOP_EOG && res->stats.gen_tokens > 0 &&
                           res->kv_used == g.base + n_toks + (gen - 1) &&
                           g.n_hist == n_toks + (gen - 1);
    rc = 0;

fail:
    res->stats.duration_ns = cmn_now_ns() - t0;
    if (rc == 0 || processed) {
        eng_notify_request_done(ctx, &res->stats);
        eng_notify_idle(ctx);
    }
    free(piece);
    free(hist);
    free(toks);
    free(allow);
    eng_grammar_matcher_free(gm);
    eng_grammar_vocab_free(own_gv);
    eng_sampler_free(smp);
    free(stop);
    return rc;
}
