/* Every configuration key Ember understands: one row each, with type, range, default and the
 * documentation that `ember config dump --docs` writes into etc/ember.conf. Adding a key is adding
 * a row here and a field in config.h. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine/engine.h"
#include "engine/sampler.h"

#define OFF(field) offsetof(struct agent_config, field)
#define SZ(field)  sizeof(((struct agent_config *)0)->field)

#define KEY_BOOL(sec, name, def, live, doc)                                                    \
    {                                                                                          \
#sec, #name, CFG_BOOL, OFF(sec.name), SZ(sec.name), 0, 1, NULL, def, live, false, doc, \
            NULL                                                                               \
    }
#define KEY_INT(sec, name, lo, hi, def, live, doc)                                              \
    {                                                                                           \
#sec, #name, CFG_INT, OFF(sec.name), SZ(sec.name), lo, hi, NULL, def, live, false, doc, \
            NULL                                                                                \
    }
#define KEY_DBL(sec, name, lo, hi, def, live, doc)                                                 \
    {                                                                                              \
#sec, #name, CFG_DOUBLE, OFF(sec.name), SZ(sec.name), lo, hi, NULL, def, live, false, doc, \
            NULL                                                                                   \
    }
#define KEY_STR(sec, name, def, live, doc)                                                       \
    {                                                                                            \
#sec, #name, CFG_STRING, OFF(sec.name), SZ(sec.name), 0, 0, NULL, def, live, false, doc, \
            NULL                                                                                 \
    }
#define KEY_SECRET(sec, name, def, live, doc)                                                   \
    {                                                                                           \
#sec, #name, CFG_STRING, OFF(sec.name), SZ(sec.name), 0, 0, NULL, def, live, true, doc, \
            NULL                                                                                \
    }
/* A number whose range is owned by the module that enforces it. */
#define KEY_RANGED(sec, name, type, range, def, live, doc)                                 \
    {                                                                                      \
#sec, #name, type, OFF(sec.name), SZ(sec.name), 0, 0, NULL, def, live, false, doc, \
            &(range)                                                                       \
    }
/* A [governor] tunable: its range is read from the governor's own table. */
#define KEY_GOV(name, type, def, live, doc)                                                    \
    {                                                                                          \
        "governor", #name, type, OFF(governor.name), SZ(governor.name), 0, 0, NULL, def, live, \
            false, doc, NULL                                                                   \
    }
#define KEY_ENUM(sec, name, choices, def, live, doc)                                              \
    {                                                                                             \
#sec, #name, CFG_ENUM, OFF(sec.name), SZ(sec.name), 0, 0, choices, def, live, false, doc, \
            NULL                                                                                  \
    }

static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug", NULL};
static const char *const chat_templates[] = {"auto",    "chatml", "llama2", "llama3", "zephyr",
                                             "mistral", "phi3",   "gemma",  NULL};
static const char *const policies[] = {"performance",  "powersave", "ondemand",
                                       "conservative", "schedutil", "balanced",
                                       "efficiency",   "quiet",     NULL};
static const char *const mqtt_protocols[] = {"v5", "v311", NULL};
static const char *const discovery_modes[] = {"component", "device", NULL};
static const char *const kv_types[] = {"f16", "f32", NULL};
static const char *const backends[] = {"auto", "sysfs", "libcpupower", NULL};

const struct cfg_key agent_config_keys[] = {
    /* [agent] */
    KEY_ENUM(agent, log_level, log_levels, "info", true,
             "Most verbose log level written to stderr (the journal under systemd)."),
    KEY_INT(agent, shutdown_timeout_ms, 0, 600000, "10000", true,
            "On SIGTERM, how long in-flight requests may finish before they are cancelled."),
    KEY_STR(agent, state_dir, "/var/lib/ember", false,
            "Directory for persistent state (database, calibration curves)."),
    KEY_STR(agent, user, "", false,
            "Privilege separation: when started as root, the user the agent becomes after "
            "forking its privileged helper (which alone stays root, to write cpufreq/devfreq "
            "knobs, read RAPL counters and keep the saved settings; see docs/agent.md). The "
            "systemd unit sets it with --user ember. Empty: no separation, the agent keeps the "
            "identity it was started with."),

    /* [engine] */
    KEY_STR(engine, model, "", false,
            "GGUF model file the agent serves. Empty: the agent starts without a model and "
            "/health answers 503."),
    KEY_INT(engine, threads, 0, 512, "0", false,
            "Compute threads for the kernels; 0 = one per online CPU core."),
    KEY_INT(engine, context_length, 64, ENG_N_CTX_MAX, "2048", false,
            "Context window in tokens (KV cache size); capped by the model's own."),
    KEY_INT(engine, batch_size, 1, 8192, "512", false, "Prompt tokens processed per prefill step."),
    KEY_ENUM(engine, kv_cache, kv_types, "f16", false,
             "KV cache precision: f16 halves its memory; f32 is exact (for comparisons)."),
    KEY_BOOL(engine, mmap, "false", false,
             "Compute on the model file's mapping instead of copying the weights into memory. "
             "The copy (default) uses huge pages and row-interleaved layouts and is faster; "
             "mmap needs no second copy for boxes short of RAM."),
    KEY_ENUM(engine, chat_template, chat_templates, "auto", false,
             "Chat template; auto = recognise the model's tokenizer.chat_template (ChatML if "
             "unknown)."),
    KEY_RANGED(engine, temperature, CFG_DOUBLE, eng_sampler_ranges.temperature, "0.8", true,
               "Default sampling temperature for requests that do not set one (0 = greedy)."),
    KEY_RANGED(engine, top_k, CFG_INT, eng_sampler_ranges.top_k, "40", true,
               "Default top-k (0 = off)."),
    KEY_RANGED(engine, top_p, CFG_DOUBLE, eng_sampler_ranges.top_p, "0.95", true,
               "Default nucleus (top-p) threshold (1 = off)."),
    KEY_RANGED(engine, min_p, CFG_DOUBLE, eng_sampler_ranges.min_p, "0.05", true,
               "Default min-p threshold (0 = off)."),
    KEY_RANGED(engine, repeat_penalty, CFG_DOUBLE, eng_sampler_ranges.repeat_penalty, "1", true,
               "Default repetition penalty over the last repeat_last_n tokens (1 = off)."),
    KEY_RANGED(engine, repeat_last_n, CFG_INT, eng_sampler_ranges.penalty_last_n, "64", true,
               "How many recent tokens the repetition and presence penalties look at."),
    KEY_RANGED(engine, presence_penalty, CFG_DOUBLE, eng_sampler_ranges.presence_penalty, "0", true,
               "Default presence penalty (0 = off)."),
    KEY_RANGED(
        engine, frequency_penalty, CFG_DOUBLE, eng_sampler_ranges.frequency_penalty, "0", true,
        "Default frequency penalty: subtracted once per occurrence in the window (0 = off)."),
    KEY_BOOL(engine, context_shift, "false", true,
             "When the context fills up during a reply, drop the older half (after keep_tokens) "
             "and go on instead of ending the reply with finish_reason length."),
    KEY_INT(engine, keep_tokens, 0, ENG_N_CTX_MAX, "0", true,
            "Leading tokens (e.g. the system prompt) a context shift never drops."),
    KEY_INT(
        engine, max_tokens, 1, ENG_N_CTX_MAX, "512", true,
        "Generated tokens per request: the default, and the ceiling for what a request (HTTP or "
        "MQTT ask) may ask for."),
    KEY_INT(engine, seed, -1, 4294967295.0, "-1", true,
            "Default sampling seed; -1 = a fresh random seed per request."),

    /* [governor] */
    KEY_BOOL(governor, enabled, "true", false,
             "Run the DVFS governor. Without root or cpufreq it only monitors."),
    KEY_ENUM(governor, policy, policies, "balanced", true,
             "Frequency policy: performance, powersave, ondemand, conservative, schedutil, "
             "balanced (engine-phase aware), efficiency (lowest joules per token), quiet."),
    KEY_GOV(tick_ms, CFG_INT, "100", false, "How often the governor decides."),
    KEY_ENUM(governor, backend, backends, "auto", false,
             "cpufreq interface: auto uses libcpupower when sysfs_root is /, else direct sysfs; "
             "libcpupower is refused for any other root."),
    KEY_STR(governor, sysfs_root, "/", false,
            "Root under which /sys and /proc are read (tests point it at a fake tree)."),
    KEY_STR(governor, saved_path, "/run/ember/governor.saved", false,
            "Where the machine's original CPU frequency settings are saved before the first "
            "write; restored on exit, by `ember governor restore`, and after a crash."),
    KEY_STR(governor, calibration_path, "/var/lib/ember/calibration.json", false,
            "Frequency/throughput/power curve written by `ember governor calibrate`."),
    KEY_GOV(min_mhz, CFG_INT, "0", true,
            "Lowest frequency the governor may use; 0 = the hardware minimum."),
    KEY_GOV(max_mhz, CFG_INT, "0", true,
            "Highest frequency the governor may use; 0 = the hardware maximum (boost)."),
    KEY_GOV(thermal_target_c, CFG_DOUBLE, "85", true,
            "Keep the hottest sensor below this (PI controller, also kept below the first "
            "passive trip point); 0 = off."),
    KEY_GOV(power_cap_w, CFG_DOUBLE, "0", true,
            "Cap on package power in watts (PI controller); 0 = no cap."),
    KEY_GOV(decode_slowdown_max_pct, CFG_DOUBLE, "5", true,
            "balanced/efficiency: decode may be at most this much slower than at full speed."),
    KEY_GOV(idle_delay_ms, CFG_INT, "2000", true,
            "balanced: drop to the minimum frequency after this long without engine work."),
    KEY_GOV(up_threshold, CFG_INT, "80", true,
            "ondemand/conservative: utilisation percent above which frequency goes up."),
    KEY_GOV(down_threshold, CFG_INT, "20", true,
            "conservative: utilisation percent below which frequency steps down."),
    KEY_GOV(sampling_down_factor, CFG_INT, "1", true,
            "ondemand: ticks to stay at maximum before re-evaluating a decrease."),
    KEY_GOV(powersave_bias, CFG_INT, "0", true, "ondemand: lower targets by this many per-mille."),
    KEY_GOV(freq_step_pct, CFG_INT, "5", true,
            "conservative: step size as percent of the maximum frequency."),
    KEY_GOV(quiet_temp_c, CFG_DOUBLE, "65", true,
            "quiet: temperature (fan noise proxy) the policy holds the CPU under."),
    KEY_GOV(dead_band_pct, CFG_DOUBLE, "3", true,
            "Ignore target changes smaller than this percent of the current frequency."),
    KEY_GOV(rate_limit_ms, CFG_INT, "200", true,
            "Minimum time between two frequency changes of one cluster."),
    KEY_GOV(hysteresis_ms, CFG_INT, "300", true,
            "A frequency decrease must be asked for this long before it is applied."),
    KEY_GOV(trip_margin_c, CFG_DOUBLE, "5", true,
            "The thermal controller also stays this far below the first passive trip point."),
    KEY_GOV(thermal_kp, CFG_DOUBLE, "0.08", true,
            "Thermal PI controller: proportional gain (fraction of the frequency range per "
            "degree C above target)."),
    KEY_GOV(thermal_ki, CFG_DOUBLE, "0.02", true,
            "Thermal PI controller: integral gain (fraction of the range per degree C second)."),
    KEY_GOV(power_kp, CFG_DOUBLE, "0.3", true,
            "Power cap PI controller, proportional gain in the log domain: relative clock "
            "change per unit of ln(cap / power)."),
    KEY_GOV(power_ki, CFG_DOUBLE, "1", true,
            "Power cap PI controller, integral gain in the log domain: per unit of "
            "ln(cap / power) and second."),
    KEY_GOV(rate_limit_us, CFG_INT, "0", true,
            "schedutil: its own minimum time between frequency changes."),
    KEY_GOV(probe_ms, CFG_INT, "1000", true,
            "balanced without calibration, efficiency: dwell time per point of the online "
            "search."),
    KEY_GOV(reprobe_s, CFG_INT, "600", true,
            "balanced/efficiency: search again this often (0 = never)."),

    /* [telemetry] */
    KEY_BOOL(telemetry, enabled, "true", false, "Sample power and keep the SQLite history."),
    KEY_STR(telemetry, database, "/var/lib/ember/telemetry.db", false,
            "SQLite database (WAL) holding samples, rollups, sessions and events."),
    KEY_STR(telemetry, sysfs_root, "/", false,
            "Root under which powercap, hwmon and power_supply are read."),
    KEY_INT(telemetry, sample_interval_ms, 100, 3600000, "1000", true,
            "How often a power sample is taken and published."),
    KEY_INT(telemetry, commit_interval_ms, 100, 600000, "5000", false,
            "Samples are committed in one transaction this often (at most this much is lost on "
            "a crash)."),
    KEY_INT(telemetry, retention_days, 1, 36500, "7", false,
            "Raw samples older than this are deleted (1-minute rollups are kept 90 days, "
            "1-hour rollups 5 years)."),
    KEY_INT(telemetry, max_db_mb, 1, 1048576, "256", false,
            "Size quota for the database; the oldest samples go first."),
    KEY_DBL(telemetry, estimate_idle_w, 0, 1000, "2", false,
            "Power model (used when no RAPL/hwmon/battery sensor exists): platform floor in "
            "watts (memory, uncore, board)."),
    KEY_DBL(telemetry, estimate_cpu_static_w, 0, 100, "0.15", false,
            "Power model: leakage watts per CPU."),
    KEY_DBL(telemetry, estimate_cpu_dyn_w, 0, 100, "1", false,
            "Power model: watts per CPU per (GHz x V^2) at full utilisation."),

    /* [mqtt] */
    KEY_BOOL(mqtt, enabled, "true", false, "Publish telemetry and accept commands over MQTT."),
    KEY_STR(mqtt, host, "127.0.0.1", false, "Broker host name or address."),
    KEY_INT(mqtt, port, 1, 65535, "1883", false, "Broker port (8883 is usual with TLS)."),
    KEY_ENUM(mqtt, protocol, mqtt_protocols, "v5", false,
             "MQTT protocol version; v5 falls back to v3.1.1 when the broker refuses it."),
    KEY_STR(mqtt, prefix, "ember", false, "Topic prefix: topics are <prefix>/<device_id>/..."),
    KEY_STR(mqtt, device_id, "", false, "Device id in topics and discovery; empty = host name."),
    KEY_STR(mqtt, username, "", false, "Broker user name (empty = anonymous)."),
    KEY_SECRET(mqtt, password, "", false, "Broker password."),
    KEY_STR(mqtt, tls_ca, "", false, "CA certificate file; set to enable TLS."),
    KEY_STR(mqtt, tls_cert, "", false, "Client certificate file for TLS client authentication."),
    KEY_STR(mqtt, tls_key, "", false, "Client private key file for TLS client authentication."),
    KEY_INT(mqtt, keepalive_s, 5, 3600, "60", false, "MQTT keepalive interval."),
    KEY_INT(mqtt, reconnect_min_ms, 100, 600000, "1000", false,
            "First reconnect delay; doubles (with jitter) up to reconnect_max_ms."),
    KEY_INT(mqtt, reconnect_max_ms, 1000, 3600000, "60000", false, "Longest reconnect delay."),
    KEY_INT(mqtt, replay_rate_per_s, 1, 100000, "50", false,
            "After an outage, stored samples are replayed at most this fast."),
    KEY_BOOL(mqtt, discovery, "true", false,
             "Publish Home Assistant discovery config; false removes the entities announced "
             "before."),
    KEY_ENUM(mqtt, discovery_mode, discovery_modes, "component", false,
             "component: one discovery message per entity; device: one message for the whole "
             "device (Home Assistant 2024.11 or later; switching migrates the entities)."),
    KEY_STR(mqtt, discovery_prefix, "homeassistant", false, "Home Assistant discovery prefix."),
    KEY_STR(mqtt, configuration_url, "", false,
            "Link on the Home Assistant device page (http, https or homeassistant URL; empty = "
            "none)."),
    KEY_STR(mqtt, support_url, "", false,
            "Support link in the discovery origin (http or https URL; empty = none)."),
    KEY_BOOL(mqtt, ask, "false", false,
             "Answer prompts published to <prefix>/<device_id>/ask with the model. Anyone who "
             "may publish there runs the model: restrict it with broker ACLs first."),
    KEY_STR(mqtt, ask_response_prefix, "", false,
            "Answers to ask go only to response topics equal to or under this; empty = "
            "<prefix>/<device_id>/ask/response."),

    /* [api] */
    KEY_BOOL(api, enabled, "true", false, "Serve the OpenAI-compatible HTTP API."),
    KEY_STR(api, listen, "127.0.0.1", false,
            "Address to bind; loopback by default (set a bearer_token before exposing it)."),
    KEY_INT(api, port, 1, 65535, "8088", false, "TCP port of the HTTP API."),
    KEY_SECRET(api, bearer_token, "", true,
               "If set, requests must carry 'Authorization: Bearer <token>'."),
    KEY_INT(api, max_body_bytes, 1024, 67108864, "1048576", true,
            "Largest accepted request body; larger gets 413."),
    KEY_INT(api, queue_depth, 1, 4096, "8", true,
            "Requests waiting for the engine beyond the one running; more get 429."),
    KEY_STR(api, model_name, "", false, "Model id reported by /v1/models; empty = file name."),
    KEY_INT(api, max_connections, 1, 1024, "64", false,
            "Concurrent HTTP requests (one thread each). When full, the oldest connections still "
            "sending their request are dropped for new ones, and /health and /metrics are "
            "answered beyond the limit."),
    KEY_INT(api, max_connections_per_client, 1, 1024, "16", false,
            "Connections one client address may hold; a new one beyond it replaces that "
            "client's oldest connection still sending its request."),
    KEY_INT(api, header_timeout_ms, 100, 600000, "10000", false,
            "A request (headers and body) must arrive within this long after the connection "
            "opens; a keep-alive connection's next request within idle_timeout_s."),
    KEY_INT(api, idle_timeout_s, 1, 3600, "60", false,
            "Idle keep-alive connections are closed after this many seconds."),
    KEY_INT(api, stream_coalesce_ms, 0, 100, "10", false,
            "Streamed tokens closer together than this share one write (0 = one write per "
            "token)."),
    KEY_INT(api, stream_buffer_bytes, 65536, 67108864, "1048576", false,
            "Unsent bytes a stream may hold for a slow client; beyond it the client is dropped "
            "and its generation cancelled."),
    KEY_STR(api, allowed_hosts, "", true,
            "Host names (space or comma separated) accepted in the Host and Origin headers "
            "besides IP addresses, localhost and this machine's host name; * = any. Guards "
            "against DNS rebinding."),

    {NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL, false, false, NULL, NULL},
};
