/* ember: one binary, many sub-commands (agent, run, governor, report, config, ...). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ember [--version] [--help] COMMAND [ARGS...]\n"
                 "\n"
                 "Ember: a power-aware LLM appliance agent (inference engine, DVFS governor,\n"
                 "power telemetry over SQLite and MQTT).\n"
                 "\n"
                 "Commands:\n");
    for (const struct ember_command *c = ember_commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\n"
                 "Every command takes --config FILE (default " EMBER_DEFAULT_CONFIG
                 "; built-in defaults when absent)\n"
                 "and --help. Exit codes: 0 ok, 1 failure, 2 usage or config error, 3 unsupported "
                 "here.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        log_err("no command given");
        agent_log_hint("'ember --help' lists the commands");
        return EMBER_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EMBER_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("ember %s\n", EMBER_VERSION);
        return EMBER_EXIT_OK;
    }
    for (const struct ember_command *c = ember_commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0) {
            agent_log_set_command(c->name);
            return c->run(argc - 1, argv + 1);
        }
    }
    log_err("unknown command '%s'", argv[1]);
    agent_log_hint("'ember --help' lists the commands");
    return EMBER_EXIT_USAGE;
}
