/* [governor] config → struct gov_tunables, through the governor's own parser (see gov_config.h). */
#include "gov_config.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "governor/safety.h"

static const struct cfg_key *agent_key(const char *name)
{
    for (const struct cfg_key *k = agent_config_keys; k->section; k++)
        if (strcmp(k->section, "governor") == 0 && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* The value of an agent key as text, formatted the way the file would write it. */
static void key_text(const struct cfg_key *k, const struct cfg_governor *g, char *buf, size_t len)
{
    /* cfg_key offsets are into struct agent_config; g is its governor member. */
    const char *base = (const char *)g - offsetof(struct agent_config, governor);
    const char *field = base + k->offset;
    switch (k->type) {
    case CFG_INT: {
        int v;
        memcpy(&v, field, sizeof(v));
        snprintf(buf, len, "%d", v);
        break;
    }
    case CFG_DOUBLE: {
        double v;
        memcpy(&v, field, sizeof(v));
        snprintf(buf, len, "%.17g", v);
        break;
    }
    case CFG_BOOL: {
        _Bool v;
        memcpy(&v, field, sizeof(v));
        snprintf(buf, len, "%s", v ? "true" : "false");
        break;
    }
    default:
        snprintf(buf, len, "%s", field);
        break;
    }
}

int agent_governor_tunables(const struct cfg_governor *cfg, struct gov_tunables *t,
                            const char **ret_key, char *err, size_t err_len)
{
    gov_tunables_defaults(t);
    size_t n;
    const struct gov_tunable_desc *table = gov_tunable_table(&n);
    for (size_t i = 0; i < n; i++) {
        const struct cfg_key *k = agent_key(table[i].key);
        if (!k)
            continue; /* the test catches a governor tunable the config does not offer */
        char value[CFG_STR_PATH];
        key_text(k, cfg, value, sizeof(value));
        int rc = gov_tunables_set(t, table[i].key, value, err, err_len);
        if (rc < 0) {
            if (ret_key)
                *ret_key = table[i].key;
            return -EINVAL;
        }
    }
    const char *bad = NULL;
    if (gov_tunables_validate(t, &bad, err, err_len) < 0) {
        if (ret_key)
            *ret_key = bad;
        return -EINVAL;
    }
    return 0;
}

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
