/* `ember report`: energy, joules per token per phase and per policy, sessions and events over a
 * time window, read from the telemetry database without disturbing a running agent (read-only,
 * WAL), printed as text or JSON, optionally with an SVG chart of power, frequency and
 * temperature. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "common/timeutil.h"
#include "common/fileio.h"
#include "config.h"
#include "log.h"
#include "telemetry/report.h"
#include "telemetry/store.h"

static void report_usage(FILE *out)
{
    fprintf(out,
            "usage: ember report [--since DURATION] [--db PATH] [--config FILE] [--json]\n"
            "                    [--svg OUT]\n"
            "\n"
            "Energy, joules per token per engine phase and per governor policy, sessions and\n"
            "events over the last DURATION (default 24h), from the telemetry database.\n"
            "\n"
            "  --since DURATION  window length: 45s, 30m, 24h, 7d, 2w or plain seconds\n"
            "  --db PATH         database (default: [telemetry] database of the configuration)\n"
            "  --config FILE     configuration to read the database path from "
            "(default " EMBER_DEFAULT_CONFIG ")\n"
            "  --json            print the report as one JSON object instead of text\n"
            "  --svg OUT         also write an SVG chart of power, frequency and temperature\n"
            "                    (shaded by engine phase) and J/token per policy and phase\n"
            "  --help            this text\n"
            "\n"
            "J/token is joules per generated token throughout; energy that was not measured\n"
            "shows as '-' (null in JSON). Energy by phase is integrated over the engine's\n"
            "prefill and decode intervals; the report says whether idle time is attributed,\n"
            "which boundary was measured (package, soc, wall) and when the figures are an\n"
            "estimate from the CPU power model rather than a meter.\n"
            "Exit codes: 0 ok, 1 the database cannot be read, 2 usage or configuration error.\n");
}

int cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        {"since", required_argument, NULL, 's'},
        {"db", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"svg", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *since = "24h", *db = NULL, *config = NULL, *svg = NULL;
    int json = 0;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":s:d:c:jg:h", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            since = optarg;
            break;
        case 'd':
            db = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'g':
            svg = optarg;
            break;
        case 'h':
            report_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    uint64_t since_s = 0;
    if (tel_report_parse_duration(since, &since_s) < 0)
        return cli_usage_error("--since '%s': expected a duration such as 45s, 30m, 24h, 7d or 2w",
                               since);
    struct agent_config cfg;
    if (!db) {
        if (agent_config_load_for_cli(config, &cfg) != 0)
            return EMBER_EXIT_USAGE;
        db = cfg.telemetry.database;
    }
    struct stat st;
    if (stat(db, &st) == 0 && S_ISDIR(st.st_mode))
        return cli_usage_error("--db %s: is a directory, not a telemetry database", db);
    if (access(db, R_OK) != 0) {
        log_err("%s: %s", db, strerror(errno));
        agent_log_hint("pass --db FILE or set [telemetry] database");
        return EMBER_EXIT_FAILURE;
    }

    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    sp.read_only = 1;
    struct tel_store *store = NULL;
    char err[512];
    if (tel_store_open(db, &sp, &store, err, sizeof(err)) < 0) {
        log_err("%s", err);
        return EMBER_EXIT_FAILURE;
    }
    struct tel_report_params rp = {0};
    rp.until_ns = cmn_wall_ns();
    rp.since_ns = rp.until_ns > since_s * CMN_NS_PER_S ? rp.until_ns - since_s * CMN_NS_PER_S : 0;
    struct tel_report *rep = calloc(1, sizeof(*rep));
    int rc = EMBER_EXIT_OK;
    if (!rep || tel_report_build(store, &rp, rep, err, sizeof(err)) < 0) {
        log_err("%s: %s", db, rep ? err : "out of memory");
        rc = EMBER_EXIT_FAILURE;
        goto out;
    }
    if (json) {
        char *text = tel_report_json(rep);
        if (!text) {
            log_err("out of memory");
            rc = EMBER_EXIT_FAILURE;
            goto out;
        }
        puts(text);
        free(text);
    } else {
        tel_report_print(rep, stdout);
    }
    if (svg) {
        FILE *f = cmn_fopen_write(svg);
        if (!f) {
            log_err("cannot write %s: %s", svg, strerror(errno));
            rc = EMBER_EXIT_FAILURE;
            goto out;
        }
        int r = tel_report_svg(store, &rp, 0, f, err, sizeof(err));
        if (fclose(f) != 0 && r == 0) {
            snprintf(err, sizeof(err), "%s", strerror(errno));
            r = -EIO;
        }
        if (r < 0) {
            log_err("chart %s: %s", svg, err);
            rc = EMBER_EXIT_FAILURE;
            goto out;
        }
    }
out:
    free(rep);
    tel_store_close(store);
    return rc;
}
