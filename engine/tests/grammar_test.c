/* Grammar tests: accepted and rejected strings for each construct, parse errors that name what
 * and where, and the token mask against a brute-force oracle (feeding every token's piece to a
 * fresh matcher replaying the same prefix) along random walks through a JSON grammar. */
#include "ember_test.h"

#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "engine/tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

static struct eng_grammar *parse_ok(const char *text)
{
    struct eng_grammar *g = NULL;
    char err[256] = "";
    int rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
    CHECK_MSG(rc == 0 && g, "parse %s: %d %s", text, rc, err);
    return g;
}

/* 1: s is a complete string of g; 0: a prefix, not complete; -1: rejected */
static int match(const struct eng_grammar *g, const char *s)
{
    struct eng_grammar_matcher *m = NULL;
    if (eng_grammar_matcher_new(g, &m) != 0)
        return -2;
    int rc = eng_grammar_matcher_feed(m, s, strlen(s));
    int r = rc < 0 ? -1 : eng_grammar_matcher_accepts(m) ? 1 : 0;
    eng_grammar_matcher_free(m);
    return r;
}

struct want {
    const char *s;
    int r;
};

static void check_grammar(const char *text, const struct want *w, size_t n)
{
    struct eng_grammar *g = parse_ok(text);
    if (!g)
        return;
    for (size_t i = 0; i < n; i++) {
        int r = match(g, w[i].s);
        CHECK_MSG(r == w[i].r, "grammar [%s] on \"%s\": got %d, want %d", text, w[i].s, r, w[i].r);
    }
    eng_grammar_free(g);
}

#define CHECK_GRAMMAR(text, ...)                             \
    do {                                                     \
        const struct want w_[] = {__VA_ARGS__};              \
        check_grammar(text, w_, sizeof(w_) / sizeof(w_[0])); \
    } while (0)

static void test_constructs(void)
{
    CHECK_GRAMMAR("root ::= \"abc\"", {"abc", 1}, {"ab", 0}, {"", 0}, {"abd", -1}, {"abcd", -1});
    CHECK_GRAMMAR("root ::= \"a\\n\\\"\\x41\\\\\"", {"a\n\"A\\", 1}, {"a\n\"B", -1});
    CHECK_GRAMMAR("root ::= [a-c0-9_]", {"a", 1}, {"c", 1}, {"5", 1}, {"_", 1}, {"d", -1});
    CHECK_GRAMMAR("root ::= [^\"\\\\]", {"x", 1}, {"\xc3", 1}, {"\"", -1}, {"\\", -1});
    CHECK_GRAMMAR("root ::= \"a\" | \"bc\" | \"bd\"", {"a", 1}, {"bc", 1}, {"bd", 1}, {"b", 0},
                  {"be", -1}, {"abc", -1});
    CHECK_GRAMMAR("root ::= \"x\" (\"a\" | \"b\") \"y\"", {"xay", 1}, {"xby", 1}, {"xy", -1});
    CHECK_GRAMMAR("root ::= \"a\"*", {"", 1}, {"a", 1}, {"aaaa", 1}, {"ab", -1});
    CHECK_GRAMMAR("root ::= \"a\"+ \"b\"", {"ab", 1}, {"aaab", 1}, {"b", -1}, {"aa", 0});
    CHECK_GRAMMAR("root ::= \"a\"? \"b\"", {"b", 1}, {"ab", 1}, {"aab", -1});
    CHECK_GRAMMAR("root ::= [0-9]{2,4}", {"1", 0}, {"12", 1}, {"1234", 1}, {"12345", -1});
    CHECK_GRAMMAR("root ::= \"x\"{3}", {"xx", 0}, {"xxx", 1}, {"xxxx", -1});
    CHECK_GRAMMAR("root ::= \"x\"{2,}", {"x", 0}, {"xx", 1}, {"xxxxxx", 1});
    CHECK_GRAMMAR("root ::= .", {"\xff", 1}, {"\x01", 1}, {"ab", -1});
    /* recursion (balanced parentheses) and rules used before their definition */
    CHECK_GRAMMAR("root ::= p\np ::= \"(\" p* \")\"  # nested\n", {"()", 1}, {"(()())", 1},
                  {"(()", 0}, {"())", -1});
    /* a '|' continuing on the next line, comments, empty literal */
    CHECK_GRAMMAR("root ::= \"a\"\n  | \"b\" # c\n  | \"\"\n", {"a", 1}, {"b", 1}, {"", 1});
    /* ambiguous alternatives stay live together */
    CHECK_GRAMMAR("root ::= \"ab\" \"c\" | \"a\" \"bd\" | [a-z]+", {"abc", 1}, {"abd", 1},
                  {"abz", 1}, {"ab1", -1});
}

static void check_error(const char *text, const char *want)
{
    struct eng_grammar *g = NULL;
    char err[256] = "";
    int rc = eng_grammar_parse(text, 0, &g, err, sizeof(err));
    CHECK_MSG(rc == -EINVAL && !g, "parse [%s]: rc %d", text, rc);
    CHECK_CONTAINS(err, want);
    eng_grammar_free(g);
}

static void test_errors(void)
{
    check_error("root ::= foo", "line 1 col 10: rule 'foo' is not defined");
    check_error("a ::= \"x\"", "no 'root' rule");
    check_error("root ::= \"x", "unterminated literal");
    check_error("root ::= [a-", "unterminated byte class");
    check_error("root ::= \"\\q\"", "unknown escape");
    check_error("root ::= (\"a\"", "expected ')'");
    check_error("root ::= \"a\"{5,2}", "max below min");
    check_error("root ::= \"a\"{99999}", "repetition count above");
    check_error("root ::= root \"a\"", "left-recursive");
    check_error("root ::= e x\ne ::= \"\" | \"q\"\nx ::= root \"z\"", "left-recursive");
    check_error("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
    check_error("root = \"a\"", "expected '::='");
    check_error("root ::= [z-a]", "backwards");
}

/* ---- the mask against brute force ---- */

static const char *json_grammar =
    "root ::= value\n"
    "value ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ( string \":\" \" \"? value ( \",\" \" \"? string \":\" \" \"? value )* )? "
    "\"}\"\n"
    "array ::= \"[\" ( value ( \",\" \" \"? value )* )? \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\/bfnrt] )* \"\\\"\"\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,8} ) ( \".\" [0-9]{1,6} )?\n";

static uint64_t rng = 0x1234567;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void test_mask_oracle(void)
{
    struct eng_grammar *g = parse_ok(json_grammar);
    if (!g)
        return;
    /* a vocabulary of every single byte of interest plus multi-byte pieces, duplicates, an
     * empty piece and an end-of-generation token */
    static const char *const multi[] = {
        "{\"", "\":",   "\": ",      "\",",  "\", \"", "}",   "},",   "]",  "],",
        "[{",  "true",  "tr",        "null", "false,", "12",  "0.",   ".5", "-1",
        "ab",  "abc\"", "\"}",       "\\n",  "\\",     "\\u", "a\"b", " ",  "{",
        "[",   "\"",    "{\"a\":1}", "00",   "1.2.3",  "e5",  "abc",
    };
    enum { N_MULTI = sizeof(multi) / sizeof(multi[0]) };
    const char *pieces[128 + N_MULTI + 2];
    size_t lens[128 + N_MULTI + 2];
    bool eog[128 + N_MULTI + 2] = {0};
    char singles[128];
    int32_t n = 0;
    for (int b = 32; b < 127; b++) {
        singles[b] = (char)b;
        pieces[n] = &singles[b];
        lens[n++] = 1;
    }
    for (int i = 0; i < N_MULTI; i++) {
        pieces[n] = multi[i];
        lens[n++] = strlen(multi[i]);
    }
    pieces[n] = "abc";
    lens[n++] = 3; /* a duplicate piece */
    pieces[n] = "";
    lens[n++] = 0; /* a control token: never allowed */
    pieces[n] = "";
    eog[n] = true;
    lens[n++] = 0;
    int32_t eog_id = n - 1;

    struct eng_grammar_vocab *gv = NULL;
    CHECK_EQ_INT(eng_grammar_vocab_from_pieces(n, pieces, lens, eog, &gv), 0);
    if (!gv)
        goto out;
    uint32_t allow[8], cached[8];
    char prefix[512];
    int mismatches = 0, steps = 0;
    for (int walk = 0; walk < 40; walk++) {
        struct eng_grammar_matcher *m = NULL;
        CHECK_EQ_INT(eng_grammar_matcher_new(g, &m), 0);
        size_t plen = 0;
        for (int step = 0; step < 40; step++) {
            int32_t cnt = eng_grammar_mask_uncached(m, gv, allow);
            int32_t cnt2 = eng_grammar_mask(m, gv, cached);
            CHECK_EQ_INT(cnt, cnt2);
            CHECK(memcmp(allow, cached, eng_grammar_mask_words(gv) * 4) == 0);
            int32_t oracle = 0, allowed[256], n_allowed = 0;
            for (int32_t t = 0; t < n; t++) {
                bool ok;
                if (t == eog_id) {
                    ok = eng_grammar_matcher_accepts(m);
                } else if (lens[t] == 0) {
                    ok = false;
                } else {
                    struct eng_grammar_matcher *o = NULL;
                    eng_grammar_matcher_new(g, &o);
                    ok = eng_grammar_matcher_feed(o, prefix, plen) == 0 &&
                         eng_grammar_matcher_feed(o, pieces[t], lens[t]) == 0;
                    eng_grammar_matcher_free(o);
                }
                bool got = (allow[t >> 5] >> (t & 31)) & 1;
                if (got != ok && mismatches++ < 5)
                    fprintf(stderr, "prefix \"%.*s\" token \"%.*s\": mask %d oracle %d\n",
                            (int)plen, prefix, (int)lens[t], pieces[t], got, ok);
                oracle += ok;
                if (ok)
                    allowed[n_allowed++] = t;
            }
            CHECK_EQ_INT(cnt, oracle);
            steps++;
            if (n_allowed == 0)
                break;
            int32_t t = allowed[rnd() % (uint32_t)n_allowed];
            if (t == eog_id)
                break;
            if (plen + lens[t] >= sizeof(prefix))
                break;
            CHECK_EQ_INT(eng_grammar_matcher_accept_token(m, gv, t), 0);
            memcpy(prefix + plen, pieces[t], lens[t]);
            plen += lens[t];
        }
        /* the EOG token only when complete */
        CHECK_EQ_INT(eng_grammar_matcher_accept_token(m, gv, eog_id) == 0,
                     eng_grammar_matcher_accepts(m));
        eng_grammar_matcher_free(m);
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(steps > 200);
    eng_grammar_vocab_free(gv);
out:
    eng_grammar_free(g);
}

/* The mask's shortcuts (loop classes: bytes that leave the state unchanged, remembered per
 * state; states recognised as a loop state again after a multi-byte character) matter on real
 * vocabularies, whose tries have deep subtrees inside JSON strings: every 48th token of the
 * 151k qwen3 vocabulary and all of one byte (UTF-8 pieces included) against brute force, on
 * a JSON Schema grammar whose strings accept any UTF-8 text. */
static void test_mask_oracle_vocab(void)
{
    const char *dir = getenv("EMBER_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors/tokenizer/ggml-vocab-qwen3.gguf",
             dir && *dir ? dir : EMBER_SHARED_DIR);
    struct eng_vocab *vocab = NULL;
    char err[256];
    if (eng_vocab_load_file(path, &vocab, err, sizeof(err)) != 0) {
        printf("mask oracle on a real vocabulary not run: %s is absent (%s)\n", path, err);
        return;
    }
    char *text = NULL;
    CHECK_EQ_INT(eng_json_schema_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                         "\"string\"},\"b\":{\"type\":\"array\",\"items\":{"
                                         "\"type\":\"string\"}}},\"required\":[\"a\",\"b\"]}",
                                         0, &text, err, sizeof(err)),
                 0);
    struct eng_grammar *g = text ? parse_ok(text) : NULL;
    free(text);
    int32_t n_all = eng_vocab_n_tokens(vocab), n = 0;
    const char **pieces = calloc((size_t)n_all / 8, sizeof(*pieces));
    size_t *lens = calloc((size_t)n_all / 8, sizeof(*lens));
    char *bytes = malloc((size_t)n_all * 32);
    size_t used = 0;
    for (int32_t t = 0; t < n_all && bytes && n < n_all / 8; t++) {
        size_t len = 0;
        if (eng_token_piece(vocab, t, false, bytes + used, 32, &len) != 0)
            len = 0; /* longer pieces: left out as empty (never allowed) */
        if (t % 48 != 0 && len > 1)
            continue; /* every 48th token, and all single bytes (JSON's punctuation) */
        pieces[n] = bytes + used;
        lens[n++] = len;
        used += len;
    }
    struct eng_grammar_vocab *gv = NULL;
    if (g && bytes)
        CHECK_EQ_INT(eng_grammar_vocab_from_pieces(n, pieces, lens, NULL, &gv), 0);
    uint32_t *allow = gv ? calloc(eng_grammar_mask_words(gv), 4) : NULL;
    int32_t *allowed = malloc((size_t)n * sizeof(*allowed));
    char prefix[2048];
    int mismatches = 0, steps = 0, in_string = 0;
    for (int walk = 0; allow && walk < 4; walk++) {
        struct eng_grammar_matcher *m = NULL;
        CHECK_EQ_INT(eng_grammar_matcher_new(g, &m), 0);
        size_t plen = 0;
        for (int step = 0; m && step < 20; step++) {
            int32_t cnt = eng_grammar_mask_uncached(m, gv, allow), oracle = 0, n_allowed = 0;
            for (int32_t t = 0; t < n; t++) {
                bool ok = false;
                if (lens[t]) {
                    struct eng_grammar_matcher *o = NULL;
                    eng_grammar_matcher_new(g, &o);
                    ok = eng_grammar_matcher_feed(o, prefix, plen) == 0 &&
                         eng_grammar_matcher_feed(o, pieces[t], lens[t]) == 0;
                    eng_grammar_matcher_free(o);
                }
                bool got = (allow[t >> 5] >> (t & 31)) & 1;
                if (got != ok && mismatches++ < 5)
                    fprintf(stderr, "prefix \"%.*s\" token \"%.*s\": mask %d oracle %d\n",
                            (int)plen, prefix, (int)lens[t], pieces[t], got, ok);
                oracle += ok;
                if (ok)
                    allowed[n_allowed++] = t;
            }
            CHECK_EQ_INT(cnt, oracle);
            steps++;
            in_string += oracle > n / 2; /* most tokens allowed: inside a string */
            if (n_allowed == 0)
                break;
            int32_t t = allowed[rnd() % (uint32_t)n_allowed];
            if (plen + lens[t] >= sizeof(prefix))
                break;
            CHECK_EQ_INT(eng_grammar_matcher_accept_token(m, gv, t), 0);
            memcpy(prefix + plen, pieces[t], lens[t]);
            plen += lens[t];
        }
        eng_grammar_matcher_free(m);
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK_MSG(!allow || (steps >= 30 && in_string >= 5), "%d steps, %d inside strings", steps,
              in_string);
    free(allow);
    free(allowed);
    free(pieces);
    free(lens);
    free(bytes);
    eng_grammar_vocab_free(gv);
    eng_grammar_free(g);
    eng_vocab_free(vocab);
}

static void test_matcher_api(void)
{
    struct eng_grammar *g = parse_ok("root ::= \"{\" [0-9]* \"}\"");
    struct eng_grammar_matcher *m = NULL;
    CHECK_EQ_INT(eng_grammar_matcher_new(g, &m), 0);
    CHECK(eng_grammar_matcher_allows_byte(m, '{'));
    CHECK(!eng_grammar_matcher_allows_byte(m, '}'));
    CHECK_EQ_INT(eng_grammar_matcher_feed(m, "{12", 3), 0);
    CHECK_EQ_INT(eng_grammar_matcher_feed(m, "x", 1), -EINVAL); /* state unchanged */
    CHECK(!eng_grammar_matcher_accepts(m));
    CHECK_EQ_INT(eng_grammar_matcher_feed(m, "3}", 2), 0);
    CHECK(eng_grammar_matcher_accepts(m));
    CHECK(eng_grammar_matcher_done(m));
    eng_grammar_matcher_reset(m);
    CHECK(!eng_grammar_matcher_accepts(m));
    /* a long run keeps the arena bounded (compaction) and stays correct */
    CHECK_EQ_INT(eng_grammar_matcher_feed(m, "{", 1), 0);
    for (int i = 0; i < 200000; i++)
        if (eng_grammar_matcher_feed(m, "7", 1) != 0) {
            CHECK(0);
            break;
        }
    CHECK_EQ_INT(eng_grammar_matcher_feed(m, "}", 1), 0);
    CHECK(eng_grammar_matcher_done(m));
    eng_grammar_matcher_free(m);
    eng_grammar_free(g);

    /* too ambiguous: many alternatives matching the same bytes */
    g = parse_ok("root ::= x x x x x x x x x x x x\nx ::= \"a\" | \"a\" \"\" | [a] | (\"a\")");
    CHECK_EQ_INT(eng_grammar_matcher_new(g, &m), 0);
    int rc = 0;
    for (int i = 0; i < 12 && rc == 0; i++)
        rc = eng_grammar_matcher_feed(m, "a", 1);
    CHECK_MSG(rc == 0 || rc == -E2BIG, "rc %d", rc);
    eng_grammar_matcher_free(m);
    eng_grammar_free(g);
}

int main(void)
{
    test_constructs();
    test_errors();
    test_matcher_api();
    test_mask_oracle();
    test_mask_oracle_vocab();
    return et_finish();
}
