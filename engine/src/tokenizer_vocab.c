/* Loading a vocabulary from GGUF tokenizer.* metadata into eng_vocab: token texts copied into one
 * block, an open-addressing hash from text to id, BPE merges hashed by the ids of their halves,
 * special ids with llama.cpp's defaults and its by-text detection of end-of-turn and FIM tokens,
 * and the special-token list in matching order. Also the small public getters. */
#include "gguf.h"
#include "tokenizer_internal.h"
#include "unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's GGUF token types (tokenizer.ggml.token_type). */
enum {
    TT_UNDEFINED = 0,
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_USER_DEFINED = 4,
    TT_UNUSED = 5,
    TT_BYTE = 6,
};

#define MAX_TOKENS  (1 << 24)
#define MAX_MERGES  (1 << 24)
#define MAX_TOK_LEN (1 << 16)

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t eng_tok_hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (len * 0xff51afd7ed558ccdULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix64(h ^ w);
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < len; i++)
        w |= (uint64_t)(uint8_t)s[i] << (8 * i);
    return mix64(h ^ w ^ 0x5bd1e995);
}

int32_t eng_vocab_find(const struct eng_vocab *v, const char *s, size_t len)
{
    uint64_t i = eng_tok_hash_bytes(s, len) & v->hash_mask;
    for (;;) {
        uint32_t slot = v->hash[i];
        if (!slot)
            return -1;
        const struct eng_token_data *t = &v->tokens[slot - 1];
        if (t->len == len && memcmp(v->text + t->off, s, len) == 0)
            return (int32_t)(slot - 1);
        i = (i + 1) & v->hash_mask;
    }
}

static uint64_t merge_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)(left + 1) << 32) | (uint32_t)(right + 1);
}

const struct eng_merge_slot *eng_vocab_find_merge(const struct eng_vocab *v, int32_t left,
                                                  int32_t right)
{
    if (!v->merges || left < 0 || right < 0)
        return NULL;
    uint64_t key = merge_key(left, right);
    uint64_t i = mix64(key) & v->merges_mask;
    for (;;) {
        const struct eng_merge_slot *m = &v->merges[i];
        if (m->key == key)
            return m;
        if (!m->key)
            return NULL;
        i = (i + 1) & v->merges_mask;
    }
}

static uint64_t table_size_for(uint64_t n)
{
    uint64_t size = 16;
    while (size < n * 2)
        size <<= 1;
    return size;
}

void eng_vocab_free(struct eng_vocab *v)
{
    if (!v)
        return;
    eng_pretok_free(&v->pretok);
    free(v->tokens);
    free(v->text);
    free(v->hash);
    free(v->merges);
    free(v->eog);
    free(v->special);
    free(v);
}

static uint32_t attr_from_type(int64_t type)
{
    switch (type) {
    case TT_NORMAL:
        return ENG_TOKEN_ATTR_NORMAL;
    case TT_UNKNOWN:
        return ENG_TOKEN_ATTR_UNKNOWN;
    case TT_CONTROL:
        return ENG_TOKEN_ATTR_CONTROL;
    case TT_USER_DEFINED:
        return ENG_TOKEN_ATTR_USER_DEFINED;
    case TT_UNUSED:
        return ENG_TOKEN_ATTR_UNUSED;
    case TT_BYTE:
        return ENG_TOKEN_ATTR_BYTE;
    default:
        return ENG_TOKEN_ATTR_UNDEFINED;
    }
}

/* Reads an optional token id key: values outside the vocabulary keep the default, as
 * llama.cpp does (stories260K stores 4294967295 for "none"). */
static void read_id(const struct gguf_file *f, const char *key, int32_t n_tokens, int32_t *id)
{
    uint32_t v;
    if (gguf_get_u32(f, key, &v) == 0 && v < (uint32_t)n_tokens)
        *id = (int32_t)v;
}

static void read_flag(const struct gguf_file *f, const char *key, bool *flag)
{
    int v;
    if (gguf_get_bool(f, key, &v) == 0)
        *flag = v != 0;
}

static int32_t find_str(const struct eng_vocab *v, const char *s)
{
    return eng_vocab_find(v, s, strlen(s));
}

/* The first of names present in the vocabulary (forced to CONTROL, as llama.cpp does for
 * control-looking tokens), or -1. */
static int32_t detect_by_text(struct eng_vocab *v, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = find_str(v, *names);
        if (id >= 0) {
            v->tokens[id].attr |= ENG_TOKEN_ATTR_CONTROL;
            return id;
        }
    }
    return -1;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Longest text first, then lowest id (qsort_r: loads may run in parallel threads). */
static int cmp_special(const void *a, const void *b, void *arg)
{
    const struct eng_vocab *v = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->tokens[x].len, ly = v->tokens[y].len;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

static int load_tokens(const struct gguf_file *f, struct eng_vocab *v, char *err, size_t err_len)
{
    struct gguf_arr toks, scores, types;
    int have_scores, have_types;

    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) != 0 || toks.type != GGUF_VT_STRING) {
        snprintf(err, err_len, "tokenizer.ggml.tokens: missing or not a string array");
        return -EINVAL;
    }
    if (toks.n == 0 || toks.n > MAX_TOKENS) {
        snprintf(err, err_len, "tokenizer.ggml.tokens: %llu tokens (expected 1..%d)",
                 (unsigned long long)toks.n, MAX_TOKENS);
        return -EINVAL;
    }
    v->n_tokens = (int32_t)toks.n;

    have_scores = gguf_get_arr(f, "tokenizer.ggml.scores", &scores) == 0;
    if (have_scores &&
        (scores.n < toks.n || (scores.type != GGUF_VT_FLOAT32 && scores.type != GGUF_VT_FLOAT64 &&
                               scores.type != GGUF_VT_INT32))) {
        snprintf(err, err_len, "tokenizer.ggml.scores: %llu values of type %s for %d tokens",
                 (unsigned long long)scores.n, gguf_value_type_name(scores.type), v->n_tokens);
        return -EINVAL;
    }
    have_types = gguf_get_arr(f, "tokenizer.ggml.token_type", &types) == 0;
    if (have_types &&
        (types.n < toks.n || (types.type != GGUF_VT_INT32 && types.type != GGUF_VT_UINT32 &&
                              types.type != GGUF_VT_INT8 && types.type != GGUF_VT_UINT8))) {
        snprintf(err, err_len, "tokenizer.ggml.token_type: %llu values of type %s for %d tokens",
                 (unsigned long long)types.n, gguf_value_type_name(types.type), v->n_tokens);
        return -EINVAL;
    }

    v->tokens = calloc((size_t)v->n_tokens, sizeof(*v->tokens));
    if (!v->tokens)
        return -ENOMEM;

    /* Sizes first, so the texts go into one block. Empty texts become "[EMPTY_<id>]"
     * (llama.cpp), so every token has a text to match and print. */
    size_t total = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        size_t len;
        if (!gguf_arr_str(f, &toks, (uint64_t)i, &len)) {
            snprintf(err, err_len, "tokenizer.ggml.tokens[%d]: unreadable string", i);
            return -EINVAL;
        }
        if (len > MAX_TOK_LEN) {
            snprintf(err, err_len, "tokenizer.ggml.tokens[%d]: %zu bytes long (max %d)", i, len,
                     MAX_TOK_LEN);
            return -EINVAL;
        }
        total += len ? len : 24;
    }
    v->text = malloc(total + 1);
    if (!v->text)
        return -ENOMEM;

    size_t off = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        size_t len;
        const char *s = gguf_arr_str(f, &toks, (uint64_t)i, &len);
        struct eng_token_data *t = &v->tokens[i];
        t->off = (uint32_t)off;
        if (len) {
            memcpy(v->text + off, s, len);
        } else {
            len = (size_t)snprintf(v->text + off, 24, "[EMPTY_%d]", i);
        }
        t->len = (uint32_t)len;
        off += len;
        if (len > v->max_token_len)
            v->max_token_len = len;
        t->score = have_scores ? (float)gguf_arr_float(&scores, (uint64_t)i) : 0.0f;
        t->attr =
            have_types ? attr_from_type(gguf_arr_int(&types, (uint64_t)i)) : ENG_TOKEN_ATTR_NORMAL;
    }
    v->text[off] = 0;

    v->hash_mask = table_size_for((uint64_t)v->n_tokens) - 1;
    v->hash = calloc(v->hash_mask + 1, sizeof(*v->hash));
    if (!v->hash)
        return -ENOMEM;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const struct eng_token_data *t = &v->tokens[i];
        uint64_t h = eng_tok_hash_bytes(v->text + t->off, t->len) & v->hash_mask;
        while (v->hash[h]) {
            const struct eng_token_data *o = &v->tokens[v->hash[h] - 1];
            if (o->len == t->len && memcmp(v->text + o->off, v->text + t->off, t->len) == 0) {
                snprintf(err, err_len, "tokenizer.ggml.tokens[%d]: duplicate of token %u", i,
                         v->hash[h] - 1);
                return -EINVAL;
            }
            h = (h + 1) & v->hash_mask;
        }
        v->hash[h] = (uint32_t)i + 1;
    }
    return 0;
}

static int load_merges(const struct gguf_file *f, struct eng_vocab *v, char *err, size_t err_len)
{
    struct gguf_arr arr;
    if (gguf_get_arr(f, "tokenizer.ggml.merges", &arr) != 0 || arr.type != GGUF_VT_STRING) {
        snprintf(err, err_len,
                 "tokenizer.ggml.merges: missing or not a string array "
                 "(required for tokenizer.ggml.model = gpt2)");
        return -EINVAL;
    }
    if (arr.n > MAX_MERGES) {
        snprintf(err, err_len, "tokenizer.ggml.merges: %llu merges (max %d)",
                 (unsigned long long)arr.n, MAX_MERGES);
        return -EINVAL;
    }
    v->merges_mask = table_size_for(arr.n) - 1;
    v->merges = calloc(v->merges_mask + 1, sizeof(*v->merges));
    char *joined = malloc(2 * MAX_TOK_LEN + 1);
    if (!v->merges || !joined) {
        free(joined);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < arr.n; i++) {
        size_t len;
        const char *s = gguf_arr_str(f, &arr, i, &len);
        if (!s || len > 2 * MAX_TOK_LEN) {
            snprintf(err, err_len, "tokenizer.ggml.merges[%llu]: unreadable or too long",
                     (unsigned long long)i);
            free(joined);
            return -EINVAL;
        }
        /* "left right", split at the first space after the first byte (a left half may itself
         * be a space in vocabularies that are not byte-level). */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp)
            continue;
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        int32_t left = eng_vocab_find(v, s, ll);
        int32_t right = eng_vocab_find(v, sp + 1, rl);
        memcpy(joined, s, ll);
        memcpy(joined + ll, sp + 1, rl);
        int32_t result = eng_vocab_find(v, joined, ll + rl);
        /* A merge whose halves or result are not tokens can never produce a token id; the
         * symbols it would join stay apart. */
        if (left < 0 || right < 0 || result < 0)
            continue;
        uint64_t key = merge_key(left, right);
        uint64_t h = mix64(key) & v->merges_mask;
        while (v->merges[h].key && v->merges[h].key != key)
            h = (h + 1) & v->merges_mask;
        if (v->merges[h].key)
            continue; /* the first (lowest) rank wins */
        v->merges[h].key = key;
        v->merges[h].rank = (int32_t)i;
        v->merges[h].result = result;
        v->n_merges++;
    }
    free(joined);
    return 0;
}

static void init_byte_tokens(struct eng_vocab *v)
{
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int32_t id;
        if (v->type == ENG_VOCAB_SPM) {
            snprintf(buf, sizeof(buf), "<0x%02X>", b);
            id = find_str(v, buf);
            if (id < 0) {
                buf[0] = (char)b;
                id = eng_vocab_find(v, buf, 1);
            }
            if (id < 0)
                id = v->unk;
        } else {
            size_t n = eng_byte_to_utf8((uint8_t)b, buf);
            id = eng_vocab_find(v, buf, n);
        }
        v->byte_token[b] = id;
    }
}

static int add_eog(struct eng_vocab *v, int32_t id)
{
    if (id < 0)
        return 0;
    for (int i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id)
            return 0;
    int32_t *grown = realloc(v->eog, (size_t)(v->n_eog + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    v->eog = grown;
    v->eog[v->n_eog++] = id;
    return 0;
}

/* llama.cpp finds end-of-turn, FIM and end-of-generation tokens by their text and forces them
 * to CONTROL; that changes which tokens plain text may contain, so do the same. */
static int detect_special(struct eng_vocab *v)
{
    static const char *const eot_names[] = {"<|eot_id|>",
                                            "<|im_end|>",
                                            "<|end|>",
                                            "<end_of_turn>",
                                            "<|endoftext|>",
                                            "<|end_of_text|>",
                                            "<EOT>",
                                            "_<EOT>",
                                            "<\xEF\xBD\x9C"
                                            "end\xE2\x96\x81"
                                            "of"
                                            "\xE2\x96\x81"
                                            "sentence\xEF\xBD\x9C>",
                                            NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre[] = {"<|fim_prefix|>", "<fim-prefix>",      "<fim_prefix>",
                                          "<PRE>",          "\xE2\x96\x81<PRE>", NULL};
    static const char *const fim_suf[] = {"<|fim_suffix|>", "<fim-suffix>",      "<fim_suffix>",
                                          "<SUF>",          "\xE2\x96\x81<SUF>", NULL};
    static const char *const fim_mid[] = {"<|fim_middle|>", "<fim-middle>",      "<fim_middle>",
                                          "<MID>",          "\xE2\x96\x81<MID>", NULL};
    static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
    static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                          NULL};
    static const char *const fim_sep[] = {"<|file_sep|>", NULL};
    static const char *const eog_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",   "<|endoftext|>",
        "<|eom_id|>", "<EOT>",      "_<EOT>",  "<|end_of_text|>", NULL};
    int rc;

    if (v->eot < 0)
        v->eot = detect_by_text(v, eot_names);
    if (v->eom < 0)
        v->eom = detect_by_text(v, eom_names);
    detect_by_text(v, fim_pre);
    detect_by_text(v, fim_suf);
    detect_by_text(v, fim_mid);
    if ((rc = add_eog(v, detect_by_text(v, fim_pad))) ||
        (rc = add_eog(v, detect_by_text(v, fim_rep))) ||
        (rc = add_eog(v, detect_by_text(v, fim_sep))))
        return rc;

    /* CONTROL tokens named "unused" are unused. */
    for (int32_t i = 0; i < v->n_tokens; i++) {
        struct eng_token_data *t = &v->tokens[i];
        if ((t->attr & ENG_TOKEN_ATTR_CONTROL) && memmem(v->text + t->off, t->len, "unused", 6))
            t->attr |= ENG_TOKEN_ATTR_UNUSED;
    }

    for (const char *const *n = eog_names; *n; n++) {
        int32_t id = find_str(v, *n);
        if (id >= 0) {
            v->tokens[id].attr |= ENG_TOKEN_ATTR_CONTROL;
            if ((rc = add_eog(v, id)))
                return rc;
        }
    }
    if ((rc = add_eog(v, v->eos)) || (rc = add_eog(v, v->eot)) || (rc = add_eog(v, v->eom)))
        return rc;
    if (v->n_eog > 1)
        qsort(v->eog, (size_t)v->n_eog, sizeof(*v->eog), cmp_i32);
    return 0;
}

static int build_special_cache(struct eng_vocab *v, const char *model_name)
{
    const unsigned mask =
        ENG_TOKEN_ATTR_CONTROL | ENG_TOKEN_ATTR_USER_DEFINED | ENG_TOKEN_ATTR_UNKNOWN;
    int n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        n += (v->tokens[i].attr & mask) != 0;
    v->special = malloc((size_t)(n ? n : 1) * sizeof(*v->special));
    if (!v->special)
        return -ENOMEM;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i].attr & mask)
            v->special[v->n_special++] = i;
    qsort_r(v->special, (size_t)v->n_special, sizeof(*v->special), cmp_special, v);

    /* Per-model attributes llama.cpp sets by name: Phi-3's special tokens eat the whitespace
     * that follows them (except <unk>, <s>, <|endoftext|>); Jina v2's <mask> the one before. */
    char lower[128];
    size_t i = 0;
    for (; model_name && model_name[i] && i + 1 < sizeof(lower); i++) {
        char c = model_name[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    lower[i] = 0;
    if (strstr(v->pre, "jina-v2-de") || strstr(v->pre, "jina-v2-es") ||
        strstr(v->pre, "jina-v2-code")) {
        int32_t id = find_str(v, "<mask>");
        if (id >= 0)
            v->tokens[id].attr |= ENG_TOKEN_ATTR_LSTRIP;
    } else if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
        for (int k = 0; k < v->n_special; k++)
            v->tokens[v->special[k]].attr |= ENG_TOKEN_ATTR_RSTRIP;
        int32_t id = find_str(v, "</s>");
        if (id >= 0)
            v->tokens[id].attr |= ENG_TOKEN_ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
            id = find_str(v, keep[k]);
            if (id >= 0)
                v->tokens[id].attr &= ~(uint32_t)ENG_TOKEN_ATTR_RSTRIP;
        }
    }
    return 0;
}

int eng_vocab_load_gguf(const struct gguf_file *f, struct eng_vocab **ret, char *err,
                        size_t err_len)
{
    struct eng_vocab *v = NULL;
    const char *model = NULL, *pre = NULL, *name = NULL;
    int rc;

    *ret = NULL;
    if (err_len)
        err[0] = 0;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) != 0 || !strcmp(model, "none") ||
        !strcmp(model, "no_vocab")) {
        snprintf(err, err_len, "tokenizer.ggml.model: absent (the file has no tokenizer)");
        return -ENOENT;
    }
    v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    if (!strcmp(model, "llama")) {
        v->type = ENG_VOCAB_SPM;
    } else if (!strcmp(model, "gpt2")) {
        v->type = ENG_VOCAB_BPE;
    } else {
        snprintf(err, err_len, "tokenizer.ggml.model: '%.40s' is not supported (llama, gpt2)",
                 model);
        rc = -EINVAL;
        goto fail;
    }
    if (gguf_get_str(f, "tokenizer.ggml.pre", &pre) != 0 || v->type == ENG_VOCAB_SPM)
        pre = "default";
    snprintf(v->pre, sizeof(v->pre), "%s", pre);
    gguf_get_str(f, "general.name", &name);

    if ((rc = load_tokens(f, v, err, err_len)))
        goto fail;

    /* llama.cpp's defaults per model type, then the metadata overrides them. */
    v->eot = v->eom = v->sep = v->pad = -1;
    if (v->type == ENG_VOCAB_SPM) {
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else {
        v->bos = 11;
        v->eos = 11;
        v->unk = -1;
        if ((rc =
                 eng_pretok_init(&v->pretok, v->pre, &v->ignore_merges, &v->add_bos, err, err_len)))
            goto fail;
        if ((rc = load_merges(f, v, err, err_len)))
            goto fail;
    }
    if (v->bos >= v->n_tokens)
        v->bos = -1;
    if (v->eos >= v->n_tokens)
        v->eos = -1;
    if (v->unk >= v->n_tokens)
        v->unk = -1;
    read_id(f, "tokenizer.ggml.bos_token_id", v->n_tokens, &v->bos);
    read_id(f, "tokenizer.ggml.eos_token_id", v->n_tokens, &v->eos);
    read_id(f, "tokenizer.ggml.eot_token_id", v->n_tokens, &v->eot);
    read_id(f, "tokenizer.ggml.eom_token_id", v->n_tokens, &v->eom);
    read_id(f, "tokenizer.ggml.unknown_token_id", v->n_tokens, &v->unk);
    read_id(f, "tokenizer.ggml.seperator_token_id", v->n_tokens, &v->sep);
    read_id(f, "tokenizer.ggml.padding_token_id", v->n_tokens, &v->pad);
    read_flag(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    read_flag(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    read_flag(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    if (v->add_bos && v->bos < 0) {
        snprintf(err, err_len, "tokenizer.ggml.add_bos_token is true, but there is no BOS token");
        rc = -EINVAL;
        goto fail;
    }
    if (v->add_eos && v->eos < 0) {
        snprintf(err, err_len, "tokenizer.ggml.add_eos_token is true, but there is no EOS token");
        rc = -EINVAL;
        goto fail;
    }

    init_byte_tokens(v);
    if ((rc = detect_special(v)) || (rc = build_special_cache(v, name)))
        goto fail;
    *ret = v;
    return 0;
fail:
    if (rc == -ENOMEM && err_len && !err[0])
        snprintf(err, err_len, "out of memory loading the vocabulary");
    eng_vocab_free(v);
    return rc;
}

int eng_vocab_load_file(const char *path, struct eng_vocab **ret, char *err, size_t err_len)
{
    struct gguf_file *f = NULL;
    *ret = NULL;
    int rc = gguf_open(path, &f, err, err_len);
    if (rc)
        return rc;
    rc = eng_vocab_load_gguf(f, ret, err, err_len);
    if (rc && err_len) {
        /* name the file: "<path>: <what>" */
        char what[256];
        snprintf(what, sizeof(what), "%s", err);
        snprintf(err, err_len, "%s: %s", path, what);
    }
    gguf_close(f);
    return rc;
}

/* ---- getters ---- */

int32_t eng_vocab_n_tokens(const struct eng_vocab *v)
{
    return v ? v->n_tokens : 0;
}

enum eng_vocab_type eng_vocab_type(const struct eng_vocab *v)
{
    return v->type;
}

const char *eng_vocab_pre(const struct eng_vocab *v)
{
    return v->pre;
}

int32_t eng_vocab_bos(const struct eng_vocab *v)
{
    return v->bos;
}

int32_t eng_vocab_eos(const struct eng_vocab *v)
{
    return v->eos;
}

int32_t eng_vocab_eot(const struct eng_vocab *v)
{
    return v->eot;
}

int32_t eng_vocab_unk(const struct eng_vocab *v)
{
    return v->unk;
}

int32_t eng_vocab_pad(const struct eng_vocab *v)
{
    return v->pad;
}

bool eng_vocab_add_bos(const struct eng_vocab *v)
{
    return v->add_bos;
}

bool eng_vocab_add_eos(const struct eng_vocab *v)
{
    return v->add_eos;
}

bool eng_vocab_add_space_prefix(const struct eng_vocab *v)
{
    return v->type == ENG_VOCAB_SPM && v->add_space_prefix;
}

bool eng_token_is_eog(const struct eng_vocab *v, int32_t id)
{
    if (!v || id < 0)
        return false;
    return bsearch(&id, v->eog, (size_t)v->n_eog, sizeof(*v->eog), cmp_i32) != NULL;
}

unsigned eng_token_attr(const struct eng_vocab *v, int32_t id)
{
    if (!v || id < 0 || id >= v->n_tokens)
        return ENG_TOKEN_ATTR_UNDEFINED;
    return v->tokens[id].attr;
}

const char *eng_token_text(const struct eng_vocab *v, int32_t id, size_t *ret_len)
{
    if (!v || id < 0 || id >= v->n_tokens) {
        if (ret_len)
            *ret_len = 0;
        return NULL;
    }
    if (ret_len)
        *ret_len = v->tokens[id].len;
    return v->text + v->tokens[id].off;
}

int32_t eng_token_lookup(const struct eng_vocab *v, const char *text, size_t len)
{
    if (!v || (!text && len))
        return -1;
    return eng_vocab_find(v, text ? text : "", len);
}
