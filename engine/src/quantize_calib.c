/* Calibration for `ember quantize`: runs the engine's own forward pass over calibration text and
 * accumulates, for every weight matrix, the mean square of each input channel over all token
 * rows (the importance matrix). The model is loaded with use_mmap so each matrix's data pointer
 * is its tensor's data in the file mapping, which identifies it by name. */
#include "quantize_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "act_observer.h"
#include "engine/tokenizer.h"
#include "model.h"
#include "quant.h"
#include "quantize_blocks.h"

/* A short English text of everyday narrative and exposition, used when no --calib file is
 * given. Written for this project. */
static const char builtin_text[] =
    "Once upon a time, in a small town by the sea, there lived a girl named Mia. Every morning "
    "she walked to the harbour with her dog, Pip, to watch the fishing boats come home. One day "
    "a storm came and the boats were late. Mia was worried, so she asked her grandfather what "
    "to do. He smiled and said, \"We light the lamp in the window, so they can find their way.\" "
    "They climbed the stairs together and lit the old lamp. The wind howled and the rain hit "
    "the glass, but the little light kept shining. Late in the night, Mia heard voices on the "
    "street. The fishermen were back, wet and tired but safe. They thanked Mia and her "
    "grandfather for the light. The next day the sun was bright, and the sea was calm again. "
    "Mia and Pip ran along the beach, picking up shells and laughing at the waves.\n"
    "A battery stores energy as chemical potential and releases it as an electric current when "
    "a circuit is closed. The voltage of a cell depends on the materials of its electrodes, "
    "while its capacity depends on how much of those materials it holds. Engineers who design "
    "small devices try to use as little energy as possible: a processor that finishes its work "
    "quickly and then sleeps often spends less energy than one that runs slowly all the time. "
    "Measuring the power a machine draws, and the work it does with it, is the first step to "
    "making it more efficient.\n"
    "Tom had a red ball. He liked to throw it high in the air and catch it. One afternoon the "
    "ball rolled into the garden next door. Tom was shy, but he knocked on the door. An old "
    "woman opened it and gave him the ball with a kind smile. \"You can play here any time,\" "
    "she said. From that day on, Tom visited her often, and they became good friends. She "
    "taught him the names of the flowers, and he helped her water them when the days were "
    "hot.\n";

struct calib_map {
    const void *data;
    int idx; /* into q->ts */
};

struct calib {
    struct qz *q;
    struct calib_map *map;
    int n_map;
    double **sum; /* per tensor of q: ne0 sums of squares (NULL if never seen) */
    uint64_t *rows;
    int last;
    int failed;
};

static void observe(void *user, const void *weight_data, const float *row, int64_t n)
{
    struct calib *c = user;
    int hit = -1;
    if (c->last >= 0 && c->map[c->last].data == weight_data)
        hit = c->last;
    for (int i = 0; hit < 0 && i < c->n_map; i++)
        if (c->map[i].data == weight_data)
            hit = i;
    if (hit < 0)
        return;
    c->last = hit;
    int ti = c->map[hit].idx;
    if (c->q->ts[ti].t->ne[0] != n)
        return;
    if (!c->sum[ti]) {
        c->sum[ti] = calloc((size_t)n, sizeof(double));
        if (!c->sum[ti]) {
            c->failed = 1;
            return;
        }
    }
    double *s = c->sum[ti];
    for (int64_t j = 0; j < n; j++)
        s[j] += (double)row[j] * (double)row[j];
    c->rows[ti]++;
}

const char *qz_builtin_calib_text(size_t *ret_len)
{
    *ret_len = sizeof(builtin_text) - 1;
    return builtin_text;
}

int qz_calibrate(struct qz *q, const char *in_path)
{
    struct eng_model *model = NULL;
    struct eng_context *ctx = NULL;
    struct calib c = {.q = q, .last = -1};
    int32_t *ids = NULL;
    int r;
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.use_mmap = 1;
    r = eng_model_load(in_path, &mp, &model, q->err, q->err_len);
    if (r < 0)
        goto out;
    const struct eng_vocab *vocab = eng_model_vocab(model);
    if (!vocab) {
        snprintf(q->err, q->err_len,
                 "%s: the model has no tokenizer, so it cannot be calibrated (choose a single "
                 "--type instead of mixed)",
                 in_path);
        r = -EINVAL;
        goto out;
    }
    const char *text = q->p->calib_text;
    size_t len = q->p->calib_len;
    if (!text)
        text = qz_builtin_calib_text(&len);
    size_t n_ids = 0, cap = len + 16;
    ids = malloc(cap * sizeof(*ids));
    if (!ids) {
        r = -ENOMEM;
        goto out;
    }
    r = eng_tokenize(vocab, text, len, false, false, ids, cap, &n_ids);
    if (r < 0) {
        snprintf(q->err, q->err_len, "calibration text: tokenization failed (%s)", strerror(-r));
        goto out;
    }
    uint32_t max_tok = q->p->calib_tokens ? q->p->calib_tokens : 2048;
    if (n_ids > max_tok)
        n_ids = max_tok;
    if (n_ids < 8) {
        snprintf(q->err, q->err_len,
                 "calibration text: %zu tokens; at least 8 are needed to measure anything", n_ids);
        r = -EINVAL;
        goto out;
    }

    /* weight data pointer -> our tensor, by name */
    const struct gguf_file *mf = model->gguf;
    c.map = calloc((size_t)gguf_n_tensors(mf), sizeof(*c.map));
    c.sum = calloc((size_t)q->n, sizeof(*c.sum));
    c.rows = calloc((size_t)q->n, sizeof(*c.rows));
    if (!c.map || !c.sum || !c.rows) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < gguf_n_tensors(mf); i++) {
        const struct gguf_tensor *mt = gguf_tensor_at(mf, i);
        for (int k = 0; k < q->n; k++) {
            if (strcmp(q->ts[k].t->name, mt->name) == 0) {
                c.map[c.n_map++] = (struct calib_map){.data = mt->data, .idx = k};
                break;
            }
        }
    }

    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    struct eng_model_info info;
    eng_model_info(model, &info);
    uint32_t n_ctx = 512;
    if (info.n_ctx_train > 0 && (uint32_t)info.n_ctx_train < n_ctx)
        n_ctx = (uint32_t)info.n_ctx_train;
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_threads = q->p->n_threads;
    r = eng_context_new(model, &cp, &ctx, q->err, q->err_len);
    if (r < 0)
        goto out;
    eng_context_set_act_observer(ctx, observe, &c);
    int32_t bos = eng_vocab_bos(vocab);
    int32_t *chunk = malloc(n_ctx * sizeof(*chunk));
    if (!chunk) {
        r = -ENOMEM;
        goto out;
    }
    /* chunks of the context's length, each starting at BOS as a document would */
    size_t per = bos >= 0 ? n_ctx - 1 : n_ctx;
    for (size_t at = 0; at < n_ids; at += per) {
        size_t k = 0, take = n_ids - at < per ? n_ids - at : per;
        if (bos >= 0)
            chunk[k++] = bos;
        memcpy(chunk + k, ids + at, take * sizeof(*chunk));
        k += take;
        eng_kv_clear(ctx);
        r = eng_decode(ctx, chunk, k);
        if (r < 0 || c.failed) {
            snprintf(q->err, q->err_len, "calibration: forward pass failed (%s)",
                     strerror(r < 0 ? -r : ENOMEM));
            r = r < 0 ? r : -ENOMEM;
            free(chunk);
            goto out;
        }
        q->calib_tokens += k;
        if (q->p->progress &&
            q->p->progress("calibrating", (float)(at + take) / (float)n_ids, q->p->progress_user)) {
            r = -ECANCELED;
            free(chunk);
            goto out;
        }
    }
    free(chunk);
    for (int k = 0; k < q->n; k++) {
        if (!c.sum[k] || !c.rows[k])
            continue;
        int64_t ne0 = q->ts[k].t->ne[0];
        q->ts[k].imp = malloc((size_t)ne0 * sizeof(float));
        if (!q->ts[k].imp) {
            r = -ENOMEM;
            goto out;
        }
        /* mean squares, with a floor so no channel's weights are ignored entirely */
        double mean = 0;
        for (int64_t j = 0; j < ne0; j++)
            mean += c.sum[k][j] / (double)c.rows[k];
        mean /= (double)ne0;
        for (int64_t j = 0; j < ne0; j++)
            q->ts[k].imp[j] = (float)(c.sum[k][j] / (double)c.rows[k] + 1e-3 * mean + 1e-12);
    }
    r = 0;
out:
    if (c.sum)
        for (int k = 0; k < q->n; k++)
            free(c.sum[k]);
    free(c.sum);
    free(c.rows);
    free(c.map);
    free(ids);
    eng_context_free(ctx);
    eng_model_free(model);
    return r;
}

/* ---- end-to-end probes ---- */

#define PROBE_TOKENS 64 /* tokens of calibration text each probe runs */

/* log(sum(exp(x))), computed from the maximum so nothing overflows. */
static double log_sum_exp(const float *x, int32_t n)
{
    float mx = x[0];
    for (int32_t v = 1; v < n; v++)
        mx = x[v] > mx ? x[v] : mx;
    double s = 0;
    for (int32_t v = 0; v < n; v++)
        s += exp((double)(x[v] - mx));
    return (double)mx + log(s > 0 ? s : 1.0); /* s >= 1: the maximum contributes exp(0) */
}

/* Mean over positions of KL(base || probe) from n rows of n_vocab logits; base holds the
 * reference log-probabilities. */
static double mean_kl(const float *base_lp, struct eng_context *ctx, size_t n, int32_t n_vocab,
                      double *lq)
{
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        const float *x = eng_get_logits_ith(ctx, i);
        const float *lp = base_lp + i * (size_t)n_vocab;
        double lse = log_sum_exp(x, n_vocab), kl = 0;
        for (int32_t v = 0; v < n_vocab; v++) {
            lq[v] = (double)x[v] - lse;
            kl += exp((double)lp[v]) * ((double)lp[v] - lq[v]);
        }
        total += kl > 0 ? kl : 0;
    }
    return total / (double)n;
}

/* Overwrites the float tensor t (its bytes at data, writable) with the round trip of its values
 * through block type ty: what the model computes with once t is stored as ty. */
static int roundtrip_in_place(const struct qz_tensor *qt, void *data, uint32_t ty)
{
    const struct gguf_tensor *t = qt->t;
    const struct eng_type_traits *in = eng_type_traits(t->type), *out = eng_type_traits(ty);
    int64_t ne0 = t->ne[0], rows = (int64_t)(t->size / eng_row_bytes(t->type, ne0));
    size_t in_row = eng_row_bytes(t->type, ne0);
    float *x = malloc((size_t)ne0 * sizeof(float));
    void *q = malloc(eng_row_bytes(ty, ne0));
    eng_qz_row_fn qfn = eng_qz_row_fn_of(ty), back = eng_qz_row_fn_of(t->type);
    if (!x || !q || !qfn || !back) {
        free(x);
        free(q);
        return -ENOMEM;
    }
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)data + (size_t)r * in_row;
        in->to_float(row, x, ne0);
        qfn(x, q, ne0, qt->imp);
        out->to_float(q, x, ne0);
        back(x, row, ne0, NULL);
    }
    free(x);
    free(q);
    return 0;
}

int qz_probe(struct qz *q, const char *in_path)
{
    struct eng_model *model = NULL;
    struct eng_context *ctx = NULL;
    int32_t *ids = NULL;
    float *base = NULL;
    double *lq = NULL;
    void *saved = NULL;
    int r;
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.use_mmap = 1;
    r = eng_model_load(in_path, &mp, &model, q->err, q->err_len);
    if (r < 0)
        goto out;
    const struct eng_vocab *vocab = eng_model_vocab(model);
    const char *text = q->p->calib_text;
    size_t len = q->p->calib_len, n_ids = 0;
    if (!text)
        text = qz_builtin_calib_text(&len);
    ids = malloc((len + 16) * sizeof(*ids));
    if (!vocab || !ids) {
        r = -ENOMEM;
        goto out;
    }
    int32_t bos = eng_vocab_bos(vocab);
    size_t k = 0;
    if (bos >= 0)
        ids[k++] = bos;
    r = eng_tokenize(vocab, text, len, false, false, ids + k, len + 16 - k, &n_ids);
    if (r < 0)
        goto out;
    n_ids += k;
    if (n_ids > PROBE_TOKENS)
        n_ids = PROBE_TOKENS;
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = PROBE_TOKENS;
    cp.n_batch = PROBE_TOKENS;
    cp.n_threads = q->p->n_threads;
    cp.logits_all = 1;
    r = eng_context_new(model, &cp, &ctx, q->err, q->err_len);
    if (r < 0)
        goto out;
    int32_t n_vocab = eng_n_vocab(ctx);
    base = malloc(n_ids * (size_t)n_vocab * sizeof(float));
    lq = malloc((size_t)n_vocab * sizeof(double));
    if (!base || !lq) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = eng_decode(ctx, ids, n_ids)) < 0)
        goto out;
    for (size_t i = 0; i < n_ids; i++) {
        const float *x = eng_get_logits_ith(ctx, i);
        float lse = (float)log_sum_exp(x, n_vocab);
        for (int32_t v = 0; v < n_vocab; v++)
            base[i * (size_t)n_vocab + (size_t)v] = x[v] - lse;
    }
    long page = sysconf(_SC_PAGESIZE);
    int n_probe = 0, done = 0;
    for (int i = 0; i < q->n; i++)
        n_probe += q->ts[i].probe_type != 0;
    for (int i = 0; i < q->n; i++) {
        struct qz_tensor *qt = &q->ts[i];
        if (!qt->probe_type)
            continue;
        const struct gguf_tensor *mt = gguf_find_tensor(model->gguf, qt->t->name);
        if (!mt || mt->type != qt->t->type)
            continue;
        uintptr_t a = (uintptr_t)mt->data & ~((uintptr_t)page - 1);
        size_t span = (size_t)((uintptr_t)mt->data + mt->size - a);
        /* the mapping is private: writing copies the pages, the file is never touched */
        if (mprotect((void *)a, span, PROT_READ | PROT_WRITE) != 0) {
            r = -errno;
            snprintf(q->err, q->err_len, "sensitivity probe: cannot make '%s' writable: %s",
                     mt->name, strerror(errno));
            goto out;
        }
        saved = malloc(mt->size);
        if (!saved) {
            r = -ENOMEM;
            goto out;
        }
        memcpy(saved, mt->data, mt->size);
        r = roundtrip_in_place(qt, (void *)mt->data, qt->probe_type);
        if (r == 0) {
            eng_kv_clear(ctx);
            r = eng_decode(ctx, ids, n_ids);
        }
        if (r == 0)
            qt->probe_kl = mean_kl(base, ctx, n_ids, n_vocab, lq);
        memcpy((void *)mt->data, saved, mt->size);
        free(saved);
        saved = NULL;
        mprotect((void *)a, span, PROT_READ);
        if (r < 0)
            goto out;
        if (q->p->progress &&
            q->p->progress("probing", (float)++done / (float)n_probe, q->p->progress_user)) {
            r = -ECANCELED;
            goto out;
        }
    }
    r = 0;
out:
    free(saved);
    free(base);
    free(lq);
    free(ids);
    eng_context_free(ctx);
    eng_model_free(model);
    return r;
}
