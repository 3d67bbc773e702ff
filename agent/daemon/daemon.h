/* `ember agent`: the resident daemon. It joins the engine worker, the governor, telemetry (power,
 * SQLite, MQTT) and the HTTP API on one epoll loop, talks to systemd (READY, STATUS, WATCHDOG,
 * STOPPING), reloads its configuration on SIGHUP and, on SIGTERM/SIGINT, drains requests, flushes
 * telemetry, publishes `offline` and restores the CPU frequency settings. */
#ifndef AGENT_DAEMON_H
#define AGENT_DAEMON_H

#include "config.h"

/* Runs until a termination signal; returns an exit code (enum ember_exit). */
int agent_daemon_run(const struct agent_config *cfg, const char *config_path);

#endif
