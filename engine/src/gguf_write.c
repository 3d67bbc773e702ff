/* GGUF v3 writer (see gguf_write.h). Metadata values are kept encoded, exactly as they will be
 * written, so a value copied from another file is carried byte for byte and the header size is
 * known before anything is written. Only little-endian hosts are supported, as by the reader. */
#include "gguf_write.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC   0x46554747u
#define GGUF_VERSION 3u

struct wkv {
    char *key;
    uint32_t type;
    uint8_t *val; /* encoded value */
    size_t len;
};

struct wtensor {
    char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t offset, size;
};

struct gguf_writer {
    struct wkv *kv;
    int n_kv, cap_kv;
    struct wtensor *t;
    int n_t, cap_t;
    size_t alignment;
    int next; /* the tensor whose data comes next */
};

int gguf_writer_new(struct gguf_writer **ret)
{
    struct gguf_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    *ret = w;
    return 0;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (int i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static int find_kv(const struct gguf_writer *w, const char *key)
{
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return i;
    return -1;
}

/* Takes ownership of val (freed on failure too). */
static int set_encoded(struct gguf_writer *w, const char *key, uint32_t type, uint8_t *val,
                       size_t len)
{
    if (!key || !*key) {
        free(val);
        return -EINVAL;
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type != GGUF_VT_UINT32 || len != 4) {
            free(val);
            return -EINVAL;
        }
        memcpy(&a, val, 4);
        if (a == 0 || (a & (a - 1)) != 0) {
            free(val);
            return -EINVAL;
        }
        w->alignment = a;
    }
    int i = find_kv(w, key);
    if (i >= 0) {
        free(w->kv[i].val);
        w->kv[i].type = type;
        w->kv[i].val = val;
        w->kv[i].len = len;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        int cap = w->cap_kv ? w->cap_kv * 2 : 32;
        struct wkv *n = realloc(w->kv, (size_t)cap * sizeof(*n));
        if (!n) {
            free(val);
            return -ENOMEM;
        }
        w->kv = n;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val);
        return -ENOMEM;
    }
    w->kv[w->n_kv++] = (struct wkv){.key = k, .type = type, .val = val, .len = len};
    return 0;
}

static int set_scalar(struct gguf_writer *w, const char *key, uint32_t type, const void *v,
                      size_t size)
{
    uint8_t *val = malloc(size);
    if (!val)
        return -ENOMEM;
    memcpy(val, v, size);
    return set_encoded(w, key, type, val, size);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, GGUF_VT_UINT32, &v, 4);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, GGUF_VT_INT32, &v, 4);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, GGUF_VT_UINT64, &v, 8);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    return set_scalar(w, key, GGUF_VT_FLOAT32, &v, 4);
}

int gguf_writer_set_f64(struct gguf_writer *w, const char *key, double v)
{
    return set_scalar(w, key, GGUF_VT_FLOAT64, &v, 8);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, int v)
{
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_VT_BOOL, &b, 1);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
    uint64_t n = strlen(v);
    uint8_t *val = malloc(8 + n);
    if (!val)
        return -ENOMEM;
    memcpy(val, &n, 8);
    memcpy(val + 8, v, n);
    return set_encoded(w, key, GGUF_VT_STRING, val, 8 + n);
}

static size_t elem_size(uint32_t t)
{
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_INT8:
    case GGUF_VT_BOOL:
        return 1;
    case GGUF_VT_UINT16:
    case GGUF_VT_INT16:
        return 2;
    case GGUF_VT_UINT32:
    case GGUF_VT_INT32:
    case GGUF_VT_FLOAT32:
        return 4;
    case GGUF_VT_UINT64:
    case GGUF_VT_INT64:
    case GGUF_VT_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_value_type elem,
                        const void *data, uint64_t n)
{
    size_t es = elem_size(elem);
    if (!es || n > (SIZE_MAX - 12) / es)
        return -EINVAL;
    uint8_t *val = malloc(12 + es * n);
    if (!val)
        return -ENOMEM;
    uint32_t t = elem;
    memcpy(val, &t, 4);
    memcpy(val + 4, &n, 8);
    if (n)
        memcpy(val + 12, data, es * n);
    return set_encoded(w, key, GGUF_VT_ARRAY, val, 12 + es * n);
}

int gguf_writer_set_str_arr(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n)
{
    size_t len = 12;
    for (uint64_t i = 0; i < n; i++)
        len += 8 + strlen(v[i]);
    uint8_t *val = malloc(len), *p = val;
    if (!val)
        return -ENOMEM;
    uint32_t t = GGUF_VT_STRING;
    memcpy(p, &t, 4);
    memcpy(p + 4, &n, 8);
    p += 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t sl = strlen(v[i]);
        memcpy(p, &sl, 8);
        memcpy(p + 8, v[i], sl);
        p += 8 + sl;
    }
    return set_encoded(w, key, GGUF_VT_ARRAY, val, len);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *f, int kv)
{
    const void *raw;
    size_t len;
    int r = gguf_kv_raw(f, kv, &raw, &len);
    if (r < 0)
        return r;
    uint8_t *val = malloc(len ? len : 1);
    if (!val)
        return -ENOMEM;
    memcpy(val, raw, len);
    return set_encoded(w, gguf_kv_key(f, kv), gguf_kv_type(f, kv), val, len);
}

int gguf_writer_remove(struct gguf_writer *w, const char *key)
{
    int i = find_kv(w, key);
    if (i < 0)
        return 0;
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - i - 1) * sizeof(w->kv[0]));
    w->n_kv--;
    if (strcmp(key, "general.alignment") == 0)
        w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return 0;
}

static uint64_t pad_to(uint64_t n, uint64_t a)
{
    return (n + a - 1) / a * a;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
                           const int64_t *ne, uint32_t type)
{
    uint32_t blck = gguf_type_block_size(type), bytes = gguf_type_block_bytes(type);
    if (!name || !*name || n_dims < 1 || n_dims > GGUF_MAX_DIMS || !blck || ne[0] % blck)
        return -EINVAL;
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || (uint64_t)ne[d] > UINT64_MAX / 2 / n)
            return -EINVAL;
        n *= (uint64_t)ne[d];
    }
    for (int i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return -EEXIST;
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? w->cap_t * 2 : 64;
        struct wtensor *nt = realloc(w->t, (size_t)cap * sizeof(*nt));
        if (!nt)
            return -ENOMEM;
        w->t = nt;
        w->cap_t = cap;
    }
    struct wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name)
        return -ENOMEM;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->size = n / blck * bytes;
    w->n_t++;
    return 0;
}

int gguf_writer_n_tensors(const struct gguf_writer *w)
{
    return w->n_t;
}

uint64_t gguf_writer_tensor_size(const struct gguf_writer *w, int i)
{
    return i >= 0 && i < w->n_t ? w->t[i].size : 0;
}

/* Lays the tensors out (offsets depend on the alignment, which a later set may change) and
 * returns the header's size before padding. */
static uint64_t layout(struct gguf_writer *w)
{
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off = pad_to(off + w->t[i].size, w->alignment);
    }
    uint64_t h = 4 + 4 + 8 + 8;
    for (int i = 0; i < w->n_kv; i++)
        h += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].len;
    for (int i = 0; i < w->n_t; i++)
        h += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    return h;
}

uint64_t gguf_writer_file_size(const struct gguf_writer *w)
{
    struct gguf_writer *mw = (struct gguf_writer *)w; /* layout only refreshes offsets */
    uint64_t h = pad_to(layout(mw), w->alignment);
    if (!w->n_t)
        return h;
    const struct wtensor *last = &w->t[w->n_t - 1];
    return h + pad_to(last->offset + last->size, w->alignment);
}

static int put(FILE *out, const void *p, size_t n, int *ret_errno)
{
    if (n && fwrite(p, 1, n, out) != n) {
        if (ret_errno)
            *ret_errno = errno ? errno : EIO;
        return -EIO;
    }
    return 0;
}

static int put_zeros(FILE *out, uint64_t n, int *ret_errno)
{
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;
        int r = put(out, zeros, k, ret_errno);
        if (r)
            return r;
        n -= k;
    }
    return 0;
}

static int put_str(FILE *out, const char *s, int *ret_errno)
{
    uint64_t n = strlen(s);
    int r = put(out, &n, 8, ret_errno);
    return r ? r : put(out, s, n, ret_errno);
}

int gguf_writer_write_header(struct gguf_writer *w, FILE *out, int *ret_errno)
{
    uint64_t h = layout(w);
    uint32_t magic = GGUF_MAGIC, version = GGUF_VERSION;
    uint64_t n_t = (uint64_t)w->n_t, n_kv = (uint64_t)w->n_kv;
    errno = 0;
    int r = put(out, &magic, 4, ret_errno);
    r = r ? r : put(out, &version, 4, ret_errno);
    r = r ? r : put(out, &n_t, 8, ret_errno);
    r = r ? r : put(out, &n_kv, 8, ret_errno);
    for (int i = 0; !r && i < w->n_kv; i++) {
        r = put_str(out, w->kv[i].key, ret_errno);
        r = r ? r : put(out, &w->kv[i].type, 4, ret_errno);
        r = r ? r : put(out, w->kv[i].val, w->kv[i].len, ret_errno);
    }
    for (int i = 0; !r && i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        r = put_str(out, t->name, ret_errno);
        r = r ? r : put(out, &t->n_dims, 4, ret_errno);
        for (uint32_t d = 0; !r && d < t->n_dims; d++)
            r = put(out, &t->ne[d], 8, ret_errno);
        r = r ? r : put(out, &t->type, 4, ret_errno);
        r = r ? r : put(out, &t->offset, 8, ret_errno);
    }
    r = r ? r : put_zeros(out, pad_to(h, w->alignment) - h, ret_errno);
    w->next = 0;
    return r;
}

int gguf_writer_write_tensor(struct gguf_writer *w, FILE *out, const void *data, uint64_t size,
                             int *ret_errno)
{
    if (w->next >= w->n_t || w->t[w->next].size != size)
        return -EINVAL;
    errno = 0;
    int r = put(out, data, (size_t)size, ret_errno);
    r = r ? r : put_zeros(out, pad_to(size, w->alignment) - size, ret_errno);
    if (!r)
        w->next++;
    return r;
}
