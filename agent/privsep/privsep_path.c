/* The helper's whitelist (see privsep_path.h). Written as explicit patterns over path components
 * rather than globs or regexes so that what is allowed can be read off the code:
 *
 *   write  sys/devices/system/cpu/cpufreq/policyN/{scaling_governor, scaling_min_freq,
 *              scaling_max_freq, scaling_setspeed, energy_performance_preference, boost}
 *          sys/devices/system/cpu/cpufreq/boost
 *          sys/devices/system/cpu/intel_pstate/{no_turbo, min_perf_pct, max_perf_pct}
 *          sys/class/devfreq/NAME/{governor, min_freq, max_freq, userspace/set_freq}
 *          sys/devices/.../devfreq/NAME/{same}        (where the class links point)
 *   read   sys/class/powercap/intel-rapl*ZONE/energy_uj
 *          sys/devices/virtual/powercap/intel-rapl/intel-rapl*ZONE[/intel-rapl*SUB]/energy_uj
 *          sys/class/hwmon/hwmonN/energyN_input     (amd_energy made these root-only:
 *          sys/devices/.../hwmon/hwmonN/energyN_input  CVE-2020-12912; nothing else of hwmon) */
#include "privsep_path.h"

#include <string.h>

#define MAX_COMPONENTS 16
#define MAX_NAME       64

static int name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
}

/* Splits rel into components; 0 when any is empty, ".", "..", too long or has another char. */
static int split(const char *rel, char comp[][MAX_NAME], int *ret_n)
{
    int n = 0;
    const char *p = rel;
    if (!*p)
        return 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= MAX_NAME || n == MAX_COMPONENTS)
            return 0;
        for (size_t i = 0; i < len; i++)
            if (!name_char_ok(p[i]))
                return 0;
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        memcpy(comp[n], p, len);
        comp[n][len] = '\0';
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    *ret_n = n;
    return 1;
}

static int is_one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static int is_policy_dir(const char *s)
{
    if (strncmp(s, "policy", 6) != 0 || !s[6] || strlen(s) > 9)
        return 0;
    for (const char *p = s + 6; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

static int is_rapl_zone(const char *s)
{
    return strncmp(s, "intel-rapl:", 11) == 0 && s[11] >= '0' && s[11] <= '9';
}

/* c[0..n) begins with the given components. */
static int starts(char comp[][MAX_NAME], int n, const char *const *prefix)
{
    int k = 0;
    for (; prefix[k]; k++)
        if (k >= n || strcmp(comp[k], prefix[k]) != 0)
            return 0;
    return 1;
}

static int cpufreq_write_ok(char comp[][MAX_NAME], int n)
{
    static const char *const cpu[] = {"sys", "devices", "system", "cpu", NULL};
    static const char *const policy_attrs[] = {"scaling_governor",
                                               "scaling_min_freq",
                                               "scaling_max_freq",
                                               "scaling_setspeed",
                                               "energy_performance_preference",
                                               "boost",
                                               NULL};
    static const char *const pstate_attrs[] = {"no_turbo", "min_perf_pct", "max_perf_pct", NULL};
    if (!starts(comp, n, cpu))
        return 0;
    if (n == 7 && strcmp(comp[4], "cpufreq") == 0 && is_policy_dir(comp[5]))
        return is_one_of(comp[6], policy_attrs);
    if (n == 6 && strcmp(comp[4], "cpufreq") == 0)
        return strcmp(comp[5], "boost") == 0;
    if (n == 6 && strcmp(comp[4], "intel_pstate") == 0)
        return is_one_of(comp[5], pstate_attrs);
    return 0;
}

static int devfreq_write_ok(char comp[][MAX_NAME], int n)
{
    static const char *const attrs[] = {"governor", "min_freq", "max_freq", NULL};
    int k; /* index of the "devfreq" component */
    if (n >= 5 && strcmp(comp[0], "sys") == 0 && strcmp(comp[1], "class") == 0 &&
        strcmp(comp[2], "devfreq") == 0)
        k = 2;
    else if (n >= 6 && strcmp(comp[0], "sys") == 0 && strcmp(comp[1], "devices") == 0) {
        /* the device directory's own path is free; the last "devfreq" before NAME/attr counts */
        int tail = strcmp(comp[n - 2], "userspace") == 0 ? 4 : 3;
        k = n - tail;
        if (k < 3 || strcmp(comp[k], "devfreq") != 0)
            return 0;
    } else
        return 0;
    if (n == k + 3)
        return is_one_of(comp[k + 2], attrs);
    return n == k + 4 && strcmp(comp[k + 2], "userspace") == 0 &&
           strcmp(comp[k + 3], "set_freq") == 0;
}

static int rapl_read_ok(char comp[][MAX_NAME], int n)
{
    static const char *const cls[] = {"sys", "class", "powercap", NULL};
    static const char *const dev[] = {"sys", "devices", "virtual", "powercap", "intel-rapl", NULL};
    if (strcmp(comp[n - 1], "energy_uj") != 0)
        return 0;
    if (n == 5 && starts(comp, n, cls))
        return is_rapl_zone(comp[3]);
    if ((n == 7 || n == 8) && starts(comp, n, dev))
        return is_rapl_zone(comp[5]) && (n == 7 || is_rapl_zone(comp[6]));
    return 0;
}

/* "prefixN" with N one or more digits. */
static int is_numbered(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0 || !s[n])
        return 0;
    for (const char *p = s + n; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* energyN_input of an hwmon device, through the class link or where it resolves. */
static int hwmon_energy_read_ok(char comp[][MAX_NAME], int n)
{
    static const char *const cls[] = {"sys", "class", "hwmon", NULL};
    const char *last = comp[n - 1];
    size_t len = strlen(last);
    if (len <= 6 + 6 || strcmp(last + len - 6, "_input") != 0)
        return 0;
    char chan[MAX_NAME];
    memcpy(chan, last, len - 6);
    chan[len - 6] = '\0';
    if (!is_numbered(chan, "energy") || !is_numbered(comp[n - 2], "hwmon"))
        return 0;
    if (n == 5)
        return starts(comp, n, cls);
    return n >= 6 && strcmp(comp[0], "sys") == 0 && strcmp(comp[1], "devices") == 0 &&
           strcmp(comp[n - 3], "hwmon") == 0;
}

int privsep_path_allowed(const char *rel, enum privsep_access access)
{
    char comp[MAX_COMPONENTS][MAX_NAME];
    int n = 0;
    if (!rel || !split(rel, comp, &n))
        return 0;
    switch (access) {
    case PRIVSEP_ACCESS_WRITE:
        return cpufreq_write_ok(comp, n) || devfreq_write_ok(comp, n);
    case PRIVSEP_ACCESS_READ_COUNTER:
        return rapl_read_ok(comp, n) || hwmon_energy_read_ok(comp, n);
    }
    return 0;
}

int privsep_value_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 31)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}
