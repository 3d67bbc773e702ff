/* The telemetry database schema and its migrations. The schema version lives in PRAGMA
 * user_version; each step upgrades from version N-1 to N inside one transaction, so a crash in
 * the middle leaves the previous version intact. A new database is built by running every step
 * from version 0, so the path old databases take is the path every test exercises. */
#include <errno.h>
#include <stdio.h>

#include "store_internal.h"

/* Version 1: the first released layout. */
static const char schema_v1[] =
    "CREATE TABLE samples(seq INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, power_w REAL,"
    " energy_j REAL, temp_c REAL, util REAL, freq_mhz TEXT, policy TEXT, phase TEXT,"
    " source TEXT);"
    "CREATE TABLE events(ts_ns INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT);"
    "CREATE TABLE sessions(id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL,"
    " prompt_tokens INTEGER, gen_tokens INTEGER, ttft_ms REAL, duration_ms REAL,"
    " energy_j REAL, j_per_token REAL, policy TEXT);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);";

/* Version 2: token counts per sample (joules per token per phase), the mean frequency as a
 * column so rollups need no JSON, time indexes on events and sessions, and the rollup tables.
 * samples deliberately has no time index: it would add a page write to every 1 Hz commit (see
 * rollup.c and retention.c for how they find rows by seq instead). */
#define ROLLUP_COLUMNS                                                                \
    "(ts_ns INTEGER PRIMARY KEY, n INTEGER NOT NULL, power_min REAL, power_avg REAL," \
    " power_max REAL, temp_min REAL, temp_avg REAL, temp_max REAL, util_min REAL,"    \
    " util_avg REAL, util_max REAL, freq_min REAL, freq_avg REAL, freq_max REAL,"     \
    " energy_j REAL, tokens INTEGER)"
static const char schema_v2[] =
    "ALTER TABLE samples ADD COLUMN freq_avg_mhz REAL;"
    "ALTER TABLE samples ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE samples ADD COLUMN tokens_per_s REAL;"
    "UPDATE samples SET freq_avg_mhz = (SELECT avg(value) FROM json_each(samples.freq_mhz))"
    " WHERE json_valid(freq_mhz);"
    "CREATE INDEX events_ts ON events(ts_ns);"
    "CREATE INDEX sessions_ts ON sessions(ts_ns);"
    "CREATE TABLE rollup_1m" ROLLUP_COLUMNS ";"
    "CREATE TABLE rollup_1h" ROLLUP_COLUMNS ";";

/* Version 3 (issue 12): the boundary each sample's energy was measured at, and the interval's
 * energy split by engine phase (integrated over the phase intervals). Old rows keep NULL phase
 * energy (reports fall back to the sample's phase label for them, and say so) and get the scope
 * their source implies. */
static const char schema_v3[] =
    "ALTER TABLE samples ADD COLUMN scope TEXT;"
    "ALTER TABLE samples ADD COLUMN prefill_j REAL;"
    "ALTER TABLE samples ADD COLUMN decode_j REAL;"
    "ALTER TABLE samples ADD COLUMN idle_j REAL;"
    "UPDATE samples SET scope = CASE source WHEN 'rapl' THEN 'package' WHEN 'estimate' THEN"
    " 'package' WHEN 'hwmon' THEN 'soc' WHEN 'battery' THEN 'wall' ELSE 'none' END;";

/* Version 4 (issue 18): the model that served each session, for joules per token per model
 * (older sessions keep NULL: one model was all the agent could serve). */
static const char schema_v4[] = "ALTER TABLE sessions ADD COLUMN model TEXT;"
                                "CREATE INDEX sessions_model ON sessions(model, ts_ns);";

/* Version 5 (issue 12): the second energy boundary, the whole box at the wall, beside the
 * package/SoC channel: its power and running total, where it came from ("mqtt:<topic>",
 * "hwmon:<dev>", "battery", "estimate") and whether it was measured; the interval's wall energy
 * by engine phase; rollups of wall energy. Rows written before have
 * NULL there: no wall figure was kept then (reports say so rather than invent one). */
static const char schema_v5[] = "ALTER TABLE samples ADD COLUMN wall_power_w REAL;"
                                "ALTER TABLE samples ADD COLUMN wall_energy_j REAL;"
                                "ALTER TABLE samples ADD COLUMN wall_source TEXT;"
                                "ALTER TABLE samples ADD COLUMN wall_measured INTEGER;"
                                "ALTER TABLE samples ADD COLUMN wall_prefill_j REAL;"
                                "ALTER TABLE samples ADD COLUMN wall_decode_j REAL;"
                                "ALTER TABLE samples ADD COLUMN wall_idle_j REAL;"
                                "ALTER TABLE rollup_1m ADD COLUMN wall_energy_j REAL;"
                                "ALTER TABLE rollup_1h ADD COLUMN wall_energy_j REAL;";

static const char *const steps[TEL_SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3, schema_v4,
                                                      schema_v5};

int tel_sql_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
        return -EPERM;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FORMAT:
        return -EBADMSG;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

int tel_sql_exec(sqlite3 *db, const char *sql)
{
    return tel_sql_errno(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

int tel_schema_version_of(sqlite3 *db, int *ret_version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
    }
    *ret_version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return -EIO;
    }
    *ret = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int tel_schema_migrate(sqlite3 *db, char *err, size_t err_len)
{
    int version = 0;
    int r = tel_schema_version_of(db, &version);
    if (r < 0) {
        snprintf(err, err_len, "reading user_version: %s", sqlite3_errmsg(db));
        return r;
    }
    if (version > TEL_SCHEMA_VERSION) {
        snprintf(err, err_len,
                 "schema version %d is newer than this build understands (%d); refusing to "
                 "touch it",
                 version, TEL_SCHEMA_VERSION);
        return -EPROTO;
    }
    if (version == 0) {
        /* Only takes effect before the first table exists, which is the case here. */
        r = tel_sql_exec(db, "PRAGMA auto_vacuum=INCREMENTAL");
        if (r < 0)
            goto sql_fail;
    }
    for (int v = version; v < TEL_SCHEMA_VERSION; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version=%d", v + 1);
        r = tel_sql_exec(db, "BEGIN IMMEDIATE");
        if (r < 0)
            goto sql_fail;
        r = tel_sql_exec(db, steps[v]);
        /* Backfill rollups from the migrated samples once the layout is the current one (the
         * rollup statements name the newest columns; earlier steps' layouts lack them). */
        if (r == 0 && v + 1 == TEL_SCHEMA_VERSION)
            r = tel_rollup_run(db);
        if (r == 0)
            r = tel_sql_exec(db, bump);
        if (r == 0)
            r = tel_sql_exec(db, "COMMIT");
        if (r < 0) {
            snprintf(err, err_len, "migrating schema from version %d to %d: %s", v, v + 1,
                     sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return r;
        }
    }
    /* Databases made before auto_vacuum was set (or by other tools) are converted once; VACUUM
     * rewrites the file, so it only happens on this first open. */
    int av = 0;
    r = pragma_int(db, "PRAGMA auto_vacuum", &av);
    if (r == 0 && av != 2) {
        r = tel_sql_exec(db, "PRAGMA auto_vacuum=INCREMENTAL");
        if (r == 0)
            r = tel_sql_exec(db, "VACUUM");
        if (r < 0) {
            snprintf(err, err_len, "enabling incremental vacuum: %s", sqlite3_errmsg(db));
            return r;
        }
    }
    return 0;

sql_fail:
    snprintf(err, err_len, "preparing schema: %s", sqlite3_errmsg(db));
    return r;
}
