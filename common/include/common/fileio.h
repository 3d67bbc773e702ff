/* Small, strict helpers for the one-value-per-file interfaces of sysfs and procfs, shared by the
 * governor and telemetry backends. Every function returns 0 or -errno; nothing prints. */
#ifndef COMMON_FILEIO_H
#define COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Joins root and a printf-formatted relative path ("" or NULL root means "/").
 * -ENAMETOOLONG when it does not fit. */
int cmn_path(char *buf, size_t cap, const char *root, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads a whole small file into buf (NUL-terminated). Opens non-blocking so a FIFO or a stuck
 * device cannot hang the caller. -EFBIG when the file does not fit in cap-1 bytes, -ENODATA when
 * nothing could be read. */
int cmn_read_file(const char *path, char *buf, size_t cap, size_t *ret_len);

/* Reads a file holding one value; surrounding whitespace is trimmed. -EINVAL on garbage
 * (anything but one number), -ERANGE on overflow. */
int cmn_read_string(const char *path, char *buf, size_t cap);
int cmn_read_u64(const char *path, uint64_t *ret);
int cmn_read_i64(const char *path, int64_t *ret);

/* Writes value (a newline is not added) in one write() call, as sysfs expects. */
int cmn_write_string(const char *path, const char *value);

/* Strict number parsing of a whole string (leading/trailing whitespace allowed):
 * -EINVAL when it is not exactly one number, -ERANGE when it does not fit. */
int cmn_parse_i64(const char *s, int64_t *ret);
int cmn_parse_u64(const char *s, uint64_t *ret);
int cmn_parse_double(const char *s, double *ret);

/* Creates a directory and its parents (mode 0755); existing ones are fine. */
int cmn_mkdir_p(const char *path);

/* Writes data to path atomically: a temporary file beside it, fsync, rename. */
int cmn_write_file_atomic(const char *path, const void *data, size_t len);

#endif
