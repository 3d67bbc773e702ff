/* Golden forward-pass test against ../shared/vectors/stories260K.json (an independent float64
 * numpy reference), for the model named by argv[1] (F32, F16, Q8_0 or Q4_0), following the
 * comparison rules of the vectors' README: logits at positions 0/1/10/50 (F32), top-1 and the
 * top-5 logits per model, greedy ids from BOS (200) and from the stored prompt ids (64, the
 * prompts teacher-forced from prompt_ids so the tokenizer is not involved) up to the first step
 * whose reference margin is below twice the tolerance. Each model runs with an F32 KV cache
 * (tolerance 1e-3 for float weights) and with the default F16 cache (5e-2); quantized models
 * use Q8_0 activations (0.5). It also checks that a batched prefill, a split batch and a KV
 * trim give the same logits as one-token decoding, and that a full context says -ENOSPC. */
#include "ember_test.h"
#include "engine/engine.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static int ids_from(const cJSON *arr, int32_t *out, int cap)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (n < cap)
            out[n] = (int32_t)e->valuedouble;
        n++;
    }
    return n;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* First step whose reference margin is below 2 * tol (n when none). */
static int margin_limit(const cJSON *margins, double tol, int n)
{
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, margins)
    {
        if (k >= n || e->valuedouble < 2 * tol)
            break;
        k++;
    }
    return k;
}

/* Greedy-decodes n_new tokens after prompt (prefilled as one batch) and compares with the
 * stored ids up to the margin limit. */
static void check_greedy(struct eng_context *ctx, const cJSON *run, double tol, const char *label)
{
    int32_t prompt[256], want[256], got[256];
    int n_prompt = ids_from(cJSON_GetObjectItem(run, "prompt_ids"), prompt, 256);
    int n_new = ids_from(cJSON_GetObjectItem(run, "ids"), want, 256);
    CHECK(n_prompt > 0 && n_prompt <= 256 && n_new > 0 && n_new <= 256);
    eng_kv_clear(ctx);
    int r = eng_decode(ctx, prompt, (size_t)n_prompt);
    CHECK_EQ_INT(r, 0);
    int32_t n_vocab = eng_n_vocab(ctx);
    for (int i = 0; i < n_new && r == 0; i++) {
        got[i] = argmax(eng_get_logits(ctx), n_vocab);
        r = eng_decode(ctx, &got[i], 1);
    }
    int limit = margin_limit(cJSON_GetObjectItem(run, "top1_margins"), tol, n_new);
    int first_diff = n_new;
    for (int i = 0; i < n_new; i++) {
        if (got[i] != want[i]) {
            first_diff = i;
            break;
        }
    }
    printf("%s: greedy ids identical for %d/%d (margin rule requires %d)\n", label, first_diff,
           n_new, limit);
    CHECK_MSG(first_diff >= limit, "%s: id %d differs (got %d, want %d), margin rule needs %d",
              label, first_diff, first_diff < n_new ? got[first_diff] : -1,
              first_diff < n_new ? want[first_diff] : -1, limit);
}

struct obs_log {
    int begins, ends, tokens, idles, dones;
    size_t last_n;
    uint64_t last_dur_ns;
    int32_t last_token;
    uint64_t last_gen;
};

static void on_begin(void *u, size_t n)
{
    struct obs_log *l = u;
    l->begins++;
    l->last_n = n;
}

static void on_end(void *u, size_t n, uint64_t dur_ns)
{
    struct obs_log *l = u;
    l->ends++;
    l->last_n = n;
    l->last_dur_ns = dur_ns;
}

static void on_token(void *u, int32_t t)
{
    struct obs_log *l = u;
    l->tokens++;
    l->last_token = t;
}

static void on_idle(void *u)
{
    ((struct obs_log *)u)->idles++;
}

static void on_done(void *u, const struct eng_request_stats *s)
{
    struct obs_log *l = u;
    l->dones++;
    l->last_gen = s->gen_tokens;
}

/* The observer sees prefill begin/end around batches of more than one token only, and whatever
 * the generation loop reports through eng_notify_*. */
static void check_observer(struct eng_context *ctx, const int32_t *seq)
{
    struct obs_log log = {0};
    struct eng_observer obs = {.prefill_begin = on_begin,
                               .prefill_end = on_end,
                               .token = on_token,
                               .idle = on_idle,
                               .request_done = on_done};
    eng_set_observer(ctx, &obs, &log);
    eng_kv_clear(ctx);
    CHECK_EQ_INT(eng_decode(ctx, seq, 9), 0);
    CHECK_EQ_INT(log.begins, 1);
    CHECK_EQ_INT(log.ends, 1);
    CHECK_EQ_INT(log.last_n, 9);
    CHECK(log.last_dur_ns > 0);
    CHECK_EQ_INT(eng_decode(ctx, seq + 9, 1), 0);
    CHECK_EQ_INT(log.begins, 1);
    eng_notify_token(ctx, 42);
    eng_notify_idle(ctx);
    struct eng_request_stats st = {.prompt_tokens = 9, .gen_tokens = 1};
    eng_notify_request_done(ctx, &st);
    CHECK_EQ_INT(log.tokens, 1);
    CHECK_EQ_INT(log.last_token, 42);
    CHECK_EQ_INT(log.idles, 1);
    CHECK_EQ_INT(log.dones, 1);
    CHECK_EQ_INT(log.last_gen, 1);
    /* a refused batch reports nothing */
    static const int32_t zeros[1024];
    CHECK_EQ_INT(eng_decode(ctx, zeros, eng_n_ctx(ctx) - eng_kv_used(ctx) + 1), -ENOSPC);
    CHECK_EQ_INT(log.begins, 1);
    eng_set_observer(ctx, NULL, NULL);
    CHECK_EQ_INT(eng_decode(ctx, seq, 2), 0);
    CHECK_EQ_INT(log.begins, 1);
}

static void run_model(const cJSON *model, const char *key, int kv_f32, const char *models_dir)
{
    int quantized = strcmp(key, "Q8_0") == 0 || strcmp(key, "Q4_0") == 0;
    double tol = quantized ? 0.5 : kv_f32 ? 1e-3 : 5e-2;
    char label[64], path[1024], err[512];
    snprintf(label, sizeof(label), "%s/%s", key, kv_f32 ? "kv-f32" : "kv-f16");
    snprintf(path, sizeof(path), "%s/%s", models_dir,
             cJSON_GetObjectItem(model, "file")->valuestring);
    struct eng_model *m = NULL;
    int r = eng_model_load(path, NULL, &m, err, sizeof(err));
    CHECK_MSG(r == 0, "load %s: %s", path, err);
    if (r)
        return;
    struct eng_model_info info;
    eng_model_info(m, &info);
    CHECK_STR(info.arch, "llama");
    CHECK_EQ_INT(info.n_vocab, 512);
    CHECK_EQ_INT(info.n_layer, 5);
    CHECK_EQ_INT(info.n_head_kv, 4);
    CHECK(info.rope_freq_base == 10000.0f);
    CHECK_EQ_INT(info.bos_id, 1);
    CHECK_EQ_INT(info.eos_id, 2);
    CHECK_EQ_INT(info.n_ctx_train, 2048);
    CHECK(eng_model_vocab(m) != NULL);
    CHECK_STR(info.file_type, strcmp(key, "F32") == 0 ? "F32" : key);

    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = 512;
    cp.n_threads = 2;
    cp.logits_all = 1;
    cp.kv_f32 = kv_f32;
    struct eng_context *ctx = NULL;
    r = eng_context_new(m, &cp, &ctx, err, sizeof(err));
    CHECK_MSG(r == 0, "context: %s", err);
    if (r) {
        eng_model_free(m);
        return;
    }

    /* teacher-forced: the model's own BOS-greedy sequence as one prefill batch */
    const cJSON *bos = cJSON_GetObjectItem(model, "bos_greedy");
    int32_t seq[256];
    int n_ids = ids_from(cJSON_GetObjectItem(bos, "ids"), seq + 1, 255);
    seq[0] = 1;
    CHECK_EQ_INT(n_ids, 200);
    CHECK_EQ_INT(eng_decode(ctx, seq, (size_t)n_ids), 0);
    const cJSON *top5 = cJSON_GetObjectItem(model, "top5_at");
    const cJSON *pos_item;
    cJSON_ArrayForEach(pos_item, top5)
    {
        int pos = atoi(pos_item->string);
        const float *lg = eng_get_logits_ith(ctx, (size_t)pos);
        CHECK(lg != NULL);
        if (!lg)
            continue;
        int32_t ids[5];
        ids_from(cJSON_GetObjectItem(pos_item, "ids"), ids, 5);
        const cJSON *vals = cJSON_GetObjectItem(pos_item, "logits");
        CHECK_MSG(argmax(lg, 512) == ids[0], "%s pos %d: top-1 %d, want %d", label, pos,
                  argmax(lg, 512), ids[0]);
        double worst = 0;
        for (int i = 0; i < 5; i++) {
            double d = fabs(lg[ids[i]] - cJSON_GetArrayItem(vals, i)->valuedouble);
            worst = d > worst ? d : worst;
        }
        printf("%s pos %d: top-5 max|dlogit| %.3g (tol %g)\n", label, pos, worst, tol);
        CHECK_MSG(worst <= tol, "%s pos %d: top-5 logits off by %g", label, pos, worst);
    }
    const cJSON *full = cJSON_GetObjectItem(model, "logits_at");
    if (full) {
        cJSON_ArrayForEach(pos_item, full)
        {
            int pos = atoi(pos_item->string);
            const float *lg = eng_get_logits_ith(ctx, (size_t)pos);
            double worst = 0;
            int n = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, pos_item)
            {
                double d = fabs(lg[n] - v->valuedouble);
                worst = d > worst ? d : worst;
                n++;
            }
            CHECK_EQ_INT(n, 512);
            printf("%s pos %d: all logits max|dlogit| %.3g (tol %g)\n", label, pos, worst, tol);
            CHECK_MSG(worst <= tol, "%s pos %d: logits off by %g", label, pos, worst);
        }
    }

    /* the same sequence one token at a time, and split into odd batches, must agree with
     * the single prefill (same arithmetic, different scheduling) */
    static float ref_logits[200][512];
    for (int p = 0; p < n_ids; p++)
        memcpy(ref_logits[p], eng_get_logits_ith(ctx, (size_t)p), sizeof(ref_logits[p]));
    eng_kv_clear(ctx);
    double worst_step = 0;
    for (int p = 0; p < n_ids; p++) {
        CHECK_EQ_INT(eng_decode(ctx, &seq[p], 1), 0);
        const float *lg = eng_get_logits(ctx);
        for (int i = 0; i < 512; i++) {
            double d = fabs(lg[i] - ref_logits[p][i]);
            worst_step = d > worst_step ? d : worst_step;
        }
    }
    printf("%s: one-token decode vs prefill max|dlogit| %.3g\n", label, worst_step);
    CHECK(worst_step <= 1e-4);
    CHECK_EQ_INT(eng_kv_used(ctx), n_ids);
    /* trim to 37 positions and redo the rest in chunks of 23 */
    CHECK_EQ_INT(eng_kv_trim(ctx, 37), 0);
    CHECK_EQ_INT(eng_kv_trim(ctx, 38), -EINVAL);
    double worst_trim = 0;
    for (int p = 37; p < n_ids; p += 23) {
        int n = n_ids - p < 23 ? n_ids - p : 23;
        CHECK_EQ_INT(eng_decode(ctx, &seq[p], (size_t)n), 0);
        for (int t = 0; t < n; t++) {
            const float *lg = eng_get_logits_ith(ctx, (size_t)t);
            for (int i = 0; i < 512; i++) {
                double d = fabs(lg[i] - ref_logits[p + t][i]);
                worst_trim = d > worst_trim ? d : worst_trim;
            }
        }
    }
    printf("%s: trimmed and re-batched max|dlogit| %.3g\n", label, worst_trim);
    CHECK(worst_trim <= 1e-4);
    int32_t bad = 512;
    CHECK_EQ_INT(eng_decode(ctx, &bad, 1), -EINVAL);
    CHECK_EQ_INT(eng_decode(ctx, seq, 0), -EINVAL);

    check_observer(ctx, seq);
    check_greedy(ctx, bos, tol, label);
    const cJSON *prompt;
    int pi = 0;
    cJSON_ArrayForEach(prompt, cJSON_GetObjectItem(model, "prompts"))
    {
        char plabel[96];
        snprintf(plabel, sizeof(plabel), "%s prompt %d", label, pi++);
        check_greedy(ctx, prompt, tol, plabel);
    }
    eng_context_free(ctx);

    /* a small context: batches that do not fit are refused whole */
    cp.n_ctx = 16;
    cp.n_batch = 5;
    cp.logits_all = 0;
    r = eng_context_new(m, &cp, &ctx, err, sizeof(err));
    CHECK_MSG(r == 0, "small context: %s", err);
    if (!r) {
        CHECK_EQ_INT(eng_decode(ctx, seq, 17), -ENOSPC);
        CHECK_EQ_INT(eng_kv_used(ctx), 0);
        CHECK_EQ_INT(eng_decode(ctx, seq, 16), 0);
        /* split into batches of 5 internally; last logits equal the big context's */
        double d = 0;
        for (int i = 0; i < 512; i++)
            d = fmax(d, fabs(eng_get_logits(ctx)[i] - ref_logits[15][i]));
        CHECK(d <= 1e-4);
        CHECK_EQ_INT(eng_decode(ctx, seq, 1), -ENOSPC);
        CHECK_EQ_INT(eng_kv_trim(ctx, 15), 0);
        CHECK_EQ_INT(eng_decode(ctx, seq + 15, 1), 0);
        eng_context_free(ctx);
    }
    eng_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s F32|F16|Q8_0|Q4_0\n", argv[0]);
        return 2;
    }
    char path[1024], models_dir[1024];
    snprintf(path, sizeof(path), "%s/vectors/stories260K.json", et_shared_dir());
    snprintf(models_dir, sizeof(models_dir), "%s/models", et_shared_dir());
    cJSON *j = load_json(path);
    if (!j) {
        fprintf(stderr, "cannot read %s\n", path);
        return ET_SKIP;
    }
    printf("cpu: %s\n", eng_cpu_features_string());
    /* a forced kernel set this CPU or build cannot run is skipped, by name, never passed */
    const char *forced = getenv("EMBER_KERNELS"),
               *running = strstr(eng_cpu_features_string(), "kernels: ");
    if (forced && (!running || strcmp(running + 9, forced) != 0)) {
        printf("SKIPPED: EMBER_KERNELS=%s: this CPU or build cannot run those kernels (%s)\n",
               forced, eng_cpu_features_string());
        cJSON_Delete(j);
        return ET_SKIP;
    }
    const cJSON *model = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "models"), argv[1]);
    CHECK_MSG(model != NULL, "no model %s in the vectors", argv[1]);
    if (strcmp(argv[1], "F32") == 0) {
        /* vocab-only load of a tokenizer GGUF: no tensors needed, no context possible */
        char vpath[1024], err[256];
        snprintf(vpath, sizeof(vpath), "%s/vectors/tokenizer/ggml-vocab-llama-spm.gguf",
                 et_shared_dir());
        struct eng_model_params mp;
        eng_model_params_defaults(&mp);
        mp.vocab_only = 1;
        struct eng_model *vm = NULL;
        int r = eng_model_load(vpath, &mp, &vm, err, sizeof(err));
        CHECK_MSG(r == 0, "%s", err);
        if (!r) {
            CHECK(eng_model_vocab(vm) != NULL);
            struct eng_context *vc = NULL;
            CHECK_EQ_INT(eng_context_new(vm, NULL, &vc, err, sizeof(err)), -EINVAL);
            CHECK_CONTAINS(err, "vocab-only");
        }
        eng_model_free(vm);
        /* the same file as a full model: the first missing key is named */
        CHECK_EQ_INT(eng_model_load(vpath, NULL, &vm, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, "token_embd.weight");
        CHECK_EQ_INT(eng_model_load("/nonexistent.gguf", NULL, &vm, err, sizeof(err)), -ENOENT);
        CHECK_CONTAINS(err, "/nonexistent.gguf");
    }
    if (model) {
        run_model(model, argv[1], 1, models_dir);
        run_model(model, argv[1], 0, models_dir);
    }
    cJSON_Delete(j);
    return et_finish();
}
