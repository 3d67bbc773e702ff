/* The engine-aware policies. `balanced` (the default) runs prefill at boost, decode at the knee
 * where tokens/s stops rising by more than decode_slowdown_max_pct (from the calibration curve, or
 * without one from an online fit of time-per-token against frequency), and drops to the minimum
 * after idle_delay_ms without engine work. `efficiency` walks down the frequency ladder during
 * decode measuring joules per token (package power / tokens/s) and settles on the lowest one
 * within the slowdown budget (starting from the calibration curve's best point when it has watts).
 * `quiet` is balanced under a slow temperature cap (quiet_temp_c) whose upward slew is limited, so
 * fans are not spun up by bursts. Clusters that
 * carry no engine load (below half busy) follow schedutil's rule in every phase. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define NS_PER_MS        1000000ULL
#define NS_PER_S         1000000000ULL
#define ENGINE_LOAD      0.5 /* a cluster this busy while the engine works runs engine threads */
#define KNEE_MIN_SAMPLES 3   /* samples a probe point needs before the search moves on */
#define KNEE_N_CAP       30  /* running means forget older samples beyond this many */

/* ---- decode-knee estimator ---- */

static unsigned knee_bin(double r)
{
    int b = (int)(r * GOV_KNEE_BINS);
    return b < 0 ? 0 : b >= GOV_KNEE_BINS ? GOV_KNEE_BINS - 1 : (unsigned)b;
}

void gov_knee_add(struct gov_knee *k, double r, double tokens_per_s)
{
    if (!(r > 0 && r <= 1.0001) || !(tokens_per_s > 0) || !isfinite(tokens_per_s))
        return;
    unsigned b = knee_bin(r);
    if (k->n[b] < KNEE_N_CAP)
        k->n[b]++;
    double w = 1.0 / k->n[b];
    k->mean_t[b] += (1.0 / tokens_per_s - k->mean_t[b]) * w;
    k->mean_r[b] += (r - k->mean_r[b]) * w;
}

int gov_knee_fit(const struct gov_knee *k, double *ret_a, double *ret_b)
{
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0, rmin = 2, rmax = 0;
    for (unsigned b = 0; b < GOV_KNEE_BINS; b++) {
        if (!k->n[b])
            continue;
        double w = k->n[b], x = 1.0 / k->mean_r[b], y = k->mean_t[b];
        sw += w, sx += w * x, sy += w * y, sxx += w * x * x, sxy += w * x * y;
        rmin = fmin(rmin, k->mean_r[b]);
        rmax = fmax(rmax, k->mean_r[b]);
    }
    if (rmax - rmin < 0.05)
        return -EAGAIN;
    double den = sw * sxx - sx * sx;
    if (!(fabs(den) > 1e-12))
        return -EAGAIN;
    double bb = (sw * sxy - sx * sy) / den;
    *ret_b = bb;
    *ret_a = (sy - bb * sx) / sw;
    return 0;
}

double gov_knee_solve(double a, double b, double slowdown, double r_min)
{
    if (!(b > 0))
        return r_min; /* throughput does not depend on the clock: the floor is enough */
    double t1 = a + b;
    double allowed = t1 / (1.0 - slowdown);
    double den = allowed - a;
    if (!(den > 0))
        return 1.0;
    double r = b / den;
    return r < r_min ? r_min : r > 1 ? 1 : r;
}

/* ---- the thread lever: the engine's thread count and CPUs per phase ---- */

/* Prefill is compute-bound: every engine core. Decode streams the weights once per token and,
 * once the cores pull the memory's bandwidth, more cores only burn power: starting from every
 * engine core, drop one core at a time (at the decode clock the clock rule chose) while the
 * measured tokens/s stays at or above the policy's need (the budget decode_slowdown_max_pct
 * against the ceiling with every core, which the clock rule already spends on the clock, so a
 * core goes only where it costs nothing the budget has not left). efficiency also asks that
 * joules per token fall. Decode keeps to the fastest cluster: its cores come first. */
enum thread_stage { TH_WAIT, TH_REF, TH_TRY, TH_SETTLED };
#define THREAD_HEADROOM 0.01 /* try fewer cores only when every core beats the need by this */

struct threads {
    uint64_t engine_cpus; /* CPUs busy in the last settled prefill: where the engine runs */
    unsigned n_engine;    /* their number: the engine's own thread count, the ceiling */
    unsigned order[64];   /* engine CPUs, the fastest cluster's first */
    unsigned n;           /* decode threads now */
    unsigned best;        /* the fewest accepted so far */
    enum thread_stage stage;
    uint32_t clock_khz; /* the decode clock the search runs at; another one restarts it */
    uint32_t prev_cur;
    uint64_t stage_ns, settled_ns;
    double acc_tps, acc_w, best_j;
    unsigned acc_n;
};

/* Learns the engine's CPUs from a settled prefill (every engine thread busy). */
static void threads_learn(struct threads *th, const struct gov_policy_ctx *ctx,
                          const struct gov_inputs *in)
{
    uint64_t mask = 0;
    unsigned order[GOV_MAX_CLUSTERS], n_order = 0;
    for (unsigned i = 0; i < ctx->n_clusters; i++) { /* clusters, fastest ceiling first */
        unsigned k = n_order++;
        while (k > 0 && ctx->ceil_khz[order[k - 1]] < ctx->ceil_khz[i]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    unsigned n = 0, list[64];
    for (unsigned o = 0; o < n_order; o++) {
        const struct gov_cluster_info *c = &ctx->clusters[order[o]];
        for (unsigned k = 0; k < c->n_cpus; k++) {
            unsigned cpu = c->cpus[k];
            if (cpu >= 64)
                return; /* engine_cpus cannot name it: leave the engine as configured */
            if (isfinite(in->util[cpu]) && in->util[cpu] >= ENGINE_LOAD && n < 64) {
                mask |= 1ULL << cpu;
                list[n++] = cpu;
            }
        }
    }
    if (!n || mask == th->engine_cpus)
        return;
    memset(th, 0, sizeof(*th)); /* the engine changed: search again */
    th->engine_cpus = mask;
    th->n_engine = th->n = th->best = n;
    memcpy(th->order, list, n * sizeof(*list));
}

static uint64_t threads_mask(const struct threads *th, unsigned n)
{
    uint64_t m = 0;
    for (unsigned k = 0; k < n && k < th->n_engine; k++)
        m |= 1ULL << th->order[k];
    return m;
}

static void threads_restart(struct threads *th, uint32_t clock_khz)
{
    th->stage = TH_REF;
    th->n = th->best = th->n_engine;
    th->clock_khz = clock_khz;
    th->stage_ns = 0;
    th->acc_tps = th->acc_w = th->acc_n = 0;
    th->best_j = INFINITY;
}

/* One decode tick of the search. clock_khz: the clock rule's decode target of the cluster the
 * engine's first thread runs on (0 while that rule still searches); need: the tokens/s the
 * budget asks for (NaN: unknown, keep every core); energy: efficiency's extra test. */
static void threads_decode(struct threads *th, const struct gov_policy_ctx *ctx,
                           const struct gov_inputs *in, uint64_t dt, uint32_t clock_khz,
                           double need, bool energy)
{
    const struct gov_tunables *t = ctx->tunables;
    if (!th->n_engine)
        return;
    if (!clock_khz || !isfinite(need)) {
        th->stage = TH_WAIT, th->n = th->n_engine;
        return;
    }
    /* a clock the dead band would not apply is the same clock */
    double moved = fabs((double)clock_khz - th->clock_khz) / clock_khz * 100;
    if (th->stage == TH_WAIT || moved > t->dead_band_pct ||
        (th->stage == TH_SETTLED && t->reprobe_s > 0 &&
         in->now_ns - th->settled_ns >= (uint64_t)t->reprobe_s * NS_PER_S))
        threads_restart(th, clock_khz);
    if (th->stage == TH_SETTLED || in->queued)
        return;
    /* only a whole tick at one clock with this thread count says what it gives */
    uint32_t cur = 0;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        for (unsigned k = 0; k < ctx->clusters[i].n_cpus; k++)
            if (ctx->clusters[i].cpus[k] == th->order[0])
                cur = gov_cluster_cur(in, i, 0);
    bool whole = in->phase_ns >= (uint64_t)t->tick_ms * NS_PER_MS * 3 / 2;
    if (whole && cur && cur == th->prev_cur && isfinite(in->tokens_per_s) && in->tokens_per_s > 0 &&
        (!energy || isfinite(in->package_power_w))) {
        th->acc_tps += in->tokens_per_s;
        th->acc_w += energy ? in->package_power_w : 0;
        th->acc_n++;
    }
    th->prev_cur = cur;
    th->stage_ns += dt;
    if (th->stage_ns < (uint64_t)t->probe_ms * NS_PER_MS || th->acc_n < KNEE_MIN_SAMPLES)
        return;
    double tps = th->acc_tps / th->acc_n, j = energy ? th->acc_w / th->acc_n / tps : 0;
    bool ok = th->stage == TH_REF || (tps >= need && (!energy || j < th->best_j));
    if (ok)
        th->best = th->n, th->best_j = j;
    th->stage_ns = 0;
    th->acc_tps = th->acc_w = th->acc_n = 0;
    /* a probe runs probe_ms slower: where the clock rule left less headroom than THREAD_HEADROOM
     * above the need, trying would spend budget no saving gives back */
    bool room = th->stage != TH_REF || tps >= need * (1 + THREAD_HEADROOM);
    if (ok && room && th->n > 1) {
        th->n--, th->stage = TH_TRY;
    } else {
        th->n = th->best, th->stage = TH_SETTLED;
        th->settled_ns = in->now_ns;
    }
}

/* The lever's targets in this phase: every engine core outside decode (the next request starts
 * with a prefill) and while a request waits; decode's count otherwise. */
static void threads_targets(struct threads *th, const struct gov_policy_ctx *ctx,
                            const struct gov_inputs *in, struct gov_targets *out)
{
    if (!ctx->tunables->thread_lever || !th->n_engine)
        return;
    unsigned n = th->n_engine;
    if (in->phase == GOV_PHASE_DECODE && !in->queued && th->n)
        n = th->n;
    out->engine_threads = n;
    out->engine_cpus = threads_mask(th, n);
}

/* The lever hands engine threads to cluster i (the engine's CPUs there). */
static bool threads_on_cluster(const struct threads *th, const struct gov_policy_ctx *ctx,
                               unsigned i)
{
    if (!ctx->tunables->thread_lever)
        return false;
    for (unsigned k = 0; k < ctx->clusters[i].n_cpus; k++) {
        unsigned cpu = ctx->clusters[i].cpus[k];
        if (cpu < 64 && (th->engine_cpus >> cpu & 1))
            return true;
    }
    return false;
}

/* Decode runs on fewer cores than the engine has: throughput samples are not the clock's. */
static bool threads_reduced(const struct threads *th)
{
    return th->n_engine && th->n < th->n_engine;
}

/* ---- balanced ---- */

enum knee_stage { STAGE_FULL, STAGE_MID, STAGE_KNEE, STAGE_SETTLED };

struct balanced {
    const struct gov_policy_ctx *ctx;
    bool use_cal;
    uint32_t cal_khz[GOV_MAX_CLUSTERS]; /* calibration knee, per controller cluster */
    struct gov_knee knee;
    enum knee_stage stage;
    uint64_t stage_ns; /* decode time spent in the current stage */
    unsigned stage_samples;
    double r_decode;     /* decode frequency as a fraction of the ceiling */
    uint64_t settled_ns; /* when the search last settled */
    uint64_t last_ns;
    bool started;
    uint32_t prev_cur; /* primary cluster's frequency at the previous tick */
    uint32_t decode_khz[GOV_MAX_CLUSTERS];
    bool engine[GOV_MAX_CLUSTERS];
    double cal_best_tps; /* the calibration's fastest decode (every thread, the ceiling) */
    struct threads th;
};

static double r_floor(const struct gov_policy_ctx *ctx)
{
    double r = 0;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        r = fmax(r, (double)ctx->floor_khz[i] / ctx->ceil_khz[i]);
    return r;
}

/* The lowest calibration point within the slowdown budget, mapped by cluster name. */
static bool calib_knee(struct balanced *b)
{
    const struct gov_policy_ctx *ctx = b->ctx;
    const struct gov_calibration *cal = ctx->calibration;
    if (!cal || !cal->n_points)
        return false;
    int map[GOV_MAX_CLUSTERS];
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        map[i] = -1;
        for (unsigned j = 0; j < cal->n_clusters; j++)
            if (strcmp(cal->cluster_names[j], ctx->clusters[i].name) == 0)
                map[i] = (int)j;
        if (map[i] < 0)
            return false;
    }
    double best = 0;
    for (unsigned p = 0; p < cal->n_points; p++)
        if (cal->points[p].decode_tok_s > best)
            best = cal->points[p].decode_tok_s;
    if (!(best > 0))
        return false;
    b->cal_best_tps = best;
    double need = best * (1.0 - ctx->tunables->decode_slowdown_max_pct / 100.0);
    for (unsigned p = 0; p < cal->n_points; p++) {
        const struct gov_calib_point *hi = &cal->points[p];
        if (!(hi->decode_tok_s >= need))
            continue;
        /* between two measured steps throughput is close to linear in the clock: interpolate
         * where it crosses the budget (the controller rounds up to a real frequency) */
        const struct gov_calib_point *lo = p ? &cal->points[p - 1] : NULL;
        double x = 1;
        if (lo && lo->decode_tok_s < need && hi->decode_tok_s > lo->decode_tok_s)
            x = (need - lo->decode_tok_s) / (hi->decode_tok_s - lo->decode_tok_s);
        for (unsigned i = 0; i < ctx->n_clusters; i++) {
            double f = hi->khz[map[i]];
            if (lo && x < 1)
                f = lo->khz[map[i]] + x * ((double)hi->khz[map[i]] - lo->khz[map[i]]);
            b->cal_khz[i] = (uint32_t)ceil(f);
        }
        return true;
    }
    return false;
}

static void balanced_setup(struct balanced *b, const struct gov_policy_ctx *ctx)
{
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        b->engine[i] = true; /* until a busy phase shows which clusters the engine uses */
    b->cal_best_tps = NAN;
    b->use_cal = calib_knee(b);
    b->r_decode = 1.0;
    b->stage = STAGE_FULL;
}

static int balanced_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct balanced *b = malloc(sizeof(*b));
    if (!b)
        return -ENOMEM;
    balanced_setup(b, ctx);
    *ret_state = b;
    return 0;
}

static void policy_free(void *state)
{
    free(state);
}

/* The busiest cluster carries the engine's critical path; its clock is the one observed. */
static unsigned primary_cluster(const struct gov_policy_ctx *ctx, const struct gov_inputs *in)
{
    unsigned best = 0;
    double best_load = -1;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        double l = gov_cluster_load(&ctx->clusters[i], in);
        if (isfinite(l) && (l > best_load + 0.05 ||
                            (l > best_load - 0.05 && ctx->ceil_khz[i] > ctx->ceil_khz[best]))) {
            best = i;
            best_load = l;
        }
    }
    return best;
}

/* Feeds the estimator and moves the online search along; returns the decode fraction. */
static double balanced_decode_r(struct balanced *b, const struct gov_inputs *in, uint64_t dt_ns)
{
    const struct gov_policy_ctx *ctx = b->ctx;
    const struct gov_tunables *t = ctx->tunables;
    unsigned p = primary_cluster(ctx, in);
    uint32_t cur = gov_cluster_cur(in, p, 0);
    double s = t->decode_slowdown_max_pct / 100.0, rmin = r_floor(ctx);
    /* only a tick that ran entirely at one clock says what that clock gives */
    bool whole = in->phase_ns >= (uint64_t)t->tick_ms * NS_PER_MS * 3 / 2;
    if (whole && cur && cur == b->prev_cur && isfinite(in->tokens_per_s) && in->tokens_per_s > 0 &&
        !threads_reduced(&b->th)) {
        gov_knee_add(&b->knee, (double)cur / ctx->ceil_khz[p], in->tokens_per_s);
        b->stage_samples++;
    }
    b->prev_cur = cur;
    b->stage_ns += dt_ns;

    uint64_t probe_ns = (uint64_t)t->probe_ms * NS_PER_MS;
    /* samples land where the clock really was (table rounding, constraints), so a stage
     * counts its own samples rather than those of the bin it asked for */
    bool enough = b->stage_ns >= probe_ns && b->stage_samples >= KNEE_MIN_SAMPLES;
    if (enough)
        b->stage_samples = 0;
    double a, bb;
    switch (b->stage) {
    case STAGE_FULL:
        if (enough) {
            b->stage = STAGE_MID, b->stage_ns = 0;
            b->r_decode = fmax(rmin, 0.6);
            if (b->r_decode > 0.95) { /* too narrow a range to search */
                b->stage = STAGE_SETTLED;
                b->r_decode = 1.0;
                b->settled_ns = in->now_ns;
            }
        }
        break;
    case STAGE_MID:
        if (enough) {
            b->stage_ns = 0;
            if (gov_knee_fit(&b->knee, &a, &bb) == 0) {
                b->stage = STAGE_KNEE;
                b->r_decode = gov_knee_solve(a, bb, s, rmin);
            } else {
                b->stage = STAGE_SETTLED, b->r_decode = 1.0, b->settled_ns = in->now_ns;
            }
        }
        break;
    case STAGE_KNEE:
    case STAGE_SETTLED:
        if (enough) {
            b->stage_ns = 0;
            if (b->stage == STAGE_KNEE)
                b->settled_ns = in->now_ns;
            b->stage = STAGE_SETTLED;
            if (gov_knee_fit(&b->knee, &a, &bb) == 0)
                b->r_decode = gov_knee_solve(a, bb, s, rmin);
        }
        if (b->stage == STAGE_SETTLED && t->reprobe_s > 0 &&
            in->now_ns - b->settled_ns >= (uint64_t)t->reprobe_s * NS_PER_S) {
            b->stage = STAGE_FULL, b->stage_ns = 0, b->r_decode = 1.0;
            b->stage_samples = 0;
        }
        break;
    }
    return b->r_decode;
}

static uint32_t frac_khz(const struct gov_policy_ctx *ctx, unsigned i, double r)
{
    double f = r * ctx->ceil_khz[i];
    if (f < ctx->floor_khz[i])
        return ctx->floor_khz[i];
    return f > ctx->ceil_khz[i] ? ctx->ceil_khz[i] : (uint32_t)(f + 0.5);
}

/* The levers beyond the CPU clock, per phase. Decode streams every weight per token, so the
 * memory clock is at its top; prefill is compute-bound and reads the weights once per batch, so
 * it takes memory_prefill_pct; idle takes the lowest at once (the next request starts with a
 * prefill, which does not need it). EPP: the hardware's own choice inside our limits should
 * race in prefill, stay near the limit in decode and save once idle_delay has passed (a short
 * pause keeps the decode setting, as the CPU clock does). */
static void phase_levers(const struct gov_tunables *t, const struct gov_inputs *in,
                         uint64_t idle_ns, struct gov_targets *out)
{
    bool long_idle = in->phase == GOV_PHASE_IDLE && in->phase_ns >= idle_ns;
    if (t->memory_lever) {
        if (in->phase == GOV_PHASE_PREFILL)
            out->mem_frac = t->memory_prefill_pct / 100.0;
        else
            out->mem_frac = in->phase == GOV_PHASE_DECODE ? 1.0 : 0.0;
    }
    if (t->epp_lever) {
        if (in->phase == GOV_PHASE_PREFILL)
            out->epp = GOV_EPP_PERFORMANCE;
        else
            out->epp = long_idle ? GOV_EPP_POWER : GOV_EPP_BALANCE_PERFORMANCE;
    }
}

/* Shared by balanced, efficiency and quiet: the phase logic with the decode and prefill
 * frequencies supplied by the caller. */
static void phase_decide(struct balanced *b, const struct gov_inputs *in, uint64_t now_ns,
                         const uint32_t *decode_khz, const uint32_t *prefill_khz,
                         struct gov_targets *out)
{
    const struct gov_policy_ctx *ctx = b->ctx;
    uint64_t idle_ns = (uint64_t)ctx->tunables->idle_delay_ms * NS_PER_MS;
    uint64_t window_ns = (uint64_t)ctx->tunables->tick_ms * NS_PER_MS * 3 / 2;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        /* the load of the first tick of a phase was measured before it began: until a full
         * window lies inside the phase, trust what the previous busy phase showed */
        double load = gov_cluster_load(&ctx->clusters[i], in);
        bool settled = in->phase_ns >= window_ns;
        bool engine = load >= ENGINE_LOAD || (!settled && b->engine[i]);
        /* a prefill gets every engine thread back at once, also on a cluster decode left */
        if (!settled && in->phase == GOV_PHASE_PREFILL && threads_on_cluster(&b->th, ctx, i))
            engine = true;
        uint32_t f = gov_schedutil_freq(ctx, i, in);
        switch (in->phase) {
        case GOV_PHASE_PREFILL:
            if (engine)
                f = prefill_khz[i];
            if (settled)
                b->engine[i] = engine;
            break;
        case GOV_PHASE_DECODE:
            /* a queue behind this decode waits for every token of it: no slowdown then */
            if (engine)
                f = in->queued ? ctx->ceil_khz[i] : decode_khz[i];
            if (settled)
                b->engine[i] = engine;
            b->decode_khz[i] = f;
            break;
        case GOV_PHASE_IDLE:
            /* a short pause between requests keeps the decode clock, then the floor; the
             * engine's own load in the first window must not read as demand */
            if (b->engine[i] && in->phase_ns < idle_ns)
                f = b->decode_khz[i] ? b->decode_khz[i] : ctx->floor_khz[i];
            else if (b->engine[i] && !settled)
                f = ctx->floor_khz[i];
            break;
        }
        out->c[i].khz = f;
        out->c[i].boost = out->c[i].khz > ctx->clusters[i].base_khz;
    }
    phase_levers(ctx->tunables, in, idle_ns, out);
    if (in->phase == GOV_PHASE_PREFILL && in->phase_ns >= window_ns)
        threads_learn(&b->th, ctx, in);
    threads_targets(&b->th, ctx, in, out);
    (void)now_ns;
}

static uint64_t step_dt(struct balanced *b, uint64_t now_ns)
{
    uint64_t dt = b->started && now_ns > b->last_ns ? now_ns - b->last_ns : 0;
    b->started = true;
    b->last_ns = now_ns;
    return dt;
}

/* The decode clock the thread search runs at: the clock rule's target for the cluster of the
 * engine's first thread. */
static uint32_t threads_clock(const struct balanced *b, const uint32_t *dec)
{
    const struct gov_policy_ctx *ctx = b->ctx;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        for (unsigned k = 0; k < ctx->clusters[i].n_cpus; k++)
            if (b->th.n_engine && ctx->clusters[i].cpus[k] == b->th.order[0])
                return dec[i];
    return 0;
}

/* balanced's thread search: once the clock rule has settled, at the tokens/s its budget asks
 * for (the calibration's fastest decode, or the online fit's value at the ceiling). */
static void balanced_threads(struct balanced *b, const struct gov_inputs *in, uint64_t dt,
                             const uint32_t *dec)
{
    const struct gov_policy_ctx *ctx = b->ctx;
    if (!ctx->tunables->thread_lever)
        return;
    double keep = 1.0 - ctx->tunables->decode_slowdown_max_pct / 100.0, a, bb;
    double need = NAN;
    uint32_t clock = 0;
    if (b->use_cal) {
        need = keep * b->cal_best_tps;
        clock = threads_clock(b, dec);
    } else if (b->stage == STAGE_SETTLED && gov_knee_fit(&b->knee, &a, &bb) == 0 && a + bb > 0) {
        need = keep / (a + bb);
        clock = threads_clock(b, dec);
    }
    threads_decode(&b->th, ctx, in, dt, clock, need, false);
}

static void balanced_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                            struct gov_targets *out)
{
    struct balanced *b = state;
    const struct gov_policy_ctx *ctx = b->ctx;
    uint64_t dt = step_dt(b, now_ns);
    uint32_t dec[GOV_MAX_CLUSTERS];
    if (in->phase == GOV_PHASE_DECODE) {
        double r = b->use_cal ? 1.0 : balanced_decode_r(b, in, dt);
        for (unsigned i = 0; i < ctx->n_clusters; i++)
            dec[i] = b->use_cal ? b->cal_khz[i] : frac_khz(ctx, i, r);
        balanced_threads(b, in, dt, dec);
    } else {
        for (unsigned i = 0; i < ctx->n_clusters; i++)
            dec[i] = b->decode_khz[i];
    }
    phase_decide(b, in, now_ns, dec, ctx->ceil_khz, out);
}

const struct gov_policy_ops gov_policy_balanced = {
    .name = "balanced",
    .summary = "engine-phase aware: prefill at boost, decode at the efficiency knee, idle at "
               "the minimum",
    .init = balanced_init,
    .decide = balanced_decide,
    .free = policy_free,
};

/* ---- efficiency ---- */

struct efficiency {
    struct balanced b;
    uint32_t ladder[GOV_MAX_FREQS]; /* primary cluster frequencies, descending from the ceiling */
    unsigned n_ladder;
    unsigned primary;
    unsigned level, best_level;
    bool settled;
    uint64_t level_ns, settled_ns;
    double acc_w, acc_tps;
    unsigned acc_n;
    double ref_tps, best_j;
    uint32_t prev_cur;
    uint32_t cal_khz; /* the calibration's best point until the first online search ends */
};

static void eff_build_ladder(struct efficiency *e)
{
    const struct gov_policy_ctx *ctx = e->b.ctx;
    unsigned p = 0;
    for (unsigned i = 1; i < ctx->n_clusters; i++)
        if (ctx->ceil_khz[i] > ctx->ceil_khz[p])
            p = i;
    e->primary = p;
    const struct gov_cluster_info *c = &ctx->clusters[p];
    e->n_ladder = 0;
    /* steps closer than the controller's dead band would never be applied */
    double gap = (ctx->tunables->dead_band_pct + 1) / 100.0;
    if (c->n_freqs) {
        for (unsigned k = c->n_freqs; k-- > 0 && e->n_ladder < GOV_MAX_FREQS;) {
            uint32_t f = c->freqs_khz[k];
            if (f > ctx->ceil_khz[p] || f < ctx->floor_khz[p])
                continue;
            if (e->n_ladder && f > e->ladder[e->n_ladder - 1] * (1 - gap))
                continue;
            e->ladder[e->n_ladder++] = f;
        }
    } else {
        const unsigned steps = 16;
        for (unsigned k = 0; k < steps; k++)
            e->ladder[e->n_ladder++] =
                ctx->ceil_khz[p] -
                (uint32_t)((double)(ctx->ceil_khz[p] - ctx->floor_khz[p]) * k / (steps - 1));
    }
    if (!e->n_ladder)
        e->ladder[e->n_ladder++] = ctx->ceil_khz[p];
}

static void eff_restart(struct efficiency *e)
{
    e->level = e->best_level = 0;
    e->settled = false;
    e->level_ns = 0;
    e->acc_w = e->acc_tps = 0;
    e->acc_n = 0;
    e->ref_tps = NAN;
    e->best_j = INFINITY;
}

/* With a calibration curve that has watts, the lowest joules per token within the budget is
 * known before any search: settle on the ladder step at or above it; reprobe_s later searches
 * online anyway, so a stale curve is corrected. */
static void eff_from_calibration(struct efficiency *e)
{
    const struct gov_policy_ctx *ctx = e->b.ctx;
    const struct gov_calibration *cal = ctx->calibration;
    if (!cal || !cal->n_points)
        return;
    int col = -1;
    for (unsigned j = 0; j < cal->n_clusters; j++)
        if (strcmp(cal->cluster_names[j], ctx->clusters[e->primary].name) == 0)
            col = (int)j;
    if (col < 0)
        return;
    double ref = 0;
    for (unsigned p = 0; p < cal->n_points; p++)
        ref = fmax(ref, cal->points[p].decode_tok_s);
    double need = ref * (1.0 - ctx->tunables->decode_slowdown_max_pct / 100.0), best = INFINITY;
    uint32_t best_khz = 0;
    for (unsigned p = 0; p < cal->n_points; p++) {
        const struct gov_calib_point *pt = &cal->points[p];
        if (pt->decode_tok_s >= need && pt->watts > 0 && pt->watts / pt->decode_tok_s < best) {
            best = pt->watts / pt->decode_tok_s;
            best_khz = pt->khz[col];
        }
    }
    if (!best_khz)
        return;
    unsigned lvl = 0;
    for (unsigned k = 0; k < e->n_ladder; k++)
        if (e->ladder[k] >= best_khz)
            lvl = k;
    e->best_level = lvl;
    e->settled = true;
    e->settled_ns = UINT64_MAX; /* the clock starts at the first decode tick */
    e->cal_khz = best_khz;
}

static int eff_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct efficiency *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    balanced_setup(&e->b, ctx);
    eff_build_ladder(e);
    eff_restart(e);
    eff_from_calibration(e);
    *ret_state = e;
    return 0;
}

static bool near_khz(uint32_t a, uint32_t b)
{
    return a && b && fabs((double)a - (double)b) <= 0.01 * (double)b;
}

/* One tick of the ladder walk; returns the primary cluster's decode frequency. */
static uint32_t eff_decode_khz(struct efficiency *e, const struct gov_inputs *in, uint64_t dt)
{
    const struct gov_tunables *t = e->b.ctx->tunables;
    if (e->settled && e->settled_ns == UINT64_MAX)
        e->settled_ns = in->now_ns;
    if (e->settled) {
        if (t->reprobe_s > 0 && in->now_ns - e->settled_ns >= (uint64_t)t->reprobe_s * NS_PER_S)
            eff_restart(e);
        else
            return e->cal_khz ? e->cal_khz : e->ladder[e->best_level];
    }
    e->cal_khz = 0;
    uint32_t want = e->ladder[e->level];
    uint32_t cur = gov_cluster_cur(in, e->primary, 0);
    bool whole = in->phase_ns >= (uint64_t)t->tick_ms * NS_PER_MS * 3 / 2;
    if (whole && near_khz(cur, want) && cur == e->prev_cur && isfinite(in->tokens_per_s) &&
        in->tokens_per_s > 0 && isfinite(in->package_power_w)) {
        e->acc_w += in->package_power_w;
        e->acc_tps += in->tokens_per_s;
        e->acc_n++;
    }
    e->prev_cur = cur;
    e->level_ns += dt;
    uint64_t probe_ns = (uint64_t)t->probe_ms * NS_PER_MS;
    if (e->acc_n < KNEE_MIN_SAMPLES && e->level_ns >= 4 * probe_ns) {
        /* the level never took effect (a constraint holds the clock elsewhere): keep the best
         * found so far rather than wait forever */
        e->settled = true;
        e->settled_ns = in->now_ns;
        return e->ladder[e->best_level];
    }
    if (e->level_ns < probe_ns || e->acc_n < KNEE_MIN_SAMPLES)
        return want;

    double tps = e->acc_tps / e->acc_n, j = e->acc_w / e->acc_n / tps;
    bool stop = false;
    if (e->level == 0)
        e->ref_tps = tps;
    if (tps < e->ref_tps * (1.0 - t->decode_slowdown_max_pct / 100.0)) {
        stop = true; /* too slow: the previous admissible level is as low as we go */
    } else if (j < e->best_j) {
        e->best_j = j, e->best_level = e->level;
    } else if (j > e->best_j * 1.03) {
        stop = true; /* past the minimum of the (convex) energy curve */
    }
    if (!stop && e->level + 1 < e->n_ladder) {
        e->level++;
        e->level_ns = 0;
        e->acc_w = e->acc_tps = 0;
        e->acc_n = 0;
        return e->ladder[e->level];
    }
    e->settled = true;
    e->settled_ns = in->now_ns;
    return e->ladder[e->best_level];
}

/* efficiency's thread search: once the ladder has settled, fewer cores while joules per token
 * fall and tokens/s stays within the budget of the ladder's first (ceiling) measurement, or of
 * the calibration's fastest decode until the first search has run. */
static void eff_threads(struct efficiency *e, const struct gov_inputs *in, uint64_t dt,
                        const uint32_t *dec)
{
    struct balanced *b = &e->b;
    const struct gov_policy_ctx *ctx = b->ctx;
    if (!ctx->tunables->thread_lever)
        return;
    double keep = 1.0 - ctx->tunables->decode_slowdown_max_pct / 100.0;
    double ref = isfinite(e->ref_tps) ? e->ref_tps : b->cal_best_tps;
    uint32_t clock = e->settled ? threads_clock(b, dec) : 0;
    threads_decode(&b->th, ctx, in, dt, clock, keep * ref, true);
}

static void eff_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                       struct gov_targets *out)
{
    struct efficiency *e = state;
    struct balanced *b = &e->b;
    const struct gov_policy_ctx *ctx = b->ctx;
    uint64_t dt = step_dt(b, now_ns);
    double s = ctx->tunables->decode_slowdown_max_pct / 100.0;
    uint32_t dec[GOV_MAX_CLUSTERS], pre[GOV_MAX_CLUSTERS];
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        pre[i] = frac_khz(ctx, i, 1.0 - s); /* compute-bound: throughput follows the clock */
        dec[i] = b->decode_khz[i];
    }
    if (in->phase == GOV_PHASE_DECODE) {
        if (isfinite(in->package_power_w)) {
            uint32_t f = eff_decode_khz(e, in, dt);
            double r = (double)f / ctx->ceil_khz[e->primary];
            for (unsigned i = 0; i < ctx->n_clusters; i++)
                dec[i] = i == e->primary ? f : frac_khz(ctx, i, r);
            eff_threads(e, in, dt, dec);
        } else {
            /* no power reading: the best we can do is balanced's throughput knee */
            double r = balanced_decode_r(b, in, dt);
            for (unsigned i = 0; i < ctx->n_clusters; i++)
                dec[i] = b->use_cal ? b->cal_khz[i] : frac_khz(ctx, i, r);
            balanced_threads(b, in, dt, dec);
        }
    }
    phase_decide(b, in, now_ns, dec, pre, out);
}

const struct gov_policy_ops gov_policy_efficiency = {
    .name = "efficiency",
    .summary = "online search for the lowest joules per token within the slowdown budget",
    .init = eff_init,
    .decide = eff_decide,
    .free = policy_free,
};

/* ---- quiet ---- */

#define QUIET_KP        0.05 /* fraction of the range per °C */
#define QUIET_KI        0.01 /* fraction of the range per °C·s */
#define QUIET_SLEW_UP   0.05 /* the cap rises at most this fraction of the range per second */
#define QUIET_BLIND_CAP 0.5  /* cap while no temperature is known */

struct quiet {
    struct balanced b;
    double ui, cap;
};

static int quiet_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct quiet *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    balanced_setup(&q->b, ctx);
    q->ui = q->cap = QUIET_BLIND_CAP;
    *ret_state = q;
    return 0;
}

static void quiet_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                         struct gov_targets *out)
{
    struct quiet *q = state;
    const struct gov_policy_ctx *ctx = q->b.ctx;
    uint64_t last = q->b.last_ns;
    bool started = q->b.started;
    balanced_decide(&q->b, in, now_ns, out);
    double dt = started && now_ns > last ? (double)(now_ns - last) / NS_PER_S : 0;

    double temp = NAN;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        if (isfinite(in->temp_c[i]) && !(temp >= in->temp_c[i]))
            temp = in->temp_c[i];
    double want;
    if (isfinite(temp)) {
        double e = ctx->tunables->quiet_temp_c - temp;
        double applied = 0;
        for (unsigned i = 0; i < ctx->n_clusters; i++) {
            double span = (double)ctx->ceil_khz[i] - ctx->floor_khz[i];
            double cur = gov_cluster_cur(in, i, ctx->floor_khz[i]);
            if (span > 0)
                applied = fmax(applied, (cur - ctx->floor_khz[i]) / span);
        }
        want = gov_pi_step(&q->ui, e, QUIET_KP, QUIET_KI, dt, applied);
    } else {
        want = fmin(q->cap, QUIET_BLIND_CAP);
    }
    q->cap = want > q->cap ? fmin(want, q->cap + QUIET_SLEW_UP * dt) : want;

    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        double span = (double)ctx->ceil_khz[i] - ctx->floor_khz[i];
        double lim = ctx->floor_khz[i] + q->cap * span;
        if (out->c[i].khz > lim)
            out->c[i].khz = (uint32_t)lim;
        out->c[i].boost = out->c[i].khz > ctx->clusters[i].base_khz;
    }
}

const struct gov_policy_ops gov_policy_quiet = {
    .name = "quiet",
    .summary = "balanced under a slow temperature (fan noise) cap whose rise is rate limited",
    .init = quiet_init,
    .decide = quiet_decide,
    .free = policy_free,
};
