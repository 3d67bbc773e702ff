/* libcpupower implementation of the cpufreq policy I/O. libcpupower works per CPU and always on
 * /sys/devices/system/cpu, so policies are found by grouping CPUs with cpufreq_get_related_cpus()
 * and every call names one online CPU of the policy. Where libcpupower cannot read a value (its
 * cpufreq_get_policy() needs min, max and governor all present) the file is read directly and a
 * quirk is recorded. */
#include <cpufreq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_impl.h"
#include "common/fileio.h"

/* libcpupower returns -ENODEV, -EINVAL or -1 (short write) on failure. */
static int lib_err(int r)
{
    if (r >= 0)
        return 0;
    return r == -1 ? -EIO : r;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u32_16(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

static int fill_policy(struct gov_backend *b, size_t i, char *err, size_t err_len)
{
    struct gov_hw_policy *p = &b->pol[i];
    unsigned cpu = b->lib_cpu[i];
    unsigned long lo = 0, hi = 0;
    char path[PATH_MAX];

    if (cpufreq_get_hardware_limits(cpu, &lo, &hi) != 0 || lo == 0 || hi == 0 || lo > hi ||
        hi > UINT32_MAX) {
        backend_policy_file(b, i, "cpuinfo_max_freq", path, sizeof(path));
        backend_set_err(err, err_len,
                        "cpu%u: libcpupower cannot read the hardware limits (cpuinfo_min_freq / "
                        "%s)",
                        cpu, path);
        return -EINVAL;
    }
    p->cpuinfo_min_khz = (uint32_t)lo;
    p->cpuinfo_max_khz = (uint32_t)hi;

    char *drv = cpufreq_get_driver(cpu);
    if (drv) {
        snprintf(p->driver, sizeof(p->driver), "%s", drv);
        cpufreq_put_driver(drv);
    }

    p->ngovernors = 0;
    struct cpufreq_available_governors *govs = cpufreq_get_available_governors(cpu);
    if (govs) {
        for (struct cpufreq_available_governors *g = govs->first; g; g = g->next) {
            if (!g->governor || strlen(g->governor) >= GOV_HW_NAME_LEN) {
                cpufreq_put_available_governors(govs);
                backend_policy_file(b, i, "scaling_available_governors", path, sizeof(path));
                backend_set_err(err, err_len, "%s: not a list of governor names", path);
                return -EINVAL;
            }
            if (p->ngovernors < GOV_HW_MAX_GOVERNORS)
                strcpy(p->governors[p->ngovernors++], g->governor);
        }
        cpufreq_put_available_governors(govs);
    }

    p->nfreqs = 0;
    size_t bad = 0;
    struct cpufreq_available_frequencies *fr = cpufreq_get_available_frequencies(cpu);
    if (fr) {
        for (struct cpufreq_available_frequencies *f = fr->first; f; f = f->next) {
            /* libcpupower turns a token that is not a number into 0: never keep it. */
            if (f->frequency == 0 || f->frequency > UINT32_MAX) {
                bad++;
                continue;
            }
            int dup = 0;
            for (unsigned k = 0; k < p->nfreqs; k++)
                dup |= p->freqs_khz[k] == f->frequency;
            if (!dup && p->nfreqs < GOV_HW_MAX_FREQS)
                p->freqs_khz[p->nfreqs++] = (uint32_t)f->frequency;
        }
        cpufreq_put_available_frequencies(fr);
        qsort(p->freqs_khz, p->nfreqs, sizeof(p->freqs_khz[0]), cmp_u32);
    } else {
        /* libcpupower gives up on the whole list when one token is bad; a table driver
         * without its table would look like a continuous range, so read the file ourselves. */
        char val[1024];
        size_t n = 0;
        backend_policy_file(b, i, "scaling_available_frequencies", path, sizeof(path));
        if (cmn_read_string(path, val, sizeof(val)) == 0 &&
            gov_parse_freq_list(val, p->freqs_khz, GOV_HW_MAX_FREQS, &n, &bad) == 0) {
            p->nfreqs = (unsigned)n;
            if (!bad)
                gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, -EINVAL,
                                "%s: libcpupower could not parse it; read directly", path);
        }
    }
    if (bad) {
        backend_policy_file(b, i, "scaling_available_frequencies", path, sizeof(path));
        gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, -EINVAL,
                        "%s: skipped %zu token(s) that are not frequencies; kept %u", path, bad,
                        p->nfreqs);
    }
    return 0;
}

/* The policyN name of a CPU: the kernel links cpuN/cpufreq to ../cpufreq/policyM. */
static int policy_name_of(unsigned cpu, char *name, size_t cap)
{
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "/sys/devices/system/cpu/cpu%u/cpufreq", cpu);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strncmp(base, "policy", 6) == 0 && strlen(base) < cap) {
            strcpy(name, base);
            return 0;
        }
    }
    snprintf(name, cap, "policy%u", cpu);
    return 0;
}

static int cpupower_discover(struct gov_backend *b, char *err, size_t err_len)
{
    char path[PATH_MAX], val[1024];
    uint16_t cpus[GOV_HW_MAX_CPUS];
    unsigned char taken[GOV_HW_MAX_CPUS] = {0};
    size_t ncpu;
    int r;

    /* CPUs that exist; libcpupower itself only looks at cpuN directories. */
    snprintf(path, sizeof(path), "/sys/devices/system/cpu/present");
    r = cmn_read_string(path, val, sizeof(val));
    if (r) {
        backend_set_err(err, err_len, "%s: %s", path, strerror(-r));
        return r;
    }
    if (gov_parse_cpu_list(val, cpus, GOV_HW_MAX_CPUS, &ncpu)) {
        backend_set_err(err, err_len, "%s: '%s' is not a CPU list", path, val);
        return -EINVAL;
    }
    for (size_t c = 0; c < ncpu; c++) {
        unsigned cpu = cpus[c];
        if (taken[cpu])
            continue;
        struct cpufreq_affected_cpus *rel = cpufreq_get_related_cpus(cpu);
        if (!rel)
            continue; /* offline or no cpufreq for this CPU */
        if (b->npol == GOV_HW_MAX_POLICIES) {
            cpufreq_put_related_cpus(rel);
            backend_set_err(err, err_len, "more than %d cpufreq policies", GOV_HW_MAX_POLICIES);
            return -ERANGE;
        }
        size_t i = b->npol++;
        struct gov_hw_policy *p = &b->pol[i];
        for (struct cpufreq_affected_cpus *a = rel->first; a; a = a->next) {
            if (a->cpu >= GOV_HW_MAX_CPUS || p->ncpus == GOV_HW_MAX_CPUS)
                continue;
            if (!taken[a->cpu])
                p->cpus[p->ncpus++] = (uint16_t)a->cpu;
            taken[a->cpu] = 1;
        }
        cpufreq_put_related_cpus(rel);
        taken[cpu] = 1;
        if (p->ncpus == 0)
            p->cpus[p->ncpus++] = (uint16_t)cpu;
        qsort(p->cpus, p->ncpus, sizeof(p->cpus[0]), cmp_u32_16);
        b->lib_cpu[i] = cpu;
        policy_name_of(cpu, p->name, sizeof(p->name));
        p->id = (unsigned)strtoul(p->name + 6, NULL, 10);
        if ((r = fill_policy(b, i, err, err_len)))
            return r;
    }
    return 0;
}

/* Direct read of one limit file when libcpupower's all-or-nothing policy read fails. */
static void read_limit_direct(struct gov_backend *b, size_t i, int is_max, uint32_t *dst)
{
    char path[PATH_MAX];
    unsigned bit = is_max ? QUIRK_NO_MAX : QUIRK_NO_MIN;
    backend_policy_file(b, i, is_max ? "scaling_max_freq" : "scaling_min_freq", path, sizeof(path));
    *dst = 0;
    int r = backend_read_khz_file(path, dst, NULL, 0);
    if (r && !(b->quirk_reported[i] & bit)) {
        b->quirk_reported[i] |= bit;
        gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, r,
                        "%s: %s; treated as unknown, writes to it skipped", path,
                        r == -EINVAL ? "not a frequency" : strerror(-r));
    }
    if (r)
        *dst = 0;
}

static int cpupower_read_state(struct gov_backend *b, size_t i, char *err, size_t err_len)
{
    struct gov_hw_policy *p = &b->pol[i];
    unsigned cpu = b->lib_cpu[i];
    struct cpufreq_policy *pol = cpufreq_get_policy(cpu);
    if (pol) {
        if (!pol->governor || strlen(pol->governor) >= sizeof(p->governor) ||
            pol->min > UINT32_MAX || pol->max > UINT32_MAX) {
            char path[PATH_MAX];
            backend_policy_file(b, i, "scaling_governor", path, sizeof(path));
            backend_set_err(err, err_len, "%s: libcpupower returned a garbled policy", path);
            cpufreq_put_policy(pol);
            return -EINVAL;
        }
        strcpy(p->governor, pol->governor);
        p->scaling_min_khz = (uint32_t)pol->min;
        p->scaling_max_khz = (uint32_t)pol->max;
        cpufreq_put_policy(pol);
    } else {
        char path[PATH_MAX], val[128];
        if (!(b->quirk_reported[i] & QUIRK_NO_POLICY)) {
            b->quirk_reported[i] |= QUIRK_NO_POLICY;
            gov_events_push(&b->quirks, GOV_EVENT_HW_QUIRK, -ENODATA,
                            "cpu%u: libcpupower could not read the policy (a file of "
                            "scaling_min_freq, scaling_max_freq, scaling_governor is missing or "
                            "garbled); reading the files directly",
                            cpu);
        }
        backend_policy_file(b, i, "scaling_governor", path, sizeof(path));
        p->governor[0] = '\0';
        if (cmn_read_string(path, val, sizeof(val)) == 0 && strlen(val) < sizeof(p->governor))
            strcpy(p->governor, val);
        read_limit_direct(b, i, 0, &p->scaling_min_khz);
        read_limit_direct(b, i, 1, &p->scaling_max_khz);
    }
    unsigned long cur = cpufreq_get_freq_kernel(cpu);
    p->cur_khz = cur <= UINT32_MAX ? (uint32_t)cur : 0;
    return 0;
}

static int cpupower_write_governor(struct gov_backend *b, size_t i, const char *governor)
{
    char g[GOV_HW_NAME_LEN];
    snprintf(g, sizeof(g), "%s", governor); /* libcpupower takes a non-const char * */
    if (b->has_sysio) /* libcpupower writes as root: the call runs on the sysio's other side */
        return b->sysio.cpupower_write(b->sysio.ctx, GOV_SYSIO_CPUPOWER_GOVERNOR, b->lib_cpu[i], 0,
                                       g);
    return lib_err(cpufreq_modify_policy_governor(b->lib_cpu[i], g));
}

static int cpupower_write_limit(struct gov_backend *b, size_t i, int is_max, uint32_t khz)
{
    unsigned cpu = b->lib_cpu[i];
    if (b->has_sysio)
        return b->sysio.cpupower_write(
            b->sysio.ctx, is_max ? GOV_SYSIO_CPUPOWER_MAX : GOV_SYSIO_CPUPOWER_MIN, cpu, khz, NULL);
    return lib_err(is_max ? cpufreq_modify_policy_max(cpu, khz)
                          : cpufreq_modify_policy_min(cpu, khz));
}

static int cpupower_write_speed(struct gov_backend *b, size_t i, uint32_t khz)
{
    /* cpufreq_set_frequency also switches to the userspace governor when another one runs. */
    if (b->has_sysio)
        return b->sysio.cpupower_write(b->sysio.ctx, GOV_SYSIO_CPUPOWER_SPEED, b->lib_cpu[i], khz,
                                       NULL);
    return lib_err(cpufreq_set_frequency(b->lib_cpu[i], khz));
}

const struct backend_io gov_backend_io_cpupower = {
    .impl = GOV_BACKEND_LIBCPUPOWER,
    .discover = cpupower_discover,
    .read_state = cpupower_read_state,
    .write_governor = cpupower_write_governor,
    .write_limit = cpupower_write_limit,
    .write_speed = cpupower_write_speed,
};
