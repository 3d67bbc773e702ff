/* Text -> token ids. First the special-token partition (llama.cpp's order: longest special text
 * first, every occurrence, CONTROL/UNKNOWN ones only when parse_special), then each remaining
 * text fragment goes through SentencePiece-style merging (SPM: merge the adjacent pair whose
 * result has the highest score, byte fallback for what no token covers) or byte-level BPE
 * (pre-tokenizer pieces, then merge the adjacent pair of lowest rank). Both merge loops keep the
 * symbols in a linked array and candidate pairs in a binary heap, discarding stale pairs when
 * popped, so a text of n bytes costs O(n log n); one scratch block per call, nothing per
 * symbol. */
#include "tokenizer_internal.h"
#include "unicode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    int32_t *out;
    size_t cap;
    size_t n;
};

static void emit(struct sink *s, int32_t id)
{
    if (s->n < s->cap)
        s->out[s->n] = id;
    s->n++;
}

struct symbol {
    uint32_t off; /* into the fragment buffer */
    uint32_t n;   /* bytes; 0 = merged away */
    int32_t prev, next;
    int32_t id; /* BPE: current token id, -1 if none */
};

/* A candidate merge of symbols left and right. SPM orders by score (higher first), BPE by rank
 * (lower first); ties go to the leftmost pair. */
struct pair {
    float score;
    int32_t rank;
    int32_t left, right;
    uint32_t size;      /* SPM: bytes of left + right when queued */
    int32_t id_l, id_r; /* BPE: the tokens merged ... */
    int32_t result;     /* ... and the token they make */
};

struct scratch {
    struct symbol *sym;
    size_t cap_sym;
    struct pair *heap;
    size_t n_heap, cap_heap;
    char *buf; /* fragment after escaping / sanitizing / byte-level encoding */
    size_t cap_buf;
    char *buf2;
    size_t cap_buf2;
    struct eng_pretok_scratch pre;
    bool spm; /* heap order */
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(*p, ncap * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = ncap;
    return 0;
}

static bool pair_before(const struct scratch *s, const struct pair *a, const struct pair *b)
{
    if (s->spm) {
        if (a->score != b->score)
            return a->score > b->score;
    } else if (a->rank != b->rank) {
        return a->rank < b->rank;
    }
    return a->left < b->left;
}

static int heap_push(struct scratch *s, const struct pair *p)
{
    int rc = grow((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof(*s->heap));
    if (rc)
        return rc;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(s, p, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = *p;
    return 0;
}

static struct pair heap_pop(struct scratch *s)
{
    struct pair top = s->heap[0];
    struct pair last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(s, &s->heap[c + 1], &s->heap[c]))
            c++;
        if (!pair_before(s, &s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n)
        s->heap[i] = last;
    return top;
}

/* ---- SentencePiece ---- */

static int spm_try_pair(const struct eng_vocab *v, struct scratch *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const struct symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t id = eng_vocab_find(v, s->buf + l->off, l->n + r->n);
    if (id < 0)
        return 0;
    struct pair p = {
        .score = v->tokens[id].score, .left = left, .right = right, .size = l->n + r->n};
    return heap_push(s, &p);
}

/* text: the fragment with spaces already escaped to U+2581. */
static int spm_tokenize(const struct eng_vocab *v, struct scratch *s, size_t len, struct sink *out)
{
    int rc;
    int32_t n_sym = 0;

    if ((rc = grow((void **)&s->sym, &s->cap_sym, len, sizeof(*s->sym))))
        return rc;
    for (size_t off = 0; off < len;) {
        size_t n = eng_utf8_len((uint8_t)s->buf[off]);
        if (n > len - off)
            n = len - off;
        s->sym[n_sym] = (struct symbol){(uint32_t)off, (uint32_t)n, n_sym - 1, n_sym + 1, -1};
        n_sym++;
        off += n;
    }
    if (!n_sym)
        return 0;
    s->sym[n_sym - 1].next = -1;
    s->spm = true;
    s->n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++)
        if ((rc = spm_try_pair(v, s, i - 1, i)))
            return rc;
    while (s->n_heap) {
        struct pair p = heap_pop(s);
        struct symbol *l = &s->sym[p.left], *r = &s->sym[p.right];
        /* stale: one side was merged away or grew since the pair was queued */
        if (!l->n || !r->n || l->n + r->n != p.size)
            continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = p.left;
        if ((rc = spm_try_pair(v, s, l->prev, p.left)) ||
            (rc = spm_try_pair(v, s, p.left, l->next)))
            return rc;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const struct symbol *sym = &s->sym[i];
        int32_t id = eng_vocab_find(v, s->buf + sym->off, sym->n);
        if (id >= 0) {
            emit(out, id);
            continue;
        }
        /* No token covers it (a character outside the vocabulary): its bytes. */
        for (uint32_t k = 0; k < sym->n; k++) {
            int32_t b = v->byte_token[(uint8_t)s->buf[sym->off + k]];
            if (b >= 0)
                emit(out, b);
        }
    }
    return 0;
}

static int spm_fragment(const struct eng_vocab *v, struct scratch *s, const char *text, size_t len,
                        bool prefix_space, struct sink *out)
{
    /* Every space (and the optional prefix space) becomes U+2581 (3 bytes). */
    int rc = grow((void **)&s->buf, &s->cap_buf, 3 * (len + 1), 1);
    if (rc)
        return rc;
    size_t n = 0;
    if (prefix_space) {
        memcpy(s->buf, "\xE2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s->buf + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            s->buf[n++] = text[i];
        }
    }
    return spm_tokenize(v, s, n, out);
}

/* ---- byte-level BPE ---- */

static int bpe_try_pair(const struct eng_vocab *v, struct scratch *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const struct eng_merge_slot *m = eng_vocab_find_merge(v, s->sym[left].id, s->sym[right].id);
    if (!m)
        return 0;
    struct pair p = {.rank = m->rank,
                     .left = left,
                     .right = right,
                     .result = m->result,
                     .id_l = s->sym[left].id,
                     .id_r = s->sym[right].id};
    return heap_push(s, &p);
}

/* One pre-tokenizer piece, already byte-level encoded in s->buf[0..len). */
static int bpe_word(const struct eng_vocab *v, struct scratch *s, const char *raw, size_t raw_len,
                    size_t len, struct sink *out)
{
    int rc;
    int32_t n_sym = 0;

    if (v->ignore_merges) {
        int32_t id = eng_vocab_find(v, s->buf, len);
        if (id >= 0) {
            emit(out, id);
            return 0;
        }
    }
    if ((rc = grow((void **)&s->sym, &s->cap_sym, raw_len, sizeof(*s->sym))))
        return rc;
    /* One symbol per original byte (one byte-level character each). */
    size_t off = 0;
    for (size_t i = 0; i < raw_len; i++) {
        uint8_t b = (uint8_t)raw[i];
        uint32_t n = eng_byte_to_cp(b) < 0x80 ? 1 : 2;
        s->sym[n_sym] = (struct symbol){(uint32_t)off, n, n_sym - 1, n_sym + 1, v->byte_token[b]};
        n_sym++;
        off += n;
    }
    if (!n_sym)
        return 0;
    s->sym[n_sym - 1].next = -1;
    s->spm = false;
    s->n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++)
        if ((rc = bpe_try_pair(v, s, i - 1, i)))
            return rc;
    while (s->n_heap) {
        struct pair p = heap_pop(s);
        struct symbol *l = &s->sym[p.left], *r = &s->sym[p.right];
        /* stale unless both sides still hold the tokens the pair was made of */
        if (!l->n || !r->n || l->next != p.right || l->id != p.id_l || r->id != p.id_r)
            continue;
        l->n += r->n;
        l->id = p.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = p.left;
        if ((rc = bpe_try_pair(v, s, l->prev, p.left)) ||
            (rc = bpe_try_pair(v, s, p.left, l->next)))
            return rc;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const struct symbol *sym = &s->sym[i];
        if (sym->id >= 0) {
            emit(out, sym->id);
            continue;
        }
        /* A byte whose character is not in the vocabulary: llama.cpp then tries each byte of
         * the character's UTF-8 as a token of its own. */
        for (uint32_t k = 0; k < sym->n; k++) {
            int32_t id = eng_vocab_find(v, s->buf + sym->off + k, 1);
            if (id >= 0)
                emit(out, id);
        }
    }
    return 0;
}

static int bpe_fragment(const struct eng_vocab *v, struct scratch *s, const char *text, size_t len,
                        struct sink *out)
{
    const size_t *pieces;
    size_t n_pieces;
    int rc;

    /* Invalid UTF-8 becomes U+FFFD first (llama.cpp decodes to code points the same way). */
    if ((rc = grow((void **)&s->buf2, &s->cap_buf2, 3 * len + 1, 1)))
        return rc;
    size_t clean_len = eng_utf8_sanitize(text, len, s->buf2);
    const char *clean = s->buf2;

    if ((rc = eng_pretok_split(&v->pretok, clean, clean_len, &s->pre, &pieces, &n_pieces)))
        return rc;
    for (size_t k = 0; k < n_pieces; k++) {
        const char *raw = clean + pieces[2 * k];
        size_t raw_len = pieces[2 * k + 1];
        if ((rc = grow((void **)&s->buf, &s->cap_buf, 2 * raw_len + 1, 1)))
            return rc;
        size_t n = 0;
        for (size_t i = 0; i < raw_len; i++)
            n += eng_byte_to_utf8((uint8_t)raw[i], s->buf + n);
        if ((rc = bpe_word(v, s, raw, raw_len, n, out)))
            return rc;
    }
    return 0;
}

/* ---- special-token partition ---- */

struct fragment {
    size_t off, len;
    int32_t token; /* -1: raw text */
};

struct frag_list {
    struct fragment *f;
    size_t n, cap;
};

static int frag_push(struct frag_list *l, size_t off, size_t len, int32_t token)
{
    int rc = grow((void **)&l->f, &l->cap, l->n + 1, sizeof(*l->f));
    if (rc)
        return rc;
    l->f[l->n++] = (struct fragment){off, len, token};
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Splits every raw fragment of in around the occurrences of token id (into out). Returns the
 * number of matches, or -ENOMEM. */
/* Literal spans: where control tokens are not recognised. */
struct literal {
    const struct eng_text_span *s;
    size_t n;
};

static bool overlaps_literal(const struct literal *lit, size_t pos, size_t len)
{
    for (size_t i = 0; lit && i < lit->n; i++)
        if (pos < lit->s[i].off + lit->s[i].len && lit->s[i].off < pos + len)
            return true;
    return false;
}

static int split_on_token(const struct eng_vocab *v, const char *text, int32_t id,
                          const struct frag_list *in, struct frag_list *out,
                          const struct literal *lit)
{
    const struct eng_token_data *t = &v->tokens[id];
    const char *tt = v->text + t->off;
    int matches = 0, rc;
    bool guarded = lit && (t->attr & (ENG_TOKEN_ATTR_CONTROL | ENG_TOKEN_ATTR_UNKNOWN));

    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        struct fragment fr = in->f[k];
        if (fr.token >= 0) {
            if ((rc = frag_push(out, fr.off, fr.len, fr.token)))
                return rc;
            continue;
        }
        size_t off = fr.off, len = fr.len, from = fr.off;
        for (;;) {
            const char *hit = memmem(text + from, off + len - from, tt, t->len);
            if (!hit) {
                if (len && (rc = frag_push(out, off, len, -1)))
                    return rc;
                break;
            }
            size_t pos = (size_t)(hit - text);
            if (guarded && overlaps_literal(lit, pos, t->len)) {
                from = pos + 1; /* message text: not a token here */
                continue;
            }
            matches++;
            size_t left_len = pos - off;
            if ((t->attr & ENG_TOKEN_ATTR_LSTRIP))
                while (left_len && is_space(text[off + left_len - 1]))
                    left_len--;
            if (left_len && (rc = frag_push(out, off, left_len, -1)))
                return rc;
            if ((rc = frag_push(out, pos, t->len, id)))
                return rc;
            size_t end = off + len;
            off = pos + t->len;
            if ((t->attr & ENG_TOKEN_ATTR_RSTRIP))
                while (off < end && is_space(text[off]))
                    off++;
            len = end - off;
            from = off;
        }
    }
    return matches;
}

static int partition(const struct eng_vocab *v, const char *text, size_t len, bool parse_special,
                     const struct literal *lit, struct frag_list *a, struct frag_list *b)
{
    uint8_t present[256] = {0};
    int rc;

    a->n = 0;
    if ((rc = frag_push(a, 0, len, -1)))
        return rc;
    for (size_t i = 0; i < len; i++)
        present[(uint8_t)text[i]] = 1;
    for (int k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        const struct eng_token_data *t = &v->tokens[id];
        if (!parse_special && (t->attr & (ENG_TOKEN_ATTR_CONTROL | ENG_TOKEN_ATTR_UNKNOWN)))
            continue;
        if (!t->len || t->len > len || !present[(uint8_t)v->text[t->off]])
            continue;
        rc = split_on_token(v, text, id, a, b, lit);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            struct frag_list tmp = *a;
            *a = *b;
            *b = tmp;
        }
    }
    return 0;
}

static int tokenize(const struct eng_vocab *v, const char *text, size_t len, bool add_special,
                    bool parse_special, const struct literal *lit, int32_t *out, size_t cap,
                    size_t *ret_n);

int eng_tokenize(const struct eng_vocab *v, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t *out, size_t cap, size_t *ret_n)
{
    return tokenize(v, text, len, add_special, parse_special, NULL, out, cap, ret_n);
}

int eng_tokenize_spans(const struct eng_vocab *v, const char *text, size_t len, bool add_special,
                       const struct eng_text_span *literal, size_t n_literal, int32_t *out,
                       size_t cap, size_t *ret_n)
{
    struct literal lit = {literal, n_literal};
    if (n_literal && !literal)
        return -EINVAL;
    return tokenize(v, text, len, add_special, true, &lit, out, cap, ret_n);
}

static int tokenize(const struct eng_vocab *v, const char *text, size_t len, bool add_special,
                    bool parse_special, const struct literal *lit, int32_t *out, size_t cap,
                    size_t *ret_n)
{
    struct sink sink = {out, out ? cap : 0, 0};
    struct scratch s = {0};
    struct frag_list a = {0}, b = {0};
    int rc = 0;

    if (ret_n)
        *ret_n = 0;
    if (!v || (!text && len))
        return -EINVAL;
    /* symbol offsets are 32-bit and SPM escaping triples spaces */
    if (len > ENG_TOKENIZE_MAX_BYTES)
        return -E2BIG;

    if (add_special && v->add_bos)
        emit(&sink, v->bos);
    if (len && (rc = partition(v, text, len, parse_special, lit, &a, &b)))
        goto done;
    /* SPM puts a space before the text and after every special token. */
    bool prev_special = true;
    for (size_t k = 0; len && k < a.n; k++) {
        const struct fragment *fr = &a.f[k];
        if (fr->token >= 0) {
            emit(&sink, fr->token);
            prev_special = true;
            continue;
        }
        if (v->type == ENG_VOCAB_SPM)
            rc = spm_fragment(v, &s, text + fr->off, fr->len, v->add_space_prefix && prev_special,
                              &sink);
        else
            rc = bpe_fragment(v, &s, text + fr->off, fr->len, &sink);
        if (rc)
            goto done;
        prev_special = false;
    }
    if (add_special && v->add_eos)
        emit(&sink, v->eos);
    if (ret_n)
        *ret_n = sink.n;
    rc = sink.n > sink.cap ? -ENOSPC : 0;
done:
    free(s.sym);
    free(s.heap);
    free(s.buf);
    free(s.buf2);
    eng_pretok_scratch_free(&s.pre);
    free(a.f);
    free(b.f);
    return rc;
}
