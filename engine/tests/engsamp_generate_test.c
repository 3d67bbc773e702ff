/* Generation loop tests on the real stories260K model against the reference vectors
 * (../shared/vectors/stories260K.json, numpy float64 reference): greedy ids and text from BOS
 * and from the stored prompts, observer events and stats, stop strings spanning tokens,
 * cancellation, max_tokens, a full context (stop and shift, the shift checked against a fresh
 * run over the tokens it keeps), appending to the KV cache, seeds, and bad input. */
#include "ember_test.h"

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>

#define MAX_IDS 256

static struct eng_model *model;
static const struct eng_vocab *vocab;
static cJSON *vectors;

struct capture {
    char text[8192];
    size_t len;
    int calls;
    int cancel_after;
    /* observer */
    int32_t ids[1024];
    int n_ids;
    int prefill_begin, prefill_end, idle, done;
    struct eng_request_stats done_stats;
};

static int cap_text(void *user, const char *t, size_t n)
{
    struct capture *c = user;
    if (c->len + n < sizeof(c->text)) {
        memcpy(c->text + c->len, t, n);
        c->len += n;
        c->text[c->len] = '\0';
    }
    c->calls++;
    return c->cancel_after && c->calls >= c->cancel_after;
}

static void obs_prefill_begin(void *u, size_t n)
{
    (void)n;
    ((struct capture *)u)->prefill_begin++;
}

static void obs_prefill_end(void *u, size_t n, uint64_t ns)
{
    (void)n;
    (void)ns;
    ((struct capture *)u)->prefill_end++;
}

static void obs_token(void *u, int32_t t)
{
    struct capture *c = u;
    if (c->n_ids < (int)(sizeof(c->ids) / sizeof(c->ids[0])))
        c->ids[c->n_ids++] = t;
}

static void obs_idle(void *u)
{
    ((struct capture *)u)->idle++;
}

static void obs_done(void *u, const struct eng_request_stats *s)
{
    struct capture *c = u;
    c->done++;
    c->done_stats = *s;
}

static const struct eng_observer observer = {obs_prefill_begin, obs_prefill_end, obs_token,
                                             obs_idle, obs_done};

static struct eng_context *mk_ctx(uint32_t n_ctx, struct capture *cap)
{
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    struct eng_context *ctx = NULL;
    char err[256];
    int rc = eng_context_new(model, &cp, &ctx, err, sizeof(err));
    CHECK_MSG(rc == 0, "eng_context_new: %s", err);
    if (ctx && cap)
        eng_set_observer(ctx, &observer, cap);
    return ctx;
}

static void greedy(struct eng_gen_params *p, struct capture *cap)
{
    eng_gen_params_defaults(p);
    p->sampling.temperature = 0;
    p->on_text = cap_text;
    p->user = cap;
}

static int json_ids(const cJSON *arr, int32_t *out, int max)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (n < max)
            out[n++] = (int32_t)it->valuedouble;
    }
    return n;
}

static int count_equal(const int32_t *a, const int32_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return i;
    return n;
}

static const cJSON *f32(void)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(vectors, "models"), "F32");
}

static void test_bos_greedy(void)
{
    const cJSON *bg = cJSON_GetObjectItem(f32(), "bos_greedy");
    int32_t want[MAX_IDS];
    int n = json_ids(cJSON_GetObjectItem(bg, "ids"), want, MAX_IDS);
    const char *want_text = cJSON_GetObjectItem(bg, "text")->valuestring;
    CHECK_EQ_INT(n, 200);

    static struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct eng_context *ctx = mk_ctx(512, &cap);
    struct eng_gen_params p;
    greedy(&p, &cap);
    p.prompt = ""; /* BOS only */
    p.max_tokens = n;
    struct eng_gen_result r;
    char err[256] = "";
    int rc = eng_generate(ctx, vocab, &p, &r, err, sizeof(err));
    CHECK_MSG(rc == 0, "eng_generate: %d %s", rc, err);
    CHECK_EQ_INT(r.reason, ENG_STOP_MAX_TOKENS);
    CHECK_EQ_INT(r.stats.prompt_tokens, 1);
    CHECK_EQ_INT(r.stats.gen_tokens, n);
    CHECK_EQ_INT(cap.n_ids, n);
    CHECK_EQ_INT(count_equal(cap.ids, want, n), n);
    CHECK_MSG(strcmp(cap.text, want_text) == 0, "\n got: %.120s\nwant: %.120s", cap.text,
              want_text);
    CHECK(strncmp(cap.text, "Once upon a time", 16) == 0);
    /* stats and observer */
    CHECK(r.stats.ttft_ns > 0 && r.stats.ttft_ns <= r.stats.duration_ns);
    CHECK(r.stats.decode_ns > 0 && r.stats.prefill_ns > 0);
    CHECK(r.stats.prefill_ns + r.stats.decode_ns <= r.stats.duration_ns);
    CHECK_EQ_INT(cap.done, 1);
    CHECK_EQ_INT(cap.idle, 1);
    CHECK_EQ_INT(cap.done_stats.gen_tokens, n);
    CHECK_EQ_INT(cap.done_stats.duration_ns, r.stats.duration_ns);
    /* the last token is sampled but not decoded */
    CHECK_EQ_INT(r.kv_used, 1 + n - 1);
    CHECK_EQ_INT(r.last_token, want[n - 1]);
    eng_context_free(ctx);
}

static void test_prompts(void)
{
    const cJSON *pr;
    cJSON_ArrayForEach(pr, cJSON_GetObjectItem(f32(), "prompts"))
    {
        const char *text = cJSON_GetObjectItem(pr, "text")->valuestring;
        int32_t want[MAX_IDS], pids[MAX_IDS];
        int n = json_ids(cJSON_GetObjectItem(pr, "ids"), want, MAX_IDS);
        int np = json_ids(cJSON_GetObjectItem(pr, "prompt_ids"), pids, MAX_IDS);
        static struct capture cap;
        memset(&cap, 0, sizeof(cap));
        struct eng_context *ctx = mk_ctx(256, &cap);
        struct eng_gen_params p;
        greedy(&p, &cap);
        p.prompt = text;
        p.max_tokens = n;
        p.n_batch = 3; /* several prefill batches */
        struct eng_gen_result r;
        char err[256] = "";
        CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
        CHECK_EQ_INT(r.stats.prompt_tokens, np);
        CHECK_EQ_INT(count_equal(cap.ids, want, n), n);
        CHECK_STR(cap.text, cJSON_GetObjectItem(pr, "completion_text")->valuestring);
        CHECK_EQ_INT(cap.prefill_begin, np / 3 + (np % 3 > 1)); /* batches of > 1 token */
        CHECK_EQ_INT(cap.prefill_end, cap.prefill_begin);

        /* the same from tokens */
        memset(&cap, 0, sizeof(cap));
        greedy(&p, &cap);
        p.prompt_tokens = pids;
        p.n_prompt_tokens = (size_t)np;
        p.max_tokens = n;
        CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
        CHECK_EQ_INT(count_equal(cap.ids, want, n), n);
        /* a token id outside the vocabulary is refused by name (ASan checks the error path) */
        int32_t bad[2] = {pids[0], 1 << 30};
        p.prompt_tokens = bad;
        p.n_prompt_tokens = 2;
        CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "prompt token 1: id 1073741824 outside");
        eng_context_free(ctx);
    }
}

static void test_stop_and_cancel(void)
{
    static struct capture cap;
    struct eng_context *ctx = mk_ctx(256, &cap);
    struct eng_gen_params p;
    struct eng_gen_result r;
    char err[256];

    /* "Lily" first appears at character 48 of the greedy text */
    memset(&cap, 0, sizeof(cap));
    greedy(&p, &cap);
    p.prompt = "";
    p.max_tokens = 100;
    p.stop[0] = "Lily";
    p.stop[1] = "never appears \x01";
    p.n_stop = 2;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.reason, ENG_STOP_STRING);
    CHECK_STR(cap.text, "Once upon a time, there was a little girl named ");
    CHECK(!r.kv_matches_text);

    /* a stop string spanning tokens (" upon" " a") and ending inside one (" time") */
    memset(&cap, 0, sizeof(cap));
    p.stop[0] = "upon a ti";
    p.n_stop = 1;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.reason, ENG_STOP_STRING);
    CHECK_STR(cap.text, "Once ");

    /* the callback cancels after three pieces */
    memset(&cap, 0, sizeof(cap));
    greedy(&p, &cap);
    p.prompt = "";
    p.max_tokens = 100;
    cap.cancel_after = 3;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.reason, ENG_STOP_CANCELLED);
    CHECK_EQ_INT(cap.calls, 3);
    CHECK_EQ_INT(r.stats.gen_tokens, 3);
    CHECK_EQ_INT(cap.done, 1);

    /* max_tokens 0: prefill only */
    memset(&cap, 0, sizeof(cap));
    greedy(&p, &cap);
    p.prompt = "Once upon a time";
    p.max_tokens = 0;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.reason, ENG_STOP_MAX_TOKENS);
    CHECK_EQ_INT(r.stats.gen_tokens, 0);
    CHECK_EQ_INT(cap.len, 0);
    CHECK_EQ_INT(r.kv_used, 5);
    eng_context_free(ctx);
}

static void test_context_full(void)
{
    const cJSON *bg = cJSON_GetObjectItem(f32(), "bos_greedy");
    int32_t want[MAX_IDS];
    json_ids(cJSON_GetObjectItem(bg, "ids"), want, MAX_IDS);
    static struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct eng_context *ctx = mk_ctx(16, &cap);
    CHECK_EQ_INT(eng_n_ctx(ctx), 16);
    struct eng_gen_params p;
    struct eng_gen_result r;
    char err[256] = "";

    /* stop: BOS + 15 decoded tokens fill 16 positions; the 16th token is still sampled */
    greedy(&p, &cap);
    p.prompt = "";
    p.max_tokens = 100;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.reason, ENG_STOP_CTX_FULL);
    CHECK_EQ_INT(r.stats.gen_tokens, 16);
    CHECK_EQ_INT(count_equal(cap.ids, want, 16), 16);
    CHECK_EQ_INT(r.kv_used, 16);

    /* shift: keep BOS, drop g1..g7, recompute g8..g15, then go on */
    memset(&cap, 0, sizeof(cap));
    greedy(&p, &cap);
    p.prompt = "";
    p.max_tokens = 23;
    p.ctx_full = ENG_CTX_FULL_SHIFT;
    p.n_keep = 1;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.reason, ENG_STOP_MAX_TOKENS);
    CHECK_EQ_INT(r.stats.gen_tokens, 23);
    CHECK_EQ_INT(count_equal(cap.ids, want, 16), 16);
    CHECK(!r.kv_matches_text);
    /* g17..g23 must be what a fresh context predicts after [BOS, g8..g16] */
    int32_t kept[10] = {1};
    for (int i = 0; i < 9; i++)
        kept[1 + i] = cap.ids[7 + i];
    static struct capture fresh;
    memset(&fresh, 0, sizeof(fresh));
    struct eng_context *big = mk_ctx(64, &fresh);
    greedy(&p, &fresh);
    p.prompt_tokens = kept;
    p.n_prompt_tokens = 10;
    p.max_tokens = 7;
    CHECK_EQ_INT(eng_generate(big, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(count_equal(fresh.ids, cap.ids + 16, 7), 7);
    eng_context_free(big);

    /* a prompt longer than the context is an error, whatever the mode */
    memset(&cap, 0, sizeof(cap));
    greedy(&p, &cap);
    p.prompt = "Lily and Ben went to the park. They saw a big box with a big box. They wanted";
    p.ctx_full = ENG_CTX_FULL_SHIFT;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), -ENOSPC);
    CHECK_CONTAINS(err, "does not fit");
    eng_context_free(ctx);
}

/* A request appended to what the cache holds continues exactly like one prefill of it all. */
static void test_keep_kv(void)
{
    const cJSON *pr = cJSON_GetArrayItem(cJSON_GetObjectItem(f32(), "prompts"), 1);
    int32_t want[MAX_IDS], pids[MAX_IDS];
    int n = json_ids(cJSON_GetObjectItem(pr, "ids"), want, MAX_IDS);
    int np = json_ids(cJSON_GetObjectItem(pr, "prompt_ids"), pids, MAX_IDS);
    static struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct eng_context *ctx = mk_ctx(128, &cap);
    struct eng_gen_params p;
    struct eng_gen_result r;
    char err[256] = "";
    greedy(&p, &cap);
    p.prompt_tokens = pids;
    p.n_prompt_tokens = (size_t)np - 4;
    p.max_tokens = 0;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    greedy(&p, &cap);
    p.keep_kv = true;
    p.prompt_tokens = pids + np - 4;
    p.n_prompt_tokens = 4;
    p.max_tokens = 20;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(r.stats.prompt_tokens, 4);
    CHECK_EQ_INT(count_equal(cap.ids, want, 20 < n ? 20 : n), 20);
    CHECK_EQ_INT(r.kv_used, (size_t)np + 19);
    eng_context_free(ctx);
}

static void sample_text(struct eng_context *ctx, uint64_t seed, char *out, size_t cap_out)
{
    static struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct eng_gen_params p;
    eng_gen_params_defaults(&p);
    p.sampling.temperature = 1.0f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    p.sampling.seed = seed;
    p.prompt = "Once upon a time";
    p.max_tokens = 40;
    p.on_text = cap_text;
    p.user = &cap;
    struct eng_gen_result r;
    char err[256];
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), 0);
    snprintf(out, cap_out, "%s", cap.text);
}

static void test_seed(void)
{
    struct eng_context *ctx = mk_ctx(128, NULL);
    char a[8192], b[8192], c[8192];
    sample_text(ctx, 7, a, sizeof(a));
    sample_text(ctx, 7, b, sizeof(b));
    sample_text(ctx, 8, c, sizeof(c));
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strlen(a) > 20);
    eng_context_free(ctx);
}

static void test_bad_input(void)
{
    static struct capture cap;
    struct eng_context *ctx = mk_ctx(64, &cap);
    struct eng_gen_params p;
    struct eng_gen_result r;
    char err[256] = "";
    greedy(&p, &cap);
    p.prompt = "x";
    p.stop[0] = "";
    p.n_stop = 1;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "stop");
    greedy(&p, &cap);
    int32_t bad[2] = {1, 100000};
    p.prompt_tokens = bad;
    p.n_prompt_tokens = 2;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "token 1");
    greedy(&p, &cap);
    p.prompt = "x";
    p.sampling.top_p = 2.0f;
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "top_p");
    greedy(&p, &cap);
    CHECK_EQ_INT(eng_generate(ctx, vocab, &p, &r, err, sizeof(err)), -EINVAL); /* no prompt */
    CHECK_EQ_INT(eng_generate(NULL, vocab, &p, &r, err, sizeof(err)), -EINVAL);
    eng_context_free(ctx);
}

int main(void)
{
    char path[1024], err[512];
    snprintf(path, sizeof(path), "%s/vectors/stories260K.json", et_shared_dir());
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "skip: %s missing\n", path);
        return ET_SKIP;
    }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    vectors = cJSON_Parse(buf);
    CHECK(vectors != NULL);
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", et_shared_dir());
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    int rc = eng_model_load(path, &mp, &model, err, sizeof(err));
    CHECK_MSG(rc == 0, "eng_model_load: %s", err);
    if (rc != 0 || !vectors)
        return et_finish();
    vocab = eng_model_vocab(model);
    CHECK(vocab != NULL);

    test_bos_greedy();
    test_prompts();
    test_stop_and_cancel();
    test_context_full();
    test_keep_kv();
    test_seed();
    test_bad_input();

    eng_model_free(model);
    cJSON_Delete(vectors);
    return et_finish();
}
