/* GGUF v3 writer: collects metadata key/values (of every GGUF value kind, or copied verbatim from
 * a file read by gguf.h) and tensor descriptions, then streams the file to a FILE: header,
 * metadata, tensor infos, padding to the alignment, and each tensor's data in the order the
 * tensors were added, each padded to the alignment. Tensor data never has to be held in memory
 * all at once. The alignment is general.alignment when that key is set (a power of two), else
 * GGUF's default of 32. Private to the engine. */
#ifndef ENGINE_GGUF_WRITE_H
#define ENGINE_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

struct gguf_writer;

int gguf_writer_new(struct gguf_writer **ret);
void gguf_writer_free(struct gguf_writer *w);

/* Metadata. Setting a key that is already set replaces its value in place (the key keeps its
 * position). All return 0, -ENOMEM, or -EINVAL (empty key; general.alignment not a power of
 * two). */
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_f64(struct gguf_writer *w, const char *key, double v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, int v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* An array of n numeric elements of type elem (not STRING or ARRAY), read from data in the
 * GGUF (little-endian) layout. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_value_type elem,
                        const void *data, uint64_t n);
int gguf_writer_set_str_arr(struct gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n);
/* Copies key/value kv of f as it is encoded there. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *f, int kv);
/* Removes key if set (0 either way). */
int gguf_writer_remove(struct gguf_writer *w, const char *key);

/* Adds a tensor description; its data comes later through gguf_writer_write_tensor, in the
 * order of the adds. -EINVAL for n_dims outside 1..4, a non-positive dimension, a row length
 * that is not a multiple of the type's block or an unknown type; -EEXIST for a duplicate name. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t n_dims,
                           const int64_t *ne, uint32_t type);
int gguf_writer_n_tensors(const struct gguf_writer *w);
/* Bytes of tensor i's data (without padding). */
uint64_t gguf_writer_tensor_size(const struct gguf_writer *w, int i);
/* Total bytes the whole file will take. */
uint64_t gguf_writer_file_size(const struct gguf_writer *w);

/* Writes the header, metadata and tensor infos, padded to the alignment. -EIO (errno kept in
 * *ret_errno when not NULL) on a write error. */
int gguf_writer_write_header(struct gguf_writer *w, FILE *out, int *ret_errno);
/* Writes the data of the next tensor (size bytes, which must equal its size) and its padding;
 * -EINVAL when called out of order or with the wrong size, -EIO on a write error. */
int gguf_writer_write_tensor(struct gguf_writer *w, FILE *out, const void *data, uint64_t size,
                             int *ret_errno);

#endif
