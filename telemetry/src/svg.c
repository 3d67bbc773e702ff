/* The report chart: a self-contained SVG (no scripts, no external fonts or styles) with three
 * panels on one time axis: power (W), mean CPU frequency (MHz) and temperature (C), and a panel
 * of joules per generated token per policy and per engine phase. The time axis is fitted to the
 * data inside the window (a demo-length run fills the chart instead of sitting at the right edge
 * of a day); a window with no more raw samples than max_points plots every sample, else bucket
 * means, from raw samples and, for the part of the window whose raw samples retention removed,
 * from 1-minute (else 1-hour) rollups. Raw intervals are shaded by the engine phase their energy
 * went to (prefill, decode). A line breaks where the data has a gap (the agent was not running)
 * instead of drawing across it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "common/timeutil.h"
#include "telemetry/report.h"

#define SVG_W      960
#define MARGIN_L   72
#define MARGIN_R   24
#define TITLE_H    76
#define PANEL_H    170
#define PANEL_GAP  44
#define AXIS_H     36
#define N_PANELS   3
#define BARS_H     150 /* the J/token panel */
#define MAX_SHADES 4000

struct series {
    uint64_t *ts;
    double *v[N_PANELS];
    uint64_t *gap_ns; /* largest spacing that still counts as continuous, per point */
    size_t n, cap;
};

static int series_push(struct series *s, uint64_t ts, const double v[N_PANELS], uint64_t gap_ns)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        uint64_t *nts = realloc(s->ts, ncap * sizeof(*nts));
        if (!nts)
            return -ENOMEM;
        s->ts = nts;
        uint64_t *ng = realloc(s->gap_ns, ncap * sizeof(*ng));
        if (!ng)
            return -ENOMEM;
        s->gap_ns = ng;
        for (int k = 0; k < N_PANELS; k++) {
            double *nv = realloc(s->v[k], ncap * sizeof(*nv));
            if (!nv)
                return -ENOMEM;
            s->v[k] = nv;
        }
        s->cap = ncap;
    }
    s->ts[s->n] = ts;
    s->gap_ns[s->n] = gap_ns;
    for (int k = 0; k < N_PANELS; k++)
        s->v[k][s->n] = v[k];
    s->n++;
    return 0;
}

static void series_free(struct series *s)
{
    free(s->ts);
    free(s->gap_ns);
    for (int k = 0; k < N_PANELS; k++)
        free(s->v[k]);
}

/* Bucketed means of table's three columns in [from, to). */
static int fetch(sqlite3 *db, const char *table, const char *cols, uint64_t from, uint64_t to,
                 uint64_t bucket_ns, uint64_t min_gap_ns, struct series *s, char *err,
                 size_t err_len)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT min(ts_ns), %s FROM %s%s ts_ns >= ?1 AND ts_ns < ?2"
             " GROUP BY (ts_ns - ?1) / ?3 ORDER BY 1",
             cols, table, strstr(table, " WHERE ") ? "" : " WHERE");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "chart query on %s failed: %s", table, sqlite3_errmsg(db));
        return -EIO;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)bucket_ns);
    uint64_t gap = 3 * bucket_ns > min_gap_ns ? 3 * bucket_ns : min_gap_ns;
    int rc, r = 0;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        double v[N_PANELS];
        for (int k = 0; k < N_PANELS; k++)
            v[k] = sqlite3_column_type(st, k + 1) == SQLITE_NULL ? NAN
                                                                 : sqlite3_column_double(st, k + 1);
        r = series_push(s, (uint64_t)sqlite3_column_int64(st, 0), v, gap);
    }
    sqlite3_finalize(st);
    if (r < 0)
        return r;
    if (rc != SQLITE_DONE) {
        snprintf(err, err_len, "chart query on %s failed: %s", table, sqlite3_errmsg(db));
        return -EIO;
    }
    return 0;
}

static uint64_t first_ts(sqlite3 *db, const char *table, uint64_t from, uint64_t to)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT min(ts_ns) FROM %s WHERE ts_ns >= ?1 AND ts_ns <= ?2",
             table);
    sqlite3_stmt *st = NULL;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)to);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            v = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static double nice_step(double range, int ticks)
{
    double raw = range / ticks;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return nf * mag;
}

static void fmt_tick(uint64_t ts_ns, uint64_t span_ns, char *buf, size_t cap)
{
    time_t t = (time_t)(ts_ns / CMN_NS_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap,
             span_ns > 2ULL * 86400 * CMN_NS_PER_S ? "%m-%d %H:%M"
             : span_ns < 600ULL * CMN_NS_PER_S     ? "%H:%M:%S"
                                                   : "%H:%M",
             &tm);
}

static const struct {
    const char *title, *unit, *color;
    int zero_based;
} panels[N_PANELS] = {
    {"Power", "W", "#d62728", 1},
    {"CPU frequency (mean)", "MHz", "#1f77b4", 0},
    {"Temperature", "C", "#ff7f0e", 0},
};

/* Engine phase of each raw interval: 1 prefill, 2 decode (by the exact energy split where the
 * sample has one, else by its label), for shading. */
struct shades {
    uint64_t from[MAX_SHADES], to[MAX_SHADES];
    unsigned char phase[MAX_SHADES];
    float share[MAX_SHADES]; /* of the interval's energy: drawn as opacity (at least 0.35) */
    size_t n;
};

static void fetch_shades(sqlite3 *db, const char *raw_table, uint64_t t0, uint64_t t1,
                         struct shades *sh)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT ts_ns, lag(ts_ns) OVER (ORDER BY seq), phase, prefill_j, decode_j, idle_j"
             " FROM %s%s ts_ns >= ?1 AND ts_ns <= ?2 ORDER BY seq",
             raw_table, strstr(raw_table, " WHERE ") ? "" : " WHERE");
    sqlite3_stmt *st = NULL;
    sh->n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return; /* shading is decoration: a chart without it is still right */
    sqlite3_bind_int64(st, 1, (sqlite3_int64)t0);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)t1);
    while (sqlite3_step(st) == SQLITE_ROW && sh->n < MAX_SHADES) {
        if (sqlite3_column_type(st, 1) == SQLITE_NULL)
            continue;
        uint64_t to = (uint64_t)sqlite3_column_int64(st, 0);
        uint64_t from = (uint64_t)sqlite3_column_int64(st, 1);
        if (to <= from || to - from > 30 * CMN_NS_PER_S)
            continue; /* an outage, not an interval */
        unsigned char ph = 0;
        float share = 1;
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
            double pj = sqlite3_column_double(st, 3), dj = sqlite3_column_double(st, 4),
                   ij = sqlite3_column_double(st, 5), all = pj + dj + ij;
            /* a request shorter than the interval still shows, fainter by its share */
            if (pj > 0 || dj > 0) {
                ph = pj >= dj ? 1 : 2;
                share = all > 0 ? (float)((pj + dj) / all) : 1;
            }
        } else {
            const unsigned char *lbl = sqlite3_column_text(st, 2);
            if (lbl && strcmp((const char *)lbl, "prefill") == 0)
                ph = 1;
            else if (lbl && strcmp((const char *)lbl, "decode") == 0)
                ph = 2;
        }
        if (!ph)
            continue;
        if (sh->n && sh->phase[sh->n - 1] == ph && sh->to[sh->n - 1] == from && share > 0.95f &&
            sh->share[sh->n - 1] > 0.95f) {
            sh->to[sh->n - 1] = to; /* one rectangle per run of a phase: no seams */
            continue;
        }
        sh->from[sh->n] = from;
        sh->to[sh->n] = to;
        sh->share[sh->n] = share < 0.35f ? 0.35f : share;
        sh->phase[sh->n++] = ph;
    }
    sqlite3_finalize(st);
}

static const char *const shade_color[3] = {"none", "#e9dcf5", "#d8efd8"};

static void panel(FILE *out, int k, const struct series *s, const struct shades *sh, uint64_t t0,
                  uint64_t t1)
{
    const double x0 = MARGIN_L, x1 = SVG_W - MARGIN_R;
    const double y0 = TITLE_H + k * (PANEL_H + PANEL_GAP), y1 = y0 + PANEL_H;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < s->n; i++) {
        double v = s->v[k][i];
        if (isfinite(v)) {
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    fprintf(out,
            "<g>\n<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%d\" fill=\"#fafafa\" "
            "stroke=\"#bbb\"/>\n",
            x0, y0, x1 - x0, PANEL_H);
    for (size_t i = 0; i < sh->n; i++) {
        double a = x0 + (double)(sh->from[i] - t0) / (double)(t1 - t0) * (x1 - x0);
        double b = x0 + (double)(sh->to[i] - t0) / (double)(t1 - t0) * (x1 - x0);
        a = a < x0 ? x0 : a;
        b = b > x1 ? x1 : b;
        if (b > a)
            fprintf(out,
                    "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%d\" fill=\"%s\" "
                    "fill-opacity=\"%.2f\"/>\n",
                    a, y0, b - a < 0.6 ? 0.6 : b - a, PANEL_H, shade_color[sh->phase[i]],
                    sh->share[i]);
    }
    fprintf(out,
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"13\" font-weight=\"bold\">%s (%s)</text>\n",
            x0, y0 - 8, panels[k].title, panels[k].unit);
    if (!isfinite(lo)) {
        fprintf(out,
                "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" fill=\"#888\" "
                "text-anchor=\"middle\">no data</text>\n</g>\n",
                (x0 + x1) / 2, (y0 + y1) / 2);
        return;
    }
    if (panels[k].zero_based && lo > 0)
        lo = 0;
    if (hi - lo < 1e-9) {
        hi += 1;
        lo = panels[k].zero_based && lo >= 0 ? (lo - 1 < 0 ? 0 : lo - 1) : lo - 1;
    }
    double step = nice_step(hi - lo, 4);
    lo = floor(lo / step) * step;
    hi = ceil(hi / step) * step;
    for (double v = lo; v <= hi + step * 1e-6; v += step) {
        double y = y1 - (v - lo) / (hi - lo) * PANEL_H;
        fprintf(out, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                x0, y, x1, y);
        fprintf(out, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g</text>\n",
                x0 - 6, y + 4, v);
    }
    double span = (double)(t1 - t0);
    fprintf(out, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"", panels[k].color);
    int pen = 0;
    for (size_t i = 0; i < s->n; i++) {
        double v = s->v[k][i];
        if (!isfinite(v)) {
            pen = 0;
            continue;
        }
        if (pen && s->ts[i] - s->ts[i - 1] > s->gap_ns[i])
            pen = 0;
        double x = x0 + (double)(s->ts[i] - t0) / span * (x1 - x0);
        double y = y1 - (v - lo) / (hi - lo) * PANEL_H;
        fprintf(out, "%s%.1f %.1f ", pen ? "L" : "M", x, y);
        pen = 1;
    }
    fprintf(out, "\"/>\n");
    if (s->n <= 120) /* few points: mark each so a lone sample is visible */
        for (size_t i = 0; i < s->n; i++)
            if (isfinite(s->v[k][i]))
                fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>\n",
                        x0 + (double)(s->ts[i] - t0) / span * (x1 - x0),
                        y1 - (s->v[k][i] - lo) / (hi - lo) * PANEL_H, panels[k].color);
    fprintf(out, "</g>\n");
}

/* The data's first and last time inside [t0, t1] (raw samples and rollups) and the number of raw
 * samples there; *dmin = *dmax = 0 when there is none. */
static void data_extent(sqlite3 *db, uint64_t t0, uint64_t t1, uint64_t *dmin, uint64_t *dmax,
                        uint64_t *raw_n)
{
    static const char *const sql[] = {
        "SELECT min(ts_ns), max(ts_ns), count(*) FROM samples WHERE ts_ns BETWEEN ?1 AND ?2",
        "SELECT min(ts_ns), max(ts_ns) + 60000000000, 0 FROM rollup_1m WHERE ts_ns BETWEEN ?1"
        " AND ?2",
        "SELECT min(ts_ns), max(ts_ns) + 3600000000000, 0 FROM rollup_1h WHERE ts_ns BETWEEN ?1"
        " AND ?2",
    };
    *dmin = *dmax = *raw_n = 0;
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
            continue;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)t0);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)t1);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            uint64_t a = (uint64_t)sqlite3_column_int64(st, 0);
            uint64_t b = (uint64_t)sqlite3_column_int64(st, 1);
            b = b > t1 ? t1 : b;
            if (!*dmin || a < *dmin)
                *dmin = a;
            if (b > *dmax)
                *dmax = b;
            if (i == 0)
                *raw_n = (uint64_t)sqlite3_column_int64(st, 2);
        }
        sqlite3_finalize(st);
    }
}

/* One horizontal bar with its value. */
static void bar(FILE *out, double x, double y, double w_full, double v, double vmax,
                const char *label, const char *color)
{
    double w = vmax > 0 && isfinite(v) ? v / vmax * w_full : 0;
    fprintf(out, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
            x - 6, y + 10, label);
    fprintf(out, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"12\" fill=\"%s\"/>\n", x, y,
            w, color);
    if (isfinite(v))
        fprintf(out, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\">%.4g J/token</text>\n",
                x + w + 4, y + 10, v);
    else
        fprintf(out,
                "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" fill=\"#888\">no tokens</text>\n",
                x + w + 4, y + 10);
}

/* Joules per generated token per governor policy (left) and per engine phase (right), from the
 * same report `ember report` prints for this window. */
static void bars(FILE *out, struct tel_store *store, const struct tel_report_params *p, double y0)
{
    struct tel_report *r = calloc(1, sizeof(*r));
    char err[128];
    fprintf(out,
            "<text x=\"%d\" y=\"%.0f\" font-size=\"13\" font-weight=\"bold\">Joules per generated "
            "token</text>\n",
            MARGIN_L, y0 - 8);
    if (!r || tel_report_build(store, p, r, err, sizeof(err)) < 0) {
        fprintf(out, "<text x=\"%d\" y=\"%.0f\" font-size=\"12\" fill=\"#888\">no report</text>\n",
                MARGIN_L, y0 + 20);
        free(r);
        return;
    }
    double t = (double)r->tokens;
    double ph[3] = {t > 0 ? r->by_phase.prefill_j / t : NAN, t > 0 ? r->by_phase.decode_j / t : NAN,
                    t > 0 ? r->by_phase.idle_j / t : NAN};
    double vmax = 0;
    for (uint32_t i = 0; i < r->n_policies; i++)
        if (isfinite(r->policies[i].j_per_token) && r->policies[i].j_per_token > vmax)
            vmax = r->policies[i].j_per_token;
    for (int i = 0; i < 3; i++)
        if (isfinite(ph[i]) && ph[i] > vmax)
            vmax = ph[i];
    const double col_w = (SVG_W - MARGIN_L - MARGIN_R) / 2.0;
    fprintf(out,
            "<text x=\"%d\" y=\"%.0f\" font-size=\"11\" fill=\"#555\">by policy (all energy "
            "while it governed)</text>\n",
            MARGIN_L, y0 + 8);
    for (uint32_t i = 0; i < r->n_policies && i < 6; i++)
        bar(out, MARGIN_L + 70, y0 + 16 + 18.0 * i, col_w - 170, r->policies[i].j_per_token, vmax,
            r->policies[i].name[0] ? r->policies[i].name : "(none)", "#9467bd");
    double xr = MARGIN_L + col_w + 20;
    fprintf(out,
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#555\">by phase (%s%s; idle "
            "shown, not in the others)</text>\n",
            xr, y0 + 8, r->by_phase.scope, r->by_phase.estimated_samples ? ", ESTIMATE" : "");
    static const char *const names[3] = {"prefill", "decode", "idle"};
    static const char *const colors[3] = {"#b48ad6", "#5aae61", "#bbbbbb"};
    for (int i = 0; i < 3; i++)
        bar(out, xr + 60, y0 + 16 + 18.0 * i, col_w - 170, ph[i], vmax, names[i], colors[i]);
    free(r);
}

int tel_report_svg(struct tel_store *store, const struct tel_report_params *params,
                   uint32_t max_points, FILE *out, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!store || !params || !out)
        return -EINVAL;
    sqlite3 *db = tel_store_db(store);
    uint64_t t0 = params->since_ns;
    uint64_t t1 = params->until_ns ? params->until_ns : cmn_wall_ns();
    if (t1 > INT64_MAX)
        t1 = INT64_MAX;
    if (t1 <= t0) {
        snprintf(err, err_len, "chart window starts after it ends");
        return -EINVAL;
    }
    if (max_points == 0)
        max_points = 720;
    /* fit the axis to the data inside the window */
    uint64_t raw_n = 0;
    uint64_t dmin = 0, dmax = 0;
    data_extent(db, t0, t1, &dmin, &dmax, &raw_n);
    if (dmax > dmin || dmin) {
        uint64_t pad = (dmax - dmin) / 50;
        pad = pad < CMN_NS_PER_S ? CMN_NS_PER_S : pad;
        if (dmin > t0 + pad)
            t0 = dmin - pad;
        if (dmax + pad < t1)
            t1 = dmax + pad;
    }
    /* few enough raw samples: every one of them, else bucket means */
    uint64_t bucket = raw_n && raw_n <= max_points ? 1 : (t1 - t0) / max_points;
    if (bucket == 0)
        bucket = 1;

    struct series s = {0};
    int r = 0;
    uint64_t raw_from = first_ts(db, "samples", t0, t1);
    /* samples has no time index: the window's seq range keeps the bucketing query on the
     * primary key */
    char raw_table[96] = "samples";
    if (raw_from) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db,
                               "SELECT min(seq), max(seq) FROM samples WHERE ts_ns BETWEEN ?1 AND"
                               " ?2",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)t0);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)t1);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
                snprintf(
                    raw_table, sizeof(raw_table), "samples WHERE seq BETWEEN %lld AND %lld AND",
                    (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1));
        }
        sqlite3_finalize(st);
    }
    uint64_t older_until = raw_from ? raw_from : t1 + 1;
    if (older_until > t0) {
        uint64_t m_from = first_ts(db, "rollup_1m", t0, older_until);
        /* hours older than the oldest minute rollup, then minutes, then raw samples */
        uint64_t h_until = m_from ? m_from : older_until;
        r = fetch(db, "rollup_1h", "avg(power_avg), avg(freq_avg), avg(temp_avg)", t0, h_until,
                  bucket > 3600 * CMN_NS_PER_S ? bucket : 3600 * CMN_NS_PER_S,
                  3 * 3600 * CMN_NS_PER_S, &s, err, err_len);
        if (r == 0 && m_from)
            r = fetch(db, "rollup_1m", "avg(power_avg), avg(freq_avg), avg(temp_avg)", m_from,
                      older_until, bucket > 60 * CMN_NS_PER_S ? bucket : 60 * CMN_NS_PER_S,
                      180 * CMN_NS_PER_S, &s, err, err_len);
    }
    if (r == 0 && raw_from)
        r = fetch(db, raw_table, "avg(power_w), avg(freq_avg_mhz), avg(temp_c)", raw_from, t1 + 1,
                  bucket, 30 * CMN_NS_PER_S, &s, err, err_len);
    if (r < 0) {
        series_free(&s);
        return r;
    }

    struct shades *sh = calloc(1, sizeof(*sh));
    if (sh && raw_from && raw_n <= MAX_SHADES)
        fetch_shades(db, raw_table, t0, t1, sh);
    const int height =
        TITLE_H + N_PANELS * PANEL_H + (N_PANELS - 1) * PANEL_GAP + AXIS_H + PANEL_GAP + BARS_H;
    char a[40], b[40];
    time_t ta = (time_t)(t0 / CMN_NS_PER_S), tb = (time_t)(t1 / CMN_NS_PER_S);
    struct tm tm;
    strftime(a, sizeof(a), "%Y-%m-%d %H:%M", gmtime_r(&ta, &tm));
    strftime(b, sizeof(b), "%Y-%m-%d %H:%M", gmtime_r(&tb, &tm));
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
            "<title>Ember telemetry %s .. %s UTC</title>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Ember telemetry</text>\n"
            "<text x=\"%d\" y=\"42\" font-size=\"12\" fill=\"#555\">%s .. %s UTC, %zu points"
            "%s</text>\n",
            SVG_W, height, SVG_W, height, a, b, MARGIN_L, MARGIN_L, a, b, s.n,
            bucket == 1 ? " (every sample)" : " (bucket means)");
    fprintf(out,
            "<text x=\"%d\" y=\"24\" font-size=\"11\" fill=\"#555\">engine phase:</text>"
            "<rect x=\"%d\" y=\"15\" width=\"12\" height=\"10\" fill=\"%s\" stroke=\"#bbb\"/>"
            "<text x=\"%d\" y=\"24\" font-size=\"11\">prefill</text>"
            "<rect x=\"%d\" y=\"15\" width=\"12\" height=\"10\" fill=\"%s\" stroke=\"#bbb\"/>"
            "<text x=\"%d\" y=\"24\" font-size=\"11\">decode</text>\n",
            SVG_W - MARGIN_R - 210, SVG_W - MARGIN_R - 130, shade_color[1], SVG_W - MARGIN_R - 114,
            SVG_W - MARGIN_R - 64, shade_color[2], SVG_W - MARGIN_R - 48);
    static const struct shades none = {.n = 0};
    for (int k = 0; k < N_PANELS; k++)
        panel(out, k, &s, sh ? sh : &none, t0, t1);
    free(sh);

    /* shared time axis under the last panel, ticks at round UTC times */
    static const uint64_t steps_s[] = {1,     2,     5,      10,     15,     30,       60,
                                       120,   300,   900,    1800,   3600,   3 * 3600, 21600,
                                       43200, 86400, 172800, 604800, 2592000};
    uint64_t span_s = (t1 - t0) / CMN_NS_PER_S, step_s = steps_s[0];
    for (size_t i = 0; i < sizeof(steps_s) / sizeof(steps_s[0]); i++) {
        step_s = steps_s[i];
        if (span_s / step_s <= 8)
            break;
    }
    const double x0 = MARGIN_L, x1 = SVG_W - MARGIN_R;
    const double ybase = TITLE_H + N_PANELS * PANEL_H + (N_PANELS - 1) * PANEL_GAP;
    uint64_t first = (t0 / CMN_NS_PER_S + step_s - 1) / step_s * step_s;
    for (uint64_t t = first; t * CMN_NS_PER_S <= t1; t += step_s) {
        double x = x0 + (double)(t * CMN_NS_PER_S - t0) / (double)(t1 - t0) * (x1 - x0);
        char label[32];
        fmt_tick(t * CMN_NS_PER_S, t1 - t0, label, sizeof(label));
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#e4e4e4\"/>\n",
                x, TITLE_H, x, ybase);
        fprintf(out,
                "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" "
                "text-anchor=\"middle\">%s</text>\n",
                x, ybase + 16, label);
    }
    fprintf(out,
            "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\" "
            "fill=\"#555\">time (UTC)</text>\n",
            x1, ybase + 32);
    struct tel_report_params fitted = {t0, t1};
    bars(out, store, &fitted, ybase + AXIS_H + PANEL_GAP);
    fprintf(out, "</svg>\n");
    series_free(&s);
    if (ferror(out)) {
        snprintf(err, err_len, "writing the chart failed");
        return -EIO;
    }
    return 0;
}
