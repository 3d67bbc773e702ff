/* Row-interleaved ("packed") weight layouts and the panel kernels that stream them. A matrix is
 * cut into panels of ENG_PANEL consecutive rows; within a panel the rows are interleaved so that
 * one vector load holds a piece of every row, and a kernel keeps one accumulator lane per row
 * (no horizontal sums, weights read once per panel for several tokens):
 *   - F32, F16, BF16: element k of all 8 rows side by side (8 values per k);
 *   - Q8_0, Q4_0: per 32-element block, the 8 rows' scales, then their quant bytes in 4-byte
 *     groups: group g holds bytes 4g..4g+3 of row 0, then of row 1, ... (Q4_0 bytes keep their
 *     nibble pairs: element j low, j + 16 high).
 * Packing moves bytes only, so a packed matrix is exactly as big as the plain one; rows past the
 * last full panel stay plain after the panels and are packed on the fly (zero-padded) when used.
 *
 * The arithmetic of a (row, token) result is fixed, and every implementation (the scalar
 * reference here, AVX2, AVX-512, NEON, packed at load or on the fly, one token or many) performs
 * exactly these operations in this order, so logits never depend on the kernel set, on
 * repacking, or on how tokens are batched:
 *   - Q8_0, Q4_0: s = 0; for each block b in order: s = s + (float)isum_b * (dw_b * da_b), where
 *     isum_b is the exact integer dot product of the block (Q4_0 quants taken as q - 8) and
 *     dw_b, da_b are the weight and activation scales as floats (eng_dot_q8_0_ref's order);
 *   - F32, F16, BF16: s = 0; for k in order: s = fmaf(w_k, x_k, s).
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

/* Activations as the panel kernels read them, for n_tok token rows. */
struct eng_act {
    const void *q;      /* token rows: F32 values, or Q8_0 blocks for Q8_0/Q4_0 weights */
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
