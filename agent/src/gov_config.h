/* Translation of the [governor] configuration section into the governor's tunables. The
 * governor owns the meaning, ranges and cross-key rules of its tunables (gov_tunable_table); the
 * agent's key table lists each of them so etc/ember.conf documents them, reads their ranges from
 * that table (agent_config_key_range), and a test keeps names and defaults in step. */
#ifndef AGENT_GOV_CONFIG_H
#define AGENT_GOV_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "governor/policy.h"

/* Fills t from cfg (every governor tunable). On a value the governor refuses, returns -EINVAL,
 * writes the reason to err and the offending key name to *ret_key (may be NULL). */
int agent_governor_tunables(const struct cfg_governor *cfg, struct gov_tunables *t,
                            const char **ret_key, char *err, size_t err_len);

#endif
