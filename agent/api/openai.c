/* OpenAI request parsing and response writing for the HTTP API (see openai.h). Parsing goes
 * through cJSON and checks every field's type and range before it reaches the engine; responses
 * are written by hand into a reusable buffer so a streamed token costs no allocation. */
#include "openai.h"
#include "openai_tools.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

/* ---- buffer ---- */

int openai_buf_reserve(struct openai_buf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int openai_buf_append(struct openai_buf *b, const char *s, size_t n)
{
    if (openai_buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_str(struct openai_buf *b, const char *s)
{
    return openai_buf_append(b, s, strlen(s));
}

static int buf_printf(struct openai_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int buf_printf(struct openai_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || openai_buf_reserve(b, (size_t)n) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Length of the valid UTF-8 sequence starting at s (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

int openai_buf_append_json(struct openai_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX (6 bytes). */
    if (n > SIZE_MAX / 6 || openai_buf_reserve(b, n * 6) < 0)
        return -ENOMEM;
    const unsigned char *u = (const unsigned char *)s;
    char *o = b->data + b->len;
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"':
                *o++ = '"';
                break;
            case '\\':
                *o++ = '\\';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            case '\b':
                *o++ = 'b';
                break;
            case '\f':
                *o++ = 'f';
                break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            i++;
            continue;
        }
        size_t len = utf8_seq(u + i, n - i);
        if (len == 0) {
            /* U+FFFD in 3 bytes for each stray byte: never more than the 6 reserved. */
            *o++ = (char)0xEF;
            *o++ = (char)0xBF;
            *o++ = (char)0xBD;
            i++;
            continue;
        }
        memcpy(o, u + i, len);
        o += len;
        i += len;
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

void openai_buf_free(struct openai_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_json_str(struct openai_buf *b, const char *s)
{
    if (buf_str(b, "\"") < 0 || openai_buf_append_json(b, s, strlen(s)) < 0 || buf_str(b, "\"") < 0)
        return -ENOMEM;
    return 0;
}

static int buf_num(struct openai_buf *b, double v)
{
    if (!isfinite(v))
        return buf_str(b, "null");
    return buf_printf(b, "%.6g", v);
}

/* ---- errors ---- */

void openai_error_set(struct openai_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static int error_body(const struct openai_error *e, struct openai_buf *b)
{
    int rc = 0;
    rc |= buf_str(b, "{\"message\":");
    rc |= buf_json_str(b, e->message);
    rc |= buf_str(b, ",\"type\":");
    rc |= buf_json_str(b, e->type ? e->type : "server_error");
    rc |= buf_str(b, ",\"param\":");
    rc |= e->param[0] ? buf_json_str(b, e->param) : buf_str(b, "null");
    rc |= buf_str(b, ",\"code\":");
    rc |= e->code ? buf_json_str(b, e->code) : buf_str(b, "null");
    rc |= buf_str(b, "}");
    return rc ? -ENOMEM : 0;
}

int openai_error_json(const struct openai_error *e, struct openai_buf *b)
{
    if (buf_str(b, "{\"error\":") < 0 || error_body(e, b) < 0 || buf_str(b, "}") < 0)
        return -ENOMEM;
    return 0;
}

/* ---- request parsing ---- */

/* One JSON value and nothing but whitespace after it (cJSON alone would ignore trailing bytes). */
static cJSON *parse_body(const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root)
        return NULL;
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

static void bad_type(struct openai_error *e, const char *param, const char *what)
{
    openai_error_set(e, 400, "invalid_request_error", "invalid_type", param, "'%s' must be %s",
                     param, what);
}

static void bad_value(struct openai_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_value(struct openai_error *e, const char *param, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    openai_error_set(e, 400, "invalid_request_error", "invalid_value", param, "'%s' %s", param,
                     msg);
}

/* A field that is absent or JSON null counts as not given (OpenAI's clients send nulls). */
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static int get_double(const cJSON *obj, const char *name, double lo, double hi, bool *has,
                      double *out, struct openai_error *e)
{
    const cJSON *f = field(obj, name);
    if (!f)
        return 0;
    if (!cJSON_IsNumber(f)) {
        bad_type(e, name, "a number");
        return -EINVAL;
    }
    double v = f->valuedouble;
    if (!(v >= lo && v <= hi)) {
        bad_value(e, name, "must be between %g and %g", lo, hi);
        return -EINVAL;
    }
    *out = v;
    if (has)
        *has = true;
    return 0;
}

/* A number the sampler checks: its own range, intersected with the wire format's limits. */
static int get_sampler(const cJSON *obj, const char *name, const struct cmn_range *r, double lo,
                       double hi, bool *has, double *out, struct openai_error *e)
{
    double v = NAN;
    bool got = false;
    if (get_double(obj, name, lo, hi, &got, &v, e))
        return -EINVAL;
    if (!got)
        return 0;
    if (!cmn_range_contains(r, v)) {
        char range[64];
        cmn_range_format(r, range, sizeof(range));
        bad_value(e, name, "must be in %s", range);
        return -EINVAL;
    }
    *out = v;
    *has = true;
    return 0;
}

static int get_int(const cJSON *obj, const char *name, double lo, double hi, bool *has, double *out,
                   struct openai_error *e)
{
    const cJSON *f = field(obj, name);
    if (!f)
        return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble)) {
        bad_type(e, name, "an integer");
        return -EINVAL;
    }
    double v = f->valuedouble;
    if (!(v >= lo && v <= hi)) {
        bad_value(e, name, "must be between %.0f and %.0f", lo, hi);
        return -EINVAL;
    }
    *out = v;
    if (has)
        *has = true;
    return 0;
}

static int get_bool(const cJSON *obj, const char *name, bool *out, struct openai_error *e)
{
    const cJSON *f = field(obj, name);
    if (!f)
        return 0;
    if (!cJSON_IsBool(f)) {
        bad_type(e, name, "a boolean");
        return -EINVAL;
    }
    *out = cJSON_IsTrue(f);
    return 0;
}

static int parse_sampling(const cJSON *root, struct agent_sampling *s, struct openai_error *e)
{
    double v;
    bool has;
    /* OpenAI's documented limits where they are narrower than the sampler's (temperature 0..2,
     * repeat_penalty 0..10) */
    const struct eng_sampler_ranges *r = &eng_sampler_ranges;
    if (get_sampler(root, "temperature", &r->temperature, 0, 2, &s->has_temperature,
                    &s->temperature, e) ||
        get_sampler(root, "top_p", &r->top_p, -INFINITY, INFINITY, &s->has_top_p, &s->top_p, e) ||
        get_sampler(root, "min_p", &r->min_p, -INFINITY, INFINITY, &s->has_min_p, &s->min_p, e) ||
        get_sampler(root, "repeat_penalty", &r->repeat_penalty, 0, 10, &s->has_repeat_penalty,
                    &s->repeat_penalty, e) ||
        get_sampler(root, "presence_penalty", &r->presence_penalty, -INFINITY, INFINITY,
                    &s->has_presence_penalty, &s->presence_penalty, e) ||
        get_sampler(root, "frequency_penalty", &r->frequency_penalty, -INFINITY, INFINITY,
                    &s->has_frequency_penalty, &s->frequency_penalty, e))
        return -EINVAL;
    has = false;
    if (get_int(root, "top_k", r->top_k.min, r->top_k.max, &has, &v, e))
        return -EINVAL;
    if (has) {
        s->has_top_k = true;
        s->top_k = (int)v;
    }
    /* Seeds beyond 2^53 cannot be told apart in a JSON number; negative ones wrap like C. */
    has = false;
    if (get_int(root, "seed", -9007199254740992.0, 9007199254740992.0, &has, &v, e))
        return -EINVAL;
    if (has) {
        s->has_seed = true;
        s->seed = (uint64_t)(int64_t)v;
    }
    /* max_completion_tokens replaces max_tokens in newer clients; it wins when both are set. */
    has = false;
    if (get_int(root, "max_tokens", 1, 1 << 30, &has, &v, e))
        return -EINVAL;
    if (has) {
        s->has_max_tokens = true;
        s->max_tokens = (int)v;
    }
    has = false;
    if (get_int(root, "max_completion_tokens", 1, 1 << 30, &has, &v, e))
        return -EINVAL;
    if (has) {
        s->has_max_tokens = true;
        s->max_tokens = (int)v;
    }
    return 0;
}

static int add_stop(struct agent_request *req, const cJSON *s, const char *param,
                    struct openai_error *e)
{
    if (!cJSON_IsString(s)) {
        bad_type(e, param, "a string or an array of strings");
        return -EINVAL;
    }
    size_t n = strlen(s->valuestring);
    if (n == 0 || n > OPENAI_MAX_STOP_BYTES) {
        bad_value(e, param, "strings must be 1 to %d bytes long", OPENAI_MAX_STOP_BYTES);
        return -EINVAL;
    }
    if (req->n_stop >= AGENT_MAX_STOP) {
        bad_value(e, param, "may hold at most %d strings", AGENT_MAX_STOP);
        return -EINVAL;
    }
    req->stop[req->n_stop] = strdup(s->valuestring);
    if (!req->stop[req->n_stop])
        return -ENOMEM;
    req->n_stop++;
    return 0;
}

static int parse_stop(const cJSON *root, struct agent_request *req, struct openai_error *e)
{
    const cJSON *f = field(root, "stop");
    if (!f)
        return 0;
    if (cJSON_IsString(f))
        return add_stop(req, f, "stop", e);
    if (!cJSON_IsArray(f)) {
        bad_type(e, "stop", "a string or an array of strings");
        return -EINVAL;
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, f)
    {
        int rc = add_stop(req, s, "stop", e);
        if (rc)
            return rc;
    }
    return 0;
}

/* Fields of OpenAI's API that would change the response's shape in ways the agent does not
 * produce: refused rather than silently ignored. */
static int parse_unsupported(const cJSON *root, enum agent_request_kind kind,
                             struct openai_error *e)
{
    double v;
    if (get_int(root, "n", 1, 1, NULL, &v, e))
        return -EINVAL;
    const cJSON *f = field(root, "tools");
    if (kind != AGENT_REQ_CHAT && f) {
        openai_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "tools",
                         "'tools' is only supported on /v1/chat/completions");
        return -EINVAL;
    }
    f = field(root, "logprobs");
    if (f && !cJSON_IsFalse(f) && !(cJSON_IsNumber(f) && f->valuedouble == 0)) {
        openai_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "logprobs",
                         "'logprobs' is not supported by this server");
        return -EINVAL;
    }
    if (kind == AGENT_REQ_COMPLETION) {
        f = field(root, "echo");
        if (f && !cJSON_IsFalse(f)) {
            openai_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "echo",
                             "'echo' is not supported by this server");
            return -EINVAL;
        }
        f = field(root, "suffix");
        if (f) {
            openai_error_set(e, 400, "invalid_request_error", "unsupported_parameter", "suffix",
                             "'suffix' is not supported by this server");
            return -EINVAL;
        }
        if (get_int(root, "best_of", 1, 1, NULL, &v, e))
            return -EINVAL;
    }
    return 0;
}

/* Message content: a string, or an array of {"type":"text","text":...} parts joined. */
static int message_content(const cJSON *c, const char *param, bool may_be_null, char **ret,
                           struct openai_error *e)
{
    if (!c || cJSON_IsNull(c)) {
        if (!may_be_null) {
            openai_error_set(e, 400, "invalid_request_error", "missing_required_parameter", param,
                             "'%s' is required", param);
            return -EINVAL;
        }
        *ret = strdup("");
        return *ret ? 0 : -ENOMEM;
    }
    if (cJSON_IsString(c)) {
        *ret = strdup(c->valuestring);
        return *ret ? 0 : -ENOMEM;
    }
    if (!cJSON_IsArray(c)) {
        bad_type(e, param, "a string or an array of content parts");
        return -EINVAL;
    }
    struct openai_buf b = {0};
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || !cJSON_IsString(text) ||
            strcmp(type->valuestring, "text") != 0) {
            openai_buf_free(&b);
            openai_error_set(e, 400, "invalid_request_error", "invalid_value", param,
                             "'%s' parts must be {\"type\":\"text\",\"text\":\"...\"} (only "
                             "text is supported)",
                             param);
            return -EINVAL;
        }
        if (buf_str(&b, text->valuestring) < 0) {
            openai_buf_free(&b);
            return -ENOMEM;
        }
    }
    if (!b.data && buf_str(&b, "") < 0)
        return -ENOMEM;
    *ret = b.data;
    return 0;
}

static int parse_messages(const cJSON *root, struct agent_request *req, struct openai_error *e)
{
    const cJSON *msgs = field(root, "messages");
    if (!msgs) {
        openai_error_set(e, 400, "invalid_request_error", "missing_required_parameter", "messages",
                         "'messages' is required");
        return -EINVAL;
    }
    if (!cJSON_IsArray(msgs)) {
        bad_type(e, "messages", "an array of messages");
        return -EINVAL;
    }
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) {
        bad_value(e, "messages", "must hold at least one message");
        return -EINVAL;
    }
    if (n > AGENT_MAX_MESSAGES) {
        bad_value(e, "messages", "may hold at most %d messages", AGENT_MAX_MESSAGES);
        return -EINVAL;
    }
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, msgs)
    {
        char param[48];
        snprintf(param, sizeof(param), "messages[%d]", i);
        if (!cJSON_IsObject(m)) {
            bad_type(e, param, "an object");
            return -EINVAL;
        }
        snprintf(param, sizeof(param), "messages[%d].role", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) {
            bad_type(e, param, "a string");
            return -EINVAL;
        }
        const char *r = role->valuestring;
        /* "developer" is the newer name of "system". */
        if (strcmp(r, "developer") == 0)
            r = "system";
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0 &&
            strcmp(r, "tool") != 0) {
            bad_value(e, param, "must be one of system, developer, user, assistant, tool");
            return -EINVAL;
        }
        if (strcmp(r, "assistant") == 0) {
            int trc = openai_parse_message_tools(m, req->n_messages, req, e);
            if (trc)
                return trc;
        }
        snprintf(param, sizeof(param), "messages[%d].content", i);
        struct agent_message *am = &req->messages[req->n_messages];
        int rc = message_content(cJSON_GetObjectItemCaseSensitive(m, "content"), param,
                                 strcmp(r, "assistant") == 0, &am->content, e);
        if (rc)
            return rc;
        am->role = strdup(r);
        req->n_messages++; /* counted now so agent_request_free releases content */
        if (!am->role)
            return -ENOMEM;
        /* the call a tool result answers, which some templates render (Mistral V3) */
        const cJSON *call_id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
        if (strcmp(r, "tool") == 0 && call_id && !cJSON_IsNull(call_id)) {
            snprintf(param, sizeof(param), "messages[%d].tool_call_id", i);
            if (!cJSON_IsString(call_id) || strlen(call_id->valuestring) > 256) {
                bad_type(e, param, "a string of at most 256 bytes");
                return -EINVAL;
            }
            am->tool_call_id = strdup(call_id->valuestring);
            if (!am->tool_call_id)
                return -ENOMEM;
        }
        i++;
    }
    return 0;
}

static int parse_prompt(const cJSON *root, struct agent_request *req, struct openai_error *e)
{
    const cJSON *p = field(root, "prompt");
    if (!p) {
        openai_error_set(e, 400, "invalid_request_error", "missing_required_parameter", "prompt",
                         "'prompt' is required");
        return -EINVAL;
    }
    /* One prompt per request: a one-string array is accepted; batches and token arrays not. */
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child))
        p = p->child;
    if (!cJSON_IsString(p)) {
        bad_type(e, "prompt", "a string (token arrays and batches are not supported)");
        return -EINVAL;
    }
    req->prompt = strdup(p->valuestring);
    return req->prompt ? 0 : -ENOMEM;
}

/* Ollama's keep_alive: a number of seconds, or a duration string ("30s", "5m", "1h30m",
 * "500ms", "-1"); negative means for ever. */
static int parse_keep_alive(const cJSON *v, int64_t *ret_ms, struct openai_error *e)
{
    const double max_s = 366.0 * 86400;
    if (cJSON_IsNumber(v)) {
        double s = v->valuedouble;
        if (!isfinite(s) || s > max_s) {
            bad_value(e, "keep_alive", "must be at most %.0f seconds (negative: for ever)", max_s);
            return -EINVAL;
        }
        *ret_ms = s < 0 ? -1 : (int64_t)(s * 1000);
        return 0;
    }
    if (!cJSON_IsString(v)) {
        bad_type(e, "keep_alive", "a number of seconds or a duration such as \"5m\"");
        return -EINVAL;
    }
    const char *p = v->valuestring;
    bool negative = *p == '-';
    if (negative)
        p++;
    double total_ms = 0;
    bool any = false;
    while (*p) {
        char *end;
        double n = strtod(p, &end);
        if (end == p || !isfinite(n) || n < 0)
            goto bad;
        p = end;
        double unit_ms;
        if (strncmp(p, "ms", 2) == 0)
            unit_ms = 1, p += 2;
        else if (*p == 's')
            unit_ms = 1000, p++;
        else if (*p == 'm')
            unit_ms = 60000, p++;
        else if (*p == 'h')
            unit_ms = 3600000, p++;
        else if (*p == '\0' && !any)
            unit_ms = 1000; /* a bare number in a string: seconds */
        else
            goto bad;
        total_ms += n * unit_ms;
        any = true;
    }
    if (!any)
        goto bad;
    if (negative) {
        *ret_ms = total_ms > 0 ? -1 : 0;
        return 0;
    }
    if (total_ms > max_s * 1000) {
        bad_value(e, "keep_alive", "must be at most %.0f seconds (negative: for ever)", max_s);
        return -EINVAL;
    }
    *ret_ms = (int64_t)total_ms;
    return 0;
bad:
    bad_value(e, "keep_alive", "'%.40s' is not a duration (seconds, or like 30s, 5m, 1h, -1)",
              v->valuestring);
    return -EINVAL;
}

static int parse_options(const cJSON *root, struct openai_options *o, struct openai_error *e)
{
    const cJSON *ka = field(root, "keep_alive");
    if (ka && !cJSON_IsNull(ka)) {
        if (parse_keep_alive(ka, &o->keep_alive_ms, e))
            return -EINVAL;
        o->has_keep_alive = true;
    }
    const cJSON *m = field(root, "model");
    if (m) {
        if (!cJSON_IsString(m)) {
            bad_type(e, "model", "a string");
            return -EINVAL;
        }
        if (strlen(m->valuestring) >= sizeof(o->model)) {
            bad_value(e, "model", "is longer than %zu bytes", sizeof(o->model) - 1);
            return -EINVAL;
        }
        snprintf(o->model, sizeof(o->model), "%s", m->valuestring);
    }
    if (get_bool(root, "stream", &o->stream, e))
        return -EINVAL;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) {
            bad_type(e, "stream_options", "an object");
            return -EINVAL;
        }
        const cJSON *iu = field(so, "include_usage");
        if (iu && !cJSON_IsBool(iu)) {
            bad_type(e, "stream_options.include_usage", "a boolean");
            return -EINVAL;
        }
        o->include_usage = iu && cJSON_IsTrue(iu);
    }
    return 0;
}

int openai_parse_request(const char *body, size_t len, enum agent_request_kind kind,
                         struct agent_request **ret_req, struct openai_options *ret_opts,
                         struct openai_error *err)
{
    struct agent_request *req = NULL;
    struct openai_options opts = {0};
    int rc = -EINVAL;
    cJSON *root = parse_body(body, len);
    if (!root) {
        size_t at = 0;
        const char *where = cJSON_GetErrorPtr();
        if (where && where >= body && where <= body + len)
            at = (size_t)(where - body);
        openai_error_set(err, 400, "invalid_request_error", "invalid_json", NULL,
                         "request body is not valid JSON (error near byte %zu)", at);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        openai_error_set(err, 400, "invalid_request_error", "invalid_json", NULL,
                         "request body must be a JSON object");
        goto fail;
    }
    req = agent_request_new(kind);
    if (!req) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = parse_options(root, &opts, err)) || (rc = parse_unsupported(root, kind, err)) ||
        (rc = parse_sampling(root, &req->sampling, err)) || (rc = parse_stop(root, req, err)))
        goto fail;
    rc = kind == AGENT_REQ_CHAT ? parse_messages(root, req, err) : parse_prompt(root, req, err);
    if (!rc && kind == AGENT_REQ_CHAT)
        rc = openai_parse_tools(root, req, err);
    if (rc)
        goto fail;
    cJSON_Delete(root);
    *ret_req = req;
    *ret_opts = opts;
    return 0;
fail:
    if (rc == -ENOMEM)
        openai_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    agent_request_free(req);
    cJSON_Delete(root);
    return rc;
}

int openai_parse_governor(const char *body, size_t len, char *policy, size_t policy_len,
                          double *power_cap_w, struct openai_error *err)
{
    int rc = -EINVAL;
    policy[0] = '\0';
    *power_cap_w = NAN;
    cJSON *root = parse_body(body, len);
    if (!cJSON_IsObject(root)) {
        openai_error_set(err, 400, "invalid_request_error", "invalid_json", NULL,
                         "request body must be a JSON object");
        goto out;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "policy");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "power_cap_w");
    if (!p && !c) {
        openai_error_set(err, 400, "invalid_request_error", "missing_required_parameter", NULL,
                         "give 'policy', 'power_cap_w' or both");
        goto out;
    }
    if (p) {
        if (!cJSON_IsString(p)) {
            bad_type(err, "policy", "a string");
            goto out;
        }
        size_t n = strlen(p->valuestring);
        if (n == 0 || n >= policy_len) {
            bad_value(err, "policy", "must be 1 to %zu bytes long", policy_len - 1);
            goto out;
        }
        memcpy(policy, p->valuestring, n + 1);
    }
    if (c) {
        if (cJSON_IsNull(c)) {
            *power_cap_w = 0;
        } else if (!cJSON_IsNumber(c)) {
            bad_type(err, "power_cap_w", "a number or null");
            goto out;
        } else if (!(c->valuedouble >= 0 && c->valuedouble <= 10000)) {
            bad_value(err, "power_cap_w", "must be between 0 (no cap) and 10000");
            goto out;
        } else {
            *power_cap_w = c->valuedouble;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- responses ---- */

void openai_response_id_init(struct openai_response_id *r, enum agent_request_kind kind,
                             uint64_t serial, int64_t created, const char *model)
{
    r->kind = kind;
    snprintf(r->id, sizeof(r->id), "%s-%016llx", kind == AGENT_REQ_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)serial);
    r->created = created;
    snprintf(r->model, sizeof(r->model), "%s", model ? model : "");
}

const char *openai_finish_reason(enum agent_finish f)
{
    return f == AGENT_FINISH_LENGTH ? "length" : "stop";
}

static int head(const struct openai_response_id *r, const char *object, struct openai_buf *b)
{
    int rc = buf_str(b, "{\"id\":\"");
    rc |= buf_str(b, r->id);
    rc |= buf_printf(b, "\",\"object\":\"%s\",\"created\":%lld,\"model\":", object,
                     (long long)r->created);
    rc |= buf_json_str(b, r->model);
    rc |= buf_str(b, ",\"system_fingerprint\":null");
    return rc ? -ENOMEM : 0;
}

static int usage_energy(const struct agent_result *res, bool usage, struct openai_buf *b)
{
    int rc = 0;
    if (usage)
        rc |=
            buf_printf(b,
                       ",\"usage\":{\"prompt_tokens\":%llu,\"completion_tokens\":%llu,"
                       "\"total_tokens\":%llu,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":%llu}}",
                       (unsigned long long)res->prompt_tokens, (unsigned long long)res->gen_tokens,
                       (unsigned long long)res->prompt_tokens + (unsigned long long)res->gen_tokens,
                       (unsigned long long)res->cached_tokens);
    rc |= buf_str(b, ",\"energy\":{\"joules\":");
    rc |= buf_num(b, res->energy_j);
    rc |= buf_str(b, ",\"joules_per_token\":");
    rc |= buf_num(b, res->j_per_token);
    rc |= buf_str(b, ",\"avg_watts\":");
    rc |= buf_num(b, res->avg_power_w);
    rc |= buf_str(b, ",\"policy\":");
    char policy[sizeof(res->policy) + 1];
    snprintf(policy, sizeof(policy), "%.*s", (int)sizeof(res->policy), res->policy);
    rc |= policy[0] ? buf_json_str(b, policy) : buf_str(b, "null");
    rc |= buf_str(b, "}");
    if (res->sources_json) { /* the entries plugins cited (agent/plugins/; already JSON) */
        rc |= buf_str(b, ",\"sources\":");
        rc |= buf_str(b, res->sources_json);
    }
    return rc ? -ENOMEM : 0;
}

int openai_response_json(const struct openai_response_id *r, const char *text, size_t len,
                         const struct agent_result *res, struct openai_buf *b)
{
    return openai_response_json_calls(r, text, len, NULL, 0, res, b);
}

int openai_response_json_calls(const struct openai_response_id *r, const char *text, size_t len,
                               const struct agent_tool_call *calls, size_t n_calls,
                               const struct agent_result *res, struct openai_buf *b)
{
    bool chat = r->kind == AGENT_REQ_CHAT;
    int rc = head(r, chat ? "chat.completion" : "text_completion", b);
    if (chat && n_calls && len == 0) /* OpenAI: content null when the reply is only calls */
        rc |= buf_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"content\":null");
    else if (chat)
        rc |= buf_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"content\":\"");
    else
        rc |= buf_str(b, ",\"choices\":[{\"index\":0,\"text\":\"");
    if (!(chat && n_calls && len == 0)) {
        rc |= openai_buf_append_json(b, text ? text : "", text ? len : 0);
        rc |= buf_str(b, "\"");
    }
    if (chat && n_calls) {
        rc |= buf_str(b, ",\"tool_calls\":");
        rc |= openai_tool_calls_json(r, calls, n_calls, b);
    }
    rc |= buf_str(b, chat ? "},\"logprobs\":null,\"finish_reason\":\""
                          : ",\"logprobs\":null,\"finish_reason\":\"");
    rc |=
        buf_str(b, n_calls && res->finish == AGENT_FINISH_STOP ? "tool_calls"
                                                               : openai_finish_reason(res->finish));
    rc |= buf_str(b, "\"}]");
    rc |= usage_energy(res, true, b);
    rc |= buf_str(b, "}");
    return rc ? -ENOMEM : 0;
}

int openai_stream_init(struct openai_stream *s, const struct openai_response_id *rid)
{
    memset(s, 0, sizeof(*s));
    s->rid = *rid;
    bool chat = rid->kind == AGENT_REQ_CHAT;
    int rc = buf_str(&s->prefix, "data: ");
    rc |= head(rid, chat ? "chat.completion.chunk" : "text_completion", &s->prefix);
    rc |= buf_str(&s->prefix, chat ? ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\""
                                   : ",\"choices\":[{\"index\":0,\"text\":\"");
    s->suffix = chat ? "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                     : "\",\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    s->suffix_len = strlen(s->suffix);
    if (rc) {
        openai_stream_free(s);
        return -ENOMEM;
    }
    return 0;
}

void openai_stream_free(struct openai_stream *s)
{
    if (s)
        openai_buf_free(&s->prefix);
}

int openai_stream_begin(const struct openai_stream *s, struct openai_buf *b)
{
    if (s->rid.kind != AGENT_REQ_CHAT)
        return 0;
    int rc = buf_str(b, "data: ");
    rc |= head(&s->rid, "chat.completion.chunk", b);
    rc |= buf_str(b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
                     "\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    return rc ? -ENOMEM : 0;
}

int openai_stream_text(const struct openai_stream *s, const char *text, size_t len,
                       struct openai_buf *b)
{
    if (openai_buf_reserve(b, s->prefix.len + len * 6 + s->suffix_len) < 0)
        return -ENOMEM;
    openai_buf_append(b, s->prefix.data, s->prefix.len);
    openai_buf_append_json(b, text, len);
    openai_buf_append(b, s->suffix, s->suffix_len);
    return 0;
}

int openai_stream_end(const struct openai_stream *s, const struct agent_result *res,
                      bool include_usage, const struct openai_error *err, struct openai_buf *b)
{
    bool chat = s->rid.kind == AGENT_REQ_CHAT;
    int rc = 0;
    if (res->finish == AGENT_FINISH_ERROR || res->finish == AGENT_FINISH_CANCELLED) {
        rc |= buf_str(b, "data: ");
        rc |= openai_error_json(err, b);
        rc |= buf_str(b, "\n\n");
    } else {
        rc |= buf_str(b, "data: ");
        rc |= head(&s->rid, chat ? "chat.completion.chunk" : "text_completion", b);
        rc |= buf_str(b, chat ? ",\"choices\":[{\"index\":0,\"delta\":{},"
                              : ",\"choices\":[{\"index\":0,\"text\":\"\",");
        rc |= buf_str(b, "\"logprobs\":null,\"finish_reason\":\"");
        rc |= buf_str(b, res->n_tool_calls && res->finish == AGENT_FINISH_STOP
                             ? "tool_calls"
                             : openai_finish_reason(res->finish));
        rc |= buf_str(b, "\"}]");
        rc |= usage_energy(res, false, b);
        rc |= buf_str(b, "}\n\n");
        if (include_usage) {
            rc |= buf_str(b, "data: ");
            rc |= head(&s->rid, chat ? "chat.completion.chunk" : "text_completion", b);
            rc |= buf_str(b, ",\"choices\":[]");
            rc |= usage_energy(res, true, b);
            rc |= buf_str(b, "}\n\n");
        }
    }
    rc |= buf_str(b, "data: [DONE]\n\n");
    return rc ? -ENOMEM : 0;
}

static int model_object(const char *id, int64_t created, struct openai_buf *b)
{
    int rc = buf_str(b, "{\"id\":");
    rc |= buf_json_str(b, id);
    rc |= buf_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"ember\"}",
                     (long long)created);
    return rc ? -ENOMEM : 0;
}

int openai_models_json(const char *id, int64_t created, struct openai_buf *b)
{
    int rc = buf_str(b, "{\"object\":\"list\",\"data\":[");
    if (id && id[0])
        rc |= model_object(id, created, b);
    rc |= buf_str(b, "]}");
    return rc ? -ENOMEM : 0;
}

int openai_model_json(const char *id, int64_t created, struct openai_buf *b)
{
    return model_object(id, created, b);
}

static int model_row_object(const struct openai_model_row *m, struct openai_buf *b)
{
    int rc = buf_str(b, "{\"id\":");
    rc |= buf_json_str(b, m->id);
    rc |=
        buf_printf(b,
                   ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"ember\","
                   "\"loaded\":%s,\"status\":\"%s\"",
                   (long long)m->created, m->loaded ? "true" : "false", m->error ? "broken" : "ok");
    if (m->error) {
        rc |= buf_str(b, ",\"error\":");
        rc |= buf_json_str(b, m->error);
    }
    rc |= buf_str(b, "}");
    return rc ? -ENOMEM : 0;
}

int openai_model_rows_json(const struct openai_model_row *rows, size_t n, struct openai_buf *b)
{
    int rc = buf_str(b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            rc |= buf_str(b, ",");
        rc |= model_row_object(&rows[i], b);
    }
    rc |= buf_str(b, "]}");
    return rc ? -ENOMEM : 0;
}

int openai_model_row_json(const struct openai_model_row *row, struct openai_buf *b)
{
    return model_row_object(row, b);
}
