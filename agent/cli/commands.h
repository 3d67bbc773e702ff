/* The ember sub-commands. Each is `int cmd_x(int argc, char **argv)` where argv[0] is the
 * sub-command's own name, returning an exit code from enum ember_exit. */
#ifndef AGENT_COMMANDS_H
#define AGENT_COMMANDS_H

#include <stdint.h>

#include "exit_codes.h"

struct ember_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

/* Usage errors, the same in every command: one "ember CMD: error: ..." line and one hint line
 * pointing at --help. Both return EMBER_EXIT_USAGE. cli_option_error takes what getopt_long
 * returned ('?' or ':'; the option string starts with ':' and opterr is 0). */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_option_error(int opt, char **argv);
/* An integer option value in [min, max] into *ret: 0, else the usage error "FLAG: 'S' is not an
 * integer in [MIN, MAX]" (EMBER_EXIT_USAGE, *ret untouched). */
int cli_parse_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *ret);

/* The table, terminated by a NULL name. */
extern const struct ember_command ember_commands[];

int cmd_config(int argc, char **argv);
int cmd_agent(int argc, char **argv);
/* `ember governor status|set|restore|calibrate|sim`. */
int cmd_governor(int argc, char **argv);
/* `ember governor sim` (dispatched by `ember governor`). */
int cmd_governor_sim(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
/* `ember bench`: prompt and generation speed, llama-bench style. */
int cmd_bench(int argc, char **argv);
/* `ember quantize` and `ember eval` (cmd_quantize.c, cmd_eval.c). */
int cmd_quantize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* `ember fleet status`: one line per appliance seen on an MQTT broker (cmd_fleet.c). */
int cmd_fleet(int argc, char **argv);
/* `ember gpio status|test`: the [gpio] lines (cmd_gpio.c). */
int cmd_gpio(int argc, char **argv);
/* `ember kb import|query|eval|stats`: the knowledge plugin's database (cmd_kb.c). */
int cmd_kb(int argc, char **argv);
/* `ember models list|show|rm` and `ember pull` (cmd_models.c, cmd_pull.c; docs/models.md). */
int cmd_models(int argc, char **argv);
int cmd_pull(int argc, char **argv);

#endif
