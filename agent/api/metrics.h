/* Prometheus text exposition (format 0.0.4) of the agent's state for GET /metrics. The state is a
 * plain snapshot struct filled by whoever knows each part (the HTTP server: request counters and
 * the latency histogram; the daemon through a hook: power, energy, temperature, frequencies and
 * the governor), so formatting is a pure function that tests can check line by line. */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Upper bounds (seconds) of the request latency buckets; +Inf is implicit. */
#define AGENT_METRICS_LATENCY_BUCKETS 12
extern const double agent_metrics_latency_bounds_s[AGENT_METRICS_LATENCY_BUCKETS];

struct agent_metrics_histogram {
    uint64_t bucket[AGENT_METRICS_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    uint64_t count;
    double sum;
};

/* Adds one observation (not thread-safe: the owner locks). */
void agent_metrics_histogram_observe(struct agent_metrics_histogram *h, double value);

#define AGENT_METRICS_MAX_CPUFREQ    32
#define AGENT_METRICS_MAX_HTTP_CODES 16

struct agent_metrics_cpufreq {
    char policy[32]; /* cpufreq policy (cluster) name, e.g. "policy0" */
    double freq_khz;
};

/* Unknown numbers are NaN and their metric is left out. */
struct agent_metrics_snapshot {
    bool model_loaded;
    char model[128];
    uint64_t requests;      /* inference requests finished */
    uint64_t prompt_tokens; /* totals since start */
    uint64_t gen_tokens;
    double prefill_tokens_per_s; /* of the last finished request */
    double decode_tokens_per_s;
    struct agent_metrics_histogram latency; /* end-to-end inference request seconds */
    uint64_t queue_depth;
    bool busy;
    /* the engine's kernel threads taking part now (the governor's thread lever) and its
     * ceiling ([engine] threads); NaN before a model is open: left out */
    double engine_threads, engine_max_threads;
    /* models (issue 18): loaded now, their bytes against the budget, and since start how many
     * loads on demand, unloads after keep-alive and evictions for room */
    uint64_t models_loaded, models_loaded_bytes;
    uint64_t model_loads, model_unloads, model_evictions;
    double power_w;
    double energy_j; /* monotonic counter since the agent started */
    /* the same energy split by engine phase, integrated over the phase intervals (NaN: no
     * energy yet), and the boundary it was measured at ("package", "soc", "wall") */
    double phase_energy_j[3]; /* idle, prefill, decode */
    char energy_scope[16];
    bool energy_estimated; /* from the power model, not a meter */
    /* the second boundary, the whole box at the wall (NaN: no wall figure kept), by engine
     * phase as above, its source ("mqtt:<topic>", "hwmon:<dev>", "battery", "estimate") and
     * whether a meter measured it */
    double wall_power_w, wall_energy_j;
    double wall_phase_energy_j[3];
    char wall_source[96];
    bool wall_measured;
    double temp_c;
    size_t n_cpufreq;
    struct agent_metrics_cpufreq cpufreq[AGENT_METRICS_MAX_CPUFREQ];
    char policy[32];    /* governor policy in force, "" when none */
    double power_cap_w; /* 0 = no cap */
    size_t n_http;
    struct {
        int code;
        uint64_t count;
    } http[AGENT_METRICS_MAX_HTTP_CODES]; /* HTTP responses by status code */
};

/* Zeroes the snapshot and sets every optional number to NaN. */
void agent_metrics_snapshot_init(struct agent_metrics_snapshot *s);

/* Writes the exposition; 0 or -EIO when the stream fails. */
int agent_metrics_write(const struct agent_metrics_snapshot *s, FILE *out);

#endif
