/* Unit tests of the OpenAI wire format (agent/api/openai.c): every request field, every wrong type
 * and range, hostile bodies, JSON escaping, and the response, stream and error objects checked by
 * parsing them back with cJSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember_test.h"
#include "openai.h"
#include "openai_tools.h"

static struct openai_error err;
static struct openai_options opts;

static struct agent_request *parse(enum agent_request_kind kind, const char *body, int *rc)
{
    struct agent_request *req = NULL;
    memset(&err, 0, sizeof(err));
    memset(&opts, 0, sizeof(opts));
    *rc = openai_parse_request(body, strlen(body), kind, &req, &opts, &err);
    return req;
}

static struct agent_request *chat_ok(const char *body)
{
    int rc;
    struct agent_request *req = parse(AGENT_REQ_CHAT, body, &rc);
    CHECK_MSG(rc == 0, "body %s: rc %d: %s", body, rc, err.message);
    return req;
}

/* Expects a 400 naming param (NULL: no param) with the given code. */
static void chat_bad(const char *body, const char *param, const char *code)
{
    int rc;
    struct agent_request *req = parse(AGENT_REQ_CHAT, body, &rc);
    CHECK_MSG(rc == -EINVAL && !req, "body %s accepted (rc %d)", body, rc);
    CHECK_EQ_INT(err.status, 400);
    CHECK_STR(err.type, "invalid_request_error");
    if (param)
        CHECK_MSG(strcmp(err.param, param) == 0, "body %s: param '%s', want '%s'", body, err.param,
                  param);
    if (code)
        CHECK_MSG(err.code && strcmp(err.code, code) == 0, "body %s: code '%s', want '%s'", body,
                  err.code ? err.code : "(null)", code);
    CHECK_MSG(err.message[0] != '\0', "body %s: empty message", body);
    agent_request_free(req);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_minimal(void)
{
    struct agent_request *req = chat_ok("{" MSG "}");
    if (!req)
        return;
    CHECK_EQ_INT(req->kind, AGENT_REQ_CHAT);
    CHECK_EQ_INT(req->n_messages, 1);
    CHECK_STR(req->messages[0].role, "user");
    CHECK_STR(req->messages[0].content, "hi");
    const struct agent_sampling *s = &req->sampling;
    CHECK(!s->has_temperature && !s->has_top_k && !s->has_top_p && !s->has_min_p &&
          !s->has_repeat_penalty && !s->has_presence_penalty && !s->has_frequency_penalty &&
          !s->has_seed && !s->has_max_tokens);
    CHECK_EQ_INT(req->n_stop, 0);
    CHECK(!req->prompt);
    CHECK(!opts.stream && !opts.include_usage);
    CHECK_STR(opts.model, "");
    CHECK(!atomic_load(&req->cancel));
    agent_request_free(req);
}

static void test_all_fields(void)
{
    struct agent_request *req = chat_ok(
        "{\"model\":\"stories\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"temperature\":0.7,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"presence_penalty\":0.5,"
        "\"frequency_penalty\":-0.5,\"repeat_penalty\":1.1,\"seed\":42,\"max_tokens\":100,"
        "\"stop\":[\"a\",\"\\n\\n\",\"end\",\"\xc3\xa9\"],\"n\":1,\"user\":\"x\",\"tools\":[],"
        "\"logprobs\":false,\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"developer\",\"content\":\"dev\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"user\",\"content\":\"\xe2\x82\xac \\\"q\\\"\"}]}");
    if (!req)
        return;
    CHECK_STR(opts.model, "stories");
    CHECK(opts.stream && opts.include_usage);
    const struct agent_sampling *s = &req->sampling;
    CHECK(s->has_temperature && s->temperature == 0.7);
    CHECK(s->has_top_p && s->top_p == 0.9);
    CHECK(s->has_top_k && s->top_k == 40);
    CHECK(s->has_min_p && s->min_p == 0.05);
    CHECK(s->has_presence_penalty && s->presence_penalty == 0.5);
    CHECK(s->has_frequency_penalty && s->frequency_penalty == -0.5);
    CHECK(s->has_repeat_penalty && s->repeat_penalty == 1.1);
    CHECK(s->has_seed && s->seed == 42);
    CHECK(s->has_max_tokens && s->max_tokens == 100);
    CHECK_EQ_INT(req->n_stop, 4);
    if (req->n_stop == 4) {
        CHECK_STR(req->stop[0], "a");
        CHECK_STR(req->stop[1], "\n\n");
        CHECK_STR(req->stop[2], "end");
        CHECK_STR(req->stop[3], "\xc3\xa9");
    }
    CHECK_EQ_INT(req->n_messages, 5);
    if (req->n_messages == 5) {
        CHECK_STR(req->messages[0].role, "system");
        CHECK_STR(req->messages[1].role, "system");
        CHECK_STR(req->messages[1].content, "dev");
        CHECK_STR(req->messages[2].content, "ab");
        CHECK_STR(req->messages[3].role, "assistant");
        CHECK_STR(req->messages[3].content, "");
        CHECK_STR(req->messages[4].content, "\xe2\x82\xac \"q\"");
        CHECK(req->messages[4].tool_call_id == NULL);
    }
    agent_request_free(req);
    /* a tool result keeps the id of the call it answers (rendered by Mistral V3) */
    req = chat_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
                  "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"abcDEF123\","
                  "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                  "{\"role\":\"tool\",\"tool_call_id\":\"abcDEF123\",\"content\":\"42\"}]}");
    CHECK_EQ_INT(req->n_messages, 3);
    if (req->n_messages == 3) {
        CHECK(req->messages[1].tool_call_id == NULL);
        CHECK_STR(req->messages[2].tool_call_id ? req->messages[2].tool_call_id : "(null)",
                  "abcDEF123");
    }
    agent_request_free(req);
}

static void test_variants(void)
{
    /* max_completion_tokens wins over max_tokens whatever the order. */
    struct agent_request *req = chat_ok("{\"max_completion_tokens\":7,\"max_tokens\":9," MSG "}");
    if (req)
        CHECK(req->sampling.has_max_tokens && req->sampling.max_tokens == 7);
    agent_request_free(req);

    req = chat_ok("{\"stop\":\"###\"," MSG "}");
    if (req) {
        CHECK_EQ_INT(req->n_stop, 1);
        CHECK_STR(req->stop[0], "###");
    }
    agent_request_free(req);

    /* Nulls mean "not given" for every optional field. */
    req = chat_ok("{\"model\":null,\"stream\":null,\"stream_options\":null,\"temperature\":null,"
                  "\"top_p\":null,\"top_k\":null,\"min_p\":null,\"presence_penalty\":null,"
                  "\"frequency_penalty\":null,\"repeat_penalty\":null,\"seed\":null,"
                  "\"max_tokens\":null,\"max_completion_tokens\":null,\"stop\":null,\"n\":null,"
                  "\"tools\":null,\"logprobs\":null," MSG "}");
    if (req) {
        CHECK(!req->sampling.has_temperature && !req->sampling.has_seed &&
              !req->sampling.has_max_tokens && !req->sampling.has_top_k);
        CHECK_EQ_INT(req->n_stop, 0);
        CHECK(!opts.stream);
    }
    agent_request_free(req);

    /* Edges of the ranges are accepted; negative seeds wrap as in C. */
    req = chat_ok("{\"temperature\":0,\"top_p\":1,\"top_k\":0,\"min_p\":0,\"seed\":-1,"
                  "\"presence_penalty\":-2,\"frequency_penalty\":2,\"max_tokens\":1," MSG "}");
    if (req) {
        CHECK(req->sampling.temperature == 0 && req->sampling.top_p == 1);
        CHECK(req->sampling.seed == UINT64_MAX);
        CHECK(req->sampling.max_tokens == 1);
    }
    agent_request_free(req);
    req = chat_ok("{\"seed\":9007199254740992,\"temperature\":2.0,\"stream\":false," MSG "}");
    if (req)
        CHECK(req->sampling.seed == 9007199254740992ULL && !opts.stream);
    agent_request_free(req);

    /* Unknown fields and whitespace around the body are fine. */
    req = chat_ok(" \n{\"whatever\":{\"deep\":[1,2,3]}," MSG "}\r\n\t ");
    agent_request_free(req);
}

static void test_completion(void)
{
    int rc;
    struct agent_request *req = parse(AGENT_REQ_COMPLETION,
                                      "{\"prompt\":\"Once upon\",\"max_tokens\":5,\"echo\":false,"
                                      "\"best_of\":1,\"suffix\":null,\"logprobs\":0}",
                                      &rc);
    CHECK_EQ_INT(rc, 0);
    if (req) {
        CHECK_EQ_INT(req->kind, AGENT_REQ_COMPLETION);
        CHECK_STR(req->prompt, "Once upon");
        CHECK_EQ_INT(req->n_messages, 0);
        CHECK(req->sampling.max_tokens == 5);
    }
    agent_request_free(req);
    req = parse(AGENT_REQ_COMPLETION, "{\"prompt\":[\"one\"]}", &rc);
    CHECK_EQ_INT(rc, 0);
    if (req)
        CHECK_STR(req->prompt, "one");
    agent_request_free(req);
    req = parse(AGENT_REQ_COMPLETION, "{\"prompt\":\"\"}", &rc);
    CHECK_EQ_INT(rc, 0);
    if (req)
        CHECK_STR(req->prompt, "");
    agent_request_free(req);

    static const char *bad[][2] = {
        {"{}", "prompt"},
        {"{\"prompt\":null}", "prompt"},
        {"{\"prompt\":[1,2,3]}", "prompt"},
        {"{\"prompt\":[\"a\",\"b\"]}", "prompt"},
        {"{\"prompt\":7}", "prompt"},
        {"{\"prompt\":\"x\",\"echo\":true}", "echo"},
        {"{\"prompt\":\"x\",\"suffix\":\"s\"}", "suffix"},
        {"{\"prompt\":\"x\",\"best_of\":2}", "best_of"},
        {"{\"prompt\":\"x\",\"logprobs\":3}", "logprobs"},
        {"{\"prompt\":\"x\",\"messages\":5,\"temperature\":\"hot\"}", "temperature"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req = parse(AGENT_REQ_COMPLETION, bad[i][0], &rc);
        CHECK_MSG(rc == -EINVAL && !req, "%s accepted", bad[i][0]);
        CHECK_MSG(strcmp(err.param, bad[i][1]) == 0, "%s: param '%s' want '%s'", bad[i][0],
                  err.param, bad[i][1]);
        CHECK_EQ_INT(err.status, 400);
        agent_request_free(req);
    }
}

static void test_bad_types(void)
{
    static const char *fields[] = {
        "temperature",       "top_p",          "top_k", "min_p",      "presence_penalty",
        "frequency_penalty", "repeat_penalty", "seed",  "max_tokens", "max_completion_tokens"};
    static const char *wrong[] = {"\"1\"", "true", "[1]", "{\"v\":1}"};
    char body[512];
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++) {
            snprintf(body, sizeof(body), "{\"%s\":%s," MSG "}", fields[f], wrong[w]);
            chat_bad(body, fields[f], "invalid_type");
        }
    }
    /* Integers must be whole. */
    static const char *ints[] = {"top_k", "seed", "max_tokens", "max_completion_tokens", "n"};
    for (size_t f = 0; f < sizeof(ints) / sizeof(ints[0]); f++) {
        snprintf(body, sizeof(body), "{\"%s\":1.5," MSG "}", ints[f]);
        chat_bad(body, ints[f], "invalid_type");
    }
    chat_bad("{\"model\":7," MSG "}", "model", "invalid_type");
    chat_bad("{\"stream\":1," MSG "}", "stream", "invalid_type");
    chat_bad("{\"stream\":\"true\"," MSG "}", "stream", "invalid_type");
    chat_bad("{\"stream_options\":true," MSG "}", "stream_options", "invalid_type");
    chat_bad("{\"stream_options\":{\"include_usage\":1}," MSG "}", "stream_options.include_usage",
             "invalid_type");
    chat_bad("{\"stop\":5," MSG "}", "stop", "invalid_type");
    chat_bad("{\"stop\":{\"a\":1}," MSG "}", "stop", "invalid_type");
    chat_bad("{\"stop\":[\"a\",3]," MSG "}", "stop", "invalid_type");
    chat_bad("{\"messages\":\"hi\"}", "messages", "invalid_type");
    chat_bad("{\"messages\":{}}", "messages", "invalid_type");
    chat_bad("{\"messages\":[\"hi\"]}", "messages[0]", "invalid_type");
    chat_bad("{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role", "invalid_type");
    chat_bad("{\"messages\":[{\"role\":1,\"content\":\"x\"}]}", "messages[0].role", "invalid_type");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
             "\"content\":5}]}",
             "messages[1].content", "invalid_type");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":{\"text\":\"x\"}}]}",
             "messages[0].content", "invalid_type");
}

static void test_bad_values(void)
{
    chat_bad("{\"temperature\":2.5," MSG "}", "temperature", "invalid_value");
    chat_bad("{\"temperature\":-0.1," MSG "}", "temperature", "invalid_value");
    chat_bad("{\"temperature\":1e999," MSG "}", "temperature", "invalid_value");
    chat_bad("{\"top_p\":1.01," MSG "}", "top_p", "invalid_value");
    chat_bad("{\"min_p\":-1," MSG "}", "min_p", "invalid_value");
    chat_bad("{\"top_k\":-1," MSG "}", "top_k", "invalid_value");
    chat_bad("{\"presence_penalty\":3," MSG "}", "presence_penalty", "invalid_value");
    chat_bad("{\"frequency_penalty\":-2.5," MSG "}", "frequency_penalty", "invalid_value");
    chat_bad("{\"repeat_penalty\":11," MSG "}", "repeat_penalty", "invalid_value");
    chat_bad("{\"seed\":1e300," MSG "}", "seed", "invalid_value");
    chat_bad("{\"max_tokens\":0," MSG "}", "max_tokens", "invalid_value");
    chat_bad("{\"max_tokens\":-5," MSG "}", "max_tokens", "invalid_value");
    chat_bad("{\"max_completion_tokens\":2147483648," MSG "}", "max_completion_tokens",
             "invalid_value");
    chat_bad("{\"n\":2," MSG "}", "n", "invalid_value");
    chat_bad("{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]," MSG "}", "stop", "invalid_value");
    chat_bad("{\"stop\":\"\"," MSG "}", "stop", "invalid_value");
    char body[1024];
    char longstop[OPENAI_MAX_STOP_BYTES + 2];
    memset(longstop, 'x', sizeof(longstop) - 1);
    longstop[sizeof(longstop) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"stop\":\"%s\"," MSG "}", longstop);
    chat_bad(body, "stop", "invalid_value");
    chat_bad("{\"tools\":[{\"type\":\"function\"}]," MSG "}", "tools", "invalid_value");
    chat_bad("{\"logprobs\":true," MSG "}", "logprobs", "unsupported_parameter");
    chat_bad("{\"messages\":[]}", "messages", "invalid_value");
    chat_bad("{}", "messages", "missing_required_parameter");
    chat_bad("{\"messages\":null}", "messages", "missing_required_parameter");
    chat_bad("{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":7,\"content\":\"x\"}]}",
             "messages[0].tool_call_id", "invalid_type");
    chat_bad("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "messages[0].role",
             "invalid_value");
    chat_bad("{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content",
             "missing_required_parameter");
    chat_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
             "\"image_url\":{\"url\":\"x\"}}]}]}",
             "messages[0].content", "invalid_value");
    /* More messages than a request holds. */
    struct openai_buf b = {0};
    openai_buf_append(&b, "{\"messages\":[", 13);
    for (int i = 0; i <= AGENT_MAX_MESSAGES; i++) {
        const char *m = "{\"role\":\"user\",\"content\":\"x\"}";
        if (i)
            openai_buf_append(&b, ",", 1);
        openai_buf_append(&b, m, strlen(m));
    }
    openai_buf_append(&b, "]}", 2);
    chat_bad(b.data, "messages", "invalid_value");
    openai_buf_free(&b);
    /* A model name longer than the buffer is refused rather than cut. */
    char model[OPENAI_MAX_MODEL_BYTES + 10];
    memset(model, 'm', sizeof(model) - 1);
    model[sizeof(model) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"model\":\"%s\"," MSG "}", model);
    chat_bad(body, "model", "invalid_value");
}

static void test_hostile(void)
{
    static const char *junk[] = {
        "",
        " ",
        "null",
        "[]",
        "\"str\"",
        "42",
        "{",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]} x",
        "{'messages':[]}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "\xff\xfe{}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"unterminated}]}",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        int rc;
        struct agent_request *req = parse(AGENT_REQ_CHAT, junk[i], &rc);
        CHECK_MSG(rc == -EINVAL && !req, "junk %zu accepted", i);
        CHECK_EQ_INT(err.status, 400);
        CHECK_MSG(err.code && strcmp(err.code, "invalid_json") == 0, "junk %zu: code %s", i,
                  err.code ? err.code : "(null)");
        agent_request_free(req);
    }
    /* Embedded NUL: the length, not the terminator, bounds the parse. */
    static const char nul[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\0garbage";
    struct agent_request *req = NULL;
    int rc = openai_parse_request(nul, sizeof(nul) - 1, AGENT_REQ_CHAT, &req, &opts, &err);
    CHECK_EQ_INT(rc, -EINVAL);
    agent_request_free(req);
    rc = openai_parse_request(nul, strlen(nul), AGENT_REQ_CHAT, &req, &opts, &err);
    CHECK_EQ_INT(rc, 0);
    agent_request_free(req);
    req = NULL;
    /* Not NUL-terminated at len: must not read past it. */
    char *exact = malloc(10);
    memcpy(exact, "{\"prompt\":", 10);
    rc = openai_parse_request(exact, 10, AGENT_REQ_COMPLETION, &req, &opts, &err);
    CHECK_EQ_INT(rc, -EINVAL);
    free(exact);
    /* Very deep nesting is refused by cJSON's nesting limit, without a crash. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    size_t n = (size_t)sprintf(deep, "{\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    n += (size_t)sprintf(deep + n, "," MSG "}");
    rc = openai_parse_request(deep, n, AGENT_REQ_CHAT, &req, &opts, &err);
    CHECK_EQ_INT(rc, -EINVAL);
    free(deep);
    /* Invalid UTF-8 inside strings is passed on (the engine's tokenizer copes; responses are
     * sanitised), and escaped NULs end the string rather than smuggling bytes. */
    req = chat_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"a\xff\xfe z\"}]}");
    if (req)
        CHECK_STR(req->messages[0].content, "a\xff\xfe z");
    agent_request_free(req);
    req = chat_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"ab\\u0000cd\"}]}");
    if (req)
        CHECK(strlen(req->messages[0].content) <= 4);
    agent_request_free(req);
    /* Duplicate keys: the first wins, consistently. */
    req = chat_ok("{\"temperature\":0.1,\"temperature\":\"x\"," MSG "}");
    if (req)
        CHECK(req->sampling.temperature == 0.1);
    agent_request_free(req);
}

static void test_escape(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"a\"b\\c\n\r\t\b\f", 10, "a\\\"b\\\\c\\n\\r\\t\\b\\f"},
        {"\x01\x1f\x7f", 3, "\\u0001\\u001f\x7f"},
        {"\0x", 2, "\\u0000x"},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {"\xff", 1, "\xef\xbf\xbd"},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"a\xe2\x82", 3, "a\xef\xbf\xbd\xef\xbf\xbd"},               /* truncated */
        {"\xf4\x90\x80\x80", 4,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct openai_buf b = {0};
        CHECK_EQ_INT(openai_buf_append_json(&b, cases[i].in, cases[i].len), 0);
        CHECK_MSG(b.data && strcmp(b.data, cases[i].out) == 0, "escape case %zu: got '%s'", i,
                  b.data ? b.data : "(null)");
        openai_buf_free(&b);
    }
    /* Round trip through cJSON for random valid text. */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int iter = 0; iter < 200; iter++) {
        char text[256];
        size_t n = 0;
        while (n < 200) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned c = (unsigned)(x % 140);
            if (c < 128) {
                text[n++] = (char)(c ? c : ' ');
            } else {
                memcpy(text + n, "\xe2\x82\xac", 3);
                n += 3;
            }
        }
        text[n] = '\0';
        struct openai_buf b = {0};
        openai_buf_append(&b, "\"", 1);
        openai_buf_append_json(&b, text, n);
        openai_buf_append(&b, "\"", 1);
        cJSON *j = cJSON_Parse(b.data);
        CHECK(cJSON_IsString(j) && strcmp(j->valuestring, text) == 0);
        cJSON_Delete(j);
        openai_buf_free(&b);
    }
}

static void test_error_json(void)
{
    struct openai_error e;
    openai_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                     "The model '%s' does not exist", "gpt\"4");
    struct openai_buf b = {0};
    CHECK_EQ_INT(openai_error_json(&e, &b), 0);
    cJSON *j = cJSON_Parse(b.data);
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(j, "error");
    CHECK(cJSON_IsObject(eo));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(eo, "message")),
              "The model 'gpt\"4' does not exist");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(eo, "type")),
              "invalid_request_error");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(eo, "param")), "model");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(eo, "code")),
              "model_not_found");
    cJSON_Delete(j);
    openai_buf_free(&b);

    openai_error_set(&e, 500, "server_error", NULL, NULL, "boom");
    openai_error_json(&e, &b);
    CHECK_STR(b.data, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,"
                      "\"code\":null}}");
    openai_buf_free(&b);
}

static struct agent_result sample_result(enum agent_finish f)
{
    struct agent_result r;
    memset(&r, 0, sizeof(r));
    r.finish = f;
    r.prompt_tokens = 12;
    r.cached_tokens = 4;
    r.gen_tokens = 30;
    r.energy_j = 8.4;
    r.j_per_token = 0.2;
    r.avg_power_w = 4.5;
    snprintf(r.policy, sizeof(r.policy), "balanced");
    return r;
}

static double num(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void test_response(void)
{
    struct openai_response_id rid;
    openai_response_id_init(&rid, AGENT_REQ_CHAT, 0xabcULL, 1700000000, "stories\"260K");
    CHECK_STR(rid.id, "chatcmpl-0000000000000abc");
    struct agent_result r = sample_result(AGENT_FINISH_LENGTH);
    const char text[] = "Hello \"world\"\n\xff";
    struct openai_buf b = {0};
    CHECK_EQ_INT(openai_response_json(&rid, text, sizeof(text) - 1, &r, &b), 0);
    cJSON *j = cJSON_Parse(b.data);
    CHECK_MSG(j != NULL, "not JSON: %s", b.data);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "object")),
              "chat.completion");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id")),
              "chatcmpl-0000000000000abc");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "model")), "stories\"260K");
    CHECK(num(j, "created", NULL) == 1700000000);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "role")), "assistant");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "content")),
              "Hello \"world\"\n\xef\xbf\xbd");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")),
              "length");
    CHECK(num(j, "usage", "prompt_tokens") == 12);
    CHECK(num(j, "usage", "completion_tokens") == 30);
    CHECK(num(j, "usage", "total_tokens") == 42);
    CHECK(num(cJSON_GetObjectItemCaseSensitive(j, "usage"), "prompt_tokens_details",
              "cached_tokens") == 4);
    CHECK_NEAR(num(j, "energy", "joules"), 8.4, 1e-9);
    CHECK_NEAR(num(j, "energy", "joules_per_token"), 0.2, 1e-9);
    CHECK_NEAR(num(j, "energy", "avg_watts"), 4.5, 1e-9);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(j, "energy"), "policy")),
              "balanced");
    cJSON_Delete(j);
    openai_buf_free(&b);

    /* Text completion; unknown energy becomes null, never NaN in JSON. */
    openai_response_id_init(&rid, AGENT_REQ_COMPLETION, 1, 5, "m");
    r = sample_result(AGENT_FINISH_STOP);
    r.energy_j = NAN;
    r.policy[0] = '\0';
    openai_response_json(&rid, "abc", 3, &r, &b);
    j = cJSON_Parse(b.data);
    CHECK_MSG(j != NULL, "not JSON: %s", b.data);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "object")),
              "text_completion");
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ch, "text")), "abc");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")), "stop");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "energy");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(en, "joules")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(en, "policy")));
    CHECK(!cJSON_HasObjectItem(j, "sources")); /* only when plugins cited entries */
    cJSON_Delete(j);
    openai_buf_free(&b);

    /* Entries plugins cited: a "sources" array beside usage and energy. */
    r.sources_json = "[{\"id\":\"api.md#endpoints\",\"title\":\"Endpoints\",\"plugin\":"
                     "\"knowledge\",\"score\":3.5}]";
    openai_response_json(&rid, "abc", 3, &r, &b);
    j = cJSON_Parse(b.data);
    CHECK_MSG(j != NULL, "not JSON: %s", b.data);
    const cJSON *src = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "sources"), 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(src, "id")),
              "api.md#endpoints");
    CHECK(cJSON_HasObjectItem(j, "usage") && cJSON_HasObjectItem(j, "energy"));
    cJSON_Delete(j);
    openai_buf_free(&b);
}

/* Splits an SSE body into its data payloads; returns how many. */
static size_t sse_split(char *body, char **ev, size_t max)
{
    size_t n = 0;
    char *p = body;
    while (*p && n < max) {
        char *end = strstr(p, "\n\n");
        CHECK_MSG(end != NULL, "unterminated event: %s", p);
        if (!end)
            break;
        *end = '\0';
        CHECK_MSG(strncmp(p, "data: ", 6) == 0, "event without data: %s", p);
        ev[n++] = p + 6;
        p = end + 2;
    }
    return n;
}

static void test_stream(void)
{
    struct openai_response_id rid;
    openai_response_id_init(&rid, AGENT_REQ_CHAT, 7, 100, "m");
    struct openai_stream s;
    CHECK_EQ_INT(openai_stream_init(&s, &rid), 0);
    struct openai_buf b = {0};
    openai_stream_begin(&s, &b);
    static const char *pieces[] = {"Once", " upon", " a \"time\"", "\n", "\xe2\x82\xac"};
    for (size_t i = 0; i < 5; i++)
        openai_stream_text(&s, pieces[i], strlen(pieces[i]), &b);
    struct agent_result r = sample_result(AGENT_FINISH_STOP);
    openai_stream_end(&s, &r, true, NULL, &b);
    char *ev[16];
    size_t n = sse_split(b.data, ev, 16);
    CHECK_EQ_INT(n, 9); /* role, 5 texts, finish, usage, [DONE] */
    if (n == 9) {
        cJSON *j = cJSON_Parse(ev[0]);
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "role")), "assistant");
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")));
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "object")),
                  "chat.completion.chunk");
        cJSON_Delete(j);
        char all[128] = "";
        for (size_t i = 1; i <= 5; i++) {
            j = cJSON_Parse(ev[i]);
            CHECK_MSG(j != NULL, "chunk %zu not JSON: %s", i, ev[i]);
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id")),
                      "chatcmpl-0000000000000007");
            ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
            d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
            const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "content"));
            if (c)
                strncat(all, c, sizeof(all) - strlen(all) - 1);
            CHECK(cJSON_GetObjectItemCaseSensitive(d, "role") == NULL);
            cJSON_Delete(j);
        }
        CHECK_STR(all, "Once upon a \"time\"\n\xe2\x82\xac");
        j = cJSON_Parse(ev[6]);
        ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")),
                  "stop");
        CHECK_NEAR(num(j, "energy", "joules"), 8.4, 1e-9);
        CHECK(cJSON_GetObjectItemCaseSensitive(j, "usage") == NULL);
        cJSON_Delete(j);
        j = cJSON_Parse(ev[7]);
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "choices")), 0);
        CHECK(num(j, "usage", "total_tokens") == 42);
        CHECK_NEAR(num(j, "energy", "avg_watts"), 4.5, 1e-9);
        cJSON_Delete(j);
        CHECK_STR(ev[8], "[DONE]");
    }
    openai_buf_free(&b);
    openai_stream_free(&s);

    /* Completions stream without usage; an error ends with an error event then [DONE]. */
    openai_response_id_init(&rid, AGENT_REQ_COMPLETION, 8, 100, "m");
    openai_stream_init(&s, &rid);
    openai_stream_begin(&s, &b);
    CHECK_EQ_INT(b.len, 0);
    openai_stream_text(&s, "x", 1, &b);
    r = sample_result(AGENT_FINISH_ERROR);
    struct openai_error e;
    openai_error_set(&e, 500, "server_error", "engine_error", NULL, "decode failed");
    openai_stream_end(&s, &r, false, &e, &b);
    n = sse_split(b.data, ev, 16);
    CHECK_EQ_INT(n, 3);
    if (n == 3) {
        cJSON *j = cJSON_Parse(ev[0]);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "object")),
                  "text_completion");
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ch, "text")), "x");
        cJSON_Delete(j);
        j = cJSON_Parse(ev[1]);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(j, "error"), "message")),
                  "decode failed");
        cJSON_Delete(j);
        CHECK_STR(ev[2], "[DONE]");
    }
    openai_buf_free(&b);
    openai_stream_free(&s);
}

static void test_models_governor(void)
{
    struct openai_buf b = {0};
    openai_models_json("stories260K", 123, &b);
    CHECK_STR(b.data, "{\"object\":\"list\",\"data\":[{\"id\":\"stories260K\",\"object\":\"model\","
                      "\"created\":123,\"owned_by\":\"ember\"}]}");
    openai_buf_free(&b);
    openai_models_json("", 123, &b);
    CHECK_STR(b.data, "{\"object\":\"list\",\"data\":[]}");
    openai_buf_free(&b);

    char policy[32];
    double cap;
    struct openai_error e;
#define GOV(body) openai_parse_governor(body, strlen(body), policy, sizeof(policy), &cap, &e)
    CHECK_EQ_INT(GOV("{\"policy\":\"powersave\"}"), 0);
    CHECK_STR(policy, "powersave");
    CHECK(isnan(cap));
    CHECK_EQ_INT(GOV("{\"power_cap_w\":5.5}"), 0);
    CHECK_STR(policy, "");
    CHECK(cap == 5.5);
    CHECK_EQ_INT(GOV("{\"power_cap_w\":null,\"policy\":\"quiet\"}"), 0);
    CHECK(cap == 0);
    CHECK_STR(policy, "quiet");
    CHECK_EQ_INT(GOV("{}"), -EINVAL);
    CHECK_EQ_INT(e.status, 400);
    CHECK_EQ_INT(GOV("not json"), -EINVAL);
    CHECK_EQ_INT(GOV("{\"policy\":5}"), -EINVAL);
    CHECK_STR(e.param, "policy");
    CHECK_EQ_INT(GOV("{\"policy\":\"\"}"), -EINVAL);
    CHECK_EQ_INT(GOV("{\"policy\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"), -EINVAL);
    CHECK_EQ_INT(GOV("{\"power_cap_w\":-1}"), -EINVAL);
    CHECK_STR(e.param, "power_cap_w");
    CHECK_EQ_INT(GOV("{\"power_cap_w\":\"5\"}"), -EINVAL);
#undef GOV
}

/* keep_alive, as Ollama takes it (issue 18): seconds or a duration; negative = for ever */
static void test_keep_alive(void)
{
    static const struct {
        const char *value;
        int64_t ms;
    } good[] = {
        {"300", 300000},        {"0", 0},           {"-1", -1},
        {"1.5", 1500},          {"\"5m\"", 300000}, {"\"30s\"", 30000},
        {"\"1h30m\"", 5400000}, {"\"500ms\"", 500}, {"\"-1\"", -1},
        {"\"-5m\"", -1},        {"\"0\"", 0},       {"\"10\"", 10000},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{" MSG ",\"keep_alive\":%s}", good[i].value);
        struct agent_request *req = chat_ok(body);
        CHECK_MSG(opts.has_keep_alive && opts.keep_alive_ms == good[i].ms, "%s: %lld ms",
                  good[i].value, (long long)opts.keep_alive_ms);
        agent_request_free(req);
    }
    struct agent_request *req = chat_ok("{" MSG ",\"keep_alive\":null}");
    CHECK(!opts.has_keep_alive);
    agent_request_free(req);
    req = chat_ok("{" MSG "}");
    CHECK(!opts.has_keep_alive);
    agent_request_free(req);
    static const char *const bad[] = {"\"soon\"", "\"5x\"", "\"\"",    "\"m\"", "true",
                                      "[1]",      "1e300",  "\"5m5\"", "{}",    "\"1h-\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{" MSG ",\"keep_alive\":%s}", bad[i]);
        chat_bad(body, "keep_alive", NULL);
    }
    /* the model directory's listing */
    struct openai_buf b = {0};
    struct openai_model_row rows[] = {{"a", 5, true, NULL}, {"b/c", 6, false, "b/c.gguf: bad"}};
    CHECK_EQ_INT(openai_model_rows_json(rows, 2, &b), 0);
    CHECK_STR(b.data, "{\"object\":\"list\",\"data\":[{\"id\":\"a\",\"object\":\"model\","
                      "\"created\":5,\"owned_by\":\"ember\",\"loaded\":true,\"status\":\"ok\"},"
                      "{\"id\":\"b/c\",\"object\":\"model\",\"created\":6,\"owned_by\":\"ember\","
                      "\"loaded\":false,\"status\":\"broken\",\"error\":\"b/c.gguf: bad\"}]}");
    openai_buf_free(&b);
}

#define TOOLS                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"HassTurnOn\",\"parameters\":{"     \
    "\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]," \
    "\"additionalProperties\":false}}}]"

/* tools, tool_choice, response_format and tool parts of messages (openai_tools.c) */
static void test_tools(void)
{
    struct agent_request *req = chat_ok("{" TOOLS "," MSG "}");
    if (req) {
        CHECK(req->tools.tools_json != NULL);
        CHECK_EQ_INT(req->tools.choice, AGENT_TOOLS_AUTO);
        CHECK(req->tools.parallel);
        CHECK(req->tools.format_grammar == NULL);
        agent_request_free(req);
    }
    req = chat_ok("{" TOOLS ",\"tool_choice\":\"required\",\"parallel_tool_calls\":false," MSG "}");
    if (req) {
        CHECK_EQ_INT(req->tools.choice, AGENT_TOOLS_REQUIRED);
        CHECK(!req->tools.parallel);
        agent_request_free(req);
    }
    req = chat_ok("{" TOOLS ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                  "\"HassTurnOn\"}}," MSG "}");
    if (req) {
        CHECK_EQ_INT(req->tools.choice, AGENT_TOOLS_NAMED);
        CHECK_STR(req->tools.choice_name, "HassTurnOn");
        agent_request_free(req);
    }
    req = chat_ok("{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
                  "\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                  "\"integer\"}},\"required\":[\"a\"],\"additionalProperties\":false}}}," MSG "}");
    if (req) {
        CHECK(req->tools.format_grammar && strstr(req->tools.format_grammar, "root ::="));
        agent_request_free(req);
    }
    req = chat_ok("{\"response_format\":{\"type\":\"json_object\"}," MSG "}");
    if (req) {
        CHECK(req->tools.format_grammar != NULL);
        agent_request_free(req);
    }
    /* a full round trip's history: an assistant call and the tool's result */
    req = chat_ok("{" TOOLS ",\"messages\":[{\"role\":\"user\",\"content\":\"on\"},{\"role\":"
                  "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
                  "\"function\",\"function\":{\"name\":\"HassTurnOn\",\"arguments\":"
                  "\"{\\\"name\\\":\\\"lamp\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
                  "\"call_1\",\"content\":\"ok\"}]}");
    if (req) {
        CHECK_EQ_INT(req->n_messages, 3);
        CHECK_EQ_INT(req->tools.n_calls[1], 1);
        CHECK_STR(req->tools.calls[1][0].name, "HassTurnOn");
        CHECK_STR(req->tools.calls[1][0].arguments, "{\"name\":\"lamp\"}");
        CHECK_STR(req->messages[2].role, "tool");
        agent_request_free(req);
    }
    chat_bad("{\"tool_choice\":\"required\"," MSG "}", "tool_choice", "invalid_value");
    chat_bad("{" TOOLS ",\"tool_choice\":\"sometimes\"," MSG "}", "tool_choice", "invalid_value");
    chat_bad("{" TOOLS
             ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"Nope\"}}," MSG "}",
             "tool_choice", "invalid_value");
    chat_bad("{" TOOLS ",\"parallel_tool_calls\":1," MSG "}", "parallel_tool_calls",
             "invalid_type");
    chat_bad("{\"tools\":[{\"type\":\"retrieval\"}]," MSG "}", "tools[0].type", "invalid_value");
    chat_bad("{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{"
             "\"type\":\"string\",\"pattern\":\"x\"}}}]," MSG "}",
             "tools", "invalid_value");
    CHECK_CONTAINS(err.message, "keyword \"pattern\" is not supported");
    chat_bad(
        "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"$defs\":"
        "{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}}}," MSG "}",
        "response_format.json_schema.schema", "invalid_value");
    CHECK_CONTAINS(err.message, "left-recursive");
    chat_bad("{\"response_format\":{\"type\":\"yaml\"}," MSG "}", "response_format.type",
             "invalid_value");
    chat_bad("{" TOOLS ",\"tool_choice\":\"required\",\"response_format\":{\"type\":"
             "\"json_object\"}," MSG "}",
             "response_format", "invalid_value");
    chat_bad("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
             "\"arguments\":\"[1]\"}}]}]}",
             "messages[0].tool_calls[0]", "invalid_value");
    chat_bad("{\"messages\":[{\"role\":\"tool\"}]}", "messages[0].content",
             "missing_required_parameter");
    int rc;
    req = parse(AGENT_REQ_COMPLETION, "{\"prompt\":\"x\"," TOOLS "}", &rc);
    CHECK(rc == -EINVAL && !req);

    /* the response: message.tool_calls, content null, finish_reason tool_calls */
    struct openai_response_id rid;
    openai_response_id_init(&rid, AGENT_REQ_CHAT, 7, 1700000000, "m");
    struct agent_tool_call calls[] = {{NULL, "HassTurnOn", "{\"name\":\"lamp\"}"}};
    struct agent_result res = {.finish = AGENT_FINISH_STOP, .n_tool_calls = 1};
    struct openai_buf b = {0};
    CHECK_EQ_INT(openai_response_json_calls(&rid, "", 0, calls, 1, &res, &b), 0);
    cJSON *j = cJSON_Parse(b.data);
    CHECK(j != NULL);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(ch, "message");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(ch, "finish_reason")), "tool_calls");
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c0, "type")), "function");
    CHECK(strncmp(cJSON_GetStringValue(cJSON_GetObjectItem(c0, "id")), "call_", 5) == 0);
    const cJSON *fn = cJSON_GetObjectItem(c0, "function");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name")), "HassTurnOn");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments")), "{\"name\":\"lamp\"}");
    cJSON_Delete(j);
    openai_buf_free(&b);
    /* streamed: two chunks per call, each valid JSON after "data: " */
    CHECK_EQ_INT(openai_stream_tool_call(&rid, 0, "HassTurnOn", "{\"name\":\"lamp\"}", &b), 0);
    char *second = b.data ? strstr(b.data + 1, "data: ") : NULL;
    CHECK(second != NULL);
    if (second) {
        second[-2] = '\0';
        j = cJSON_Parse(b.data + 6);
        CHECK(j != NULL);
        const cJSON *tc = cJSON_GetArrayItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0),
                                    "delta"),
                "tool_calls"),
            0);
        CHECK_EQ_INT(cJSON_GetObjectItem(tc, "index")->valueint, 0);
        CHECK_STR(
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "name")),
            "HassTurnOn");
        cJSON_Delete(j);
        j = cJSON_Parse(second + 6);
        CHECK(j != NULL);
        cJSON_Delete(j);
    }
    openai_buf_free(&b);
}

int main(void)
{
    test_tools();
    test_minimal();
    test_all_fields();
    test_variants();
    test_completion();
    test_bad_types();
    test_bad_values();
    test_hostile();
    test_escape();
    test_error_json();
    test_response();
    test_stream();
    test_models_governor();
    test_keep_alive();
    return et_finish();
}
