/* A growable byte buffer with little-endian GGUF writers, shared by the tests that build GGUF
 * files in memory (gguf_test.c, arch_test.c). */
#ifndef ENGINE_TESTS_GGUF_WRITER_H
#define ENGINE_TESTS_GGUF_WRITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static inline void put(struct buf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static inline void put_u32(struct buf *b, uint32_t v)
{
    put(b, &v, 4);
}

static inline void put_u64(struct buf *b, uint64_t v)
{
    put(b, &v, 8);
}

static inline void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

#endif
