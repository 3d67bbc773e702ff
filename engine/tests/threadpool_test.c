/* Thread pool: every chunk of every job runs exactly once, on a valid thread index, for pools of
 * 1-5 threads and jobs of 1 to 1000 chunks issued back to back (the pattern of a decode step),
 * and pools start and stop cleanly, idle or busy. Changing the active count between jobs keeps
 * that true and parked threads run nothing. */
#include "ember_test.h"
#include "threadpool.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>

struct job {
    atomic_int *hits;
    int n_threads;
    atomic_int bad_ith;
};

static void run_chunk(void *arg, int chunk, int ith)
{
    struct job *j = arg;
    atomic_fetch_add(&j->hits[chunk], 1);
    if (ith < 0 || ith >= j->n_threads)
        atomic_fetch_add(&j->bad_ith, 1);
}

int main(void)
{
    static atomic_int hits[1000];
    for (int nt = 1; nt <= 5; nt++) {
        struct eng_pool *p = NULL;
        CHECK_EQ_INT(eng_pool_new(nt, &p), 0);
        if (!p)
            continue;
        CHECK_EQ_INT(eng_pool_size(p), nt);
        int exact = 1;
        struct job j = {.hits = hits, .n_threads = nt};
        for (int rep = 0; rep < 2000; rep++) {
            int n = 1 + (rep * 7919) % 1000;
            if (rep % 3 == 0)
                n = 1 + rep % 5;
            for (int i = 0; i < n; i++)
                atomic_store(&hits[i], 0);
            eng_pool_run(p, run_chunk, &j, n);
            for (int i = 0; i < n; i++)
                if (atomic_load(&hits[i]) != 1)
                    exact = 0;
        }
        CHECK_MSG(exact, "%d threads: a chunk ran other than once", nt);
        CHECK_EQ_INT(atomic_load(&j.bad_ith), 0);
        eng_pool_run(p, run_chunk, &j, 0); /* no chunks: returns at once */
        eng_pool_free(p);
    }
    /* the active count changes between jobs: chunks still run exactly once, only on threads
     * below the count, and out-of-range counts or CPUs are refused with nothing changed */
    {
        struct eng_pool *p = NULL;
        CHECK_EQ_INT(eng_pool_new(4, &p), 0);
        char err[256] = "";
        int exact = 1;
        static const int counts[] = {1, 2, 4, 1, 3, 4, 2};
        for (int rep = 0; rep < 1400 && p; rep++) {
            int na = counts[rep % 7];
            CHECK_EQ_INT(eng_pool_configure(p, na, 0, err, sizeof(err)), 0);
            CHECK_EQ_INT(eng_pool_active(p), na);
            struct job j = {.hits = hits, .n_threads = na};
            int n = 1 + (rep * 131) % 300;
            for (int i = 0; i < n; i++)
                atomic_store(&hits[i], 0);
            eng_pool_run(p, run_chunk, &j, n);
            for (int i = 0; i < n; i++)
                if (atomic_load(&hits[i]) != 1)
                    exact = 0;
            CHECK_MSG(atomic_load(&j.bad_ith) == 0, "a parked thread ran a chunk (%d active)", na);
        }
        CHECK_MSG(exact, "a chunk ran other than once while the active count changed");
        if (p) {
            CHECK_EQ_INT(eng_pool_configure(p, 0, 0, err, sizeof(err)), -EINVAL);
            CHECK_CONTAINS(err, "1 to 4");
            CHECK_EQ_INT(eng_pool_configure(p, 5, 0, err, sizeof(err)), -EINVAL);
            CHECK_EQ_INT(eng_pool_active(p), 2);
            cpu_set_t allowed;
            if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && !CPU_ISSET(63, &allowed)) {
                CHECK_EQ_INT(eng_pool_configure(p, 1, 1ull << 63, err, sizeof(err)), -EINVAL);
                CHECK_CONTAINS(err, "CPU 63");
            }
            CHECK(eng_pool_cpu_mask(p) == 0);
        }
        eng_pool_free(p); /* with parked workers */
    }
    struct eng_pool *p = NULL;
    CHECK_EQ_INT(eng_pool_new(0, &p), -EINVAL);
    CHECK(p == NULL);
    CHECK_EQ_INT(eng_pool_new(3, &p), 0);
    eng_pool_free(p); /* never used */
    eng_pool_free(NULL);
    return et_finish();
}
