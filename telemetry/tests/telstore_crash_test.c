/* kill -9 while a child process appends samples through the real store: after each kill the
 * database passes PRAGMA integrity_check, the committed seqs are exactly 1..N with no hole, at
 * most one batch (commit_rows) of what the child had appended is missing, the restored energy
 * total matches the newest committed sample, and the seqs handed out after reopening never reuse
 * one the dead process had already handed out (they may have been published over MQTT). Kills
 * land both at a chosen point mid-batch and at random times (some inside a commit). */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/store.h"

#define COMMIT_ROWS 50

struct shared {
    volatile uint64_t appended; /* highest seq the child's append returned */
    volatile uint64_t first;    /* the first seq this child got (past the dead one's reservation) */
    volatile int ready;
};

static char tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void params(struct tel_store_params *p)
{
    tel_store_params_defaults(p);
    p->commit_rows = COMMIT_ROWS;
    p->commit_interval_ms = 3600000;
    p->retain_samples_s = 0;
}

static void child(const char *path, struct shared *sh)
{
    struct tel_store_params p;
    params(&p);
    struct tel_store *s = NULL;
    char err[256];
    if (tel_store_open(path, &p, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "child open: %s\n", err);
        _exit(3);
    }
    double e = 0;
    tel_store_energy_total_j(s, &e);
    sh->ready = 1;
    for (uint64_t i = 0;; i++) {
        struct tel_sample sm;
        memset(&sm, 0, sizeof(sm));
        sm.ts_ns = 1700000000000000000ULL + i * 1000000000ULL;
        sm.power_w = 7;
        e += 1.0;
        sm.energy_j = e;
        sm.n_freq = 1;
        sm.freq_mhz[0] = 2400;
        snprintf(sm.phase, sizeof(sm.phase), "decode");
        snprintf(sm.policy, sizeof(sm.policy), "balanced");
        sm.source = TEL_SOURCE_ESTIMATE;
        uint64_t seq = 0;
        if (tel_store_append_sample(s, &sm, &seq) == 0) {
            if (!sh->first)
                sh->first = seq;
            sh->appended = seq;
        }
    }
}

static int64_t q_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* One kill: wait for target appends (or a random delay when target is 0), SIGKILL, check. */
static void round_trip(const char *path, int round, uint64_t target, unsigned delay_us,
                       uint64_t *prev_max)
{
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        CHECK(0);
        return;
    }
    memset(sh, 0, sizeof(*sh));
    pid_t pid = fork();
    if (pid == 0)
        child(path, sh);
    for (int spins = 0; !sh->ready && spins < 100000; spins++)
        usleep(100);
    if (target) {
        for (int spins = 0; sh->appended < target && spins < 2000000; spins++)
            usleep(10);
    } else {
        usleep(delay_us);
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    uint64_t appended = sh->appended;
    uint64_t first = sh->first;
    munmap(sh, sizeof(*sh));

    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    const char *ic = "?";
    char icbuf[64] = "";
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        snprintf(icbuf, sizeof(icbuf), "%s", (const char *)sqlite3_column_text(st, 0));
        ic = icbuf;
    }
    sqlite3_finalize(st);
    CHECK_STR(ic, "ok");
    int64_t max_seq = q_i64(db, "SELECT coalesce(max(seq), 0) FROM samples");
    int64_t count = q_i64(db, "SELECT count(*) FROM samples");
    /* rows of earlier rounds plus this one, no holes inside a run's committed range */
    int64_t holes = q_i64(db, "SELECT count(*) FROM samples a WHERE seq > (SELECT min(seq) FROM "
                              "samples) AND NOT EXISTS (SELECT 1 FROM samples b WHERE b.seq = "
                              "a.seq - 1) ");
    /* each crash may leave one gap (the seqs the dead process had reserved), never more */
    CHECK_MSG(holes <= round, "holes %lld after %d crashes", (long long)holes, round);
    /* Seqs jump past the previous process's reservation when the store reopens, so what this
     * child lost is counted from its own first seq: a slow child (qemu) may be killed before its
     * first commit, having appended fewer than one batch. */
    uint64_t committed_here = (uint64_t)max_seq >= first ? (uint64_t)max_seq : first - 1;
    CHECK_MSG(appended == 0 || committed_here + COMMIT_ROWS >= appended,
              "lost more than one batch: committed up to %lld, appended %llu (first %llu)",
              (long long)max_seq, (unsigned long long)appended, (unsigned long long)first);
    CHECK((uint64_t)max_seq <= appended + COMMIT_ROWS);
    CHECK(max_seq >= (int64_t)*prev_max);
    double energy = 0;
    sqlite3_stmt *e = NULL;
    if (sqlite3_prepare_v2(db, "SELECT energy_j FROM samples ORDER BY seq DESC LIMIT 1", -1, &e,
                           NULL) == SQLITE_OK &&
        sqlite3_step(e) == SQLITE_ROW)
        energy = sqlite3_column_double(e, 0);
    sqlite3_finalize(e);
    sqlite3_close(db);

    /* reopen with the store: seqs continue past everything the dead child handed out */
    struct tel_store_params p;
    params(&p);
    struct tel_store *s = NULL;
    char err[256];
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (s) {
        double total = -1;
        CHECK_EQ_INT(tel_store_energy_total_j(s, &total), 0);
        CHECK_NEAR(total, energy, 1e-9);
        CHECK_MSG(tel_store_last_seq(s) >= appended, "next seq %llu would reuse %llu",
                  (unsigned long long)tel_store_last_seq(s) + 1, (unsigned long long)appended);
        tel_store_close(s);
    }
    printf("kill after %llu appended: %lld rows committed up to seq %lld (lost %lld)\n",
           (unsigned long long)appended, (long long)count, (long long)max_seq,
           (long long)((int64_t)appended - (int64_t)committed_here));
    *prev_max = (uint64_t)max_seq;
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/telstore_crash_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    char path[512];
    snprintf(path, sizeof(path), "%s/crash.db", tmpdir);
    uint64_t prev_max = 0;
    /* mid-batch: 537 appended, 37 of them only in memory */
    round_trip(path, 0, 537, 0, &prev_max);
    srand((unsigned)time(NULL));
    for (int i = 0; i < 8; i++) {
        unsigned delay = 20000 + (unsigned)(rand() % 60000);
        round_trip(path, i + 1, 0, delay, &prev_max);
    }
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return et_finish();
}
