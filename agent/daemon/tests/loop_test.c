/* The event loop: periodic timers, one-shot deadlines, and fd readiness caused by another thread
 * (the way the daemon's message queue wakes it: queue_test covers the queue itself). */
#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "ember_test.h"
#include "loop.h"

struct state {
    struct agent_loop *loop;
    int ticks, deadlines, reads;
    uint64_t deadline_fired_ns;
    int pipe_fds[2];
};

static void on_tick(void *user, uint64_t now_ns)
{
    (void)now_ns;
    struct state *s = user;
    s->ticks++;
    if (s->ticks == 5)
        agent_loop_quit(s->loop);
}

static void on_deadline(void *user, uint64_t now_ns)
{
    struct state *s = user;
    s->deadlines++;
    s->deadline_fired_ns = now_ns;
}

static void on_readable(void *user, int fd, uint32_t events)
{
    struct state *s = user;
    char c;
    if ((events & EPOLLIN) && read(fd, &c, 1) == 1)
        s->reads++;
}

static void *poke(void *arg)
{
    struct state *s = arg;
    if (write(s->pipe_fds[1], "x", 1) != 1)
        return NULL;
    return NULL;
}

int main(void)
{
    struct state s = {0};
    CHECK_EQ_INT(agent_loop_new(&s.loop), 0);
    CHECK_EQ_INT(pipe(s.pipe_fds), 0);
    struct agent_timer *tick, *once;
    CHECK_EQ_INT(agent_loop_add_timer(s.loop, 20, on_tick, &s, &tick), 0);
    CHECK_EQ_INT(agent_loop_add_timer(s.loop, 0, on_deadline, &s, &once), 0);
    uint64_t start = cmn_now_ns();
    CHECK_EQ_INT(agent_timer_set_deadline(once, start + 30 * CMN_NS_PER_MS), 0);
    CHECK_EQ_INT(agent_loop_add_fd(s.loop, s.pipe_fds[0], EPOLLIN, on_readable, &s), 0);
    CHECK_EQ_INT(agent_loop_add_fd(s.loop, s.pipe_fds[0], EPOLLIN, on_readable, &s), -EEXIST);

    pthread_t th;
    pthread_create(&th, NULL, poke, &s);
    CHECK_EQ_INT(agent_loop_run(s.loop), 0);
    pthread_join(th, NULL);
    uint64_t elapsed = cmn_now_ns() - start;

    CHECK_EQ_INT(s.ticks, 5);
    CHECK(elapsed >= 95 * CMN_NS_PER_MS); /* 5 ticks of 20 ms */
    CHECK_EQ_INT(s.deadlines, 1);         /* one-shot fired once only */
    CHECK(s.deadline_fired_ns >= start + 30 * CMN_NS_PER_MS);
    CHECK_EQ_INT(s.reads, 1);

    CHECK_EQ_INT(agent_loop_del_fd(s.loop, s.pipe_fds[0]), 0);
    CHECK_EQ_INT(agent_loop_del_fd(s.loop, s.pipe_fds[0]), -ENOENT);
    /* Disarmed timers stay quiet. */
    CHECK_EQ_INT(agent_timer_set_interval(tick, 0), 0);
    close(s.pipe_fds[0]);
    close(s.pipe_fds[1]);
    agent_loop_free(s.loop);
    return et_finish();
}
