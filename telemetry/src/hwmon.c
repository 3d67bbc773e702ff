/* hwmon power and energy channels (Documentation/hwmon/sysfs-interface.rst): energyN_input in
 * microjoules (a counter) and powerN_input / powerN_average in microwatts. Devices are taken in
 * hwmon order; the first one with an energy channel wins, else the first with a power channel.
 * Within a device, channels whose label names a whole (socket, package, total, system, SoC,
 * CPU) are summed; without such a label the lowest-numbered channel is used, because several
 * channels of one device are usually parts (amd_energy lists every core before the socket). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "power_internal.h"

#define HWMON_CHANNELS_MAX 8

struct hwmon_chan {
    char path[PATH_MAX];
    uint64_t last;
};

struct hwmon_state {
    int is_energy;
    struct hwmon_chan ch[HWMON_CHANNELS_MAX];
    int n;
};

static int label_is_whole(const char *label)
{
    static const char *const words[] = {"sock", "package", "pkg", "total", "sys", "soc", "cpu"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(label, words[i]))
            return !strcasestr(label, "core");
    return 0;
}

/* Channel names "energyN_input" or "powerN_<suffix>" in dir; picks per the rule above. */
static int pick_channels(const char *dir, const char *kind, const char *suffix,
                         struct hwmon_state *st)
{
    char **names = NULL;
    int n = tel_list_dir(dir, kind, &names);
    if (n <= 0)
        return n < 0 ? n : -ENOENT;
    int first = -1;
    st->n = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i] + strlen(kind);
        char *end = NULL;
        long idx = strtol(nm, &end, 10);
        if (end == nm || idx < 0 || strcmp(end, suffix) != 0)
            continue;
        char path[PATH_MAX], lpath[PATH_MAX], label[64];
        if (cmn_path(path, sizeof(path), dir, "%s", names[i]) < 0)
            continue;
        if (first < 0)
            first = i;
        if (cmn_path(lpath, sizeof(lpath), dir, "%s%ld_label", kind, idx) == 0 &&
            cmn_read_file(lpath, label, sizeof(label), NULL) == 0 && label_is_whole(label) &&
            st->n < HWMON_CHANNELS_MAX) {
            snprintf(st->ch[st->n].path, sizeof(st->ch[st->n].path), "%s", path);
            st->n++;
        }
    }
    if (st->n == 0 && first >= 0) {
        cmn_path(st->ch[0].path, sizeof(st->ch[0].path), dir, "%s", names[first]);
        st->n = 1;
    }
    tel_names_free(names, n);
    return st->n ? 0 : -ENOENT;
}

/* Energy counters can be root-only (amd_energy since CVE-2020-12912, like RAPL): they are read
 * through the caller's reader when it has one (the agent's privileged helper). */
static int read_chan(const struct tel_power_params *p, const struct hwmon_state *st,
                     const char *path, uint64_t *ret)
{
    if (st->is_energy && p->read_counter)
        return p->read_counter(p->read_counter_ctx, path, ret);
    return cmn_read_u64(path, ret);
}

static int read_all(const struct tel_power_params *p, struct hwmon_state *st, char *desc,
                    size_t desc_len)
{
    for (int i = 0; i < st->n; i++) {
        int r = read_chan(p, st, st->ch[i].path, &st->ch[i].last);
        if (r < 0) {
            if (desc)
                snprintf(desc, desc_len, "%s: %s", st->ch[i].path, strerror(-r));
            return r;
        }
    }
    return 0;
}

static int hwmon_open(const struct tel_power_params *p, void **ret_state, char *desc,
                      size_t desc_len)
{
    char base[PATH_MAX];
    if (cmn_path(base, sizeof(base), p->root, "sys/class/hwmon") < 0)
        return -ENAMETOOLONG;
    char **devs = NULL;
    int n = tel_list_dir(base, "hwmon", &devs);
    if (n <= 0)
        return -ENOENT;
    struct hwmon_state *st = calloc(1, sizeof(*st));
    if (!st) {
        tel_names_free(devs, n);
        return -ENOMEM;
    }
    int r = -ENOENT;
    /* energy anywhere beats power anywhere */
    for (int pass = 0; pass < 3 && r < 0; pass++) {
        const char *kind = pass == 0 ? "energy" : "power";
        const char *suffix = pass == 2 ? "_average" : "_input";
        for (int i = 0; i < n; i++) {
            char dir[PATH_MAX];
            struct stat sb;
            if (cmn_path(dir, sizeof(dir), base, "%s", devs[i]) < 0 || stat(dir, &sb) < 0 ||
                !S_ISDIR(sb.st_mode))
                continue;
            if (pick_channels(dir, kind, suffix, st) < 0)
                continue;
            st->is_energy = pass == 0;
            r = read_all(p, st, desc, desc_len);
            if (r == 0) {
                size_t used = (size_t)snprintf(desc, desc_len, "hwmon: %s", devs[i]);
                for (int c = 0; c < st->n && used < desc_len; c++) {
                    const char *slash = strrchr(st->ch[c].path, '/');
                    int w = snprintf(desc + used, desc_len - used, " %s", slash ? slash + 1 : "");
                    if (w < 0)
                        break;
                    used += (size_t)w;
                }
                break;
            }
        }
    }
    tel_names_free(devs, n);
    if (r < 0) {
        free(st);
        return r;
    }
    *ret_state = st;
    return 0;
}

static int hwmon_read(void *state, const struct tel_power_params *p,
                      const struct tel_power_inputs *in, struct tel_src_reading *ret)
{
    (void)in;
    struct hwmon_state *st = state;
    ret->is_energy = st->is_energy;
    double sum = 0;
    for (int i = 0; i < st->n; i++) {
        uint64_t cur = 0;
        int r = read_chan(p, st, st->ch[i].path, &cur);
        if (r < 0)
            return r;
        if (st->is_energy)
            sum += tel_counter_delta_j(st->ch[i].last, cur, 0); /* a decrease is a reset */
        else
            sum += (double)cur * 1e-6;
        st->ch[i].last = cur;
    }
    if (st->is_energy)
        ret->delta_j = sum;
    else
        ret->power_w = sum;
    return 0;
}

static void hwmon_close(void *state)
{
    free(state);
}

const struct tel_src_ops tel_src_hwmon = {
    .source = TEL_SOURCE_HWMON,
    .open = hwmon_open,
    .read = hwmon_read,
    .close = hwmon_close,
};
