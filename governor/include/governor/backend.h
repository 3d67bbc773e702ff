/* The governor's hardware backend: discovers the cpufreq policies (clusters) of a machine and
 * reads or writes their knobs. Two implementations sit behind one surface: libcpupower (which
 * always opens /sys/devices/system/cpu, so it is used when sysfs_root is "/") and direct sysfs
 * under a configurable root (fake trees in tests, containers with /sys mounted elsewhere). What
 * libcpupower lacks (intel_pstate / amd-pstate limits and EPP, boost / no_turbo) is always direct
 * sysfs. Every write is read back; a value that does not stick is an event and an error code,
 * never a silent success. The value parsers are public so the fuzzer reaches them. */
#ifndef GOVERNOR_BACKEND_H
#define GOVERNOR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "governor/event.h"
#include "governor/sysio.h"

#define GOV_HW_MAX_CPUS      256
#define GOV_HW_MAX_POLICIES  64
#define GOV_HW_MAX_FREQS     64
#define GOV_HW_MAX_GOVERNORS 12
#define GOV_HW_MAX_EPP       8
#define GOV_HW_NAME_LEN      32
#define GOV_HW_MAX_DEVFREQ   4

/* Which cpufreq interface implementation to use. */
enum gov_backend_impl {
    GOV_BACKEND_AUTO = 0, /* libcpupower when sysfs_root is "/", else direct sysfs */
    GOV_BACKEND_SYSFS,
    GOV_BACKEND_LIBCPUPOWER, /* refused (-EINVAL) when sysfs_root is not "/" */
};

/* Vendor P-state drivers that have their own global directory. */
enum gov_pstate_kind {
    GOV_PSTATE_NONE = 0,
    GOV_PSTATE_INTEL, /* /sys/devices/system/cpu/intel_pstate */
    GOV_PSTATE_AMD,   /* /sys/devices/system/cpu/amd_pstate */
};

enum gov_pstate_status {
    GOV_PSTATE_STATUS_NONE = 0, /* no such directory, or no status file */
    GOV_PSTATE_STATUS_ACTIVE,
    GOV_PSTATE_STATUS_PASSIVE,
    GOV_PSTATE_STATUS_GUIDED,
    GOV_PSTATE_STATUS_OFF,
};

struct gov_backend_params {
    const char *sysfs_root; /* NULL or "" = "/" */
    enum gov_backend_impl impl;
    /* NULL: write files directly. Otherwise every write goes through it (copied). */
    const struct gov_sysio *sysio;
};

/* One cpufreq policy (a cluster of CPUs that share a clock). Values of 0 (frequencies) or -1
 * (flags) mean "the file is absent or unreadable". */
struct gov_hw_policy {
    char name[GOV_HW_NAME_LEN]; /* "policy4" */
    unsigned id;                /* the N of policyN */
    unsigned ncpus;
    uint16_t cpus[GOV_HW_MAX_CPUS]; /* related_cpus, ascending */
    char driver[GOV_HW_NAME_LEN];   /* scaling_driver */
    uint32_t cpuinfo_min_khz, cpuinfo_max_khz;
    uint32_t scaling_min_khz, scaling_max_khz;
    uint32_t cur_khz;      /* scaling_cur_freq */
    uint32_t setspeed_khz; /* scaling_setspeed when it holds a number */
    uint32_t bios_limit_khz;
    unsigned nfreqs;
    uint32_t freqs_khz[GOV_HW_MAX_FREQS]; /* scaling_available_frequencies, ascending, unique */
    char governor[GOV_HW_NAME_LEN];
    unsigned ngovernors;
    char governors[GOV_HW_MAX_GOVERNORS][GOV_HW_NAME_LEN];
    int has_setspeed;          /* scaling_setspeed exists */
    char epp[GOV_HW_NAME_LEN]; /* energy_performance_preference, "" when absent */
    unsigned nepp;
    char epp_choices[GOV_HW_MAX_EPP][GOV_HW_NAME_LEN];
    int boost; /* per-policy boost file (newer kernels): 0/1, -1 when absent */
};

/* Knobs that are not per policy. */
struct gov_hw_global {
    enum gov_pstate_kind pstate;
    enum gov_pstate_status status;
    int boost;        /* cpufreq/boost: 0/1, -1 absent */
    int no_turbo;     /* intel_pstate/no_turbo: 0/1, -1 absent */
    int min_perf_pct; /* intel_pstate/min_perf_pct, -1 absent */
    int max_perf_pct; /* intel_pstate/max_perf_pct, -1 absent */
};

/* A memory controller's devfreq device (<root>/sys/class/devfreq/NAME with "dmc" in NAME, as
 * Rockchip, Exynos and others name theirs; Documentation/ABI/testing/sysfs-class-devfreq).
 * Frequencies are in Hz as devfreq has them; 0 means the file is absent or unreadable. */
struct gov_hw_devfreq {
    char name[GOV_HW_NAME_LEN];     /* "dmc" */
    char governor[GOV_HW_NAME_LEN]; /* its own governor ("dmc_ondemand", "simple_ondemand") */
    unsigned nfreqs;
    uint64_t freqs_hz[GOV_HW_MAX_FREQS]; /* available_frequencies, ascending, unique */
    uint64_t min_hz, max_hz, cur_hz;     /* min_freq, max_freq, cur_freq */
};

struct gov_backend;

/* Discovers policies and reads every value. err names the file on a failure. -ENOENT when the
 * root has no cpufreq policies at all (no cpufreq driver: nothing can be governed). */
int gov_backend_open(const struct gov_backend_params *params, struct gov_backend **ret, char *err,
                     size_t err_len);
void gov_backend_free(struct gov_backend *b);

/* Problems found while reading that were worked around (a junk token in a frequency list, a
 * missing limit file): moved into ev once; returns how many. */
size_t gov_backend_take_quirks(struct gov_backend *b, struct gov_events *ev);

const char *gov_backend_root(const struct gov_backend *b); /* "/" or the root given */
enum gov_backend_impl gov_backend_impl_used(const struct gov_backend *b);
const char *gov_backend_impl_name(enum gov_backend_impl impl);
const char *gov_pstate_status_name(enum gov_pstate_status status);
size_t gov_backend_policy_count(const struct gov_backend *b);
const struct gov_hw_policy *gov_backend_policy(const struct gov_backend *b, size_t i);
const struct gov_hw_global *gov_backend_global(const struct gov_backend *b);

/* Memory-controller devfreq devices found at open (none on most x86 machines). A device whose
 * files are missing or garbled is left out, with a quirk event saying why. */
size_t gov_backend_devfreq_count(const struct gov_backend *b);
const struct gov_hw_devfreq *gov_backend_devfreq(const struct gov_backend *b, size_t i);

/* Re-reads the values that change (current/limits/governor/EPP/boost/devfreq limits). */
int gov_backend_refresh(struct gov_backend *b, char *err, size_t err_len);

/* Path of a knob of policy i under the root, for messages and permission checks. */
int gov_backend_policy_path(const struct gov_backend *b, size_t i, const char *file, char *buf,
                            size_t cap);
/* Whether this process may write the cpufreq knobs (root, or a writable fake tree): 1 or 0. */
int gov_backend_writable(const struct gov_backend *b, char *why, size_t why_len);

/* Writes. Each reads the value back: 0 when it stuck; -EIO plus a GOV_EVENT_WRITE_MISMATCH event
 * when it did not; -errno plus GOV_EVENT_WRITE_FAILED when the write failed; -EINVAL (and no
 * write) for a value the hardware does not offer (an unknown governor, a frequency outside
 * cpuinfo limits, an EPP string not in the available list). ev may be NULL. */
int gov_backend_set_governor(struct gov_backend *b, size_t i, const char *governor,
                             struct gov_events *ev);
/* Sets scaling_min/max_freq in the order the kernel accepts (max first when raising); 0 leaves a
 * limit alone. */
int gov_backend_set_limits(struct gov_backend *b, size_t i, uint32_t min_khz, uint32_t max_khz,
                           struct gov_events *ev);
/* scaling_setspeed (the userspace governor must be active). */
int gov_backend_set_speed(struct gov_backend *b, size_t i, uint32_t khz, struct gov_events *ev);
int gov_backend_set_epp(struct gov_backend *b, size_t i, const char *epp, struct gov_events *ev);
/* The per-policy boost file. */
int gov_backend_set_policy_boost(struct gov_backend *b, size_t i, int on, struct gov_events *ev);
/* Global turbo: cpufreq/boost where it exists, else intel_pstate/no_turbo (inverted);
 * -EOPNOTSUPP when neither exists. */
int gov_backend_set_boost(struct gov_backend *b, int on, struct gov_events *ev);
/* Raw writes of the global files (restore needs them individually). */
int gov_backend_set_global_boost_file(struct gov_backend *b, int on, struct gov_events *ev);
int gov_backend_set_no_turbo(struct gov_backend *b, int on, struct gov_events *ev);
/* intel_pstate min/max_perf_pct; -1 leaves one alone. */
int gov_backend_set_perf_pct(struct gov_backend *b, int min_pct, int max_pct,
                             struct gov_events *ev);

/* Sets a devfreq device's min_freq/max_freq (Hz, within its available frequencies; 0 leaves
 * a limit alone) in the order the kernel accepts, each read back like the cpufreq limits. Its own
 * governor keeps running inside the limits; min = max pins the clock. */
int gov_backend_set_devfreq_limits(struct gov_backend *b, size_t i, uint64_t min_hz,
                                   uint64_t max_hz, struct gov_events *ev);

/* Helpers over a policy description. */
int gov_hw_policy_has_governor(const struct gov_hw_policy *p, const char *governor);
/* The available frequency closest to khz (ties: the lower); khz itself when the list is empty
 * (setpolicy drivers take any value in the cpuinfo range). */
uint32_t gov_hw_policy_nearest_khz(const struct gov_hw_policy *p, uint32_t khz);

/* ---- parsers of sysfs values (strict; public for the fuzzer and tests) ---- */

/* "0-3,6 8-9" (ranges with commas, or space-separated like related_cpus) into ascending unique
 * CPU numbers. -EINVAL on garbage, -ERANGE when a CPU >= GOV_HW_MAX_CPUS or more than cap. */
int gov_parse_cpu_list(const char *s, uint16_t *cpus, size_t cap, size_t *ret_n);
/* A space-separated kHz list in any order into ascending unique non-zero values. Tokens that are
 * not numbers are skipped and counted in ret_bad (the caller reports them); -ERANGE when more
 * than cap values. */
int gov_parse_freq_list(const char *s, uint32_t *khz, size_t cap, size_t *ret_n, size_t *ret_bad);
/* Space-separated words (governors, EPP choices); words longer than GOV_HW_NAME_LEN-1 or beyond cap
 * are -E2BIG. */
int gov_parse_word_list(const char *s, char (*words)[GOV_HW_NAME_LEN], size_t cap, size_t *ret_n);
/* A space-separated Hz list (devfreq available_frequencies) into ascending unique non-zero
 * values; -EINVAL on a token that is not a number, -ERANGE when more than cap. */
int gov_parse_hz_list(const char *s, uint64_t *hz, size_t cap, size_t *ret_n);
/* A kHz value: a whole non-negative number below 2^32. */
int gov_parse_khz(const char *s, uint32_t *ret);

#endif
