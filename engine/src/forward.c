/* Contexts and the CPU backend of the forward graph (graph.h): each op kind has one function
 * here, run in graph order over the n_tok tokens of a step (prefill: a batch; decode: one).
 * RMSNorm, matrix products (+ qwen2 biases), qwen3 per-head Q/K RMSNorm, RoPE (NORM or NEOX
 * ordering), grouped-query causal attention over an F16 (or F32) KV cache, SwiGLU, residuals,
 * final norm and logits. Activations live in one arena laid out by the graph's memory plan at
 * context creation for n_batch tokens and n_ctx positions: nothing is allocated per token.
 * Matrix products and attention heads are split across the context's persistent thread pool. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "act_observer.h"
#include "common/timeutil.h"
#include "graph.h"
#include "kernels.h"
#include "pack.h"
#include "model.h"
#include "quant.h"
#include "threadpool.h"

/* attention: positions per key/value block, query tokens per task (see attn_chunk) */
#define ATT_BLOCK 256
#define ATT_TQ    4

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

    /* the fused graph and the statistics of its unfused form (eng_graph_stats) */
    struct eng_graph g;
    struct eng_graph_stats gstats;

    /* arena: the graph's activations (planned), then fixed scratch */
    void *arena;
    char *act;              /* planned activation tensors */
    float *scores, *logits; /* scores: per thread, the attention workspace (attn_ws_floats) */
    size_t attn_ws_floats;
    float *rope_cs;     /* per token of the batch: cos/sin of its RoPE angles (n_rot floats) */
    float *row_tmp;     /* per thread: one input row after its fused transform (RMSNorm,
                         * SwiGLU), row_w floats each */
    size_t row_w;       /* floats per thread in row_tmp */
    void *act_q;        /* activations converted to a vec_dot type */
    size_t act_q_row;   /* bytes per token row in act_q */
    float *act_d;       /* Q8_0 activations: block scales as floats (panel kernels) */
    int32_t *act_sum;   /* Q8_0 activations: block sums of quants (panel kernels) */
    size_t act_aux_row; /* entries per token row in act_d and act_sum */
    char *scratch;      /* per thread: one panel packed on the fly, then 32 x n_batch outputs */
    size_t scratch_pack, scratch_per_thread;
    size_t n_logits_rows;
    size_t n_out; /* rows of logits valid after the last decode */

    /* the step being run */
    const int32_t *step_tokens;
    int step_n_tok, step_first, step_n_out, step_want_all;

    struct eng_observer obs;
    void *obs_user;
    eng_act_observer_fn act_obs; /* calibration (act_observer.h); NULL normally */
    void *act_obs_user;
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
    if (c->n_ctx > ENG_N_CTX_MAX || c->n_batch > ENG_N_BATCH_MAX) {
        snprintf(err, err_len, "context: n_ctx %u (max %u) or n_batch %u (max %u) too large",
                 c->n_ctx, ENG_N_CTX_MAX, c->n_batch, ENG_N_BATCH_MAX);
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
    c->n_logits_rows = c->logits_all ? nb : 1;
    c->act_q_row = align_up(max_act_row(model));
    c->act_aux_row = c->act_q_row / sizeof(struct block_q8_0);
    c->scratch_pack = align_up(max_weight_row(model) * ENG_PANEL);
    c->scratch_per_thread = c->scratch_pack + align_up(nb * 4 * ENG_PANEL * sizeof(float));
    c->attn_ws_floats =
        align_up((ATT_TQ * ATT_BLOCK + (ATT_TQ + 1) * (size_t)hp->head_dim_v) * 4) / 4;
    size_t row_w = (size_t)(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd);
    size_t odim = (size_t)hp->n_head * hp->head_dim_v;
    row_w = row_w > odim ? row_w : odim;
    c->row_w = row_w;

    /* the graph: built, measured unfused, fused, planned for n_batch tokens */
    if ((r = eng_graph_build(model, &c->g)) || (r = eng_graph_plan(&c->g, nb))) {
        snprintf(err, err_len, "context: cannot build the compute graph");
        goto fail;
    }
    c->gstats.ops_unfused = c->g.n_ops;
    c->gstats.tensors_unfused = eng_graph_live_tensors(&c->g);
    c->gstats.act_bytes_unfused = c->g.peak;
    if (!params->no_fusion)
        eng_graph_fuse(&c->g);
    if ((r = eng_graph_plan(&c->g, nb))) {
        snprintf(err, err_len, "context: cannot plan the compute graph");
        goto fail;
    }
    c->gstats.ops_fused = c->g.n_ops;
    c->gstats.tensors_fused = eng_graph_live_tensors(&c->g);
    c->gstats.act_bytes_fused = c->g.peak;

    size_t sizes[] = {
        c->g.peak,                                  /* planned activations */
        (size_t)n_threads * c->attn_ws_floats * 4,  /* scores */
        c->n_logits_rows * (size_t)hp->n_vocab * 4, /* logits */
        nb * c->act_q_row,                          /* act_q */
        nb * (size_t)hp->n_rot * 4,                 /* rope_cs */
        (size_t)n_threads * row_w * 4,              /* row_tmp */
        nb * c->act_aux_row * 4,                    /* act_d */
        nb * c->act_aux_row * 4,                    /* act_sum */
        (size_t)n_threads * c->scratch_per_thread,  /* scratch */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += align_up(sizes[i]);
    c->gstats.scratch_bytes = total - align_up(c->g.peak);
    c->arena = aligned_alloc(64, total);
    if (!c->k_cache || !c->v_cache || !c->arena) {
        snprintf(err, err_len, "context: cannot allocate %zu MiB for n_ctx %u, n_batch %u",
                 (kv_bytes_k + kv_bytes_v + total) >> 20, c->n_ctx, c->n_batch);
        r = -ENOMEM;
        goto fail;
    }
    memset(c->arena, 0, total);
    char *p = c->arena;
    void **slots[] = {(void **)&c->act,   (void **)&c->scores,  (void **)&c->logits,
                      &c->act_q,          (void **)&c->rope_cs, (void **)&c->row_tmp,
                      (void **)&c->act_d, (void **)&c->act_sum, (void **)&c->scratch};
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
    eng_graph_free(&c->g);
    free(c->k_cache);
    free(c->v_cache);
    free(c->arena);
    free(c);
}

int eng_context_set_threads(struct eng_context *c, uint32_t n_threads, uint64_t cpu_mask, char *err,
                            size_t err_len)
{
    int max = eng_pool_size(c->pool);
    if (n_threads > (uint32_t)max) {
        snprintf(err, err_len,
                 "engine threads: %u asked, the context was made with %d (the ceiling)", n_threads,
                 max);
        return -EINVAL;
    }
    return eng_pool_configure(c->pool, n_threads ? (int)n_threads : max, cpu_mask, err, err_len);
}

void eng_context_threads(const struct eng_context *c, uint32_t *n_threads, uint64_t *cpu_mask,
                         uint32_t *max_threads)
{
    if (n_threads)
        *n_threads = (uint32_t)eng_pool_active(c->pool);
    if (cpu_mask)
        *cpu_mask = eng_pool_cpu_mask(c->pool);
    if (max_threads)
        *max_threads = (uint32_t)eng_pool_size(c->pool);
}

void eng_graph_stats(const struct eng_context *c, struct eng_graph_stats *ret)
{
    *ret = c->gstats;
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

static float *tensor(const struct eng_context *c, int id)
{
    return (float *)(c->act + c->g.t[id].offset);
}

/* Up to three matrices sharing one input (Q/K/V, gate/up). Their rows, taken back to back in
 * panels of 8, are cut into chunks of whole panels that the pool's threads claim one by one. */
struct matmul_job {
    const struct eng_context *c;
    const struct eng_op *op;
    int n_w;
    const struct eng_weight *w[ENG_GRAPH_MAX_W];
    float *y[ENG_GRAPH_MAX_W];
    const float *bias[ENG_GRAPH_MAX_W]; /* ENG_MM_POST_BIAS, else NULL */
    int add;                            /* ENG_MM_POST_ADD */
    int64_t panel_end[ENG_GRAPH_MAX_W]; /* cumulative panels */
    int64_t panels_per_chunk;
    struct eng_act act; /* input rows in the vec_dot type (+ Q8_0 scales and sums) */
    int n_tok;
};

/* Results of rows [r0, r0 + n_rows) for every token, computed into buf (ldb floats between
 * tokens), land in y with the fused post-ops: + bias, then stored or added to the stream. The
 * additions are the same float operations the unfused ops would do. */
static void emit(const struct matmul_job *j, int wi, const float *buf, size_t ldb, int64_t r0,
                 int64_t n_rows)
{
    int64_t rows = j->w[wi]->ne1;
    const float *b = j->bias[wi];
    for (int t = 0; t < j->n_tok; t++) {
        float *yt = j->y[wi] + (size_t)t * rows + r0;
        const float *bt = buf + (size_t)t * ldb;
        for (int64_t r = 0; r < n_rows; r++) {
            float v = bt[r];
            if (b)
                v = v + b[r0 + r];
            yt[r] = j->add ? yt[r] + v : v;
        }
    }
}

/* Row-interleaved panels: packed ones straight from the weights, others (plain weights under
 * use_mmap, and the rows after a matrix's last full panel) packed on the fly into the thread's
 * scratch first. The kernel's arithmetic does not depend on which, so neither do the logits. */
static void matmul_panels(const struct matmul_job *j, int wi, int64_t p0, int64_t p1, int ith)
{
    const struct eng_context *c = j->c;
    const struct eng_weight *w = j->w[wi];
    float *y = j->y[wi];
    eng_panel_fn fn = c->k->panel[w->type];
    size_t pb = w->row_bytes * ENG_PANEL;
    int64_t full = w->ne1 / ENG_PANEL;
    int post = j->bias[wi] || j->add;
    char *scratch = c->scratch + (size_t)ith * c->scratch_per_thread;
    float *ybuf = (float *)(scratch + c->scratch_pack); /* 4 panels x n_tok outputs */
    while (w->packed && p0 < full && p0 < p1) {
        int64_t e = p1 < full ? p1 : full;
        if (!post) {
            fn(w->ne0, (const char *)w->data + (size_t)p0 * pb, (int)(e - p0), &j->act, j->n_tok,
               y + p0 * ENG_PANEL, (size_t)w->ne1);
            p0 = e;
            break;
        }
        e = e - p0 > 4 ? p0 + 4 : e;
        fn(w->ne0, (const char *)w->data + (size_t)p0 * pb, (int)(e - p0), &j->act, j->n_tok, ybuf,
           4 * ENG_PANEL);
        emit(j, wi, ybuf, 4 * ENG_PANEL, p0 * ENG_PANEL, (e - p0) * ENG_PANEL);
        p0 = e;
    }
    /* plain quantized rows for a token or few: the row dots share the panels' arithmetic
     * (pack.h), so they read the rows where they lie instead of packing each panel */
    eng_vec_dot_fn dot = c->k->dot[w->type];
    if (p0 < p1 && j->n_tok < 4 && (w->type == GGUF_TT_Q8_0 || w->type == GGUF_TT_Q4_0)) {
        size_t ar = j->act.row_bytes;
        for (int64_t p = p0; p < p1; p++) {
            int64_t r0 = p * ENG_PANEL, n_rows = w->ne1 - r0 < ENG_PANEL ? w->ne1 - r0 : ENG_PANEL;
            for (int t = 0; t < j->n_tok; t++)
                for (int64_t r = 0; r < n_rows; r++)
                    ybuf[(size_t)t * ENG_PANEL + r] =
                        dot((int)w->ne0, (const char *)w->data + (size_t)(r0 + r) * w->row_bytes,
                            (const char *)j->act.q + (size_t)t * ar);
            emit(j, wi, ybuf, ENG_PANEL, r0, n_rows);
        }
        return;
    }
    for (int64_t p = p0; p < p1; p++) {
        int64_t r0 = p * ENG_PANEL, n_rows = w->ne1 - r0 < ENG_PANEL ? w->ne1 - r0 : ENG_PANEL;
        eng_pack_panel(w->type, w->ne0, (const char *)w->data + (size_t)r0 * w->row_bytes,
                       w->row_bytes, (int)n_rows, scratch);
        if (n_rows == ENG_PANEL && !post) {
            fn(w->ne0, scratch, 1, &j->act, j->n_tok, y + r0, (size_t)w->ne1);
            continue;
        }
        fn(w->ne0, scratch, 1, &j->act, j->n_tok, ybuf, ENG_PANEL);
        emit(j, wi, ybuf, ENG_PANEL, r0, n_rows);
    }
}

/* Types without a packed layout (none of the types read today; every kernel table has panel
 * kernels for them): per weight row against four tokens at a time
 * where the kernel set has a four-token variant, else one dot product per token. */
static void matmul_rows(const struct matmul_job *j, int wi, int64_t r0, int64_t r1, int ith)
{
    const struct eng_weight *w = j->w[wi];
    eng_vec_dot_fn dot = j->c->k->dot[w->type];
    eng_dot_x4_fn x4 = j->c->k->dot_x4[w->type];
    const char *wd = w->data, *act = j->act.q;
    size_t ar = j->act.row_bytes;
    float *ybuf = (float *)(j->c->scratch + (size_t)ith * j->c->scratch_per_thread +
                            j->c->scratch_pack); /* rows of 8 x n_tok outputs */
    for (int64_t rb = r0; rb < r1; rb += ENG_PANEL) {
        int64_t n_rows = r1 - rb < ENG_PANEL ? r1 - rb : ENG_PANEL;
        int t0 = 0;
        for (; x4 && t0 + 4 <= j->n_tok; t0 += 4)
            for (int64_t r = 0; r < n_rows; r++) {
                float o[4];
                x4((int)w->ne0, wd + (size_t)(rb + r) * w->row_bytes, act + (size_t)t0 * ar, ar,
                   NULL, 0, o);
                for (int k = 0; k < 4; k++)
                    ybuf[(size_t)(t0 + k) * ENG_PANEL + r] = o[k];
            }
        for (int t = t0; t < j->n_tok; t++)
            for (int64_t r = 0; r < n_rows; r++)
                ybuf[(size_t)t * ENG_PANEL + r] =
                    dot((int)w->ne0, wd + (size_t)(rb + r) * w->row_bytes, act + (size_t)t * ar);
        emit(j, wi, ybuf, ENG_PANEL, rb, n_rows);
    }
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
            matmul_panels(j, wi, p0, p1, ith);
        } else {
            int64_t r1 = p1 * ENG_PANEL < w->ne1 ? p1 * ENG_PANEL : w->ne1;
            matmul_rows(j, wi, p0 * ENG_PANEL, r1, ith);
        }
    }
}

/* Rows of the op's input, after its fused transform (RMSNorm or SwiGLU), converted into the
 * weights' vec_dot type. A float input without a transform is read where it lies. With several
 * tokens the rows are converted by the pool's threads (a serial SwiGLU of a prompt costs a
 * second thread ~10% of its time); each row's arithmetic is the same whoever does it. */
struct input_job {
    struct eng_context *c;
    const struct eng_op *op;
    const float *src, *src2;
    int64_t n_in;
    uint32_t vt;
    int toks_per_chunk, n_tok;
};

static void input_rows(void *arg, int chunk, int ith)
{
    const struct input_job *j = arg;
    struct eng_context *c = j->c;
    const struct eng_op *op = j->op;
    eng_from_float_fn q = j->vt == GGUF_TT_Q8_0 ? c->k->quant_q8_0 : c->k->quant_q8_K;
    float *tmp = c->row_tmp + (size_t)ith * c->row_w;
    int t1 =
        (chunk + 1) * j->toks_per_chunk < j->n_tok ? (chunk + 1) * j->toks_per_chunk : j->n_tok;
    for (int t = chunk * j->toks_per_chunk; t < t1; t++) {
        const float *row = j->src + (size_t)t * j->n_in;
        char *dst = (char *)c->act_q + (size_t)t * c->act_q_row;
        float *tr = j->vt == GGUF_TT_F32 ? (float *)dst : tmp;
        if (op->flags & ENG_MM_PRE_NORM) {
            eng_rmsnorm(tr, row, op->vec_norm, (int)j->n_in, c->m->hp.eps);
            row = tr;
        } else if (op->flags & ENG_MM_PRE_SWIGLU) {
            eng_swiglu(tr, row, j->src2 + (size_t)t * j->n_in, (int)j->n_in);
            row = tr;
        }
        if (j->vt != GGUF_TT_F32)
            q(row, dst, j->n_in);
        if (j->vt == GGUF_TT_Q8_0)
            eng_act_q8_0_aux(dst, j->n_in, c->act_d + (size_t)t * c->act_aux_row,
                             c->act_sum + (size_t)t * c->act_aux_row);
    }
}

/* Shows the op's input rows, transformed as its kernels will see them, to the calibration
 * observer (serially, on the calling thread: calibration runs are small). */
static void observe_input(struct eng_context *c, const struct eng_op *op, const float *src,
                          const float *src2, int n_tok, int64_t n_in)
{
    float *tmp = c->row_tmp;
    for (int t = 0; t < n_tok; t++) {
        const float *row = src + (size_t)t * n_in;
        if (op->flags & ENG_MM_PRE_NORM) {
            eng_rmsnorm(tmp, row, op->vec_norm, (int)n_in, c->m->hp.eps);
            row = tmp;
        } else if (op->flags & ENG_MM_PRE_SWIGLU) {
            eng_swiglu(tmp, row, src2 + (size_t)t * n_in, (int)n_in);
            row = tmp;
        }
        for (int i = 0; i < op->n_w; i++)
            c->act_obs(c->act_obs_user, op->w[i]->data, row, n_in);
    }
}

void eng_context_set_act_observer(struct eng_context *ctx, eng_act_observer_fn fn, void *user)
{
    ctx->act_obs = fn;
    ctx->act_obs_user = user;
}

static void matmul_input(struct eng_context *c, const struct eng_op *op, int n_tok, int row0,
                         struct eng_act *act)
{
    struct input_job j = {.c = c, .op = op, .n_tok = n_tok};
    j.n_in = op->w[0]->ne0;
    j.vt = eng_type_traits(op->w[0]->type)->vec_dot_type;
    j.src = tensor(c, op->in) + (size_t)row0 * j.n_in;
    j.src2 = op->in2 >= 0 ? tensor(c, op->in2) : NULL;
    int transform = op->flags & (ENG_MM_PRE_NORM | ENG_MM_PRE_SWIGLU);
    if (c->act_obs)
        observe_input(c, op, j.src, j.src2, n_tok, j.n_in);
    memset(act, 0, sizeof(*act));
    if (j.vt == GGUF_TT_F32 && !transform) {
        act->q = j.src;
        act->row_bytes = (size_t)j.n_in * sizeof(float);
        return;
    }
    int n_chunks = eng_pool_active(c->pool) * 2;
    if (n_chunks > n_tok)
        n_chunks = n_tok > 0 ? n_tok : 1;
    j.toks_per_chunk = (n_tok + n_chunks - 1) / n_chunks;
    n_chunks = (n_tok + j.toks_per_chunk - 1) / j.toks_per_chunk;
    if (n_chunks > 1)
        eng_pool_run(c->pool, input_rows, &j, n_chunks);
    else
        input_rows(&j, 0, 0);
    act->q = c->act_q;
    act->row_bytes = c->act_q_row;
    if (j.vt == GGUF_TT_Q8_0) {
        act->d = c->act_d;
        act->sum = c->act_sum;
        act->aux_row = c->act_aux_row;
    }
}

static void op_matmul(struct eng_context *c, const struct eng_op *op)
{
    const struct eng_hparams *hp = &c->m->hp;
    int last = op->flags & ENG_MM_LAST_ROWS;
    int n_tok = last ? c->step_n_out : c->step_n_tok;
    int row0 = last && op->in == c->g.x ? c->step_first : 0;
    struct matmul_job j = {.c = c, .op = op, .n_w = op->n_w, .n_tok = n_tok};
    j.add = (op->flags & ENG_MM_POST_ADD) != 0;
    int64_t total = 0;
    for (int i = 0; i < op->n_w; i++) {
        j.w[i] = op->w[i];
        j.y[i] = op->flags & ENG_MM_TO_LOGITS
                     ? c->logits + (c->step_want_all ? c->n_out : 0) * (size_t)hp->n_vocab
                     : tensor(c, op->out[i]);
        j.bias[i] = op->flags & ENG_MM_POST_BIAS ? op->vec[i] : NULL;
        total += (op->w[i]->ne1 + ENG_PANEL - 1) / ENG_PANEL;
        j.panel_end[i] = total;
    }
    matmul_input(c, op, n_tok, row0, &j.act);
    /* about four chunks per thread balance a busy machine without much claiming traffic */
    int64_t want = (int64_t)eng_pool_active(c->pool) * 4;
    int64_t per = (total + want - 1) / want;
    j.panels_per_chunk = per;
    eng_pool_run(c->pool, matmul_chunk, &j, (int)((total + per - 1) / per));
}

/* ---- attention ---- */

/* Flash-style: keys and values are visited in blocks of ATT_BLOCK positions with an online
 * softmax (running max and sum per query, earlier partial sums rescaled when the max grows), so
 * no score row of the whole context is kept; a task is one head and up to ATT_TQ query tokens,
 * which share each key/value block while it is in cache. Blocks start at absolute positions, so
 * a token's result is the same in any batch. */
struct attn_job {
    struct eng_context *c;
    int layer, n_tok, n_groups;
    size_t pos0;
    const float *q;
    float *out;
};

static void attn_chunk(void *arg, int task, int ith)
{
    const struct attn_job *j = arg;
    struct eng_context *c = j->c;
    const struct eng_hparams *hp = &c->m->hp;
    int hdk = hp->head_dim_k, hdv = hp->head_dim_v, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hdk);
    size_t es = c->kv_f32 ? 4 : 2;
    const char *kc = (const char *)c->k_cache + (size_t)j->layer * c->n_ctx * c->kv_row_k * es;
    const char *vc = (const char *)c->v_cache + (size_t)j->layer * c->n_ctx * c->kv_row_v * es;
    eng_vec_dot_fn dot = c->k->dot[GGUF_TT_F32];
    int h = task / j->n_groups, t0 = task % j->n_groups * ATT_TQ, kvh = h / group;
    int nt = j->n_tok - t0 < ATT_TQ ? j->n_tok - t0 : ATT_TQ;
    float *sc = c->scores + (size_t)ith * c->attn_ws_floats;
    float *acc = sc + ATT_TQ * ATT_BLOCK, *part = acc + (size_t)ATT_TQ * hdv;
    float m[ATT_TQ], l[ATT_TQ];
    for (int i = 0; i < nt; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
    }
    memset(acc, 0, sizeof(float) * (size_t)nt * hdv);
    size_t end = j->pos0 + (size_t)t0 + (size_t)nt; /* the last query sees positions < end */
    for (size_t p0 = 0; p0 < end; p0 += ATT_BLOCK) {
        const char *kb = kc + (p0 * c->kv_row_k + (size_t)kvh * hdk) * es;
        const char *vb = vc + (p0 * c->kv_row_v + (size_t)kvh * hdv) * es;
        for (int i = 0; i < nt; i++) {
            size_t n_pos = j->pos0 + (size_t)(t0 + i) + 1; /* causal: positions < n_pos */
            if (p0 >= n_pos)
                continue;
            int nb = n_pos - p0 < ATT_BLOCK ? (int)(n_pos - p0) : ATT_BLOCK;
            const float *q = j->q + ((size_t)(t0 + i) * hp->n_head + (size_t)h) * hdk;
            float *s = sc + (size_t)i * ATT_BLOCK;
            if (c->kv_f32) {
                for (int p = 0; p < nb; p++)
                    s[p] = dot(hdk, kb + (size_t)p * c->kv_row_k * es, q) * scale;
            } else {
                c->k->attn_scores_f16(hdk, (const eng_fp16 *)kb, c->kv_row_k, nb, q, scale, s);
            }
            float mb = s[0];
            for (int p = 1; p < nb; p++)
                mb = s[p] > mb ? s[p] : mb;
            float mn = mb > m[i] ? mb : m[i];
            float alpha = expf(m[i] - mn); /* 0 on the first block */
            l[i] = l[i] * alpha + c->k->exp_sum(s, nb, mn);
            m[i] = mn;
            if (c->kv_f32) {
                memset(part, 0, sizeof(float) * (size_t)hdv);
                for (int p = 0; p < nb; p++)
                    c->k->axpy_f32(hdv, s[p], (const float *)(vb + (size_t)p * c->kv_row_v * es),
                                   part);
            } else {
                c->k->attn_values_f16(hdv, (const eng_fp16 *)vb, c->kv_row_v, nb, s, part);
            }
            float *a = acc + (size_t)i * hdv;
            for (int d = 0; d < hdv; d++)
                a[d] = a[d] * alpha + part[d];
        }
    }
    for (int i = 0; i < nt; i++) {
        float inv = 1.0f / l[i], *a = acc + (size_t)i * hdv;
        float *out = j->out + ((size_t)(t0 + i) * hp->n_head + (size_t)h) * hdv;
        for (int d = 0; d < hdv; d++)
            out[d] = a[d] * inv;
    }
}

static void op_attention(struct eng_context *c, const struct eng_op *op)
{
    int n_groups = (c->step_n_tok + ATT_TQ - 1) / ATT_TQ;
    struct attn_job aj = {.c = c,
                          .layer = op->layer,
                          .n_tok = c->step_n_tok,
                          .n_groups = n_groups,
                          .pos0 = c->n_past,
                          .q = tensor(c, op->in),
                          .out = tensor(c, op->out[0])};
    eng_pool_run(c->pool, attn_chunk, &aj, n_groups * c->m->hp.n_head);
}

/* ---- the other ops ---- */

static void op_embed(struct eng_context *c, const struct eng_op *op)
{
    const struct eng_weight *te = &c->m->tok_embd;
    int d = c->m->hp.n_embd;
    float *x = tensor(c, op->out[0]);
    for (int t = 0; t < c->step_n_tok; t++) {
        int32_t id = c->step_tokens[t];
        if (te->packed)
            eng_pack_row_to_float(te->type, te->ne0, te->ne1, te->data, id, x + (size_t)t * d);
        else
            eng_type_traits(te->type)->to_float((const char *)te->data + (size_t)id * te->row_bytes,
                                                x + (size_t)t * d, d);
    }
}

static void op_rmsnorm(struct eng_context *c, const struct eng_op *op)
{
    int d = (int)c->g.t[op->out[0]].width;
    int last = op->flags & ENG_MM_LAST_ROWS;
    int n = last ? c->step_n_out : c->step_n_tok;
    int row0 = last && op->in == c->g.x ? c->step_first : 0;
    const float *x = tensor(c, op->in) + (size_t)row0 * d;
    float *y = tensor(c, op->out[0]);
    for (int t = 0; t < n; t++)
        eng_rmsnorm(y + (size_t)t * d, x + (size_t)t * d, op->vec[0], d, c->m->hp.eps);
}

static void op_add_bias(struct eng_context *c, const struct eng_op *op)
{
    int64_t n = c->g.t[op->out[0]].width;
    float *y = tensor(c, op->out[0]);
    for (int t = 0; t < c->step_n_tok; t++)
        for (int64_t i = 0; i < n; i++)
            y[(size_t)t * n + i] = y[(size_t)t * n + i] + op->vec[0][i];
}

static void op_add(struct eng_context *c, const struct eng_op *op)
{
    size_t n = (size_t)c->g.t[op->out[0]].width * (size_t)c->step_n_tok;
    float *y = tensor(c, op->out[0]);
    const float *x = tensor(c, op->in);
    for (size_t i = 0; i < n; i++)
        y[i] = y[i] + x[i];
}

static void op_head_norm(struct eng_context *c, const struct eng_op *op)
{
    const struct eng_hparams *hp = &c->m->hp;
    int hd = hp->head_dim_k;
    for (int which = 0; which < 2; which++) {
        int heads = which ? hp->n_head_kv : hp->n_head;
        float *v = tensor(c, op->out[which]);
        for (int t = 0; t < c->step_n_tok; t++)
            for (int h = 0; h < heads; h++) {
                float *p = v + ((size_t)t * heads + (size_t)h) * hd;
                eng_rmsnorm(p, p, op->vec[which], hd, hp->eps);
            }
    }
}

static void rope_rows(struct eng_context *c, float *x, int n_heads)
{
    const struct eng_hparams *hp = &c->m->hp;
    size_t w = (size_t)n_heads * hp->head_dim_k;
    for (int t = 0; t < c->step_n_tok; t++)
        eng_rope_apply(x + (size_t)t * w, n_heads, hp->head_dim_k, hp->n_rot,
                       c->rope_cs + (size_t)t * hp->n_rot, hp->rope_neox);
}

static void op_rope(struct eng_context *c, const struct eng_op *op)
{
    rope_rows(c, tensor(c, op->out[0]), op->n_heads);
}

static void store_kv(struct eng_context *c, int layer, const float *kk, const float *vv)
{
    size_t es = c->kv_f32 ? 4 : 2;
    char *kc = (char *)c->k_cache + (size_t)layer * c->n_ctx * c->kv_row_k * es;
    char *vc = (char *)c->v_cache + (size_t)layer * c->n_ctx * c->kv_row_v * es;
    for (int t = 0; t < c->step_n_tok; t++) {
        size_t p = c->n_past + (size_t)t;
        const float *k = kk + (size_t)t * c->kv_row_k, *v = vv + (size_t)t * c->kv_row_v;
        if (c->kv_f32) {
            memcpy(kc + p * c->kv_row_k * es, k, c->kv_row_k * es);
            memcpy(vc + p * c->kv_row_v * es, v, c->kv_row_v * es);
        } else {
            c->k->f32_to_f16(k, (eng_fp16 *)(kc + p * c->kv_row_k * es), (int)c->kv_row_k);
            c->k->f32_to_f16(v, (eng_fp16 *)(vc + p * c->kv_row_v * es), (int)c->kv_row_v);
        }
    }
}

static void op_store_kv(struct eng_context *c, const struct eng_op *op)
{
    store_kv(c, op->layer, tensor(c, op->in), tensor(c, op->in2));
}

static void op_rope_kv(struct eng_context *c, const struct eng_op *op)
{
    rope_rows(c, tensor(c, op->out[0]), op->n_heads);
    rope_rows(c, tensor(c, op->in), c->m->hp.n_head_kv);
    store_kv(c, op->layer, tensor(c, op->in), tensor(c, op->in2));
}

static void op_swiglu(struct eng_context *c, const struct eng_op *op)
{
    int n = (int)c->g.t[op->out[0]].width * c->step_n_tok;
    eng_swiglu(tensor(c, op->out[0]), tensor(c, op->in), tensor(c, op->in2), n);
}

/* The CPU backend: one function per op kind. */
typedef void (*op_fn)(struct eng_context *c, const struct eng_op *op);
static const op_fn cpu_ops[ENG_OP_KIND_COUNT] = {
    [ENG_OP_EMBED] = op_embed,         [ENG_OP_RMSNORM] = op_rmsnorm,
    [ENG_OP_MATMUL] = op_matmul,       [ENG_OP_ADD_BIAS] = op_add_bias,
    [ENG_OP_HEAD_NORM] = op_head_norm, [ENG_OP_ROPE] = op_rope,
    [ENG_OP_STORE_KV] = op_store_kv,   [ENG_OP_ROPE_KV] = op_rope_kv,
    [ENG_OP_ATTENTION] = op_attention, [ENG_OP_ADD] = op_add,
    [ENG_OP_SWIGLU] = op_swiglu,
};

/* ---- one forward step over n_tok tokens at positions n_past.. ---- */

static void forward(struct eng_context *c, const int32_t *tokens, int n_tok, int want_all)
{
    const struct eng_hparams *hp = &c->m->hp;
    c->step_tokens = tokens;
    c->step_n_tok = n_tok;
    c->step_want_all = want_all;
    c->step_first = want_all ? 0 : n_tok - 1; /* logits of every token (logits_all) or the last */
    c->step_n_out = n_tok - c->step_first;
    for (int t = 0; t < n_tok; t++)
        eng_rope_angles(c->rope_cs + (size_t)t * hp->n_rot, hp->n_rot, (int)(c->n_past + (size_t)t),
                        hp->rope_freq_base, hp->rope_freq_scale, c->m->rope_freqs);
    for (int i = 0; i < c->g.n_ops; i++)
        cpu_ops[c->g.ops[i].kind](c, &c->g.ops[i]);
    c->n_out = want_all ? c->n_out + (size_t)c->step_n_out : 1;
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
    } names[] = {{ENG_CPU_AVX2, "AVX2"},
                 {ENG_CPU_FMA, "FMA"},
                 {ENG_CPU_F16C, "F16C"},
                 {ENG_CPU_AVX512F, "AVX512F"},
                 {ENG_CPU_AVX512BW, "AVX512BW"},
                 {ENG_CPU_AVX512VL, "AVX512VL"},
                 {ENG_CPU_AVX512DQ, "AVX512DQ"},
                 {ENG_CPU_AVX512VNNI, "AVX512_VNNI"},
                 /* AArch64, named as /proc/cpuinfo's Features line does */
                 {ENG_CPU_ASIMD, "asimd"},
                 {ENG_CPU_ASIMDDP, "asimddp"},
                 {ENG_CPU_FPHP, "fphp"},
                 {ENG_CPU_ASIMDHP, "asimdhp"}};
    char *buf = features_buf;
    size_t n = 0;
    unsigned f = eng_cpu_features();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (f & names[i].bit)
            n += (size_t)snprintf(buf + n, sizeof(features_buf) - n, "%s%s", n ? " " : "",
                                  names[i].name);
    const struct eng_kernels *k = eng_kernels_best();
    if (k->int8_dot)
        n += (size_t)snprintf(buf + n, sizeof(features_buf) - n, "%s%s int8: %s", n ? "; " : "",
                              k->name, k->int8_dot);
    snprintf(buf + n, sizeof(features_buf) - n, "%skernels: %s", n ? "; " : "", k->name);
}

const char *eng_cpu_features_string(void)
{
    pthread_once(&features_once, features_init);
    return features_buf;
}
