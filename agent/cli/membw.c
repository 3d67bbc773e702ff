/* Memory read bandwidth for `ember bench`'s roofline (see membw.h): a child process maps a
 * buffer several times the last-level cache, asks for transparent huge pages (they add about a
 * third to single-thread read bandwidth on the x86 VMs we measured, see
 * ../shared/peers/RESULTS.md), touches it once, then times read-only sums over it with each
 * requested thread count and sends the best pass of each back through a pipe. The sum uses
 * GCC vector extensions, so it builds for x86 and arm64 alike, with an AVX2 variant on x86. */
#include "membw.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"

#define MEMBW_MIN_BYTES   (256ull << 20)
#define MEMBW_MAX_BYTES   (1ull << 30)
#define MEMBW_HUGE_PAGE   (2ull << 20)
#define MEMBW_PASSES      5
#define MEMBW_MAX_THREADS 256

/* 32 bytes: one AVX2 load, two SSE2 or NEON loads */
typedef uint64_t membw_vec __attribute__((vector_size(32)));

struct membw_part {
    const membw_vec *p;
    size_t n; /* vectors, a multiple of 4 */
    uint64_t sum;
};

/* always_inline so each caller below compiles it with its own instruction set */
static inline __attribute__((always_inline)) void membw_sum_body(struct membw_part *w)
{
    /* four independent accumulators keep enough loads in flight */
    membw_vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i < w->n; i += 4) {
        s0 += w->p[i];
        s1 += w->p[i + 1];
        s2 += w->p[i + 2];
        s3 += w->p[i + 3];
    }
    membw_vec s = s0 + s1 + s2 + s3;
    w->sum = s[0] + s[1] + s[2] + s[3];
}

/* The widest loads the CPU has: 128-bit loads reach only about 3/4 of the bandwidth of 256-bit
 * ones on the Zen 3 VMs we measured. Chosen at run time (not with target_clones: its ifunc
 * resolver runs before the ThreadSanitizer runtime is up and crashes TSan builds). */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static void membw_sum_avx2(struct membw_part *w)
{
    membw_sum_body(w);
}
#endif

static void *membw_sum(void *arg)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        membw_sum_avx2(arg);
        return NULL;
    }
#endif
    membw_sum_body(arg);
    return NULL;
}

/* One timed pass over n_vec vectors with n_threads threads (the caller is one of them);
 * bytes read per nanosecond (= GB/s), or -1 when a thread could not start. */
static double membw_pass(const membw_vec *buf, size_t n_vec, uint32_t n_threads, uint64_t *sink)
{
    struct membw_part parts[MEMBW_MAX_THREADS];
    pthread_t tids[MEMBW_MAX_THREADS];
    if (n_threads == 0 || n_threads > MEMBW_MAX_THREADS)
        return -1;
    size_t chunk = n_vec / n_threads / 4 * 4;
    for (uint32_t i = 0; i < n_threads; i++)
        parts[i] = (struct membw_part){.p = buf + (size_t)i * chunk, .n = chunk};

    uint64_t t0 = cmn_now_ns();
    uint32_t started = 1;
    for (; started < n_threads; started++)
        if (pthread_create(&tids[started], NULL, membw_sum, &parts[started]) != 0)
            break;
    membw_sum(&parts[0]);
    for (uint32_t i = 1; i < started; i++)
        pthread_join(tids[i], NULL);
    uint64_t ns = cmn_now_ns() - t0;

    for (uint32_t i = 0; i < started; i++)
        *sink += parts[i].sum;
    if (started < n_threads || ns == 0)
        return -1;
    return (double)(chunk * n_threads * sizeof(membw_vec)) / (double)ns;
}

/* The L3 size from sysfs ("32768K"), 0 when unknown. (sysconf's figure comes from CPUID, which
 * hypervisors fill with the host's: 256 MiB on a VM whose L3 is 32 MiB.) */
static uint64_t membw_l3_bytes(void)
{
    for (int i = 0; i < 8; i++) {
        char path[96], size[32];
        int64_t level;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (cmn_read_i64(path, &level) < 0)
            break;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (level != 3 || cmn_read_string(path, size, sizeof(size)) < 0)
            continue;
        char *end;
        unsigned long long v = strtoull(size, &end, 10);
        return *end == 'K' ? v << 10 : *end == 'M' ? v << 20 : v;
    }
    return 0;
}

/* A buffer well beyond the last-level cache: 8 × L3, at least 256 MiB, at most 1 GiB. */
static size_t membw_buffer_bytes(void)
{
    uint64_t bytes = 8 * membw_l3_bytes();
    if (bytes < MEMBW_MIN_BYTES)
        bytes = MEMBW_MIN_BYTES;
    if (bytes > MEMBW_MAX_BYTES)
        bytes = MEMBW_MAX_BYTES;
    return (size_t)(bytes / MEMBW_HUGE_PAGE * MEMBW_HUGE_PAGE);
}

/* The child's work: measures and writes n doubles to fd. Returns 0 or -errno. */
static int membw_child(int fd, const uint32_t *threads, size_t n)
{
    size_t bytes = membw_buffer_bytes();
    /* map one huge page more so the buffer can start on a huge-page boundary */
    size_t map_len = bytes + MEMBW_HUGE_PAGE;
    char *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    uintptr_t start = ((uintptr_t)map + MEMBW_HUGE_PAGE - 1) & ~(uintptr_t)(MEMBW_HUGE_PAGE - 1);
    membw_vec *buf = (membw_vec *)start;
    (void)madvise(buf, bytes, MADV_HUGEPAGE); /* a hint: without THP the result is lower */
    memset(buf, 1, bytes);                    /* faults every page in before timing */

    size_t n_vec = bytes / sizeof(membw_vec);
    uint64_t sink = 0;
    double out[MEMBW_MAX_THREADS];
    for (size_t i = 0; i < n; i++) {
        double best = 0;
        (void)membw_pass(buf, n_vec, threads[i], &sink); /* warm-up: TLB, frequency */
        for (int pass = 0; pass < MEMBW_PASSES; pass++) {
            double gbps = membw_pass(buf, n_vec, threads[i], &sink);
            if (gbps < 0) {
                munmap(map, map_len);
                return -EAGAIN;
            }
            if (gbps > best)
                best = gbps;
        }
        out[i] = best;
    }
    munmap(map, map_len);
    if (sink == 0) /* never true (the buffer holds ones); keeps the sums observable */
        out[0] = 0;
    size_t len = n * sizeof(double), done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)out + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -EIO;
        done += (size_t)w;
    }
    return 0;
}

int agent_membw_measure(const uint32_t *threads, size_t n, double *ret_gbps)
{
    if (n == 0 || n > MEMBW_MAX_THREADS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (threads[i] == 0 || threads[i] > MEMBW_MAX_THREADS)
            return -EINVAL;
    int fds[2];
    if (pipe(fds) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    if (pid == 0) {
        close(fds[0]);
        _exit(membw_child(fds[1], threads, n) == 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t len = n * sizeof(double), done = 0;
    while (done < len) {
        ssize_t r = read(fds[0], (char *)ret_gbps + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (done != len || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -EIO;
    return 0;
}
