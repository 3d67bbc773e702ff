/* A persistent worker pool for the kernels. eng_pool_run(fn, n_chunks) executes fn(arg, chunk,
 * ith) for every chunk in [0, n_chunks) on whichever threads are ready (the caller included, as
 * ith 0) and returns when every chunk is done. Chunks are claimed dynamically, so a worker that
 * the OS has not scheduled yet simply takes no part: on a busy machine the caller finishes the job
 * alone instead of waiting a scheduler tick for a static share. Workers spin briefly between jobs
 * (decode issues several small jobs per layer back to back) and then sleep, so an idle engine
 * costs no CPU. Private to the engine. */
#ifndef ENGINE_THREADPOOL_H
#define ENGINE_THREADPOOL_H

struct eng_pool;

/* ith in [0, pool size): the executing thread, for per-thread scratch memory. */
typedef void (*eng_pool_fn)(void *arg, int chunk, int ith);

/* n_threads >= 1 counts the caller; -errno when a thread cannot be started. */
int eng_pool_new(int n_threads, struct eng_pool **ret);
void eng_pool_free(struct eng_pool *p);
int eng_pool_size(const struct eng_pool *p);
void eng_pool_run(struct eng_pool *p, eng_pool_fn fn, void *arg, int n_chunks);

#endif
