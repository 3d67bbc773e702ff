/* The [governor] section's paths as the governor needs them. Its tunables need no translation:
 * the configuration stores them as the governor's own struct gov_tunables, parsed and ranged by
 * the governor's table (config_keys.c splices that table in). */
#ifndef AGENT_GOV_CONFIG_H
#define AGENT_GOV_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "governor/policy.h"

/* Where the governor reads and saves: root (root_override, else cfg->sysfs_root) resolved to
 * an absolute path (what a saved file records must work from any directory), and the saved
 * file (saved_override, else cfg->saved_path; when that is the default and the root is not
 * "/", ROOT/run/ember/governor.saved, so a fake tree never touches the host's /run/ember).
 * -ENOENT / -ENOTDIR when the root is not a directory (err says so). */
int agent_governor_paths(const struct cfg_governor *cfg, const char *root_override,
                         const char *saved_override, char *root, size_t root_len, char *saved,
                         size_t saved_len, char *err, size_t err_len);

#endif
