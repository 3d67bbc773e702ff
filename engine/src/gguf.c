/* GGUF v2/v3 parser. The file is read through a bounds-checked cursor: every length or count is
 * compared with the bytes that remain before anything is allocated or dereferenced, products are
 * overflow-checked, and each failure is reported with the field name and its byte offset. String
 * arrays (vocabularies of 150k entries) are indexed once with an offset table so the i-th string
 * costs O(1); numeric arrays and tensor data are left in place in the mapping. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC         0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_ALIGNMENT (1u << 20)

struct gguf_kv {
    char *key;
    uint32_t type;         /* enum gguf_value_type */
    uint64_t value_offset; /* byte offset of the value (after the type tag) */
    uint64_t value_end;    /* byte offset just past the value (gguf_kv_raw) */
    /* scalars */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;
    char *str; /* GGUF_VT_STRING: NUL-terminated copy */
    /* arrays */
    uint32_t arr_type;
    uint64_t arr_n;
    uint64_t arr_data;     /* byte offset of the first element */
    uint64_t *str_offsets; /* string arrays: offset of each element's length prefix */
};

struct gguf_file {
    const uint8_t *base;
    size_t size;
    bool mapped;
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int n_kv;
    struct gguf_kv *kv;
    int n_tensors;
    struct gguf_tensor *tensors;
    struct name_idx *tensor_order; /* tensors sorted by name, for lookup and duplicate checks */
    struct name_idx *key_order;    /* keys sorted likewise */
};

struct name_idx {
    const char *name;
    int idx;
};

struct cursor {
    const uint8_t *p;
    size_t size;
    size_t pos;
    char *err;
    size_t err_len;
};

static const struct {
    const char *name;
    uint32_t block;
    uint32_t bytes;
} tensor_types[GGUF_TT_COUNT] = {
    [GGUF_TT_F32] = {"F32", 1, 4},
    [GGUF_TT_F16] = {"F16", 1, 2},
    [GGUF_TT_Q4_0] = {"Q4_0", 32, 18},
    [GGUF_TT_Q4_1] = {"Q4_1", 32, 20},
    [GGUF_TT_Q5_0] = {"Q5_0", 32, 22},
    [GGUF_TT_Q5_1] = {"Q5_1", 32, 24},
    [GGUF_TT_Q8_0] = {"Q8_0", 32, 34},
    [GGUF_TT_Q8_1] = {"Q8_1", 32, 36},
    [GGUF_TT_Q2_K] = {"Q2_K", 256, 84},
    [GGUF_TT_Q3_K] = {"Q3_K", 256, 110},
    [GGUF_TT_Q4_K] = {"Q4_K", 256, 144},
    [GGUF_TT_Q5_K] = {"Q5_K", 256, 176},
    [GGUF_TT_Q6_K] = {"Q6_K", 256, 210},
    [GGUF_TT_Q8_K] = {"Q8_K", 256, 292},
    [GGUF_TT_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [GGUF_TT_IQ2_XS] = {"IQ2_XS", 256, 74},
    [GGUF_TT_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [GGUF_TT_IQ1_S] = {"IQ1_S", 256, 50},
    [GGUF_TT_IQ4_NL] = {"IQ4_NL", 32, 18},
    [GGUF_TT_IQ3_S] = {"IQ3_S", 256, 110},
    [GGUF_TT_IQ2_S] = {"IQ2_S", 256, 82},
    [GGUF_TT_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GGUF_TT_I8] = {"I8", 1, 1},
    [GGUF_TT_I16] = {"I16", 1, 2},
    [GGUF_TT_I32] = {"I32", 1, 4},
    [GGUF_TT_I64] = {"I64", 1, 8},
    [GGUF_TT_F64] = {"F64", 1, 8},
    [GGUF_TT_IQ1_M] = {"IQ1_M", 256, 56},
    [GGUF_TT_BF16] = {"BF16", 1, 2},
};

static const struct {
    const char *name;
    uint32_t size; /* bytes of one scalar; 0 for string/array */
} value_types[GGUF_VT_COUNT] = {
    [GGUF_VT_UINT8] = {"uint8", 1},     [GGUF_VT_INT8] = {"int8", 1},
    [GGUF_VT_UINT16] = {"uint16", 2},   [GGUF_VT_INT16] = {"int16", 2},
    [GGUF_VT_UINT32] = {"uint32", 4},   [GGUF_VT_INT32] = {"int32", 4},
    [GGUF_VT_FLOAT32] = {"float32", 4}, [GGUF_VT_BOOL] = {"bool", 1},
    [GGUF_VT_STRING] = {"string", 0},   [GGUF_VT_ARRAY] = {"array", 0},
    [GGUF_VT_UINT64] = {"uint64", 8},   [GGUF_VT_INT64] = {"int64", 8},
    [GGUF_VT_FLOAT64] = {"float64", 8},
};

const char *gguf_value_type_name(uint32_t type)
{
    return type < GGUF_VT_COUNT ? value_types[type].name : "?";
}

const char *gguf_tensor_type_name(uint32_t type)
{
    return type < GGUF_TT_COUNT && tensor_types[type].name ? tensor_types[type].name : "?";
}

uint32_t gguf_type_block_size(uint32_t type)
{
    return type < GGUF_TT_COUNT ? tensor_types[type].block : 0;
}

uint32_t gguf_type_block_bytes(uint32_t type)
{
    return type < GGUF_TT_COUNT ? tensor_types[type].bytes : 0;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct cursor *c, size_t at,
                                                         const char *fmt, ...)
{
    if (c->err && c->err_len) {
        int n = snprintf(c->err, c->err_len, "gguf: byte %zu: ", at);
        if (n >= 0 && (size_t)n < c->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static int need(struct cursor *c, uint64_t n, const char *what)
{
    if (n > c->size - c->pos)
        return fail_at(c, c->pos, "%s: needs %" PRIu64 " bytes, only %zu left (truncated file)",
                       what, n, c->size - c->pos);
    return 0;
}

static int read_u32(struct cursor *c, uint32_t *ret, const char *what)
{
    int r = need(c, 4, what);
    if (r)
        return r;
    memcpy(ret, c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int read_u64(struct cursor *c, uint64_t *ret, const char *what)
{
    int r = need(c, 8, what);
    if (r)
        return r;
    memcpy(ret, c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* Reads a length-prefixed string; leaves *ret_off at its first byte. */
static int read_str(struct cursor *c, uint64_t *ret_off, uint64_t *ret_len, const char *what)
{
    size_t at = c->pos;
    uint64_t len;
    int r = read_u64(c, &len, what);
    if (r)
        return r;
    if (len > c->size - c->pos)
        return fail_at(c, at, "%s: string length %" PRIu64 " exceeds the %zu bytes left", what, len,
                       c->size - c->pos);
    *ret_off = c->pos;
    *ret_len = len;
    c->pos += (size_t)len;
    return 0;
}

static char *dup_bytes(const uint8_t *p, uint64_t len)
{
    char *s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    memcpy(s, p, (size_t)len);
    s[len] = '\0';
    return s;
}

static void scalar_load(const uint8_t *p, uint32_t type, struct gguf_kv *kv)
{
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    float f32;
    double f64;
    switch (type) {
    case GGUF_VT_UINT8:
    case GGUF_VT_BOOL:
        memcpy(&u8, p, 1);
        kv->num.u = u8;
        break;
    case GGUF_VT_INT8:
        memcpy(&i8, p, 1);
        kv->num.i = i8; // NOLINT(bugprone-signed-char-misuse): a signed GGUF INT8
        break;
    case GGUF_VT_UINT16:
        memcpy(&u16, p, 2);
        kv->num.u = u16;
        break;
    case GGUF_VT_INT16:
        memcpy(&i16, p, 2);
        kv->num.i = i16;
        break;
    case GGUF_VT_UINT32:
        memcpy(&u32, p, 4);
        kv->num.u = u32;
        break;
    case GGUF_VT_INT32:
        memcpy(&i32, p, 4);
        kv->num.i = i32;
        break;
    case GGUF_VT_UINT64:
        memcpy(&kv->num.u, p, 8);
        break;
    case GGUF_VT_INT64:
        memcpy(&kv->num.i, p, 8);
        break;
    case GGUF_VT_FLOAT32:
        memcpy(&f32, p, 4);
        kv->num.f = f32;
        break;
    case GGUF_VT_FLOAT64:
        memcpy(&f64, p, 8);
        kv->num.f = f64;
        break;
    default:
        break;
    }
}

static int parse_kv_value(struct cursor *c, struct gguf_kv *kv, int idx, uint64_t koff,
                          uint64_t klen);

static int parse_kv(struct cursor *c, struct gguf_kv *kv, int idx)
{
    char what[96];
    uint64_t koff = 0, klen = 0;
    snprintf(what, sizeof(what), "metadata[%d].key", idx);
    int r = read_str(c, &koff, &klen, what);
    if (r)
        return r;
    r = parse_kv_value(c, kv, idx, koff, klen);
    kv->value_end = c->pos;
    return r;
}

static int parse_kv_value(struct cursor *c, struct gguf_kv *kv, int idx, uint64_t koff,
                          uint64_t klen)
{
    char what[96];
    int r;
    snprintf(what, sizeof(what), "metadata[%d].key", idx);
    if (klen == 0)
        return fail_at(c, (size_t)koff - 8, "%s: empty key", what);
    kv->key = dup_bytes(c->p + koff, klen);
    if (!kv->key)
        return -ENOMEM;
    /* Name the field by its key from here on. */
    snprintf(what, sizeof(what), "metadata '%.60s'", kv->key);
    size_t type_at = c->pos;
    r = read_u32(c, &kv->type, what);
    if (r)
        return r;
    if (kv->type >= GGUF_VT_COUNT)
        return fail_at(c, type_at, "%s: unknown value type %" PRIu32, what, kv->type);
    kv->value_offset = c->pos;
    if (kv->type == GGUF_VT_STRING) {
        uint64_t soff = 0, slen = 0;
        r = read_str(c, &soff, &slen, what);
        if (r)
            return r;
        kv->str = dup_bytes(c->p + soff, slen);
        return kv->str ? 0 : -ENOMEM;
    }
    if (kv->type != GGUF_VT_ARRAY) {
        uint32_t sz = value_types[kv->type].size;
        r = need(c, sz, what);
        if (r)
            return r;
        scalar_load(c->p + c->pos, kv->type, kv);
        c->pos += sz;
        return 0;
    }
    size_t at = c->pos;
    r = read_u32(c, &kv->arr_type, what);
    if (r)
        return r;
    if (kv->arr_type >= GGUF_VT_COUNT)
        return fail_at(c, at, "%s: unknown array element type %" PRIu32, what, kv->arr_type);
    if (kv->arr_type == GGUF_VT_ARRAY)
        return fail_at(c, at, "%s: nested arrays are not supported", what);
    at = c->pos;
    r = read_u64(c, &kv->arr_n, what);
    if (r)
        return r;
    kv->arr_data = c->pos;
    if (kv->arr_type == GGUF_VT_STRING) {
        /* Each element takes at least its 8-byte length prefix. */
        if (kv->arr_n > (c->size - c->pos) / 8)
            return fail_at(c, at,
                           "%s: array count %" PRIu64 " of strings exceeds the %zu bytes left",
                           what, kv->arr_n, c->size - c->pos);
        kv->str_offsets = malloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof(uint64_t));
        if (!kv->str_offsets)
            return -ENOMEM;
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            uint64_t soff = 0, slen = 0;
            kv->str_offsets[i] = c->pos;
            char ewhat[128];
            snprintf(ewhat, sizeof(ewhat), "%s[%" PRIu64 "]", what, i);
            r = read_str(c, &soff, &slen, ewhat);
            if (r)
                return r;
        }
        return 0;
    }
    uint32_t esz = value_types[kv->arr_type].size;
    if (kv->arr_n > (c->size - c->pos) / esz)
        return fail_at(c, at,
                       "%s: array count %" PRIu64 " x %" PRIu32 " bytes exceeds the %zu "
                       "bytes left",
                       what, kv->arr_n, esz, c->size - c->pos);
    c->pos += (size_t)(kv->arr_n * esz);
    return 0;
}

static int cmp_name_idx(const void *a, const void *b)
{
    const struct name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Binary search in a sorted name index; -1 when absent. */
static int find_name(const struct name_idx *v, int n, const char *name)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, v[mid].name);
        if (c == 0)
            return v[mid].idx;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static int parse_tensor(struct cursor *c, struct gguf_tensor *t, int idx)
{
    char what[128];
    uint64_t noff = 0, nlen = 0;
    snprintf(what, sizeof(what), "tensor[%d].name", idx);
    int r = read_str(c, &noff, &nlen, what);
    if (r)
        return r;
    if (nlen == 0 || nlen > 256)
        return fail_at(c, (size_t)noff - 8, "%s: name length %" PRIu64 " (must be 1..256)", what,
                       nlen);
    t->name = dup_bytes(c->p + noff, nlen);
    if (!t->name)
        return -ENOMEM;
    snprintf(what, sizeof(what), "tensor '%.80s'", t->name);
    size_t at = c->pos;
    r = read_u32(c, &t->n_dims, what);
    if (r)
        return r;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return fail_at(c, at, "%s: n_dims %" PRIu32 " (must be 1..%d)", what, t->n_dims,
                       GGUF_MAX_DIMS);
    uint64_t nelem = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        at = c->pos;
        r = read_u64(c, &ne, what);
        if (r)
            return r;
        if (ne > (uint64_t)INT64_MAX)
            return fail_at(c, at, "%s: ne[%" PRIu32 "] = %" PRIu64 " is too large", what, d, ne);
        if (ne != 0 && nelem > (uint64_t)INT64_MAX / ne)
            return fail_at(c, at, "%s: element count overflows at ne[%" PRIu32 "] = %" PRIu64, what,
                           d, ne);
        nelem *= ne;
        t->ne[d] = (int64_t)ne;
    }
    at = c->pos;
    r = read_u32(c, &t->type, what);
    if (r)
        return r;
    uint32_t blk = gguf_type_block_size(t->type);
    if (blk == 0)
        return fail_at(c, at, "%s: unknown tensor type %" PRIu32, what, t->type);
    if ((uint64_t)t->ne[0] % blk != 0)
        return fail_at(c, at, "%s: ne[0] = %" PRId64 " is not a multiple of the %s block size %u",
                       what, t->ne[0], gguf_tensor_type_name(t->type), blk);
    uint64_t nblocks = nelem / blk, bytes = gguf_type_block_bytes(t->type);
    if (nblocks > UINT64_MAX / bytes)
        return fail_at(c, at, "%s: byte size overflows", what);
    t->size = nblocks * bytes;
    at = c->pos;
    r = read_u64(c, &t->offset, what);
    if (r)
        return r;
    return 0;
}

static int parse(struct gguf_file *f, struct cursor *c)
{
    uint32_t magic;
    int r = read_u32(c, &magic, "header.magic");
    if (r)
        return r;
    if (magic != GGUF_MAGIC)
        return fail_at(c, 0, "header.magic: 0x%08" PRIx32 " is not \"GGUF\"", magic);
    r = read_u32(c, &f->version, "header.version");
    if (r)
        return r;
    if (f->version != 2 && f->version != 3)
        return fail_at(c, 4,
                       "header.version: %" PRIu32 " is not supported (2 or 3 little-endian only)",
                       f->version);
    uint64_t n_tensors, n_kv;
    if ((r = read_u64(c, &n_tensors, "header.n_tensors")) ||
        (r = read_u64(c, &n_kv, "header.n_kv")))
        return r;
    /* A key/value takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes, a tensor info
     * at least 8 + 1 + 4 + 8 + 4 + 8; larger counts cannot fit in what is left. */
    if (n_kv > (c->size - c->pos) / 14)
        return fail_at(c, 16, "header.n_kv: %" PRIu64 " cannot fit in a %zu-byte file", n_kv,
                       c->size);
    if (n_tensors > (c->size - c->pos) / 33)
        return fail_at(c, 8, "header.n_tensors: %" PRIu64 " cannot fit in a %zu-byte file",
                       n_tensors, c->size);
    f->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof(*f->kv));
    if (!f->kv)
        return -ENOMEM;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        r = parse_kv(c, &f->kv[i], (int)i);
        f->n_kv = (int)i + 1; /* so gguf_close frees a partially parsed entry */
        if (r)
            return r;
        if (strcmp(f->kv[i].key, "general.alignment") == 0) {
            struct gguf_kv *kv = &f->kv[i];
            if (kv->type != GGUF_VT_UINT32)
                return fail_at(c, (size_t)kv->value_offset,
                               "general.alignment: type %s (must be uint32)",
                               gguf_value_type_name(kv->type));
            if (kv->num.u == 0 || (kv->num.u & (kv->num.u - 1)) || kv->num.u > GGUF_MAX_ALIGNMENT)
                return fail_at(c, (size_t)kv->value_offset,
                               "general.alignment: %" PRIu64 " is not a power of two <= %u",
                               kv->num.u, GGUF_MAX_ALIGNMENT);
            f->alignment = (size_t)kv->num.u;
        }
    }
    f->key_order = calloc(n_kv ? (size_t)n_kv : 1, sizeof(*f->key_order));
    if (!f->key_order)
        return -ENOMEM;
    for (int i = 0; i < f->n_kv; i++)
        f->key_order[i] = (struct name_idx){f->kv[i].key, i};
    qsort(f->key_order, (size_t)f->n_kv, sizeof(*f->key_order), cmp_name_idx);
    for (int i = 1; i < f->n_kv; i++)
        if (strcmp(f->key_order[i - 1].name, f->key_order[i].name) == 0)
            return fail_at(c, (size_t)f->kv[f->key_order[i].idx].value_offset,
                           "metadata '%.60s': duplicate key", f->key_order[i].name);
    f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*f->tensors));
    f->tensor_order = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*f->tensor_order));
    if (!f->tensors || !f->tensor_order)
        return -ENOMEM;
    /* start of each tensor info, for error offsets */
    size_t *tinfo_at = malloc((n_tensors ? (size_t)n_tensors : 1) * sizeof(size_t));
    if (!tinfo_at)
        return -ENOMEM;
    for (uint64_t i = 0; i < n_tensors; i++) {
        tinfo_at[i] = c->pos;
        r = parse_tensor(c, &f->tensors[i], (int)i);
        f->n_tensors = (int)i + 1;
        if (r)
            goto out;
        f->tensor_order[i] = (struct name_idx){f->tensors[i].name, (int)i};
    }
    /* The data section starts at the next multiple of the alignment. */
    size_t data = c->pos + (f->alignment - c->pos % f->alignment) % f->alignment;
    if (data > c->size && n_tensors > 0) {
        r = fail_at(c, c->pos, "data section: starts at %zu, past the end of the %zu-byte file",
                    data, c->size);
        goto out;
    }
    f->data_offset = data <= c->size ? data : c->size;
    size_t data_len = c->size - f->data_offset;
    for (int i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment) {
            r = fail_at(c, tinfo_at[i],
                        "tensor '%.80s': offset %" PRIu64 " is not a multiple of the alignment %zu",
                        t->name, t->offset, f->alignment);
            goto out;
        }
        if (t->offset > data_len || t->size > data_len - t->offset) {
            r = fail_at(c, tinfo_at[i],
                        "tensor '%.80s': data [%" PRIu64 ", +%" PRIu64
                        ") lies past the end of the file (data section holds %zu bytes)",
                        t->name, t->offset, t->size, data_len);
            goto out;
        }
        t->data = f->base + f->data_offset + t->offset;
    }
    qsort(f->tensor_order, (size_t)f->n_tensors, sizeof(*f->tensor_order), cmp_name_idx);
    for (int i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensor_order[i - 1].name, f->tensor_order[i].name) == 0) {
            r = fail_at(c, tinfo_at[f->tensor_order[i].idx], "tensor '%.80s': duplicate name",
                        f->tensor_order[i].name);
            goto out;
        }
    }
    r = 0;
out:
    free(tinfo_at);
    return r;
}

int gguf_open_memory(const void *data, size_t size, struct gguf_file **ret, char *err,
                     size_t err_len)
{
    *ret = NULL;
    if (err && err_len)
        err[0] = '\0';
    struct gguf_file *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->base = data;
    f->size = size;
    struct cursor c = {.p = data, .size = size, .err = err, .err_len = err_len};
    int r = parse(f, &c);
    if (r) {
        if (r == -ENOMEM && err && err_len)
            snprintf(err, err_len, "gguf: out of memory at byte %zu", c.pos);
        gguf_close(f);
        return r;
    }
    *ret = f;
    return 0;
}

int gguf_open(const char *path, struct gguf_file **ret, char *err, size_t err_len)
{
    *ret = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_len, "gguf: %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, err_len, "gguf: %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 24) {
        snprintf(err, err_len, "gguf: %s: %s", path,
                 S_ISREG(st.st_mode) ? "file too small for a GGUF header (24 bytes)"
                                     : "not a regular file");
        close(fd);
        return -EINVAL;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(err, err_len, "gguf: %s: mmap: %s", path, strerror(e));
        return -e;
    }
    char inner[512] = "";
    int r = gguf_open_memory(map, size, ret, inner, sizeof(inner));
    if (r) {
        snprintf(err, err_len, "%s: %s", path, inner);
        munmap(map, size);
        return r;
    }
    (*ret)->mapped = true;
    return 0;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].str);
        free(f->kv[i].str_offsets);
    }
    free(f->kv);
    for (int i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->tensor_order);
    free(f->key_order);
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f);
}

uint32_t gguf_version(const struct gguf_file *f)
{
    return f->version;
}

size_t gguf_alignment(const struct gguf_file *f)
{
    return f->alignment;
}

size_t gguf_file_size(const struct gguf_file *f)
{
    return f->size;
}

const void *gguf_base(const struct gguf_file *f)
{
    return f->base;
}

size_t gguf_data_offset(const struct gguf_file *f)
{
    return f->data_offset;
}

int gguf_n_kv(const struct gguf_file *f)
{
    return f->n_kv;
}

int gguf_find_key(const struct gguf_file *f, const char *key)
{
    int i = f->key_order ? find_name(f->key_order, f->n_kv, key) : -1;
    return i >= 0 ? i : -ENOENT;
}

const char *gguf_kv_key(const struct gguf_file *f, int kv)
{
    return kv >= 0 && kv < f->n_kv ? f->kv[kv].key : NULL;
}

int gguf_kv_raw(const struct gguf_file *f, int kv, const void **ret_value, size_t *ret_len)
{
    if (kv < 0 || kv >= f->n_kv)
        return -ENOENT;
    *ret_value = f->base + f->kv[kv].value_offset;
    *ret_len = (size_t)(f->kv[kv].value_end - f->kv[kv].value_offset);
    return 0;
}

enum gguf_value_type gguf_kv_type(const struct gguf_file *f, int kv)
{
    return kv >= 0 && kv < f->n_kv ? (enum gguf_value_type)f->kv[kv].type : GGUF_VT_COUNT;
}

static bool is_signed(uint32_t t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

static bool is_unsigned(uint32_t t)
{
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 ||
           t == GGUF_VT_UINT64 || t == GGUF_VT_BOOL;
}

/* Integer value of kv within [lo, hi]. */
static int get_int(const struct gguf_file *f, const char *key, int64_t lo, uint64_t hi,
                   int64_t *ret_i, uint64_t *ret_u)
{
    int k = gguf_find_key(f, key);
    if (k < 0)
        return k;
    const struct gguf_kv *kv = &f->kv[k];
    if (is_unsigned(kv->type) && kv->type != GGUF_VT_BOOL) {
        if (kv->num.u > hi)
            return -ERANGE;
        *ret_u = kv->num.u;
        *ret_i = (int64_t)kv->num.u;
        return 0;
    }
    if (is_signed(kv->type)) {
        if (kv->num.i < lo || (kv->num.i > 0 && (uint64_t)kv->num.i > hi))
            return -ERANGE;
        *ret_i = kv->num.i;
        *ret_u = (uint64_t)kv->num.i;
        return 0;
    }
    return -EINVAL;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *ret)
{
    int64_t i;
    uint64_t u;
    int r = get_int(f, key, 0, UINT32_MAX, &i, &u);
    if (!r)
        *ret = (uint32_t)u;
    return r;
}

int gguf_get_i32(const struct gguf_file *f, const char *key, int32_t *ret)
{
    int64_t i;
    uint64_t u;
    int r = get_int(f, key, INT32_MIN, INT32_MAX, &i, &u);
    if (!r)
        *ret = (int32_t)i;
    return r;
}

int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *ret)
{
    int64_t i;
    uint64_t u;
    int r = get_int(f, key, 0, UINT64_MAX, &i, &u);
    if (!r)
        *ret = u;
    return r;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *ret)
{
    int k = gguf_find_key(f, key);
    if (k < 0)
        return k;
    const struct gguf_kv *kv = &f->kv[k];
    if (kv->type == GGUF_VT_FLOAT32 || kv->type == GGUF_VT_FLOAT64)
        *ret = (float)kv->num.f;
    else if (is_signed(kv->type))
        *ret = (float)kv->num.i;
    else if (is_unsigned(kv->type) && kv->type != GGUF_VT_BOOL)
        *ret = (float)kv->num.u;
    else
        return -EINVAL;
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, int *ret)
{
    int k = gguf_find_key(f, key);
    if (k < 0)
        return k;
    if (f->kv[k].type != GGUF_VT_BOOL)
        return -EINVAL;
    *ret = f->kv[k].num.u != 0;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, const char **ret)
{
    int k = gguf_find_key(f, key);
    if (k < 0)
        return k;
    if (f->kv[k].type != GGUF_VT_STRING)
        return -EINVAL;
    *ret = f->kv[k].str;
    return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, struct gguf_arr *ret)
{
    int k = gguf_find_key(f, key);
    if (k < 0)
        return k;
    const struct gguf_kv *kv = &f->kv[k];
    if (kv->type != GGUF_VT_ARRAY)
        return -EINVAL;
    ret->type = (enum gguf_value_type)kv->arr_type;
    ret->n = kv->arr_n;
    ret->data = kv->arr_type == GGUF_VT_STRING ? NULL : f->base + kv->arr_data;
    ret->kv = k;
    return 0;
}

int64_t gguf_arr_int(const struct gguf_arr *arr, uint64_t i)
{
    struct gguf_kv tmp = {0};
    if (!arr->data || i >= arr->n || arr->type >= GGUF_VT_COUNT || !value_types[arr->type].size)
        return 0;
    uint32_t sz = value_types[arr->type].size;
    scalar_load((const uint8_t *)arr->data + i * sz, arr->type, &tmp);
    if (arr->type == GGUF_VT_FLOAT32 || arr->type == GGUF_VT_FLOAT64) {
        /* NaN and values outside int64 would make the conversion undefined: they read as 0 */
        if (!(tmp.num.f > -9.2e18 && tmp.num.f < 9.2e18))
            return 0;
        return (int64_t)tmp.num.f;
    }
    return is_signed(arr->type) ? tmp.num.i : (int64_t)tmp.num.u;
}

double gguf_arr_float(const struct gguf_arr *arr, uint64_t i)
{
    struct gguf_kv tmp = {0};
    if (!arr->data || i >= arr->n || arr->type >= GGUF_VT_COUNT || !value_types[arr->type].size)
        return 0;
    uint32_t sz = value_types[arr->type].size;
    scalar_load((const uint8_t *)arr->data + i * sz, arr->type, &tmp);
    if (arr->type == GGUF_VT_FLOAT32 || arr->type == GGUF_VT_FLOAT64)
        return tmp.num.f;
    return is_signed(arr->type) ? (double)tmp.num.i : (double)tmp.num.u;
}

const char *gguf_arr_str(const struct gguf_file *f, const struct gguf_arr *arr, uint64_t i,
                         size_t *ret_len)
{
    if (arr->type != GGUF_VT_STRING || arr->kv < 0 || arr->kv >= f->n_kv || i >= arr->n) {
        *ret_len = 0;
        return NULL;
    }
    uint64_t off = f->kv[arr->kv].str_offsets[i], len;
    memcpy(&len, f->base + off, 8);
    *ret_len = (size_t)len;
    return (const char *)f->base + off + 8;
}

int gguf_n_tensors(const struct gguf_file *f)
{
    return f->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, int i)
{
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    int i = find_name(f->tensor_order, f->n_tensors, name);
    return i >= 0 ? &f->tensors[i] : NULL;
}
