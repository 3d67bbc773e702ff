/* The levers beyond the CPU clock against the fake trees: the memory controller's devfreq
 * limits (rk3588-3cluster has a "dmc" device and a GPU device that must stay untouched) and the
 * energy_performance_preference (amd-pstate-epp-8c, intel-pstate-n100), each set per engine
 * phase by balanced, saved before the first write, given back when a policy that does not use
 * the lever takes over, restored on exit and after a crash; off by tunable; "not available"
 * (nothing written, no error) where the tree lacks the files. */
#include <errno.h>
#include <math.h>

#include "common/timeutil.h"
#include "governor/governor.h"
#include "govhw_util.h"

#define MS (1000000ULL)

static const char *DMC = "sys/class/devfreq/dmc";
static const char *GPU = "sys/class/devfreq/fb000000.gpu";

static const char *dev(const char *root, const char *devdir, const char *file)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "%s/%s", devdir, file);
    return govhw_get(root, rel);
}

static const char *epp(const char *root, const char *policy)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/%s/energy_performance_preference",
             policy);
    return govhw_get(root, rel);
}

static struct gov_governor *make(const char *root, const char *policy, const char *key,
                                 const char *value, char *saved, size_t cap)
{
    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    snprintf(saved, cap, "%s/run/ember/governor.saved", root);
    p.sysfs_root = root;
    p.saved_path = saved;
    snprintf(p.tunables.policy, sizeof(p.tunables.policy), "%s", policy);
    char err[512] = "";
    if (key)
        CHECK_EQ_INT(gov_tunables_set(&p.tunables, key, value, err, sizeof(err)), 0);
    struct gov_governor *g = NULL;
    int r = gov_governor_new(&p, &g, err, sizeof(err));
    CHECK_MSG(r == 0, "new(%s, %s): %d %s", root, policy, r, err);
    return g;
}

/* Ticks every 100 ms for ms milliseconds, from *t. */
static void run_for(struct gov_governor *g, uint64_t *t, unsigned ms, enum gov_phase ph)
{
    for (unsigned k = 0; k < ms / 100; k++) {
        *t += 100 * MS;
        gov_governor_tick(g, *t, ph, NAN, 10.0, NULL);
    }
}

static void test_dmc(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("rk3588-3cluster", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "balanced", NULL, NULL, saved, sizeof(saved));
    if (!g)
        goto out;
    struct gov_status s;
    gov_governor_status(g, &s);
    CHECK_EQ_INT(s.n_memory, 1); /* the GPU's devfreq device is not a memory controller */
    CHECK_STR(s.memory[0].name, "dmc");
    CHECK_STR(s.memory[0].governor, "dmc_ondemand");
    CHECK_EQ_INT(s.memory[0].max_hz, 2112000000ULL);

    uint64_t t = 1000 * MS;
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    /* decode is memory-bound: the memory clock is pinned at its top */
    CHECK_STR(dev(root, DMC, "min_freq"), "2112000000");
    CHECK_STR(dev(root, DMC, "max_freq"), "2112000000");
    CHECK_STR(dev(root, DMC, "governor"), "dmc_ondemand"); /* its governor is kept */
    /* the originals were saved before the first write, the memory limits with them */
    char json[8192];
    CHECK_EQ_INT(cmn_read_file(saved, json, sizeof(json), NULL), 0);
    CHECK_CONTAINS(json, "\"devfreq\"");
    CHECK_CONTAINS(json, "528000000");
    run_for(g, &t, 300, GOV_PHASE_PREFILL);
    /* prefill: memory_prefill_pct (default 0) of the range */
    CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
    CHECK_STR(dev(root, DMC, "max_freq"), "528000000");
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    CHECK_STR(dev(root, DMC, "max_freq"), "2112000000");
    /* idle: the lowest at once (the next request starts with a prefill) */
    run_for(g, &t, 300, GOV_PHASE_IDLE);
    CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
    CHECK_STR(dev(root, DMC, "max_freq"), "528000000");
    gov_governor_status(g, &s);
    CHECK_NEAR(s.memory_target_frac, 0.0, 1e-12);
    char *js = gov_status_to_json(&s);
    CHECK(js && strstr(js, "\"memory\":[{\"name\":\"dmc\""));
    free(js);
    /* the GPU's device was never touched */
    CHECK_STR(dev(root, GPU, "min_freq"), "300000000");
    CHECK_STR(dev(root, GPU, "max_freq"), "1000000000");

    /* a policy without the lever gives the board its own limits back */
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    CHECK_EQ_INT(gov_governor_set_policy(g, "ondemand", err, sizeof(err)), 0);
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
    CHECK_STR(dev(root, DMC, "max_freq"), "2112000000");
    gov_governor_status(g, &s);
    CHECK(isnan(s.memory_target_frac));

    /* exit restores; so does the next start after a crash */
    CHECK_EQ_INT(gov_governor_set_policy(g, "balanced", err, sizeof(err)), 0);
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    CHECK_STR(dev(root, DMC, "min_freq"), "2112000000");
    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
    CHECK_STR(dev(root, DMC, "max_freq"), "2112000000");
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    CHECK_STR(dev(root, DMC, "min_freq"), "2112000000");
    gov_governor_free(g); /* no restore: as a crash leaves it */
    g = make(root, "powersave", NULL, NULL, saved, sizeof(saved));
    if (g) {
        CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
        CHECK_STR(dev(root, DMC, "max_freq"), "2112000000");
        gov_governor_free(g);
    }

    /* memory_lever = 0 leaves the device alone */
    g = make(root, "balanced", "memory_lever", "0", saved, sizeof(saved));
    if (g) {
        run_for(g, &t, 300, GOV_PHASE_DECODE);
        CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
        run_for(g, &t, 3000, GOV_PHASE_IDLE);
        CHECK_STR(dev(root, DMC, "max_freq"), "2112000000");
        CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
        gov_governor_free(g);
    }
    /* memory_prefill_pct picks the step at or above that share of the range */
    g = make(root, "balanced", "memory_prefill_pct", "50", saved, sizeof(saved));
    if (g) {
        run_for(g, &t, 300, GOV_PHASE_PREFILL);
        CHECK_STR(dev(root, DMC, "max_freq"), "1560000000"); /* 50 % = 1320 MHz -> 1560 */
        CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
        gov_governor_free(g);
    }

    /* a device whose files are garbage is left out with one quirk, the rest still works */
    govhw_put(root, "sys/devices/platform/dmc/devfreq/dmc/available_frequencies", "fast slow\n");
    g = make(root, "balanced", NULL, NULL, saved, sizeof(saved));
    if (g) {
        gov_governor_status(g, &s);
        CHECK_EQ_INT(s.n_memory, 0);
        struct gov_event e;
        int quirks = 0;
        uint64_t t2 = t;
        run_for(g, &t2, 300, GOV_PHASE_DECODE);
        while (gov_events_pop(gov_governor_events(g), &e))
            quirks += e.kind == GOV_EVENT_HW_QUIRK && strstr(e.detail, "memory controller dmc");
        CHECK_EQ_INT(quirks, 1);
        CHECK_STR(dev(root, DMC, "min_freq"), "528000000");
        CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
        gov_governor_free(g);
    }
out:
    govhw_rm_rf(root);
}

/* The saved-state parser takes files without "devfreq" (written before the lever) and refuses
 * a malformed one. */
static void test_saved_devfreq_parse(void)
{
    struct gov_saved_state st;
    char err[256];
    const char *old = "{\"version\":1,\"sysfs_root\":\"/\",\"pid\":1,\"wall_ns\":0,\"boost\":-1,"
                      "\"no_turbo\":-1,\"min_perf_pct\":-1,\"max_perf_pct\":-1,\"policies\":[]}";
    CHECK_EQ_INT(gov_saved_parse(old, strlen(old), &st, err, sizeof(err)), 0);
    CHECK_EQ_INT(st.ndev, 0);
    const char *bad = "{\"version\":1,\"sysfs_root\":\"/\",\"pid\":1,\"wall_ns\":0,\"boost\":-1,"
                      "\"no_turbo\":-1,\"min_perf_pct\":-1,\"max_perf_pct\":-1,\"policies\":[],"
                      "\"devfreq\":[{\"name\":\"../dmc\",\"min_hz\":1,\"max_hz\":2}]}";
    CHECK_EQ_INT(gov_saved_parse(bad, strlen(bad), &st, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "devfreq[0].name");
    const char *neg = "{\"version\":1,\"sysfs_root\":\"/\",\"pid\":1,\"wall_ns\":0,\"boost\":-1,"
                      "\"no_turbo\":-1,\"min_perf_pct\":-1,\"max_perf_pct\":-1,\"policies\":[],"
                      "\"devfreq\":[{\"name\":\"dmc\",\"min_hz\":-5,\"max_hz\":2}]}";
    CHECK_EQ_INT(gov_saved_parse(neg, strlen(neg), &st, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "min_hz");
    uint64_t hz[8];
    size_t n = 0;
    CHECK_EQ_INT(gov_parse_hz_list("2112000000 528000000 528000000\n", hz, 8, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(hz[0], 528000000ULL);
    CHECK_EQ_INT(gov_parse_hz_list("1 2 x", hz, 8, &n), -EINVAL);
    CHECK_EQ_INT(gov_parse_hz_list("1 2 3", hz, 2, &n), -ERANGE);
}

static void epp_cycle(const char *tree, const char *policy0, const char *original)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree(tree, root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "balanced", NULL, NULL, saved, sizeof(saved));
    if (!g)
        goto out;
    CHECK_STR(epp(root, policy0), original);
    uint64_t t = 1000 * MS;
    run_for(g, &t, 300, GOV_PHASE_PREFILL);
    CHECK_STR(epp(root, policy0), "performance");
    run_for(g, &t, 300, GOV_PHASE_DECODE);
    CHECK_STR(epp(root, policy0), "balance_performance");
    run_for(g, &t, 3000, GOV_PHASE_IDLE);
    CHECK_STR(epp(root, policy0), "power");
    struct gov_status s;
    gov_governor_status(g, &s);
    CHECK_STR(s.epp_target, "power");
    CHECK_STR(s.c[0].epp, "power");
    CHECK_EQ_INT(s.n_memory, 0); /* no devfreq on x86: the memory lever is not available */
    /* a policy without the lever gives the original back */
    CHECK_EQ_INT(gov_governor_set_policy(g, "schedutil", err, sizeof(err)), 0);
    run_for(g, &t, 300, GOV_PHASE_IDLE);
    CHECK_STR(epp(root, policy0), original);
    CHECK_EQ_INT(gov_governor_set_policy(g, "balanced", err, sizeof(err)), 0);
    run_for(g, &t, 300, GOV_PHASE_PREFILL);
    CHECK_STR(epp(root, policy0), "performance");
    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK_STR(epp(root, policy0), original);
    gov_governor_free(g);
    g = make(root, "balanced", "epp_lever", "0", saved, sizeof(saved));
    if (g) {
        run_for(g, &t, 300, GOV_PHASE_PREFILL);
        CHECK_STR(epp(root, policy0), original);
        CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
        gov_governor_free(g);
    }
out:
    govhw_rm_rf(root);
}

/* A tree without EPP files (acpi-cpufreq) runs balanced with nothing written for EPP. */
static void test_epp_absent(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "balanced", NULL, NULL, saved, sizeof(saved));
    if (g) {
        uint64_t t = 1000 * MS;
        run_for(g, &t, 300, GOV_PHASE_PREFILL);
        struct gov_status s;
        gov_governor_status(g, &s);
        CHECK_EQ_INT(s.write_errors, 0);
        CHECK_STR(s.c[0].epp, "");
        CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
        gov_governor_free(g);
    }
    govhw_rm_rf(root);
}

int main(void)
{
    test_saved_devfreq_parse();
    test_dmc();
    epp_cycle("amd-pstate-epp-8c", "policy0", "balance_performance");
    epp_cycle("intel-pstate-n100", "policy0", "balance_performance");
    test_epp_absent();
    return et_finish();
}
