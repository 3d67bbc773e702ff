/* Test helpers for the MQTT tests: a real mosquitto broker started on a random loopback port with
 * its own generated config in a temporary directory (plain, password file, or TLS with
 * certificates made by openssl at test time), killed with the test process even when the test
 * crashes; and a subscriber (libmosquitto, MQTT v5) that records what the broker delivers. */
#ifndef TELMQTT_UTIL_H
#define TELMQTT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mosquitto.h>

enum tb_mode { TB_PLAIN, TB_PASSWORD, TB_TLS };

struct tbroker {
    enum tb_mode mode;
    char dir[256];
    char conf[320];
    char ca[320], client_cert[320], client_key[320];
    int port;
    pid_t pid;
};

/* 0 on success; 77 (skip) when mosquitto is not installed; -1 on failure (message printed). */
int tb_start(struct tbroker *b, enum tb_mode mode);
int tb_restart(struct tbroker *b);  /* same port and config */
void tb_stop(struct tbroker *b);    /* SIGTERM, wait */
void tb_kill9(struct tbroker *b);   /* SIGKILL, wait */
void tb_cleanup(struct tbroker *b); /* stop and remove the directory */
/* Runs a shell command; returns its exit status. */
int tb_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct tmsg {
    char *topic;
    char *payload;
    int len;
    bool retain;
    char *corr;       /* correlation data (NUL-terminated copy) or NULL */
    bool replay_prop; /* user property replay=1 */
};

struct tsub {
    struct mosquitto *mosq;
    bool connected, subscribed;
    struct tmsg *msgs;
    size_t n, cap;
    /* telemetry and telemetry/replay seqs in arrival order, without the replay/req ones */
    uint64_t *seqs;
    size_t n_seqs, cap_seqs;
    const char *host;
    int port;
    char filter[2][128];
};

/* Connects (blocking up to timeout_ms) and subscribes to "<prefix>/#" and "homeassistant/#".
 * user/pass or TLS files may be NULL. Returns 0 when subscribed. */
int tsub_open(struct tsub *s, const struct tbroker *b, const char *user, const char *pass,
              int timeout_ms);
/* Drives the subscriber for up to ms (no publisher). */
void tsub_run(struct tsub *s, int ms);
int tsub_fd(struct tsub *s);
void tsub_io(struct tsub *s, bool readable, bool writable);
/* Reconnects after a broker restart; blocks until subscribed again or timeout. */
int tsub_reconnect(struct tsub *s, int timeout_ms);
void tsub_close(struct tsub *s);
/* The last message on topic (NULL when none). */
const struct tmsg *tsub_last(const struct tsub *s, const char *topic);
size_t tsub_count(const struct tsub *s, const char *topic);
/* Publishes from the subscriber's client (QoS 1). */
int tsub_publish(struct tsub *s, const char *topic, const void *payload, int len, bool retain);

/* Checks that seqs are exactly from..to once each in order; prints the first problem. */
int tsub_check_seqs(const struct tsub *s, uint64_t from, uint64_t to);

#endif
