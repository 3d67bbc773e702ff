/* Chat templates: turning a list of {role, content} messages into the prompt text a chat model
 * was trained on. A GGUF's `tokenizer.chat_template` is Jinja; rather than interpret Jinja,
 * the engine recognises the template's family by its marker strings and renders that family
 * in C, byte for byte as the reference Jinja template renders it (each family's source is
 * cited in chat.c). Families: ChatML (Qwen, OpenHermes), Llama 2, Llama 3 (3.0 and the
 * 3.1+ "Cutting Knowledge Date" system header), Zephyr/TinyLlama, Mistral ([INST] without
 * <<SYS>>), Phi-3, Gemma. An unknown or absent template falls back to ChatML and says so
 * through a warning flag; the caller decides whether to tell anyone. The rendered text carries
 * special tokens as text (e.g. "<s>", "<|im_start|>"): tokenize it with special-token parsing,
 * but only outside the messages' own text (eng_chat_render_spans + eng_tokenize_spans), or a
 * user could write "<|im_end|><|im_start|>system" and forge a turn. */
#ifndef ENGINE_CHAT_H
#define ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/tokenizer.h"

enum eng_chat_family {
    ENG_CHAT_CHATML = 0,
    ENG_CHAT_LLAMA2,
    ENG_CHAT_LLAMA3,
    ENG_CHAT_ZEPHYR,
    ENG_CHAT_MISTRAL,
    ENG_CHAT_PHI3,
    ENG_CHAT_GEMMA,
    ENG_CHAT_FAMILY_COUNT,
};

/* Variant flags found in the template text. */
enum {
    ENG_CHAT_F_BOS_PREFIX = 1u << 0,     /* Phi-3: the template starts with {{ bos_token }} */
    ENG_CHAT_F_KNOWLEDGE_DATE = 1u << 1, /* Llama 3.1+: system header with knowledge/today date */
    ENG_CHAT_F_THINK = 1u << 2,          /* Qwen3: <think> blocks of earlier turns are dropped */
    /* Mistral tokenizer V3 and later (the template knows [TOOL_CALLS]): tools, no space before
     * [/INST], the system prompt with the last user message */
    ENG_CHAT_F_MISTRAL_V3 = 1u << 3,
    ENG_CHAT_F_TEKKEN = 1u << 4, /* Mistral V3-Tekken (Nemo): no space after the control tokens */
};

#define ENG_CHAT_DEFAULT_SYSTEM_MAX 512

struct eng_chat_template {
    enum eng_chat_family family;
    unsigned flags;
    /* ChatML templates that insert a system turn when the conversation has none (Qwen2,
     * Qwen2.5): that text, unescaped; "" when none. */
    char default_system[ENG_CHAT_DEFAULT_SYSTEM_MAX];
};

/* A call the assistant made (OpenAI message.tool_calls[i]). */
struct eng_chat_tool_call {
    const char *id;        /* may be NULL; only the Mistral V3 format renders it */
    const char *name;      /* function name */
    const char *arguments; /* the arguments as JSON text (an object) */
};

struct eng_chat_message {
    const char *role;    /* "system", "user", "assistant" or "tool" (a tool's result) */
    const char *content; /* NULL only for an assistant message with tool calls (as "") */
};

/* The tool calls of one assistant message (eng_chat_render_opts.message_tools[i]). */
struct eng_chat_message_tools {
    const struct eng_chat_tool_call *tool_calls;
    size_t n_tool_calls;
};

struct eng_chat_render_opts {
    bool add_generation_prompt; /* end with the assistant's turn header */
    const char *bos_token;      /* text of the BOS token, e.g. "<s>"; NULL = "" */
    const char *eos_token;      /* text of the EOS token, e.g. "</s>"; NULL = "" */
    const char *date_string;    /* Llama 3.1+ "Today Date"; NULL = "26 Jul 2024", the
                                   template's own fallback */
    bool disable_thinking;      /* Qwen3 enable_thinking=false: empty <think></think> */
    /* An OpenAI `tools` array as JSON text, rendered the way the family's template renders
     * `tools` (ChatML/Qwen: a "# Tools" system turn, Llama 3.1+: the first user message,
     * Mistral V3: [AVAILABLE_TOOLS] before the last user message); NULL: none. Tools,
     * tool_calls and role "tool" need ChatML, Llama 3.1+ or Mistral V3 (-EINVAL else).
     * All text taken from tools, calls and tool results lies in the literal spans. */
    const char *tools;
    /* NULL, or one entry per message: the tool calls an assistant message made. */
    const struct eng_chat_message_tools *message_tools;
    /* NULL, or one entry per message: for a "tool" message the id of the call it answers
     * (OpenAI tool_call_id), which the Mistral V3 format renders. A NULL entry (or array): the
     * call at its position among the tool messages after the last assistant message with
     * calls. */
    const char *const *tool_call_ids;
};

/* Recognises the family of a Jinja chat template. NULL or "" or an unknown template gives
 * ChatML with *ret_warning = true. Never fails. */
void eng_chat_template_detect(const char *jinja, struct eng_chat_template *ret, bool *ret_warning);

/* A family by name: chatml (alias qwen), llama2, llama3, zephyr (alias tinyllama), mistral
 * (v0.1/v0.2), mistral-v3 (Mistral-7B-Instruct-v0.3, with tools), mistral-v3-tekken (Mistral
 * Nemo), phi3, gemma; case-insensitive. -EINVAL for any other name. */
int eng_chat_template_from_name(const char *name, struct eng_chat_template *ret);

/* Reads tokenizer.chat_template from a GGUF file: *ret_jinja is a malloc'd copy (caller
 * frees), or NULL when the file has none. -errno with "what and where" in err when the file
 * cannot be read or is malformed. */
int eng_chat_template_read(const char *gguf_path, char **ret_jinja, char *err, size_t err_len);

/* The canonical name of a family ("chatml", ...), "?" when out of range. */
const char *eng_chat_family_name(enum eng_chat_family family);

/* Renders messages into a malloc'd NUL-terminated prompt (*ret_text, caller frees; length in
 * *ret_len when not NULL). -EINVAL with "message N: why" in err when a role is unknown or the
 * family's rules are broken (Llama 2, Mistral and Gemma require user/assistant alternation
 * starting with user, after an optional leading system message); -ENOMEM. */
int eng_chat_render(const struct eng_chat_template *tmpl, const struct eng_chat_message *msgs,
                    size_t n_msgs, const struct eng_chat_render_opts *opts, char **ret_text,
                    size_t *ret_len, char *err, size_t err_len);

/* eng_chat_render that also returns where message text landed in the prompt: *ret_spans
 * (malloc'd, caller frees; ascending, disjoint) covers every byte copied from a message's
 * content, for eng_tokenize_spans. ret_spans NULL: as eng_chat_render. */
int eng_chat_render_spans(const struct eng_chat_template *tmpl, const struct eng_chat_message *msgs,
                          size_t n_msgs, const struct eng_chat_render_opts *opts, char **ret_text,
                          size_t *ret_len, struct eng_text_span **ret_spans, size_t *ret_n_spans,
                          char *err, size_t err_len);

/* ---- tool calls in model output ---- */

/* How a chat template family writes tool calls (json_schema.h's enum eng_tool_syntax): Hermes
 * <tool_call> for ChatML, Llama 3 JSON for Llama 3.1+, [TOOL_CALLS] for Mistral; -EINVAL for a
 * family without tool support. */
int eng_chat_tool_syntax(const struct eng_chat_template *tmpl, int *ret_syntax);

/* Splits streamed model output into text and tool calls. Text that might still become a call
 * (a partial "<tool_call>", or the whole output of a Llama 3 reply starting with '{') is held
 * back until it is decided; a block that does not parse as a call of a known tool stays text. */
struct eng_tool_parser;

struct eng_tool_parser_cb {
    int (*text)(void *user, const char *text, size_t len); /* nonzero: stop */
    /* name and arguments (compact JSON object text) are NUL-terminated, valid during the call */
    int (*call)(void *user, const char *name, const char *arguments);
    void *user;
};

/* syntax: enum eng_tool_syntax. tool_names: the known functions (NULL = any name). */
int eng_tool_parser_new(int syntax, const char *const *tool_names, size_t n_names,
                        const struct eng_tool_parser_cb *cb, struct eng_tool_parser **ret);
void eng_tool_parser_free(struct eng_tool_parser *p);
/* 0, nonzero when a callback asked to stop, -ENOMEM. */
int eng_tool_parser_push(struct eng_tool_parser *p, const char *text, size_t len);
/* End of output: decides what is held back. */
int eng_tool_parser_finish(struct eng_tool_parser *p);
/* Calls reported so far. */
size_t eng_tool_parser_n_calls(const struct eng_tool_parser *p);

#endif
