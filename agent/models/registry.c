/* The model directory (see registry.h): a sorted list of entries rebuilt by each scan from the
 * files found, reusing the probe of every file whose identity, size and modification time are
 * unchanged. A scan builds the new list outside the lock and swaps it in, so a lookup never
 * waits for a header to be read. */
#include "registry.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define MAX_ALIASES 64
#define MAX_EXTRAS  4
#define MAX_MODELS  4096
#define MAX_DEPTH   16

struct alias {
    char name[AGENT_MODEL_ID_MAX];
    char id[AGENT_MODEL_ID_MAX];
};

/* An entry and what tells whether its file changed since it was probed. */
struct item {
    struct agent_model_entry e;
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns;
};

struct extra {
    char path[AGENT_MODEL_PATH_MAX];
    char id[AGENT_MODEL_ID_MAX];
};

struct agent_models {
    pthread_mutex_t mu; /* items, n_items, file_aliases */
    char dir[AGENT_MODEL_PATH_MAX];
    struct alias aliases[MAX_ALIASES]; /* from the configuration (immutable) */
    size_t n_aliases;
    struct extra extras[MAX_EXTRAS]; /* files outside the directory */
    size_t n_extras;
    struct item *items;
    size_t n_items;
    /* extras that turned out to be in the directory: their configured id as an alias */
    struct alias file_aliases[MAX_EXTRAS];
    size_t n_file_aliases;
};

static bool alias_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:/-", *s))
            return false;
    return true;
}

static int parse_aliases(struct agent_models *m, const char *text, char *err, size_t err_len)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " ,\t");
        char tok[2 * AGENT_MODEL_ID_MAX + 2];
        if (n >= sizeof(tok)) {
            snprintf(err, err_len, "[models] aliases: '%.40s...' is too long", p);
            return -EINVAL;
        }
        memcpy(tok, p, n);
        tok[n] = '\0';
        p += n;
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1]) {
            snprintf(err, err_len, "[models] aliases: '%s' is not NAME=ID", tok);
            return -EINVAL;
        }
        *eq = '\0';
        if (!alias_name_ok(tok) || strlen(tok) >= AGENT_MODEL_ID_MAX ||
            strlen(eq + 1) >= AGENT_MODEL_ID_MAX) {
            snprintf(err, err_len,
                     "[models] aliases: '%s': a name is 1..127 of A-Z a-z 0-9 . _ : / -", tok);
            return -EINVAL;
        }
        if (m->n_aliases == MAX_ALIASES) {
            snprintf(err, err_len, "[models] aliases: more than %d", MAX_ALIASES);
            return -EINVAL;
        }
        for (size_t i = 0; i < m->n_aliases; i++)
            if (strcmp(m->aliases[i].name, tok) == 0) {
                snprintf(err, err_len, "[models] aliases: '%s' is named twice", tok);
                return -EINVAL;
            }
        struct alias *a = &m->aliases[m->n_aliases++];
        snprintf(a->name, sizeof(a->name), "%s", tok);
        snprintf(a->id, sizeof(a->id), "%s", eq + 1);
    }
    return 0;
}

int agent_models_new(const char *dir, const char *aliases, struct agent_models **ret, char *err,
                     size_t err_len)
{
    *ret = NULL;
    struct agent_models *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    size_t n = strlen(dir ? dir : "");
    while (n > 1 && dir[n - 1] == '/')
        n--; /* "models/" and "models" name the same ids */
    if (n >= sizeof(m->dir)) {
        snprintf(err, err_len, "[models] dir: path too long");
        agent_models_free(m);
        return -ENAMETOOLONG;
    }
    if (n)
        memcpy(m->dir, dir, n);
    int rc = parse_aliases(m, aliases ? aliases : "", err, err_len);
    if (rc < 0) {
        agent_models_free(m);
        return rc;
    }
    *ret = m;
    return 0;
}

void agent_models_free(struct agent_models *m)
{
    if (!m)
        return;
    free(m->items);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int agent_models_add_file(struct agent_models *m, const char *path, const char *id)
{
    if (m->n_extras == MAX_EXTRAS)
        return -ENOSPC;
    if (strlen(path) >= AGENT_MODEL_PATH_MAX || strlen(id) >= AGENT_MODEL_ID_MAX || !id[0])
        return -EINVAL;
    struct extra *x = &m->extras[m->n_extras++];
    snprintf(x->path, sizeof(x->path), "%s", path);
    snprintf(x->id, sizeof(x->id), "%s", id);
    return 0;
}

const char *agent_models_dir(const struct agent_models *m)
{
    return m->dir;
}

void agent_models_id_from_rel(const char *rel, char *id, size_t id_len)
{
    size_t n = strlen(rel);
    if (n > 5 && strcasecmp(rel + n - 5, ".gguf") == 0)
        n -= 5;
    snprintf(id, id_len, "%.*s", (int)n, rel);
}

static bool is_gguf_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && strcasecmp(name + n - 5, ".gguf") == 0;
}

/* ---- a scan ---- */

struct scan {
    const struct item *old; /* the previous list, to reuse unchanged probes */
    size_t n_old;
    struct item *v;
    size_t n, cap;
};

static const struct item *find_old(const struct scan *s, const char *path, const struct stat *st)
{
    for (size_t i = 0; i < s->n_old; i++) {
        const struct item *it = &s->old[i];
        if (strcmp(it->e.path, path) == 0 && it->dev == st->st_dev && it->ino == st->st_ino &&
            it->e.file_bytes == (uint64_t)st->st_size &&
            it->mtime_ns == (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec)
            return it;
    }
    return NULL;
}

static int add_item(struct scan *s, const char *path, const char *id, const struct stat *st,
                    bool outside)
{
    if (s->n == MAX_MODELS)
        return 0; /* more files than anyone serves; the rest are not listed */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct item *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    struct item *it = &s->v[s->n];
    const struct item *old = find_old(s, path, st);
    if (old) {
        *it = *old;
    } else {
        memset(it, 0, sizeof(*it));
        snprintf(it->e.path, sizeof(it->e.path), "%s", path);
        it->dev = st->st_dev;
        it->ino = st->st_ino;
        it->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
        it->e.file_bytes = (uint64_t)st->st_size;
        it->e.mtime_s = (int64_t)st->st_mtim.tv_sec;
        if (strlen(id) >= AGENT_MODEL_ID_MAX) {
            snprintf(it->e.error, sizeof(it->e.error), "%s: the name is longer than %d bytes", path,
                     AGENT_MODEL_ID_MAX - 1);
        } else {
            int rc = eng_model_probe(path, &it->e.info, it->e.error, sizeof(it->e.error));
            it->e.ok = rc == 0;
            if (rc < 0 && !it->e.error[0])
                snprintf(it->e.error, sizeof(it->e.error), "%s: %s", path, strerror(-rc));
        }
    }
    snprintf(it->e.id, sizeof(it->e.id), "%.*s", AGENT_MODEL_ID_MAX - 1, id);
    it->e.outside = outside;
    it->e.engine = outside;
    s->n++;
    return 0;
}

/* Walks dir/rel (rel "" at the top), adding every *.gguf file. */
static int walk(struct scan *s, const char *top, const char *rel, int depth)
{
    char path[AGENT_MODEL_PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s%s%s", top, rel[0] ? "/" : "", rel);
    if (n < 0 || (size_t)n >= sizeof(path))
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return depth == 0 ? -errno : 0; /* an unreadable subdirectory is skipped */
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue; /* ., .., hidden files (partial downloads) and hidden directories */
        char sub[AGENT_MODEL_PATH_MAX], file[AGENT_MODEL_PATH_MAX];
        int a = snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        int b = snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
        if (a < 0 || (size_t)a >= sizeof(sub) || b < 0 || (size_t)b >= sizeof(file))
            continue;
        struct stat st;
        if (lstat(file, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH)
                rc = walk(s, top, sub, depth + 1);
            continue;
        }
        /* a link to a file counts (models shared between directories); links to directories
         * are not followed, so no loop can form */
        if (S_ISLNK(st.st_mode) && stat(file, &st) < 0)
            continue;
        if (!S_ISREG(st.st_mode) || !is_gguf_name(de->d_name))
            continue;
        char id[AGENT_MODEL_PATH_MAX];
        agent_models_id_from_rel(sub, id, sizeof(id));
        rc = add_item(s, file, id, &st, false);
    }
    closedir(d);
    return rc;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct item *)a)->e.id, ((const struct item *)b)->e.id);
}

int agent_models_scan(struct agent_models *m, char *err, size_t err_len)
{
    struct scan s = {0};
    pthread_mutex_lock(&m->mu);
    s.n_old = m->n_items;
    s.old = NULL;
    struct item *old = s.n_old ? malloc(s.n_old * sizeof(*old)) : NULL;
    if (old)
        memcpy(old, m->items, s.n_old * sizeof(*old));
    else
        s.n_old = 0;
    pthread_mutex_unlock(&m->mu);
    s.old = old;

    int rc = 0, dir_rc = 0;
    if (m->dir[0]) {
        dir_rc = walk(&s, m->dir, "", 0);
        if (dir_rc == -ENOMEM) {
            rc = dir_rc;
            goto out;
        }
        if (dir_rc < 0)
            snprintf(err, err_len, "[models] dir %s: %s", m->dir, strerror(-dir_rc));
    }
    struct alias file_aliases[MAX_EXTRAS] = {0};
    size_t n_file_aliases = 0;
    for (size_t i = 0; i < m->n_extras; i++) {
        const struct extra *x = &m->extras[i];
        struct stat st;
        bool in_dir = false;
        if (stat(x->path, &st) == 0) {
            for (size_t j = 0; j < s.n && !in_dir; j++) {
                struct item *it = &s.v[j];
                if (it->dev != st.st_dev || it->ino != st.st_ino || it->e.outside)
                    continue;
                /* the [engine] model lies in the directory: one entry, under the id it is
                 * served as, its directory name an alias */
                in_dir = true;
                it->e.engine = true;
                if (strcmp(it->e.id, x->id) != 0) {
                    struct alias *a = &file_aliases[n_file_aliases++];
                    snprintf(a->name, sizeof(a->name), "%s", it->e.id);
                    snprintf(a->id, sizeof(a->id), "%s", x->id);
                    snprintf(it->e.id, sizeof(it->e.id), "%s", x->id);
                }
            }
        } else {
            memset(&st, 0, sizeof(st));
        }
        /* another file the directory names like the [engine] model: the configuration wins */
        for (size_t j = 0; j < s.n; j++)
            if (strcmp(s.v[j].e.id, x->id) == 0 && !(in_dir && s.v[j].e.engine)) {
                s.v[j] = s.v[--s.n];
                break;
            }
        if (in_dir)
            continue;
        rc = add_item(&s, x->path, x->id, &st, true);
        if (rc < 0)
            goto out;
        if (st.st_ino == 0 && s.n) { /* it does not exist: say so as the loader would */
            struct item *it = &s.v[s.n - 1];
            it->e.ok = false;
            snprintf(it->e.error, sizeof(it->e.error), "%s: %s", x->path, strerror(ENOENT));
        }
    }
    if (s.n)
        qsort(s.v, s.n, sizeof(*s.v), by_id);
    pthread_mutex_lock(&m->mu);
    free(m->items);
    m->items = s.v;
    m->n_items = s.n;
    memcpy(m->file_aliases, file_aliases, n_file_aliases * sizeof(file_aliases[0]));
    m->n_file_aliases = n_file_aliases;
    pthread_mutex_unlock(&m->mu);
    s.v = NULL;
    rc = dir_rc;
out:
    free(s.v);
    free(old);
    return rc;
}

size_t agent_models_count(struct agent_models *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->n_items;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int agent_models_get(struct agent_models *m, size_t i, struct agent_model_entry *ret)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&m->mu);
    if (i < m->n_items) {
        *ret = m->items[i].e;
        rc = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Locked. */
static const struct item *find_id(const struct agent_models *m, const char *id)
{
    size_t lo = 0, hi = m->n_items;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->items[mid].e.id, id);
        if (c == 0)
            return &m->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int agent_models_find(struct agent_models *m, const char *name, struct agent_model_entry *ret)
{
    pthread_mutex_lock(&m->mu);
    const struct item *it = find_id(m, name);
    for (size_t i = 0; !it && i < m->n_file_aliases; i++)
        if (strcmp(m->file_aliases[i].name, name) == 0)
            it = find_id(m, m->file_aliases[i].id);
    for (size_t i = 0; !it && i < m->n_aliases; i++)
        if (strcmp(m->aliases[i].name, name) == 0)
            it = find_id(m, m->aliases[i].id);
    if (it)
        *ret = it->e;
    pthread_mutex_unlock(&m->mu);
    return it ? 0 : -ENOENT;
}

void agent_models_aliases_of(struct agent_models *m, const char *id, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < 2; k++) {
        const struct alias *a = k ? m->aliases : m->file_aliases;
        size_t n = k ? m->n_aliases : m->n_file_aliases;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(a[i].id, id) != 0 || used >= len)
                continue;
            int w = snprintf(buf + used, len - used, "%s%s", used ? " " : "", a[i].name);
            if (w > 0)
                used += (size_t)w;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---- from the configuration ---- */

void agent_models_engine_id(const struct agent_config *cfg, char *id, size_t id_len)
{
    if (cfg->api.model_name[0]) {
        snprintf(id, id_len, "%s", cfg->api.model_name);
        return;
    }
    const char *base = strrchr(cfg->engine.model, '/');
    agent_models_id_from_rel(base ? base + 1 : cfg->engine.model, id, id_len);
}

int agent_models_open_config(const struct agent_config *cfg, struct agent_models **ret, char *err,
                             size_t err_len)
{
    struct agent_models *m;
    int rc = agent_models_new(cfg->models.dir, cfg->models.aliases, &m, err, err_len);
    if (rc < 0)
        return rc;
    if (cfg->engine.model[0]) {
        char id[AGENT_MODEL_ID_MAX];
        agent_models_engine_id(cfg, id, sizeof(id));
        rc = agent_models_add_file(m, cfg->engine.model, id);
        if (rc < 0) {
            snprintf(err, err_len, "[engine] model %s: %s", cfg->engine.model, strerror(-rc));
            agent_models_free(m);
            return rc;
        }
    }
    rc = agent_models_scan(m, err, err_len);
    if (rc == -ENOENT)
        rc = 0;
    if (rc < 0) {
        agent_models_free(m);
        return rc;
    }
    *ret = m;
    return 0;
}
