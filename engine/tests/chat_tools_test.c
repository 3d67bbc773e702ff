/* Chat templates with tools: the engine's rendering of each conversation in
 * chat_tools/cases.json equals, byte for byte, what the model's own Jinja template renders
 * (chat_tools/FAMILY.CASE.txt, made by chat_tools/render_golden.py with jinja2 from the real
 * templates in tests/fuzz/chat_template/); text taken from tools and calls lies in literal
 * spans; and the output parser turns each family's call syntax into calls, streamed in pieces
 * of every size, while look-alikes stay text. */
#include "ember_test.h"

#include "engine/chat.h"
#include "engine/json_schema.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>

#define DIR EMBER_SOURCE_DIR "/engine/tests/chat_tools"
#define TPL EMBER_SOURCE_DIR "/tests/fuzz/chat_template"

static char *slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = '\0';
    fclose(f);
    if (ret_len)
        *ret_len = (size_t)n;
    return b;
}

static const char *template_file(const char *fam)
{
    if (strcmp(fam, "qwen2.5") == 0)
        return TPL "/qwen2.5.jinja";
    if (strcmp(fam, "qwen3") == 0)
        return TPL "/qwen3.jinja";
    if (strcmp(fam, "mistral-v3") == 0)
        return DIR "/mistral-v3.jinja";
    if (strcmp(fam, "mistral-v3-tekken") == 0)
        return DIR "/mistral-v3-tekken.jinja";
    return TPL "/llama3.2-instruct.jinja";
}

static void render_case(const cJSON *spec, const cJSON *c, const char *fam)
{
    char path[512], err[256] = "";
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    snprintf(path, sizeof(path), "%s/%s.%s.txt", DIR, fam, name);
    size_t want_len = 0;
    char *want = slurp(path, &want_len);
    CHECK_MSG(want != NULL, "missing golden %s", path);
    char *jinja = slurp(template_file(fam), NULL);
    CHECK(jinja != NULL);
    if (!want || !jinja) {
        free(want);
        free(jinja);
        return;
    }
    struct eng_chat_template t;
    bool warn = false;
    eng_chat_template_detect(jinja, &t, &warn);
    CHECK(!warn);
    free(jinja);

    const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
    size_t n = (size_t)cJSON_GetArraySize(msgs);
    struct eng_chat_message *m = calloc(n, sizeof(*m));
    struct eng_chat_message_tools *mt = calloc(n, sizeof(*mt));
    const char **ids = calloc(n, sizeof(*ids));
    char *to_free[64];
    size_t n_free = 0;
    size_t i = 0;
    for (const cJSON *e = msgs->child; e; e = e->next, i++) {
        m[i].role = cJSON_GetObjectItem(e, "role")->valuestring;
        m[i].content = cJSON_GetStringValue(cJSON_GetObjectItem(e, "content"));
        ids[i] = cJSON_GetStringValue(cJSON_GetObjectItem(e, "tool_call_id"));
        const cJSON *calls = cJSON_GetObjectItem(e, "tool_calls");
        if (!calls)
            continue;
        size_t k = 0, nc = (size_t)cJSON_GetArraySize(calls);
        struct eng_chat_tool_call *tc = calloc(nc, sizeof(*tc));
        to_free[n_free++] = (char *)tc;
        for (const cJSON *x = calls->child; x; x = x->next, k++) {
            const cJSON *fn = cJSON_GetObjectItem(x, "function");
            tc[k].id = cJSON_GetStringValue(cJSON_GetObjectItem(x, "id"));
            tc[k].name = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name"));
            /* arguments as OpenAI sends them (a string) or, as Hugging Face's examples, an
             * object */
            const cJSON *a = cJSON_GetObjectItem(fn, "arguments");
            char *args = cJSON_IsString(a) ? strdup(a->valuestring) : cJSON_PrintUnformatted(a);
            to_free[n_free++] = args;
            tc[k].arguments = args;
        }
        mt[i] = (struct eng_chat_message_tools){tc, nc};
        if (m[i].content && !m[i].content[0] && i % 2)
            m[i].content = NULL; /* OpenAI clients send null content with tool calls */
    }
    const cJSON *tools_list = cJSON_GetObjectItem(c, "tools_list");
    char *tools =
        cJSON_IsTrue(cJSON_GetObjectItem(c, "tools"))
            ? cJSON_PrintUnformatted(tools_list ? tools_list : cJSON_GetObjectItem(spec, "tools"))
            : NULL;
    struct eng_chat_render_opts o = {
        .add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItem(c, "gen")),
        .bos_token = strcmp(fam, "llama3.2") == 0      ? "<|begin_of_text|>"
                     : strncmp(fam, "mistral", 7) == 0 ? "<s>"
                                                       : "",
        .eos_token = strncmp(fam, "mistral", 7) == 0 ? "</s>" : "",
        .tools = tools,
        .message_tools = mt,
        .tool_call_ids = ids,
    };
    char *out = NULL;
    size_t out_len = 0;
    struct eng_text_span *spans = NULL;
    size_t n_spans = 0;
    int rc =
        eng_chat_render_spans(&t, m, n, &o, &out, &out_len, &spans, &n_spans, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s %s: %s", fam, name, err);
    if (rc == 0) {
        bool same = out_len == want_len && memcmp(out, want, want_len) == 0;
        CHECK_MSG(same, "%s %s differs from the Jinja rendering", fam, name);
        if (!same) {
            size_t d = 0;
            while (d < out_len && d < want_len && out[d] == want[d])
                d++;
            fprintf(stderr, "first difference at byte %zu:\n got: %.80s\nwant: %.80s\n", d, out + d,
                    want + d);
        }
        /* every tool's description is inside a literal span */
        const char *desc = strstr(out, "Sets the brightness");
        if (desc && tools) {
            size_t off = (size_t)(desc - out);
            bool covered = false;
            for (size_t s = 0; s < n_spans; s++)
                covered |= off >= spans[s].off && off < spans[s].off + spans[s].len;
            CHECK_MSG(covered, "%s %s: tool text outside the literal spans", fam, name);
        }
    }
    free(out);
    free(spans);
    cJSON_free(tools);
    for (size_t k = 0; k < n_free; k++)
        free(to_free[k]);
    free(m);
    free(mt);
    free(ids);
    free(want);
}

static void test_goldens(void)
{
    size_t len = 0;
    char *text = slurp(DIR "/cases.json", &len);
    CHECK(text != NULL);
    cJSON *spec = cJSON_Parse(text ? text : "");
    CHECK(spec != NULL);
    int n = 0;
    for (const cJSON *c = spec ? cJSON_GetObjectItem(spec, "cases")->child : NULL; c; c = c->next)
        for (const cJSON *f = cJSON_GetObjectItem(c, "families")->child; f; f = f->next, n++)
            render_case(spec, c, f->valuestring);
    CHECK(n >= 29);
    cJSON_Delete(spec);
    free(text);
}

static void test_errors(void)
{
    char *out = NULL, err[256];
    struct eng_chat_template l3 = {.family = ENG_CHAT_LLAMA3, .flags = ENG_CHAT_F_KNOWLEDGE_DATE};
    struct eng_chat_tool_call two[] = {{"a", "f", "{}"}, {"b", "g", "{}"}};
    struct eng_chat_message m[] = {{"user", "x"}, {"assistant", NULL}};
    struct eng_chat_message_tools mt[] = {{NULL, 0}, {two, 2}};
    struct eng_chat_render_opts o = {.message_tools = mt};
    CHECK_EQ_INT(eng_chat_render(&l3, m, 2, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "message 1: Llama 3.1+ supports one tool call per message");
    struct eng_chat_template l30 = {.family = ENG_CHAT_LLAMA3};
    CHECK_EQ_INT(eng_chat_render(&l30, m, 2, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "Llama 3.0 template has no tools");
    struct eng_chat_template cm = {.family = ENG_CHAT_CHATML};
    struct eng_chat_tool_call bad[] = {{"a", "f", "[1"}};
    mt[1] = (struct eng_chat_message_tools){bad, 1};
    CHECK_EQ_INT(eng_chat_render(&cm, m, 2, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "message 1: a tool call's arguments are not a JSON object");
    mt[1] = (struct eng_chat_message_tools){NULL, 0};
    CHECK_EQ_INT(eng_chat_render(&cm, m, 2, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "message 1: content is missing");
    o.tools = "{\"not\": \"an array\"}";
    m[1].content = "y";
    CHECK_EQ_INT(eng_chat_render(&cm, m, 2, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "tools: not a JSON array");
    /* the ChatML fallback (no default system text): the tools block alone */
    o.tools = "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]";
    CHECK_EQ_INT(eng_chat_render(&cm, m, 1, &o, &out, NULL, err, sizeof(err)), 0);
    CHECK(out && strncmp(out, "<|im_start|>system\n# Tools\n\n", 27) == 0);
    CHECK_CONTAINS(out,
                   "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\"}}\n</tools>");
    free(out);
}

/* ---- parsing output ---- */

struct got {
    char text[2048];
    size_t text_len;
    char calls[8][256];
    int n_calls;
};

static int got_text(void *user, const char *t, size_t n)
{
    struct got *g = user;
    if (g->text_len + n < sizeof(g->text)) {
        memcpy(g->text + g->text_len, t, n);
        g->text_len += n;
        g->text[g->text_len] = '\0';
    }
    return 0;
}

static int got_call(void *user, const char *name, const char *args)
{
    struct got *g = user;
    if (g->n_calls < 8)
        snprintf(g->calls[g->n_calls++], 256, "%s %s", name, args);
    return 0;
}

/* Feeds out in pieces of `step` bytes (0: all at once). */
static void parse(int syntax, const char *out, size_t step, struct got *g)
{
    static const char *const names[] = {"HassTurnOn", "GetLiveContext"};
    memset(g, 0, sizeof(*g));
    struct eng_tool_parser_cb cb = {got_text, got_call, g};
    struct eng_tool_parser *p = NULL;
    CHECK_EQ_INT(eng_tool_parser_new(syntax, names, 2, &cb, &p), 0);
    size_t n = strlen(out);
    for (size_t i = 0; i < n; i += step ? step : n)
        eng_tool_parser_push(p, out + i, step && n - i > step ? step : n - i);
    eng_tool_parser_finish(p);
    eng_tool_parser_free(p);
}

static void expect_parse(int syntax, const char *out, const char *want_text, int want_calls,
                         const char *call0, const char *call1)
{
    for (size_t step = 0; step <= 13; step++) {
        struct got g;
        parse(syntax, out, step, &g);
        CHECK_MSG(strcmp(g.text, want_text) == 0, "step %zu: text \"%s\", want \"%s\"", step,
                  g.text, want_text);
        CHECK_MSG(g.n_calls == want_calls, "step %zu: %d calls, want %d", step, g.n_calls,
                  want_calls);
        if (call0 && g.n_calls > 0)
            CHECK_STR(g.calls[0], call0);
        if (call1 && g.n_calls > 1)
            CHECK_STR(g.calls[1], call1);
    }
}

static void test_parser(void)
{
    int H = ENG_TOOL_SYNTAX_HERMES, L = ENG_TOOL_SYNTAX_LLAMA3, M = ENG_TOOL_SYNTAX_MISTRAL;
    expect_parse(
        H,
        "<tool_call>\n{\"name\": \"HassTurnOn\", \"arguments\": {\"name\": \"fan\"}}\n</tool_call>",
        "", 1, "HassTurnOn {\"name\":\"fan\"}", NULL);
    expect_parse(H,
                 "Sure.\n<tool_call>\n{\"name\": \"HassTurnOn\", \"arguments\": {}}\n</tool_call>\n"
                 "<tool_call>\n{\"name\": \"GetLiveContext\", \"arguments\": {}}\n</tool_call>",
                 "Sure.\n", 2, "HassTurnOn {}", "GetLiveContext {}");
    /* look-alikes stay text: unknown tool, broken JSON, a plain mention, a lone "<" */
    expect_parse(H, "<tool_call>\n{\"name\": \"HassLightGet\", \"arguments\": {}}\n</tool_call>",
                 "<tool_call>\n{\"name\": \"HassLightGet\", \"arguments\": {}}\n</tool_call>", 0,
                 NULL, NULL);
    expect_parse(H, "<tool_call>{\"name\": \"HassTurnOn\"</tool_call> ok",
                 "<tool_call>{\"name\": \"HassTurnOn\"</tool_call> ok", 0, NULL, NULL);
    expect_parse(H, "I would call {\"name\": \"HassTurnOn\", \"arguments\": {}} here a<b",
                 "I would call {\"name\": \"HassTurnOn\", \"arguments\": {}} here a<b", 0, NULL,
                 NULL);
    expect_parse(H, "text <tool_ca", "text <tool_ca", 0, NULL, NULL);
    expect_parse(L, "{\"name\": \"GetLiveContext\", \"parameters\": {}}", "", 1,
                 "GetLiveContext {}", NULL);
    expect_parse(L, "{\"name\": \"GetLiveContext\", \"arguments\": {}}",
                 "{\"name\": \"GetLiveContext\", \"arguments\": {}}", 0, NULL, NULL);
    expect_parse(L, "The answer is {\"name\": \"GetLiveContext\", \"parameters\": {}}",
                 "The answer is {\"name\": \"GetLiveContext\", \"parameters\": {}}", 0, NULL, NULL);
    expect_parse(L, "{\"a\": 1}", "{\"a\": 1}", 0, NULL, NULL);
    expect_parse(M, "[TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {\"name\": \"x\"}}]",
                 "", 1, "HassTurnOn {\"name\":\"x\"}", NULL);
    /* V3 sentencepiece writes a space after [TOOL_CALLS]; calls may carry their id */
    expect_parse(M,
                 "[TOOL_CALLS] [{\"name\": \"HassTurnOn\", \"arguments\": {\"name\": \"x\"}, "
                 "\"id\": \"a1B2c3D4e\"}, {\"name\": \"GetLiveContext\", \"arguments\": {}}]",
                 "", 2, "HassTurnOn {\"name\":\"x\"}", "GetLiveContext {}");
    /* look-alikes stay text: an unknown tool, an extra key, one bad element, prose first */
    expect_parse(M, "[TOOL_CALLS][{\"name\": \"HassLightGet\", \"arguments\": {}}]",
                 "[TOOL_CALLS][{\"name\": \"HassLightGet\", \"arguments\": {}}]", 0, NULL, NULL);
    expect_parse(M, "[TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {}, \"x\": 1}]",
                 "[TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {}, \"x\": 1}]", 0, NULL,
                 NULL);
    expect_parse(M, "[TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {}}, {\"name\": 1}]",
                 "[TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {}}, {\"name\": 1}]", 0,
                 NULL, NULL);
    expect_parse(M, "Sure: [TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {}}]",
                 "Sure: [TOOL_CALLS][{\"name\": \"HassTurnOn\", \"arguments\": {}}]", 0, NULL,
                 NULL);
    expect_parse(M, "[TOOL_CALLS] not json", "[TOOL_CALLS] not json", 0, NULL, NULL);
    expect_parse(M, "[TOOL", "[TOOL", 0, NULL, NULL);

    struct eng_chat_template t = {.family = ENG_CHAT_GEMMA};
    int syn = -1;
    CHECK_EQ_INT(eng_chat_tool_syntax(&t, &syn), -EINVAL);
    t.family = ENG_CHAT_CHATML;
    CHECK_EQ_INT(eng_chat_tool_syntax(&t, &syn), 0);
    CHECK_EQ_INT(syn, ENG_TOOL_SYNTAX_HERMES);
    t.family = ENG_CHAT_MISTRAL; /* v0.2: no tools */
    CHECK_EQ_INT(eng_chat_tool_syntax(&t, &syn), -EINVAL);
    CHECK_EQ_INT(eng_chat_template_from_name("mistral-v3", &t), 0);
    CHECK_EQ_INT(eng_chat_tool_syntax(&t, &syn), 0);
    CHECK_EQ_INT(syn, ENG_TOOL_SYNTAX_MISTRAL);
}

/* Mistral V3: detection, ids made for calls without one and paired with results by position,
 * results that are not all JSON, role errors, and result text kept in the literal spans. */
static void test_mistral_v3(void)
{
    struct eng_chat_template t;
    bool warn = true;
    eng_chat_template_detect("{{ '[INST] ' + m + '[/INST]' }}{{ '[TOOL_CALLS] ' }}", &t, &warn);
    CHECK(!warn && t.family == ENG_CHAT_MISTRAL && t.flags == ENG_CHAT_F_MISTRAL_V3);
    eng_chat_template_detect("{{ '[INST]' + m + '[/INST]' }}[AVAILABLE_TOOLS]", &t, &warn);
    CHECK(t.flags == (ENG_CHAT_F_MISTRAL_V3 | ENG_CHAT_F_TEKKEN));
    eng_chat_template_detect("{{ ' [INST] ' + m + ' [/INST]' }}", &t, &warn);
    CHECK(t.family == ENG_CHAT_MISTRAL && t.flags == 0);

    CHECK_EQ_INT(eng_chat_template_from_name("mistral-v3", &t), 0);
    struct eng_chat_tool_call calls[] = {{NULL, "f", "{\"a\": [1]}"}, {"", "g", "{}"}};
    struct eng_chat_message m[] = {{"user", "go"},        {"assistant", NULL},
                                   {"tool", "1 2"},       {"tool", "x [INST] y"},
                                   {"assistant", "done"}, {"tool", "extra"}};
    struct eng_chat_message_tools mt[6] = {{NULL, 0}, {calls, 2}};
    struct eng_chat_render_opts o = {.bos_token = "<s>", .eos_token = "</s>", .message_tools = mt};
    char *out = NULL, err[256] = "";
    struct eng_text_span *spans = NULL;
    size_t n_spans = 0;
    CHECK_EQ_INT(
        eng_chat_render_spans(&t, m, 5, &o, &out, NULL, &spans, &n_spans, err, sizeof(err)), 0);
    CHECK_STR(out ? out : "",
              "<s>[INST] go[/INST][TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": [1]}, "
              "\"id\": \"call00100\"}, {\"name\": \"g\", \"arguments\": {}, \"id\": "
              "\"call00101\"}]</s>[TOOL_RESULTS] {\"content\": \"1 2\", \"call_id\": "
              "\"call00100\"}[/TOOL_RESULTS][TOOL_RESULTS] {\"content\": \"x [INST] y\", "
              "\"call_id\": \"call00101\"}[/TOOL_RESULTS] done</s>");
    const char *inst = out ? strstr(out, "x [INST] y") : NULL;
    bool covered = false;
    for (size_t k = 0; inst && k < n_spans; k++)
        covered |= (size_t)(inst - out) >= spans[k].off &&
                   (size_t)(inst - out) + 10 <= spans[k].off + spans[k].len;
    CHECK_MSG(covered, "a tool result's text lies outside the literal spans");
    free(out);
    free(spans);
    out = NULL;

    /* an explicit tool_call_id wins over the position */
    const char *ids[6] = {NULL, NULL, "Zz9Yy8Xx7", NULL};
    o.tool_call_ids = ids;
    CHECK_EQ_INT(eng_chat_render(&t, m, 4, &o, &out, NULL, err, sizeof(err)), 0);
    CHECK_CONTAINS(out ? out : "", "\"call_id\": \"Zz9Yy8Xx7\"}");
    free(out);
    out = NULL;
    o.tool_call_ids = NULL;

    /* a third result for two calls (after the answer, so it follows no calls) */
    struct eng_chat_message m2[] = {
        {"user", "go"}, {"assistant", NULL}, {"tool", "a"}, {"tool", "b"}, {"tool", "c"}};
    CHECK_EQ_INT(eng_chat_render(&t, m2, 5, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "message 4: more tool results than calls");
    CHECK_EQ_INT(eng_chat_render(&t, m, 6, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err,
                   "message 5: a tool result must follow an assistant message with tool calls");
    struct eng_chat_message m3[] = {{"user", "a"}, {"user", "b"}};
    CHECK_EQ_INT(eng_chat_render(&t, m3, 2, NULL, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "message 1: user and assistant messages must alternate");
    struct eng_chat_message m4[] = {{"user", "a"}, {"system", "b"}};
    CHECK_EQ_INT(eng_chat_render(&t, m4, 2, NULL, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "message 1: a system message may only come first");
    /* v0.2 has no tools */
    struct eng_chat_template v2 = {.family = ENG_CHAT_MISTRAL};
    CHECK_EQ_INT(eng_chat_render(&v2, m, 4, &o, &out, NULL, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "no tool support");
}

int main(void)
{
    test_goldens();
    test_mistral_v3();
    test_errors();
    test_parser();
    return et_finish();
}
