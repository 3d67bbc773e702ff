/* Smart-plug payloads, as the plugs publish them over MQTT:
 * - Tasmota: the periodic tele/<topic>/SENSOR message of an energy-monitoring plug carries an
 *   "ENERGY" object with "Power" in W (an array on multi-channel devices: summed) and "Total" in
 *   kWh (https://tasmota.github.io/docs/ ; an example payload is quoted in
 *   https://github.com/arendst/Tasmota/issues/1621).
 * - Shelly Gen2/Gen3: <id>/status/switch:0 carries the Switch component status, "apower" in W and
 *   "aenergy": {"total": Wh} (https://shelly-api-docs.shelly.cloud/gen2/ , Switch component).
 * - number: a bare decimal number of watts (any other plug, through a bridge or a rule).
 * A payload is untrusted input: it is bounded, parsed with cJSON, and every number is checked
 * for being finite and in range before it is used. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "telemetry/wall.h"

#define PLUG_PAYLOAD_MAX  8192
#define PLUG_POWER_MAX_W  100000.0 /* 100 kW: more than any socket delivers */
#define PLUG_ENERGY_MAX_J 3.6e13   /* 10 GWh */

static const char *const format_names[] = {"tasmota", "shelly", "number"};

int tel_plug_format_from_name(const char *name, enum tel_plug_format *ret)
{
    for (size_t i = 0; name && i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *ret = (enum tel_plug_format)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *tel_plug_format_name(enum tel_plug_format format)
{
    return (unsigned)format < sizeof(format_names) / sizeof(format_names[0]) ? format_names[format]
                                                                             : "unknown";
}

static int bad(char *err, size_t err_len, const char *what)
{
    if (err && err_len)
        snprintf(err, err_len, "%s", what);
    return -EBADMSG;
}

static int check_power(double w, char *err, size_t err_len)
{
    if (!isfinite(w))
        return bad(err, err_len, "power is not a finite number");
    if (w < 0)
        return bad(err, err_len, "power is negative (a generator, not a load?)");
    if (w > PLUG_POWER_MAX_W)
        return bad(err, err_len, "power is over 100 kW");
    return 0;
}

/* A number item, or an array of numbers summed (Tasmota's multi-channel form). */
static int json_power(const cJSON *item, double *ret, char *err, size_t err_len)
{
    if (cJSON_IsNumber(item)) {
        *ret = item->valuedouble;
        return check_power(*ret, err, err_len);
    }
    if (cJSON_IsArray(item)) {
        double sum = 0;
        int n = 0;
        const cJSON *el;
        cJSON_ArrayForEach(el, item)
        {
            if (!cJSON_IsNumber(el) || ++n > 16)
                return bad(err, err_len, "power array holds a non-number or over 16 channels");
            if (check_power(el->valuedouble, err, err_len) < 0)
                return -EBADMSG;
            sum += el->valuedouble;
        }
        if (n == 0)
            return bad(err, err_len, "power array is empty");
        *ret = sum;
        return check_power(sum, err, err_len);
    }
    return bad(err, err_len, "power is not a number");
}

/* An optional energy counter (absent: NAN). scale converts the unit to joules. */
static int json_energy(const cJSON *item, double scale, double *ret, char *err, size_t err_len)
{
    *ret = NAN;
    if (!item)
        return 0;
    if (!cJSON_IsNumber(item))
        return bad(err, err_len, "energy total is not a number");
    double j = item->valuedouble * scale;
    if (!isfinite(j) || j < 0 || j > PLUG_ENERGY_MAX_J)
        return bad(err, err_len, "energy total is negative, not finite or absurdly large");
    *ret = j;
    return 0;
}

static int parse_number(const char *text, size_t len, struct tel_plug_reading *ret, char *err,
                        size_t err_len)
{
    char buf[64];
    while (len && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')) {
        text++;
        len--;
    }
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                   text[len - 1] == '\r'))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return bad(err, err_len, "not a number of watts");
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    double w = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno == ERANGE)
        return bad(err, err_len, "not a number of watts");
    ret->power_w = w;
    ret->energy_j = NAN;
    return check_power(w, err, err_len);
}

int tel_plug_parse(enum tel_plug_format format, const void *payload, size_t len,
                   struct tel_plug_reading *ret, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!ret || (!payload && len))
        return -EINVAL;
    if (len == 0)
        return bad(err, err_len, "empty payload");
    if (len > PLUG_PAYLOAD_MAX)
        return bad(err, err_len, "payload over 8 KiB");
    if (format == TEL_PLUG_NUMBER)
        return parse_number(payload, len, ret, err, err_len);
    if (format != TEL_PLUG_TASMOTA && format != TEL_PLUG_SHELLY)
        return -EINVAL;
    cJSON *root = cJSON_ParseWithLength(payload, len);
    if (!root)
        return bad(err, err_len, "not JSON");
    int r;
    if (!cJSON_IsObject(root)) {
        r = bad(err, err_len, "not a JSON object");
    } else if (format == TEL_PLUG_TASMOTA) {
        const cJSON *energy = cJSON_GetObjectItemCaseSensitive(root, "ENERGY");
        if (!cJSON_IsObject(energy))
            r = bad(err, err_len, "no ENERGY object (is the plug energy-monitoring?)");
        else if (!cJSON_GetObjectItemCaseSensitive(energy, "Power"))
            r = bad(err, err_len, "no ENERGY.Power");
        else
            r = json_power(cJSON_GetObjectItemCaseSensitive(energy, "Power"), &ret->power_w, err,
                           err_len);
        if (r == 0)
            r = json_energy(cJSON_GetObjectItemCaseSensitive(energy, "Total"), 3.6e6,
                            &ret->energy_j, err, err_len);
    } else {
        const cJSON *apower = cJSON_GetObjectItemCaseSensitive(root, "apower");
        if (!apower)
            r = bad(err, err_len, "no apower (is the switch power-metering?)");
        else
            r = json_power(apower, &ret->power_w, err, err_len);
        if (r == 0 && cJSON_IsArray(apower))
            r = bad(err, err_len, "apower is not a number");
        const cJSON *aenergy = cJSON_GetObjectItemCaseSensitive(root, "aenergy");
        if (r == 0 && aenergy && !cJSON_IsObject(aenergy))
            r = bad(err, err_len, "aenergy is not an object");
        if (r == 0)
            r = json_energy(aenergy ? cJSON_GetObjectItemCaseSensitive(aenergy, "total") : NULL,
                            3600.0, &ret->energy_j, err, err_len);
    }
    cJSON_Delete(root);
    return r;
}
