/* A persistent worker pool for the kernels: eng_pool_run(fn) runs fn(arg, ith, nth) on every
 * thread of the pool (the caller is thread 0) and returns when all are done. Workers spin
 * briefly after a job (decode issues several small jobs per layer back to back) and then sleep
 * on a condition variable, so an idle engine costs no CPU. Private to the engine. */
#ifndef ENGINE_THREADPOOL_H
#define ENGINE_THREADPOOL_H

struct eng_pool;

typedef void (*eng_pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 counts the caller; -errno when a thread cannot be started. */
int eng_pool_new(int n_threads, struct eng_pool **ret);
void eng_pool_free(struct eng_pool *p);
int eng_pool_size(const struct eng_pool *p);
void eng_pool_run(struct eng_pool *p, eng_pool_fn fn, void *arg);

#endif
