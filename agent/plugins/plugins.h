/* The agent's side of the plugin ABI (include/ember/plugin.h): loads the shared objects of
 * [plugins] dir, refuses the ones that do not fit (each refusal logged once with the file and
 * the reason; the agent runs on), and calls the hooks of the ones that loaded. Every hook call
 * is guarded: a fatal signal inside it is reported with the plugin's name and the hook before
 * the process dies of it (see docs/plugins.md). */
#ifndef AGENT_PLUGINS_H
#define AGENT_PLUGINS_H

#include <stddef.h>
#include <stdint.h>

#include "ember/plugin.h"
#include "request.h"

struct agent_config;
struct agent_plugins;

/* Loads what cfg->plugins names. Never fails for a plugin's sake: refused plugins are logged
 * and skipped (*ret may hold none). -ENOMEM only. Call on the loop thread, after the privilege
 * drop and before any hook can run. */
int agent_plugins_load(const struct agent_config *cfg, struct agent_plugins **ret);
/* Shuts every plugin down (in reverse order), unloads them. NULL is fine. */
void agent_plugins_free(struct agent_plugins *p);

size_t agent_plugins_count(const struct agent_plugins *p);
/* The i-th loaded plugin's name (i < count). */
const char *agent_plugins_name(const struct agent_plugins *p, size_t i);

/* Engine worker thread: before_request of each plugin in order, until one answers. What they
 * add lands in req->plugin_context / plugin_answer / plugin_sources (freed with req). */
void agent_plugins_before_request(struct agent_plugins *p, struct agent_request *req);
/* Engine worker thread: one generated piece of text. */
void agent_plugins_token(struct agent_plugins *p, const char *text, size_t len, uint64_t index);
/* Loop thread. */
void agent_plugins_telemetry(struct agent_plugins *p, const struct ember_plugin_telemetry *t);
void agent_plugins_governor_event(struct agent_plugins *p, const char *kind, const char *detail,
                                  uint64_t ts_ns);

/* Puts the context the plugins added into the request's text (before the last user message,
 * or the prompt). 0 or -ENOMEM. */
int agent_request_apply_plugin_context(struct agent_request *req);

#endif
