/* The oracle and the sweep (issue 12): a static configuration runs the engine clusters exactly
 * at the asked clocks; the oracle's phase-by-phase search finds the same optimum as trying every
 * (prefill clock, decode clock, decode threads) triple on a small plant, stays within its
 * latency budget and beats performance; a sweep applies each value and rejects bad ones naming the
 * key. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ember_test.h"
#include "governor/sim.h"

static const char profile_json[] =
    "{\"name\":\"small\",\"power\":{\"uncore_w\":0.5,\"idle_leak_fraction\":0.5},"
    "\"thermal\":{\"ambient_c\":25,\"r_jc\":1,\"c_j\":1,\"r_ca\":5,\"c_c\":20,"
    "\"passive_trip_c\":90},"
    "\"performance\":{\"prefill_tok_per_gcycle\":5,\"decode_mem_ms\":40,"
    "\"decode_gcycles_per_token\":0.1,\"weights_gb\":0.6},"
    "\"wall\":{\"board_w\":1.5,\"dram_idle_w\":0.3,\"dram_w_per_gbs\":0.05,"
    "\"psu_efficiency\":0.85},"
    "\"clusters\":[{\"name\":\"policy0\",\"cpus\":4,\"first_cpu\":0,\"engine\":true,"
    "\"ceff_nf\":0.4,\"leak_w\":0.05,\"leak_ref_v\":1.0,"
    "\"opp\":[[500000,700],[1000000,750],[1500000,850],[2000000,1000]]}]}";

int main(void)
{
    struct gov_sim_profile *p = malloc(sizeof(*p));
    struct gov_sim_oracle *orc = malloc(sizeof(*orc));
    struct gov_sim_workload w = {0};
    char err[512];
    CHECK(p && orc);
    if (!p || !orc)
        return et_finish();
    CHECK_MSG(gov_sim_profile_parse(profile_json, p, err, sizeof(err)) == 0, "%s", err);
    struct gov_sim_options o;
    gov_sim_options_defaults(&o);
    o.duration_s = 100; /* 96 runs: short enough for the sanitizer builds */
    CHECK_EQ_INT(gov_sim_workload_load("chat", o.duration_s, 3, &w, err, sizeof(err)), 0);

    /* a static configuration: decode at the floor runs exactly the floor's decode speed */
    struct gov_sim_options fx = o;
    fx.fixed_clocks = true;
    fx.fixed_prefill_frac = 1;
    fx.fixed_decode_frac = 0;
    struct gov_sim_result r;
    CHECK_EQ_INT(gov_sim_run(p, &w, "performance", &fx, &r, NULL, err, sizeof(err)), 0);
    /* t = max(40 ms, 0.1 / 2 GHz = 50 ms) + 0.2 * min(...) = 58 ms at 500 MHz x 4 cores */
    CHECK_NEAR(r.decode_tokens_per_s, 1 / 0.058, 0.01);
    fx.fixed_decode_frac = 1;
    CHECK_EQ_INT(gov_sim_run(p, &w, "powersave", &fx, &r, NULL, err, sizeof(err)), 0);
    /* at 2 GHz: max(40, 12.5) + 0.2 * 12.5 = 42.5 ms, even under powersave */
    CHECK_NEAR(r.decode_tokens_per_s, 1 / 0.0425, 0.01);

    /* the oracle against every pair */
    CHECK_MSG(gov_sim_oracle(p, &w, &o, orc, err, sizeof(err)) == 0, "%s", err);
    CHECK(orc->found);
    CHECK_STR(orc->result.policy, "oracle");
    const double s = o.tunables.decode_slowdown_max_pct / 100;
    CHECK(orc->result.decode_tokens_per_s >= (1 - s) * orc->performance.decode_tokens_per_s);
    CHECK(orc->result.ttft_p99_ms <= (1 + s) * orc->performance.ttft_p99_ms);
    CHECK(orc->result.wall_joules_per_token < orc->performance.wall_joules_per_token);
    /* every (prefill clock, decode clock, decode threads) triple: the plant has 4 cores, the
     * oracle searches decode's thread count with the clock */
    double best = INFINITY;
    unsigned bp = 0, bd = 0, bt = 0;
    static const double frac[] = {0, 1.0 / 3, 2.0 / 3, 1};
    fx.fixed_threads = true;
    for (unsigned t = 1; t <= 4; t++)
        for (unsigned i = 0; i < 4; i++)
            for (unsigned j = 0; j < 4; j++) {
                fx.fixed_prefill_frac = frac[i];
                fx.fixed_decode_frac = frac[j];
                fx.fixed_decode_threads = t;
                CHECK_EQ_INT(gov_sim_run(p, &w, "schedutil", &fx, &r, NULL, err, sizeof(err)), 0);
                bool ok = r.decode_tokens_per_s >= (1 - s) * orc->performance.decode_tokens_per_s &&
                          r.ttft_p99_ms <= (1 + s) * orc->performance.ttft_p99_ms;
                if (ok && r.wall_joules_per_token < best)
                    best = r.wall_joules_per_token, bp = i, bd = j, bt = t;
            }
    printf("oracle: prefill %u MHz decode %u MHz, %u threads, %.4f J/token wall (%u runs); every "
           "triple: prefill step %u decode step %u, %u threads, %.4f\n",
           orc->prefill_khz / 1000, orc->decode_khz / 1000, orc->decode_threads,
           orc->result.wall_joules_per_token, orc->runs, bp, bd, bt, best);
    CHECK_MSG(orc->result.wall_joules_per_token <= best * 1.000001, "oracle %.5f vs best %.5f",
              orc->result.wall_joules_per_token, best);
    CHECK_EQ_INT(orc->decode_threads, bt);
    CHECK_EQ_INT(orc->engine_threads, 4);
    CHECK_STR(orc->decode_cluster, "policy0");
    /* performance, then decode's and prefill's clocks, then decode at 3, 2 and 1 threads */
    CHECK_EQ_INT(orc->runs, 1 + 4 + 3 + 3 * 4);

    /* thread_lever = 0: the oracle searches the clocks only */
    struct gov_sim_options o0 = o;
    CHECK_EQ_INT(gov_tunables_set(&o0.tunables, "thread_lever", "0", err, sizeof(err)), 0);
    CHECK_MSG(gov_sim_oracle(p, &w, &o0, orc, err, sizeof(err)) == 0, "%s", err);
    CHECK_EQ_INT(orc->runs, 1 + 4 + 3);
    CHECK_EQ_INT(orc->decode_threads, 4);

    /* the sweep */
    static const char *const values[] = {"0", "10"};
    static const char *const pol[] = {"balanced", "performance"};
    struct gov_sim_result sw[4];
    CHECK_MSG(gov_sim_sweep(p, &w, &o, "decode_slowdown_max_pct", values, 2, pol, 2, sw, err,
                            sizeof(err)) == 0,
              "%s", err);
    CHECK_STR(sw[0].policy, "balanced");
    CHECK_STR(sw[3].policy, "performance");
    /* a larger slowdown budget lets balanced decode slower and cheaper; performance ignores it */
    CHECK(sw[2].decode_tokens_per_s < sw[0].decode_tokens_per_s);
    CHECK(sw[2].wall_joules_per_token < sw[0].wall_joules_per_token);
    CHECK_NEAR(sw[3].wall_joules_per_token, sw[1].wall_joules_per_token, 1e-9);
    FILE *m = tmpfile();
    CHECK(m != NULL);
    if (m) {
        gov_sim_write_sweep(m, "decode_slowdown_max_pct", values, 2, sw, 2);
        gov_sim_write_oracle(m, orc, sw, 2, 5);
        rewind(m);
        char buf[4096];
        size_t len = fread(buf, 1, sizeof(buf) - 1, m);
        buf[len] = 0;
        fclose(m);
        CHECK_CONTAINS(buf, "sweep of decode_slowdown_max_pct");
        CHECK_CONTAINS(buf, "\n10 ");
        CHECK_CONTAINS(buf, "oracle: engine clusters at");
        CHECK_CONTAINS(buf, "oracle: threads 4 in prefill");
    }
    static const char *const bad[] = {"77"};
    CHECK(gov_sim_sweep(p, &w, &o, "decode_slowdown_max_pct", bad, 1, pol, 1, sw, err,
                        sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "decode_slowdown_max_pct=77");
    CHECK(gov_sim_sweep(p, &w, &o, "no_such_key", values, 1, pol, 1, sw, err, sizeof(err)) ==
          -EINVAL);
    CHECK_CONTAINS(err, "no_such_key");
    gov_sim_workload_free(&w);
    free(orc);
    free(p);
    return et_finish();
}
