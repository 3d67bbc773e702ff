/* Unit tests of the Prometheus exposition (agent/api/metrics.c): exact lines for known values,
 * cumulative histogram buckets, omitted unknowns, escaped labels, and a structural check of the
 * whole text (every sample belongs to a family announced once by HELP and TYPE). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember_test.h"
#include "metrics.h"

static char *render(const struct agent_metrics_snapshot *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK_EQ_INT(agent_metrics_write(s, f), 0);
    fclose(f);
    return text;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Checks the exposition grammar we rely on; returns the number of samples. */
static int check_structure(const char *text)
{
    char families[64][64];
    char types[64][16];
    int nfam = 0, samples = 0;
    char *copy = strdup(text);
    CHECK(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[64];
            CHECK(sscanf(line + 7, "%63s", name) == 1);
            for (int i = 0; i < nfam; i++)
                CHECK_MSG(strcmp(families[i], name) != 0, "family %s announced twice", name);
            if (nfam < 64) {
                snprintf(families[nfam], sizeof(families[0]), "%s", name);
                types[nfam][0] = '\0';
                nfam++;
            }
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[64], type[16];
            CHECK(sscanf(line + 7, "%63s %15s", name, type) == 2);
            CHECK_MSG(nfam > 0 && strcmp(families[nfam - 1], name) == 0,
                      "TYPE %s does not follow its HELP", name);
            CHECK_MSG(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                          strcmp(type, "histogram") == 0,
                      "type %s", type);
            if (nfam > 0)
                snprintf(types[nfam - 1], sizeof(types[0]), "%s", type);
            continue;
        }
        CHECK_MSG(line[0] != '#', "stray comment: %s", line);
        size_t n = strcspn(line, "{ ");
        CHECK_MSG(valid_name(line, n), "bad name in %s", line);
        CHECK_MSG(nfam > 0, "sample before any family: %s", line);
        if (nfam > 0) {
            const char *fam = families[nfam - 1];
            size_t fl = strlen(fam);
            bool ok = n == fl && strncmp(line, fam, fl) == 0;
            if (strcmp(types[nfam - 1], "histogram") == 0)
                ok = strncmp(line, fam, fl) == 0 &&
                     (strncmp(line + fl, "_bucket{", 8) == 0 ||
                      strncmp(line + fl, "_sum ", 5) == 0 || strncmp(line + fl, "_count ", 7) == 0);
            CHECK_MSG(ok, "sample %s outside family %s", line, fam);
            CHECK_MSG(strcmp(types[nfam - 1], "counter") != 0 ||
                          strstr(fam, "_total") == fam + fl - 6,
                      "counter %s without _total", fam);
        }
        const char *v = strrchr(line, ' ');
        CHECK_MSG(v != NULL, "no value: %s", line);
        if (v) {
            char *end;
            double d = strtod(v + 1, &end);
            (void)d;
            CHECK_MSG(*end == '\0', "bad value in %s", line);
        }
        samples++;
    }
    free(copy);
    return samples;
}

static void test_full(void)
{
    struct agent_metrics_snapshot s;
    agent_metrics_snapshot_init(&s);
    s.model_loaded = true;
    snprintf(s.model, sizeof(s.model), "stories\"260K\\x\ny");
    s.requests = 5;
    s.prompt_tokens = 120;
    s.gen_tokens = 345;
    s.prefill_tokens_per_s = 512.5;
    s.decode_tokens_per_s = 42.25;
    const double obs[] = {0.01, 0.2, 0.2, 7, 1000};
    for (size_t i = 0; i < 5; i++)
        agent_metrics_histogram_observe(&s.latency, obs[i]);
    s.queue_depth = 3;
    s.busy = true;
    s.engine_threads = 1;
    s.engine_max_threads = 4;
    s.power_w = 6.5;
    s.energy_j = 1234.5;
    s.temp_c = 55;
    s.n_cpufreq = 2;
    snprintf(s.cpufreq[0].policy, sizeof(s.cpufreq[0].policy), "policy0");
    s.cpufreq[0].freq_khz = 2400000;
    snprintf(s.cpufreq[1].policy, sizeof(s.cpufreq[1].policy), "policy4");
    s.cpufreq[1].freq_khz = 800000;
    snprintf(s.policy, sizeof(s.policy), "balanced");
    s.power_cap_w = 0;
    s.n_http = 2;
    s.http[0].code = 200;
    s.http[0].count = 9;
    s.http[1].code = 429;
    s.http[1].count = 1;

    char *t = render(&s);
    static const char *want[] = {
        "# HELP ember_model_loaded ",
        "# TYPE ember_model_loaded gauge\n",
        "ember_model_loaded{model=\"stories\\\"260K\\\\x\\ny\"} 1\n",
        "# TYPE ember_requests_total counter\nember_requests_total 5\n",
        "# TYPE ember_tokens_total counter\n",
        "ember_tokens_total{kind=\"prompt\"} 120\n",
        "ember_tokens_total{kind=\"generated\"} 345\n",
        "# TYPE ember_tokens_per_second gauge\n",
        "ember_tokens_per_second{phase=\"prefill\"} 512.5\n",
        "ember_tokens_per_second{phase=\"decode\"} 42.25\n",
        "# TYPE ember_request_duration_seconds histogram\n",
        "ember_request_duration_seconds_bucket{le=\"0.05\"} 1\n"
        "ember_request_duration_seconds_bucket{le=\"0.1\"} 1\n"
        "ember_request_duration_seconds_bucket{le=\"0.25\"} 3\n"
        "ember_request_duration_seconds_bucket{le=\"0.5\"} 3\n"
        "ember_request_duration_seconds_bucket{le=\"1\"} 3\n"
        "ember_request_duration_seconds_bucket{le=\"2.5\"} 3\n"
        "ember_request_duration_seconds_bucket{le=\"5\"} 3\n"
        "ember_request_duration_seconds_bucket{le=\"10\"} 4\n"
        "ember_request_duration_seconds_bucket{le=\"30\"} 4\n"
        "ember_request_duration_seconds_bucket{le=\"60\"} 4\n"
        "ember_request_duration_seconds_bucket{le=\"120\"} 4\n"
        "ember_request_duration_seconds_bucket{le=\"300\"} 4\n"
        "ember_request_duration_seconds_bucket{le=\"+Inf\"} 5\n"
        "ember_request_duration_seconds_sum 1007.41\n"
        "ember_request_duration_seconds_count 5\n",
        "# TYPE ember_queue_depth gauge\nember_queue_depth 3\n",
        "ember_engine_busy 1\n",
        "# TYPE ember_engine_threads gauge\nember_engine_threads 1\n",
        "ember_engine_max_threads 4\n",
        "# TYPE ember_power_watts gauge\nember_power_watts 6.5\n",
        "# TYPE ember_energy_joules_total counter\nember_energy_joules_total 1234.5\n",
        "# TYPE ember_temperature_celsius gauge\nember_temperature_celsius 55\n",
        "# TYPE ember_cpu_frequency_hertz gauge\n",
        "ember_cpu_frequency_hertz{policy=\"policy0\"} 2400000000\n",
        "ember_cpu_frequency_hertz{policy=\"policy4\"} 800000000\n",
        "# TYPE ember_governor_policy gauge\nember_governor_policy{policy=\"balanced\"} 1\n",
        "ember_power_cap_watts 0\n",
        "# TYPE ember_http_responses_total counter\n",
        "ember_http_responses_total{code=\"200\"} 9\n",
        "ember_http_responses_total{code=\"429\"} 1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_CONTAINS(t, want[i]);
    /* 1 model + 1 requests + 2 tokens + 2 rates + 15 histogram + queue, busy, power, energy,
     * temperature + 2 frequencies + policy + cap + 2 http codes + 5 of the model directory
     * (loaded, loaded bytes, loads, unloads, evictions) + engine threads and their ceiling */
    CHECK_EQ_INT(check_structure(t), 1 + 1 + 2 + 2 + 15 + 5 + 2 + 1 + 1 + 2 + 5 + 2);
    free(t);
}

/* The wall boundary beside the package one, labelled with its source and measured or not. */
static void test_wall(void)
{
    struct agent_metrics_snapshot s;
    agent_metrics_snapshot_init(&s);
    s.energy_j = 100;
    s.wall_power_w = 12.5;
    s.wall_energy_j = 250;
    s.wall_phase_energy_j[0] = 200;
    s.wall_phase_energy_j[1] = 20;
    s.wall_phase_energy_j[2] = 30;
    snprintf(s.wall_source, sizeof(s.wall_source), "mqtt:tele/plug\"1/SENSOR");
    s.wall_measured = true;
    char *t = render(&s);
    CHECK_CONTAINS(t,
                   "# TYPE ember_wall_power_watts gauge\n"
                   "ember_wall_power_watts{source=\"mqtt:tele/plug\\\"1/SENSOR\",measured=\"1\"} "
                   "12.5\n");
    CHECK_CONTAINS(t, "# TYPE ember_wall_energy_joules_total counter\n"
                      "ember_wall_energy_joules_total 250\n");
    CHECK_CONTAINS(t, "ember_wall_phase_energy_joules_total{phase=\"idle\"} 200\n");
    CHECK_CONTAINS(t, "ember_wall_phase_energy_joules_total{phase=\"prefill\"} 20\n");
    CHECK_CONTAINS(t, "ember_wall_phase_energy_joules_total{phase=\"decode\"} 30\n");
    CHECK(check_structure(t) > 0);
    free(t);
    /* the estimate says so */
    s.wall_measured = false;
    snprintf(s.wall_source, sizeof(s.wall_source), "estimate");
    t = render(&s);
    CHECK_CONTAINS(t, "ember_wall_power_watts{source=\"estimate\",measured=\"0\"} 12.5\n");
    free(t);
}

static void test_minimal(void)
{
    struct agent_metrics_snapshot s;
    agent_metrics_snapshot_init(&s);
    char *t = render(&s);
    CHECK_CONTAINS(t, "ember_model_loaded{model=\"\"} 0\n");
    CHECK_CONTAINS(t, "ember_request_duration_seconds_bucket{le=\"+Inf\"} 0\n");
    CHECK_CONTAINS(t, "ember_request_duration_seconds_sum 0\n");
    /* Unknowns are left out entirely, not reported as 0 or NaN. */
    static const char *absent[] = {"ember_power_watts",
                                   "ember_energy_joules",
                                   "ember_temperature",
                                   "ember_cpu_frequency",
                                   "ember_governor_policy",
                                   "ember_power_cap",
                                   "ember_tokens_per_second",
                                   "ember_http_responses",
                                   "NaN",
                                   "ember_wall"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        CHECK_MSG(strstr(t, absent[i]) == NULL, "%s present", absent[i]);
    CHECK(check_structure(t) > 0);
    free(t);
}

static void test_histogram(void)
{
    struct agent_metrics_histogram h = {0};
    /* Bounds are inclusive (le), negatives and NaN count as 0. */
    agent_metrics_histogram_observe(&h, 0.05);
    agent_metrics_histogram_observe(&h, 0.0500001);
    agent_metrics_histogram_observe(&h, -1);
    agent_metrics_histogram_observe(&h, NAN);
    agent_metrics_histogram_observe(&h, 300);
    agent_metrics_histogram_observe(&h, 301);
    CHECK_EQ_INT(h.bucket[0], 3);
    CHECK_EQ_INT(h.bucket[1], 1);
    CHECK_EQ_INT(h.bucket[AGENT_METRICS_LATENCY_BUCKETS - 1], 1);
    CHECK_EQ_INT(h.bucket[AGENT_METRICS_LATENCY_BUCKETS], 1);
    CHECK_EQ_INT(h.count, 6);
    CHECK_NEAR(h.sum, 0.05 + 0.0500001 + 300 + 301, 1e-9);
    for (size_t i = 1; i < AGENT_METRICS_LATENCY_BUCKETS; i++)
        CHECK(agent_metrics_latency_bounds_s[i] > agent_metrics_latency_bounds_s[i - 1]);
}

int main(void)
{
    test_full();
    test_minimal();
    test_wall();
    test_histogram();
    return et_finish();
}
