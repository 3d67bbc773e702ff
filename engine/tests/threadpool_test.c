/* Thread pool: every chunk of every job runs exactly once, on a valid thread index, for pools of
 * 1-5 threads and jobs of 1 to 1000 chunks issued back to back (the pattern of a decode step),
 * and pools start and stop cleanly, idle or busy. */
#include "ember_test.h"
#include "threadpool.h"

#include <errno.h>
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
    struct eng_pool *p = NULL;
    CHECK_EQ_INT(eng_pool_new(0, &p), -EINVAL);
    CHECK(p == NULL);
    CHECK_EQ_INT(eng_pool_new(3, &p), 0);
    eng_pool_free(p); /* never used */
    eng_pool_free(NULL);
    return et_finish();
}
