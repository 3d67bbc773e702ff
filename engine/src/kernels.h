/* Compute kernels behind one table per instruction set. The scalar table is the readable
 * reference (it points at quant.c's reference code); the AVX2, AVX-512 and NEON tables start as
 * copies of it and override the hot functions they implement. eng_kernels_best() picks one at run
 * time from CPUID (and the OS's saved-state support), once; EMBER_KERNELS=scalar|avx2|avx512|neon
 * forces another one the machine can run, for comparisons. Private to the engine. */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pack.h"
#include "quant.h"

typedef void (*eng_dot_x4_fn)(int n, const void *w, const void *a, size_t a_stride,
                              const float *ad8, size_t ad8_stride, float out[4]);

struct eng_kernels {
    const char *name;
    /* how the set multiplies int8 quants, where it has a choice ("sdot" or "vmull" on NEON) */
    const char *int8_dot;
    /* dot[weight type](n, weight row, activation row in that type's vec_dot_type) */
    eng_vec_dot_fn dot[GGUF_TT_COUNT];
    /* optional (NULL: dot per token): one weight row against 4 activation rows at a,
     * a + a_stride, ... (prefill reuses each unpacked weight block four times; types without
     * panel kernels). ad8 is unused (NULL) by the k-quant kernels. */
    eng_dot_x4_fn dot_x4[GGUF_TT_COUNT];
    /* matrix products over row-interleaved panels (pack.h), NULL for types without a packed
     * layout; the scalar table holds pack.c's reference kernels */
    eng_panel_fn panel[GGUF_TT_COUNT];
    /* activation conversion into the vec_dot types */
    eng_from_float_fn quant_q8_0;
    eng_from_float_fn quant_q8_K;
    /* y[i] += a * x[i], x in F16 or F32 (attention's weighted sum of V rows) */
    void (*axpy_f16)(int n, float a, const eng_fp16 *x, float *y);
    void (*axpy_f32)(int n, float a, const float *x, float *y);
    /* attention over an F16 KV cache, rows of hd values stride elements apart:
     * out[p] = scale * (k_p . q) for p < n_pos, and out[i] = sum_p w[p] * v_p[i] */
    void (*attn_scores_f16)(int hd, const eng_fp16 *k, size_t stride, int n_pos, const float *q,
                            float scale, float *out);
    void (*attn_values_f16)(int hd, const eng_fp16 *v, size_t stride, int n_pos, const float *w,
                            float *out);
    /* x[i] = exp(x[i] - sub) in place; returns the sum (attention's online softmax) */
    float (*exp_sum)(float *x, int n, float sub);
    /* y[i] = fp16(x[i]) (KV cache writes) */
    void (*f32_to_f16)(const float *x, eng_fp16 *y, int n);
};

/* CPU features as flags, detected once. */
enum {
    ENG_CPU_AVX2 = 1 << 0,
    ENG_CPU_FMA = 1 << 1,
    ENG_CPU_F16C = 1 << 2,
    ENG_CPU_AVX512F = 1 << 3,
    ENG_CPU_AVX512BW = 1 << 4,
    ENG_CPU_AVX512VL = 1 << 5,
    ENG_CPU_AVX512DQ = 1 << 6,
    ENG_CPU_AVX512VNNI = 1 << 7,
    /* AArch64 (getauxval(AT_HWCAP)): Advanced SIMD, its ARMv8.2 dot product (sdot), FP16
     * scalar and vector arithmetic */
    ENG_CPU_ASIMD = 1 << 8,
    ENG_CPU_ASIMDDP = 1 << 9,
    ENG_CPU_FPHP = 1 << 10,
    ENG_CPU_ASIMDHP = 1 << 11,
};
unsigned eng_cpu_features(void);

const struct eng_kernels *eng_kernels_scalar(void);
/* NULL when this build or this CPU lacks the instruction set. */
const struct eng_kernels *eng_kernels_avx2(void);
const struct eng_kernels *eng_kernels_avx512(void);
const struct eng_kernels *eng_kernels_neon(void);
const struct eng_kernels *eng_kernels_best(void);

/* Filled by kernels_avx2.c / kernels_avx512.c over a copy of the scalar table (x86 only). */
void eng_kernels_fill_avx2(struct eng_kernels *k);
void eng_kernels_fill_avx512(struct eng_kernels *k, unsigned cpu_flags);
/* panel_avx2.c, panel_avx512.c (over a table already filled for AVX2) */
void eng_panels_fill_avx2(struct eng_kernels *k);
void eng_panels_fill_avx512(struct eng_kernels *k, unsigned cpu_flags);
/* kernels_neon.c and panel_neon.c (AArch64 only; NEON is part of the base architecture there,
 * the dot product is used when cpu_flags has ENG_CPU_ASIMDDP). */
void eng_kernels_fill_neon(struct eng_kernels *k, unsigned cpu_flags);
void eng_panels_fill_neon(struct eng_kernels *k, unsigned cpu_flags);

/* ---- scalar ops of the forward pass (not hot enough for SIMD variants) ---- */
void eng_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* Rotates n_rot leading dims of each of n_heads heads of size head_dim at position pos.
 * neox: pairs (i, i + n_rot/2); else adjacent pairs (2i, 2i+1). freq_factors may be NULL. */
void eng_rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
              float freq_scale, const float *freq_factors, int neox);
/* The same in two steps, so the angles of a position are computed once for all layers:
 * cs[2i], cs[2i+1] = cos, sin of pair i (n_rot floats), then applied to any number of heads. */
void eng_rope_angles(float *cs, int n_rot, int pos, float freq_base, float freq_scale,
                     const float *freq_factors);
void eng_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox);
void eng_softmax(float *x, int n);
float eng_exp_sum(float *x, int n, float sub);
/* out[i] = silu(gate[i]) * up[i] */
void eng_swiglu(float *out, const float *gate, const float *up, int n);

#endif
