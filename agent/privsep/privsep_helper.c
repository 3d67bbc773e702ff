/* The privileged helper: the one part of `ember agent` that stays root. It is forked before the
 * agent parses anything untrusted, keeps nothing but its socket, and loops: receive one
 * fixed-size request, check it, do it, send one reply. What it will do is the whole list in
 * privsep_msg.h; where it may write or read is the whole list in privsep_path.c. When the agent
 * goes away (end of file on the socket, whatever killed it) it restores the saved CPU frequency
 * settings, if any are still saved, and exits. It ignores the signals systemd sends the whole
 * service on stop, so the agent's own orderly restore (or this one) always runs first. */
#include "privsep_helper.h"

#include <cpufreq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "governor/backend.h"
#include "governor/event.h"
#include "governor/safety.h"
#include "privsep_msg.h"
#include "privsep_path.h"
#include "privsep_seccomp.h"

struct helper {
    int fd;
    /* [governor] sysfs_root (cpufreq, devfreq) and [telemetry] sysfs_root (RAPL) as configured:
     * requests must start with them; and their realpaths, which opened files must resolve
     * under. */
    char root[PATH_MAX], root_real[PATH_MAX];
    char troot[PATH_MAX], troot_real[PATH_MAX];
    char saved_path[PATH_MAX];
    enum gov_backend_impl impl;
    struct gov_backend *b; /* opened on the first saved-file operation */
    /* The saved file holds originals this agent is responsible for (it saved them, or kept a
     * crashed run's file it could not restore): restored when the agent goes away. A file of
     * another live ember is never touched. */
    int owns_saved;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ember privileged helper: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void set_msg(struct privsep_reply *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_msg(struct privsep_reply *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
    va_end(ap);
}

static int root_is_slash(const char *root)
{
    return strcmp(root, "/") == 0;
}

/* The part of path under the root, or NULL when path does not start with root + "/". */
static const char *under(const char *root, const char *path)
{
    if (root_is_slash(root))
        return path[0] == '/' ? path + 1 : NULL;
    size_t n = strlen(root);
    if (strncmp(path, root, n) != 0 || path[n] != '/')
        return NULL;
    return path + n + 1;
}

/* Opens a whitelisted attribute: the path asked for must be on the list, the last component must
 * not be a link, and what the kernel says it opened must be on the list too (so a link in the
 * middle of the path cannot lead anywhere else). Returns the fd or -errno with rep->msg set. */
static int open_checked(const struct helper *h, const char *path, enum privsep_access access,
                        int flags, struct privsep_reply *rep)
{
    int tel = access == PRIVSEP_ACCESS_READ_COUNTER;
    const char *rel = under(tel ? h->troot : h->root, path);
    if (!rel || !privsep_path_allowed(rel, access)) {
        set_msg(rep, "%s: not on the helper's whitelist", path);
        return -EPERM;
    }
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        set_msg(rep, "%s: %s", path, e == ELOOP ? "is a symbolic link" : strerror(e));
        return -e;
    }
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof(real) - 1);
    struct stat sb;
    const char *real_rel = NULL;
    if (n > 0) {
        real[n] = '\0';
        real_rel = under(tel ? h->troot_real : h->root_real, real);
    }
    if (!real_rel || !privsep_path_allowed(real_rel, access) || fstat(fd, &sb) != 0 ||
        !S_ISREG(sb.st_mode)) {
        set_msg(rep, "%s: resolves to %s, which is not on the helper's whitelist", path,
                n > 0 ? real : "(unknown)");
        close(fd);
        return -EPERM;
    }
    return fd;
}

static int do_write(const struct helper *h, const struct privsep_request *req,
                    struct privsep_reply *rep)
{
    if (!privsep_value_ok(req->value)) {
        set_msg(rep, "%s: refused value (1..31 characters of [A-Za-z0-9_-])", req->path);
        return -EINVAL;
    }
    int fd = open_checked(h, req->path, PRIVSEP_ACCESS_WRITE, O_WRONLY, rep);
    if (fd < 0)
        return fd;
    /* Regular files of a fake tree need the old value gone; sysfs ignores the size. */
    if (ftruncate(fd, 0) != 0) {
        /* ignored: a sysfs attribute may refuse it, and the write below is what counts */
    }
    size_t len = strlen(req->value);
    ssize_t w = write(fd, req->value, len); /* one write(), as sysfs expects */
    int r = w == (ssize_t)len ? 0 : w < 0 ? -errno : -EIO;
    close(fd);
    if (r)
        set_msg(rep, "%s: %s", req->path, strerror(-r));
    return r;
}

static int do_read_counter(const struct helper *h, const struct privsep_request *req,
                           struct privsep_reply *rep)
{
    int fd = open_checked(h, req->path, PRIVSEP_ACCESS_READ_COUNTER, O_RDONLY, rep);
    if (fd < 0)
        return fd;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int r = n < 0 ? -errno : 0;
    close(fd);
    if (r) {
        set_msg(rep, "%s: %s", req->path, strerror(-r));
        return r;
    }
    buf[n] = '\0';
    if (cmn_parse_u64(buf, &rep->counter)) {
        set_msg(rep, "%s: not a counter", req->path);
        return -EINVAL;
    }
    return 0;
}

/* libcpupower always acts on /sys/devices/system/cpu; only a helper for that root runs it. */
static int do_cpupower(const struct helper *h, const struct privsep_request *req,
                       struct privsep_reply *rep)
{
    if (!root_is_slash(h->root)) {
        set_msg(rep, "libcpupower writes /sys only; this helper serves sysfs_root %s", h->root);
        return -EINVAL;
    }
    if (req->cpu >= GOV_HW_MAX_CPUS) {
        set_msg(rep, "cpu %u out of range", (unsigned)req->cpu);
        return -EINVAL;
    }
    if (req->op != PRIVSEP_OP_CPUPOWER_GOVERNOR && (req->khz == 0 || req->khz == UINT32_MAX)) {
        set_msg(rep, "%u kHz out of range", (unsigned)req->khz);
        return -EINVAL;
    }
    int r;
    switch (req->op) {
    case PRIVSEP_OP_CPUPOWER_GOVERNOR: {
        char g[PRIVSEP_VALUE_LEN];
        if (!privsep_value_ok(req->value)) {
            set_msg(rep, "refused governor name");
            return -EINVAL;
        }
        memcpy(g, req->value, sizeof(g));
        r = cpufreq_modify_policy_governor(req->cpu, g);
        break;
    }
    case PRIVSEP_OP_CPUPOWER_MIN:
        r = cpufreq_modify_policy_min(req->cpu, req->khz);
        break;
    case PRIVSEP_OP_CPUPOWER_MAX:
        r = cpufreq_modify_policy_max(req->cpu, req->khz);
        break;
    default:
        r = cpufreq_set_frequency(req->cpu, req->khz);
        break;
    }
    if (r < 0) {
        r = r == -1 ? -EIO : r; /* libcpupower: -1 is a short write */
        set_msg(rep, "libcpupower on cpu%u: %s", (unsigned)req->cpu, strerror(-r));
        return r;
    }
    return 0;
}

/* The helper's own backend (direct I/O as root) for capturing and restoring. */
static int backend(struct helper *h, struct privsep_reply *rep)
{
    if (h->b)
        return 0;
    struct gov_backend_params bp = {.sysfs_root = h->root, .impl = h->impl};
    return gov_backend_open(&bp, &h->b, rep->msg, sizeof(rep->msg));
}

static int do_save(struct helper *h, struct privsep_reply *rep)
{
    int r = backend(h, rep);
    if (r)
        return r;
    struct gov_saved_state *st = malloc(sizeof(*st));
    if (!st)
        return -ENOMEM;
    r = gov_backend_refresh(h->b, rep->msg, sizeof(rep->msg));
    if (!r)
        r = gov_saved_capture(h->b, st);
    if (!r)
        r = gov_saved_write(st, h->saved_path, rep->msg, sizeof(rep->msg));
    free(st);
    if (!r)
        h->owns_saved = 1;
    return r;
}

static int do_restore(struct helper *h, struct privsep_reply *rep)
{
    int r = backend(h, rep);
    if (r)
        return r;
    struct gov_events ev;
    gov_events_init(&ev);
    unsigned writes = 0;
    r = gov_saved_restore_file(h->b, h->saved_path, &ev, &writes, rep->msg, sizeof(rep->msg));
    rep->writes = writes;
    if (r == 0 || r == -ENOENT)
        h->owns_saved = 0;
    return r;
}

/* A live ember other than the agent this helper serves (whose pid is our parent). A zombie (a
 * killed helper nobody has reaped yet) is not alive. */
static int pid_is_other_ember(int pid)
{
    char path[64], comm[32], stat[512];
    if (pid <= 0 || pid == (int)getpid() || pid == (int)getppid())
        return 0;
    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    size_t len = 0;
    if (cmn_read_file(path, stat, sizeof(stat), &len) == 0) {
        const char *paren = strrchr(stat, ')'); /* "pid (comm) S ..." */
        if (paren && (paren[1] == ' ') && (paren[2] == 'Z' || paren[2] == 'X'))
            return 0;
    }
    snprintf(path, sizeof(path), "/proc/%d/comm", pid);
    return cmn_read_string(path, comm, sizeof(comm)) == 0 && strcmp(comm, "ember") == 0;
}

static int do_crash_restore(struct helper *h, struct privsep_reply *rep)
{
    struct gov_saved_state *st = malloc(sizeof(*st));
    if (!st)
        return -ENOMEM;
    int r = gov_saved_read(h->saved_path, st, rep->msg, sizeof(rep->msg));
    if (r == -ENOENT)
        goto out;
    if (r) {
        /* Unreadable: kept aside for a human rather than overwritten by new originals. */
        char bad[PATH_MAX + 8], why[PRIVSEP_MSG_LEN];
        snprintf(why, sizeof(why), "%s", rep->msg);
        snprintf(bad, sizeof(bad), "%s.bad", h->saved_path);
        if (rename(h->saved_path, bad) != 0) {
            r = -errno;
            set_msg(rep, "%.150s; and cannot move it aside: %s", why, strerror(errno));
            goto out;
        }
        set_msg(rep, "%.150s; moved to %.80s", why, bad);
        r = -EBADMSG;
        goto out;
    }
    rep->pid = st->pid;
    if (pid_is_other_ember(st->pid)) {
        set_msg(rep, "another ember (pid %d) controls the CPU frequencies", st->pid);
        r = -EBUSY;
        goto out;
    }
    if ((r = backend(h, rep)))
        goto out;
    struct gov_events ev;
    gov_events_init(&ev);
    unsigned writes = 0;
    r = gov_saved_apply(h->b, st, &ev, &writes, rep->msg, sizeof(rep->msg));
    rep->writes = writes;
    h->owns_saved = r != 0 && r != -EXDEV; /* a file that could not be restored is ours now */
    if (r == 0 && unlink(h->saved_path) != 0 && errno != ENOENT) {
        r = -errno;
        set_msg(rep, "%s: restored, but cannot remove it: %s", h->saved_path, strerror(errno));
    }
out:
    free(st);
    return r;
}

/* Checks a received record; 0 when it may be acted on, else -errno with rep->msg set. */
static int check_request(const struct privsep_request *req, ssize_t n, struct privsep_reply *rep)
{
    if (n != (ssize_t)sizeof(*req)) {
        set_msg(rep, "refused a message of %zd bytes (a request is %zu)", n, sizeof(*req));
        return -EMSGSIZE;
    }
    if (req->magic != PRIVSEP_MAGIC) {
        set_msg(rep, "refused a message without the magic number");
        return -EBADMSG;
    }
    if (req->op < PRIVSEP_OP_WRITE || req->op > PRIVSEP_OP_SAVED_EXISTS) {
        set_msg(rep, "refused unknown op %u", (unsigned)req->op);
        return -EOPNOTSUPP;
    }
    if (!memchr(req->path, '\0', sizeof(req->path)) ||
        !memchr(req->value, '\0', sizeof(req->value))) {
        set_msg(rep, "refused a string that is not terminated inside its field");
        return -EBADMSG;
    }
    rep->op = req->op;
    return 0;
}

static int handle(struct helper *h, const struct privsep_request *req, struct privsep_reply *rep)
{
    switch (req->op) {
    case PRIVSEP_OP_WRITE:
        return do_write(h, req, rep);
    case PRIVSEP_OP_READ_COUNTER:
        return do_read_counter(h, req, rep);
    case PRIVSEP_OP_CPUPOWER_GOVERNOR:
    case PRIVSEP_OP_CPUPOWER_MIN:
    case PRIVSEP_OP_CPUPOWER_MAX:
    case PRIVSEP_OP_CPUPOWER_SPEED:
        return do_cpupower(h, req, rep);
    case PRIVSEP_OP_SAVE:
        return do_save(h, rep);
    case PRIVSEP_OP_RESTORE:
        return do_restore(h, rep);
    case PRIVSEP_OP_CRASH_RESTORE:
        return do_crash_restore(h, rep);
    case PRIVSEP_OP_SAVED_EXISTS:
        return access(h->saved_path, F_OK) == 0 ? 1 : errno == ENOENT ? 0 : -errno;
    }
    return -EOPNOTSUPP;
}

/* The agent is gone: put back what it changed, if it did not. */
static int restore_on_exit(struct helper *h)
{
    if (!h->owns_saved || access(h->saved_path, F_OK) != 0)
        return 0;
    struct privsep_reply rep = {0};
    int r = do_restore(h, &rep);
    if (r && r != -ENOENT) {
        say("the agent ended; restoring %s failed: %s", h->saved_path, rep.msg);
        return r;
    }
    say("the agent ended without restoring; original CPU frequency settings restored from %s "
        "(%u value(s) written)",
        h->saved_path, (unsigned)rep.writes);
    return 0;
}

static void set_root(char root[PATH_MAX], char real[PATH_MAX], const char *given)
{
    snprintf(root, PATH_MAX, "%s", given && *given ? given : "/");
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        root[--n] = '\0';
    if (!realpath(root, real))
        snprintf(real, PATH_MAX, "%s", root); /* a root that does not exist: nothing opens */
}

void privsep_helper_run(int fd, const struct privsep_helper_params *p)
{
    struct helper h = {.fd = fd, .impl = p->impl};
    /* systemd signals every process of the service on stop: the agent's orderly shutdown
     * restores through us, then the socket closes and we exit. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_DUMPABLE, 0); /* no core file or ptrace attach from the agent's side */

    set_root(h.root, h.root_real, p->sysfs_root);
    set_root(h.troot, h.troot_real, p->telemetry_root);
    snprintf(h.saved_path, sizeof(h.saved_path), "%s", p->saved_path);
    /* From here on only the system calls the ops need (privsep_seccomp.c). */
    int sr = privsep_seccomp_install();
    if (sr < 0)
        say("no system-call filter (%s); serving without it", strerror(-sr));

    int rc = 0;
    for (;;) {
        struct privsep_request req;
        struct privsep_reply rep;
        memset(&req, 0, sizeof(req));
        memset(&rep, 0, sizeof(rep));
        /* MSG_TRUNC: the record's real length, so an oversized one is seen and refused. */
        ssize_t got = recv(fd, &req, sizeof(req), MSG_TRUNC);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break; /* the agent closed its end or died */
        rep.magic = PRIVSEP_MAGIC;
        int r = check_request(&req, got, &rep);
        rep.result = r ? r : handle(&h, &req, &rep);
        if (send(fd, &rep, sizeof(rep), MSG_NOSIGNAL) != (ssize_t)sizeof(rep))
            break;
    }
    rc = restore_on_exit(&h);
    gov_backend_free(h.b);
    close(fd);
    _exit(rc ? 1 : 0);
}
