/* Token sampling: turns one row of logits into the next token id. A sampler is a fixed chain,
 * in llama.cpp's default order (common/sampling.cpp): penalties (repetition, presence,
 * frequency over the last N accepted tokens) -> top-k -> top-p -> min-p -> temperature ->
 * a draw from the remaining distribution with the sampler's own seeded PRNG (xoshiro256**),
 * so the same seed and logits give the same tokens on every machine. Temperature <= 0 (or
 * top-k == 1) is greedy: the highest logit after penalties, lowest id on ties. Every buffer is
 * sized once for n_vocab at creation; sampling allocates nothing. Not thread-safe: one sampler
 * per request. */
#ifndef ENGINE_SAMPLER_H
#define ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "common/range.h"

struct eng_sampler;

struct eng_sampler_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off (all tokens) */
    float top_p;             /* >= 1: off; keeps the smallest set whose probability >= top_p */
    float min_p;             /* <= 0: off; keeps tokens with p >= min_p * p_max */
    float repeat_penalty;    /* 1: off; logit > 0 divided by it, logit <= 0 multiplied */
    float presence_penalty;  /* 0: off; subtracted once from each token seen in the window */
    float frequency_penalty; /* 0: off; subtracted once per occurrence in the window */
    int32_t penalty_last_n;  /* window of accepted tokens the penalties look at; 0: off */
    uint64_t seed;
};

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off
 * (1.0 / 0 / 0) over the last 64 tokens, seed 0x5eed. */
void eng_sampler_params_defaults(struct eng_sampler_params *p);

/* What eng_sampler_params_validate accepts for each parameter. The agent's configuration
 * checker, API and CLI read these, so none of them accepts a value the sampler refuses. */
struct eng_sampler_ranges {
    struct cmn_range temperature, top_k, top_p, min_p, repeat_penalty, penalty_last_n,
        presence_penalty, frequency_penalty;
};
extern const struct eng_sampler_ranges eng_sampler_ranges;

/* Checks every field against eng_sampler_ranges; -EINVAL with "sampler: field: why" in err. */
int eng_sampler_params_validate(const struct eng_sampler_params *p, char *err, size_t err_len);

int eng_sampler_new(int32_t n_vocab, const struct eng_sampler_params *p,
                    struct eng_sampler **ret_sampler, char *err, size_t err_len);
void eng_sampler_free(struct eng_sampler *s);

/* Forgets the accepted-token history and restarts the PRNG from the seed. */
void eng_sampler_reset(struct eng_sampler *s);
/* Restarts the PRNG from a new seed (history kept). */
void eng_sampler_set_seed(struct eng_sampler *s, uint64_t seed);

/* Records a token (prompt or generated) in the penalty window. Ids outside [0, n_vocab) are
 * ignored. */
void eng_sampler_accept(struct eng_sampler *s, int32_t token);

/* Samples one token from logits[0..n_vocab). logits is not modified. Returns the token id, or
 * -EINVAL when logits hold no finite value. Does not accept the token: call
 * eng_sampler_accept() with it. */
int32_t eng_sampler_sample(struct eng_sampler *s, const float *logits);

/* eng_sampler_sample where only the tokens whose bit is set in allow (bit id % 32 of
 * allow[id / 32], as eng_grammar_mask writes it) can be drawn: every other logit is -inf before
 * the penalties and filters, so top-k/top-p/min-p choose among allowed tokens only. allow NULL:
 * no mask. -EINVAL when no allowed token has a finite logit. */
int32_t eng_sampler_sample_masked(struct eng_sampler *s, const float *logits,
                                  const uint32_t *allow);

/* The distribution the last eng_sampler_sample() drew from, after every filter and the
 * temperature: ids and probabilities (summing to 1) in descending probability order, lowest
 * id first on ties. Valid until the next call on s. For greedy the single chosen token with
 * probability 1. Sorts the sampler's own scratch, hence not const. */
size_t eng_sampler_last_dist(struct eng_sampler *s, const int32_t **ret_ids,
                             const float **ret_probs);

#endif
