/* Detection of other programs that drive cpufreq (they would undo our writes or we theirs):
 * scans <root>/proc/<pid>/comm. The kernel truncates comm to 15 bytes, so names are compared
 * after the same truncation. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "governor/safety.h"

static const struct {
    const char *name;
    const char *why;
} known[] = {
    {"tlp", "TLP sets cpufreq governors, EPP and boost"},
    {"auto-cpufreq", "auto-cpufreq switches governors and turbo"},
    {"power-profiles-daemon", "power-profiles-daemon sets EPP / platform profiles"},
    {"thermald", "thermald may cap cpufreq and intel_pstate limits"},
    {"tuned", "tuned profiles set governors and EPP"},
    {"cpufreqd", "cpufreqd switches cpufreq policies"},
};

int gov_conflicts_detect(const char *root, struct gov_conflict *ret, size_t cap, size_t *ret_n)
{
    char dir[PATH_MAX], path[PATH_MAX], comm[64];
    size_t n = 0;
    int r = cmn_path(dir, sizeof(dir), root, "proc");
    if (r)
        return r;
    DIR *d = opendir(dir);
    if (!d) {
        if (ret_n)
            *ret_n = 0;
        return 0; /* no procfs under this root: nothing to see */
    }
    long self = (long)getpid();
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        if (cmn_path(path, sizeof(path), dir, "%ld/comm", pid) ||
            cmn_read_string(path, comm, sizeof(comm)) != 0)
            continue;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
            if (strncmp(comm, known[k].name, 15) != 0 ||
                strlen(comm) != (strlen(known[k].name) > 15 ? 15 : strlen(known[k].name)))
                continue;
            if (n < cap) {
                ret[n].pid = (int)pid;
                snprintf(ret[n].comm, sizeof(ret[n].comm), "%.15s", comm);
                ret[n].why = known[k].why;
            }
            n++;
        }
    }
    closedir(d);
    if (ret_n)
        *ret_n = n < cap ? n : cap;
    return (int)n;
}
