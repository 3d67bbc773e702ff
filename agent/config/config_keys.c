/* Every configuration key Ember understands, with type, range, default and the documentation that
 * `ember config dump --docs` writes into etc/ember.conf, composed from whoever enforces each key:
 * the agent's own rows here; the governor's tunables spliced in whole where MODULE_ROWS stands
 * (they are stored as the governor's own struct); the engine's and telemetry's keys completed
 * from their descriptor tables (eng_config_keys, tel_config_keys) where KEY_MODULE names them
 * (they are stored in the agent's fields); the policy choices from the governor's list. Adding an
 * agent key is adding a row here and a field in config.h; adding a governor tunable is adding it
 * to the governor's table only; an engine or telemetry key is a row in the module's table, a
 * KEY_MODULE row here (its place in the file and whether a reload applies it) and a field. */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/keydesc.h"
#include "config.h"
#include "engine/config_keys.h"
#include "governor/policy.h"
#include "telemetry/power.h"

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
/* A key the module that enforces it describes (type, range or choices, default, doc: a row of
 * its table, found by name); the agent keeps where the value lives and whether a reload applies
 * it. */
#define KEY_MODULE(sec, key, table, is_live)                                        \
    {                                                                               \
        .section = #sec, .name = #key, .offset = OFF(sec.key), .size = SZ(sec.key), \
        .live = (is_live), .module = (table)                                        \
    }
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
static const char *const backends[] = {"auto", "sysfs", "libcpupower", NULL};
static const char *const plug_formats[] = {"tasmota", "shelly", "number", NULL};
static const char *const gpio_biases[] = {"as-is", "pull-up", "pull-down", "disable", NULL};
/* Filled from the governor's own list by compose(). */
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
            "systemd unit sets it with --user ember. Empty (the default, for tests, the "
            "container, which already runs unprivileged, and runs by hand): no separation, the "
            "agent keeps the identity it was started with, and warns when that is root."),

    /* [engine] */
    KEY_STR(engine, model, "", false,
            "GGUF model file the agent serves. Empty: the agent starts without a model and "
            "/health answers 503."),
    /* the engine's keys, as it describes them (eng_config_keys) */
    KEY_MODULE(engine, threads, eng_config_keys, false),
    KEY_BOOL(engine, thread_lever, "true", true,
             "Let the governor's phase-aware policies change how many of the engine's threads "
             "run and on which CPUs, per phase, between tokens (threads stays the ceiling). "
             "false: the engine always runs threads threads, unpinned. Nothing needs restoring "
             "on exit: the setting lives inside the engine."),
    KEY_MODULE(engine, context_length, eng_config_keys, false),
    KEY_MODULE(engine, batch_size, eng_config_keys, false),
    KEY_MODULE(engine, kv_cache, eng_config_keys, false),
    KEY_MODULE(engine, mmap, eng_config_keys, false),
    KEY_MODULE(engine, chat_template, eng_config_keys, false),
    KEY_MODULE(engine, temperature, eng_config_keys, true),
    KEY_MODULE(engine, top_k, eng_config_keys, true),
    KEY_MODULE(engine, top_p, eng_config_keys, true),
    KEY_MODULE(engine, min_p, eng_config_keys, true),
    KEY_MODULE(engine, repeat_penalty, eng_config_keys, true),
    KEY_MODULE(engine, repeat_last_n, eng_config_keys, true),
    KEY_MODULE(engine, presence_penalty, eng_config_keys, true),
    KEY_MODULE(engine, frequency_penalty, eng_config_keys, true),
    KEY_MODULE(engine, context_shift, eng_config_keys, true),
    KEY_MODULE(engine, keep_tokens, eng_config_keys, true),
    KEY_MODULE(engine, max_tokens, eng_config_keys, true),
    KEY_MODULE(engine, seed, eng_config_keys, true),

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
    /* the store's keys and the power model's coefficients, as telemetry describes them
     * (tel_config_keys) */
    KEY_MODULE(telemetry, commit_interval_ms, tel_config_keys, false),
    KEY_MODULE(telemetry, retention_days, tel_config_keys, false),
    KEY_MODULE(telemetry, max_db_mb, tel_config_keys, false),
    KEY_MODULE(telemetry, estimate_idle_w, tel_config_keys, false),
    KEY_MODULE(telemetry, estimate_cpu_static_w, tel_config_keys, false),
    KEY_MODULE(telemetry, estimate_cpu_dyn_w, tel_config_keys, false),
    KEY_STR(telemetry, pmic_command, "vcgencmd pmic_read_adc", false,
            "Raspberry Pi 5 PMIC rails source (scope soc): a command printing `vcgencmd "
            "pmic_read_adc` output, run without a shell; tried after hwmon. Empty, or a program "
            "that is not installed: no such source."),
    /* the second boundary: the whole box at the wall (docs/telemetry.md, "Two boundaries") */
    KEY_STR(telemetry, wall_meter, "none", false,
            "Meter for the whole box at the wall: none (the estimate only), auto (a discharging "
            "battery when there is one), battery, hwmon:<name or path> (a hwmon device by its "
            "name, or a device directory or power/energy file under sysfs_root), or mqtt (a smart "
            "plug on wall_meter_topic, through the [mqtt] broker). Whenever the meter has nothing "
            "fresh, the wall figure is the estimate below, labelled as such."),
    KEY_STR(telemetry, wall_meter_topic, "", false,
            "wall_meter = mqtt: the plug's topic, e.g. tele/<device>/SENSOR (Tasmota) or "
            "<device-id>/status/switch:0 (Shelly Gen2/Gen3)."),
    KEY_ENUM(telemetry, wall_meter_format, plug_formats, "tasmota", false,
             "wall_meter = mqtt: the payload: tasmota (ENERGY.Power W, ENERGY.Total kWh), shelly "
             "(apower W, aenergy.total Wh) or number (a bare number of watts)."),
    KEY_INT(telemetry, wall_meter_stale_s, 5, 86400, "120", false,
            "A plug silent this long is stale and the wall figure falls back to the estimate "
            "(set the plug to report more often than this, e.g. Tasmota TelePeriod 10)."),
    KEY_DBL(telemetry, wall_estimate_board_w, 0, 1000, "2", false,
            "Wall estimate: watts beyond the package (board, DRAM, USB, fan); the estimate is "
            "(package + this) / wall_estimate_psu_efficiency."),
    KEY_DBL(telemetry, wall_estimate_psu_efficiency, 0.3, 1, "0.85", false,
            "Wall estimate: power supply efficiency."),

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

/* Whether a field of size bytes holds a value of the module's type. */
static bool storage_fits(enum cmn_key_type type, size_t size)
{
    switch (type) {
    case CMN_KEY_BOOL:
        return size == sizeof(bool);
    case CMN_KEY_INT:
        return size == sizeof(int) || size == sizeof(long long);
    case CMN_KEY_DOUBLE:
        return size == sizeof(double);
    case CMN_KEY_STRING:
    case CMN_KEY_ENUM:
        return size > 1;
    }
    return false;
}

/* A KEY_MODULE row completed from the module's description of the key. */
static struct cfg_key module_row(const struct cfg_key *row)
{
    size_t n;
    const struct cmn_key_desc *rows = row->module(&n);
    const struct cmn_key_desc *d = cmn_key_desc_find(rows, n, row->name);
    if (!d || !storage_fits(d->type, row->size) ||
        ((d->type == CMN_KEY_INT || d->type == CMN_KEY_DOUBLE) && !d->range) ||
        (d->type == CMN_KEY_ENUM && !d->choices))
        abort(); /* a programming error: the module does not describe this key so */
    static const enum cfg_type types[] = {
        [CMN_KEY_BOOL] = CFG_BOOL,     [CMN_KEY_INT] = CFG_INT,   [CMN_KEY_DOUBLE] = CFG_DOUBLE,
        [CMN_KEY_STRING] = CFG_STRING, [CMN_KEY_ENUM] = CFG_ENUM,
    };
    struct cfg_key k = *row;
    k.type = types[d->type];
    k.range = d->range;
    k.choices = d->choices;
    k.def = d->def;
    k.doc = d->doc;
    k.module = NULL;
    return k;
}

static void compose(void)
{
    size_t n = 0;
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
        } else if (agent_rows[i].module) {
            table[n++] = module_row(&agent_rows[i]);
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
