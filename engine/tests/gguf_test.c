/* GGUF reader tests: a file built in memory with every metadata type and a few tensors is read
 * back exactly; malformed variants (truncated at every byte, huge counts, offsets past EOF,
 * unknown types, misaligned offsets, nested arrays, duplicate keys) are rejected with an error
 * naming the field. The shared stories260K model is opened from disk as a real-file check. */
#include "ember_test.h"
#include "gguf.h"
#include "gguf_writer.h"

#include <errno.h>
#include <stdint.h>

static void put_key(struct buf *b, const char *k, uint32_t type)
{
    put_str(b, k);
    put_u32(b, type);
}

static void pad_to(struct buf *b, size_t align)
{
    static const uint8_t z[64];
    while (b->len % align)
        put(b, z, 1);
}

/* Offsets of interesting fields, recorded while building, for the corruption cases. */
struct layout {
    size_t n_tensors_at, n_kv_at, str_len_at, arr_count_at, strarr_count_at, tensor_type_at,
        tensor_off_at, tensor_ne_at, data_at;
};

enum { N_KV = 17 };

static struct buf build(struct layout *L, uint32_t version)
{
    struct buf b = {0};
    put_u32(&b, 0x46554747u);
    put_u32(&b, version);
    L->n_tensors_at = b.len;
    put_u64(&b, 2);
    L->n_kv_at = b.len;
    put_u64(&b, N_KV);

    put_key(&b, "general.architecture", GGUF_VT_STRING);
    L->str_len_at = b.len;
    put_str(&b, "llama");
    put_key(&b, "general.alignment", GGUF_VT_UINT32);
    put_u32(&b, 64);
    uint8_t u8 = 200;
    put_key(&b, "t.u8", GGUF_VT_UINT8);
    put(&b, &u8, 1);
    int8_t i8 = -100;
    put_key(&b, "t.i8", GGUF_VT_INT8);
    put(&b, &i8, 1);
    uint16_t u16 = 60000;
    put_key(&b, "t.u16", GGUF_VT_UINT16);
    put(&b, &u16, 2);
    int16_t i16 = -30000;
    put_key(&b, "t.i16", GGUF_VT_INT16);
    put(&b, &i16, 2);
    put_key(&b, "t.u32", GGUF_VT_UINT32);
    put_u32(&b, 4000000000u);
    int32_t i32 = -2000000000;
    put_key(&b, "t.i32", GGUF_VT_INT32);
    put(&b, &i32, 4);
    float f32 = 1e-5f;
    put_key(&b, "t.f32", GGUF_VT_FLOAT32);
    put(&b, &f32, 4);
    uint8_t bl = 1;
    put_key(&b, "t.bool", GGUF_VT_BOOL);
    put(&b, &bl, 1);
    put_key(&b, "t.u64", GGUF_VT_UINT64);
    put_u64(&b, 1ull << 40);
    int64_t i64 = -(1ll << 40);
    put_key(&b, "t.i64", GGUF_VT_INT64);
    put(&b, &i64, 8);
    double f64 = 10000.5;
    put_key(&b, "t.f64", GGUF_VT_FLOAT64);
    put(&b, &f64, 8);
    /* array of int32, deliberately left unaligned by an odd-length key */
    put_key(&b, "t.arr_i32x", GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_INT32);
    L->arr_count_at = b.len;
    put_u64(&b, 3);
    int32_t ia[3] = {7, -8, 9};
    put(&b, ia, sizeof(ia));
    put_key(&b, "t.arr_f32", GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_FLOAT32);
    put_u64(&b, 2);
    float fa[2] = {0.5f, -2.25f};
    put(&b, fa, sizeof(fa));
    put_key(&b, "t.arr_str", GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_STRING);
    L->strarr_count_at = b.len;
    put_u64(&b, 4);
    put_str(&b, "<s>");
    put_str(&b, "");
    put_str(&b, "\xe2\x96\x81the");
    put_str(&b, "z");
    put_key(&b, "t.str_empty", GGUF_VT_STRING);
    put_str(&b, "");

    /* tensors: a 4x3 F32 matrix and a 64x2 Q8_0 one */
    put_str(&b, "a.weight");
    put_u32(&b, 2);
    L->tensor_ne_at = b.len;
    put_u64(&b, 4);
    put_u64(&b, 3);
    put_u32(&b, GGUF_TT_F32);
    put_u64(&b, 0);
    put_str(&b, "b.weight");
    put_u32(&b, 2);
    put_u64(&b, 64);
    put_u64(&b, 2);
    L->tensor_type_at = b.len;
    put_u32(&b, GGUF_TT_Q8_0);
    L->tensor_off_at = b.len;
    put_u64(&b, 64);
    pad_to(&b, 64);
    L->data_at = b.len;
    for (int i = 0; i < 12; i++) {
        float v = (float)i;
        put(&b, &v, 4);
    }
    pad_to(&b, 64);
    uint8_t q[4 * 34];
    for (size_t i = 0; i < sizeof(q); i++)
        q[i] = (uint8_t)i;
    put(&b, q, sizeof(q));
    return b;
}

static void test_roundtrip(uint32_t version)
{
    struct layout L;
    struct buf b = build(&L, version);
    struct gguf_file *f = NULL;
    char err[256];
    int r = gguf_open_memory(b.p, b.len, &f, err, sizeof(err));
    CHECK_MSG(r == 0, "open: %s", err);
    if (r) {
        free(b.p);
        return;
    }
    CHECK_EQ_INT(gguf_version(f), version);
    CHECK_EQ_INT(gguf_alignment(f), 64);
    CHECK_EQ_INT(gguf_n_kv(f), N_KV);
    CHECK_EQ_INT(gguf_data_offset(f), L.data_at);
    const char *s = NULL;
    CHECK_EQ_INT(gguf_get_str(f, "general.architecture", &s), 0);
    CHECK_STR(s, "llama");
    CHECK_EQ_INT(gguf_get_str(f, "t.str_empty", &s), 0);
    CHECK_STR(s, "");
    uint32_t u32 = 0;
    CHECK_EQ_INT(gguf_get_u32(f, "t.u8", &u32), 0);
    CHECK_EQ_INT(u32, 200);
    CHECK_EQ_INT(gguf_get_u32(f, "t.u16", &u32), 0);
    CHECK_EQ_INT(u32, 60000);
    CHECK_EQ_INT(gguf_get_u32(f, "t.u32", &u32), 0);
    CHECK_EQ_INT(u32, 4000000000u);
    int32_t i32 = 0;
    CHECK_EQ_INT(gguf_get_i32(f, "t.i8", &i32), 0);
    CHECK_EQ_INT(i32, -100);
    CHECK_EQ_INT(gguf_get_i32(f, "t.i16", &i32), 0);
    CHECK_EQ_INT(i32, -30000);
    CHECK_EQ_INT(gguf_get_i32(f, "t.i32", &i32), 0);
    CHECK_EQ_INT(i32, -2000000000);
    CHECK_EQ_INT(gguf_get_i32(f, "t.u32", &i32), -ERANGE);
    CHECK_EQ_INT(gguf_get_u32(f, "t.i8", &u32), -ERANGE);
    CHECK_EQ_INT(gguf_get_u32(f, "t.u64", &u32), -ERANGE);
    uint64_t u64 = 0;
    CHECK_EQ_INT(gguf_get_u64(f, "t.u64", &u64), 0);
    CHECK_EQ_INT(u64, 1ull << 40);
    CHECK_EQ_INT(gguf_get_u64(f, "t.i64", &u64), -ERANGE);
    float fl = 0;
    CHECK_EQ_INT(gguf_get_f32(f, "t.f32", &fl), 0);
    CHECK(fl == 1e-5f);
    CHECK_EQ_INT(gguf_get_f32(f, "t.f64", &fl), 0);
    CHECK(fl == 10000.5f);
    int bv = 0;
    CHECK_EQ_INT(gguf_get_bool(f, "t.bool", &bv), 0);
    CHECK_EQ_INT(bv, 1);
    CHECK_EQ_INT(gguf_get_u32(f, "missing.key", &u32), -ENOENT);
    CHECK_EQ_INT(gguf_get_u32(f, "general.architecture", &u32), -EINVAL);
    CHECK_EQ_INT(gguf_get_str(f, "t.u8", &s), -EINVAL);
    CHECK(gguf_find_key(f, "t.arr_f32") >= 0);
    CHECK_EQ_INT(gguf_kv_type(f, gguf_find_key(f, "t.arr_f32")), GGUF_VT_ARRAY);

    struct gguf_arr a;
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_i32x", &a), 0);
    CHECK_EQ_INT(a.type, GGUF_VT_INT32);
    CHECK_EQ_INT(a.n, 3);
    CHECK_EQ_INT(gguf_arr_int(&a, 0), 7);
    CHECK_EQ_INT(gguf_arr_int(&a, 1), -8);
    CHECK_EQ_INT(gguf_arr_int(&a, 2), 9);
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_f32", &a), 0);
    CHECK(gguf_arr_float(&a, 1) == -2.25);
    CHECK_EQ_INT(gguf_get_arr(f, "t.arr_str", &a), 0);
    CHECK_EQ_INT(a.type, GGUF_VT_STRING);
    CHECK_EQ_INT(a.n, 4);
    size_t len = 99;
    const char *e = gguf_arr_str(f, &a, 0, &len);
    CHECK(e && len == 3 && memcmp(e, "<s>", 3) == 0);
    e = gguf_arr_str(f, &a, 1, &len);
    CHECK(e && len == 0);
    e = gguf_arr_str(f, &a, 2, &len);
    CHECK(e && len == 6 && memcmp(e, "\xe2\x96\x81the", 6) == 0);
    e = gguf_arr_str(f, &a, 3, &len);
    CHECK(e && len == 1 && e[0] == 'z');
    CHECK(gguf_arr_str(f, &a, 4, &len) == NULL);
    CHECK_EQ_INT(gguf_get_arr(f, "t.u8", &a), -EINVAL);

    CHECK_EQ_INT(gguf_n_tensors(f), 2);
    const struct gguf_tensor *t = gguf_find_tensor(f, "a.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->type, GGUF_TT_F32);
        CHECK_EQ_INT(t->n_dims, 2);
        CHECK_EQ_INT(t->ne[0], 4);
        CHECK_EQ_INT(t->ne[1], 3);
        CHECK_EQ_INT(t->ne[2], 1);
        CHECK_EQ_INT(t->size, 48);
        float v;
        memcpy(&v, (const uint8_t *)t->data + 5 * 4, 4);
        CHECK(v == 5.0f);
        CHECK((const uint8_t *)t->data == b.p + L.data_at);
    }
    t = gguf_find_tensor(f, "b.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->type, GGUF_TT_Q8_0);
        CHECK_EQ_INT(t->size, 4 * 34);
        CHECK(((const uint8_t *)t->data)[1] == 1);
    }
    CHECK(gguf_find_tensor(f, "c.weight") == NULL);
    CHECK(gguf_find_tensor(f, "") == NULL);
    gguf_close(f);
    free(b.p);
}

/* Opens a corrupted copy and checks it fails with an error containing want. */
static void expect_fail(const uint8_t *p, size_t len, const char *want, const char *label)
{
    struct gguf_file *f = NULL;
    char err[256] = "";
    /* a private heap copy of exactly len bytes so ASan sees any over-read */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, p, len);
    int r = gguf_open_memory(copy, len, &f, err, sizeof(err));
    CHECK_MSG(r == -EINVAL, "%s: r=%d err=%s", label, r, err);
    CHECK_MSG(f == NULL, "%s: handle returned", label);
    if (want)
        CHECK_MSG(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", label, err, want);
    CHECK_MSG(strstr(err, "byte ") != NULL, "%s: error \"%s\" names no byte offset", label, err);
    gguf_close(f);
    free(copy);
}

static void patch_u64(struct buf *b, size_t at, uint64_t v)
{
    memcpy(b->p + at, &v, 8);
}

static void patch_u32(struct buf *b, size_t at, uint32_t v)
{
    memcpy(b->p + at, &v, 4);
}

static void test_malformed(void)
{
    struct layout L;
    struct buf good = build(&L, 3);
    struct buf b = {malloc(good.len), good.len, good.len};

    /* truncated at every length short of the full tensor data */
    int truncations_ok = 1;
    for (size_t n = 0; n < good.len; n++) {
        struct gguf_file *f = NULL;
        char err[256];
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, good.p, n);
        int r = gguf_open_memory(copy, n, &f, err, sizeof(err));
        if (r != -EINVAL || f || !strstr(err, "byte ")) {
            truncations_ok = 0;
            fprintf(stderr, "truncated at %zu: r=%d err=%s\n", n, r, err);
        }
        gguf_close(f);
        free(copy);
    }
    CHECK(truncations_ok);

#define RESET() memcpy(b.p, good.p, good.len)
    RESET();
    memcpy(b.p, "GGUX", 4);
    expect_fail(b.p, b.len, "header.magic", "bad magic");
    RESET();
    patch_u32(&b, 4, 1);
    expect_fail(b.p, b.len, "header.version", "version 1");
    RESET();
    patch_u32(&b, 4, 0x03000000u); /* a big-endian file */
    expect_fail(b.p, b.len, "header.version", "big endian");
    RESET();
    patch_u64(&b, L.n_kv_at, UINT64_MAX);
    expect_fail(b.p, b.len, "header.n_kv", "huge n_kv");
    RESET();
    patch_u64(&b, L.n_tensors_at, 1ull << 60);
    expect_fail(b.p, b.len, "header.n_tensors", "huge n_tensors");
    RESET();
    patch_u64(&b, L.str_len_at, UINT64_MAX - 3);
    expect_fail(b.p, b.len, "general.architecture", "huge string length");
    RESET();
    patch_u64(&b, L.arr_count_at, UINT64_MAX / 2);
    expect_fail(b.p, b.len, "t.arr_i32x", "huge array count");
    RESET();
    patch_u64(&b, L.strarr_count_at, 1ull << 62);
    expect_fail(b.p, b.len, "t.arr_str", "huge string array count");
    RESET();
    patch_u32(&b, L.tensor_type_at, 99);
    expect_fail(b.p, b.len, "unknown tensor type", "unknown tensor type");
    RESET();
    patch_u32(&b, L.tensor_type_at, 4); /* a removed ggml type (Q4_2) */
    expect_fail(b.p, b.len, "unknown tensor type", "removed tensor type");
    RESET();
    patch_u32(&b, L.tensor_type_at, GGUF_TT_Q4_K); /* ne[0] 64 is not a multiple of 256 */
    expect_fail(b.p, b.len, "block size", "ne0 vs block");
    RESET();
    patch_u64(&b, L.tensor_off_at, 96);
    expect_fail(b.p, b.len, "alignment", "misaligned offset");
    RESET();
    patch_u64(&b, L.tensor_off_at, 1ull << 40);
    expect_fail(b.p, b.len, "past the end", "offset past EOF");
    RESET();
    patch_u64(&b, L.tensor_off_at, UINT64_MAX - 63);
    expect_fail(b.p, b.len, "past the end", "offset wraps");
    RESET();
    patch_u64(&b, L.tensor_ne_at, 1ull << 40);
    expect_fail(b.p, b.len, "past the end", "dims too large for data");
    RESET();
    patch_u64(&b, L.tensor_ne_at, 1ull << 62);
    patch_u64(&b, L.tensor_ne_at + 8, 1ull << 62);
    expect_fail(b.p, b.len, "overflows", "dim product overflow");
    RESET();
    patch_u64(&b, L.tensor_ne_at, UINT64_MAX);
    expect_fail(b.p, b.len, "too large", "negative dim");
    /* data cut short: the last tensor's bytes run past EOF */
    expect_fail(good.p, good.len - 1, "past the end", "short data");
    free(b.p);

    /* hand-built small files for the remaining cases */
    struct buf s = {0};
    put_u32(&s, 0x46554747u);
    put_u32(&s, 3);
    put_u64(&s, 0);
    put_u64(&s, 1);
    put_key(&s, "a.nested", GGUF_VT_ARRAY);
    put_u32(&s, GGUF_VT_ARRAY);
    put_u64(&s, 0);
    expect_fail(s.p, s.len, "nested", "nested array");
    s.len = 0;
    put_u32(&s, 0x46554747u);
    put_u32(&s, 3);
    put_u64(&s, 0);
    put_u64(&s, 1);
    put_key(&s, "a.bad", 13);
    put_u32(&s, 0);
    expect_fail(s.p, s.len, "unknown value type", "unknown value type");
    s.len = 0;
    put_u32(&s, 0x46554747u);
    put_u32(&s, 3);
    put_u64(&s, 0);
    put_u64(&s, 2);
    put_key(&s, "a.x", GGUF_VT_UINT32);
    put_u32(&s, 1);
    put_key(&s, "a.x", GGUF_VT_UINT32);
    put_u32(&s, 2);
    expect_fail(s.p, s.len, "duplicate key", "duplicate key");
    s.len = 0;
    put_u32(&s, 0x46554747u);
    put_u32(&s, 3);
    put_u64(&s, 0);
    put_u64(&s, 1);
    put_key(&s, "general.alignment", GGUF_VT_UINT32);
    put_u32(&s, 48);
    expect_fail(s.p, s.len, "power of two", "alignment not power of two");
    s.len = 0;
    put_u32(&s, 0x46554747u);
    put_u32(&s, 3);
    put_u64(&s, 2);
    put_u64(&s, 0);
    for (int i = 0; i < 2; i++) {
        put_str(&s, "dup");
        put_u32(&s, 1);
        put_u64(&s, 1);
        put_u32(&s, GGUF_TT_F32);
        put_u64(&s, 0);
    }
    pad_to(&s, 32);
    put_u32(&s, 0);
    expect_fail(s.p, s.len, "duplicate name", "duplicate tensor");
    s.len = 0;
    put_u32(&s, 0x46554747u);
    put_u32(&s, 3);
    put_u64(&s, 1);
    put_u64(&s, 0);
    put_str(&s, "t");
    put_u32(&s, 5);
    for (int i = 0; i < 8; i++)
        put_u64(&s, 1);
    expect_fail(s.p, s.len, "n_dims", "too many dims");
    free(s.p);

    /* an empty but valid file: no tensors, no keys */
    s = (struct buf){0};
    put_u32(&s, 0x46554747u);
    put_u32(&s, 2);
    put_u64(&s, 0);
    put_u64(&s, 0);
    struct gguf_file *f = NULL;
    char err[128];
    CHECK_EQ_INT(gguf_open_memory(s.p, s.len, &f, err, sizeof(err)), 0);
    CHECK(f && gguf_n_tensors(f) == 0 && gguf_find_tensor(f, "x") == NULL);
    gguf_close(f);
    free(s.p);
    free(good.p);
}

static void test_real_file(void)
{
    char path[1024], err[256];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", et_shared_dir());
    struct gguf_file *f = NULL;
    int r = gguf_open(path, &f, err, sizeof(err));
    CHECK_MSG(r == 0, "%s", err);
    if (r)
        return;
    const char *arch;
    CHECK_EQ_INT(gguf_get_str(f, "general.architecture", &arch), 0);
    CHECK_STR(arch, "llama");
    uint32_t n = 0;
    CHECK_EQ_INT(gguf_get_u32(f, "llama.embedding_length", &n), 0);
    CHECK_EQ_INT(n, 64);
    struct gguf_arr a;
    CHECK_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", &a), 0);
    CHECK_EQ_INT(a.n, 512);
    size_t len;
    const char *tok = gguf_arr_str(f, &a, 1, &len);
    CHECK(tok && len == 3 && memcmp(tok, "<s>", 3) == 0);
    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 512 && t->type == GGUF_TT_F32);
    gguf_close(f);

    CHECK_EQ_INT(gguf_open("/nonexistent/x.gguf", &f, err, sizeof(err)), -ENOENT);
    CHECK_CONTAINS(err, "/nonexistent/x.gguf");
}

int main(void)
{
    test_roundtrip(3);
    test_roundtrip(2);
    test_malformed();
    test_real_file();
    return et_finish();
}
