/* Private state of the telemetry store, shared by store.c (queue and batched commits), schema.c
 * (creation and migrations), rollup.c (1-minute and 1-hour aggregates) and retention.c (age and
 * size quota). Nothing here is part of the public API. */
#ifndef TELEMETRY_STORE_INTERNAL_H
#define TELEMETRY_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "telemetry/store.h"

#define TEL_SCHEMA_VERSION       5
#define TEL_PENDING_SESSIONS_MAX 1024
#define TEL_PENDING_EVENTS_MAX   256
/* Seqs handed out beyond the last commit are reserved in meta so a crash never reuses one. */
#define TEL_SEQ_RESERVE      1024
#define TEL_META_PENDING_MAX 16
#define TEL_PAGE_SIZE_STR    "512"
#define TEL_META_VALUE_MAX   128

/* A meta update waiting for the next batch (the MQTT cursor moves on every ack). */
struct tel_meta_pending {
    char key[64];
    char value[TEL_META_VALUE_MAX];
};

struct tel_store {
    sqlite3 *db;
    struct tel_store_params p;
    char path[4096];

    /* queued rows, oldest first; samples in a ring of p.pending_max */
    struct tel_sample *ring;
    uint32_t ring_head, ring_len;
    struct tel_session *sessions;
    uint32_t n_sessions;
    struct tel_event *events;
    uint32_t n_events;
    struct tel_meta_pending meta[TEL_META_PENDING_MAX];
    uint32_t n_meta;
    uint64_t first_pending_ns; /* monotonic time the oldest queued row arrived; 0 = none */

    uint64_t next_seq;     /* next seq to hand out */
    uint64_t seq_reserved; /* seqs below this are reserved in meta */
    uint64_t next_session_id;
    double last_energy_j; /* energy_j of the newest queued or written sample */
    int have_energy;
    double last_wall_j; /* wall_energy_j of the newest queued or written sample with one */
    int have_wall;
    double committed_wall_j;   /* wall_energy_j of the newest committed sample with one */
    double committed_energy_j; /* energy_j of the newest committed sample (or the total restored
                                  at open): what a kill -9 can no longer take back */
    uint64_t energy_saved_ns;  /* monotonic time the total was last written to meta */

    uint64_t last_maintain_ns;
    uint64_t retry_after_ns; /* after a failed commit, do not retry before this */
    int disk_full;
    int drop_reported;

    struct tel_store_stats st;

    sqlite3_stmt *ins_sample, *ins_session, *ins_event, *meta_put, *meta_sel;
};

/* schema.c: brings the database to TEL_SCHEMA_VERSION (creating it when empty). */
int tel_schema_migrate(sqlite3 *db, char *err, size_t err_len);
/* Reads PRAGMA user_version. */
int tel_schema_version_of(sqlite3 *db, int *ret_version);

/* rollup.c: recomputes 1-minute buckets from samples and 1-hour buckets from 1-minute ones, for
 * every bucket not yet final plus the one in progress. Runs inside the caller's transaction. */
int tel_rollup_run(sqlite3 *db);

/* retention.c: deletes rows older than the retention ages (relative to now_wall_ns) and, when the
 * live data exceeds quota_bytes, the oldest rows until it fits; then frees pages with
 * incremental_vacuum. Must run outside a transaction. */
int tel_retention_run(struct tel_store *s, uint64_t now_wall_ns);

/* store.c: records an event the store raises itself (queued with the next batch) and passes it
 * to params.on_event. */
void tel_store_raise(struct tel_store *s, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs one SQL statement (no results); -EIO on failure, -ENOSPC on SQLITE_FULL. */
int tel_sql_exec(sqlite3 *db, const char *sql);
/* Maps an SQLite result code to -errno. */
int tel_sql_errno(int rc);

#endif
