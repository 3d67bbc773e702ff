/* Validation of the payloads that arrive over MQTT and change the machine: governor/set (a policy
 * name), power_cap/set (watts or "off") and replay/req (a sequence number). Anything on the
 * network is untrusted, so each check is exact: the payload's length is bounded first, it must be
 * valid UTF-8 without NUL, and then it must match the grammar byte for byte (no trimming, no case
 * folding, no exponents or signs that strtod would accept). Errors say what was wrong without
 * echoing bytes that could themselves be malformed. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/mqtt.h"

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF, and no NUL
 * (MQTT forbids U+0000 in strings, and a NUL would cut the C string short). */
static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

static int check_common(const void *payload, size_t len, char *err, size_t err_len)
{
    if (!payload && len)
        return fail(err, err_len, "payload missing");
    if (len == 0)
        return fail(err, err_len, "empty payload");
    if (len > TEL_MQTT_CMD_MAX_BYTES)
        return fail(err, err_len, "payload of %zu bytes exceeds the %d-byte limit", len,
                    TEL_MQTT_CMD_MAX_BYTES);
    if (!utf8_valid(payload, len))
        return fail(err, err_len, "payload is not valid UTF-8 (or contains NUL)");
    return 0;
}

int tel_command_parse_policy(const struct tel_mqtt_commands *c, const void *payload, size_t len,
                             char *ret_policy, size_t cap, char *err, size_t err_len)
{
    int rc = check_common(payload, len, err, err_len);
    if (rc)
        return rc;
    for (uint32_t i = 0; c && i < c->n_policies && i < TEL_MQTT_MAX_POLICIES; i++) {
        const char *p = c->policies[i];
        if (p && strlen(p) == len && memcmp(p, payload, len) == 0) {
            if (len + 1 > cap)
                return fail(err, err_len, "policy name longer than %zu bytes", cap - 1);
            memcpy(ret_policy, p, len + 1);
            return 0;
        }
    }
    /* Names the payload only when it is short printable ASCII, so the event stays readable. */
    const unsigned char *b = payload;
    int printable = len <= 32;
    for (size_t i = 0; printable && i < len; i++)
        printable = b[i] >= 0x20 && b[i] < 0x7F;
    if (printable)
        return fail(err, err_len, "unknown policy \"%.*s\"", (int)len, (const char *)payload);
    return fail(err, err_len, "unknown policy (%zu bytes)", len);
}

int tel_command_parse_power_cap(const struct tel_mqtt_commands *c, const void *payload, size_t len,
                                bool *ret_off, double *ret_cap_w, char *err, size_t err_len)
{
    int rc = check_common(payload, len, err, err_len);
    if (rc)
        return rc;
    const char *s = payload;
    if (len == 3 && memcmp(s, "off", 3) == 0) {
        if (!c || !c->cap_off_allowed)
            return fail(err, err_len, "\"off\" is not allowed for the power cap");
        *ret_off = true;
        *ret_cap_w = 0;
        return 0;
    }
    /* digits [ '.' digits ]: what a person or Home Assistant's number entity sends. Bounded
     * lengths keep strtod away from huge inputs and make the value exactly representable
     * enough for a range check. */
    size_t i = 0, int_digits = 0, frac_digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, int_digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, frac_digits++;
        if (frac_digits == 0)
            return fail(err, err_len, "power cap: digits expected after '.'");
    }
    if (int_digits == 0)
        return fail(err, err_len, "power cap: expected watts like 45 or 45.5, or \"off\"");
    if (i != len)
        return fail(err, err_len, "power cap: unexpected character at offset %zu", i);
    if (int_digits > 6 || frac_digits > 6)
        return fail(err, err_len, "power cap: too many digits");
    char buf[32];
    memcpy(buf, s, len);
    buf[len] = '\0';
    double w = strtod(buf, NULL);
    if (!isfinite(w))
        return fail(err, err_len, "power cap: not a finite number");
    if (!c || !(w >= c->cap_min_w && w <= c->cap_max_w))
        return fail(err, err_len, "power cap %g W outside [%g, %g] W", w, c ? c->cap_min_w : 0.0,
                    c ? c->cap_max_w : 0.0);
    *ret_off = false;
    *ret_cap_w = w;
    return 0;
}

int tel_command_parse_seq(const void *payload, size_t len, uint64_t *ret_seq, char *err,
                          size_t err_len)
{
    int rc = check_common(payload, len, err, err_len);
    if (rc)
        return rc;
    const char *s = payload;
    if (len > 19)
        return fail(err, err_len, "seq: more than 19 digits");
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(err, err_len, "seq: unexpected character at offset %zu", i);
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return fail(err, err_len, "seq: out of range");
    *ret_seq = v;
    return 0;
}
