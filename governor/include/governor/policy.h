/* The governor's decision side: what a cluster looks like to a policy, the plain inputs it gets
 * each tick, the targets it returns, the ops table every policy implements, the tunables of every
 * policy and constraint (one table with ranges and docs), the controller that runs policy,
 * constraints and anti-flap logic in order, and the calibration curve (frequency -> tokens/s and
 * watts) that `balanced` and `efficiency` use and `ember governor calibrate` writes. Everything
 * here is pure: no file descriptors, no clocks read, no sysfs; the daemon and the simulator run the
 * same code. */
#ifndef GOVERNOR_POLICY_H
#define GOVERNOR_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOV_MAX_CPUS     256
#define GOV_MAX_CLUSTERS 8
#define GOV_MAX_FREQS    64
#define GOV_NAME_MAX     32

/* ---- what the engine is doing (the agent maps engine observer callbacks onto this) ---- */
enum gov_phase {
    GOV_PHASE_IDLE = 0,
    GOV_PHASE_PREFILL,
    GOV_PHASE_DECODE,
};

/* "idle", "prefill", "decode"; NULL for an unknown value. */
const char *gov_phase_name(enum gov_phase phase);

/* ---- one cpufreq policy (a set of CPUs that share a clock) as the hardware reports it ---- */
struct gov_cluster_info {
    char name[GOV_NAME_MAX]; /* "policy0", "policy4", ... */
    unsigned n_cpus;
    unsigned cpus[GOV_MAX_CPUS]; /* CPU numbers (related_cpus); indexes into gov_inputs.util */
    uint32_t cpuinfo_min_khz;    /* hardware floor */
    uint32_t cpuinfo_max_khz;    /* hardware ceiling, boost included */
    /* Highest frequency reachable with boost off (acpi-cpufreq/intel_pstate base or "nominal");
     * 0 = unknown or no boost: then cpuinfo_max_khz. */
    uint32_t base_khz;
    /* Frequencies the hardware can run at, ascending and distinct. n_freqs == 0 means a continuous
     * range (intel_pstate/amd-pstate): any value in [cpuinfo_min, cpuinfo_max] is a valid target.
     */
    unsigned n_freqs;
    uint32_t freqs_khz[GOV_MAX_FREQS];
    bool boost_available; /* cpufreq/boost or intel_pstate/no_turbo can be written */
    /* true: the backend can set one exact frequency (userspace governor, scaling_setspeed);
     * false: it can only move scaling_min/max (or *_perf_pct) limits, and targets become the
     * upper limit with the hardware picking below it. */
    bool exact_freq;
};

/* Checks one cluster description: min <= base <= max, frequencies ascending inside the range,
 * CPU numbers below GOV_MAX_CPUS. -EINVAL with "what" in err. */
int gov_cluster_info_validate(const struct gov_cluster_info *c, char *err, size_t err_len);

/* ---- the inputs of one tick. NaN means "unknown this tick" for every double. ---- */
struct gov_inputs {
    uint64_t now_ns; /* CLOCK_MONOTONIC (or simulated time) */
    /* Busy fraction 0..1 of every CPU since the previous tick, indexed by CPU number; only the
     * CPUs named in the clusters are read. NaN = no reading. */
    double util[GOV_MAX_CPUS];
    /* Hottest sensor that belongs to each cluster (°C), in the controller's cluster order.
     * NaN = no reading this tick. A cluster whose sensors never gave a reading has no thermal
     * control; one whose reading disappears after it existed is a lost sensor (safe state). */
    double temp_c[GOV_MAX_CLUSTERS];
    double passive_trip_c;  /* lowest passive trip point of the zones we read; NaN = none */
    double package_power_w; /* from telemetry when it knows it; NaN = unknown */
    enum gov_phase phase;   /* what the engine is doing now */
    uint64_t phase_ns;      /* how long it has been in that phase */
    double tokens_per_s;    /* engine throughput over the last tick in this phase; NaN = unknown */
    /* Frequency each cluster actually ran at (scaling_cur_freq); 0 = unknown, then the controller
     * uses what it applied last. */
    uint32_t cur_khz[GOV_MAX_CLUSTERS];
    /* The runtime's own verdict that a sensor vanished or returned garbage: forces the safe state
     * (minimum frequency, boost off) until it clears. */
    bool sensor_fault;
    /* Requests waiting behind the one the engine runs (0 = none, or the caller does not know).
     * Each decode token of the running request delays their first token, so the phase-aware
     * policies decode at full speed while any wait. */
    unsigned queued;
};

/* Fills *in with "nothing known": NaN everywhere, idle phase, now_ns given. */
void gov_inputs_init(struct gov_inputs *in, uint64_t now_ns);

/* ---- what the controller asks the backend to apply ---- */
enum gov_reason {
    GOV_REASON_POLICY = 1u << 0,      /* the policy's own choice was applied */
    GOV_REASON_THERMAL = 1u << 1,     /* the thermal PI controller lowered the target */
    GOV_REASON_POWER_CAP = 1u << 2,   /* the power cap PI controller lowered the target */
    GOV_REASON_USER_LIMIT = 1u << 3,  /* min_mhz / max_mhz clamped it */
    GOV_REASON_SENSOR_LOSS = 1u << 4, /* safe state: a sensor vanished or returned garbage */
    GOV_REASON_HELD = 1u << 5,        /* hysteresis, dead band or rate limit kept the old value */
    GOV_REASON_QUIET = 1u << 6,       /* the quiet policy's temperature cap lowered the target */
    GOV_REASON_TRIP = 1u << 7,        /* within the margin of the passive trip point */
};

struct gov_cluster_target {
    uint32_t khz;       /* frequency to apply: exact (userspace) or the upper limit (limits-only) */
    uint32_t floor_khz; /* lower limit for limits-only backends (the idle floor) */
    uint32_t policy_khz; /* what the policy asked for, before constraints and anti-flap */
    bool boost;          /* boost may be on (khz above base_khz needs it) */
    unsigned reasons;    /* GOV_REASON_* bits */
    bool changed;        /* khz or boost differ from the previous step's */
};

/* energy_performance_preference choices a policy can ask for (intel_pstate / amd-pstate with
 * HWP/CPPC; Documentation/admin-guide/pm/intel_pstate.rst, amd-pstate.rst). */
enum gov_epp {
    GOV_EPP_LEAVE = 0, /* do not touch: the hardware keeps what it had */
    GOV_EPP_PERFORMANCE,
    GOV_EPP_BALANCE_PERFORMANCE,
    GOV_EPP_BALANCE_POWER,
    GOV_EPP_POWER,
};
/* The sysfs string of a choice ("balance_power"); NULL for GOV_EPP_LEAVE. */
const char *gov_epp_name(enum gov_epp epp);

struct gov_targets {
    unsigned n_clusters;
    struct gov_cluster_target c[GOV_MAX_CLUSTERS];
    bool boost;   /* any cluster wants boost (cpufreq/boost and no_turbo are global) */
    bool changed; /* any cluster changed */
    /* Levers beyond the CPU clock, chosen per engine phase by the phase-aware policies:
     * the memory controller's devfreq clock as a fraction of its range (0 = lowest, 1 =
     * highest; NaN = leave the board's own devfreq governor alone), and the EPP hint for
     * clusters whose hardware picks the clock inside our limits. */
    double mem_frac;
    enum gov_epp epp;
    /* The engine's thread count and the CPUs it may run on, chosen per phase by the phase-aware
     * policies: 0 = leave the engine as configured. */
    unsigned engine_threads;
    uint64_t engine_cpus; /* bit i = logical CPU i */
};

/* ---- tunables: every key of every policy and constraint ([governor] section) ---- */
struct gov_tunables {
    char policy[GOV_NAME_MAX]; /* policy name; default "balanced" */
    int tick_ms;               /* 10..10000, default 100: how often the controller steps */
    int min_mhz;               /* 0..100000, default 0 = cpuinfo_min_freq */
    int max_mhz;               /* 0..100000, default 0 = cpuinfo_max_freq (boost) */
    /* constraints */
    double thermal_target_c; /* 0 (off) or 30..125, default 85; also kept trip_margin_c below
                                the first passive trip point */
    double trip_margin_c;    /* 0..30, default 5 */
    double thermal_kp;       /* 0..1, default 0.08: fraction of the range per °C of error */
    double thermal_ki;       /* 0..1, default 0.02: fraction of the range per °C·s */
    double power_cap_w;      /* 0 (off) or 0.5..10000, default 0 */
    double power_kp;         /* 0..1, default 0.3: log domain, relative clock per ln(cap/power) */
    double power_ki;         /* 0..1, default 1.0: log domain, per ln(cap/power) and second; the
                                integrator is kept per engine phase */
    /* anti-flap */
    double dead_band_pct; /* 0..50, default 3: ignore changes smaller than this % of cur */
    int rate_limit_ms;    /* 0..60000, default 200: min time between changes of a cluster */
    int hysteresis_ms;    /* 0..60000, default 300: a decrease must be asked this long */
    /* ondemand / conservative (kernel semantics) */
    int up_threshold;         /* 1..100, default 80 (kernel: 11..100) */
    int down_threshold;       /* 1..99, default 20; must be < up_threshold (conservative) */
    int sampling_down_factor; /* 1..100000, default 1 (conservative: 1..10) */
    int powersave_bias;       /* 0..1000 per-mille, default 0 (ondemand) */
    int freq_step_pct;        /* 1..100, default 5 (conservative) */
    /* schedutil */
    int rate_limit_us; /* 0..1000000, default 0: schedutil's own rate limit */
    /* balanced / efficiency */
    double decode_slowdown_max_pct; /* 0..50, default 5 */
    int idle_delay_ms;              /* 0..600000, default 2000 */
    int probe_ms;                   /* 100..60000, default 1000: dwell per point of the online
                                       search (balanced without calibration, efficiency) */
    int reprobe_s;                  /* 0 (never) or 10..86400, default 600: search again */
    /* quiet */
    double quiet_temp_c; /* 30..110, default 65 */
    /* levers of balanced / efficiency / quiet */
    int memory_lever;       /* 0..1, default 1: set the memory controller's clock per phase */
    int memory_prefill_pct; /* 0..100, default 0: its clock in prefill (% of its range) */
    int epp_lever;          /* 0..1, default 1: set energy_performance_preference per phase */
    int thread_lever;       /* 0..1, default 1: set the engine's threads and CPUs per phase */
};

enum gov_tunable_type { GOV_TUNABLE_INT, GOV_TUNABLE_DOUBLE, GOV_TUNABLE_STRING };

/* One row per tunable: the config loader, `ember governor status` and the docs use this table. */
struct gov_tunable_desc {
    const char *key;
    enum gov_tunable_type type;
    size_t offset; /* into struct gov_tunables */
    size_t size;   /* strings: buffer size */
    double min, max;
    bool zero_means_off; /* 0 is accepted outside [min, max] ("off" / "hardware value") */
    const char *default_value;
    const char *doc;
};

/* The table and its length. */
const struct gov_tunable_desc *gov_tunable_table(size_t *ret_n);

/* Fills every field with its default. */
void gov_tunables_defaults(struct gov_tunables *t);

/* Parses one value by key. 0; -ENOENT unknown key; -EINVAL not a value of its type or unknown
 * policy; -ERANGE outside its range. err says what and why ("up_threshold: 140 is outside
 * 1..100"). Cross-key rules are checked by gov_tunables_validate. */
int gov_tunables_set(struct gov_tunables *t, const char *key, const char *value, char *err,
                     size_t err_len);

/* Writes the value of key as text. -ENOENT unknown key, -ENOSPC too small. */
int gov_tunables_get(const struct gov_tunables *t, const char *key, char *buf, size_t cap);

/* Checks every range and the cross-key rules (min_mhz > max_mhz, down_threshold >=
 * up_threshold, unknown policy). On failure returns -EINVAL or -ERANGE and sets *ret_key (may be
 * NULL) to the key at fault so the caller can name its file:line. */
int gov_tunables_validate(const struct gov_tunables *t, const char **ret_key, char *err,
                          size_t err_len);

/* ---- calibration curve: one ladder of frequency steps with what the engine did at each ---- */
#define GOV_CALIB_MAX_POINTS 64

struct gov_calib_point {
    /* Frequency of every cluster at this step, in the cluster order of the calibration. */
    uint32_t khz[GOV_MAX_CLUSTERS];
    double prefill_tok_s; /* NaN = not measured */
    double decode_tok_s;  /* NaN = not measured */
    double watts;         /* package power during decode; NaN = no power sensor */
};

struct gov_calibration {
    char model[256];  /* model file or name the curve was measured with */
    char created[32]; /* ISO 8601 UTC, informational */
    unsigned n_clusters;
    char cluster_names[GOV_MAX_CLUSTERS][GOV_NAME_MAX];
    unsigned n_points; /* ascending by the khz vector, first cluster first */
    struct gov_calib_point points[GOV_CALIB_MAX_POINTS];
};

/* Loads a curve from JSON (format in docs/governor-sim.md "Calibration file"). Points are sorted;
 * -EINVAL with "file: what" in err on malformed input, -errno on I/O. */
int gov_calibration_load(const char *path, struct gov_calibration *ret, char *err, size_t err_len);
/* Parses from a string (the same format). */
int gov_calibration_parse(const char *json, struct gov_calibration *ret, char *err, size_t err_len);
/* Writes the curve atomically (cmn_write_file_for_dir_owner): into a directory that belongs to
 * another user, a root caller hands the file to that user (the agent's /var/lib/ember). */
int gov_calibration_save(const struct gov_calibration *cal, const char *path, char *err,
                         size_t err_len);
/* Returns a malloc'd JSON text (caller frees) or NULL on allocation failure. */
char *gov_calibration_to_json(const struct gov_calibration *cal);

/* ---- policies ---- */

/* What a policy instance gets at init. Pointers stay valid for the instance's life. */
struct gov_policy_ctx {
    unsigned n_clusters;
    const struct gov_cluster_info *clusters;
    const struct gov_tunables *tunables;
    const struct gov_calibration *calibration; /* NULL when none */
    /* Per cluster: the lowest and highest frequency the policy may ask for (hardware limits
     * clamped by min_mhz/max_mhz), computed by the controller. */
    const uint32_t *floor_khz;
    const uint32_t *ceil_khz;
};

struct gov_policy_ops {
    const char *name;
    const char *summary;
    /* Optional: policy-specific checks of the tunables beyond the table ranges. */
    int (*validate)(const struct gov_tunables *t, const char **ret_key, char *err, size_t err_len);
    /* Allocates the policy's private state. 0 or -errno. */
    int (*init)(const struct gov_policy_ctx *ctx, void **ret_state);
    /* Writes out->c[i].khz (and .boost) for every cluster; must not read clocks or files. The
     * controller clamps, constrains and quantises afterwards. */
    void (*decide)(void *state, const struct gov_inputs *in, uint64_t now_ns,
                   struct gov_targets *out);
    void (*free)(void *state);
};

/* The policy named name, or NULL. */
const struct gov_policy_ops *gov_policy_find(const char *name);
/* Every policy, NULL-terminated, in documentation order. */
const struct gov_policy_ops *const *gov_policy_list(void);

/* ---- the controller: policy, then constraints, then anti-flap ---- */
struct gov_controller;

/* Builds a controller for the given clusters (copied). calibration may be NULL (copied when not).
 * Validates the tunables and clusters first; -EINVAL/-ERANGE with err naming the problem. */
int gov_controller_new(const char *policy, const struct gov_tunables *t,
                       const struct gov_cluster_info *clusters, unsigned n_clusters,
                       const struct gov_calibration *calibration, struct gov_controller **ret,
                       char *err, size_t err_len);
void gov_controller_free(struct gov_controller *ctl);

/* One tick: runs the policy, the thermal and power constraints and the anti-flap rules and writes
 * the targets to apply. Call it every tick_ms and, for phase-aware policies, also right away when
 * the engine's phase changes (the rate limit does not delay a phase change). -EINVAL on inputs
 * that go back in time. */
int gov_controller_step(struct gov_controller *ctl, const struct gov_inputs *in,
                        struct gov_targets *ret);

/* Live switches: a new policy (its state starts fresh; constraint state is kept), new tunables
 * (validated first; nothing changes on error), a new calibration curve (NULL = none). */
int gov_controller_set_policy(struct gov_controller *ctl, const char *policy, char *err,
                              size_t err_len);
int gov_controller_set_tunables(struct gov_controller *ctl, const struct gov_tunables *t, char *err,
                                size_t err_len);
int gov_controller_set_calibration(struct gov_controller *ctl, const struct gov_calibration *cal);

/* What is running, for status output. */
const char *gov_controller_policy(const struct gov_controller *ctl);
const struct gov_tunables *gov_controller_tunables(const struct gov_controller *ctl);
unsigned gov_controller_n_clusters(const struct gov_controller *ctl);
const struct gov_cluster_info *gov_controller_cluster(const struct gov_controller *ctl, unsigned i);
/* Effective thermal target after the trip-point margin (°C), NaN when off. */
double gov_controller_thermal_target_c(const struct gov_controller *ctl, double passive_trip_c);

/* Snaps khz to a frequency the cluster can run: the highest available <= khz (round_up false) or
 * the lowest available >= khz (round_up true), within [lo, hi]. Continuous ranges only clamp. */
uint32_t gov_cluster_quantize(const struct gov_cluster_info *c, uint32_t khz, bool round_up,
                              uint32_t lo, uint32_t hi);

#endif
