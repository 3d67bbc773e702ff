/* libFuzzer harness for the JSONL importer (`ember kb import FILE.jsonl`): any bytes give 0 or
 * -EINVAL with a "NAME:LINE: reason" message, never a crash; a refused file leaves the (in-memory)
 * database as it was, and what was imported can be searched. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kb *kb;
    char err[512];
    if (!kb && kb_open(":memory:", false, &kb, err, sizeof(err)) < 0)
        __builtin_trap();
    struct kb_counts before, after;
    if (kb_count(kb, &before) < 0 || kb_begin(kb, err, sizeof(err)) < 0)
        __builtin_trap();
    struct kb_import_stats st = {0};
    err[0] = '\0';
    int rc = kb_import_jsonl(kb, "fuzz.jsonl", (const char *)data, size, &st, err, sizeof(err));
    if (rc < 0) {
        kb_rollback(kb);
        if (strncmp(err, "fuzz.jsonl:", 11) != 0)
            __builtin_trap(); /* a refusal names the line */
        if (kb_count(kb, &after) < 0 || memcmp(&before, &after, sizeof(before)) != 0)
            __builtin_trap(); /* and imports nothing */
        return 0;
    }
    if (kb_commit(kb, err, sizeof(err)) < 0)
        __builtin_trap();
    char query[201];
    size_t qn = size < sizeof(query) - 1 ? size : sizeof(query) - 1;
    memcpy(query, data, qn);
    query[qn] = '\0';
    struct kb_hit hits[3];
    size_t n = 0;
    if (kb_search(kb, query, 3, hits, &n) < 0)
        __builtin_trap();
    kb_hits_free(hits, n);
    return 0;
}
