/* The whitelist of the privileged helper: which attributes it writes or reads for the agent.
 * Paths are relative to the sysfs root (no leading '/'), already split into components that are
 * plain names (never "", "." or ".."; only [A-Za-z0-9_.:-]). The helper checks the path the agent
 * asked for and, after opening it, the path the kernel says it opened, so a symlink cannot lead
 * out of the list. Pure functions: the unit test and the helper share them. */
#ifndef AGENT_PRIVSEP_PATH_H
#define AGENT_PRIVSEP_PATH_H

enum privsep_access {
    PRIVSEP_ACCESS_WRITE,        /* cpufreq / intel_pstate / devfreq knobs */
    PRIVSEP_ACCESS_READ_COUNTER, /* RAPL energy_uj, hwmon energyN_input */
};

/* 1 when rel is on the list for that access, else 0. */
int privsep_path_allowed(const char *rel, enum privsep_access access);

/* 1 when v is a value the helper writes: 1..31 characters of [A-Za-z0-9_-]. */
int privsep_value_ok(const char *v);

#endif
