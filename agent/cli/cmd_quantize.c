/* `ember quantize IN OUT --type T`: converts an F32/F16/BF16 GGUF model to a quantized one (one
 * block type, or an importance-driven mixed plan under a bits-per-weight budget) through
 * eng_quantize, with a progress bar on a terminal and the plan printed when done. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common/fileio.h"
#include "config.h"
#include "engine/quantize.h"
#include "log.h"

#define CALIB_MAX_BYTES ((size_t)64 << 20)

static volatile sig_atomic_t quantize_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    quantize_interrupted = 1;
}

static void quantize_usage(FILE *out)
{
    fprintf(out,
            "usage: ember quantize IN.gguf OUT.gguf --type TYPE [--pure] [--target-bpw B]\n"
            "                      [--calib FILE] [--threads N] [--allow-requantize]\n"
            "\n"
            "Converts the weight matrices of an F32, F16 or BF16 GGUF model to TYPE and writes\n"
            "OUT (metadata copied, the plan added as ember.quantize.*). OUT is written to a\n"
            "temporary file beside it and renamed when complete; IN is never overwritten.\n"
            "Norms and other 1-D tensors are copied. As llama-quantize does by default, the\n"
            "output projection gets Q6_K (Q8_0 if its rows are not a multiple of 256; a Q8_0\n"
            "file keeps Q8_0), and for Q4_K/Q5_K the attn_v and ffn_down matrices of the first\n"
            "and last eighth of the layers and every third layer between get Q6_K. A matrix\n"
            "whose rows are not a multiple of 256 gets Q4_0 instead of Q4_K, Q8_0 instead of\n"
            "Q5_K/Q6_K; one whose rows are not a multiple of 32 stays F16 (BF16 if so stored).\n"
            "\n"
            "  -t, --type TYPE         Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, F16, BF16, F32, or mixed:\n"
            "                          per-matrix types chosen from measured sensitivity on\n"
            "                          calibration text under the --target-bpw budget\n"
            "      --pure              every matrix in TYPE (only rows that fit no block fall\n"
            "                          back), as llama-quantize --pure\n"
            "  -b, --target-bpw B      mixed: bits per weight over all tensors (default 5.0)\n"
            "  -c, --calib FILE        calibration text (UTF-8; default: a built-in text). With a\n"
            "                          single TYPE it makes the quantizer weight each input\n"
            "                          channel by its measured importance\n"
            "      --calib-tokens N    most calibration tokens used (default 2048)\n"
            "  -j, --threads N         worker threads (default: online CPUs)\n"
            "      --allow-requantize  accept an input whose matrices are already quantized\n"
            "                          (they are dequantized first; accuracy is lost twice)\n"
            "  -q, --quiet             no progress bar and no plan, only errors\n"
            "      --config FILE       configuration file, checked as by every command (default\n"
            "                          " EMBER_DEFAULT_CONFIG "; quantize uses none of it)\n"
            "  -h, --help              this text\n"
            "\n"
            "Without --calib, Q8_0 and Q4_0 with --pure are byte-identical to llama-quantize\n"
            "--pure, and without --pure their Q8_0/Q4_0 matrices to llama-quantize's.\n"
            "See docs/quantization.md for the method and measured accuracy (ember eval).\n"
            "\n"
            "Exit codes: 0 ok, 1 input, calibration or output failure, 2 usage error.\n");
}

enum { OPT_CALIB_TOKENS = 256, OPT_ALLOW_REQUANT, OPT_CONFIG, OPT_PURE };

static int bar_progress(const char *stage, float fraction, void *user)
{
    (void)user;
    int width = 30, fill = (int)(fraction * (float)width + 0.5f);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-12s [%s] %3.0f%%", stage, bar, fraction * 100.0f);
    if (fraction >= 1.0f)
        fputc('\n', stderr);
    return quantize_interrupted;
}

static int quiet_progress(const char *stage, float fraction, void *user)
{
    (void)stage;
    (void)fraction;
    (void)user;
    return quantize_interrupted;
}

static int read_calib(const char *path, char **ret, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        log_err("--calib: cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(CALIB_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CALIB_MAX_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        log_err("--calib: cannot read %s", path);
        free(buf);
        return -EIO;
    }
    if (n > CALIB_MAX_BYTES)
        n = CALIB_MAX_BYTES; /* the first 64 MiB are far more than calibration uses */
    if (n == 0) {
        log_err("--calib: %s is empty", path);
        free(buf);
        return -EINVAL;
    }
    *ret = buf;
    *ret_len = n;
    return 0;
}

static void print_plan(const struct eng_quantize_result *res, const char *out_path, bool mixed)
{
    printf("%-32s %12s %-6s %-6s %10s  %s\n", "tensor", "elements", "in", "out", "rel.err", "why");
    for (int i = 0; i < res->n_tensors; i++) {
        const struct eng_quantize_tensor *t = &res->tensors[i];
        char e[32] = "-";
        if (t->rel_err >= 0)
            snprintf(e, sizeof(e), "%.2e", t->rel_err);
        printf("%-32s %12lld %-6s %-6s %10s  %s\n", t->name, (long long)t->n_elements, t->type_in,
               t->type_out, e, t->why);
    }
    printf("wrote %s: %llu bytes (%.1f%% of the input's %llu), %.3f bits per weight", out_path,
           (unsigned long long)res->out_bytes,
           res->in_bytes ? 100.0 * (double)res->out_bytes / (double)res->in_bytes : 0.0,
           (unsigned long long)res->in_bytes, res->bpw);
    if (mixed)
        printf(" (smallest possible %.3f)", res->min_bpw);
    if (res->calib_tokens)
        printf(", calibrated on %zu tokens", res->calib_tokens);
    printf("\n");
}

int cmd_quantize(int argc, char **argv)
{
    static const struct option options[] = {
        {"type", required_argument, NULL, 't'},
        {"target-bpw", required_argument, NULL, 'b'},
        {"calib", required_argument, NULL, 'c'},
        {"calib-tokens", required_argument, NULL, OPT_CALIB_TOKENS},
        {"threads", required_argument, NULL, 'j'},
        {"allow-requantize", no_argument, NULL, OPT_ALLOW_REQUANT},
        {"pure", no_argument, NULL, OPT_PURE},
        {"quiet", no_argument, NULL, 'q'},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct eng_quantize_params p;
    eng_quantize_params_defaults(&p);
    p.type = NULL;
    const char *calib = NULL, *config = NULL;
    bool quiet = false;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":t:b:c:j:qh", options, NULL)) != -1) {
        int64_t iv;
        switch (opt) {
        case 't':
            p.type = optarg;
            break;
        case 'b':
            if (cmn_parse_double(optarg, &p.target_bpw) < 0 || !(p.target_bpw >= 1) ||
                p.target_bpw > 32)
                return cli_usage_error("--target-bpw: '%s' is not a number in [1, 32]", optarg);
            break;
        case 'c':
            calib = optarg;
            break;
        case OPT_CALIB_TOKENS:
            if (cli_parse_int("--calib-tokens", optarg, 8, 1000000, &iv))
                return EMBER_EXIT_USAGE;
            p.calib_tokens = (uint32_t)iv;
            break;
        case 'j':
            if (cli_parse_int("--threads", optarg, 1, 256, &iv))
                return EMBER_EXIT_USAGE;
            p.n_threads = (uint32_t)iv;
            break;
        case OPT_ALLOW_REQUANT:
            p.allow_requantize = 1;
            break;
        case OPT_PURE:
            p.pure = 1;
            break;
        case 'q':
            quiet = true;
            break;
        case OPT_CONFIG:
            config = optarg;
            break;
        case 'h':
            quantize_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("give the input and the output file (%d file arguments given)",
                               argc - optind);
    if (!p.type)
        return cli_usage_error("--type is required (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, F16, BF16, "
                               "F32 or mixed)");
    static const char *const known[] = {"Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K",
                                        "F16",  "BF16", "F32",  "mixed"};
    bool ok = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        ok = ok || strcmp(p.type, known[i]) == 0;
    if (!ok)
        return cli_usage_error("--type: '%s' is not one of Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, F16, "
                               "BF16, F32, mixed",
                               p.type);
    bool mixed = strcmp(p.type, "mixed") == 0;
    if (p.target_bpw > 0 && !mixed)
        return cli_usage_error("--target-bpw applies to --type mixed only");
    if (p.pure && mixed)
        return cli_usage_error("--pure gives every matrix one type; it does not apply to "
                               "--type mixed");
    const char *in = argv[optind], *out = argv[optind + 1];
    static struct agent_config cfg;
    if (agent_config_load_for_cli(config, &cfg))
        return EMBER_EXIT_USAGE;

    char *text = NULL;
    if (calib) {
        if (read_calib(calib, &text, &p.calib_len) < 0)
            return EMBER_EXIT_FAILURE;
        p.calib_text = text;
        p.calib_given = 1;
    }
    struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    p.progress = !quiet && isatty(STDERR_FILENO) ? bar_progress : quiet_progress;

    struct eng_quantize_result res;
    char err[512];
    int r = eng_quantize(in, out, &p, &res, err, sizeof(err));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(text);
    if (r < 0) {
        if (r == -ECANCELED)
            log_err("interrupted; %s was not written", out);
        else
            log_err("%s", err[0] ? err : strerror(-r));
        return EMBER_EXIT_FAILURE;
    }
    if (res.note[0])
        log_warn("%s", res.note);
    if (!quiet)
        print_plan(&res, out, mixed);
    eng_quantize_result_free(&res);
    return EMBER_EXIT_OK;
}
