/* A simulator profile from a calibration run (`ember governor calibrate --profile-out`): this
 * machine's clusters, frequencies and measured speed, the rest from a base profile. */
#ifndef EMBER_CLI_CALIB_PROFILE_H
#define EMBER_CLI_CALIB_PROFILE_H

#include <stddef.h>

#include "governor/policy.h"

/* Writes FILE: the base profile (a built-in name or a JSON file) with its clusters replaced by the
 * controller's (names, CPUs, frequency tables; voltages and capacitance by rank from the base),
 * its decode and prefill speed fitted to cal's points, weights_gb from the model file's size and
 * the measured top point as its references. Prints the fit (measured vs modelled per point) to
 * stdout. Returns 0 or -errno with err set. */
int calib_profile_write(const char *base, const struct gov_calibration *cal,
                        const struct gov_controller *ctl, const char *model_path, const char *out,
                        char *err, size_t err_len);

#endif
