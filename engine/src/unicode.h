/* Small UTF-8 and byte-level helpers the tokenizers share: the lead-byte length table
 * SentencePiece splitting uses, a lenient decoder that turns bad bytes into U+FFFD the way
 * llama.cpp does, an encoder, and GPT-2's reversible byte <-> printable-character mapping that
 * byte-level BPE vocabularies are written in. Private to the engine. */
#ifndef ENGINE_UNICODE_H
#define ENGINE_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#define ENG_UNICODE_REPLACEMENT 0xFFFDu

/* Length of the UTF-8 sequence a byte starts, from its high nibble (1 for continuation bytes),
 * exactly as llama.cpp splits text into SentencePiece symbols. */
static inline size_t eng_utf8_len(uint8_t lead)
{
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

/* Decodes one code point at s[*pos] (pos < len) and advances *pos. Accepts what llama.cpp's
 * decoder accepts (lead/continuation bit patterns); anything else consumes one byte and gives
 * U+FFFD. Surrogates and values above U+10FFFF also give U+FFFD so the result always
 * re-encodes to valid UTF-8. */
uint32_t eng_utf8_decode(const uint8_t *s, size_t len, size_t *pos);

/* Writes cp as UTF-8 into out (4 bytes of room); returns the byte count. */
size_t eng_utf8_encode(uint32_t cp, char *out);

/* Copies len bytes of src into dst as valid UTF-8 (each undecodable byte -> U+FFFD, see
 * eng_utf8_decode). dst needs 3 * len bytes. Returns the length written. */
size_t eng_utf8_sanitize(const char *src, size_t len, char *dst);

/* GPT-2 byte-level mapping: the code point byte b is written as in a BPE vocabulary, and its
 * UTF-8 form (1 or 2 bytes, returned length). */
uint32_t eng_byte_to_cp(uint8_t b);
size_t eng_byte_to_utf8(uint8_t b, char out[2]);
/* The inverse: the byte a code point stands for, or -1 if it is not one of the 256. */
int eng_cp_to_byte(uint32_t cp);

#endif
