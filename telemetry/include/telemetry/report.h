/* Reports over the telemetry history: energy, joules per token per engine phase and per
 * governor policy, sessions (requests) and events for a time window, as a struct, as JSON, and
 * as a hand-written SVG chart of power, frequency and temperature over time. Energy per phase is
 * the increase of the energy total between consecutive samples, attributed to the phase (and
 * policy) recorded with the later sample; the first sample of the window only opens it. Older
 * minutes whose raw samples were removed by retention add their 1-minute rollup energy to the
 * total (not to the breakdowns). */
#ifndef TELEMETRY_REPORT_H
#define TELEMETRY_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "telemetry/sample.h"
#include "telemetry/store.h"

#define TEL_REPORT_GROUPS_MAX 16

struct tel_report_params {
    uint64_t since_ns; /* wall clock, inclusive */
    uint64_t until_ns; /* wall clock, inclusive; 0 = now */
};

struct tel_report_group {
    char name[TEL_NAME_MAX];
    uint64_t samples;
    uint64_t tokens;
    double energy_j;
    double seconds;     /* sample intervals up to 60 s each (longer ones are outages) */
    double j_per_token; /* NAN without tokens */
    double avg_power_w; /* energy of the counted intervals / seconds; NAN without time */
};

struct tel_report_session_group {
    char name[TEL_NAME_MAX];
    uint64_t count, prompt_tokens, gen_tokens;
    double energy_j;
    double j_per_token; /* energy / generated tokens (J/token everywhere); NAN without any */
    double ttft_ms_avg, duration_ms_avg;
};

struct tel_report {
    uint64_t since_ns, until_ns;
    uint64_t samples; /* raw samples in the window */
    uint64_t first_ts_ns, last_ts_ns;
    double energy_j;        /* samples plus rollups of older minutes */
    double rollup_energy_j; /* the part that came from rollups */
    double seconds;
    double avg_power_w, max_power_w;
    double avg_temp_c, max_temp_c;
    double avg_freq_mhz, max_freq_mhz;
    uint64_t tokens;
    double j_per_token;
    uint32_t n_phases, n_policies, n_sources;
    struct tel_report_group phases[TEL_REPORT_GROUPS_MAX];
    struct tel_report_group policies[TEL_REPORT_GROUPS_MAX];
    struct tel_report_group sources[TEL_SOURCE_COUNT_]; /* samples per power source */
    struct tel_report_session_group sessions;           /* all requests; name "all" */
    uint32_t n_session_policies;
    struct tel_report_session_group session_policies[TEL_REPORT_GROUPS_MAX];
    uint64_t events;
    uint32_t n_event_kinds;
    struct {
        char kind[TEL_NAME_MAX];
        uint64_t count;
    } event_kinds[TEL_REPORT_GROUPS_MAX];
    /* Energy by engine phase integrated over the phase intervals (samples since schema 3 carry
     * it); intervals of older samples are filed under their sample's phase label and counted
     * in label_intervals. */
    struct {
        double prefill_j, decode_j, idle_j;
        uint64_t exact_intervals, label_intervals;
        double active_j_per_token; /* (prefill + decode) / generated tokens: idle not attributed */
        double all_j_per_token;    /* prefill + decode + idle / generated tokens: idle attributed */
        char scope[16];            /* boundary of most samples: package, soc, wall, none */
        uint64_t estimated_samples; /* samples whose energy came from the power model */
    } by_phase;
    /* The second boundary, the whole box at the wall (samples since schema 5 that carry it):
     * its energy over the window, the exact phase split, J/token with and without idle, and how
     * much of it a meter measured (the rest is the estimate from the package power). */
    struct {
        uint64_t intervals, measured_intervals, exact_intervals;
        double energy_j, prefill_j, decode_j, idle_j;
        double active_j_per_token, all_j_per_token;
        char source[96]; /* the source of most intervals */
    } wall;
    uint64_t seq_lo_, seq_hi_; /* internal: the window's seq range */
};

/* "24h", "90m", "7d", "2w", "45s" or a plain number of seconds -> seconds. -EINVAL otherwise
 * (zero, negative, overflow, unknown unit). */
int tel_report_parse_duration(const char *text, uint64_t *ret_s);

/* Fills *ret from the store (open it read_only for reports). */
int tel_report_build(struct tel_store *store, const struct tel_report_params *params,
                     struct tel_report *ret, char *err, size_t err_len);

/* The report as a JSON object (malloc'd, free() it); NULL when out of memory. NAN -> null. */
char *tel_report_json(const struct tel_report *report);

/* The human-readable summary. */
void tel_report_print(const struct tel_report *report, FILE *out);

/* An SVG document (three panels sharing the time axis: power W, mean CPU frequency MHz,
 * temperature C) for the window, downsampled to at most max_points per series (0: 720), from raw
 * samples or, where those were removed, from the 1-minute or 1-hour rollups. */
int tel_report_svg(struct tel_store *store, const struct tel_report_params *params,
                   uint32_t max_points, FILE *out, char *err, size_t err_len);

#endif
