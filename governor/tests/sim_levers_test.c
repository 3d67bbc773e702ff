/* The memory lever in the simulator: the board's own devfreq governor follows the kernel's
 * simple_ondemand rule on the bus load; with thresholds that keep up with decode traffic the
 * lever saves only in prefill (lowest memory clock) and costs no decode speed; with the kernel's
 * default thresholds (90/5) decode traffic at 38 % of peak lets the board's governor walk the
 * clock down and decode collapses, which the lever prevents. The oracle searches the memory
 * clock too. The profile parser refuses a broken memory section by name. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ember_test.h"
#include "governor/sim.h"

/* a format: the board governor's upthreshold and downdifferential go in */
#define MEMORY_JSON                                                                   \
    "{\"name\":\"mem\",\"power\":{\"uncore_w\":0.5,\"idle_leak_fraction\":0.5},"      \
    "\"thermal\":{\"ambient_c\":25,\"r_jc\":1,\"c_j\":1,\"r_ca\":5,\"c_c\":20,"       \
    "\"passive_trip_c\":90},"                                                         \
    "\"performance\":{\"prefill_tok_per_gcycle\":5,\"decode_mem_ms\":40,"             \
    "\"decode_gcycles_per_token\":0.1,\"weights_gb\":0.6},"                           \
    "\"memory\":{\"mhz\":[500,1000,2000],\"peak_gbs\":40,\"extra_w_at_top\":0.5,"     \
    "\"upthreshold\":%d,\"downdifferential\":%d},"                                    \
    "\"wall\":{\"board_w\":1.5,\"dram_idle_w\":0.3,\"dram_w_per_gbs\":0.05,"          \
    "\"psu_efficiency\":0.85},"                                                       \
    "\"clusters\":[{\"name\":\"policy0\",\"cpus\":4,\"first_cpu\":0,\"engine\":true," \
    "\"ceff_nf\":0.4,\"leak_w\":0.05,\"leak_ref_v\":1.0,"                             \
    "\"opp\":[[500000,700],[1000000,750],[1500000,850],[2000000,1000]]}]}"

static int load(struct gov_sim_profile *p, int up, int down)
{
    char json[2048], err[256];
    snprintf(json, sizeof(json), MEMORY_JSON, up, down);
    int r = gov_sim_profile_parse(json, p, err, sizeof(err));
    CHECK_MSG(r == 0, "%s", err);
    return r;
}

static void run(const struct gov_sim_profile *p, const struct gov_sim_workload *w,
                const char *policy, int lever, struct gov_sim_result *r)
{
    struct gov_sim_options o;
    char err[256];
    gov_sim_options_defaults(&o);
    o.duration_s = 120;
    gov_tunables_set(&o.tunables, "memory_lever", lever ? "1" : "0", err, sizeof(err));
    CHECK_MSG(gov_sim_run(p, w, policy, &o, r, NULL, err, sizeof(err)) == 0, "%s", err);
}

int main(void)
{
    struct gov_sim_profile *p = malloc(sizeof(*p));
    struct gov_sim_oracle *orc = malloc(sizeof(*orc));
    struct gov_sim_workload w = {0};
    char err[512];
    CHECK(p && orc);
    if (!p || !orc)
        return et_finish();
    CHECK_EQ_INT(gov_sim_workload_load("chat", 120, 3, &w, err, sizeof(err)), 0);

    /* a board governor that keeps up (bus load 0.6 GB / 40 ms = 15 GB/s = 37.5 % of peak) */
    struct gov_sim_result on, off, perf;
    if (load(p, 30, 10) == 0) {
        run(p, &w, "balanced", 1, &on);
        run(p, &w, "balanced", 0, &off);
        run(p, &w, "performance", 0, &perf);
        CHECK_MSG(on.wall_joules_per_token < off.wall_joules_per_token,
                  "lever %.4f vs off %.4f J/token", on.wall_joules_per_token,
                  off.wall_joules_per_token);
        CHECK_NEAR(on.decode_tokens_per_s / off.decode_tokens_per_s, 1.0, 0.01);
        /* the package does not see the memory's power: only the wall moves */
        CHECK_NEAR(on.joules_per_token / off.joules_per_token, 1.0, 0.01);
        /* 40 ms memory + 0.2 x 12.5 ms compute per token at the top clocks */
        CHECK_NEAR(perf.decode_tokens_per_s, 1000.0 / 42.5, 1.0);

        struct gov_sim_options o;
        gov_sim_options_defaults(&o);
        o.duration_s = 120;
        CHECK_EQ_INT(gov_sim_oracle(p, &w, &o, orc, err, sizeof(err)), 0);
        CHECK(orc->found);
        CHECK_NEAR(orc->mem_prefill_mhz, 500, 1e-9); /* prefill needs little bandwidth */
        CHECK_NEAR(orc->mem_decode_mhz, 2000, 1e-9); /* decode needs it all */
        CHECK(orc->result.wall_joules_per_token <= on.wall_joules_per_token * 1.03);
    }

    /* the kernel's simple_ondemand defaults: the board's governor starves decode */
    if (load(p, 90, 5) == 0) {
        run(p, &w, "performance", 0, &perf);
        run(p, &w, "balanced", 1, &on);
        run(p, &w, "balanced", 0, &off);
        CHECK_MSG(perf.decode_tokens_per_s < 0.5 * on.decode_tokens_per_s,
                  "performance %.2f tok/s, balanced with the lever %.2f", perf.decode_tokens_per_s,
                  on.decode_tokens_per_s);
        CHECK(off.decode_tokens_per_s < 0.5 * on.decode_tokens_per_s);
        CHECK(on.wall_joules_per_token < off.wall_joules_per_token);
    }

    /* broken memory sections are refused by name */
    static const struct {
        int up, down;
        const char *field;
    } bad[] = {{50, 50, "memory.downdifferential"}, {0, 5, "memory.upthreshold"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[2048];
        snprintf(json, sizeof(json), MEMORY_JSON, bad[i].up, bad[i].down);
        CHECK_EQ_INT(gov_sim_profile_parse(json, p, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, bad[i].field);
    }
    char json[2048];
    snprintf(json, sizeof(json), MEMORY_JSON, 90, 5);
    char *at = strstr(json, "[500,1000,2000]");
    if (at) {
        memcpy(at, "[500,2000,1000]", 15);
        CHECK_EQ_INT(gov_sim_profile_parse(json, p, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "memory.mhz[2]");
    }
    /* the built-in rk3588 profile has the lever, the x86 ones do not */
    CHECK_EQ_INT(gov_sim_profile_load("rk3588", p, err, sizeof(err)), 0);
    CHECK_EQ_INT(p->n_mem_mhz, 4);
    CHECK_EQ_INT(gov_sim_profile_load("n100", p, err, sizeof(err)), 0);
    CHECK_EQ_INT(p->n_mem_mhz, 0);
    gov_sim_workload_free(&w);
    free(orc);
    free(p);
    return et_finish();
}
