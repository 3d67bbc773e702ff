/* epoll + timerfd event loop (see loop.h). Watchers live in a small array: the agent
 * has a handful of descriptors, so linear lookups beat a hash map in clarity and speed. */
#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/timeutil.h"

#define MAX_WATCHES 64

struct agent_timer {
    struct agent_loop *loop;
    int fd;
    agent_timer_fn fn;
    void *user;
};

struct watch {
    int fd;
    agent_fd_fn fn;
    void *user;
    struct agent_timer *timer; /* set for timer watches (owned) */
};

struct agent_loop {
    int epfd;
    bool quit;
    struct watch watches[MAX_WATCHES];
    size_t n_watches;
};

int agent_loop_new(struct agent_loop **ret)
{
    struct agent_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int e = -errno;
        free(loop);
        return e;
    }
    *ret = loop;
    return 0;
}

void agent_loop_free(struct agent_loop *loop)
{
    if (!loop)
        return;
    for (size_t i = 0; i < loop->n_watches; i++) {
        if (loop->watches[i].timer) {
            close(loop->watches[i].timer->fd);
            free(loop->watches[i].timer);
        }
    }
    close(loop->epfd);
    free(loop);
}

static struct watch *find_watch(struct agent_loop *loop, int fd)
{
    for (size_t i = 0; i < loop->n_watches; i++)
        if (loop->watches[i].fd == fd)
            return &loop->watches[i];
    return NULL;
}

int agent_loop_add_fd(struct agent_loop *loop, int fd, uint32_t events, agent_fd_fn fn, void *user)
{
    if (find_watch(loop, fd))
        return -EEXIST;
    if (loop->n_watches == MAX_WATCHES)
        return -ENOSPC;
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return -errno;
    loop->watches[loop->n_watches++] = (struct watch){.fd = fd, .fn = fn, .user = user};
    return 0;
}

int agent_loop_mod_fd(struct agent_loop *loop, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : -errno;
}

int agent_loop_del_fd(struct agent_loop *loop, int fd)
{
    struct watch *w = find_watch(loop, fd);
    if (!w)
        return -ENOENT;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    *w = loop->watches[--loop->n_watches];
    return 0;
}

static void on_timer_fd(void *user, int fd, uint32_t events)
{
    (void)events;
    struct agent_timer *t = user;
    uint64_t expirations;
    /* A missed tick or several count as one: callbacks compute from now_ns, not from counts. */
    if (read(fd, &expirations, sizeof(expirations)) != sizeof(expirations))
        return;
    t->fn(t->user, cmn_now_ns());
}

int agent_loop_add_timer(struct agent_loop *loop, uint64_t interval_ms, agent_timer_fn fn,
                         void *user, struct agent_timer **ret)
{
    struct agent_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->fn = fn;
    t->user = user;
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->fd < 0) {
        int e = -errno;
        free(t);
        return e;
    }
    int rc = agent_loop_add_fd(loop, t->fd, EPOLLIN, on_timer_fd, t);
    if (rc == 0)
        rc = agent_timer_set_interval(t, interval_ms);
    if (rc < 0) {
        agent_loop_del_fd(loop, t->fd);
        close(t->fd);
        free(t);
        return rc;
    }
    find_watch(loop, t->fd)->timer = t;
    if (ret)
        *ret = t;
    return 0;
}

int agent_timer_set_interval(struct agent_timer *t, uint64_t interval_ms)
{
    struct itimerspec its = {0};
    its.it_interval.tv_sec = (time_t)(interval_ms / 1000);
    its.it_interval.tv_nsec = (long)(interval_ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
    return timerfd_settime(t->fd, 0, &its, NULL) == 0 ? 0 : -errno;
}

int agent_timer_set_deadline(struct agent_timer *t, uint64_t deadline_ns)
{
    if (deadline_ns == 0)
        deadline_ns = 1; /* 0 would disarm; the epoch start is "already due" */
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(deadline_ns / CMN_NS_PER_S);
    its.it_value.tv_nsec = (long)(deadline_ns % CMN_NS_PER_S);
    return timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) == 0 ? 0 : -errno;
}

void agent_loop_quit(struct agent_loop *loop)
{
    loop->quit = true;
}

int agent_loop_run(struct agent_loop *loop)
{
    loop->quit = false;
    while (!loop->quit) {
        struct epoll_event events[16];
        int n = epoll_wait(loop->epfd, events, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n && !loop->quit; i++) {
            struct watch *w = find_watch(loop, events[i].data.fd);
            if (w) /* may have been removed by an earlier callback of this round */
                w->fn(w->timer ? (void *)w->timer : w->user, w->fd, events[i].events);
        }
    }
    return 0;
}
