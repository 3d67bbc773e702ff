/* Energy attributed to engine phases exactly: the meter is read at every phase change (the
 * worker's phase hook) and at every telemetry sample, so each prefill, decode and idle interval
 * is charged the energy between its own two readings, not the phase a 1 Hz sample happened to
 * see. Between power readings the meter extrapolates with the last power (meter.h), so the split
 * inside one sample interval is as good as that; the parts always add up to the interval's
 * energy. Thread-safe: the worker switches, the main loop takes. */
#ifndef AGENT_PHASE_ENERGY_H
#define AGENT_PHASE_ENERGY_H

#include <pthread.h>
#include <stdint.h>

#include "worker.h"

#define AGENT_PHASES 3 /* idle, prefill, decode: enum agent_phase */

struct agent_phase_energy {
    pthread_mutex_t lock;
    enum agent_phase phase;       /* the phase now */
    double mark_j;                /* meter energy when the open interval began (NaN: unknown) */
    double acc_j[AGENT_PHASES];   /* closed intervals since the last take */
    double total_j[AGENT_PHASES]; /* since start, for /metrics */
};

void agent_phase_energy_init(struct agent_phase_energy *pe);
void agent_phase_energy_destroy(struct agent_phase_energy *pe);
/* The engine enters phase; energy_j is the meter's total now (NaN when unknown). */
void agent_phase_energy_switch(struct agent_phase_energy *pe, enum agent_phase phase,
                               double energy_j);
/* Closes the open interval at energy_j and returns the energy per phase since the last take
 * (indexed by enum agent_phase). -ENODATA while the meter has no energy (out left untouched). */
int agent_phase_energy_take(struct agent_phase_energy *pe, double energy_j,
                            double out[AGENT_PHASES]);
/* Totals since start per phase (NaN-free; 0 before any energy). */
void agent_phase_energy_totals(struct agent_phase_energy *pe, double out[AGENT_PHASES]);

#endif
