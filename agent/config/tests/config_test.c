/* The configuration parser: every kind of bad line is rejected with the right file:line and
 * reason, good files override defaults, and nothing is applied when anything is wrong. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine/chat.h"
#include "engine/config_keys.h"
#include "engine/sampler.h"
#include "governor/policy.h"
#include "telemetry/power.h"
#include "telemetry/store.h"
#include "ember_test.h"

static char err[8192];

static int parse(const char *text, struct agent_config *cfg)
{
    return agent_config_parse(text, strlen(text), "t.conf", cfg, err, sizeof(err));
}

static void expect_error(const char *text, const char *message)
{
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    int rc = parse(text, &cfg);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_CONTAINS(err, message);
}

/* Sets one sampler field named like its [engine] key. */
static bool set_sampler_field(struct eng_sampler_params *p, const char *key, double v)
{
    if (strcmp(key, "temperature") == 0)
        p->temperature = (float)v;
    else if (strcmp(key, "top_k") == 0)
        p->top_k = (int32_t)v;
    else if (strcmp(key, "top_p") == 0)
        p->top_p = (float)v;
    else if (strcmp(key, "min_p") == 0)
        p->min_p = (float)v;
    else if (strcmp(key, "repeat_penalty") == 0)
        p->repeat_penalty = (float)v;
    else if (strcmp(key, "repeat_last_n") == 0)
        p->penalty_last_n = (int32_t)v;
    else if (strcmp(key, "presence_penalty") == 0)
        p->presence_penalty = (float)v;
    else if (strcmp(key, "frequency_penalty") == 0)
        p->frequency_penalty = (float)v;
    else
        return false;
    return true;
}

/* Issue 21 item 7: whatever the checker accepts for a sampling key, the sampler accepts too
 * (`config check` took top_p = 0, then `run` failed). */
static void test_sampler_ranges_agree(void)
{
    static const double values[] = {-3,  -2.5, -2,  -1,   -0.5,   0,       1e-6, 0.05,
                                    0.5, 0.95, 1,   1.5,  2,      2.5,     5,    5.5,
                                    64,  100,  101, 8192, 100000, 1048576, 2e6};
    int sampler_keys = 0;
    for (const struct cfg_key *k = agent_config_key_table(); k->section; k++) {
        struct eng_sampler_params probe;
        eng_sampler_params_defaults(&probe);
        if (strcmp(k->section, "engine") != 0 || !set_sampler_field(&probe, k->name, 0))
            continue;
        sampler_keys++;
        CHECK_MSG(k->range != NULL, "[engine] %s: range not taken from the sampler", k->name);
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            if (k->type == CFG_INT && values[i] != (double)(long long)values[i])
                continue;
            char text[128];
            snprintf(text, sizeof(text), "[engine]\n%s = %.17g\n", k->name, values[i]);
            struct agent_config cfg;
            agent_config_defaults(&cfg);
            bool checker_ok = parse(text, &cfg) == 0;
            struct eng_sampler_params sp;
            eng_sampler_params_defaults(&sp);
            set_sampler_field(&sp, k->name, values[i]);
            bool engine_ok = eng_sampler_params_validate(&sp, NULL, 0) == 0;
            CHECK_MSG(checker_ok == engine_ok, "[engine] %s = %g: checker %s, sampler %s", k->name,
                      values[i], checker_ok ? "accepts" : "refuses",
                      engine_ok ? "accepts" : "refuses");
        }
    }
    CHECK_EQ_INT(sampler_keys, 8);
    expect_error("[engine]\ntop_p = 0\n", "t.conf:2: [engine] top_p: 0 is out of range ((0, 1])");
}

/* Issue 13 item 3: the governor's keys and the enum choices come from the modules' own tables
 * and lists, once; nothing here is typed twice. */
static void test_module_tables(void)
{
    size_t n;
    const struct gov_tunable_desc *gov = gov_tunable_table(&n);
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (const struct cfg_key *k = agent_config_key_table(); k->section; k++) {
            if (strcmp(k->section, "governor") != 0 || strcmp(k->name, gov[i].key) != 0)
                continue;
            found++;
            CHECK_STR(k->def, gov[i].default_value);
            CHECK_STR(k->doc, gov[i].doc);
            CHECK(k->zero_off == gov[i].zero_means_off);
        }
        CHECK_MSG(found == 1, "[governor] %s appears %d times", gov[i].key, found);
    }
    /* a value is stored straight into the governor's struct, with the governor's range */
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    CHECK_EQ_INT(parse("[governor]\npower_cap_w = 12.5\nmin_mhz = 0\n", &cfg), 0);
    CHECK_NEAR(cfg.governor.tunables.power_cap_w, 12.5, 0);
    expect_error("[governor]\npower_cap_w = 0.1\n",
                 "t.conf:2: [governor] power_cap_w: 0.1 is out of range (0.5..10000, or 0)");
    /* enum choices: the governor's policies and the engine's chat template families */
    for (const struct cfg_key *k = agent_config_key_table(); k->section; k++) {
        if (strcmp(k->name, "policy") == 0) {
            const struct gov_policy_ops *const *list = gov_policy_list();
            size_t i = 0;
            for (; list[i]; i++)
                CHECK_STR(k->choices[i] ? k->choices[i] : "(end)", list[i]->name);
            CHECK(k->choices[i] == NULL);
        } else if (strcmp(k->name, "chat_template") == 0) {
            CHECK_STR(k->choices[0], "auto");
            int f = 0;
            for (; f < ENG_CHAT_FAMILY_COUNT; f++)
                CHECK_STR(k->choices[f + 1] ? k->choices[f + 1] : "(end)",
                          eng_chat_family_name((enum eng_chat_family)f));
            /* then the Mistral V3 variants; every choice but auto is a name the engine takes */
            CHECK_STR(k->choices[f + 1] ? k->choices[f + 1] : "(end)", "mistral-v3");
            CHECK_STR(k->choices[f + 2] ? k->choices[f + 2] : "(end)", "mistral-v3-tekken");
            CHECK(k->choices[f + 2] && k->choices[f + 3] == NULL);
            for (int c = 1; k->choices[c]; c++) {
                struct eng_chat_template t;
                CHECK_MSG(eng_chat_template_from_name(k->choices[c], &t) == 0,
                          "chat_template choice %s refused by the engine", k->choices[c]);
            }
        }
    }
}

/* Issue 13 item 3, "one table per concern": every key the engine and telemetry describe is in
 * the composed table exactly once, with the module's own type, range, choices, default and
 * documentation; none of their keys is typed a second time here. */
static void test_module_rows(const char *section, const struct cmn_key_desc *rows, size_t n)
{
    static const enum cfg_type types[] = {
        [CMN_KEY_BOOL] = CFG_BOOL,     [CMN_KEY_INT] = CFG_INT,   [CMN_KEY_DOUBLE] = CFG_DOUBLE,
        [CMN_KEY_STRING] = CFG_STRING, [CMN_KEY_ENUM] = CFG_ENUM,
    };
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (const struct cfg_key *k = agent_config_key_table(); k->section; k++) {
            if (strcmp(k->section, section) != 0 || strcmp(k->name, rows[i].name) != 0)
                continue;
            found++;
            CHECK_MSG(k->type == types[rows[i].type], "[%s] %s: type", section, k->name);
            CHECK_MSG(k->range == rows[i].range, "[%s] %s: not the module's range", section,
                      k->name);
            CHECK_MSG(k->choices == rows[i].choices, "[%s] %s: not the module's choices", section,
                      k->name);
            CHECK_STR(k->def, rows[i].def);
            CHECK_STR(k->doc, rows[i].doc);
            CHECK(k->module == NULL);
        }
        CHECK_MSG(found == 1, "[%s] %s appears %d times", section, rows[i].name, found);
    }
}

/* Whatever the checker accepts for the power model's coefficients, telemetry accepts too, and
 * the other way round (the agent once had 0..100 where telemetry checked 0..1000). */
static void test_estimate_ranges_agree(void)
{
    static const char *const keys[] = {"estimate_idle_w", "estimate_cpu_static_w",
                                       "estimate_cpu_dyn_w"};
    static const double values[] = {-1,      -1e-9, 0,    0.15,   2,     99.5, 100,
                                    100.001, 999,   1000, 1000.5, 10000, 1e6};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            char text[128];
            snprintf(text, sizeof(text), "[telemetry]\n%s = %.17g\n", keys[k], values[i]);
            struct agent_config cfg;
            agent_config_defaults(&cfg);
            bool checker_ok = parse(text, &cfg) == 0;
            struct tel_power_params pp;
            tel_power_params_defaults(&pp);
            double *field = k == 0   ? &pp.estimate.idle_w
                            : k == 1 ? &pp.estimate.cpu_static_w
                                     : &pp.estimate.cpu_dyn_w;
            *field = values[i];
            char why[128];
            bool module_ok = tel_estimate_params_check(&pp.estimate, why, sizeof(why)) == 0;
            CHECK_MSG(checker_ok == module_ok, "[telemetry] %s = %g: checker %s, telemetry %s",
                      keys[k], values[i], checker_ok ? "accepts" : "refuses",
                      module_ok ? "accepts" : "refuses");
        }
    }
    /* the documented defaults are telemetry's own */
    struct tel_power_params pp;
    tel_power_params_defaults(&pp);
    size_t n;
    const struct cmn_key_desc *rows = tel_config_keys(&n);
    CHECK_EQ_INT(n, 6);
    for (size_t i = 0; i < n && i < 3; i++) {
        double want = i == 0   ? pp.estimate.idle_w
                      : i == 1 ? pp.estimate.cpu_static_w
                               : pp.estimate.cpu_dyn_w;
        CHECK_STR(rows[i].name, keys[i]);
        CHECK_NEAR(strtod(rows[i].def, NULL), want, 0);
    }
    /* the store's keys: defaults are the store's own, and every value the checker accepts
     * (both bounds) the store accepts too */
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    const struct cmn_key_desc *ci = cmn_key_desc_find(rows, n, "commit_interval_ms"),
                              *rd = cmn_key_desc_find(rows, n, "retention_days"),
                              *mb = cmn_key_desc_find(rows, n, "max_db_mb");
    CHECK(ci && rd && mb);
    if (ci && rd && mb) {
        CHECK_EQ_INT(strtol(ci->def, NULL, 10), (long)sp.commit_interval_ms);
        CHECK_EQ_INT(strtol(rd->def, NULL, 10) * 86400, (long)sp.retain_samples_s);
        CHECK_EQ_INT(strtol(mb->def, NULL, 10) << 20, (long)sp.quota_bytes);
        for (int b = 0; b < 2; b++) {
            char serr[256] = "";
            tel_store_params_defaults(&sp);
            sp.commit_interval_ms = (uint32_t)(b ? ci->range->max : ci->range->min);
            CHECK_MSG(tel_store_params_check(&sp, serr, sizeof(serr)) == 0,
                      "commit_interval_ms %u: %s", sp.commit_interval_ms, serr);
        }
    }
    expect_error("[telemetry]\nestimate_cpu_dyn_w = 101\n",
                 "t.conf:2: [telemetry] estimate_cpu_dyn_w: 101 is out of range (0..100)");
}

int main(void)
{
    test_sampler_ranges_agree();
    test_module_tables();
    size_t n;
    const struct cmn_key_desc *rows = eng_config_keys(&n);
    test_module_rows("engine", rows, n);
    rows = tel_config_keys(&n);
    test_module_rows("telemetry", rows, n);
    test_estimate_ranges_agree();
    struct agent_config cfg, defaults;
    agent_config_defaults(&defaults);
    CHECK_STR(defaults.governor.tunables.policy, "balanced");
    CHECK_EQ_INT(defaults.governor.tunables.tick_ms, 100);
    CHECK_EQ_INT(defaults.engine.context_length, 2048);
    CHECK_NEAR(defaults.engine.top_p, 0.95, 1e-12);
    CHECK(defaults.mqtt.enabled);
    CHECK_STR(defaults.mqtt.prefix, "ember");
    CHECK_EQ_INT(defaults.engine.seed, -1);

    /* A good file: values override defaults, comments, blank lines, indentation, CRLF, BOM. */
    const char *good = "\xEF\xBB\xBF# comment\r\n"
                       "[governor]\r\n"
                       "policy = ondemand\n"
                       "  tick_ms = 250 ; inline comment\n"
                       "\n"
                       "; another comment\n"
                       "[mqtt]\n"
                       "host = broker.lan\n"
                       "enabled = no\n"
                       "[engine]\n"
                       "top_p = 0.5\n"
                       "seed = 4294967295\n";
    agent_config_defaults(&cfg);
    CHECK_EQ_INT(parse(good, &cfg), 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.governor.tunables.policy, "ondemand");
    CHECK_EQ_INT(cfg.governor.tunables.tick_ms, 250);
    CHECK_STR(cfg.mqtt.host, "broker.lan");
    CHECK(!cfg.mqtt.enabled);
    CHECK_NEAR(cfg.engine.top_p, 0.5, 1e-12);
    CHECK_EQ_INT(cfg.engine.seed, 4294967295LL);
    CHECK_EQ_INT(cfg.engine.threads, 0); /* untouched keys keep defaults */
    CHECK_STR(cfg.source, "t.conf");

    /* The list: unknown key, duplicate key, out of range, non-number, missing '=',
     * over-long line, bytes that are not UTF-8 — each with file:line. */
    expect_error("[governor]\npolicy = balanced\ntick_msec = 100\n",
                 "t.conf:3: [governor] tick_msec: unknown key (did you mean 'tick_ms'?)");
    expect_error("[governor]\n\nfrobnicate = 1\n", "t.conf:3: [governor] frobnicate: unknown key");
    expect_error("[api]\nport = 80\n\nport = 81\n",
                 "t.conf:4: [api] port: duplicate key (first set on line 2)");
    expect_error("[governor]\ntick_ms = 5\n",
                 "t.conf:2: [governor] tick_ms: 5 is out of range (10..10000)");
    expect_error("[engine]\ntop_p = 1.5\n",
                 "t.conf:2: [engine] top_p: 1.5 is out of range ((0, 1])");
    expect_error("[engine]\nthreads = 99999999999999999999\n",
                 "t.conf:2: [engine] threads: 99999999999999999999 is out of range");
    expect_error("[engine]\nthreads = four\n",
                 "t.conf:2: [engine] threads: 'four' is not an integer (expected 0..512)");
    expect_error("[engine]\ntemperature = 0.7x\n",
                 "t.conf:2: [engine] temperature: '0.7x' is not a number");
    expect_error("[engine]\ntemperature = nan\n",
                 "t.conf:2: [engine] temperature: 'nan' is not a number");
    expect_error("[engine]\nthreads 4\n", "t.conf:2: [engine]: missing '='");
    expect_error("[api]\nport: 80\n", "t.conf:2: [api]: missing '='");
    char long_line[400];
    snprintf(long_line, sizeof(long_line), "[engine]\nmodel = /%0250d\n", 0);
    expect_error(long_line, "t.conf:2: line is 259 bytes long, at most 198 allowed");
    expect_error("[engine]\n# ok\nmodel = caf\xC3\n",
                 "t.conf:3: bytes that are not UTF-8 (at column 12)");
    expect_error("[engine]\nmodel = \xC0\xAF\n",
                 "t.conf:2: bytes that are not UTF-8"); /* overlong */
    expect_error("[engine]\nmodel = \xED\xA0\x80\n",
                 "t.conf:2: bytes that are not UTF-8"); /* surrogate */
    agent_config_defaults(&cfg);
    static const char nul_text[] = "[engine]\nmodel = a\0b\n";
    CHECK_EQ_INT(
        agent_config_parse(nul_text, sizeof(nul_text) - 1, "t.conf", &cfg, err, sizeof(err)),
        -EINVAL);
    CHECK_CONTAINS(err, "t.conf:2: bytes that are not UTF-8 (at column 10)");

    /* Other rejections. */
    expect_error("[nosuch]\nx = 1\n", "t.conf:1: [nosuch]: unknown section");
    expect_error("policy = balanced\n", "t.conf:1: key 'policy' outside any [section]");
    expect_error("[governor\n", "t.conf:1: section header without ']'");
    expect_error("[governor] junk\n", "t.conf:1: text after section header");
    expect_error("[governor]\npolicy = turbo\n",
                 "t.conf:2: [governor] policy: 'turbo' is not one of: performance, powersave");
    expect_error("[mqtt]\nenabled = maybe\n", "t.conf:2: [mqtt] enabled: 'maybe' is not a boolean");
    expect_error("[governor]\nmin_mhz = 2000\nmax_mhz = 1000\n",
                 "t.conf:3: [governor] max_mhz: min_mhz is above max_mhz");
    expect_error("[mqtt]\nreconnect_min_ms = 9000\nreconnect_max_ms = 5000\n",
                 "t.conf:3: [mqtt] reconnect_max_ms: reconnect_min_ms is above reconnect_max_ms");
    expect_error("[gpio]\nfan_on_temp_c = 40\nfan_off_temp_c = 45\n",
                 "t.conf:3: [gpio] fan_off_temp_c: fan_off_temp_c must be below fan_on_temp_c");
    expect_error("[gpio]\nfan_full_temp_c = 55\n",
                 "t.conf:2: [gpio] fan_full_temp_c: fan_full_temp_c must be above fan_on_temp_c");
    expect_error("[gpio]\ndebounce_ms = 5000\n", "t.conf:2: [gpio] debounce_ms:");
    expect_error("[gpio]\ninput_bias = pullup\n", "t.conf:2: [gpio] input_bias:");
    expect_error("[mqtt]\ntls_cert = /c.pem\n",
                 "[mqtt] tls_cert: tls_cert and tls_key must be set together");
    expect_error("[engine]\nbad key = 1\n", "t.conf:2: [engine]: invalid key name");

    /* Several problems are all reported, and nothing is applied. */
    agent_config_defaults(&cfg);
    snprintf(cfg.governor.tunables.policy, sizeof(cfg.governor.tunables.policy), "performance");
    CHECK_EQ_INT(parse("[governor]\npolicy = powersave\ntick_ms = 0\n[api]\nport = -1\n", &cfg),
                 -EINVAL);
    CHECK_CONTAINS(err, "t.conf:3: [governor] tick_ms");
    CHECK_CONTAINS(err, "t.conf:5: [api] port");
    CHECK_STR(cfg.governor.tunables.policy, "performance");

    /* Files. */
    CHECK_EQ_INT(agent_config_load_file("/nonexistent/ember.conf", &cfg, err, sizeof(err)),
                 -ENOENT);
    CHECK_CONTAINS(err, "/nonexistent/ember.conf");
    char path[512];
    snprintf(path, sizeof(path), "%s/etc/ember.conf", EMBER_SOURCE_DIR);
    CHECK_EQ_INT(agent_config_load_file(path, &cfg, err, sizeof(err)), 0);

    /* Reload support: which changed keys need a restart. */
    struct agent_config a, b;
    agent_config_defaults(&a);
    b = a;
    b.governor.tunables.power_cap_w = 10; /* live */
    char names[256];
    CHECK_EQ_INT(agent_config_restart_keys(&a, &b, names, sizeof(names)), 0);
    b.api.port = 9999;
    b.mqtt.port = 1884;
    CHECK_EQ_INT(agent_config_restart_keys(&a, &b, names, sizeof(names)), 2);
    CHECK_CONTAINS(names, "[mqtt] port");
    CHECK_CONTAINS(names, "[api] port");

    /* A reload applies live keys only. */
    struct agent_config cur;
    agent_config_defaults(&cur);
    b = cur;
    b.governor.tunables.power_cap_w = 7;
    b.mqtt.port = 1999;
    snprintf(b.engine.model, sizeof(b.engine.model), "/other.gguf");
    agent_config_apply_live(&cur, &b);
    CHECK_NEAR(cur.governor.tunables.power_cap_w, 7, 1e-12);
    CHECK_EQ_INT(cur.mqtt.port, 1883);
    CHECK_STR(cur.engine.model, "");

    /* Every key's doc is there, and dump output parses back to the same values. */
    for (const struct cfg_key *k = agent_config_key_table(); k->section; k++)
        CHECK_MSG(k->doc && strlen(k->doc) > 10, "[%s] %s has no documentation", k->section,
                  k->name);
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *mem = open_memstream(&dump, &dump_len);
    agent_config_dump(&defaults, mem, true);
    fclose(mem);
    CHECK_EQ_INT(agent_config_parse(dump, dump_len, "dump", &cfg, err, sizeof(err)), 0);
    CHECK_EQ_INT(agent_config_restart_keys(&defaults, &cfg, names, sizeof(names)), 0);
    free(dump);

    return et_finish();
}
