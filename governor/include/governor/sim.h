/* The governor simulator: the very same controller (policy + constraints + anti-flap) driving a
 * plant model instead of sysfs. The plant is a JSON profile (OPP table per cluster, switched
 * capacitance and leakage, a two-node thermal RC network, a compute-bound prefill and a
 * memory-bound decode) and a workload (requests with prompt and output lengths). The run reports
 * joules per token, throughput, latency percentiles, power, temperature and frequency churn per
 * policy, and can record a trace for CSV and SVG output. docs/governor-sim.md documents the
 * profile and workload formats and where every built-in number comes from. */
#ifndef GOVERNOR_SIM_H
#define GOVERNOR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "governor/policy.h"

#define GOV_SIM_MAX_OPPS 64
#define GOV_SIM_MAX_MEM  8

struct gov_sim_opp {
    uint32_t khz;
    double volt;
};

struct gov_sim_cluster {
    char name[GOV_NAME_MAX];
    unsigned n_cpus;
    unsigned first_cpu;
    unsigned n_opps; /* ascending; voltage is interpolated between them when continuous */
    struct gov_sim_opp opps[GOV_SIM_MAX_OPPS];
    bool continuous;      /* intel_pstate / amd-pstate: any kHz in range, no frequency table */
    bool exact;           /* the backend can set one frequency (else limits only, HWP picks) */
    bool boost_available; /* frequencies above base_khz need boost on */
    uint32_t base_khz;    /* 0 = no boost range */
    bool engine;          /* the inference engine's threads run here */
    double ipc;           /* work per cycle relative to the profile's reference core */
    double ceff_nf;       /* effective switched capacitance per core at activity 1 (nF) */
    double leak_w;        /* leakage per core at leak_ref_v and leak_ref_c (W) */
    double leak_ref_v;
    /* What one core streams from memory at most (GB/s): decode's memory time is at least
     * weights_gb over the sum of the engine cores' figures, so few cores cannot saturate the
     * bus. 0 = no per-core limit (the bus alone decides). */
    double core_gbs;
};

struct gov_sim_profile {
    char name[64];
    char description[256];
    unsigned n_clusters;
    struct gov_sim_cluster clusters[GOV_MAX_CLUSTERS];
    double uncore_w;           /* package power that does not follow the CPU clocks */
    double idle_leak_fraction; /* share of leakage left while a core idles (cpuidle gating) */
    double leak_temp_coef;     /* relative leakage increase per °C above leak_ref_c */
    double leak_ref_c;
    double firmware_power_limit_w; /* PL1/PPT the hardware enforces on its own; 0 = none */
    /* thermal: junction node (die) and case node (heatsink / board) */
    double ambient_c, r_jc, c_j, r_ca, c_c;
    double passive_trip_c; /* first passive trip point of the platform's thermal zones */
    double tjmax_c;        /* hardware throttles to the floor above this */
    /* performance model */
    double prefill_tok_per_gcycle;   /* prefill tokens per (GHz * core * ipc) per second */
    double decode_mem_ms;            /* time per token streaming the weights (memory-bound) */
    double decode_gcycles_per_token; /* compute per token in Gcycles of the reference core */
    double decode_overlap;           /* 0..1: how much of the shorter part hides under the other */
    double engine_util_decode;       /* busy fraction /proc/stat shows during decode */
    double activity_prefill, activity_decode, activity_background;
    double background_mhz; /* other processes' demand per CPU, MHz-equivalent */
    /* Firmware power limits with their time window (governor/src/sim_plant.c): the package may
     * draw pl2_w while a running average of its power over pl_tau_s stays below
     * firmware_power_limit_w (PL1 / slow PPT); 0 = a flat limit. */
    double pl2_w, pl_tau_s;
    double throttle_c; /* firmware/kernel throttling temperature (0 = tjmax_c) */
    /* The whole box at the wall, beyond the package: board (PHYs, regulators, USB, SSD idle),
     * DRAM (idle + per GB/s streamed), and the power supply (efficiency + no-load loss). */
    double board_w, dram_idle_w, dram_w_per_gbs, psu_efficiency, psu_fixed_w;
    double weights_gb;           /* bytes streamed per decode token (GB); prefill reads them */
    double prefill_batch_tokens; /* once per this many prompt tokens */
    /* The memory controller's devfreq clock (optional "memory" section; the memory lever):
     * its steps in MHz, ascending, and the extra DRAM + controller power at the top step over
     * the lowest (linear between). Decode's memory time is decode_mem_ms at the top step and
     * scales as top / clock. Without a target from the governor the board's own devfreq
     * governor runs: the kernel's simple_ondemand rule on the bus load (traffic / peak_gbs
     * scaled to the clock) every polling_ms, with upthreshold / downdifferential. */
    unsigned n_mem_mhz;
    double mem_mhz[GOV_SIM_MAX_MEM];
    double mem_extra_w;
    double mem_peak_gbs;    /* theoretical bandwidth at the top step */
    double mem_upthreshold; /* % (simple_ondemand default 90) */
    double mem_downdiff;    /* % (default 5) */
    double mem_polling_ms;  /* default 50 */
    /* Published figures the plant must reproduce (tests/sim_reference_test.c, +-15 %). */
    unsigned n_refs;
    struct gov_sim_reference {
        char figure[32]; /* wall_idle_w, wall_load_w, package_load_w, sustained_mhz,
                            load_temp_c, decode_tok_s, prefill_tok_s */
        double value;
        bool estimate; /* true: no published measurement, an engineering estimate */
        char source[400];
    } refs[12];
};

/* Loads a built-in profile by name ("rk3588", "n100", "ryzen") or a JSON file by path
 * (anything containing '/' or ending in ".json"). err names the file and the field. */
int gov_sim_profile_load(const char *name_or_path, struct gov_sim_profile *ret, char *err,
                         size_t err_len);
int gov_sim_profile_parse(const char *json, struct gov_sim_profile *ret, char *err, size_t err_len);
/* The directory the built-in profiles are read from ($EMBER_PROFILE_DIR, the installed data
 * directory, <binary>/../share/ember/profiles, or the source tree). */
const char *gov_sim_profile_dir(void);
/* Names of the built-in profiles, NULL-terminated. */
const char *const *gov_sim_builtin_profiles(void);

/* The controller's view of a profile cluster. */
void gov_sim_cluster_info(const struct gov_sim_profile *p, unsigned i,
                          struct gov_cluster_info *ret);

struct gov_sim_request {
    double at_s; /* arrival (open loop); ignored in closed loop */
    unsigned prompt_tokens, gen_tokens;
};

struct gov_sim_workload {
    char name[64];
    bool closed_loop; /* the next request arrives when the previous one finishes */
    double think_s;   /* closed loop: pause between a response and the next request */
    size_t n;
    struct gov_sim_request *req;
};

/* "chat", "burst", "steady" (seeded, deterministic) or a JSON file. */
int gov_sim_workload_load(const char *name_or_path, double duration_s, uint64_t seed,
                          struct gov_sim_workload *ret, char *err, size_t err_len);
void gov_sim_workload_free(struct gov_sim_workload *w);

struct gov_sim_options {
    double duration_s; /* simulated time; open-loop requests that arrived are drained */
    double ambient_c;  /* NaN = the profile's */
    double step_ms;    /* plant integration step, default 1 */
    bool calibrated;   /* run the calibration ladder first and hand the curve to the policy */
    bool sensor_loss;  /* test hook: the temperature reading vanishes for 10 s at 40 % */
    /* The oracle's static configurations: with fixed_clocks the engine clusters run at these
     * fractions of their floor..ceiling range in prefill and decode, whatever the policy asks
     * (the policy still drives idle and the other clusters). */
    bool fixed_clocks;
    double fixed_prefill_frac, fixed_decode_frac;
    /* With fixed_memory the memory clock is held at these fractions of its range in prefill
     * and decode (idle: the lowest), whatever the policy asks. */
    bool fixed_memory;
    double fixed_mem_prefill_frac, fixed_mem_decode_frac;
    /* With fixed_threads the engine runs this many threads on these CPUs in decode, and
     * fixed_prefill_threads on its own CPUs in prefill, whatever the policy asks; threads 0 =
     * all of them (the engine's configured count, also the ceiling), cpus 0 = the engine's own
     * CPUs, fastest cluster first. */
    bool fixed_threads;
    unsigned fixed_decode_threads, fixed_prefill_threads;
    uint64_t fixed_decode_cpus;
    struct gov_tunables tunables;
};

void gov_sim_options_defaults(struct gov_sim_options *o);

struct gov_sim_trace_point {
    float t_s, power_w, temp_c;
    uint8_t phase;
    uint32_t khz[GOV_MAX_CLUSTERS];
};

struct gov_sim_trace {
    size_t n, cap;
    struct gov_sim_trace_point *pts;
};

void gov_sim_trace_free(struct gov_sim_trace *t);

struct gov_sim_result {
    char policy[GOV_NAME_MAX];
    char profile[64];
    char workload[64];
    double duration_s; /* arrivals were generated over this long (--duration) */
    double sim_s;      /* simulated until every request was served: >= duration_s */
    unsigned requests, prompt_tokens, gen_tokens;
    double energy_j, prefill_energy_j, decode_energy_j, idle_energy_j; /* package */
    /* The same at the wall (package + board + DRAM, through the PSU) */
    double wall_energy_j, wall_prefill_energy_j, wall_decode_energy_j, wall_idle_energy_j;
    double wall_joules_per_token;           /* (prefill + decode wall energy) / generated tokens */
    double wall_joules_per_token_with_idle; /* all wall energy, idle included / generated tokens */
    double j_per_token_prefill;             /* prefill energy / prompt tokens */
    double j_per_token_decode;              /* decode energy / generated tokens */
    double joules_per_token;                /* (prefill + decode energy) / generated tokens */
    double prefill_tokens_per_s, decode_tokens_per_s;
    double ttft_p50_ms, ttft_p99_ms, token_latency_p99_ms;
    double avg_power_w, peak_power_w;
    double idle_power_w; /* settled idle: idle time after the first 5 s of each gap */
    double peak_temp_c;
    double thermal_target_c; /* effective target (NaN when off) */
    double seconds_over_target;
    double max_over_target_settled_c; /* worst excess 5 s after the target was first reached */
    double power_cap_w;
    double max_power_5s_w, min_power_5s_w; /* 5 s averages after 10 s, busy windows only */
    double freq_changes_per_min;
    double safe_state_s; /* time spent in the sensor-loss safe state */
    /* Engine threads running, time-weighted over each phase (the thread lever) */
    double prefill_threads, decode_threads;
};

/* Runs one policy over the workload. trace may be NULL (else filled every 100 ms). */
int gov_sim_run(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                const char *policy, const struct gov_sim_options *o, struct gov_sim_result *ret,
                struct gov_sim_trace *trace, char *err, size_t err_len);

/* What `ember governor calibrate` would measure on this plant: a frequency ladder with prefill and
 * decode tokens/s and package watts during decode. */
int gov_sim_calibrate(const struct gov_sim_profile *p, const struct gov_sim_options *o,
                      struct gov_calibration *ret);

/* The oracle: static configurations per phase (engine clusters' clock in prefill and in decode,
 * from the fastest engine cluster's steps), searched one phase at a time (decode with prefill at
 * the ceiling, then prefill at the chosen decode clock), for the lowest wall J/token whose
 * decode tokens/s is at least (1 - slowdown) of performance's and whose TTFT p99 is at most
 * (1 + slowdown) of performance's; slowdown = decode_slowdown_max_pct. */
struct gov_sim_oracle {
    bool found;                       /* false: nothing met the budget (result = performance) */
    double prefill_frac, decode_frac; /* of the floor..ceiling range */
    uint32_t prefill_khz, decode_khz; /* the fastest engine cluster's clock */
    double mem_prefill_mhz, mem_decode_mhz; /* memory clock (0: the profile has no memory lever) */
    unsigned decode_threads;                /* engine threads in decode (the thread lever) */
    uint64_t decode_cpus;                   /* and their CPUs */
    char decode_cluster[GOV_NAME_MAX];      /* the cluster of the first of them */
    unsigned engine_threads;                /* the engine's own thread count (its ceiling) */
    unsigned runs;
    struct gov_sim_result performance; /* the reference the budget is taken from */
    struct gov_sim_result result;      /* policy "oracle" */
};
int gov_sim_oracle(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                   const struct gov_sim_options *o, struct gov_sim_oracle *ret, char *err,
                   size_t err_len);

/* Prints the oracle's configuration and every policy's wall J/token and decode speed beside it. */
void gov_sim_write_oracle(FILE *f, const struct gov_sim_oracle *o, const struct gov_sim_result *r,
                          size_t n, double slowdown_pct);

/* The trade-off of one tunable: every policy in policies[] at every value (tunables from o,
 * KEY=value applied and validated). ret holds n_values * n_policies results, value-major. */
int gov_sim_sweep(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                  const struct gov_sim_options *o, const char *key, const char *const *values,
                  size_t n_values, const char *const *policies, size_t n_policies,
                  struct gov_sim_result *ret, char *err, size_t err_len);
void gov_sim_write_sweep(FILE *f, const char *key, const char *const *values, size_t n_values,
                         const struct gov_sim_result *r, size_t n_policies);

/* Steady states of the plant, for checking a profile against the measurements it cites. */
struct gov_sim_steady {
    double wall_idle_w, package_idle_w;
    double wall_load_w, package_load_w; /* all cores busy, sustained (limits and throttling) */
    double sustained_mhz;               /* the engine's fastest cluster under that load */
    double load_temp_c;
    double decode_tok_s, prefill_tok_s; /* engine at its ceiling, sustained */
};
int gov_sim_steady_state(const struct gov_sim_profile *p, double ambient_c,
                         struct gov_sim_steady *ret);
/* The modelled value of a reference figure (NAN for an unknown figure name). */
double gov_sim_steady_figure(const struct gov_sim_steady *s, const char *figure);

/* Output. The table puts policies side by side; JSON is one object per policy (an array). */
void gov_sim_write_table(FILE *f, const struct gov_sim_result *r, size_t n);
char *gov_sim_results_json(const struct gov_sim_result *r, size_t n); /* malloc'd */
void gov_sim_write_csv(FILE *f, const struct gov_sim_result *r, const struct gov_sim_trace *t,
                       size_t n, unsigned n_clusters);
void gov_sim_write_svg(FILE *f, const struct gov_sim_result *r, const struct gov_sim_trace *t,
                       size_t n, const struct gov_sim_profile *p);

#endif
