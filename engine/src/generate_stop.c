/* Stop strings for streamed text (generate.h, struct eng_stop_filter). Output is held back
 * while its tail could still grow into a stop string: after each push the filter emits
 * everything except the longest suffix that is a prefix of some stop string. A stop string
 * can therefore never start inside text already emitted, and the held suffix is never longer
 * than the longest stop string minus one byte, so the hold buffer stays bounded. Stop strings
 * are UTF-8 and begin with a lead byte, so cutting where one might begin never splits a
 * character; incoming text is taken in chunks that end on character boundaries for the same
 * reason. */
#include "engine/generate.h"

#include <errno.h>
#include <string.h>

int eng_stop_filter_init(struct eng_stop_filter *f, const char *const *stop, size_t n_stop)
{
    memset(f, 0, sizeof(*f));
    if (n_stop > ENG_GEN_MAX_STOP)
        return -EINVAL;
    for (size_t i = 0; i < n_stop; i++) {
        size_t len = stop[i] ? strlen(stop[i]) : 0;
        if (len == 0 || len >= ENG_GEN_MAX_STOP_LEN)
            return -EINVAL;
        memcpy(f->stop[i], stop[i], len + 1);
        f->stop_len[i] = len;
    }
    f->n_stop = n_stop;
    return 0;
}

/* Earliest complete stop string in hold: its start, or -1. */
static long find_stop(const struct eng_stop_filter *f)
{
    long best = -1;
    for (size_t i = 0; i < f->n_stop; i++) {
        const char *h = memmem(f->hold, f->n_hold, f->stop[i], f->stop_len[i]);
        if (h && (best < 0 || h - f->hold < best))
            best = h - f->hold;
    }
    return best;
}

/* Length of the longest suffix of hold that is a proper prefix of a stop string. */
static size_t held_suffix(const struct eng_stop_filter *f)
{
    size_t best = 0;
    for (size_t i = 0; i < f->n_stop; i++) {
        size_t max = f->stop_len[i] - 1;
        if (max > f->n_hold)
            max = f->n_hold;
        for (size_t k = max; k > best; k--) {
            if (memcmp(f->hold + f->n_hold - k, f->stop[i], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

static int emit_text(eng_text_fn emit, void *user, const char *s, size_t n)
{
    if (n == 0 || !emit)
        return 0;
    return emit(user, s, n) ? 2 : 0;
}

int eng_stop_filter_push(struct eng_stop_filter *f, const char *text, size_t len, eng_text_fn emit,
                         void *user)
{
    if (f->stopped)
        return 1;
    if (f->n_stop == 0)
        return emit_text(emit, user, text, len);
    while (len > 0) {
        size_t room = sizeof(f->hold) - f->n_hold, take = len < room ? len : room;
        if (take < len) {
            /* end the chunk on a character boundary: back up over continuation bytes */
            while (take > 0 && ((unsigned char)text[take] & 0xC0) == 0x80)
                take--;
            if (take == 0)
                take = len < room ? len : room; /* not UTF-8 at all: cut anyway */
        }
        memcpy(f->hold + f->n_hold, text, take);
        f->n_hold += take;
        text += take;
        len -= take;

        long at = find_stop(f);
        if (at >= 0) {
            f->stopped = true;
            int r = emit_text(emit, user, f->hold, (size_t)at);
            f->n_hold = 0;
            return r ? r : 1;
        }
        size_t keep = held_suffix(f), out = f->n_hold - keep;
        int r = emit_text(emit, user, f->hold, out);
        memmove(f->hold, f->hold + out, keep);
        f->n_hold = keep;
        if (r)
            return r;
    }
    return 0;
}

int eng_stop_filter_flush(struct eng_stop_filter *f, eng_text_fn emit, void *user)
{
    if (f->stopped)
        return 0;
    int r = emit_text(emit, user, f->hold, f->n_hold);
    f->n_hold = 0;
    return r;
}
