/* The engine's thread lever on the daemon side: turns the governor's per-phase choice (the tick
 * result's engine_threads and engine_cpus, 0 = leave the engine as configured) into what the
 * engine worker should run, within what the user allows: [engine] thread_lever off means the
 * configured count always; [engine] threads is the ceiling; CPUs this process may not use are
 * dropped (a governor cluster the cgroup or the machine lacks). It says when something changed
 * and writes the log line; the caller hands the change to the worker, which applies it between
 * tokens. Nothing needs restoring on exit: the setting lives inside the engine. Loop thread. */
#ifndef AGENT_DAEMON_ENGINE_LEVER_H
#define AGENT_DAEMON_ENGINE_LEVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct engine_lever {
    uint32_t ceiling; /* the engine's threads: [engine] threads, or one per online CPU */
    uint64_t allowed; /* CPUs this process may run on (sched_getaffinity) */
    uint32_t threads; /* handed to the worker last: 0 = all (the ceiling) */
    uint64_t cpus;    /* 0 = unpinned */
    uint64_t warned;  /* last governor mask logged as outside the allowed CPUs */
};

/* cfg_threads: [engine] threads (0 = one per online CPU). */
void engine_lever_init(struct engine_lever *l, int cfg_threads);

/* The governor asks gov_threads on gov_cpus in phase (a name for the log). True when the worker
 * must change: *ret_threads and *ret_cpus say to what (0 = all / unpinned), msg the log line
 * ("engine: 2 → 1 threads on cpus 4-7 (governor: decode)"). warn gets a line (else "") when the
 * governor's CPUs were cut to the allowed set, once per distinct mask. */
bool engine_lever_decide(struct engine_lever *l, bool enabled, unsigned gov_threads,
                         uint64_t gov_cpus, const char *phase, uint32_t *ret_threads,
                         uint64_t *ret_cpus, char *msg, size_t msg_len, char *warn,
                         size_t warn_len);

/* "0-3,6" for a mask, "any cpu" for 0. */
void engine_lever_format_cpus(uint64_t mask, char *buf, size_t cap);

#endif
