/* Sensor discovery and reading: thermal zones and hwmon temperatures found once at open (a
 * sensor is what existed then), /proc/stat read every tick for utilisation deltas. Faults are
 * tracked per sensor so an event is raised on the transition into a fault and once when every
 * sensor is healthy again, and the reading carries a `fault` flag while any is bad. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/fileio.h"
#include "governor/sensors.h"

enum sensor_state { S_OK = 0, S_LOST, S_GARBAGE };

struct zone_slot {
    struct gov_thermal_zone z;
    enum sensor_state state;
};

struct hwmon_slot {
    struct gov_hwmon_temp t;
    enum sensor_state state;
    int tracked; /* a CPU sensor: its loss is a fault */
};

struct gov_sensors {
    char root[PATH_MAX];
    size_t nzones;
    struct zone_slot zones[GOV_MAX_ZONES];
    size_t nhwmon;
    struct hwmon_slot hwmon[GOV_MAX_HWMON_TEMPS];
    /* /proc/stat */
    enum sensor_state stat_state;
    size_t nprev;
    struct gov_cpu_times prev[GOV_HW_MAX_CPUS];
    unsigned char cpu_bad[GOV_HW_MAX_CPUS]; /* a cpuN line that was complete became bad */
    unsigned char cpu_seen_valid[GOV_HW_MAX_CPUS];
    int faulted; /* any fault reported and not yet recovered */
};

int gov_sensor_name_is_cpu(const char *name)
{
    static const char *const exact[] = {"x86_pkg_temp", "coretemp",   "k10temp",
                                        "zenpower",     "k8temp",     "via_cputemp",
                                        "cpu_thermal",  "soc_thermal"};
    static const char *const parts[] = {"cpu", "core", "soc", "pkg", "package", "cluster"};
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strcmp(name, exact[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (strcasestr(name, parts[i]))
            return 1;
    return 0;
}

enum gov_trip_type gov_trip_type_parse(const char *s)
{
    static const struct {
        const char *name;
        enum gov_trip_type type;
    } t[] = {{"active", GOV_TRIP_ACTIVE},
             {"passive", GOV_TRIP_PASSIVE},
             {"hot", GOV_TRIP_HOT},
             {"critical", GOV_TRIP_CRITICAL}};
    for (size_t i = 0; s && i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(s, t[i].name) == 0)
            return t[i].type;
    return GOV_TRIP_UNKNOWN;
}

/* Reads a temperature file: S_OK with *ret, S_LOST when it cannot be read, S_GARBAGE when it is
 * not a plausible temperature. */
static enum sensor_state read_temp(const char *path, int32_t *ret)
{
    int64_t v;
    char val[64];
    int r = cmn_read_string(path, val, sizeof(val));
    if (r == -EFBIG)
        return S_GARBAGE;
    if (r)
        return S_LOST;
    if (cmn_parse_i64(val, &v) || v < GOV_TEMP_MIN_MC || v > GOV_TEMP_MAX_MC)
        return S_GARBAGE;
    *ret = (int32_t)v;
    return S_OK;
}

static int name_has_index(const char *name, const char *prefix, unsigned long *ret)
{
    size_t n = strlen(prefix);
    char *end;
    if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9')
        return 0;
    *ret = strtoul(name + n, &end, 10);
    return *end == '\0';
}

static int cmp_zone(const void *a, const void *b)
{
    const struct zone_slot *x = a, *y = b;
    unsigned long i = 0, j = 0;
    name_has_index(x->z.name, "thermal_zone", &i);
    name_has_index(y->z.name, "thermal_zone", &j);
    return (i > j) - (i < j);
}

static int discover_zones(struct gov_sensors *s)
{
    char dir[PATH_MAX], path[PATH_MAX], val[64];
    int r;
    if ((r = cmn_path(dir, sizeof(dir), s->root, "sys/class/thermal")))
        return r;
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* no thermal framework: no zones */
    struct dirent *de;
    while ((de = readdir(d)) && s->nzones < GOV_MAX_ZONES) {
        unsigned long idx;
        if (!name_has_index(de->d_name, "thermal_zone", &idx))
            continue;
        struct zone_slot *zs = &s->zones[s->nzones];
        memset(zs, 0, sizeof(*zs));
        snprintf(zs->z.name, sizeof(zs->z.name), "thermal_zone%lu", idx);
        cmn_path(path, sizeof(path), s->root, "sys/class/thermal/%s/temp", zs->z.name);
        int32_t t = 0;
        enum sensor_state st = read_temp(path, &t);
        if (st == S_LOST)
            continue; /* no readable temp file: not a sensor we can use */
        cmn_path(path, sizeof(path), s->root, "sys/class/thermal/%s/type", zs->z.name);
        if (cmn_read_string(path, val, sizeof(val)) == 0)
            snprintf(zs->z.type, sizeof(zs->z.type), "%.*s", (int)sizeof(zs->z.type) - 1, val);
        zs->z.is_cpu = gov_sensor_name_is_cpu(zs->z.type);
        zs->z.valid = st == S_OK;
        zs->z.temp_mc = t;
        for (unsigned k = 0; k < 64 && zs->z.ntrips < GOV_MAX_TRIPS; k++) {
            int64_t tv;
            cmn_path(path, sizeof(path), s->root, "sys/class/thermal/%s/trip_point_%u_type",
                     zs->z.name, k);
            if (cmn_read_string(path, val, sizeof(val)) != 0)
                break;
            struct gov_trip trip = {.type = gov_trip_type_parse(val)};
            cmn_path(path, sizeof(path), s->root, "sys/class/thermal/%s/trip_point_%u_temp",
                     zs->z.name, k);
            if (cmn_read_string(path, val, sizeof(val)) != 0 || cmn_parse_i64(val, &tv) != 0)
                continue;
            /* THERMAL_TEMP_INVALID marks a trip the firmware never programmed. */
            if (tv == GOV_THERMAL_TEMP_INVALID || tv < GOV_TEMP_MIN_MC || tv > GOV_TEMP_MAX_MC)
                continue;
            trip.temp_mc = (int32_t)tv;
            cmn_path(path, sizeof(path), s->root, "sys/class/thermal/%s/trip_point_%u_hyst",
                     zs->z.name, k);
            if (cmn_read_string(path, val, sizeof(val)) == 0 && cmn_parse_i64(val, &tv) == 0 &&
                tv >= 0 && tv <= 100000)
                trip.hyst_mc = (int32_t)tv;
            zs->z.trips[zs->z.ntrips++] = trip;
        }
        s->nzones++;
    }
    closedir(d);
    qsort(s->zones, s->nzones, sizeof(s->zones[0]), cmp_zone);
    return 0;
}

static int discover_hwmon(struct gov_sensors *s)
{
    char dir[PATH_MAX], path[PATH_MAX], val[64];
    int r;
    if ((r = cmn_path(dir, sizeof(dir), s->root, "sys/class/hwmon")))
        return r;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long chip;
        if (!name_has_index(de->d_name, "hwmon", &chip))
            continue;
        char chipdir[PATH_MAX], name[GOV_HW_NAME_LEN] = "";
        cmn_path(chipdir, sizeof(chipdir), s->root, "sys/class/hwmon/hwmon%lu", chip);
        cmn_path(path, sizeof(path), "", "%s/name", chipdir);
        if (cmn_read_string(path, val, sizeof(val)) == 0)
            snprintf(name, sizeof(name), "%.*s", (int)sizeof(name) - 1, val);
        DIR *cd = opendir(chipdir);
        if (!cd)
            continue;
        struct dirent *ce;
        while ((ce = readdir(cd)) && s->nhwmon < GOV_MAX_HWMON_TEMPS) {
            unsigned idx;
            char tail[16];
            if (sscanf(ce->d_name, "temp%u_%15s", &idx, tail) != 2 || strcmp(tail, "input") != 0)
                continue;
            struct hwmon_slot *hs = &s->hwmon[s->nhwmon];
            memset(hs, 0, sizeof(*hs));
            snprintf(hs->t.chip, sizeof(hs->t.chip), "hwmon%lu", chip);
            memcpy(hs->t.name, name, sizeof(name));
            hs->t.index = idx;
            cmn_path(path, sizeof(path), "", "%s/temp%u_input", chipdir, idx);
            int32_t t = 0;
            enum sensor_state st = read_temp(path, &t);
            if (st == S_LOST)
                continue;
            hs->t.valid = st == S_OK;
            hs->t.temp_mc = t;
            cmn_path(path, sizeof(path), "", "%s/temp%u_label", chipdir, idx);
            if (cmn_read_string(path, val, sizeof(val)) == 0)
                snprintf(hs->t.label, sizeof(hs->t.label), "%.*s", (int)sizeof(hs->t.label) - 1,
                         val);
            int32_t lim;
            cmn_path(path, sizeof(path), "", "%s/temp%u_max", chipdir, idx);
            if (read_temp(path, &lim) == S_OK)
                hs->t.max_mc = lim;
            cmn_path(path, sizeof(path), "", "%s/temp%u_crit", chipdir, idx);
            if (read_temp(path, &lim) == S_OK)
                hs->t.crit_mc = lim;
            hs->t.is_cpu = gov_sensor_name_is_cpu(name);
            hs->tracked = hs->t.is_cpu;
            s->nhwmon++;
        }
        closedir(cd);
    }
    closedir(d);
    return 0;
}

int gov_sensors_open(const struct gov_sensors_params *params, struct gov_sensors **ret, char *err,
                     size_t err_len)
{
    if (!params || !ret)
        return -EINVAL;
    *ret = NULL;
    const char *root = params->root && *params->root ? params->root : "/";
    struct gov_sensors *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (strlen(root) >= sizeof(s->root)) {
        cmn_set_err(err, err_len, "sensor root too long");
        free(s);
        return -ENAMETOOLONG;
    }
    strcpy(s->root, root);
    int r = discover_zones(s);
    if (!r)
        r = discover_hwmon(s);
    if (r) {
        cmn_set_err(err, err_len, "%s: %s", root, strerror(-r));
        free(s);
        return r;
    }
    *ret = s;
    return 0;
}

void gov_sensors_free(struct gov_sensors *s)
{
    free(s);
}

size_t gov_sensors_zone_count(const struct gov_sensors *s)
{
    return s ? s->nzones : 0;
}

const struct gov_thermal_zone *gov_sensors_zone(const struct gov_sensors *s, size_t i)
{
    return s && i < s->nzones ? &s->zones[i].z : NULL;
}

size_t gov_sensors_hwmon_count(const struct gov_sensors *s)
{
    return s ? s->nhwmon : 0;
}

/* Records a sensor's new state: an event on the way into a fault, and the first fault's detail
 * in the reading. */
static void note_state(enum sensor_state *cur, enum sensor_state now, const char *path,
                       const char *what, struct gov_sensor_reading *rd, struct gov_events *ev)
{
    if (now != S_OK) {
        if (!rd->fault)
            snprintf(rd->fault_detail, sizeof(rd->fault_detail), "%s: %s", path, what);
        rd->fault = 1;
        if (*cur != now)
            gov_events_push(ev, now == S_LOST ? GOV_EVENT_SENSOR_LOST : GOV_EVENT_SENSOR_GARBAGE,
                            now == S_LOST ? -ENOENT : -EINVAL, "%s: %s", path, what);
    }
    *cur = now;
}

static void read_procstat(struct gov_sensors *s, struct gov_sensor_reading *rd,
                          struct gov_events *ev)
{
    char path[PATH_MAX];
    char *buf = NULL;
    size_t len = 0;
    struct gov_cpu_times *cur = NULL;
    size_t n = 0;

    for (unsigned c = 0; c < GOV_HW_MAX_CPUS; c++)
        rd->util[c] = -1.0f;
    rd->ncpus = 0;
    cmn_path(path, sizeof(path), s->root, "proc/stat");
    buf = malloc(65536);
    cur = malloc(sizeof(*cur) * GOV_HW_MAX_CPUS);
    if (!buf || !cur)
        goto out;
    int r = cmn_read_file(path, buf, 65536, &len);
    if (r) {
        note_state(&s->stat_state, r == -EFBIG ? S_GARBAGE : S_LOST, path,
                   r == -EFBIG ? "too large" : strerror(-r), rd, ev);
        goto out;
    }
    r = gov_procstat_parse(buf, len, cur, GOV_HW_MAX_CPUS, &n);
    if (r) {
        note_state(&s->stat_state, S_GARBAGE, path, "no parsable cpuN line", rd, ev);
        goto out;
    }
    note_state(&s->stat_state, S_OK, path, "", rd, ev);
    for (size_t i = 0; i < n; i++) {
        const struct gov_cpu_times *t = &cur[i];
        unsigned c = t->cpu;
        if (c + 1 > rd->ncpus)
            rd->ncpus = c + 1;
        const struct gov_cpu_times *p = NULL;
        for (size_t k = 0; k < s->nprev; k++)
            if (s->prev[k].cpu == c)
                p = &s->prev[k];
        float u = p ? gov_cpu_util(p, t) : -1.0f;
        enum sensor_state st = S_OK;
        char what[64] = "";
        if (!t->valid) {
            st = S_GARBAGE;
            snprintf(what, sizeof(what), "cpu%u line is incomplete or garbled", c);
        } else if (u == -2.0f) {
            st = S_GARBAGE;
            snprintf(what, sizeof(what), "cpu%u counters went backwards", c);
        }
        enum sensor_state prev_st = s->cpu_bad[c] ? S_GARBAGE : S_OK;
        note_state(&prev_st, st, path, what, rd, ev);
        s->cpu_bad[c] = prev_st != S_OK;
        if (t->valid)
            s->cpu_seen_valid[c] = 1;
        rd->util[c] = u >= 0.0f ? u : -1.0f;
    }
    /* A CPU whose line disappears (hot-unplug) is not a sensor fault: the cpufreq policy shows
     * it offline too. Keep only this sample for the next delta. */
    memcpy(s->prev, cur, n * sizeof(*cur));
    s->nprev = n;
out:
    free(buf);
    free(cur);
}

int gov_sensors_read(struct gov_sensors *s, uint64_t now_ns, struct gov_sensor_reading *ret,
                     struct gov_events *ev)
{
    char path[PATH_MAX];
    if (!s || !ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    ret->ts_ns = now_ns;
    ret->cpu_temp_c = ret->passive_trip_c = ret->critical_trip_c = NAN;

    read_procstat(s, ret, ev);

    double hottest_cpu_zone = NAN, hottest_any_zone = NAN;
    for (size_t i = 0; i < s->nzones; i++) {
        struct zone_slot *zs = &s->zones[i];
        cmn_path(path, sizeof(path), s->root, "sys/class/thermal/%s/temp", zs->z.name);
        int32_t t = zs->z.temp_mc;
        enum sensor_state st = read_temp(path, &t);
        note_state(&zs->state, st, path,
                   st == S_LOST ? "thermal zone temperature vanished"
                                : "thermal zone temperature is not a plausible value",
                   ret, ev);
        zs->z.valid = st == S_OK;
        if (st == S_OK) {
            zs->z.temp_mc = t;
            double c = t / 1000.0;
            if (zs->z.is_cpu && !(c <= hottest_cpu_zone))
                hottest_cpu_zone = c;
            if (!(c <= hottest_any_zone))
                hottest_any_zone = c;
        }
        for (unsigned k = 0; k < zs->z.ntrips; k++) {
            const struct gov_trip *tr = &zs->z.trips[k];
            double c = tr->temp_mc / 1000.0;
            if (tr->type == GOV_TRIP_PASSIVE && zs->z.is_cpu && !(c >= ret->passive_trip_c))
                ret->passive_trip_c = c;
            if (tr->type == GOV_TRIP_CRITICAL && !(c >= ret->critical_trip_c))
                ret->critical_trip_c = c;
        }
    }

    double hw_pkg = NAN, hw_max = NAN, hw_crit = NAN;
    for (size_t i = 0; i < s->nhwmon; i++) {
        struct hwmon_slot *hs = &s->hwmon[i];
        cmn_path(path, sizeof(path), s->root, "sys/class/hwmon/%s/temp%u_input", hs->t.chip,
                 hs->t.index);
        int32_t t = hs->t.temp_mc;
        enum sensor_state st = read_temp(path, &t);
        if (hs->tracked)
            note_state(&hs->state, st, path,
                       st == S_LOST ? "hwmon temperature vanished"
                                    : "hwmon temperature is not a plausible value",
                       ret, ev);
        hs->t.valid = st == S_OK;
        if (st != S_OK || !hs->t.is_cpu)
            continue;
        hs->t.temp_mc = t;
        double c = t / 1000.0;
        if (!(c <= hw_max))
            hw_max = c;
        /* The package/control sensor is the one the vendor's own throttling follows. */
        if (strncmp(hs->t.label, "Package", 7) == 0 || strcmp(hs->t.label, "Tctl") == 0 ||
            strcmp(hs->t.label, "Tdie") == 0)
            if (!(c <= hw_pkg))
                hw_pkg = c;
        if (hs->t.crit_mc && !(hs->t.crit_mc / 1000.0 >= hw_crit))
            hw_crit = hs->t.crit_mc / 1000.0;
    }

    if (!isnan(hottest_cpu_zone))
        ret->cpu_temp_c = hottest_cpu_zone;
    else if (!isnan(hw_pkg))
        ret->cpu_temp_c = hw_pkg;
    else if (!isnan(hw_max))
        ret->cpu_temp_c = hw_max;
    else
        ret->cpu_temp_c = hottest_any_zone;
    if (isnan(ret->critical_trip_c))
        ret->critical_trip_c = hw_crit;

    if (ret->fault) {
        s->faulted = 1;
    } else if (s->faulted) {
        s->faulted = 0;
        gov_events_push(ev, GOV_EVENT_SENSOR_RECOVERED, 0, "every sensor reads valid values again");
    }
    return 0;
}
