/* Contexts and the forward pass of the llama family: RMSNorm, Q/K/V projections (+ qwen2
 * biases, + qwen3 per-head Q/K RMSNorm), RoPE (NORM or NEOX ordering), grouped-query causal
 * attention over an F16 (or F32) KV cache, output projection, SwiGLU feed-forward, residuals,
 * final norm and logits. A batch of tokens runs each weight matrix once for all of its tokens
 * (prefill); one token is a decode step. All buffers come from one arena sized at context
 * creation for n_batch tokens and n_ctx positions: nothing is allocated per token. Matrix
 * products and attention heads are split across the context's persistent thread pool. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "kernels.h"
#include "pack.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"

struct eng_context {
    const struct eng_model *m;
    const struct eng_kernels *k;
    struct eng_pool *pool;
    uint32_t n_ctx, n_batch;
    int logits_all;
    int kv_f32;
    size_t n_past;

    /* KV cache: [layer][position][n_head_kv * head_dim], F16 or F32 */
    void *k_cache, *v_cache;
    size_t kv_row_k, kv_row_v; /* elements per position */

    /* arena */
    void *arena;
    float *x, *xn, *q, *kk, *vv, *att, *tmp, *gate, *up, *scores, *logits;
    float *rope_cs;     /* per token of the batch: cos/sin of its RoPE angles (n_rot floats) */
    void *act_q;        /* activations converted to a vec_dot type */
    size_t act_q_row;   /* bytes per token row in act_q */
    float *act_d;       /* Q8_0 activations: block scales as floats (panel kernels) */
    int32_t *act_sum;   /* Q8_0 activations: block sums of quants (panel kernels) */
    size_t act_aux_row; /* entries per token row in act_d and act_sum */
    char *scratch;      /* per thread: one panel packed on the fly, then 8 x n_batch outputs */
    size_t scratch_pack, scratch_per_thread;
    size_t n_logits_rows;
    size_t n_out; /* rows of logits valid after the last decode */

    struct eng_observer obs;
    void *obs_user;
};

void eng_context_params_defaults(struct eng_context_params *p)
{
    memset(p, 0, sizeof(*p));
    p->n_batch = 256;
}

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static size_t act_row_bytes(const struct eng_weight *w)
{
    return eng_row_bytes(eng_type_traits(w->type)->vec_dot_type, w->ne0);
}

/* Largest per-token activation row in any vec_dot type the model's matrices use. */
static size_t max_act_row(const struct eng_model *m)
{
    size_t best = act_row_bytes(&m->output);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const struct eng_layer *L = &m->layers[l];
        const struct eng_weight *lw[] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                         &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(lw) / sizeof(lw[0]); i++) {
            size_t b = act_row_bytes(lw[i]);
            best = b > best ? b : best;
        }
    }
    return best;
}

/* Longest weight row in bytes (the panel packed on the fly holds 8 of them). */
static size_t max_weight_row(const struct eng_model *m)
{
    size_t best = m->output.row_bytes;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const struct eng_layer *L = &m->layers[l];
        const struct eng_weight *lw[] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                         &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(lw) / sizeof(lw[0]); i++)
            best = lw[i]->row_bytes > best ? lw[i]->row_bytes : best;
    }
    return best;
}

int eng_context_new(const struct eng_model *model, const struct eng_context_params *params,
                    struct eng_context **ret_ctx, char *err, size_t err_len)
{
    struct eng_context_params defaults;
    if (!params) {
        eng_context_params_defaults(&defaults);
        params = &defaults;
    }
    *ret_ctx = NULL;
    const struct eng_hparams *hp = &model->hp;
    if (!model->layers) {
        snprintf(err, err_len, "context: the model was loaded vocab-only");
        return -EINVAL;
    }
    struct eng_context *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int r;
    c->m = model;
    c->k = eng_kernels_best();
    c->n_ctx =
        params->n_ctx ? params->n_ctx : (uint32_t)(hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = params->n_batch ? params->n_batch : 256;
    if (c->n_ctx > (1u << 20) || c->n_batch > (1u << 16)) {
        snprintf(err, err_len,
                 "context: n_ctx %u (max 1048576) or n_batch %u (max 65536) too large", c->n_ctx,
                 c->n_batch);
        r = -EINVAL;
        goto fail;
    }
    if (c->n_batch > c->n_ctx)
        c->n_batch = c->n_ctx;
    c->logits_all = params->logits_all;
    c->kv_f32 = params->kv_f32;
    int n_threads = (int)params->n_threads;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 256)
        n_threads = 256;
    r = eng_pool_new(n_threads, &c->pool);
    if (r) {
        snprintf(err, err_len, "context: cannot start %d threads: %s", n_threads, strerror(-r));
        goto fail;
    }

    size_t nb = c->n_batch, es = c->kv_f32 ? 4 : 2;
    c->kv_row_k = (size_t)hp->n_head_kv * hp->head_dim_k;
    c->kv_row_v = (size_t)hp->n_head_kv * hp->head_dim_v;
    size_t kv_bytes_k = (size_t)hp->n_layer * c->n_ctx * c->kv_row_k * es;
    size_t kv_bytes_v = (size_t)hp->n_layer * c->n_ctx * c->kv_row_v * es;
    c->k_cache = calloc(1, kv_bytes_k);
    c->v_cache = calloc(1, kv_bytes_v);
    size_t qdim = (size_t)hp->n_head * hp->head_dim_k, odim = (size_t)hp->n_head * hp->head_dim_v;
    size_t tmp_w = (size_t)hp->n_embd > odim ? (size_t)hp->n_embd : odim;
    c->n_logits_rows = c->logits_all ? nb : 1;
    c->act_q_row = align_up(max_act_row(model));
    c->act_aux_row = c->act_q_row / sizeof(struct block_q8_0);
    c->scratch_pack = align_up(max_weight_row(model) * ENG_PANEL);
    c->scratch_per_thread = c->scratch_pack + align_up(nb * ENG_PANEL * sizeof(float));
    size_t sizes[] = {
        nb * hp->n_embd * 4,                        /* x */
        nb * hp->n_embd * 4,                        /* xn */
        nb * qdim * 4,                              /* q */
        nb * c->kv_row_k * 4,                       /* kk */
        nb * c->kv_row_v * 4,                       /* vv */
        nb * odim * 4,                              /* att */
        nb * tmp_w * 4,                             /* tmp */
        nb * (size_t)hp->n_ff * 4,                  /* gate */
        nb * (size_t)hp->n_ff * 4,                  /* up */
        (size_t)n_threads * c->n_ctx * 4,           /* scores */
        c->n_logits_rows * (size_t)hp->n_vocab * 4, /* logits */
        nb * c->act_q_row,                          /* act_q */
        nb * (size_t)hp->n_rot * 4,                 /* rope_cs */
        nb * c->act_aux_row * 4,                    /* act_d */
        nb * c->act_aux_row * 4,                    /* act_sum */
        (size_t)n_threads * c->scratch_per_thread,  /* scratch */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += align_up(sizes[i]);
    c->arena = aligned_alloc(64, total);
    if (!c->k_cache || !c->v_cache || !c->arena) {
        snprintf(err, err_len, "context: cannot allocate %zu MiB for n_ctx %u, n_batch %u",
                 (kv_bytes_k + kv_bytes_v + total) >> 20, c->n_ctx, c->n_batch);
        r = -ENOMEM;
        goto fail;
    }
    memset(c->arena, 0, total);
    char *p = c->arena;
    void **slots[] = {
        (void **)&c->x,       (void **)&c->xn,     (void **)&c->q,       (void **)&c->kk,
        (void **)&c->vv,      (void **)&c->att,    (void **)&c->tmp,     (void **)&c->gate,
        (void **)&c->up,      (void **)&c->scores, (void **)&c->logits,  &c->act_q,
        (void **)&c->rope_cs, (void **)&c->act_d,  (void **)&c->act_sum, (void **)&c->scratch};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        *slots[i] = p;
        p += align_up(sizes[i]);
    }
    *ret_ctx = c;
    return 0;
fail:
    eng_context_free(c);
    return r;
}

void eng_context_free(struct eng_context *c)
{
    if (!c)
        return;
    eng_pool_free(c->pool);
    free(c->k_cache);
    free(c->v_cache);
    free(c->arena);
    free(c);
}

uint32_t eng_n_ctx(const struct eng_context *c)
{
    return c->n_ctx;
}

int32_t eng_n_vocab(const struct eng_context *c)
{
    return c->m->hp.n_vocab;
}

size_t eng_kv_used(const struct eng_context *c)
{
    return c->n_past;
}

void eng_kv_clear(struct eng_context *c)
{
    c->n_past = 0;
    c->n_out = 0;
}

int eng_kv_trim(struct eng_context *c, size_t n_keep)
{
    if (n_keep > c->n_past)
        return -EINVAL;
    c->n_past = n_keep;
    return 0;
}

const float *eng_get_logits(const struct eng_context *c)
{
    if (!c->n_out)
        return NULL;
    return c->logits + (c->n_out - 1) * (size_t)c->m->hp.n_vocab;
}

const float *eng_get_logits_ith(const struct eng_context *c, size_t i)
{
    if (!c->logits_all || i >= c->n_out)
        return NULL;
    return c->logits + i * (size_t)c->m->hp.n_vocab;
}

/* ---- matrix products ---- */

/* Up to three matrices sharing one input (Q/K/V, gate/up). Their rows, taken back to back in
 * panels of 8, are cut into chunks of whole panels that the pool's threads claim one by one. */
struct matmul_job {
    const struct eng_context *c;
    int n_w;
    const struct eng_weight *w[3];
    float *y[3];
    int64_t panel_end[3]; /* cumulative panels */
    int64_t panels_per_chunk;
    struct eng_act act; /* input rows in the vec_dot type (+ Q8_0 scales and sums) */
    int n_tok;
};

/* Row-interleaved panels: packed ones straight from the weights, others (plain weights under
 * use_mmap, and the rows after a matrix's last full panel) packed on the fly into the thread's
 * scratch first. The kernel's arithmetic does not depend on which, so neither do the logits. */
static void matmul_panels(const struct matmul_job *j, const struct eng_weight *w, float *y,
                          int64_t p0, int64_t p1, int ith)
{
    const struct eng_context *c = j->c;
    eng_panel_fn fn = c->k->panel[w->type];
    size_t pb = w->row_bytes * ENG_PANEL;
    int64_t full = w->ne1 / ENG_PANEL;
    char *scratch = c->scratch + (size_t)ith * c->scratch_per_thread;
    float *ybuf = (float *)(scratch + c->scratch_pack);
    if (w->packed && p0 < full) {
        int64_t e = p1 < full ? p1 : full;
        fn(w->ne0, (const char *)w->data + (size_t)p0 * pb, (int)(e - p0), &j->act, j->n_tok,
           y + p0 * ENG_PANEL, (size_t)w->ne1);
        p0 = e;
    }
    for (int64_t p = p0; p < p1; p++) {
        int64_t r0 = p * ENG_PANEL, n_rows = w->ne1 - r0 < ENG_PANEL ? w->ne1 - r0 : ENG_PANEL;
        eng_pack_panel(w->type, w->ne0, (const char *)w->data + (size_t)r0 * w->row_bytes,
                       w->row_bytes, (int)n_rows, scratch);
        if (n_rows == ENG_PANEL) {
            fn(w->ne0, scratch, 1, &j->act, j->n_tok, y + r0, (size_t)w->ne1);
            continue;
        }
        fn(w->ne0, scratch, 1, &j->act, j->n_tok, ybuf, ENG_PANEL);
        for (int t = 0; t < j->n_tok; t++)
            memcpy(y + (size_t)t * w->ne1 + r0, ybuf + (size_t)t * ENG_PANEL,
                   (size_t)n_rows * sizeof(float));
    }
}

/* Types without a packed layout (none of the types read today; every kernel table has panel
 * kernels for them): per weight row against four tokens at a time
 * where the kernel set has a four-token variant, else one dot product per token. */
static void matmul_rows(const struct matmul_job *j, const struct eng_weight *w, float *y,
                        int64_t r0, int64_t r1)
{
    eng_vec_dot_fn dot = j->c->k->dot[w->type];
    eng_dot_x4_fn x4 = j->c->k->dot_x4[w->type];
    const char *wd = w->data, *act = j->act.q;
    size_t ar = j->act.row_bytes;
    int64_t rows = w->ne1;
    int t0 = 0;
    for (; x4 && t0 + 4 <= j->n_tok; t0 += 4)
        for (int64_t r = r0; r < r1; r++) {
            float o[4];
            x4((int)w->ne0, wd + (size_t)r * w->row_bytes, act + (size_t)t0 * ar, ar, NULL, 0, o);
            for (int k = 0; k < 4; k++)
                y[(size_t)(t0 + k) * rows + r] = o[k];
        }
    for (int t = t0; t < j->n_tok; t++)
        for (int64_t r = r0; r < r1; r++)
            y[(size_t)t * rows + r] =
                dot((int)w->ne0, wd + (size_t)r * w->row_bytes, act + (size_t)t * ar);
}

static void matmul_chunk(void *arg, int chunk, int ith)
{
    const struct matmul_job *j = arg;
    int64_t g0 = chunk * j->panels_per_chunk, g1 = g0 + j->panels_per_chunk;
    int64_t base = 0;
    for (int wi = 0; wi < j->n_w; base = j->panel_end[wi], wi++) {
        int64_t p0 = g0 > base ? g0 - base : 0;
        int64_t p1 = (g1 < j->panel_end[wi] ? g1 : j->panel_end[wi]) - base;
        if (p0 >= p1)
            continue;
        const struct eng_weight *w = j->w[wi];
        if (j->c->k->panel[w->type]) {
            matmul_panels(j, w, j->y[wi], p0, p1, ith);
        } else {
            int64_t r1 = p1 * ENG_PANEL < w->ne1 ? p1 * ENG_PANEL : w->ne1;
            matmul_rows(j, w, j->y[wi], p0 * ENG_PANEL, r1);
        }
    }
}

/* y_i[t][:] = W_i x[t] for the n_w matrices (all with x's width as ne0). */
static void matmul(struct eng_context *c, int n_w, const struct eng_weight *const *w,
                   float *const *y, const float *x, int n_tok)
{
    int64_t n_in = w[0]->ne0;
    uint32_t vt = eng_type_traits(w[0]->type)->vec_dot_type;
    struct matmul_job j = {.c = c, .n_w = n_w, .n_tok = n_tok};
    int64_t total = 0;
    for (int i = 0; i < n_w; i++) {
        j.w[i] = w[i];
        j.y[i] = y[i];
        total += (w[i]->ne1 + ENG_PANEL - 1) / ENG_PANEL;
        j.panel_end[i] = total;
    }
    if (vt == GGUF_TT_F32) {
        j.act.q = x;
        j.act.row_bytes = (size_t)n_in * sizeof(float);
    } else {
        eng_from_float_fn q = vt == GGUF_TT_Q8_0 ? c->k->quant_q8_0 : c->k->quant_q8_K;
        for (int t = 0; t < n_tok; t++)
            q(x + (size_t)t * n_in, (char *)c->act_q + (size_t)t * c->act_q_row, n_in);
        j.act.q = c->act_q;
        j.act.row_bytes = c->act_q_row;
        if (vt == GGUF_TT_Q8_0) {
            for (int t = 0; t < n_tok; t++)
                eng_act_q8_0_aux((const char *)c->act_q + (size_t)t * c->act_q_row, n_in,
                                 c->act_d + (size_t)t * c->act_aux_row,
                                 c->act_sum + (size_t)t * c->act_aux_row);
            j.act.d = c->act_d;
            j.act.sum = c->act_sum;
            j.act.aux_row = c->act_aux_row;
        }
    }
    /* about four chunks per thread balance a busy machine without much claiming traffic */
    int64_t want = (int64_t)eng_pool_size(c->pool) * 4;
    int64_t per = (total + want - 1) / want;
    j.panels_per_chunk = per;
    eng_pool_run(c->pool, matmul_chunk, &j, (int)((total + per - 1) / per));
}

static void matmul1(struct eng_context *c, const struct eng_weight *w, float *y, const float *x,
                    int n_tok)
{
    matmul(c, 1, &w, &y, x, n_tok);
}

/* Groups of matrices must share a vec_dot type to share the converted input. */
static int same_act(const struct eng_weight *a, const struct eng_weight *b)
{
    return eng_type_traits(a->type)->vec_dot_type == eng_type_traits(b->type)->vec_dot_type;
}

/* ---- attention ---- */

struct attn_job {
    struct eng_context *c;
    int layer, n_tok;
    size_t pos0;
};

/* One chunk is one (token, head) pair. */
static void attn_chunk(void *arg, int task, int ith)
{
    const struct attn_job *j = arg;
    struct eng_context *c = j->c;
    const struct eng_hparams *hp = &c->m->hp;
    int hdk = hp->head_dim_k, hdv = hp->head_dim_v, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hdk);
    float *scores = c->scores + (size_t)ith * c->n_ctx;
    size_t es = c->kv_f32 ? 4 : 2;
    const char *kc = (const char *)c->k_cache + (size_t)j->layer * c->n_ctx * c->kv_row_k * es;
    const char *vc = (const char *)c->v_cache + (size_t)j->layer * c->n_ctx * c->kv_row_v * es;
    eng_vec_dot_fn dot = c->k->dot[c->kv_f32 ? GGUF_TT_F32 : GGUF_TT_F16];
    int t = task / hp->n_head, h = task % hp->n_head, kvh = h / group;
    size_t n_pos = j->pos0 + (size_t)t + 1; /* causal: positions 0..pos0+t */
    const float *q = c->q + (size_t)t * hp->n_head * hdk + (size_t)h * hdk;
    if (c->kv_f32) {
        for (size_t p = 0; p < n_pos; p++) {
            const char *krow = kc + (p * c->kv_row_k + (size_t)kvh * hdk) * es;
            scores[p] = dot(hdk, krow, q) * scale;
        }
    } else {
        c->k->attn_scores_f16(hdk, (const eng_fp16 *)kc + (size_t)kvh * hdk, c->kv_row_k,
                              (int)n_pos, q, scale, scores);
    }
    c->k->softmax(scores, (int)n_pos);
    float *out = c->att + (size_t)t * hp->n_head * hdv + (size_t)h * hdv;
    if (c->kv_f32) {
        memset(out, 0, (size_t)hdv * sizeof(float));
        for (size_t p = 0; p < n_pos; p++) {
            const char *vrow = vc + (p * c->kv_row_v + (size_t)kvh * hdv) * es;
            c->k->axpy_f32(hdv, scores[p], (const float *)vrow, out);
        }
    } else {
        c->k->attn_values_f16(hdv, (const eng_fp16 *)vc + (size_t)kvh * hdv, c->kv_row_v,
                              (int)n_pos, scores, out);
    }
}

/* ---- one forward step over n_tok tokens at positions pos0.. ---- */

static void store_kv(struct eng_context *c, int layer, int n_tok)
{
    size_t es = c->kv_f32 ? 4 : 2;
    char *kc = (char *)c->k_cache + (size_t)layer * c->n_ctx * c->kv_row_k * es;
    char *vc = (char *)c->v_cache + (size_t)layer * c->n_ctx * c->kv_row_v * es;
    for (int t = 0; t < n_tok; t++) {
        size_t p = c->n_past + (size_t)t;
        const float *k = c->kk + (size_t)t * c->kv_row_k, *v = c->vv + (size_t)t * c->kv_row_v;
        if (c->kv_f32) {
            memcpy(kc + p * c->kv_row_k * es, k, c->kv_row_k * es);
            memcpy(vc + p * c->kv_row_v * es, v, c->kv_row_v * es);
        } else {
            c->k->f32_to_f16(k, (eng_fp16 *)(kc + p * c->kv_row_k * es), (int)c->kv_row_k);
            c->k->f32_to_f16(v, (eng_fp16 *)(vc + p * c->kv_row_v * es), (int)c->kv_row_v);
        }
    }
}

static void add_bias(float *y, const float *b, int n_tok, int n)
{
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n; i++)
            y[(size_t)t * n + i] += b[i];
}

static void forward(struct eng_context *c, const int32_t *tokens, int n_tok, int want_all)
{
    const struct eng_model *m = c->m;
    const struct eng_hparams *hp = &m->hp;
    int d = hp->n_embd, qdim = hp->n_head * hp->head_dim_k;
    int kdim = (int)c->kv_row_k, vdim = (int)c->kv_row_v;
    const struct eng_weight *te = &m->tok_embd;
    for (int t = 0; t < n_tok; t++) {
        if (te->packed)
            eng_pack_row_to_float(te->type, te->ne0, te->ne1, te->data, tokens[t],
                                  c->x + (size_t)t * d);
        else
            eng_type_traits(te->type)->to_float((const char *)te->data +
                                                    (size_t)tokens[t] * te->row_bytes,
                                                c->x + (size_t)t * d, d);
    }

    for (int t = 0; t < n_tok; t++)
        eng_rope_angles(c->rope_cs + (size_t)t * hp->n_rot, hp->n_rot, (int)(c->n_past + (size_t)t),
                        hp->rope_freq_base, hp->rope_freq_scale, m->rope_freqs);

    for (int l = 0; l < hp->n_layer; l++) {
        const struct eng_layer *L = &m->layers[l];
        for (int t = 0; t < n_tok; t++)
            eng_rmsnorm(c->xn + (size_t)t * d, c->x + (size_t)t * d, L->attn_norm, d, hp->eps);
        const struct eng_weight *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        float *yqkv[3] = {c->q, c->kk, c->vv};
        if (same_act(&L->wq, &L->wk) && same_act(&L->wq, &L->wv)) {
            matmul(c, 3, wqkv, yqkv, c->xn, n_tok);
        } else {
            for (int i = 0; i < 3; i++)
                matmul1(c, wqkv[i], yqkv[i], c->xn, n_tok);
        }
        if (L->bq) {
            add_bias(c->q, L->bq, n_tok, qdim);
            add_bias(c->kk, L->bk, n_tok, kdim);
            add_bias(c->vv, L->bv, n_tok, vdim);
        }
        for (int t = 0; t < n_tok; t++) {
            float *q = c->q + (size_t)t * qdim, *k = c->kk + (size_t)t * kdim;
            if (L->q_norm) {
                for (int h = 0; h < hp->n_head; h++)
                    eng_rmsnorm(q + (size_t)h * hp->head_dim_k, q + (size_t)h * hp->head_dim_k,
                                L->q_norm, hp->head_dim_k, hp->eps);
                for (int h = 0; h < hp->n_head_kv; h++)
                    eng_rmsnorm(k + (size_t)h * hp->head_dim_k, k + (size_t)h * hp->head_dim_k,
                                L->k_norm, hp->head_dim_k, hp->eps);
            }
            const float *cs = c->rope_cs + (size_t)t * hp->n_rot;
            eng_rope_apply(q, hp->n_head, hp->head_dim_k, hp->n_rot, cs, hp->rope_neox);
            eng_rope_apply(k, hp->n_head_kv, hp->head_dim_k, hp->n_rot, cs, hp->rope_neox);
        }
        store_kv(c, l, n_tok);
        struct attn_job aj = {.c = c, .layer = l, .n_tok = n_tok, .pos0 = c->n_past};
        eng_pool_run(c->pool, attn_chunk, &aj, n_tok * hp->n_head);
        matmul1(c, &L->wo, c->tmp, c->att, n_tok);
        for (size_t i = 0; i < (size_t)n_tok * d; i++)
            c->x[i] += c->tmp[i];

        for (int t = 0; t < n_tok; t++)
            eng_rmsnorm(c->xn + (size_t)t * d, c->x + (size_t)t * d, L->ffn_norm, d, hp->eps);
        const struct eng_weight *wgu[2] = {&L->w_gate, &L->w_up};
        float *ygu[2] = {c->gate, c->up};
        if (same_act(&L->w_gate, &L->w_up)) {
            matmul(c, 2, wgu, ygu, c->xn, n_tok);
        } else {
            matmul1(c, wgu[0], ygu[0], c->xn, n_tok);
            matmul1(c, wgu[1], ygu[1], c->xn, n_tok);
        }
        eng_swiglu(c->gate, c->gate, c->up, n_tok * hp->n_ff);
        matmul1(c, &L->w_down, c->tmp, c->gate, n_tok);
        for (size_t i = 0; i < (size_t)n_tok * d; i++)
            c->x[i] += c->tmp[i];
    }

    /* logits: every token's (logits_all) or the last one's */
    int first = want_all ? 0 : n_tok - 1, n_out = n_tok - first;
    for (int t = 0; t < n_out; t++)
        eng_rmsnorm(c->xn + (size_t)t * d, c->x + (size_t)(first + t) * d, m->output_norm, d,
                    hp->eps);
    matmul1(c, &m->output, c->logits + (want_all ? c->n_out : 0) * (size_t)hp->n_vocab, c->xn,
            n_out);
    c->n_out = want_all ? c->n_out + (size_t)n_out : 1;
    c->n_past += (size_t)n_tok;
}

int eng_decode(struct eng_context *c, const int32_t *tokens, size_t n_tokens)
{
    if (!c || !tokens || n_tokens == 0)
        return -EINVAL;
    if (n_tokens > c->n_ctx - c->n_past)
        return -ENOSPC;
    if (c->logits_all && n_tokens > c->n_logits_rows)
        return -E2BIG;
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab)
            return -EINVAL;
    int prefill = n_tokens > 1;
    uint64_t t0 = 0;
    if (prefill && c->obs.prefill_begin)
        c->obs.prefill_begin(c->obs_user, n_tokens);
    if (prefill)
        t0 = cmn_now_ns();
    c->n_out = 0;
    for (size_t done = 0; done < n_tokens;) {
        size_t n = n_tokens - done < c->n_batch ? n_tokens - done : c->n_batch;
        forward(c, tokens + done, (int)n, c->logits_all);
        done += n;
    }
    if (prefill && c->obs.prefill_end)
        c->obs.prefill_end(c->obs_user, n_tokens, cmn_now_ns() - t0);
    return 0;
}

/* ---- observer ---- */

void eng_set_observer(struct eng_context *c, const struct eng_observer *obs, void *user)
{
    if (obs)
        c->obs = *obs;
    else
        memset(&c->obs, 0, sizeof(c->obs));
    c->obs_user = user;
}

void eng_notify_token(struct eng_context *c, int32_t token)
{
    if (c->obs.token)
        c->obs.token(c->obs_user, token);
}

void eng_notify_idle(struct eng_context *c)
{
    if (c->obs.idle)
        c->obs.idle(c->obs_user);
}

void eng_notify_request_done(struct eng_context *c, const struct eng_request_stats *stats)
{
    if (c->obs.request_done)
        c->obs.request_done(c->obs_user, stats);
}

/* ---- banner ---- */

static char features_buf[160];
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void features_init(void)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{ENG_CPU_AVX2, "AVX2"},         {ENG_CPU_FMA, "FMA"},
                 {ENG_CPU_F16C, "F16C"},         {ENG_CPU_AVX512F, "AVX512F"},
                 {ENG_CPU_AVX512BW, "AVX512BW"}, {ENG_CPU_AVX512VL, "AVX512VL"},
                 {ENG_CPU_AVX512DQ, "AVX512DQ"}, {ENG_CPU_AVX512VNNI, "AVX512_VNNI"}};
    char *buf = features_buf;
    size_t n = 0;
    unsigned f = eng_cpu_features();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (f & names[i].bit)
            n += (size_t)snprintf(buf + n, sizeof(features_buf) - n, "%s%s", n ? " " : "",
                                  names[i].name);
    snprintf(buf + n, sizeof(features_buf) - n, "%skernels: %s", n ? "; " : "",
             eng_kernels_best()->name);
}

const char *eng_cpu_features_string(void)
{
    pthread_once(&features_once, features_init);
    return features_buf;
}
