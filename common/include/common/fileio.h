/* Small, strict helpers for the one-value-per-file interfaces of sysfs and procfs, shared by the
 * governor and telemetry backends. Every function returns 0 or -errno; nothing prints. */
#ifndef COMMON_FILEIO_H
#define COMMON_FILEIO_H

#include <stddef.h>
#include <stdio.h>
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

/* Writes data to path atomically: a temporary file beside it, fsync, rename. Safe as root in a
 * directory others can see: the directory must pass cmn_check_private_dir (else -EPERM), the
 * temporary name is random and created with O_EXCL|O_NOFOLLOW, and a link at path is replaced,
 * never followed. The file gets mode 0600. */
int cmn_write_file_atomic(const char *path, const void *data, size_t len);

/* cmn_write_file_atomic for data that belongs to the directory's owner, such as the agent's
 * state in /var/lib/ember (user ember) written by a root command (`ember governor calibrate`).
 * Run as root, the directory may then belong to another user too, as long as its group and
 * others cannot write to it; the file is created as above (random name, O_EXCL|O_NOFOLLOW,
 * 0600), handed to the directory's owner and group with fchown, and renamed into place: root
 * never opens a name that user could have planted, and the user can read and replace the file.
 * Otherwise (not root, or a root-owned directory) exactly cmn_write_file_atomic. */
int cmn_write_file_for_dir_owner(const char *path, const void *data, size_t len);

/* 0 when a directory is owned by root or the effective user and writable by nobody else;
 * -EPERM when it is not, -ENOTDIR, or -errno from open/fstat. */
int cmn_check_private_dir(const char *dir);
int cmn_check_private_dir_fd(int dirfd);

/* cmn_read_file for a file whose contents are trusted (state files a root process acts on):
 * its directory must pass cmn_check_private_dir, and the file must be a regular file (not a
 * link) owned by root or the effective user and writable by nobody else; -EPERM otherwise. */
int cmn_read_file_trusted(const char *path, char *buf, size_t cap, size_t *ret_len);

/* fopen(path, "w") that never follows a link at path (O_NOFOLLOW): for output files a root
 * command writes where it was told. NULL with errno set. */
FILE *cmn_fopen_write(const char *path);

#endif
