/* The second energy channel: the whole box at the wall, beside the package/SoC channel of
 * power.h. It comes from a configured meter (a named hwmon device, a discharging battery, or a
 * smart plug whose MQTT messages the caller hands in), and whenever that meter has nothing
 * fresh to say it is an estimate from the package power: (package_w + board_w) / psu_efficiency.
 * Every reading says which of the two it is and names its source. The energy total never
 * decreases: meters are integrated (power) or differenced (counters) and a counter that goes
 * back is reported, not followed. */
#ifndef TELEMETRY_WALL_H
#define TELEMETRY_WALL_H

#include <stddef.h>
#include <stdint.h>

#include "telemetry/sample.h"

enum tel_wall_kind {
    TEL_WALL_NONE = 0, /* no meter: the estimate only */
    TEL_WALL_AUTO,     /* a discharging battery when there is one, else the estimate */
    TEL_WALL_HWMON,    /* hwmon device by name, or a device directory / channel file path */
    TEL_WALL_BATTERY,  /* power_supply batteries (power_now, or current_now x voltage_now) */
    TEL_WALL_MQTT,     /* a smart plug's MQTT topic (tel_wall_feed) */
};

enum tel_plug_format {
    TEL_PLUG_TASMOTA = 0, /* tele/<dev>/SENSOR: {"ENERGY":{"Power":W,"Total":kWh,...}} */
    TEL_PLUG_SHELLY,      /* <id>/status/switch:0: {"apower":W,"aenergy":{"total":Wh}} */
    TEL_PLUG_NUMBER,      /* a bare number of watts */
};

/* One plug message: power in watts (always present in an accepted message) and the plug's own
 * energy counter in joules (NAN when the format or the message has none). */
struct tel_plug_reading {
    double power_w;
    double energy_j;
};

/* Parses a plug payload. 0, or -EBADMSG with err saying what is wrong (not JSON, no power
 * field, a negative / non-finite / absurd value). Never reads past len. */
int tel_plug_parse(enum tel_plug_format format, const void *payload, size_t len,
                   struct tel_plug_reading *ret, char *err, size_t err_len);
/* "tasmota", "shelly", "number"; -EINVAL otherwise. */
int tel_plug_format_from_name(const char *name, enum tel_plug_format *ret);
const char *tel_plug_format_name(enum tel_plug_format format);

struct tel_wall_params {
    enum tel_wall_kind kind;
    const char *root;  /* prefix for /sys ("" or NULL: the real one) */
    char hwmon[256];   /* TEL_WALL_HWMON: device name ("ina219"), or an absolute path */
    const char *topic; /* TEL_WALL_MQTT: for labels and log lines */
    enum tel_plug_format format;
    uint32_t stale_s;      /* a plug silent this long is stale: the estimate takes over */
    double board_w;        /* estimate: power beyond the package (board, DRAM, USB, fans) */
    double psu_efficiency; /* estimate: power supply efficiency, (0, 1] */
};

void tel_wall_params_defaults(struct tel_wall_params *p);
/* "none", "auto", "battery", "mqtt", "hwmon:<name or path>" into p->kind / p->hwmon. */
int tel_wall_parse_spec(const char *spec, struct tel_wall_params *p, char *err, size_t err_len);

struct tel_wall_reading {
    double power_w;  /* this interval's wall power; NAN when unknown */
    double energy_j; /* running total, never decreasing */
    int measured;    /* 1: from the meter; 0: the estimate */
    char source[96]; /* "mqtt:<topic>", "hwmon:<dev>", "battery", or "estimate" */
};

struct tel_wall;

/* Opens the configured meter. A meter that is configured but absent or unreadable is an error
 * (err names it): a user who asked for a meter must not silently get an estimate. The MQTT
 * kind needs no I/O here. energy_total_j continues a saved total. */
int tel_wall_new(const struct tel_wall_params *params, uint64_t now_ns, double energy_total_j,
                 struct tel_wall **ret, char *err, size_t err_len);
void tel_wall_free(struct tel_wall *w);

/* A message from the plug's topic (TEL_WALL_MQTT). 0: taken; -EBADMSG: refused, err says why
 * (the caller logs it with the topic); the previous reading stays until it is stale. A plug
 * counter that went back (a reset, a replaced plug) is taken but noted in err with return 1. */
int tel_wall_feed(struct tel_wall *w, uint64_t now_ns, const void *payload, size_t len, char *err,
                  size_t err_len);

/* One reading at now_ns. package_power_w is the package channel's power over the same
 * interval (NAN when unknown) and package_source where it came from, for the estimate: a
 * battery already meters the whole box (taken as measured, source "battery"); the Pi 5's PMIC
 * rails map to the wall by TEL_WALL_PMIC_GAIN x rails + TEL_WALL_PMIC_OFFSET_W; anything else
 * by (package + board_w) / psu_efficiency. note gets a line when the meter's state changed
 * (went stale, unreadable, came back); "" otherwise. Returns 0 (the estimate is always there). */
int tel_wall_read(struct tel_wall *w, uint64_t now_ns, double package_power_w,
                  enum tel_source package_source, struct tel_wall_reading *ret, char *note,
                  size_t note_len);

/* Raspberry Pi 5: whole-board power from the PMIC rail sum, the linear fit published with pitop
 * (https://pitop.hongjunwu.com/hardware/pi-features: sum(V x I) x 1.1451 + 0.5879 W, PMIC
 * conversion losses and the unmetered parts of the board). */
#define TEL_WALL_PMIC_GAIN     1.1451
#define TEL_WALL_PMIC_OFFSET_W 0.5879

/* The estimate on its own. */
double tel_wall_estimate_w(const struct tel_wall_params *p, double package_power_w);
double tel_wall_estimate_from_w(const struct tel_wall_params *p, double package_power_w,
                                enum tel_source package_source);

#endif
