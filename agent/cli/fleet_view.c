/* The fleet view: folds appliance messages into one row each (fleet_view.h). */
#include "fleet_view.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_MAX 65536 /* larger payloads are not ours: ignored */

void fleet_view_init(struct fleet_view *v, const char *prefix)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->prefix, sizeof(v->prefix), "%s", prefix);
}

void fleet_view_free(struct fleet_view *v)
{
    free(v->dev);
    v->dev = NULL;
    v->n = v->cap = 0;
}

/* A device id as the agent makes them: printable ASCII without MQTT's separators and wildcards. */
static bool valid_id(const char *s, size_t n)
{
    if (n == 0 || n > FLEET_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '+' || c == '#')
            return false;
    }
    return true;
}

/* Copies printable ASCII; anything else becomes '?', so no payload can drive the terminal. */
static void copy_text(char *dst, size_t cap, const char *src, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[k] = '\0';
}

static struct fleet_device *find_or_add(struct fleet_view *v, const char *id, size_t n, int *err)
{
    size_t lo = 0, hi = v->n;
    char key[FLEET_ID_MAX + 1];
    memcpy(key, id, n);
    key[n] = '\0';
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v->dev[mid].id, key);
        if (c == 0)
            return &v->dev[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (v->n >= FLEET_MAX_DEVICES) {
        *err = -ENOSPC;
        return NULL;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct fleet_device *d = realloc(v->dev, cap * sizeof(*d));
        if (!d) {
            *err = -ENOMEM;
            return NULL;
        }
        v->dev = d;
        v->cap = cap;
    }
    memmove(&v->dev[lo + 1], &v->dev[lo], (v->n - lo) * sizeof(*v->dev));
    v->n++;
    struct fleet_device *d = &v->dev[lo];
    memset(d, 0, sizeof(*d));
    memcpy(d->id, key, n + 1);
    d->status = d->bridge = FLEET_UNKNOWN;
    d->power_w = d->temp_c = d->j_per_token = d->tokens_per_s = d->last_ts = NAN;
    return d;
}

static bool payload_is(const char *p, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(p, word, len) == 0;
}

/* FLEET_YES / FLEET_NO when the payload is exactly one of the two words, else FLEET_UNKNOWN. */
static enum fleet_tri word_flag(const char *p, size_t len, const char *yes, const char *no)
{
    if (payload_is(p, len, yes))
        return FLEET_YES;
    return payload_is(p, len, no) ? FLEET_NO : FLEET_UNKNOWN;
}

/* A finite number field, else NAN (null, absent, a string, ...). */
static double num(const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) ? x->valuedouble : NAN;
}

static void take_ts(struct fleet_device *d, const cJSON *o)
{
    double ts = num(o, "ts");
    if (isfinite(ts) && ts > 0 && (!isfinite(d->last_ts) || ts > d->last_ts))
        d->last_ts = ts;
}

static void take_policy(struct fleet_device *d, const cJSON *o)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "policy");
    if (cJSON_IsString(p) && p->valuestring[0])
        copy_text(d->policy, sizeof(d->policy), p->valuestring, strlen(p->valuestring));
}

int fleet_view_ingest(struct fleet_view *v, const char *topic, const void *payload, size_t len,
                      bool retained)
{
    size_t plen = strlen(v->prefix);
    if (!topic || strncmp(topic, v->prefix, plen) != 0 || topic[plen] != '/')
        return -EINVAL;
    const char *id = topic + plen + 1;
    const char *slash = strchr(id, '/');
    if (!slash || !valid_id(id, (size_t)(slash - id)))
        return -EINVAL;
    const char *what = slash + 1;
    const char *p = payload ? payload : "";
    if (len > PAYLOAD_MAX)
        return -EINVAL;

    enum { STATUS, BRIDGE, GOVERNOR, STATE, SESSION, MODEL } kind;
    if (strcmp(what, "status") == 0)
        kind = STATUS;
    else if (strcmp(what, "bridge/state") == 0)
        kind = BRIDGE;
    else if (strcmp(what, "governor/state") == 0)
        kind = GOVERNOR;
    else if (strcmp(what, "state") == 0)
        kind = STATE;
    else if (strcmp(what, "session/last") == 0)
        kind = SESSION;
    else if (strcmp(what, "model") == 0)
        kind = MODEL;
    else
        return -EINVAL;

    /* Validate the payload before a row is made for it: junk makes no appliance. */
    cJSON *o = NULL;
    enum fleet_tri flag = FLEET_UNKNOWN;
    if (kind == STATUS || kind == BRIDGE) {
        flag =
            kind == STATUS ? word_flag(p, len, "online", "offline") : word_flag(p, len, "1", "0");
        if (flag == FLEET_UNKNOWN)
            return -EINVAL;
    } else if (kind == GOVERNOR) {
        if (len == 0 || len >= sizeof(((struct fleet_device *)0)->policy))
            return -EINVAL;
    } else {
        o = cJSON_ParseWithLength(p, len);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return -EINVAL;
        }
    }

    int err = 0;
    struct fleet_device *d = find_or_add(v, id, (size_t)(slash - id), &err);
    if (!d) {
        cJSON_Delete(o);
        return err;
    }
    switch (kind) {
    case STATUS:
        d->status = flag;
        break;
    case BRIDGE:
        d->bridge = flag;
        break;
    case GOVERNOR:
        copy_text(d->policy, sizeof(d->policy), p, len);
        break;
    case STATE:
        d->live = d->live || !retained;
        d->power_w = num(o, "power_w");
        d->temp_c = num(o, "temp_c");
        if (!d->policy[0])
            take_policy(d, o);
        take_ts(d, o);
        break;
    case SESSION:
        d->j_per_token = num(o, "j_per_token");
        d->tokens_per_s = num(o, "tokens_per_s");
        take_ts(d, o);
        break;
    case MODEL: {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(name))
            copy_text(d->model, sizeof(d->model), name->valuestring, strlen(name->valuestring));
        else
            d->model[0] = '\0';
        break;
    }
    }
    cJSON_Delete(o);
    return 0;
}

bool fleet_device_online(const struct fleet_device *d)
{
    return d->status == FLEET_YES && (d->bridge != FLEET_NO || d->live);
}

static const char *status_word(const struct fleet_device *d)
{
    if (d->bridge == FLEET_NO && !d->live)
        return "uplink-down"; /* the retained status is stale: the box's bridge is gone */
    if (d->status == FLEET_YES)
        return "online";
    if (d->status == FLEET_NO)
        return "offline";
    return "unknown";
}

/* A number right-aligned in width with the given decimals, or '-' when unknown. */
static void cell(FILE *out, double x, int decimals, int width)
{
    if (isfinite(x))
        fprintf(out, "%*.*f", width, decimals, x);
    else
        fprintf(out, "%*s", width, "-");
}

void fleet_view_print(const struct fleet_view *v, double now_s, FILE *out)
{
    size_t online = 0;
    fprintf(out, "%-20s %-11s %-12s %8s %8s %7s %-20s %s\n", "APPLIANCE", "STATUS", "POLICY",
            "POWER_W", "J/TOKEN", "TEMP_C", "MODEL", "LAST_SEEN");
    for (size_t i = 0; i < v->n; i++) {
        const struct fleet_device *d = &v->dev[i];
        online += fleet_device_online(d);
        fprintf(out, "%-20s %-11s %-12s ", d->id, status_word(d), d->policy[0] ? d->policy : "-");
        /* the decimals every text output uses: W to 2, J/token to 4 (report, governor sim) */
        cell(out, d->power_w, 2, 8);
        fputc(' ', out);
        cell(out, d->j_per_token, 4, 8);
        fputc(' ', out);
        cell(out, d->temp_c, 1, 7);
        fprintf(out, " %-20s ", d->model[0] ? d->model : "-");
        if (isfinite(d->last_ts)) {
            double ago = now_s - d->last_ts;
            if (ago < 0)
                ago = 0;
            if (ago < 120)
                fprintf(out, "%.0fs ago\n", ago);
            else if (ago < 7200)
                fprintf(out, "%.0fm ago\n", ago / 60);
            else
                fprintf(out, "%.1fh ago\n", ago / 3600);
        } else {
            fputs("-\n", out);
        }
    }
    fprintf(out, "%zu appliance%s, %zu online\n", v->n, v->n == 1 ? "" : "s", online);
}

static bool add_num(cJSON *o, const char *name, double x)
{
    return isfinite(x) ? cJSON_AddNumberToObject(o, name, x) != NULL
                       : cJSON_AddNullToObject(o, name) != NULL;
}

static bool add_text(cJSON *o, const char *name, const char *s)
{
    return s[0] ? cJSON_AddStringToObject(o, name, s) != NULL
                : cJSON_AddNullToObject(o, name) != NULL;
}

char *fleet_view_json(const struct fleet_view *v, double now_s)
{
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < v->n; i++) {
        const struct fleet_device *d = &v->dev[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        double ago = isfinite(d->last_ts) ? fmax(0, now_s - d->last_ts) : NAN;
        ok = cJSON_AddStringToObject(o, "id", d->id) &&
             cJSON_AddBoolToObject(o, "online", fleet_device_online(d)) &&
             cJSON_AddStringToObject(o, "status", status_word(d)) &&
             add_text(o, "policy", d->policy) && add_num(o, "power_w", d->power_w) &&
             add_num(o, "j_per_token", d->j_per_token) &&
             add_num(o, "tokens_per_s", d->tokens_per_s) && add_num(o, "temp_c", d->temp_c) &&
             add_text(o, "model", d->model) && add_num(o, "last_seen_s", ago);
    }
    char *text = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return text;
}
