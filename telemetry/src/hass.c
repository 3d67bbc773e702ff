/* Home Assistant MQTT discovery: the retained config messages that make an Ember box appear in
 * Home Assistant as one device with sensors (power, energy, temperature, CPU frequency,
 * utilisation, engine phase, loaded model, tokens per second, joules per token), a select for the
 * governor policy and a number for the power cap (0 = no cap). Either one message per entity
 * (<prefix>/<component>/ember_<id>/<object>/config) or, in device mode, one message for the whole
 * device (<prefix>/device/ember_<id>/config with its entities under "components").
 *
 * Field names follow Home Assistant's MQTT discovery documentation (full names, not the
 * abbreviations: "components" is what the documentation's "cmps" abbreviates). Every entity has a
 * unique_id and takes its availability from our `status` topic; the select and the number also
 * from governor/available (availability_mode all), so they turn unavailable when no governor can
 * carry out their commands. Sensors of live values read the non-retained `state` topic and expire
 * after expire_after_s without one. Templates are written for Home Assistant's renderer: a numeric
 * sensor's template renders `None` (unknown) for a JSON null, never "" or an error; an enum's
 * always renders one of its options. tests/hass/hass_check.py renders every template with jinja2
 * against real payloads. The table below is the whole description. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "telemetry/mqtt.h"

enum hass_kind { HASS_SENSOR, HASS_SELECT, HASS_NUMBER };

static const char *const hass_platforms[] = {"sensor", "select", "number"};

struct hass_entity {
    enum hass_kind kind;
    const char *object; /* suffix of unique_id and of the config topic; the component key */
    const char *name;
    const char *state_suffix; /* state topic under base */
    const char *value_template;
    const char *unit;
    const char *device_class; /* NULL: none */
    const char *state_class;  /* NULL: none */
    const char *icon;
    int precision;                   /* suggested_display_precision; -1: none */
    bool live;                       /* expire_after applies */
    bool governed;                   /* also unavailable while governor/available says offline */
    bool attributes;                 /* json_attributes_topic = the state topic */
    const char *attributes_template; /* NULL: the whole JSON object */
    const char *const *options;      /* enum sensor options */
};

static const char *const phase_options[] = {"idle", "prefill", "decode", NULL};

/* Per-request details shown as attributes of the tokens-per-second sensor. */
#define SESSION_ATTRS                                                                           \
    "{{ {'prompt_tokens': value_json.prompt_tokens, 'gen_tokens': value_json.gen_tokens, "      \
    "'ttft_ms': value_json.ttft_ms, 'duration_ms': value_json.duration_ms, 'energy_j': "        \
    "value_json.energy_j, 'j_per_token': value_json.j_per_token, 'policy': value_json.policy} " \
    "| tojson }}"

static const struct hass_entity hass_entities[] = {
    /* Display precision as in every text output: W to 2 decimals, J/token to 4. */
    {HASS_SENSOR, "power", "Power", "state", "{{ value_json.power_w }}", "W", "power",
     "measurement", NULL, 2, true, false, false, NULL, NULL},
    {HASS_SENSOR, "energy", "Energy", "state", "{{ value_json.energy_wh }}", "Wh", "energy",
     "total_increasing", NULL, 2, true, false, false, NULL, NULL},
    /* The whole box at the wall (a configured meter, or the estimate: wall_measured says
     * which); unknown, never 0, while the agent keeps no wall figure. */
    {HASS_SENSOR, "wall_power", "Wall power", "state",
     "{{ value_json.wall_power_w if value_json.wall_power_w is defined else none }}", "W", "power",
     "measurement", NULL, 2, true, false, true,
     "{{ {'source': value_json.wall_source, 'measured': value_json.wall_measured} | tojson "
     "if value_json.wall_source is defined else '{}' }}",
     NULL},
    {HASS_SENSOR, "wall_energy", "Wall energy", "state",
     "{{ value_json.wall_energy_wh if value_json.wall_energy_wh is defined else none }}", "Wh",
     "energy", "total_increasing", NULL, 2, true, false, false, NULL, NULL},
    {HASS_SENSOR, "temperature", "Temperature", "state", "{{ value_json.temp_c }}",
     "\xC2\xB0"
     "C",
     "temperature", "measurement", NULL, 1, true, false, false, NULL, NULL},
    /* The mean over the clusters that report a frequency: entries may be null (a cluster whose
     * frequency could not be read) and the list may be empty (no cpufreq): unknown then. */
    {HASS_SENSOR, "cpu_frequency", "CPU frequency", "state",
     "{% set f = value_json.freq_mhz | select('number') | list %}"
     "{{ ((f | sum) / (f | length)) | round(0) if f | length > 0 else none }}",
     "MHz", "frequency", "measurement", NULL, 0, true, false, false, NULL, NULL},
    {HASS_SENSOR, "utilisation", "CPU utilisation", "state",
     "{{ (value_json.util * 100) | round(1) if value_json.util is number else none }}", "%", NULL,
     "measurement", "mdi:chip", 1, true, false, false, NULL, NULL},
    {HASS_SENSOR, "engine_phase", "Engine phase", "state", "{{ value_json.phase }}", NULL, "enum",
     NULL, "mdi:state-machine", -1, true, false, false, NULL, phase_options},
    {HASS_SENSOR, "model", "Model", "model",
     "{{ value_json.name if value_json.name is string and value_json.name else 'none' }}", NULL,
     NULL, NULL, "mdi:brain", -1, false, false, true, NULL, NULL},
    {HASS_SENSOR, "tokens_per_s", "Tokens per second", "session/last",
     "{{ value_json.tokens_per_s }}", "tok/s", NULL, "measurement", "mdi:speedometer", 1, false,
     false, true, SESSION_ATTRS, NULL},
    {HASS_SENSOR, "joules_per_token", "Joules per token", "session/last",
     "{{ value_json.j_per_token }}", "J/tok", NULL, "measurement", "mdi:lightning-bolt", 4, false,
     false, false, NULL, NULL},
    {HASS_SELECT, "governor_policy", "Governor policy", "governor/state", NULL, NULL, NULL, NULL,
     "mdi:speedometer-slow", -1, false, true, false, NULL, NULL},
    /* 0 is "no cap": Home Assistant's number has no "off", so the templates translate. */
    {HASS_NUMBER, "power_cap", "Power cap", "power_cap/state",
     "{{ 0 if value == 'off' else value }}", "W", "power", NULL, "mdi:flash", -1, false, true,
     false, NULL, NULL},
};

#define N_ENTITIES (sizeof(hass_entities) / sizeof(hass_entities[0]))

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

static int add_topic(cJSON *o, const char *key, const char *base, const char *suffix)
{
    char *t = join(base, suffix);
    int ok = t && add_str(o, key, t);
    free(t);
    return ok;
}

/* availability: [{topic: <base>/status}] (+ governor/available), as a list so that the root of a
 * device message and a component can use the same form. */
static int add_availability(cJSON *o, const char *base, bool governed)
{
    cJSON *list = cJSON_AddArrayToObject(o, "availability");
    if (!list)
        return 0;
    const char *suffixes[] = {"status", "governor/available"};
    for (int i = 0; i < (governed ? 2 : 1); i++) {
        cJSON *a = cJSON_CreateObject();
        if (!a)
            return 0;
        cJSON_AddItemToArray(list, a);
        if (!add_topic(a, "topic", base, suffixes[i]))
            return 0;
    }
    return !governed || add_str(o, "availability_mode", "all");
}

/* The options of one entity; shared is true inside a device message (availability and qos then
 * come from the root). */
static int add_entity(cJSON *o, const struct tel_mqtt_params *p, const char *base,
                      const struct hass_entity *e, bool shared)
{
    char uid[160];
    snprintf(uid, sizeof(uid), "ember_%s_%s", p->device_id, e->object);
    int ok = add_str(o, "name", e->name) && add_str(o, "unique_id", uid) &&
             add_topic(o, "state_topic", base, e->state_suffix);
    if (ok && !shared)
        ok = cJSON_AddNumberToObject(o, "qos", 1) != NULL;
    if (ok && (!shared || e->governed))
        ok = add_availability(o, base, e->governed);
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
    if (ok && e->precision >= 0)
        ok = cJSON_AddNumberToObject(o, "suggested_display_precision", e->precision) != NULL;
    if (ok && e->live && p->expire_after_s)
        ok = cJSON_AddNumberToObject(o, "expire_after", p->expire_after_s) != NULL;
    if (ok && e->attributes) {
        ok = add_topic(o, "json_attributes_topic", base, e->state_suffix);
        if (ok && e->attributes_template)
            ok = add_str(o, "json_attributes_template", e->attributes_template);
    }
    if (ok && e->options) {
        cJSON *opts = cJSON_AddArrayToObject(o, "options");
        for (size_t i = 0; ok && e->options[i]; i++) {
            cJSON *s = opts ? cJSON_CreateString(e->options[i]) : NULL;
            ok = s != NULL;
            if (ok)
                cJSON_AddItemToArray(opts, s);
        }
    }

    const struct tel_mqtt_commands *c = &p->commands;
    if (ok && e->kind == HASS_SELECT) {
        cJSON *opts = cJSON_AddArrayToObject(o, "options");
        ok = opts && add_topic(o, "command_topic", base, "governor/set");
        for (uint32_t i = 0; ok && i < c->n_policies && i < TEL_MQTT_MAX_POLICIES; i++) {
            cJSON *s = cJSON_CreateString(c->policies[i]);
            ok = s != NULL;
            if (ok)
                cJSON_AddItemToArray(opts, s);
        }
    } else if (ok && e->kind == HASS_NUMBER) {
        /* Steps of 1 W from 0 (off); values below cap_min_w are refused with an error event.
         * Home Assistant hands the command template an int for whole numbers. */
        ok = add_topic(o, "command_topic", base, "power_cap/set") &&
             add_str(o, "command_template", "{{ 'off' if value | float(0) <= 0 else value }}") &&
             cJSON_AddNumberToObject(o, "min", 0) != NULL &&
             cJSON_AddNumberToObject(o, "max", floor(c->cap_max_w)) != NULL &&
             cJSON_AddNumberToObject(o, "step", 1) != NULL && add_str(o, "mode", "box");
    }
    return ok;
}

static int add_device_origin(cJSON *o, const struct tel_mqtt_params *p)
{
    char ident[128], devname[128];
    snprintf(ident, sizeof(ident), "ember_%s", p->device_id);
    if (p->device_name && *p->device_name)
        snprintf(devname, sizeof(devname), "%s", p->device_name);
    else
        snprintf(devname, sizeof(devname), "Ember %s", p->device_id);
    cJSON *dev = cJSON_AddObjectToObject(o, "device");
    cJSON *ids = dev ? cJSON_AddArrayToObject(dev, "identifiers") : NULL;
    cJSON *id0 = ids ? cJSON_CreateString(ident) : NULL;
    if (!id0)
        return 0;
    cJSON_AddItemToArray(ids, id0);
    int ok = add_str(dev, "name", devname) && add_str(dev, "manufacturer", "Ember") &&
             add_str(dev, "model", "Ember LLM appliance");
    if (ok && p->sw_version && *p->sw_version)
        ok = add_str(dev, "sw_version", p->sw_version);
    if (ok && p->configuration_url && *p->configuration_url)
        ok = add_str(dev, "configuration_url", p->configuration_url);
    cJSON *origin = ok ? cJSON_AddObjectToObject(o, "origin") : NULL;
    ok = ok && origin && add_str(origin, "name", "Ember");
    if (ok && p->sw_version && *p->sw_version)
        ok = add_str(origin, "sw_version", p->sw_version);
    if (ok && p->support_url && *p->support_url)
        ok = add_str(origin, "support_url", p->support_url);
    return ok;
}

int tel_hass_config_topic(const char *discovery_prefix, const char *device_id,
                          enum tel_mqtt_discovery_mode mode, unsigned idx, char **ret_topic)
{
    const char *dprefix = discovery_prefix ? discovery_prefix : "homeassistant";
    char topic[512];
    if (mode == TEL_MQTT_DISCOVERY_DEVICE) {
        if (idx > 0)
            return -ENOENT;
        snprintf(topic, sizeof(topic), "%s/device/ember_%s/config", dprefix, device_id);
    } else {
        if (idx >= N_ENTITIES)
            return -ENOENT;
        const struct hass_entity *e = &hass_entities[idx];
        snprintf(topic, sizeof(topic), "%s/%s/ember_%s/%s/config", dprefix, hass_platforms[e->kind],
                 device_id, e->object);
    }
    *ret_topic = strdup(topic);
    return *ret_topic ? 0 : -ENOMEM;
}

int tel_hass_config(const struct tel_mqtt_params *p, const char *base, unsigned idx,
                    char **ret_topic, char **ret_payload)
{
    char *topic = NULL;
    int rc =
        tel_hass_config_topic(p->discovery_prefix, p->device_id, p->discovery_mode, idx, &topic);
    if (rc)
        return rc;
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    if (ok && p->discovery_mode == TEL_MQTT_DISCOVERY_DEVICE) {
        ok = add_device_origin(o, p) && add_availability(o, base, false) &&
             cJSON_AddNumberToObject(o, "qos", 1) != NULL;
        cJSON *cmps = ok ? cJSON_AddObjectToObject(o, "components") : NULL;
        ok = ok && cmps;
        for (size_t i = 0; ok && i < N_ENTITIES; i++) {
            const struct hass_entity *e = &hass_entities[i];
            cJSON *c = cJSON_AddObjectToObject(cmps, e->object);
            ok = c && add_str(c, "platform", hass_platforms[e->kind]) &&
                 add_entity(c, p, base, e, true);
        }
    } else if (ok) {
        ok = add_entity(o, p, base, &hass_entities[idx], false) && add_device_origin(o, p);
    }
    char *payload = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!payload) {
        free(topic);
        return -ENOMEM;
    }
    *ret_topic = topic;
    *ret_payload = payload;
    return 0;
}
