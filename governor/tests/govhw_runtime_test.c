/* The runtime governor object against the fake trees: originals saved before the first write,
 * targets applied the way each driver takes them (userspace + setspeed on table drivers, limits
 * on intel_pstate / amd-pstate), boost, live policy switch, restore, the safe state on the broken
 * tree, monitor-only (requested, or when the saved file cannot be written), conflicting daemons,
 * a crash restore within one process, and the status snapshot as JSON. */
#include <errno.h>
#include <math.h>

#include "common/timeutil.h"
#include "governor/governor.h"
#include "govhw_util.h"

#define MS (1000000ULL)

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

static struct gov_governor *make(const char *root, const char *policy, char *saved, size_t cap,
                                 bool monitor_only)
{
    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    snprintf(saved, cap, "%s/run/ember/governor.saved", root);
    p.sysfs_root = root;
    p.saved_path = saved;
    p.monitor_only = monitor_only;
    snprintf(p.tunables.policy, sizeof(p.tunables.policy), "%s", policy);
    struct gov_governor *g = NULL;
    char err[512] = "";
    int r = gov_governor_new(&p, &g, err, sizeof(err));
    CHECK_MSG(r == 0, "new(%s, %s): %d %s", root, policy, r, err);
    return g;
}

/* Ticks every 100 ms for ms milliseconds of simulated time, from *t. */
static void run_for(struct gov_governor *g, uint64_t *t, unsigned ms, enum gov_phase ph)
{
    for (unsigned k = 0; k < ms / 100; k++) {
        *t += 100 * MS;
        gov_governor_tick(g, *t, ph, NAN, NAN, NULL);
    }
}

static const char *pol(const char *root, const char *policy, const char *file)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/%s/%s", policy, file);
    return govhw_get(root, rel);
}

static void test_acpi(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
    if (!g)
        goto out;
    struct gov_tick_result res;
    uint64_t t = 1000 * MS;
    CHECK(access(saved, F_OK) != 0); /* nothing saved before a write is needed */
    CHECK_EQ_INT(gov_governor_tick(g, t, GOV_PHASE_IDLE, NAN, NAN, &res), 0);
    CHECK(access(saved, F_OK) == 0);
    CHECK_EQ_INT(res.n_clusters, 4);
    CHECK_EQ_INT(res.c[0].khz, 2901000);
    CHECK(res.boost);
    CHECK(!res.safe_state);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "policy%d", i);
        CHECK_STR(pol(root, name, "scaling_governor"), "userspace");
        CHECK_STR(pol(root, name, "scaling_setspeed"), "2901000");
    }
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "1");
    /* The saved file holds the originals, not our values. */
    struct gov_saved_state st;
    CHECK_EQ_INT(gov_saved_read(saved, &st, err, sizeof(err)), 0);
    CHECK_EQ_INT(st.npol, 4);
    CHECK_STR(st.pol[2].governor, "schedutil");
    CHECK_EQ_INT(st.pol[2].max_khz, 2901000);
    CHECK_EQ_INT(st.boost, 1);

    CHECK_EQ_INT(gov_governor_set_policy(g, "nosuch", err, sizeof(err)) != 0, 1);
    CHECK_EQ_INT(gov_governor_set_policy(g, "powersave", err, sizeof(err)), 0);
    run_for(g, &t, 1500, GOV_PHASE_IDLE);
    CHECK_STR(pol(root, "policy3", "scaling_setspeed"), "800000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "0");
    struct gov_events *ev = gov_governor_events(g);
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_POLICY_CHANGED, "performance -> powersave"), 1);
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_WRITE_MISMATCH, NULL), 0);

    struct gov_status s;
    gov_governor_status(g, &s);
    CHECK_STR(s.policy, "powersave");
    CHECK_STR(s.backend, "sysfs");
    CHECK(s.originals_saved);
    CHECK_EQ_INT(s.n_clusters, 4);
    CHECK_EQ_INT(s.c[1].target_khz, 800000);
    CHECK_STR(s.c[1].hw_governor, "userspace");
    CHECK_NEAR(s.cpu_temp_c, 47.0, 1e-9);
    CHECK_NEAR(s.passive_trip_c, 90.0, 1e-9);
    CHECK_EQ_INT(s.boost, 0);
    char *json = gov_status_to_json(&s);
    cJSON *j = cJSON_Parse(json);
    CHECK(j != NULL);
    CHECK_STR(cJSON_GetObjectItem(j, "policy")->valuestring, "powersave");
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "clusters")), 4);
    CHECK_NEAR(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "clusters"), 0), "target_mhz")
            ->valuedouble,
        800.0, 1e-9);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "power_w")));
    cJSON_Delete(j);
    free(json);

    /* `ember governor restore` run while the governor runs: originals back, file gone. The
     * governor notices, saves the originals afresh and takes over again. */
    struct gov_backend_params bp = {.sysfs_root = root};
    struct gov_backend *other = NULL;
    CHECK_EQ_INT(gov_backend_open(&bp, &other, err, sizeof(err)), 0);
    CHECK_EQ_INT(gov_saved_restore_file(other, saved, NULL, NULL, err, sizeof(err)), 0);
    gov_backend_free(other);
    CHECK_STR(pol(root, "policy3", "scaling_governor"), "schedutil");
    run_for(g, &t, 200, GOV_PHASE_IDLE);
    CHECK_STR(pol(root, "policy3", "scaling_governor"), "userspace");
    CHECK_EQ_INT(gov_saved_read(saved, &st, err, sizeof(err)), 0);
    CHECK_STR(st.pol[3].governor, "schedutil");
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_RESTORED, "was removed while running"), 1);

    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK(access(saved, F_OK) != 0);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "policy%d", i);
        CHECK_STR(pol(root, name, "scaling_governor"), "schedutil");
        CHECK_STR(pol(root, name, "scaling_min_freq"), "800000");
        CHECK_STR(pol(root, name, "scaling_max_freq"), "2901000");
    }
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "1");
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_RESTORED, "restored from"), 1);
    gov_governor_free(g);
out:
    govhw_rm_rf(root);
}

static void test_intel_limits(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("intel-pstate-n100", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "powersave", saved, sizeof(saved), false);
    if (!g)
        goto out;
    uint64_t t = 1000 * MS;
    run_for(g, &t, 500, GOV_PHASE_IDLE);
    /* No userspace governor: the target becomes the limits; turbo off through no_turbo. */
    CHECK_STR(pol(root, "policy0", "scaling_max_freq"), "700000");
    CHECK_STR(pol(root, "policy0", "scaling_min_freq"), "700000");
    CHECK_STR(pol(root, "policy0", "scaling_governor"), "powersave");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/no_turbo"), "1");
    CHECK_EQ_INT(gov_governor_set_policy(g, "performance", err, sizeof(err)), 0);
    run_for(g, &t, 500, GOV_PHASE_IDLE);
    CHECK_STR(pol(root, "policy2", "scaling_max_freq"), "3400000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/no_turbo"), "0");
    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK_STR(pol(root, "policy0", "scaling_max_freq"), "3400000");
    CHECK_STR(pol(root, "policy0", "scaling_min_freq"), "700000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/no_turbo"), "0");
    CHECK_EQ_INT(count_kind(gov_governor_events(g), GOV_EVENT_WRITE_MISMATCH, NULL), 0);
    gov_governor_free(g);
out:
    govhw_rm_rf(root);
}

static void test_amd_and_rk(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("amd-pstate-epp-8c", root, sizeof(root)) == 0) {
        struct gov_governor *g = make(root, "powersave", saved, sizeof(saved), false);
        if (g) {
            uint64_t t = 1000 * MS;
            run_for(g, &t, 300, GOV_PHASE_IDLE);
            struct gov_status s;
            gov_governor_status(g, &s);
            CHECK_EQ_INT(s.n_clusters, 8);
            CHECK_STR(s.pstate_status, "active");
            CHECK_STR(pol(root, "policy7", "scaling_max_freq"), "400000");
            CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "0");
            CHECK_NEAR(s.cpu_temp_c, 52.25, 1e-9); /* k10temp Tctl: no CPU zone on AMD */
            CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
            CHECK_STR(pol(root, "policy7", "scaling_max_freq"), "4700000");
            CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "1");
            gov_governor_free(g);
        }
        govhw_rm_rf(root);
    }
    if (govhw_copy_tree("rk3588-3cluster", root, sizeof(root)) == 0) {
        struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
        if (g) {
            uint64_t t = 1000 * MS;
            struct gov_tick_result res;
            gov_governor_tick(g, t, GOV_PHASE_PREFILL, 5.0, NAN, &res);
            CHECK_EQ_INT(res.n_clusters, 3);
            CHECK(!res.boost); /* no boost on this board */
            CHECK_STR(pol(root, "policy0", "scaling_setspeed"), "1800000");
            CHECK_STR(pol(root, "policy4", "scaling_setspeed"), "2400000");
            CHECK_STR(pol(root, "policy6", "scaling_setspeed"), "2400000");
            CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpu5/cpufreq/scaling_governor"),
                      "userspace");
            struct gov_status s;
            gov_governor_status(g, &s);
            CHECK_STR(s.c[0].cpus, "0-3");
            CHECK_STR(s.c[2].cpus, "6-7");
            CHECK_NEAR(s.passive_trip_c, 75.0, 1e-9);
            /* Per-cluster zones: little = max(soc, littlecore), big0 = max(soc, bigcore0). */
            CHECK_NEAR(s.c[0].temp_c, 46.153, 1e-9);
            CHECK_NEAR(s.c[1].temp_c, 47.076, 1e-9);
            CHECK_NEAR(s.c[2].temp_c, 47.999, 1e-9);
            govhw_put(root, "sys/devices/virtual/thermal/thermal_zone2/temp", "91000\n");
            gov_governor_tick(g, t + 100 * MS, GOV_PHASE_PREFILL, 5.0, NAN, &res);
            CHECK_NEAR(res.c[2].temp_c, 91.0, 1e-9);
            CHECK_NEAR(res.c[1].temp_c, 47.076, 1e-9);
            CHECK_NEAR(res.c[0].temp_c, 46.153, 1e-9);
            /* the hot big cluster is throttled (thermal target 70 C: 75 C trip - 5), not others */
            CHECK(res.c[2].reasons & GOV_REASON_THERMAL);
            CHECK(res.c[2].khz < 2400000);
            CHECK_EQ_INT(res.c[1].khz, 2400000);
            CHECK_EQ_INT(res.c[0].khz, 1800000);
            CHECK_NEAR(s.power_w, 5.0, 1e-9);
            /* A curve from calibrate is taken live; a bad one changes nothing. */
            struct gov_calibration *cal = calloc(1, sizeof(*cal));
            cal->n_clusters = 3;
            snprintf(cal->cluster_names[0], GOV_NAME_MAX, "policy0");
            snprintf(cal->cluster_names[1], GOV_NAME_MAX, "policy4");
            snprintf(cal->cluster_names[2], GOV_NAME_MAX, "policy6");
            static const uint32_t lk[3] = {408000, 1008000, 1800000};
            static const uint32_t bk[3] = {408000, 1416000, 2400000};
            for (unsigned k = 0; k < 3; k++) {
                struct gov_calib_point *pt = &cal->points[cal->n_points++];
                pt->khz[0] = lk[k];
                pt->khz[1] = pt->khz[2] = bk[k];
                pt->prefill_tok_s = 100.0 * (k + 1);
                pt->decode_tok_s = 10.0 + k;
                pt->watts = 2.0 * (k + 1);
            }
            char cpath[PATH_MAX + 16];
            snprintf(cpath, sizeof(cpath), "%s/cal.json", root);
            CHECK_EQ_INT(gov_calibration_save(cal, cpath, err, sizeof(err)), 0);
            free(cal);
            CHECK_EQ_INT(gov_governor_load_calibration(g, cpath, err, sizeof(err)), 0);
            govhw_put(root, "bad.json", "{\"points\": 3}");
            snprintf(cpath, sizeof(cpath), "%s/bad.json", root);
            CHECK(gov_governor_load_calibration(g, cpath, err, sizeof(err)) != 0);
            CHECK_EQ_INT(gov_governor_load_calibration(g, NULL, err, sizeof(err)), 0);
            CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
            CHECK_STR(pol(root, "policy6", "scaling_governor"), "schedutil");
            gov_governor_free(g);
        }
        govhw_rm_rf(root);
    }
}

static void test_broken_safe_state(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("broken", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
    if (!g)
        goto out;
    struct gov_tick_result res;
    uint64_t t = 1000 * MS;
    gov_governor_tick(g, t, GOV_PHASE_PREFILL, NAN, NAN, &res);
    CHECK(res.safe_state);
    CHECK(!res.boost);
    CHECK(res.reasons & GOV_REASON_SENSOR_LOSS);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "policy%d", i);
        CHECK_STR(pol(root, name, "scaling_setspeed"), "800000");
    }
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "0");
    struct gov_events *ev = gov_governor_events(g);
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_SENSOR_GARBAGE, "thermal_zone0/temp"), 1);
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_SAFE_STATE, "safe state"), 1);
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_HW_QUIRK, "policy1/scaling_max_freq"), 1);
    struct gov_status s;
    gov_governor_status(g, &s);
    CHECK(s.safe_state);
    CHECK_CONTAINS(s.safe_reason, "cpu2 line is incomplete"); /* the first fault found */
    /* Repair both sensors: the governor leaves the safe state and performance returns. */
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone0/temp", "48000\n");
    govhw_put(root, "proc/stat",
              "cpu  4 0 4 40 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\n"
              "cpu1 1 0 1 10 0 0 0 0 0 0\ncpu2 1 0 1 10 0 0 0 0 0 0\n"
              "cpu3 1 0 1 10 0 0 0 0 0 0\n");
    run_for(g, &t, 2000, GOV_PHASE_PREFILL);
    gov_governor_tick(g, t + 100 * MS, GOV_PHASE_PREFILL, NAN, NAN, &res);
    CHECK(!res.safe_state);
    CHECK_EQ_INT(count_kind(ev, GOV_EVENT_SAFE_STATE, "left the safe state"), 1);
    CHECK_STR(pol(root, "policy2", "scaling_setspeed"), "2901000");
    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK_STR(pol(root, "policy2", "scaling_governor"), "schedutil");
    gov_governor_free(g);
out:
    govhw_rm_rf(root);
}

/* A knob that never sticks: one failure event per retry period, not one per tick. */
static void test_write_backoff(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], path[PATH_MAX];
    if (govhw_copy_tree("rk3588-3cluster", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    cmn_path(path, sizeof(path), root, "sys/devices/system/cpu/cpufreq/policy6/scaling_setspeed");
    unlink(path);
    CHECK(symlink("/dev/null", path) == 0);
    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
    if (g) {
        uint64_t t = 1000 * MS;
        struct gov_tick_result res;
        CHECK(gov_governor_tick(g, t, GOV_PHASE_PREFILL, NAN, NAN, &res) != 0);
        CHECK(res.apply_error != 0);
        run_for(g, &t, 3000, GOV_PHASE_PREFILL); /* 30 ticks inside the 5 s period */
        struct gov_status s;
        gov_governor_status(g, &s);
        CHECK_EQ_INT(s.write_errors, 1);
        run_for(g, &t, 3000, GOV_PHASE_PREFILL); /* past it: one more try */
        gov_governor_status(g, &s);
        CHECK_EQ_INT(s.write_errors, 2);
        CHECK_STR(pol(root, "policy4", "scaling_setspeed"), "2400000"); /* the others work */
        char err[256];
        gov_governor_restore(g, err, sizeof(err));
        gov_governor_free(g);
    }
    govhw_rm_rf(root);
}

static void test_monitor_only_and_save_failure(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32];
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), true);
    if (g) {
        struct gov_tick_result res;
        gov_governor_tick(g, 1000 * MS, GOV_PHASE_PREFILL, NAN, NAN, &res);
        CHECK(res.monitor_only);
        CHECK_EQ_INT(res.c[0].khz, 2901000); /* what it would do */
        CHECK_STR(pol(root, "policy0", "scaling_governor"), "schedutil");
        CHECK(access(saved, F_OK) != 0);
        struct gov_status s;
        gov_governor_status(g, &s);
        CHECK(s.monitor_only);
        CHECK_EQ_INT(s.writes, 0);
        gov_governor_free(g);
    }
    /* The saved file cannot be written: no write at all, monitor-only with one event. */
    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    p.sysfs_root = root;
    p.saved_path = "/proc/ember-cannot-exist/governor.saved";
    snprintf(p.tunables.policy, sizeof(p.tunables.policy), "performance");
    char err[512] = "";
    CHECK_EQ_INT(gov_governor_new(&p, &g, err, sizeof(err)), 0);
    if (g) {
        gov_governor_tick(g, 1000 * MS, GOV_PHASE_PREFILL, NAN, NAN, NULL);
        gov_governor_tick(g, 1100 * MS, GOV_PHASE_PREFILL, NAN, NAN, NULL);
        CHECK_STR(pol(root, "policy0", "scaling_governor"), "schedutil");
        CHECK_STR(pol(root, "policy0", "scaling_setspeed"), "<unsupported>");
        CHECK_EQ_INT(count_kind(gov_governor_events(g), GOV_EVENT_MONITOR_ONLY,
                                "cannot save the original settings"),
                     1);
        gov_governor_free(g);
    }
    govhw_rm_rf(root);
}

static void test_conflicts_and_crash_in_process(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    char d[PATH_MAX + 32];
    snprintf(d, sizeof(d), "%s/proc/4242", root);
    cmn_mkdir_p(d);
    govhw_put(root, "proc/4242/comm", "tlp\n");
    snprintf(d, sizeof(d), "%s/proc/4243", root);
    cmn_mkdir_p(d);
    govhw_put(root, "proc/4243/comm", "power-profiles-\n"); /* comm is cut at 15 bytes */
    snprintf(d, sizeof(d), "%s/proc/4244", root);
    cmn_mkdir_p(d);
    govhw_put(root, "proc/4244/comm", "tlpx\n");
    struct gov_conflict c[4];
    size_t n = 0;
    CHECK_EQ_INT(gov_conflicts_detect(root, c, 4, &n), 2);
    CHECK_EQ_INT(n, 2);

    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
    if (!g)
        goto out;
    CHECK_EQ_INT(count_kind(gov_governor_events(g), GOV_EVENT_CONFLICT, "tlp (pid 4242)"), 1);
    CHECK_EQ_INT(count_kind(gov_governor_events(g), GOV_EVENT_CONFLICT, "power-profiles-"), 1);
    gov_governor_tick(g, 1000 * MS, GOV_PHASE_PREFILL, NAN, NAN, NULL);
    CHECK_STR(pol(root, "policy0", "scaling_governor"), "userspace");
    /* Freed without restore, as a crash would leave it. The next start restores. */
    gov_governor_free(g);
    CHECK(access(saved, F_OK) == 0);
    g = make(root, "powersave", saved, sizeof(saved), false);
    if (!g)
        goto out;
    CHECK_EQ_INT(count_kind(gov_governor_events(g), GOV_EVENT_CRASH_RESTORE, "restored"), 1);
    CHECK(access(saved, F_OK) != 0);
    CHECK_STR(pol(root, "policy0", "scaling_governor"), "schedutil");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/cpufreq/boost"), "1");
    gov_governor_free(g);
    /* A saved file that is not ours to trust is moved aside, never applied. */
    govhw_put(root, "run/ember/governor.saved", "{\"version\":1,\"sysfs_root\":");
    g = make(root, "powersave", saved, sizeof(saved), false);
    if (g) {
        CHECK_EQ_INT(count_kind(gov_governor_events(g), GOV_EVENT_CRASH_RESTORE, "moved to"), 1);
        char bad[PATH_MAX + 40];
        snprintf(bad, sizeof(bad), "%s.bad", saved);
        CHECK(access(bad, F_OK) == 0);
        gov_governor_free(g);
    }
    /* A saved file of another root is refused. */
    struct gov_saved_state *st = calloc(1, sizeof(*st));
    st->version = GOV_SAVED_VERSION;
    snprintf(st->root, sizeof(st->root), "/some/other/root");
    st->boost = st->no_turbo = st->min_perf_pct = st->max_perf_pct = -1;
    CHECK_EQ_INT(gov_saved_write(st, saved, err, sizeof(err)), 0);
    free(st);
    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    p.sysfs_root = root;
    p.saved_path = saved;
    CHECK_EQ_INT(gov_governor_new(&p, &g, err, sizeof(err)), -EXDEV);
    CHECK_CONTAINS(err, "/some/other/root");
out:
    govhw_rm_rf(root);
}

/* intel_pstate in passive mode: the intel_cpufreq driver takes generic governors, userspace
 * included, over a continuous range. */
static void test_intel_passive(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("intel-pstate-n100", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    govhw_put(root, "sys/devices/system/cpu/intel_pstate/status", "passive\n");
    for (int i = 0; i < 4; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy%d/scaling_driver", i);
        govhw_put(root, rel, "intel_cpufreq\n");
        snprintf(rel, sizeof(rel),
                 "sys/devices/system/cpu/cpufreq/policy%d/scaling_available_governors", i);
        govhw_put(root, rel, "conservative ondemand userspace powersave performance schedutil\n");
        snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy%d/scaling_governor", i);
        govhw_put(root, rel, "schedutil\n");
    }
    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
    if (!g)
        goto out;
    struct gov_tick_result res;
    gov_governor_tick(g, 1000 * MS, GOV_PHASE_PREFILL, NAN, NAN, &res);
    struct gov_status s;
    gov_governor_status(g, &s);
    CHECK_STR(s.pstate_status, "passive");
    CHECK(s.c[0].exact_freq);
    CHECK_STR(pol(root, "policy1", "scaling_governor"), "userspace");
    CHECK_STR(pol(root, "policy1", "scaling_setspeed"), "3400000");
    CHECK_STR(govhw_get(root, "sys/devices/system/cpu/intel_pstate/no_turbo"), "0");
    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK_STR(pol(root, "policy1", "scaling_governor"), "schedutil");
    gov_governor_free(g);
out:
    govhw_rm_rf(root);
}

/* More policies than the controller has clusters (acpi-cpufreq has one per CPU): identical
 * hardware shares a cluster, different hardware (a hybrid part's E-cores) gets its own. */
static void test_many_policies(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    char cmd[PATH_MAX * 2 + 64], stat[4096];
    size_t len = (size_t)snprintf(stat, sizeof(stat), "cpu  1 1 1 1 1 1 1 0 0 0\n");
    for (int i = 0; i < 12; i++) {
        char rel[128], v[16];
        if (i >= 4) {
            snprintf(cmd, sizeof(cmd), "%s/sys/devices/system/cpu/cpufreq", root);
            char from[PATH_MAX + 32], to[PATH_MAX + 32];
            snprintf(from, sizeof(from), "%s/policy3", cmd);
            snprintf(to, sizeof(to), "%s/policy%d", cmd, i);
            const char *argv[] = {"cp", "-a", from, to, NULL};
            CHECK_EQ_INT(govhw_run(argv), 0);
            snprintf(v, sizeof(v), "%d\n", i);
            snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy%d/related_cpus", i);
            govhw_put(root, rel, v);
            snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy%d/affected_cpus", i);
            govhw_put(root, rel, v);
        }
        if (i >= 8) { /* the "E-cores": a lower ceiling */
            snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy%d/cpuinfo_max_freq",
                     i);
            govhw_put(root, rel, "2000000\n");
            snprintf(rel, sizeof(rel),
                     "sys/devices/system/cpu/cpufreq/policy%d/scaling_available_frequencies", i);
            govhw_put(root, rel, "2000000 1600000 1200000 800000\n");
            snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy%d/scaling_max_freq",
                     i);
            govhw_put(root, rel, "2000000\n");
        }
        len += (size_t)snprintf(stat + len, sizeof(stat) - len, "cpu%d 1 0 1 10 0 0 0 0 0 0\n", i);
    }
    govhw_put(root, "proc/stat", stat);
    struct gov_governor *g = make(root, "performance", saved, sizeof(saved), false);
    if (!g)
        goto out;
    gov_governor_tick(g, 1000 * MS, GOV_PHASE_PREFILL, NAN, NAN, NULL);
    struct gov_status s;
    gov_governor_status(g, &s);
    CHECK_EQ_INT(s.n_clusters, 2);
    CHECK_EQ_INT(s.c[0].n_policies, 8);
    CHECK_STR(s.c[0].cpus, "0-7");
    CHECK_STR(s.c[1].cpus, "8-11");
    CHECK_STR(s.c[0].name, "policy0+7");
    CHECK_STR(pol(root, "policy7", "scaling_setspeed"), "2901000");
    CHECK_STR(pol(root, "policy11", "scaling_setspeed"), "2000000");
    CHECK_EQ_INT(gov_governor_restore(g, err, sizeof(err)), 0);
    CHECK_STR(pol(root, "policy11", "scaling_governor"), "schedutil");
    gov_governor_free(g);
out:
    govhw_rm_rf(root);
}

/* Zone names of other SoCs: "cpuN-..." names the cluster of CPU N, "cpu_little" the little
 * cores; a hot zone only raises its own cluster's temperature. */
static void test_zone_names(void)
{
    char root[PATH_MAX], saved[PATH_MAX + 32];
    if (govhw_copy_tree("rk3588-3cluster", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone1/type", "cpu4-gold-usr\n");
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone2/type", "cpu6-gold-usr\n");
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone3/type", "cpu_little\n");
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone1/temp", "80000\n");
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone3/temp", "60000\n");
    struct gov_governor *g = make(root, "powersave", saved, sizeof(saved), true);
    if (g) {
        struct gov_tick_result res;
        gov_governor_tick(g, 1000 * MS, GOV_PHASE_IDLE, NAN, NAN, &res);
        CHECK_NEAR(res.c[0].temp_c, 60.0, 1e-9);   /* cpu_little */
        CHECK_NEAR(res.c[1].temp_c, 80.0, 1e-9);   /* cpu4-gold-usr */
        CHECK_NEAR(res.c[2].temp_c, 47.999, 1e-9); /* cpu6-gold-usr */
        CHECK_NEAR(res.cpu_temp_c, 80.0, 1e-9);    /* the package view: the hottest */
        gov_governor_free(g);
    }
    govhw_rm_rf(root);
}

int main(void)
{
    test_zone_names();
    test_write_backoff();
    test_intel_passive();
    test_many_policies();
    test_acpi();
    test_intel_limits();
    test_amd_and_rk();
    test_broken_safe_state();
    test_monitor_only_and_save_failure();
    test_conflicts_and_crash_in_process();
    return et_finish();
}
