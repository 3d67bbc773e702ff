/* The real broker and a recording subscriber for the MQTT tests (see telmqtt_util.h). The broker
 * child gets PR_SET_PDEATHSIG so it dies with the test even on a crash, and an atexit handler
 * removes its temporary directory. */
#include "telmqtt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mqtt_protocol.h>

#define MOSQUITTO_BIN "/usr/sbin/mosquitto"

static struct tbroker *registered[4];

static void cleanup_all(void)
{
    for (int i = 0; i < 4; i++)
        if (registered[i])
            tb_cleanup(registered[i]);
}

int tb_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int launch(struct tbroker *b)
{
    char log[300];
    snprintf(log, sizeof(log), "%s/mosquitto.out", b->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(MOSQUITTO_BIN, "mosquitto", "-c", b->conf, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    for (int i = 0; i < 500; i++) {
        if (port_open(b->port))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            b->pid = 0;
            fprintf(stderr, "mosquitto exited at start; see %s\n", log);
            tb_sh("cat %s >&2", log);
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "mosquitto did not open port %d\n", b->port);
    return -1;
}

int tb_start(struct tbroker *b, enum tb_mode mode)
{
    memset(b, 0, sizeof(*b));
    b->mode = mode;
    if (access(MOSQUITTO_BIN, X_OK) != 0) {
        fprintf(stderr, "skip: %s not installed\n", MOSQUITTO_BIN);
        return 77;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(b->dir, sizeof(b->dir), "%s/telmqtt.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(b->dir)) {
        perror("mkdtemp");
        return -1;
    }
    /* mosquitto started as root switches to its own user: it must be able to read the files. */
    chmod(b->dir, 0755);
    for (int i = 0; i < 4; i++)
        if (!registered[i]) {
            registered[i] = b;
            break;
        }
    static int registered_atexit;
    if (!registered_atexit++)
        atexit(cleanup_all);

    b->port = free_port();
    snprintf(b->conf, sizeof(b->conf), "%s/mosquitto.conf", b->dir);
    FILE *f = fopen(b->conf, "w");
    if (!f || b->port <= 0)
        return -1;
    fprintf(f, "per_listener_settings false\npersistence false\nlog_dest stderr\n"
               "log_type error\nlog_type warning\nlog_type notice\n");
    if (getuid() == 0)
        fprintf(f, "user root\n");
    fprintf(f, "listener %d 127.0.0.1\n", b->port);
    if (mode == TB_PASSWORD) {
        fprintf(f, "allow_anonymous false\npassword_file %s/passwd\n", b->dir);
        if (tb_sh("mosquitto_passwd -b -c %s/passwd ember s3cret-pw >/dev/null 2>&1 && "
                  "chmod 644 %s/passwd",
                  b->dir, b->dir) != 0) {
            fprintf(stderr, "mosquitto_passwd failed\n");
            fclose(f);
            return -1;
        }
    } else {
        fprintf(f, "allow_anonymous true\n");
    }
    if (mode == TB_TLS) {
        if (tb_sh("sh %s/telemetry/tests/telmqtt_certs.sh %s", EMBER_SOURCE_DIR, b->dir) != 0) {
            fprintf(stderr, "certificate generation with openssl failed\n");
            fclose(f);
            return -1;
        }
        fprintf(f,
                "cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
                "require_certificate true\n",
                b->dir, b->dir, b->dir);
        snprintf(b->ca, sizeof(b->ca), "%s/ca.crt", b->dir);
        snprintf(b->client_cert, sizeof(b->client_cert), "%s/client.crt", b->dir);
        snprintf(b->client_key, sizeof(b->client_key), "%s/client.key", b->dir);
    }
    fclose(f);
    return launch(b);
}

int tb_restart(struct tbroker *b)
{
    return launch(b);
}

static void signal_wait(struct tbroker *b, int sig)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, sig);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

void tb_stop(struct tbroker *b)
{
    signal_wait(b, SIGTERM);
}

void tb_kill9(struct tbroker *b)
{
    signal_wait(b, SIGKILL);
}

void tb_cleanup(struct tbroker *b)
{
    tb_kill9(b);
    if (b->dir[0] && !getenv("TELMQTT_KEEP"))
        tb_sh("rm -rf '%s'", b->dir);
    b->dir[0] = '\0';
    for (int i = 0; i < 4; i++)
        if (registered[i] == b)
            registered[i] = NULL;
}

/* ---- subscriber ---- */

static void sub_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                           const mosquitto_property *props)
{
    (void)flags;
    (void)props;
    struct tsub *s = obj;
    if (rc != 0)
        return;
    s->connected = true;
    char *subs[2] = {s->filter[0], s->filter[1]};
    mosquitto_subscribe_multiple(mosq, NULL, 2, subs, 1, 0, NULL);
}

static void sub_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *qos,
                             const mosquitto_property *props)
{
    (void)mosq, (void)mid, (void)n, (void)qos, (void)props;
    ((struct tsub *)obj)->subscribed = true;
}

static void sub_on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                              const mosquitto_property *props)
{
    (void)mosq, (void)rc, (void)props;
    struct tsub *s = obj;
    s->connected = s->subscribed = false;
}

static void sub_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                           const mosquitto_property *props)
{
    (void)mosq;
    struct tsub *s = obj;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->msgs = realloc(s->msgs, s->cap * sizeof(*s->msgs));
    }
    struct tmsg *m = &s->msgs[s->n++];
    memset(m, 0, sizeof(*m));
    m->topic = strdup(msg->topic);
    m->len = msg->payloadlen;
    m->payload = malloc((size_t)msg->payloadlen + 1);
    if (msg->payloadlen > 0)
        memcpy(m->payload, msg->payload, (size_t)msg->payloadlen);
    m->payload[msg->payloadlen] = '\0';
    m->retain = msg->retain;
    void *corr = NULL;
    uint16_t corr_len = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len,
                                       false)) {
        m->corr = malloc(corr_len + 1u);
        memcpy(m->corr, corr, corr_len);
        m->corr[corr_len] = '\0';
        free(corr);
    }
    char *name = NULL, *value = NULL;
    if (mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false)) {
        m->replay_prop = strcmp(name, "replay") == 0 && strcmp(value, "1") == 0;
        free(name);
        free(value);
    }
    /* The store-and-forward stream: live samples and the backlog re-sent after an outage
     * (telemetry/replay without the replay=1 property of replay/req history). */
    size_t tl = strlen(msg->topic);
    bool live = tl > 10 && strcmp(msg->topic + tl - 10, "/telemetry") == 0;
    bool backlog = tl > 17 && strcmp(msg->topic + tl - 17, "/telemetry/replay") == 0;
    if ((live || backlog) && !m->replay_prop) {
        cJSON *j = cJSON_Parse(m->payload);
        cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
        if (cJSON_IsNumber(seq)) {
            if (s->n_seqs == s->cap_seqs) {
                s->cap_seqs = s->cap_seqs ? s->cap_seqs * 2 : 1024;
                s->seqs = realloc(s->seqs, s->cap_seqs * sizeof(*s->seqs));
            }
            s->seqs[s->n_seqs++] = (uint64_t)seq->valuedouble;
        }
        cJSON_Delete(j);
    }
}

static int sub_connect(struct tsub *s, int timeout_ms)
{
    s->connected = s->subscribed = false;
    if (mosquitto_connect_async(s->mosq, s->host, s->port, 30) != MOSQ_ERR_SUCCESS)
        return -1;
    for (int waited = 0; waited < timeout_ms && !s->subscribed; waited += 10)
        tsub_run(s, 10);
    return s->subscribed ? 0 : -1;
}

int tsub_open(struct tsub *s, const struct tbroker *b, const char *user, const char *pass,
              int timeout_ms)
{
    memset(s, 0, sizeof(*s));
    mosquitto_lib_init();
    static int n_subs;
    char id[64];
    snprintf(id, sizeof(id), "telmqtt-sub-%d-%d", (int)getpid(), n_subs++);
    s->mosq = mosquitto_new(id, true, s);
    if (!s->mosq)
        return -1;
    mosquitto_int_option(s->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (user)
        mosquitto_username_pw_set(s->mosq, user, pass);
    if (b->mode == TB_TLS)
        mosquitto_tls_set(s->mosq, b->ca, NULL, b->client_cert, b->client_key, NULL);
    mosquitto_connect_v5_callback_set(s->mosq, sub_on_connect);
    mosquitto_subscribe_v5_callback_set(s->mosq, sub_on_subscribe);
    mosquitto_disconnect_v5_callback_set(s->mosq, sub_on_disconnect);
    mosquitto_message_v5_callback_set(s->mosq, sub_on_message);
    s->host = "127.0.0.1";
    s->port = b->port;
    snprintf(s->filter[0], sizeof(s->filter[0]), "ember/#");
    snprintf(s->filter[1], sizeof(s->filter[1]), "homeassistant/#");
    return sub_connect(s, timeout_ms);
}

int tsub_fd(struct tsub *s)
{
    return mosquitto_socket(s->mosq);
}

void tsub_io(struct tsub *s, bool readable, bool writable)
{
    if (readable && mosquitto_socket(s->mosq) >= 0)
        mosquitto_loop_read(s->mosq, 1);
    if (writable && mosquitto_socket(s->mosq) >= 0)
        mosquitto_loop_write(s->mosq, 1);
    if (mosquitto_socket(s->mosq) >= 0)
        mosquitto_loop_misc(s->mosq);
}

void tsub_run(struct tsub *s, int ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= ms)
            return;
        int fd = tsub_fd(s);
        if (fd < 0) {
            sleep_ms((int)(ms - el));
            return;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (mosquitto_want_write(s->mosq))
            p.events |= POLLOUT;
        poll(&p, 1, (int)(ms - el));
        tsub_io(s, p.revents & (POLLIN | POLLHUP | POLLERR), p.revents & POLLOUT);
    }
}

int tsub_reconnect(struct tsub *s, int timeout_ms)
{
    mosquitto_disconnect(s->mosq);
    return sub_connect(s, timeout_ms);
}

void tsub_close(struct tsub *s)
{
    if (s->mosq) {
        mosquitto_disconnect(s->mosq);
        mosquitto_destroy(s->mosq);
    }
    for (size_t i = 0; i < s->n; i++) {
        free(s->msgs[i].topic);
        free(s->msgs[i].payload);
        free(s->msgs[i].corr);
    }
    free(s->msgs);
    free(s->seqs);
    memset(s, 0, sizeof(*s));
    mosquitto_lib_cleanup();
}

const struct tmsg *tsub_last(const struct tsub *s, const char *topic)
{
    for (size_t i = s->n; i-- > 0;)
        if (strcmp(s->msgs[i].topic, topic) == 0)
            return &s->msgs[i];
    return NULL;
}

size_t tsub_count(const struct tsub *s, const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += strcmp(s->msgs[i].topic, topic) == 0;
    return n;
}

int tsub_publish(struct tsub *s, const char *topic, const void *payload, int len, bool retain)
{
    return mosquitto_publish(s->mosq, NULL, topic, len, payload, 1, retain);
}

int tsub_check_seqs(const struct tsub *s, uint64_t from, uint64_t to)
{
    uint64_t want = from;
    for (size_t i = 0; i < s->n_seqs; i++) {
        if (s->seqs[i] != want) {
            fprintf(stderr, "seq check: position %zu has seq %llu, expected %llu\n", i,
                    (unsigned long long)s->seqs[i], (unsigned long long)want);
            return -1;
        }
        want++;
    }
    if (want != to + 1) {
        fprintf(stderr, "seq check: got %llu..%llu, expected up to %llu\n",
                (unsigned long long)from, (unsigned long long)(want - 1), (unsigned long long)to);
        return -1;
    }
    return 0;
}
