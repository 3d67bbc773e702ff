/* JSON Schema -> grammar: for each construct, JSON texts the schema allows are accepted and
 * texts it forbids are rejected by the compiled grammar; tool-list grammars in each family's
 * call syntax; hostile schemas (deep nesting, huge enums, $ref cycles, unknown keywords) give
 * an error naming where, quickly. */
#include "ember_test.h"

#include "engine/grammar.h"
#include "engine/json_schema.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

static struct eng_grammar *compile_schema(const char *schema)
{
    char *text = NULL, err[256] = "";
    int rc = eng_json_schema_grammar(schema, 0, &text, err, sizeof(err));
    CHECK_MSG(rc == 0, "schema %s: %d %s", schema, rc, err);
    if (rc)
        return NULL;
    struct eng_grammar *g = NULL;
    rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
    CHECK_MSG(rc == 0, "grammar of %s: %s\n%s", schema, err, text);
    free(text);
    return g;
}

static bool accepts(const struct eng_grammar *g, const char *s)
{
    struct eng_grammar_matcher *m = NULL;
    if (eng_grammar_matcher_new(g, &m))
        return false;
    bool ok = eng_grammar_matcher_feed(m, s, strlen(s)) == 0 && eng_grammar_matcher_accepts(m);
    eng_grammar_matcher_free(m);
    return ok;
}

static void expect(const char *schema, const char *const *yes, const char *const *no)
{
    struct eng_grammar *g = compile_schema(schema);
    if (!g)
        return;
    for (; *yes; yes++)
        CHECK_MSG(accepts(g, *yes), "%s should accept %s", schema, *yes);
    for (; *no; no++)
        CHECK_MSG(!accepts(g, *no), "%s should reject %s", schema, *no);
    eng_grammar_free(g);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_constructs(void)
{
    expect("{\"type\":\"string\"}",
           L("\"\"", "\"abc\"", "\"a\\\"b\\\\\"", "\"\\u00e9\"", "\"\xc3\xa9\""),
           L("abc", "\"a", "\"\x01\"", "\"\xc3\"", "\"\\x\"", "1"));
    expect("{\"type\":\"integer\"}", L("0", "-12", "1234567890123456"),
           L("01", "1.5", "-", "+1", "\"1\"", "12345678901234567"));
    expect("{\"type\":\"number\"}", L("0", "-1.25", "3e10", "1.5E-3"), L(".5", "1.", "1e", "--1"));
    expect("{\"type\":\"boolean\"}", L("true", "false"), L("True", "1", "null"));
    expect("{\"type\":\"null\"}", L("null"), L("nul", "\"null\""));
    expect("{\"enum\":[\"red\",\"green\",1,null]}", L("\"red\"", "\"green\"", "1", "null"),
           L("\"blue\"", "\"re\"", "2"));
    expect("{\"const\":{\"a\":[1,2]}}", L("{\"a\":[1,2]}"), L("{\"a\":[1]}", "{\"a\": [1,2]}"));
    expect("{\"type\":[\"string\",\"null\"]}", L("\"x\"", "null"), L("1"));
    expect("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"boolean\"}]}", L("5", "true"),
           L("\"5\""));
    expect("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}",
           L("[]", "[1]", "[1,2]", "[1, 2, 3]"), L("[1,]", "[\"a\"]", "[,1]"));
    expect("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}",
           L("[1]", "[1,2]"), L("[]", "[1,2,3]"));
    expect("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", L("\"ab\"", "\"abc\""),
           L("\"a\"", "\"abcd\""));
    /* objects: order, required, optional, additionalProperties false */
    const char *obj = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                      "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":"
                      "{\"type\":\"string\"}}},\"required\":[\"name\"],"
                      "\"additionalProperties\":false}";
    expect(obj,
           L("{\"name\":\"a\"}", "{\"name\": \"a\", \"age\": 3}", "{\"name\":\"a\",\"tags\":[]}",
             "{\"name\":\"a\",\"age\":1,\"tags\":[\"x\"]}"),
           L("{}", "{\"age\":3}", "{\"age\":3,\"name\":\"a\"}", "{\"name\":\"a\",}",
             "{\"name\":\"a\",\"x\":1}", "{\"name\":\"a\"\"age\":1}"));
    expect("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":"
           "\"integer\"}}}",
           L("{}", "{\"a\":1}", "{\"b\":2}", "{\"a\":1,\"b\":2}"), L("{,\"b\":2}", "{\"a\":1,}"));
    expect("{\"type\":\"object\",\"additionalProperties\":false}", L("{}"), L("{\"a\":1}"));
    expect("{\"type\":\"object\"}", L("{}", "{\"a\":{\"b\":[1,null]}}"), L("[]"));
    expect("{}", L("1", "\"x\"", "[{}]"), L("x"));
    /* nesting and $ref recursion */
    const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":"
                       "\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/"
                       "node\"}}},\"required\":[\"v\",\"kids\"],\"additionalProperties\":false}},"
                       "\"$ref\":\"#/$defs/node\"}";
    expect(tree,
           L("{\"v\":1,\"kids\":[]}",
             "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3,\"kids\":[]}]}]}"),
           L("{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2}]}"));
    expect("{\"type\":\"object\",\"properties\":{\"next\":{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":"
           "\"null\"}]}},\"required\":[\"next\"]}",
           L("{\"next\":null}", "{\"next\":{\"next\":null}}"), L("{\"next\":{}}"));
}

static void expect_error(const char *schema, const char *want)
{
    char *text = NULL, err[256] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = eng_json_schema_grammar(schema, 0, &text, err, sizeof(err));
    if (rc == 0) { /* some errors (a $ref cycle) show when the grammar is checked */
        struct eng_grammar *g = NULL;
        rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
        eng_grammar_free(g);
        free(text);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    CHECK_MSG(rc == -EINVAL, "%.80s: rc %d", schema, rc);
    CHECK_CONTAINS(err, want);
    CHECK_MSG(s < 2.0, "%.60s took %.2f s", schema, s);
}

static char *repeat(const char *head, const char *unit, int n, const char *tail)
{
    size_t len = strlen(head) + strlen(unit) * (size_t)n + strlen(tail) + 1;
    char *s = malloc(len), *p = s;
    p += sprintf(p, "%s", head);
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s", unit);
    sprintf(p, "%s", tail);
    return s;
}

static void test_hostile(void)
{
    expect_error("{\"type\":\"string\",\"pattern\":\"^a$\"}",
                 "schema: at /: keyword \"pattern\" is not supported");
    expect_error(
        "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":0}}}",
        "at /properties/x: keyword \"minimum\" is not supported");
    expect_error("{\"type\":\"strin\"}", "unknown type \"strin\"");
    expect_error("{\"type\":\"object\",",
                 "schema: invalid JSON (or nested deeper than 1000 levels) at byte 16");
    expect_error("{\"$ref\":\"#/$defs/missing\"}", "does not resolve");
    expect_error("{\"$ref\":\"http://x/y\"}", "only \"#\"");
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}",
                 "required names \"b\"");
    expect_error("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},"
                 "\"$ref\":\"#/$defs/a\"}",
                 "left-recursive");
    /* deep nesting */
    char *deep = repeat("", "{\"type\":\"array\",\"items\":", 400, "{}");
    char *deep2 = repeat(deep, "}", 400, "");
    expect_error(deep2, "nested deeper than 32");
    free(deep);
    free(deep2);
    /* a huge enum */
    char *big = repeat("{\"enum\":[", "\"aaaaaaaa\",", 5000, "\"b\"]}");
    expect_error(big, "more than 1024");
    free(big);
    /* a wide schema that would make a huge grammar */
    /* non-ASCII enum values grow 4x as grammar escapes: past the grammar size limit */
    char val[1300], unit[6000];
    char *p = val;
    for (int i = 0; i < 200; i++)
        p += sprintf(p, "\xc3\xa9");
    snprintf(unit, sizeof(unit), "{\"enum\":[\"%s\",\"%s\",\"%s\",\"%s\"]},", val, val, val, val);
    char *wide = repeat("{\"anyOf\":[", unit, 200, "{}]}");
    expect_error(wide, "the grammar would exceed");
    free(wide);
    expect_error("[1]", "a schema must be an object");
}

static void test_tools(void)
{
    const char *tools =
        "[{\"type\":\"function\",\"function\":{\"name\":\"HassTurnOn\",\"description\":\"Turns "
        "on\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
        "\"brightness\":{\"type\":\"integer\"}},\"required\":[\"name\"],"
        "\"additionalProperties\":false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]";
    char *text = NULL, err[256] = "";
    struct eng_grammar *g = NULL;

    CHECK_EQ_INT(
        eng_tools_grammar(tools, 0, NULL, ENG_TOOL_SYNTAX_HERMES, true, &text, err, sizeof(err)),
        0);
    CHECK_EQ_INT(eng_grammar_parse(text, 0, &g, err, sizeof(err)), 0);
    free(text);
    CHECK(accepts(g,
                  "<tool_call>\n{\"name\": \"HassTurnOn\", \"arguments\": {\"name\": \"kitchen\"}}"
                  "\n</tool_call>"));
    CHECK(accepts(g, "<tool_call>\n{\"name\":\"get_time\",\"arguments\":{}}\n</tool_call>\n"
                     "<tool_call>\n{\"name\":\"HassTurnOn\",\"arguments\":{\"name\":\"x\","
                     "\"brightness\":5}}\n</tool_call>"));
    CHECK(!accepts(g, "<tool_call>\n{\"name\": \"HassTurnOff\", \"arguments\": {}}\n</tool_call>"));
    CHECK(!accepts(g, "<tool_call>\n{\"name\": \"HassTurnOn\", \"arguments\": {}}\n</tool_call>"));
    CHECK(!accepts(g, "{\"name\": \"get_time\", \"arguments\": {}}"));
    eng_grammar_free(g);

    CHECK_EQ_INT(eng_tools_grammar(tools, 0, "get_time", ENG_TOOL_SYNTAX_LLAMA3, false, &text, err,
                                   sizeof(err)),
                 0);
    g = NULL;
    CHECK_EQ_INT(eng_grammar_parse(text, 0, &g, err, sizeof(err)), 0);
    free(text);
    CHECK(accepts(g, "{\"name\": \"get_time\", \"parameters\": {}}"));
    CHECK(!accepts(g, "{\"name\": \"HassTurnOn\", \"parameters\": {\"name\": \"x\"}}"));
    eng_grammar_free(g);

    CHECK_EQ_INT(
        eng_tools_grammar(tools, 0, NULL, ENG_TOOL_SYNTAX_MISTRAL, true, &text, err, sizeof(err)),
        0);
    g = NULL;
    CHECK_EQ_INT(eng_grammar_parse(text, 0, &g, err, sizeof(err)), 0);
    free(text);
    CHECK(accepts(g, "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}, {\"name\": "
                     "\"HassTurnOn\", \"arguments\": {\"name\": \"x\"}}]"));
    /* Mistral V3 sentencepiece models write a space after [TOOL_CALLS]; one space only */
    CHECK(accepts(g, "[TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {}}]"));
    CHECK(!accepts(g, "[TOOL_CALLS]  [{\"name\": \"get_time\", \"arguments\": {}}]"));
    CHECK(!accepts(g, "[{\"name\": \"get_time\", \"arguments\": {}}]"));
    eng_grammar_free(g);

    CHECK_EQ_INT(
        eng_tools_grammar(tools, 0, "nope", ENG_TOOL_SYNTAX_HERMES, false, &text, err, sizeof(err)),
        -EINVAL);
    CHECK_CONTAINS(err, "\"nope\", which is not among the tools");
    CHECK_EQ_INT(eng_tools_grammar("[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                                   "\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":"
                                   "{\"type\":\"string\",\"pattern\":\"a\"}}}}}]",
                                   0, NULL, ENG_TOOL_SYNTAX_HERMES, false, &text, err, sizeof(err)),
                 -EINVAL);
    CHECK_CONTAINS(err, "tools[0].function.parameters/properties/x: keyword \"pattern\"");
    CHECK_EQ_INT(
        eng_tools_grammar("{}", 0, NULL, ENG_TOOL_SYNTAX_HERMES, false, &text, err, sizeof(err)),
        -EINVAL);
    CHECK_CONTAINS(err, "tools must be a non-empty array");

    /* json_object */
    g = NULL;
    CHECK_EQ_INT(eng_grammar_parse(eng_json_object_grammar(), 0, &g, err, sizeof(err)), 0);
    CHECK(accepts(g, "{\"a\": [1, {\"b\": null}], \"c\": \"\\n\"}"));
    CHECK(!accepts(g, "[1]"));
    CHECK(!accepts(g, "\"x\""));
    eng_grammar_free(g);
}

int main(void)
{
    test_constructs();
    test_hostile();
    test_tools();
    return et_finish();
}
