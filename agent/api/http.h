/* The agent's HTTP API: an OpenAI-compatible inference service on libmicrohttpd with one thread per
 * connection (so a streaming response can block waiting for tokens) and a bounded number of
 * connections. Requests go to the engine worker; the daemon supplies metrics and the governor
 * through hooks.
 *
 * Endpoints: POST /v1/chat/completions, POST /v1/completions (SSE when "stream": true),
 * GET /v1/models, GET /v1/models/{id}, GET /health (never needs the token, for probes),
 * GET /metrics (Prometheus), GET and PUT /v1/governor. When a bearer token is configured every
 * other endpoint needs `Authorization: Bearer <token>`. Errors are OpenAI error objects. */
#ifndef AGENT_HTTP_H
#define AGENT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct agent_models;

struct agent_http;
struct agent_worker;
struct agent_config;

/* Called on connection threads, possibly several at once: they must be thread-safe. Any may be
 * NULL (the metrics hook: those metrics are left out; the governor ones: 404 on /v1/governor). */
struct agent_http_hooks {
    /* Fills power_w, energy_j, temp_c, cpufreq[], policy and power_cap_w of a snapshot the
     * server has initialised (agent_metrics_snapshot_init) and filled with its own counters,
     * the latency histogram and the worker's stats; the hook may overwrite anything. */
    void (*metrics)(void *user, struct agent_metrics_snapshot *snap);
    /* Writes the governor state as one JSON object into buf (NUL-terminated); 0 or -errno. */
    int (*governor_get)(void *user, char *buf, size_t len);
    /* Applies a policy ("" = keep) and/or a power cap (NaN = keep, 0 = none). 0, or -EINVAL with
     * a message for the client in err (400). Other -errno: 500. */
    int (*governor_set)(void *user, const char *policy, double power_cap_w, char *err,
                        size_t err_len);
    void *user;
};

/* Settings that are not in the configuration file. */
struct agent_http_params {
    unsigned max_connections; /* concurrent requests (each a thread); see agent_http_new */
    unsigned max_connections_per_client; /* connections one client address may hold */
    unsigned header_timeout_ms;          /* a request must arrive (headers and body) within this */
    size_t stream_buffer_bytes;          /* unsent stream bytes before a slow client is dropped */
    unsigned idle_timeout_s;             /* idle keep-alive connections are closed after this */
    unsigned poll_interval_ms;   /* how often a waiting request checks that its client is there */
    unsigned stream_coalesce_ms; /* streamed tokens closer together than this share one send
                                    (0: every token is sent on its own) */
    int port;                    /* -1: cfg->api.port; 0: the kernel picks (see agent_http_port) */
    /* The model directory (borrowed; must outlive the server), or NULL: the [engine] model
     * only. With it /v1/models lists every installed model, and a request's "model" picks one,
     * which the worker loads on first use. */
    struct agent_models *models;
};

/* 64 connections, 16 per client, 10 s header timeout, 1 MiB stream buffer, 60 s idle timeout,
 * 100 ms poll interval, 10 ms coalescing, port -1. */
void agent_http_params_defaults(struct agent_http_params *p);

/* Binds cfg->api.listen (an IPv4 or IPv6 address) and port and starts serving. worker may be NULL
 * while the model loads (then /health says 503 "loading" and completions 503); hooks and params
 * may be NULL. The server keeps no pointer to cfg. -EINVAL: bad address; -EADDRINUSE: cannot
 * listen (err says where).
 *
 * Starvation guards: a connection must deliver its request within header_timeout_ms (a
 * keep-alive one its next request within idle_timeout_s), counted from when it opened or went
 * idle, not reset by each byte. A client address holds at most max_connections_per_client
 * connections and the server max_connections requests: a new connection over either limit
 * replaces the oldest connection still sending its request (so a trickle of slow headers cannot
 * lock anyone out), and up to as many again are accepted for /health and /metrics (others get
 * 503 server_busy) when every slot is busy with real requests.
 *
 * Browser guards: the Host header must be an IP address, localhost, this machine's host name or
 * one of cfg->api.allowed_hosts (403 otherwise; /health is exempt), an Origin header likewise
 * (or equal to Host), and request bodies must be application/json (415): no DNS rebinding, no
 * cross-site text/plain or form POSTs. */
int agent_http_new(const struct agent_config *cfg, struct agent_worker *worker,
                   const struct agent_http_hooks *hooks, const struct agent_http_params *params,
                   struct agent_http **ret, char *err, size_t err_len);

/* Stops accepting, cancels in-flight generations, closes every connection and joins their
 * threads. Requests still queued in the worker keep a reference to internal state until their
 * on_done runs, so the worker may be freed before or after this. NULL is fine. */
void agent_http_free(struct agent_http *h);

/* For a graceful stop: closes the listening socket and answers new requests on open
 * connections with 503 (/health: "stopping"), while requests already running keep streaming.
 * Then detach and free the worker (it finishes or cancels them within its timeout), then the
 * server:
 *   agent_http_quiesce(h); agent_http_set_worker(h, NULL); agent_worker_free(w, timeout_ms);
 *   agent_http_free(h);
 * (set_worker(NULL) before agent_worker_free, so no connection thread reaches a freed worker.) */
void agent_http_quiesce(struct agent_http *h);

/* The port actually bound. */
uint16_t agent_http_port(const struct agent_http *h);

/* Live settings from a reloaded config: bearer token, body limit, model name. */
void agent_http_set_config(struct agent_http *h, const struct agent_config *cfg);

/* Sets the worker once the model is loaded (NULL → worker only; a worker must outlive the
 * server or be detached with NULL first, which waits for no request). */
void agent_http_set_worker(struct agent_http *h, struct agent_worker *worker);

/* The agent cannot go on as it should (status: a fixed word in static storage, say
 * "privileged_helper_lost"): from now on /health says 503 {"status": status} before anything
 * else, also while the server stops. */
void agent_http_set_fault(struct agent_http *h, const char *status);

/* No model is configured: /health says 503 "no_model" (not "loading") and completions say why. */
void agent_http_set_no_model(struct agent_http *h);

#endif
