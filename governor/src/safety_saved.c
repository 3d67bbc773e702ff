/* The saved-state file: capture of the original values, its JSON form, atomic write, strict read,
 * and the restore that writes back only what differs. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/timeutil.h"
#include "governor/safety.h"

int gov_saved_capture(const struct gov_backend *b, struct gov_saved_state *ret)
{
    if (!b || !ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    ret->version = GOV_SAVED_VERSION;
    snprintf(ret->root, sizeof(ret->root), "%s", gov_backend_root(b));
    ret->pid = (int)getpid();
    ret->wall_ns = cmn_wall_ns();
    ret->npol = (unsigned)gov_backend_policy_count(b);
    for (unsigned i = 0; i < ret->npol; i++) {
        const struct gov_hw_policy *p = gov_backend_policy(b, i);
        struct gov_saved_policy *s = &ret->pol[i];
        memcpy(s->name, p->name, sizeof(s->name));
        memcpy(s->governor, p->governor, sizeof(s->governor));
        s->min_khz = p->scaling_min_khz;
        s->max_khz = p->scaling_max_khz;
        s->setspeed_khz = p->setspeed_khz;
        memcpy(s->epp, p->epp, sizeof(s->epp));
        s->boost = p->boost;
    }
    const struct gov_hw_global *g = gov_backend_global(b);
    ret->boost = g->boost;
    ret->no_turbo = g->no_turbo;
    ret->min_perf_pct = g->min_perf_pct;
    ret->max_perf_pct = g->max_perf_pct;
    ret->ndev = (unsigned)gov_backend_devfreq_count(b);
    for (unsigned i = 0; i < ret->ndev; i++) {
        const struct gov_hw_devfreq *d = gov_backend_devfreq(b, i);
        memcpy(ret->dev[i].name, d->name, sizeof(ret->dev[i].name));
        ret->dev[i].min_hz = d->min_hz;
        ret->dev[i].max_hz = d->max_hz;
    }
    return 0;
}

char *gov_saved_to_json(const struct gov_saved_state *st)
{
    if (!st)
        return NULL;
    char *out = NULL;
    cJSON *root = cJSON_CreateObject(), *pols;
    if (!root)
        return NULL;
    cJSON_AddNumberToObject(root, "version", st->version);
    cJSON_AddStringToObject(root, "sysfs_root", st->root);
    cJSON_AddNumberToObject(root, "pid", st->pid);
    cJSON_AddNumberToObject(root, "wall_ns", (double)st->wall_ns);
    cJSON_AddNumberToObject(root, "boost", st->boost);
    cJSON_AddNumberToObject(root, "no_turbo", st->no_turbo);
    cJSON_AddNumberToObject(root, "min_perf_pct", st->min_perf_pct);
    cJSON_AddNumberToObject(root, "max_perf_pct", st->max_perf_pct);
    pols = cJSON_AddArrayToObject(root, "policies");
    if (!pols)
        goto out;
    for (unsigned i = 0; i < st->npol; i++) {
        const struct gov_saved_policy *p = &st->pol[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto out;
        cJSON_AddItemToArray(pols, o);
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddStringToObject(o, "governor", p->governor);
        cJSON_AddNumberToObject(o, "min_khz", p->min_khz);
        cJSON_AddNumberToObject(o, "max_khz", p->max_khz);
        cJSON_AddNumberToObject(o, "setspeed_khz", p->setspeed_khz);
        cJSON_AddStringToObject(o, "epp", p->epp);
        cJSON_AddNumberToObject(o, "boost", p->boost);
    }
    cJSON *devs = cJSON_AddArrayToObject(root, "devfreq");
    if (!devs)
        goto out;
    for (unsigned i = 0; i < st->ndev; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto out;
        cJSON_AddItemToArray(devs, o);
        cJSON_AddStringToObject(o, "name", st->dev[i].name);
        cJSON_AddNumberToObject(o, "min_hz", (double)st->dev[i].min_hz);
        cJSON_AddNumberToObject(o, "max_hz", (double)st->dev[i].max_hz);
    }
    out = cJSON_Print(root);
out:
    cJSON_Delete(root);
    return out;
}

/* Reads an integer member in [lo, hi]; -EINVAL naming the key otherwise. */
static int get_int(const cJSON *o, const char *key, double lo, double hi, double *ret, char *err,
                   size_t err_len, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        v->valuedouble != (double)(int64_t)v->valuedouble) {
        cmn_set_err(err, err_len, "%s%s: missing or not an integer in %.0f..%.0f", where, key, lo,
                    hi);
        return -EINVAL;
    }
    *ret = v->valuedouble;
    return 0;
}

static int get_str(const cJSON *o, const char *key, char *dst, size_t cap, int allow_empty,
                   char *err, size_t err_len, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap ||
        (!allow_empty && !v->valuestring[0]) || strpbrk(v->valuestring, " \t\n/")) {
        cmn_set_err(err, err_len, "%s%s: missing, too long or not a single word", where, key);
        return -EINVAL;
    }
    strcpy(dst, v->valuestring);
    return 0;
}

/* The optional "devfreq" array (files written before the memory lever have none). */
static int parse_devfreq(const cJSON *root, struct gov_saved_state *ret, char *err, size_t err_len)
{
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(root, "devfreq");
    if (!devs)
        return 0;
    if (!cJSON_IsArray(devs) || cJSON_GetArraySize(devs) > GOV_HW_MAX_DEVFREQ) {
        cmn_set_err(err, err_len, "devfreq: not an array of at most %d", GOV_HW_MAX_DEVFREQ);
        return -EINVAL;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, devs)
    {
        char where[48];
        double d;
        int r;
        struct gov_saved_devfreq *sd = &ret->dev[ret->ndev];
        snprintf(where, sizeof(where), "devfreq[%u].", ret->ndev);
        if (!cJSON_IsObject(o)) {
            cmn_set_err(err, err_len, "devfreq[%u]: not an object", ret->ndev);
            return -EINVAL;
        }
        if ((r = get_str(o, "name", sd->name, sizeof(sd->name), 0, err, err_len, where)))
            return r;
        /* Hz as a double is exact below 2^53: far above any memory clock */
        if ((r = get_int(o, "min_hz", 0, 1e15, &d, err, err_len, where)))
            return r;
        sd->min_hz = (uint64_t)d;
        if ((r = get_int(o, "max_hz", 0, 1e15, &d, err, err_len, where)))
            return r;
        sd->max_hz = (uint64_t)d;
        ret->ndev++;
    }
    return 0;
}

int gov_saved_parse(const char *json, size_t len, struct gov_saved_state *ret, char *err,
                    size_t err_len)
{
    int r = -EINVAL;
    double d;
    if (!json || !ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cmn_set_err(err, err_len, "not a JSON object");
        goto out;
    }
    if ((r = get_int(root, "version", 1, 1000, &d, err, err_len, "")))
        goto out;
    if (d != GOV_SAVED_VERSION) {
        cmn_set_err(err, err_len, "version %.0f is not %d", d, GOV_SAVED_VERSION);
        r = -EINVAL;
        goto out;
    }
    ret->version = (int)d;
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "sysfs_root");
    if (!cJSON_IsString(rt) || !rt->valuestring[0] ||
        strlen(rt->valuestring) >= sizeof(ret->root)) {
        cmn_set_err(err, err_len, "sysfs_root: missing or too long");
        r = -EINVAL;
        goto out;
    }
    strcpy(ret->root, rt->valuestring);
    if ((r = get_int(root, "pid", 0, 4194304, &d, err, err_len, "")))
        goto out;
    ret->pid = (int)d;
    if ((r = get_int(root, "wall_ns", 0, 9.2e18, &d, err, err_len, "")))
        goto out;
    ret->wall_ns = (uint64_t)d;
    static const char *const gk[4] = {"boost", "no_turbo", "min_perf_pct", "max_perf_pct"};
    int *gd[4] = {&ret->boost, &ret->no_turbo, &ret->min_perf_pct, &ret->max_perf_pct};
    for (int k = 0; k < 4; k++) {
        if ((r = get_int(root, gk[k], -1, k < 2 ? 1 : 100, &d, err, err_len, "")))
            goto out;
        *gd[k] = (int)d;
    }
    const cJSON *pols = cJSON_GetObjectItemCaseSensitive(root, "policies");
    if (!cJSON_IsArray(pols) || cJSON_GetArraySize(pols) > GOV_HW_MAX_POLICIES) {
        cmn_set_err(err, err_len, "policies: missing or more than %d", GOV_HW_MAX_POLICIES);
        r = -EINVAL;
        goto out;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, pols)
    {
        char where[48];
        struct gov_saved_policy *p = &ret->pol[ret->npol];
        snprintf(where, sizeof(where), "policies[%u].", ret->npol);
        if (!cJSON_IsObject(o)) {
            cmn_set_err(err, err_len, "policies[%u]: not an object", ret->npol);
            r = -EINVAL;
            goto out;
        }
        if ((r = get_str(o, "name", p->name, sizeof(p->name), 0, err, err_len, where)) ||
            (r = get_str(o, "governor", p->governor, sizeof(p->governor), 1, err, err_len,
                         where)) ||
            (r = get_str(o, "epp", p->epp, sizeof(p->epp), 1, err, err_len, where)))
            goto out;
        if (strncmp(p->name, "policy", 6) != 0) {
            cmn_set_err(err, err_len, "%sname: '%s' is not a policyN name", where, p->name);
            r = -EINVAL;
            goto out;
        }
        static const char *const fk[3] = {"min_khz", "max_khz", "setspeed_khz"};
        uint32_t *fd[3] = {&p->min_khz, &p->max_khz, &p->setspeed_khz};
        for (int k = 0; k < 3; k++) {
            if ((r = get_int(o, fk[k], 0, UINT32_MAX, &d, err, err_len, where)))
                goto out;
            *fd[k] = (uint32_t)d;
        }
        if ((r = get_int(o, "boost", -1, 1, &d, err, err_len, where)))
            goto out;
        p->boost = (int)d;
        ret->npol++;
    }
    if ((r = parse_devfreq(root, ret, err, err_len)))
        goto out;
    r = 0;
out:
    cJSON_Delete(root);
    return r;
}

int gov_saved_write(const struct gov_saved_state *st, const char *path, char *err, size_t err_len)
{
    char dir[PATH_MAX];
    if (!st || !path || !*path || strlen(path) >= sizeof(dir))
        return -EINVAL;
    strcpy(dir, path);
    int r = cmn_mkdir_p(dirname(dir));
    if (r) {
        cmn_set_err(err, err_len, "%s: cannot create its directory: %s", path, strerror(-r));
        return r;
    }
    char *json = gov_saved_to_json(st);
    if (!json)
        return -ENOMEM;
    r = cmn_write_file_atomic(path, json, strlen(json));
    free(json);
    if (r)
        cmn_set_err(err, err_len, "%s: %s", path, strerror(-r));
    return r;
}

int gov_saved_read(const char *path, struct gov_saved_state *ret, char *err, size_t err_len)
{
    size_t cap = 1 << 20, len = 0;
    char msg[200] = "";
    if (!path || !ret)
        return -EINVAL;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    /* The file decides what root writes into sysfs: read it only when nobody else could have
     * planted or changed it (issue 14). */
    int r = cmn_read_file_trusted(path, buf, cap, &len);
    if (r == -ENOENT) {
        free(buf);
        return r;
    }
    if (r) {
        cmn_set_err(err, err_len, "%s: %s", path,
                    r == -EPERM ? "not trusted (a link, or it or its directory is writable by or "
                                  "owned by another user)"
                                : strerror(-r));
        free(buf);
        return r;
    }
    r = gov_saved_parse(buf, len, ret, msg, sizeof(msg));
    free(buf);
    if (r)
        cmn_set_err(err, err_len, "%s: %s", path, msg);
    return r;
}

static int same_root(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    const char *x = realpath(a, ra) ? ra : a, *y = realpath(b, rb) ? rb : b;
    return strcmp(x, y) == 0;
}

static void keep_first(int *rc, int r)
{
    if (r && !*rc)
        *rc = r;
}

int gov_saved_apply(struct gov_backend *b, const struct gov_saved_state *st, struct gov_events *ev,
                    unsigned *ret_writes, char *err, size_t err_len)
{
    int rc = 0, r;
    unsigned writes = 0;
    char msg[256] = "";
    if (ret_writes)
        *ret_writes = 0;
    if (!b || !st)
        return -EINVAL;
    if (!same_root(st->root, gov_backend_root(b))) {
        cmn_set_err(err, err_len, "the saved state belongs to sysfs_root '%s', not '%s'", st->root,
                    gov_backend_root(b));
        return -EXDEV;
    }
    if ((r = gov_backend_refresh(b, msg, sizeof(msg)))) {
        cmn_set_err(err, err_len, "%s", msg);
        return r;
    }
    for (unsigned k = 0; k < st->npol; k++) {
        const struct gov_saved_policy *sp = &st->pol[k];
        size_t i, n = gov_backend_policy_count(b);
        for (i = 0; i < n; i++)
            if (strcmp(gov_backend_policy(b, i)->name, sp->name) == 0)
                break;
        if (i == n) {
            gov_events_push(ev, GOV_EVENT_WRITE_FAILED, -ENOENT,
                            "%s: saved but no longer present; not restored", sp->name);
            keep_first(&rc, -ENOENT);
            continue;
        }
        const struct gov_hw_policy *p = gov_backend_policy(b, i);
        /* Limits first (their order is handled by the backend), then EPP while our governor
         * still runs (intel_pstate refuses most EPP values under "performance"), then the
         * governor, then the userspace speed. */
        uint32_t want_min = sp->min_khz && sp->min_khz != p->scaling_min_khz ? sp->min_khz : 0;
        uint32_t want_max = sp->max_khz && sp->max_khz != p->scaling_max_khz ? sp->max_khz : 0;
        if (want_min || want_max) {
            r = gov_backend_set_limits(b, i, want_min, want_max, ev);
            writes += (want_min != 0) + (want_max != 0);
            keep_first(&rc, r);
        }
        int epp_pending = sp->epp[0] && p->epp[0] && strcmp(sp->epp, p->epp) != 0;
        if (epp_pending && gov_backend_set_epp(b, i, sp->epp, NULL) == 0) {
            epp_pending = 0;
            writes++;
        }
        if (sp->governor[0] && strcmp(sp->governor, p->governor) != 0) {
            keep_first(&rc, gov_backend_set_governor(b, i, sp->governor, ev));
            writes++;
        }
        if (epp_pending) {
            keep_first(&rc, gov_backend_set_epp(b, i, sp->epp, ev));
            writes++;
        }
        if (strcmp(sp->governor, "userspace") == 0 && sp->setspeed_khz &&
            sp->setspeed_khz != p->setspeed_khz) {
            keep_first(&rc, gov_backend_set_speed(b, i, sp->setspeed_khz, ev));
            writes++;
        }
        if (sp->boost >= 0 && p->boost >= 0 && sp->boost != p->boost) {
            keep_first(&rc, gov_backend_set_policy_boost(b, i, sp->boost, ev));
            writes++;
        }
    }
    const struct gov_hw_global *g = gov_backend_global(b);
    int want_min =
        st->min_perf_pct >= 0 && g->min_perf_pct >= 0 && st->min_perf_pct != g->min_perf_pct
            ? st->min_perf_pct
            : -1;
    int want_max =
        st->max_perf_pct >= 0 && g->max_perf_pct >= 0 && st->max_perf_pct != g->max_perf_pct
            ? st->max_perf_pct
            : -1;
    if (want_min >= 0 || want_max >= 0) {
        keep_first(&rc, gov_backend_set_perf_pct(b, want_min, want_max, ev));
        writes += (want_min >= 0) + (want_max >= 0);
    }
    if (st->no_turbo >= 0 && g->no_turbo >= 0 && st->no_turbo != g->no_turbo) {
        keep_first(&rc, gov_backend_set_no_turbo(b, st->no_turbo, ev));
        writes++;
    }
    if (st->boost >= 0 && g->boost >= 0 && st->boost != g->boost) {
        keep_first(&rc, gov_backend_set_global_boost_file(b, st->boost, ev));
        writes++;
    }
    for (unsigned k = 0; k < st->ndev; k++) {
        const struct gov_saved_devfreq *sd = &st->dev[k];
        size_t i, n = gov_backend_devfreq_count(b);
        for (i = 0; i < n; i++)
            if (strcmp(gov_backend_devfreq(b, i)->name, sd->name) == 0)
                break;
        if (i == n) {
            gov_events_push(ev, GOV_EVENT_WRITE_FAILED, -ENOENT,
                            "devfreq %s: saved but no longer present; not restored", sd->name);
            keep_first(&rc, -ENOENT);
            continue;
        }
        const struct gov_hw_devfreq *d = gov_backend_devfreq(b, i);
        uint64_t dev_min = sd->min_hz && sd->min_hz != d->min_hz ? sd->min_hz : 0;
        uint64_t dev_max = sd->max_hz && sd->max_hz != d->max_hz ? sd->max_hz : 0;
        if (dev_min || dev_max) {
            keep_first(&rc, gov_backend_set_devfreq_limits(b, i, dev_min, dev_max, ev));
            writes += (dev_min != 0) + (dev_max != 0);
        }
    }
    if (ret_writes)
        *ret_writes = writes;
    if (rc)
        cmn_set_err(err, err_len, "restore incomplete: %s", strerror(-rc));
    return rc;
}

int gov_saved_restore_file(struct gov_backend *b, const char *path, struct gov_events *ev,
                           unsigned *ret_writes, char *err, size_t err_len)
{
    struct gov_saved_state *st = malloc(sizeof(*st));
    if (!st)
        return -ENOMEM;
    int r = gov_saved_read(path, st, err, err_len);
    if (r == 0) {
        r = gov_saved_apply(b, st, ev, ret_writes, err, err_len);
        if (r == 0) {
            gov_events_push(ev, GOV_EVENT_RESTORED, 0,
                            "original cpufreq settings restored from %s (saved by pid %d)", path,
                            st->pid);
            if (unlink(path) != 0 && errno != ENOENT) {
                r = -errno;
                cmn_set_err(err, err_len, "%s: restored, but cannot remove it: %s", path,
                            strerror(errno));
            }
        }
    }
    free(st);
    return r;
}
