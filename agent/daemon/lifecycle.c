/* The agent daemon's lifecycle (see daemon.h): start-up in order (signals, governor, telemetry,
 * MQTT, API, model), the drain of the message queue (queue.h), SIGHUP reloads, the systemd
 * watchdog, and shutdown in reverse. The parts it joins live in governor_bridge.c,
 * telemetry_bridge.c and mqtt_ask.c; all of them run on the loop thread. */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "daemon_parts.h"
#include "engine/engine.h"
#include "exit_codes.h"
#include "gov_config.h"
#include "log.h"
#include "plugins.h"
#include "privsep.h"
#include "registry.h"
#include "telemetry/mqtt.h"
#include "telemetry/power.h"
#include "telemetry/store.h"
#include "telemetry/wall.h"

static void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify_status(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", msg);
}

static double hook_energy(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    return agent_meter_energy_at(&d->meter, now_ns);
}

/* Carries out every queued message, in order (loop thread). Phase changes coalesce into one
 * governor tick; a governor change answers its sender. */
static void drain_queue(struct agent_daemon *d, uint64_t now_ns)
{
    struct daemon_msg m;
    bool ticked = false;
    while (daemon_queue_pop(d->queue, &m)) {
        switch (m.kind) {
        case DAEMON_MSG_PHASE:
            if (!ticked)
                daemon_governor_tick(d, now_ns);
            ticked = true;
            break;
        case DAEMON_MSG_SESSION:
            daemon_store_session(d, &m.u.session.result, m.u.session.start_wall_ns);
            break;
        case DAEMON_MSG_ASK_DONE:
            daemon_publish_ask_answer(d, m.u.ask);
            break;
        case DAEMON_MSG_GOVERNOR_SET: {
            char err[256] = "";
            int rc = daemon_governor_apply(d, m.u.governor.policy, m.u.governor.power_cap_w, err,
                                           sizeof(err));
            daemon_queue_complete(d->queue, m.completion, rc, err);
            break;
        }
        }
    }
    uint64_t dropped = daemon_queue_dropped(d->queue);
    if (dropped != d->queue_dropped_logged) {
        log_warn("the loop fell behind: %llu message(s) refused by its full queue (sessions or "
                 "MQTT answers lost, governor changes answered busy)",
                 (unsigned long long)(dropped - d->queue_dropped_logged));
        d->queue_dropped_logged = dropped;
    }
    if (d->mqtt)
        daemon_mqtt_update_watch(d, now_ns);
    daemon_gpio_refresh(d, now_ns); /* a phase change shows on the LED */
}

static void on_queue(void *user, int fd, uint32_t events)
{
    (void)fd;
    (void)events;
    struct agent_daemon *d = user;
    daemon_queue_ack(d->queue);
    drain_queue(d, cmn_now_ns());
}

/* ---- signals, watchdog, reload ---- */

static void reload_config(struct agent_daemon *d)
{
    if (!d->config_path) {
        log_notice("SIGHUP: no configuration file in use; nothing to reload");
        return;
    }
    struct agent_config next;
    char err[8192];
    if (agent_config_load_file(d->config_path, &next, err, sizeof(err)) < 0) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            log_err("reload: %s", line);
        log_err("reload: %s has errors; keeping the running configuration", d->config_path);
        daemon_record_event(d, "error", "configuration reload refused (see the log)");
        return;
    }
    char names[1024];
    int restart = agent_config_restart_keys(&d->cfg, &next, names, sizeof(names));
    if (restart)
        log_warn("reload: %s changed but needs a restart: %s", d->config_path, names);
    enum agent_log_level level;
    if (agent_log_level_parse(next.agent.log_level, &level) == 0)
        agent_log_set_level(level);
    if (d->worker)
        agent_worker_set_config(d->worker, &next);
    if (d->http)
        agent_http_set_config(d->http, &next);
    if (d->gpio)
        agent_gpio_set_tunables(d->gpio, &next.gpio);
    struct cfg_governor from_file = next.governor;
    struct gov_tunables *t = &next.governor.tunables;
    const struct gov_tunables *in_file = &d->file_governor.tunables,
                              *running = &d->cfg.governor.tunables;
    if (strcmp(t->policy, in_file->policy) == 0)
        snprintf(t->policy, sizeof(t->policy), "%s", running->policy);
    if (t->power_cap_w == in_file->power_cap_w)
        t->power_cap_w = running->power_cap_w;
    d->file_governor = from_file;
    if (d->gov) {
        if (gov_governor_set_tunables(d->gov, t, err, sizeof(err)) == 0 &&
            gov_governor_set_policy(d->gov, t->policy, err, sizeof(err)) == 0)
            daemon_governor_publish_state(d);
        else
            log_err("reload: governor: %s", err);
        daemon_governor_drain_events(d);
    }
    agent_timer_set_interval(d->sample_timer, (uint64_t)next.telemetry.sample_interval_ms);
    agent_config_apply_live(&d->cfg, &next); /* restart-only keys keep running values */
    log_notice("reload: %s applied", d->config_path);
    daemon_record_event(d, "config", "configuration reloaded");
}

static void on_signal(void *user, int fd, uint32_t events)
{
    (void)events;
    struct agent_daemon *d = user;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            reload_config(d);
            sd_notify(0, "READY=1");
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_notice("%s: shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            agent_loop_quit(d->loop);
        }
    }
}

static void on_watchdog(void *user, uint64_t now_ns)
{
    (void)user;
    (void)now_ns;
    sd_notify(0, "WATCHDOG=1");
}

/* ---- plugins (agent/plugins/): hooks of the worker, to the plugins ---- */

static void hook_before_request(void *user, struct agent_request *req)
{
    struct agent_daemon *d = user;
    agent_plugins_before_request(d->plugins, req);
}

static void hook_text(void *user, const char *text, size_t len, uint64_t index)
{
    struct agent_daemon *d = user;
    agent_plugins_token(d->plugins, text, len, index);
}

/* After the privilege drop, so a plugin never runs as root; before the API and the worker, so
 * no hook can run before its init. A refused plugin is logged; the agent runs on. */
static int start_plugins(struct agent_daemon *d)
{
    if (agent_plugins_load(&d->cfg, &d->plugins) < 0) {
        log_err("plugins: out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int load_progress(float fraction, void *user)
{
    /* the loop does not run during a load: the LED blinks "starting" from here */
    daemon_gpio_refresh(user, cmn_now_ns());
    static int last_decile = -1;
    int decile = (int)(fraction * 10);
    if (decile != last_decile) {
        last_decile = decile;
        sd_notifyf(0, "STATUS=loading model %d%%\nWATCHDOG=1", decile * 10);
        log_info("engine: loading model: %d%%", decile * 10);
    }
    return 0;
}

/* A model loaded, unloaded or evicted on demand (worker thread): the log says so. */
static void hook_model_event(void *user, const char *kind, const char *id, const char *detail)
{
    (void)user;
    if (strcmp(kind, "load_failed") == 0)
        log_err("models: %s: %s", id, detail);
    else
        log_info("models: %s %s: %s", kind, id, detail);
}

static int start_worker(struct agent_daemon *d)
{
    struct agent_worker_hooks hooks = {
        .phase = daemon_hook_phase,
        .energy_j = hook_energy,
        .policy = daemon_hook_policy,
        .request_done = daemon_hook_request_done,
        .before_request = agent_plugins_count(d->plugins) ? hook_before_request : NULL,
        .text = agent_plugins_count(d->plugins) ? hook_text : NULL,
        .model_event = hook_model_event,
        .user = d,
    };
    char err[512];
    engine_lever_init(&d->lever, d->cfg.engine.threads);
    int rc = agent_worker_new(d->model, &d->cfg, &hooks, &d->worker, err, sizeof(err));
    if (rc < 0)
        log_err("engine: %s", err);
    return rc;
}

static int load_model(struct agent_daemon *d)
{
    if (!d->cfg.engine.model[0]) {
        size_t n = d->models ? agent_models_count(d->models) : 0;
        if (n)
            log_info("engine: no [engine] model; %zu model(s) in %s load on first use", n,
                     d->cfg.models.dir);
        else
            log_warn("engine: no model configured ([engine] model) or installed ([models] dir "
                     "%s); /health answers 503 no_model",
                     d->cfg.models.dir);
        if (d->mqtt)
            tel_mqtt_publish_model(d->mqtt, &(struct tel_model_info){0});
        return start_worker(d);
    }
    notify_status("loading model %s", d->cfg.engine.model);
    uint64_t t0 = cmn_now_ns();
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.progress = load_progress;
    mp.progress_user = d;
    mp.use_mmap = d->cfg.engine.mmap;
    char err[512];
    int rc = eng_model_load(d->cfg.engine.model, &mp, &d->model, err, sizeof(err));
    if (rc < 0) {
        log_err("engine: %s", err);
        return rc;
    }
    struct eng_model_info info;
    eng_model_info(d->model, &info);
    log_info("engine: %s (%s, %s, %d layers, %.1f MB) loaded in %.0f ms; %s", d->cfg.engine.model,
             info.arch, info.file_type, info.n_layer, (double)info.size_bytes / 1e6,
             (double)(cmn_now_ns() - t0) / 1e6, eng_cpu_features_string());
    if (d->mqtt) {
        const char *file = strrchr(d->cfg.engine.model, '/');
        struct tel_model_info mi = {
            .name = d->cfg.api.model_name[0] ? d->cfg.api.model_name
                    : info.name[0]           ? info.name
                                             : (file ? file + 1 : d->cfg.engine.model),
            .file = file ? file + 1 : d->cfg.engine.model,
            .arch = info.arch,
            .quant = info.file_type,
            .n_params = info.n_params,
            .size_bytes = info.size_bytes,
            .context_length = info.n_ctx_train > 0 ? (uint32_t)info.n_ctx_train : 0,
        };
        tel_mqtt_publish_model(d->mqtt, &mi);
    }
    return start_worker(d);
}

static int setup_signals(struct agent_daemon *d)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN); /* a vanished HTTP client or broker is an error code, not death */
    d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->signal_fd < 0)
        return -errno;
    return agent_loop_add_fd(d->loop, d->signal_fd, EPOLLIN, on_signal, d);
}

/* ---- privilege separation (privsep/): when started as root with [agent] user set, fork the
 * root helper before any thread starts or anything untrusted is read; the governor and
 * telemetry reach root-only files through it; then drop to the user. ---- */
static int privsep_begin(struct agent_daemon *d)
{
    if (!d->cfg.agent.user[0]) {
        /* The default: no separation. Honest for tests, the container (already unprivileged)
         * and a user's own run; the packaged unit passes --user ember. As root it is worth a
         * warning: every parser of untrusted input would then run as root. */
        if (geteuid() == 0)
            log_warn("privilege separation: off: running as root with no [agent] user (or "
                     "--user), so the HTTP, MQTT and model parsers run as root too; set user = "
                     "ember (the packaged unit passes --user ember) unless this is a test");
        return 0;
    }
    if (geteuid() != 0)
        return 0; /* not root: nothing to separate; privsep_end checks the user */
    char err[512], root[PATH_MAX], saved[PATH_MAX];
    if (agent_governor_paths(&d->cfg.governor, NULL, NULL, root, sizeof(root), saved, sizeof(saved),
                             err, sizeof(err)) < 0) {
        log_err("privilege separation: [governor] sysfs_root %s", err);
        return -EINVAL;
    }
    struct privsep_params pp = {
        .sysfs_root = root,
        .telemetry_root = d->cfg.telemetry.sysfs_root,
        .saved_path = saved,
        .impl = daemon_backend_impl(d->cfg.governor.backend),
    };
    int rc = privsep_start(&pp, &d->privsep, err, sizeof(err));
    if (rc < 0)
        log_err("privilege separation: %s", err);
    return rc;
}

/* The helper hung up: it died (it never leaves while the agent lives). Nothing can write cpufreq
 * or restore the saved settings from here any more, and this process, no longer root, cannot
 * fork another helper. So, once and loudly: freeze the governor, say it on /health, in the
 * service status and as an event, and stop cleanly with EMBER_EXIT_HELPER_LOST. systemd's
 * Restart=on-failure starts agent and helper again; ExecStopPost (`ember governor restore`)
 * first puts back the settings the dead helper had saved, and a manual run is told to. */
static void on_helper_hangup(void *user, int fd, uint32_t events)
{
    (void)events;
    struct agent_daemon *d = user;
    agent_loop_del_fd(d->loop, fd);
    if (d->helper_lost)
        return;
    d->helper_lost = true;
    char how[96] = "", saved[PATH_MAX] = "", root[PATH_MAX], err[256];
    pid_t pid = privsep_helper_pid(d->privsep);
    privsep_reap(d->privsep, how, sizeof(how));
    if (agent_governor_paths(&d->cfg.governor, NULL, NULL, root, sizeof(root), saved, sizeof(saved),
                             err, sizeof(err)) < 0)
        snprintf(saved, sizeof(saved), "%s", d->cfg.governor.saved_path);
    log_err("privilege separation: the privileged helper (pid %d) %s; CPU frequency settings can "
            "no longer be changed or restored by this agent. Stopping (exit code %d) so that the "
            "service manager starts agent and helper again; the original settings stay saved in "
            "%s until `ember governor restore` (run as root; the unit's ExecStopPost does it)",
            (int)pid, how, EMBER_EXIT_HELPER_LOST, saved);
    notify_status("privileged helper lost (pid %d %s); stopping", (int)pid, how);
    if (d->http)
        agent_http_set_fault(d->http, "privileged_helper_lost");
    daemon_record_event(d, "error", "privileged helper lost; stopping");
    d->exit_code = EMBER_EXIT_HELPER_LOST;
    agent_loop_quit(d->loop);
}

/* Watches the helper's socket for its hang-up only (EPOLLIN is left out: replies are read by
 * the calls themselves, on whichever thread made them). */
static int watch_helper(struct agent_daemon *d)
{
    if (!d->privsep)
        return 0;
    int rc = agent_loop_add_fd(d->loop, privsep_fd(d->privsep), EPOLLRDHUP, on_helper_hangup, d);
    if (rc < 0)
        log_err("privilege separation: cannot watch the helper: %s", strerror(-rc));
    return rc;
}

static int privsep_end(struct agent_daemon *d)
{
    if (!d->cfg.agent.user[0])
        return 0;
    char err[512];
    int rc = privsep_drop(d->cfg.agent.user, err, sizeof(err));
    if (rc < 0) {
        log_err("privilege separation: %s", err);
        return rc;
    }
    if (d->privsep)
        log_info("privilege separation: running as %s (uid %u), no capabilities; root helper "
                 "pid %d",
                 d->cfg.agent.user, (unsigned)getuid(), (int)privsep_helper_pid(d->privsep));
    return 0;
}

static void shutdown_all(struct agent_daemon *d)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    uint64_t t0 = cmn_now_ns();
    /* First, before anything waits on a thread: the loop answers no more requests, so an HTTP
     * thread waiting for a governor change gets "shutting down" now instead of waiting for ever
     * (and agent_http_free below, which joins it, for ever with it). */
    if (d->queue)
        daemon_queue_close(d->queue);
    /* Running requests may finish (their clients still stream) within the timeout; queued ones
     * are refused, new ones get 503. */
    if (d->http) {
        agent_http_quiesce(d->http); /* no new connections; new requests get 503 */
        agent_http_set_worker(d->http, NULL);
    }
    agent_worker_free(d->worker, d->cfg.agent.shutdown_timeout_ms);
    d->worker = NULL;
    agent_http_free(d->http);
    d->http = NULL;
    agent_models_free(d->models);
    d->models = NULL;
    if (d->queue)
        drain_queue(d, cmn_now_ns()); /* the last sessions and ask answers */
    if (d->gov && d->helper_lost) {
        log_warn("governor: not restored by the agent (no privileged helper); see the error above");
    } else if (d->gov) {
        char err[512];
        if (gov_governor_restore(d->gov, err, sizeof(err)) < 0)
            log_err("governor: restore: %s", err);
        else
            log_info("governor: original CPU frequency settings restored");
        daemon_governor_drain_events(d);
    }
    daemon_gpio_stop(d);
    agent_plugins_free(d->plugins); /* no hook runs after this: worker, HTTP, queue are done */
    d->plugins = NULL;
    if (d->mqtt)
        tel_mqtt_close(d->mqtt, 2000);
    if (d->store) {
        int rc = tel_store_flush(d->store);
        if (rc < 0)
            log_err("telemetry: final flush: %s", strerror(-rc));
    }
    tel_mqtt_free(d->mqtt);
    d->mqtt = NULL;
    tel_store_close(d->store);
    d->store = NULL;
    tel_power_free(d->power);
    tel_wall_free(d->wall);
    d->wall = NULL;
    d->power = NULL;
    gov_governor_free(d->gov);
    d->gov = NULL;
    if (d->privsep && d->loop)
        agent_loop_del_fd(d->loop, privsep_fd(d->privsep));
    int helper = privsep_stop(d->privsep); /* restores what is still saved, then exits */
    if (helper != 0 && !d->helper_lost)    /* a lost helper's end was logged when it was lost */
        log_err("privilege separation: the helper ended with status %d", helper);
    d->privsep = NULL;
    eng_model_free(d->model);
    d->model = NULL;
    log_notice("stopped in %.0f ms", (double)(cmn_now_ns() - t0) / 1e6);
}

static struct agent_daemon *daemon_new(const struct agent_config *cfg, const char *config_path)
{
    struct agent_daemon *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->cfg = *cfg;
    d->file_governor = cfg->governor;
    d->config_path = config_path;
    d->exit_code = EMBER_EXIT_OK;
    d->signal_fd = -1;
    d->mqtt_fd = -1;
    d->last_power_w = NAN;
    d->last_temp_c = NAN;
    d->power_cap_w = 0;
    d->tokens_per_s = NAN;
    atomic_init(&d->phase, AGENT_PHASE_IDLE);
    atomic_init(&d->sample_phase, AGENT_PHASE_IDLE);
    pthread_mutex_init(&d->shared_lock, NULL);
    agent_meter_init(&d->meter);
    agent_phase_energy_init(&d->phase_energy);
    agent_meter_init(&d->wall_meter);
    agent_phase_energy_init(&d->wall_phase_energy);
    return d;
}

static void daemon_free(struct agent_daemon *d)
{
    if (d->signal_fd >= 0)
        close(d->signal_fd);
    agent_loop_free(d->loop);
    agent_meter_destroy(&d->meter);
    agent_phase_energy_destroy(&d->phase_energy);
    agent_meter_destroy(&d->wall_meter);
    agent_phase_energy_destroy(&d->wall_phase_energy);
    free(d->gov_json);
    daemon_queue_free(d->queue);
    pthread_mutex_destroy(&d->shared_lock);
    free(d);
}

/* The loop, its message queue and the signals it handles. */
static int start_loop(struct agent_daemon *d)
{
    if (agent_loop_new(&d->loop) < 0 || daemon_queue_new(DAEMON_QUEUE_CAPACITY, &d->queue) < 0)
        return -ENOMEM;
    if (setup_signals(d) < 0 ||
        agent_loop_add_fd(d->loop, daemon_queue_fd(d->queue), EPOLLIN, on_queue, d) < 0) {
        log_err("cannot set up signal handling");
        return -EIO;
    }
    return 0;
}

/* The HTTP API listens before the model loads (/health says 503 until it is ready). */
static int start_api(struct agent_daemon *d)
{
    if (!d->cfg.api.enabled)
        return 0;
    struct agent_http_hooks hooks = {
        .metrics = daemon_hook_metrics,
        .governor_get = daemon_hook_governor_get,
        .governor_set = daemon_hook_governor_set,
        .user = d,
    };
    struct agent_http_params hp;
    agent_http_params_defaults(&hp);
    hp.max_connections = (unsigned)d->cfg.api.max_connections;
    hp.idle_timeout_s = (unsigned)d->cfg.api.idle_timeout_s;
    hp.max_connections_per_client = (unsigned)d->cfg.api.max_connections_per_client;
    hp.header_timeout_ms = (unsigned)d->cfg.api.header_timeout_ms;
    hp.stream_buffer_bytes = (size_t)d->cfg.api.stream_buffer_bytes;
    hp.stream_coalesce_ms = (unsigned)d->cfg.api.stream_coalesce_ms;
    char err[512] = "";
    int rc = agent_models_open_config(&d->cfg, &d->models, err, sizeof(err));
    if (rc < 0) {
        log_err("models: %s", err);
        return rc;
    }
    hp.models = d->models;
    rc = agent_http_new(&d->cfg, NULL, &hooks, &hp, &d->http, err, sizeof(err));
    if (rc < 0) {
        log_err("api: %s", err);
        return rc;
    }
    log_info("api: http://%s:%u/v1", d->cfg.api.listen, agent_http_port(d->http));
    return 0;
}

/* The governor tick, the telemetry sample and the systemd watchdog. */
static int start_timers(struct agent_daemon *d)
{
    if (agent_loop_add_timer(d->loop, (uint64_t)d->cfg.governor.tunables.tick_ms,
                             daemon_on_governor_timer, d, &d->gov_timer) < 0 ||
        agent_loop_add_timer(d->loop, (uint64_t)d->cfg.telemetry.sample_interval_ms,
                             daemon_on_sample_timer, d, &d->sample_timer) < 0)
        return -ENOMEM;
    uint64_t watchdog_us = 0;
    if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0)
        agent_loop_add_timer(d->loop, watchdog_us / 2000, on_watchdog, d, &d->watchdog_timer);
    return 0;
}

int agent_daemon_run(const struct agent_config *cfg, const char *config_path)
{
    struct agent_daemon *d = daemon_new(cfg, config_path);
    if (!d)
        return EMBER_EXIT_FAILURE;
    int exit_code = EMBER_EXIT_FAILURE;
    uint64_t t0 = cmn_now_ns();
    /* The privileged helper is forked first: after the configuration (root-owned, already
     * parsed) and before any thread, or anything that parses untrusted input (GGUF, HTTP, MQTT)
     * or touches cpufreq/RAPL, which from then on go through the helper. */
    if (privsep_begin(d) < 0 || start_loop(d) < 0 || watch_helper(d) < 0)
        goto out;
    notify_status("starting");
    /* GPIO lines are requested while still root; their descriptors outlive the drop. */
    if (daemon_start_governor(d) < 0 || daemon_start_gpio(d) < 0 || privsep_end(d) < 0 ||
        daemon_governor_load_calibration(d) < 0 || daemon_start_telemetry(d) < 0 ||
        daemon_start_mqtt(d) < 0 || start_plugins(d) < 0 || start_api(d) < 0 || load_model(d) < 0)
        goto stop;
    if (d->http && d->worker)
        agent_http_set_worker(d->http, d->worker);
    if (d->http && !d->cfg.engine.model[0])
        agent_http_set_no_model(d->http);
    if (start_timers(d) < 0)
        goto stop;

    if (d->gov)
        daemon_governor_tick(d, cmn_now_ns());
    daemon_on_sample_timer(d, cmn_now_ns());
    log_notice("ready in %.0f ms", (double)(cmn_now_ns() - t0) / 1e6);
    d->ready = true;
    daemon_gpio_refresh(d, cmn_now_ns());
    sd_notifyf(0, "READY=1\nSTATUS=serving %s",
               d->cfg.engine.model[0] ? d->cfg.engine.model : "(no model)");
    if (agent_loop_run(d->loop) < 0) {
        log_err("event loop failed: %s", strerror(errno));
        goto stop;
    }
    exit_code = d->exit_code; /* EMBER_EXIT_OK, unless the loop stopped for a reason */
stop:
    shutdown_all(d);
out:
    privsep_stop(d->privsep); /* only when it started and the daemon did not */
    d->privsep = NULL;
    daemon_free(d);
    return exit_code;
}
