/* Private to the backend: the object and the table of cpufreq I/O operations that the direct
 * sysfs and the libcpupower implementations each provide. */
#ifndef GOVERNOR_BACKEND_IMPL_H
#define GOVERNOR_BACKEND_IMPL_H

#include <limits.h>

#include "governor/backend.h"

struct gov_backend;

/* The cpufreq-policy part that libcpupower can do; everything else is shared direct sysfs. */
struct backend_io {
    enum gov_backend_impl impl;
    /* Fills b->pol / b->npol (names, CPUs, hardware limits, lists). */
    int (*discover)(struct gov_backend *b, char *err, size_t err_len);
    /* Re-reads governor, scaling limits and current frequency of policy i. */
    int (*read_state)(struct gov_backend *b, size_t i, char *err, size_t err_len);
    int (*write_governor)(struct gov_backend *b, size_t i, const char *governor);
    int (*write_limit)(struct gov_backend *b, size_t i, int is_max, uint32_t khz);
    int (*write_speed)(struct gov_backend *b, size_t i, uint32_t khz);
};

struct gov_backend {
    char root[PATH_MAX];
    const struct backend_io *io;
    size_t npol;
    struct gov_hw_policy pol[GOV_HW_MAX_POLICIES];
    unsigned lib_cpu[GOV_HW_MAX_POLICIES]; /* an online CPU of the policy, for libcpupower calls */
    unsigned quirk_reported[GOV_HW_MAX_POLICIES]; /* bit per quirk, so a refresh does not repeat */
    struct gov_hw_global global;
    struct gov_events quirks;
    struct gov_sysio sysio; /* used when has_sysio */
    int has_sysio;
    size_t ndev;
    struct gov_hw_devfreq dev[GOV_HW_MAX_DEVFREQ];
    int devfreq_reported; /* quirks of the devfreq scan were reported (once, at open) */
};

enum {
    QUIRK_NO_MIN = 1u << 0,
    QUIRK_NO_MAX = 1u << 1,
    QUIRK_BAD_CUR = 1u << 2,
    QUIRK_NO_POLICY = 1u << 3,
};

extern const struct backend_io gov_backend_io_sysfs;
extern const struct backend_io gov_backend_io_cpupower;

/* Writes one attribute: through the sysio when the backend has one, else directly. */
int backend_write(const struct gov_backend *b, const char *path, const char *value);

/* Shared direct-sysfs helpers (backend.c). */
int backend_policy_file(const struct gov_backend *b, size_t i, const char *file, char *buf,
                        size_t cap);
/* Reads an optional kHz file: 0 with *ret set; -ENOENT absent; -EINVAL garbage (err names it). */
int backend_read_khz_file(const char *path, uint32_t *ret, char *err, size_t err_len);
/* The optional per-policy files that only direct sysfs offers (setspeed, EPP, boost, bios). */
int backend_read_policy_extras(struct gov_backend *b, size_t i, char *err, size_t err_len);
/* backend_devfreq.c: finds the memory-controller devfreq devices (open) or re-reads their
 * limits (refresh). Never fails the backend: a broken device is dropped with a quirk. */
void backend_scan_devfreq(struct gov_backend *b);
void backend_refresh_devfreq(struct gov_backend *b);
/* Writes one attribute and reads it back as a string (backend.c). */
int backend_write_verify(const struct gov_backend *b, const char *path, const char *value,
                         struct gov_events *ev);
void backend_set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
