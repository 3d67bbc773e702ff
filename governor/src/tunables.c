/* The governor's tunables in one table (key, type, range, default, doc), in the style of Redis'
 * config.c: the same rows parse values, print them, fill defaults and validate, so a key cannot be
 * documented in one place and checked differently in another. Cross-key rules (min_mhz <= max_mhz,
 * down_threshold < up_threshold, a known policy) live in gov_tunables_validate. */
#include "governor/policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

#define OFF(f) offsetof(struct gov_tunables, f)
#define SZ(f)  sizeof(((struct gov_tunables *)0)->f)
#define T_INT(k, lo, hi, off0, def, doc)                           \
    {                                                              \
#k, GOV_TUNABLE_INT, OFF(k), SZ(k), lo, hi, off0, def, doc \
    }
#define T_DBL(k, lo, hi, off0, def, doc)                              \
    {                                                                 \
#k, GOV_TUNABLE_DOUBLE, OFF(k), SZ(k), lo, hi, off0, def, doc \
    }
#define T_STR(k, def, doc)                                           \
    {                                                                \
#k, GOV_TUNABLE_STRING, OFF(k), SZ(k), 0, 0, false, def, doc \
    }

static const struct gov_tunable_desc table[] = {
    T_STR(policy, "balanced",
          "Frequency policy: performance, powersave, ondemand, conservative, schedutil, balanced "
          "(engine-phase aware), efficiency (lowest joules per token), quiet."),
    T_INT(tick_ms, 10, 10000, false, "100", "How often the controller steps (ms)."),
    T_INT(min_mhz, 1, 100000, true, "0",
          "Lowest frequency the governor uses (MHz); 0 = cpuinfo_min_freq."),
    T_INT(max_mhz, 1, 100000, true, "0",
          "Highest frequency the governor uses (MHz); 0 = cpuinfo_max_freq (boost included)."),
    T_DBL(thermal_target_c, 30, 125, true, "85",
          "Thermal constraint: hold the hottest sensor of each cluster at or below this (°C), "
          "and always trip_margin_c below the first passive trip point; 0 = off."),
    T_DBL(trip_margin_c, 0, 30, false, "5",
          "How far below the first passive trip point the thermal target is kept (°C)."),
    T_DBL(thermal_kp, 0, 1, false, "0.08",
          "Thermal PI proportional gain: fraction of the frequency range per °C of error."),
    T_DBL(thermal_ki, 0, 1, false, "0.02",
          "Thermal PI integral gain: fraction of the frequency range per °C·s of error."),
    T_DBL(power_cap_w, 0.5, 10000, true, "0",
          "Power constraint: hold package power at or below this (W); 0 = no cap."),
    T_DBL(power_kp, 0, 1, false, "0.3",
          "Power PI proportional gain, in the log domain: relative clock change per unit of "
          "ln(cap / power)."),
    T_DBL(power_ki, 0, 1, false, "1.0",
          "Power PI integral gain, in the log domain: relative clock change per unit of "
          "ln(cap / power) and second."),
    T_DBL(dead_band_pct, 0, 50, false, "3",
          "Ignore target changes smaller than this percent of the current frequency."),
    T_INT(rate_limit_ms, 0, 60000, false, "200",
          "Minimum time between two policy-driven frequency changes of one cluster (ms); phase "
          "changes and constraint decreases are not delayed."),
    T_INT(hysteresis_ms, 0, 60000, false, "300",
          "A policy-driven decrease is applied only after it was asked for this long (ms)."),
    T_INT(up_threshold, 1, 100, false, "80",
          "ondemand/conservative: load percent above which the frequency goes up."),
    T_INT(down_threshold, 1, 99, false, "20",
          "conservative: load percent below which the frequency steps down (< up_threshold)."),
    T_INT(sampling_down_factor, 1, 100000, false, "1",
          "ondemand: ticks to stay at maximum before a decrease is considered; conservative "
          "(1..10): ticks between two downward steps."),
    T_INT(powersave_bias, 0, 1000, false, "0",
          "ondemand: lower the target by this many per-mille."),
    T_INT(freq_step_pct, 1, 100, false, "5",
          "conservative: step size in percent of the maximum frequency."),
    T_INT(rate_limit_us, 0, 1000000, false, "0",
          "schedutil: minimum time between two frequency changes it asks for (µs)."),
    T_DBL(decode_slowdown_max_pct, 0, 50, false, "5",
          "balanced/efficiency: decode may be at most this much slower than at full speed (%)."),
    T_INT(idle_delay_ms, 0, 600000, false, "2000",
          "balanced/efficiency/quiet: drop to the minimum after this long without engine work."),
    T_INT(probe_ms, 100, 60000, false, "1000",
          "balanced without calibration, efficiency: time spent measuring each point of the "
          "online search (ms)."),
    T_INT(reprobe_s, 10, 86400, true, "600",
          "balanced without calibration, efficiency: repeat the search this often (s); 0 = "
          "never."),
    T_DBL(quiet_temp_c, 30, 110, false, "65",
          "quiet: temperature (fan noise proxy) the policy holds the CPU under (°C)."),
    T_INT(memory_lever, 0, 1, false, "1",
          "balanced/efficiency/quiet: also set the memory controller's devfreq clock "
          "(/sys/class/devfreq/*dmc*) per phase: highest in decode (memory-bound), "
          "memory_prefill_pct in prefill, lowest when idle; 0 = leave the board's own devfreq "
          "governor alone. Not available (ignored) where no dmc device exists."),
    T_INT(memory_prefill_pct, 0, 100, false, "0",
          "balanced/efficiency/quiet with memory_lever: the memory clock in prefill, in percent "
          "of its range (prefill is compute-bound and streams the weights once per batch)."),
    T_INT(epp_lever, 0, 1, false, "1",
          "balanced/efficiency/quiet: also set energy_performance_preference per phase on "
          "intel_pstate/amd-pstate with HWP (performance in prefill, balance_performance in "
          "decode, power once idle); 0 = leave it. Not available (ignored) without EPP."),
    T_INT(thread_lever, 0, 1, false, "1",
          "balanced/efficiency/quiet: also choose the engine's thread count and CPUs per phase: "
          "every engine core in prefill (compute-bound), in decode the fewest cores on the "
          "fastest cluster whose measured tokens/s stays within decode_slowdown_max_pct of "
          "the ceiling's (memory-bound decode stops gaining from more cores); 0 = the engine "
          "keeps its configured threads."),
};

#define N_TABLE (sizeof(table) / sizeof(table[0]))

const struct gov_tunable_desc *gov_tunable_table(size_t *ret_n)
{
    if (ret_n)
        *ret_n = N_TABLE;
    return table;
}

static const struct gov_tunable_desc *find_key(const char *key)
{
    for (size_t i = 0; i < N_TABLE; i++)
        if (strcmp(table[i].key, key) == 0)
            return &table[i];
    return NULL;
}

static int set_one(struct gov_tunables *t, const struct gov_tunable_desc *d, const char *value,
                   char *err, size_t err_len)
{
    char *base = (char *)t + d->offset;
    if (d->type == GOV_TUNABLE_STRING) {
        if (strlen(value) >= d->size) {
            snprintf(err, err_len, "%s: value longer than %zu characters", d->key, d->size - 1);
            return -ERANGE;
        }
        if (strcmp(d->key, "policy") == 0 && !gov_policy_find(value)) {
            snprintf(err, err_len, "policy: unknown policy '%s'", value);
            return -EINVAL;
        }
        snprintf(base, d->size, "%s", value);
        return 0;
    }
    double v;
    if (d->type == GOV_TUNABLE_INT) {
        int64_t iv;
        if (cmn_parse_i64(value, &iv) != 0) {
            snprintf(err, err_len, "%s: '%s' is not an integer", d->key, value);
            return -EINVAL;
        }
        v = (double)iv;
    } else if (cmn_parse_double(value, &v) != 0 || !isfinite(v)) {
        snprintf(err, err_len, "%s: '%s' is not a number", d->key, value);
        return -EINVAL;
    }
    if (!(d->zero_means_off && v == 0) && (v < d->min || v > d->max)) {
        snprintf(err, err_len, "%s: %s is outside %g..%g%s", d->key, value, d->min, d->max,
                 d->zero_means_off ? " (or 0)" : "");
        return -ERANGE;
    }
    if (d->type == GOV_TUNABLE_INT)
        *(int *)base = (int)v;
    else
        *(double *)base = v;
    return 0;
}

void gov_tunables_defaults(struct gov_tunables *t)
{
    memset(t, 0, sizeof(*t));
    char err[128];
    for (size_t i = 0; i < N_TABLE; i++)
        (void)set_one(t, &table[i], table[i].default_value, err, sizeof(err));
}

int gov_tunables_set(struct gov_tunables *t, const char *key, const char *value, char *err,
                     size_t err_len)
{
    const struct gov_tunable_desc *d = key ? find_key(key) : NULL;
    if (!d) {
        snprintf(err, err_len, "unknown governor key '%s'", key ? key : "(null)");
        return -ENOENT;
    }
    if (!value) {
        snprintf(err, err_len, "%s: missing value", key);
        return -EINVAL;
    }
    return set_one(t, d, value, err, err_len);
}

int gov_tunables_get(const struct gov_tunables *t, const char *key, char *buf, size_t cap)
{
    const struct gov_tunable_desc *d = key ? find_key(key) : NULL;
    if (!d)
        return -ENOENT;
    const char *base = (const char *)t + d->offset;
    int n;
    if (d->type == GOV_TUNABLE_STRING)
        n = snprintf(buf, cap, "%s", base);
    else if (d->type == GOV_TUNABLE_INT)
        n = snprintf(buf, cap, "%d", *(const int *)base);
    else
        n = snprintf(buf, cap, "%g", *(const double *)base);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

int gov_tunables_validate(const struct gov_tunables *t, const char **ret_key, char *err,
                          size_t err_len)
{
    const char *bad = NULL;
    int rc = 0;
    for (size_t i = 0; i < N_TABLE && !rc; i++) {
        const struct gov_tunable_desc *d = &table[i];
        const char *base = (const char *)t + d->offset;
        if (d->type == GOV_TUNABLE_STRING) {
            if (!memchr(base, 0, d->size)) {
                snprintf(err, err_len, "%s: not terminated", d->key);
                bad = d->key, rc = -EINVAL;
            } else if (strcmp(d->key, "policy") == 0 && !gov_policy_find(base)) {
                snprintf(err, err_len, "policy: unknown policy '%s'", base);
                bad = d->key, rc = -EINVAL;
            }
            continue;
        }
        double v = d->type == GOV_TUNABLE_INT ? (double)*(const int *)base : *(const double *)base;
        if (!isfinite(v) || (!(d->zero_means_off && v == 0) && (v < d->min || v > d->max))) {
            snprintf(err, err_len, "%s: %g is outside %g..%g%s", d->key, v, d->min, d->max,
                     d->zero_means_off ? " (or 0)" : "");
            bad = d->key, rc = -ERANGE;
        }
    }
    if (!rc && t->min_mhz > 0 && t->max_mhz > 0 && t->min_mhz > t->max_mhz) {
        snprintf(err, err_len, "min_mhz: %d is above max_mhz %d", t->min_mhz, t->max_mhz);
        bad = "min_mhz", rc = -ERANGE;
    }
    if (!rc && t->down_threshold >= t->up_threshold) {
        snprintf(err, err_len, "down_threshold: %d must be below up_threshold %d",
                 t->down_threshold, t->up_threshold);
        bad = "down_threshold", rc = -ERANGE;
    }
    if (!rc) {
        const struct gov_policy_ops *ops = gov_policy_find(t->policy);
        if (ops && ops->validate)
            rc = ops->validate(t, &bad, err, err_len);
    }
    if (ret_key)
        *ret_key = rc ? bad : NULL;
    return rc;
}
