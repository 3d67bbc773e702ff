/* The plant beyond the CPU package: what a wall meter sees (board, DRAM traffic, power-supply
 * loss), the firmware's own power limits with their time window (Intel PL1/PL2/tau, AMD
 * slow/fast PPT), and the steady states a reviewer measures (idle at the wall, all cores under
 * sustained load, decode speed), which tests/sim_reference_test.c holds against the figures each
 * profile cites. docs/governor-sim.md, "The plant", gives the equations. */
#include "sim_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define STEADY_TEMP_ITER   40
#define STEADY_SEARCH_ITER 30

double gov_sim_dram_gbs(const struct gov_sim_profile *p, enum gov_phase ph, const uint32_t *khz)
{
    if (p->weights_gb <= 0)
        return 0;
    if (ph == GOV_PHASE_DECODE)
        return p->weights_gb / gov_sim_decode_token_s(p, khz);
    if (ph == GOV_PHASE_PREFILL) {
        /* a prompt is multiplied in batches: the weights stream once per batch */
        double batch = p->prefill_batch_tokens > 0 ? p->prefill_batch_tokens : 64;
        return p->weights_gb * gov_sim_prefill_tok_s(p, khz) / batch;
    }
    return 0;
}

double gov_sim_wall_w(const struct gov_sim_profile *p, double package_w, double dram_gbs)
{
    double dc = package_w + p->board_w + p->dram_idle_w + p->dram_w_per_gbs * dram_gbs;
    double eff = p->psu_efficiency > 0 ? p->psu_efficiency : 1;
    return dc / eff + p->psu_fixed_w;
}

void gov_sim_fw_limit_init(const struct gov_sim_profile *p, struct gov_sim_fw_limit *fw,
                           double package_w)
{
    (void)p;
    fw->avg_w = package_w;
}

double gov_sim_fw_limit_w(const struct gov_sim_profile *p, const struct gov_sim_fw_limit *fw)
{
    double pl1 = p->firmware_power_limit_w;
    if (pl1 <= 0)
        return 0;
    if (p->pl2_w > pl1 && p->pl_tau_s > 0 && fw->avg_w < pl1)
        return p->pl2_w;
    return pl1;
}

void gov_sim_fw_limit_update(const struct gov_sim_profile *p, struct gov_sim_fw_limit *fw,
                             double package_w, double dt_s)
{
    if (p->pl_tau_s > 0)
        fw->avg_w += (package_w - fw->avg_w) * fmin(1.0, dt_s / p->pl_tau_s);
    else
        fw->avg_w = package_w;
}

void gov_sim_account_wall(struct gov_sim_result *r, enum gov_phase ph, double joules)
{
    r->wall_energy_j += joules;
    if (ph == GOV_PHASE_PREFILL)
        r->wall_prefill_energy_j += joules;
    else if (ph == GOV_PHASE_DECODE)
        r->wall_decode_energy_j += joules;
    else
        r->wall_idle_energy_j += joules;
}

void gov_sim_finish_wall(struct gov_sim_result *r)
{
    r->wall_joules_per_token =
        r->gen_tokens ? (r->wall_prefill_energy_j + r->wall_decode_energy_j) / r->gen_tokens : NAN;
    r->wall_joules_per_token_with_idle = r->gen_tokens ? r->wall_energy_j / r->gen_tokens : NAN;
}

/* ---- steady states ---- */

/* The temperature a constant load settles at (leakage rises with it, so iterate). */
static double settle(const struct gov_sim_profile *p, double ambient, const uint32_t *khz,
                     const double *busy, const double *act, double *watts)
{
    double t = ambient, w = 0;
    for (int i = 0; i < STEADY_TEMP_ITER; i++) {
        w = gov_sim_package_w(p, khz, busy, act, t);
        t = ambient + w * (p->r_jc + p->r_ca);
    }
    *watts = w;
    return t;
}

/* Every cluster at fraction g of the way from its floor to its ceiling, snapped to the table. */
static void scaled_khz(const struct gov_sim_profile *p, double g, bool engine_only, uint32_t *khz)
{
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        uint32_t lo = k->opps[0].khz, hi = k->opps[k->n_opps - 1].khz;
        if (engine_only && !k->engine)
            khz[i] = lo;
        else
            khz[i] = gov_sim_snap_khz(k, (uint32_t)(lo + g * (hi - lo)));
    }
}

static unsigned fastest_engine_cluster(const struct gov_sim_profile *p)
{
    unsigned best = 0;
    bool found = false;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        if (!k->engine)
            continue;
        if (!found ||
            k->opps[k->n_opps - 1].khz > p->clusters[best].opps[p->clusters[best].n_opps - 1].khz)
            best = i;
        found = true;
    }
    return best;
}

/* The highest clock fraction whose sustained state respects PL1 and the throttling temperature:
 * what a machine settles at after minutes of load (the kernel's or firmware's throttling and
 * the firmware's long-term limit, not the governor). */
static double sustained_fraction(const struct gov_sim_profile *p, double ambient,
                                 const double *busy, const double *act, bool engine_only)
{
    double throttle = p->throttle_c > 0 ? p->throttle_c : p->tjmax_c;
    uint32_t khz[GOV_MAX_CLUSTERS];
    double lo = 0, hi = 1, w;
    scaled_khz(p, 1, engine_only, khz);
    double t = settle(p, ambient, khz, busy, act, &w);
    if (t <= throttle && (p->firmware_power_limit_w <= 0 || w <= p->firmware_power_limit_w))
        return 1;
    for (int i = 0; i < STEADY_SEARCH_ITER; i++) {
        double g = (lo + hi) / 2;
        scaled_khz(p, g, engine_only, khz);
        t = settle(p, ambient, khz, busy, act, &w);
        if (t > throttle || (p->firmware_power_limit_w > 0 && w > p->firmware_power_limit_w))
            hi = g;
        else
            lo = g;
    }
    return lo;
}

int gov_sim_steady_state(const struct gov_sim_profile *p, double ambient_c,
                         struct gov_sim_steady *s)
{
    memset(s, 0, sizeof(*s));
    double amb = isfinite(ambient_c) ? ambient_c : p->ambient_c;
    uint32_t khz[GOV_MAX_CLUSTERS];
    double busy[GOV_MAX_CLUSTERS], act[GOV_MAX_CLUSTERS], w;

    /* idle: every cluster at its floor, the background load on every CPU */
    for (unsigned i = 0; i < p->n_clusters; i++) {
        khz[i] = p->clusters[i].opps[0].khz;
        double bg = p->background_mhz / (khz[i] / 1000.0);
        busy[i] = bg > 1 ? 1 : bg;
        act[i] = p->activity_background;
    }
    settle(p, amb, khz, busy, act, &w);
    s->package_idle_w = w;
    s->wall_idle_w = gov_sim_wall_w(p, w, 0);

    /* all-core load (stress-ng style): every core busy at the prefill (SIMD) activity */
    for (unsigned i = 0; i < p->n_clusters; i++)
        busy[i] = 1, act[i] = p->activity_prefill;
    double g = sustained_fraction(p, amb, busy, act, false);
    scaled_khz(p, g, false, khz);
    s->load_temp_c = settle(p, amb, khz, busy, act, &w);
    s->package_load_w = w;
    s->wall_load_w = gov_sim_wall_w(p, w, 0);
    s->sustained_mhz = khz[fastest_engine_cluster(p)] / 1000.0;

    /* the engine alone at its ceiling (decode, then prefill), sustained */
    for (unsigned i = 0; i < p->n_clusters; i++) {
        bool e = p->clusters[i].engine;
        busy[i] = e ? p->engine_util_decode : 0.02;
        act[i] = e ? p->activity_decode : p->activity_background;
    }
    g = sustained_fraction(p, amb, busy, act, true);
    scaled_khz(p, g, true, khz);
    s->decode_tok_s = 1.0 / gov_sim_decode_token_s(p, khz);
    for (unsigned i = 0; i < p->n_clusters; i++)
        if (p->clusters[i].engine)
            busy[i] = 1, act[i] = p->activity_prefill;
    g = sustained_fraction(p, amb, busy, act, true);
    scaled_khz(p, g, true, khz);
    s->prefill_tok_s = gov_sim_prefill_tok_s(p, khz);
    return 0;
}

double gov_sim_steady_figure(const struct gov_sim_steady *s, const char *figure)
{
    static const struct {
        const char *name;
        size_t off;
    } map[] = {
        {"wall_idle_w", offsetof(struct gov_sim_steady, wall_idle_w)},
        {"package_idle_w", offsetof(struct gov_sim_steady, package_idle_w)},
        {"wall_load_w", offsetof(struct gov_sim_steady, wall_load_w)},
        {"package_load_w", offsetof(struct gov_sim_steady, package_load_w)},
        {"sustained_mhz", offsetof(struct gov_sim_steady, sustained_mhz)},
        {"load_temp_c", offsetof(struct gov_sim_steady, load_temp_c)},
        {"decode_tok_s", offsetof(struct gov_sim_steady, decode_tok_s)},
        {"prefill_tok_s", offsetof(struct gov_sim_steady, prefill_tok_s)},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].name, figure) == 0)
            return *(const double *)((const char *)s + map[i].off);
    return NAN;
}
