/* Packing of plain GGUF rows into the row-interleaved panels of pack.h, the reverse lookup of one
 * row, and the scalar reference panel kernels: the readable definition of the arithmetic that
 * every SIMD panel kernel must reproduce bit for bit. */
#include "pack.h"

#include <math.h>
#include <string.h>

int eng_pack_supported(uint32_t type)
{
    switch (type) {
    case GGUF_TT_F32:
    case GGUF_TT_F16:
    case GGUF_TT_BF16:
    case GGUF_TT_Q8_0:
    case GGUF_TT_Q4_0:
        return 1;
    default:
        return 0;
    }
}

static size_t elem_bytes(uint32_t type)
{
    return type == GGUF_TT_F32 ? 4 : 2;
}

/* Quant bytes per block and row: Q8_0 32, Q4_0 16; both interleave in 4-byte groups. */
static size_t quant_bytes(uint32_t type)
{
    return type == GGUF_TT_Q8_0 ? QK8_0 : QK4_0 / 2;
}

void eng_pack_panel(uint32_t type, int64_t ne0, const void *src, size_t row_bytes, int n_rows,
                    void *dst)
{
    const char *s = src;
    char *d = dst;
    if (n_rows < ENG_PANEL)
        memset(dst, 0, row_bytes * ENG_PANEL);
    if (type == GGUF_TT_Q8_0 || type == GGUF_TT_Q4_0) {
        /* fixed-size copies compile to single moves: this also runs per panel under use_mmap */
        size_t qb = quant_bytes(type), blk = 2 + qb, nb = (size_t)ne0 / QK8_0;
        for (size_t b = 0; b < nb; b++) {
            char *out = d + b * blk * ENG_PANEL; /* d[8], then 8 * qb quant bytes */
            for (int r = 0; r < n_rows; r++) {
                const char *in = s + (size_t)r * row_bytes + b * blk;
                char *o = out + 2 * ENG_PANEL + (size_t)r * 4;
                memcpy(out + 2 * r, in, 2);
                memcpy(o, in + 2, 4);
                memcpy(o + 4 * ENG_PANEL, in + 6, 4);
                memcpy(o + 8 * ENG_PANEL, in + 10, 4);
                memcpy(o + 12 * ENG_PANEL, in + 14, 4);
                if (qb == QK8_0)
                    for (size_t g = 4; g < QK8_0 / 4; g++)
                        memcpy(o + g * 4 * ENG_PANEL, in + 2 + 4 * g, 4);
            }
        }
        return;
    }
    /* element by element, with the element size a constant so the copies are plain moves */
    if (elem_bytes(type) == 4) {
        for (int r = 0; r < n_rows; r++)
            for (int64_t k = 0; k < ne0; k++)
                memcpy(d + ((size_t)k * ENG_PANEL + (size_t)r) * 4,
                       s + (size_t)r * row_bytes + (size_t)k * 4, 4);
    } else {
        for (int r = 0; r < n_rows; r++)
            for (int64_t k = 0; k < ne0; k++)
                memcpy(d + ((size_t)k * ENG_PANEL + (size_t)r) * 2,
                       s + (size_t)r * row_bytes + (size_t)k * 2, 2);
    }
}

void eng_pack_matrix(uint32_t type, int64_t ne0, int64_t ne1, const void *src, void *dst)
{
    size_t rb = eng_row_bytes(type, ne0), pb = rb * ENG_PANEL;
    int64_t full = ne1 / ENG_PANEL;
    for (int64_t p = 0; p < full; p++)
        eng_pack_panel(type, ne0, (const char *)src + (size_t)p * pb, rb, ENG_PANEL,
                       (char *)dst + (size_t)p * pb);
    size_t done = (size_t)full * pb;
    memcpy((char *)dst + done, (const char *)src + done, (size_t)(ne1 - full * ENG_PANEL) * rb);
}

static float elem_to_float(uint32_t type, const char *p)
{
    if (type == GGUF_TT_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return type == GGUF_TT_F16 ? eng_fp16_to_fp32(h) : eng_bf16_to_fp32(h);
}

void eng_pack_row_to_float(uint32_t type, int64_t ne0, int64_t ne1, const void *packed, int64_t r,
                           float *y)
{
    size_t rb = eng_row_bytes(type, ne0);
    int64_t full = ne1 / ENG_PANEL;
    if (r >= full * ENG_PANEL) {
        eng_type_traits(type)->to_float((const char *)packed + (size_t)r * rb, y, ne0);
        return;
    }
    const char *panel = (const char *)packed + (size_t)(r / ENG_PANEL) * rb * ENG_PANEL;
    int ri = (int)(r % ENG_PANEL);
    if (type == GGUF_TT_Q8_0 || type == GGUF_TT_Q4_0) {
        size_t qb = quant_bytes(type), blk = 2 + qb;
        for (int64_t b = 0; b < ne0 / QK8_0; b++) {
            const char *in = panel + (size_t)b * blk * ENG_PANEL;
            uint16_t h;
            memcpy(&h, in + 2 * ri, 2);
            float d = eng_fp16_to_fp32(h);
            float *o = y + b * QK8_0;
            for (size_t i = 0; i < qb; i++) {
                const char *q =
                    in + 2 * ENG_PANEL + (i / 4) * 4 * ENG_PANEL + (size_t)ri * 4 + i % 4;
                if (type == GGUF_TT_Q8_0) {
                    o[i] = (float)(int8_t)*q * d;
                } else {
                    uint8_t v = (uint8_t)*q;
                    o[i] = (float)((v & 0xF) - 8) * d;
                    o[i + 16] = (float)((v >> 4) - 8) * d;
                }
            }
        }
        return;
    }
    size_t es = elem_bytes(type);
    for (int64_t k = 0; k < ne0; k++)
        y[k] = elem_to_float(type, panel + ((size_t)k * ENG_PANEL + (size_t)ri) * es);
}

void eng_act_q8_0_aux(const void *blocks, int64_t n, float *d, int32_t *sum)
{
    const struct block_q8_0 *b = blocks;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t s = 0;
        for (int j = 0; j < QK8_0; j++)
            s += b[i].qs[j];
        d[i] = eng_fp16_to_fp32(b[i].d);
        sum[i] = s;
    }
}

/* ---- scalar reference panel kernels ---- */

static void panel_float_ref(uint32_t type, int64_t ne0, const void *w, int n_panels,
                            const struct eng_act *a, int n_tok, float *y, size_t ldy)
{
    size_t es = elem_bytes(type), pb = (size_t)ne0 * ENG_PANEL * es;
    for (int p = 0; p < n_panels; p++) {
        const char *panel = (const char *)w + (size_t)p * pb;
        for (int t = 0; t < n_tok; t++) {
            const float *x = (const float *)((const char *)a->q + (size_t)t * a->row_bytes);
            for (int r = 0; r < ENG_PANEL; r++) {
                float s = 0;
                for (int64_t k = 0; k < ne0; k++)
                    s = fmaf(elem_to_float(type, panel + ((size_t)k * ENG_PANEL + (size_t)r) * es),
                             x[k], s);
                y[(size_t)t * ldy + (size_t)p * ENG_PANEL + (size_t)r] = s;
            }
        }
    }
}

static void panel_f32_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                          int n_tok, float *y, size_t ldy)
{
    panel_float_ref(GGUF_TT_F32, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_f16_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                          int n_tok, float *y, size_t ldy)
{
    panel_float_ref(GGUF_TT_F16, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_bf16_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                           int n_tok, float *y, size_t ldy)
{
    panel_float_ref(GGUF_TT_BF16, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q_ref(uint32_t type, int64_t ne0, const void *w, int n_panels,
                        const struct eng_act *a, int n_tok, float *y, size_t ldy)
{
    size_t qb = quant_bytes(type), blk = (2 + qb) * ENG_PANEL;
    int64_t nb = ne0 / QK8_0;
    for (int p = 0; p < n_panels; p++) {
        const char *panel = (const char *)w + (size_t)p * (size_t)nb * blk;
        for (int t = 0; t < n_tok; t++) {
            const struct block_q8_0 *x =
                (const struct block_q8_0 *)((const char *)a->q + (size_t)t * a->row_bytes);
            const float *ad = a->d + (size_t)t * a->aux_row;
            const int32_t *as = a->sum + (size_t)t * a->aux_row;
            for (int r = 0; r < ENG_PANEL; r++) {
                float s = 0;
                for (int64_t b = 0; b < nb; b++) {
                    const char *in = panel + (size_t)b * blk;
                    uint16_t h;
                    memcpy(&h, in + 2 * r, 2);
                    int32_t isum = 0;
                    for (size_t i = 0; i < qb; i++) {
                        const char *q =
                            in + 2 * ENG_PANEL + (i / 4) * 4 * ENG_PANEL + (size_t)r * 4 + i % 4;
                        if (type == GGUF_TT_Q8_0) {
                            isum += (int8_t)*q * x[b].qs[i];
                        } else {
                            uint8_t v = (uint8_t)*q;
                            isum += (v & 0xF) * x[b].qs[i] + (v >> 4) * x[b].qs[i + 16];
                        }
                    }
                    if (type == GGUF_TT_Q4_0)
                        isum -= 8 * as[b];
                    s = s + (float)isum * (eng_fp16_to_fp32(h) * ad[b]);
                }
                y[(size_t)t * ldy + (size_t)p * ENG_PANEL + (size_t)r] = s;
            }
        }
    }
}

static void panel_q8_0_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                           int n_tok, float *y, size_t ldy)
{
    panel_q_ref(GGUF_TT_Q8_0, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q4_0_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                           int n_tok, float *y, size_t ldy)
{
    panel_q_ref(GGUF_TT_Q4_0, ne0, w, n_panels, a, n_tok, y, ldy);
}

eng_panel_fn eng_panel_ref(uint32_t type)
{
    switch (type) {
    case GGUF_TT_F32:
        return panel_f32_ref;
    case GGUF_TT_F16:
        return panel_f16_ref;
    case GGUF_TT_BF16:
        return panel_bf16_ref;
    case GGUF_TT_Q8_0:
        return panel_q8_0_ref;
    case GGUF_TT_Q4_0:
        return panel_q4_0_ref;
    default:
        return NULL;
    }
}
