/* Telemetry cost at 1 Hz and 10 Hz with the real store and a real power source. An hour of
 * operation is replayed as fast as the machine allows (one power reading from a RAPL copy of a
 * shared sysfs tree plus one sample append per tick, a commit every commit_interval_ms worth of
 * ticks, rollups and retention every minute), and the CPU time it took (getrusage, user + system)
 * is divided by the hour it represents: that is the share of one core the agent would spend.
 * Bytes written are the write() bytes of the process (/proc/self/io wchar: database, WAL,
 * checkpoints) per simulated hour, times 24. A short real-time run at 10 Hz cross-checks the
 * simulated figure. Prints one line per rate; label bench (not part of the default test run). */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/power.h"
#include "telemetry/store.h"

#define NS 1000000000ULL

static char tmpdir[256];
static uint64_t sim_wall_ns; /* the simulated wall clock retention sees */

static uint64_t sim_clock(void)
{
    return sim_wall_ns;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static uint64_t wchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void fill_sample(struct tel_sample *sm, uint64_t ts, const struct tel_power_reading *rd,
                        uint64_t i)
{
    memset(sm, 0, sizeof(*sm));
    sm->ts_ns = ts;
    sm->power_w = rd->power_w;
    sm->energy_j = rd->energy_j;
    sm->temp_c = 45.0 + (double)(i % 10);
    sm->util = 0.3;
    sm->n_freq = 4;
    for (int c = 0; c < 4; c++)
        sm->freq_mhz[c] = 800.0 + (double)((i + (uint64_t)c) % 22) * 100.0;
    snprintf(sm->policy, sizeof(sm->policy), "balanced");
    snprintf(sm->phase, sizeof(sm->phase), i % 7 ? "decode" : "idle");
    sm->source = rd->source;
    sm->tokens = i % 7 ? 12 : 0;
    sm->tokens_per_s = (double)sm->tokens;
}

/* Seven days of 1 Hz history ending an hour ago, written in large batches (not measured). */
static int prefill_week(const char *path)
{
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 5000;
    p.pending_max = 5000;
    p.maintain_interval_ms = 3600000;
    struct tel_store *s = NULL;
    char err[512];
    if (tel_store_open(path, &p, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    uint64_t t0 = (uint64_t)time(NULL) * NS - (7 * 86400ULL + 3600) * NS;
    struct tel_power_reading rd = {0};
    rd.source = TEL_SOURCE_RAPL;
    for (uint64_t i = 0; i < 7 * 86400ULL; i++) {
        rd.power_w = 5;
        rd.energy_j = (double)i * 5;
        struct tel_sample sm;
        fill_sample(&sm, t0 + i * NS, &rd, i);
        tel_store_append_sample(s, &sm, NULL);
        if ((i + 1) % 3600 == 0)
            tel_store_maintain(s);
    }
    tel_store_close(s);
    return 0;
}

/* One simulated hour at hz; returns the CPU seconds it took and the bytes written. With
 * steady, the database already holds a week, so retention deletes as much as is added. */
static int simulated_hour(const char *root, unsigned hz, int steady, double *ret_cpu,
                          uint64_t *ret_bytes, uint64_t *ret_db_bytes)
{
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/bench_%uhz%s.db", tmpdir, hz, steady ? "_steady" : "");
    if (steady && prefill_week(path) < 0)
        return -1;
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    /* the default 5 s commit interval, expressed in ticks since time is simulated */
    p.commit_rows = 5 * hz;
    p.commit_interval_ms = 3600000;
    p.maintain_interval_ms = 3600000;
    struct tel_store *s = NULL;
    if (tel_store_open(path, &p, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (steady) {
        /* params are copied at open: reopen with the simulated clock */
        p.wall_clock_ns = sim_clock;
        tel_store_close(s);
        s = NULL;
        sim_wall_ns = (uint64_t)time(NULL) * NS - 3600 * NS;
        if (tel_store_open(path, &p, &s, err, sizeof(err)) < 0)
            return -1;
        tel_store_maintain(s);
    }
    struct tel_power_params pp;
    tel_power_params_defaults(&pp);
    pp.root = root;
    struct tel_power *pw = NULL;
    if (tel_power_new(&pp, 0, 0, &pw, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        tel_store_close(s);
        return -1;
    }
    uint64_t ticks = 3600ULL * hz, step = NS / hz;
    uint64_t t0 = (uint64_t)time(NULL) * NS - 3600 * NS;
    uint64_t w0 = wchar();
    double c0 = cpu_s();
    for (uint64_t i = 0; i < ticks; i++) {
        struct tel_power_reading rd;
        tel_power_read(pw, (i + 1) * step, NULL, &rd);
        struct tel_sample sm;
        fill_sample(&sm, t0 + i * step, &rd, i);
        tel_store_append_sample(s, &sm, NULL);
        sim_wall_ns = t0 + i * step;
        if ((i + 1) % (60ULL * hz) == 0)
            tel_store_maintain(s); /* once a simulated minute */
    }
    tel_store_flush(s);
    *ret_cpu = cpu_s() - c0;
    *ret_bytes = wchar() - w0;
    struct tel_store_stats st;
    tel_store_get_stats(s, &st);
    *ret_db_bytes = st.db_bytes;
    tel_power_free(pw);
    tel_store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/telstore_bench_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    char root[512], cmd[2048];
    snprintf(root, sizeof(root), "%s/tree", tmpdir);
    snprintf(cmd, sizeof(cmd), "cp -a '%s/sysfs-trees/acpi-cpufreq-4c' '%s' && chmod -R u+w '%s'",
             et_shared_dir(), root, root);
    if (system(cmd) != 0) {
        fprintf(stderr, "skip: no shared tree\n");
        return ET_SKIP;
    }
    unsigned rates[2] = {1, 10};
    for (int k = 0; k < 2; k++) {
        double cpu = 0;
        uint64_t bytes = 0, dbb = 0;
        CHECK_EQ_INT(simulated_hour(root, rates[k], 0, &cpu, &bytes, &dbb), 0);
        double pct = cpu / 3600.0 * 100.0;
        printf("%2u Hz: %.3f s CPU per hour = %.4f%% of one core; %.2f MB written per day "
               "(write() bytes incl. WAL and checkpoints), database grows %.2f MB per day\n",
               rates[k], cpu, pct, (double)bytes * 24 / 1e6, (double)dbb * 24 / 1e6);
        CHECK_MSG(pct < (rates[k] == 1 ? 1.0 : 5.0), "%.3f%% of a core at %u Hz", pct, rates[k]);
    }

    /* day 8 at 1 Hz: the week of history is full, retention deletes what is added */
    {
        double cpu = 0;
        uint64_t bytes = 0, dbb = 0;
        CHECK_EQ_INT(simulated_hour(root, 1, 1, &cpu, &bytes, &dbb), 0);
        printf(" 1 Hz steady state (7 days kept, retention deleting): %.3f s CPU per hour = "
               "%.4f%% of one core; %.2f MB written per day; database %.1f MB\n",
               cpu, cpu / 36.0, (double)bytes * 24 / 1e6, (double)dbb / 1e6);
        CHECK(cpu / 36.0 < 1.0);
    }

    /* real time: 10 Hz for a few seconds with the default 5 s commit interval */
    unsigned secs = argc > 1 ? (unsigned)atoi(argv[1]) : 6;
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/realtime.db", tmpdir);
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    struct tel_store *s = NULL;
    struct tel_power *pw = NULL;
    struct tel_power_params pp;
    tel_power_params_defaults(&pp);
    pp.root = root;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t start = (uint64_t)now.tv_sec * NS + (uint64_t)now.tv_nsec;
    if (tel_store_open(path, &p, &s, err, sizeof(err)) == 0 &&
        tel_power_new(&pp, start, 0, &pw, err, sizeof(err)) == 0) {
        double c0 = cpu_s();
        uint64_t w0 = wchar();
        struct timespec next = now;
        for (unsigned i = 0; i < secs * 10; i++) {
            next.tv_nsec += 100000000;
            if (next.tv_nsec >= 1000000000) {
                next.tv_nsec -= 1000000000;
                next.tv_sec++;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
            uint64_t t = (uint64_t)next.tv_sec * NS + (uint64_t)next.tv_nsec;
            struct tel_power_reading rd;
            tel_power_read(pw, t, NULL, &rd);
            struct tel_sample sm;
            fill_sample(&sm, (uint64_t)time(NULL) * NS, &rd, i);
            tel_store_append_sample(s, &sm, NULL);
            tel_store_tick(s);
        }
        double cpu = cpu_s() - c0;
        printf("10 Hz real time for %u s: %.4f s CPU = %.4f%% of one core, %llu bytes written\n",
               secs, cpu, cpu / secs * 100.0, (unsigned long long)(wchar() - w0));
        CHECK(cpu / secs < 0.05);
    } else {
        fprintf(stderr, "%s\n", err);
        CHECK(0);
    }
    tel_power_free(pw);
    tel_store_close(s);
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return et_finish();
}
