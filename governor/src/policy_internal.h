/* What the policy files share and nobody outside the governor needs: the ops tables of every
 * policy, small helpers to read a cluster's load from the inputs, and the decode-knee estimator
 * that `balanced` (without a calibration curve) and `efficiency` use. */
#ifndef GOVERNOR_POLICY_INTERNAL_H
#define GOVERNOR_POLICY_INTERNAL_H

#include "governor/policy.h"

extern const struct gov_policy_ops gov_policy_performance;
extern const struct gov_policy_ops gov_policy_powersave;
extern const struct gov_policy_ops gov_policy_ondemand;
extern const struct gov_policy_ops gov_policy_conservative;
extern const struct gov_policy_ops gov_policy_schedutil;
extern const struct gov_policy_ops gov_policy_balanced;
extern const struct gov_policy_ops gov_policy_efficiency;
extern const struct gov_policy_ops gov_policy_quiet;

/* Highest busy fraction (0..1) of the cluster's CPUs; NaN when none has a reading. */
double gov_cluster_load(const struct gov_cluster_info *c, const struct gov_inputs *in);

/* The frequency the cluster ran at: in->cur_khz (the controller fills it), else fallback. */
uint32_t gov_cluster_cur(const struct gov_inputs *in, unsigned i, uint32_t fallback);

/* schedutil's rule with frequency-invariant utilisation: util_inv = busy * cur / f_max,
 * f = 1.25 * f_max * util_inv, clamped to [floor, ceil]. */
uint32_t gov_schedutil_freq(const struct gov_policy_ctx *ctx, unsigned i,
                            const struct gov_inputs *in);

/* One PI step on an output that is a fraction (0..1) of the frequency range, with tracking
 * anti-windup: the integrator *ui stays within [0, min(1, applied_frac + headroom)], so it never
 * sits far above where the clock is and a burst after a quiet spell cannot overshoot on stored-up
 * headroom. e > 0 means room. The thermal constraint and the quiet policy use it. */
#define GOV_PI_TRACK_HEADROOM 0.1
double gov_pi_step(double *ui, double e, double kp, double ki, double dt_s, double applied_frac);

/* Decode throughput model t(r) = a + b / r, r = frequency as a fraction of the ceiling: the time
 * per token is a memory part (a) that does not scale with the clock plus a compute part (b / r)
 * that does. Fitted by least squares on per-bin averages of what the engine reported. */
#define GOV_KNEE_BINS 20

struct gov_knee {
    double mean_t[GOV_KNEE_BINS]; /* seconds per token, running mean (old samples fade) */
    double mean_r[GOV_KNEE_BINS]; /* frequency fraction the samples were taken at */
    unsigned n[GOV_KNEE_BINS];    /* samples, capped so the mean keeps following */
};

/* Adds one observation at frequency fraction r (0..1] of tokens_per_s. */
void gov_knee_add(struct gov_knee *k, double r, double tokens_per_s);
/* Fits t = a + b / r; -EAGAIN with fewer than two bins that differ in r by 5 %. */
int gov_knee_fit(const struct gov_knee *k, double *ret_a, double *ret_b);
/* Lowest r in [r_min, 1] whose throughput is at least (1 - slowdown) of that at r = 1. */
double gov_knee_solve(double a, double b, double slowdown, double r_min);

#endif
