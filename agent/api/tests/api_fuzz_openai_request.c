/* Fuzz target openai_request: any bytes as a chat or completion request body (the first byte picks
 * which, and whether it is also read as a PUT /v1/governor body). Accepted requests are answered
 * through every response writer so the escaping of whatever text they carry is exercised too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum agent_request_kind kind = (data[0] & 1) ? AGENT_REQ_COMPLETION : AGENT_REQ_CHAT;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct agent_request *req = NULL;
    struct openai_options opts;
    struct openai_error err;
    struct openai_buf b = {0};
    if (openai_parse_request(body, len, kind, &req, &opts, &err) == 0) {
        /* Echo the request's own strings back through the writers. */
        const char *text = kind == AGENT_REQ_CHAT ? req->messages[0].content : req->prompt;
        struct openai_response_id rid;
        openai_response_id_init(&rid, kind, 1, 0, opts.model);
        struct agent_result res;
        memset(&res, 0, sizeof(res));
        openai_response_json(&rid, text, strlen(text), &res, &b);
        struct openai_stream s;
        if (openai_stream_init(&s, &rid) == 0) {
            openai_stream_begin(&s, &b);
            openai_stream_text(&s, text, strlen(text), &b);
            for (size_t i = 0; i < req->n_stop; i++)
                openai_stream_text(&s, req->stop[i], strlen(req->stop[i]), &b);
            openai_stream_end(&s, &res, opts.include_usage, &err, &b);
            openai_stream_free(&s);
        }
        agent_request_free(req);
    } else {
        openai_error_json(&err, &b);
    }
    /* Raw bytes, including invalid UTF-8 and NULs, through the escaper. */
    openai_buf_append_json(&b, body, len);
    if (data[0] & 2) {
        char policy[64];
        double cap;
        openai_parse_governor(body, len, policy, sizeof(policy), &cap, &err);
    }
    openai_buf_free(&b);
    return 0;
}
