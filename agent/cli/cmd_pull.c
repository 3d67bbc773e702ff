/* `ember pull URL|hf:OWNER/REPO/FILE.gguf`: downloads a model into [models] dir
 * (agent/models/pull.h does the work), with a progress bar, rate and ETA on a terminal and a
 * line every 10% elsewhere. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common/timeutil.h"
#include "config.h"
#include "log.h"
#include "pull.h"

static void pull_usage(FILE *out)
{
    fprintf(out,
            "usage: ember pull [--name NAME.gguf] [--sha256 HEX] [--force] [--dir DIR]\n"
            "                  [--retries N] [--config FILE] URL|hf:OWNER/REPO/FILE.gguf\n"
            "\n"
            "Downloads a GGUF model into the model directory ([models] dir, default\n"
            "/var/lib/ember/models), where the agent serves it under its file name without\n"
            ".gguf. hf:OWNER/REPO/FILE.gguf is https://huggingface.co/OWNER/REPO/resolve/main/\n"
            "FILE.gguf ($HF_ENDPOINT replaces the host).\n"
            "\n"
            "The file is written as a hidden .NAME.part and renamed into place only after its\n"
            "size, its SHA-256 (--sha256, Hugging Face's X-Linked-Etag, or a URL.sha256 file\n"
            "next to it, whichever the source publishes) and its GGUF header check out. An\n"
            "interrupted download resumes (HTTP Range) when pulled again; a file already\n"
            "installed with the same size and hash is skipped. Free disk space is checked first.\n"
            "\n"
            "  --name NAME.gguf  file name in the directory (default: the URL's)\n"
            "  --sha256 HEX      the expected SHA-256 (64 hexadecimal digits)\n"
            "  --force           replace an installed file of that name that differs\n"
            "  --dir DIR         the model directory (default: [models] dir)\n"
            "  --retries N       resume a broken transfer up to N times (default 3)\n"
            "  --config FILE     configuration (default " EMBER_DEFAULT_CONFIG ")\n"
            "  -h, --help        this text\n"
            "\n"
            "Exit codes: 0 installed (or already there), 1 the download or a check failed (a\n"
            "partial file is kept to resume), 2 usage error.\n");
}

struct bar {
    bool tty;
    uint64_t t0_ns, last_ns, last_done, start_done;
    double rate; /* bytes/s, smoothed */
    int last_decile;
    bool drawn, complete_shown;
};

static void human(double bytes, char *buf, size_t len)
{
    if (bytes >= 1e9)
        snprintf(buf, len, "%.2f GB", bytes / 1e9);
    else if (bytes >= 1e6)
        snprintf(buf, len, "%.1f MB", bytes / 1e6);
    else
        snprintf(buf, len, "%.0f kB", bytes / 1e3);
}

static void on_progress(void *user, uint64_t done, uint64_t total)
{
    struct bar *b = user;
    uint64_t now = cmn_now_ns();
    if (!b->t0_ns) {
        b->t0_ns = b->last_ns = now;
        b->last_done = b->start_done = done;
    }
    bool complete = total && done == total;
    if (complete && b->complete_shown)
        return; /* libcurl goes on calling until the transfer closes */
    if (now - b->last_ns < 200000000ull && !complete)
        return; /* five updates a second are plenty */
    b->complete_shown = complete;
    double dt = (double)(now - b->last_ns) / 1e9;
    if (dt > 0 && done >= b->last_done) {
        double inst = (double)(done - b->last_done) / dt;
        b->rate = b->rate > 0 ? 0.7 * b->rate + 0.3 * inst : inst;
    }
    b->last_ns = now;
    b->last_done = done;
    char d[32], t[32], r[32], eta[32] = "-";
    human((double)done, d, sizeof(d));
    human((double)total, t, sizeof(t));
    human(b->rate, r, sizeof(r));
    if (total && b->rate > 0) {
        double s = (double)(total - done) / b->rate;
        if (s < 3600)
            snprintf(eta, sizeof(eta), "%dm%02ds", (int)s / 60, (int)s % 60);
        else
            snprintf(eta, sizeof(eta), "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
    }
    if (b->tty) {
        int pct = total ? (int)(done * 100 / total) : 0;
        char bar[31];
        int fill = total ? (int)(done * 30 / total) : 0;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        if (total)
            fprintf(stderr, "\r%3d%% [%s] %s / %s  %s/s  ETA %s   ", pct, bar, d, t, r, eta);
        else
            fprintf(stderr, "\r%s  %s/s   ", d, r);
        b->drawn = true;
    } else if (total) {
        int decile = (int)(done * 10 / total);
        if (decile != b->last_decile) {
            b->last_decile = decile;
            fprintf(stderr, "pull: %d%% %s / %s, %s/s, ETA %s\n", decile * 10, d, t, r, eta);
        }
    }
}

static void on_note(void *user, const char *line)
{
    struct bar *b = user;
    if (b->drawn) {
        fputc('\n', stderr);
        b->drawn = false;
    }
    log_notice("%s", line);
}

int cmd_pull(int argc, char **argv)
{
    static const struct option options[] = {
        {"name", required_argument, NULL, 'n'},    {"sha256", required_argument, NULL, 's'},
        {"force", no_argument, NULL, 'f'},         {"dir", required_argument, NULL, 'd'},
        {"retries", required_argument, NULL, 'r'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct agent_pull_params p = {.retries = 3};
    const char *config = NULL, *dir = NULL;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            p.name = optarg;
            break;
        case 's':
            p.sha256 = optarg;
            break;
        case 'f':
            p.force = true;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'r': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 100)
                return cli_usage_error("--retries: '%s' is not a count 0..100", optarg);
            p.retries = (unsigned)v;
            break;
        }
        case 'c':
            config = optarg;
            break;
        case 'h':
            pull_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (optind >= argc)
        return cli_usage_error("say what to pull: a URL or hf:OWNER/REPO/FILE.gguf");
    p.source = argv[optind++];
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    struct agent_config cfg;
    int rc = agent_config_load_for_cli(config, &cfg);
    if (rc)
        return rc;
    p.dir = dir ? dir : cfg.models.dir;
    if (!p.dir[0])
        return cli_usage_error("no model directory: set [models] dir or give --dir");
    struct bar b = {.tty = isatty(STDERR_FILENO) == 1, .last_decile = -1};
    p.progress = on_progress;
    p.note = on_note;
    p.user = &b;
    struct agent_pull_result res;
    char err[1024] = "";
    rc = agent_pull(&p, &res, err, sizeof(err));
    if (b.drawn)
        fputc('\n', stderr);
    if (rc == -EINVAL && !res.path[0]) {
        log_err("%s", err);
        return EMBER_EXIT_USAGE;
    }
    if (rc < 0) {
        log_err("%s", err);
        return EMBER_EXIT_FAILURE;
    }
    char size[32];
    human((double)res.bytes, size, sizeof(size));
    if (res.skipped)
        printf("%s is installed already (%s, same %s): skipped\n", res.id, size,
               res.sha256[0] ? "size and SHA-256" : "size");
    else
        printf("installed %s: %s (%s%s%s), SHA-256 %s%s%s\n", res.id, res.path, size,
               res.resumed_from ? ", resumed" : "", "", res.sha256,
               res.sha256_source ? " verified against " : " (the source publishes none)",
               res.sha256_source ? res.sha256_source : "");
    return EMBER_EXIT_OK;
}
