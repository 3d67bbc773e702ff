/* The libcpupower backend, which always opens /sys/devices/system/cpu: the test re-runs itself
 * through ../shared/sysfs-trees/with-fake-cpu.sh, which binds a copy of a fake tree over that
 * directory in a private mount namespace (exit 77 where namespaces are not permitted). Inside,
 * discovery is compared with expected.json and writes go through libcpupower and are read back.
 * libcpupower writes without O_TRUNC: on sysfs that is right, on a regular-file tree a shorter
 * value leaves the old tail behind. The test writes values of the same length where it wants a
 * clean write, and uses the tail on purpose once: that is exactly a value that did not stick,
 * and the read-back must catch it. */
#include <errno.h>

#include "governor/backend.h"
#include "governor/safety.h"
#include "govhw_util.h"

static const char *const trees[] = {"acpi-cpufreq-4c", "intel-pstate-n100", "broken",
                                    "amd-pstate-epp-8c", "rk3588-3cluster"};

static int count_kind(struct gov_events *ev, enum gov_event_kind kind, const char *needle)
{
    int n = 0;
    for (size_t k = 0; k < ev->count; k++) {
        const struct gov_event *e = &ev->ring[(ev->head + k) % GOV_EVENTS_CAP];
        if (e->kind == kind && (!needle || strstr(e->detail, needle)))
            n++;
    }
    return n;
}

static void compare_expected(const char *tree, const struct gov_backend *b)
{
    cJSON *exp = govhw_expected(tree);
    CHECK(exp != NULL);
    if (!exp)
        return;
    CHECK_EQ_INT(gov_backend_policy_count(b), govhw_num(exp, "num_policies"));
    const cJSON *pe;
    cJSON_ArrayForEach(pe, cJSON_GetObjectItem(exp, "policies"))
    {
        const struct gov_hw_policy *p = NULL;
        for (size_t i = 0; i < gov_backend_policy_count(b); i++)
            if (strcmp(gov_backend_policy(b, i)->name, pe->string) == 0)
                p = gov_backend_policy(b, i);
        CHECK_MSG(p != NULL, "%s: %s missing", tree, pe->string);
        if (!p)
            continue;
        CHECK_EQ_INT(p->ncpus, cJSON_GetArraySize(cJSON_GetObjectItem(pe, "related_cpus")));
        CHECK_EQ_INT(p->cpuinfo_min_khz, govhw_num(pe, "cpuinfo_min_khz"));
        CHECK_EQ_INT(p->cpuinfo_max_khz, govhw_num(pe, "cpuinfo_max_khz"));
        CHECK_EQ_INT(p->scaling_min_khz, govhw_num(pe, "scaling_min_khz"));
        const cJSON *smax = cJSON_GetObjectItem(pe, "scaling_max_khz");
        CHECK_EQ_INT(p->scaling_max_khz, cJSON_IsNull(smax) ? 0 : smax->valuedouble);
        CHECK_EQ_INT(p->nfreqs,
                     cJSON_GetArraySize(cJSON_GetObjectItem(pe, "available_frequencies_khz")));
        CHECK_STR(p->driver, cJSON_GetObjectItem(exp, "scaling_driver")->valuestring);
        CHECK_STR(p->governor, cJSON_GetObjectItem(exp, "current_governor")->valuestring);
        CHECK_EQ_INT(p->ngovernors,
                     cJSON_GetArraySize(cJSON_GetObjectItem(exp, "available_governors")));
    }
    cJSON_Delete(exp);
}

/* What the kernel shows in scaling_setspeed once userspace runs: the current frequency. */
static void kernel_shows_setspeed(const char *fake, const char *policy, const char *khz)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/%s/scaling_setspeed", policy);
    govhw_put(fake, rel, khz);
}

static int inside(const char *tree)
{
    const char *fake = getenv("FAKE_SYSFS_ROOT");
    char err[512] = "";
    if (!fake) {
        fprintf(stderr, "--inside needs FAKE_SYSFS_ROOT\n");
        return 2;
    }
    struct gov_backend_params p = {.sysfs_root = "/", .impl = GOV_BACKEND_AUTO};
    struct gov_backend *b = NULL;
    int r = gov_backend_open(&p, &b, err, sizeof(err));
    CHECK_MSG(r == 0, "%s: open: %s", tree, err);
    if (r)
        return et_finish();
    CHECK_EQ_INT(gov_backend_impl_used(b), GOV_BACKEND_LIBCPUPOWER);
    compare_expected(tree, b);
    struct gov_events ev;
    gov_events_init(&ev);
    struct gov_saved_state *orig = calloc(1, sizeof(*orig));
    gov_saved_capture(b, orig);

    if (strcmp(tree, "acpi-cpufreq-4c") == 0) {
        CHECK_EQ_INT(gov_backend_set_governor(b, 1, "userspace", &ev), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy1/scaling_governor"),
                  "userspace");
        kernel_shows_setspeed(fake, "policy1", "1600000");
        CHECK_EQ_INT(gov_backend_set_speed(b, 1, 1800000, &ev), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy1/scaling_setspeed"),
                  "1800000");
        CHECK_EQ_INT(gov_backend_set_limits(b, 3, 0, 2000000, &ev), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy3/scaling_max_freq"),
                  "2000000");
        CHECK_EQ_INT(ev.count, 0);
        /* "800000" over "2901000": the file now says 8000000. Caught, not trusted. */
        CHECK_EQ_INT(gov_backend_set_limits(b, 2, 0, 800000, &ev), -EIO);
        CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_WRITE_MISMATCH,
                                "policy2/scaling_max_freq: wrote '800000', read back '8000000'"),
                     1);
        /* Restore: governors and limits back through libcpupower, each read back. */
        gov_events_init(&ev);
        unsigned writes = 0;
        CHECK_EQ_INT(gov_saved_apply(b, orig, &ev, &writes, err, sizeof(err)), 0);
        CHECK_EQ_INT(writes, 3); /* policy1 governor, policy2/3 max */
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy1/scaling_governor"),
                  "schedutil");
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy2/scaling_max_freq"),
                  "2901000");
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy3/scaling_max_freq"),
                  "2901000");
    } else if (strcmp(tree, "intel-pstate-n100") == 0) {
        CHECK_EQ_INT(gov_backend_global(b)->status, GOV_PSTATE_STATUS_ACTIVE);
        CHECK_EQ_INT(gov_backend_set_limits(b, 2, 0, 2000000, &ev), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy2/scaling_max_freq"),
                  "2000000");
        CHECK_EQ_INT(gov_backend_set_epp(b, 2, "balance_power", &ev), 0);
        CHECK_EQ_INT(gov_backend_set_boost(b, 0, &ev), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/intel_pstate/no_turbo"), "1");
        CHECK_EQ_INT(gov_backend_set_speed(b, 2, 1000000, &ev), -EOPNOTSUPP);
        CHECK_EQ_INT(ev.count, 0);
        CHECK_EQ_INT(gov_saved_apply(b, orig, &ev, NULL, err, sizeof(err)), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy2/scaling_max_freq"),
                  "3400000");
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/intel_pstate/no_turbo"), "0");
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy2/"
                                  "energy_performance_preference"),
                  "balance_performance");
    } else if (strcmp(tree, "broken") == 0) {
        CHECK(gov_backend_take_quirks(b, &ev) >= 2);
        CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_HW_QUIRK, "cpu1: libcpupower could not read"), 1);
        CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_HW_QUIRK, "scaling_available_frequencies"), 1);
        CHECK_EQ_INT(gov_backend_policy(b, 1)->scaling_min_khz, 800000);
    } else if (strcmp(tree, "rk3588-3cluster") == 0) {
        CHECK_STR(gov_backend_policy(b, 1)->name, "policy4");
        CHECK_EQ_INT(gov_backend_policy(b, 2)->ncpus, 2);
        static const char *const pol[3] = {"policy0", "policy4", "policy6"};
        static const uint32_t khz[3] = {1416000, 2208000, 1008000};
        for (size_t i = 0; i < 3; i++) {
            CHECK_EQ_INT(gov_backend_set_governor(b, i, "userspace", &ev), 0);
            kernel_shows_setspeed(fake, pol[i], "1200000");
            CHECK_EQ_INT(gov_backend_set_speed(b, i, khz[i], &ev), 0);
        }
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpu7/cpufreq/scaling_setspeed"),
                  "1008000");
        CHECK_EQ_INT(ev.count, 0);
        CHECK_EQ_INT(gov_saved_apply(b, orig, &ev, NULL, err, sizeof(err)), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy4/scaling_governor"),
                  "schedutil");
    } else if (strcmp(tree, "amd-pstate-epp-8c") == 0) {
        CHECK_EQ_INT(gov_backend_global(b)->pstate, GOV_PSTATE_AMD);
        CHECK_EQ_INT(gov_backend_set_limits(b, 5, 0, 1800000, &ev), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpu5/cpufreq/scaling_max_freq"),
                  "1800000");
        CHECK_EQ_INT(gov_backend_set_boost(b, 0, &ev), 0);
        CHECK_EQ_INT(ev.count, 0);
        CHECK_EQ_INT(gov_saved_apply(b, orig, &ev, NULL, err, sizeof(err)), 0);
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/boost"), "1");
        CHECK_STR(govhw_get(fake, "sys/devices/system/cpu/cpufreq/policy5/scaling_max_freq"),
                  "4700000");
    }
    free(orig);
    gov_backend_free(b);
    return et_finish();
}

#ifndef GOVHW_CPUPOWER_NO_MAIN /* govhw_cpupower_redirect_test.c has its own */
int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--inside") == 0)
        return inside(argv[2]);
    char wrapper[PATH_MAX], self[PATH_MAX];
    snprintf(wrapper, sizeof(wrapper), "%s/sysfs-trees/with-fake-cpu.sh", et_shared_dir());
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0 || access(wrapper, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s not found\n", wrapper);
        return ET_SKIP;
    }
    self[n] = '\0';
    int ran = 0;
    for (size_t k = 0; k < sizeof(trees) / sizeof(trees[0]); k++) {
        char copy[PATH_MAX];
        /* Our copy repairs links that some checkouts flatten; the wrapper copies it again. */
        if (govhw_copy_tree(trees[k], copy, sizeof(copy)) != 0) {
            CHECK_MSG(0, "copy %s", trees[k]);
            continue;
        }
        /* cross builds run the test under qemu-user: the re-run needs it too */
        const char *emu = getenv("EMBER_TEST_EMULATOR");
        const char *argv2[] = {"sh", wrapper, copy, "--", self, "--inside", trees[k], NULL, NULL};
        if (emu && *emu) {
            memmove(argv2 + 5, argv2 + 4, 4 * sizeof(argv2[0]));
            argv2[4] = emu;
        }
        int rc = govhw_run(argv2);
        govhw_rm_rf(copy);
        if (rc == ET_SKIP) {
            fprintf(stderr, "SKIP: mount namespaces not permitted here\n");
            return ran ? et_finish() : ET_SKIP;
        }
        CHECK_MSG(rc == 0, "%s: inside run exited %d", trees[k], rc);
        ran++;
    }
    return et_finish();
}
#endif
