/* Allocation and release of inference requests (see request.h). */
#include "request.h"

#include <stdlib.h>

#include "common/timeutil.h"

struct agent_request *agent_request_new(enum agent_request_kind kind)
{
    struct agent_request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->kind = kind;
    atomic_init(&req->cancel, false);
    req->enqueued_ns = cmn_now_ns();
    return req;
}

void agent_request_free(struct agent_request *req)
{
    if (!req)
        return;
    for (size_t i = 0; i < req->n_messages; i++) {
        free(req->messages[i].role);
        free(req->messages[i].content);
        free(req->messages[i].tool_call_id);
    }
    free(req->prompt);
    free(req->plugin_context);
    free(req->plugin_answer);
    free(req->plugin_sources);
    free(req->model_path);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->tools.tools_json);
    free(req->tools.choice_name);
    free(req->tools.format_grammar);
    for (size_t i = 0; i < AGENT_MAX_MESSAGES; i++) {
        for (size_t k = 0; k < req->tools.n_calls[i]; k++) {
            free(req->tools.calls[i][k].id);
            free(req->tools.calls[i][k].name);
            free(req->tools.calls[i][k].arguments);
        }
        free(req->tools.calls[i]);
    }
    free(req);
}
