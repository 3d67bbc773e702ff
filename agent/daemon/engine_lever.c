/* The engine's thread lever, daemon side (see engine_lever.h). */
#include "engine_lever.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void engine_lever_init(struct engine_lever *l, int cfg_threads)
{
    memset(l, 0, sizeof(*l));
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    l->ceiling = cfg_threads > 0 ? (uint32_t)cfg_threads : online > 0 ? (uint32_t)online : 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int i = 0; i < 64; i++)
            if (CPU_ISSET(i, &set))
                l->allowed |= 1ull << i;
}

void engine_lever_format_cpus(uint64_t mask, char *buf, size_t cap)
{
    if (!mask) {
        snprintf(buf, cap, "any cpu");
        return;
    }
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < 64; i++) {
        if (!(mask >> i & 1))
            continue;
        int j = i;
        while (j + 1 < 64 && (mask >> (j + 1) & 1))
            j++;
        int w = j > i ? snprintf(buf + n, cap - n, "%s%d-%d", n ? "," : "", i, j)
                      : snprintf(buf + n, cap - n, "%s%d", n ? "," : "", i);
        if (w < 0 || (size_t)w >= cap - n)
            return;
        n += (size_t)w;
        i = j;
    }
}

bool engine_lever_decide(struct engine_lever *l, bool enabled, unsigned gov_threads,
                         uint64_t gov_cpus, const char *phase, uint32_t *ret_threads,
                         uint64_t *ret_cpus, char *msg, size_t msg_len, char *warn, size_t warn_len)
{
    warn[0] = '\0';
    msg[0] = '\0';
    uint32_t threads = enabled ? gov_threads : 0;
    uint64_t cpus = enabled ? gov_cpus : 0;
    if (threads >= l->ceiling)
        threads = 0; /* all of them: the same thing, said one way */
    if (cpus & ~l->allowed) {
        if (cpus != l->warned) {
            char want[96], ok[96];
            engine_lever_format_cpus(cpus, want, sizeof(want));
            engine_lever_format_cpus(cpus & l->allowed, ok, sizeof(ok));
            snprintf(warn, warn_len,
                     "engine: the governor chose cpus %s, but this process may only use some "
                     "of them; running on %s",
                     want, ok);
            l->warned = cpus;
        }
        cpus &= l->allowed;
    }
    if (threads == l->threads && cpus == l->cpus)
        return false;
    char now[96];
    engine_lever_format_cpus(cpus, now, sizeof(now));
    snprintf(msg, msg_len, "engine: %u → %u threads on %s%s (%s%s)",
             l->threads ? l->threads : l->ceiling, threads ? threads : l->ceiling,
             cpus ? "cpus " : "", now, enabled ? "governor: " : "[engine] thread_lever off",
             enabled ? phase : "");
    l->threads = threads;
    l->cpus = cpus;
    *ret_threads = threads;
    *ret_cpus = cpus;
    return true;
}
