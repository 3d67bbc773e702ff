/* The privileged helper, for real: forked by privsep_start against a copy of a fake sysfs tree,
 * sent what the agent sends and what it never would. Whitelisted writes land; traversal, paths
 * outside the root, files off the list, symlinks out of the tree, bad values, oversized, short,
 * unterminated or unknown messages are refused with an error reply and the helper keeps serving;
 * RAPL counters are read; the saved-settings file is captured and restored; and when the agent
 * side dies (closed or killed -9) the helper restores the originals and exits. Needs no root:
 * the copy is the test's own. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "ember_test.h"
#include "governor/governor.h"
#include "privsep.h"
#include "privsep_path.h"
#include "privsep_seccomp.h"

#define CPUFREQ "sys/devices/system/cpu/cpufreq"
#define RAPL    "sys/devices/virtual/powercap/intel-rapl"

static char tmpdir[256];
static char root[512];

static void path_of(char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/%s", root, rel);
}

static void read_rel(const char *rel, char *buf, size_t cap)
{
    char p[1024];
    path_of(p, sizeof(p), rel);
    if (cmn_read_string(p, buf, cap) != 0)
        snprintf(buf, cap, "(unreadable)");
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static struct privsep *start(void)
{
    char saved[1024], err[512] = "";
    snprintf(saved, sizeof(saved), "%s/run/governor.saved", tmpdir);
    struct privsep_params p = {
        .sysfs_root = root, .telemetry_root = root, .saved_path = saved, .impl = GOV_BACKEND_SYSFS};
    struct privsep *ps = NULL;
    int r = privsep_start(&p, &ps, err, sizeof(err));
    CHECK_MSG(r == 0 && ps, "privsep_start: %s", err);
    return ps;
}

static void test_whitelist_table(void)
{
    static const struct {
        const char *rel;
        enum privsep_access a;
        int ok;
    } cases[] = {
        {CPUFREQ "/policy0/scaling_max_freq", PRIVSEP_ACCESS_WRITE, 1},
        {CPUFREQ "/policy12/scaling_governor", PRIVSEP_ACCESS_WRITE, 1},
        {CPUFREQ "/policy0/energy_performance_preference", PRIVSEP_ACCESS_WRITE, 1},
        {CPUFREQ "/boost", PRIVSEP_ACCESS_WRITE, 1},
        {"sys/devices/system/cpu/intel_pstate/no_turbo", PRIVSEP_ACCESS_WRITE, 1},
        {"sys/class/devfreq/ff9a0000.gpu/max_freq", PRIVSEP_ACCESS_WRITE, 1},
        {"sys/class/devfreq/dmc/userspace/set_freq", PRIVSEP_ACCESS_WRITE, 1},
        {"sys/devices/platform/fb000000.gpu/devfreq/fb000000.gpu/governor", PRIVSEP_ACCESS_WRITE,
         1},
        {RAPL "/intel-rapl:0/energy_uj", PRIVSEP_ACCESS_READ_COUNTER, 1},
        {RAPL "/intel-rapl:0/intel-rapl:0:1/energy_uj", PRIVSEP_ACCESS_READ_COUNTER, 1},
        {"sys/class/powercap/intel-rapl:0/energy_uj", PRIVSEP_ACCESS_READ_COUNTER, 1},
        /* refused */
        {CPUFREQ "/policy0/cpuinfo_max_freq", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policy0/scaling_max_freq", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {RAPL "/intel-rapl:0/energy_uj", PRIVSEP_ACCESS_WRITE, 0},
        {RAPL "/intel-rapl:0/constraint_0_power_limit_uw", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policy0/../../../../../../etc/passwd", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policy0/./scaling_max_freq", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "//policy0/scaling_max_freq", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policy0/scaling_max_freq/", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policyX/scaling_max_freq", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policy0 /scaling_max_freq", PRIVSEP_ACCESS_WRITE, 0},
        {"etc/shadow", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/class/devfreq/x/../../../kernel/mm/ksm/run", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/devices/devfreq/x/governor", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/class/powercap/dtpm/energy_uj", PRIVSEP_ACCESS_READ_COUNTER, 0},
        /* hwmon energy counters (amd_energy), nothing else of hwmon */
        {"sys/class/hwmon/hwmon2/energy1_input", PRIVSEP_ACCESS_READ_COUNTER, 1},
        {"sys/class/hwmon/hwmon12/energy17_input", PRIVSEP_ACCESS_READ_COUNTER, 1},
        {"sys/devices/platform/amd_energy.0/hwmon/hwmon2/energy1_input",
         PRIVSEP_ACCESS_READ_COUNTER, 1},
        {"sys/class/hwmon/hwmon2/energy1_input", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/class/hwmon/hwmon2/temp1_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/class/hwmon/hwmon2/energy1_label", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/class/hwmon/hwmon2/energy_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/class/hwmon/hwmon2/energy1x_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/class/hwmon/hwmonX/energy1_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/class/hwmon/hwmon2/device/energy1_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/devices/platform/x/hwmon2/energy1_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"etc/hwmon/hwmon2/energy1_input", PRIVSEP_ACCESS_READ_COUNTER, 0},
        /* the memory lever writes min_freq/max_freq of a dmc device, through its class link
           or where the link resolves; nothing else of a devfreq device */
        {"sys/class/devfreq/dmc/min_freq", PRIVSEP_ACCESS_WRITE, 1},
        {"sys/devices/platform/dmc/devfreq/dmc/max_freq", PRIVSEP_ACCESS_WRITE, 1},
        {"sys/class/devfreq/dmc/polling_interval", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/class/devfreq/dmc/available_frequencies", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/class/devfreq/dmc/target_freq", PRIVSEP_ACCESS_WRITE, 0},
        {"sys/class/devfreq/dmc/min_freq", PRIVSEP_ACCESS_READ_COUNTER, 0},
        {"sys/devices/platform/dmc/devfreq/dmc/trans_stat", PRIVSEP_ACCESS_WRITE, 0},
        {CPUFREQ "/policy0/energy_performance_available_preferences", PRIVSEP_ACCESS_WRITE, 0},
        {"", PRIVSEP_ACCESS_WRITE, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_MSG(privsep_path_allowed(cases[i].rel, cases[i].a) == cases[i].ok, "%s: want %d",
                  cases[i].rel, cases[i].ok);
    CHECK(privsep_value_ok("2400000") && privsep_value_ok("balance_performance"));
    CHECK(!privsep_value_ok("") && !privsep_value_ok("1 2") && !privsep_value_ok("../x") &&
          !privsep_value_ok("1\n") && !privsep_value_ok("0123456789012345678901234567890123"));
}

static int write_attr(struct privsep *ps, const char *path, const char *value,
                      struct privsep_reply *rep)
{
    struct privsep_request req = {.magic = PRIVSEP_MAGIC, .op = PRIVSEP_OP_WRITE};
    snprintf(req.path, sizeof(req.path), "%s", path);
    snprintf(req.value, sizeof(req.value), "%s", value);
    return privsep_exchange_raw(ps, &req, sizeof(req), rep);
}

static void test_writes(struct privsep *ps)
{
    const struct gov_sysio *io = privsep_sysio(ps);
    char p[1024], v[64];
    struct privsep_reply rep;

    path_of(p, sizeof(p), CPUFREQ "/policy0/scaling_max_freq");
    CHECK_EQ_INT(io->write(io->ctx, p, "2000000"), 0);
    read_rel(CPUFREQ "/policy0/scaling_max_freq", v, sizeof(v));
    CHECK_STR(v, "2000000");

    /* traversal out of the tree, lexically */
    snprintf(p, sizeof(p), "%s/" CPUFREQ "/policy0/../../../../../../../outside", root);
    CHECK_EQ_INT(write_attr(ps, p, "1", &rep), -EPERM);
    CHECK_CONTAINS(rep.msg, "whitelist");
    /* a path outside the root, and one that only starts like it */
    CHECK_EQ_INT(write_attr(ps, "/etc/hostname", "x", &rep), -EPERM);
    snprintf(p, sizeof(p), "%s-other/" CPUFREQ "/policy0/scaling_max_freq", root);
    CHECK_EQ_INT(write_attr(ps, p, "1", &rep), -EPERM);
    /* a file of the tree that is not a knob */
    path_of(p, sizeof(p), CPUFREQ "/policy0/cpuinfo_max_freq");
    CHECK_EQ_INT(write_attr(ps, p, "1", &rep), -EPERM);
    read_rel(CPUFREQ "/policy0/cpuinfo_max_freq", v, sizeof(v));
    CHECK_STR(v, "2901000");

    /* the attribute itself a symlink out of the tree */
    CHECK_EQ_INT(sh("echo keep > '%s/outside' && rm '%s/" CPUFREQ "/policy1/scaling_max_freq' && "
                    "ln -s '%s/outside' '%s/" CPUFREQ "/policy1/scaling_max_freq'",
                    tmpdir, root, tmpdir, root),
                 0);
    path_of(p, sizeof(p), CPUFREQ "/policy1/scaling_max_freq");
    CHECK_EQ_INT(write_attr(ps, p, "666", &rep), -ELOOP);
    CHECK_CONTAINS(rep.msg, "symbolic link");
    /* a directory on the way a symlink out of the tree: the path is fine, where it lands not */
    CHECK_EQ_INT(sh("mkdir -p '%s/evil' && echo keep > '%s/evil/scaling_max_freq' && "
                    "ln -s '%s/evil' '%s/" CPUFREQ "/policy9'",
                    tmpdir, tmpdir, tmpdir, root),
                 0);
    path_of(p, sizeof(p), CPUFREQ "/policy9/scaling_max_freq");
    CHECK_EQ_INT(write_attr(ps, p, "666", &rep), -EPERM);
    CHECK_CONTAINS(rep.msg, "resolves to");
    char outside[1024];
    snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
    CHECK(cmn_read_string(outside, v, sizeof(v)) == 0 && strcmp(v, "keep") == 0);
    snprintf(outside, sizeof(outside), "%s/evil/scaling_max_freq", tmpdir);
    CHECK(cmn_read_string(outside, v, sizeof(v)) == 0 && strcmp(v, "keep") == 0);
    /* the tree as it was, for the saved-file tests */
    CHECK_EQ_INT(sh("rm '%s/" CPUFREQ "/policy9' '%s/" CPUFREQ "/policy1/scaling_max_freq' && "
                    "echo 2901000 > '%s/" CPUFREQ "/policy1/scaling_max_freq'",
                    root, root, root),
                 0);

    /* values that are not a short word */
    path_of(p, sizeof(p), CPUFREQ "/policy0/scaling_governor");
    CHECK_EQ_INT(write_attr(ps, p, "performance\nx", &rep), -EINVAL);
    CHECK_EQ_INT(write_attr(ps, p, "", &rep), -EINVAL);
    read_rel(CPUFREQ "/policy0/scaling_governor", v, sizeof(v));
    CHECK_STR(v, "schedutil");
    /* a path too long for the message is refused on the agent's side */
    char longp[600];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    CHECK_EQ_INT(io->write(io->ctx, longp, "1"), -ENAMETOOLONG);
}

static void test_bad_messages(struct privsep *ps)
{
    struct privsep_reply rep;
    struct privsep_request req = {.magic = PRIVSEP_MAGIC, .op = PRIVSEP_OP_SAVED_EXISTS};
    char big[sizeof(req) + 64];
    memset(big, 0, sizeof(big));
    memcpy(big, &req, sizeof(req));
    CHECK_EQ_INT(privsep_exchange_raw(ps, big, sizeof(big), &rep), -EMSGSIZE);
    CHECK_CONTAINS(rep.msg, "bytes");
    CHECK_EQ_INT(privsep_exchange_raw(ps, &req, 12, &rep), -EMSGSIZE);
    CHECK_EQ_INT(privsep_exchange_raw(ps, big, 1, &rep), -EMSGSIZE);

    struct privsep_request bad = req;
    bad.magic = 0x12345678;
    CHECK_EQ_INT(privsep_exchange_raw(ps, &bad, sizeof(bad), &rep), -EBADMSG);
    bad = req;
    bad.op = 99;
    CHECK_EQ_INT(privsep_exchange_raw(ps, &bad, sizeof(bad), &rep), -EOPNOTSUPP);
    bad.op = 0;
    CHECK_EQ_INT(privsep_exchange_raw(ps, &bad, sizeof(bad), &rep), -EOPNOTSUPP);
    bad = req;
    bad.op = PRIVSEP_OP_WRITE;
    memset(bad.path, 'a', sizeof(bad.path)); /* no NUL inside the field */
    CHECK_EQ_INT(privsep_exchange_raw(ps, &bad, sizeof(bad), &rep), -EBADMSG);
    CHECK_CONTAINS(rep.msg, "terminated");
    /* and it still serves */
    CHECK_EQ_INT(privsep_exchange_raw(ps, &req, sizeof(req), &rep), 0);
}

static void test_counters_and_cpupower(struct privsep *ps)
{
    char p[1024], v[64];
    uint64_t c = 0;
    path_of(p, sizeof(p), RAPL "/intel-rapl:0/energy_uj");
    CHECK(chmod(p, 0400) == 0); /* root-only, as on kernels since CVE-2020-8694 */
    read_rel(RAPL "/intel-rapl:0/energy_uj", v, sizeof(v));
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c), 0);
    CHECK(c > 0 && c == strtoull(v, NULL, 10));
    /* through the class link, as rapl.c finds it on a real machine */
    CHECK_EQ_INT(sh("cd '%s/sys/class/powercap' && rm -f intel-rapl:0 && "
                    "ln -s ../../devices/virtual/powercap/intel-rapl/intel-rapl:0 intel-rapl:0",
                    root),
                 0);
    path_of(p, sizeof(p), "sys/class/powercap/intel-rapl:0/energy_uj");
    uint64_t c2 = 0;
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c2), 0);
    CHECK(c2 == c);
    path_of(p, sizeof(p), CPUFREQ "/policy0/scaling_max_freq");
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c), -EPERM); /* not a counter on the list */
    path_of(p, sizeof(p), RAPL "/intel-rapl:0/energy_uj");
    struct privsep_reply rep;
    CHECK_EQ_INT(write_attr(ps, p, "0", &rep), -EPERM); /* counters are read, never written */

    /* amd_energy's hwmon counters are root-only too (CVE-2020-12912): read through the class
     * link and where it resolves; the same device's other files are not counters */
    CHECK_EQ_INT(
        sh("d='%s/sys/devices/platform/amd_energy.0/hwmon/hwmon9' && mkdir -p \"$d\" && "
           "echo 987654321 > \"$d/energy1_input\" && echo Esocket0 > \"$d/energy1_label\" && "
           "echo 45000 > \"$d/temp1_input\" && chmod 0400 \"$d/energy1_input\" && "
           "ln -s ../../devices/platform/amd_energy.0/hwmon/hwmon9 "
           "'%s/sys/class/hwmon/hwmon9'",
           root, root),
        0);
    path_of(p, sizeof(p), "sys/class/hwmon/hwmon9/energy1_input");
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c), 0);
    CHECK_EQ_INT(c, 987654321ULL);
    path_of(p, sizeof(p), "sys/devices/platform/amd_energy.0/hwmon/hwmon9/energy1_input");
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c), 0);
    path_of(p, sizeof(p), "sys/class/hwmon/hwmon9/temp1_input");
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c), -EPERM);
    path_of(p, sizeof(p), "sys/class/hwmon/hwmon9/energy1_label");
    CHECK_EQ_INT(privsep_read_counter(ps, p, &c), -EPERM);
    path_of(p, sizeof(p), "sys/class/hwmon/hwmon9/energy1_input");
    CHECK_EQ_INT(write_attr(ps, p, "0", &rep), -EPERM);
    CHECK_EQ_INT(
        sh("rm -rf '%s/sys/class/hwmon/hwmon9' '%s/sys/devices/platform/amd_energy.0'", root, root),
        0);

    /* libcpupower acts on the real /sys: refused for a helper that serves a fake root */
    const struct gov_sysio *io = privsep_sysio(ps);
    CHECK_EQ_INT(io->cpupower_write(io->ctx, GOV_SYSIO_CPUPOWER_MAX, 0, 2000000, NULL), -EINVAL);
}

static void test_saved_file(struct privsep *ps)
{
    const struct gov_sysio *io = privsep_sysio(ps);
    char p[1024], v[64], err[512] = "";
    unsigned writes = 0;
    int pid = 0;
    CHECK_EQ_INT(io->saved_exists(io->ctx), 0);
    CHECK_EQ_INT(io->saved_crash_restore(io->ctx, &writes, &pid, err, sizeof(err)), -ENOENT);
    CHECK_EQ_INT(io->saved_restore(io->ctx, &writes, err, sizeof(err)), -ENOENT);
    CHECK_MSG(io->saved_save(io->ctx, err, sizeof(err)) == 0, "save: %s", err);
    CHECK_EQ_INT(io->saved_exists(io->ctx), 1);
    path_of(p, sizeof(p), CPUFREQ "/policy2/scaling_max_freq");
    CHECK_EQ_INT(io->write(io->ctx, p, "1500000"), 0);
    writes = 0;
    CHECK_MSG(io->saved_restore(io->ctx, &writes, err, sizeof(err)) == 0, "restore: %s", err);
    CHECK(writes >= 1);
    read_rel(CPUFREQ "/policy2/scaling_max_freq", v, sizeof(v));
    CHECK_STR(v, "2901000");
    CHECK_EQ_INT(io->saved_exists(io->ctx), 0);
}

/* A helper restores only what its agent saved: a second one on the same saved file (an agent
 * that found another ember in control) leaves it alone when it ends. */
static void test_restores_only_its_own(void)
{
    struct privsep *a = start();
    struct privsep *b = a ? start() : NULL;
    if (!a || !b) {
        privsep_stop(a);
        return;
    }
    const struct gov_sysio *io = privsep_sysio(a);
    char p[1024], v[64], err[512] = "";
    CHECK_MSG(io->saved_save(io->ctx, err, sizeof(err)) == 0, "save: %s", err);
    path_of(p, sizeof(p), CPUFREQ "/policy1/scaling_governor");
    CHECK_EQ_INT(io->write(io->ctx, p, "performance"), 0);
    CHECK_EQ_INT(privsep_sysio(b)->saved_exists(b), 1);
    CHECK_EQ_INT(privsep_stop(b), 0);
    read_rel(CPUFREQ "/policy1/scaling_governor", v, sizeof(v));
    CHECK_STR(v, "performance"); /* b did not restore a's settings */
    CHECK_EQ_INT(io->saved_exists(io->ctx), 1);
    CHECK_EQ_INT(privsep_stop(a), 0);
    read_rel(CPUFREQ "/policy1/scaling_governor", v, sizeof(v));
    CHECK_STR(v, "schedutil");
}

/* The other way round: the helper dies under its agent. Its socket hangs up (what the daemon's
 * loop watches for), privsep_reap says how it ended, and every later request fails at once with
 * -EPIPE instead of trying the dead socket; privsep_stop then returns the same status. */
static void test_helper_dies(void)
{
    struct privsep *ps = start();
    if (!ps)
        return;
    const struct gov_sysio *io = privsep_sysio(ps);
    CHECK_EQ_INT(io->saved_exists(io->ctx), 0);
    CHECK_EQ_INT(kill(privsep_helper_pid(ps), SIGKILL), 0);
    struct pollfd pfd = {.fd = privsep_fd(ps), .events = POLLRDHUP};
    CHECK_EQ_INT(poll(&pfd, 1, 5000), 1);
    CHECK_MSG(pfd.revents & (POLLHUP | POLLRDHUP), "no hang-up seen: revents %#x",
              (unsigned)pfd.revents);
    char how[96] = "";
    CHECK_EQ_INT(privsep_reap(ps, how, sizeof(how)), 128 + SIGKILL);
    CHECK_CONTAINS(how, "killed by signal 9");
    char p[1024];
    path_of(p, sizeof(p), CPUFREQ "/policy0/scaling_governor");
    CHECK_EQ_INT(io->write(io->ctx, p, "performance"), -EPIPE);
    char err[512] = "";
    CHECK_EQ_INT(io->saved_save(io->ctx, err, sizeof(err)), -EPIPE);
    CHECK_CONTAINS(err, "privileged helper: gone");
    CHECK_EQ_INT(privsep_reap(ps, how, sizeof(how)), 128 + SIGKILL); /* once is enough */
    CHECK_EQ_INT(privsep_stop(ps), 128 + SIGKILL);
}

/* The agent side ends: closed (privsep_stop), or its process killed -9. Either way the helper
 * restores what is still saved and exits. */
static void test_restore_when_agent_dies(int kill9)
{
    char v[64];
    if (!kill9) {
        struct privsep *ps = start();
        if (!ps)
            return;
        const struct gov_sysio *io = privsep_sysio(ps);
        char p[1024], err[512] = "";
        CHECK_MSG(io->saved_save(io->ctx, err, sizeof(err)) == 0, "save: %s", err);
        path_of(p, sizeof(p), CPUFREQ "/policy3/scaling_governor");
        CHECK_EQ_INT(io->write(io->ctx, p, "powersave"), 0);
        read_rel(CPUFREQ "/policy3/scaling_governor", v, sizeof(v));
        CHECK_STR(v, "powersave");
        CHECK_EQ_INT(privsep_stop(ps), 0);
        read_rel(CPUFREQ "/policy3/scaling_governor", v, sizeof(v));
        CHECK_STR(v, "schedutil");
        return;
    }
    /* An "agent" process that starts its helper, saves, changes a value, reports, and waits to
     * be killed. */
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t agent = fork();
    if (agent == 0) {
        close(pipefd[0]);
        struct privsep *ps = start();
        const struct gov_sysio *io = ps ? privsep_sysio(ps) : NULL;
        char p[1024], err[512];
        path_of(p, sizeof(p), CPUFREQ "/policy3/scaling_min_freq");
        int ok = io && io->saved_save(io->ctx, err, sizeof(err)) == 0 &&
                 io->write(io->ctx, p, "2000000") == 0;
        int helper = ps ? (int)privsep_helper_pid(ps) : 0;
        if (write(pipefd[1], ok ? &helper : &(int){0}, sizeof(int)) != sizeof(int))
            _exit(1);
        pause();
        _exit(0);
    }
    close(pipefd[1]);
    int helper = 0;
    CHECK(read(pipefd[0], &helper, sizeof(helper)) == sizeof(helper) && helper > 0);
    close(pipefd[0]);
    read_rel(CPUFREQ "/policy3/scaling_min_freq", v, sizeof(v));
    CHECK_STR(v, "2000000");
    kill(agent, SIGKILL);
    waitpid(agent, NULL, 0);
    /* The helper (now an orphan) restores and exits. */
    char saved[1024];
    snprintf(saved, sizeof(saved), "%s/run/governor.saved", tmpdir);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = helper > 0 && kill(helper, 0) != 0 && access(saved, F_OK) != 0;
        if (!gone)
            usleep(50000);
    }
    CHECK_MSG(gone, "helper %d still running or %s still there", helper, saved);
    read_rel(CPUFREQ "/policy3/scaling_min_freq", v, sizeof(v));
    CHECK_STR(v, "800000");
}

/* The helper's system-call filter, in a child that installs it: what the ops use works, what
 * an attacker would want (a socket, exec, ptrace, a uid change) fails with EPERM. */
static void test_seccomp(void)
{
    CHECK(privsep_seccomp_allows(SYS_openat) && privsep_seccomp_allows(SYS_recvfrom));
    CHECK(!privsep_seccomp_allows(SYS_socket) && !privsep_seccomp_allows(SYS_execve) &&
          !privsep_seccomp_allows(SYS_ptrace) && !privsep_seccomp_allows(SYS_setuid) &&
          !privsep_seccomp_allows(SYS_connect) && !privsep_seccomp_allows(SYS_mount));
    pid_t pid = fork();
    if (pid == 0) {
        int r = privsep_seccomp_install();
        if (r == -EOPNOTSUPP)
            _exit(77);
        if (r != 0)
            _exit(10);
        char p[1024], v[64];
        path_of(p, sizeof(p), CPUFREQ "/policy0/scaling_governor");
        if (cmn_read_string(p, v, sizeof(v)) != 0) /* openat, read, close: allowed */
            _exit(11);
        if (getppid() <= 0)
            _exit(12);
        errno = 0;
        if (syscall(SYS_socket, AF_INET, SOCK_STREAM, 0) != -1 || errno != EPERM)
            _exit(13);
        errno = 0;
        if (syscall(SYS_execve, "/bin/true", (char *[]){"true", NULL}, environ) != -1 ||
            errno != EPERM)
            _exit(14);
        errno = 0;
        if (syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0) != -1 || errno != EPERM)
            _exit(15);
        errno = 0;
        if (syscall(SYS_setuid, 0) != -1 || errno != EPERM)
            _exit(16);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        printf("seccomp check not run: no filter for this architecture\n");
    else
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "filtered child: status %d",
                  status);
}

/* The memory and EPP levers of the runtime governor through the helper on the rk3588 tree: the
 * dmc limits are written by the helper (its whitelist, the class link resolved), a devfreq file
 * off the list is refused, and the helper restores the dmc limits when the agent side closes. */
static void test_memory_lever_through_helper(void)
{
    char v[64], p[1024], err[512] = "";
    snprintf(root, sizeof(root), "%s/rk", tmpdir);
    if (sh("cp -a '%s/tests/sysfs-trees/rk3588-3cluster' '%s' && chmod -R u+w '%s'",
           EMBER_SOURCE_DIR, root, root) != 0) {
        CHECK_MSG(0, "cannot copy rk3588-3cluster");
        return;
    }
    struct privsep *ps = start();
    if (!ps)
        return;
    struct gov_governor_params gp;
    gov_governor_params_defaults(&gp);
    gp.sysfs_root = root;
    gp.sysio = privsep_sysio(ps);
    snprintf(gp.tunables.policy, sizeof(gp.tunables.policy), "balanced");
    struct gov_governor *g = NULL;
    CHECK_MSG(gov_governor_new(&gp, &g, err, sizeof(err)) == 0, "governor: %s", err);
    if (g) {
        uint64_t t = 1000000000ULL;
        for (int k = 0; k < 3; k++)
            gov_governor_tick(g, t += 100000000ULL, GOV_PHASE_DECODE, NAN, 10.0, NULL);
        read_rel("sys/class/devfreq/dmc/min_freq", v, sizeof(v));
        CHECK_STR(v, "2112000000");
        read_rel("sys/devices/platform/dmc/devfreq/dmc/max_freq", v, sizeof(v));
        CHECK_STR(v, "2112000000");
        struct gov_status st;
        gov_governor_status(g, &st);
        CHECK_EQ_INT(st.write_errors, 0);
        gov_governor_free(g); /* no restore: the helper does it when the agent side closes */
    }
    struct privsep_reply rep;
    path_of(p, sizeof(p), "sys/class/devfreq/dmc/polling_interval");
    CHECK_EQ_INT(write_attr(ps, p, "1", &rep), -EPERM);
    read_rel("sys/class/devfreq/dmc/polling_interval", v, sizeof(v));
    CHECK_STR(v, "50");
    CHECK_EQ_INT(privsep_stop(ps), 0);
    read_rel("sys/class/devfreq/dmc/min_freq", v, sizeof(v));
    CHECK_STR(v, "528000000");
    read_rel("sys/class/devfreq/dmc/max_freq", v, sizeof(v));
    CHECK_STR(v, "2112000000");
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ember-privsep.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(root, sizeof(root), "%s/tree", tmpdir);
    if (sh("cp -a '%s/sysfs-trees/acpi-cpufreq-4c' '%s' && chmod -R u+w '%s'", et_shared_dir(),
           root, root) != 0) {
        fprintf(stderr, "cannot copy the fake tree from %s\n", et_shared_dir());
        return 1;
    }
    char v[64];
    read_rel(CPUFREQ "/policy3/scaling_min_freq", v, sizeof(v));
    CHECK_STR(v, "800000"); /* what test_restore_when_agent_dies expects back */

    test_whitelist_table();
    test_seccomp();
    struct privsep *ps = start();
    if (ps) {
        test_writes(ps);
        test_bad_messages(ps);
        test_counters_and_cpupower(ps);
        test_saved_file(ps);
        CHECK_EQ_INT(privsep_stop(ps), 0);
    }
    test_restores_only_its_own();
    test_restore_when_agent_dies(0);
    test_restore_when_agent_dies(1);
    test_memory_lever_through_helper();
    test_helper_dies();
    sh("rm -rf '%s'", tmpdir);
    return et_finish();
}
