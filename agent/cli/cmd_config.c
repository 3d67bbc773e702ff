/* `ember config check FILE` and `ember config dump`: validate a configuration, or print the
 * effective one (optionally with every key's documentation, which is how etc/ember.conf is made).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "log.h"

static void config_usage(FILE *out)
{
    fprintf(out,
            "usage: ember config check [FILE] [--config FILE]\n"
            "       ember config dump [--config FILE] [--defaults] [--docs]\n"
            "\n"
            "check  validate FILE (default: --config or " EMBER_DEFAULT_CONFIG
            "); prints every problem\n"
            "       as file:line: [section] key: reason and exits 2, or prints 'ok'.\n"
            "dump   print the effective configuration (built-in defaults overlaid with the\n"
            "       file); --defaults ignores the file, --docs adds each key's documentation.\n"
            "\n"
            "Exit codes: 0 ok, 1 the file could not be read, 2 the file is invalid, missing or\n"
            "not a file.\n");
}

static void log_problems(const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        if (n > 0)
            log_err("%.*s", n, p);
        p += n + (nl ? 1 : 0);
    }
}

int cmd_config(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"defaults", no_argument, NULL, 'D'},
        {"docs", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2)
        return cli_usage_error("say what to do: check or dump");
    const char *action = argv[1];
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        config_usage(stdout);
        return EMBER_EXIT_OK;
    }
    const char *path = NULL;
    bool defaults_only = false, docs = false;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, ":c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'D':
            defaults_only = true;
            break;
        case 'd':
            docs = true;
            break;
        case 'h':
            config_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv + 1);
        }
    }
    struct agent_config cfg;
    if (strcmp(action, "check") == 0) {
        if (optind < argc - 1)
            path = argv[1 + optind++];
        if (optind < argc - 1)
            return cli_usage_error("unexpected argument '%s' (one FILE at most)", argv[1 + optind]);
        if (!path)
            path = EMBER_DEFAULT_CONFIG;
        char err[16384];
        int rc = agent_config_load_file(path, &cfg, err, sizeof(err));
        if (rc < 0) {
            log_problems(err);
            return rc == -EINVAL || rc == -ENOENT || rc == -EISDIR ? EMBER_EXIT_USAGE
                                                                   : EMBER_EXIT_FAILURE;
        }
        printf("%s: ok\n", path);
        return EMBER_EXIT_OK;
    }
    if (strcmp(action, "dump") == 0) {
        if (optind < argc - 1)
            return cli_usage_error("unexpected argument '%s'", argv[1 + optind]);
        if (defaults_only) {
            agent_config_defaults(&cfg);
        } else {
            int rc = agent_config_load_for_cli(path, &cfg);
            if (rc)
                return rc;
        }
        agent_config_dump(&cfg, stdout, docs);
        return EMBER_EXIT_OK;
    }
    return cli_usage_error("unknown action '%s' (check or dump)", action);
}
