/* JSON Schema / tool list -> grammar text (json_schema.h). Each schema object becomes one rule
 * "sN"; $defs entries become rules "dN" compiled once, on first reference, so a recursive $ref
 * is a recursive rule and costs nothing more. Every input size is bounded before work is done
 * (depth, enum size, node count, output bytes), so a hostile schema fails fast with a message
 * naming where. */
#include "engine/json_schema.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared rules every schema grammar ends with. Strings are valid UTF-8 (multi-byte
 * sequences spelled out by lead byte) with JSON's escapes; control bytes are not allowed raw. */
static const char common_rules[] =
    "ws ::= \" \"?\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1f\\x80-\\xff] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" hex hex hex hex) "
    "| [\\xc2-\\xdf] cont | [\\xe0-\\xef] cont cont | [\\xf0-\\xf4] cont cont cont\n"
    "cont ::= [\\x80-\\xbf]\n"
    "hex ::= [0-9a-fA-F]\n"
    "integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
    "number ::= integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n"
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws (string \":\" ws value (\",\" ws string \":\" ws value)*)? \"}\"\n"
    "array ::= \"[\" ws (value (\",\" ws value)*)? \"]\"\n";

const char *eng_json_object_grammar(void)
{
    static char text[sizeof(common_rules) + 32];
    if (!text[0])
        snprintf(text, sizeof(text), "root ::= object\n%s", common_rules);
    return text;
}

struct def {
    char *name;
    int rule; /* -1 until compiled */
};

struct comp {
    char *out;
    size_t len, cap;
    int n_rules;
    int n_nodes;
    const cJSON *root;  /* the schema "#" refers to */
    const char *prefix; /* rule-name prefix (per tool) */
    struct def *defs;
    int n_defs, cap_defs;
    char path[256];
    char *err;
    size_t err_len;
    int rc;
};

static int fail(struct comp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct comp *c, const char *fmt, ...)
{
    if (c->rc)
        return c->rc;
    c->rc = -EINVAL;
    if (c->err && c->err_len) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->err_len, "schema: at %s: %s", c->path[0] ? c->path : "/", msg);
    }
    return c->rc;
}

static void emit(struct comp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct comp *c, const char *fmt, ...)
{
    if (c->rc)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(c->out + c->len, c->cap - c->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            fail(c, "formatting failed");
            return;
        }
        if (c->len + (size_t)n < c->cap) {
            c->len += (size_t)n;
            return;
        }
        if (c->len + (size_t)n >= ENG_SCHEMA_MAX_GRAMMAR) {
            fail(c, "the grammar would exceed %d bytes (enums or nesting too large)",
                 ENG_SCHEMA_MAX_GRAMMAR);
            return;
        }
        size_t cap = c->cap * 2 > c->len + (size_t)n + 1 ? c->cap * 2 : c->len + (size_t)n + 1;
        char *o = realloc(c->out, cap);
        if (!o) {
            c->rc = -ENOMEM;
            return;
        }
        c->out = o;
        c->cap = cap;
    }
}

/* A GBNF literal for bytes s[0..n). */
static void emit_literal(struct comp *c, const char *s, size_t n)
{
    emit(c, "\"");
    for (size_t i = 0; i < n && !c->rc; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b == '"' || b == '\\')
            emit(c, "\\%c", b);
        else if (b < 0x20 || b >= 0x7f)
            emit(c, "\\x%02x", b);
        else
            emit(c, "%c", b);
    }
    emit(c, "\"");
}

/* The compact JSON text of v as a literal. */
static void emit_json_literal(struct comp *c, const cJSON *v)
{
    char *t = cJSON_PrintUnformatted(v);
    if (!t) {
        c->rc = c->rc ? c->rc : -ENOMEM;
        return;
    }
    emit_literal(c, t, strlen(t));
    cJSON_free(t);
}

static size_t path_push(struct comp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(struct comp *c, const char *fmt, ...)
{
    size_t old = strlen(c->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->path + old, sizeof(c->path) - old, fmt, ap);
    va_end(ap);
    return old;
}

static int compile(struct comp *c, const cJSON *s, int depth);

static const char *const ignored_keys[] = {
    "description", "title",  "default", "examples",    "$schema",    "$id",      "$comment",
    "strict",      "format", "$defs",   "definitions", "deprecated", "readOnly", "writeOnly",
};
static const char *const known_keys[] = {
    "type",      "properties", "required", "additionalProperties",
    "items",     "enum",       "const",    "anyOf",
    "oneOf",     "$ref",       "minItems", "maxItems",
    "minLength", "maxLength",
};

static bool in_list(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k, list[i]) == 0)
            return true;
    return false;
}

static int get_count(struct comp *c, const cJSON *s, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!v)
        return dflt;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 10000 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return fail(c, "%s must be an integer from 0 to 10000", key), -1;
    return (int)v->valuedouble;
}

/* Returns the rule number of the $defs entry or root named by a $ref. */
static int resolve_ref(struct comp *c, const char *ref, int depth)
{
    if (strcmp(ref, "#") == 0)
        ref = "#/$defs/\x01root"; /* the schema itself, kept as a pseudo-definition */
    const char *name = NULL, *table = NULL;
    if (strncmp(ref, "#/$defs/", 8) == 0) {
        name = ref + 8;
        table = "$defs";
    } else if (strncmp(ref, "#/definitions/", 14) == 0) {
        name = ref + 14;
        table = "definitions";
    } else {
        return fail(c,
                    "$ref \"%.80s\": only \"#\", \"#/$defs/NAME\" and \"#/definitions/NAME\" "
                    "are supported",
                    ref);
    }
    for (int i = 0; i < c->n_defs; i++)
        if (strcmp(c->defs[i].name, ref) == 0)
            return c->defs[i].rule;
    const cJSON *target = NULL;
    if (name[0] == '\x01') {
        target = c->root;
    } else {
        if (strchr(name, '/') || strchr(name, '~'))
            return fail(c, "$ref \"%.80s\": nested or escaped paths are not supported", ref);
        target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->root, table),
                                                  name);
        if (!target)
            return fail(c, "$ref \"%.80s\" does not resolve", ref);
    }
    if (c->n_defs == c->cap_defs) {
        int cap = c->cap_defs ? c->cap_defs * 2 : 8;
        struct def *d = realloc(c->defs, (size_t)cap * sizeof(*d));
        if (!d)
            return c->rc = -ENOMEM;
        c->defs = d;
        c->cap_defs = cap;
    }
    /* the rule number is reserved before compiling, so a reference back to it while compiling
     * (recursion) finds it */
    int rule = c->n_rules++;
    c->defs[c->n_defs].name = strdup(ref);
    if (!c->defs[c->n_defs].name)
        return c->rc = -ENOMEM;
    c->defs[c->n_defs++].rule = rule;
    char saved[sizeof(c->path)];
    memcpy(saved, c->path, sizeof(saved));
    snprintf(c->path, sizeof(c->path), "%.200s", ref + 1);
    int body = compile(c, target, depth + 1);
    memcpy(c->path, saved, sizeof(saved));
    if (body < 0)
        return body;
    emit(c, "%sr%d ::= %sr%d\n", c->prefix, rule, c->prefix, body);
    return c->rc ? c->rc : rule;
}

static void compile_object(struct comp *c, const cJSON *s, int depth, int rule)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) {
        fail(c, "properties must be an object");
        return;
    }
    if (req && !cJSON_IsArray(req)) {
        fail(c, "required must be an array of names");
        return;
    }
    if (addl && !cJSON_IsBool(addl) && !cJSON_IsObject(addl)) {
        fail(c, "additionalProperties must be a boolean or a schema");
        return;
    }
    int n = cJSON_GetArraySize(props);
    if (!props || n == 0) {
        if (!addl || cJSON_IsTrue(addl) || (cJSON_IsObject(addl) && !addl->child))
            emit(c, "%sr%d ::= object\n", c->prefix, rule); /* any object */
        else if (cJSON_IsObject(addl))
            fail(c, "additionalProperties as a schema is not supported");
        else
            emit(c, "%sr%d ::= \"{\" ws \"}\"\n", c->prefix, rule);
        return;
    }
    if (n > ENG_SCHEMA_MAX_ENUM) {
        fail(c, "more than %d properties", ENG_SCHEMA_MAX_ENUM);
        return;
    }
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        if (!cJSON_IsString(r) || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring)) {
            fail(c, "required names \"%.60s\", which is not in properties",
                 cJSON_IsString(r) ? r->valuestring : "(not a string)");
            return;
        }
    }
    /* property i as "key": value rules pK, then, from the end:
     *   firstI ::= the properties from i on, none written yet
     *   restI  ::= the properties from i on, some already written (so each starts with ",") */
    int *prop_rule = malloc((size_t)n * sizeof(*prop_rule));
    bool *required = calloc((size_t)n, 1);
    if (!prop_rule || !required) {
        c->rc = -ENOMEM;
        goto out;
    }
    int i = 0;
    for (const cJSON *p = props->child; p && !c->rc; p = p->next, i++) {
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            if (strcmp(r->valuestring, p->string) == 0)
                required[i] = true;
        size_t old = path_push(c, "/properties/%.40s", p->string);
        int v = compile(c, p, depth + 1);
        c->path[old] = '\0';
        if (v < 0)
            goto out;
        prop_rule[i] = c->n_rules++;
        cJSON *key = cJSON_CreateString(p->string);
        if (!key) {
            c->rc = -ENOMEM;
            goto out;
        }
        emit(c, "%sr%d ::= ", c->prefix, prop_rule[i]);
        emit_json_literal(c, key);
        cJSON_Delete(key);
        emit(c, " \":\" ws %sr%d\n", c->prefix, v);
    }
    int first_next = -1, rest_next = -1; /* rules for i + 1; -1 = nothing follows */
    for (i = n - 1; i >= 0 && !c->rc; i--) {
        int first = c->n_rules++, rest = c->n_rules++;
        char fn[48] = "", rn[48] = "";
        if (rest_next >= 0)
            snprintf(rn, sizeof(rn), " %sr%d", c->prefix, rest_next);
        if (first_next >= 0)
            snprintf(fn, sizeof(fn), "%sr%d", c->prefix, first_next);
        /* first: write i then the rest, or (optional) skip i */
        emit(c, "%sr%d ::= %sr%d%s", c->prefix, first, c->prefix, prop_rule[i], rn);
        if (!required[i])
            emit(c, " | %s", first_next >= 0 ? fn : "\"\"");
        emit(c, "\n%sr%d ::= \",\" ws %sr%d%s", c->prefix, rest, c->prefix, prop_rule[i], rn);
        if (!required[i])
            emit(c, " | %s", rest_next >= 0 ? rn + 1 : "\"\"");
        emit(c, "\n");
        first_next = first;
        rest_next = rest;
    }
    emit(c, "%sr%d ::= \"{\" ws %sr%d \"}\"\n", c->prefix, rule, c->prefix, first_next);
out:
    free(prop_rule);
    free(required);
}

static void compile_type(struct comp *c, const cJSON *s, const char *type, int depth, int rule)
{
    if (strcmp(type, "object") == 0) {
        compile_object(c, s, depth, rule);
    } else if (strcmp(type, "array") == 0) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        int lo = get_count(c, s, "minItems", 0), hi = get_count(c, s, "maxItems", -1);
        if (c->rc)
            return;
        if (hi >= 0 && hi < lo) {
            fail(c, "maxItems below minItems");
            return;
        }
        int item = -1;
        if (items && !(cJSON_IsObject(items) && !items->child)) {
            size_t old = path_push(c, "/items");
            item = compile(c, items, depth + 1);
            c->path[old] = '\0';
            if (item < 0)
                return;
        }
        char it[48];
        if (item >= 0)
            snprintf(it, sizeof(it), "%sr%d", c->prefix, item);
        else
            snprintf(it, sizeof(it), "value");
        if (hi == 0) {
            emit(c, "%sr%d ::= \"[\" ws \"]\"\n", c->prefix, rule);
            return;
        }
        /* first item, then more: {lo-1, hi-1} */
        int more_lo = lo > 0 ? lo - 1 : 0;
        emit(c, "%sr%d ::= \"[\" ws (%s (\",\" ws %s){%d,", c->prefix, rule, it, it, more_lo);
        if (hi > 0)
            emit(c, "%d", hi - 1);
        emit(c, "})%s \"]\"\n", lo > 0 ? "" : "?");
    } else if (strcmp(type, "string") == 0) {
        int lo = get_count(c, s, "minLength", 0), hi = get_count(c, s, "maxLength", -1);
        if (c->rc)
            return;
        if (hi >= 0 && hi < lo) {
            fail(c, "maxLength below minLength");
            return;
        }
        if (lo == 0 && hi < 0)
            emit(c, "%sr%d ::= string\n", c->prefix, rule);
        else if (hi < 0)
            emit(c, "%sr%d ::= \"\\\"\" char{%d,} \"\\\"\"\n", c->prefix, rule, lo);
        else
            emit(c, "%sr%d ::= \"\\\"\" char{%d,%d} \"\\\"\"\n", c->prefix, rule, lo, hi);
    } else if (strcmp(type, "number") == 0 || strcmp(type, "integer") == 0 ||
               strcmp(type, "boolean") == 0 || strcmp(type, "null") == 0) {
        emit(c, "%sr%d ::= %s\n", c->prefix, rule, type);
    } else {
        fail(c, "unknown type \"%.40s\"", type);
    }
}

/* Compiles schema s into a new rule; returns its number, or < 0 (c->rc) on error. */
static int compile(struct comp *c, const cJSON *s, int depth)
{
    if (c->rc)
        return c->rc;
    if (depth > ENG_SCHEMA_MAX_DEPTH)
        return fail(c, "schemas nested deeper than %d", ENG_SCHEMA_MAX_DEPTH);
    if (++c->n_nodes > ENG_SCHEMA_MAX_NODES)
        return fail(c, "more than %d schema objects", ENG_SCHEMA_MAX_NODES);
    int rule = c->n_rules++;
    if (cJSON_IsTrue(s)) {
        emit(c, "%sr%d ::= value\n", c->prefix, rule);
        return c->rc ? c->rc : rule;
    }
    if (!cJSON_IsObject(s))
        return fail(c, "a schema must be an object or true");
    for (const cJSON *k = s->child; k; k = k->next) {
        if (!in_list(k->string, known_keys, sizeof(known_keys) / sizeof(known_keys[0])) &&
            !in_list(k->string, ignored_keys, sizeof(ignored_keys) / sizeof(ignored_keys[0])))
            return fail(c, "keyword \"%.40s\" is not supported", k->string);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!any)
        any = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (ref) {
        if (!cJSON_IsString(ref))
            return fail(c, "$ref must be a string");
        int r = resolve_ref(c, ref->valuestring, depth);
        if (r < 0)
            return r;
        emit(c, "%sr%d ::= %sr%d\n", c->prefix, rule, c->prefix, r);
    } else if (cn) {
        emit(c, "%sr%d ::= ", c->prefix, rule);
        emit_json_literal(c, cn);
        emit(c, "\n");
    } else if (en) {
        int n = cJSON_GetArraySize(en);
        if (!cJSON_IsArray(en) || n == 0)
            return fail(c, "enum must be a non-empty array");
        if (n > ENG_SCHEMA_MAX_ENUM)
            return fail(c, "enum has %d values, more than %d", n, ENG_SCHEMA_MAX_ENUM);
        emit(c, "%sr%d ::= ", c->prefix, rule);
        for (const cJSON *v = en->child; v && !c->rc; v = v->next) {
            emit_json_literal(c, v);
            if (v->next)
                emit(c, " | ");
        }
        emit(c, "\n");
    } else if (any) {
        int n = cJSON_GetArraySize(any);
        if (!cJSON_IsArray(any) || n == 0)
            return fail(c, "anyOf must be a non-empty array");
        if (n > ENG_SCHEMA_MAX_ENUM)
            return fail(c, "anyOf has more than %d branches", ENG_SCHEMA_MAX_ENUM);
        int *br = malloc((size_t)n * sizeof(*br));
        if (!br)
            return c->rc = -ENOMEM;
        int i = 0;
        for (const cJSON *b = any->child; b && !c->rc; b = b->next, i++) {
            size_t old = path_push(c, "/anyOf/%d", i);
            br[i] = compile(c, b, depth + 1);
            c->path[old] = '\0';
        }
        emit(c, "%sr%d ::= ", c->prefix, rule);
        for (i = 0; i < n && !c->rc; i++)
            emit(c, "%s%sr%d", i ? " | " : "", c->prefix, br[i]);
        emit(c, "\n");
        free(br);
    } else if (cJSON_IsString(type)) {
        compile_type(c, s, type->valuestring, depth, rule);
    } else if (cJSON_IsArray(type)) {
        int n = cJSON_GetArraySize(type);
        if (n == 0 || n > 7)
            return fail(c, "type lists must name 1 to 7 types");
        int first = c->n_rules;
        c->n_rules += n;
        int i = 0;
        for (const cJSON *t = type->child; t && !c->rc; t = t->next, i++) {
            if (!cJSON_IsString(t))
                return fail(c, "type lists hold type names");
            compile_type(c, s, t->valuestring, depth, first + i);
        }
        emit(c, "%sr%d ::= ", c->prefix, rule);
        for (i = 0; i < n; i++)
            emit(c, "%s%sr%d", i ? " | " : "", c->prefix, first + i);
        emit(c, "\n");
    } else if (type) {
        return fail(c, "type must be a name or a list of names");
    } else if (cJSON_GetObjectItemCaseSensitive(s, "properties")) {
        compile_type(c, s, "object", depth, rule);
    } else {
        emit(c, "%sr%d ::= value\n", c->prefix, rule); /* no constraint: any JSON value */
    }
    return c->rc ? c->rc : rule;
}

static void comp_free(struct comp *c)
{
    for (int i = 0; i < c->n_defs; i++)
        free(c->defs[i].name);
    free(c->defs);
    c->defs = NULL;
    c->n_defs = c->cap_defs = 0;
}

/* Compiles one schema with the given rule prefix; returns its rule or < 0. */
static int compile_root(struct comp *c, const cJSON *schema, const char *prefix)
{
    comp_free(c);
    c->root = schema;
    c->prefix = prefix;
    int r = compile(c, schema, 0);
    comp_free(c);
    return r;
}

static int parse_json(const char *text, size_t len, cJSON **ret, const char *what, char *err,
                      size_t err_len)
{
    if (!text)
        return -EINVAL;
    if (!len)
        len = strlen(text);
    if (len > ENG_SCHEMA_MAX_TEXT) {
        snprintf(err, err_len, "%s: longer than %d bytes", what, ENG_SCHEMA_MAX_TEXT);
        return -EINVAL;
    }
    const char *end = NULL;
    *ret = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!*ret) {
        snprintf(err, err_len, "%s: invalid JSON (or nested deeper than %d levels) at byte %zu",
                 what, CJSON_NESTING_LIMIT, end && end >= text ? (size_t)(end - text) : (size_t)0);
        return -EINVAL;
    }
    return 0;
}

static int finish(struct comp *c, char **ret_text)
{
    emit(c, "%s", common_rules);
    if (c->rc) {
        free(c->out);
        return c->rc;
    }
    *ret_text = c->out;
    return 0;
}

static int comp_init(struct comp *c, char *err, size_t err_len)
{
    memset(c, 0, sizeof(*c));
    c->err = err;
    c->err_len = err_len;
    c->cap = 4096;
    c->out = malloc(c->cap);
    if (!c->out)
        return -ENOMEM;
    c->out[0] = '\0';
    return 0;
}

int eng_json_schema_grammar(const char *schema, size_t len, char **ret_text, char *err,
                            size_t err_len)
{
    *ret_text = NULL;
    cJSON *s = NULL;
    int rc = parse_json(schema, len, &s, "schema", err, err_len);
    if (rc < 0)
        return rc;
    struct comp c;
    if (comp_init(&c, err, err_len) < 0) {
        cJSON_Delete(s);
        return -ENOMEM;
    }
    emit(&c, "root ::= sr0\n");
    compile_root(&c, s, "s");
    cJSON_Delete(s);
    return finish(&c, ret_text);
}

int eng_tools_grammar(const char *tools, size_t len, const char *only_name,
                      enum eng_tool_syntax syntax, bool parallel, char **ret_text, char *err,
                      size_t err_len)
{
    *ret_text = NULL;
    cJSON *t = NULL;
    int rc = parse_json(tools, len, &t, "tools", err, err_len);
    if (rc < 0)
        return rc;
    struct comp c;
    if (comp_init(&c, err, err_len) < 0) {
        cJSON_Delete(t);
        return -ENOMEM;
    }
    int n = cJSON_GetArraySize(t);
    if (!cJSON_IsArray(t) || n == 0) {
        fail(&c, "tools must be a non-empty array");
        goto out;
    }
    if (n > ENG_SCHEMA_MAX_ENUM) {
        fail(&c, "more than %d tools", ENG_SCHEMA_MAX_ENUM);
        goto out;
    }
    const char *args_key = syntax == ENG_TOOL_SYNTAX_LLAMA3 ? "parameters" : "arguments";
    int i = 0, n_calls = 0;
    char prefix[32];
    for (const cJSON *tool = t->child; tool && !c.rc; tool = tool->next, i++) {
        snprintf(c.path, sizeof(c.path), "tools[%d]", i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (!cJSON_IsObject(fn) || !cJSON_IsString(name) || !name->valuestring[0]) {
            fail(&c, "each tool needs function.name");
            break;
        }
        if (only_name && strcmp(only_name, name->valuestring) != 0)
            continue;
        snprintf(prefix, sizeof(prefix), "t%d", i);
        int args = -1;
        size_t old = path_push(&c, ".function.parameters");
        if (params)
            args = compile_root(&c, params, prefix);
        c.path[old] = '\0';
        cJSON *jn = cJSON_CreateString(name->valuestring);
        if (!jn) {
            c.rc = -ENOMEM;
            break;
        }
        emit(&c, "t%dcall ::= \"{\\\"name\\\":\" ws ", i);
        emit_json_literal(&c, jn);
        cJSON_Delete(jn);
        emit(&c, " \",\" ws \"\\\"%s\\\":\" ws ", args_key);
        if (args >= 0)
            emit(&c, "t%dr%d", i, args);
        else
            emit(&c, "object");
        emit(&c, " \"}\"\n");
        n_calls++;
    }
    if (!c.rc && n_calls > 0) {
        emit(&c, "call ::= ");
        int k = 0;
        i = 0;
        for (const cJSON *tool = t->child; tool; tool = tool->next, i++) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(tool, "function"), "name");
            if (only_name && strcmp(only_name, name->valuestring) != 0)
                continue;
            emit(&c, "%st%dcall", k++ ? " | " : "", i);
        }
    }
    if (!c.rc && n_calls == 0)
        fail(&c, "tool_choice names \"%.60s\", which is not among the tools",
             only_name ? only_name : "");
    if (c.rc)
        goto out;
    c.path[0] = '\0';
    emit(&c, "\n");
    switch (syntax) {
    case ENG_TOOL_SYNTAX_HERMES:
        emit(&c, "one ::= \"<tool_call>\\n\" call \"\\n</tool_call>\"\n");
        emit(&c, parallel ? "root ::= one (\"\\n\" one){0,7}\n" : "root ::= one\n");
        break;
    case ENG_TOOL_SYNTAX_LLAMA3:
        emit(&c, "root ::= call\n");
        break;
    case ENG_TOOL_SYNTAX_MISTRAL:
        /* Mistral V3 sentencepiece models write "[TOOL_CALLS] [", V3-Tekken ones
         * "[TOOL_CALLS][" (docs/api.md) */
        emit(&c, parallel
                     ? "root ::= \"[TOOL_CALLS]\" \" \"? \"[\" call (\",\" ws call){0,7} \"]\"\n"
                     : "root ::= \"[TOOL_CALLS]\" \" \"? \"[\" call \"]\"\n");
        break;
    default:
        fail(&c, "unknown tool-call syntax %d", (int)syntax);
    }
out:
    cJSON_Delete(t);
    comp_free(&c);
    return finish(&c, ret_text);
}
