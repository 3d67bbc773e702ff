/* libFuzzer harness for the [gpio] line setting parser: any bytes give 0, -ENOENT or -EINVAL,
 * never a crash or an over-read; what it accepts fits its buffers and round-trips. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gpio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[128], chip[32], name[32];
    if (size >= sizeof(text))
        size = sizeof(text) - 1;
    memcpy(text, data, size);
    text[size] = '\0';
    unsigned offset;
    int rc =
        agent_gpio_parse_line(text, "gpiochip0", chip, sizeof(chip), name, sizeof(name), &offset);
    if (rc != 0 && rc != -ENOENT && rc != -EINVAL)
        __builtin_trap();
    if (rc == 0) {
        if (strlen(chip) >= sizeof(chip) || strlen(name) >= sizeof(name) || offset > 9999)
            __builtin_trap();
        if (!name[0] && !chip[0])
            __builtin_trap(); /* an offset always has a chip */
        char again[80];
        snprintf(again, sizeof(again), "%s%s%s", chip, chip[0] ? ":" : "", name);
        if (name[0] && strcmp(again, text) != 0 && strcmp(name, text) != 0)
            __builtin_trap();
    }
    return 0;
}
