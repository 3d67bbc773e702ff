/* Grammar masking overhead (label bench, run by hand; docs/api.md quotes its output):
 *   bench_grammar VOCAB.gguf [DECODE_MODEL.gguf] [threads=2] [decode_tokens=32]
 * Walks a realistic constrained generation (a Home Assistant tool call, then a JSON Schema
 * answer with long strings) token by token over VOCAB's vocabulary: each step computes the
 * mask uncached and through the per-state cache, then takes the longest allowed token that
 * continues the target text, as a model writing it would. Reports mask CPU time per token and,
 * with a model, that as a percent of the model's one-token decode time. CPU time
 * (CLOCK_THREAD_CPUTIME_ID) for the mask; wall time for decode, which uses several threads. */
#include "engine/engine.h"
#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "engine/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"HassTurnOn\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"area\":{\"type\":\"string\"}},"
    "\"required\":[\"name\"],\"additionalProperties\":false}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"HassLightSet\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"brightness\":{\"type\":"
    "\"integer\"},\"color\":{\"enum\":[\"red\",\"green\",\"blue\",\"white\"]}},\"required\":"
    "[\"name\",\"brightness\"],\"additionalProperties\":false}}}]";
static const char tool_text[] =
    "<tool_call>\n{\"name\": \"HassLightSet\", \"arguments\": {\"name\": \"kitchen ceiling "
    "light\", \"brightness\": 80, \"color\": \"white\"}}\n</tool_call>";
static const char schema[] =
    "{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\"},\"steps\":{\"type\":"
    "\"array\",\"items\":{\"type\":\"string\"}},\"confidence\":{\"type\":\"number\"}},"
    "\"required\":[\"summary\",\"steps\",\"confidence\"],\"additionalProperties\":false}";
static const char schema_text[] =
    "{\"summary\": \"The living room lights were dimmed to forty percent because the evening "
    "scene started and nobody was in the kitchen.\", \"steps\": [\"Check the motion sensor in "
    "the kitchen\", \"Dim the living room lights\", \"Turn off the hallway light after ten "
    "minutes\"], \"confidence\": 0.87}";

struct stats {
    double uncached_s, cached_s;
    int tokens, bytes_ok;
};

static int run(const struct eng_vocab *vocab, const struct eng_grammar_vocab *gv,
               const char *grammar_text, const char *target, struct stats *st)
{
    struct eng_grammar *g = NULL;
    char err[256];
    if (eng_grammar_parse(grammar_text, 0, &g, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct eng_grammar_matcher *m = NULL, *mc = NULL;
    eng_grammar_matcher_new(g, &m);
    eng_grammar_matcher_new(g, &mc);
    size_t words = eng_grammar_mask_words(gv);
    uint32_t *allow = malloc(words * 4), *allow2 = malloc(words * 4);
    int32_t n_vocab = eng_vocab_n_tokens(vocab);
    size_t pos = 0, len = strlen(target);
    char piece[512];
    while (pos < len) {
        double t0 = now(CLOCK_THREAD_CPUTIME_ID);
        eng_grammar_mask_uncached(m, gv, allow);
        double t1 = now(CLOCK_THREAD_CPUTIME_ID);
        eng_grammar_mask(mc, gv, allow2);
        double t2 = now(CLOCK_THREAD_CPUTIME_ID);
        st->uncached_s += t1 - t0;
        st->cached_s += t2 - t1;
        int32_t best = -1;
        size_t best_len = 0;
        for (int32_t t = 0; t < n_vocab; t++) {
            size_t pl = 0;
            if (!((allow[t >> 5] >> (t & 31)) & 1) ||
                eng_token_piece(vocab, t, false, piece, sizeof(piece), &pl) != 0 || pl == 0)
                continue;
            if (pl > best_len && pl <= len - pos && memcmp(piece, target + pos, pl) == 0) {
                best = t;
                best_len = pl;
            }
        }
        if (best < 0) {
            fprintf(stderr, "no allowed token continues the target at byte %zu\n", pos);
            break;
        }
        eng_grammar_matcher_accept_token(m, gv, best);
        eng_grammar_matcher_accept_token(mc, gv, best);
        pos += best_len;
        st->tokens++;
    }
    st->bytes_ok = pos == len && eng_grammar_matcher_accepts(m);
    free(allow);
    free(allow2);
    eng_grammar_matcher_free(m);
    eng_grammar_matcher_free(mc);
    eng_grammar_free(g);
    return 0;
}

static double decode_ms(const char *path, int threads, int n)
{
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    struct eng_model *model = NULL;
    char err[256];
    if (eng_model_load(path, &mp, &model, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = 256;
    cp.n_threads = (uint32_t)threads;
    struct eng_context *ctx = NULL;
    if (eng_context_new(model, &cp, &ctx, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        eng_model_free(model);
        return -1;
    }
    int32_t tok = 1;
    eng_decode(ctx, &tok, 1); /* warm up */
    double t0 = now(CLOCK_MONOTONIC);
    for (int i = 0; i < n; i++) {
        tok = (tok * 7 + 13) % 1000 + 2;
        eng_decode(ctx, &tok, 1);
    }
    double ms = (now(CLOCK_MONOTONIC) - t0) * 1e3 / n;
    eng_context_free(ctx);
    eng_model_free(model);
    return ms;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        printf("usage: bench_grammar VOCAB.gguf [DECODE_MODEL.gguf] [threads=2] "
               "[decode_tokens=32]\n");
        return argc < 2 ? 2 : 0;
    }
    int threads = argc > 3 ? atoi(argv[3]) : 2, n_dec = argc > 4 ? atoi(argv[4]) : 32;
    struct eng_vocab *vocab = NULL;
    char err[256];
    if (eng_vocab_load_file(argv[1], &vocab, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct eng_grammar_vocab *gv = NULL;
    double t0 = now(CLOCK_THREAD_CPUTIME_ID);
    eng_grammar_vocab_new(vocab, &gv);
    double index_ms = (now(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e3;
    printf("vocabulary %s: %d tokens, index built in %.1f ms (once per vocabulary)\n", argv[1],
           (int)eng_vocab_n_tokens(vocab), index_ms);
    char *tg = NULL, *sg = NULL;
    eng_tools_grammar(tools, 0, NULL, ENG_TOOL_SYNTAX_HERMES, false, &tg, err, sizeof(err));
    eng_json_schema_grammar(schema, 0, &sg, err, sizeof(err));
    struct stats st = {0}, st2 = {0};
    run(vocab, gv, tg, tool_text, &st);
    run(vocab, gv, sg, schema_text, &st2);
    free(tg);
    free(sg);
    printf("tool call:   %d tokens%s, mask %.3f ms/token uncached, %.3f ms/token cached\n",
           st.tokens, st.bytes_ok ? "" : " (target NOT completed)", st.uncached_s * 1e3 / st.tokens,
           st.cached_s * 1e3 / st.tokens);
    printf("json_schema: %d tokens%s, mask %.3f ms/token uncached, %.3f ms/token cached\n",
           st2.tokens, st2.bytes_ok ? "" : " (target NOT completed)",
           st2.uncached_s * 1e3 / st2.tokens, st2.cached_s * 1e3 / st2.tokens);
    int tokens = st.tokens + st2.tokens;
    double unc = (st.uncached_s + st2.uncached_s) * 1e3 / tokens;
    double cac = (st.cached_s + st2.cached_s) * 1e3 / tokens;
    if (argc > 2) {
        double d = decode_ms(argv[2], threads, n_dec);
        if (d > 0)
            printf("decode %s: %.2f ms/token (%d threads); mask overhead %.2f%% uncached, "
                   "%.2f%% cached\n",
                   argv[2], d, threads, 100 * unc / d, 100 * cac / d);
    }
    eng_grammar_vocab_free(gv);
    eng_vocab_free(vocab);
    return st.bytes_ok && st2.bytes_ok ? 0 : 1;
}
