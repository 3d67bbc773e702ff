/* The power dispatcher: opens the most trusted readable source, turns each reading into a
 * power over the interval and a running energy total, and falls back to the next source when
 * the current one stops being readable (retrying more trusted ones every reprobe_ms). Counter
 * sources give exact energy; instantaneous ones are integrated with the trapezoid rule. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "power_internal.h"

static const char *const source_names[TEL_SOURCE_COUNT_] = {
    [TEL_SOURCE_NONE] = "none",         [TEL_SOURCE_RAPL] = "rapl",
    [TEL_SOURCE_HWMON] = "hwmon",       [TEL_SOURCE_BATTERY] = "battery",
    [TEL_SOURCE_ESTIMATE] = "estimate", [TEL_SOURCE_PMIC] = "pmic",
};

const char *tel_source_scope(enum tel_source source)
{
    switch (source) {
    case TEL_SOURCE_RAPL:
    case TEL_SOURCE_ESTIMATE:
        return "package";
    case TEL_SOURCE_HWMON:
    case TEL_SOURCE_PMIC:
        return "soc";
    case TEL_SOURCE_BATTERY:
        return "wall";
    default:
        return "none";
    }
}

const char *tel_source_name(enum tel_source source)
{
    if ((int)source < 0 || source >= TEL_SOURCE_COUNT_)
        return "unknown";
    return source_names[source];
}

int tel_source_from_name(const char *name, enum tel_source *ret_source)
{
    if (!name)
        return -EINVAL;
    for (int i = 0; i < TEL_SOURCE_COUNT_; i++) {
        if (strcmp(name, source_names[i]) == 0) {
            *ret_source = (enum tel_source)i;
            return 0;
        }
    }
    return -EINVAL;
}

double tel_counter_delta_j(uint64_t prev_uj, uint64_t cur_uj, uint64_t max_uj)
{
    if (cur_uj >= prev_uj)
        return (double)(cur_uj - prev_uj) * 1e-6;
    if (max_uj == 0 || prev_uj > max_uj)
        return 0.0; /* reset, or a range we cannot trust: count nothing rather than guess */
    /* The counter runs 0..max_uj and wraps to 0. */
    return (double)(max_uj - prev_uj + cur_uj) * 1e-6;
}

static int name_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    /* natural order, so hwmon10 sorts after hwmon2 */
    while (*x && *y) {
        if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
            char *ex, *ey;
            unsigned long long nx = strtoull(x, &ex, 10), ny = strtoull(y, &ey, 10);
            if (nx != ny)
                return nx < ny ? -1 : 1;
            x = ex;
            y = ey;
            continue;
        }
        if (*x != *y)
            return (unsigned char)*x - (unsigned char)*y;
        x++;
        y++;
    }
    return (unsigned char)*x - (unsigned char)*y;
}

void tel_names_free(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int tel_list_dir(const char *dir, const char *prefix, char ***ret_names)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **names = NULL;
    int n = 0, cap = 0;
    size_t plen = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strncmp(de->d_name, prefix, plen) != 0)
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            if (ncap > 4096)
                break; /* no real sysfs class directory is this large */
            char **nn = realloc(names, (size_t)ncap * sizeof(*nn));
            if (!nn)
                goto nomem;
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (!names[n])
            goto nomem;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof(*names), name_cmp);
    *ret_names = names;
    return n;

nomem:
    closedir(d);
    tel_names_free(names, n);
    return -ENOMEM;
}

/* ---- the dispatcher ---- */

static const struct tel_src_ops *const sources[] = {
    &tel_src_rapl, &tel_src_hwmon, &tel_src_pmic, &tel_src_battery, &tel_src_estimate,
};
#define N_SOURCES (sizeof(sources) / sizeof(sources[0]))

struct tel_power {
    struct tel_power_params p;
    char root[4096];
    int active; /* index in sources[], -1 none */
    void *state;
    char desc[512];
    uint64_t last_ns;    /* time of the previous reading (or of the open) */
    double last_power_w; /* previous instantaneous power, NAN when none */
    double energy_j;
    uint64_t last_reprobe_ns;
};

void tel_power_params_defaults(struct tel_power_params *p)
{
    memset(p, 0, sizeof(*p));
    p->root = "";
    p->sources_mask = 0;
    p->reprobe_ms = 60000;
    p->pmic_command = "vcgencmd pmic_read_adc";
    struct tel_estimate_params *e = &p->estimate;
    e->idle_w = 2.0;
    e->cpu_static_w = 0.15;
    e->cpu_dyn_w = 1.0;
    e->n_opp = 2;
    e->opp_mhz[0] = 800;
    e->opp_v[0] = 0.70;
    e->opp_mhz[1] = 4000;
    e->opp_v[1] = 1.20;
}

static int allowed(const struct tel_power *pw, size_t i)
{
    return pw->p.sources_mask == 0 || (pw->p.sources_mask & (1u << sources[i]->source));
}

/* Opens the first allowed, readable source among [from, to). */
static int open_from(struct tel_power *pw, size_t from, size_t to, uint64_t now_ns, char *err,
                     size_t err_len)
{
    size_t used = 0;
    if (err_len)
        err[0] = '\0';
    for (size_t i = from; i < to; i++) {
        if (!allowed(pw, i))
            continue;
        void *state = NULL;
        char desc[sizeof(pw->desc)] = "";
        int r = sources[i]->open(&pw->p, &state, desc, sizeof(desc));
        if (r == 0) {
            if (pw->active >= 0)
                sources[pw->active]->close(pw->state);
            pw->active = (int)i;
            pw->state = state;
            snprintf(pw->desc, sizeof(pw->desc), "%s", desc);
            pw->last_ns = now_ns;
            pw->last_power_w = NAN;
            return 0;
        }
        if (err_len > used) {
            int w = snprintf(err + used, err_len - used, "%s%s: %s", used ? "; " : "",
                             tel_source_name(sources[i]->source), desc[0] ? desc : strerror(-r));
            if (w > 0)
                used += (size_t)w < err_len - used ? (size_t)w : err_len - used - 1;
        }
    }
    return -ENODEV;
}

int tel_power_new(const struct tel_power_params *params, uint64_t now_ns, double energy_total_j,
                  struct tel_power **ret_power, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || err_len == 0) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = '\0';
    struct tel_power_params defaults;
    if (!params) {
        tel_power_params_defaults(&defaults);
        params = &defaults;
    }
    if (!ret_power)
        return -EINVAL;
    int r = tel_estimate_params_check(&params->estimate, err, err_len);
    if (r < 0)
        return r;
    if (!isfinite(energy_total_j) || energy_total_j < 0) {
        snprintf(err, err_len, "saved energy total %g is not a finite non-negative number",
                 energy_total_j);
        return -EINVAL;
    }
    struct tel_power *pw = calloc(1, sizeof(*pw));
    if (!pw)
        return -ENOMEM;
    pw->p = *params;
    snprintf(pw->root, sizeof(pw->root), "%s", params->root ? params->root : "");
    pw->p.root = pw->root;
    pw->active = -1;
    pw->energy_j = energy_total_j;
    pw->last_reprobe_ns = now_ns;
    char why[1024];
    r = open_from(pw, 0, N_SOURCES, now_ns, why, sizeof(why));
    if (r < 0) {
        snprintf(err, err_len, "no power source under '%s': %s", pw->root[0] ? pw->root : "/",
                 why[0] ? why : "all sources masked out");
        free(pw);
        return r;
    }
    *ret_power = pw;
    return 0;
}

void tel_power_free(struct tel_power *pw)
{
    if (!pw)
        return;
    if (pw->active >= 0)
        sources[pw->active]->close(pw->state);
    free(pw);
}

enum tel_source tel_power_source(const struct tel_power *pw)
{
    return pw && pw->active >= 0 ? sources[pw->active]->source : TEL_SOURCE_NONE;
}

const char *tel_power_describe(const struct tel_power *pw)
{
    return pw ? pw->desc : "";
}

static double per_s(double j, double dt_s)
{
    return isfinite(j) && dt_s > 0 ? j / dt_s : NAN;
}

int tel_power_read(struct tel_power *pw, uint64_t now_ns, const struct tel_power_inputs *in,
                   struct tel_power_reading *ret)
{
    if (!pw || !ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    ret->package_w = ret->core_w = ret->dram_w = NAN;
    ret->power_w = NAN;

    /* Back to a more trusted source when it has become readable again. */
    if (pw->p.reprobe_ms && pw->active > 0 &&
        now_ns - pw->last_reprobe_ns >= (uint64_t)pw->p.reprobe_ms * CMN_NS_PER_MS) {
        pw->last_reprobe_ns = now_ns;
        char why[256];
        uint64_t prev_ns = pw->last_ns;
        if (open_from(pw, 0, (size_t)pw->active, now_ns, why, sizeof(why)) == 0) {
            ret->switched = 1;
            pw->last_ns = prev_ns;
        }
    }

    for (;;) {
        if (pw->active < 0)
            return -ENODEV;
        struct tel_src_reading sr = {0};
        sr.package_j = sr.core_j = sr.dram_j = NAN;
        int r = sources[pw->active]->read(pw->state, &pw->p, in, &sr);
        if (r < 0) {
            /* This source is gone or unreadable: the next one takes over. A counter source
             * reads its baseline now (its first delta comes next time, the reading is NAN);
             * an instantaneous one is integrated over the whole interval. */
            size_t next = (size_t)pw->active + 1;
            sources[pw->active]->close(pw->state);
            pw->active = -1;
            pw->state = NULL;
            char why[256];
            uint64_t prev_ns = pw->last_ns;
            if (open_from(pw, next, N_SOURCES, now_ns, why, sizeof(why)) < 0) {
                ret->energy_j = pw->energy_j;
                ret->source = TEL_SOURCE_NONE;
                return -ENODEV;
            }
            pw->last_reprobe_ns = now_ns;
            pw->last_ns = prev_ns;
            ret->switched = 1;
            continue;
        }
        double dt_s = now_ns > pw->last_ns ? (double)(now_ns - pw->last_ns) * 1e-9 : 0.0;
        if (sr.is_energy) {
            if (sr.delta_j > 0)
                pw->energy_j += sr.delta_j;
            /* right after a switch the delta only spans the baseline read: no power yet */
            double dt_rate = ret->switched ? 0.0 : dt_s;
            ret->power_w = per_s(sr.delta_j, dt_rate);
            ret->package_w = per_s(sr.package_j, dt_rate);
            ret->core_w = per_s(sr.core_j, dt_rate);
            ret->dram_w = per_s(sr.dram_j, dt_rate);
            pw->last_power_w = NAN;
        } else {
            double p_now = sr.power_w > 0 && isfinite(sr.power_w) ? sr.power_w : 0.0;
            double p_avg = isfinite(pw->last_power_w) ? 0.5 * (pw->last_power_w + p_now) : p_now;
            pw->energy_j += p_avg * dt_s;
            ret->power_w = p_now;
            pw->last_power_w = p_now;
        }
        pw->last_ns = now_ns;
        ret->energy_j = pw->energy_j;
        ret->source = sources[pw->active]->source;
        return 0;
    }
}
