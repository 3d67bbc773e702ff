/* Stop-string filter tests: text before a stop string comes out, the stop string and anything
 * after it never do, partial matches are held back exactly as long as they could still match,
 * cuts never split a UTF-8 character, and the emit callback can cancel. */
#include "ember_test.h"

#include "engine/generate.h"

#include <errno.h>
#include <string.h>

struct out {
    char buf[65536];
    size_t len;
    int chunks;
    int bad_cut; /* a chunk started with a UTF-8 continuation byte */
    int cancel_after;
};

static int collect(void *user, const char *text, size_t len)
{
    struct out *o = user;
    if (len == 0)
        o->bad_cut++; /* the filter promises len > 0 */
    if (((unsigned char)text[0] & 0xC0) == 0x80)
        o->bad_cut++;
    memcpy(o->buf + o->len, text, len);
    o->len += len;
    o->buf[o->len] = '\0';
    o->chunks++;
    return o->cancel_after && o->chunks >= o->cancel_after;
}

static struct eng_stop_filter f; /* large: keep it off the stack */

static void test_basic(void)
{
    const char *stops[] = {"</s>", "User:"};
    static struct out o;
    memset(&o, 0, sizeof(o));
    CHECK_EQ_INT(eng_stop_filter_init(&f, stops, 2), 0);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "Hello </", 8, collect, &o), 0);
    CHECK_STR(o.buf, "Hello "); /* "</" could still become "</s>" */
    CHECK_EQ_INT(eng_stop_filter_push(&f, "s> more", 7, collect, &o), 1);
    CHECK_STR(o.buf, "Hello ");
    CHECK_EQ_INT(eng_stop_filter_push(&f, "x", 1, collect, &o), 1); /* stays stopped */
    CHECK_EQ_INT(eng_stop_filter_flush(&f, collect, &o), 0);
    CHECK_STR(o.buf, "Hello ");

    /* a partial match that fails is released */
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, stops, 2);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "a <", 3, collect, &o), 0);
    CHECK_STR(o.buf, "a ");
    CHECK_EQ_INT(eng_stop_filter_push(&f, "b> Us", 5, collect, &o), 0);
    CHECK_STR(o.buf, "a <b> ");
    CHECK_EQ_INT(eng_stop_filter_push(&f, "e", 1, collect, &o), 0);
    CHECK_STR(o.buf, "a <b> "); /* "Use" may still become "User:" */
    CHECK_EQ_INT(eng_stop_filter_push(&f, "d", 1, collect, &o), 0);
    CHECK_STR(o.buf, "a <b> Used"); /* now it cannot */

    /* held text at the end is real output */
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, stops, 2);
    eng_stop_filter_push(&f, "abc Us", 6, collect, &o);
    CHECK_STR(o.buf, "abc ");
    CHECK_EQ_INT(eng_stop_filter_flush(&f, collect, &o), 0);
    CHECK_STR(o.buf, "abc Us");

    /* the earliest complete stop string wins */
    const char *ov[] = {"abcd", "bc"};
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, ov, 2);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "xabc", 4, collect, &o), 1);
    CHECK_STR(o.buf, "xa");

    /* no stop strings: everything passes straight through */
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, NULL, 0);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "</s>", 4, collect, &o), 0);
    CHECK_STR(o.buf, "</s>");
}

/* Byte-at-a-time and random-chunk feeding give the same output as one push. */
static void test_chunking(void)
{
    const char *stops[] = {"\n\nUser:", "###"};
    const char *text = "Once upon a time\n\nthere was a # and ## and\n\nUse of \n\nUser: gone";
    const char *want = "Once upon a time\n\nthere was a # and ## and\n\nUse of ";
    static struct out o;
    for (size_t step = 1; step <= 9; step++) {
        memset(&o, 0, sizeof(o));
        eng_stop_filter_init(&f, stops, 2);
        int r = 0;
        for (size_t i = 0; i < strlen(text) && r == 0; i += step) {
            size_t n = strlen(text) - i < step ? strlen(text) - i : step;
            r = eng_stop_filter_push(&f, text + i, n, collect, &o);
        }
        CHECK_EQ_INT(r, 1);
        CHECK_STR(o.buf, want);
    }
}

static void test_utf8(void)
{
    const char *stops[] = {"é!"};
    static struct out o;
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, stops, 1);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "café!", strlen("café!"), collect, &o), 1);
    CHECK_STR(o.buf, "caf");
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, stops, 1);
    eng_stop_filter_push(&f, "caf", 3, collect, &o);
    eng_stop_filter_push(&f, "é", strlen("é"), collect, &o);
    CHECK_STR(o.buf, "caf");
    eng_stop_filter_push(&f, "x", 1, collect, &o);
    CHECK_STR(o.buf, "caféx");

    /* a push far longer than the hold buffer, full of 2- and 3-byte characters: chunks must
     * end on character boundaries */
    static char big[20000];
    size_t n = 0;
    while (n + 3 < sizeof(big) - 8) {
        memcpy(big + n, "€é", 5);
        n += 5;
    }
    memcpy(big + n, "é!tail", 7);
    memset(&o, 0, sizeof(o));
    eng_stop_filter_init(&f, stops, 1);
    CHECK_EQ_INT(eng_stop_filter_push(&f, big, n + 6, collect, &o), 1);
    CHECK_EQ_INT(o.len, n);
    CHECK(memcmp(o.buf, big, n) == 0);
    CHECK_EQ_INT(o.bad_cut, 0);
    CHECK(o.chunks > 1);
}

static void test_cancel_and_errors(void)
{
    const char *stops[] = {"zz"};
    static struct out o;
    memset(&o, 0, sizeof(o));
    o.cancel_after = 1;
    eng_stop_filter_init(&f, stops, 1);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "abc", 3, collect, &o), 2);
    memset(&o, 0, sizeof(o));
    o.cancel_after = 1;
    eng_stop_filter_init(&f, stops, 1);
    CHECK_EQ_INT(eng_stop_filter_push(&f, "abz", 3, collect, &o), 2); /* "ab" emitted, cancel */
    memset(&o, 0, sizeof(o));
    o.cancel_after = 1;
    CHECK_EQ_INT(eng_stop_filter_flush(&f, collect, &o), 2); /* held "z" emitted, cancel */

    const char *empty[] = {""};
    CHECK_EQ_INT(eng_stop_filter_init(&f, empty, 1), -EINVAL);
    const char *null[] = {NULL};
    CHECK_EQ_INT(eng_stop_filter_init(&f, null, 1), -EINVAL);
    static char longs[ENG_GEN_MAX_STOP_LEN + 1];
    memset(longs, 'a', ENG_GEN_MAX_STOP_LEN);
    const char *lp[] = {longs};
    CHECK_EQ_INT(eng_stop_filter_init(&f, lp, 1), -EINVAL);
    const char *many[ENG_GEN_MAX_STOP + 1];
    for (int i = 0; i <= ENG_GEN_MAX_STOP; i++)
        many[i] = "x";
    CHECK_EQ_INT(eng_stop_filter_init(&f, many, ENG_GEN_MAX_STOP + 1), -EINVAL);
    CHECK_EQ_INT(eng_stop_filter_init(&f, many, ENG_GEN_MAX_STOP), 0);
}

int main(void)
{
    test_basic();
    test_chunking();
    test_utf8();
    test_cancel_and_errors();
    return et_finish();
}
