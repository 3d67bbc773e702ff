/* AVX-512 (F, BW, VL, DQ) kernels: 16-wide float dot products for F32/BF16 rows (attention over
 * an F32 cache, tests), and Q4_K/Q6_K with one register per 64 quants.
 * AVX-512BW has no sign instruction, so the sign of the weights moves onto the activations with a
 * masked negate. The table starts as a copy of the AVX2 one, whose panel kernels (pack.h) run the
 * F32/F16/BF16 and k-quant matrices here too; Q4_0 and Q8_0 get 16-lane panel kernels from
 * panel_avx512.c (VNNI where present). */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

static inline float h2f(eng_fp16 h)
{
    return _cvtsh_ss(h);
}

static float dot_f32(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static inline __m512 load_f16(const eng_fp16 *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline __m512 load_bf16_mask(__mmask16 m, const eng_bf16 *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

static float dot_bf16(int n, const void *w, const void *a)
{
    const eng_bf16 *x = w;
    const float *y = a;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(load_bf16_mask(0xFFFF, x + i), _mm512_loadu_ps(y + i), s0);
        s1 = _mm512_fmadd_ps(load_bf16_mask(0xFFFF, x + i + 16), _mm512_loadu_ps(y + i + 16), s1);
    }
    for (; i < n; i += 16) {
        int r = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)((1u << r) - 1);
        s0 = _mm512_fmadd_ps(load_bf16_mask(m, x + i), _mm512_maskz_loadu_ps(m, y + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static inline __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* ---- k-quants: a 64-quant chunk whose activations are contiguous fills one register; the
 * per-sub-block scales are spread over its 16-bit lanes with one vpermw ---- */

static inline __m256i k4_unpack_scales(const uint8_t *q, uint8_t mn[8])
{
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t u[3], o[4];
    memcpy(u, q, 12);
    o[0] = u[0] & m6;
    o[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    o[2] = u[1] & m6;
    o[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    memcpy(mn, o + 2, 8);
    /* the 8 scales as 16-bit lanes 0..7 */
    return _mm256_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)o));
}

static inline int32_t k4_min_sum(const uint8_t mn[8], const int16_t bsums[16])
{
    __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
    __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums),
                                   _mm_loadu_si128((const __m128i *)(bsums + 8)));
    __m128i p = _mm_madd_epi16(m, pairs);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4E));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

/* 16-bit lane indices: lanes 0..15 take scale a, lanes 16..31 scale b */
static inline __m512i lane_idx2(int a, int b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)),
                              _mm256_set1_epi16((short)b), 1);
}

static float dot_q4_K(int n, const void *w, const void *a)
{
    const struct block_q4_K *x = w;
    const struct block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float summ = 0;
    for (int i = 0; i < n / QK_K; i++) {
        uint8_t mn[8];
        __m512i sc = _mm512_castsi256_si512(k4_unpack_scales(x[i].scales, mn));
        int32_t sm = k4_min_sum(mn, y[i].bsums);
        __m512i si = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            __m512i u =
                join(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
            __m512i p = _mm512_maddubs_epi16(u, _mm512_loadu_si512(y[i].qs + 64 * j));
            __m512i s = _mm512_permutexvar_epi16(lane_idx2(2 * j, 2 * j + 1), sc);
            si = _mm512_add_epi32(si, _mm512_madd_epi16(p, s));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(h2f(x[i].d) * y[i].d), _mm512_cvtepi32_ps(si), acc);
        summ += h2f(x[i].dmin) * y[i].d * (float)sm;
    }
    return _mm512_reduce_add_ps(acc) - summ;
}

static float dot_q6_K(int n, const void *w, const void *a)
{
    const struct block_q6_K *x = w;
    const struct block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m512 acc = _mm512_setzero_ps();
    float corr = 0;
    for (int i = 0; i < n / QK_K; i++) {
        /* the 16 scales as 16-bit lanes; lanes 0..7 of each 64-quant pair use 4 of them */
        __m512i sc = _mm512_castsi256_si512(
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales)));
        __m256i cs = _mm256_madd_epi16(_mm512_castsi512_si256(sc),
                                       _mm256_loadu_si256((const __m256i *)y[i].bsums));
        __m128i c4 = _mm_add_epi32(_mm256_castsi256_si128(cs), _mm256_extracti128_si256(cs, 1));
        c4 = _mm_add_epi32(c4, _mm_shuffle_epi32(c4, 0x4E));
        c4 = _mm_add_epi32(c4, _mm_shuffle_epi32(c4, 0xB1));
        int32_t c = _mm_cvtsi128_si32(c4);
        __m512i si = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qhp = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
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
            /* quants 0..63 of this half use scales 8h+0..3, quants 64..127 scales 8h+4..7,
             * each scale over 16 quants = 8 lanes of 16 bits */
            int b = 8 * h;
            __m512i i12 =
                _mm512_set_epi16(b + 3, b + 3, b + 3, b + 3, b + 3, b + 3, b + 3, b + 3, b + 2,
                                 b + 2, b + 2, b + 2, b + 2, b + 2, b + 2, b + 2, b + 1, b + 1,
                                 b + 1, b + 1, b + 1, b + 1, b + 1, b + 1, b, b, b, b, b, b, b, b);
            __m512i i34 = _mm512_add_epi16(i12, _mm512_set1_epi16(4));
            __m512i p12 = _mm512_maddubs_epi16(join(q1, q2), _mm512_loadu_si512(q8));
            __m512i p34 = _mm512_maddubs_epi16(join(q3, q4), _mm512_loadu_si512(q8 + 64));
            si = _mm512_add_epi32(si, _mm512_madd_epi16(p12, _mm512_permutexvar_epi16(i12, sc)));
            si = _mm512_add_epi32(si, _mm512_madd_epi16(p34, _mm512_permutexvar_epi16(i34, sc)));
        }
        float d = h2f(x[i].d) * y[i].d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(si), acc);
        corr += d * 32.0f * (float)c;
    }
    return _mm512_reduce_add_ps(acc) - corr;
}

static void axpy_f16(int n, float a, const eng_fp16 *x, float *y)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load_f16(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * h2f(x[i]);
}

void eng_kernels_fill_avx512(struct eng_kernels *k, unsigned cpu_flags)
{
    (void)cpu_flags;
    /* F32/F16/BF16/Q8_0/Q4_0 matrices run on the panel kernels inherited from the AVX2 table
     * (pack.h); these dots serve the k-quants, attention over an F32 cache and tests */
    k->dot[GGUF_TT_F32] = dot_f32;
    k->dot[GGUF_TT_BF16] = dot_bf16;
    k->axpy_f16 = axpy_f16;
    k->dot[GGUF_TT_Q4_K] = dot_q4_K;
    k->dot[GGUF_TT_Q6_K] = dot_q6_K;
}
