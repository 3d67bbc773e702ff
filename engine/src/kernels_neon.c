/* AArch64 NEON kernels (ARMv8.0 baseline, plus the ARMv8.2 dot product where the CPU has it):
 * float dot products with four accumulators, F16 weights widened with vcvt, and the Q8_0/Q4_0
 * integer dots via widening multiplies (vmull_s8) and pairwise accumulation, or sdot (compiled
 * with a target attribute, chosen at run time from HWCAP_ASIMDDP). The quantized row dots follow
 * pack.h's arithmetic rule exactly like the panels (s = s + (float)isum * (dw * da) per block in
 * order, exact integer sums): forward.c reads plain Q8_0/Q4_0 rows with them under [engine] mmap.
 * The activation quantizers (Q8_0, Q8_K) and the F16-cache attention kernels give the scalar
 * reference's results bit for bit. The k-quant and BF16 row dots stay the reference ones: every
 * matmul of those types runs on panels (panel_neon.c).
 * Compiled only on AArch64 (the build marks this file header-only elsewhere); the kernel test
 * compares it with the scalar reference there like the x86 variants. */
#include "kernels.h"

#include <arm_neon.h>

static float dot_f32(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(x + i), vld1q_f32(y + i));
        s1 = vfmaq_f32(s1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        s0 = vfmaq_f32(s0, vld1q_f32(x + i), vld1q_f32(y + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

static inline float32x4_t load_f16(const eng_fp16 *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

static float dot_f16(int n, const void *w, const void *a)
{
    const eng_fp16 *x = w;
    const float *y = a;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, load_f16(x + i), vld1q_f32(y + i));
        s1 = vfmaq_f32(s1, load_f16(x + i + 4), vld1q_f32(y + i + 4));
        s2 = vfmaq_f32(s2, load_f16(x + i + 8), vld1q_f32(y + i + 8));
        s3 = vfmaq_f32(s3, load_f16(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        s0 = vfmaq_f32(s0, load_f16(x + i), vld1q_f32(y + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++)
        s += eng_fp16_to_fp32(x[i]) * y[i];
    return s;
}

/* Sum of the products of 32 signed bytes (two 16-byte halves). */
static inline int32_t dot_i8x32(int8x16_t x0, int8x16_t x1, int8x16_t y0, int8x16_t y1)
{
    int32x4_t acc = vdupq_n_s32(0);
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x0), vget_low_s8(y0)));
    acc = vpadalq_s16(acc, vmull_high_s8(x0, y0));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x1), vget_low_s8(y1)));
    acc = vpadalq_s16(acc, vmull_high_s8(x1, y1));
    return vaddvq_s32(acc);
}

static float dot_q8_0(int n, const void *w, const void *a)
{
    const struct block_q8_0 *x = w, *y = a;
    float s = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int32_t d = dot_i8x32(vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs),
                              vld1q_s8(y[i].qs + 16));
        s = s + (float)d * (eng_fp16_to_fp32(x[i].d) * eng_fp16_to_fp32(y[i].d));
    }
    return s;
}

static float dot_q4_0(int n, const void *w, const void *a)
{
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float s = 0;
    for (int i = 0; i < n / QK4_0; i++) {
        uint8x16_t v = vld1q_u8(x[i].qs);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
        int32_t d = dot_i8x32(lo, hi, vld1q_s8(y[i].qs), vld1q_s8(y[i].qs + 16));
        s = s + (float)d * (eng_fp16_to_fp32(x[i].d) * eng_fp16_to_fp32(y[i].d));
    }
    return s;
}

/* ---- ARMv8.2 dot product ---- */

#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

DOTPROD static inline int32_t dot_i8x32_dp(int8x16_t x0, int8x16_t x1, int8x16_t y0, int8x16_t y1)
{
    return vaddvq_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), x0, y0), x1, y1));
}

DOTPROD static float dot_q8_0_dp(int n, const void *w, const void *a)
{
    const struct block_q8_0 *x = w, *y = a;
    float s = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int32_t d = dot_i8x32_dp(vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs),
                                 vld1q_s8(y[i].qs + 16));
        s = s + (float)d * (eng_fp16_to_fp32(x[i].d) * eng_fp16_to_fp32(y[i].d));
    }
    return s;
}

DOTPROD static float dot_q4_0_dp(int n, const void *w, const void *a)
{
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float s = 0;
    for (int i = 0; i < n / QK4_0; i++) {
        uint8x16_t v = vld1q_u8(x[i].qs);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
        int32_t d = dot_i8x32_dp(lo, hi, vld1q_s8(y[i].qs), vld1q_s8(y[i].qs + 16));
        s = s + (float)d * (eng_fp16_to_fp32(x[i].d) * eng_fp16_to_fp32(y[i].d));
    }
    return s;
}

/* As the scalar reference: d = max|x| / 127, round to nearest even (vcvtnq). */
static void quant_q8_0(const float *x, void *yv, int64_t n)
{
    struct block_q8_0 *y = yv;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float32x4_t v[8];
        float32x4_t amax = vdupq_n_f32(0);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            amax = vmaxq_f32(amax, vabsq_f32(v[k]));
        }
        float d = vmaxvq_f32(amax) / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[i].d = eng_fp32_to_fp16(d);
        for (int k = 0; k < 8; k++) {
            int32x4_t q = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));
            int16x4_t q16 = vqmovn_s32(q);
            int8x8_t q8 = vqmovn_s16(vcombine_s16(q16, q16));
            y[i].qs[4 * k + 0] = vget_lane_s8(q8, 0);
            y[i].qs[4 * k + 1] = vget_lane_s8(q8, 1);
            y[i].qs[4 * k + 2] = vget_lane_s8(q8, 2);
            y[i].qs[4 * k + 3] = vget_lane_s8(q8, 3);
        }
    }
}

/* Bit for bit eng_quant_q8_K: the same max (maxNum like fmaxf, exact in any order), scale and
 * reciprocal, products rounded to nearest even (vcvtnq, as nearbyintf in the default rounding
 * mode), clamped to +-127; bsums are sums of the stored quants (exact). */
static void quant_q8_K(const float *x, void *yv, int64_t n)
{
    struct block_q8_K *y = yv;
    const int32x4_t hi = vdupq_n_s32(127), lo = vdupq_n_s32(-127);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float32x4_t mx = vdupq_n_f32(0);
        for (int j = 0; j < QK_K; j += 4)
            mx = vmaxnmq_f32(mx, vabsq_f32(vld1q_f32(x + j)));
        float d = vmaxnmvq_f32(mx) / 127.0f, id = d ? 1.0f / d : 0.0f;
        y[i].d = d;
        for (int g = 0; g < QK_K / 16; g++) {
            int16x8_t h[2];
            for (int k = 0; k < 2; k++) {
                int32x4_t q0 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 8 * k), id));
                int32x4_t q1 = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 8 * k + 4), id));
                q0 = vmaxq_s32(vminq_s32(q0, hi), lo);
                q1 = vmaxq_s32(vminq_s32(q1, hi), lo);
                h[k] = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
            }
            int8x16_t q = vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]));
            vst1q_s8(y[i].qs + 16 * g, q);
            y[i].bsums[g] = (int16_t)vaddlvq_s8(q);
        }
    }
}

static void axpy_f32(int n, float a, const float *x, float *y)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static void axpy_f16(int n, float a, const eng_fp16 *x, float *y)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load_f16(x + i), a));
    for (; i < n; i++)
        y[i] += a * eng_fp16_to_fp32(x[i]);
}

static void f32_to_f16(const float *x, eng_fp16 *y, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++)
        y[i] = eng_fp32_to_fp16(x[i]);
}

/* ---- attention over an F16 KV cache, bit for bit the scalar reference (kernels.c) ----
 * The reference scores are eng_dot_f16_ref per position (s = s + k_i * q_i, in i order, multiply
 * and add apart) and the values one axpy per position in p order (o_i = o_i + w_p * v_p,i). Both
 * keep each output's chain of operations when vectorized across outputs: the scores four
 * positions per vector (their keys transposed, so lane j follows position p + j through i), the
 * values sixteen dimensions at a time. So NEON attention, like its matmuls, gives the scalar
 * set's logits exactly; only the order in which independent outputs are computed changes. */

/* Key rows p..p+3, elements i..i+3, transposed: c[j] holds element i + j of the four rows. */
static inline void keys4x4(const eng_fp16 *k, size_t stride, int i, float32x4_t c[4])
{
    float32x4_t r0 = load_f16(k + i), r1 = load_f16(k + stride + i);
    float32x4_t r2 = load_f16(k + 2 * stride + i), r3 = load_f16(k + 3 * stride + i);
    float32x4_t t0 = vtrn1q_f32(r0, r1), t1 = vtrn2q_f32(r0, r1);
    float32x4_t t2 = vtrn1q_f32(r2, r3), t3 = vtrn2q_f32(r2, r3);
    c[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    c[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    c[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    c[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

/* Eight positions per pass (two independent add chains; the adds' latency, not their number,
 * bounds one chain), then four, then the reference for the rest. */
static void attn_scores_f16(int hd, const eng_fp16 *k, size_t stride, int n_pos, const float *q,
                            float scale, float *out)
{
    int p = 0;
    for (; p + 4 <= n_pos; p += 4) {
        const eng_fp16 *kp = k + (size_t)p * stride;
        const int two = p + 8 <= n_pos;
        float32x4_t s0 = vdupq_n_f32(0), s1 = s0;
        int i = 0;
        for (; i + 4 <= hd; i += 4) {
            float32x4_t c[4], d[4];
            keys4x4(kp, stride, i, c);
            if (two)
                keys4x4(kp + 4 * stride, stride, i, d);
            for (int j = 0; j < 4; j++) {
                s0 = vaddq_f32(s0, vmulq_n_f32(c[j], q[i + j]));
                if (two)
                    s1 = vaddq_f32(s1, vmulq_n_f32(d[j], q[i + j]));
            }
        }
        for (; i < hd; i++) {
            float c[8];
            for (int j = 0; j < (two ? 8 : 4); j++)
                c[j] = eng_fp16_to_fp32(kp[(size_t)j * stride + i]);
            s0 = vaddq_f32(s0, vmulq_n_f32(vld1q_f32(c), q[i]));
            if (two)
                s1 = vaddq_f32(s1, vmulq_n_f32(vld1q_f32(c + 4), q[i]));
        }
        vst1q_f32(out + p, vmulq_n_f32(s0, scale));
        if (two) {
            vst1q_f32(out + p + 4, vmulq_n_f32(s1, scale));
            p += 4;
        }
    }
    for (; p < n_pos; p++)
        out[p] = eng_dot_f16_ref(hd, k + (size_t)p * stride, q) * scale;
}

static void attn_values_f16(int hd, const eng_fp16 *v, size_t stride, int n_pos, const float *w,
                            float *out)
{
    int i = 0;
    for (; i + 16 <= hd; i += 16) {
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int p = 0; p < n_pos; p++) {
            const eng_fp16 *vp = v + (size_t)p * stride + i;
            a0 = vaddq_f32(a0, vmulq_n_f32(load_f16(vp), w[p]));
            a1 = vaddq_f32(a1, vmulq_n_f32(load_f16(vp + 4), w[p]));
            a2 = vaddq_f32(a2, vmulq_n_f32(load_f16(vp + 8), w[p]));
            a3 = vaddq_f32(a3, vmulq_n_f32(load_f16(vp + 12), w[p]));
        }
        vst1q_f32(out + i, a0);
        vst1q_f32(out + i + 4, a1);
        vst1q_f32(out + i + 8, a2);
        vst1q_f32(out + i + 12, a3);
    }
    for (; i + 4 <= hd; i += 4) {
        float32x4_t a0 = vdupq_n_f32(0);
        for (int p = 0; p < n_pos; p++)
            a0 = vaddq_f32(a0, vmulq_n_f32(load_f16(v + (size_t)p * stride + i), w[p]));
        vst1q_f32(out + i, a0);
    }
    for (; i < hd; i++) {
        float a = 0;
        for (int p = 0; p < n_pos; p++)
            a += w[p] * eng_fp16_to_fp32(v[(size_t)p * stride + i]);
        out[i] = a;
    }
}

void eng_kernels_fill_neon(struct eng_kernels *k, unsigned cpu_flags)
{
    int dp = (cpu_flags & ENG_CPU_ASIMDDP) != 0;
    k->dot[GGUF_TT_F32] = dot_f32;
    k->dot[GGUF_TT_F16] = dot_f16;
    k->dot[GGUF_TT_Q8_0] = dp ? dot_q8_0_dp : dot_q8_0;
    k->dot[GGUF_TT_Q4_0] = dp ? dot_q4_0_dp : dot_q4_0;
    k->quant_q8_0 = quant_q8_0;
    k->quant_q8_K = quant_q8_K;
    k->axpy_f32 = axpy_f32;
    k->axpy_f16 = axpy_f16;
    k->f32_to_f16 = f32_to_f16;
    k->attn_scores_f16 = attn_scores_f16;
    k->attn_values_f16 = attn_values_f16;
}
