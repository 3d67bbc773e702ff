/* Token ids -> text: the bytes each token stands for (llama.cpp's token_to_piece rules) and the
 * streaming detokenizer, which holds back an unfinished UTF-8 character until the token that
 * completes it arrives and replaces bytes that can never be valid with U+FFFD, so a consumer
 * printing each push's output never sees broken UTF-8. */
#include "tokenizer_internal.h"
#include "unicode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Writes at most cap bytes of the piece and returns its full length. */
static size_t piece_write(const struct eng_vocab *v, int32_t id, bool special, char *buf,
                          size_t cap)
{
    const struct eng_token_data *t = &v->tokens[id];
    const char *text = v->text + t->off;
    const unsigned special_attr = ENG_TOKEN_ATTR_CONTROL | ENG_TOKEN_ATTR_UNKNOWN;
    size_t n = 0;

#define PUT(c)                  \
    do {                        \
        if (n < cap)            \
            buf[n] = (char)(c); \
        n++;                    \
    } while (0)

    if (!special && (t->attr & special_attr))
        return 0;
    if (t->attr & (special_attr | ENG_TOKEN_ATTR_USER_DEFINED)) {
        for (uint32_t i = 0; i < t->len; i++)
            PUT(text[i]);
        return n;
    }
    if (v->type == ENG_VOCAB_SPM) {
        if (t->attr & ENG_TOKEN_ATTR_NORMAL) {
            for (uint32_t i = 0; i < t->len; i++) {
                if (i + 2 < t->len && !memcmp(text + i, "\xE2\x96\x81", 3)) {
                    PUT(' ');
                    i += 2;
                } else {
                    PUT(text[i]);
                }
            }
        } else if ((t->attr & ENG_TOKEN_ATTR_BYTE) && t->len == 6 && !memcmp(text, "<0x", 3)) {
            PUT(strtoul(text + 3, NULL, 16));
        }
        return n;
    }
    if (t->attr & ENG_TOKEN_ATTR_NORMAL) {
        /* byte-level characters back to bytes; anything else is copied as written */
        const uint8_t *s = (const uint8_t *)text;
        size_t pos = 0;
        while (pos < t->len) {
            size_t start = pos;
            uint32_t cp = eng_utf8_decode(s, t->len, &pos);
            int b = eng_cp_to_byte(cp);
            if (b >= 0) {
                PUT(b);
            } else {
                for (size_t k = start; k < pos; k++)
                    PUT(s[k]);
            }
        }
    }
    return n;
#undef PUT
}

int eng_token_piece(const struct eng_vocab *v, int32_t id, bool special, char *buf, size_t cap,
                    size_t *ret_len)
{
    if (ret_len)
        *ret_len = 0;
    if (!v || id < 0 || id >= v->n_tokens)
        return -EINVAL;
    size_t n = piece_write(v, id, special, buf, buf ? cap : 0);
    if (ret_len)
        *ret_len = n;
    return n > cap || (!buf && n) ? -ENOSPC : 0;
}

/* ---- streaming ---- */

struct writer {
    char *out;
    size_t cap, n;
};

static void wr(struct writer *w, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (w->n < w->cap)
            w->out[w->n] = ((const char *)p)[i];
        w->n++;
    }
}

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Feeds one byte through the UTF-8 validator. */
static void feed(struct eng_detok *d, uint8_t c, struct writer *w)
{
    for (;;) {
        if (!d->n_pend) {
            if (c < 0x80) {
                wr(w, &c, 1);
            } else if (c >= 0xC2 && c <= 0xF4) {
                d->pend[0] = c;
                d->n_pend = 1;
                d->need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            } else {
                wr(w, replacement, 3);
            }
            return;
        }
        uint8_t lo = 0x80, hi = 0xBF;
        if (d->n_pend == 1) {
            /* second-byte limits that exclude overlongs, surrogates and > U+10FFFF */
            switch (d->pend[0]) {
            case 0xE0:
                lo = 0xA0;
                break;
            case 0xED:
                hi = 0x9F;
                break;
            case 0xF0:
                lo = 0x90;
                break;
            case 0xF4:
                hi = 0x8F;
                break;
            default:
                break;
            }
        }
        if (c >= lo && c <= hi) {
            d->pend[d->n_pend++] = c;
            if (d->n_pend == d->need) {
                wr(w, d->pend, d->n_pend);
                d->n_pend = 0;
            }
            return;
        }
        /* The pending bytes are a maximal invalid subpart: one U+FFFD, then c afresh. */
        wr(w, replacement, 3);
        d->n_pend = 0;
    }
}

size_t eng_detok_max_out(const struct eng_vocab *v)
{
    return 3 * ((v ? v->max_token_len : 0) + 4);
}

void eng_detok_init(struct eng_detok *d, const struct eng_vocab *v, unsigned flags)
{
    memset(d, 0, sizeof(*d));
    d->vocab = v;
    d->flags = flags;
}

int eng_detok_push(struct eng_detok *d, int32_t id, char *out, size_t cap, size_t *ret_n)
{
    const struct eng_vocab *v = d->vocab;
    char local[1024];
    char *piece = local;
    int rc = 0;

    if (ret_n)
        *ret_n = 0;
    if (!v || id < 0 || id >= v->n_tokens)
        return -EINVAL;
    bool special = d->flags & ENG_DETOK_SPECIAL;
    size_t n = piece_write(v, id, special, local, sizeof(local));
    if (n > sizeof(local)) {
        /* only tokens over 1 KiB long come here */
        piece = malloc(n);
        if (!piece)
            return -ENOMEM;
        piece_write(v, id, special, piece, n);
    }

    struct eng_detok next = *d;
    struct writer w = {out, out ? cap : 0, 0};
    size_t i = 0;
    if (n && !next.started) {
        next.started = true;
        if ((d->flags & ENG_DETOK_STRIP_LEADING_SPACE) && eng_vocab_add_space_prefix(v) &&
            piece[0] == ' ')
            i = 1;
    }
    for (; i < n; i++)
        feed(&next, (uint8_t)piece[i], &w);
    if (ret_n)
        *ret_n = w.n;
    if (w.n > w.cap)
        rc = -ENOSPC;
    else
        *d = next;
    if (piece != local)
        free(piece);
    return rc;
}

int eng_detok_flush(struct eng_detok *d, char *out, size_t cap, size_t *ret_n)
{
    size_t need = d->n_pend ? 3 : 0;
    if (ret_n)
        *ret_n = need;
    if (need > cap || (need && !out))
        return -ENOSPC;
    if (need)
        memcpy(out, replacement, 3);
    d->n_pend = 0;
    return 0;
}
