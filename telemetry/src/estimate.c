/* The model estimate used when no power meter can be read (see power.h for the formula). It is
 * always available; its inputs are whatever the caller measured this tick. Unknown or invalid
 * inputs for a CPU (NAN, out of range) count that CPU as idle at the lowest table frequency. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "power_internal.h"

/* Generous for any board, tight enough to catch a unit slip (mW for W, the machine's total for
 * one CPU's): a 1 kW platform floor, 100 W of leakage or of switching per CPU. */
const struct tel_estimate_ranges tel_estimate_ranges = {
    .idle_w = {0, 1000, false},
    .cpu_static_w = {0, 100, false},
    .cpu_dyn_w = {0, 100, false},
};

static bool coefficient_ok(const char *name, double v, const struct cmn_range *r, char *err,
                           size_t err_len)
{
    if (cmn_range_contains(r, v))
        return true;
    char range[64];
    cmn_range_format(r, range, sizeof(range));
    snprintf(err, err_len, "estimate %s %g out of range %s", name, v, range);
    return false;
}

int tel_estimate_params_check(const struct tel_estimate_params *e, char *err, size_t err_len)
{
    const struct tel_estimate_ranges *r = &tel_estimate_ranges;
    if (!coefficient_ok("idle_w", e->idle_w, &r->idle_w, err, err_len) ||
        !coefficient_ok("cpu_static_w", e->cpu_static_w, &r->cpu_static_w, err, err_len) ||
        !coefficient_ok("cpu_dyn_w", e->cpu_dyn_w, &r->cpu_dyn_w, err, err_len))
        return -EINVAL;
    if (e->n_opp < 1 || e->n_opp > TEL_OPP_MAX) {
        snprintf(err, err_len, "estimate voltage table has %u points, need 1..%d", e->n_opp,
                 TEL_OPP_MAX);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < e->n_opp; i++) {
        if (!isfinite(e->opp_mhz[i]) || e->opp_mhz[i] <= 0 || e->opp_mhz[i] > 100000 ||
            !isfinite(e->opp_v[i]) || e->opp_v[i] <= 0 || e->opp_v[i] > 5) {
            snprintf(err, err_len, "estimate voltage table point %u (%g MHz, %g V) out of range", i,
                     e->opp_mhz[i], e->opp_v[i]);
            return -EINVAL;
        }
        if (i > 0 && e->opp_mhz[i] <= e->opp_mhz[i - 1]) {
            snprintf(err, err_len, "estimate voltage table: %g MHz after %g MHz, need ascending",
                     e->opp_mhz[i], e->opp_mhz[i - 1]);
            return -EINVAL;
        }
    }
    return 0;
}

static double volts_at(const struct tel_estimate_params *e, double mhz)
{
    if (mhz <= e->opp_mhz[0])
        return e->opp_v[0];
    for (uint32_t i = 1; i < e->n_opp; i++) {
        if (mhz <= e->opp_mhz[i]) {
            double t = (mhz - e->opp_mhz[i - 1]) / (e->opp_mhz[i] - e->opp_mhz[i - 1]);
            return e->opp_v[i - 1] + t * (e->opp_v[i] - e->opp_v[i - 1]);
        }
    }
    return e->opp_v[e->n_opp - 1];
}

double tel_estimate_power_w(const struct tel_estimate_params *e, const struct tel_power_inputs *in)
{
    double p = e->idle_w;
    if (!in || !in->util || !in->freq_mhz)
        return p;
    for (uint32_t i = 0; i < in->n_cpu; i++) {
        double u = in->util[i], f = in->freq_mhz[i];
        if (!isfinite(u) || u < 0)
            u = 0;
        if (u > 1)
            u = 1;
        if (!isfinite(f) || f <= 0 || f > 100000)
            f = e->opp_mhz[0];
        double v = volts_at(e, f);
        p += e->cpu_static_w + e->cpu_dyn_w * u * (f * 1e-3) * v * v;
    }
    return p;
}

static int estimate_open(const struct tel_power_params *p, void **ret_state, char *desc,
                         size_t desc_len)
{
    (void)p;
    *ret_state = NULL;
    snprintf(desc, desc_len, "estimate: model from utilisation and frequency");
    return 0;
}

static int estimate_read(void *state, const struct tel_power_params *p,
                         const struct tel_power_inputs *in, struct tel_src_reading *ret)
{
    (void)state;
    ret->is_energy = 0;
    ret->power_w = tel_estimate_power_w(&p->estimate, in);
    return 0;
}

static void estimate_close(void *state)
{
    (void)state;
}

const struct tel_src_ops tel_src_estimate = {
    .source = TEL_SOURCE_ESTIMATE,
    .open = estimate_open,
    .read = estimate_read,
    .close = estimate_close,
};
