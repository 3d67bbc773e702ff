/* Fuzz harness for the chat-template renderer with hostile messages: the input is split into up
 * to 8 messages (a 0x1e byte separates them; the first byte of each picks its role), rendered by
 * every family with content spans, and tokenized with the Qwen3 vocabulary (ChatML control
 * tokens) when the shared folder has it. The spans must be ascending, disjoint, inside the text
 * and made only of message bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct eng_vocab *vocab(void)
{
    static int tried;
    static struct eng_model *m;
    if (!tried) {
        tried = 1;
        const char *dir = getenv("EMBER_SHARED_DIR");
        char path[1024];
        snprintf(path, sizeof(path), "%s/vectors/tokenizer/ggml-vocab-qwen3.gguf",
                 dir && *dir ? dir : EMBER_SHARED_DIR);
        struct eng_model_params mp;
        eng_model_params_defaults(&mp);
        mp.vocab_only = 1;
        char err[256];
        if (eng_model_load(path, &mp, &m, err, sizeof(err)) < 0)
            m = NULL;
    }
    return m ? eng_model_vocab(m) : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const roles[] = {"system", "user", "assistant", "user"};
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    struct eng_chat_message msgs[8];
    size_t n = 0;
    char *p = copy;
    while (n < 8) {
        char *sep = strchr(p, 0x1e);
        if (sep)
            *sep = '\0';
        msgs[n].role = roles[(unsigned char)p[0] % 4];
        msgs[n].content = p[0] ? p + 1 : p;
        n++;
        if (!sep)
            break;
        p = sep + 1;
    }
    struct eng_chat_render_opts o = {.add_generation_prompt = size % 2 == 0,
                                     .bos_token = "<s>",
                                     .eos_token = "</s>",
                                     .disable_thinking = size % 3 == 0};
    const struct eng_vocab *v = vocab();
    for (int f = 0; f < ENG_CHAT_FAMILY_COUNT; f++) {
        struct eng_chat_template t = {.family = (enum eng_chat_family)f,
                                      .flags = (unsigned)size & 7};
        char *out = NULL, err[128];
        struct eng_text_span *spans = NULL;
        size_t len = 0, ns = 0;
        if (eng_chat_render_spans(&t, msgs, n, &o, &out, &len, &spans, &ns, err, sizeof(err)) != 0)
            continue;
        size_t prev_end = 0;
        for (size_t i = 0; i < ns; i++) {
            if (spans[i].len == 0 || spans[i].off < prev_end || spans[i].off + spans[i].len > len)
                abort();
            prev_end = spans[i].off + spans[i].len;
        }
        if (v) {
            static int32_t toks[1 << 16];
            size_t nt = 0;
            int rc = eng_tokenize_spans(v, out, len, true, spans, ns, toks, 1 << 16, &nt);
            if (rc != 0 && rc != -ENOSPC)
                abort();
        }
        free(out);
        free(spans);
    }
    free(copy);
    return 0;
}
