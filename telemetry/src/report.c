/* Report numbers from the telemetry database (see report.h for the rules), their JSON form and
 * their text form. All queries are read-only and bounded by the time window's index. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "common/timeutil.h"
#include "telemetry/report.h"

#define MAX_INTERVAL_NS (60ULL * 1000000000ULL)

int tel_report_parse_duration(const char *text, uint64_t *ret_s)
{
    if (!text || !*text || !ret_s)
        return -EINVAL;
    const char *p = text;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(p, &end, 10);
    if (errno == ERANGE)
        return -EINVAL;
    uint64_t mult = 1;
    if (*end) {
        switch (*end) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        case 'w':
            mult = 7 * 86400;
            break;
        default:
            return -EINVAL;
        }
        if (end[1] != '\0')
            return -EINVAL;
    }
    /* at most 100 years: keeps now - since well inside uint64 nanoseconds */
    if (n == 0 || n > 100ULL * 366 * 86400 / mult)
        return -EINVAL;
    *ret_s = (uint64_t)n * mult;
    return 0;
}

static double col(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static int prep(sqlite3 *db, const char *sql, const struct tel_report *r, sqlite3_stmt **ret,
                char *err, size_t err_len)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, ret, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "report query failed: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    sqlite3_bind_int64(*ret, 1, (sqlite3_int64)r->since_ns);
    sqlite3_bind_int64(*ret, 2, (sqlite3_int64)r->until_ns);
    /* the seq range of the window (statements on other tables have no ?3/?4: SQLITE_RANGE) */
    sqlite3_bind_int64(*ret, 3, (sqlite3_int64)r->seq_lo_);
    sqlite3_bind_int64(*ret, 4, (sqlite3_int64)r->seq_hi_);
    return 0;
}

static int finish(sqlite3 *db, sqlite3_stmt *st, int rc, char *err, size_t err_len)
{
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, err_len, "report query failed: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    return 0;
}

/* Per-interval deltas inside the window; the first sample only opens it. */
#define DELTAS                                                                \
    "WITH d AS (SELECT phase, policy, tokens, power_w,"                       \
    " energy_j - lag(energy_j) OVER w AS de, ts_ns - lag(ts_ns) OVER w AS dt" \
    " FROM samples WHERE seq BETWEEN ?3 AND ?4 AND ts_ns BETWEEN ?1 AND ?2"   \
    " WINDOW w AS (ORDER BY seq))"

static const char group_sql_fmt[] =
    DELTAS " SELECT coalesce(%s, ''), count(*), sum(tokens), sum(max(de, 0)),"
           " sum(CASE WHEN dt > 0 AND dt <= %llu THEN dt ELSE 0 END) / 1e9,"
           " sum(CASE WHEN dt > 0 AND dt <= %llu THEN max(de, 0) ELSE 0 END)"
           " FROM d WHERE de IS NOT NULL GROUP BY 1 ORDER BY 4 DESC LIMIT %d";

/* timed_j: the energy of the intervals counted in seconds (outages excluded) */
static void finish_group(struct tel_report_group *g, double timed_j)
{
    g->j_per_token = g->tokens ? g->energy_j / (double)g->tokens : NAN;
    g->avg_power_w = g->seconds > 0 ? timed_j / g->seconds : NAN;
}

static int groups(sqlite3 *db, struct tel_report *r, const char *column,
                  struct tel_report_group *out, uint32_t *ret_n, char *err, size_t err_len)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), group_sql_fmt, column, (unsigned long long)MAX_INTERVAL_NS,
             (unsigned long long)MAX_INTERVAL_NS, TEL_REPORT_GROUPS_MAX);
    sqlite3_stmt *st = NULL;
    int e = prep(db, sql, r, &st, err, err_len);
    if (e < 0)
        return e;
    int rc;
    uint32_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < TEL_REPORT_GROUPS_MAX) {
        struct tel_report_group *g = &out[n++];
        memset(g, 0, sizeof(*g));
        snprintf(g->name, sizeof(g->name), "%s", (const char *)sqlite3_column_text(st, 0));
        g->samples = (uint64_t)sqlite3_column_int64(st, 1);
        g->tokens = (uint64_t)sqlite3_column_int64(st, 2);
        g->energy_j = sqlite3_column_double(st, 3);
        g->seconds = sqlite3_column_double(st, 4);
        finish_group(g, sqlite3_column_double(st, 5));
    }
    *ret_n = n;
    return finish(db, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, err, err_len);
}

/* Energy by engine phase: the exact split where a sample has it, else the interval's energy under
 * the sample's phase label (databases from before schema 3). */
static const char phase_sql[] =
    "WITH d AS (SELECT seq, phase, source, scope, prefill_j, decode_j, idle_j,"
    " energy_j - lag(energy_j) OVER w AS de FROM samples WHERE seq BETWEEN ?3 AND ?4"
    " AND ts_ns BETWEEN ?1 AND ?2 WINDOW w AS (ORDER BY seq))"
    " SELECT sum(coalesce(prefill_j, CASE WHEN phase = 'prefill' THEN max(de, 0) ELSE 0 END)),"
    " sum(coalesce(decode_j, CASE WHEN phase = 'decode' THEN max(de, 0) ELSE 0 END)),"
    " sum(coalesce(idle_j, CASE WHEN coalesce(phase, '') NOT IN ('prefill', 'decode')"
    " THEN max(de, 0) ELSE 0 END)),"
    " count(prefill_j), count(*) - count(prefill_j),"
    " (SELECT count(*) FROM d WHERE source = 'estimate'),"
    " (SELECT coalesce(scope, 'none') FROM d GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"
    " FROM d WHERE de IS NOT NULL";

static int phase_energy(sqlite3 *db, struct tel_report *r, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    int e = prep(db, phase_sql, r, &st, err, err_len);
    if (e < 0)
        return e;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->by_phase.prefill_j = sqlite3_column_double(st, 0);
        r->by_phase.decode_j = sqlite3_column_double(st, 1);
        r->by_phase.idle_j = sqlite3_column_double(st, 2);
        r->by_phase.exact_intervals = (uint64_t)sqlite3_column_int64(st, 3);
        r->by_phase.label_intervals = (uint64_t)sqlite3_column_int64(st, 4);
        r->by_phase.estimated_samples = (uint64_t)sqlite3_column_int64(st, 5);
        const unsigned char *sc = sqlite3_column_text(st, 6);
        snprintf(r->by_phase.scope, sizeof(r->by_phase.scope), "%s",
                 sc ? (const char *)sc : "none");
        rc = SQLITE_DONE;
    }
    double t = (double)r->tokens;
    r->by_phase.active_j_per_token =
        t > 0 ? (r->by_phase.prefill_j + r->by_phase.decode_j) / t : NAN;
    r->by_phase.all_j_per_token =
        t > 0 ? (r->by_phase.prefill_j + r->by_phase.decode_j + r->by_phase.idle_j) / t : NAN;
    return finish(db, st, rc, err, err_len);
}

/* The wall channel: its total's increase, split by phase where the sample carries the split. */
static const char wall_sql[] =
    "WITH d AS (SELECT seq, wall_source, wall_measured, wall_prefill_j, wall_decode_j,"
    " wall_idle_j, wall_energy_j - lag(wall_energy_j) OVER w AS de FROM samples"
    " WHERE seq BETWEEN ?3 AND ?4 AND ts_ns BETWEEN ?1 AND ?2 AND wall_energy_j IS NOT NULL"
    " WINDOW w AS (ORDER BY seq))"
    " SELECT count(*), coalesce(sum(wall_measured), 0), count(wall_prefill_j),"
    " coalesce(sum(max(de, 0)), 0), coalesce(sum(wall_prefill_j), 0),"
    " coalesce(sum(wall_decode_j), 0), coalesce(sum(wall_idle_j), 0),"
    " (SELECT wall_source FROM d WHERE de IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)"
    " FROM d WHERE de IS NOT NULL";

static int wall_energy(sqlite3 *db, struct tel_report *r, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    int e = prep(db, wall_sql, r, &st, err, err_len);
    if (e < 0)
        return e;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->wall.intervals = (uint64_t)sqlite3_column_int64(st, 0);
        r->wall.measured_intervals = (uint64_t)sqlite3_column_int64(st, 1);
        r->wall.exact_intervals = (uint64_t)sqlite3_column_int64(st, 2);
        r->wall.energy_j = sqlite3_column_double(st, 3);
        r->wall.prefill_j = sqlite3_column_double(st, 4);
        r->wall.decode_j = sqlite3_column_double(st, 5);
        r->wall.idle_j = sqlite3_column_double(st, 6);
        const unsigned char *src = sqlite3_column_text(st, 7);
        snprintf(r->wall.source, sizeof(r->wall.source), "%s", src ? (const char *)src : "");
        rc = SQLITE_DONE;
    }
    double t = (double)r->tokens;
    int split = r->wall.exact_intervals > 0;
    r->wall.active_j_per_token = t > 0 && split ? (r->wall.prefill_j + r->wall.decode_j) / t : NAN;
    r->wall.all_j_per_token = t > 0 && r->wall.intervals ? r->wall.energy_j / t : NAN;
    return finish(db, st, rc, err, err_len);
}

static const char sessions_sql[] =
    "SELECT %s, count(*), sum(prompt_tokens), sum(gen_tokens), sum(energy_j), avg(ttft_ms),"
    " avg(duration_ms) FROM sessions WHERE ts_ns BETWEEN ?1 AND ?2 %s LIMIT %d";

static void fill_session(sqlite3_stmt *st, struct tel_report_session_group *g)
{
    memset(g, 0, sizeof(*g));
    const unsigned char *name = sqlite3_column_text(st, 0);
    snprintf(g->name, sizeof(g->name), "%s", name ? (const char *)name : "");
    g->count = (uint64_t)sqlite3_column_int64(st, 1);
    g->prompt_tokens = (uint64_t)sqlite3_column_int64(st, 2);
    g->gen_tokens = (uint64_t)sqlite3_column_int64(st, 3);
    g->energy_j = sqlite3_column_double(st, 4);
    g->ttft_ms_avg = col(st, 5);
    g->duration_ms_avg = col(st, 6);
    /* joules per generated token: the one definition of J/token (samples count generated
     * tokens too, and the simulator divides by them) */
    g->j_per_token = g->gen_tokens ? g->energy_j / (double)g->gen_tokens : NAN;
}

int tel_report_build(struct tel_store *store, const struct tel_report_params *params,
                     struct tel_report *r, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!store || !params || !r)
        return -EINVAL;
    sqlite3 *db = tel_store_db(store);
    memset(r, 0, sizeof(*r));
    r->since_ns = params->since_ns;
    r->until_ns = params->until_ns ? params->until_ns : cmn_wall_ns();
    if (r->until_ns > INT64_MAX)
        r->until_ns = INT64_MAX;
    if (r->since_ns > r->until_ns) {
        snprintf(err, err_len, "report window starts after it ends");
        return -EINVAL;
    }
    sqlite3_stmt *st = NULL;
    r->avg_power_w = r->max_power_w = r->avg_temp_c = r->max_temp_c = NAN;
    r->avg_freq_mhz = r->max_freq_mhz = r->j_per_token = NAN;

    /* samples has no time index (see rollup.c): one scan finds the window's seq range, and
     * every later query reads only that range through the primary key */
    if (sqlite3_prepare_v2(db,
                           "SELECT min(seq), max(seq) FROM samples WHERE ts_ns BETWEEN ?1 AND ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "report query failed: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->since_ns);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->until_ns);
    int rc = sqlite3_step(st);
    r->seq_lo_ = 1;
    r->seq_hi_ = 0; /* empty */
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        r->seq_lo_ = (uint64_t)sqlite3_column_int64(st, 0);
        r->seq_hi_ = (uint64_t)sqlite3_column_int64(st, 1);
    }
    if (rc == SQLITE_ROW)
        rc = SQLITE_DONE;
    int e = finish(db, st, rc, err, err_len);
    if (e < 0)
        return e;

    /* whole-window figures */
    double timed_j = 0;
    char sql[1024];
    snprintf(sql, sizeof(sql),
             DELTAS ", a AS (SELECT count(*) AS n, min(ts_ns) AS t0, max(ts_ns) AS t1,"
                    " max(power_w) AS pmax, avg(temp_c) AS tavg, max(temp_c) AS tmax,"
                    " avg(freq_avg_mhz) AS favg, max(freq_avg_mhz) AS fmax"
                    " FROM samples WHERE seq BETWEEN ?3 AND ?4 AND ts_ns BETWEEN ?1 AND ?2)"
                    " SELECT a.n, a.t0, a.t1, a.pmax, a.tavg, a.tmax, a.favg, a.fmax,"
                    " (SELECT sum(max(de, 0)) FROM d WHERE de IS NOT NULL),"
                    " (SELECT sum(tokens) FROM d WHERE de IS NOT NULL),"
                    " (SELECT sum(CASE WHEN dt > 0 AND dt <= %llu THEN dt ELSE 0 END) / 1e9"
                    "  FROM d WHERE de IS NOT NULL),"
                    " (SELECT sum(CASE WHEN dt > 0 AND dt <= %llu THEN max(de, 0) ELSE 0 END)"
                    "  FROM d WHERE de IS NOT NULL) FROM a",
             (unsigned long long)MAX_INTERVAL_NS, (unsigned long long)MAX_INTERVAL_NS);
    e = prep(db, sql, r, &st, err, err_len);
    if (e < 0)
        return e;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->samples = (uint64_t)sqlite3_column_int64(st, 0);
        r->first_ts_ns = (uint64_t)sqlite3_column_int64(st, 1);
        r->last_ts_ns = (uint64_t)sqlite3_column_int64(st, 2);
        r->max_power_w = col(st, 3);
        r->avg_temp_c = col(st, 4);
        r->max_temp_c = col(st, 5);
        r->avg_freq_mhz = col(st, 6);
        r->max_freq_mhz = col(st, 7);
        r->energy_j = sqlite3_column_double(st, 8);
        r->tokens = (uint64_t)sqlite3_column_int64(st, 9);
        r->seconds = sqlite3_column_double(st, 10);
        timed_j = sqlite3_column_double(st, 11);
        rc = SQLITE_DONE;
    }
    e = finish(db, st, rc, err, err_len);
    if (e < 0)
        return e;

    /* minutes before the first raw sample (retention removed them) come from rollups */
    uint64_t rollup_until = r->samples ? r->first_ts_ns : r->until_ns;
    if (sqlite3_prepare_v2(db,
                           "SELECT sum(energy_j), sum(n) FROM rollup_1m WHERE ts_ns >= ?1 AND"
                           " ts_ns + 60000000000 <= ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "report query failed: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->since_ns);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)rollup_until);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        double ej = col(st, 0);
        if (isfinite(ej) && ej > 0)
            r->rollup_energy_j = ej;
        rc = SQLITE_DONE;
    }
    e = finish(db, st, rc, err, err_len);
    if (e < 0)
        return e;
    r->energy_j += r->rollup_energy_j;
    r->avg_power_w = r->seconds > 0 ? timed_j / r->seconds : NAN;
    r->j_per_token = r->tokens ? (r->energy_j - r->rollup_energy_j) / (double)r->tokens : NAN;

    e = groups(db, r, "phase", r->phases, &r->n_phases, err, err_len);
    if (e == 0)
        e = phase_energy(db, r, err, err_len);
    if (e == 0)
        e = wall_energy(db, r, err, err_len);
    if (e == 0)
        e = groups(db, r, "policy", r->policies, &r->n_policies, err, err_len);
    if (e < 0)
        return e;

    e = prep(db,
             "SELECT coalesce(source, ''), count(*) FROM samples WHERE seq BETWEEN ?3 AND ?4"
             " AND ts_ns BETWEEN ?1 AND ?2"
             " GROUP BY 1 ORDER BY 2 DESC",
             r, &st, err, err_len);
    if (e < 0)
        return e;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->n_sources < TEL_SOURCE_COUNT_) {
        struct tel_report_group *g = &r->sources[r->n_sources++];
        snprintf(g->name, sizeof(g->name), "%s", (const char *)sqlite3_column_text(st, 0));
        g->samples = (uint64_t)sqlite3_column_int64(st, 1);
        g->j_per_token = g->avg_power_w = NAN;
    }
    e = finish(db, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, err, err_len);
    if (e < 0)
        return e;

    snprintf(sql, sizeof(sql), sessions_sql, "'all'", "", 1);
    e = prep(db, sql, r, &st, err, err_len);
    if (e < 0)
        return e;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        fill_session(st, &r->sessions);
        rc = SQLITE_DONE;
    }
    e = finish(db, st, rc, err, err_len);
    if (e < 0)
        return e;
    snprintf(sql, sizeof(sql), sessions_sql, "coalesce(policy, '')", "GROUP BY 1 ORDER BY 5 DESC",
             TEL_REPORT_GROUPS_MAX);
    e = prep(db, sql, r, &st, err, err_len);
    if (e < 0)
        return e;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->n_session_policies < TEL_REPORT_GROUPS_MAX)
        fill_session(st, &r->session_policies[r->n_session_policies++]);
    e = finish(db, st, rc == SQLITE_ROW ? SQLITE_DONE : rc, err, err_len);
    if (e < 0)
        return e;

    e = prep(db,
             "SELECT kind, count(*) FROM events WHERE ts_ns BETWEEN ?1 AND ?2 GROUP BY 1"
             " ORDER BY 2 DESC, 1",
             r, &st, err, err_len);
    if (e < 0)
        return e;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);
        r->events += n;
        if (r->n_event_kinds < TEL_REPORT_GROUPS_MAX) {
            snprintf(r->event_kinds[r->n_event_kinds].kind, TEL_NAME_MAX, "%s",
                     (const char *)sqlite3_column_text(st, 0));
            r->event_kinds[r->n_event_kinds++].count = n;
        }
    }
    return finish(db, st, rc, err, err_len);
}

/* ---- JSON ---- */

static void num(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *group_json(const struct tel_report_group *g, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, key, g->name);
    num(o, "samples", (double)g->samples);
    num(o, "energy_j", g->energy_j);
    num(o, "tokens", (double)g->tokens);
    num(o, "j_per_token", g->j_per_token);
    num(o, "seconds", g->seconds);
    num(o, "avg_power_w", g->avg_power_w);
    return o;
}

static cJSON *session_json(const struct tel_report_session_group *g, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    if (key)
        cJSON_AddStringToObject(o, key, g->name);
    num(o, "count", (double)g->count);
    num(o, "prompt_tokens", (double)g->prompt_tokens);
    num(o, "gen_tokens", (double)g->gen_tokens);
    num(o, "energy_j", g->energy_j);
    num(o, "j_per_token", g->j_per_token);
    num(o, "ttft_ms_avg", g->ttft_ms_avg);
    num(o, "duration_ms_avg", g->duration_ms_avg);
    return o;
}

char *tel_report_json(const struct tel_report *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    num(o, "since_ns", (double)r->since_ns);
    num(o, "until_ns", (double)r->until_ns);
    num(o, "samples", (double)r->samples);
    num(o, "energy_j", r->energy_j);
    num(o, "energy_wh", r->energy_j / 3600.0);
    num(o, "rollup_energy_j", r->rollup_energy_j);
    num(o, "seconds", r->seconds);
    num(o, "avg_power_w", r->avg_power_w);
    num(o, "max_power_w", r->max_power_w);
    num(o, "avg_temp_c", r->avg_temp_c);
    num(o, "max_temp_c", r->max_temp_c);
    num(o, "avg_freq_mhz", r->avg_freq_mhz);
    num(o, "max_freq_mhz", r->max_freq_mhz);
    num(o, "tokens", (double)r->tokens);
    num(o, "j_per_token", r->j_per_token);
    cJSON *pe = cJSON_AddObjectToObject(o, "phase_energy");
    if (pe) {
        num(pe, "prefill_j", r->by_phase.prefill_j);
        num(pe, "decode_j", r->by_phase.decode_j);
        num(pe, "idle_j", r->by_phase.idle_j);
        num(pe, "exact_intervals", (double)r->by_phase.exact_intervals);
        num(pe, "label_intervals", (double)r->by_phase.label_intervals);
        num(pe, "j_per_token_active", r->by_phase.active_j_per_token);
        num(pe, "j_per_token_with_idle", r->by_phase.all_j_per_token);
        cJSON_AddStringToObject(pe, "scope", r->by_phase.scope);
        cJSON_AddBoolToObject(pe, "estimated", r->by_phase.estimated_samples > 0);
    }
    cJSON *we = r->wall.intervals ? cJSON_AddObjectToObject(o, "wall_energy") : NULL;
    if (we) {
        num(we, "energy_j", r->wall.energy_j);
        num(we, "prefill_j", r->wall.prefill_j);
        num(we, "decode_j", r->wall.decode_j);
        num(we, "idle_j", r->wall.idle_j);
        num(we, "intervals", (double)r->wall.intervals);
        num(we, "measured_intervals", (double)r->wall.measured_intervals);
        num(we, "j_per_token_active", r->wall.active_j_per_token);
        num(we, "j_per_token_with_idle", r->wall.all_j_per_token);
        cJSON_AddStringToObject(we, "source", r->wall.source);
        cJSON_AddBoolToObject(we, "estimated", r->wall.measured_intervals < r->wall.intervals);
    }
    cJSON *a = cJSON_AddArrayToObject(o, "phases");
    for (uint32_t i = 0; a && i < r->n_phases; i++)
        cJSON_AddItemToArray(a, group_json(&r->phases[i], "phase"));
    a = cJSON_AddArrayToObject(o, "policies");
    for (uint32_t i = 0; a && i < r->n_policies; i++)
        cJSON_AddItemToArray(a, group_json(&r->policies[i], "policy"));
    cJSON *src = cJSON_AddObjectToObject(o, "sources");
    for (uint32_t i = 0; src && i < r->n_sources; i++)
        num(src, r->sources[i].name, (double)r->sources[i].samples);
    cJSON *s = session_json(&r->sessions, NULL);
    if (s) {
        cJSON *bp = cJSON_AddArrayToObject(s, "by_policy");
        for (uint32_t i = 0; bp && i < r->n_session_policies; i++)
            cJSON_AddItemToArray(bp, session_json(&r->session_policies[i], "policy"));
        cJSON_AddItemToObject(o, "sessions", s);
    }
    cJSON *ev = cJSON_AddObjectToObject(o, "events");
    if (ev) {
        num(ev, "count", (double)r->events);
        cJSON *k = cJSON_AddObjectToObject(ev, "by_kind");
        for (uint32_t i = 0; k && i < r->n_event_kinds; i++)
            num(k, r->event_kinds[i].kind, (double)r->event_kinds[i].count);
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

/* ---- text ---- */

static void fmt_time(uint64_t ts_ns, char *buf, size_t cap)
{
    time_t t = (time_t)(ts_ns / 1000000000ULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

/* decimals < 0: four significant digits; "-" for NAN */
static void fmt_num(char *buf, size_t cap, int decimals, double v)
{
    if (!isfinite(v))
        snprintf(buf, cap, "-");
    else if (decimals < 0)
        snprintf(buf, cap, "%.4g", v);
    else
        snprintf(buf, cap, "%.*f", decimals, v);
}

static void print_groups(FILE *out, const char *title, const struct tel_report_group *g, uint32_t n)
{
    if (!n)
        return;
    fprintf(out, "\n  %-14s %12s %10s %10s %9s %10s\n", title, "energy J", "gen tokens", "J/token",
            "mean W", "time s");
    for (uint32_t i = 0; i < n; i++) {
        char jpt[32], w[32];
        fmt_num(jpt, sizeof(jpt), 4, g[i].j_per_token);
        fmt_num(w, sizeof(w), 2, g[i].avg_power_w);
        fprintf(out, "  %-14s %12.1f %10llu %10s %9s %10.0f\n", g[i].name[0] ? g[i].name : "(none)",
                g[i].energy_j, (unsigned long long)g[i].tokens, jpt, w, g[i].seconds);
    }
}

void tel_report_print(const struct tel_report *r, FILE *out)
{
    char a[64], b[64], x[32], y[32];
    fmt_time(r->since_ns, a, sizeof(a));
    fmt_time(r->until_ns, b, sizeof(b));
    fprintf(out, "Ember energy report, %s .. %s\n", a, b);
    fprintf(out, "  samples      %llu", (unsigned long long)r->samples);
    for (uint32_t i = 0; i < r->n_sources; i++)
        fprintf(out, "%s%s %llu", i ? ", " : " (", r->sources[i].name,
                (unsigned long long)r->sources[i].samples);
    fprintf(out, "%s\n", r->n_sources ? ")" : "");
    fmt_num(x, sizeof(x), 2, r->avg_power_w);
    fmt_num(y, sizeof(y), 2, r->max_power_w);
    fprintf(out, "  energy       %.3f Wh (%.1f J), mean %s W, peak %s W\n", r->energy_j / 3600.0,
            r->energy_j, x, y);
    if (r->rollup_energy_j > 0)
        fprintf(out, "               of which %.1f J from 1-minute rollups (raw samples expired)\n",
                r->rollup_energy_j);
    fmt_num(x, sizeof(x), 4, r->j_per_token);
    fprintf(out, "  tokens       %llu generated, %s J/token (joules per generated token)\n",
            (unsigned long long)r->tokens, x);
    fmt_num(x, sizeof(x), 1, r->avg_temp_c);
    fmt_num(y, sizeof(y), 1, r->max_temp_c);
    fprintf(out, "  temperature  mean %s C, max %s C\n", x, y);
    fmt_num(x, sizeof(x), 0, r->avg_freq_mhz);
    fmt_num(y, sizeof(y), 0, r->max_freq_mhz);
    fprintf(out, "  frequency    mean %s MHz, max %s MHz\n", x, y);
    if (r->by_phase.exact_intervals || r->by_phase.label_intervals) {
        fmt_num(x, sizeof(x), 4, r->by_phase.active_j_per_token);
        fmt_num(y, sizeof(y), 4, r->by_phase.all_j_per_token);
        fprintf(
            out,
            "\n  by phase       prefill %.1f J, decode %.1f J, idle %.1f J (integrated over the "
            "engine's phase intervals)\n"
            "                 %s J/token prefill + decode (idle not attributed), %s J/token "
            "with idle attributed\n"
            "                 measured at the %s boundary%s\n",
            r->by_phase.prefill_j, r->by_phase.decode_j, r->by_phase.idle_j, x, y,
            r->by_phase.scope,
            r->by_phase.estimated_samples
                ? ": an ESTIMATE from the CPU power model (no power meter), not measured"
                : "");
        if (r->by_phase.label_intervals)
            fprintf(out,
                    "                 %llu older intervals (before exact attribution) are "
                    "filed by the phase their sample saw\n",
                    (unsigned long long)r->by_phase.label_intervals);
    }
    if (r->wall.intervals) {
        fmt_num(x, sizeof(x), 4, r->wall.active_j_per_token);
        fmt_num(y, sizeof(y), 4, r->wall.all_j_per_token);
        fprintf(out,
                "\n  at the wall    %.1f J for the whole box: prefill %.1f J, decode %.1f J, idle "
                "%.1f J\n"
                "                 %s J/token prefill + decode (idle not attributed), %s J/token "
                "with idle attributed\n",
                r->wall.energy_j, r->wall.prefill_j, r->wall.decode_j, r->wall.idle_j, x, y);
        if (r->wall.measured_intervals == r->wall.intervals)
            fprintf(out, "                 measured by %s\n", r->wall.source);
        else if (r->wall.measured_intervals == 0)
            fprintf(out, "                 an ESTIMATE from the package power (no wall meter "
                         "reading): (package + board) / PSU efficiency\n");
        else
            fprintf(out,
                    "                 measured in %llu of %llu intervals (mostly %s); the rest "
                    "is the ESTIMATE from the package power\n",
                    (unsigned long long)r->wall.measured_intervals,
                    (unsigned long long)r->wall.intervals, r->wall.source);
    }
    if (!r->by_phase.exact_intervals)
        print_groups(out, "by phase label", r->phases, r->n_phases);
    print_groups(out, "by policy", r->policies, r->n_policies);
    const struct tel_report_session_group *s = &r->sessions;
    fmt_num(x, sizeof(x), 4, s->j_per_token);
    fprintf(out,
            "\n  sessions     %llu requests, %llu prompt + %llu generated tokens, %.1f J, %s "
            "J/token\n",
            (unsigned long long)s->count, (unsigned long long)s->prompt_tokens,
            (unsigned long long)s->gen_tokens, s->energy_j, x);
    if (s->count) {
        fmt_num(x, sizeof(x), 1, s->ttft_ms_avg);
        fmt_num(y, sizeof(y), 1, s->duration_ms_avg);
        fprintf(out, "               mean TTFT %s ms, mean duration %s ms\n", x, y);
    }
    for (uint32_t i = 0; i < r->n_session_policies; i++) {
        const struct tel_report_session_group *g = &r->session_policies[i];
        fmt_num(x, sizeof(x), 4, g->j_per_token);
        fmt_num(y, sizeof(y), 1, g->ttft_ms_avg);
        fprintf(out, "    %-12s %llu requests, %.1f J, %s J/token, TTFT %s ms\n",
                g->name[0] ? g->name : "(none)", (unsigned long long)g->count, g->energy_j, x, y);
    }
    fprintf(out, "  events       %llu", (unsigned long long)r->events);
    for (uint32_t i = 0; i < r->n_event_kinds; i++)
        fprintf(out, "%s%s %llu", i ? ", " : " (", r->event_kinds[i].kind,
                (unsigned long long)r->event_kinds[i].count);
    fprintf(out, "%s\n", r->n_event_kinds ? ")" : "");
}
