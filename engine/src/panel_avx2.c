/* AVX2 + FMA + F16C panel kernels over the row-interleaved layouts of pack.h: one ymm lane per
 * weight row, so a kernel never sums horizontally and each weight load serves several tokens
 * (decode is the one-token case of the same code). Every (row, token) result is computed with
 * exactly the operations of pack.c's reference kernels, in the same order: mul then add for the
 * quantized types (this file is built with -ffp-contract=off, so they are never fused), fused
 * multiply-add per element for the float types.
 *
 * Quantized tiles: per block, the 8 rows' quant bytes arrive as 4-byte groups; the 4 activation
 * bytes that meet a group are broadcast to every lane, and maddubs + madd give each lane its row's
 * partial dot product. Q4_0 nibbles are used unsigned (0..15) and the -8 offset is applied once
 * per block through the activation block's sum, so eight maddubs results fit in int16
 * (8 * 2 * 15 * 127 < 32768) before one widening madd. Q8_0 moves the weight's sign onto the
 * activation (maddubs needs one unsigned side) and widens after each group.
 *
 * k-quants (Q8_K activations), per 256-element super-block: the same 4-byte groups meet 4
 * broadcast activation bytes; the sub-block's int16 sums are widened by a madd against the
 * lanes' own sub-block scales (each row's scale as an int16 pair), so one int32 lane per row
 * collects the super-block's exact scaled sum. Quants stay unsigned: Q6_K's -32 and the mins of
 * Q4_K/Q5_K are applied per super-block as madds of the lanes' scales (or mins) with the
 * activation's bsums. Then the float operations of eng_dot_*_K_ref, lane by lane. The integer
 * bounds are proved next to each kernel. */
#include "kernels.h"
#include "pack.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

INLINE __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Decode streams one panel at a time through the k-quant tiles: fetch the same super-block of
 * the next panel (its rows follow this panel's in memory) into L2 while this one is computed,
 * so the hardware prefetcher's ramp-up on each short panel stream is not paid in full (the
 * last panel's fetch lands past the matrix: prefetches never fault). */
INLINE void prefetch_next_panel(const void *blk, int64_t nb, size_t block_bytes)
{
    const char *p = (const char *)blk + (size_t)nb * block_bytes;
    for (size_t o = 0; o < block_bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T1);
}

/* ---- Q4_0 ---- */

/* one panel, nt (1..4) tokens starting at token t0 */
INLINE void q4_0_tile(int64_t nb, const struct block_q4_0x8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    const struct block_q8_0 *x[4];
    const float *ad[4];
    const int32_t *as[4];
    __m256 acc[4];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        as[t] = a->sum + (size_t)(t0 + t) * a->aux_row;
        acc[t] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q4_0x8 *blk = w + b;
        __m256i p[4];
        for (int t = 0; t < nt; t++)
            p[t] = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * g));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            for (int t = 0; t < nt; t++) {
                __m256i s =
                    _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(x[t][b].qs + 4 * g)),
                                     _mm256_maddubs_epi16(hi, bcast4(x[t][b].qs + 16 + 4 * g)));
                p[t] = _mm256_add_epi16(p[t], s);
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk->d));
        for (int t = 0; t < nt; t++) {
            __m256i isum =
                _mm256_sub_epi32(_mm256_madd_epi16(p[t], ones), _mm256_set1_epi32(8 * as[t][b]));
            __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(ad[t][b]));
            acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), sc));
        }
    }
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(y + (size_t)(t0 + t) * ldy, acc[t]);
}

/* ---- Q8_0 ---- */

INLINE void q8_0_tile(int64_t nb, const struct block_q8_0x8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    const struct block_q8_0 *x[4];
    const float *ad[4];
    __m256 acc[4];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        acc[t] = _mm256_setzero_ps();
    }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q8_0x8 *blk = w + b;
        __m256i s32[4];
        for (int t = 0; t < nt; t++)
            s32[t] = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * g));
            __m256i mag = _mm256_sign_epi8(raw, raw);
            for (int t = 0; t < nt; t++) {
                __m256i s16 =
                    _mm256_maddubs_epi16(mag, _mm256_sign_epi8(bcast4(x[t][b].qs + 4 * g), raw));
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16, ones));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk->d));
        for (int t = 0; t < nt; t++) {
            __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(ad[t][b]));
            acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_cvtepi32_ps(s32[t]), sc));
        }
    }
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(y + (size_t)(t0 + t) * ldy, acc[t]);
}

/* Panel by panel, four tokens per tile while they last; the tile size is a constant in each call
 * so the compiler keeps the accumulators in registers. */
#define PANEL_QUANT(NAME, BLOCK, TILE, QK)                                                         \
    static void NAME(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok, \
                     float *y, size_t ldy)                                                         \
    {                                                                                              \
        int64_t nb = ne0 / (QK);                                                                   \
        for (int p = 0; p < n_panels; p++) {                                                       \
            const BLOCK *pw = (const BLOCK *)w + (size_t)p * nb;                                   \
            float *py = y + (size_t)p * ENG_PANEL;                                                 \
            int t = 0;                                                                             \
            for (; t + 4 <= n_tok; t += 4)                                                         \
                TILE(nb, pw, a, t, 4, py, ldy);                                                    \
            if (n_tok - t == 3)                                                                    \
                TILE(nb, pw, a, t, 3, py, ldy);                                                    \
            else if (n_tok - t == 2)                                                               \
                TILE(nb, pw, a, t, 2, py, ldy);                                                    \
            else if (n_tok - t == 1)                                                               \
                TILE(nb, pw, a, t, 1, py, ldy);                                                    \
        }                                                                                          \
    }

PANEL_QUANT(panel_q4_0_tiles, struct block_q4_0x8, q4_0_tile, QK8_0)
PANEL_QUANT(panel_q8_0_tiles, struct block_q8_0x8, q8_0_tile, QK8_0)

/* Decode (one token): four panels at once. One weight stream at a time leaves the memory system
 * idle between misses; four keep several lines in flight (measured out of cache on Zen 3: 11 ->
 * 14-19 GB/s for Q4_0), and the activation broadcasts serve all four. Same per-row arithmetic.
 * PREFETCH: also fetch the next four panels into L2 at the same pace (Q4_0: +8-25% decode on the
 * 768-wide S shape, whose short panel streams never let the hardware prefetcher ramp up; Q8_0,
 * twice the bytes per block, measured slower with it on Zen 3, so it stays off there). */
#define QUAD_1TOK(NAME, BLOCK, GROUPS, PARTIAL, FINISH, PREFETCH)                            \
    INLINE void NAME(int64_t nb, const BLOCK *w, const struct eng_act *a, float *y)          \
    {                                                                                        \
        const struct block_q8_0 *x = a->q;                                                   \
        __m256 acc[4];                                                                       \
        const BLOCK *pw[4];                                                                  \
        for (int i = 0; i < 4; i++) {                                                        \
            acc[i] = _mm256_setzero_ps();                                                    \
            pw[i] = w + (size_t)i * nb;                                                      \
        }                                                                                    \
        const char *next = (const char *)(w + 4 * (size_t)nb);                               \
        for (int64_t b = 0; b < nb; b++) {                                                   \
            for (size_t o = 0; PREFETCH && o < 4 * sizeof(BLOCK); o += 64)                   \
                _mm_prefetch(next + (size_t)b * 4 * sizeof(BLOCK) + o, _MM_HINT_T1);         \
            __m256i s[4];                                                                    \
            for (int i = 0; i < 4; i++)                                                      \
                s[i] = _mm256_setzero_si256();                                               \
            for (int g = 0; g < GROUPS; g++)                                                 \
                for (int i = 0; i < 4; i++)                                                  \
                    s[i] = PARTIAL(s[i], pw[i][b].qs + 32 * g, x[b].qs, g);                  \
            __m256 da = _mm256_set1_ps(a->d[b]);                                             \
            for (int i = 0; i < 4; i++) {                                                    \
                __m256i isum = FINISH(s[i], a, b);                                           \
                __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)pw[i][b].d));   \
                acc[i] = _mm256_add_ps(                                                      \
                    acc[i], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, da))); \
            }                                                                                \
        }                                                                                    \
        for (int i = 0; i < 4; i++)                                                          \
            _mm256_storeu_ps(y + (size_t)i * ENG_PANEL, acc[i]);                             \
    }

/* Q4_0: int16 partial sums of one 4-byte group (low and high nibbles), widened at the end. */
INLINE __m256i q4_0_partial(__m256i s, const uint8_t *wq, const int8_t *xq, int g)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i raw = _mm256_loadu_si256((const __m256i *)wq);
    return _mm256_add_epi16(
        s, _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(raw, m4), bcast4(xq + 4 * g)),
                            _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                                 bcast4(xq + 16 + 4 * g))));
}

INLINE __m256i q4_0_finish(__m256i s, const struct eng_act *a, int64_t b)
{
    return _mm256_sub_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)),
                            _mm256_set1_epi32(8 * a->sum[b]));
}

/* Q8_0: int32 sums, the weight's sign moved onto the activation. */
INLINE __m256i q8_0_partial(__m256i s, const int8_t *wq, const int8_t *xq, int g)
{
    __m256i raw = _mm256_loadu_si256((const __m256i *)wq);
    __m256i s16 =
        _mm256_maddubs_epi16(_mm256_sign_epi8(raw, raw), _mm256_sign_epi8(bcast4(xq + 4 * g), raw));
    return _mm256_add_epi32(s, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}

INLINE __m256i q8_0_finish(__m256i s, const struct eng_act *a, int64_t b)
{
    (void)a;
    (void)b;
    return s;
}

QUAD_1TOK(q4_0_quad_1tok, struct block_q4_0x8, 4, q4_0_partial, q4_0_finish, 1)
QUAD_1TOK(q8_0_quad_1tok, struct block_q8_0x8, 8, q8_0_partial, q8_0_finish, 0)

#define PANEL_DECODE_QUAD(NAME, BLOCK, TILES, QUAD)                                                \
    static void NAME(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok, \
                     float *y, size_t ldy)                                                         \
    {                                                                                              \
        int64_t nb = ne0 / QK8_0;                                                                  \
        int p = 0;                                                                                 \
        if (n_tok == 1)                                                                            \
            for (; p + 4 <= n_panels; p += 4)                                                      \
                QUAD(nb, (const BLOCK *)w + (size_t)p * nb, a, y + (size_t)p * ENG_PANEL);         \
        if (p < n_panels)                                                                          \
            TILES(ne0, (const BLOCK *)w + (size_t)p * nb, n_panels - p, a, n_tok,                  \
                  y + (size_t)p * ENG_PANEL, ldy);                                                 \
    }

PANEL_DECODE_QUAD(panel_q4_0, struct block_q4_0x8, panel_q4_0_tiles, q4_0_quad_1tok)
PANEL_DECODE_QUAD(panel_q8_0, struct block_q8_0x8, panel_q8_0_tiles, q8_0_quad_1tok)

/* ---- Q6_K ---- */

INLINE __m256i bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Integer bounds (activations in -128..127, so |bsums| <= 16 * 128 = 2048; quants u = q + 32 in
 * 0..63; scales -128..127):
 *   - maddubs(u, a) lane halves: |u0 a0 + u1 a1| <= 2 * 63 * 128 = 16128, never saturated; two of
 *     them added in int16: <= 32256 < 32768;
 *   - madd with the sub-block scale: <= 2 * 32256 * 128 = 8257536 per sub-block, so the 16
 *     sub-blocks' sum_k sc_k * sum(u a)_k stays within 16 * 8257536 = 132120576 in magnitude;
 *   - the offset 32 * sum_k sc_k * bsums_k: <= 32 * 16 * 128 * 2048 = 134217728;
 * the int32 accumulator starts at minus the offset, so it never exceeds 2.7e8 < 2^31 and ends on
 * the exact sum_k sc_k * sum((u - 32) a)_k of eng_q6_K_isum. */
INLINE void q6_K_tile(int64_t nb, const struct block_q6_Kx8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    const struct block_q8_K *x[4];
    __m256 acc[4];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_K *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        acc[t] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q6_Kx8 *blk = w + b;
        if (nt == 1)
            prefetch_next_panel(blk, nb, sizeof(*blk));
        __m256i isum[4];
        for (int t = 0; t < nt; t++)
            isum[t] = _mm256_setzero_si256();
        /* the -32 offset first: lane r gets sum_k sc_k(r) * bsums_k, two sub-blocks per madd */
        for (int i = 0; i < QK_K / 32; i++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(blk->scales + 16 * i));
            __m256i sp = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(v, _mm_srli_si128(v, 8)));
            for (int t = 0; t < nt; t++)
                isum[t] = _mm256_sub_epi32(isum[t],
                                           _mm256_madd_epi16(sp, bcast32(x[t][b].bsums + 2 * i)));
        }
        for (int t = 0; t < nt; t++)
            isum[t] = _mm256_slli_epi32(isum[t], 5);
        for (int k = 0; k < QK_K / 16; k++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)blk->q[k][0]);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)blk->q[k][1]);
            __m256i h = _mm256_loadu_si256((const __m256i *)blk->q[k][2]);
            __m256i g0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
            __m256i g1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                         _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
            __m256i g2 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(h, m30));
            __m256i g3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
            /* lane r: (sc_k(r), sc_k(r)) as int16 */
            __m128i s8 = _mm_loadl_epi64((const __m128i *)(blk->scales + 8 * k));
            __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s8, s8));
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][b].qs + 16 * k;
                __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(g0, bcast4(q8)),
                                              _mm256_maddubs_epi16(g1, bcast4(q8 + 4)));
                __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(g2, bcast4(q8 + 8)),
                                              _mm256_maddubs_epi16(g3, bcast4(q8 + 12)));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(p0, sc),
                                                                     _mm256_madd_epi16(p1, sc)));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk->d));
        for (int t = 0; t < nt; t++) {
            __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(x[t][b].d));
            acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(sc, _mm256_cvtepi32_ps(isum[t])));
        }
    }
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(y + (size_t)(t0 + t) * ldy, acc[t]);
}

PANEL_QUANT(panel_q6_K, struct block_q6_Kx8, q6_K_tile, QK_K)

/* ---- Q4_K, Q5_K ---- */

/* The 8 rows' 6-bit scales and mins of a super-block, decoded lane by lane from its 3 groups of
 * scale bytes (eng_k4_scale_min's arithmetic on 32-bit words): byte j of sm[0] and sm[1] holds
 * the scale of sub-block j and j + 4, byte j of sm[2] and sm[3] their mins. */
INLINE void k4_decode(const uint8_t *scales, __m256i sm[4])
{
    const __m256i m6 = _mm256_set1_epi8(0x3F), m4 = _mm256_set1_epi8(0x0F),
                  m2 = _mm256_set1_epi8(0x03);
    __m256i u0 = _mm256_loadu_si256((const __m256i *)scales);
    __m256i u1 = _mm256_loadu_si256((const __m256i *)(scales + 32));
    __m256i u2 = _mm256_loadu_si256((const __m256i *)(scales + 64));
    sm[0] = _mm256_and_si256(u0, m6);
    sm[1] = _mm256_or_si256(_mm256_and_si256(u2, m4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), m2), 4));
    sm[2] = _mm256_and_si256(u1, m6);
    sm[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), m2), 4));
}

/* Byte j (0..3) of each 32-bit lane of v, unsigned, as the lane's int16 pair (v_j, v_j). */
INLINE __m256i byte_pairs(__m256i v, int j)
{
    const __m256i lane = _mm256_setr_epi32(0, 0x00040004, 0x00080008, 0x000C000C, 0, 0x00040004,
                                           0x00080008, 0x000C000C);
    __m256i idx = _mm256_set1_epi32((int)(0x80008000u | (unsigned)j << 16 | (unsigned)j));
    return _mm256_shuffle_epi8(v, _mm256_add_epi32(lane, idx));
}

/* Bit `bit` of every byte moved to bit 4 (Q5_K's fifth bit as 16); epi16 shifts only move bits
 * between the bytes of a word at positions the mask then clears. */
INLINE __m256i bit_to_16(__m256i h, int bit)
{
    __m256i v = bit < 4 ? _mm256_slli_epi16(h, 4 - bit) : _mm256_srli_epi16(h, bit - 4);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Integer bounds (activations in -128..127, |bsums| <= 2048; scales and mins 0..63):
 *   - Q4_K quants 0..15: maddubs lane halves |q0 a0 + q1 a1| <= 2 * 15 * 128 = 3840; the 8 groups
 *     of a 32-element sub-block add in int16 to <= 30720 < 32768;
 *   - Q5_K quants 0..31: 2 * 31 * 128 = 7936 per maddubs, so only 4 groups (<= 31744) add in
 *     int16 before each widening madd;
 *   - the madd with the sub-block scale gives <= 2 * 31744 * 63 per half sub-block, and the
 *     super-block's scaled sum is at most 8 * 63 * 32 * 31 * 128 = 64012288 in magnitude at
 *     every step (all partial sums are sums of same-bounded terms);
 *   - mins: madd of (m_j, m_j) with (bsums_2j, bsums_2j+1): <= 8 * 63 * 4096 = 2064384.
 * So both int32 lanes hold eng_q4_K_isums' / eng_q5_K_isums' exact sums. */
INLINE void k4_tile(int q5, int64_t nb, const void *w, const struct eng_act *a, int t0, int nt,
                    float *y, size_t ldy)
{
    const struct block_q8_K *x[4];
    __m256 acc[4];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_K *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        acc[t] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const int run = q5 ? 4 : 8; /* groups summed in int16 before widening */
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q4_Kx8 *b4 = (const struct block_q4_Kx8 *)w + b;
        const struct block_q5_Kx8 *b5 = (const struct block_q5_Kx8 *)w + b;
        if (nt == 1)
            prefetch_next_panel(q5 ? (const void *)b5 : (const void *)b4, nb,
                                q5 ? sizeof(*b5) : sizeof(*b4));
        const eng_fp16 *d = q5 ? b5->d : b4->d, *dmin = q5 ? b5->dmin : b4->dmin;
        const uint8_t *qs = q5 ? b5->qs : b4->qs;
        __m256i sm[4], isum[4], imin[4];
        k4_decode(q5 ? b5->scales : b4->scales, sm);
        for (int t = 0; t < nt; t++) {
            isum[t] = _mm256_setzero_si256();
            imin[t] = _mm256_setzero_si256();
        }
        for (int j = 0; j < 8; j++) {
            __m256i mp = byte_pairs(sm[2 + j / 4], j % 4);
            for (int t = 0; t < nt; t++)
                imin[t] = _mm256_add_epi32(imin[t],
                                           _mm256_madd_epi16(mp, bcast32(x[t][b].bsums + 2 * j)));
        }
        /* Passes over the quants: with 1 or 2 tokens both nibbles of a load at once (sub-blocks
         * 2c and 2c + 1), with 3 or 4 one sub-block per pass, so that the int16 sums of all
         * tokens stay in registers (the quant vector is loaded twice instead). */
        const int nn = nt > 2 ? 1 : 2;
#pragma GCC unroll 8
        for (int s0 = 0; s0 < 8; s0 += nn) {
            const int c = s0 / 2;
            __m256i sc[2];
            for (int n = 0; n < nn; n++)
                sc[n] = byte_pairs(sm[(s0 + n) / 4], (s0 + n) % 4);
            for (int g0 = 0; g0 < 8; g0 += run) {
                __m256i p[2][4];
                for (int n = 0; n < nn; n++)
                    for (int t = 0; t < nt; t++)
                        p[n][t] = _mm256_setzero_si256();
                for (int g = g0; g < g0 + run; g++) {
                    __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * (8 * c + g)));
                    __m256i h = q5 ? _mm256_loadu_si256((const __m256i *)(b5->qh + 32 * g))
                                   : _mm256_setzero_si256();
                    for (int n = 0; n < nn; n++) {
                        const int s = s0 + n; /* odd: high nibbles */
                        __m256i q = _mm256_and_si256(s % 2 ? _mm256_srli_epi16(raw, 4) : raw, m4);
                        if (q5)
                            q = _mm256_or_si256(q, bit_to_16(h, s));
                        for (int t = 0; t < nt; t++)
                            p[n][t] = _mm256_add_epi16(
                                p[n][t],
                                _mm256_maddubs_epi16(q, bcast4(x[t][b].qs + 32 * s + 4 * g)));
                    }
                }
                for (int n = 0; n < nn; n++)
                    for (int t = 0; t < nt; t++)
                        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p[n][t], sc[n]));
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d));
        __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dmin));
        for (int t = 0; t < nt; t++) {
            __m256 da = _mm256_set1_ps(x[t][b].d);
            __m256 s = _mm256_mul_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum[t]));
            __m256 m = _mm256_mul_ps(_mm256_mul_ps(dm, da), _mm256_cvtepi32_ps(imin[t]));
            acc[t] = _mm256_add_ps(acc[t], _mm256_sub_ps(s, m));
        }
    }
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(y + (size_t)(t0 + t) * ldy, acc[t]);
}

INLINE void q4_K_tile(int64_t nb, const struct block_q4_Kx8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    k4_tile(0, nb, w, a, t0, nt, y, ldy);
}

PANEL_QUANT(panel_q4_K, struct block_q4_Kx8, q4_K_tile, QK_K)

INLINE void q5_K_tile(int64_t nb, const struct block_q5_Kx8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    k4_tile(1, nb, w, a, t0, nt, y, ldy);
}

PANEL_QUANT(panel_q5_K, struct block_q5_Kx8, q5_K_tile, QK_K)

/* ---- F32, F16, BF16 ---- */

enum { ES_F32, ES_F16, ES_BF16 };

INLINE __m256 load8(int kind, const char *p)
{
    if (kind == ES_F32)
        return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (kind == ES_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* np (1..4) panels, pb bytes apart, times nt tokens, np * nt <= 12 accumulators */
INLINE void float_tile(int kind, int64_t ne0, const char *w, size_t pb, int np,
                       const struct eng_act *a, int t0, int nt, float *y, size_t ldy)
{
    size_t es = kind == ES_F32 ? 4 : 2;
    const float *x[6];
    __m256 acc[4][6];
    for (int t = 0; t < nt; t++)
        x[t] = (const float *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
    for (int i = 0; i < np; i++)
        for (int t = 0; t < nt; t++)
            acc[i][t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < ne0; k++) {
        __m256 wv[4];
        for (int i = 0; i < np; i++)
            wv[i] = load8(kind, w + (size_t)i * pb + (size_t)k * ENG_PANEL * es);
        for (int t = 0; t < nt; t++) {
            __m256 xb = _mm256_broadcast_ss(x[t] + k);
            for (int i = 0; i < np; i++)
                acc[i][t] = _mm256_fmadd_ps(wv[i], xb, acc[i][t]);
        }
    }
    for (int i = 0; i < np; i++)
        for (int t = 0; t < nt; t++)
            _mm256_storeu_ps(y + (size_t)(t0 + t) * ldy + (size_t)i * ENG_PANEL, acc[i][t]);
}

/* panel_float.h cuts each call into float_tile calls. Decode: four panels per pass give four
 * independent FMA chains. Prefill: two panels times six tokens
 * (12 accumulators, 2 weight vectors, 1 broadcast: 15 of 16 registers). */
#include "panel_float.h"

void eng_panels_fill_avx2(struct eng_kernels *k)
{
    k->panel[GGUF_TT_F32] = panel_f32;
    k->panel[GGUF_TT_F16] = panel_f16;
    k->panel[GGUF_TT_BF16] = panel_bf16;
    k->panel[GGUF_TT_Q8_0] = panel_q8_0;
    k->panel[GGUF_TT_Q4_0] = panel_q4_0;
    k->panel[GGUF_TT_Q4_K] = panel_q4_K;
    k->panel[GGUF_TT_Q5_K] = panel_q5_K;
    k->panel[GGUF_TT_Q6_K] = panel_q6_K;
}
