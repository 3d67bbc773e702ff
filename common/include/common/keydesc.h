/* A configuration key as the module that enforces it describes it: its name, its type, the range
 * or the choices it accepts, its default and its documentation. A module exports a table of
 * these (the engine's eng_config_keys, telemetry's tel_config_keys); the agent composes its key
 * table from them (agent/config/config_keys.c), keeping only where each value lives and whether
 * a reload applies it. So a key is described once, by its owner, and the configuration checker
 * can never accept a value the module refuses. */
#ifndef COMMON_KEYDESC_H
#define COMMON_KEYDESC_H

#include <stddef.h>
#include <string.h>

#include "common/range.h"

enum cmn_key_type { CMN_KEY_BOOL, CMN_KEY_INT, CMN_KEY_DOUBLE, CMN_KEY_STRING, CMN_KEY_ENUM };

struct cmn_key_desc {
    const char *name; /* as written in the file, within the module's section */
    enum cmn_key_type type;
    const struct cmn_range *range; /* CMN_KEY_INT / CMN_KEY_DOUBLE: what the module accepts */
    const char *const *choices;    /* CMN_KEY_ENUM: NULL-terminated */
    const char *def;               /* the default, as it would be written in the file */
    const char *doc;
};

/* The row named name in a module's table of n rows, or NULL. */
static inline const struct cmn_key_desc *cmn_key_desc_find(const struct cmn_key_desc *table,
                                                           size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

#endif
