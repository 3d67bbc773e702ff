/* Battery power from the power_supply class (Documentation/ABI/testing/sysfs-class-power, ACPI
 * batteries included): while a battery discharges, power_now (microwatts), or current_now
 * (microamps) times voltage_now (microvolts), is what the whole machine draws. On AC or while
 * charging it says nothing about the system, so the source only counts while some battery
 * discharges; when none does, a read fails and the dispatcher falls back to the estimate (and
 * comes back here at the next reprobe). Several discharging batteries are summed. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "power_internal.h"

#define BATTERIES_MAX 4

struct battery_state {
    char dir[BATTERIES_MAX][PATH_MAX];
    int n;
};

/* Power drawn from the battery in dir; -EAGAIN when it is not discharging. */
static int battery_power(const char *dir, double *ret_w)
{
    char path[PATH_MAX], text[32];
    if (cmn_path(path, sizeof(path), dir, "status") < 0)
        return -ENAMETOOLONG;
    int r = cmn_read_string(path, text, sizeof(text));
    if (r < 0)
        return r;
    if (strcmp(text, "Discharging") != 0)
        return -EAGAIN;
    int64_t uw = 0;
    if (cmn_path(path, sizeof(path), dir, "power_now") == 0 && cmn_read_i64(path, &uw) == 0) {
        *ret_w = (double)(uw < 0 ? -uw : uw) * 1e-6; /* some firmware reports discharge < 0 */
        return 0;
    }
    int64_t ua = 0, uv = 0;
    if (cmn_path(path, sizeof(path), dir, "current_now") < 0 || (r = cmn_read_i64(path, &ua)) < 0)
        return r < 0 ? r : -ENAMETOOLONG;
    if (cmn_path(path, sizeof(path), dir, "voltage_now") < 0 || (r = cmn_read_i64(path, &uv)) < 0)
        return r < 0 ? r : -ENAMETOOLONG;
    *ret_w = (double)(ua < 0 ? -ua : ua) * 1e-6 * (double)(uv < 0 ? -uv : uv) * 1e-6;
    return 0;
}

static int battery_sum(const struct battery_state *st, double *ret_w)
{
    double sum = 0;
    int any = 0, last_err = -EAGAIN;
    for (int i = 0; i < st->n; i++) {
        double w = 0;
        int r = battery_power(st->dir[i], &w);
        if (r == 0) {
            sum += w;
            any = 1;
        } else {
            last_err = r;
        }
    }
    if (!any)
        return last_err;
    *ret_w = sum;
    return 0;
}

static int battery_open(const struct tel_power_params *p, void **ret_state, char *desc,
                        size_t desc_len)
{
    char base[PATH_MAX];
    if (cmn_path(base, sizeof(base), p->root, "sys/class/power_supply") < 0)
        return -ENAMETOOLONG;
    char **names = NULL;
    int n = tel_list_dir(base, "", &names);
    if (n <= 0)
        return -ENOENT;
    struct battery_state *st = calloc(1, sizeof(*st));
    if (!st) {
        tel_names_free(names, n);
        return -ENOMEM;
    }
    for (int i = 0; i < n && st->n < BATTERIES_MAX; i++) {
        char dir[PATH_MAX], path[PATH_MAX], type[32];
        if (cmn_path(dir, sizeof(dir), base, "%s", names[i]) < 0 ||
            cmn_path(path, sizeof(path), dir, "type") < 0 ||
            cmn_read_string(path, type, sizeof(type)) < 0 || strcmp(type, "Battery") != 0)
            continue;
        snprintf(st->dir[st->n++], PATH_MAX, "%s", dir);
    }
    tel_names_free(names, n);
    double w = 0;
    int r = st->n ? battery_sum(st, &w) : -ENOENT;
    if (r < 0) {
        if (r == -EAGAIN)
            snprintf(desc, desc_len, "no battery is discharging");
        free(st);
        return r;
    }
    snprintf(desc, desc_len, "battery: %d discharging", st->n);
    *ret_state = st;
    return 0;
}

static int battery_read(void *state, const struct tel_power_params *p,
                        const struct tel_power_inputs *in, struct tel_src_reading *ret)
{
    (void)p;
    (void)in;
    ret->is_energy = 0;
    return battery_sum(state, &ret->power_w);
}

static void battery_close(void *state)
{
    free(state);
}

const struct tel_src_ops tel_src_battery = {
    .source = TEL_SOURCE_BATTERY,
    .open = battery_open,
    .read = battery_read,
    .close = battery_close,
};
