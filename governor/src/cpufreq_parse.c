/* Strict parsers for the values cpufreq exposes in sysfs: CPU lists, frequency lists, word lists
 * and single kHz numbers. They take whatever a file holds (possibly garbage from a broken driver
 * or a fuzzer) and either return clean values or an error; nothing here touches the filesystem. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "governor/backend.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Reads an unsigned decimal at *s (no sign, at least one digit), advancing *s. */
static int take_uint(const char **s, unsigned long long limit, unsigned long long *ret)
{
    const char *p = *s;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    unsigned long long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > limit)
            return -ERANGE;
        p++;
    }
    *s = p;
    *ret = v;
    return 0;
}

static int cmp_u16(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int gov_parse_cpu_list(const char *s, uint16_t *cpus, size_t cap, size_t *ret_n)
{
    if (!s || !ret_n || (!cpus && cap))
        return -EINVAL;
    /* A bitmap first, so overlapping or repeated ranges cannot overflow the output. */
    static const size_t nbits = GOV_HW_MAX_CPUS;
    unsigned char seen[GOV_HW_MAX_CPUS] = {0};
    const char *p = s;
    for (;;) {
        while (is_space(*p) || *p == ',')
            p++;
        if (!*p)
            break;
        unsigned long long lo, hi;
        int r = take_uint(&p, nbits - 1, &lo);
        if (r)
            return r;
        hi = lo;
        if (*p == '-') {
            p++;
            r = take_uint(&p, nbits - 1, &hi);
            if (r)
                return r;
            if (hi < lo)
                return -EINVAL;
        }
        if (*p && !is_space(*p) && *p != ',')
            return -EINVAL;
        for (unsigned long long c = lo; c <= hi; c++)
            seen[c] = 1;
    }
    size_t n = 0;
    for (size_t c = 0; c < nbits; c++) {
        if (!seen[c])
            continue;
        if (n == cap)
            return -ERANGE;
        cpus[n++] = (uint16_t)c;
    }
    *ret_n = n;
    if (n > 1) /* already ascending; keeps the contract explicit */
        qsort(cpus, n, sizeof(*cpus), cmp_u16);
    return 0;
}

int gov_parse_khz(const char *s, uint32_t *ret)
{
    uint64_t v;
    if (!s || !ret)
        return -EINVAL;
    int r = cmn_parse_u64(s, &v);
    if (r)
        return r;
    if (v > UINT32_MAX)
        return -ERANGE;
    *ret = (uint32_t)v;
    return 0;
}

int gov_parse_freq_list(const char *s, uint32_t *khz, size_t cap, size_t *ret_n, size_t *ret_bad)
{
    if (!s || !ret_n || (!khz && cap))
        return -EINVAL;
    size_t n = 0, bad = 0;
    const char *p = s;
    for (;;) {
        while (is_space(*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        unsigned long long v;
        int r = take_uint(&p, UINT32_MAX, &v);
        if (r || (*p && !is_space(*p)) || v == 0) {
            /* Not a frequency: skip the whole token; never store a 0 kHz entry. */
            bad++;
            p = start;
            while (*p && !is_space(*p))
                p++;
            continue;
        }
        int dup = 0;
        for (size_t i = 0; i < n; i++)
            dup |= khz[i] == (uint32_t)v;
        if (dup)
            continue;
        if (n == cap)
            return -ERANGE;
        khz[n++] = (uint32_t)v;
    }
    if (n > 1)
        qsort(khz, n, sizeof(*khz), cmp_u32);
    *ret_n = n;
    if (ret_bad)
        *ret_bad = bad;
    return 0;
}

int gov_parse_word_list(const char *s, char (*words)[GOV_HW_NAME_LEN], size_t cap, size_t *ret_n)
{
    if (!s || !ret_n || (!words && cap))
        return -EINVAL;
    size_t n = 0;
    const char *p = s;
    for (;;) {
        while (is_space(*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && !is_space(*p))
            p++;
        size_t len = (size_t)(p - start);
        if (len >= GOV_HW_NAME_LEN || n == cap)
            return -E2BIG;
        memcpy(words[n], start, len);
        words[n][len] = '\0';
        n++;
    }
    *ret_n = n;
    return 0;
}
