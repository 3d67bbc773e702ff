/* Store tests against a real SQLite file in a temporary directory: batching (commits counted),
 * read back and replay across committed and queued rows, meta, sessions, events, seq
 * reservation, 1-minute and 1-hour rollups against hand-computed values, retention by age and by
 * quota (the file shrinks), migration from a version-1 database built here with the v1 SQL, and
 * the full-disk path (PRAGMA max_page_count): the agent keeps going, an event is raised, and
 * every queued sample is written once space returns. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/store.h"

#define NS 1000000000ULL
#define T0 (1700000000ULL * NS) /* 2023-11-14T22:13:20Z, a whole minute: 1700000000 % 60 = 20 */

static char tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void make_tmp(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/telstore_store_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void db_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static struct tel_sample mk(uint64_t ts_ns, double power_w, double energy_j, const char *phase)
{
    struct tel_sample s;
    memset(&s, 0, sizeof(s));
    s.ts_ns = ts_ns;
    s.power_w = power_w;
    s.energy_j = energy_j;
    s.temp_c = 50.0;
    s.util = 0.5;
    s.n_freq = 2;
    s.freq_mhz[0] = 2000;
    s.freq_mhz[1] = 3000;
    snprintf(s.policy, sizeof(s.policy), "balanced");
    snprintf(s.phase, sizeof(s.phase), "%s", phase);
    s.source = TEL_SOURCE_RAPL;
    s.tokens = 3;
    s.tokens_per_s = 3.0;
    return s;
}

static int64_t q_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

static double q_dbl(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    double v = NAN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *q_text(sqlite3 *db, const char *sql, char *buf, size_t cap)
{
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

struct collect {
    uint64_t seqs[4096];
    double energy[4096];
    int n;
    int stop_after;
};

static int collect_cb(void *user, const struct tel_sample *s)
{
    struct collect *c = user;
    if (c->n < 4096) {
        c->seqs[c->n] = s->seq;
        c->energy[c->n] = s->energy_j;
        c->n++;
    }
    return c->stop_after && c->n >= c->stop_after;
}

static void test_batching_and_readback(void)
{
    char path[512], err[256], buf[256];
    db_path(path, sizeof(path), "batch.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 10;
    p.commit_interval_ms = 3600000; /* only the row count triggers here */
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s) {
        fprintf(stderr, "open: %s\n", err);
        return;
    }
    sqlite3 *db = tel_store_db(s);
    CHECK_STR(q_text(db, "PRAGMA journal_mode", buf, sizeof(buf)), "wal");
    CHECK_EQ_INT(q_i64(db, "PRAGMA synchronous"), 1); /* NORMAL */
    CHECK_EQ_INT(q_i64(db, "PRAGMA auto_vacuum"), 2); /* INCREMENTAL */
    CHECK_EQ_INT(q_i64(db, "PRAGMA user_version"), tel_store_schema_version());

    for (int i = 0; i < 25; i++) {
        struct tel_sample sm = mk(T0 + (uint64_t)i * NS, 10.0 + i, 100.0 + i, "decode");
        uint64_t seq = 0;
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, &seq), 0);
        CHECK_EQ_INT(seq, (uint64_t)i + 1);
        CHECK_EQ_INT(sm.seq, seq);
    }
    struct tel_store_stats st;
    tel_store_get_stats(s, &st);
    CHECK_EQ_INT(st.commits, 2); /* rows 1-10 and 11-20 */
    CHECK_EQ_INT(st.samples_written, 20);
    CHECK_EQ_INT(st.pending, 5);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples"), 20);

    /* replay sees committed rows, then queued ones, in order */
    struct collect c = {0};
    CHECK_EQ_INT(tel_store_samples_after(s, 15, 0, collect_cb, &c), 10);
    CHECK_EQ_INT(c.n, 10);
    for (int i = 0; i < c.n; i++)
        CHECK_EQ_INT(c.seqs[i], 16 + i);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(tel_store_samples_after(s, 0, 7, collect_cb, &c), 7);
    CHECK_EQ_INT(c.seqs[6], 7);
    CHECK_NEAR(c.energy[6], 106.0, 1e-9);
    memset(&c, 0, sizeof(c));
    c.stop_after = 3;
    CHECK_EQ_INT(tel_store_samples_after(s, 18, 0, collect_cb, &c), 3);
    CHECK_EQ_INT(c.seqs[2], 21);

    /* energy never decreases, whatever is handed in */
    struct tel_sample back = mk(T0 + 30 * NS, 5, 50.0, "idle");
    CHECK_EQ_INT(tel_store_append_sample(s, &back, NULL), 0);
    CHECK_NEAR(back.energy_j, 124.0, 1e-9);
    struct tel_sample bad = mk(T0, 1, 1, "idle");
    bad.n_freq = TEL_MAX_FREQ + 1;
    CHECK_EQ_INT(tel_store_append_sample(s, &bad, NULL), -EINVAL);

    /* meta is queued with the batch and readable before it is written */
    CHECK_EQ_INT(tel_store_meta_set_u64(s, TEL_META_MQTT_ACKED_SEQ, 17), 0);
    uint64_t acked = 0;
    CHECK_EQ_INT(tel_store_meta_get_u64(s, TEL_META_MQTT_ACKED_SEQ, &acked), 0);
    CHECK_EQ_INT(acked, 17);
    CHECK_EQ_INT(tel_store_meta_get(s, "no-such-key", buf, sizeof(buf)), -ENOENT);

    struct tel_session se = {0};
    se.ts_ns = T0;
    se.prompt_tokens = 10;
    se.gen_tokens = 30;
    se.energy_j = 8.0;
    se.j_per_token = 0.2;
    se.ttft_ms = 120;
    se.duration_ms = 2000;
    snprintf(se.policy, sizeof(se.policy), "balanced");
    snprintf(se.model, sizeof(se.model), "qwen/qwen3-0.6b-q8_0");
    CHECK_EQ_INT(tel_store_add_session(s, &se), 0);
    CHECK_EQ_INT(se.id, 1);
    CHECK_EQ_INT(tel_store_add_event(s, T0, "governor", "policy balanced -> efficiency"), 0);
    CHECK_EQ_INT(tel_store_add_event(s, T0, "", "x"), -EINVAL);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples"), 26);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM sessions"), 1);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM sessions WHERE model='qwen/qwen3-0.6b-q8_0'"), 1);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM events WHERE kind='governor'"), 1);
    CHECK_STR(q_text(db, "SELECT value FROM meta WHERE key='mqtt_acked_seq'", buf, sizeof(buf)),
              "17");
    /* the first commit saved the total; later ones only at the maintain interval */
    CHECK_NEAR(q_dbl(db, "SELECT CAST(value AS REAL) FROM meta WHERE key='energy_total_j'"), 109.0,
               1e-9);
    CHECK_EQ_INT(q_i64(db, "PRAGMA page_size"), 512);
    CHECK_EQ_INT(q_i64(db, "PRAGMA wal_autocheckpoint"), 8192);
    CHECK_STR(q_text(db, "SELECT freq_mhz FROM samples WHERE seq=1", buf, sizeof(buf)),
              "[2000,3000]");
    CHECK_NEAR(q_dbl(db, "SELECT freq_avg_mhz FROM samples WHERE seq=1"), 2500.0, 1e-9);
    CHECK_STR(q_text(db, "SELECT source FROM samples WHERE seq=1", buf, sizeof(buf)), "rapl");
    /* a NaN temperature is stored as NULL and read back as NaN */
    struct tel_sample nan_s = mk(T0 + 31 * NS, 5, 130.0, "idle");
    nan_s.temp_c = NAN;
    CHECK_EQ_INT(tel_store_append_sample(s, &nan_s, NULL), 0);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    CHECK_EQ_INT(q_i64(db, "SELECT temp_c IS NULL FROM samples WHERE seq=27"), 1);
    tel_store_close(s);

    /* reopen: the clean close left no seq gap; the energy total is restored */
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    double total = 0;
    CHECK_EQ_INT(tel_store_energy_total_j(s, &total), 0);
    CHECK_NEAR(total, 130.0, 1e-9);
    struct tel_sample next = mk(T0 + 40 * NS, 5, 131.0, "idle");
    CHECK_EQ_INT(tel_store_append_sample(s, &next, NULL), 0);
    CHECK_EQ_INT(next.seq, 28);
    struct tel_session se2 = {0};
    CHECK_EQ_INT(tel_store_add_session(s, &se2), 0);
    CHECK_EQ_INT(se2.id, 2);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(tel_store_samples_after(s, 26, 0, collect_cb, &c), 2);
    CHECK_EQ_INT(c.seqs[0], 27);
    CHECK_EQ_INT(c.seqs[1], 28);
    CHECK(isnan(nan_s.temp_c));
    tel_store_close(s);

    /* read-only open (ember report) sees everything and refuses writes */
    struct tel_store_params ro;
    tel_store_params_defaults(&ro);
    ro.read_only = 1;
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &ro, &s, err, sizeof(err)), 0);
    if (s) {
        CHECK_EQ_INT(q_i64(tel_store_db(s), "SELECT count(*) FROM samples"), 28);
        struct tel_sample w = mk(T0, 1, 1, "idle");
        CHECK_EQ_INT(tel_store_append_sample(s, &w, NULL), -EPERM);
        uint64_t a = 0;
        CHECK_EQ_INT(tel_store_meta_get_u64(s, TEL_META_MQTT_ACKED_SEQ, &a), 0);
        CHECK_EQ_INT(a, 17);
        tel_store_close(s);
    }
}

static void test_time_batching(void)
{
    char path[512], err[256];
    db_path(path, sizeof(path), "time.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_interval_ms = 200;
    p.commit_rows = 1000;
    p.pending_max = 1000;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    CHECK_EQ_INT(tel_store_next_due_ms(s), -1);
    struct tel_sample sm = mk(T0, 1, 1, "idle");
    CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    int64_t due = tel_store_next_due_ms(s);
    CHECK(due > 0 && due <= 200);
    struct tel_store_stats st;
    tel_store_get_stats(s, &st);
    CHECK_EQ_INT(st.commits, 0);
    usleep(250000);
    CHECK_EQ_INT(tel_store_next_due_ms(s), 0);
    CHECK_EQ_INT(tel_store_tick(s), 0);
    tel_store_get_stats(s, &st);
    CHECK_EQ_INT(st.commits, 1);
    CHECK_EQ_INT(st.pending, 0);
    tel_store_close(s);
}

/* Known values: minute 0 holds 3 samples, minute 1 holds 2, minute 2 holds 1 (still open). */
static void test_rollups(void)
{
    char path[512], err[256];
    db_path(path, sizeof(path), "rollup.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.retain_samples_s = 0; /* no age retention: the timestamps are in 2023 */
    p.retain_1m_s = 0;
    p.retain_1h_s = 0;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    const uint64_t m0 = (T0 / (60 * NS)) * 60 * NS;
    const struct {
        uint64_t off_s;
        double w, e, t;
        uint64_t tokens;
    } rows[] = {
        {0, 10, 100, 40, 1}, {20, 20, 120, 50, 2}, {40, 30, 150, 60, 3},
        {60, 5, 160, 45, 4}, {90, 15, 170, 55, 5}, {120, 7, 180, 44, 6},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct tel_sample sm = mk(m0 + rows[i].off_s * NS, rows[i].w, rows[i].e, "decode");
        sm.temp_c = rows[i].t;
        sm.tokens = rows[i].tokens;
        sm.n_freq = 1;
        sm.freq_mhz[0] = 1000.0 * (double)(i + 1);
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    }
    CHECK_EQ_INT(tel_store_maintain(s), 0);
    sqlite3 *db = tel_store_db(s);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %%s FROM rollup_1m WHERE ts_ns=%llu",
             (unsigned long long)m0);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM rollup_1m"), 3);
#define M0(col)                                                                   \
    (snprintf(sql, sizeof(sql), "SELECT " col " FROM rollup_1m WHERE ts_ns=%llu", \
              (unsigned long long)m0),                                            \
     sql)
#define M1(col)                                                                   \
    (snprintf(sql, sizeof(sql), "SELECT " col " FROM rollup_1m WHERE ts_ns=%llu", \
              (unsigned long long)(m0 + 60 * NS)),                                \
     sql)
    CHECK_EQ_INT(q_i64(db, M0("n")), 3);
    CHECK_NEAR(q_dbl(db, M0("power_min")), 10, 1e-9);
    CHECK_NEAR(q_dbl(db, M0("power_avg")), 20, 1e-9);
    CHECK_NEAR(q_dbl(db, M0("power_max")), 30, 1e-9);
    CHECK_NEAR(q_dbl(db, M0("temp_avg")), 50, 1e-9);
    CHECK_NEAR(q_dbl(db, M0("freq_max")), 3000, 1e-9);
    CHECK_NEAR(q_dbl(db, M0("energy_j")), 50, 1e-9); /* first bucket: max - min */
    CHECK_EQ_INT(q_i64(db, M0("tokens")), 6);
    CHECK_EQ_INT(q_i64(db, M1("n")), 2);
    CHECK_NEAR(q_dbl(db, M1("power_avg")), 10, 1e-9);
    CHECK_NEAR(q_dbl(db, M1("energy_j")), 20, 1e-9); /* 170 - 150 (last of minute 0) */
    CHECK_NEAR(q_dbl(db, M1("temp_min")), 45, 1e-9);
    CHECK_NEAR(q_dbl(db, M1("temp_max")), 55, 1e-9);

    /* the open minute is recomputed when more samples arrive */
    struct tel_sample late = mk(m0 + 150 * NS, 9, 185, "decode");
    late.temp_c = 46;
    late.tokens = 1;
    CHECK_EQ_INT(tel_store_append_sample(s, &late, NULL), 0);
    CHECK_EQ_INT(tel_store_maintain(s), 0);
    snprintf(sql, sizeof(sql), "SELECT n FROM rollup_1m WHERE ts_ns=%llu",
             (unsigned long long)(m0 + 120 * NS));
    CHECK_EQ_INT(q_i64(db, sql), 2);
    snprintf(sql, sizeof(sql), "SELECT energy_j FROM rollup_1m WHERE ts_ns=%llu",
             (unsigned long long)(m0 + 120 * NS));
    CHECK_NEAR(q_dbl(db, sql), 15, 1e-9); /* 185 - 170 */

    /* the hour: weighted mean of the minute means, sums of energy and tokens */
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM rollup_1h"), 1);
    CHECK_EQ_INT(q_i64(db, "SELECT n FROM rollup_1h"), 7);
    CHECK_NEAR(q_dbl(db, "SELECT power_avg FROM rollup_1h"), (10 + 20 + 30 + 5 + 15 + 7 + 9) / 7.0,
               1e-9);
    CHECK_NEAR(q_dbl(db, "SELECT power_min FROM rollup_1h"), 5, 1e-9);
    CHECK_NEAR(q_dbl(db, "SELECT power_max FROM rollup_1h"), 30, 1e-9);
    CHECK_NEAR(q_dbl(db, "SELECT energy_j FROM rollup_1h"), 85, 1e-9); /* 185 - 100 */
    CHECK_EQ_INT(q_i64(db, "SELECT tokens FROM rollup_1h"), 22);
    tel_store_close(s);
}

static void test_retention(void)
{
    char path[512], err[256];
    db_path(path, sizeof(path), "retain.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 500;
    p.pending_max = 500;
    p.retain_samples_s = 3600; /* an hour of raw samples */
    p.quota_bytes = 0;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    sqlite3 *db = tel_store_db(s);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * NS;
    /* 2 hours ago .. now, one sample every 10 s */
    for (int i = 0; i <= 720; i++) {
        struct tel_sample sm = mk(now_ns - 7200 * NS + (uint64_t)i * 10 * NS, 5, i, "idle");
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    }
    CHECK_EQ_INT(tel_store_add_event(s, now_ns - 200ULL * 86400 * NS, "old", "ancient"), 0);
    CHECK_EQ_INT(tel_store_maintain(s), 0);
    int64_t left = q_i64(db, "SELECT count(*) FROM samples");
    CHECK_MSG(left >= 359 && left <= 362, "left %lld", (long long)left);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM events WHERE kind='old'"), 0);
    /* rollups of the deleted hour survive */
    CHECK(q_i64(db, "SELECT count(*) FROM rollup_1m") >= 120);
    tel_store_close(s);

    /* quota: 20k samples, then a 64 KiB quota; the oldest go and the file shrinks */
    db_path(path, sizeof(path), "quota.db");
    tel_store_params_defaults(&p);
    p.commit_rows = 1000;
    p.pending_max = 1000;
    p.quota_bytes = 0;
    p.retain_samples_s = 0;
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    for (int i = 0; i < 20000; i++) {
        struct tel_sample sm = mk(now_ns - 20000 * NS + (uint64_t)i * NS, 5, i, "decode");
        tel_store_append_sample(s, &sm, NULL);
    }
    CHECK_EQ_INT(tel_store_flush(s), 0);
    tel_store_close(s);
    struct stat sb;
    CHECK_EQ_INT(stat(path, &sb), 0);
    off_t before = sb.st_size;
    p.quota_bytes = 256 * 1024;
    int events = 0;
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    db = tel_store_db(s);
    CHECK_EQ_INT(tel_store_maintain(s), 0);
    int64_t used = q_i64(db, "SELECT (page_count - freelist_count) * page_size FROM "
                             "pragma_page_count(), pragma_freelist_count(), pragma_page_size()");
    CHECK_MSG(used <= 256 * 1024, "used %lld", (long long)used);
    CHECK_EQ_INT(q_i64(db, "PRAGMA freelist_count"), 0); /* incremental vacuum gave pages back */
    int64_t kept = q_i64(db, "SELECT count(*) FROM samples");
    CHECK_MSG(kept > 0 && kept < 20000, "kept %lld", (long long)kept);
    /* the newest were kept */
    CHECK_EQ_INT(q_i64(db, "SELECT max(seq) FROM samples"), 20000);
    events = (int)q_i64(db, "SELECT count(*) FROM events WHERE kind='store'");
    (void)events;
    tel_store_close(s); /* checkpoint and WAL removal */
    CHECK_EQ_INT(stat(path, &sb), 0);
    CHECK_MSG(sb.st_size < before / 2, "file %lld bytes, was %lld", (long long)sb.st_size,
              (long long)before);
}

/* The v1 layout as released (no tokens, no rollups, no auto_vacuum). */
static const char v1_sql[] =
    "CREATE TABLE samples(seq INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, power_w REAL,"
    " energy_j REAL, temp_c REAL, util REAL, freq_mhz TEXT, policy TEXT, phase TEXT,"
    " source TEXT);"
    "CREATE TABLE events(ts_ns INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT);"
    "CREATE TABLE sessions(id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL,"
    " prompt_tokens INTEGER, gen_tokens INTEGER, ttft_ms REAL, duration_ms REAL,"
    " energy_j REAL, j_per_token REAL, policy TEXT);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "INSERT INTO samples VALUES(1, 1700000000000000000, 10.5, 100.0, 40.0, 0.25,"
    " '[1000,3000]', 'balanced', 'decode', 'rapl');"
    "INSERT INTO samples VALUES(2, 1700000001000000000, 11.5, 111.5, 41.0, 0.5,"
    " '[2000]', 'balanced', 'prefill', 'hwmon');"
    "INSERT INTO sessions VALUES(7, 1700000000000000000, 5, 6, 100, 900, 3.3, 0.3, 'quiet');"
    "INSERT INTO meta VALUES('energy_total_j', '111.5');"
    "INSERT INTO meta VALUES('mqtt_acked_seq', '1');"
    "PRAGMA user_version=1;";

static void test_migration(void)
{
    char path[512], err[256], buf[128];
    db_path(path, sizeof(path), "v1.db");
    sqlite3 *raw = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &raw), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(raw, v1_sql, NULL, NULL, NULL), SQLITE_OK);
    CHECK_EQ_INT(q_i64(raw, "PRAGMA auto_vacuum"), 0);
    sqlite3_close(raw);

    /* a report cannot read an old schema and says why */
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.read_only = 1;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), -EPROTO);
    CHECK_CONTAINS(err, "schema version 1");

    tel_store_params_defaults(&p);
    p.retain_samples_s = p.retain_1m_s = p.retain_1h_s = 0;
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s) {
        fprintf(stderr, "migrate: %s\n", err);
        return;
    }
    sqlite3 *db = tel_store_db(s);
    CHECK_EQ_INT(q_i64(db, "PRAGMA user_version"), tel_store_schema_version());
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM sessions WHERE model IS NULL"), 1); /* v4 */
    CHECK_EQ_INT(q_i64(db, "PRAGMA auto_vacuum"), 2);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples"), 2);
    CHECK_NEAR(q_dbl(db, "SELECT freq_avg_mhz FROM samples WHERE seq=1"), 2000, 1e-9);
    CHECK_EQ_INT(q_i64(db, "SELECT tokens FROM samples WHERE seq=1"), 0);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM rollup_1m"), 1); /* backfilled */
    CHECK_NEAR(q_dbl(db, "SELECT power_avg FROM rollup_1m"), 11.0, 1e-9);
    CHECK_STR(q_text(db, "PRAGMA integrity_check", buf, sizeof(buf)), "ok");
    double total = 0;
    CHECK_EQ_INT(tel_store_energy_total_j(s, &total), 0);
    CHECK_NEAR(total, 111.5, 1e-9);
    uint64_t acked = 0;
    CHECK_EQ_INT(tel_store_meta_get_u64(s, TEL_META_MQTT_ACKED_SEQ, &acked), 0);
    CHECK_EQ_INT(acked, 1);
    struct tel_sample sm = mk(1700000002ULL * NS, 12, 120, "decode");
    CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    CHECK_EQ_INT(sm.seq, 3);
    struct tel_session se = {0};
    CHECK_EQ_INT(tel_store_add_session(s, &se), 0);
    CHECK_EQ_INT(se.id, 8);
    struct collect c = {0};
    CHECK_EQ_INT(tel_store_samples_after(s, 0, 0, collect_cb, &c), 3);
    tel_store_close(s);

    /* a database from the future is refused, not mangled */
    db_path(path, sizeof(path), "future.db");
    raw = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &raw), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(raw, "CREATE TABLE x(a); PRAGMA user_version=99;", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(raw);
    tel_store_params_defaults(&p);
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), -EPROTO);
    CHECK_CONTAINS(err, "newer");
    CHECK(s == NULL);

    /* not a database at all */
    db_path(path, sizeof(path), "garbage.db");
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("this is not an SQLite file, just text that is long enough to look like a header", f);
        fclose(f);
    }
    s = NULL;
    int r = tel_store_open(path, &p, &s, err, sizeof(err));
    CHECK(r < 0);
    CHECK_CONTAINS(err, path);
}

struct ev_log {
    int n;
    char last[TEL_DETAIL_MAX + TEL_NAME_MAX + 4];
};

static void on_event(void *user, const struct tel_event *ev)
{
    struct ev_log *log = user;
    log->n++;
    snprintf(log->last, sizeof(log->last), "%s: %s", ev->kind, ev->detail);
}

static void test_full_disk(void)
{
    char path[512], err[256], buf[64];
    db_path(path, sizeof(path), "full.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 50;
    p.commit_interval_ms = 1;
    p.pending_max = 3000;
    p.quota_bytes = 0;
    p.retain_samples_s = 0;
    struct ev_log log = {0};
    p.on_event = on_event;
    p.on_event_user = &log;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    sqlite3 *db = tel_store_db(s);
    int64_t pages = q_i64(db, "PRAGMA page_count");
    CHECK_EQ_INT(tel_store_set_max_pages(s, (uint64_t)pages + 24), 0);
    int i;
    struct tel_store_stats st;
    for (i = 0; i < 2000; i++) {
        struct tel_sample sm = mk(T0 + (uint64_t)i * NS, 5, i, "decode");
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
        tel_store_get_stats(s, &st);
        if (st.disk_full)
            break;
    }
    CHECK_MSG(st.disk_full, "never filled after %d samples", i);
    CHECK_EQ_INT(log.n, 1);
    CHECK_CONTAINS(log.last, "full");
    int64_t on_disk = q_i64(db, "SELECT count(*) FROM samples");
    CHECK(on_disk > 0);
    /* the agent keeps appending; everything stays queued */
    for (int k = 0; k < 500; k++) {
        struct tel_sample sm = mk(T0 + (uint64_t)(i + 1 + k) * NS, 5, i + 1 + k, "decode");
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    }
    CHECK_EQ_INT(tel_store_flush(s), -ENOSPC);
    tel_store_get_stats(s, &st);
    CHECK(st.commit_failures >= 2);
    CHECK_EQ_INT(st.dropped, 0);
    CHECK_EQ_INT(log.n, 1); /* one event per episode, not per failure */
    uint64_t last = tel_store_last_seq(s);
    CHECK_EQ_INT(on_disk + st.pending, (int64_t)last);
    /* replay still sees every sample, from disk and from memory */
    struct collect c = {0};
    CHECK_EQ_INT(tel_store_samples_after(s, 0, 0, collect_cb, &c), (int)last);

    /* space returns */
    CHECK_EQ_INT(tel_store_set_max_pages(s, 0), 0);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples"), (int64_t)last);
    CHECK_EQ_INT(q_i64(db, "SELECT count(DISTINCT seq) FROM samples"), (int64_t)last);
    CHECK_EQ_INT(q_i64(db, "SELECT max(seq) FROM samples"), (int64_t)last);
    CHECK_EQ_INT(log.n, 2);
    CHECK_CONTAINS(log.last, "writable again");
    CHECK_EQ_INT(tel_store_flush(s), 0); /* the recovery event itself */
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM events WHERE kind='store'"), 2);
    CHECK_STR(q_text(db, "PRAGMA integrity_check", buf, sizeof(buf)), "ok");
    tel_store_close(s);

    /* a bound too small for the outage drops the oldest and says so */
    db_path(path, sizeof(path), "full2.db");
    p.pending_max = 100;
    p.commit_rows = 10;
    memset(&log, 0, sizeof(log));
    s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    db = tel_store_db(s);
    CHECK_EQ_INT(tel_store_set_max_pages(s, (uint64_t)q_i64(db, "PRAGMA page_count")), 0);
    for (int k = 0; k < 300; k++) {
        struct tel_sample sm = mk(T0 + (uint64_t)k * NS, 5, k, "decode");
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    }
    tel_store_get_stats(s, &st);
    int64_t written_before = q_i64(db, "SELECT count(*) FROM samples");
    CHECK_EQ_INT(st.pending, 100);
    CHECK_EQ_INT(st.dropped, 300 - 100 - written_before);
    CHECK_EQ_INT(log.n, 2); /* full, then queue overflow */
    CHECK_EQ_INT(tel_store_set_max_pages(s, 0), 0);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    CHECK_EQ_INT(q_i64(db, "SELECT max(seq) FROM samples"), 300);
    /* what reached the disk before it filled, then the newest 100; the middle was dropped */
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples WHERE seq >= 201"), 100);
    CHECK_EQ_INT(q_i64(db, "SELECT max(seq) FROM samples WHERE seq < 201"), written_before);
    tel_store_close(s);
}

static void test_bad_params(void)
{
    char path[512], err[256];
    db_path(path, sizeof(path), "params.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 0;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "commit_rows");
    tel_store_params_defaults(&p);
    p.pending_max = 1;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "pending_max");
    tel_store_params_defaults(&p);
    CHECK(tel_store_open("/nonexistent-dir/x/y.db", &p, &s, err, sizeof(err)) < 0);
    CHECK_CONTAINS(err, "/nonexistent-dir/x/y.db");
    tel_store_close(NULL);

    /* Issue 14: root writes the database only where nobody else can plant files or links. */
    char victim[600], link_path[600];
    snprintf(victim, sizeof(victim), "%s/victim.db", tmpdir);
    snprintf(link_path, sizeof(link_path), "%s/link.db", tmpdir);
    FILE *f = fopen(victim, "w");
    if (f)
        fclose(f);
    CHECK_EQ_INT(symlink(victim, link_path), 0);
    CHECK(tel_store_open(link_path, &p, &s, err, sizeof(err)) < 0);
    if (geteuid() == 0) {
        char open_dir[600], in_open[700];
        snprintf(open_dir, sizeof(open_dir), "%s/world", tmpdir);
        CHECK_EQ_INT(mkdir(open_dir, 0755), 0);
        CHECK_EQ_INT(chmod(open_dir, 0777), 0);
        snprintf(in_open, sizeof(in_open), "%s/t.db", open_dir);
        CHECK_EQ_INT(tel_store_open(in_open, &p, &s, err, sizeof(err)), -EPERM);
        CHECK_CONTAINS(err, "writable by or owned by another user");
    }
}

/* The committed total: what the next open restores even after a kill -9, so a value published
 * from it is never taken back. Rows waiting in memory do not count. */
static void test_committed_energy(void)
{
    char path[512], err[256];
    db_path(path, sizeof(path), "committed.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 5;
    p.commit_interval_ms = 3600000;
    /* A child appends and dies without closing (kill -9 as far as the file is concerned). */
    pid_t pid = fork();
    if (pid == 0) {
        struct tel_store *s = NULL;
        if (tel_store_open(path, &p, &s, err, sizeof(err)) != 0)
            _exit(2);
        int bad = tel_store_committed_energy_j(s) != 0;
        for (int i = 1; i <= 7; i++) {
            struct tel_sample sm = mk(T0 + (uint64_t)i * 1000000000ull, 10, 100.0 * i, "idle");
            bad |= tel_store_append_sample(s, &sm, NULL) != 0;
            /* rows 1-4 wait; row 5 commits the batch; rows 6-7 wait again */
            bad |= tel_store_committed_energy_j(s) != (i < 5 ? 0 : 500);
        }
        double queued = 0;
        bad |= tel_store_energy_total_j(s, &queued) != 0 || queued != 700;
        _exit(bad ? 1 : 0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    double total = 0;
    struct tel_store *s2 = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s2, err, sizeof(err)), 0);
    CHECK_EQ_INT(tel_store_energy_total_j(s2, &total), 0);
    CHECK(total >= 500); /* never below what was committed (and so published) */
    CHECK_NEAR(tel_store_committed_energy_j(s2), total, 0);
    tel_store_close(s2);
}

/* Fills the connection's page cache by a scan of every sample and returns the bytes it holds
 * (SQLITE_DBSTATUS_CACHE_USED: pages and SQLite's per-page headers). */
static int cache_after_scan(sqlite3 *db)
{
    CHECK(q_dbl(db, "SELECT sum(power_w + length(freq_mhz)) FROM samples") > 0);
    int used = 0, high = 0;
    CHECK_EQ_INT(sqlite3_db_status(db, SQLITE_DBSTATUS_CACHE_USED, &used, &high, 0), SQLITE_OK);
    return used;
}

/* The page cache is the store's own fixed size (TEL_STORE_CACHE_KIB), on the writer's and a
 * reader's connection: read back, and filled to it, not beyond, by a scan of a database larger
 * than it. SQLite's default (2000 KiB) would hold about twice as much; a cache_size set before
 * the file's 512-byte page size is known would hold an eighth. */
static void test_cache_size(void)
{
    char path[512], err[256];
    db_path(path, sizeof(path), "cache.db");
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 1000;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s) {
        fprintf(stderr, "open: %s\n", err);
        return;
    }
    sqlite3 *db = tel_store_db(s);
    CHECK_EQ_INT(q_i64(db, "PRAGMA cache_size"), -TEL_STORE_CACHE_KIB);
    for (int i = 0; i < 40000; i++) {
        struct tel_sample smp = mk(T0 + (uint64_t)i * NS, 10.0, 10.0 * i, "idle");
        if (tel_store_append_sample(s, &smp, NULL) != 0) {
            CHECK_MSG(0, "append %d failed", i);
            break;
        }
    }
    CHECK_EQ_INT(tel_store_flush(s), 0);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples"), 40000);
    int64_t bytes = q_i64(db, "PRAGMA page_count") * q_i64(db, "PRAGMA page_size");
    CHECK(bytes > 2LL * TEL_STORE_CACHE_KIB * 1024); /* the bound, not the file, limits the cache */
    int used = cache_after_scan(db);
    printf("cache: writer %d bytes for a %lld-byte database (bound %d KiB)\n", used,
           (long long)bytes, TEL_STORE_CACHE_KIB);
    CHECK_MSG(used > TEL_STORE_CACHE_KIB * 1024 * 3 / 4, "writer's cache holds %d bytes", used);
    CHECK_MSG(used < TEL_STORE_CACHE_KIB * 1024 * 3 / 2, "writer's cache holds %d bytes", used);
    tel_store_close(s);

    p.read_only = 1;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s) {
        fprintf(stderr, "open read-only: %s\n", err);
        return;
    }
    CHECK_EQ_INT(q_i64(tel_store_db(s), "PRAGMA cache_size"), -TEL_STORE_CACHE_KIB);
    used = cache_after_scan(tel_store_db(s));
    printf("cache: reader %d bytes\n", used);
    CHECK_MSG(used > TEL_STORE_CACHE_KIB * 1024 * 3 / 4, "reader's cache holds %d bytes", used);
    CHECK_MSG(used < TEL_STORE_CACHE_KIB * 1024 * 3 / 2, "reader's cache holds %d bytes", used);
    tel_store_close(s);
}

int main(void)
{
    make_tmp();
    test_batching_and_readback();
    test_time_batching();
    test_committed_energy();
    test_rollups();
    test_retention();
    test_migration();
    test_full_disk();
    test_bad_params();
    test_cache_size();
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return et_finish();
}
