/* libFuzzer target: smart-plug payloads (telemetry/src/plug.c) in every format. The first byte
 * picks the format; an accepted payload must yield a finite, non-negative power and an energy
 * that is NAN or finite and non-negative. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "telemetry/wall.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum tel_plug_format f = (enum tel_plug_format)(data[0] % 3);
    struct tel_plug_reading r;
    char err[128];
    if (tel_plug_parse(f, data + 1, size - 1, &r, err, sizeof(err)) == 0) {
        if (!isfinite(r.power_w) || r.power_w < 0)
            abort();
        if (!isnan(r.energy_j) && (!isfinite(r.energy_j) || r.energy_j < 0))
            abort();
    }
    return 0;
}
