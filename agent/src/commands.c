/* The table of ember sub-commands, in the order `ember --help` lists them. A new sub-command adds
 * one line here and its cmd_*.c file. */
#include "commands.h"

#include <stddef.h>

const struct ember_command ember_commands[] = {
    {"config", "check or dump the configuration", cmd_config},
    {NULL, NULL, NULL},
};
