/* Documented exit codes of every ember command (README "Exit codes"), shared by the CLI, the
 * configuration checker and the daemon. */
#ifndef AGENT_EXIT_CODES_H
#define AGENT_EXIT_CODES_H

enum ember_exit {
    EMBER_EXIT_OK = 0,
    EMBER_EXIT_FAILURE = 1,     /* the command ran and failed (I/O, model, hardware) */
    EMBER_EXIT_USAGE = 2,       /* bad arguments or invalid configuration: nothing was started */
    EMBER_EXIT_UNSUPPORTED = 3, /* this machine cannot do it (no cpufreq, not root, ...) */
    /* `ember agent`: its privileged helper died; nothing can set or restore the CPU frequency
     * settings any more, and an unprivileged agent cannot fork another root helper, so it stopped
     * for the service manager to start both again (docs/agent.md, "When the helper dies") */
    EMBER_EXIT_HELPER_LOST = 4,
};

#endif
