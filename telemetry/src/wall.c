/* The wall channel (see wall.h): one configured meter, and the estimate whenever the meter has
 * nothing fresh. Counters (hwmon energyN_input) are differenced; powers (hwmon powerN_*, a
 * battery, a plug's last message) are integrated over the interval. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "power_internal.h"
#include "telemetry/wall.h"

#define AUTO_REPROBE_NS (60ULL * CMN_NS_PER_S)

struct tel_wall {
    struct tel_wall_params p;
    char root[PATH_MAX];
    char topic[256];
    /* hwmon */
    char chan[PATH_MAX];
    int chan_is_energy;
    uint64_t chan_last;
    /* battery (and auto) */
    struct tel_power_params bp;
    void *battery; /* tel_src_battery state; NULL while none discharges */
    uint64_t last_probe_ns;
    /* plug */
    int have_plug;
    uint64_t plug_ns;
    double plug_w;
    double plug_counter_j; /* the plug's own total, NAN unknown */
    /* integration */
    uint64_t last_ns;
    double energy_j;
    int was_measured; /* -1 before the first read */
    char label[96];
};

void tel_wall_params_defaults(struct tel_wall_params *p)
{
    memset(p, 0, sizeof(*p));
    p->kind = TEL_WALL_NONE;
    p->root = "";
    p->format = TEL_PLUG_TASMOTA;
    p->stale_s = 120;
    /* A small single-board computer: board, DRAM and USB around 2 W, and a phone-charger class
     * supply near 85 % efficient. Labelled an estimate everywhere it is shown; users with a
     * governor profile for their box set the profile's board/DRAM and PSU terms (docs). */
    p->board_w = 2.0;
    p->psu_efficiency = 0.85;
}

int tel_wall_parse_spec(const char *spec, struct tel_wall_params *p, char *err, size_t err_len)
{
    if (!spec || !*spec || strcmp(spec, "none") == 0) {
        p->kind = TEL_WALL_NONE;
    } else if (strcmp(spec, "auto") == 0) {
        p->kind = TEL_WALL_AUTO;
    } else if (strcmp(spec, "battery") == 0) {
        p->kind = TEL_WALL_BATTERY;
    } else if (strcmp(spec, "mqtt") == 0) {
        p->kind = TEL_WALL_MQTT;
    } else if (strncmp(spec, "hwmon:", 6) == 0 && spec[6] && strlen(spec + 6) < sizeof(p->hwmon)) {
        p->kind = TEL_WALL_HWMON;
        snprintf(p->hwmon, sizeof(p->hwmon), "%s", spec + 6);
    } else {
        snprintf(err, err_len,
                 "wall meter '%s' is not one of none, auto, battery, mqtt, hwmon:<name or path>",
                 spec);
        return -EINVAL;
    }
    return 0;
}

double tel_wall_estimate_w(const struct tel_wall_params *p, double package_power_w)
{
    if (!isfinite(package_power_w) || package_power_w < 0)
        return NAN;
    return (package_power_w + p->board_w) / p->psu_efficiency;
}

double tel_wall_estimate_from_w(const struct tel_wall_params *p, double package_power_w,
                                enum tel_source package_source)
{
    if (!isfinite(package_power_w) || package_power_w < 0)
        return NAN;
    if (package_source == TEL_SOURCE_PMIC) /* SoC rails to the whole board (wall.h) */
        return (TEL_WALL_PMIC_GAIN * package_power_w + TEL_WALL_PMIC_OFFSET_W) / p->psu_efficiency;
    return tel_wall_estimate_w(p, package_power_w);
}

/* ---- hwmon: a named device or a path ---- */

/* The channel to read in a device directory: an energy counter first, else a power input. */
static int pick_channel(struct tel_wall *w, const char *dir)
{
    static const char *const kinds[][2] = {
        {"energy", "_input"}, {"power", "_input"}, {"power", "_average"}};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        char **names = NULL;
        int n = tel_list_dir(dir, kinds[k][0], &names);
        for (int i = 0; i < n; i++) {
            const char *rest = names[i] + strlen(kinds[k][0]);
            char *end = NULL;
            strtol(rest, &end, 10);
            if (end != rest && strcmp(end, kinds[k][1]) == 0) {
                cmn_path(w->chan, sizeof(w->chan), dir, "%s", names[i]);
                w->chan_is_energy = k == 0;
                tel_names_free(names, n);
                return 0;
            }
        }
        if (n > 0)
            tel_names_free(names, n);
    }
    return -ENOENT;
}

static int hwmon_find(struct tel_wall *w, char *err, size_t err_len)
{
    const char *want = w->p.hwmon;
    struct stat sb;
    if (want[0] == '/') {
        char path[PATH_MAX];
        if (cmn_path(path, sizeof(path), w->root, "%s", want + 1) < 0 || stat(path, &sb) < 0) {
            snprintf(err, err_len, "wall meter hwmon:%s: no such file or directory", want);
            return -ENOENT;
        }
        if (S_ISDIR(sb.st_mode)) {
            if (pick_channel(w, path) < 0) {
                snprintf(err, err_len,
                         "wall meter hwmon:%s: no energyN_input or powerN_input/average file",
                         want);
                return -ENOENT;
            }
        } else {
            const char *base = strrchr(path, '/') + 1;
            if (strncmp(base, "energy", 6) != 0 && strncmp(base, "power", 5) != 0) {
                snprintf(err, err_len, "wall meter hwmon:%s: not an energy or power channel", want);
                return -EINVAL;
            }
            snprintf(w->chan, sizeof(w->chan), "%s", path);
            w->chan_is_energy = strncmp(base, "energy", 6) == 0;
        }
    } else {
        char base[PATH_MAX];
        char **devs = NULL;
        if (cmn_path(base, sizeof(base), w->root, "sys/class/hwmon") < 0)
            return -ENAMETOOLONG;
        int n = tel_list_dir(base, "hwmon", &devs);
        int found = 0;
        for (int i = 0; i < n && !found; i++) {
            char dir[PATH_MAX], npath[PATH_MAX], name[128];
            if (cmn_path(dir, sizeof(dir), base, "%s", devs[i]) < 0 ||
                cmn_path(npath, sizeof(npath), dir, "name") < 0 ||
                cmn_read_string(npath, name, sizeof(name)) < 0 || strcmp(name, want) != 0)
                continue;
            found = pick_channel(w, dir) == 0;
        }
        if (n > 0)
            tel_names_free(devs, n);
        if (!found) {
            snprintf(err, err_len,
                     "wall meter hwmon:%s: no hwmon device of that name with an energy or power "
                     "channel under %s",
                     want, base);
            return -ENOENT;
        }
    }
    int r = cmn_read_u64(w->chan, &w->chan_last);
    if (r < 0) {
        snprintf(err, err_len, "wall meter %s: %s", w->chan, strerror(-r));
        return r;
    }
    snprintf(w->label, sizeof(w->label), "hwmon:%s", want);
    return 0;
}

/* ---- battery ---- */

static int battery_try(struct tel_wall *w, uint64_t now_ns)
{
    w->last_probe_ns = now_ns;
    char desc[256] = "";
    void *st = NULL;
    int r = tel_src_battery.open(&w->bp, &st, desc, sizeof(desc));
    if (r == 0)
        w->battery = st;
    return r;
}

int tel_wall_new(const struct tel_wall_params *params, uint64_t now_ns, double energy_total_j,
                 struct tel_wall **ret, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = '\0';
    if (!params || !ret)
        return -EINVAL;
    if (!(params->psu_efficiency > 0 && params->psu_efficiency <= 1) ||
        !(params->board_w >= 0 && params->board_w < 10000)) {
        snprintf(err, err_len,
                 "wall estimate: psu efficiency must be in (0, 1] and board watts in "
                 "[0, 10000)");
        return -EINVAL;
    }
    if (!isfinite(energy_total_j) || energy_total_j < 0) {
        snprintf(err, err_len, "saved wall energy total %g is not a finite non-negative number",
                 energy_total_j);
        return -EINVAL;
    }
    if (params->kind == TEL_WALL_MQTT && (!params->topic || !params->topic[0])) {
        snprintf(err, err_len, "wall meter mqtt needs a topic (wall_meter_topic)");
        return -EINVAL;
    }
    struct tel_wall *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->p = *params;
    snprintf(w->root, sizeof(w->root), "%s", params->root ? params->root : "");
    w->p.root = w->root;
    snprintf(w->topic, sizeof(w->topic), "%s", params->topic ? params->topic : "");
    w->p.topic = w->topic;
    w->energy_j = energy_total_j;
    w->last_ns = now_ns;
    w->was_measured = -1;
    w->plug_counter_j = NAN;
    tel_power_params_defaults(&w->bp);
    w->bp.root = w->root;
    int r = 0;
    switch (w->p.kind) {
    case TEL_WALL_HWMON:
        r = hwmon_find(w, err, err_len);
        break;
    case TEL_WALL_BATTERY:
        r = battery_try(w, now_ns);
        if (r == -EAGAIN) /* present but on AC: the estimate until it discharges */
            r = 0;
        else if (r < 0)
            snprintf(err, err_len, "wall meter battery: no battery under %s/sys/class/power_supply",
                     w->root);
        snprintf(w->label, sizeof(w->label), "battery");
        break;
    case TEL_WALL_AUTO:
        battery_try(w, now_ns);
        snprintf(w->label, sizeof(w->label), "battery");
        break;
    case TEL_WALL_MQTT:
        snprintf(w->label, sizeof(w->label), "mqtt:%s", w->topic);
        break;
    default:
        break;
    }
    if (r < 0) {
        tel_wall_free(w);
        return r;
    }
    *ret = w;
    return 0;
}

void tel_wall_free(struct tel_wall *w)
{
    if (!w)
        return;
    if (w->battery)
        tel_src_battery.close(w->battery);
    free(w);
}

int tel_wall_feed(struct tel_wall *w, uint64_t now_ns, const void *payload, size_t len, char *err,
                  size_t err_len)
{
    if (!w || w->p.kind != TEL_WALL_MQTT)
        return -EINVAL;
    struct tel_plug_reading pr;
    int r = tel_plug_parse(w->p.format, payload, len, &pr, err, err_len);
    if (r < 0)
        return r;
    int noted = 0;
    if (isfinite(pr.energy_j) && isfinite(w->plug_counter_j) && pr.energy_j < w->plug_counter_j) {
        snprintf(
            err, err_len,
            "the plug's energy counter went back from %.3f Wh to %.3f Wh (reset or replaced?); "
            "Ember's wall total keeps counting from where it was",
            w->plug_counter_j / 3600.0, pr.energy_j / 3600.0);
        noted = 1;
    }
    if (isfinite(pr.energy_j))
        w->plug_counter_j = pr.energy_j;
    w->have_plug = 1;
    w->plug_ns = now_ns;
    w->plug_w = pr.power_w;
    return noted;
}

/* The meter's power over (last_ns, now_ns], or its energy delta; -errno when it has nothing
 * (why says what, for the note). */
static int meter_read(struct tel_wall *w, uint64_t now_ns, double dt_s, double *ret_w,
                      double *ret_j, char *why, size_t why_len)
{
    *ret_w = NAN;
    *ret_j = NAN;
    switch (w->p.kind) {
    case TEL_WALL_HWMON: {
        uint64_t cur = 0;
        int r = cmn_read_u64(w->chan, &cur);
        if (r < 0) {
            snprintf(why, why_len, "%s: %s", w->chan, strerror(-r));
            return r;
        }
        if (w->chan_is_energy) {
            if (cur < w->chan_last)
                snprintf(why, why_len, "%s went back from %llu to %llu uJ (counter reset)", w->chan,
                         (unsigned long long)w->chan_last, (unsigned long long)cur);
            *ret_j = tel_counter_delta_j(w->chan_last, cur, 0);
            *ret_w = dt_s > 0 ? *ret_j / dt_s : NAN;
        } else {
            *ret_w = (double)cur * 1e-6;
        }
        w->chan_last = cur;
        return 0;
    }
    case TEL_WALL_BATTERY:
    case TEL_WALL_AUTO: {
        if (!w->battery && now_ns - w->last_probe_ns >= AUTO_REPROBE_NS)
            battery_try(w, now_ns);
        if (!w->battery) {
            snprintf(why, why_len, "no battery is discharging");
            return -EAGAIN;
        }
        struct tel_src_reading sr = {0};
        int r = tel_src_battery.read(w->battery, &w->bp, NULL, &sr);
        if (r < 0) {
            tel_src_battery.close(w->battery);
            w->battery = NULL;
            w->last_probe_ns = now_ns;
            snprintf(why, why_len, "%s", r == -EAGAIN ? "no battery is discharging" : strerror(-r));
            return r;
        }
        *ret_w = sr.power_w;
        return 0;
    }
    case TEL_WALL_MQTT:
        if (!w->have_plug) {
            snprintf(why, why_len, "no message on %s yet", w->topic);
            return -EAGAIN;
        }
        if (now_ns - w->plug_ns > (uint64_t)w->p.stale_s * CMN_NS_PER_S) {
            snprintf(why, why_len, "no message on %s for over %u s (stale plug)", w->topic,
                     w->p.stale_s);
            return -ETIMEDOUT;
        }
        *ret_w = w->plug_w;
        return 0;
    default:
        snprintf(why, why_len, "no wall meter configured");
        return -ENOENT;
    }
}

int tel_wall_read(struct tel_wall *w, uint64_t now_ns, double package_power_w,
                  enum tel_source package_source, struct tel_wall_reading *ret, char *note,
                  size_t note_len)
{
    char dummy[1];
    if (!note || !note_len) {
        note = dummy;
        note_len = sizeof(dummy);
    }
    note[0] = '\0';
    if (!w || !ret)
        return -EINVAL;
    double dt_s = now_ns > w->last_ns ? (double)(now_ns - w->last_ns) * 1e-9 : 0.0;
    char why[PATH_MAX + 128] = "";
    double mw = NAN, mj = NAN;
    int r = meter_read(w, now_ns, dt_s, &mw, &mj, why, sizeof(why));
    int measured = r == 0;
    if (measured && why[0]) /* read, with something to say (a counter reset) */
        snprintf(note, note_len, "wall meter %s: %s", w->label, why);
    const char *label = measured ? w->label : "estimate";
    if (!measured && package_source == TEL_SOURCE_BATTERY && isfinite(package_power_w)) {
        /* the package channel already meters the whole box */
        mw = package_power_w;
        label = "battery";
    }
    double p_w = measured || !strcmp(label, "battery")
                     ? mw
                     : tel_wall_estimate_from_w(&w->p, package_power_w, package_source);
    double delta_j = measured && isfinite(mj) ? mj : (isfinite(p_w) ? p_w * dt_s : 0.0);
    if (delta_j > 0)
        w->energy_j += delta_j;
    w->last_ns = now_ns;
    if (w->p.kind != TEL_WALL_NONE && measured != w->was_measured) {
        if (measured && w->was_measured == 0)
            snprintf(note, note_len, "wall meter %s: reading again; wall figures are measured",
                     w->label);
        else if (measured && w->was_measured < 0)
            snprintf(note, note_len, "wall meter %s: reading; wall figures are measured", w->label);
        else if (!measured)
            snprintf(note, note_len,
                     "wall meter %s: %s; wall figures are an estimate from the package power "
                     "until it reads again",
                     w->label, why);
    }
    w->was_measured = measured;
    ret->power_w = p_w;
    ret->energy_j = w->energy_j;
    ret->measured = measured || strcmp(label, "battery") == 0;
    snprintf(ret->source, sizeof(ret->source), "%s", label);
    return 0;
}
