/* Unit tests of the sysfs/procfs value parsers and the event ring: CPU lists, frequency lists
 * (descending ACPI order, junk tokens, zero, duplicates), word lists, /proc/stat lines
 * (truncated, aggregate, garbage), utilisation deltas and trip types. */
#include <errno.h>
#include <math.h>

#include "ember_test.h"
#include "governor/backend.h"
#include "governor/event.h"
#include "governor/safety.h"
#include "governor/sensors.h"

static void test_cpu_list(void)
{
    uint16_t c[GOV_HW_MAX_CPUS];
    size_t n = 0;
    CHECK_EQ_INT(gov_parse_cpu_list("0-3\n", c, GOV_HW_MAX_CPUS, &n), 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(c[3], 3);
    CHECK_EQ_INT(gov_parse_cpu_list("4 5", c, GOV_HW_MAX_CPUS, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(c[0], 4);
    CHECK_EQ_INT(gov_parse_cpu_list("0,2-3,8", c, GOV_HW_MAX_CPUS, &n), 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(c[3], 8);
    CHECK_EQ_INT(gov_parse_cpu_list("3,1-2,2", c, GOV_HW_MAX_CPUS, &n), 0); /* unordered, dup */
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(c[0], 1);
    CHECK_EQ_INT(gov_parse_cpu_list("", c, GOV_HW_MAX_CPUS, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(gov_parse_cpu_list("3-1", c, GOV_HW_MAX_CPUS, &n), -EINVAL);
    CHECK_EQ_INT(gov_parse_cpu_list("a", c, GOV_HW_MAX_CPUS, &n), -EINVAL);
    CHECK_EQ_INT(gov_parse_cpu_list("1-", c, GOV_HW_MAX_CPUS, &n), -EINVAL);
    CHECK_EQ_INT(gov_parse_cpu_list("-1", c, GOV_HW_MAX_CPUS, &n), -EINVAL);
    CHECK_EQ_INT(gov_parse_cpu_list("0-9999", c, GOV_HW_MAX_CPUS, &n), -ERANGE);
    CHECK_EQ_INT(gov_parse_cpu_list("0-7", c, 4, &n), -ERANGE);
}

static void test_freq_list(void)
{
    uint32_t f[GOV_HW_MAX_FREQS];
    size_t n = 0, bad = 0;
    /* The acpi-cpufreq order is descending with a trailing space. */
    CHECK_EQ_INT(
        gov_parse_freq_list("2901000 2900000 2800000 800000 \n", f, GOV_HW_MAX_FREQS, &n, &bad), 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(f[0], 800000);
    CHECK_EQ_INT(f[3], 2901000);
    /* broken tree: a junk token at the end; zero and a negative are junk too. */
    CHECK_EQ_INT(gov_parse_freq_list("1000 2000 junk 0 -5 12x 2000", f, GOV_HW_MAX_FREQS, &n, &bad),
                 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(bad, 4);
    CHECK_EQ_INT(gov_parse_freq_list("99999999999", f, GOV_HW_MAX_FREQS, &n, &bad), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(bad, 1);
    CHECK_EQ_INT(gov_parse_freq_list("1 2 3", f, 2, &n, &bad), -ERANGE);
    uint32_t k = 0;
    CHECK_EQ_INT(gov_parse_khz(" 1800000\n", &k), 0);
    CHECK_EQ_INT(k, 1800000);
    CHECK(gov_parse_khz("<unsupported>", &k) != 0);
    CHECK(gov_parse_khz("4294967296", &k) != 0);
    CHECK(gov_parse_khz("", &k) != 0);
}

static void test_words(void)
{
    char w[GOV_HW_MAX_GOVERNORS][GOV_HW_NAME_LEN];
    size_t n;
    CHECK_EQ_INT(gov_parse_word_list("conservative ondemand userspace powersave performance "
                                     "schedutil\n",
                                     w, GOV_HW_MAX_GOVERNORS, &n),
                 0);
    CHECK_EQ_INT(n, 6);
    CHECK_STR(w[5], "schedutil");
    CHECK_EQ_INT(gov_parse_word_list("a b c", w, 2, &n), -E2BIG);
    CHECK_EQ_INT(gov_parse_word_list("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", w, 2, &n),
                 -E2BIG);
}

static void test_procstat(void)
{
    struct gov_cpu_times t[8];
    size_t n = 0;
    const char *good = "cpu  100 0 100 800 0 0 0 0 0 0\n"
                       "cpu0 10 1 5 80 4 0 0 0 7 0\n"
                       "cpu1 10 0 10 80 0 0 0 0 0 0\n"
                       "cpu2 1 2 3\n"
                       "cpu3 10 0 10 80 0 0 0 0 0 0 junk\n"
                       "intr 5 6\nctxt 7\n";
    CHECK_EQ_INT(gov_procstat_parse(good, strlen(good), t, 8, &n), 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(t[0].cpu, 0);
    CHECK(t[0].valid);
    CHECK_EQ_INT(t[0].total, 100); /* 10+1+5+80+4, guest (7) excluded */
    CHECK_EQ_INT(t[0].idle, 84);
    CHECK(!t[2].valid); /* truncated line: unknown, the others still valid */
    CHECK(!t[3].valid); /* trailing junk */
    CHECK(t[1].valid);
    CHECK_EQ_INT(gov_procstat_parse("cpu 1 2 3 4\n", 12, t, 8, &n), -EINVAL);
    CHECK_EQ_INT(gov_procstat_parse("cpu9999 1 2 3 4\n", 16, t, 8, &n), -ERANGE);
    /* no newline at the end, and a line cut by len */
    CHECK_EQ_INT(gov_procstat_parse("cpu0 1 2 3 4", 12, t, 8, &n), 0);
    CHECK(t[0].valid);
    CHECK_EQ_INT(gov_procstat_parse("cpu0 1 2 3 4", 9, t, 8, &n), 0);
    CHECK(!t[0].valid);

    struct gov_cpu_times a = {.cpu = 0, .valid = 1, .total = 1000, .idle = 800};
    struct gov_cpu_times b = {.cpu = 0, .valid = 1, .total = 1100, .idle = 825};
    CHECK_NEAR(gov_cpu_util(&a, &b), 0.75, 1e-6);
    CHECK_NEAR(gov_cpu_util(&a, &a), -1.0, 0); /* no time passed */
    CHECK_NEAR(gov_cpu_util(&b, &a), -2.0, 0); /* backwards = garbage */
    struct gov_cpu_times c = b;
    c.idle = 950; /* more idle than elapsed */
    CHECK_NEAR(gov_cpu_util(&a, &c), -2.0, 0);
    c.valid = 0;
    CHECK_NEAR(gov_cpu_util(&a, &c), -1.0, 0);
}

static void test_names(void)
{
    CHECK_EQ_INT(gov_trip_type_parse("passive"), GOV_TRIP_PASSIVE);
    CHECK_EQ_INT(gov_trip_type_parse("critical"), GOV_TRIP_CRITICAL);
    CHECK_EQ_INT(gov_trip_type_parse("Passive"), GOV_TRIP_UNKNOWN);
    CHECK(gov_sensor_name_is_cpu("x86_pkg_temp"));
    CHECK(gov_sensor_name_is_cpu("bigcore0-thermal"));
    CHECK(gov_sensor_name_is_cpu("k10temp"));
    CHECK(gov_sensor_name_is_cpu("soc-thermal"));
    CHECK(!gov_sensor_name_is_cpu("acpitz"));
    CHECK(!gov_sensor_name_is_cpu("gpu-thermal"));
    CHECK(!gov_sensor_name_is_cpu("nvme"));
}

static void test_events(void)
{
    struct gov_events ev;
    struct gov_event e;
    gov_events_init(&ev);
    CHECK_EQ_INT(gov_events_pop(&ev, &e), 0);
    for (int i = 0; i < GOV_EVENTS_CAP + 5; i++)
        gov_events_push(&ev, GOV_EVENT_HW_QUIRK, -i, "n%d", i);
    CHECK_EQ_INT(ev.count, GOV_EVENTS_CAP);
    CHECK_EQ_INT(ev.dropped, 5);
    CHECK_EQ_INT(gov_events_pop(&ev, &e), 1);
    CHECK_STR(e.detail, "n5"); /* the oldest five were dropped */
    CHECK_STR(gov_event_kind_name(GOV_EVENT_WRITE_MISMATCH), "write_mismatch");
    CHECK_STR(gov_event_kind_name((enum gov_event_kind)999), "unknown");
    gov_events_push(NULL, GOV_EVENT_HW_QUIRK, 0, "ignored");
}

static void test_saved_parse(void)
{
    struct gov_saved_state st, back;
    char err[256];
    memset(&st, 0, sizeof(st));
    st.version = GOV_SAVED_VERSION;
    strcpy(st.root, "/tmp/x");
    st.pid = 42;
    st.npol = 2;
    strcpy(st.pol[0].name, "policy0");
    strcpy(st.pol[0].governor, "schedutil");
    st.pol[0].min_khz = 800000;
    st.pol[0].max_khz = 2901000;
    st.pol[0].boost = 1;
    strcpy(st.pol[1].name, "policy4");
    strcpy(st.pol[1].governor, "userspace");
    st.pol[1].setspeed_khz = 1800000;
    strcpy(st.pol[1].epp, "balance_power");
    st.pol[1].boost = -1;
    st.boost = 1;
    st.no_turbo = -1;
    st.min_perf_pct = 21;
    st.max_perf_pct = 100;
    char *json = gov_saved_to_json(&st);
    CHECK(json != NULL);
    CHECK_EQ_INT(gov_saved_parse(json, strlen(json), &back, err, sizeof(err)), 0);
    CHECK_STR(back.root, "/tmp/x");
    CHECK_EQ_INT(back.npol, 2);
    CHECK_STR(back.pol[1].governor, "userspace");
    CHECK_EQ_INT(back.pol[1].setspeed_khz, 1800000);
    CHECK_STR(back.pol[1].epp, "balance_power");
    CHECK_EQ_INT(back.pol[0].boost, 1);
    CHECK_EQ_INT(back.min_perf_pct, 21);
    free(json);
    const char *bad[] = {
        "",
        "[]",
        "{\"version\":2}",
        "{\"version\":1,\"sysfs_root\":\"/\"}",
        "{\"version\":1,\"sysfs_root\":\"/\",\"pid\":1,\"wall_ns\":0,\"boost\":2,\"no_turbo\":0,"
        "\"min_perf_pct\":0,\"max_perf_pct\":0,\"policies\":[]}",
        "{\"version\":1,\"sysfs_root\":\"/\",\"pid\":1,\"wall_ns\":0,\"boost\":1,\"no_turbo\":0,"
        "\"min_perf_pct\":0,\"max_perf_pct\":0,\"policies\":[{\"name\":\"cpu0\"}]}",
        "{\"version\":1,\"sysfs_root\":\"/\",\"pid\":1,\"wall_ns\":0,\"boost\":1,\"no_turbo\":0,"
        "\"min_perf_pct\":0,\"max_perf_pct\":0,\"policies\":[{\"name\":\"policy0\",\"governor\":"
        "\"a b\",\"epp\":\"\",\"min_khz\":1,\"max_khz\":1,\"setspeed_khz\":0,\"boost\":-1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(gov_saved_parse(bad[i], strlen(bad[i]), &back, err, sizeof(err)) == -EINVAL,
                  "bad[%zu] accepted", i);
}

int main(void)
{
    test_cpu_list();
    test_freq_list();
    test_words();
    test_procstat();
    test_names();
    test_events();
    test_saved_parse();
    return et_finish();
}
