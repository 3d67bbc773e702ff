/* Reference (scalar) implementations of the block formats: dequantization written straight from
 * the GGUF block definitions, quantization of activations (Q8_0, Q8_K) and of test weights (Q4_0,
 * Q8_0, F16, BF16), and dot products against the activation formats. The SIMD kernel files must
 * agree with these; the tests check that. */
#include "quant.h"

#include <math.h>
#include <string.h>

float eng_fp16_to_fp32(eng_fp16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            mant &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

eng_fp16 eng_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xFF;
    uint32_t mant = x & 0x7FFFFF;
    if (exp == 0xFF) /* inf or NaN (keep a quiet NaN) */
        return (eng_fp16)(sign | 0x7C00 | (mant ? 0x200 | (mant >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1F)
        return (eng_fp16)(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10)
            return (eng_fp16)sign;
        /* subnormal half: shift the implicit bit in, round to nearest even */
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (eng_fp16)(sign | half);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, up to inf: correct */
    return (eng_fp16)(sign | h);
}

float eng_bf16_to_fp32(eng_bf16 h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

eng_bf16 eng_fp32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000)
        return (eng_bf16)((x >> 16) | 64); /* quiet NaN */
    return (eng_bf16)((x + (0x7FFF + ((x >> 16) & 1))) >> 16);
}

/* ---- dequantization ---- */

void eng_dequant_f32(const void *x, float *y, int64_t n)
{
    memcpy(y, x, (size_t)n * sizeof(float));
}

void eng_dequant_f16(const void *x, float *y, int64_t n)
{
    const eng_fp16 *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = eng_fp16_to_fp32(h[i]);
}

void eng_dequant_bf16(const void *x, float *y, int64_t n)
{
    const eng_bf16 *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = eng_bf16_to_fp32(h[i]);
}

void eng_dequant_q8_0(const void *x, float *y, int64_t n)
{
    const struct block_q8_0 *b = x;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d = eng_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            y[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

void eng_dequant_q4_0(const void *x, float *y, int64_t n)
{
    const struct block_q4_0 *b = x;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        float d = eng_fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = d * (float)((b[i].qs[j] & 0xF) - 8);
            y[i * QK4_0 + j + QK4_0 / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

void eng_dequant_q4_K(const void *x, float *y, int64_t n)
{
    const struct block_q4_K *b = x;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = b[i].qs;
        float d = eng_fp16_to_fp32(b[i].d), dmin = eng_fp16_to_fp32(b[i].dmin);
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            uint8_t sc, m;
            eng_k4_scale_min(is, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            eng_k4_scale_min(is + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void eng_dequant_q5_K(const void *x, float *y, int64_t n)
{
    const struct block_q5_K *b = x;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = b[i].qs, *qh = b[i].qh;
        float d = eng_fp16_to_fp32(b[i].d), dmin = eng_fp16_to_fp32(b[i].dmin);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            eng_k4_scale_min(is, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            eng_k4_scale_min(is + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void eng_dequant_q6_K(const void *x, float *y, int64_t n)
{
    const struct block_q6_K *b = x;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = eng_fp16_to_fp32(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int nn = 0; nn < QK_K; nn += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void eng_dequant_q8_K(const void *x, float *y, int64_t n)
{
    const struct block_q8_K *b = x;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++)
            y[i * QK_K + j] = b[i].d * (float)b[i].qs[j];
}

/* ---- quantization ---- */

void eng_quant_f32(const float *x, void *y, int64_t n)
{
    memcpy(y, x, (size_t)n * sizeof(float));
}

void eng_quant_f16(const float *x, void *y, int64_t n)
{
    eng_fp16 *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = eng_fp32_to_fp16(x[i]);
}

void eng_quant_bf16(const float *x, void *y, int64_t n)
{
    eng_bf16 *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = eng_fp32_to_bf16(x[i]);
}

/* As ggml's quantize_row_q8_0: d = max|x| / 127, q = x / d rounded to nearest even (the
 * rounding the SIMD variants get from their round instructions). */
void eng_quant_q8_0(const float *x, void *y, int64_t n)
{
    struct block_q8_0 *b = y;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = eng_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            b[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
    }
}

/* As ggml's quantize_row_q4_0_ref: the value of largest magnitude maps to -8. */
void eng_quant_q4_0(const float *x, void *y, int64_t n)
{
    struct block_q4_0 *b = y;
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK4_0; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = eng_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + QK4_0 / 2] * id + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void eng_quant_q8_K(const float *x, void *y, int64_t n)
{
    struct block_q8_K *b = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0;
        for (int j = 0; j < QK_K; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = d;
        for (int j = 0; j < QK_K; j++) {
            int q = (int)nearbyintf(x[j] * id);
            b[i].qs[j] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += b[i].qs[g * 16 + j];
            b[i].bsums[g] = (int16_t)s;
        }
    }
}

/* ---- reference dot products ---- */

float eng_dot_f32_ref(int n, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float s = 0;
    for (int i = 0; i < n; i++)
        s += x[i] * y[i];
    return s;
}

float eng_dot_f16_ref(int n, const void *w, const void *a)
{
    const eng_fp16 *x = w;
    const float *y = a;
    float s = 0;
    for (int i = 0; i < n; i++)
        s += eng_fp16_to_fp32(x[i]) * y[i];
    return s;
}

float eng_dot_bf16_ref(int n, const void *w, const void *a)
{
    const eng_bf16 *x = w;
    const float *y = a;
    float s = 0;
    for (int i = 0; i < n; i++)
        s += eng_bf16_to_fp32(x[i]) * y[i];
    return s;
}

float eng_dot_q8_0_ref(int n, const void *w, const void *a)
{
    const struct block_q8_0 *x = w, *y = a;
    float s = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        s += (float)sumi * (eng_fp16_to_fp32(x[i].d) * eng_fp16_to_fp32(y[i].d));
    }
    return s;
}

float eng_dot_q4_0_ref(int n, const void *w, const void *a)
{
    const struct block_q4_0 *x = w;
    const struct block_q8_0 *y = a;
    float s = 0;
    for (int i = 0; i < n / QK4_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        s += (float)sumi * (eng_fp16_to_fp32(x[i].d) * eng_fp16_to_fp32(y[i].d));
    }
    return s;
}

/* The exact integer parts of the k-quant dot products, one super-block at a time (shared with the
 * panel reference kernels of pack.c). Q4_K/Q5_K:
 * sum_j (d*sc_j*q - dmin*m_j) * d8*q8 = d*d8 * sum_j sc_j*(q.q8)_j - dmin*d8 * sum_j m_j*sum(q8)_j
 */
void eng_q4_K_isums(const struct block_q4_K *x, const struct block_q8_K *y, int32_t *ret_sc,
                    int32_t *ret_m)
{
    const uint8_t *q = x->qs;
    const int8_t *q8 = y->qs;
    int32_t sum_sc = 0, sum_m = 0;
    for (int j = 0; j < QK_K / 64; j++, q += 32, q8 += 64) {
        uint8_t sc1, m1, sc2, m2;
        eng_k4_scale_min(2 * j, x->scales, &sc1, &m1);
        eng_k4_scale_min(2 * j + 1, x->scales, &sc2, &m2);
        int32_t d1 = 0, d2 = 0;
        for (int l = 0; l < 32; l++) {
            d1 += (q[l] & 0xF) * q8[l];
            d2 += (q[l] >> 4) * q8[l + 32];
        }
        sum_sc += sc1 * d1 + sc2 * d2;
        sum_m += m1 * (y->bsums[4 * j] + y->bsums[4 * j + 1]) +
                 m2 * (y->bsums[4 * j + 2] + y->bsums[4 * j + 3]);
    }
    *ret_sc = sum_sc;
    *ret_m = sum_m;
}

void eng_q5_K_isums(const struct block_q5_K *x, const struct block_q8_K *y, int32_t *ret_sc,
                    int32_t *ret_m)
{
    const uint8_t *ql = x->qs, *qh = x->qh;
    const int8_t *q8 = y->qs;
    int32_t sum_sc = 0, sum_m = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K / 64; j++, ql += 32, q8 += 64, u1 <<= 2, u2 <<= 2) {
        uint8_t sc1, m1, sc2, m2;
        eng_k4_scale_min(2 * j, x->scales, &sc1, &m1);
        eng_k4_scale_min(2 * j + 1, x->scales, &sc2, &m2);
        int32_t d1 = 0, d2 = 0;
        for (int l = 0; l < 32; l++) {
            d1 += ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) * q8[l];
            d2 += ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) * q8[l + 32];
        }
        sum_sc += sc1 * d1 + sc2 * d2;
        sum_m += m1 * (y->bsums[4 * j] + y->bsums[4 * j + 1]) +
                 m2 * (y->bsums[4 * j + 2] + y->bsums[4 * j + 3]);
    }
    *ret_sc = sum_sc;
    *ret_m = sum_m;
}

int32_t eng_q6_K_isum(const struct block_q6_K *x, const struct block_q8_K *y)
{
    const uint8_t *ql = x->ql, *qh = x->qh;
    const int8_t *sc = x->scales, *q8 = y->qs;
    int32_t sumi = 0;
    for (int nn = 0; nn < QK_K; nn += 128, ql += 64, qh += 32, sc += 8, q8 += 128) {
        int32_t g[8] = {0};
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            g[is + 0] += q1 * q8[l];
            g[is + 2] += q2 * q8[l + 32];
            g[is + 4] += q3 * q8[l + 64];
            g[is + 6] += q4 * q8[l + 96];
        }
        for (int k = 0; k < 8; k++)
            sumi += sc[k] * g[k];
    }
    return sumi;
}

float eng_dot_q4_K_ref(int n, const void *w, const void *a)
{
    const struct block_q4_K *x = w;
    const struct block_q8_K *y = a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int32_t sum_sc, sum_m;
        eng_q4_K_isums(&x[i], &y[i], &sum_sc, &sum_m);
        s += eng_fp16_to_fp32(x[i].d) * y[i].d * (float)sum_sc -
             eng_fp16_to_fp32(x[i].dmin) * y[i].d * (float)sum_m;
    }
    return s;
}

float eng_dot_q5_K_ref(int n, const void *w, const void *a)
{
    const struct block_q5_K *x = w;
    const struct block_q8_K *y = a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int32_t sum_sc, sum_m;
        eng_q5_K_isums(&x[i], &y[i], &sum_sc, &sum_m);
        s += eng_fp16_to_fp32(x[i].d) * y[i].d * (float)sum_sc -
             eng_fp16_to_fp32(x[i].dmin) * y[i].d * (float)sum_m;
    }
    return s;
}

float eng_dot_q6_K_ref(int n, const void *w, const void *a)
{
    const struct block_q6_K *x = w;
    const struct block_q8_K *y = a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++)
        s += eng_fp16_to_fp32(x[i].d) * y[i].d * (float)eng_q6_K_isum(&x[i], &y[i]);
    return s;
}

/* ---- traits ---- */

static const struct eng_type_traits traits[GGUF_TT_COUNT] = {
    [GGUF_TT_F32] = {"F32", 1, 4, eng_dequant_f32, eng_quant_f32, GGUF_TT_F32, eng_dot_f32_ref},
    [GGUF_TT_F16] = {"F16", 1, 2, eng_dequant_f16, eng_quant_f16, GGUF_TT_F32, eng_dot_f16_ref},
    [GGUF_TT_BF16] = {"BF16", 1, 2, eng_dequant_bf16, eng_quant_bf16, GGUF_TT_F32,
                      eng_dot_bf16_ref},
    [GGUF_TT_Q8_0] = {"Q8_0", QK8_0, sizeof(struct block_q8_0), eng_dequant_q8_0, eng_quant_q8_0,
                      GGUF_TT_Q8_0, eng_dot_q8_0_ref},
    [GGUF_TT_Q4_0] = {"Q4_0", QK4_0, sizeof(struct block_q4_0), eng_dequant_q4_0, eng_quant_q4_0,
                      GGUF_TT_Q8_0, eng_dot_q4_0_ref},
    [GGUF_TT_Q4_K] = {"Q4_K", QK_K, sizeof(struct block_q4_K), eng_dequant_q4_K, NULL, GGUF_TT_Q8_K,
                      eng_dot_q4_K_ref},
    [GGUF_TT_Q5_K] = {"Q5_K", QK_K, sizeof(struct block_q5_K), eng_dequant_q5_K, NULL, GGUF_TT_Q8_K,
                      eng_dot_q5_K_ref},
    [GGUF_TT_Q6_K] = {"Q6_K", QK_K, sizeof(struct block_q6_K), eng_dequant_q6_K, NULL, GGUF_TT_Q8_K,
                      eng_dot_q6_K_ref},
    [GGUF_TT_Q8_K] = {"Q8_K", QK_K, sizeof(struct block_q8_K), eng_dequant_q8_K, eng_quant_q8_K,
                      GGUF_TT_Q8_K, NULL},
};

const struct eng_type_traits *eng_type_traits(uint32_t type)
{
    if (type >= GGUF_TT_COUNT || !traits[type].name)
        return NULL;
    return &traits[type];
}

size_t eng_row_bytes(uint32_t type, int64_t n)
{
    const struct eng_type_traits *t = eng_type_traits(type);
    return t ? (size_t)(n / t->blck) * t->bytes : 0;
}
