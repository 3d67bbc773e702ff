/* Ember's configuration: one INI file (/etc/ember/ember.conf) parsed with inih into struct
 * agent_config through one table of keys (section, name, type, range, default, doc) composed from
 * the agent's own rows and the modules' descriptor tables (the governor's tunables and policy
 * list, the engine's keys with its sampler ranges and chat template families, telemetry's power
 * model keys), so each key is defined once, by whoever enforces it. The same table validates,
 * prints defaults (`ember config dump`), documents etc/ember.conf and drives SIGHUP reload (keys
 * marked live apply without restart). Errors read `file:line: [section] key: reason`. */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/keydesc.h"
#include "common/range.h"
#include "governor/policy.h"

#define CFG_STR_SMALL 64
#define CFG_STR_PATH  512

struct cfg_agent {
    char log_level[CFG_STR_SMALL];
    int shutdown_timeout_ms;
    char state_dir[CFG_STR_PATH];
    char user[CFG_STR_SMALL]; /* privilege separation (issue 13, agent/privsep) */
};

struct cfg_engine {
    char model[CFG_STR_PATH];
    int threads;
    bool thread_lever;
    int context_length;
    int batch_size;
    char kv_cache[CFG_STR_SMALL];
    bool mmap;
    char chat_template[CFG_STR_SMALL];
    double temperature;
    int top_k;
    double top_p;
    double min_p;
    double repeat_penalty;
    int repeat_last_n;
    double presence_penalty;
    double frequency_penalty;
    bool context_shift;
    int keep_tokens;
    int max_tokens;
    long long seed;
};

/* The agent's own [governor] keys; every policy and constraint key is the governor's, defined
 * once in its table (gov_tunable_table) and stored here as the governor's own struct. */
struct cfg_governor {
    bool enabled;
    char backend[CFG_STR_SMALL];
    char sysfs_root[CFG_STR_PATH];
    char saved_path[CFG_STR_PATH];
    char calibration_path[CFG_STR_PATH];
    struct gov_tunables tunables;
};

struct cfg_telemetry {
    bool enabled;
    char database[CFG_STR_PATH];
    char sysfs_root[CFG_STR_PATH];
    int sample_interval_ms;
    int commit_interval_ms;
    int retention_days;
    int max_db_mb;
    double estimate_idle_w;
    double estimate_cpu_static_w;
    double estimate_cpu_dyn_w;
    char pmic_command[CFG_STR_PATH];
    /* the wall channel (telemetry/wall.h) */
    char wall_meter[CFG_STR_PATH];
    char wall_meter_topic[CFG_STR_PATH];
    char wall_meter_format[CFG_STR_SMALL];
    int wall_meter_stale_s;
    double wall_estimate_board_w;
    double wall_estimate_psu_efficiency;
};

struct cfg_mqtt {
    bool enabled;
    bool ask;
    char ask_response_prefix[CFG_STR_SMALL];
    char host[CFG_STR_PATH];
    int port;
    char protocol[CFG_STR_SMALL];
    char prefix[CFG_STR_SMALL];
    char device_id[CFG_STR_SMALL];
    char username[CFG_STR_SMALL];
    char password[CFG_STR_SMALL];
    char tls_ca[CFG_STR_PATH];
    char tls_cert[CFG_STR_PATH];
    char tls_key[CFG_STR_PATH];
    int keepalive_s;
    int reconnect_min_ms;
    int reconnect_max_ms;
    int replay_rate_per_s;
    bool discovery;
    char discovery_mode[CFG_STR_SMALL];
    char discovery_prefix[CFG_STR_SMALL];
    char configuration_url[CFG_STR_PATH];
    char support_url[CFG_STR_PATH];
};

struct cfg_api {
    bool enabled;
    char listen[CFG_STR_SMALL];
    int port;
    char bearer_token[CFG_STR_SMALL];
    int max_body_bytes;
    int queue_depth;
    char model_name[CFG_STR_SMALL];
    int max_connections;
    int max_connections_per_client;
    int header_timeout_ms;
    int idle_timeout_s;
    int stream_coalesce_ms;
    int stream_buffer_bytes;
    char allowed_hosts[CFG_STR_PATH];
};

/* [gpio]: status LED, fan, button and power-loss input through libgpiod (agent/gpio/). Lines
 * are "" (none), "OFFSET" (on chip), "CHIP:OFFSET", "CHIP:NAME" or "NAME" (searched on every
 * chip); see docs/gpio.md. */
struct cfg_gpio {
    bool enabled;
    char chip[CFG_STR_SMALL];
    char led[CFG_STR_SMALL];
    bool led_active_low;
    char fan[CFG_STR_SMALL];
    bool fan_active_low;
    char button[CFG_STR_SMALL];
    bool button_active_low;
    char power[CFG_STR_SMALL];
    bool power_active_low;
    char input_bias[CFG_STR_SMALL];
    int debounce_ms;
    int long_press_ms;
    double fan_on_temp_c;
    double fan_off_temp_c;
    double fan_full_temp_c;
    int fan_pwm_chip;
    int fan_pwm_channel;
    int fan_pwm_period_ns;
    int fan_pwm_min_duty_pct;
    char pwm_sysfs_root[CFG_STR_PATH];
};

/* Plugins (agent/plugins/, include/ember/plugin.h): [plugins] keys, and every `key = value` of
 * the [plugin.NAME] sections, which the agent does not interpret: each plugin checks its own. */
#define CFG_PLUGIN_SETTINGS  32
#define CFG_PLUGIN_VALUE_MAX 200
struct cfg_plugin_setting {
    char section[CFG_STR_SMALL]; /* "plugin.NAME" */
    char key[CFG_STR_SMALL];
    char value[CFG_PLUGIN_VALUE_MAX];
    int line;
};
struct cfg_plugins {
    char dir[CFG_STR_PATH];
    char enable[CFG_STR_PATH];
    size_t n_settings;
    struct cfg_plugin_setting settings[CFG_PLUGIN_SETTINGS];
};

/* [models]: the model directory and on-demand loading (issue 18, docs/models.md). */
struct cfg_models {
    char dir[CFG_STR_PATH];
    char aliases[CFG_STR_PATH]; /* "NAME=ID NAME=ID ..." */
    int keep_alive_s;           /* -1: for ever; 0: unload when the request ends */
    long long max_loaded_bytes; /* 0: half of physical memory */
};

struct agent_config {
    struct cfg_agent agent;
    struct cfg_engine engine;
    struct cfg_governor governor;
    struct cfg_telemetry telemetry;
    struct cfg_mqtt mqtt;
    struct cfg_api api;
    struct cfg_gpio gpio;
    struct cfg_plugins plugins;
    struct cfg_models models;
    /* Where the values came from, for messages: the file path or "(defaults)". */
    char source[CFG_STR_PATH];
};

enum cfg_type { CFG_BOOL, CFG_INT, CFG_DOUBLE, CFG_STRING, CFG_ENUM };

struct cfg_key {
    const char *section;
    const char *name;
    enum cfg_type type;
    size_t offset;              /* into struct agent_config */
    size_t size;                /* strings: buffer size */
    double min, max;            /* CFG_INT / CFG_DOUBLE, inclusive (see agent_config_key_range) */
    bool zero_off;              /* 0 is also accepted, meaning "off" or "the hardware's value" */
    const char *const *choices; /* CFG_ENUM: NULL-terminated */
    const char *def;            /* default, as it would be written in the file */
    bool live;                  /* applied on SIGHUP without restart */
    bool secret;                /* masked in dumps */
    const char *doc;
    const struct cmn_range *range; /* owned by the module that enforces it, or NULL */
    /* Only in config_keys.c's own rows: the module whose descriptor table describes this key
     * (type, range, choices, default, doc); the composed table has them filled in. */
    const struct cmn_key_desc *(*module)(size_t *ret_n);
};

/* The accepted range of a numeric key: k->range when a module owns it as a range (the
 * sampler's), else the row's min..max (*ret_zero_off: 0 is also accepted, as "off"). */
void agent_config_key_range(const struct cfg_key *k, struct cmn_range *ret, bool *ret_zero_off);

/* The composed table, terminated by a NULL section (config_keys.c builds it once). */
const struct cfg_key *agent_config_key_table(void);

/* Lines longer than this are rejected (inih's line buffer is 200 bytes). */
#define CFG_MAX_LINE 198
/* A config file larger than this is refused before parsing. */
#define CFG_MAX_FILE_BYTES (1024 * 1024)

void agent_config_defaults(struct agent_config *cfg);

/* Parses text (name is used in messages) over the defaults. Returns 0, or -EINVAL after writing
 * one "name:line: [section] key: reason" line per problem into err (NUL-terminated, truncated to
 * err_len). cfg is only written on success. */
int agent_config_parse(const char *text, size_t len, const char *name, struct agent_config *cfg,
                       char *err, size_t err_len);

/* Reads and parses a file. -ENOENT when it does not exist (err says so), -EINVAL on problems,
 * other -errno on I/O errors. */
int agent_config_load_file(const char *path, struct agent_config *cfg, char *err, size_t err_len);

/* Prints the effective configuration as an INI file; with docs, each key is preceded by its
 * documentation, range and default (that output is etc/ember.conf). */
void agent_config_dump(const struct agent_config *cfg, FILE *out, bool with_docs);

/* Keys whose values differ between two configs and that cannot change live: writes their
 * "[section] key" names, comma-separated, into buf; returns their count. */
int agent_config_restart_keys(const struct agent_config *a, const struct agent_config *b, char *buf,
                              size_t len);

/* Copies the keys marked live from next into cur (what a SIGHUP reload applies); keys that
 * need a restart keep their running values. */
void agent_config_apply_live(struct agent_config *cur, const struct agent_config *next);

/* For sub-commands: loads --config PATH (NULL = the default path, where absence means built-in
 * defaults; an explicit path must exist). Logs every problem; returns 0 or EMBER_EXIT_USAGE. */
int agent_config_load_for_cli(const char *path, struct agent_config *cfg);

#endif
