/* Float to block quantizers (quantize_blocks.h).
 *
 * Reference rounding (no importance): Q8_0 maps the block's largest magnitude to ±127 and rounds
 * half away from zero; Q4_0 maps the value of largest magnitude to -8 and truncates x/d + 8.5
 * (ggml's published reference rounding, reproduced so our bytes equal llama-quantize --pure).
 *
 * Fitted scales (importance given, and always for the k-quants). The error that matters is the
 * error of the matrix product, sum_j a_j^2 (w_j - q_j)^2 averaged over activations a, so each
 * element gets the weight imp_j * sqrt(s2 + x_j^2): imp_j the channel's mean squared activation
 * (1 without calibration), and a magnitude term (s2 the block's mean square) because large
 * weights dominate the products. For a (sub-)block the quantizer tries a grid of candidate
 * inverse scales around the one that maps the range exactly onto the integer levels, rounds
 * every element to its level under each, refits the scale (and for Q4_K/Q5_K the offset) to those
 * levels by weighted least squares, and keeps the candidate with the lowest weighted error. The
 * k-quants then store the sub-block scales themselves quantized (6 bits against a per-super-block
 * F16 scale for Q4_K/Q5_K, 8 bits signed for Q6_K), and every element is rounded again against
 * the scales as stored, so the levels match what the dequantizer reconstructs. */
#include "quantize_blocks.h"

#include <math.h>
#include <string.h>

#include "quant.h"

#define GRID_STEPS      8 /* candidates on each side of the exact-range scale */
#define GRID_DELTA      0.12f
#define GRID_STEPS_6BIT 3 /* 64 levels: rounding moves little, fewer candidates suffice */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Round to nearest (ties to even), for |v| < 2^22: adding 1.5 * 2^23 leaves the integer in the
 * float's low mantissa bits. Plain arithmetic, so the fitting loops vectorize (lrintf is a
 * library call). */
static int round_i(float v)
{
    v = v < -4e6f ? -4e6f : v > 4e6f ? 4e6f : v; /* huge values stay in the trick's range */
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

/* Element weights of a block of n values (see the top of the file). */
static void block_weights(const float *x, const float *imp, int n, float s2, float *w)
{
    for (int j = 0; j < n; j++)
        w[j] = (imp ? imp[j] : 1.0f) * sqrtf(s2 + x[j] * x[j]);
}

static float mean_square(const float *x, int n)
{
    float s = 0;
    for (int j = 0; j < n; j++)
        s += x[j] * x[j];
    return s / (float)n;
}

/* Symmetric fit x ~ d * q, q in [-nmin, nmax]: the candidate scales are -(nmin + k*delta)/max
 * where max is the value of largest magnitude (so it lands on the most negative level at k = 0,
 * as the reference does). Returns d (0 for an all-zero block). */
static float fit_symmetric(const float *x, const float *w, int n, int nmin, int nmax, int steps)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax < 1e-30f)
        return 0;
    float best_d = max / -(float)nmin, best_err = INFINITY, sxx = 0;
    for (int j = 0; j < n; j++)
        sxx += w[j] * x[j] * x[j];
    for (int k = -steps; k <= steps; k++) {
        float iscale = -((float)nmin + GRID_DELTA * (float)k) / max;
        float sxq = 0, sqq = 0;
        for (int j = 0; j < n; j++) {
            int q = clampi(round_i(iscale * x[j]), -nmin, nmax);
            sxq += w[j] * x[j] * (float)q;
            sqq += w[j] * (float)(q * q);
        }
        if (sqq <= 0)
            continue;
        /* the least-squares scale for these levels and its error, in closed form */
        float err = sxx - sxq * sxq / sqq;
        if (err < best_err) {
            best_err = err;
            best_d = sxq / sqq;
        }
    }
    return best_d;
}

/* Asymmetric fit x ~ s * q - m, q in [0, nmax], s >= 0, m >= 0 (the offset is the block minimum,
 * never above zero, as the Q4_K/Q5_K formats require). */
static void fit_affine(const float *x, const float *w, int n, int nmax, float *ret_s, float *ret_m)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    lo = lo < 0 ? lo : 0;
    if (hi <= lo) {
        *ret_s = 0;
        *ret_m = -lo;
        return;
    }
    float best_s = (hi - lo) / (float)nmax, best_lo = lo, best_err = INFINITY, sxx = 0;
    for (int j = 0; j < n; j++)
        sxx += w[j] * x[j] * x[j];
    for (int k = -GRID_STEPS; k <= GRID_STEPS; k++) {
        float iscale = ((float)nmax + GRID_DELTA * (float)k) / (hi - lo);
        float sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
        for (int j = 0; j < n; j++) {
            int q = clampi(round_i(iscale * (x[j] - lo)), 0, nmax);
            sw += w[j];
            sq += w[j] * (float)q;
            sqq += w[j] * (float)(q * q);
            sx += w[j] * x[j];
            sxq += w[j] * x[j] * (float)q;
        }
        /* weighted least squares for x ~ s*q + b: the 2x2 normal equations; the residual of
         * the solution is sxx - s*sxq - b*sx */
        float det = sw * sqq - sq * sq, sc, b, err;
        if (det <= 0)
            continue;
        sc = (sw * sxq - sq * sx) / det;
        b = (sqq * sx - sq * sxq) / det;
        err = sxx - sc * sxq - b * sx;
        if (b > 0) { /* the format has no positive offset: fit the scale alone */
            if (sqq <= 0)
                continue;
            b = 0;
            sc = sxq / sqq;
            err = sxx - sc * sxq;
        }
        if (sc <= 0)
            continue;
        if (err < best_err) {
            best_err = err;
            best_s = sc;
            best_lo = b;
        }
    }
    *ret_s = best_s;
    *ret_m = -best_lo;
}

void eng_qz_q8_0(const float *x, void *y, int64_t n, const float *imp)
{
    (void)imp; /* 8 bits leave nothing worth refitting */
    struct block_q8_0 *b = y;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++)
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = eng_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void eng_qz_q4_0(const float *x, void *y, int64_t n, const float *imp)
{
    if (!imp) {
        eng_quant_q4_0(x, y, n);
        return;
    }
    struct block_q4_0 *b = y;
    float w[QK4_0];
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0, imp += QK4_0) {
        block_weights(x, imp, QK4_0, mean_square(x, QK4_0), w);
        b[i].d = eng_fp32_to_fp16(fit_symmetric(x, w, QK4_0, 8, 7, GRID_STEPS));
        float d = eng_fp16_to_fp32(b[i].d), id = d != 0 ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = clampi(round_i(x[j] * id), -8, 7) + 8;
            int q1 = clampi(round_i(x[j + QK4_0 / 2] * id), -8, 7) + 8;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Stores 6-bit scale ls and min lm of sub-block j (the inverse of eng_k4_scale_min). */
static void k4_put_scale_min(int j, uint8_t *q, int ls, int lm)
{
    if (j < 4) {
        q[j] = (uint8_t)((q[j] & 0xC0) | ls);
        q[j + 4] = (uint8_t)((q[j + 4] & 0xC0) | lm);
    } else {
        q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        q[j - 4] |= (uint8_t)((ls >> 4) << 6);
        q[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* The shared part of Q4_K and Q5_K: fits the 8 sub-blocks of 32 of one super-block, quantizes
 * their scales to 6 bits, and returns every element's level in L (0..nmax). */
static void k4_superblock(const float *x, const float *imp, int nmax, eng_fp16 *ret_d,
                          eng_fp16 *ret_dmin, uint8_t *scales, uint8_t *L)
{
    float w[QK_K], s[QK_K / 32], m[QK_K / 32];
    block_weights(x, imp, QK_K, mean_square(x, QK_K), w);
    float max_s = 0, max_m = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        fit_affine(x + 32 * j, w + 32 * j, 32, nmax, &s[j], &m[j]);
        max_s = fmaxf(max_s, s[j]);
        max_m = fmaxf(max_m, m[j]);
    }
    *ret_d = eng_fp32_to_fp16(max_s / 63.0f);
    *ret_dmin = eng_fp32_to_fp16(max_m / 63.0f);
    float d = eng_fp16_to_fp32(*ret_d), dmin = eng_fp16_to_fp32(*ret_dmin);
    memset(scales, 0, 12);
    for (int j = 0; j < QK_K / 32; j++) {
        int ls = d > 0 ? clampi(round_i(s[j] / d), 0, 63) : 0;
        int lm = dmin > 0 ? clampi(round_i(m[j] / dmin), 0, 63) : 0;
        k4_put_scale_min(j, scales, ls, lm);
        float dd = d * (float)ls, dm = dmin * (float)lm, idd = dd > 0 ? 1.0f / dd : 0.0f;
        for (int l = 0; l < 32; l++) {
            int q = round_i((x[32 * j + l] + dm) * idd);
            L[32 * j + l] = (uint8_t)clampi(q, 0, nmax);
        }
    }
}

void eng_qz_q4_K(const float *x, void *y, int64_t n, const float *imp)
{
    struct block_q4_K *b = y;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_superblock(x, imp ? imp + i * QK_K : NULL, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        /* 64 elements per 32 bytes: the first 32 in the low nibbles, the next 32 in the high */
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void eng_qz_q5_K(const float *x, void *y, int64_t n, const float *imp)
{
    struct block_q5_K *b = y;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k4_superblock(x, imp ? imp + i * QK_K : NULL, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, sizeof(b[i].qh));
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                b[i].qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                /* the fifth bits: bit 2c of qh[l] for the low half, 2c+1 for the high */
                b[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
        }
    }
}

void eng_qz_q6_K(const float *x, void *y, int64_t n, const float *imp)
{
    struct block_q6_K *b = y;
    float w[QK_K], s[QK_K / 16];
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        const float *ib = imp ? imp + i * QK_K : NULL;
        block_weights(x, ib, QK_K, mean_square(x, QK_K), w);
        float max_abs = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            s[j] = fit_symmetric(x + 16 * j, w + 16 * j, 16, 32, 31, GRID_STEPS_6BIT);
            max_abs = fmaxf(max_abs, fabsf(s[j]));
        }
        b[i].d = eng_fp32_to_fp16(max_abs / 127.0f);
        float d = eng_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK_K / 16; j++) {
            int ls = d > 0 ? clampi(round_i(s[j] / d), -127, 127) : 0;
            b[i].scales[j] = (int8_t)ls;
            float dd = d * (float)ls, idd = dd != 0 ? 1.0f / dd : 0.0f;
            for (int l = 0; l < 16; l++) {
                int q = round_i(x[16 * j + l] * idd);
                L[16 * j + l] = (uint8_t)(clampi(q, -32, 31) + 32);
            }
        }
        /* two halves of 128: element k of a half goes to ql[k%64] (low nibble for k < 64) and
         * to bits 2*(k/32) of qh[k%32] */
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

static void qz_f32(const float *x, void *y, int64_t n, const float *imp)
{
    (void)imp;
    eng_quant_f32(x, y, n);
}

static void qz_f16(const float *x, void *y, int64_t n, const float *imp)
{
    (void)imp;
    eng_quant_f16(x, y, n);
}

static void qz_bf16(const float *x, void *y, int64_t n, const float *imp)
{
    (void)imp;
    eng_quant_bf16(x, y, n);
}

eng_qz_row_fn eng_qz_row_fn_of(uint32_t type)
{
    switch (type) {
    case GGUF_TT_F32:
        return qz_f32;
    case GGUF_TT_F16:
        return qz_f16;
    case GGUF_TT_BF16:
        return qz_bf16;
    case GGUF_TT_Q8_0:
        return eng_qz_q8_0;
    case GGUF_TT_Q4_0:
        return eng_qz_q4_0;
    case GGUF_TT_Q4_K:
        return eng_qz_q4_K;
    case GGUF_TT_Q5_K:
        return eng_qz_q5_K;
    case GGUF_TT_Q6_K:
        return eng_qz_q6_K;
    default:
        return NULL;
    }
}
