/* The privileged helper's entry point (privsep_helper.c); privsep.c forks it. */
#ifndef AGENT_PRIVSEP_HELPER_H
#define AGENT_PRIVSEP_HELPER_H

#include "governor/backend.h"

struct privsep_helper_params {
    const char *sysfs_root;     /* [governor] sysfs_root; NULL/"" = "/" */
    const char *telemetry_root; /* [telemetry] sysfs_root (RAPL); NULL/"" = "/" */
    const char *saved_path;     /* the saved-settings file */
    enum gov_backend_impl impl;
};

/* Serves requests on fd until the agent's end closes, restores the saved settings if a file is
 * left, and exits the process (never returns). */
void privsep_helper_run(int fd, const struct privsep_helper_params *p) __attribute__((noreturn));

#endif
