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
 * Q4_0 nibbles become q - 8 before the products, so both variants give the reference's isum. */
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
#define PANEL_QUANT(NAME, ATTR, BLOCK, TILE)                                                 \
    ATTR static void NAME(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, \
                          int n_tok, float *y, size_t ldy)                                   \
    {                                                                                        \
        int64_t nb = ne0 / QK8_0;                                                            \
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

PANEL_QUANT(panel_q8_0, , struct block_q8_0x8, q8_0_tile)
PANEL_QUANT(panel_q4_0, , struct block_q4_0x8, q4_0_tile)
PANEL_QUANT(panel_q8_0_dp, DOTPROD, struct block_q8_0x8, q8_0_tile_dp)
PANEL_QUANT(panel_q4_0_dp, DOTPROD, struct block_q4_0x8, q4_0_tile_dp)

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

/* Decode: four panels per pass give eight independent FMA chains. Prefill: two panels times six
 * tokens (24 accumulators, 4 weight vectors, 1 broadcast: 29 of 32 registers). */
INLINE void panel_float(int kind, int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                        int n_tok, float *y, size_t ldy)
{
    size_t pb = (size_t)ne0 * ENG_PANEL * (kind == ES_F32 ? 4 : 2);
    const char *wc = w;
    int p = 0;
    if (n_tok == 1) {
        for (; p + 4 <= n_panels; p += 4)
            float_tile(kind, ne0, wc + (size_t)p * pb, pb, 4, a, 0, 1, y + (size_t)p * 8, ldy);
        for (; p < n_panels; p++)
            float_tile(kind, ne0, wc + (size_t)p * pb, pb, 1, a, 0, 1, y + (size_t)p * 8, ldy);
        return;
    }
    for (; p < n_panels; p += 2) {
        int np = n_panels - p >= 2 ? 2 : 1;
        const char *pw = wc + (size_t)p * pb;
        float *py = y + (size_t)p * ENG_PANEL;
        int t = 0;
        if (np == 2) {
            for (; t + 6 <= n_tok; t += 6)
                float_tile(kind, ne0, pw, pb, 2, a, t, 6, py, ldy);
            switch (n_tok - t) {
            case 5:
                float_tile(kind, ne0, pw, pb, 2, a, t, 5, py, ldy);
                break;
            case 4:
                float_tile(kind, ne0, pw, pb, 2, a, t, 4, py, ldy);
                break;
            case 3:
                float_tile(kind, ne0, pw, pb, 2, a, t, 3, py, ldy);
                break;
            case 2:
                float_tile(kind, ne0, pw, pb, 2, a, t, 2, py, ldy);
                break;
            case 1:
                float_tile(kind, ne0, pw, pb, 2, a, t, 1, py, ldy);
                break;
            default:
                break;
            }
        } else {
            for (; t + 6 <= n_tok; t += 6)
                float_tile(kind, ne0, pw, pb, 1, a, t, 6, py, ldy);
            for (; t < n_tok; t++)
                float_tile(kind, ne0, pw, pb, 1, a, t, 1, py, ldy);
        }
    }
}

static void panel_f32(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok,
                      float *y, size_t ldy)
{
    panel_float(ES_F32, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_f16(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok,
                      float *y, size_t ldy)
{
    panel_float(ES_F16, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_bf16(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok,
                       float *y, size_t ldy)
{
    panel_float(ES_BF16, ne0, w, n_panels, a, n_tok, y, ldy);
}

void eng_panels_fill_neon(struct eng_kernels *k, unsigned cpu_flags)
{
    int dp = (cpu_flags & ENG_CPU_ASIMDDP) != 0;
    k->panel[GGUF_TT_F32] = panel_f32;
    k->panel[GGUF_TT_F16] = panel_f16;
    k->panel[GGUF_TT_BF16] = panel_bf16;
    k->panel[GGUF_TT_Q8_0] = dp ? panel_q8_0_dp : panel_q8_0;
    k->panel[GGUF_TT_Q4_0] = dp ? panel_q4_0_dp : panel_q4_0;
}
