/* Weight and activation block formats, byte-compatible with GGUF/ggml, and the traits table that
 * says for each tensor type how big a block is, how to turn it back into floats and which
 * activation format its dot product consumes. Weights stay in these blocks in the file mapping;
 * activations are converted once per matmul into the vec_dot type (F32 for float weights, Q8_0
 * for Q8_0/Q4_0, Q8_K for the k-quants) so the inner loops are integer dot products, as in
 * llama.cpp's CPU backend. Private to the engine. */
#ifndef ENGINE_QUANT_H
#define ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

#define QK8_0 32
#define QK4_0 32
#define QK_K  256

typedef uint16_t eng_fp16;
typedef uint16_t eng_bf16;

struct block_q8_0 {
    eng_fp16 d;
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 must match GGUF");

struct block_q4_0 {
    eng_fp16 d;
    uint8_t qs[QK4_0 / 2]; /* element j in the low nibble of qs[j], j+16 in the high one */
};
_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 must match GGUF");

/* k-quants: 256-element super-blocks of 8 (Q4_K, Q5_K) or 16 (Q6_K) sub-blocks */
struct block_q4_K {
    eng_fp16 d;           /* scale of the sub-block scales */
    eng_fp16 dmin;        /* scale of the sub-block mins */
    uint8_t scales[12];   /* 8 scales and 8 mins, 6 bits each */
    uint8_t qs[QK_K / 2]; /* 4-bit quants */
};
_Static_assert(sizeof(struct block_q4_K) == 144, "block_q4_K must match GGUF");

struct block_q5_K {
    eng_fp16 d;
    eng_fp16 dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8]; /* 5th bit of each quant */
    uint8_t qs[QK_K / 2]; /* low 4 bits */
};
_Static_assert(sizeof(struct block_q5_K) == 176, "block_q5_K must match GGUF");

struct block_q6_K {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* 8-bit sub-block scales */
    eng_fp16 d;
};
_Static_assert(sizeof(struct block_q6_K) == 210, "block_q6_K must match GGUF");

/* Activation format of the k-quant dot products (never stored in files by us). */
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16]; /* sums of each group of 16 quants */
};
_Static_assert(sizeof(struct block_q8_K) == 292, "block_q8_K must match ggml");

/* ---- half precision ---- */
float eng_fp16_to_fp32(eng_fp16 h);
eng_fp16 eng_fp32_to_fp16(float f); /* round to nearest even, overflow to inf, NaN kept */
float eng_bf16_to_fp32(eng_bf16 h);
eng_bf16 eng_fp32_to_bf16(float f); /* round to nearest even */

/* ---- traits ---- */

typedef void (*eng_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*eng_from_float_fn)(const float *x, void *y, int64_t n);
/* Dot product of n elements: w in the weight type, a in the type's vec_dot_type. */
typedef float (*eng_vec_dot_fn)(int n, const void *w, const void *a);

struct eng_type_traits {
    const char *name;
    uint32_t blck;                /* elements per block */
    uint32_t bytes;               /* bytes per block */
    eng_to_float_fn to_float;     /* reference dequantization */
    eng_from_float_fn from_float; /* reference quantization (activation types and tests) */
    uint32_t vec_dot_type;        /* enum gguf_tensor_type of the activations */
    eng_vec_dot_fn vec_dot_ref;   /* scalar reference */
};

/* Traits of a type the engine computes with; NULL for any other. */
const struct eng_type_traits *eng_type_traits(uint32_t type);

/* Bytes of a row of n elements (n a multiple of the block size). */
size_t eng_row_bytes(uint32_t type, int64_t n);

/* ---- reference conversions (also used by the SIMD files for tails and by tests) ---- */
void eng_dequant_f32(const void *x, float *y, int64_t n);
void eng_dequant_f16(const void *x, float *y, int64_t n);
void eng_dequant_bf16(const void *x, float *y, int64_t n);
void eng_dequant_q8_0(const void *x, float *y, int64_t n);
void eng_dequant_q4_0(const void *x, float *y, int64_t n);
void eng_dequant_q4_K(const void *x, float *y, int64_t n);
void eng_dequant_q5_K(const void *x, float *y, int64_t n);
void eng_dequant_q6_K(const void *x, float *y, int64_t n);
void eng_dequant_q8_K(const void *x, float *y, int64_t n);

void eng_quant_f32(const float *x, void *y, int64_t n);
void eng_quant_f16(const float *x, void *y, int64_t n);
void eng_quant_bf16(const float *x, void *y, int64_t n);
void eng_quant_q8_0(const float *x, void *y, int64_t n);
void eng_quant_q4_0(const float *x, void *y, int64_t n);
void eng_quant_q8_K(const float *x, void *y, int64_t n);

float eng_dot_f32_ref(int n, const void *w, const void *a);
float eng_dot_f16_ref(int n, const void *w, const void *a);
float eng_dot_bf16_ref(int n, const void *w, const void *a);
float eng_dot_q8_0_ref(int n, const void *w, const void *a);
float eng_dot_q4_0_ref(int n, const void *w, const void *a);
float eng_dot_q4_K_ref(int n, const void *w, const void *a);
float eng_dot_q5_K_ref(int n, const void *w, const void *a);
float eng_dot_q6_K_ref(int n, const void *w, const void *a);

/* Exact integer parts of one super-block of the k-quant reference dots (Q4_K, Q5_K: the scaled
 * sum and the min sum; Q6_K: the scaled sum of (q - 32) * q8). */
void eng_q4_K_isums(const struct block_q4_K *x, const struct block_q8_K *y, int32_t *ret_sc,
                    int32_t *ret_m);
void eng_q5_K_isums(const struct block_q5_K *x, const struct block_q8_K *y, int32_t *ret_sc,
                    int32_t *ret_m);
int32_t eng_q6_K_isum(const struct block_q6_K *x, const struct block_q8_K *y);

/* Decodes the 6-bit scale and min of sub-block j of a Q4_K/Q5_K scales array. */
static inline void eng_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

#endif
