/* The table of ember sub-commands, in the order `ember --help` lists them. A new sub-command adds
 * one line here and its cmd_*.c file. */
#include "commands.h"

#include <stddef.h>

const struct ember_command ember_commands[] = {
    {"agent", "run the daemon: API, governor, telemetry, MQTT", cmd_agent},
    {"run", "generate text with a GGUF model (prompt or chat)", cmd_run},
    {"bench", "prompt and generation speed of a model (as llama-bench)", cmd_bench},
    {"quantize", "convert a GGUF model to Q8_0/Q4_0/K-quants or an adaptive mixed plan",
     cmd_quantize},
    {"eval", "perplexity, KL divergence and top-1 agreement of a model against a reference",
     cmd_eval},
    {"tokenize", "print the token ids of text read from stdin", cmd_tokenize},
    {"governor", "CPU frequency governor: status, set, restore, calibrate, sim", cmd_governor},
    {"config", "check or dump the configuration", cmd_config},
    {"gpio", "status LED, fan, button and power-loss lines: status, test", cmd_gpio},
    {"report", "energy and joules per token from the telemetry history", cmd_report},
    {"fleet", "status of every appliance on a (central) MQTT broker", cmd_fleet},
    {"kb", "the knowledge plugin's database: import, query, eval, stats", cmd_kb},
    {"models", "installed models: list, show, rm ([models] dir)", cmd_models},
    {"pull", "download a GGUF model into the model directory (resumable, verified)", cmd_pull},
    {NULL, NULL, NULL},
};
