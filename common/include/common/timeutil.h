/* Clocks in nanoseconds: monotonic for intervals and deadlines, wall time only for records. */
#ifndef COMMON_TIMEUTIL_H
#define COMMON_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

#define CMN_NS_PER_MS 1000000ULL
#define CMN_NS_PER_S  1000000000ULL

static inline uint64_t cmn_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * CMN_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t cmn_now_ns(void)
{
    return cmn_clock_ns(CLOCK_MONOTONIC);
}

static inline uint64_t cmn_wall_ns(void)
{
    return cmn_clock_ns(CLOCK_REALTIME);
}

#endif
