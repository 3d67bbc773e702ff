/* Direct-sysfs implementation of the cpufreq policy I/O: lists policyN directories under
 * <root>/sys/devices/system/cpu/cpufreq, reads each file itself with strict parsing, and writes
 * with O_TRUNC in one write() as sysfs expects. Used for any root other than "/" and on request. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "common/fileio.h"

static int cmp_policy(const void *a, const void *b)
{
    const struct gov_hw_policy *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Reads the files that describe a policy and do not change while it runs. */
static int read_static(struct gov_backend *b, size_t i, char *err, size_t err_len)
{
    struct gov_hw_policy *p = &b->pol[i];
    char path[PATH_MAX], val[1024];
    int r;
    size_t n, bad;

    /* related_cpus is the whole cluster (online or not); affected_cpus is the fallback. */
    if ((r = backend_policy_file(b, i, "related_cpus", path, sizeof(path))))
        return r;
    r = cmn_read_string(path, val, sizeof(val));
    if (r == -ENOENT) {
        backend_policy_file(b, i, "affected_cpus", path, sizeof(path));
        r = cmn_read_string(path, val, sizeof(val));
    }
    if (r) {
        backend_set_err(err, err_len, "%s: %s", path, strerror(-r));
        return r;
    }
    r = gov_parse_cpu_list(val, p->cpus, GOV_HW_MAX_CPUS, &n);
    if (r || n == 0) {
        backend_set_err(err, err_len, "%s: '%s' is not a CPU list", path, val);
        return -EINVAL;
    }
    p->ncpus = (unsigned)n;

    static const char *const limits[2] = {"cpuinfo_min_freq", "cpuinfo_max_freq"};
    uint32_t *dst[2] = {&p->cpuinfo_min_khz, &p->cpuinfo_max_khz};
    for (int k = 0; k < 2; k++) {
        backend_policy_file(b, i, limits[k], path, sizeof(path));
        r = backend_read_khz_file(path, dst[k], err, err_len);
        if (r == -EINVAL)
            return r;
        if (r || *dst[k] == 0) {
            backend_set_err(err, err_len, "%s: %s", path,
                            r ? strerror(-r) : "a hardware limit of 0 kHz");
            return r ? r : -EINVAL;
        }
    }
    if (p->cpuinfo_min_khz > p->cpuinfo_max_khz) {
        backend_policy_file(b, i, "cpuinfo_min_freq", path, sizeof(path));
        backend_set_err(err, err_len, "%s: cpuinfo_min_freq %u > cpuinfo_max_freq %u", path,
                        (unsigned)p->cpuinfo_min_khz, (unsigned)p->cpuinfo_max_khz);
        return -EINVAL;
    }

    backend_policy_file(b, i, "scaling_driver", path, sizeof(path));
    if (cmn_read_string(path, val, sizeof(val)) == 0) {
        if (strlen(val) >= sizeof(p->driver)) {
            backend_set_err(err, err_len, "%s: driver name too long", path);
            return -EINVAL;
        }
        strcpy(p->driver, val);
    }

    backend_policy_file(b, i, "scaling_available_governors", path, sizeof(path));
    p->ngovernors = 0;
    if (cmn_read_string(path, val, sizeof(val)) == 0) {
        if (gov_parse_word_list(val, p->governors, GOV_HW_MAX_GOVERNORS, &n)) {
            backend_set_err(err, err_len, "%s: not a list of governor names", path);
            return -EINVAL;
        }
        p->ngovernors = (unsigned)n;
    }

    backend_policy_file(b, i, "scaling_available_frequencies", path, sizeof(path));
    p->nfreqs = 0;
    r = cmn_read_string(path, val, sizeof(val));
    if (r == 0) {
        r = gov_parse_freq_list(val, p->freqs_khz, GOV_HW_MAX_FREQS, &n, &bad);
        if (r) {
            backend_set_err(err, err_len, "%s: more than %d frequencies", path, GOV_HW_MAX_FREQS);
            return r;
        }
        p->nfreqs = (unsigned)n;
        if (bad)
            gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, -EINVAL,
                            "%s: skipped %zu token(s) that are not frequencies; kept %zu", path,
                            bad, n);
    }
    return 0;
}

static int sysfs_discover(struct gov_backend *b, char *err, size_t err_len)
{
    char dir[PATH_MAX];
    int r;
    if ((r = cmn_path(dir, sizeof(dir), b->root, "sys/devices/system/cpu/cpufreq")))
        return r;
    DIR *d = opendir(dir);
    if (!d) {
        r = -errno;
        backend_set_err(err, err_len, "%s: %s", dir, strerror(errno));
        return r == -ENOENT ? 0 : r; /* no directory = no policies; the caller says so */
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long id;
        char *end;
        if (strncmp(de->d_name, "policy", 6) != 0 || de->d_name[6] < '0' || de->d_name[6] > '9')
            continue;
        id = strtoul(de->d_name + 6, &end, 10);
        if (*end || id >= GOV_HW_MAX_CPUS)
            continue;
        if (b->npol == GOV_HW_MAX_POLICIES) {
            closedir(d);
            backend_set_err(err, err_len, "%s: more than %d policies", dir, GOV_HW_MAX_POLICIES);
            return -ERANGE;
        }
        struct gov_hw_policy *p = &b->pol[b->npol++];
        snprintf(p->name, sizeof(p->name), "policy%lu", id);
        p->id = (unsigned)id;
    }
    closedir(d);
    qsort(b->pol, b->npol, sizeof(b->pol[0]), cmp_policy);
    for (size_t i = 0; i < b->npol; i++) {
        if ((r = read_static(b, i, err, err_len)))
            return r;
        b->lib_cpu[i] = b->pol[i].cpus[0];
    }
    return 0;
}

static int sysfs_read_state(struct gov_backend *b, size_t i, char *err, size_t err_len)
{
    struct gov_hw_policy *p = &b->pol[i];
    char path[PATH_MAX], val[128];
    int r;

    backend_policy_file(b, i, "scaling_governor", path, sizeof(path));
    p->governor[0] = '\0';
    r = cmn_read_string(path, val, sizeof(val));
    if (r == 0) {
        if (strlen(val) >= sizeof(p->governor) || !*val || strchr(val, ' ')) {
            backend_set_err(err, err_len, "%s: '%s' is not a governor name", path, val);
            return -EINVAL;
        }
        strcpy(p->governor, val);
    }

    static const char *const files[3] = {"scaling_min_freq", "scaling_max_freq",
                                         "scaling_cur_freq"};
    static const unsigned quirk_bits[3] = {QUIRK_NO_MIN, QUIRK_NO_MAX, QUIRK_BAD_CUR};
    uint32_t *dst[3] = {&p->scaling_min_khz, &p->scaling_max_khz, &p->cur_khz};
    for (int k = 0; k < 3; k++) {
        backend_policy_file(b, i, files[k], path, sizeof(path));
        *dst[k] = 0;
        r = backend_read_khz_file(path, dst[k], err, err_len);
        if (r == -EINVAL && k < 2)
            return r; /* a garbled limit is not something to work around */
        if (r && !(b->quirk_reported[i] & quirk_bits[k])) {
            b->quirk_reported[i] |= quirk_bits[k];
            gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, r, "%s: %s; treated as unknown%s", path,
                            r == -EINVAL ? "not a frequency" : strerror(-r),
                            k < 2 ? ", writes to it skipped" : "");
        }
        if (r)
            *dst[k] = 0;
    }
    return 0;
}

static int sysfs_write(struct gov_backend *b, size_t i, const char *file, const char *value)
{
    char path[PATH_MAX];
    int r = backend_policy_file(b, i, file, path, sizeof(path));
    return r ? r : backend_write(b, path, value);
}

static int sysfs_write_governor(struct gov_backend *b, size_t i, const char *governor)
{
    return sysfs_write(b, i, "scaling_governor", governor);
}

static int sysfs_write_limit(struct gov_backend *b, size_t i, int is_max, uint32_t khz)
{
    char v[16];
    snprintf(v, sizeof(v), "%u", (unsigned)khz);
    return sysfs_write(b, i, is_max ? "scaling_max_freq" : "scaling_min_freq", v);
}

static int sysfs_write_speed(struct gov_backend *b, size_t i, uint32_t khz)
{
    char v[16];
    snprintf(v, sizeof(v), "%u", (unsigned)khz);
    return sysfs_write(b, i, "scaling_setspeed", v);
}

const struct backend_io gov_backend_io_sysfs = {
    .impl = GOV_BACKEND_SYSFS,
    .discover = sysfs_discover,
    .read_state = sysfs_read_state,
    .write_governor = sysfs_write_governor,
    .write_limit = sysfs_write_limit,
    .write_speed = sysfs_write_speed,
};
