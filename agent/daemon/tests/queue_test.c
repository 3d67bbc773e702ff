/* The daemon's message queue: FIFO order and the capacity bound (a refused push is counted), the
 * eventfd that wakes the loop, many producers against one consumer (every message arrives once,
 * each producer's in its order), a request-reply round trip, and shutdown: closing fails every
 * waiting sender with -ESHUTDOWN (none hangs), refuses new request-reply messages at once, and
 * keeps the fire-and-forget ones for the final drain. Run under TSan by scripts/test. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "ember_test.h"
#include "queue.h"

#define PRODUCERS  4
#define PER_THREAD 5000
#define WAITERS    8

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static struct daemon_msg session_msg(uint64_t id)
{
    struct daemon_msg m = {.kind = DAEMON_MSG_SESSION};
    m.u.session.result.prompt_tokens = id;
    return m;
}

static void test_fifo_and_capacity(void)
{
    struct daemon_queue *q;
    CHECK_EQ_INT(daemon_queue_new(0, &q), -EINVAL);
    CHECK_EQ_INT(daemon_queue_new(3, &q), 0);
    CHECK(!readable(daemon_queue_fd(q), 0));
    for (uint64_t i = 0; i < 3; i++) {
        struct daemon_msg m = session_msg(i);
        CHECK_EQ_INT(daemon_queue_push(q, &m), 0);
    }
    struct daemon_msg extra = session_msg(99);
    CHECK_EQ_INT(daemon_queue_push(q, &extra), -ENOBUFS);
    CHECK_EQ_INT((int)daemon_queue_dropped(q), 1);
    CHECK(readable(daemon_queue_fd(q), 0));
    daemon_queue_ack(q);
    CHECK(!readable(daemon_queue_fd(q), 0)); /* one ack clears every wake-up so far */
    struct daemon_msg m;
    for (uint64_t i = 0; i < 3; i++) {
        CHECK(daemon_queue_pop(q, &m));
        CHECK_EQ_INT(m.kind, DAEMON_MSG_SESSION);
        CHECK_EQ_INT((int)m.u.session.result.prompt_tokens, (int)i);
    }
    CHECK(!daemon_queue_pop(q, &m));
    /* the ring wraps: push and pop across the end */
    for (uint64_t i = 10; i < 20; i++) {
        struct daemon_msg in = session_msg(i);
        CHECK_EQ_INT(daemon_queue_push(q, &in), 0);
        CHECK(daemon_queue_pop(q, &m));
        CHECK_EQ_INT((int)m.u.session.result.prompt_tokens, (int)i);
    }
    daemon_queue_free(q);
}

struct producer {
    struct daemon_queue *q;
    unsigned id;
    unsigned refusals;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uint64_t i = 0; i < PER_THREAD; i++) {
        struct daemon_msg m = session_msg((uint64_t)p->id * PER_THREAD + i);
        while (daemon_queue_push(p->q, &m) == -ENOBUFS) { /* full: the consumer catches up */
            p->refusals++;
            sched_yield();
        }
    }
    return NULL;
}

static void test_many_producers(void)
{
    struct daemon_queue *q;
    CHECK_EQ_INT(daemon_queue_new(64, &q), 0);
    struct producer prod[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (unsigned i = 0; i < PRODUCERS; i++) {
        prod[i] = (struct producer){.q = q, .id = i};
        pthread_create(&th[i], NULL, produce, &prod[i]);
    }
    uint64_t next[PRODUCERS] = {0};
    unsigned received = 0, out_of_order = 0, wakeups = 0;
    while (received < PRODUCERS * PER_THREAD) {
        if (!readable(daemon_queue_fd(q), 5000))
            break; /* a lost wake-up: the count check below fails */
        wakeups++;
        daemon_queue_ack(q);
        struct daemon_msg m;
        while (daemon_queue_pop(q, &m)) {
            uint64_t v = m.u.session.result.prompt_tokens;
            unsigned who = (unsigned)(v / PER_THREAD);
            if (who >= PRODUCERS || v % PER_THREAD != next[who])
                out_of_order++;
            else
                next[who]++;
            received++;
        }
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT((int)received, PRODUCERS * PER_THREAD);
    CHECK_EQ_INT((int)out_of_order, 0);
    unsigned refusals = 0;
    for (unsigned i = 0; i < PRODUCERS; i++)
        refusals += prod[i].refusals;
    CHECK_EQ_INT((int)daemon_queue_dropped(q), (int)refusals);
    CHECK(wakeups >= 1);
    daemon_queue_free(q);
}

struct caller {
    struct daemon_queue *q;
    atomic_int *started;
    int rc;
    char err[256];
};

static void *call_governor(void *arg)
{
    struct caller *c = arg;
    struct daemon_msg m = {.kind = DAEMON_MSG_GOVERNOR_SET};
    snprintf(m.u.governor.policy, sizeof(m.u.governor.policy), "powersave");
    m.u.governor.power_cap_w = NAN;
    struct daemon_completion done;
    atomic_fetch_add(c->started, 1);
    c->rc = daemon_queue_call(c->q, &m, &done);
    snprintf(c->err, sizeof(c->err), "%s", done.err);
    return NULL;
}

static void test_call_answered(void)
{
    struct daemon_queue *q;
    CHECK_EQ_INT(daemon_queue_new(8, &q), 0);
    atomic_int started = 0;
    struct caller c = {.q = q, .started = &started};
    pthread_t th;
    pthread_create(&th, NULL, call_governor, &c);
    CHECK(readable(daemon_queue_fd(q), 5000));
    daemon_queue_ack(q);
    struct daemon_msg m;
    CHECK(daemon_queue_pop(q, &m));
    CHECK_EQ_INT(m.kind, DAEMON_MSG_GOVERNOR_SET);
    CHECK_STR(m.u.governor.policy, "powersave");
    CHECK(isnan(m.u.governor.power_cap_w));
    CHECK(m.completion != NULL);
    daemon_queue_complete(q, m.completion, -EINVAL, "unknown policy");
    pthread_join(th, NULL);
    CHECK_EQ_INT(c.rc, -EINVAL);
    CHECK_STR(c.err, "unknown policy");
    daemon_queue_free(q);
}

/* The shutdown race in miniature: senders wait on a loop that never answers; closing must
 * release every one of them, whether its message was queued before the close or pushed after. */
static void test_close_releases_waiters(void)
{
    struct daemon_queue *q;
    CHECK_EQ_INT(daemon_queue_new(WAITERS + 4, &q), 0);
    struct daemon_msg before = session_msg(7);
    CHECK_EQ_INT(daemon_queue_push(q, &before), 0);
    atomic_int started = 0;
    struct caller c[WAITERS];
    pthread_t th[WAITERS];
    for (unsigned i = 0; i < WAITERS; i++) {
        c[i] = (struct caller){.q = q, .started = &started};
        pthread_create(&th[i], NULL, call_governor, &c[i]);
    }
    while (atomic_load(&started) < WAITERS / 2) /* some queued, maybe not all: both must work */
        sched_yield();
    daemon_queue_close(q);
    for (unsigned i = 0; i < WAITERS; i++) {
        pthread_join(th[i], NULL); /* a hang here is the bug this queue exists to prevent */
        CHECK_EQ_INT(c[i].rc, -ESHUTDOWN);
        CHECK_CONTAINS(c[i].err, "shutting down");
    }
    /* after closing: a call fails at once; a plain message is still accepted */
    struct caller late = {.q = q, .started = &started};
    call_governor(&late);
    CHECK_EQ_INT(late.rc, -ESHUTDOWN);
    struct daemon_msg after = session_msg(8);
    CHECK_EQ_INT(daemon_queue_push(q, &after), 0);
    /* the final drain sees the sessions in order and no governor change */
    struct daemon_msg m;
    CHECK(daemon_queue_pop(q, &m));
    CHECK_EQ_INT(m.kind, DAEMON_MSG_SESSION);
    CHECK_EQ_INT((int)m.u.session.result.prompt_tokens, 7);
    CHECK(daemon_queue_pop(q, &m));
    CHECK_EQ_INT(m.kind, DAEMON_MSG_SESSION);
    CHECK_EQ_INT((int)m.u.session.result.prompt_tokens, 8);
    CHECK(!daemon_queue_pop(q, &m));
    daemon_queue_free(q);
}

int main(void)
{
    alarm(120); /* a hang fails the test instead of waiting for ctest's timeout */
    test_fifo_and_capacity();
    test_many_producers();
    test_call_answered();
    test_close_releases_waiters();
    return et_finish();
}
