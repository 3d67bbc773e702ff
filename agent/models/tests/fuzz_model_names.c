/* libFuzzer harness for the two texts of the model directory a user or a stranger writes: the
 * [models] aliases value and an `ember pull` source (URL or hf:OWNER/REPO/FILE). The input is
 * split at its first newline; each part must be accepted or refused with a reason, never crash
 * or read past its end. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pull.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the text, as it would in a C string */
    char *source = strchr(text, '\n');
    if (source)
        *source++ = '\0';
    else
        source = text;

    struct agent_models *m = NULL;
    char err[512] = "";
    int rc = agent_models_new("", text, &m, err, sizeof(err));
    if (rc < 0 && err[0] == '\0')
        __builtin_trap(); /* a refusal must say why */
    if (m) {
        struct agent_model_entry e;
        if (agent_models_find(m, text, &e) == 0)
            __builtin_trap(); /* nothing is installed: no name can resolve */
        char aliases[256];
        agent_models_aliases_of(m, text, aliases, sizeof(aliases));
        agent_models_free(m);
    }

    char url[4096], name[256];
    err[0] = '\0';
    rc = agent_pull_resolve(source, "https://hf.example", url, sizeof(url), name, sizeof(name), err,
                            sizeof(err));
    if (rc < 0 && err[0] == '\0')
        __builtin_trap();
    if (rc == 0 && (!name[0] || strchr(name, '/') || strlen(url) >= sizeof(url)))
        __builtin_trap(); /* a file name is one path segment */
    free(text);
    return 0;
}
