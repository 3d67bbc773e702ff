/* The daemon's message queue (see queue.h): a ring of messages by value under one mutex, so a
 * producer never allocates, and one condition variable on which senders wait for completions. */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct daemon_queue {
    pthread_mutex_t lock;
    pthread_cond_t completed; /* broadcast whenever a completion is answered */
    struct daemon_msg *ring;
    size_t capacity, head, count;
    bool closed;
    uint64_t dropped;
    int event_fd;
};

int daemon_queue_new(size_t capacity, struct daemon_queue **ret)
{
    *ret = NULL;
    if (capacity == 0)
        return -EINVAL;
    struct daemon_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->ring = calloc(capacity, sizeof(q->ring[0]));
    q->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!q->ring || q->event_fd < 0) {
        int rc = q->ring ? -errno : -ENOMEM;
        free(q->ring);
        free(q);
        return rc;
    }
    q->capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->completed, NULL);
    *ret = q;
    return 0;
}

void daemon_queue_free(struct daemon_queue *q)
{
    if (!q)
        return;
    close(q->event_fd);
    pthread_cond_destroy(&q->completed);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
}

int daemon_queue_fd(const struct daemon_queue *q)
{
    return q->event_fd;
}

void daemon_queue_ack(struct daemon_queue *q)
{
    uint64_t n;
    ssize_t got = read(q->event_fd, &n, sizeof(n));
    (void)got; /* EAGAIN: nothing pending, which is fine; the drain looks at the ring anyway */
}

static void wake(struct daemon_queue *q)
{
    uint64_t one = 1;
    ssize_t n = write(q->event_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is saturated, so a wake-up is pending, which is all we need */
}

static void fail_completion(struct daemon_completion *c, int rc, const char *err)
{
    c->rc = rc;
    snprintf(c->err, sizeof(c->err), "%s", err);
    c->done = true;
}

/* Under lock. */
static int push_locked(struct daemon_queue *q, const struct daemon_msg *m)
{
    if (m->completion && q->closed)
        return -ESHUTDOWN;
    if (q->count == q->capacity) {
        q->dropped++;
        return -ENOBUFS;
    }
    q->ring[(q->head + q->count) % q->capacity] = *m;
    q->count++;
    return 0;
}

int daemon_queue_push(struct daemon_queue *q, const struct daemon_msg *m)
{
    pthread_mutex_lock(&q->lock);
    int rc = push_locked(q, m);
    pthread_mutex_unlock(&q->lock);
    if (rc == 0)
        wake(q);
    return rc;
}

int daemon_queue_call(struct daemon_queue *q, struct daemon_msg *m, struct daemon_completion *c)
{
    *c = (struct daemon_completion){0};
    m->completion = c;
    pthread_mutex_lock(&q->lock);
    int rc = push_locked(q, m);
    if (rc < 0) {
        fail_completion(c, rc,
                        rc == -ESHUTDOWN ? "the agent is shutting down"
                                         : "the agent is busy (its message queue is full)");
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    pthread_mutex_unlock(&q->lock);
    wake(q);
    pthread_mutex_lock(&q->lock);
    while (!c->done)
        pthread_cond_wait(&q->completed, &q->lock);
    rc = c->rc;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

bool daemon_queue_pop(struct daemon_queue *q, struct daemon_msg *ret)
{
    pthread_mutex_lock(&q->lock);
    bool any = q->count > 0;
    if (any) {
        *ret = q->ring[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return any;
}

void daemon_queue_complete(struct daemon_queue *q, struct daemon_completion *c, int rc,
                           const char *err)
{
    pthread_mutex_lock(&q->lock);
    fail_completion(c, rc, err ? err : "");
    pthread_cond_broadcast(&q->completed);
    pthread_mutex_unlock(&q->lock);
}

void daemon_queue_close(struct daemon_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    /* Keep the messages nobody waits for, in order; answer and drop the others. */
    size_t kept = 0;
    for (size_t i = 0; i < q->count; i++) {
        struct daemon_msg m = q->ring[(q->head + i) % q->capacity];
        if (m.completion)
            fail_completion(m.completion, -ESHUTDOWN, "the agent is shutting down");
        else
            q->ring[(q->head + kept++) % q->capacity] = m;
    }
    q->count = kept;
    pthread_cond_broadcast(&q->completed);
    pthread_mutex_unlock(&q->lock);
}

uint64_t daemon_queue_dropped(struct daemon_queue *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t n = q->dropped;
    pthread_mutex_unlock(&q->lock);
    return n;
}
