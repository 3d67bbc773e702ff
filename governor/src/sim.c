/* The simulator's plant and run loop. Every step_ms the plant advances: the engine works through
 * the request queue (prefill throughput proportional to the engine clusters' clock; decode time
 * per token = memory part + compute part / clock, with partial overlap), each cluster draws
 * leakage(V, T) + C * V^2 * f * activity, the two-node thermal network integrates, and the
 * hardware's own limits act (limits-only backends let idle cores drop to the floor, a firmware
 * power limit such as PL1/PPT clips clocks, Tjmax throttles). Every tick_ms, and at once when the
 * engine changes phase (the agent's phase hint), the controller gets the same inputs the daemon
 * would build from /proc/stat, thermal zones and RAPL, and its targets are applied. */
#include "governor/sim.h"
#include "sim_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_EVERY_S   0.1
#define IDLE_SETTLE_S   5.0  /* idle power counts once a gap has lasted this long */
#define TARGET_SETTLE_S 5.0  /* thermal excess counts this long after the target is first met */
#define CAP_SETTLE_S    10.0 /* power-cap windows count after this */
#define CAP_WINDOW      50   /* 5 s of 100 ms slots */
#define CALIB_TEMP_ITER 8

void gov_sim_options_defaults(struct gov_sim_options *o)
{
    memset(o, 0, sizeof(*o));
    o->duration_s = 600;
    o->ambient_c = NAN;
    o->step_ms = 1;
    o->calibrated = true;
    gov_tunables_defaults(&o->tunables);
}

void gov_sim_trace_free(struct gov_sim_trace *t)
{
    if (!t)
        return;
    free(t->pts);
    memset(t, 0, sizeof(*t));
}

/* ---- the physics ---- */

static double volt_at(const struct gov_sim_cluster *k, uint32_t khz)
{
    if (khz <= k->opps[0].khz)
        return k->opps[0].volt;
    for (unsigned i = 1; i < k->n_opps; i++) {
        if (khz <= k->opps[i].khz) {
            const struct gov_sim_opp *a = &k->opps[i - 1], *b = &k->opps[i];
            if (!k->continuous)
                return b->volt; /* a table clock runs at the next OPP's voltage */
            return a->volt + (b->volt - a->volt) * (double)(khz - a->khz) / (b->khz - a->khz);
        }
    }
    return k->opps[k->n_opps - 1].volt;
}

static uint32_t table_snap(const struct gov_sim_cluster *k, uint32_t khz)
{
    if (k->continuous) {
        uint32_t lo = k->opps[0].khz, hi = k->opps[k->n_opps - 1].khz;
        return khz < lo ? lo : khz > hi ? hi : khz;
    }
    uint32_t f = k->opps[0].khz;
    for (unsigned i = 0; i < k->n_opps; i++)
        if (k->opps[i].khz <= khz)
            f = k->opps[i].khz;
    return f;
}

/* ---- where the engine's threads run (the thread lever) ---- */

static int cluster_of(const struct gov_sim_profile *p, unsigned cpu)
{
    for (unsigned i = 0; i < p->n_clusters; i++)
        if (cpu >= p->clusters[i].first_cpu &&
            cpu < p->clusters[i].first_cpu + p->clusters[i].n_cpus)
            return (int)i;
    return -1;
}

unsigned gov_sim_engine_cpus(const struct gov_sim_profile *p, unsigned *order)
{
    unsigned n = 0;
    bool used[GOV_MAX_CLUSTERS] = {false};
    for (;;) { /* engine clusters, the fastest first */
        int best = -1;
        for (unsigned i = 0; i < p->n_clusters; i++) {
            const struct gov_sim_cluster *k = &p->clusters[i];
            if (k->engine && !used[i] &&
                (best < 0 || k->opps[k->n_opps - 1].khz >
                                 p->clusters[best].opps[p->clusters[best].n_opps - 1].khz))
                best = (int)i;
        }
        if (best < 0)
            return n;
        used[best] = true;
        const struct gov_sim_cluster *k = &p->clusters[best];
        for (unsigned c = 0; c < k->n_cpus && n < 64; c++)
            if (k->first_cpu + c < 64)
                order[n++] = k->first_cpu + c;
    }
}

void gov_sim_placement(const struct gov_sim_profile *p, unsigned threads, uint64_t cpus,
                       unsigned *active)
{
    unsigned order[64], n_engine = gov_sim_engine_cpus(p, order);
    memset(active, 0, GOV_MAX_CLUSTERS * sizeof(*active));
    if (!threads || threads > n_engine)
        threads = n_engine; /* the engine's own thread count is the ceiling */
    for (unsigned k = 0, left = threads; left && k < 64; k++) {
        unsigned cpu = cpus ? k : order[k];
        if (cpus ? !(cpus >> k & 1) : k >= n_engine)
            continue;
        int c = cluster_of(p, cpu);
        if (c >= 0)
            active[c]++, left--;
    }
}

/* Engine cores running threads in cluster i; active NULL: the engine as configured. */
static unsigned active_cores(const struct gov_sim_profile *p, const unsigned *active, unsigned i)
{
    if (active)
        return active[i];
    return p->clusters[i].engine ? p->clusters[i].n_cpus : 0;
}

/* Per cluster: the mean busy fraction and activity over its cores (the engine's cores busy at
 * the phase's load, the others at the background load: online but idle), and the busy fraction
 * of each kind of core, which /proc/stat shows per CPU. */
struct load {
    double busy[GOV_MAX_CLUSTERS];
    double act[GOV_MAX_CLUSTERS];
    double busy_engine[GOV_MAX_CLUSTERS], busy_other[GOV_MAX_CLUSTERS];
    unsigned n_engine[GOV_MAX_CLUSTERS];
};

static void phase_load(const struct gov_sim_profile *p, enum gov_phase ph, const uint32_t *khz,
                       const unsigned *active, struct load *l)
{
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        double bg = p->background_mhz / (khz[i] / 1000.0);
        bg = bg > 1 ? 1 : bg;
        unsigned a = ph == GOV_PHASE_IDLE ? 0 : active_cores(p, active, i);
        double be = bg, ae = p->activity_background;
        if (a && ph == GOV_PHASE_PREFILL)
            be = 1, ae = p->activity_prefill;
        else if (a && ph == GOV_PHASE_DECODE)
            be = fmax(p->engine_util_decode, bg), ae = p->activity_decode;
        double n = k->n_cpus, busy = (a * be + (n - a) * bg) / n;
        l->busy[i] = busy;
        l->act[i] = busy > 0 ? (a * be * ae + (n - a) * bg * p->activity_background) / (n * busy)
                             : p->activity_background;
        l->busy_engine[i] = be;
        l->busy_other[i] = bg;
        l->n_engine[i] = a;
    }
}

static double power_w(const struct gov_sim_profile *p, const uint32_t *khz, const struct load *l,
                      double temp_c)
{
    double tf = 1 + p->leak_temp_coef * (temp_c - p->leak_ref_c);
    tf = tf < 0.2 ? 0.2 : tf;
    double w = p->uncore_w;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        double v = volt_at(k, khz[i]), vr = v / k->leak_ref_v;
        double leak = k->leak_w * vr * vr * tf;
        double b = l->busy[i];
        double core = leak * (b + (1 - b) * p->idle_leak_fraction) +
                      k->ceff_nf * 1e-9 * v * v * (khz[i] * 1e3) * l->act[i] * b;
        w += k->n_cpus * core;
    }
    return w;
}

/* Engine throughput at these clocks: compute capacity in GHz of the reference core. */
static double capacity_ghz(const struct gov_sim_profile *p, const uint32_t *khz,
                           const unsigned *active)
{
    double c = 0;
    for (unsigned i = 0; i < p->n_clusters; i++)
        c += active_cores(p, active, i) * p->clusters[i].ipc * khz[i] / 1e6;
    return c;
}

/* What the engine's cores can stream together (GB/s); INFINITY when a core has no limit. */
static double cores_gbs(const struct gov_sim_profile *p, const unsigned *active)
{
    double g = 0;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        unsigned a = active_cores(p, active, i);
        if (a && !(p->clusters[i].core_gbs > 0))
            return INFINITY;
        g += a * p->clusters[i].core_gbs;
    }
    return g > 0 ? g : INFINITY;
}

/* mem_scale = top memory clock / the clock it runs at (1 without a memory section). Prefill is
 * compute-bound unless the memory clock is so low that streaming the weights once per batch
 * takes longer (the usable bandwidth is what decode gets at the top clock, scaled down). */
static double prefill_tps_at(const struct gov_sim_profile *p, const uint32_t *khz, double mem_scale,
                             const unsigned *active)
{
    double tps = p->prefill_tok_per_gcycle * capacity_ghz(p, khz, active);
    if (mem_scale > 1 && p->weights_gb > 0 && p->decode_mem_ms > 0) {
        double batch = p->prefill_batch_tokens > 0 ? p->prefill_batch_tokens : 64;
        double gbs = p->weights_gb / (p->decode_mem_ms / 1e3) / mem_scale;
        tps = fmin(tps, gbs * batch / p->weights_gb);
    }
    return tps;
}

static double prefill_tps(const struct gov_sim_profile *p, const uint32_t *khz)
{
    return prefill_tps_at(p, khz, 1, NULL);
}

static double decode_token_s_at(const struct gov_sim_profile *p, const uint32_t *khz,
                                double mem_scale, const unsigned *active)
{
    double cap = capacity_ghz(p, khz, active);
    /* the bus at this memory clock, or what the engine's cores can pull, whichever is less */
    double tm = fmax(p->decode_mem_ms / 1e3 * mem_scale,
                     p->weights_gb > 0 ? p->weights_gb / cores_gbs(p, active) : 0);
    double tc = cap > 0 ? p->decode_gcycles_per_token / cap : 1e9;
    double hi = fmax(tm, tc), lo = fmin(tm, tc);
    return hi + (1 - p->decode_overlap) * lo;
}

static double decode_token_s(const struct gov_sim_profile *p, const uint32_t *khz)
{
    return decode_token_s_at(p, khz, 1, NULL);
}

/* The lowest memory step at or above mhz (the top when none is). */
static double memory_step_up(const struct gov_sim_profile *p, double mhz)
{
    for (unsigned k = 0; k < p->n_mem_mhz; k++)
        if (p->mem_mhz[k] >= mhz - 1e-6)
            return p->mem_mhz[k];
    return p->mem_mhz[p->n_mem_mhz - 1];
}

/* The memory clock in this phase: a fixed configuration (the oracle), the governor's target
 * (the step at or above that fraction of the range), or board_mhz, where the board's own
 * devfreq governor put it. 0 without a memory section. */
static double memory_mhz(const struct gov_sim_profile *p, const struct gov_sim_options *o,
                         double target_frac, enum gov_phase ph, double board_mhz)
{
    if (!p->n_mem_mhz)
        return 0;
    double lo = p->mem_mhz[0], top = p->mem_mhz[p->n_mem_mhz - 1];
    double frac = target_frac;
    if (o->fixed_memory)
        frac = ph == GOV_PHASE_PREFILL  ? o->fixed_mem_prefill_frac
               : ph == GOV_PHASE_DECODE ? o->fixed_mem_decode_frac
                                        : 0;
    if (!isfinite(frac))
        return board_mhz;
    return memory_step_up(p, lo + fmin(fmax(frac, 0), 1) * (top - lo));
}

/* One polling period of the board's devfreq governor, as drivers/devfreq/
 * governor_simpleondemand.c decides: busy = bus load (traffic over what the bus moves at the
 * current clock); above upthreshold the top, above upthreshold - downdifferential keep, else
 * cur * busy / (upthreshold - downdifferential / 2), rounded up to a step. */
static double memory_board_step(const struct gov_sim_profile *p, double cur_mhz, double gb,
                                double t_s)
{
    double top = p->mem_mhz[p->n_mem_mhz - 1];
    double cap_gb = p->mem_peak_gbs * cur_mhz / top * t_s;
    double busy = cap_gb > 0 ? 100 * gb / cap_gb : 100;
    if (busy > p->mem_upthreshold)
        return top;
    if (busy > p->mem_upthreshold - p->mem_downdiff)
        return cur_mhz;
    return memory_step_up(p, cur_mhz * busy / (p->mem_upthreshold - p->mem_downdiff / 2));
}

/* The DRAM + controller power above the lowest memory step, at this clock. */
static double memory_extra_w(const struct gov_sim_profile *p, double mhz)
{
    if (p->n_mem_mhz < 2)
        return 0;
    double lo = p->mem_mhz[0], top = p->mem_mhz[p->n_mem_mhz - 1];
    return p->mem_extra_w * (mhz - lo) / (top - lo);
}

/* The hardware's own limits on top of what the governor asked: HWP drops idle cores of a
 * limits-only backend to the floor; a firmware power limit scales engine clocks down until the
 * package fits; above Tjmax everything runs at the floor. */
static void effective_khz(const struct gov_sim_profile *p, const uint32_t *want,
                          const uint32_t *floor_khz, enum gov_phase ph, const unsigned *active,
                          double temp_c, double limit_w, uint32_t *out)
{
    struct load l;
    for (unsigned i = 0; i < p->n_clusters; i++)
        out[i] = want[i];
    phase_load(p, ph, out, active, &l);
    for (unsigned i = 0; i < p->n_clusters; i++)
        if (!p->clusters[i].exact && l.busy[i] < 0.3)
            out[i] = floor_khz[i];
    if (temp_c > p->tjmax_c) {
        for (unsigned i = 0; i < p->n_clusters; i++)
            out[i] = p->clusters[i].opps[0].khz;
        return;
    }
    if (limit_w > 0) {
        phase_load(p, ph, out, active, &l);
        if (power_w(p, out, &l, temp_c) > limit_w) {
            uint32_t base[GOV_MAX_CLUSTERS], tryk[GOV_MAX_CLUSTERS];
            memcpy(base, out, sizeof(base));
            double lo = 0, hi = 1;
            for (int it = 0; it < 14; it++) {
                double g = (lo + hi) / 2;
                for (unsigned i = 0; i < p->n_clusters; i++) {
                    uint32_t mn = p->clusters[i].opps[0].khz;
                    double f = mn + g * ((double)base[i] - mn);
                    tryk[i] = table_snap(&p->clusters[i], (uint32_t)f);
                }
                phase_load(p, ph, tryk, active, &l);
                if (power_w(p, tryk, &l, temp_c) > limit_w)
                    hi = g;
                else
                    lo = g;
            }
            for (unsigned i = 0; i < p->n_clusters; i++) {
                uint32_t mn = p->clusters[i].opps[0].khz;
                out[i] = table_snap(&p->clusters[i], (uint32_t)(mn + lo * ((double)base[i] - mn)));
            }
        }
    }
}

/* ---- the physics as sim_plant.c sees it (sim_internal.h) ---- */

double gov_sim_package_w(const struct gov_sim_profile *p, const uint32_t *khz, const double *busy,
                         const double *act, double temp_c)
{
    struct load l;
    for (unsigned i = 0; i < p->n_clusters; i++)
        l.busy[i] = busy[i], l.act[i] = act[i];
    return power_w(p, khz, &l, temp_c);
}

double gov_sim_phase_package_w(const struct gov_sim_profile *p, enum gov_phase ph,
                               const uint32_t *khz, double temp_c)
{
    struct load l;
    phase_load(p, ph, khz, NULL, &l);
    return power_w(p, khz, &l, temp_c);
}

double gov_sim_decode_token_s(const struct gov_sim_profile *p, const uint32_t *khz)
{
    return decode_token_s(p, khz);
}

double gov_sim_prefill_tok_s(const struct gov_sim_profile *p, const uint32_t *khz)
{
    return prefill_tps(p, khz);
}

uint32_t gov_sim_snap_khz(const struct gov_sim_cluster *k, uint32_t khz)
{
    return table_snap(k, khz);
}

/* ---- calibration: what `ember governor calibrate` would measure ---- */

int gov_sim_calibrate(const struct gov_sim_profile *p, const struct gov_sim_options *o,
                      struct gov_calibration *ret)
{
    memset(ret, 0, sizeof(*ret));
    struct gov_sim_fw_limit fresh;
    gov_sim_fw_limit_init(p, &fresh, 0);
    const double burst_limit_w = gov_sim_fw_limit_w(p, &fresh);
    snprintf(ret->model, sizeof(ret->model), "simulated (%s)", p->name);
    snprintf(ret->created, sizeof(ret->created), "1970-01-01T00:00:00Z");
    ret->n_clusters = p->n_clusters;
    unsigned prim = 0;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        if (p->clusters[i].engine && (!p->clusters[prim].engine ||
                                      p->clusters[i].opps[p->clusters[i].n_opps - 1].khz >
                                          p->clusters[prim].opps[p->clusters[prim].n_opps - 1].khz))
            prim = i;
    }
    /* the ladder steps through the engine's biggest cluster, which goes first in the file (the
     * points are ordered by the first cluster's frequency) */
    unsigned col[GOV_MAX_CLUSTERS] = {0}, next = 1;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        col[i] = i == prim ? 0 : next++;
        snprintf(ret->cluster_names[col[i]], GOV_NAME_MAX, "%s", p->clusters[i].name);
    }
    const struct gov_sim_cluster *pk = &p->clusters[prim];
    uint32_t pmax = pk->opps[pk->n_opps - 1].khz, pmin = pk->opps[0].khz;
    /* a continuous range is calibrated in 100 MHz steps (at most GOV_CALIB_MAX_POINTS) */
    unsigned n = pk->continuous ? (pmax - pmin) / 100000 + 1 : pk->n_opps;
    if (n > GOV_CALIB_MAX_POINTS)
        n = GOV_CALIB_MAX_POINTS;
    double ambient = isfinite(o->ambient_c) ? o->ambient_c : p->ambient_c;
    for (unsigned s = 0; s < n; s++) {
        uint32_t f = pk->continuous ? pmin + (uint32_t)((double)(pmax - pmin) * s / (n - 1))
                                    : pk->opps[s].khz;
        double r = (double)f / pmax;
        struct gov_calib_point *pt = &ret->points[ret->n_points++];
        uint32_t want[GOV_MAX_CLUSTERS], floor_khz[GOV_MAX_CLUSTERS], eff[GOV_MAX_CLUSTERS];
        for (unsigned i = 0; i < p->n_clusters; i++) {
            const struct gov_sim_cluster *k = &p->clusters[i];
            uint32_t kmax = k->opps[k->n_opps - 1].khz;
            want[i] = i == prim ? f : table_snap(k, (uint32_t)(r * kmax));
            floor_khz[i] = k->opps[0].khz;
            pt->khz[col[i]] = want[i];
        }
        /* steady-state temperature of a long decode run, for the leakage term */
        double temp = ambient + 20, w = 0;
        struct load l;
        for (int it = 0; it < CALIB_TEMP_ITER; it++) {
            effective_khz(p, want, floor_khz, GOV_PHASE_DECODE, NULL, temp, burst_limit_w, eff);
            phase_load(p, GOV_PHASE_DECODE, eff, NULL, &l);
            w = power_w(p, eff, &l, temp);
            temp = ambient + w * (p->r_jc + p->r_ca);
        }
        pt->decode_tok_s = 1.0 / decode_token_s(p, eff);
        pt->watts = w;
        effective_khz(p, want, floor_khz, GOV_PHASE_PREFILL, NULL, temp, burst_limit_w, eff);
        pt->prefill_tok_s = prefill_tps(p, eff);
    }
    return 0;
}

/* ---- the run ---- */

struct dvec {
    double *v;
    size_t n, cap;
};

static int dpush(struct dvec *d, double x)
{
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 1024;
        double *nv = realloc(d->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        d->v = nv;
        d->cap = nc;
    }
    d->v[d->n++] = x;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(struct dvec *d, double q)
{
    if (!d->n)
        return NAN;
    qsort(d->v, d->n, sizeof(double), cmp_d);
    double idx = q * (d->n - 1);
    size_t i = (size_t)idx;
    double frac = idx - i;
    return i + 1 < d->n ? d->v[i] * (1 - frac) + d->v[i + 1] * frac : d->v[i];
}

static int trace_push(struct gov_sim_trace *t, const struct gov_sim_trace_point *pt)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 4096;
        struct gov_sim_trace_point *np = realloc(t->pts, nc * sizeof(*np));
        if (!np)
            return -ENOMEM;
        t->pts = np;
        t->cap = nc;
    }
    t->pts[t->n++] = *pt;
    return 0;
}

struct engine {
    enum gov_phase phase;
    double phase_start_s;
    size_t next;   /* next request to arrive */
    size_t queued; /* requests arrived and not started (indices next_start..next-1) */
    size_t next_start;
    double next_at;   /* closed loop: when the next request arrives */
    double arrival_s; /* of the running request */
    double prompt_left;
    unsigned gen_left;
    double tok_progress;
    double last_token_s;
};

/* One run's state: the plant (clocks, power, two thermal nodes), the simulated engine, what has
 * accumulated since the last controller step, the 100 ms trace slots and the counters. */
struct sim_run {
    const struct gov_sim_profile *p;
    const struct gov_sim_workload *w;
    const struct gov_sim_options *o;
    struct gov_sim_result *r;
    struct gov_sim_trace *trace;
    struct gov_controller *ctl;
    struct gov_cluster_info ci[GOV_MAX_CLUSTERS];
    struct dvec ttft, toklat;
    double dt, tick, ambient, trip, target, hard_end;
    /* the plant */
    uint32_t want[GOV_MAX_CLUSTERS], floor_khz[GOV_MAX_CLUSTERS], khz[GOV_MAX_CLUSTERS];
    struct load l;
    double pw, tc, tj;
    double wall_w;     /* the whole box, this step (sim_plant.c) */
    double mem_target; /* the controller's memory clock fraction (NaN: the board's) */
    double mem_scale;  /* top memory clock / the one this step runs at */
    double board_mhz, board_gb, board_t; /* the board's devfreq governor and its window */
    struct gov_sim_fw_limit fw;          /* PL1/PL2 averaging */
    unsigned active[GOV_MAX_CLUSTERS];   /* engine cores running threads, per cluster */
    unsigned pol_threads;                /* the controller's thread lever (0: as configured) */
    uint64_t pol_cpus;
    double thr_prefill, thr_decode; /* thread-seconds per phase */
    struct engine e;
    double t, next_tick;
    /* accumulators since the last controller step */
    double acc_t, acc_e, acc_busy[GOV_MAX_CLUSTERS], acc_dec_t, acc_tok_frac;
    double acc_busy_other[GOV_MAX_CLUSTERS]; /* the cores without engine threads */
    bool force_step, in_safe;
    double idle_since, first_over;
    /* trace slots and the power-cap windows over them */
    double tr_t, tr_e, slot_p[CAP_WINDOW];
    bool slot_busy[CAP_WINDOW];
    unsigned slot_n;
    bool slot_any_idle;
    double prefill_t, decode_t, idle_settled_e, idle_settled_t;
    unsigned changes, decode_tokens;
};

/* The controller, the result's header and the idle steady state the run starts from. */
static int run_setup(struct sim_run *s, const char *policy, char *err, size_t err_len)
{
    const struct gov_sim_profile *p = s->p;
    const struct gov_sim_options *o = s->o;
    struct gov_sim_result *r = s->r;
    struct gov_calibration cal;
    memset(r, 0, sizeof(*r));
    for (unsigned i = 0; i < p->n_clusters; i++)
        gov_sim_cluster_info(p, i, &s->ci[i]);
    if (o->calibrated)
        gov_sim_calibrate(p, o, &cal);
    int rc = gov_controller_new(policy, &o->tunables, s->ci, p->n_clusters,
                                o->calibrated ? &cal : NULL, &s->ctl, err, err_len);
    if (rc)
        return rc;
    if (!(o->duration_s > 0) || !(o->step_ms > 0) || o->step_ms > 100) {
        snprintf(err, err_len, "duration must be > 0 and step 0..100 ms");
        return -EINVAL;
    }

    snprintf(r->policy, sizeof(r->policy), "%s", gov_controller_policy(s->ctl));
    snprintf(r->profile, sizeof(r->profile), "%s", p->name);
    r->duration_s = o->duration_s;
    snprintf(r->workload, sizeof(r->workload), "%s", s->w->name);
    s->dt = o->step_ms / 1e3;
    s->tick = o->tunables.tick_ms / 1e3;
    s->ambient = isfinite(o->ambient_c) ? o->ambient_c : p->ambient_c;
    s->trip = p->passive_trip_c > 0 ? p->passive_trip_c : NAN;
    s->target = gov_controller_thermal_target_c(s->ctl, s->trip);
    s->hard_end = o->duration_s * 3 + 3600;
    r->thermal_target_c = s->target;
    r->power_cap_w = o->tunables.power_cap_w;

    for (unsigned i = 0; i < p->n_clusters; i++)
        s->want[i] = s->floor_khz[i] = s->khz[i] = s->ci[i].cpuinfo_min_khz;
    gov_sim_placement(p, 0, 0, s->active);
    /* start at the idle steady state */
    phase_load(p, GOV_PHASE_IDLE, s->khz, s->active, &s->l);
    s->pw = power_w(p, s->khz, &s->l, s->ambient);
    s->tc = s->ambient + s->pw * p->r_ca;
    s->tj = s->tc + s->pw * p->r_jc;
    gov_sim_fw_limit_init(p, &s->fw, s->pw);
    s->e = (struct engine){.phase = GOV_PHASE_IDLE};
    s->mem_target = NAN;
    s->mem_scale = 1;
    s->board_mhz = p->n_mem_mhz ? p->mem_mhz[0] : 0;
    s->force_step = true;
    s->first_over = NAN;
    r->min_power_5s_w = NAN;
    r->max_power_5s_w = NAN;
    return 0;
}

static bool run_done(const struct sim_run *s)
{
    const struct gov_sim_workload *w = s->w;
    bool arrivals_left = w->closed_loop ? s->t < s->o->duration_s : s->e.next < w->n;
    bool busy = s->e.phase != GOV_PHASE_IDLE || s->e.queued > 0;
    if (s->t >= s->o->duration_s && !busy && (!arrivals_left || w->closed_loop))
        return true;
    return s->t >= s->hard_end;
}

/* Requests arrive (open loop: at their times; closed loop: a think time after the last one), and
 * the next queued one starts when the engine is idle. */
static void run_arrivals(struct sim_run *s)
{
    const struct gov_sim_workload *w = s->w;
    struct engine *e = &s->e;
    double t = s->t;
    if (w->closed_loop) {
        if (e->next < w->n && t < s->o->duration_s && e->phase == GOV_PHASE_IDLE && !e->queued &&
            t >= e->next_at) {
            e->next++;
            e->queued++;
        }
    } else {
        while (e->next < w->n && w->req[e->next].at_s <= t &&
               w->req[e->next].at_s < s->o->duration_s) {
            e->next++;
            e->queued++;
        }
        if (e->next < w->n && w->req[e->next].at_s >= s->o->duration_s)
            e->next = w->n; /* arrivals after the end are not part of this run */
    }
    enum gov_phase before = e->phase;
    if (e->phase == GOV_PHASE_IDLE && e->queued) {
        const struct gov_sim_request *q = &w->req[e->next_start];
        e->arrival_s = w->closed_loop ? t : q->at_s;
        e->prompt_left = q->prompt_tokens;
        e->gen_left = q->gen_tokens;
        e->next_start++;
        e->queued--;
        e->phase = GOV_PHASE_PREFILL;
        s->r->requests++;
        s->r->prompt_tokens += q->prompt_tokens;
        s->r->gen_tokens += q->gen_tokens;
    }
    if (e->phase != before) {
        e->phase_start_s = t;
        s->force_step = true;
    }
}

/* The controller's inputs as the agent would hand them over: averages since the last step. */
static void run_inputs(const struct sim_run *s, struct gov_inputs *in)
{
    const struct gov_sim_profile *p = s->p;
    double t = s->t;
    gov_inputs_init(in, (uint64_t)llround(t * 1e9));
    double win = s->acc_t > 0 ? s->acc_t : s->dt;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        /* the engine's threads run on the cluster's first cores */
        double u = s->acc_t > 0 ? s->acc_busy[i] / s->acc_t : 0;
        double uo = s->acc_t > 0 ? s->acc_busy_other[i] / s->acc_t : 0;
        for (unsigned c = 0; c < k->n_cpus; c++)
            in->util[k->first_cpu + c] = c < s->l.n_engine[i] ? u : uo;
        in->temp_c[i] = s->tj;
        in->cur_khz[i] = s->khz[i];
    }
    if (s->o->sensor_loss && t >= 0.4 * s->o->duration_s && t < 0.4 * s->o->duration_s + 10)
        for (unsigned i = 0; i < p->n_clusters; i++)
            in->temp_c[i] = NAN;
    in->passive_trip_c = s->trip;
    in->package_power_w = s->acc_t > 0 ? s->acc_e / s->acc_t : NAN;
    in->phase = s->e.phase;
    in->phase_ns = (uint64_t)llround((t - s->e.phase_start_s) * 1e9);
    in->queued = (unsigned)s->e.queued; /* the agent knows its own queue */
    /* the engine times its tokens, so its rate over the window is exact */
    if (s->acc_dec_t >= 0.5 * win && s->acc_tok_frac > 0)
        in->tokens_per_s = s->acc_tok_frac / s->acc_dec_t;
}

/* One controller step (every tick and at a phase change); its targets become the plant's
 * wanted clocks, snapped to the frequency table. */
static int run_controller(struct sim_run *s, char *err, size_t err_len)
{
    const struct gov_sim_profile *p = s->p;
    struct gov_inputs in;
    run_inputs(s, &in);
    struct gov_targets tg;
    int rc = gov_controller_step(s->ctl, &in, &tg);
    if (rc) {
        snprintf(err, err_len, "controller step at %.3f s: %s", s->t, strerror(-rc));
        return rc;
    }
    bool safe = false;
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        uint32_t f = tg.c[i].khz;
        if (k->boost_available && k->base_khz && !tg.c[i].boost && f > k->base_khz)
            f = k->base_khz;
        f = table_snap(k, f);
        if (f != s->want[i])
            s->changes++;
        s->want[i] = f;
        s->floor_khz[i] =
            table_snap(k, tg.c[i].floor_khz ? tg.c[i].floor_khz : s->ci[i].cpuinfo_min_khz);
        safe |= (tg.c[i].reasons & GOV_REASON_SENSOR_LOSS) != 0;
    }
    s->in_safe = safe;
    s->mem_target = tg.mem_frac;
    s->pol_threads = tg.engine_threads;
    s->pol_cpus = tg.engine_cpus;
    /* the engine switches its threads between tokens: at once, in the simulator */
    if (s->o->fixed_threads)
        gov_sim_placement(p,
                          s->e.phase == GOV_PHASE_DECODE ? s->o->fixed_decode_threads
                                                         : s->o->fixed_prefill_threads,
                          s->e.phase == GOV_PHASE_DECODE ? s->o->fixed_decode_cpus : 0, s->active);
    else
        gov_sim_placement(p, s->pol_threads, s->pol_cpus, s->active);
    if (s->o->fixed_clocks)
        gov_sim_fixed_clocks(p, s->o, s->e.phase, s->active, s->want);
    s->acc_t = s->acc_e = s->acc_dec_t = s->acc_tok_frac = 0;
    memset(s->acc_busy, 0, sizeof(s->acc_busy));
    memset(s->acc_busy_other, 0, sizeof(s->acc_busy_other));
    if (!s->force_step || s->t >= s->next_tick - 1e-9)
        s->next_tick = s->t + s->tick;
    s->force_step = false;
    return 0;
}

/* The plant over one step: effective clocks, load, power, and the junction and case nodes. */
static void run_plant(struct sim_run *s)
{
    const struct gov_sim_profile *p = s->p;
    effective_khz(p, s->want, s->floor_khz, s->e.phase, s->active, s->tj,
                  gov_sim_fw_limit_w(p, &s->fw), s->khz);
    phase_load(p, s->e.phase, s->khz, s->active, &s->l);
    s->pw = power_w(p, s->khz, &s->l, s->tj);
    gov_sim_fw_limit_update(p, &s->fw, s->pw, s->dt);
    double mem_mhz = memory_mhz(p, s->o, s->mem_target, s->e.phase, s->board_mhz);
    s->mem_scale = mem_mhz > 0 ? p->mem_mhz[p->n_mem_mhz - 1] / mem_mhz : 1;
    /* DRAM traffic: the weights once per token in decode, once per batch in prefill */
    double gbs = 0;
    if (p->weights_gb > 0 && s->e.phase == GOV_PHASE_DECODE)
        gbs = p->weights_gb / decode_token_s_at(p, s->khz, s->mem_scale, s->active);
    else if (p->weights_gb > 0 && s->e.phase == GOV_PHASE_PREFILL)
        gbs = p->weights_gb * prefill_tps_at(p, s->khz, s->mem_scale, s->active) /
              (p->prefill_batch_tokens > 0 ? p->prefill_batch_tokens : 64);
    /* the memory's own power is on the board, outside the CPU package */
    s->wall_w = gov_sim_wall_w(p, s->pw + memory_extra_w(p, mem_mhz), gbs);
    if (p->n_mem_mhz) {
        s->board_gb += gbs * s->dt;
        s->board_t += s->dt;
        if (s->board_t >= p->mem_polling_ms / 1e3 - 1e-9) {
            /* devfreq's own governor polls whether or not it is overruled (limits pinned) */
            s->board_mhz = memory_board_step(p, mem_mhz, s->board_gb, s->board_t);
            s->board_gb = s->board_t = 0;
        }
    }
    double flow = (s->tj - s->tc) / p->r_jc;
    s->tj += (s->pw - flow) / p->c_j * s->dt;
    s->tc += (flow - (s->tc - s->ambient) / p->r_ca) / p->c_c * s->dt;
}

/* The engine over one step: prefill works down the prompt, decode emits tokens at the speed the
 * clocks allow; TTFT and token latencies are recorded. */
static void run_engine(struct sim_run *s)
{
    const struct gov_sim_profile *p = s->p;
    struct engine *e = &s->e;
    double t = s->t, dt = s->dt;
    enum gov_phase ph = e->phase;
    double ms = s->mem_scale;
    if (ph == GOV_PHASE_PREFILL) {
        e->prompt_left -= prefill_tps_at(p, s->khz, ms, s->active) * dt;
        if (e->prompt_left <= 0) {
            /* the prompt's last logits give the first token */
            dpush(&s->ttft, (t + dt - e->arrival_s) * 1e3);
            e->last_token_s = t + dt;
            e->gen_left--;
            e->tok_progress = 0;
            e->phase = e->gen_left ? GOV_PHASE_DECODE : GOV_PHASE_IDLE;
        }
    } else if (ph == GOV_PHASE_DECODE) {
        double tok_s = decode_token_s_at(p, s->khz, ms, s->active);
        e->tok_progress += dt / tok_s;
        s->acc_dec_t += dt;
        s->acc_tok_frac += dt / tok_s;
        while (e->tok_progress >= 1 && e->gen_left) {
            e->tok_progress -= 1;
            e->gen_left--;
            s->decode_tokens++;
            double at = t + dt - e->tok_progress * tok_s;
            dpush(&s->toklat, (at - e->last_token_s) * 1e3);
            e->last_token_s = at;
        }
        if (!e->gen_left)
            e->phase = GOV_PHASE_IDLE;
    }
    if (e->phase != ph) {
        e->phase_start_s = t + dt;
        s->force_step = true;
        if (e->phase == GOV_PHASE_IDLE) {
            s->idle_since = t + dt;
            if (s->w->closed_loop)
                e->next_at = t + dt + s->w->think_s;
        }
    }
}

/* Energy per phase, the controller's accumulators, peak and over-target temperature. */
static void run_account(struct sim_run *s, enum gov_phase ph)
{
    struct gov_sim_result *r = s->r;
    double dt = s->dt, pw = s->pw, tj = s->tj;
    if (s->in_safe)
        r->safe_state_s += dt;
    r->energy_j += pw * dt;
    gov_sim_account_wall(r, ph, s->wall_w * dt);
    unsigned threads = 0;
    for (unsigned i = 0; i < s->p->n_clusters; i++)
        threads += s->l.n_engine[i];
    if (ph == GOV_PHASE_PREFILL)
        r->prefill_energy_j += pw * dt, s->prefill_t += dt, s->thr_prefill += threads * dt;
    else if (ph == GOV_PHASE_DECODE)
        r->decode_energy_j += pw * dt, s->decode_t += dt, s->thr_decode += threads * dt;
    else {
        r->idle_energy_j += pw * dt;
        if (s->t - s->idle_since >= IDLE_SETTLE_S)
            s->idle_settled_e += pw * dt, s->idle_settled_t += dt;
    }
    s->acc_t += dt;
    s->acc_e += pw * dt;
    for (unsigned i = 0; i < s->p->n_clusters; i++) {
        s->acc_busy[i] += s->l.busy_engine[i] * dt;
        s->acc_busy_other[i] += s->l.busy_other[i] * dt;
    }
    r->peak_temp_c = fmax(r->peak_temp_c, tj);
    if (isfinite(s->target)) {
        if (tj > s->target) {
            r->seconds_over_target += dt;
            if (isnan(s->first_over))
                s->first_over = s->t;
        }
        if (!isnan(s->first_over) && s->t >= s->first_over + TARGET_SETTLE_S)
            r->max_over_target_settled_c = fmax(r->max_over_target_settled_c, tj - s->target);
    }
}

/* Every 100 ms: the slot's mean power, the 5 s power-cap windows over busy slots, the trace. */
static int run_trace_slot(struct sim_run *s, enum gov_phase ph, char *err, size_t err_len)
{
    struct gov_sim_result *r = s->r;
    s->tr_t += s->dt;
    s->tr_e += s->pw * s->dt;
    s->slot_any_idle |= ph == GOV_PHASE_IDLE;
    if (!(s->tr_t >= TRACE_EVERY_S - 1e-9))
        return 0;
    double avg = s->tr_e / s->tr_t;
    r->peak_power_w = fmax(r->peak_power_w, avg);
    s->slot_p[s->slot_n % CAP_WINDOW] = avg;
    s->slot_busy[s->slot_n % CAP_WINDOW] = !s->slot_any_idle;
    s->slot_n++;
    if (s->slot_n >= CAP_WINDOW && s->t >= CAP_SETTLE_S) {
        double sum = 0;
        bool all_busy = true;
        for (unsigned k = 0; k < CAP_WINDOW; k++)
            sum += s->slot_p[k], all_busy &= s->slot_busy[k];
        sum /= CAP_WINDOW;
        if (all_busy) {
            r->max_power_5s_w = isnan(r->max_power_5s_w) ? sum : fmax(r->max_power_5s_w, sum);
            r->min_power_5s_w = isnan(r->min_power_5s_w) ? sum : fmin(r->min_power_5s_w, sum);
        }
    }
    if (s->trace) {
        struct gov_sim_trace_point pt = {.t_s = (float)(s->t + s->dt),
                                         .power_w = (float)avg,
                                         .temp_c = (float)s->tj,
                                         .phase = (uint8_t)ph};
        for (unsigned i = 0; i < s->p->n_clusters; i++)
            pt.khz[i] = s->khz[i];
        if (trace_push(s->trace, &pt)) {
            snprintf(err, err_len, "out of memory");
            return -ENOMEM;
        }
    }
    s->tr_t = s->tr_e = 0;
    s->slot_any_idle = false;
    return 0;
}

/* The result's derived figures: per-token energies, throughputs, percentiles, averages. */
static void run_results(struct sim_run *s)
{
    struct gov_sim_result *r = s->r;
    double t = s->t;
    r->sim_s = t;
    r->j_per_token_prefill = r->prompt_tokens ? r->prefill_energy_j / r->prompt_tokens : NAN;
    r->j_per_token_decode = s->decode_tokens ? r->decode_energy_j / s->decode_tokens : NAN;
    r->joules_per_token =
        r->gen_tokens ? (r->prefill_energy_j + r->decode_energy_j) / r->gen_tokens : NAN;
    r->prefill_tokens_per_s = s->prefill_t > 0 ? r->prompt_tokens / s->prefill_t : NAN;
    r->decode_tokens_per_s = s->decode_t > 0 ? s->decode_tokens / s->decode_t : NAN;
    r->prefill_threads = s->prefill_t > 0 ? s->thr_prefill / s->prefill_t : NAN;
    r->decode_threads = s->decode_t > 0 ? s->thr_decode / s->decode_t : NAN;
    r->ttft_p50_ms = pct(&s->ttft, 0.50);
    r->ttft_p99_ms = pct(&s->ttft, 0.99);
    r->token_latency_p99_ms = pct(&s->toklat, 0.99);
    r->avg_power_w = t > 0 ? r->energy_j / t : NAN;
    r->idle_power_w = s->idle_settled_t > 0 ? s->idle_settled_e / s->idle_settled_t : NAN;
    r->freq_changes_per_min = t > 0 ? s->changes / (t / 60.0) : 0;
    gov_sim_finish_wall(r);
    if (!isfinite(s->target))
        r->max_over_target_settled_c = NAN;
}

int gov_sim_run(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                const char *policy, const struct gov_sim_options *o, struct gov_sim_result *r,
                struct gov_sim_trace *trace, char *err, size_t err_len)
{
    struct sim_run *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    s->p = p;
    s->w = w;
    s->o = o;
    s->r = r;
    s->trace = trace;
    int rc = run_setup(s, policy, err, err_len);
    while (rc == 0 && !run_done(s)) {
        run_arrivals(s);
        if (s->force_step || s->t >= s->next_tick - 1e-9)
            rc = run_controller(s, err, err_len);
        if (rc)
            break;
        run_plant(s);
        enum gov_phase ph = s->e.phase;
        run_engine(s);
        run_account(s, ph);
        rc = run_trace_slot(s, ph, err, err_len);
        s->t += s->dt;
    }
    if (rc == 0)
        run_results(s);
    free(s->ttft.v);
    free(s->toklat.v);
    gov_controller_free(s->ctl);
    free(s);
    return rc;
}
