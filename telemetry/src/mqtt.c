/* The MQTT publisher: one libmosquitto client whose socket the agent's event loop drives
 * (mosquitto_loop_read/write/misc on readiness and timers, never mosquitto_loop_start), with our
 * own reconnect timing (exponential backoff with jitter) and our own store and forward.
 *
 * Why a fresh libmosquitto client for every connection: libmosquitto re-sends its unacknowledged
 * QoS 1 messages after a reconnect, and we replay unacknowledged samples from SQLite; doing both
 * would deliver samples twice. Starting each connection with empty libmosquitto queues makes the
 * store the single source of what still has to go out.
 *
 * Store and forward: samples are published in seq order. next_send is the next seq to publish;
 * the in-flight table maps message ids to seqs until their PUBACK. Every seq below both next_send
 * and the lowest in-flight seq has been acknowledged: that is the cursor persisted in the store's
 * meta table. When the connection drops, next_send goes back to cursor + 1 and the pump reads the
 * backlog from the store, at most replay_rate_per_s per second and inflight_max unacknowledged.
 *
 * Topics that only move forward: a sample goes out on `telemetry` only at the moment it is
 * produced, and anything sent late (the backlog, replay/req history) goes on telemetry/replay, so
 * `telemetry` never goes back in seq. `state`, what Home Assistant reads, carries the newest live
 * sample only, with the energy total the store has committed: a kill -9 can lose the uncommitted
 * batch, and the total restored at the next start is never below a committed one, so no energy
 * value Home Assistant has seen is ever followed by a lower one (its recorder would count a drop
 * of more than 10 % as a meter reset and add the whole total again). */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "common/timeutil.h"
#include "telemetry/mqtt.h"
#include "telemetry/store.h"

enum inflight_kind { KIND_FORWARD = 1, KIND_HISTORY = 2 };

struct inflight {
    int mid;
    uint64_t seq;
    uint8_t kind;
};

struct queued {
    const char *topic; /* one of our own topic strings */
    char *payload;
};

enum topic_id {
    T_STATUS,
    T_TELEMETRY,
    T_SESSION,
    T_EVENT,
    T_GOV_STATE,
    T_CAP_STATE,
    T_GOV_SET,
    T_CAP_SET,
    T_REPLAY_REQ,
    T_ASK,
    T_ASK_RESPONSE,
    T_STATE,
    T_REPLAY,
    T_SESSION_LAST,
    T_MODEL,
    T_GOV_AVAIL,
    T_HASS_STATUS,
    T_COUNT_,
};

static const char *const topic_suffix[T_COUNT_] = {
    "status",
    "telemetry",
    "session",
    "event",
    "governor/state",
    "power_cap/state",
    "governor/set",
    "power_cap/set",
    "replay/req",
    "ask",
    "ask/response",
    "state",
    "telemetry/replay",
    "session/last",
    "model",
    "governor/available",
    NULL,
};

/* Retained topics under the base, cleared when the device id changes. */
static const char *const retained_suffixes[] = {
    "status", "governor/state", "power_cap/state", "governor/available", "model", "session/last"};

#define TEL_META_VALUE_MAX_ 128

/* Store meta keys: what discovery announced last, so stale entities can be removed. */
#define META_HASS_MODE   "hass_discovery_mode" /* "component", "device" or "off" */
#define META_HASS_PREFIX "hass_discovery_prefix"
#define META_HASS_DEVICE "hass_device_id"
#define META_MQTT_PREFIX "mqtt_prefix"

struct tel_mqtt {
    struct tel_mqtt_params p; /* strings owned (strdup'd) */
    char ask_prefix[256];     /* answers to `ask` go only to this topic or below it */
    char foreign_topic[256];  /* the wall meter's plug topic; "" none */
    struct tel_mqtt_callbacks cb;
    struct tel_store *store;
    char base[256];
    char *topic[T_COUNT_];
    char client_id[96];

    struct mosquitto *mosq;
    enum tel_mqtt_conn_state state;
    bool lost;      /* the connection went away inside a libmosquitto call */
    bool use_v311;  /* the broker refused v5 once (or v311 was asked for) */
    bool retry_now; /* fallback: reconnect without waiting */
    bool close_acked;
    int close_mid;
    int proto_version;
    char lost_detail[160];
    uint64_t generation;
    uint64_t now_ns; /* the time handed to the current handle_* call */
    uint64_t connect_started_ns;
    uint64_t next_connect_ns;
    uint32_t attempt;
    uint64_t rng;

    /* store and forward */
    uint64_t acked_seq;
    uint64_t next_send;
    uint64_t saved_seq;
    uint64_t saved_ns;
    bool hist_active;
    uint64_t hist_next, hist_end;
    struct inflight *inflight;
    uint32_t n_inflight;
    double tokens;
    uint64_t tokens_ns;
    double err_tokens; /* error events allowed now (flood guard) */
    uint64_t err_tokens_ns;

    struct queued *queue;
    uint32_t q_head, q_len;

    char gov_state[TEL_NAME_MAX];
    bool have_gov;
    bool gov_available;
    char cap_state[32];
    bool have_cap;
    char *state_json;      /* the last `state` published, re-sent after HA's birth message */
    uint64_t state_seq;    /* its seq: `state` never goes back */
    double state_energy_j; /* its total: never published lower */
    double state_wall_j;   /* the same for the wall total */
    char *session_json;    /* session/last (retained) */
    char *model_json;      /* model (retained) */
    uint64_t birth_due_ns; /* states re-sent at this time after HA's birth message; 0: none */
    bool migrate_pending;  /* old-format configs to clear after the new discovery */
    enum tel_mqtt_discovery_mode migrate_from;

    struct tel_mqtt_stats st;
};

static int set_err(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void tel_mqtt_params_defaults(struct tel_mqtt_params *p)
{
    memset(p, 0, sizeof(*p));
    p->host = "127.0.0.1";
    p->port = 1883;
    p->prefix = "ember";
    p->protocol = TEL_MQTT_PROTO_V5;
    p->keepalive_s = 60;
    p->reconnect_min_ms = 1000;
    p->reconnect_max_ms = 60000;
    p->connect_timeout_ms = 10000;
    p->replay_rate_per_s = 50;
    p->inflight_max = 20;
    p->replay_req_max = 86400;
    p->cursor_save_ms = 1000;
    p->queue_max = 64;
    p->discovery = true;
    p->discovery_prefix = "homeassistant";
    p->expire_after_s = 30;
    p->birth_delay_max_ms = 3000;
}

/* ---- small helpers ---- */

static void notify(struct tel_mqtt *m, enum tel_mqtt_conn_state s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void notify(struct tel_mqtt *m, enum tel_mqtt_conn_state s, const char *fmt, ...)
{
    if (!m->cb.on_state)
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    m->cb.on_state(m->cb.user, s, buf);
}

static uint64_t rng_next(struct tel_mqtt *m)
{
    /* xorshift64*: jitter only needs to decorrelate a fleet reconnecting at once. */
    uint64_t x = m->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    m->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Delay before attempt n (1-based): min * 2^(n-1) capped at max, then "equal jitter": half fixed,
 * half random, so retries never collapse to zero and never exceed the cap. */
static uint64_t backoff_ms(struct tel_mqtt *m, uint32_t attempt)
{
    uint64_t d = m->p.reconnect_min_ms;
    for (uint32_t i = 1; i < attempt && d < m->p.reconnect_max_ms; i++)
        d *= 2;
    if (d > m->p.reconnect_max_ms)
        d = m->p.reconnect_max_ms;
    uint64_t half = d / 2;
    return d - half + (half ? rng_next(m) % (half + 1) : 0);
}

static int mosq_errno(int rc)
{
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        return 0;
    case MOSQ_ERR_NOMEM:
        return -ENOMEM;
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
        return -ENOTCONN;
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_NOT_SUPPORTED:
        return -EINVAL;
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_PAYLOAD_SIZE:
        return -EMSGSIZE;
    default:
        return -EIO;
    }
}

static const char *mosq_err_text(int rc)
{
    return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
}

static int publish_raw(struct tel_mqtt *m, int *ret_mid, const char *topic, const void *payload,
                       size_t len, bool retain, const mosquitto_property *props)
{
    if (m->state != TEL_MQTT_CONNECTED || !m->mosq)
        return -ENOTCONN;
    if (m->proto_version != MQTT_PROTOCOL_V5)
        props = NULL;
    if (len > 256u * 1024 * 1024)
        return -EMSGSIZE;
    int rc = mosquitto_publish_v5(m->mosq, ret_mid, topic, (int)len, payload, 1, retain, props);
    return mosq_errno(rc);
}

static int publish_str(struct tel_mqtt *m, const char *topic, const char *s, bool retain)
{
    return publish_raw(m, NULL, topic, s, strlen(s), retain, NULL);
}

/* ---- store and forward ---- */

static void recompute_acked(struct tel_mqtt *m)
{
    uint64_t lo = m->next_send;
    for (uint32_t i = 0; i < m->n_inflight; i++)
        if (m->inflight[i].kind == KIND_FORWARD && m->inflight[i].seq < lo)
            lo = m->inflight[i].seq;
    if (lo - 1 > m->acked_seq)
        m->acked_seq = lo - 1;
    m->st.acked_seq = m->acked_seq;
}

static void save_cursor(struct tel_mqtt *m, uint64_t now_ns, bool force)
{
    if (!m->store || m->acked_seq == m->saved_seq)
        return;
    if (!force && now_ns - m->saved_ns < (uint64_t)m->p.cursor_save_ms * CMN_NS_PER_MS)
        return;
    if (tel_store_meta_set_u64(m->store, TEL_META_MQTT_ACKED_SEQ, m->acked_seq) == 0)
        m->saved_seq = m->acked_seq;
    m->saved_ns = now_ns;
}

/* live: on `telemetry` (the sample is being produced now); otherwise on telemetry/replay. */
static int publish_sample_msg(struct tel_mqtt *m, const struct tel_sample *s, uint8_t kind,
                              bool live)
{
    if (m->n_inflight >= m->p.inflight_max)
        return -EAGAIN;
    char *json = tel_payload_sample_json(s);
    if (!json)
        return -ENOMEM;
    mosquitto_property *props = NULL;
    if (kind == KIND_HISTORY && m->proto_version == MQTT_PROTOCOL_V5)
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "replay", "1");
    int mid = 0;
    int rc = publish_raw(m, &mid, m->topic[live ? T_TELEMETRY : T_REPLAY], json, strlen(json),
                         false, props);
    mosquitto_property_free_all(&props);
    free(json);
    if (rc)
        return rc;
    m->inflight[m->n_inflight++] = (struct inflight){.mid = mid, .seq = s->seq, .kind = kind};
    return 0;
}

struct pump_ctx {
    struct tel_mqtt *m;
    uint8_t kind;
    uint32_t sent;
    int err;
};

static int pump_cb(void *user, const struct tel_sample *s)
{
    struct pump_ctx *c = user;
    struct tel_mqtt *m = c->m;
    if (c->kind == KIND_HISTORY && s->seq > m->hist_end) {
        m->hist_active = false;
        return 1;
    }
    int rc = publish_sample_msg(m, s, c->kind, false);
    if (rc) {
        c->err = rc;
        return 1;
    }
    c->sent++;
    if (c->kind == KIND_FORWARD) {
        m->next_send = s->seq + 1;
        m->st.published_replay++;
    } else {
        m->hist_next = s->seq + 1;
        m->st.published_history++;
    }
    return 0;
}

static double token_burst(const struct tel_mqtt *m)
{
    double b =
        m->p.replay_rate_per_s < m->p.inflight_max ? m->p.replay_rate_per_s : m->p.inflight_max;
    return b < 1 ? 1 : b;
}

static void refill_tokens(struct tel_mqtt *m, uint64_t now_ns)
{
    if (now_ns > m->tokens_ns) {
        m->tokens += (double)(now_ns - m->tokens_ns) * m->p.replay_rate_per_s / 1e9;
        if (m->tokens > token_burst(m))
            m->tokens = token_burst(m);
    }
    m->tokens_ns = now_ns;
}

static bool has_backlog(const struct tel_mqtt *m)
{
    if (!m->store)
        return false;
    if (m->next_send <= tel_store_last_seq(m->store))
        return true;
    return m->hist_active && m->hist_next <= m->hist_end;
}

/* Sends what the window and the rate allow: first the unacknowledged backlog (so order holds),
 * then history asked for by replay/req. */
static void pump(struct tel_mqtt *m, uint64_t now_ns)
{
    if (m->state != TEL_MQTT_CONNECTED || !m->store)
        return;
    refill_tokens(m, now_ns);
    for (int rounds = 0; rounds < 64; rounds++) {
        uint32_t room = m->p.inflight_max - m->n_inflight;
        uint32_t budget = m->tokens < room ? (uint32_t)m->tokens : room;
        if (budget > 256)
            budget = 256;
        if (budget == 0)
            return;
        uint64_t last = tel_store_last_seq(m->store);
        struct pump_ctx c = {.m = m};
        uint64_t after;
        if (m->next_send <= last) {
            c.kind = KIND_FORWARD;
            after = m->next_send - 1;
        } else if (m->hist_active && m->hist_next <= m->hist_end) {
            c.kind = KIND_HISTORY;
            after = m->hist_next - 1;
        } else {
            m->hist_active = false;
            return;
        }
        int n = tel_store_samples_after(m->store, after, budget, pump_cb, &c);
        m->tokens -= c.sent;
        if (n < 0 || c.err)
            return;
        if (c.sent == 0) {
            /* Nothing stored past `after` although seqs were handed out: those samples are
             * gone (retention, or dropped on a full disk). Skip them rather than spin. */
            if (c.kind == KIND_FORWARD) {
                m->next_send = last + 1;
                recompute_acked(m);
            } else {
                m->hist_active = false;
            }
        }
    }
}

/* ---- the queue of sessions and events kept while offline ---- */

static void queue_push(struct tel_mqtt *m, const char *topic, char *payload)
{
    if (m->p.queue_max == 0) {
        free(payload);
        m->st.queue_dropped++;
        return;
    }
    if (m->q_len == m->p.queue_max) {
        free(m->queue[m->q_head].payload);
        m->q_head = (m->q_head + 1) % m->p.queue_max;
        m->q_len--;
        m->st.queue_dropped++;
    }
    m->queue[(m->q_head + m->q_len) % m->p.queue_max] = (struct queued){topic, payload};
    m->q_len++;
}

static void queue_flush(struct tel_mqtt *m)
{
    while (m->q_len && m->state == TEL_MQTT_CONNECTED) {
        struct queued *q = &m->queue[m->q_head];
        if (publish_str(m, q->topic, q->payload, false) != 0)
            return;
        free(q->payload);
        m->q_head = (m->q_head + 1) % m->p.queue_max;
        m->q_len--;
    }
}

static int send_or_queue(struct tel_mqtt *m, const char *topic, char *payload)
{
    if (!payload)
        return -ENOMEM;
    if (m->state == TEL_MQTT_CONNECTED && m->q_len == 0 &&
        publish_str(m, topic, payload, false) == 0) {
        free(payload);
        return 0;
    }
    queue_push(m, topic, payload);
    return 0;
}

/* ---- discovery and state ---- */

static void for_each_config_topic(struct tel_mqtt *m, const char *dprefix, const char *device_id,
                                  enum tel_mqtt_discovery_mode mode, const char *payload);

static void publish_discovery(struct tel_mqtt *m)
{
    if (!m->p.discovery)
        return;
    for (unsigned i = 0;; i++) {
        char *topic = NULL, *payload = NULL;
        if (tel_hass_config(&m->p, m->base, i, &topic, &payload) != 0)
            break;
        publish_str(m, topic, payload, true);
        free(topic);
        free(payload);
    }
    m->st.discovery_published++;
    if (m->migrate_pending) {
        /* The new config is out: the old retained ones would otherwise come back at every
         * Home Assistant start. */
        for_each_config_topic(m, m->p.discovery_prefix, m->p.device_id, m->migrate_from, NULL);
        m->migrate_pending = false;
    }
}

/* Everything Home Assistant shows that is not discovery. with_live adds `status` and the last
 * `state` (after HA's birth message; at connect `status` went first and `state` follows with the
 * next sample). */
static void publish_states(struct tel_mqtt *m, bool with_live)
{
    if (with_live)
        publish_str(m, m->topic[T_STATUS], "online", true);
    if (m->have_gov)
        publish_str(m, m->topic[T_GOV_AVAIL], m->gov_available ? "online" : "offline", true);
    if (m->have_gov && m->gov_available)
        publish_str(m, m->topic[T_GOV_STATE], m->gov_state, true);
    if (m->have_cap && m->gov_available)
        publish_str(m, m->topic[T_CAP_STATE], m->cap_state, true);
    if (m->model_json)
        publish_str(m, m->topic[T_MODEL], m->model_json, true);
    if (m->session_json)
        publish_str(m, m->topic[T_SESSION_LAST], m->session_json, true);
    if (with_live && m->state_json)
        publish_str(m, m->topic[T_STATE], m->state_json, false);
}

static void clear_retained(struct tel_mqtt *m, const char *topic)
{
    if (publish_raw(m, NULL, topic, "", 0, true, NULL) == 0)
        m->st.stale_configs_cleared++;
}

/* Sends payload (or an empty retained message when payload is NULL) to every config topic of a
 * discovery identity. */
static void for_each_config_topic(struct tel_mqtt *m, const char *dprefix, const char *device_id,
                                  enum tel_mqtt_discovery_mode mode, const char *payload)
{
    for (unsigned i = 0;; i++) {
        char *t = NULL;
        if (tel_hass_config_topic(dprefix, device_id, mode, i, &t) != 0)
            break;
        if (payload)
            publish_str(m, t, payload, false);
        else
            clear_retained(m, t);
        free(t);
    }
}

static int mode_from_name(const char *s, enum tel_mqtt_discovery_mode *ret)
{
    if (strcmp(s, "component") == 0)
        *ret = TEL_MQTT_DISCOVERY_COMPONENT;
    else if (strcmp(s, "device") == 0)
        *ret = TEL_MQTT_DISCOVERY_DEVICE;
    else
        return -EINVAL;
    return 0;
}

/* Compares what the store says discovery announced last with what it announces now: entities
 * of another device id or discovery prefix, or of a box whose discovery was switched off, get
 * empty retained configs (Home Assistant removes them) and a changed id's retained topics are
 * cleared; a switch between component and device messages for the same device follows Home
 * Assistant's migration (migrate_discovery to the old topics, the new config, then the old ones
 * cleared), which keeps entity ids and their history. Then records the current announcement. */
static void reconcile_discovery(struct tel_mqtt *m)
{
    if (!m->store)
        return;
    char mode_s[16] = "", dprefix[TEL_META_VALUE_MAX_] = "", dev[TEL_META_VALUE_MAX_] = "",
         prefix[TEL_META_VALUE_MAX_] = "";
    enum tel_mqtt_discovery_mode old_mode = TEL_MQTT_DISCOVERY_COMPONENT;
    bool got_mode = tel_store_meta_get(m->store, META_HASS_MODE, mode_s, sizeof(mode_s)) == 0;
    bool old_off = got_mode && strcmp(mode_s, "off") == 0;
    bool had = got_mode && (old_off || mode_from_name(mode_s, &old_mode) == 0) &&
               tel_store_meta_get(m->store, META_HASS_PREFIX, dprefix, sizeof(dprefix)) == 0 &&
               tel_store_meta_get(m->store, META_HASS_DEVICE, dev, sizeof(dev)) == 0;
    if (tel_store_meta_get(m->store, META_MQTT_PREFIX, prefix, sizeof(prefix)) != 0)
        prefix[0] = '\0';
    const struct tel_mqtt_params *p = &m->p;
    bool same_device =
        had && strcmp(dprefix, p->discovery_prefix) == 0 && strcmp(dev, p->device_id) == 0;
    if (had && !old_off && p->discovery && same_device && old_mode != p->discovery_mode) {
        for_each_config_topic(m, dprefix, dev, old_mode, "{\"migrate_discovery\":true}");
        m->migrate_from = old_mode;
        m->migrate_pending = true;
    } else if (had && !old_off && (!p->discovery || !same_device)) {
        for_each_config_topic(m, dprefix, dev, old_mode, NULL);
    }
    if (prefix[0] && dev[0] && (strcmp(prefix, p->prefix) != 0 || strcmp(dev, p->device_id) != 0)) {
        for (size_t i = 0; i < sizeof(retained_suffixes) / sizeof(retained_suffixes[0]); i++) {
            char t[TEL_META_VALUE_MAX_ * 2 + 32];
            snprintf(t, sizeof(t), "%s/%s/%s", prefix, dev, retained_suffixes[i]);
            clear_retained(m, t);
        }
    }
    const char *now_mode = !p->discovery                                    ? "off"
                           : p->discovery_mode == TEL_MQTT_DISCOVERY_DEVICE ? "device"
                                                                            : "component";
    if (!had || strcmp(mode_s, now_mode) != 0 || !same_device)
        tel_store_meta_set(m->store, META_HASS_MODE, now_mode);
    if (!same_device) {
        tel_store_meta_set(m->store, META_HASS_PREFIX, p->discovery_prefix);
        tel_store_meta_set(m->store, META_HASS_DEVICE, p->device_id);
    }
    if (strcmp(prefix, p->prefix) != 0)
        tel_store_meta_set(m->store, META_MQTT_PREFIX, p->prefix);
}

/* ---- commands in ---- */

/* Error events are limited to a burst of ERR_BURST and ERR_RATE_PER_S after it, so a client
 * flooding bad commands cannot turn us into an amplifier or fill the offline queue; every
 * rejection is still counted in the stats. */
#define ERR_BURST      50.0
#define ERR_RATE_PER_S 10.0

static void reject(struct tel_mqtt *m, const char *what, const char *why)
{
    m->st.commands_rejected++;
    if (m->now_ns > m->err_tokens_ns) {
        m->err_tokens += (double)(m->now_ns - m->err_tokens_ns) * ERR_RATE_PER_S / 1e9;
        if (m->err_tokens > ERR_BURST)
            m->err_tokens = ERR_BURST;
        m->err_tokens_ns = m->now_ns;
    }
    if (m->err_tokens < 1)
        return;
    m->err_tokens -= 1;
    char detail[TEL_DETAIL_MAX];
    snprintf(detail, sizeof(detail), "%s: %s", what, why);
    tel_mqtt_publish_event(m, "command_error", detail);
}

static void handle_ask(struct tel_mqtt *m, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    if (msg->payloadlen < 0 || (size_t)msg->payloadlen > TEL_MQTT_ASK_MAX_BYTES) {
        reject(m, "ask", "payload too large");
        return;
    }
    char *resp = NULL;
    void *corr = NULL;
    uint16_t corr_len = 0;
    if (props) {
        mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &resp, false);
        mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false);
    }
    size_t pl = strlen(m->ask_prefix);
    if (resp && mosquitto_pub_topic_check(resp) != MOSQ_ERR_SUCCESS) {
        reject(m, "ask", "invalid response topic");
    } else if (resp && (strncmp(resp, m->ask_prefix, pl) != 0 || (resp[pl] && resp[pl] != '/'))) {
        /* Otherwise anyone could make the agent publish to any topic it may write, its own
         * command topics included. */
        reject(m, "ask", "response topic outside the allowed prefix");
    } else if (m->cb.on_ask) {
        /* A NUL-terminated copy: the caller may treat the question as a string. */
        char *q = malloc((size_t)msg->payloadlen + 1);
        if (q) {
            if (msg->payloadlen)
                memcpy(q, msg->payload, (size_t)msg->payloadlen);
            q[msg->payloadlen] = '\0';
            m->st.commands_ok++;
            m->cb.on_ask(m->cb.user, q, (size_t)msg->payloadlen, resp, corr, corr_len);
            free(q);
        }
    }
    free(resp);
    free(corr);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq;
    struct tel_mqtt *m = obj;
    const char *t = msg->topic;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    char err[160];

    bool foreign = false;
    if (m->foreign_topic[0] &&
        mosquitto_topic_matches_sub(m->foreign_topic, t, &foreign) == MOSQ_ERR_SUCCESS && foreign) {
        if (m->cb.on_foreign)
            m->cb.on_foreign(m->cb.user, t, msg->payload, len, msg->retain);
        return;
    }

    if (m->topic[T_HASS_STATUS] && strcmp(t, m->topic[T_HASS_STATUS]) == 0) {
        if (len == 6 && memcmp(msg->payload, "online", 6) == 0) {
            /* Home Assistant (re)started: discovery now, states a little later (its
             * documentation asks for a random delay, so that a fleet does not answer at once and
             * the new entities have subscribed). */
            publish_discovery(m);
            uint64_t max_ms = m->p.birth_delay_max_ms;
            uint64_t ms = max_ms / 3 + (max_ms ? rng_next(m) % (max_ms - max_ms / 3 + 1) : 0);
            m->birth_due_ns = m->now_ns + ms * CMN_NS_PER_MS;
        }
        return;
    }
    if (strcmp(t, m->topic[T_ASK]) == 0) {
        if (!m->p.ask)
            return;
        if (msg->retain)
            reject(m, "ask", "retained requests are ignored");
        else
            handle_ask(m, msg, props);
        return;
    }
    int which = strcmp(t, m->topic[T_GOV_SET]) == 0      ? T_GOV_SET
                : strcmp(t, m->topic[T_CAP_SET]) == 0    ? T_CAP_SET
                : strcmp(t, m->topic[T_REPLAY_REQ]) == 0 ? T_REPLAY_REQ
                                                         : -1;
    if (which < 0)
        return;
    if (msg->retain) {
        /* A retained command would be applied again at every reconnect. */
        reject(m, topic_suffix[which], "retained commands are ignored");
        return;
    }
    if (which == T_GOV_SET) {
        char policy[TEL_NAME_MAX];
        if (tel_command_parse_policy(&m->p.commands, msg->payload, len, policy, sizeof(policy), err,
                                     sizeof(err)) != 0) {
            reject(m, "governor/set", err);
            return;
        }
        m->st.commands_ok++;
        if (m->cb.on_policy_set)
            m->cb.on_policy_set(m->cb.user, policy);
    } else if (which == T_CAP_SET) {
        bool off = false;
        double w = 0;
        if (tel_command_parse_power_cap(&m->p.commands, msg->payload, len, &off, &w, err,
                                        sizeof(err)) != 0) {
            reject(m, "power_cap/set", err);
            return;
        }
        m->st.commands_ok++;
        if (m->cb.on_power_cap_set)
            m->cb.on_power_cap_set(m->cb.user, off, w);
    } else {
        uint64_t seq = 0;
        if (tel_command_parse_seq(msg->payload, len, &seq, err, sizeof(err)) != 0) {
            reject(m, "replay/req", err);
            return;
        }
        if (!m->store) {
            reject(m, "replay/req", "no history store");
            return;
        }
        m->st.commands_ok++;
        uint64_t last = tel_store_last_seq(m->store);
        m->hist_next = seq ? seq : 1;
        m->hist_end = last;
        if (m->p.replay_req_max && last - m->hist_next + 1 > m->p.replay_req_max &&
            last >= m->hist_next)
            m->hist_end = m->hist_next + m->p.replay_req_max - 1;
        m->hist_active = m->hist_next <= m->hist_end;
    }
}

/* ---- connection ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)flags;
    (void)props;
    struct tel_mqtt *m = obj;
    if (rc != 0) {
        bool v5 = m->proto_version == MQTT_PROTOCOL_V5;
        const char *why = v5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc);
        if (v5 && m->p.protocol == TEL_MQTT_PROTO_V5 &&
            (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION ||
             rc == CONNACK_REFUSED_PROTOCOL_VERSION)) {
            m->use_v311 = true;
            m->retry_now = true;
        }
        snprintf(m->lost_detail, sizeof(m->lost_detail), "broker refused the connection: %s", why);
        m->lost = true;
        return;
    }
    m->state = TEL_MQTT_CONNECTED;
    m->attempt = 0;
    m->st.connects++;
    m->next_send = m->acked_seq + 1;
    m->tokens = token_burst(m);
    m->tokens_ns = m->now_ns;

    publish_str(m, m->topic[T_STATUS], "online", true);
    char *subs[7];
    int n = 0;
    if (m->foreign_topic[0])
        subs[n++] = m->foreign_topic;
    subs[n++] = m->topic[T_GOV_SET];
    subs[n++] = m->topic[T_CAP_SET];
    subs[n++] = m->topic[T_REPLAY_REQ];
    if (m->p.ask)
        subs[n++] = m->topic[T_ASK];
    if (m->topic[T_HASS_STATUS])
        subs[n++] = m->topic[T_HASS_STATUS];
    mosquitto_subscribe_multiple(mosq, NULL, n, subs, 1, 0, NULL);
    publish_states(m, false);
    reconcile_discovery(m);
    publish_discovery(m);
    queue_flush(m);
    notify(m, TEL_MQTT_CONNECTED, "connected to %s:%d (MQTT %s)", m->p.host, m->p.port,
           m->proto_version == MQTT_PROTOCOL_V5 ? "v5" : "3.1.1");
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    struct tel_mqtt *m = obj;
    if (!m->lost)
        snprintf(m->lost_detail, sizeof(m->lost_detail), "connection lost: %s",
                 rc ? mosq_err_text(rc) : "closed");
    m->lost = true;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
    (void)props;
    struct tel_mqtt *m = obj;
    if (mid == m->close_mid && m->close_mid)
        m->close_acked = true;
    for (uint32_t i = 0; i < m->n_inflight; i++) {
        if (m->inflight[i].mid != mid)
            continue;
        struct inflight f = m->inflight[i];
        m->inflight[i] = m->inflight[--m->n_inflight];
        if (reason >= 0x80) {
            /* The broker refused it (quota, authorisation): it was not stored there. Dropping
             * the connection sends next_send back to the cursor, so it is retried in order. */
            snprintf(m->lost_detail, sizeof(m->lost_detail), "broker refused sample %llu: %s",
                     (unsigned long long)f.seq, mosquitto_reason_string(reason));
            m->lost = true;
            mosquitto_disconnect(mosq);
            if (f.kind == KIND_FORWARD && f.seq <= m->next_send)
                m->next_send = f.seq; /* keeps the cursor below the refused sample */
            recompute_acked(m);
            return;
        }
        m->st.acked++;
        if (f.kind == KIND_FORWARD)
            recompute_acked(m);
        return;
    }
}

static void drop_connection(struct tel_mqtt *m, uint64_t now_ns)
{
    bool was_connected = m->state == TEL_MQTT_CONNECTED;
    recompute_acked(m);
    /* Lowest history seq not acknowledged: history resumes there (best effort). */
    for (uint32_t i = 0; i < m->n_inflight; i++)
        if (m->inflight[i].kind == KIND_HISTORY && m->inflight[i].seq < m->hist_next) {
            m->hist_next = m->inflight[i].seq;
            m->hist_active = true;
        }
    m->n_inflight = 0;
    m->next_send = m->acked_seq + 1;
    if (m->mosq) {
        mosquitto_destroy(m->mosq);
        m->mosq = NULL;
    }
    m->lost = false;
    m->state = TEL_MQTT_DISCONNECTED;
    m->birth_due_ns = 0; /* the next connect publishes everything anyway */
    m->st.disconnects++;
    uint64_t delay_ms = 0;
    if (m->retry_now) {
        m->retry_now = false;
    } else {
        m->attempt++;
        delay_ms = backoff_ms(m, m->attempt);
    }
    m->next_connect_ns = now_ns + delay_ms * CMN_NS_PER_MS;
    m->st.reconnect_attempt = m->attempt;
    save_cursor(m, now_ns, true);
    notify(m, TEL_MQTT_DISCONNECTED, "%s%s; retrying in %llu ms",
           was_connected ? "" : "connect failed: ", m->lost_detail[0] ? m->lost_detail : "closed",
           (unsigned long long)delay_ms);
    m->lost_detail[0] = '\0';
}

static int configure_client(struct tel_mqtt *m, char *why, size_t why_len)
{
    struct mosquitto *q = m->mosq;
    int rc;
    m->proto_version = m->use_v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
    rc = mosquitto_int_option(q, MOSQ_OPT_PROTOCOL_VERSION, m->proto_version);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_will_set_v5(q, m->topic[T_STATUS], 7, "offline", 1, true, NULL);
    if (rc == MOSQ_ERR_SUCCESS && m->p.username)
        rc = mosquitto_username_pw_set(q, m->p.username, m->p.password);
    if (rc == MOSQ_ERR_SUCCESS && m->p.tls_ca) {
        rc = mosquitto_tls_set(q, m->p.tls_ca, NULL, m->p.tls_cert, m->p.tls_key, NULL);
        if (rc == MOSQ_ERR_SUCCESS && m->p.tls_insecure)
            rc = mosquitto_tls_insecure_set(q, true);
    }
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_max_inflight_messages_set(q, m->p.inflight_max + 32);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(why, why_len, "client setup: %s", mosq_err_text(rc));
        return -1;
    }
    mosquitto_connect_v5_callback_set(q, on_connect);
    mosquitto_disconnect_v5_callback_set(q, on_disconnect);
    mosquitto_publish_v5_callback_set(q, on_publish);
    mosquitto_message_v5_callback_set(q, on_message);
    return 0;
}

static void start_connect(struct tel_mqtt *m, uint64_t now_ns)
{
    if (m->mosq)
        mosquitto_destroy(m->mosq);
    m->mosq = mosquitto_new(m->client_id, true, m);
    m->lost = false;
    m->lost_detail[0] = '\0';
    m->state = TEL_MQTT_CONNECTING;
    m->connect_started_ns = now_ns;
    m->generation++;
    if (!m->mosq) {
        snprintf(m->lost_detail, sizeof(m->lost_detail), "out of memory");
        drop_connection(m, now_ns);
        return;
    }
    if (configure_client(m, m->lost_detail, sizeof(m->lost_detail)) != 0) {
        drop_connection(m, now_ns);
        return;
    }
    /* Non-blocking: the TCP connect completes when the socket turns writable. Name resolution
     * (getaddrinfo) is synchronous; use an address or /etc/hosts name for a loop that must not
     * stall. */
    int rc = mosquitto_connect_bind_async(m->mosq, m->p.host, m->p.port, m->p.keepalive_s, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(m->lost_detail, sizeof(m->lost_detail), "%s:%d: %s", m->p.host, m->p.port,
                 mosq_err_text(rc));
        drop_connection(m, now_ns);
        return;
    }
    notify(m, TEL_MQTT_CONNECTING, "connecting to %s:%d (MQTT %s%s)", m->p.host, m->p.port,
           m->proto_version == MQTT_PROTOCOL_V5 ? "v5" : "3.1.1", m->p.tls_ca ? ", TLS" : "");
}

/* After any libmosquitto call: notice a lost connection, then move the backlog along. */
static void after_io(struct tel_mqtt *m, uint64_t now_ns)
{
    if (m->state == TEL_MQTT_CLOSED)
        return;
    if ((m->state == TEL_MQTT_CONNECTING || m->state == TEL_MQTT_CONNECTED) &&
        (m->lost || !m->mosq || mosquitto_socket(m->mosq) < 0)) {
        drop_connection(m, now_ns);
        return;
    }
    if (m->state == TEL_MQTT_CONNECTED) {
        pump(m, now_ns);
        save_cursor(m, now_ns, false);
    }
}

int tel_mqtt_handle_read(struct tel_mqtt *m, uint64_t now_ns)
{
    m->now_ns = now_ns;
    if (m->mosq && mosquitto_socket(m->mosq) >= 0)
        mosquitto_loop_read(m->mosq, 1);
    after_io(m, now_ns);
    return 0;
}

int tel_mqtt_handle_write(struct tel_mqtt *m, uint64_t now_ns)
{
    m->now_ns = now_ns;
    if (m->mosq && mosquitto_socket(m->mosq) >= 0)
        mosquitto_loop_write(m->mosq, 1);
    after_io(m, now_ns);
    return 0;
}

int tel_mqtt_handle_misc(struct tel_mqtt *m, uint64_t now_ns)
{
    m->now_ns = now_ns;
    if (m->state == TEL_MQTT_CLOSED)
        return 0;
    if (m->state == TEL_MQTT_DISCONNECTED && now_ns >= m->next_connect_ns) {
        start_connect(m, now_ns);
    } else if (m->state == TEL_MQTT_CONNECTING &&
               now_ns - m->connect_started_ns >=
                   (uint64_t)m->p.connect_timeout_ms * CMN_NS_PER_MS) {
        snprintf(m->lost_detail, sizeof(m->lost_detail), "no CONNACK within %u ms",
                 m->p.connect_timeout_ms);
        drop_connection(m, now_ns);
        return 0;
    }
    if (m->state == TEL_MQTT_CONNECTED && m->birth_due_ns && now_ns >= m->birth_due_ns) {
        m->birth_due_ns = 0;
        publish_states(m, true);
        m->st.birth_republished++;
    }
    if (m->state == TEL_MQTT_CONNECTED && m->mosq && mosquitto_socket(m->mosq) >= 0)
        mosquitto_loop_misc(m->mosq); /* keepalive: PINGREQ, and the broker's silence */
    after_io(m, now_ns);
    return 0;
}

void tel_mqtt_poll_info(struct tel_mqtt *m, uint64_t now_ns, struct tel_mqtt_poll *ret)
{
    ret->fd = m->mosq ? mosquitto_socket(m->mosq) : -1;
    ret->want_write = ret->fd >= 0 && mosquitto_want_write(m->mosq);
    ret->generation = m->generation;
    uint64_t d = UINT64_MAX;
    switch (m->state) {
    case TEL_MQTT_CLOSED:
        break;
    case TEL_MQTT_DISCONNECTED:
        d = m->next_connect_ns;
        break;
    case TEL_MQTT_CONNECTING:
        d = m->connect_started_ns + (uint64_t)m->p.connect_timeout_ms * CMN_NS_PER_MS;
        break;
    case TEL_MQTT_CONNECTED:
        /* libmosquitto's keepalive works in whole seconds. */
        d = now_ns + CMN_NS_PER_S;
        if (m->n_inflight < m->p.inflight_max && has_backlog(m)) {
            double need = 1.0 - m->tokens;
            uint64_t wait = need <= 0 ? 0 : (uint64_t)(need * 1e9 / m->p.replay_rate_per_s) + 1;
            uint64_t t = (m->tokens_ns > now_ns ? m->tokens_ns : now_ns) + wait;
            if (t < d)
                d = t;
        }
        if (m->store && m->acked_seq != m->saved_seq) {
            uint64_t t = m->saved_ns + (uint64_t)m->p.cursor_save_ms * CMN_NS_PER_MS;
            if (t < d)
                d = t;
        }
        if (m->birth_due_ns && m->birth_due_ns < d)
            d = m->birth_due_ns;
        break;
    }
    ret->deadline_ns = d;
}

enum tel_mqtt_conn_state tel_mqtt_state(const struct tel_mqtt *m)
{
    return m->state;
}

int tel_mqtt_protocol_version(const struct tel_mqtt *m)
{
    return m->proto_version == MQTT_PROTOCOL_V5 ? 5 : 4;
}

void tel_mqtt_get_stats(const struct tel_mqtt *m, struct tel_mqtt_stats *ret)
{
    *ret = m->st;
    ret->acked_seq = m->acked_seq;
    ret->inflight = m->n_inflight;
    ret->reconnect_attempt = m->attempt;
    ret->next_connect_ns = m->next_connect_ns;
}

/* ---- publishing API ---- */

/* The dashboard view of a live sample: only ever forward, in seq and in energy. */
static void publish_state(struct tel_mqtt *m, const struct tel_sample *s)
{
    if (m->state != TEL_MQTT_CONNECTED || (m->state_json && s->seq <= m->state_seq))
        return;
    double e = m->store ? tel_store_committed_energy_j(m->store) : s->energy_j;
    if (!isfinite(e) || e < m->state_energy_j)
        e = m->state_energy_j;
    /* The wall total likewise: what is on disk, so a restart after kill -9 never shows less. */
    double w = m->store ? tel_store_committed_wall_energy_j(m->store) : s->wall_energy_j;
    if (!isfinite(w) || w < m->state_wall_j)
        w = m->state_wall_j;
    char *json = tel_payload_state_wall_json(s, e, w);
    if (!json || publish_str(m, m->topic[T_STATE], json, false) != 0) {
        free(json);
        return;
    }
    free(m->state_json);
    m->state_json = json;
    m->state_seq = s->seq;
    m->state_energy_j = e;
    if (s->has_wall)
        m->state_wall_j = w;
    m->st.states_published++;
}

int tel_mqtt_publish_sample(struct tel_mqtt *m, const struct tel_sample *s)
{
    publish_state(m, s);
    if (!m->store) {
        /* Nothing to replay from: publish now or never. */
        if (s->seq >= m->next_send && m->state == TEL_MQTT_CONNECTED &&
            publish_sample_msg(m, s, KIND_FORWARD, true) == 0)
            m->st.published_live++;
        if (s->seq >= m->next_send)
            m->next_send = s->seq + 1;
        recompute_acked(m);
        return 0;
    }
    if (m->state != TEL_MQTT_CONNECTED || s->seq != m->next_send)
        return 0; /* offline, or a backlog ahead of it: the pump sends it from the store */
    if (m->n_inflight >= m->p.inflight_max)
        return 0;
    int rc = publish_sample_msg(m, s, KIND_FORWARD, true);
    if (rc == 0) {
        m->next_send = s->seq + 1;
        m->st.published_live++;
    }
    return 0;
}

int tel_mqtt_publish_session(struct tel_mqtt *m, const struct tel_session *s)
{
    char *json = tel_payload_session_json(s);
    char *last = json ? strdup(json) : NULL;
    if (last) {
        free(m->session_json);
        m->session_json = last;
        if (m->state == TEL_MQTT_CONNECTED)
            publish_str(m, m->topic[T_SESSION_LAST], last, true);
    }
    return send_or_queue(m, m->topic[T_SESSION], json);
}

int tel_mqtt_publish_model(struct tel_mqtt *m, const struct tel_model_info *model)
{
    char *json = model ? tel_payload_model_json(model) : NULL;
    if (!json)
        return model ? -ENOMEM : -EINVAL;
    free(m->model_json);
    m->model_json = json;
    if (m->state == TEL_MQTT_CONNECTED)
        publish_str(m, m->topic[T_MODEL], json, true);
    return 0;
}

int tel_mqtt_publish_event(struct tel_mqtt *m, const char *kind, const char *detail)
{
    return send_or_queue(m, m->topic[T_EVENT], tel_payload_event_json(cmn_wall_ns(), kind, detail));
}

int tel_mqtt_publish_governor_state(struct tel_mqtt *m, const char *policy)
{
    if (policy && strlen(policy) >= sizeof(m->gov_state))
        return -EINVAL;
    bool available = policy && *policy;
    bool changed = !m->have_gov || available != m->gov_available;
    snprintf(m->gov_state, sizeof(m->gov_state), "%s", available ? policy : "");
    m->have_gov = true;
    m->gov_available = available;
    if (m->state != TEL_MQTT_CONNECTED)
        return 0;
    if (changed)
        publish_str(m, m->topic[T_GOV_AVAIL], available ? "online" : "offline", true);
    if (available)
        publish_str(m, m->topic[T_GOV_STATE], m->gov_state, true);
    return 0;
}

int tel_mqtt_publish_power_cap_state(struct tel_mqtt *m, bool off, double cap_w)
{
    if (!off && !isfinite(cap_w))
        return -EINVAL;
    if (off)
        snprintf(m->cap_state, sizeof(m->cap_state), "off");
    else
        snprintf(m->cap_state, sizeof(m->cap_state), "%.15g", round(cap_w * 1000) / 1000);
    m->have_cap = true;
    if (m->state == TEL_MQTT_CONNECTED && (!m->have_gov || m->gov_available))
        publish_str(m, m->topic[T_CAP_STATE], m->cap_state, true);
    return 0;
}

int tel_mqtt_respond(struct tel_mqtt *m, const char *response_topic, const void *correlation,
                     size_t correlation_len, const char *payload, size_t len)
{
    const char *topic = response_topic ? response_topic : m->topic[T_ASK_RESPONSE];
    if (mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS || correlation_len > UINT16_MAX)
        return -EINVAL;
    mosquitto_property *props = NULL;
    if (correlation && correlation_len && m->proto_version == MQTT_PROTOCOL_V5 &&
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation,
                                      (uint16_t)correlation_len) != MOSQ_ERR_SUCCESS)
        return -ENOMEM;
    int rc = publish_raw(m, NULL, topic, payload, len, false, props);
    mosquitto_property_free_all(&props);
    return rc;
}

/* ---- lifetime ---- */

static int valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int valid_prefix(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 64 && s[0] != '/' && s[n - 1] != '/' && !strpbrk(s, "+#") &&
           mosquitto_pub_topic_check(s) == MOSQ_ERR_SUCCESS;
}

/* Copies a string of params into *dst (NULL and "" become NULL). */
static int dup_into(const char **dst, const char *src)
{
    *dst = NULL;
    if (!src || !*src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

static void free_fields(struct tel_mqtt_params *p)
{
    free((char *)p->host);
    free((char *)p->prefix);
    free((char *)p->device_id);
    free((char *)p->username);
    free((char *)p->password);
    free((char *)p->tls_ca);
    free((char *)p->tls_cert);
    free((char *)p->tls_key);
    free((char *)p->discovery_prefix);
    free((char *)p->device_name);
    free((char *)p->sw_version);
    free((char *)p->configuration_url);
    free((char *)p->support_url);
    for (uint32_t i = 0; i < TEL_MQTT_MAX_POLICIES; i++)
        free((char *)p->commands.policies[i]);
}

/* What Home Assistant's URL validator accepts for these fields: a scheme it allows and a
 * non-empty rest without spaces or control characters (NULL and "" mean "not set"). */
static int valid_url(const char *s, bool homeassistant_ok)
{
    if (!s || !*s)
        return 1;
    size_t skip = strncmp(s, "https://", 8) == 0                                ? 8
                  : strncmp(s, "http://", 7) == 0                               ? 7
                  : homeassistant_ok && strncmp(s, "homeassistant://", 16) == 0 ? 16
                                                                                : 0;
    if (!skip || !s[skip] || strlen(s) > 512)
        return 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= ' ' || *c == 0x7f || *c == '"')
            return 0;
    return 1;
}

static int check_params(const struct tel_mqtt_params *p, char *err, size_t err_len)
{
    if (!p->host || !*p->host)
        return set_err(err, err_len, -EINVAL, "mqtt: host is empty");
    if (p->port < 1 || p->port > 65535)
        return set_err(err, err_len, -EINVAL, "mqtt: port %d outside 1..65535", p->port);
    if (!valid_prefix(p->prefix))
        return set_err(err, err_len, -EINVAL,
                       "mqtt: prefix \"%s\" must be 1-64 characters of a topic, without + # or "
                       "a leading/trailing '/'",
                       p->prefix ? p->prefix : "");
    if (!valid_id(p->device_id))
        return set_err(err, err_len, -EINVAL,
                       "mqtt: device_id \"%s\" must be 1-64 of [A-Za-z0-9_-]",
                       p->device_id ? p->device_id : "");
    if (!valid_prefix(p->discovery_prefix))
        return set_err(err, err_len, -EINVAL, "mqtt: discovery_prefix is not a valid topic");
    if (!valid_url(p->configuration_url, true))
        return set_err(err, err_len, -EINVAL,
                       "mqtt: configuration_url \"%s\" is not an http://, https:// or "
                       "homeassistant:// URL",
                       p->configuration_url);
    if (!valid_url(p->support_url, false))
        return set_err(err, err_len, -EINVAL,
                       "mqtt: support_url \"%s\" is not an http:// or https:// URL",
                       p->support_url);
    if (p->discovery_mode != TEL_MQTT_DISCOVERY_COMPONENT &&
        p->discovery_mode != TEL_MQTT_DISCOVERY_DEVICE)
        return set_err(err, err_len, -EINVAL, "mqtt: unknown discovery mode");
    if (p->birth_delay_max_ms > 600000)
        return set_err(err, err_len, -EINVAL, "mqtt: birth_delay_max_ms above 600000");
    if (p->keepalive_s < 5 || p->keepalive_s > 65535)
        return set_err(err, err_len, -EINVAL, "mqtt: keepalive_s %d outside 5..65535",
                       p->keepalive_s);
    if (p->reconnect_min_ms == 0 || p->reconnect_max_ms < p->reconnect_min_ms)
        return set_err(err, err_len, -EINVAL,
                       "mqtt: reconnect delays need 0 < reconnect_min_ms <= reconnect_max_ms");
    if (p->replay_rate_per_s == 0 || p->inflight_max == 0 || p->inflight_max > 65535)
        return set_err(err, err_len, -EINVAL,
                       "mqtt: replay_rate_per_s must be > 0 and inflight_max 1..65535");
    if (p->connect_timeout_ms == 0)
        return set_err(err, err_len, -EINVAL, "mqtt: connect_timeout_ms must be > 0");
    if (p->queue_max > 100000)
        return set_err(err, err_len, -EINVAL, "mqtt: queue_max above 100000");
    if ((p->tls_cert && *p->tls_cert) != (p->tls_key && *p->tls_key))
        return set_err(err, err_len, -EINVAL, "mqtt: tls_cert and tls_key go together");
    if (((p->tls_cert && *p->tls_cert) || p->tls_insecure) && !(p->tls_ca && *p->tls_ca))
        return set_err(err, err_len, -EINVAL, "mqtt: TLS options need tls_ca");
    if (p->password && *p->password && !(p->username && *p->username))
        return set_err(err, err_len, -EINVAL, "mqtt: a password needs a username");
    const char *files[] = {p->tls_ca, p->tls_cert, p->tls_key};
    for (int i = 0; i < 3; i++) {
        if (files[i] && *files[i]) {
            FILE *f = fopen(files[i], "r");
            if (!f)
                return set_err(err, err_len, -errno, "mqtt: %s: %s", files[i], strerror(errno));
            fclose(f);
        }
    }
    const struct tel_mqtt_commands *c = &p->commands;
    if (c->n_policies > TEL_MQTT_MAX_POLICIES)
        return set_err(err, err_len, -EINVAL, "mqtt: more than %d policies", TEL_MQTT_MAX_POLICIES);
    for (uint32_t i = 0; i < c->n_policies; i++)
        if (!c->policies[i] || !*c->policies[i] || strlen(c->policies[i]) >= TEL_NAME_MAX)
            return set_err(err, err_len, -EINVAL, "mqtt: policy %u is empty or too long", i);
    if (!isfinite(c->cap_min_w) || !isfinite(c->cap_max_w) || c->cap_min_w < 0 ||
        c->cap_max_w < c->cap_min_w)
        return set_err(err, err_len, -EINVAL,
                       "mqtt: power cap range [%g, %g] W is not 0 <= min <= max", c->cap_min_w,
                       c->cap_max_w);
    return 0;
}

int tel_mqtt_new(const struct tel_mqtt_params *params, const struct tel_mqtt_callbacks *cb,
                 struct tel_store *store, struct tel_mqtt **ret, char *err, size_t err_len)
{
    int rc = check_params(params, err, err_len);
    if (rc)
        return rc;
    struct tel_mqtt *m = calloc(1, sizeof(*m));
    if (!m)
        return set_err(err, err_len, -ENOMEM, "mqtt: out of memory");
    mosquitto_lib_init();
    m->p = *params;
    /* Every string pointer is cleared before any copy, so free_fields never frees the caller's. */
    const char **fields[] = {&m->p.host,        &m->p.prefix,     &m->p.device_id,
                             &m->p.username,    &m->p.password,   &m->p.tls_ca,
                             &m->p.tls_cert,    &m->p.tls_key,    &m->p.discovery_prefix,
                             &m->p.device_name, &m->p.sw_version, &m->p.configuration_url,
                             &m->p.support_url};
    const char *srcs[] = {params->host,        params->prefix,     params->device_id,
                          params->username,    params->password,   params->tls_ca,
                          params->tls_cert,    params->tls_key,    params->discovery_prefix,
                          params->device_name, params->sw_version, params->configuration_url,
                          params->support_url};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        *fields[i] = NULL;
    memset(m->p.commands.policies, 0, sizeof(m->p.commands.policies));
    rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(fields) / sizeof(fields[0]); i++)
        rc = dup_into(fields[i], srcs[i]);
    for (uint32_t i = 0; rc == 0 && i < params->commands.n_policies; i++)
        rc = dup_into(&m->p.commands.policies[i], params->commands.policies[i]);
    if (rc)
        goto nomem;
    if (cb)
        m->cb = *cb;
    m->store = store;
    snprintf(m->base, sizeof(m->base), "%s/%s", m->p.prefix, m->p.device_id);
    snprintf(m->client_id, sizeof(m->client_id), "ember-%s", m->p.device_id);
    for (int i = 0; i < T_COUNT_; i++) {
        if (i == T_HASS_STATUS) {
            if (!m->p.discovery)
                continue;
            size_t n = strlen(m->p.discovery_prefix) + sizeof("/status");
            m->topic[i] = malloc(n);
            if (m->topic[i])
                snprintf(m->topic[i], n, "%s/status", m->p.discovery_prefix);
        } else {
            size_t n = strlen(m->base) + 1 + strlen(topic_suffix[i]) + 1;
            m->topic[i] = malloc(n);
            if (m->topic[i])
                snprintf(m->topic[i], n, "%s/%s", m->base, topic_suffix[i]);
        }
        if (!m->topic[i])
            goto nomem;
    }
    if (params->foreign_topic && params->foreign_topic[0]) {
        if (strlen(params->foreign_topic) >= sizeof(m->foreign_topic) ||
            mosquitto_sub_topic_check(params->foreign_topic) != MOSQ_ERR_SUCCESS) {
            rc = set_err(err, err_len, -EINVAL,
                         "mqtt: wall meter topic '%s' is not a valid subscription",
                         params->foreign_topic);
            goto fail;
        }
        snprintf(m->foreign_topic, sizeof(m->foreign_topic), "%s", params->foreign_topic);
    }
    m->p.foreign_topic = NULL; /* not owned */
    if (params->ask_response_prefix && params->ask_response_prefix[0]) {
        const char *ap = params->ask_response_prefix;
        if (strlen(ap) >= sizeof(m->ask_prefix) || strpbrk(ap, "+#") ||
            mosquitto_pub_topic_check(ap) != MOSQ_ERR_SUCCESS) {
            rc = set_err(err, err_len, -EINVAL,
                         "mqtt: ask_response_prefix '%s' is not a topic without wildcards", ap);
            goto fail;
        }
        snprintf(m->ask_prefix, sizeof(m->ask_prefix), "%s", ap);
        m->p.ask_response_prefix = NULL; /* not owned */
    } else {
        snprintf(m->ask_prefix, sizeof(m->ask_prefix), "%s", m->topic[T_ASK_RESPONSE]);
    }
    m->inflight = calloc(m->p.inflight_max, sizeof(*m->inflight));
    m->queue = m->p.queue_max ? calloc(m->p.queue_max, sizeof(*m->queue)) : NULL;
    if (!m->inflight || (m->p.queue_max && !m->queue))
        goto nomem;

    m->use_v311 = m->p.protocol == TEL_MQTT_PROTO_V311;
    m->proto_version = m->use_v311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
    m->rng = m->p.jitter_seed ? m->p.jitter_seed : (cmn_wall_ns() ^ (uintptr_t)m) | 1;

    if (store) {
        uint64_t v = 0;
        rc = tel_store_meta_get_u64(store, TEL_META_MQTT_ACKED_SEQ, &v);
        if (rc == -ENOENT) {
            /* First use of this database for MQTT: history from before is not "unsent".
             * Record the starting point now so a crash before the first save cannot lose
             * what is published afterwards. */
            v = tel_store_last_seq(store);
            rc = tel_store_meta_set_u64(store, TEL_META_MQTT_ACKED_SEQ, v);
        }
        if (rc) {
            set_err(err, err_len, rc, "mqtt: reading the acknowledged cursor from the store: %s",
                    strerror(-rc));
            goto fail;
        }
        m->acked_seq = m->saved_seq = v;
    }
    m->next_send = m->acked_seq + 1;
    m->st.acked_seq = m->acked_seq;
    m->err_tokens = ERR_BURST;
    m->state = TEL_MQTT_DISCONNECTED;
    m->next_connect_ns = 0; /* connect at the first handle_misc */
    *ret = m;
    return 0;

nomem:
    rc = set_err(err, err_len, -ENOMEM, "mqtt: out of memory");
fail:
    tel_mqtt_free(m);
    return rc;
}

/* Drives the socket directly (poll on our one fd) until done() or the deadline; only for close,
 * when the agent's loop is no longer running. */
static void drive_until(struct tel_mqtt *m, uint64_t deadline_ns, bool (*done)(struct tel_mqtt *))
{
    while (m->mosq && !m->lost && !done(m)) {
        int fd = mosquitto_socket(m->mosq);
        uint64_t now = cmn_now_ns();
        if (fd < 0 || now >= deadline_ns)
            return;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (mosquitto_want_write(m->mosq))
            pfd.events |= POLLOUT;
        int ms = (int)((deadline_ns - now) / CMN_NS_PER_MS) + 1;
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
            return;
        if (pfd.revents & (POLLIN | POLLERR | POLLHUP))
            mosquitto_loop_read(m->mosq, 1);
        if (m->mosq && mosquitto_socket(m->mosq) >= 0 && (pfd.revents & POLLOUT))
            mosquitto_loop_write(m->mosq, 1);
        if (m->mosq && mosquitto_socket(m->mosq) >= 0)
            mosquitto_loop_misc(m->mosq);
    }
}

static bool offline_acked(struct tel_mqtt *m)
{
    /* Telemetry PUBACKs still in flight move the cursor too; wait for those as well. */
    return m->close_acked && m->n_inflight == 0;
}

static bool socket_closed(struct tel_mqtt *m)
{
    return mosquitto_socket(m->mosq) < 0;
}

void tel_mqtt_close(struct tel_mqtt *m, int timeout_ms)
{
    if (!m || m->state == TEL_MQTT_CLOSED)
        return;
    uint64_t deadline = cmn_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * CMN_NS_PER_MS;
    if (m->state == TEL_MQTT_CONNECTED && m->mosq) {
        m->close_acked = false;
        if (publish_raw(m, &m->close_mid, m->topic[T_STATUS], "offline", 7, true, NULL) == 0)
            drive_until(m, deadline, offline_acked);
        if (!m->lost && mosquitto_socket(m->mosq) >= 0) {
            /* Reason 0 (normal disconnection): the broker drops the Will, which would say the
             * same thing. */
            mosquitto_disconnect_v5(m->mosq, 0, NULL);
            drive_until(m, deadline, socket_closed);
        }
        recompute_acked(m);
    }
    save_cursor(m, cmn_now_ns(), true);
    if (m->mosq) {
        mosquitto_destroy(m->mosq);
        m->mosq = NULL;
    }
    m->state = TEL_MQTT_CLOSED;
    m->generation++;
    notify(m, TEL_MQTT_CLOSED, "closed");
}

void tel_mqtt_free(struct tel_mqtt *m)
{
    if (!m)
        return;
    if (m->mosq)
        mosquitto_destroy(m->mosq);
    for (uint32_t i = 0; m->queue && i < m->q_len; i++)
        free(m->queue[(m->q_head + i) % m->p.queue_max].payload);
    free(m->state_json);
    free(m->session_json);
    free(m->model_json);
    free(m->queue);
    free(m->inflight);
    for (int i = 0; i < T_COUNT_; i++)
        free(m->topic[i]);
    free_fields(&m->p);
    free(m);
    mosquitto_lib_cleanup();
}
