/* Unit tests of the MQTT publisher's pure parts: command validation (a table of good and bad
 * payloads), the JSON payloads, the Home Assistant discovery configs field by field, parameter
 * validation, and the reconnect backoff (against a closed loopback port: real sockets, no broker).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/timeutil.h"
#include "ember_test.h"
#include "telemetry/mqtt.h"

static struct tel_mqtt_commands commands(void)
{
    struct tel_mqtt_commands c = {.policies = {"balanced", "performance", "powersave"},
                                  .n_policies = 3,
                                  .cap_min_w = 5,
                                  .cap_max_w = 65,
                                  .cap_off_allowed = true};
    return c;
}

static void test_policy(void)
{
    struct tel_mqtt_commands c = commands();
    char out[32], err[160];
    CHECK(tel_command_parse_policy(&c, "balanced", 8, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "balanced");
    CHECK(tel_command_parse_policy(&c, "powersave", 9, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "powersave");
    const struct {
        const char *p;
        size_t len;
        const char *why;
    } bad[] = {
        {"turbo", 5, "unknown policy \"turbo\""},
        {"Balanced", 8, "unknown policy"},
        {"balanced ", 9, "unknown policy"},
        {" balanced", 9, "unknown policy"},
        {"balance", 7, "unknown policy"},
        {"balanced\0", 9, "UTF-8"},
        {"bal\xff", 4, "UTF-8"},
        {"\xed\xa0\x80", 3, "UTF-8"},     /* a surrogate */
        {"\xc0\x80", 2, "UTF-8"},         /* overlong NUL */
        {"\xf4\x90\x80\x80", 4, "UTF-8"}, /* above U+10FFFF */
        {"\xe2\x82", 2, "UTF-8"},         /* truncated */
        {"", 0, "empty"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK_MSG(tel_command_parse_policy(&c, bad[i].p, bad[i].len, out, sizeof(out), err,
                                           sizeof(err)) == -EINVAL,
                  "case %zu", i);
        CHECK_CONTAINS(err, bad[i].why);
    }
    static char big[300];
    memset(big, 'a', sizeof(big));
    CHECK(tel_command_parse_policy(&c, big, sizeof(big), out, sizeof(out), err, sizeof(err)) ==
          -EINVAL);
    CHECK_CONTAINS(err, "exceeds the 256-byte limit");
    /* Valid UTF-8 that is not a policy. */
    CHECK(tel_command_parse_policy(&c, "\xc3\xa9t\xc3\xa9", 5, out, sizeof(out), err,
                                   sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "unknown policy (5 bytes)");
}

static void test_cap(void)
{
    struct tel_mqtt_commands c = commands();
    bool off = true;
    double w = 0;
    char err[160];
    const struct {
        const char *p;
        double w;
    } good[] = {{"5", 5}, {"65", 65}, {"30.5", 30.5}, {"045", 45}, {"64.999999", 64.999999}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK_MSG(tel_command_parse_power_cap(&c, good[i].p, strlen(good[i].p), &off, &w, err,
                                              sizeof(err)) == 0,
                  "%s: %s", good[i].p, err);
        CHECK(!off);
        CHECK_NEAR(w, good[i].w, 0);
    }
    CHECK(tel_command_parse_power_cap(&c, "off", 3, &off, &w, err, sizeof(err)) == 0);
    CHECK(off);
    const char *bad[] = {"NaN",  "nan",   "inf",  "1e999",   "1e1",  "30W", "-10", "+10",
                         "4.99", "65.01", "0x20", "OFF",     "off ", " 30", "30 ", "30.",
                         ".5",   "1,5",   "3..0", "9999999", "",     "30\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        off = false;
        w = 12345;
        CHECK_MSG(tel_command_parse_power_cap(&c, bad[i], strlen(bad[i]), &off, &w, err,
                                              sizeof(err)) == -EINVAL,
                  "\"%s\" accepted", bad[i]);
        CHECK(!off && w == 12345); /* outputs untouched */
    }
    c.cap_off_allowed = false;
    CHECK(tel_command_parse_power_cap(&c, "off", 3, &off, &w, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "not allowed");
    CHECK(tel_command_parse_power_cap(&c, "66", 2, &off, &w, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "outside [5, 65] W");
}

static void test_seq(void)
{
    uint64_t v = 0;
    char err[160];
    CHECK(tel_command_parse_seq("0", 1, &v, err, sizeof(err)) == 0 && v == 0);
    CHECK(tel_command_parse_seq("12345", 5, &v, err, sizeof(err)) == 0 && v == 12345);
    CHECK(tel_command_parse_seq("9223372036854775807", 19, &v, err, sizeof(err)) == 0 &&
          v == 9223372036854775807ULL);
    const char *bad[] = {
        "9223372036854775808", "18446744073709551616", "-1", "1e3", "12 ", "", "0x10", "١٢"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(tel_command_parse_seq(bad[i], strlen(bad[i]), &v, err, sizeof(err)) == -EINVAL,
                  "\"%s\" accepted", bad[i]);
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_payloads(void)
{
    struct tel_sample s = {.seq = 42,
                           .ts_ns = 1764073920123456789ULL,
                           .power_w = 12.3456,
                           .energy_j = 7200,
                           .temp_c = NAN,
                           .util = 0.25,
                           .n_freq = 3,
                           .freq_mhz = {2400, 1800.4, NAN},
                           .policy = "balanced",
                           .phase = "idle"};
    char *js = tel_payload_sample_json(&s);
    CHECK(js != NULL);
    cJSON *j = cJSON_Parse(js);
    CHECK(j != NULL);
    /* Exactly the design's fields, in its order. */
    const char *order[] = {"v",      "seq",      "ts",   "power_w", "energy_wh",
                           "temp_c", "freq_mhz", "util", "policy",  "phase"};
    int k = 0;
    for (cJSON *it = j ? j->child : NULL; it; it = it->next, k++)
        CHECK_STR(it->string, k < 10 ? order[k] : "(extra)");
    CHECK_EQ_INT(k, 10);
    CHECK_NEAR(jnum(j, "v"), 1, 0);
    CHECK_NEAR(jnum(j, "seq"), 42, 0);
    CHECK_NEAR(jnum(j, "ts"), 1764073920.123, 1e-6);
    CHECK_NEAR(jnum(j, "power_w"), 12.346, 1e-12);
    CHECK_NEAR(jnum(j, "energy_wh"), 2.0, 1e-12);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "temp_c")));
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "freq_mhz");
    CHECK(cJSON_GetArraySize(f) == 3);
    CHECK_NEAR(cJSON_GetArrayItem(f, 1)->valuedouble, 1800, 0);
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(f, 2)));
    CHECK_NEAR(jnum(j, "util"), 0.25, 0);
    CHECK_STR(jstr(j, "policy"), "balanced");
    CHECK_STR(jstr(j, "phase"), "idle");
    CHECK_CONTAINS(js, "\"power_w\":12.346");
    cJSON_Delete(j);
    free(js);

    struct tel_session ses = {.id = 3,
                              .ts_ns = 1000000000ULL,
                              .prompt_tokens = 10,
                              .gen_tokens = 1,
                              .ttft_ms = 100,
                              .duration_ms = 500,
                              .energy_j = 5,
                              .j_per_token = 5.0 / 11,
                              .policy = "efficiency"};
    js = tel_payload_session_json(&ses);
    j = cJSON_Parse(js);
    CHECK_NEAR(jnum(j, "tokens_per_s"), 2.0, 1e-12); /* one token: over the whole duration */
    CHECK_NEAR(jnum(j, "j_per_token"), 0.4545, 1e-12);
    CHECK_NEAR(jnum(j, "ts"), 1.0, 0);
    CHECK_STR(jstr(j, "policy"), "efficiency");
    cJSON_Delete(j);
    free(js);

    js = tel_payload_event_json(0, "command_error", "governor/set: unknown \"x\"\n");
    j = cJSON_Parse(js);
    CHECK_STR(jstr(j, "detail"), "governor/set: unknown \"x\"\n");
    cJSON_Delete(j);
    free(js);
}

/* The availability list: status first, then governor/available when governed. */
static void check_availability(const cJSON *o, bool governed)
{
    const cJSON *av = cJSON_GetObjectItemCaseSensitive(o, "availability");
    CHECK(cJSON_IsArray(av) && cJSON_GetArraySize(av) == (governed ? 2 : 1));
    CHECK_STR(jstr(cJSON_GetArrayItem(av, 0), "topic"), "ember/box1/status");
    if (governed) {
        CHECK_STR(jstr(cJSON_GetArrayItem(av, 1), "topic"), "ember/box1/governor/available");
        CHECK_STR(jstr(o, "availability_mode"), "all");
    }
    CHECK(!cJSON_HasObjectItem(o, "availability_topic")); /* not both forms */
}

struct hass_want {
    const char *object, *platform, *name, *state_topic, *unit, *device_class, *state_class;
    int precision; /* -1: none */
    bool live, governed;
};

static const struct hass_want hass_want[] = {
    {"power", "sensor", "Power", "ember/box1/state", "W", "power", "measurement", 2, true, false},
    {"energy", "sensor", "Energy", "ember/box1/state", "Wh", "energy", "total_increasing", 2, true,
     false},
    {"wall_power", "sensor", "Wall power", "ember/box1/state", "W", "power", "measurement", 2, true,
     false},
    {"wall_energy", "sensor", "Wall energy", "ember/box1/state", "Wh", "energy", "total_increasing",
     2, true, false},
    {"temperature", "sensor", "Temperature", "ember/box1/state",
     "\xC2\xB0"
     "C",
     "temperature", "measurement", 1, true, false},
    {"cpu_frequency", "sensor", "CPU frequency", "ember/box1/state", "MHz", "frequency",
     "measurement", 0, true, false},
    {"utilisation", "sensor", "CPU utilisation", "ember/box1/state", "%", NULL, "measurement", 1,
     true, false},
    {"engine_phase", "sensor", "Engine phase", "ember/box1/state", NULL, "enum", NULL, -1, true,
     false},
    {"model", "sensor", "Model", "ember/box1/model", NULL, NULL, NULL, -1, false, false},
    {"tokens_per_s", "sensor", "Tokens per second", "ember/box1/session/last", "tok/s", NULL,
     "measurement", 1, false, false},
    {"joules_per_token", "sensor", "Joules per token", "ember/box1/session/last", "J/tok", NULL,
     "measurement", 4, false, false},
    {"governor_policy", "select", "Governor policy", "ember/box1/governor/state", NULL, NULL, NULL,
     -1, false, true},
    {"power_cap", "number", "Power cap", "ember/box1/power_cap/state", "W", "power", NULL, -1,
     false, true},
};
#define N_HASS (sizeof(hass_want) / sizeof(hass_want[0]))

/* The options of one entity, as in either discovery mode. */
static void check_entity(const cJSON *j, const struct hass_want *w, bool in_device)
{
    char uid[64];
    snprintf(uid, sizeof(uid), "ember_box1_%s", w->object);
    CHECK_STR(jstr(j, "name"), w->name);
    CHECK_STR(jstr(j, "unique_id"), uid);
    CHECK_STR(jstr(j, "state_topic"), w->state_topic);
    if (!in_device || w->governed)
        check_availability(j, w->governed);
    if (in_device && !w->governed)
        CHECK(!cJSON_HasObjectItem(j, "availability")); /* from the root */
    const char *keys[] = {"unit_of_measurement", "device_class", "state_class"};
    const char *vals[] = {w->unit, w->device_class, w->state_class};
    for (int k = 0; k < 3; k++) {
        if (vals[k])
            CHECK_STR(jstr(j, keys[k]), vals[k]);
        else
            CHECK_MSG(!cJSON_HasObjectItem(j, keys[k]), "%s: %s present", w->object, keys[k]);
    }
    if (w->precision >= 0)
        CHECK_NEAR(jnum(j, "suggested_display_precision"), w->precision, 0);
    else
        CHECK(!cJSON_HasObjectItem(j, "suggested_display_precision"));
    if (w->live)
        CHECK_NEAR(jnum(j, "expire_after"), 45, 0);
    else
        CHECK(!cJSON_HasObjectItem(j, "expire_after"));
    /* Not MQTT discovery options (issue 20): has_entity_name is implied, object_id deprecated. */
    CHECK(!cJSON_HasObjectItem(j, "has_entity_name"));
    CHECK(!cJSON_HasObjectItem(j, "object_id"));
    CHECK(!cJSON_HasObjectItem(j, "payload_reset"));
    if (strcmp(w->platform, "sensor") == 0)
        CHECK(jstr(j, "value_template") != NULL);
    if (strcmp(w->object, "engine_phase") == 0) {
        const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "options");
        CHECK(cJSON_GetArraySize(opts) == 3);
    }
    if (strcmp(w->object, "tokens_per_s") == 0 || strcmp(w->object, "model") == 0 ||
        strcmp(w->object, "wall_power") == 0)
        CHECK_STR(jstr(j, "json_attributes_topic"), w->state_topic);
    if (strcmp(w->object, "governor_policy") == 0) {
        CHECK_STR(jstr(j, "command_topic"), "ember/box1/governor/set");
        const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "options");
        CHECK(cJSON_GetArraySize(opts) == 3);
        CHECK_STR(cJSON_GetArrayItem(opts, 2) ? cJSON_GetArrayItem(opts, 2)->valuestring : NULL,
                  "powersave");
    }
    if (strcmp(w->object, "power_cap") == 0) {
        /* Whole watts from 0 (= off): min 0.5 with step 1 used to offer 1.5, 2.5, ... */
        CHECK_STR(jstr(j, "command_topic"), "ember/box1/power_cap/set");
        CHECK_NEAR(jnum(j, "min"), 0, 0);
        CHECK_NEAR(jnum(j, "max"), 65, 0);
        CHECK_NEAR(jnum(j, "step"), 1, 0);
        CHECK_CONTAINS(jstr(j, "command_template"), "'off'");
        CHECK_CONTAINS(jstr(j, "value_template"), "'off'");
    }
}

static void check_device_origin(const cJSON *j)
{
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(j, "device");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(dev, "identifiers");
    CHECK(cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == 1);
    CHECK_STR(cJSON_GetArrayItem(ids, 0) ? cJSON_GetArrayItem(ids, 0)->valuestring : NULL,
              "ember_box1");
    CHECK_STR(jstr(dev, "name"), "Ember box1");
    CHECK_STR(jstr(dev, "manufacturer"), "Ember");
    CHECK_STR(jstr(dev, "sw_version"), "0.1.0");
    CHECK_STR(jstr(dev, "configuration_url"), "http://box1.local:8088/health");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "origin");
    CHECK_STR(jstr(o, "name"), "Ember");
    CHECK_STR(jstr(o, "sw_version"), "0.1.0");
    CHECK_STR(jstr(o, "support_url"), "https://example.org/ember/support");
}

static void hass_params(struct tel_mqtt_params *p)
{
    tel_mqtt_params_defaults(p);
    p->device_id = "box1";
    p->sw_version = "0.1.0";
    p->commands = commands();
    p->expire_after_s = 45;
    p->configuration_url = "http://box1.local:8088/health";
    p->support_url = "https://example.org/ember/support";
}

static void test_hass(void)
{
    struct tel_mqtt_params p;
    hass_params(&p);
    unsigned n = 0;
    for (;; n++) {
        char *topic = NULL, *payload = NULL, *t2 = NULL;
        int rc = tel_hass_config(&p, "ember/box1", n, &topic, &payload);
        if (rc == -ENOENT)
            break;
        CHECK(rc == 0);
        CHECK(tel_hass_config_topic("homeassistant", "box1", TEL_MQTT_DISCOVERY_COMPONENT, n,
                                    &t2) == 0);
        CHECK_STR(t2, topic);
        free(t2);
        if (n < N_HASS) {
            const struct hass_want *w = &hass_want[n];
            char want_topic[128];
            snprintf(want_topic, sizeof(want_topic), "homeassistant/%s/ember_box1/%s/config",
                     w->platform, w->object);
            CHECK_STR(topic, want_topic);
            cJSON *j = cJSON_Parse(payload);
            CHECK(j != NULL);
            check_entity(j, w, false);
            check_device_origin(j);
            CHECK_NEAR(jnum(j, "qos"), 1, 0);
            cJSON_Delete(j);
        }
        free(topic);
        free(payload);
    }
    CHECK_EQ_INT(n, N_HASS);
    char *t = NULL;
    CHECK(tel_hass_config_topic("homeassistant", "box1", TEL_MQTT_DISCOVERY_COMPONENT, N_HASS,
                                &t) == -ENOENT);

    /* Device mode: one message, the entities under "components" with their platform. */
    p.discovery_mode = TEL_MQTT_DISCOVERY_DEVICE;
    char *topic = NULL, *payload = NULL;
    CHECK(tel_hass_config(&p, "ember/box1", 0, &topic, &payload) == 0);
    CHECK_STR(topic, "homeassistant/device/ember_box1/config");
    cJSON *j = cJSON_Parse(payload ? payload : "");
    check_device_origin(j);
    check_availability(j, false);
    CHECK_NEAR(jnum(j, "qos"), 1, 0);
    const cJSON *cmps = cJSON_GetObjectItemCaseSensitive(j, "components");
    CHECK(cJSON_IsObject(cmps) && cJSON_GetArraySize(cmps) == (int)N_HASS);
    for (size_t i = 0; i < N_HASS; i++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(cmps, hass_want[i].object);
        CHECK_MSG(c != NULL, "component %s missing", hass_want[i].object);
        if (!c)
            continue;
        CHECK_STR(jstr(c, "platform"), hass_want[i].platform);
        check_entity(c, &hass_want[i], true);
        CHECK(!cJSON_HasObjectItem(c, "device") && !cJSON_HasObjectItem(c, "origin"));
    }
    cJSON_Delete(j);
    free(topic);
    free(payload);
    CHECK(tel_hass_config(&p, "ember/box1", 1, &topic, &payload) == -ENOENT);
    CHECK(tel_hass_config_topic("ha", "x", TEL_MQTT_DISCOVERY_DEVICE, 0, &t) == 0);
    CHECK_STR(t, "ha/device/ember_x/config");
    free(t);

    /* Without the optional links the keys are absent, not empty. */
    p.configuration_url = p.support_url = NULL;
    p.expire_after_s = 0;
    CHECK(tel_hass_config(&p, "ember/box1", 0, &topic, &payload) == 0);
    CHECK(payload && !strstr(payload, "configuration_url") && !strstr(payload, "support_url") &&
          !strstr(payload, "expire_after"));
    free(topic);
    free(payload);
}

/* The state payload: the energy given (the committed total), null policy without a governor,
 * a phase always one of the enum's options. */
static void test_state_payload(void)
{
    struct tel_sample s = {.seq = 9,
                           .ts_ns = 1000000000ull,
                           .power_w = NAN,
                           .energy_j = 7200,
                           .temp_c = NAN,
                           .util = NAN,
                           .n_freq = 2,
                           .tokens_per_s = NAN};
    s.freq_mhz[0] = NAN;
    s.freq_mhz[1] = 1800;
    char *js = tel_payload_state_json(&s, 3600.0 * 1.23456789);
    cJSON *j = cJSON_Parse(js ? js : "");
    CHECK_NEAR(jnum(j, "energy_wh"), 1.2345, 1e-12); /* truncated: never above the stored total */
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "power_w")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "policy")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "util")));
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "freq_mhz"), 0)));
    CHECK_STR(jstr(j, "phase"), "idle");
    CHECK_STR(jstr(j, "source"), "none");
    cJSON_Delete(j);
    free(js);
    snprintf(s.policy, sizeof(s.policy), "balanced");
    snprintf(s.phase, sizeof(s.phase), "decode");
    js = tel_payload_state_json(&s, 0);
    j = cJSON_Parse(js ? js : "");
    CHECK_STR(jstr(j, "policy"), "balanced");
    CHECK_STR(jstr(j, "phase"), "decode");
    cJSON_Delete(j);
    free(js);

    struct tel_model_info mi = {.name = "stories", .arch = "llama", .n_params = 260000};
    js = tel_payload_model_json(&mi);
    j = cJSON_Parse(js ? js : "");
    CHECK_STR(jstr(j, "name"), "stories");
    CHECK_NEAR(jnum(j, "params_m"), 0.3, 1e-9);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "quant")));
    cJSON_Delete(j);
    free(js);
    js = tel_payload_model_json(&(struct tel_model_info){0});
    CHECK_STR(js, "{\"name\":null,\"file\":null,\"arch\":null,\"quant\":null,\"params_m\":null,"
                  "\"size_mb\":null,\"context_length\":null}");
    free(js);
}

static void test_params(void)
{
    struct tel_mqtt_params p;
    struct tel_mqtt *m = NULL;
    char err[256];
    tel_mqtt_params_defaults(&p);
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "device_id");
    p.device_id = "box/1";
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    p.device_id = "box1";
    p.prefix = "ember/#";
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "prefix");
    p.prefix = "ember";
    p.tls_ca = "/nonexistent/ca.crt";
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -ENOENT);
    CHECK_CONTAINS(err, "/nonexistent/ca.crt");
    p.tls_ca = NULL;
    p.tls_cert = "x";
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    p.tls_cert = NULL;
    p.commands = commands();
    p.commands.cap_max_w = 1;
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "power cap range");
    p.commands = commands();
    p.reconnect_max_ms = 10;
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    p.reconnect_max_ms = 60000;
    /* Links Home Assistant would reject, making the whole discovery message invalid. */
    const char *bad_urls[] = {"box1.local", "ftp://x", "http://", "http://a b", "file:///x"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        p.configuration_url = bad_urls[i];
        CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
        CHECK_CONTAINS(err, "configuration_url");
    }
    p.configuration_url = "homeassistant://config/devices";
    p.support_url = "homeassistant://x"; /* only the device link may point into HA */
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == -EINVAL);
    CHECK_CONTAINS(err, "support_url");
    p.support_url = "https://example.org/ember";
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == 0);
    tel_mqtt_free(m);
    tel_mqtt_free(NULL);
}

/* A port nobody listens on: every attempt fails at once, so the schedule is visible. */
static void test_backoff(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    int port = ntohs(a.sin_port);
    close(fd);

    struct tel_mqtt_params p;
    tel_mqtt_params_defaults(&p);
    p.device_id = "box1";
    p.port = port;
    p.reconnect_min_ms = 100;
    p.reconnect_max_ms = 1600;
    p.jitter_seed = 12345;
    struct tel_mqtt *m = NULL;
    char err[256];
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == 0);
    if (!m)
        return;
    /* Drive with a synthetic clock: each attempt is made when its deadline comes. */
    uint64_t now = 1000 * CMN_NS_PER_S;
    double delays[8];
    int seen_distinct = 0;
    for (int i = 0; i < 8; i++) {
        tel_mqtt_handle_misc(m, now);
        struct tel_mqtt_poll pi;
        tel_mqtt_poll_info(m, now, &pi);
        /* A non-blocking connect to a closed loopback port may report failure only when the
         * socket becomes writable. */
        for (int spin = 0; spin < 50 && tel_mqtt_state(m) == TEL_MQTT_CONNECTING; spin++) {
            struct pollfd pfd = {.fd = pi.fd, .events = POLLOUT | POLLIN};
            poll(&pfd, 1, 100);
            if (pfd.revents & POLLOUT)
                tel_mqtt_handle_write(m, now);
            if (pfd.revents & (POLLIN | POLLERR | POLLHUP))
                tel_mqtt_handle_read(m, now);
            tel_mqtt_poll_info(m, now, &pi);
        }
        CHECK(tel_mqtt_state(m) == TEL_MQTT_DISCONNECTED);
        tel_mqtt_poll_info(m, now, &pi);
        delays[i] = (double)(pi.deadline_ns - now) / 1e6;
        double base = 100.0 * (1 << i);
        if (base > 1600)
            base = 1600;
        CHECK_MSG(delays[i] >= base / 2 && delays[i] <= base,
                  "attempt %d: delay %.0f ms, base %.0f", i + 1, delays[i], base);
        if (i && fabs(delays[i] - delays[i - 1]) > 0.5)
            seen_distinct++;
        now = pi.deadline_ns;
    }
    CHECK(seen_distinct >= 4);
    struct tel_mqtt_stats st;
    tel_mqtt_get_stats(m, &st);
    CHECK_EQ_INT(st.reconnect_attempt, 8);
    CHECK_EQ_INT(st.connects, 0);
    tel_mqtt_free(m);
}

/* Reads one MQTT packet (fixed header, remaining length, body); returns its body length. */
static int read_packet(int fd, uint8_t *type, uint8_t *body, size_t cap)
{
    uint8_t b;
    if (read(fd, type, 1) != 1)
        return -1;
    size_t len = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        if (read(fd, &b, 1) != 1)
            return -1;
        len |= (size_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            break;
    }
    if (len > cap)
        return -1;
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, body + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return (int)len;
}

/* A broker that speaks only MQTT 3.1.1, as older ones do: a v5 CONNECT gets the 3.1.1 refusal
 * "unacceptable protocol version" (return code 1); a 3.1.1 CONNECT is accepted. Mosquitto cannot
 * be told to refuse v5, so this small stand-in plays that broker. It reports the protocol levels
 * it saw through the pipe. */
static void v311_only_broker(int lfd, int report)
{
    for (int conn = 0; conn < 4; conn++) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            _exit(1);
        uint8_t type, body[1024];
        int n = read_packet(c, &type, body, sizeof(body));
        if (n < 7 || (type & 0xF0) != 0x10)
            _exit(2);
        uint8_t level = body[6];
        if (write(report, &level, 1) != 1)
            _exit(3);
        static const uint8_t refuse[] = {0x20, 0x02, 0x00, 0x01};
        static const uint8_t accept_[] = {0x20, 0x02, 0x00, 0x00};
        if (level == 5) {
            if (write(c, refuse, sizeof(refuse)) != (ssize_t)sizeof(refuse))
                _exit(4);
            close(c);
            continue;
        }
        if (write(c, accept_, sizeof(accept_)) != (ssize_t)sizeof(accept_))
            _exit(4);
        while (read_packet(c, &type, body, sizeof(body)) >= 0) {
        }
        close(c);
    }
    _exit(0);
}

static void test_fallback(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int pipefd[2];
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 4) == 0 &&
          getsockname(lfd, (struct sockaddr *)&a, &alen) == 0 && pipe(pipefd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        v311_only_broker(lfd, pipefd[1]);
    }
    close(lfd);
    close(pipefd[1]);

    struct tel_mqtt_params p;
    tel_mqtt_params_defaults(&p);
    p.device_id = "box1";
    p.port = ntohs(a.sin_port);
    p.discovery = false;
    struct tel_mqtt *m = NULL;
    char err[256];
    CHECK(tel_mqtt_new(&p, NULL, NULL, &m, err, sizeof(err)) == 0);
    uint64_t end = cmn_now_ns() + 5 * CMN_NS_PER_S;
    while (m && cmn_now_ns() < end && tel_mqtt_state(m) != TEL_MQTT_CONNECTED) {
        struct tel_mqtt_poll pi;
        uint64_t now = cmn_now_ns();
        tel_mqtt_poll_info(m, now, &pi);
        struct pollfd pfd = {.fd = pi.fd, .events = POLLIN | (pi.want_write ? POLLOUT : 0)};
        int ms = pi.deadline_ns > now ? (int)((pi.deadline_ns - now) / CMN_NS_PER_MS) + 1 : 0;
        poll(&pfd, pi.fd >= 0 ? 1 : 0, ms > 50 ? 50 : ms);
        now = cmn_now_ns();
        if (pi.fd >= 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            tel_mqtt_handle_read(m, now);
        if (pi.fd >= 0 && (pfd.revents & POLLOUT))
            tel_mqtt_handle_write(m, now);
        tel_mqtt_handle_misc(m, now);
    }
    CHECK(m && tel_mqtt_state(m) == TEL_MQTT_CONNECTED);
    CHECK(m && tel_mqtt_protocol_version(m) == 4);
    struct tel_mqtt_stats st = {0};
    if (m)
        tel_mqtt_get_stats(m, &st);
    CHECK_EQ_INT(st.disconnects, 1);       /* the one v5 refusal */
    CHECK_EQ_INT(st.reconnect_attempt, 0); /* a fallback is not a failure to back off from */
    tel_mqtt_free(m);
    uint8_t levels[4];
    ssize_t n = read(pipefd[0], levels, sizeof(levels));
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && levels[0] == 5 && levels[1] == 4);
    close(pipefd[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    test_policy();
    test_cap();
    test_seq();
    test_payloads();
    test_hass();
    test_state_payload();
    test_params();
    test_backoff();
    test_fallback();
    return et_finish();
}
