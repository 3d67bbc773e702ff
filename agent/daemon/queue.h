/* The daemon's one mailbox: a bounded multi-producer, single-consumer FIFO of typed messages and
 * an eventfd the loop watches. Producers are the engine worker (phase changes, finished sessions,
 * finished MQTT asks) and HTTP connection threads (governor changes); the consumer is the loop
 * thread, the only thread that touches the governor, the telemetry store and the MQTT client.
 *
 * A message that wants an answer carries a completion. The loop completes it after carrying the
 * message out; closing the queue (the first step of shutdown) completes every one still queued
 * with -ESHUTDOWN and refuses new ones at once, so no thread ever waits on a loop that has
 * stopped. Messages nobody waits for are still accepted after closing, so the final drain still
 * stores the last sessions and publishes the last answers. */
#ifndef AGENT_DAEMON_QUEUE_H
#define AGENT_DAEMON_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "governor/governor.h"
#include "worker.h"

enum daemon_msg_kind {
    DAEMON_MSG_PHASE,        /* the engine's phase changed: tick the governor now */
    DAEMON_MSG_SESSION,      /* a request finished: store and publish its session */
    DAEMON_MSG_ASK_DONE,     /* an MQTT ask finished: publish its answer */
    DAEMON_MSG_GOVERNOR_SET, /* change the policy and/or power cap (request-reply) */
};

/* The answer to a request-reply message; the sender owns it (usually on its stack) and waits. */
struct daemon_completion {
    bool done; /* under the queue's lock */
    int rc;    /* 0 or -errno */
    char err[256];
};

struct ask_job;

struct daemon_msg {
    enum daemon_msg_kind kind;
    struct daemon_completion *completion; /* NULL: nobody waits for an answer */
    union {
        enum agent_phase phase;
        struct {
            struct agent_result result;
            uint64_t start_wall_ns;
        } session;
        struct ask_job *ask; /* the loop frees it once published */
        struct {
            char policy[GOV_NAME_MAX]; /* empty: unchanged */
            double power_cap_w;        /* NaN: unchanged; 0: off */
        } governor;
    } u;
};

struct daemon_queue;

/* capacity: how many messages may wait (at least 1). */
int daemon_queue_new(size_t capacity, struct daemon_queue **ret);
/* The caller drains the queue first (messages may own memory). */
void daemon_queue_free(struct daemon_queue *q);

/* Readable when messages wait; the loop reads it with daemon_queue_ack before draining. */
int daemon_queue_fd(const struct daemon_queue *q);
void daemon_queue_ack(struct daemon_queue *q);

/* Any thread. Copies the message in and wakes the loop. -ENOBUFS when full (counted in
 * daemon_queue_dropped), -ESHUTDOWN for a message with a completion once the queue is closed. */
int daemon_queue_push(struct daemon_queue *q, const struct daemon_msg *m);
/* Any thread but the loop's: pushes m with completion c and waits for the loop's answer (or the
 * shutdown's). Returns c->rc; c->err says why in words when it is not 0. */
int daemon_queue_call(struct daemon_queue *q, struct daemon_msg *m, struct daemon_completion *c);

/* Loop thread: takes the oldest message; false when none waits. */
bool daemon_queue_pop(struct daemon_queue *q, struct daemon_msg *ret);
/* Loop thread: answers a popped message's completion and wakes its sender. */
void daemon_queue_complete(struct daemon_queue *q, struct daemon_completion *c, int rc,
                           const char *err);
/* Loop thread, at shutdown: fails every queued completion with -ESHUTDOWN, removing those
 * messages, and makes later request-reply pushes fail at once. */
void daemon_queue_close(struct daemon_queue *q);

/* Messages refused because the queue was full, since it was made. */
uint64_t daemon_queue_dropped(struct daemon_queue *q);

#endif
