/* Prometheus text format writer for the agent's metrics snapshot (see metrics.h). Names follow
 * Prometheus conventions: base units (seconds, watts, joules, hertz, celsius), _total on counters,
 * one HELP and TYPE line per family, label values escaped. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const double agent_metrics_latency_bounds_s[AGENT_METRICS_LATENCY_BUCKETS] = {
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
};

void agent_metrics_histogram_observe(struct agent_metrics_histogram *h, double value)
{
    if (!(value >= 0))
        value = 0;
    size_t i = 0;
    while (i < AGENT_METRICS_LATENCY_BUCKETS && value > agent_metrics_latency_bounds_s[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += value;
}

void agent_metrics_snapshot_init(struct agent_metrics_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->prefill_tokens_per_s = NAN;
    s->decode_tokens_per_s = NAN;
    s->power_w = NAN;
    s->energy_j = NAN;
    for (int i = 0; i < 3; i++)
        s->phase_energy_j[i] = s->wall_phase_energy_j[i] = NAN;
    s->wall_power_w = s->wall_energy_j = NAN;
    s->temp_c = NAN;
    s->power_cap_w = NAN;
    s->engine_threads = NAN;
    s->engine_max_threads = NAN;
}

/* Label values escape backslash, double quote and newline (exposition format 0.0.4). */
static void put_label(FILE *out, const char *v, size_t max)
{
    for (size_t i = 0; i < max && v[i]; i++) {
        if (v[i] == '\\')
            fputs("\\\\", out);
        else if (v[i] == '"')
            fputs("\\\"", out);
        else if (v[i] == '\n')
            fputs("\\n", out);
        else
            fputc(v[i], out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Floats as Go's strconv would print them: shortest round-trip form, +Inf/-Inf/NaN spelled out. */
static const char *shortest(double v, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void put_value(FILE *out, double v)
{
    char buf[32];
    if (isnan(v))
        fputs("NaN", out);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", out);
    else
        fputs(shortest(v, buf, sizeof(buf)), out);
}

static void gauge(FILE *out, const char *name, const char *help, double v)
{
    if (isnan(v))
        return;
    family(out, name, "gauge", help);
    fputs(name, out);
    fputc(' ', out);
    put_value(out, v);
    fputc('\n', out);
}

int agent_metrics_write(const struct agent_metrics_snapshot *s, FILE *out)
{
    family(out, "ember_model_loaded", "gauge", "1 when a model is loaded and serving.");
    fprintf(out, "ember_model_loaded{model=\"");
    put_label(out, s->model, sizeof(s->model));
    fprintf(out, "\"} %d\n", s->model_loaded ? 1 : 0);

    family(out, "ember_requests_total", "counter", "Inference requests finished.");
    fprintf(out, "ember_requests_total %llu\n", (unsigned long long)s->requests);

    family(out, "ember_tokens_total", "counter", "Tokens processed, by kind.");
    fprintf(out, "ember_tokens_total{kind=\"prompt\"} %llu\n",
            (unsigned long long)s->prompt_tokens);
    fprintf(out, "ember_tokens_total{kind=\"generated\"} %llu\n",
            (unsigned long long)s->gen_tokens);

    if (!isnan(s->prefill_tokens_per_s) || !isnan(s->decode_tokens_per_s)) {
        family(out, "ember_tokens_per_second", "gauge",
               "Throughput of the last finished request, by phase.");
        if (!isnan(s->prefill_tokens_per_s)) {
            fputs("ember_tokens_per_second{phase=\"prefill\"} ", out);
            put_value(out, s->prefill_tokens_per_s);
            fputc('\n', out);
        }
        if (!isnan(s->decode_tokens_per_s)) {
            fputs("ember_tokens_per_second{phase=\"decode\"} ", out);
            put_value(out, s->decode_tokens_per_s);
            fputc('\n', out);
        }
    }

    family(out, "ember_request_duration_seconds", "histogram",
           "End-to-end latency of inference requests.");
    uint64_t cum = 0;
    for (size_t i = 0; i < AGENT_METRICS_LATENCY_BUCKETS; i++) {
        cum += s->latency.bucket[i];
        fputs("ember_request_duration_seconds_bucket{le=\"", out);
        put_value(out, agent_metrics_latency_bounds_s[i]);
        fprintf(out, "\"} %llu\n", (unsigned long long)cum);
    }
    cum += s->latency.bucket[AGENT_METRICS_LATENCY_BUCKETS];
    fprintf(out, "ember_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)cum);
    fputs("ember_request_duration_seconds_sum ", out);
    put_value(out, s->latency.sum);
    fprintf(out, "\nember_request_duration_seconds_count %llu\n",
            (unsigned long long)s->latency.count);

    family(out, "ember_queue_depth", "gauge", "Requests waiting for the engine.");
    fprintf(out, "ember_queue_depth %llu\n", (unsigned long long)s->queue_depth);
    family(out, "ember_engine_busy", "gauge", "1 while the engine runs a request.");
    fprintf(out, "ember_engine_busy %d\n", s->busy ? 1 : 0);
    gauge(out, "ember_engine_threads",
          "Kernel threads the engine runs now (the governor's thread lever may lower it).",
          s->engine_threads);
    gauge(out, "ember_engine_max_threads", "The engine's thread ceiling ([engine] threads).",
          s->engine_max_threads);
    family(out, "ember_models_loaded", "gauge", "Models loaded now.");
    fprintf(out, "ember_models_loaded %llu\n", (unsigned long long)s->models_loaded);
    family(out, "ember_models_loaded_bytes", "gauge",
           "Memory the loaded models hold, as counted against [models] max_loaded_bytes.");
    fprintf(out, "ember_models_loaded_bytes %llu\n", (unsigned long long)s->models_loaded_bytes);
    family(out, "ember_model_loads_total", "counter", "Models loaded on demand since start.");
    fprintf(out, "ember_model_loads_total %llu\n", (unsigned long long)s->model_loads);
    family(out, "ember_model_unloads_total", "counter",
           "Models unloaded after their keep-alive since start.");
    fprintf(out, "ember_model_unloads_total %llu\n", (unsigned long long)s->model_unloads);
    family(out, "ember_model_evictions_total", "counter",
           "Models unloaded to make room for another since start.");
    fprintf(out, "ember_model_evictions_total %llu\n", (unsigned long long)s->model_evictions);

    gauge(out, "ember_power_watts", "Power drawn, from the best available source.", s->power_w);
    if (!isnan(s->energy_j)) {
        family(out, "ember_energy_joules_total", "counter", "Energy used since the agent started.");
        fputs("ember_energy_joules_total ", out);
        put_value(out, s->energy_j);
        fputc('\n', out);
    }
    if (!isnan(s->phase_energy_j[0])) {
        static const char *const names[3] = {"idle", "prefill", "decode"};
        family(out, "ember_phase_energy_joules_total", "counter",
               "Energy used since the agent started, by engine phase, integrated over the "
               "phase intervals; scope is the boundary measured (package, soc, wall), estimated "
               "1 when it comes from the power model.");
        for (int i = 0; i < 3; i++) {
            fprintf(out, "ember_phase_energy_joules_total{phase=\"%s\",scope=\"", names[i]);
            put_label(out, s->energy_scope, sizeof(s->energy_scope));
            fprintf(out, "\",estimated=\"%d\"} ", s->energy_estimated ? 1 : 0);
            put_value(out, s->phase_energy_j[i]);
            fputc('\n', out);
        }
    }
    if (!isnan(s->wall_energy_j)) {
        /* The wall boundary, labelled with its source and whether a meter measured it. */
        static const char *const names[3] = {"idle", "prefill", "decode"};
        family(out, "ember_wall_power_watts", "gauge",
               "Power of the whole box at the wall: a configured meter, or the estimate from "
               "the package power (measured 0).");
        fputs("ember_wall_power_watts{source=\"", out);
        put_label(out, s->wall_source, sizeof(s->wall_source));
        fprintf(out, "\",measured=\"%d\"} ", s->wall_measured ? 1 : 0);
        put_value(out, s->wall_power_w);
        fputc('\n', out);
        family(out, "ember_wall_energy_joules_total", "counter",
               "Energy of the whole box at the wall since the agent started.");
        fputs("ember_wall_energy_joules_total ", out);
        put_value(out, s->wall_energy_j);
        fputc('\n', out);
        if (!isnan(s->wall_phase_energy_j[0])) {
            family(out, "ember_wall_phase_energy_joules_total", "counter",
                   "Wall energy since the agent started, by engine phase, integrated over the "
                   "phase intervals.");
            for (int i = 0; i < 3; i++) {
                fprintf(out, "ember_wall_phase_energy_joules_total{phase=\"%s\"} ", names[i]);
                put_value(out, s->wall_phase_energy_j[i]);
                fputc('\n', out);
            }
        }
    }
    gauge(out, "ember_temperature_celsius", "Hottest CPU temperature.", s->temp_c);

    if (s->n_cpufreq > 0) {
        family(out, "ember_cpu_frequency_hertz", "gauge",
               "Current frequency of each cpufreq policy (cluster).");
        for (size_t i = 0; i < s->n_cpufreq && i < AGENT_METRICS_MAX_CPUFREQ; i++) {
            fputs("ember_cpu_frequency_hertz{policy=\"", out);
            put_label(out, s->cpufreq[i].policy, sizeof(s->cpufreq[i].policy));
            fputs("\"} ", out);
            put_value(out, s->cpufreq[i].freq_khz * 1000.0);
            fputc('\n', out);
        }
    }

    if (s->policy[0]) {
        family(out, "ember_governor_policy", "gauge", "The governor policy in force (value 1).");
        fputs("ember_governor_policy{policy=\"", out);
        put_label(out, s->policy, sizeof(s->policy));
        fputs("\"} 1\n", out);
    }
    gauge(out, "ember_power_cap_watts", "Governor power cap (0 = none).", s->power_cap_w);

    if (s->n_http > 0) {
        family(out, "ember_http_responses_total", "counter", "HTTP responses, by status code.");
        for (size_t i = 0; i < s->n_http && i < AGENT_METRICS_MAX_HTTP_CODES; i++)
            fprintf(out, "ember_http_responses_total{code=\"%d\"} %llu\n", s->http[i].code,
                    (unsigned long long)s->http[i].count);
    }
    return ferror(out) ? -EIO : 0;
}
