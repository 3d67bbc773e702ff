/* RAPL through the powercap framework (Documentation/power/powercap/powercap.rst). Zones are
 * intel-rapl:N (package-N or psys) with subzones intel-rapl:N:M (core, uncore, dram); each has
 * energy_uj, a counter that wraps to 0 after max_energy_range_uj. AMD's RAPL appears under the
 * same names. The total is psys when that zone exists and is readable (it covers the platform),
 * else the sum of the packages plus DRAM; core and uncore are reported but never added (they are
 * inside the package). Zones come from /sys/class/powercap, or from the directory the kernel
 * keeps them in when the class links are missing. energy_uj is root-only on kernels since the
 * 2020 fix for CVE-2020-8694, so an unreadable package counter makes this source unavailable. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "power_internal.h"

#define RAPL_ZONES_MAX 32

enum zone_kind { ZONE_PACKAGE, ZONE_PSYS, ZONE_CORE, ZONE_DRAM, ZONE_OTHER };

struct rapl_zone {
    char energy_path[PATH_MAX];
    char name[32];
    enum zone_kind kind;
    uint64_t max_uj; /* 0 when max_energy_range_uj is missing */
    uint64_t last_uj;
};

struct rapl_state {
    struct rapl_zone z[RAPL_ZONES_MAX];
    int n;
    int use_psys;
    /* energy_uj is root-only: read through the caller's reader when it gave one. */
    int (*read_counter)(void *ctx, const char *path, uint64_t *ret);
    void *read_ctx;
};

static int read_energy(const struct rapl_state *st, const char *path, uint64_t *ret)
{
    if (st->read_counter)
        return st->read_counter(st->read_ctx, path, ret);
    return cmn_read_u64(path, ret);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static enum zone_kind kind_of(const char *name)
{
    if (strncmp(name, "package", 7) == 0)
        return ZONE_PACKAGE;
    if (strcmp(name, "psys") == 0)
        return ZONE_PSYS;
    if (strcmp(name, "core") == 0)
        return ZONE_CORE;
    if (strcmp(name, "dram") == 0)
        return ZONE_DRAM;
    return ZONE_OTHER;
}

/* Adds the zone in dir; unreadable energy in a zone the total needs is an error. */
static int add_zone(struct rapl_state *st, const char *dir, char *desc, size_t desc_len)
{
    if (st->n == RAPL_ZONES_MAX)
        return 0;
    struct rapl_zone *z = &st->z[st->n];
    memset(z, 0, sizeof(*z));
    char path[PATH_MAX];
    if (cmn_path(path, sizeof(path), dir, "name") < 0 ||
        cmn_read_string(path, z->name, sizeof(z->name)) < 0)
        return 0; /* not a zone */
    z->kind = kind_of(z->name);
    if (cmn_path(z->energy_path, sizeof(z->energy_path), dir, "energy_uj") < 0)
        return -ENAMETOOLONG;
    int r = read_energy(st, z->energy_path, &z->last_uj);
    if (r < 0) {
        if (z->kind == ZONE_PACKAGE || z->kind == ZONE_DRAM) {
            snprintf(desc, desc_len, "%s: %s", z->energy_path, strerror(-r));
            return r;
        }
        return 0; /* core/uncore/psys without a counter: just not used */
    }
    if (cmn_path(path, sizeof(path), dir, "max_energy_range_uj") == 0 &&
        cmn_read_u64(path, &z->max_uj) < 0)
        z->max_uj = 0;
    st->n++;
    return 0;
}

/* Zone directories: class links first, else the kernel's own tree. */
static int scan(struct rapl_state *st, const char *root, char *desc, size_t desc_len)
{
    char base[PATH_MAX], dir[PATH_MAX];
    char **names = NULL;
    int found_dirs = 0;
    if (cmn_path(base, sizeof(base), root, "sys/class/powercap") == 0) {
        int n = tel_list_dir(base, "intel-rapl:", &names);
        for (int i = 0; i < n; i++) {
            if (cmn_path(dir, sizeof(dir), base, "%s", names[i]) < 0 || !is_dir(dir))
                continue;
            found_dirs++;
            int r = add_zone(st, dir, desc, desc_len);
            if (r < 0) {
                tel_names_free(names, n);
                return r;
            }
        }
        tel_names_free(names, n > 0 ? n : 0);
    }
    if (found_dirs)
        return 0;
    if (cmn_path(base, sizeof(base), root, "sys/devices/virtual/powercap/intel-rapl") < 0)
        return -ENOENT;
    int n = tel_list_dir(base, "intel-rapl:", &names);
    if (n < 0)
        return -ENOENT;
    for (int i = 0; i < n; i++) {
        if (cmn_path(dir, sizeof(dir), base, "%s", names[i]) < 0 || !is_dir(dir))
            continue;
        int r = add_zone(st, dir, desc, desc_len);
        char **sub = NULL;
        int m = r == 0 ? tel_list_dir(dir, "intel-rapl:", &sub) : 0;
        for (int j = 0; r == 0 && j < m; j++) {
            char subdir[PATH_MAX];
            if (cmn_path(subdir, sizeof(subdir), dir, "%s", sub[j]) == 0 && is_dir(subdir))
                r = add_zone(st, subdir, desc, desc_len);
        }
        tel_names_free(sub, m > 0 ? m : 0);
        if (r < 0) {
            tel_names_free(names, n);
            return r;
        }
    }
    tel_names_free(names, n);
    return 0;
}

static int rapl_open(const struct tel_power_params *p, void **ret_state, char *desc,
                     size_t desc_len)
{
    struct rapl_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->read_counter = p->read_counter;
    st->read_ctx = p->read_counter_ctx;
    int r = scan(st, p->root, desc, desc_len);
    if (r < 0)
        goto fail;
    int packages = 0;
    for (int i = 0; i < st->n; i++) {
        if (st->z[i].kind == ZONE_PSYS)
            st->use_psys = 1;
        if (st->z[i].kind == ZONE_PACKAGE)
            packages++;
    }
    if (!packages && !st->use_psys) {
        snprintf(desc, desc_len, "no readable package or psys zone");
        r = -ENOENT;
        goto fail;
    }
    size_t used = (size_t)snprintf(desc, desc_len, "rapl:");
    for (int i = 0; i < st->n && used < desc_len; i++) {
        int counted = st->use_psys ? st->z[i].kind == ZONE_PSYS
                                   : (st->z[i].kind == ZONE_PACKAGE || st->z[i].kind == ZONE_DRAM);
        int w =
            snprintf(desc + used, desc_len - used, " %s%s", st->z[i].name, counted ? "" : "(info)");
        if (w < 0)
            break;
        used += (size_t)w;
    }
    *ret_state = st;
    return 0;

fail:
    free(st);
    return r;
}

static void add_nan(double *acc, double v)
{
    *acc = isnan(*acc) ? v : *acc + v;
}

static int rapl_read(void *state, const struct tel_power_params *p,
                     const struct tel_power_inputs *in, struct tel_src_reading *ret)
{
    (void)p;
    (void)in;
    struct rapl_state *st = state;
    ret->is_energy = 1;
    ret->delta_j = 0;
    for (int i = 0; i < st->n; i++) {
        struct rapl_zone *z = &st->z[i];
        uint64_t cur = 0;
        int r = read_energy(st, z->energy_path, &cur);
        if (r < 0) {
            if (z->kind == ZONE_CORE || z->kind == ZONE_OTHER)
                continue;
            return r;
        }
        double d = tel_counter_delta_j(z->last_uj, cur, z->max_uj);
        z->last_uj = cur;
        switch (z->kind) {
        case ZONE_PSYS:
            if (st->use_psys)
                ret->delta_j += d;
            break;
        case ZONE_PACKAGE:
            add_nan(&ret->package_j, d);
            if (!st->use_psys)
                ret->delta_j += d;
            break;
        case ZONE_DRAM:
            add_nan(&ret->dram_j, d);
            if (!st->use_psys)
                ret->delta_j += d;
            break;
        case ZONE_CORE:
            add_nan(&ret->core_j, d);
            break;
        case ZONE_OTHER:
            break;
        }
    }
    return 0;
}

static void rapl_close(void *state)
{
    free(state);
}

const struct tel_src_ops tel_src_rapl = {
    .source = TEL_SOURCE_RAPL,
    .open = rapl_open,
    .read = rapl_read,
    .close = rapl_close,
};
