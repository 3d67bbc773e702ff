/* The bounded event ring shared by the backend, the sensors and the runtime. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/timeutil.h"
#include "governor/event.h"

static const char *const kind_names[GOV_EVENT_KIND_COUNT] = {
    [GOV_EVENT_WRITE_MISMATCH] = "write_mismatch",
    [GOV_EVENT_WRITE_FAILED] = "write_failed",
    [GOV_EVENT_SENSOR_LOST] = "sensor_lost",
    [GOV_EVENT_SENSOR_GARBAGE] = "sensor_garbage",
    [GOV_EVENT_SENSOR_RECOVERED] = "sensor_recovered",
    [GOV_EVENT_SAFE_STATE] = "safe_state",
    [GOV_EVENT_RESTORED] = "restored",
    [GOV_EVENT_CRASH_RESTORE] = "crash_restore",
    [GOV_EVENT_CONFLICT] = "conflict",
    [GOV_EVENT_MONITOR_ONLY] = "monitor_only",
    [GOV_EVENT_POLICY_CHANGED] = "policy_changed",
    [GOV_EVENT_HW_QUIRK] = "hw_quirk",
};

const char *gov_event_kind_name(enum gov_event_kind kind)
{
    if ((unsigned)kind >= GOV_EVENT_KIND_COUNT)
        return "unknown";
    return kind_names[kind];
}

void gov_events_init(struct gov_events *ev)
{
    if (ev)
        memset(ev, 0, sizeof(*ev));
}

void gov_events_push(struct gov_events *ev, enum gov_event_kind kind, int code, const char *fmt,
                     ...)
{
    if (!ev)
        return;
    size_t slot;
    if (ev->count == GOV_EVENTS_CAP) {
        /* Full: overwrite the oldest so the newest news is never the one lost. */
        slot = ev->head;
        ev->head = (ev->head + 1) % GOV_EVENTS_CAP;
        ev->dropped++;
    } else {
        slot = (ev->head + ev->count) % GOV_EVENTS_CAP;
        ev->count++;
    }
    struct gov_event *e = &ev->ring[slot];
    e->ts_ns = cmn_now_ns();
    e->kind = kind;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
}

int gov_events_pop(struct gov_events *ev, struct gov_event *ret)
{
    if (!ev || ev->count == 0)
        return 0;
    if (ret)
        *ret = ev->ring[ev->head];
    ev->head = (ev->head + 1) % GOV_EVENTS_CAP;
    ev->count--;
    return 1;
}
