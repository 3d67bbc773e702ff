/* Benchmark (label bench): the HTTP API's overhead per streamed token, against the engine's own
 * time per token. The same seeded requests run through the real engine worker with stories260K
 * twice, interleaved: directly (a sink that drops the text) and through the HTTP server as an SSE
 * stream read by curl. Compared per generated token: the worker's wall time for the request
 * (what the API adds to the engine thread: escaping, SSE framing, locking, waking the connection
 * thread) and this process's CPU time (which also counts the connection thread's sends; curl's
 * own CPU is not counted). Target: < 2 % of the engine's time.
 *   api_stream_bench [MODEL] [ROUNDS] [COALESCE_MS] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "config.h"
#include "engine/engine.h"
#include "ember_test.h"
#include "http.h"
#include "log.h"
#include "openai.h"
#include "worker.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct agent_result last;
static bool have_last;
static double worker_cpu_s; /* the worker thread's CPU time when its last request ended */

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void hook_done(void *user, const struct agent_result *r)
{
    (void)user;
    double t = thread_cpu_s();
    pthread_mutex_lock(&mu);
    worker_cpu_s = t;
    last = *r;
    have_last = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static struct agent_result wait_done(double *worker_cpu)
{
    pthread_mutex_lock(&mu);
    while (!have_last)
        pthread_cond_wait(&cv, &mu);
    have_last = false;
    struct agent_result r = last;
    *worker_cpu = worker_cpu_s;
    pthread_mutex_unlock(&mu);
    return r;
}

static int drop_text(void *user, const char *text, size_t len)
{
    (void)user;
    (void)text;
    (void)len;
    return 0;
}

static void drop_done(void *user, const struct agent_result *r)
{
    (void)user;
    (void)r;
}

/* What the HTTP sink does on the worker thread for one token: lock, escape and frame the text
 * into the stream buffer, unlock (the buffer is drained as the content reader would). */
static double sink_cost_us(void)
{
    struct openai_response_id rid;
    openai_response_id_init(&rid, AGENT_REQ_CHAT, 1, 1700000000, "stories260K");
    struct openai_stream st;
    openai_stream_init(&st, &rid);
    struct openai_buf b = {0};
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    static const char *pieces[] = {" Once", " upon", " a", " time", ",", " there", " was", "\n"};
    const int n = 2000000;
    double t0 = thread_cpu_s();
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&m);
        const char *p = pieces[i & 7];
        openai_stream_text(&st, p, strlen(p), &b);
        if (b.len > 16384)
            b.len = 0;
        pthread_mutex_unlock(&m);
    }
    double us = (thread_cpu_s() - t0) * 1e6 / n;
    openai_buf_free(&b);
    openai_stream_free(&st);
    return us;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char *PROMPT = "Once upon a time, there was a little girl named Lily.";

static struct agent_request *make_request(uint64_t seed, int max_tokens)
{
    struct agent_request *req = agent_request_new(AGENT_REQ_COMPLETION);
    req->prompt = strdup(PROMPT);
    req->sampling.has_seed = true;
    req->sampling.seed = seed;
    req->sampling.has_temperature = true;
    req->sampling.temperature = 1.0;
    req->sampling.has_max_tokens = true;
    req->sampling.max_tokens = max_tokens;
    return req;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char model_path[512];
    snprintf(model_path, sizeof(model_path), "%s", argc > 1 ? argv[1] : "");
    if (!model_path[0])
        snprintf(model_path, sizeof(model_path), "%s/models/stories260K.gguf", et_shared_dir());
    int rounds = argc > 2 ? atoi(argv[2]) : 30;
    if (access(model_path, R_OK) != 0 || system("curl --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skip: %s or curl missing\n", model_path);
        return ET_SKIP;
    }
    agent_log_set_level(AGENT_LOG_WARNING);
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    snprintf(cfg.engine.model, sizeof(cfg.engine.model), "%s", model_path);
    cfg.engine.threads = 1;
    char err[256];
    struct eng_model *model = NULL;
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    if (eng_model_load(model_path, &mp, &model, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct agent_worker_hooks wh = {.request_done = hook_done};
    struct agent_worker *w = NULL;
    if (agent_worker_new(model, &cfg, &wh, &w, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct agent_http_params hp;
    agent_http_params_defaults(&hp);
    hp.port = 0;
    if (argc > 3)
        hp.stream_coalesce_ms = (unsigned)atoi(argv[3]);
    struct agent_http *h = NULL;
    if (agent_http_new(&cfg, w, NULL, &hp, &h, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/completions", agent_http_port(h));

    /* Two request sizes: the difference separates the per-token cost from the per-request
     * one (connection, thread, parsing). */
    static const int sizes[2] = {64, 512};
    double ovh_req[2] = {0}, tok_req[2] = {0}, cpu_tok[2] = {0}, wall_md[2] = {0}, wall_ma[2] = {0};
    double wcpu = 0, wtok_api[2] = {0};
    {
        /* One warm-up request, so the worker's CPU clock has a starting point. */
        struct agent_request *req = make_request(1, 4);
        req->sink = (struct agent_sink){.on_text = drop_text, .on_done = drop_done};
        agent_worker_submit(w, req);
        wait_done(&wcpu);
        agent_request_free(req);
    }
    double *direct = calloc((size_t)rounds, sizeof(double));
    double *api = calloc((size_t)rounds, sizeof(double));
    for (int sz = 0; sz < 2; sz++) {
        double cpu_direct = 0, cpu_api = 0, engine_cpu = 0, engine_cpu_api = 0;
        uint64_t tokens = 0;
        int n = 0;
        for (int i = 0; i < rounds; i++) {
            uint64_t seed = 1000 + (uint64_t)i;
            struct agent_request *req = make_request(seed, sizes[sz]);
            req->sink = (struct agent_sink){.on_text = drop_text, .on_done = drop_done};
            double c0 = cpu_s();
            if (agent_worker_submit(w, req) != 0)
                return 1;
            double w0 = wcpu;
            struct agent_result a = wait_done(&wcpu);
            double wa = wcpu - w0;
            double cd = cpu_s() - c0 - wa; /* everything but the worker thread */
            agent_request_free(req);

            char body[512];
            snprintf(body, sizeof(body),
                     "{\"prompt\":\"%s\",\"seed\":%llu,\"temperature\":1.0,\"max_tokens\":%d,"
                     "\"stream\":true}",
                     PROMPT, (unsigned long long)seed, sizes[sz]);
            c0 = cpu_s();
            pid_t pid = fork();
            if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                dup2(null, 2);
                execlp("curl", "curl", "-sN", "-o", "/dev/null", "-H",
                       "Content-Type: application/json", "--data-binary", body, url, (char *)NULL);
                _exit(127);
            }
            w0 = wcpu;
            struct agent_result b = wait_done(&wcpu);
            double wb = wcpu - w0;
            int st;
            waitpid(pid, &st, 0);
            double ca = cpu_s() - c0 - wb;
            if (a.gen_tokens != b.gen_tokens || a.gen_tokens < 2) {
                fprintf(stderr, "round %d: %llu vs %llu tokens (same seed should agree)\n", i,
                        (unsigned long long)a.gen_tokens, (unsigned long long)b.gen_tokens);
                continue;
            }
            cpu_direct += cd;
            cpu_api += ca;
            engine_cpu += wa;
            engine_cpu_api += wb;
            direct[n] = a.duration_ms * 1e3 / (double)a.gen_tokens;
            api[n] = b.duration_ms * 1e3 / (double)b.gen_tokens;
            tokens += a.gen_tokens;
            n++;
        }
        CHECK_MSG(n >= rounds / 2, "only %d comparable rounds of %d", n, rounds);
        if (n == 0)
            return et_finish();
        qsort(direct, (size_t)n, sizeof(double), cmp_double);
        qsort(api, (size_t)n, sizeof(double), cmp_double);
        wall_md[sz] = direct[n / 2];
        wall_ma[sz] = api[n / 2];
        ovh_req[sz] = (cpu_api - cpu_direct) * 1e6 / n;
        tok_req[sz] = (double)tokens / n;
        cpu_tok[sz] = engine_cpu * 1e6 / (double)tokens;
        wtok_api[sz] = engine_cpu_api * 1e6 / (double)tokens;
        printf("max_tokens %d: %d rounds, %.0f tokens/request; worker thread CPU per token: "
               "direct %.2f us, via API %.2f us; API CPU beside the worker %.0f us/request; "
               "worker wall per token (median): direct %.2f us, API %.2f us\n",
               sizes[sz], n, tok_req[sz], cpu_tok[sz], wtok_api[sz], ovh_req[sz], wall_md[sz],
               wall_ma[sz]);
    }
    agent_http_free(h);
    agent_worker_free(w, 1000);
    eng_model_free(model);
    double conn_token = (ovh_req[1] - ovh_req[0]) / (tok_req[1] - tok_req[0]);
    double fixed = ovh_req[0] - conn_token * tok_req[0];
    double sink = sink_cost_us();
    double per_token = conn_token + sink;
    double engine = cpu_tok[1];
    printf("API overhead per streamed token: %.2f us on the worker thread (escape + SSE framing "
           "+ lock) + %.2f us on the connection thread = %.2f us CPU, %.2f %% of the engine's "
           "%.2f us; plus %.0f us per request\n",
           sink, conn_token, per_token, per_token / engine * 100, engine, fixed);
    /* Informational on shared machines; the assertion is loose to avoid flakiness. */
    CHECK_MSG(per_token / engine < 0.05, "API adds %.1f %% per token", per_token / engine * 100);
    free(direct);
    free(api);
    return et_finish();
}
