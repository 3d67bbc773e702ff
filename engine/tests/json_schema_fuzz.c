/* Fuzz harness for the JSON Schema compiler: the input is a schema (and, wrapped, a tool list).
 * Whatever compiles must give a grammar that parses, or fail only for a $ref cycle that
 * consumes nothing (reported by the grammar's left-recursion check); anything else is a bug. */
#include "engine/grammar.h"
#include "engine/json_schema.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text)
{
    struct eng_grammar *g = NULL;
    char err[256];
    int rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
    if (rc != 0 && !strstr(err, "left-recursive")) {
        fprintf(stderr, "compiled grammar does not parse: %s\n%s\n", err, text);
        abort();
    }
    if (g) {
        struct eng_grammar_matcher *m = NULL;
        if (eng_grammar_matcher_new(g, &m) == 0) {
            (void)eng_grammar_matcher_feed(m, "{\"a\": [1, \"x\"]}", 15);
            eng_grammar_matcher_free(m);
        }
    }
    eng_grammar_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = NULL, err[256];
    if (eng_json_schema_grammar((const char *)data, size ? size : 1, &text, err, sizeof(err)) ==
        0) {
        check(text);
        free(text);
    }
    static const char head[] =
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":";
    char *tools = malloc(sizeof(head) + size + 4);
    if (!tools)
        return 0;
    memcpy(tools, head, sizeof(head) - 1);
    memcpy(tools + sizeof(head) - 1, data, size);
    memcpy(tools + sizeof(head) - 1 + size, "}}]", 4);
    if (eng_tools_grammar(tools, 0, NULL, (enum eng_tool_syntax)(size % 3), size % 2, &text, err,
                          sizeof(err)) == 0) {
        check(text);
        free(text);
    }
    free(tools);
    return 0;
}
