/* Power and energy sources for telemetry, tried in order of trust: RAPL through powercap
 * (intel-rapl zones: packages plus DRAM, or psys when present), hwmon power/energy channels,
 * the Raspberry Pi 5's PMIC rails (a command printing `vcgencmd pmic_read_adc`), batteries that
 * are discharging (power_supply power_now), and when none of these can be read a
 * model estimate from per-CPU utilisation and frequency. All paths are under a configurable root
 * so tests run against fake trees. The energy total never decreases: counter wraps are undone,
 * a source switch continues from the same total, and the caller seeds the total saved in the
 * store at start. The model inputs are plain numbers handed in by the caller. */
#ifndef TELEMETRY_POWER_H
#define TELEMETRY_POWER_H

#include <stddef.h>
#include <stdint.h>

#include "common/keydesc.h"
#include "common/range.h"
#include "telemetry/sample.h"

#define TEL_OPP_MAX 16

/* The estimate: P = idle_w + sum over CPUs of (cpu_static_w + cpu_dyn_w * util * f_GHz * V(f)^2)
 * where V(f) interpolates linearly in the (opp_mhz, opp_v) table (clamped at its ends). The
 * dynamic term is the classic C*f*V^2 switching power with activity factor util; cpu_dyn_w is the
 * effective switched capacitance expressed in W per GHz*V^2. Defaults describe a generic x86
 * laptop-class core (800 MHz at 0.70 V to 4000 MHz at 1.20 V, ~6 W per core flat out); calibrate
 * against RAPL on a similar machine for better numbers. */
struct tel_estimate_params {
    double idle_w;       /* platform floor: memory, uncore, board (default 2.0) */
    double cpu_static_w; /* leakage per CPU counted in the inputs (default 0.15) */
    double cpu_dyn_w;    /* W per (GHz * V^2) at util 1.0 (default 1.0) */
    uint32_t n_opp;      /* points in the voltage table, frequencies ascending (default 2) */
    double opp_mhz[TEL_OPP_MAX];
    double opp_v[TEL_OPP_MAX];
};

struct tel_power_params {
    const char *root;      /* prefix for /sys ("" or NULL: the real one) */
    uint32_t sources_mask; /* allowed sources, bits (1u << TEL_SOURCE_x); 0 = all */
    uint32_t reprobe_ms;   /* after falling back, retry more trusted sources this often
                              (default 60000; 0 = never) */
    struct tel_estimate_params estimate;
    /* Reads a RAPL energy_uj or hwmon energyN_input counter (root-only since CVE-2020-8694 and
     * CVE-2020-12912) like cmn_read_u64; NULL: read the file directly. The agent hands in its
     * privileged helper's reader. */
    int (*read_counter)(void *ctx, const char *path, uint64_t *ret);
    void *read_counter_ctx;
    /* The Raspberry Pi 5 PMIC source: a command printing `vcgencmd pmic_read_adc`'s format, run
     * without a shell (default "vcgencmd pmic_read_adc"; "" or a program not found: no such
     * source). */
    const char *pmic_command;
};

/* What the caller knows about the CPUs this tick (for the estimate; may be NULL otherwise). */
struct tel_power_inputs {
    uint32_t n_cpu;
    const double *util;     /* per CPU, 0..1 */
    const double *freq_mhz; /* per CPU */
};

struct tel_power_reading {
    double power_w;  /* average over the interval since the previous reading; NAN on the
                        reading right after a switch to a counter source */
    double energy_j; /* running total, never decreasing */
    enum tel_source source;
    double package_w, core_w, dram_w; /* RAPL domains; NAN when unknown */
    int switched;                     /* the source changed at this reading */
};

struct tel_power;

void tel_power_params_defaults(struct tel_power_params *p);
/* What tel_estimate_params_check accepts for the estimate's coefficients. */
struct tel_estimate_ranges {
    struct cmn_range idle_w, cpu_static_w, cpu_dyn_w;
};
extern const struct tel_estimate_ranges tel_estimate_ranges;
/* The [telemetry] configuration keys telemetry enforces itself (the power model's estimate_*
 * coefficients and the store's commit_interval_ms, retention_days, max_db_mb: type, range,
 * default, documentation; config_keys.c); the agent composes its key table from them. */
const struct cmn_key_desc *tel_config_keys(size_t *ret_n);
/* Checks the table (ascending, positive, finite) and the coefficients; err says which. */
int tel_estimate_params_check(const struct tel_estimate_params *p, char *err, size_t err_len);
/* Sums V x I over the rails of `vcgencmd pmic_read_adc` output (pmic.c): 0 with the watts and
 * the number of rails with both readings, or -EBADMSG with err saying why. */
int tel_pmic_parse(const char *text, size_t len, double *ret_w, int *ret_rails, char *err,
                   size_t err_len);
/* The model on its own. */
double tel_estimate_power_w(const struct tel_estimate_params *p, const struct tel_power_inputs *in);

/* Probes the sources and opens the most trusted readable one (the estimate is always there
 * unless masked out: then -ENODEV). now_ns is CLOCK_MONOTONIC (or any clock used consistently
 * with tel_power_read); energy_total_j continues a saved total. */
int tel_power_new(const struct tel_power_params *params, uint64_t now_ns, double energy_total_j,
                  struct tel_power **ret_power, char *err, size_t err_len);
/* One reading. A source that stops being readable (EACCES, a FIFO, a vanished file, a battery
 * no longer discharging) is replaced by the next one in the same call. -ENODEV when no allowed
 * source is left. */
int tel_power_read(struct tel_power *p, uint64_t now_ns, const struct tel_power_inputs *in,
                   struct tel_power_reading *ret);
enum tel_source tel_power_source(const struct tel_power *p);
/* One line naming the source and the files it uses, for logs ("rapl: package-0, dram"). */
const char *tel_power_describe(const struct tel_power *p);
void tel_power_free(struct tel_power *p);

#endif
