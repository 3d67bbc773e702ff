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

/* Where the governor reads and saves: root (root_override, else cfg->sysfs_root) resolved to
 * an absolute path (what a saved file records must work from any directory), and the saved
 * file (saved_override, else cfg->saved_path; when that is the default and the root is not
 * "/", ROOT/run/ember/governor.saved, so a fake tree never touches the host's /run/ember).
 * -ENOENT / -ENOTDIR when the root is not a directory (err says so). */
int agent_governor_paths(const struct cfg_governor *cfg, const char *root_override,
                         const char *saved_override, char *root, size_t root_len, char *saved,
                         size_t saved_len, char *err, size_t err_len);

#endif
