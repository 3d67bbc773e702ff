/* The knowledge base: an SQLite file holding documents (Markdown sections), question/answer
 * pairs and a small graph of entities (names mentioned by entries, and relations between them),
 * with an FTS5 index over the entries. Retrieval ranks entries by BM25, then follows one hop of
 * the graph: entries that mention an entity named in the question, or an entity related to one,
 * move up (see kb_search). Imports run in one transaction: a bad line imports nothing.
 *
 * Used by the knowledge plugin (kb_plugin.c, loaded by `ember agent`) and `ember kb`. */
#ifndef EMBER_KB_H
#define EMBER_KB_H

#include <stdbool.h>
#include <stddef.h>

struct kb;

#define KB_KEY_MAX   160
#define KB_TITLE_MAX 200

/* Opens (read_only) or opens and creates (the schema too) a knowledge base. */
int kb_open(const char *path, bool read_only, struct kb **ret, char *err, size_t err_len);
void kb_close(struct kb *kb);

/* Groups several imports into one transaction: all or nothing. */
int kb_begin(struct kb *kb, char *err, size_t err_len);
int kb_commit(struct kb *kb, char *err, size_t err_len);
void kb_rollback(struct kb *kb);

struct kb_import_stats {
    size_t entries, qa, relations, entities;
};

/* JSONL, one object per line (blank lines skipped):
 *   {"type":"doc","id":"...","text":"...","title":"...","entities":["..."]}
 *   {"type":"qa","id":"...","question":"...","answer":"...","entities":["..."]}
 *   {"type":"relation","subject":"...","predicate":"...","object":"..."}
 * An entry replaces the one with the same id. -EINVAL with "NAME:LINE: reason" in err at the
 * first bad line; the caller rolls back. Inside kb_begin/kb_commit. */
int kb_import_jsonl(struct kb *kb, const char *name, const char *text, size_t len,
                    struct kb_import_stats *st, char *err, size_t err_len);
/* Markdown, one entry per heading's section ("BASENAME#slug", long sections split into
 * "#slug~2", ...); `code spans` become the entities the section mentions. Entries imported
 * before from the same NAME are replaced. Headings inside ``` fences do not count. */
int kb_import_markdown(struct kb *kb, const char *name, const char *text, size_t len,
                       struct kb_import_stats *st, char *err, size_t err_len);
/* Reads a file and imports it by its extension (.jsonl, .md/.markdown). */
int kb_import_file(struct kb *kb, const char *path, struct kb_import_stats *st, char *err,
                   size_t err_len);

struct kb_hit {
    char key[KB_KEY_MAX];
    char title[KB_TITLE_MAX];
    char kind[8];   /* "doc" or "qa" */
    double score;   /* higher is better */
    bool via_graph; /* found or lifted by the entity hop */
    char *body;     /* malloc'd; kb_hits_free */
};

/* The best k (at most 16) entries for a question. *ret_n may be 0. */
int kb_search(struct kb *kb, const char *query, size_t k, struct kb_hit *hits, size_t *ret_n);
void kb_hits_free(struct kb_hit *hits, size_t n);

struct kb_counts {
    long long docs, qa, entities, relations, mentions;
};
int kb_count(struct kb *kb, struct kb_counts *ret);

/* Does hit key match an expected key (equal, or a "~N" continuation of it)? */
bool kb_key_matches(const char *key, const char *expected);

#endif
