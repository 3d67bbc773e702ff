/* Privilege separation for `ember agent`, in the manner of OpenNTPD: at start, before anything
 * untrusted is parsed or a socket is opened, the agent forks a small helper that stays root
 * (privsep_helper.c) and then drops to an unprivileged user (privsep_drop). The helper does
 * exactly the few things that need root -- writes of whitelisted cpufreq/devfreq attributes,
 * libcpupower's writing calls, reads of RAPL energy_uj, the saved-settings file and its
 * restore -- answering fixed-size messages (privsep_msg.h) over a socketpair. The agent reaches
 * it through the governor's backend I/O (governor/sysio.h) and telemetry's counter reader, so
 * neither module knows. When the agent dies, the helper restores the saved settings and exits.
 * The client calls are serialised by a lock (the loop and the worker may both read counters). */
#ifndef AGENT_PRIVSEP_H
#define AGENT_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "governor/backend.h"
#include "governor/sysio.h"
#include "privsep_msg.h"

struct privsep_params {
    const char *sysfs_root;     /* [governor] sysfs_root; NULL/"" = "/" */
    const char *telemetry_root; /* [telemetry] sysfs_root; NULL/"" = "/" */
    const char *saved_path;     /* the saved-settings file (the helper's alone) */
    enum gov_backend_impl impl; /* the governor backend the helper restores through */
};

struct privsep;

/* Forks the helper. Call before any thread starts (the helper is a process, and fork copies only
 * the calling thread). */
int privsep_start(const struct privsep_params *p, struct privsep **ret, char *err, size_t err_len);
/* Closes the agent's end (the helper restores whatever is still saved, then exits), waits for
 * the helper and frees. Returns the helper's exit status (0 fine; 128 + N killed by signal N),
 * or -errno. NULL is fine. */
int privsep_stop(struct privsep *ps);

pid_t privsep_helper_pid(const struct privsep *ps);
/* The agent's end of the socketpair, for the event loop to watch for the helper's hang-up
 * (EPOLLRDHUP/EPOLLHUP: the helper died). Only for watching: requests go through the calls. */
int privsep_fd(const struct privsep *ps);
/* The helper hung up: it is exiting (it closes its socket only on its way out, and the kernel
 * closes it when the process dies), so this waits for it and says how it ended, e.g. "was
 * killed by signal 9" or "exited with status 0". From then on every request fails at once with
 * -EPIPE ("privileged helper: gone") and privsep_stop does not wait again. Returns the status
 * as privsep_stop does. */
int privsep_reap(struct privsep *ps, char *how, size_t how_len);
/* The governor's backend I/O through the helper (valid until privsep_stop). */
const struct gov_sysio *privsep_sysio(struct privsep *ps);
/* Telemetry's counter reader (tel_power_params.read_counter); ctx is the struct privsep. */
int privsep_read_counter(void *ctx, const char *path, uint64_t *ret);

/* Sends len raw bytes as one message and receives the reply: for tests that send what the agent
 * never would. -errno on a transport failure, else the reply's result. */
int privsep_exchange_raw(struct privsep *ps, const void *msg, size_t len,
                         struct privsep_reply *ret);

/* Becomes user (its uid, primary gid and no supplementary groups) for good: setgroups, setresgid,
 * setresuid, no capabilities left (checked with capget), PR_SET_NO_NEW_PRIVS. Only when running
 * as root; when already running as that user it only sets no_new_privs. err says why not. */
int privsep_drop(const char *user, char *err, size_t err_len);

#endif
