/* Byte-level BPE pre-tokenizers: the regex lists named by tokenizer.ggml.pre, compiled with PCRE2
 * (UTF + Unicode properties), and the splitting rule llama.cpp applies: each regex in turn runs
 * over every piece the previous ones produced, and both its matches and the text between them
 * become pieces. Several vocabularies (falcon, deepseek, starcoder) rely on that sequencing, e.g.
 * splitting digits one by one before the GPT-2 rules see them. The regexes are the published
 * ones of each model's tokenizer.json as llama.cpp adapts them (case-insensitive contractions
 * spelled out). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_internal.h"

#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's rule: contractions, letters, digits, other symbols (each with one optional leading
 * space), whitespace runs that leave their last space to the next word. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* Llama 3 (tiktoken cl100k style): digits in groups of up to three. */
#define RE_LLAMA3                                                                              \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Qwen 2/2.5/3: as Llama 3 but every digit on its own. */
#define RE_QWEN2                                                                               \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* DeepSeek LLM's letter class (the cased letters of many scripts, spelled out in its tokenizer),
 * written with escapes: several of its code points (U+1F7D, U+1FBE, U+2126, U+212A, ...) have
 * canonical singleton decompositions that an editor normalising to NFC would silently change. */
#define RE_DEEPSEEK_LETTERS                                                                    \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"        \
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"     \
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-"     \
    "\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"         \
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-"   \
    "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"    \
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"     \
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"    \
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-"   \
    "\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"      \
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"     \
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"     \
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-"    \
    "\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"    \
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}" \
    "-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-"    \
    "\\x{118DF}\\x{1E900}-\\x{1E943}]+"

/* CJK ideographs and Hangul. llama.cpp matches these classes against text in which every non-ASCII
 * whitespace character was replaced by U+000B, so the ones inside the published ranges (U+1680,
 * U+2000-U+200A, U+2028/9, U+202F, U+205F, U+3000) never match: the ranges leave them out. */
#define RE_CJK                                                                     \
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{167F}\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}" \
    "\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{4E00}" \
    "\\x{AC00}-\\x{D7FF}]+"

/* DeepSeek LLM's ASCII and full-width punctuation (its class ends at U+3002; U+3000 is left out
 * for the reason given at RE_CJK). */
#define RE_DEEPSEEK_PUNCT \
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3001}-\\x{3002}]+"

struct pretok_def {
    const char *names[12]; /* tokenizer.ggml.pre values */
    const char *regex[ENG_PRETOK_MAX_REGEX];
    bool ignore_merges; /* a piece that is a whole token is taken as is (tiktoken-style) */
    bool add_bos;
};

static const struct pretok_def pretok_defs[] = {
    {{"default"},
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     false,
     false},
    {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {RE_LLAMA3}, true, true},
    {{"dbrx", "smaug-bpe"}, {RE_LLAMA3}, false, false},
    {{"deepseek-llm"},
     {"[\r\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_CJK, "\\p{N}+"},
     false,
     false},
    {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}, false, false},
    {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
     {"\\p{N}", RE_GPT2},
     false,
     false},
    {{"gpt-2", "gpt2", "gpt-neox", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "gigachat",
      "jina-v1-en", "roberta-bpe"},
     {RE_GPT2},
     false,
     false},
    {{"jina-v2-es", "jina-v2-de", "jina-v2-code"}, {RE_GPT2}, false, false},
    {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {RE_QWEN2}, false, false},
    {{"poro-chat", "bloom", "gpt3-finnish"},
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"},
     false,
     false},
};

/* PCRE2's \s (Unicode separators plus \t\n\v\f\r) leaves out U+0085 NEXT LINE, which llama.cpp
 * and the Hugging Face tokenizers count as whitespace: rewrite \s and \S to include it. */
static int rewrite_whitespace(const char *re, char *out, size_t cap)
{
    size_t n = 0;
    int in_class = 0;
    for (size_t i = 0; re[i]; i++) {
        const char *add = NULL;
        char one[3] = {re[i], 0, 0};
        if (re[i] == '\\' && re[i + 1]) {
            char c = re[i + 1];
            if (c == 's')
                add = in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
            else if (c == 'S')
                add = in_class ? NULL : "[^\\s\\x{85}]";
            if (!add) {
                one[1] = c;
                add = one;
            }
            i++;
        } else {
            if (re[i] == '[' && !in_class)
                in_class = 1;
            else if (re[i] == ']' && in_class)
                in_class = 0;
            add = one;
        }
        size_t k = strlen(add);
        if (n + k + 1 > cap)
            return -ENAMETOOLONG;
        memcpy(out + n, add, k);
        n += k;
    }
    out[n] = 0;
    return 0;
}

int eng_pretok_init(struct eng_pretok *p, const char *pre, bool *ret_ignore_merges,
                    bool *ret_add_bos, char *err, size_t err_len)
{
    const struct pretok_def *def = NULL;
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < sizeof(pretok_defs) / sizeof(pretok_defs[0]) && !def; i++)
        for (size_t k = 0; k < 12 && pretok_defs[i].names[k]; k++)
            if (!strcmp(pre, pretok_defs[i].names[k]))
                def = &pretok_defs[i];
    if (!def) {
        snprintf(err, err_len, "tokenizer.ggml.pre: unknown pre-tokenizer '%.40s'", pre);
        return -EINVAL;
    }
    for (int i = 0; i < ENG_PRETOK_MAX_REGEX && def->regex[i]; i++) {
        char pattern[2048];
        int errcode;
        PCRE2_SIZE erroff;
        if (rewrite_whitespace(def->regex[i], pattern, sizeof(pattern))) {
            snprintf(err, err_len, "pre-tokenizer '%s': regex %d too long", pre, i);
            goto fail;
        }
        pcre2_code *code =
            pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &errcode, &erroff, NULL);
        if (!code) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(errcode, msg, sizeof(msg));
            snprintf(err, err_len, "pre-tokenizer '%s': regex %d at offset %zu: %s", pre, i,
                     (size_t)erroff, (const char *)msg);
            goto fail;
        }
        /* JIT when available; the interpreter gives the same results. */
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        p->code[p->n++] = code;
    }
    *ret_ignore_merges = def->ignore_merges;
    if (def->add_bos)
        *ret_add_bos = true;
    return 0;
fail:
    eng_pretok_free(p);
    return -EINVAL;
}

void eng_pretok_free(struct eng_pretok *p)
{
    for (int i = 0; i < p->n; i++)
        pcre2_code_free(p->code[i]);
    p->n = 0;
}

void eng_pretok_scratch_free(struct eng_pretok_scratch *s)
{
    free(s->a);
    free(s->b);
    pcre2_match_data_free(s->match_data);
    memset(s, 0, sizeof(*s));
}

static int push_piece(size_t **arr, size_t *cap, size_t *n, size_t off, size_t len)
{
    if (2 * (*n + 1) > *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        size_t *grown = realloc(*arr, ncap * sizeof(**arr));
        if (!grown)
            return -ENOMEM;
        *arr = grown;
        *cap = ncap;
    }
    (*arr)[2 * *n] = off;
    (*arr)[2 * *n + 1] = len;
    (*n)++;
    return 0;
}

int eng_pretok_split(const struct eng_pretok *p, const char *text, size_t len,
                     struct eng_pretok_scratch *s, const size_t **ret_pieces, size_t *ret_n)
{
    size_t n_in = 0, n_out;
    int rc;

    if (!s->match_data) {
        s->match_data = pcre2_match_data_create(4, NULL);
        if (!s->match_data)
            return -ENOMEM;
    }
    if ((rc = push_piece(&s->a, &s->cap_a, &n_in, 0, len)))
        return rc;
    for (int r = 0; r < p->n; r++) {
        const pcre2_code *code = p->code[r];
        n_out = 0;
        for (size_t k = 0; k < n_in; k++) {
            size_t off = s->a[2 * k], n = s->a[2 * k + 1];
            const PCRE2_SPTR subject = (PCRE2_SPTR)(text + off);
            size_t prev = 0, start = 0;
            /* Each piece is its own subject: lookarounds and $ see the piece's ends, as with
             * llama.cpp's per-piece regex iterator. */
            while (start < n) {
                int m =
                    pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK, s->match_data, NULL);
                /* the interpreter keeps its backtracking stack on the heap */
                if (m == PCRE2_ERROR_JIT_STACKLIMIT)
                    m = pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                                    s->match_data, NULL);
                if (m == PCRE2_ERROR_NOMATCH)
                    break;
                if (m < 0)
                    return m == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EINVAL;
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->match_data);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) {
                    /* None of the patterns can match empty; step over a character anyway. */
                    start = ms + 1;
                    while (start < n && ((uint8_t)text[off + start] & 0xC0) == 0x80)
                        start++;
                    continue;
                }
                if (ms > prev && (rc = push_piece(&s->b, &s->cap_b, &n_out, off + prev, ms - prev)))
                    return rc;
                if ((rc = push_piece(&s->b, &s->cap_b, &n_out, off + ms, me - ms)))
                    return rc;
                prev = start = me;
            }
            if (prev < n && (rc = push_piece(&s->b, &s->cap_b, &n_out, off + prev, n - prev)))
                return rc;
        }
        size_t *t = s->a;
        s->a = s->b;
        s->b = t;
        size_t tc = s->cap_a;
        s->cap_a = s->cap_b;
        s->cap_b = tc;
        n_in = n_out;
    }
    *ret_pieces = s->a;
    *ret_n = n_in;
    return 0;
}
