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

struct load {
    double busy[GOV_MAX_CLUSTERS];
    double act[GOV_MAX_CLUSTERS];
};

static void phase_load(const struct gov_sim_profile *p, enum gov_phase ph, const uint32_t *khz,
                       struct load *l)
{
    for (unsigned i = 0; i < p->n_clusters; i++) {
        const struct gov_sim_cluster *k = &p->clusters[i];
        double bg = p->background_mhz / (khz[i] / 1000.0);
        l->busy[i] = bg > 1 ? 1 : bg;
        l->act[i] = p->activity_background;
        if (k->engine && ph == GOV_PHASE_PREFILL) {
            l->busy[i] = 1;
            l->act[i] = p->activity_prefill;
        } else if (k->engine && ph == GOV_PHASE_DECODE) {
            l->busy[i] = fmax(p->engine_util_decode, l->busy[i]);
            l->act[i] = p->activity_decode;
        }
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
static double capacity_ghz(const struct gov_sim_profile *p, const uint32_t *khz)
{
    double c = 0;
    for (unsigned i = 0; i < p->n_clusters; i++)
        if (p->clusters[i].engine)
            c += p->clusters[i].n_cpus * p->clusters[i].ipc * khz[i] / 1e6;
    return c;
}

static double prefill_tps(const struct gov_sim_profile *p, const uint32_t *khz)
{
    return p->prefill_tok_per_gcycle * capacity_ghz(p, khz);
}

static double decode_token_s(const struct gov_sim_profile *p, const uint32_t *khz)
{
    double cap = capacity_ghz(p, khz);
    double tm = p->decode_mem_ms / 1e3;
    double tc = cap > 0 ? p->decode_gcycles_per_token / cap : 1e9;
    double hi = fmax(tm, tc), lo = fmin(tm, tc);
    return hi + (1 - p->decode_overlap) * lo;
}

/* The hardware's own limits on top of what the governor asked: HWP drops idle cores of a
 * limits-only backend to the floor; a firmware power limit scales engine clocks down until the
 * package fits; above Tjmax everything runs at the floor. */
static void effective_khz(const struct gov_sim_profile *p, const uint32_t *want,
                          const uint32_t *floor_khz, enum gov_phase ph, double temp_c,
                          double limit_w, uint32_t *out)
{
    struct load l;
    for (unsigned i = 0; i < p->n_clusters; i++)
        out[i] = want[i];
    phase_load(p, ph, out, &l);
    for (unsigned i = 0; i < p->n_clusters; i++)
        if (!p->clusters[i].exact && l.busy[i] < 0.3)
            out[i] = floor_khz[i];
    if (temp_c > p->tjmax_c) {
        for (unsigned i = 0; i < p->n_clusters; i++)
            out[i] = p->clusters[i].opps[0].khz;
        return;
    }
    if (limit_w > 0) {
        phase_load(p, ph, out, &l);
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
                phase_load(p, ph, tryk, &l);
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
    phase_load(p, ph, khz, &l);
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
        /* steady-state temperature of a long decode run, for the leakage term; a ladder step
         * lasts seconds, inside the firmware's PL2 window */
        double temp = ambient + 20, w = 0;
        struct load l;
        for (int it = 0; it < CALIB_TEMP_ITER; it++) {
            effective_khz(p, want, floor_khz, GOV_PHASE_DECODE, temp, burst_limit_w, eff);
            phase_load(p, GOV_PHASE_DECODE, eff, &l);
            w = power_w(p, eff, &l, temp);
            temp = ambient + w * (p->r_jc + p->r_ca);
        }
        pt->decode_tok_s = 1.0 / decode_token_s(p, eff);
        pt->watts = w;
        effective_khz(p, want, floor_khz, GOV_PHASE_PREFILL, temp, burst_limit_w, eff);
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

int gov_sim_run(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                const char *policy, const struct gov_sim_options *o, struct gov_sim_result *r,
                struct gov_sim_trace *trace, char *err, size_t err_len)
{
    int rc = 0;
    struct gov_controller *ctl = NULL;
    struct dvec ttft = {0}, toklat = {0};
    struct gov_cluster_info ci[GOV_MAX_CLUSTERS];
    struct gov_calibration cal;
    memset(r, 0, sizeof(*r));
    for (unsigned i = 0; i < p->n_clusters; i++)
        gov_sim_cluster_info(p, i, &ci[i]);
    if (o->calibrated)
        gov_sim_calibrate(p, o, &cal);
    rc = gov_controller_new(policy, &o->tunables, ci, p->n_clusters, o->calibrated ? &cal : NULL,
                            &ctl, err, err_len);
    if (rc)
        return rc;
    if (!(o->duration_s > 0) || !(o->step_ms > 0) || o->step_ms > 100) {
        snprintf(err, err_len, "duration must be > 0 and step 0..100 ms");
        rc = -EINVAL;
        goto out;
    }

    snprintf(r->policy, sizeof(r->policy), "%s", gov_controller_policy(ctl));
    snprintf(r->profile, sizeof(r->profile), "%s", p->name);
    r->duration_s = o->duration_s;
    snprintf(r->workload, sizeof(r->workload), "%s", w->name);
    const double dt = o->step_ms / 1e3, tick = o->tunables.tick_ms / 1e3;
    const double ambient = isfinite(o->ambient_c) ? o->ambient_c : p->ambient_c;
    const double trip = p->passive_trip_c > 0 ? p->passive_trip_c : NAN;
    const double target = gov_controller_thermal_target_c(ctl, trip);
    const double hard_end = o->duration_s * 3 + 3600;
    r->thermal_target_c = target;
    r->power_cap_w = o->tunables.power_cap_w;

    uint32_t want[GOV_MAX_CLUSTERS], floor_khz[GOV_MAX_CLUSTERS], khz[GOV_MAX_CLUSTERS];
    for (unsigned i = 0; i < p->n_clusters; i++)
        want[i] = floor_khz[i] = khz[i] = ci[i].cpuinfo_min_khz;
    /* start at the idle steady state */
    struct load l;
    phase_load(p, GOV_PHASE_IDLE, khz, &l);
    double pw = power_w(p, khz, &l, ambient);
    double tc = ambient + pw * p->r_ca, tj = tc + pw * p->r_jc;
    struct gov_sim_fw_limit fw;
    gov_sim_fw_limit_init(p, &fw, pw);

    struct engine e = {.phase = GOV_PHASE_IDLE};
    double t = 0, next_tick = 0;
    /* accumulators since the last controller step */
    double acc_t = 0, acc_e = 0, acc_busy[GOV_MAX_CLUSTERS] = {0}, acc_dec_t = 0;
    double acc_tok_frac = 0;
    bool force_step = true, in_safe = false;
    double idle_since = 0, first_over = NAN;
    double tr_t = 0, tr_e = 0, slot_p[CAP_WINDOW] = {0};
    bool slot_busy[CAP_WINDOW] = {0};
    unsigned slot_n = 0;
    bool slot_any_idle = false;
    double prefill_t = 0, decode_t = 0, idle_settled_e = 0, idle_settled_t = 0;
    unsigned changes = 0, decode_tokens = 0;
    r->min_power_5s_w = NAN;
    r->max_power_5s_w = NAN;

    for (;;) {
        bool arrivals_left = w->closed_loop ? t < o->duration_s : e.next < w->n;
        bool busy = e.phase != GOV_PHASE_IDLE || e.queued > 0;
        if (t >= o->duration_s && !busy && (!arrivals_left || w->closed_loop))
            break;
        if (t >= hard_end)
            break;

        /* arrivals */
        if (w->closed_loop) {
            if (e.next < w->n && t < o->duration_s && e.phase == GOV_PHASE_IDLE && !e.queued &&
                t >= e.next_at) {
                e.next++;
                e.queued++;
            }
        } else {
            while (e.next < w->n && w->req[e.next].at_s <= t &&
                   w->req[e.next].at_s < o->duration_s) {
                e.next++;
                e.queued++;
            }
            if (e.next < w->n && w->req[e.next].at_s >= o->duration_s)
                e.next = w->n; /* arrivals after the end are not part of this run */
        }
        /* start the next request */
        enum gov_phase before = e.phase;
        if (e.phase == GOV_PHASE_IDLE && e.queued) {
            const struct gov_sim_request *q = &w->req[e.next_start];
            e.arrival_s = w->closed_loop ? t : q->at_s;
            e.prompt_left = q->prompt_tokens;
            e.gen_left = q->gen_tokens;
            e.next_start++;
            e.queued--;
            e.phase = GOV_PHASE_PREFILL;
            r->requests++;
            r->prompt_tokens += q->prompt_tokens;
            r->gen_tokens += q->gen_tokens;
        }
        if (e.phase != before) {
            e.phase_start_s = t;
            force_step = true;
        }

        /* the controller: every tick and at a phase change */
        if (force_step || t >= next_tick - 1e-9) {
            struct gov_inputs in;
            gov_inputs_init(&in, (uint64_t)llround(t * 1e9));
            double win = acc_t > 0 ? acc_t : dt;
            for (unsigned i = 0; i < p->n_clusters; i++) {
                const struct gov_sim_cluster *k = &p->clusters[i];
                double u = acc_t > 0 ? acc_busy[i] / acc_t : 0;
                for (unsigned c = 0; c < k->n_cpus; c++)
                    in.util[k->first_cpu + c] = u;
                in.temp_c[i] = tj;
                in.cur_khz[i] = khz[i];
            }
            if (o->sensor_loss && t >= 0.4 * o->duration_s && t < 0.4 * o->duration_s + 10)
                for (unsigned i = 0; i < p->n_clusters; i++)
                    in.temp_c[i] = NAN;
            in.passive_trip_c = trip;
            in.package_power_w = acc_t > 0 ? acc_e / acc_t : NAN;
            in.phase = e.phase;
            in.phase_ns = (uint64_t)llround((t - e.phase_start_s) * 1e9);
            /* the engine times its tokens, so its rate over the window is exact */
            if (acc_dec_t >= 0.5 * win && acc_tok_frac > 0)
                in.tokens_per_s = acc_tok_frac / acc_dec_t;
            struct gov_targets tg;
            rc = gov_controller_step(ctl, &in, &tg);
            if (rc) {
                snprintf(err, err_len, "controller step at %.3f s: %s", t, strerror(-rc));
                goto out;
            }
            bool safe = false;
            for (unsigned i = 0; i < p->n_clusters; i++) {
                const struct gov_sim_cluster *k = &p->clusters[i];
                uint32_t f = tg.c[i].khz;
                if (k->boost_available && k->base_khz && !tg.c[i].boost && f > k->base_khz)
                    f = k->base_khz;
                f = table_snap(k, f);
                if (f != want[i])
                    changes++;
                want[i] = f;
                floor_khz[i] =
                    table_snap(k, tg.c[i].floor_khz ? tg.c[i].floor_khz : ci[i].cpuinfo_min_khz);
                safe |= (tg.c[i].reasons & GOV_REASON_SENSOR_LOSS) != 0;
            }
            in_safe = safe;
            if (o->fixed_clocks)
                gov_sim_fixed_clocks(p, o, e.phase, want);
            acc_t = acc_e = acc_dec_t = acc_tok_frac = 0;
            memset(acc_busy, 0, sizeof(acc_busy));
            if (!force_step || t >= next_tick - 1e-9)
                next_tick = t + tick;
            force_step = false;
        }

        /* the plant */
        effective_khz(p, want, floor_khz, e.phase, tj, gov_sim_fw_limit_w(p, &fw), khz);
        phase_load(p, e.phase, khz, &l);
        pw = power_w(p, khz, &l, tj);
        gov_sim_fw_limit_update(p, &fw, pw, dt);
        const double wall_w = gov_sim_wall_w(p, pw, gov_sim_dram_gbs(p, e.phase, khz));
        double flow = (tj - tc) / p->r_jc;
        tj += (pw - flow) / p->c_j * dt;
        tc += (flow - (tc - ambient) / p->r_ca) / p->c_c * dt;

        /* the engine */
        enum gov_phase ph = e.phase;
        if (ph == GOV_PHASE_PREFILL) {
            e.prompt_left -= prefill_tps(p, khz) * dt;
            if (e.prompt_left <= 0) {
                /* the prompt's last logits give the first token */
                dpush(&ttft, (t + dt - e.arrival_s) * 1e3);
                e.last_token_s = t + dt;
                e.gen_left--;
                e.tok_progress = 0;
                e.phase = e.gen_left ? GOV_PHASE_DECODE : GOV_PHASE_IDLE;
            }
        } else if (ph == GOV_PHASE_DECODE) {
            e.tok_progress += dt / decode_token_s(p, khz);
            acc_dec_t += dt;
            acc_tok_frac += dt / decode_token_s(p, khz);
            while (e.tok_progress >= 1 && e.gen_left) {
                e.tok_progress -= 1;
                e.gen_left--;
                decode_tokens++;
                double at = t + dt - e.tok_progress * decode_token_s(p, khz);
                dpush(&toklat, (at - e.last_token_s) * 1e3);
                e.last_token_s = at;
            }
            if (!e.gen_left)
                e.phase = GOV_PHASE_IDLE;
        }
        if (e.phase != ph) {
            e.phase_start_s = t + dt;
            force_step = true;
            if (e.phase == GOV_PHASE_IDLE) {
                idle_since = t + dt;
                if (w->closed_loop)
                    e.next_at = t + dt + w->think_s;
            }
        }

        /* bookkeeping */
        if (in_safe)
            r->safe_state_s += dt;
        r->energy_j += pw * dt;
        gov_sim_account_wall(r, ph, wall_w * dt);
        if (ph == GOV_PHASE_PREFILL)
            r->prefill_energy_j += pw * dt, prefill_t += dt;
        else if (ph == GOV_PHASE_DECODE)
            r->decode_energy_j += pw * dt, decode_t += dt;
        else {
            r->idle_energy_j += pw * dt;
            if (t - idle_since >= IDLE_SETTLE_S)
                idle_settled_e += pw * dt, idle_settled_t += dt;
        }
        acc_t += dt;
        acc_e += pw * dt;
        for (unsigned i = 0; i < p->n_clusters; i++)
            acc_busy[i] += l.busy[i] * dt;
        r->peak_temp_c = fmax(r->peak_temp_c, tj);
        if (isfinite(target)) {
            if (tj > target) {
                r->seconds_over_target += dt;
                if (isnan(first_over))
                    first_over = t;
            }
            if (!isnan(first_over) && t >= first_over + TARGET_SETTLE_S)
                r->max_over_target_settled_c = fmax(r->max_over_target_settled_c, tj - target);
        }
        tr_t += dt;
        tr_e += pw * dt;
        slot_any_idle |= ph == GOV_PHASE_IDLE;
        if (tr_t >= TRACE_EVERY_S - 1e-9) {
            double avg = tr_e / tr_t;
            r->peak_power_w = fmax(r->peak_power_w, avg);
            slot_p[slot_n % CAP_WINDOW] = avg;
            slot_busy[slot_n % CAP_WINDOW] = !slot_any_idle;
            slot_n++;
            if (slot_n >= CAP_WINDOW && t >= CAP_SETTLE_S) {
                double s = 0;
                bool all_busy = true;
                for (unsigned k = 0; k < CAP_WINDOW; k++)
                    s += slot_p[k], all_busy &= slot_busy[k];
                s /= CAP_WINDOW;
                if (all_busy) {
                    r->max_power_5s_w = isnan(r->max_power_5s_w) ? s : fmax(r->max_power_5s_w, s);
                    r->min_power_5s_w = isnan(r->min_power_5s_w) ? s : fmin(r->min_power_5s_w, s);
                }
            }
            if (trace) {
                struct gov_sim_trace_point pt = {.t_s = (float)(t + dt),
                                                 .power_w = (float)avg,
                                                 .temp_c = (float)tj,
                                                 .phase = (uint8_t)ph};
                for (unsigned i = 0; i < p->n_clusters; i++)
                    pt.khz[i] = khz[i];
                if (trace_push(trace, &pt)) {
                    rc = -ENOMEM;
                    snprintf(err, err_len, "out of memory");
                    goto out;
                }
            }
            tr_t = tr_e = 0;
            slot_any_idle = false;
        }
        t += dt;
    }

    r->sim_s = t;
    r->j_per_token_prefill = r->prompt_tokens ? r->prefill_energy_j / r->prompt_tokens : NAN;
    r->j_per_token_decode = decode_tokens ? r->decode_energy_j / decode_tokens : NAN;
    r->joules_per_token =
        r->gen_tokens ? (r->prefill_energy_j + r->decode_energy_j) / r->gen_tokens : NAN;
    r->prefill_tokens_per_s = prefill_t > 0 ? r->prompt_tokens / prefill_t : NAN;
    r->decode_tokens_per_s = decode_t > 0 ? decode_tokens / decode_t : NAN;
    r->ttft_p50_ms = pct(&ttft, 0.50);
    r->ttft_p99_ms = pct(&ttft, 0.99);
    r->token_latency_p99_ms = pct(&toklat, 0.99);
    r->avg_power_w = t > 0 ? r->energy_j / t : NAN;
    r->idle_power_w = idle_settled_t > 0 ? idle_settled_e / idle_settled_t : NAN;
    r->freq_changes_per_min = t > 0 ? changes / (t / 60.0) : 0;
    gov_sim_finish_wall(r);
    if (!isfinite(target))
        r->max_over_target_settled_c = NAN;
out:
    free(ttft.v);
    free(toklat.v);
    gov_controller_free(ctl);
    return rc;
}
