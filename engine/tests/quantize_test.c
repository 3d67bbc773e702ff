/* Unit tests of the quantization module: the GGUF writer (every value kind round-trips through
 * the reader; a file re-written from stories260K's metadata and tensors reads back with every
 * key's encoded value and every tensor's bytes equal; bad tensor shapes are refused), and the
 * quantizers (each type's output, dequantized by the engine's reference dequantizers, is within
 * the error its bit width allows, errors shrink with more bits, Q4_0 without importance equals
 * the engine's reference Q4_0, Q8_0 follows round-half-away-from-zero, and importance weighting
 * lowers the importance-weighted error it optimises). */
#include "ember_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "quantize_blocks.h"

static uint64_t rng = 88172645463325252ull;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float gauss(void)
{
    float s = 0;
    for (int i = 0; i < 6; i++)
        s += frand();
    return s * 0.7f;
}

static void test_writer_roundtrip(void)
{
    struct gguf_writer *w = NULL;
    CHECK(gguf_writer_new(&w) == 0);
    CHECK(gguf_writer_set_u32(w, "a.u32", 7) == 0);
    CHECK(gguf_writer_set_i32(w, "a.i32", -5) == 0);
    CHECK(gguf_writer_set_u64(w, "a.u64", 1ull << 40) == 0);
    CHECK(gguf_writer_set_f32(w, "a.f32", 1.5f) == 0);
    CHECK(gguf_writer_set_f64(w, "a.f64", -2.25) == 0);
    CHECK(gguf_writer_set_bool(w, "a.bool", 1) == 0);
    CHECK(gguf_writer_set_str(w, "a.str", "hello") == 0);
    CHECK(gguf_writer_set_str(w, "a.str", "replaced") == 0); /* replaces, keeps one key */
    int32_t arr[3] = {1, -2, 3};
    CHECK(gguf_writer_set_arr(w, "a.arr", GGUF_VT_INT32, arr, 3) == 0);
    const char *strs[2] = {"x", "yz"};
    CHECK(gguf_writer_set_str_arr(w, "a.strs", strs, 2) == 0);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 64) == 0);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 48) == -EINVAL);
    CHECK(gguf_writer_set_u32(w, "", 1) == -EINVAL);
    int64_t ne[2] = {64, 3}, bad[2] = {33, 2};
    CHECK(gguf_writer_add_tensor(w, "t.q8", 2, ne, GGUF_TT_Q8_0) == 0);
    CHECK(gguf_writer_add_tensor(w, "t.f32", 1, ne, GGUF_TT_F32) == 0);
    CHECK(gguf_writer_add_tensor(w, "t.f32", 1, ne, GGUF_TT_F32) == -EEXIST);
    CHECK(gguf_writer_add_tensor(w, "t.bad", 2, bad, GGUF_TT_Q4_0) == -EINVAL);
    uint8_t q8[2 * 3 * 34], f[64 * 4];
    for (size_t i = 0; i < sizeof(q8); i++)
        q8[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof(f); i++)
        f[i] = (uint8_t)(i * 3);
    char path[] = "/tmp/ember_qtest_XXXXXX";
    int fd = mkstemp(path);
    FILE *out = fdopen(fd, "wb");
    CHECK(gguf_writer_write_header(w, out, NULL) == 0);
    CHECK(gguf_writer_write_tensor(w, out, f, sizeof(f), NULL) == -EINVAL); /* out of order */
    CHECK(gguf_writer_write_tensor(w, out, q8, sizeof(q8), NULL) == 0);
    CHECK(gguf_writer_write_tensor(w, out, f, sizeof(f), NULL) == 0);
    fclose(out);
    uint64_t expect_size = gguf_writer_file_size(w);
    gguf_writer_free(w);

    struct gguf_file *g = NULL;
    char err[256];
    CHECK_MSG(gguf_open(path, &g, err, sizeof(err)) == 0, "%s", err);
    if (g) {
        uint32_t u = 0;
        int32_t i = 0;
        uint64_t u64 = 0;
        float fl = 0;
        int b = 0;
        const char *s = NULL;
        struct gguf_arr a;
        CHECK(gguf_get_u32(g, "a.u32", &u) == 0 && u == 7);
        CHECK(gguf_get_i32(g, "a.i32", &i) == 0 && i == -5);
        CHECK(gguf_get_u64(g, "a.u64", &u64) == 0 && u64 == 1ull << 40);
        CHECK(gguf_get_f32(g, "a.f32", &fl) == 0 && fl == 1.5f);
        CHECK(gguf_get_f32(g, "a.f64", &fl) == 0 && fl == -2.25f);
        CHECK(gguf_get_bool(g, "a.bool", &b) == 0 && b == 1);
        CHECK(gguf_get_str(g, "a.str", &s) == 0 && strcmp(s, "replaced") == 0);
        CHECK(gguf_get_arr(g, "a.arr", &a) == 0 && a.n == 3 && gguf_arr_int(&a, 1) == -2);
        size_t sl = 0;
        CHECK(gguf_get_arr(g, "a.strs", &a) == 0 && a.n == 2);
        const char *s1 = gguf_arr_str(g, &a, 1, &sl);
        CHECK(s1 && sl == 2 && memcmp(s1, "yz", 2) == 0);
        CHECK_EQ_INT(gguf_n_kv(g), 10);
        CHECK_EQ_INT(gguf_alignment(g), 64);
        CHECK_EQ_INT(gguf_data_offset(g) % 64, 0);
        CHECK_EQ_INT(gguf_file_size(g), expect_size);
        const struct gguf_tensor *t = gguf_find_tensor(g, "t.q8");
        CHECK(t && t->type == GGUF_TT_Q8_0 && t->size == sizeof(q8) &&
              memcmp(t->data, q8, sizeof(q8)) == 0);
        t = gguf_find_tensor(g, "t.f32");
        CHECK(t && t->offset % 64 == 0 && memcmp(t->data, f, sizeof(f)) == 0);
        gguf_close(g);
    }
    unlink(path);
}

/* Rewrites stories260K through the writer: metadata copied verbatim, tensors copied. */
static void test_writer_copy(void)
{
    char in[1024], err[256];
    snprintf(in, sizeof(in), "%s/models/stories260K.gguf", et_shared_dir());
    struct gguf_file *g = NULL;
    if (gguf_open(in, &g, err, sizeof(err)) < 0) {
        printf("SKIP part: %s is absent (%s)\n", in, err);
        return;
    }
    struct gguf_writer *w = NULL;
    CHECK(gguf_writer_new(&w) == 0);
    for (int i = 0; i < gguf_n_kv(g); i++)
        CHECK(gguf_writer_copy_kv(w, g, i) == 0);
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        CHECK(gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type) == 0);
    }
    char path[] = "/tmp/ember_qcopy_XXXXXX";
    FILE *out = fdopen(mkstemp(path), "wb");
    CHECK(gguf_writer_write_header(w, out, NULL) == 0);
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        CHECK(gguf_writer_write_tensor(w, out, t->data, t->size, NULL) == 0);
    }
    fclose(out);
    gguf_writer_free(w);
    /* the original file was written by ggml's writer with the same layout: byte-identical */
    FILE *a = fopen(in, "rb"), *b = fopen(path, "rb");
    int same = a && b, ca, cb;
    while (same && (ca = fgetc(a)) != EOF) {
        cb = fgetc(b);
        same = ca == cb;
    }
    same = same && fgetc(b) == EOF;
    CHECK_MSG(same, "re-written %s differs from the original", in);
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    gguf_close(g);
    unlink(path);
}

static double rel_err(uint32_t type, const float *x, int64_t n)
{
    const struct eng_type_traits *t = eng_type_traits(type);
    void *q = malloc(eng_row_bytes(type, n));
    float *y = malloc((size_t)n * sizeof(float));
    eng_qz_row_fn_of(type)(x, q, n, NULL);
    t->to_float(q, y, n);
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += (double)(x[i] - y[i]) * (x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return sqrt(e / s);
}

static void test_quantizers(void)
{
    enum { N = 256 * 64 };
    float *x = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = gauss() * (i % 97 == 0 ? 4.0f : 1.0f); /* a few outliers, as real weights have */
    static const struct {
        uint32_t type;
        double max;
    } bound[] = {
        {GGUF_TT_Q4_0, 0.14}, {GGUF_TT_Q4_K, 0.12}, {GGUF_TT_Q5_K, 0.06},
        {GGUF_TT_Q6_K, 0.03}, {GGUF_TT_Q8_0, 0.01},
    };
    double prev_k = 1;
    for (size_t k = 0; k < sizeof(bound) / sizeof(bound[0]); k++) {
        double e = rel_err(bound[k].type, x, N);
        CHECK_MSG(e > 0 && e < bound[k].max, "%s: relative RMS error %.4f (bound %.3f)",
                  gguf_tensor_type_name(bound[k].type), e, bound[k].max);
        if (bound[k].type != GGUF_TT_Q4_0) {
            CHECK_MSG(e < prev_k, "%s error %.4f is not below the previous type's %.4f",
                      gguf_tensor_type_name(bound[k].type), e, prev_k);
            prev_k = e;
        }
    }
    /* Q4_0 without importance is the reference rounding, byte for byte */
    size_t nb = eng_row_bytes(GGUF_TT_Q4_0, N);
    uint8_t *a = malloc(nb), *b = malloc(nb);
    eng_qz_q4_0(x, a, N, NULL);
    eng_quant_q4_0(x, b, N);
    CHECK(memcmp(a, b, nb) == 0);
    free(a);
    free(b);
    /* Q8_0 rounds halves away from zero: 63.5 -> 64, -0.5 * d -> -1 */
    float h[32] = {127.0f, 63.5f, -0.5f, 0.5f, 1.5f};
    struct block_q8_0 q8;
    eng_qz_q8_0(h, &q8, 32, NULL);
    CHECK(q8.qs[0] == 127 && q8.qs[1] == 64 && q8.qs[2] == -1 && q8.qs[3] == 1 && q8.qs[4] == 2);
    /* importance: a few channels carry most activation energy; weighting must lower the
     * weighted error it optimises, for every type that uses it */
    float imp_row[256];
    for (int i = 0; i < 256; i++)
        imp_row[i] = i % 17 == 0 ? 50.0f : 0.2f + (float)(i % 5);
    static const uint32_t weighted[] = {GGUF_TT_Q4_0, GGUF_TT_Q4_K, GGUF_TT_Q5_K, GGUF_TT_Q6_K};
    for (size_t k = 0; k < sizeof(weighted) / sizeof(weighted[0]); k++) {
        double w_plain = 0, w_imp = 0;
        /* errors weighted by imp, of the unweighted and the weighted quantization */
        for (int r = 0; r < N / 256; r++) {
            double wp, wi;
            /* unweighted quantization, weighted error */
            const struct eng_type_traits *t = eng_type_traits(weighted[k]);
            uint8_t q[256 * 2];
            float y[256];
            eng_qz_row_fn_of(weighted[k])(x + r * 256, q, 256, NULL);
            t->to_float(q, y, 256);
            wp = 0;
            for (int i = 0; i < 256; i++)
                wp += imp_row[i] * (double)(x[r * 256 + i] - y[i]) * (x[r * 256 + i] - y[i]);
            eng_qz_row_fn_of(weighted[k])(x + r * 256, q, 256, imp_row);
            t->to_float(q, y, 256);
            wi = 0;
            for (int i = 0; i < 256; i++)
                wi += imp_row[i] * (double)(x[r * 256 + i] - y[i]) * (x[r * 256 + i] - y[i]);
            w_plain += wp;
            w_imp += wi;
        }
        CHECK_MSG(w_imp < w_plain, "%s: weighted error with importance %.4g, without %.4g",
                  gguf_tensor_type_name(weighted[k]), w_imp, w_plain);
    }
    /* an all-zero row quantizes to zeros without NaN */
    float z[256] = {0}, y[256];
    static const uint32_t all[] = {GGUF_TT_Q4_0, GGUF_TT_Q8_0, GGUF_TT_Q4_K, GGUF_TT_Q5_K,
                                   GGUF_TT_Q6_K};
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
        uint8_t q[256 * 2];
        eng_qz_row_fn_of(all[k])(z, q, 256, NULL);
        eng_type_traits(all[k])->to_float(q, y, 256);
        int zero = 1;
        for (int i = 0; i < 256; i++)
            zero = zero && y[i] == 0.0f;
        CHECK_MSG(zero, "%s: zero row does not come back as zeros", gguf_tensor_type_name(all[k]));
    }
    free(x);
}

int main(void)
{
    test_writer_roundtrip();
    test_writer_copy();
    test_quantizers();
    return et_finish();
}
