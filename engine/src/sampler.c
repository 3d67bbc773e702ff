/* The sampler chain of sampler.h: penalties, top-k, top-p, min-p, temperature, then a draw.
 * Candidates live in one array sized for n_vocab; filters shrink a prefix of it. Order of the
 * candidates is always deterministic (either id order or the total order "higher logit, then
 * lower id"), so a given seed and logits pick the same token whatever path the filters took.
 * Sorting is partial: top-k selects then sorts k entries; top-p sorts growing prefixes only
 * until the nucleus is complete, so a peaked distribution over 150k tokens costs one
 * selection pass, not a full sort. */
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

#define PENALTY_LAST_N_MAX (1 << 20)

int eng_sampler_params_validate(const struct eng_sampler_params *p, char *err, size_t err_len)
{
    const char *why = NULL;
    if (!isfinite(p->temperature) || p->temperature < 0)
        why = "temperature: must be a finite number >= 0";
    else if (!isfinite(p->top_p) || p->top_p <= 0 || p->top_p > 1)
        why = "top_p: must be in (0, 1]";
    else if (!isfinite(p->min_p) || p->min_p < 0 || p->min_p > 1)
        why = "min_p: must be in [0, 1]";
    else if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
        why = "repeat_penalty: must be a finite number > 0";
    else if (!isfinite(p->presence_penalty))
        why = "presence_penalty: must be finite";
    else if (!isfinite(p->frequency_penalty))
        why = "frequency_penalty: must be finite";
    else if (p->penalty_last_n < 0 || p->penalty_last_n > PENALTY_LAST_N_MAX)
        why = "penalty_last_n: must be in [0, 1048576]";
    if (!why)
        return 0;
    if (err && err_len)
        snprintf(err, err_len, "sampler: %s", why);
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
    s->cands = malloc((size_t)n_vocab * sizeof(*s->cands));
    s->probs = malloc((size_t)n_vocab * sizeof(*s->probs));
    s->dist_ids = malloc((size_t)n_vocab * sizeof(*s->dist_ids));
    s->counts = calloc((size_t)n_vocab, sizeof(*s->counts));
    s->stamp = calloc((size_t)n_vocab, sizeof(*s->stamp));
    s->ring = malloc((size_t)(p->penalty_last_n ? p->penalty_last_n : 1) * sizeof(*s->ring));
    if (!s->cands || !s->probs || !s->dist_ids || !s->counts || !s->stamp || !s->ring)
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

/* Rearranges v[0..n) so that v[0..k) holds the k first entries of the total order (in any
 * order). Iterative quickselect with a median-of-three pivot; the order is total (ids are
 * unique), so the selected set does not depend on the algorithm. */
static void select_top(struct cand *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    if (k == 0 || k >= n)
        return;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of v[lo], v[mid], v[last] moved to v[last] as the pivot */
        if (cand_before(&v[mid], &v[lo]))
            cand_swap(&v[mid], &v[lo]);
        if (cand_before(&v[last], &v[lo]))
            cand_swap(&v[last], &v[lo]);
        if (cand_before(&v[mid], &v[last]))
            cand_swap(&v[mid], &v[last]);
        struct cand pivot = v[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++) {
            if (cand_before(&v[i], &pivot))
                cand_swap(&v[i], &v[store++]);
        }
        cand_swap(&v[store], &v[last]);
        /* v[lo..store) before pivot, v[store] = pivot, v[store+1..hi) after */
        if (store == k || store + 1 == k)
            return;
        if (store > k)
            hi = store;
        else
            lo = store + 1;
    }
}

/* Makes v[from..to) the next entries of the total order, sorted, given that v[0..from) is
 * already the sorted head and everything after it comes later in the order. */
static void sort_range(struct cand *v, size_t n, size_t from, size_t to)
{
    if (to > n)
        to = n;
    if (from >= to)
        return;
    select_top(v + from, n - from, to - from);
    qsort(v + from, to - from, sizeof(*v), cand_cmp);
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
        /* cands is still in id order here (penalties run first) */
        float *l = &s->cands[id].logit;
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

/* Keeps the smallest sorted prefix whose probability (softmax of the live candidates at
 * temperature 1) reaches top_p. */
static void apply_top_p(struct eng_sampler *s, float max_logit)
{
    struct cand *v = s->cands;
    size_t n = s->n_cands;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += exp((double)v[i].logit - max_logit);
    double target = (double)s->p.top_p * total, cum = 0;
    size_t done = s->sorted ? n : 0, chunk = 64, i = 0;
    for (;;) {
        if (i == done) {
            if (done == n)
                break;
            size_t next = done + chunk > n ? n : done + chunk;
            sort_range(v, n, done, next);
            done = next;
            chunk *= 2;
        }
        cum += exp((double)v[i].logit - max_logit);
        i++;
        if (cum >= target)
            break;
    }
    /* v[0..i) is sorted and is the nucleus; everything else is dropped */
    s->n_cands = i;
    s->sorted = true;
}

static void apply_min_p(struct eng_sampler *s, float max_logit)
{
    /* p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p) */
    float threshold = max_logit + logf(s->p.min_p);
    size_t out = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        if (s->cands[i].logit >= threshold)
            s->cands[out++] = s->cands[i]; /* order-preserving compaction */
    }
    s->n_cands = out ? out : 1; /* the maximum always passes; guard against NaN thresholds */
}

static float max_live_logit(const struct eng_sampler *s)
{
    if (s->sorted)
        return s->cands[0].logit;
    float m = -INFINITY;
    for (size_t i = 0; i < s->n_cands; i++)
        if (s->cands[i].logit > m)
            m = s->cands[i].logit;
    return m;
}

int32_t eng_sampler_sample(struct eng_sampler *s, const float *logits)
{
    const struct eng_sampler_params *p = &s->p;
    size_t n = (size_t)s->n_vocab;
    bool any_finite = false;

    for (size_t i = 0; i < n; i++) {
        float l = logits[i];
        if (isnan(l))
            l = -INFINITY; /* a broken value never wins */
        else if (l == INFINITY)
            l = FLT_MAX; /* keeps l - max finite in the softmax */
        if (isfinite(l))
            any_finite = true;
        s->cands[i] = (struct cand){.logit = l, .id = (int32_t)i};
    }
    s->n_cands = 0;
    s->sorted = true;
    if (!any_finite)
        return -EINVAL;

    apply_penalties(s);

    if (p->temperature <= 0 || p->top_k == 1) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (s->cands[i].logit > s->cands[best].logit)
                best = i; /* strict: the lowest id wins ties */
        s->cands[0] = s->cands[best];
        s->probs[0] = 1.0f;
        s->n_cands = 1;
        return s->cands[0].id;
    }

    /* Tokens at -inf (masked, or NaN from a broken kernel) never take part. */
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        if (s->cands[i].logit != -INFINITY)
            s->cands[live++] = s->cands[i];
    s->n_cands = live;
    s->sorted = live == 1;

    if (p->top_k > 0 && (size_t)p->top_k < s->n_cands) {
        select_top(s->cands, s->n_cands, (size_t)p->top_k);
        s->n_cands = (size_t)p->top_k;
        qsort(s->cands, s->n_cands, sizeof(*s->cands), cand_cmp);
        s->sorted = true;
    }
    float max_logit = max_live_logit(s);
    if (p->top_p < 1.0f && s->n_cands > 1)
        apply_top_p(s, max_logit);
    if (p->min_p > 0.0f && s->n_cands > 1)
        apply_min_p(s, max_logit);

    /* temperature, softmax and the draw, in double so rounding is the same on every libm
     * that rounds exp() correctly for these ranges */
    double inv_t = 1.0 / (double)p->temperature, sum = 0;
    for (size_t i = 0; i < s->n_cands; i++) {
        s->probs[i] = (float)exp(((double)s->cands[i].logit - max_logit) * inv_t);
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
