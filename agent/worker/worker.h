/* The engine worker: one thread that owns the model context and runs queued requests one at a
 * time, streaming text through each request's sink. The queue is bounded (api.queue_depth);
 * submitting to a full queue fails with -EBUSY (HTTP 429). Phase changes and finished requests
 * are reported through hooks so the agent can steer the governor and record sessions. */
#ifndef AGENT_WORKER_H
#define AGENT_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

struct agent_worker;
struct eng_model;
struct agent_config;

enum agent_phase {
    AGENT_PHASE_IDLE,
    AGENT_PHASE_PREFILL,
    AGENT_PHASE_DECODE,
    AGENT_PHASE_LOADING, /* reading a model file (I/O-bound: the governor treats it as idle) */
};

struct agent_worker_hooks {
    /* The engine changed phase (called on the worker thread; keep it quick). */
    void (*phase)(void *user, enum agent_phase phase);
    /* Energy counter in joules at time now_ns (monotonic), for per-request energy. */
    double (*energy_j)(void *user, uint64_t now_ns);
    /* Governor policy name in force now (copied into results). */
    void (*policy)(void *user, char *buf, size_t len);
    /* Before a request runs (plugins): may add context to its text, sources, or an answer
     * (req->plugin_answer: sent as the reply, the engine does not run). */
    void (*before_request)(void *user, struct agent_request *req);
    /* A piece of generated text, as the client gets it (plugins' per-token hook). */
    void (*text)(void *user, const char *text, size_t len, uint64_t index);
    /* A request finished (after its sink's on_done): sessions for telemetry. */
    void (*request_done)(void *user, const struct agent_result *result);
    /* A model was loaded ("load"), unloaded after its keep-alive ("unload"), unloaded for room
     * ("evict") or failed to load ("load_failed"); detail says how long, how big or why. May be
     * NULL. Worker thread. */
    void (*model_event)(void *user, const char *kind, const char *id, const char *detail);
    void *user;
};

/* model is the [engine] model (may be NULL), borrowed and never unloaded. Requests that name
 * another model (agent_request.model_id and model_path) have it loaded on first use, within
 * [models] max_loaded_bytes (least recently used models are unloaded first), and unloaded after
 * their keep-alive; a request that names none and finds no [engine] model fails with -ENODEV.
 * The worker reads sampling defaults and limits from cfg at submit time
 * (agent_worker_set_config swaps them). */
int agent_worker_new(const struct eng_model *model, const struct agent_config *cfg,
                     const struct agent_worker_hooks *hooks, struct agent_worker **ret, char *err,
                     size_t err_len);
/* Cancels what is queued, lets the running request finish for up to timeout_ms, then cancels
 * it, joins the thread and frees. NULL is fine. */
void agent_worker_free(struct agent_worker *w, int timeout_ms);

/* Queues a request. 0: queued (its sink will be called); -EBUSY: queue full; -ESHUTDOWN:
 * stopping; -ENODEV: no model. On error the caller still owns req. */
int agent_worker_submit(struct agent_worker *w, struct agent_request *req);

/* Applies live settings (sampling defaults, queue depth) from a reloaded config. */
void agent_worker_set_config(struct agent_worker *w, const struct agent_config *cfg);

struct agent_worker_stats {
    size_t queue_depth;                 /* waiting, not counting the running one */
    int busy;                           /* a request is running */
    uint64_t requests;                  /* finished so far */
    uint64_t prompt_tokens, gen_tokens; /* of finished requests */
    enum agent_phase phase;
    uint64_t live_gen_tokens;           /* generated so far, running request included */
    uint64_t loads, unloads, evictions; /* models loaded on demand, unloaded, evicted */
    size_t n_loaded;                    /* models loaded now */
    uint64_t loaded_bytes;              /* their memory as counted against the budget */
    /* the running (else last run) model's kernel threads: taking part now, its ceiling
     * ([engine] threads), the CPUs they are pinned to (0 = none); 0 threads before any model;
     * why the last thread-lever request was refused ("" when it was not) */
    uint32_t engine_threads, engine_max_threads;
    uint64_t engine_cpus;
    char threads_error[160];
};
void agent_worker_stats(struct agent_worker *w, struct agent_worker_stats *ret);

/* The thread lever: from the next token (or the next request's prefill) on, the engine runs
 * n_threads of its kernel threads (0 = all of them; more than [engine] threads is capped there)
 * pinned to the CPUs of cpu_mask (bit i = CPU i; 0 = unpinned). Any thread; the worker applies
 * it between tokens, never inside a matrix product, to every model it runs. A setting the
 * engine refuses leaves the context as it was and shows in agent_worker_stats.threads_error. */
void agent_worker_set_threads(struct agent_worker *w, uint32_t n_threads, uint64_t cpu_mask);

/* The [engine] model's id ("" when none). */
const char *agent_worker_model_id(const struct agent_worker *w);

/* The ids of the models loaded now (at most cap), returned as a count. */
size_t agent_worker_loaded(struct agent_worker *w, char (*ids)[128], size_t cap);

struct eng_model_info;
/* What loading a model would count against the budget before it is loaded: its weights and
 * the KV cache of the configured context (the compute buffers are added once loaded). */
uint64_t agent_worker_model_bytes(struct agent_worker *w, const struct eng_model_info *info);

#endif
