/* Sensors against the fake trees: thermal zones with types and trip points (unprogrammed trips
 * skipped), the CPU temperature picked by type not index (and from hwmon where no CPU zone
 * exists), utilisation deltas from rewritten /proc/stat counters, and faults: garbage at start
 * (broken tree), a sensor that vanishes and comes back, counters that go backwards. */
#include <math.h>

#include "governor/sensors.h"
#include "govhw_util.h"

static struct gov_sensors *open_root(const char *root)
{
    struct gov_sensors_params p = {.root = root};
    struct gov_sensors *s = NULL;
    char err[256] = "";
    int r = gov_sensors_open(&p, &s, err, sizeof(err));
    CHECK_MSG(r == 0, "sensors %s: %s", root, err);
    return s;
}

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

/* Rewrites cpuN lines: cpu c gets busy+idle more ticks than in the tree. */
static void advance_stat(const char *root, const unsigned *busy, const unsigned *idle, unsigned n)
{
    char text[4096];
    size_t len = 0;
    len += (size_t)snprintf(text + len, sizeof(text) - len, "cpu  1 2 3 4 5 6 7 0 0 0\n");
    for (unsigned c = 0; c < n; c++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "cpu%u %u 0 0 %u 0 0 0 0 0 0\n", c,
                                1000000 + busy[c], 9000000 + idle[c]);
    snprintf(text + len, sizeof(text) - len, "ctxt 1\n");
    govhw_put(root, "proc/stat", text);
}

static void test_acpi(void)
{
    char root[PATH_MAX];
    struct gov_sensor_reading rd;
    struct gov_events ev;
    gov_events_init(&ev);
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_sensors *s = open_root(root);
    if (!s)
        goto out;
    CHECK_EQ_INT(gov_sensors_zone_count(s), 2);
    const struct gov_thermal_zone *z0 = gov_sensors_zone(s, 0);
    CHECK_STR(z0->type, "x86_pkg_temp");
    CHECK(z0->is_cpu);
    CHECK_EQ_INT(z0->ntrips, 1); /* trip_point_1 = -274000 skipped */
    CHECK_EQ_INT(z0->trips[0].type, GOV_TRIP_PASSIVE);
    CHECK_EQ_INT(z0->trips[0].temp_mc, 90000);
    CHECK_STR(gov_sensors_zone(s, 1)->type, "acpitz");
    CHECK(!gov_sensors_zone(s, 1)->is_cpu);
    CHECK_EQ_INT(gov_sensors_hwmon_count(s), 6); /* acpitz temp1 + coretemp temp1..5 */

    unsigned busy[4] = {0}, idle[4] = {0};
    advance_stat(root, busy, idle, 4);
    CHECK_EQ_INT(gov_sensors_read(s, 1, &rd, &ev), 0);
    CHECK_NEAR(rd.cpu_temp_c, 47.0, 1e-9);
    CHECK_NEAR(rd.passive_trip_c, 90.0, 1e-9);
    CHECK_NEAR(rd.critical_trip_c, 105.0, 1e-9);
    CHECK_EQ_INT(rd.ncpus, 4);
    CHECK(rd.util[0] < 0); /* first sample: no delta yet */
    CHECK(!rd.fault);
    unsigned b2[4] = {75, 0, 100, 10}, i2[4] = {25, 100, 0, 30};
    advance_stat(root, b2, i2, 4);
    gov_sensors_read(s, 2, &rd, &ev);
    CHECK_NEAR(rd.util[0], 0.75, 1e-6);
    CHECK_NEAR(rd.util[1], 0.0, 1e-6);
    CHECK_NEAR(rd.util[2], 1.0, 1e-6);
    CHECK_NEAR(rd.util[3], 0.25, 1e-6);
    CHECK(!rd.fault);
    CHECK_EQ_INT(ev.count, 0);

    /* A hotter package is seen at once. */
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone0/temp", "91500\n");
    gov_sensors_read(s, 3, &rd, &ev);
    CHECK_NEAR(rd.cpu_temp_c, 91.5, 1e-9);

    /* The zone vanishes: fault + one event, however many ticks; it comes back: recovered. */
    char path[PATH_MAX];
    cmn_path(path, sizeof(path), root, "sys/devices/virtual/thermal/thermal_zone0/temp");
    unlink(path);
    gov_sensors_read(s, 4, &rd, &ev);
    CHECK(rd.fault);
    CHECK_CONTAINS(rd.fault_detail, "thermal_zone0/temp");
    CHECK_NEAR(rd.cpu_temp_c, 47.0, 1e-9); /* coretemp "Package id 0" takes over */
    gov_sensors_read(s, 5, &rd, &ev);
    CHECK(rd.fault);
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_LOST, "thermal_zone0/temp"), 1);
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone0/temp", "50000\n");
    gov_sensors_read(s, 6, &rd, &ev);
    CHECK(!rd.fault);
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_RECOVERED, NULL), 1);
    /* Implausible value (a disconnected diode reads -128 °C or 255 °C). */
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone0/temp", "255000\n");
    gov_sensors_read(s, 7, &rd, &ev);
    CHECK(rd.fault);
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_GARBAGE, "thermal_zone0/temp"), 1);
    govhw_put(root, "sys/devices/virtual/thermal/thermal_zone0/temp", "50000\n");
    gov_sensors_read(s, 8, &rd, &ev);
    CHECK(!rd.fault);
    /* Counters going backwards are garbage; /proc/stat vanishing is a lost sensor. */
    unsigned b3[4] = {10, 0, 0, 0}, i3[4] = {0};
    advance_stat(root, b3, i3, 4);
    gov_sensors_read(s, 9, &rd, &ev);
    CHECK(rd.fault);
    CHECK_CONTAINS(rd.fault_detail, "went backwards");
    cmn_path(path, sizeof(path), root, "proc/stat");
    unlink(path);
    gov_sensors_read(s, 10, &rd, &ev);
    CHECK(rd.fault);
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_LOST, "proc/stat"), 1);
    /* A FIFO in place of a sensor must not hang the tick. */
    cmn_path(path, sizeof(path), root, "sys/devices/virtual/thermal/thermal_zone1/temp");
    unlink(path);
    CHECK(mkfifo(path, 0644) == 0);
    gov_sensors_read(s, 11, &rd, &ev);
    CHECK(rd.fault);
    gov_sensors_free(s);
out:
    govhw_rm_rf(root);
}

static void test_broken(void)
{
    char root[PATH_MAX];
    struct gov_sensor_reading rd;
    struct gov_events ev;
    gov_events_init(&ev);
    if (govhw_copy_tree("broken", root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    struct gov_sensors *s = open_root(root);
    if (!s)
        goto out;
    CHECK_EQ_INT(gov_sensors_zone_count(s), 2); /* zone0 exists, its temp is garbage */
    gov_sensors_read(s, 1, &rd, &ev);
    CHECK(rd.fault);
    CHECK(!gov_sensors_zone(s, 0)->valid);
    CHECK_NEAR(rd.cpu_temp_c, 47.0, 1e-9); /* never "abc" read as 0 °C: coretemp instead */
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_GARBAGE, "thermal_zone0/temp"), 1);
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_GARBAGE, "cpu2 line"), 1);
    gov_sensors_read(s, 2, &rd, &ev);
    CHECK(rd.util[2] < 0); /* unknown */
    CHECK(rd.util[0] < 0); /* unchanged counters: no time passed, unknown */
    CHECK_EQ_INT(count_kind(&ev, GOV_EVENT_SENSOR_GARBAGE, NULL), 2); /* not repeated */
    gov_sensors_free(s);
out:
    govhw_rm_rf(root);
}

static void test_other_trees(void)
{
    static const struct {
        const char *tree;
        unsigned zones;
        double cpu_c, passive_c, crit_c;
    } t[] = {
        {"intel-pstate-n100", 2, 43.0, NAN, 110.0},
        {"amd-pstate-epp-8c", 1, 52.25, NAN, 105.0},
        {"rk3588-3cluster", 7, 47.999, 75.0, 115.0},
    };
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        char root[PATH_MAX];
        struct gov_sensor_reading rd;
        if (govhw_copy_tree(t[k].tree, root, sizeof(root)) != 0) {
            CHECK(0);
            continue;
        }
        struct gov_sensors *s = open_root(root);
        if (s) {
            CHECK_EQ_INT(gov_sensors_zone_count(s), t[k].zones);
            gov_sensors_read(s, 1, &rd, NULL);
            CHECK_MSG(fabs(rd.cpu_temp_c - t[k].cpu_c) < 1e-9, "%s: cpu %.3f", t[k].tree,
                      rd.cpu_temp_c);
            if (isnan(t[k].passive_c))
                CHECK_MSG(isnan(rd.passive_trip_c), "%s: passive %.1f", t[k].tree,
                          rd.passive_trip_c);
            else
                CHECK_NEAR(rd.passive_trip_c, t[k].passive_c, 1e-9);
            CHECK_NEAR(rd.critical_trip_c, t[k].crit_c, 1e-9);
            CHECK(!rd.fault);
            cJSON *exp = govhw_expected(t[k].tree);
            CHECK_EQ_INT(rd.ncpus, govhw_num(exp, "proc_stat_cpus"));
            cJSON_Delete(exp);
        }
        gov_sensors_free(s);
        govhw_rm_rf(root);
    }
}

int main(void)
{
    test_acpi();
    test_broken();
    test_other_trees();
    return et_finish();
}
