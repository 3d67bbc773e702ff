/* Fuzz harness for grammar text and the tool-call output parser: the input is parsed as a
 * grammar (and, when it parses, matched against itself byte by byte and masked over a small
 * vocabulary), and fed as model output to the parser of every tool-call syntax in pieces of a
 * size the input picks. Nothing may crash, leak or loop; a matcher must stay consistent. */
#include "engine/chat.h"
#include "engine/grammar.h"
#include "engine/json_schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_text(void *user, const char *t, size_t n)
{
    (void)t;
    *(size_t *)user += n;
    return 0;
}

static int on_call(void *user, const char *name, const char *args)
{
    (void)user;
    if (!name[0] || args[0] != '{')
        abort(); /* a reported call always has a name and object arguments */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    const char *text = (const char *)data;
    struct eng_grammar *g = NULL;
    char err[256];
    if (size && eng_grammar_parse(text, size, &g, err, sizeof(err)) == 0) {
        struct eng_grammar_matcher *m = NULL;
        if (eng_grammar_matcher_new(g, &m) == 0) {
            static const char *const pieces[] = {"a", "{", "\"", "ab", " ", "}", "0", "\n"};
            static const size_t lens[] = {1, 1, 1, 2, 1, 1, 1, 1};
            struct eng_grammar_vocab *gv = NULL;
            if (eng_grammar_vocab_from_pieces(8, pieces, lens, NULL, &gv) == 0) {
                uint32_t allow[1];
                for (size_t i = 0; i < size && i < 64; i++) {
                    int32_t n = eng_grammar_mask(m, gv, allow);
                    if (n < 0)
                        break;
                    /* every allowed token must be accepted */
                    for (int32_t t = 0; t < 8; t++)
                        if ((allow[0] >> t) & 1 &&
                            !eng_grammar_matcher_allows_byte(m, (uint8_t)pieces[t][0]))
                            abort();
                    if (eng_grammar_matcher_feed(m, text + i, 1) < 0)
                        break;
                }
                eng_grammar_vocab_free(gv);
            }
            eng_grammar_matcher_free(m);
        }
        eng_grammar_free(g);
    }
    size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
    for (int syntax = ENG_TOOL_SYNTAX_HERMES; syntax <= ENG_TOOL_SYNTAX_MISTRAL; syntax++) {
        size_t got = 0;
        struct eng_tool_parser_cb cb = {on_text, on_call, &got};
        struct eng_tool_parser *p = NULL;
        if (eng_tool_parser_new(syntax, NULL, 0, &cb, &p) < 0)
            continue;
        for (size_t i = 0; i < size; i += step)
            eng_tool_parser_push(p, text + i, size - i < step ? size - i : step);
        eng_tool_parser_finish(p);
        if (eng_tool_parser_n_calls(p) == 0 && got != size)
            abort(); /* without a call, all text comes out unchanged */
        eng_tool_parser_free(p);
    }
    return 0;
}
