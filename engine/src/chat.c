/* Chat template detection and rendering (chat.h). Each render_* function reproduces the output
 * of one family's reference Jinja template as Hugging Face's apply_chat_template renders it
 * (jinja2 with trim_blocks and lstrip_blocks), with the template it follows cited above it.
 * Where a reference template raises an exception for a case the engine must still serve (a
 * system message for Mistral v0.2 or Gemma 2), the behaviour of the family's later template
 * (Mistral v0.3, Gemma 3) is used instead and noted there. Detection follows the marker
 * strings llama.cpp uses (src/llama-chat.cpp, llm_chat_detect_template). */
#include "engine/chat.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat_internal.h"

static const char *const family_names[ENG_CHAT_FAMILY_COUNT] = {
    [ENG_CHAT_CHATML] = "chatml", [ENG_CHAT_LLAMA2] = "llama2",   [ENG_CHAT_LLAMA3] = "llama3",
    [ENG_CHAT_ZEPHYR] = "zephyr", [ENG_CHAT_MISTRAL] = "mistral", [ENG_CHAT_PHI3] = "phi3",
    [ENG_CHAT_GEMMA] = "gemma",
};

const char *eng_chat_family_name(enum eng_chat_family family)
{
    if ((unsigned)family >= ENG_CHAT_FAMILY_COUNT)
        return "?";
    return family_names[family];
}

int eng_chat_template_from_name(const char *name, struct eng_chat_template *ret)
{
    static const struct {
        const char *name;
        enum eng_chat_family family;
        unsigned flags;
    } aliases[] = {
        {"qwen", ENG_CHAT_CHATML, 0},
        {"tinyllama", ENG_CHAT_ZEPHYR, 0},
        {"mistral-v3", ENG_CHAT_MISTRAL, ENG_CHAT_F_MISTRAL_V3},
        {"mistral-v3-tekken", ENG_CHAT_MISTRAL, ENG_CHAT_F_MISTRAL_V3 | ENG_CHAT_F_TEKKEN}};

    memset(ret, 0, sizeof(*ret));
    if (!name)
        return -EINVAL;
    for (int f = 0; f < ENG_CHAT_FAMILY_COUNT; f++) {
        if (strcasecmp(name, family_names[f]) == 0) {
            ret->family = (enum eng_chat_family)f;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (strcasecmp(name, aliases[i].name) == 0) {
            ret->family = aliases[i].family;
            ret->flags = aliases[i].flags;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- detection ---- */

/* Qwen2 / Qwen2.5 write their default system turn as one Jinja string literal:
 *   '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
 * (the \n being a Jinja escape, i.e. a backslash and an n in the template text). Find the
 * first such literal whose text continues after "system\n" instead of closing the string, and
 * unescape its content up to <|im_end|>. */
static void find_default_system(const char *t, char *out, size_t cap)
{
    static const char marker[] = "<|im_start|>system\\n";
    const char *p = t;
    out[0] = '\0';
    while ((p = strstr(p, marker)) != NULL) {
        p += sizeof(marker) - 1;
        if (*p == '\'' || *p == '"')
            continue; /* the string closes: the content comes from a variable */
        const char *end = strstr(p, "<|im_end|>");
        if (!end)
            return;
        size_t o = 0;
        for (const char *q = p; q < end && o + 1 < cap; q++) {
            char c = *q;
            if (c == '\'' || c == '"')
                return; /* the literal ended before <|im_end|>: not a plain default */
            if (c == '\\' && q + 1 < end) {
                q++;
                switch (*q) {
                case 'n':
                    c = '\n';
                    break;
                case 't':
                    c = '\t';
                    break;
                default:
                    c = *q; /* \\ \' \" */
                }
            }
            out[o++] = c;
        }
        out[o] = '\0';
        return;
    }
}

void eng_chat_template_detect(const char *t, struct eng_chat_template *ret, bool *ret_warning)
{
    memset(ret, 0, sizeof(*ret));
    ret->family = ENG_CHAT_CHATML;
    *ret_warning = false;
    if (!t || !*t) {
        *ret_warning = true;
        return;
    }
    if (strstr(t, "<|im_start|>")) {
        ret->family = ENG_CHAT_CHATML;
        if (strstr(t, "</think>") && strstr(t, "<think>"))
            ret->flags |= ENG_CHAT_F_THINK;
        find_default_system(t, ret->default_system, sizeof(ret->default_system));
    } else if (strstr(t, "[INST]")) {
        ret->family = strstr(t, "<<SYS>>") ? ENG_CHAT_LLAMA2 : ENG_CHAT_MISTRAL;
        /* tokenizer V3 templates (Mistral-7B-Instruct-v0.3, Nemo) know the tool-call tokens;
         * V3's sentencepiece templates write "[INST] " + content, Tekken ones "[INST]" + content */
        if (ret->family == ENG_CHAT_MISTRAL &&
            (strstr(t, "[TOOL_CALLS]") || strstr(t, "[AVAILABLE_TOOLS]"))) {
            ret->flags |= ENG_CHAT_F_MISTRAL_V3;
            if (!strstr(t, "[INST] "))
                ret->flags |= ENG_CHAT_F_TEKKEN;
        }
    } else if (strstr(t, "<|assistant|>") && strstr(t, "<|end|>")) {
        ret->family = ENG_CHAT_PHI3;
        if (strstr(t, "bos_token"))
            ret->flags |= ENG_CHAT_F_BOS_PREFIX;
    } else if (strstr(t, "<|user|>")) {
        ret->family = ENG_CHAT_ZEPHYR;
    } else if (strstr(t, "<start_of_turn>")) {
        ret->family = ENG_CHAT_GEMMA;
    } else if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>")) {
        ret->family = ENG_CHAT_LLAMA3;
        if (strstr(t, "Cutting Knowledge Date"))
            ret->flags |= ENG_CHAT_F_KNOWLEDGE_DATE;
    } else {
        *ret_warning = true;
    }
}

/* ---- rendering helpers ---- */

struct sb {
    char *buf;
    size_t len, cap;
    bool oom;
    /* When msgs is set, bytes copied from a message's content are recorded as spans: the
     * tokenizer must not read control tokens there (a user cannot forge "<|im_start|>system"). */
    const struct eng_chat_message *msgs;
    size_t n_msgs;
    struct eng_text_span *spans;
    size_t n_spans, cap_spans;
};

static void sb_span(struct sb *b, size_t off, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->n_spans && b->spans[b->n_spans - 1].off + b->spans[b->n_spans - 1].len == off) {
        b->spans[b->n_spans - 1].len += n; /* adjacent: one span */
        return;
    }
    if (b->n_spans == b->cap_spans) {
        size_t cap = b->cap_spans ? 2 * b->cap_spans : 16;
        struct eng_text_span *ns = realloc(b->spans, cap * sizeof(*ns));
        if (!ns) {
            b->oom = true;
            return;
        }
        b->spans = ns;
        b->cap_spans = cap;
    }
    b->spans[b->n_spans++] = (struct eng_text_span){off, n};
}

static bool from_content(const struct sb *b, const char *s)
{
    for (size_t i = 0; i < b->n_msgs; i++) {
        const char *c = b->msgs[i].content;
        if (c && s >= c && s <= c + strlen(c))
            return true;
    }
    return false;
}

static void sb_addn(struct sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->msgs && n && from_content(b, s))
        sb_span(b, b->len, n);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_add(struct sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* Adds several strings; the list ends with NULL. */
static void sb_cat(struct sb *b, ...)
{
    va_list ap;
    va_start(ap, b);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL)
        sb_add(b, s);
    va_end(ap);
}

/* Python's str.strip() / Jinja's trim for ASCII whitespace (Python's also strips Unicode
 * spaces; chat turns virtually never start or end with those). */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void sb_add_trimmed(struct sb *b, const char *s)
{
    size_t n = strlen(s);
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    sb_addn(b, s, n);
}

/* sb_add_trimmed of another buffer, carrying its content spans along. */
static void sb_add_trimmed_sb(struct sb *b, const struct sb *src)
{
    const char *s = src->buf ? src->buf : "";
    size_t start = 0, end = src->len;
    while (start < end && is_space(s[start]))
        start++;
    while (end > start && is_space(s[end - 1]))
        end--;
    size_t base = b->len;
    const struct eng_chat_message *msgs = b->msgs;
    b->msgs = NULL; /* the copy's spans come from src */
    sb_addn(b, s + start, end - start);
    b->msgs = msgs;
    if (!msgs)
        return;
    for (size_t i = 0; i < src->n_spans; i++) {
        size_t a = src->spans[i].off, z = a + src->spans[i].len;
        if (a < start)
            a = start;
        if (z > end)
            z = end;
        if (z > a)
            sb_span(b, base + (a - start), z - a);
    }
}

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL, ROLE_BAD };

static enum role role_of(const char *r)
{
    if (!r)
        return ROLE_BAD;
    if (strcmp(r, "system") == 0)
        return ROLE_SYSTEM;
    if (strcmp(r, "user") == 0)
        return ROLE_USER;
    if (strcmp(r, "assistant") == 0)
        return ROLE_ASSISTANT;
    if (strcmp(r, "tool") == 0)
        return ROLE_TOOL;
    return ROLE_BAD;
}

struct render {
    const struct eng_chat_template *t;
    const struct eng_chat_message *m;
    size_t n;
    const struct eng_chat_render_opts *o;
    const char *bos, *eos;
    struct sb out;
    char *err;
    size_t err_len;
    /* tools: the parsed opts->tools, and each message's tool-call arguments (args[i][k]) */
    cJSON *tools;
    cJSON ***args;
    bool uses_tools; /* tools given, or a tool message or tool call in the history */
    struct eng_chat_message *msgs_copy; /* r->m with "" for NULL content */
};

static size_t n_calls(const struct render *r, size_t i)
{
    return r->o->message_tools ? r->o->message_tools[i].n_tool_calls : 0;
}

static const struct eng_chat_tool_call *calls_of(const struct render *r, size_t i)
{
    return r->o->message_tools ? r->o->message_tools[i].tool_calls : NULL;
}

/* Text the template takes from tools or tool calls (not from a message's content pointer):
 * appended as a literal span, so control tokens written there are never parsed as such. */
static void sb_add_lit(struct sb *b, const char *s)
{
    size_t n = strlen(s);
    if (b->msgs && n)
        sb_span(b, b->len, n);
    const struct eng_chat_message *m = b->msgs;
    b->msgs = NULL;
    sb_addn(b, s, n);
    b->msgs = m;
}

/* tojson of a parsed value (indent 0: one line), as a literal. */
static void sb_add_json(struct sb *b, const cJSON *v, int indent)
{
    char *t = chat_py_json(v, indent);
    if (!t) {
        b->oom = true;
        return;
    }
    sb_add_lit(b, t);
    free(t);
}

static int fail(struct render *r, size_t idx, const char *why)
{
    if (r->err && r->err_len)
        snprintf(r->err, r->err_len, "chat template %s: message %zu: %s",
                 eng_chat_family_name(r->t->family), idx, why);
    return -EINVAL;
}

/* Llama 2, Mistral and Gemma templates raise 'Conversation roles must alternate
 * user/assistant/user/assistant/...' unless the messages after an optional leading system
 * message go user, assistant, user, ... Checks that, ignoring system messages at odd positions
 * only where the template itself lets them through silently (Llama 2). */
static int check_alternation(struct render *r, size_t first, bool odd_system_ok)
{
    for (size_t i = first; i < r->n; i++) {
        enum role role = role_of(r->m[i].role);
        bool even = (i - first) % 2 == 0;
        if ((role == ROLE_USER) != even) {
            if (role == ROLE_SYSTEM && !even && odd_system_ok)
                continue;
            return fail(r, i,
                        "roles must alternate user/assistant/user/... after an optional "
                        "leading system message");
        }
    }
    return 0;
}

/* ChatML. OpenHermes-2.5 (teknium/OpenHermes-2.5-Mistral-7B tokenizer_config.json):
 *   {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']
 *   + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n'
 *   }}{% endif %}
 * Qwen2/Qwen2.5 add a default system turn when messages[0] is not a system message (the text
 * found by find_default_system). Qwen3 (the template in ggml-vocab-qwen3.gguf, quoted from its
 * tokenizer_config.json) renders assistant turns before the last user query without their
 * <think>...</think> part (content.split('</think>')[-1].lstrip('\n')), renders later assistant
 * turns as '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') when
 * they are the last message or carry reasoning, and appends '<think>\n\n</think>\n\n' to the
 * generation prompt when enable_thinking is false. */
static void chatml_assistant_qwen3(struct render *r, size_t i, size_t last_query)
{
    const char *c = r->m[i].content;
    const char *close = NULL, *p = c;
    while ((p = strstr(p, "</think>")) != NULL) {
        close = p;
        p += 8;
    }
    if (!close) {
        if (i > last_query && i + 1 == r->n) {
            /* reasoning_content is '' here: '<think>\n' + '' + '\n</think>\n\n' + content */
            sb_add(&r->out, "<think>\n\n</think>\n\n");
            while (*c == '\n')
                c++;
        }
        sb_add(&r->out, c);
        return;
    }
    const char *content = close + 8;
    while (*content == '\n')
        content++;
    if (i > last_query) {
        /* reasoning = split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
        const char *first_close = strstr(c, "</think>");
        const char *rs = c, *q = c;
        while ((q = strstr(q, "<think>")) != NULL && q < first_close) {
            rs = q + 7;
            q += 7;
        }
        const char *re = first_close;
        while (re > rs && re[-1] == '\n')
            re--;
        while (rs < re && *rs == '\n')
            rs++;
        /* .strip('\n') of the reasoning is already done by the two loops above */
        if (i + 1 == r->n || re > rs) {
            sb_add(&r->out, "<think>\n");
            sb_addn(&r->out, rs, (size_t)(re - rs));
            sb_add(&r->out, "\n</think>\n\n");
        }
    }
    sb_add(&r->out, content);
}

/* Tools in ChatML, as Qwen2.5's and Qwen3's templates render them (both in
 * tests/fuzz/chat_template/; the two agree on everything below except the default system text,
 * which only Qwen2.5 has). With tools the system turn is the system message (or Qwen2.5's
 * default) + "\n\n" + a "# Tools" block listing each tool as tojson; without a system text
 * at all the block alone (Qwen3; our fallback for other ChatML templates). */
static void chatml_tools_system(struct render *r)
{
    static const char head[] =
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    static const char tail[] =
        "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n";
    /* Qwen2.5 writes this line inside a Jinja string literal as {{...}}, which prints both
     * braces; Qwen3 writes it with single ones */
    const char *example = r->t->default_system[0]
                              ? "{{\"name\": <function-name>, \"arguments\": <args-json-object>}}"
                              : "{\"name\": <function-name>, \"arguments\": <args-json-object>}";
    sb_add(&r->out, "<|im_start|>system\n");
    if (r->n && role_of(r->m[0].role) == ROLE_SYSTEM)
        sb_cat(&r->out, r->m[0].content, "\n\n", NULL);
    else if (r->t->default_system[0])
        sb_cat(&r->out, r->t->default_system, "\n\n", NULL);
    sb_add(&r->out, head);
    for (const cJSON *t = r->tools ? r->tools->child : NULL; t; t = t->next) {
        sb_add(&r->out, "\n");
        sb_add_json(&r->out, t, 0);
    }
    sb_cat(&r->out, tail, example, "\n</tool_call><|im_end|>\n", NULL);
}

/* An assistant turn's tool calls; content_nonempty: the (Qwen3: think-stripped) content. */
static void chatml_tool_calls(struct render *r, size_t i, bool content_nonempty)
{
    for (size_t k = 0; k < n_calls(r, i); k++) {
        if (k > 0 || content_nonempty)
            sb_add(&r->out, "\n");
        sb_add(&r->out, "<tool_call>\n{\"name\": \"");
        sb_add_lit(&r->out, calls_of(r, i)[k].name);
        sb_add(&r->out, "\", \"arguments\": ");
        sb_add_json(&r->out, r->args[i][k], 0);
        sb_add(&r->out, "}\n</tool_call>");
    }
}

/* Qwen3's "content" variable: after the last </think>, leading newlines stripped. */
static bool qwen3_content_nonempty(const char *c)
{
    const char *close = NULL, *p = c;
    while ((p = strstr(p, "</think>")) != NULL) {
        close = p;
        p += 8;
    }
    if (!close)
        return c[0] != '\0';
    c = close + 8;
    while (*c == '\n')
        c++;
    return c[0] != '\0';
}

static bool is_tool_response(const char *c)
{
    size_t n = strlen(c);
    return strncmp(c, "<tool_response>", 15) == 0 && n >= 16 &&
           strcmp(c + n - 16, "</tool_response>") == 0;
}

static int render_chatml(struct render *r)
{
    bool think = r->t->flags & ENG_CHAT_F_THINK;
    size_t last_query = r->n ? r->n - 1 : 0;
    if (think) {
        /* ns.last_query_index: the last user message that is not a wrapped tool response */
        for (size_t i = r->n; i-- > 0;) {
            if (role_of(r->m[i].role) == ROLE_USER && !is_tool_response(r->m[i].content)) {
                last_query = i;
                break;
            }
        }
    }
    size_t first = 0;
    if (r->tools) {
        chatml_tools_system(r);
        first = r->n && role_of(r->m[0].role) == ROLE_SYSTEM;
    } else if (r->n && r->t->default_system[0] && role_of(r->m[0].role) != ROLE_SYSTEM) {
        sb_cat(&r->out, "<|im_start|>system\n", r->t->default_system, "<|im_end|>\n", NULL);
    }
    for (size_t i = first; i < r->n; i++) {
        enum role role = role_of(r->m[i].role);
        if (role == ROLE_TOOL) {
            if (i == 0 || role_of(r->m[i - 1].role) != ROLE_TOOL)
                sb_add(&r->out, "<|im_start|>user");
            sb_cat(&r->out, "\n<tool_response>\n", r->m[i].content, "\n</tool_response>", NULL);
            if (i + 1 == r->n || role_of(r->m[i + 1].role) != ROLE_TOOL)
                sb_add(&r->out, "<|im_end|>\n");
            continue;
        }
        sb_cat(&r->out, "<|im_start|>", r->m[i].role, "\n", NULL);
        if (think && role == ROLE_ASSISTANT)
            chatml_assistant_qwen3(r, i, last_query);
        else
            sb_add(&r->out, r->m[i].content);
        if (role == ROLE_ASSISTANT && n_calls(r, i))
            chatml_tool_calls(
                r, i, think ? qwen3_content_nonempty(r->m[i].content) : r->m[i].content[0] != '\0');
        sb_add(&r->out, "<|im_end|>\n");
    }
    if (r->o->add_generation_prompt) {
        sb_add(&r->out, "<|im_start|>assistant\n");
        if (think && r->o->disable_thinking)
            sb_add(&r->out, "<think>\n\n</think>\n\n");
    }
    return 0;
}

/* Llama 2 (meta-llama/Llama-2-7b-chat-hf tokenizer_config.json):
 *   {% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set
 *   system_message = messages[0]['content'] %}{% else %}...{% set system_message = false %}
 *   {% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') !=
 *   (loop.index0 % 2 == 0) %}{{ raise_exception(...) }}{% endif %}{% if loop.index0 == 0 and
 *   system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' +
 *   message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if
 *   message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif
 *   message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}
 *   {% endfor %}
 * No generation prompt: the last ' [/INST]' is where the answer starts. */
static int render_llama2(struct render *r)
{
    size_t first = 0;
    const char *sys = NULL;
    if (r->n && role_of(r->m[0].role) == ROLE_SYSTEM) {
        sys = r->m[0].content;
        first = 1;
    }
    int rc = check_alternation(r, first, true);
    if (rc < 0)
        return rc;
    for (size_t i = first; i < r->n; i++) {
        enum role role = role_of(r->m[i].role);
        struct sb content = {.msgs = r->out.msgs, .n_msgs = r->out.n_msgs};
        if (i == first && sys)
            sb_cat(&content, "<<SYS>>\n", sys, "\n<</SYS>>\n\n", NULL);
        sb_add(&content, r->m[i].content);
        if (content.oom) {
            free(content.buf);
            free(content.spans);
            r->out.oom = true;
            return -ENOMEM;
        }
        if (role == ROLE_USER) {
            sb_cat(&r->out, r->bos, "[INST] ", NULL);
            sb_add_trimmed_sb(&r->out, &content);
            sb_add(&r->out, " [/INST]");
        } else if (role == ROLE_ASSISTANT) {
            sb_add(&r->out, " ");
            sb_add_trimmed_sb(&r->out, &content);
            sb_cat(&r->out, " ", r->eos, NULL);
        }
        free(content.buf);
        free(content.spans);
    }
    return 0;
}

/* Mistral (mistralai/Mistral-7B-Instruct-v0.2 tokenizer_config.json):
 *   {{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') !=
 *   (loop.index0 % 2 == 0) %}{{ raise_exception(...) }}{% endif %}{% if message['role'] ==
 *   'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] ==
 *   'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and
 *   assistant roles are supported!') }}{% endif %}{% endfor %}
 * That template rejects system messages; here a leading system message is joined to the first
 * user message with a blank line, as Mistral's v0.3 template joins it ("system + '\n\n' +
 * content"). */
static int render_mistral_v3(struct render *r);

static int render_mistral(struct render *r)
{
    if (r->t->flags & ENG_CHAT_F_MISTRAL_V3)
        return render_mistral_v3(r);
    size_t first = 0;
    const char *sys = NULL;
    if (r->n && role_of(r->m[0].role) == ROLE_SYSTEM) {
        sys = r->m[0].content;
        first = 1;
    }
    int rc = check_alternation(r, first, false);
    if (rc < 0)
        return rc;
    sb_add(&r->out, r->bos);
    for (size_t i = first; i < r->n; i++) {
        if (role_of(r->m[i].role) == ROLE_USER) {
            sb_add(&r->out, "[INST] ");
            if (i == first && sys)
                sb_cat(&r->out, sys, "\n\n", NULL);
            sb_cat(&r->out, r->m[i].content, " [/INST]", NULL);
        } else {
            sb_cat(&r->out, r->m[i].content, r->eos, NULL);
        }
    }
    return 0;
}

/* Mistral tokenizer V3 (sentencepiece: Mistral-7B-Instruct-v0.3, Mixtral-8x22B-Instruct-v0.1)
 * and V3-Tekken (Mistral Nemo), with tools, as Mistral documents the text these tokenizers
 * encode: mistralai/cookbook concept-deep-dive/tokenization/templates.md (V2/V3, V3-Tekken) and
 * tool_calling.md (Tokenizer V3, V3-Tekken), and mistral-common's InstructTokenizerV2/V3, which
 * that documentation names as the ground truth:
 *   <s>[INST] user[/INST] answer</s>[AVAILABLE_TOOLS] [tool, ...][/AVAILABLE_TOOLS]
 *   [INST] system\n\nlast user[/INST][TOOL_CALLS] [{"name": ..., "arguments": {...},
 *   "id": ...}, ...]</s>[TOOL_RESULTS] {"content": ..., "call_id": ...}[/TOOL_RESULTS] answer</s>
 * - the tools (as given, json.dumps) and the system prompt go with the last user message only;
 * - an assistant message with tool calls is its calls alone (its text is not encoded);
 *   mistral-common leaves a call's "id" out when it has none, here one is made from the call's
 *   position (mistral_call_id) so that its result can name it;
 * - a call's arguments and a tool result's content are JSON values: the string parsed when it
 *   parses, else the string itself (mistral-common's _parse_json_content);
 * - the space after [INST], [AVAILABLE_TOOLS], [TOOL_CALLS], [TOOL_RESULTS] and before an
 *   answer is sentencepiece's word-start marker on the encoded text; Tekken has none.
 * A tool message names its call by tool_call_id; without one it answers the call at its position
 * after the last assistant message with calls. Roles: after an optional leading system message,
 * user and plain assistant messages alternate starting with user, with assistant messages with
 * calls and tool messages in between. The golden files in engine/tests/chat_tools/ come from
 * a Jinja template written from this description (mistral-v3*.jinja there). */
static int mistral_v3_check(struct render *r, size_t first)
{
    size_t k = 0;
    for (size_t i = first; i < r->n; i++) {
        enum role role = role_of(r->m[i].role);
        if (role == ROLE_SYSTEM)
            return fail(r, i, "a system message may only come first");
        if (role == ROLE_TOOL) {
            if (i == first || (role_of(r->m[i - 1].role) != ROLE_TOOL && !n_calls(r, i - 1)))
                return fail(r, i, "a tool result must follow an assistant message with tool calls");
            continue;
        }
        if (role == ROLE_ASSISTANT && n_calls(r, i)) {
            if (i == first)
                return fail(r, i, "the conversation must start with a user message");
            continue;
        }
        if ((role == ROLE_USER) != (k % 2 == 0))
            return fail(r, i,
                        "user and assistant messages must alternate, starting with user, after "
                        "an optional leading system message");
        k++;
    }
    return 0;
}

/* A JSON value from text as mistral-common's _parse_json_content reads it: parsed when the
 * whole text is JSON, else the string. NULL on no memory. */
static cJSON *json_or_string(const char *s)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithOpts(s, &end, true);
    if (v)
        return v;
    return cJSON_CreateString(s);
}

/* The id of call k of message i: its own, or, when it has none, a stable 9-character one made
 * from its position (Mistral's ids are 9 letters and digits). */
static const char *mistral_call_id(struct render *r, size_t i, size_t k, char buf[16])
{
    const char *id = calls_of(r, i)[k].id;
    if (id && id[0])
        return id;
    snprintf(buf, 16, "call%03zu%02zu", i % 1000, k % 100);
    return buf;
}

static int render_mistral_v3(struct render *r)
{
    bool tekken = r->t->flags & ENG_CHAT_F_TEKKEN;
    const char *sp = tekken ? "" : " ";
    size_t first = 0, last_user = r->n;
    const char *sys = NULL;
    if (r->n && role_of(r->m[0].role) == ROLE_SYSTEM) {
        sys = r->m[0].content;
        first = 1;
    }
    int rc = mistral_v3_check(r, first);
    if (rc < 0)
        return rc;
    for (size_t i = first; i < r->n; i++)
        if (role_of(r->m[i].role) == ROLE_USER)
            last_user = i;
    size_t calls_msg = r->n, n_results = 0; /* the last assistant message with calls */
    char idbuf[16];
    sb_add(&r->out, r->bos);
    for (size_t i = first; i < r->n; i++) {
        enum role role = role_of(r->m[i].role);
        if (role == ROLE_USER) {
            if (i == last_user && r->tools) {
                sb_cat(&r->out, "[AVAILABLE_TOOLS]", sp, NULL);
                sb_add_json(&r->out, r->tools, 0);
                sb_add(&r->out, "[/AVAILABLE_TOOLS]");
            }
            sb_cat(&r->out, "[INST]", sp, NULL);
            if (i == last_user && sys)
                sb_cat(&r->out, sys, "\n\n", NULL);
            sb_cat(&r->out, r->m[i].content, "[/INST]", NULL);
        } else if (role == ROLE_ASSISTANT && n_calls(r, i)) {
            cJSON *arr = cJSON_CreateArray();
            for (size_t k = 0; arr && k < n_calls(r, i); k++) {
                cJSON *c = cJSON_CreateObject();
                if (!c || !cJSON_AddItemToArray(arr, c)) {
                    cJSON_Delete(c);
                    cJSON_Delete(arr);
                    return -ENOMEM;
                }
                cJSON *args = NULL;
                bool ok = cJSON_AddStringToObject(c, "name", calls_of(r, i)[k].name) &&
                          (args = cJSON_Duplicate(r->args[i][k], true)) != NULL;
                if (ok && !cJSON_AddItemToObject(c, "arguments", args)) {
                    cJSON_Delete(args);
                    ok = false;
                }
                if (!ok || !cJSON_AddStringToObject(c, "id", mistral_call_id(r, i, k, idbuf))) {
                    cJSON_Delete(arr);
                    return -ENOMEM;
                }
            }
            if (!arr)
                return -ENOMEM;
            sb_cat(&r->out, "[TOOL_CALLS]", sp, NULL);
            sb_add_json(&r->out, arr, 0);
            sb_add(&r->out, r->eos);
            cJSON_Delete(arr);
            calls_msg = i;
            n_results = 0;
        } else if (role == ROLE_ASSISTANT) {
            sb_cat(&r->out, sp, r->m[i].content, r->eos, NULL);
        } else { /* ROLE_TOOL */
            const char *id = r->o->tool_call_ids ? r->o->tool_call_ids[i] : NULL;
            if (!id || !id[0]) {
                if (n_results >= n_calls(r, calls_msg))
                    return fail(r, i, "more tool results than calls, and no tool_call_id");
                id = mistral_call_id(r, calls_msg, n_results, idbuf);
            }
            n_results++;
            cJSON *o = cJSON_CreateObject();
            cJSON *content = json_or_string(r->m[i].content);
            bool ok = o && content && cJSON_AddItemToObject(o, "content", content);
            if (!ok)
                cJSON_Delete(content); /* not owned by o */
            if (!ok || !cJSON_AddStringToObject(o, "call_id", id)) {
                cJSON_Delete(o);
                return -ENOMEM;
            }
            sb_cat(&r->out, "[TOOL_RESULTS]", sp, NULL);
            sb_add_json(&r->out, o, 0);
            sb_add(&r->out, "[/TOOL_RESULTS]");
            cJSON_Delete(o);
        }
    }
    return 0;
}

/* Llama 3 (meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json):
 *   {% set loop_messages = messages %}{% for message in loop_messages %}{% set content =
 *   '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim
 *   + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}
 *   {{ content }}{% endfor %}{% if add_generation_prompt %}{{
 *   '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
 * Llama 3.1/3.2 (meta-llama/Llama-3.2-3B-Instruct, without tools): {{- bos_token }}, then always
 *   "<|start_header_id|>system<|end_header_id|>\n\n" + "Cutting Knowledge Date: December 2023\n"
 *   + "Today Date: " + date_string + "\n\n" + system_message|trim + "<|eot_id|>"
 * with date_string defaulting to "26 Jul 2024", then the other messages as in 3.0. */
static int render_llama3(struct render *r)
{
    size_t first = 0;
    if (r->uses_tools && !(r->t->flags & ENG_CHAT_F_KNOWLEDGE_DATE))
        return fail(r, 0, "the Llama 3.0 template has no tools (3.1+ does)");
    if (r->t->flags & ENG_CHAT_F_KNOWLEDGE_DATE) {
        const char *date = r->o->date_string ? r->o->date_string : "26 Jul 2024";
        sb_cat(&r->out, r->bos, "<|start_header_id|>system<|end_header_id|>\n\n", NULL);
        if (r->tools)
            sb_add(&r->out, "Environment: ipython\n");
        sb_cat(&r->out, "Cutting Knowledge Date: December 2023\nToday Date: ", date, "\n\n", NULL);
        if (r->n && role_of(r->m[0].role) == ROLE_SYSTEM) {
            sb_add_trimmed(&r->out, r->m[0].content);
            first = 1;
        }
        sb_add(&r->out, "<|eot_id|>");
    }
    if (r->tools) {
        /* tools_in_user_message (the default): the first message after the system one,
         * whatever its role, becomes the user turn that lists the tools */
        if (first >= r->n)
            return fail(r, first, "tools need a first user message to go in (Llama 3.1+)");
        sb_add(&r->out, "<|start_header_id|>user<|end_header_id|>\n\n"
                        "Given the following functions, please respond with a JSON for a "
                        "function call with its proper arguments that best answers the given "
                        "prompt.\n\nRespond in the format {\"name\": function name, "
                        "\"parameters\": dictionary of argument name and its value}.Do not use "
                        "variables.\n\n");
        for (const cJSON *t = r->tools->child; t; t = t->next) {
            sb_add_json(&r->out, t, 4);
            sb_add(&r->out, "\n\n");
        }
        sb_add_trimmed(&r->out, r->m[first].content);
        sb_add(&r->out, "<|eot_id|>");
        first++;
    }
    for (size_t i = first; i < r->n; i++) {
        if (i == 0 && !(r->t->flags & ENG_CHAT_F_KNOWLEDGE_DATE))
            sb_add(&r->out, r->bos);
        enum role role = role_of(r->m[i].role);
        if (role == ROLE_TOOL) {
            /* the template tests `content is iterable`, true of a string: tojson quotes it */
            cJSON *c = cJSON_CreateString(r->m[i].content);
            if (!c)
                return -ENOMEM;
            sb_add(&r->out, "<|start_header_id|>ipython<|end_header_id|>\n\n");
            sb_add_json(&r->out, c, 0);
            sb_add(&r->out, "<|eot_id|>");
            cJSON_Delete(c);
        } else if (n_calls(r, i)) {
            if (n_calls(r, i) != 1)
                return fail(r, i, "Llama 3.1+ supports one tool call per message");
            sb_add(&r->out, "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"");
            sb_add_lit(&r->out, calls_of(r, i)[0].name);
            sb_add(&r->out, "\", \"parameters\": ");
            sb_add_json(&r->out, r->args[i][0], 0);
            sb_add(&r->out, "}<|eot_id|>");
        } else {
            sb_cat(&r->out, "<|start_header_id|>", r->m[i].role, "<|end_header_id|>\n\n", NULL);
            sb_add_trimmed(&r->out, r->m[i].content);
            sb_add(&r->out, "<|eot_id|>");
        }
    }
    if (r->o->add_generation_prompt)
        sb_add(&r->out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* Zephyr / TinyLlama (TinyLlama/TinyLlama-1.1B-Chat-v1.0 and HuggingFaceH4/zephyr-7b-beta
 * tokenizer_config.json), one tag per line in the template:
 *   {% for message in messages %}
 *   {% if message['role'] == 'user' %}
 *   {{ '<|user|>\n' + message['content'] + eos_token }}
 *   {% elif message['role'] == 'system' %}
 *   {{ '<|system|>\n' + message['content'] + eos_token }}
 *   {% elif message['role'] == 'assistant' %}
 *   {{ '<|assistant|>\n'  + message['content'] + eos_token }}
 *   {% endif %}
 *   {% if loop.last and add_generation_prompt %}
 *   {{ '<|assistant|>' }}
 *   {% endif %}
 *   {% endfor %}
 * trim_blocks removes the newline after each {% %} tag; the newline after each {{ }} stays. */
static int render_zephyr(struct render *r)
{
    for (size_t i = 0; i < r->n; i++)
        sb_cat(&r->out, "<|", r->m[i].role, "|>\n", r->m[i].content, r->eos, "\n", NULL);
    if (r->n && r->o->add_generation_prompt)
        sb_add(&r->out, "<|assistant|>\n");
    return 0;
}

/* Phi-3 (microsoft/Phi-3.5-mini-instruct; Phi-3-mini-4k-instruct's current template is the
 * same without the empty-system test):
 *   {% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{
 *   '<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{
 *   '<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{
 *   '<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if
 *   add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}
 * Earlier Phi-3 templates begin with {{ bos_token }} (ENG_CHAT_F_BOS_PREFIX). */
static int render_phi3(struct render *r)
{
    if (r->t->flags & ENG_CHAT_F_BOS_PREFIX)
        sb_add(&r->out, r->bos);
    for (size_t i = 0; i < r->n; i++) {
        if (role_of(r->m[i].role) == ROLE_SYSTEM && !r->m[i].content[0])
            continue;
        sb_cat(&r->out, "<|", r->m[i].role, "|>\n", r->m[i].content, "<|end|>\n", NULL);
    }
    sb_add(&r->out, r->o->add_generation_prompt ? "<|assistant|>\n" : r->eos);
    return 0;
}

/* Gemma (google/gemma-2-2b-it tokenizer_config.json):
 *   {{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not
 *   supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') !=
 *   (loop.index0 % 2 == 0) %}{{ raise_exception(...) }}{% endif %}{% if (message['role'] ==
 *   'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}
 *   {{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}
 *   {% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}
 * A leading system message is handled as Gemma 3's template does: its content + '\n\n' is
 * prefixed (untrimmed) to the first user turn. */
static int render_gemma(struct render *r)
{
    size_t first = 0;
    const char *sys = NULL;
    if (r->n && role_of(r->m[0].role) == ROLE_SYSTEM) {
        sys = r->m[0].content;
        first = 1;
    }
    int rc = check_alternation(r, first, false);
    if (rc < 0)
        return rc;
    sb_add(&r->out, r->bos);
    for (size_t i = first; i < r->n; i++) {
        bool model = role_of(r->m[i].role) == ROLE_ASSISTANT;
        sb_cat(&r->out, "<start_of_turn>", model ? "model" : r->m[i].role, "\n", NULL);
        if (i == first && sys)
            sb_cat(&r->out, sys, "\n\n", NULL);
        sb_add_trimmed(&r->out, r->m[i].content);
        sb_add(&r->out, "<end_of_turn>\n");
    }
    if (r->o->add_generation_prompt)
        sb_add(&r->out, "<start_of_turn>model\n");
    return 0;
}

static void release_tools(struct render *r)
{
    free(r->msgs_copy);
    r->msgs_copy = NULL;
    cJSON_Delete(r->tools);
    r->tools = NULL;
    if (r->args) {
        for (size_t i = 0; i < r->n; i++) {
            for (size_t k = 0; r->args[i] && k < n_calls(r, i); k++)
                cJSON_Delete(r->args[i][k]);
            free(r->args[i]);
        }
        free(r->args);
        r->args = NULL;
    }
}

/* Checks roles and content, and parses the tools and every tool call's arguments up front, so
 * a renderer only ever sees valid JSON. An assistant message with tool calls and no content
 * renders as content "". */
static int prepare_tools(struct render *r)
{
    static const char empty[] = "";
    r->uses_tools = r->o->tools != NULL;
    for (size_t i = 0; i < r->n; i++) {
        enum role role = role_of(r->m[i].role);
        if (role == ROLE_BAD)
            return fail(r, i, "role must be system, user, assistant or tool");
        if (role == ROLE_TOOL || n_calls(r, i))
            r->uses_tools = true;
        if (n_calls(r, i) && (role != ROLE_ASSISTANT || !calls_of(r, i)))
            return fail(r, i, "only assistant messages carry tool calls");
        if (!r->m[i].content && !n_calls(r, i))
            return fail(r, i, "content is missing");
    }
    if (r->uses_tools && r->t->family != ENG_CHAT_CHATML && r->t->family != ENG_CHAT_LLAMA3 &&
        !(r->t->family == ENG_CHAT_MISTRAL && (r->t->flags & ENG_CHAT_F_MISTRAL_V3)))
        return fail(r, 0,
                    "this template family has no tool support (ChatML/Qwen, Llama 3.1+ and "
                    "Mistral V3 have)");
    if (r->o->tools) {
        r->tools = cJSON_Parse(r->o->tools);
        if (!cJSON_IsArray(r->tools))
            return fail(r, 0, "tools: not a JSON array");
    }
    if (!r->uses_tools)
        return 0;
    /* content NULL with tool calls: a private copy of the messages with "" instead */
    r->args = calloc(r->n, sizeof(cJSON **));
    if (!r->args)
        return -ENOMEM;
    for (size_t i = 0; i < r->n; i++) {
        if (!n_calls(r, i))
            continue;
        r->args[i] = calloc(n_calls(r, i), sizeof(cJSON *));
        if (!r->args[i])
            return -ENOMEM;
        for (size_t k = 0; k < n_calls(r, i); k++) {
            const struct eng_chat_tool_call *c = &calls_of(r, i)[k];
            if (!c->name || !c->name[0])
                return fail(r, i, "a tool call has no function name");
            r->args[i][k] = cJSON_Parse(c->arguments ? c->arguments : "{}");
            if (!cJSON_IsObject(r->args[i][k]))
                return fail(r, i, "a tool call's arguments are not a JSON object");
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->m[i].content)
            continue;
        if (!r->msgs_copy) {
            r->msgs_copy = malloc(r->n * sizeof(*r->msgs_copy));
            if (!r->msgs_copy)
                return -ENOMEM;
            memcpy(r->msgs_copy, r->m, r->n * sizeof(*r->msgs_copy));
        }
        r->msgs_copy[i].content = empty;
    }
    if (r->msgs_copy) {
        r->m = r->msgs_copy;
        if (r->out.msgs)
            r->out.msgs = r->msgs_copy;
    }
    return 0;
}

static int (*const renderers[ENG_CHAT_FAMILY_COUNT])(struct render *) = {
    [ENG_CHAT_CHATML] = render_chatml,   [ENG_CHAT_LLAMA2] = render_llama2,
    [ENG_CHAT_LLAMA3] = render_llama3,   [ENG_CHAT_ZEPHYR] = render_zephyr,
    [ENG_CHAT_MISTRAL] = render_mistral, [ENG_CHAT_PHI3] = render_phi3,
    [ENG_CHAT_GEMMA] = render_gemma,
};

int eng_chat_render(const struct eng_chat_template *tmpl, const struct eng_chat_message *msgs,
                    size_t n_msgs, const struct eng_chat_render_opts *opts, char **ret_text,
                    size_t *ret_len, char *err, size_t err_len)
{
    return eng_chat_render_spans(tmpl, msgs, n_msgs, opts, ret_text, ret_len, NULL, NULL, err,
                                 err_len);
}

int eng_chat_render_spans(const struct eng_chat_template *tmpl, const struct eng_chat_message *msgs,
                          size_t n_msgs, const struct eng_chat_render_opts *opts, char **ret_text,
                          size_t *ret_len, struct eng_text_span **ret_spans, size_t *ret_n_spans,
                          char *err, size_t err_len)
{
    static const struct eng_chat_render_opts no_opts = {0};
    struct render r = {
        .t = tmpl,
        .m = msgs,
        .n = n_msgs,
        .o = opts ? opts : &no_opts,
        .err = err,
        .err_len = err_len,
    };
    int rc;

    *ret_text = NULL;
    if (ret_len)
        *ret_len = 0;
    if (ret_spans) {
        *ret_spans = NULL;
        *ret_n_spans = 0;
        r.out.msgs = msgs;
        r.out.n_msgs = n_msgs;
    }
    r.bos = r.o->bos_token ? r.o->bos_token : "";
    r.eos = r.o->eos_token ? r.o->eos_token : "";
    if ((unsigned)tmpl->family >= ENG_CHAT_FAMILY_COUNT) {
        if (err && err_len)
            snprintf(err, err_len, "chat template: family %d out of range", (int)tmpl->family);
        return -EINVAL;
    }
    rc = prepare_tools(&r);
    if (rc < 0)
        goto fail;
    rc = renderers[tmpl->family](&r);
    if (rc < 0)
        goto fail;
    sb_add(&r.out, ""); /* an empty conversation still yields "" */
    if (r.out.oom) {
        rc = -ENOMEM;
        if (err && err_len)
            snprintf(err, err_len, "chat template: out of memory");
        goto fail;
    }
    release_tools(&r);
    *ret_text = r.out.buf;
    if (ret_len)
        *ret_len = r.out.len;
    if (ret_spans) {
        *ret_spans = r.out.spans;
        *ret_n_spans = r.out.n_spans;
    } else {
        free(r.out.spans);
    }
    return 0;

fail:
    free(r.out.buf);
    free(r.out.spans);
    release_tools(&r);
    return rc;
}
