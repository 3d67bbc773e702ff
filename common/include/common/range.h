/* A range of accepted values, owned by the module that enforces it and read by everything that
 * checks the same value earlier (the configuration checker, the API, the CLI), so no layer can
 * accept what the owner refuses. */
#ifndef COMMON_RANGE_H
#define COMMON_RANGE_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cmn_range {
    double min, max;
    bool min_open; /* min itself is excluded: (min, max] */
};

static inline bool cmn_range_contains(const struct cmn_range *r, double v)
{
    return isfinite(v) && (r->min_open ? v > r->min : v >= r->min) && v <= r->max;
}

/* "0..1" for a closed range, "(0, 1]" for one whose minimum is excluded. */
static inline void cmn_range_format(const struct cmn_range *r, char *buf, size_t cap)
{
    if (r->min_open)
        snprintf(buf, cap, "(%g, %g]", r->min, r->max);
    else
        snprintf(buf, cap, "%g..%g", r->min, r->max);
}

#endif
