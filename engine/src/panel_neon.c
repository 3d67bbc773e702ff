/* AArch64 NEON panel kernels over the row-interleaved layouts of pack.h: rows 0-3 of a panel in
 * one 128-bit register and rows 4-7 in another, one lane per weight row, so a kernel never sums
 * horizontally and each weight load serves several tokens (decode is the one-token case of the
 * same code). Every (row, token) result is computed with exactly the operations of pack.c's
 * reference kernels, in the same order: exact integer block sums, then mul, mul, add for the
 * quantized types (this file is built with -ffp-contract=off, so they are never fused), one fused
 * multiply-add per element for the float types (vfmaq).
 *
 * Quantized tiles: per block, the 8 rows' quant bytes arrive as 4-byte groups; the 4 activation
 * bytes that meet a group are broadcast to every 32-bit lane. With the ARMv8.2 dot product
 * (asimddp: Cortex-A55/A76, so the Pi 5 and RK3588) one sdot per 4 rows gives each lane its row's
 * partial sum. ARMv8.0 has no sdot: vmull_s8 gives the 16-bit products (at most 128 * 128, exact),
 * vpadal adds pairs of them into 32 bits, and one vpaddq per block folds the two lanes a row holds.
 * The sdot kernels are compiled with a target attribute and chosen at run time (HWCAP_ASIMDDP).
 * Q4_0 nibbles become q - 8 before the products, so both variants give the reference's isum.
 * The k-quants (Q4_K, Q5_K, Q6_K) work the same way per sub-block, with their own bounds (below).
 * Decode of Q8_0/Q4_0 runs four panels at once, like AVX2's. */
#include "kernels.h"
#include "pack.h"

#include <arm_neon.h>
#include <string.h>

#define INLINE  static inline __attribute__((always_inline))
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

/* The 4 bytes at p in every 32-bit lane. */
INLINE int8x16_t bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* The 8 rows' block scales as floats (fp16 to fp32 is exact). */
INLINE void load_scales(const eng_fp16 *d, float32x4_t *lo, float32x4_t *hi)
{
    float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(d));
    *lo = vcvt_f32_f16(vget_low_f16(h));
    *hi = vcvt_high_f32_f16(h);
}

/* acc = acc + (float)isum * (dw * da), lane by lane */
INLINE float32x4_t block_acc(float32x4_t acc, int32x4_t isum, float32x4_t dw, float da)
{
    float32x4_t sc = vmulq_f32(dw, vdupq_n_f32(da));
    return vaddq_f32(acc, vmulq_f32(vcvtq_f32_s32(isum), sc));
}

/* ---- ARMv8.0: widening multiplies, pairwise accumulation ---- */

/* Block sums of 8 rows for one token, as 4 accumulators holding 2 lanes per row (rows 0-1, 2-3,
 * 4-5, 6-7); w03/w47 are the rows' 4-byte groups, xb the activation's 4 bytes broadcast. */
INLINE void mull_group(int32x4_t s[4], int8x16_t w03, int8x16_t w47, int8x16_t xb)
{
    s[0] = vpadalq_s16(s[0], vmull_s8(vget_low_s8(w03), vget_low_s8(xb)));
    s[1] = vpadalq_s16(s[1], vmull_high_s8(w03, xb));
    s[2] = vpadalq_s16(s[2], vmull_s8(vget_low_s8(w47), vget_low_s8(xb)));
    s[3] = vpadalq_s16(s[3], vmull_high_s8(w47, xb));
}

/* one panel, nt (1..4) tokens starting at token t0 */
INLINE void q8_0_tile(int64_t nb, const struct block_q8_0x8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    const struct block_q8_0 *x[4];
    const float *ad[4];
    float32x4_t acc[4][2];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    }
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q8_0x8 *blk = w + b;
        int32x4_t s[4][4];
        for (int t = 0; t < nt; t++)
            s[t][0] = s[t][1] = s[t][2] = s[t][3] = vdupq_n_s32(0);
        for (int g = 0; g < 8; g++) {
            int8x16_t w03 = vld1q_s8(blk->qs + 32 * g), w47 = vld1q_s8(blk->qs + 32 * g + 16);
            for (int t = 0; t < nt; t++)
                mull_group(s[t], w03, w47, bcast4(x[t][b].qs + 4 * g));
        }
        float32x4_t dlo, dhi;
        load_scales(blk->d, &dlo, &dhi);
        for (int t = 0; t < nt; t++) {
            acc[t][0] = block_acc(acc[t][0], vpaddq_s32(s[t][0], s[t][1]), dlo, ad[t][b]);
            acc[t][1] = block_acc(acc[t][1], vpaddq_s32(s[t][2], s[t][3]), dhi, ad[t][b]);
        }
    }
    for (int t = 0; t < nt; t++) {
        vst1q_f32(y + (size_t)(t0 + t) * ldy, acc[t][0]);
        vst1q_f32(y + (size_t)(t0 + t) * ldy + 4, acc[t][1]);
    }
}

/* Q4_0 group g: the rows' nibble bytes as q - 8, low nibbles (elements 4g..4g+3) and high
 * nibbles (elements 16 + 4g..) */
INLINE void q4_split(const uint8_t *p, int8x16_t *lo, int8x16_t *hi)
{
    const uint8x16_t raw = vld1q_u8(p), m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, m4)), eight);
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight);
}

INLINE void q4_0_tile(int64_t nb, const struct block_q4_0x8 *w, const struct eng_act *a, int t0,
                      int nt, float *y, size_t ldy)
{
    const struct block_q8_0 *x[4];
    const float *ad[4];
    float32x4_t acc[4][2];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    }
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q4_0x8 *blk = w + b;
        int32x4_t s[4][4];
        for (int t = 0; t < nt; t++)
            s[t][0] = s[t][1] = s[t][2] = s[t][3] = vdupq_n_s32(0);
        for (int g = 0; g < 4; g++) {
            int8x16_t lo03, hi03, lo47, hi47;
            q4_split(blk->qs + 32 * g, &lo03, &hi03);
            q4_split(blk->qs + 32 * g + 16, &lo47, &hi47);
            for (int t = 0; t < nt; t++) {
                mull_group(s[t], lo03, lo47, bcast4(x[t][b].qs + 4 * g));
                mull_group(s[t], hi03, hi47, bcast4(x[t][b].qs + 16 + 4 * g));
            }
        }
        float32x4_t dlo, dhi;
        load_scales(blk->d, &dlo, &dhi);
        for (int t = 0; t < nt; t++) {
            acc[t][0] = block_acc(acc[t][0], vpaddq_s32(s[t][0], s[t][1]), dlo, ad[t][b]);
            acc[t][1] = block_acc(acc[t][1], vpaddq_s32(s[t][2], s[t][3]), dhi, ad[t][b]);
        }
    }
    for (int t = 0; t < nt; t++) {
        vst1q_f32(y + (size_t)(t0 + t) * ldy, acc[t][0]);
        vst1q_f32(y + (size_t)(t0 + t) * ldy + 4, acc[t][1]);
    }
}

/* ---- ARMv8.2 dot product: one sdot per 4 rows and 4 bytes ---- */

DOTPROD INLINE void q8_0_tile_dp(int64_t nb, const struct block_q8_0x8 *w, const struct eng_act *a,
                                 int t0, int nt, float *y, size_t ldy)
{
    const struct block_q8_0 *x[4];
    const float *ad[4];
    float32x4_t acc[4][2];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    }
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q8_0x8 *blk = w + b;
        int32x4_t s[4][2];
        for (int t = 0; t < nt; t++)
            s[t][0] = s[t][1] = vdupq_n_s32(0);
        for (int g = 0; g < 8; g++) {
            int8x16_t w03 = vld1q_s8(blk->qs + 32 * g), w47 = vld1q_s8(blk->qs + 32 * g + 16);
            for (int t = 0; t < nt; t++) {
                int8x16_t xb = bcast4(x[t][b].qs + 4 * g);
                s[t][0] = vdotq_s32(s[t][0], w03, xb);
                s[t][1] = vdotq_s32(s[t][1], w47, xb);
            }
        }
        float32x4_t dlo, dhi;
        load_scales(blk->d, &dlo, &dhi);
        for (int t = 0; t < nt; t++) {
            acc[t][0] = block_acc(acc[t][0], s[t][0], dlo, ad[t][b]);
            acc[t][1] = block_acc(acc[t][1], s[t][1], dhi, ad[t][b]);
        }
    }
    for (int t = 0; t < nt; t++) {
        vst1q_f32(y + (size_t)(t0 + t) * ldy, acc[t][0]);
        vst1q_f32(y + (size_t)(t0 + t) * ldy + 4, acc[t][1]);
    }
}

DOTPROD INLINE void q4_0_tile_dp(int64_t nb, const struct block_q4_0x8 *w, const struct eng_act *a,
                                 int t0, int nt, float *y, size_t ldy)
{
    const struct block_q8_0 *x[4];
    const float *ad[4];
    float32x4_t acc[4][2];
    for (int t = 0; t < nt; t++) {
        x[t] = (const struct block_q8_0 *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
        ad[t] = a->d + (size_t)(t0 + t) * a->aux_row;
        acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    }
    for (int64_t b = 0; b < nb; b++) {
        const struct block_q4_0x8 *blk = w + b;
        int32x4_t s[4][2];
        for (int t = 0; t < nt; t++)
            s[t][0] = s[t][1] = vdupq_n_s32(0);
        for (int g = 0; g < 4; g++) {
            int8x16_t lo03, hi03, lo47, hi47;
            q4_split(blk->qs + 32 * g, &lo03, &hi03);
            q4_split(blk->qs + 32 * g + 16, &lo47, &hi47);
            for (int t = 0; t < nt; t++) {
                int8x16_t xl = bcast4(x[t][b].qs + 4 * g), xh = bcast4(x[t][b].qs + 16 + 4 * g);
                s[t][0] = vdotq_s32(vdotq_s32(s[t][0], lo03, xl), hi03, xh);
                s[t][1] = vdotq_s32(vdotq_s32(s[t][1], lo47, xl), hi47, xh);
            }
        }
        float32x4_t dlo, dhi;
        load_scales(blk->d, &dlo, &dhi);
        for (int t = 0; t < nt; t++) {
            acc[t][0] = block_acc(acc[t][0], s[t][0], dlo, ad[t][b]);
            acc[t][1] = block_acc(acc[t][1], s[t][1], dhi, ad[t][b]);
        }
    }
    for (int t = 0; t < nt; t++) {
        vst1q_f32(y + (size_t)(t0 + t) * ldy, acc[t][0]);
        vst1q_f32(y + (size_t)(t0 + t) * ldy + 4, acc[t][1]);
    }
}

/* Panel by panel, four tokens per tile while they last; the tile size is a constant in each call
 * so the compiler keeps the accumulators in registers. */
#define PANEL_QUANT(NAME, ATTR, BLOCK, TILE, QK)                                             \
    ATTR static void NAME(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, \
                          int n_tok, float *y, size_t ldy)                                   \
    {                                                                                        \
        int64_t nb = ne0 / (QK);                                                             \
        for (int p = 0; p < n_panels; p++) {                                                 \
            const BLOCK *pw = (const BLOCK *)w + (size_t)p * nb;                             \
            float *py = y + (size_t)p * ENG_PANEL;                                           \
            int t = 0;                                                                       \
            for (; t + 4 <= n_tok; t += 4)                                                   \
                TILE(nb, pw, a, t, 4, py, ldy);                                              \
            if (n_tok - t == 3)                                                              \
                TILE(nb, pw, a, t, 3, py, ldy);                                              \
            else if (n_tok - t == 2)                                                         \
                TILE(nb, pw, a, t, 2, py, ldy);                                              \
            else if (n_tok - t == 1)                                                         \
                TILE(nb, pw, a, t, 1, py, ldy);                                              \
        }                                                                                    \
    }

PANEL_QUANT(panel_q8_0_tiles, , struct block_q8_0x8, q8_0_tile, QK8_0)
PANEL_QUANT(panel_q4_0_tiles, , struct block_q4_0x8, q4_0_tile, QK8_0)
PANEL_QUANT(panel_q8_0_tiles_dp, DOTPROD, struct block_q8_0x8, q8_0_tile_dp, QK8_0)
PANEL_QUANT(panel_q4_0_tiles_dp, DOTPROD, struct block_q4_0x8, q4_0_tile_dp, QK8_0)

/* Decode (one token): four panels at once, as on AVX2. One weight stream at a time leaves the
 * memory system idle between misses, four keep several lines in flight, and each activation
 * broadcast serves all four. The per-row arithmetic is the tiles'. */
#define QUAD_1TOK(NAME, ATTR, BLOCK, GROUP_FN, N_ACC, FOLD03, FOLD47)                    \
    ATTR INLINE void NAME(int64_t nb, const BLOCK *w, const struct eng_act *a, float *y) \
    {                                                                                    \
        const struct block_q8_0 *x = a->q;                                               \
        float32x4_t acc[4][2];                                                           \
        for (int i = 0; i < 4; i++)                                                      \
            acc[i][0] = acc[i][1] = vdupq_n_f32(0);                                      \
        for (int64_t b = 0; b < nb; b++) {                                               \
            int32x4_t s[4][N_ACC];                                                       \
            for (int i = 0; i < 4; i++)                                                  \
                for (int j = 0; j < N_ACC; j++)                                          \
                    s[i][j] = vdupq_n_s32(0);                                            \
            for (int i = 0; i < 4; i++)                                                  \
                GROUP_FN(s[i], w + (size_t)i * nb + b, x[b].qs);                         \
            for (int i = 0; i < 4; i++) {                                                \
                float32x4_t dlo, dhi;                                                    \
                load_scales(w[(size_t)i * nb + b].d, &dlo, &dhi);                        \
                acc[i][0] = block_acc(acc[i][0], FOLD03, dlo, a->d[b]);                  \
                acc[i][1] = block_acc(acc[i][1], FOLD47, dhi, a->d[b]);                  \
            }                                                                            \
        }                                                                                \
        for (int i = 0; i < 4; i++) {                                                    \
            vst1q_f32(y + (size_t)i * ENG_PANEL, acc[i][0]);                             \
            vst1q_f32(y + (size_t)i * ENG_PANEL + 4, acc[i][1]);                         \
        }                                                                                \
    }

/* One block of one panel against one token's activation bytes xq: the tiles' products. */
INLINE void q8_0_block(int32x4_t s[4], const struct block_q8_0x8 *blk, const int8_t *xq)
{
    for (int g = 0; g < 8; g++)
        mull_group(s, vld1q_s8(blk->qs + 32 * g), vld1q_s8(blk->qs + 32 * g + 16),
                   bcast4(xq + 4 * g));
}

INLINE void q4_0_block(int32x4_t s[4], const struct block_q4_0x8 *blk, const int8_t *xq)
{
    for (int g = 0; g < 4; g++) {
        int8x16_t lo03, hi03, lo47, hi47;
        q4_split(blk->qs + 32 * g, &lo03, &hi03);
        q4_split(blk->qs + 32 * g + 16, &lo47, &hi47);
        mull_group(s, lo03, lo47, bcast4(xq + 4 * g));
        mull_group(s, hi03, hi47, bcast4(xq + 16 + 4 * g));
    }
}

DOTPROD INLINE void q8_0_block_dp(int32x4_t s[2], const struct block_q8_0x8 *blk, const int8_t *xq)
{
    for (int g = 0; g < 8; g++) {
        int8x16_t xb = bcast4(xq + 4 * g);
        s[0] = vdotq_s32(s[0], vld1q_s8(blk->qs + 32 * g), xb);
        s[1] = vdotq_s32(s[1], vld1q_s8(blk->qs + 32 * g + 16), xb);
    }
}

DOTPROD INLINE void q4_0_block_dp(int32x4_t s[2], const struct block_q4_0x8 *blk, const int8_t *xq)
{
    for (int g = 0; g < 4; g++) {
        int8x16_t lo03, hi03, lo47, hi47;
        q4_split(blk->qs + 32 * g, &lo03, &hi03);
        q4_split(blk->qs + 32 * g + 16, &lo47, &hi47);
        int8x16_t xl = bcast4(xq + 4 * g), xh = bcast4(xq + 16 + 4 * g);
        s[0] = vdotq_s32(vdotq_s32(s[0], lo03, xl), hi03, xh);
        s[1] = vdotq_s32(vdotq_s32(s[1], lo47, xl), hi47, xh);
    }
}

QUAD_1TOK(q8_0_quad, , struct block_q8_0x8, q8_0_block, 4, vpaddq_s32(s[i][0], s[i][1]),
          vpaddq_s32(s[i][2], s[i][3]))
QUAD_1TOK(q4_0_quad, , struct block_q4_0x8, q4_0_block, 4, vpaddq_s32(s[i][0], s[i][1]),
          vpaddq_s32(s[i][2], s[i][3]))
QUAD_1TOK(q8_0_quad_dp, DOTPROD, struct block_q8_0x8, q8_0_block_dp, 2, s[i][0], s[i][1])
QUAD_1TOK(q4_0_quad_dp, DOTPROD, struct block_q4_0x8, q4_0_block_dp, 2, s[i][0], s[i][1])

/* n_tok == 1: quads while four panels last, then the tiles */
#define PANEL_DECODE_QUAD(NAME, ATTR, BLOCK, TILES, QUAD)                                    \
    ATTR static void NAME(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, \
                          int n_tok, float *y, size_t ldy)                                   \
    {                                                                                        \
        int64_t nb = ne0 / QK8_0;                                                            \
        int p = 0;                                                                           \
        if (n_tok == 1)                                                                      \
            for (; p + 4 <= n_panels; p += 4)                                                \
                QUAD(nb, (const BLOCK *)w + (size_t)p * nb, a, y + (size_t)p * ENG_PANEL);   \
        if (p < n_panels)                                                                    \
            TILES(ne0, (const BLOCK *)w + (size_t)p * nb, n_panels - p, a, n_tok,            \
                  y + (size_t)p * ENG_PANEL, ldy);                                           \
    }

PANEL_DECODE_QUAD(panel_q8_0, , struct block_q8_0x8, panel_q8_0_tiles, q8_0_quad)
PANEL_DECODE_QUAD(panel_q4_0, , struct block_q4_0x8, panel_q4_0_tiles, q4_0_quad)
PANEL_DECODE_QUAD(panel_q8_0_dp, DOTPROD, struct block_q8_0x8, panel_q8_0_tiles_dp, q8_0_quad_dp)
PANEL_DECODE_QUAD(panel_q4_0_dp, DOTPROD, struct block_q4_0x8, panel_q4_0_tiles_dp, q4_0_quad_dp)

/* ---- Q6_K, Q4_K, Q5_K (Q8_K activations) ----
 *
 * Per 256-element super-block the 8 rows' quants arrive as 4-byte groups (pack.h); a sub-block's
 * groups meet the broadcast activation bytes as above, each row's sub-block sum is multiplied by
 * the row's own sub-block scale in its int32 lane (vmlaq), and Q6_K's -32 and the mins of
 * Q4_K/Q5_K are applied per super-block through the activation's bsums. Quants stay unsigned
 * (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63: all valid as int8). Then the float operations of
 * eng_dot_*_K_ref, lane by lane.
 *
 * A sub-block's per-row sums come from one of two accumulators, so that the tiles below are
 * written once for both (K_TILES):
 *   - ARMv8.0 (struct rows16): int16 products added lane by lane with vmlal_s8, folded into one
 *     int32 per row at the end of the sub-block (vpaddl, vpaddq). Each int16 lane adds one
 *     product per group: Q6_K at most 4 groups of 63 * 128 (32256), Q5_K 8 of 31 * 128 (31744),
 *     Q4_K 8 of 15 * 128 (15360), all below 32768, so no lane wraps;
 *   - ARMv8.2 (struct rows32): one sdot per 4 rows and group, straight into int32.
 * The int32 sums are those of the AVX2 kernels (panel_avx2.c proves their bounds: below 2^31 at
 * every step), so both variants give eng_q6_K_isum's / eng_q4_K_isums' exact integers. */

struct rows16 {
    int16x8_t h[4]; /* rows 0-1, 2-3, 4-5, 6-7: 4 lanes each */
};

INLINE void rows16_zero(struct rows16 *r)
{
    for (int i = 0; i < 4; i++)
        r->h[i] = vdupq_n_s16(0);
}

INLINE void rows16_add(struct rows16 *r, int8x16_t w03, int8x16_t w47, int8x16_t xb)
{
    r->h[0] = vmlal_s8(r->h[0], vget_low_s8(w03), vget_low_s8(xb));
    r->h[1] = vmlal_high_s8(r->h[1], w03, xb);
    r->h[2] = vmlal_s8(r->h[2], vget_low_s8(w47), vget_low_s8(xb));
    r->h[3] = vmlal_high_s8(r->h[3], w47, xb);
}

INLINE void rows16_sums(const struct rows16 *r, int32x4_t *s03, int32x4_t *s47)
{
    *s03 = vpaddq_s32(vpaddlq_s16(r->h[0]), vpaddlq_s16(r->h[1]));
    *s47 = vpaddq_s32(vpaddlq_s16(r->h[2]), vpaddlq_s16(r->h[3]));
}

struct rows32 {
    int32x4_t s[2]; /* rows 0-3, 4-7 */
};

DOTPROD INLINE void rows32_zero(struct rows32 *r)
{
    r->s[0] = r->s[1] = vdupq_n_s32(0);
}

DOTPROD INLINE void rows32_add(struct rows32 *r, int8x16_t w03, int8x16_t w47, int8x16_t xb)
{
    r->s[0] = vdotq_s32(r->s[0], w03, xb);
    r->s[1] = vdotq_s32(r->s[1], w47, xb);
}

DOTPROD INLINE void rows32_sums(const struct rows32 *r, int32x4_t *s03, int32x4_t *s47)
{
    *s03 = r->s[0];
    *s47 = r->s[1];
}

/* Q6_K sub-block k's four groups (elements 16k + 4s + j, s = 0..3) of rows 0-3 (h = 0) or 4-7
 * (h = 1) as unsigned quants u = q + 32: nibbles from lo0/lo1, top 2 bits from hi (pack.h). */
INLINE void q6_groups(const struct block_q6_Kx8 *blk, int k, int h, int8x16_t g[4])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    uint8x16_t l0 = vld1q_u8(blk->q[k][0] + 16 * h), l1 = vld1q_u8(blk->q[k][1] + 16 * h);
    uint8x16_t hb = vld1q_u8(blk->q[k][2] + 16 * h);
    g[0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(hb, 4), m30)));
    g[1] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(vshlq_n_u8(hb, 2), m30)));
    g[2] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l1, m4), vandq_u8(hb, m30)));
    g[3] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(hb, 2), m30)));
}

/* The 8 rows' int8 values at p (Q6_K's sub-block scales) as int32 lanes. */
INLINE void widen8(const int8_t *p, int32x4_t *lo, int32x4_t *hi)
{
    int16x8_t v = vmovl_s8(vld1_s8(p));
    *lo = vmovl_s16(vget_low_s16(v));
    *hi = vmovl_high_s16(v);
}

/* Q4_K/Q5_K: the 8 rows' 6-bit scales and mins of a super-block, decoded byte by byte from the
 * 3 groups of scale bytes (eng_k4_scale_min's bit moves): byte j of each row's lane in sm[0] and
 * sm[1] is the scale of sub-block j and j + 4, in sm[2] and sm[3] their mins; [h] rows 0-3 / 4-7.
 */
INLINE void k4_decode(const uint8_t *scales, uint8x16_t sm[4][2])
{
    const uint8x16_t m6 = vdupq_n_u8(0x3F), m4 = vdupq_n_u8(0x0F);
    for (int h = 0; h < 2; h++) {
        uint8x16_t u0 = vld1q_u8(scales + 16 * h), u1 = vld1q_u8(scales + 32 + 16 * h);
        uint8x16_t u2 = vld1q_u8(scales + 64 + 16 * h);
        sm[0][h] = vandq_u8(u0, m6);
        sm[1][h] = vorrq_u8(vandq_u8(u2, m4), vshlq_n_u8(vshrq_n_u8(u0, 6), 4));
        sm[2][h] = vandq_u8(u1, m6);
        sm[3][h] = vorrq_u8(vshrq_n_u8(u2, 4), vshlq_n_u8(vshrq_n_u8(u1, 6), 4));
    }
}

/* Byte j (0..3) of each 32-bit lane, unsigned, as that lane's int32. */
INLINE int32x4_t lane_byte(uint8x16_t v, int j)
{
    uint32x4_t w = vshlq_u32(vreinterpretq_u32_u8(v), vdupq_n_s32(-8 * j));
    return vreinterpretq_s32_u32(vandq_u32(w, vdupq_n_u32(0xFF)));
}

/* Q5_K's fifth bit of sub-block s (bit s of each qh byte) as 16. */
INLINE uint8x16_t bit_to_16(uint8x16_t h, int s)
{
    return vandq_u8(vshlq_u8(h, vdupq_n_s8((int8_t)(4 - s))), vdupq_n_u8(0x10));
}

/* The tiles, written once and instantiated for each accumulator: one panel, nt (1..4) tokens
 * starting at token t0.
 *   - Q6_K: the -32 first (isum = -32 * sum_k sc_k * bsums_k per lane), then per sub-block the
 *     four groups (decoded once for all tokens) against each token, times the scales.
 *   - Q4_K/Q5_K: with 1 or 2 tokens both nibbles of a quant load at once (sub-blocks 2c and
 *     2c + 1), with 3 or 4 one sub-block per pass (the quants are loaded twice), so that the
 *     tokens' accumulators stay in registers; the mins last. */
#define K_TILES(SFX, ATTR, ROWS)                                                                   \
    ATTR INLINE void q6_K_tile##SFX(int64_t nb, const struct block_q6_Kx8 *w,                      \
                                    const struct eng_act *a, int t0, int nt, float *y, size_t ldy) \
    {                                                                                              \
        const struct block_q8_K *x[4];                                                             \
        float32x4_t acc[4][2];                                                                     \
        for (int t = 0; t < nt; t++) {                                                             \
            x[t] =                                                                                 \
                (const struct block_q8_K *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes); \
            acc[t][0] = acc[t][1] = vdupq_n_f32(0);                                                \
        }                                                                                          \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const struct block_q6_Kx8 *blk = w + b;                                                \
            int32x4_t isum[4][2];                                                                  \
            for (int t = 0; t < nt; t++)                                                           \
                isum[t][0] = isum[t][1] = vdupq_n_s32(0);                                          \
            for (int k = 0; k < QK_K / 16; k++) {                                                  \
                int32x4_t sc03, sc47;                                                              \
                widen8(blk->scales + ENG_PANEL * k, &sc03, &sc47);                                 \
                for (int t = 0; t < nt; t++) {                                                     \
                    isum[t][0] = vmlsq_n_s32(isum[t][0], sc03, x[t][b].bsums[k]);                  \
                    isum[t][1] = vmlsq_n_s32(isum[t][1], sc47, x[t][b].bsums[k]);                  \
                }                                                                                  \
            }                                                                                      \
            for (int t = 0; t < nt; t++) {                                                         \
                isum[t][0] = vshlq_n_s32(isum[t][0], 5);                                           \
                isum[t][1] = vshlq_n_s32(isum[t][1], 5);                                           \
            }                                                                                      \
            for (int k = 0; k < QK_K / 16; k++) {                                                  \
                int8x16_t g03[4], g47[4];                                                          \
                q6_groups(blk, k, 0, g03);                                                         \
                q6_groups(blk, k, 1, g47);                                                         \
                int32x4_t sc03, sc47;                                                              \
                widen8(blk->scales + ENG_PANEL * k, &sc03, &sc47);                                 \
                for (int t = 0; t < nt; t++) {                                                     \
                    const int8_t *q8 = x[t][b].qs + 16 * k;                                        \
                    struct ROWS r;                                                                 \
                    int32x4_t s03, s47;                                                            \
                    ROWS##_zero(&r);                                                               \
                    for (int s = 0; s < 4; s++)                                                    \
                        ROWS##_add(&r, g03[s], g47[s], bcast4(q8 + 4 * s));                        \
                    ROWS##_sums(&r, &s03, &s47);                                                   \
                    isum[t][0] = vmlaq_s32(isum[t][0], s03, sc03);                                 \
                    isum[t][1] = vmlaq_s32(isum[t][1], s47, sc47);                                 \
                }                                                                                  \
            }                                                                                      \
            float32x4_t dlo, dhi;                                                                  \
            load_scales(blk->d, &dlo, &dhi);                                                       \
            for (int t = 0; t < nt; t++) {                                                         \
                acc[t][0] = block_acc(acc[t][0], isum[t][0], dlo, x[t][b].d);                      \
                acc[t][1] = block_acc(acc[t][1], isum[t][1], dhi, x[t][b].d);                      \
            }                                                                                      \
        }                                                                                          \
        for (int t = 0; t < nt; t++) {                                                             \
            vst1q_f32(y + (size_t)(t0 + t) * ldy, acc[t][0]);                                      \
            vst1q_f32(y + (size_t)(t0 + t) * ldy + 4, acc[t][1]);                                  \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    ATTR INLINE void k4_tile##SFX(int q5, int64_t nb, const void *w, const struct eng_act *a,      \
                                  int t0, int nt, float *y, size_t ldy)                            \
    {                                                                                              \
        const struct block_q8_K *x[4];                                                             \
        float32x4_t acc[4][2];                                                                     \
        for (int t = 0; t < nt; t++) {                                                             \
            x[t] =                                                                                 \
                (const struct block_q8_K *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes); \
            acc[t][0] = acc[t][1] = vdupq_n_f32(0);                                                \
        }                                                                                          \
        const uint8x16_t m4 = vdupq_n_u8(0x0F);                                                    \
        const int nn = nt > 2 ? 1 : 2;                                                             \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const struct block_q4_Kx8 *b4 = (const struct block_q4_Kx8 *)w + b;                    \
            const struct block_q5_Kx8 *b5 = (const struct block_q5_Kx8 *)w + b;                    \
            const eng_fp16 *d = q5 ? b5->d : b4->d, *dmin = q5 ? b5->dmin : b4->dmin;              \
            const uint8_t *qs = q5 ? b5->qs : b4->qs;                                              \
            uint8x16_t sm[4][2];                                                                   \
            k4_decode(q5 ? b5->scales : b4->scales, sm);                                           \
            int32x4_t isum[4][2];                                                                  \
            for (int t = 0; t < nt; t++)                                                           \
                isum[t][0] = isum[t][1] = vdupq_n_s32(0);                                          \
            for (int s0 = 0; s0 < 8; s0 += nn) {                                                   \
                const int c = s0 / 2;                                                              \
                struct ROWS r[2][4];                                                               \
                for (int n = 0; n < nn; n++)                                                       \
                    for (int t = 0; t < nt; t++)                                                   \
                        ROWS##_zero(&r[n][t]);                                                     \
                for (int g = 0; g < 8; g++) {                                                      \
                    const uint8_t *qg = qs + 32 * (8 * c + g);                                     \
                    uint8x16_t raw03 = vld1q_u8(qg), raw47 = vld1q_u8(qg + 16);                    \
                    uint8x16_t h03 = vdupq_n_u8(0), h47 = h03;                                     \
                    if (q5) {                                                                      \
                        h03 = vld1q_u8(b5->qh + 32 * g);                                           \
                        h47 = vld1q_u8(b5->qh + 32 * g + 16);                                      \
                    }                                                                              \
                    for (int n = 0; n < nn; n++) {                                                 \
                        const int s = s0 + n; /* odd: high nibbles */                              \
                        uint8x16_t q03 = s % 2 ? vshrq_n_u8(raw03, 4) : vandq_u8(raw03, m4);       \
                        uint8x16_t q47 = s % 2 ? vshrq_n_u8(raw47, 4) : vandq_u8(raw47, m4);       \
                        if (q5) {                                                                  \
                            q03 = vorrq_u8(q03, bit_to_16(h03, s));                                \
                            q47 = vorrq_u8(q47, bit_to_16(h47, s));                                \
                        }                                                                          \
                        for (int t = 0; t < nt; t++)                                               \
                            ROWS##_add(&r[n][t], vreinterpretq_s8_u8(q03),                         \
                                       vreinterpretq_s8_u8(q47),                                   \
                                       bcast4(x[t][b].qs + 32 * s + 4 * g));                       \
                    }                                                                              \
                }                                                                                  \
                for (int n = 0; n < nn; n++) {                                                     \
                    const int s = s0 + n;                                                          \
                    int32x4_t sc03 = lane_byte(sm[s / 4][0], s % 4);                               \
                    int32x4_t sc47 = lane_byte(sm[s / 4][1], s % 4);                               \
                    for (int t = 0; t < nt; t++) {                                                 \
                        int32x4_t s03, s47;                                                        \
                        ROWS##_sums(&r[n][t], &s03, &s47);                                         \
                        isum[t][0] = vmlaq_s32(isum[t][0], s03, sc03);                             \
                        isum[t][1] = vmlaq_s32(isum[t][1], s47, sc47);                             \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            float32x4_t dlo, dhi, mlo, mhi;                                                        \
            load_scales(d, &dlo, &dhi);                                                            \
            load_scales(dmin, &mlo, &mhi);                                                         \
            for (int t = 0; t < nt; t++) {                                                         \
                int32x4_t imin03 = vdupq_n_s32(0), imin47 = imin03;                                \
                for (int j = 0; j < 8; j++) {                                                      \
                    int32_t bs = x[t][b].bsums[2 * j] + x[t][b].bsums[2 * j + 1];                  \
                    imin03 = vmlaq_n_s32(imin03, lane_byte(sm[2 + j / 4][0], j % 4), bs);          \
                    imin47 = vmlaq_n_s32(imin47, lane_byte(sm[2 + j / 4][1], j % 4), bs);          \
                }                                                                                  \
                acc[t][0] = k4_acc(acc[t][0], isum[t][0], imin03, dlo, mlo, x[t][b].d);            \
                acc[t][1] = k4_acc(acc[t][1], isum[t][1], imin47, dhi, mhi, x[t][b].d);            \
            }                                                                                      \
        }                                                                                          \
        for (int t = 0; t < nt; t++) {                                                             \
            vst1q_f32(y + (size_t)(t0 + t) * ldy, acc[t][0]);                                      \
            vst1q_f32(y + (size_t)(t0 + t) * ldy + 4, acc[t][1]);                                  \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    ATTR INLINE void q4_K_tile##SFX(int64_t nb, const struct block_q4_Kx8 *w,                      \
                                    const struct eng_act *a, int t0, int nt, float *y, size_t ldy) \
    {                                                                                              \
        k4_tile##SFX(0, nb, w, a, t0, nt, y, ldy);                                                 \
    }                                                                                              \
                                                                                                   \
    ATTR INLINE void q5_K_tile##SFX(int64_t nb, const struct block_q5_Kx8 *w,                      \
                                    const struct eng_act *a, int t0, int nt, float *y, size_t ldy) \
    {                                                                                              \
        k4_tile##SFX(1, nb, w, a, t0, nt, y, ldy);                                                 \
    }

/* acc = acc + ((dw * da) * (float)isum - (dmin * da) * (float)imin), lane by lane */
INLINE float32x4_t k4_acc(float32x4_t acc, int32x4_t isum, int32x4_t imin, float32x4_t dw,
                          float32x4_t dm, float da)
{
    float32x4_t vda = vdupq_n_f32(da);
    float32x4_t s = vmulq_f32(vmulq_f32(dw, vda), vcvtq_f32_s32(isum));
    float32x4_t m = vmulq_f32(vmulq_f32(dm, vda), vcvtq_f32_s32(imin));
    return vaddq_f32(acc, vsubq_f32(s, m));
}

K_TILES(, , rows16)
K_TILES(_dp, DOTPROD, rows32)

PANEL_QUANT(panel_q6_K, , struct block_q6_Kx8, q6_K_tile, QK_K)
PANEL_QUANT(panel_q4_K, , struct block_q4_Kx8, q4_K_tile, QK_K)
PANEL_QUANT(panel_q5_K, , struct block_q5_Kx8, q5_K_tile, QK_K)
PANEL_QUANT(panel_q6_K_dp, DOTPROD, struct block_q6_Kx8, q6_K_tile_dp, QK_K)
PANEL_QUANT(panel_q4_K_dp, DOTPROD, struct block_q4_Kx8, q4_K_tile_dp, QK_K)
PANEL_QUANT(panel_q5_K_dp, DOTPROD, struct block_q5_Kx8, q5_K_tile_dp, QK_K)

/* ---- F32, F16, BF16 ---- */

enum { ES_F32, ES_F16, ES_BF16 };

/* element k of the 8 rows as two float vectors (rows 0-3, 4-7); the conversions are exact */
INLINE void load8(int kind, const char *p, float32x4_t *lo, float32x4_t *hi)
{
    if (kind == ES_F32) {
        *lo = vld1q_f32((const float *)p);
        *hi = vld1q_f32((const float *)p + 4);
        return;
    }
    uint16x8_t h = vld1q_u16((const uint16_t *)p);
    if (kind == ES_F16) {
        float16x8_t f = vreinterpretq_f16_u16(h);
        *lo = vcvt_f32_f16(vget_low_f16(f));
        *hi = vcvt_high_f32_f16(f);
        return;
    }
    *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
}

/* np (1..4) panels, pb bytes apart, times nt (1..6) tokens, np * nt <= 12: two accumulators each */
INLINE void float_tile(int kind, int64_t ne0, const char *w, size_t pb, int np,
                       const struct eng_act *a, int t0, int nt, float *y, size_t ldy)
{
    size_t es = kind == ES_F32 ? 4 : 2;
    const float *x[6];
    float32x4_t acc[4][6][2];
    for (int t = 0; t < nt; t++)
        x[t] = (const float *)((const char *)a->q + (size_t)(t0 + t) * a->row_bytes);
    for (int i = 0; i < np; i++)
        for (int t = 0; t < nt; t++)
            acc[i][t][0] = acc[i][t][1] = vdupq_n_f32(0);
    for (int64_t k = 0; k < ne0; k++) {
        float32x4_t wv[4][2];
        for (int i = 0; i < np; i++)
            load8(kind, w + (size_t)i * pb + (size_t)k * ENG_PANEL * es, &wv[i][0], &wv[i][1]);
        for (int t = 0; t < nt; t++) {
            float32x4_t xb = vdupq_n_f32(x[t][k]);
            for (int i = 0; i < np; i++) {
                acc[i][t][0] = vfmaq_f32(acc[i][t][0], wv[i][0], xb);
                acc[i][t][1] = vfmaq_f32(acc[i][t][1], wv[i][1], xb);
            }
        }
    }
    for (int i = 0; i < np; i++)
        for (int t = 0; t < nt; t++) {
            float *o = y + (size_t)(t0 + t) * ldy + (size_t)i * ENG_PANEL;
            vst1q_f32(o, acc[i][t][0]);
            vst1q_f32(o + 4, acc[i][t][1]);
        }
}

/* panel_float.h cuts each call into float_tile calls. Decode: four panels per pass give eight
 * independent FMA chains. Prefill: two panels times six tokens
 * (24 accumulators, 4 weight vectors, 1 broadcast: 29 of 32 registers). */
#include "panel_float.h"

void eng_panels_fill_neon(struct eng_kernels *k, unsigned cpu_flags)
{
    int dp = (cpu_flags & ENG_CPU_ASIMDDP) != 0;
    k->panel[GGUF_TT_F32] = panel_f32;
    k->panel[GGUF_TT_F16] = panel_f16;
    k->panel[GGUF_TT_BF16] = panel_bf16;
    k->panel[GGUF_TT_Q8_0] = dp ? panel_q8_0_dp : panel_q8_0;
    k->panel[GGUF_TT_Q4_0] = dp ? panel_q4_0_dp : panel_q4_0;
    k->panel[GGUF_TT_Q4_K] = dp ? panel_q4_K_dp : panel_q4_K;
    k->panel[GGUF_TT_Q5_K] = dp ? panel_q5_K_dp : panel_q5_K;
    k->panel[GGUF_TT_Q6_K] = dp ? panel_q6_K_dp : panel_q6_K;
}
