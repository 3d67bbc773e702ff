/* AVX-512 panel kernels for Q4_0 and Q8_0 over the row-interleaved layout of pack.h: one zmm
 * holds two 8-row panels side by side (lanes 0-7 panel p, lanes 8-15 panel p + 1), so a 4-byte
 * group of quants of 16 rows meets one broadcast of 4 activation bytes. The u8 x s8 products
 * of a group are summed into each lane's int32 by AVX512-VNNI's vpdpbusd where the CPU has it
 * (one instruction where AVX2 needs maddubs + madd + add for half the rows), else by
 * AVX-512BW's maddubs + madd. Either way every lane ends on the exact integer block sum of the
 * reference (pack.h), and the float operations per (row, token) are the reference's, in its
 * order (this file is built with -ffp-contract=off): s = s + (float)isum * (dw * da).
 *
 *   - Q4_0: quants used unsigned (0..15), the -8 offset applied per block through the
 *     activation block's sum, as in the AVX2 kernels;
 *   - Q8_0: VNNI needs one unsigned side, so the weights are biased to w + 128 (w ^ 0x80,
 *     0..255) and 128 * the activation block's sum is taken off again; the BW path cannot use
 *     that bias (maddubs would saturate 255 * 127 pairs in int16), so it moves the weight's sign
 *     onto the activation instead, as AVX2 does.
 *
 * Four panels (two zmm) per pass, one to four tokens per tile; an odd last panel goes to the
 * AVX2 kernel, whose arithmetic is the same. Decode (one token) fetches the next four Q4_0
 * panels into L2 as the AVX2 quads do.
 *
 * Built natively only for x86-64, with -mavx512vnni for this file alone (CMake): its BW
 * variants use no VNNI instruction, and the VNNI ones are installed only when CPUID reports it.
 * engine/tests builds it a second time against SIMDe's portable AVX-512 (ENG_SIMDE), so its results
 * are checked bit for bit against the scalar reference on machines without AVX-512 too. */
#ifdef ENG_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
/* SIMDe 0.7.4 (Debian 12) aliases this one with the masked form's four parameters */
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
/* ... and has no 512-bit int32 -> float or half -> float conversion: element by element, with
 * the conversions of the native instructions (round to nearest; half to float is exact) */
#include <stdint.h>
static inline simde__m512 eng_simde_cvtepi32_ps(simde__m512i v)
{
    int32_t i[16];
    float f[16];
    simde_mm512_storeu_si512(i, v);
    for (int k = 0; k < 16; k++)
        f[k] = (float)i[k];
    return simde_mm512_loadu_ps(f);
}
static inline simde__m512 eng_simde_cvtph_ps(__m256i h)
{
    uint16_t u[16];
    float f[16];
    _mm256_storeu_si256((__m256i *)u, h);
    for (int k = 0; k < 16; k++)
        f[k] = _cvtsh_ss(u[k]);
    return simde_mm512_loadu_ps(f);
}
#define _mm512_cvtepi32_ps(v)  eng_simde_cvtepi32_ps(v)
#define _mm512_cvtph_ps(h)     eng_simde_cvtph_ps(h)
#define eng_panels_fill_avx512 eng_panels_fill_avx512_simde
#else
#include <immintrin.h>
#endif

#include "kernels.h"
#include "pack.h"

#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* the AVX2 kernels this table started from, for an odd last panel */
static eng_panel_fn avx2_q4_0, avx2_q8_0;

INLINE __m512i load_pair(const void *a, const void *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

INLINE __m512 scales_pair(const eng_fp16 *a, const eng_fp16 *b)
{
    __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                        _mm_loadu_si128((const __m128i *)b), 1);
    return _mm512_cvtph_ps(h);
}

INLINE __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* acc + the sums of 4 u8 x s8 products per int32 lane (both operands 4-byte groups). The BW
 * form is exact while a product pair fits int16: callers keep u <= 128 there. */
INLINE __m512i dot4(int vnni, __m512i acc, __m512i u, __m512i s)
{
    if (vnni)
        return _mm512_dpbusd_epi32(acc, u, s);
    __m512i pairs = _mm512_maddubs_epi16(u, s);
    __m512i ones = _mm512_set1_epi16(1);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, ones));
}

enum { K_Q4_0, K_Q8_0 };

/* np (1 or 2) pairs of panels starting at w, pair j = panels 2j and 2j + 1 (nb blocks apart),
 * times nt (1..4) tokens from t0; outputs of the 16 rows of pair j land contiguously. */
INLINE void quant_tile(int kind, int vnni, int64_t nb, const void *w, int np,
                       const struct eng_act *a, int t0, int nt, float *y, size_t ldy)
{
    const struct block_q4_0x8 *w4 = w;
    const struct block_q8_0x8 *w8 = w;
    const struct block_q8_0 *x[4];
    const float *ad[4];
    const int32_t *as[4];
    __m512 acc[2][4];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        as[t] = a->sum + (size_t)(t0 + t) * a->aux_row;
        for (int j = 0; j < np; j++)
            acc[j][t] = _mm512_setzero_ps();
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F), bias = _mm512_set1_epi8((char)0x80);
    const size_t block_bytes = kind == K_Q4_0 ? sizeof(*w4) : sizeof(*w8);
    const char *next = (const char *)w + 2 * (size_t)np * (size_t)nb * block_bytes;
    for (int64_t b = 0; b < nb; b++) {
        if (kind == K_Q4_0 && nt == 1 && np == 2)
            for (size_t o = 0; o < 4 * block_bytes; o += 64)
                _mm_prefetch(next + (size_t)b * 4 * block_bytes + o, _MM_HINT_T1);
        __m512i s[2][4];
        for (int j = 0; j < np; j++)
            for (int t = 0; t < nt; t++)
                s[j][t] = _mm512_setzero_si512();
        if (kind == K_Q4_0) {
            for (int g = 0; g < 4; g++) {
                __m512i xl[4], xh[4];
                for (int t = 0; t < nt; t++) {
                    xl[t] = bcast4(x[t][b].qs + 4 * g);
                    xh[t] = bcast4(x[t][b].qs + 16 + 4 * g);
                }
                for (int j = 0; j < np; j++) {
                    __m512i raw = load_pair(w4[(size_t)(2 * j) * nb + b].qs + 32 * g,
                                            w4[(size_t)(2 * j + 1) * nb + b].qs + 32 * g);
                    __m512i lo = _mm512_and_si512(raw, m4);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
                    for (int t = 0; t < nt; t++)
                        s[j][t] = dot4(vnni, dot4(vnni, s[j][t], lo, xl[t]), hi, xh[t]);
                }
            }
        } else {
            for (int g = 0; g < 8; g++) {
                __m512i xb[4];
                for (int t = 0; t < nt; t++)
                    xb[t] = bcast4(x[t][b].qs + 4 * g);
                for (int j = 0; j < np; j++) {
                    __m512i raw = load_pair(w8[(size_t)(2 * j) * nb + b].qs + 32 * g,
                                            w8[(size_t)(2 * j + 1) * nb + b].qs + 32 * g);
                    if (vnni) {
                        __m512i u = _mm512_xor_si512(raw, bias);
                        for (int t = 0; t < nt; t++)
                            s[j][t] = dot4(1, s[j][t], u, xb[t]);
                    } else {
                        __m512i mag = _mm512_abs_epi8(raw);
                        __mmask64 neg = _mm512_movepi8_mask(raw);
                        for (int t = 0; t < nt; t++) {
                            __m512i sx =
                                _mm512_mask_sub_epi8(xb[t], neg, _mm512_setzero_si512(), xb[t]);
                            s[j][t] = dot4(0, s[j][t], mag, sx);
                        }
                    }
                }
            }
        }
        for (int j = 0; j < np; j++) {
            __m512 dw = kind == K_Q4_0 ? scales_pair(w4[(size_t)(2 * j) * nb + b].d,
                                                     w4[(size_t)(2 * j + 1) * nb + b].d)
                                       : scales_pair(w8[(size_t)(2 * j) * nb + b].d,
                                                     w8[(size_t)(2 * j + 1) * nb + b].d);
            for (int t = 0; t < nt; t++) {
                __m512i isum = s[j][t];
                if (kind == K_Q4_0)
                    isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(8 * as[t][b]));
                else if (vnni)
                    isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(128 * as[t][b]));
                __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(ad[t][b]));
                acc[j][t] = _mm512_add_ps(acc[j][t], _mm512_mul_ps(_mm512_cvtepi32_ps(isum), sc));
            }
        }
    }
    for (int j = 0; j < np; j++)
        for (int t = 0; t < nt; t++)
            _mm512_storeu_ps(y + (size_t)(t0 + t) * ldy + (size_t)j * 2 * ENG_PANEL, acc[j][t]);
}

/* The tile shapes as constants, so each call keeps its accumulators in registers. */
INLINE void tokens(int kind, int vnni, int64_t nb, const void *w, int np, const struct eng_act *a,
                   int n_tok, float *y, size_t ldy)
{
    int t = 0;
    for (; t + 4 <= n_tok; t += 4)
        quant_tile(kind, vnni, nb, w, np, a, t, 4, y, ldy);
    switch (n_tok - t) {
    case 3:
        quant_tile(kind, vnni, nb, w, np, a, t, 3, y, ldy);
        break;
    case 2:
        quant_tile(kind, vnni, nb, w, np, a, t, 2, y, ldy);
        break;
    case 1:
        quant_tile(kind, vnni, nb, w, np, a, t, 1, y, ldy);
        break;
    default:
        break;
    }
}

INLINE void panels(int kind, int vnni, int64_t ne0, const void *w, int n_panels,
                   const struct eng_act *a, int n_tok, float *y, size_t ldy)
{
    int64_t nb = ne0 / QK8_0;
    size_t pb =
        (size_t)nb * (kind == K_Q4_0 ? sizeof(struct block_q4_0x8) : sizeof(struct block_q8_0x8));
    const char *wc = w;
    int p = 0;
    for (; p + 4 <= n_panels; p += 4)
        tokens(kind, vnni, nb, wc + (size_t)p * pb, 2, a, n_tok, y + (size_t)p * ENG_PANEL, ldy);
    for (; p + 2 <= n_panels; p += 2)
        tokens(kind, vnni, nb, wc + (size_t)p * pb, 1, a, n_tok, y + (size_t)p * ENG_PANEL, ldy);
    if (p < n_panels)
        (kind == K_Q4_0 ? avx2_q4_0 : avx2_q8_0)(ne0, wc + (size_t)p * pb, n_panels - p, a, n_tok,
                                                 y + (size_t)p * ENG_PANEL, ldy);
}

static void panel_q4_0_vnni(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                            int n_tok, float *y, size_t ldy)
{
    panels(K_Q4_0, 1, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q8_0_vnni(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                            int n_tok, float *y, size_t ldy)
{
    panels(K_Q8_0, 1, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q4_0_bw(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                          int n_tok, float *y, size_t ldy)
{
    panels(K_Q4_0, 0, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q8_0_bw(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                          int n_tok, float *y, size_t ldy)
{
    panels(K_Q8_0, 0, ne0, w, n_panels, a, n_tok, y, ldy);
}

/* k starts as the AVX2 table (its panels serve the other types and the odd last panel). */
void eng_panels_fill_avx512(struct eng_kernels *k, unsigned cpu_flags)
{
    avx2_q4_0 = k->panel[GGUF_TT_Q4_0];
    avx2_q8_0 = k->panel[GGUF_TT_Q8_0];
    if (!avx2_q4_0 || !avx2_q8_0)
        return;
    int vnni = (cpu_flags & ENG_CPU_AVX512VNNI) != 0;
    k->panel[GGUF_TT_Q4_0] = vnni ? panel_q4_0_vnni : panel_q4_0_bw;
    k->panel[GGUF_TT_Q8_0] = vnni ? panel_q8_0_vnni : panel_q8_0_bw;
    k->int8_dot = vnni ? "vpdpbusd" : "vpmaddubsw";
}
