/* The runtime governor object (see governor.h): wiring of backend, sensors and controller, the
 * apply step with save-before-first-write, the safe state, crash restore at start, status. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fileio.h"
#include "governor/governor.h"

struct gov_governor {
    char root[PATH_MAX];
    char saved_path[PATH_MAX];
    struct gov_backend *b;
    struct gov_sensors *s;
    struct gov_controller *ctl;
    struct gov_calibration *cal;
    struct gov_events ev;
    struct gov_sysio sysio; /* used when has_sysio: the saved file is kept on its other side */
    bool has_sysio;

    unsigned ncl;
    struct gov_cluster_info ci[GOV_MAX_CLUSTERS];
    unsigned nmem[GOV_MAX_CLUSTERS];
    uint16_t mem[GOV_MAX_CLUSTERS][GOV_HW_MAX_POLICIES]; /* backend policy indexes */

    bool monitor_only;
    bool adopt_saved;
    char monitor_reason[256];
    bool saved;                      /* originals are on disk */
    bool taken[GOV_HW_MAX_POLICIES]; /* we switched this policy into our mode */
    /* After a failed write a policy is left alone this long, so a knob that never sticks
     * costs one event per period, not one per tick. */
    uint64_t retry_after_ns[GOV_HW_MAX_POLICIES];
    bool safe;
    char safe_reason[256];
    /* The levers beyond the clock: what we found before taking each, so a policy that leaves
     * them (NaN / GOV_EPP_LEAVE) gives the hardware its own settings back. */
    bool mem_taken[GOV_HW_MAX_DEVFREQ];
    uint64_t mem_orig_min[GOV_HW_MAX_DEVFREQ], mem_orig_max[GOV_HW_MAX_DEVFREQ];
    uint64_t mem_retry_after_ns[GOV_HW_MAX_DEVFREQ];
    bool epp_taken[GOV_HW_MAX_POLICIES];
    char epp_orig[GOV_HW_MAX_POLICIES][GOV_HW_NAME_LEN];

    uint8_t zone_clusters[GOV_MAX_ZONES]; /* bit k: the zone belongs to cluster k */
    double cl_temp_c[GOV_MAX_CLUSTERS];
    struct gov_sensor_reading rd;
    bool have_reading;
    struct gov_targets last;
    bool have_targets;
    enum gov_phase phase;
    uint64_t phase_since_ns;
    unsigned queued; /* requests waiting behind the running one */
    double power_w;
    uint64_t ticks, writes, write_errors;
    unsigned nconf;
    struct gov_conflict conf[GOV_STATUS_MAX_CONFLICTS];
};

#define GOV_RETRY_AFTER_FAILURE_NS (5ULL * 1000000000ULL)

void gov_governor_params_defaults(struct gov_governor_params *p)
{
    memset(p, 0, sizeof(*p));
    p->sysfs_root = "/";
    p->saved_path = GOV_SAVED_DEFAULT_PATH;
    gov_tunables_defaults(&p->tunables);
    p->backend = GOV_BACKEND_AUTO;
}

void gov_reasons_format(unsigned reasons, char *buf, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{GOV_REASON_POLICY, "policy"},
                 {GOV_REASON_THERMAL, "thermal"},
                 {GOV_REASON_POWER_CAP, "power_cap"},
                 {GOV_REASON_USER_LIMIT, "user_limit"},
                 {GOV_REASON_SENSOR_LOSS, "sensor_loss"},
                 {GOV_REASON_HELD, "held"},
                 {GOV_REASON_QUIET, "quiet"},
                 {GOV_REASON_TRIP, "trip"}};
    size_t len = 0;
    if (!cap)
        return;
    buf[0] = '\0';
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (!(reasons & names[k].bit))
            continue;
        int n = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", names[k].name);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

/* ---- cluster description from the backend ---- */

static uint32_t base_khz_of(const struct gov_backend *b, size_t i)
{
    const struct gov_hw_policy *p = gov_backend_policy(b, i);
    const struct gov_hw_global *g = gov_backend_global(b);
    char path[PATH_MAX], val[32];
    uint32_t v;
    /* acpi-cpufreq lists turbo as a pseudo-state 1 MHz above the nominal frequency. */
    if (p->nfreqs >= 2 && g->boost >= 0 &&
        p->freqs_khz[p->nfreqs - 1] - p->freqs_khz[p->nfreqs - 2] <= 1000)
        return p->freqs_khz[p->nfreqs - 2];
    /* intel_pstate (HWP) publishes the guaranteed frequency. */
    if (gov_backend_policy_path(b, i, "base_frequency", path, sizeof(path)) == 0 &&
        cmn_read_string(path, val, sizeof(val)) == 0 && gov_parse_khz(val, &v) == 0 &&
        v >= p->cpuinfo_min_khz && v <= p->cpuinfo_max_khz)
        return v;
    return 0;
}

static void cluster_from_policy(const struct gov_backend *b, size_t i, struct gov_cluster_info *c)
{
    const struct gov_hw_policy *p = gov_backend_policy(b, i);
    const struct gov_hw_global *g = gov_backend_global(b);
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", p->name);
    for (unsigned k = 0; k < p->ncpus && c->n_cpus < GOV_MAX_CPUS; k++)
        c->cpus[c->n_cpus++] = p->cpus[k];
    c->cpuinfo_min_khz = p->cpuinfo_min_khz;
    c->cpuinfo_max_khz = p->cpuinfo_max_khz;
    c->base_khz = base_khz_of(b, i);
    c->n_freqs = p->nfreqs < GOV_MAX_FREQS ? p->nfreqs : GOV_MAX_FREQS;
    memcpy(c->freqs_khz, p->freqs_khz, c->n_freqs * sizeof(c->freqs_khz[0]));
    c->boost_available = g->boost >= 0 || g->no_turbo >= 0 || p->boost >= 0;
    c->exact_freq = p->has_setspeed && gov_hw_policy_has_governor(p, "userspace");
}

static bool same_hw(const struct gov_cluster_info *a, const struct gov_cluster_info *c)
{
    return a->cpuinfo_min_khz == c->cpuinfo_min_khz && a->cpuinfo_max_khz == c->cpuinfo_max_khz &&
           a->base_khz == c->base_khz && a->n_freqs == c->n_freqs &&
           a->boost_available == c->boost_available && a->exact_freq == c->exact_freq &&
           memcmp(a->freqs_khz, c->freqs_khz, a->n_freqs * sizeof(a->freqs_khz[0])) == 0;
}

/* One cluster per policy; when there are more policies than the controller takes (acpi-cpufreq
 * has one policy per CPU), policies with identical hardware share a cluster. */
static int build_clusters(struct gov_governor *g, char *err, size_t err_len)
{
    size_t n = gov_backend_policy_count(g->b);
    bool group = n > GOV_MAX_CLUSTERS;
    g->ncl = 0;
    for (size_t i = 0; i < n; i++) {
        struct gov_cluster_info c;
        cluster_from_policy(g->b, i, &c);
        unsigned k = g->ncl;
        if (group)
            for (k = 0; k < g->ncl; k++)
                if (same_hw(&g->ci[k], &c))
                    break;
        if (k == g->ncl) {
            if (g->ncl == GOV_MAX_CLUSTERS) {
                cmn_set_err(
                    err, err_len,
                    "%zu cpufreq policies with more than %d different hardware descriptions", n,
                    GOV_MAX_CLUSTERS);
                return -E2BIG;
            }
            g->ci[g->ncl++] = c;
        } else {
            struct gov_cluster_info *d = &g->ci[k];
            for (unsigned j = 0; j < c.n_cpus && d->n_cpus < GOV_MAX_CPUS; j++)
                d->cpus[d->n_cpus++] = c.cpus[j];
            char name[GOV_NAME_MAX];
            snprintf(name, sizeof(name), "%.16s+%u", gov_backend_policy(g->b, g->mem[k][0])->name,
                     g->nmem[k]);
            memcpy(d->name, name, sizeof(d->name));
        }
        g->mem[k][g->nmem[k]++] = (uint16_t)i;
    }
    return 0;
}

/* Which clusters a CPU thermal zone measures. Per-cluster zones are named after the cluster
 * kind (RK3588: littlecore-thermal, bigcore0/1-thermal; Amlogic/MediaTek: cpu_little, cpu_big)
 * or a CPU (Qualcomm: cpu4-gold-usr, some boards cpu0-thermal); everything else (package, SoC,
 * x86_pkg_temp, a plain cpu-thermal) covers every cluster. */
static uint8_t zone_cluster_mask(const struct gov_governor *g, const char *type)
{
    uint8_t all = (uint8_t)((1u << g->ncl) - 1);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (unsigned k = 0; k < g->ncl; k++) {
        lo = g->ci[k].cpuinfo_max_khz < lo ? g->ci[k].cpuinfo_max_khz : lo;
        hi = g->ci[k].cpuinfo_max_khz > hi ? g->ci[k].cpuinfo_max_khz : hi;
    }
    const char *p;
    if ((p = strcasestr(type, "cpu")) && p[3] >= '0' && p[3] <= '9') {
        unsigned cpu = (unsigned)strtoul(p + 3, NULL, 10);
        for (unsigned k = 0; k < g->ncl; k++)
            for (unsigned j = 0; j < g->ci[k].n_cpus; j++)
                if (g->ci[k].cpus[j] == cpu)
                    return (uint8_t)(1u << k);
        return all;
    }
    if (lo == hi)
        return all; /* one kind of core: nothing to tell apart */
    if (strcasestr(type, "little")) {
        uint8_t m = 0;
        for (unsigned k = 0; k < g->ncl; k++)
            if (g->ci[k].cpuinfo_max_khz == lo)
                m |= (uint8_t)(1u << k);
        return m;
    }
    if ((p = strcasestr(type, "big"))) {
        /* "bigcore1": the second big cluster in CPU order; "big" alone: all of them. */
        p += 3;
        while (*p && (*p < '0' || *p > '9') && *p != '-' && *p != '_')
            p++;
        int nth = *p >= '0' && *p <= '9' ? (int)strtol(p, NULL, 10) : -1;
        uint8_t m = 0;
        int seen = 0;
        for (unsigned k = 0; k < g->ncl; k++) {
            if (g->ci[k].cpuinfo_max_khz != hi)
                continue;
            if (nth < 0 || seen == nth)
                m |= (uint8_t)(1u << k);
            seen++;
        }
        return m ? m : all;
    }
    return all;
}

static void map_zones(struct gov_governor *g)
{
    for (size_t i = 0; i < gov_sensors_zone_count(g->s) && i < GOV_MAX_ZONES; i++) {
        const struct gov_thermal_zone *z = gov_sensors_zone(g->s, i);
        g->zone_clusters[i] = z->is_cpu ? zone_cluster_mask(g, z->type) : 0;
    }
}

static void cluster_temps(struct gov_governor *g)
{
    for (unsigned k = 0; k < g->ncl; k++) {
        double t = NAN;
        for (size_t i = 0; i < gov_sensors_zone_count(g->s) && i < GOV_MAX_ZONES; i++) {
            const struct gov_thermal_zone *z = gov_sensors_zone(g->s, i);
            if (z->valid && (g->zone_clusters[i] & (1u << k)) && !(z->temp_mc / 1000.0 <= t))
                t = z->temp_mc / 1000.0;
        }
        g->cl_temp_c[k] = isnan(t) ? g->rd.cpu_temp_c : t;
    }
}

/* ---- saving, restoring ---- */

static bool pid_is_other_ember(int pid)
{
    char path[64], comm[32];
    if (pid <= 0 || pid == (int)getpid())
        return false;
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    return cmn_read_string(path, comm, sizeof(comm)) == 0 && strcmp(comm, "ember") == 0;
}

/* crash_restore when the saved file belongs to the sysio's other side: the same outcomes. */
static int crash_restore_sysio(struct gov_governor *g, char *err, size_t err_len)
{
    char msg[512] = "";
    unsigned writes = 0;
    int pid = 0;
    int r = g->sysio.saved_crash_restore(g->sysio.ctx, &writes, &pid, msg, sizeof(msg));
    g->writes += writes;
    if (r == -ENOENT)
        return 0;
    if (r == -EBUSY || r == -EXDEV) {
        cmn_set_err(err, err_len, "%s: %s", g->saved_path, msg);
        return r;
    }
    if (r == -EBADMSG) {
        gov_events_push(&g->ev, GOV_EVENT_CRASH_RESTORE, r, "%s; original settings unknown", msg);
        return 0;
    }
    if (r == 0) {
        gov_events_push(&g->ev, GOV_EVENT_CRASH_RESTORE, 0,
                        "%s: settings left by pid %d restored (%u value(s) written)", g->saved_path,
                        pid, writes);
    } else {
        g->saved = true; /* the file still holds the true originals: keep it as ours */
        gov_events_push(&g->ev, GOV_EVENT_CRASH_RESTORE, r,
                        "%s: restoring the settings left by pid %d failed (%s); the file is kept",
                        g->saved_path, pid, msg);
    }
    return 0;
}

/* Whether the saved file exists, wherever it is kept. */
static bool saved_file_exists(const struct gov_governor *g)
{
    if (g->has_sysio)
        return g->sysio.saved_exists(g->sysio.ctx) == 1;
    return access(g->saved_path, F_OK) == 0;
}

static int crash_restore(struct gov_governor *g, char *err, size_t err_len)
{
    char msg[512] = "";
    if (g->has_sysio) {
        if (g->adopt_saved) {
            g->saved = saved_file_exists(g);
            return 0;
        }
        return crash_restore_sysio(g, err, err_len);
    }
    struct gov_saved_state *st = malloc(sizeof(*st));
    if (!st)
        return -ENOMEM;
    int r = gov_saved_read(g->saved_path, st, msg, sizeof(msg));
    if (r == -ENOENT) {
        r = 0;
        goto out;
    }
    if (r) {
        /* Unreadable: keep it aside for a human rather than overwrite it with new originals. */
        char bad[PATH_MAX + 8];
        snprintf(bad, sizeof(bad), "%s.bad", g->saved_path);
        if (rename(g->saved_path, bad) != 0) {
            cmn_set_err(err, err_len, "%s; and cannot move it aside: %s", msg, strerror(errno));
            goto out;
        }
        gov_events_push(&g->ev, GOV_EVENT_CRASH_RESTORE, r,
                        "%s; moved to %s, original settings unknown", msg, bad);
        r = 0;
        goto out;
    }
    if (pid_is_other_ember(st->pid)) {
        cmn_set_err(err, err_len, "%s: another ember (pid %d) controls the CPU frequencies",
                    g->saved_path, st->pid);
        r = -EBUSY;
        goto out;
    }
    if (g->adopt_saved) {
        g->saved = true;
        r = 0;
        goto out;
    }
    unsigned writes = 0;
    r = gov_saved_apply(g->b, st, &g->ev, &writes, msg, sizeof(msg));
    if (r == -EXDEV) {
        cmn_set_err(err, err_len, "%s: %s", g->saved_path, msg);
        goto out;
    }
    g->writes += writes;
    if (r == 0) {
        unlink(g->saved_path);
        gov_events_push(&g->ev, GOV_EVENT_CRASH_RESTORE, 0,
                        "%s: settings left by pid %d restored (%u value(s) written)", g->saved_path,
                        st->pid, writes);
    } else {
        /* The file still holds the true originals: keep it as ours. */
        g->saved = true;
        gov_events_push(&g->ev, GOV_EVENT_CRASH_RESTORE, r,
                        "%s: restoring the settings left by pid %d failed (%s); the file is kept",
                        g->saved_path, st->pid, msg);
        r = 0;
    }
out:
    free(st);
    return r;
}

int gov_governor_save_originals(struct gov_governor *g, char *err, size_t err_len)
{
    char msg[512] = "";
    if (!g)
        return -EINVAL;
    if (g->saved)
        return 0;
    if (g->monitor_only)
        return -EPERM;
    if (g->has_sysio) {
        int r = g->sysio.saved_save(g->sysio.ctx, msg, sizeof(msg));
        if (r) {
            cmn_set_err(err, err_len, "cannot save the original settings: %s", msg);
            return r;
        }
        g->saved = true;
        return 0;
    }
    struct gov_saved_state *st = malloc(sizeof(*st));
    if (!st)
        return -ENOMEM;
    int r = gov_backend_refresh(g->b, msg, sizeof(msg));
    if (!r)
        r = gov_saved_capture(g->b, st);
    if (!r)
        r = gov_saved_write(st, g->saved_path, msg, sizeof(msg));
    free(st);
    if (r) {
        cmn_set_err(err, err_len, "cannot save the original settings: %s", msg);
        return r;
    }
    g->saved = true;
    return 0;
}

/* After a restore the hardware holds the originals again: nothing is ours any more. */
static void forget_taken(struct gov_governor *g)
{
    memset(g->taken, 0, sizeof(g->taken));
    memset(g->mem_taken, 0, sizeof(g->mem_taken));
    memset(g->epp_taken, 0, sizeof(g->epp_taken));
}

int gov_governor_restore(struct gov_governor *g, char *err, size_t err_len)
{
    if (!g)
        return -EINVAL;
    if (!g->saved)
        return 0;
    unsigned writes = 0;
    int r = g->has_sysio
                ? g->sysio.saved_restore(g->sysio.ctx, &writes, err, err_len)
                : gov_saved_restore_file(g->b, g->saved_path, &g->ev, &writes, err, err_len);
    g->writes += writes;
    if (r == 0 || r == -ENOENT) {
        g->saved = false;
        forget_taken(g);
        memset(g->retry_after_ns, 0, sizeof(g->retry_after_ns));
        return 0;
    }
    return r;
}

/* ---- lifecycle ---- */

static int copy_param(char *dst, size_t cap, const char *src, const char *def)
{
    const char *v = src && *src ? src : def;
    if (strlen(v) >= cap)
        return -ENAMETOOLONG;
    strcpy(dst, v);
    return 0;
}

int gov_governor_new(const struct gov_governor_params *p, struct gov_governor **ret, char *err,
                     size_t err_len)
{
    char msg[512] = "";
    int r;
    if (!p || !ret)
        return -EINVAL;
    *ret = NULL;
    struct gov_governor *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    gov_events_init(&g->ev);
    if (copy_param(g->root, sizeof(g->root), p->sysfs_root, "/") ||
        copy_param(g->saved_path, sizeof(g->saved_path), p->saved_path, GOV_SAVED_DEFAULT_PATH)) {
        cmn_set_err(err, err_len, "sysfs_root or saved_path too long");
        r = -ENAMETOOLONG;
        goto fail;
    }
    if (p->sysio) {
        g->sysio = *p->sysio;
        g->has_sysio = true;
    }
    struct gov_backend_params bp = {.sysfs_root = g->root, .impl = p->backend, .sysio = p->sysio};
    if ((r = gov_backend_open(&bp, &g->b, err, err_len)))
        goto fail;
    gov_backend_take_quirks(g->b, &g->ev);
    struct gov_sensors_params sp = {.root = g->root};
    if ((r = gov_sensors_open(&sp, &g->s, err, err_len)))
        goto fail;

    g->monitor_only = p->monitor_only;
    g->adopt_saved = p->adopt_saved;
    if (p->monitor_only) {
        snprintf(g->monitor_reason, sizeof(g->monitor_reason), "monitor_only requested");
    } else if (!gov_backend_writable(g->b, msg, sizeof(msg))) {
        g->monitor_only = true;
        snprintf(g->monitor_reason, sizeof(g->monitor_reason), "monitor-only mode: %.200s", msg);
        gov_events_push(&g->ev, GOV_EVENT_MONITOR_ONLY, -EACCES, "%s", g->monitor_reason);
    }

    size_t nconf = 0;
    gov_conflicts_detect(g->root, g->conf, GOV_STATUS_MAX_CONFLICTS, &nconf);
    g->nconf = (unsigned)nconf;
    for (unsigned k = 0; k < g->nconf; k++)
        gov_events_push(&g->ev, GOV_EVENT_CONFLICT, 0, "%s (pid %d) runs: %s", g->conf[k].comm,
                        g->conf[k].pid, g->conf[k].why);

    if (!g->monitor_only && !p->skip_crash_restore) {
        if ((r = crash_restore(g, err, err_len)))
            goto fail;
    } else if (saved_file_exists(g)) {
        g->saved = !g->monitor_only;
    }
    if ((r = gov_backend_refresh(g->b, err, err_len)))
        goto fail;

    if ((r = build_clusters(g, err, err_len)))
        goto fail;
    map_zones(g);
    if (p->calibration_path && *p->calibration_path) {
        g->cal = calloc(1, sizeof(*g->cal));
        if (!g->cal) {
            r = -ENOMEM;
            goto fail;
        }
        r = gov_calibration_load(p->calibration_path, g->cal, msg, sizeof(msg));
        if (r == -ENOENT) {
            free(g->cal);
            g->cal = NULL;
        } else if (r) {
            cmn_set_err(err, err_len, "%s", msg);
            goto fail;
        }
    }
    if ((r = gov_controller_new(p->tunables.policy, &p->tunables, g->ci, g->ncl, g->cal, &g->ctl,
                                err, err_len)))
        goto fail;
    *ret = g;
    return 0;
fail:
    gov_governor_free(g);
    return r;
}

void gov_governor_free(struct gov_governor *g)
{
    if (!g)
        return;
    gov_controller_free(g->ctl);
    free(g->cal);
    gov_sensors_free(g->s);
    gov_backend_free(g->b);
    free(g);
}

/* ---- the tick ---- */

static int note_write(struct gov_governor *g, int r, int *first)
{
    g->writes++;
    if (r) {
        g->write_errors++;
        if (!*first)
            *first = r;
    }
    return r;
}

static int ensure_saved(struct gov_governor *g)
{
    char msg[512];
    if (g->saved)
        return 0;
    int r = gov_governor_save_originals(g, msg, sizeof(msg));
    if (r) {
        /* Without a way back we must not touch anything. */
        g->monitor_only = true;
        snprintf(g->monitor_reason, sizeof(g->monitor_reason), "monitor-only mode: %.200s", msg);
        gov_events_push(&g->ev, GOV_EVENT_MONITOR_ONLY, r, "%s", g->monitor_reason);
    }
    return r;
}

static void apply_policy(struct gov_governor *g, size_t i, const struct gov_cluster_info *c,
                         const struct gov_cluster_target *t, int *first)
{
    struct gov_backend *b = g->b;
    const struct gov_hw_policy *p = gov_backend_policy(b, i);
    if (c->exact_freq) {
        if (!g->taken[i] || strcmp(p->governor, "userspace") != 0) {
            /* Open the limits so scaling_setspeed is not clamped, then take the policy. */
            if (p->scaling_min_khz != p->cpuinfo_min_khz ||
                p->scaling_max_khz != p->cpuinfo_max_khz)
                note_write(
                    g, gov_backend_set_limits(b, i, p->cpuinfo_min_khz, p->cpuinfo_max_khz, &g->ev),
                    first);
            if (strcmp(p->governor, "userspace") != 0)
                note_write(g, gov_backend_set_governor(b, i, "userspace", &g->ev), first);
            g->taken[i] = true;
        }
        uint32_t khz = gov_hw_policy_nearest_khz(p, t->khz);
        if (p->setspeed_khz != khz)
            note_write(g, gov_backend_set_speed(b, i, khz, &g->ev), first);
        return;
    }
    if (!g->taken[i]) {
        /* A setpolicy driver under "performance" pins the floor to the ceiling; "powersave" lets
         * the hardware move inside our limits. */
        if (p->nfreqs == 0 && strcmp(p->governor, "performance") == 0 &&
            gov_hw_policy_has_governor(p, "powersave"))
            note_write(g, gov_backend_set_governor(b, i, "powersave", &g->ev), first);
        g->taken[i] = true;
    }
    uint32_t max = t->khz, min = t->floor_khz ? t->floor_khz : p->cpuinfo_min_khz;
    if (max < p->cpuinfo_min_khz)
        max = p->cpuinfo_min_khz;
    if (max > p->cpuinfo_max_khz)
        max = p->cpuinfo_max_khz;
    if (min < p->cpuinfo_min_khz)
        min = p->cpuinfo_min_khz;
    if (min > max)
        min = max;
    uint32_t want_min = p->scaling_min_khz != min ? min : 0;
    uint32_t want_max = p->scaling_max_khz != max ? max : 0;
    if (want_min || want_max)
        note_write(g, gov_backend_set_limits(b, i, want_min, want_max, &g->ev), first);
}

/* The memory controller's limits the targets ask for: min = max at the step nearest mem_frac
 * of its range, or the originals back when the policy leaves it. 0 when nothing is to change. */
static int mem_wanted(const struct gov_governor *g, const struct gov_targets *t, size_t i,
                      uint64_t *ret_min, uint64_t *ret_max)
{
    const struct gov_hw_devfreq *d = gov_backend_devfreq(g->b, i);
    uint64_t lo, hi;
    if (!isfinite(t->mem_frac)) {
        if (!g->mem_taken[i])
            return 0;
        lo = g->mem_orig_min[i];
        hi = g->mem_orig_max[i];
    } else {
        double want = (double)d->freqs_hz[0] +
                      t->mem_frac * (double)(d->freqs_hz[d->nfreqs - 1] - d->freqs_hz[0]);
        uint64_t best = d->freqs_hz[0];
        for (unsigned k = 0; k < d->nfreqs; k++) /* the lowest step at or above: no less */
            if ((double)d->freqs_hz[k] >= want - 1.0) {
                best = d->freqs_hz[k];
                break;
            }
        lo = hi = best;
    }
    *ret_min = lo;
    *ret_max = hi;
    return lo != d->min_hz || hi != d->max_hz;
}

static void apply_memory(struct gov_governor *g, const struct gov_targets *t, uint64_t now_ns,
                         int *first)
{
    for (size_t i = 0; i < gov_backend_devfreq_count(g->b); i++) {
        const struct gov_hw_devfreq *d = gov_backend_devfreq(g->b, i);
        uint64_t lo, hi;
        if (now_ns < g->mem_retry_after_ns[i])
            continue;
        if (!mem_wanted(g, t, i, &lo, &hi)) {
            if (!isfinite(t->mem_frac))
                g->mem_taken[i] = false; /* the originals are back */
            continue;
        }
        if (!g->mem_taken[i]) {
            g->mem_orig_min[i] = d->min_hz;
            g->mem_orig_max[i] = d->max_hz;
            g->mem_taken[i] = true;
        }
        int r = note_write(g,
                           gov_backend_set_devfreq_limits(g->b, i, lo != d->min_hz ? lo : 0,
                                                          hi != d->max_hz ? hi : 0, &g->ev),
                           first);
        g->mem_retry_after_ns[i] = r ? now_ns + GOV_RETRY_AFTER_FAILURE_NS : 0;
        if (r == 0 && !isfinite(t->mem_frac))
            g->mem_taken[i] = false;
    }
}

/* The EPP string policy i should get (NULL: nothing to write). Only choices the driver lists are
 * written; elsewhere the lever is not available and is skipped. */
static const char *epp_wanted(const struct gov_governor *g, const struct gov_targets *t, size_t i)
{
    const struct gov_hw_policy *p = gov_backend_policy(g->b, i);
    if (!p->epp[0])
        return NULL;
    const char *want = gov_epp_name(t->epp);
    if (!want)
        want = g->epp_taken[i] ? g->epp_orig[i] : NULL;
    if (!want || strcmp(p->epp, want) == 0)
        return NULL;
    for (unsigned k = 0; k < p->nepp; k++)
        if (strcmp(p->epp_choices[k], want) == 0)
            return want;
    return want == g->epp_orig[i] ? want : NULL;
}

static void apply_epp(struct gov_governor *g, const struct gov_targets *t, uint64_t now_ns,
                      int *first)
{
    for (size_t i = 0; i < gov_backend_policy_count(g->b); i++) {
        if (now_ns < g->retry_after_ns[i])
            continue;
        const char *want = epp_wanted(g, t, i);
        if (!want) {
            if (t->epp == GOV_EPP_LEAVE)
                g->epp_taken[i] = false;
            continue;
        }
        const struct gov_hw_policy *p = gov_backend_policy(g->b, i);
        bool give_back = t->epp == GOV_EPP_LEAVE;
        if (!g->epp_taken[i]) {
            snprintf(g->epp_orig[i], sizeof(g->epp_orig[i]), "%s", p->epp);
            g->epp_taken[i] = true;
        }
        char value[GOV_HW_NAME_LEN];
        snprintf(value, sizeof(value), "%s", want);
        int r = note_write(g, gov_backend_set_epp(g->b, i, value, &g->ev), first);
        if (r)
            g->retry_after_ns[i] = now_ns + GOV_RETRY_AFTER_FAILURE_NS;
        else if (give_back)
            g->epp_taken[i] = false;
    }
}

static bool levers_need(const struct gov_governor *g, const struct gov_targets *t)
{
    uint64_t lo, hi;
    for (size_t i = 0; i < gov_backend_devfreq_count(g->b); i++)
        if (mem_wanted(g, t, i, &lo, &hi))
            return true;
    for (size_t i = 0; i < gov_backend_policy_count(g->b); i++)
        if (epp_wanted(g, t, i))
            return true;
    return false;
}

static int current_boost(const struct gov_backend *b)
{
    const struct gov_hw_global *gl = gov_backend_global(b);
    if (gl->boost >= 0)
        return gl->boost;
    if (gl->no_turbo >= 0)
        return !gl->no_turbo;
    for (size_t i = 0; i < gov_backend_policy_count(b); i++)
        if (gov_backend_policy(b, i)->boost >= 0)
            return gov_backend_policy(b, i)->boost;
    return -1;
}

int gov_governor_tick(struct gov_governor *g, uint64_t now_ns, enum gov_phase phase, double power_w,
                      double tokens_per_s, struct gov_tick_result *ret)
{
    char msg[512] = "";
    int first = 0, r;
    if (!g)
        return -EINVAL;
    gov_sensors_read(g->s, now_ns, &g->rd, &g->ev);
    g->have_reading = true;
    bool fault = g->rd.fault;
    char fault_detail[256];
    snprintf(fault_detail, sizeof(fault_detail), "%s", g->rd.fault_detail);
    r = gov_backend_refresh(g->b, msg, sizeof(msg));
    gov_backend_take_quirks(g->b, &g->ev);
    if (r) {
        if (!fault)
            snprintf(fault_detail, sizeof(fault_detail), "%.250s", msg);
        fault = true;
    }

    if (!g->ticks || phase != g->phase)
        g->phase_since_ns = now_ns;
    g->phase = phase;
    g->power_w = power_w;

    struct gov_inputs in;
    gov_inputs_init(&in, now_ns);
    for (unsigned c = 0; c < g->rd.ncpus && c < GOV_MAX_CPUS; c++)
        in.util[c] = g->rd.util[c] >= 0.0f ? (double)g->rd.util[c] : NAN;
    cluster_temps(g);
    for (unsigned k = 0; k < g->ncl; k++) {
        in.temp_c[k] = g->cl_temp_c[k];
        in.cur_khz[k] = gov_backend_policy(g->b, g->mem[k][0])->cur_khz;
    }
    in.passive_trip_c = g->rd.passive_trip_c;
    in.package_power_w = power_w;
    in.phase = phase;
    in.phase_ns = now_ns - g->phase_since_ns;
    in.tokens_per_s = tokens_per_s;
    in.sensor_fault = fault;
    in.queued = g->queued;

    struct gov_targets t;
    r = gov_controller_step(g->ctl, &in, &t);
    if (r)
        return r;

    bool safe = fault;
    for (unsigned k = 0; k < t.n_clusters; k++)
        safe |= (t.c[k].reasons & GOV_REASON_SENSOR_LOSS) != 0;
    if (safe) {
        /* The controller already chose floor and no boost; say so whatever its reason. */
        t.boost = false;
        for (unsigned k = 0; k < t.n_clusters; k++)
            t.c[k].boost = false;
    }
    if (safe != g->safe) {
        if (safe) {
            snprintf(g->safe_reason, sizeof(g->safe_reason), "%s",
                     fault_detail[0] ? fault_detail : "a temperature reading was lost");
            gov_events_push(&g->ev, GOV_EVENT_SAFE_STATE, -EIO,
                            "safe state (minimum frequency, boost off): %s", g->safe_reason);
        } else {
            gov_events_push(&g->ev, GOV_EVENT_SAFE_STATE, 0, "left the safe state");
            g->safe_reason[0] = '\0';
        }
        g->safe = safe;
    }

    if (g->saved && !saved_file_exists(g)) {
        /* Someone restored behind our back (`ember governor restore` while we run): what is on
         * the hardware now are the originals again, so take them afresh before the next write. */
        g->saved = false;
        forget_taken(g);
        gov_events_push(&g->ev, GOV_EVENT_RESTORED, 0,
                        "%s was removed while running; the settings found now are saved as the "
                        "originals before the next write",
                        g->saved_path);
    }
    if (!g->monitor_only) {
        bool need = false;
        int hw_boost = current_boost(g->b);
        if (hw_boost >= 0 && hw_boost != (int)t.boost)
            need = true;
        for (unsigned k = 0; k < t.n_clusters && !need; k++)
            for (unsigned m = 0; m < g->nmem[k] && !need; m++) {
                const struct gov_hw_policy *p = gov_backend_policy(g->b, g->mem[k][m]);
                need = !g->taken[g->mem[k][m]] ||
                       (g->ci[k].exact_freq
                            ? p->setspeed_khz != gov_hw_policy_nearest_khz(p, t.c[k].khz)
                            : p->scaling_max_khz != t.c[k].khz);
            }
        need = need || levers_need(g, &t);
        if (need && ensure_saved(g) == 0) {
            /* Boost off before frequencies drop, on after they rise, so the package never
             * runs boosted clocks under limits meant for unboosted ones. */
            if (hw_boost >= 0 && !t.boost && hw_boost)
                note_write(g, gov_backend_set_boost(g->b, 0, &g->ev), &first);
            for (unsigned k = 0; k < t.n_clusters; k++)
                for (unsigned m = 0; m < g->nmem[k]; m++) {
                    size_t i = g->mem[k][m];
                    if (now_ns < g->retry_after_ns[i])
                        continue;
                    uint64_t errs = g->write_errors;
                    apply_policy(g, i, &g->ci[k], &t.c[k], &first);
                    g->retry_after_ns[i] =
                        g->write_errors != errs ? now_ns + GOV_RETRY_AFTER_FAILURE_NS : 0;
                }
            if (hw_boost >= 0 && t.boost && !hw_boost)
                note_write(g, gov_backend_set_boost(g->b, 1, &g->ev), &first);
            /* after the governors: intel_pstate refuses most EPP values under "performance" */
            apply_epp(g, &t, now_ns, &first);
            apply_memory(g, &t, now_ns, &first);
        }
    }

    if (ret) {
        memset(ret, 0, sizeof(*ret));
        ret->boost = t.boost;
        ret->safe_state = safe;
        ret->monitor_only = g->monitor_only;
        ret->apply_error = first;
        ret->cpu_temp_c = g->rd.cpu_temp_c;
        ret->power_w = power_w;
        ret->n_clusters = t.n_clusters;
        ret->engine_threads = t.engine_threads;
        ret->engine_cpus = t.engine_cpus;
        for (unsigned k = 0; k < t.n_clusters; k++) {
            ret->c[k].khz = t.c[k].khz;
            ret->c[k].prev_khz = g->have_targets ? g->last.c[k].khz : 0;
            ret->c[k].cur_khz = in.cur_khz[k];
            ret->c[k].temp_c = in.temp_c[k];
            ret->c[k].reasons = t.c[k].reasons;
            ret->c[k].changed = !g->have_targets || t.c[k].khz != g->last.c[k].khz;
            ret->changed |= ret->c[k].changed;
            ret->reasons |= t.c[k].reasons;
        }
        if (g->have_targets && g->last.boost != t.boost)
            ret->changed = true;
        /* the engine's threads are the daemon's to apply (between tokens) */
        ret->engine_threads = t.engine_threads;
        ret->engine_cpus = t.engine_cpus;
    }
    g->last = t;
    g->have_targets = true;
    g->ticks++;
    return first;
}

int gov_governor_pin(struct gov_governor *g, const uint32_t *khz, unsigned n, bool boost)
{
    int first = 0;
    if (!g || !khz || n != g->ncl)
        return -EINVAL;
    if (g->monitor_only)
        return -EPERM;
    int r = gov_backend_refresh(g->b, NULL, 0);
    if (r)
        return r;
    if ((r = ensure_saved(g)))
        return r;
    int hw_boost = current_boost(g->b);
    if (hw_boost > 0 && !boost)
        note_write(g, gov_backend_set_boost(g->b, 0, &g->ev), &first);
    for (unsigned k = 0; k < n; k++) {
        const struct gov_cluster_info *c = &g->ci[k];
        struct gov_cluster_target t = {0};
        t.khz = gov_cluster_quantize(c, khz[k], false, c->cpuinfo_min_khz, c->cpuinfo_max_khz);
        t.floor_khz = t.khz; /* limits-only drivers: min = max pins the frequency */
        for (unsigned m = 0; m < g->nmem[k]; m++)
            apply_policy(g, g->mem[k][m], c, &t, &first);
    }
    if (hw_boost == 0 && boost)
        note_write(g, gov_backend_set_boost(g->b, 1, &g->ev), &first);
    return first;
}

/* ---- live changes ---- */

void gov_governor_set_queued(struct gov_governor *g, unsigned queued)
{
    if (g)
        g->queued = queued;
}

int gov_governor_set_policy(struct gov_governor *g, const char *name, char *err, size_t err_len)
{
    if (!g || !name)
        return -EINVAL;
    char old[GOV_NAME_MAX];
    snprintf(old, sizeof(old), "%s", gov_controller_policy(g->ctl));
    int r = gov_controller_set_policy(g->ctl, name, err, err_len);
    if (r == 0 && strcmp(old, name) != 0)
        gov_events_push(&g->ev, GOV_EVENT_POLICY_CHANGED, 0, "policy %s -> %s", old, name);
    return r;
}

int gov_governor_set_tunables(struct gov_governor *g, const struct gov_tunables *t, char *err,
                              size_t err_len)
{
    if (!g || !t)
        return -EINVAL;
    return gov_controller_set_tunables(g->ctl, t, err, err_len);
}

int gov_governor_load_calibration(struct gov_governor *g, const char *path, char *err,
                                  size_t err_len)
{
    if (!g)
        return -EINVAL;
    struct gov_calibration *cal = NULL;
    if (path && *path) {
        cal = calloc(1, sizeof(*cal));
        if (!cal)
            return -ENOMEM;
        int r = gov_calibration_load(path, cal, err, err_len);
        if (r) {
            free(cal);
            return r;
        }
    }
    int r = gov_controller_set_calibration(g->ctl, cal);
    if (r) {
        free(cal);
        return r;
    }
    free(g->cal);
    g->cal = cal;
    return 0;
}

struct gov_events *gov_governor_events(struct gov_governor *g)
{
    return g ? &g->ev : NULL;
}

struct gov_backend *gov_governor_backend(struct gov_governor *g)
{
    return g ? g->b : NULL;
}

const struct gov_controller *gov_governor_controller(const struct gov_governor *g)
{
    return g ? g->ctl : NULL;
}

/* ---- status ---- */

static void format_cpus(const struct gov_cluster_info *c, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (unsigned k = 0; k < c->n_cpus;) {
        unsigned lo = c->cpus[k], hi = lo;
        while (k + 1 < c->n_cpus && c->cpus[k + 1] == hi + 1)
            hi = c->cpus[++k];
        k++;
        int n = lo == hi ? snprintf(buf + len, cap - len, "%s%u", len ? "," : "", lo)
                         : snprintf(buf + len, cap - len, "%s%u-%u", len ? "," : "", lo, hi);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

void gov_governor_status(const struct gov_governor *g, struct gov_status *st)
{
    if (!st)
        return;
    memset(st, 0, sizeof(*st));
    st->cpu_temp_c = st->passive_trip_c = st->critical_trip_c = NAN;
    st->thermal_target_c = st->power_cap_w = st->power_w = NAN;
    st->memory_target_frac = NAN;
    st->boost = -1;
    if (!g)
        return;
    const struct gov_tunables *t = gov_controller_tunables(g->ctl);
    snprintf(st->policy, sizeof(st->policy), "%s", gov_controller_policy(g->ctl));
    snprintf(st->backend, sizeof(st->backend), "%s",
             gov_backend_impl_name(gov_backend_impl_used(g->b)));
    snprintf(st->sysfs_root, sizeof(st->sysfs_root), "%s", g->root);
    snprintf(st->pstate_status, sizeof(st->pstate_status), "%s",
             gov_pstate_status_name(gov_backend_global(g->b)->status));
    st->monitor_only = g->monitor_only;
    snprintf(st->monitor_reason, sizeof(st->monitor_reason), "%s", g->monitor_reason);
    st->safe_state = g->safe;
    snprintf(st->safe_reason, sizeof(st->safe_reason), "%s", g->safe_reason);
    st->originals_saved = g->saved;
    snprintf(st->saved_path, sizeof(st->saved_path), "%s", g->saved_path);
    st->boost = current_boost(g->b);
    if (g->have_reading) {
        st->cpu_temp_c = g->rd.cpu_temp_c;
        st->passive_trip_c = g->rd.passive_trip_c;
        st->critical_trip_c = g->rd.critical_trip_c;
    }
    st->thermal_target_c = gov_controller_thermal_target_c(g->ctl, st->passive_trip_c);
    st->power_cap_w = t && t->power_cap_w > 0 ? t->power_cap_w : NAN;
    st->power_w = g->power_w;
    st->phase = g->phase;
    st->ticks = g->ticks;
    st->writes = g->writes;
    st->write_errors = g->write_errors;
    st->n_clusters = g->ncl;
    for (unsigned k = 0; k < g->ncl; k++) {
        struct gov_status_cluster *c = &st->c[k];
        const struct gov_hw_policy *p = gov_backend_policy(g->b, g->mem[k][0]);
        snprintf(c->name, sizeof(c->name), "%s", g->ci[k].name);
        c->n_policies = g->nmem[k];
        format_cpus(&g->ci[k], c->cpus, sizeof(c->cpus));
        for (unsigned j = 0; j < g->ci[k].n_cpus; j++)
            if (g->ci[k].cpus[j] < GOV_MAX_CPUS)
                c->cpu_mask[g->ci[k].cpus[j] / 64] |= 1ULL << (g->ci[k].cpus[j] % 64);
        snprintf(c->driver, sizeof(c->driver), "%s", p->driver);
        snprintf(c->hw_governor, sizeof(c->hw_governor), "%s", p->governor);
        c->cpuinfo_min_khz = p->cpuinfo_min_khz;
        c->cpuinfo_max_khz = p->cpuinfo_max_khz;
        c->scaling_min_khz = p->scaling_min_khz;
        c->scaling_max_khz = p->scaling_max_khz;
        c->cur_khz = p->cur_khz;
        c->exact_freq = g->ci[k].exact_freq;
        c->target_khz = g->have_targets ? g->last.c[k].khz : 0;
        c->reasons = g->have_targets ? g->last.c[k].reasons : 0;
        double sum = 0;
        unsigned n = 0;
        for (unsigned j = 0; g->have_reading && j < g->ci[k].n_cpus; j++) {
            unsigned cpu = g->ci[k].cpus[j];
            if (cpu < g->rd.ncpus && g->rd.util[cpu] >= 0.0f) {
                sum += g->rd.util[cpu];
                n++;
            }
        }
        c->util = n ? sum / n : NAN;
        c->temp_c = g->have_reading ? g->cl_temp_c[k] : NAN;
        snprintf(c->epp, sizeof(c->epp), "%s", p->epp);
    }
    st->memory_target_frac = g->have_targets ? g->last.mem_frac : NAN;
    const char *epp = g->have_targets ? gov_epp_name(g->last.epp) : NULL;
    snprintf(st->epp_target, sizeof(st->epp_target), "%s", epp ? epp : "");
    for (size_t i = 0; i < gov_backend_devfreq_count(g->b); i++) {
        const struct gov_hw_devfreq *d = gov_backend_devfreq(g->b, i);
        struct gov_status_memory *m = &st->memory[st->n_memory++];
        snprintf(m->name, sizeof(m->name), "%s", d->name);
        snprintf(m->governor, sizeof(m->governor), "%s", d->governor);
        m->min_hz = d->min_hz;
        m->max_hz = d->max_hz;
        m->cur_hz = d->cur_hz;
    }
    for (size_t i = 0; i < gov_sensors_zone_count(g->s) && st->n_zones < GOV_STATUS_MAX_ZONES;
         i++) {
        const struct gov_thermal_zone *z = gov_sensors_zone(g->s, i);
        struct gov_status_zone *o = &st->zones[st->n_zones++];
        snprintf(o->name, sizeof(o->name), "%s", z->name);
        snprintf(o->type, sizeof(o->type), "%s", z->type);
        o->valid = z->valid;
        o->temp_c = z->valid ? z->temp_mc / 1000.0 : NAN;
        o->passive_trip_c = NAN;
        for (unsigned k = 0; k < z->ntrips; k++)
            if (z->trips[k].type == GOV_TRIP_PASSIVE &&
                !(z->trips[k].temp_mc / 1000.0 >= o->passive_trip_c))
                o->passive_trip_c = z->trips[k].temp_mc / 1000.0;
    }
    st->n_conflicts = g->nconf;
    memcpy(st->conflicts, g->conf, sizeof(st->conflicts));
}
