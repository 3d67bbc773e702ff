/* The governor as the agent runs it: one object that owns the hardware backend, the sensors and
 * the controller (policy + constraints + anti-flap). Each tick reads the sensors, asks the
 * controller for targets, applies them through the backend (saving the original settings before
 * the very first write), and reports what changed. It never writes when it may not (not root,
 * or monitor_only), goes to the safe state (minimum frequency, boost off) while a sensor is lost
 * or returns garbage, restores the settings a crashed earlier run left behind when it starts, and
 * restores its own on gov_governor_restore(). Events (read-back mismatches, sensor faults,
 * conflicting daemons, restores) queue in a ring the agent drains. The object is not
 * thread-safe: tick, status and set_policy belong to one thread (the agent's loop), which hands
 * snapshots (gov_governor_status) to other threads. */
#ifndef GOVERNOR_GOVERNOR_H
#define GOVERNOR_GOVERNOR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "governor/backend.h"
#include "governor/event.h"
#include "governor/policy.h"
#include "governor/safety.h"
#include "governor/sensors.h"

struct gov_governor_params {
    const char *sysfs_root;       /* NULL/"" = "/" */
    const char *saved_path;       /* NULL/"" = GOV_SAVED_DEFAULT_PATH */
    const char *calibration_path; /* NULL/"" = none; a missing file means "not calibrated" */
    struct gov_tunables tunables; /* the policy name is tunables.policy */
    enum gov_backend_impl backend;
    bool monitor_only;       /* never write, even as root (status, tests) */
    bool skip_crash_restore; /* do not restore a saved file at start (status only reads) */
    bool adopt_saved;        /* a saved file left by an ember that has ended (an earlier
                                `ember governor set`, which leaves its settings on purpose)
                                holds the originals: keep it, restore nothing, report no crash */
    /* NULL: write sysfs and keep the saved file directly (root CLI commands). Otherwise every
       write and every saved-file operation goes through it (the agent's privileged helper). */
    const struct gov_sysio *sysio;
};

/* Defaults: root "/", the default saved path, no calibration, gov_tunables_defaults(), auto
 * backend, writes allowed. */
void gov_governor_params_defaults(struct gov_governor_params *p);

/* What one tick did. */
struct gov_tick_cluster {
    uint32_t khz;      /* applied (or, in monitor-only mode, what would be applied) */
    uint32_t prev_khz; /* before this tick */
    uint32_t cur_khz;  /* scaling_cur_freq as read this tick, 0 unknown */
    double temp_c;     /* the hottest sensor of this cluster (see gov_status_cluster) */
    unsigned reasons;  /* GOV_REASON_* */
    bool changed;
};

struct gov_tick_result {
    bool changed; /* a frequency or boost changed */
    bool boost;
    bool safe_state;
    bool monitor_only;
    int apply_error; /* first backend error this tick, 0 when all writes read back */
    double cpu_temp_c;
    double power_w;
    unsigned reasons; /* union over clusters: the active constraints */
    unsigned n_clusters;
    struct gov_tick_cluster c[GOV_MAX_CLUSTERS];
    /* The engine's thread count and the CPUs it may run on, chosen per phase by the phase-aware
     * policies: 0 = leave the engine as configured. */
    unsigned engine_threads;
    uint64_t engine_cpus; /* bit i = logical CPU i */
};

/* A snapshot for `ember governor status`, HTTP GET /v1/governor and MQTT. */
struct gov_status_cluster {
    char name[GOV_NAME_MAX]; /* "policy0" or "policy0+policy1+..." when grouped */
    unsigned n_policies;
    char cpus[128];                       /* "0-3,8-11", for people: programs read cpu_mask */
    uint64_t cpu_mask[GOV_MAX_CPUS / 64]; /* CPU n is bit n % 64 of word n / 64 */
    char driver[GOV_HW_NAME_LEN];
    char hw_governor[GOV_HW_NAME_LEN]; /* scaling_governor now */
    uint32_t cpuinfo_min_khz, cpuinfo_max_khz;
    uint32_t scaling_min_khz, scaling_max_khz, cur_khz;
    uint32_t target_khz;
    unsigned reasons;
    bool exact_freq;
    double util; /* mean over its CPUs, NaN unknown */
    /* Hottest valid zone that belongs to this cluster: per-cluster zones by their type
     * ("littlecore", "bigcore1", "cpu4-...") plus the package/SoC zones every cluster shares;
     * the package temperature when the cluster has no zone of its own. NaN when none. */
    double temp_c;
    char epp[GOV_HW_NAME_LEN]; /* energy_performance_preference now, "" when absent */
};

/* A memory controller's devfreq device (the memory lever). */
struct gov_status_memory {
    char name[GOV_HW_NAME_LEN];
    char governor[GOV_HW_NAME_LEN]; /* the board's own devfreq governor */
    uint64_t min_hz, max_hz, cur_hz;
};

struct gov_status_zone {
    char name[GOV_HW_NAME_LEN];
    char type[GOV_HW_NAME_LEN];
    bool valid;
    double temp_c;
    double passive_trip_c; /* NaN when none */
};

#define GOV_STATUS_MAX_ZONES     16
#define GOV_STATUS_MAX_CONFLICTS 8

struct gov_status {
    char policy[GOV_NAME_MAX];
    char backend[16]; /* "sysfs" | "libcpupower" */
    char sysfs_root[PATH_MAX];
    char pstate_status[16]; /* "active", "passive", "guided", "off", "none" */
    bool monitor_only;
    char monitor_reason[256];
    bool safe_state;
    char safe_reason[256];
    bool originals_saved;
    char saved_path[PATH_MAX];
    int boost; /* global boost now: 1, 0, -1 unknown */
    double cpu_temp_c, passive_trip_c, critical_trip_c, thermal_target_c, power_cap_w, power_w;
    enum gov_phase phase;
    uint64_t ticks, writes, write_errors;
    unsigned n_clusters;
    struct gov_status_cluster c[GOV_MAX_CLUSTERS];
    unsigned n_zones;
    struct gov_status_zone zones[GOV_STATUS_MAX_ZONES];
    unsigned n_conflicts;
    struct gov_conflict conflicts[GOV_STATUS_MAX_CONFLICTS];
    /* levers: what the policy asks for (NaN / "" = left to the hardware) and the devices */
    double memory_target_frac;
    char epp_target[GOV_HW_NAME_LEN];
    unsigned n_memory;
    struct gov_status_memory memory[GOV_HW_MAX_DEVFREQ];
};

struct gov_governor;

/* Opens everything, restores a saved file left by a crash (unless monitor-only), detects
 * conflicting daemons, builds the controller. Writes nothing else yet. -ENOENT when the root has
 * no cpufreq at all; -EBUSY when a saved file belongs to another live ember process; other
 * -errno with err saying what and where. */
int gov_governor_new(const struct gov_governor_params *p, struct gov_governor **ret, char *err,
                     size_t err_len);
/* Frees; does not touch the hardware (call gov_governor_restore first). NULL is fine. */
void gov_governor_free(struct gov_governor *g);

/* One step. power_w and tokens_per_s are NaN when unknown. ret may be NULL. Returns 0, or the
 * first write error (the tick still completes and an event says what). */
int gov_governor_tick(struct gov_governor *g, uint64_t now_ns, enum gov_phase phase, double power_w,
                      double tokens_per_s, struct gov_tick_result *ret);

/* How many requests wait behind the one the engine runs (gov_inputs.queued), from the next tick
 * on; 0 when none (the default). */
void gov_governor_set_queued(struct gov_governor *g, unsigned queued);

/* Switches the policy live (validated; nothing changes on error). */
int gov_governor_set_policy(struct gov_governor *g, const char *name, char *err, size_t err_len);
/* Replaces the tunables live (validated first). */
int gov_governor_set_tunables(struct gov_governor *g, const struct gov_tunables *t, char *err,
                              size_t err_len);

/* Loads a calibration curve (after `ember governor calibrate` wrote a new one) and hands it to
 * the controller; NULL or "" drops the curve. Nothing changes on error. */
int gov_governor_load_calibration(struct gov_governor *g, const char *path, char *err,
                                  size_t err_len);

/* Writes the saved originals back and removes the saved file. 0 also when nothing was saved. */
int gov_governor_restore(struct gov_governor *g, char *err, size_t err_len);

void gov_governor_status(const struct gov_governor *g, struct gov_status *ret);
/* The status as a JSON object (malloc'd, caller frees; NULL on allocation failure). */
char *gov_status_to_json(const struct gov_status *st);
/* "policy,thermal,..." for a GOV_REASON_* set. */
void gov_reasons_format(unsigned reasons, char *buf, size_t cap);

/* The queued events: drain with gov_events_pop(). */
struct gov_events *gov_governor_events(struct gov_governor *g);
/* The parts, for the CLI (calibrate) and tests. */
struct gov_backend *gov_governor_backend(struct gov_governor *g);
const struct gov_controller *gov_governor_controller(const struct gov_governor *g);
/* Saves the originals now if not yet saved. */
int gov_governor_save_originals(struct gov_governor *g, char *err, size_t err_len);
/* Pins every cluster to khz[i] (snapped to a frequency it has) with boost on or off, bypassing
 * the controller: `ember governor calibrate` steps through a ladder with it. Saves the originals
 * first; -EPERM in monitor-only mode; the first write error otherwise (events say which). */
int gov_governor_pin(struct gov_governor *g, const uint32_t *khz, unsigned n, bool boost);

#endif
