/* Grammar-constrained generation on the real stories260K model, which knows nothing of JSON:
 * 200 sampled runs each (temperature 1.0, no other filter, seeds 1..200) under a tool-call
 * grammar (tool_choice "required", Hermes syntax) and under a response_format json_schema must
 * all produce text that parses (cJSON) and validates against the schema. The validator below is
 * written from the JSON Schema rules, independently of the grammar compiler. Also: generation
 * ends by itself once the grammar is complete, and the mask costs are reported. */
#include "ember_test.h"

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/grammar.h"
#include "engine/json_schema.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>

#define RUNS 200

static struct eng_model *model;
static const struct eng_vocab *vocab;
static struct eng_grammar_vocab *gv;

struct out {
    char buf[16384];
    size_t len;
};

static int on_text(void *user, const char *t, size_t n)
{
    struct out *o = user;
    if (o->len + n >= sizeof(o->buf))
        return 1;
    memcpy(o->buf + o->len, t, n);
    o->len += n;
    o->buf[o->len] = '\0';
    return 0;
}

/* ---- an independent validator for the subset the test schemas use ---- */

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool validate(const cJSON *v, const cJSON *s, char *why, size_t why_len)
{
    const cJSON *en = cJSON_GetObjectItem(s, "enum");
    if (en) {
        for (const cJSON *e = en->child; e; e = e->next)
            if (cJSON_Compare(v, e, true))
                return true;
        snprintf(why, why_len, "not in enum");
        return false;
    }
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(s, "type"));
    if (!type)
        return true;
    if (strcmp(type, "string") == 0) {
        if (!cJSON_IsString(v))
            return snprintf(why, why_len, "not a string"), false;
        const cJSON *mx = cJSON_GetObjectItem(s, "maxLength");
        if (mx && utf8_chars(v->valuestring) > (size_t)mx->valuedouble)
            return snprintf(why, why_len, "string too long"), false;
        return true;
    }
    if (strcmp(type, "integer") == 0)
        return (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble) ||
               (snprintf(why, why_len, "not an integer"), false);
    if (strcmp(type, "number") == 0)
        return cJSON_IsNumber(v) || (snprintf(why, why_len, "not a number"), false);
    if (strcmp(type, "boolean") == 0)
        return cJSON_IsBool(v) || (snprintf(why, why_len, "not a boolean"), false);
    if (strcmp(type, "array") == 0) {
        if (!cJSON_IsArray(v))
            return snprintf(why, why_len, "not an array"), false;
        const cJSON *mx = cJSON_GetObjectItem(s, "maxItems");
        if (mx && cJSON_GetArraySize(v) > (int)mx->valuedouble)
            return snprintf(why, why_len, "too many items"), false;
        for (const cJSON *e = v->child; e; e = e->next)
            if (!validate(e, cJSON_GetObjectItem(s, "items"), why, why_len))
                return false;
        return true;
    }
    if (strcmp(type, "object") == 0) {
        if (!cJSON_IsObject(v))
            return snprintf(why, why_len, "not an object"), false;
        const cJSON *props = cJSON_GetObjectItem(s, "properties");
        for (const cJSON *r = cJSON_GetObjectItem(s, "required")
                                  ? cJSON_GetObjectItem(s, "required")->child
                                  : NULL;
             r; r = r->next)
            if (!cJSON_GetObjectItemCaseSensitive(v, r->valuestring))
                return snprintf(why, why_len, "missing %s", r->valuestring), false;
        for (const cJSON *m = v->child; m; m = m->next) {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, m->string);
            if (!ps)
                return snprintf(why, why_len, "extra property %s", m->string), false;
            if (!validate(m, ps, why, why_len))
                return false;
        }
        return true;
    }
    snprintf(why, why_len, "validator does not know type %s", type);
    return false;
}

static struct eng_grammar *grammar_of(const char *text)
{
    struct eng_grammar *g = NULL;
    char err[256];
    int rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    return g;
}

/* Runs RUNS generations under g; check(out) says whether one is valid. */
static void sample_runs(const char *what, const struct eng_grammar *g,
                        bool (*check)(const char *text, char *why, size_t why_len))
{
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = 512;
    cp.n_threads = 1;
    struct eng_context *ctx = NULL;
    char err[256];
    CHECK_EQ_INT(eng_context_new(model, &cp, &ctx, err, sizeof(err)), 0);
    if (!ctx)
        return;
    int valid = 0, cut = 0;
    uint64_t tokens = 0;
    for (int seed = 1; seed <= RUNS; seed++) {
        static struct out o;
        o.len = 0;
        o.buf[0] = '\0';
        struct eng_gen_params p;
        eng_gen_params_defaults(&p);
        p.prompt = "Once upon a time, Lily turned on the light.";
        p.sampling.temperature = 1.0f;
        p.sampling.top_k = 0;
        p.sampling.top_p = 1.0f;
        p.sampling.min_p = 0.0f;
        p.sampling.seed = (uint64_t)seed;
        p.max_tokens = 400;
        p.grammar = g;
        p.grammar_vocab = gv;
        p.on_text = on_text;
        p.user = &o;
        struct eng_gen_result res;
        int rc = eng_generate(ctx, vocab, &p, &res, err, sizeof(err));
        CHECK_MSG(rc == 0, "%s seed %d: %s", what, seed, err);
        tokens += res.stats.gen_tokens;
        char why[128] = "";
        bool ok = rc == 0 && res.reason == ENG_STOP_EOG && check(o.buf, why, sizeof(why));
        if (rc == 0 && res.reason != ENG_STOP_EOG)
            cut++;
        if (ok)
            valid++;
        else
            fprintf(stderr, "%s seed %d invalid (reason %d, %s): %s\n", what, seed, (int)res.reason,
                    why, o.buf);
        if (seed <= 2)
            printf("%s seed %d: %s\n", what, seed, o.buf);
    }
    printf("%s: %d/%d valid, %d cut short, %.1f tokens per run\n", what, valid, RUNS, cut,
           (double)tokens / RUNS);
    CHECK_EQ_INT(valid, RUNS);
    eng_context_free(ctx);
}

/* ---- tool calls (tool_choice required) ---- */

static const char tools_json[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"HassTurnOn\",\"description\":\"Turns on a "
    "device\",\"parameters\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\","
    "\"maxLength\":32},\"area\":{\"type\":\"string\",\"maxLength\":32}},\"required\":[\"name\"],"
    "\"additionalProperties\":false}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"HassLightSet\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":32},\"brightness\":"
    "{\"type\":\"integer\"},\"color\":{\"enum\":[\"red\",\"green\",\"blue\",\"white\"]}},"
    "\"required\":[\"name\",\"brightness\"],\"additionalProperties\":false}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"GetTime\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{},\"additionalProperties\":false}}}]";
static cJSON *tools;

static bool check_tool_call(const char *text, char *why, size_t why_len)
{
    static const char open[] = "<tool_call>\n", close[] = "\n</tool_call>";
    size_t n = strlen(text);
    if (n < sizeof(open) + sizeof(close) || strncmp(text, open, sizeof(open) - 1) != 0 ||
        strcmp(text + n - (sizeof(close) - 1), close) != 0)
        return snprintf(why, why_len, "not wrapped in <tool_call>"), false;
    cJSON *call = cJSON_ParseWithLength(text + sizeof(open) - 1,
                                        n - (sizeof(open) - 1) - (sizeof(close) - 1));
    if (!call)
        return snprintf(why, why_len, "does not parse"), false;
    bool ok = false;
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(call, "name"));
    const cJSON *args = cJSON_GetObjectItem(call, "arguments");
    if (!name || !args || cJSON_GetArraySize(call) != 2) {
        snprintf(why, why_len, "not {name, arguments}");
    } else {
        snprintf(why, why_len, "unknown tool %s", name);
        for (const cJSON *t = tools->child; t; t = t->next) {
            const cJSON *fn = cJSON_GetObjectItem(t, "function");
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name")), name) == 0) {
                why[0] = '\0';
                ok = validate(args, cJSON_GetObjectItem(fn, "parameters"), why, why_len);
            }
        }
    }
    cJSON_Delete(call);
    return ok;
}

/* ---- response_format json_schema ---- */

static const char schema_json[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"title\":{\"type\":\"string\",\"maxLength\":40},"
    "\"year\":{\"type\":\"integer\"},"
    "\"rating\":{\"type\":\"number\"},"
    "\"done\":{\"type\":\"boolean\"},"
    "\"mood\":{\"enum\":[\"happy\",\"sad\",null]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":3},"
    "\"owner\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":20}"
    ","
    "\"age\":{\"type\":\"integer\"}},\"required\":[\"name\"],\"additionalProperties\":false}},"
    "\"required\":[\"title\",\"year\",\"done\",\"owner\"],\"additionalProperties\":false}";
static cJSON *schema;

static bool check_schema(const char *text, char *why, size_t why_len)
{
    cJSON *v = cJSON_Parse(text);
    if (!v)
        return snprintf(why, why_len, "does not parse"), false;
    bool ok = validate(v, schema, why, why_len);
    cJSON_Delete(v);
    return ok;
}

static void test_mask_speed_note(void)
{
    /* the mask is cached per grammar state: after the first token in a string the same state
     * repeats; this checks the cached and uncached masks agree on a real vocabulary */
    struct eng_grammar *g = grammar_of(eng_json_object_grammar());
    struct eng_grammar_matcher *m = NULL;
    CHECK_EQ_INT(eng_grammar_matcher_new(g, &m), 0);
    CHECK_EQ_INT(eng_grammar_matcher_feed(m, "{\"ab", 4), 0);
    size_t w = eng_grammar_mask_words(gv);
    uint32_t *a = calloc(w, 4), *b = calloc(w, 4);
    int32_t na = eng_grammar_mask_uncached(m, gv, a);
    int32_t nb = eng_grammar_mask(m, gv, b);
    int32_t nc = eng_grammar_mask(m, gv, b);
    CHECK_EQ_INT(na, nb);
    CHECK_EQ_INT(nb, nc);
    CHECK(memcmp(a, b, w * 4) == 0);
    printf("tokens allowed inside a string: %d of %d\n", (int)na,
           (int)eng_grammar_vocab_n_tokens(gv));
    CHECK(na > 300); /* inside a string nearly every token continues it */
    free(a);
    free(b);
    eng_grammar_matcher_free(m);
    eng_grammar_free(g);
}

int main(void)
{
    char path[1024], err[256];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", et_shared_dir());
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "skip: %s missing\n", path);
        return ET_SKIP;
    }
    fclose(f);
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    int rc = eng_model_load(path, &mp, &model, err, sizeof(err));
    CHECK_MSG(rc == 0, "eng_model_load: %s", err);
    if (rc)
        return et_finish();
    vocab = eng_model_vocab(model);
    CHECK_EQ_INT(eng_grammar_vocab_new(vocab, &gv), 0);
    tools = cJSON_Parse(tools_json);
    schema = cJSON_Parse(schema_json);
    CHECK(tools && schema);

    char *text = NULL;
    rc = eng_tools_grammar(tools_json, 0, NULL, ENG_TOOL_SYNTAX_HERMES, false, &text, err,
                           sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    struct eng_grammar *g = text ? grammar_of(text) : NULL;
    free(text);
    if (g)
        sample_runs("tool_choice required", g, check_tool_call);
    eng_grammar_free(g);

    text = NULL;
    rc = eng_json_schema_grammar(schema_json, 0, &text, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    g = text ? grammar_of(text) : NULL;
    free(text);
    if (g)
        sample_runs("json_schema", g, check_schema);
    eng_grammar_free(g);

    test_mask_speed_note();

    cJSON_Delete(tools);
    cJSON_Delete(schema);
    eng_grammar_vocab_free(gv);
    eng_model_free(model);
    return et_finish();
}
