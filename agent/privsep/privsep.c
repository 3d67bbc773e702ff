/* The agent's side of privilege separation: forking the helper, the request/reply client behind
 * the governor's backend I/O and telemetry's counter reader, and dropping privileges. */
#include "privsep.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "privsep_helper.h"

struct privsep {
    int fd;
    pid_t pid;
    pthread_mutex_t lock;
    struct gov_sysio sysio;
    bool reaped; /* the helper is gone and waited for (privsep_reap) */
    int status;  /* then: its status, as privsep_stop returns it */
};

/* A wait status as one number: the exit status, or 128 + the signal (as a shell says it). */
static int status_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int privsep_exchange_raw(struct privsep *ps, const void *msg, size_t len, struct privsep_reply *ret)
{
    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&ps->lock);
    int r = 0;
    if (ps->reaped) {
        r = -EPIPE; /* known gone: nothing to try */
    } else if (send(ps->fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len) {
        r = errno ? -errno : -EIO;
    } else {
        ssize_t n;
        do
            n = recv(ps->fd, ret, sizeof(*ret), MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n == 0)
            r = -EPIPE; /* the helper is gone */
        else if (n < 0)
            r = -errno;
        else if (n != (ssize_t)sizeof(*ret) || ret->magic != PRIVSEP_MAGIC)
            r = -EBADMSG;
    }
    pthread_mutex_unlock(&ps->lock);
    if (r) {
        snprintf(ret->msg, sizeof(ret->msg), "privileged helper: %s",
                 r == -EPIPE ? "gone (it died; the agent cannot start another)" : strerror(-r));
        ret->result = r;
        return r;
    }
    ret->msg[sizeof(ret->msg) - 1] = '\0';
    return ret->result;
}

/* One request; -ENAMETOOLONG / -EINVAL for what does not fit the fixed fields. */
static int call(struct privsep *ps, enum privsep_op op, const char *path, const char *value,
                unsigned cpu, uint32_t khz, struct privsep_reply *rep)
{
    struct privsep_request req;
    memset(&req, 0, sizeof(req));
    req.magic = PRIVSEP_MAGIC;
    req.op = (uint32_t)op;
    req.cpu = cpu;
    req.khz = khz;
    if ((path && strlen(path) >= sizeof(req.path)) ||
        (value && strlen(value) >= sizeof(req.value))) {
        memset(rep, 0, sizeof(*rep));
        snprintf(rep->msg, sizeof(rep->msg), "%.200s: too long for the privileged helper",
                 path ? path : value);
        return rep->result = path && strlen(path) >= sizeof(req.path) ? -ENAMETOOLONG : -EINVAL;
    }
    if (path)
        strcpy(req.path, path);
    if (value)
        strcpy(req.value, value);
    return privsep_exchange_raw(ps, &req, sizeof(req), rep);
}

static int io_write(void *ctx, const char *path, const char *value)
{
    struct privsep_reply rep;
    return call(ctx, PRIVSEP_OP_WRITE, path, value, 0, 0, &rep);
}

static int io_cpupower(void *ctx, enum gov_sysio_cpupower op, unsigned cpu, uint32_t khz,
                       const char *governor)
{
    static const enum privsep_op ops[] = {
        [GOV_SYSIO_CPUPOWER_GOVERNOR] = PRIVSEP_OP_CPUPOWER_GOVERNOR,
        [GOV_SYSIO_CPUPOWER_MIN] = PRIVSEP_OP_CPUPOWER_MIN,
        [GOV_SYSIO_CPUPOWER_MAX] = PRIVSEP_OP_CPUPOWER_MAX,
        [GOV_SYSIO_CPUPOWER_SPEED] = PRIVSEP_OP_CPUPOWER_SPEED,
    };
    if ((unsigned)op >= sizeof(ops) / sizeof(ops[0]) || !ops[op])
        return -EINVAL;
    struct privsep_reply rep;
    return call(ctx, ops[op], NULL, governor, cpu, khz, &rep);
}

static int io_saved_save(void *ctx, char *err, size_t err_len)
{
    struct privsep_reply rep;
    int r = call(ctx, PRIVSEP_OP_SAVE, NULL, NULL, 0, 0, &rep);
    if (r)
        cmn_set_err(err, err_len, "%s", rep.msg);
    return r;
}

static int io_saved_restore(void *ctx, unsigned *ret_writes, char *err, size_t err_len)
{
    struct privsep_reply rep;
    int r = call(ctx, PRIVSEP_OP_RESTORE, NULL, NULL, 0, 0, &rep);
    if (ret_writes)
        *ret_writes = rep.writes;
    if (r)
        cmn_set_err(err, err_len, "%s", rep.msg);
    return r;
}

static int io_saved_crash_restore(void *ctx, unsigned *ret_writes, int *ret_pid, char *err,
                                  size_t err_len)
{
    struct privsep_reply rep;
    int r = call(ctx, PRIVSEP_OP_CRASH_RESTORE, NULL, NULL, 0, 0, &rep);
    if (ret_writes)
        *ret_writes = rep.writes;
    if (ret_pid)
        *ret_pid = rep.pid;
    if (r)
        cmn_set_err(err, err_len, "%s", rep.msg);
    return r;
}

static int io_saved_exists(void *ctx)
{
    struct privsep_reply rep;
    return call(ctx, PRIVSEP_OP_SAVED_EXISTS, NULL, NULL, 0, 0, &rep);
}

int privsep_read_counter(void *ctx, const char *path, uint64_t *ret)
{
    struct privsep_reply rep;
    int r = call(ctx, PRIVSEP_OP_READ_COUNTER, path, NULL, 0, 0, &rep);
    if (r == 0)
        *ret = rep.counter;
    return r;
}

const struct gov_sysio *privsep_sysio(struct privsep *ps)
{
    return ps ? &ps->sysio : NULL;
}

pid_t privsep_helper_pid(const struct privsep *ps)
{
    return ps ? ps->pid : -1;
}

int privsep_fd(const struct privsep *ps)
{
    return ps ? ps->fd : -1;
}

int privsep_reap(struct privsep *ps, char *how, size_t how_len)
{
    if (!ps)
        return -EINVAL;
    pthread_mutex_lock(&ps->lock);
    if (!ps->reaped) {
        int status = 0, r;
        /* Blocking is fine: the socket closed means the helper is past its last system call
         * but exit itself. */
        while ((r = (int)waitpid(ps->pid, &status, 0)) < 0 && errno == EINTR)
            ;
        ps->status = r < 0 ? -errno : status_code(status);
        ps->reaped = true;
        if (r >= 0 && WIFSIGNALED(status))
            cmn_set_err(how, how_len, "was killed by signal %d (%s)", WTERMSIG(status),
                        strsignal(WTERMSIG(status)));
        else if (r >= 0)
            cmn_set_err(how, how_len, "exited with status %d", WEXITSTATUS(status));
        else
            cmn_set_err(how, how_len, "is gone (waitpid: %s)", strerror(-ps->status));
    }
    int status = ps->status;
    pthread_mutex_unlock(&ps->lock);
    return status;
}

int privsep_start(const struct privsep_params *p, struct privsep **ret, char *err, size_t err_len)
{
    if (!p || !ret || !p->saved_path)
        return -EINVAL;
    *ret = NULL;
    struct privsep *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return -ENOMEM;
    int sv[2];
    /* SEQPACKET keeps records whole, so the helper sees each message's true length. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        cmn_set_err(err, err_len, "privileged helper: socketpair: %s", strerror(e));
        free(ps);
        return -e;
    }
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        cmn_set_err(err, err_len, "privileged helper: fork: %s", strerror(e));
        close(sv[0]);
        close(sv[1]);
        free(ps);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        /* Nothing of the agent's but stdio stays open in the helper. */
        if (sv[1] > 3)
            close_range(3, (unsigned)sv[1] - 1, 0);
        close_range((unsigned)sv[1] + 1, ~0u, 0);
        struct privsep_helper_params hp = {
            .sysfs_root = p->sysfs_root,
            .telemetry_root = p->telemetry_root,
            .saved_path = p->saved_path,
            .impl = p->impl,
        };
        privsep_helper_run(sv[1], &hp);
    }
    close(sv[1]);
    ps->fd = sv[0];
    ps->pid = pid;
    pthread_mutex_init(&ps->lock, NULL);
    ps->sysio = (struct gov_sysio){
        .ctx = ps,
        .write = io_write,
        .cpupower_write = io_cpupower,
        .saved_save = io_saved_save,
        .saved_restore = io_saved_restore,
        .saved_crash_restore = io_saved_crash_restore,
        .saved_exists = io_saved_exists,
    };
    *ret = ps;
    return 0;
}

int privsep_stop(struct privsep *ps)
{
    if (!ps)
        return 0;
    close(ps->fd);
    int status = 0, r;
    if (ps->reaped) {
        r = ps->status;
    } else {
        while ((r = (int)waitpid(ps->pid, &status, 0)) < 0 && errno == EINTR)
            ;
        r = r < 0 ? -errno : status_code(status);
    }
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    return r;
}

/* All capability sets of this process are empty. */
static int no_capabilities(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) != 0)
        return 0;
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return 0;
    return 1;
}

int privsep_drop(const char *user, char *err, size_t err_len)
{
    if (!user || !*user)
        return -EINVAL;
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        int e = errno ? errno : ENOENT;
        cmn_set_err(
            err, err_len,
            "[agent] user: no user '%s' (create it: systemd-sysusers, or useradd --system %s)",
            user, user);
        return -e;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (uid == 0) {
        cmn_set_err(err, err_len, "[agent] user: '%s' is root; name an unprivileged user", user);
        return -EINVAL;
    }
    if (geteuid() != 0) {
        if (geteuid() != uid) {
            cmn_set_err(err, err_len,
                        "[agent] user = %s needs root to switch to; started as uid %u", user,
                        (unsigned)geteuid());
            return -EPERM;
        }
    } else if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
               setresuid(uid, uid, uid) != 0) {
        int e = errno;
        cmn_set_err(err, err_len, "cannot become user %s (uid %u): %s", user, (unsigned)uid,
                    strerror(e));
        return -e;
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* The uid change made us non-dumpable; be as dumpable as a service started as the user is
     * (core dumps; LeakSanitizer's tracer must ptrace us). The helper stays non-dumpable. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        int e = errno;
        cmn_set_err(err, err_len, "PR_SET_NO_NEW_PRIVS: %s", strerror(e));
        return -e;
    }
    /* Check, rather than trust: the ids stuck, no way back to root, no capability kept. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != uid || eu != uid ||
        su != uid || rg != gid || eg != gid || sg != gid || setuid(0) == 0 || !no_capabilities()) {
        cmn_set_err(err, err_len, "switching to user %s did not take (ids or capabilities remain)",
                    user);
        return -EPERM;
    }
    return 0;
}
