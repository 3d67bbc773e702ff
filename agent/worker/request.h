/* An inference request as the agent's front ends (HTTP API, MQTT ask) hand it to the engine
 * worker, and the sink through which the worker streams text back. The worker owns the model
 * context; front ends never touch the engine directly. */
#ifndef AGENT_REQUEST_H
#define AGENT_REQUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_MAX_STOP     4
#define AGENT_MAX_MESSAGES 64

enum agent_request_kind {
    AGENT_REQ_CHAT,       /* messages rendered with the model's chat template */
    AGENT_REQ_COMPLETION, /* raw prompt text */
};

struct agent_message {
    char *role; /* "system", "user", "assistant", "tool" */
    char *content;
    char *tool_call_id; /* role "tool": the call it answers (OpenAI tool_call_id), or NULL */
};

/* ---- tools and structured output (openai_tools.c parses them, the worker applies them) ---- */

/* A call an assistant message made (history) or the model made (output). */
struct agent_tool_call {
    char *id, *name;
    char *arguments; /* JSON object text */
};

enum agent_tool_choice {
    AGENT_TOOLS_AUTO = 0, /* the model decides; its output is parsed for calls */
    AGENT_TOOLS_NONE,     /* tools are not offered to the model */
    AGENT_TOOLS_REQUIRED, /* the output is constrained to a call of one of the tools */
    AGENT_TOOLS_NAMED,    /* ... of the tool named in choice_name */
};

struct agent_tools {
    char *tools_json; /* the request's `tools` as compact JSON; NULL: none */
    enum agent_tool_choice choice;
    char *choice_name;
    bool parallel;        /* parallel_tool_calls (default true) */
    char *format_grammar; /* response_format json_object / json_schema as grammar text */
    struct agent_tool_call *calls[AGENT_MAX_MESSAGES]; /* per message: its tool calls */
    size_t n_calls[AGENT_MAX_MESSAGES];
};

/* Sampling overrides; a field applies only when its has_ flag is set, else config defaults. */
struct agent_sampling {
    bool has_temperature, has_top_k, has_top_p, has_min_p, has_repeat_penalty, has_presence_penalty,
        has_frequency_penalty, has_seed, has_max_tokens;
    double temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
    int top_k;
    int max_tokens;
    uint64_t seed;
};

enum agent_finish {
    AGENT_FINISH_STOP,      /* end-of-generation token or a stop string */
    AGENT_FINISH_LENGTH,    /* max_tokens or the context window */
    AGENT_FINISH_CANCELLED, /* the client went away or the agent is shutting down */
    AGENT_FINISH_ERROR,
};

struct agent_result {
    enum agent_finish finish;
    int error;              /* -errno when finish == AGENT_FINISH_ERROR */
    char error_msg[256];    /* human-readable, for the API's error object */
    uint64_t prompt_tokens; /* the whole prompt, including cached_tokens */
    uint64_t cached_tokens; /* prompt tokens the KV cache already held (not recomputed) */
    uint64_t gen_tokens;
    double ttft_ms;
    double duration_ms;
    double prefill_tokens_per_s;
    double decode_tokens_per_s;
    double energy_j;     /* integrated over the request from the power meter; NAN = not measured */
    double avg_power_w;  /* NAN = not measured */
    double j_per_token;  /* energy_j / generated tokens; NAN when either is unknown or none */
    char policy[32];     /* governor policy in force when it finished */
    char model[128];     /* the id of the model that ran it ("" when none did) */
    bool load_failed;    /* the model could not be loaded (error, error_msg say why) */
    double load_ms;      /* time spent loading the model first (0: it was loaded); not part of
                            duration_ms, energy_j or j_per_token */
    size_t n_tool_calls; /* calls reported through on_tool_call (finish_reason "tool_calls") */
    /* JSON array of the entries plugins cited (the response's "sources"), or NULL. Points into
     * the request: valid while the request lives; NULL in what request_done hooks get. */
    const char *sources_json;
};

struct agent_request;

/* Callbacks run on the engine worker thread. on_text gets UTF-8-complete text pieces and may
 * return nonzero to cancel; on_done is called exactly once, last, after which the worker no
 * longer touches the request (the front end frees it). */
struct agent_sink {
    int (*on_text)(void *user, const char *text, size_t len);
    void (*on_done)(void *user, const struct agent_result *result);
    void *user;
    /* A complete tool call found in the output (tools given, tool_choice not "none"); NULL:
     * calls are dropped. name and arguments (JSON object text) valid during the call. */
    int (*on_tool_call)(void *user, const char *name, const char *arguments);
};

struct agent_request {
    enum agent_request_kind kind;
    struct agent_message messages[AGENT_MAX_MESSAGES];
    size_t n_messages;
    char *prompt; /* AGENT_REQ_COMPLETION */
    struct agent_sampling sampling;
    char *stop[AGENT_MAX_STOP];
    size_t n_stop;
    struct agent_tools tools;
    struct agent_sink sink;
    /* What plugins added before the request ran (agent/plugins/), freed with it: context
     * already put into the messages or prompt, a direct answer (the engine does not run), the
     * entries they cited as a JSON array. */
    char *plugin_context, *plugin_answer, *plugin_sources;
    /* The model: an id the worker has loaded, or loads from model_path (malloc'd) on first use;
     * "" = the [engine] model. model_bytes: its estimate (agent_worker_model_bytes). */
    char model_id[128];
    char *model_path;
    uint64_t model_bytes;
    /* How long the model stays loaded after this request (Ollama's keep_alive): milliseconds,
     * negative = until the agent stops, 0 = unload at once; absent: [models] keep_alive_s. */
    bool has_keep_alive;
    int64_t keep_alive_ms;
    atomic_bool cancel; /* set by the front end (client disconnect) or by shutdown */
    uint64_t enqueued_ns;
};

/* Allocates a zeroed request; agent_request_free releases it and every string it holds. */
struct agent_request *agent_request_new(enum agent_request_kind kind);
void agent_request_free(struct agent_request *req);

#endif
