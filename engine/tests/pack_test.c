/* Row-interleaved panels (pack.h): packing keeps every row's values (unpacked again row by row),
 * the scalar reference panel kernels reproduce the engine's reference dot products bit for bit
 * (quantized types: eng_dot_*_ref; float types: one fused multiply-add per element in order),
 * including k-quant blocks whose quants, scales and activations all take their largest
 * magnitudes (the bound of the SIMD kernels' integer sums), and
 * every SIMD variant the CPU can run gives exactly the reference's results for odd widths, tail
 * panels and 1 to 13 tokens. A variant whose instruction set is missing is named as skipped.
 * Built a second time with PACK_TEST_SIMDE, it checks the AVX-512 Q4_0/Q8_0 panel kernels (VNNI
 * and BW-only) compiled against SIMDe's portable AVX-512, so they are proved on any x86-64. */
#include "ember_test.h"
#include "kernels.h"
#include "pack.h"
#include "quant.h"

#include <stdint.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rndf(void) /* [-1, 1) */
{
    return (float)((double)rnd() / 2147483648.0 - 1.0);
}

static int is_kquant(uint32_t type)
{
    return eng_type_traits(type)->vec_dot_type == GGUF_TT_Q8_K;
}

/* k-quant rows (we have no k-quant quantizer): random bytes with small finite scales, or with
 * extreme set every quant and sub-block scale to its largest magnitude, the case that bounds the
 * SIMD kernels' integer sums. */
static void kquant_rows(uint32_t type, int64_t ne0, int64_t ne1, void *dst, int extreme)
{
    const struct eng_type_traits *tr = eng_type_traits(type);
    size_t n = (size_t)(ne0 * ne1) / QK_K;
    uint8_t *p = dst;
    for (size_t i = 0; i < n * tr->bytes; i++)
        p[i] = extreme ? 0xFF : (uint8_t)rnd();
    for (size_t i = 0; i < n; i++) {
        eng_fp16 d = eng_fp32_to_fp16(rndf() * 0.01f), dmin = eng_fp32_to_fp16(rndf() * 0.01f);
        if (type == GGUF_TT_Q6_K) {
            struct block_q6_K *b = (struct block_q6_K *)dst + i;
            b->d = d;
            if (extreme)
                memset(b->scales, 0x80, sizeof(b->scales)); /* -128 */
        } else if (type == GGUF_TT_Q4_K) {
            struct block_q4_K *b = (struct block_q4_K *)dst + i;
            b->d = d;
            b->dmin = dmin;
        } else {
            struct block_q5_K *b = (struct block_q5_K *)dst + i;
            b->d = d;
            b->dmin = dmin;
        }
    }
}

static void quantize_rows(uint32_t type, const float *x, int64_t ne0, int64_t ne1, void *dst,
                          int extreme)
{
    const struct eng_type_traits *tr = eng_type_traits(type);
    size_t rb = eng_row_bytes(type, ne0);
    if (is_kquant(type)) {
        kquant_rows(type, ne0, ne1, dst, extreme);
        return;
    }
    for (int64_t r = 0; r < ne1; r++)
        tr->from_float(x + r * ne0, (char *)dst + (size_t)r * rb, ne0);
    if (type == GGUF_TT_Q8_0) { /* -128 is legal in a file though our quantizer never writes it */
        struct block_q8_0 *b = dst;
        for (int64_t i = 0; i < ne1 * ne0 / QK8_0; i += 3)
            b[i].qs[rnd() % QK8_0] = -128;
    }
}

/* The defining arithmetic of one (row, token) result. */
static float expected(uint32_t type, int64_t ne0, const void *row, const void *act_row)
{
    if (eng_type_traits(type)->vec_dot_type != GGUF_TT_F32)
        return eng_type_traits(type)->vec_dot_ref((int)ne0, row, act_row);
    float *w = malloc(sizeof(float) * (size_t)ne0);
    eng_type_traits(type)->to_float(row, w, ne0);
    const float *x = act_row;
    float s = 0;
    for (int64_t k = 0; k < ne0; k++)
        s = fmaf(w[k], x[k], s);
    free(w);
    return s;
}

/* Q8_K activations: quantized, then with fill every quant set to fill (extreme sums) or else
 * some set to -128 (legal in the format though our quantizer never writes it); bsums stay the
 * exact group sums. */
static void q8_K_row(const float *x, void *dst, int64_t ne0, int fill)
{
    eng_quant_q8_K(x, dst, ne0);
    struct block_q8_K *b = dst;
    for (int64_t i = 0; i < ne0 / QK_K; i++) {
        if (fill)
            memset(b[i].qs, fill, QK_K);
        else
            for (int k = 0; k < 8; k++)
                b[i].qs[rnd() % QK_K] = -128;
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += b[i].qs[16 * g + j];
            b[i].bsums[g] = (int16_t)sum;
        }
    }
}

struct variant {
    const char *name;
    const struct eng_kernels *k;
};

static void test_type(uint32_t type, const struct variant *vs, int n_vs)
{
    const struct eng_type_traits *tr = eng_type_traits(type);
    int quantized = tr->vec_dot_type == GGUF_TT_Q8_0, kq = is_kquant(type);
    const int64_t widths[] = {32, 64, 96, 256, 768, 2048, 512};
    const int64_t heights[] = {8, 16, 24, 13, 5, 40};
    const int toks[] = {1, 2, 3, 4, 5, 6, 7, 9, 13};
    int unpack_ok = 1, n_cases = 0;
    int ok[8];
    for (int v = 0; v < n_vs; v++)
        ok[v] = 1;
    for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++) {
        int64_t ne0 = widths[wi];
        if (ne0 % tr->blck)
            continue;
        size_t rb = eng_row_bytes(type, ne0);
        for (size_t hi = 0; hi < sizeof(heights) / sizeof(heights[0]); hi++) {
            int64_t ne1 = heights[hi];
            float *wf = malloc(sizeof(float) * (size_t)(ne0 * ne1));
            for (int64_t i = 0; i < ne0 * ne1; i++)
                wf[i] = rndf() * (i % 7 == 0 ? 4.0f : 1.0f);
            char *plain = malloc(rb * (size_t)ne1), *packed = malloc(rb * (size_t)ne1);
            int extreme = kq && hi == 0 && wi % 2 == 1; /* 256 and 2048 wide */
            quantize_rows(type, wf, ne0, ne1, plain, extreme);
            eng_pack_matrix(type, ne0, ne1, plain, packed);
            float *a = malloc(sizeof(float) * (size_t)ne0),
                  *b = malloc(sizeof(float) * (size_t)ne0);
            for (int64_t r = 0; r < ne1; r++) {
                tr->to_float(plain + (size_t)r * rb, a, ne0);
                eng_pack_row_to_float(type, ne0, ne1, packed, r, b);
                unpack_ok &= memcmp(a, b, sizeof(float) * (size_t)ne0) == 0;
            }
            free(a);
            free(b);

            int n_tok = toks[(wi + hi) % (sizeof(toks) / sizeof(toks[0]))];
            if (ne1 == 40 && wi % 2 == 1) /* decode over several panels at once */
                n_tok = 1;
            if (ne0 == 768 && ne1 == 40)
                n_tok = 13;
            /* activations: F32 rows, Q8_0 blocks with their scales and sums, or Q8_K blocks */
            size_t arow = quantized ? eng_row_bytes(GGUF_TT_Q8_0, ne0)
                          : kq      ? eng_row_bytes(GGUF_TT_Q8_K, ne0)
                                    : sizeof(float) * ne0;
            size_t nb = (size_t)ne0 / QK8_0;
            char *act = malloc(arow * (size_t)n_tok);
            float *ad = malloc(sizeof(float) * nb * (size_t)n_tok);
            int32_t *as = malloc(sizeof(int32_t) * nb * (size_t)n_tok);
            float *x = malloc(sizeof(float) * (size_t)ne0);
            for (int t = 0; t < n_tok; t++) {
                for (int64_t k = 0; k < ne0; k++)
                    x[k] = rndf() * (t == 1 ? 50.0f : 1.0f);
                if (kq) {
                    q8_K_row(x, act + (size_t)t * arow, ne0, extreme ? (t % 2 ? 127 : -128) : 0);
                } else if (quantized) {
                    eng_quant_q8_0(x, act + (size_t)t * arow, ne0);
                    eng_act_q8_0_aux(act + (size_t)t * arow, ne0, ad + (size_t)t * nb,
                                     as + (size_t)t * nb);
                } else {
                    memcpy(act + (size_t)t * arow, x, arow);
                }
            }
            struct eng_act ea = {act, arow, ad, as, nb};
            float *want = malloc(sizeof(float) * (size_t)(n_tok * ne1));
            for (int t = 0; t < n_tok; t++)
                for (int64_t r = 0; r < ne1; r++)
                    want[(size_t)t * ne1 + r] =
                        expected(type, ne0, plain + (size_t)r * rb, act + (size_t)t * arow);

            int64_t full = ne1 / ENG_PANEL;
            size_t ldy = (size_t)(full + 1) * ENG_PANEL;
            float *got = malloc(sizeof(float) * ldy * (size_t)n_tok);
            char *tail = malloc(rb * ENG_PANEL);
            for (int v = 0; v < n_vs; v++) {
                eng_panel_fn fn = vs[v].k->panel[type];
                if (!fn) {
                    ok[v] = 0;
                    continue;
                }
                memset(got, 0xFF, sizeof(float) * ldy * (size_t)n_tok);
                if (full)
                    fn(ne0, packed, (int)full, &ea, n_tok, got, ldy);
                if (ne1 > full * ENG_PANEL) { /* the tail panel, packed on the fly */
                    eng_pack_panel(type, ne0, packed + (size_t)full * ENG_PANEL * rb, rb,
                                   (int)(ne1 - full * ENG_PANEL), tail);
                    fn(ne0, tail, 1, &ea, n_tok, got + full * ENG_PANEL, ldy);
                }
                /* the quantized types' row dots follow the same arithmetic (plain rows under
                 * use_mmap are read with them) */
                if (quantized)
                    for (int t = 0; t < n_tok; t++)
                        for (int64_t r = 0; r < ne1; r++) {
                            float g = vs[v].k->dot[type]((int)ne0, plain + (size_t)r * rb,
                                                         act + (size_t)t * arow);
                            if (memcmp(&g, &want[(size_t)t * ne1 + r], sizeof(float)) != 0) {
                                if (ok[v])
                                    fprintf(stderr, "%s %s row dot: %lld wide: %.9g != %.9g\n",
                                            vs[v].name, tr->name, (long long)ne0, g,
                                            want[(size_t)t * ne1 + r]);
                                ok[v] = 0;
                            }
                        }
                for (int t = 0; t < n_tok; t++)
                    for (int64_t r = 0; r < ne1; r++) {
                        float g = got[(size_t)t * ldy + r], e = want[(size_t)t * ne1 + r];
                        if (memcmp(&g, &e, sizeof(float)) != 0) {
                            if (ok[v])
                                fprintf(stderr,
                                        "%s %s: %lldx%lld, token %d/%d, row %lld: %.9g != %.9g\n",
                                        vs[v].name, tr->name, (long long)ne1, (long long)ne0, t,
                                        n_tok, (long long)r, g, e);
                            ok[v] = 0;
                        }
                    }
            }
            n_cases++;
            free(wf);
            free(plain);
            free(packed);
            free(act);
            free(ad);
            free(as);
            free(x);
            free(want);
            free(got);
            free(tail);
        }
    }
    CHECK_MSG(unpack_ok, "%s: a packed row does not unpack to the plain row", tr->name);
    for (int v = 0; v < n_vs; v++) {
        CHECK_MSG(ok[v], "%s %s: panel results differ from the reference arithmetic", vs[v].name,
                  tr->name);
        printf("%-10s %-5s %d shapes bit-identical: %s\n", vs[v].name, tr->name, n_cases,
               ok[v] ? "yes" : "NO");
    }
}

#ifdef PACK_TEST_SIMDE
/* panel_avx512.c built against SIMDe's portable AVX-512 (engcore_pack.cmake) */
void eng_panels_fill_avx512_simde(struct eng_kernels *k, unsigned cpu_flags);

int main(void)
{
    const struct eng_kernels *avx2 = eng_kernels_avx2();
    if (!avx2) {
        printf("SKIPPED emulated AVX-512 panel kernels: they start from the AVX2 table, and this "
               "CPU lacks AVX2\n");
        return 77;
    }
    static struct eng_kernels vnni, bw;
    vnni = *avx2;
    bw = *avx2;
    eng_panels_fill_avx512_simde(&vnni, ENG_CPU_AVX512VNNI);
    eng_panels_fill_avx512_simde(&bw, 0);
    CHECK(vnni.panel[GGUF_TT_Q4_0] != avx2->panel[GGUF_TT_Q4_0]);
    CHECK(bw.panel[GGUF_TT_Q8_0] != avx2->panel[GGUF_TT_Q8_0]);
    CHECK(vnni.panel[GGUF_TT_Q4_0] != bw.panel[GGUF_TT_Q4_0]);
    const struct variant vs[] = {{"avx512-vnni(simde)", &vnni}, {"avx512-bw(simde)", &bw}};
    test_type(GGUF_TT_Q8_0, vs, 2);
    test_type(GGUF_TT_Q4_0, vs, 2);
    printf("%d passed, %d failed\n", et_passed, et_failed);
    return et_failed ? 1 : 0;
}
#else
int main(void)
{
    struct variant vs[4];
    int n = 0;
    vs[n++] = (struct variant){"scalar", eng_kernels_scalar()};
    const struct variant opt[] = {{"avx2", eng_kernels_avx2()},
                                  {"avx512", eng_kernels_avx512()},
                                  {"neon", eng_kernels_neon()}};
    static char names[3][32];
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        if (opt[i].k) {
            /* the variant of the int8 products (NEON: sdot or vmull, by CPU) is part of the name */
            snprintf(names[i], sizeof(names[i]), "%s%s%s", opt[i].name,
                     opt[i].k->int8_dot ? "/" : "", opt[i].k->int8_dot ? opt[i].k->int8_dot : "");
            vs[n] = opt[i];
            vs[n++].name = names[i];
        } else
            printf("SKIPPED %s panel kernels: this CPU or build lacks the instruction set\n",
                   opt[i].name);
    }
    const uint32_t types[] = {GGUF_TT_F32,  GGUF_TT_F16,  GGUF_TT_BF16, GGUF_TT_Q8_0,
                              GGUF_TT_Q4_0, GGUF_TT_Q6_K, GGUF_TT_Q4_K, GGUF_TT_Q5_K};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        CHECK(eng_pack_supported(types[i]));
        test_type(types[i], vs, n);
    }
    CHECK(!eng_pack_supported(GGUF_TT_Q8_K)); /* activations only */
    printf("%d passed, %d failed\n", et_passed, et_failed);
    return et_failed ? 1 : 0;
}
#endif
