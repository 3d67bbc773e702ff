/* The daemon's telemetry bridge (see daemon_parts.h): samples power, frequency, temperature and
 * throughput on a timer into the SQLite store and over MQTT, records sessions and events, and
 * keeps the MQTT client's socket on the loop. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "daemon_parts.h"
#include "governor/policy.h"
#include "log.h"
#include "plugins.h"
#include "privsep.h"
#include "telemetry/mqtt.h"
#include "telemetry/power.h"
#include "telemetry/store.h"
#include "telemetry/wall.h"

static const char *phase_name(enum agent_phase p)
{
    return p == AGENT_PHASE_PREFILL   ? "prefill"
           : p == AGENT_PHASE_DECODE  ? "decode"
           : p == AGENT_PHASE_LOADING ? "loading"
                                      : "idle";
}

/* ---- events: one place that logs, stores and publishes ---- */

void daemon_record_event(struct agent_daemon *d, const char *kind, const char *detail)
{
    if (d->store)
        tel_store_add_event(d->store, cmn_wall_ns(), kind, detail);
    if (d->mqtt)
        tel_mqtt_publish_event(d->mqtt, kind, detail);
}

/* ---- telemetry ---- */

unsigned daemon_spread_per_cpu(const struct gov_status *st, double *util, double *freq_mhz,
                               unsigned cap)
{
    unsigned n = 0;
    for (unsigned i = 0; i < st->n_clusters && i < GOV_MAX_CLUSTERS; i++) {
        const struct gov_status_cluster *c = &st->c[i];
        double mhz = daemon_cluster_khz(c) / 1000.0;
        for (unsigned cpu = 0; cpu < GOV_MAX_CPUS && n < cap; cpu++) {
            if (!(c->cpu_mask[cpu / 64] >> (cpu % 64) & 1))
                continue;
            util[n] = isfinite(c->util) ? c->util : 0;
            freq_mhz[n] = mhz;
            n++;
        }
    }
    return n;
}

/* The wall boundary for this sample: the meter when it has something fresh, else the estimate
 * from the package power just read (tel_wall_read: a battery package source is the wall, PMIC
 * rails map to it by a published fit). Its state
 * changes (a plug gone stale, a sensor back) are logged and recorded as events. */
static void daemon_sample_wall(struct agent_daemon *d, uint64_t now_ns, struct tel_sample *s,
                               enum tel_source package_source)
{
    if (!d->wall)
        return;
    struct tel_wall_reading w;
    char note[512];
    double pkg_w = s->power_w;
    tel_wall_read(d->wall, now_ns, pkg_w, package_source, &w, note, sizeof(note));
    if (note[0]) {
        log_notice("telemetry: %s", note);
        daemon_record_event(d, "telemetry", note);
    }
    s->has_wall = 1;
    s->wall_power_w = w.power_w;
    s->wall_energy_j = w.energy_j;
    s->wall_measured = w.measured;
    snprintf(s->wall_source, sizeof(s->wall_source), "%s", w.source);
    agent_meter_update(&d->wall_meter, now_ns, w.energy_j, w.power_w);
    double pj[AGENT_PHASES];
    if (s->has_phase_energy &&
        agent_phase_energy_take(&d->wall_phase_energy,
                                agent_meter_energy_at(&d->wall_meter, now_ns), pj) == 0) {
        s->wall_idle_j = pj[AGENT_PHASE_IDLE];
        s->wall_prefill_j = pj[AGENT_PHASE_PREFILL];
        s->wall_decode_j = pj[AGENT_PHASE_DECODE];
    } else if (s->has_phase_energy) {
        s->wall_idle_j = s->wall_prefill_j = s->wall_decode_j = NAN;
    }
    pthread_mutex_lock(&d->shared_lock);
    snprintf(d->wall_source, sizeof(d->wall_source), "%s", w.source);
    d->wall_measured = w.measured;
    pthread_mutex_unlock(&d->shared_lock);
}

void daemon_on_sample_timer(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    struct tel_sample s = {0};
    s.ts_ns = cmn_wall_ns();
    s.power_w = NAN;
    s.temp_c = NAN;
    s.util = NAN;

    struct gov_status st;
    double util[GOV_MAX_CPUS], freq[GOV_MAX_CPUS];
    unsigned n_cpu = 0;
    if (d->gov) {
        gov_governor_status(d->gov, &st);
        s.temp_c = st.cpu_temp_c;
        snprintf(s.policy, sizeof(s.policy), "%s", st.policy);
        double util_sum = 0;
        unsigned util_n = 0;
        for (unsigned i = 0; i < st.n_clusters && s.n_freq < TEL_MAX_FREQ; i++) {
            uint32_t khz = daemon_cluster_khz(&st.c[i]);
            s.freq_mhz[s.n_freq++] = khz / 1000.0;
            if (isfinite(st.c[i].util)) {
                util_sum += st.c[i].util;
                util_n++;
            }
        }
        n_cpu = daemon_spread_per_cpu(&st, util, freq, GOV_MAX_CPUS);
        if (util_n)
            s.util = util_sum / util_n;
    }
    enum agent_phase phase = (enum agent_phase)atomic_load(&d->phase);
    enum agent_phase busiest = (enum agent_phase)atomic_exchange(&d->sample_phase, (int)phase);
    snprintf(s.phase, sizeof(s.phase), "%s", phase_name(busiest > phase ? busiest : phase));

    if (d->power) {
        struct tel_power_inputs in = {.n_cpu = n_cpu, .util = util, .freq_mhz = freq};
        struct tel_power_reading r;
        if (tel_power_read(d->power, now_ns, &in, &r) == 0) {
            s.power_w = r.power_w;
            s.energy_j = r.energy_j;
            s.source = r.source;
            if (r.switched) {
                char detail[256];
                snprintf(detail, sizeof(detail), "power source: %s", tel_power_describe(d->power));
                log_notice("telemetry: %s", detail);
                daemon_record_event(d, "telemetry", detail);
            }
            agent_meter_update(&d->meter, now_ns, r.energy_j, r.power_w);
            atomic_store(&d->energy_source, (int)r.source);
            double pj[AGENT_PHASES];
            if (agent_phase_energy_take(&d->phase_energy, agent_meter_energy_at(&d->meter, now_ns),
                                        pj) == 0) {
                s.has_phase_energy = 1;
                s.idle_j = pj[AGENT_PHASE_IDLE];
                s.prefill_j = pj[AGENT_PHASE_PREFILL];
                s.decode_j = pj[AGENT_PHASE_DECODE];
            }
            if (isfinite(r.power_w))
                d->last_power_w = r.power_w;
            d->last_energy_j = r.energy_j;
            daemon_sample_wall(d, now_ns, &s, r.source);
        }
    }
    pthread_mutex_lock(&d->shared_lock); /* HTTP threads read it for /metrics */
    d->last_temp_c = s.temp_c;
    pthread_mutex_unlock(&d->shared_lock);

    struct agent_worker_stats ws = {0};
    if (d->worker)
        agent_worker_stats(d->worker, &ws);
    /* generated tokens, as they come: J/token is joules per generated token everywhere */
    uint64_t tokens = ws.live_gen_tokens;
    s.tokens = d->sample_prev_ns ? tokens - d->sample_prev_tokens : 0;
    s.tokens_per_s = d->sample_prev_ns && now_ns > d->sample_prev_ns
                         ? (double)s.tokens * 1e9 / (double)(now_ns - d->sample_prev_ns)
                         : 0;
    d->sample_prev_tokens = tokens;
    d->sample_prev_ns = now_ns;

    if (d->store) {
        tel_store_append_sample(d->store, &s, NULL);
        tel_store_tick(d->store);
        if (d->power_lost) /* on battery: nothing waits in memory */
            tel_store_flush(d->store);
    }
    if (d->mqtt)
        tel_mqtt_publish_sample(d->mqtt, &s);
    if (d->plugins) {
        struct ember_plugin_telemetry t = {.kind = EMBER_PLUGIN_SAMPLE,
                                           .ts_ns = s.ts_ns,
                                           .policy = s.policy,
                                           .power_w = s.power_w,
                                           .energy_j = s.energy_j,
                                           .temp_c = s.temp_c,
                                           .util = s.util,
                                           .tokens_per_s = s.tokens_per_s,
                                           .phase = s.phase,
                                           .ttft_ms = NAN,
                                           .duration_ms = NAN,
                                           .session_energy_j = NAN,
                                           .j_per_token = NAN};
        agent_plugins_telemetry(d->plugins, &t);
    }
    if (d->gov)
        daemon_governor_share_status(d, &st); /* the snapshot taken above, not a second read */
    daemon_gpio_refresh(d, now_ns);           /* the fan follows the temperature */
}

static void on_store_event(void *user, const struct tel_event *ev)
{
    struct agent_daemon *d = user;
    log_warn("telemetry store: %s: %s", ev->kind, ev->detail);
    if (d->mqtt)
        tel_mqtt_publish_event(d->mqtt, ev->kind, ev->detail);
}

/* ---- MQTT ---- */

static void on_mqtt_fd(void *user, int fd, uint32_t events);

/* Keeps the epoll registration in step with the MQTT client's socket (it changes on every
 * reconnect) and its wish to write, and arms the timer for its next housekeeping. */
void daemon_mqtt_update_watch(struct agent_daemon *d, uint64_t now_ns)
{
    struct tel_mqtt_poll p;
    tel_mqtt_poll_info(d->mqtt, now_ns, &p);
    if (p.fd != d->mqtt_fd || p.generation != d->mqtt_generation) {
        if (d->mqtt_fd >= 0)
            agent_loop_del_fd(d->loop, d->mqtt_fd);
        d->mqtt_fd = -1;
        if (p.fd >= 0)
            d->mqtt_fd = p.fd;
        d->mqtt_generation = p.generation;
        d->mqtt_want_write = !p.want_write; /* force the add below */
    }
    if (d->mqtt_fd >= 0 && d->mqtt_want_write != p.want_write) {
        uint32_t ev = EPOLLIN | (p.want_write ? EPOLLOUT : 0);
        if (agent_loop_mod_fd(d->loop, d->mqtt_fd, ev) < 0)
            agent_loop_add_fd(d->loop, d->mqtt_fd, ev, on_mqtt_fd, d);
        d->mqtt_want_write = p.want_write;
    }
    agent_timer_set_deadline(d->mqtt_timer, p.deadline_ns ? p.deadline_ns : now_ns + CMN_NS_PER_S);
}

static void on_mqtt_fd(void *user, int fd, uint32_t events)
{
    (void)fd;
    struct agent_daemon *d = user;
    uint64_t now = cmn_now_ns();
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        tel_mqtt_handle_read(d->mqtt, now);
    if (events & EPOLLOUT)
        tel_mqtt_handle_write(d->mqtt, now);
    daemon_mqtt_update_watch(d, now);
}

static void on_mqtt_timer(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    tel_mqtt_handle_misc(d->mqtt, now_ns);
    daemon_mqtt_update_watch(d, now_ns);
}

static void on_mqtt_policy(void *user, const char *policy)
{
    struct agent_daemon *d = user;
    char err[256];
    if (daemon_governor_apply(d, policy, NAN, err, sizeof(err)) < 0) {
        log_warn("mqtt governor/set %s: %s", policy, err);
        daemon_record_event(d, "error", err);
    }
}

static void on_mqtt_cap(void *user, bool off, double cap_w)
{
    struct agent_daemon *d = user;
    char err[256];
    if (daemon_governor_apply(d, NULL, off ? 0.0 : cap_w, err, sizeof(err)) < 0) {
        log_warn("mqtt power_cap/set: %s", err);
        daemon_record_event(d, "error", err);
    }
}

/* A message from the wall meter's plug: refused payloads are logged with the topic and the
 * reason (the wall figure stays on the last good reading until it goes stale). */
static void on_mqtt_plug(void *user, const char *topic, const void *payload, size_t len,
                         bool retained)
{
    struct agent_daemon *d = user;
    (void)retained; /* a retained reading is still the plug's latest; staleness ages it out */
    if (!d->wall)
        return;
    char err[256];
    int rc = tel_wall_feed(d->wall, cmn_now_ns(), payload, len, err, sizeof(err));
    if (rc < 0)
        log_warn("telemetry: wall meter topic %s: payload refused: %s", topic, err);
    else if (rc > 0)
        log_warn("telemetry: wall meter topic %s: %s", topic, err);
}

static void on_mqtt_state(void *user, enum tel_mqtt_conn_state state, const char *detail)
{
    struct agent_daemon *d = user;
    /* An outage is logged when it starts and when it ends; the retries in between (the
     * back-off) go to debug, or a broker that is down for a day fills the journal. The two
     * transitions bypass the log's rate limiter: two outages alike within its window are two
     * outages, not one line "suppressed". */
    if (state == TEL_MQTT_CONNECTED) {
        if (d->mqtt_failures)
            agent_log_event(AGENT_LOG_NOTICE,
                            "mqtt: connected again after %u failed attempt%s (%s)",
                            d->mqtt_failures, d->mqtt_failures == 1 ? "" : "s", detail);
        else
            agent_log_event(AGENT_LOG_NOTICE, "mqtt: connected (%s)", detail);
        d->mqtt_failures = 0;
        daemon_governor_publish_state(d);
    } else if (state == TEL_MQTT_DISCONNECTED) {
        if (d->mqtt_failures++ == 0)
            agent_log_event(AGENT_LOG_WARNING,
                            "mqtt: not connected: %s (retrying with back-off; logged again when "
                            "connected)",
                            detail);
        else
            log_debug("mqtt: %s (attempt %u)", detail, d->mqtt_failures);
    }
}

void daemon_hook_request_done(void *user, const struct agent_result *r)
{
    struct agent_daemon *d = user;
    struct daemon_msg m = {.kind = DAEMON_MSG_SESSION};
    m.u.session.result = *r;
    m.u.session.start_wall_ns = cmn_wall_ns() - (uint64_t)(r->duration_ms * (double)CMN_NS_PER_MS);
    daemon_queue_push(d->queue, &m); /* refused when full: counted, and the loop logs it */
}

void daemon_hook_metrics(void *user, struct agent_metrics_snapshot *snap)
{
    struct agent_daemon *d = user;
    snap->power_w = agent_meter_power(&d->meter);
    snap->energy_j = agent_meter_energy_at(&d->meter, cmn_now_ns());
    if (isfinite(snap->energy_j)) {
        enum tel_source src = (enum tel_source)atomic_load(&d->energy_source);
        agent_phase_energy_totals(&d->phase_energy, snap->phase_energy_j);
        snprintf(snap->energy_scope, sizeof(snap->energy_scope), "%s", tel_source_scope(src));
        snap->energy_estimated = src == TEL_SOURCE_ESTIMATE;
    }
    snap->wall_energy_j = agent_meter_energy_at(&d->wall_meter, cmn_now_ns());
    if (isfinite(snap->wall_energy_j)) {
        snap->wall_power_w = agent_meter_power(&d->wall_meter);
        agent_phase_energy_totals(&d->wall_phase_energy, snap->wall_phase_energy_j);
    }
    pthread_mutex_lock(&d->shared_lock);
    snprintf(snap->wall_source, sizeof(snap->wall_source), "%s", d->wall_source);
    snap->wall_measured = d->wall_measured;
    snap->temp_c = d->last_temp_c;
    snprintf(snap->policy, sizeof(snap->policy), "%s", d->policy);
    snap->power_cap_w = d->power_cap_w;
    snap->n_cpufreq = 0;
    for (unsigned i = 0; i < d->n_freq && i < AGENT_METRICS_MAX_CPUFREQ; i++) {
        snprintf(snap->cpufreq[i].policy, sizeof(snap->cpufreq[i].policy), "%s", d->freq_names[i]);
        snap->cpufreq[i].freq_khz = d->freq_khz[i];
        snap->n_cpufreq++;
    }
    pthread_mutex_unlock(&d->shared_lock);
}

void daemon_store_session(struct agent_daemon *d, const struct agent_result *r, uint64_t ts_ns)
{
    if (r->prompt_tokens + r->gen_tokens == 0)
        return;
    struct tel_session s = {0};
    s.ts_ns = ts_ns;
    s.prompt_tokens = r->prompt_tokens;
    s.gen_tokens = r->gen_tokens;
    s.ttft_ms = r->ttft_ms;
    s.duration_ms = r->duration_ms;
    s.energy_j = r->energy_j;
    s.j_per_token = r->j_per_token;
    snprintf(s.policy, sizeof(s.policy), "%s", r->policy);
    snprintf(s.model, sizeof(s.model), "%s", r->model);
    if (d->store)
        tel_store_add_session(d->store, &s);
    if (d->mqtt)
        tel_mqtt_publish_session(d->mqtt, &s);
    if (d->plugins) {
        struct ember_plugin_telemetry t = {.kind = EMBER_PLUGIN_SESSION,
                                           .ts_ns = ts_ns,
                                           .policy = s.policy,
                                           .power_w = NAN,
                                           .energy_j = NAN,
                                           .temp_c = NAN,
                                           .util = NAN,
                                           .tokens_per_s = NAN,
                                           .phase = "",
                                           .prompt_tokens = s.prompt_tokens,
                                           .gen_tokens = s.gen_tokens,
                                           .ttft_ms = s.ttft_ms,
                                           .duration_ms = s.duration_ms,
                                           .session_energy_j = s.energy_j,
                                           .j_per_token = s.j_per_token};
        agent_plugins_telemetry(d->plugins, &t);
    }
}

/* The wall channel: the configured meter (a configured meter that is absent is an error: the
 * user asked for it), continuing the wall total on disk. */
static int daemon_start_wall(struct agent_daemon *d)
{
    const struct cfg_telemetry *c = &d->cfg.telemetry;
    struct tel_wall_params wp;
    tel_wall_params_defaults(&wp);
    char err[512];
    int rc = tel_wall_parse_spec(c->wall_meter, &wp, err, sizeof(err));
    if (rc == 0 && wp.kind == TEL_WALL_MQTT)
        rc = tel_plug_format_from_name(c->wall_meter_format, &wp.format);
    if (rc < 0) {
        log_err("telemetry: [telemetry] wall_meter: %s", err[0] ? err : "bad wall_meter_format");
        return rc;
    }
    wp.root = c->sysfs_root;
    wp.topic = c->wall_meter_topic;
    wp.stale_s = (uint32_t)c->wall_meter_stale_s;
    wp.board_w = c->wall_estimate_board_w;
    wp.psu_efficiency = c->wall_estimate_psu_efficiency;
    double total = 0;
    tel_store_wall_energy_total_j(d->store, &total);
    rc = tel_wall_new(&wp, cmn_now_ns(), total, &d->wall, err, sizeof(err));
    if (rc < 0) {
        log_err("telemetry: %s", err);
        return rc;
    }
    log_info("telemetry: wall meter %s (else the estimate: (package + %.2f W) / %.2f)",
             c->wall_meter, wp.board_w, wp.psu_efficiency);
    return 0;
}

int daemon_start_telemetry(struct agent_daemon *d)
{
    if (!d->cfg.telemetry.enabled)
        return 0;
    char err[512];
    char dir[CFG_STR_PATH];
    snprintf(dir, sizeof(dir), "%s", d->cfg.telemetry.database);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        cmn_mkdir_p(dir);
    }
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    sp.commit_interval_ms = (uint32_t)d->cfg.telemetry.commit_interval_ms;
    sp.retain_samples_s = (uint64_t)d->cfg.telemetry.retention_days * 86400ULL;
    sp.quota_bytes = (uint64_t)d->cfg.telemetry.max_db_mb * 1024ULL * 1024ULL;
    sp.on_event = on_store_event;
    sp.on_event_user = d;
    int rc = tel_store_open(d->cfg.telemetry.database, &sp, &d->store, err, sizeof(err));
    if (rc < 0) {
        log_err("telemetry: %s", err);
        return rc;
    }
    double total = 0;
    tel_store_energy_total_j(d->store, &total);
    struct tel_power_params pp;
    tel_power_params_defaults(&pp);
    pp.root = d->cfg.telemetry.sysfs_root;
    if (d->privsep) { /* RAPL energy_uj is root-only: read by the helper */
        pp.read_counter = privsep_read_counter;
        pp.read_counter_ctx = d->privsep;
    }
    pp.pmic_command = d->cfg.telemetry.pmic_command;
    pp.estimate.idle_w = d->cfg.telemetry.estimate_idle_w;
    pp.estimate.cpu_static_w = d->cfg.telemetry.estimate_cpu_static_w;
    pp.estimate.cpu_dyn_w = d->cfg.telemetry.estimate_cpu_dyn_w;
    rc = tel_power_new(&pp, cmn_now_ns(), total, &d->power, err, sizeof(err));
    if (rc < 0) {
        log_err("telemetry: power: %s", err);
        return rc;
    }
    log_info("telemetry: %s, database %s", tel_power_describe(d->power), d->cfg.telemetry.database);
    return daemon_start_wall(d);
}

int daemon_start_mqtt(struct agent_daemon *d)
{
    if (!d->cfg.mqtt.enabled)
        return 0;
    const struct agent_config *c = &d->cfg;
    char host_id[65] = "";
    if (!c->mqtt.device_id[0]) {
        char host[256] = "ember";
        gethostname(host, sizeof(host) - 1);
        size_t j = 0;
        for (size_t i = 0; host[i] && j < 64; i++) {
            char ch = host[i];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
            host_id[j++] = ok ? ch : '_';
        }
        host_id[j] = '\0';
    }
    struct tel_mqtt_params p;
    tel_mqtt_params_defaults(&p);
    p.host = c->mqtt.host;
    p.port = c->mqtt.port;
    p.prefix = c->mqtt.prefix;
    p.device_id = c->mqtt.device_id[0] ? c->mqtt.device_id : host_id;
    p.protocol = strcmp(c->mqtt.protocol, "v311") == 0 ? TEL_MQTT_PROTO_V311 : TEL_MQTT_PROTO_V5;
    p.keepalive_s = c->mqtt.keepalive_s;
    p.username = c->mqtt.username[0] ? c->mqtt.username : NULL;
    p.password = c->mqtt.password[0] ? c->mqtt.password : NULL;
    p.tls_ca = c->mqtt.tls_ca[0] ? c->mqtt.tls_ca : NULL;
    p.tls_cert = c->mqtt.tls_cert[0] ? c->mqtt.tls_cert : NULL;
    p.tls_key = c->mqtt.tls_key[0] ? c->mqtt.tls_key : NULL;
    p.reconnect_min_ms = (uint32_t)c->mqtt.reconnect_min_ms;
    p.reconnect_max_ms = (uint32_t)c->mqtt.reconnect_max_ms;
    p.replay_rate_per_s = (uint32_t)c->mqtt.replay_rate_per_s;
    p.discovery = c->mqtt.discovery;
    p.discovery_mode = strcmp(c->mqtt.discovery_mode, "device") == 0 ? TEL_MQTT_DISCOVERY_DEVICE
                                                                     : TEL_MQTT_DISCOVERY_COMPONENT;
    p.discovery_prefix = c->mqtt.discovery_prefix;
    p.configuration_url = c->mqtt.configuration_url;
    p.support_url = c->mqtt.support_url;
    p.ask = c->mqtt.ask;
    p.ask_response_prefix = c->mqtt.ask_response_prefix;
    if (strcmp(c->telemetry.wall_meter, "mqtt") == 0)
        p.foreign_topic = c->telemetry.wall_meter_topic;
    /* Three missed samples, and never under 30 s (Home Assistant's recorder samples slower). */
    uint64_t expire_s = 3 * (uint64_t)c->telemetry.sample_interval_ms / 1000;
    p.expire_after_s = expire_s < 30 ? 30 : expire_s > 86400 ? 86400 : (uint32_t)expire_s;
    p.sw_version = EMBER_VERSION;
    const struct gov_policy_ops *const *list = gov_policy_list();
    for (size_t i = 0; list[i] && p.commands.n_policies < TEL_MQTT_MAX_POLICIES; i++)
        p.commands.policies[p.commands.n_policies++] = list[i]->name;
    p.commands.cap_min_w = 0.5;
    p.commands.cap_max_w = 10000;
    p.commands.cap_off_allowed = true;
    struct tel_mqtt_callbacks cb = {
        .on_policy_set = on_mqtt_policy,
        .on_power_cap_set = on_mqtt_cap,
        .on_ask = daemon_on_mqtt_ask,
        .on_state = on_mqtt_state,
        .user = d,
        .on_foreign = on_mqtt_plug,
    };
    char err[512];
    int rc = tel_mqtt_new(&p, &cb, d->store, &d->mqtt, err, sizeof(err));
    if (rc < 0) {
        log_err("mqtt: %s", err);
        return rc;
    }
    rc = agent_loop_add_timer(d->loop, 0, on_mqtt_timer, d, &d->mqtt_timer);
    if (rc < 0)
        return rc;
    d->mqtt_fd = -1;
    daemon_mqtt_update_watch(d, cmn_now_ns());
    log_info("mqtt: %s:%d as %s/%s", p.host, p.port, p.prefix, p.device_id);
    return 0;
}
