/* AVX2 + FMA + F16C kernels: float dot products with four 8-wide accumulators, F16/BF16 weights
 * widened in registers, and the integer block dot products (Q8_0, Q4_0 against Q8_0 activations;
 * Q4_K, Q5_K, Q6_K against Q8_K) built on maddubs (u8 x s8 -> s16 pairs), and the Q8_0 / Q8_K
 * activation quantizers (bit-identical to quant.c's). Compiled with
 * -mavx2 -mfma -mf16c and only called when CPUID says the machine has them. */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum_ps(__m256 v)
{
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

static inline float h2f(eng_fp16 h)
{
    return _cvtsh_ss(h);
}

static float dot_f32(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

static inline __m256 load_f16(const eng_fp16 *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static float dot_f16(int n, const void *w, const void *a)
{
    const eng_fp16 *x = w;
    const float *y = a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(load_f16(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(load_f16(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += h2f(x[i]) * y[i];
    return s;
}

static inline __m256 load_bf16(const eng_bf16 *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static float dot_bf16(int n, const void *w, const void *a)
{
    const eng_bf16 *x = w;
    const float *y = a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(load_bf16(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += eng_bf16_to_fp32(x[i]) * y[i];
    return s;
}

/* Signed x signed bytes -> 8 float sums of 4 products: maddubs wants one unsigned operand, so
 * move x's sign onto y. Inputs stay within [-127, 127] (Q4_0: [-8, 7]), so no saturation. */
static inline __m256i dot_i8_i32(__m256i x, __m256i y)
{
    __m256i dot = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(dot, _mm256_set1_epi16(1));
}

/* Q8_0 and Q4_0 rows with the arithmetic of pack.h (the panel kernels' and eng_dot_*_ref's):
 * exact integer block sums, then s = s + (float)isum * (dw * da) block after block. Eight blocks'
 * sums are reduced together (hadd tree) and their products added in block order, so plain rows
 * (use_mmap decode) give the packed path's results bit for bit. */
static inline __m256i reduce8_epi32(const __m256i v[8])
{
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

static inline __m256i unpack_q4(const uint8_t *qs)
{
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

static inline int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i q8_block_isum(const struct block_q8_0 *x, const struct block_q8_0 *y)
{
    return dot_i8_i32(_mm256_loadu_si256((const __m256i *)x->qs),
                      _mm256_loadu_si256((const __m256i *)y->qs));
}

static inline __m256i q4_block_isum(const struct block_q4_0 *x, const struct block_q8_0 *y)
{
    return dot_i8_i32(_mm256_sub_epi8(unpack_q4(x->qs), _mm256_set1_epi8(8)),
                      _mm256_loadu_si256((const __m256i *)y->qs));
}

#define BLOCK_DOT(NAME, WTYPE, ISUM)                                                      \
    static float NAME(int n, const void *w, const void *a)                                \
    {                                                                                     \
        const WTYPE *x = w;                                                               \
        const struct block_q8_0 *y = a;                                                   \
        int nb = n / QK8_0, i = 0;                                                        \
        float s = 0;                                                                      \
        for (; i + 8 <= nb; i += 8) {                                                     \
            __m256i v[8];                                                                 \
            float dw[8], da[8], p[8];                                                     \
            for (int k = 0; k < 8; k++) {                                                 \
                v[k] = ISUM(&x[i + k], &y[i + k]);                                        \
                dw[k] = h2f(x[i + k].d);                                                  \
                da[k] = h2f(y[i + k].d);                                                  \
            }                                                                             \
            __m256 sc = _mm256_mul_ps(_mm256_loadu_ps(dw), _mm256_loadu_ps(da));          \
            _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_cvtepi32_ps(reduce8_epi32(v)), sc)); \
            for (int k = 0; k < 8; k++)                                                   \
                s = s + p[k];                                                             \
        }                                                                                 \
        for (; i < nb; i++)                                                               \
            s = s + (float)hsum_epi32(ISUM(&x[i], &y[i])) * (h2f(x[i].d) * h2f(y[i].d));  \
        return s;                                                                         \
    }

BLOCK_DOT(dot_q8_0, struct block_q8_0, q8_block_isum)
BLOCK_DOT(dot_q4_0, struct block_q4_0, q4_block_isum)

/* 32 unsigned quants u (< 64) times 32 signed q8, each half of 16 weighted by its own scale. */
static inline __m256i dot_u8_scaled(__m256i u, const int8_t *q8, int16_t sc_lo, int16_t sc_hi)
{
    __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)q8));
    return _mm256_madd_epi16(p, _mm256_set_m128i(_mm_set1_epi16(sc_hi), _mm_set1_epi16(sc_lo)));
}

/* Unpacks the 12-byte Q4_K/Q5_K scales field into 8 scales (bytes 0..7 of *sc) and 8 mins
 * (bytes 0..7 of *mn) without branches: the same bit moves as eng_k4_scale_min, four bytes at a
 * time. */
static inline void k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8])
{
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t u[3], o[4];
    memcpy(u, q, 12);
    o[0] = u[0] & m6;
    o[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    o[2] = u[1] & m6;
    o[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    memcpy(sc, o, 8);
    memcpy(mn, o + 2, 8);
}

/* sum_j mn[j] * (bsums[2j] + bsums[2j+1]) for the 8 sub-blocks of 32. */
static inline int32_t k4_min_sum(const uint8_t mn[8], const int16_t bsums[16])
{
    __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
    __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
    __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
    __m128i pairs = _mm_hadd_epi16(b0, b1); /* |pair| <= 32 * 127: no overflow */
    __m128i p = _mm_madd_epi16(m, pairs);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4E));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

static float dot_q4_K(int n, const void *w, const void *a)
{
    const struct block_q4_K *x = w;
    const struct block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], m[8];
        k4_scales(x[i].scales, sc, m);
        int32_t sm = k4_min_sum(m, y[i].bsums);
        __m256i si = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            si = _mm256_add_epi32(si, dot_u8_scaled(lo, y[i].qs + 64 * j, sc[2 * j], sc[2 * j]));
            si = _mm256_add_epi32(
                si, dot_u8_scaled(hi, y[i].qs + 64 * j + 32, sc[2 * j + 1], sc[2 * j + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * y[i].d), _mm256_cvtepi32_ps(si), acc);
        summ += h2f(x[i].dmin) * y[i].d * (float)sm;
    }
    return hsum_ps(acc) - summ;
}

static float dot_q5_K(int n, const void *w, const void *a)
{
    const struct block_q5_K *x = w;
    const struct block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], m[8];
        k4_scales(x[i].scales, sc, m);
        int32_t sm = k4_min_sum(m, y[i].bsums);
        __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i si = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            __m256i bit_lo = _mm256_set1_epi8((char)(1 << (2 * j)));
            __m256i bit_hi = _mm256_set1_epi8((char)(1 << (2 * j + 1)));
            __m256i h_lo =
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), b16);
            __m256i h_hi =
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), b16);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), h_lo);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h_hi);
            si = _mm256_add_epi32(si, dot_u8_scaled(lo, y[i].qs + 64 * j, sc[2 * j], sc[2 * j]));
            si = _mm256_add_epi32(
                si, dot_u8_scaled(hi, y[i].qs + 64 * j + 32, sc[2 * j + 1], sc[2 * j + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * y[i].d), _mm256_cvtepi32_ps(si), acc);
        summ += h2f(x[i].dmin) * y[i].d * (float)sm;
    }
    return hsum_ps(acc) - summ;
}

static inline int32_t q6_offset_sum(const int8_t *sc, const int16_t *bsums)
{
    __m256i cs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)),
                                   _mm256_loadu_si256((const __m256i *)bsums));
    __m128i c4 = _mm_add_epi32(_mm256_castsi256_si128(cs), _mm256_extracti128_si256(cs, 1));
    c4 = _mm_add_epi32(c4, _mm_shuffle_epi32(c4, 0x4E));
    c4 = _mm_add_epi32(c4, _mm_shuffle_epi32(c4, 0xB1));
    return _mm_cvtsi128_si32(c4);
}

/* Q6_K: quants are stored unsigned (q + 32); the offset is taken out once per super-block with
 * the activation group sums. */
static float dot_q6_K(int n, const void *w, const void *a)
{
    const struct block_q6_K *x = w;
    const struct block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    for (int i = 0; i < n / QK_K; i++) {
        const int8_t *sc = x[i].scales;
        int32_t c = q6_offset_sum(sc, y[i].bsums); /* sum_g sc[g] * bsums[g] */
        __m256i si = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qhp = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h, *s = sc + 8 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                         _mm256_and_si256(qh, m30));
            __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            si = _mm256_add_epi32(si, dot_u8_scaled(q1, q8, s[0], s[1]));
            si = _mm256_add_epi32(si, dot_u8_scaled(q2, q8 + 32, s[2], s[3]));
            si = _mm256_add_epi32(si, dot_u8_scaled(q3, q8 + 64, s[4], s[5]));
            si = _mm256_add_epi32(si, dot_u8_scaled(q4, q8 + 96, s[6], s[7]));
        }
        float d = h2f(x[i].d) * y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(si), acc);
        corr += d * 32.0f * (float)c;
    }
    return hsum_ps(acc) - corr;
}

#define ROUND_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static void quant_q8_0(const float *x, void *yv, int64_t n)
{
    struct block_q8_0 *y = yv;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 mx =
            _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                          _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(mx, 1), _mm256_castps256_ps128(mx));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float d = _mm_cvtss_f32(m4) / 127.0f;
        y[i].d = _cvtss_sh(d, 0);
        __m256 id = _mm256_set1_ps(d ? 1.0f / d : 0.0f);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), ROUND_NEAREST));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), ROUND_NEAREST));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), ROUND_NEAREST));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), ROUND_NEAREST));
        i0 = _mm256_packs_epi32(i0, i1);
        i2 = _mm256_packs_epi32(i2, i3);
        i0 = _mm256_packs_epi16(i0, i2);
        i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[i].qs, i0);
    }
}

/* Bit for bit eng_quant_q8_K: the same max (exact in any order), scale, reciprocal, products
 * rounded to nearest even and clamping; bsums from the stored quants (sad over sign-flipped
 * bytes, minus the bias). */
static void quant_q8_K(const float *x, void *yv, int64_t n)
{
    struct block_q8_K *y = yv;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), flip = _mm256_set1_epi8(-128);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 mx = _mm256_setzero_ps();
        for (int j = 0; j < QK_K / 8; j++)
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * j)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(mx, 1), _mm256_castps256_ps128(mx));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float d = _mm_cvtss_f32(m4) / 127.0f;
        y[i].d = d;
        __m256 id = _mm256_set1_ps(d ? 1.0f / d : 0.0f);
        for (int c = 0; c < QK_K / 32; c++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * k), id);
                q[k] = _mm256_cvtps_epi32(_mm256_round_ps(v, ROUND_NEAREST));
                q[k] = _mm256_max_epi32(_mm256_min_epi32(q[k], hi), lo);
            }
            __m256i b =
                _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            b = _mm256_permutevar8x32_epi32(b, perm);
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * c), b);
            /* per 64-bit quarter: sum of 8 quants + 8 * 128 */
            __m256i s = _mm256_sad_epu8(_mm256_xor_si256(b, flip), _mm256_setzero_si256());
            s = _mm256_add_epi64(s, _mm256_shuffle_epi32(s, 0x4E));
            y[i].bsums[2 * c] = (int16_t)(_mm256_extract_epi32(s, 0) - 16 * 128);
            y[i].bsums[2 * c + 1] = (int16_t)(_mm256_extract_epi32(s, 4) - 16 * 128);
        }
    }
}

static void axpy_f32(int n, float a, const float *x, float *y)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static void axpy_f16(int n, float a, const eng_fp16 *x, float *y)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * h2f(x[i]);
}

static void f32_to_f16(const float *x, eng_fp16 *y, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    for (; i < n; i++)
        y[i] = _cvtss_sh(x[i], 0);
}

/* e^x for x <= 88 (Cephes' single-precision polynomial, relative error ~1e-7); inputs below -87
 * are clamped there, which gives ~1e-38 where the exact value underflows to 0. */
static inline __m256 exp_ps(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 fx = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static float exp_sum(float *x, int n, float sub)
{
    __m256 vsub = _mm256_set1_ps(sub), vsum = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vsub));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum_ps(vsum);
    for (; i < n; i++) {
        x[i] = expf(x[i] - sub);
        sum += x[i];
    }
    return sum;
}

/* One key row at a time, the whole dot product in registers (no call per position). */
static void attn_scores_f16(int hd, const eng_fp16 *k, size_t stride, int n_pos, const float *q,
                            float scale, float *out)
{
    for (int p = 0; p < n_pos; p++) {
        const eng_fp16 *kp = k + (size_t)p * stride;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        int i = 0;
        for (; i + 16 <= hd; i += 16) {
            s0 = _mm256_fmadd_ps(load_f16(kp + i), _mm256_loadu_ps(q + i), s0);
            s1 = _mm256_fmadd_ps(load_f16(kp + i + 8), _mm256_loadu_ps(q + i + 8), s1);
        }
        for (; i + 8 <= hd; i += 8)
            s0 = _mm256_fmadd_ps(load_f16(kp + i), _mm256_loadu_ps(q + i), s0);
        float sum = hsum_ps(_mm256_add_ps(s0, s1));
        for (; i < hd; i++)
            sum += h2f(kp[i]) * q[i];
        out[p] = sum * scale;
    }
}

/* 32 output values at a time stay in four registers while every position is added in. */
static void attn_values_f16(int hd, const eng_fp16 *v, size_t stride, int n_pos, const float *w,
                            float *out)
{
    int i = 0;
    for (; i + 32 <= hd; i += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int p = 0; p < n_pos; p++) {
            const eng_fp16 *vp = v + (size_t)p * stride + i;
            __m256 wp = _mm256_set1_ps(w[p]);
            a0 = _mm256_fmadd_ps(wp, load_f16(vp), a0);
            a1 = _mm256_fmadd_ps(wp, load_f16(vp + 8), a1);
            a2 = _mm256_fmadd_ps(wp, load_f16(vp + 16), a2);
            a3 = _mm256_fmadd_ps(wp, load_f16(vp + 24), a3);
        }
        _mm256_storeu_ps(out + i, a0);
        _mm256_storeu_ps(out + i + 8, a1);
        _mm256_storeu_ps(out + i + 16, a2);
        _mm256_storeu_ps(out + i + 24, a3);
    }
    for (; i + 8 <= hd; i += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (int p = 0; p < n_pos; p++)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[p]), load_f16(v + (size_t)p * stride + i), a0);
        _mm256_storeu_ps(out + i, a0);
    }
    for (; i < hd; i++) {
        float a = 0;
        for (int p = 0; p < n_pos; p++)
            a += w[p] * h2f(v[(size_t)p * stride + i]);
        out[i] = a;
    }
}

void eng_kernels_fill_avx2(struct eng_kernels *k)
{
    k->dot[GGUF_TT_F32] = dot_f32;
    k->dot[GGUF_TT_F16] = dot_f16;
    k->dot[GGUF_TT_BF16] = dot_bf16;
    k->dot[GGUF_TT_Q8_0] = dot_q8_0;
    k->dot[GGUF_TT_Q4_0] = dot_q4_0;
    k->dot[GGUF_TT_Q4_K] = dot_q4_K;
    k->dot[GGUF_TT_Q5_K] = dot_q5_K;
    k->dot[GGUF_TT_Q6_K] = dot_q6_K;
    k->quant_q8_0 = quant_q8_0;
    k->quant_q8_K = quant_q8_K;
    k->axpy_f32 = axpy_f32;
    k->axpy_f16 = axpy_f16;
    k->f32_to_f16 = f32_to_f16;
    k->attn_scores_f16 = attn_scores_f16;
    k->attn_values_f16 = attn_values_f16;
    k->exp_sum = exp_sum;
}
