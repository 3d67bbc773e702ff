/* Fork-join pool with dynamically claimed chunks. The job state is one 64-bit atomic holding
 * (generation << 32 | next chunk); a thread claims a chunk with a compare-and-swap that also
 * checks the generation, so a worker that wakes up late, even after the job is over and the next
 * has been published, can never run a chunk of the wrong job. Job descriptors alternate between
 * two slots so the one being published never overwrites the one a late worker may still read.
 * The caller waits for the completed-chunk count, spinning briefly and then yielding (the chunk
 * it waits for runs on a thread the scheduler may need to run first). Idle workers sleep on a
 * condition variable; the caller only signals it when someone sleeps. Workers beyond the active
 * count (eng_pool_configure) park on a second condition variable that jobs never signal. Which
 * threads take part never changes a result: every chunk's arithmetic is the same on any thread. */
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Polling before a worker sleeps: roughly 50-100 us, more than the gap between two jobs of
 * one decode step and much less than the gap between tokens when a human is waiting. */
#define WORKER_SPIN 4000
#define CALLER_SPIN 1000

struct job_slot {
    _Atomic(eng_pool_fn) fn;
    _Atomic(void *) arg;
    atomic_uint n_chunks;
};

struct worker {
    struct eng_pool *pool;
    int ith;
    pthread_t thread;
};

struct eng_pool {
    int n;
    atomic_int active;  /* threads taking part in jobs: workers with ith >= active park */
    cpu_set_t original; /* the creator's affinity, which the workers inherited */
    bool have_original;
    uint64_t cpu_mask;   /* pinned to these CPUs; 0 = not pinned */
    pthread_cond_t park; /* parked workers wait here, not on cv, so jobs never wake them */
    struct worker *workers;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t state; /* generation << 32 | next chunk */
    atomic_uint done;
    atomic_int sleepers;
    atomic_bool stop;
    struct job_slot slots[2];
};

static uint32_t gen_of(uint64_t s)
{
    return (uint32_t)(s >> 32);
}

static bool parked(struct eng_pool *p, int ith)
{
    return ith >= atomic_load(&p->active);
}

/* Claims and runs chunks of generation g until none are left. */
static void work(struct eng_pool *p, uint32_t g, int ith)
{
    struct job_slot *slot = &p->slots[g & 1];
    eng_pool_fn fn = atomic_load(&slot->fn);
    void *arg = atomic_load(&slot->arg);
    uint32_t n = atomic_load(&slot->n_chunks);
    uint64_t s = atomic_load(&p->state);
    /* the active count is stored before a job is published, so a worker that sees job g also
     * sees the count g was published under: parked threads never run a chunk of it */
    if (parked(p, ith))
        return;
    for (;;) {
        if (gen_of(s) != g || (uint32_t)s >= n)
            return;
        if (atomic_compare_exchange_weak(&p->state, &s, s + 1)) {
            fn(arg, (int)(uint32_t)s, ith);
            atomic_fetch_add(&p->done, 1);
            s = atomic_load(&p->state);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct eng_pool *p = w->pool;
    uint32_t seen = gen_of(atomic_load(&p->state));
    for (;;) {
        if (parked(p, w->ith) && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            while (parked(p, w->ith) && !atomic_load(&p->stop))
                pthread_cond_wait(&p->park, &p->mu);
            pthread_mutex_unlock(&p->mu);
            /* jobs published while parked are over (the count only changes between jobs) */
            seen = gen_of(atomic_load(&p->state));
        }
        uint32_t g = gen_of(atomic_load(&p->state));
        for (int i = 0;
             i < WORKER_SPIN && g == seen && !atomic_load(&p->stop) && !parked(p, w->ith); i++) {
            cpu_relax();
            g = gen_of(atomic_load(&p->state));
        }
        if (g == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = gen_of(atomic_load(&p->state))) == seen && !atomic_load(&p->stop) &&
                   !parked(p, w->ith))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        if (g == seen) /* woken to park */
            continue;
        seen = g;
        work(p, g, w->ith);
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
    atomic_init(&p->active, n_threads);
    p->have_original = sched_getaffinity(0, sizeof(p->original), &p->original) == 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->park, NULL);
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
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->park);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->n_started; i++)
        pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->park);
    free(p);
}

int eng_pool_size(const struct eng_pool *p)
{
    return p->n;
}

int eng_pool_active(const struct eng_pool *p)
{
    return atomic_load(&p->active);
}

uint64_t eng_pool_cpu_mask(const struct eng_pool *p)
{
    return p->cpu_mask;
}

static void mask_to_set(uint64_t mask, cpu_set_t *set)
{
    CPU_ZERO(set);
    for (int i = 0; i < 64; i++)
        if (mask >> i & 1)
            CPU_SET(i, set);
}

/* Every worker and the calling thread onto set; the first error. */
static int pin_all(struct eng_pool *p, const cpu_set_t *set)
{
    for (int i = 1; i <= p->n_started; i++) {
        int r = pthread_setaffinity_np(p->workers[i].thread, sizeof(*set), set);
        if (r)
            return -r;
    }
    int r = pthread_setaffinity_np(pthread_self(), sizeof(*set), set);
    return -r;
}

static int set_pinning(struct eng_pool *p, uint64_t mask)
{
    cpu_set_t set;
    if (mask)
        mask_to_set(mask, &set);
    else if (p->have_original)
        set = p->original;
    else
        return 0; /* never pinned (the creator's affinity was unknown, so nothing was changed) */
    return pin_all(p, &set);
}

int eng_pool_configure(struct eng_pool *p, int n_active, uint64_t cpu_mask, char *err,
                       size_t err_len)
{
    if (n_active < 1 || n_active > p->n) {
        snprintf(err, err_len, "engine threads: %d asked, the context has 1 to %d", n_active, p->n);
        return -EINVAL;
    }
    /* sched_getaffinity leaves offline CPUs out, so one test covers both */
    for (int i = 0; i < 64; i++) {
        if (!(cpu_mask >> i & 1) || (p->have_original && CPU_ISSET(i, &p->original)))
            continue;
        snprintf(err, err_len,
                 "engine threads: CPU %d is offline or outside the CPUs this process may use", i);
        return -EINVAL;
    }
    if (cpu_mask && !p->have_original) {
        snprintf(err, err_len, "engine threads: the CPUs this process may use are unknown");
        return -EINVAL;
    }
    if (cpu_mask != p->cpu_mask) {
        int r = set_pinning(p, cpu_mask);
        if (r) {
            snprintf(err, err_len, "engine threads: cannot pin to CPUs %#llx: %s",
                     (unsigned long long)cpu_mask, strerror(-r));
            set_pinning(p, p->cpu_mask); /* best effort: back to what it was */
            return r;
        }
        p->cpu_mask = cpu_mask;
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->active, n_active);
    /* the newly parked leave cv for park; the newly active leave park */
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->park);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void eng_pool_run(struct eng_pool *p, eng_pool_fn fn, void *arg, int n_chunks)
{
    if (n_chunks <= 0)
        return;
    if (atomic_load(&p->active) == 1 || n_chunks == 1) {
        for (int c = 0; c < n_chunks; c++)
            fn(arg, c, 0);
        return;
    }
    uint32_t g = gen_of(atomic_load(&p->state)) + 1;
    struct job_slot *slot = &p->slots[g & 1];
    atomic_store(&slot->fn, fn);
    atomic_store(&slot->arg, arg);
    atomic_store(&slot->n_chunks, (unsigned)n_chunks);
    atomic_store(&p->done, 0);
    atomic_store(&p->state, (uint64_t)g << 32);
    /* a worker registers as a sleeper under the mutex before re-checking the state, so either
     * it sees the new generation or we see it sleeping */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, g, 0);
    for (int i = 0; atomic_load(&p->done) < (unsigned)n_chunks; i++) {
        if (i < CALLER_SPIN)
            cpu_relax();
        else
            sched_yield();
    }
}
