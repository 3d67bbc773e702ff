/* Every built-in profile reproduces the figures it cites (wall idle, all-core load at the wall
 * and at the package, sustained clock, load temperature, decode tokens/s) within +-15 %, and
 * carries at least the wall idle, wall load and decode figures. Plus the plant terms beyond the
 * package: a profile without a "wall" section has wall = package; the wall adds board, DRAM
 * traffic and PSU loss in the right proportions; PL2 is allowed for about tau and then PL1
 * holds; reference entries are validated with errors naming the field. The table of modelled
 * vs cited figures is printed so ctest's log carries it. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ember_test.h"
#include "governor/sim.h"

#define TOLERANCE 0.15

static void test_profile_references(const char *name)
{
    struct gov_sim_profile *p = malloc(sizeof(*p));
    char err[512];
    CHECK(p != NULL);
    if (!p)
        return;
    int rc = gov_sim_profile_load(name, p, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s: %s", name, err);
    if (rc) {
        free(p);
        return;
    }
    struct gov_sim_steady s;
    CHECK_EQ_INT(gov_sim_steady_state(p, NAN, &s), 0);
    printf("%s: idle %.2f W wall (%.2f package), load %.2f W wall (%.2f package) at %.0f MHz "
           "%.1f C, decode %.1f tok/s, prefill %.1f tok/s\n",
           name, s.wall_idle_w, s.package_idle_w, s.wall_load_w, s.package_load_w, s.sustained_mhz,
           s.load_temp_c, s.decode_tok_s, s.prefill_tok_s);
    bool has_idle = false, has_load = false, has_decode = false;
    for (unsigned i = 0; i < p->n_refs; i++) {
        const struct gov_sim_reference *r = &p->refs[i];
        double got = gov_sim_steady_figure(&s, r->figure);
        double rel = (got - r->value) / r->value;
        printf("  %-15s cited %8.2f model %8.2f (%+5.1f %%)%s\n", r->figure, r->value, got,
               100 * rel, r->estimate ? "  [estimate]" : "");
        CHECK_MSG(isfinite(got) && fabs(rel) <= TOLERANCE,
                  "%s: %s modelled %.3f vs cited %.3f (%+.1f %%, tolerance 15 %%): %s", name,
                  r->figure, got, r->value, 100 * rel, r->source);
        has_idle |= strcmp(r->figure, "wall_idle_w") == 0;
        has_load |= strcmp(r->figure, "wall_load_w") == 0;
        has_decode |= strcmp(r->figure, "decode_tok_s") == 0;
    }
    CHECK_MSG(has_idle && has_load && has_decode,
              "%s: cites wall_idle_w, wall_load_w and decode_tok_s", name);
    free(p);
}

static const char base_profile[] =
    "{\"name\":\"t\",\"power\":{\"uncore_w\":1,\"idle_leak_fraction\":0.5%s},"
    "\"thermal\":{\"ambient_c\":25,\"r_jc\":1,\"c_j\":1,\"r_ca\":3,\"c_c\":20,\"tjmax_c\":110},"
    "\"performance\":{\"prefill_tok_per_gcycle\":5,\"decode_mem_ms\":40,"
    "\"decode_gcycles_per_token\":0.1,\"weights_gb\":0.64},"
    "%s"
    "\"clusters\":[{\"name\":\"policy0\",\"cpus\":4,\"first_cpu\":0,\"engine\":true,"
    "\"ceff_nf\":2.0,\"leak_w\":0.2,\"leak_ref_v\":1.0,\"frequency_table\":false,"
    "\"opp\":[[500000,700],[1000000,800],[2000000,900],[3000000,1100]]}]}";

static int parse(struct gov_sim_profile *p, const char *power_extra, const char *more, char *err,
                 size_t err_len)
{
    char json[4096];
    snprintf(json, sizeof(json), base_profile, power_extra, more);
    return gov_sim_profile_parse(json, p, err, err_len);
}

static void test_wall_terms(void)
{
    struct gov_sim_profile *p = malloc(sizeof(*p));
    struct gov_sim_workload w = {0};
    char err[512];
    CHECK(p != NULL);
    if (!p)
        return;
    /* no wall section: the wall is the package */
    CHECK_MSG(parse(p, "", "", err, sizeof(err)) == 0, "%s", err);
    struct gov_sim_options o;
    gov_sim_options_defaults(&o);
    o.duration_s = 60;
    struct gov_sim_result r;
    CHECK_EQ_INT(gov_sim_workload_load("chat", o.duration_s, 1, &w, err, sizeof(err)), 0);
    CHECK_EQ_INT(gov_sim_run(p, &w, "performance", &o, &r, NULL, err, sizeof(err)), 0);
    CHECK_NEAR(r.wall_energy_j, r.energy_j, 1e-6 * r.energy_j);
    CHECK_NEAR(r.wall_joules_per_token, r.joules_per_token, 1e-9);

    /* board 2 W + DRAM 0.5 W + 0.1 W per GB/s, 80 % PSU + 0.3 W: every term where it belongs */
    CHECK_MSG(parse(p, "",
                    "\"wall\":{\"board_w\":2,\"dram_idle_w\":0.5,\"dram_w_per_gbs\":0.1,"
                    "\"psu_efficiency\":0.8,\"psu_fixed_w\":0.3},",
                    err, sizeof(err)) == 0,
              "%s", err);
    struct gov_sim_result rw;
    CHECK_EQ_INT(gov_sim_run(p, &w, "performance", &o, &rw, NULL, err, sizeof(err)), 0);
    double t = rw.sim_s;
    /* DRAM traffic: decode streams weights_gb per token; prefill once per 64-token batch */
    unsigned decode_tokens = rw.gen_tokens - rw.requests;
    double traffic_gb = 0.64 * decode_tokens + 0.64 * rw.prompt_tokens / 64.0;
    double expect = (rw.energy_j + (2 + 0.5) * t + 0.1 * traffic_gb) / 0.8 + 0.3 * t;
    CHECK_MSG(fabs(rw.wall_energy_j - expect) < 0.01 * expect, "wall %.2f J, expected %.2f J",
              rw.wall_energy_j, expect);
    CHECK_NEAR(rw.wall_prefill_energy_j + rw.wall_decode_energy_j + rw.wall_idle_energy_j,
               rw.wall_energy_j, 1e-6 * rw.wall_energy_j);
    CHECK(rw.wall_joules_per_token_with_idle > rw.wall_joules_per_token);
    CHECK(rw.wall_joules_per_token > 1.5 * rw.joules_per_token);
    gov_sim_workload_free(&w);

    /* PL1 6 W, PL2 12 W, tau 10 s: a steady load draws ~PL2 first, ~PL1 after a few tau */
    CHECK_MSG(parse(p, ",\"firmware_power_limit_w\":6,\"pl2_w\":12,\"pl_tau_s\":10", "", err,
                    sizeof(err)) == 0,
              "%s", err);
    struct gov_sim_trace tr = {0};
    o.duration_s = 120;
    CHECK_EQ_INT(gov_sim_workload_load("steady", o.duration_s, 1, &w, err, sizeof(err)), 0);
    CHECK_EQ_INT(gov_sim_run(p, &w, "performance", &o, &r, &tr, err, sizeof(err)), 0);
    double early = 0, late = 0;
    unsigned ne = 0, nl = 0;
    for (size_t i = 0; i < tr.n; i++) {
        if (tr.pts[i].phase == GOV_PHASE_IDLE)
            continue;
        if (tr.pts[i].t_s < 3)
            early += tr.pts[i].power_w, ne++;
        else if (tr.pts[i].t_s > 60 && tr.pts[i].t_s < 110)
            late += tr.pts[i].power_w, nl++;
    }
    CHECK(ne > 0 && nl > 0);
    if (ne && nl) {
        early /= ne, late /= nl;
        printf("PL2/tau: busy package %.2f W in the first 3 s, %.2f W after 60 s\n", early, late);
        CHECK_MSG(early > 9 && early <= 12.0 * 1.02, "early %.2f W (PL2 12 W)", early);
        CHECK_MSG(late <= 6 * 1.05 && late > 5, "late %.2f W (PL1 6 W)", late);
    }
    gov_sim_trace_free(&tr);
    gov_sim_workload_free(&w);

    /* errors name the field */
    CHECK(parse(p, ",\"firmware_power_limit_w\":6,\"pl2_w\":4", "", err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "power.pl2_w");
    CHECK(parse(p, "", "\"wall\":{\"psu_efficiency\":1.5},", err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "wall.psu_efficiency");
    CHECK(parse(p, "",
                "\"references\":[{\"figure\":\"wall_idel_w\",\"value\":3,\"source\":\"x\"}],", err,
                sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "references[0].figure");
    CHECK(parse(p, "", "\"references\":[{\"figure\":\"wall_idle_w\",\"value\":3}],", err,
                sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "references[0].source");
    CHECK(parse(p, "",
                "\"references\":[{\"figure\":\"wall_idle_w\",\"value\":-3,\"source\":\"x\"}],", err,
                sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "references[0].value");
    free(p);
}

int main(int argc, char **argv)
{
    test_wall_terms();
    if (argc > 1) {
        test_profile_references(argv[1]);
    } else {
        for (const char *const *b = gov_sim_builtin_profiles(); *b; b++)
            test_profile_references(*b);
    }
    return et_finish();
}
