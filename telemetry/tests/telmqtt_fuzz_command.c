/* Fuzz target for the MQTT command payload parsers (governor/set, power_cap/set, replay/req):
 * any bytes must be either rejected with an error message or accepted with an output that obeys
 * the rules (a listed policy; a finite cap in range, or "off"; a seq that fits in int64). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tel_mqtt_commands c = {.policies = {"balanced", "performance", "powersave", "quiet"},
                                  .n_policies = 4,
                                  .cap_min_w = 5,
                                  .cap_max_w = 65,
                                  .cap_off_allowed = true};
    char policy[TEL_NAME_MAX], err[160];
    err[0] = '\0';
    if (tel_command_parse_policy(&c, data, size, policy, sizeof(policy), err, sizeof(err)) == 0) {
        int listed = 0;
        for (uint32_t i = 0; i < c.n_policies; i++)
            listed |= strcmp(policy, c.policies[i]) == 0 && strlen(policy) == size;
        if (!listed)
            abort();
    } else if (!err[0]) {
        abort();
    }
    bool off = false;
    double w = 0;
    err[0] = '\0';
    if (tel_command_parse_power_cap(&c, data, size, &off, &w, err, sizeof(err)) == 0) {
        if (!off && !(isfinite(w) && w >= c.cap_min_w && w <= c.cap_max_w))
            abort();
        if (off && !(size == 3 && memcmp(data, "off", 3) == 0))
            abort();
    } else if (!err[0]) {
        abort();
    }
    uint64_t seq = 0;
    if (tel_command_parse_seq(data, size, &seq, err, sizeof(err)) == 0 && seq > INT64_MAX)
        abort();
    return 0;
}
