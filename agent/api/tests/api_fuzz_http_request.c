/* Fuzz harness for the HTTP request path: the input is the raw bytes a client sends (request
 * line, headers and body as one stream) to a real agent_http server on a loopback port in this
 * process, so libmicrohttpd's parser, the connection guard, the Host/Origin/Content-Type checks,
 * the routes, the body limits and the JSON request parsers all see it. No model is loaded
 * (completions are parsed, then answered 503); the governor hooks give fixed answers, as the
 * target is the HTTP path, not the governor. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int gov_get(void *user, char *buf, size_t len)
{
    (void)user;
    snprintf(buf, len, "{\"policy\":\"balanced\",\"power_cap_w\":0}");
    return 0;
}

static int gov_set(void *user, const char *policy, double cap, char *err, size_t err_len)
{
    (void)user;
    (void)cap;
    if (policy[0] && strcmp(policy, "balanced") != 0) {
        snprintf(err, err_len, "unknown policy");
        return -22;
    }
    return 0;
}

static struct agent_http *server;
static uint16_t port;

static void start(void)
{
    signal(SIGPIPE, SIG_IGN);
    agent_log_set_level(AGENT_LOG_ERR);
    static struct agent_config cfg;
    agent_config_defaults(&cfg);
    cfg.api.max_body_bytes = 8192;
    static const struct agent_http_hooks hooks = {.governor_get = gov_get, .governor_set = gov_set};
    struct agent_http_params p;
    agent_http_params_defaults(&p);
    p.port = 0;
    p.header_timeout_ms = 2000;
    char err[256];
    if (agent_http_new(&cfg, NULL, &hooks, &p, &server, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_http_request: %s\n", err);
        abort();
    }
    agent_http_set_no_model(server);
    port = agent_http_port(server);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server)
        start();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    /* until the server answers and closes (or gives up on an incomplete request) */
    while (poll(&pf, 1, 3000) > 0 && recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    close(fd);
    return 0;
}
