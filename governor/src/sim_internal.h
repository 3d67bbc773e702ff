/* Inside the simulator: the plant's physics in sim.c shared with the wall-power, firmware-limit
 * and steady-state terms in sim_plant.c. Not part of the governor's API. */
#ifndef GOVERNOR_SIM_INTERNAL_H
#define GOVERNOR_SIM_INTERNAL_H

#include "governor/sim.h"

/* sim.c: package watts with every cluster at khz[i], busy[i] of the time at activity act[i]. */
double gov_sim_package_w(const struct gov_sim_profile *p, const uint32_t *khz, const double *busy,
                         const double *act, double temp_c);
/* sim.c: package watts in an engine phase (background load on the other clusters). */
double gov_sim_phase_package_w(const struct gov_sim_profile *p, enum gov_phase ph,
                               const uint32_t *khz, double temp_c);
double gov_sim_decode_token_s(const struct gov_sim_profile *p, const uint32_t *khz);
double gov_sim_prefill_tok_s(const struct gov_sim_profile *p, const uint32_t *khz);
uint32_t gov_sim_snap_khz(const struct gov_sim_cluster *k, uint32_t khz);

/* sim_plant.c: DRAM traffic in an engine phase (GB/s) and the wall power it all adds up to. */
double gov_sim_dram_gbs(const struct gov_sim_profile *p, enum gov_phase ph, const uint32_t *khz);
double gov_sim_wall_w(const struct gov_sim_profile *p, double package_w, double dram_gbs);

/* sim_plant.c: the firmware's PL1/PL2 (PPT) state: a running average of package power over
 * pl_tau_s. The limit is pl2_w while the average is below PL1, else PL1; 0 = none. */
struct gov_sim_fw_limit {
    double avg_w;
};
void gov_sim_fw_limit_init(const struct gov_sim_profile *p, struct gov_sim_fw_limit *fw,
                           double package_w);
double gov_sim_fw_limit_w(const struct gov_sim_profile *p, const struct gov_sim_fw_limit *fw);
void gov_sim_fw_limit_update(const struct gov_sim_profile *p, struct gov_sim_fw_limit *fw,
                             double package_w, double dt_s);

/* sim_oracle.c: the clocks of a static configuration in this phase, on the clusters that run
 * engine threads (active: per cluster, as gov_sim_placement gives). */
void gov_sim_fixed_clocks(const struct gov_sim_profile *p, const struct gov_sim_options *o,
                          enum gov_phase ph, const unsigned *active, uint32_t *want);

/* sim.c: the engine's own CPUs (its clusters' cores, the fastest cluster first; at most 64, CPU
 * numbers below 64) into order; returns how many: its configured thread count. */
unsigned gov_sim_engine_cpus(const struct gov_sim_profile *p, unsigned *order);
/* sim.c: engine cores per cluster for `threads` threads on `cpus` (bit i = CPU i), as the
 * thread lever asks; 0 threads: the engine as configured, which is also the ceiling; cpus 0:
 * the engine's own CPUs in order. */
void gov_sim_placement(const struct gov_sim_profile *p, unsigned threads, uint64_t cpus,
                       unsigned *active);

/* sim_plant.c: books one step's wall energy under the phase it belongs to. */
void gov_sim_account_wall(struct gov_sim_result *r, enum gov_phase ph, double joules);
/* sim_plant.c: wall J/token figures once the run is over. */
void gov_sim_finish_wall(struct gov_sim_result *r);

#endif
