/* Tool support for chat templates: JSON printed as the templates print it, and the parser that
 * finds tool calls in model output.
 *
 * Hugging Face's apply_chat_template gives templates a `tojson` filter that is Python's
 * json.dumps(x, ensure_ascii=False, indent=indent) (transformers
 * src/transformers/utils/chat_template_utils.py, `tojson`), so `tool | tojson` prints
 * '{"type": "function", ...}' with ", " and ": " separators, and with indent=4 one member per
 * line with "," and ": ". chat_py_json reproduces that from cJSON. Numbers: cJSON keeps no
 * int/float distinction, so an integral value prints as an int (Python would print 1.0 for a
 * float 1.0) and others in the shortest form that reads back the same, as Python's repr. */
#include "chat_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "engine/json_schema.h"

struct jb {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void jb_add(struct jb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void jb_str(struct jb *b, const char *s)
{
    jb_add(b, s, strlen(s));
}

/* json.dumps(str, ensure_ascii=False): escapes " \ and control characters only. */
static void py_string(struct jb *b, const char *s)
{
    jb_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        const char *e = NULL;
        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                e = esc;
            }
        }
        if (e)
            jb_str(b, e);
        else
            jb_add(b, p, 1);
    }
    jb_add(b, "\"", 1);
}

static void py_number(struct jb *b, double v)
{
    char t[40];
    if (!isfinite(v)) {
        jb_str(b, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(t, sizeof(t), "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(t, sizeof(t), "%.*g", prec, v);
            if (strtod(t, NULL) == v)
                break;
        }
    }
    jb_str(b, t);
}

static void indent_to(struct jb *b, int indent, int level)
{
    jb_add(b, "\n", 1);
    for (int i = 0; i < indent * level; i++)
        jb_add(b, " ", 1);
}

static void py_value(struct jb *b, const cJSON *v, int indent, int level)
{
    if (cJSON_IsNull(v)) {
        jb_str(b, "null");
    } else if (cJSON_IsTrue(v)) {
        jb_str(b, "true");
    } else if (cJSON_IsFalse(v)) {
        jb_str(b, "false");
    } else if (cJSON_IsNumber(v)) {
        py_number(b, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        py_string(b, v->valuestring);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        bool obj = cJSON_IsObject(v);
        if (!v->child) {
            jb_str(b, obj ? "{}" : "[]");
            return;
        }
        jb_str(b, obj ? "{" : "[");
        for (const cJSON *c = v->child; c; c = c->next) {
            if (indent > 0)
                indent_to(b, indent, level + 1);
            if (obj) {
                py_string(b, c->string);
                jb_str(b, ": ");
            }
            py_value(b, c, indent, level + 1);
            if (c->next)
                jb_str(b, indent > 0 ? "," : ", ");
        }
        if (indent > 0)
            indent_to(b, indent, level);
        jb_str(b, obj ? "}" : "]");
    }
}

char *chat_py_json(const void *json, int indent)
{
    struct jb b = {0};
    py_value(&b, json, indent, 0);
    jb_add(&b, "", 0);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}

int eng_chat_tool_syntax(const struct eng_chat_template *tmpl, int *ret_syntax)
{
    switch (tmpl->family) {
    case ENG_CHAT_CHATML:
        *ret_syntax = ENG_TOOL_SYNTAX_HERMES;
        return 0;
    case ENG_CHAT_LLAMA3:
        if (!(tmpl->flags & ENG_CHAT_F_KNOWLEDGE_DATE))
            return -EINVAL; /* Llama 3.0's template has no tools */
        *ret_syntax = ENG_TOOL_SYNTAX_LLAMA3;
        return 0;
    case ENG_CHAT_MISTRAL:
        if (!(tmpl->flags & ENG_CHAT_F_MISTRAL_V3))
            return -EINVAL; /* v0.1/v0.2 templates have no tools */
        *ret_syntax = ENG_TOOL_SYNTAX_MISTRAL;
        return 0;
    default:
        return -EINVAL;
    }
}

/* ---- the output parser ---- */

struct eng_tool_parser {
    int syntax;
    char **names;
    size_t n_names;
    struct eng_tool_parser_cb cb;
    struct jb hold;  /* undecided text */
    bool in_call;    /* Hermes: inside <tool_call> ... */
    bool started;    /* some text has been seen (Llama 3 decides on the first byte) */
    bool json_mode;  /* Llama 3 / Mistral: the output is a call candidate, held to the end */
    bool after_call; /* Hermes: a call just ended; a "\n" next separates it from the next */
    size_t n_calls;
};

static const char hermes_open[] = "<tool_call>", hermes_close[] = "</tool_call>";
static const char mistral_open[] = "[TOOL_CALLS]";

int eng_tool_parser_new(int syntax, const char *const *tool_names, size_t n_names,
                        const struct eng_tool_parser_cb *cb, struct eng_tool_parser **ret)
{
    *ret = NULL;
    if (syntax < ENG_TOOL_SYNTAX_HERMES || syntax > ENG_TOOL_SYNTAX_MISTRAL || !cb)
        return -EINVAL;
    struct eng_tool_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->syntax = syntax;
    p->cb = *cb;
    if (tool_names && n_names) {
        p->names = calloc(n_names, sizeof(*p->names));
        if (!p->names) {
            free(p);
            return -ENOMEM;
        }
        p->n_names = n_names;
        for (size_t i = 0; i < n_names; i++) {
            p->names[i] = strdup(tool_names[i]);
            if (!p->names[i]) {
                eng_tool_parser_free(p);
                return -ENOMEM;
            }
        }
    }
    *ret = p;
    return 0;
}

void eng_tool_parser_free(struct eng_tool_parser *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->names);
    free(p->hold.buf);
    free(p);
}

size_t eng_tool_parser_n_calls(const struct eng_tool_parser *p)
{
    return p->n_calls;
}

static int emit_text(struct eng_tool_parser *p, const char *s, size_t n)
{
    if (!n || !p->cb.text)
        return 0;
    return p->cb.text(p->cb.user, s, n);
}

static bool known(const struct eng_tool_parser *p, const char *name)
{
    if (!p->n_names)
        return true;
    for (size_t i = 0; i < p->n_names; i++)
        if (strcmp(p->names[i], name) == 0)
            return true;
    return false;
}

/* One call object {"name": ..., args_key: {...}}: reports it and returns 1, 0 when it is not a
 * call of a known tool, < 0 on error or a stop. */
static int report_call(struct eng_tool_parser *p, const cJSON *o)
{
    const char *args_key = p->syntax == ENG_TOOL_SYNTAX_LLAMA3 ? "parameters" : "arguments";
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, args_key);
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !known(p, name->valuestring))
        return 0;
    if (args && !cJSON_IsObject(args))
        return 0;
    char *a = args ? cJSON_PrintUnformatted(args) : strdup("{}");
    if (!a)
        return -ENOMEM;
    int rc = p->cb.call ? p->cb.call(p->cb.user, name->valuestring, a) : 0;
    if (args)
        cJSON_free(a);
    else
        free(a);
    p->n_calls++;
    return rc ? rc : 1;
}

/* Checks every element before reporting any, so a half-valid block stays text. */
static bool all_calls(const struct eng_tool_parser *p, const cJSON *v)
{
    const char *args_key = p->syntax == ENG_TOOL_SYNTAX_LLAMA3 ? "parameters" : "arguments";
    const cJSON *one = v;
    if (cJSON_IsArray(v)) {
        if (!v->child)
            return false;
        one = v->child;
    }
    for (; one; one = cJSON_IsArray(v) ? one->next : NULL) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(one, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(one, args_key);
        if (!cJSON_IsObject(one) || !cJSON_IsString(name) || !known(p, name->valuestring) ||
            (args && !cJSON_IsObject(args)))
            return false;
        for (const cJSON *k = one->child; k; k = k->next) {
            /* Mistral V3 calls may carry the call's "id" (a string), as its history does */
            if (p->syntax == ENG_TOOL_SYNTAX_MISTRAL && strcmp(k->string, "id") == 0 &&
                cJSON_IsString(k))
                continue;
            if (strcmp(k->string, "name") != 0 && strcmp(k->string, args_key) != 0)
                return false; /* some other object that happens to have a name */
        }
    }
    return true;
}

/* A complete candidate (JSON text): calls when it is one (or an array of them), else text. */
static int decide(struct eng_tool_parser *p, const char *json, size_t n, const char *as_text,
                  size_t as_text_len)
{
    cJSON *v = cJSON_ParseWithLength(json, n);
    int rc = 0;
    if (v && all_calls(p, v)) {
        if (cJSON_IsArray(v)) {
            for (const cJSON *c = v->child; c && rc >= 0 && rc != 2; c = c->next) {
                int r = report_call(p, c);
                rc = r < 0 ? r : r > 1 ? 2 : 0;
            }
        } else {
            int r = report_call(p, v);
            rc = r < 0 ? r : r > 1 ? 2 : 0;
        }
    } else {
        rc = emit_text(p, as_text, as_text_len) ? 2 : 0;
    }
    cJSON_Delete(v);
    return rc == 2 ? 1 : rc;
}

/* Hermes: pass text through until "<tool_call>", then collect until "</tool_call>". */
static int hermes_step(struct eng_tool_parser *p, bool final)
{
    for (;;) {
        char *b = p->hold.buf ? p->hold.buf : "";
        size_t n = p->hold.len;
        if (!p->in_call) {
            if (p->after_call && n) {
                p->after_call = false;
                if (b[0] == '\n') {
                    memmove(b, b + 1, --n);
                    p->hold.len = n;
                }
            }
            char *open = n ? memmem(b, n, hermes_open, sizeof(hermes_open) - 1) : NULL;
            size_t safe = open ? (size_t)(open - b) : n;
            if (!open && !final) {
                /* keep a tail that could be the start of "<tool_call>" */
                for (size_t k = sizeof(hermes_open) - 2; k > 0; k--) {
                    if (n >= k && memcmp(b + n - k, hermes_open, k) == 0) {
                        safe = n - k;
                        break;
                    }
                }
            }
            if (emit_text(p, b, safe))
                return 1;
            memmove(b, b + safe, n - safe);
            p->hold.len = n - safe;
            if (!open)
                return 0;
            p->in_call = true;
            continue;
        }
        char *close = memmem(b, n, hermes_close, sizeof(hermes_close) - 1);
        if (!close) {
            if (!final)
                return 0;
            /* never closed: a call the model ran out of room for is still a call if the JSON
             * after <tool_call> is complete, else text */
            size_t o = sizeof(hermes_open) - 1;
            int rc = decide(p, b + o, n - o, b, n);
            p->hold.len = 0;
            p->in_call = false;
            return rc;
        }
        size_t o = sizeof(hermes_open) - 1, end = (size_t)(close - b) + sizeof(hermes_close) - 1;
        int rc = decide(p, b + o, (size_t)(close - b) - o, b, end);
        memmove(b, b + end, n - end);
        p->hold.len = n - end;
        p->in_call = false;
        p->after_call = p->n_calls > 0; /* the "\n" between calls belongs to neither */
        if (rc)
            return rc;
    }
}

int eng_tool_parser_push(struct eng_tool_parser *p, const char *text, size_t len)
{
    jb_add(&p->hold, text, len);
    if (p->hold.oom)
        return -ENOMEM;
    if (p->syntax == ENG_TOOL_SYNTAX_HERMES)
        return hermes_step(p, false);
    /* Llama 3 and Mistral: a call is the whole reply, so the first non-space byte decides */
    if (!p->started) {
        size_t i = 0;
        while (i < p->hold.len && strchr(" \n\t\r", p->hold.buf[i]))
            i++;
        if (i == p->hold.len)
            return 0;
        p->started = true;
        const char *rest = p->hold.buf + i;
        size_t rn = p->hold.len - i;
        if (p->syntax == ENG_TOOL_SYNTAX_LLAMA3) {
            p->json_mode = rest[0] == '{';
        } else {
            size_t m = rn < sizeof(mistral_open) - 1 ? rn : sizeof(mistral_open) - 1;
            p->json_mode = memcmp(rest, mistral_open, m) == 0;
            if (p->json_mode && rn < sizeof(mistral_open) - 1)
                p->started = false; /* not yet decided */
        }
    }
    if (p->started && !p->json_mode) {
        int rc = emit_text(p, p->hold.buf, p->hold.len);
        p->hold.len = 0;
        return rc ? 1 : 0;
    }
    return 0;
}

int eng_tool_parser_finish(struct eng_tool_parser *p)
{
    if (p->syntax == ENG_TOOL_SYNTAX_HERMES)
        return hermes_step(p, true);
    const char *b = p->hold.buf ? p->hold.buf : "";
    size_t n = p->hold.len;
    int rc = 0;
    if (p->json_mode) {
        size_t i = 0;
        while (i < n && strchr(" \n\t\r", b[i]))
            i++;
        if (p->syntax == ENG_TOOL_SYNTAX_MISTRAL && n - i >= sizeof(mistral_open) - 1)
            i += sizeof(mistral_open) - 1;
        rc = decide(p, b + i, n - i, b, n);
    } else {
        rc = emit_text(p, b, n) ? 1 : 0;
    }
    p->hold.len = 0;
    return rc;
}
