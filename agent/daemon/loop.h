/* The agent's event loop: epoll over file descriptors and timerfd timers. Single-threaded: every
 * callback runs on the thread in agent_loop_run; other threads reach it through the daemon's
 * message queue, whose eventfd is one of the watched descriptors (queue.h). */
#ifndef AGENT_LOOP_H
#define AGENT_LOOP_H

#include <stdint.h>

struct agent_loop;
struct agent_timer;

typedef void (*agent_fd_fn)(void *user, int fd, uint32_t events);
typedef void (*agent_timer_fn)(void *user, uint64_t now_ns);

int agent_loop_new(struct agent_loop **ret);
void agent_loop_free(struct agent_loop *loop);

/* Watches fd for EPOLLIN/EPOLLOUT...; one registration per fd. */
int agent_loop_add_fd(struct agent_loop *loop, int fd, uint32_t events, agent_fd_fn fn, void *user);
int agent_loop_mod_fd(struct agent_loop *loop, int fd, uint32_t events);
int agent_loop_del_fd(struct agent_loop *loop, int fd);

/* A periodic timer (interval_ms > 0) or a disarmed one (0) to be armed later. */
int agent_loop_add_timer(struct agent_loop *loop, uint64_t interval_ms, agent_timer_fn fn,
                         void *user, struct agent_timer **ret);
/* Re-arms as periodic with a new interval (0 disarms). */
int agent_timer_set_interval(struct agent_timer *t, uint64_t interval_ms);
/* Arms once to fire at the monotonic time deadline_ns (past deadlines fire at once). */
int agent_timer_set_deadline(struct agent_timer *t, uint64_t deadline_ns);

/* Runs until agent_loop_quit; returns 0 or -errno on an epoll failure. */
int agent_loop_run(struct agent_loop *loop);
void agent_loop_quit(struct agent_loop *loop);

#endif
