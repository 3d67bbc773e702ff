/* Quant formats and kernels: half-precision conversion; bit-exact dequantization of hand-built
 * blocks whose expected values are restated here from the GGUF block definitions; reference dot
 * products against dequantize-then-dot; every SIMD variant the CPU has against the scalar
 * reference on random inputs with odd sizes and tails; and the scalar forward-pass ops. */
#include "ember_test.h"
#include "kernels.h"
#include "quant.h"

#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rndf(void) /* [-1, 1) */
{
    return (float)((double)rnd() / 2147483648.0 - 1.0);
}

static void test_fp16(void)
{
    CHECK_EQ_INT(eng_fp32_to_fp16(1.0f), 0x3C00);
    CHECK_EQ_INT(eng_fp32_to_fp16(-2.0f), 0xC000);
    CHECK_EQ_INT(eng_fp32_to_fp16(65504.0f), 0x7BFF);
    CHECK_EQ_INT(eng_fp32_to_fp16(65520.0f), 0x7C00); /* rounds up to inf */
    CHECK_EQ_INT(eng_fp32_to_fp16(0.5f), 0x3800);
    CHECK_EQ_INT(eng_fp32_to_fp16(5.9604645e-8f), 0x0001);      /* smallest subnormal */
    CHECK_EQ_INT(eng_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3C00); /* tie to even */
    CHECK_EQ_INT(eng_fp32_to_fp16(1.0f + 3.0f / 2048), 0x3C02);
    CHECK(eng_fp16_to_fp32(0x3555) == 0.333251953125f);
    CHECK(eng_fp16_to_fp32(0x0001) == 5.9604645e-8f);
    CHECK(isinf(eng_fp16_to_fp32(0xFC00)) && eng_fp16_to_fp32(0xFC00) < 0);
    int roundtrip = 1;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF))
            continue; /* NaN payloads */
        if (eng_fp32_to_fp16(eng_fp16_to_fp32((eng_fp16)h)) != h)
            roundtrip = 0;
    }
    CHECK(roundtrip);
    CHECK_EQ_INT(eng_fp32_to_bf16(1.0f), 0x3F80);
    CHECK(eng_bf16_to_fp32(0xC040) == -3.0f);
    CHECK_EQ_INT(eng_fp32_to_bf16(1.00390625f), 0x3F80); /* tie to even */
}

/* Inverse of eng_k4_scale_min, written from the layout: sub-blocks 0..3 keep 6-bit scale and
 * min in bytes j and j+4; sub-blocks 4..7 keep their low nibbles in byte j+4 and their top two
 * bits in the high bits of bytes j-4 (scale) and j (min). */
static void pack_k4_scales(uint8_t q[12], const uint8_t sc[8], const uint8_t m[8])
{
    memset(q, 0, 12);
    for (int j = 0; j < 4; j++) {
        q[j] = sc[j];
        q[j + 4] = m[j];
    }
    for (int j = 4; j < 8; j++) {
        q[j + 4] = (uint8_t)((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
        q[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
        q[j] |= (uint8_t)((m[j] >> 4) << 6);
    }
}

static void test_dequant_exact(void)
{
    float y[QK_K];
    int ok;

    struct block_q8_0 q8[2];
    for (int b = 0; b < 2; b++) {
        q8[b].d = b ? 0x4000 /* 2.0 */ : 0x3800 /* 0.5 */;
        for (int j = 0; j < 32; j++)
            q8[b].qs[j] = (int8_t)(j * 8 - 128 + b);
    }
    float y2[64];
    eng_dequant_q8_0(q8, y2, 64);
    ok = 1;
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 32; j++)
            ok &= y2[b * 32 + j] == (b ? 2.0f : 0.5f) * (float)(j * 8 - 128 + b);
    CHECK(ok);

    struct block_q4_0 q4;
    q4.d = 0xC100; /* -2.5 */
    for (int j = 0; j < 16; j++)
        q4.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    eng_dequant_q4_0(&q4, y, 32);
    ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= y[j] == -2.5f * (float)(j - 8);
        ok &= y[j + 16] == -2.5f * (float)(15 - j - 8);
    }
    CHECK(ok);
    CHECK(y[0] == 20.0f && y[16] == -17.5f);

    uint8_t sc[8] = {1, 63, 17, 32, 5, 48, 33, 2}, mn[8] = {0, 7, 63, 16, 40, 1, 31, 62};
    struct block_q4_K k4;
    k4.d = 0x3C00;    /* 1.0 */
    k4.dmin = 0x3400; /* 0.25 */
    pack_k4_scales(k4.scales, sc, mn);
    for (int i = 0; i < 128; i++)
        k4.qs[i] = (uint8_t)(i * 37 + 11);
    eng_dequant_q4_K(&k4, y, QK_K);
    ok = 1;
    for (int e = 0; e < QK_K; e++) {
        int c = e / 64, r = e % 64, sub = e / 32;
        uint8_t byte = k4.qs[32 * c + r % 32];
        int nib = r < 32 ? byte & 0xF : byte >> 4;
        float want = 1.0f * (float)sc[sub] * (float)nib - 0.25f * (float)mn[sub];
        if (y[e] != want) {
            ok = 0;
            fprintf(stderr, "q4_K[%d] = %g, want %g\n", e, y[e], want);
            break;
        }
    }
    CHECK(ok);

    struct block_q5_K k5;
    k5.d = 0x3800;    /* 0.5 */
    k5.dmin = 0x3C00; /* 1.0 */
    pack_k4_scales(k5.scales, sc, mn);
    for (int i = 0; i < 128; i++)
        k5.qs[i] = (uint8_t)(i * 53 + 3);
    for (int i = 0; i < 32; i++)
        k5.qh[i] = (uint8_t)(i * 97 + 5);
    eng_dequant_q5_K(&k5, y, QK_K);
    ok = 1;
    for (int e = 0; e < QK_K; e++) {
        int c = e / 64, r = e % 64, sub = e / 32;
        uint8_t byte = k5.qs[32 * c + r % 32];
        int nib = r < 32 ? byte & 0xF : byte >> 4;
        int hb = (k5.qh[r % 32] >> (2 * c + (r >= 32))) & 1;
        float want = 0.5f * (float)sc[sub] * (float)(nib + 16 * hb) - 1.0f * (float)mn[sub];
        if (y[e] != want) {
            ok = 0;
            fprintf(stderr, "q5_K[%d] = %g, want %g\n", e, y[e], want);
            break;
        }
    }
    CHECK(ok);

    struct block_q6_K k6;
    k6.d = 0x3000; /* 0.125 */
    for (int i = 0; i < 128; i++)
        k6.ql[i] = (uint8_t)(i * 29 + 7);
    for (int i = 0; i < 64; i++)
        k6.qh[i] = (uint8_t)(i * 71 + 1);
    for (int i = 0; i < 16; i++)
        k6.scales[i] = (int8_t)(i * 17 - 128);
    eng_dequant_q6_K(&k6, y, QK_K);
    ok = 1;
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
        uint8_t byte = k6.ql[64 * h + l + (k & 1) * 32];
        int nib = k < 2 ? byte & 0xF : byte >> 4;
        int hi = (k6.qh[32 * h + l] >> (2 * k)) & 3;
        int q = (nib | (hi << 4)) - 32;
        float want = 0.125f * (float)k6.scales[8 * h + l / 16 + 2 * k] * (float)q;
        if (y[e] != want) {
            ok = 0;
            fprintf(stderr, "q6_K[%d] = %g, want %g\n", e, y[e], want);
            break;
        }
    }
    CHECK(ok);

    /* quantization round trips on values the formats represent exactly */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) * 0.25f * (127.0f / 16.0f);
    struct block_q8_0 qq;
    eng_quant_q8_0(x, &qq, 32);
    eng_dequant_q8_0(&qq, y, 32);
    ok = 1;
    for (int j = 0; j < 32; j++)
        ok &= fabsf(y[j] - x[j]) <= 0.5f * eng_fp16_to_fp32(qq.d) + 1e-6f;
    CHECK(ok);
    CHECK_EQ_INT(qq.qs[0], -127);
    for (int j = 0; j < 32; j++)
        x[j] = (float)((j % 16) - 8);
    struct block_q4_0 q40;
    eng_quant_q4_0(x, &q40, 32);
    eng_dequant_q4_0(&q40, y, 32);
    ok = 1;
    for (int j = 0; j < 32; j++)
        ok &= y[j] == x[j];
    CHECK(ok);
}

/* Random valid blocks of a type: random bytes with the scale fields replaced by sane halves. */
static void random_blocks(uint32_t type, void *dst, int n)
{
    const struct eng_type_traits *t = eng_type_traits(type);
    size_t bytes = eng_row_bytes(type, n);
    uint8_t *p = dst;
    if (type == GGUF_TT_F32 || type == GGUF_TT_F16 || type == GGUF_TT_BF16 ||
        type == GGUF_TT_Q8_0 || type == GGUF_TT_Q4_0) {
        float *tmp = malloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++)
            tmp[i] = rndf() * 2.0f;
        t->from_float(tmp, dst, n);
        free(tmp);
        return;
    }
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)rnd();
    for (int b = 0; b < n / QK_K; b++) {
        eng_fp16 d = eng_fp32_to_fp16(0.001f + (float)(rnd() % 1000) * 1e-5f);
        eng_fp16 dm = eng_fp32_to_fp16((float)(rnd() % 1000) * 1e-5f);
        if (type == GGUF_TT_Q4_K) {
            ((struct block_q4_K *)dst)[b].d = d;
            ((struct block_q4_K *)dst)[b].dmin = dm;
        } else if (type == GGUF_TT_Q5_K) {
            ((struct block_q5_K *)dst)[b].d = d;
            ((struct block_q5_K *)dst)[b].dmin = dm;
        } else if (type == GGUF_TT_Q6_K) {
            ((struct block_q6_K *)dst)[b].d = d;
        }
    }
}

static void test_dots(void)
{
    const uint32_t types[] = {GGUF_TT_F32,  GGUF_TT_F16,  GGUF_TT_BF16, GGUF_TT_Q8_0,
                              GGUF_TT_Q4_0, GGUF_TT_Q4_K, GGUF_TT_Q5_K, GGUF_TT_Q6_K};
    const int sizes[] = {1,  7,   8,   15,  16,  17,  31,  32,   33,   63,   64,  65,
                         96, 100, 160, 256, 257, 512, 768, 1000, 1024, 2048, 4096};
    const struct eng_kernels *variants[] = {eng_kernels_avx2(), eng_kernels_avx512(),
                                            eng_kernels_neon()};
    const struct eng_kernels *ref = eng_kernels_scalar();
    printf("cpu features 0x%x, best kernels %s\n", eng_cpu_features(), eng_kernels_best()->name);
    if (!variants[0])
        printf("AVX2 variant skipped: not supported here\n");
    if (!variants[1])
        printf("AVX-512 variant skipped: not supported here\n");
    if (!variants[2])
        printf("NEON variant skipped: not an AArch64 build\n");
    enum { NMAX = 4096 };
    void *w = malloc(NMAX * 4), *aq = malloc(NMAX * 4 + 4096);
    float *a = malloc(NMAX * 4), *wf = malloc(NMAX * 4), *af = malloc(NMAX * 4);
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        uint32_t type = types[ti];
        const struct eng_type_traits *tr = eng_type_traits(type);
        const struct eng_type_traits *at = eng_type_traits(tr->vec_dot_type);
        int ref_ok = 1, var_ok[3] = {1, 1, 1}, tested = 0;
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            int n = sizes[si];
            if (n % (int)tr->blck)
                continue;
            for (int rep = 0; rep < 3; rep++) {
                tested++;
                random_blocks(type, w, n);
                for (int i = 0; i < n; i++)
                    a[i] = rndf() * (rep == 2 ? 100.0f : 1.0f);
                if (tr->vec_dot_type == GGUF_TT_Q8_0)
                    ref->quant_q8_0(a, aq, n);
                else if (tr->vec_dot_type == GGUF_TT_Q8_K)
                    ref->quant_q8_K(a, aq, n);
                else
                    memcpy(aq, a, (size_t)n * 4);
                tr->to_float(w, wf, n);
                at->to_float(aq, af, n);
                double exact = 0, mag = 0;
                for (int i = 0; i < n; i++) {
                    exact += (double)wf[i] * af[i];
                    mag += fabs((double)wf[i] * af[i]);
                }
                float r = ref->dot[type](n, w, aq);
                double tol = 1e-5 * mag + 1e-6;
                if (fabs(r - exact) > tol) {
                    ref_ok = 0;
                    fprintf(stderr, "%s n=%d: ref dot %.9g, dequantized dot %.9g\n", tr->name, n, r,
                            exact);
                }
                for (int v = 0; v < 3; v++) {
                    if (!variants[v])
                        continue;
                    if (variants[v]->dot_x4[type] && rep == 0) {
                        /* four activation rows: the same one, then three fresh ones */
                        size_t arow = eng_row_bytes(tr->vec_dot_type, n);
                        char *a4 = malloc(arow * 4), *tmp = malloc((size_t)n * 4);
                        for (int t = 0; t < 4; t++) {
                            for (int i = 0; i < n; i++)
                                ((float *)tmp)[i] = t ? rndf() * 3.0f : a[i];
                            at->from_float((const float *)tmp, a4 + arow * t, n);
                        }
                        float o[4];
                        variants[v]->dot_x4[type](n, w, a4, arow, NULL, 0, o);
                        for (int t = 0; t < 4; t++) {
                            float rt = ref->dot[type](n, w, a4 + arow * t);
                            if (fabs(o[t] - rt) > 1e-5 * fabs(rt) + 1e-4 + tol) {
                                var_ok[v] = 0;
                                fprintf(stderr, "%s %s x4 n=%d row %d: %.9g vs ref %.9g\n",
                                        variants[v]->name, tr->name, n, t, o[t], rt);
                            }
                        }
                        free(a4);
                        free(tmp);
                    }
                    float s = variants[v]->dot[type](n, w, aq);
                    if (fabs(s - r) > tol) {
                        var_ok[v] = 0;
                        fprintf(stderr, "%s %s n=%d: %.9g vs ref %.9g\n", variants[v]->name,
                                tr->name, n, s, r);
                    }
                }
            }
        }
        CHECK_MSG(tested > 0, "%s: no sizes", tr->name);
        CHECK_MSG(ref_ok, "%s reference dot", tr->name);
        CHECK_MSG(var_ok[0], "%s avx2 dot", tr->name);
        CHECK_MSG(var_ok[1], "%s avx512 dot", tr->name);
        CHECK_MSG(var_ok[2], "%s neon dot", tr->name);
    }

    /* activation quantization and the small vector helpers, bit for bit where exact */
    for (int v = 0; v < 3; v++) {
        const struct eng_kernels *k = variants[v];
        if (!k)
            continue;
        int ok = 1;
        for (int n = 32; n <= 2048; n += 32 * 7) {
            for (int i = 0; i < n; i++)
                a[i] = rndf() * 10.0f;
            a[3] = 0.5f * 0; /* exact zeros and a whole zero block */
            if (n >= 64)
                memset(a + 32, 0, 32 * sizeof(float));
            ref->quant_q8_0(a, w, n);
            k->quant_q8_0(a, aq, n);
            ok &= memcmp(w, aq, eng_row_bytes(GGUF_TT_Q8_0, n)) == 0;
        }
        CHECK_MSG(ok, "%s quant_q8_0 bit-exact", k->name);
        ok = 1;
        for (int n = 256; n <= 2048; n += 256 * 3) {
            for (int i = 0; i < n; i++)
                a[i] = rndf() * (i % 5 == 0 ? 100.0f : 10.0f);
            if (n > 256) /* a whole zero block */
                memset(a + 256, 0, 256 * sizeof(float));
            ref->quant_q8_K(a, w, n);
            k->quant_q8_K(a, aq, n);
            ok &= memcmp(w, aq, eng_row_bytes(GGUF_TT_Q8_K, n)) == 0;
        }
        CHECK_MSG(ok, "%s quant_q8_K bit-exact", k->name);
        ok = 1;
        for (int n = 1; n < 300; n += 13) {
            for (int i = 0; i < n; i++)
                a[i] = rndf() * 1000.0f;
            ref->f32_to_f16(a, w, n);
            k->f32_to_f16(a, (eng_fp16 *)aq, n);
            ok &= memcmp(w, aq, (size_t)n * 2) == 0;
            for (int i = 0; i < n; i++)
                wf[i] = af[i] = rndf();
            ref->axpy_f16(n, 0.75f, w, wf);
            k->axpy_f16(n, 0.75f, w, af);
            for (int i = 0; i < n; i++)
                ok &= fabsf(wf[i] - af[i]) <= 1e-3f;
            ref->axpy_f32(n, -1.5f, a, wf);
            k->axpy_f32(n, -1.5f, a, af);
            for (int i = 0; i < n; i++)
                ok &= fabsf(wf[i] - af[i]) <= 2e-3f;
        }
        CHECK_MSG(ok, "%s f16 convert / axpy", k->name);
        /* attention over an F16 cache with odd head sizes and strides; NEON keeps the
         * reference's operations per output, so it must match bit for bit */
        ok = 1;
        const int exact_attn = k == eng_kernels_neon();
        const int hds[] = {8, 40, 64, 100, 128, 6, 66}, npos[] = {1, 7, 300, 12};
        for (size_t hi = 0; hi < sizeof(hds) / sizeof(hds[0]); hi++) {
            for (size_t pi = 0; pi < sizeof(npos) / sizeof(npos[0]); pi++) {
                int hd = hds[hi], np = npos[pi];
                size_t stride = (size_t)hd * 3 + 5;
                eng_fp16 *kv = malloc(stride * (size_t)np * 2);
                float *q = malloc((size_t)hd * 4), *r1 = malloc((size_t)np * 4 + (size_t)hd * 4);
                float *r2 = malloc((size_t)np * 4 + (size_t)hd * 4);
                for (size_t i = 0; i < stride * (size_t)np; i++)
                    kv[i] = eng_fp32_to_fp16(rndf());
                for (int i = 0; i < hd; i++)
                    q[i] = rndf();
                ref->attn_scores_f16(hd, kv, stride, np, q, 0.125f, r1);
                k->attn_scores_f16(hd, kv, stride, np, q, 0.125f, r2);
                for (int p = 0; p < np; p++)
                    ok &= exact_attn ? memcmp(&r1[p], &r2[p], sizeof(float)) == 0
                                     : fabsf(r1[p] - r2[p]) <= 1e-5f * (float)hd;
                for (int p = 0; p < np; p++)
                    r1[p] = fabsf(rndf()) / (float)np;
                ref->attn_values_f16(hd, kv, stride, np, r1, r1 + np);
                k->attn_values_f16(hd, kv, stride, np, r1, r2 + np);
                for (int i = 0; i < hd; i++)
                    ok &= exact_attn ? memcmp(&r1[np + i], &r2[np + i], sizeof(float)) == 0
                                     : fabsf(r1[np + i] - r2[np + i]) <= 1e-5f;
                free(kv);
                free(q);
                free(r1);
                free(r2);
            }
        }
        CHECK_MSG(ok, "%s attention kernels%s", k->name, exact_attn ? " (bit for bit)" : "");
        ok = 1;
        for (int n = 1; n < 700; n += 37) {
            float max = -INFINITY;
            for (int i = 0; i < n; i++) {
                wf[i] = af[i] = rndf() * (n % 2 ? 30.0f : 3.0f) - (i % 5 == 0 ? 100.0f : 0.0f);
                max = wf[i] > max ? wf[i] : max;
            }
            float s_ref = ref->exp_sum(wf, n, max), s_k = k->exp_sum(af, n, max);
            for (int i = 0; i < n; i++)
                ok &= fabsf(wf[i] - af[i]) <= 1e-6f * (1.0f + wf[i] * 10.0f);
            ok &= fabsf(s_ref - s_k) <= 1e-5f * s_ref;
        }
        CHECK_MSG(ok, "%s exp_sum (softmax numerators)", k->name);
    }
    free(w);
    free(aq);
    free(a);
    free(wf);
    free(af);
}

static void test_ops(void)
{
    float x[8] = {1, 2, 3, 4, -1, -2, -3, -4}, w[8] = {1, 1, 1, 1, 2, 2, 2, 2}, y[8];
    eng_rmsnorm(y, x, w, 8, 0.0f);
    float rms = sqrtf(60.0f / 8.0f);
    CHECK_NEAR(y[1], 2.0f / rms, 1e-6);
    CHECK_NEAR(y[7], -8.0f / rms, 1e-6);

    /* RoPE at position 0 is the identity; at position 1 the first pair turns by 1 radian */
    float r[8] = {1, 0, 1, 0, 1, 0, 1, 0};
    eng_rope(r, 1, 8, 8, 0, 10000.0f, 1.0f, NULL, 0);
    CHECK(r[0] == 1 && r[1] == 0);
    eng_rope(r, 1, 8, 8, 1, 10000.0f, 1.0f, NULL, 0);
    CHECK_NEAR(r[0], cos(1.0), 1e-6);
    CHECK_NEAR(r[1], sin(1.0), 1e-6);
    CHECK_NEAR(r[2], cos(0.1), 1e-6); /* theta = 10000^(-2/8) = 0.1 */
    /* NEOX pairs element i with i + n_rot/2 */
    float q[8] = {1, 1, 0, 0, 0, 0, 0, 0};
    eng_rope(q, 1, 8, 8, 1, 10000.0f, 1.0f, NULL, 1);
    CHECK_NEAR(q[0], cos(1.0), 1e-6);
    CHECK_NEAR(q[4], sin(1.0), 1e-6);
    CHECK_NEAR(q[1], cos(0.1), 1e-6);
    CHECK_NEAR(q[5], sin(0.1), 1e-6);

    /* angles computed once and applied equal the one-step reference, both orderings, with
     * llama3-style frequency divisors and a partial rotation (n_rot < head_dim) */
    float ff[8] = {1, 2, 4, 8, 1, 1, 1, 1}, cs[16], h1[2 * 24], h2[2 * 24];
    for (int neox = 0; neox < 2; neox++) {
        for (int i = 0; i < 48; i++)
            h1[i] = h2[i] = rndf();
        float untouched = h1[20];
        eng_rope(h1, 2, 24, 16, 37, 500000.0f, 0.5f, ff, neox);
        eng_rope_angles(cs, 16, 37, 500000.0f, 0.5f, ff);
        eng_rope_apply(h2, 2, 24, 16, cs, neox);
        int same = 1;
        for (int i = 0; i < 48; i++)
            same &= h1[i] == h2[i];
        CHECK_MSG(same, "rope angles+apply (neox %d) differ from eng_rope", neox);
        CHECK(h1[20] == untouched); /* dims past n_rot are not rotated */
    }

    float s[4] = {1, 2, 3, 1000};
    eng_softmax(s, 3);
    CHECK_NEAR(s[0] + s[1] + s[2], 1.0, 1e-6);
    CHECK_NEAR(s[2] / s[1], exp(1.0), 1e-5);
    float g[2] = {0, 2}, u[2] = {3, 4}, o[2];
    eng_swiglu(o, g, u, 2);
    CHECK_NEAR(o[0], 0, 1e-7);
    CHECK_NEAR(o[1], 2.0 / (1.0 + exp(-2.0)) * 4, 1e-5);
}

int main(void)
{
    test_fp16();
    test_dequant_exact();
    test_dots();
    test_ops();
    return et_finish();
}
