/* Grammar-constrained sampling: a context-free grammar over bytes, an incremental matcher, and
 * the per-step token mask that lets only tokens continuing a valid string be sampled.
 *
 * Why a rule set (GBNF-like text, as llama.cpp's grammars) rather than a compiled automaton:
 * JSON nests, so an automaton would need either a stack or a depth bound that multiplies its
 * states per level; a rule set expresses nesting and recursive $ref directly, its text is
 * readable in a test or an error message, and the JSON Schema compiler (json_schema.h) only has
 * to print rules. The matcher is a pushdown recogniser: its state is a set of stacks of
 * positions in the rules (several stacks while alternatives share a prefix), stored as
 * persistent linked lists so advancing by a byte shares every stack's tail instead of copying.
 *
 * Syntax (a subset of llama.cpp's GBNF, byte-level: a character class or escape names bytes,
 * not code points):
 *   root ::= "{" ws members? "}"          rules; `root` is the start rule
 *   "lit\n\"\\\x41"                        a literal (escapes \n \r \t \\ \" \xHH)
 *   [a-z0-9_] [^"\\]                       a byte class, negated with ^ (escapes as above)
 *   name  ( ... )  a | b  x* x+ x? x{2} x{1,3}
 *   # comment to end of line
 * Rules may recurse, but not on the left (a rule reaching itself before consuming a byte is
 * refused at parse time, as it would never terminate).
 *
 * The mask: eng_grammar_vocab indexes a vocabulary once (a byte trie of every token's piece);
 * each step walks the trie with the matcher, pruning a subtree as soon as its prefix is dead, so
 * the cost follows the number of live prefixes, not the vocabulary size. Masks are cached per
 * matcher state (inside a long JSON string the state repeats every token). End-of-generation
 * tokens are allowed exactly when the grammar accepts what has been generated. */
#ifndef ENGINE_GRAMMAR_H
#define ENGINE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

struct eng_grammar;         /* immutable once parsed; shareable between threads */
struct eng_grammar_matcher; /* one per generation */
struct eng_grammar_vocab;   /* one per vocabulary; immutable, shareable */

/* Limits that keep a hostile grammar bounded in memory and time. */
#define ENG_GRAMMAR_MAX_TEXT   (4u << 20) /* bytes of grammar text */
#define ENG_GRAMMAR_MAX_RULES  65536
#define ENG_GRAMMAR_MAX_ELEMS  (1u << 22)
#define ENG_GRAMMAR_MAX_STACKS 256 /* live stacks; more: the grammar is too ambiguous */

/* Parses grammar text (len 0 = strlen). Returns 0, -EINVAL with "grammar: line L col C: why" in
 * err for a syntax error, an undefined rule, a missing `root`, left recursion or a limit
 * exceeded; -ENOMEM. */
int eng_grammar_parse(const char *text, size_t len, struct eng_grammar **ret, char *err,
                      size_t err_len);
void eng_grammar_free(struct eng_grammar *g);
int32_t eng_grammar_n_rules(const struct eng_grammar *g);

int eng_grammar_matcher_new(const struct eng_grammar *g, struct eng_grammar_matcher **ret);
void eng_grammar_matcher_free(struct eng_grammar_matcher *m);
/* Back to the start of the root rule. */
void eng_grammar_matcher_reset(struct eng_grammar_matcher *m);
/* Feeds bytes. 0 when all of them continue a valid string; -EINVAL (state unchanged) when a
 * byte cannot; -E2BIG when the grammar is so ambiguous that more than ENG_GRAMMAR_MAX_STACKS
 * stacks would be live (state unchanged). */
int eng_grammar_matcher_feed(struct eng_grammar_matcher *m, const char *bytes, size_t len);
/* What was fed so far is a complete string of the grammar. */
bool eng_grammar_matcher_accepts(const struct eng_grammar_matcher *m);
/* Complete, and no byte can follow: only end-of-generation remains. */
bool eng_grammar_matcher_done(const struct eng_grammar_matcher *m);
/* Whether byte b may come next (testing and diagnostics). */
bool eng_grammar_matcher_allows_byte(const struct eng_grammar_matcher *m, uint8_t b);

/* Indexes a vocabulary: every token's piece (eng_token_piece without special text) goes in the
 * trie; tokens with an empty piece (control, unused) can never be sampled under a grammar,
 * except end-of-generation tokens, allowed when the grammar accepts. -ENOMEM. */
int eng_grammar_vocab_new(const struct eng_vocab *vocab, struct eng_grammar_vocab **ret);
/* The same from raw pieces (tests, benchmarks): pieces[i] of lens[i] bytes; is_eog may be NULL. */
int eng_grammar_vocab_from_pieces(int32_t n_tokens, const char *const *pieces, const size_t *lens,
                                  const bool *is_eog, struct eng_grammar_vocab **ret);
void eng_grammar_vocab_free(struct eng_grammar_vocab *gv);
int32_t eng_grammar_vocab_n_tokens(const struct eng_grammar_vocab *gv);
/* Words of a mask: one bit per token, (n_tokens + 31) / 32 uint32_t. */
size_t eng_grammar_mask_words(const struct eng_grammar_vocab *gv);

/* Computes which tokens may come next: bit (id % 32) of allow[id / 32] set for each.
 * Returns the number of allowed tokens (0: nothing can continue, e.g. a byte the vocabulary
 * cannot spell), or -ENOMEM. */
int32_t eng_grammar_mask(struct eng_grammar_matcher *m, const struct eng_grammar_vocab *gv,
                         uint32_t *allow);
/* Same, without the per-state cache (the benchmark's worst case). */
int32_t eng_grammar_mask_uncached(struct eng_grammar_matcher *m, const struct eng_grammar_vocab *gv,
                                  uint32_t *allow);
/* Advances the matcher by a sampled token's piece. An end-of-generation token is accepted only
 * when the grammar accepts (state unchanged). 0, or -EINVAL when the token cannot continue. */
int eng_grammar_matcher_accept_token(struct eng_grammar_matcher *m,
                                     const struct eng_grammar_vocab *gv, int32_t token);

#endif
