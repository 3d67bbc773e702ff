/* The error text of the -errno convention: functions that can fail take (char *err, size_t
 * err_len) and, on failure, say there what failed and where. */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stddef.h>

/* printf into err (truncated to err_len); nothing when err is NULL or err_len is 0. */
void cmn_set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
