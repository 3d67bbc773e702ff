/* The F32/F16/BF16 panel dispatch shared by the SIMD panel files (panel_avx2.c, panel_neon.c):
 * how the panels and tokens of one call are cut into float_tile calls. Included once, after the
 * including file has defined INLINE, the ES_F32/ES_F16/ES_BF16 kinds and its own
 * float_tile(kind, ne0, w, pb, np, a, t0, nt, y, ldy) for np (1..4) panels times nt (1..6)
 * tokens; this file is compiled into each of them with that file's ISA flags, so every
 * float_tile call below inlines with constant np and nt, as when the code stood in each file.
 *
 * Decode: four panels per pass (independent FMA chains). Prefill: two panels times six tokens,
 * the tile that fits the register file of both ISAs (see float_tile in each file). */
#ifndef ENG_PANEL_FLOAT_H
#define ENG_PANEL_FLOAT_H

INLINE void panel_float(int kind, int64_t ne0, const void *w, int n_panels, const struct eng_act *a,
                        int n_tok, float *y, size_t ldy)
{
    size_t pb = (size_t)ne0 * ENG_PANEL * (kind == ES_F32 ? 4 : 2);
    const char *wc = w;
    int p = 0;
    if (n_tok == 1) {
        for (; p + 4 <= n_panels; p += 4)
            float_tile(kind, ne0, wc + (size_t)p * pb, pb, 4, a, 0, 1, y + (size_t)p * 8, ldy);
        for (; p < n_panels; p++)
            float_tile(kind, ne0, wc + (size_t)p * pb, pb, 1, a, 0, 1, y + (size_t)p * 8, ldy);
        return;
    }
    for (; p < n_panels; p += 2) {
        int np = n_panels - p >= 2 ? 2 : 1;
        const char *pw = wc + (size_t)p * pb;
        float *py = y + (size_t)p * ENG_PANEL;
        int t = 0;
        if (np == 2) {
            for (; t + 6 <= n_tok; t += 6)
                float_tile(kind, ne0, pw, pb, 2, a, t, 6, py, ldy);
            switch (n_tok - t) {
            case 5:
                float_tile(kind, ne0, pw, pb, 2, a, t, 5, py, ldy);
                break;
            case 4:
                float_tile(kind, ne0, pw, pb, 2, a, t, 4, py, ldy);
                break;
            case 3:
                float_tile(kind, ne0, pw, pb, 2, a, t, 3, py, ldy);
                break;
            case 2:
                float_tile(kind, ne0, pw, pb, 2, a, t, 2, py, ldy);
                break;
            case 1:
                float_tile(kind, ne0, pw, pb, 2, a, t, 1, py, ldy);
                break;
            default:
                break;
            }
        } else {
            for (; t + 6 <= n_tok; t += 6)
                float_tile(kind, ne0, pw, pb, 1, a, t, 6, py, ldy);
            for (; t < n_tok; t++)
                float_tile(kind, ne0, pw, pb, 1, a, t, 1, py, ldy);
        }
    }
}

static void panel_f32(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok,
                      float *y, size_t ldy)
{
    panel_float(ES_F32, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_f16(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok,
                      float *y, size_t ldy)
{
    panel_float(ES_F16, ne0, w, n_panels, a, n_tok, y, ldy);
}

static void panel_bf16(int64_t ne0, const void *w, int n_panels, const struct eng_act *a, int n_tok,
                       float *y, size_t ldy)
{
    panel_float(ES_BF16, ne0, w, n_panels, a, n_tok, y, ldy);
}

#endif
