/* The wall channel (telemetry/wall.h) against fake sysfs trees, and the store's schema 5:
 * - hwmon by device name (a power input) and by path (an energy counter, with a reset that is
 *   reported and never makes the total go back);
 * - a battery: measured while it discharges, the labelled estimate on AC;
 * - a meter that is configured but absent is an error naming it, not a silent estimate;
 * - the spec parser; the estimate's arithmetic;
 * - a schema-4 database file migrates to 5, its rows stay readable with no wall figure, and new
 *   rows keep theirs (and the rollups sum wall energy). */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/report.h"
#include "telemetry/store.h"
#include "telemetry/wall.h"

#define NS 1000000000ULL

static char root[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Writes text to root/rel, creating the directories. */
static void put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(const char *rel, const char *fmt, ...)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static struct tel_wall *open_wall(const char *spec, char *err, size_t err_len, int *rc)
{
    struct tel_wall_params p;
    tel_wall_params_defaults(&p);
    p.root = root;
    p.board_w = 1.0;
    p.psu_efficiency = 0.5;
    CHECK(tel_wall_parse_spec(spec, &p, err, err_len) == 0);
    struct tel_wall *w = NULL;
    *rc = tel_wall_new(&p, 0, 0, &w, err, err_len);
    return w;
}

static void test_spec(void)
{
    struct tel_wall_params p;
    tel_wall_params_defaults(&p);
    char err[256];
    CHECK(tel_wall_parse_spec("none", &p, err, sizeof(err)) == 0 && p.kind == TEL_WALL_NONE);
    CHECK(tel_wall_parse_spec("auto", &p, err, sizeof(err)) == 0 && p.kind == TEL_WALL_AUTO);
    CHECK(tel_wall_parse_spec("mqtt", &p, err, sizeof(err)) == 0 && p.kind == TEL_WALL_MQTT);
    CHECK(tel_wall_parse_spec("hwmon:ina219", &p, err, sizeof(err)) == 0 &&
          p.kind == TEL_WALL_HWMON);
    CHECK_STR(p.hwmon, "ina219");
    CHECK_EQ_INT(tel_wall_parse_spec("hwmon:", &p, err, sizeof(err)), -EINVAL);
    CHECK_EQ_INT(tel_wall_parse_spec("plug", &p, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "'plug'");
    /* mqtt needs a topic */
    tel_wall_params_defaults(&p);
    p.kind = TEL_WALL_MQTT;
    struct tel_wall *w = NULL;
    CHECK_EQ_INT(tel_wall_new(&p, 0, 0, &w, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "wall_meter_topic");
    /* the estimate: (package + board) / efficiency; nothing from an unknown package power */
    tel_wall_params_defaults(&p);
    p.board_w = 3;
    p.psu_efficiency = 0.75;
    CHECK_NEAR(tel_wall_estimate_w(&p, 6.0), 12.0, 1e-12);
    CHECK(isnan(tel_wall_estimate_w(&p, NAN)));
    p.psu_efficiency = 0;
    CHECK_EQ_INT(tel_wall_new(&p, 0, 0, &w, err, sizeof(err)), -EINVAL);
}

static void test_none_is_estimate(void)
{
    char err[256], note[256];
    int rc;
    struct tel_wall *w = open_wall("none", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, 0);
    struct tel_wall_reading r;
    CHECK(tel_wall_read(w, 2 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(!r.measured);
    CHECK_STR(r.source, "estimate");
    CHECK_NEAR(r.power_w, 10.0, 1e-12); /* (4 + 1) / 0.5 */
    CHECK_NEAR(r.energy_j, 20.0, 1e-9); /* 2 s */
    CHECK_STR(note, "");                /* nothing configured: nothing to report */
    /* an unknown package power adds nothing, and never takes anything away */
    CHECK(tel_wall_read(w, 3 * NS, NAN, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK_NEAR(r.energy_j, 20.0, 1e-9);
    tel_wall_free(w);
}

static void test_hwmon_by_name(void)
{
    put("sys/class/hwmon/hwmon0/name", "k10temp\n");
    put("sys/class/hwmon/hwmon0/temp1_input", "40000\n");
    put("sys/class/hwmon/hwmon3/name", "ina219\n");
    put("sys/class/hwmon/hwmon3/power1_input", "7500000\n"); /* 7.5 W */
    char err[512], note[512];
    int rc;
    struct tel_wall *w = open_wall("hwmon:ina219", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, 0);
    if (!w)
        return;
    struct tel_wall_reading r;
    CHECK(tel_wall_read(w, 2 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(r.measured);
    CHECK_STR(r.source, "hwmon:ina219");
    CHECK_NEAR(r.power_w, 7.5, 1e-9);
    CHECK_NEAR(r.energy_j, 15.0, 1e-9);
    CHECK_CONTAINS(note, "measured");
    /* the sensor vanishes: the estimate, said once, with the file named */
    char gone[512];
    snprintf(gone, sizeof(gone), "%s/sys/class/hwmon/hwmon3/power1_input", root);
    CHECK(unlink(gone) == 0);
    CHECK(tel_wall_read(w, 3 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(!r.measured);
    CHECK_STR(r.source, "estimate");
    CHECK_CONTAINS(note, "power1_input");
    CHECK_CONTAINS(note, "estimate");
    CHECK_NEAR(r.energy_j, 25.0, 1e-9); /* + 10 W for 1 s */
    CHECK(tel_wall_read(w, 4 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK_STR(note, ""); /* not repeated */
    put("sys/class/hwmon/hwmon3/power1_input", "5000000\n");
    CHECK(tel_wall_read(w, 5 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(r.measured);
    CHECK_CONTAINS(note, "reading again");
    tel_wall_free(w);
    /* an absent device is an error naming it */
    w = open_wall("hwmon:acpi_power_meter", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, -ENOENT);
    CHECK(w == NULL);
    CHECK_CONTAINS(err, "acpi_power_meter");
}

static void test_hwmon_counter_path(void)
{
    put("sys/class/hwmon/hwmon5/name", "meter\n");
    put("sys/class/hwmon/hwmon5/energy1_input", "1000000\n");
    char err[512], note[512];
    int rc;
    struct tel_wall *w = open_wall("hwmon:/sys/class/hwmon/hwmon5", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, 0);
    if (!w)
        return;
    struct tel_wall_reading r;
    put("sys/class/hwmon/hwmon5/energy1_input", "21000000\n"); /* +20 J in 2 s */
    CHECK(tel_wall_read(w, 2 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(r.measured);
    CHECK_STR(r.source, "hwmon:/sys/class/hwmon/hwmon5");
    CHECK_NEAR(r.energy_j, 20.0, 1e-9);
    CHECK_NEAR(r.power_w, 10.0, 1e-9);
    put("sys/class/hwmon/hwmon5/energy1_input", "500000\n"); /* a reset */
    CHECK(tel_wall_read(w, 3 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK_CONTAINS(note, "counter reset");
    CHECK_NEAR(r.energy_j, 20.0, 1e-9); /* never back */
    put("sys/class/hwmon/hwmon5/energy1_input", "3500000\n");
    CHECK(tel_wall_read(w, 4 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK_NEAR(r.energy_j, 23.0, 1e-9);
    tel_wall_free(w);
    /* a path to a channel file; a path to something that is not a channel */
    w = open_wall("hwmon:/sys/class/hwmon/hwmon5/energy1_input", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, 0);
    tel_wall_free(w);
    w = open_wall("hwmon:/sys/class/hwmon/hwmon5/name", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_CONTAINS(err, "not an energy or power channel");
}

static void test_battery(void)
{
    char err[512], note[512];
    int rc;
    struct tel_wall *w = open_wall("battery", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, -ENOENT); /* none yet */
    CHECK_CONTAINS(err, "no battery");
    put("sys/class/power_supply/AC/type", "Mains\n");
    put("sys/class/power_supply/BAT0/type", "Battery\n");
    put("sys/class/power_supply/BAT0/status", "Charging\n");
    put("sys/class/power_supply/BAT0/current_now", "1500000\n");
    put("sys/class/power_supply/BAT0/voltage_now", "8000000\n");
    w = open_wall("battery", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, 0);
    if (!w)
        return;
    struct tel_wall_reading r;
    CHECK(tel_wall_read(w, 1 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(!r.measured); /* on AC a battery says nothing about the box */
    CHECK_CONTAINS(note, "no battery is discharging");
    tel_wall_free(w);
    put("sys/class/power_supply/BAT0/status", "Discharging\n");
    w = open_wall("auto", err, sizeof(err), &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK(tel_wall_read(w, 1 * NS, 4.0, TEL_SOURCE_RAPL, &r, note, sizeof(note)) == 0);
    CHECK(r.measured);
    CHECK_STR(r.source, "battery");
    CHECK_NEAR(r.power_w, 12.0, 1e-9); /* 1.5 A x 8 V */
    tel_wall_free(w);
}

static void test_schema_v4_file(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/v4.db", root);
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    char err[256];
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &sp, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    struct tel_sample v;
    memset(&v, 0, sizeof(v));
    uint64_t now_s = (uint64_t)time(NULL) / 60 * 60; /* a minute's start: one rollup bucket */
    v.ts_ns = now_s * NS;
    v.energy_j = 50;
    v.power_w = 5;
    v.source = TEL_SOURCE_RAPL;
    snprintf(v.phase, sizeof(v.phase), "idle");
    CHECK_EQ_INT(tel_store_append_sample(s, &v, NULL), 0);
    tel_store_close(s);
    /* back to the schema-4 layout, as a database written before this change */
    sqlite3 *raw = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &raw), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(raw,
                              "ALTER TABLE samples DROP COLUMN wall_power_w;"
                              "ALTER TABLE samples DROP COLUMN wall_energy_j;"
                              "ALTER TABLE samples DROP COLUMN wall_source;"
                              "ALTER TABLE samples DROP COLUMN wall_measured;"
                              "ALTER TABLE samples DROP COLUMN wall_prefill_j;"
                              "ALTER TABLE samples DROP COLUMN wall_decode_j;"
                              "ALTER TABLE samples DROP COLUMN wall_idle_j;"
                              "ALTER TABLE rollup_1m DROP COLUMN wall_energy_j;"
                              "ALTER TABLE rollup_1h DROP COLUMN wall_energy_j;"
                              "PRAGMA user_version=4;",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(raw);

    CHECK_EQ_INT(tel_store_open(path, &sp, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    double total = -1;
    CHECK_EQ_INT(tel_store_wall_energy_total_j(s, &total), 0);
    CHECK_NEAR(total, 0.0, 0); /* no wall figure was kept before */
    memset(&v, 0, sizeof(v));
    v.ts_ns = (now_s + 1) * NS;
    v.energy_j = 55;
    v.source = TEL_SOURCE_RAPL;
    v.has_wall = 1;
    v.wall_power_w = 9;
    v.wall_energy_j = 90;
    v.wall_measured = 1;
    snprintf(v.wall_source, sizeof(v.wall_source), "mqtt:tele/plug1/SENSOR");
    CHECK_EQ_INT(tel_store_append_sample(s, &v, NULL), 0);
    v.ts_ns += NS;
    v.energy_j = 60;
    v.wall_energy_j = 99;
    CHECK_EQ_INT(tel_store_append_sample(s, &v, NULL), 0);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    CHECK_NEAR(tel_store_committed_wall_energy_j(s), 99.0, 1e-9);
    CHECK_EQ_INT(tel_store_maintain(s), 0);
    sqlite3 *db = tel_store_db(s);
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(sqlite3_prepare_v2(db,
                                    "SELECT (SELECT user_version FROM pragma_user_version),"
                                    " count(*), count(wall_energy_j),"
                                    " sum(wall_source = 'mqtt:tele/plug1/SENSOR'),"
                                    " sum(wall_measured),"
                                    " (SELECT sum(wall_energy_j) FROM rollup_1m)"
                                    " FROM samples",
                                    -1, &st, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 5);
    CHECK_EQ_INT(sqlite3_column_int(st, 1), 3);
    CHECK_EQ_INT(sqlite3_column_int(st, 2), 2); /* the old row has none */
    CHECK_EQ_INT(sqlite3_column_int(st, 3), 2);
    CHECK_EQ_INT(sqlite3_column_int(st, 4), 2);
    CHECK_NEAR(sqlite3_column_double(st, 5), 9.0, 1e-9); /* 99 - 90 within the minute */
    sqlite3_finalize(st);
    tel_store_close(s);
    /* reopened: the wall total continues from disk */
    CHECK_EQ_INT(tel_store_open(path, &sp, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(tel_store_wall_energy_total_j(s, &total), 0);
    CHECK_NEAR(total, 99.0, 1e-9);
    tel_store_close(s);
}

/* `ember report` at both boundaries: J/token with and without idle at the package and at the
 * wall, and how much of the wall figure was measured. */
static void test_report(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/report.db", root);
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    char err[256];
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &sp, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    uint64_t t0 = (uint64_t)time(NULL) - 100;
    /* energy, prefill, decode, idle, wall total, wall prefill/decode/idle, tokens, measured */
    static const double rows[][10] = {
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
        {10, 4, 6, 0, 30, 12, 18, 0, 10, 1},
        {15, 0, 0, 5, 40, 0, 0, 10, 0, 0},
        {20, 0, 0, 5, 50, 0, 0, 10, 0, 1},
    };
    for (int i = 0; i < 4; i++) {
        struct tel_sample v;
        memset(&v, 0, sizeof(v));
        v.ts_ns = (t0 + (uint64_t)i) * NS;
        v.source = TEL_SOURCE_RAPL;
        v.energy_j = rows[i][0];
        v.power_w = 5;
        snprintf(v.phase, sizeof(v.phase), "idle");
        snprintf(v.policy, sizeof(v.policy), "balanced");
        v.has_phase_energy = 1;
        v.prefill_j = rows[i][1];
        v.decode_j = rows[i][2];
        v.idle_j = rows[i][3];
        v.has_wall = 1;
        v.wall_energy_j = rows[i][4];
        v.wall_prefill_j = rows[i][5];
        v.wall_decode_j = rows[i][6];
        v.wall_idle_j = rows[i][7];
        v.tokens = (uint64_t)rows[i][8];
        v.wall_measured = rows[i][9] != 0;
        snprintf(v.wall_source, sizeof(v.wall_source), "%s",
                 v.wall_measured ? "mqtt:tele/plug1/SENSOR" : "estimate");
        CHECK_EQ_INT(tel_store_append_sample(s, &v, NULL), 0);
    }
    CHECK_EQ_INT(tel_store_flush(s), 0);
    struct tel_report_params rp = {.since_ns = (t0 - 10) * NS, .until_ns = (t0 + 10) * NS};
    struct tel_report r;
    CHECK_EQ_INT(tel_report_build(s, &rp, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT((int)r.tokens, 10);
    CHECK_NEAR(r.by_phase.active_j_per_token, 1.0, 1e-9); /* (4 + 6) / 10 */
    CHECK_NEAR(r.by_phase.all_j_per_token, 2.0, 1e-9);    /* + 10 J idle */
    CHECK_EQ_INT((int)r.wall.intervals, 3);
    CHECK_EQ_INT((int)r.wall.measured_intervals, 2);
    CHECK_NEAR(r.wall.energy_j, 50.0, 1e-9);
    CHECK_NEAR(r.wall.active_j_per_token, 3.0, 1e-9);
    CHECK_NEAR(r.wall.all_j_per_token, 5.0, 1e-9);
    CHECK_STR(r.wall.source, "mqtt:tele/plug1/SENSOR");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tel_report_print(&r, f);
    fclose(f);
    CHECK_CONTAINS(text, "at the wall");
    CHECK_CONTAINS(text, "3.0000 J/token prefill + decode (idle not attributed), 5.0000 J/token "
                         "with idle attributed");
    CHECK_CONTAINS(text, "measured in 2 of 3 intervals (mostly mqtt:tele/plug1/SENSOR)");
    CHECK_CONTAINS(text, "ESTIMATE from the package power");
    free(text);
    char *json = tel_report_json(&r);
    CHECK(json != NULL);
    CHECK_CONTAINS(json, "\"wall_energy\"");
    CHECK_CONTAINS(json, "\"measured_intervals\":\t2");
    CHECK_CONTAINS(json, "\"source\":\t\"mqtt:tele/plug1/SENSOR\"");
    free(json);
    tel_store_close(s);
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/telwall_XXXXXX");
    if (!mkdtemp(root))
        return 1;
    test_spec();
    test_none_is_estimate();
    test_hwmon_by_name();
    test_hwmon_counter_path();
    test_battery();
    test_schema_v4_file();
    test_report();
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return et_finish();
}
