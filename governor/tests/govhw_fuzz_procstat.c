/* Fuzz harness "procstat": the parsers of what the governor reads from /proc and /sys (the
 * /proc/stat cpuN lines and utilisation deltas, CPU lists, frequency lists, word lists, kHz
 * values) and the saved-state JSON it trusts at start. Every parser gets the whole input; the
 * harness also checks their promises (ascending unique output, utilisation in 0..1 or a negative
 * code). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "governor/backend.h"
#include "governor/safety.h"
#include "governor/sensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    static struct gov_cpu_times t[GOV_HW_MAX_CPUS];
    size_t n = 0;
    if (gov_procstat_parse(s, size, t, GOV_HW_MAX_CPUS, &n) == 0) {
        for (size_t i = 1; i < n; i++) {
            float u = gov_cpu_util(&t[i - 1], &t[i]);
            if (!(u == -1.0f || u == -2.0f || (u >= 0.0f && u <= 1.0f)))
                abort();
        }
    }

    uint16_t cpus[GOV_HW_MAX_CPUS];
    if (gov_parse_cpu_list(s, cpus, GOV_HW_MAX_CPUS, &n) == 0)
        for (size_t i = 1; i < n; i++)
            if (cpus[i] <= cpus[i - 1])
                abort();

    uint32_t khz[GOV_HW_MAX_FREQS];
    size_t bad = 0;
    if (gov_parse_freq_list(s, khz, GOV_HW_MAX_FREQS, &n, &bad) == 0)
        for (size_t i = 0; i < n; i++)
            if (khz[i] == 0 || (i && khz[i] <= khz[i - 1]))
                abort();

    char words[GOV_HW_MAX_GOVERNORS][GOV_HW_NAME_LEN];
    if (gov_parse_word_list(s, words, GOV_HW_MAX_GOVERNORS, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (!words[i][0] || strlen(words[i]) >= GOV_HW_NAME_LEN)
                abort();

    uint32_t one;
    (void)gov_parse_khz(s, &one);
    (void)gov_trip_type_parse(s);

    static struct gov_saved_state st;
    char err[256];
    if (gov_saved_parse(s, size, &st, err, sizeof(err)) == 0) {
        if (st.npol > GOV_HW_MAX_POLICIES)
            abort();
        char *json = gov_saved_to_json(&st);
        free(json);
    }
    free(s);
    return 0;
}
