/* `ember report --svg` on a demo-length run (issue 12): the time axis fits the minute of data
 * inside a day-long window instead of putting it at the right edge, every raw sample is plotted,
 * intervals are shaded by the engine phase their energy went to, and a J/token panel per policy
 * and phase is drawn. The SVG is rendered to PNG with rsvg-convert (librsvg2-bin, installed by
 * scripts/setup) to prove it is a valid image; argv[1] names where the PNG goes (kept so a person
 * can look at it). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/report.h"
#include "telemetry/store.h"

#define NS 1000000000ULL
#define T0 (1700000000ULL * NS)

int main(int argc, char **argv)
{
    char dir[] = "/tmp/telstore_chart_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512], svg_path[600];
    snprintf(path, sizeof(path), "%s/t.db", dir);
    snprintf(svg_path, sizeof(svg_path), "%s/report.svg", dir);
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.retain_samples_s = p.retain_1m_s = p.retain_1h_s = 0;
    struct tel_store *s = NULL;
    char err[256];
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s)
        return et_finish();
    /* 60 s at 2 Hz: idle, a request (prefill 10-11 s, decode 11-25 s) under performance, idle,
     * a request (prefill 35-36 s, decode 36-55 s) under balanced */
    double e = 1000;
    for (int i = 0; i <= 120; i++) {
        double t = i * 0.5;
        struct tel_sample sm;
        memset(&sm, 0, sizeof(sm));
        sm.ts_ns = T0 + (uint64_t)(t * NS);
        bool a = t > 10 && t <= 25, b = t > 35 && t <= 55;
        bool pre = (t > 10 && t <= 11) || (t > 35 && t <= 36);
        double w = pre ? 9 : a ? 7 : b ? 4.5 : 2;
        sm.power_w = w;
        e += i ? w * 0.5 : 0;
        sm.energy_j = e;
        sm.temp_c = 40 + w;
        sm.util = w / 10;
        sm.n_freq = 1;
        sm.freq_mhz[0] = a ? 2400 : b ? 1600 : 800;
        snprintf(sm.policy, sizeof(sm.policy), "%s", t <= 30 ? "performance" : "balanced");
        snprintf(sm.phase, sizeof(sm.phase), "idle"); /* what a 1 Hz label might have seen */
        sm.source = TEL_SOURCE_ESTIMATE;
        sm.tokens = (a || b) && !pre ? 5 : 0;
        sm.has_phase_energy = 1;
        sm.prefill_j = pre && i ? w * 0.5 : 0;
        sm.decode_j = (a || b) && !pre && i ? w * 0.5 : 0;
        sm.idle_j = !(a || b) && i ? w * 0.5 : 0;
        CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
    }
    CHECK_EQ_INT(tel_store_flush(s), 0);

    FILE *f = fopen(svg_path, "w");
    CHECK(f != NULL);
    if (!f)
        return et_finish();
    /* a day-long window, like `ember report --since 24h` right after the demo */
    struct tel_report_params rp = {T0 + 60 * NS - 24 * 3600 * NS, T0 + 61 * NS};
    CHECK_MSG(tel_report_svg(s, &rp, 0, f, err, sizeof(err)) == 0, "%s", err);
    fclose(f);
    tel_store_close(s);

    FILE *in = fopen(svg_path, "r");
    static char svg[1 << 20];
    size_t len = in ? fread(svg, 1, sizeof(svg) - 1, in) : 0;
    if (in)
        fclose(in);
    svg[len] = 0;
    CHECK(len > 1000);
    CHECK_CONTAINS(svg, "121 points (every sample)");
    CHECK_CONTAINS(svg, "fill=\"#e9dcf5\""); /* prefill shading */
    CHECK_CONTAINS(svg, "fill=\"#d8efd8\""); /* decode shading */
    CHECK_CONTAINS(svg, "Joules per generated token");
    CHECK_CONTAINS(svg, ">performance<");
    CHECK_CONTAINS(svg, ">balanced<");
    CHECK_CONTAINS(svg, ">decode<");
    CHECK_CONTAINS(svg, "ESTIMATE");
    /* the axis is fitted: ticks every few seconds with seconds shown, and the power line starts
     * near the left edge and ends near the right one */
    CHECK_CONTAINS(svg, ":13:20<"); /* 22:13:20 UTC is T0 */
    const char *path_d =
        strstr(svg, "<path fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" d=\"M");
    CHECK(path_d != NULL);
    if (path_d) {
        double x_first = atof(path_d + strlen("<path fill=\"none\" stroke=\"#d62728\" "
                                              "stroke-width=\"1.5\" d=\"M"));
        const char *end = strchr(path_d + 60, '"');
        const char *last_l = NULL;
        for (const char *q = path_d; q && q < end; q = strchr(q + 1, 'L'))
            if (q > path_d && q < end)
                last_l = q;
        double x_last = last_l ? atof(last_l + 1) : 0;
        printf("power line from x=%.1f to x=%.1f (chart 72..936)\n", x_first, x_last);
        CHECK(x_first < 100);
        CHECK(x_last > 900);
    }

    /* render it: a chart a person can look at */
    const char *png = argc > 1 ? argv[1] : "telstore_chart.png";
    if (system("command -v rsvg-convert >/dev/null 2>&1") != 0) {
        printf("SKIP rendering: rsvg-convert (librsvg2-bin) is not installed; scripts/setup "
               "installs it\n");
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
        return et_failed ? et_finish() : ET_SKIP;
    }
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "rsvg-convert -o '%s' '%s'", png, svg_path);
    CHECK_EQ_INT(system(cmd), 0);
    FILE *pf = fopen(png, "rb");
    unsigned char sig[8] = {0};
    CHECK(pf && fread(sig, 1, 8, pf) == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0);
    struct stat st;
    CHECK(pf && stat(png, &st) == 0 && st.st_size > 20000);
    if (pf)
        fclose(pf);
    printf("chart rendered to %s (%lld bytes)\n", png, pf ? (long long)st.st_size : 0LL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return et_finish();
}
