/* `ember run`: load a GGUF model and generate text from a prompt (or chat with it), streaming
 * the text to stdout and timings to stderr. Sampling defaults come from the [engine] section of
 * the configuration when a configuration file exists, else from the engine's own defaults
 * (llama.cpp's); flags override both. In --chat mode each stdin line is a user turn (with a
 * prompt and line editing left to the terminal when stdin is a tty); the conversation is
 * rendered with the model's chat template and only the new part of it is decoded when the KV
 * cache already holds the rest. Ctrl-C stops the current answer; at the chat prompt it exits. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common/fileio.h"
#include "common/timeutil.h"
#include "config.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/quantize.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "log.h"

static volatile sig_atomic_t run_interrupted;

static void run_on_sigint(int sig)
{
    (void)sig;
    run_interrupted = 1;
}

static void run_usage(FILE *out)
{
    /* the defaults shown are the built-in ones; a configuration file's [engine] keys replace
     * them, and flags replace both */
    struct agent_config d;
    agent_config_defaults(&d);
    const struct cfg_engine *e = &d.engine;
    fprintf(
        out,
        "usage: ember run -m MODEL [-p PROMPT | --chat] [options]\n"
        "\n"
        "Generates text with a GGUF model: the continuation of PROMPT (empty: from the\n"
        "start-of-text token), or a chat whose user turns are read from stdin (one per line;\n"
        "an interactive prompt when stdin is a terminal; /reset starts over, /exit ends).\n"
        "Text goes to stdout (ending with a newline), timings to stderr (in a chat, one line\n"
        "per turn: the new prompt tokens and those reused from the KV cache). Defaults come\n"
        "from the [engine] section of the configuration; the built-in ones are shown.\n"
        "\n"
        "  -m, --model FILE          GGUF model (default: [engine] model)\n"
        "  -p, --prompt TEXT         prompt for plain completion (echoed unless --no-echo)\n"
        "      --chat                chat mode (user turns from stdin)\n"
        "      --system TEXT         chat mode: system message\n"
        "      --chat-template NAME  chat mode: chatml|llama2|llama3|zephyr|mistral|phi3|gemma\n"
        "                            (default: recognised from the model; ChatML if unknown)\n"
        "  -n, --n-predict N         tokens to generate (-1: until end of text; default -1)\n"
        "      --temp T              temperature (0 = greedy; default %g)\n"
        "      --top-k K             top-k (0 = off; default %d)\n"
        "      --top-p P             nucleus threshold in (0, 1] (1 = off; default %g)\n"
        "      --min-p P             min-p threshold (0 = off; default %g)\n"
        "      --repeat-penalty R    repetition penalty (1 = off; default %g)\n"
        "      --repeat-last-n N     tokens the penalties look at (default %d)\n"
        "      --presence-penalty P  presence penalty (0 = off; default %g)\n"
        "      --seed S              sampling seed, 0..%lld (-1 = random; default %lld)\n"
        "      --stop STR            stop at STR (not printed); repeatable\n"
        "      --ignore-eos          keep generating past end-of-text tokens\n"
        "  -c, --ctx N               context size in tokens, at most %u (0 = the model's,\n"
        "                            capped at 4096; default %d)\n"
        "      --context-shift       when the context fills up, drop old tokens and go on\n"
        "  -t, --threads N           compute threads (0 = one per CPU; default %d)\n"
        "  -b, --batch N             prompt tokens per prefill step (default %d)\n"
        "      --no-echo             do not print the prompt before its continuation\n"
        "      --mmap                compute on the file mapping (less RAM, slower) instead\n"
        "                            of a repacked copy (default: [engine] mmap)\n"
        "      --config FILE         configuration file (default " EMBER_DEFAULT_CONFIG ")\n"
        "  -h, --help                this text\n"
        "\n"
        "Exit codes: 0 ok, 1 model or generation failure, 2 usage or configuration error.\n",
        e->temperature, e->top_k, e->top_p, e->min_p, e->repeat_penalty, e->repeat_last_n,
        e->presence_penalty, (long long)INT64_MAX, e->seed, (unsigned)ENG_N_CTX_MAX,
        e->context_length, e->threads, e->batch_size);
}

enum {
    OPT_CHAT = 256,
    OPT_SYSTEM,
    OPT_TEMPLATE,
    OPT_TEMP,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPEAT_PENALTY,
    OPT_REPEAT_LAST_N,
    OPT_PRESENCE,
    OPT_SEED,
    OPT_STOP,
    OPT_IGNORE_EOS,
    OPT_SHIFT,
    OPT_NO_ECHO,
    OPT_MMAP,
    OPT_CONFIG,
};

struct run_opts {
    const char *model;
    const char *prompt;
    const char *system;
    const char *template_name;
    const char *config;
    bool chat, echo, ignore_eos, shift, mmap;
    int64_t n_predict, n_ctx, threads, batch;
    bool have_n_predict, have_ctx, have_threads, have_batch, have_seed;
    struct eng_sampler_params sp;
    bool have_temp, have_top_k, have_top_p, have_min_p, have_rp, have_rln, have_pp;
    int64_t seed;
    const char *stop[ENG_GEN_MAX_STOP];
    size_t n_stop;
};

static int parse_float(const char *flag, const char *s, float *ret)
{
    double v;
    if (cmn_parse_double(s, &v) < 0) {
        cli_usage_error("%s: '%s' is not a number", flag, s);
        return -EINVAL;
    }
    *ret = (float)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"chat", no_argument, NULL, OPT_CHAT},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"chat-template", required_argument, NULL, OPT_TEMPLATE},
        {"n-predict", required_argument, NULL, 'n'},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOP_K},
        {"top-p", required_argument, NULL, OPT_TOP_P},
        {"min-p", required_argument, NULL, OPT_MIN_P},
        {"repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY},
        {"repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N},
        {"presence-penalty", required_argument, NULL, OPT_PRESENCE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"stop", required_argument, NULL, OPT_STOP},
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
        {"ctx", required_argument, NULL, 'c'},
        {"context-shift", no_argument, NULL, OPT_SHIFT},
        {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},
        {"no-echo", no_argument, NULL, OPT_NO_ECHO},
        {"mmap", no_argument, NULL, OPT_MMAP},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc = 0;
    int64_t v = 0;
    o->echo = true;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":m:p:n:c:t:b:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm':
            o->model = optarg;
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case OPT_CHAT:
            o->chat = true;
            break;
        case OPT_SYSTEM:
            o->system = optarg;
            break;
        case OPT_TEMPLATE:
            o->template_name = optarg;
            break;
        case 'n':
            rc |= cli_parse_int("--n-predict", optarg, -1, INT32_MAX, &o->n_predict);
            o->have_n_predict = true;
            break;
        case OPT_TEMP:
            rc |= parse_float("--temp", optarg, &o->sp.temperature);
            o->have_temp = true;
            break;
        case OPT_TOP_K:
            rc |= cli_parse_int("--top-k", optarg, 0, INT32_MAX, &v);
            o->sp.top_k = (int32_t)v;
            o->have_top_k = true;
            break;
        case OPT_TOP_P:
            rc |= parse_float("--top-p", optarg, &o->sp.top_p);
            o->have_top_p = true;
            break;
        case OPT_MIN_P:
            rc |= parse_float("--min-p", optarg, &o->sp.min_p);
            o->have_min_p = true;
            break;
        case OPT_REPEAT_PENALTY:
            rc |= parse_float("--repeat-penalty", optarg, &o->sp.repeat_penalty);
            o->have_rp = true;
            break;
        case OPT_REPEAT_LAST_N:
            rc |= cli_parse_int("--repeat-last-n", optarg, 0,
                                (int64_t)eng_sampler_ranges.penalty_last_n.max, &v);
            o->sp.penalty_last_n = (int32_t)v;
            o->have_rln = true;
            break;
        case OPT_PRESENCE:
            rc |= parse_float("--presence-penalty", optarg, &o->sp.presence_penalty);
            o->have_pp = true;
            break;
        case OPT_SEED:
            rc |= cli_parse_int("--seed", optarg, -1, INT64_MAX, &o->seed);
            o->have_seed = true;
            break;
        case OPT_STOP:
            if (o->n_stop == ENG_GEN_MAX_STOP || !*optarg ||
                strlen(optarg) >= ENG_GEN_MAX_STOP_LEN) {
                cli_usage_error("--stop: at most %d strings of 1 to %d bytes", ENG_GEN_MAX_STOP,
                                ENG_GEN_MAX_STOP_LEN - 1);
                rc = -EINVAL;
            } else {
                o->stop[o->n_stop++] = optarg;
            }
            break;
        case OPT_IGNORE_EOS:
            o->ignore_eos = true;
            break;
        case OPT_MMAP:
            o->mmap = true;
            break;
        case 'c':
            rc |= cli_parse_int("--ctx", optarg, 0, ENG_N_CTX_MAX, &o->n_ctx);
            o->have_ctx = true;
            break;
        case OPT_SHIFT:
            o->shift = true;
            break;
        case 't':
            rc |= cli_parse_int("--threads", optarg, 0, 1024, &o->threads);
            o->have_threads = true;
            break;
        case 'b':
            rc |= cli_parse_int("--batch", optarg, 1, ENG_N_BATCH_MAX, &o->batch);
            o->have_batch = true;
            break;
        case OPT_NO_ECHO:
            o->echo = false;
            break;
        case OPT_CONFIG:
            o->config = optarg;
            break;
        case 'h':
            run_usage(stdout);
            return 1;
        default:
            cli_option_error(opt, argv);
            return -EINVAL;
        }
    }
    if (rc)
        return -EINVAL;
    if (optind < argc) {
        cli_usage_error("unexpected argument '%s' (a prompt goes after -p)", argv[optind]);
        return -EINVAL;
    }
    if (o->chat && o->prompt) {
        cli_usage_error("-p and --chat exclude each other");
        return -EINVAL;
    }
    if (!o->chat && (o->system || o->template_name)) {
        cli_usage_error("%s only applies to --chat", o->system ? "--system" : "--chat-template");
        return -EINVAL;
    }
    return rc ? -EINVAL : 0;
}

/* Fills what the command line left open from the configuration's [engine] section: the file
 * when there is one, else the built-in defaults `ember config dump --defaults` shows. */
static int apply_defaults(struct run_opts *o)
{
    struct agent_config cfg;
    if (agent_config_load_for_cli(o->config, &cfg))
        return -EINVAL;
    const struct cfg_engine *e = &cfg.engine;
    if (!o->model && e->model[0])
        o->model = strdup(e->model); /* lives for the process */
    if (!o->have_threads)
        o->threads = e->threads;
    if (!o->have_ctx)
        o->n_ctx = e->context_length;
    if (!o->have_batch)
        o->batch = e->batch_size;
    o->mmap = o->mmap || e->mmap;
    if (!o->have_seed)
        o->seed = e->seed;
    if (o->chat && !o->template_name && strcmp(e->chat_template, "auto") != 0)
        o->template_name = strdup(e->chat_template);
    if (!o->have_n_predict)
        o->n_predict = -1;
    if (!o->have_temp)
        o->sp.temperature = (float)e->temperature;
    if (!o->have_top_k)
        o->sp.top_k = e->top_k;
    if (!o->have_top_p)
        o->sp.top_p = (float)e->top_p;
    if (!o->have_min_p)
        o->sp.min_p = (float)e->min_p;
    if (!o->have_rp)
        o->sp.repeat_penalty = (float)e->repeat_penalty;
    if (!o->have_rln)
        o->sp.penalty_last_n = e->repeat_last_n;
    if (!o->have_pp)
        o->sp.presence_penalty = (float)e->presence_penalty;
    o->sp.frequency_penalty = (float)e->frequency_penalty;
    if (o->seed < 0) {
        /* a random seed is printed so the run can be repeated: keep it within what both
         * --seed and [engine] seed take (0..4294967295) */
        uint32_t s;
        if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
            s = (uint32_t)(cmn_wall_ns() ^ ((uint64_t)getpid() << 16));
        o->sp.seed = s;
    } else {
        o->sp.seed = (uint64_t)o->seed;
    }
    char err[256];
    if (eng_sampler_params_validate(&o->sp, err, sizeof(err)) < 0) {
        cli_usage_error("%s", err);
        return -EINVAL;
    }
    if (!o->model) {
        log_err("no model");
        agent_log_hint("give -m FILE, or set [engine] model in the configuration");
        return -EINVAL;
    }
    return 0;
}

/* ---- output ---- */

struct out_state {
    char *buf; /* the answer so far (chat history) */
    size_t len, cap;
    bool keep;
    char last; /* last byte written to stdout */
};

static int on_text(void *user, const char *text, size_t len)
{
    struct out_state *o = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    o->last = text[len - 1];
    if (o->keep) {
        if (o->len + len + 1 > o->cap) {
            size_t cap = (o->cap ? o->cap * 2 : 1024) + len;
            char *nb = realloc(o->buf, cap);
            if (!nb)
                return 1; /* cannot keep the history: stop */
            o->buf = nb;
            o->cap = cap;
        }
        memcpy(o->buf + o->len, text, len);
        o->len += len;
        o->buf[o->len] = '\0';
    }
    return 0;
}

static int on_cancel(void *user)
{
    (void)user;
    return run_interrupted;
}

static int on_progress(float fraction, void *user)
{
    const char *path = user;
    fprintf(stderr, "\rloading %s: %3.0f%%", path, fraction * 100.0f);
    if (fraction >= 1.0f)
        fputc('\n', stderr);
    return run_interrupted;
}

static double rss_mib(void)
{
    char buf[4096];
    size_t len;
    if (cmn_read_file("/proc/self/status", buf, sizeof(buf), &len) < 0)
        return -1;
    const char *p = strstr(buf, "VmRSS:");
    return p ? strtod(p + 6, NULL) / 1024.0 : -1;
}

static const char *reason_name(enum eng_stop_reason r)
{
    static const char *const names[] = {
        [ENG_STOP_NONE] = "none",
        [ENG_STOP_EOG] = "end of text",
        [ENG_STOP_MAX_TOKENS] = "max tokens",
        [ENG_STOP_STRING] = "stop string",
        [ENG_STOP_CTX_FULL] = "context full",
        [ENG_STOP_CANCELLED] = "interrupted",
    };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

static double per_s(uint64_t n, uint64_t ns)
{
    return ns ? (double)n * 1e9 / (double)ns : 0.0;
}

static void print_timings(const struct eng_request_stats *s, enum eng_stop_reason reason)
{
    uint64_t gen_ns = s->duration_ns > s->prefill_ns ? s->duration_ns - s->prefill_ns : 0;
    fprintf(stderr, "prompt: %llu tokens in %.2f ms (%.1f tokens/s)\n",
            (unsigned long long)s->prompt_tokens, (double)s->prefill_ns / 1e6,
            per_s(s->prompt_tokens, s->prefill_ns));
    fprintf(stderr, "generation: %llu tokens in %.2f ms (%.1f tokens/s)",
            (unsigned long long)s->gen_tokens, (double)gen_ns / 1e6, per_s(s->gen_tokens, gen_ns));
    if (s->n_shifts)
        fprintf(stderr, ", including %.2f ms re-processing after %u context shift%s",
                (double)s->shift_ns / 1e6, (unsigned)s->n_shifts, s->n_shifts == 1 ? "" : "s");
    fputc('\n', stderr);
    fprintf(stderr, "time to first token: %.2f ms; stopped: %s\n", (double)s->ttft_ns / 1e6,
            reason_name(reason));
}

/* One line per chat turn: the prompt tokens processed now are only the new part of the
 * conversation when the KV cache already holds the rest ("reused from the cache"). */
static void print_turn(unsigned turn, const struct eng_request_stats *s, size_t cached)
{
    uint64_t gen_ns = s->duration_ns > s->prefill_ns ? s->duration_ns - s->prefill_ns : 0;
    fprintf(stderr,
            "turn %u: prompt: %llu tokens in %.2f ms, %zu reused from the cache; generation: "
            "%llu tokens in %.2f ms\n",
            turn, (unsigned long long)s->prompt_tokens, (double)s->prefill_ns / 1e6, cached,
            (unsigned long long)s->gen_tokens, (double)gen_ns / 1e6);
}

/* ---- chat ---- */

struct chat {
    struct eng_chat_message *msgs;
    size_t n, cap;
    struct eng_chat_template tmpl;
    char *kv_text; /* what the KV cache holds, as text ("" = nothing reusable) */
};

static int chat_add(struct chat *c, const char *role, const char *content)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct eng_chat_message *m = realloc(c->msgs, cap * sizeof(*m));
        if (!m)
            return -ENOMEM;
        c->msgs = m;
        c->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy)
        return -ENOMEM;
    c->msgs[c->n++] = (struct eng_chat_message){.role = role, .content = copy};
    return 0;
}

static void chat_reset(struct chat *c, const char *system)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->msgs[i].content);
    c->n = 0;
    free(c->kv_text);
    c->kv_text = NULL;
    if (system)
        chat_add(c, "system", system);
}

static void chat_free(struct chat *c)
{
    chat_reset(c, NULL);
    free(c->msgs);
}

static int pick_template(const struct run_opts *o, struct eng_chat_template *t)
{
    if (o->template_name) {
        if (eng_chat_template_from_name(o->template_name, t) < 0) {
            cli_usage_error("--chat-template: unknown '%s' (chatml, llama2, llama3, zephyr, "
                            "mistral, phi3, gemma)",
                            o->template_name);
            return -EINVAL;
        }
        return 0;
    }
    char *jinja = NULL, err[256];
    int rc = eng_chat_template_read(o->model, &jinja, err, sizeof(err));
    if (rc < 0) {
        log_err("%s", err);
        return rc;
    }
    bool warn;
    eng_chat_template_detect(jinja, t, &warn);
    if (warn)
        log_warn("%s chat template; using ChatML (choose with --chat-template)",
                 jinja ? "unrecognised" : "the model has no");
    free(jinja);
    return 0;
}

/* Renders the conversation and generates the assistant's answer into out, decoding only what
 * the KV cache does not already hold (c->kv_text). *ret_prompt is the whole rendered prompt
 * (the caller frees it), *ret_cached the cache positions reused. Returns eng_generate's result,
 * or 1 when the template refuses the conversation (message in err). */
static int chat_generate(struct eng_context *ctx, const struct eng_vocab *vocab,
                         struct eng_gen_params *gp, const struct chat *c,
                         const struct eng_chat_render_opts *ro, const char *bos_text,
                         struct out_state *out, char **ret_prompt, size_t *ret_cached,
                         struct eng_gen_result *res, char *err, size_t err_len)
{
    char *prompt = NULL;
    struct eng_text_span *spans = NULL;
    size_t n_spans = 0;
    *ret_prompt = NULL;
    *ret_cached = 0;
    if (eng_chat_render_spans(&c->tmpl, c->msgs, c->n, ro, &prompt, NULL, &spans, &n_spans, err,
                              err_len) < 0)
        return 1;
    size_t kv_len = c->kv_text ? strlen(c->kv_text) : 0;
    bool reuse = kv_len && strncmp(prompt, c->kv_text, kv_len) == 0;
    gp->prompt = prompt + (reuse ? kv_len : 0);
    gp->prompt_len = 0;
    gp->keep_kv = reuse;
    /* a template that writes BOS itself must not get a second one from the tokenizer */
    gp->add_special = !reuse && !(bos_text[0] && strncmp(prompt, bos_text, strlen(bos_text)) == 0);
    gp->parse_special = true;
    /* the typed text is never markup: spans relative to the part sent now */
    size_t skip = reuse ? kv_len : 0, n_lit = 0;
    for (size_t k = 0; k < n_spans; k++) {
        size_t a = spans[k].off, z = a + spans[k].len;
        if (z <= skip)
            continue;
        spans[n_lit++] =
            (struct eng_text_span){(a > skip ? a : skip) - skip, z - (a > skip ? a : skip)};
    }
    gp->literal = spans;
    gp->n_literal = n_lit;
    gp->on_text = on_text;
    gp->user = out;
    out->len = 0;
    if (out->buf)
        out->buf[0] = '\0';
    out->last = '\n';
    *ret_cached = reuse ? eng_kv_used(ctx) : 0;
    int grc = eng_generate(ctx, vocab, gp, res, err, err_len);
    gp->literal = NULL;
    gp->n_literal = 0;
    free(spans);
    if (out->last != '\n')
        fputc('\n', stdout);
    fflush(stdout);
    *ret_prompt = prompt;
    return grc;
}

static int run_chat(struct eng_context *ctx, const struct eng_vocab *vocab,
                    const struct run_opts *o, const struct eng_gen_params *base)
{
    struct eng_gen_params params = *base; /* per turn: prompt, cache reuse, text callback */
    struct eng_gen_params *gp = &params;
    struct chat c = {0};
    struct out_state out = {.keep = true};
    char *line = NULL;
    size_t line_cap = 0;
    bool tty = isatty(STDIN_FILENO);
    int rc = pick_template(o, &c.tmpl);
    if (rc < 0)
        return EMBER_EXIT_USAGE;
    size_t n;
    const char *bos =
        eng_vocab_bos(vocab) >= 0 ? eng_token_text(vocab, eng_vocab_bos(vocab), &n) : NULL;
    char bos_text[64] = "", eos_text[64] = "";
    if (bos)
        snprintf(bos_text, sizeof(bos_text), "%.*s", (int)n, bos);
    const char *eos =
        eng_vocab_eos(vocab) >= 0 ? eng_token_text(vocab, eng_vocab_eos(vocab), &n) : NULL;
    if (eos)
        snprintf(eos_text, sizeof(eos_text), "%.*s", (int)n, eos);
    char today[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(today, sizeof(today), "%d %b %Y", localtime_r(&now, &tm));
    struct eng_chat_render_opts ro = {.add_generation_prompt = true,
                                      .bos_token = bos_text,
                                      .eos_token = eos_text,
                                      .date_string = today};
    chat_reset(&c, o->system);
    if (tty)
        fprintf(stderr, "chat template: %s. Ctrl-C stops an answer; /reset, /exit.\n",
                eng_chat_family_name(c.tmpl.family));

    struct eng_request_stats total = {0};
    unsigned turn = 0;
    rc = EMBER_EXIT_OK;
    for (;;) {
        if (tty)
            fputs("> ", stderr);
        run_interrupted = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0)
            continue;
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0)
            break;
        if (strcmp(line, "/reset") == 0) {
            chat_reset(&c, o->system);
            continue;
        }
        if (chat_add(&c, "user", line) < 0) {
            rc = EMBER_EXIT_FAILURE;
            break;
        }
        char *prompt = NULL, err[512];
        struct eng_gen_result res;
        size_t cached = 0;
        int grc = chat_generate(ctx, vocab, gp, &c, &ro, bos_text, &out, &prompt, &cached, &res,
                                err, sizeof(err));
        if (grc == -ENOSPC && c.n > (o->system ? 2u : 1u)) {
            /* the whole conversation no longer fits: the same question in a fresh one */
            log_warn("%s; starting over with this message", err);
            free(prompt);
            prompt = NULL;
            chat_reset(&c, o->system);
            if (chat_add(&c, "user", line) < 0) {
                rc = EMBER_EXIT_FAILURE;
                break;
            }
            grc = chat_generate(ctx, vocab, gp, &c, &ro, bos_text, &out, &prompt, &cached, &res,
                                err, sizeof(err));
        }
        if (grc == 1 || grc == -ENOSPC) {
            /* a turn the template refused, or a message too long for the context on its own:
             * drop it, the conversation goes on without it */
            log_err("%s", err);
            c.n--;
            free((char *)c.msgs[c.n].content);
            free(prompt);
            continue;
        }
        if (grc < 0) {
            log_err("%s", err);
            free(prompt);
            rc = EMBER_EXIT_FAILURE;
            break;
        }
        print_turn(++turn, &res.stats, cached);
        total.prompt_tokens += res.stats.prompt_tokens;
        total.gen_tokens += res.stats.gen_tokens;
        total.prefill_ns += res.stats.prefill_ns;
        total.decode_ns += res.stats.decode_ns;
        total.duration_ns += res.stats.duration_ns;
        total.shift_ns += res.stats.shift_ns;
        total.n_shifts += res.stats.n_shifts;
        if (!total.ttft_ns)
            total.ttft_ns = res.stats.ttft_ns;
        chat_add(&c, "assistant", out.buf ? out.buf : "");
        free(c.kv_text);
        c.kv_text = NULL;
        /* An answer cut by -n leaves its last token sampled and shown but not decoded; decoding
         * it makes the cache hold the whole answer, so the next turn reuses it instead of
         * processing the conversation again. */
        if (res.reason == ENG_STOP_MAX_TOKENS && res.stats.gen_tokens > 0 &&
            res.stats.n_shifts == 0 && res.last_token >= 0 &&
            res.kv_used == cached + res.stats.prompt_tokens + res.stats.gen_tokens - 1 &&
            eng_decode(ctx, &res.last_token, 1) == 0)
            res.kv_matches_text = true;
        if (res.kv_matches_text) {
            /* the cache holds the rendered prompt and the answer, nothing else */
            size_t pl = strlen(prompt);
            c.kv_text = malloc(pl + out.len + 1);
            if (c.kv_text) {
                memcpy(c.kv_text, prompt, pl);
                memcpy(c.kv_text + pl, out.buf ? out.buf : "", out.len);
                c.kv_text[pl + out.len] = '\0';
            }
        }
        if (res.reason == ENG_STOP_CTX_FULL)
            log_warn("the context is full; /reset to start over");
        free(prompt);
    }
    if (tty)
        fputc('\n', stderr);
    print_timings(&total, ENG_STOP_NONE);
    free(line);
    free(out.buf);
    chat_free(&c);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o = {0};
    struct eng_model *model = NULL;
    struct eng_context *ctx = NULL;
    char err[512];
    int rc = parse_args(argc, argv, &o);
    if (rc == 1)
        return EMBER_EXIT_OK;
    if (rc < 0 || apply_defaults(&o) < 0)
        return EMBER_EXIT_USAGE;

    struct sigaction sa = {0};
    sa.sa_handler = run_on_sigint; /* no SA_RESTART: a read at the chat prompt returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.use_mmap = o.mmap;
    if (isatty(STDERR_FILENO)) {
        mp.progress = on_progress;
        mp.progress_user = (void *)o.model;
    }
    double rss0 = rss_mib();
    uint64_t t0 = cmn_now_ns();
    rc = eng_model_load(o.model, &mp, &model, err, sizeof(err));
    uint64_t load_ns = cmn_now_ns() - t0;
    if (rc < 0) {
        log_err("%s", err);
        return EMBER_EXIT_FAILURE;
    }
    struct eng_model_info info;
    eng_model_info(model, &info);
    const struct eng_vocab *vocab = eng_model_vocab(model);
    if (!vocab) {
        log_err("%s: the model has no tokenizer", o.model);
        rc = EMBER_EXIT_FAILURE;
        goto out;
    }
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = (uint32_t)o.n_ctx;
    /* [engine] context_length is capped by the model's own; an explicit --ctx is obeyed. */
    if (!o.have_ctx && info.n_ctx_train > 0 && cp.n_ctx > (uint32_t)info.n_ctx_train)
        cp.n_ctx = (uint32_t)info.n_ctx_train;
    cp.n_threads = (uint32_t)o.threads;
    if (o.batch > 0)
        cp.n_batch = (uint32_t)o.batch;
    rc = eng_context_new(model, &cp, &ctx, err, sizeof(err));
    if (rc < 0) {
        log_err("%s", err);
        rc = EMBER_EXIT_FAILURE;
        goto out;
    }
    /* RSS growth over the load and the context (KV cache, buffers) against the file size:
     * how much of the model is really resident */
    double rss1 = rss_mib();
    fprintf(stderr,
            "load: %.2f ms (%s %s, file %.2f MiB, RSS %.2f MiB = +%.2f MiB for model and "
            "context, context %u tokens, batch %u)\n",
            (double)load_ns / 1e6, info.arch, info.file_type, (double)info.size_bytes / 1048576.0,
            rss1, rss1 - rss0, eng_n_ctx(ctx), (unsigned)cp.n_batch);
    char quant_plan[256];
    if (eng_model_quant_plan(model, quant_plan, sizeof(quant_plan)) == 0)
        fprintf(stderr, "quantization (ember quantize): %s\n", quant_plan);

    fprintf(stderr,
            "sampling: temp %.2f, top-k %d, top-p %.2f, min-p %.2f, repeat-penalty %.2f over %d, "
            "presence-penalty %.2f, seed %llu\n",
            (double)o.sp.temperature, (int)o.sp.top_k, (double)o.sp.top_p, (double)o.sp.min_p,
            (double)o.sp.repeat_penalty, (int)o.sp.penalty_last_n, (double)o.sp.presence_penalty,
            (unsigned long long)o.sp.seed);

    struct eng_gen_params gp;
    eng_gen_params_defaults(&gp);
    gp.sampling = o.sp;
    gp.max_tokens = (int32_t)o.n_predict;
    gp.ignore_eog = o.ignore_eos;
    for (size_t i = 0; i < o.n_stop; i++)
        gp.stop[i] = o.stop[i];
    gp.n_stop = o.n_stop;
    gp.n_batch = cp.n_batch;
    gp.ctx_full = o.shift ? ENG_CTX_FULL_SHIFT : ENG_CTX_FULL_STOP;
    gp.should_cancel = on_cancel;

    if (o.chat) {
        rc = run_chat(ctx, vocab, &o, &gp);
        goto out;
    }

    struct out_state out = {.last = '\n'};
    gp.prompt = o.prompt ? o.prompt : "";
    gp.on_text = on_text;
    gp.user = &out;
    if (o.echo && o.prompt && *o.prompt) {
        fputs(o.prompt, stdout);
        out.last = o.prompt[strlen(o.prompt) - 1];
    }
    struct eng_gen_result res;
    rc = eng_generate(ctx, vocab, &gp, &res, err, sizeof(err));
    /* the text ends with a newline, on a terminal or not: a pipe reads whole lines */
    if (out.last != '\n')
        fputc('\n', stdout);
    fflush(stdout);
    if (rc < 0) {
        log_err("%s", err);
        rc = rc == -ENOSPC ? EMBER_EXIT_USAGE : EMBER_EXIT_FAILURE;
        goto out;
    }
    print_timings(&res.stats, res.reason);
    rc = EMBER_EXIT_OK;

out:
    eng_context_free(ctx);
    eng_model_free(model);
    return rc;
}
