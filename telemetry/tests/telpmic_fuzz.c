/* libFuzzer target: `vcgencmd pmic_read_adc` output (telemetry/src/pmic.c). An accepted
 * output must give a finite, non-negative power from at least one rail. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "telemetry/power.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double w = 0;
    int rails = 0;
    char err[160];
    if (tel_pmic_parse((const char *)data, size, &w, &rails, err, sizeof(err)) == 0 &&
        (!isfinite(w) || w < 0 || rails < 1))
        abort();
    return 0;
}
