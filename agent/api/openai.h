/* The OpenAI wire format of the agent's HTTP API, kept apart from the HTTP server so it can be
 * tested and fuzzed without sockets: request bodies (chat completions and completions) are parsed
 * and checked into a struct agent_request, and results are written back as completion objects,
 * SSE stream chunks and OpenAI-style error objects {"error":{"message","type","param","code"}}.
 *
 * Extensions beyond OpenAI: sampling keys top_k, min_p and repeat_penalty; an "energy" object
 * {"joules","joules_per_token","avg_watts","policy"} beside "usage" in every final response and
 * on the streamed chunk that carries finish_reason (the usage chunk asked for by
 * stream_options.include_usage carries it too); a "sources" array beside them when plugins
 * cited entries (agent_result.sources_json, docs/plugins.md). */
#ifndef AGENT_OPENAI_H
#define AGENT_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"

/* Longest accepted stop string and model name, in bytes. */
#define OPENAI_MAX_STOP_BYTES  256
#define OPENAI_MAX_MODEL_BYTES 256

/* A growable byte buffer; grows geometrically so steady streaming allocates nothing. */
struct openai_buf {
    char *data;
    size_t len, cap;
};

int openai_buf_reserve(struct openai_buf *b, size_t extra);
int openai_buf_append(struct openai_buf *b, const char *s, size_t n);
/* Appends s as the inside of a JSON string (no quotes): escapes quotes, backslashes and control
 * characters and replaces bytes that are not valid UTF-8 with U+FFFD. */
int openai_buf_append_json(struct openai_buf *b, const char *s, size_t n);
void openai_buf_free(struct openai_buf *b);

/* An API error: HTTP status plus the fields of the OpenAI error object. */
struct openai_error {
    int status;       /* 400, 401, 404, 413, 429, 500, 503, ... */
    const char *type; /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code; /* "invalid_type", "model_not_found", ... or NULL (JSON null) */
    char param[64];   /* the offending field, "" = null */
    char message[320];
};

void openai_error_set(struct openai_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Writes {"error":{...}} into b (appending). */
int openai_error_json(const struct openai_error *e, struct openai_buf *b);

/* What a request body says besides the inference request itself. */
struct openai_options {
    char model[OPENAI_MAX_MODEL_BYTES]; /* "" when absent */
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    /* keep_alive (Ollama's): how long the model stays loaded after this request, in ms;
     * negative: for ever */
    bool has_keep_alive;
    int64_t keep_alive_ms;
};

/* Parses a request body of the given kind. 0: *ret_req is a new request (the caller frees it)
 * and *ret_opts is filled. -EINVAL: *err names the field and why (status 400). -ENOMEM. */
int openai_parse_request(const char *body, size_t len, enum agent_request_kind kind,
                         struct agent_request **ret_req, struct openai_options *ret_opts,
                         struct openai_error *err);

/* The PUT /v1/governor body {"policy": "...", "power_cap_w": x}: policy "" = unchanged;
 * power_cap_w NaN = unchanged, 0 (or JSON null) = no cap. 0 or -EINVAL with *err filled. */
int openai_parse_governor(const char *body, size_t len, char *policy, size_t policy_len,
                          double *power_cap_w, struct openai_error *err);

/* Identity of one response, shared by its chunks. */
struct openai_response_id {
    enum agent_request_kind kind;
    char id[48];     /* "chatcmpl-..." or "cmpl-..." */
    int64_t created; /* Unix seconds */
    char model[OPENAI_MAX_MODEL_BYTES];
};

void openai_response_id_init(struct openai_response_id *r, enum agent_request_kind kind,
                             uint64_t serial, int64_t created, const char *model);

/* The non-streamed response object for the generated text and result. */
int openai_response_json(const struct openai_response_id *r, const char *text, size_t len,
                         const struct agent_result *res, struct openai_buf *b);

/* SSE framing of a stream. The text chunk is pre-split into a constant prefix and suffix around
 * the escaped text, so a streamed token costs one escape and three appends. */
struct openai_stream {
    struct openai_response_id rid;
    struct openai_buf prefix; /* `data: {...,"delta":{"content":"` */
    const char *suffix;       /* `"},...}]}\n\n` */
    size_t suffix_len;
};

int openai_stream_init(struct openai_stream *s, const struct openai_response_id *rid);
void openai_stream_free(struct openai_stream *s);
/* The first chunk (chat: delta with the assistant role; completions: nothing). */
int openai_stream_begin(const struct openai_stream *s, struct openai_buf *b);
int openai_stream_text(const struct openai_stream *s, const char *text, size_t len,
                       struct openai_buf *b);
/* The finish_reason chunk with the energy object, the usage chunk when asked for, and
 * `data: [DONE]`. For AGENT_FINISH_ERROR/CANCELLED, err is sent as an error event instead. */
int openai_stream_end(const struct openai_stream *s, const struct agent_result *res,
                      bool include_usage, const struct openai_error *err, struct openai_buf *b);

/* "stop" / "length" for a finish. */
const char *openai_finish_reason(enum agent_finish f);
/* openai_response_json with the model's tool calls: message.tool_calls, content null when
 * there is no text, finish_reason "tool_calls" when n_calls > 0. */
int openai_response_json_calls(const struct openai_response_id *r, const char *text, size_t len,
                               const struct agent_tool_call *calls, size_t n_calls,
                               const struct agent_result *res, struct openai_buf *b);

/* GET /v1/models (one model, or none when id is ""); GET /v1/models/{id}. */
int openai_models_json(const char *id, int64_t created, struct openai_buf *b);
int openai_model_json(const char *id, int64_t created, struct openai_buf *b);

/* The model directory's listing: every installed model, with extensions beyond OpenAI's object:
 * "loaded" (in memory now) and "status" ("ok", or "broken" with the loader's "error"). */
struct openai_model_row {
    const char *id;
    int64_t created;
    bool loaded;
    const char *error; /* NULL: ok */
};
int openai_model_rows_json(const struct openai_model_row *rows, size_t n, struct openai_buf *b);
int openai_model_row_json(const struct openai_model_row *row, struct openai_buf *b);

#endif
