/* The JSON bodies Ember publishes over MQTT (telemetry, state, session, event, model), in the shape
 * the design fixes, built with cJSON so strings are escaped correctly. Values are rounded to what
 * the sensors can resolve, so payloads stay short and readable; unknown values (NaN) are JSON null.
 * "ts" is wall-clock Unix time in seconds with millisecond resolution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "telemetry/mqtt.h"

static double round_to(double x, double scale)
{
    return round(x * scale) / scale;
}

/* Adds a rounded number, or null when unknown; returns 0 on allocation failure. */
static int add_num(cJSON *o, const char *name, double v, double scale)
{
    cJSON *item = isfinite(v) ? cJSON_CreateNumber(round_to(v, scale)) : cJSON_CreateNull();
    if (!item)
        return 0;
    cJSON_AddItemToObject(o, name, item);
    return 1;
}

static double ts_seconds(uint64_t ts_ns)
{
    return floor((double)ts_ns / 1e6) / 1000.0; /* millisecond resolution */
}

static char *finish(cJSON *o, int ok)
{
    char *out = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return out;
}

/* The fields telemetry and state share; energy_j is the total to publish. */
static cJSON *sample_object(const struct tel_sample *s, double energy_j)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddNumberToObject(o, "v", 1) &&
             cJSON_AddNumberToObject(o, "seq", (double)s->seq) &&
             cJSON_AddNumberToObject(o, "ts", ts_seconds(s->ts_ns)) &&
             add_num(o, "power_w", s->power_w, 1e3) &&
             /* Truncated, not rounded: a state total must never read above the one on disk. */
             add_num(o, "energy_wh", floor(energy_j / 3600.0 * 1e4) / 1e4, 1e4) &&
             add_num(o, "temp_c", s->temp_c, 1e2);
    cJSON *freq = ok ? cJSON_AddArrayToObject(o, "freq_mhz") : NULL;
    ok = ok && freq;
    for (uint32_t i = 0; ok && i < s->n_freq && i < TEL_MAX_FREQ; i++) {
        double f = s->freq_mhz[i];
        cJSON *item = isfinite(f) ? cJSON_CreateNumber(round_to(f, 1)) : cJSON_CreateNull();
        ok = item != NULL;
        if (ok)
            cJSON_AddItemToArray(freq, item);
    }
    ok = ok && add_num(o, "util", s->util, 1e4);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The wall boundary beside the package one, labelled with its source and whether it was
 * measured; wall_j is the total to publish (never lower than one published before). */
static int add_wall(cJSON *o, const struct tel_sample *s, double wall_j)
{
    if (!s->has_wall)
        return 1;
    return add_num(o, "wall_power_w", s->wall_power_w, 1e3) &&
           add_num(o, "wall_energy_wh", floor(wall_j / 3600.0 * 1e4) / 1e4, 1e4) &&
           cJSON_AddStringToObject(o, "wall_source", s->wall_source) &&
           cJSON_AddBoolToObject(o, "wall_measured", s->wall_measured != 0) &&
           (!s->has_phase_energy || (add_num(o, "wall_prefill_j", s->wall_prefill_j, 1e3) &&
                                     add_num(o, "wall_decode_j", s->wall_decode_j, 1e3) &&
                                     add_num(o, "wall_idle_j", s->wall_idle_j, 1e3)));
}

char *tel_payload_sample_json(const struct tel_sample *s)
{
    cJSON *o = sample_object(s, s->energy_j);
    if (!o)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "policy", s->policy) &&
             cJSON_AddStringToObject(o, "phase", s->phase) && add_wall(o, s, s->wall_energy_j);
    return finish(o, ok);
}

static int valid_phase(const char *p)
{
    return strcmp(p, "idle") == 0 || strcmp(p, "prefill") == 0 || strcmp(p, "decode") == 0;
}

char *tel_payload_state_json(const struct tel_sample *s, double energy_j)
{
    return tel_payload_state_wall_json(s, energy_j, s->wall_energy_j);
}

char *tel_payload_state_wall_json(const struct tel_sample *s, double energy_j, double wall_j)
{
    cJSON *o = sample_object(s, energy_j);
    if (!o)
        return NULL;
    /* No governor: null rather than "" (not a policy). A phase outside the three is reported as
     * idle: the enum entity has no "unknown" option. */
    cJSON *policy = s->policy[0] ? cJSON_CreateString(s->policy) : cJSON_CreateNull();
    int ok = policy != NULL;
    if (ok)
        cJSON_AddItemToObject(o, "policy", policy);
    ok = ok && cJSON_AddStringToObject(o, "phase", valid_phase(s->phase) ? s->phase : "idle") &&
         add_num(o, "tokens_per_s", s->tokens_per_s, 1e2) &&
         cJSON_AddStringToObject(o, "source", tel_source_name(s->source)) &&
         cJSON_AddStringToObject(o, "scope", tel_source_scope(s->source));
    /* the interval's energy by engine phase (integrated over the phase intervals) */
    if (ok && s->has_phase_energy)
        ok = add_num(o, "prefill_j", s->prefill_j, 1e3) &&
             add_num(o, "decode_j", s->decode_j, 1e3) && add_num(o, "idle_j", s->idle_j, 1e3);
    ok = ok && add_wall(o, s, wall_j);
    return finish(o, ok);
}

char *tel_payload_model_json(const struct tel_model_info *mi)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = 1;
    const char *strs[][2] = {
        {"name", mi->name}, {"file", mi->file}, {"arch", mi->arch}, {"quant", mi->quant}};
    for (size_t i = 0; ok && i < sizeof(strs) / sizeof(strs[0]); i++) {
        cJSON *v = strs[i][1] && *strs[i][1] ? cJSON_CreateString(strs[i][1]) : cJSON_CreateNull();
        ok = v != NULL;
        if (ok)
            cJSON_AddItemToObject(o, strs[i][0], v);
    }
    ok = ok && add_num(o, "params_m", mi->n_params ? (double)mi->n_params / 1e6 : NAN, 1e1) &&
         add_num(o, "size_mb", mi->size_bytes ? (double)mi->size_bytes / 1e6 : NAN, 1e1) &&
         add_num(o, "context_length", mi->context_length ? (double)mi->context_length : NAN, 1);
    return finish(o, ok);
}

char *tel_payload_session_json(const struct tel_session *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    /* Decode speed: generated tokens over the time after the first token. */
    double decode_s = (s->duration_ms - s->ttft_ms) / 1000.0;
    double tps = NAN;
    if (s->gen_tokens > 1 && decode_s > 0)
        tps = (double)(s->gen_tokens - 1) / decode_s;
    else if (s->gen_tokens > 0 && s->duration_ms > 0)
        tps = (double)s->gen_tokens / (s->duration_ms / 1000.0);
    int ok =
        cJSON_AddNumberToObject(o, "v", 1) && cJSON_AddNumberToObject(o, "id", (double)s->id) &&
        cJSON_AddNumberToObject(o, "ts", ts_seconds(s->ts_ns)) &&
        cJSON_AddNumberToObject(o, "prompt_tokens", (double)s->prompt_tokens) &&
        cJSON_AddNumberToObject(o, "gen_tokens", (double)s->gen_tokens) &&
        add_num(o, "ttft_ms", s->ttft_ms, 1e1) && add_num(o, "duration_ms", s->duration_ms, 1e1) &&
        add_num(o, "energy_j", s->energy_j, 1e3) &&
        add_num(o, "j_per_token", s->j_per_token, 1e4) && add_num(o, "tokens_per_s", tps, 1e2) &&
        cJSON_AddStringToObject(o, "policy", s->policy) &&
        (!s->model[0] || cJSON_AddStringToObject(o, "model", s->model));
    return finish(o, ok);
}

char *tel_payload_event_json(uint64_t ts_ns, const char *kind, const char *detail)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddNumberToObject(o, "v", 1) &&
             cJSON_AddNumberToObject(o, "ts", ts_seconds(ts_ns)) &&
             cJSON_AddStringToObject(o, "kind", kind ? kind : "") &&
             cJSON_AddStringToObject(o, "detail", detail ? detail : "");
    return finish(o, ok);
}
