/* Every configuration key Ember understands, with type, range, default and the documentation that
 * `ember config dump --docs` writes into etc/ember.conf: the agent's own rows here, the modules'
 * descriptor tables spliced in where MODULE_ROWS stands (the governor's tunables), and enum
 * choices taken from the modules' own lists. Adding an agent key is adding a row here and a field
 * in config.h; adding a governor tunable is adding it to the governor's table only. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "governor/policy.h"

#define OFF(field) offsetof(struct agent_config, field)
#define SZ(field)  sizeof(((struct agent_config *)0)->field)

#define ROW(sec, key, t, deflt, is_live, text, ...)                                              \
    {                                                                                            \
        .section = #sec, .name = #key, .type = (t), .offset = OFF(sec.key), .size = SZ(sec.key), \
        .def = (deflt), .live = (is_live), .doc = (text), __VA_ARGS__                            \
    }
#define KEY_BOOL(sec, name, def, live, doc) ROW(sec, name, CFG_BOOL, def, live, doc, .max = 1)
#define KEY_INT(sec, name, lo, hi, def, live, doc) \
    ROW(sec, name, CFG_INT, def, live, doc, .min = (lo), .max = (hi))
#define KEY_DBL(sec, name, lo, hi, def, live, doc) \
    ROW(sec, name, CFG_DOUBLE, def, live, doc, .min = (lo), .max = (hi))
#define KEY_STR(sec, name, def, live, doc) ROW(sec, name, CFG_STRING, def, live, doc, .min = 0)
#define KEY_SECRET(sec, name, def, live, doc) \
    ROW(sec, name, CFG_STRING, def, live, doc, .secret = true)
/* A number whose range is owned by the module that enforces it. */
#define KEY_RANGED(sec, name, type, rng, def, live, doc) \
    ROW(sec, name, type, def, live, doc, .range = &(rng))
#define KEY_ENUM(sec, name, list, def, live, doc) \
    ROW(sec, name, CFG_ENUM, def, live, doc, .choices = (list))
/* Where a module's own descriptor table is spliced in (see compose below). */
#define MODULE_ROWS(sec)             \
    {                                \
        .section = #sec, .name = "*" \
    }

static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug", NULL};
static const char *const mqtt_protocols[] = {"v5", "v311", NULL};
static const char *const discovery_modes[] = {"component", "device", NULL};
static const char *const kv_types[] = {"f16", "f32", NULL};
static const char *const backends[] = {"auto", "sysfs", "libcpupower", NULL};
static const char *const gpio_biases[] = {"as-is", "pull-up", "pull-down", "disable", NULL};
/* Filled from the modules' own lists by compose(): "auto" and the engine's chat template
 * families; the governor's policies. */
static const char *chat_templates[ENG_CHAT_FAMILY_COUNT + 2];
static const char *policies[32];

static const struct cfg_key agent_rows[] = {
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
    /* every policy and constraint key: the governor's table (gov_tunable_table) */
    MODULE_ROWS(governor),
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

    /* [gpio] (agent/gpio/, docs/gpio.md) */
    KEY_BOOL(gpio, enabled, "false", false,
             "Drive a status LED, a fan and read a button and a power-loss input through "
             "libgpiod. Lines are requested at start, before the agent drops root. A chip or "
             "line that is missing or busy is named in one warning and that function is off."),
    KEY_STR(gpio, chip, "gpiochip0", false,
            "Chip of the lines given by offset alone: a name (gpiochip0), a path, a number or "
            "a label."),
    KEY_STR(gpio, led, "", false,
            "Status LED line: OFFSET, CHIP:OFFSET, CHIP:NAME or NAME (a line name searched on "
            "every chip); empty = none. Patterns: starting, ready, generating, thermal "
            "throttling, error (docs/gpio.md)."),
    KEY_BOOL(gpio, led_active_low, "false", false, "The LED lights when its line is low."),
    KEY_STR(gpio, fan, "", false,
            "Fan switch line (same forms as led); empty = none. On at fan_on_temp_c, off at "
            "fan_off_temp_c; on when no temperature is known."),
    KEY_BOOL(gpio, fan_active_low, "false", false, "The fan runs when its line is low."),
    KEY_STR(gpio, button, "", false,
            "Push button line (same forms as led); empty = none. A short press toggles the "
            "quiet and balanced policies; a press held for long_press_ms stops the agent "
            "cleanly."),
    KEY_BOOL(gpio, button_active_low, "false", false,
             "The button reads low when pressed (a switch to ground with a pull-up)."),
    KEY_STR(gpio, power, "", false,
            "Power-loss / UPS input line (same forms as led); empty = none. When it asserts, "
            "telemetry is written to disk at once (and after every sample until power returns) "
            "and the original CPU frequency settings are restored."),
    KEY_BOOL(gpio, power_active_low, "false", false, "Power loss is signalled by a low level."),
    KEY_ENUM(gpio, input_bias, gpio_biases, "as-is", false,
             "Bias of the button and power inputs (pull-up for a switch to ground without an "
             "external resistor); as-is leaves the line as the board set it."),
    KEY_INT(gpio, debounce_ms, 0, 1000, "30", false,
            "An input must hold a level this long before a change counts (0 = every edge)."),
    KEY_INT(gpio, long_press_ms, 500, 30000, "3000", true,
            "A button press held this long is a long press (clean shutdown)."),
    KEY_DBL(gpio, fan_on_temp_c, 20, 120, "60", true,
            "The fan switches on at or above this CPU temperature."),
    KEY_DBL(gpio, fan_off_temp_c, 20, 120, "50", true,
            "The fan switches off at or below this temperature (must be below fan_on_temp_c)."),
    KEY_DBL(gpio, fan_full_temp_c, 20, 120, "75", true,
            "With a PWM fan: full speed at or above this temperature; between fan_on_temp_c "
            "and here the duty rises linearly from fan_pwm_min_duty_pct (must be above "
            "fan_on_temp_c)."),
    KEY_INT(gpio, fan_pwm_chip, -1, 1023, "-1", false,
            "PWM fan speed through the sysfs pwm class: pwmchipN (-1 = no PWM)."),
    KEY_INT(gpio, fan_pwm_channel, 0, 1023, "0", false,
            "Channel of fan_pwm_chip (exported if it is not)."),
    KEY_INT(gpio, fan_pwm_period_ns, 1000, 100000000, "40000", false,
            "PWM period; 40000 ns = 25 kHz, the frequency of 4-wire PC fans."),
    KEY_INT(gpio, fan_pwm_min_duty_pct, 0, 100, "30", true,
            "Duty cycle when the fan has just switched on (some fans stall below ~20-30%)."),
    KEY_STR(gpio, pwm_sysfs_root, "/", false,
            "Root under which sys/class/pwm is found (tests point it at a fake tree)."),
    /* [plugins] (agent/plugins/, docs/plugins.md); each plugin's own keys go in [plugin.NAME] */
    KEY_STR(plugins, dir, "", false,
            "Directory of plugin shared objects (*.so) loaded at start, after the agent has "
            "dropped its privileges. Empty: no plugins. The packaged ones are in "
            "/usr/lib/ember/plugins. Each plugin reads its own keys from a [plugin.NAME] "
            "section (docs/plugins.md)."),
    KEY_STR(plugins, enable, "", false,
            "Plugin files to load from dir, by name without .so (space or comma separated), in "
            "this order; empty = every *.so in dir, in name order."),

    /* [models] (docs/models.md) */
    KEY_STR(models, dir, "/var/lib/ember/models", false,
            "Model directory: every *.gguf file in it or its subdirectories is an installed "
            "model, its id the path below the directory without .gguf (ember models list). "
            "The API loads one on first use by the request's model field; ember pull writes "
            "here."),
    KEY_STR(models, aliases, "", false,
            "Other names for installed models, as space-separated NAME=ID pairs (chat=qwen2.5-"
            "0.5b-instruct-q4_0)."),
    KEY_INT(models, keep_alive_s, -1, 31536000, "300", true,
            "How long a model loaded on demand stays loaded after its last request (-1 = until "
            "the agent stops, 0 = unload at once); a request's keep_alive field overrides it. "
            "The [engine] model stays loaded."),
    KEY_INT(models, max_loaded_bytes, 0, 9007199254740992.0, "0", true,
            "Memory budget for loaded models (weights, KV cache and buffers, estimated from the "
            "file): loading one more first unloads the least recently used idle models; a "
            "model larger than the budget is refused. 0 = half of physical memory."),
    {0},
};

#define N_AGENT_ROWS (sizeof(agent_rows) / sizeof(agent_rows[0]))
#define MAX_ROWS     256

static struct cfg_key table[MAX_ROWS];
static pthread_once_t composed = PTHREAD_ONCE_INIT;

/* A governor tunable as a configuration key. Everything but liveness is the governor's: tick_ms
 * sets the agent's timer at start, so it alone needs a restart. */
static struct cfg_key governor_row(const struct gov_tunable_desc *d)
{
    bool is_policy = strcmp(d->key, "policy") == 0;
    return (struct cfg_key){
        .section = "governor",
        .name = d->key,
        .type = d->type == GOV_TUNABLE_INT      ? CFG_INT
                : d->type == GOV_TUNABLE_DOUBLE ? CFG_DOUBLE
                : is_policy                     ? CFG_ENUM
                                                : CFG_STRING,
        .offset = offsetof(struct agent_config, governor.tunables) + d->offset,
        .size = d->size,
        .min = d->min,
        .max = d->max,
        .zero_off = d->zero_means_off,
        .choices = is_policy ? policies : NULL,
        .def = d->default_value,
        .live = strcmp(d->key, "tick_ms") != 0,
        .doc = d->doc,
    };
}

static void compose(void)
{
    size_t n = 0;
    chat_templates[n++] = "auto";
    for (int f = 0; f < ENG_CHAT_FAMILY_COUNT; f++)
        chat_templates[n++] = eng_chat_family_name((enum eng_chat_family)f);
    chat_templates[n] = NULL;
    const struct gov_policy_ops *const *list = gov_policy_list();
    for (n = 0; list[n] && n + 1 < sizeof(policies) / sizeof(policies[0]); n++)
        policies[n] = list[n]->name;
    policies[n] = NULL;

    size_t gov_n;
    const struct gov_tunable_desc *gov = gov_tunable_table(&gov_n);
    if (N_AGENT_ROWS + gov_n > MAX_ROWS)
        abort(); /* a programming error: raise MAX_ROWS */
    n = 0;
    for (size_t i = 0; i < N_AGENT_ROWS; i++) {
        if (agent_rows[i].name && strcmp(agent_rows[i].name, "*") == 0) {
            for (size_t j = 0; j < gov_n; j++)
                table[n++] = governor_row(&gov[j]);
        } else {
            table[n++] = agent_rows[i];
        }
    }
}

const struct cfg_key *agent_config_key_table(void)
{
    pthread_once(&composed, compose);
    return table;
}
