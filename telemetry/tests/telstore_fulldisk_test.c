/* A really full file system: a 2 MiB tmpfs mounted in a private mount namespace (skipped with 77
 * where unshare or mount is not permitted). The database lives there; a filler file takes the
 * remaining space, so the next commit fails with ENOSPC (SQLITE_FULL). The store keeps every
 * sample in memory, raises one event, the caller keeps appending; when the filler is deleted
 * (space returns) one flush writes everything, with no seq missing, and the database passes
 * integrity_check. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/store.h"

#define NS 1000000000ULL

struct ev_log {
    int n;
    char last[TEL_DETAIL_MAX];
};

static void on_event(void *user, const struct tel_event *ev)
{
    struct ev_log *log = user;
    log->n++;
    snprintf(log->last, sizeof(log->last), "%s", ev->detail);
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

/* Writes zeros into path until the file system refuses; returns bytes written. */
static long long fill_up(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    static char block[4096];
    long long total = 0;
    for (;;) {
        ssize_t n = write(fd, block, sizeof(block));
        if (n <= 0)
            break;
        total += n;
    }
    /* byte-sized writes take the last partial block too */
    while (write(fd, block, 1) == 1)
        total++;
    close(fd);
    return total;
}

static void add(struct tel_store *s, uint64_t i)
{
    struct tel_sample sm;
    memset(&sm, 0, sizeof(sm));
    sm.ts_ns = 1700000000ULL * NS + i * NS;
    sm.power_w = 6;
    sm.energy_j = (double)i * 6;
    sm.temp_c = 50;
    sm.n_freq = 4;
    for (int c = 0; c < 4; c++)
        sm.freq_mhz[c] = 2400;
    snprintf(sm.policy, sizeof(sm.policy), "balanced");
    snprintf(sm.phase, sizeof(sm.phase), "decode");
    sm.source = TEL_SOURCE_RAPL;
    CHECK_EQ_INT(tel_store_append_sample(s, &sm, NULL), 0);
}

int main(void)
{
    char dir[] = "/tmp/telstore_fulldisk_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700") < 0) {
        fprintf(stderr, "skip: cannot mount a private tmpfs (%s)\n", strerror(errno));
        rmdir(dir);
        return ET_SKIP;
    }
    char path[256], filler[256], err[256];
    snprintf(path, sizeof(path), "%s/t.db", dir);
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    struct tel_store_params p;
    tel_store_params_defaults(&p);
    p.commit_rows = 20;
    p.pending_max = 5000;
    p.retain_samples_s = 0;
    p.quota_bytes = 0;
    struct ev_log log = {0};
    p.on_event = on_event;
    p.on_event_user = &log;
    struct tel_store *s = NULL;
    CHECK_EQ_INT(tel_store_open(path, &p, &s, err, sizeof(err)), 0);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return et_finish();
    }
    uint64_t i = 0;
    for (; i < 100; i++)
        add(s, i);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    long long filled = fill_up(filler);
    CHECK(filled > 0);

    /* keep appending: commits fail, nothing is lost, the agent goes on */
    struct tel_store_stats st;
    for (; i < 3000; i++)
        add(s, i);
    int fr = tel_store_flush(s);
    tel_store_get_stats(s, &st);
    CHECK_EQ_INT(fr, -ENOSPC);
    CHECK_EQ_INT(st.disk_full, 1);
    CHECK_EQ_INT(st.dropped, 0);
    CHECK(st.commit_failures >= 1);
    CHECK_EQ_INT(log.n, 1);
    CHECK_CONTAINS(log.last, "full");
    printf("tmpfs full after %lld filler bytes: %llu rows written, %u queued in memory\n", filled,
           (unsigned long long)st.samples_written, st.pending);

    /* space returns */
    CHECK_EQ_INT(unlink(filler), 0);
    CHECK_EQ_INT(tel_store_flush(s), 0);
    tel_store_get_stats(s, &st);
    CHECK_EQ_INT(st.disk_full, 0);
    CHECK_EQ_INT(st.pending, 0);
    CHECK_EQ_INT(log.n, 2);
    CHECK_CONTAINS(log.last, "writable again");
    sqlite3 *db = tel_store_db(s);
    CHECK_EQ_INT(q_i64(db, "SELECT count(*) FROM samples"), 3000);
    CHECK_EQ_INT(q_i64(db, "SELECT max(seq) - min(seq) + 1 FROM samples"), 3000);
    tel_store_close(s);

    sqlite3 *chk = NULL;
    CHECK_EQ_INT(sqlite3_open(path, &chk), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    char ic[64] = "";
    if (sqlite3_prepare_v2(chk, "PRAGMA integrity_check", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        snprintf(ic, sizeof(ic), "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    CHECK_STR(ic, "ok");
    CHECK_EQ_INT(q_i64(chk, "SELECT count(*) FROM events WHERE kind='store'"), 2);
    sqlite3_close(chk);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    return et_finish();
}
