/* libFuzzer harness for the GGUF reader: any byte string must either parse or be rejected with an
 * error message, never crash or read past the buffer. A parsed file is walked completely (every
 * key, array element, string and tensor byte range) so lazy accessors are exercised too. */
#include "gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size heap copy so sanitizers catch any over-read */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    struct gguf_file *f = NULL;
    char err[256];
    if (gguf_open_memory(copy, size, &f, err, sizeof(err)) == 0) {
        volatile uint64_t sink = 0;
        for (int i = 0; i < gguf_n_kv(f); i++) {
            const char *key = gguf_kv_key(f, i);
            sink += (uint64_t)(gguf_find_key(f, key) == i);
            struct gguf_arr a;
            if (gguf_get_arr(f, key, &a) == 0) {
                for (uint64_t j = 0; j < a.n; j++) {
                    size_t len = 0;
                    if (a.type == GGUF_VT_STRING) {
                        const char *s = gguf_arr_str(f, &a, j, &len);
                        if (s && len)
                            sink += (uint8_t)s[len - 1];
                    } else {
                        sink += (uint64_t)gguf_arr_int(&a, j);
                    }
                }
            }
            const char *s;
            if (gguf_get_str(f, key, &s) == 0)
                sink += strlen(s);
        }
        for (int i = 0; i < gguf_n_tensors(f); i++) {
            const struct gguf_tensor *t = gguf_tensor_at(f, i);
            if (t->size)
                sink += ((const uint8_t *)t->data)[t->size - 1];
            sink += (uint64_t)(gguf_find_tensor(f, t->name) == t);
        }
        (void)sink;
    }
    gguf_close(f);
    free(copy);
    return 0;
}
