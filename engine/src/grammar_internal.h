/* The compiled form of a grammar (grammar.c builds it, grammar_match.c runs it). Every rule is
 * a run of elements in one array: alternative, GE_ALT, alternative, ..., GE_END. */
#ifndef ENGINE_GRAMMAR_INTERNAL_H
#define ENGINE_GRAMMAR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

enum gelem_type {
    GE_END = 0, /* end of the rule's last alternative */
    GE_ALT,     /* end of an alternative; another follows */
    GE_SET,     /* one byte of the class sets[val] */
    GE_REF,     /* the rule val */
};

struct gelem {
    uint32_t type;
    uint32_t val;
};

struct eng_grammar {
    struct gelem *elems;
    uint32_t n_elems;
    uint32_t (*sets)[8]; /* 256-bit byte classes; 0..255 are the single bytes */
    uint32_t n_sets;
    uint32_t *alt_pos; /* element index where each alternative starts */
    uint32_t *alt_off; /* rule r's alternatives: alt_pos[alt_off[r] .. alt_off[r + 1]) */
    int32_t n_rules;
    int32_t root;
};

static inline bool gset_has(const uint32_t *set, uint8_t b)
{
    return (set[b >> 5] >> (b & 31)) & 1u;
}

#endif
