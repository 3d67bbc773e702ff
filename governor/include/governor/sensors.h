/* The governor's sensors: per-CPU utilisation from <root>/proc/stat (deltas between two reads),
 * thermal zones from <root>/sys/class/thermal (type, temperature, trip points with their types;
 * THERMAL_TEMP_INVALID trips skipped) and hwmon temperatures from <root>/sys/class/hwmon. Package
 * power is not read here: the agent hands it in when telemetry knows it. A sensor found at open
 * that later disappears or reads garbage sets `fault` (the runtime goes to the safe state) and
 * raises one event per transition, not one per tick. */
#ifndef GOVERNOR_SENSORS_H
#define GOVERNOR_SENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "governor/backend.h"
#include "governor/event.h"

#define GOV_MAX_ZONES            32
#define GOV_MAX_TRIPS            12
#define GOV_MAX_HWMON_TEMPS      64
#define GOV_THERMAL_TEMP_INVALID (-274000)
/* Plausible range of a die temperature in m°C; anything outside is garbage. */
#define GOV_TEMP_MIN_MC (-55000)
#define GOV_TEMP_MAX_MC 175000

enum gov_trip_type {
    GOV_TRIP_UNKNOWN = 0,
    GOV_TRIP_ACTIVE,
    GOV_TRIP_PASSIVE,
    GOV_TRIP_HOT,
    GOV_TRIP_CRITICAL,
};

struct gov_trip {
    enum gov_trip_type type;
    int32_t temp_mc;
    int32_t hyst_mc;
};

struct gov_thermal_zone {
    char name[GOV_HW_NAME_LEN]; /* "thermal_zone0" */
    char type[GOV_HW_NAME_LEN]; /* "x86_pkg_temp", "bigcore0-thermal", ... */
    int is_cpu;                 /* the type names a CPU/SoC/package sensor */
    int valid;                  /* the last read was a plausible temperature */
    int32_t temp_mc;
    unsigned ntrips;
    struct gov_trip trips[GOV_MAX_TRIPS]; /* programmed trips only */
};

struct gov_hwmon_temp {
    char chip[GOV_HW_NAME_LEN];  /* "hwmon1" */
    char name[GOV_HW_NAME_LEN];  /* the chip's name file: "coretemp", "k10temp" */
    char label[GOV_HW_NAME_LEN]; /* tempN_label, "" when absent */
    unsigned index;              /* N of tempN_input */
    int is_cpu;
    int valid;
    int32_t temp_mc;
    int32_t max_mc;  /* tempN_max, 0 when absent */
    int32_t crit_mc; /* tempN_crit, 0 when absent */
};

/* One /proc/stat cpuN line. */
struct gov_cpu_times {
    unsigned cpu;
    int valid;      /* enough numeric fields */
    uint64_t total; /* user+nice+system+idle+iowait+irq+softirq+steal */
    uint64_t idle;  /* idle+iowait */
};

struct gov_sensor_reading {
    uint64_t ts_ns;
    unsigned ncpus;              /* entries of util (highest CPU number seen + 1) */
    float util[GOV_HW_MAX_CPUS]; /* 0..1; negative when unknown (first read, bad line) */
    double cpu_temp_c;           /* hottest valid CPU sensor; NAN when none */
    double passive_trip_c;       /* lowest programmed passive trip of a CPU zone; NAN when none */
    double critical_trip_c;      /* lowest critical trip, else hwmon crit; NAN when none */
    int fault;                   /* a sensor is lost or returns garbage now */
    char fault_detail[256];      /* the first such sensor, with its path */
};

struct gov_sensors_params {
    const char *root; /* NULL or "" = "/" */
};

struct gov_sensors;

int gov_sensors_open(const struct gov_sensors_params *params, struct gov_sensors **ret, char *err,
                     size_t err_len);
void gov_sensors_free(struct gov_sensors *s);

/* Reads every sensor. Returns 0 even with faults (they are in ret->fault and events); -errno only
 * for bad arguments. */
int gov_sensors_read(struct gov_sensors *s, uint64_t now_ns, struct gov_sensor_reading *ret,
                     struct gov_events *ev);

size_t gov_sensors_zone_count(const struct gov_sensors *s);
const struct gov_thermal_zone *gov_sensors_zone(const struct gov_sensors *s, size_t i);
size_t gov_sensors_hwmon_count(const struct gov_sensors *s);

/* ---- parsers (public for the fuzzer and tests) ---- */

/* Parses the cpuN lines of /proc/stat text (the aggregate "cpu" line is skipped). A line with
 * fewer than 4 numeric fields is returned with valid = 0. -ERANGE when more than cap lines or a
 * CPU number >= GOV_HW_MAX_CPUS, -EINVAL when there is no cpuN line at all. */
int gov_procstat_parse(const char *text, size_t len, struct gov_cpu_times *ret, size_t cap,
                       size_t *ret_n);
/* Utilisation between two samples of one CPU: 0..1, or -1 when unknown (invalid sample, no time
 * passed) and -2 when the counters went backwards (garbage). */
float gov_cpu_util(const struct gov_cpu_times *prev, const struct gov_cpu_times *cur);
/* "passive" -> GOV_TRIP_PASSIVE ...; GOV_TRIP_UNKNOWN otherwise. */
enum gov_trip_type gov_trip_type_parse(const char *s);
/* Whether a thermal zone type or hwmon chip name is a CPU sensor. */
int gov_sensor_name_is_cpu(const char *name);

#endif
