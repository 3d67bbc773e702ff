/* The simulator's outputs: a side-by-side table (one column per policy), JSON (one object per
 * policy), a CSV trace and a hand-written SVG with frequency, power and temperature over time
 * per policy. Written to a FILE the caller opened; nothing here logs. */
#include "governor/sim.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct row {
    const char *label;
    int decimals;
    size_t offset;
    bool is_uint;
};

#define R(label, dec, field)                                      \
    {                                                             \
        label, dec, offsetof(struct gov_sim_result, field), false \
    }
#define RU(label, field)                                       \
    {                                                          \
        label, 0, offsetof(struct gov_sim_result, field), true \
    }

static const struct row rows[] = {
    R("simulated s", 1, sim_s),
    RU("requests", requests),
    RU("prompt tokens", prompt_tokens),
    RU("generated tokens", gen_tokens),
    R("J/token prefill", 4, j_per_token_prefill),
    R("J/token decode", 4, j_per_token_decode),
    R("J/token total", 4, joules_per_token),
    R("energy total J", 0, energy_j),
    R("wall J/token", 4, wall_joules_per_token),
    R("wall J/tok +idle", 4, wall_joules_per_token_with_idle),
    R("wall energy J", 0, wall_energy_j),
    R("prefill tok/s", 1, prefill_tokens_per_s),
    R("decode tok/s", 2, decode_tokens_per_s),
    R("prefill threads", 1, prefill_threads),
    R("decode threads", 1, decode_threads),
    R("TTFT p50 ms", 0, ttft_p50_ms),
    R("TTFT p99 ms", 0, ttft_p99_ms),
    R("token lat p99 ms", 1, token_latency_p99_ms),
    R("avg power W", 2, avg_power_w),
    R("peak power W", 2, peak_power_w),
    R("idle power W", 2, idle_power_w),
    R("peak temp C", 1, peak_temp_c),
    R("s over target", 1, seconds_over_target),
    R("freq changes/min", 1, freq_changes_per_min),
};

static double field(const struct gov_sim_result *r, const struct row *w)
{
    const char *base = (const char *)r + w->offset;
    if (w->is_uint)
        return *(const unsigned *)base;
    return *(const double *)base;
}

void gov_sim_write_table(FILE *f, const struct gov_sim_result *r, size_t n)
{
    if (!n)
        return;
    fprintf(f,
            "profile %s, workload %s, arrivals over %.0f s (each policy is simulated until its "
            "requests are served)",
            r[0].profile, r[0].workload, r[0].duration_s);
    if (isfinite(r[0].thermal_target_c))
        fprintf(f, ", thermal target %.1f C", r[0].thermal_target_c);
    if (r[0].power_cap_w > 0)
        fprintf(f, ", power cap %.1f W", r[0].power_cap_w);
    fprintf(f, "\n%-18s", "");
    for (size_t i = 0; i < n; i++)
        fprintf(f, " %12s", r[i].policy);
    fputc('\n', f);
    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
        fprintf(f, "%-18s", rows[k].label);
        for (size_t i = 0; i < n; i++) {
            char cell[32];
            double v = field(&r[i], &rows[k]);
            if (isfinite(v))
                snprintf(cell, sizeof(cell), "%.*f", rows[k].decimals, v);
            else
                snprintf(cell, sizeof(cell), "-");
            fprintf(f, " %12s", cell);
        }
        fputc('\n', f);
    }
    fprintf(f, "J/token: package (CPU) energy of prefill + decode per generated token, idle time "
               "not attributed.\n"
               "wall J/token: the whole box (package + board + DRAM, through the power supply, "
               "from the profile's terms); +idle also attributes the idle time between "
               "requests.\n");
}

static void add_num(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

char *gov_sim_results_json(const struct gov_sim_result *r, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct gov_sim_result *x = &r[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(o, "policy", x->policy);
        cJSON_AddStringToObject(o, "profile", x->profile);
        cJSON_AddStringToObject(o, "workload", x->workload);
        add_num(o, "sim_s", x->sim_s);
        add_num(o, "requests", x->requests);
        add_num(o, "prompt_tokens", x->prompt_tokens);
        add_num(o, "gen_tokens", x->gen_tokens);
        add_num(o, "joules_per_token", x->joules_per_token);
        add_num(o, "joules_per_token_prefill", x->j_per_token_prefill);
        add_num(o, "joules_per_token_decode", x->j_per_token_decode);
        add_num(o, "energy_j", x->energy_j);
        add_num(o, "prefill_energy_j", x->prefill_energy_j);
        add_num(o, "decode_energy_j", x->decode_energy_j);
        add_num(o, "idle_energy_j", x->idle_energy_j);
        /* the same at the wall; "joules_per_token*" above are package energy, idle excluded */
        add_num(o, "wall_energy_j", x->wall_energy_j);
        add_num(o, "wall_prefill_energy_j", x->wall_prefill_energy_j);
        add_num(o, "wall_decode_energy_j", x->wall_decode_energy_j);
        add_num(o, "wall_idle_energy_j", x->wall_idle_energy_j);
        add_num(o, "wall_joules_per_token", x->wall_joules_per_token);
        add_num(o, "wall_joules_per_token_with_idle", x->wall_joules_per_token_with_idle);
        add_num(o, "prefill_tokens_per_s", x->prefill_tokens_per_s);
        add_num(o, "decode_tokens_per_s", x->decode_tokens_per_s);
        add_num(o, "prefill_threads", x->prefill_threads);
        add_num(o, "decode_threads", x->decode_threads);
        add_num(o, "ttft_p50_ms", x->ttft_p50_ms);
        add_num(o, "ttft_p99_ms", x->ttft_p99_ms);
        add_num(o, "token_latency_p99_ms", x->token_latency_p99_ms);
        add_num(o, "avg_power_w", x->avg_power_w);
        add_num(o, "peak_power_w", x->peak_power_w);
        add_num(o, "idle_power_w", x->idle_power_w);
        add_num(o, "peak_temp_c", x->peak_temp_c);
        add_num(o, "thermal_target_c", x->thermal_target_c);
        add_num(o, "seconds_over_target", x->seconds_over_target);
        add_num(o, "max_over_target_settled_c", x->max_over_target_settled_c);
        add_num(o, "power_cap_w", x->power_cap_w > 0 ? x->power_cap_w : NAN);
        add_num(o, "max_power_5s_w", x->max_power_5s_w);
        add_num(o, "min_power_5s_w", x->min_power_5s_w);
        add_num(o, "freq_changes_per_min", x->freq_changes_per_min);
        add_num(o, "safe_state_s", x->safe_state_s);
    }
    char *s = cJSON_PrintUnformatted(arr); /* one line, like every other --json */
    cJSON_Delete(arr);
    return s;
}

void gov_sim_write_csv(FILE *f, const struct gov_sim_result *r, const struct gov_sim_trace *t,
                       size_t n, unsigned n_clusters)
{
    fprintf(f, "policy,t_s,phase,power_w,temp_c");
    for (unsigned c = 0; c < n_clusters; c++)
        fprintf(f, ",mhz%u", c);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < t[i].n; k++) {
            const struct gov_sim_trace_point *p = &t[i].pts[k];
            fprintf(f, "%s,%.1f,%s,%.3f,%.2f", r[i].policy, p->t_s,
                    gov_phase_name((enum gov_phase)p->phase), p->power_w, p->temp_c);
            for (unsigned c = 0; c < n_clusters; c++)
                fprintf(f, ",%u", p->khz[c] / 1000);
            fputc('\n', f);
        }
    }
}

/* ---- SVG: one panel per policy, three strips (MHz, W, °C) sharing the time axis ---- */

#define SVG_W     1000
#define STRIP_H   70
#define PANEL_GAP 36
#define LEFT      70
#define RIGHT     20

static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

static void strip(FILE *f, const struct gov_sim_trace *t, double y0, double t_max, double lo,
                  double hi, const char *label, int which, unsigned cluster, const char *colour)
{
    double w = SVG_W - LEFT - RIGHT;
    fprintf(f, "<rect x='%d' y='%.0f' width='%.0f' height='%d' fill='none' stroke='#ccc'/>\n", LEFT,
            y0, w, STRIP_H);
    fprintf(f,
            "<text x='%d' y='%.0f' font-size='10' text-anchor='end'>%s</text>\n"
            "<text x='%d' y='%.0f' font-size='9' text-anchor='end'>%.0f</text>\n"
            "<text x='%d' y='%.0f' font-size='9' text-anchor='end'>%.0f</text>\n",
            LEFT - 4, y0 + STRIP_H / 2.0 + 3, label, LEFT - 4, y0 + 9, hi, LEFT - 4, y0 + STRIP_H,
            lo);
    if (!t->n || !(hi > lo))
        return;
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1' points='", colour);
    /* at most one point per pixel column: the max of the column keeps spikes visible */
    double col_v = -INFINITY;
    int col = -1;
    for (size_t k = 0; k <= t->n; k++) {
        int x = k < t->n ? (int)(t->pts[k].t_s / t_max * w) : -2;
        if (x != col && col >= 0) {
            double y = y0 + STRIP_H - (col_v - lo) / (hi - lo) * STRIP_H;
            y = y < y0 ? y0 : y > y0 + STRIP_H ? y0 + STRIP_H : y;
            fprintf(f, "%d,%.1f ", LEFT + col, y);
            col_v = -INFINITY;
        }
        if (k == t->n)
            break;
        col = x;
        const struct gov_sim_trace_point *p = &t->pts[k];
        double v = which == 0 ? p->khz[cluster] / 1000.0 : which == 1 ? p->power_w : p->temp_c;
        col_v = fmax(col_v, v);
    }
    fprintf(f, "'/>\n");
}

/* Tick labels in seconds under a panel: about eight, at round steps. */
static void time_axis(FILE *f, double y, double t_max)
{
    static const double steps[] = {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600};
    double step = steps[sizeof(steps) / sizeof(steps[0]) - 1];
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (t_max / steps[i] <= 8) {
            step = steps[i];
            break;
        }
    }
    double w = SVG_W - LEFT - RIGHT;
    for (double t = 0; t <= t_max + 1e-9; t += step)
        fprintf(f, "<text x='%.0f' y='%.0f' font-size='9' text-anchor='middle'>%.0f s</text>\n",
                LEFT + t / t_max * w, y, t);
}

void gov_sim_write_svg(FILE *f, const struct gov_sim_result *r, const struct gov_sim_trace *t,
                       size_t n, const struct gov_sim_profile *p)
{
    double t_max = 1, p_max = 1, temp_lo = 1e9, temp_hi = -1e9, mhz_max = 1;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < t[i].n; k++) {
            const struct gov_sim_trace_point *q = &t[i].pts[k];
            t_max = fmax(t_max, q->t_s);
            p_max = fmax(p_max, q->power_w);
            temp_lo = fmin(temp_lo, q->temp_c);
            temp_hi = fmax(temp_hi, q->temp_c);
        }
    }
    unsigned prim = 0;
    for (unsigned c = 0; c < p->n_clusters; c++) {
        const struct gov_sim_cluster *k = &p->clusters[c];
        if (k->engine && k->opps[k->n_opps - 1].khz / 1000.0 > mhz_max) {
            mhz_max = k->opps[k->n_opps - 1].khz / 1000.0;
            prim = c;
        }
    }
    temp_lo = floor(temp_lo - 1);
    temp_hi = ceil(temp_hi + 1);
    double panel_h = 3 * STRIP_H + 8 + PANEL_GAP;
    double h = 40 + n * panel_h;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%.0f' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n"
            "<text x='%d' y='20' font-size='14'>ember governor sim: profile %s, workload %s, "
            "arrivals over %.0f s (%s MHz of the engine cluster, package W, junction C; time in "
            "s)</text>\n",
            SVG_W, h, LEFT, p->name, n ? r[0].workload : "", n ? r[0].duration_s : 0,
            p->clusters[prim].name);
    for (size_t i = 0; i < n; i++) {
        double y = 40 + i * panel_h;
        const char *col = colours[i % (sizeof(colours) / sizeof(colours[0]))];
        fprintf(f,
                "<text x='%d' y='%.0f' font-size='12' font-weight='bold'>%s</text>"
                "<text x='%d' y='%.0f' font-size='11'>%.4f J/token, %.2f decode tok/s, "
                "TTFT p99 %.0f ms, avg %.2f W, peak %.1f C</text>\n",
                LEFT, y + 10, r[i].policy, LEFT + 110, y + 10, r[i].joules_per_token,
                r[i].decode_tokens_per_s, r[i].ttft_p99_ms, r[i].avg_power_w, r[i].peak_temp_c);
        strip(f, &t[i], y + 16, t_max, 0, mhz_max, "MHz", 0, prim, col);
        strip(f, &t[i], y + 16 + STRIP_H + 4, t_max, 0, p_max, "W", 1, prim, col);
        strip(f, &t[i], y + 16 + 2 * (STRIP_H + 4), t_max, temp_lo, temp_hi, "C", 2, prim, col);
        time_axis(f, y + 16 + 3 * STRIP_H + 8 + 12, t_max);
    }
    fprintf(f, "</svg>\n");
}
