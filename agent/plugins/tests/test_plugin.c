/* Plugins for the loader's tests, one source built once per variant (plugins.cmake):
 *   PROBE      "probe": every hook; writes what it sees to [plugin.probe] log; answers "!ping"
 *              directly with "pong", adds a context and a source to any other request; with
 *              crash = HOOK it crashes (a real SIGSEGV: a store to a PROT_NONE page) in HOOK
 *   WRONG_ABI  built for ABI version EMBER_PLUGIN_ABI_VERSION + 1
 *   NO_SYMBOL  exports its descriptor under another name
 *   INIT_FAILS init refuses with a message */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ember/plugin.h"

struct probe {
    FILE *log;
    char crash[32];
    unsigned long long tokens;
};

static void crash_if(struct probe *p, const char *hook)
{
    if (strcmp(p->crash, hook) != 0)
        return;
    fprintf(p->log, "crashing in %s\n", hook);
    fflush(p->log);
    volatile char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[0] = 1; /* SIGSEGV: the page may not be written */
}

static int probe_init(const struct ember_plugin_config *cfg, void **ret, char *err, size_t len)
{
#ifdef INIT_FAILS
    (void)cfg;
    (void)ret;
    snprintf(err, len, "the probe needs a widget that is not there");
    return -ENODEV;
#else
    struct probe *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    const char *log = NULL;
    for (size_t i = 0; i < cfg->n_settings; i++) {
        const struct ember_plugin_setting *s = &cfg->settings[i];
        if (strcmp(s->key, "log") == 0)
            log = s->value;
        else if (strcmp(s->key, "crash") == 0)
            snprintf(p->crash, sizeof(p->crash), "%s", s->value);
        else {
            snprintf(err, len, "%s: unknown key %s", s->where, s->key);
            free(p);
            return -EINVAL;
        }
    }
    p->log = fopen(log ? log : "/dev/null", "a");
    if (!p->log) {
        snprintf(err, len, "log: %s", strerror(errno));
        free(p);
        return -EIO;
    }
    setvbuf(p->log, NULL, _IOLBF, 0);
    fprintf(p->log, "init %s %s uid=%u\n", cfg->name, cfg->section, (unsigned)geteuid());
    crash_if(p, "init");
    *ret = p;
    return 0;
#endif
}

static void probe_shutdown(void *state)
{
    struct probe *p = state;
    fprintf(p->log, "shutdown tokens=%llu\n", p->tokens);
    fclose(p->log);
    free(p);
}

static int probe_before_request(void *state, struct ember_plugin_request *req)
{
    struct probe *p = state;
    fprintf(p->log, "before_request chat=%d n=%zu query=%s\n", req->is_chat, req->n_messages,
            req->query);
    crash_if(p, "before_request");
    if (strncmp(req->query, "!ping", 5) == 0)
        return req->answer(req, "pong");
    int rc = req->add_context(req, "PROBE CONTEXT");
    if (rc == 0)
        rc = req->add_source(req, "probe:1", "The \"probe\" entry", 1.5);
    return rc;
}

static void probe_token(void *state, const struct ember_plugin_token *tok)
{
    struct probe *p = state;
    p->tokens++;
    if (tok->index == 0)
        fprintf(p->log, "token first\n");
    crash_if(p, "on_token");
}

static void probe_telemetry(void *state, const struct ember_plugin_telemetry *t)
{
    struct probe *p = state;
    if (t->kind == EMBER_PLUGIN_SESSION)
        fprintf(p->log, "session prompt=%llu gen=%llu\n", (unsigned long long)t->prompt_tokens,
                (unsigned long long)t->gen_tokens);
    else
        fprintf(p->log, "sample phase=%s\n", t->phase);
    crash_if(p, "on_telemetry");
}

static void probe_governor(void *state, const struct ember_plugin_governor_event *ev)
{
    struct probe *p = state;
    fprintf(p->log, "governor %s: %s\n", ev->kind, ev->detail);
    crash_if(p, "on_governor_event");
}

#ifdef NO_SYMBOL
#define DESCRIPTOR ember_plugin_v0
#else
#define DESCRIPTOR ember_plugin
#endif
#ifdef WRONG_ABI
#define ABI (EMBER_PLUGIN_ABI_VERSION + 1)
#else
#define ABI EMBER_PLUGIN_ABI_VERSION
#endif
#ifndef PLUGIN_NAME
#define PLUGIN_NAME "probe"
#endif

EMBER_PLUGIN_EXPORT const struct ember_plugin DESCRIPTOR = {
    .abi_version = ABI,
    .struct_size = sizeof(struct ember_plugin),
    .name = PLUGIN_NAME,
    .version = "test",
    .init = probe_init,
    .shutdown = probe_shutdown,
    .before_request = probe_before_request,
    .on_token = probe_token,
    .on_telemetry = probe_telemetry,
    .on_governor_event = probe_governor,
};
