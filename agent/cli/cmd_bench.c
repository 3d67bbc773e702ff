/* `ember bench`: the engine's speed on one model, measured the way llama.cpp's llama-bench
 * measures it so the two can be compared line by line. The model is loaded once; for each
 * thread count a context is created and, per repetition, n_prompt random token ids are prefilled
 * in one eng_decode call (prompt tokens/s; the time to first token adds the decode step of the
 * first generated token), then from an empty cache n_gen tokens are decoded one at a time,
 * feeding back the argmax (generation tokens/s). Reports mean ± sample standard deviation, peak
 * resident memory and generation as a percent of the memory-bandwidth roofline (bytes a decode
 * step reads ÷ the read bandwidth measured here, see membw.h). Human table or JSON Lines. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "common/fileio.h"
#include "common/timeutil.h"
#include "config.h"
#include "engine/engine.h"
#include "engine/quantize.h"
#include "log.h"
#include "membw.h"

#define BENCH_MAX_LIST    64    /* entries of -t and --bandwidth */
#define BENCH_MAX_THREADS 256   /* the engine's own cap */
#define BENCH_MAX_TOKENS  65536 /* -p and -n: the engine's largest batch */
#define BENCH_MAX_REPS    1000
#define BENCH_TOKEN_SEED  42 /* the same "random" prompt every run */

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: ember bench -m MODEL [-p 512] [-n 128] [-t 1,2] [-r 5] [--json]\n"
            "\n"
            "Measures prompt processing and generation speed the way llama-bench does: for each\n"
            "thread count and repetition, N_PROMPT random tokens are prefilled in one batch\n"
            "(pp), then from an empty cache N_GEN tokens are decoded one at a time (tg).\n"
            "Prints mean ± standard deviation in tokens/s, the time to first token (prefill\n"
            "and the first generated token's decode step), peak resident memory, and\n"
            "generation as a percent of the memory-bandwidth roofline (memory read bandwidth,\n"
            "measured first, ÷ the weight bytes a decode step reads). See docs/performance.md.\n"
            "\n"
            "  -m, --model FILE           GGUF model (default: [engine] model)\n"
            "  -p, --n-prompt N           prompt tokens per prefill (0 = no pp test; default 512)\n"
            "  -n, --n-gen N              generated tokens (0 = no tg test; default 128)\n"
            "  -t, --threads LIST         comma-separated thread counts (default 1,2)\n"
            "  -r, --repetitions N        repetitions per test (default 5)\n"
            "      --bandwidth GBPS[,..]  memory read bandwidth in GB/s instead of measuring it:\n"
            "                             one value, or one per thread count\n"
            "      --json                 one JSON object per thread count (JSON Lines)\n"
            "      --graph                print the compute graph's op count and planned\n"
            "                             activation memory (N_PROMPT tokens) before and after\n"
            "                             fusion, then exit\n"
            "      --no-fusion            run the unfused graph (to measure what fusion gains)\n"
            "      --mmap                 compute on the file mapping instead of a packed copy\n"
            "                             (default: [engine] mmap)\n"
            "      --config FILE          configuration file (default " EMBER_DEFAULT_CONFIG ")\n"
            "  -h, --help                 this text\n"
            "\n"
            "Exit codes: 0 ok, 1 model load or decode failure, 2 usage error.\n");
}

enum { OPT_JSON = 256, OPT_BANDWIDTH, OPT_CONFIG, OPT_GRAPH, OPT_NO_FUSION, OPT_MMAP };

struct bench_opts {
    const char *model;
    const char *config;
    int64_t n_prompt, n_gen, reps;
    uint32_t threads[BENCH_MAX_LIST];
    size_t n_threads;
    double bandwidth[BENCH_MAX_LIST]; /* GB/s given with --bandwidth */
    size_t n_bandwidth;
    bool json, graph, no_fusion, mmap;
};

/* What one thread count measured; NAN where the test did not run. */
struct bench_result {
    uint32_t threads;
    double pp_mean, pp_sd, tg_mean, tg_sd; /* tokens/s */
    double ttft_ms, ttft_sd_ms;
    double bandwidth_gbps, roofline_tps, roofline_pct;
    double peak_rss_mib;
};

/* A comma-separated list of integers in [min, max] (is_int) or positive numbers up to max. */
static int parse_list(const char *flag, const char *s, bool is_int, double max, double *out,
                      size_t *ret_n)
{
    char buf[1024];
    size_t n = 0;
    if (strlen(s) >= sizeof(buf) || !*s) {
        cli_usage_error("%s: '%s': give a comma-separated list", flag, s);
        return -EINVAL;
    }
    strcpy(buf, s);
    char *rest = buf, *item;
    /* strtok_r would skip empty items ("1,,2"); strsep keeps them so they are reported */
    while ((item = strsep(&rest, ",")) != NULL) {
        int64_t iv = 0;
        double dv = 0;
        bool ok = is_int ? cmn_parse_i64(item, &iv) == 0 && iv >= 1 && iv <= (int64_t)max
                         : cmn_parse_double(item, &dv) == 0 && dv > 0 && dv <= max;
        if (!ok) {
            if (is_int)
                cli_usage_error("%s: '%s' in '%s' is not an integer in [1, %.0f]", flag, item, s,
                                max);
            else
                cli_usage_error("%s: '%s' in '%s' is not a number in (0, %.0f]", flag, item, s,
                                max);
            return -EINVAL;
        }
        if (n == BENCH_MAX_LIST) {
            cli_usage_error("%s: at most %d values", flag, BENCH_MAX_LIST);
            return -EINVAL;
        }
        out[n++] = is_int ? (double)iv : dv;
    }
    *ret_n = n;
    return 0;
}

/* 0 to run, 1 after --help, -EINVAL on a usage error (already reported). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"repetitions", required_argument, NULL, 'r'},
        {"bandwidth", required_argument, NULL, OPT_BANDWIDTH},
        {"json", no_argument, NULL, OPT_JSON},
        {"graph", no_argument, NULL, OPT_GRAPH},
        {"no-fusion", no_argument, NULL, OPT_NO_FUSION},
        {"mmap", no_argument, NULL, OPT_MMAP},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double list[BENCH_MAX_LIST];
    int opt, rc = 0;
    o->n_prompt = 512;
    o->n_gen = 128;
    o->reps = 5;
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->n_threads = 2;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:p:n:t:r:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm':
            o->model = optarg;
            break;
        case 'p':
            rc |= cli_parse_int("-p", optarg, 0, BENCH_MAX_TOKENS, &o->n_prompt);
            break;
        case 'n':
            rc |= cli_parse_int("-n", optarg, 0, BENCH_MAX_TOKENS, &o->n_gen);
            break;
        case 'r':
            rc |= cli_parse_int("-r", optarg, 1, BENCH_MAX_REPS, &o->reps);
            break;
        case 't':
            if (parse_list("-t", optarg, true, BENCH_MAX_THREADS, list, &o->n_threads) < 0) {
                rc = -EINVAL;
                break;
            }
            for (size_t i = 0; i < o->n_threads; i++)
                o->threads[i] = (uint32_t)list[i];
            break;
        case OPT_BANDWIDTH:
            rc |= parse_list("--bandwidth", optarg, false, 1e6, o->bandwidth, &o->n_bandwidth);
            break;
        case OPT_GRAPH:
            o->graph = true;
            break;
        case OPT_NO_FUSION:
            o->no_fusion = true;
            break;
        case OPT_MMAP:
            o->mmap = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_CONFIG:
            o->config = optarg;
            break;
        case 'h':
            bench_usage(stdout);
            return 1;
        default:
            cli_option_error(opt, argv);
            return -EINVAL;
        }
    }
    if (rc)
        return -EINVAL;
    if (optind < argc) {
        cli_usage_error("unexpected argument '%s'", argv[optind]);
        return -EINVAL;
    }
    if (o->n_prompt == 0 && o->n_gen == 0) {
        cli_usage_error("-p 0 and -n 0 leave nothing to measure");
        return -EINVAL;
    }
    if (o->n_bandwidth > 1 && o->n_bandwidth != o->n_threads) {
        cli_usage_error("--bandwidth: %zu values for %zu thread counts (give one, or one per "
                        "thread count)",
                        o->n_bandwidth, o->n_threads);
        return -EINVAL;
    }
    if (o->config || access(EMBER_DEFAULT_CONFIG, F_OK) == 0) {
        struct agent_config cfg;
        if (agent_config_load_for_cli(o->config, &cfg))
            return -EINVAL;
        if (!o->model && cfg.engine.model[0])
            o->model = strdup(cfg.engine.model); /* lives for the process */
        o->mmap = o->mmap || cfg.engine.mmap;
    }
    if (!o->model) {
        log_err("no model: give -m FILE (or set [engine] model)");
        return -EINVAL;
    }
    return 0;
}

/* ---- measuring ---- */

static int on_progress(float fraction, void *user)
{
    fprintf(stderr, "\rloading %s: %3.0f%%", (const char *)user, fraction * 100.0f);
    if (fraction >= 1.0f)
        fputc('\n', stderr);
    return 0;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void mean_sd(const double *x, int64_t n, double *ret_mean, double *ret_sd)
{
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++)
        sum += x[i];
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++)
        sq += (x[i] - mean) * (x[i] - mean);
    *ret_mean = mean;
    *ret_sd = n > 1 ? sqrt(sq / (double)(n - 1)) : 0.0;
}

/* VmHWM, the high-water mark of this process image's resident memory. (getrusage's ru_maxrss
 * would do but for one thing: Linux carries it over exec, so a bench started from a large
 * parent, a Python script say, would report at least the parent's size.) */
static double peak_rss_mib(void)
{
    char buf[16384];
    size_t len;
    const char *p = NULL;
    if (cmn_read_file("/proc/self/status", buf, sizeof(buf), &len) == 0)
        p = strstr(buf, "VmHWM:");
    if (p)
        return strtod(p + 6, NULL) / 1024.0; /* kB */
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return NAN;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

/* One decode step of token tok; reports a failure with where it happened. */
static int decode_one(struct eng_context *ctx, int32_t tok, const char *what)
{
    int rc = eng_decode(ctx, &tok, 1);
    if (rc < 0)
        log_err("%s: decode of token %d at position %zu failed: %s", what, (int)tok,
                eng_kv_used(ctx), strerror(-rc));
    return rc;
}

/* Every test of one thread count; fills r (times only). toks holds n_prompt + 1 ids. */
static int bench_threads(const struct eng_model *model, const struct eng_model_info *info,
                         const struct bench_opts *o, const int32_t *toks, struct bench_result *r)
{
    struct eng_context *ctx = NULL;
    double *pp = calloc((size_t)o->reps, sizeof(double));
    double *tg = calloc((size_t)o->reps, sizeof(double));
    double *ttft = calloc((size_t)o->reps, sizeof(double));
    char err[512];
    int rc = -ENOMEM;
    if (!pp || !tg || !ttft) {
        log_err("out of memory");
        goto fail;
    }
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_threads = r->threads;
    cp.n_ctx = (uint32_t)(o->n_prompt + o->n_gen + 1);
    cp.n_batch = (uint32_t)(o->n_prompt > 0 ? o->n_prompt : 1); /* the prompt in one step */
    cp.no_fusion = o->no_fusion;
    rc = eng_context_new(model, &cp, &ctx, err, sizeof(err));
    if (rc < 0) {
        log_err("%s", err);
        goto fail;
    }

    /* warm-up as llama-bench: one prefill and one decode step, untimed */
    if (o->n_prompt > 0 && (rc = eng_decode(ctx, toks, (size_t)o->n_prompt)) < 0) {
        log_err("prefill of %lld tokens with %u threads failed: %s", (long long)o->n_prompt,
                r->threads, strerror(-rc));
        goto fail;
    }
    if (o->n_gen > 0 && (rc = decode_one(ctx, toks[o->n_prompt], "warm-up")) < 0)
        goto fail;

    for (int64_t rep = 0; rep < o->reps; rep++) {
        if (o->n_prompt > 0) {
            eng_kv_clear(ctx);
            uint64_t t0 = cmn_now_ns();
            rc = eng_decode(ctx, toks, (size_t)o->n_prompt);
            if (rc < 0) {
                log_err("prefill of %lld tokens with %u threads failed: %s", (long long)o->n_prompt,
                        r->threads, strerror(-rc));
                goto fail;
            }
            uint64_t t1 = cmn_now_ns();
            int32_t first = argmax(eng_get_logits(ctx), info->n_vocab);
            if ((rc = decode_one(ctx, first, "first token")) < 0)
                goto fail;
            uint64_t t2 = cmn_now_ns();
            pp[rep] = (double)o->n_prompt * 1e9 / (double)(t1 - t0);
            ttft[rep] = (double)(t2 - t0) / 1e6;
        }
        if (o->n_gen > 0) {
            /* from an empty cache, as llama-bench's tg test */
            eng_kv_clear(ctx);
            int32_t tok = toks[o->n_prompt];
            uint64_t t0 = cmn_now_ns();
            for (int64_t i = 0; i < o->n_gen; i++) {
                if ((rc = decode_one(ctx, tok, "generation")) < 0)
                    goto fail;
                tok = argmax(eng_get_logits(ctx), info->n_vocab);
            }
            tg[rep] = (double)o->n_gen * 1e9 / (double)(cmn_now_ns() - t0);
        }
    }
    r->pp_mean = r->pp_sd = r->ttft_ms = r->ttft_sd_ms = NAN;
    r->tg_mean = r->tg_sd = NAN;
    if (o->n_prompt > 0) {
        mean_sd(pp, o->reps, &r->pp_mean, &r->pp_sd);
        mean_sd(ttft, o->reps, &r->ttft_ms, &r->ttft_sd_ms);
    }
    if (o->n_gen > 0)
        mean_sd(tg, o->reps, &r->tg_mean, &r->tg_sd);
    r->peak_rss_mib = peak_rss_mib();
    rc = 0;
fail:
    eng_context_free(ctx);
    free(pp);
    free(tg);
    free(ttft);
    return rc;
}

/* ---- output ---- */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A number rounded to `decimals` places, or null when it was not measured. */
static void json_num(cJSON *obj, const char *key, double v, int decimals)
{
    if (!isfinite(v)) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    double scale = pow(10.0, decimals);
    cJSON_AddNumberToObject(obj, key, round(v * scale) / scale);
}

static int print_json(const struct bench_opts *o, const struct eng_model_info *info, double load_ms,
                      const struct bench_result *r)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return -ENOMEM;
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "arch", info->arch);
    cJSON_AddStringToObject(j, "type", info->file_type);
    cJSON_AddNumberToObject(j, "n_params", (double)info->n_params);
    cJSON_AddNumberToObject(j, "size_bytes", (double)info->size_bytes);
    cJSON_AddNumberToObject(j, "stream_bytes", (double)info->stream_bytes);
    cJSON_AddNumberToObject(j, "threads", r->threads);
    cJSON_AddNumberToObject(j, "n_prompt", (double)o->n_prompt);
    cJSON_AddNumberToObject(j, "n_gen", (double)o->n_gen);
    cJSON_AddNumberToObject(j, "repetitions", (double)o->reps);
    json_num(j, "pp_tokens_per_s", r->pp_mean, 3);
    json_num(j, "pp_stddev", r->pp_sd, 3);
    json_num(j, "tg_tokens_per_s", r->tg_mean, 3);
    json_num(j, "tg_stddev", r->tg_sd, 3);
    json_num(j, "ttft_ms", r->ttft_ms, 3);
    json_num(j, "ttft_stddev_ms", r->ttft_sd_ms, 3);
    json_num(j, "peak_rss_mb", r->peak_rss_mib, 2);
    json_num(j, "roofline_pct", r->roofline_pct, 2);
    json_num(j, "roofline_tokens_per_s", r->roofline_tps, 2);
    json_num(j, "bandwidth_gbps", r->bandwidth_gbps, 2);
    json_num(j, "load_ms", load_ms, 2);
    cJSON_AddStringToObject(j, "kernels", eng_cpu_features_string());
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!line)
        return -ENOMEM;
    puts(line);
    fflush(stdout);
    free(line);
    return 0;
}

/* The human table, llama-bench's layout: one row per thread count and test. */
static const struct bench_column {
    const char *title;
    int width;
    bool left;
} bench_columns[] = {
    {"model", 24, true},       {"type", 6, true},           {"threads", 7, false},
    {"test", 7, false},        {"t/s", 18, false},          {"TTFT ms", 10, false},
    {"roofline %", 10, false}, {"peak RSS MiB", 12, false},
};
#define BENCH_N_COLUMNS (sizeof(bench_columns) / sizeof(bench_columns[0]))

/* Pads by characters, not bytes ("±" is two bytes of UTF-8). */
static void print_cell(const char *s, const struct bench_column *c)
{
    int chars = 0;
    for (const char *p = s; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    int pad = c->width > chars ? c->width - chars : 0;
    printf(" %*s%s%*s |", c->left ? 0 : pad, "", s, c->left ? pad : 0, "");
}

static void print_row(const char *const cells[BENCH_N_COLUMNS])
{
    putchar('|');
    for (size_t i = 0; i < BENCH_N_COLUMNS; i++)
        print_cell(cells[i], &bench_columns[i]);
    putchar('\n');
}

static void print_header(const struct bench_opts *o, const struct eng_model_info *info,
                         double load_ms, const struct bench_result *res)
{
    printf("model: %s (%s %s, %.1fM parameters, %.2f MiB; a decode step reads %.2f MiB)\n",
           o->model, info->arch, info->file_type, (double)info->n_params / 1e6,
           (double)info->size_bytes / 1048576.0, (double)info->stream_bytes / 1048576.0);
    printf("cpu: %s\n", eng_cpu_features_string());
    printf("memory read bandwidth (%s):", o->n_bandwidth ? "given" : "measured");
    for (size_t i = 0; i < o->n_threads; i++) {
        if (isfinite(res[i].bandwidth_gbps))
            printf("%s %.1f GB/s with %u thread%s", i ? "," : "", res[i].bandwidth_gbps,
                   res[i].threads, res[i].threads == 1 ? "" : "s");
        else
            printf("%s unknown with %u threads", i ? "," : "", res[i].threads);
    }
    printf("\nload: %.1f ms; %lld repetitions\n\n", load_ms, (long long)o->reps);
    const char *titles[BENCH_N_COLUMNS];
    char rules[BENCH_N_COLUMNS][32];
    for (size_t i = 0; i < BENCH_N_COLUMNS; i++) {
        const struct bench_column *c = &bench_columns[i];
        titles[i] = c->title;
        memset(rules[i], '-', (size_t)c->width);
        rules[i][c->width] = '\0';
        if (!c->left)
            rules[i][c->width - 1] = ':'; /* markdown: right-aligned */
    }
    print_row(titles);
    const char *rule_cells[BENCH_N_COLUMNS];
    for (size_t i = 0; i < BENCH_N_COLUMNS; i++)
        rule_cells[i] = rules[i];
    print_row(rule_cells);
    fflush(stdout);
}

static void print_rows(const struct bench_opts *o, const struct eng_model_info *info,
                       const struct bench_result *r)
{
    char threads[16], test[32], tps[48], ttft[24], roof[24], rss[24];
    snprintf(threads, sizeof(threads), "%u", r->threads);
    snprintf(rss, sizeof(rss), "%.1f", r->peak_rss_mib);
    for (int k = 0; k < 2; k++) {
        bool is_pp = k == 0;
        int64_t n = is_pp ? o->n_prompt : o->n_gen;
        if (n == 0)
            continue;
        snprintf(test, sizeof(test), "%s%lld", is_pp ? "pp" : "tg", (long long)n);
        snprintf(tps, sizeof(tps), "%.2f ± %.2f", is_pp ? r->pp_mean : r->tg_mean,
                 is_pp ? r->pp_sd : r->tg_sd);
        snprintf(ttft, sizeof(ttft), "%.2f", r->ttft_ms);
        snprintf(roof, sizeof(roof), "%.1f", r->roofline_pct);
        const char *cells[BENCH_N_COLUMNS] = {
            base_name(o->model),
            info->file_type,
            threads,
            test,
            tps,
            is_pp ? ttft : "",
            !is_pp && isfinite(r->roofline_pct) ? roof : "",
            rss,
        };
        print_row(cells);
    }
    fflush(stdout);
}

/* --graph: the fused graph against the unfused one, for a context of N_PROMPT tokens. */
static int print_graph(const struct eng_model *model, const struct eng_model_info *info,
                       const struct bench_opts *o)
{
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_threads = o->threads[0];
    cp.n_ctx = (uint32_t)(o->n_prompt + o->n_gen + 1);
    cp.n_batch = (uint32_t)(o->n_prompt > 0 ? o->n_prompt : 1);
    struct eng_context *ctx = NULL;
    char err[512];
    int rc = eng_context_new(model, &cp, &ctx, err, sizeof(err));
    if (rc < 0) {
        log_err("%s", err);
        return rc;
    }
    struct eng_graph_stats g;
    eng_graph_stats(ctx, &g);
    eng_context_free(ctx);
    double mib = 1.0 / (1 << 20),
           saved = 100.0 * (1.0 - (double)g.act_bytes_fused / (double)g.act_bytes_unfused);
    if (o->json) {
        printf("{\"model\":\"%s\",\"type\":\"%s\",\"n_layer\":%d,\"n_batch\":%u,"
               "\"ops_unfused\":%d,\"ops_fused\":%d,\"tensors_unfused\":%d,"
               "\"tensors_fused\":%d,\"activation_bytes_unfused\":%zu,"
               "\"activation_bytes_fused\":%zu,\"scratch_bytes\":%zu}\n",
               info->name[0] ? info->name : o->model, info->file_type, info->n_layer, cp.n_batch,
               g.ops_unfused, g.ops_fused, g.tensors_unfused, g.tensors_fused, g.act_bytes_unfused,
               g.act_bytes_fused, g.scratch_bytes);
        return 0;
    }
    printf("compute graph of %s (%s, %d layers) for %u tokens per step\n", o->model,
           info->file_type, info->n_layer, cp.n_batch);
    printf("%-22s %10s %10s\n", "", "unfused", "fused");
    printf("%-22s %10d %10d  (%.0f %% fewer)\n", "ops", g.ops_unfused, g.ops_fused,
           100.0 * (1.0 - (double)g.ops_fused / g.ops_unfused));
    printf("%-22s %10d %10d\n", "activation tensors", g.tensors_unfused, g.tensors_fused);
    printf("%-22s %10.2f %10.2f  (%.0f %% less)\n", "activation MiB (peak)",
           (double)g.act_bytes_unfused * mib, (double)g.act_bytes_fused * mib, saved);
    printf("%-22s %10.2f %10.2f  (quantized activations, attention, logits, packing)\n",
           "fixed scratch MiB", (double)g.scratch_bytes * mib, (double)g.scratch_bytes * mib);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o = {0};
    struct bench_result res[BENCH_MAX_LIST];
    struct eng_model *model = NULL;
    int32_t *toks = NULL;
    char err[512];
    int rc = parse_args(argc, argv, &o);
    if (rc == 1)
        return EMBER_EXIT_OK;
    if (rc < 0)
        return EMBER_EXIT_USAGE;

    /* bandwidth first, before the model occupies memory and caches */
    double bw[BENCH_MAX_LIST];
    for (size_t i = 0; i < o.n_threads; i++) {
        res[i] = (struct bench_result){.threads = o.threads[i], .bandwidth_gbps = NAN};
        if (o.n_bandwidth)
            res[i].bandwidth_gbps = o.bandwidth[o.n_bandwidth == 1 ? 0 : i];
    }
    if (!o.n_bandwidth && !o.graph) {
        rc = agent_membw_measure(o.threads, o.n_threads, bw);
        if (rc < 0)
            log_warn("memory bandwidth could not be measured (%s); no roofline "
                     "(give it with --bandwidth)",
                     strerror(-rc));
        for (size_t i = 0; i < o.n_threads && rc == 0; i++)
            res[i].bandwidth_gbps = bw[i];
    }

    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.use_mmap = o.mmap;
    if (isatty(STDERR_FILENO)) {
        mp.progress = on_progress;
        mp.progress_user = (void *)o.model;
    }
    uint64_t t0 = cmn_now_ns();
    rc = eng_model_load(o.model, &mp, &model, err, sizeof(err));
    double load_ms = (double)(cmn_now_ns() - t0) / 1e6;
    if (rc < 0) {
        log_err("%s", err);
        return EMBER_EXIT_FAILURE;
    }
    struct eng_model_info info;
    eng_model_info(model, &info);
    if (info.n_vocab <= 0) {
        log_err("%s: the model has no output vocabulary", o.model);
        rc = EMBER_EXIT_FAILURE;
        goto out;
    }

    if (o.graph) {
        rc = print_graph(model, &info, &o) < 0 ? EMBER_EXIT_FAILURE : EMBER_EXIT_OK;
        goto out;
    }

    /* n_prompt + 1 ids drawn uniformly from the vocabulary (a fixed sequence: every run and
     * thread count sees the same prompt); the last one starts the tg test */
    toks = malloc(sizeof(int32_t) * (size_t)(o.n_prompt + 1));
    if (!toks) {
        log_err("out of memory");
        rc = EMBER_EXIT_FAILURE;
        goto out;
    }
    uint64_t seed = BENCH_TOKEN_SEED;
    for (int64_t i = 0; i <= o.n_prompt; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((seed >> 33) % (uint64_t)info.n_vocab);
    }

    if (!o.json) {
        print_header(&o, &info, load_ms, res);
        char plan[256];
        if (eng_model_quant_plan(model, plan, sizeof(plan)) == 0)
            printf("quantization (ember quantize): %s\n", plan);
    }
    for (size_t i = 0; i < o.n_threads; i++) {
        struct bench_result *r = &res[i];
        if (bench_threads(model, &info, &o, toks, r) < 0) {
            rc = EMBER_EXIT_FAILURE;
            goto out;
        }
        r->roofline_tps = r->roofline_pct = NAN;
        if (isfinite(r->bandwidth_gbps) && info.stream_bytes > 0) {
            r->roofline_tps = r->bandwidth_gbps * 1e9 / (double)info.stream_bytes;
            r->roofline_pct = 100.0 * r->tg_mean / r->roofline_tps;
        }
        if (o.json) {
            if (print_json(&o, &info, load_ms, r) < 0) {
                log_err("out of memory");
                rc = EMBER_EXIT_FAILURE;
                goto out;
            }
        } else {
            print_rows(&o, &info, r);
        }
    }
    rc = EMBER_EXIT_OK;
out:
    free(toks);
    eng_model_free(model);
    return rc;
}
