/* The thread lever (issue 12). The plant: decode tokens/s saturates with cores on a
 * memory-bound plant (each core streams at most core_gbs, the bus decode_mem_ms), prefill scales
 * with cores, the little cluster runs decode at its own clock and IPC. The policy: balanced and
 * efficiency hand the engine every core in prefill, fewer in decode where they cost nothing the
 * budget has not left, and nothing at all with thread_lever = 0. The controller carries the
 * policy's choice in its targets. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ember_test.h"
#include "governor/policy.h"
#include "governor/sim.h"

/* One cluster of 4 cores. The bus gives 0.6 GB per 40 ms = 15 GB/s; one core streams 8 GB/s, so
 * two saturate it; compute is small (0.005 Gcycles per token). */
static const char membound_json[] =
    "{\"name\":\"membound\",\"power\":{\"uncore_w\":0.5,\"idle_leak_fraction\":0.5},"
    "\"thermal\":{\"ambient_c\":25,\"r_jc\":1,\"c_j\":1,\"r_ca\":5,\"c_c\":20,"
    "\"passive_trip_c\":90},"
    "\"performance\":{\"prefill_tok_per_gcycle\":5,\"decode_mem_ms\":40,"
    "\"decode_gcycles_per_token\":0.005,\"weights_gb\":0.6},"
    "\"wall\":{\"board_w\":1.5,\"dram_idle_w\":0.3,\"dram_w_per_gbs\":0.05,"
    "\"psu_efficiency\":0.85},"
    "\"clusters\":[{\"name\":\"policy0\",\"cpus\":4,\"first_cpu\":0,\"engine\":true,"
    "\"ceff_nf\":0.4,\"leak_w\":0.05,\"leak_ref_v\":1.0,\"core_gbs\":8,"
    "\"opp\":[[500000,700],[1000000,750],[1500000,850],[2000000,1000]]}]}";

static void fixed_run(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                      unsigned dec_threads, uint64_t dec_cpus, unsigned pre_threads,
                      struct gov_sim_result *r)
{
    struct gov_sim_options o;
    char err[256];
    gov_sim_options_defaults(&o);
    o.duration_s = 60;
    o.fixed_clocks = true;
    o.fixed_prefill_frac = o.fixed_decode_frac = 1;
    o.fixed_threads = true;
    o.fixed_decode_threads = dec_threads;
    o.fixed_decode_cpus = dec_cpus;
    o.fixed_prefill_threads = pre_threads;
    CHECK_MSG(gov_sim_run(p, w, "schedutil", &o, r, NULL, err, sizeof(err)) == 0, "%s", err);
}

static void policy_run(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                       const char *policy, const char *lever, struct gov_sim_result *r)
{
    struct gov_sim_options o;
    char err[256];
    gov_sim_options_defaults(&o);
    o.duration_s = 150;
    CHECK_EQ_INT(gov_tunables_set(&o.tunables, "thread_lever", lever, err, sizeof(err)), 0);
    CHECK_MSG(gov_sim_run(p, w, policy, &o, r, NULL, err, sizeof(err)) == 0, "%s", err);
}

static void test_plant(const struct gov_sim_profile *p, const struct gov_sim_workload *w)
{
    struct gov_sim_result r[5];
    for (unsigned t = 1; t <= 4; t++)
        fixed_run(p, w, t, 0, 0, &r[t]);
    /* t = max(bus 40 ms, 0.6 GB / (t x 8 GB/s)) + 0.2 x compute (0.005 / (t x 2 GHz)) */
    CHECK_NEAR(r[1].decode_tokens_per_s, 1000 / (75 + 0.2 * 2.5), 0.01);
    CHECK_NEAR(r[2].decode_tokens_per_s, 1000 / (40 + 0.2 * 1.25), 0.01);
    CHECK_NEAR(r[4].decode_tokens_per_s, 1000 / (40 + 0.2 * 0.625), 0.01);
    for (unsigned t = 1; t <= 4; t++)
        CHECK_NEAR(r[t].decode_threads, t, 1e-9);
    /* saturation: the second core doubles the speed, the third and fourth add under 1 % */
    CHECK(r[2].decode_tokens_per_s > 1.8 * r[1].decode_tokens_per_s);
    CHECK(r[4].decode_tokens_per_s < 1.01 * r[2].decode_tokens_per_s);
    /* ... and cost power: an idle-but-online core leaks less and switches nothing */
    CHECK_MSG(r[2].j_per_token_decode < 0.9 * r[4].j_per_token_decode,
              "decode J/token 2 cores %.4f vs 4 cores %.4f", r[2].j_per_token_decode,
              r[4].j_per_token_decode);
    /* prefill is compute-bound: tokens/s follows the cores */
    struct gov_sim_result half;
    fixed_run(p, w, 0, 0, 2, &half);
    CHECK_NEAR(half.prefill_threads, 2, 1e-9);
    CHECK_NEAR(r[4].prefill_threads, 4, 1e-9);
    CHECK_NEAR(half.prefill_tokens_per_s / r[4].prefill_tokens_per_s, 0.5, 0.01);
    /* threads beyond the engine's own are not there: the configured count is the ceiling */
    struct gov_sim_result more;
    fixed_run(p, w, 16, 0, 0, &more);
    CHECK_NEAR(more.decode_threads, 4, 1e-9);
}

/* big.LITTLE: decode on rk3588's four A55 cores runs at their clock and IPC. */
static void test_little(void)
{
    struct gov_sim_profile *p = malloc(sizeof(*p));
    struct gov_sim_workload w = {0};
    char err[512];
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK_MSG(gov_sim_profile_load("rk3588", p, err, sizeof(err)) == 0, "%s", err);
    CHECK_EQ_INT(gov_sim_workload_load("chat", 60, 3, &w, err, sizeof(err)), 0);
    const struct gov_sim_cluster *little = &p->clusters[0];
    CHECK_STR(little->name, "policy0");
    CHECK(!little->engine && little->core_gbs > 0);
    struct gov_sim_result big, lit;
    fixed_run(p, &w, 0, 0, 0, &big);
    fixed_run(p, &w, 4, 0x0F, 0, &lit);
    double ghz = little->opps[little->n_opps - 1].khz / 1e6;
    double tc = p->decode_gcycles_per_token / (4 * little->ipc * ghz);
    double tm = fmax(p->decode_mem_ms / 1e3, p->weights_gb / (4 * little->core_gbs));
    CHECK_NEAR(lit.decode_tokens_per_s, 1 / (fmax(tc, tm) + 0.2 * fmin(tc, tm)), 0.01);
    CHECK_NEAR(lit.decode_threads, 4, 1e-9);
    CHECK(lit.decode_tokens_per_s < 0.7 * big.decode_tokens_per_s);
    /* the A55s draw far less than the A76s did */
    CHECK(lit.decode_energy_j / lit.decode_tokens_per_s < big.decode_energy_j);
    gov_sim_workload_free(&w);
    free(p);
}

static void test_policies(const struct gov_sim_profile *p, const struct gov_sim_workload *w)
{
    struct gov_sim_result on, off, perf, eff, eff_off;
    policy_run(p, w, "balanced", "1", &on);
    policy_run(p, w, "balanced", "0", &off);
    policy_run(p, w, "performance", "1", &perf);
    printf("balanced: lever on %.2f / %.2f threads, %.4f wall J/token, %.2f tok/s; off %.2f / "
           "%.2f, %.4f, %.2f; performance %.2f tok/s\n",
           on.prefill_threads, on.decode_threads, on.wall_joules_per_token, on.decode_tokens_per_s,
           off.prefill_threads, off.decode_threads, off.wall_joules_per_token,
           off.decode_tokens_per_s, perf.decode_tokens_per_s);
    /* every core in prefill, two (after a probe of four and three) in decode */
    CHECK_NEAR(on.prefill_threads, 4, 1e-9);
    CHECK_MSG(on.decode_threads < 2.5, "decode threads %.2f", on.decode_threads);
    CHECK(on.wall_joules_per_token < off.wall_joules_per_token);
    CHECK(on.decode_tokens_per_s >= 0.95 * perf.decode_tokens_per_s);
    /* the lever off: the engine as configured */
    CHECK_NEAR(off.prefill_threads, 4, 1e-9);
    CHECK_NEAR(off.decode_threads, 4, 1e-9);
    CHECK_NEAR(perf.decode_threads, 4, 1e-9);

    policy_run(p, w, "efficiency", "1", &eff);
    policy_run(p, w, "efficiency", "0", &eff_off);
    printf("efficiency: lever on %.2f / %.2f threads, %.4f wall J/token; off %.4f\n",
           eff.prefill_threads, eff.decode_threads, eff.wall_joules_per_token,
           eff_off.wall_joules_per_token);
    CHECK_NEAR(eff.prefill_threads, 4, 1e-9);
    CHECK_MSG(eff.decode_threads < 3, "decode threads %.2f", eff.decode_threads);
    CHECK_NEAR(eff_off.decode_threads, 4, 1e-9);
    CHECK(eff.wall_joules_per_token < eff_off.wall_joules_per_token);
    CHECK(eff.decode_tokens_per_s >= 0.95 * perf.decode_tokens_per_s);
}

/* The controller hands the policy's choice on: after a settled prefill on CPUs 0-3 of an
 * eight-CPU cluster pair, all four in prefill; nothing with the lever off or before a prefill. */
static void test_controller(void)
{
    struct gov_cluster_info c[2];
    memset(c, 0, sizeof(c));
    for (unsigned k = 0; k < 2; k++) {
        snprintf(c[k].name, sizeof(c[k].name), "policy%u", 4 * k);
        c[k].n_cpus = 4;
        for (unsigned i = 0; i < 4; i++)
            c[k].cpus[i] = 4 * k + i;
        c[k].exact_freq = true;
        c[k].cpuinfo_min_khz = 400000;
        c[k].cpuinfo_max_khz = k ? 1800000 : 2400000;
    }
    for (int lever = 0; lever <= 1; lever++) {
        struct gov_tunables t;
        gov_tunables_defaults(&t);
        t.thread_lever = lever;
        struct gov_controller *ctl;
        char err[256];
        CHECK_MSG(gov_controller_new("balanced", &t, c, 2, NULL, &ctl, err, sizeof(err)) == 0, "%s",
                  err);
        struct gov_targets tg;
        struct gov_inputs in;
        for (unsigned k = 0; k < 5; k++) {
            gov_inputs_init(&in, (uint64_t)(k + 1) * 100000000ULL);
            in.phase = GOV_PHASE_PREFILL;
            in.phase_ns = (uint64_t)k * 100000000ULL;
            for (unsigned i = 0; i < 8; i++)
                in.util[i] = i < 4 ? 1.0 : 0.02;
            for (unsigned i = 0; i < 2; i++)
                in.temp_c[i] = 50;
            CHECK_EQ_INT(gov_controller_step(ctl, &in, &tg), 0);
            if (k == 0)
                CHECK_EQ_INT(tg.engine_threads, 0); /* nothing learnt yet */
        }
        CHECK_EQ_INT(tg.engine_threads, lever ? 4 : 0);
        CHECK(tg.engine_cpus == (lever ? 0x0Fu : 0u));
        gov_controller_free(ctl);
    }
    /* the tunable's range */
    struct gov_tunables t;
    char err[256];
    gov_tunables_defaults(&t);
    CHECK_EQ_INT(t.thread_lever, 1);
    CHECK(gov_tunables_set(&t, "thread_lever", "2", err, sizeof(err)) == -ERANGE);
    CHECK_CONTAINS(err, "thread_lever");
}

int main(void)
{
    struct gov_sim_profile *p = malloc(sizeof(*p));
    struct gov_sim_workload w = {0};
    char err[512];
    CHECK(p != NULL);
    if (!p)
        return et_finish();
    CHECK_MSG(gov_sim_profile_parse(membound_json, p, err, sizeof(err)) == 0, "%s", err);
    CHECK_EQ_INT(gov_sim_workload_load("chat", 150, 3, &w, err, sizeof(err)), 0);
    test_plant(p, &w);
    test_policies(p, &w);
    test_little();
    test_controller();
    /* the profile parser names a bad per-core bandwidth */
    char bad[sizeof(membound_json) + 8];
    const char *at = strstr(membound_json, "\"core_gbs\":8,");
    CHECK(at != NULL);
    if (at) {
        snprintf(bad, sizeof(bad), "%.*s\"core_gbs\":-1,%s", (int)(at - membound_json),
                 membound_json, at + strlen("\"core_gbs\":8,"));
        CHECK(gov_sim_profile_parse(bad, p, err, sizeof(err)) == -EINVAL);
        CHECK_CONTAINS(err, "core_gbs");
    }
    gov_sim_workload_free(&w);
    free(p);
    return et_finish();
}
