/* The knowledge plugin: before each request, retrieves the best entries of a knowledge base
 * (kb.h: BM25 plus one hop over the entity graph) for the user's question, adds them to the
 * prompt as numbered passages the model may cite, and names them in the response's "sources".
 *
 * [plugin.knowledge]
 *   database = /usr/share/ember/knowledge/ember-docs.db   (built by `ember kb import`)
 *   top_k = 3                 passages per request (1..8)
 *   max_passage_bytes = 600   of each passage's text put in the prompt (64..8192)
 *
 * Threads: init/shutdown on the agent's loop thread, before_request on the engine worker; the
 * SQLite connection is only used by one of them at a time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember/plugin.h"
#include "kb.h"

struct kb_plugin {
    struct kb *kb;
    int top_k;
    int max_passage_bytes;
};

static int parse_int(const struct ember_plugin_setting *s, int lo, int hi, int *ret, char *err,
                     size_t err_len)
{
    char *end;
    long v = strtol(s->value, &end, 10);
    if (end == s->value || *end || v < lo || v > hi) {
        snprintf(err, err_len, "%s: [plugin.knowledge] %s: '%s' is not a whole number in %d..%d",
                 s->where, s->key, s->value, lo, hi);
        return -EINVAL;
    }
    *ret = (int)v;
    return 0;
}

static int kb_plugin_init(const struct ember_plugin_config *cfg, void **ret_state, char *err,
                          size_t err_len)
{
    struct kb_plugin *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->top_k = 3;
    p->max_passage_bytes = 600;
    char db[512];
    snprintf(db, sizeof(db), "%s/knowledge.db", cfg->state_dir ? cfg->state_dir : ".");
    int rc = 0;
    for (size_t i = 0; i < cfg->n_settings && rc == 0; i++) {
        const struct ember_plugin_setting *s = &cfg->settings[i];
        if (strcmp(s->key, "database") == 0)
            snprintf(db, sizeof(db), "%s", s->value);
        else if (strcmp(s->key, "top_k") == 0)
            rc = parse_int(s, 1, 8, &p->top_k, err, err_len);
        else if (strcmp(s->key, "max_passage_bytes") == 0)
            rc = parse_int(s, 64, 8192, &p->max_passage_bytes, err, err_len);
        else {
            snprintf(err, err_len,
                     "%s: [plugin.knowledge] %s: unknown key (known: database, top_k, "
                     "max_passage_bytes)",
                     s->where, s->key);
            rc = -EINVAL;
        }
    }
    if (rc == 0)
        rc = kb_open(db, true, &p->kb, err, err_len);
    if (rc < 0) {
        free(p);
        return rc;
    }
    struct kb_counts n = {0};
    if (kb_count(p->kb, &n) == 0 && cfg->log) {
        char msg[640];
        snprintf(msg, sizeof(msg),
                 "%s: %lld passages, %lld Q&A pairs, %lld entities, %lld relations", db, n.docs,
                 n.qa, n.entities, n.relations);
        cfg->log(6, cfg->name, msg);
    }
    *ret_state = p;
    return 0;
}

static void kb_plugin_shutdown(void *state)
{
    struct kb_plugin *p = state;
    if (!p)
        return;
    kb_close(p->kb);
    free(p);
}

/* Appends at most max bytes of s to buf, not cutting a UTF-8 sequence. */
static size_t append_clipped(char *buf, size_t at, size_t cap, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    if (at + n + 1 > cap)
        n = at + 1 < cap ? cap - at - 1 : 0;
    memcpy(buf + at, s, n);
    buf[at + n] = '\0';
    return at + n;
}

static int kb_plugin_before_request(void *state, struct ember_plugin_request *req)
{
    struct kb_plugin *p = state;
    if (!req->query || !req->query[0])
        return 0;
    struct kb_hit hits[8];
    size_t n = 0;
    int rc = kb_search(p->kb, req->query, (size_t)p->top_k, hits, &n);
    if (rc < 0 || n == 0)
        return rc;
    size_t cap = 256 + n * ((size_t)p->max_passage_bytes + KB_KEY_MAX + KB_TITLE_MAX + 32);
    char *ctx = malloc(cap);
    if (!ctx) {
        kb_hits_free(hits, n);
        return -ENOMEM;
    }
    size_t at = 0;
    at = append_clipped(ctx, at, cap,
                        "Answer from these reference passages and cite them by number, as [1].\n",
                        SIZE_MAX);
    for (size_t i = 0; i < n; i++) {
        char head[KB_KEY_MAX + KB_TITLE_MAX + 32];
        snprintf(head, sizeof(head), "\n[%zu] %s (%s)\n", i + 1, hits[i].title, hits[i].key);
        at = append_clipped(ctx, at, cap, head, SIZE_MAX);
        at = append_clipped(ctx, at, cap, hits[i].body, (size_t)p->max_passage_bytes);
        at = append_clipped(ctx, at, cap, "\n", SIZE_MAX);
        if (rc == 0)
            rc = req->add_source(req, hits[i].key, hits[i].title, hits[i].score);
    }
    if (rc == 0 || rc == -ENOSPC)
        rc = req->add_context(req, ctx);
    free(ctx);
    kb_hits_free(hits, n);
    return rc;
}

EMBER_PLUGIN_EXPORT const struct ember_plugin ember_plugin = {
    .abi_version = EMBER_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct ember_plugin),
    .name = "knowledge",
    .version = "1.0",
    .init = kb_plugin_init,
    .shutdown = kb_plugin_shutdown,
    .before_request = kb_plugin_before_request,
};
