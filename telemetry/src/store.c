/* The telemetry store: an in-memory queue of samples, sessions, events and meta updates that is
 * written to SQLite in one transaction per batch (every commit_interval_ms or commit_rows rows).
 * A failed commit (full disk, I/O error) is rolled back and the rows stay queued, bounded by
 * pending_max samples (oldest dropped and counted), so the agent keeps running and nothing within
 * the bound is lost when space returns. Seqs are reserved in meta ahead of use, so a seq handed
 * out before a crash is never handed out again. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "store_internal.h"

void tel_store_params_defaults(struct tel_store_params *p)
{
    memset(p, 0, sizeof(*p));
    p->commit_interval_ms = 5000;
    p->commit_rows = 60;
    p->pending_max = 3600;
    p->retain_samples_s = 7ULL * 86400;
    p->retain_1m_s = 90ULL * 86400;
    p->retain_1h_s = 5ULL * 365 * 86400;
    p->quota_bytes = 256ULL << 20;
    p->maintain_interval_ms = 60000;
}

int tel_store_schema_version(void)
{
    return TEL_SCHEMA_VERSION;
}

double tel_sample_freq_avg_mhz(const struct tel_sample *sample)
{
    double sum = 0;
    uint32_t n = 0;
    uint32_t count = sample->n_freq < TEL_MAX_FREQ ? sample->n_freq : TEL_MAX_FREQ;
    for (uint32_t i = 0; i < count; i++) {
        if (isfinite(sample->freq_mhz[i])) {
            sum += sample->freq_mhz[i];
            n++;
        }
    }
    return n ? sum / n : NAN;
}

static uint32_t pending_rows(struct tel_store *s)
{
    return s->ring_len + s->n_sessions + s->n_events + s->n_meta;
}

static void mark_pending(struct tel_store *s)
{
    if (!s->first_pending_ns)
        s->first_pending_ns = cmn_now_ns();
}

void tel_store_raise(struct tel_store *s, const char *kind, const char *fmt, ...)
{
    struct tel_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.ts_ns = cmn_wall_ns();
    snprintf(ev.kind, sizeof(ev.kind), "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev.detail, sizeof(ev.detail), fmt, ap);
    va_end(ap);
    if (!s->p.read_only) {
        if (s->n_events == TEL_PENDING_EVENTS_MAX) {
            memmove(s->events, s->events + 1, (TEL_PENDING_EVENTS_MAX - 1) * sizeof(*s->events));
            s->n_events--;
        }
        s->events[s->n_events++] = ev;
        mark_pending(s);
    }
    if (s->p.on_event)
        s->p.on_event(s->p.on_event_user, &ev);
}

/* ---- text columns ---- */

static void freq_to_json(const struct tel_sample *sm, char *buf, size_t cap)
{
    size_t len = 0;
    buf[len++] = '[';
    uint32_t n = sm->n_freq < TEL_MAX_FREQ ? sm->n_freq : TEL_MAX_FREQ;
    for (uint32_t i = 0; i < n; i++) {
        double f = isfinite(sm->freq_mhz[i]) ? sm->freq_mhz[i] : 0.0;
        int w = snprintf(buf + len, cap - len, "%s%.6g", i ? "," : "", f);
        if (w < 0 || (size_t)w >= cap - len - 1)
            break;
        len += (size_t)w;
    }
    buf[len++] = ']';
    buf[len] = '\0';
}

/* Reads back what freq_to_json wrote; anything malformed ends the list there. */
static void freq_from_json(const char *text, struct tel_sample *sm)
{
    sm->n_freq = 0;
    if (!text)
        return;
    const char *p = strchr(text, '[');
    if (!p)
        return;
    p++;
    while (sm->n_freq < TEL_MAX_FREQ) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v))
            break;
        sm->freq_mhz[sm->n_freq++] = v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p != ',')
            break;
        p++;
    }
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static double column_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* ---- statements ---- */

static const char ins_sample_sql[] =
    "INSERT INTO samples(seq, ts_ns, power_w, energy_j, temp_c, util, freq_mhz, policy, phase,"
    " source, freq_avg_mhz, tokens, tokens_per_s, scope, prefill_j, decode_j, idle_j,"
    " wall_power_w, wall_energy_j, wall_source, wall_measured, wall_prefill_j, wall_decode_j,"
    " wall_idle_j)"
    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,"
    "?24)";
static const char sel_sample_sql[] =
    "SELECT seq, ts_ns, power_w, energy_j, temp_c, util, freq_mhz, policy, phase, source,"
    " tokens, tokens_per_s, prefill_j, decode_j, idle_j, wall_power_w, wall_energy_j,"
    " wall_source, wall_measured, wall_prefill_j, wall_decode_j, wall_idle_j"
    " FROM samples WHERE seq > ?1"
    " ORDER BY seq LIMIT ?2";
static const char ins_session_sql[] =
    "INSERT INTO sessions(id, ts_ns, prompt_tokens, gen_tokens, ttft_ms, duration_ms, energy_j,"
    " j_per_token, policy, model) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)";
static const char ins_event_sql[] = "INSERT INTO events(ts_ns, kind, detail) VALUES(?1,?2,?3)";
static const char meta_put_sql[] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value";
static const char meta_sel_sql[] = "SELECT value FROM meta WHERE key = ?1";

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : tel_sql_errno(rc);
}

static int put_sample(struct tel_store *s, const struct tel_sample *sm)
{
    sqlite3_stmt *st = s->ins_sample;
    char freq[TEL_MAX_FREQ * 16 + 4];
    freq_to_json(sm, freq, sizeof(freq));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)sm->seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)sm->ts_ns);
    bind_real(st, 3, sm->power_w);
    bind_real(st, 4, sm->energy_j);
    bind_real(st, 5, sm->temp_c);
    bind_real(st, 6, sm->util);
    sqlite3_bind_text(st, 7, freq, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, sm->policy, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, sm->phase, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, tel_source_name(sm->source), -1, SQLITE_STATIC);
    bind_real(st, 11, tel_sample_freq_avg_mhz(sm));
    sqlite3_bind_int64(st, 12, (sqlite3_int64)sm->tokens);
    bind_real(st, 13, sm->tokens_per_s);
    sqlite3_bind_text(st, 14, tel_source_scope(sm->source), -1, SQLITE_STATIC);
    bind_real(st, 15, sm->has_phase_energy ? sm->prefill_j : NAN);
    bind_real(st, 16, sm->has_phase_energy ? sm->decode_j : NAN);
    bind_real(st, 17, sm->has_phase_energy ? sm->idle_j : NAN);
    if (sm->has_wall) {
        bind_real(st, 18, sm->wall_power_w);
        bind_real(st, 19, sm->wall_energy_j);
        sqlite3_bind_text(st, 20, sm->wall_source, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 21, sm->wall_measured ? 1 : 0);
        bind_real(st, 22, sm->has_phase_energy ? sm->wall_prefill_j : NAN);
        bind_real(st, 23, sm->has_phase_energy ? sm->wall_decode_j : NAN);
        bind_real(st, 24, sm->has_phase_energy ? sm->wall_idle_j : NAN);
    }
    return step_done(st);
}

static int put_session(struct tel_store *s, const struct tel_session *se)
{
    sqlite3_stmt *st = s->ins_session;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)se->id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)se->ts_ns);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)se->prompt_tokens);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)se->gen_tokens);
    bind_real(st, 5, se->ttft_ms);
    bind_real(st, 6, se->duration_ms);
    bind_real(st, 7, se->energy_j);
    bind_real(st, 8, se->j_per_token);
    sqlite3_bind_text(st, 9, se->policy, -1, SQLITE_STATIC);
    if (se->model[0])
        sqlite3_bind_text(st, 10, se->model, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 10);
    return step_done(st);
}

static int put_event(struct tel_store *s, const struct tel_event *ev)
{
    sqlite3_stmt *st = s->ins_event;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ev->ts_ns);
    sqlite3_bind_text(st, 2, ev->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->detail, -1, SQLITE_STATIC);
    return step_done(st);
}

static int put_meta(struct tel_store *s, const char *key, const char *value)
{
    sqlite3_bind_text(s->meta_put, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->meta_put, 2, value, -1, SQLITE_STATIC);
    return step_done(s->meta_put);
}

static int put_meta_u64(struct tel_store *s, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return put_meta(s, key, buf);
}

static int get_meta(struct tel_store *s, const char *key, char *buf, size_t cap)
{
    sqlite3_stmt *st = s->meta_sel;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int r;
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        size_t len = v ? strlen((const char *)v) : 0;
        if (len >= cap) {
            r = -ENOSPC;
        } else {
            memcpy(buf, v ? (const char *)v : "", len + 1);
            r = 0;
        }
    } else {
        r = rc == SQLITE_DONE ? -ENOENT : tel_sql_errno(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static void update_db_bytes(struct tel_store *s)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT page_count * page_size FROM pragma_page_count(),"
                           " pragma_page_size()",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        s->st.db_bytes = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
}

/* ---- batches ---- */

static int commit_batch(struct tel_store *s)
{
    if (s->p.read_only)
        return -EPERM;
    if (pending_rows(s) == 0)
        return 0;
    /* Meta rows cost a page write each; at 1 Hz a commit carries only a few samples, so the
     * seq reservation is renewed only when it runs short, and the energy total (also readable
     * from the newest sample) at most once per maintain interval. */
    uint64_t now = cmn_now_ns();
    uint64_t reserve = s->next_seq + TEL_SEQ_RESERVE + s->p.commit_rows;
    int renew = s->next_seq + s->p.commit_rows >= s->seq_reserved;
    int save_energy = s->have_energy && (s->energy_saved_ns == 0 ||
                                         now - s->energy_saved_ns >=
                                             (uint64_t)s->p.maintain_interval_ms * CMN_NS_PER_MS);
    int r = tel_sql_exec(s->db, "BEGIN IMMEDIATE");
    for (uint32_t i = 0; r == 0 && i < s->ring_len; i++)
        r = put_sample(s, &s->ring[(s->ring_head + i) % s->p.pending_max]);
    for (uint32_t i = 0; r == 0 && i < s->n_sessions; i++)
        r = put_session(s, &s->sessions[i]);
    for (uint32_t i = 0; r == 0 && i < s->n_events; i++)
        r = put_event(s, &s->events[i]);
    for (uint32_t i = 0; r == 0 && i < s->n_meta; i++)
        r = put_meta(s, s->meta[i].key, s->meta[i].value);
    if (r == 0 && save_energy) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%.17g", s->last_energy_j);
        r = put_meta(s, TEL_META_ENERGY_TOTAL_J, buf);
    }
    if (r == 0 && renew)
        r = put_meta_u64(s, "seq_reserved", reserve);
    if (r == 0)
        r = tel_sql_exec(s->db, "COMMIT");
    if (r < 0) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->st.commit_failures++;
        s->retry_after_ns = cmn_now_ns() + (uint64_t)s->p.commit_interval_ms * CMN_NS_PER_MS;
        if (r == -ENOSPC && !s->disk_full) {
            s->disk_full = 1;
            tel_store_raise(s, "store",
                            "database %s is full (%s): keeping up to %u samples in memory until "
                            "space returns",
                            s->path, sqlite3_errmsg(s->db), s->p.pending_max);
        }
        return r;
    }
    if (renew)
        s->seq_reserved = reserve;
    if (save_energy)
        s->energy_saved_ns = now;
    uint32_t written = s->ring_len;
    if (written) /* rows are in seq order and their totals never decrease: the last is largest */
        s->committed_energy_j = s->ring[(s->ring_head + written - 1) % s->p.pending_max].energy_j;
    for (uint32_t i = written; i-- > 0;) { /* likewise the newest wall total */
        const struct tel_sample *sm = &s->ring[(s->ring_head + i) % s->p.pending_max];
        if (sm->has_wall) {
            s->committed_wall_j = sm->wall_energy_j;
            break;
        }
    }
    s->st.samples_written += written;
    s->st.commits++;
    s->ring_head = 0;
    s->ring_len = 0;
    s->n_sessions = 0;
    s->n_events = 0;
    s->n_meta = 0;
    s->first_pending_ns = 0;
    s->retry_after_ns = 0;
    update_db_bytes(s);
    if (s->disk_full) {
        s->disk_full = 0;
        s->drop_reported = 0;
        tel_store_raise(s, "store",
                        "database %s writable again: wrote %u queued samples (%llu dropped in "
                        "total)",
                        s->path, written, (unsigned long long)s->st.dropped);
    }
    return 0;
}

static int batch_due(const struct tel_store *s, uint64_t now_ns)
{
    if (s->ring_len + s->n_sessions + s->n_events == 0 && !s->first_pending_ns)
        return 0;
    if (s->retry_after_ns && now_ns < s->retry_after_ns)
        return 0;
    if (s->ring_len + s->n_sessions + s->n_events >= s->p.commit_rows)
        return 1;
    return s->first_pending_ns &&
           now_ns - s->first_pending_ns >= (uint64_t)s->p.commit_interval_ms * CMN_NS_PER_MS;
}

/* ---- open / close ---- */

static int query_u64(sqlite3 *db, const char *sql, uint64_t *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int r = 0;
    if (rc == SQLITE_ROW)
        *ret =
            sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : (uint64_t)sqlite3_column_int64(st, 0);
    else
        r = tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
    sqlite3_finalize(st);
    return r;
}

int tel_store_params_check(const struct tel_store_params *p, char *err, size_t err_len)
{
    if (p->commit_interval_ms == 0 || p->commit_interval_ms > 3600000) {
        snprintf(err, err_len, "commit_interval_ms %u out of range 1..3600000",
                 p->commit_interval_ms);
        return -EINVAL;
    }
    if (p->commit_rows == 0 || p->commit_rows > 100000) {
        snprintf(err, err_len, "commit_rows %u out of range 1..100000", p->commit_rows);
        return -EINVAL;
    }
    if (p->pending_max < p->commit_rows || p->pending_max > 10000000) {
        snprintf(err, err_len, "pending_max %u out of range commit_rows (%u)..10000000",
                 p->pending_max, p->commit_rows);
        return -EINVAL;
    }
    if (p->maintain_interval_ms == 0) {
        snprintf(err, err_len, "maintain_interval_ms must be at least 1");
        return -EINVAL;
    }
    return 0;
}

int tel_store_set_max_pages(struct tel_store *s, uint64_t max_pages)
{
    char sql[64];
    /* 0 restores SQLite's own ceiling. */
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%llu",
             (unsigned long long)(max_pages ? max_pages : 1073741823ULL));
    int r = tel_sql_exec(s->db, sql);
    if (r == 0) {
        s->p.max_pages = max_pages;
        s->retry_after_ns = 0;
    }
    return r;
}

/* Opens the SQLite file. As root, only in a directory nobody else can write to (they could plant
 * the journal or swap the file), and never through a link. */
static int open_db(struct tel_store *s, const char *path, char *err, size_t err_len)
{
    int flags = s->p.read_only ? SQLITE_OPEN_READONLY
                               : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                  SQLITE_OPEN_NOFOLLOW); /* root never writes through a link */
    if (!s->p.read_only && geteuid() == 0) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", path);
        if (cmn_check_private_dir(dirname(dir)) == -EPERM) {
            snprintf(err, err_len,
                     "%s: its directory is writable by or owned by another user; refusing to "
                     "write there as root",
                     path);
            return -EPERM;
        }
        /* a missing directory is reported by the open below */
    }
    int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "%s: cannot open: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
    }
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, 2000);
    return 0;
}

/* A fixed, small page cache (store.h, TEL_STORE_CACHE_KIB): the appends and rollups touch the
 * newest pages only, and a report's scan reads each page once. Set once the file's page size is
 * known (its header read): SQLite turns a size in KiB into a page count with the page size of
 * the moment and keeps that count when the size changes, so set before the header, 1024 KiB of
 * 4096-byte default pages would become 128 KiB of our 512-byte ones. */
static int set_cache_size(struct tel_store *s, const char *path, char *err, size_t err_len)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%d", TEL_STORE_CACHE_KIB);
    int r = tel_sql_exec(s->db, sql);
    if (r < 0)
        snprintf(err, err_len, "%s: cache_size: %s", path, sqlite3_errmsg(s->db));
    return r;
}

/* A reader (ember report) takes only a database of this build's schema version. */
static int check_schema_version(struct tel_store *s, const char *path, char *err, size_t err_len)
{
    int version = 0;
    int r = tel_schema_version_of(s->db, &version);
    if (r < 0) {
        snprintf(err, err_len, "%s: not a telemetry database: %s", path, sqlite3_errmsg(s->db));
        return r;
    }
    if (version != TEL_SCHEMA_VERSION) {
        snprintf(err, err_len,
                 "%s: schema version %d, this build reads version %d (start the agent once "
                 "to migrate it)",
                 path, version, TEL_SCHEMA_VERSION);
        return -EPROTO;
    }
    return 0;
}

/* The writer's journal and page settings. */
static int set_pragmas(struct tel_store *s, const char *path, char *err, size_t err_len)
{
    /* WAL: readers (ember report) never block the writer; NORMAL: a commit is durable against
     * a process crash, and only a power cut may lose the last commits, never consistency. */
    /* Small pages: a 1 Hz commit carries a few hundred bytes, and every page it touches (leaf,
     * parent, pointer map, header) is written whole to the WAL, so the smallest page SQLite
     * allows writes the least (measured: 4 KiB pages ~300 MB/day at 1 Hz, 512 B ~50 MB/day).
     * Only takes effect on a new database (before WAL and the first table). */
    int r = tel_sql_exec(s->db, "PRAGMA page_size=" TEL_PAGE_SIZE_STR);
    if (r < 0) {
        snprintf(err, err_len, "%s: setting page size: %s", path, sqlite3_errmsg(s->db));
        return r;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int wal = mode && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(err, err_len, "%s: cannot switch to WAL journal: %s", path, sqlite3_errmsg(s->db));
        return rc == SQLITE_ROW ? -EIO : (tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO);
    }
    r = tel_sql_exec(s->db, "PRAGMA synchronous=NORMAL");
    if (r == 0)
        r = tel_sql_exec(s->db, "PRAGMA journal_size_limit=8388608");
    /* A longer WAL (8192 frames, ~4.4 MB) before each checkpoint: pages rewritten by many
     * commits (the growing leaf, its parents, the header) reach the database file once per
     * checkpoint instead of once per 1000 frames (-15% bytes written at 1 Hz). */
    if (r == 0)
        r = tel_sql_exec(s->db, "PRAGMA wal_autocheckpoint=8192");
    if (r < 0) {
        snprintf(err, err_len, "%s: setting pragmas: %s", path, sqlite3_errmsg(s->db));
        return r;
    }
    if (s->p.max_pages) {
        r = tel_store_set_max_pages(s, s->p.max_pages);
        if (r < 0) {
            snprintf(err, err_len, "%s: max_page_count: %s", path, sqlite3_errmsg(s->db));
            return r;
        }
    }
    return 0;
}

static int prepare_statements(struct tel_store *s, const char *path, char *err, size_t err_len)
{
    const struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&s->ins_sample, ins_sample_sql}, {&s->ins_session, ins_session_sql},
        {&s->ins_event, ins_event_sql},   {&s->meta_put, meta_put_sql},
        {&s->meta_sel, meta_sel_sql},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        int rc = sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st,
                                    NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, err_len, "%s: preparing statements: %s", path, sqlite3_errmsg(s->db));
            return tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
        }
    }
    return 0;
}

/* Sequence numbers and session ids go on from the highest ones stored (or reserved), the energy
 * total from the newest of the meta row and the last sample. */
static int load_counters(struct tel_store *s, const char *path, char *err, size_t err_len)
{
    uint64_t max_seq = 0, max_id = 0, reserved = 0;
    int r = query_u64(s->db, "SELECT max(seq) FROM samples", &max_seq);
    if (r == 0)
        r = query_u64(s->db, "SELECT max(id) FROM sessions", &max_id);
    if (r == 0)
        r = query_u64(s->db,
                      "SELECT CAST(value AS INTEGER) FROM meta WHERE key='seq_reserved'"
                      " UNION ALL SELECT 0 LIMIT 1",
                      &reserved);
    if (r < 0) {
        snprintf(err, err_len, "%s: reading counters: %s", path, sqlite3_errmsg(s->db));
        return r;
    }
    s->next_seq = max_seq + 1 > reserved ? max_seq + 1 : reserved;
    if (s->next_seq == 0)
        s->next_seq = 1;
    s->seq_reserved = reserved;
    s->next_session_id = max_id + 1;
    double total = 0;
    if (tel_store_energy_total_j(s, &total) == 0) {
        /* the newest sample may be ahead of the meta row, which is saved less often */
        sqlite3_stmt *es = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT energy_j FROM samples ORDER BY seq DESC LIMIT 1", -1,
                               &es, NULL) == SQLITE_OK &&
            sqlite3_step(es) == SQLITE_ROW && sqlite3_column_type(es, 0) != SQLITE_NULL &&
            sqlite3_column_double(es, 0) > total)
            total = sqlite3_column_double(es, 0);
        sqlite3_finalize(es);
        s->last_energy_j = total;
        s->have_energy = 1;
    }
    s->committed_energy_j = s->have_energy ? s->last_energy_j : 0.0;
    double wall = 0;
    if (tel_store_wall_energy_total_j(s, &wall) == 0)
        s->committed_wall_j = wall;
    return 0;
}

/* The pending rows between commits, and the first reservation of sequence numbers. */
static int start_pending(struct tel_store *s)
{
    s->ring = calloc(s->p.pending_max, sizeof(*s->ring));
    s->sessions = calloc(TEL_PENDING_SESSIONS_MAX, sizeof(*s->sessions));
    s->events = calloc(TEL_PENDING_EVENTS_MAX, sizeof(*s->events));
    if (!s->ring || !s->sessions || !s->events)
        return -ENOMEM;
    /* Reserve seqs now, so the ones handed out before the first commit are covered too. A full
     * disk here is not fatal: the store runs from memory until space returns. */
    uint64_t reserve = s->next_seq + TEL_SEQ_RESERVE + s->p.commit_rows;
    if (put_meta_u64(s, "seq_reserved", reserve) == 0)
        s->seq_reserved = reserve;
    s->last_maintain_ns = cmn_now_ns();
    update_db_bytes(s);
    return 0;
}

int tel_store_open(const char *path, const struct tel_store_params *params,
                   struct tel_store **ret_store, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || err_len == 0) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = '\0';
    struct tel_store_params defaults;
    if (!params) {
        tel_store_params_defaults(&defaults);
        params = &defaults;
    }
    if (!path || !*path || !ret_store) {
        snprintf(err, err_len, "telemetry database path is empty");
        return -EINVAL;
    }
    int r = tel_store_params_check(params, err, err_len);
    if (r < 0)
        return r;
    struct tel_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->p = *params;
    snprintf(s->path, sizeof(s->path), "%s", path);
    r = open_db(s, path, err, err_len);
    if (r == 0 && params->read_only) {
        r = check_schema_version(s, path, err, err_len);
        if (r == 0)
            r = set_cache_size(s, path, err, err_len);
        if (r == 0) {
            *ret_store = s;
            return 0;
        }
    }
    if (r == 0)
        r = set_pragmas(s, path, err, err_len);
    if (r == 0) {
        char merr[256];
        r = tel_schema_migrate(s->db, merr, sizeof(merr));
        if (r < 0)
            snprintf(err, err_len, "%s: %s", path, merr);
    }
    if (r == 0)
        r = set_cache_size(s, path, err, err_len);
    if (r == 0)
        r = prepare_statements(s, path, err, err_len);
    if (r == 0)
        r = load_counters(s, path, err, err_len);
    if (r == 0)
        r = start_pending(s);
    if (r < 0) {
        tel_store_close(s);
        return r;
    }
    *ret_store = s;
    return 0;
}

void tel_store_close(struct tel_store *s)
{
    if (!s)
        return;
    if (s->db && !s->p.read_only && s->ring) {
        if (commit_batch(s) == 0) {
            /* A clean shutdown needs no gap in the seqs, and leaves the exact total. */
            put_meta_u64(s, "seq_reserved", s->next_seq);
            if (s->have_energy) {
                char buf[64];
                snprintf(buf, sizeof(buf), "%.17g", s->last_energy_j);
                put_meta(s, TEL_META_ENERGY_TOTAL_J, buf);
            }
        }
    }
    sqlite3_finalize(s->ins_sample);
    sqlite3_finalize(s->ins_session);
    sqlite3_finalize(s->ins_event);
    sqlite3_finalize(s->meta_put);
    sqlite3_finalize(s->meta_sel);
    if (s->db)
        sqlite3_close_v2(s->db);
    free(s->ring);
    free(s->sessions);
    free(s->events);
    free(s);
}

/* ---- appending ---- */

int tel_store_append_sample(struct tel_store *s, struct tel_sample *sample, uint64_t *ret_seq)
{
    if (!s || !sample)
        return -EINVAL;
    if (s->p.read_only)
        return -EPERM;
    if (sample->n_freq > TEL_MAX_FREQ || (int)sample->source < 0 ||
        sample->source >= TEL_SOURCE_COUNT_)
        return -EINVAL;
    /* The total never goes backwards, whatever the caller hands in. */
    if (!isfinite(sample->energy_j) || (s->have_energy && sample->energy_j < s->last_energy_j))
        sample->energy_j = s->have_energy ? s->last_energy_j : 0.0;
    s->last_energy_j = sample->energy_j;
    s->have_energy = 1;
    if (sample->has_wall) { /* the same for the wall total */
        double saved;
        if (!s->have_wall) /* loads the newest total on disk, if any */
            tel_store_wall_energy_total_j(s, &saved);
        if (!isfinite(sample->wall_energy_j) ||
            (s->have_wall && sample->wall_energy_j < s->last_wall_j))
            sample->wall_energy_j = s->have_wall ? s->last_wall_j : 0.0;
        s->last_wall_j = sample->wall_energy_j;
        s->have_wall = 1;
        sample->wall_source[TEL_WALL_SOURCE_MAX - 1] = '\0';
    }
    sample->policy[TEL_NAME_MAX - 1] = '\0';
    sample->phase[TEL_NAME_MAX - 1] = '\0';
    sample->seq = s->next_seq++;
    if (ret_seq)
        *ret_seq = sample->seq;

    if (s->ring_len == s->p.pending_max) {
        s->ring_head = (s->ring_head + 1) % s->p.pending_max;
        s->ring_len--;
        s->st.dropped++;
        if (!s->drop_reported) {
            s->drop_reported = 1;
            tel_store_raise(s, "store",
                            "in-memory queue full (%u samples): dropping the oldest until the "
                            "database is writable",
                            s->p.pending_max);
        }
    }
    s->ring[(s->ring_head + s->ring_len) % s->p.pending_max] = *sample;
    s->ring_len++;
    mark_pending(s);
    if (batch_due(s, cmn_now_ns()))
        commit_batch(s); /* a failure keeps the rows queued; the event says why */
    return 0;
}

int tel_store_add_session(struct tel_store *s, struct tel_session *session)
{
    if (!s || !session)
        return -EINVAL;
    if (s->p.read_only)
        return -EPERM;
    if (session->id == 0)
        session->id = s->next_session_id;
    if (session->id >= s->next_session_id)
        s->next_session_id = session->id + 1;
    session->policy[TEL_NAME_MAX - 1] = '\0';
    if (s->n_sessions == TEL_PENDING_SESSIONS_MAX) {
        memmove(s->sessions, s->sessions + 1,
                (TEL_PENDING_SESSIONS_MAX - 1) * sizeof(*s->sessions));
        s->n_sessions--;
    }
    s->sessions[s->n_sessions++] = *session;
    mark_pending(s);
    if (batch_due(s, cmn_now_ns()))
        commit_batch(s);
    return 0;
}

int tel_store_add_event(struct tel_store *s, uint64_t ts_ns, const char *kind, const char *detail)
{
    if (!s || !kind || !*kind)
        return -EINVAL;
    if (s->p.read_only)
        return -EPERM;
    if (s->n_events == TEL_PENDING_EVENTS_MAX) {
        memmove(s->events, s->events + 1, (TEL_PENDING_EVENTS_MAX - 1) * sizeof(*s->events));
        s->n_events--;
    }
    struct tel_event *ev = &s->events[s->n_events++];
    memset(ev, 0, sizeof(*ev));
    ev->ts_ns = ts_ns;
    snprintf(ev->kind, sizeof(ev->kind), "%s", kind);
    snprintf(ev->detail, sizeof(ev->detail), "%s", detail ? detail : "");
    mark_pending(s);
    if (batch_due(s, cmn_now_ns()))
        commit_batch(s);
    return 0;
}

int tel_store_flush(struct tel_store *s)
{
    if (!s)
        return -EINVAL;
    return commit_batch(s);
}

int tel_store_maintain(struct tel_store *s)
{
    if (!s)
        return -EINVAL;
    if (s->p.read_only)
        return -EPERM;
    s->last_maintain_ns = cmn_now_ns();
    int r = commit_batch(s);
    if (r < 0)
        return r; /* full or failing: deletes and rollups would fail the same way */
    r = tel_sql_exec(s->db, "BEGIN IMMEDIATE");
    if (r == 0)
        r = tel_rollup_run(s->db);
    if (r == 0)
        r = tel_sql_exec(s->db, "COMMIT");
    if (r < 0) {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
    }
    r = tel_retention_run(s, s->p.wall_clock_ns ? s->p.wall_clock_ns() : cmn_wall_ns());
    update_db_bytes(s);
    return r;
}

int tel_store_tick(struct tel_store *s)
{
    if (!s)
        return -EINVAL;
    if (s->p.read_only)
        return 0;
    uint64_t now = cmn_now_ns();
    int r = 0;
    if (batch_due(s, now))
        r = commit_batch(s);
    if (now - s->last_maintain_ns >= (uint64_t)s->p.maintain_interval_ms * CMN_NS_PER_MS) {
        int m = tel_store_maintain(s);
        if (r == 0)
            r = m;
    }
    return r;
}

int64_t tel_store_next_due_ms(const struct tel_store *s)
{
    if (!s || !s->first_pending_ns)
        return -1;
    uint64_t now = cmn_now_ns();
    uint64_t due = s->first_pending_ns + (uint64_t)s->p.commit_interval_ms * CMN_NS_PER_MS;
    if (s->retry_after_ns > due)
        due = s->retry_after_ns;
    return due <= now ? 0 : (int64_t)((due - now + CMN_NS_PER_MS - 1) / CMN_NS_PER_MS);
}

/* ---- reading back ---- */

static void row_to_sample(sqlite3_stmt *st, struct tel_sample *sm)
{
    memset(sm, 0, sizeof(*sm));
    sm->seq = (uint64_t)sqlite3_column_int64(st, 0);
    sm->ts_ns = (uint64_t)sqlite3_column_int64(st, 1);
    sm->power_w = column_real(st, 2);
    sm->energy_j = column_real(st, 3);
    sm->temp_c = column_real(st, 4);
    sm->util = column_real(st, 5);
    freq_from_json((const char *)sqlite3_column_text(st, 6), sm);
    copy_text(sm->policy, sizeof(sm->policy), sqlite3_column_text(st, 7));
    copy_text(sm->phase, sizeof(sm->phase), sqlite3_column_text(st, 8));
    enum tel_source src = TEL_SOURCE_NONE;
    const unsigned char *name = sqlite3_column_text(st, 9);
    if (name && tel_source_from_name((const char *)name, &src) == 0)
        sm->source = src;
    sqlite3_int64 tokens = sqlite3_column_int64(st, 10);
    sm->tokens = tokens > 0 ? (uint64_t)tokens : 0;
    sm->tokens_per_s = column_real(st, 11);
    sm->prefill_j = column_real(st, 12);
    sm->decode_j = column_real(st, 13);
    sm->idle_j = column_real(st, 14);
    sm->has_phase_energy = sqlite3_column_type(st, 12) != SQLITE_NULL;
    sm->has_wall = sqlite3_column_type(st, 16) != SQLITE_NULL;
    if (sm->has_wall) {
        sm->wall_power_w = column_real(st, 15);
        sm->wall_energy_j = column_real(st, 16);
        copy_text(sm->wall_source, sizeof(sm->wall_source), sqlite3_column_text(st, 17));
        sm->wall_measured = sqlite3_column_int(st, 18) != 0;
        sm->wall_prefill_j = column_real(st, 19);
        sm->wall_decode_j = column_real(st, 20);
        sm->wall_idle_j = column_real(st, 21);
    }
}

int tel_store_samples_after(struct tel_store *s, uint64_t after_seq, uint32_t max, tel_sample_cb cb,
                            void *user)
{
    if (!s || !cb)
        return -EINVAL;
    int delivered = 0;
    uint64_t last = after_seq;
    uint64_t first_queued = s->ring_len ? s->ring[s->ring_head].seq : UINT64_MAX;
    if (after_seq + 1 < first_queued) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sel_sample_sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
            return tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)(after_seq > INT64_MAX ? INT64_MAX : after_seq));
        sqlite3_bind_int64(st, 2, max ? (sqlite3_int64)max : -1);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct tel_sample sm;
            row_to_sample(st, &sm);
            delivered++;
            last = sm.seq;
            if (cb(user, &sm)) {
                sqlite3_finalize(st);
                return delivered;
            }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
    }
    for (uint32_t i = 0; i < s->ring_len; i++) {
        if (max && (uint32_t)delivered >= max)
            break;
        const struct tel_sample *sm = &s->ring[(s->ring_head + i) % s->p.pending_max];
        if (sm->seq <= last)
            continue;
        delivered++;
        last = sm->seq;
        if (cb(user, sm))
            break;
    }
    return delivered;
}

uint64_t tel_store_last_seq(const struct tel_store *s)
{
    return s ? s->next_seq - 1 : 0;
}

/* ---- meta ---- */

int tel_store_meta_get(struct tel_store *s, const char *key, char *buf, size_t cap)
{
    if (!s || !key || !buf || cap == 0)
        return -EINVAL;
    for (uint32_t i = s->n_meta; i-- > 0;) {
        if (strcmp(s->meta[i].key, key) == 0) {
            size_t len = strlen(s->meta[i].value);
            if (len >= cap)
                return -ENOSPC;
            memcpy(buf, s->meta[i].value, len + 1);
            return 0;
        }
    }
    if (s->p.read_only) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, meta_sel_sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
            return tel_sql_errno(rc) ? tel_sql_errno(rc) : -EIO;
        s->meta_sel = st;
        int r = get_meta(s, key, buf, cap);
        sqlite3_finalize(st);
        s->meta_sel = NULL;
        return r;
    }
    return get_meta(s, key, buf, cap);
}

int tel_store_meta_set(struct tel_store *s, const char *key, const char *value)
{
    if (!s || !key || !*key || !value)
        return -EINVAL;
    if (s->p.read_only)
        return -EPERM;
    if (strlen(key) >= sizeof(s->meta[0].key) || strlen(value) >= TEL_META_VALUE_MAX)
        return -ENOSPC;
    uint32_t i;
    for (i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0)
            break;
    if (i == s->n_meta) {
        if (s->n_meta == TEL_META_PENDING_MAX) {
            /* Many distinct keys in one batch: write what is queued first. */
            int r = commit_batch(s);
            if (r < 0)
                return r;
            i = 0;
        }
        s->n_meta = i + 1;
        snprintf(s->meta[i].key, sizeof(s->meta[i].key), "%s", key);
    }
    snprintf(s->meta[i].value, sizeof(s->meta[i].value), "%s", value);
    mark_pending(s);
    return 0;
}

int tel_store_meta_get_u64(struct tel_store *s, const char *key, uint64_t *ret)
{
    char buf[TEL_META_VALUE_MAX];
    int r = tel_store_meta_get(s, key, buf, sizeof(buf));
    if (r < 0)
        return r;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || *end != '\0' || errno == ERANGE || buf[0] == '-')
        return -EINVAL;
    *ret = v;
    return 0;
}

int tel_store_meta_set_u64(struct tel_store *s, const char *key, uint64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)value);
    return tel_store_meta_set(s, key, buf);
}

int tel_store_energy_total_j(struct tel_store *s, double *ret_j)
{
    if (!s || !ret_j)
        return -EINVAL;
    if (s->have_energy) {
        *ret_j = s->last_energy_j;
        return 0;
    }
    char buf[TEL_META_VALUE_MAX];
    int r = tel_store_meta_get(s, TEL_META_ENERGY_TOTAL_J, buf, sizeof(buf));
    if (r == -ENOENT) {
        *ret_j = 0.0;
        return 0;
    }
    if (r < 0)
        return r;
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end == buf || !isfinite(v) || v < 0)
        return -EINVAL;
    *ret_j = v;
    return 0;
}

double tel_store_committed_wall_energy_j(const struct tel_store *s)
{
    return s ? s->committed_wall_j : 0.0;
}

double tel_store_committed_energy_j(const struct tel_store *s)
{
    return s ? s->committed_energy_j : 0.0;
}

void tel_store_get_stats(const struct tel_store *s, struct tel_store_stats *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (!s)
        return;
    *ret = s->st;
    ret->pending = s->ring_len;
    ret->disk_full = s->disk_full;
}

struct sqlite3 *tel_store_db(struct tel_store *s)
{
    return s ? s->db : NULL;
}

int tel_store_wall_energy_total_j(struct tel_store *s, double *ret_j)
{
    if (!s || !ret_j)
        return -EINVAL;
    if (s->have_wall) {
        *ret_j = s->last_wall_j;
        return 0;
    }
    /* The newest row that has a wall total (rows from before schema 5 have none: 0 then). */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT wall_energy_j FROM samples WHERE wall_energy_j IS NOT NULL"
                                " ORDER BY seq DESC LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return tel_sql_errno(rc);
    rc = sqlite3_step(st);
    double v = 0.0;
    if (rc == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tel_sql_errno(rc);
    if (!isfinite(v) || v < 0)
        v = 0.0;
    *ret_j = v;
    if (rc == SQLITE_ROW) {
        s->last_wall_j = v;
        s->have_wall = 1;
    }
    return 0;
}
