/* stderr logging with journald priority prefixes and rate limiting of repeated messages. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/timeutil.h"

#define RATE_SLOTS     32
#define RATE_WINDOW_NS (10ULL * CMN_NS_PER_S)

struct rate_slot {
    uint64_t hash;
    uint64_t first_ns;
    unsigned suppressed;
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* written by a SIGHUP reload while other threads log: atomic */
static atomic_int log_max = AGENT_LOG_INFO;
static int log_journal = -1;
static struct rate_slot rate[RATE_SLOTS];
static char log_command[64] = "";

static int journal_detect(void);

/* What a line says after "ember <command>: " (the names parse_level accepts are the config's). */
static const char *const level_labels[] = {
    [AGENT_LOG_ERR] = "error", [AGENT_LOG_WARNING] = "warning", [AGENT_LOG_NOTICE] = "notice",
    [AGENT_LOG_INFO] = "info", [AGENT_LOG_DEBUG] = "debug",
};

static const char *const level_names[] = {
    [AGENT_LOG_ERR] = "err",   [AGENT_LOG_WARNING] = "warning", [AGENT_LOG_NOTICE] = "notice",
    [AGENT_LOG_INFO] = "info", [AGENT_LOG_DEBUG] = "debug",
};

void agent_log_set_level(enum agent_log_level max_level)
{
    atomic_store_explicit(&log_max, (int)max_level, memory_order_relaxed);
}

int agent_log_level_parse(const char *name, enum agent_log_level *ret)
{
    for (int l = AGENT_LOG_ERR; l <= AGENT_LOG_DEBUG; l++) {
        if (strcmp(name, level_names[l]) == 0) {
            *ret = (enum agent_log_level)l;
            return 0;
        }
    }
    return -EINVAL;
}

void agent_log_set_command(const char *name)
{
    snprintf(log_command, sizeof(log_command), "%s", name ? name : "");
}

const char *agent_log_command(void)
{
    return log_command;
}

static void print_prefix(const char *label)
{
    if (log_command[0])
        fprintf(stderr, "ember %s: %s: ", log_command, label);
    else
        fprintf(stderr, "ember: %s: ", label);
}

void agent_log_hint(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    if (log_journal < 0)
        log_journal = journal_detect();
    if (log_journal)
        fprintf(stderr, "<%d>", (int)AGENT_LOG_NOTICE);
    print_prefix("hint");
    fprintf(stderr, "%s\n", msg);
    pthread_mutex_unlock(&log_lock);
}

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected; prefixes only make sense when
 * that stream is still our stderr (not when a child redirected it). */
static int journal_detect(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    if (!js)
        return 0;
    unsigned long long dev, ino;
    if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    struct stat st;
    if (fstat(2, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Returns 1 when the message should be printed; *ret_suppressed gets how many identical messages
 * were swallowed since it was last printed. */
static int rate_allow(uint64_t hash, uint64_t now, unsigned *ret_suppressed)
{
    struct rate_slot *oldest = &rate[0];
    for (int i = 0; i < RATE_SLOTS; i++) {
        struct rate_slot *s = &rate[i];
        if (s->hash == hash && s->first_ns != 0) {
            if (now - s->first_ns < RATE_WINDOW_NS) {
                s->suppressed++;
                return 0;
            }
            *ret_suppressed = s->suppressed;
            s->first_ns = now;
            s->suppressed = 0;
            return 1;
        }
        if (s->first_ns < oldest->first_ns)
            oldest = s;
    }
    oldest->hash = hash;
    oldest->first_ns = now;
    oldest->suppressed = 0;
    *ret_suppressed = 0;
    return 1;
}

__attribute__((format(printf, 3, 0))) static void
log_line(enum agent_log_level level, bool rate_limited, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load_explicit(&log_max, memory_order_relaxed))
        return;
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    pthread_mutex_lock(&log_lock);
    if (log_journal < 0)
        log_journal = journal_detect();
    unsigned suppressed = 0;
    if (!rate_limited || rate_allow(fnv1a(msg), cmn_now_ns(), &suppressed)) {
        if (log_journal)
            fprintf(stderr, "<%d>", (int)level);
        else
            print_prefix(level_labels[level]);
        if (suppressed)
            fprintf(stderr, "%s (%u identical messages suppressed)\n", msg, suppressed);
        else
            fprintf(stderr, "%s\n", msg);
    }
    pthread_mutex_unlock(&log_lock);
}

void agent_log(enum agent_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, true, fmt, ap);
    va_end(ap);
}

void agent_log_event(enum agent_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, false, fmt, ap);
    va_end(ap);
}
