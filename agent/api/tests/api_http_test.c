/* The HTTP API over real loopback sockets, driven by curl: completions streamed and not, every
 * error status (bad JSON, wrong types, huge bodies, unknown model, missing token, queue full, no
 * model, unknown path, wrong method), metrics and governor endpoints, and cancellation when a
 * client disconnects mid-generation or the server stops.
 *
 * The engine side is a scripted worker defined here (agent_worker_submit/stats/model_id with the
 * exact declarations of worker.h): it emits a known token sequence at a chosen pace, which is
 * what makes "queue full" and "disconnect mid-stream" deterministic. The real worker with a real
 * model is exercised by the openai client tests in tests/node. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "config.h"
#include "ember_test.h"
#include "http.h"
#include "log.h"
#include "worker.h"

/* ---- a scripted engine worker ---- */

struct agent_worker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct agent_request *queue[8];
    size_t qlen, depth;
    bool busy, stop;
    pthread_t thread;
    _Atomic(const char *) model; /* "" = no model; swapped whole, never edited in place */
    int delay_us;                /* per token */
    uint64_t requests, prompt_tokens, gen_tokens;
    /* the last finished request */
    uint64_t finished;
    enum agent_finish last_finish;
    uint64_t last_gen;
};

/* What the main thread may look at, copied under the fake worker's lock. */
struct worker_view {
    size_t qlen;
    bool busy;
    uint64_t requests, finished, last_gen;
    enum agent_finish last_finish;
};

static void run_request(struct agent_worker *w, struct agent_request *req)
{
    const char *text =
        req->kind == AGENT_REQ_CHAT ? req->messages[req->n_messages - 1].content : req->prompt;
    struct agent_result res;
    memset(&res, 0, sizeof(res));
    res.prompt_tokens = strlen(text) / 4 + 1;
    snprintf(res.policy, sizeof(res.policy), "balanced");
    uint64_t t0 = cmn_now_ns();
    if (strstr(text, "FAIL_CONTEXT")) {
        res.finish = AGENT_FINISH_ERROR;
        res.error = -E2BIG;
        snprintf(res.error_msg, sizeof(res.error_msg),
                 "prompt is 9999 tokens; the context holds 512");
    } else {
        int n = req->sampling.has_max_tokens ? req->sampling.max_tokens : 8;
        bool quotes = strstr(text, "QUOTES") != NULL;
        res.finish = req->sampling.has_max_tokens ? AGENT_FINISH_LENGTH : AGENT_FINISH_STOP;
        for (int i = 0; i < n; i++) {
            if (atomic_load(&req->cancel)) {
                res.finish = AGENT_FINISH_CANCELLED;
                break;
            }
            pthread_mutex_lock(&w->mu);
            int delay_us = w->delay_us;
            pthread_mutex_unlock(&w->mu);
            if (delay_us)
                usleep((useconds_t)delay_us);
            char piece[32];
            int len = quotes ? snprintf(piece, sizeof(piece), "say \"hi\"\n\t\xe2\x82\xac")
                             : snprintf(piece, sizeof(piece), "tok%d ", i);
            res.gen_tokens++;
            if (req->sink.on_text(req->sink.user, piece, (size_t)len)) {
                res.finish = AGENT_FINISH_CANCELLED;
                break;
            }
        }
    }
    res.duration_ms = (double)(cmn_now_ns() - t0) / 1e6;
    res.decode_tokens_per_s = 100;
    res.prefill_tokens_per_s = 1000;
    res.energy_j = 0.5 * (double)(res.prompt_tokens + res.gen_tokens);
    res.j_per_token = 0.5;
    res.avg_power_w = 5;
    req->sink.on_done(req->sink.user, &res);
    pthread_mutex_lock(&w->mu);
    w->requests++;
    w->prompt_tokens += res.prompt_tokens;
    w->gen_tokens += res.gen_tokens;
    w->finished++;
    w->last_finish = res.finish;
    w->last_gen = res.gen_tokens;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *worker_main(void *arg)
{
    struct agent_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->qlen == 0)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->qlen == 0)
            break;
        struct agent_request *req = w->queue[0];
        memmove(w->queue, w->queue + 1, --w->qlen * sizeof(w->queue[0]));
        if (w->stop)
            atomic_store(&req->cancel, true);
        w->busy = true;
        pthread_mutex_unlock(&w->mu);
        run_request(w, req);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int agent_worker_submit(struct agent_worker *w, struct agent_request *req)
{
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (w->stop)
        rc = -ESHUTDOWN;
    else if (!atomic_load(&w->model)[0])
        rc = -ENODEV;
    else if (w->qlen >= w->depth)
        rc = -EBUSY;
    else
        w->queue[w->qlen++] = req;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void agent_worker_stats(struct agent_worker *w, struct agent_worker_stats *ret)
{
    pthread_mutex_lock(&w->mu);
    memset(ret, 0, sizeof(*ret));
    ret->queue_depth = w->qlen;
    ret->busy = w->busy;
    ret->requests = w->requests;
    ret->prompt_tokens = w->prompt_tokens;
    ret->gen_tokens = w->gen_tokens;
    pthread_mutex_unlock(&w->mu);
}

const char *agent_worker_model_id(const struct agent_worker *w)
{
    return atomic_load(&w->model);
}

/* The fake serves its one model, which is always loaded. */
size_t agent_worker_loaded(struct agent_worker *w, char (*ids)[128], size_t cap)
{
    const char *m = atomic_load(&w->model);
    if (!m[0] || !cap)
        return 0;
    snprintf(ids[0], 128, "%s", m);
    return 1;
}

uint64_t agent_worker_model_bytes(struct agent_worker *w, const struct eng_model_info *info)
{
    (void)w;
    (void)info;
    return 0;
}

static struct agent_worker W;

static struct worker_view wv(void)
{
    pthread_mutex_lock(&W.mu);
    struct worker_view v = {W.qlen, W.busy, W.requests, W.finished, W.last_gen, W.last_finish};
    pthread_mutex_unlock(&W.mu);
    return v;
}

static void worker_start(void)
{
    pthread_mutex_init(&W.mu, NULL);
    pthread_cond_init(&W.cv, NULL);
    W.depth = 1;
    atomic_store(&W.model, "stories260K");
    pthread_create(&W.thread, NULL, worker_main, &W);
}

static void worker_stop(void)
{
    pthread_mutex_lock(&W.mu);
    W.stop = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.thread, NULL);
}

static void set_delay_us(int us)
{
    pthread_mutex_lock(&W.mu);
    W.delay_us = us;
    pthread_mutex_unlock(&W.mu);
}

/* Waits until cond (evaluated under the worker lock) holds; false after timeout_ms. */
#define WAIT_FOR(cond, timeout_ms)                                          \
    ({                                                                      \
        uint64_t wf_end = cmn_now_ns() + (uint64_t)(timeout_ms)*1000000ULL; \
        bool wf_ok;                                                         \
        for (;;) {                                                          \
            pthread_mutex_lock(&W.mu);                                      \
            wf_ok = (cond);                                                 \
            pthread_mutex_unlock(&W.mu);                                    \
            if (wf_ok || cmn_now_ns() > wf_end)                             \
                break;                                                      \
            usleep(5000);                                                   \
        }                                                                   \
        wf_ok;                                                              \
    })

/* ---- hooks: a governor with a policy and a cap, and fixed sensor values ---- */

static pthread_mutex_t gov_mu = PTHREAD_MUTEX_INITIALIZER;
static char gov_policy[32] = "balanced";
static double gov_cap_w = 0;

static void hook_metrics(void *user, struct agent_metrics_snapshot *s)
{
    (void)user;
    s->power_w = 7.5;
    s->energy_j = 321;
    s->temp_c = 48.5;
    s->n_cpufreq = 1;
    snprintf(s->cpufreq[0].policy, sizeof(s->cpufreq[0].policy), "policy0");
    s->cpufreq[0].freq_khz = 1800000;
    pthread_mutex_lock(&gov_mu);
    snprintf(s->policy, sizeof(s->policy), "%s", gov_policy);
    s->power_cap_w = gov_cap_w;
    pthread_mutex_unlock(&gov_mu);
}

static int hook_gov_get(void *user, char *buf, size_t len)
{
    (void)user;
    pthread_mutex_lock(&gov_mu);
    snprintf(buf, len, "{\"policy\":\"%s\",\"power_cap_w\":%g}", gov_policy, gov_cap_w);
    pthread_mutex_unlock(&gov_mu);
    return 0;
}

static int hook_gov_set(void *user, const char *policy, double cap, char *err, size_t err_len)
{
    (void)user;
    static const char *known[] = {"balanced", "powersave", "performance", "efficiency"};
    bool ok = !policy[0];
    for (size_t i = 0; i < 4 && !ok; i++)
        ok = strcmp(policy, known[i]) == 0;
    if (!ok) {
        snprintf(err, err_len, "unknown policy '%s'", policy);
        return -EINVAL;
    }
    pthread_mutex_lock(&gov_mu);
    if (policy[0])
        snprintf(gov_policy, sizeof(gov_policy), "%s", policy);
    if (!isnan(cap))
        gov_cap_w = cap;
    pthread_mutex_unlock(&gov_mu);
    return 0;
}

/* ---- curl ---- */

static char tmpdir[64];
static int port;

struct resp {
    int status;
    char *body;
    char *headers;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

/* Starts curl for METHOD PATH with extra args; output goes to files named by tag. */
static pid_t curl_start(const char *tag, const char *method, const char *path,
                        const char *const *extra)
{
    char url[256], bfile[128], hfile[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    snprintf(bfile, sizeof(bfile), "%s/%s.body", tmpdir, tag);
    snprintf(hfile, sizeof(hfile), "%s/%s.hdr", tmpdir, tag);
    const char *argv[40] = {"curl", "-sS", "-X",  method,       "-o",
                            bfile,  "-D",  hfile, "--max-time", "20"};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i] && n < 37; i++)
        argv[n++] = extra[i];
    argv[n++] = url;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp("curl", (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void curl_finish(pid_t pid, const char *tag, struct resp *r)
{
    int st;
    waitpid(pid, &st, 0);
    char bfile[128], hfile[128];
    snprintf(bfile, sizeof(bfile), "%s/%s.body", tmpdir, tag);
    snprintf(hfile, sizeof(hfile), "%s/%s.hdr", tmpdir, tag);
    r->body = slurp(bfile);
    r->headers = slurp(hfile);
    r->status = 0;
    /* The last status line wins (a 100 Continue may come first). */
    for (const char *p = r->headers; (p = strstr(p, "HTTP/1.")); p++)
        r->status = atoi(p + 9);
    unlink(bfile);
    unlink(hfile);
}

static void curl(struct resp *r, const char *method, const char *path, const char *const *extra)
{
    curl_finish(curl_start("req", method, path, extra), "req", r);
}

/* POSTs a JSON body given inline. */
static void post(struct resp *r, const char *path, const char *json, const char *auth)
{
    const char *extra[] = {
        "-H", "Content-Type: application/json", "--data-binary", json, auth ? "-H" : NULL, auth,
        NULL};
    curl(r, "POST", path, extra);
}

static cJSON *json_of(const struct resp *r)
{
    cJSON *j = cJSON_Parse(r->body);
    CHECK_MSG(j != NULL, "not JSON: %s", r->body);
    return j;
}

static const char *jstr(const cJSON *j, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsString(x) ? x->valuestring : "(none)";
}

/* Expects an OpenAI error object with this status and code. */
static void expect_error(const struct resp *r, int status, const char *code, const char *what)
{
    CHECK_MSG(r->status == status, "%s: status %d, want %d (%s)", what, r->status, status, r->body);
    cJSON *j = cJSON_Parse(r->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    CHECK_MSG(cJSON_IsObject(e), "%s: no error object in %s", what, r->body);
    if (e) {
        CHECK_MSG(strcmp(jstr(e, "code", NULL), code) == 0, "%s: code %s, want %s", what,
                  jstr(e, "code", NULL), code);
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")));
        CHECK(cJSON_HasObjectItem(e, "param"));
    }
    CHECK_CONTAINS(r->headers, "Content-Type: application/json");
    cJSON_Delete(j);
}

#define MSG(text) "{\"messages\":[{\"role\":\"user\",\"content\":\"" text "\"}]"

/* ---- tests ---- */

static void test_basic_endpoints(void)
{
    struct resp r;
    curl(&r, "GET", "/health", NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(r.body, "{\"status\":\"ok\",\"model\":\"stories260K\"}");
    resp_free(&r);

    curl(&r, "GET", "/v1/models", NULL);
    CHECK_EQ_INT(r.status, 200);
    cJSON *j = json_of(&r);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0);
    CHECK_STR(jstr(m, "id", NULL), "stories260K");
    CHECK_STR(jstr(m, "object", NULL), "model");
    CHECK_STR(jstr(j, "object", NULL), "list");
    cJSON_Delete(j);
    resp_free(&r);

    curl(&r, "GET", "/v1/models/stories260K", NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    curl(&r, "GET", "/v1/models/gpt-4", NULL);
    expect_error(&r, 404, "model_not_found", "GET unknown model");
    resp_free(&r);

    curl(&r, "GET", "/v1/nothing", NULL);
    expect_error(&r, 404, "not_found", "unknown path");
    resp_free(&r);
    curl(&r, "GET", "/v1/chat/completions", NULL);
    expect_error(&r, 405, "method_not_allowed", "GET on chat");
    CHECK_CONTAINS(r.headers, "Allow: POST");
    resp_free(&r);
    curl(&r, "DELETE", "/health", NULL);
    expect_error(&r, 405, "method_not_allowed", "DELETE /health");
    resp_free(&r);
}

static void test_chat(void)
{
    struct resp r;
    post(&r, "/v1/chat/completions", MSG("hello") ",\"max_tokens\":3,\"model\":\"stories260K\"}",
         NULL);
    CHECK_EQ_INT(r.status, 200);
    cJSON *j = json_of(&r);
    CHECK_STR(jstr(j, "object", NULL), "chat.completion");
    CHECK(strncmp(jstr(j, "id", NULL), "chatcmpl-", 9) == 0);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    CHECK_STR(jstr(ch, "message", "content"), "tok0 tok1 tok2 ");
    CHECK_STR(jstr(ch, "message", "role"), "assistant");
    CHECK_STR(jstr(ch, "finish_reason", NULL), "length");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(u, "completion_tokens")->valueint, 3);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens")->valueint, 2);
    CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(u, "total_tokens")->valueint, 5);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "energy");
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(e, "joules")->valuedouble, 2.5, 1e-9);
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(e, "avg_watts")->valuedouble, 5, 1e-9);
    cJSON_Delete(j);
    resp_free(&r);

    /* Text that needs escaping survives the round trip. */
    post(&r, "/v1/chat/completions", MSG("QUOTES") ",\"max_tokens\":2}", NULL);
    j = json_of(&r);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    CHECK_STR(jstr(ch, "message", "content"), "say \"hi\"\n\t\xe2\x82\xac"
                                              "say \"hi\"\n\t\xe2\x82\xac");
    cJSON_Delete(j);
    resp_free(&r);

    /* Text completion, no max_tokens: the scripted worker stops by itself after 8. */
    post(&r, "/v1/completions", "{\"prompt\":\"Once\"}", NULL);
    CHECK_EQ_INT(r.status, 200);
    j = json_of(&r);
    CHECK_STR(jstr(j, "object", NULL), "text_completion");
    ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    CHECK_STR(jstr(ch, "text", NULL), "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 ");
    CHECK_STR(jstr(ch, "finish_reason", NULL), "stop");
    cJSON_Delete(j);
    resp_free(&r);
}

/* Splits an SSE body into data payloads (in place). */
static size_t sse(char *body, char **ev, size_t max)
{
    size_t n = 0;
    for (char *p = body; *p && n < max;) {
        char *end = strstr(p, "\n\n");
        if (!end || strncmp(p, "data: ", 6) != 0) {
            CHECK_MSG(false, "bad SSE framing at: %.80s", p);
            break;
        }
        *end = '\0';
        ev[n++] = p + 6;
        p = end + 2;
    }
    return n;
}

static void test_stream(void)
{
    struct resp r;
    post(&r, "/v1/chat/completions",
         MSG("hi") ",\"max_tokens\":4,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
         NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.headers, "Content-Type: text/event-stream");
    char *ev[32];
    size_t n = sse(r.body, ev, 32);
    CHECK_EQ_INT(n, 8); /* role, 4 tokens, finish, usage, [DONE] */
    if (n == 8) {
        cJSON *j = cJSON_Parse(ev[0]);
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        CHECK_STR(jstr(ch, "delta", "role"), "assistant");
        CHECK_STR(jstr(j, "object", NULL), "chat.completion.chunk");
        char id[64];
        snprintf(id, sizeof(id), "%s", jstr(j, "id", NULL));
        cJSON_Delete(j);
        char all[256] = "";
        for (size_t i = 1; i <= 4; i++) {
            j = cJSON_Parse(ev[i]);
            CHECK_STR(jstr(j, "id", NULL), id);
            ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
            strncat(all, jstr(ch, "delta", "content"), sizeof(all) - strlen(all) - 1);
            CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")));
            cJSON_Delete(j);
        }
        CHECK_STR(all, "tok0 tok1 tok2 tok3 ");
        j = cJSON_Parse(ev[5]);
        ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        CHECK_STR(jstr(ch, "finish_reason", NULL), "length");
        CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "energy")));
        cJSON_Delete(j);
        j = cJSON_Parse(ev[6]);
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "choices")), 0);
        CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "usage"),
                                                      "completion_tokens")
                         ->valueint,
                     4);
        cJSON_Delete(j);
        CHECK_STR(ev[7], "[DONE]");
    }
    resp_free(&r);

    post(&r, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2,\"stream\":true}", NULL);
    CHECK_EQ_INT(r.status, 200);
    n = sse(r.body, ev, 32);
    CHECK_EQ_INT(n, 4); /* 2 tokens, finish, [DONE] */
    if (n == 4) {
        cJSON *j = cJSON_Parse(ev[1]);
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        CHECK_STR(jstr(ch, "text", NULL), "tok1 ");
        CHECK_STR(jstr(j, "object", NULL), "text_completion");
        cJSON_Delete(j);
        CHECK_STR(ev[3], "[DONE]");
    }
    resp_free(&r);
}

static void test_errors(void)
{
    struct resp r;
    post(&r, "/v1/chat/completions", "{\"messages\":[", NULL);
    expect_error(&r, 400, "invalid_json", "truncated JSON");
    resp_free(&r);
    post(&r, "/v1/chat/completions", "", NULL);
    expect_error(&r, 400, "invalid_json", "empty body");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") ",\"temperature\":\"hot\"}", NULL);
    expect_error(&r, 400, "invalid_type", "string temperature");
    CHECK_CONTAINS(r.body, "\"param\":\"temperature\"");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") ",\"max_tokens\":-1}", NULL);
    expect_error(&r, 400, "invalid_value", "negative max_tokens");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") ",\"model\":\"gpt-4o\"}", NULL);
    expect_error(&r, 404, "model_not_found", "unknown model");
    CHECK_CONTAINS(r.body, "gpt-4o");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("FAIL_CONTEXT") "}", NULL);
    expect_error(&r, 400, "context_length_exceeded", "engine error before output");
    CHECK_CONTAINS(r.body, "context holds 512");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("FAIL_CONTEXT") ",\"stream\":true}", NULL);
    expect_error(&r, 400, "context_length_exceeded", "engine error before streamed output");
    resp_free(&r);

    /* Bodies over max_body_bytes (4096 here): declared, and chunked without a length. */
    char path[160];
    snprintf(path, sizeof(path), "%s/big.json", tmpdir);
    FILE *f = fopen(path, "w");
    fputs(MSG(""), f);
    for (int i = 0; i < 20000; i++)
        fputc(' ', f);
    fputs("}", f);
    fclose(f);
    char at[170];
    snprintf(at, sizeof(at), "@%s", path);
    const char *big[] = {"-H", "Content-Type: application/json", "--data-binary", at, NULL};
    curl(&r, "POST", "/v1/chat/completions", big);
    expect_error(&r, 413, "body_too_large", "huge body");
    resp_free(&r);
    const char *chunked[] = {"-H",
                             "Transfer-Encoding: chunked",
                             "-H",
                             "Content-Type: application/json",
                             "--data-binary",
                             at,
                             NULL};
    curl(&r, "POST", "/v1/chat/completions", chunked);
    expect_error(&r, 413, "body_too_large", "huge chunked body");
    resp_free(&r);
    /* Just under the limit is fine. */
    f = fopen(path, "w");
    fputs(MSG("") ",\"max_tokens\":1", f);
    for (int i = 0; i < 3900; i++)
        fputc(' ', f);
    fputs("}", f);
    fclose(f);
    curl(&r, "POST", "/v1/chat/completions", big);
    CHECK_MSG(r.status == 200, "body under the limit: %d %s", r.status, r.body);
    resp_free(&r);
    unlink(path);
}

static void test_auth(struct agent_http *h, struct agent_config *cfg)
{
    snprintf(cfg->api.bearer_token, sizeof(cfg->api.bearer_token), "s3cret");
    agent_http_set_config(h, cfg);
    struct resp r;
    post(&r, "/v1/chat/completions", MSG("x") "}", NULL);
    expect_error(&r, 401, "invalid_api_key", "no token");
    CHECK_CONTAINS(r.headers, "WWW-Authenticate: Bearer");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") "}", "Authorization: Bearer s3cre");
    expect_error(&r, 401, "invalid_api_key", "wrong token");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") "}", "Authorization: Basic s3cret");
    expect_error(&r, 401, "invalid_api_key", "wrong scheme");
    resp_free(&r);
    const char *none[] = {NULL};
    curl(&r, "GET", "/metrics", none);
    expect_error(&r, 401, "invalid_api_key", "metrics without token");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") ",\"max_tokens\":1}", "Authorization: Bearer s3cret");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    /* Probes need no token. */
    curl(&r, "GET", "/health", NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    cfg->api.bearer_token[0] = '\0';
    agent_http_set_config(h, cfg);
    post(&r, "/v1/chat/completions", MSG("x") ",\"max_tokens\":1}", NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
}

static void test_no_model(struct agent_http *h)
{
    struct resp r;
    agent_http_set_worker(h, NULL);
    curl(&r, "GET", "/health", NULL);
    CHECK_EQ_INT(r.status, 503);
    CHECK_STR(r.body, "{\"status\":\"loading\"}");
    resp_free(&r);
    post(&r, "/v1/chat/completions", MSG("x") "}", NULL);
    expect_error(&r, 503, "model_not_loaded", "completion while loading");
    resp_free(&r);
    agent_http_set_worker(h, &W);

    atomic_store(&W.model, "");
    curl(&r, "GET", "/health", NULL);
    CHECK_EQ_INT(r.status, 503);
    CHECK_STR(r.body, "{\"status\":\"no_model\"}");
    resp_free(&r);
    post(&r, "/v1/completions", "{\"prompt\":\"x\"}", NULL);
    expect_error(&r, 503, "model_not_loaded", "completion without a model");
    resp_free(&r);
    curl(&r, "GET", "/v1/models", NULL);
    CHECK_STR(r.body, "{\"object\":\"list\",\"data\":[]}");
    resp_free(&r);
    atomic_store(&W.model, "stories260K");
}

static void test_queue_full(void)
{
    set_delay_us(10000);
    const char *slow[] = {"-H", "Content-Type: application/json", "--data-binary",
                          MSG("a") ",\"max_tokens\":1000,\"stream\":true}", NULL};
    pid_t a = curl_start("qa", "POST", "/v1/chat/completions", slow);
    CHECK_MSG(WAIT_FOR(W.busy, 5000), "first request never started");
    pid_t b = curl_start("qb", "POST", "/v1/chat/completions", slow);
    CHECK_MSG(WAIT_FOR(W.qlen == 1, 5000), "second request never queued");
    struct resp r;
    post(&r, "/v1/chat/completions", MSG("c") "}", NULL);
    expect_error(&r, 429, "queue_full", "third request");
    resp_free(&r);
    /* Both clients hang up: both generations are cancelled, the queued one before it starts. */
    uint64_t before = wv().finished;
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    struct resp ra, rb;
    curl_finish(a, "qa", &ra);
    curl_finish(b, "qb", &rb);
    resp_free(&ra);
    resp_free(&rb);
    CHECK_MSG(WAIT_FOR(W.finished >= before + 2 && !W.busy && W.qlen == 0, 3000),
              "cancelled requests still running");
    CHECK_EQ_INT(wv().last_finish, AGENT_FINISH_CANCELLED);
    CHECK_MSG(wv().last_gen < 100, "queued request generated %llu tokens after its client left",
              (unsigned long long)wv().last_gen);
    set_delay_us(0);
}

/* curl --max-time during a long generation: the worker must stop generating for it. */
static void test_disconnect(bool stream)
{
    set_delay_us(5000);
    uint64_t before = wv().finished;
    const char *body = stream ? MSG("long") ",\"max_tokens\":2000,\"stream\":true}"
                              : MSG("long") ",\"max_tokens\":2000}";
    const char *extra[] = {
        "-H", "Content-Type: application/json", "--data-binary", body, "--max-time", "0.5", NULL};
    uint64_t t0 = cmn_now_ns();
    struct resp r;
    curl(&r, "POST", "/v1/chat/completions", extra);
    resp_free(&r);
    bool ended = WAIT_FOR(W.finished > before, 2000);
    double after_ms = (double)(cmn_now_ns() - t0) / 1e6 - 500;
    CHECK_MSG(ended, "generation went on after the client left (stream %d)", stream);
    CHECK_EQ_INT(wv().last_finish, AGENT_FINISH_CANCELLED);
    /* 2000 tokens would take 10 s; at 5 ms a token the 0.5 s client saw about 100. */
    CHECK_MSG(wv().last_gen < 400, "generated %llu tokens", (unsigned long long)wv().last_gen);
    printf("disconnect (%s): cancelled after %llu tokens, %.0f ms after the client left\n",
           stream ? "stream" : "non-stream", (unsigned long long)wv().last_gen, after_ms);
    set_delay_us(0);
}

static void test_metrics_governor(void)
{
    struct resp r;
    curl(&r, "GET", "/v1/governor", NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(r.body, "{\"policy\":\"balanced\",\"power_cap_w\":0}");
    resp_free(&r);
    const char *put[] = {"-H", "Content-Type: application/json", "--data-binary",
                         "{\"policy\":\"powersave\",\"power_cap_w\":6.5}", NULL};
    curl(&r, "PUT", "/v1/governor", put);
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(r.body, "{\"policy\":\"powersave\",\"power_cap_w\":6.5}");
    resp_free(&r);
    const char *bad[] = {"-H", "Content-Type: application/json", "--data-binary",
                         "{\"policy\":\"turbo\"}", NULL};
    curl(&r, "PUT", "/v1/governor", bad);
    expect_error(&r, 400, "invalid_value", "unknown policy");
    CHECK_CONTAINS(r.body, "unknown policy 'turbo'");
    resp_free(&r);
    const char *badtype[] = {"-H", "Content-Type: application/json", "--data-binary",
                             "{\"power_cap_w\":\"high\"}", NULL};
    curl(&r, "PUT", "/v1/governor", badtype);
    expect_error(&r, 400, "invalid_type", "cap as string");
    resp_free(&r);
    const char *post_[] = {"-H", "Content-Type: application/json", "--data-binary", "{}", NULL};
    curl(&r, "POST", "/v1/governor", post_);
    expect_error(&r, 405, "method_not_allowed", "POST governor");
    resp_free(&r);

    curl(&r, "GET", "/metrics", NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.headers, "Content-Type: text/plain; version=0.0.4");
    CHECK_CONTAINS(r.body, "ember_model_loaded{model=\"stories260K\"} 1\n");
    CHECK_CONTAINS(r.body, "# TYPE ember_request_duration_seconds histogram\n");
    CHECK_CONTAINS(r.body, "ember_power_watts 7.5\n");
    CHECK_CONTAINS(r.body, "ember_energy_joules_total 321\n");
    CHECK_CONTAINS(r.body, "ember_temperature_celsius 48.5\n");
    CHECK_CONTAINS(r.body, "ember_cpu_frequency_hertz{policy=\"policy0\"} 1800000000\n");
    CHECK_CONTAINS(r.body, "ember_governor_policy{policy=\"powersave\"} 1\n");
    CHECK_CONTAINS(r.body, "ember_power_cap_watts 6.5\n");
    CHECK_CONTAINS(r.body, "ember_http_responses_total{code=\"429\"} 1\n");
    CHECK_CONTAINS(r.body, "ember_http_responses_total{code=\"413\"} 2\n");
    CHECK_CONTAINS(r.body, "ember_tokens_per_second{phase=\"decode\"} 100\n");
    /* Every successful completion so far was observed once in the histogram. */
    char want[96];
    uint64_t ok = wv().requests;
    static const char count[] = "ember_request_duration_seconds_count ";
    const char *c = strstr(r.body, count);
    CHECK(c != NULL);
    if (c) {
        unsigned long long n = strtoull(c + sizeof(count) - 1, NULL, 10);
        CHECK_MSG(n >= 8 && n <= ok, "histogram count %llu, requests %llu", n,
                  (unsigned long long)ok);
    }
    snprintf(want, sizeof(want), "ember_requests_total %llu\n", (unsigned long long)ok);
    CHECK_CONTAINS(r.body, want);
    resp_free(&r);
}

static int raw_connect(int to_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)to_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Connection limit, idle timeout and oversized headers, on a second server with small limits. */
static void test_limits(struct agent_config *cfg)
{
    struct agent_http_params p;
    agent_http_params_defaults(&p);
    p.port = 0;
    p.max_connections = 2;
    p.idle_timeout_s = 2;
    struct agent_http *h = NULL;
    char err[256];
    CHECK_EQ_INT(agent_http_new(cfg, &W, NULL, &p, &h, err, sizeof(err)), 0);
    if (!h)
        return;
    int main_port = port;
    port = agent_http_port(h);
    int a = raw_connect(port), b = raw_connect(port);
    CHECK(a >= 0 && b >= 0);
    usleep(100000);
    /* Over the limit, the oldest connection that has not sent a request makes room (issue 14:
     * idle connections used to lock everyone out). */
    struct resp r;
    const char *quick[] = {"--max-time", "0.7", NULL};
    curl(&r, "GET", "/health", quick);
    CHECK_MSG(r.status == 200, "over a limit of 2 idle connections: %d", r.status);
    resp_free(&r);
    char c;
    CHECK_EQ_INT(read(a, &c, 1), 0); /* the oldest was dropped */
    close(a);
    /* Connections that send nothing are closed after the timeout. */
    uint64_t t0 = cmn_now_ns();
    CHECK_EQ_INT(read(b, &c, 1), 0);
    double idle_s = (double)(cmn_now_ns() - t0) / 1e9;
    CHECK_MSG(idle_s < 4, "idle connection closed after %.1f s", idle_s);
    close(b);
    usleep(100000);
    curl(&r, "GET", "/health", NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    /* A 64 KiB header is refused, not buffered. */
    char *big = malloc(65536 + 16);
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'a', 65536);
    big[7 + 65536] = '\0';
    const char *hdr[] = {"-H", big, NULL};
    curl(&r, "GET", "/health", hdr);
    CHECK_MSG(r.status == 431 || r.status == 413 || r.status == 0, "64 KiB header: %d", r.status);
    resp_free(&r);
    free(big);
    curl(&r, "GET", "/health", NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    agent_http_free(h);
    port = main_port;
}

/* Issue 14: 200 connections trickling headers (as an attacker on the network would) neither lock
 * out /health nor stay open past the header deadline. */
static void test_slow_headers(struct agent_config *cfg)
{
    struct agent_http_params p;
    agent_http_params_defaults(&p);
    p.port = 0;
    p.header_timeout_ms = 1500;
    struct agent_http *h = NULL;
    char err[256];
    CHECK_EQ_INT(agent_http_new(cfg, &W, NULL, &p, &h, err, sizeof(err)), 0);
    if (!h)
        return;
    int main_port = port;
    port = agent_http_port(h);
    enum { N_SLOW = 200 };
    static int fds[N_SLOW];
    int opened = 0;
    for (int i = 0; i < N_SLOW; i++) {
        fds[i] = raw_connect(port);
        if (fds[i] < 0)
            continue;
        opened++;
        static const char start[] = "GET /health HTTP/1.1\r\nX";
        if (write(fds[i], start, sizeof(start) - 1) < 0) {
            /* dropped already: fine */
        }
    }
    CHECK_EQ_INT(opened, N_SLOW);
    usleep(100000);
    for (int i = 0; i < N_SLOW; i++) /* one more header byte each: still not a request */
        if (fds[i] >= 0 && write(fds[i], "-", 1) < 0) {
        }
    struct resp r;
    const char *quick[] = {"--max-time", "1", NULL};
    uint64_t t0 = cmn_now_ns();
    curl(&r, "GET", "/health", quick);
    double ms = (double)(cmn_now_ns() - t0) / 1e6;
    CHECK_MSG(r.status == 200, "/health under %d slow connections: status %d", N_SLOW, r.status);
    CHECK_MSG(ms < 1000, "/health took %.0f ms under %d slow connections", ms, N_SLOW);
    printf("/health under %d slow-header connections: %.1f ms\n", N_SLOW, ms);
    resp_free(&r);
    curl(&r, "GET", "/metrics", quick);
    CHECK_MSG(r.status == 200, "/metrics under slow connections: status %d", r.status);
    resp_free(&r);
    /* Past the deadline every slow connection is gone, however it trickles. */
    usleep(2000000);
    int still_open = 0;
    for (int i = 0; i < N_SLOW; i++) {
        if (fds[i] < 0)
            continue;
        if (write(fds[i], "-", 1) < 0) {
        }
        char c;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = read(fds[i], &c, 1);
        if (n < 0 && errno == EAGAIN)
            still_open++;
        close(fds[i]);
        if (still_open > 3)
            break;
    }
    CHECK_MSG(still_open == 0, "%d slow connections outlived the header deadline", still_open);
    agent_http_free(h);
    port = main_port;
}

/* Issue 14: DNS rebinding and cross-site POSTs. */
static void test_browser_guards(struct agent_http *h, struct agent_config *cfg)
{
    struct resp r;
    const char *evil[] = {"-H", "Host: evil.example", NULL};
    curl(&r, "GET", "/v1/models", evil);
    expect_error(&r, 403, "forbidden_host", "rebound Host");
    resp_free(&r);
    curl(&r, "GET", "/health", evil); /* probes are exempt */
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    const char *evil_put[] = {"-H",
                              "Host: evil.example:8088",
                              "-H",
                              "Content-Type: application/json",
                              "--data-binary",
                              "{\"policy\":\"performance\"}",
                              NULL};
    curl(&r, "PUT", "/v1/governor", evil_put);
    expect_error(&r, 403, "forbidden_host", "rebound governor PUT");
    resp_free(&r);
    const char *local[] = {"-H", "Host: localhost:8088", NULL};
    curl(&r, "GET", "/v1/models", local);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    const char *v6[] = {"-H", "Host: [::1]:8088", NULL};
    curl(&r, "GET", "/v1/models", v6);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    const char *origin[] = {"-H", "Origin: http://evil.example", NULL};
    curl(&r, "GET", "/v1/models", origin);
    expect_error(&r, 403, "forbidden_host", "cross-site Origin");
    resp_free(&r);
    const char *ip_origin[] = {"-H", "Origin: http://192.0.2.7", NULL};
    curl(&r, "GET", "/v1/models", ip_origin);
    expect_error(&r, 403, "forbidden_host", "cross-site IP Origin");
    resp_free(&r);
    char same[64];
    snprintf(same, sizeof(same), "Origin: http://127.0.0.1:%d", port);
    const char *same_origin[] = {"-H", same, NULL};
    curl(&r, "GET", "/v1/models", same_origin);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    /* What a cross-site page can POST without a preflight: text/plain, forms, no type. */
    const char *plain[] = {"-H", "Content-Type: text/plain", "--data-binary", MSG("hi") "}", NULL};
    curl(&r, "POST", "/v1/chat/completions", plain);
    expect_error(&r, 415, "unsupported_media_type", "text/plain POST");
    resp_free(&r);
    const char *form[] = {"--data-binary", MSG("hi") "}", NULL};
    curl(&r, "POST", "/v1/chat/completions", form);
    expect_error(&r, 415, "unsupported_media_type", "form POST");
    resp_free(&r);
    const char *json_cs[] = {"-H", "Content-Type: Application/JSON; charset=utf-8", "--data-binary",
                             MSG("hi") "}", NULL};
    curl(&r, "POST", "/v1/chat/completions", json_cs);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    /* A configured name is accepted (live, on reload). */
    snprintf(cfg->api.allowed_hosts, sizeof(cfg->api.allowed_hosts), "ember.lan, evil.example");
    agent_http_set_config(h, cfg);
    curl(&r, "GET", "/v1/models", evil);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    cfg->api.allowed_hosts[0] = '\0';
    agent_http_set_config(h, cfg);
}

/* Issue 14: a streaming client that stops reading is dropped and its generation cancelled once
 * its unsent bytes pass the bound, instead of the buffer growing without end. */
static void test_stream_backpressure(struct agent_config *cfg)
{
    struct agent_http_params p;
    agent_http_params_defaults(&p);
    p.port = 0;
    p.stream_buffer_bytes = 65536;
    struct agent_http *h = NULL;
    char err[256];
    CHECK_EQ_INT(agent_http_new(cfg, &W, NULL, &p, &h, err, sizeof(err)), 0);
    if (!h)
        return;
    uint64_t before = wv().finished;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(agent_http_port(h))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    static const char body[] = MSG("a") ",\"max_tokens\":2000000,\"stream\":true}";
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof(body) - 1, body);
    CHECK(write(fd, req, (size_t)n) == n);
    /* never read */
    CHECK_MSG(WAIT_FOR(W.finished > before, 20000), "the generation was never cancelled");
    struct worker_view v = wv();
    CHECK_EQ_INT(v.last_finish, AGENT_FINISH_CANCELLED);
    CHECK_MSG(v.last_gen < 2000000, "all %llu tokens were buffered",
              (unsigned long long)v.last_gen);
    printf("a client that stopped reading was dropped after %llu tokens\n",
           (unsigned long long)v.last_gen);
    close(fd);
    agent_http_free(h);
}

/* Graceful stop: no new connections, new requests on open ones get 503, the running stream
 * completes normally. */
static void test_quiesce(struct agent_http *h)
{
    set_delay_us(5000);
    const char *slow[] = {"-H", "Content-Type: application/json", "--data-binary",
                          MSG("a") ",\"max_tokens\":60,\"stream\":true}", NULL};
    int keep = raw_connect(port); /* idle keep-alive connections opened before */
    int keep2 = raw_connect(port);
    pid_t a = curl_start("ga", "POST", "/v1/chat/completions", slow);
    CHECK(WAIT_FOR(W.busy, 5000));
    agent_http_quiesce(h);
    struct resp r;
    uint64_t t0 = cmn_now_ns();
    curl(&r, "GET", "/health", NULL);
    CHECK_MSG(cmn_now_ns() - t0 < 2000000000ULL, "a new connection hung instead of failing");
    CHECK_MSG(r.status == 0, "a new connection was served (%d) after quiesce", r.status);
    resp_free(&r);
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(write(keep, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1));
    char buf[512] = "";
    ssize_t n = 0, got;
    while ((got = read(keep, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
        n += got;
    buf[n > 0 ? n : 0] = '\0';
    CHECK_CONTAINS(buf, "HTTP/1.1 503");
    CHECK_CONTAINS(buf, "{\"status\":\"stopping\"}");
    close(keep);
    /* A fault (the daemon's privileged helper died) is what /health reports above all, also
     * while the server stops for it. */
    agent_http_set_fault(h, "privileged_helper_lost");
    CHECK(write(keep2, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1));
    n = 0;
    while ((got = read(keep2, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
        n += got;
    buf[n > 0 ? n : 0] = '\0';
    CHECK_CONTAINS(buf, "HTTP/1.1 503");
    CHECK_CONTAINS(buf, "{\"status\":\"privileged_helper_lost\"}");
    close(keep2);
    curl_finish(a, "ga", &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "tok59 ");
    CHECK_CONTAINS(r.body, "\"finish_reason\":\"length\"");
    CHECK_CONTAINS(r.body, "data: [DONE]\n\n");
    resp_free(&r);
    set_delay_us(0);
}

/* Hard stop: agent_http_free with a stream in flight cancels it and returns promptly. */
static void test_free_in_flight(struct agent_config *cfg)
{
    struct agent_http_params p;
    agent_http_params_defaults(&p);
    p.port = 0;
    struct agent_http *h = NULL;
    char err[256];
    CHECK_EQ_INT(agent_http_new(cfg, &W, NULL, &p, &h, err, sizeof(err)), 0);
    if (!h)
        return;
    port = agent_http_port(h);
    set_delay_us(5000);
    uint64_t before = wv().finished;
    const char *slow[] = {"-H", "Content-Type: application/json", "--data-binary",
                          MSG("a") ",\"max_tokens\":5000,\"stream\":true}", NULL};
    pid_t a = curl_start("sa", "POST", "/v1/chat/completions", slow);
    CHECK(WAIT_FOR(W.busy, 5000));
    usleep(100000);
    uint64_t t0 = cmn_now_ns();
    agent_http_free(h);
    double ms = (double)(cmn_now_ns() - t0) / 1e6;
    CHECK_MSG(ms < 2000, "agent_http_free took %.0f ms", ms);
    CHECK_MSG(WAIT_FOR(W.finished > before, 2000), "generation survived the server");
    CHECK_EQ_INT(wv().last_finish, AGENT_FINISH_CANCELLED);
    struct resp r;
    curl_finish(a, "sa", &r);
    CHECK_CONTAINS(r.body, "data: {\"id\":\"chatcmpl-");
    resp_free(&r);
    printf("shutdown with a stream in flight: %.0f ms\n", ms);
    set_delay_us(0);
}

int main(void)
{
    if (system("curl --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "curl not found\n");
        return ET_SKIP;
    }
    signal(SIGPIPE, SIG_IGN); /* writes to connections the server dropped */
    agent_log_set_level(AGENT_LOG_WARNING);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/api_http_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    worker_start();
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    cfg.api.max_body_bytes = 4096;
    struct agent_http_hooks hooks = {
        .metrics = hook_metrics, .governor_get = hook_gov_get, .governor_set = hook_gov_set};
    struct agent_http_params params;
    agent_http_params_defaults(&params);
    params.port = 0;
    struct agent_http *h = NULL;
    char err[256];
    int rc = agent_http_new(&cfg, &W, &hooks, &params, &h, err, sizeof(err));
    CHECK_MSG(rc == 0, "agent_http_new: %s", err);
    if (rc)
        return et_finish();
    port = agent_http_port(h);
    CHECK(port > 0);

    /* A second server on the same port fails cleanly. */
    struct agent_http *h2 = NULL;
    params.port = port;
    CHECK_EQ_INT(agent_http_new(&cfg, &W, NULL, &params, &h2, err, sizeof(err)), -EADDRINUSE);
    CHECK_CONTAINS(err, "cannot listen");
    snprintf(cfg.api.listen, sizeof(cfg.api.listen), "localhost");
    CHECK_EQ_INT(agent_http_new(&cfg, &W, NULL, &params, &h2, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "'localhost'");
    snprintf(cfg.api.listen, sizeof(cfg.api.listen), "127.0.0.1");

    test_basic_endpoints();
    test_chat();
    test_stream();
    test_errors();
    test_auth(h, &cfg);
    test_no_model(h);
    test_queue_full();
    test_disconnect(true);
    test_disconnect(false);
    test_metrics_governor();
    test_limits(&cfg);
    test_slow_headers(&cfg);
    test_browser_guards(h, &cfg);
    test_stream_backpressure(&cfg);
    test_free_in_flight(&cfg);
    port = agent_http_port(h);
    test_quiesce(h);
    agent_http_free(h);
    worker_stop();
    rmdir(tmpdir);
    return et_finish();
}
