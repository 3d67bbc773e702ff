/* The daemon's governor bridge (see daemon_parts.h): starts the governor, ticks it with the
 * engine's phase and the measured power, shares its status with the HTTP threads and carries out
 * policy and power-cap changes from the API, MQTT and reloads, all on the loop thread. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/timeutil.h"
#include "daemon_parts.h"
#include "gov_config.h"
#include "log.h"
#include "plugins.h"
#include "privsep.h"
#include "telemetry/mqtt.h"

static enum gov_phase to_gov_phase(enum agent_phase p)
{
    return p == AGENT_PHASE_PREFILL  ? GOV_PHASE_PREFILL
           : p == AGENT_PHASE_DECODE ? GOV_PHASE_DECODE
                                     : GOV_PHASE_IDLE;
}

void daemon_governor_drain_events(struct agent_daemon *d)
{
    if (!d->gov)
        return;
    struct gov_event ev;
    while (gov_events_pop(gov_governor_events(d->gov), &ev)) {
        const char *kind = gov_event_kind_name(ev.kind);
        if (ev.kind == GOV_EVENT_WRITE_FAILED || ev.kind == GOV_EVENT_WRITE_MISMATCH ||
            ev.kind == GOV_EVENT_SENSOR_LOST || ev.kind == GOV_EVENT_SENSOR_GARBAGE ||
            ev.kind == GOV_EVENT_SAFE_STATE || ev.kind == GOV_EVENT_CONFLICT)
            log_warn("governor: %s: %s", kind, ev.detail);
        else
            log_info("governor: %s: %s", kind, ev.detail);
        char detail[320];
        snprintf(detail, sizeof(detail), "%s: %s", kind, ev.detail);
        daemon_record_event(d, "governor", detail);
        agent_plugins_governor_event(d->plugins, kind, ev.detail, cmn_wall_ns());
    }
}

/* ---- governor ---- */

/* The frequency a cluster runs at: with an exact (userspace) setting that is what we set;
 * otherwise the hardware picks within limits and scaling_cur_freq says what it picked. */
uint32_t daemon_cluster_khz(const struct gov_status_cluster *c)
{
    if (c->exact_freq && c->target_khz)
        return c->target_khz;
    return c->cur_khz ? c->cur_khz : c->target_khz;
}

/* Adds what the engine runs ("engine": threads, ceiling, CPUs, whether the lever is on) to the
 * governor's JSON for GET /v1/governor; json is returned as is when that fails. */
static char *with_engine(struct agent_daemon *d, char *json)
{
    if (!json || !d->worker)
        return json;
    cJSON *o = cJSON_Parse(json);
    if (!o)
        return json;
    struct agent_worker_stats ws;
    agent_worker_stats(d->worker, &ws);
    char cpus[96] = "";
    if (ws.engine_cpus)
        engine_lever_format_cpus(ws.engine_cpus, cpus, sizeof(cpus));
    cJSON *e = cJSON_AddObjectToObject(o, "engine");
    char *out = NULL;
    if (e && cJSON_AddNumberToObject(e, "threads", ws.engine_threads) &&
        cJSON_AddNumberToObject(e, "max_threads", ws.engine_max_threads) &&
        cJSON_AddStringToObject(e, "cpus", cpus) &&
        cJSON_AddBoolToObject(e, "thread_lever", d->cfg.engine.thread_lever))
        out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!out)
        return json;
    free(json);
    return out;
}

/* Copies a governor status snapshot to what HTTP threads read. */
void daemon_governor_share_status(struct agent_daemon *d, const struct gov_status *st)
{
    char *json = gov_status_to_json(st);
    json = with_engine(d, json);
    pthread_mutex_lock(&d->shared_lock);
    if (json) {
        free(d->gov_json);
        d->gov_json = json;
    }
    snprintf(d->policy, sizeof(d->policy), "%s", st->policy);
    d->power_cap_w = st->power_cap_w;
    d->n_freq = st->n_clusters;
    for (unsigned i = 0; i < st->n_clusters && i < GOV_MAX_CLUSTERS; i++) {
        snprintf(d->freq_names[i], sizeof(d->freq_names[i]), "%s", st->c[i].name);
        d->freq_khz[i] = daemon_cluster_khz(&st->c[i]);
    }
    pthread_mutex_unlock(&d->shared_lock);
}

static void refresh_shared_governor(struct agent_daemon *d)
{
    struct gov_status st;
    gov_governor_status(d->gov, &st);
    daemon_governor_share_status(d, &st);
}

void daemon_governor_tick(struct agent_daemon *d, uint64_t now_ns)
{
    /* on battery the original settings stay in force; without the helper every write would
     * fail (lifecycle.c) */
    if (!d->gov || d->power_lost || d->helper_lost)
        return;
    enum agent_phase phase = (enum agent_phase)atomic_load(&d->phase);
    if (phase != d->last_phase) {
        d->last_phase = phase;
        d->phase_since_ns = now_ns;
    }
    struct agent_worker_stats ws = {0};
    if (d->worker)
        agent_worker_stats(d->worker, &ws);
    uint64_t tokens = ws.prompt_tokens + ws.gen_tokens;
    if (d->last_tokens_ns && now_ns > d->last_tokens_ns && phase == AGENT_PHASE_DECODE)
        d->tokens_per_s =
            (double)(tokens - d->last_tokens) * 1e9 / (double)(now_ns - d->last_tokens_ns);
    else if (phase != AGENT_PHASE_DECODE)
        d->tokens_per_s = NAN;
    d->last_tokens = tokens;
    d->last_tokens_ns = now_ns;
    /* a request waiting behind the running one: balanced decodes at full speed to drain it */
    gov_governor_set_queued(d->gov, (unsigned)ws.queue_depth);
    gov_governor_tick(d->gov, now_ns, to_gov_phase(phase), d->last_power_w, d->tokens_per_s,
                      &d->last_tick);
    daemon_governor_drain_events(d);
    daemon_engine_lever(d, &d->last_tick, phase);
}

static const char *phase_name(enum agent_phase p)
{
    return p == AGENT_PHASE_PREFILL   ? "prefill"
           : p == AGENT_PHASE_DECODE  ? "decode"
           : p == AGENT_PHASE_LOADING ? "loading"
                                      : "idle";
}

void daemon_engine_lever(struct agent_daemon *d, const struct gov_tick_result *r,
                         enum agent_phase phase)
{
    if (!d->worker)
        return;
    uint32_t threads;
    uint64_t cpus;
    char msg[256], warn[256];
    if (engine_lever_decide(&d->lever, d->cfg.engine.thread_lever, r->engine_threads,
                            r->engine_cpus, phase_name(phase), &threads, &cpus, msg, sizeof(msg),
                            warn, sizeof(warn))) {
        /* the worker applies it between tokens, never inside a matrix product */
        agent_worker_set_threads(d->worker, threads, cpus);
        log_info("%s", msg);
    }
    if (warn[0])
        log_warn("%s", warn);
    struct agent_worker_stats ws;
    agent_worker_stats(d->worker, &ws);
    if (strcmp(ws.threads_error, d->lever_error) != 0) {
        if (ws.threads_error[0])
            log_warn("engine: thread lever refused: %s", ws.threads_error);
        snprintf(d->lever_error, sizeof(d->lever_error), "%s", ws.threads_error);
    }
}

void daemon_on_governor_timer(void *user, uint64_t now_ns)
{
    daemon_governor_tick(user, now_ns);
    daemon_gpio_refresh(user, now_ns); /* thermal throttling shows on the LED */
}

void daemon_governor_publish_state(struct agent_daemon *d)
{
    if (!d->gov) {
        /* Nothing can carry out a policy or a cap: the controls turn unavailable. */
        if (d->mqtt)
            tel_mqtt_publish_governor_state(d->mqtt, NULL);
        return;
    }
    refresh_shared_governor(d);
    if (!d->mqtt)
        return;
    pthread_mutex_lock(&d->shared_lock);
    char policy[GOV_NAME_MAX];
    snprintf(policy, sizeof(policy), "%s", d->policy);
    double cap = d->power_cap_w;
    pthread_mutex_unlock(&d->shared_lock);
    tel_mqtt_publish_governor_state(d->mqtt, policy);
    tel_mqtt_publish_power_cap_state(d->mqtt, !(cap > 0), cap);
}

/* Applies a policy and/or power cap (loop thread). */
int daemon_governor_apply(struct agent_daemon *d, const char *policy, double cap_w, char *err,
                          size_t err_len)
{
    if (!d->gov) {
        snprintf(err, err_len, "the governor is not running");
        return -ENODEV;
    }
    if (d->helper_lost) {
        snprintf(err, err_len, "the privileged helper is gone; the agent is stopping");
        return -ESHUTDOWN;
    }
    if (policy && *policy) {
        int rc = gov_governor_set_policy(d->gov, policy, err, err_len);
        if (rc < 0)
            return rc;
        snprintf(d->cfg.governor.tunables.policy, sizeof(d->cfg.governor.tunables.policy), "%s",
                 policy);
        log_notice("governor: policy %s", policy);
    }
    if (isfinite(cap_w)) {
        struct gov_tunables t = d->cfg.governor.tunables;
        t.power_cap_w = cap_w;
        int rc = gov_tunables_validate(&t, NULL, err, err_len) < 0 ? -EINVAL : 0;
        if (rc == 0)
            rc = gov_governor_set_tunables(d->gov, &t, err, err_len);
        if (rc < 0)
            return rc;
        d->cfg.governor.tunables.power_cap_w = cap_w;
        log_notice("governor: power cap %s", cap_w > 0 ? "set" : "off");
    }
    daemon_governor_drain_events(d);
    daemon_governor_publish_state(d);
    return 0;
}

void daemon_hook_phase(void *user, enum agent_phase phase)
{
    struct agent_daemon *d = user;
    uint64_t now = cmn_now_ns();
    agent_phase_energy_switch(&d->phase_energy, phase, agent_meter_energy_at(&d->meter, now));
    agent_phase_energy_switch(&d->wall_phase_energy, phase,
                              agent_meter_energy_at(&d->wall_meter, now));
    atomic_store(&d->phase, (int)phase);
    int seen = atomic_load(&d->sample_phase);
    while ((int)phase > seen && !atomic_compare_exchange_weak(&d->sample_phase, &seen, (int)phase))
        ;
    /* A phase change steers the governor now, not at the next tick. A full queue loses only
     * that haste: the next tick reads the phase anyway. */
    daemon_queue_push(d->queue, &(struct daemon_msg){.kind = DAEMON_MSG_PHASE, .u.phase = phase});
}

void daemon_hook_policy(void *user, char *buf, size_t len)
{
    struct agent_daemon *d = user;
    pthread_mutex_lock(&d->shared_lock);
    snprintf(buf, len, "%s", d->policy);
    pthread_mutex_unlock(&d->shared_lock);
}

int daemon_hook_governor_get(void *user, char *buf, size_t len)
{
    struct agent_daemon *d = user;
    pthread_mutex_lock(&d->shared_lock);
    int rc = 0;
    if (!d->gov_json)
        rc = -ENODEV;
    else if (strlen(d->gov_json) + 1 > len)
        rc = -ENOSPC;
    else
        memcpy(buf, d->gov_json, strlen(d->gov_json) + 1);
    pthread_mutex_unlock(&d->shared_lock);
    return rc;
}

/* Hands the change to the loop thread and waits for its verdict (or the shutdown's refusal). */
int daemon_hook_governor_set(void *user, const char *policy, double power_cap_w, char *err,
                             size_t err_len)
{
    struct agent_daemon *d = user;
    struct daemon_msg m = {.kind = DAEMON_MSG_GOVERNOR_SET};
    snprintf(m.u.governor.policy, sizeof(m.u.governor.policy), "%s", policy ? policy : "");
    m.u.governor.power_cap_w = power_cap_w;
    struct daemon_completion done;
    int rc = daemon_queue_call(d->queue, &m, &done);
    snprintf(err, err_len, "%s", done.err);
    return rc;
}

/* ---- start and stop ---- */

enum gov_backend_impl daemon_backend_impl(const char *name)
{
    return strcmp(name, "sysfs") == 0         ? GOV_BACKEND_SYSFS
           : strcmp(name, "libcpupower") == 0 ? GOV_BACKEND_LIBCPUPOWER
                                              : GOV_BACKEND_AUTO;
}

int daemon_governor_load_calibration(struct agent_daemon *d)
{
    const char *path = d->cfg.governor.calibration_path;
    if (!d->gov || !d->cfg.agent.user[0] || !path[0])
        return 0;
    char err[512];
    int rc = gov_governor_load_calibration(d->gov, path, err, sizeof(err));
    if (rc < 0 && rc != -ENOENT) /* a missing file means "not calibrated" */
        log_err("governor: %s; running without a calibration curve", err);
    return 0;
}

int daemon_start_governor(struct agent_daemon *d)
{
    struct gov_governor_params gp;
    gov_governor_params_defaults(&gp);
    char err[512], root[PATH_MAX], saved[PATH_MAX];
    if (agent_governor_paths(&d->cfg.governor, NULL, NULL, root, sizeof(root), saved, sizeof(saved),
                             err, sizeof(err)) < 0) {
        log_warn("governor: [governor] sysfs_root %s; continuing without frequency control", err);
        return 0;
    }
    gp.sysfs_root = root;
    gp.saved_path = saved;
    /* With a drop to [agent] user ahead, the curve (a file that user may write: calibrate saves it
     * for the directory's owner) is parsed after the drop, never as root:
     * daemon_governor_load_calibration. */
    gp.calibration_path = d->cfg.agent.user[0] ? NULL : d->cfg.governor.calibration_path;
    gp.monitor_only = !d->cfg.governor.enabled;
    gp.backend = daemon_backend_impl(d->cfg.governor.backend);
    gp.sysio = privsep_sysio(d->privsep); /* NULL without privilege separation */
    gp.tunables = d->cfg.governor.tunables;
    if (gov_tunables_validate(&gp.tunables, NULL, err, sizeof(err)) < 0) {
        log_err("governor: %s", err);
        return -EINVAL;
    }
    int rc = gov_governor_new(&gp, &d->gov, err, sizeof(err));
    if (rc < 0) {
        /* No cpufreq at all (a VM, a container): run without a governor rather than not at all. */
        log_warn("governor: %s; continuing without frequency control", err);
        d->gov = NULL;
        return 0;
    }
    daemon_governor_drain_events(d);
    struct gov_status st;
    gov_governor_status(d->gov, &st);
    log_info("governor: policy %s, backend %s, %u cluster(s)%s%s", st.policy, st.backend,
             st.n_clusters, st.monitor_only ? ", monitor only: " : "",
             st.monitor_only ? st.monitor_reason : "");
    refresh_shared_governor(d);
    return 0;
}
