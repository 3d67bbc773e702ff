/* Report numbers against a database this test fills with known values through the real store:
 * energy per phase and per policy from consecutive energy totals, tokens and joules per token,
 * sessions per policy, events per kind, rollup energy for minutes whose raw samples were
 * removed, the JSON form (parsed back with cJSON) and the SVG chart. With the ember binary as
 * argv[1] it runs `ember report --json --svg` on the same database and checks the same numbers,
 * plus --help and the usage errors. */
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
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ember_test.h"
#include "telemetry/report.h"
#include "telemetry/store.h"

#define NS 1000000000ULL

static char tmpdir[256], db[512];
static uint64_t T; /* start of the known hour, a whole minute, about an hour ago */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void add(struct tel_store *s, uint64_t ts, double w, double e, double temp,
                const char *phase, const char *policy, uint64_t tokens, int fast)
{
    struct tel_sample sm;
    memset(&sm, 0, sizeof(sm));
    sm.ts_ns = ts;
    sm.power_w = w;
    sm.energy_j = e;
    sm.temp_c = temp;
    sm.util = 0.5;
    if (fast) {
        sm.n_freq = 1;
        sm.freq_mhz[0] = 3000;
    } else {
        sm.n_freq = 2;
        sm.freq_mhz[0] = 1000;
        sm.freq_mhz[1] = 2000;
    }
    snprintf(sm.phase, sizeof(sm.phase), "%s", phase);
    snprintf(sm.policy, sizeof(sm.policy), "%s", policy);
    sm.source = TEL_SOURCE_RAPL;
    sm.tokens = tokens;
    CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
}

static void fill(void)
{
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.retain_samples_s = 0;
    struct tel_store *s = NULL;
    char err[256];
    CHECK_EQ_INT(tel_store_open(db, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    /* two hours before: one minute, 30 J, whose raw samples retention will remove */
    add(s, T - 7200 * NS, 1, 500, 30, "idle", "balanced", 0, 0);
    add(s, T - 7170 * NS, 1, 530, 30, "idle", "balanced", 0, 0);
    /* the window's first raw sample only opens it */
    add(s, T - 100 * NS, 3, 900, 40, "idle", "balanced", 0, 0);
    add(s, T + 1 * NS, 5, 905, 41, "idle", "balanced", 0, 0);
    add(s, T + 2 * NS, 25, 930, 42, "prefill", "balanced", 100, 0);
    add(s, T + 3 * NS, 20, 950, 43, "decode", "balanced", 10, 1);
    add(s, T + 4 * NS, 20, 970, 44, "decode", "efficiency", 20, 0);
    add(s, T + 5 * NS, 10, 980, 45, "decode", "efficiency", 10, 0);
    add(s, T + 6 * NS, 2, 982, 46, "idle", "efficiency", 0, 0);
    struct tel_session a = {0}, b = {0};
    a.ts_ns = T + 2 * NS;
    a.prompt_tokens = 100;
    a.gen_tokens = 10;
    a.energy_j = 45;
    a.ttft_ms = 200;
    a.duration_ms = 1500;
    snprintf(a.policy, sizeof(a.policy), "balanced");
    b.ts_ns = T + 4 * NS;
    b.prompt_tokens = 5;
    b.gen_tokens = 30;
    b.energy_j = 30;
    b.ttft_ms = 100;
    b.duration_ms = 2500;
    snprintf(b.policy, sizeof(b.policy), "efficiency");
    CHECK_EQ_INT(tel_store_add_session(s, &a), 0);
    CHECK_EQ_INT(tel_store_add_session(s, &b), 0);
    CHECK_EQ_INT(tel_store_add_event(s, T + NS, "governor", "balanced"), 0);
    CHECK_EQ_INT(tel_store_add_event(s, T + 4 * NS, "governor", "efficiency"), 0);
    CHECK_EQ_INT(tel_store_add_event(s, T + 5 * NS, "thermal", "throttle"), 0);
    CHECK_EQ_INT(tel_store_maintain(s), 0); /* rollups */
    sqlite3 *h = tel_store_db(s);
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM samples WHERE ts_ns < %llu",
             (unsigned long long)(T - 3600 * NS));
    CHECK_EQ_INT(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    tel_store_close(s);
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const cJSON *find(const cJSON *arr, const char *key, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, key);
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return it;
    }
    return NULL;
}

/* The known numbers, checked on the JSON (from the library or from the CLI). */
static void check_json(const char *text)
{
    cJSON *o = cJSON_Parse(text);
    CHECK(o != NULL);
    if (!o) {
        fprintf(stderr, "not JSON: %.300s\n", text);
        return;
    }
    CHECK_NEAR(jnum(o, "samples"), 7, 0);
    CHECK_NEAR(jnum(o, "energy_j"), 82 + 30, 1e-9);
    CHECK_NEAR(jnum(o, "energy_wh"), 112 / 3600.0, 1e-9);
    CHECK_NEAR(jnum(o, "rollup_energy_j"), 30, 1e-9);
    CHECK_NEAR(jnum(o, "tokens"), 140, 0);
    CHECK_NEAR(jnum(o, "j_per_token"), 82.0 / 140, 1e-9);
    /* the 101 s interval after the opening sample counts as an outage: its 5 J are in the
     * energy, not in the time or the mean power */
    CHECK_NEAR(jnum(o, "seconds"), 5, 1e-9);
    CHECK_NEAR(jnum(o, "avg_power_w"), 77.0 / 5, 1e-9);
    CHECK_NEAR(jnum(o, "max_power_w"), 25, 1e-9);
    CHECK_NEAR(jnum(o, "avg_temp_c"), 43, 1e-9);
    CHECK_NEAR(jnum(o, "max_temp_c"), 46, 1e-9);
    CHECK_NEAR(jnum(o, "avg_freq_mhz"), (1500.0 * 6 + 3000) / 7, 1e-9);
    CHECK_NEAR(jnum(o, "max_freq_mhz"), 3000, 1e-9);

    const cJSON *phases = cJSON_GetObjectItemCaseSensitive(o, "phases");
    CHECK_EQ_INT(cJSON_GetArraySize(phases), 3);
    const cJSON *g = find(phases, "phase", "decode");
    CHECK_NEAR(jnum(g, "energy_j"), 50, 1e-9);
    CHECK_NEAR(jnum(g, "tokens"), 40, 0);
    CHECK_NEAR(jnum(g, "j_per_token"), 1.25, 1e-9);
    CHECK_NEAR(jnum(g, "seconds"), 3, 1e-9);
    CHECK_NEAR(jnum(g, "avg_power_w"), 50.0 / 3, 1e-9);
    g = find(phases, "phase", "prefill");
    CHECK_NEAR(jnum(g, "energy_j"), 25, 1e-9);
    CHECK_NEAR(jnum(g, "j_per_token"), 0.25, 1e-9);
    g = find(phases, "phase", "idle");
    CHECK_NEAR(jnum(g, "energy_j"), 7, 1e-9);
    CHECK_NEAR(jnum(g, "samples"), 2, 0);
    CHECK_NEAR(jnum(g, "seconds"), 1, 1e-9);
    CHECK_NEAR(jnum(g, "avg_power_w"), 2, 1e-9);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(g, "j_per_token")));
    /* largest energy first */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(phases, 0), "phase")->valuestring,
              "decode");

    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(o, "policies");
    CHECK_EQ_INT(cJSON_GetArraySize(pol), 2);
    g = find(pol, "policy", "balanced");
    CHECK_NEAR(jnum(g, "energy_j"), 50, 1e-9);
    CHECK_NEAR(jnum(g, "tokens"), 110, 0);
    CHECK_NEAR(jnum(g, "j_per_token"), 50.0 / 110, 1e-9);
    g = find(pol, "policy", "efficiency");
    CHECK_NEAR(jnum(g, "energy_j"), 32, 1e-9);
    CHECK_NEAR(jnum(g, "j_per_token"), 32.0 / 30, 1e-9);

    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "sources");
    CHECK_NEAR(jnum(src, "rapl"), 7, 0);

    const cJSON *se = cJSON_GetObjectItemCaseSensitive(o, "sessions");
    CHECK_NEAR(jnum(se, "count"), 2, 0);
    CHECK_NEAR(jnum(se, "prompt_tokens"), 105, 0);
    CHECK_NEAR(jnum(se, "gen_tokens"), 40, 0);
    CHECK_NEAR(jnum(se, "energy_j"), 75, 1e-9);
    /* one definition of J/token: per generated token (issue 21 item 20) */
    CHECK_NEAR(jnum(se, "j_per_token"), 75.0 / 40, 1e-9);
    CHECK(cJSON_GetObjectItemCaseSensitive(se, "j_per_gen_token") == NULL);
    CHECK_NEAR(jnum(se, "ttft_ms_avg"), 150, 1e-9);
    CHECK_NEAR(jnum(se, "duration_ms_avg"), 2000, 1e-9);
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(se, "by_policy");
    g = find(bp, "policy", "efficiency");
    CHECK_NEAR(jnum(g, "j_per_token"), 1.0, 1e-9);
    CHECK_NEAR(jnum(g, "ttft_ms_avg"), 100, 1e-9);

    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "events");
    CHECK_NEAR(jnum(ev, "count"), 3, 0);
    CHECK_NEAR(jnum(cJSON_GetObjectItemCaseSensitive(ev, "by_kind"), "governor"), 2, 0);
    CHECK_NEAR(jnum(cJSON_GetObjectItemCaseSensitive(ev, "by_kind"), "thermal"), 1, 0);
    cJSON_Delete(o);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

static void check_svg(const char *path)
{
    char *svg = slurp(path);
    CHECK(svg != NULL);
    if (!svg)
        return;
    CHECK(strncmp(svg, "<?xml", 5) == 0);
    CHECK_CONTAINS(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    CHECK_EQ_INT(count_of(svg, "<path "), 3);
    CHECK_EQ_INT(count_of(svg, "<g>"), count_of(svg, "</g>"));
    CHECK_CONTAINS(svg, "Power (W)");
    CHECK_CONTAINS(svg, "CPU frequency (mean) (MHz)");
    CHECK_CONTAINS(svg, "Temperature (C)");
    CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"));
    size_t len = strlen(svg);
    CHECK(len > 7 && strcmp(svg + len - 7, "</svg>\n") == 0);
    free(svg);
}

static void test_library(void)
{
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.read_only = 1;
    struct tel_store *s = NULL;
    char err[256];
    CHECK_EQ_INT(tel_store_open(db, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return;
    struct tel_report_params rp = {T - 3 * 3600 * NS, T + 3600 * NS};
    struct tel_report *r = calloc(1, sizeof(*r));
    CHECK_EQ_INT(tel_report_build(s, &rp, r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r->n_phases, 3);
    CHECK_NEAR(r->energy_j, 112, 1e-9);
    char *json = tel_report_json(r);
    CHECK(json != NULL);
    if (json)
        check_json(json);
    free(json);
    char out[512];
    snprintf(out, sizeof(out), "%s/report.txt", tmpdir);
    FILE *f = fopen(out, "w");
    tel_report_print(r, f);
    fclose(f);
    char *text = slurp(out);
    CHECK_CONTAINS(text, "decode");
    CHECK_CONTAINS(text, "1.25");
    CHECK_CONTAINS(text, "2 requests");
    free(text);

    /* a window with nothing in it: zeros and nulls, never NaN in JSON */
    struct tel_report_params empty = {T + 7200 * NS, T + 7300 * NS};
    CHECK_EQ_INT(tel_report_build(s, &empty, r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r->samples, 0);
    json = tel_report_json(r);
    CHECK(json && !strstr(json, "nan"));
    CHECK_CONTAINS(json, "\"j_per_token\":\tnull");
    free(json);
    struct tel_report_params backwards = {T + NS, T};
    CHECK_EQ_INT(tel_report_build(s, &backwards, r, err, sizeof(err)), -EINVAL);
    free(r);

    snprintf(out, sizeof(out), "%s/chart.svg", tmpdir);
    f = fopen(out, "w");
    CHECK_EQ_INT(tel_report_svg(s, &rp, 0, f, err, sizeof(err)), 0);
    fclose(f);
    check_svg(out);
    /* an empty window still makes a valid document */
    f = fopen(out, "w");
    CHECK_EQ_INT(tel_report_svg(s, &empty, 0, f, err, sizeof(err)), 0);
    fclose(f);
    char *svg = slurp(out);
    CHECK_EQ_INT(count_of(svg, "no data"), 3);
    free(svg);
    tel_store_close(s);

    uint64_t d = 0;
    CHECK_EQ_INT(tel_report_parse_duration("24h", &d), 0);
    CHECK_EQ_INT(d, 86400);
    CHECK_EQ_INT(tel_report_parse_duration("90", &d), 0);
    CHECK_EQ_INT(d, 90);
    CHECK_EQ_INT(tel_report_parse_duration("2w", &d), 0);
    CHECK_EQ_INT(d, 14 * 86400);
    CHECK_EQ_INT(tel_report_parse_duration("0h", &d), -EINVAL);
    CHECK_EQ_INT(tel_report_parse_duration("-1h", &d), -EINVAL);
    CHECK_EQ_INT(tel_report_parse_duration("5y", &d), -EINVAL);
    CHECK_EQ_INT(tel_report_parse_duration("5hh", &d), -EINVAL);
    CHECK_EQ_INT(tel_report_parse_duration("", &d), -EINVAL);
    CHECK_EQ_INT(tel_report_parse_duration("99999999999999999999d", &d), -EINVAL);
}

static int run(const char *cmd, char **ret_out)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - 1 - len, p)) > 0) {
        len += n;
        if (len == cap - 1)
            break;
    }
    if (buf)
        buf[len] = '\0';
    int status = pclose(p);
    if (ret_out)
        *ret_out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli(const char *ember)
{
    char cmd[2048], svg[512];
    snprintf(svg, sizeof(svg), "%s/cli.svg", tmpdir);
    char *out = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --since 24h --json --svg '%s'", ember, db,
             svg);
    CHECK_EQ_INT(run(cmd, &out), 0);
    if (out)
        check_json(out);
    free(out);
    check_svg(svg);
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s'", ember, db);
    CHECK_EQ_INT(run(cmd, &out), 0);
    CHECK_CONTAINS(out, "Ember energy report");
    CHECK_CONTAINS(out, "by policy");
    free(out);
    snprintf(cmd, sizeof(cmd), "'%s' report --help", ember);
    CHECK_EQ_INT(run(cmd, &out), 0);
    CHECK_CONTAINS(out, "--since");
    free(out);
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s' --since 3x 2>&1", ember, db);
    CHECK_EQ_INT(run(cmd, &out), 2);
    CHECK_CONTAINS(out, "3x");
    free(out);
    snprintf(cmd, sizeof(cmd), "'%s' report --db '%s/missing.db' 2>&1", ember, tmpdir);
    CHECK_EQ_INT(run(cmd, &out), 1);
    CHECK_CONTAINS(out, "missing.db");
    free(out);
}

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/telstore_report_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(db, sizeof(db), "%s/report.db", tmpdir);
    T = ((uint64_t)time(NULL) - 3600) / 60 * 60 * NS;
    fill();
    if (argc > 1) {
        if (access(argv[1], X_OK) != 0) {
            fprintf(stderr, "skip: %s not built\n", argv[1]);
            nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
            return ET_SKIP;
        }
        test_cli(argv[1]);
    } else {
        test_library();
    }
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return et_finish();
}
