/* Logging for the agent (libraries never print). Lines go to stderr; under systemd (JOURNAL_STREAM
 * names our stderr) each line starts with a <N> syslog priority that journald understands.
 * Identical messages repeated within a window are rate-limited and counted (agent_log_event
 * lines excepted). */
#ifndef AGENT_LOG_H
#define AGENT_LOG_H

enum agent_log_level {
    AGENT_LOG_ERR = 3,
    AGENT_LOG_WARNING = 4,
    AGENT_LOG_NOTICE = 5,
    AGENT_LOG_INFO = 6,
    AGENT_LOG_DEBUG = 7,
};

void agent_log_set_level(enum agent_log_level max_level);
/* Parses "err|warning|notice|info|debug"; -EINVAL when unknown. */
int agent_log_level_parse(const char *name, enum agent_log_level *ret);

/* Names the sub-command ("run", "governor set") every line is prefixed with: lines read
 * "ember run: error: what and where"; without one, "ember: error: ...". */
void agent_log_set_command(const char *name);
const char *agent_log_command(void);
/* One "ember <command>: hint: ..." line after an error (never rate-limited). */
void agent_log_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void agent_log(enum agent_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A state change (a connection lost, a connection restored): printed every time, never counted
 * by the rate limiter, so two outages alike print as two lines. For events that happen at most
 * once per change of state, never for something that can repeat in a loop. */
void agent_log_event(enum agent_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)    agent_log(AGENT_LOG_ERR, __VA_ARGS__)
#define log_warn(...)   agent_log(AGENT_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) agent_log(AGENT_LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   agent_log(AGENT_LOG_INFO, __VA_ARGS__)
#define log_debug(...)  agent_log(AGENT_LOG_DEBUG, __VA_ARGS__)

#endif
