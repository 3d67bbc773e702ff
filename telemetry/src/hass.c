/* Home Assistant MQTT discovery: the retained config messages that make an Ember box appear in
 * Home Assistant as one device with sensors (power, energy, temperature, CPU frequency, tokens per
 * second, joules per token), a select for the governor policy and a number for the power cap.
 * Field names follow Home Assistant's MQTT discovery documentation (full names, not the
 * abbreviations); every entity has a unique_id and takes its availability from our `status`
 * topic. The table below is the whole description; tel_hass_config renders one entry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "telemetry/mqtt.h"

enum hass_kind { HASS_SENSOR, HASS_SELECT, HASS_NUMBER };

struct hass_entity {
    enum hass_kind kind;
    const char *object; /* suffix of unique_id and of the config topic */
    const char *name;
    const char *state_suffix; /* state topic under base */
    const char *value_template;
    const char *unit;
    const char *device_class; /* NULL: none */
    const char *state_class;  /* NULL: none */
    const char *icon;
};

static const struct hass_entity hass_entities[] = {
    {HASS_SENSOR, "power", "Power", "telemetry", "{{ value_json.power_w }}", "W", "power",
     "measurement", NULL},
    {HASS_SENSOR, "energy", "Energy", "telemetry", "{{ value_json.energy_wh }}", "Wh", "energy",
     "total_increasing", NULL},
    {HASS_SENSOR, "temperature", "Temperature", "telemetry", "{{ value_json.temp_c }}",
     "\xC2\xB0"
     "C",
     "temperature", "measurement", NULL},
    /* The mean over CPUs; an empty list (no cpufreq) reads as unknown. */
    {HASS_SENSOR, "cpu_frequency", "CPU frequency", "telemetry",
     "{% set f = value_json.freq_mhz %}{{ ((f | sum) / (f | length)) | round(0) if f | length > 0 "
     "else none }}",
     "MHz", "frequency", "measurement", NULL},
    {HASS_SENSOR, "tokens_per_s", "Tokens per second", "session", "{{ value_json.tokens_per_s }}",
     "tok/s", NULL, "measurement", "mdi:speedometer"},
    {HASS_SENSOR, "joules_per_token", "Joules per token", "session", "{{ value_json.j_per_token }}",
     "J/tok", NULL, "measurement", "mdi:lightning-bolt"},
    {HASS_SELECT, "governor_policy", "Governor policy", "governor/state", NULL, NULL, NULL, NULL,
     "mdi:speedometer-slow"},
    {HASS_NUMBER, "power_cap", "Power cap", "power_cap/state", NULL, "W", "power", NULL, NULL},
};

static const char *const hass_components[] = {"sensor", "select", "number"};

static int add_str(cJSON *o, const char *k, const char *v)
{
    return cJSON_AddStringToObject(o, k, v) != NULL;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + 1 + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

int tel_hass_config(const struct tel_mqtt_params *p, const char *base, unsigned idx,
                    char **ret_topic, char **ret_payload)
{
    if (idx >= sizeof(hass_entities) / sizeof(hass_entities[0]))
        return -ENOENT;
    const struct hass_entity *e = &hass_entities[idx];
    const char *dprefix = p->discovery_prefix ? p->discovery_prefix : "homeassistant";
    char uid[160], ident[128], devname[128], topic[512];
    snprintf(ident, sizeof(ident), "ember_%s", p->device_id);
    snprintf(uid, sizeof(uid), "ember_%s_%s", p->device_id, e->object);
    if (p->device_name && *p->device_name)
        snprintf(devname, sizeof(devname), "%s", p->device_name);
    else
        snprintf(devname, sizeof(devname), "Ember %s", p->device_id);
    snprintf(topic, sizeof(topic), "%s/%s/%s/%s/config", dprefix, hass_components[e->kind], ident,
             e->object);

    char *state = join(base, e->state_suffix);
    char *avail = join(base, "status");
    char *command = NULL;
    cJSON *o = cJSON_CreateObject();
    int ok = o && state && avail;
    /* No object_id (deprecated in recent Home Assistant): with has_entity_name the entity id
     * derives from the device name and the entity name, e.g. sensor.ember_box1_power. */
    ok = ok && add_str(o, "name", e->name) && add_str(o, "unique_id", uid) &&
         cJSON_AddTrueToObject(o, "has_entity_name") != NULL && add_str(o, "state_topic", state) &&
         add_str(o, "availability_topic", avail) && add_str(o, "payload_available", "online") &&
         add_str(o, "payload_not_available", "offline") &&
         cJSON_AddNumberToObject(o, "qos", 1) != NULL;
    if (ok && e->value_template)
        ok = add_str(o, "value_template", e->value_template);
    if (ok && e->unit)
        ok = add_str(o, "unit_of_measurement", e->unit);
    if (ok && e->device_class)
        ok = add_str(o, "device_class", e->device_class);
    if (ok && e->state_class)
        ok = add_str(o, "state_class", e->state_class);
    if (ok && e->icon)
        ok = add_str(o, "icon", e->icon);

    const struct tel_mqtt_commands *c = &p->commands;
    if (ok && e->kind == HASS_SELECT) {
        command = join(base, "governor/set");
        cJSON *opts = command ? cJSON_AddArrayToObject(o, "options") : NULL;
        ok = command && opts && add_str(o, "command_topic", command);
        for (uint32_t i = 0; ok && i < c->n_policies && i < TEL_MQTT_MAX_POLICIES; i++) {
            cJSON *s = cJSON_CreateString(c->policies[i]);
            ok = s != NULL;
            if (ok)
                cJSON_AddItemToArray(opts, s);
        }
    } else if (ok && e->kind == HASS_NUMBER) {
        command = join(base, "power_cap/set");
        /* power_cap/state says "off" when uncapped: payload_reset makes that read as unknown
         * instead of a parse error. */
        ok = command && add_str(o, "command_topic", command) &&
             cJSON_AddNumberToObject(o, "min", c->cap_min_w) != NULL &&
             cJSON_AddNumberToObject(o, "max", c->cap_max_w) != NULL &&
             cJSON_AddNumberToObject(o, "step", 1) != NULL && add_str(o, "mode", "box") &&
             add_str(o, "payload_reset", "off");
    }

    cJSON *dev = ok ? cJSON_AddObjectToObject(o, "device") : NULL;
    cJSON *ids = dev ? cJSON_AddArrayToObject(dev, "identifiers") : NULL;
    cJSON *id0 = ids ? cJSON_CreateString(ident) : NULL;
    ok = ok && id0;
    if (ok) {
        cJSON_AddItemToArray(ids, id0);
        ok = add_str(dev, "name", devname) && add_str(dev, "manufacturer", "Ember") &&
             add_str(dev, "model", "Ember LLM appliance");
        if (ok && p->sw_version && *p->sw_version)
            ok = add_str(dev, "sw_version", p->sw_version);
    }

    cJSON *origin = ok ? cJSON_AddObjectToObject(o, "origin") : NULL;
    ok = ok && origin && add_str(origin, "name", "Ember");
    if (ok && p->sw_version && *p->sw_version)
        ok = add_str(origin, "sw_version", p->sw_version);

    char *payload = ok ? cJSON_PrintUnformatted(o) : NULL;
    char *t = payload ? strdup(topic) : NULL;
    cJSON_Delete(o);
    free(state);
    free(avail);
    free(command);
    if (!payload || !t) {
        free(payload);
        free(t);
        return -ENOMEM;
    }
    *ret_topic = t;
    *ret_payload = payload;
    return 0;
}
