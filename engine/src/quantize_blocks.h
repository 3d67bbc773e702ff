/* Quantizers from float to the GGUF block types `ember quantize` writes (Q8_0, Q4_0, Q4_K,
 * Q5_K, Q6_K), one row at a time, optionally weighted by an importance vector: the mean squared
 * activation of each input channel, collected on calibration text. Without importance, Q8_0 and
 * Q4_0 are ggml's reference rounding (the bytes llama-quantize --pure writes); with it and for
 * the k-quants, every (sub-)block's scales are fitted by weighted least squares over a small
 * grid of candidate scales (see quantize_blocks.c). Private to the engine. */
#ifndef ENGINE_QUANTIZE_BLOCKS_H
#define ENGINE_QUANTIZE_BLOCKS_H

#include <stdint.h>

/* Quantizes one row of n floats (n a multiple of the type's block) into y. imp: n weights >= 0,
 * or NULL. */
typedef void (*eng_qz_row_fn)(const float *x, void *y, int64_t n, const float *imp);

/* The quantizer of a block type; NULL for types it cannot produce. F32, F16 and BF16 are
 * included (plain conversions; imp ignored). */
eng_qz_row_fn eng_qz_row_fn_of(uint32_t type);

void eng_qz_q8_0(const float *x, void *y, int64_t n, const float *imp);
void eng_qz_q4_0(const float *x, void *y, int64_t n, const float *imp);
void eng_qz_q4_K(const float *x, void *y, int64_t n, const float *imp);
void eng_qz_q5_K(const float *x, void *y, int64_t n, const float *imp);
void eng_qz_q6_K(const float *x, void *y, int64_t n, const float *imp);

#endif
