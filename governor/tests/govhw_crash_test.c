/* kill -9 of a process that changed the CPU frequencies, then a new start: the originals are
 * back. The helper (govhw_crash_helper) applies `performance` on a copy of a fake tree and is
 * SIGKILLed; a new governor object on the same tree finds the saved file, restores every value
 * and removes it. Run for a table driver (acpi-cpufreq), intel_pstate and the 3-cluster board. */
#include <math.h>
#include <signal.h>

#include "governor/governor.h"
#include "govhw_util.h"

static pid_t start_helper(const char *root, const char *saved, int *ret_fd)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(GOVHW_HELPER, GOVHW_HELPER, root, saved, "performance", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *ret_fd = fds[0];
    return pid;
}

static void crash_and_restart(const char *tree, const char *const *prep, const char *const *files,
                              const char *const *changed)
{
    char root[PATH_MAX], saved[PATH_MAX + 32], err[512] = "";
    char orig[8][64];
    if (govhw_copy_tree(tree, root, sizeof(root)) != 0) {
        CHECK(0);
        return;
    }
    snprintf(saved, sizeof(saved), "%s/run/ember/governor.saved", root);
    /* The machine as its owner left it (a lowered ceiling, turbo off): what must come back. */
    for (int k = 0; prep && prep[k]; k += 2)
        govhw_put(root, prep[k], prep[k + 1]);
    for (int k = 0; files[k]; k++)
        snprintf(orig[k], sizeof(orig[k]), "%s", govhw_get(root, files[k]));

    int fd = -1;
    pid_t pid = start_helper(root, saved, &fd);
    CHECK(pid > 0);
    char line[64] = "";
    ssize_t n = read(fd, line, sizeof(line) - 1);
    close(fd);
    CHECK_MSG(n > 0 && strncmp(line, "applied", 7) == 0, "%s: helper said '%s'", tree, line);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    /* The helper really changed things, and left its saved file. */
    for (int k = 0; files[k]; k++)
        if (changed[k])
            CHECK_MSG(strcmp(govhw_get(root, files[k]), changed[k]) == 0, "%s: %s = %s", tree,
                      files[k], govhw_get(root, files[k]));
    CHECK(access(saved, F_OK) == 0);

    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    p.sysfs_root = root;
    p.saved_path = saved;
    struct gov_governor *g = NULL;
    CHECK_EQ_INT(gov_governor_new(&p, &g, err, sizeof(err)), 0);
    for (int k = 0; files[k]; k++)
        CHECK_MSG(strcmp(govhw_get(root, files[k]), orig[k]) == 0, "%s: %s = %s, was %s", tree,
                  files[k], govhw_get(root, files[k]), orig[k]);
    CHECK(access(saved, F_OK) != 0);
    struct gov_events *ev = gov_governor_events(g);
    int found = 0;
    struct gov_event e;
    while (gov_events_pop(ev, &e))
        found |= e.kind == GOV_EVENT_CRASH_RESTORE && strstr(e.detail, "restored");
    CHECK_MSG(found, "%s: no crash_restore event", tree);
    gov_governor_free(g);
    govhw_rm_rf(root);
}

int main(void)
{
    static const char *const acpi_files[] = {
        "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
        "sys/devices/system/cpu/cpufreq/policy3/scaling_governor",
        "sys/devices/system/cpu/cpufreq/policy3/scaling_min_freq",
        "sys/devices/system/cpu/cpufreq/policy3/scaling_max_freq",
        "sys/devices/system/cpu/cpufreq/boost",
        NULL};
    static const char *const acpi_changed[] = {"userspace", "userspace", NULL, NULL, NULL, NULL};
    crash_and_restart("acpi-cpufreq-4c", NULL, acpi_files, acpi_changed);

    static const char *const intel_files[] = {
        "sys/devices/system/cpu/cpufreq/policy1/scaling_min_freq",
        "sys/devices/system/cpu/cpufreq/policy1/scaling_max_freq",
        "sys/devices/system/cpu/cpufreq/policy1/scaling_governor",
        "sys/devices/system/cpu/intel_pstate/no_turbo", NULL};
    static const char *const intel_prep[] = {
        "sys/devices/system/cpu/cpufreq/policy1/scaling_max_freq", "2000000\n",
        "sys/devices/system/cpu/intel_pstate/no_turbo", "1\n", NULL};
    static const char *const intel_changed[] = {NULL, "3400000", "powersave", "0", NULL};
    crash_and_restart("intel-pstate-n100", intel_prep, intel_files, intel_changed);

    static const char *const rk_files[] = {
        "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
        "sys/devices/system/cpu/cpufreq/policy4/scaling_governor",
        "sys/devices/system/cpu/cpufreq/policy6/scaling_governor", NULL};
    static const char *const rk_changed[] = {"userspace", "userspace", "userspace", NULL};
    crash_and_restart("rk3588-3cluster", NULL, rk_files, rk_changed);
    return et_finish();
}
