/* Ember's plugin ABI: what a shared object loaded by `ember agent` from `[plugins] dir` exports,
 * and what the agent hands it. Installed as <ember/plugin.h>; a plugin needs nothing else of
 * Ember (no symbols of the ember binary: every service the agent offers is a function pointer
 * in the structs below), so it builds with `cc -shared -fPIC -I/usr/include plugin.c`.
 *
 * A plugin exports exactly one symbol, EMBER_PLUGIN_SYMBOL ("ember_plugin"), a
 * `const struct ember_plugin` whose abi_version is EMBER_PLUGIN_ABI_VERSION. The agent refuses
 * (and runs on without) a plugin whose symbol is missing, whose ABI version differs, whose
 * struct_size is smaller than this version's, whose name is missing or taken, or whose init
 * fails; the log names the file and the reason.
 *
 * Threads (docs/plugins.md says more):
 *   init, shutdown                 the loop thread, before the API opens / after it has closed
 *   before_request, on_token       the engine worker thread, inside the request: time spent here
 *                                  is the client's latency (on_token: per generated token)
 *   on_telemetry, on_governor_event  the loop thread, which also ticks the governor every 100 ms
 * No hook runs concurrently with itself; hooks of different threads can run at the same time, so
 * a plugin that shares state between, say, before_request and on_telemetry locks it itself.
 * Hooks must not block for long and must not call exit(), fork() or change signal dispositions.
 * A fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) inside a hook is reported on stderr
 * (the journal) with the plugin's name and the hook, then the agent dies of that signal: a
 * plugin runs in the agent's address space and a crash cannot be contained. The agent notes the
 * crash in STATE_DIR/plugin-crashed.NAME and, restarted, refuses the plugin while that file
 * exists.
 *
 * Memory: every pointer the agent passes is valid only during the call; copy what you keep.
 * Strings a plugin passes to the agent's services are copied by the agent. */
#ifndef EMBER_PLUGIN_H
#define EMBER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the descriptor exported when a plugin builds with -fvisibility=hidden. */
#define EMBER_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Bumped on any incompatible change; plugins built for another version are refused. */
#define EMBER_PLUGIN_ABI_VERSION 1
/* The name of the one exported descriptor. */
#define EMBER_PLUGIN_SYMBOL "ember_plugin"

/* One `key = value` line of the plugin's own configuration section, `[plugin.NAME]`. */
struct ember_plugin_setting {
    const char *key;
    const char *value;
    const char *where; /* "FILE:LINE", for the plugin's error messages */
};

struct ember_plugin_config {
    const char *name;    /* the plugin's name (its descriptor's) */
    const char *path;    /* the shared object's file */
    const char *section; /* "plugin.NAME" */
    const struct ember_plugin_setting *settings;
    size_t n_settings;
    const char *state_dir; /* [agent] state_dir: where a plugin may keep data (writable) */
    /* Log a line through the agent's log (journal), prefixed with the plugin's name. level:
     * 3 error, 4 warning, 5 notice, 6 info, 7 debug (syslog's numbers). Any thread. */
    void (*log)(int level, const char *name, const char *message);
};

/* A chat message or completion prompt, as the client sent it. */
struct ember_plugin_message {
    const char *role; /* "system", "user", "assistant", "tool" */
    const char *content;
};

/* The request a before_request hook sees, and the services it may use on it. */
struct ember_plugin_request {
    uint32_t struct_size;
    int is_chat; /* 1: messages; 0: a completion's prompt */
    const struct ember_plugin_message *messages;
    size_t n_messages;
    const char *prompt; /* completions; NULL for chats */
    /* The text the plugin should act on: the last user message of a chat, or the prompt. */
    const char *query;

    /* Adds text the model should read before the question (retrieved passages, with their
     * citations). Chats: put before the last user message's text; completions: before the
     * prompt. Several calls add in order. 0 or -errno. */
    int (*add_context)(struct ember_plugin_request *r, const char *text);
    /* Names an entry the context (or answer) came from: listed in the response's "sources"
     * array beside "usage" ({"id","title","plugin","score"}). At most 16 per request. */
    int (*add_source)(struct ember_plugin_request *r, const char *id, const char *title,
                      double score);
    /* Answers the request directly: the text is the reply, the model does not run (usage
     * counts are 0). The first plugin that answers wins; later before_request hooks are not
     * called. */
    int (*answer)(struct ember_plugin_request *r, const char *text);
    void *agent; /* the agent's; do not touch */
};

/* One piece of generated text (usually one token), as streamed to the client. */
struct ember_plugin_token {
    const char *text; /* not NUL-terminated */
    size_t len;
    uint64_t index; /* pieces of this request so far, from 0 */
};

enum ember_plugin_telemetry_kind {
    EMBER_PLUGIN_SAMPLE = 1,  /* a periodic power sample ([telemetry] sample_interval_ms) */
    EMBER_PLUGIN_SESSION = 2, /* a finished request */
};

/* A telemetry record. Unknown values are NaN. */
struct ember_plugin_telemetry {
    enum ember_plugin_telemetry_kind kind;
    uint64_t ts_ns; /* wall clock: the sample's time, or the request's start */
    const char *policy;
    /* EMBER_PLUGIN_SAMPLE */
    double power_w, energy_j, temp_c, util, tokens_per_s;
    const char *phase; /* "idle", "prefill", "decode" */
    /* EMBER_PLUGIN_SESSION */
    uint64_t prompt_tokens, gen_tokens;
    double ttft_ms, duration_ms, session_energy_j, j_per_token;
};

struct ember_plugin_governor_event {
    const char *kind;   /* the governor's event kind: "policy_changed", "safe_state", ... */
    const char *detail; /* words */
    uint64_t ts_ns;     /* wall clock */
};

struct ember_plugin {
    uint32_t abi_version; /* EMBER_PLUGIN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct ember_plugin) */
    const char *name;     /* [a-z0-9_-], at most 31: its section is [plugin.NAME] */
    const char *version;  /* free text, for the log */

    /* Required. 0 with *ret_state set (any pointer, handed to every hook), or -errno after
     * writing why into err (the agent logs it and refuses the plugin). Unknown keys in its
     * section should fail here, naming cfg->settings[i].where. */
    int (*init)(const struct ember_plugin_config *cfg, void **ret_state, char *err, size_t err_len);
    /* Required. Frees what init made; no hook runs after it. */
    void (*shutdown)(void *state);

    /* Optional hooks (NULL: not called). A nonzero return from before_request is logged; the
     * request goes on without what the hook did not finish. */
    int (*before_request)(void *state, struct ember_plugin_request *req);
    void (*on_token)(void *state, const struct ember_plugin_token *tok);
    void (*on_telemetry)(void *state, const struct ember_plugin_telemetry *t);
    void (*on_governor_event)(void *state, const struct ember_plugin_governor_event *ev);
};

#ifdef __cplusplus
}
#endif

#endif
