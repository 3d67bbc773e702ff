/* The [engine] configuration keys, described by the engine that enforces them: the context
 * (threads, context length, batch, KV cache, mmap), the chat template, the sampler's defaults
 * (with the ranges eng_sampler_params_validate applies) and the generation limits. The agent
 * composes its key table from these rows (agent/config/config_keys.c); only [engine] model, a
 * path the agent opens, is the agent's own. */
#ifndef ENGINE_CONFIG_KEYS_H
#define ENGINE_CONFIG_KEYS_H

#include <stddef.h>

#include "common/keydesc.h"

/* The table (names as in the file) and its length. chat_template's choices are "auto" and
 * the chat template families (eng_chat_family_name). Thread-safe. */
const struct cmn_key_desc *eng_config_keys(size_t *ret_n);

#endif
