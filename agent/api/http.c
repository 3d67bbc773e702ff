/* The agent's OpenAI-compatible HTTP server on libmicrohttpd (see http.h). Each connection has its
 * own thread, so a completion request simply blocks: the connection thread submits the request to
 * the engine worker and waits on a condition variable that the worker's sink signals. A streamed
 * token is escaped into a per-request SSE buffer on the worker thread (no allocation once the
 * buffer has grown) and copied out by libmicrohttpd's content reader. A waiting connection checks
 * every poll interval whether its client hung up, and a client that goes away sets the request's
 * cancel flag, which stops its generation. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "config.h"
#include "log.h"
#include "openai.h"
#include "openai_tools.h"
#include "registry.h"
#include "request.h"
#include "worker.h"

/* Largest piece the content reader hands to libmicrohttpd at once. */
#define READ_BLOCK        16384
#define GOVERNOR_JSON_MAX 4096

struct agent_http {
    struct MHD_Daemon *mhd;
    struct agent_http_hooks hooks;
    struct agent_http_params params;
    uint16_t port;
    int64_t created; /* wall seconds at start: the "created" of the model object */
    uint64_t serial_base;
    atomic_uint_fast64_t serial;
    atomic_int refs; /* the owner plus one per request the worker still holds */
    atomic_bool stopping;
    atomic_bool quiesced;        /* no new connections; new requests get 503 */
    atomic_bool no_model;        /* none configured: no worker will come */
    _Atomic(const char *) fault; /* what /health reports above all else (a static word) */
    int quiesced_fd;    /* the listen socket handed back by libmicrohttpd, closed at free */
    char hostname[256]; /* this machine's, lower case: always an allowed Host */

    /* Connection guard (see agent_http_new): every open connection, oldest first. */
    pthread_mutex_t guard_mu;
    pthread_cond_t guard_cv; /* wakes the reaper: a new deadline, or stop */
    struct tracked *conn_head, *conn_tail;
    size_t n_live;   /* connections not yet dropped */
    size_t n_active; /* of which are being served (their request arrived) */
    bool reaper_stop, reaper_started;
    pthread_t reaper;
    atomic_uint_fast64_t dropped_slow, dropped_limit, dropped_stream;

    struct agent_models *models; /* the model directory (NULL: the [engine] model only) */

    pthread_mutex_t lock; /* everything below */
    struct agent_worker *worker;
    char token[CFG_STR_SMALL];
    size_t max_body;
    char model_name[CFG_STR_SMALL];
    char allowed_hosts[CFG_STR_PATH];
    struct agent_metrics_histogram latency;
    double last_prefill_tps, last_decode_tps;
    size_t n_codes;
    int codes[AGENT_METRICS_MAX_HTTP_CODES];
    uint64_t code_counts[AGENT_METRICS_MAX_HTTP_CODES];
};

/* One open connection, from libmicrohttpd's STARTED to its CLOSED notification (between which
 * the descriptor stays open, so shutdown() on it never hits a reused one). */
struct tracked {
    struct tracked *prev, *next;
    int fd;
    int family;
    unsigned char ip[16];
    uint64_t deadline_ns; /* while receiving: the request must have arrived by then */
    bool receiving;       /* no complete request yet: may be dropped for another */
    bool dropped;         /* shut down by the guard; libmicrohttpd closes it */
};

/* One inference request between a connection thread and the worker thread, freed when both have
 * let go (refs). */
struct gen {
    struct agent_http *h;
    struct agent_request *req;
    atomic_int refs;
    bool stream, include_usage;
    int client_fd;
    uint64_t start_ns;
    struct openai_stream fmt;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bool waiting;           /* the connection thread sleeps on cv */
    bool overflow;          /* the client stopped reading: the stream buffer hit its bound */
    uint64_t next_check_ns; /* when gen_wait next looks for a hang-up */
    uint64_t last_send_ns;  /* when the content reader last handed out bytes */
    bool has_text;
    bool done;
    bool oom;
    struct agent_result result;
    struct openai_buf out; /* stream: SSE bytes not yet sent; otherwise the generated text */
    size_t out_off;
    struct agent_tool_call *calls; /* not streamed: the model's tool calls, for the response */
    size_t n_calls;
    size_t n_streamed_calls; /* streamed: calls sent so far (the next one's index) */
};

enum route { R_CHAT, R_COMPLETIONS, R_MODELS, R_MODEL, R_HEALTH, R_METRICS, R_GOVERNOR };

enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_PUT = 8 };

static const struct {
    const char *path;
    bool prefix; /* path is a prefix followed by one more segment */
    enum route route;
    unsigned methods;
    const char *allow;
} routes[] = {
    {"/v1/chat/completions", false, R_CHAT, M_POST, "POST"},
    {"/v1/completions", false, R_COMPLETIONS, M_POST, "POST"},
    {"/v1/models", false, R_MODELS, M_GET | M_HEAD, "GET, HEAD"},
    {"/v1/models/", true, R_MODEL, M_GET | M_HEAD, "GET, HEAD"},
    {"/health", false, R_HEALTH, M_GET | M_HEAD, "GET, HEAD"},
    {"/metrics", false, R_METRICS, M_GET | M_HEAD, "GET, HEAD"},
    {"/v1/governor", false, R_GOVERNOR, M_GET | M_HEAD | M_PUT, "GET, HEAD, PUT"},
};

struct conn {
    int route; /* index into routes */
    uint64_t start_ns;
    bool responded; /* a response was queued before the body arrived */
    bool too_big;
    size_t max_body; /* the limit when the request began (a reload may change it) */
    struct openai_buf body;
};

void agent_http_params_defaults(struct agent_http_params *p)
{
    p->max_connections = 64;
    p->max_connections_per_client = 16;
    p->header_timeout_ms = 10000;
    p->stream_buffer_bytes = (size_t)1 << 20;
    p->idle_timeout_s = 60;
    p->poll_interval_ms = 100;
    p->stream_coalesce_ms = 10;
    p->port = -1;
    p->models = NULL;
}

/* ---- reference counting ---- */

static void http_unref(struct agent_http *h)
{
    if (atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    pthread_cond_destroy(&h->guard_cv);
    pthread_mutex_destroy(&h->guard_mu);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static void gen_unref(struct gen *g)
{
    if (atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    agent_request_free(g->req);
    for (size_t i = 0; i < g->n_calls; i++) {
        free(g->calls[i].name);
        free(g->calls[i].arguments);
    }
    free(g->calls);
    openai_stream_free(&g->fmt);
    openai_buf_free(&g->out);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    http_unref(g->h);
    free(g);
}

/* ---- responses ---- */

static void count_code(struct agent_http *h, int code)
{
    pthread_mutex_lock(&h->lock);
    size_t i = 0;
    while (i < h->n_codes && h->codes[i] != code)
        i++;
    if (i == h->n_codes && h->n_codes < AGENT_METRICS_MAX_HTTP_CODES)
        h->codes[h->n_codes++] = code;
    if (i < h->n_codes)
        h->code_counts[i]++;
    pthread_mutex_unlock(&h->lock);
}

static enum MHD_Result respond(struct agent_http *h, struct MHD_Connection *c, unsigned status,
                               const char *ctype, const char *body, size_t len,
                               const char *hdr_name, const char *hdr_value)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hdr_name)
        MHD_add_response_header(r, hdr_name, hdr_value);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    count_code(h, (int)status);
    return ret;
}

static enum MHD_Result respond_json(struct agent_http *h, struct MHD_Connection *c, unsigned status,
                                    const char *json)
{
    return respond(h, c, status, "application/json", json, strlen(json), NULL, NULL);
}

static enum MHD_Result respond_error(struct agent_http *h, struct MHD_Connection *c,
                                     const struct openai_error *e, const char *hdr_name,
                                     const char *hdr_value)
{
    struct openai_buf b = {0};
    if (openai_error_json(e, &b) < 0) {
        openai_buf_free(&b);
        return MHD_NO;
    }
    log_debug("http: %d %s", e->status, e->message);
    enum MHD_Result ret =
        respond(h, c, (unsigned)e->status, "application/json", b.data, b.len, hdr_name, hdr_value);
    openai_buf_free(&b);
    return ret;
}

static enum MHD_Result reply_error(struct agent_http *h, struct MHD_Connection *c, int status,
                                   const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result reply_error(struct agent_http *h, struct MHD_Connection *c, int status,
                                   const char *type, const char *code, const char *fmt, ...)
{
    struct openai_error e;
    openai_error_set(&e, status, type, code, NULL, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return respond_error(h, c, &e, NULL, NULL);
}

/* A 503 that also closes the connection (the slot is wanted back). */
static enum MHD_Result respond_error_close(struct agent_http *h, struct MHD_Connection *c,
                                           int status, const char *code, const char *msg)
{
    struct openai_error e;
    openai_error_set(&e, status, "server_error", code, NULL, "%s", msg);
    return respond_error(h, c, &e, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* ---- helpers ---- */

static bool client_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Compares in time independent of where the strings differ. */
static bool token_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char d = alen != blen;
    for (size_t i = 0; i < alen; i++)
        d |= (unsigned char)a[i] ^ (unsigned char)b[i % (blen ? blen : 1)];
    return d == 0;
}

static bool authorized(struct agent_http *h, struct MHD_Connection *c)
{
    char token[CFG_STR_SMALL];
    pthread_mutex_lock(&h->lock);
    memcpy(token, h->token, sizeof(token));
    pthread_mutex_unlock(&h->lock);
    if (!token[0])
        return true;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    while (*v == ' ')
        v++;
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == ' ')
        n--;
    return token_equal(v, n, token);
}

/* The model id clients see, and whether a model is loaded at all. */
static struct agent_worker *current_model(struct agent_http *h, char *id, size_t id_len,
                                          bool *loaded)
{
    pthread_mutex_lock(&h->lock);
    struct agent_worker *w = h->worker;
    const char *wid = w ? agent_worker_model_id(w) : "";
    *loaded = wid && wid[0];
    snprintf(id, id_len, "%s", h->model_name[0] ? h->model_name : (wid ? wid : ""));
    pthread_mutex_unlock(&h->lock);
    return w;
}

/* Which model a request's "model" means (name "" = the default): the [engine] model (no path),
 * or an installed model to be loaded from *ret_path (malloc'd). 0, or -1 with *e filled. */
static int resolve_model(struct agent_http *h, const char *name, char *id, size_t id_len,
                         char **ret_path, uint64_t *ret_bytes, struct openai_error *e)
{
    *ret_path = NULL;
    *ret_bytes = 0;
    char pinned[128];
    pthread_mutex_lock(&h->lock);
    snprintf(pinned, sizeof(pinned), "%s", h->worker ? agent_worker_model_id(h->worker) : "");
    pthread_mutex_unlock(&h->lock);
    if (!name[0] || strcmp(name, pinned) == 0) {
        if (pinned[0]) {
            snprintf(id, id_len, "%s", pinned);
            return 0;
        }
    }
    if (!h->models) {
        if (!name[0] || !pinned[0]) {
            openai_error_set(e, 503, "server_error", "model_not_loaded", NULL, "%s",
                             atomic_load(&h->no_model) ? "no model is configured ([engine] model)"
                                                       : "the model is still loading");
            return -1;
        }
        openai_error_set(e, 404, "invalid_request_error", "model_not_found", "model",
                         "The model '%.200s' does not exist (this server has '%.40s')", name,
                         pinned);
        return -1;
    }
    struct agent_model_entry m;
    int rc = -ENOENT;
    if (name[0]) {
        rc = agent_models_find(h->models, name, &m);
        if (rc < 0) { /* perhaps pulled since the last look */
            char err[256];
            agent_models_scan(h->models, err, sizeof(err));
            rc = agent_models_find(h->models, name, &m);
        }
        if (rc < 0) {
            openai_error_set(e, 404, "invalid_request_error", "model_not_found", "model",
                             "The model '%.200s' does not exist (GET /v1/models lists the "
                             "installed ones)",
                             name);
            return -1;
        }
    } else {
        /* no model named and no [engine] model: the one installed model, if there is one */
        size_t n_ok = 0;
        struct agent_model_entry x;
        for (size_t i = 0; agent_models_get(h->models, i, &x) == 0; i++)
            if (x.ok) {
                m = x;
                n_ok++;
            }
        if (n_ok == 0) {
            openai_error_set(e, 503, "server_error", "model_not_loaded", NULL,
                             "no model is configured ([engine] model) or installed ([models] "
                             "dir)");
            return -1;
        }
        if (n_ok > 1) {
            openai_error_set(e, 400, "invalid_request_error", "missing_required_parameter", "model",
                             "'model' is required: several models are installed (GET "
                             "/v1/models lists them)");
            return -1;
        }
    }
    if (m.engine && pinned[0]) {
        snprintf(id, id_len, "%s", pinned);
        return 0;
    }
    if (!m.ok) {
        openai_error_set(e, 500, "server_error", "model_broken", "model",
                         "The model '%.100s' cannot be loaded: %.180s", m.id, m.error);
        return -1;
    }
    /* under the lock: the worker may be detached (and freed) by a stop meanwhile */
    pthread_mutex_lock(&h->lock);
    if (h->worker)
        *ret_bytes = agent_worker_model_bytes(h->worker, &m.info);
    bool have_worker = h->worker != NULL;
    pthread_mutex_unlock(&h->lock);
    if (!have_worker) {
        openai_error_set(e, 503, "server_error", "model_not_loaded", NULL, "the agent is %s",
                         atomic_load(&h->quiesced) ? "stopping" : "starting");
        return -1;
    }
    snprintf(id, id_len, "%s", m.id);
    *ret_path = strdup(m.path);
    if (!*ret_path) {
        openai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

static void result_error(const struct agent_result *r, struct openai_error *e)
{
    const char *msg = r->error_msg[0] ? r->error_msg : strerror(-r->error);
    if (r->finish == AGENT_FINISH_CANCELLED) {
        openai_error_set(e, 503, "server_error", "cancelled", NULL,
                         "the request was cancelled (server stopping or client gone)");
        return;
    }
    if (r->load_failed) {
        if (r->error == -EFBIG)
            openai_error_set(e, 503, "server_error", "insufficient_memory", "model", "%s", msg);
        else
            openai_error_set(e, 500, "server_error", "model_load_failed", "model", "%s", msg);
        return;
    }
    switch (-r->error) {
    case ENOSPC:
    case E2BIG:
        openai_error_set(e, 400, "invalid_request_error", "context_length_exceeded", NULL, "%s",
                         msg);
        break;
    case EINVAL:
        openai_error_set(e, 400, "invalid_request_error", "invalid_value", NULL, "%s", msg);
        break;
    case ENODEV:
        openai_error_set(e, 503, "server_error", "model_not_loaded", NULL, "%s", msg);
        break;
    case ESHUTDOWN:
    case ECANCELED:
        openai_error_set(e, 503, "server_error", "cancelled", NULL, "%s", msg);
        break;
    default:
        openai_error_set(e, 500, "server_error", "engine_error", NULL, "%s", msg);
    }
}

/* ---- the worker's sink ---- */

static int gen_on_text(void *user, const char *text, size_t len)
{
    struct gen *g = user;
    pthread_mutex_lock(&g->mu);
    if (g->overflow) {
        pthread_mutex_unlock(&g->mu);
        return 1;
    }
    int rc = g->stream ? openai_stream_text(&g->fmt, text, len, &g->out)
                       : openai_buf_append(&g->out, text, len);
    if (rc)
        g->oom = true;
    if (g->stream && g->out.len - g->out_off > g->h->params.stream_buffer_bytes) {
        /* The client stopped reading: drop it and free the engine instead of buffering
         * without bound (gen_read_free clears client_fd before libmicrohttpd closes it). */
        g->overflow = true;
        rc = 1;
        atomic_fetch_add(&g->h->dropped_stream, 1);
        log_info("http: a streaming client stopped reading (%zu bytes unsent); dropped",
                 g->out.len - g->out_off);
        if (g->client_fd >= 0)
            shutdown(g->client_fd, SHUT_RDWR);
    }
    g->has_text = true;
    /* A non-streamed request only cares about the end. */
    if (g->waiting && g->stream)
        pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return rc || atomic_load_explicit(&g->req->cancel, memory_order_relaxed);
}

/* A tool call the worker found in the output: streamed as delta.tool_calls at once, or kept
 * for the response's message.tool_calls. */
static int gen_on_tool_call(void *user, const char *name, const char *arguments)
{
    struct gen *g = user;
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    if (g->stream) {
        rc = openai_stream_tool_call(&g->fmt.rid, g->n_streamed_calls, name, arguments, &g->out);
        g->n_streamed_calls++;
        g->has_text = true;
        if (g->waiting)
            pthread_cond_signal(&g->cv);
    } else {
        struct agent_tool_call *c = realloc(g->calls, (g->n_calls + 1) * sizeof(*c));
        if (c) {
            g->calls = c;
            c[g->n_calls] = (struct agent_tool_call){NULL, strdup(name), strdup(arguments)};
            if (c[g->n_calls].name && c[g->n_calls].arguments)
                g->n_calls++;
            else
                rc = -ENOMEM;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc)
        g->oom = true;
    pthread_mutex_unlock(&g->mu);
    return rc ? 1 : 0;
}

static void gen_on_done(void *user, const struct agent_result *res)
{
    struct gen *g = user;
    struct agent_http *h = g->h;
    uint64_t now = cmn_now_ns();
    pthread_mutex_lock(&g->mu);
    g->result = *res;
    if (g->oom && res->finish != AGENT_FINISH_CANCELLED) {
        g->result.finish = AGENT_FINISH_ERROR;
        g->result.error = -ENOMEM;
        snprintf(g->result.error_msg, sizeof(g->result.error_msg), "out of memory");
    }
    if (g->stream) {
        struct openai_error e;
        result_error(&g->result, &e);
        if (openai_stream_end(&g->fmt, &g->result, g->include_usage, &e, &g->out) < 0)
            g->oom = true;
    }
    g->done = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);

    if (res->finish == AGENT_FINISH_STOP || res->finish == AGENT_FINISH_LENGTH) {
        pthread_mutex_lock(&h->lock);
        agent_metrics_histogram_observe(&h->latency, (double)(now - g->start_ns) / 1e9);
        h->last_prefill_tps = res->prefill_tokens_per_s;
        h->last_decode_tps = res->decode_tokens_per_s;
        pthread_mutex_unlock(&h->lock);
    }
    gen_unref(g);
}

/* Sleeps until woken or the poll interval passes; false when the wait should end because the
 * client went away or the server is stopping (the request is then cancelled). The client check
 * is a poll() for a hang-up, done at most once per interval however often tokens wake us. */
static bool gen_wait(struct gen *g)
{
    uint64_t interval_ns = (uint64_t)g->h->params.poll_interval_ms * 1000000ULL;
    uint64_t now = cmn_now_ns();
    if (g->next_check_ns == 0)
        g->next_check_ns = now + interval_ns;
    struct timespec ts = {.tv_sec = (time_t)(g->next_check_ns / 1000000000ULL),
                          .tv_nsec = (long)(g->next_check_ns % 1000000000ULL)};
    g->waiting = true;
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    g->waiting = false;
    bool gone = atomic_load(&g->h->stopping);
    now = cmn_now_ns();
    if (!gone && now >= g->next_check_ns) {
        g->next_check_ns = now + interval_ns;
        gone = client_gone(g->client_fd);
    }
    if (gone) {
        atomic_store(&g->req->cancel, true);
        return false;
    }
    return true;
}

static ssize_t gen_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct gen *g = cls;
    ssize_t ret;
    pthread_mutex_lock(&g->mu);
    uint64_t window_ns = (uint64_t)g->h->params.stream_coalesce_ms * 1000000ULL;
    for (;;) {
        if (g->overflow) {
            ret = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (g->out_off < g->out.len) {
            /* Tokens that come faster than the window are sent together: one wake-up and
             * one send per window instead of per token. Slower tokens go out at once. */
            uint64_t now = cmn_now_ns();
            if (!g->done && now < g->last_send_ns + window_ns && g->out.len - g->out_off < max &&
                !atomic_load(&g->h->stopping)) {
                uint64_t until = g->last_send_ns + window_ns;
                struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ULL),
                                      .tv_nsec = (long)(until % 1000000000ULL)};
                pthread_cond_timedwait(&g->cv, &g->mu, &ts); /* on_done still wakes us */
                continue;
            }
            g->last_send_ns = now;
            size_t n = g->out.len - g->out_off;
            if (n > max)
                n = max;
            memcpy(buf, g->out.data + g->out_off, n);
            g->out_off += n;
            if (g->out_off == g->out.len)
                g->out_off = g->out.len = 0;
            ret = (ssize_t)n;
            break;
        }
        if (g->done || g->overflow) {
            ret = g->oom || g->overflow ? MHD_CONTENT_READER_END_WITH_ERROR
                                        : MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        if (!gen_wait(g)) {
            ret = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return ret;
}

/* libmicrohttpd is done with the stream: sent, or the connection died. */
static void gen_read_free(void *cls)
{
    struct gen *g = cls;
    pthread_mutex_lock(&g->mu);
    log_debug("http: stream released (done %d)", g->done);
    if (!g->done)
        atomic_store(&g->req->cancel, true);
    g->client_fd = -1; /* libmicrohttpd closes it after this */
    pthread_mutex_unlock(&g->mu);
    gen_unref(g);
}

/* ---- endpoints ---- */

static enum MHD_Result submit_error(struct agent_http *h, struct MHD_Connection *c, int rc)
{
    switch (rc) {
    case -EBUSY:
        return reply_error(h, c, 429, "rate_limit_error", "queue_full",
                           "the request queue is full; retry later");
    case -ESHUTDOWN:
        return reply_error(h, c, 503, "server_error", "shutting_down",
                           "the server is shutting down");
    case -ENODEV:
        return reply_error(h, c, 503, "server_error", "model_not_loaded", "no model is loaded");
    case -EINVAL:
        return reply_error(h, c, 400, "invalid_request_error", "invalid_value",
                           "the engine refused the request");
    default:
        return reply_error(h, c, 500, "server_error", NULL, "cannot queue the request: %s",
                           strerror(rc < 0 ? -rc : rc));
    }
}

static enum MHD_Result handle_completion(struct agent_http *h, struct MHD_Connection *c,
                                         struct conn *cn, enum agent_request_kind kind)
{
    struct openai_error e;
    struct openai_options opts;
    struct agent_request *req = NULL;
    int rc = openai_parse_request(cn->body.data ? cn->body.data : "", cn->body.len, kind, &req,
                                  &opts, &e);
    if (rc)
        return respond_error(h, c, &e, NULL, NULL);

    if (atomic_load(&h->quiesced)) {
        agent_request_free(req);
        return reply_error(h, c, 503, "server_error", "shutting_down",
                           "the server is shutting down");
    }
    char id[OPENAI_MAX_MODEL_BYTES];
    if (resolve_model(h, opts.model, id, sizeof(id), &req->model_path, &req->model_bytes, &e) < 0) {
        agent_request_free(req);
        return respond_error(h, c, &e, NULL, NULL);
    }
    snprintf(req->model_id, sizeof(req->model_id), "%.*s", (int)sizeof(req->model_id) - 1, id);
    req->has_keep_alive = opts.has_keep_alive;
    req->keep_alive_ms = opts.keep_alive_ms;

    struct gen *g = calloc(1, sizeof(*g));
    if (!g) {
        agent_request_free(req);
        return MHD_NO;
    }
    g->h = h;
    g->req = req;
    g->stream = opts.stream;
    g->include_usage = opts.include_usage;
    g->start_ns = cn->start_ns;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->client_fd = ci ? ci->connect_fd : -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->mu, NULL);
    atomic_init(&g->refs, 1);
    atomic_fetch_add(&h->refs, 1);

    struct openai_response_id rid;
    openai_response_id_init(&rid, kind, h->serial_base + atomic_fetch_add(&h->serial, 1),
                            (int64_t)time(NULL), id);
    if (openai_stream_init(&g->fmt, &rid) < 0 ||
        (g->stream && openai_stream_begin(&g->fmt, &g->out) < 0) ||
        openai_buf_reserve(&g->out, 4096) < 0) {
        gen_unref(g);
        return MHD_NO;
    }
    req->sink.on_text = gen_on_text;
    req->sink.on_done = gen_on_done;
    req->sink.on_tool_call = gen_on_tool_call;
    req->sink.user = g;

    atomic_fetch_add(&g->refs, 1); /* the worker's, released in on_done */
    pthread_mutex_lock(&h->lock);
    rc = h->worker ? agent_worker_submit(h->worker, req) : -ENODEV;
    pthread_mutex_unlock(&h->lock);
    if (rc) {
        atomic_fetch_sub(&g->refs, 1);
        gen_unref(g);
        return submit_error(h, c, rc);
    }

    /* Wait for the outcome (or, streaming, for the first text) so failures before any output
     * get a proper status code instead of a 200 stream carrying an error. */
    pthread_mutex_lock(&g->mu);
    while (!g->done && !(g->stream && g->has_text)) {
        if (!gen_wait(g)) {
            pthread_mutex_unlock(&g->mu);
            gen_unref(g);
            return MHD_NO;
        }
    }
    if (g->done && (!g->stream || !g->has_text) &&
        (g->result.finish == AGENT_FINISH_ERROR || g->result.finish == AGENT_FINISH_CANCELLED)) {
        result_error(&g->result, &e);
        pthread_mutex_unlock(&g->mu);
        gen_unref(g);
        return respond_error(h, c, &e, NULL, NULL);
    }
    if (!g->stream) {
        struct openai_buf b = {0};
        rc = openai_response_json_calls(&g->fmt.rid, g->out.data, g->out.len, g->calls, g->n_calls,
                                        &g->result, &b);
        pthread_mutex_unlock(&g->mu);
        gen_unref(g);
        enum MHD_Result ret =
            rc ? MHD_NO : respond(h, c, 200, "application/json", b.data, b.len, NULL, NULL);
        openai_buf_free(&b);
        return ret;
    }
    pthread_mutex_unlock(&g->mu);

    /* Our reference moves to the response; gen_read_free releases it. */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, READ_BLOCK, gen_read, g, gen_read_free);
    if (!r) {
        atomic_store(&req->cancel, true);
        gen_unref(g);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    count_code(h, 200);
    return ret;
}

/* The installed models with whether each is loaded (rows point into entries and ids). */
static size_t model_rows(struct agent_http *h, struct agent_model_entry *entries, size_t cap,
                         struct openai_model_row *rows, char (*ids)[128], size_t ids_cap)
{
    size_t n_loaded = 0;
    pthread_mutex_lock(&h->lock);
    if (h->worker)
        n_loaded = agent_worker_loaded(h->worker, ids, ids_cap);
    pthread_mutex_unlock(&h->lock);
    size_t n = 0;
    for (size_t i = 0; n < cap && agent_models_get(h->models, i, &entries[n]) == 0; i++, n++) {
        rows[n] = (struct openai_model_row){entries[n].id, entries[n].mtime_s, false,
                                            entries[n].ok ? NULL : entries[n].error};
        for (size_t k = 0; k < n_loaded; k++)
            if (strcmp(ids[k], entries[n].id) == 0)
                rows[n].loaded = true;
    }
    return n;
}

#define MAX_LISTED 1024

static enum MHD_Result handle_models(struct agent_http *h, struct MHD_Connection *c,
                                     const char *url, bool one)
{
    char id[OPENAI_MAX_MODEL_BYTES];
    bool loaded;
    current_model(h, id, sizeof(id), &loaded);
    if (!loaded)
        id[0] = '\0';
    struct openai_buf b = {0};
    enum MHD_Result ret;
    const char *want = one ? url + strlen("/v1/models/") : NULL;
    if (h->models) {
        char err[256];
        agent_models_scan(h->models, err, sizeof(err)); /* what was pulled or removed since */
        /* as many as there are (an entry holds a path: a fixed 1024 of them would be 5 MB per
         * call, which glibc then keeps in the heap) */
        size_t cap = agent_models_count(h->models) + 1;
        if (cap > MAX_LISTED)
            cap = MAX_LISTED;
        struct agent_model_entry *entries = calloc(cap, sizeof(*entries));
        struct openai_model_row *rows = calloc(cap, sizeof(*rows));
        char(*ids)[128] = calloc(16, sizeof(*ids));
        if (!entries || !rows || !ids) {
            free(entries);
            free(rows);
            free(ids);
            return MHD_NO;
        }
        size_t n = model_rows(h, entries, cap, rows, ids, 16);
        int rc = 0;
        if (one) {
            struct agent_model_entry m;
            size_t k = n;
            if (agent_models_find(h->models, want, &m) == 0)
                for (k = 0; k < n && strcmp(rows[k].id, m.id) != 0; k++)
                    ;
            if (k == n) {
                free(entries);
                free(rows);
                free(ids);
                struct openai_error e;
                openai_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                                 "The model '%.200s' does not exist", want);
                return respond_error(h, c, &e, NULL, NULL);
            }
            rc = openai_model_row_json(&rows[k], &b);
        } else {
            rc = openai_model_rows_json(rows, n, &b);
        }
        free(entries);
        free(rows);
        free(ids);
        ret = rc ? MHD_NO : respond_json(h, c, 200, b.data);
        openai_buf_free(&b);
        return ret;
    }
    if (one) {
        if (!id[0] || strcmp(want, id) != 0) {
            struct openai_error e;
            openai_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                             "The model '%.200s' does not exist", want);
            return respond_error(h, c, &e, NULL, NULL);
        }
        ret = openai_model_json(id, h->created, &b) ? MHD_NO : respond_json(h, c, 200, b.data);
    } else {
        ret = openai_models_json(id, h->created, &b) ? MHD_NO : respond_json(h, c, 200, b.data);
    }
    openai_buf_free(&b);
    return ret;
}

/* Whether any model can be served: the [engine] model, or an installed one. */
static bool any_installed(struct agent_http *h)
{
    struct agent_model_entry m;
    for (size_t i = 0; h->models && agent_models_get(h->models, i, &m) == 0; i++)
        if (m.ok)
            return true;
    return false;
}

static enum MHD_Result handle_health(struct agent_http *h, struct MHD_Connection *c)
{
    char id[OPENAI_MAX_MODEL_BYTES];
    bool loaded;
    struct agent_worker *w = current_model(h, id, sizeof(id), &loaded);
    const char *fault = atomic_load(&h->fault);
    if (fault) {
        char body[128];
        snprintf(body, sizeof(body), "{\"status\":\"%s\"}", fault);
        return respond_json(h, c, 503, body);
    }
    if (atomic_load(&h->quiesced))
        return respond_json(h, c, 503, "{\"status\":\"stopping\"}");
    if (!w)
        return respond_json(h, c, 503,
                            atomic_load(&h->no_model) ? "{\"status\":\"no_model\"}"
                                                      : "{\"status\":\"loading\"}");
    if (!loaded && !any_installed(h))
        return respond_json(h, c, 503, "{\"status\":\"no_model\"}");
    struct openai_buf b = {0};
    enum MHD_Result ret = MHD_NO;
    static const char head[] = "{\"status\":\"ok\",\"model\":\"";
    if (openai_buf_append(&b, head, sizeof(head) - 1) == 0 &&
        openai_buf_append_json(&b, id, strlen(id)) == 0 && openai_buf_append(&b, "\"}", 2) == 0)
        ret = respond_json(h, c, 200, b.data);
    openai_buf_free(&b);
    return ret;
}

static enum MHD_Result handle_metrics(struct agent_http *h, struct MHD_Connection *c)
{
    struct agent_metrics_snapshot *s = malloc(sizeof(*s));
    if (!s)
        return MHD_NO;
    agent_metrics_snapshot_init(s);
    bool loaded;
    struct agent_worker *w = current_model(h, s->model, sizeof(s->model), &loaded);
    s->model_loaded = loaded;
    (void)w;
    pthread_mutex_lock(&h->lock);
    if (h->worker) { /* under the lock: the worker may have been detached meanwhile */
        struct agent_worker_stats ws;
        agent_worker_stats(h->worker, &ws);
        s->requests = ws.requests;
        s->prompt_tokens = ws.prompt_tokens;
        s->gen_tokens = ws.gen_tokens;
        s->queue_depth = ws.queue_depth;
        s->busy = ws.busy != 0;
        if (ws.engine_max_threads) {
            s->engine_threads = ws.engine_threads;
            s->engine_max_threads = ws.engine_max_threads;
        }
        s->models_loaded = ws.n_loaded;
        s->models_loaded_bytes = ws.loaded_bytes;
        s->model_loads = ws.loads;
        s->model_unloads = ws.unloads;
        s->model_evictions = ws.evictions;
    }
    s->latency = h->latency;
    if (h->latency.count) {
        s->prefill_tokens_per_s = h->last_prefill_tps;
        s->decode_tokens_per_s = h->last_decode_tps;
    }
    for (size_t i = 0; i < h->n_codes; i++) {
        s->http[i].code = h->codes[i];
        s->http[i].count = h->code_counts[i];
    }
    s->n_http = h->n_codes;
    pthread_mutex_unlock(&h->lock);
    if (h->hooks.metrics)
        h->hooks.metrics(h->hooks.user, s);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = f ? agent_metrics_write(s, f) : -ENOMEM;
    if (f && fclose(f) != 0)
        rc = -EIO;
    free(s);
    enum MHD_Result ret =
        rc ? MHD_NO
           : respond(h, c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, NULL);
    free(text);
    return ret;
}

static enum MHD_Result governor_state(struct agent_http *h, struct MHD_Connection *c)
{
    char *buf = malloc(GOVERNOR_JSON_MAX);
    if (!buf)
        return MHD_NO;
    buf[0] = '\0';
    int rc = h->hooks.governor_get(h->hooks.user, buf, GOVERNOR_JSON_MAX);
    if (rc == -ENODEV) {
        free(buf);
        return reply_error(h, c, 404, "invalid_request_error", "governor_disabled",
                           "no governor runs on this agent (disabled, or no cpufreq here)");
    }
    enum MHD_Result ret = rc ? reply_error(h, c, 500, "server_error", NULL,
                                           "cannot read the governor state: %s", strerror(-rc))
                             : respond_json(h, c, 200, buf);
    free(buf);
    return ret;
}

static enum MHD_Result handle_governor(struct agent_http *h, struct MHD_Connection *c,
                                       struct conn *cn, bool put)
{
    if (!h->hooks.governor_get || (put && !h->hooks.governor_set))
        return reply_error(h, c, 404, "invalid_request_error", "governor_disabled",
                           "the governor is not enabled on this agent");
    if (!put)
        return governor_state(h, c);
    struct openai_error e;
    char policy[64];
    double cap;
    if (openai_parse_governor(cn->body.data ? cn->body.data : "", cn->body.len, policy,
                              sizeof(policy), &cap, &e))
        return respond_error(h, c, &e, NULL, NULL);
    char msg[256] = "";
    int rc = h->hooks.governor_set(h->hooks.user, policy, cap, msg, sizeof(msg));
    if (rc == -EINVAL) {
        openai_error_set(&e, 400, "invalid_request_error", "invalid_value",
                         policy[0] ? "policy" : "power_cap_w", "%s",
                         msg[0] ? msg : "invalid governor setting");
        return respond_error(h, c, &e, NULL, NULL);
    }
    if (rc == -ENODEV)
        return reply_error(h, c, 404, "invalid_request_error", "governor_disabled",
                           "no governor runs on this agent (disabled, or no cpufreq here)");
    if (rc == -ESHUTDOWN)
        return reply_error(h, c, 503, "server_error", "shutting_down",
                           "the agent is shutting down; the governor was not changed");
    if (rc == -ENOBUFS)
        return reply_error(h, c, 503, "server_error", "server_busy",
                           "the agent is busy; the governor was not changed");
    if (rc)
        return reply_error(h, c, 500, "server_error", NULL, "cannot change the governor: %s",
                           msg[0] ? msg : strerror(-rc));
    if (policy[0])
        log_info("api: governor policy set to %s", policy);
    if (!isnan(cap))
        log_info("api: governor power cap set to %g W (0 = none)", cap);
    return governor_state(h, c);
}

/* ---- connection guard: header deadline, per-client and total limits ---- */

static uint64_t header_deadline(const struct agent_http *h, uint64_t now, bool first)
{
    uint64_t ms = first ? h->params.header_timeout_ms : (uint64_t)h->params.idle_timeout_s * 1000;
    return now + ms * 1000000ULL;
}

/* Under guard_mu. */
static void guard_drop(struct agent_http *h, struct tracked *t)
{
    t->dropped = true;
    h->n_live--;
    if (!t->receiving && h->n_active > 0)
        h->n_active--;
    shutdown(t->fd, SHUT_RDWR); /* the connection's thread sees EOF and closes it */
}

/* The oldest live connection still sending its request, from the same address when ip is not
 * NULL, never skip. Under guard_mu. */
static struct tracked *guard_oldest_receiving(struct agent_http *h, const struct tracked *skip,
                                              const struct tracked *same)
{
    for (struct tracked *t = h->conn_head; t; t = t->next) {
        if (t == skip || t->dropped || !t->receiving)
            continue;
        if (same && (t->family != same->family || memcmp(t->ip, same->ip, sizeof(t->ip)) != 0))
            continue;
        return t;
    }
    return NULL;
}

static void guard_started(struct agent_http *h, struct MHD_Connection *c, void **socket_context)
{
    struct tracked *t = calloc(1, sizeof(*t));
    if (!t)
        return; /* untracked: served without guard, never dropped */
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    t->fd = fi ? fi->connect_fd : -1;
    if (ai && ai->client_addr) {
        t->family = ai->client_addr->sa_family;
        if (t->family == AF_INET)
            memcpy(t->ip, &((const struct sockaddr_in *)ai->client_addr)->sin_addr, 4);
        else if (t->family == AF_INET6)
            memcpy(t->ip, &((const struct sockaddr_in6 *)ai->client_addr)->sin6_addr, 16);
    }
    if (t->fd < 0) {
        free(t);
        return;
    }
    t->receiving = true;
    pthread_mutex_lock(&h->guard_mu);
    t->deadline_ns = header_deadline(h, cmn_now_ns(), true);
    t->prev = h->conn_tail;
    if (h->conn_tail)
        h->conn_tail->next = t;
    else
        h->conn_head = t;
    h->conn_tail = t;
    h->n_live++;
    size_t same = 0;
    for (struct tracked *o = h->conn_head; o; o = o->next)
        same += !o->dropped && o->family == t->family && memcmp(o->ip, t->ip, sizeof(t->ip)) == 0;
    if (same > h->params.max_connections_per_client) {
        struct tracked *v = guard_oldest_receiving(h, t, t);
        guard_drop(h, v ? v : t); /* all of this client's others are busy: refuse this one */
        atomic_fetch_add(&h->dropped_limit, 1);
    }
    /* Beyond max_connections, connections still sending make room; when all are busy the new
     * one stays (libmicrohttpd allows twice as many) for /health and /metrics. */
    while (!t->dropped && h->n_live > h->params.max_connections) {
        struct tracked *v = guard_oldest_receiving(h, t, NULL);
        if (!v)
            break;
        guard_drop(h, v);
        atomic_fetch_add(&h->dropped_limit, 1);
    }
    pthread_cond_signal(&h->guard_cv);
    pthread_mutex_unlock(&h->guard_mu);
    *socket_context = t;
}

static void guard_closed(struct agent_http *h, struct tracked *t)
{
    pthread_mutex_lock(&h->guard_mu);
    if (!t->dropped) {
        h->n_live--;
        if (!t->receiving && h->n_active > 0)
            h->n_active--;
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        h->conn_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        h->conn_tail = t->prev;
    pthread_mutex_unlock(&h->guard_mu);
    free(t);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct agent_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        guard_started(h, c, socket_context);
    else if (*socket_context)
        guard_closed(h, *socket_context);
    if (code != MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = NULL;
}

static struct tracked *tracked_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

/* Whether every request slot is taken (only /health and /metrics may then go on). */
static bool guard_busy(struct agent_http *h)
{
    pthread_mutex_lock(&h->guard_mu);
    bool busy = h->n_active >= h->params.max_connections;
    pthread_mutex_unlock(&h->guard_mu);
    return busy;
}

/* The whole request (headers and body) has arrived: the connection is being served and may no
 * longer be dropped for another. */
static void guard_request_arrived(struct agent_http *h, struct MHD_Connection *c)
{
    struct tracked *t = tracked_of(c);
    if (!t)
        return;
    pthread_mutex_lock(&h->guard_mu);
    if (t->receiving && !t->dropped) {
        t->receiving = false;
        h->n_active++;
    }
    pthread_mutex_unlock(&h->guard_mu);
}

/* The response is done; a kept-alive connection waits for its next request. */
static void guard_request_done(struct agent_http *h, struct MHD_Connection *c)
{
    struct tracked *t = tracked_of(c);
    if (!t)
        return;
    pthread_mutex_lock(&h->guard_mu);
    if (!t->receiving && !t->dropped) {
        t->receiving = true;
        if (h->n_active > 0)
            h->n_active--;
        t->deadline_ns = header_deadline(h, cmn_now_ns(), false);
        pthread_cond_signal(&h->guard_cv);
    }
    pthread_mutex_unlock(&h->guard_mu);
}

/* Drops connections whose request has not arrived by their deadline. Sleeps until the next
 * deadline (or a new connection); no polling. */
static void *guard_reaper(void *arg)
{
    struct agent_http *h = arg;
    pthread_mutex_lock(&h->guard_mu);
    while (!h->reaper_stop) {
        uint64_t now = cmn_now_ns(), next = UINT64_MAX;
        for (struct tracked *t = h->conn_head; t; t = t->next) {
            if (t->dropped || !t->receiving)
                continue;
            if (t->deadline_ns <= now) {
                guard_drop(h, t);
                atomic_fetch_add(&h->dropped_slow, 1);
                log_debug("http: a connection missed its request deadline; dropped");
            } else if (t->deadline_ns < next) {
                next = t->deadline_ns;
            }
        }
        if (next == UINT64_MAX) {
            pthread_cond_wait(&h->guard_cv, &h->guard_mu);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ULL),
                                  .tv_nsec = (long)(next % 1000000000ULL)};
            pthread_cond_timedwait(&h->guard_cv, &h->guard_mu, &ts);
        }
    }
    pthread_mutex_unlock(&h->guard_mu);
    return NULL;
}

/* ---- browser guards: Host, Origin, Content-Type ---- */

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Splits "name:port", "[v6]:port", "v4" into a lower-case host without port or trailing dot. */
static bool host_part(const char *in, size_t len, char *out, size_t cap)
{
    if (len == 0 || len >= cap)
        return false;
    const char *end = in + len;
    if (in[0] == '[') {
        const char *close = memchr(in, ']', len);
        if (!close)
            return false;
        in++;
        end = close;
    } else {
        const char *colon = memchr(in, ':', len);
        if (colon && !memchr(colon + 1, ':', (size_t)(in + len - colon - 1)))
            end = colon; /* one colon: a port; more: a bare IPv6 literal */
    }
    size_t n = (size_t)(end - in);
    while (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[n] = '\0';
    return true;
}

/* A name DNS rebinding cannot forge: an IP literal (rebinding needs a name the attacker owns),
 * localhost, this machine's name, or a configured one. ip_ok: whether IP literals count. */
static bool host_name_allowed(struct agent_http *h, const char *host, bool ip_ok)
{
    if (ip_ok && is_ip_literal(host))
        return true;
    size_t n = strlen(host);
    if (strcmp(host, "localhost") == 0 || (n > 10 && strcmp(host + n - 10, ".localhost") == 0))
        return true;
    if (h->hostname[0]) {
        size_t hn = strlen(h->hostname);
        if (strcmp(host, h->hostname) == 0 || (n == hn + 6 && strncmp(host, h->hostname, hn) == 0 &&
                                               strcmp(host + hn, ".local") == 0))
            return true;
    }
    char list[CFG_STR_PATH];
    pthread_mutex_lock(&h->lock);
    memcpy(list, h->allowed_hosts, sizeof(list));
    pthread_mutex_unlock(&h->lock);
    char *save = NULL;
    for (char *tok = strtok_r(list, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
        if (strcmp(tok, "*") == 0)
            return true;
        char want[256];
        if (host_part(tok, strlen(tok), want, sizeof(want)) && strcmp(want, host) == 0)
            return true;
    }
    return false;
}

/* NULL when the request may go on, else the reason for a 403. */
static const char *origin_problem(struct agent_http *h, struct MHD_Connection *c)
{
    char host[256] = "";
    const char *hv = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (hv && hv[0]) {
        if (!host_part(hv, strlen(hv), host, sizeof(host)) || !host_name_allowed(h, host, true))
            return "the Host header names a host this server does not answer for (add it to "
                   "[api] allowed_hosts)";
    }
    const char *ov = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (ov && ov[0] && strcmp(ov, "null") != 0) {
        const char *p = strstr(ov, "://");
        char oh[256];
        if (!p || !host_part(p + 3, strcspn(p + 3, "/"), oh, sizeof(oh)))
            return "malformed Origin header";
        /* A page from an IP address is still another site: an IP origin must be the host
         * itself. */
        if (strcmp(oh, host) != 0 && !host_name_allowed(h, oh, false))
            return "cross-origin requests are not allowed (add the origin's host to [api] "
                   "allowed_hosts)";
    }
    return NULL;
}

/* application/json, any case, parameters allowed. */
static bool json_content_type(struct MHD_Connection *c)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!v)
        return false;
    while (*v == ' ' || *v == '\t')
        v++;
    static const char want[] = "application/json";
    if (strncasecmp(v, want, sizeof(want) - 1) != 0)
        return false;
    char next = v[sizeof(want) - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

/* ---- libmicrohttpd callbacks ---- */

static unsigned method_bit(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return M_GET;
    if (strcmp(m, "HEAD") == 0)
        return M_HEAD;
    if (strcmp(m, "POST") == 0)
        return M_POST;
    if (strcmp(m, "PUT") == 0)
        return M_PUT;
    return 0;
}

static int find_route(const char *url)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t n = strlen(routes[i].path);
        if (routes[i].prefix) {
            if (strncmp(url, routes[i].path, n) == 0 && url[n] && !strchr(url + n, '/'))
                return (int)i;
        } else if (strcmp(url, routes[i].path) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Checks that need only the headers: route, method, token, declared body size. */
static enum MHD_Result first_call(struct agent_http *h, struct MHD_Connection *c, struct conn *cn,
                                  const char *url, const char *method)
{
    cn->route = find_route(url);
    if (cn->route < 0) {
        cn->responded = true;
        return reply_error(h, c, 404, "invalid_request_error", "not_found",
                           "no such endpoint: %.200s", url);
    }
    if (!(routes[cn->route].methods & method_bit(method))) {
        cn->responded = true;
        struct openai_error e;
        openai_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                         "%.16s is not allowed on %.200s (allowed: %s)", method, url,
                         routes[cn->route].allow);
        return respond_error(h, c, &e, MHD_HTTP_HEADER_ALLOW, routes[cn->route].allow);
    }
    enum route route = routes[cn->route].route;
    const char *why = route == R_HEALTH ? NULL : origin_problem(h, c);
    if (why) {
        cn->responded = true;
        return reply_error(h, c, 403, "invalid_request_error", "forbidden_host", "%s", why);
    }
    if (route != R_HEALTH && route != R_METRICS && guard_busy(h)) {
        cn->responded = true;
        return respond_error_close(h, c, 503, "server_busy",
                                   "every connection slot is busy; retry later");
    }
    if (route != R_HEALTH && !authorized(h, c)) {
        cn->responded = true;
        struct openai_error e;
        openai_error_set(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                         "missing or wrong bearer token (send 'Authorization: Bearer <token>')");
        return respond_error(h, c, &e, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    if ((method_bit(method) & (M_POST | M_PUT)) && !json_content_type(c)) {
        /* Browsers send text/plain and form bodies cross-site without asking (no CORS
         * preflight); an API that only takes JSON refuses them before reading a byte. */
        cn->responded = true;
        return reply_error(h, c, 415, "invalid_request_error", "unsupported_media_type",
                           "request bodies must be 'Content-Type: application/json'");
    }
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    pthread_mutex_lock(&h->lock);
    size_t max = h->max_body;
    pthread_mutex_unlock(&h->lock);
    cn->max_body = max;
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > max) {
            cn->responded = true;
            return reply_error(h, c, 413, "invalid_request_error", "body_too_large",
                               "request body exceeds the limit of %zu bytes", max);
        }
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    struct agent_http *h = cls;
    struct conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof(*cn));
        if (!cn)
            return MHD_NO;
        cn->start_ns = cmn_now_ns();
        *con_cls = cn;
        return first_call(h, c, cn, url, method);
    }
    if (cn->responded) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cn->too_big && cn->body.len + *upload_size > cn->max_body) {
            cn->too_big = true;
            openai_buf_free(&cn->body);
        }
        if (!cn->too_big && openai_buf_append(&cn->body, upload_data, *upload_size) < 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->too_big) {
        cn->responded = true;
        return reply_error(h, c, 413, "invalid_request_error", "body_too_large",
                           "request body exceeds the limit of %zu bytes", cn->max_body);
    }
    cn->responded = true;
    guard_request_arrived(h, c);
    switch (routes[cn->route].route) {
    case R_CHAT:
        return handle_completion(h, c, cn, AGENT_REQ_CHAT);
    case R_COMPLETIONS:
        return handle_completion(h, c, cn, AGENT_REQ_COMPLETION);
    case R_MODELS:
        return handle_models(h, c, url, false);
    case R_MODEL:
        return handle_models(h, c, url, true);
    case R_HEALTH:
        return handle_health(h, c);
    case R_METRICS:
        return handle_metrics(h, c);
    case R_GOVERNOR:
        return handle_governor(h, c, cn, strcmp(method, "PUT") == 0);
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct agent_http *h = cls;
    guard_request_done(h, c);
    struct conn *cn = *con_cls;
    if (!cn)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_debug("http: request ended early (libmicrohttpd code %d)", (int)toe);
    openai_buf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("http: libmicrohttpd: %s", msg);
}

/* ---- lifecycle ---- */

static void apply_config(struct agent_http *h, const struct agent_config *cfg)
{
    pthread_mutex_lock(&h->lock);
    snprintf(h->token, sizeof(h->token), "%s", cfg->api.bearer_token);
    h->max_body = cfg->api.max_body_bytes > 0 ? (size_t)cfg->api.max_body_bytes : 0;
    snprintf(h->model_name, sizeof(h->model_name), "%s", cfg->api.model_name);
    snprintf(h->allowed_hosts, sizeof(h->allowed_hosts), "%s", cfg->api.allowed_hosts);
    pthread_mutex_unlock(&h->lock);
}

int agent_http_new(const struct agent_config *cfg, struct agent_worker *worker,
                   const struct agent_http_hooks *hooks, const struct agent_http_params *params,
                   struct agent_http **ret, char *err, size_t err_len)
{
    int rc;
    struct agent_http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, err_len, "http: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->guard_mu, NULL);
    pthread_condattr_t gca;
    pthread_condattr_init(&gca);
    pthread_condattr_setclock(&gca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->guard_cv, &gca);
    pthread_condattr_destroy(&gca);
    if (gethostname(h->hostname, sizeof(h->hostname) - 1) == 0) {
        for (char *p = h->hostname; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    } else {
        h->hostname[0] = '\0';
    }
    atomic_init(&h->refs, 1);
    atomic_init(&h->stopping, false);
    atomic_init(&h->quiesced, false);
    atomic_init(&h->fault, NULL);
    h->quiesced_fd = -1;
    atomic_init(&h->serial, 0);
    if (hooks)
        h->hooks = *hooks;
    if (params)
        h->params = *params;
    else
        agent_http_params_defaults(&h->params);
    h->models = h->params.models;
    if (h->params.poll_interval_ms == 0)
        h->params.poll_interval_ms = 100;
    if (h->params.max_connections == 0)
        h->params.max_connections = 64;
    if (h->params.max_connections_per_client == 0)
        h->params.max_connections_per_client = h->params.max_connections;
    if (h->params.header_timeout_ms == 0)
        h->params.header_timeout_ms = 10000;
    if (h->params.stream_buffer_bytes == 0)
        h->params.stream_buffer_bytes = (size_t)1 << 20;
    h->worker = worker;
    h->created = (int64_t)time(NULL);
    if (getrandom(&h->serial_base, sizeof(h->serial_base), GRND_NONBLOCK) != sizeof(h->serial_base))
        h->serial_base = cmn_wall_ns();
    apply_config(h, cfg);

    int port = h->params.port >= 0 ? h->params.port : cfg->api.port;
    if (port > 65535) {
        snprintf(err, err_len, "http: port %d out of range", port);
        rc = -EINVAL;
        goto fail;
    }
    struct sockaddr_in6 a6 = {0};
    struct sockaddr_in a4 = {0};
    const struct sockaddr *sa;
    /* ITC: needed by MHD_quiesce_daemon */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (inet_pton(AF_INET, cfg->api.listen, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        sa = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, cfg->api.listen, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, err_len, "http: [api] listen '%s' is not an IPv4 or IPv6 address",
                 cfg->api.listen);
        rc = -EINVAL;
        goto fail;
    }
    /* The logger goes first so that libmicrohttpd never prints on its own. */
    h->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_access, h,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, sa,
                              MHD_OPTION_CONNECTION_LIMIT, 2 * h->params.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->params.idle_timeout_s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(err, err_len, "http: cannot listen on %s port %d (in use, or not permitted)",
                 cfg->api.listen, port);
        rc = -EADDRINUSE;
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (uint16_t)port;
    if (pthread_create(&h->reaper, NULL, guard_reaper, h) != 0) {
        snprintf(err, err_len, "http: cannot start a thread");
        MHD_stop_daemon(h->mhd);
        rc = -EAGAIN;
        goto fail;
    }
    h->reaper_started = true;
    *ret = h;
    return 0;
fail:
    http_unref(h);
    return rc;
}

void agent_http_free(struct agent_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, true);
    if (h->reaper_started) {
        pthread_mutex_lock(&h->guard_mu);
        h->reaper_stop = true;
        pthread_cond_signal(&h->guard_cv);
        pthread_mutex_unlock(&h->guard_mu);
        pthread_join(h->reaper, NULL);
    }
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
    if (h->quiesced_fd >= 0)
        close(h->quiesced_fd);
    http_unref(h);
}

void agent_http_quiesce(struct agent_http *h)
{
    if (!h || atomic_exchange(&h->quiesced, true))
        return;
    MHD_socket fd = MHD_quiesce_daemon(h->mhd);
    if (fd != MHD_INVALID_SOCKET) {
        /* Refuse new connections now instead of leaving them in the backlog; the descriptor
         * itself may only be closed after MHD_stop_daemon. */
        shutdown(fd, SHUT_RDWR);
        h->quiesced_fd = fd;
    }
}

uint16_t agent_http_port(const struct agent_http *h)
{
    return h->port;
}

void agent_http_set_config(struct agent_http *h, const struct agent_config *cfg)
{
    apply_config(h, cfg);
}

void agent_http_set_fault(struct agent_http *h, const char *status)
{
    atomic_store(&h->fault, status);
}

void agent_http_set_no_model(struct agent_http *h)
{
    atomic_store(&h->no_model, true);
}

void agent_http_set_worker(struct agent_http *h, struct agent_worker *worker)
{
    pthread_mutex_lock(&h->lock);
    h->worker = worker;
    pthread_mutex_unlock(&h->lock);
}
