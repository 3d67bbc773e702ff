/* UTF-8 decoding/encoding and GPT-2's byte <-> character mapping (see unicode.h). */
#include "unicode.h"

uint32_t eng_utf8_decode(const uint8_t *s, size_t len, size_t *pos)
{
    size_t i = *pos;
    uint8_t b0 = s[i];
    uint32_t cp;
    size_t n;

    if (!(b0 & 0x80)) {
        *pos = i + 1;
        return b0;
    }
    if ((b0 & 0xE0) == 0xC0) {
        n = 2;
        cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
        n = 3;
        cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
        n = 4;
        cp = b0 & 0x07;
    } else {
        goto bad;
    }
    if (len - i < n)
        goto bad;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            goto bad;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    *pos = i + n;
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return ENG_UNICODE_REPLACEMENT;
    return cp;
bad:
    *pos = i + 1;
    return ENG_UNICODE_REPLACEMENT;
}

size_t eng_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t eng_utf8_sanitize(const char *src, size_t len, char *dst)
{
    const uint8_t *s = (const uint8_t *)src;
    size_t pos = 0, n = 0;
    while (pos < len) {
        /* Re-encoding is the identity for well-formed input and repairs the rest. */
        n += eng_utf8_encode(eng_utf8_decode(s, len, &pos), dst + n);
    }
    return n;
}

/* Bytes that are printable and not whitespace map to themselves; the other 68 take the code
 * points from 256 up, in byte order (the mapping of GPT-2's encoder.py). */
static int byte_is_direct(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t eng_byte_to_cp(uint8_t b)
{
    if (byte_is_direct(b))
        return b;
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++)
        k += !byte_is_direct(x);
    return 256 + k;
}

size_t eng_byte_to_utf8(uint8_t b, char out[2])
{
    char tmp[4];
    size_t n = eng_utf8_encode(eng_byte_to_cp(b), tmp);
    out[0] = tmp[0];
    if (n > 1)
        out[1] = tmp[1];
    return n;
}

int eng_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_direct(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t k = cp - 256;
    for (unsigned x = 0; x < 256; x++) {
        if (!byte_is_direct(x)) {
            if (k == 0)
                return (int)x;
            k--;
        }
    }
    return -1;
}
