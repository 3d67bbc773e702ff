/* Parsing of /proc/stat cpuN lines and the utilisation between two samples. The text comes from a
 * file that may be truncated or garbled (a fake tree, a fuzzer), so every field is checked and a
 * bad line only marks its own CPU unknown. */
#include <errno.h>
#include <string.h>

#include "governor/sensors.h"

/* Parses one unsigned decimal field; returns the position after it or NULL. */
static const char *take_field(const char *p, const char *end, uint64_t *ret)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p < '0' || *p > '9')
        return NULL;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
        p++;
    }
    if (p < end && *p != ' ' && *p != '\t')
        return NULL;
    *ret = v;
    return p;
}

int gov_procstat_parse(const char *text, size_t len, struct gov_cpu_times *ret, size_t cap,
                       size_t *ret_n)
{
    if (!text || !ret_n || (!ret && cap))
        return -EINVAL;
    size_t n = 0;
    const char *p = text, *stop = text + len;
    while (p < stop) {
        const char *eol = memchr(p, '\n', (size_t)(stop - p));
        const char *end = eol ? eol : stop;
        /* "cpuN" only: the aggregate "cpu " line and other keys are skipped. */
        if (end - p > 3 && memcmp(p, "cpu", 3) == 0 && p[3] >= '0' && p[3] <= '9') {
            const char *q = p + 3;
            unsigned long cpu = 0;
            while (q < end && *q >= '0' && *q <= '9') {
                cpu = cpu * 10 + (unsigned long)(*q - '0');
                if (cpu >= GOV_HW_MAX_CPUS)
                    return -ERANGE;
                q++;
            }
            if (n == cap)
                return -ERANGE;
            struct gov_cpu_times *t = &ret[n++];
            memset(t, 0, sizeof(*t));
            t->cpu = (unsigned)cpu;
            if (q < end && (*q == ' ' || *q == '\t')) {
                uint64_t f[10];
                int nf = 0;
                while (nf < 10) {
                    const char *next = take_field(q, end, &f[nf]);
                    if (!next)
                        break;
                    q = next;
                    nf++;
                }
                while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
                    q++;
                /* user nice system idle are the minimum; anything left over is garbage. */
                if (nf >= 4 && q == end) {
                    uint64_t total = 0;
                    int overflow = 0;
                    /* guest and guest_nice (fields 9, 10) are already inside user and nice. */
                    for (int k = 0; k < nf && k < 8; k++) {
                        if (total > UINT64_MAX - f[k])
                            overflow = 1;
                        total += f[k];
                    }
                    uint64_t idle = f[3] + (nf >= 5 ? f[4] : 0);
                    if (!overflow && idle >= f[3]) {
                        t->valid = 1;
                        t->total = total;
                        t->idle = idle;
                    }
                }
            }
        }
        p = eol ? eol + 1 : stop;
    }
    if (n == 0)
        return -EINVAL;
    *ret_n = n;
    return 0;
}

float gov_cpu_util(const struct gov_cpu_times *prev, const struct gov_cpu_times *cur)
{
    if (!prev || !cur || !prev->valid || !cur->valid || prev->cpu != cur->cpu)
        return -1.0f;
    if (cur->total < prev->total || cur->idle < prev->idle)
        return -2.0f;
    uint64_t dt = cur->total - prev->total, di = cur->idle - prev->idle;
    if (di > dt)
        return -2.0f;
    if (dt == 0)
        return -1.0f;
    return (float)(1.0 - (double)di / (double)dt);
}
