/* OpenAI tools and structured output on /v1/chat/completions: parsing `tools`, `tool_choice`,
 * `parallel_tool_calls`, `response_format` and the tool parts of messages into the request,
 * and writing `message.tool_calls` / `delta.tool_calls` back (docs/api.md). Kept apart from
 * openai.c so the rest of the API does not grow with it. Schemas and tool lists are compiled
 * here once, so a hostile one is a 400 before the request reaches the engine. */
#include "openai_tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "engine/json_schema.h"

static void bad(struct openai_error *e, const char *param, const char *msg)
{
    openai_error_set(e, 400, "invalid_request_error", "invalid_value", param, "%s", msg);
}

/* Compiles grammar text to check it (a $ref cycle shows only then). */
static int check_grammar(const char *text, const char *param, struct openai_error *e)
{
    struct eng_grammar *g = NULL;
    char err[256];
    int rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
    eng_grammar_free(g);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        bad(e, param, err);
        return -EINVAL;
    }
    return 0;
}

static int parse_response_format(const cJSON *root, struct agent_request *req,
                                 struct openai_error *e)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (!rf || cJSON_IsNull(rf))
        return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type)) {
        bad(e, "response_format", "'response_format' must be an object with a 'type'");
        return -EINVAL;
    }
    const char *t = type->valuestring;
    char *text = NULL, err[256] = "";
    if (strcmp(t, "text") == 0)
        return 0;
    if (strcmp(t, "json_object") == 0) {
        text = strdup(eng_json_object_grammar());
        if (!text)
            return -ENOMEM;
    } else if (strcmp(t, "json_schema") == 0) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!cJSON_IsObject(js) || !cJSON_IsObject(schema)) {
            bad(e, "response_format.json_schema",
                "'response_format.json_schema' must be an object with a 'schema' object");
            return -EINVAL;
        }
        char *s = cJSON_PrintUnformatted(schema);
        if (!s)
            return -ENOMEM;
        int rc = eng_json_schema_grammar(s, 0, &text, err, sizeof(err));
        cJSON_free(s);
        if (rc == -ENOMEM)
            return rc;
        if (rc) {
            bad(e, "response_format.json_schema.schema", err);
            return -EINVAL;
        }
    } else {
        bad(e, "response_format.type",
            "'response_format.type' must be text, json_object or "
            "json_schema");
        return -EINVAL;
    }
    int rc = check_grammar(text, "response_format.json_schema.schema", e);
    if (rc) {
        free(text);
        return rc;
    }
    req->tools.format_grammar = text;
    return 0;
}

int openai_parse_tools(const cJSON *root, struct agent_request *req, struct openai_error *e)
{
    struct agent_tools *t = &req->tools;
    t->parallel = true;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (tools && !cJSON_IsNull(tools)) {
        if (!cJSON_IsArray(tools)) {
            bad(e, "tools",
                "'tools' must be an array of {\"type\":\"function\",\"function\":{...}}");
            return -EINVAL;
        }
        int i = 0;
        for (const cJSON *x = tools->child; x; x = x->next, i++) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(x, "type");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0) {
                char param[32];
                snprintf(param, sizeof(param), "tools[%d].type", i);
                bad(e, param, "only tools of type \"function\" are supported");
                return -EINVAL;
            }
        }
        if (tools->child) {
            t->tools_json = cJSON_PrintUnformatted(tools);
            if (!t->tools_json)
                return -ENOMEM;
            /* compile once now: a bad schema is a 400 here, not an error mid-request */
            char *text = NULL, err[256] = "";
            int rc = eng_tools_grammar(t->tools_json, 0, NULL, ENG_TOOL_SYNTAX_HERMES, true, &text,
                                       err, sizeof(err));
            if (rc == -ENOMEM)
                return rc;
            if (rc) {
                bad(e, "tools", err);
                return -EINVAL;
            }
            rc = check_grammar(text, "tools", e);
            free(text);
            if (rc)
                return rc;
        }
    }
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "parallel_tool_calls");
    if (pc && !cJSON_IsNull(pc)) {
        if (!cJSON_IsBool(pc)) {
            openai_error_set(e, 400, "invalid_request_error", "invalid_type", "parallel_tool_calls",
                             "'parallel_tool_calls' must be a boolean");
            return -EINVAL;
        }
        t->parallel = cJSON_IsTrue(pc);
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    if (tc && !cJSON_IsNull(tc)) {
        if (cJSON_IsString(tc) && strcmp(tc->valuestring, "auto") == 0) {
            t->choice = AGENT_TOOLS_AUTO;
        } else if (cJSON_IsString(tc) && strcmp(tc->valuestring, "none") == 0) {
            t->choice = AGENT_TOOLS_NONE;
        } else if (cJSON_IsString(tc) && strcmp(tc->valuestring, "required") == 0) {
            t->choice = AGENT_TOOLS_REQUIRED;
        } else {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (!cJSON_IsObject(tc) || !cJSON_IsString(name)) {
                bad(e, "tool_choice",
                    "'tool_choice' must be \"auto\", \"none\", \"required\" or "
                    "{\"type\":\"function\",\"function\":{\"name\":...}}");
                return -EINVAL;
            }
            t->choice = AGENT_TOOLS_NAMED;
            t->choice_name = strdup(name->valuestring);
            if (!t->choice_name)
                return -ENOMEM;
            char needle[300];
            cJSON *jn = cJSON_CreateString(name->valuestring);
            char *q = jn ? cJSON_PrintUnformatted(jn) : NULL;
            snprintf(needle, sizeof(needle), "\"name\":%s", q ? q : "");
            cJSON_free(q);
            cJSON_Delete(jn);
            if (!t->tools_json || !strstr(t->tools_json, needle)) {
                bad(e, "tool_choice", "'tool_choice' names a function that is not in 'tools'");
                return -EINVAL;
            }
        }
        if ((t->choice == AGENT_TOOLS_REQUIRED || t->choice == AGENT_TOOLS_NAMED) &&
            !t->tools_json) {
            bad(e, "tool_choice", "'tool_choice' requires 'tools'");
            return -EINVAL;
        }
    }
    int rc = parse_response_format(root, req, e);
    if (rc)
        return rc;
    if (t->format_grammar &&
        (t->choice == AGENT_TOOLS_REQUIRED || t->choice == AGENT_TOOLS_NAMED)) {
        bad(e, "response_format",
            "'response_format' cannot be combined with a required or named 'tool_choice'");
        return -EINVAL;
    }
    return 0;
}

int openai_parse_message_tools(const cJSON *m, size_t index, struct agent_request *req,
                               struct openai_error *e)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (!calls || cJSON_IsNull(calls))
        return 0;
    char param[64];
    snprintf(param, sizeof(param), "messages[%zu].tool_calls", index);
    int n = cJSON_GetArraySize(calls);
    if (!cJSON_IsArray(calls) || n > 64) {
        bad(e, param, "'tool_calls' must be an array of at most 64 calls");
        return -EINVAL;
    }
    if (n == 0)
        return 0;
    struct agent_tool_call *tc = calloc((size_t)n, sizeof(*tc));
    if (!tc)
        return -ENOMEM;
    req->tools.calls[index] = tc;
    int k = 0;
    for (const cJSON *c = calls->child; c; c = c->next, k++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        snprintf(param, sizeof(param), "messages[%zu].tool_calls[%d]", index, k);
        if (!cJSON_IsString(name) || (args && !cJSON_IsString(args))) {
            bad(e, param, "a tool call needs function.name and function.arguments (a JSON string)");
            return -EINVAL;
        }
        cJSON *parsed = cJSON_Parse(args ? args->valuestring : "{}");
        bool ok = cJSON_IsObject(parsed);
        cJSON_Delete(parsed);
        if (!ok) {
            bad(e, param, "function.arguments must be a JSON object in a string");
            return -EINVAL;
        }
        tc[k].id = strdup(cJSON_IsString(id) ? id->valuestring : "");
        tc[k].name = strdup(name->valuestring);
        tc[k].arguments = strdup(args ? args->valuestring : "{}");
        req->tools.n_calls[index] = (size_t)k + 1; /* counted now so the request frees it */
        if (!tc[k].id || !tc[k].name || !tc[k].arguments)
            return -ENOMEM;
    }
    return 0;
}

/* ---- output ---- */

static int add(struct openai_buf *b, const char *s)
{
    return openai_buf_append(b, s, strlen(s));
}

static int add_json(struct openai_buf *b, const char *s)
{
    int rc = add(b, "\"");
    rc |= openai_buf_append_json(b, s, strlen(s));
    rc |= add(b, "\"");
    return rc;
}

/* The call's id: the response's id with call_ in front and the call's index behind. */
static int call_id(struct openai_buf *b, const struct openai_response_id *rid, size_t index)
{
    char id[96];
    const char *dash = strchr(rid->id, '-');
    snprintf(id, sizeof(id), "call_%s_%zu", dash ? dash + 1 : rid->id, index);
    return add_json(b, id);
}

int openai_tool_calls_json(const struct openai_response_id *rid,
                           const struct agent_tool_call *calls, size_t n, struct openai_buf *b)
{
    int rc = add(b, "[");
    for (size_t i = 0; i < n; i++) {
        rc |= add(b, i ? ",{\"id\":" : "{\"id\":");
        rc |= call_id(b, rid, i);
        rc |= add(b, ",\"type\":\"function\",\"function\":{\"name\":");
        rc |= add_json(b, calls[i].name);
        rc |= add(b, ",\"arguments\":");
        rc |= add_json(b, calls[i].arguments);
        rc |= add(b, "}}");
    }
    rc |= add(b, "]");
    return rc ? -ENOMEM : 0;
}

int openai_stream_tool_call(const struct openai_response_id *rid, size_t index, const char *name,
                            const char *arguments, struct openai_buf *b)
{
    /* as OpenAI streams a call: first id, type and name with empty arguments, then the
     * arguments (OpenAI splits them further; clients concatenate the fragments) */
    char head[64];
    int rc = 0;
    for (int part = 0; part < 2; part++) {
        rc |= add(b, "data: {\"id\":");
        rc |= add_json(b, rid->id);
        snprintf(head, sizeof(head), ",\"object\":\"chat.completion.chunk\",\"created\":%lld,",
                 (long long)rid->created);
        rc |= add(b, head);
        rc |= add(b, "\"model\":");
        rc |= add_json(b, rid->model);
        snprintf(head, sizeof(head),
                 ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
                 "\"index\":%zu,",
                 index);
        rc |= add(b, head);
        if (part == 0) {
            rc |= add(b, "\"id\":");
            rc |= call_id(b, rid, index);
            rc |= add(b, ",\"type\":\"function\",\"function\":{\"name\":");
            rc |= add_json(b, name);
            rc |= add(b, ",\"arguments\":\"\"}");
        } else {
            rc |= add(b, "\"function\":{\"arguments\":");
            rc |= add_json(b, arguments);
            rc |= add(b, "}");
        }
        rc |= add(b, "}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }
    return rc ? -ENOMEM : 0;
}
