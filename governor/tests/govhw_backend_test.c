/* The direct-sysfs backend against the fake trees (acpi-cpufreq, intel_pstate, the broken one,
 * amd-pstate-epp, the 3-cluster ARM board): discovery compared with each tree's expected.json,
 * then every kind of write, each checked in the file itself and through the read-back, and the
 * failures: a value the kernel rewrites (mismatch event), a write that cannot be read back, bad
 * values rejected before writing, garbled files named in the error. */
#include <errno.h>

#include "governor/backend.h"
#include "govhw_util.h"

static struct gov_backend *open_tree(const char *root)
{
    struct gov_backend_params p = {.sysfs_root = root, .impl = GOV_BACKEND_SYSFS};
    struct gov_backend *b = NULL;
    char err[512] = "";
    int r = gov_backend_open(&p, &b, err, sizeof(err));
    CHECK_MSG(r == 0, "open %s: %d %s", root, r, err);
    return b;
}

static size_t find_policy(const struct gov_backend *b, const char *name)
{
    for (size_t i = 0; i < gov_backend_policy_count(b); i++)
        if (strcmp(gov_backend_policy(b, i)->name, name) == 0)
            return i;
    return (size_t)-1;
}

/* Discovery matches expected.json. */
static void check_expected(const char *tree, const struct gov_backend *b)
{
    cJSON *exp = govhw_expected(tree);
    CHECK_MSG(exp != NULL, "%s: expected.json", tree);
    if (!exp)
        return;
    CHECK_EQ_INT(gov_backend_policy_count(b), govhw_num(exp, "num_policies"));
    const cJSON *pols = cJSON_GetObjectItem(exp, "policies");
    const cJSON *pe;
    cJSON_ArrayForEach(pe, pols)
    {
        size_t i = find_policy(b, pe->string);
        CHECK_MSG(i != (size_t)-1, "%s: %s not found", tree, pe->string);
        if (i == (size_t)-1)
            continue;
        const struct gov_hw_policy *p = gov_backend_policy(b, i);
        const cJSON *rel = cJSON_GetObjectItem(pe, "related_cpus");
        CHECK_EQ_INT(p->ncpus, cJSON_GetArraySize(rel));
        for (int k = 0; k < cJSON_GetArraySize(rel) && k < (int)p->ncpus; k++)
            CHECK_EQ_INT(p->cpus[k], cJSON_GetArrayItem(rel, k)->valueint);
        CHECK_EQ_INT(p->cpuinfo_min_khz, govhw_num(pe, "cpuinfo_min_khz"));
        CHECK_EQ_INT(p->cpuinfo_max_khz, govhw_num(pe, "cpuinfo_max_khz"));
        CHECK_EQ_INT(p->scaling_min_khz, govhw_num(pe, "scaling_min_khz"));
        const cJSON *smax = cJSON_GetObjectItem(pe, "scaling_max_khz");
        CHECK_EQ_INT(p->scaling_max_khz, cJSON_IsNull(smax) ? 0 : smax->valuedouble);
        const cJSON *fr = cJSON_GetObjectItem(pe, "available_frequencies_khz");
        int nf = cJSON_GetArraySize(fr);
        CHECK_MSG((int)p->nfreqs == nf, "%s %s: %u freqs, expected %d", tree, p->name, p->nfreqs,
                  nf);
        /* expected lists keep the kernel's order; ours is ascending */
        for (int k = 0; k < nf && k < (int)p->nfreqs; k++) {
            uint32_t want = (uint32_t)cJSON_GetArrayItem(fr, k)->valuedouble;
            int found = 0;
            for (unsigned j = 0; j < p->nfreqs; j++)
                found |= p->freqs_khz[j] == want;
            CHECK_MSG(found, "%s %s: %u kHz missing", tree, p->name, (unsigned)want);
        }
        for (unsigned j = 1; j < p->nfreqs; j++)
            CHECK(p->freqs_khz[j] > p->freqs_khz[j - 1]);
        CHECK_STR(p->driver, cJSON_GetObjectItem(exp, "scaling_driver")->valuestring);
        CHECK_STR(p->governor, cJSON_GetObjectItem(exp, "current_governor")->valuestring);
        const cJSON *govs = cJSON_GetObjectItem(exp, "available_governors");
        CHECK_EQ_INT(p->ngovernors, cJSON_GetArraySize(govs));
    }
    const cJSON *knobs = cJSON_GetObjectItem(exp, "knobs");
    const struct gov_hw_global *g = gov_backend_global(b);
    CHECK_EQ_INT(g->boost >= 0, cJSON_IsTrue(cJSON_GetObjectItem(knobs, "cpufreq_boost_global")));
    CHECK_EQ_INT(gov_backend_policy(b, 0)->epp[0] != 0,
                 cJSON_IsTrue(cJSON_GetObjectItem(knobs, "epp")));
    cJSON_Delete(exp);
}

static int events_of(struct gov_events *ev, enum gov_event_kind kind, const char *needle)
{
    int n = 0;
    for (size_t k = 0; k < ev->count; k++) {
        const struct gov_event *e = &ev->ring[(ev->head + k) % GOV_EVENTS_CAP];
        if (e->kind == kind && (!needle || strstr(e->detail, needle)))
            n++;
    }
    return n;
}

static void test_acpi(void)
{
    char root[PATH_MAX];
    CHECK(govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) == 0);
    struct gov_backend *b = open_tree(root);
    if (!b)
        goto out;
    check_expected("acpi-cpufreq-4c", b);
    CHECK_EQ_INT(gov_backend_impl_used(b), GOV_BACKEND_SYSFS);
    const struct gov_hw_policy *p = gov_backend_policy(b, 1);
    CHECK(p->has_setspeed);
    CHECK_EQ_INT(p->setspeed_khz, 0); /* "<unsupported>" */
    CHECK_EQ_INT(p->bios_limit_khz, 2901000);
    CHECK_EQ_INT(p->boost, 1);
    CHECK_EQ_INT(gov_backend_global(b)->pstate, GOV_PSTATE_NONE);
    CHECK_EQ_INT(gov_hw_policy_nearest_khz(p, 1700000), 1600000); /* tie: the lower */
    CHECK_EQ_INT(gov_hw_policy_nearest_khz(p, 5000000), 2901000);

    struct gov_events ev;
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_backend_set_governor(b, 1, "userspace", &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy1/scaling_governor"),
              "userspace");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"),
              "userspace"); /* through the cpuN/cpufreq link */
    CHECK_EQ_INT(gov_backend_set_speed(b, 1, 1800000, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy1/scaling_setspeed"),
              "1800000");
    CHECK_EQ_INT(gov_backend_set_governor(b, 1, "nosuch", &ev), -EINVAL);
    CHECK_EQ_INT(gov_backend_set_speed(b, 1, 5000000, &ev), -EINVAL); /* above cpuinfo max */
    /* Lowering both limits: min first would be fine, max first would clamp; both end right. */
    CHECK_EQ_INT(gov_backend_set_limits(b, 2, 1000000, 1500000, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy2/scaling_max_freq"),
              "1500000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy2/scaling_min_freq"),
              "1000000");
    CHECK_EQ_INT(gov_backend_set_limits(b, 2, 2000000, 2600000, &ev), 0); /* raising */
    CHECK_EQ_INT(gov_backend_policy(b, 2)->scaling_min_khz, 2000000);
    CHECK_EQ_INT(gov_backend_policy(b, 2)->scaling_max_khz, 2600000);
    CHECK_EQ_INT(gov_backend_set_limits(b, 2, 2600000, 2000000, &ev), -EINVAL); /* min > max */
    CHECK_EQ_INT(gov_backend_set_limits(b, 2, 100, 0, &ev), -EINVAL);
    CHECK_EQ_INT(gov_backend_set_boost(b, 0, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "0");
    CHECK_EQ_INT(gov_backend_set_policy_boost(b, 3, 0, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy3/boost"), "0");
    CHECK_EQ_INT(gov_backend_set_epp(b, 0, "power", &ev), -EOPNOTSUPP);
    CHECK_EQ_INT(gov_backend_set_perf_pct(b, 10, 90, &ev), -EOPNOTSUPP);
    CHECK_EQ_INT(gov_backend_set_no_turbo(b, 1, &ev), -EOPNOTSUPP);
    CHECK_EQ_INT(ev.count, 0); /* every write read back */

    /* A file the kernel rewrites: /proc/self/coredump_filter keeps only its valid bits, the way
     * a driver clamps a limit. The write succeeds and the read-back differs. */
    char path[PATH_MAX];
    gov_backend_policy_path(b, 3, "scaling_setspeed", path, sizeof(path));
    unlink(path);
    CHECK(symlink("/proc/self/coredump_filter", path) == 0);
    gov_backend_set_governor(b, 3, "userspace", &ev);
    CHECK_EQ_INT(gov_backend_set_speed(b, 3, 2800000, &ev), -EIO);
    CHECK_EQ_INT(events_of(&ev, GOV_EVENT_WRITE_MISMATCH,
                           "policy3/scaling_setspeed: wrote "
                           "'2800000'"),
                 1);
    /* A write that lands nowhere: /dev/null takes it, reads back nothing. */
    gov_backend_policy_path(b, 0, "scaling_max_freq", path, sizeof(path));
    unlink(path);
    CHECK(symlink("/dev/null", path) == 0);
    CHECK(gov_backend_set_limits(b, 0, 0, 2000000, &ev) < 0);
    CHECK_EQ_INT(events_of(&ev, GOV_EVENT_WRITE_FAILED, "policy0/scaling_max_freq"), 1);
    /* A governor that does not stick (another daemon, a driver that refuses silently). */
    gov_backend_policy_path(b, 2, "scaling_governor", path, sizeof(path));
    unlink(path);
    CHECK(symlink("/proc/self/coredump_filter", path) == 0);
    CHECK(gov_backend_set_governor(b, 2, "ondemand", &ev) != 0);
    gov_backend_free(b);
out:
    govhw_rm_rf(root);
}

static void test_intel(void)
{
    char root[PATH_MAX];
    CHECK(govhw_copy_tree("intel-pstate-n100", root, sizeof(root)) == 0);
    struct gov_backend *b = open_tree(root);
    if (!b)
        goto out;
    check_expected("intel-pstate-n100", b);
    const struct gov_hw_global *g = gov_backend_global(b);
    CHECK_EQ_INT(g->pstate, GOV_PSTATE_INTEL);
    CHECK_EQ_INT(g->status, GOV_PSTATE_STATUS_ACTIVE);
    CHECK_EQ_INT(g->no_turbo, 0);
    CHECK_EQ_INT(g->min_perf_pct, 21);
    CHECK_EQ_INT(g->max_perf_pct, 100);
    CHECK_EQ_INT(g->boost, -1);
    const struct gov_hw_policy *p = gov_backend_policy(b, 0);
    CHECK_EQ_INT(p->nfreqs, 0);
    CHECK_STR(p->epp, "balance_performance");
    CHECK_EQ_INT(p->nepp, 5);
    CHECK(!gov_hw_policy_has_governor(p, "userspace"));
    CHECK_EQ_INT(gov_hw_policy_nearest_khz(p, 1234567), 1234567); /* continuous range */

    struct gov_events ev;
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_backend_set_epp(b, 0, "power", &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy0/"
                              "energy_performance_preference"),
              "power");
    CHECK_EQ_INT(gov_backend_set_epp(b, 1, "128", &ev), 0); /* raw EPP value */
    CHECK_EQ_INT(gov_backend_set_epp(b, 1, "turbo", &ev), -EINVAL);
    CHECK_EQ_INT(gov_backend_set_epp(b, 1, "256", &ev), -EINVAL);
    CHECK_EQ_INT(gov_backend_set_boost(b, 0, &ev), 0); /* no cpufreq/boost: no_turbo=1 */
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/no_turbo"), "1");
    CHECK_EQ_INT(gov_backend_set_perf_pct(b, 30, 80, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/min_perf_pct"), "30");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/max_perf_pct"), "80");
    CHECK_EQ_INT(gov_backend_set_perf_pct(b, 90, -1, &ev), -EINVAL); /* min above max */
    CHECK_EQ_INT(gov_backend_set_perf_pct(b, 10, 20, &ev), 0);       /* lowering: min first */
    CHECK_EQ_INT(gov_backend_set_limits(b, 3, 1000000, 2000000, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy3/scaling_max_freq"),
              "2000000");
    CHECK_EQ_INT(gov_backend_set_speed(b, 3, 1000000, &ev), -EOPNOTSUPP); /* no userspace */
    CHECK_EQ_INT(gov_backend_set_governor(b, 3, "performance", &ev), 0);
    CHECK_EQ_INT(ev.count, 0);
    gov_backend_free(b);
out:
    govhw_rm_rf(root);
}

static void test_amd(void)
{
    char root[PATH_MAX];
    CHECK(govhw_copy_tree("amd-pstate-epp-8c", root, sizeof(root)) == 0);
    struct gov_backend *b = open_tree(root);
    if (!b)
        goto out;
    check_expected("amd-pstate-epp-8c", b);
    const struct gov_hw_global *g = gov_backend_global(b);
    CHECK_EQ_INT(g->pstate, GOV_PSTATE_AMD);
    CHECK_EQ_INT(g->status, GOV_PSTATE_STATUS_ACTIVE);
    CHECK_EQ_INT(g->no_turbo, -1);
    CHECK_EQ_INT(g->min_perf_pct, -1);
    CHECK_EQ_INT(g->boost, 1);
    struct gov_events ev;
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_backend_set_limits(b, 7, 400000, 1800000, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpu7/cpufreq/scaling_max_freq"), "1800000");
    CHECK_EQ_INT(gov_backend_set_epp(b, 7, "balance_power", &ev), 0);
    CHECK_EQ_INT(gov_backend_set_boost(b, 0, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "0");
    CHECK_EQ_INT(gov_backend_set_perf_pct(b, 10, 90, &ev), -EOPNOTSUPP);
    CHECK_EQ_INT(ev.count, 0);
    gov_backend_free(b);
    /* amd-pstate guided mode (the driver is then "amd-pstate" with generic governors). */
    govhw_put(root, "sys/devices/system/cpu/amd_pstate/status", "guided\n");
    b = open_tree(root);
    if (b) {
        CHECK_EQ_INT(gov_backend_global(b)->status, GOV_PSTATE_STATUS_GUIDED);
        CHECK_STR(gov_pstate_status_name(gov_backend_global(b)->status), "guided");
        gov_backend_free(b);
    }
out:
    govhw_rm_rf(root);
}

static void test_rk3588(void)
{
    char root[PATH_MAX];
    CHECK(govhw_copy_tree("rk3588-3cluster", root, sizeof(root)) == 0);
    struct gov_backend *b = open_tree(root);
    if (!b)
        goto out;
    check_expected("rk3588-3cluster", b);
    CHECK_EQ_INT(gov_backend_policy_count(b), 3);
    CHECK_STR(gov_backend_policy(b, 0)->name, "policy0");
    CHECK_STR(gov_backend_policy(b, 1)->name, "policy4");
    CHECK_STR(gov_backend_policy(b, 2)->name, "policy6");
    CHECK_EQ_INT(gov_backend_policy(b, 0)->ncpus, 4);
    CHECK_EQ_INT(gov_backend_global(b)->boost, -1);
    struct gov_events ev;
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_backend_set_boost(b, 1, &ev), -EOPNOTSUPP);
    for (size_t i = 0; i < 3; i++) {
        CHECK_EQ_INT(gov_backend_set_governor(b, i, "userspace", &ev), 0);
        CHECK_EQ_INT(gov_backend_set_speed(b, i, i == 0 ? 1416000 : 2208000, &ev), 0);
    }
    /* cpu5 shares policy4: its link shows the cluster's value */
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpu5/cpufreq/scaling_setspeed"), "2208000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpu2/cpufreq/scaling_setspeed"), "1416000");
    CHECK_EQ_INT(gov_backend_set_speed(b, 0, 2208000, &ev), -EINVAL); /* above the A55 max */
    CHECK_EQ_INT(ev.count, 0);
    gov_backend_free(b);
out:
    govhw_rm_rf(root);
}

static void test_broken(void)
{
    char root[PATH_MAX];
    CHECK(govhw_copy_tree("broken", root, sizeof(root)) == 0);
    struct gov_backend *b = open_tree(root);
    if (!b)
        goto out;
    check_expected("broken", b);
    struct gov_events ev;
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_backend_take_quirks(b, &ev), 2);
    CHECK_EQ_INT(events_of(&ev, GOV_EVENT_HW_QUIRK,
                           "policy0/scaling_available_frequencies: "
                           "skipped 1"),
                 1);
    CHECK_EQ_INT(events_of(&ev, GOV_EVENT_HW_QUIRK, "policy1/scaling_max_freq"), 1);
    /* A refresh does not repeat the quirk. */
    CHECK_EQ_INT(gov_backend_refresh(b, NULL, 0), 0);
    CHECK_EQ_INT(gov_backend_take_quirks(b, &ev), 0);
    /* Writes to the missing limit are skipped, the other still happens. */
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_backend_set_limits(b, 1, 1000000, 2000000, &ev), 0);
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy1/scaling_min_freq"),
              "1000000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/policy1/scaling_max_freq"), "<err>");
    CHECK_EQ_INT(ev.count, 0);
    gov_backend_free(b);
out:
    govhw_rm_rf(root);
}

/* Garbled files are errors that name the file. */
static void test_bad_values(void)
{
    static const struct {
        const char *file, *value, *needle;
    } cases[] = {
        {"sys/devices/system/cpu/cpufreq/policy2/cpuinfo_max_freq", "fast\n",
         "policy2/cpuinfo_max_freq: 'fast' is not a frequency"},
        {"sys/devices/system/cpu/cpufreq/policy1/cpuinfo_min_freq", "9000000\n",
         "cpuinfo_min_freq 9000000 > cpuinfo_max_freq"},
        {"sys/devices/system/cpu/cpufreq/policy3/related_cpus", "1-x\n",
         "policy3/related_cpus: '1-x' is not a CPU list"},
        {"sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq", "-5\n",
         "policy0/scaling_min_freq: '-5' is not a frequency"},
        {"sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "two words\n",
         "policy0/scaling_governor: 'two words' is not a governor name"},
        {"sys/devices/system/cpu/cpufreq/boost", "2\n", "cpufreq/boost: '2' is not 0 or 1"},
        {"sys/devices/system/cpu/cpufreq/policy1/boost", "yes\n",
         "policy1/boost: 'yes' is not 0 or 1"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char root[PATH_MAX], err[512] = "";
        if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0)
            continue;
        govhw_put(root, cases[k].file, cases[k].value);
        struct gov_backend_params p = {.sysfs_root = root, .impl = GOV_BACKEND_SYSFS};
        struct gov_backend *b = NULL;
        CHECK_EQ_INT(gov_backend_open(&p, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, cases[k].needle);
        CHECK_CONTAINS(err, root); /* the full path, so a human finds it */
        gov_backend_free(b);
        govhw_rm_rf(root);
    }
    char root[PATH_MAX], err[512] = "";
    if (govhw_copy_tree("intel-pstate-n100", root, sizeof(root)) == 0) {
        govhw_put(root, "sys/devices/system/cpu/intel_pstate/status", "sideways\n");
        struct gov_backend_params p = {.sysfs_root = root};
        struct gov_backend *b = NULL;
        CHECK_EQ_INT(gov_backend_open(&p, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "intel_pstate/status: unknown status 'sideways'");
        govhw_put(root, "sys/devices/system/cpu/intel_pstate/status", "passive\n");
        govhw_put(root, "sys/devices/system/cpu/intel_pstate/max_perf_pct", "150\n");
        CHECK_EQ_INT(gov_backend_open(&p, &b, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "max_perf_pct: '150' is not a percentage");
        govhw_rm_rf(root);
    }
    /* No cpufreq at all, and libcpupower refused for another root. */
    struct gov_backend_params none = {.sysfs_root = "/nonexistent-ember-root"};
    struct gov_backend *b = NULL;
    CHECK_EQ_INT(gov_backend_open(&none, &b, err, sizeof(err)), -ENOENT);
    CHECK_CONTAINS(err, "no cpufreq policies");
    struct gov_backend_params lib = {.sysfs_root = "/tmp", .impl = GOV_BACKEND_LIBCPUPOWER};
    CHECK_EQ_INT(gov_backend_open(&lib, &b, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "libcpupower");
}

int main(void)
{
    test_acpi();
    test_intel();
    test_amd();
    test_rk3588();
    test_broken();
    test_bad_values();
    return et_finish();
}
