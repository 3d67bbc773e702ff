/* OpenAI tools and structured output (openai_tools.c). */
#ifndef AGENT_OPENAI_TOOLS_H
#define AGENT_OPENAI_TOOLS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "openai.h"
#include "request.h"

/* tools, tool_choice, parallel_tool_calls and response_format of a chat request into
 * req->tools; each schema is compiled so a bad one is a 400 here. 0, -EINVAL (e set), -ENOMEM. */
int openai_parse_tools(const cJSON *root, struct agent_request *req, struct openai_error *e);
/* messages[index].tool_calls of an assistant message into req->tools.calls[index]. */
int openai_parse_message_tools(const cJSON *m, size_t index, struct agent_request *req,
                               struct openai_error *e);

/* The `tool_calls` array of a response message. */
int openai_tool_calls_json(const struct openai_response_id *rid,
                           const struct agent_tool_call *calls, size_t n, struct openai_buf *b);
/* SSE chunks carrying call number index as `delta.tool_calls`. */
int openai_stream_tool_call(const struct openai_response_id *rid, size_t index, const char *name,
                            const char *arguments, struct openai_buf *b);

#endif
