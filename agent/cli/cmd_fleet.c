/* `ember fleet status`: subscribes to a (central) MQTT broker for a few seconds and prints one line
 * per appliance found under <prefix>/+/: online, policy, power, J/token, temperature, model, last
 * seen. Retained topics (status, governor/state, model, session/last, bridge/state) answer at
 * once; the live state arrives with each appliance's next sample. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "fleet_view.h"
#include "log.h"

static void fleet_usage(FILE *out)
{
    fprintf(out,
            "usage: ember fleet status [--broker URL] [--json] [--wait SECONDS] [--prefix P]\n"
            "                          [--cafile FILE] [--cert FILE --key FILE] [--config FILE]\n"
            "\n"
            "Subscribes to the broker for a moment and prints one line per appliance that\n"
            "publishes under <prefix>/<id>/: status, governor policy, power, joules per token of\n"
            "the last request, temperature, model and when its last sample was taken. Point it\n"
            "at the fleet's central broker (deploy/mosquitto/, docs/deploy.md).\n"
            "\n"
            "  --broker URL    mqtt://[user[:password]@]host[:port] or mqtts://... (TLS, port\n"
            "                  8883 by default); default: the [mqtt] section of the configuration\n"
            "  --json          a JSON array, one object per appliance, instead of the table\n"
            "  --wait SECONDS  how long to listen (default 2; at least one sample interval)\n"
            "  --prefix P      topic prefix (default: [mqtt] prefix, 'ember')\n"
            "  --cafile FILE   CA certificate for mqtts:// (default: [mqtt] tls_ca, else the\n"
            "                  system's CAs in /etc/ssl/certs)\n"
            "  --cert, --key   client certificate and key, where the broker asks for one\n"
            "  --config FILE   configuration (default " EMBER_DEFAULT_CONFIG ")\n"
            "\n"
            "STATUS is online, offline (the agent said so), uplink-down (the appliance's\n"
            "broker bridge lost the central broker and no live sample came) or unknown.\n"
            "Values not known show as '-' (null in JSON). MQTT_PASSWORD in the environment is\n"
            "used when the URL has a user but no password.\n"
            "Exit codes: 0 ok, 1 the broker could not be reached or refused us, 2 usage error.\n");
}

struct broker {
    bool tls;
    char host[256];
    int port;
    char user[128];
    char password[256];
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies [s, s+n) into dst, decoding %XX (user names and passwords in URLs). */
static int url_decode(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || k + 1 >= cap)
            return -EINVAL;
        dst[k++] = c;
    }
    dst[k] = '\0';
    return 0;
}

/* mqtt://[user[:password]@]host[:port] and mqtts://...; host may be [v6]. */
static int parse_broker_url(const char *url, struct broker *b, char *why, size_t why_len)
{
    const char *rest;
    if (strncmp(url, "mqtt://", 7) == 0) {
        b->tls = false;
        rest = url + 7;
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        b->tls = true;
        rest = url + 8;
    } else {
        snprintf(why, why_len, "expected mqtt:// or mqtts://");
        return -EINVAL;
    }
    b->port = b->tls ? 8883 : 1883;
    b->user[0] = b->password[0] = '\0';
    const char *at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t ulen = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
        if (ulen == 0 || url_decode(b->user, sizeof(b->user), rest, ulen) < 0 ||
            (colon && url_decode(b->password, sizeof(b->password), colon + 1,
                                 (size_t)(at - colon - 1)) < 0)) {
            snprintf(why, why_len, "bad user name or password before '@'");
            return -EINVAL;
        }
        rest = at + 1;
    }
    const char *host = rest, *host_end, *port = NULL;
    if (*host == '[') {
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(why, why_len, "unclosed '[' in the host");
            return -EINVAL;
        }
        host++;
        if (host_end[1] == ':')
            port = host_end + 2;
        else if (host_end[1] != '\0' && strcmp(host_end + 1, "/") != 0) {
            snprintf(why, why_len, "unexpected '%s' after the host", host_end + 1);
            return -EINVAL;
        }
    } else {
        host_end = host + strcspn(host, ":/");
        if (*host_end == ':')
            port = host_end + 1;
        else if (*host_end == '/' && host_end[1] != '\0') {
            snprintf(why, why_len, "a path ('%s') means nothing here", host_end);
            return -EINVAL;
        }
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(b->host)) {
        snprintf(why, why_len, "no host");
        return -EINVAL;
    }
    memcpy(b->host, host, hlen);
    b->host[hlen] = '\0';
    if (port) {
        char *end;
        errno = 0;
        long p = strtol(port, &end, 10);
        if (errno || end == port || (*end && strcmp(end, "/") != 0) || p < 1 || p > 65535) {
            snprintf(why, why_len, "port '%s': expected 1..65535", port);
            return -EINVAL;
        }
        b->port = (int)p;
    }
    return 0;
}

struct session {
    struct fleet_view view;
    const char *prefix;
    int connack; /* -1 waiting, else the CONNACK reason */
    bool subscribed;
    size_t ignored;
};

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)flags;
    (void)props;
    struct session *s = obj;
    s->connack = rc;
    if (rc != 0)
        return;
    static const char *const topics[] = {"status", "bridge/state", "governor/state",
                                         "state",  "session/last", "model"};
    char *subs[sizeof(topics) / sizeof(topics[0])];
    char buf[sizeof(topics) / sizeof(topics[0])][160];
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        snprintf(buf[i], sizeof(buf[i]), "%s/+/%s", s->prefix, topics[i]);
        subs[i] = buf[i];
    }
    if (mosquitto_subscribe_multiple(mosq, NULL, (int)(sizeof(subs) / sizeof(subs[0])), subs, 0, 0,
                                     NULL) == MOSQ_ERR_SUCCESS)
        s->subscribed = true;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    struct session *s = obj;
    if (fleet_view_ingest(&s->view, msg->topic, msg->payload, (size_t)msg->payloadlen,
                          msg->retain) < 0)
        s->ignored++;
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fleet_status(int argc, char **argv)
{
    static const struct option options[] = {
        {"broker", required_argument, NULL, 'b'}, {"json", no_argument, NULL, 'j'},
        {"wait", required_argument, NULL, 'w'},   {"prefix", required_argument, NULL, 'p'},
        {"cafile", required_argument, NULL, 'a'}, {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'k'},    {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *prefix = NULL, *cafile = NULL, *cert = NULL, *key = NULL;
    const char *config = NULL;
    bool json = false;
    double wait_s = 2;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":b:jw:p:a:C:k:c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            url = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'w': {
            char *end;
            wait_s = strtod(optarg, &end);
            if (end == optarg || *end || !(wait_s >= 0.1 && wait_s <= 3600))
                return cli_usage_error("--wait '%s': expected seconds, 0.1..3600", optarg);
            break;
        }
        case 'p':
            prefix = optarg;
            break;
        case 'a':
            cafile = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            fleet_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!cert != !key)
        return cli_usage_error("--cert and --key go together");

    struct agent_config cfg;
    if (agent_config_load_for_cli(config, &cfg) != 0)
        return EMBER_EXIT_USAGE;
    struct broker b = {0};
    if (url) {
        char why[128];
        if (parse_broker_url(url, &b, why, sizeof(why)) < 0)
            return cli_usage_error("--broker '%s': %s", url, why);
    } else {
        b.tls = cfg.mqtt.tls_ca[0] != '\0';
        snprintf(b.host, sizeof(b.host), "%s", cfg.mqtt.host);
        b.port = cfg.mqtt.port;
        snprintf(b.user, sizeof(b.user), "%s", cfg.mqtt.username);
        snprintf(b.password, sizeof(b.password), "%s", cfg.mqtt.password);
    }
    if (b.user[0] && !b.password[0] && getenv("MQTT_PASSWORD"))
        snprintf(b.password, sizeof(b.password), "%s", getenv("MQTT_PASSWORD"));
    if (!prefix)
        prefix = cfg.mqtt.prefix;
    if (!prefix[0] || strpbrk(prefix, "+#"))
        return cli_usage_error("--prefix '%s': a topic prefix without wildcards", prefix);
    if (!cafile && cfg.mqtt.tls_ca[0])
        cafile = cfg.mqtt.tls_ca;
    if (!cert && cfg.mqtt.tls_cert[0]) {
        cert = cfg.mqtt.tls_cert;
        key = cfg.mqtt.tls_key;
    }
    if (cafile && !b.tls && url)
        return cli_usage_error("--cafile needs an mqtts:// broker");

    /* libmosquitto only says "invalid arguments" for a file it cannot read: name it here. */
    const char *files[][2] = {{"--cafile", cafile}, {"--cert", cert}, {"--key", key}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i][1] && access(files[i][1], R_OK) != 0) {
            log_err("%s %s: %s", files[i][0], files[i][1], strerror(errno));
            return EMBER_EXIT_USAGE;
        }
    }

    struct session s = {.prefix = prefix, .connack = -1};
    fleet_view_init(&s.view, prefix);
    mosquitto_lib_init();
    int rc = EMBER_EXIT_FAILURE;
    struct mosquitto *mosq = mosquitto_new(NULL, true, &s);
    if (!mosq) {
        log_err("out of memory");
        goto out;
    }
    int mrc = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (mrc == MOSQ_ERR_SUCCESS && b.user[0])
        mrc = mosquitto_username_pw_set(mosq, b.user, b.password[0] ? b.password : NULL);
    if (mrc == MOSQ_ERR_SUCCESS && b.tls)
        mrc = mosquitto_tls_set(mosq, cafile, cafile ? NULL : "/etc/ssl/certs", cert, key, NULL);
    if (mrc != MOSQ_ERR_SUCCESS) {
        log_err("MQTT client setup: %s", mosquitto_strerror(mrc));
        goto out;
    }
    mosquitto_connect_v5_callback_set(mosq, on_connect);
    mosquitto_message_v5_callback_set(mosq, on_message);
    const char *scheme = b.tls ? "mqtts" : "mqtt";
    mrc = mosquitto_connect(mosq, b.host, b.port, 30);
    if (mrc != MOSQ_ERR_SUCCESS) {
        log_err("%s://%s:%d: %s", scheme, b.host, b.port,
                mrc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(mrc));
        agent_log_hint("is the broker running, and is this its address? (--broker URL)");
        goto out;
    }
    double t0 = now_mono(), deadline = t0 + wait_s;
    while (now_mono() < deadline) {
        mrc = mosquitto_loop(mosq, 100, 1);
        if (s.connack > 0) {
            log_err("%s://%s:%d refused us: %s", scheme, b.host, b.port,
                    mosquitto_reason_string(s.connack));
            agent_log_hint("check the user name and password (--broker mqtt://user:password@host)");
            goto out;
        }
        if (mrc != MOSQ_ERR_SUCCESS) {
            log_err("%s://%s:%d: %s", scheme, b.host, b.port,
                    mrc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(mrc));
            goto out;
        }
        /* No CONNACK at all within the wait (a TLS handshake that hangs, a silent peer). */
        if (s.connack < 0 && now_mono() > t0 + fmax(wait_s, 5))
            break;
    }
    if (s.connack != 0) {
        log_err("%s://%s:%d: no answer to CONNECT within %.0f s", scheme, b.host, b.port,
                fmax(wait_s, 5));
        goto out;
    }
    if (!s.subscribed) {
        log_err("%s://%s:%d: could not subscribe", scheme, b.host, b.port);
        goto out;
    }
    double now = now_wall();
    if (json) {
        char *text = fleet_view_json(&s.view, now);
        if (!text) {
            log_err("out of memory");
            goto out;
        }
        puts(text);
        free(text);
    } else if (s.view.n == 0) {
        printf("no appliance publishes under %s/ on %s://%s:%d (listened %.1f s)\n", prefix, scheme,
               b.host, b.port, wait_s);
    } else {
        fleet_view_print(&s.view, now, stdout);
    }
    if (s.ignored)
        log_info("%zu message%s under %s/ did not look like an appliance's and were ignored",
                 s.ignored, s.ignored == 1 ? "" : "s", prefix);
    rc = EMBER_EXIT_OK;
out:
    if (mosq) {
        mosquitto_disconnect(mosq);
        mosquitto_destroy(mosq);
    }
    mosquitto_lib_cleanup();
    fleet_view_free(&s.view);
    return rc;
}

int cmd_fleet(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("say what to do: status");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fleet_usage(stdout);
        return EMBER_EXIT_OK;
    }
    if (strcmp(argv[1], "status") != 0)
        return cli_usage_error("unknown fleet command '%s' (status)", argv[1]);
    agent_log_set_command("fleet status");
    return fleet_status(argc - 1, argv + 1);
}
