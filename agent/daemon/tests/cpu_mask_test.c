/* CPU lists travel from the governor to the telemetry's power model as bitmaps: a cluster of
 * CPUs 0-3,8-11 or 0,2,4 gives the model every one of its CPUs (the text "0-3,8-11" parsed back
 * with sscanf gave 0-3 only, and "0,2,4" gave CPU 0 only). The first part checks the agent's
 * spreading; the second the governor's status on a fake sysfs tree: cpu_mask says the same as
 * the cpus text, CPU for CPU. */
#include <math.h>
#include <string.h>

#include "daemon_parts.h"
#include "ember_test.h"
#include "governor/backend.h"

static void set_cpus(struct gov_status_cluster *c, const unsigned *cpus, unsigned n)
{
    memset(c->cpu_mask, 0, sizeof(c->cpu_mask));
    for (unsigned i = 0; i < n; i++)
        c->cpu_mask[cpus[i] / 64] |= 1ULL << (cpus[i] % 64);
}

static void test_spread(void)
{
    struct gov_status st;
    memset(&st, 0, sizeof(st));
    st.n_clusters = 3;
    const unsigned a[] = {0, 1, 2, 3, 8, 9, 10, 11}, b[] = {4, 6, 12}, c[] = {200};
    set_cpus(&st.c[0], a, 8);
    snprintf(st.c[0].cpus, sizeof(st.c[0].cpus), "0-3,8-11");
    st.c[0].cur_khz = 1800000;
    st.c[0].util = 0.5;
    set_cpus(&st.c[1], b, 3);
    snprintf(st.c[1].cpus, sizeof(st.c[1].cpus), "4,6,12");
    st.c[1].cur_khz = 1000000;
    st.c[1].util = NAN;
    set_cpus(&st.c[2], c, 1);
    st.c[2].cur_khz = 2400000;
    st.c[2].util = 1.0;
    double util[GOV_MAX_CPUS], freq[GOV_MAX_CPUS];
    unsigned n = daemon_spread_per_cpu(&st, util, freq, GOV_MAX_CPUS);
    CHECK_EQ_INT((int)n, 8 + 3 + 1);
    for (unsigned i = 0; i < 8; i++) {
        CHECK_NEAR(util[i], 0.5, 0);
        CHECK_NEAR(freq[i], 1800, 0);
    }
    for (unsigned i = 8; i < 11; i++) {
        CHECK_NEAR(util[i], 0, 0); /* unknown utilisation counts as idle */
        CHECK_NEAR(freq[i], 1000, 0);
    }
    CHECK_NEAR(freq[11], 2400, 0); /* a CPU beyond the first 64: the second word */
    CHECK_EQ_INT((int)daemon_spread_per_cpu(&st, util, freq, 5), 5); /* the cap holds */
}

/* Parses the cpus text back (test-side only, with the governor's own list parser) and compares
 * it with the mask. */
static void check_mask_matches_text(const struct gov_status_cluster *c)
{
    uint16_t cpus[GOV_HW_MAX_CPUS];
    size_t n = 0;
    CHECK_EQ_INT(gov_parse_cpu_list(c->cpus, cpus, GOV_HW_MAX_CPUS, &n), 0);
    unsigned in_mask = 0;
    for (unsigned cpu = 0; cpu < GOV_MAX_CPUS; cpu++)
        in_mask += (unsigned)(c->cpu_mask[cpu / 64] >> (cpu % 64) & 1);
    CHECK_EQ_INT((int)in_mask, (int)n);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(c->cpu_mask[cpus[i] / 64] >> (cpus[i] % 64) & 1, "%s: CPU %u not in the mask",
                  c->name, cpus[i]);
}

static void test_governor_status(void)
{
    char root[1024];
    snprintf(root, sizeof(root), "%s/tests/sysfs-trees/rk3588-3cluster", EMBER_SOURCE_DIR);
    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    p.sysfs_root = root;
    p.saved_path = "/nonexistent/ember-cpu-mask-test.saved";
    p.monitor_only = true; /* reads only: the tree stays as it is */
    struct gov_governor *g;
    char err[256];
    CHECK_EQ_INT(gov_governor_new(&p, &g, err, sizeof(err)), 0);
    struct gov_status st;
    gov_governor_status(g, &st);
    CHECK(st.n_clusters == 3);
    for (unsigned i = 0; i < st.n_clusters; i++)
        check_mask_matches_text(&st.c[i]);
    double util[GOV_MAX_CPUS], freq[GOV_MAX_CPUS];
    CHECK_EQ_INT((int)daemon_spread_per_cpu(&st, util, freq, GOV_MAX_CPUS), 8);
    gov_governor_free(g);
}

int main(void)
{
    test_spread();
    test_governor_status();
    return et_finish();
}
