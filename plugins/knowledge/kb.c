/* The knowledge base store, its importers and retrieval (see kb.h). */
#include "kb.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KB_SCHEMA_VERSION 1
#define KB_MAX_FILE       (64u << 20) /* bytes one import reads */
#define KB_CHUNK_BYTES    2400        /* a longer section is split at paragraphs */
#define KB_MAX_HITS       16
#define KB_CANDIDATES     40 /* BM25 candidates the graph hop re-ranks */

/* Terms in more than this share of a base of at least KB_COMMON_MIN entries are left out of
 * the ranking: scoring their long doclists is most of a query's time, and BM25 gives them
 * little weight (idf of a term in a quarter of the entries: ln 4 = 1.4, against about 9 for a
 * term in one entry of 10,000). */
#define KB_COMMON_SHARE 0.25
#define KB_COMMON_MIN   1000

struct kb {
    sqlite3 *db;
    long long n_entries; /* when opened or last imported into */
    sqlite3_stmt *search, *term_count, *entity_by_name, *related, *mentioning, *entry_by_id;
};

static const char schema[] =
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS entries("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL CHECK(kind IN ('doc','qa')),"
    "  title TEXT NOT NULL DEFAULT '',"    /* shown: "document: heading" */
    "  heading TEXT NOT NULL DEFAULT '',"  /* the section's heading, a Q&A pair's question */
    "  doctitle TEXT NOT NULL DEFAULT ''," /* the document's title (Markdown's first heading) */
    "  body TEXT NOT NULL,"
    "  source TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS entries_source ON entries(source);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5("
    "  heading, doctitle, body, content='entries', content_rowid='id',"
    "  tokenize='porter unicode61');"
    "CREATE TRIGGER IF NOT EXISTS entries_ai AFTER INSERT ON entries BEGIN"
    "  INSERT INTO entries_fts(rowid, heading, doctitle, body)"
    "  VALUES (new.id, new.heading, new.doctitle, new.body); END;"
    "CREATE TRIGGER IF NOT EXISTS entries_ad AFTER DELETE ON entries BEGIN"
    "  INSERT INTO entries_fts(entries_fts, rowid, heading, doctitle, body)"
    "  VALUES ('delete', old.id, old.heading, old.doctitle, old.body); END;"
    "CREATE TRIGGER IF NOT EXISTS entries_au AFTER UPDATE ON entries BEGIN"
    "  INSERT INTO entries_fts(entries_fts, rowid, heading, doctitle, body)"
    "  VALUES ('delete', old.id, old.heading, old.doctitle, old.body);"
    "  INSERT INTO entries_fts(rowid, heading, doctitle, body)"
    "  VALUES (new.id, new.heading, new.doctitle, new.body); END;"
    /* the graph: entities (lower-case names), who mentions them, how they relate */
    "CREATE TABLE IF NOT EXISTS entities(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS mentions("
    "  entity INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,"
    "  entry INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
    "  PRIMARY KEY(entity, entry)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS mentions_entry ON mentions(entry);"
    "CREATE TABLE IF NOT EXISTS relations("
    "  subject INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,"
    "  predicate TEXT NOT NULL,"
    "  object INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,"
    "  PRIMARY KEY(subject, predicate, object)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS relations_object ON relations(object);";

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static int prepare(struct kb *kb, const char *sql, sqlite3_stmt **st, char *err, size_t err_len)
{
    if (sqlite3_prepare_v3(kb->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        set_err(err, err_len, "%s", sqlite3_errmsg(kb->db));
        return -EIO;
    }
    return 0;
}

int kb_open(const char *path, bool read_only, struct kb **ret, char *err, size_t err_len)
{
    struct kb *kb = calloc(1, sizeof(*kb));
    if (!kb)
        return -ENOMEM;
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = -EIO;
    if (sqlite3_open_v2(path, &kb->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        set_err(err, err_len, "%s: %s", path, kb->db ? sqlite3_errmsg(kb->db) : "out of memory");
        rc = read_only && access(path, F_OK) < 0 ? -ENOENT : -EIO;
        goto fail;
    }
    sqlite3_busy_timeout(kb->db, 2000);
    char *msg = NULL;
    if (!read_only) {
        if (sqlite3_exec(kb->db, schema, NULL, NULL, &msg) != SQLITE_OK)
            goto sql_fail;
        if (sqlite3_exec(kb->db, "PRAGMA user_version=1", NULL, NULL, &msg) != SQLITE_OK)
            goto sql_fail;
    } else if (sqlite3_exec(kb->db, "PRAGMA foreign_keys=ON", NULL, NULL, &msg) != SQLITE_OK) {
        goto sql_fail;
    }
    /* Queries read the index's doclists page by page: mapped, and with a page cache of 16 MiB,
     * they are not copied in by a system call each (about a third faster on 10,000 entries). */
    sqlite3_exec(kb->db, "PRAGMA mmap_size=268435456; PRAGMA cache_size=-16384", NULL, NULL, NULL);
    sqlite3_stmt *v = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(kb->db, "PRAGMA user_version", -1, &v, NULL) == SQLITE_OK &&
        sqlite3_step(v) == SQLITE_ROW)
        version = sqlite3_column_int(v, 0);
    sqlite3_finalize(v);
    if (version != KB_SCHEMA_VERSION) {
        set_err(err, err_len, "%s: not an Ember knowledge base (schema version %d, want %d)", path,
                version, KB_SCHEMA_VERSION);
        rc = -EINVAL;
        goto fail;
    }
    if (prepare(kb,
                "SELECT rowid, -bm25(entries_fts, 4.0, 1.0, 1.0) FROM entries_fts WHERE "
                "entries_fts MATCH ?1 ORDER BY bm25(entries_fts, 4.0, 1.0, 1.0) LIMIT ?2",
                &kb->search, err, err_len) < 0 ||
        prepare(kb, "SELECT count(*) FROM (SELECT 1 FROM entries_fts(?1) LIMIT ?2)",
                &kb->term_count, err, err_len) < 0 ||
        prepare(kb, "SELECT id FROM entities WHERE name = ?1", &kb->entity_by_name, err, err_len) <
            0 ||
        prepare(kb,
                "SELECT object FROM relations WHERE subject = ?1 UNION "
                "SELECT subject FROM relations WHERE object = ?1",
                &kb->related, err, err_len) < 0 ||
        prepare(kb, "SELECT entry FROM mentions WHERE entity = ?1 LIMIT 64", &kb->mentioning, err,
                err_len) < 0 ||
        prepare(kb, "SELECT key, title, kind, body FROM entries WHERE id = ?1", &kb->entry_by_id,
                err, err_len) < 0)
        goto fail;
    sqlite3_stmt *count = NULL;
    if (sqlite3_prepare_v2(kb->db, "SELECT count(*) FROM entries", -1, &count, NULL) == SQLITE_OK &&
        sqlite3_step(count) == SQLITE_ROW)
        kb->n_entries = sqlite3_column_int64(count, 0);
    sqlite3_finalize(count);
    *ret = kb;
    return 0;
sql_fail:
    set_err(err, err_len, "%s: %s", path, msg ? msg : sqlite3_errmsg(kb->db));
    sqlite3_free(msg);
fail:
    kb_close(kb);
    return rc;
}

void kb_close(struct kb *kb)
{
    if (!kb)
        return;
    sqlite3_finalize(kb->search);
    sqlite3_finalize(kb->term_count);
    sqlite3_finalize(kb->entity_by_name);
    sqlite3_finalize(kb->related);
    sqlite3_finalize(kb->mentioning);
    sqlite3_finalize(kb->entry_by_id);
    sqlite3_close(kb->db);
    free(kb);
}

static int exec(struct kb *kb, const char *sql, char *err, size_t err_len)
{
    char *msg = NULL;
    if (sqlite3_exec(kb->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        set_err(err, err_len, "%s", msg ? msg : sqlite3_errmsg(kb->db));
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

int kb_begin(struct kb *kb, char *err, size_t err_len)
{
    return exec(kb, "BEGIN IMMEDIATE", err, err_len);
}

int kb_commit(struct kb *kb, char *err, size_t err_len)
{
    int rc = exec(kb, "COMMIT", err, err_len);
    sqlite3_stmt *count = NULL;
    if (rc == 0 &&
        sqlite3_prepare_v2(kb->db, "SELECT count(*) FROM entries", -1, &count, NULL) == SQLITE_OK &&
        sqlite3_step(count) == SQLITE_ROW)
        kb->n_entries = sqlite3_column_int64(count, 0);
    sqlite3_finalize(count);
    return rc;
}

void kb_rollback(struct kb *kb)
{
    sqlite3_exec(kb->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- writing ---- */

/* Lower-case, blanks collapsed: how entity names are compared. */
static void normalize_name(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isspace(c)) {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < cap)
            out[o++] = ' ';
        space = false;
        out[o++] = (char)tolower(c);
    }
    out[o] = '\0';
}

static int entity_id(struct kb *kb, const char *name, size_t n, long long *ret,
                     struct kb_import_stats *st)
{
    char norm[128];
    normalize_name(name, n, norm, sizeof(norm));
    if (!norm[0])
        return -EINVAL;
    sqlite3_stmt *s = NULL;
    int rc = -EIO;
    if (sqlite3_prepare_v2(kb->db,
                           "INSERT INTO entities(name) VALUES (?1) ON CONFLICT(name) DO "
                           "NOTHING",
                           -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(s, 1, norm, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_DONE) {
        if (sqlite3_changes(kb->db) && st)
            st->entities++;
        rc = 0;
    }
    sqlite3_finalize(s);
    if (rc < 0)
        return rc;
    sqlite3_reset(kb->entity_by_name);
    sqlite3_bind_text(kb->entity_by_name, 1, norm, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(kb->entity_by_name) == SQLITE_ROW ? 0 : -EIO;
    if (rc == 0)
        *ret = sqlite3_column_int64(kb->entity_by_name, 0);
    sqlite3_reset(kb->entity_by_name);
    return rc;
}

static int add_mention(struct kb *kb, long long entry, const char *name, size_t n,
                       struct kb_import_stats *st)
{
    long long ent;
    int rc = entity_id(kb, name, n, &ent, st);
    if (rc < 0)
        return rc == -EINVAL ? 0 : rc; /* a blank name mentions nothing */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(kb->db, "INSERT OR IGNORE INTO mentions(entity, entry) VALUES (?1, ?2)",
                           -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(s, 1, ent);
    sqlite3_bind_int64(s, 2, entry);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(s);
    return rc;
}

/* Inserts or replaces an entry (by key); *ret_id is its row. Old mentions are dropped. */
static int put_entry(struct kb *kb, const char *key, const char *kind, const char *heading,
                     const char *doctitle, const char *body, const char *source, long long *ret_id)
{
    heading = heading ? heading : "";
    doctitle = doctitle && strcmp(doctitle, heading) != 0 ? doctitle : "";
    char title[KB_TITLE_MAX];
    if (doctitle[0] && heading[0])
        snprintf(title, sizeof(title), "%s: %s", doctitle, heading);
    else
        snprintf(title, sizeof(title), "%s", heading[0] ? heading : doctitle);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(kb->db,
                           "INSERT INTO entries(key, kind, title, heading, doctitle, body, source) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(key) DO UPDATE SET "
                           "kind = excluded.kind, title = excluded.title, heading = "
                           "excluded.heading, doctitle = excluded.doctitle, body = excluded.body, "
                           "source = excluded.source RETURNING id",
                           -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, heading, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, doctitle, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 6, body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 7, source, -1, SQLITE_TRANSIENT);
    int rc = -EIO;
    if (sqlite3_step(s) == SQLITE_ROW) {
        *ret_id = sqlite3_column_int64(s, 0);
        rc = 0;
    }
    while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
    }
    sqlite3_finalize(s);
    if (rc < 0)
        return rc;
    if (sqlite3_prepare_v2(kb->db, "DELETE FROM mentions WHERE entry = ?1", -1, &s, NULL) !=
        SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(s, 1, *ret_id);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(s);
    return rc;
}

static int add_relation(struct kb *kb, const char *subject, const char *predicate,
                        const char *object, struct kb_import_stats *st)
{
    long long a, b;
    int rc = entity_id(kb, subject, strlen(subject), &a, st);
    if (rc == 0)
        rc = entity_id(kb, object, strlen(object), &b, st);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(kb->db,
                           "INSERT OR IGNORE INTO relations(subject, predicate, object) VALUES "
                           "(?1, ?2, ?3)",
                           -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_text(s, 2, predicate, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, b);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(s);
    if (rc == 0 && st)
        st->relations++;
    return rc;
}

/* ---- JSONL ---- */

/* A required string field of at most max bytes, or NULL after writing why. */
static const char *field_str(const cJSON *o, const char *name, size_t max, bool required, char *why,
                             size_t why_len)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!f) {
        if (required)
            snprintf(why, why_len, "missing \"%s\"", name);
        return NULL;
    }
    const char *s = cJSON_GetStringValue(f);
    if (!s) {
        snprintf(why, why_len, "\"%s\" must be a string", name);
        return NULL;
    }
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        snprintf(why, why_len, "\"%s\" must be 1 to %zu bytes", name, max);
        return NULL;
    }
    return s;
}

static bool only_fields(const cJSON *o, const char *const *allowed, char *why, size_t why_len)
{
    for (const cJSON *f = o->child; f; f = f->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = f->string && strcmp(f->string, allowed[i]) == 0;
        if (!ok) {
            snprintf(why, why_len, "unknown field \"%.40s\"", f->string ? f->string : "");
            return false;
        }
    }
    return true;
}

static int import_object(struct kb *kb, const cJSON *o, const char *source,
                         struct kb_import_stats *st, char *why, size_t why_len)
{
    why[0] = '\0';
    if (!cJSON_IsObject(o)) {
        snprintf(why, why_len, "not a JSON object");
        return -EINVAL;
    }
    const char *type = field_str(o, "type", 16, true, why, why_len);
    if (!type)
        return -EINVAL;
    if (strcmp(type, "relation") == 0) {
        static const char *const allowed[] = {"type", "subject", "predicate", "object", NULL};
        if (!only_fields(o, allowed, why, why_len))
            return -EINVAL;
        const char *s = field_str(o, "subject", 120, true, why, why_len);
        const char *p = s ? field_str(o, "predicate", 120, true, why, why_len) : NULL;
        const char *ob = p ? field_str(o, "object", 120, true, why, why_len) : NULL;
        if (!ob)
            return -EINVAL;
        int rc = add_relation(kb, s, p, ob, st);
        if (rc == -EINVAL)
            snprintf(why, why_len, "a blank subject or object");
        return rc;
    }
    bool qa = strcmp(type, "qa") == 0;
    if (!qa && strcmp(type, "doc") != 0) {
        snprintf(why, why_len, "\"type\" must be \"doc\", \"qa\" or \"relation\", not \"%.20s\"",
                 type);
        return -EINVAL;
    }
    static const char *const doc_fields[] = {"type", "id", "title", "text", "entities", NULL};
    static const char *const qa_fields[] = {"type", "id", "question", "answer", "entities", NULL};
    if (!only_fields(o, qa ? qa_fields : doc_fields, why, why_len))
        return -EINVAL;
    const char *id = field_str(o, "id", KB_KEY_MAX - 1, true, why, why_len);
    if (!id)
        return -EINVAL;
    const char *title, *body;
    if (qa) {
        title = field_str(o, "question", 4096, true, why, why_len);
        body = title ? field_str(o, "answer", 1 << 20, true, why, why_len) : NULL;
    } else {
        title = field_str(o, "title", KB_TITLE_MAX - 1, false, why, why_len);
        if (why[0])
            return -EINVAL;
        body = field_str(o, "text", 1 << 20, true, why, why_len);
    }
    if (!body)
        return -EINVAL;
    const cJSON *ents = cJSON_GetObjectItemCaseSensitive(o, "entities");
    if (ents && !cJSON_IsArray(ents)) {
        snprintf(why, why_len, "\"entities\" must be an array of strings");
        return -EINVAL;
    }
    for (const cJSON *e = ents ? ents->child : NULL; e; e = e->next) {
        const char *name = cJSON_GetStringValue(e);
        if (!name || !name[0] || strlen(name) > 120) {
            snprintf(why, why_len, "\"entities\" must hold strings of 1 to 120 bytes");
            return -EINVAL;
        }
    }
    long long row;
    int rc = put_entry(kb, id, qa ? "qa" : "doc", title, NULL, body, source, &row);
    for (const cJSON *e = ents ? ents->child : NULL; rc == 0 && e; e = e->next)
        rc = add_mention(kb, row, e->valuestring, strlen(e->valuestring), st);
    if (rc < 0) {
        snprintf(why, why_len, "database: %s", sqlite3_errmsg(kb->db));
        return rc;
    }
    if (qa)
        st->qa++;
    else
        st->entries++;
    return 0;
}

int kb_import_jsonl(struct kb *kb, const char *name, const char *text, size_t len,
                    struct kb_import_stats *st, char *err, size_t err_len)
{
    size_t pos = 0;
    unsigned line = 0;
    char why[256];
    while (pos < len) {
        line++;
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && start[n - 1] == '\r')
            n--;
        size_t blank = 0;
        while (blank < n && (start[blank] == ' ' || start[blank] == '\t'))
            blank++;
        if (blank == n)
            continue;
        if (memchr(start, '\0', n)) {
            set_err(err, err_len, "%s:%u: a NUL byte in the line", name, line);
            return -EINVAL;
        }
        const char *end = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(start, n, &end, false);
        if (!o) {
            set_err(err, err_len, "%s:%u: not valid JSON (near byte %zu of the line)", name, line,
                    end && end >= start ? (size_t)(end - start) + 1 : (size_t)1);
            return -EINVAL;
        }
        /* nothing but blanks may follow the object on its line */
        for (const char *p = end; p && p < start + n; p++)
            if (*p != ' ' && *p != '\t') {
                cJSON_Delete(o);
                set_err(err, err_len, "%s:%u: text after the JSON object (one object per line)",
                        name, line);
                return -EINVAL;
            }
        int rc = import_object(kb, o, name, st, why, sizeof(why));
        cJSON_Delete(o);
        if (rc < 0) {
            set_err(err, err_len, "%s:%u: %s", name, line, why);
            return rc;
        }
    }
    return 0;
}

/* ---- Markdown ---- */

/* GitHub's anchor for a heading: lower case, punctuation dropped, blanks to '-'. */
static void slugify(const char *h, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)h[i];
        if (isalnum(c) || c == '_' || c == '-')
            out[o++] = (char)tolower(c);
        else if (c == ' ')
            out[o++] = '-';
        else if (c >= 0x80)
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

struct md_ctx {
    struct kb *kb;
    const char *name, *base;
    char doc_title[KB_TITLE_MAX];
    char heading[KB_TITLE_MAX];
    char slug[96];
    char seen[64][96]; /* slugs so far, for GitHub's -1, -2 suffixes */
    unsigned seen_count[64];
    size_t n_seen;
    struct kb_import_stats *st;
};

/* Stores one chunk of a section, with the `code spans` it mentions as entities. */
static int md_store(struct md_ctx *m, const char *body, size_t n, unsigned part)
{
    while (n && (body[n - 1] == '\n' || body[n - 1] == ' '))
        n--;
    while (n && (*body == '\n' || *body == ' '))
        body++, n--;
    if (n == 0 && !m->heading[0])
        return 0;
    char key[KB_KEY_MAX], title[KB_TITLE_MAX];
    if (m->slug[0])
        snprintf(key, sizeof(key), "%s#%s", m->base, m->slug);
    else
        snprintf(key, sizeof(key), "%s", m->base);
    if (part > 1) {
        size_t k = strlen(key);
        snprintf(key + k, sizeof(key) - k, "~%u", part);
    }
    snprintf(title, sizeof(title), "%s", m->heading[0] ? m->heading : m->base);
    char *text = strndup(body, n);
    if (!text)
        return -ENOMEM;
    long long row;
    int rc = put_entry(m->kb, key, "doc", title, m->doc_title, n ? text : title, m->name, &row);
    /* `code spans`: the names a section is about (keys, commands, files), in its heading too */
    char *all = NULL;
    if (rc == 0 && asprintf(&all, "%s\n%s", title, text) < 0)
        rc = -ENOMEM;
    for (const char *p = all; rc == 0 && (p = strchr(p, '`'));) {
        const char *q = strchr(p + 1, '`');
        if (!q)
            break;
        size_t len = (size_t)(q - p - 1);
        if (len >= 2 && len <= 60 && !memchr(p + 1, '\n', len)) {
            rc = add_mention(m->kb, row, p + 1, len, m->st);
            /* a command synopsis also names its command: `ember report [--since 24h]` */
            size_t cmd = 0;
            while (cmd + 1 < len && !(p[1 + cmd] == ' ' && strchr("-[<", p[2 + cmd])))
                cmd++;
            if (rc == 0 && cmd + 1 < len && cmd >= 2)
                rc = add_mention(m->kb, row, p + 1, cmd, m->st);
        }
        p = q + 1;
    }
    free(all);
    free(text);
    if (rc == 0)
        m->st->entries++;
    return rc;
}

/* Stores a whole section, split at blank lines into chunks of about KB_CHUNK_BYTES. */
static int md_section(struct md_ctx *m, const char *body, size_t n)
{
    unsigned part = 1;
    while (n > KB_CHUNK_BYTES) {
        size_t cut = KB_CHUNK_BYTES;
        const char *p = body;
        size_t best = 0;
        for (size_t i = KB_CHUNK_BYTES / 2; i + 1 < KB_CHUNK_BYTES; i++)
            if (p[i] == '\n' && p[i + 1] == '\n')
                best = i;
        if (best)
            cut = best;
        int rc = md_store(m, body, cut, part++);
        if (rc < 0)
            return rc;
        body += cut;
        n -= cut;
    }
    return md_store(m, body, n, part);
}

static void md_heading(struct md_ctx *m, const char *h, size_t n)
{
    while (n && (h[n - 1] == ' ' || h[n - 1] == '#'))
        n--;
    snprintf(m->heading, sizeof(m->heading), "%.*s", (int)n, h);
    char slug[96];
    slugify(h, n, slug, sizeof(slug));
    size_t i = 0;
    while (i < m->n_seen && strcmp(m->seen[i], slug) != 0)
        i++;
    if (i < m->n_seen) {
        snprintf(m->slug, sizeof(m->slug), "%.80s-%u", slug, ++m->seen_count[i]);
    } else {
        snprintf(m->slug, sizeof(m->slug), "%s", slug);
        if (m->n_seen < 64) {
            snprintf(m->seen[m->n_seen], sizeof(m->seen[0]), "%s", slug);
            m->seen_count[m->n_seen++] = 0;
        }
    }
    if (!m->doc_title[0])
        snprintf(m->doc_title, sizeof(m->doc_title), "%s", m->heading);
}

int kb_import_markdown(struct kb *kb, const char *name, const char *text, size_t len,
                       struct kb_import_stats *st, char *err, size_t err_len)
{
    struct md_ctx *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->kb = kb;
    m->name = name;
    const char *slash = strrchr(name, '/');
    m->base = slash ? slash + 1 : name;
    m->st = st;
    if (memchr(text, '\0', len)) {
        set_err(err, err_len, "%s: a NUL byte (not a text file)", name);
        free(m);
        return -EINVAL;
    }
    sqlite3_stmt *s = NULL;
    int rc = -EIO;
    if (sqlite3_prepare_v2(kb->db, "DELETE FROM entries WHERE source = ?1", -1, &s, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -EIO;
    }
    sqlite3_finalize(s);
    size_t pos = 0, body_start = 0;
    bool fence = false;
    while (rc == 0 && pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        size_t next = pos + n + (nl ? 1 : 0);
        if (n >= 3 && (strncmp(line, "```", 3) == 0 || strncmp(line, "~~~", 3) == 0))
            fence = !fence;
        size_t hashes = 0;
        while (!fence && hashes < n && hashes < 7 && line[hashes] == '#')
            hashes++;
        if (!fence && hashes >= 1 && hashes <= 6 && hashes < n && line[hashes] == ' ') {
            rc = md_section(m, text + body_start, pos - body_start);
            md_heading(m, line + hashes + 1, n - hashes - 1);
            body_start = next;
        }
        pos = next;
    }
    if (rc == 0)
        rc = md_section(m, text + body_start, len - body_start);
    if (rc < 0)
        set_err(err, err_len, "%s: database: %s", name, sqlite3_errmsg(kb->db));
    free(m);
    return rc;
}

int kb_import_file(struct kb *kb, const char *path, struct kb_import_stats *st, char *err,
                   size_t err_len)
{
    const char *dot = strrchr(path, '.');
    bool jsonl = dot && strcmp(dot, ".jsonl") == 0;
    bool md = dot && (strcmp(dot, ".md") == 0 || strcmp(dot, ".markdown") == 0);
    if (!jsonl && !md) {
        set_err(err, err_len, "%s: unknown format (the name must end in .jsonl, .md or .markdown)",
                path);
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, err_len, "%s: %s", path, strerror(errno));
        return -errno;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > KB_MAX_FILE) {
        set_err(err, err_len, "%s: not a regular file of at most %u MiB", path, KB_MAX_FILE >> 20);
        close(fd);
        return -EINVAL;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0) {
            set_err(err, err_len, "%s: %s", path, r < 0 ? strerror(errno) : "file shrank");
            free(buf);
            close(fd);
            return -EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    int rc = jsonl ? kb_import_jsonl(kb, path, buf, size, st, err, err_len)
                   : kb_import_markdown(kb, path, buf, size, st, err, err_len);
    free(buf);
    return rc;
}

/* ---- retrieval ---- */

static bool stopword(const char *w)
{
    static const char *const words[] = {
        "a",     "an",   "and",   "are",  "as",   "at",   "be",   "by",    "can",   "do",   "does",
        "for",   "from", "how",   "i",    "if",   "in",   "is",   "it",    "its",   "me",   "my",
        "of",    "on",   "or",    "so",   "that", "the",  "this", "to",    "what",  "when", "where",
        "which", "who",  "why",   "will", "with", "you",  "your", "there", "their", "was",  "get",
        "has",   "have", "about", "into", "than", "then", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcmp(w, words[i]) == 0)
            return true;
    return false;
}

/* Is a term in more than KB_COMMON_SHARE of a large base? Counts its matches up to that many. */
static bool common_term(struct kb *kb, const char *quoted)
{
    if (kb->n_entries < KB_COMMON_MIN)
        return false;
    long long limit = (long long)((double)kb->n_entries * KB_COMMON_SHARE) + 1;
    sqlite3_reset(kb->term_count);
    sqlite3_bind_text(kb->term_count, 1, quoted, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(kb->term_count, 2, limit);
    bool common = sqlite3_step(kb->term_count) == SQLITE_ROW &&
                  sqlite3_column_int64(kb->term_count, 0) >= limit;
    sqlite3_reset(kb->term_count);
    return common;
}

/* The FTS5 query for a question: its words, each quoted, joined with OR; stop words and terms
 * common in a large base left out (when all are common, the first one stays). */
static size_t fts_query(struct kb *kb, const char *q, char *out, size_t cap)
{
    char first_common[80] = "";
    size_t o = 0, terms = 0;
    out[0] = '\0';
    const unsigned char *p = (const unsigned char *)q;
    while (*p) {
        while (*p && !(isalnum(*p) || *p >= 0x80))
            p++;
        char w[64];
        size_t n = 0;
        while (*p && (isalnum(*p) || *p >= 0x80)) {
            if (n + 1 < sizeof(w))
                w[n++] = (char)tolower(*p);
            p++;
        }
        w[n] = '\0';
        if (n == 0 || stopword(w))
            continue;
        if (o + n + 8 >= cap)
            break;
        char quoted[80];
        snprintf(quoted, sizeof(quoted), "\"%s\"", w);
        if (common_term(kb, quoted)) {
            if (!first_common[0])
                snprintf(first_common, sizeof(first_common), "%s", quoted);
            continue;
        }
        o += (size_t)snprintf(out + o, cap - o, "%s%s", terms ? " OR " : "", quoted);
        terms++;
    }
    if (terms == 0 && first_common[0]) {
        snprintf(out, cap, "%s", first_common);
        terms = 1;
    }
    return terms;
}

struct candidate {
    long long id;
    double score;
    bool via_graph;
};

static struct candidate *find_or_add(struct candidate *c, size_t *n, size_t cap, long long id)
{
    for (size_t i = 0; i < *n; i++)
        if (c[i].id == id)
            return &c[i];
    if (*n == cap)
        return NULL;
    c[*n] = (struct candidate){id, 0, true};
    return &c[(*n)++];
}

/* Entities the question names: its word n-grams (1 to 4 words) looked up by name. */
static size_t question_entities(struct kb *kb, const char *q, long long *out, size_t cap)
{
    char words[32][64];
    size_t nw = 0;
    const char *p = q;
    while (*p && nw < 32) {
        while (*p && isspace((unsigned char)*p))
            p++;
        size_t n = 0;
        while (p[n] && !isspace((unsigned char)p[n]))
            n++;
        size_t a = 0, b = n; /* strip punctuation around a word, keep it inside (power_cap_w) */
        while (a < b && strchr("?!,.:;\"'`()[]", p[a]))
            a++;
        while (b > a && strchr("?!,.:;\"'`()[]", p[b - 1]))
            b--;
        if (b > a && b - a < 64)
            normalize_name(p + a, b - a, words[nw++], sizeof(words[0]));
        p += n;
    }
    /* Longest match first: "ember governor calibrate" names one thing, and its words alone
     * ("ember", "governor") would lift every entry that mentions them. */
    size_t found = 0;
    for (size_t i = 0; i < nw && found < cap;) {
        size_t took = 1;
        for (size_t k = nw - i < 4 ? nw - i : 4; k >= 1; k--) {
            char gram[256] = "";
            size_t len = 0;
            for (size_t j = 0; j < k; j++)
                len += (size_t)snprintf(gram + len, sizeof(gram) - len, "%s%s", j ? " " : "",
                                        words[i + j]);
            if (k == 1 && stopword(gram))
                break;
            sqlite3_reset(kb->entity_by_name);
            sqlite3_bind_text(kb->entity_by_name, 1, gram, -1, SQLITE_TRANSIENT);
            bool hit = sqlite3_step(kb->entity_by_name) == SQLITE_ROW;
            long long id = hit ? sqlite3_column_int64(kb->entity_by_name, 0) : 0;
            sqlite3_reset(kb->entity_by_name);
            if (!hit)
                continue;
            bool dup = false;
            for (size_t j = 0; j < found && !dup; j++)
                dup = out[j] == id;
            if (!dup)
                out[found++] = id;
            took = k;
            break;
        }
        i += took;
    }
    return found;
}

/* Lifts (or adds) every entry that mentions entity by bonus. */
static void lift_mentions(struct kb *kb, long long entity, double bonus, struct candidate *c,
                          size_t *n, size_t cap)
{
    sqlite3_reset(kb->mentioning);
    sqlite3_bind_int64(kb->mentioning, 1, entity);
    while (sqlite3_step(kb->mentioning) == SQLITE_ROW) {
        struct candidate *x = find_or_add(c, n, cap, sqlite3_column_int64(kb->mentioning, 0));
        if (!x)
            break;
        x->score += bonus;
        x->via_graph = true;
    }
    sqlite3_reset(kb->mentioning);
}

static int by_score(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : (x->id > y->id) - (x->id < y->id);
}

int kb_search(struct kb *kb, const char *query, size_t k, struct kb_hit *hits, size_t *ret_n)
{
    *ret_n = 0;
    if (k > KB_MAX_HITS)
        k = KB_MAX_HITS;
    char fts[2048];
    struct candidate c[KB_CANDIDATES + 64];
    size_t n = 0, cap = sizeof(c) / sizeof(c[0]);
    double top = 0;
    if (fts_query(kb, query, fts, sizeof(fts))) {
        sqlite3_reset(kb->search);
        sqlite3_bind_text(kb->search, 1, fts, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(kb->search, 2, KB_CANDIDATES);
        int rc;
        while ((rc = sqlite3_step(kb->search)) == SQLITE_ROW && n < KB_CANDIDATES) {
            c[n] = (struct candidate){sqlite3_column_int64(kb->search, 0),
                                      sqlite3_column_double(kb->search, 1), false};
            if (c[n].score > top)
                top = c[n].score;
            n++;
        }
        sqlite3_reset(kb->search);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return -EIO;
    }
    /* One hop over the graph: an entity the question names lifts the entries that mention
     * it; an entity related to it lifts its own, by less. Bonuses are fractions of the best
     * BM25 score so they re-rank without drowning the text match. */
    long long ents[16];
    size_t ne = question_entities(kb, query, ents, 16);
    double unit = top > 0 ? top : 1.0;
    for (size_t i = 0; i < ne; i++) {
        lift_mentions(kb, ents[i], 0.25 * unit, c, &n, cap);
        sqlite3_reset(kb->related);
        sqlite3_bind_int64(kb->related, 1, ents[i]);
        long long rel[16];
        size_t nr = 0;
        while (nr < 16 && sqlite3_step(kb->related) == SQLITE_ROW)
            rel[nr++] = sqlite3_column_int64(kb->related, 0);
        sqlite3_reset(kb->related);
        for (size_t r = 0; r < nr; r++)
            lift_mentions(kb, rel[r], 0.15 * unit, c, &n, cap);
    }
    qsort(c, n, sizeof(c[0]), by_score);
    size_t out = 0;
    for (size_t i = 0; i < n && out < k; i++) {
        sqlite3_reset(kb->entry_by_id);
        sqlite3_bind_int64(kb->entry_by_id, 1, c[i].id);
        if (sqlite3_step(kb->entry_by_id) == SQLITE_ROW) {
            /* one passage per section: its best part (a later "~N" part of a section already
             * chosen, or the section after its part, adds little the model has not got) */
            const char *key = (const char *)sqlite3_column_text(kb->entry_by_id, 0);
            size_t base = strcspn(key, "~");
            bool seen = false;
            for (size_t j = 0; j < out && !seen; j++)
                seen = strncmp(hits[j].key, key, base) == 0 &&
                       (hits[j].key[base] == '\0' || hits[j].key[base] == '~');
            if (seen) {
                sqlite3_reset(kb->entry_by_id);
                continue;
            }
            struct kb_hit *h = &hits[out];
            memset(h, 0, sizeof(*h));
            snprintf(h->key, sizeof(h->key), "%s",
                     (const char *)sqlite3_column_text(kb->entry_by_id, 0));
            snprintf(h->title, sizeof(h->title), "%s",
                     (const char *)sqlite3_column_text(kb->entry_by_id, 1));
            snprintf(h->kind, sizeof(h->kind), "%s",
                     (const char *)sqlite3_column_text(kb->entry_by_id, 2));
            h->body = strdup((const char *)sqlite3_column_text(kb->entry_by_id, 3));
            h->score = c[i].score;
            h->via_graph = c[i].via_graph;
            if (h->body)
                out++;
        }
        sqlite3_reset(kb->entry_by_id);
    }
    *ret_n = out;
    return 0;
}

void kb_hits_free(struct kb_hit *hits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(hits[i].body);
        hits[i].body = NULL;
    }
}

int kb_count(struct kb *kb, struct kb_counts *ret)
{
    static const char *const sql[] = {
        "SELECT count(*) FROM entries WHERE kind = 'doc'",
        "SELECT count(*) FROM entries WHERE kind = 'qa'",
        "SELECT count(*) FROM entities",
        "SELECT count(*) FROM relations",
        "SELECT count(*) FROM mentions",
    };
    long long *out[] = {&ret->docs, &ret->qa, &ret->entities, &ret->relations, &ret->mentions};
    for (size_t i = 0; i < 5; i++) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(kb->db, sql[i], -1, &s, NULL) != SQLITE_OK ||
            sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_finalize(s);
            return -EIO;
        }
        *out[i] = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    return 0;
}

bool kb_key_matches(const char *key, const char *expected)
{
    size_t n = strlen(expected);
    return strncmp(key, expected, n) == 0 && (key[n] == '\0' || key[n] == '~');
}
