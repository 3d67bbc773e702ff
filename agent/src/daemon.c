/* The agent daemon (see daemon.h). Everything that touches the governor, the telemetry store or
 * the MQTT client runs on the loop thread; the engine worker and the HTTP threads reach it only
 * through small mutex-protected mailboxes and an eventfd wake-up, so none of those libraries has
 * to be thread-safe. */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "common/fileio.h"
#include "common/timeutil.h"
#include "engine/engine.h"
#include "gov_config.h"
#include "governor/governor.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "meter.h"
#include "phase_energy.h"
#include "request.h"
#include "telemetry/mqtt.h"
#include "telemetry/power.h"
#include "telemetry/store.h"
#include "worker.h"

#define SESSION_BOX_MAX     256
#define ASK_REPLY_MAX_BYTES 65536

/* An MQTT `ask` in flight: the worker fills text, the loop publishes the answer. */
struct ask_job {
    struct agent_daemon *d;
    struct agent_request *req;
    char *response_topic;
    void *correlation;
    size_t correlation_len;
    char *text;
    size_t len, cap;
    struct agent_result result;
    struct ask_job *next;
};

/* A governor change asked for from an HTTP thread, executed on the loop thread. */
struct gov_call {
    bool pending, done;
    char policy[GOV_NAME_MAX];
    double power_cap_w;
    int rc;
    char err[256];
};

struct agent_daemon {
    struct agent_config cfg;
    /* the [governor] section as the file last said it: a reload re-applies the policy and the
     * power cap only when the file changed them, so a choice made over the API or MQTT
     * survives a reload of unrelated keys */
    struct cfg_governor file_governor;
    const char *config_path;
    struct agent_loop *loop;
    int signal_fd;
    int exit_code;

    struct gov_governor *gov;
    struct tel_power *power;
    struct tel_store *store;
    struct tel_mqtt *mqtt;
    struct eng_model *model;
    struct agent_worker *worker;
    struct agent_http *http;
    struct agent_meter meter;
    struct agent_phase_energy phase_energy; /* energy by engine phase, exactly */
    atomic_int energy_source;               /* enum tel_source of the last reading */

    struct agent_timer *gov_timer, *sample_timer, *mqtt_timer, *watchdog_timer;
    int mqtt_fd;
    uint64_t mqtt_generation; /* the client's socket generation the watch belongs to */
    unsigned mqtt_failures;   /* connection attempts failed since the last success */
    bool mqtt_want_write;

    atomic_int phase; /* enum agent_phase, written by the worker */
    /* the busiest phase (decode > prefill > idle) since the last telemetry sample: a sample
     * taken just after a short request still belongs to the work it measured */
    atomic_int sample_phase;
    uint64_t phase_since_ns;
    enum agent_phase last_phase;
    uint64_t last_tokens, last_tokens_ns; /* for tokens/s */
    double tokens_per_s;
    uint64_t sample_prev_tokens, sample_prev_ns;
    double last_power_w, last_energy_j, last_temp_c;
    struct gov_tick_result last_tick;

    /* mailboxes from other threads, under box_lock */
    pthread_mutex_t box_lock;
    pthread_cond_t box_cond;
    struct agent_result sessions[SESSION_BOX_MAX];
    uint64_t session_start_ns[SESSION_BOX_MAX];
    size_t n_sessions;
    uint64_t sessions_dropped;
    struct ask_job *asks_done;
    struct gov_call gov_call;
    bool phase_changed;

    /* what HTTP threads read, under shared_lock */
    pthread_mutex_t shared_lock;
    char *gov_json;
    char policy[GOV_NAME_MAX];
    double power_cap_w;
    unsigned n_freq;
    char freq_names[GOV_MAX_CLUSTERS][GOV_NAME_MAX];
    double freq_khz[GOV_MAX_CLUSTERS];
};

static void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify_status(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", msg);
}

static enum gov_phase to_gov_phase(enum agent_phase p)
{
    return p == AGENT_PHASE_PREFILL  ? GOV_PHASE_PREFILL
           : p == AGENT_PHASE_DECODE ? GOV_PHASE_DECODE
                                     : GOV_PHASE_IDLE;
}

static const char *phase_name(enum agent_phase p)
{
    return p == AGENT_PHASE_PREFILL ? "prefill" : p == AGENT_PHASE_DECODE ? "decode" : "idle";
}

/* ---- events: one place that logs, stores and publishes ---- */

static void record_event(struct agent_daemon *d, const char *kind, const char *detail)
{
    if (d->store)
        tel_store_add_event(d->store, cmn_wall_ns(), kind, detail);
    if (d->mqtt)
        tel_mqtt_publish_event(d->mqtt, kind, detail);
}

static void drain_governor_events(struct agent_daemon *d)
{
    if (!d->gov)
        return;
    struct gov_event ev;
    while (gov_events_pop(gov_governor_events(d->gov), &ev)) {
        const char *kind = gov_event_kind_name(ev.kind);
        if (ev.kind == GOV_EVENT_WRITE_FAILED || ev.kind == GOV_EVENT_WRITE_MISMATCH ||
            ev.kind == GOV_EVENT_SENSOR_LOST || ev.kind == GOV_EVENT_SENSOR_GARBAGE ||
            ev.kind == GOV_EVENT_SAFE_STATE || ev.kind == GOV_EVENT_CONFLICT)
            log_warn("governor: %s: %s", kind, ev.detail);
        else
            log_info("governor: %s: %s", kind, ev.detail);
        char detail[320];
        snprintf(detail, sizeof(detail), "%s: %s", kind, ev.detail);
        record_event(d, "governor", detail);
    }
}

/* ---- governor ---- */

/* The frequency a cluster runs at: with an exact (userspace) setting that is what we set;
 * otherwise the hardware picks within limits and scaling_cur_freq says what it picked. */
static uint32_t cluster_khz(const struct gov_status_cluster *c)
{
    if (c->exact_freq && c->target_khz)
        return c->target_khz;
    return c->cur_khz ? c->cur_khz : c->target_khz;
}

/* Copies a governor status snapshot to what HTTP threads read. */
static void share_governor_status(struct agent_daemon *d, const struct gov_status *st)
{
    char *json = gov_status_to_json(st);
    pthread_mutex_lock(&d->shared_lock);
    if (json) {
        free(d->gov_json);
        d->gov_json = json;
    }
    snprintf(d->policy, sizeof(d->policy), "%s", st->policy);
    d->power_cap_w = st->power_cap_w;
    d->n_freq = st->n_clusters;
    for (unsigned i = 0; i < st->n_clusters && i < GOV_MAX_CLUSTERS; i++) {
        snprintf(d->freq_names[i], sizeof(d->freq_names[i]), "%s", st->c[i].name);
        d->freq_khz[i] = cluster_khz(&st->c[i]);
    }
    pthread_mutex_unlock(&d->shared_lock);
}

static void refresh_shared_governor(struct agent_daemon *d)
{
    struct gov_status st;
    gov_governor_status(d->gov, &st);
    share_governor_status(d, &st);
}

static void governor_tick(struct agent_daemon *d, uint64_t now_ns)
{
    if (!d->gov)
        return;
    enum agent_phase phase = (enum agent_phase)atomic_load(&d->phase);
    if (phase != d->last_phase) {
        d->last_phase = phase;
        d->phase_since_ns = now_ns;
    }
    struct agent_worker_stats ws = {0};
    if (d->worker)
        agent_worker_stats(d->worker, &ws);
    uint64_t tokens = ws.prompt_tokens + ws.gen_tokens;
    if (d->last_tokens_ns && now_ns > d->last_tokens_ns && phase == AGENT_PHASE_DECODE)
        d->tokens_per_s =
            (double)(tokens - d->last_tokens) * 1e9 / (double)(now_ns - d->last_tokens_ns);
    else if (phase != AGENT_PHASE_DECODE)
        d->tokens_per_s = NAN;
    d->last_tokens = tokens;
    d->last_tokens_ns = now_ns;
    gov_governor_tick(d->gov, now_ns, to_gov_phase(phase), d->last_power_w, d->tokens_per_s,
                      &d->last_tick);
    drain_governor_events(d);
}

static void on_gov_timer(void *user, uint64_t now_ns)
{
    governor_tick(user, now_ns);
}

static void publish_governor_state(struct agent_daemon *d)
{
    if (!d->gov) {
        /* Nothing can carry out a policy or a cap: the controls turn unavailable. */
        if (d->mqtt)
            tel_mqtt_publish_governor_state(d->mqtt, NULL);
        return;
    }
    refresh_shared_governor(d);
    if (!d->mqtt)
        return;
    pthread_mutex_lock(&d->shared_lock);
    char policy[GOV_NAME_MAX];
    snprintf(policy, sizeof(policy), "%s", d->policy);
    double cap = d->power_cap_w;
    pthread_mutex_unlock(&d->shared_lock);
    tel_mqtt_publish_governor_state(d->mqtt, policy);
    tel_mqtt_publish_power_cap_state(d->mqtt, !(cap > 0), cap);
}

/* Applies a policy and/or power cap (loop thread). */
static int governor_apply(struct agent_daemon *d, const char *policy, double cap_w, char *err,
                          size_t err_len)
{
    if (!d->gov) {
        snprintf(err, err_len, "the governor is not running");
        return -ENODEV;
    }
    if (policy && *policy) {
        int rc = gov_governor_set_policy(d->gov, policy, err, err_len);
        if (rc < 0)
            return rc;
        snprintf(d->cfg.governor.policy, sizeof(d->cfg.governor.policy), "%s", policy);
        log_notice("governor: policy %s", policy);
    }
    if (isfinite(cap_w)) {
        struct agent_config next = d->cfg;
        next.governor.power_cap_w = cap_w;
        struct gov_tunables t;
        int rc = agent_governor_tunables(&next.governor, &t, NULL, err, err_len);
        if (rc == 0)
            rc = gov_governor_set_tunables(d->gov, &t, err, err_len);
        if (rc < 0)
            return rc;
        d->cfg.governor.power_cap_w = cap_w;
        log_notice("governor: power cap %s", cap_w > 0 ? "set" : "off");
    }
    drain_governor_events(d);
    publish_governor_state(d);
    return 0;
}

/* ---- telemetry ---- */

static void on_sample_timer(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    struct tel_sample s = {0};
    s.ts_ns = cmn_wall_ns();
    s.power_w = NAN;
    s.temp_c = NAN;
    s.util = NAN;

    struct gov_status st;
    double util[GOV_MAX_CPUS], freq[GOV_MAX_CPUS];
    unsigned n_cpu = 0;
    if (d->gov) {
        gov_governor_status(d->gov, &st);
        s.temp_c = st.cpu_temp_c;
        snprintf(s.policy, sizeof(s.policy), "%s", st.policy);
        double util_sum = 0;
        unsigned util_n = 0;
        for (unsigned i = 0; i < st.n_clusters && s.n_freq < TEL_MAX_FREQ; i++) {
            uint32_t khz = cluster_khz(&st.c[i]);
            s.freq_mhz[s.n_freq++] = khz / 1000.0;
            if (isfinite(st.c[i].util)) {
                util_sum += st.c[i].util;
                util_n++;
            }
            /* The power model wants per-CPU numbers: spread the cluster's mean over its CPUs. */
            unsigned first = 0, last = 0;
            if (sscanf(st.c[i].cpus, "%u-%u", &first, &last) == 2 ||
                (sscanf(st.c[i].cpus, "%u", &first) == 1 && (last = first, 1))) {
                for (unsigned c = first; c <= last && n_cpu < GOV_MAX_CPUS; c++) {
                    util[n_cpu] = isfinite(st.c[i].util) ? st.c[i].util : 0;
                    freq[n_cpu] = khz / 1000.0;
                    n_cpu++;
                }
            }
        }
        if (util_n)
            s.util = util_sum / util_n;
    }
    enum agent_phase phase = (enum agent_phase)atomic_load(&d->phase);
    enum agent_phase busiest = (enum agent_phase)atomic_exchange(&d->sample_phase, (int)phase);
    snprintf(s.phase, sizeof(s.phase), "%s", phase_name(busiest > phase ? busiest : phase));

    if (d->power) {
        struct tel_power_inputs in = {.n_cpu = n_cpu, .util = util, .freq_mhz = freq};
        struct tel_power_reading r;
        if (tel_power_read(d->power, now_ns, &in, &r) == 0) {
            s.power_w = r.power_w;
            s.energy_j = r.energy_j;
            s.source = r.source;
            if (r.switched) {
                char detail[256];
                snprintf(detail, sizeof(detail), "power source: %s", tel_power_describe(d->power));
                log_notice("telemetry: %s", detail);
                record_event(d, "telemetry", detail);
            }
            agent_meter_update(&d->meter, now_ns, r.energy_j, r.power_w);
            atomic_store(&d->energy_source, (int)r.source);
            double pj[AGENT_PHASES];
            if (agent_phase_energy_take(&d->phase_energy, agent_meter_energy_at(&d->meter, now_ns),
                                        pj) == 0) {
                s.has_phase_energy = 1;
                s.idle_j = pj[AGENT_PHASE_IDLE];
                s.prefill_j = pj[AGENT_PHASE_PREFILL];
                s.decode_j = pj[AGENT_PHASE_DECODE];
            }
            if (isfinite(r.power_w))
                d->last_power_w = r.power_w;
            d->last_energy_j = r.energy_j;
        }
    }
    pthread_mutex_lock(&d->shared_lock); /* HTTP threads read it for /metrics */
    d->last_temp_c = s.temp_c;
    pthread_mutex_unlock(&d->shared_lock);

    struct agent_worker_stats ws = {0};
    if (d->worker)
        agent_worker_stats(d->worker, &ws);
    /* generated tokens, as they come: J/token is joules per generated token everywhere */
    uint64_t tokens = ws.live_gen_tokens;
    s.tokens = d->sample_prev_ns ? tokens - d->sample_prev_tokens : 0;
    s.tokens_per_s = d->sample_prev_ns && now_ns > d->sample_prev_ns
                         ? (double)s.tokens * 1e9 / (double)(now_ns - d->sample_prev_ns)
                         : 0;
    d->sample_prev_tokens = tokens;
    d->sample_prev_ns = now_ns;

    if (d->store) {
        tel_store_append_sample(d->store, &s, NULL);
        tel_store_tick(d->store);
    }
    if (d->mqtt)
        tel_mqtt_publish_sample(d->mqtt, &s);
    if (d->gov)
        share_governor_status(d, &st); /* the snapshot taken above, not a second read */
}

static void on_store_event(void *user, const struct tel_event *ev)
{
    struct agent_daemon *d = user;
    log_warn("telemetry store: %s: %s", ev->kind, ev->detail);
    if (d->mqtt)
        tel_mqtt_publish_event(d->mqtt, ev->kind, ev->detail);
}

/* ---- MQTT ---- */

static void on_mqtt_fd(void *user, int fd, uint32_t events);

/* Keeps the epoll registration in step with the MQTT client's socket (it changes on every
 * reconnect) and its wish to write, and arms the timer for its next housekeeping. */
static void mqtt_update_watch(struct agent_daemon *d, uint64_t now_ns)
{
    struct tel_mqtt_poll p;
    tel_mqtt_poll_info(d->mqtt, now_ns, &p);
    if (p.fd != d->mqtt_fd || p.generation != d->mqtt_generation) {
        if (d->mqtt_fd >= 0)
            agent_loop_del_fd(d->loop, d->mqtt_fd);
        d->mqtt_fd = -1;
        if (p.fd >= 0)
            d->mqtt_fd = p.fd;
        d->mqtt_generation = p.generation;
        d->mqtt_want_write = !p.want_write; /* force the add below */
    }
    if (d->mqtt_fd >= 0 && d->mqtt_want_write != p.want_write) {
        uint32_t ev = EPOLLIN | (p.want_write ? EPOLLOUT : 0);
        if (agent_loop_mod_fd(d->loop, d->mqtt_fd, ev) < 0)
            agent_loop_add_fd(d->loop, d->mqtt_fd, ev, on_mqtt_fd, d);
        d->mqtt_want_write = p.want_write;
    }
    agent_timer_set_deadline(d->mqtt_timer, p.deadline_ns ? p.deadline_ns : now_ns + CMN_NS_PER_S);
}

static void on_mqtt_fd(void *user, int fd, uint32_t events)
{
    (void)fd;
    struct agent_daemon *d = user;
    uint64_t now = cmn_now_ns();
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        tel_mqtt_handle_read(d->mqtt, now);
    if (events & EPOLLOUT)
        tel_mqtt_handle_write(d->mqtt, now);
    mqtt_update_watch(d, now);
}

static void on_mqtt_timer(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    tel_mqtt_handle_misc(d->mqtt, now_ns);
    mqtt_update_watch(d, now_ns);
}

static void on_mqtt_policy(void *user, const char *policy)
{
    struct agent_daemon *d = user;
    char err[256];
    if (governor_apply(d, policy, NAN, err, sizeof(err)) < 0) {
        log_warn("mqtt governor/set %s: %s", policy, err);
        record_event(d, "error", err);
    }
}

static void on_mqtt_cap(void *user, bool off, double cap_w)
{
    struct agent_daemon *d = user;
    char err[256];
    if (governor_apply(d, NULL, off ? 0.0 : cap_w, err, sizeof(err)) < 0) {
        log_warn("mqtt power_cap/set: %s", err);
        record_event(d, "error", err);
    }
}

static void on_mqtt_state(void *user, enum tel_mqtt_conn_state state, const char *detail)
{
    struct agent_daemon *d = user;
    /* An outage is logged when it starts and when it ends; the retries in between (the
     * back-off) go to debug, or a broker that is down for a day fills the journal. */
    if (state == TEL_MQTT_CONNECTED) {
        if (d->mqtt_failures)
            log_notice("mqtt: connected again after %u failed attempt%s (%s)", d->mqtt_failures,
                       d->mqtt_failures == 1 ? "" : "s", detail);
        else
            log_notice("mqtt: connected (%s)", detail);
        d->mqtt_failures = 0;
        publish_governor_state(d);
    } else if (state == TEL_MQTT_DISCONNECTED) {
        if (d->mqtt_failures++ == 0)
            log_warn("mqtt: %s (retrying with back-off; logged again when connected)", detail);
        else
            log_debug("mqtt: %s (attempt %u)", detail, d->mqtt_failures);
    }
}

static int ask_text(void *user, const char *text, size_t len)
{
    struct ask_job *job = user;
    if (job->len + len + 1 > job->cap) {
        size_t cap = (job->len + len + 1) * 2;
        if (cap > ASK_REPLY_MAX_BYTES)
            return 1; /* enough: an MQTT answer is not a document */
        char *grown = realloc(job->text, cap);
        if (!grown)
            return 1;
        job->text = grown;
        job->cap = cap;
    }
    memcpy(job->text + job->len, text, len);
    job->len += len;
    job->text[job->len] = '\0';
    return 0;
}

static void ask_done(void *user, const struct agent_result *r)
{
    struct ask_job *job = user;
    struct agent_daemon *d = job->d;
    job->result = *r;
    pthread_mutex_lock(&d->box_lock);
    job->next = d->asks_done;
    d->asks_done = job;
    pthread_mutex_unlock(&d->box_lock);
    agent_loop_wake(d->loop);
}

static void ask_free(struct ask_job *job)
{
    agent_request_free(job->req);
    free(job->response_topic);
    free(job->correlation);
    free(job->text);
    free(job);
}

static void ask_reply_error(struct agent_daemon *d, const char *topic, const void *corr,
                            size_t corr_len, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json)
        tel_mqtt_respond(d->mqtt, topic, corr, corr_len, json, strlen(json));
    free(json);
}

/* `ask` payload: plain UTF-8 text (the user's message) or JSON {"prompt": "...",
 * "max_tokens": N, "temperature": T}. The answer is JSON {"text", "usage", "energy"}. */
static void on_mqtt_ask(void *user, const char *payload, size_t len, const char *response_topic,
                        const void *correlation, size_t correlation_len)
{
    struct agent_daemon *d = user;
    if (!response_topic) {
        record_event(d, "error", "ask without a response topic (MQTT v5 needed)");
        return;
    }
    struct ask_job *job = calloc(1, sizeof(*job));
    struct agent_request *req = agent_request_new(AGENT_REQ_CHAT);
    if (!job || !req) {
        free(job);
        agent_request_free(req);
        return;
    }
    job->d = d;
    job->req = req;
    job->response_topic = strdup(response_topic);
    if (correlation_len) {
        job->correlation = malloc(correlation_len);
        if (job->correlation)
            memcpy(job->correlation, correlation, correlation_len);
        job->correlation_len = job->correlation ? correlation_len : 0;
    }
    char *prompt = NULL;
    cJSON *root = len && payload[0] == '{' ? cJSON_ParseWithLength(payload, len) : NULL;
    if (root) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
        if (cJSON_IsString(p))
            prompt = strdup(p->valuestring);
        if (cJSON_IsNumber(mt) && mt->valuedouble >= 1 && mt->valuedouble <= 1048576) {
            req->sampling.has_max_tokens = true;
            req->sampling.max_tokens = (int)mt->valuedouble;
        }
        if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble <= 5) {
            req->sampling.has_temperature = true;
            req->sampling.temperature = t->valuedouble;
        }
        cJSON_Delete(root);
    } else {
        prompt = strndup(payload, len);
    }
    if (!prompt || !*prompt || !job->response_topic) {
        ask_reply_error(d, response_topic, correlation, correlation_len,
                        "ask: expected text or {\"prompt\": \"...\"}");
        free(prompt);
        ask_free(job);
        return;
    }
    req->messages[0].role = strdup("user");
    req->messages[0].content = prompt;
    req->n_messages = 1;
    req->sink = (struct agent_sink){ask_text, ask_done, job};
    int rc = d->worker ? agent_worker_submit(d->worker, req) : -ENODEV;
    if (rc < 0) {
        ask_reply_error(d, response_topic, correlation, correlation_len,
                        rc == -EBUSY ? "busy: the request queue is full" : "no model is loaded");
        ask_free(job);
    }
}

static void publish_ask_answers(struct agent_daemon *d, struct ask_job *jobs)
{
    while (jobs) {
        struct ask_job *next = jobs->next;
        const struct agent_result *r = &jobs->result;
        cJSON *o = cJSON_CreateObject();
        if (r->finish == AGENT_FINISH_ERROR) {
            cJSON_AddStringToObject(o, "error", r->error_msg[0] ? r->error_msg : "failed");
        } else {
            cJSON_AddStringToObject(o, "text", jobs->text ? jobs->text : "");
            cJSON_AddStringToObject(o, "finish_reason",
                                    r->finish == AGENT_FINISH_LENGTH ? "length" : "stop");
            cJSON *u = cJSON_AddObjectToObject(o, "usage");
            cJSON_AddNumberToObject(u, "prompt_tokens", (double)r->prompt_tokens);
            cJSON_AddNumberToObject(u, "completion_tokens", (double)r->gen_tokens);
            cJSON *e = cJSON_AddObjectToObject(o, "energy");
            cJSON_AddNumberToObject(e, "joules", r->energy_j);
            cJSON_AddNumberToObject(e, "joules_per_token", r->j_per_token);
            cJSON_AddNumberToObject(e, "avg_watts", r->avg_power_w);
        }
        char *json = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (json && d->mqtt)
            tel_mqtt_respond(d->mqtt, jobs->response_topic, jobs->correlation,
                             jobs->correlation_len, json, strlen(json));
        free(json);
        ask_free(jobs);
        jobs = next;
    }
}

/* ---- worker hooks (engine worker thread) ---- */

static void hook_phase(void *user, enum agent_phase phase)
{
    struct agent_daemon *d = user;
    agent_phase_energy_switch(&d->phase_energy, phase,
                              agent_meter_energy_at(&d->meter, cmn_now_ns()));
    atomic_store(&d->phase, (int)phase);
    int seen = atomic_load(&d->sample_phase);
    while ((int)phase > seen && !atomic_compare_exchange_weak(&d->sample_phase, &seen, (int)phase))
        ;
    pthread_mutex_lock(&d->box_lock);
    d->phase_changed = true;
    pthread_mutex_unlock(&d->box_lock);
    agent_loop_wake(d->loop); /* a phase change steers the governor now, not at the next tick */
}

static double hook_energy(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    return agent_meter_energy_at(&d->meter, now_ns);
}

static void hook_policy(void *user, char *buf, size_t len)
{
    struct agent_daemon *d = user;
    pthread_mutex_lock(&d->shared_lock);
    snprintf(buf, len, "%s", d->policy);
    pthread_mutex_unlock(&d->shared_lock);
}

static void hook_request_done(void *user, const struct agent_result *r)
{
    struct agent_daemon *d = user;
    pthread_mutex_lock(&d->box_lock);
    if (d->n_sessions < SESSION_BOX_MAX) {
        d->session_start_ns[d->n_sessions] =
            cmn_wall_ns() - (uint64_t)(r->duration_ms * (double)CMN_NS_PER_MS);
        d->sessions[d->n_sessions++] = *r;
    } else {
        d->sessions_dropped++;
    }
    pthread_mutex_unlock(&d->box_lock);
    agent_loop_wake(d->loop);
}

/* ---- HTTP hooks (connection threads) ---- */

static void hook_metrics(void *user, struct agent_metrics_snapshot *snap)
{
    struct agent_daemon *d = user;
    snap->power_w = agent_meter_power(&d->meter);
    snap->energy_j = agent_meter_energy_at(&d->meter, cmn_now_ns());
    if (isfinite(snap->energy_j)) {
        enum tel_source src = (enum tel_source)atomic_load(&d->energy_source);
        agent_phase_energy_totals(&d->phase_energy, snap->phase_energy_j);
        snprintf(snap->energy_scope, sizeof(snap->energy_scope), "%s", tel_source_scope(src));
        snap->energy_estimated = src == TEL_SOURCE_ESTIMATE;
    }
    pthread_mutex_lock(&d->shared_lock);
    snap->temp_c = d->last_temp_c;
    snprintf(snap->policy, sizeof(snap->policy), "%s", d->policy);
    snap->power_cap_w = d->power_cap_w;
    snap->n_cpufreq = 0;
    for (unsigned i = 0; i < d->n_freq && i < AGENT_METRICS_MAX_CPUFREQ; i++) {
        snprintf(snap->cpufreq[i].policy, sizeof(snap->cpufreq[i].policy), "%s", d->freq_names[i]);
        snap->cpufreq[i].freq_khz = d->freq_khz[i];
        snap->n_cpufreq++;
    }
    pthread_mutex_unlock(&d->shared_lock);
}

static int hook_governor_get(void *user, char *buf, size_t len)
{
    struct agent_daemon *d = user;
    pthread_mutex_lock(&d->shared_lock);
    int rc = 0;
    if (!d->gov_json)
        rc = -ENODEV;
    else if (strlen(d->gov_json) + 1 > len)
        rc = -ENOSPC;
    else
        memcpy(buf, d->gov_json, strlen(d->gov_json) + 1);
    pthread_mutex_unlock(&d->shared_lock);
    return rc;
}

/* Hands the change to the loop thread and waits for its verdict. */
static int hook_governor_set(void *user, const char *policy, double power_cap_w, char *err,
                             size_t err_len)
{
    struct agent_daemon *d = user;
    pthread_mutex_lock(&d->box_lock);
    while (d->gov_call.pending) /* one change at a time */
        pthread_cond_wait(&d->box_cond, &d->box_lock);
    d->gov_call = (struct gov_call){.pending = true, .power_cap_w = power_cap_w};
    snprintf(d->gov_call.policy, sizeof(d->gov_call.policy), "%s", policy ? policy : "");
    pthread_mutex_unlock(&d->box_lock);
    agent_loop_wake(d->loop);
    pthread_mutex_lock(&d->box_lock);
    while (!d->gov_call.done)
        pthread_cond_wait(&d->box_cond, &d->box_lock);
    int rc = d->gov_call.rc;
    snprintf(err, err_len, "%s", d->gov_call.err);
    d->gov_call.pending = false;
    d->gov_call.done = false;
    pthread_cond_broadcast(&d->box_cond);
    pthread_mutex_unlock(&d->box_lock);
    return rc;
}

/* ---- the loop's wake-up: drain every mailbox ---- */

static void store_session(struct agent_daemon *d, const struct agent_result *r, uint64_t ts_ns)
{
    if (r->prompt_tokens + r->gen_tokens == 0)
        return;
    struct tel_session s = {0};
    s.ts_ns = ts_ns;
    s.prompt_tokens = r->prompt_tokens;
    s.gen_tokens = r->gen_tokens;
    s.ttft_ms = r->ttft_ms;
    s.duration_ms = r->duration_ms;
    s.energy_j = r->energy_j;
    s.j_per_token = r->j_per_token;
    snprintf(s.policy, sizeof(s.policy), "%s", r->policy);
    if (d->store)
        tel_store_add_session(d->store, &s);
    if (d->mqtt)
        tel_mqtt_publish_session(d->mqtt, &s);
}

static void on_wake(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    struct agent_result sessions[SESSION_BOX_MAX];
    uint64_t starts[SESSION_BOX_MAX];
    pthread_mutex_lock(&d->box_lock);
    size_t n = d->n_sessions;
    memcpy(sessions, d->sessions, n * sizeof(sessions[0]));
    memcpy(starts, d->session_start_ns, n * sizeof(starts[0]));
    d->n_sessions = 0;
    struct ask_job *asks = d->asks_done;
    d->asks_done = NULL;
    bool phase_changed = d->phase_changed;
    d->phase_changed = false;
    bool gov_call = d->gov_call.pending && !d->gov_call.done;
    struct gov_call call = d->gov_call;
    pthread_mutex_unlock(&d->box_lock);

    if (phase_changed)
        governor_tick(d, now_ns);
    for (size_t i = 0; i < n; i++)
        store_session(d, &sessions[i], starts[i]);
    publish_ask_answers(d, asks);
    if (gov_call) {
        char err[256] = "";
        int rc = governor_apply(d, call.policy, call.power_cap_w, err, sizeof(err));
        pthread_mutex_lock(&d->box_lock);
        d->gov_call.rc = rc;
        snprintf(d->gov_call.err, sizeof(d->gov_call.err), "%s", err);
        d->gov_call.done = true;
        pthread_cond_broadcast(&d->box_cond);
        pthread_mutex_unlock(&d->box_lock);
    }
    if (d->mqtt)
        mqtt_update_watch(d, now_ns);
}

/* ---- signals, watchdog, reload ---- */

static void reload_config(struct agent_daemon *d)
{
    if (!d->config_path) {
        log_notice("SIGHUP: no configuration file in use; nothing to reload");
        return;
    }
    struct agent_config next;
    char err[8192];
    if (agent_config_load_file(d->config_path, &next, err, sizeof(err)) < 0) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            log_err("reload: %s", line);
        log_err("reload: %s has errors; keeping the running configuration", d->config_path);
        record_event(d, "error", "configuration reload refused (see the log)");
        return;
    }
    char names[1024];
    int restart = agent_config_restart_keys(&d->cfg, &next, names, sizeof(names));
    if (restart)
        log_warn("reload: %s changed but needs a restart: %s", d->config_path, names);
    enum agent_log_level level;
    if (agent_log_level_parse(next.agent.log_level, &level) == 0)
        agent_log_set_level(level);
    if (d->worker)
        agent_worker_set_config(d->worker, &next);
    if (d->http)
        agent_http_set_config(d->http, &next);
    struct cfg_governor from_file = next.governor;
    if (strcmp(next.governor.policy, d->file_governor.policy) == 0)
        snprintf(next.governor.policy, sizeof(next.governor.policy), "%s", d->cfg.governor.policy);
    if (next.governor.power_cap_w == d->file_governor.power_cap_w)
        next.governor.power_cap_w = d->cfg.governor.power_cap_w;
    d->file_governor = from_file;
    if (d->gov) {
        struct gov_tunables t;
        if (agent_governor_tunables(&next.governor, &t, NULL, err, sizeof(err)) == 0 &&
            gov_governor_set_tunables(d->gov, &t, err, sizeof(err)) == 0 &&
            gov_governor_set_policy(d->gov, next.governor.policy, err, sizeof(err)) == 0)
            publish_governor_state(d);
        else
            log_err("reload: governor: %s", err);
        drain_governor_events(d);
    }
    agent_timer_set_interval(d->sample_timer, (uint64_t)next.telemetry.sample_interval_ms);
    agent_config_apply_live(&d->cfg, &next); /* restart-only keys keep running values */
    log_notice("reload: %s applied", d->config_path);
    record_event(d, "config", "configuration reloaded");
}

static void on_signal(void *user, int fd, uint32_t events)
{
    (void)events;
    struct agent_daemon *d = user;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            reload_config(d);
            sd_notify(0, "READY=1");
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_notice("%s: shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            agent_loop_quit(d->loop);
        }
    }
}

static void on_watchdog(void *user, uint64_t now_ns)
{
    (void)user;
    (void)now_ns;
    sd_notify(0, "WATCHDOG=1");
}

static int load_progress(float fraction, void *user)
{
    (void)user;
    static int last_decile = -1;
    int decile = (int)(fraction * 10);
    if (decile != last_decile) {
        last_decile = decile;
        sd_notifyf(0, "STATUS=loading model %d%%\nWATCHDOG=1", decile * 10);
        log_info("engine: loading model: %d%%", decile * 10);
    }
    return 0;
}

/* ---- start and stop ---- */

static int start_governor(struct agent_daemon *d)
{
    struct gov_governor_params gp;
    gov_governor_params_defaults(&gp);
    char err[512], root[PATH_MAX], saved[PATH_MAX];
    if (agent_governor_paths(&d->cfg.governor, NULL, NULL, root, sizeof(root), saved, sizeof(saved),
                             err, sizeof(err)) < 0) {
        log_warn("governor: [governor] sysfs_root %s; continuing without frequency control", err);
        return 0;
    }
    gp.sysfs_root = root;
    gp.saved_path = saved;
    gp.calibration_path = d->cfg.governor.calibration_path;
    gp.monitor_only = !d->cfg.governor.enabled;
    gp.backend = strcmp(d->cfg.governor.backend, "sysfs") == 0         ? GOV_BACKEND_SYSFS
                 : strcmp(d->cfg.governor.backend, "libcpupower") == 0 ? GOV_BACKEND_LIBCPUPOWER
                                                                       : GOV_BACKEND_AUTO;
    if (agent_governor_tunables(&d->cfg.governor, &gp.tunables, NULL, err, sizeof(err)) < 0) {
        log_err("governor: %s", err);
        return -EINVAL;
    }
    int rc = gov_governor_new(&gp, &d->gov, err, sizeof(err));
    if (rc < 0) {
        /* No cpufreq at all (a VM, a container): run without a governor rather than not at all. */
        log_warn("governor: %s; continuing without frequency control", err);
        d->gov = NULL;
        return 0;
    }
    drain_governor_events(d);
    struct gov_status st;
    gov_governor_status(d->gov, &st);
    log_info("governor: policy %s, backend %s, %u cluster(s)%s%s", st.policy, st.backend,
             st.n_clusters, st.monitor_only ? ", monitor only: " : "",
             st.monitor_only ? st.monitor_reason : "");
    refresh_shared_governor(d);
    return 0;
}

static int start_telemetry(struct agent_daemon *d)
{
    if (!d->cfg.telemetry.enabled)
        return 0;
    char err[512];
    char dir[CFG_STR_PATH];
    snprintf(dir, sizeof(dir), "%s", d->cfg.telemetry.database);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        cmn_mkdir_p(dir);
    }
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    sp.commit_interval_ms = (uint32_t)d->cfg.telemetry.commit_interval_ms;
    sp.retain_samples_s = (uint64_t)d->cfg.telemetry.retention_days * 86400ULL;
    sp.quota_bytes = (uint64_t)d->cfg.telemetry.max_db_mb * 1024ULL * 1024ULL;
    sp.on_event = on_store_event;
    sp.on_event_user = d;
    int rc = tel_store_open(d->cfg.telemetry.database, &sp, &d->store, err, sizeof(err));
    if (rc < 0) {
        log_err("telemetry: %s", err);
        return rc;
    }
    double total = 0;
    tel_store_energy_total_j(d->store, &total);
    struct tel_power_params pp;
    tel_power_params_defaults(&pp);
    pp.root = d->cfg.telemetry.sysfs_root;
    pp.estimate.idle_w = d->cfg.telemetry.estimate_idle_w;
    pp.estimate.cpu_static_w = d->cfg.telemetry.estimate_cpu_static_w;
    pp.estimate.cpu_dyn_w = d->cfg.telemetry.estimate_cpu_dyn_w;
    rc = tel_power_new(&pp, cmn_now_ns(), total, &d->power, err, sizeof(err));
    if (rc < 0) {
        log_err("telemetry: power: %s", err);
        return rc;
    }
    log_info("telemetry: %s, database %s", tel_power_describe(d->power), d->cfg.telemetry.database);
    return 0;
}

static int start_mqtt(struct agent_daemon *d)
{
    if (!d->cfg.mqtt.enabled)
        return 0;
    const struct agent_config *c = &d->cfg;
    char host_id[65] = "";
    if (!c->mqtt.device_id[0]) {
        char host[256] = "ember";
        gethostname(host, sizeof(host) - 1);
        size_t j = 0;
        for (size_t i = 0; host[i] && j < 64; i++) {
            char ch = host[i];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
            host_id[j++] = ok ? ch : '_';
        }
        host_id[j] = '\0';
    }
    struct tel_mqtt_params p;
    tel_mqtt_params_defaults(&p);
    p.host = c->mqtt.host;
    p.port = c->mqtt.port;
    p.prefix = c->mqtt.prefix;
    p.device_id = c->mqtt.device_id[0] ? c->mqtt.device_id : host_id;
    p.protocol = strcmp(c->mqtt.protocol, "v311") == 0 ? TEL_MQTT_PROTO_V311 : TEL_MQTT_PROTO_V5;
    p.keepalive_s = c->mqtt.keepalive_s;
    p.username = c->mqtt.username[0] ? c->mqtt.username : NULL;
    p.password = c->mqtt.password[0] ? c->mqtt.password : NULL;
    p.tls_ca = c->mqtt.tls_ca[0] ? c->mqtt.tls_ca : NULL;
    p.tls_cert = c->mqtt.tls_cert[0] ? c->mqtt.tls_cert : NULL;
    p.tls_key = c->mqtt.tls_key[0] ? c->mqtt.tls_key : NULL;
    p.reconnect_min_ms = (uint32_t)c->mqtt.reconnect_min_ms;
    p.reconnect_max_ms = (uint32_t)c->mqtt.reconnect_max_ms;
    p.replay_rate_per_s = (uint32_t)c->mqtt.replay_rate_per_s;
    p.discovery = c->mqtt.discovery;
    p.discovery_mode = strcmp(c->mqtt.discovery_mode, "device") == 0 ? TEL_MQTT_DISCOVERY_DEVICE
                                                                     : TEL_MQTT_DISCOVERY_COMPONENT;
    p.discovery_prefix = c->mqtt.discovery_prefix;
    p.configuration_url = c->mqtt.configuration_url;
    p.support_url = c->mqtt.support_url;
    p.ask = c->mqtt.ask;
    p.ask_response_prefix = c->mqtt.ask_response_prefix;
    /* Three missed samples, and never under 30 s (Home Assistant's recorder samples slower). */
    uint64_t expire_s = 3 * (uint64_t)c->telemetry.sample_interval_ms / 1000;
    p.expire_after_s = expire_s < 30 ? 30 : expire_s > 86400 ? 86400 : (uint32_t)expire_s;
    p.sw_version = EMBER_VERSION;
    const struct gov_policy_ops *const *list = gov_policy_list();
    for (size_t i = 0; list[i] && p.commands.n_policies < TEL_MQTT_MAX_POLICIES; i++)
        p.commands.policies[p.commands.n_policies++] = list[i]->name;
    p.commands.cap_min_w = 0.5;
    p.commands.cap_max_w = 10000;
    p.commands.cap_off_allowed = true;
    struct tel_mqtt_callbacks cb = {
        .on_policy_set = on_mqtt_policy,
        .on_power_cap_set = on_mqtt_cap,
        .on_ask = on_mqtt_ask,
        .on_state = on_mqtt_state,
        .user = d,
    };
    char err[512];
    int rc = tel_mqtt_new(&p, &cb, d->store, &d->mqtt, err, sizeof(err));
    if (rc < 0) {
        log_err("mqtt: %s", err);
        return rc;
    }
    rc = agent_loop_add_timer(d->loop, 0, on_mqtt_timer, d, &d->mqtt_timer);
    if (rc < 0)
        return rc;
    d->mqtt_fd = -1;
    mqtt_update_watch(d, cmn_now_ns());
    log_info("mqtt: %s:%d as %s/%s", p.host, p.port, p.prefix, p.device_id);
    return 0;
}

static int load_model(struct agent_daemon *d)
{
    if (!d->cfg.engine.model[0]) {
        log_warn("engine: no model configured ([engine] model); /health answers 503 no_model");
        if (d->mqtt)
            tel_mqtt_publish_model(d->mqtt, &(struct tel_model_info){0});
        return 0;
    }
    notify_status("loading model %s", d->cfg.engine.model);
    uint64_t t0 = cmn_now_ns();
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.progress = load_progress;
    mp.use_mmap = d->cfg.engine.mmap;
    char err[512];
    int rc = eng_model_load(d->cfg.engine.model, &mp, &d->model, err, sizeof(err));
    if (rc < 0) {
        log_err("engine: %s", err);
        return rc;
    }
    struct eng_model_info info;
    eng_model_info(d->model, &info);
    log_info("engine: %s (%s, %s, %d layers, %.1f MB) loaded in %.0f ms; %s", d->cfg.engine.model,
             info.arch, info.file_type, info.n_layer, (double)info.size_bytes / 1e6,
             (double)(cmn_now_ns() - t0) / 1e6, eng_cpu_features_string());
    if (d->mqtt) {
        const char *file = strrchr(d->cfg.engine.model, '/');
        struct tel_model_info mi = {
            .name = d->cfg.api.model_name[0] ? d->cfg.api.model_name
                    : info.name[0]           ? info.name
                                             : (file ? file + 1 : d->cfg.engine.model),
            .file = file ? file + 1 : d->cfg.engine.model,
            .arch = info.arch,
            .quant = info.file_type,
            .n_params = info.n_params,
            .size_bytes = info.size_bytes,
            .context_length = info.n_ctx_train > 0 ? (uint32_t)info.n_ctx_train : 0,
        };
        tel_mqtt_publish_model(d->mqtt, &mi);
    }
    struct agent_worker_hooks hooks = {
        .phase = hook_phase,
        .energy_j = hook_energy,
        .policy = hook_policy,
        .request_done = hook_request_done,
        .user = d,
    };
    rc = agent_worker_new(d->model, &d->cfg, &hooks, &d->worker, err, sizeof(err));
    if (rc < 0) {
        log_err("engine: %s", err);
        return rc;
    }
    return 0;
}

static int setup_signals(struct agent_daemon *d)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN); /* a vanished HTTP client or broker is an error code, not death */
    d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->signal_fd < 0)
        return -errno;
    return agent_loop_add_fd(d->loop, d->signal_fd, EPOLLIN, on_signal, d);
}

static void shutdown_all(struct agent_daemon *d)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    uint64_t t0 = cmn_now_ns();
    /* Running requests may finish (their clients still stream) within the timeout; queued ones
     * are refused, new ones get 503. */
    if (d->http) {
        agent_http_quiesce(d->http); /* no new connections; new requests get 503 */
        agent_http_set_worker(d->http, NULL);
    }
    agent_worker_free(d->worker, d->cfg.agent.shutdown_timeout_ms);
    d->worker = NULL;
    agent_http_free(d->http);
    d->http = NULL;
    on_wake(d, cmn_now_ns()); /* the last sessions and ask answers */
    if (d->gov) {
        char err[512];
        if (gov_governor_restore(d->gov, err, sizeof(err)) < 0)
            log_err("governor: restore: %s", err);
        else
            log_info("governor: original CPU frequency settings restored");
        drain_governor_events(d);
    }
    if (d->mqtt)
        tel_mqtt_close(d->mqtt, 2000);
    if (d->store) {
        int rc = tel_store_flush(d->store);
        if (rc < 0)
            log_err("telemetry: final flush: %s", strerror(-rc));
    }
    tel_mqtt_free(d->mqtt);
    d->mqtt = NULL;
    tel_store_close(d->store);
    d->store = NULL;
    tel_power_free(d->power);
    d->power = NULL;
    gov_governor_free(d->gov);
    d->gov = NULL;
    eng_model_free(d->model);
    d->model = NULL;
    log_notice("stopped in %.0f ms", (double)(cmn_now_ns() - t0) / 1e6);
}

int agent_daemon_run(const struct agent_config *cfg, const char *config_path)
{
    struct agent_daemon *d = calloc(1, sizeof(*d));
    if (!d)
        return EMBER_EXIT_FAILURE;
    d->cfg = *cfg;
    d->file_governor = cfg->governor;
    d->config_path = config_path;
    d->signal_fd = -1;
    d->mqtt_fd = -1;
    d->last_power_w = NAN;
    d->last_temp_c = NAN;
    d->power_cap_w = 0;
    d->tokens_per_s = NAN;
    atomic_init(&d->phase, AGENT_PHASE_IDLE);
    atomic_init(&d->sample_phase, AGENT_PHASE_IDLE);
    pthread_mutex_init(&d->box_lock, NULL);
    pthread_cond_init(&d->box_cond, NULL);
    pthread_mutex_init(&d->shared_lock, NULL);
    agent_meter_init(&d->meter);
    agent_phase_energy_init(&d->phase_energy);
    int exit_code = EMBER_EXIT_FAILURE;
    uint64_t t0 = cmn_now_ns();

    if (agent_loop_new(&d->loop) < 0)
        goto out;
    if (setup_signals(d) < 0 || agent_loop_set_wake(d->loop, on_wake, d) < 0) {
        log_err("cannot set up signal handling");
        goto out;
    }
    notify_status("starting");
    if (start_governor(d) < 0 || start_telemetry(d) < 0 || start_mqtt(d) < 0)
        goto stop;

    char err[512];
    if (d->cfg.api.enabled) {
        struct agent_http_hooks hooks = {
            .metrics = hook_metrics,
            .governor_get = hook_governor_get,
            .governor_set = hook_governor_set,
            .user = d,
        };
        struct agent_http_params hp;
        agent_http_params_defaults(&hp);
        hp.max_connections = (unsigned)d->cfg.api.max_connections;
        hp.idle_timeout_s = (unsigned)d->cfg.api.idle_timeout_s;
        hp.max_connections_per_client = (unsigned)d->cfg.api.max_connections_per_client;
        hp.header_timeout_ms = (unsigned)d->cfg.api.header_timeout_ms;
        hp.stream_buffer_bytes = (size_t)d->cfg.api.stream_buffer_bytes;
        hp.stream_coalesce_ms = (unsigned)d->cfg.api.stream_coalesce_ms;
        int rc = agent_http_new(&d->cfg, NULL, &hooks, &hp, &d->http, err, sizeof(err));
        if (rc < 0) {
            log_err("api: %s", err);
            goto stop;
        }
        log_info("api: http://%s:%u/v1", d->cfg.api.listen, agent_http_port(d->http));
    }
    if (load_model(d) < 0)
        goto stop;
    if (d->http && d->worker)
        agent_http_set_worker(d->http, d->worker);
    else if (d->http && !d->cfg.engine.model[0])
        agent_http_set_no_model(d->http);

    if (agent_loop_add_timer(d->loop, (uint64_t)d->cfg.governor.tick_ms, on_gov_timer, d,
                             &d->gov_timer) < 0 ||
        agent_loop_add_timer(d->loop, (uint64_t)d->cfg.telemetry.sample_interval_ms,
                             on_sample_timer, d, &d->sample_timer) < 0)
        goto stop;
    uint64_t watchdog_us = 0;
    if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0)
        agent_loop_add_timer(d->loop, watchdog_us / 2000, on_watchdog, d, &d->watchdog_timer);

    if (d->gov)
        governor_tick(d, cmn_now_ns());
    on_sample_timer(d, cmn_now_ns());
    log_notice("ready in %.0f ms", (double)(cmn_now_ns() - t0) / 1e6);
    sd_notifyf(0, "READY=1\nSTATUS=serving %s",
               d->cfg.engine.model[0] ? d->cfg.engine.model : "(no model)");
    if (agent_loop_run(d->loop) < 0) {
        log_err("event loop failed: %s", strerror(errno));
        goto stop;
    }
    exit_code = EMBER_EXIT_OK;
stop:
    shutdown_all(d);
out:
    if (d->signal_fd >= 0)
        close(d->signal_fd);
    agent_loop_free(d->loop);
    agent_meter_destroy(&d->meter);
    agent_phase_energy_destroy(&d->phase_energy);
    free(d->gov_json);
    pthread_mutex_destroy(&d->box_lock);
    pthread_cond_destroy(&d->box_cond);
    pthread_mutex_destroy(&d->shared_lock);
    free(d);
    return exit_code;
}
