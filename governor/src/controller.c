/* The controller: each tick it runs the selected policy, then the constraints, then the anti-flap
 * rules, and hands back what to apply. Order matters and is fixed here so every policy gets the
 * same guarantees:
 *   1. sensor loss (a temperature that existed and vanished, or the runtime's fault flag) -> the
 *      safe state: every cluster at its floor, boost off;
 *   2. the policy's wish, clamped to [floor, ceiling] (hardware limits clamped by min/max_mhz) and
 *      rounded up to a frequency the cluster has (the kernel's CPUFREQ_RELATION_L);
 *   3. the thermal PI controller per cluster (target kept trip_margin_c below the first passive
 *      trip) and the power-cap PI controller on package power, each a ceiling rounded down;
 *   4. applied = min(policy, constraints), unless the change is inside the dead band, or a policy
 *      decrease that has not been asked for hysteresis_ms, or comes sooner than rate_limit_ms
 *      after the previous change. Engine phase changes skip these holds. While a constraint
 *      binds, its moves come at most once per CONSTRAINT_DWELL rate limits (enough to dither
 *      between two table steps and hold an average), and a decrease is immediate once its limit
 *      is clearly exceeded.
 * Both PI controllers keep their integrator near the applied frequency while they are not
 * binding (tracking anti-windup), so heat or power that arrives after a cool, idle spell is met
 * at once rather than after the integrator unwinds. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define NS_PER_MS           1000000ULL
#define NS_PER_S            1e9
#define CONSTRAINT_TOL_C    1.0  /* above target + this, a thermal decrease is not delayed */
#define CONSTRAINT_TOL_FRAC 0.05 /* above cap * (1 + this), a power decrease is not delayed */
#define CONSTRAINT_DWELL    5 /* constraint-driven moves: at most one per this many rate limits */
#define TEMP_MIN_C          (-40.0) /* outside this a reading is garbage, treated like a lost sensor */
#define TEMP_MAX_C          150.0

struct gov_controller {
    const struct gov_policy_ops *ops;
    void *pstate;
    struct gov_tunables t;
    unsigned n;
    struct gov_cluster_info *clusters;
    struct gov_calibration *cal; /* NULL when none */
    uint32_t floor_khz[GOV_MAX_CLUSTERS], ceil_khz[GOV_MAX_CLUSTERS];
    struct gov_policy_ctx ctx;

    bool started;
    uint64_t last_ns;
    enum gov_phase last_phase;
    uint32_t applied[GOV_MAX_CLUSTERS];
    bool boost[GOV_MAX_CLUSTERS];
    uint64_t last_change_ns[GOV_MAX_CLUSTERS];
    uint64_t lower_since_ns[GOV_MAX_CLUSTERS]; /* 0: no pending decrease */
    bool temp_seen[GOV_MAX_CLUSTERS];
    double th_ui[GOV_MAX_CLUSTERS]; /* thermal integrators, fraction of range */
    bool power_seen;
    double pw_ui[3]; /* power integrators per engine phase: log of the ceiling scale */
    bool safe;
};

int gov_cluster_info_validate(const struct gov_cluster_info *c, char *err, size_t err_len)
{
    const char *name = c->name[0] ? c->name : "cluster";
    if (!c->n_cpus || c->n_cpus > GOV_MAX_CPUS) {
        snprintf(err, err_len, "%s: %u CPUs (1..%d)", name, c->n_cpus, GOV_MAX_CPUS);
        return -EINVAL;
    }
    for (unsigned i = 0; i < c->n_cpus; i++) {
        if (c->cpus[i] >= GOV_MAX_CPUS) {
            snprintf(err, err_len, "%s: CPU %u is beyond %d", name, c->cpus[i], GOV_MAX_CPUS - 1);
            return -EINVAL;
        }
    }
    if (!c->cpuinfo_min_khz || c->cpuinfo_min_khz > c->cpuinfo_max_khz) {
        snprintf(err, err_len, "%s: cpuinfo_min %u kHz / max %u kHz", name, c->cpuinfo_min_khz,
                 c->cpuinfo_max_khz);
        return -EINVAL;
    }
    if (c->base_khz && (c->base_khz < c->cpuinfo_min_khz || c->base_khz > c->cpuinfo_max_khz)) {
        snprintf(err, err_len, "%s: base %u kHz outside cpuinfo %u..%u", name, c->base_khz,
                 c->cpuinfo_min_khz, c->cpuinfo_max_khz);
        return -EINVAL;
    }
    if (c->n_freqs > GOV_MAX_FREQS) {
        snprintf(err, err_len, "%s: %u frequencies (at most %d)", name, c->n_freqs, GOV_MAX_FREQS);
        return -EINVAL;
    }
    for (unsigned i = 0; i < c->n_freqs; i++) {
        if (c->freqs_khz[i] < c->cpuinfo_min_khz || c->freqs_khz[i] > c->cpuinfo_max_khz ||
            (i && c->freqs_khz[i] <= c->freqs_khz[i - 1])) {
            snprintf(err, err_len, "%s: frequency %u kHz is out of order or outside %u..%u", name,
                     c->freqs_khz[i], c->cpuinfo_min_khz, c->cpuinfo_max_khz);
            return -EINVAL;
        }
    }
    return 0;
}

uint32_t gov_cluster_quantize(const struct gov_cluster_info *c, uint32_t khz, bool round_up,
                              uint32_t lo, uint32_t hi)
{
    if (khz < lo)
        khz = lo;
    if (khz > hi)
        khz = hi;
    if (!c->n_freqs)
        return khz;
    uint32_t below = 0, above = 0;
    for (unsigned i = 0; i < c->n_freqs; i++) {
        uint32_t f = c->freqs_khz[i];
        if (f < lo || f > hi)
            continue;
        if (f <= khz)
            below = f;
        if (f >= khz && !above)
            above = f;
    }
    uint32_t r = round_up ? (above ? above : below) : (below ? below : above);
    return r ? r : khz; /* no table entry inside [lo, hi]: the limits themselves */
}

/* Floor and ceiling of every cluster: hardware limits clamped by min_mhz / max_mhz, snapped
 * inwards to table entries. */
static void compute_limits(struct gov_controller *ctl)
{
    for (unsigned i = 0; i < ctl->n; i++) {
        const struct gov_cluster_info *c = &ctl->clusters[i];
        uint32_t lo = c->cpuinfo_min_khz, hi = c->cpuinfo_max_khz;
        if (ctl->t.min_mhz > 0 && (uint32_t)ctl->t.min_mhz * 1000u > lo)
            lo = (uint32_t)ctl->t.min_mhz * 1000u;
        if (ctl->t.max_mhz > 0 && (uint32_t)ctl->t.max_mhz * 1000u < hi)
            hi = (uint32_t)ctl->t.max_mhz * 1000u;
        if (lo > c->cpuinfo_max_khz)
            lo = c->cpuinfo_max_khz;
        if (hi < lo)
            hi = lo;
        uint32_t qlo = gov_cluster_quantize(c, lo, true, lo, hi);
        uint32_t qhi = gov_cluster_quantize(c, hi, false, lo, hi);
        if (qhi < qlo)
            qhi = qlo;
        ctl->floor_khz[i] = qlo;
        ctl->ceil_khz[i] = qhi;
    }
}

static void fill_ctx(struct gov_controller *ctl)
{
    ctl->ctx.n_clusters = ctl->n;
    ctl->ctx.clusters = ctl->clusters;
    ctl->ctx.tunables = &ctl->t;
    ctl->ctx.calibration = ctl->cal;
    ctl->ctx.floor_khz = ctl->floor_khz;
    ctl->ctx.ceil_khz = ctl->ceil_khz;
}

static int start_policy(struct gov_controller *ctl, const struct gov_policy_ops *ops)
{
    void *st = NULL;
    int rc = ops->init(&ctl->ctx, &st);
    if (rc)
        return rc;
    if (ctl->ops)
        ctl->ops->free(ctl->pstate);
    ctl->ops = ops;
    ctl->pstate = st;
    snprintf(ctl->t.policy, sizeof(ctl->t.policy), "%s", ops->name);
    return 0;
}

int gov_controller_new(const char *policy, const struct gov_tunables *t,
                       const struct gov_cluster_info *clusters, unsigned n_clusters,
                       const struct gov_calibration *calibration, struct gov_controller **ret,
                       char *err, size_t err_len)
{
    int rc = -EINVAL;
    struct gov_controller *ctl = NULL;
    const struct gov_policy_ops *ops = gov_policy_find(policy ? policy : t->policy);
    if (!ops) {
        snprintf(err, err_len, "policy: unknown policy '%s'", policy ? policy : t->policy);
        goto fail;
    }
    if (!n_clusters || n_clusters > GOV_MAX_CLUSTERS) {
        snprintf(err, err_len, "%u clusters (1..%d)", n_clusters, GOV_MAX_CLUSTERS);
        goto fail;
    }
    for (unsigned i = 0; i < n_clusters; i++)
        if ((rc = gov_cluster_info_validate(&clusters[i], err, err_len)))
            goto fail;
    ctl = calloc(1, sizeof(*ctl));
    if (!ctl)
        goto nomem;
    ctl->t = *t;
    snprintf(ctl->t.policy, sizeof(ctl->t.policy), "%s", ops->name);
    if ((rc = gov_tunables_validate(&ctl->t, NULL, err, err_len)))
        goto fail;
    ctl->n = n_clusters;
    ctl->clusters = calloc(n_clusters, sizeof(*clusters));
    if (!ctl->clusters)
        goto nomem;
    memcpy(ctl->clusters, clusters, n_clusters * sizeof(*clusters));
    if (calibration) {
        ctl->cal = malloc(sizeof(*ctl->cal));
        if (!ctl->cal)
            goto nomem;
        *ctl->cal = *calibration;
    }
    compute_limits(ctl);
    fill_ctx(ctl);
    for (unsigned i = 0; i < n_clusters; i++) {
        ctl->applied[i] = ctl->ceil_khz[i]; /* unknown until the first step: assume the worst */
        ctl->th_ui[i] = 1;
    }
    if ((rc = start_policy(ctl, ops))) {
        snprintf(err, err_len, "policy %s: %s", ops->name, strerror(-rc));
        goto fail;
    }
    *ret = ctl;
    return 0;
nomem:
    rc = -ENOMEM;
    snprintf(err, err_len, "out of memory");
fail:
    gov_controller_free(ctl);
    return rc;
}

void gov_controller_free(struct gov_controller *ctl)
{
    if (!ctl)
        return;
    if (ctl->ops)
        ctl->ops->free(ctl->pstate);
    free(ctl->clusters);
    free(ctl->cal);
    free(ctl);
}

double gov_controller_thermal_target_c(const struct gov_controller *ctl, double passive_trip_c)
{
    if (!(ctl->t.thermal_target_c > 0))
        return NAN;
    double t = ctl->t.thermal_target_c;
    if (isfinite(passive_trip_c) && passive_trip_c - ctl->t.trip_margin_c < t)
        t = passive_trip_c - ctl->t.trip_margin_c;
    return t;
}

static double frac_of(const struct gov_controller *ctl, unsigned i, uint32_t khz)
{
    double span = (double)ctl->ceil_khz[i] - ctl->floor_khz[i];
    return span > 0 ? ((double)khz - ctl->floor_khz[i]) / span : 1.0;
}

static uint32_t khz_of(const struct gov_controller *ctl, unsigned i, double frac)
{
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    double span = (double)ctl->ceil_khz[i] - ctl->floor_khz[i];
    return (uint32_t)(ctl->floor_khz[i] + frac * span + 0.5);
}

/* A constraint ceiling on a continuous range (no frequency table) moves on a grid as coarse as the
 * dead band; otherwise a PI output that creeps every tick would be a frequency change every tick.
 */
static uint32_t constraint_khz(const struct gov_controller *ctl, unsigned i, double frac)
{
    const struct gov_cluster_info *c = &ctl->clusters[i];
    uint32_t lo = ctl->floor_khz[i], hi = ctl->ceil_khz[i];
    uint32_t k = khz_of(ctl, i, frac);
    if (!c->n_freqs) {
        double step = fmax(ctl->t.dead_band_pct, 1.0) / 100.0 * hi;
        /* anchored at the top, so an unconstrained ceiling is exactly the hardware's */
        double snapped = hi - ceil(((double)hi - k) / step - 1e-9) * step;
        k = snapped < lo ? lo : (uint32_t)snapped;
    }
    return gov_cluster_quantize(c, k, false, lo, hi);
}

double gov_pi_step(double *ui, double e, double kp, double ki, double dt_s, double applied_frac)
{
    *ui += ki * e * dt_s;
    *ui = fmin(fmax(*ui, 0), fmin(1, applied_frac + GOV_PI_TRACK_HEADROOM));
    return fmin(fmax(*ui + kp * e, 0), 1);
}

static void set_safe(struct gov_controller *ctl, uint64_t now, struct gov_targets *out)
{
    for (unsigned i = 0; i < ctl->n; i++) {
        struct gov_cluster_target *c = &out->c[i];
        c->khz = c->policy_khz = c->floor_khz = ctl->floor_khz[i];
        c->boost = false;
        c->reasons = GOV_REASON_SENSOR_LOSS;
        c->changed = ctl->applied[i] != c->khz || ctl->boost[i];
        if (c->changed)
            ctl->last_change_ns[i] = now;
        ctl->applied[i] = c->khz;
        ctl->boost[i] = false;
        ctl->lower_since_ns[i] = 0;
        ctl->th_ui[i] = 0; /* come back slowly from the safe state */
        out->changed |= c->changed;
    }
    for (unsigned p = 0; p < 3; p++)
        ctl->pw_ui[p] = log((double)ctl->floor_khz[0] / ctl->ceil_khz[0]);
}

/* What one tick knows, shared by its steps. */
struct step {
    const struct gov_inputs *in; /* sanitized */
    uint64_t now;
    double dt_s;
    bool phase_change;
    double target_c; /* thermal target in force (NaN: off) */
    bool pw_active;  /* the power cap limits this tick */
    double pw_scale; /* its output: a fraction of every cluster's ceiling */
};

/* A private copy of the inputs: garbage becomes NaN, a missing clock is the one last applied. */
static void sanitize_inputs(const struct gov_controller *ctl, const struct gov_inputs *raw,
                            struct gov_inputs *in)
{
    *in = *raw;
    for (unsigned i = 0; i < ctl->n; i++) {
        if (!in->cur_khz[i])
            in->cur_khz[i] = ctl->applied[i];
        if (!(in->temp_c[i] >= TEMP_MIN_C && in->temp_c[i] <= TEMP_MAX_C))
            in->temp_c[i] = NAN;
    }
    if (!(in->package_power_w >= 0) || !isfinite(in->package_power_w))
        in->package_power_w = NAN;
    if (!(in->tokens_per_s >= 0) || !isfinite(in->tokens_per_s))
        in->tokens_per_s = NAN;
}

/* A sensor failed, or a temperature that was seen before is gone. */
static bool sensor_lost(struct gov_controller *ctl, const struct gov_inputs *in)
{
    bool lost = in->sensor_fault;
    for (unsigned i = 0; i < ctl->n; i++) {
        if (isfinite(in->temp_c[i]))
            ctl->temp_seen[i] = true;
        else if (ctl->temp_seen[i])
            lost = true;
    }
    return lost;
}

/* 2. the power cap: one PI for the package in the log domain (power goes roughly as f^2..3, so a
 * relative error moves the clock by a relative step at any operating point); its output scales
 * every cluster's ceiling. Prefill draws far more than decode at the same clock, so the
 * integrator is kept per engine phase (gain scheduling): a new prefill starts from the clock that
 * held the cap during the last one instead of overshooting while the PI catches up. The reading
 * that arrives with a phase change belongs to the previous phase and is not used. */
static void power_cap_step(struct gov_controller *ctl, struct step *s)
{
    s->pw_scale = 1;
    s->pw_active = false;
    if (!(ctl->t.power_cap_w > 0))
        return;
    const struct gov_inputs *in = s->in;
    unsigned ph = in->phase <= GOV_PHASE_DECODE ? (unsigned)in->phase : 0;
    double lowest = 1;
    for (unsigned i = 0; i < ctl->n; i++)
        lowest = fmin(lowest, (double)ctl->floor_khz[i] / ctl->ceil_khz[i]);
    if (isfinite(in->package_power_w) && in->package_power_w > 0) {
        ctl->power_seen = true;
        if (!s->phase_change) {
            double applied = 0;
            for (unsigned i = 0; i < ctl->n; i++)
                applied = fmax(applied, (double)ctl->applied[i] / ctl->ceil_khz[i]);
            double e = log(ctl->t.power_cap_w / in->package_power_w);
            double *ui = &ctl->pw_ui[ph];
            *ui += ctl->t.power_ki * e * s->dt_s;
            double top = log(fmin(1.0, fmax(applied, 1e-9) * (1 + GOV_PI_TRACK_HEADROOM)));
            *ui = fmax(log(lowest), fmin(*ui, top));
            s->pw_scale = exp(fmin(0, *ui + ctl->t.power_kp * e));
        } else {
            s->pw_scale = exp(fmin(0, ctl->pw_ui[ph]));
        }
        s->pw_active = true;
    } else if (ctl->power_seen) {
        s->pw_scale = exp(fmin(0, ctl->pw_ui[ph])); /* reading gone: hold, do not raise */
        s->pw_active = true;
    }
}

/* 3. the constraints on cluster i, as a ceiling rounded down; *ret_reason says which binds. */
static uint32_t constraint_ceiling(struct gov_controller *ctl, unsigned i, const struct step *s,
                                   unsigned *ret_reason)
{
    uint32_t lo = ctl->floor_khz[i], hi = ctl->ceil_khz[i];
    uint32_t ceiling = hi;
    *ret_reason = 0;
    if (isfinite(s->target_c) && isfinite(s->in->temp_c[i])) {
        double e = s->target_c - s->in->temp_c[i];
        double f = gov_pi_step(&ctl->th_ui[i], e, ctl->t.thermal_kp, ctl->t.thermal_ki, s->dt_s,
                               frac_of(ctl, i, ctl->applied[i]));
        uint32_t k = constraint_khz(ctl, i, f);
        if (k < ceiling) {
            ceiling = k;
            *ret_reason = GOV_REASON_THERMAL;
            if (isfinite(s->in->passive_trip_c) && s->target_c < ctl->t.thermal_target_c)
                *ret_reason |= GOV_REASON_TRIP;
        }
    }
    if (s->pw_active) {
        double khz = s->pw_scale * hi;
        uint32_t k = constraint_khz(ctl, i, ((khz < lo ? lo : khz) - lo) / fmax(1, hi - lo));
        if (k < ceiling) {
            ceiling = k;
            *ret_reason = GOV_REASON_POWER_CAP;
        }
    }
    return ceiling;
}

/* 4. anti-flap: whether cluster i keeps its clock this tick instead of moving to desired. */
static bool anti_flap_hold(struct gov_controller *ctl, unsigned i, const struct step *s,
                           uint32_t desired, uint32_t ceiling, uint32_t policy_khz)
{
    uint32_t cur = ctl->applied[i];
    uint64_t now = s->now;
    uint64_t dwell_ns = (uint64_t)ctl->t.rate_limit_ms * NS_PER_MS * CONSTRAINT_DWELL;
    bool hold = false;
    if (desired == cur) {
        ctl->lower_since_ns[i] = 0;
    } else if (ceiling < cur && !s->phase_change) {
        /* a constraint pushes down: at once when its limit is clearly exceeded, else no faster
         * than the rate limit (a PI dithering between two steps would otherwise change the
         * clock every tick) */
        bool over = (isfinite(s->target_c) && s->in->temp_c[i] > s->target_c + CONSTRAINT_TOL_C) ||
                    (s->pw_active && isfinite(s->in->package_power_w) &&
                     s->in->package_power_w > ctl->t.power_cap_w * (1 + CONSTRAINT_TOL_FRAC));
        if (!over && now - ctl->last_change_ns[i] < dwell_ns)
            hold = true;
    } else if (!s->phase_change && ceiling < policy_khz && desired > cur) {
        /* a constraint that still binds lets the clock back up slowly: holding a limit between
         * two steps needs dithering, but once a second is enough for it */
        if (now - ctl->last_change_ns[i] < dwell_ns)
            hold = true;
    } else if (!s->phase_change) {
        double band = ctl->t.dead_band_pct / 100.0 * cur;
        if (fabs((double)desired - (double)cur) < band)
            hold = true;
        if (desired < cur) {
            if (!ctl->lower_since_ns[i])
                ctl->lower_since_ns[i] = now ? now : 1;
            if (now - ctl->lower_since_ns[i] < (uint64_t)ctl->t.hysteresis_ms * NS_PER_MS)
                hold = true;
        } else {
            ctl->lower_since_ns[i] = 0;
        }
        if (now - ctl->last_change_ns[i] < (uint64_t)ctl->t.rate_limit_ms * NS_PER_MS)
            hold = true;
    }
    return hold;
}

/* Steps 3 and 4 for cluster i from the policy's wish, and the target that results. */
static void step_cluster(struct gov_controller *ctl, unsigned i, const struct step *s,
                         uint32_t want, struct gov_targets *out)
{
    const struct gov_cluster_info *c = &ctl->clusters[i];
    struct gov_cluster_target *o = &out->c[i];
    uint32_t lo = ctl->floor_khz[i], hi = ctl->ceil_khz[i];
    unsigned reasons = GOV_REASON_POLICY;
    if ((want > hi && ctl->t.max_mhz > 0) || (want < lo && ctl->t.min_mhz > 0))
        reasons |= GOV_REASON_USER_LIMIT;
    uint32_t p_khz = gov_cluster_quantize(c, want, true, lo, hi);
    o->policy_khz = p_khz;

    unsigned c_reason;
    uint32_t ceiling = constraint_ceiling(ctl, i, s, &c_reason);
    uint32_t desired = p_khz;
    if (ceiling < desired) {
        desired = ceiling;
        reasons = (reasons & ~GOV_REASON_POLICY) | c_reason;
    }

    uint32_t cur = ctl->applied[i];
    if (anti_flap_hold(ctl, i, s, desired, ceiling, p_khz)) {
        desired = cur;
        reasons |= GOV_REASON_HELD;
    }
    bool boost = c->boost_available && desired > (c->base_khz ? c->base_khz : hi);
    o->khz = desired;
    o->floor_khz = lo;
    o->boost = boost;
    o->reasons = reasons;
    o->changed = desired != cur || boost != ctl->boost[i];
    if (desired != cur) {
        ctl->last_change_ns[i] = s->now;
        ctl->lower_since_ns[i] = 0;
    }
    ctl->applied[i] = desired;
    ctl->boost[i] = boost;
    out->changed |= o->changed;
    out->boost |= boost;
}

int gov_controller_step(struct gov_controller *ctl, const struct gov_inputs *in_raw,
                        struct gov_targets *out)
{
    if (ctl->started && in_raw->now_ns < ctl->last_ns)
        return -EINVAL;
    uint64_t now = in_raw->now_ns;
    struct gov_inputs in;
    sanitize_inputs(ctl, in_raw, &in);
    struct step s = {
        .in = &in,
        .now = now,
        .dt_s = ctl->started ? (double)(now - ctl->last_ns) / NS_PER_S : ctl->t.tick_ms / 1e3,
        .phase_change = !ctl->started || in.phase != ctl->last_phase,
    };
    memset(out, 0, sizeof(*out));
    out->n_clusters = ctl->n;
    out->mem_frac = NAN; /* the safe state leaves the levers where they are */
    out->epp = GOV_EPP_LEAVE;

    bool lost = sensor_lost(ctl, &in);
    ctl->started = true;
    ctl->last_ns = now;
    ctl->last_phase = in.phase;
    if (lost) {
        ctl->safe = true;
        set_safe(ctl, now, out);
        for (unsigned i = 0; i < ctl->n; i++)
            out->boost |= out->c[i].boost;
        return 0;
    }
    ctl->safe = false;

    /* 1. the policy */
    struct gov_targets pol = {.n_clusters = ctl->n, .mem_frac = NAN, .epp = GOV_EPP_LEAVE};
    for (unsigned i = 0; i < ctl->n; i++)
        pol.c[i].khz = ctl->applied[i];
    ctl->ops->decide(ctl->pstate, &in, now, &pol);
    /* the levers beyond the clock pass through: no constraint acts on them */
    out->mem_frac = isfinite(pol.mem_frac) ? fmin(fmax(pol.mem_frac, 0), 1) : NAN;
    out->epp = pol.epp;
    out->engine_threads = pol.engine_threads;
    out->engine_cpus = pol.engine_threads ? pol.engine_cpus : 0;

    /* 2. the power cap, then per cluster 3. the constraints and 4. anti-flap */
    power_cap_step(ctl, &s);
    s.target_c = gov_controller_thermal_target_c(ctl, in.passive_trip_c);
    for (unsigned i = 0; i < ctl->n; i++)
        step_cluster(ctl, i, &s, pol.c[i].khz, out);
    return 0;
}

int gov_controller_set_policy(struct gov_controller *ctl, const char *policy, char *err,
                              size_t err_len)
{
    const struct gov_policy_ops *ops = gov_policy_find(policy);
    if (!ops) {
        snprintf(err, err_len, "policy: unknown policy '%s'", policy ? policy : "(null)");
        return -EINVAL;
    }
    struct gov_tunables t = ctl->t;
    snprintf(t.policy, sizeof(t.policy), "%s", ops->name);
    const char *key;
    int rc = gov_tunables_validate(&t, &key, err, err_len);
    if (rc)
        return rc;
    rc = start_policy(ctl, ops);
    if (rc)
        snprintf(err, err_len, "policy %s: %s", ops->name, strerror(-rc));
    return rc;
}

int gov_controller_set_tunables(struct gov_controller *ctl, const struct gov_tunables *t, char *err,
                                size_t err_len)
{
    const struct gov_policy_ops *ops = gov_policy_find(t->policy);
    int rc = gov_tunables_validate(t, NULL, err, err_len);
    if (rc)
        return rc;
    struct gov_tunables old = ctl->t;
    ctl->t = *t;
    compute_limits(ctl);
    /* the policy state depends on tunables and limits: start it afresh */
    rc = start_policy(ctl, ops);
    if (rc) {
        ctl->t = old;
        compute_limits(ctl);
        snprintf(err, err_len, "policy %s: %s", ops->name, strerror(-rc));
    }
    return rc;
}

int gov_controller_set_calibration(struct gov_controller *ctl, const struct gov_calibration *cal)
{
    struct gov_calibration *copy = NULL;
    if (cal) {
        copy = malloc(sizeof(*copy));
        if (!copy)
            return -ENOMEM;
        *copy = *cal;
    }
    struct gov_calibration *old = ctl->cal;
    ctl->cal = copy;
    fill_ctx(ctl);
    int rc = start_policy(ctl, ctl->ops);
    if (rc) {
        ctl->cal = old;
        fill_ctx(ctl);
        free(copy);
        return rc;
    }
    free(old);
    return 0;
}

const char *gov_controller_policy(const struct gov_controller *ctl)
{
    return ctl->ops->name;
}

const struct gov_tunables *gov_controller_tunables(const struct gov_controller *ctl)
{
    return &ctl->t;
}

unsigned gov_controller_n_clusters(const struct gov_controller *ctl)
{
    return ctl->n;
}

const struct gov_cluster_info *gov_controller_cluster(const struct gov_controller *ctl, unsigned i)
{
    return i < ctl->n ? &ctl->clusters[i] : NULL;
}
