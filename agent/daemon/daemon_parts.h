/* The daemon's parts (lifecycle.c, governor_bridge.c, telemetry_bridge.c, mqtt_ask.c) share this
 * one state. Everything in it belongs to the loop thread unless a comment says otherwise: the
 * engine worker and the HTTP threads reach the loop only through the message queue (queue.h)
 * and read only what shared_lock guards. See docs/agent.md. */
#ifndef AGENT_DAEMON_PARTS_H
#define AGENT_DAEMON_PARTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine_lever.h"
#include "gpio.h"
#include "governor/governor.h"
#include "http.h"
#include "loop.h"
#include "meter.h"
#include "phase_energy.h"
#include "queue.h"
#include "request.h"
#include "worker.h"

/* Messages that may wait for the loop: a request produces at most a few (phases, its session). */
#define DAEMON_QUEUE_CAPACITY 1024

struct tel_power;
struct tel_store;
struct tel_mqtt;
struct eng_model;
struct ask_job;
struct agent_plugins;
struct agent_models;

struct tel_wall;

struct agent_daemon {
    struct agent_config cfg;
    /* the [governor] section as the file last said it: a reload re-applies the policy and the
     * power cap only when the file changed them, so a choice made over the API or MQTT
     * survives a reload of unrelated keys */
    struct cfg_governor file_governor;
    const char *config_path;
    struct agent_loop *loop;
    int signal_fd;
    int exit_code;

    struct privsep *privsep; /* the root helper when [agent] user is set (privsep/) */
    /* the helper died: nothing can write cpufreq or restore the saved settings any more, so the
     * governor is frozen and the agent stops with EMBER_EXIT_HELPER_LOST (lifecycle.c) */
    bool helper_lost;
    struct gov_governor *gov;
    struct tel_power *power;
    struct tel_store *store;
    struct tel_mqtt *mqtt;
    struct eng_model *model;
    struct agent_worker *worker;
    struct agent_http *http;
    struct agent_plugins *plugins; /* agent/plugins/: loaded after the privilege drop */
    struct agent_models *models;   /* [models] dir (agent/models/registry.h) */
    struct agent_meter meter;
    struct agent_phase_energy phase_energy; /* energy by engine phase, exactly */
    atomic_int energy_source;               /* enum tel_source of the last reading */
    /* The second boundary, the whole box at the wall (telemetry/wall.h): its channel (loop
     * thread only), its meter and exact phase split like the package's, and what /metrics shows
     * of it (wall_source, wall_measured under shared_lock). */
    struct tel_wall *wall;
    struct agent_meter wall_meter;
    struct agent_phase_energy wall_phase_energy;
    char wall_source[96];
    bool wall_measured;

    struct agent_timer *gov_timer, *sample_timer, *mqtt_timer, *watchdog_timer;
    /* [gpio] (gpio_bridge.c): NULL when off */
    struct agent_gpio *gpio;
    struct agent_timer *gpio_timer;
    bool ready;      /* READY=1 was sent: the LED leaves "starting" */
    bool power_lost; /* the power-loss input is asserted: the governor stays restored and
                        every telemetry sample is written at once */
    int mqtt_fd;
    uint64_t mqtt_generation; /* the client's socket generation the watch belongs to */
    unsigned mqtt_failures;   /* connection attempts failed since the last success */
    bool mqtt_want_write;

    atomic_int phase; /* enum agent_phase, written by the worker */
    /* the busiest phase (decode > prefill > idle) since the last telemetry sample: a sample
     * taken just after a short request still belongs to the work it measured */
    atomic_int sample_phase;
    uint64_t phase_since_ns;
    enum agent_phase last_phase;
    uint64_t last_tokens, last_tokens_ns; /* for tokens/s */
    double tokens_per_s;
    uint64_t sample_prev_tokens, sample_prev_ns;
    double last_power_w, last_energy_j, last_temp_c;
    struct gov_tick_result last_tick;
    struct engine_lever lever; /* the governor's thread choice, as handed to the worker */
    char lever_error[160];     /* the worker's last refusal, as logged */

    /* the one way other threads reach the loop */
    struct daemon_queue *queue;
    uint64_t queue_dropped_logged; /* how many refused pushes the log has told of */

    /* what HTTP threads read, under shared_lock */
    pthread_mutex_t shared_lock;
    char *gov_json;
    char policy[GOV_NAME_MAX];
    double power_cap_w;
    unsigned n_freq;
    char freq_names[GOV_MAX_CLUSTERS][GOV_NAME_MAX];
    double freq_khz[GOV_MAX_CLUSTERS];
};

/* ---- governor_bridge.c: the governor on the loop thread, and what others may ask of it ---- */

int daemon_start_governor(struct agent_daemon *d);
/* After the drop to [agent] user: parses the calibration curve as that user (0; an unreadable or
 * broken curve is logged and the governor runs without one). */
int daemon_governor_load_calibration(struct agent_daemon *d);
/* [governor] backend as the governor's enum ("sysfs", "libcpupower", else auto) */
enum gov_backend_impl daemon_backend_impl(const char *name);
void daemon_governor_tick(struct agent_daemon *d, uint64_t now_ns);
/* Hands the tick's engine_threads/engine_cpus to the worker when they change what it runs
 * (engine_lever.h), logging once per change and once per refusal. */
void daemon_engine_lever(struct agent_daemon *d, const struct gov_tick_result *r,
                         enum agent_phase phase);
void daemon_on_governor_timer(void *user, uint64_t now_ns);
void daemon_governor_drain_events(struct agent_daemon *d);
/* Copies a governor status snapshot to what HTTP threads read (under shared_lock). */
void daemon_governor_share_status(struct agent_daemon *d, const struct gov_status *st);
void daemon_governor_publish_state(struct agent_daemon *d);
/* Applies a policy (empty or NULL: unchanged) and/or a power cap (NaN: unchanged; 0: off). */
int daemon_governor_apply(struct agent_daemon *d, const char *policy, double cap_w, char *err,
                          size_t err_len);
/* The frequency a cluster runs at, as reported (kHz). */
uint32_t daemon_cluster_khz(const struct gov_status_cluster *c);
/* Worker hooks (engine worker thread). */
void daemon_hook_phase(void *user, enum agent_phase phase);
void daemon_hook_policy(void *user, char *buf, size_t len);
/* HTTP hooks (connection threads). */
int daemon_hook_governor_get(void *user, char *buf, size_t len);
int daemon_hook_governor_set(void *user, const char *policy, double power_cap_w, char *err,
                             size_t err_len);

/* ---- telemetry_bridge.c: power, the SQLite store and the MQTT client on the loop thread ---- */

int daemon_start_telemetry(struct agent_daemon *d);
int daemon_start_mqtt(struct agent_daemon *d);
/* One place that stores and publishes an event. */
void daemon_record_event(struct agent_daemon *d, const char *kind, const char *detail);
void daemon_on_sample_timer(void *user, uint64_t now_ns);
/* The power model wants per-CPU numbers: spreads each cluster's mean utilisation and its
 * frequency over the CPUs of its cpu_mask (at most cap); returns how many were written. */
unsigned daemon_spread_per_cpu(const struct gov_status *st, double *util, double *freq_mhz,
                               unsigned cap);
void daemon_mqtt_update_watch(struct agent_daemon *d, uint64_t now_ns);
void daemon_store_session(struct agent_daemon *d, const struct agent_result *r, uint64_t ts_ns);
/* Worker hook (engine worker thread). */
void daemon_hook_request_done(void *user, const struct agent_result *r);
/* HTTP hook (connection threads). */
void daemon_hook_metrics(void *user, struct agent_metrics_snapshot *snap);

/* ---- gpio_bridge.c: the [gpio] LED, fan, button and power-loss input on the loop thread ---- */

/* Requests the lines; call while still root (before privsep_drop) and after the loop exists. */
int daemon_start_gpio(struct agent_daemon *d);
/* LED off, fan left on, lines released. */
void daemon_gpio_stop(struct agent_daemon *d);
/* Hands the LED and the fan what changed (phase, throttling, errors, temperature). Cheap:
 * writes only on change; call after anything that may have changed them. */
void daemon_gpio_refresh(struct agent_daemon *d, uint64_t now_ns);
/* Power lost: flush telemetry, restore the CPU settings, hold the governor; back: steer again. */
void daemon_power_changed(struct agent_daemon *d, bool lost);
/* Short press: toggle quiet/balanced; long press: clean shutdown. */
void daemon_gpio_press(struct agent_daemon *d, enum agent_gpio_press press);

/* ---- mqtt_ask.c: the MQTT `ask` command, answered by the engine worker ---- */

void daemon_on_mqtt_ask(void *user, const char *payload, size_t len, const char *response_topic,
                        const void *correlation, size_t correlation_len);
/* Publishes a finished answer (loop thread) and frees the job. */
void daemon_publish_ask_answer(struct agent_daemon *d, struct ask_job *job);

#endif
