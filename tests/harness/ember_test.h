/* A minimal test harness: CHECK macros that record failures and keep going, and a summary line
 * "N passed, N failed" that ctest logs and CI tools understand. Exit 77 means skipped. */
#ifndef EMBER_TEST_H
#define EMBER_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int et_passed, et_failed;

#define ET_SKIP 77

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            et_passed++;                                                             \
        } else {                                                                     \
            et_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (cond) {                                                                  \
            et_passed++;                                                             \
        } else {                                                                     \
            et_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                   \
    do {                                                                     \
        long long et_a = (long long)(a), et_b = (long long)(b);              \
        CHECK_MSG(et_a == et_b, "%s = %lld, %s = %lld", #a, et_a, #b, et_b); \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double et_a = (double)(a), et_b = (double)(b);                                             \
        CHECK_MSG(fabs(et_a - et_b) <= (tol), "%s = %.9g, %s = %.9g (tol %g)", #a, et_a, #b, et_b, \
                  (double)(tol));                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *et_a = (a), *et_b = (b);                                             \
        CHECK_MSG(et_a &&et_b &&strcmp(et_a, et_b) == 0, "%s = \"%s\", %s = \"%s\"", #a, \
                  et_a ? et_a : "(null)", #b, et_b ? et_b : "(null)");                   \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                            \
    do {                                                                       \
        const char *et_h = (hay), *et_n = (needle);                            \
        CHECK_MSG(et_h &&strstr(et_h, et_n), "\"%s\" does not contain \"%s\"", \
                  et_h ? et_h : "(null)", et_n);                               \
    } while (0)

/* Prints the summary and returns the exit code; a test that checked nothing fails. */
static inline int et_finish(void)
{
    printf("%d passed, %d failed\n", et_passed, et_failed);
    if (et_passed + et_failed == 0) {
        fprintf(stderr, "no checks ran\n");
        return 1;
    }
    return et_failed ? 1 : 0;
}

/* The shared folder: $EMBER_SHARED_DIR, else the path baked in at build time. */
static inline const char *et_shared_dir(void)
{
    const char *env = getenv("EMBER_SHARED_DIR");
#ifdef EMBER_SHARED_DIR
    return env && *env ? env : EMBER_SHARED_DIR;
#else
    return env && *env ? env : "../shared";
#endif
}

#endif
