/* Every policy through the real controller on synthetic input sequences: step loads, ramps,
 * engine phase sequences, thermal spikes, sensor loss, a power cap closed around a small analytic
 * plant, and the anti-flap rules. Expected values come from the kernel governors' formulas or from
 * brute force over the frequency table, never from the code under test. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "ember_test.h"
#include "governor/policy.h"

#define MS 1000000ULL

/* RK3588-like big cluster: 8 table steps, no boost; or an x86-like one with boost. */
static const uint32_t table_khz[] = {408000,  816000,  1200000, 1416000,
                                     1608000, 1800000, 2016000, 2400000};
#define N_TABLE (sizeof(table_khz) / sizeof(table_khz[0]))

static void make_cluster(struct gov_cluster_info *c, const char *name, unsigned first,
                         unsigned n_cpus, bool table)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->n_cpus = n_cpus;
    for (unsigned i = 0; i < n_cpus; i++)
        c->cpus[i] = first + i;
    c->exact_freq = true;
    if (table) {
        c->cpuinfo_min_khz = table_khz[0];
        c->cpuinfo_max_khz = table_khz[N_TABLE - 1];
        c->n_freqs = N_TABLE;
        memcpy(c->freqs_khz, table_khz, sizeof(table_khz));
    } else {
        c->cpuinfo_min_khz = 800000;
        c->cpuinfo_max_khz = 4000000;
        c->base_khz = 3000000;
        c->boost_available = true;
    }
}

/* Tunables with the anti-flap rules off, so a policy's own decision is visible at once. */
static void raw_tunables(struct gov_tunables *t)
{
    gov_tunables_defaults(t);
    t->dead_band_pct = 0;
    t->rate_limit_ms = 0;
    t->hysteresis_ms = 0;
    t->thermal_target_c = 0;
}

struct rig {
    struct gov_controller *ctl;
    struct gov_inputs in;
    struct gov_targets out;
    uint64_t now;
    unsigned n;
};

static int rig_new(struct rig *r, const char *policy, const struct gov_tunables *t,
                   const struct gov_cluster_info *c, unsigned n, const struct gov_calibration *cal)
{
    char err[256];
    memset(r, 0, sizeof(*r));
    r->n = n;
    r->now = 1000 * MS;
    gov_inputs_init(&r->in, r->now);
    int rc = gov_controller_new(policy, t, c, n, cal, &r->ctl, err, sizeof(err));
    if (rc)
        fprintf(stderr, "controller: %s\n", err);
    return rc;
}

static void set_util(struct rig *r, unsigned first, unsigned n, double u)
{
    for (unsigned i = 0; i < n; i++)
        r->in.util[first + i] = u;
}

/* One tick of dt_ms; cur_khz is what was applied (a perfect backend). */
static uint32_t tick(struct rig *r, uint64_t dt_ms)
{
    r->now += dt_ms * MS;
    r->in.now_ns = r->now;
    r->in.phase_ns += dt_ms * MS;
    int rc = gov_controller_step(r->ctl, &r->in, &r->out);
    CHECK_EQ_INT(rc, 0);
    for (unsigned i = 0; i < r->n; i++)
        r->in.cur_khz[i] = r->out.c[i].khz;
    return r->out.c[0].khz;
}

static void set_phase(struct rig *r, enum gov_phase ph)
{
    r->in.phase = ph;
    r->in.phase_ns = 0;
}

static uint32_t table_up(uint32_t khz)
{
    for (unsigned i = 0; i < N_TABLE; i++)
        if (table_khz[i] >= khz)
            return table_khz[i];
    return table_khz[N_TABLE - 1];
}

static void test_performance_powersave(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, false);
    raw_tunables(&t);
    CHECK_EQ_INT(rig_new(&r, "performance", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 4, 0.0);
    CHECK_EQ_INT(tick(&r, 100), 4000000);
    CHECK(r.out.c[0].boost && r.out.boost);
    set_util(&r, 0, 4, 1.0);
    CHECK_EQ_INT(tick(&r, 100), 4000000);
    gov_controller_free(r.ctl);

    CHECK_EQ_INT(rig_new(&r, "powersave", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 4, 1.0);
    CHECK_EQ_INT(tick(&r, 100), 800000);
    CHECK(!r.out.c[0].boost);
    gov_controller_free(r.ctl);

    /* min_mhz / max_mhz clamp the hardware range; table steps are snapped inwards */
    make_cluster(&c, "policy0", 0, 4, true);
    t.max_mhz = 2000;
    t.min_mhz = 1000;
    CHECK_EQ_INT(rig_new(&r, "performance", &t, &c, 1, NULL), 0);
    CHECK_EQ_INT(tick(&r, 100), 1800000);
    gov_controller_free(r.ctl);
    CHECK_EQ_INT(rig_new(&r, "powersave", &t, &c, 1, NULL), 0);
    CHECK_EQ_INT(tick(&r, 100), 1200000);
    gov_controller_free(r.ctl);
}

static void test_ondemand(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 2, true);
    raw_tunables(&t);
    CHECK_EQ_INT(rig_new(&r, "ondemand", &t, &c, 1, NULL), 0);
    /* below up_threshold: min + load * (max - min), rounded up to the table */
    set_util(&r, 0, 2, 0.30);
    uint32_t want = table_up((uint32_t)(408000 + 0.30 * (2400000 - 408000)));
    CHECK_EQ_INT(tick(&r, 100), want);
    /* the busiest CPU decides */
    r.in.util[1] = 0.55;
    want = table_up((uint32_t)(408000 + 0.55 * (2400000 - 408000)));
    CHECK_EQ_INT(tick(&r, 100), want);
    /* step above up_threshold (80): straight to max */
    set_util(&r, 0, 2, 0.85);
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    /* step down: proportional again */
    set_util(&r, 0, 2, 0.05);
    CHECK_EQ_INT(tick(&r, 100), table_up((uint32_t)(408000 + 0.05 * 1992000)));
    gov_controller_free(r.ctl);

    /* sampling_down_factor 3: after a jump to max, two more samples stay there */
    t.sampling_down_factor = 3;
    CHECK_EQ_INT(rig_new(&r, "ondemand", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 2, 0.0);
    CHECK_EQ_INT(tick(&r, 100), 408000);
    set_util(&r, 0, 2, 0.95);
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    set_util(&r, 0, 2, 0.0);
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    CHECK_EQ_INT(tick(&r, 100), 408000);
    gov_controller_free(r.ctl);

    /* powersave_bias 250 per-mille lowers max to 75 % (rounded up to the table) */
    t.sampling_down_factor = 1;
    t.powersave_bias = 250;
    CHECK_EQ_INT(rig_new(&r, "ondemand", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 2, 1.0);
    CHECK_EQ_INT(tick(&r, 100), table_up(1800000));
    gov_controller_free(r.ctl);
}

static void test_conservative(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 1, false); /* continuous: steps are visible exactly */
    raw_tunables(&t);
    t.freq_step_pct = 10;
    CHECK_EQ_INT(rig_new(&r, "conservative", &t, &c, 1, NULL), 0);
    /* ramp up: +10 % of max (400 MHz) per sample from the floor */
    set_util(&r, 0, 1, 0.9);
    CHECK_EQ_INT(tick(&r, 100), 1200000);
    CHECK_EQ_INT(tick(&r, 100), 1600000);
    CHECK_EQ_INT(tick(&r, 100), 2000000);
    /* between the thresholds: hold */
    set_util(&r, 0, 1, 0.5);
    CHECK_EQ_INT(tick(&r, 100), 2000000);
    /* below down_threshold: step down */
    set_util(&r, 0, 1, 0.1);
    CHECK_EQ_INT(tick(&r, 100), 1600000);
    CHECK_EQ_INT(tick(&r, 100), 1200000);
    CHECK_EQ_INT(tick(&r, 100), 800000);
    CHECK_EQ_INT(tick(&r, 100), 800000);
    /* ramp to the top and clamp there */
    set_util(&r, 0, 1, 1.0);
    for (int i = 0; i < 20; i++)
        tick(&r, 100);
    CHECK_EQ_INT(r.out.c[0].khz, 4000000);
    gov_controller_free(r.ctl);

    /* conservative's sampling_down_factor is 1..10 */
    t.sampling_down_factor = 11;
    snprintf(t.policy, sizeof(t.policy), "conservative");
    const char *key = NULL;
    char err[256];
    CHECK(gov_tunables_validate(&t, &key, err, sizeof(err)) == -ERANGE);
    CHECK_STR(key, "sampling_down_factor");
}

static void test_schedutil(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 1, false);
    raw_tunables(&t);
    CHECK_EQ_INT(rig_new(&r, "schedutil", &t, &c, 1, NULL), 0);
    /* at the top clock, 40 % busy -> 1.25 * 4 GHz * 0.4 = 2 GHz */
    r.in.cur_khz[0] = 4000000;
    set_util(&r, 0, 1, 0.4);
    r.now += 100 * MS;
    r.in.now_ns = r.now;
    CHECK_EQ_INT(gov_controller_step(r.ctl, &r.in, &r.out), 0);
    CHECK_NEAR(r.out.c[0].khz, 2000000, 1000);
    /* frequency invariance: 100 % busy at 2 GHz is util 0.5 -> 2.5 GHz, and it keeps rising */
    r.in.cur_khz[0] = r.out.c[0].khz;
    set_util(&r, 0, 1, 1.0);
    CHECK_NEAR(tick(&r, 100), 2500000, 1000);
    uint32_t prev = r.out.c[0].khz;
    for (int i = 0; i < 10; i++) {
        uint32_t f = tick(&r, 100);
        CHECK(f >= prev);
        prev = f;
    }
    CHECK_EQ_INT(prev, 4000000);
    /* idle: floor */
    set_util(&r, 0, 1, 0.0);
    CHECK_EQ_INT(tick(&r, 100), 800000);
    gov_controller_free(r.ctl);

    /* rate_limit_us holds a change */
    t.rate_limit_us = 500000;
    CHECK_EQ_INT(rig_new(&r, "schedutil", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 1, 0.0);
    tick(&r, 100);
    set_util(&r, 0, 1, 1.0);
    r.in.cur_khz[0] = 4000000;
    CHECK_EQ_INT(tick(&r, 100), 800000); /* 100 ms after the last change: held */
    for (int i = 0; i < 4; i++)
        tick(&r, 100);
    CHECK(r.out.c[0].khz > 800000);
    gov_controller_free(r.ctl);
}

/* Synthetic decode throughput: t(f) = 50 ms + 8 ms * (2400 MHz / f) */
static double synth_tps(uint32_t khz)
{
    return 1.0 / (0.050 + 0.008 * 2400000.0 / khz);
}

static uint32_t brute_knee(double slowdown)
{
    double ref = synth_tps(2400000);
    for (unsigned i = 0; i < N_TABLE; i++)
        if (synth_tps(table_khz[i]) >= ref * (1 - slowdown))
            return table_khz[i];
    return 2400000;
}

static void calib_from_synth(struct gov_calibration *cal)
{
    memset(cal, 0, sizeof(*cal));
    cal->n_clusters = 1;
    snprintf(cal->cluster_names[0], GOV_NAME_MAX, "policy0");
    for (unsigned i = 0; i < N_TABLE; i++) {
        cal->points[i].khz[0] = table_khz[i];
        cal->points[i].decode_tok_s = synth_tps(table_khz[i]);
        cal->points[i].prefill_tok_s = 50.0 * table_khz[i] / 2400000.0;
        cal->points[i].watts = 1 + 3.0 * pow(table_khz[i] / 2400000.0, 2.5);
    }
    cal->n_points = N_TABLE;
}

static void test_balanced_calibrated(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct gov_calibration cal;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, true);
    raw_tunables(&t);
    calib_from_synth(&cal);
    CHECK_EQ_INT(rig_new(&r, "balanced", &t, &c, 1, &cal), 0);
    uint32_t knee = brute_knee(t.decode_slowdown_max_pct / 100.0);
    CHECK(knee < 2400000 && knee > 408000);

    set_util(&r, 0, 4, 0.02);
    CHECK_EQ_INT(tick(&r, 100), 408000); /* idle long ago: floor */
    set_phase(&r, GOV_PHASE_PREFILL);
    set_util(&r, 0, 4, 0.02);           /* the window before the phase began */
    CHECK_EQ_INT(tick(&r, 0), 2400000); /* at once, on the phase hint */
    set_util(&r, 0, 4, 1.0);
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    set_phase(&r, GOV_PHASE_DECODE);
    CHECK_EQ_INT(tick(&r, 0), knee);
    CHECK_NEAR(r.out.mem_frac, 1.0, 0); /* the memory lever: decode at the top */
    CHECK_EQ_INT(r.out.epp, GOV_EPP_BALANCE_PERFORMANCE);
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(tick(&r, 100), knee);
    /* a request waiting behind this decode: full speed until the queue is empty */
    r.in.queued = 1;
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    r.in.queued = 0;
    CHECK_EQ_INT(tick(&r, 100), knee);
    /* idle: keep the decode clock for idle_delay_ms, then the floor */
    set_phase(&r, GOV_PHASE_IDLE);
    CHECK_EQ_INT(tick(&r, 0), knee);
    set_util(&r, 0, 4, 0.02);
    for (int i = 0; i < 15; i++)
        CHECK_EQ_INT(tick(&r, 100), knee); /* 1.5 s < 2 s */
    for (int i = 0; i < 6; i++)
        tick(&r, 100);
    CHECK_EQ_INT(r.out.c[0].khz, 408000);
    CHECK_NEAR(r.out.mem_frac, 0.0, 0);
    CHECK_EQ_INT(r.out.epp, GOV_EPP_POWER);
    gov_controller_free(r.ctl);
    /* a policy without levers leaves them to the hardware */
    CHECK_EQ_INT(rig_new(&r, "schedutil", &t, &c, 1, NULL), 0);
    set_phase(&r, GOV_PHASE_DECODE);
    tick(&r, 100);
    CHECK(isnan(r.out.mem_frac));
    CHECK_EQ_INT(r.out.epp, GOV_EPP_LEAVE);
    gov_controller_free(r.ctl);
}

/* Online knee search: the engine reports tokens/s of the synthetic model at the applied clock. */
static void test_balanced_online(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, true);
    raw_tunables(&t);
    CHECK_EQ_INT(rig_new(&r, "balanced", &t, &c, 1, NULL), 0);
    uint32_t knee = brute_knee(t.decode_slowdown_max_pct / 100.0);
    set_phase(&r, GOV_PHASE_DECODE);
    set_util(&r, 0, 4, 0.97);
    tick(&r, 0);
    CHECK_EQ_INT(r.out.c[0].khz, 2400000); /* starts at full speed */
    for (int i = 0; i < 100; i++) {
        r.in.tokens_per_s = synth_tps(r.in.cur_khz[0]);
        tick(&r, 100);
    }
    /* converged: at or one table step above the brute-force knee, never below it */
    uint32_t f = r.out.c[0].khz;
    CHECK_MSG(f >= knee && f <= table_up(knee + 1), "online knee %u, brute force %u", f, knee);
    CHECK(synth_tps(f) >= synth_tps(2400000) * (1 - t.decode_slowdown_max_pct / 100.0));
    /* without tokens/s it stays at full speed: no slowdown it cannot measure */
    gov_controller_free(r.ctl);
    CHECK_EQ_INT(rig_new(&r, "balanced", &t, &c, 1, NULL), 0);
    set_phase(&r, GOV_PHASE_DECODE);
    set_util(&r, 0, 4, 0.97);
    for (int i = 0; i < 100; i++)
        tick(&r, 100);
    CHECK_EQ_INT(r.out.c[0].khz, 2400000);
    gov_controller_free(r.ctl);
}

static double synth_watts(uint32_t khz)
{
    return 1.0 + 3.0 * pow(khz / 2400000.0, 2.5);
}

static void test_efficiency(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, true);
    raw_tunables(&t);
    t.decode_slowdown_max_pct = 20;
    CHECK_EQ_INT(rig_new(&r, "efficiency", &t, &c, 1, NULL), 0);
    /* brute force: lowest joules per token within the budget */
    double ref = synth_tps(2400000), best = INFINITY;
    uint32_t want = 0;
    for (unsigned i = 0; i < N_TABLE; i++) {
        double tps = synth_tps(table_khz[i]);
        if (tps >= ref * 0.8 && synth_watts(table_khz[i]) / tps < best) {
            best = synth_watts(table_khz[i]) / tps;
            want = table_khz[i];
        }
    }
    set_phase(&r, GOV_PHASE_DECODE);
    set_util(&r, 0, 4, 0.97);
    tick(&r, 0);
    for (int i = 0; i < 200; i++) {
        r.in.tokens_per_s = synth_tps(r.in.cur_khz[0]);
        r.in.package_power_w = synth_watts(r.in.cur_khz[0]);
        tick(&r, 100);
    }
    CHECK_MSG(r.out.c[0].khz == want, "efficiency settled at %u, brute force %u", r.out.c[0].khz,
              want);
    gov_controller_free(r.ctl);
}

static void test_quiet(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, true);
    raw_tunables(&t);
    CHECK_EQ_INT(rig_new(&r, "quiet", &t, &c, 1, NULL), 0);
    set_phase(&r, GOV_PHASE_PREFILL);
    set_util(&r, 0, 4, 1.0);
    /* no temperature known yet: at most half the range */
    CHECK(tick(&r, 100) <= table_up(408000 + (2400000 - 408000) / 2));
    /* cool: the cap rises, but slowly (5 % of the range per second) */
    r.in.temp_c[0] = 40;
    uint32_t prev = tick(&r, 100);
    for (int i = 0; i < 100; i++) {
        uint32_t f = tick(&r, 100);
        CHECK(f >= prev);
        prev = f;
    }
    CHECK_EQ_INT(prev, 2400000);
    /* hot: above quiet_temp_c the cap comes down */
    r.in.temp_c[0] = t.quiet_temp_c + 8;
    for (int i = 0; i < 50; i++)
        tick(&r, 100);
    CHECK(r.out.c[0].khz < 2400000);
    gov_controller_free(r.ctl);
}

static void test_thermal_constraint(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, true);
    raw_tunables(&t);
    t.thermal_target_c = 70;
    CHECK_EQ_INT(rig_new(&r, "performance", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 4, 1.0);
    r.in.temp_c[0] = 50;
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    CHECK(r.out.c[0].reasons & GOV_REASON_POLICY);
    /* a thermal spike: the PI lowers the ceiling, more the longer it lasts */
    r.in.temp_c[0] = 78;
    uint32_t f1 = tick(&r, 100);
    CHECK(f1 < 2400000);
    CHECK(r.out.c[0].reasons & GOV_REASON_THERMAL);
    for (int i = 0; i < 30; i++)
        tick(&r, 100);
    CHECK(r.out.c[0].khz < f1);
    /* cooled down: it comes back to the policy's choice */
    r.in.temp_c[0] = 40;
    for (int i = 0; i < 100; i++)
        tick(&r, 100);
    CHECK_EQ_INT(r.out.c[0].khz, 2400000);
    /* the first passive trip point pulls the target down to trip - margin */
    CHECK_NEAR(gov_controller_thermal_target_c(r.ctl, 72), 67, 1e-9);
    CHECK_NEAR(gov_controller_thermal_target_c(r.ctl, NAN), 70, 1e-9);
    r.in.passive_trip_c = 60;
    r.in.temp_c[0] = 58; /* below 70 but above 60 - 5 */
    for (int i = 0; i < 30; i++)
        tick(&r, 100);
    CHECK(r.out.c[0].khz < 2400000);
    CHECK(r.out.c[0].reasons & GOV_REASON_TRIP);
    gov_controller_free(r.ctl);
}

static void test_sensor_loss(void)
{
    struct gov_cluster_info c[2];
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c[0], "policy0", 0, 2, true);
    make_cluster(&c[1], "policy2", 2, 2, false);
    raw_tunables(&t);
    const char *const policies[] = {"performance", "ondemand", "schedutil",   "balanced",
                                    "efficiency",  "quiet",    "conservative"};
    for (size_t p = 0; p < sizeof(policies) / sizeof(policies[0]); p++) {
        CHECK_EQ_INT(rig_new(&r, policies[p], &t, c, 2, NULL), 0);
        set_util(&r, 0, 4, 1.0);
        r.in.temp_c[0] = r.in.temp_c[1] = 50;
        set_phase(&r, GOV_PHASE_PREFILL);
        for (int i = 0; i < 5; i++)
            tick(&r, 100);
        /* one zone vanishes: every cluster to its floor, boost off */
        r.in.temp_c[1] = NAN;
        tick(&r, 100);
        CHECK_MSG(r.out.c[0].khz == 408000 && r.out.c[1].khz == 800000 && !r.out.boost,
                  "%s: sensor loss gave %u/%u boost %d", policies[p], r.out.c[0].khz,
                  r.out.c[1].khz, r.out.boost);
        CHECK(r.out.c[1].reasons & GOV_REASON_SENSOR_LOSS);
        /* garbage counts as loss too */
        r.in.temp_c[1] = 500;
        tick(&r, 100);
        CHECK(r.out.c[1].reasons & GOV_REASON_SENSOR_LOSS);
        /* back: normal control resumes */
        r.in.temp_c[1] = 50;
        for (int i = 0; i < 5; i++)
            tick(&r, 100);
        CHECK(!(r.out.c[0].reasons & GOV_REASON_SENSOR_LOSS));
        CHECK(r.out.c[0].khz > 408000);
        /* the runtime's own fault flag */
        r.in.sensor_fault = true;
        tick(&r, 100);
        CHECK_EQ_INT(r.out.c[0].khz, 408000);
        r.in.sensor_fault = false;
        gov_controller_free(r.ctl);
    }
    /* a machine that never had a temperature is not in the safe state */
    CHECK_EQ_INT(rig_new(&r, "performance", &t, c, 2, NULL), 0);
    CHECK_EQ_INT(tick(&r, 100), 2400000);
    gov_controller_free(r.ctl);
}

/* Power cap around an analytic plant: P = 1 W + 6 W * (f / f_max)^2.6 per cluster pair. */
static void test_power_cap(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 4, false);
    gov_tunables_defaults(&t);
    t.thermal_target_c = 0;
    t.power_cap_w = 4.0;
    const char *const policies[] = {"performance", "schedutil", "balanced"};
    for (size_t p = 0; p < 3; p++) {
        CHECK_EQ_INT(rig_new(&r, policies[p], &t, &c, 1, NULL), 0);
        set_phase(&r, GOV_PHASE_PREFILL);
        set_util(&r, 0, 4, 1.0);
        double sum = 0;
        int n = 0;
        for (int i = 0; i < 300; i++) {
            double w = 1.0 + 6.0 * pow(r.in.cur_khz[0] ? r.in.cur_khz[0] / 4e6 : 1.0, 2.6);
            r.in.package_power_w = w;
            tick(&r, 100);
            if (i >= 100) {
                sum += w;
                n++;
            }
        }
        double avg = sum / n;
        CHECK_MSG(avg <= 4.0 * 1.05 && avg >= 4.0 * 0.9, "%s: average %.3f W under a 4 W cap",
                  policies[p], avg);
        CHECK(r.out.c[0].reasons & (GOV_REASON_POWER_CAP | GOV_REASON_HELD));
        gov_controller_free(r.ctl);
    }
}

static void test_anti_flap(void)
{
    struct gov_cluster_info c;
    struct gov_tunables t;
    struct rig r;
    make_cluster(&c, "policy0", 0, 1, false);
    /* load flickering around ondemand's threshold: 0.79 / 0.81 every tick */
    unsigned changes_raw = 0, changes = 0;
    raw_tunables(&t);
    CHECK_EQ_INT(rig_new(&r, "ondemand", &t, &c, 1, NULL), 0);
    for (int i = 0; i < 100; i++) {
        set_util(&r, 0, 1, i % 2 ? 0.81 : 0.79);
        tick(&r, 100);
        changes_raw += r.out.c[0].changed;
    }
    gov_controller_free(r.ctl);
    gov_tunables_defaults(&t);
    t.thermal_target_c = 0;
    CHECK_EQ_INT(rig_new(&r, "ondemand", &t, &c, 1, NULL), 0);
    uint64_t last_change = 0;
    bool spaced = true;
    for (int i = 0; i < 100; i++) {
        set_util(&r, 0, 1, i % 2 ? 0.81 : 0.79);
        tick(&r, 100);
        if (r.out.c[0].changed) {
            changes++;
            if (last_change && r.now - last_change < (uint64_t)t.rate_limit_ms * MS)
                spaced = false;
            last_change = r.now;
        }
    }
    CHECK_MSG(changes_raw >= 90, "raw ondemand changed %u times", changes_raw);
    CHECK_MSG(changes <= 3, "with hysteresis it changed %u times", changes);
    CHECK(spaced);
    gov_controller_free(r.ctl);

    /* dead band: a 2 % move is ignored, a 10 % one is not */
    t.hysteresis_ms = 0;
    t.rate_limit_ms = 0;
    CHECK_EQ_INT(rig_new(&r, "schedutil", &t, &c, 1, NULL), 0);
    r.in.cur_khz[0] = 4000000;
    set_util(&r, 0, 1, 0.6); /* 3.0 GHz */
    uint32_t f0 = tick(&r, 100);
    CHECK_NEAR(f0, 3000000, 1000);
    set_util(&r, 0, 1, 0.816); /* 1.25 * 3 GHz * 0.816 = 3.06 GHz: +2 % */
    CHECK_EQ_INT(tick(&r, 100), f0);
    CHECK(r.out.c[0].reasons & GOV_REASON_HELD);
    set_util(&r, 0, 1, 0.7); /* 1.25 * 3 GHz * 0.7 = 2.625 GHz: -12.5 % */
    CHECK(tick(&r, 100) < f0);
    gov_controller_free(r.ctl);

    /* hysteresis: a one-tick dip does not lower the clock, a lasting one does */
    gov_tunables_defaults(&t);
    t.thermal_target_c = 0;
    t.rate_limit_ms = 0;
    CHECK_EQ_INT(rig_new(&r, "ondemand", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 1, 1.0);
    CHECK_EQ_INT(tick(&r, 100), 4000000);
    set_util(&r, 0, 1, 0.1);
    CHECK_EQ_INT(tick(&r, 100), 4000000);
    set_util(&r, 0, 1, 1.0);
    CHECK_EQ_INT(tick(&r, 100), 4000000);
    set_util(&r, 0, 1, 0.1);
    for (int i = 0; i < 3; i++)
        tick(&r, 100);
    CHECK_EQ_INT(tick(&r, 100), 1120000); /* 800 + 0.1 * 3200 MHz */
    gov_controller_free(r.ctl);

    /* a phase change is not delayed by the rate limit */
    gov_tunables_defaults(&t);
    t.thermal_target_c = 0;
    t.rate_limit_ms = 5000;
    CHECK_EQ_INT(rig_new(&r, "balanced", &t, &c, 1, NULL), 0);
    set_util(&r, 0, 1, 0.0);
    tick(&r, 100);
    set_phase(&r, GOV_PHASE_PREFILL);
    CHECK_EQ_INT(tick(&r, 0), 4000000);
    gov_controller_free(r.ctl);
}

static void test_tunables(void)
{
    struct gov_tunables t;
    char err[256];
    const char *key = (const char *)1;
    gov_tunables_defaults(&t);
    CHECK_EQ_INT(gov_tunables_validate(&t, &key, err, sizeof(err)), 0);
    CHECK(key == NULL);
    CHECK_STR(t.policy, "balanced");
    CHECK_EQ_INT(t.tick_ms, 100);
    CHECK_EQ_INT(t.idle_delay_ms, 2000);
    CHECK_NEAR(t.decode_slowdown_max_pct, 5, 0);
    CHECK_NEAR(t.thermal_target_c, 85, 0);

    CHECK_EQ_INT(gov_tunables_set(&t, "nope", "1", err, sizeof(err)), -ENOENT);
    CHECK_CONTAINS(err, "nope");
    CHECK_EQ_INT(gov_tunables_set(&t, "up_threshold", "140", err, sizeof(err)), -ERANGE);
    CHECK_CONTAINS(err, "up_threshold");
    CHECK_EQ_INT(gov_tunables_set(&t, "up_threshold", "8x", err, sizeof(err)), -EINVAL);
    CHECK_EQ_INT(gov_tunables_set(&t, "policy", "turbo", err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "turbo");
    CHECK_EQ_INT(gov_tunables_set(&t, "power_cap_w", "0", err, sizeof(err)), 0);
    CHECK_EQ_INT(gov_tunables_set(&t, "power_cap_w", "0.1", err, sizeof(err)), -ERANGE);
    CHECK_EQ_INT(gov_tunables_set(&t, "power_cap_w", "12.5", err, sizeof(err)), 0);
    CHECK_NEAR(t.power_cap_w, 12.5, 0);
    char buf[32];
    CHECK_EQ_INT(gov_tunables_get(&t, "power_cap_w", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "12.5");

    gov_tunables_defaults(&t);
    t.min_mhz = 2000;
    t.max_mhz = 1000;
    CHECK_EQ_INT(gov_tunables_validate(&t, &key, err, sizeof(err)), -ERANGE);
    CHECK_STR(key, "min_mhz");
    gov_tunables_defaults(&t);
    t.down_threshold = 85;
    CHECK_EQ_INT(gov_tunables_validate(&t, &key, err, sizeof(err)), -ERANGE);
    CHECK_STR(key, "down_threshold");
    gov_tunables_defaults(&t);
    t.dead_band_pct = NAN;
    CHECK(gov_tunables_validate(&t, &key, err, sizeof(err)) != 0);
    CHECK_STR(key, "dead_band_pct");
    gov_tunables_defaults(&t);
    snprintf(t.policy, sizeof(t.policy), "fast");
    CHECK(gov_tunables_validate(&t, &key, err, sizeof(err)) != 0);
    CHECK_STR(key, "policy");

    /* every documented key round-trips its default */
    size_t n;
    const struct gov_tunable_desc *d = gov_tunable_table(&n);
    CHECK(n >= 20);
    gov_tunables_defaults(&t);
    for (size_t i = 0; i < n; i++) {
        CHECK(d[i].doc && *d[i].doc);
        CHECK_EQ_INT(gov_tunables_set(&t, d[i].key, d[i].default_value, err, sizeof(err)), 0);
    }

    /* the controller refuses bad tunables and clusters, naming them */
    struct gov_cluster_info c;
    struct gov_controller *ctl = NULL;
    make_cluster(&c, "policy0", 0, 1, true);
    gov_tunables_defaults(&t);
    t.up_threshold = 0;
    CHECK(gov_controller_new(NULL, &t, &c, 1, NULL, &ctl, err, sizeof(err)) == -ERANGE);
    CHECK_CONTAINS(err, "up_threshold");
    CHECK(ctl == NULL);
    gov_tunables_defaults(&t);
    CHECK(gov_controller_new("bogus", &t, &c, 1, NULL, &ctl, err, sizeof(err)) == -EINVAL);
    c.freqs_khz[3] = c.freqs_khz[2];
    CHECK(gov_controller_new(NULL, &t, &c, 1, NULL, &ctl, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "policy0");

    /* live switching keeps a working controller */
    make_cluster(&c, "policy0", 0, 1, true);
    CHECK_EQ_INT(gov_controller_new(NULL, &t, &c, 1, NULL, &ctl, err, sizeof(err)), 0);
    CHECK_STR(gov_controller_policy(ctl), "balanced");
    CHECK_EQ_INT(gov_controller_set_policy(ctl, "powersave", err, sizeof(err)), 0);
    CHECK_STR(gov_controller_policy(ctl), "powersave");
    CHECK(gov_controller_set_policy(ctl, "nope", err, sizeof(err)) == -EINVAL);
    CHECK_STR(gov_controller_policy(ctl), "powersave");
    struct gov_inputs in;
    struct gov_targets out;
    gov_inputs_init(&in, 5 * MS);
    CHECK_EQ_INT(gov_controller_step(ctl, &in, &out), 0);
    CHECK_EQ_INT(out.c[0].khz, 408000);
    in.now_ns = 1 * MS; /* back in time */
    CHECK_EQ_INT(gov_controller_step(ctl, &in, &out), -EINVAL);
    gov_controller_free(ctl);
    gov_controller_free(NULL);
}

static void test_quantize(void)
{
    struct gov_cluster_info c;
    make_cluster(&c, "policy0", 0, 1, true);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 1500000, true, 408000, 2400000), 1608000);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 1500000, false, 408000, 2400000), 1416000);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 9000000, true, 408000, 2400000), 2400000);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 1000, false, 408000, 2400000), 408000);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 2400000, true, 408000, 2000000), 1800000);
    make_cluster(&c, "policy0", 0, 1, false);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 1234567, true, 800000, 4000000), 1234567);
    CHECK_EQ_INT(gov_cluster_quantize(&c, 100, true, 800000, 4000000), 800000);
}

static void test_calibration_json(void)
{
    struct gov_calibration cal, back;
    char err[256];
    calib_from_synth(&cal);
    snprintf(cal.model, sizeof(cal.model), "tiny.gguf");
    cal.points[2].watts = NAN; /* no power sensor for this step */
    char path[512];
    snprintf(path, sizeof(path), "%s/gov_calib_test.json", EMBER_BINARY_DIR);
    CHECK_EQ_INT(gov_calibration_save(&cal, path, err, sizeof(err)), 0);
    CHECK_EQ_INT(gov_calibration_load(path, &back, err, sizeof(err)), 0);
    CHECK_STR(back.model, "tiny.gguf");
    CHECK_EQ_INT(back.n_points, N_TABLE);
    CHECK_EQ_INT(back.n_clusters, 1);
    CHECK_STR(back.cluster_names[0], "policy0");
    for (unsigned i = 0; i < N_TABLE; i++) {
        CHECK_EQ_INT(back.points[i].khz[0], table_khz[i]);
        CHECK_NEAR(back.points[i].decode_tok_s, cal.points[i].decode_tok_s, 1e-9);
    }
    CHECK(isnan(back.points[2].watts));
    remove(path);

    /* unsorted input is sorted; one number for khz means every cluster */
    CHECK_EQ_INT(gov_calibration_parse("{\"clusters\":[\"a\",\"b\"],\"points\":["
                                       "{\"khz\":2000,\"decode_tok_s\":9},"
                                       "{\"khz\":[1000,1100],\"decode_tok_s\":7}]}",
                                       &back, err, sizeof(err)),
                 0);
    CHECK_EQ_INT(back.points[0].khz[0], 1000);
    CHECK_EQ_INT(back.points[0].khz[1], 1100);
    CHECK_EQ_INT(back.points[1].khz[1], 2000);
    CHECK(isnan(back.points[1].watts));
    /* a small cluster repeating its top step while the big one climbs is a valid ladder */
    CHECK_EQ_INT(gov_calibration_parse("{\"clusters\":[\"little\",\"big\"],\"points\":["
                                       "{\"khz\":[1800,2400],\"decode_tok_s\":9},"
                                       "{\"khz\":[1800,2200],\"decode_tok_s\":8.5},"
                                       "{\"khz\":[1600,2000],\"decode_tok_s\":8}]}",
                                       &back, err, sizeof(err)),
                 0);
    CHECK_EQ_INT(back.points[1].khz[1], 2200);
    CHECK_EQ_INT(back.points[2].khz[1], 2400);

    static const char *const bad[] = {
        "",
        "[]",
        "{\"points\":[]}",
        "{\"points\":[{\"khz\":-5}]}",
        "{\"points\":[{\"khz\":1000,\"decode_tok_s\":-1}]}",
        "{\"points\":[{\"khz\":1000},{\"khz\":1000}]}",
        "{\"clusters\":[\"a\",\"b\"],\"points\":[{\"khz\":[1000]}]}",
        "{\"version\":2,\"points\":[{\"khz\":1000}]}",
        "{\"points\":[{\"khz\":1000,\"watts\":\"hot\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        CHECK_MSG(gov_calibration_parse(bad[i], &back, err, sizeof(err)) == -EINVAL, "accepted: %s",
                  bad[i]);
        CHECK(err[0] != 0);
    }
    CHECK(gov_calibration_load("/nonexistent/ember.json", &back, err, sizeof(err)) == -ENOENT);
    CHECK_CONTAINS(err, "/nonexistent/ember.json");
}

int main(void)
{
    test_performance_powersave();
    test_ondemand();
    test_conservative();
    test_schedutil();
    test_balanced_calibrated();
    test_balanced_online();
    test_efficiency();
    test_quiet();
    test_thermal_constraint();
    test_sensor_loss();
    test_power_cap();
    test_anti_flap();
    test_tunables();
    test_quantize();
    test_calibration_json();
    return et_finish();
}
