/* The memory controller's devfreq device (the "dmc" lever): on RK3588 and similar SoCs the DDR
 * clock decides decode speed more than the CPU clock does, and it is exposed as a devfreq device
 * (Documentation/ABI/testing/sysfs-class-devfreq) with its own governor. We do not replace that
 * governor; we move its min_freq/max_freq limits, which every devfreq governor honours, so the
 * board's own policy keeps working inside them and restoring two numbers undoes everything.
 * Devices are found by name under <root>/sys/class/devfreq ("dmc", "exynos5-dmc", ...); the GPU
 * and NPU devfreq devices are not ours to touch. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend_impl.h"
#include "common/fileio.h"

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int gov_parse_hz_list(const char *s, uint64_t *hz, size_t cap, size_t *ret_n)
{
    size_t n = 0;
    if (!s || !hz || !ret_n)
        return -EINVAL;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        if (!*s)
            break;
        char tok[32];
        size_t len = 0;
        while (s[len] && s[len] != ' ' && s[len] != '\t' && s[len] != '\n')
            len++;
        if (len >= sizeof(tok))
            return -EINVAL;
        memcpy(tok, s, len);
        tok[len] = '\0';
        s += len;
        uint64_t v;
        if (cmn_parse_u64(tok, &v) || v == 0)
            return -EINVAL;
        if (n == cap)
            return -ERANGE;
        hz[n++] = v;
    }
    qsort(hz, n, sizeof(*hz), u64_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || hz[i] != hz[u - 1])
            hz[u++] = hz[i];
    *ret_n = u;
    return 0;
}

static int dev_file(const struct gov_backend *b, const char *name, const char *file, char *buf,
                    size_t cap)
{
    return cmn_path(buf, cap, b->root, "sys/class/devfreq/%s/%s", name, file);
}

/* Reads min/max/cur (Hz). A missing cur_freq is tolerated (some kernels only have target_freq);
 * missing limits are not: without them there is nothing to move. */
static int read_limits(const struct gov_backend *b, struct gov_hw_devfreq *d, char *why,
                       size_t why_len)
{
    static const char *const files[3] = {"min_freq", "max_freq", "cur_freq"};
    uint64_t *dst[3] = {&d->min_hz, &d->max_hz, &d->cur_hz};
    for (int k = 0; k < 3; k++) {
        char path[PATH_MAX];
        *dst[k] = 0;
        if (dev_file(b, d->name, files[k], path, sizeof(path)))
            return -ENAMETOOLONG;
        int r = cmn_read_u64(path, dst[k]);
        if (r && k < 2) {
            snprintf(why, why_len, "%s: %s", path,
                     r == -ENOENT ? "missing" : "not a frequency in Hz");
            return r;
        }
    }
    return 0;
}

static int read_device(const struct gov_backend *b, const char *name, struct gov_hw_devfreq *d,
                       char *why, size_t why_len)
{
    char path[PATH_MAX], val[1024];
    memset(d, 0, sizeof(*d));
    if (strlen(name) >= sizeof(d->name)) {
        snprintf(why, why_len, "devfreq device name '%s' is too long", name);
        return -ENAMETOOLONG;
    }
    strcpy(d->name, name);
    if (dev_file(b, name, "governor", path, sizeof(path)) == 0 &&
        cmn_read_string(path, val, sizeof(val)) == 0 && strlen(val) < sizeof(d->governor))
        strcpy(d->governor, val);
    int r = dev_file(b, name, "available_frequencies", path, sizeof(path));
    if (r == 0)
        r = cmn_read_string(path, val, sizeof(val));
    size_t n = 0;
    if (r == 0)
        r = gov_parse_hz_list(val, d->freqs_hz, GOV_HW_MAX_FREQS, &n);
    if (r || n == 0) {
        snprintf(why, why_len, "%s: %s", path,
                 r == -ENOENT ? "missing" : "not a list of frequencies in Hz");
        return r ? r : -EINVAL;
    }
    d->nfreqs = (unsigned)n;
    return read_limits(b, d, why, why_len);
}

void backend_scan_devfreq(struct gov_backend *b)
{
    char dir[PATH_MAX];
    b->ndev = 0;
    if (cmn_path(dir, sizeof(dir), b->root, "sys/class/devfreq"))
        return;
    DIR *dh = opendir(dir);
    if (!dh)
        return; /* no devfreq class: the lever is not available */
    char names[GOV_HW_MAX_DEVFREQ][GOV_HW_NAME_LEN * 2];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL && nn < GOV_HW_MAX_DEVFREQ) {
        if (de->d_name[0] == '.' || !strcasestr(de->d_name, "dmc"))
            continue;
        snprintf(names[nn++], sizeof(names[0]), "%s", de->d_name);
    }
    closedir(dh);
    qsort(names, nn, sizeof(names[0]), (int (*)(const void *, const void *))strcmp);
    for (size_t k = 0; k < nn; k++) {
        char why[PATH_MAX + 64] = "";
        if (read_device(b, names[k], &b->dev[b->ndev], why, sizeof(why)) == 0) {
            b->ndev++;
            continue;
        }
        gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, -EINVAL,
                        "memory controller %.40s left alone: %.200s", names[k], why);
    }
    b->devfreq_reported = 1;
}

void backend_refresh_devfreq(struct gov_backend *b)
{
    for (size_t i = 0; i < b->ndev; i++) {
        char why[PATH_MAX + 64];
        /* a read that fails now keeps the last values: the next write's read-back reports it */
        struct gov_hw_devfreq d = b->dev[i];
        if (read_limits(b, &d, why, sizeof(why)) == 0)
            b->dev[i] = d;
    }
}

size_t gov_backend_devfreq_count(const struct gov_backend *b)
{
    return b ? b->ndev : 0;
}

const struct gov_hw_devfreq *gov_backend_devfreq(const struct gov_backend *b, size_t i)
{
    return b && i < b->ndev ? &b->dev[i] : NULL;
}

/* Inside the device's range (a restore writes back whatever the limits were, which need not be
 * a listed frequency). */
static int offered(const struct gov_hw_devfreq *d, uint64_t hz)
{
    return d->nfreqs && hz >= d->freqs_hz[0] && hz <= d->freqs_hz[d->nfreqs - 1];
}

static int write_limit(struct gov_backend *b, size_t i, int is_max, uint64_t hz,
                       struct gov_events *ev)
{
    struct gov_hw_devfreq *d = &b->dev[i];
    char path[PATH_MAX], val[32];
    int r = dev_file(b, d->name, is_max ? "max_freq" : "min_freq", path, sizeof(path));
    if (r)
        return r;
    snprintf(val, sizeof(val), "%llu", (unsigned long long)hz);
    r = backend_write_verify(b, path, val, ev);
    if (r == 0)
        *(is_max ? &d->max_hz : &d->min_hz) = hz;
    return r;
}

int gov_backend_set_devfreq_limits(struct gov_backend *b, size_t i, uint64_t min_hz,
                                   uint64_t max_hz, struct gov_events *ev)
{
    if (!b || i >= b->ndev)
        return -EINVAL;
    struct gov_hw_devfreq *d = &b->dev[i];
    if ((min_hz && !offered(d, min_hz)) || (max_hz && !offered(d, max_hz)) ||
        (min_hz && max_hz && min_hz > max_hz))
        return -EINVAL;
    int r;
    /* Older kernels refuse a min above the current max (and a max below the current min):
     * raise max first, else lower min first. */
    if (max_hz && max_hz >= d->min_hz) {
        if ((r = write_limit(b, i, 1, max_hz, ev)))
            return r;
        if (min_hz && (r = write_limit(b, i, 0, min_hz, ev)))
            return r;
    } else {
        if (min_hz && (r = write_limit(b, i, 0, min_hz, ev)))
            return r;
        if (max_hz && (r = write_limit(b, i, 1, max_hz, ev)))
            return r;
    }
    return 0;
}
