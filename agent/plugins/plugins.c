/* Loading plugins and calling their hooks (see plugins.h and include/ember/plugin.h).
 *
 * Crash reports: each hook call records, in thread-local variables, which plugin and hook run on
 * this thread. A handler for the fatal signals reads them and, when the signal came from inside
 * a hook, writes one line naming the plugin, its file and the hook (write(2) only: async-signal
 * safe), then puts the previous disposition back and lets the signal take its course (the
 * faulting instruction runs again, or the signal is raised again), so the agent still dies the
 * way it would have, core dump and sanitizer report included. */
#include "plugins.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define MAX_PLUGINS 16
#define MAX_SOURCES 16

struct loaded_plugin {
    void *handle;
    const struct ember_plugin *desc;
    void *state;
    char path[CFG_STR_PATH + 64];
    /* STATE_DIR/plugin-crashed.NAME: written when it crashes, so the restarted agent does not
     * load it again (a plugin that crashes on every request would otherwise take the agent
     * down on every request) */
    char crash_marker[CFG_STR_PATH + 64];
};

struct agent_plugins {
    size_t n;
    struct loaded_plugin p[MAX_PLUGINS];
};

/* ---- the crash guard ---- */

static __thread const struct loaded_plugin *guard_plugin;
static __thread const char *guard_hook;
static __thread const char *guard_file; /* while loading: the file, before a name is known */

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction previous[sizeof(fatal_signals) / sizeof(fatal_signals[0])];
static bool guard_installed;

static size_t add_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (s && *s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGILL:
        return "SIGILL";
    case SIGFPE:
        return "SIGFPE";
    default:
        return "SIGABRT";
    }
}

static void on_fatal_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int saved_errno = errno;
    if (guard_hook) {
        char msg[1024];
        size_t n = 0;
        n = add_str(msg, n, sizeof(msg), "ember: fatal: plugin '");
        n = add_str(msg, n, sizeof(msg), guard_plugin ? guard_plugin->desc->name : "?");
        n = add_str(msg, n, sizeof(msg), "' (");
        n = add_str(msg, n, sizeof(msg), guard_plugin ? guard_plugin->path : guard_file);
        n = add_str(msg, n, sizeof(msg), ") crashed with ");
        n = add_str(msg, n, sizeof(msg), signal_name(sig));
        n = add_str(msg, n, sizeof(msg), " in its ");
        n = add_str(msg, n, sizeof(msg), guard_hook);
        n = add_str(msg, n, sizeof(msg),
                    " hook; the agent dies with it (systemd restarts it; the CPU frequency "
                    "settings are restored by the privileged helper or ExecStopPost)\n");
        if (guard_plugin && guard_plugin->crash_marker[0]) {
            n = add_str(msg, n - 1, sizeof(msg), "; it is not loaded again until ");
            n = add_str(msg, n, sizeof(msg), guard_plugin->crash_marker);
            n = add_str(msg, n, sizeof(msg), " is removed\n");
        }
        ssize_t w = write(STDERR_FILENO, msg, n);
        (void)w;
        if (guard_plugin && guard_plugin->crash_marker[0]) {
            int fd =
                open(guard_plugin->crash_marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd >= 0) {
                char why[128];
                size_t k = add_str(why, 0, sizeof(why), signal_name(sig));
                k = add_str(why, k, sizeof(why), " in ");
                k = add_str(why, k, sizeof(why), guard_hook);
                w = write(fd, why, k);
                close(fd);
            }
        }
    }
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        if (fatal_signals[i] == sig)
            sigaction(sig, &previous[i], NULL);
    /* A fault repeats when the instruction runs again; a sent or raised signal must be sent
     * again (abort() raises again by itself, once its handler returns). */
    if (si->si_code <= 0 && sig != SIGABRT)
        raise(sig);
    errno = saved_errno;
}

static void install_guard(void)
{
    if (guard_installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        sigaction(fatal_signals[i], &sa, &previous[i]);
    guard_installed = true;
}

#define GUARDED(pl, hook, call)                                  \
    do {                                                         \
        const struct loaded_plugin *outer_plugin = guard_plugin; \
        const char *outer_hook = guard_hook;                     \
        guard_plugin = (pl);                                     \
        guard_hook = (hook);                                     \
        call;                                                    \
        guard_plugin = outer_plugin;                             \
        guard_hook = outer_hook;                                 \
    } while (0)

/* ---- loading ---- */

static void plugin_log(int level, const char *name, const char *message)
{
    if (level < AGENT_LOG_ERR || level > AGENT_LOG_DEBUG)
        level = AGENT_LOG_INFO;
    agent_log((enum agent_log_level)level, "plugin %s: %s", name ? name : "?", message);
}

static bool valid_name(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n == 0 || n > 31)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return false;
    return true;
}

/* The plugin's [plugin.NAME] settings; where[] holds their "FILE:LINE" strings. */
static size_t plugin_settings(const struct agent_config *cfg, const char *name,
                              struct ember_plugin_setting *out, char (*where)[CFG_STR_PATH + 16])
{
    char section[CFG_STR_SMALL];
    snprintf(section, sizeof(section), "plugin.%s", name);
    size_t n = 0;
    for (size_t i = 0; i < cfg->plugins.n_settings; i++) {
        const struct cfg_plugin_setting *st = &cfg->plugins.settings[i];
        if (strcmp(st->section, section) != 0)
            continue;
        snprintf(where[n], sizeof(where[n]), "%s:%d", cfg->source, st->line);
        out[n] = (struct ember_plugin_setting){st->key, st->value, where[n]};
        n++;
    }
    return n;
}

/* Loads one file; on refusal logs why and leaves no trace. */
static void load_one(struct agent_plugins *ps, const struct agent_config *cfg, const char *path)
{
    struct loaded_plugin *pl = &ps->p[ps->n];
    memset(pl, 0, sizeof(*pl));
    snprintf(pl->path, sizeof(pl->path), "%s", path);
    char why[512] = "";
    struct stat st;
    if (ps->n == MAX_PLUGINS) {
        log_err("plugins: %s refused: more than %d plugins", path, MAX_PLUGINS);
        return;
    }
    if (stat(path, &st) < 0) {
        log_err("plugins: %s refused: %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
        /* whoever may write the file could run code as the agent */
        log_err("plugins: %s refused: %s", path,
                S_ISREG(st.st_mode) ? "writable by group or others (chmod go-w)"
                                    : "not a regular file");
        return;
    }
    install_guard();
    guard_file = path;
    GUARDED(NULL, "load (constructors)", pl->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL));
    if (!pl->handle) {
        const char *e = dlerror();
        log_err("plugins: %s refused: cannot load it: %s", path, e ? e : "unknown error");
        return;
    }
    pl->desc = dlsym(pl->handle, EMBER_PLUGIN_SYMBOL);
    const struct ember_plugin *d = pl->desc;
    if (!d)
        snprintf(why, sizeof(why),
                 "it exports no '%s' symbol (not an Ember plugin, or built without "
                 "exporting its descriptor)",
                 EMBER_PLUGIN_SYMBOL);
    else if (d->abi_version != EMBER_PLUGIN_ABI_VERSION)
        snprintf(why, sizeof(why),
                 "it was built for plugin ABI version %u, this agent speaks version %d (rebuild "
                 "it against this ember/plugin.h)",
                 d->abi_version, EMBER_PLUGIN_ABI_VERSION);
    else if (d->struct_size < sizeof(struct ember_plugin))
        snprintf(why, sizeof(why), "its descriptor is %u bytes, version %d needs %zu",
                 d->struct_size, EMBER_PLUGIN_ABI_VERSION, sizeof(struct ember_plugin));
    else if (!valid_name(d->name))
        snprintf(why, sizeof(why), "its name is missing or not [a-z0-9_-]{1,31}");
    else if (!d->init || !d->shutdown)
        snprintf(why, sizeof(why), "it has no %s function", d->init ? "shutdown" : "init");
    for (size_t i = 0; !why[0] && i < ps->n; i++)
        if (strcmp(ps->p[i].desc->name, d->name) == 0)
            snprintf(why, sizeof(why), "a plugin named '%s' is already loaded from %s", d->name,
                     ps->p[i].path);
    if (why[0]) {
        log_err("plugins: %s refused: %s", path, why);
        dlclose(pl->handle);
        return;
    }
    snprintf(pl->crash_marker, sizeof(pl->crash_marker), "%s/plugin-crashed.%s",
             cfg->agent.state_dir, d->name);
    char crashed[128] = "";
    int fd = open(pl->crash_marker, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, crashed, sizeof(crashed) - 1);
        crashed[r > 0 ? r : 0] = '\0';
        close(fd);
        log_err("plugins: %s (%s) refused: it crashed (%s) when it last ran; remove %s to load "
                "it again",
                path, d->name, crashed[0] ? crashed : "?", pl->crash_marker);
        dlclose(pl->handle);
        return;
    }
    struct ember_plugin_setting settings[CFG_PLUGIN_SETTINGS];
    static char where[CFG_PLUGIN_SETTINGS][CFG_STR_PATH + 16];
    char section[CFG_STR_SMALL];
    snprintf(section, sizeof(section), "plugin.%s", d->name);
    struct ember_plugin_config pc = {
        .name = d->name,
        .path = path,
        .section = section,
        .settings = settings,
        .n_settings = plugin_settings(cfg, d->name, settings, where),
        .state_dir = cfg->agent.state_dir,
        .log = plugin_log,
    };
    char err[512] = "";
    int rc;
    GUARDED(pl, "init", rc = d->init(&pc, &pl->state, err, sizeof(err)));
    guard_file = NULL;
    if (rc != 0) {
        log_err("plugins: %s (%s) refused: init failed: %s", path, d->name,
                err[0] ? err : strerror(rc < 0 ? -rc : EINVAL));
        dlclose(pl->handle);
        return;
    }
    char hooks[128];
    snprintf(hooks, sizeof(hooks), "%s%s%s%s", d->before_request ? " before_request" : "",
             d->on_token ? " on_token" : "", d->on_telemetry ? " on_telemetry" : "",
             d->on_governor_event ? " on_governor_event" : "");
    log_info("plugins: loaded %s %s from %s (hooks:%s)", d->name, d->version ? d->version : "",
             path, hooks[0] ? hooks : " none");
    ps->n++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int so_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 3 && strcmp(e->d_name + n - 3, ".so") == 0;
}

int agent_plugins_load(const struct agent_config *cfg, struct agent_plugins **ret)
{
    struct agent_plugins *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return -ENOMEM;
    *ret = ps;
    const char *dir = cfg->plugins.dir;
    if (!dir[0]) {
        if (cfg->plugins.n_settings)
            log_warn("plugins: [%s] is configured but [plugins] dir is empty: no plugin loads",
                     cfg->plugins.settings[0].section);
        return 0;
    }
    char path[CFG_STR_PATH + 64];
    if (cfg->plugins.enable[0]) {
        char list[CFG_STR_PATH];
        snprintf(list, sizeof(list), "%s", cfg->plugins.enable);
        char *save = NULL;
        for (char *name = strtok_r(list, " ,\t", &save); name;
             name = strtok_r(NULL, " ,\t", &save)) {
            if (strchr(name, '/')) {
                log_err("plugins: enable: '%s' refused: a name, not a path", name);
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s.so", dir, name);
            load_one(ps, cfg, path);
        }
    } else {
        struct dirent **names = NULL;
        int n = scandir(dir, &names, so_file, by_name);
        if (n < 0) {
            log_err("plugins: [plugins] dir %s: %s; no plugin loads", dir, strerror(errno));
            return 0;
        }
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
            load_one(ps, cfg, path);
            free(names[i]);
        }
        free(names);
    }
    for (size_t i = 0; i < cfg->plugins.n_settings; i++) {
        const char *sec = cfg->plugins.settings[i].section;
        bool used = false;
        for (size_t k = 0; k < ps->n && !used; k++)
            used = strcmp(sec + strlen("plugin."), ps->p[k].desc->name) == 0;
        if (!used && (i == 0 || strcmp(sec, cfg->plugins.settings[i - 1].section) != 0))
            log_warn("plugins: [%s] is configured but no plugin of that name loaded", sec);
    }
    log_info("plugins: %zu loaded from %s", ps->n, dir);
    return 0;
}

void agent_plugins_free(struct agent_plugins *ps)
{
    if (!ps)
        return;
    for (size_t i = ps->n; i-- > 0;) {
        struct loaded_plugin *pl = &ps->p[i];
        GUARDED(pl, "shutdown", pl->desc->shutdown(pl->state));
        /* Not dlclose'd: a plugin's threads or atexit handlers may still point into it, and
         * the process is about to end anyway. */
    }
    free(ps);
}

size_t agent_plugins_count(const struct agent_plugins *ps)
{
    return ps ? ps->n : 0;
}

const char *agent_plugins_name(const struct agent_plugins *ps, size_t i)
{
    return ps && i < ps->n ? ps->p[i].desc->name : NULL;
}

/* ---- hooks ---- */

struct request_ctx {
    struct ember_plugin_request pub;
    struct agent_request *req;
    const struct loaded_plugin *current;
    cJSON *sources;
    int n_sources;
};

static int svc_add_context(struct ember_plugin_request *r, const char *text)
{
    struct request_ctx *rc = r->agent;
    if (!text)
        return -EINVAL;
    struct agent_request *req = rc->req;
    size_t old = req->plugin_context ? strlen(req->plugin_context) : 0, add = strlen(text);
    char *p = realloc(req->plugin_context, old + add + 3);
    if (!p)
        return -ENOMEM;
    if (old)
        memcpy(p + old, "\n\n", 2), old += 2;
    memcpy(p + old, text, add + 1);
    req->plugin_context = p;
    return 0;
}

static int svc_add_source(struct ember_plugin_request *r, const char *id, const char *title,
                          double score)
{
    struct request_ctx *rc = r->agent;
    if (!id)
        return -EINVAL;
    if (rc->n_sources >= MAX_SOURCES)
        return -ENOSPC;
    if (!rc->sources && !(rc->sources = cJSON_CreateArray()))
        return -ENOMEM;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", id) ||
        !cJSON_AddStringToObject(o, "title", title ? title : "") ||
        !cJSON_AddStringToObject(o, "plugin", rc->current->desc->name) ||
        !cJSON_AddNumberToObject(o, "score", score == score ? score : 0)) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    cJSON_AddItemToArray(rc->sources, o);
    rc->n_sources++;
    return 0;
}

static int svc_answer(struct ember_plugin_request *r, const char *text)
{
    struct request_ctx *rc = r->agent;
    if (!text)
        return -EINVAL;
    if (rc->req->plugin_answer)
        return -EEXIST;
    rc->req->plugin_answer = strdup(text);
    return rc->req->plugin_answer ? 0 : -ENOMEM;
}

void agent_plugins_before_request(struct agent_plugins *ps, struct agent_request *req)
{
    if (!ps || !ps->n)
        return;
    struct ember_plugin_message msgs[AGENT_MAX_MESSAGES];
    const char *query = req->prompt;
    for (size_t i = 0; i < req->n_messages; i++) {
        msgs[i] = (struct ember_plugin_message){req->messages[i].role, req->messages[i].content};
        if (req->messages[i].role && strcmp(req->messages[i].role, "user") == 0)
            query = req->messages[i].content;
    }
    struct request_ctx rc = {
        .pub =
            {
                .struct_size = sizeof(struct ember_plugin_request),
                .is_chat = req->kind == AGENT_REQ_CHAT,
                .messages = msgs,
                .n_messages = req->n_messages,
                .prompt = req->kind == AGENT_REQ_COMPLETION ? req->prompt : NULL,
                .query = query ? query : "",
                .add_context = svc_add_context,
                .add_source = svc_add_source,
                .answer = svc_answer,
            },
        .req = req,
    };
    rc.pub.agent = &rc;
    for (size_t i = 0; i < ps->n && !req->plugin_answer; i++) {
        const struct loaded_plugin *pl = &ps->p[i];
        if (!pl->desc->before_request)
            continue;
        rc.current = pl;
        int r;
        GUARDED(pl, "before_request", r = pl->desc->before_request(pl->state, &rc.pub));
        if (r != 0)
            log_warn("plugin %s: before_request failed (%s); the request goes on", pl->desc->name,
                     strerror(r < 0 ? -r : EINVAL));
    }
    if (rc.sources) {
        req->plugin_sources = cJSON_PrintUnformatted(rc.sources);
        cJSON_Delete(rc.sources);
    }
    if (!req->plugin_answer && agent_request_apply_plugin_context(req) < 0)
        log_warn("plugins: out of memory adding context to a request; it goes on without");
}

int agent_request_apply_plugin_context(struct agent_request *req)
{
    if (!req->plugin_context || !req->plugin_context[0])
        return 0;
    char **target = &req->prompt;
    if (req->kind == AGENT_REQ_CHAT) {
        target = NULL;
        for (size_t i = req->n_messages; i-- > 0 && !target;)
            if (req->messages[i].role && strcmp(req->messages[i].role, "user") == 0)
                target = &req->messages[i].content;
        if (!target)
            return 0; /* nothing asked: nothing to put context before */
    }
    const char *old = *target ? *target : "";
    size_t a = strlen(req->plugin_context), b = strlen(old);
    char *text = malloc(a + b + 3);
    if (!text)
        return -ENOMEM;
    memcpy(text, req->plugin_context, a);
    memcpy(text + a, "\n\n", 2);
    memcpy(text + a + 2, old, b + 1);
    free(*target);
    *target = text;
    return 0;
}

void agent_plugins_token(struct agent_plugins *ps, const char *text, size_t len, uint64_t index)
{
    if (!ps)
        return;
    struct ember_plugin_token tok = {text, len, index};
    for (size_t i = 0; i < ps->n; i++) {
        const struct loaded_plugin *pl = &ps->p[i];
        if (pl->desc->on_token)
            GUARDED(pl, "on_token", pl->desc->on_token(pl->state, &tok));
    }
}

void agent_plugins_telemetry(struct agent_plugins *ps, const struct ember_plugin_telemetry *t)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        const struct loaded_plugin *pl = &ps->p[i];
        if (pl->desc->on_telemetry)
            GUARDED(pl, "on_telemetry", pl->desc->on_telemetry(pl->state, t));
    }
}

void agent_plugins_governor_event(struct agent_plugins *ps, const char *kind, const char *detail,
                                  uint64_t ts_ns)
{
    if (!ps)
        return;
    struct ember_plugin_governor_event ev = {kind, detail, ts_ns};
    for (size_t i = 0; i < ps->n; i++) {
        const struct loaded_plugin *pl = &ps->p[i];
        if (pl->desc->on_governor_event)
            GUARDED(pl, "on_governor_event", pl->desc->on_governor_event(pl->state, &ev));
    }
}
