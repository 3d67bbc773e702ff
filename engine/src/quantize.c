/* eng_quantize (engine/quantize.h): checks the input, decides every tensor's output type (one
 * type, or the mixed plan from measured sensitivity under a bits-per-weight budget), and streams
 * the output through the GGUF writer into a temporary file beside the destination, which is
 * synced and renamed into place only when complete. Rows are converted on a thread pool. */
#include "engine/quantize.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "quantize_blocks.h"
#include "quantize_internal.h"
#include "threadpool.h"

#define QZ_DEFAULT_BPW    5.0
#define QZ_SENS_MAX_ROWS  256 /* rows sampled per matrix to measure sensitivity */
#define QZ_ROWS_PER_CHUNK 16

/* Output types by name, with ggml's general.file_type number for a file mostly of that type. */
static const struct {
    const char *name;
    uint32_t type;
    uint32_t ftype;
} qz_types[] = {
    {"F32", GGUF_TT_F32, 0},    {"F16", GGUF_TT_F16, 1},    {"BF16", GGUF_TT_BF16, 32},
    {"Q8_0", GGUF_TT_Q8_0, 7},  {"Q4_0", GGUF_TT_Q4_0, 2},  {"Q4_K", GGUF_TT_Q4_K, 15},
    {"Q5_K", GGUF_TT_Q5_K, 17}, {"Q6_K", GGUF_TT_Q6_K, 18},
};

/* Candidates of the mixed plan, cheapest first. */
static const uint32_t mixed_candidates[] = {GGUF_TT_Q4_0, GGUF_TT_Q4_K, GGUF_TT_Q5_K,
                                            GGUF_TT_Q6_K, GGUF_TT_Q8_0, GGUF_TT_F16};

void eng_quantize_params_defaults(struct eng_quantize_params *p)
{
    memset(p, 0, sizeof(*p));
    p->type = "mixed";
}

static double type_bpw(uint32_t type)
{
    return 8.0 * gguf_type_block_bytes(type) / gguf_type_block_size(type);
}

static int is_float_type(uint32_t t)
{
    return t == GGUF_TT_F32 || t == GGUF_TT_F16 || t == GGUF_TT_BF16;
}

static int64_t n_elements(const struct gguf_tensor *t)
{
    int64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        n *= t->ne[d];
    return n;
}

static int64_t n_rows(const struct gguf_tensor *t)
{
    return n_elements(t) / t->ne[0];
}

static int fits(uint32_t type, const struct gguf_tensor *t)
{
    return t->ne[0] % gguf_type_block_size(type) == 0;
}

/* The float type a matrix whose rows fit no block becomes: BF16 stays BF16 (its range), all
 * else F16, as llama.cpp's final fallback does. */
static uint32_t float_fallback(uint32_t in_type)
{
    return in_type == GGUF_TT_BF16 ? GGUF_TT_BF16 : GGUF_TT_F16;
}

/* For a K type (256-value blocks), the 32-value block type a matrix whose rows are not a
 * multiple of 256 gets instead, before falling back to a float type: Q4_0 for Q4_K (same size),
 * Q8_0 for Q5_K and Q6_K (the engine has no 5- or 6-bit 32-value type; not below in accuracy). */
static uint32_t block32_fallback(uint32_t type)
{
    switch (type) {
    case GGUF_TT_Q4_K:
        return GGUF_TT_Q4_0;
    case GGUF_TT_Q5_K:
    case GGUF_TT_Q6_K:
        return GGUF_TT_Q8_0;
    default:
        return type;
    }
}

/* ---- llama-quantize's default mixture ----
 * Without --pure, llama-quantize does not give every matrix the type asked for: the matrices
 * that matter most get more bits (llama.cpp src/llama-quant.cpp, llama_tensor_get_type). For
 * the types ember makes and a dense model without an importance matrix its rules are:
 *  - the output projection (output.weight, or token_embd.weight when there is no output.weight
 *    and the embedding is tied) becomes Q8_0 when its rows are not a multiple of 256, else Q6_K
 *    (a Q8_0 one stays Q8_0);
 *  - for Q4_K and Q5_K (llama-quantize's Q4_K_M and Q5_K_M), attn_v.weight and ffn_down.weight
 *    of the layers use_more_bits picks (the first and last eighth of the layers and every
 *    third one between) become Q6_K, and a fused attn_qkv.weight becomes Q5_K (Q4_K) or Q6_K
 *    (Q5_K);
 * then a type whose block does not fit the rows falls back as with --pure (below). llama.cpp
 * counts the layers in the order its loader sorts tensors (by the blk.N number), which is the
 * N parsed here. Its rules for MoE, Falcon and 70B models and for the types ember does not make
 * (Q2_K, Q3_K, IQ*) are not reproduced; nor is Q4_1 for Q4_0's first ffn_down layers, which it
 * applies only with an importance matrix and which ember cannot compute. */
static int use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

static int name_has(const char *name, const char *part)
{
    return strstr(name, part) != NULL;
}

/* blk.N. of a tensor name, -1 when it has none. */
static int layer_of(const char *name)
{
    int n = -1;
    if (sscanf(name, "blk.%d.", &n) != 1)
        return -1;
    return n;
}

/* Counts of the matrices the rules index by layer, and whether there is an output.weight. */
struct mixture_counts {
    int n_attn_v, n_ffn_down, has_output;
};

static void count_mixture(const struct qz *q, struct mixture_counts *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < q->n; i++) {
        const char *name = q->ts[i].t->name;
        c->n_attn_v += name_has(name, "attn_v.weight");
        c->n_ffn_down += name_has(name, "ffn_down");
        c->has_output |= strcmp(name, "output.weight") == 0;
    }
}

/* The type llama-quantize's default mixture gives matrix t for --type single (before the
 * fallback for rows that do not fit), and the rule that decided it (NULL: the type itself). */
static uint32_t mixture_type(const struct gguf_tensor *t, uint32_t single,
                             const struct mixture_counts *c, const char **why)
{
    const char *name = t->name;
    int km = single == GGUF_TT_Q4_K || single == GGUF_TT_Q5_K;
    *why = NULL;
    if (strcmp(name, "output.weight") == 0 ||
        (!c->has_output && strcmp(name, "token_embd.weight") == 0)) {
        if (t->ne[0] % 256 != 0) {
            *why = "output projection: Q8_0 (rows do not fit 256)";
            return GGUF_TT_Q8_0;
        }
        if (single != GGUF_TT_Q8_0) {
            *why = "output projection: Q6_K";
            return GGUF_TT_Q6_K;
        }
        return single;
    }
    if (km && name_has(name, "attn_v.weight") && use_more_bits(layer_of(name), c->n_attn_v)) {
        *why = "attn_v of a layer given more bits";
        return GGUF_TT_Q6_K;
    }
    if (km && name_has(name, "ffn_down") && use_more_bits(layer_of(name), c->n_ffn_down)) {
        *why = "ffn_down of a layer given more bits";
        return GGUF_TT_Q6_K;
    }
    if (km && name_has(name, "attn_qkv.weight")) {
        *why = "fused attn_qkv";
        return single == GGUF_TT_Q4_K ? GGUF_TT_Q5_K : GGUF_TT_Q6_K;
    }
    return single;
}

/* F16 input rows are converted through a 65536-entry table: the scalar conversion would take
 * half of a Q4_0 run's time (the SIMD kernels are not reachable from here). */
static float *f16_lut;
static pthread_once_t f16_lut_once = PTHREAD_ONCE_INIT;

static void f16_lut_init(void)
{
    float *t = malloc(65536 * sizeof(float));
    if (!t)
        return;
    for (uint32_t h = 0; h < 65536; h++)
        t[h] = eng_fp16_to_fp32((eng_fp16)h);
    f16_lut = t;
}

static void f16_row_to_float(const void *x, float *y, int64_t n)
{
    const eng_fp16 *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = f16_lut[h[i]];
}

/* The row converter of an input type. */
static eng_to_float_fn input_to_float(uint32_t type)
{
    if (type == GGUF_TT_F16) {
        pthread_once(&f16_lut_once, f16_lut_init);
        if (f16_lut)
            return f16_row_to_float;
    }
    return eng_type_traits(type)->to_float;
}

/* ---- thread pool jobs ---- */

struct row_job {
    const struct gguf_tensor *t;
    const float *imp;
    uint32_t out_type;
    eng_qz_row_fn qfn;
    eng_to_float_fn to_float;
    size_t in_row, out_row;
    uint8_t *out;
    float *tmp; /* per thread: ne0 floats */
    int64_t rows;
    /* sensitivity: sampled rows only, errors summed per chunk */
    int64_t row_step;
    float *deq;      /* per thread: ne0 floats */
    double *err_sum; /* per chunk */
    double *sig_sum;
};

/* Converts rows [chunk * QZ_ROWS_PER_CHUNK, ...) of the tensor into out. */
static void rows_chunk(void *arg, int chunk, int ith)
{
    struct row_job *j = arg;
    int64_t ne0 = j->t->ne[0];
    float *tmp = j->tmp + (size_t)ith * (size_t)ne0;
    int64_t r1 = (int64_t)(chunk + 1) * QZ_ROWS_PER_CHUNK;
    if (r1 > j->rows)
        r1 = j->rows;
    for (int64_t r = (int64_t)chunk * QZ_ROWS_PER_CHUNK; r < r1; r++) {
        j->to_float((const uint8_t *)j->t->data + (size_t)r * j->in_row, tmp, ne0);
        j->qfn(tmp, j->out + (size_t)r * j->out_row, ne0, j->imp);
    }
}

/* Sensitivity of one sampled row group: importance-weighted squared error and energy. */
static void sens_chunk(void *arg, int chunk, int ith)
{
    struct row_job *j = arg;
    int64_t ne0 = j->t->ne[0];
    float *tmp = j->tmp + (size_t)ith * (size_t)ne0, *deq = j->deq + (size_t)ith * (size_t)ne0;
    uint8_t *qbuf = j->out + (size_t)ith * j->out_row;
    const struct eng_type_traits *tr = eng_type_traits(j->out_type);
    double err = 0, sig = 0;
    int64_t r = (int64_t)chunk * j->row_step;
    j->to_float((const uint8_t *)j->t->data + (size_t)r * j->in_row, tmp, ne0);
    j->qfn(tmp, qbuf, ne0, j->imp);
    tr->to_float(qbuf, deq, ne0);
    for (int64_t k = 0; k < ne0; k++) {
        double w = j->imp ? j->imp[k] : 1.0, e = (double)tmp[k] - (double)deq[k];
        err += w * e * e;
        sig += w * (double)tmp[k] * (double)tmp[k];
    }
    j->err_sum[chunk] = err;
    j->sig_sum[chunk] = sig;
}

static int progress(struct qz *q, const char *stage, float f)
{
    if (q->p->progress && q->p->progress(stage, f, q->p->progress_user))
        return -ECANCELED;
    return 0;
}

/* Relative error of every candidate for every matrix (the mixed plan's input). */
static int measure(struct qz *q, struct eng_pool *pool)
{
    int n_th = eng_pool_size(pool), r = 0;
    int n_weights = 0, done = 0;
    for (int i = 0; i < q->n; i++)
        n_weights += q->ts[i].is_weight;
    for (int i = 0; i < q->n; i++) {
        struct qz_tensor *qt = &q->ts[i];
        for (int c = 0; c < GGUF_TT_COUNT; c++)
            qt->rel[c] = qt->err[c] = -1;
        if (!qt->is_weight)
            continue;
        const struct gguf_tensor *t = qt->t;
        int64_t rows = n_rows(t), step = rows > QZ_SENS_MAX_ROWS ? rows / QZ_SENS_MAX_ROWS : 1;
        int n_chunks = (int)(rows / step);
        struct row_job j = {.t = t, .imp = qt->imp, .rows = rows, .row_step = step};
        j.to_float = input_to_float(t->type);
        j.in_row = eng_row_bytes(t->type, t->ne[0]);
        j.tmp = malloc((size_t)n_th * (size_t)t->ne[0] * sizeof(float));
        j.deq = malloc((size_t)n_th * (size_t)t->ne[0] * sizeof(float));
        j.err_sum = malloc((size_t)n_chunks * sizeof(double));
        j.sig_sum = malloc((size_t)n_chunks * sizeof(double));
        j.out = malloc((size_t)n_th * (size_t)t->ne[0] * sizeof(float));
        if (!j.tmp || !j.deq || !j.err_sum || !j.sig_sum || !j.out)
            r = -ENOMEM;
        for (size_t c = 0; !r && c < sizeof(mixed_candidates) / sizeof(mixed_candidates[0]); c++) {
            uint32_t ty = mixed_candidates[c];
            if (!fits(ty, t))
                continue;
            j.out_type = ty;
            j.qfn = eng_qz_row_fn_of(ty);
            j.out_row = eng_row_bytes(ty, t->ne[0]);
            eng_pool_run(pool, sens_chunk, &j, n_chunks);
            double err = 0, sig = 0;
            for (int k = 0; k < n_chunks; k++) {
                err += j.err_sum[k];
                sig += j.sig_sum[k];
            }
            qt->rel[ty] = qt->err[ty] = sig > 0 ? err / sig : 0;
        }
        free(j.tmp);
        free(j.deq);
        free(j.err_sum);
        free(j.sig_sum);
        free(j.out);
        if (r)
            return r;
        if ((r = progress(q, "measuring", (float)++done / (float)n_weights)))
            return r;
    }
    return 0;
}

/* Greedy choice under the budget: every matrix starts at its cheapest candidate; then, while
 * the budget allows, the single upgrade (any matrix, any dearer candidate) with the largest
 * error removed per added bit is applied. The error of a matrix is its relative output error
 * (noise-to-signal ratio), so each matrix counts by how much of its own signal it loses. */
static void plan_mixed(struct qz *q, double budget_bits, double fixed_bits, double *ret_min_bits)
{
    double bits = fixed_bits;
    for (int i = 0; i < q->n; i++) {
        struct qz_tensor *qt = &q->ts[i];
        if (!qt->is_weight)
            continue;
        double n = (double)n_elements(qt->t);
        qt->out_type = float_fallback(qt->t->type);
        qt->why = "rows do not fit a block";
        for (size_t c = 0; c < sizeof(mixed_candidates) / sizeof(mixed_candidates[0]); c++) {
            if (qt->err[mixed_candidates[c]] >= 0) {
                qt->out_type = mixed_candidates[c];
                /* F16 as the cheapest candidate: no block type fits the rows */
                qt->why = is_float_type(qt->out_type) ? "rows do not fit a block" : "plan";
                break;
            }
        }
        bits += n * type_bpw(qt->out_type);
    }
    *ret_min_bits = bits;
    for (;;) {
        int best_i = -1;
        uint32_t best_ty = 0;
        double best_gain = 0, best_cost = 0;
        for (int i = 0; i < q->n; i++) {
            struct qz_tensor *qt = &q->ts[i];
            if (!qt->is_weight || strcmp(qt->why, "plan") != 0)
                continue;
            double n = (double)n_elements(qt->t), cur = qt->err[qt->out_type];
            for (size_t c = 0; c < sizeof(mixed_candidates) / sizeof(mixed_candidates[0]); c++) {
                uint32_t ty = mixed_candidates[c];
                double cost = n * (type_bpw(ty) - type_bpw(qt->out_type));
                if (qt->err[ty] < 0 || cost <= 0 || bits + cost > budget_bits)
                    continue;
                double gain = (cur - qt->err[ty]) / cost;
                if (gain > best_gain) {
                    best_gain = gain;
                    best_i = i;
                    best_ty = ty;
                    best_cost = cost;
                }
            }
        }
        if (best_i < 0)
            break;
        q->ts[best_i].out_type = best_ty;
        bits += best_cost;
    }
    for (int i = 0; i < q->n; i++)
        if (q->ts[i].is_weight && q->ts[i].rel[q->ts[i].out_type] >= 0)
            q->ts[i].rel_err = q->ts[i].rel[q->ts[i].out_type];
}

/* Turns each matrix's relative errors into predicted output damage: the end-to-end probe
 * measured the KL divergence its cheapest block type causes, and noise power (the relative
 * error) is taken to scale that proportionally for the other candidates. Matrices of
 * different roles then compete on what they do to the output, not on their own noise. */
static int weigh_by_probes(struct qz *q, const char *in_path)
{
    int any = 0;
    for (int i = 0; i < q->n; i++) {
        struct qz_tensor *qt = &q->ts[i];
        qt->probe_type = 0;
        qt->probe_kl = -1;
        if (!qt->is_weight || !is_float_type(qt->t->type))
            continue;
        for (size_t c = 0; c < sizeof(mixed_candidates) / sizeof(mixed_candidates[0]); c++) {
            uint32_t ty = mixed_candidates[c];
            if (!is_float_type(ty) && qt->rel[ty] > 0) {
                qt->probe_type = ty;
                any = 1;
                break;
            }
        }
    }
    if (!any)
        return 0;
    int r = qz_probe(q, in_path);
    if (r < 0)
        return r;
    for (int i = 0; i < q->n; i++) {
        struct qz_tensor *qt = &q->ts[i];
        if (!qt->probe_type || qt->probe_kl < 0)
            continue;
        double gain = qt->probe_kl / qt->rel[qt->probe_type];
        for (int c = 0; c < GGUF_TT_COUNT; c++)
            if (qt->rel[c] >= 0)
                qt->err[c] = qt->rel[c] * gain;
    }
    return 0;
}

/* ---- output ---- */

static int set_metadata(struct qz *q, struct gguf_writer *w, const char *method, double bpw)
{
    int r = 0;
    for (int i = 0; !r && i < gguf_n_kv(q->f); i++) {
        const char *key = gguf_kv_key(q->f, i);
        if (strncmp(key, "ember.quantize.", 15) != 0)
            r = gguf_writer_copy_kv(w, q->f, i);
    }
    /* general.file_type: that of the type holding most elements */
    double by_type[GGUF_TT_COUNT] = {0};
    for (int i = 0; i < q->n; i++)
        if (q->ts[i].is_weight)
            by_type[q->ts[i].out_type] += (double)n_elements(q->ts[i].t);
    uint32_t ftype = 0;
    double most = -1;
    for (size_t k = 0; k < sizeof(qz_types) / sizeof(qz_types[0]); k++) {
        if (by_type[qz_types[k].type] > most) {
            most = by_type[qz_types[k].type];
            ftype = qz_types[k].ftype;
        }
    }
    r = r ? r : gguf_writer_set_u32(w, "general.file_type", ftype);
    r = r ? r : gguf_writer_set_u32(w, "general.quantization_version", 2);
    r = r ? r : gguf_writer_set_str(w, "ember.quantize.method", method);
    r = r ? r : gguf_writer_set_f32(w, "ember.quantize.bpw", (float)bpw);
    if (strcmp(method, "mixed") == 0) {
        double target = q->p->target_bpw > 0 ? q->p->target_bpw : QZ_DEFAULT_BPW;
        r = r ? r : gguf_writer_set_f32(w, "ember.quantize.target_bpw", (float)target);
    }
    r = r ? r : gguf_writer_set_u32(w, "ember.quantize.calib_tokens", (uint32_t)q->calib_tokens);
    char **plan = calloc((size_t)q->n, sizeof(*plan));
    if (!plan)
        return -ENOMEM;
    for (int i = 0; !r && i < q->n; i++) {
        size_t len = strlen(q->ts[i].t->name) + 16;
        plan[i] = malloc(len);
        if (!plan[i]) {
            r = -ENOMEM;
            break;
        }
        snprintf(plan[i], len, "%s=%s", q->ts[i].t->name, gguf_tensor_type_name(q->ts[i].out_type));
    }
    r = r ? r
          : gguf_writer_set_str_arr(w, "ember.quantize.plan", (const char *const *)plan,
                                    (uint64_t)q->n);
    for (int i = 0; i < q->n; i++)
        free(plan[i]);
    free(plan);
    return r;
}

/* Writes every tensor's data: copied when the type does not change (and no importance would
 * change it), else converted row by row on the pool. */
static int write_tensors(struct qz *q, struct gguf_writer *w, FILE *out, struct eng_pool *pool,
                         const char *path)
{
    int n_th = eng_pool_size(pool), r = 0, e = 0;
    double total = 0, done = 0;
    for (int i = 0; i < q->n; i++)
        total += (double)n_elements(q->ts[i].t);
    for (int i = 0; i < q->n && !r; i++) {
        const struct qz_tensor *qt = &q->ts[i];
        const struct gguf_tensor *t = qt->t;
        uint64_t size = gguf_writer_tensor_size(w, i);
        if (qt->out_type == t->type) {
            r = gguf_writer_write_tensor(w, out, t->data, size, &e);
        } else {
            struct row_job j = {
                .t = t, .imp = qt->imp, .out_type = qt->out_type, .rows = n_rows(t)};
            j.qfn = eng_qz_row_fn_of(qt->out_type);
            j.to_float = input_to_float(t->type);
            j.in_row = eng_row_bytes(t->type, t->ne[0]);
            j.out_row = eng_row_bytes(qt->out_type, t->ne[0]);
            j.out = malloc((size_t)size);
            j.tmp = malloc((size_t)n_th * (size_t)t->ne[0] * sizeof(float));
            if (!j.out || !j.tmp) {
                r = -ENOMEM;
            } else {
                eng_pool_run(pool, rows_chunk, &j,
                             (int)((j.rows + QZ_ROWS_PER_CHUNK - 1) / QZ_ROWS_PER_CHUNK));
                r = gguf_writer_write_tensor(w, out, j.out, size, &e);
            }
            free(j.out);
            free(j.tmp);
        }
        if (r == -EIO) {
            snprintf(q->err, q->err_len, "%s: writing tensor '%s' failed: %s", path, t->name,
                     strerror(e));
            return -e;
        }
        done += (double)n_elements(t);
        if (!r)
            r = progress(q, "writing", (float)(done / total));
    }
    return r;
}

/* The directory part of path ("." when there is none). */
static void dir_of(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, len, ".");
    else if (slash == buf)
        buf[1] = '\0';
    else
        *slash = '\0';
}

static int write_output(struct qz *q, const char *out_path, const char *method, double bpw,
                        struct eng_pool *pool, uint64_t *ret_size)
{
    struct gguf_writer *w = NULL;
    char tmp[4096], dir[4096];
    FILE *out = NULL;
    int r = gguf_writer_new(&w), e = 0, fd = -1;
    if (r < 0)
        return r;
    r = set_metadata(q, w, method, bpw);
    for (int i = 0; !r && i < q->n; i++) {
        const struct gguf_tensor *t = q->ts[i].t;
        r = gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, q->ts[i].out_type);
        if (r < 0)
            snprintf(q->err, q->err_len, "tensor '%s': cannot be stored as %s", t->name,
                     gguf_tensor_type_name(q->ts[i].out_type));
    }
    if (r < 0)
        goto out;
    dir_of(out_path, dir, sizeof(dir));
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", out_path) >= (int)sizeof(tmp)) {
        snprintf(q->err, q->err_len, "%s: path too long", out_path);
        r = -ENAMETOOLONG;
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        r = -errno;
        snprintf(q->err, q->err_len, "%s: cannot create the output's temporary file in %s: %s",
                 out_path, dir, strerror(errno));
        goto out;
    }
    fchmod(fd, 0644);
    out = fdopen(fd, "wb");
    if (!out) {
        r = -errno;
        close(fd);
        goto unlink;
    }
    r = gguf_writer_write_header(w, out, &e);
    if (r == -EIO) {
        snprintf(q->err, q->err_len, "%s: writing the header failed: %s", tmp, strerror(e));
        r = -e;
    }
    if (!r)
        r = write_tensors(q, w, out, pool, tmp);
    if (!r && (fflush(out) != 0 || fsync(fileno(out)) != 0)) {
        r = -errno;
        snprintf(q->err, q->err_len, "%s: flushing to disk failed: %s", tmp, strerror(errno));
    }
    if (fclose(out) != 0 && !r) {
        r = -errno;
        snprintf(q->err, q->err_len, "%s: closing failed: %s", tmp, strerror(errno));
    }
    if (r)
        goto unlink;
    if (rename(tmp, out_path) != 0) {
        r = -errno;
        snprintf(q->err, q->err_len, "%s: cannot rename %s to it: %s", out_path, tmp,
                 strerror(errno));
        goto unlink;
    }
    /* the rename itself must reach the disk */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    *ret_size = gguf_writer_file_size(w);
    goto out;
unlink:
    unlink(tmp);
out:
    gguf_writer_free(w);
    return r;
}

/* ---- checks ---- */

static int check_input(struct qz *q, const char *in_path, uint32_t single)
{
    for (int i = 0; i < q->n; i++) {
        struct qz_tensor *qt = &q->ts[i];
        const struct gguf_tensor *t = qt->t;
        const struct eng_type_traits *tr = eng_type_traits(t->type);
        if (!tr || !tr->to_float) {
            snprintf(q->err, q->err_len,
                     "%s: tensor '%s' has type %s, which ember cannot read (it reads F32, F16, "
                     "BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)",
                     in_path, t->name, gguf_tensor_type_name(t->type));
            return -EINVAL;
        }
        qt->is_weight = t->n_dims >= 2 && n_rows(t) > 1;
        qt->rel_err = -1;
        if (qt->is_weight && !is_float_type(t->type) && !q->p->allow_requantize &&
            t->type != single) {
            snprintf(q->err, q->err_len,
                     "%s: tensor '%s' is already quantized (%s); quantizing it again loses "
                     "accuracy twice. Start from the F32/F16/BF16 original, or pass "
                     "--allow-requantize",
                     in_path, t->name, gguf_tensor_type_name(t->type));
            return -EPERM;
        }
    }
    return 0;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int eng_quantize(const char *in_path, const char *out_path, const struct eng_quantize_params *p,
                 struct eng_quantize_result *result, char *err, size_t err_len)
{
    struct qz q = {.p = p, .err = err, .err_len = err_len};
    struct eng_pool *pool = NULL;
    int r;
    if (result)
        memset(result, 0, sizeof(*result));
    err[0] = '\0';
    int mixed = strcmp(p->type, "mixed") == 0;
    uint32_t single = GGUF_TT_COUNT;
    for (size_t k = 0; k < sizeof(qz_types) / sizeof(qz_types[0]); k++)
        if (strcmp(p->type, qz_types[k].name) == 0)
            single = qz_types[k].type;
    if (!mixed && single == GGUF_TT_COUNT) {
        snprintf(err, err_len,
                 "unknown type '%s' (use Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, F16, BF16, F32 or mixed)",
                 p->type);
        return -EINVAL;
    }
    if (mixed && p->target_bpw != 0 && !(p->target_bpw >= 1 && p->target_bpw <= 32)) {
        snprintf(err, err_len, "target %.3g bits per weight is outside [1, 32]", p->target_bpw);
        return -EINVAL;
    }
    if (same_file(in_path, out_path)) {
        snprintf(err, err_len, "%s: the output is the input; refusing to overwrite it", out_path);
        return -EEXIST;
    }
    r = gguf_open(in_path, &q.f, err, err_len);
    if (r < 0)
        return r;
    q.n = gguf_n_tensors(q.f);
    if (q.n == 0) {
        snprintf(err, err_len, "%s: the file has no tensors to quantize", in_path);
        r = -EINVAL;
        goto out;
    }
    q.ts = calloc((size_t)q.n, sizeof(*q.ts));
    if (!q.ts) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < q.n; i++)
        q.ts[i].t = gguf_tensor_at(q.f, i);
    if ((r = check_input(&q, in_path, mixed ? GGUF_TT_COUNT : single)))
        goto out;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = p->n_threads ? (int)p->n_threads : (ncpu > 0 ? (int)ncpu : 1);
    if ((r = eng_pool_new(n_threads, &pool)) < 0) {
        snprintf(err, err_len, "cannot start %d threads: %s", n_threads, strerror(-r));
        goto out;
    }
    if ((mixed || p->calib_given) && (r = qz_calibrate(&q, in_path)) < 0)
        goto out;

    double fixed_bits = 0, min_bits = 0;
    uint64_t n_all = 0;
    struct mixture_counts counts;
    count_mixture(&q, &counts);
    for (int i = 0; i < q.n; i++) {
        struct qz_tensor *qt = &q.ts[i];
        n_all += (uint64_t)n_elements(qt->t);
        qt->out_type = qt->t->type;
        if (!qt->is_weight) {
            qt->why = "1-D";
        } else if (!mixed) {
            uint32_t want = single;
            const char *rule = NULL;
            if (!p->pure && !is_float_type(single))
                want = mixture_type(qt->t, single, &counts, &rule);
            uint32_t alt = block32_fallback(want);
            if (fits(want, qt->t)) {
                qt->out_type = want;
                qt->why = rule ? rule : "type";
            } else if (alt != want && fits(alt, qt->t)) {
                qt->out_type = alt;
                qt->why = rule ? "given more bits (mixture), but rows do not fit 256: 32-value "
                                 "blocks"
                               : "rows do not fit 256: 32-value blocks";
            } else {
                qt->out_type = float_fallback(qt->t->type);
                qt->why = "rows do not fit a block";
            }
        }
        if (!qt->is_weight)
            fixed_bits += (double)n_elements(qt->t) * type_bpw(qt->out_type);
    }
    double budget = 0;
    if (mixed) {
        if ((r = measure(&q, pool)) || (r = weigh_by_probes(&q, in_path)))
            goto out;
        budget = (p->target_bpw > 0 ? p->target_bpw : QZ_DEFAULT_BPW) * (double)n_all;
        plan_mixed(&q, budget, fixed_bits, &min_bits);
    }
    double bits = 0;
    for (int i = 0; i < q.n; i++)
        bits += (double)n_elements(q.ts[i].t) * type_bpw(q.ts[i].out_type);
    uint64_t out_size = 0;
    char method[32];
    snprintf(method, sizeof(method), "%s%s", mixed ? "mixed" : p->type,
             !mixed && p->pure && !is_float_type(single) ? " --pure" : "");
    r = write_output(&q, out_path, method, bits / (double)n_all, pool, &out_size);
    if (r < 0)
        goto out;
    if (result) {
        result->tensors = calloc((size_t)q.n, sizeof(*result->tensors));
        if (!result->tensors) {
            r = -ENOMEM;
            goto out;
        }
        result->n_tensors = q.n;
        for (int i = 0; i < q.n; i++) {
            struct eng_quantize_tensor *rt = &result->tensors[i];
            snprintf(rt->name, sizeof(rt->name), "%s", q.ts[i].t->name);
            snprintf(rt->type_in, sizeof(rt->type_in), "%s",
                     gguf_tensor_type_name(q.ts[i].t->type));
            snprintf(rt->type_out, sizeof(rt->type_out), "%s",
                     gguf_tensor_type_name(q.ts[i].out_type));
            rt->n_elements = n_elements(q.ts[i].t);
            rt->rel_err = q.ts[i].rel_err;
            rt->why = q.ts[i].out_type == q.ts[i].t->type && q.ts[i].is_weight &&
                              strcmp(q.ts[i].why, "type") == 0
                          ? "kept"
                          : q.ts[i].why;
        }
        result->in_bytes = gguf_file_size(q.f);
        result->out_bytes = out_size;
        result->n_elements = n_all;
        result->bpw = bits / (double)n_all;
        result->min_bpw = min_bits / (double)n_all;
        result->calib_tokens = q.calib_tokens;
        if (mixed && min_bits > budget)
            snprintf(result->note, sizeof(result->note),
                     "the budget of %.2f bits per weight is below the %.2f this model's shapes "
                     "allow (matrices whose rows fit no block stay float); used the smallest plan",
                     budget / (double)n_all, min_bits / (double)n_all);
    }
out:
    if (q.ts)
        for (int i = 0; i < q.n; i++)
            free(q.ts[i].imp);
    free(q.ts);
    eng_pool_free(pool);
    gguf_close(q.f);
    return r;
}

void eng_quantize_result_free(struct eng_quantize_result *r)
{
    if (!r)
        return;
    free(r->tensors);
    memset(r, 0, sizeof(*r));
}

int eng_model_quant_plan(const struct eng_model *model, char *buf, size_t len)
{
    const struct gguf_file *f = model->gguf;
    const char *method = NULL;
    float bpw = 0, target = 0;
    struct gguf_arr plan;
    if (!f || gguf_get_str(f, "ember.quantize.method", &method) < 0 ||
        gguf_get_f32(f, "ember.quantize.bpw", &bpw) < 0 ||
        gguf_get_arr(f, "ember.quantize.plan", &plan) < 0 || plan.type != GGUF_VT_STRING)
        return -ENOENT;
    int counts[GGUF_TT_COUNT] = {0};
    for (uint64_t i = 0; i < plan.n; i++) {
        size_t sl;
        const char *s = gguf_arr_str(f, &plan, i, &sl);
        const char *eq = s ? memchr(s, '=', sl) : NULL;
        if (!eq)
            continue;
        size_t tl = sl - (size_t)(eq + 1 - s);
        for (uint32_t t = 0; t < GGUF_TT_COUNT; t++) {
            const char *nm = gguf_tensor_type_name(t);
            if (strlen(nm) == tl && memcmp(nm, eq + 1, tl) == 0)
                counts[t]++;
        }
    }
    int n = snprintf(buf, len, "%s, %.2f bpw", method, (double)bpw);
    if (gguf_get_f32(f, "ember.quantize.target_bpw", &target) == 0)
        n += snprintf(buf + (n < (int)len ? n : (int)len), n < (int)len ? len - (size_t)n : 0,
                      " (target %.2f)", (double)target);
    const char *sep = ": ";
    for (uint32_t t = 0; t < GGUF_TT_COUNT; t++) {
        if (!counts[t])
            continue;
        n += snprintf(buf + (n < (int)len ? n : (int)len), n < (int)len ? len - (size_t)n : 0,
                      "%s%s x%d", sep, gguf_tensor_type_name(t), counts[t]);
        sep = ", ";
    }
    return 0;
}
