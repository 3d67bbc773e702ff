/* The grammar matcher, the vocabulary trie and the token mask (grammar.h).
 *
 * A matcher state is a set of stacks. A stack is a chain of nodes {pos, parent} in an arena:
 * the top node's pos is a GE_SET element (the byte expected next), each parent's pos is where
 * its rule continues once the child rule ends. Nodes are never changed, only appended, so
 * advancing by a byte creates a few nodes and shares every tail, and undoing a step (a rejected
 * byte, a trie branch explored for the mask) is truncating the arena back to a mark. The
 * arena is compacted when it holds far more nodes than the live stacks use. ACCEPT (-1) in a
 * set is the empty stack: the root rule has ended. */
#include "engine/grammar.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

#define ACCEPT      (-1)
#define CACHE_SLOTS 16
#define KEY_MAX     1024 /* state keys longer than this are not cached */
/* expansion steps per byte before the grammar counts as too ambiguous */
#define EXPAND_WORK 20000
/* trie subtrees of at least this many nodes are worth looking for a loop class (below) */
#define LOOP_MIN_NODES 64
#define LOOP_MEMO      64  /* distinct states whose loop class one mask remembers */
#define LOOP_KEY_MAX   256 /* longer state keys are not remembered */

struct snode {
    uint32_t pos;
    int32_t parent;
};

struct ivec {
    int32_t *v;
    size_t n, cap;
};

struct cache_slot {
    uint64_t hash;
    uint32_t *key;
    size_t key_len;
    uint32_t *mask;
    int32_t count;
    bool used;
};

/* A state's loop class, remembered during one mask computation (many trie subtrees start in
 * the same state, e.g. after the lead byte of a 3-byte character). */
struct loop_memo {
    uint32_t key[LOOP_KEY_MAX];
    size_t len;
    uint32_t cls[8];
};

struct eng_grammar_matcher {
    const struct eng_grammar *g;
    struct snode *nodes;
    size_t n_nodes, cap_nodes;
    struct ivec cur;  /* the committed state */
    struct ivec work; /* scratch: successor sets, stacked during the trie walk */
    size_t expand_work;
    int oom;
    /* mask cache */
    const struct eng_grammar_vocab *cache_gv;
    struct cache_slot cache[CACHE_SLOTS];
    unsigned cache_next;
    uint32_t keybuf[KEY_MAX];
    struct loop_memo *memo; /* LOOP_MEMO entries, allocated with the first mask */
    int n_memo;
};

struct trie_node {
    int32_t first_child, next_sibling;
    int32_t token; /* first token whose piece ends here, -1 none; more via tok_next */
    uint8_t byte;
};

struct eng_grammar_vocab {
    int32_t n_tokens;
    struct trie_node *nodes;
    int32_t n_nodes, cap_nodes;
    int32_t *tok_next;  /* next token with the same piece, -1 */
    int32_t *sub_nodes; /* nodes in each node's subtree, itself included */
    int32_t *eog;       /* end-of-generation ids */
    int32_t n_eog;
    char *bytes; /* all pieces, concatenated */
    size_t *off; /* piece of token i: bytes[off[i] .. off[i + 1]) */
    bool *is_eog;
};

/* ---- stacks ---- */

static int32_t new_node(struct eng_grammar_matcher *m, uint32_t pos, int32_t parent)
{
    if (m->n_nodes == m->cap_nodes) {
        size_t cap = m->cap_nodes ? m->cap_nodes * 2 : 1024;
        struct snode *n = realloc(m->nodes, cap * sizeof(*n));
        if (!n) {
            m->oom = 1;
            return ACCEPT - 1;
        }
        m->nodes = n;
        m->cap_nodes = cap;
    }
    m->nodes[m->n_nodes] = (struct snode){pos, parent};
    return (int32_t)m->n_nodes++;
}

static int ivec_push(struct eng_grammar_matcher *m, struct ivec *v, int32_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *n = realloc(v->v, cap * sizeof(*n));
        if (!n) {
            m->oom = 1;
            return -ENOMEM;
        }
        v->v = n;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static bool is_seq_end(const struct eng_grammar *g, uint32_t pos)
{
    return g->elems[pos].type == GE_END || g->elems[pos].type == GE_ALT;
}

/* Adds to out[from..] every stack that continues from element pos with the given parent,
 * expanding rule references and finished sequences until each stack's top is a byte class. */
static void expand(struct eng_grammar_matcher *m, struct ivec *out, size_t from, uint32_t pos,
                   int32_t parent)
{
    const struct eng_grammar *g = m->g;
    if (m->oom || ++m->expand_work > EXPAND_WORK || out->n - from > ENG_GRAMMAR_MAX_STACKS)
        return; /* advance() reports it; stop early so a hostile grammar stays cheap */
    const struct gelem *e = &g->elems[pos];
    if (e->type == GE_SET) {
        for (size_t i = from; i < out->n; i++) {
            int32_t s = out->v[i];
            if (s >= 0 && m->nodes[s].pos == pos && m->nodes[s].parent == parent)
                return;
        }
        int32_t s = new_node(m, pos, parent);
        if (s >= 0)
            ivec_push(m, out, s);
        return;
    }
    if (e->type == GE_REF) {
        int32_t cont = parent;
        if (!is_seq_end(g, pos + 1)) /* a call in tail position keeps the caller's stack */
            cont = new_node(m, pos + 1, parent);
        if (m->oom)
            return;
        for (uint32_t a = g->alt_off[e->val]; a < g->alt_off[e->val + 1]; a++)
            expand(m, out, from, g->alt_pos[a], cont);
        return;
    }
    /* the sequence ended: return to the parent */
    if (parent == ACCEPT) {
        for (size_t i = from; i < out->n; i++)
            if (out->v[i] == ACCEPT)
                return;
        ivec_push(m, out, ACCEPT);
        return;
    }
    expand(m, out, from, m->nodes[parent].pos, m->nodes[parent].parent);
}

/* The successors of stacks in->v[in_from .. in_from + in_n) on byte b, appended to out (from
 * its current end). in may be out itself: its storage can move as out grows, so each input is
 * read through in->v afresh. */
static int advance(struct eng_grammar_matcher *m, const struct ivec *in, struct ivec *out,
                   size_t in_from, size_t in_n, uint8_t b)
{
    size_t from = out->n;
    m->expand_work = 0;
    for (size_t i = 0; i < in_n; i++) {
        int32_t s = in->v[in_from + i];
        if (s < 0)
            continue;
        struct snode n = m->nodes[s];
        if (gset_has(m->g->sets[m->g->elems[n.pos].val], b))
            expand(m, out, from, n.pos + 1, n.parent);
    }
    if (m->oom)
        return -ENOMEM;
    if (m->expand_work > EXPAND_WORK || out->n - from > ENG_GRAMMAR_MAX_STACKS)
        return -E2BIG;
    return 0;
}

/* ---- matcher ---- */

int eng_grammar_matcher_new(const struct eng_grammar *g, struct eng_grammar_matcher **ret)
{
    *ret = NULL;
    if (!g)
        return -EINVAL;
    struct eng_grammar_matcher *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->g = g;
    eng_grammar_matcher_reset(m);
    if (m->oom || m->expand_work > EXPAND_WORK || m->cur.n > ENG_GRAMMAR_MAX_STACKS) {
        int rc = m->oom ? -ENOMEM : -E2BIG;
        eng_grammar_matcher_free(m);
        return rc;
    }
    *ret = m;
    return 0;
}

void eng_grammar_matcher_free(struct eng_grammar_matcher *m)
{
    if (!m)
        return;
    free(m->nodes);
    free(m->cur.v);
    free(m->work.v);
    free(m->memo);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(m->cache[i].key);
        free(m->cache[i].mask);
    }
    free(m);
}

void eng_grammar_matcher_reset(struct eng_grammar_matcher *m)
{
    const struct eng_grammar *g = m->g;
    m->n_nodes = 0;
    m->cur.n = 0;
    m->expand_work = 0;
    for (uint32_t a = g->alt_off[g->root]; a < g->alt_off[g->root + 1]; a++)
        expand(m, &m->cur, 0, g->alt_pos[a], ACCEPT);
}

/* Copies the live stacks into a fresh arena when the old one is mostly garbage. */
static void compact(struct eng_grammar_matcher *m)
{
    if (m->n_nodes < 65536)
        return;
    size_t live = 0;
    for (size_t i = 0; i < m->cur.n; i++)
        for (int32_t s = m->cur.v[i]; s >= 0; s = m->nodes[s].parent)
            live++;
    if (live * 4 > m->n_nodes)
        return;
    struct snode *fresh = malloc((live + 1) * sizeof(*fresh));
    int32_t *map = malloc(m->n_nodes * sizeof(*map));
    if (!fresh || !map) {
        free(fresh);
        free(map);
        return; /* keep the old arena: still correct, only bigger */
    }
    for (size_t i = 0; i < m->n_nodes; i++)
        map[i] = -2;
    size_t n = 0;
    /* parents always have lower ids than their children: one ascending pass keeps that */
    for (size_t i = 0; i < m->cur.n; i++)
        for (int32_t s = m->cur.v[i]; s >= 0; s = m->nodes[s].parent)
            map[s] = -3; /* live */
    for (size_t i = 0; i < m->n_nodes; i++) {
        if (map[i] != -3)
            continue;
        int32_t par = m->nodes[i].parent;
        fresh[n] = (struct snode){m->nodes[i].pos, par >= 0 ? map[par] : par};
        map[i] = (int32_t)n++;
    }
    for (size_t i = 0; i < m->cur.n; i++)
        if (m->cur.v[i] >= 0)
            m->cur.v[i] = map[m->cur.v[i]];
    free(map);
    free(m->nodes);
    m->nodes = fresh;
    m->n_nodes = n;
    m->cap_nodes = live + 1;
}

int eng_grammar_matcher_feed(struct eng_grammar_matcher *m, const char *bytes, size_t len)
{
    size_t mark = m->n_nodes;
    struct ivec saved = {0};
    if (len == 0)
        return 0;
    for (size_t i = 0; i < m->cur.n; i++)
        if (ivec_push(m, &saved, m->cur.v[i]) < 0) {
            free(saved.v);
            m->oom = 0;
            return -ENOMEM;
        }
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        m->work.n = 0;
        rc = advance(m, &m->cur, &m->work, 0, m->cur.n, (uint8_t)bytes[i]);
        if (rc == 0 && m->work.n == 0)
            rc = -EINVAL;
        if (rc < 0)
            break;
        struct ivec t = m->cur;
        m->cur = m->work;
        m->work = t;
    }
    if (rc < 0) {
        m->oom = 0;
        m->cur.n = 0;
        for (size_t i = 0; i < saved.n; i++)
            ivec_push(m, &m->cur, saved.v[i]); /* cap already large enough */
        m->n_nodes = mark;
    } else {
        compact(m);
    }
    free(saved.v);
    return rc;
}

bool eng_grammar_matcher_accepts(const struct eng_grammar_matcher *m)
{
    for (size_t i = 0; i < m->cur.n; i++)
        if (m->cur.v[i] == ACCEPT)
            return true;
    return false;
}

bool eng_grammar_matcher_done(const struct eng_grammar_matcher *m)
{
    return m->cur.n == 1 && m->cur.v[0] == ACCEPT;
}

bool eng_grammar_matcher_allows_byte(const struct eng_grammar_matcher *m, uint8_t b)
{
    for (size_t i = 0; i < m->cur.n; i++) {
        int32_t s = m->cur.v[i];
        if (s >= 0 && gset_has(m->g->sets[m->g->elems[m->nodes[s].pos].val], b))
            return true;
    }
    return false;
}

/* ---- vocabulary trie ---- */

static int32_t trie_child(struct eng_grammar_vocab *gv, int32_t parent, uint8_t b)
{
    int32_t c = gv->nodes[parent].first_child;
    for (; c >= 0; c = gv->nodes[c].next_sibling)
        if (gv->nodes[c].byte == b)
            return c;
    if (gv->n_nodes == gv->cap_nodes) {
        int32_t cap = gv->cap_nodes * 2;
        struct trie_node *n = realloc(gv->nodes, (size_t)cap * sizeof(*n));
        if (!n)
            return -1;
        gv->nodes = n;
        gv->cap_nodes = cap;
    }
    c = gv->n_nodes++;
    gv->nodes[c] = (struct trie_node){
        .first_child = -1, .next_sibling = gv->nodes[parent].first_child, .token = -1, .byte = b};
    gv->nodes[parent].first_child = c;
    return c;
}

int eng_grammar_vocab_from_pieces(int32_t n_tokens, const char *const *pieces, const size_t *lens,
                                  const bool *is_eog, struct eng_grammar_vocab **ret)
{
    *ret = NULL;
    if (n_tokens <= 0)
        return -EINVAL;
    struct eng_grammar_vocab *gv = calloc(1, sizeof(*gv));
    if (!gv)
        return -ENOMEM;
    size_t total = 0;
    for (int32_t i = 0; i < n_tokens; i++)
        total += lens[i];
    gv->n_tokens = n_tokens;
    gv->cap_nodes = 1024;
    gv->nodes = malloc((size_t)gv->cap_nodes * sizeof(*gv->nodes));
    gv->tok_next = malloc((size_t)n_tokens * sizeof(*gv->tok_next));
    gv->eog = malloc((size_t)n_tokens * sizeof(*gv->eog));
    gv->is_eog = calloc((size_t)n_tokens, sizeof(*gv->is_eog));
    gv->bytes = malloc(total + 1);
    gv->off = malloc(((size_t)n_tokens + 1) * sizeof(*gv->off));
    if (!gv->nodes || !gv->tok_next || !gv->eog || !gv->is_eog || !gv->bytes || !gv->off)
        goto oom;
    gv->nodes[0] = (struct trie_node){.first_child = -1, .next_sibling = -1, .token = -1};
    gv->n_nodes = 1;
    size_t o = 0;
    for (int32_t i = 0; i < n_tokens; i++) {
        gv->off[i] = o;
        gv->tok_next[i] = -1;
        if (is_eog && is_eog[i]) {
            gv->is_eog[i] = true;
            gv->eog[gv->n_eog++] = i;
            continue; /* allowed by the accept state, never by bytes */
        }
        if (lens[i] == 0)
            continue;
        memcpy(gv->bytes + o, pieces[i], lens[i]);
        o += lens[i];
        int32_t node = 0;
        for (size_t k = 0; k < lens[i] && node >= 0; k++)
            node = trie_child(gv, node, (uint8_t)pieces[i][k]);
        if (node < 0)
            goto oom;
        gv->tok_next[i] = gv->nodes[node].token;
        gv->nodes[node].token = i;
    }
    gv->off[n_tokens] = o;
    /* children have higher ids than their parent: one descending pass sums the subtrees */
    gv->sub_nodes = malloc((size_t)gv->n_nodes * sizeof(*gv->sub_nodes));
    if (!gv->sub_nodes)
        goto oom;
    for (int32_t i = gv->n_nodes - 1; i >= 0; i--) {
        gv->sub_nodes[i] = 1;
        for (int32_t c = gv->nodes[i].first_child; c >= 0; c = gv->nodes[c].next_sibling)
            gv->sub_nodes[i] += gv->sub_nodes[c];
    }
    *ret = gv;
    return 0;
oom:
    eng_grammar_vocab_free(gv);
    return -ENOMEM;
}

int eng_grammar_vocab_new(const struct eng_vocab *vocab, struct eng_grammar_vocab **ret)
{
    *ret = NULL;
    int32_t n = eng_vocab_n_tokens(vocab);
    if (n <= 0)
        return -EINVAL;
    char **pieces = calloc((size_t)n, sizeof(*pieces));
    size_t *lens = calloc((size_t)n, sizeof(*lens));
    bool *eog = calloc((size_t)n, sizeof(*eog));
    int rc = 0;
    if (!pieces || !lens || !eog) {
        rc = -ENOMEM;
        goto out;
    }
    for (int32_t i = 0; i < n && rc == 0; i++) {
        char buf[256];
        size_t len = 0;
        eog[i] = eng_token_is_eog(vocab, i);
        rc = eng_token_piece(vocab, i, false, buf, sizeof(buf), &len);
        if (rc == -ENOSPC) {
            pieces[i] = malloc(len);
            rc = pieces[i] ? eng_token_piece(vocab, i, false, pieces[i], len, &len) : -ENOMEM;
        } else if (rc == 0 && len) {
            pieces[i] = malloc(len);
            if (pieces[i])
                memcpy(pieces[i], buf, len);
            else
                rc = -ENOMEM;
        }
        lens[i] = rc == 0 ? len : 0;
    }
    if (rc == 0)
        rc = eng_grammar_vocab_from_pieces(n, (const char *const *)pieces, lens, eog, ret);
out:
    for (int32_t i = 0; pieces && i < n; i++)
        free(pieces[i]);
    free(pieces);
    free(lens);
    free(eog);
    return rc;
}

void eng_grammar_vocab_free(struct eng_grammar_vocab *gv)
{
    if (!gv)
        return;
    free(gv->nodes);
    free(gv->tok_next);
    free(gv->sub_nodes);
    free(gv->eog);
    free(gv->is_eog);
    free(gv->bytes);
    free(gv->off);
    free(gv);
}

int32_t eng_grammar_vocab_n_tokens(const struct eng_grammar_vocab *gv)
{
    return gv ? gv->n_tokens : 0;
}

size_t eng_grammar_mask_words(const struct eng_grammar_vocab *gv)
{
    return ((size_t)gv->n_tokens + 31) / 32;
}

/* ---- the mask ---- */

/* Whether stacks a and b are the same chain of positions (node ids differ between equal
 * states; ACCEPT is the empty stack). */
static bool chain_equal(const struct eng_grammar_matcher *m, int32_t a, int32_t b)
{
    while (a >= 0 && b >= 0) {
        if (m->nodes[a].pos != m->nodes[b].pos)
            return false;
        a = m->nodes[a].parent;
        b = m->nodes[b].parent;
    }
    return a == b;
}

/* Whether the states work.v[a .. a + n) and work.v[b .. b + nb) hold the same stacks. False
 * when unsure (duplicates): the caller then only does more work. */
static bool same_state(const struct eng_grammar_matcher *m, size_t a, size_t n, size_t b, size_t nb)
{
    if (n != nb || n > 32) /* quadratic: large (ambiguous) states are never taken as equal */
        return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < nb && !found; k++)
            found = chain_equal(m, m->work.v[a + i], m->work.v[b + k]);
        if (!found)
            return false;
    }
    return true;
}

static uint64_t chain_hash(const struct eng_grammar_matcher *m, int32_t s)
{
    uint64_t h = 1469598103934665603ull;
    for (;; s = m->nodes[s].parent) {
        h = (h ^ (s >= 0 ? m->nodes[s].pos : UINT32_MAX)) * 1099511628211ull;
        if (s < 0)
            return h;
    }
}

/* The state work.v[from .. from + n) as its position chains, stacks in the order of their
 * chain hashes (so that equal states mostly get equal keys; unequal ones never do), into
 * key. 0 when it does not fit. */
static size_t loop_key(const struct eng_grammar_matcher *m, size_t from, size_t n, uint32_t *key)
{
    if (n > 32)
        return 0;
    int32_t order[32];
    uint64_t hash[32];
    for (size_t i = 0; i < n; i++) {
        int32_t s = m->work.v[from + i];
        uint64_t h = chain_hash(m, s);
        size_t k = i;
        while (k > 0 && hash[k - 1] > h) {
            hash[k] = hash[k - 1];
            order[k] = order[k - 1];
            k--;
        }
        hash[k] = h;
        order[k] = s;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        for (int32_t s = order[i];; s = m->nodes[s].parent) {
            if (len == LOOP_KEY_MAX)
                return 0;
            key[len++] = s >= 0 ? m->nodes[s].pos : UINT32_MAX;
            if (s < 0)
                break;
        }
    }
    return len;
}

/* The loop class of the state work.v[from .. from + n): every byte after which the state is
 * the same again (inside a JSON string: every byte but the quote, the backslash, control
 * bytes and the lead bytes of multi-byte characters). A run of such bytes leaves the state as
 * it was, so below it the trie walk needs no matcher steps at all. Remembered per state for
 * the rest of the mask computation. */
static int loop_class(struct eng_grammar_matcher *m, size_t from, size_t n, const uint32_t *uni,
                      uint32_t *loop)
{
    uint32_t key[LOOP_KEY_MAX];
    size_t klen = m->memo ? loop_key(m, from, n, key) : 0;
    for (int i = 0; klen && i < m->n_memo; i++) {
        if (m->memo[i].len == klen && memcmp(m->memo[i].key, key, klen * sizeof(*key)) == 0) {
            memcpy(loop, m->memo[i].cls, 8 * sizeof(*loop));
            return 0;
        }
    }
    memset(loop, 0, 8 * sizeof(*loop));
    for (int b = 0; b < 256; b++) {
        if (!gset_has(uni, (uint8_t)b))
            continue;
        size_t mark = m->n_nodes, out_from = m->work.n;
        int rc = advance(m, &m->work, &m->work, from, n, (uint8_t)b);
        if (rc == -ENOMEM)
            return -ENOMEM;
        if (rc == 0 && same_state(m, from, n, out_from, m->work.n - out_from))
            loop[b >> 5] |= 1u << (b & 31);
        m->work.n = out_from;
        m->n_nodes = mark;
    }
    if (klen && m->n_memo < LOOP_MEMO) {
        struct loop_memo *e = &m->memo[m->n_memo++];
        memcpy(e->key, key, klen * sizeof(*key));
        e->len = klen;
        memcpy(e->cls, loop, 8 * sizeof(*loop));
    }
    return 0;
}

/* A state known to loop: its stacks in work and its loop class. */
struct loop_state {
    size_t from, n;
    uint32_t cls[8];
};

/* Allows every token whose piece lies in trie node t's subtree below the state
 * work.v[from .. from + n). `loop` is the nearest enclosing state whose loop class is known;
 * at_loop says the state here is that very state (reached from it by bytes of its class). A
 * child by a byte of the class has the same state again, so it is taken without advancing the
 * matcher; a child reached otherwise that comes back to the same state (a multi-byte UTF-8
 * character inside a string) is recognised by comparing stacks. Large subtrees whose state is
 * new get its loop class computed. */
static int32_t walk(struct eng_grammar_matcher *m, const struct eng_grammar_vocab *gv, int32_t t,
                    size_t from, size_t n, bool at_loop, const struct loop_state *loop,
                    uint32_t *allow)
{
    const struct eng_grammar *g = m->g;
    uint32_t uni[8] = {0}; /* every byte some stack accepts */
    struct loop_state own = {0};
    int32_t count = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t s = m->work.v[from + i];
        if (s >= 0)
            for (int w = 0; w < 8; w++)
                uni[w] |= g->sets[g->elems[m->nodes[s].pos].val][w];
    }
    if (!at_loop && loop && same_state(m, from, n, loop->from, loop->n))
        at_loop = true;
    if (!at_loop && gv->sub_nodes[t] >= LOOP_MIN_NODES) {
        if (loop_class(m, from, n, uni, own.cls) < 0)
            return -ENOMEM;
        bool any = false;
        for (int w = 0; w < 8; w++)
            any |= own.cls[w] != 0;
        if (any) {
            own.from = from;
            own.n = n;
            loop = &own;
            at_loop = true;
        }
    }
    for (int32_t c = gv->nodes[t].first_child; c >= 0; c = gv->nodes[c].next_sibling) {
        const struct trie_node *tn = &gv->nodes[c];
        if (!gset_has(uni, tn->byte))
            continue;
        if (at_loop && gset_has(loop->cls, tn->byte)) {
            /* the state after this byte is the state here */
            for (int32_t tok = tn->token; tok >= 0; tok = gv->tok_next[tok]) {
                allow[tok >> 5] |= 1u << (tok & 31);
                count++;
            }
            if (tn->first_child >= 0) {
                int32_t sub = walk(m, gv, c, from, n, true, loop, allow);
                if (sub < 0)
                    return sub;
                count += sub;
            }
            continue;
        }
        size_t mark = m->n_nodes, out_from = m->work.n;
        int rc = advance(m, &m->work, &m->work, from, n, tn->byte);
        if (rc == -ENOMEM)
            return -ENOMEM;
        size_t out_n = m->work.n - out_from;
        if (rc == 0 && out_n > 0) {
            for (int32_t tok = tn->token; tok >= 0; tok = gv->tok_next[tok]) {
                allow[tok >> 5] |= 1u << (tok & 31);
                count++;
            }
            if (tn->first_child >= 0) {
                int32_t sub = walk(m, gv, c, out_from, out_n, false, loop, allow);
                if (sub < 0)
                    return sub;
                count += sub;
            }
        }
        m->work.n = out_from;
        m->n_nodes = mark;
    }
    return count;
}

static int32_t mask_compute(struct eng_grammar_matcher *m, const struct eng_grammar_vocab *gv,
                            uint32_t *allow)
{
    memset(allow, 0, eng_grammar_mask_words(gv) * sizeof(*allow));
    int32_t count = 0;
    if (eng_grammar_matcher_accepts(m))
        for (int32_t i = 0; i < gv->n_eog; i++) {
            allow[gv->eog[i] >> 5] |= 1u << (gv->eog[i] & 31);
            count++;
        }
    m->work.n = 0;
    for (size_t i = 0; i < m->cur.n; i++)
        if (ivec_push(m, &m->work, m->cur.v[i]) < 0)
            return -ENOMEM;
    if (!m->memo)
        m->memo = malloc(LOOP_MEMO * sizeof(*m->memo)); /* NULL: nothing remembered */
    m->n_memo = 0;
    int32_t sub = walk(m, gv, 0, 0, m->cur.n, false, NULL, allow);
    m->work.n = 0;
    m->oom = 0;
    return sub < 0 ? sub : count + sub;
}

int32_t eng_grammar_mask_uncached(struct eng_grammar_matcher *m, const struct eng_grammar_vocab *gv,
                                  uint32_t *allow)
{
    return mask_compute(m, gv, allow);
}

/* The state as position chains (node ids differ between equal states). 0 when too long. */
static size_t state_key(struct eng_grammar_matcher *m, uint64_t *hash)
{
    size_t n = 0;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < m->cur.n; i++) {
        for (int32_t s = m->cur.v[i];; s = m->nodes[s].parent) {
            if (n == KEY_MAX)
                return 0;
            uint32_t k = s >= 0 ? m->nodes[s].pos : UINT32_MAX;
            m->keybuf[n++] = k;
            h = (h ^ k) * 1099511628211ull;
            if (s < 0)
                break;
        }
    }
    *hash = h;
    return n;
}

int32_t eng_grammar_mask(struct eng_grammar_matcher *m, const struct eng_grammar_vocab *gv,
                         uint32_t *allow)
{
    size_t words = eng_grammar_mask_words(gv);
    if (m->cache_gv != gv) {
        for (int i = 0; i < CACHE_SLOTS; i++)
            m->cache[i].used = false;
        m->cache_gv = gv;
    }
    uint64_t h = 0;
    size_t klen = state_key(m, &h);
    if (klen) {
        for (int i = 0; i < CACHE_SLOTS; i++) {
            struct cache_slot *c = &m->cache[i];
            if (c->used && c->hash == h && c->key_len == klen &&
                memcmp(c->key, m->keybuf, klen * sizeof(uint32_t)) == 0) {
                memcpy(allow, c->mask, words * sizeof(*allow));
                return c->count;
            }
        }
    }
    int32_t count = mask_compute(m, gv, allow);
    if (count < 0 || !klen)
        return count;
    struct cache_slot *c = &m->cache[m->cache_next++ % CACHE_SLOTS];
    if (!c->mask)
        c->mask = malloc(words * sizeof(*c->mask));
    if (!c->key)
        c->key = malloc(KEY_MAX * sizeof(*c->key));
    if (!c->mask || !c->key)
        return count; /* uncached, still correct */
    memcpy(c->mask, allow, words * sizeof(*allow));
    memcpy(c->key, m->keybuf, klen * sizeof(uint32_t));
    c->key_len = klen;
    c->hash = h;
    c->count = count;
    c->used = true;
    return count;
}

int eng_grammar_matcher_accept_token(struct eng_grammar_matcher *m,
                                     const struct eng_grammar_vocab *gv, int32_t token)
{
    if (token < 0 || token >= gv->n_tokens)
        return -EINVAL;
    if (gv->is_eog[token])
        return eng_grammar_matcher_accepts(m) ? 0 : -EINVAL;
    size_t len = gv->off[token + 1] - gv->off[token];
    if (len == 0)
        return -EINVAL;
    int rc = eng_grammar_matcher_feed(m, gv->bytes + gv->off[token], len);
    return rc == -E2BIG ? -EINVAL : rc;
}
