/* The thread lever from the governor's tick result to the engine, with the real parts: the
 * daemon's bridge (daemon_engine_lever), the engine worker running stories260K with 2 threads,
 * the HTTP server answering GET /metrics to a libcurl client. A generation is held at fixed
 * pieces of its output (its sink waits for the test) so each step happens while it runs: a tick
 * result asking engine_threads=1 on one CPU reaches the worker, /metrics then says
 * ember_engine_threads 1 with ember_engine_busy 1 and the worker's threads are pinned; a later
 * tick with 0 gives the engine back all its threads. The generated text must equal a run without
 * the lever, byte for byte (the engine's logits do not depend on the thread count). Also the
 * decisions themselves: the log line, the ceiling, [engine] thread_lever off, CPUs this process
 * may not use. */
#include <curl/curl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "daemon_parts.h"
#include "ember_test.h"
#include "engine/engine.h"
#include "engine_lever.h"
#include "http.h"
#include "log.h"

/* ---- the lever's decisions ---- */

static void test_decide(void)
{
    struct engine_lever l;
    engine_lever_init(&l, 4);
    l.allowed = 0xff; /* as if CPUs 0-7 were ours */
    uint32_t n = 99;
    uint64_t cpus = 99;
    char msg[256], warn[256];
    /* the governor leaves the engine alone: nothing to do */
    CHECK(!engine_lever_decide(&l, true, 0, 0, "idle", &n, &cpus, msg, sizeof(msg), warn,
                               sizeof(warn)));
    CHECK(engine_lever_decide(&l, true, 1, 0xf0, "decode", &n, &cpus, msg, sizeof(msg), warn,
                              sizeof(warn)));
    CHECK(n == 1 && cpus == 0xf0);
    CHECK_STR(msg, "engine: 4 → 1 threads on cpus 4-7 (governor: decode)");
    CHECK_STR(warn, "");
    /* the same again: no change, no log line */
    CHECK(!engine_lever_decide(&l, true, 1, 0xf0, "decode", &n, &cpus, msg, sizeof(msg), warn,
                               sizeof(warn)));
    /* more than the ceiling is all of them */
    CHECK(engine_lever_decide(&l, true, 9, 0, "prefill", &n, &cpus, msg, sizeof(msg), warn,
                              sizeof(warn)));
    CHECK(n == 0 && cpus == 0);
    CHECK_STR(msg, "engine: 1 → 4 threads on any cpu (governor: prefill)");
    /* CPUs outside the allowed set are dropped, said once */
    CHECK(engine_lever_decide(&l, true, 2, 0x305, "decode", &n, &cpus, msg, sizeof(msg), warn,
                              sizeof(warn)));
    CHECK(n == 2 && cpus == 0x05);
    CHECK_CONTAINS(warn, "chose cpus 0,2,8-9");
    CHECK_CONTAINS(warn, "running on 0,2");
    CHECK(!engine_lever_decide(&l, true, 2, 0x305, "decode", &n, &cpus, msg, sizeof(msg), warn,
                               sizeof(warn)));
    CHECK_STR(warn, "");
    /* [engine] thread_lever = false: back to as configured, whatever the governor says */
    CHECK(engine_lever_decide(&l, false, 1, 0x1, "decode", &n, &cpus, msg, sizeof(msg), warn,
                              sizeof(warn)));
    CHECK(n == 0 && cpus == 0);
    CHECK_STR(msg, "engine: 2 → 4 threads on any cpu ([engine] thread_lever off)");
    CHECK(!engine_lever_decide(&l, false, 1, 0x1, "decode", &n, &cpus, msg, sizeof(msg), warn,
                               sizeof(warn)));
}

/* ---- a generation the test steps through ---- */

#define HOLD_PIECES 3
static const int hold_at[HOLD_PIECES] = {5, 25, 35};

struct run {
    char text[16384];
    size_t len;
    int pieces;
    bool hold;    /* stop at hold_at[] and wait for the test */
    int held;     /* the hold the sink waits in (1-based), 0 when running */
    int released; /* holds the test has finished */
    bool done;
    struct agent_result result;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static int on_text(void *u, const char *t, size_t n)
{
    struct run *r = u;
    pthread_mutex_lock(&r->mu);
    if (r->len + n < sizeof(r->text)) {
        memcpy(r->text + r->len, t, n);
        r->len += n;
    }
    r->pieces++;
    for (int i = 0; r->hold && i < HOLD_PIECES; i++)
        if (r->pieces == hold_at[i]) {
            r->held = i + 1;
            pthread_cond_broadcast(&r->cv);
            uint64_t end = cmn_now_ns() + 30 * CMN_NS_PER_S;
            while (r->released < i + 1 && cmn_now_ns() < end) {
                pthread_mutex_unlock(&r->mu);
                usleep(1000);
                pthread_mutex_lock(&r->mu);
            }
            r->held = 0;
        }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void on_done(void *u, const struct agent_result *res)
{
    struct run *r = u;
    pthread_mutex_lock(&r->mu);
    r->result = *res;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static struct agent_request *story(struct run *r, uint64_t seed)
{
    struct agent_request *req = agent_request_new(AGENT_REQ_COMPLETION);
    req->prompt = strdup("Once upon a time");
    req->sampling = (struct agent_sampling){.has_seed = true,
                                            .seed = seed,
                                            .has_temperature = true,
                                            .temperature = 1.0,
                                            .has_max_tokens = true,
                                            .max_tokens = 600};
    req->sink = (struct agent_sink){.on_text = on_text, .on_done = on_done, .user = r};
    return req;
}

/* Waits for the sink to reach hold h (or the run to end); true when it is held there. */
static bool wait_hold(struct run *r, int h)
{
    uint64_t end = cmn_now_ns() + 30 * CMN_NS_PER_S;
    pthread_mutex_lock(&r->mu);
    while (r->held != h && !r->done && cmn_now_ns() < end) {
        pthread_mutex_unlock(&r->mu);
        usleep(1000);
        pthread_mutex_lock(&r->mu);
    }
    bool ok = r->held == h;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void release(struct run *r, int h)
{
    pthread_mutex_lock(&r->mu);
    r->released = h;
    pthread_mutex_unlock(&r->mu);
}

static bool wait_done(struct run *r)
{
    uint64_t end = cmn_now_ns() + 60 * CMN_NS_PER_S;
    pthread_mutex_lock(&r->mu);
    while (!r->done && cmn_now_ns() < end) {
        pthread_mutex_unlock(&r->mu);
        usleep(2000);
        pthread_mutex_lock(&r->mu);
    }
    bool ok = r->done;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void run_init(struct run *r, bool hold)
{
    memset(r, 0, sizeof(*r));
    r->hold = hold;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

/* ---- GET /metrics over HTTP ---- */

struct body {
    char buf[65536];
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *u)
{
    struct body *b = u;
    size_t k = size * n;
    if (b->len + k < sizeof(b->buf)) {
        memcpy(b->buf + b->len, p, k);
        b->len += k;
        b->buf[b->len] = '\0';
    }
    return k;
}

static long get(int port, const char *path, struct body *b)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    b->len = 0;
    b->buf[0] = '\0';
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long code = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

static uint64_t first_allowed_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int i = 0; i < 64; i++)
            if (CPU_ISSET(i, &set))
                return 1ull << i;
    return 0;
}

int main(void)
{
    test_decide();

    char model_path[512];
    snprintf(model_path, sizeof(model_path), "%s/models/stories260K.gguf", et_shared_dir());
    if (access(model_path, R_OK) != 0) {
        printf("SKIPPED: %s missing (the shared test models)\n", model_path);
        return ET_SKIP;
    }
    agent_log_set_level(AGENT_LOG_INFO);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct agent_daemon *d = calloc(1, sizeof(*d));
    CHECK(d != NULL);
    if (!d)
        return et_finish();
    agent_config_defaults(&d->cfg);
    snprintf(d->cfg.engine.model, sizeof(d->cfg.engine.model), "%s", model_path);
    d->cfg.engine.threads = 2;
    d->cfg.engine.context_length = 1024;
    CHECK(d->cfg.engine.thread_lever); /* on by default */
    char err[256];
    struct eng_model *model = NULL;
    CHECK_EQ_INT(eng_model_load(model_path, NULL, &model, err, sizeof(err)), 0);
    engine_lever_init(&d->lever, d->cfg.engine.threads);
    struct agent_worker_hooks wh = {0};
    CHECK_EQ_INT(agent_worker_new(model, &d->cfg, &wh, &d->worker, err, sizeof(err)), 0);
    struct agent_http_params hp;
    agent_http_params_defaults(&hp);
    hp.port = 0;
    struct agent_http *h = NULL;
    int rc = agent_http_new(&d->cfg, d->worker, NULL, &hp, &h, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return et_finish();
    int port = agent_http_port(h);
    struct body *b = calloc(1, sizeof(*b));

    CHECK_EQ_INT((int)get(port, "/metrics", b), 200);
    CHECK_CONTAINS(b->buf, "ember_engine_threads 2\n");
    CHECK_CONTAINS(b->buf, "ember_engine_max_threads 2\n");

    /* the reference: the same story with the engine's 2 threads throughout */
    static struct run ref, lev;
    uint64_t seed = 0;
    for (uint64_t s = 1; s <= 20 && !seed; s++) {
        run_init(&ref, false);
        struct agent_request *req = story(&ref, s);
        CHECK_EQ_INT(agent_worker_submit(d->worker, req), 0);
        CHECK(wait_done(&ref));
        agent_request_free(req);
        if (ref.pieces > hold_at[HOLD_PIECES - 1] + 10)
            seed = s;
    }
    CHECK_MSG(seed != 0, "no seed gave a story of more than %d pieces",
              hold_at[HOLD_PIECES - 1] + 10);
    printf("reference: seed %llu, %d pieces, %llu tokens\n", (unsigned long long)seed, ref.pieces,
           (unsigned long long)ref.result.gen_tokens);

    uint64_t cpu = first_allowed_cpu();
    run_init(&lev, true);
    struct agent_request *req = story(&lev, seed);
    CHECK_EQ_INT(agent_worker_submit(d->worker, req), 0);
    /* 1: while it decodes, the governor's tick asks for one thread on one CPU */
    CHECK(wait_hold(&lev, 1));
    struct gov_tick_result tick = {.engine_threads = 1, .engine_cpus = cpu};
    daemon_engine_lever(d, &tick, AGENT_PHASE_DECODE);
    release(&lev, 1);
    /* 2: twenty pieces on, the engine runs one thread, pinned, and /metrics says so while the
     * generation runs */
    CHECK(wait_hold(&lev, 2));
    struct agent_worker_stats ws;
    agent_worker_stats(d->worker, &ws);
    CHECK_EQ_INT((int)ws.engine_threads, 1);
    CHECK_EQ_INT((int)ws.engine_max_threads, 2);
    CHECK(ws.engine_cpus == cpu);
    CHECK_STR(ws.threads_error, "");
    CHECK_EQ_INT((int)get(port, "/metrics", b), 200);
    CHECK_CONTAINS(b->buf, "ember_engine_busy 1\n");
    CHECK_CONTAINS(b->buf, "ember_engine_threads 1\n");
    release(&lev, 2);
    /* 3: the policy leaves the engine alone again: all threads, unpinned */
    CHECK(wait_hold(&lev, 3));
    daemon_engine_lever(d, &(struct gov_tick_result){0}, AGENT_PHASE_DECODE);
    release(&lev, 3);
    CHECK(wait_done(&lev));
    agent_request_free(req);
    agent_worker_stats(d->worker, &ws);
    CHECK_EQ_INT((int)ws.engine_threads, 2);
    CHECK(ws.engine_cpus == 0);
    CHECK_EQ_INT((int)lev.result.finish, (int)ref.result.finish);
    CHECK_EQ_INT((int)lev.result.gen_tokens, (int)ref.result.gen_tokens);
    CHECK_MSG(lev.len == ref.len && memcmp(lev.text, ref.text, ref.len) == 0,
              "the story changed when the thread count did (%zu vs %zu bytes)", lev.len, ref.len);
    printf("lever run: %d pieces, %llu tokens, text identical to the reference\n", lev.pieces,
           (unsigned long long)lev.result.gen_tokens);

    /* [engine] thread_lever = false: the governor's choice does not reach the engine */
    d->cfg.engine.thread_lever = false;
    daemon_engine_lever(d, &tick, AGENT_PHASE_DECODE);
    run_init(&ref, false);
    req = story(&ref, seed);
    CHECK_EQ_INT(agent_worker_submit(d->worker, req), 0);
    CHECK(wait_done(&ref));
    agent_request_free(req);
    agent_worker_stats(d->worker, &ws);
    CHECK_EQ_INT((int)ws.engine_threads, 2);

    free(b);
    agent_http_free(h);
    agent_worker_free(d->worker, 1000);
    eng_model_free(model);
    free(d);
    curl_global_cleanup();
    return et_finish();
}
