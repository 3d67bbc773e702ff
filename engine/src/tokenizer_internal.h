/* The vocabulary's in-memory form shared by the tokenizer's source files (loading, pre-tokenizer
 * regexes, SPM/BPE merging, detokenizing), and the loader the model uses on an open GGUF.
 * Private to the engine. */
#ifndef ENGINE_TOKENIZER_INTERNAL_H
#define ENGINE_TOKENIZER_INTERNAL_H

#include "engine/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_file;

#define ENG_PRETOK_MAX_REGEX 8

/* Builds the vocabulary from an open GGUF's tokenizer.* metadata. Everything is copied, so f
 * may be closed afterwards. -EINVAL with "what and where" in err when the tokenizer keys are
 * missing or malformed, -ENOMEM. */
int eng_vocab_load_gguf(const struct gguf_file *f, struct eng_vocab **ret, char *err,
                        size_t err_len);

struct eng_token_data {
    uint32_t off; /* into eng_vocab.text */
    uint32_t len;
    float score;
    uint32_t attr; /* enum eng_token_attr bits */
};

/* One BPE merge, keyed by the ids of its two halves. */
struct eng_merge_slot {
    uint64_t key; /* (left id + 1) << 32 | (right id + 1); 0 = empty slot */
    int32_t rank;
    int32_t result; /* id of the merged text */
};

/* Compiled pre-tokenizer: the regexes applied one after the other, each splitting every piece
 * the previous ones produced (matches and the gaps between them both become pieces). */
struct eng_pretok {
    int n;
    void *code[ENG_PRETOK_MAX_REGEX]; /* pcre2_code_8 * */
};

struct eng_vocab {
    enum eng_vocab_type type;
    char pre[64];
    int32_t n_tokens;
    struct eng_token_data *tokens;
    char *text; /* all token texts, back to back */
    size_t max_token_len;

    /* text -> id: open addressing, slot holds id + 1 (0 = empty), linear probing */
    uint32_t *hash;
    uint64_t hash_mask;

    struct eng_merge_slot *merges;
    uint64_t merges_mask;
    int32_t n_merges;

    /* SPM: the id for byte b (<0xHH>, else the one-byte token, else unk, else -1).
     * BPE: the id of byte b's byte-level character (-1 if missing). */
    int32_t byte_token[256];

    int32_t bos, eos, eot, eom, unk, sep, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;

    int32_t *eog; /* sorted */
    int n_eog;

    /* CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first (ties by id) */
    int32_t *special;
    int n_special;

    struct eng_pretok pretok;
};

/* Hashes and lookups (tokenizer_vocab.c). */
uint64_t eng_tok_hash_bytes(const char *s, size_t len);
int32_t eng_vocab_find(const struct eng_vocab *v, const char *s, size_t len);
const struct eng_merge_slot *eng_vocab_find_merge(const struct eng_vocab *v, int32_t left,
                                                  int32_t right);

/* Pre-tokenizer (tokenizer_pretok.c): compiles the regexes for a tokenizer.ggml.pre name
 * (-EINVAL with a message for an unknown name), frees them, and splits text[0..len) (valid
 * UTF-8) into pieces: *ret_pieces gets pairs (offset, length), *ret_n their count. The arrays
 * are caller-owned scratch (grown with realloc, kept between calls). */
int eng_pretok_init(struct eng_pretok *p, const char *pre, bool *ret_ignore_merges,
                    bool *ret_add_bos, char *err, size_t err_len);
void eng_pretok_free(struct eng_pretok *p);

struct eng_pretok_scratch {
    size_t *a, *b; /* (offset, length) pairs */
    size_t cap_a, cap_b;
    void *match_data; /* pcre2_match_data_8 * */
};

int eng_pretok_split(const struct eng_pretok *p, const char *text, size_t len,
                     struct eng_pretok_scratch *s, const size_t **ret_pieces, size_t *ret_n);
void eng_pretok_scratch_free(struct eng_pretok_scratch *s);

#endif
