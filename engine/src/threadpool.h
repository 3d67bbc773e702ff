/* A persistent worker pool for the kernels. eng_pool_run(fn, n_chunks) executes fn(arg, chunk,
 * ith) for every chunk in [0, n_chunks) on whichever threads are ready (the caller included, as
 * ith 0) and returns when every chunk is done. Chunks are claimed dynamically, so a worker that
 * the OS has not scheduled yet simply takes no part: on a busy machine the caller finishes the job
 * alone instead of waiting a scheduler tick for a static share. Workers spin briefly between jobs
 * (decode issues several small jobs per layer back to back) and then sleep, so an idle engine
 * costs no CPU. Private to the engine. */
#ifndef ENGINE_THREADPOOL_H
#define ENGINE_THREADPOOL_H

#include <stddef.h>
#include <stdint.h>

struct eng_pool;

/* ith in [0, pool size): the executing thread, for per-thread scratch memory. */
typedef void (*eng_pool_fn)(void *arg, int chunk, int ith);

/* n_threads >= 1 counts the caller; -errno when a thread cannot be started. */
int eng_pool_new(int n_threads, struct eng_pool **ret);
void eng_pool_free(struct eng_pool *p);
int eng_pool_size(const struct eng_pool *p);
/* Threads that take part in jobs (the caller included), initially all of them. */
int eng_pool_active(const struct eng_pool *p);
/* The CPUs the pool is pinned to (bit i = logical CPU i), 0 when not pinned. */
uint64_t eng_pool_cpu_mask(const struct eng_pool *p);
/* Lets n_active threads (1..eng_pool_size, the caller included) take part in jobs and pins them,
 * the calling thread included, to the CPUs of cpu_mask (0: no pinning, every thread back to the
 * affinity the pool's creator had). The other workers stay parked on a condition variable (no
 * spinning, no wake-up per job), so the count can go down and back up without creating threads.
 * Call it only between eng_pool_run calls, from the thread that runs them: a job is never split
 * across two settings. -EINVAL, with err saying why, for a count out of range or a CPU that is
 * offline or outside the allowed set (nothing changes then); the first -errno of
 * pthread_setaffinity_np otherwise (the previous pinning is put back). */
int eng_pool_configure(struct eng_pool *p, int n_active, uint64_t cpu_mask, char *err,
                       size_t err_len);
void eng_pool_run(struct eng_pool *p, eng_pool_fn fn, void *arg, int n_chunks);

#endif
