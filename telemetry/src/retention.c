/* Retention: deletes history older than the configured ages, then, when the live data (pages in
 * use, not counting the free list) is above the size quota, deletes the oldest rows in chunks
 * until it fits: raw samples first (their rollups keep the long view), then 1-minute rollups,
 * then old events and sessions, and 1-hour rollups last. Freed pages go back to the file system
 * with PRAGMA incremental_vacuum (the database is created with auto_vacuum=INCREMENTAL), so the
 * file really shrinks instead of only growing an internal free list. */
#include <errno.h>
#include <stdio.h>

#include "store_internal.h"

#define QUOTA_ROUNDS_MAX 200

static int pragma_i64(sqlite3 *db, const char *sql, int64_t *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int r = rc == SQLITE_ROW ? 0 : (tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO);
    if (r == 0)
        *ret = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r;
}

static int live_bytes(sqlite3 *db, int64_t *ret)
{
    int64_t pages = 0, free_pages = 0, page_size = 0;
    int r = pragma_i64(db, "PRAGMA page_count", &pages);
    if (r == 0)
        r = pragma_i64(db, "PRAGMA freelist_count", &free_pages);
    if (r == 0)
        r = pragma_i64(db, "PRAGMA page_size", &page_size);
    if (r == 0)
        *ret = (pages - free_pages) * page_size;
    return r;
}

static int delete_before(sqlite3 *db, const char *table, int64_t cutoff_ns, int *ret_changes)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE ts_ns < ?1", table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return tel_sql_errno(rc);
    sqlite3_bind_int64(st, 1, cutoff_ns);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (ret_changes)
        *ret_changes = sqlite3_changes(db);
    return rc == SQLITE_DONE ? 0 : tel_sql_errno(rc);
}

/* Deletes the oldest eighth (at least 256 rows) of table; *ret_changes = rows deleted. */
static int delete_oldest(sqlite3 *db, const char *table, const char *key, int *ret_changes)
{
    char sql[256];
    /* oldest by key: seq and rowid grow with time, and rollups are keyed by time */
    snprintf(sql, sizeof(sql),
             "DELETE FROM %s WHERE %s IN (SELECT %s FROM %s ORDER BY %s LIMIT "
             "max(256, (SELECT count(*) FROM %s) / 8))",
             table, key, key, table, key, table);
    int r = tel_sql_exec(db, sql);
    *ret_changes = r == 0 ? sqlite3_changes(db) : 0;
    return r;
}

static uint64_t cutoff(uint64_t now_ns, uint64_t age_s)
{
    uint64_t age_ns = age_s * 1000000000ULL;
    if (age_s == 0 || age_s > UINT64_MAX / 1000000000ULL || age_ns >= now_ns)
        return 0;
    return now_ns - age_ns;
}

int tel_retention_run(struct tel_store *s, uint64_t now_wall_ns)
{
    sqlite3 *db = s->db;
    int r = tel_sql_exec(db, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    uint64_t c_samples = cutoff(now_wall_ns, s->p.retain_samples_s);
    uint64_t c_1m = cutoff(now_wall_ns, s->p.retain_1m_s);
    uint64_t c_1h = cutoff(now_wall_ns, s->p.retain_1h_s);
    if (c_samples) {
        /* No time index on samples: the old rows are the lowest seqs, so delete up to the first
         * young one (the scan stops there). */
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db,
                                    "DELETE FROM samples WHERE seq < coalesce((SELECT seq FROM"
                                    " samples WHERE ts_ns >= ?1 ORDER BY seq LIMIT 1),"
                                    " (SELECT max(seq) + 1 FROM samples))",
                                    -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)c_samples);
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        r = rc == SQLITE_DONE ? 0 : tel_sql_errno(rc);
    }
    if (r == 0 && c_1m)
        r = delete_before(db, "rollup_1m", (int64_t)c_1m, NULL);
    if (r == 0 && c_1m)
        r = delete_before(db, "events", (int64_t)c_1m, NULL);
    if (r == 0 && c_1m)
        r = delete_before(db, "sessions", (int64_t)c_1m, NULL);
    if (r == 0 && c_1h)
        r = delete_before(db, "rollup_1h", (int64_t)c_1h, NULL);
    if (r == 0)
        r = tel_sql_exec(db, "COMMIT");
    if (r < 0)
        goto fail;

    if (s->p.quota_bytes) {
        static const struct {
            const char *table, *key;
        } order[] = {
            {"samples", "seq"}, {"rollup_1m", "ts_ns"}, {"events", "rowid"},
            {"sessions", "id"}, {"rollup_1h", "ts_ns"},
        };
        size_t which = 0;
        int64_t used = 0;
        uint64_t deleted = 0;
        for (int round = 0; round < QUOTA_ROUNDS_MAX; round++) {
            r = live_bytes(db, &used);
            if (r < 0)
                goto fail;
            if ((uint64_t)used <= s->p.quota_bytes || which >= sizeof(order) / sizeof(order[0]))
                break;
            int changes = 0;
            r = tel_sql_exec(db, "BEGIN IMMEDIATE");
            if (r == 0)
                r = delete_oldest(db, order[which].table, order[which].key, &changes);
            if (r == 0)
                r = tel_sql_exec(db, "COMMIT");
            if (r < 0)
                goto fail;
            deleted += (uint64_t)changes;
            if (changes == 0)
                which++;
        }
        if (deleted)
            tel_store_raise(s, "store", "size quota %llu bytes reached: deleted %llu oldest rows",
                            (unsigned long long)s->p.quota_bytes, (unsigned long long)deleted);
    }
    r = tel_sql_exec(db, "PRAGMA incremental_vacuum");
    if (r < 0)
        goto fail;
    return 0;

fail:
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}
