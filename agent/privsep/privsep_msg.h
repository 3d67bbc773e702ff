/* The message set between the agent and its privileged helper (agent/privsep). Every message is
 * one fixed-size record over a SOCK_SEQPACKET socketpair, so a record is never split or joined;
 * the helper refuses a record of any other size, a wrong magic, an unknown op, a string that is
 * not NUL-terminated inside its field, and answers every request with exactly one reply. The
 * helper never parses text the agent made beyond these checks: a path is matched against a fixed
 * whitelist (privsep_path.c) component by component, a value is a short word of [A-Za-z0-9_-].
 *
 *   op                      request fields used       reply fields set
 *   PRIVSEP_OP_WRITE        path, value               result
 *   PRIVSEP_OP_READ_COUNTER path                      result, counter
 *   PRIVSEP_OP_CPUPOWER_*   cpu, khz / value          result
 *   PRIVSEP_OP_SAVE         -                         result, msg
 *   PRIVSEP_OP_RESTORE      -                         result, writes, msg
 *   PRIVSEP_OP_CRASH_RESTORE -                        result, writes, pid, msg
 *   PRIVSEP_OP_SAVED_EXISTS -                         result (1, 0 or -errno)
 *
 * result is 0 (or a count) or -errno; msg, made by the helper, says what went wrong. */
#ifndef AGENT_PRIVSEP_MSG_H
#define AGENT_PRIVSEP_MSG_H

#include <stdint.h>

#define PRIVSEP_MAGIC     0x454d4250u /* "EMBP" */
#define PRIVSEP_PATH_LEN  256
#define PRIVSEP_VALUE_LEN 32
#define PRIVSEP_MSG_LEN   256

enum privsep_op {
    PRIVSEP_OP_WRITE = 1,         /* write value to a whitelisted attribute */
    PRIVSEP_OP_READ_COUNTER,      /* read a whitelisted RAPL energy_uj counter */
    PRIVSEP_OP_CPUPOWER_GOVERNOR, /* cpufreq_modify_policy_governor(cpu, value) */
    PRIVSEP_OP_CPUPOWER_MIN,      /* cpufreq_modify_policy_min(cpu, khz) */
    PRIVSEP_OP_CPUPOWER_MAX,      /* cpufreq_modify_policy_max(cpu, khz) */
    PRIVSEP_OP_CPUPOWER_SPEED,    /* cpufreq_set_frequency(cpu, khz) */
    PRIVSEP_OP_SAVE,              /* capture the current settings into the saved file */
    PRIVSEP_OP_RESTORE,           /* restore the saved file and remove it */
    PRIVSEP_OP_CRASH_RESTORE,     /* at start: restore a file a crashed run left */
    PRIVSEP_OP_SAVED_EXISTS,      /* whether the saved file exists */
};

struct privsep_request {
    uint32_t magic;
    uint32_t op;
    uint32_t cpu;
    uint32_t khz;
    char value[PRIVSEP_VALUE_LEN]; /* NUL-terminated */
    char path[PRIVSEP_PATH_LEN];   /* NUL-terminated, absolute, sysfs_root included */
};

struct privsep_reply {
    uint32_t magic;
    uint32_t op; /* the request's op, 0 when the request was refused before it was known */
    int32_t result;
    uint32_t writes;
    int32_t pid;
    uint32_t reserved;
    uint64_t counter;
    char msg[PRIVSEP_MSG_LEN]; /* NUL-terminated */
};

#endif
