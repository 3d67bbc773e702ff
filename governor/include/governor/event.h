/* Events the governor's hardware side raises: a write that did not read back, a sensor that
 * vanished or returned garbage, a crash restore, a conflicting daemon. They go into a small
 * bounded ring the caller drains (the agent turns them into log lines, MQTT `event` messages and
 * telemetry rows); when it is full the oldest are dropped and counted, so a flapping sensor can
 * never grow memory. */
#ifndef GOVERNOR_EVENT_H
#define GOVERNOR_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum gov_event_kind {
    GOV_EVENT_WRITE_MISMATCH = 0, /* a value written did not read back */
    GOV_EVENT_WRITE_FAILED,       /* the write itself failed (errno in code) */
    GOV_EVENT_SENSOR_LOST,        /* a sensor that existed is gone */
    GOV_EVENT_SENSOR_GARBAGE,     /* a sensor returned something that is not a plausible value */
    GOV_EVENT_SENSOR_RECOVERED,   /* every sensor is valid again */
    GOV_EVENT_SAFE_STATE,         /* the runtime entered (or left) the safe state */
    GOV_EVENT_RESTORED,           /* original settings restored (exit, command or crash) */
    GOV_EVENT_CRASH_RESTORE,      /* a saved file from an earlier run was found and applied */
    GOV_EVENT_CONFLICT,           /* another daemon that drives cpufreq runs */
    GOV_EVENT_MONITOR_ONLY,       /* no permission to write: the governor only watches */
    GOV_EVENT_POLICY_CHANGED,     /* set_policy switched the policy */
    GOV_EVENT_HW_QUIRK,           /* the tree lacks or garbles a file we could work around */
    GOV_EVENT_KIND_COUNT,
};

struct gov_event {
    uint64_t ts_ns; /* CLOCK_MONOTONIC */
    enum gov_event_kind kind;
    int code; /* 0 or -errno */
    char detail[256];
};

#define GOV_EVENTS_CAP 64

struct gov_events {
    struct gov_event ring[GOV_EVENTS_CAP];
    size_t head;      /* index of the oldest */
    size_t count;     /* events held */
    uint64_t dropped; /* events overwritten before anyone drained them */
};

/* "write_mismatch", "sensor_lost", ... (stable names used in JSON and MQTT). */
const char *gov_event_kind_name(enum gov_event_kind kind);

void gov_events_init(struct gov_events *ev);
/* Appends one event (NULL ev is allowed and ignored, so callers need not check). */
void gov_events_push(struct gov_events *ev, enum gov_event_kind kind, int code, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
/* Takes the oldest event; returns 1 when one was copied to ret, 0 when empty. */
int gov_events_pop(struct gov_events *ev, struct gov_event *ret);

#endif
