/* The telemetry history: a SQLite database (WAL, synchronous=NORMAL) holding samples, 1-minute and
 * 1-hour rollups, sessions, events and a small key/value meta table. Samples are buffered in memory
 * and written in batched transactions (every commit_interval_ms or commit_rows rows, whichever
 * comes first), so a kill -9 loses at most the batch in memory and the file stays consistent.
 * When the disk is full the store keeps samples in memory (bounded by pending_max), raises an
 * event and writes them when space returns. Single-threaded: call everything from one thread. */
#ifndef TELEMETRY_STORE_H
#define TELEMETRY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "telemetry/sample.h"

struct tel_store;

/* Meta keys the store and its users share. */
#define TEL_META_ENERGY_TOTAL_J "energy_total_j" /* written by the store at every commit */
#define TEL_META_MQTT_ACKED_SEQ "mqtt_acked_seq" /* written by the MQTT publisher */

struct tel_store_params {
    uint32_t commit_interval_ms;   /* longest a sample waits in memory (default 5000) */
    uint32_t commit_rows;          /* commit as soon as this many rows are pending (default 60) */
    uint32_t pending_max;          /* samples kept in memory while the disk is full (default 3600);
                                      beyond it the oldest are dropped and counted */
    uint64_t retain_samples_s;     /* raw samples older than this are deleted (default 7 days) */
    uint64_t retain_1m_s;          /* 1-minute rollups (default 90 days) */
    uint64_t retain_1h_s;          /* 1-hour rollups (default 5 years) */
    uint64_t quota_bytes;          /* database size quota; oldest data deleted and pages vacuumed
                                      above it; 0 = none (default 256 MiB) */
    uint64_t max_pages;            /* hard page limit (PRAGMA max_page_count); 0 = none. Writes
                                      beyond it fail as on a full disk (used by tests) */
    uint32_t maintain_interval_ms; /* rollups and retention at most this often (default 60000) */
    int read_only;                 /* open for reading (ember report); no writes, no migration */
    /* Wall clock for retention ages; NULL: CLOCK_REALTIME. For simulations and tests that
     * replay days of samples in seconds. */
    uint64_t (*wall_clock_ns)(void);
    /* Called for every event the store records itself (disk full, recovered, dropped samples),
     * so the agent can log or publish it. May be NULL. */
    void (*on_event)(void *user, const struct tel_event *event);
    void *on_event_user;
};

/* SQLite's page cache of every store connection, in KiB (PRAGMA cache_size=-1024). SQLite's
 * default is 2000 KiB per connection, filled in the first minutes of a run (the soak saw RSS grow
 * ~2.5 MiB and stay); the store's working set is the right edge of a few B-trees (the newest
 * samples, the current minute and hour). docs/telemetry.md has the measurement. */
#define TEL_STORE_CACHE_KIB 1024

void tel_store_params_defaults(struct tel_store_params *p);
/* Checks params the way tel_store_open does: 0, or -EINVAL with err naming the field. */
int tel_store_params_check(const struct tel_store_params *p, char *err, size_t err_len);

/* Opens or creates the database at path and migrates it to the current schema version.
 * -EINVAL bad params, -EIO/-ENOSPC/-EPERM... with err naming the path and the SQLite message. */
int tel_store_open(const char *path, const struct tel_store_params *params,
                   struct tel_store **ret_store, char *err, size_t err_len);
/* Flushes pending rows (best effort) and closes. NULL is fine. */
void tel_store_close(struct tel_store *store);

/* Current schema version (PRAGMA user_version) of this build. */
int tel_store_schema_version(void);

/* Copies *sample, assigns it the next seq (written back to sample->seq and *ret_seq when not
 * NULL), queues it and commits when a batch is due. A failed commit keeps the rows queued:
 * the return is still 0 unless the sample itself is invalid (-EINVAL). */
int tel_store_append_sample(struct tel_store *store, struct tel_sample *sample, uint64_t *ret_seq);
/* Writes every queued row now. -ENOSPC when the disk is full (rows stay queued), -EIO else. */
int tel_store_flush(struct tel_store *store);
/* Commits if the batch is due, and runs rollups and retention when maintain_interval_ms has
 * passed. Call from the event loop timer (at least every commit_interval_ms). */
int tel_store_tick(struct tel_store *store);
/* Milliseconds until tel_store_tick has work (a commit is due); -1 when nothing is queued. */
int64_t tel_store_next_due_ms(const struct tel_store *store);

/* Sessions and events are queued with the samples and written in the same batch.
 * A session with id 0 is given the next id (written back). */
int tel_store_add_session(struct tel_store *store, struct tel_session *session);
int tel_store_add_event(struct tel_store *store, uint64_t ts_ns, const char *kind,
                        const char *detail);

/* Calls cb for each sample with seq > after_seq in seq order, at most max of them (0 = no
 * limit), committed rows first, then rows still queued in memory. cb returns non-zero to stop.
 * Returns the number delivered, or -errno. */
typedef int (*tel_sample_cb)(void *user, const struct tel_sample *sample);
int tel_store_samples_after(struct tel_store *store, uint64_t after_seq, uint32_t max,
                            tel_sample_cb cb, void *user);
/* Highest seq handed out so far (0 before the first sample). */
uint64_t tel_store_last_seq(const struct tel_store *store);

/* The meta table. A set is queued and written with the next batch (at most commit_interval_ms
 * later; tel_store_flush forces it), so moving the MQTT cursor on every ack costs no extra
 * transaction; a get sees queued values first. After kill -9 a cursor can therefore be one
 * batch behind (replay then re-sends a few samples: at least once, never lost). Keys up to 63
 * bytes, values up to 127. -ENOENT when the key is absent; -ENOSPC when a value does not fit. */
int tel_store_meta_get(struct tel_store *store, const char *key, char *buf, size_t cap);
int tel_store_meta_set(struct tel_store *store, const char *key, const char *value);
int tel_store_meta_get_u64(struct tel_store *store, const char *key, uint64_t *ret);
int tel_store_meta_set_u64(struct tel_store *store, const char *key, uint64_t value);
/* Energy total recorded at the last commit (0 in a new database), to seed tel_power. */
int tel_store_energy_total_j(struct tel_store *store, double *ret_j);
/* The wall channel's total (telemetry/wall.h) of the newest sample that has one (0 when none
 * has), to seed tel_wall; appended samples never lower it. */
int tel_store_wall_energy_total_j(struct tel_store *store, double *ret_j);

/* The energy total that is on disk: energy_j of the newest committed sample, or the total
 * restored at open. Never decreases while the store is open, and the total restored by the next
 * open (even after a kill -9) is never below it, so a value published from it is never taken
 * back. 0 for NULL or a new database. */
double tel_store_committed_energy_j(const struct tel_store *store);
/* The same for the wall total (0 until a sample with one is on disk). */
double tel_store_committed_wall_energy_j(const struct tel_store *store);

/* Runs rollups and retention now (normally driven by tel_store_tick). */
int tel_store_maintain(struct tel_store *store);
/* Changes the hard page limit at runtime (0 = none), e.g. when disk space returned. */
int tel_store_set_max_pages(struct tel_store *store, uint64_t max_pages);

struct tel_store_stats {
    uint64_t samples_written; /* rows committed since open */
    uint64_t commits;         /* transactions committed since open */
    uint64_t commit_failures; /* failed commits (full disk, I/O) */
    uint64_t dropped;         /* samples dropped because the in-memory bound was hit */
    uint32_t pending;         /* rows queued in memory now */
    int disk_full;            /* last commit failed with SQLITE_FULL */
    uint64_t db_bytes;        /* page_count * page_size */
};
void tel_store_get_stats(const struct tel_store *store, struct tel_store_stats *ret);

/* The underlying connection for read-only queries (reports). Do not write through it. */
struct sqlite3 *tel_store_db(struct tel_store *store);

#endif
