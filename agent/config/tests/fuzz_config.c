/* libFuzzer harness for the configuration parser: any bytes must give 0 or -EINVAL with
 * messages, never a crash or an over-read. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct agent_config cfg;
    char err[4096];
    int rc = agent_config_parse((const char *)data, size, "fuzz", &cfg, err, sizeof(err));
    if (rc != 0 && err[0] == '\0')
        __builtin_trap(); /* a rejection must say why */
    return 0;
}
