/* The fleet as an operator sees it from a central MQTT broker: one row per appliance, built from
 * the topics each agent publishes under <prefix>/<id>/ (docs/telemetry.md) and the bridge state
 * deploy/mosquitto/edge.conf adds. Payloads come from the network: anything malformed is ignored
 * for that field (never trusted, never printed raw), ids and texts are kept to printable ASCII. */
#ifndef AGENT_FLEET_VIEW_H
#define AGENT_FLEET_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define FLEET_ID_MAX      64   /* bytes of a device id */
#define FLEET_MAX_DEVICES 4096 /* more ids than this are refused, not stored */

enum fleet_tri { FLEET_UNKNOWN = -1, FLEET_NO = 0, FLEET_YES = 1 };

struct fleet_device {
    char id[FLEET_ID_MAX + 1];
    enum fleet_tri status; /* <prefix>/<id>/status: online / offline */
    enum fleet_tri bridge; /* <prefix>/<id>/bridge/state: 1 / 0 (mosquitto bridge notification) */
    char policy[32];       /* governor/state, else the state payload's; "" unknown */
    double power_w, temp_c, j_per_token, tokens_per_s; /* NAN: unknown */
    char model[96];                                    /* "" unknown or none loaded */
    double last_ts; /* newest "ts" of a state or session payload (Unix seconds), NAN if none */
    bool live;      /* a non-retained state arrived: the appliance is reachable right now */
};

struct fleet_view {
    char prefix[64];
    struct fleet_device *dev; /* sorted by id */
    size_t n, cap;
};

void fleet_view_init(struct fleet_view *v, const char *prefix);
void fleet_view_free(struct fleet_view *v);

/* Takes one message (retained: the broker's stored copy, not a live one). 0 when it was used;
 * -EINVAL when the topic is not an appliance's (wrong prefix, bad id) or the payload is unusable;
 * -ENOSPC beyond FLEET_MAX_DEVICES; -ENOMEM. */
int fleet_view_ingest(struct fleet_view *v, const char *topic, const void *payload, size_t len,
                      bool retained);

/* true when the appliance says online and either its bridge (if it reports one) is up or a live
 * state of it just arrived (a bridge's retained state can be stale: after a central broker
 * restart mosquitto may publish the bridge's old will after its new "1"). */
bool fleet_device_online(const struct fleet_device *d);

/* One line per appliance (header first), or a JSON array; now_s is the Unix time "last seen"
 * is measured from. */
void fleet_view_print(const struct fleet_view *v, double now_s, FILE *out);
/* Returns a malloc'd JSON array (NULL when out of memory). */
char *fleet_view_json(const struct fleet_view *v, double now_s);

#endif
