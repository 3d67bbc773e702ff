/* The simulator's oracle: what the best static configuration per engine phase would cost, so
 * every policy can be measured against it. A configuration fixes the engine clusters' clock in
 * prefill and in decode (as a fraction of each cluster's floor..ceiling, snapped to its table);
 * idle and the other clusters follow schedutil. The search goes one phase at a time because the
 * phases' energies add up: decode over every step with prefill at the ceiling, then prefill over
 * every step at the chosen decode clock. The budget is the policies' own: decode no more than
 * decode_slowdown_max_pct slower than performance, TTFT p99 no more than that much later. */
#include "sim_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ORACLE_CONTINUOUS_STEPS 13
#define ORACLE_REFINE           7

void gov_sim_fixed_clocks(const struct gov_sim_profile *p, const struct gov_sim_options *o,
                          enum gov_phase ph, const unsigned *active, uint32_t *want)
{
    if (ph != GOV_PHASE_PREFILL && ph != GOV_PHASE_DECODE)
        return;
    double g = ph == GOV_PHASE_PREFILL ? o->fixed_prefill_frac : o->fixed_decode_frac;
    g = g < 0 ? 0 : g > 1 ? 1 : g;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        if (!active[i])
            continue;
        uint32_t lo = k->opps[0].khz, hi = k->opps[k->n_opps - 1].khz;
        /* round to the nearest step: the fraction came from the fastest cluster's table */
        want[i] = gov_sim_snap_khz(k, (uint32_t)llround(lo + g * (hi - lo) + 0.5));
    }
}

static unsigned fastest_engine(const struct gov_sim_profile *p)
{
    unsigned best = 0;
    bool found = false;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        if (k->engine && (!found || k->opps[k->n_opps - 1].khz >
                                        p->clusters[best].opps[p->clusters[best].n_opps - 1].khz))
            best = i, found = true;
    }
    return best;
}

/* Candidate fractions: every table step of the fastest engine cluster, or evenly spaced steps of
 * a continuous range. */
static unsigned candidates(const struct gov_sim_profile *p, double *frac, unsigned max)
{
    const struct gov_sim_cluster *k = &p->clusters[fastest_engine(p)];
    double lo = k->opps[0].khz, hi = k->opps[k->n_opps - 1].khz;
    unsigned n = 0;
    if (k->continuous) {
        for (unsigned i = 0; i < ORACLE_CONTINUOUS_STEPS && n < max; i++)
            frac[n++] = (double)i / (ORACLE_CONTINUOUS_STEPS - 1);
    } else {
        for (unsigned i = 0; i < k->n_opps && n < max; i++)
            frac[n++] = hi > lo ? (k->opps[i].khz - lo) / (hi - lo) : 1;
    }
    return n;
}

static bool within_budget(const struct gov_sim_result *r, const struct gov_sim_result *perf,
                          double slowdown)
{
    return r->decode_tokens_per_s >= (1 - slowdown) * perf->decode_tokens_per_s - 1e-9 &&
           r->ttft_p99_ms <= (1 + slowdown) * perf->ttft_p99_ms + 1e-9 &&
           isfinite(r->wall_joules_per_token);
}

/* One phase's clock over the candidates (*knob is the fraction being varied); on a continuous
 * range, then ORACLE_REFINE more points between the best candidate's neighbours. Keeps the best
 * run within budget in ret->result. */
static int search_phase(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                        struct gov_sim_options *fixed, struct gov_sim_oracle *ret,
                        const double *frac, unsigned n, bool refine, double slowdown, double *knob,
                        double *best_frac, double *best_j, char *err, size_t err_len)
{
    struct gov_sim_result r;
    unsigned best_i = n;
    for (unsigned pass = 0; pass < 2; pass++) {
        double pts[GOV_SIM_MAX_OPPS];
        unsigned np = 0;
        if (pass == 0) {
            memcpy(pts, frac, n * sizeof(*frac));
            np = n;
        } else {
            if (!refine || best_i >= n)
                break;
            double lo = best_i > 0 ? frac[best_i - 1] : frac[0];
            double hi = best_i + 1 < n ? frac[best_i + 1] : frac[n - 1];
            for (unsigned k = 1; k <= ORACLE_REFINE; k++) {
                double x = lo + (hi - lo) * k / (ORACLE_REFINE + 1);
                if (fabs(x - frac[best_i]) > 1e-9)
                    pts[np++] = x;
            }
        }
        for (unsigned i = 0; i < np; i++) {
            *knob = pts[i];
            int rc = gov_sim_run(p, w, "schedutil", fixed, &r, NULL, err, err_len);
            if (rc)
                return rc;
            ret->runs++;
            if (within_budget(&r, &ret->performance, slowdown) &&
                r.wall_joules_per_token < *best_j) {
                *best_j = r.wall_joules_per_token;
                *best_frac = pts[i];
                ret->result = r;
                ret->found = true;
                if (pass == 0)
                    best_i = i;
            }
        }
    }
    return 0;
}

/* The memory clock, where the profile has the lever: prefill over every step with decode at
 * the top, then decode at that prefill step (idle: the lowest). Kept only when it beats the
 * board's own devfreq governor, which the clock search ran with. */
static int search_memory(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                         struct gov_sim_options *fixed, struct gov_sim_oracle *ret, double slowdown,
                         double *best_j, char *err, size_t err_len)
{
    if (p->n_mem_mhz < 2)
        return 0;
    double frac[GOV_SIM_MAX_MEM], lo = p->mem_mhz[0], top = p->mem_mhz[p->n_mem_mhz - 1];
    for (unsigned k = 0; k < p->n_mem_mhz; k++)
        frac[k] = (p->mem_mhz[k] - lo) / (top - lo);
    double best_pre = NAN, best_dec = NAN;
    fixed->fixed_memory = true;
    fixed->fixed_mem_decode_frac = 1;
    int rc = search_phase(p, w, fixed, ret, frac, p->n_mem_mhz, false, slowdown,
                          &fixed->fixed_mem_prefill_frac, &best_pre, best_j, err, err_len);
    if (rc)
        return rc;
    if (isfinite(best_pre)) {
        fixed->fixed_mem_prefill_frac = best_pre;
        rc = search_phase(p, w, fixed, ret, frac, p->n_mem_mhz - 1, false, slowdown,
                          &fixed->fixed_mem_decode_frac, &best_dec, best_j, err, err_len);
        if (rc)
            return rc;
        ret->mem_prefill_mhz = lo + best_pre * (top - lo);
        ret->mem_decode_mhz = isfinite(best_dec) ? lo + best_dec * (top - lo) : top;
    }
    return 0;
}

/* The thread lever: decode on fewer of the engine's cores (the fastest cluster's first) and on
 * each cluster the engine does not use (big.LITTLE's little cores, as many threads as the
 * engine has or the cluster has cores), every decode clock at each, prefill as chosen. Prefill
 * keeps every engine core: it is compute-bound, and fewer cores lengthen the TTFT the budget
 * holds. A placement is kept only when it beats every core. */
static int search_threads(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                          struct gov_sim_options *fixed, struct gov_sim_oracle *ret,
                          const double *frac, unsigned n, bool refine, double slowdown,
                          double *best_decode, double *best_j, char *err, size_t err_len)
{
    unsigned order[64], n_engine = gov_sim_engine_cpus(p, order);
    ret->engine_threads = ret->decode_threads = n_engine;
    ret->decode_cpus = 0;
    if (!fixed->tunables.thread_lever || !n_engine)
        return 0;
    struct {
        unsigned threads;
        uint64_t cpus;
    } cand[64 + GOV_MAX_CLUSTERS];
    unsigned nc = 0;
    for (unsigned t = n_engine - 1; t >= 1; t--) {
        uint64_t m = 0;
        for (unsigned k = 0; k < t; k++)
            m |= 1ULL << order[k];
        cand[nc].threads = t, cand[nc++].cpus = m;
    }
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        if (k->engine || k->first_cpu + k->n_cpus > 64)
            continue;
        unsigned t = k->n_cpus < n_engine ? k->n_cpus : n_engine;
        cand[nc].threads = t;
        cand[nc++].cpus = ((k->n_cpus >= 64 ? ~0ULL : (1ULL << t) - 1)) << k->first_cpu;
    }
    bool chosen = false;
    for (unsigned c = 0; c < nc; c++) {
        fixed->fixed_threads = true;
        fixed->fixed_decode_threads = cand[c].threads;
        fixed->fixed_decode_cpus = cand[c].cpus;
        double f = NAN;
        int rc = search_phase(p, w, fixed, ret, frac, n, refine, slowdown,
                              &fixed->fixed_decode_frac, &f, best_j, err, err_len);
        fixed->fixed_decode_frac = *best_decode;
        if (rc)
            return rc;
        if (isfinite(f)) {
            *best_decode = f, fixed->fixed_decode_frac = f;
            ret->decode_threads = cand[c].threads;
            ret->decode_cpus = cand[c].cpus;
            chosen = true;
        }
    }
    fixed->fixed_threads = chosen;
    fixed->fixed_decode_threads = ret->decode_threads;
    fixed->fixed_decode_cpus = ret->decode_cpus;
    return 0;
}

int gov_sim_oracle(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                   const struct gov_sim_options *o, struct gov_sim_oracle *ret, char *err,
                   size_t err_len)
{
    memset(ret, 0, sizeof(*ret));
    struct gov_sim_options fixed = *o;
    const double slowdown = o->tunables.decode_slowdown_max_pct / 100.0;
    int rc = gov_sim_run(p, w, "performance", o, &ret->performance, NULL, err, err_len);
    if (rc)
        return rc;
    ret->runs = 1;
    ret->result = ret->performance;
    ret->prefill_frac = ret->decode_frac = 1;

    double frac[GOV_SIM_MAX_OPPS];
    unsigned n = candidates(p, frac, GOV_SIM_MAX_OPPS);
    fixed.fixed_clocks = true;
    /* decode, prefill at the ceiling; then prefill at that decode clock */
    double best_j = INFINITY, best_decode = 1, best_prefill = 1;
    fixed.fixed_prefill_frac = 1;
    bool refine = p->clusters[fastest_engine(p)].continuous;
    rc = search_phase(p, w, &fixed, ret, frac, n, refine, slowdown, &fixed.fixed_decode_frac,
                      &best_decode, &best_j, err, err_len);
    if (rc)
        return rc;
    fixed.fixed_decode_frac = best_decode;
    rc = search_phase(p, w, &fixed, ret, frac, n - 1, refine, slowdown, &fixed.fixed_prefill_frac,
                      &best_prefill, &best_j, err, err_len); /* the ceiling was measured above */
    if (rc)
        return rc;
    fixed.fixed_prefill_frac = best_prefill;
    fixed.fixed_decode_frac = best_decode;
    if ((rc = search_threads(p, w, &fixed, ret, frac, n, refine, slowdown, &best_decode, &best_j,
                             err, err_len)))
        return rc;
    if ((rc = search_memory(p, w, &fixed, ret, slowdown, &best_j, err, err_len)))
        return rc;
    ret->prefill_frac = best_prefill;
    ret->decode_frac = best_decode;
    uint32_t want[GOV_MAX_CLUSTERS] = {0};
    unsigned active[GOV_MAX_CLUSTERS], f = fastest_engine(p);
    fixed.fixed_prefill_frac = best_prefill;
    fixed.fixed_decode_frac = best_decode;
    gov_sim_placement(p, 0, 0, active);
    gov_sim_fixed_clocks(p, &fixed, GOV_PHASE_PREFILL, active, want);
    ret->prefill_khz = want[f];
    /* decode's clock and cluster: those of its first thread */
    gov_sim_placement(p, ret->decode_threads, ret->decode_cpus, active);
    gov_sim_fixed_clocks(p, &fixed, GOV_PHASE_DECODE, active, want);
    unsigned d = f;
    for (unsigned cpu = 0; cpu < 64 && ret->decode_cpus; cpu++) {
        if (!(ret->decode_cpus >> cpu & 1))
            continue;
        for (unsigned i = 0; i < p->n_clusters; i++)
            if (cpu >= p->clusters[i].first_cpu &&
                cpu < p->clusters[i].first_cpu + p->clusters[i].n_cpus)
                d = i;
        break;
    }
    ret->decode_khz = want[d];
    snprintf(ret->decode_cluster, sizeof(ret->decode_cluster), "%s", p->clusters[d].name);
    snprintf(ret->result.policy, sizeof(ret->result.policy), "oracle");
    return 0;
}

void gov_sim_write_oracle(FILE *f, const struct gov_sim_oracle *o, const struct gov_sim_result *r,
                          size_t n, double slowdown_pct)
{
    if (!o->found) {
        fprintf(f,
                "oracle: no static configuration met the budget (decode within %.0f %% of "
                "performance's tokens/s, TTFT p99 within %.0f %%); %u runs\n",
                slowdown_pct, slowdown_pct, o->runs);
        return;
    }
    fprintf(f,
            "oracle: engine clusters at %.0f MHz in prefill, %.0f MHz in decode (static; %u "
            "runs; budget: decode within %.0f %% of performance's tokens/s, TTFT p99 within "
            "%.0f %%): wall %.4f J/token, package %.4f J/token, decode %.2f tok/s, TTFT p99 "
            "%.0f ms\n",
            o->prefill_khz / 1000.0, o->decode_khz / 1000.0, o->runs, slowdown_pct, slowdown_pct,
            o->result.wall_joules_per_token, o->result.joules_per_token,
            o->result.decode_tokens_per_s, o->result.ttft_p99_ms);
    if (o->engine_threads)
        fprintf(f, "oracle: threads %u in prefill, %u in decode on %s\n", o->engine_threads,
                o->decode_threads, o->decode_cluster);
    if (o->mem_prefill_mhz > 0)
        fprintf(f,
                "oracle: memory clock at %.0f MHz in prefill, %.0f MHz in decode, the lowest "
                "when idle\n",
                o->mem_prefill_mhz, o->mem_decode_mhz);
    fprintf(f, "%-14s %14s %14s %14s %14s %16s\n", "vs oracle", "wall J/token", "package J/tok",
            "decode tok/s", "TTFT p99", "threads pre/dec");
    for (size_t i = 0; i < n; i++) {
        const struct gov_sim_result *x = &r[i];
        fprintf(f, "%-14s %+13.1f%% %+13.1f%% %+13.1f%% %+13.1f%% %10.1f / %.1f\n", x->policy,
                100 * (x->wall_joules_per_token / o->result.wall_joules_per_token - 1),
                100 * (x->joules_per_token / o->result.joules_per_token - 1),
                100 * (x->decode_tokens_per_s / o->result.decode_tokens_per_s - 1),
                100 * (x->ttft_p99_ms / o->result.ttft_p99_ms - 1), x->prefill_threads,
                x->decode_threads);
    }
}

int gov_sim_sweep(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                  const struct gov_sim_options *o, const char *key, const char *const *values,
                  size_t n_values, const char *const *policies, size_t n_policies,
                  struct gov_sim_result *ret, char *err, size_t err_len)
{
    for (size_t v = 0; v < n_values; v++) {
        struct gov_sim_options ov = *o;
        const char *bad;
        char why[256];
        if (gov_tunables_set(&ov.tunables, key, values[v], why, sizeof(why)) ||
            gov_tunables_validate(&ov.tunables, &bad, why, sizeof(why))) {
            snprintf(err, err_len, "--sweep %s=%s: %s", key, values[v], why);
            return -EINVAL;
        }
        for (size_t i = 0; i < n_policies; i++) {
            int rc =
                gov_sim_run(p, w, policies[i], &ov, &ret[v * n_policies + i], NULL, err, err_len);
            if (rc)
                return rc;
        }
    }
    return 0;
}

void gov_sim_write_sweep(FILE *f, const char *key, const char *const *values, size_t n_values,
                         const struct gov_sim_result *r, size_t n_policies)
{
    if (!n_values || !n_policies)
        return;
    fprintf(f, "sweep of %s: profile %s, workload %s, %.0f s\n", key, r[0].profile, r[0].workload,
            r[0].duration_s);
    int kw = (int)strlen(key) > 16 ? (int)strlen(key) : 16;
    fprintf(f, "%-*s %-12s %14s %14s %14s %12s %12s\n", kw, key, "policy", "wall J/token",
            "package J/tok", "decode tok/s", "TTFT p99 ms", "peak temp C");
    for (size_t v = 0; v < n_values; v++)
        for (size_t i = 0; i < n_policies; i++) {
            const struct gov_sim_result *x = &r[v * n_policies + i];
            fprintf(f, "%-*s %-12s %14.4f %14.4f %14.2f %12.0f %12.1f\n", kw, values[v], x->policy,
                    x->wall_joules_per_token, x->joules_per_token, x->decode_tokens_per_s,
                    x->ttft_p99_ms, x->peak_temp_c);
        }
}
