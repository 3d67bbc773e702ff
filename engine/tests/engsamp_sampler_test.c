/* Sampler tests: each filter against a hand-computed distribution, penalties on the right
 * logits, greedy equivalences, the PRNG against an independent Python implementation of
 * splitmix64 + xoshiro256** (golden draws below), and draw frequencies over many samples. */
#include "ember_test.h"

#include "engine/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

static struct eng_sampler_params plain(float temp)
{
    struct eng_sampler_params p;
    eng_sampler_params_defaults(&p);
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    return p;
}

static struct eng_sampler *mk(int32_t n, const struct eng_sampler_params *p)
{
    struct eng_sampler *s = NULL;
    char err[128];
    int r = eng_sampler_new(n, p, &s, err, sizeof(err));
    CHECK_MSG(r == 0 && s, "eng_sampler_new: %d %s", r, err);
    return s;
}

/* logits = log(probs): softmax at temperature 1 gives probs back */
static void logits_from_probs(float *l, const double *probs, int n)
{
    for (int i = 0; i < n; i++)
        l[i] = (float)log(probs[i]);
}

static void test_greedy(void)
{
    float l[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, -INFINITY};
    struct eng_sampler_params p = plain(0.0f);
    struct eng_sampler *s = mk(6, &p);
    CHECK_EQ_INT(eng_sampler_sample(s, l), 1); /* tie between 1 and 3: lowest id */
    const int32_t *ids;
    const float *probs;
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 1);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_NEAR(probs[0], 1.0, 0);
    eng_sampler_free(s);

    /* top-k = 1 is greedy at any temperature, over many random logit rows */
    p = plain(1.5f);
    p.top_k = 1;
    struct eng_sampler_params g = plain(0.0f);
    struct eng_sampler *s1 = mk(97, &p), *s2 = mk(97, &g);
    uint32_t x = 12345;
    float row[97];
    int same = 0;
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i < 97; i++) {
            x = x * 1664525u + 1013904223u;
            row[i] = (float)(x >> 8) / (float)(1 << 24) * 10.0f - 5.0f;
        }
        same += eng_sampler_sample(s1, row) == eng_sampler_sample(s2, row);
    }
    CHECK_EQ_INT(same, 200);
    eng_sampler_free(s1);
    eng_sampler_free(s2);
}

static void test_top_k(void)
{
    double pr[5] = {0.1, 0.4, 0.05, 0.3, 0.15};
    float l[5];
    logits_from_probs(l, pr, 5);
    struct eng_sampler_params p = plain(1.0f);
    p.top_k = 2;
    struct eng_sampler *s = mk(5, &p);
    int32_t t = eng_sampler_sample(s, l);
    CHECK(t == 1 || t == 3);
    const int32_t *ids;
    const float *probs;
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 3);
    CHECK_NEAR(probs[0], 0.4 / 0.7, 1e-6);
    CHECK_NEAR(probs[1], 0.3 / 0.7, 1e-6);
    eng_sampler_free(s);
}

static void test_top_p(void)
{
    double pr[5] = {0.05, 0.5, 0.15, 0.3, 0.0 + 1e-9};
    float l[5];
    logits_from_probs(l, pr, 5);
    const int32_t *ids;
    const float *probs;

    struct eng_sampler_params p = plain(1.0f);
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.5 + 0.3: the nucleus is {1, 3} */
    struct eng_sampler *s = mk(5, &p);
    eng_sampler_sample(s, l);
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 3);
    CHECK_NEAR(probs[0], 0.5 / 0.8, 1e-6);
    eng_sampler_free(s);

    p.top_p = 0.85f; /* needs the third: {1, 3, 2} */
    s = mk(5, &p);
    eng_sampler_sample(s, l);
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 3);
    CHECK_EQ_INT(ids[2], 2);
    CHECK_NEAR(probs[2], 0.15 / 0.95, 1e-6);
    eng_sampler_free(s);

    p.top_p = 0.4f; /* the top token alone covers it */
    s = mk(5, &p);
    CHECK_EQ_INT(eng_sampler_sample(s, l), 1);
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 1);
    eng_sampler_free(s);
}

/* The incremental sort of top-p against a straightforward full-sort reference on a large
 * vocabulary (several chunk doublings). */
static int cmp_desc(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : (x[1] > y[1]) - (x[1] < y[1]);
}

static void test_top_p_large(void)
{
    enum { N = 50000 };
    static float l[N];
    static double ref[N][2];
    uint64_t x = 99;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        l[i] = (float)((double)(x >> 11) * 0x1.0p-53 * 12.0);
        ref[i][0] = l[i];
        ref[i][1] = i;
    }
    qsort(ref, N, sizeof(ref[0]), cmp_desc);
    double mx = ref[0][0], tot = 0;
    for (int i = 0; i < N; i++)
        tot += exp(ref[i][0] - mx);
    double cum = 0;
    size_t want = 0;
    while (want < N) {
        cum += exp(ref[want][0] - mx);
        want++;
        if (cum >= 0.5 * tot)
            break;
    }
    struct eng_sampler_params p = plain(1.0f);
    p.top_p = 0.5f;
    struct eng_sampler *s = mk(N, &p);
    eng_sampler_sample(s, l);
    const int32_t *ids;
    const float *probs;
    size_t n = eng_sampler_last_dist(s, &ids, &probs);
    CHECK_EQ_INT(n, want);
    CHECK(want > 1000); /* really exercised the chunked sort */
    int mismatch = 0;
    for (size_t i = 0; i < n && i < want; i++)
        mismatch += ids[i] != (int32_t)ref[i][1];
    CHECK_EQ_INT(mismatch, 0);
    eng_sampler_free(s);
}

/* A literal reference of the chain (llama.cpp order: top-k, top-p, min-p) that sorts the whole
 * vocabulary, against the sampler's selective paths on random rows and parameters. It sums the
 * same float exponentials in the same orders as the sampler, so the sets must match exactly. */
static int ref_cmp(const void *a, const void *b)
{
    const float *x = a, *y = b; /* pairs {logit, id} */
    if (x[0] != y[0])
        return x[0] > y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

static size_t ref_chain(const float *l, int n, const struct eng_sampler_params *p, int32_t *out)
{
    static float v[4096][2];
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (l[i] > mx)
            mx = l[i];
    double total_all = 0;
    for (int i = 0; i < n; i++)
        total_all += (double)expf(l[i] - mx);
    for (int i = 0; i < n; i++) {
        v[i][0] = l[i];
        v[i][1] = (float)i;
    }
    qsort(v, (size_t)n, sizeof(v[0]), ref_cmp);
    size_t m = (size_t)n;
    bool topk = p->top_k > 0 && p->top_k < n;
    if (topk)
        m = (size_t)p->top_k;
    if (p->top_p < 1.0f) {
        double total = 0;
        if (topk)
            for (size_t i = 0; i < m; i++)
                total += (double)expf(v[i][0] - mx);
        else
            total = total_all;
        double target = (double)p->top_p * total, cum = 0;
        for (size_t i = 0; i < m; i++) {
            cum += (double)expf(v[i][0] - mx);
            if (cum >= target) {
                m = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        float th = mx + logf(p->min_p);
        size_t k = 0;
        while (k < m && v[k][0] >= th)
            k++;
        m = k ? k : 1;
    }
    for (size_t i = 0; i < m; i++)
        out[i] = (int32_t)v[i][1];
    return m;
}

static void test_against_reference(void)
{
    enum { N = 3000 };
    static float l[N];
    static int32_t want[N];
    uint64_t x = 2024;
    int bad = 0, runs = 0;
    for (int t = 0; t < 60; t++) {
        struct eng_sampler_params p = plain(1.0f);
        p.top_k = (t % 3 == 0) ? 0 : (int32_t)(1 + (t * 37) % 400);
        p.top_p = (t % 4 == 0) ? 1.0f : 0.5f + 0.49f * (float)((t * 7) % 10) / 10.0f;
        p.min_p = (t % 5 < 2) ? 0.0f : 0.01f * (float)(t % 7);
        if (p.top_k == 1)
            p.top_k = 2;
        float spread = 2.0f + (float)(t % 6) * 3.0f;
        for (int i = 0; i < N; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            /* quantized values: plenty of exact ties to exercise the id order */
            l[i] = (float)(int)((double)(x >> 11) * 0x1.0p-53 * 64.0) * spread / 64.0f;
        }
        struct eng_sampler *s = mk(N, &p);
        eng_sampler_sample(s, l);
        const int32_t *ids;
        const float *probs;
        size_t n = eng_sampler_last_dist(s, &ids, &probs);
        size_t m = ref_chain(l, N, &p, want);
        runs++;
        if (n != m || memcmp(ids, want, n * sizeof(*ids)) != 0) {
            bad++;
            fprintf(stderr, "case %d: top_k %d top_p %.3f min_p %.2f: %zu ids, reference %zu\n", t,
                    (int)p.top_k, (double)p.top_p, (double)p.min_p, n, m);
        }
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += probs[i];
        CHECK_NEAR(sum, 1.0, 1e-4);
        eng_sampler_free(s);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(runs, 60);
}

static void test_min_p(void)
{
    double pr[5] = {0.05, 0.5, 0.15, 0.3, 1e-9};
    float l[5];
    logits_from_probs(l, pr, 5);
    const int32_t *ids;
    const float *probs;
    struct eng_sampler_params p = plain(1.0f);
    p.min_p = 0.2f; /* threshold 0.1: keeps 0.5, 0.3, 0.15 */
    struct eng_sampler *s = mk(5, &p);
    eng_sampler_sample(s, l);
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 3);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 3);
    CHECK_EQ_INT(ids[2], 2);
    CHECK_NEAR(probs[2], 0.15 / 0.95, 1e-6);
    eng_sampler_free(s);

    p.min_p = 0.7f; /* threshold 0.35: only the top */
    s = mk(5, &p);
    CHECK_EQ_INT(eng_sampler_sample(s, l), 1);
    CHECK_EQ_INT(eng_sampler_last_dist(s, &ids, &probs), 1);
    eng_sampler_free(s);
}

static void test_penalties(void)
{
    float l[6] = {2.0f, -1.0f, 0.5f, 1.0f, 0.0f, 3.0f};
    const int32_t *ids;
    const float *probs;

    /* repetition penalty 2 on the window {1, 5, 5}: -1 -> -2, 3 -> 1.5 */
    struct eng_sampler_params p = plain(1.0f);
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 3;
    struct eng_sampler *s = mk(6, &p);
    eng_sampler_accept(s, 4); /* pushed out of the 3-token window below */
    eng_sampler_accept(s, 0);
    eng_sampler_accept(s, 1);
    eng_sampler_accept(s, 5);
    eng_sampler_accept(s, 5); /* counted twice, penalized once */
    /* window is now {1, 5, 5}: token 0 fell out too */
    eng_sampler_sample(s, l);
    size_t n = eng_sampler_last_dist(s, &ids, &probs);
    CHECK_EQ_INT(n, 6);
    double want[6] = {2.0, -2.0, 0.5, 1.0, 0.0, 1.5}, z = 0;
    for (int i = 0; i < 6; i++)
        z += exp(want[i]);
    for (size_t i = 0; i < n; i++)
        CHECK_NEAR(probs[i], exp(want[ids[i]]) / z, 1e-6);
    CHECK_EQ_INT(ids[0], 0); /* 2.0 beats the penalized 1.5 */
    eng_sampler_free(s);

    /* presence once, frequency per occurrence: token 5 seen twice, token 3 once */
    p = plain(0.0f);
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.penalty_last_n = 8;
    s = mk(6, &p);
    eng_sampler_accept(s, 5);
    eng_sampler_accept(s, 5);
    eng_sampler_accept(s, 3);
    /* 5: 3.0 - 0.5 - 0.5 = 2.0 ties token 0 at 2.0 -> lowest id (0) wins */
    CHECK_EQ_INT(eng_sampler_sample(s, l), 0);
    p.presence_penalty = 0.4f; /* 5: 3.0 - 0.4 - 0.5 = 2.1 > 2.0 */
    eng_sampler_free(s);
    s = mk(6, &p);
    eng_sampler_accept(s, 5);
    eng_sampler_accept(s, 5);
    CHECK_EQ_INT(eng_sampler_sample(s, l), 5);
    eng_sampler_reset(s); /* history gone: no penalty */
    CHECK_EQ_INT(eng_sampler_sample(s, l), 5);
    eng_sampler_free(s);

    /* penalty_last_n = 0 disables the window entirely */
    p = plain(0.0f);
    p.repeat_penalty = 100.0f;
    p.penalty_last_n = 0;
    s = mk(6, &p);
    eng_sampler_accept(s, 5);
    CHECK_EQ_INT(eng_sampler_sample(s, l), 5);
    eng_sampler_free(s);
}

/* Golden draws: seed 42 and seed 0, 16 equal logits, so token = floor(16 * u) for the
 * xoshiro256** uniform u. Expected values from an independent Python implementation of
 * splitmix64 seeding + xoshiro256** (prng.di.unimi.it reference code). */
static void test_seed_golden(void)
{
    static const int g42[24] = {1,  6, 10, 14, 15, 12, 11, 13, 12, 9, 10, 4,
                                12, 5, 11, 14, 9,  13, 11, 11, 1,  2, 6,  9};
    static const int g0[24] = {9, 11, 1, 6, 11, 15, 6, 8, 13, 14, 1, 1,
                               1, 10, 7, 4, 11, 3,  8, 0, 4,  7,  5, 10};
    float l[16] = {0};
    struct eng_sampler_params p = plain(1.0f);
    p.seed = 42;
    struct eng_sampler *s = mk(16, &p);
    int bad = 0;
    for (int i = 0; i < 24; i++)
        bad += eng_sampler_sample(s, l) != g42[i];
    CHECK_EQ_INT(bad, 0);
    eng_sampler_set_seed(s, 0);
    bad = 0;
    for (int i = 0; i < 24; i++)
        bad += eng_sampler_sample(s, l) != g0[i];
    CHECK_EQ_INT(bad, 0);
    eng_sampler_free(s);

    /* same seed, same sequence after reset; another seed differs */
    double pr[4] = {0.1, 0.2, 0.3, 0.4};
    float l4[4];
    logits_from_probs(l4, pr, 4);
    p.seed = 7;
    struct eng_sampler *a = mk(4, &p), *b = mk(4, &p);
    p.seed = 8;
    struct eng_sampler *c = mk(4, &p);
    int seq_a[100], same_ab = 0, same_ac = 0, same_reset = 0;
    for (int i = 0; i < 100; i++) {
        seq_a[i] = eng_sampler_sample(a, l4);
        same_ab += seq_a[i] == eng_sampler_sample(b, l4);
        same_ac += seq_a[i] == eng_sampler_sample(c, l4);
    }
    eng_sampler_reset(a);
    for (int i = 0; i < 100; i++)
        same_reset += seq_a[i] == eng_sampler_sample(a, l4);
    CHECK_EQ_INT(same_ab, 100);
    CHECK_EQ_INT(same_reset, 100);
    CHECK(same_ac < 100);
    eng_sampler_free(a);
    eng_sampler_free(b);
    eng_sampler_free(c);
}

/* Frequencies of 200000 draws against the distribution, within 5 standard deviations;
 * then temperature 2 flattens p to p^(1/2) (normalized). */
static void check_freqs(float temp, const double *want)
{
    enum { DRAWS = 200000 };
    double pr[4] = {0.1, 0.2, 0.3, 0.4};
    float l[4];
    logits_from_probs(l, pr, 4);
    struct eng_sampler_params p = plain(temp);
    p.seed = 2024;
    struct eng_sampler *s = mk(4, &p);
    long cnt[4] = {0};
    for (int i = 0; i < DRAWS; i++) {
        int32_t t = eng_sampler_sample(s, l);
        if (t >= 0 && t < 4)
            cnt[t]++;
    }
    for (int i = 0; i < 4; i++) {
        double sd = sqrt(DRAWS * want[i] * (1 - want[i]));
        CHECK_MSG(fabs(cnt[i] - DRAWS * want[i]) <= 5 * sd,
                  "temp %.1f token %d: %ld draws, want %.0f", temp, i, cnt[i], DRAWS * want[i]);
    }
    eng_sampler_free(s);
}

static void test_statistics(void)
{
    double w1[4] = {0.1, 0.2, 0.3, 0.4};
    check_freqs(1.0f, w1);
    double w2[4], z = 0;
    for (int i = 0; i < 4; i++)
        z += sqrt(w1[i]);
    for (int i = 0; i < 4; i++)
        w2[i] = sqrt(w1[i]) / z;
    check_freqs(2.0f, w2);
}

static void test_bad_input(void)
{
    struct eng_sampler_params p = plain(1.0f);
    struct eng_sampler *s = NULL;
    char err[128] = "";
    p.temperature = -1.0f;
    CHECK_EQ_INT(eng_sampler_new(10, &p, &s, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "temperature");
    CHECK(s == NULL);
    p = plain(1.0f);
    p.top_p = 0.0f;
    CHECK_EQ_INT(eng_sampler_new(10, &p, &s, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "top_p");
    p = plain(1.0f);
    p.temperature = NAN;
    CHECK_EQ_INT(eng_sampler_params_validate(&p, err, sizeof(err)), -EINVAL);
    p = plain(1.0f);
    CHECK_EQ_INT(eng_sampler_new(0, &p, &s, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "n_vocab");

    /* NaN logits never win; all-NaN is an error, not a crash */
    float l[4] = {NAN, 1.0f, NAN, 0.5f};
    s = mk(4, &p);
    for (int i = 0; i < 50; i++) {
        int32_t t = eng_sampler_sample(s, l);
        CHECK(t == 1 || t == 3);
    }
    float bad[4] = {NAN, NAN, -INFINITY, NAN};
    CHECK_EQ_INT(eng_sampler_sample(s, bad), -EINVAL);
    float inf[4] = {0.0f, INFINITY, 1.0f, 2.0f};
    CHECK_EQ_INT(eng_sampler_sample(s, inf), 1);
    eng_sampler_accept(s, -3); /* ignored, no crash */
    eng_sampler_accept(s, 4);
    eng_sampler_free(s);
    eng_sampler_free(NULL);
}

int main(void)
{
    test_greedy();
    test_top_k();
    test_top_p();
    test_top_p_large();
    test_against_reference();
    test_min_p();
    test_penalties();
    test_seed_golden();
    test_statistics();
    test_bad_input();
    return et_finish();
}
