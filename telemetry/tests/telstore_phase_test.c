/* Energy by engine phase (issue 12): samples carry the interval's energy split by phase and the
 * boundary it was measured at (scope); the store keeps them, reads them back, and the report sums
 * the exact split instead of filing each interval under the phase its sample saw. A database from
 * before (schema 2) migrates: its rows get the scope their source implies, keep NULL phase
 * energy, stay readable, and the report files them by label and says how many. */
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/report.h"
#include "telemetry/store.h"

#define NS 1000000000ULL
#define T0 (1700000000ULL * NS)

static char dir[256];

static struct tel_sample mk(uint64_t t_s, double energy_j, const char *phase, int exact,
                            double prefill_j, double decode_j, double idle_j, unsigned tokens)
{
    struct tel_sample s;
    memset(&s, 0, sizeof(s));
    s.ts_ns = T0 + t_s * NS;
    s.power_w = 5;
    s.energy_j = energy_j;
    s.temp_c = 50;
    s.util = 0.5;
    snprintf(s.policy, sizeof(s.policy), "balanced");
    snprintf(s.phase, sizeof(s.phase), "%s", phase);
    s.source = TEL_SOURCE_ESTIMATE;
    s.tokens = tokens;
    s.has_phase_energy = exact;
    s.prefill_j = prefill_j;
    s.decode_j = decode_j;
    s.idle_j = idle_j;
    return s;
}

struct collect {
    unsigned n, exact;
    double prefill;
};

static int collect_cb(void *user, const struct tel_sample *s)
{
    struct collect *c = user;
    c->n++;
    if (s->has_phase_energy) {
        c->exact++;
        c->prefill += s->prefill_j;
    }
    return 0;
}

static struct tel_store *open_rw(const char *path)
{
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.retain_samples_s = p.retain_1m_s = p.retain_1h_s = 0;
    struct tel_store *s = NULL;
    char err[256];
    int rc = tel_store_open(path, &p, &s, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    return s;
}

static void report(struct tel_store *s, struct tel_report *r)
{
    char err[256];
    struct tel_report_params rp = {T0 - NS, T0 + 3600 * NS};
    int rc = tel_report_build(s, &rp, r, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
}

static void test_exact(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/exact.db", dir);
    struct tel_store *s = open_rw(path);
    if (!s)
        return;
    /* 1 Hz samples all labelled "idle" (a request shorter than a sample interval), while the
     * exact split says where the energy went: the report must follow the split */
    struct tel_sample v[] = {
        mk(0, 100, "idle", 1, 0, 0, 0, 0),        /* opens the window */
        mk(1, 105, "idle", 1, 1.5, 2.5, 1.0, 10), /* +5 J */
        mk(2, 112, "idle", 1, 0.0, 6.0, 1.0, 30), /* +7 J */
        mk(3, 114, "idle", 1, 0.0, 0.0, 2.0, 0),  /* +2 J */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        CHECK_EQ_INT(tel_store_append_sample(s, &v[i], NULL), 0);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    sqlite3 *db = tel_store_db(s);
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(
        sqlite3_prepare_v2(db, "SELECT scope, decode_j FROM samples WHERE seq = 3", -1, &st, NULL),
        SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "package");
    CHECK_NEAR(sqlite3_column_double(st, 1), 6.0, 1e-12);
    sqlite3_finalize(st);
    struct collect c = {0};
    CHECK_EQ_INT(tel_store_samples_after(s, 0, 0, collect_cb, &c), 4);
    CHECK_EQ_INT(c.exact, 4);
    CHECK_NEAR(c.prefill, 1.5, 1e-12);

    struct tel_report *r = calloc(1, sizeof(*r));
    CHECK(r != NULL);
    if (r) {
        report(s, r);
        CHECK_NEAR(r->by_phase.prefill_j, 1.5, 1e-9);
        CHECK_NEAR(r->by_phase.decode_j, 8.5, 1e-9);
        CHECK_NEAR(r->by_phase.idle_j, 4.0, 1e-9);
        CHECK_NEAR(r->by_phase.prefill_j + r->by_phase.decode_j + r->by_phase.idle_j, r->energy_j,
                   1e-9);
        CHECK_EQ_INT(r->by_phase.exact_intervals, 3);
        CHECK_EQ_INT(r->by_phase.label_intervals, 0);
        CHECK_NEAR(r->by_phase.active_j_per_token, 10.0 / 40, 1e-12);
        CHECK_NEAR(r->by_phase.all_j_per_token, 14.0 / 40, 1e-12);
        CHECK_STR(r->by_phase.scope, "package");
        CHECK_EQ_INT(r->by_phase.estimated_samples, 4);
        char *json = tel_report_json(r);
        CHECK(json != NULL);
        if (json) {
            CHECK_CONTAINS(json, "\"phase_energy\"");
            CHECK_CONTAINS(json, "\"estimated\":\ttrue");
            CHECK_CONTAINS(json, "\"scope\":\t\"package\"");
            free(json);
        }
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        CHECK(m != NULL);
        if (m) {
            tel_report_print(r, m);
            fclose(m);
            CHECK_CONTAINS(text, "prefill 1.5 J, decode 8.5 J, idle 4.0 J");
            CHECK_CONTAINS(text, "idle not attributed");
            CHECK_CONTAINS(text, "ESTIMATE");
            free(text);
        }
        free(r);
    }
    tel_store_close(s);
}

/* A schema-2 database (as released before issue 12) migrates and stays readable. */
static void test_migration_from_v2(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/v2.db", dir);
    struct tel_store *s = open_rw(path);
    if (!s)
        return;
    struct tel_sample v[] = {mk(0, 50, "idle", 0, 0, 0, 0, 0), mk(1, 53, "prefill", 0, 0, 0, 0, 0),
                             mk(2, 60, "decode", 0, 0, 0, 0, 20)};
    v[0].source = v[1].source = v[2].source = TEL_SOURCE_RAPL;
    for (size_t i = 0; i < 3; i++)
        CHECK_EQ_INT(tel_store_append_sample(s, &v[i], NULL), 0);
    tel_store_close(s);
    /* take it back to the version-2 layout */
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
                              "ALTER TABLE samples DROP COLUMN scope;"
                              "ALTER TABLE samples DROP COLUMN prefill_j;"
                              "ALTER TABLE samples DROP COLUMN decode_j;"
                              "ALTER TABLE samples DROP COLUMN idle_j;"
                              "DROP INDEX sessions_model;"
                              "ALTER TABLE sessions DROP COLUMN model;"
                              "PRAGMA user_version=2;",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(raw);

    s = open_rw(path);
    if (!s)
        return;
    sqlite3 *db = tel_store_db(s);
    sqlite3_stmt *st = NULL;
    CHECK_EQ_INT(sqlite3_prepare_v2(db,
                                    "SELECT (SELECT user_version FROM pragma_user_version),"
                                    " count(*), sum(scope = 'package'), count(prefill_j)"
                                    " FROM samples",
                                    -1, &st, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), tel_store_schema_version());
    CHECK_EQ_INT(sqlite3_column_int(st, 1), 3);
    CHECK_EQ_INT(sqlite3_column_int(st, 2), 3); /* rapl -> package */
    CHECK_EQ_INT(sqlite3_column_int(st, 3), 0); /* old rows have no split */
    sqlite3_finalize(st);
    struct collect c = {0};
    CHECK_EQ_INT(tel_store_samples_after(s, 0, 0, collect_cb, &c), 3);
    CHECK_EQ_INT(c.exact, 0);
    struct tel_report *r = calloc(1, sizeof(*r));
    CHECK(r != NULL);
    if (r) {
        report(s, r);
        CHECK_NEAR(r->by_phase.prefill_j, 3, 1e-9); /* by label */
        CHECK_NEAR(r->by_phase.decode_j, 7, 1e-9);
        CHECK_NEAR(r->by_phase.idle_j, 0, 1e-9);
        CHECK_EQ_INT(r->by_phase.label_intervals, 2);
        CHECK_EQ_INT(r->by_phase.exact_intervals, 0);
        CHECK_EQ_INT(r->by_phase.estimated_samples, 0);
        free(r);
    }
    tel_store_close(s);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/telstore_phase_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_exact();
    test_migration_from_v2();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return et_finish();
}
