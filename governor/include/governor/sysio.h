/* The governor's backend I/O: how it reaches the attributes and the saved-settings file it may not
 * touch itself. Without one (NULL) the backend writes sysfs files directly and the runtime keeps
 * the saved-settings file itself, as a root CLI command does. With one, every write of a cpufreq
 * knob, every libcpupower call that writes, and every operation on the saved-settings file goes
 * through these functions instead: the agent hands in the client of its privileged helper
 * (agent/privsep), so the unprivileged agent governs the CPU without being able to write sysfs.
 * Reads of world-readable attributes stay direct. The policy code does not see the difference.
 * Every function returns 0 or -errno; the pointers are all required. */
#ifndef GOVERNOR_SYSIO_H
#define GOVERNOR_SYSIO_H

#include <stddef.h>
#include <stdint.h>

/* The libcpupower calls that write (they always act on /sys/devices/system/cpu). */
enum gov_sysio_cpupower {
    GOV_SYSIO_CPUPOWER_GOVERNOR = 1, /* cpufreq_modify_policy_governor(cpu, governor) */
    GOV_SYSIO_CPUPOWER_MIN,          /* cpufreq_modify_policy_min(cpu, khz) */
    GOV_SYSIO_CPUPOWER_MAX,          /* cpufreq_modify_policy_max(cpu, khz) */
    GOV_SYSIO_CPUPOWER_SPEED,        /* cpufreq_set_frequency(cpu, khz) */
};

struct gov_sysio {
    void *ctx;
    /* Writes value (no newline) to the attribute at path (the full path, sysfs_root included),
     * as cmn_write_string does. */
    int (*write)(void *ctx, const char *path, const char *value);
    /* Runs one libcpupower write; governor is used by GOV_SYSIO_CPUPOWER_GOVERNOR only. */
    int (*cpupower_write)(void *ctx, enum gov_sysio_cpupower op, unsigned cpu, uint32_t khz,
                          const char *governor);
    /* Captures the current settings into the saved-settings file (gov_saved_capture +
     * gov_saved_write on the other side). */
    int (*saved_save)(void *ctx, char *err, size_t err_len);
    /* Restores the saved-settings file and removes it (gov_saved_restore_file); -ENOENT when
     * there is none. */
    int (*saved_restore)(void *ctx, unsigned *ret_writes, char *err, size_t err_len);
    /* At start: restores a file a crashed run left behind. 0 restored (file removed); -ENOENT
     * none; -EBUSY another live ember owns it; -EBADMSG it was unreadable and was moved to
     * PATH.bad; another -errno when the restore failed (the file is kept). *ret_pid: the pid
     * that saved it (0 unknown). */
    int (*saved_crash_restore)(void *ctx, unsigned *ret_writes, int *ret_pid, char *err,
                               size_t err_len);
    /* Whether the saved-settings file exists: 1, 0, or -errno. */
    int (*saved_exists)(void *ctx);
};

#endif
