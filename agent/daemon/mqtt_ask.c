/* The daemon's MQTT `ask` bridge (see daemon_parts.h): a question arriving over MQTT becomes an
 * engine request; the worker streams the answer into a job and the loop publishes it to the
 * asker's response topic. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "daemon_parts.h"
#include "telemetry/mqtt.h"

#define ASK_REPLY_MAX_BYTES 65536

/* An MQTT `ask` in flight: the worker fills text, the loop publishes the answer. */
struct ask_job {
    struct agent_daemon *d;
    struct agent_request *req;
    char *response_topic;
    void *correlation;
    size_t correlation_len;
    char *text;
    size_t len, cap;
    struct agent_result result;
};

static int ask_text(void *user, const char *text, size_t len)
{
    struct ask_job *job = user;
    if (job->len + len + 1 > job->cap) {
        size_t cap = (job->len + len + 1) * 2;
        if (cap > ASK_REPLY_MAX_BYTES)
            return 1; /* enough: an MQTT answer is not a document */
        char *grown = realloc(job->text, cap);
        if (!grown)
            return 1;
        job->text = grown;
        job->cap = cap;
    }
    memcpy(job->text + job->len, text, len);
    job->len += len;
    job->text[job->len] = '\0';
    return 0;
}

static void ask_free(struct ask_job *job)
{
    agent_request_free(job->req);
    free(job->response_topic);
    free(job->correlation);
    free(job->text);
    free(job);
}

static void ask_done(void *user, const struct agent_result *r)
{
    struct ask_job *job = user;
    struct agent_daemon *d = job->d;
    job->result = *r;
    if (daemon_queue_push(d->queue,
                          &(struct daemon_msg){.kind = DAEMON_MSG_ASK_DONE, .u.ask = job}) < 0)
        ask_free(job); /* the queue is full (counted, logged by the loop): the answer is lost */
}

static void ask_reply_error(struct agent_daemon *d, const char *topic, const void *corr,
                            size_t corr_len, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json)
        tel_mqtt_respond(d->mqtt, topic, corr, corr_len, json, strlen(json));
    free(json);
}

/* `ask` payload: plain UTF-8 text (the user's message) or JSON {"prompt": "...",
 * "max_tokens": N, "temperature": T}. The answer is JSON {"text", "usage", "energy"}. */
void daemon_on_mqtt_ask(void *user, const char *payload, size_t len, const char *response_topic,
                        const void *correlation, size_t correlation_len)
{
    struct agent_daemon *d = user;
    if (!response_topic) {
        daemon_record_event(d, "error", "ask without a response topic (MQTT v5 needed)");
        return;
    }
    struct ask_job *job = calloc(1, sizeof(*job));
    struct agent_request *req = agent_request_new(AGENT_REQ_CHAT);
    if (!job || !req) {
        free(job);
        agent_request_free(req);
        return;
    }
    job->d = d;
    job->req = req;
    job->response_topic = strdup(response_topic);
    if (correlation_len) {
        job->correlation = malloc(correlation_len);
        if (job->correlation)
            memcpy(job->correlation, correlation, correlation_len);
        job->correlation_len = job->correlation ? correlation_len : 0;
    }
    char *prompt = NULL;
    cJSON *root = len && payload[0] == '{' ? cJSON_ParseWithLength(payload, len) : NULL;
    if (root) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
        if (cJSON_IsString(p))
            prompt = strdup(p->valuestring);
        if (cJSON_IsNumber(mt) && mt->valuedouble >= 1 && mt->valuedouble <= 1048576) {
            req->sampling.has_max_tokens = true;
            req->sampling.max_tokens = (int)mt->valuedouble;
        }
        if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble <= 5) {
            req->sampling.has_temperature = true;
            req->sampling.temperature = t->valuedouble;
        }
        cJSON_Delete(root);
    } else {
        prompt = strndup(payload, len);
    }
    if (!prompt || !*prompt || !job->response_topic) {
        ask_reply_error(d, response_topic, correlation, correlation_len,
                        "ask: expected text or {\"prompt\": \"...\"}");
        free(prompt);
        ask_free(job);
        return;
    }
    req->messages[0].role = strdup("user");
    req->messages[0].content = prompt;
    req->n_messages = 1;
    req->sink = (struct agent_sink){.on_text = ask_text, .on_done = ask_done, .user = job};
    int rc = d->worker ? agent_worker_submit(d->worker, req) : -ENODEV;
    if (rc < 0) {
        ask_reply_error(d, response_topic, correlation, correlation_len,
                        rc == -EBUSY ? "busy: the request queue is full" : "no model is loaded");
        ask_free(job);
    }
}

void daemon_publish_ask_answer(struct agent_daemon *d, struct ask_job *job)
{
    const struct agent_result *r = &job->result;
    cJSON *o = cJSON_CreateObject();
    if (r->finish == AGENT_FINISH_ERROR) {
        cJSON_AddStringToObject(o, "error", r->error_msg[0] ? r->error_msg : "failed");
    } else {
        cJSON_AddStringToObject(o, "text", job->text ? job->text : "");
        cJSON_AddStringToObject(o, "finish_reason",
                                r->finish == AGENT_FINISH_LENGTH ? "length" : "stop");
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", (double)r->prompt_tokens);
        cJSON_AddNumberToObject(u, "completion_tokens", (double)r->gen_tokens);
        cJSON *e = cJSON_AddObjectToObject(o, "energy");
        cJSON_AddNumberToObject(e, "joules", r->energy_j);
        cJSON_AddNumberToObject(e, "joules_per_token", r->j_per_token);
        cJSON_AddNumberToObject(e, "avg_watts", r->avg_power_w);
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json && d->mqtt)
        tel_mqtt_respond(d->mqtt, job->response_topic, job->correlation, job->correlation_len, json,
                         strlen(json));
    free(json);
    ask_free(job);
}
