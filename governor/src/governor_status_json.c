/* The status snapshot as JSON, shared by `ember governor status --json`, HTTP GET /v1/governor
 * and MQTT. Unknown numbers are null, never NaN (which is not JSON). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "governor/governor.h"

static void add_num(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_mhz(cJSON *o, const char *key, uint32_t khz)
{
    if (khz)
        cJSON_AddNumberToObject(o, key, khz / 1000.0);
    else
        cJSON_AddNullToObject(o, key);
}

char *gov_status_to_json(const struct gov_status *st)
{
    char reasons[128];
    if (!st)
        return NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "policy", st->policy);
    cJSON_AddStringToObject(root, "backend", st->backend);
    cJSON_AddStringToObject(root, "sysfs_root", st->sysfs_root);
    cJSON_AddStringToObject(root, "pstate_status", st->pstate_status);
    cJSON_AddBoolToObject(root, "monitor_only", st->monitor_only);
    if (st->monitor_only)
        cJSON_AddStringToObject(root, "monitor_reason", st->monitor_reason);
    cJSON_AddBoolToObject(root, "safe_state", st->safe_state);
    if (st->safe_state)
        cJSON_AddStringToObject(root, "safe_reason", st->safe_reason);
    cJSON_AddBoolToObject(root, "originals_saved", st->originals_saved);
    cJSON_AddStringToObject(root, "saved_path", st->saved_path);
    if (st->boost >= 0)
        cJSON_AddBoolToObject(root, "boost", st->boost);
    else
        cJSON_AddNullToObject(root, "boost");
    add_num(root, "cpu_temp_c", st->cpu_temp_c);
    add_num(root, "passive_trip_c", st->passive_trip_c);
    add_num(root, "critical_trip_c", st->critical_trip_c);
    add_num(root, "thermal_target_c", st->thermal_target_c);
    add_num(root, "power_cap_w", st->power_cap_w);
    add_num(root, "power_w", st->power_w);
    const char *ph = gov_phase_name(st->phase);
    cJSON_AddStringToObject(root, "phase", ph ? ph : "idle");
    cJSON_AddNumberToObject(root, "ticks", (double)st->ticks);
    cJSON_AddNumberToObject(root, "writes", (double)st->writes);
    cJSON_AddNumberToObject(root, "write_errors", (double)st->write_errors);
    cJSON *arr = cJSON_AddArrayToObject(root, "clusters");
    for (unsigned k = 0; arr && k < st->n_clusters; k++) {
        const struct gov_status_cluster *c = &st->c[k];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "name", c->name);
        cJSON_AddNumberToObject(o, "policies", c->n_policies);
        cJSON_AddStringToObject(o, "cpus", c->cpus);
        cJSON_AddStringToObject(o, "driver", c->driver);
        cJSON_AddStringToObject(o, "scaling_governor", c->hw_governor);
        add_mhz(o, "cpuinfo_min_mhz", c->cpuinfo_min_khz);
        add_mhz(o, "cpuinfo_max_mhz", c->cpuinfo_max_khz);
        add_mhz(o, "scaling_min_mhz", c->scaling_min_khz);
        add_mhz(o, "scaling_max_mhz", c->scaling_max_khz);
        add_mhz(o, "cur_mhz", c->cur_khz);
        add_mhz(o, "target_mhz", c->target_khz);
        gov_reasons_format(c->reasons, reasons, sizeof(reasons));
        cJSON_AddStringToObject(o, "reasons", reasons);
        cJSON_AddBoolToObject(o, "exact_freq", c->exact_freq);
        add_num(o, "util", c->util);
        add_num(o, "temp_c", c->temp_c);
        if (c->epp[0])
            cJSON_AddStringToObject(o, "epp", c->epp);
        else
            cJSON_AddNullToObject(o, "epp");
    }
    if (st->epp_target[0])
        cJSON_AddStringToObject(root, "epp_target", st->epp_target);
    else
        cJSON_AddNullToObject(root, "epp_target");
    add_num(root, "memory_target_frac", st->memory_target_frac);
    arr = cJSON_AddArrayToObject(root, "memory");
    for (unsigned k = 0; arr && k < st->n_memory; k++) {
        const struct gov_status_memory *m = &st->memory[k];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "devfreq_governor", m->governor);
        add_mhz(o, "min_mhz", (uint32_t)(m->min_hz / 1000));
        add_mhz(o, "max_mhz", (uint32_t)(m->max_hz / 1000));
        add_mhz(o, "cur_mhz", (uint32_t)(m->cur_hz / 1000));
    }
    arr = cJSON_AddArrayToObject(root, "thermal_zones");
    for (unsigned k = 0; arr && k < st->n_zones; k++) {
        const struct gov_status_zone *z = &st->zones[k];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "name", z->name);
        cJSON_AddStringToObject(o, "type", z->type);
        cJSON_AddBoolToObject(o, "valid", z->valid);
        add_num(o, "temp_c", z->temp_c);
        add_num(o, "passive_trip_c", z->passive_trip_c);
    }
    arr = cJSON_AddArrayToObject(root, "conflicts");
    for (unsigned k = 0; arr && k < st->n_conflicts; k++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddNumberToObject(o, "pid", st->conflicts[k].pid);
        cJSON_AddStringToObject(o, "comm", st->conflicts[k].comm);
        cJSON_AddStringToObject(o, "why", st->conflicts[k].why ? st->conflicts[k].why : "");
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
