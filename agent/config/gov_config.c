/* Where the governor reads and saves, from the [governor] section (see gov_config.h). */
#include "gov_config.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "governor/safety.h"

int agent_governor_paths(const struct cfg_governor *cfg, const char *root_override,
                         const char *saved_override, char *root, size_t root_len, char *saved,
                         size_t saved_len, char *err, size_t err_len)
{
    const char *r = root_override && *root_override ? root_override : cfg->sysfs_root;
    if (!*r)
        r = "/";
    char abs[PATH_MAX];
    struct stat st;
    if (!realpath(r, abs) || stat(abs, &st) != 0) {
        int e = errno;
        snprintf(err, err_len, "%s: %s", r, e == ENOENT ? "no such directory" : strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s: not a directory", r);
        return -ENOTDIR;
    }
    int n;
    if ((size_t)snprintf(root, root_len, "%s", abs) >= root_len)
        goto too_long;
    if (saved_override && *saved_override)
        n = snprintf(saved, saved_len, "%s", saved_override);
    else if (strcmp(cfg->saved_path, GOV_SAVED_DEFAULT_PATH) == 0 && strcmp(abs, "/") != 0)
        n = snprintf(saved, saved_len, "%s%s", abs, GOV_SAVED_DEFAULT_PATH);
    else
        n = snprintf(saved, saved_len, "%s", cfg->saved_path);
    if (n < 0 || (size_t)n >= saved_len)
        goto too_long;
    return 0;
too_long:
    snprintf(err, err_len, "%s: path too long", r);
    return -ENAMETOOLONG;
}
