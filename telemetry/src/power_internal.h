/* The interface every power source implements (rapl.c, hwmon.c, battery.c, estimate.c) and the
 * dispatcher in power.c uses. A source either reports an energy delta since its previous read
 * (a counter: RAPL, hwmon energy) or an instantaneous power (hwmon power, battery, estimate). */
#ifndef TELEMETRY_POWER_INTERNAL_H
#define TELEMETRY_POWER_INTERNAL_H

#include <math.h>
#include <stddef.h>

#include "telemetry/power.h"

struct tel_src_reading {
    int is_energy;  /* 1: delta_j is valid; 0: power_w is valid */
    double delta_j; /* counter sources: joules since the previous read (or since open) */
    double power_w; /* instantaneous sources */
    double package_j, core_j, dram_j; /* RAPL domain deltas; NAN when absent */
};

struct tel_src_ops {
    enum tel_source source;
    /* Finds and reads the source once (the baseline). -ENOENT: not present; another -errno:
     * present but unreadable. desc gets a short description of what was found. */
    int (*open)(const struct tel_power_params *p, void **ret_state, char *desc, size_t desc_len);
    int (*read)(void *state, const struct tel_power_params *p, const struct tel_power_inputs *in,
                struct tel_src_reading *ret);
    void (*close)(void *state);
};

extern const struct tel_src_ops tel_src_rapl;
extern const struct tel_src_ops tel_src_hwmon;
extern const struct tel_src_ops tel_src_battery;
extern const struct tel_src_ops tel_src_estimate;
extern const struct tel_src_ops tel_src_pmic;

/* Joules between two readings of a counter that wraps to 0 after max_uj (0: range unknown, a
 * decrease then counts as a reset and yields 0). */
double tel_counter_delta_j(uint64_t prev_uj, uint64_t cur_uj, uint64_t max_uj);

/* Sorted directory listing of names matching prefix (entries "." and ".." skipped). Returns
 * the count or -errno; *ret_names is an array of malloc'd strings freed with tel_names_free. */
int tel_list_dir(const char *dir, const char *prefix, char ***ret_names);
void tel_names_free(char **names, int n);

#endif
