/* The sampler chain of sampler.h: penalties, top-k, top-p, min-p, temperature, then a draw.
 * The logits are copied once into a work row (penalties edit it in place, by id); greedy is an
 * argmax over it. Candidates (id, logit) are built only for what can survive: top-k selects
 * its k through a k-entry heap in one pass; without top-k, min-p's threshold is known from the
 * maximum alone, so only tokens above it are gathered. top-p needs order only when the
 * nucleus is smaller than the candidate set, and then sorts just the logit buckets that reach
 * the nucleus, not the vocabulary. Candidate order is always deterministic (id order, or the
 * total order "higher logit, then lower id"), so a given seed and logits pick the same token
 * whatever path the filters took. */
#include "engine/sampler.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    float logit;
    int32_t id;
};

struct eng_sampler {
    int32_t n_vocab;
    struct eng_sampler_params p;
    uint64_t rng[4];

    float *work;        /* n_vocab: the logits being sampled, penalties applied */
    struct cand *cands; /* n_vocab */
    size_t n_cands;     /* live prefix after the last sample */
    bool sorted;        /* the live prefix is in descending order */
    float *probs;       /* n_vocab; probabilities of the live prefix */
    int32_t *dist_ids;  /* n_vocab; scratch for eng_sampler_last_dist */

    int32_t *counts; /* n_vocab: occurrences of each id in the window */
    uint32_t *stamp; /* n_vocab: marks ids already penalized in this call */
    uint32_t stamp_gen;
    int32_t *ring;    /* penalty_last_n most recent accepted ids */
    int32_t ring_len; /* how many of ring are filled */
    int32_t ring_pos; /* next slot to write */
};

/* ---- PRNG: splitmix64 to seed xoshiro256** (Blackman & Vigna, public domain reference
 * https://prng.di.unimi.it/xoshiro256starstar.c). Integer-only, so identical everywhere. ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s[i] = splitmix64(&x);
}

/* ---- parameters ---- */

void eng_sampler_params_defaults(struct eng_sampler_params *p)
{
    *p = (struct eng_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = 0x5eed,
    };
}

const struct eng_sampler_ranges eng_sampler_ranges = {
    .temperature = {0, 5, false},
    .top_k = {0, 1 << 20, false},
    .top_p = {0, 1, true},
    .min_p = {0, 1, false},
    .repeat_penalty = {0, 100, true},
    .penalty_last_n = {0, 1 << 20, false},
    .presence_penalty = {-2, 2, false},
    .frequency_penalty = {-2, 2, false},
};

static bool check(const char *name, double v, const struct cmn_range *r, char *err, size_t err_len)
{
    if (cmn_range_contains(r, v))
        return true;
    char range[64];
    cmn_range_format(r, range, sizeof(range));
    if (err && err_len)
        snprintf(err, err_len, "sampler: %s: %g is not in %s", name, v, range);
    return false;
}

int eng_sampler_params_validate(const struct eng_sampler_params *p, char *err, size_t err_len)
{
    const struct eng_sampler_ranges *r = &eng_sampler_ranges;
    if (check("temperature", p->temperature, &r->temperature, err, err_len) &&
        check("top_k", p->top_k, &r->top_k, err, err_len) &&
        check("top_p", p->top_p, &r->top_p, err, err_len) &&
        check("min_p", p->min_p, &r->min_p, err, err_len) &&
        check("repeat_penalty", p->repeat_penalty, &r->repeat_penalty, err, err_len) &&
        check("penalty_last_n", p->penalty_last_n, &r->penalty_last_n, err, err_len) &&
        check("presence_penalty", p->presence_penalty, &r->presence_penalty, err, err_len) &&
        check("frequency_penalty", p->frequency_penalty, &r->frequency_penalty, err, err_len))
        return 0;
    return -EINVAL;
}

/* ---- construction ---- */

int eng_sampler_new(int32_t n_vocab, const struct eng_sampler_params *p,
                    struct eng_sampler **ret_sampler, char *err, size_t err_len)
{
    struct eng_sampler *s = NULL;
    int r;

    *ret_sampler = NULL;
    if (n_vocab <= 0) {
        if (err && err_len)
            snprintf(err, err_len, "sampler: n_vocab %d: must be > 0", (int)n_vocab);
        return -EINVAL;
    }
    r = eng_sampler_params_validate(p, err, err_len);
    if (r < 0)
        return r;

    s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->n_vocab = n_vocab;
    s->p = *p;
    s->work = malloc((size_t)n_vocab * sizeof(*s->work));
    s->cands = malloc((size_t)n_vocab * sizeof(*s->cands));
    s->probs = malloc((size_t)n_vocab * sizeof(*s->probs));
    s->dist_ids = malloc((size_t)n_vocab * sizeof(*s->dist_ids));
    s->counts = calloc((size_t)n_vocab, sizeof(*s->counts));
    s->stamp = calloc((size_t)n_vocab, sizeof(*s->stamp));
    s->ring = malloc((size_t)(p->penalty_last_n ? p->penalty_last_n : 1) * sizeof(*s->ring));
    if (!s->work || !s->cands || !s->probs || !s->dist_ids || !s->counts || !s->stamp || !s->ring)
        goto oom;
    eng_sampler_reset(s);
    *ret_sampler = s;
    return 0;

oom:
    eng_sampler_free(s);
    if (err && err_len)
        snprintf(err, err_len, "sampler: out of memory for %d-token vocabulary", (int)n_vocab);
    return -ENOMEM;
}

void eng_sampler_free(struct eng_sampler *s)
{
    if (!s)
        return;
    free(s->work);
    free(s->cands);
    free(s->probs);
    free(s->dist_ids);
    free(s->counts);
    free(s->stamp);
    free(s->ring);
    free(s);
}

void eng_sampler_reset(struct eng_sampler *s)
{
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof(*s->counts));
    s->ring_len = 0;
    s->ring_pos = 0;
    s->n_cands = 0;
    s->sorted = true;
    rng_seed(s->rng, s->p.seed);
}

void eng_sampler_set_seed(struct eng_sampler *s, uint64_t seed)
{
    s->p.seed = seed;
    rng_seed(s->rng, seed);
}

void eng_sampler_accept(struct eng_sampler *s, int32_t token)
{
    int32_t cap = s->p.penalty_last_n;
    if (token < 0 || token >= s->n_vocab || cap == 0)
        return;
    if (s->ring_len == cap) {
        int32_t old = s->ring[s->ring_pos];
        s->counts[old]--;
    } else {
        s->ring_len++;
    }
    s->ring[s->ring_pos] = token;
    s->counts[token]++;
    s->ring_pos = (s->ring_pos + 1) % cap;
}

/* ---- ordering: "a before b" when a has the higher logit, or the same logit and lower id ---- */

static bool cand_before(const struct cand *a, const struct cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (cand_before(a, b))
        return -1;
    if (cand_before(b, a))
        return 1;
    return 0;
}

static void cand_swap(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* ---- the chain ---- */

static void apply_penalties(struct eng_sampler *s)
{
    const struct eng_sampler_params *p = &s->p;
    if (s->ring_len == 0 ||
        (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f))
        return;
    if (++s->stamp_gen == 0) { /* wrapped: old marks could collide with the new generation */
        memset(s->stamp, 0, (size_t)s->n_vocab * sizeof(*s->stamp));
        s->stamp_gen = 1;
    }
    for (int32_t i = 0; i < s->ring_len; i++) {
        int32_t id = s->ring[i];
        if (s->stamp[id] == s->stamp_gen)
            continue;
        s->stamp[id] = s->stamp_gen;
        float *l = &s->work[id];
        if (*l == -INFINITY)
            continue;
        /* llama.cpp llama_sampler_penalties_apply: divide positive logits, multiply negative
         * ones, so the penalty always lowers the token's probability. */
        if (*l > 0)
            *l /= p->repeat_penalty;
        else
            *l *= p->repeat_penalty;
        *l -= (float)s->counts[id] * p->frequency_penalty + p->presence_penalty;
    }
}

/* Top-k in one pass: a heap of the k best so far with the worst at the root (a candidate
 * enters only when it beats the root), then the k sorted. */
static void heap_sift_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && cand_before(&h[worst], &h[l]))
            worst = l;
        if (r < n && cand_before(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        cand_swap(&h[i], &h[worst]);
        i = worst;
    }
}

static void select_top_k(struct eng_sampler *s, size_t k)
{
    struct cand *h = s->cands;
    size_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        struct cand c = {.logit = s->work[i], .id = i};
        if (c.logit == -INFINITY)
            continue;
        if (n < k) {
            /* sift up */
            size_t j = n++;
            h[j] = c;
            while (j > 0 && cand_before(&h[(j - 1) / 2], &h[j])) {
                cand_swap(&h[(j - 1) / 2], &h[j]);
                j = (j - 1) / 2;
            }
        } else if (cand_before(&c, &h[0])) {
            h[0] = c;
            heap_sift_down(h, n, 0);
        }
    }
    qsort(h, n, sizeof(*h), cand_cmp);
    s->n_cands = n;
    s->sorted = true;
}

/* Keeps the smallest sorted prefix whose mass reaches top_p * total (total: the softmax
 * denominator at temperature 1 over the set top-p applies to). probs[i] holds exp(logit - max)
 * of each live candidate. */
#define TOP_P_BUCKETS 256

static void apply_top_p(struct eng_sampler *s, float max_logit, double total)
{
    struct cand *v = s->cands;
    size_t n = s->n_cands;
    double target = (double)s->p.top_p * total, mass = 0;
    for (size_t i = 0; i < n; i++)
        mass += (double)s->probs[i];
    if (mass < target)
        return; /* the whole candidate set lies inside the nucleus */
    if (!s->sorted) {
        /* Bucket the candidates by logit; the nucleus ends in the first bucket where the
         * cumulative mass reaches the target, so only the buckets up to it need sorting. */
        double bmass[TOP_P_BUCKETS] = {0};
        float lo = max_logit;
        for (size_t i = 0; i < n; i++)
            if (v[i].logit < lo)
                lo = v[i].logit;
        float scale = max_logit > lo ? (float)(TOP_P_BUCKETS - 1) / (max_logit - lo) : 0.0f;
        for (size_t i = 0; i < n; i++)
            bmass[(int)((max_logit - v[i].logit) * scale)] += (double)s->probs[i];
        double cum = 0;
        int last = TOP_P_BUCKETS - 1;
        for (int b = 0; b < TOP_P_BUCKETS; b++) {
            cum += bmass[b];
            if (cum >= target) {
                last = b;
                break;
            }
        }
        size_t out = 0;
        for (size_t i = 0; i < n; i++) {
            if ((int)((max_logit - v[i].logit) * scale) <= last) {
                v[out] = v[i];
                s->probs[out++] = s->probs[i];
            }
        }
        n = out;
        qsort(v, n, sizeof(*v), cand_cmp);
        for (size_t i = 0; i < n; i++)
            s->probs[i] = expf(v[i].logit - max_logit);
        s->sorted = true;
    }
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; i++) {
        cum += (double)s->probs[i];
        if (cum >= target) {
            keep = i + 1;
            break;
        }
    }
    s->n_cands = keep;
}

/* p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p); order-preserving. */
static void apply_min_p(struct eng_sampler *s, float max_logit)
{
    float threshold = max_logit + logf(s->p.min_p);
    size_t out = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        if (s->cands[i].logit >= threshold)
            s->cands[out++] = s->cands[i];
    }
    s->n_cands = out ? out : 1; /* the maximum always passes */
}

int32_t eng_sampler_sample(struct eng_sampler *s, const float *logits)
{
    return eng_sampler_sample_masked(s, logits, NULL);
}

int32_t eng_sampler_sample_masked(struct eng_sampler *s, const float *logits, const uint32_t *allow)
{
    const struct eng_sampler_params *p = &s->p;
    int32_t n = s->n_vocab;
    float *w = s->work;

    s->n_cands = 0;
    s->sorted = true;
    for (int32_t i = 0; i < n; i++) {
        float l = logits[i];
        if (isnan(l))
            l = -INFINITY; /* a broken value never wins */
        else if (l == INFINITY)
            l = FLT_MAX; /* keeps l - max finite in the softmax */
        w[i] = l;
    }
    if (allow)
        for (int32_t i = 0; i < n; i++)
            if (!((allow[i >> 5] >> (i & 31)) & 1u))
                w[i] = -INFINITY;
    apply_penalties(s);
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (w[i] > w[best])
            best = i; /* strict: the lowest id wins ties */
    float max_logit = w[best];
    if (max_logit == -INFINITY)
        return -EINVAL;

    if (p->temperature <= 0 || p->top_k == 1) {
        s->cands[0] = (struct cand){.logit = max_logit, .id = best};
        s->probs[0] = 1.0f;
        s->n_cands = 1;
        return best;
    }

    double total = 0;
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(s, (size_t)p->top_k);
        for (size_t i = 0; p->top_p < 1.0f && i < s->n_cands; i++) {
            s->probs[i] = expf(s->cands[i].logit - max_logit);
            total += (double)s->probs[i];
        }
    } else {
        /* min-p and top-p both keep an upper set of the logits, so their result does not
         * depend on their order: gather only what passes min-p, while top-p's denominator
         * still covers every token */
        float threshold = p->min_p > 0.0f ? max_logit + logf(p->min_p) : -INFINITY;
        bool need_total = p->top_p < 1.0f;
        size_t m = 0;
        for (int32_t i = 0; i < n; i++) {
            float l = w[i];
            if (l == -INFINITY)
                continue;
            float e = 0.0f;
            if (need_total) {
                e = expf(l - max_logit);
                total += (double)e;
            }
            if (l >= threshold) {
                s->cands[m] = (struct cand){.logit = l, .id = i};
                s->probs[m++] = e; /* only top-p reads it before the softmax below */
            }
        }
        s->n_cands = m;
        s->sorted = m == 1;
    }
    if (p->top_p < 1.0f && s->n_cands > 1)
        apply_top_p(s, max_logit, total);
    if (p->min_p > 0.0f && s->n_cands > 1)
        apply_min_p(s, max_logit);

    /* temperature, softmax and the draw */
    float inv_t = 1.0f / p->temperature;
    double sum = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        s->probs[i] = expf((s->cands[i].logit - max_logit) * inv_t);
        sum += (double)s->probs[i]; /* the same rounded values the draw walks */
    }
    double u = rng_uniform(s->rng) * sum, cum = 0;
    size_t pick = s->n_cands - 1;
    for (size_t i = 0; i < s->n_cands; i++) {
        cum += (double)s->probs[i];
        if (u < cum) {
            pick = i;
            break;
        }
    }
    for (size_t i = 0; i < s->n_cands; i++)
        s->probs[i] = (float)((double)s->probs[i] / sum);
    return s->cands[pick].id;
}

size_t eng_sampler_last_dist(struct eng_sampler *s, const int32_t **ret_ids,
                             const float **ret_probs)
{
    /* Sorting here (not in the hot path) keeps the draw free of a full sort. */
    size_t n = s->n_cands;
    if (!s->sorted) {
        qsort(s->cands, n, sizeof(*s->cands), cand_cmp);
        /* recompute probabilities in the new order from the same softmax */
        float m = n ? s->cands[0].logit : 0;
        double inv_t = s->p.temperature > 0 ? 1.0 / (double)s->p.temperature : 1.0, sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += exp(((double)s->cands[i].logit - m) * inv_t);
        for (size_t i = 0; i < n; i++)
            s->probs[i] = (float)(exp(((double)s->cands[i].logit - m) * inv_t) / sum);
        s->sorted = true;
    }
    for (size_t i = 0; i < n; i++)
        s->dist_ids[i] = s->cands[i].id;
    *ret_ids = s->dist_ids;
    *ret_probs = s->probs;
    return n;
}
