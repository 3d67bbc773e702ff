/* Leaving the machine as we found it. Before the governor's first write every original value
 * (governor, scaling limits, setspeed, EPP, per-policy and global boost, no_turbo, perf pcts,
 * the memory controller's devfreq limits) is
 * captured and written atomically to a saved-state file (default /run/ember/governor.saved).
 * Restore applies it back, only writing what differs, reading each write back; the file is
 * removed only when everything was restored, so a failed restore can be retried by `ember
 * governor restore` or the next start (which restores a file left by a crash first). Also here:
 * detection of other daemons that drive cpufreq, which would fight us. */
#ifndef GOVERNOR_SAFETY_H
#define GOVERNOR_SAFETY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "governor/backend.h"
#include "governor/event.h"

#define GOV_SAVED_DEFAULT_PATH "/run/ember/governor.saved"
#define GOV_SAVED_VERSION      1

struct gov_saved_policy {
    char name[GOV_HW_NAME_LEN]; /* "policy0" */
    char governor[GOV_HW_NAME_LEN];
    uint32_t min_khz, max_khz; /* 0 = the file was absent: not restored */
    uint32_t setspeed_khz;     /* restored only when governor is "userspace" */
    char epp[GOV_HW_NAME_LEN]; /* "" = absent */
    int boost;                 /* per-policy boost, -1 absent */
};

/* A memory controller's devfreq limits (the governor moves only these). */
struct gov_saved_devfreq {
    char name[GOV_HW_NAME_LEN]; /* "dmc" */
    uint64_t min_hz, max_hz;
};

struct gov_saved_state {
    int version;
    char root[PATH_MAX]; /* the sysfs_root the values belong to */
    int pid;             /* the process that saved them */
    uint64_t wall_ns;    /* when (CLOCK_REALTIME) */
    unsigned npol;
    struct gov_saved_policy pol[GOV_HW_MAX_POLICIES];
    int boost;        /* cpufreq/boost, -1 absent */
    int no_turbo;     /* intel_pstate/no_turbo, -1 absent */
    int min_perf_pct; /* -1 absent */
    int max_perf_pct;
    unsigned ndev; /* "devfreq" in the file; absent in files older than the memory lever */
    struct gov_saved_devfreq dev[GOV_HW_MAX_DEVFREQ];
};

/* Copies the backend's current values (refresh the backend first). */
int gov_saved_capture(const struct gov_backend *b, struct gov_saved_state *ret);

/* JSON text of a saved state (malloc'd; NULL on allocation failure) and its strict parser
 * (-EINVAL with what is wrong in err). */
char *gov_saved_to_json(const struct gov_saved_state *st);
int gov_saved_parse(const char *json, size_t len, struct gov_saved_state *ret, char *err,
                    size_t err_len);

/* Writes atomically (creating the directory); reads back (-ENOENT: no file). err names the
 * file. */
int gov_saved_write(const struct gov_saved_state *st, const char *path, char *err, size_t err_len);
int gov_saved_read(const char *path, struct gov_saved_state *ret, char *err, size_t err_len);

/* Applies a saved state through the backend: only values that differ are written, each read
 * back. Keeps going past a failure and returns the first error (-EIO for a mismatch); the number
 * of values written goes to *ret_writes (may be NULL). -EXDEV when the state belongs to another
 * sysfs_root. */
int gov_saved_apply(struct gov_backend *b, const struct gov_saved_state *st, struct gov_events *ev,
                    unsigned *ret_writes, char *err, size_t err_len);

/* Reads path, applies it, and removes the file when everything was restored. -ENOENT when there
 * is no file (nothing to do). */
int gov_saved_restore_file(struct gov_backend *b, const char *path, struct gov_events *ev,
                           unsigned *ret_writes, char *err, size_t err_len);

/* ---- conflicting daemons ---- */
struct gov_conflict {
    int pid;
    char comm[16];
    const char *why; /* static text: what it does to cpufreq */
};

/* Scans <root>/proc/<pid>/comm for tlp, auto-cpufreq, power-profiles-daemon, thermald, tuned,
 * cpufreqd (our own pid excluded). Returns the number found (also in *ret_n), at most cap kept. */
int gov_conflicts_detect(const char *root, struct gov_conflict *ret, size_t cap, size_t *ret_n);

#endif
