/* Exact phase attribution of energy: see phase_energy.h. */
#include "phase_energy.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

void agent_phase_energy_init(struct agent_phase_energy *pe)
{
    memset(pe, 0, sizeof(*pe));
    pthread_mutex_init(&pe->lock, NULL);
    pe->phase = AGENT_PHASE_IDLE;
    pe->mark_j = NAN;
}

void agent_phase_energy_destroy(struct agent_phase_energy *pe)
{
    pthread_mutex_destroy(&pe->lock);
}

static unsigned slot(enum agent_phase p)
{
    return (unsigned)p < AGENT_PHASES ? (unsigned)p : AGENT_PHASE_IDLE;
}

/* Charges the open interval up to energy_j to the current phase; locked. */
static void close_interval(struct agent_phase_energy *pe, double energy_j)
{
    if (!isfinite(energy_j))
        return;
    if (!isfinite(pe->mark_j)) {
        pe->mark_j = energy_j;
        return;
    }
    /* A reading below the mark (the worker and the main loop read the meter at slightly
     * different moments and may take the lock in the other order; or the meter's extrapolation
     * overshot its next real reading) charges nothing and leaves the mark where it is, so no
     * joule counts twice and the parts add up to the highest reading minus the first. */
    if (energy_j > pe->mark_j) {
        pe->acc_j[slot(pe->phase)] += energy_j - pe->mark_j;
        pe->total_j[slot(pe->phase)] += energy_j - pe->mark_j;
        pe->mark_j = energy_j;
    }
}

void agent_phase_energy_switch(struct agent_phase_energy *pe, enum agent_phase phase,
                               double energy_j)
{
    pthread_mutex_lock(&pe->lock);
    close_interval(pe, energy_j);
    pe->phase = phase;
    pthread_mutex_unlock(&pe->lock);
}

int agent_phase_energy_take(struct agent_phase_energy *pe, double energy_j,
                            double out[AGENT_PHASES])
{
    pthread_mutex_lock(&pe->lock);
    bool had_mark = isfinite(pe->mark_j);
    close_interval(pe, energy_j);
    int rc = had_mark && isfinite(energy_j) ? 0 : -ENODATA;
    if (rc == 0)
        memcpy(out, pe->acc_j, sizeof(pe->acc_j));
    memset(pe->acc_j, 0, sizeof(pe->acc_j));
    pthread_mutex_unlock(&pe->lock);
    return rc;
}

void agent_phase_energy_totals(struct agent_phase_energy *pe, double out[AGENT_PHASES])
{
    pthread_mutex_lock(&pe->lock);
    memcpy(out, pe->total_j, sizeof(pe->total_j));
    pthread_mutex_unlock(&pe->lock);
}
