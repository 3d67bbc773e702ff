/* The MQTT side of telemetry: a libmosquitto client driven by the caller's event loop (no thread
 * of its own, no polling) that publishes samples, sessions, events and state under
 * <prefix>/<device_id>/, keeps a retained `status` with a Last Will, replays from the SQLite store
 * every sample the broker did not acknowledge (in seq order, throttled), announces itself to Home
 * Assistant, and turns `governor/set` / `power_cap/set` / `ask` messages into callbacks after
 * validating them exactly. Single-threaded: call everything from the loop's thread.
 *
 * Driving it from epoll (level-triggered; libmosquitto reads a bounded number of packets per
 * call): each iteration call tel_mqtt_poll_info(); when .generation changed since last time,
 * EPOLL_CTL_ADD .fd (the old socket is gone); watch EPOLLIN always and EPOLLOUT while
 * .want_write; wake up no later than .deadline_ns. On EPOLLIN call tel_mqtt_handle_read, on
 * EPOLLOUT tel_mqtt_handle_write, and on every wake-up tel_mqtt_handle_misc (keepalive, reconnect
 * timer, replay pacing).
 *
 * Topics under <prefix>/<device_id>/ (docs/telemetry.md has the table): status (retained
 * online/offline, also the Last Will); telemetry (each sample once, as it is produced; "ts" is
 * Unix seconds with millisecond resolution, unknown values are null); telemetry/replay (samples
 * sent late: the backlog the broker did not acknowledge before an outage, and history asked for
 * by replay/req, the latter marked under MQTT v5 with the user property replay=1); state (the
 * newest live sample for dashboards, never older than one already published, with the energy
 * total already committed to the store so that no published total is ever taken back);
 * session, event; session/last, model, governor/state, power_cap/state, governor/available
 * (retained). In: governor/set, power_cap/set, replay/req (a seq: samples from it up to the
 * newest, at most replay_req_max), ask. A rejected command produces an `event` of kind
 * "command_error" whose detail names the topic and the reason. Commands carrying the retain flag
 * (replayed by the broker at subscription) are rejected too, so a stale retained command never
 * fires again at a reconnect. */
#ifndef TELEMETRY_MQTT_H
#define TELEMETRY_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry/sample.h"

struct tel_store;
struct tel_mqtt;

#define TEL_MQTT_MAX_POLICIES  16
#define TEL_MQTT_CMD_MAX_BYTES 256 /* longest governor/set, power_cap/set, replay/req payload */
#define TEL_MQTT_ASK_MAX_BYTES 65536

enum tel_mqtt_protocol {
    TEL_MQTT_PROTO_V5 = 0, /* MQTT v5; falls back to 3.1.1 when the broker refuses v5 */
    TEL_MQTT_PROTO_V311,   /* MQTT 3.1.1 only */
};

enum tel_mqtt_discovery_mode {
    TEL_MQTT_DISCOVERY_COMPONENT = 0, /* one config message per entity */
    TEL_MQTT_DISCOVERY_DEVICE,        /* one homeassistant/device/... message with components */
};

enum tel_mqtt_conn_state {
    TEL_MQTT_DISCONNECTED = 0, /* waiting for the reconnect timer */
    TEL_MQTT_CONNECTING,       /* TCP/TLS/CONNECT in progress */
    TEL_MQTT_CONNECTED,        /* CONNACK accepted */
    TEL_MQTT_CLOSED,           /* tel_mqtt_close called */
};

/* What a caller allows for the commands it accepts. */
struct tel_mqtt_commands {
    const char *policies[TEL_MQTT_MAX_POLICIES]; /* accepted governor policy names */
    uint32_t n_policies;
    double cap_min_w; /* accepted power cap range, inclusive */
    double cap_max_w;
    bool cap_off_allowed; /* "off" removes the cap */
};

struct tel_mqtt_params {
    const char *host;      /* default "127.0.0.1"; resolved at each connect */
    int port;              /* default 1883 */
    const char *prefix;    /* default "ember" */
    const char *device_id; /* required: [A-Za-z0-9_-]{1,64} */
    enum tel_mqtt_protocol protocol;
    int keepalive_s;                 /* default 60 */
    const char *username, *password; /* NULL: anonymous */
    const char *tls_ca;              /* CA file; set to enable TLS */
    const char *tls_cert, *tls_key;  /* client certificate and key (both or neither) */
    bool tls_insecure;               /* skip host name verification (tests with IP certs) */
    uint32_t reconnect_min_ms;       /* first retry delay (default 1000) */
    uint32_t reconnect_max_ms;       /* delay cap (default 60000) */
    uint32_t connect_timeout_ms;     /* a connect attempt without CONNACK is abandoned (10000) */
    uint32_t replay_rate_per_s;      /* replayed samples per second (default 50) */
    uint32_t inflight_max;           /* telemetry messages awaiting PUBACK at most (default 20) */
    uint32_t replay_req_max;         /* samples one replay/req may ask for (default 86400) */
    uint32_t cursor_save_ms;         /* acknowledged cursor written to the store at most this
                                        often (default 1000); always on close */
    uint32_t queue_max;              /* sessions/events kept while offline (default 64) */
    uint64_t jitter_seed;            /* 0: seeded from the clock */
    /* Home Assistant discovery */
    bool discovery; /* default true */
    enum tel_mqtt_discovery_mode discovery_mode;
    const char *discovery_prefix;  /* default "homeassistant" */
    const char *device_name;       /* shown in Home Assistant; default "Ember <device_id>" */
    const char *sw_version;        /* may be NULL */
    const char *configuration_url; /* device page link (http, https or homeassistant URL) */
    const char *support_url;       /* origin support link (http or https URL) */
    uint32_t expire_after_s;       /* live sensors turn unavailable without a state this long
                                      (default 30; 0: never) */
    uint32_t birth_delay_max_ms;   /* states follow Home Assistant's birth message after a
                                      random delay of 1/3..all of this (default 3000) */
    struct tel_mqtt_commands commands;
    /* `ask` runs the model for whoever can publish to <prefix>/<device_id>/ask: off by default
     * (then not even subscribed). Answers go only to response topics equal to or under
     * ask_response_prefix (NULL or "": <prefix>/<device_id>/ask/response), never to, say, the
     * agent's own governor/set. Brokers must still restrict who may publish there (ACLs). */
    bool ask;
    const char *ask_response_prefix;
    /* One more topic to subscribe to (NULL or "": none), for a smart plug that meters the box
     * at the wall (telemetry/wall.h); wildcards allowed. Its messages go to on_foreign. */
    const char *foreign_topic;
};

/* Callbacks from inside tel_mqtt_handle_*; they may call any tel_mqtt_publish_* function but
 * must not free the handle. Any of them may be NULL. */
struct tel_mqtt_callbacks {
    /* A valid governor/set: policy is one of commands.policies. */
    void (*on_policy_set)(void *user, const char *policy);
    /* A valid power_cap/set: off, or cap_w within [cap_min_w, cap_max_w]. */
    void (*on_power_cap_set)(void *user, bool off, double cap_w);
    /* An `ask` request. response_topic/correlation are from the MQTT v5 properties (NULL/0 when
     * absent, e.g. under 3.1.1); copy them to answer later with tel_mqtt_respond. */
    void (*on_ask)(void *user, const char *payload, size_t len, const char *response_topic,
                   const void *correlation, size_t correlation_len);
    /* Connection state changes, with a human-readable reason (for the log). */
    void (*on_state)(void *user, enum tel_mqtt_conn_state state, const char *detail);
    void *user;
    /* A message on foreign_topic (any payload, untrusted: the callee parses it). Last, so the
     * callers that list the callbacks in order need not change. */
    void (*on_foreign)(void *user, const char *topic, const void *payload, size_t len,
                       bool retained);
};

void tel_mqtt_params_defaults(struct tel_mqtt_params *p);

/* Validates params, copies every string, reads the acknowledged cursor from the store (store may
 * be NULL: live publishing only, nothing is replayed) and schedules the first connect at once.
 * Connecting happens in tel_mqtt_handle_misc. -EINVAL with err naming the bad field. */
int tel_mqtt_new(const struct tel_mqtt_params *params, const struct tel_mqtt_callbacks *cb,
                 struct tel_store *store, struct tel_mqtt **ret, char *err, size_t err_len);
/* Publishes `offline` (retained) when connected, writes the cursor, disconnects cleanly, giving
 * the socket up to timeout_ms to drain (driven internally with poll on that one socket). */
void tel_mqtt_close(struct tel_mqtt *m, int timeout_ms);
/* Frees without any network I/O (after close, or to abandon). NULL is fine. */
void tel_mqtt_free(struct tel_mqtt *m);

struct tel_mqtt_poll {
    int fd;               /* -1 when there is no socket */
    bool want_write;      /* watch for EPOLLOUT */
    uint64_t deadline_ns; /* CLOCK_MONOTONIC time by which tel_mqtt_handle_misc must run */
    uint64_t generation;  /* changes whenever a new socket is created */
};
void tel_mqtt_poll_info(struct tel_mqtt *m, uint64_t now_ns, struct tel_mqtt_poll *ret);
/* Socket readable / writable / timer or any wake-up. They return 0; a lost connection is not an
 * error (the reconnect timer is armed and on_state told). */
int tel_mqtt_handle_read(struct tel_mqtt *m, uint64_t now_ns);
int tel_mqtt_handle_write(struct tel_mqtt *m, uint64_t now_ns);
int tel_mqtt_handle_misc(struct tel_mqtt *m, uint64_t now_ns);

enum tel_mqtt_conn_state tel_mqtt_state(const struct tel_mqtt *m);
/* 5 or 4 (3.1.1) for the current or last connection. */
int tel_mqtt_protocol_version(const struct tel_mqtt *m);

/* A sample already appended to the store (its seq assigned). On `telemetry` at once when
 * connected, nothing older is waiting and the in-flight window has room; otherwise it is left to
 * the replay (on telemetry/replay), which reads it from the store. When connected it also becomes
 * the `state`, unless a newer one already went out. Never fails for being offline. */
int tel_mqtt_publish_sample(struct tel_mqtt *m, const struct tel_sample *s);
/* Sessions and events: QoS 1, not retained; kept in a bounded queue while offline (oldest
 * dropped first). */
int tel_mqtt_publish_session(struct tel_mqtt *m, const struct tel_session *s);
int tel_mqtt_publish_event(struct tel_mqtt *m, const char *kind, const char *detail);
/* Retained state, re-published on every connect and after Home Assistant's birth message.
 * policy NULL or "": there is no governor to command; governor/available says offline (the
 * select and number entities turn unavailable) and no policy is published. cap: off or cap_w. */
int tel_mqtt_publish_governor_state(struct tel_mqtt *m, const char *policy);
int tel_mqtt_publish_power_cap_state(struct tel_mqtt *m, bool off, double cap_w);

/* The loaded model, for the retained `model` topic; strings may be NULL, numbers 0 = unknown. */
struct tel_model_info {
    const char *name; /* shown as the entity's state; NULL: no model loaded */
    const char *file;
    const char *arch;
    const char *quant;
    uint64_t n_params;
    uint64_t size_bytes;
    uint32_t context_length;
};
int tel_mqtt_publish_model(struct tel_mqtt *m, const struct tel_model_info *model);
/* Answers an `ask`: to response_topic with the correlation data (MQTT v5); with no response
 * topic, to <prefix>/<device_id>/ask/response. -ENOTCONN when offline (answers are not kept). */
int tel_mqtt_respond(struct tel_mqtt *m, const char *response_topic, const void *correlation,
                     size_t correlation_len, const char *payload, size_t len);

struct tel_mqtt_stats {
    uint64_t connects;          /* CONNACKs accepted */
    uint64_t disconnects;       /* connections lost or refused */
    uint64_t published_live;    /* samples published as they came */
    uint64_t published_replay;  /* samples published from the store after an outage */
    uint64_t published_history; /* samples re-sent for replay/req */
    uint64_t acked;             /* telemetry PUBACKs */
    uint64_t acked_seq;         /* every sample <= this was acknowledged */
    uint64_t commands_ok;
    uint64_t commands_rejected;
    uint64_t discovery_published;   /* discovery rounds */
    uint64_t states_published;      /* `state` messages */
    uint64_t birth_republished;     /* states re-sent after Home Assistant's birth message */
    uint64_t stale_configs_cleared; /* empty retained messages for stale entities and topics */
    uint64_t queue_dropped;         /* sessions/events dropped while offline */
    uint32_t inflight;
    uint32_t reconnect_attempt; /* consecutive failed attempts (backoff exponent) */
    uint64_t next_connect_ns;   /* when DISCONNECTED */
};
void tel_mqtt_get_stats(const struct tel_mqtt *m, struct tel_mqtt_stats *ret);

/* ---- pieces exposed for tests, the fuzzer and the agent's HTTP side ---- */

/* Validation of command payloads (exact; no trimming, no case folding, at most
 * TEL_MQTT_CMD_MAX_BYTES, valid UTF-8, no NUL). 0, or -EINVAL with err saying why. */
int tel_command_parse_policy(const struct tel_mqtt_commands *c, const void *payload, size_t len,
                             char *ret_policy, size_t cap, char *err, size_t err_len);
/* A plain decimal or decimal-point number of watts ("12", "12.5"; no exponent, sign, hex, inf,
 * nan, spaces) in range, or "off" when allowed. */
int tel_command_parse_power_cap(const struct tel_mqtt_commands *c, const void *payload, size_t len,
                                bool *ret_off, double *ret_cap_w, char *err, size_t err_len);
/* A replay/req payload: a decimal seq (1..2^63). */
int tel_command_parse_seq(const void *payload, size_t len, uint64_t *ret_seq, char *err,
                          size_t err_len);

/* JSON payloads (malloc'd, NUL-terminated; NULL on allocation failure). NaN becomes null. */
char *tel_payload_sample_json(const struct tel_sample *s);
char *tel_payload_session_json(const struct tel_session *s);
char *tel_payload_event_json(uint64_t ts_ns, const char *kind, const char *detail);
/* The `state` body: the sample's fields with energy_j as the total, policy null when empty, a
 * phase outside idle/prefill/decode as idle, plus tokens_per_s and source. */
char *tel_payload_state_json(const struct tel_sample *s, double energy_j);
/* The same with the wall total to publish (the sample's own in tel_payload_state_json). */
char *tel_payload_state_wall_json(const struct tel_sample *s, double energy_j, double wall_j);
char *tel_payload_model_json(const struct tel_model_info *model);

/* Home Assistant discovery, in p->discovery_mode: the n-th config message (topic and retained
 * JSON payload, both malloc'd); -ENOENT past the last one (device mode has one message). base is
 * "<prefix>/<device_id>". */
int tel_hass_config(const struct tel_mqtt_params *p, const char *base, unsigned idx,
                    char **ret_topic, char **ret_payload);
/* The n-th config topic that discovery under (discovery_prefix, device_id, mode) uses, malloc'd;
 * -ENOENT past the last one. For removing stale entities with empty retained messages. */
int tel_hass_config_topic(const char *discovery_prefix, const char *device_id,
                          enum tel_mqtt_discovery_mode mode, unsigned idx, char **ret_topic);

#endif
