/* Test helper for govhw_crash: takes over the CPU frequencies of a fake tree the way the agent
 * does (governor object, one tick applies the policy and saves the originals first), says
 * "applied" on stdout, then waits to be killed with SIGKILL, so nothing gets restored. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "governor/governor.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s ROOT SAVED_PATH POLICY\n", argv[0]);
        return 2;
    }
    struct gov_governor_params p;
    gov_governor_params_defaults(&p);
    p.sysfs_root = argv[1];
    p.saved_path = argv[2];
    snprintf(p.tunables.policy, sizeof(p.tunables.policy), "%s", argv[3]);
    struct gov_governor *g = NULL;
    char err[512] = "";
    if (gov_governor_new(&p, &g, err, sizeof(err)) != 0) {
        fprintf(stderr, "helper: %s\n", err);
        return 1;
    }
    struct gov_tick_result res;
    int r = gov_governor_tick(g, cmn_now_ns(), GOV_PHASE_PREFILL, NAN, NAN, &res);
    if (r != 0) {
        fprintf(stderr, "helper: tick failed: %d\n", r);
        return 1;
    }
    printf("applied %u\n", (unsigned)res.c[0].khz);
    fflush(stdout);
    for (;;)
        pause(); /* SIGKILL ends us here */
}
