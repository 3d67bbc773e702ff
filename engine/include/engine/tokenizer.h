/* Ember's tokenizers: the vocabulary stored in a GGUF file (SentencePiece-style "llama" with
 * score-ordered merges and byte fallback, or byte-level BPE "gpt2" with ranked merges and the
 * pre-tokenizer regexes named by tokenizer.ggml.pre), text -> token ids with special-token
 * recognition and BOS/EOS per metadata, token -> piece, and a streaming detokenizer that only
 * ever emits complete, valid UTF-8 even when one character is spread over several tokens.
 * Results follow llama.cpp's tokenizer for the same file. A vocabulary is immutable after load
 * and may be used from several threads at once. */
#ifndef ENGINE_TOKENIZER_H
#define ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct eng_vocab;

enum eng_vocab_type {
    ENG_VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama" */
    ENG_VOCAB_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
};

/* Token attributes (bit set), from tokenizer.ggml.token_type plus llama.cpp's by-name fixes. */
enum eng_token_attr {
    ENG_TOKEN_ATTR_UNDEFINED = 0,
    ENG_TOKEN_ATTR_UNKNOWN = 1 << 0,
    ENG_TOKEN_ATTR_UNUSED = 1 << 1,
    ENG_TOKEN_ATTR_NORMAL = 1 << 2,
    ENG_TOKEN_ATTR_CONTROL = 1 << 3,
    ENG_TOKEN_ATTR_USER_DEFINED = 1 << 4,
    ENG_TOKEN_ATTR_BYTE = 1 << 5,
    ENG_TOKEN_ATTR_LSTRIP = 1 << 6, /* swallow whitespace left of the token when matched */
    ENG_TOKEN_ATTR_RSTRIP = 1 << 7, /* ... and right of it */
};

/* Loads the vocabulary of a GGUF file (a vocab-only file or a whole model; tensors are not
 * touched). Returns 0, -errno for I/O, -EINVAL for a missing or malformed tokenizer with
 * "what and where" in err. */
int eng_vocab_load_file(const char *path, struct eng_vocab **ret, char *err, size_t err_len);
void eng_vocab_free(struct eng_vocab *vocab);

int32_t eng_vocab_n_tokens(const struct eng_vocab *vocab);
enum eng_vocab_type eng_vocab_type(const struct eng_vocab *vocab);
/* tokenizer.ggml.pre as stored ("default" when absent or for SPM). */
const char *eng_vocab_pre(const struct eng_vocab *vocab);

/* Special ids; -1 when the vocabulary has none. */
int32_t eng_vocab_bos(const struct eng_vocab *vocab);
int32_t eng_vocab_eos(const struct eng_vocab *vocab);
int32_t eng_vocab_eot(const struct eng_vocab *vocab);
int32_t eng_vocab_unk(const struct eng_vocab *vocab);
int32_t eng_vocab_pad(const struct eng_vocab *vocab);
/* Whether add_special tokenization prepends BOS / appends EOS (metadata, llama.cpp defaults). */
bool eng_vocab_add_bos(const struct eng_vocab *vocab);
bool eng_vocab_add_eos(const struct eng_vocab *vocab);
/* Whether SPM tokenization prefixes a space (tokenizer.ggml.add_space_prefix, default true). */
bool eng_vocab_add_space_prefix(const struct eng_vocab *vocab);

/* End of generation: EOS, EOT, EOM and the end-of-turn tokens llama.cpp recognises by text
 * (<|im_end|>, <|eot_id|>, <|endoftext|>, <|end|>, <end_of_turn>, ...). */
bool eng_token_is_eog(const struct eng_vocab *vocab, int32_t id);
/* enum eng_token_attr bits; ENG_TOKEN_ATTR_UNDEFINED for ids out of range. */
unsigned eng_token_attr(const struct eng_vocab *vocab, int32_t id);
/* The stored token text (byte-level form for BPE, U+2581 for spaces in SPM), not
 * NUL-terminated; NULL for ids out of range. */
const char *eng_token_text(const struct eng_vocab *vocab, int32_t id, size_t *ret_len);
/* The id whose stored text is exactly text[0..len), or -1. */
int32_t eng_token_lookup(const struct eng_vocab *vocab, const char *text, size_t len);

/* Tokenizes len bytes of UTF-8 text (invalid bytes are tolerated as llama.cpp does).
 * add_special: prepend BOS / append EOS as the vocabulary's add_bos/add_eos say.
 * parse_special: recognise CONTROL tokens written in the text (e.g. "<|im_start|>");
 * USER_DEFINED tokens are always recognised. Writes at most cap ids to out and the full count
 * to *ret_n; returns -ENOSPC (with *ret_n = the count needed) when cap is too small, -ENOMEM,
 * -E2BIG for text longer than ENG_TOKENIZE_MAX_BYTES, or -EINVAL for a NULL vocab/text. */
#define ENG_TOKENIZE_MAX_BYTES ((size_t)1 << 30)
int eng_tokenize(const struct eng_vocab *vocab, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t *out, size_t cap, size_t *ret_n);

/* A byte range of a text. */
struct eng_text_span {
    size_t off, len;
};

/* eng_tokenize with parse_special everywhere except inside the literal spans (ascending,
 * disjoint): there a control token's text is ordinary text, as in eng_tokenize with
 * parse_special false. For prompts rendered from a chat template, where the template's markup
 * is special and the users' messages are not. */
int eng_tokenize_spans(const struct eng_vocab *vocab, const char *text, size_t len,
                       bool add_special, const struct eng_text_span *literal, size_t n_literal,
                       int32_t *out, size_t cap, size_t *ret_n);

/* The bytes a token stands for: SPM U+2581 -> space and <0xHH> byte tokens -> that byte; BPE
 * byte-level characters -> bytes. CONTROL/UNKNOWN tokens give their text only with special,
 * else nothing; UNUSED tokens give nothing. The piece may be an incomplete UTF-8 sequence.
 * Writes at most cap bytes (no NUL) and the length to *ret_len; -ENOSPC when cap is too small
 * (*ret_len = length needed), -EINVAL for an id out of range. */
int eng_token_piece(const struct eng_vocab *vocab, int32_t id, bool special, char *buf, size_t cap,
                    size_t *ret_len);

/* ---- streaming detokenizer ---- */

enum eng_detok_flags {
    ENG_DETOK_SPECIAL = 1 << 0, /* render CONTROL/UNKNOWN tokens' text */
    /* Drop the one space an SPM vocabulary with add_space_prefix puts in front of the text:
     * use when the stream starts at the beginning of a text (e.g. right after BOS). */
    ENG_DETOK_STRIP_LEADING_SPACE = 1 << 1,
};

/* Push tokens, get complete UTF-8 out. Bytes of an unfinished character are held until the
 * token that completes it; bytes that can never form a valid character come out as U+FFFD
 * (one per maximal invalid subpart, as the Unicode standard recommends). Plain data: embed it,
 * no free needed. */
struct eng_detok {
    const struct eng_vocab *vocab;
    unsigned flags;
    bool started;    /* some text has been emitted (leading-space rule applied) */
    uint8_t pend[4]; /* bytes of an unfinished UTF-8 sequence */
    uint8_t n_pend;
    uint8_t need; /* total length of the pending sequence */
};

/* Longest output one eng_detok_push can produce for this vocabulary (buffer this much). */
size_t eng_detok_max_out(const struct eng_vocab *vocab);

void eng_detok_init(struct eng_detok *d, const struct eng_vocab *vocab, unsigned flags);
/* Appends token id; writes the newly completed text (no NUL) to out and its length to
 * *ret_n. -ENOSPC (state unchanged, *ret_n = bytes needed) when cap is too small; -EINVAL for
 * an id out of range (state unchanged). */
int eng_detok_push(struct eng_detok *d, int32_t id, char *out, size_t cap, size_t *ret_n);
/* Ends the stream: an unfinished character becomes U+FFFD. At most 3 bytes. */
int eng_detok_flush(struct eng_detok *d, char *out, size_t cap, size_t *ret_n);

#endif
