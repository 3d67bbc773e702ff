/* The plain records telemetry stores and publishes: one periodic sample of power, energy,
 * temperature, utilisation and frequency; one session per inference request; one event. The agent
 * fills them from the engine and governor; telemetry knows nothing of either. Strings are short
 * fixed arrays so a record can be copied by value and kept in a bounded in-memory queue. */
#ifndef TELEMETRY_SAMPLE_H
#define TELEMETRY_SAMPLE_H

#include <stdint.h>

#define TEL_MAX_FREQ        16  /* CPUs or clusters per sample; more are averaged by the caller */
#define TEL_NAME_MAX        32  /* policy, phase, event kind */
#define TEL_MODEL_MAX       128 /* a session's model id */
#define TEL_DETAIL_MAX      256 /* event detail text */
#define TEL_WALL_SOURCE_MAX 96  /* a wall figure's source label */

/* Where a sample's power and energy came from, in order of trust. */
enum tel_source {
    TEL_SOURCE_NONE = 0,
    TEL_SOURCE_RAPL,     /* powercap intel-rapl energy counters */
    TEL_SOURCE_HWMON,    /* hwmon power*_input / energy*_input */
    TEL_SOURCE_BATTERY,  /* power_supply power_now (or current_now * voltage_now) */
    TEL_SOURCE_ESTIMATE, /* model from utilisation and frequency */
    TEL_SOURCE_PMIC,     /* Raspberry Pi 5 PMIC rails (vcgencmd pmic_read_adc); trusted after
                            hwmon, before battery */
    TEL_SOURCE_COUNT_,
};

/* The boundary a source measures: "package" (RAPL package, or the estimate, which models the
 * CPU), "soc" (hwmon rails of a SoC, the Pi 5's PMIC rails), "wall" (a battery feeds the whole
 * box); "none" for none. */
const char *tel_source_scope(enum tel_source source);

/* "none", "rapl", "hwmon", "battery", "estimate", "pmic"; "unknown" out of range. */
const char *tel_source_name(enum tel_source source);
/* -EINVAL when name is not one of the names above. */
int tel_source_from_name(const char *name, enum tel_source *ret_source);

struct tel_sample {
    uint64_t seq;    /* assigned by tel_store_append_sample, strictly increasing, never reused */
    uint64_t ts_ns;  /* wall clock (CLOCK_REALTIME) */
    double power_w;  /* average power since the previous sample; NAN when unknown */
    double energy_j; /* monotonic total, never decreases (wraps and restarts handled) */
    double temp_c;   /* hottest sensor; NAN when unknown */
    double util;     /* mean CPU utilisation 0..1 */
    uint32_t n_freq; /* valid entries of freq_mhz */
    double freq_mhz[TEL_MAX_FREQ]; /* current frequency per CPU or cluster */
    char policy[TEL_NAME_MAX];     /* governor policy name */
    char phase[TEL_NAME_MAX];      /* engine phase: "idle", "prefill", "decode" */
    enum tel_source source;
    uint64_t tokens;     /* tokens generated or processed since the previous sample */
    double tokens_per_s; /* over the previous sample interval */
    /* The interval's energy split by the engine phase it was spent in, integrated over the
     * phase intervals themselves (the meter read at every phase change), not by the label a
     * sample happened to carry. Valid only when has_phase_energy; they add up to the interval's
     * energy_j delta. */
    int has_phase_energy;
    double prefill_j, decode_j, idle_j;
    /* The second boundary, the whole box at the wall (telemetry/wall.h): valid only when
     * has_wall. wall_measured says whether a meter read it (1) or it is the estimate from the
     * package power (0); wall_source names the meter ("mqtt:<topic>", "hwmon:<dev>", "battery")
     * or "estimate". The wall phase split is valid when has_phase_energy as well. */
    int has_wall;
    int wall_measured;
    double wall_power_w, wall_energy_j;
    double wall_prefill_j, wall_decode_j, wall_idle_j;
    char wall_source[TEL_WALL_SOURCE_MAX];
};

struct tel_session {
    uint64_t id;    /* 0: assigned by tel_store_add_session */
    uint64_t ts_ns; /* wall clock at request start */
    uint64_t prompt_tokens;
    uint64_t gen_tokens;
    double ttft_ms;
    double duration_ms;
    double energy_j;
    double j_per_token; /* energy_j / (prompt_tokens + gen_tokens); 0 when no tokens */
    char policy[TEL_NAME_MAX];
    char model[TEL_MODEL_MAX]; /* the model that served it ("" = unknown: before schema 4) */
};

struct tel_event {
    uint64_t ts_ns;          /* wall clock */
    char kind[TEL_NAME_MAX]; /* "governor", "thermal", "store", "error", ... */
    char detail[TEL_DETAIL_MAX];
};

/* Mean of the valid freq_mhz entries; NAN when there are none. */
double tel_sample_freq_avg_mhz(const struct tel_sample *s);

#endif
