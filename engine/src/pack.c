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
    case GGUF_TT_Q4_K:
    case GGUF_TT_Q5_K:
    case GGUF_TT_Q6_K:
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

static int is_kquant(uint32_t type)
{
    return type == GGUF_TT_Q4_K || type == GGUF_TT_Q5_K || type == GGUF_TT_Q6_K;
}

/* n bytes of row r to / from 4-byte groups of 8 rows: group g holds bytes 4g..4g+3 of each row. */
static void put_groups(uint8_t *out, const uint8_t *in, size_t n, int r)
{
    for (size_t g = 0; g < n / 4; g++)
        memcpy(out + g * 4 * ENG_PANEL + (size_t)r * 4, in + 4 * g, 4);
}

static void get_groups(uint8_t *out, const uint8_t *in, size_t n, int r)
{
    for (size_t g = 0; g < n / 4; g++)
        memcpy(out + 4 * g, in + g * 4 * ENG_PANEL + (size_t)r * 4, 4);
}

/* Q6_K sub-block k (16 elements, stored as q + 32 in 0..63) sits in the plain block at half
 * h = k / 8, quarter qq = k % 8 / 2, elements l0 = 16 * (k % 2) .. l0 + 15 of that quarter: low
 * nibbles in ql (upper nibbles for quarters 2 and 3), top 2 bits at bits 2qq of qh. */
struct q6_place {
    int ql, ql_shift, qh, qh_shift;
};

static struct q6_place q6_place(int k)
{
    int h = k / 8, qq = k % 8 / 2, l0 = 16 * (k % 2);
    return (struct q6_place){64 * h + 32 * (qq & 1) + l0, 4 * (qq >> 1), 32 * h + l0, 2 * qq};
}

/* Sub-block k of a plain block into row r's 12 bytes of the packed super-block (pack.h), eight
 * fields at a time in 64-bit words (byte i of a little-endian word is element i's field). */
static void q6_sub_pack(const struct block_q6_K *b, int k, struct block_q6_Kx8 *p, int r)
{
    const uint64_t m4 = 0x0F0F0F0F0F0F0F0Full, m2 = 0x0303030303030303ull;
    struct q6_place pl = q6_place(k);
    uint64_t l[2], h[2];
    memcpy(l, b->ql + pl.ql, 16);
    memcpy(h, b->qh + pl.qh, 16);
    for (int i = 0; i < 2; i++) {
        l[i] = (l[i] >> pl.ql_shift) & m4; /* nibbles of elements 8i .. 8i + 7 */
        h[i] = (h[i] >> pl.qh_shift) & m2; /* their top 2 bits */
    }
    uint32_t lo0 = (uint32_t)l[0] | (uint32_t)(l[0] >> 32) << 4;
    uint32_t lo1 = (uint32_t)l[1] | (uint32_t)(l[1] >> 32) << 4;
    uint32_t hi = (uint32_t)h[0] | (uint32_t)(h[0] >> 32) << 2 | (uint32_t)h[1] << 4 |
                  (uint32_t)(h[1] >> 32) << 6;
    memcpy(p->q[k][0] + 4 * r, &lo0, 4);
    memcpy(p->q[k][1] + 4 * r, &lo1, 4);
    memcpy(p->q[k][2] + 4 * r, &hi, 4);
}

/* The reverse, into a zeroed plain block. */
static void q6_sub_unpack(const struct block_q6_Kx8 *p, int r, int k, struct block_q6_K *b)
{
    struct q6_place pl = q6_place(k);
    for (int i = 0; i < 16; i++) {
        int at = 4 * r + i % 4;
        int lo = (p->q[k][i / 8][at] >> (4 * (i / 4 % 2))) & 0xF;
        int hi = (p->q[k][2][at] >> (2 * (i / 4))) & 3;
        b->ql[pl.ql + i] |= (uint8_t)(lo << pl.ql_shift);
        b->qh[pl.qh + i] |= (uint8_t)(hi << pl.qh_shift);
    }
}

/* One plain k-quant super-block in as row r of the packed super-block at dst (zeroed first). */
static void kblock_pack(uint32_t type, const void *in, int r, void *dst)
{
    if (type == GGUF_TT_Q6_K) {
        const struct block_q6_K *b = in;
        struct block_q6_Kx8 *p = dst;
        p->d[r] = b->d;
        for (int k = 0; k < QK_K / 16; k++)
            p->scales[k * ENG_PANEL + r] = b->scales[k];
        for (int k = 0; k < QK_K / 16; k++)
            q6_sub_pack(b, k, p, r);
    } else if (type == GGUF_TT_Q4_K) {
        const struct block_q4_K *b = in;
        struct block_q4_Kx8 *p = dst;
        p->d[r] = b->d;
        p->dmin[r] = b->dmin;
        put_groups(p->scales, b->scales, sizeof(b->scales), r);
        put_groups(p->qs, b->qs, sizeof(b->qs), r);
    } else {
        const struct block_q5_K *b = in;
        struct block_q5_Kx8 *p = dst;
        p->d[r] = b->d;
        p->dmin[r] = b->dmin;
        put_groups(p->scales, b->scales, sizeof(b->scales), r);
        put_groups(p->qh, b->qh, sizeof(b->qh), r);
        put_groups(p->qs, b->qs, sizeof(b->qs), r);
    }
}

/* Row r of a packed k-quant super-block back into its plain block. */
static void kblock_unpack(uint32_t type, const void *src, int r, void *out)
{
    if (type == GGUF_TT_Q6_K) {
        const struct block_q6_Kx8 *p = src;
        struct block_q6_K *b = out;
        memset(b, 0, sizeof(*b));
        b->d = p->d[r];
        for (int k = 0; k < QK_K / 16; k++)
            b->scales[k] = p->scales[k * ENG_PANEL + r];
        for (int k = 0; k < QK_K / 16; k++)
            q6_sub_unpack(p, r, k, b);
    } else if (type == GGUF_TT_Q4_K) {
        const struct block_q4_Kx8 *p = src;
        struct block_q4_K *b = out;
        b->d = p->d[r];
        b->dmin = p->dmin[r];
        get_groups(b->scales, p->scales, sizeof(b->scales), r);
        get_groups(b->qs, p->qs, sizeof(b->qs), r);
    } else {
        const struct block_q5_Kx8 *p = src;
        struct block_q5_K *b = out;
        b->d = p->d[r];
        b->dmin = p->dmin[r];
        get_groups(b->scales, p->scales, sizeof(b->scales), r);
        get_groups(b->qh, p->qh, sizeof(b->qh), r);
        get_groups(b->qs, p->qs, sizeof(b->qs), r);
    }
}

/* Any plain k-quant super-block. */
union kblock {
    struct block_q4_K q4;
    struct block_q5_K q5;
    struct block_q6_K q6;
};

void eng_pack_panel(uint32_t type, int64_t ne0, const void *src, size_t row_bytes, int n_rows,
                    void *dst)
{
    const char *s = src;
    char *d = dst;
    /* k-quant packers OR bit fields into place; partial panels are zero-padded */
    if (n_rows < ENG_PANEL || is_kquant(type))
        memset(dst, 0, row_bytes * ENG_PANEL);
    if (is_kquant(type)) {
        size_t bb = eng_type_traits(type)->bytes;
        for (int64_t b = 0; b < ne0 / QK_K; b++)
            for (int r = 0; r < n_rows; r++)
                kblock_pack(type, s + (size_t)r * row_bytes + (size_t)b * bb, r,
                            d + (size_t)b * bb * ENG_PANEL);
        return;
    }
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
    if (is_kquant(type)) {
        const struct eng_type_traits *tr = eng_type_traits(type);
        union kblock blk;
        for (int64_t b = 0; b < ne0 / QK_K; b++) {
            kblock_unpack(type, panel + (size_t)b * tr->bytes * ENG_PANEL, ri, &blk);
            tr->to_float(&blk, y + b * QK_K, QK_K);
        }
        return;
    }
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

/* Each row's super-blocks unpacked again and taken through the reference dots' own integer sums
 * (quant.c) and float operations. */
static void panel_k_ref(uint32_t type, int64_t ne0, const void *w, int n_panels,
                        const struct eng_act *a, int n_tok, float *y, size_t ldy)
{
    size_t bb = eng_type_traits(type)->bytes * ENG_PANEL;
    int64_t nb = ne0 / QK_K;
    for (int p = 0; p < n_panels; p++) {
        const char *panel = (const char *)w + (size_t)p * (size_t)nb * bb;
        for (int t = 0; t < n_tok; t++) {
            const struct block_q8_K *x =
                (const struct block_q8_K *)((const char *)a->q + (size_t)t * a->row_bytes);
            for (int r = 0; r < ENG_PANEL; r++) {
                float s = 0;
                for (int64_t b = 0; b < nb; b++) {
                    union kblock k;
                    int32_t sum_sc, sum_m;
                    kblock_unpack(type, panel + (size_t)b * bb, r, &k);
                    if (type == GGUF_TT_Q6_K) {
                        s += eng_fp16_to_fp32(k.q6.d) * x[b].d * (float)eng_q6_K_isum(&k.q6, &x[b]);
                        continue;
                    }
                    if (type == GGUF_TT_Q4_K)
                        eng_q4_K_isums(&k.q4, &x[b], &sum_sc, &sum_m);
                    else
                        eng_q5_K_isums(&k.q5, &x[b], &sum_sc, &sum_m);
                    /* d and dmin sit at the same place in block_q4_K and block_q5_K */
                    s += eng_fp16_to_fp32(k.q4.d) * x[b].d * (float)sum_sc -
                         eng_fp16_to_fp32(k.q4.dmin) * x[b].d * (float)sum_m;
                }
                y[(size_t)t * ldy + (size_t)p * ENG_PANEL + (size_t)r] = s;
            }
        }
    }
}

static void panel_q4_K_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                           int n_tok, float *y, size_t ldy)
{
    panel_k_ref(GGUF_TT_Q4_K, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q5_K_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                           int n_tok, float *y, size_t ldy)
{
    panel_k_ref(GGUF_TT_Q5_K, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_q6_K_ref(int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                           int n_tok, float *y, size_t ldy)
{
    panel_k_ref(GGUF_TT_Q6_K, ne0, w, n_panels, a, n_tok, y, ldy);
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
    case GGUF_TT_Q4_K:
        return panel_q4_K_ref;
    case GGUF_TT_Q5_K:
        return panel_q5_K_ref;
    case GGUF_TT_Q6_K:
        return panel_q6_K_ref;
    default:
        return NULL;
    }
}
