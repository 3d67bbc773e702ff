/* Grammar text -> rules (grammar.h). A recursive-descent parser: groups and repetitions become
 * generated rules, so the matcher only ever sees sequences of byte classes and rule references.
 * Every limit in grammar.h is checked while parsing, so a hostile grammar costs bounded memory
 * and time. */
#include "engine/grammar.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

#define MAX_REPEAT 10000 /* x{m,n}: m and n at most this */
#define MAX_DEPTH  256   /* nested parentheses */

struct evec {
    struct gelem *v;
    uint32_t n, cap;
};

struct prule {
    char *name; /* NULL for generated rules */
    struct evec body;
    bool defined;
    uint32_t first_line, first_col; /* first use, for "undefined rule" */
};

struct parser {
    const char *s, *end, *line_start;
    uint32_t line;
    struct prule *rules;
    int32_t n_rules, cap_rules;
    int32_t *hash; /* open addressing over named rules, -1 empty */
    uint32_t hash_cap;
    uint32_t (*sets)[8];
    uint32_t n_sets, cap_sets;
    uint64_t total_elems;
    int depth;
    char *err;
    size_t err_len;
    int rc;
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
    if (p->rc)
        return p->rc;
    p->rc = -EINVAL;
    if (p->err && p->err_len) {
        char msg[192];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(p->err, p->err_len, "grammar: line %u col %u: %s", p->line,
                 (unsigned)(p->s - p->line_start) + 1, msg);
    }
    return p->rc;
}

static int oom(struct parser *p)
{
    if (!p->rc) {
        p->rc = -ENOMEM;
        if (p->err && p->err_len)
            snprintf(p->err, p->err_len, "grammar: out of memory");
    }
    return p->rc;
}

static int push(struct parser *p, struct evec *e, uint32_t type, uint32_t val)
{
    if (p->rc)
        return p->rc;
    if (++p->total_elems > ENG_GRAMMAR_MAX_ELEMS)
        return perr(p, "more than %u elements", ENG_GRAMMAR_MAX_ELEMS);
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 8;
        struct gelem *v = realloc(e->v, cap * sizeof(*v));
        if (!v)
            return oom(p);
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = (struct gelem){type, val};
    return 0;
}

static int append(struct parser *p, struct evec *dst, const struct evec *src)
{
    for (uint32_t i = 0; i < src->n && !p->rc; i++)
        push(p, dst, src->v[i].type, src->v[i].val);
    return p->rc;
}

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int32_t new_rule(struct parser *p, const char *name, size_t name_len)
{
    if (p->n_rules >= ENG_GRAMMAR_MAX_RULES) {
        perr(p, "more than %d rules", ENG_GRAMMAR_MAX_RULES);
        return -1;
    }
    if (p->n_rules == p->cap_rules) {
        int32_t cap = p->cap_rules ? p->cap_rules * 2 : 16;
        struct prule *r = realloc(p->rules, (size_t)cap * sizeof(*r));
        if (!r) {
            oom(p);
            return -1;
        }
        p->rules = r;
        p->cap_rules = cap;
    }
    struct prule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof(*r));
    if (name) {
        /* not strndup: the text need not be NUL-terminated, and strndup may look past
         * name_len for the terminator */
        r->name = malloc(name_len + 1);
        if (!r->name) {
            oom(p);
            return -1;
        }
        memcpy(r->name, name, name_len);
        r->name[name_len] = '\0';
    }
    return p->n_rules++;
}

/* The id of the named rule, created (undefined) on first sight. */
static int32_t rule_by_name(struct parser *p, const char *name, size_t n)
{
    if ((uint32_t)p->n_rules * 2 >= p->hash_cap) {
        uint32_t cap = p->hash_cap ? p->hash_cap * 2 : 64;
        int32_t *h = malloc(cap * sizeof(*h));
        if (!h) {
            oom(p);
            return -1;
        }
        for (uint32_t i = 0; i < cap; i++)
            h[i] = -1;
        for (int32_t r = 0; r < p->n_rules; r++) {
            if (!p->rules[r].name)
                continue;
            uint32_t i = name_hash(p->rules[r].name, strlen(p->rules[r].name)) & (cap - 1);
            while (h[i] >= 0)
                i = (i + 1) & (cap - 1);
            h[i] = r;
        }
        free(p->hash);
        p->hash = h;
        p->hash_cap = cap;
    }
    uint32_t i = name_hash(name, n) & (p->hash_cap - 1);
    for (; p->hash[i] >= 0; i = (i + 1) & (p->hash_cap - 1)) {
        const char *rn = p->rules[p->hash[i]].name;
        if (strlen(rn) == n && memcmp(rn, name, n) == 0)
            return p->hash[i];
    }
    int32_t r = new_rule(p, name, n);
    if (r >= 0) {
        p->hash[i] = r;
        p->rules[r].first_line = p->line;
        p->rules[r].first_col = (uint32_t)(name - p->line_start) + 1;
    }
    return r;
}

static int32_t new_set(struct parser *p)
{
    if (p->n_sets == p->cap_sets) {
        uint32_t cap = p->cap_sets * 2;
        if (p->n_sets >= ENG_GRAMMAR_MAX_ELEMS) {
            perr(p, "too many byte classes");
            return -1;
        }
        uint32_t(*v)[8] = realloc(p->sets, cap * sizeof(*v));
        if (!v) {
            oom(p);
            return -1;
        }
        p->sets = v;
        p->cap_sets = cap;
    }
    memset(p->sets[p->n_sets], 0, sizeof(p->sets[0]));
    return (int32_t)p->n_sets++;
}

/* ---- lexing ---- */

static bool at_end(const struct parser *p)
{
    return p->s >= p->end;
}

/* Skips blanks and comments; newlines too when nl. */
static void skip_space(struct parser *p, bool nl)
{
    while (!at_end(p)) {
        char c = *p->s;
        if (c == ' ' || c == '\t' || c == '\r') {
            p->s++;
        } else if (c == '#') {
            while (!at_end(p) && *p->s != '\n')
                p->s++;
        } else if (c == '\n' && nl) {
            p->s++;
            p->line++;
            p->line_start = p->s;
        } else {
            break;
        }
    }
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One byte of a literal or class, with escapes; -1 after an error. */
static int parse_byte(struct parser *p)
{
    if (at_end(p))
        return perr(p, "unexpected end of text"), -1;
    char c = *p->s++;
    if (c == '\n')
        return perr(p, "newline inside a literal or class"), -1;
    if (c != '\\')
        return (uint8_t)c;
    if (at_end(p))
        return perr(p, "unfinished escape"), -1;
    c = *p->s++;
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case '\\':
    case '"':
    case '[':
    case ']':
    case '-':
    case '^':
        return (uint8_t)c;
    case 'x': {
        int h = p->end - p->s >= 2 ? hexval(p->s[0]) : -1;
        int l = h >= 0 ? hexval(p->s[1]) : -1;
        if (l < 0)
            return perr(p, "\\x needs two hex digits"), -1;
        p->s += 2;
        return h * 16 + l;
    }
    default:
        p->s--;
        return perr(p, "unknown escape \\%c", c), -1;
    }
}

static int parse_alternatives(struct parser *p, struct evec *out);

/* One atom into atom (a fresh vector). */
static int parse_atom(struct parser *p, struct evec *atom)
{
    char c = *p->s;
    if (c == '"') {
        p->s++;
        while (!at_end(p) && *p->s != '"' && !p->rc) {
            int b = parse_byte(p);
            if (b >= 0)
                push(p, atom, GE_SET, (uint32_t)b);
        }
        if (!p->rc && at_end(p))
            return perr(p, "unterminated literal");
        p->s++;
        if (!p->rc && atom->n == 0)
            push(p, atom, GE_REF, UINT32_MAX); /* "" : an empty rule, made below */
        return p->rc;
    }
    if (c == '[') {
        p->s++;
        bool neg = !at_end(p) && *p->s == '^';
        if (neg)
            p->s++;
        int32_t set = new_set(p);
        while (set >= 0 && !at_end(p) && *p->s != ']' && !p->rc) {
            int lo = parse_byte(p), hi = lo;
            if (lo >= 0 && p->end - p->s >= 2 && p->s[0] == '-' && p->s[1] != ']') {
                p->s++;
                hi = parse_byte(p);
                if (hi >= 0 && hi < lo)
                    return perr(p, "byte range %d-%d is backwards", lo, hi);
            }
            for (int b = lo; b >= 0 && b <= hi; b++)
                p->sets[set][b >> 5] |= 1u << (b & 31);
        }
        if (p->rc)
            return p->rc;
        if (at_end(p))
            return perr(p, "unterminated byte class");
        p->s++;
        if (neg)
            for (int w = 0; w < 8; w++)
                p->sets[set][w] = ~p->sets[set][w];
        return push(p, atom, GE_SET, (uint32_t)set);
    }
    if (c == '.') {
        p->s++;
        int32_t set = new_set(p);
        if (set >= 0)
            memset(p->sets[set], 0xff, sizeof(p->sets[0]));
        return set < 0 ? p->rc : push(p, atom, GE_SET, (uint32_t)set);
    }
    if (c == '(') {
        if (++p->depth > MAX_DEPTH)
            return perr(p, "parentheses nested deeper than %d", MAX_DEPTH);
        p->s++;
        int32_t r = new_rule(p, NULL, 0);
        if (r < 0)
            return p->rc;
        struct evec body = {0};
        skip_space(p, true);
        parse_alternatives(p, &body);
        p->rules[r].body = body; /* the rules array may have moved while parsing */
        p->rules[r].defined = true;
        if (p->rc)
            return p->rc;
        skip_space(p, true);
        if (at_end(p) || *p->s != ')')
            return perr(p, "expected ')'");
        p->s++;
        p->depth--;
        return push(p, atom, GE_REF, (uint32_t)r);
    }
    if (is_name_char(c)) {
        const char *n = p->s;
        while (!at_end(p) && is_name_char(*p->s))
            p->s++;
        int32_t r = rule_by_name(p, n, (size_t)(p->s - n));
        return r < 0 ? p->rc : push(p, atom, GE_REF, (uint32_t)r);
    }
    return perr(p, "unexpected '%c'", c);
}

/* A generated rule whose alternatives are given element lists (NULL = the empty one). */
static int32_t gen_rule(struct parser *p, const struct evec *a0, const struct evec *a1,
                        int32_t tail_ref)
{
    int32_t r = new_rule(p, NULL, 0);
    if (r < 0)
        return -1;
    struct evec body = {0};
    if (a0)
        append(p, &body, a0);
    if (tail_ref >= 0)
        push(p, &body, GE_REF, (uint32_t)tail_ref);
    push(p, &body, GE_ALT, 0);
    if (a1)
        append(p, &body, a1);
    push(p, &body, GE_END, 0);
    p->rules[r].body = body;
    p->rules[r].defined = true;
    return p->rc ? -1 : r;
}

static bool parse_uint(struct parser *p, uint32_t *v)
{
    if (at_end(p) || *p->s < '0' || *p->s > '9')
        return false;
    uint64_t x = 0;
    while (!at_end(p) && *p->s >= '0' && *p->s <= '9') {
        x = x * 10 + (uint64_t)(*p->s++ - '0');
        if (x > MAX_REPEAT)
            x = MAX_REPEAT + 1;
    }
    *v = (uint32_t)x;
    return true;
}

/* atom followed by an optional repetition operator, appended to seq. */
static int parse_repeat(struct parser *p, struct evec *seq, struct evec *atom)
{
    uint32_t min = 1, max = 1; /* max UINT32_MAX: unbounded */
    if (!at_end(p) && (*p->s == '*' || *p->s == '+' || *p->s == '?')) {
        char op = *p->s++;
        min = op == '+' ? 1 : 0;
        max = op == '?' ? 1 : UINT32_MAX;
    } else if (!at_end(p) && *p->s == '{') {
        p->s++;
        skip_space(p, false);
        if (!parse_uint(p, &min))
            return perr(p, "expected a count after '{'");
        max = min;
        skip_space(p, false);
        if (!at_end(p) && *p->s == ',') {
            p->s++;
            skip_space(p, false);
            if (!parse_uint(p, &max))
                max = UINT32_MAX;
            skip_space(p, false);
        }
        if (at_end(p) || *p->s != '}')
            return perr(p, "expected '}'");
        p->s++;
        if (min > MAX_REPEAT || (max != UINT32_MAX && max > MAX_REPEAT))
            return perr(p, "repetition count above %d", MAX_REPEAT);
        if (max < min)
            return perr(p, "repetition {%u,%u}: max below min", min, max);
    }
    for (uint32_t i = 0; i < min && !p->rc; i++)
        append(p, seq, atom);
    if (max == UINT32_MAX) { /* R ::= atom R | "" */
        int32_t r = new_rule(p, NULL, 0);
        if (r < 0)
            return p->rc;
        struct evec body = {0};
        append(p, &body, atom);
        push(p, &body, GE_REF, (uint32_t)r);
        push(p, &body, GE_ALT, 0);
        push(p, &body, GE_END, 0);
        p->rules[r].body = body;
        p->rules[r].defined = true;
        push(p, seq, GE_REF, (uint32_t)r);
    } else if (max > min) { /* R1 ::= atom | "";  Rk ::= atom R(k-1) | "" */
        int32_t prev = -1;
        for (uint32_t k = 0; k < max - min && !p->rc; k++)
            prev = gen_rule(p, atom, NULL, prev);
        if (prev >= 0)
            push(p, seq, GE_REF, (uint32_t)prev);
    }
    return p->rc;
}

static int parse_sequence(struct parser *p, struct evec *out)
{
    for (;;) {
        skip_space(p, p->depth > 0);
        if (at_end(p) || p->rc)
            break;
        char c = *p->s;
        if (c == '|' || c == ')' || c == '\n')
            break;
        struct evec atom = {0};
        parse_atom(p, &atom);
        if (!p->rc)
            parse_repeat(p, out, &atom);
        free(atom.v);
        if (p->rc)
            break;
    }
    return p->rc;
}

static int parse_alternatives(struct parser *p, struct evec *out)
{
    parse_sequence(p, out);
    for (;;) {
        if (p->rc)
            return p->rc;
        /* a '|' may start the next line at top level */
        const char *save = p->s, *save_ls = p->line_start;
        uint32_t save_line = p->line;
        skip_space(p, true);
        if (at_end(p) || *p->s != '|') {
            p->s = save;
            p->line = save_line;
            p->line_start = save_ls;
            break;
        }
        p->s++;
        push(p, out, GE_ALT, 0);
        skip_space(p, true);
        parse_sequence(p, out);
    }
    return push(p, out, GE_END, 0);
}

static int parse_rule(struct parser *p)
{
    const char *n = p->s;
    while (!at_end(p) && is_name_char(*p->s))
        p->s++;
    if (p->s == n)
        return perr(p, "expected a rule name");
    size_t nlen = (size_t)(p->s - n);
    skip_space(p, false);
    if (p->end - p->s < 3 || memcmp(p->s, "::=", 3) != 0)
        return perr(p, "expected '::=' after the rule name");
    p->s += 3;
    int32_t r = rule_by_name(p, n, nlen);
    if (r < 0)
        return p->rc;
    if (p->rules[r].defined)
        return perr(p, "rule '%.*s' defined twice", (int)(nlen > 64 ? 64 : nlen), n);
    p->rules[r].defined = true;
    struct evec body = {0};
    parse_alternatives(p, &body);
    p->rules[r].body = body;
    if (p->rc)
        return p->rc;
    skip_space(p, false);
    if (!at_end(p) && *p->s != '\n')
        return perr(p, "unexpected '%c'", *p->s);
    return 0;
}

/* ---- checks on the finished rules ---- */

/* A rule that can reach itself without consuming a byte would make the matcher loop. */
static int check_left_recursion(struct parser *p, struct eng_grammar *g)
{
    int32_t n = g->n_rules;
    bool *nullable = calloc((size_t)n, 1);
    uint8_t *color = calloc((size_t)n, 1);
    int32_t *stack = malloc((size_t)n * sizeof(*stack));
    uint32_t *it = malloc((size_t)n * sizeof(*it));
    int rc = 0;
    if (!nullable || !color || !stack || !it) {
        rc = oom(p);
        goto out;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < n; r++) {
            if (nullable[r])
                continue;
            for (uint32_t a = g->alt_off[r]; a < g->alt_off[r + 1] && !nullable[r]; a++) {
                uint32_t e = g->alt_pos[a];
                while (g->elems[e].type == GE_REF && nullable[g->elems[e].val])
                    e++;
                if (g->elems[e].type == GE_END || g->elems[e].type == GE_ALT)
                    nullable[r] = changed = true;
            }
        }
    }
    /* depth-first over "r may begin with s" edges; it[] walks r's elements lazily */
    for (int32_t root = 0; root < n && !rc; root++) {
        if (color[root])
            continue;
        int32_t sp = 0;
        stack[sp++] = root;
        color[root] = 1;
        it[root] = 0;
        while (sp > 0 && !rc) {
            int32_t r = stack[sp - 1];
            /* the next edge of r: scan its alternatives' leading elements */
            int32_t next = -1;
            uint32_t lo = g->alt_pos[g->alt_off[r]], hi = g->alt_off[r + 1] < g->alt_off[n]
                                                              ? g->alt_pos[g->alt_off[r + 1]]
                                                              : g->n_elems;
            while (lo + it[r] < hi && next < 0) {
                uint32_t e = lo + it[r]++;
                /* only elements reachable through a nullable prefix of their alternative */
                bool leading = true;
                uint32_t b = e;
                while (b > lo && g->elems[b - 1].type != GE_ALT) {
                    b--;
                    if (g->elems[b].type != GE_REF || !nullable[g->elems[b].val]) {
                        leading = false;
                        break;
                    }
                }
                if (leading && g->elems[e].type == GE_REF)
                    next = (int32_t)g->elems[e].val;
            }
            if (next < 0) {
                color[r] = 2;
                sp--;
            } else if (color[next] == 1) {
                rc = -EINVAL;
                if (p->err && p->err_len)
                    snprintf(p->err, p->err_len,
                             "grammar: rule %s%s%s is left-recursive (it can reach itself "
                             "before matching a byte)",
                             p->rules[next].name ? "'" : "#",
                             p->rules[next].name ? p->rules[next].name : "",
                             p->rules[next].name ? "'" : "");
            } else if (color[next] == 0) {
                color[next] = 1;
                it[next] = 0;
                stack[sp++] = next;
            }
        }
    }
out:
    free(nullable);
    free(color);
    free(stack);
    free(it);
    return rc;
}

static int build(struct parser *p, struct eng_grammar *g)
{
    /* an empty literal "" refers to one shared empty rule */
    int32_t empty = -1;
    for (int32_t r = 0; r < p->n_rules && !p->rc; r++) {
        struct evec *b = &p->rules[r].body;
        for (uint32_t i = 0; i < b->n; i++) {
            if (b->v[i].type == GE_REF && b->v[i].val == UINT32_MAX) {
                if (empty < 0) {
                    empty = new_rule(p, NULL, 0);
                    if (empty < 0)
                        return p->rc;
                    push(p, &p->rules[empty].body, GE_END, 0);
                    p->rules[empty].defined = true;
                    b = &p->rules[r].body;
                }
                b->v[i].val = (uint32_t)empty;
            }
        }
    }
    if (p->rc)
        return p->rc;
    uint64_t n_elems = 0, n_alts = 0;
    for (int32_t r = 0; r < p->n_rules; r++) {
        if (!p->rules[r].defined) {
            p->rc = -EINVAL;
            if (p->err && p->err_len)
                snprintf(p->err, p->err_len, "grammar: line %u col %u: rule '%s' is not defined",
                         p->rules[r].first_line, p->rules[r].first_col, p->rules[r].name);
            return p->rc;
        }
        n_elems += p->rules[r].body.n;
        for (uint32_t i = 0; i < p->rules[r].body.n; i++)
            n_alts += p->rules[r].body.v[i].type != GE_SET && p->rules[r].body.v[i].type != GE_REF;
    }
    g->elems = malloc(n_elems * sizeof(*g->elems));
    g->alt_pos = malloc(n_alts * sizeof(*g->alt_pos));
    g->alt_off = malloc(((size_t)p->n_rules + 1) * sizeof(*g->alt_off));
    if (!g->elems || !g->alt_pos || !g->alt_off)
        return oom(p);
    uint32_t e = 0, a = 0;
    for (int32_t r = 0; r < p->n_rules; r++) {
        const struct evec *b = &p->rules[r].body;
        g->alt_off[r] = a;
        g->alt_pos[a++] = e;
        for (uint32_t i = 0; i < b->n; i++) {
            g->elems[e++] = b->v[i];
            if (b->v[i].type == GE_ALT)
                g->alt_pos[a++] = e;
        }
    }
    g->alt_off[p->n_rules] = a;
    g->n_elems = e;
    g->n_rules = p->n_rules;
    g->sets = p->sets;
    g->n_sets = p->n_sets;
    p->sets = NULL;
    return check_left_recursion(p, g);
}

int eng_grammar_parse(const char *text, size_t len, struct eng_grammar **ret, char *err,
                      size_t err_len)
{
    *ret = NULL;
    if (!text)
        return -EINVAL;
    if (!len)
        len = strlen(text);
    struct parser p = {.s = text,
                       .end = text + len,
                       .line_start = text,
                       .line = 1,
                       .err = err,
                       .err_len = err_len};
    if (len > ENG_GRAMMAR_MAX_TEXT)
        return perr(&p, "grammar text longer than %u bytes", ENG_GRAMMAR_MAX_TEXT);
    p.cap_sets = 512;
    p.sets = malloc(p.cap_sets * sizeof(*p.sets));
    struct eng_grammar *g = calloc(1, sizeof(*g));
    if (!p.sets || !g) {
        free(p.sets);
        free(g);
        return -ENOMEM;
    }
    for (uint32_t b = 0; b < 256; b++) {
        memset(p.sets[b], 0, sizeof(p.sets[0]));
        p.sets[b][b >> 5] = 1u << (b & 31);
    }
    p.n_sets = 256;
    for (;;) {
        skip_space(&p, true);
        if (at_end(&p) || p.rc)
            break;
        parse_rule(&p);
    }
    if (!p.rc) {
        g->root = -1;
        for (int32_t r = 0; r < p.n_rules; r++)
            if (p.rules[r].name && strcmp(p.rules[r].name, "root") == 0)
                g->root = r;
        if (g->root < 0) {
            p.rc = -EINVAL;
            if (err && err_len)
                snprintf(err, err_len, "grammar: no 'root' rule");
        }
    }
    if (!p.rc)
        p.rc = build(&p, g);
    for (int32_t r = 0; r < p.n_rules; r++) {
        free(p.rules[r].name);
        free(p.rules[r].body.v);
    }
    free(p.rules);
    free(p.hash);
    free(p.sets);
    if (p.rc) {
        eng_grammar_free(g);
        return p.rc;
    }
    *ret = g;
    return 0;
}

void eng_grammar_free(struct eng_grammar *g)
{
    if (!g)
        return;
    free(g->elems);
    free(g->sets);
    free(g->alt_pos);
    free(g->alt_off);
    free(g);
}

int32_t eng_grammar_n_rules(const struct eng_grammar *g)
{
    return g ? g->n_rules : 0;
}
