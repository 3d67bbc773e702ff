/* The fleet view of `ember fleet status` (agent/cli/fleet_view.c): rows from real payload shapes
 * (telemetry/src/payload.c's), the online rule with a bridge's stale will, hostile ids and texts,
 * the device limit, and the JSON and table outputs. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

#include "ember_test.h"
#include "fleet_view.h"

static int put(struct fleet_view *v, const char *topic, const char *payload, bool retained)
{
    return fleet_view_ingest(v, topic, payload, strlen(payload), retained);
}

static void test_rows(void)
{
    struct fleet_view v;
    fleet_view_init(&v, "ember");
    CHECK_EQ_INT(put(&v, "ember/box2/status", "online", true), 0);
    CHECK_EQ_INT(put(&v, "ember/box1/status", "offline", true), 0);
    CHECK_EQ_INT(put(&v, "ember/box2/governor/state", "efficiency", true), 0);
    CHECK_EQ_INT(put(&v, "ember/box2/state",
                     "{\"v\":1,\"seq\":9,\"ts\":1000.5,\"power_w\":6.25,\"temp_c\":48.5,"
                     "\"policy\":\"balanced\",\"phase\":\"idle\"}",
                     false),
                 0);
    CHECK_EQ_INT(put(&v, "ember/box2/session/last",
                     "{\"v\":1,\"ts\":990,\"j_per_token\":0.412,\"tokens_per_s\":20.5}", true),
                 0);
    CHECK_EQ_INT(put(&v, "ember/box2/model", "{\"name\":\"stories260K\",\"file\":\"/m\"}", true),
                 0);
    CHECK_EQ_INT(v.n, 2);
    CHECK_STR(v.dev[0].id, "box1"); /* sorted */
    const struct fleet_device *b = &v.dev[1];
    CHECK(fleet_device_online(b));
    CHECK(!fleet_device_online(&v.dev[0]));
    CHECK_STR(b->policy, "efficiency"); /* governor/state wins over the state payload's */
    CHECK_NEAR(b->power_w, 6.25, 0);
    CHECK_NEAR(b->temp_c, 48.5, 0);
    CHECK_NEAR(b->j_per_token, 0.412, 0);
    CHECK_NEAR(b->last_ts, 1000.5, 0); /* the newest ts of state and session */
    CHECK_STR(b->model, "stories260K");

    char *json = fleet_view_json(&v, 1010.5);
    cJSON *arr = cJSON_Parse(json);
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 2);
    cJSON *o = cJSON_GetArrayItem(arr, 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "id")), "box2");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "online")));
    CHECK_NEAR(cJSON_GetObjectItem(o, "last_seen_s")->valuedouble, 10, 1e-9);
    o = cJSON_GetArrayItem(arr, 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "power_w"))); /* unknown is null, never 0 */
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "last_seen_s")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "offline");
    cJSON_Delete(arr);
    free(json);

    char buf[2048] = {0};
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    fleet_view_print(&v, 1010.5, f);
    fclose(f);
    CHECK_CONTAINS(buf, "box2                 online      efficiency       6.25   0.4120    48.5 "
                        "stories260K          10s ago");
    CHECK_CONTAINS(buf,
                   "box1                 offline     -                   -        -       - -");
    CHECK_CONTAINS(buf, "2 appliances, 1 online");
    fleet_view_free(&v);
}

/* A bridge's retained will "0" marks the box uplink-down, unless a live state just came. */
static void test_bridge(void)
{
    struct fleet_view v;
    fleet_view_init(&v, "ember");
    put(&v, "ember/b/status", "online", true);
    put(&v, "ember/b/bridge/state", "0", true);
    CHECK(!fleet_device_online(&v.dev[0]));
    put(&v, "ember/b/state", "{\"ts\":5,\"power_w\":1}", true); /* retained proves nothing */
    CHECK(!fleet_device_online(&v.dev[0]));
    put(&v, "ember/b/state", "{\"ts\":6,\"power_w\":1}", false);
    CHECK(fleet_device_online(&v.dev[0]));
    put(&v, "ember/b/bridge/state", "1", true);
    CHECK(fleet_device_online(&v.dev[0]));
    fleet_view_free(&v);
}

static void test_hostile(void)
{
    struct fleet_view v;
    fleet_view_init(&v, "ember");
    CHECK_EQ_INT(put(&v, "other/b/status", "online", true), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b+/status", "online", true), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember//status", "online", true), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b\x1b[2J/status", "online", true), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b/status", "Online", true), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b/state", "{\"power_w\":", false), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b/state", "[1,2]", false), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b/unknown", "x", false), -EINVAL);
    CHECK_EQ_INT(v.n, 0); /* junk makes no row */
    char id[FLEET_ID_MAX + 2];
    memset(id, 'a', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    char topic[256];
    snprintf(topic, sizeof(topic), "ember/%s/status", id);
    CHECK_EQ_INT(put(&v, topic, "online", true), -EINVAL);
    CHECK_EQ_INT(put(&v, "ember/b/governor/state", "bal\x1b]anced\n", true), 0);
    CHECK_STR(v.dev[0].policy, "bal?]anced?");
    CHECK_EQ_INT(put(&v, "ember/b/state", "{\"power_w\":\"6\",\"temp_c\":1e999,\"ts\":-1}", false),
                 0);
    CHECK(isnan(v.dev[0].power_w) && isnan(v.dev[0].temp_c) && isnan(v.dev[0].last_ts));
    fleet_view_free(&v);

    fleet_view_init(&v, "ember");
    int rc = 0;
    for (int i = 0; i <= FLEET_MAX_DEVICES && rc == 0; i++) {
        snprintf(topic, sizeof(topic), "ember/d%05d/status", i);
        rc = put(&v, topic, "online", true);
    }
    CHECK_EQ_INT(rc, -ENOSPC);
    CHECK_EQ_INT(v.n, FLEET_MAX_DEVICES);
    fleet_view_free(&v);
}

int main(void)
{
    test_rows();
    test_bridge();
    test_hostile();
    return et_finish();
}
