/* The energy meter requests are charged from: the main loop updates it from each telemetry power
 * reading; the engine worker reads it at request start and end. Between readings energy is
 * extrapolated with the last power, so requests shorter than a sample interval still get their
 * share rather than zero. Thread-safe. */
#ifndef AGENT_METER_H
#define AGENT_METER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct agent_meter {
    pthread_mutex_t lock;
    bool valid;
    uint64_t t_ns;   /* monotonic time of the last reading */
    double energy_j; /* energy total at t_ns */
    double power_w;  /* power at t_ns (0 when unknown) */
    double served_j; /* the highest total handed out: extrapolation past a reading can overshoot
                        the next one (power fell), and the total must never go backwards */
};

void agent_meter_init(struct agent_meter *m);
void agent_meter_destroy(struct agent_meter *m);
/* A new reading; power_w NaN keeps the previous power. */
void agent_meter_update(struct agent_meter *m, uint64_t now_ns, double energy_j, double power_w);
/* Energy total at now_ns (NaN before the first reading); never lower than a total it returned
 * before, so a request's energy (end - start) is never negative. */
double agent_meter_energy_at(struct agent_meter *m, uint64_t now_ns);
/* Last known power in watts (NaN before the first reading). */
double agent_meter_power(struct agent_meter *m);

#endif
