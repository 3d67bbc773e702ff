/* Tokenizer API behaviour beyond the conformance vectors: BOS/EOS per metadata, special-token
 * parsing on and off, end-of-generation ids, -ENOSPC/-EINVAL, pieces, the streaming
 * detokenizer (characters split over byte-fallback and byte-level tokens, invalid sequences,
 * output buffer too small, leading-space rule), malformed vocabularies, and a long-input run
 * that would not finish if any step were quadratic. */
#include "ember_test.h"

#include "engine/tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

static struct eng_vocab *load(const char *name)
{
    char path[4096], err[512];
    struct eng_vocab *v = NULL;
    snprintf(path, sizeof(path), "%s/vectors/tokenizer/%s", et_shared_dir(), name);
    int rc = eng_vocab_load_file(path, &v, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    return v;
}

static size_t tok(const struct eng_vocab *v, const char *s, bool add, bool special, int32_t *out,
                  size_t cap)
{
    size_t n = 0;
    int rc = eng_tokenize(v, s, strlen(s), add, special, out, cap, &n);
    CHECK_EQ_INT(rc, 0);
    return n;
}

static bool valid_utf8(const char *s, size_t n)
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
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F) ||
            (c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))
            return false;
        i += len;
    }
    return true;
}

/* Streams ids one by one; every chunk must be valid UTF-8 on its own. Returns the total. */
static size_t stream(const struct eng_vocab *v, const int32_t *ids, size_t n, unsigned flags,
                     char *out, size_t cap)
{
    struct eng_detok d;
    size_t total = 0, k;
    eng_detok_init(&d, v, flags);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_INT(eng_detok_push(&d, ids[i], out + total, cap - total, &k), 0);
        CHECK_MSG(valid_utf8(out + total, k), "chunk after token %zu is not valid UTF-8", i);
        total += k;
    }
    CHECK_EQ_INT(eng_detok_flush(&d, out + total, cap - total, &k), 0);
    total += k;
    return total;
}

static void test_spm(void)
{
    struct eng_vocab *v = load("ggml-vocab-llama-spm.gguf");
    int32_t ids[256];
    char buf[1024];
    size_t n, len;
    if (!v)
        return;

    CHECK_EQ_INT(eng_vocab_type(v), ENG_VOCAB_SPM);
    CHECK_EQ_INT(eng_vocab_n_tokens(v), 32000);
    CHECK_EQ_INT(eng_vocab_bos(v), 1);
    CHECK_EQ_INT(eng_vocab_eos(v), 2);
    CHECK_EQ_INT(eng_vocab_unk(v), 0);
    CHECK(eng_vocab_add_bos(v) && !eng_vocab_add_eos(v) && eng_vocab_add_space_prefix(v));
    CHECK(eng_token_is_eog(v, 2));
    CHECK(!eng_token_is_eog(v, 1));
    CHECK(eng_token_attr(v, 1) & ENG_TOKEN_ATTR_CONTROL);
    CHECK(eng_token_attr(v, 0) & ENG_TOKEN_ATTR_UNKNOWN);
    CHECK_EQ_INT(eng_token_lookup(v, "\xE2\x96\x81Hello", 8), 15043);

    /* add_special: BOS only (add_eos false); empty text gives just BOS / nothing */
    n = tok(v, "Hello world", true, false, ids, 256);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 15043);
    CHECK_EQ_INT(ids[2], 3186);
    CHECK_EQ_INT(tok(v, "", true, false, ids, 256), 1);
    CHECK_EQ_INT(tok(v, "", false, false, ids, 256), 0);

    /* "<s>" is CONTROL: text unless parse_special; after a special token SPM adds a space */
    n = tok(v, "<s>Hi", false, true, ids, 256);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], eng_token_lookup(v, "\xE2\x96\x81Hi", 5));
    n = tok(v, "<s>", false, false, ids, 256);
    CHECK(n > 1);

    /* pieces: U+2581 -> space, byte tokens -> bytes, control tokens only when asked */
    CHECK_EQ_INT(eng_token_piece(v, 15043, false, buf, sizeof(buf), &len), 0);
    CHECK(len == 6 && !memcmp(buf, " Hello", 6));
    CHECK_EQ_INT(eng_token_piece(v, 1, false, buf, sizeof(buf), &len), 0);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(eng_token_piece(v, 1, true, buf, sizeof(buf), &len), 0);
    CHECK(len == 3 && !memcmp(buf, "<s>", 3));
    int32_t nl = eng_token_lookup(v, "<0x0A>", 6);
    CHECK_EQ_INT(eng_token_piece(v, nl, false, buf, sizeof(buf), &len), 0);
    CHECK(len == 1 && buf[0] == '\n');
    CHECK_EQ_INT(eng_token_piece(v, 15043, false, buf, 3, &len), -ENOSPC);
    CHECK_EQ_INT(len, 6);
    CHECK_EQ_INT(eng_token_piece(v, 32000, false, buf, sizeof(buf), &len), -EINVAL);
    CHECK_EQ_INT(eng_token_piece(v, -1, false, buf, sizeof(buf), &len), -EINVAL);

    /* A character outside the vocabulary falls back to its UTF-8 bytes: the detokenizer
     * must hold them back until the character is complete. */
    const char *emoji = "\xF0\x9F\xA6\x99"; /* U+1F999, not a token */
    n = tok(v, emoji, false, false, ids, 256);
    CHECK_EQ_INT(n, 5); /* "▁" + 4 byte tokens */
    struct eng_detok d;
    size_t k;
    eng_detok_init(&d, v, ENG_DETOK_STRIP_LEADING_SPACE);
    CHECK_EQ_INT(eng_detok_push(&d, ids[0], buf, sizeof(buf), &k), 0);
    CHECK_EQ_INT(k, 0); /* the prefix space, stripped */
    for (int i = 1; i < 4; i++) {
        CHECK_EQ_INT(eng_detok_push(&d, ids[i], buf, sizeof(buf), &k), 0);
        CHECK_EQ_INT(k, 0);
    }
    /* too small: -ENOSPC, nothing consumed, then the same push succeeds */
    CHECK_EQ_INT(eng_detok_push(&d, ids[4], buf, 2, &k), -ENOSPC);
    CHECK_EQ_INT(k, 4);
    CHECK_EQ_INT(eng_detok_push(&d, ids[4], buf, sizeof(buf), &k), 0);
    CHECK(k == 4 && !memcmp(buf, emoji, 4));

    /* Without the strip flag the SPM prefix space stays. */
    n = tok(v, "Hi there", false, false, ids, 256);
    len = stream(v, ids, n, 0, buf, sizeof(buf));
    CHECK(len == 9 && !memcmp(buf, " Hi there", 9));
    len = stream(v, ids, n, ENG_DETOK_STRIP_LEADING_SPACE, buf, sizeof(buf));
    CHECK(len == 8 && !memcmp(buf, "Hi there", 8));
    /* BOS first (renders nothing), then the text: the strip applies to the first text */
    int32_t with_bos[64] = {1};
    memcpy(with_bos + 1, ids, n * sizeof(*ids));
    len = stream(v, with_bos, n + 1, ENG_DETOK_STRIP_LEADING_SPACE, buf, sizeof(buf));
    CHECK(len == 8 && !memcmp(buf, "Hi there", 8));
    len = stream(v, with_bos, n + 1, ENG_DETOK_SPECIAL, buf, sizeof(buf));
    CHECK(len == 12 && !memcmp(buf, "<s> Hi there", 12));

    /* Invalid sequences: a lone continuation byte, a truncated 3-byte sequence followed by
     * ASCII, an overlong lead (C0), a surrogate (ED A0 80), a truncated tail at the end. */
    int32_t b80 = eng_token_lookup(v, "<0x80>", 6), be2 = eng_token_lookup(v, "<0xE2>", 6),
            b82 = eng_token_lookup(v, "<0x82>", 6), bc0 = eng_token_lookup(v, "<0xC0>", 6),
            bed = eng_token_lookup(v, "<0xED>", 6), ba0 = eng_token_lookup(v, "<0xA0>", 6),
            bf0 = eng_token_lookup(v, "<0xF0>", 6), b9f = eng_token_lookup(v, "<0x9F>", 6),
            ba = eng_token_lookup(v, "a", 1);
    int32_t bad[] = {b80, be2, b82, ba, bc0, b80, bed, ba0, b80, bf0, b9f};
    len = stream(v, bad, sizeof(bad) / sizeof(bad[0]), 0, buf, sizeof(buf));
    const char *want = "\xEF\xBF\xBD"                         /* 80 */
                       "\xEF\xBF\xBD"                         /* E2 82 (truncated) */
                       "a"                                    /* */
                       "\xEF\xBF\xBD\xEF\xBF\xBD"             /* C0, 80 */
                       "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" /* ED, A0, 80 */
                       "\xEF\xBF\xBD";                        /* F0 9F at the end */
    CHECK_MSG(len == strlen(want) && !memcmp(buf, want, len), "invalid sequences gave %zu bytes",
              len);
    CHECK(valid_utf8(buf, len));

    /* -ENOSPC reports the count; -EINVAL for bad arguments */
    CHECK_EQ_INT(eng_tokenize(v, "Hello world", 11, true, false, ids, 2, &n), -ENOSPC);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(eng_tokenize(v, "Hello world", 11, true, false, NULL, 0, &n), -ENOSPC);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(eng_tokenize(NULL, "x", 1, true, false, ids, 2, &n), -EINVAL);
    CHECK_EQ_INT(eng_tokenize(v, NULL, 1, true, false, ids, 2, &n), -EINVAL);
    /* the length is checked before the text is read */
    CHECK_EQ_INT(eng_tokenize(v, "x", ENG_TOKENIZE_MAX_BYTES + 1, false, false, ids, 2, &n),
                 -E2BIG);

    /* Invalid UTF-8 input is tokenized (as bytes), never rejected. */
    n = tok(v, "a\xFF\xC3", false, false, ids, 256);
    CHECK(n >= 3);
    eng_vocab_free(v);
}

static void test_bpe(void)
{
    struct eng_vocab *v = load("ggml-vocab-qwen3.gguf");
    int32_t ids[4096];
    char buf[8192];
    size_t n, len;
    if (!v)
        return;

    CHECK_EQ_INT(eng_vocab_type(v), ENG_VOCAB_BPE);
    CHECK_STR(eng_vocab_pre(v), "qwen2");
    CHECK(!eng_vocab_add_bos(v) && !eng_vocab_add_space_prefix(v));
    CHECK_EQ_INT(eng_vocab_bos(v), 151643);
    CHECK_EQ_INT(eng_vocab_eos(v), 151645);
    CHECK_EQ_INT(eng_vocab_pad(v), 151643);
    CHECK(eng_token_is_eog(v, 151645));  /* <|im_end|> */
    CHECK(eng_token_is_eog(v, 151643));  /* <|endoftext|> */
    CHECK(!eng_token_is_eog(v, 151644)); /* <|im_start|> */
    CHECK(eng_vocab_eot(v) == 151645 || eng_vocab_eot(v) == 151643);

    /* add_special adds nothing for Qwen (add_bos_token false) */
    CHECK_EQ_INT(tok(v, "Hello", true, false, ids, 4096), 1);
    CHECK_EQ_INT(ids[0], 9707);

    /* CONTROL tokens only with parse_special; USER_DEFINED (<think>) always */
    n = tok(v, "<|im_start|>user", false, true, ids, 4096);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[0], 151644);
    n = tok(v, "<|im_start|>user", false, false, ids, 4096);
    CHECK(n > 2);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] != 151644);
    n = tok(v, "<think>x</think>", false, false, ids, 4096);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[0], 151667);
    CHECK_EQ_INT(ids[2], 151668);

    /* Multi-byte characters split over byte-level tokens: every streamed chunk is valid
     * UTF-8 and the whole equals the text. */
    const char *text = "日本語のテキストと中文字符，한국어 텍스트, emoji "
                       "👩‍👩‍👧‍👦 "
                       "and "
                       "ğüşçö";
    n = tok(v, text, false, false, ids, 4096);
    len = stream(v, ids, n, 0, buf, sizeof(buf));
    CHECK(len == strlen(text) && !memcmp(buf, text, len));
    /* special rendering of a control token */
    int32_t im[] = {151644};
    CHECK_EQ_INT(stream(v, im, 1, 0, buf, sizeof(buf)), 0);
    CHECK_EQ_INT(stream(v, im, 1, ENG_DETOK_SPECIAL, buf, sizeof(buf)), 12);

    /* A long prompt: 2 MB of mixed text must tokenize in well under the test timeout (a
     * quadratic merge or split would take hours) and give the same ids as its parts when the
     * parts end at newlines (the pre-tokenizer never merges across "\n\n" followed by text). */
    const char *para =
        "The quick brown fox jumps over 1234 lazy dogs; 快速的棕色狐狸 🦊.\n\n";
    size_t plen = strlen(para), reps = 2000000 / plen;
    char *big = malloc(plen * reps + 1);
    for (size_t i = 0; i < reps; i++)
        memcpy(big + i * plen, para, plen);
    size_t one = tok(v, para, false, false, ids, 4096);
    int32_t *big_ids = malloc(plen * reps * sizeof(*big_ids));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(eng_tokenize(v, big, plen * reps, false, false, big_ids, plen * reps, &n), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("qwen3: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", plen * reps, n, s,
           (double)(plen * reps) / 1e6 / s);
    CHECK_EQ_INT(n, one * reps);
    CHECK(s < 60.0);
    free(big);
    free(big_ids);
    eng_vocab_free(v);
}

static void test_long_spm(void)
{
    struct eng_vocab *v = load("ggml-vocab-llama-spm.gguf");
    if (!v)
        return;
    /* 1 MB without a single space: one SentencePiece symbol chain of a million characters */
    size_t len = 1000000;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = "abcdefghij"[i % 10];
    int32_t *ids = malloc(len * sizeof(*ids));
    size_t n = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(eng_tokenize(v, big, len, false, false, ids, len, &n), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("llama-spm: %zu bytes -> %zu tokens in %.3f s\n", len, n, s);
    CHECK(n > 0 && n < len);
    CHECK(s < 60.0);
    free(big);
    free(ids);
    eng_vocab_free(v);
}

static void test_malformed(void)
{
    char err[512];
    struct eng_vocab *v = NULL;
    char path[4096];

    CHECK_EQ_INT(eng_vocab_load_file("/nonexistent/vocab.gguf", &v, err, sizeof(err)), -ENOENT);
    CHECK(v == NULL);
    /* a file with no tokenizer keys at all */
    snprintf(path, sizeof(path), "%s/engtok_empty.gguf", EMBER_BINARY_DIR);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        const uint32_t head[2] = {0x46554747u, 3};
        const uint64_t counts[2] = {0, 0};
        fwrite(head, sizeof(head), 1, f);
        fwrite(counts, sizeof(counts), 1, f);
        fclose(f);
        int rc = eng_vocab_load_file(path, &v, err, sizeof(err));
        CHECK_EQ_INT(rc, -ENOENT);
        CHECK_CONTAINS(err, "tokenizer.ggml.model");
        remove(path);
    }
    eng_vocab_free(NULL);
}

int main(void)
{
    test_spm();
    test_bpe();
    test_long_spm();
    test_malformed();
    return et_finish();
}
