/* GGUF reader: maps a GGUF v2/v3 file (or parses a caller-owned memory buffer) and exposes its
 * metadata key/values and tensor descriptions. Everything read from the file -- counts, string
 * lengths, dimension products, offsets -- is validated against the buffer size before use, so a
 * malformed file yields an error naming the field and byte offset instead of a read past the map.
 * Values are returned in place (pointers into the mapping) except scalar strings and names, which
 * are copied so callers get NUL-terminated C strings. Private to the engine. */
#ifndef ENGINE_GGUF_H
#define ENGINE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS          4

/* Metadata value types, numbered as in the GGUF specification. */
enum gguf_value_type {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
};

/* Tensor element types, numbered as ggml numbers them (the values stored in GGUF files). */
enum gguf_tensor_type {
    GGUF_TT_F32 = 0,
    GGUF_TT_F16 = 1,
    GGUF_TT_Q4_0 = 2,
    GGUF_TT_Q4_1 = 3,
    GGUF_TT_Q5_0 = 6,
    GGUF_TT_Q5_1 = 7,
    GGUF_TT_Q8_0 = 8,
    GGUF_TT_Q8_1 = 9,
    GGUF_TT_Q2_K = 10,
    GGUF_TT_Q3_K = 11,
    GGUF_TT_Q4_K = 12,
    GGUF_TT_Q5_K = 13,
    GGUF_TT_Q6_K = 14,
    GGUF_TT_Q8_K = 15,
    GGUF_TT_IQ2_XXS = 16,
    GGUF_TT_IQ2_XS = 17,
    GGUF_TT_IQ3_XXS = 18,
    GGUF_TT_IQ1_S = 19,
    GGUF_TT_IQ4_NL = 20,
    GGUF_TT_IQ3_S = 21,
    GGUF_TT_IQ2_S = 22,
    GGUF_TT_IQ4_XS = 23,
    GGUF_TT_I8 = 24,
    GGUF_TT_I16 = 25,
    GGUF_TT_I32 = 26,
    GGUF_TT_I64 = 27,
    GGUF_TT_F64 = 28,
    GGUF_TT_IQ1_M = 29,
    GGUF_TT_BF16 = 30,
    GGUF_TT_COUNT = 40
};

struct gguf_file;

/* A tensor as described by the file. data points into the mapping; size is its byte size. */
struct gguf_tensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* elements per dimension, ne[0] fastest; unused dims are 1 */
    uint32_t type;             /* enum gguf_tensor_type */
    uint64_t offset;           /* from the start of the data section */
    uint64_t size;             /* bytes */
    const void *data;
};

/* An array value. Elements of numeric arrays may be unaligned in the file: read them with
 * gguf_arr_int / gguf_arr_float, and strings with gguf_arr_str. */
struct gguf_arr {
    enum gguf_value_type type;
    uint64_t n;
    const void *data; /* first element (numeric arrays); NULL for string arrays */
    int kv;           /* index of the key/value holding it */
};

/* Opens and validates path (mapped read-only). On error returns -errno (-EINVAL for malformed
 * content) and writes "what and where" into err. */
int gguf_open(const char *path, struct gguf_file **ret, char *err, size_t err_len);

/* Same over a buffer the caller keeps alive until gguf_close. */
int gguf_open_memory(const void *data, size_t size, struct gguf_file **ret, char *err,
                     size_t err_len);

void gguf_close(struct gguf_file *f);

uint32_t gguf_version(const struct gguf_file *f);
size_t gguf_alignment(const struct gguf_file *f);
size_t gguf_file_size(const struct gguf_file *f);
/* Start of the mapping (or caller buffer) and of the tensor data section. */
const void *gguf_base(const struct gguf_file *f);
size_t gguf_data_offset(const struct gguf_file *f);

/* Human-readable names; "?" for values outside the tables. */
const char *gguf_value_type_name(uint32_t type);
const char *gguf_tensor_type_name(uint32_t type);
/* Block geometry of a tensor type; 0 when the type is unknown. */
uint32_t gguf_type_block_size(uint32_t type);
uint32_t gguf_type_block_bytes(uint32_t type);

/* ---- metadata ---- */
int gguf_n_kv(const struct gguf_file *f);
/* Index of key, or -ENOENT. */
int gguf_find_key(const struct gguf_file *f, const char *key);
const char *gguf_kv_key(const struct gguf_file *f, int kv);
enum gguf_value_type gguf_kv_type(const struct gguf_file *f, int kv);
/* The value of key/value kv exactly as the file encodes it (after the type tag: a scalar, a
 * length-prefixed string, or an array's element type, count and elements), so a writer can copy
 * it without decoding. -ENOENT for an index out of range. */
int gguf_kv_raw(const struct gguf_file *f, int kv, const void **ret_value, size_t *ret_len);

/* Typed getters by key: 0, -ENOENT when the key is absent, -EINVAL when the stored type does not
 * convert (integers convert between widths when the value fits, else -ERANGE; floats accept
 * FLOAT32 and FLOAT64). */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *ret);
int gguf_get_i32(const struct gguf_file *f, const char *key, int32_t *ret);
int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *ret);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *ret);
int gguf_get_bool(const struct gguf_file *f, const char *key, int *ret);
/* NUL-terminated copy owned by f (a string holding a NUL byte is returned truncated there). */
int gguf_get_str(const struct gguf_file *f, const char *key, const char **ret);
int gguf_get_arr(const struct gguf_file *f, const char *key, struct gguf_arr *ret);

/* Element accessors; i must be < arr->n. gguf_arr_int works for integer and bool arrays,
 * gguf_arr_float for float arrays (and integers). */
int64_t gguf_arr_int(const struct gguf_arr *arr, uint64_t i);
double gguf_arr_float(const struct gguf_arr *arr, uint64_t i);
/* The i-th string of a string array (not NUL-terminated; its length in *ret_len). */
const char *gguf_arr_str(const struct gguf_file *f, const struct gguf_arr *arr, uint64_t i,
                         size_t *ret_len);

/* ---- tensors ---- */
int gguf_n_tensors(const struct gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, int i);
/* NULL when absent. */
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

#endif
