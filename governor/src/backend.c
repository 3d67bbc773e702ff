/* The backend's public surface: opening (choose libcpupower or direct sysfs, discover policies,
 * read the vendor P-state and boost knobs), the getters, and every write with its read-back.
 * The cpufreq-policy I/O itself lives in backend_sysfs.c and backend_cpupower.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_impl.h"
#include "common/fileio.h"

void backend_set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static int root_is_slash(const char *root)
{
    if (!root || !*root)
        return 1;
    for (const char *p = root; *p; p++)
        if (*p != '/')
            return 0;
    return 1;
}

int backend_write(const struct gov_backend *b, const char *path, const char *value)
{
    if (b->has_sysio)
        return b->sysio.write(b->sysio.ctx, path, value);
    return cmn_write_string(path, value);
}

int backend_policy_file(const struct gov_backend *b, size_t i, const char *file, char *buf,
                        size_t cap)
{
    return cmn_path(buf, cap, b->root, "sys/devices/system/cpu/cpufreq/%s/%s", b->pol[i].name,
                    file);
}

int gov_backend_policy_path(const struct gov_backend *b, size_t i, const char *file, char *buf,
                            size_t cap)
{
    if (!b || i >= b->npol || !file)
        return -EINVAL;
    return backend_policy_file(b, i, file, buf, cap);
}

static int global_file(const struct gov_backend *b, const char *rel, char *buf, size_t cap)
{
    return cmn_path(buf, cap, b->root, "sys/devices/system/cpu/%s", rel);
}

int backend_read_khz_file(const char *path, uint32_t *ret, char *err, size_t err_len)
{
    char val[64];
    int r = cmn_read_string(path, val, sizeof(val));
    if (r == -EFBIG) {
        backend_set_err(err, err_len, "%s: value too long for a frequency", path);
        return -EINVAL;
    }
    if (r)
        return r;
    r = gov_parse_khz(val, ret);
    if (r) {
        backend_set_err(err, err_len, "%s: '%s' is not a frequency in kHz", path, val);
        return -EINVAL;
    }
    return 0;
}

/* Reads a 0/1 flag file: 0 with *ret; -ENOENT absent; -EINVAL garbage. */
static int read_flag(const char *path, int *ret, char *err, size_t err_len)
{
    int64_t v;
    char val[64];
    int r = cmn_read_string(path, val, sizeof(val));
    if (r)
        return r == -EFBIG ? -EINVAL : r;
    if (cmn_parse_i64(val, &v) || (v != 0 && v != 1)) {
        backend_set_err(err, err_len, "%s: '%s' is not 0 or 1", path, val);
        return -EINVAL;
    }
    *ret = (int)v;
    return 0;
}

static int read_pct(const char *path, int *ret, char *err, size_t err_len)
{
    int64_t v;
    char val[64];
    int r = cmn_read_string(path, val, sizeof(val));
    if (r)
        return r == -EFBIG ? -EINVAL : r;
    if (cmn_parse_i64(val, &v) || v < 0 || v > 100) {
        backend_set_err(err, err_len, "%s: '%s' is not a percentage", path, val);
        return -EINVAL;
    }
    *ret = (int)v;
    return 0;
}

int backend_read_policy_extras(struct gov_backend *b, size_t i, char *err, size_t err_len)
{
    struct gov_hw_policy *p = &b->pol[i];
    char path[PATH_MAX], val[512];
    int r;

    r = backend_policy_file(b, i, "scaling_setspeed", path, sizeof(path));
    if (r)
        return r;
    p->has_setspeed = access(path, F_OK) == 0;
    p->setspeed_khz = 0;
    if (p->has_setspeed && cmn_read_string(path, val, sizeof(val)) == 0)
        (void)gov_parse_khz(val, &p->setspeed_khz); /* "<unsupported>" leaves 0 */

    r = backend_policy_file(b, i, "bios_limit", path, sizeof(path));
    if (r)
        return r;
    p->bios_limit_khz = 0;
    (void)backend_read_khz_file(path, &p->bios_limit_khz, NULL, 0);

    r = backend_policy_file(b, i, "energy_performance_preference", path, sizeof(path));
    if (r)
        return r;
    p->epp[0] = '\0';
    r = cmn_read_string(path, val, sizeof(val));
    if (r == 0) {
        if (strlen(val) >= sizeof(p->epp) || strchr(val, ' ')) {
            backend_set_err(err, err_len, "%s: '%s' is not an EPP name", path, val);
            return -EINVAL;
        }
        strcpy(p->epp, val);
    }
    r = backend_policy_file(b, i, "energy_performance_available_preferences", path, sizeof(path));
    if (r)
        return r;
    p->nepp = 0;
    if (cmn_read_string(path, val, sizeof(val)) == 0) {
        size_t n;
        if (gov_parse_word_list(val, p->epp_choices, GOV_HW_MAX_EPP, &n)) {
            backend_set_err(err, err_len, "%s: not a list of EPP names", path);
            return -EINVAL;
        }
        p->nepp = (unsigned)n;
    }

    r = backend_policy_file(b, i, "boost", path, sizeof(path));
    if (r)
        return r;
    p->boost = -1;
    r = read_flag(path, &p->boost, err, err_len);
    if (r && r != -ENOENT)
        return r;
    return 0;
}

static int read_global(struct gov_backend *b, char *err, size_t err_len)
{
    struct gov_hw_global *g = &b->global;
    char path[PATH_MAX], val[64];
    int r;

    g->pstate = GOV_PSTATE_NONE;
    g->status = GOV_PSTATE_STATUS_NONE;
    g->boost = g->no_turbo = g->min_perf_pct = g->max_perf_pct = -1;

    const char *dir = NULL;
    if (global_file(b, "intel_pstate", path, sizeof(path)) == 0 && access(path, F_OK) == 0) {
        g->pstate = GOV_PSTATE_INTEL;
        dir = "intel_pstate";
    } else if (global_file(b, "amd_pstate", path, sizeof(path)) == 0 && access(path, F_OK) == 0) {
        g->pstate = GOV_PSTATE_AMD;
        dir = "amd_pstate";
    }
    if (dir) {
        char rel[64];
        snprintf(rel, sizeof(rel), "%s/status", dir);
        if ((r = global_file(b, rel, path, sizeof(path))))
            return r;
        if (cmn_read_string(path, val, sizeof(val)) == 0) {
            static const struct {
                const char *name;
                enum gov_pstate_status status;
            } names[] = {{"active", GOV_PSTATE_STATUS_ACTIVE},
                         {"passive", GOV_PSTATE_STATUS_PASSIVE},
                         {"guided", GOV_PSTATE_STATUS_GUIDED},
                         {"off", GOV_PSTATE_STATUS_OFF},
                         {"disable", GOV_PSTATE_STATUS_OFF}};
            size_t k;
            for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
                if (strcmp(val, names[k].name) == 0)
                    break;
            if (k == sizeof(names) / sizeof(names[0])) {
                backend_set_err(err, err_len, "%s: unknown status '%s'", path, val);
                return -EINVAL;
            }
            g->status = names[k].status;
        }
    }
    if (g->pstate == GOV_PSTATE_INTEL) {
        if ((r = global_file(b, "intel_pstate/no_turbo", path, sizeof(path))))
            return r;
        r = read_flag(path, &g->no_turbo, err, err_len);
        if (r && r != -ENOENT)
            return r;
        if ((r = global_file(b, "intel_pstate/min_perf_pct", path, sizeof(path))))
            return r;
        r = read_pct(path, &g->min_perf_pct, err, err_len);
        if (r && r != -ENOENT)
            return r;
        if ((r = global_file(b, "intel_pstate/max_perf_pct", path, sizeof(path))))
            return r;
        r = read_pct(path, &g->max_perf_pct, err, err_len);
        if (r && r != -ENOENT)
            return r;
    }
    if ((r = global_file(b, "cpufreq/boost", path, sizeof(path))))
        return r;
    r = read_flag(path, &g->boost, err, err_len);
    if (r && r != -ENOENT)
        return r;
    return 0;
}

int gov_backend_open(const struct gov_backend_params *params, struct gov_backend **ret, char *err,
                     size_t err_len)
{
    struct gov_backend *b = NULL;
    int r;
    if (!params || !ret)
        return -EINVAL;
    *ret = NULL;
    const char *root = params->sysfs_root && *params->sysfs_root ? params->sysfs_root : "/";
    if (strlen(root) >= sizeof(b->root)) {
        backend_set_err(err, err_len, "sysfs_root too long");
        return -ENAMETOOLONG;
    }
    enum gov_backend_impl impl = params->impl;
    if (impl == GOV_BACKEND_AUTO)
        impl = root_is_slash(root) ? GOV_BACKEND_LIBCPUPOWER : GOV_BACKEND_SYSFS;
    if (impl == GOV_BACKEND_LIBCPUPOWER && !root_is_slash(root)) {
        backend_set_err(err, err_len,
                        "libcpupower always reads /sys/devices/system/cpu; it cannot use "
                        "sysfs_root '%s' (use the sysfs backend)",
                        root);
        return -EINVAL;
    }
    if (impl != GOV_BACKEND_SYSFS && impl != GOV_BACKEND_LIBCPUPOWER) {
        backend_set_err(err, err_len, "unknown backend %d", (int)impl);
        return -EINVAL;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    strcpy(b->root, root_is_slash(root) ? "/" : root);
    b->io = impl == GOV_BACKEND_SYSFS ? &gov_backend_io_sysfs : &gov_backend_io_cpupower;
    gov_events_init(&b->quirks);
    if (params->sysio) {
        b->sysio = *params->sysio;
        b->has_sysio = 1;
    }

    if ((r = b->io->discover(b, err, err_len)))
        goto fail;
    if (b->npol == 0) {
        backend_set_err(err, err_len, "%s: no cpufreq policies (no cpufreq driver loaded?)",
                        b->root);
        r = -ENOENT;
        goto fail;
    }
    for (size_t i = 0; i < b->npol; i++) {
        if ((r = b->io->read_state(b, i, err, err_len)))
            goto fail;
        if ((r = backend_read_policy_extras(b, i, err, err_len)))
            goto fail;
    }
    if ((r = read_global(b, err, err_len)))
        goto fail;
    backend_scan_devfreq(b);
    *ret = b;
    return 0;
fail:
    free(b);
    return r;
}

void gov_backend_free(struct gov_backend *b)
{
    free(b);
}

size_t gov_backend_take_quirks(struct gov_backend *b, struct gov_events *ev)
{
    size_t n = 0;
    struct gov_event e;
    if (!b)
        return 0;
    while (gov_events_pop(&b->quirks, &e)) {
        gov_events_push(ev, e.kind, e.code, "%s", e.detail);
        n++;
    }
    return n;
}

const char *gov_backend_root(const struct gov_backend *b)
{
    return b ? b->root : "/";
}

enum gov_backend_impl gov_backend_impl_used(const struct gov_backend *b)
{
    return b ? b->io->impl : GOV_BACKEND_AUTO;
}

const char *gov_backend_impl_name(enum gov_backend_impl impl)
{
    switch (impl) {
    case GOV_BACKEND_SYSFS:
        return "sysfs";
    case GOV_BACKEND_LIBCPUPOWER:
        return "libcpupower";
    default:
        return "auto";
    }
}

const char *gov_pstate_status_name(enum gov_pstate_status status)
{
    static const char *const names[] = {"none", "active", "passive", "guided", "off"};
    return (unsigned)status < sizeof(names) / sizeof(names[0]) ? names[status] : "none";
}

size_t gov_backend_policy_count(const struct gov_backend *b)
{
    return b ? b->npol : 0;
}

const struct gov_hw_policy *gov_backend_policy(const struct gov_backend *b, size_t i)
{
    return b && i < b->npol ? &b->pol[i] : NULL;
}

const struct gov_hw_global *gov_backend_global(const struct gov_backend *b)
{
    return b ? &b->global : NULL;
}

int gov_backend_refresh(struct gov_backend *b, char *err, size_t err_len)
{
    int r;
    if (!b)
        return -EINVAL;
    for (size_t i = 0; i < b->npol; i++) {
        if ((r = b->io->read_state(b, i, err, err_len)))
            return r;
        if ((r = backend_read_policy_extras(b, i, err, err_len)))
            return r;
    }
    backend_refresh_devfreq(b);
    return read_global(b, err, err_len);
}

int gov_backend_writable(const struct gov_backend *b, char *why, size_t why_len)
{
    char path[PATH_MAX];
    if (!b || b->npol == 0)
        return 0;
    if (b->has_sysio)
        return 1; /* the sysio's other side writes (the privileged helper); it says when not */
    /* The governor file is the knob every driver has; if it is not writable nothing is. */
    const char *probe = "scaling_governor";
    if (backend_policy_file(b, 0, probe, path, sizeof(path)))
        return 0;
    if (access(path, W_OK) != 0) {
        int e = errno;
        backend_set_err(why, why_len, "%s is not writable (%s)%s", path, strerror(e),
                        geteuid() != 0 ? "; run as root to control frequencies" : "");
        return 0;
    }
    return 1;
}

int gov_hw_policy_has_governor(const struct gov_hw_policy *p, const char *governor)
{
    if (!p || !governor)
        return 0;
    for (unsigned k = 0; k < p->ngovernors; k++)
        if (strcmp(p->governors[k], governor) == 0)
            return 1;
    return 0;
}

uint32_t gov_hw_policy_nearest_khz(const struct gov_hw_policy *p, uint32_t khz)
{
    if (!p || p->nfreqs == 0)
        return khz;
    uint32_t best = p->freqs_khz[0];
    uint64_t best_d = (uint64_t)(khz > best ? khz - best : best - khz);
    for (unsigned k = 1; k < p->nfreqs; k++) {
        uint32_t f = p->freqs_khz[k];
        uint64_t d = (uint64_t)(khz > f ? khz - f : f - khz);
        if (d < best_d) { /* ascending list: an equal distance keeps the lower */
            best = f;
            best_d = d;
        }
    }
    return best;
}

/* ---- writes ---- */

static int check_index(const struct gov_backend *b, size_t i)
{
    return b && i < b->npol ? 0 : -EINVAL;
}

static void event_write_failed(struct gov_events *ev, const char *what, const char *value, int r)
{
    gov_events_push(ev, GOV_EVENT_WRITE_FAILED, r, "%s: writing '%s' failed: %s", what, value,
                    strerror(-r));
}

static void event_mismatch(struct gov_events *ev, const char *what, const char *wrote,
                           const char *got)
{
    gov_events_push(ev, GOV_EVENT_WRITE_MISMATCH, -EIO, "%s: wrote '%s', read back '%s'", what,
                    wrote, got);
}

/* Writes a direct-sysfs file and reads it back as a string. */
int backend_write_verify(const struct gov_backend *b, const char *path, const char *value,
                         struct gov_events *ev)
{
    char got[256];
    int r = backend_write(b, path, value);
    if (r) {
        event_write_failed(ev, path, value, r);
        return r;
    }
    r = cmn_read_string(path, got, sizeof(got));
    if (r) {
        event_write_failed(ev, path, value, r);
        return r;
    }
    if (strcmp(got, value) != 0) {
        event_mismatch(ev, path, value, got);
        return -EIO;
    }
    return 0;
}

int gov_backend_set_governor(struct gov_backend *b, size_t i, const char *governor,
                             struct gov_events *ev)
{
    char path[PATH_MAX], err[256] = "";
    int r;
    if (check_index(b, i) || !governor || !*governor || strlen(governor) >= GOV_HW_NAME_LEN)
        return -EINVAL;
    struct gov_hw_policy *p = &b->pol[i];
    if (p->ngovernors && !gov_hw_policy_has_governor(p, governor))
        return -EINVAL;
    backend_policy_file(b, i, "scaling_governor", path, sizeof(path));
    r = b->io->write_governor(b, i, governor);
    if (r) {
        event_write_failed(ev, path, governor, r);
        return r;
    }
    r = b->io->read_state(b, i, err, sizeof(err));
    if (r) {
        gov_events_push(ev, GOV_EVENT_WRITE_FAILED, r, "%s: read-back failed: %s", path, err);
        return r;
    }
    if (strcmp(p->governor, governor) != 0) {
        event_mismatch(ev, path, governor, p->governor);
        return -EIO;
    }
    return 0;
}

static int write_one_limit(struct gov_backend *b, size_t i, int is_max, uint32_t khz,
                           struct gov_events *ev)
{
    char path[PATH_MAX], err[256] = "", wrote[16], got[16];
    struct gov_hw_policy *p = &b->pol[i];
    const char *file = is_max ? "scaling_max_freq" : "scaling_min_freq";
    backend_policy_file(b, i, file, path, sizeof(path));
    snprintf(wrote, sizeof(wrote), "%u", (unsigned)khz);
    int r = b->io->write_limit(b, i, is_max, khz);
    if (r) {
        event_write_failed(ev, path, wrote, r);
        return r;
    }
    r = b->io->read_state(b, i, err, sizeof(err));
    if (r) {
        gov_events_push(ev, GOV_EVENT_WRITE_FAILED, r, "%s: read-back failed: %s", path, err);
        return r;
    }
    uint32_t now = is_max ? p->scaling_max_khz : p->scaling_min_khz;
    if (now == 0) {
        gov_events_push(ev, GOV_EVENT_WRITE_FAILED, -ENODATA,
                        "%s: wrote '%s', but it cannot be read back", path, wrote);
        return -ENODATA;
    }
    if (now != khz) {
        snprintf(got, sizeof(got), "%u", (unsigned)now);
        event_mismatch(ev, path, wrote, got);
        return -EIO;
    }
    return 0;
}

int gov_backend_set_limits(struct gov_backend *b, size_t i, uint32_t min_khz, uint32_t max_khz,
                           struct gov_events *ev)
{
    if (check_index(b, i))
        return -EINVAL;
    struct gov_hw_policy *p = &b->pol[i];
    uint32_t lo = p->cpuinfo_min_khz, hi = p->cpuinfo_max_khz;
    if ((min_khz && (min_khz < lo || min_khz > hi)) || (max_khz && (max_khz < lo || max_khz > hi)))
        return -EINVAL;
    if (min_khz && max_khz && min_khz > max_khz)
        return -EINVAL;
    if ((min_khz && !max_khz && p->scaling_max_khz && min_khz > p->scaling_max_khz) ||
        (max_khz && !min_khz && max_khz < p->scaling_min_khz))
        return -EINVAL;
    /* A limit file the kernel does not offer was reported once at open; skip writes to it. */
    if (b->quirk_reported[i] & QUIRK_NO_MIN)
        min_khz = 0;
    if (b->quirk_reported[i] & QUIRK_NO_MAX)
        max_khz = 0;
    uint32_t cur_min = p->scaling_min_khz ? p->scaling_min_khz : lo;
    int r;
    /* The kernel clamps a min above the current max (and a max below the current min), so
     * write max first when it does not go below the current min, else min first. */
    if (max_khz && max_khz >= cur_min) {
        if ((r = write_one_limit(b, i, 1, max_khz, ev)))
            return r;
        if (min_khz && (r = write_one_limit(b, i, 0, min_khz, ev)))
            return r;
    } else {
        if (min_khz && (r = write_one_limit(b, i, 0, min_khz, ev)))
            return r;
        if (max_khz && (r = write_one_limit(b, i, 1, max_khz, ev)))
            return r;
    }
    return 0;
}

int gov_backend_set_speed(struct gov_backend *b, size_t i, uint32_t khz, struct gov_events *ev)
{
    char path[PATH_MAX], val[64], wrote[16];
    if (check_index(b, i))
        return -EINVAL;
    struct gov_hw_policy *p = &b->pol[i];
    if (!p->has_setspeed || (p->ngovernors && !gov_hw_policy_has_governor(p, "userspace")))
        return -EOPNOTSUPP;
    if (khz < p->cpuinfo_min_khz || khz > p->cpuinfo_max_khz)
        return -EINVAL;
    backend_policy_file(b, i, "scaling_setspeed", path, sizeof(path));
    snprintf(wrote, sizeof(wrote), "%u", (unsigned)khz);
    int r = b->io->write_speed(b, i, khz);
    if (r) {
        event_write_failed(ev, path, wrote, r);
        return r;
    }
    /* libcpupower has no reader for scaling_setspeed: read the file in both modes. */
    r = cmn_read_string(path, val, sizeof(val));
    if (r) {
        event_write_failed(ev, path, wrote, r);
        return r;
    }
    uint32_t got = 0;
    if (gov_parse_khz(val, &got) || got != khz) {
        event_mismatch(ev, path, wrote, val);
        return -EIO;
    }
    p->setspeed_khz = got;
    return 0;
}

static int epp_valid(const struct gov_hw_policy *p, const char *epp)
{
    if (!*epp || strlen(epp) >= GOV_HW_NAME_LEN)
        return 0;
    for (unsigned k = 0; k < p->nepp; k++)
        if (strcmp(p->epp_choices[k], epp) == 0)
            return 1;
    /* intel_pstate and amd-pstate also take a raw 0..255 EPP value. */
    int64_t v;
    return cmn_parse_i64(epp, &v) == 0 && v >= 0 && v <= 255;
}

int gov_backend_set_epp(struct gov_backend *b, size_t i, const char *epp, struct gov_events *ev)
{
    char path[PATH_MAX];
    if (check_index(b, i) || !epp)
        return -EINVAL;
    struct gov_hw_policy *p = &b->pol[i];
    if (!p->epp[0])
        return -EOPNOTSUPP;
    if (!epp_valid(p, epp))
        return -EINVAL;
    backend_policy_file(b, i, "energy_performance_preference", path, sizeof(path));
    int r = backend_write_verify(b, path, epp, ev);
    if (r == 0)
        snprintf(p->epp, sizeof(p->epp), "%s", epp);
    return r;
}

int gov_backend_set_policy_boost(struct gov_backend *b, size_t i, int on, struct gov_events *ev)
{
    char path[PATH_MAX];
    if (check_index(b, i))
        return -EINVAL;
    struct gov_hw_policy *p = &b->pol[i];
    if (p->boost < 0)
        return -EOPNOTSUPP;
    backend_policy_file(b, i, "boost", path, sizeof(path));
    int r = backend_write_verify(b, path, on ? "1" : "0", ev);
    if (r == 0)
        p->boost = !!on;
    return r;
}

int gov_backend_set_global_boost_file(struct gov_backend *b, int on, struct gov_events *ev)
{
    char path[PATH_MAX];
    if (!b)
        return -EINVAL;
    if (b->global.boost < 0)
        return -EOPNOTSUPP;
    global_file(b, "cpufreq/boost", path, sizeof(path));
    int r = backend_write_verify(b, path, on ? "1" : "0", ev);
    if (r == 0)
        b->global.boost = !!on;
    return r;
}

int gov_backend_set_no_turbo(struct gov_backend *b, int on, struct gov_events *ev)
{
    char path[PATH_MAX];
    if (!b)
        return -EINVAL;
    if (b->global.no_turbo < 0)
        return -EOPNOTSUPP;
    global_file(b, "intel_pstate/no_turbo", path, sizeof(path));
    int r = backend_write_verify(b, path, on ? "1" : "0", ev);
    if (r == 0)
        b->global.no_turbo = !!on;
    return r;
}

int gov_backend_set_boost(struct gov_backend *b, int on, struct gov_events *ev)
{
    if (!b)
        return -EINVAL;
    if (b->global.boost >= 0)
        return gov_backend_set_global_boost_file(b, on, ev);
    if (b->global.no_turbo >= 0)
        return gov_backend_set_no_turbo(b, !on, ev);
    /* Only per-policy files (some ARM and newer amd-pstate kernels): set each. */
    int any = 0, rc = 0;
    for (size_t i = 0; i < b->npol; i++) {
        if (b->pol[i].boost < 0)
            continue;
        any = 1;
        int r = gov_backend_set_policy_boost(b, i, on, ev);
        if (r && !rc)
            rc = r;
    }
    return any ? rc : -EOPNOTSUPP;
}

int gov_backend_set_perf_pct(struct gov_backend *b, int min_pct, int max_pct, struct gov_events *ev)
{
    char path[PATH_MAX], val[8];
    int r;
    if (!b || min_pct > 100 || max_pct > 100 || (min_pct >= 0 && max_pct >= 0 && min_pct > max_pct))
        return -EINVAL;
    struct gov_hw_global *g = &b->global;
    if ((min_pct >= 0 && g->min_perf_pct < 0) || (max_pct >= 0 && g->max_perf_pct < 0))
        return -EOPNOTSUPP;
    if ((min_pct >= 0 && max_pct < 0 && min_pct > g->max_perf_pct) ||
        (max_pct >= 0 && min_pct < 0 && max_pct < g->min_perf_pct))
        return -EINVAL;
    /* Same ordering rule as the frequency limits. */
    int max_first = max_pct >= 0 && max_pct >= g->min_perf_pct;
    for (int pass = 0; pass < 2; pass++) {
        int do_max = (pass == 0) == max_first;
        int v = do_max ? max_pct : min_pct;
        if (v < 0)
            continue;
        global_file(b, do_max ? "intel_pstate/max_perf_pct" : "intel_pstate/min_perf_pct", path,
                    sizeof(path));
        snprintf(val, sizeof(val), "%d", v);
        if ((r = backend_write_verify(b, path, val, ev)))
            return r;
        if (do_max)
            g->max_perf_pct = v;
        else
            g->min_perf_pct = v;
    }
    return 0;
}
