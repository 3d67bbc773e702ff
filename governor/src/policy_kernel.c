/* The policies that mirror the Linux cpufreq governors (performance, powersave, ondemand,
 * conservative, schedutil) as pure decide() functions with the kernel's semantics and tunable
 * names, the policy registry, and the small helpers every policy uses. The kernel code they follow:
 * drivers/cpufreq/cpufreq_{performance,powersave,ondemand,conservative}.c and
 * kernel/sched/cpufreq_schedutil.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

const char *gov_phase_name(enum gov_phase phase)
{
    switch (phase) {
    case GOV_PHASE_IDLE:
        return "idle";
    case GOV_PHASE_PREFILL:
        return "prefill";
    case GOV_PHASE_DECODE:
        return "decode";
    }
    return NULL;
}

const char *gov_epp_name(enum gov_epp epp)
{
    switch (epp) {
    case GOV_EPP_PERFORMANCE:
        return "performance";
    case GOV_EPP_BALANCE_PERFORMANCE:
        return "balance_performance";
    case GOV_EPP_BALANCE_POWER:
        return "balance_power";
    case GOV_EPP_POWER:
        return "power";
    case GOV_EPP_LEAVE:
        break;
    }
    return NULL;
}

void gov_inputs_init(struct gov_inputs *in, uint64_t now_ns)
{
    memset(in, 0, sizeof(*in));
    in->now_ns = now_ns;
    for (unsigned i = 0; i < GOV_MAX_CPUS; i++)
        in->util[i] = NAN;
    for (unsigned i = 0; i < GOV_MAX_CLUSTERS; i++)
        in->temp_c[i] = NAN;
    in->passive_trip_c = NAN;
    in->package_power_w = NAN;
    in->tokens_per_s = NAN;
    in->phase = GOV_PHASE_IDLE;
}

double gov_cluster_load(const struct gov_cluster_info *c, const struct gov_inputs *in)
{
    double best = NAN;
    for (unsigned i = 0; i < c->n_cpus; i++) {
        unsigned cpu = c->cpus[i];
        if (cpu >= GOV_MAX_CPUS || !isfinite(in->util[cpu]))
            continue;
        double u = in->util[cpu] < 0 ? 0 : in->util[cpu] > 1 ? 1 : in->util[cpu];
        if (!(best >= u))
            best = u;
    }
    return best;
}

uint32_t gov_cluster_cur(const struct gov_inputs *in, unsigned i, uint32_t fallback)
{
    return in->cur_khz[i] ? in->cur_khz[i] : fallback;
}

static uint32_t clamp_khz(double khz, uint32_t lo, uint32_t hi)
{
    if (!(khz > lo))
        return lo;
    if (khz > hi)
        return hi;
    return (uint32_t)khz;
}

uint32_t gov_schedutil_freq(const struct gov_policy_ctx *ctx, unsigned i,
                            const struct gov_inputs *in)
{
    const struct gov_cluster_info *c = &ctx->clusters[i];
    double busy = gov_cluster_load(c, in);
    if (!isfinite(busy))
        return ctx->floor_khz[i];
    double fmax = c->cpuinfo_max_khz;
    double cur = gov_cluster_cur(in, i, ctx->ceil_khz[i]);
    double util_inv = busy * cur / fmax; /* /proc/stat busy time is not frequency invariant */
    return clamp_khz(1.25 * fmax * util_inv, ctx->floor_khz[i], ctx->ceil_khz[i]);
}

/* ---- performance / powersave ---- */

struct simple_state {
    const struct gov_policy_ctx *ctx;
};

static int simple_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct simple_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ctx = ctx;
    *ret_state = s;
    return 0;
}

static void simple_free(void *state)
{
    free(state);
}

static void performance_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                               struct gov_targets *out)
{
    (void)in, (void)now_ns;
    const struct gov_policy_ctx *ctx = ((struct simple_state *)state)->ctx;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        out->c[i].khz = ctx->ceil_khz[i];
        out->c[i].boost = true;
    }
}

static void powersave_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                             struct gov_targets *out)
{
    (void)in, (void)now_ns;
    const struct gov_policy_ctx *ctx = ((struct simple_state *)state)->ctx;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        out->c[i].khz = ctx->floor_khz[i];
        out->c[i].boost = false;
    }
}

const struct gov_policy_ops gov_policy_performance = {
    .name = "performance",
    .summary = "always the highest allowed frequency (boost on)",
    .init = simple_init,
    .decide = performance_decide,
    .free = simple_free,
};

const struct gov_policy_ops gov_policy_powersave = {
    .name = "powersave",
    .summary = "always the lowest allowed frequency",
    .init = simple_init,
    .decide = powersave_decide,
    .free = simple_free,
};

/* ---- ondemand (cpufreq_ondemand.c: od_update) ----
 * load > up_threshold: jump to max and stay sampling_down_factor samples before re-evaluating;
 * otherwise f = min + load * (max - min) / 100, lowered by powersave_bias per-mille (the kernel
 * alternates between two table entries to average that; the controller rounds to the table). */

struct od_state {
    const struct gov_policy_ctx *ctx;
    unsigned skip[GOV_MAX_CLUSTERS];
    uint32_t last[GOV_MAX_CLUSTERS];
};

static int od_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct od_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ctx = ctx;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        s->last[i] = ctx->floor_khz[i];
    *ret_state = s;
    return 0;
}

static void od_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                      struct gov_targets *out)
{
    (void)now_ns;
    struct od_state *s = state;
    const struct gov_policy_ctx *ctx = s->ctx;
    const struct gov_tunables *t = ctx->tunables;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        double load = gov_cluster_load(&ctx->clusters[i], in);
        uint32_t lo = ctx->floor_khz[i], hi = ctx->ceil_khz[i];
        if (!isfinite(load)) {
            out->c[i].khz = s->last[i];
        } else if (s->skip[i] > 0) {
            s->skip[i]--; /* sampling_down_factor: the sample interval at max is longer */
            out->c[i].khz = s->last[i];
        } else if (load * 100.0 > t->up_threshold) {
            uint32_t cur = gov_cluster_cur(in, i, s->last[i]);
            if (cur < hi)
                s->skip[i] = (unsigned)t->sampling_down_factor - 1;
            double f = hi;
            if (t->powersave_bias)
                f = f * (1000 - t->powersave_bias) / 1000.0;
            out->c[i].khz = clamp_khz(f, lo, hi);
        } else {
            /* the kernel scales between cpuinfo.min_freq and cpuinfo.max_freq */
            const struct gov_cluster_info *c = &ctx->clusters[i];
            double f = c->cpuinfo_min_khz +
                       load * ((double)c->cpuinfo_max_khz - (double)c->cpuinfo_min_khz);
            if (t->powersave_bias)
                f = f * (1000 - t->powersave_bias) / 1000.0;
            out->c[i].khz = clamp_khz(f, lo, hi);
        }
        out->c[i].boost = true;
        s->last[i] = out->c[i].khz;
    }
}

const struct gov_policy_ops gov_policy_ondemand = {
    .name = "ondemand",
    .summary = "kernel ondemand: max above up_threshold, else proportional to load",
    .init = od_init,
    .decide = od_decide,
    .free = simple_free,
};

/* ---- conservative (cpufreq_conservative.c: cs_dbs_update) ----
 * load > up_threshold: step up by freq_step % of max; load < down_threshold: step down, at most
 * once every sampling_down_factor samples. The requested frequency is remembered and resynced to
 * the current one when limits moved it outside the range. */

struct cs_state {
    const struct gov_policy_ctx *ctx;
    uint32_t requested[GOV_MAX_CLUSTERS];
    unsigned down_skip[GOV_MAX_CLUSTERS];
};

static int cs_validate(const struct gov_tunables *t, const char **ret_key, char *err,
                       size_t err_len)
{
    if (t->sampling_down_factor > 10) {
        snprintf(err, err_len, "sampling_down_factor: %d is outside 1..10 for conservative",
                 t->sampling_down_factor);
        *ret_key = "sampling_down_factor";
        return -ERANGE;
    }
    return 0;
}

static int cs_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct cs_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ctx = ctx;
    for (unsigned i = 0; i < ctx->n_clusters; i++)
        s->requested[i] = ctx->floor_khz[i];
    *ret_state = s;
    return 0;
}

static void cs_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                      struct gov_targets *out)
{
    (void)now_ns;
    struct cs_state *s = state;
    const struct gov_policy_ctx *ctx = s->ctx;
    const struct gov_tunables *t = ctx->tunables;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        uint32_t lo = ctx->floor_khz[i], hi = ctx->ceil_khz[i];
        uint32_t req = s->requested[i];
        if (req > hi || req < lo)
            req = clamp_khz(gov_cluster_cur(in, i, req), lo, hi);
        double step = (double)hi * t->freq_step_pct / 100.0;
        double load = gov_cluster_load(&ctx->clusters[i], in);
        if (isfinite(load)) {
            double pct = load * 100.0;
            if (pct > t->up_threshold) {
                s->down_skip[i] = 0;
                req = clamp_khz(req + step, lo, hi);
            } else if (++s->down_skip[i] >= (unsigned)t->sampling_down_factor) {
                s->down_skip[i] = 0;
                if (pct < t->down_threshold)
                    req = req > step ? clamp_khz(req - step, lo, hi) : lo;
            }
        }
        s->requested[i] = req;
        out->c[i].khz = req;
        out->c[i].boost = true;
    }
}

const struct gov_policy_ops gov_policy_conservative = {
    .name = "conservative",
    .summary = "kernel conservative: steps of freq_step % between the thresholds",
    .validate = cs_validate,
    .init = cs_init,
    .decide = cs_decide,
    .free = simple_free,
};

/* ---- schedutil (cpufreq_schedutil.c: get_next_freq) ----
 * f = 1.25 * f_max * util with frequency-invariant util; changes no more often than
 * rate_limit_us. */

struct su_state {
    const struct gov_policy_ctx *ctx;
    uint64_t last_change_ns[GOV_MAX_CLUSTERS];
    uint32_t last[GOV_MAX_CLUSTERS];
    bool started;
};

static int su_init(const struct gov_policy_ctx *ctx, void **ret_state)
{
    struct su_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ctx = ctx;
    *ret_state = s;
    return 0;
}

static void su_decide(void *state, const struct gov_inputs *in, uint64_t now_ns,
                      struct gov_targets *out)
{
    struct su_state *s = state;
    const struct gov_policy_ctx *ctx = s->ctx;
    uint64_t rate_ns = (uint64_t)ctx->tunables->rate_limit_us * 1000u;
    for (unsigned i = 0; i < ctx->n_clusters; i++) {
        uint32_t f = gov_schedutil_freq(ctx, i, in);
        if (s->started && f != s->last[i] && now_ns - s->last_change_ns[i] < rate_ns)
            f = s->last[i];
        if (!s->started || f != s->last[i])
            s->last_change_ns[i] = now_ns;
        s->last[i] = f;
        out->c[i].khz = f;
        out->c[i].boost = true;
    }
    s->started = true;
}

const struct gov_policy_ops gov_policy_schedutil = {
    .name = "schedutil",
    .summary = "kernel schedutil: f = 1.25 * f_max * util",
    .init = su_init,
    .decide = su_decide,
    .free = simple_free,
};

/* ---- registry ---- */

static const struct gov_policy_ops *const registry[] = {
    &gov_policy_performance,  &gov_policy_powersave, &gov_policy_ondemand,
    &gov_policy_conservative, &gov_policy_schedutil, &gov_policy_balanced,
    &gov_policy_efficiency,   &gov_policy_quiet,     NULL,
};

const struct gov_policy_ops *gov_policy_find(const char *name)
{
    if (!name)
        return NULL;
    for (const struct gov_policy_ops *const *p = registry; *p; p++)
        if (strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

const struct gov_policy_ops *const *gov_policy_list(void)
{
    return registry;
}
