/* Fuzz target "tokenizer": the first input byte picks a mode, the rest is the payload.
 *   modes 0-5: tokenize the payload as text with a shared vocabulary (llama-spm, qwen3,
 *     deepseek-llm: SPM, the Qwen regex, the six-regex DeepSeek chain), add_special and
 *     parse_special from bits of the mode byte; every id must be in range, the streamed
 *     detokenization must be valid UTF-8, and for byte-level BPE it must reproduce the text
 *     (after invalid bytes became U+FFFD).
 *   mode 6-7: the payload is a GGUF file; if its tokenizer metadata loads, tokenize a fixed text.
 * Vocabularies come from $EMBER_SHARED_DIR (or the build-time path); missing ones are skipped. */
#include "gguf.h"
#include "tokenizer_internal.h"
#include "unicode.h"

#include "engine/tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vocab_names[3] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen3.gguf",
                                           "ggml-vocab-deepseek-llm.gguf"};
static struct eng_vocab *vocabs[3];
static int loaded;

static void load_vocabs(void)
{
    const char *dir = getenv("EMBER_SHARED_DIR");
#ifdef EMBER_SHARED_DIR
    if (!dir || !*dir)
        dir = EMBER_SHARED_DIR;
#endif
    if (!dir)
        dir = "../shared";
    for (int i = 0; i < 3; i++) {
        char path[4096], err[256];
        snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s", dir, vocab_names[i]);
        if (eng_vocab_load_file(path, &vocabs[i], err, sizeof(err)))
            vocabs[i] = NULL;
    }
    loaded = 1;
}

static int utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80                ? 1
                     : c >= 0xC2 && c < 0xE0 ? 2
                     : c >= 0xE0 && c < 0xF0 ? 3
                     : c >= 0xF0 && c < 0xF5 ? 4
                                             : 0;
        if (!len || i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F) ||
            (c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))
            return 0;
        i += len;
    }
    return 1;
}

/* round_trip: the vocabulary is a well-formed byte-level one (every byte has its character), so
 * detokenizing gives the text back; not so for fuzzed vocabularies. */
static void check_text(const struct eng_vocab *v, const char *text, size_t len, int add_special,
                       int parse_special, int round_trip)
{
    size_t n = 0;
    int32_t probe[1];
    int rc = eng_tokenize(v, text, len, add_special, parse_special, probe, 0, &n);
    if (rc != 0 && rc != -ENOSPC)
        abort();
    int32_t *ids = malloc((n + 1) * sizeof(*ids));
    size_t n2 = 0;
    if (!ids || eng_tokenize(v, text, len, add_special, parse_special, ids, n, &n2) || n2 != n)
        abort();
    size_t cap = eng_detok_max_out(v), total = 0, k;
    char *out = malloc(cap * (n + 1) + 8);
    struct eng_detok d;
    eng_detok_init(&d, v, parse_special ? ENG_DETOK_SPECIAL : 0);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= eng_vocab_n_tokens(v))
            abort();
        if (eng_detok_push(&d, ids[i], out + total, cap, &k) || !utf8_valid(out + total, k))
            abort();
        total += k;
    }
    if (eng_detok_flush(&d, out + total, 8, &k))
        abort();
    total += k;
    if (!utf8_valid(out, total))
        abort();
    if (round_trip && eng_vocab_type(v) == ENG_VOCAB_BPE && !add_special) {
        char *clean = malloc(3 * len + 1);
        size_t clen = eng_utf8_sanitize(text, len, clean);
        if (clen != total || memcmp(clean, out, clen))
            abort();
        free(clean);
    }
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loaded)
        load_vocabs();
    if (size < 1)
        return 0;
    unsigned mode = data[0] & 7;
    const char *payload = (const char *)data + 1;
    size_t len = size - 1;
    if (mode < 6) {
        const struct eng_vocab *v = vocabs[mode % 3];
        if (v)
            check_text(v, payload, len, (data[0] >> 3) & 1, (data[0] >> 4) & 1, 1);
        return 0;
    }
    struct gguf_file *f = NULL;
    struct eng_vocab *v = NULL;
    char err[256];
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, payload, len);
    if (gguf_open_memory(copy, len, &f, err, sizeof(err)) == 0) {
        if (eng_vocab_load_gguf(f, &v, err, sizeof(err)) == 0) {
            static const char text[] =
                "Hello world! <s> 123 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80";
            check_text(v, text, sizeof(text) - 1, 1, 1, 0);
            check_text(v, text, sizeof(text) - 1, 0, 0, 0);
            eng_vocab_free(v);
        }
        gguf_close(f);
    }
    free(copy);
    return 0;
}
