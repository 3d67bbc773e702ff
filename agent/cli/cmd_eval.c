/* `ember eval -m MODEL [--ref REF] --text FILE`: how much accuracy a (quantized) model keeps.
 * The text is tokenized with MODEL's vocabulary and cut into chunks of --ctx tokens, each
 * starting at BOS; every chunk is run teacher-forced (all logits of the chunk from one batch),
 * and every position predicts the next token of the text. Reports the perplexity
 * exp(mean negative log-likelihood); with a reference model run over the very same tokens, also
 * the mean KL divergence KL(ref || model) of the next-token distributions and the fraction of
 * positions where both models' most likely token agree (top-1 agreement). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "common/fileio.h"
#include "config.h"
#include "engine/engine.h"
#include "engine/quantize.h"
#include "engine/tokenizer.h"
#include "log.h"

#define EVAL_MAX_TEXT ((size_t)64 << 20)

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: ember eval -m MODEL --text FILE [--ref REF_MODEL] [--ctx N] [--threads N]\n"
            "                  [--json]\n"
            "\n"
            "Measures a model's accuracy on a text: perplexity over every next-token\n"
            "prediction (teacher-forced, in chunks of N tokens each starting at BOS). With\n"
            "--ref, the reference (e.g. the F32 original) runs over the same tokens, and the\n"
            "mean KL divergence KL(ref || model) of the next-token distributions and the\n"
            "top-1 agreement (positions where both predict the same most likely token) are\n"
            "reported too. See docs/quantization.md.\n"
            "\n"
            "  -m, --model FILE     the GGUF model to evaluate (default: [engine] model)\n"
            "  -r, --ref FILE       reference GGUF model (same vocabulary)\n"
            "  -f, --text FILE      UTF-8 text to evaluate on\n"
            "  -c, --ctx N          tokens per chunk, BOS included (default 512, at most the\n"
            "                       model's training context)\n"
            "      --max-tokens N   evaluate at most N tokens of the text (default: all)\n"
            "  -t, --threads N      worker threads (default: online CPUs)\n"
            "      --json           one JSON object instead of text\n"
            "      --config FILE    configuration file (default " EMBER_DEFAULT_CONFIG ")\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit codes: 0 ok, 1 model, text or decode failure, 2 usage error.\n");
}

enum { OPT_JSON = 256, OPT_MAX_TOKENS, OPT_CONFIG };

struct eval_run {
    struct eng_model *model;
    struct eng_context *ctx;
    int32_t n_vocab;
};

static int open_run(const char *path, uint32_t n_ctx, uint32_t threads, struct eval_run *ret)
{
    char err[512];
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    int r = eng_model_load(path, &mp, &ret->model, err, sizeof(err));
    if (r < 0) {
        log_err("%s", err);
        return r;
    }
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_threads = threads;
    cp.logits_all = 1;
    r = eng_context_new(ret->model, &cp, &ret->ctx, err, sizeof(err));
    if (r < 0) {
        log_err("%s: %s", path, err);
        return r;
    }
    ret->n_vocab = eng_n_vocab(ret->ctx);
    return 0;
}

static void close_run(struct eval_run *r)
{
    eng_context_free(r->ctx);
    eng_model_free(r->model);
}

/* log-softmax of x into y; returns the argmax */
static int32_t log_softmax(const float *x, double *y, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    double s = 0;
    for (int32_t i = 0; i < n; i++)
        s += exp((double)x[i] - (double)x[best]);
    double lse = (double)x[best] + log(s > 0 ? s : 1.0); /* s >= 1: the maximum adds exp(0) */
    for (int32_t i = 0; i < n; i++)
        y[i] = (double)x[i] - lse;
    return best;
}

static int read_text(const char *path, char **ret, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_err("--text: cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(EVAL_MAX_TEXT + 1);
    size_t n = buf ? fread(buf, 1, EVAL_MAX_TEXT + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > EVAL_MAX_TEXT) {
        log_err("--text: cannot read %s%s", path, n > EVAL_MAX_TEXT ? " (larger than 64 MiB)" : "");
        free(buf);
        return -EIO;
    }
    *ret = buf;
    *ret_len = n;
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"ref", required_argument, NULL, 'r'},
        {"text", required_argument, NULL, 'f'},
        {"ctx", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"config", required_argument, NULL, OPT_CONFIG},
        {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL, *ref_path = NULL, *text_path = NULL, *config = NULL;
    int64_t n_ctx = 512, threads = 0, max_tokens = 0;
    bool json = false;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":m:r:f:c:t:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm':
            model_path = optarg;
            break;
        case 'r':
            ref_path = optarg;
            break;
        case 'f':
            text_path = optarg;
            break;
        case 'c':
            if (cli_parse_int("--ctx", optarg, 8, 65536, &n_ctx))
                return EMBER_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &threads))
                return EMBER_EXIT_USAGE;
            break;
        case OPT_MAX_TOKENS:
            if (cmn_parse_i64(optarg, &max_tokens) < 0 || max_tokens < 2)
                return cli_usage_error("--max-tokens: '%s' is not an integer >= 2", optarg);
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        case 'h':
            eval_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    /* the configuration is checked like every other command's, even when -m makes it unused */
    static struct agent_config cfg;
    if (agent_config_load_for_cli(config, &cfg))
        return EMBER_EXIT_USAGE;
    if (!model_path && cfg.engine.model[0])
        model_path = cfg.engine.model;
    if (!model_path)
        return cli_usage_error(
            "no model: give -m FILE, or set [engine] model in the configuration");
    if (!text_path)
        return cli_usage_error("--text FILE is required");

    int rc = EMBER_EXIT_FAILURE;
    struct eval_run m = {0}, ref = {0};
    char *text = NULL;
    int32_t *ids = NULL;
    double *lp = NULL, *lq = NULL;
    size_t len = 0, n_ids = 0;
    if (read_text(text_path, &text, &len) < 0)
        goto out;

    /* the context may not exceed the model's training length */
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.vocab_only = 1;
    {
        struct eng_model *probe = NULL;
        char err[512];
        if (eng_model_load(model_path, &mp, &probe, err, sizeof(err)) < 0) {
            log_err("%s", err);
            goto out;
        }
        struct eng_model_info info;
        eng_model_info(probe, &info);
        eng_model_free(probe);
        if (info.n_ctx_train > 0 && n_ctx > info.n_ctx_train)
            n_ctx = info.n_ctx_train;
    }
    if (open_run(model_path, (uint32_t)n_ctx, (uint32_t)threads, &m) < 0)
        goto out;
    if (ref_path && open_run(ref_path, (uint32_t)n_ctx, (uint32_t)threads, &ref) < 0)
        goto out;
    if (ref_path && ref.n_vocab != m.n_vocab) {
        log_err("%s has %d tokens in its output, %s has %d: not the same vocabulary", ref_path,
                ref.n_vocab, model_path, m.n_vocab);
        goto out;
    }
    const struct eng_vocab *vocab = eng_model_vocab(m.model);
    if (!vocab) {
        log_err("%s has no tokenizer", model_path);
        goto out;
    }
    ids = malloc((len + 16) * sizeof(*ids));
    if (!ids || eng_tokenize(vocab, text, len, false, false, ids, len + 16, &n_ids) < 0) {
        log_err("%s: tokenization failed", text_path);
        goto out;
    }
    if (max_tokens > 0 && n_ids > (size_t)max_tokens)
        n_ids = (size_t)max_tokens;
    if (n_ids < 2) {
        log_err("%s: %zu tokens; at least 2 are needed for one prediction", text_path, n_ids);
        goto out;
    }
    int32_t bos = eng_vocab_bos(vocab);
    lp = malloc((size_t)m.n_vocab * sizeof(*lp));
    lq = malloc((size_t)m.n_vocab * sizeof(*lq));
    int32_t *chunk = malloc((size_t)n_ctx * sizeof(*chunk));
    if (!lp || !lq || !chunk) {
        free(chunk);
        goto out;
    }
    /* each chunk: [BOS] + text tokens; position i predicts chunk[i + 1]. Consecutive chunks
     * overlap by one token so every text token after the first is predicted exactly once. */
    size_t per = (size_t)n_ctx - (bos >= 0 ? 1 : 0);
    double nll = 0, kl = 0, ref_nll = 0;
    size_t n_pred = 0, agree = 0, n_chunks = 0;
    bool tty = isatty(STDERR_FILENO);
    for (size_t at = 0; at + 1 < n_ids; at += per - 1) {
        size_t k = 0, take = n_ids - at < per ? n_ids - at : per;
        if (bos >= 0)
            chunk[k++] = bos;
        memcpy(chunk + k, ids + at, take * sizeof(*chunk));
        size_t first = k; /* logits of chunk[first - 1 ...] predict the text tokens */
        k += take;
        eng_kv_clear(m.ctx);
        if (eng_decode(m.ctx, chunk, k) < 0) {
            log_err("%s: decode failed", model_path);
            free(chunk);
            goto out;
        }
        if (ref_path) {
            eng_kv_clear(ref.ctx);
            if (eng_decode(ref.ctx, chunk, k) < 0) {
                log_err("%s: decode failed", ref_path);
                free(chunk);
                goto out;
            }
        }
        /* predictions of chunk[first + 1 ..] (the first text token of a chunk after the
         * first was predicted by the previous chunk; the very first is not predicted) */
        for (size_t i = first; i + 1 < k; i++) {
            int32_t next = chunk[i + 1];
            int32_t top_m = log_softmax(eng_get_logits_ith(m.ctx, i), lq, m.n_vocab);
            nll -= lq[next];
            if (ref_path) {
                int32_t top_r = log_softmax(eng_get_logits_ith(ref.ctx, i), lp, m.n_vocab);
                ref_nll -= lp[next];
                double d = 0;
                for (int32_t v = 0; v < m.n_vocab; v++)
                    d += exp(lp[v]) * (lp[v] - lq[v]);
                kl += d > 0 ? d : 0;
                agree += top_m == top_r;
            }
            n_pred++;
        }
        n_chunks++;
        if (tty && !json)
            fprintf(stderr, "\revaluating: %3.0f%%", 100.0 * (double)(at + take) / (double)n_ids);
        if (at + take >= n_ids)
            break;
    }
    free(chunk);
    if (tty && !json)
        fputc('\n', stderr);
    if (n_pred == 0) {
        log_err("no predictions were made (text too short for --ctx %lld)", (long long)n_ctx);
        goto out;
    }
    double ppl = exp(nll / (double)n_pred);
    char plan[256] = "";
    eng_model_quant_plan(m.model, plan, sizeof(plan));
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", model_path);
        if (plan[0])
            cJSON_AddStringToObject(j, "quantize_plan", plan);
        cJSON_AddNumberToObject(j, "tokens", (double)n_pred);
        cJSON_AddNumberToObject(j, "ctx", (double)n_ctx);
        cJSON_AddNumberToObject(j, "chunks", (double)n_chunks);
        cJSON_AddNumberToObject(j, "perplexity", ppl);
        if (ref_path) {
            cJSON_AddStringToObject(j, "ref", ref_path);
            cJSON_AddNumberToObject(j, "ref_perplexity", exp(ref_nll / (double)n_pred));
            cJSON_AddNumberToObject(j, "kl_divergence", kl / (double)n_pred);
            cJSON_AddNumberToObject(j, "top1_agreement", (double)agree / (double)n_pred);
        }
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("model %s%s%s%s\n", model_path, plan[0] ? " (" : "", plan, plan[0] ? ")" : "");
        printf("tokens %zu predicted in %zu chunk(s) of up to %lld\n", n_pred, n_chunks,
               (long long)n_ctx);
        printf("perplexity %.4f\n", ppl);
        if (ref_path) {
            printf("reference %s: perplexity %.4f\n", ref_path, exp(ref_nll / (double)n_pred));
            printf("KL divergence (ref || model) mean %.6f\n", kl / (double)n_pred);
            printf("top-1 agreement %.2f%% (%zu of %zu)\n", 100.0 * (double)agree / (double)n_pred,
                   agree, n_pred);
        }
    }
    rc = EMBER_EXIT_OK;
out:
    free(lp);
    free(lq);
    free(ids);
    free(text);
    close_run(&ref);
    close_run(&m);
    return rc;
}
