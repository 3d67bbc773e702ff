/* Fork-join pool. A job is published by bumping a generation counter (under the mutex, so a
 * worker about to sleep cannot miss it); workers poll the counter for a short spin and then
 * wait on a condition variable. Completion is an atomic countdown; the caller spins on it
 * briefly and then sleeps on a second condition variable. */
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* About 20-50 us of polling: longer than the gap between two matmuls of one decode step. */
#define SPIN_ITERS 20000

struct worker {
    struct eng_pool *pool;
    int ith;
    pthread_t thread;
};

struct eng_pool {
    int n;
    struct worker *workers;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    atomic_uint gen;
    atomic_int pending;
    atomic_bool stop;
    eng_pool_fn fn;
    void *arg;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct eng_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load(&pool->gen);
        for (int i = 0; i < SPIN_ITERS && g == seen && !atomic_load(&pool->stop); i++) {
            cpu_relax();
            g = atomic_load(&pool->gen);
        }
        if (g == seen) {
            pthread_mutex_lock(&pool->mu);
            while ((g = atomic_load(&pool->gen)) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv_start, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = g;
        pool->fn(pool->arg, w->ith, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->cv_done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

int eng_pool_new(int n_threads, struct eng_pool **ret)
{
    *ret = NULL;
    if (n_threads < 1)
        return -EINVAL;
    struct eng_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->workers = calloc((size_t)n_threads, sizeof(*p->workers));
    if (!p->workers) {
        eng_pool_free(p);
        return -ENOMEM;
    }
    for (int i = 1; i < n_threads; i++) {
        p->workers[i] = (struct worker){.pool = p, .ith = i};
        int r = pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]);
        if (r) {
            eng_pool_free(p);
            return -r;
        }
        p->n_started = i;
    }
    *ret = p;
    return 0;
}

void eng_pool_free(struct eng_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->n_started; i++)
        pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    free(p);
}

int eng_pool_size(const struct eng_pool *p)
{
    return p->n;
}

void eng_pool_run(struct eng_pool *p, eng_pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    for (int i = 0; i < SPIN_ITERS && atomic_load(&p->pending) > 0; i++)
        cpu_relax();
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
