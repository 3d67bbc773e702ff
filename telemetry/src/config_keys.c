/* The [telemetry] configuration keys telemetry enforces itself, as the agent's configuration
 * shows and checks them (common/keydesc.h). The power model's coefficients use the ranges
 * tel_estimate_params_check applies. The store's keys are bounded here for a deployed box; the
 * store's own check (store.c check_params) accepts a superset, since tests commit every few
 * milliseconds, so the checker never accepts a value the store refuses. Their defaults are
 * tel_store_params_defaults' (config_test compares them). */
#include "common/keydesc.h"
#include "telemetry/power.h"

static const struct cmn_range commit_interval_ms = {100, 600000, false};
static const struct cmn_range retention_days = {1, 36500, false};
static const struct cmn_range max_db_mb = {1, 1048576, false};

static const struct cmn_key_desc config_keys[] = {
    {"estimate_idle_w", CMN_KEY_DOUBLE, &tel_estimate_ranges.idle_w, NULL, "2",
     "Power model (used when no RAPL/hwmon/battery sensor exists): platform floor in watts "
     "(memory, uncore, board)."},
    {"estimate_cpu_static_w", CMN_KEY_DOUBLE, &tel_estimate_ranges.cpu_static_w, NULL, "0.15",
     "Power model: leakage watts per CPU."},
    {"estimate_cpu_dyn_w", CMN_KEY_DOUBLE, &tel_estimate_ranges.cpu_dyn_w, NULL, "1",
     "Power model: watts per CPU per (GHz x V^2) at full utilisation."},
    {"commit_interval_ms", CMN_KEY_INT, &commit_interval_ms, NULL, "5000",
     "Samples are committed in one transaction this often (at most this much is lost on a "
     "crash)."},
    {"retention_days", CMN_KEY_INT, &retention_days, NULL, "7",
     "Raw samples older than this are deleted (1-minute rollups are kept 90 days, 1-hour "
     "rollups 5 years)."},
    {"max_db_mb", CMN_KEY_INT, &max_db_mb, NULL, "256",
     "Size quota for the database; the oldest samples go first."},
};

const struct cmn_key_desc *tel_config_keys(size_t *ret_n)
{
    *ret_n = sizeof(config_keys) / sizeof(config_keys[0]);
    return config_keys;
}
