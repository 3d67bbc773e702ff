/* Row-interleaved ("packed") weight layouts and the panel kernels that stream them. A matrix is
 * cut into panels of ENG_PANEL consecutive rows; within a panel the rows are interleaved so that
 * one vector load holds a piece of every row, and a kernel keeps one accumulator lane per row
 * (no horizontal sums, weights read once per panel for several tokens):
 *   - F32, F16, BF16: element k of all 8 rows side by side (8 values per k);
 *   - Q8_0, Q4_0: per 32-element block, the 8 rows' scales, then their quant bytes in 4-byte
 *     groups: group g holds bytes 4g..4g+3 of row 0, then of row 1, ... (Q4_0 bytes keep their
 *     nibble pairs: element j low, j + 16 high);
 *   - Q6_K (struct block_q6_Kx8, per 256-element super-block): the 8 rows' d; the sub-block
 *     scales, sub-block k's 8 rows side by side; then per 16-element sub-block k three 32-byte
 *     vectors of 4 bytes per row: lo0 (low nibbles of elements 16k+0..3, high nibbles 16k+4..7),
 *     lo1 (16k+8..11 and 16k+12..15) and hi (bits 2s, 2s+1 of byte j: the top 2 bits of
 *     element 16k+4s+j). The quants stay unsigned (q + 32); the -32 is applied once per
 *     super-block as 32 * sum_k scale_k * bsums_k of the activation;
 *   - Q4_K (struct block_q4_Kx8): the 8 rows' d, the 8 rows' dmin, the 12 scale bytes in 4-byte
 *     groups (group g holds bytes 4g..4g+3 of each row, so one vector per group decodes the 6-bit
 *     scales and mins of all rows at once, lane by lane), then the 128 quant bytes in 4-byte
 *     groups as Q4_0 (byte 32c + l: element 64c + l low, 64c + 32 + l high). The mins are applied
 *     through the activation's bsums;
 *   - Q5_K (struct block_q5_Kx8): as Q4_K, with the 32 fifth-bit bytes (qh) in 4-byte groups
 *     between the scales and the quants (bit 2c of byte l: element 64c + l, bit 2c + 1:
 *     element 64c + 32 + l).
 * Packing moves bytes only (Q6_K moves nibble and bit fields), so a packed matrix is exactly as
 * big as the plain one; rows past the last full panel stay plain after the panels and are packed
 * on the fly (zero-padded) when used.
 *
 * The arithmetic of a (row, token) result is fixed, and every implementation (the scalar
 * reference here, AVX2, AVX-512, NEON, packed at load or on the fly, one token or many) performs
 * exactly these operations in this order, so logits never depend on the kernel set, on
 * repacking, or on how tokens are batched:
 *   - Q8_0, Q4_0: s = 0; for each block b in order: s = s + (float)isum_b * (dw_b * da_b), where
 *     isum_b is the exact integer dot product of the block (Q4_0 quants taken as q - 8) and
 *     dw_b, da_b are the weight and activation scales as floats (eng_dot_q8_0_ref's order);
 *   - F32, F16, BF16: s = 0; for k in order: s = fmaf(w_k, x_k, s);
 *   - Q6_K, Q4_K, Q5_K against Q8_K activations, per super-block in order (eng_dot_*_K_ref's
 *     operations): s = s + (dw * da) * (float)isum for Q6_K, and
 *     s = s + ((dw * da) * (float)isum_sc - (dmin * da) * (float)isum_min) for Q4_K and Q5_K,
 *     where the integer sums are exact (their evaluation order is free).
 * Private to the engine. */
#ifndef ENGINE_PACK_H
#define ENGINE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

#define ENG_PANEL 8

struct block_q8_0x8 {
    eng_fp16 d[ENG_PANEL];
    int8_t qs[QK8_0 * ENG_PANEL];
};
_Static_assert(sizeof(struct block_q8_0x8) == 8 * sizeof(struct block_q8_0), "same size as plain");

struct block_q4_0x8 {
    eng_fp16 d[ENG_PANEL];
    uint8_t qs[QK4_0 / 2 * ENG_PANEL];
};
_Static_assert(sizeof(struct block_q4_0x8) == 8 * sizeof(struct block_q4_0), "same size as plain");

struct block_q6_Kx8 {
    eng_fp16 d[ENG_PANEL];
    int8_t scales[QK_K / 16 * ENG_PANEL];   /* [sub-block][row] */
    uint8_t q[QK_K / 16][3][4 * ENG_PANEL]; /* [sub-block][lo0, lo1, hi][row][byte] */
};
_Static_assert(sizeof(struct block_q6_Kx8) == 8 * sizeof(struct block_q6_K), "same size as plain");

struct block_q4_Kx8 {
    eng_fp16 d[ENG_PANEL];
    eng_fp16 dmin[ENG_PANEL];
    uint8_t scales[12 * ENG_PANEL];   /* [group of 4 bytes][row][byte] */
    uint8_t qs[QK_K / 2 * ENG_PANEL]; /* [group of 4 bytes][row][byte] */
};
_Static_assert(sizeof(struct block_q4_Kx8) == 8 * sizeof(struct block_q4_K), "same size as plain");

struct block_q5_Kx8 {
    eng_fp16 d[ENG_PANEL];
    eng_fp16 dmin[ENG_PANEL];
    uint8_t scales[12 * ENG_PANEL];
    uint8_t qh[QK_K / 8 * ENG_PANEL]; /* [group of 4 bytes][row][byte] */
    uint8_t qs[QK_K / 2 * ENG_PANEL];
};
_Static_assert(sizeof(struct block_q5_Kx8) == 8 * sizeof(struct block_q5_K), "same size as plain");

/* Activations as the panel kernels read them, for n_tok token rows. */
struct eng_act {
    const void *q;      /* token rows: F32 values, Q8_0 blocks for Q8_0/Q4_0 weights, Q8_K
                         * blocks (with their bsums) for the k-quants */
    size_t row_bytes;   /* bytes between token rows of q */
    const float *d;     /* Q8_0 activations: each block's scale as a float */
    const int32_t *sum; /* Q8_0 activations: each block's sum of quants (Q4_0's offset) */
    size_t aux_row;     /* elements between token rows of d and sum */
};

/* y[t * ldy + 8 * p + r] = row r of panel p . token row t, for n_panels panels of ne0 elements
 * stored back to back at w, and n_tok tokens. */
typedef void (*eng_panel_fn)(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                             int n_tok, float *y, size_t ldy);

/* Nonzero when type has a packed layout and panel kernels. */
int eng_pack_supported(uint32_t type);

/* Packs n_rows (1..8) plain rows of ne0 elements, row_bytes apart, into one panel at dst (8 rows
 * of row_bytes); missing rows are zero. */
void eng_pack_panel(uint32_t type, int64_t ne0, const void *src, size_t row_bytes, int n_rows,
                    void *dst);

/* Packs a whole matrix of ne1 rows from src into dst (same size; src and dst must not overlap):
 * full panels packed, the remaining rows copied plain. */
void eng_pack_matrix(uint32_t type, int64_t ne0, int64_t ne1, const void *src, void *dst);

/* Row r of a packed matrix as floats (token-embedding lookups of tied output matrices). */
void eng_pack_row_to_float(uint32_t type, int64_t ne0, int64_t ne1, const void *packed, int64_t r,
                           float *y);

/* Fills d and sum (n / 32 entries) for one row of Q8_0 activation blocks. */
void eng_act_q8_0_aux(const void *blocks, int64_t n, float *d, int32_t *sum);

/* The scalar reference panel kernel of a packed type (NULL when not packed). */
eng_panel_fn eng_panel_ref(uint32_t type);

#endif
