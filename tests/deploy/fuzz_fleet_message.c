/* libFuzzer harness for what `ember fleet status` takes from the network: an input is a topic,
 * a NUL, then the payload. Messages go into one view (so rows accumulate as on a broker), then the
 * view is printed both ways; checks that whatever came in, every stored id and text is printable
 * ASCII and the JSON output parses. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul)
        return 0;
    char topic[512];
    size_t tlen = (size_t)(nul - data);
    if (tlen >= sizeof(topic))
        return 0;
    memcpy(topic, data, tlen);
    topic[tlen] = '\0';
    const uint8_t *payload = nul + 1;
    size_t plen = size - tlen - 1;

    struct fleet_view v;
    fleet_view_init(&v, "ember");
    /* Twice, retained and live, plus a status so the row exists both ways. */
    fleet_view_ingest(&v, topic, payload, plen, true);
    fleet_view_ingest(&v, topic, payload, plen, false);
    fleet_view_ingest(&v, "ember/x/status", "online", 6, true);
    for (size_t i = 0; i < v.n; i++) {
        check_printable(v.dev[i].id);
        check_printable(v.dev[i].policy);
        check_printable(v.dev[i].model);
    }
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        fleet_view_print(&v, 1e9, null);
        fclose(null);
    }
    char *json = fleet_view_json(&v, 1e9);
    if (json) {
        cJSON *o = cJSON_Parse(json);
        if (!cJSON_IsArray(o) || (size_t)cJSON_GetArraySize(o) != v.n)
            abort();
        cJSON_Delete(o);
        free(json);
    }
    fleet_view_free(&v);
    return 0;
}
