/* `ember agent`: parses its options and runs the daemon (daemon.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

static void agent_usage(FILE *out)
{
    fprintf(out,
            "usage: ember agent [--config FILE] [--model GGUF] [--port N] [--user NAME] [--help]\n"
            "\n"
            "Runs the Ember daemon: the OpenAI-compatible API over the configured model, the\n"
            "DVFS governor, power telemetry (SQLite) and MQTT publishing. Meant to run under\n"
            "systemd (Type=notify); runs in the foreground. SIGHUP reloads the configuration,\n"
            "SIGTERM/SIGINT drain requests, restore CPU frequency settings and exit 0.\n"
            "\n"
            "  --config FILE  configuration (default " EMBER_DEFAULT_CONFIG ")\n"
            "  --model GGUF   serve this model instead of [engine] model\n"
            "  --port N       listen on this port instead of [api] port\n"
            "  --user NAME    started as root: fork the privileged helper, then run as NAME\n"
            "                 (instead of [agent] user; the packaged unit passes --user ember;\n"
            "                 started as root without either, the agent warns; docs/agent.md)\n"
            "\n"
            "Exit codes: 0 stopped cleanly, 1 failed, 2 usage or configuration error, 4 the\n"
            "privileged helper died (stopped for systemd to start both again).\n");
}

int cmd_agent(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"model", required_argument, NULL, 'm'},
        {"port", required_argument, NULL, 'p'},
        {"user", required_argument, NULL, 'u'}, /* privilege separation (issue 13) */
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *model = NULL, *user = NULL;
    long port = -1;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:m:p:u:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 'p': {
            char *end;
            port = strtol(optarg, &end, 10);
            if (end == optarg || *end || port < 1 || port > 65535)
                return cli_usage_error("--port %s: expected 1..65535", optarg);
            break;
        }
        case 'u':
            user = optarg;
            break;
        case 'h':
            agent_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    struct agent_config cfg;
    int rc = agent_config_load_for_cli(config_path, &cfg);
    if (rc)
        return rc;
    if (model) {
        if (strlen(model) >= sizeof(cfg.engine.model))
            return cli_usage_error("--model: path too long");
        snprintf(cfg.engine.model, sizeof(cfg.engine.model), "%s", model);
    }
    if (user) {
        if (!*user || strlen(user) >= sizeof(cfg.agent.user))
            return cli_usage_error("--user: expected a user name");
        snprintf(cfg.agent.user, sizeof(cfg.agent.user), "%s", user);
    }
    if (port > 0)
        cfg.api.port = (int)port;
    /* A reload re-reads the file that was named (or the default one when it existed). */
    const char *reload_path = config_path;
    if (!reload_path && strcmp(cfg.source, "(defaults)") != 0)
        reload_path = EMBER_DEFAULT_CONFIG;
    return agent_daemon_run(&cfg, reload_path);
}
