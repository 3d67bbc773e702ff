/* Fuzz harness for the saved-settings reader: the file a root process reads back to restore
 * cpufreq values. The input is parsed as the file's text; whatever parses must print back to
 * JSON that parses to the same state, and the trusted file reader must agree with the parser. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "governor/safety.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gov_saved_state *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    char err[256];
    if (!a || !b)
        abort();
    int rc = gov_saved_parse((const char *)data, size, a, err, sizeof(err));
    if (rc == 0) {
        char *json = gov_saved_to_json(a);
        if (!json)
            abort();
        if (gov_saved_parse(json, strlen(json), b, err, sizeof(err)) != 0)
            abort(); /* what we write we must be able to read */
        char *again = gov_saved_to_json(b);
        if (!again || strcmp(json, again) != 0)
            abort();
        free(again);
        free(json);
    }
    /* through a file, as the governor reads it */
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz_saved.XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/governor.saved", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
        int rf = gov_saved_read(path, b, err, sizeof(err));
        /* the file reader refuses what the parser refuses (NUL bytes end the text early, and
         * an empty file is no data) */
        if (rc != 0 && rf == 0 && size && !memchr(data, 0, size))
            abort();
        unlink(path);
    }
    free(a);
    free(b);
    return 0;
}
