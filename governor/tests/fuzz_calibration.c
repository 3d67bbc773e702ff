/* Fuzz target: the calibration file parser (a file on disk, written by a tool, edited by people).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "governor/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct gov_calibration *cal = malloc(sizeof(*cal));
    if (text && cal) {
        memcpy(text, data, size);
        text[size] = 0;
        char err[256];
        if (gov_calibration_parse(text, cal, err, sizeof(err)) == 0) {
            char *json = gov_calibration_to_json(cal);
            struct gov_calibration *back = malloc(sizeof(*back));
            /* whatever parses must survive a round trip */
            if (json && back && gov_calibration_parse(json, back, err, sizeof(err)) != 0)
                abort();
            free(back);
            free(json);
        }
    }
    free(cal);
    free(text);
    return 0;
}
