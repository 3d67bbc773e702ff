/* 1-minute and 1-hour rollups (count, min/avg/max of power, temperature, utilisation and mean
 * frequency, energy and tokens per bucket). Buckets are aligned to wall-clock minutes and hours.
 * The bucket holding the newest sample is still filling, so each run recomputes from the first
 * sample of that bucket (its seq kept in meta) with INSERT OR REPLACE; finished buckets are never
 * touched again, which keeps the cost per run proportional to the new data. Samples are found by
 * seq, not by time: the samples table has no time index, because every index is one more page
 * written per commit. A sample whose wall time lies in an already final bucket (the clock
 * stepped back) recomputes nothing older than the open bucket. */
#include <errno.h>
#include <stdio.h>

#include "store_internal.h"

#define NS_PER_MIN  60000000000LL
#define NS_PER_HOUR 3600000000000LL

static int meta_i64(sqlite3 *db, const char *key, int64_t *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key=?1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return tel_sql_errno(rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        r = -ENOENT;
    else
        r = tel_sql_errno(rc);
    sqlite3_finalize(st);
    return r;
}

static int meta_put_i64(sqlite3 *db, const char *key, int64_t value)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO meta(key,value) VALUES(?1,?2) ON CONFLICT(key) DO "
                                "UPDATE SET value=excluded.value",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return tel_sql_errno(rc);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)value);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, buf, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : tel_sql_errno(rc);
}

/* Runs one statement with a single int64 parameter; *ret_max receives the first column of the
 * first row when asked (NULL result: -ENOENT). */
static int run_i64(sqlite3 *db, const char *sql, int64_t arg, int64_t *ret_first)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return tel_sql_errno(rc);
    sqlite3_bind_int64(st, 1, arg);
    rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW) {
        if (ret_first) {
            if (sqlite3_column_type(st, 0) == SQLITE_NULL)
                r = -ENOENT;
            else
                *ret_first = sqlite3_column_int64(st, 0);
        }
    } else if (rc != SQLITE_DONE) {
        r = tel_sql_errno(rc);
    }
    sqlite3_finalize(st);
    return r;
}

/* Samples are read by seq (the primary key) from the first sample of the bucket still open;
 * the energy of a bucket is its last total minus the total of the sample before it. */
static const char rollup_1m_sql[] =
    "WITH m AS (SELECT (ts_ns / 60000000000) * 60000000000 AS b, count(*) AS n,"
    " min(power_w) AS p0, avg(power_w) AS p1, max(power_w) AS p2, min(temp_c) AS t0,"
    " avg(temp_c) AS t1, max(temp_c) AS t2, min(util) AS u0, avg(util) AS u1, max(util) AS u2,"
    " min(freq_avg_mhz) AS f0, avg(freq_avg_mhz) AS f1, max(freq_avg_mhz) AS f2,"
    " max(energy_j) AS e1, min(energy_j) AS e0, min(seq) AS s0, sum(tokens) AS tk,"
    " max(wall_energy_j) AS w1, min(wall_energy_j) AS w0"
    " FROM samples WHERE seq >= ?1 GROUP BY b)"
    " INSERT OR REPLACE INTO rollup_1m SELECT b, n, p0, p1, p2, t0, t1, t2, u0, u1, u2, f0, f1,"
    " f2, e1 - coalesce((SELECT p.energy_j FROM samples p WHERE p.seq < m.s0"
    " ORDER BY p.seq DESC LIMIT 1), e0), tk, w1 - coalesce((SELECT p.wall_energy_j FROM samples p"
    " WHERE p.seq < m.s0 AND p.wall_energy_j IS NOT NULL ORDER BY p.seq DESC LIMIT 1), w0)"
    " FROM m";

static const char rollup_1h_sql[] =
    "INSERT OR REPLACE INTO rollup_1h SELECT h, sum(n), min(power_min),"
    " sum(power_avg * n) / sum(CASE WHEN power_avg IS NOT NULL THEN n END), max(power_max),"
    " min(temp_min), sum(temp_avg * n) / sum(CASE WHEN temp_avg IS NOT NULL THEN n END),"
    " max(temp_max), min(util_min),"
    " sum(util_avg * n) / sum(CASE WHEN util_avg IS NOT NULL THEN n END), max(util_max),"
    " min(freq_min), sum(freq_avg * n) / sum(CASE WHEN freq_avg IS NOT NULL THEN n END),"
    " max(freq_max), sum(energy_j), sum(tokens), sum(wall_energy_j)"
    " FROM (SELECT (ts_ns / 3600000000000) * 3600000000000 AS h, * FROM rollup_1m"
    " WHERE ts_ns >= ?1) GROUP BY h";

int tel_rollup_run(sqlite3 *db)
{
    int64_t newest = 0, from_seq = 0, from_h = 0;
    int r = run_i64(db, "SELECT ts_ns FROM samples WHERE ?1 = ?1 ORDER BY seq DESC LIMIT 1", 0,
                    &newest);
    if (r == -ENOENT)
        return 0; /* no samples yet */
    if (r < 0)
        return r;
    r = meta_i64(db, "rollup_1m_seq", &from_seq);
    if (r < 0 && r != -ENOENT)
        return r;
    r = meta_i64(db, "rollup_1h_from", &from_h);
    if (r < 0 && r != -ENOENT)
        return r;

    r = run_i64(db, rollup_1m_sql, from_seq, NULL);
    if (r < 0)
        return r;
    int64_t newest_m = newest / NS_PER_MIN * NS_PER_MIN;
    r = run_i64(db, rollup_1h_sql, from_h, NULL);
    if (r < 0)
        return r;
    int64_t newest_h = newest_m / NS_PER_HOUR * NS_PER_HOUR;
    /* Next time, start at the first sample of the minute still filling (found from the newest
     * backwards, so the scan is as short as that minute). */
    int64_t next_seq = 0;
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(db, "SELECT seq, ts_ns FROM samples ORDER BY seq DESC", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return tel_sql_errno(rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_int64(st, 1) >= newest_m)
        next_seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tel_sql_errno(rc);
    if (next_seq > from_seq)
        r = meta_put_i64(db, "rollup_1m_seq", next_seq);
    if (r == 0 && newest_h > from_h)
        r = meta_put_i64(db, "rollup_1h_from", newest_h);
    return r;
}
