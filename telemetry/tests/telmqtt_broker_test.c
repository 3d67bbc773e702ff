/* Integration tests of the MQTT publisher against a real mosquitto started on a random loopback
 * port: plain, password file and TLS connections; zero loss across a broker stopped and restarted
 * (a 5 s outage stands in for the 60 s to keep the test short), a broker killed -9 and the
 * agent killed -9 between batches; Home Assistant discovery and its re-publication; commands,
 * replay/req and ask. One case per run: `telmqtt_broker_test CASE`. The test itself is the event
 * loop: it polls the publisher's socket as the agent's epoll loop would. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mqtt_protocol.h>
#include <sqlite3.h>

#include "common/timeutil.h"
#include "ember_test.h"
#include "telemetry/mqtt.h"
#include "telemetry/store.h"
#include "telemetry/wall.h"
#include "telmqtt_util.h"

struct rig {
    struct tbroker b;
    struct tsub sub;
    bool have_sub;
    struct tel_store *store;
    struct tel_mqtt *m;
    char db[400];
    uint32_t interval_ms;
    bool producing;
    uint64_t next_sample_ns;
    uint64_t produced, last_seq;
    /* callbacks */
    int n_policy, n_cap, n_ask, n_connected, n_refused;
    char last_policy[TEL_NAME_MAX];
    bool cap_off;
    double cap_w;
    char ask_topic[128], ask_payload[128], ask_corr[64];
    size_t ask_corr_len;
    char last_detail[256];
    int max_wait_ms; /* longest poll when no deadline is nearer (0: 20 ms, for the predicates) */
    bool energy_from_store; /* samples continue from the store's total, as tel_power does */
    double energy_base;
    uint32_t max_inflight_seen;
};

static void on_policy(void *user, const char *policy)
{
    struct rig *r = user;
    r->n_policy++;
    snprintf(r->last_policy, sizeof(r->last_policy), "%s", policy);
}

static void on_cap(void *user, bool off, double w)
{
    struct rig *r = user;
    r->n_cap++;
    r->cap_off = off;
    r->cap_w = w;
}

static void on_ask(void *user, const char *payload, size_t len, const char *topic, const void *corr,
                   size_t corr_len)
{
    struct rig *r = user;
    r->n_ask++;
    snprintf(r->ask_payload, sizeof(r->ask_payload), "%.*s", (int)len, payload);
    snprintf(r->ask_topic, sizeof(r->ask_topic), "%s", topic ? topic : "");
    r->ask_corr_len = corr_len < sizeof(r->ask_corr) ? corr_len : 0;
    if (r->ask_corr_len)
        memcpy(r->ask_corr, corr, r->ask_corr_len);
}

static void on_state(void *user, enum tel_mqtt_conn_state s, const char *detail)
{
    struct rig *r = user;
    if (s == TEL_MQTT_CONNECTED)
        r->n_connected++;
    if (strstr(detail, "refused"))
        r->n_refused++;
    snprintf(r->last_detail, sizeof(r->last_detail), "%s", detail);
    if (getenv("TELMQTT_VERBOSE"))
        fprintf(stderr, "[mqtt] %s\n", detail);
}

static const char *const policies[] = {"balanced", "performance", "powersave", "efficiency"};

static void params_for(struct rig *r, struct tel_mqtt_params *p)
{
    tel_mqtt_params_defaults(p);
    p->port = r->b.port;
    p->device_id = "box1";
    p->keepalive_s = 10;
    p->reconnect_min_ms = 100;
    p->reconnect_max_ms = 1000;
    p->connect_timeout_ms = 3000;
    p->replay_rate_per_s = 200;
    p->inflight_max = 20;
    p->cursor_save_ms = 200;
    p->sw_version = "0.1.0";
    for (uint32_t i = 0; i < 4; i++)
        p->commands.policies[i] = policies[i];
    p->commands.n_policies = 4;
    p->commands.cap_min_w = 5;
    p->commands.cap_max_w = 65;
    p->commands.cap_off_allowed = true;
}

static int open_store(struct rig *r)
{
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    sp.commit_interval_ms = 300;
    sp.commit_rows = 50;
    char err[256];
    int rc = tel_store_open(r->db, &sp, &r->store, err, sizeof(err));
    if (rc)
        fprintf(stderr, "store: %s\n", err);
    return rc;
}

static int open_mqtt(struct rig *r, struct tel_mqtt_params *p)
{
    struct tel_mqtt_callbacks cb = {.on_policy_set = on_policy,
                                    .on_power_cap_set = on_cap,
                                    .on_ask = on_ask,
                                    .on_state = on_state,
                                    .user = r};
    char err[256];
    int rc = tel_mqtt_new(p, &cb, r->store, &r->m, err, sizeof(err));
    if (rc)
        fprintf(stderr, "mqtt: %s\n", err);
    return rc;
}

static void fill_sample(struct tel_sample *s, uint64_t n)
{
    memset(s, 0, sizeof(*s));
    s->ts_ns = cmn_wall_ns();
    s->power_w = 10.0 + (double)(n % 50) * 0.25;
    s->energy_j = 3600.0 + (double)n * 12.5;
    s->temp_c = 40.0 + (double)(n % 7);
    s->util = 0.5;
    s->n_freq = 2;
    s->freq_mhz[0] = 2400;
    s->freq_mhz[1] = 1800;
    snprintf(s->policy, sizeof(s->policy), "balanced");
    snprintf(s->phase, sizeof(s->phase), "decode");
    s->source = TEL_SOURCE_ESTIMATE;
}

static void produce(struct rig *r)
{
    struct tel_sample s;
    fill_sample(&s, r->produced);
    if (r->energy_from_store)
        s.energy_j = r->energy_base + (double)(r->produced + 1) * 12.5;
    if (tel_store_append_sample(r->store, &s, NULL) != 0)
        return;
    r->produced++;
    r->last_seq = s.seq;
    tel_mqtt_publish_sample(r->m, &s);
}

/* One pass of the event loop, waiting at most max_ms. */
static void loop_once(struct rig *r, int max_ms)
{
    uint64_t now = cmn_now_ns();
    struct tel_mqtt_poll pi;
    tel_mqtt_poll_info(r->m, now, &pi);
    uint64_t until = now + (uint64_t)max_ms * CMN_NS_PER_MS;
    if (pi.deadline_ns < until)
        until = pi.deadline_ns;
    if (r->producing && r->next_sample_ns < until)
        until = r->next_sample_ns;
    struct pollfd fds[2];
    int n = 0, sub_i = -1, pub_i = -1;
    if (pi.fd >= 0) {
        pub_i = n;
        fds[n++] = (struct pollfd){.fd = pi.fd, .events = POLLIN | (pi.want_write ? POLLOUT : 0)};
    }
    if (r->have_sub && tsub_fd(&r->sub) >= 0) {
        sub_i = n;
        fds[n].fd = tsub_fd(&r->sub);
        fds[n++].events = POLLIN | (mosquitto_want_write(r->sub.mosq) ? POLLOUT : 0);
    }
    int ms = until > now ? (int)((until - now + CMN_NS_PER_MS - 1) / CMN_NS_PER_MS) : 0;
    poll(fds, (nfds_t)n, ms);
    now = cmn_now_ns();
    if (pub_i >= 0) {
        if (fds[pub_i].revents & (POLLIN | POLLERR | POLLHUP))
            tel_mqtt_handle_read(r->m, now);
        if (fds[pub_i].revents & POLLOUT)
            tel_mqtt_handle_write(r->m, now);
    }
    tel_mqtt_handle_misc(r->m, now);
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r->m, &st);
    if (st.inflight > r->max_inflight_seen)
        r->max_inflight_seen = st.inflight;
    if (sub_i >= 0)
        tsub_io(&r->sub, fds[sub_i].revents & (POLLIN | POLLERR | POLLHUP),
                fds[sub_i].revents & POLLOUT);
    if (r->producing && now >= r->next_sample_ns) {
        produce(r);
        r->next_sample_ns += (uint64_t)r->interval_ms * CMN_NS_PER_MS;
        if (r->next_sample_ns < now)
            r->next_sample_ns = now;
    }
    tel_store_tick(r->store);
}

typedef bool (*pred_fn)(struct rig *r);

/* Runs the loop until pred (when given) holds or ms pass; returns whether pred held. */
static bool run_until(struct rig *r, int ms, pred_fn pred)
{
    uint64_t end = cmn_now_ns() + (uint64_t)ms * CMN_NS_PER_MS;
    while (cmn_now_ns() < end) {
        if (pred && pred(r))
            return true;
        loop_once(r, r->max_wait_ms ? r->max_wait_ms : 20);
    }
    return pred ? pred(r) : true;
}

/* Predicates with their parameters in globals (the loop takes plain function pointers). */
static const char *g_topic;
static size_t g_count;
static const int *g_counter;
static int g_counter_min;

static bool topic_count_reached(struct rig *r)
{
    return tsub_count(&r->sub, g_topic) >= g_count;
}

static bool counter_reached(struct rig *r)
{
    (void)r;
    return *g_counter >= g_counter_min;
}

static bool wait_topic(struct rig *r, const char *topic, size_t count)
{
    g_topic = topic;
    g_count = count;
    return run_until(r, 10000, topic_count_reached);
}

static bool wait_counter(struct rig *r, const int *counter, int min)
{
    g_counter = counter;
    g_counter_min = min;
    return run_until(r, 10000, counter_reached);
}

static size_t count_replayed(struct rig *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->sub.n; i++)
        n += r->sub.msgs[i].replay_prop;
    return n;
}

static uint64_t g_rejected_min;

static bool rejected_reached(struct rig *r)
{
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r->m, &st);
    return st.commands_rejected >= g_rejected_min;
}

static bool replay_done(struct rig *r)
{
    return count_replayed(r) >= 26;
}

static bool is_connected(struct rig *r)
{
    return tel_mqtt_state(r->m) == TEL_MQTT_CONNECTED && r->sub.subscribed;
}

static bool all_received(struct rig *r)
{
    return r->sub.n_seqs > 0 && r->sub.seqs[r->sub.n_seqs - 1] >= r->last_seq;
}

static bool all_acked(struct rig *r)
{
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r->m, &st);
    return st.acked_seq >= r->last_seq && st.inflight == 0;
}

static void start_producing(struct rig *r, uint32_t interval_ms)
{
    r->interval_ms = interval_ms;
    r->producing = true;
    r->next_sample_ns = cmn_now_ns();
}

static void produce_n(struct rig *r, uint64_t n, uint32_t interval_ms)
{
    uint64_t target = r->produced + n;
    start_producing(r, interval_ms);
    while (r->produced < target)
        loop_once(r, 20);
    r->producing = false;
}

static int rig_start(struct rig *r, enum tb_mode mode)
{
    memset(r, 0, sizeof(*r));
    int rc = tb_start(&r->b, mode);
    if (rc)
        return rc;
    snprintf(r->db, sizeof(r->db), "%s/telemetry.db", r->b.dir);
    if (open_store(r) != 0)
        return -1;
    const char *user = mode == TB_PASSWORD ? "ember" : NULL;
    if (tsub_open(&r->sub, &r->b, user, user ? "s3cret-pw" : NULL, 5000) != 0) {
        fprintf(stderr, "subscriber could not connect\n");
        return -1;
    }
    r->have_sub = true;
    return 0;
}

static void rig_stop(struct rig *r)
{
    if (r->m) {
        tel_mqtt_close(r->m, 2000);
        tel_mqtt_free(r->m);
    }
    tel_store_close(r->store);
    if (r->have_sub)
        tsub_close(&r->sub);
    tb_cleanup(&r->b);
}

static double jnum(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *last_payload(struct rig *r, const char *suffix)
{
    char topic[128];
    snprintf(topic, sizeof(topic), "ember/box1/%s", suffix);
    const struct tmsg *m = tsub_last(&r->sub, topic);
    return m ? m->payload : NULL;
}

/* ---- cases ---- */

static int case_plain(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    CHECK(open_mqtt(&r, &p) == 0);
    tel_mqtt_publish_governor_state(r.m, "balanced");
    tel_mqtt_publish_power_cap_state(r.m, false, 45);
    CHECK(run_until(&r, 5000, is_connected));
    CHECK_EQ_INT(tel_mqtt_protocol_version(r.m), 5);

    produce_n(&r, 100, 5);
    CHECK(run_until(&r, 10000, all_received));
    CHECK(tsub_check_seqs(&r.sub, 1, 100) == 0);
    CHECK(run_until(&r, 5000, all_acked));

    /* The last sample, field by field. */
    const char *json = last_payload(&r, "telemetry");
    cJSON *j = cJSON_Parse(json ? json : "");
    CHECK(j != NULL);
    struct tel_sample want;
    fill_sample(&want, 99);
    CHECK_EQ_INT(cJSON_GetArraySize(j), 10);
    CHECK_NEAR(jnum(j, "v"), 1, 0);
    CHECK_NEAR(jnum(j, "seq"), 100, 0);
    CHECK_NEAR(jnum(j, "ts"), (double)cmn_wall_ns() / 1e9, 30);
    CHECK_NEAR(jnum(j, "power_w"), want.power_w, 1e-9);
    CHECK_NEAR(jnum(j, "energy_wh"), want.energy_j / 3600.0, 1e-4);
    CHECK_NEAR(jnum(j, "temp_c"), want.temp_c, 1e-9);
    CHECK_NEAR(jnum(j, "util"), 0.5, 1e-9);
    cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "freq_mhz");
    CHECK(cJSON_IsArray(f) && cJSON_GetArraySize(f) == 2);
    CHECK_NEAR(cJSON_GetArrayItem(f, 0) ? cJSON_GetArrayItem(f, 0)->valuedouble : 0, 2400, 0);
    CHECK_NEAR(cJSON_GetArrayItem(f, 1) ? cJSON_GetArrayItem(f, 1)->valuedouble : 0, 1800, 0);
    CHECK_STR(jstr(j, "policy"), "balanced");
    CHECK_STR(jstr(j, "phase"), "decode");
    cJSON_Delete(j);

    /* Retained status and state. */
    const struct tmsg *st = tsub_last(&r.sub, "ember/box1/status");
    CHECK(st && strcmp(st->payload, "online") == 0);
    CHECK_STR(last_payload(&r, "governor/state"), "balanced");
    CHECK_STR(last_payload(&r, "power_cap/state"), "45");

    /* Session and event. */
    struct tel_session ses = {.id = 7,
                              .ts_ns = cmn_wall_ns(),
                              .prompt_tokens = 20,
                              .gen_tokens = 101,
                              .ttft_ms = 250,
                              .duration_ms = 5250,
                              .energy_j = 60.5,
                              .j_per_token = 0.5,
                              .policy = "balanced"};
    CHECK(tel_mqtt_publish_session(r.m, &ses) == 0);
    CHECK(tel_mqtt_publish_event(r.m, "governor", "policy balanced") == 0);
    CHECK(wait_topic(&r, "ember/box1/event", 1));
    j = cJSON_Parse(last_payload(&r, "session") ? last_payload(&r, "session") : "");
    CHECK_NEAR(jnum(j, "id"), 7, 0);
    CHECK_NEAR(jnum(j, "gen_tokens"), 101, 0);
    CHECK_NEAR(jnum(j, "tokens_per_s"), 20.0, 1e-9); /* 100 tokens after the first in 5 s */
    CHECK_NEAR(jnum(j, "j_per_token"), 0.5, 1e-9);
    cJSON_Delete(j);
    j = cJSON_Parse(last_payload(&r, "event") ? last_payload(&r, "event") : "");
    CHECK_STR(jstr(j, "kind"), "governor");
    CHECK_STR(jstr(j, "detail"), "policy balanced");
    cJSON_Delete(j);

    /* Clean exit: explicit retained offline; the cursor lands in the store. */
    tel_mqtt_close(r.m, 2000);
    tel_mqtt_free(r.m);
    r.m = NULL;
    tsub_run(&r.sub, 300);
    st = tsub_last(&r.sub, "ember/box1/status");
    CHECK(st && strcmp(st->payload, "offline") == 0);
    uint64_t cursor = 0;
    CHECK(tel_store_meta_get_u64(r.store, TEL_META_MQTT_ACKED_SEQ, &cursor) == 0);
    CHECK_EQ_INT(cursor, 100);

    /* A late subscriber sees the retained offline. */
    struct tsub late;
    CHECK(tsub_open(&late, &r.b, NULL, NULL, 5000) == 0);
    tsub_run(&late, 300);
    st = tsub_last(&late, "ember/box1/status");
    CHECK(st && st->retain && strcmp(st->payload, "offline") == 0);
    tsub_close(&late);

    /* Dying without DISCONNECT: the broker publishes the Last Will. */
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    CHECK(wait_topic(&r, "ember/box1/status", 3)); /* online, offline, online */
    st = tsub_last(&r.sub, "ember/box1/status");
    CHECK(st && strcmp(st->payload, "online") == 0);
    tel_mqtt_free(r.m); /* closes the socket, no DISCONNECT */
    r.m = NULL;
    tsub_run(&r.sub, 1000);
    st = tsub_last(&r.sub, "ember/box1/status");
    CHECK(st && strcmp(st->payload, "offline") == 0);

    rig_stop(&r);
    return et_finish();
}

static int case_password(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PASSWORD);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    p.username = "ember";
    p.password = "wrong";
    CHECK(open_mqtt(&r, &p) == 0);
    run_until(&r, 1500, NULL);
    CHECK(tel_mqtt_state(r.m) != TEL_MQTT_CONNECTED);
    CHECK(r.n_connected == 0);
    CHECK(r.n_refused >= 1);
    CHECK_CONTAINS(r.last_detail, "refused");
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r.m, &st);
    CHECK(st.reconnect_attempt >= 2); /* it keeps trying, backing off */
    tel_mqtt_free(r.m);

    p.password = "s3cret-pw";
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    produce_n(&r, 50, 5);
    CHECK(run_until(&r, 10000, all_received));
    CHECK(tsub_check_seqs(&r.sub, 1, 50) == 0);
    rig_stop(&r);
    return et_finish();
}

static int case_tls(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_TLS);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    p.tls_ca = r.b.ca;
    p.tls_cert = r.b.client_cert;
    p.tls_key = r.b.client_key;
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    produce_n(&r, 50, 5);
    CHECK(run_until(&r, 10000, all_received));
    CHECK(tsub_check_seqs(&r.sub, 1, 50) == 0);
    tel_mqtt_close(r.m, 2000);
    tel_mqtt_free(r.m);

    /* Without the client certificate the broker (require_certificate) refuses. */
    p.tls_cert = p.tls_key = NULL;
    CHECK(open_mqtt(&r, &p) == 0);
    run_until(&r, 1500, NULL);
    CHECK(r.n_connected == 1);
    CHECK(tel_mqtt_state(r.m) != TEL_MQTT_CONNECTED);
    rig_stop(&r);
    return et_finish();
}

/* Broker outage while samples keep coming at 50 Hz: stopped (SIGTERM) or killed -9 for
 * outage_ms, then restarted. Every seq must arrive once, in order, and the replay must respect
 * the configured rate. */
static int case_outage(bool kill9, int outage_ms)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    p.replay_rate_per_s = 100;
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    start_producing(&r, 20);
    run_until(&r, 1000, NULL);
    if (kill9)
        tb_kill9(&r.b);
    else
        tb_stop(&r.b);
    uint64_t at_stop = r.last_seq;
    run_until(&r, outage_ms, NULL); /* samples keep coming; the publisher retries */
    uint64_t backlog = r.last_seq - at_stop;
    /* a real backlog: at least half the samples the outage should produce at 50 Hz (a loaded
     * machine runs the producer's loop late) */
    CHECK_MSG(backlog >= (uint64_t)outage_ms / 20 / 2, "backlog %llu after %d ms",
              (unsigned long long)backlog, outage_ms);
    CHECK(tel_mqtt_state(r.m) != TEL_MQTT_CONNECTED);
    CHECK(tb_restart(&r.b) == 0);
    /* The subscriber first, so it is listening when the replay starts. */
    CHECK(tsub_reconnect(&r.sub, 5000) == 0);
    uint64_t t0 = cmn_now_ns();
    CHECK(run_until(&r, 5000, is_connected));
    r.producing = false;
    int catchup_ms = (int)(backlog * 1000 / p.replay_rate_per_s * 3 / 2) + 10000;
    CHECK(run_until(&r, catchup_ms, all_received));
    double catchup_s = (double)(cmn_now_ns() - t0) / 1e9;
    CHECK(run_until(&r, 5000, all_acked));
    CHECK(tsub_check_seqs(&r.sub, 1, r.last_seq) == 0);
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r.m, &st);
    CHECK(st.published_replay >= backlog);
    CHECK_MSG(r.max_inflight_seen <= p.inflight_max && r.max_inflight_seen > 1,
              "in flight at most %u (window %u)", r.max_inflight_seen, p.inflight_max);
    /* Throttled: the backlog cannot have gone out faster than the rate (plus one burst). */
    double min_s = ((double)backlog - (double)p.inflight_max) / p.replay_rate_per_s;
    CHECK_MSG(catchup_s >= min_s * 0.9, "catch-up %.2f s, rate allows no less than %.2f s",
              catchup_s, min_s);
    printf("outage %s %d ms: %llu samples total, backlog %llu replayed in %.2f s, "
           "%llu live, %llu reconnect attempts\n",
           kill9 ? "kill -9" : "SIGTERM", outage_ms, (unsigned long long)r.last_seq,
           (unsigned long long)backlog, catchup_s, (unsigned long long)st.published_live,
           (unsigned long long)st.disconnects);
    rig_stop(&r);
    return et_finish();
}

/* The agent killed -9 between batches. A child process runs store + publisher at 100 Hz and is
 * killed; a new "agent" reopens the store and must deliver every sample the store kept. */
static int case_agent_kill9(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    tel_store_close(r.store);
    r.store = NULL;
    uint64_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED);
    shared[0] = 0;
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    pid_t pid = fork();
    if (pid == 0) {
        struct rig c = r;
        c.have_sub = false;
        if (open_store(&c) || open_mqtt(&c, &p))
            _exit(2);
        start_producing(&c, 10);
        for (;;) {
            loop_once(&c, 10);
            shared[0] = c.last_seq;
        }
    }
    /* Let it publish, then also take the broker away for a moment so a backlog exists. */
    tsub_run(&r.sub, 1200);
    /* The test broker keeps nothing (persistence false) and the subscriber's session is clean:
     * samples the broker had acknowledged to the agent but not yet delivered when it stops are
     * lost inside the broker, not by the agent (a fleet broker persists; docs/telemetry.md).
     * They can only be seqs above the last one the subscriber had and at most the agent's
     * newest at the stop. */
    uint64_t sub_before = 0;
    for (size_t i = 0; i < r.sub.n_seqs; i++)
        sub_before = r.sub.seqs[i] > sub_before ? r.sub.seqs[i] : sub_before;
    tb_stop(&r.b);
    uint64_t agent_at_stop = shared[0];
    for (size_t i = 0; i < r.sub.n_seqs; i++)
        sub_before = r.sub.seqs[i] > sub_before ? r.sub.seqs[i] : sub_before;
    tsub_run(&r.sub, 700);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    uint64_t produced = shared[0];
    CHECK(tb_restart(&r.b) == 0);
    CHECK(tsub_reconnect(&r.sub, 5000) == 0);

    CHECK(open_store(&r) == 0);
    /* What survived: rows with seq <= produced. */
    sqlite3 *db = tel_store_db(r.store);
    sqlite3_stmt *q = NULL;
    uint64_t kept = 0, max_kept = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*), max(seq) FROM samples", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        kept = (uint64_t)sqlite3_column_int64(q, 0);
        max_kept = (uint64_t)sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    produce_n(&r, 20, 10);
    CHECK(run_until(&r, 20000, all_received));
    CHECK(run_until(&r, 5000, all_acked));

    /* Every kept seq and every new one arrived; the lost ones are at most one batch. */
    char *seen = calloc(r.last_seq + 2, 1);
    size_t dups = 0, out_of_order = 0;
    for (size_t i = 0; i < r.sub.n_seqs; i++) {
        uint64_t s = r.sub.seqs[i];
        if (s <= r.last_seq) {
            dups += seen[s];
            seen[s] = 1;
        }
        if (i && s <= r.sub.seqs[i - 1])
            out_of_order++;
    }
    uint64_t missing_kept = 0, lost = 0, lost_in_broker = 0;
    q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT seq FROM samples ORDER BY seq", -1, &q, NULL) == SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            uint64_t s = (uint64_t)sqlite3_column_int64(q, 0);
            if (s <= r.last_seq && !seen[s]) {
                if (s > sub_before && s <= agent_at_stop + 1)
                    lost_in_broker++;
                else
                    missing_kept++;
            }
        }
        sqlite3_finalize(q);
    }
    CHECK_MSG(lost_in_broker <= 20, "%llu samples lost in the stopped broker's queue",
              (unsigned long long)lost_in_broker);
    for (uint64_t s = 1; s <= produced; s++)
        lost += !seen[s];
    CHECK_EQ_INT(missing_kept, 0);
    CHECK_MSG(lost <= 50, "%llu samples lost, more than one batch (50)", (unsigned long long)lost);
    if (lost_in_broker)
        printf("agent kill -9: %llu acknowledged samples were in the test broker's queue when it "
               "stopped (persistence off), seqs %llu..%llu\n",
               (unsigned long long)lost_in_broker, (unsigned long long)sub_before + 1,
               (unsigned long long)agent_at_stop + 1);
    printf("agent kill -9: produced %llu before the kill, %llu kept by the store (max seq %llu), "
           "%llu never delivered (one batch is 50), %zu delivered twice, %zu out of order "
           "(re-sent after the restart)\n",
           (unsigned long long)produced, (unsigned long long)kept, (unsigned long long)max_kept,
           (unsigned long long)lost, dups, out_of_order);
    free(seen);
    munmap(shared, 4096);
    rig_stop(&r);
    return et_finish();
}

/* Everything the subscriber received, as JSON lines for tests/hass/hass_check.py. */
static int dump_messages(const struct tsub *sub, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < sub->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", sub->msgs[i].topic);
        cJSON_AddStringToObject(o, "payload", sub->msgs[i].payload);
        cJSON_AddBoolToObject(o, "retain", sub->msgs[i].retain);
        char *line = cJSON_PrintUnformatted(o);
        if (line)
            fprintf(f, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    return fclose(f);
}

/* Home Assistant's rules, applied by Python's jinja2 to what the broker delivered. */
static int hass_check(struct rig *r, int n_entities, bool dashboard)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/messages.jsonl", r->b.dir);
    if (dump_messages(&r->sub, path) != 0)
        return -1;
    return tb_sh("/usr/bin/python3 %s/tests/hass/hass_check.py %s --entities %d %s%s",
                 EMBER_SOURCE_DIR, path, n_entities,
                 dashboard ? "--dashboard " EMBER_SOURCE_DIR : "",
                 dashboard ? "/deploy/homeassistant/ember-dashboard.yaml" : "");
}

static void produce_sample(struct rig *r, struct tel_sample *s)
{
    if (tel_store_append_sample(r->store, s, NULL) != 0)
        return;
    r->produced++;
    r->last_seq = s->seq;
    tel_mqtt_publish_sample(r->m, s);
}

static uint64_t msg_index(const struct tsub *sub, const char *topic, size_t nth)
{
    for (size_t i = 0; i < sub->n; i++)
        if (strcmp(sub->msgs[i].topic, topic) == 0 && nth-- == 0)
            return i;
    return UINT64_MAX;
}

#define N_HASS_ENTITIES 13

static const char *const hass_topics[N_HASS_ENTITIES] = {
    "homeassistant/sensor/ember_box1/power/config",
    "homeassistant/sensor/ember_box1/energy/config",
    "homeassistant/sensor/ember_box1/wall_power/config",
    "homeassistant/sensor/ember_box1/wall_energy/config",
    "homeassistant/sensor/ember_box1/temperature/config",
    "homeassistant/sensor/ember_box1/cpu_frequency/config",
    "homeassistant/sensor/ember_box1/utilisation/config",
    "homeassistant/sensor/ember_box1/engine_phase/config",
    "homeassistant/sensor/ember_box1/model/config",
    "homeassistant/sensor/ember_box1/tokens_per_s/config",
    "homeassistant/sensor/ember_box1/joules_per_token/config",
    "homeassistant/select/ember_box1/governor_policy/config",
    "homeassistant/number/ember_box1/power_cap/config",
};

/* Discovery (per entity or per device), real states including nulls rendered by Home
 * Assistant's rules, the birth message (discovery at once, states after a random delay), and
 * the controls turning unavailable without a governor. */
static int case_hass(enum tel_mqtt_discovery_mode mode)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery_mode = mode;
    p.birth_delay_max_ms = 900;
    p.configuration_url = "http://box1.local:8088/health";
    p.support_url = "https://example.org/ember";
    CHECK(open_mqtt(&r, &p) == 0);
    tel_mqtt_publish_governor_state(r.m, "balanced");
    tel_mqtt_publish_power_cap_state(r.m, false, 45);
    struct tel_model_info mi = {.name = "stories260K",
                                .file = "stories260K.gguf",
                                .arch = "llama",
                                .quant = "F32",
                                .n_params = 260000};
    tel_mqtt_publish_model(r.m, &mi);
    CHECK(run_until(&r, 5000, is_connected));
    const char *last_cfg = mode == TEL_MQTT_DISCOVERY_DEVICE
                               ? "homeassistant/device/ember_box1/config"
                               : hass_topics[N_HASS_ENTITIES - 1];
    CHECK(wait_topic(&r, last_cfg, 1));
    if (mode == TEL_MQTT_DISCOVERY_COMPONENT) {
        for (int i = 0; i < N_HASS_ENTITIES; i++) {
            const struct tmsg *m = tsub_last(&r.sub, hass_topics[i]);
            CHECK_MSG(m != NULL, "%s not published", hass_topics[i]);
            cJSON *j = cJSON_Parse(m ? m->payload : "");
            CHECK(j && jstr(j, "unique_id") != NULL);
            CHECK(!cJSON_HasObjectItem(j, "has_entity_name"));
            cJSON_Delete(j);
        }
        cJSON *j = cJSON_Parse(tsub_last(&r.sub, hass_topics[1])->payload);
        CHECK_STR(jstr(j, "state_topic"), "ember/box1/state"); /* not telemetry (issue 20) */
        CHECK_STR(jstr(j, "state_class"), "total_increasing");
        cJSON_Delete(j);
    } else {
        CHECK_EQ_INT(tsub_count(&r.sub, hass_topics[0]), 0);
    }

    /* Real states: ordinary samples, then unknowns (null power, temperature, utilisation, a
     * cluster without frequency, no cpufreq at all, no governor), sessions with and without
     * generated tokens, the model before and after loading, the cap on and off. */
    produce_n(&r, 5, 5);
    struct tel_sample s;
    fill_sample(&s, r.produced);
    s.power_w = s.temp_c = s.util = NAN;
    s.freq_mhz[0] = NAN;
    s.policy[0] = '\0';
    produce_sample(&r, &s);
    fill_sample(&s, r.produced);
    s.n_freq = 0;
    snprintf(s.phase, sizeof(s.phase), "prefill");
    produce_sample(&r, &s);
    fill_sample(&s, r.produced);
    s.freq_mhz[0] = s.freq_mhz[1] = NAN;
    produce_sample(&r, &s);
    struct tel_session ses = {.id = 1,
                              .ts_ns = cmn_wall_ns(),
                              .prompt_tokens = 12,
                              .gen_tokens = 40,
                              .ttft_ms = 180,
                              .duration_ms = 2180,
                              .energy_j = 21.5,
                              .j_per_token = 0.41,
                              .policy = "balanced"};
    tel_mqtt_publish_session(r.m, &ses);
    ses.gen_tokens = 0;
    ses.j_per_token = 1.8;
    tel_mqtt_publish_session(r.m, &ses);
    tel_mqtt_publish_power_cap_state(r.m, true, 0);
    tel_mqtt_publish_model(r.m, &(struct tel_model_info){0});
    tel_mqtt_publish_model(r.m, &mi);
    CHECK(wait_topic(&r, "ember/box1/state", 8));
    CHECK(wait_topic(&r, "ember/box1/model", 3));
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r.m, &st);
    CHECK_EQ_INT(st.states_published, 8);

    /* Home Assistant restarts: discovery at once, the states after the random delay. */
    size_t cfg0 = tsub_count(&r.sub, last_cfg),
           gov0 = tsub_count(&r.sub, "ember/box1/governor/state");
    size_t state0 = tsub_count(&r.sub, "ember/box1/state");
    uint64_t t_birth = cmn_now_ns();
    tsub_publish(&r.sub, "homeassistant/status", "online", 6, false);
    CHECK(wait_topic(&r, last_cfg, cfg0 + 1));
    CHECK(wait_topic(&r, "ember/box1/governor/state", gov0 + 1));
    double delay_ms = (double)(cmn_now_ns() - t_birth) / 1e6;
    CHECK_MSG(delay_ms >= 300 * 0.9 && delay_ms < 900 + 500, "states %.0f ms after the birth",
              delay_ms);
    CHECK(wait_topic(&r, "ember/box1/state", state0 + 1)); /* the last live one, again */
    CHECK(msg_index(&r.sub, last_cfg, cfg0) < msg_index(&r.sub, "ember/box1/governor/state", gov0));
    for (const char *const *t = (const char *const[]){"ember/box1/power_cap/state",
                                                      "ember/box1/model", "ember/box1/session/last",
                                                      "ember/box1/governor/available", NULL};
         *t; t++)
        CHECK_MSG(tsub_count(&r.sub, *t) >= 2, "%s not republished after the birth", *t);
    tel_mqtt_get_stats(r.m, &st);
    CHECK_EQ_INT(st.discovery_published, 2);
    CHECK_EQ_INT(st.birth_republished, 1);
    /* Anything else on that topic does not. */
    tsub_publish(&r.sub, "homeassistant/status", "offline", 7, false);
    run_until(&r, 1200, NULL);
    CHECK_EQ_INT(tsub_count(&r.sub, last_cfg), cfg0 + 1);
    CHECK_EQ_INT(tsub_count(&r.sub, "ember/box1/governor/state"), gov0 + 1);

    CHECK_MSG(hass_check(&r, N_HASS_ENTITIES, mode == TEL_MQTT_DISCOVERY_COMPONENT) == 0,
              "tests/hass/hass_check.py found problems (above)");

    /* No governor: the select and number turn unavailable; no "" policy is published. */
    gov0 = tsub_count(&r.sub, "ember/box1/governor/state");
    tel_mqtt_publish_governor_state(r.m, NULL);
    CHECK(wait_topic(&r, "ember/box1/governor/available", 3));
    CHECK_STR(last_payload(&r, "governor/available"), "offline");
    tel_mqtt_publish_power_cap_state(r.m, true, 0);
    run_until(&r, 300, NULL);
    CHECK_EQ_INT(tsub_count(&r.sub, "ember/box1/governor/state"), gov0);
    CHECK_STR(last_payload(&r, "governor/state"), "balanced");
    rig_stop(&r);
    return et_finish();
}

/* An "agent" in a child process: store + publisher at 100 Hz, energy continuing from the total
 * the store restored (as tel_power does), until killed. shared[0] = its last seq. */
static pid_t spawn_agent(struct rig *r, const struct tel_mqtt_params *p, volatile uint64_t *shared)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct rig c = *r;
    c.have_sub = false;
    c.produced = 0;
    if (open_store(&c) || open_mqtt(&c, (struct tel_mqtt_params *)p))
        _exit(2);
    c.energy_from_store = true;
    tel_store_energy_total_j(c.store, &c.energy_base);
    start_producing(&c, 10);
    for (;;) {
        loop_once(&c, 10);
        shared[0] = c.last_seq;
    }
}

static void kill_agent(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Energy as Home Assistant sees it: the agent killed -9 mid-batch (twice), the broker killed -9
 * in the middle of a backlog replay, a replay/req for all history; from a subscriber's view the
 * energy entity's state topic (read from its discovery config) never goes down. The telemetry
 * topics the entity used to read do go down in the same run. */
static int case_ha_energy(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    tel_store_close(r.store);
    r.store = NULL;
    volatile uint64_t *shared =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED);
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.replay_rate_per_s = 100;

    pid_t a = spawn_agent(&r, &p, shared);
    tsub_run(&r.sub, 1000);
    tsub_publish(&r.sub, "ember/box1/replay/req", "1", 1, false);
    tsub_run(&r.sub, 700);
    kill_agent(a); /* commits every 300 ms or 50 rows: this lands inside a batch */
    uint64_t a_last = shared[0];

    pid_t b = spawn_agent(&r, &p, shared);
    tsub_run(&r.sub, 800);
    tb_kill9(&r.b);
    tsub_run(&r.sub, 1500); /* b keeps sampling: a backlog of ~150 */
    CHECK(tb_restart(&r.b) == 0);
    CHECK(tsub_reconnect(&r.sub, 5000) == 0);
    tsub_run(&r.sub, 700); /* b reconnects (backoff <= 1 s) and replays at 100/s */
    tb_kill9(&r.b);        /* ... mid-replay */
    tsub_run(&r.sub, 500);
    CHECK(tb_restart(&r.b) == 0);
    CHECK(tsub_reconnect(&r.sub, 5000) == 0);
    tsub_run(&r.sub, 1200);
    kill_agent(b);
    uint64_t b_last = shared[0];

    pid_t c = spawn_agent(&r, &p, shared);
    tsub_run(&r.sub, 2500);
    kill_agent(c);
    tsub_run(&r.sub, 300);

    /* The energy entity, as discovered. */
    const struct tmsg *cfg = tsub_last(&r.sub, "homeassistant/sensor/ember_box1/energy/config");
    cJSON *j = cJSON_Parse(cfg ? cfg->payload : "");
    char state_topic[128] = "";
    snprintf(state_topic, sizeof(state_topic), "%s",
             jstr(j, "state_topic") ? jstr(j, "state_topic") : "");
    /* The template hass_check.py renders in the hass case; here its field is read directly. */
    CHECK_STR(jstr(j, "value_template"), "{{ value_json.energy_wh }}");
    cJSON_Delete(j);

    size_t n_seen = 0, decreases = 0, old_decreases = 0;
    double last = -1, old_last = -1, max_seen = 0;
    for (size_t i = 0; i < r.sub.n; i++) {
        const struct tmsg *m = &r.sub.msgs[i];
        bool ha = strcmp(m->topic, state_topic) == 0;
        bool old = strcmp(m->topic, "ember/box1/telemetry") == 0 ||
                   strcmp(m->topic, "ember/box1/telemetry/replay") == 0;
        if (!ha && !old)
            continue;
        cJSON *o = cJSON_Parse(m->payload);
        double e = jnum(o, "energy_wh");
        cJSON_Delete(o);
        if (!isfinite(e))
            continue;
        if (ha) {
            n_seen++;
            if (e < last) {
                decreases++;
                fprintf(stderr, "energy went from %.4f to %.4f Wh (message %zu)\n", last, e, i);
            }
            last = e > last ? e : last;
            max_seen = e > max_seen ? e : max_seen;
        } else {
            old_decreases += e < old_last;
            old_last = e;
        }
    }
    CHECK_EQ_INT(decreases, 0);
    CHECK_MSG(n_seen > 200, "only %zu energy states seen", n_seen);
    CHECK_MSG(old_decreases > 0, "the telemetry topics never went down: the scenario is too tame");
    /* Nothing published is above what the database kept. */
    CHECK(open_store(&r) == 0);
    double total = 0;
    tel_store_energy_total_j(r.store, &total);
    CHECK_MSG(max_seen <= total / 3600.0 + 1e-9, "published %.4f Wh, store kept %.4f Wh", max_seen,
              total / 3600.0);
    printf("ha_energy: agents killed at seq %llu and %llu; %zu energy states, none lower than the "
           "one before (max %.4f Wh, store %.4f Wh); the telemetry topics went down %zu times\n",
           (unsigned long long)a_last, (unsigned long long)b_last, n_seen, max_seen, total / 3600.0,
           old_decreases);
    munmap((void *)shared, 4096);
    rig_stop(&r);
    return et_finish();
}

/* Reconnects the publisher with new params and waits until its discovery (if any) is out. */
static bool reopen(struct rig *r, struct tel_mqtt_params *p)
{
    if (r->m) {
        tel_mqtt_close(r->m, 2000);
        tel_mqtt_free(r->m);
        r->m = NULL;
    }
    if (open_mqtt(r, p) != 0 || !run_until(r, 5000, is_connected))
        return false;
    run_until(r, 500, NULL);
    return true;
}

static size_t count_payload(const struct tsub *sub, const char *topic, const char *payload,
                            size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < sub->n; i++)
        n += strcmp(sub->msgs[i].topic, topic) == 0 && strcmp(sub->msgs[i].payload, payload) == 0;
    return n;
}

/* Stale entities: a changed device_id empties the old configs and retained topics, switching to
 * device discovery follows Home Assistant's migration, disabling discovery empties what was
 * announced; what is current is left alone. A late subscriber (Home Assistant starting) finds
 * only the current configs. */
static int case_hass_stale(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    CHECK(reopen(&r, &p));
    tel_mqtt_publish_governor_state(r.m, "balanced");
    CHECK(wait_topic(&r, hass_topics[N_HASS_ENTITIES - 1], 1));
    run_until(&r, 300, NULL);

    /* The same identity again: nothing is cleared. */
    CHECK(reopen(&r, &p));
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r.m, &st);
    CHECK_EQ_INT(st.stale_configs_cleared, 0);

    /* device_id box1 -> box2 */
    size_t mark = r.sub.n;
    p.device_id = "box2";
    CHECK(reopen(&r, &p));
    for (int i = 0; i < N_HASS_ENTITIES; i++)
        CHECK_MSG(count_payload(&r.sub, hass_topics[i], "", mark) == 1, "%s not emptied",
                  hass_topics[i]);
    CHECK_EQ_INT(count_payload(&r.sub, "ember/box1/status", "", mark), 1);
    CHECK_EQ_INT(count_payload(&r.sub, "ember/box1/governor/state", "", mark), 1);
    CHECK(tsub_count(&r.sub, "homeassistant/sensor/ember_box2/energy/config") >= 1);
    struct tsub late;
    CHECK(tsub_open(&late, &r.b, NULL, NULL, 5000) == 0);
    tsub_run(&late, 300);
    size_t box1_retained = 0, box2_retained = 0;
    for (size_t i = 0; i < late.n; i++) {
        box1_retained += strstr(late.msgs[i].topic, "box1") != NULL;
        box2_retained += strstr(late.msgs[i].topic, "ember_box2/") != NULL;
    }
    CHECK_EQ_INT(box1_retained, 0);
    CHECK_EQ_INT(box2_retained, N_HASS_ENTITIES);
    tsub_close(&late);

    /* component -> device for box2: migrate_discovery, the device config, then the old ones
     * emptied. */
    mark = r.sub.n;
    p.discovery_mode = TEL_MQTT_DISCOVERY_DEVICE;
    CHECK(reopen(&r, &p));
    const char *dev_topic = "homeassistant/device/ember_box2/config";
    const char *old_energy = "homeassistant/sensor/ember_box2/energy/config";
    size_t i_migrate = SIZE_MAX, i_device = SIZE_MAX, i_empty = SIZE_MAX;
    for (size_t i = mark; i < r.sub.n; i++) {
        const struct tmsg *m = &r.sub.msgs[i];
        if (strcmp(m->topic, old_energy) == 0 && strstr(m->payload, "\"migrate_discovery\":true"))
            i_migrate = i;
        else if (strcmp(m->topic, dev_topic) == 0 && i_device == SIZE_MAX)
            i_device = i;
        else if (strcmp(m->topic, old_energy) == 0 && m->len == 0)
            i_empty = i;
    }
    CHECK_MSG(i_migrate < i_device && i_device < i_empty, "order %zu %zu %zu", i_migrate, i_device,
              i_empty);
    CHECK(tsub_open(&late, &r.b, NULL, NULL, 5000) == 0);
    tsub_run(&late, 300);
    CHECK_EQ_INT(late.n > 0 ? tsub_count(&late, dev_topic) : 0, 1);
    CHECK_EQ_INT(tsub_count(&late, old_energy), 0);
    tsub_close(&late);

    /* discovery off: the device config is emptied, once. */
    mark = r.sub.n;
    p.discovery = false;
    CHECK(reopen(&r, &p));
    CHECK_EQ_INT(count_payload(&r.sub, dev_topic, "", mark), 1);
    CHECK(reopen(&r, &p));
    tel_mqtt_get_stats(r.m, &st);
    CHECK_EQ_INT(st.stale_configs_cleared, 0);
    CHECK_EQ_INT(count_payload(&r.sub, dev_topic, "", mark), 1);
    rig_stop(&r);
    return et_finish();
}

static bool has_events(struct rig *r, size_t n)
{
    return tsub_count(&r->sub, "ember/box1/event") >= n;
}

static size_t want_events;
static bool enough_events(struct rig *r)
{
    return has_events(r, want_events);
}

static int case_commands(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    CHECK(open_mqtt(&r, &p) == 0);
    tel_mqtt_publish_governor_state(r.m, "balanced");
    tel_mqtt_publish_power_cap_state(r.m, true, 0);
    CHECK(run_until(&r, 5000, is_connected));
    /* The state is published after SUBSCRIBE on the same connection: once it is here, the
     * subscriptions are in place. */
    CHECK(wait_topic(&r, "ember/box1/governor/state", 1));

    /* Bad governor/set and power_cap/set payloads: each an error event, no callback. */
    static char big[1 << 20];
    memset(big, 'a', sizeof(big));
    struct {
        const char *topic;
        const char *payload;
        int len;
        bool retain;
    } bad[] = {
        {"ember/box1/governor/set", "turbo", 5, false},
        {"ember/box1/governor/set", "Balanced", 8, false},
        {"ember/box1/governor/set", "balanced ", 9, false},
        {"ember/box1/governor/set", "balanced\n", 9, false},
        {"ember/box1/governor/set", "bal\xff\xfe", 5, false},
        {"ember/box1/governor/set", "balanced\0x", 10, false},
        {"ember/box1/governor/set", big, (int)sizeof(big), false},
        {"ember/box1/governor/set", "", 0, false},
        {"ember/box1/power_cap/set", "NaN", 3, false},
        {"ember/box1/power_cap/set", "nan", 3, false},
        {"ember/box1/power_cap/set", "1e999", 5, false},
        {"ember/box1/power_cap/set", "inf", 3, false},
        {"ember/box1/power_cap/set", "30W", 3, false},
        {"ember/box1/power_cap/set", "-10", 3, false},
        {"ember/box1/power_cap/set", "4", 1, false},
        {"ember/box1/power_cap/set", "66", 2, false},
        {"ember/box1/power_cap/set", "0x20", 4, false},
        {"ember/box1/power_cap/set", "OFF", 3, false},
        {"ember/box1/power_cap/set", "\xc0\xaf", 2, false},
        {"ember/box1/power_cap/set", big, (int)sizeof(big), false},
        {"ember/box1/replay/req", "12abc", 5, false},
        {"ember/box1/replay/req", "-1", 2, false},
    };
    size_t nbad = sizeof(bad) / sizeof(bad[0]);
    size_t events0 = tsub_count(&r.sub, "ember/box1/event");
    for (size_t i = 0; i < nbad; i++)
        tsub_publish(&r.sub, bad[i].topic, bad[i].payload, bad[i].len, bad[i].retain);
    want_events = events0 + nbad;
    CHECK(run_until(&r, 5000, enough_events));
    CHECK_EQ_INT(tsub_count(&r.sub, "ember/box1/event"), events0 + nbad);
    CHECK_EQ_INT(r.n_policy, 0);
    CHECK_EQ_INT(r.n_cap, 0);
    size_t n_error_events = 0;
    for (size_t i = 0; i < r.sub.n; i++) {
        if (strcmp(r.sub.msgs[i].topic, "ember/box1/event") != 0)
            continue;
        cJSON *j = cJSON_Parse(r.sub.msgs[i].payload);
        n_error_events += jstr(j, "kind") && strcmp(jstr(j, "kind"), "command_error") == 0;
        cJSON_Delete(j);
    }
    CHECK_EQ_INT(n_error_events, nbad);
    CHECK_STR(last_payload(&r, "governor/state"), "balanced");
    CHECK_STR(last_payload(&r, "power_cap/state"), "off");
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(r.m, &st);
    CHECK_EQ_INT(st.commands_rejected, nbad);

    /* A retained command applies when published (the broker delivers it live without the retain
     * flag), but is refused when the broker replays it at the next subscription: it would
     * otherwise fire again at every reconnect. */
    tsub_publish(&r.sub, "ember/box1/governor/set", "powersave", 9, true);
    CHECK(wait_counter(&r, &r.n_policy, 1));
    CHECK_EQ_INT(r.n_policy, 1);
    tel_mqtt_close(r.m, 2000);
    tel_mqtt_free(r.m);
    r.m = NULL;
    CHECK(open_mqtt(&r, &p) == 0);
    want_events = events0 + nbad + 1;
    CHECK(run_until(&r, 5000, enough_events));
    CHECK_EQ_INT(r.n_policy, 1);
    CHECK_CONTAINS(
        tsub_last(&r.sub, "ember/box1/event") ? tsub_last(&r.sub, "ember/box1/event")->payload : "",
        "retained");
    tsub_publish(&r.sub, "ember/box1/governor/set", "", 0, true); /* clear it */
    run_until(&r, 300, NULL);
    r.n_policy = 0;

    /* Valid ones reach the callbacks. */
    tsub_publish(&r.sub, "ember/box1/governor/set", "performance", 11, false);
    tsub_publish(&r.sub, "ember/box1/power_cap/set", "30.5", 4, false);
    CHECK(wait_counter(&r, &r.n_cap, 1));
    CHECK(wait_counter(&r, &r.n_policy, 1));
    CHECK_EQ_INT(r.n_policy, 1);
    CHECK_STR(r.last_policy, "performance");
    CHECK_EQ_INT(r.n_cap, 1);
    CHECK(!r.cap_off);
    CHECK_NEAR(r.cap_w, 30.5, 0);
    tsub_publish(&r.sub, "ember/box1/power_cap/set", "off", 3, false);
    CHECK(wait_counter(&r, &r.n_cap, 2));
    CHECK_EQ_INT(r.n_cap, 2);
    CHECK(r.cap_off);

    /* replay/req: history from seq 5 re-sent, marked with the replay user property. */
    produce_n(&r, 30, 2);
    CHECK(run_until(&r, 5000, all_received));
    tsub_publish(&r.sub, "ember/box1/replay/req", "5", 1, false);
    CHECK(run_until(&r, 10000, replay_done));
    run_until(&r, 300, NULL); /* and nothing more */
    size_t replayed = 0, first_replayed = 0;
    for (size_t i = 0; i < r.sub.n; i++) {
        if (r.sub.msgs[i].replay_prop) {
            cJSON *j = cJSON_Parse(r.sub.msgs[i].payload);
            if (!replayed)
                first_replayed = (size_t)jnum(j, "seq");
            replayed++;
            cJSON_Delete(j);
        }
    }
    CHECK_EQ_INT(replayed, 26);
    CHECK_EQ_INT(first_replayed, 5);
    CHECK(tsub_check_seqs(&r.sub, 1, 30) == 0); /* the live stream is untouched */

    /* ask is off unless enabled: nothing reaches the callback. */
    tsub_publish(&r.sub, "ember/box1/ask", "ignored", 7, false);
    run_until(&r, 300, NULL);
    CHECK_EQ_INT(r.n_ask, 0);
    tel_mqtt_close(r.m, 2000);
    tel_mqtt_free(r.m);
    r.m = NULL;
    p.ask = true;
    p.ask_response_prefix = "client";
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    run_until(&r, 300, NULL);

    /* ask: MQTT v5 request/response with correlation data. */
    mosquitto_property *props = NULL;
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, "client/answers");
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, "req-42", 6);
    mosquitto_subscribe(r.sub.mosq, NULL, "client/answers", 1);
    run_until(&r, 200, NULL);
    mosquitto_publish_v5(r.sub.mosq, NULL, "ember/box1/ask", 13, "what is 2+2?", 1, false, props);
    mosquitto_property_free_all(&props);
    CHECK(wait_counter(&r, &r.n_ask, 1));
    CHECK_EQ_INT(r.n_ask, 1);
    CHECK_STR(r.ask_topic, "client/answers");
    CHECK_STR(r.ask_payload, "what is 2+2?");
    CHECK_EQ_INT(r.ask_corr_len, 6);
    CHECK(tel_mqtt_respond(r.m, r.ask_topic, r.ask_corr, r.ask_corr_len, "4", 1) == 0);
    CHECK(wait_topic(&r, "client/answers", 1));
    const struct tmsg *ans = tsub_last(&r.sub, "client/answers");
    CHECK(ans && strcmp(ans->payload, "4") == 0);
    CHECK(ans && ans->corr && strcmp(ans->corr, "req-42") == 0);
    /* An answer may not be steered outside the prefix, e.g. onto the agent's own commands. */
    props = NULL;
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, "ember/box1/governor/set");
    mosquitto_publish_v5(r.sub.mosq, NULL, "ember/box1/ask", 7, "perform", 1, false, props);
    mosquitto_property_free_all(&props);
    props = NULL;
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, "clientX/answers");
    mosquitto_publish_v5(r.sub.mosq, NULL, "ember/box1/ask", 7, "perform", 1, false, props);
    mosquitto_property_free_all(&props);
    run_until(&r, 500, NULL);
    CHECK_EQ_INT(r.n_ask, 1);

    /* A flood of bad commands: all rejected and counted, but error events are rate limited. */
    tel_mqtt_get_stats(r.m, &st);
    uint64_t rejected0 = st.commands_rejected;
    size_t ev0 = tsub_count(&r.sub, "ember/box1/event");
    for (int i = 0; i < 300; i++)
        tsub_publish(&r.sub, "ember/box1/governor/set", "turbo", 5, false);
    g_rejected_min = rejected0 + 300;
    CHECK(run_until(&r, 10000, rejected_reached));
    run_until(&r, 300, NULL);
    size_t flood_events = tsub_count(&r.sub, "ember/box1/event") - ev0;
    CHECK_MSG(flood_events >= 45 && flood_events <= 100, "%zu error events for 300 bad commands",
              flood_events);
    CHECK_EQ_INT(r.n_policy, 1);

    rig_stop(&r);
    return et_finish();
}

/* MQTT 3.1.1 against the real broker: the same stream; ask has no properties, so the answer goes
 * to <base>/ask/response. */
static int case_v311(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    p.protocol = TEL_MQTT_PROTO_V311;
    p.ask = true; /* without properties the answer goes to <base>/ask/response */
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    CHECK_EQ_INT(tel_mqtt_protocol_version(r.m), 4);
    produce_n(&r, 40, 5);
    CHECK(run_until(&r, 10000, all_received));
    CHECK(tsub_check_seqs(&r.sub, 1, 40) == 0);
    CHECK(wait_topic(&r, "ember/box1/status", 1));
    tsub_publish(&r.sub, "ember/box1/ask", "hello", 5, false);
    CHECK(wait_counter(&r, &r.n_ask, 1));
    CHECK_EQ_INT(r.n_ask, 1);
    CHECK_STR(r.ask_topic, "");
    CHECK(tel_mqtt_respond(r.m, NULL, NULL, 0, "hi", 2) == 0);
    CHECK(wait_topic(&r, "ember/box1/ask/response", 1));
    CHECK_STR(last_payload(&r, "ask/response"), "hi");
    tsub_publish(&r.sub, "ember/box1/governor/set", "powersave", 9, false);
    CHECK(wait_counter(&r, &r.n_policy, 1));
    CHECK_STR(r.last_policy, "powersave");
    rig_stop(&r);
    return et_finish();
}

/* A broker that hangs (SIGSTOP) instead of closing: only the keepalive can notice. The
 * publisher must declare the connection dead, keep retrying, and deliver everything once the
 * broker resumes. What the hung broker had already read from the dead connection is delivered
 * too, so duplicates are allowed here (QoS 1 is at least once); losses are not. */
static int case_keepalive(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.discovery = false;
    p.keepalive_s = 5;
    p.connect_timeout_ms = 2000;
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    start_producing(&r, 20);
    run_until(&r, 500, NULL);
    kill(r.b.pid, SIGSTOP);
    uint64_t t0 = cmn_now_ns();
    bool noticed = false;
    while (cmn_now_ns() - t0 < 14 * CMN_NS_PER_S) {
        loop_once(&r, 20);
        if (!noticed && tel_mqtt_state(r.m) != TEL_MQTT_CONNECTED) {
            noticed = true;
            printf("keepalive: dead connection noticed after %.1f s\n",
                   (double)(cmn_now_ns() - t0) / 1e9);
        }
    }
    CHECK(noticed);
    kill(r.b.pid, SIGCONT);
    r.producing = false;
    CHECK(run_until(&r, 20000, all_received));
    CHECK(run_until(&r, 5000, all_acked));
    char *seen = calloc(r.last_seq + 1, 1);
    size_t dups = 0;
    for (size_t i = 0; i < r.sub.n_seqs; i++) {
        if (r.sub.seqs[i] <= r.last_seq) {
            dups += seen[r.sub.seqs[i]];
            seen[r.sub.seqs[i]] = 1;
        }
    }
    uint64_t missing = 0;
    for (uint64_t q = 1; q <= r.last_seq; q++)
        missing += !seen[q];
    CHECK_EQ_INT(missing, 0);
    printf("keepalive: %llu samples, %llu missing, %zu delivered twice\n",
           (unsigned long long)r.last_seq, (unsigned long long)missing, dups);
    free(seen);
    rig_stop(&r);
    return et_finish();
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* CPU cost of the telemetry path (store append + batched commits + MQTT publish, PUBACKs,
 * keepalive) at 1 Hz and 10 Hz, measured as this process's CPU time over wall time. The
 * subscriber is closed first so only the agent's side is counted. TELMQTT_BENCH_S sets the
 * length of each run (default 10 s). */
static int case_bench(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    struct tel_mqtt_params p;
    params_for(&r, &p);
    p.keepalive_s = 60;
    p.cursor_save_ms = 1000;
    CHECK(open_mqtt(&r, &p) == 0);
    CHECK(run_until(&r, 5000, is_connected));
    tsub_close(&r.sub);
    r.have_sub = false;
    r.max_wait_ms = 10000; /* only the publisher's own deadlines wake the loop, as in the agent */
    int secs = getenv("TELMQTT_BENCH_S") ? atoi(getenv("TELMQTT_BENCH_S")) : 10;
    const uint32_t intervals[] = {1000, 100};
    for (int i = 0; i < 2; i++) {
        uint64_t first = r.last_seq;
        double c0 = cpu_s();
        uint64_t t0 = cmn_now_ns();
        start_producing(&r, intervals[i]);
        run_until(&r, secs * 1000, NULL);
        r.producing = false;
        double wall = (double)(cmn_now_ns() - t0) / 1e9;
        double pct = 100.0 * (cpu_s() - c0) / wall;
        struct tel_mqtt_stats st;
        tel_mqtt_get_stats(r.m, &st);
        printf("bench: %u Hz for %.1f s: %llu samples, CPU %.3f%% of one core, acked up to %llu\n",
               1000 / intervals[i], wall, (unsigned long long)(r.last_seq - first), pct,
               (unsigned long long)st.acked_seq);
        CHECK_MSG(pct < (intervals[i] == 1000 ? 1.0 : 5.0), "CPU %.3f%% over target", pct);
    }
    rig_stop(&r);
    return et_finish();
}

/* ---- a smart plug as the wall meter (issue 12) ---- */

struct plug_seen {
    struct tel_wall *w;
    int ok, bad, reset;
    char last_err[512];
};
static struct plug_seen g_plug;

static void on_plug(void *user, const char *topic, const void *payload, size_t len, bool retained)
{
    (void)user;
    (void)retained;
    char err[256];
    int rc = tel_wall_feed(g_plug.w, cmn_now_ns(), payload, len, err, sizeof(err));
    if (rc < 0) {
        g_plug.bad++;
        snprintf(g_plug.last_err, sizeof(g_plug.last_err), "%s: %s", topic, err);
    } else {
        g_plug.ok++;
        if (rc == 1) {
            g_plug.reset++;
            snprintf(g_plug.last_err, sizeof(g_plug.last_err), "%s: %s", topic, err);
        }
    }
}

static int g_plug_want;
static bool plug_count_reached(struct rig *r)
{
    (void)r;
    return g_plug.ok + g_plug.bad >= g_plug_want;
}

static void plug_send(struct rig *r, const char *topic, const char *payload)
{
    g_plug_want = g_plug.ok + g_plug.bad + 1;
    CHECK(tsub_publish(&r->sub, topic, payload, (int)strlen(payload), false) == 0);
    CHECK_MSG(run_until(r, 5000, plug_count_reached), "plug message on %s not delivered", topic);
}

/* Tasmota and Shelly payloads through a real broker into the wall channel: measured figures,
 * hostile payloads refused with the topic and the problem named, a counter reset noted, a
 * stale plug falling back to the labelled estimate, and a wall total that never decreases in
 * the store, in `state` and for Home Assistant's wall energy sensor. */
static int case_wall_plug(void)
{
    struct rig r;
    int rc = rig_start(&r, TB_PLAIN);
    if (rc) {
        rig_stop(&r);
        return rc == 77 ? 77 : 1;
    }
    static const char *const formats[] = {"tasmota", "shelly"};
    static const char *const topics[] = {"tele/plug1/SENSOR", "shellyplusplugs-a1/status/switch:0"};
    for (int f = 0; f < 2; f++) {
        memset(&g_plug, 0, sizeof(g_plug));
        struct tel_wall_params wp;
        tel_wall_params_defaults(&wp);
        wp.kind = TEL_WALL_MQTT;
        wp.topic = topics[f];
        CHECK(tel_plug_format_from_name(formats[f], &wp.format) == 0);
        wp.stale_s = 1;
        wp.board_w = 2;
        wp.psu_efficiency = 0.8;
        char err[256];
        CHECK(tel_wall_new(&wp, cmn_now_ns(), 100.0, &g_plug.w, err, sizeof(err)) == 0);
        struct tel_mqtt_params p;
        params_for(&r, &p);
        p.foreign_topic = topics[f];
        struct tel_mqtt_callbacks cb = {.on_state = on_state, .user = &r, .on_foreign = on_plug};
        CHECK(tel_mqtt_new(&p, &cb, r.store, &r.m, err, sizeof(err)) == 0);
        CHECK(run_until(&r, 5000, is_connected));
        run_until(&r, 300, NULL); /* the subscription is acknowledged */

        struct tel_wall_reading wr;
        char note[512];
        uint64_t t = cmn_now_ns();
        CHECK(tel_wall_read(g_plug.w, t, 5.0, TEL_SOURCE_RAPL, &wr, note, sizeof(note)) == 0);
        CHECK(!wr.measured); /* nothing heard yet: the estimate, and said so */
        CHECK_STR(wr.source, "estimate");
        CHECK_CONTAINS(note, "no message on");
        CHECK_NEAR(wr.power_w, (5.0 + 2.0) / 0.8, 1e-9);

        const char *good = f == 0 ? "{\"Time\":\"2026-12-03T20:00:00\",\"ENERGY\":{\"Total\":1.956,"
                                    "\"Yesterday\":0.054,\"Today\":0.049,\"Period\":0,"
                                    "\"Power\":9,\"Factor\":0.43,\"Voltage\":231,"
                                    "\"Current\":0.089}}"
                                  : "{\"id\":0,\"source\":\"init\",\"output\":true,"
                                    "\"apower\":9.0,\"voltage\":231.2,\"current\":0.089,"
                                    "\"aenergy\":{\"total\":1956.0,\"by_minute\":[0,0,0],"
                                    "\"minute_ts\":1700000000},\"temperature\":{\"tC\":30}}";
        plug_send(&r, topics[f], good);
        CHECK_EQ_INT(g_plug.ok, 1);
        double e0 = wr.energy_j;
        t = cmn_now_ns();
        CHECK(tel_wall_read(g_plug.w, t, 5.0, TEL_SOURCE_RAPL, &wr, note, sizeof(note)) == 0);
        CHECK(wr.measured);
        CHECK_NEAR(wr.power_w, 9.0, 1e-9);
        char want[128];
        snprintf(want, sizeof(want), "mqtt:%s", topics[f]);
        CHECK_STR(wr.source, want);
        CHECK_CONTAINS(note, "measured");
        CHECK(wr.energy_j >= e0);

        /* hostile payloads: refused, the reason and topic named, the last reading kept */
        const char *hostile[] = {"not json at all",
                                 f == 0 ? "{\"ENERGY\":{\"Power\":\"lots\"}}"
                                        : "{\"apower\":\"lots\"}",
                                 f == 0 ? "{\"ENERGY\":{\"Power\":-5}}" : "{\"apower\":-5}",
                                 f == 0 ? "{\"ENERGY\":{\"Power\":1e300}}" : "{\"apower\":1e300}",
                                 "[]",
                                 ""};
        const char *why[] = {"not JSON",    "not a number",      "negative",
                             "over 100 kW", "not a JSON object", "empty payload"};
        for (int i = 0; i < 6; i++) {
            plug_send(&r, topics[f], hostile[i]);
            CHECK_EQ_INT(g_plug.bad, i + 1);
            CHECK_CONTAINS(g_plug.last_err, topics[f]);
            CHECK_CONTAINS(g_plug.last_err, why[i]);
        }
        CHECK(tel_wall_read(g_plug.w, cmn_now_ns(), 5.0, TEL_SOURCE_RAPL, &wr, note,
                            sizeof(note)) == 0);
        CHECK(wr.measured);
        CHECK_NEAR(wr.power_w, 9.0, 1e-9);

        /* the plug's counter goes back (reset): noted, Ember's total still only grows */
        const char *reset = f == 0 ? "{\"ENERGY\":{\"Total\":0.001,\"Power\":12}}"
                                   : "{\"apower\":12,\"aenergy\":{\"total\":1.0}}";
        double before = wr.energy_j;
        plug_send(&r, topics[f], reset);
        CHECK_EQ_INT(g_plug.reset, 1);
        CHECK_CONTAINS(g_plug.last_err, "went back");
        CHECK(tel_wall_read(g_plug.w, cmn_now_ns(), 5.0, TEL_SOURCE_RAPL, &wr, note,
                            sizeof(note)) == 0);
        CHECK_NEAR(wr.power_w, 12.0, 1e-9);
        CHECK(wr.energy_j >= before);

        /* a sample carrying the wall figure: stored, in `state`, never lower */
        struct tel_sample s;
        fill_sample(&s, r.produced);
        s.has_wall = 1;
        s.wall_power_w = wr.power_w;
        s.wall_energy_j = 7200.0 * (f + 1);
        s.wall_measured = wr.measured;
        snprintf(s.wall_source, sizeof(s.wall_source), "%s", wr.source);
        CHECK(tel_store_append_sample(r.store, &s, NULL) == 0);
        tel_store_flush(r.store);
        tel_mqtt_publish_sample(r.m, &s);
        CHECK(wait_topic(&r, "ember/box1/state", (size_t)(f + 1)));
        cJSON *j = cJSON_Parse(last_payload(&r, "state"));
        CHECK(j != NULL);
        CHECK_NEAR(jnum(j, "wall_energy_wh"), 2.0 * (f + 1), 1e-9);
        CHECK_STR(jstr(j, "wall_source"), want);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "wall_measured")));
        cJSON_Delete(j);
        /* a lower wall total handed in is not followed */
        fill_sample(&s, r.produced);
        s.has_wall = 1;
        s.wall_energy_j = 10.0;
        snprintf(s.wall_source, sizeof(s.wall_source), "estimate");
        CHECK(tel_store_append_sample(r.store, &s, NULL) == 0);
        CHECK_NEAR(s.wall_energy_j, 7200.0 * (f + 1), 1e-9);
        double total = 0;
        CHECK(tel_store_wall_energy_total_j(r.store, &total) == 0);
        CHECK_NEAR(total, 7200.0 * (f + 1), 1e-9);

        /* silence: stale after stale_s, the estimate takes over and says why */
        usleep(1300 * 1000);
        before = wr.energy_j;
        CHECK(tel_wall_read(g_plug.w, cmn_now_ns(), 6.0, TEL_SOURCE_RAPL, &wr, note,
                            sizeof(note)) == 0);
        CHECK(!wr.measured);
        CHECK_STR(wr.source, "estimate");
        CHECK_CONTAINS(note, "stale plug");
        CHECK_CONTAINS(note, topics[f]);
        CHECK_NEAR(wr.power_w, (6.0 + 2.0) / 0.8, 1e-9);
        CHECK(wr.energy_j >= before);
        /* and back when it speaks again */
        plug_send(&r, topics[f], good);
        CHECK(tel_wall_read(g_plug.w, cmn_now_ns(), 6.0, TEL_SOURCE_RAPL, &wr, note,
                            sizeof(note)) == 0);
        CHECK(wr.measured);
        CHECK_CONTAINS(note, "reading again");

        tel_mqtt_close(r.m, 2000);
        tel_mqtt_free(r.m);
        r.m = NULL;
        tel_wall_free(g_plug.w);
    }
    /* Home Assistant's wall energy sensor: energy, total_increasing */
    const struct tmsg *cfg =
        tsub_last(&r.sub, "homeassistant/sensor/ember_box1/wall_energy/config");
    CHECK_MSG(cfg != NULL, "wall_energy discovery not published");
    if (cfg) {
        cJSON *j = cJSON_Parse(cfg->payload);
        CHECK_STR(jstr(j, "device_class"), "energy");
        CHECK_STR(jstr(j, "state_class"), "total_increasing");
        CHECK_STR(jstr(j, "unit_of_measurement"), "Wh");
        cJSON_Delete(j);
    }
    rig_stop(&r);
    return et_finish();
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *c = argc > 1 ? argv[1] : "";
    if (strcmp(c, "plain") == 0)
        return case_plain();
    if (strcmp(c, "password") == 0)
        return case_password();
    if (strcmp(c, "tls") == 0)
        return case_tls();
    if (strcmp(c, "outage_stop") == 0)
        return case_outage(false,
                           getenv("TELMQTT_OUTAGE_MS") ? atoi(getenv("TELMQTT_OUTAGE_MS")) : 5000);
    if (strcmp(c, "outage_kill9") == 0)
        return case_outage(true, 3000);
    if (strcmp(c, "agent_kill9") == 0)
        return case_agent_kill9();
    if (strcmp(c, "hass") == 0)
        return case_hass(TEL_MQTT_DISCOVERY_COMPONENT);
    if (strcmp(c, "hass_stale") == 0)
        return case_hass_stale();
    if (strcmp(c, "ha_energy") == 0)
        return case_ha_energy();
    if (strcmp(c, "hass_device") == 0)
        return case_hass(TEL_MQTT_DISCOVERY_DEVICE);
    if (strcmp(c, "commands") == 0)
        return case_commands();
    if (strcmp(c, "v311") == 0)
        return case_v311();
    if (strcmp(c, "keepalive") == 0)
        return case_keepalive();
    if (strcmp(c, "bench") == 0)
        return case_bench();
    if (strcmp(c, "wall_plug") == 0)
        return case_wall_plug();
    fprintf(stderr,
            "usage: %s plain|password|tls|outage_stop|outage_kill9|agent_kill9|hass|"
            "commands|v311|keepalive|bench|wall_plug\n",
            argv[0]);
    return 2;
}
