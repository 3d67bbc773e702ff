/* Fuzz harness for chat templates: the input is a Jinja template (detection and the default
 * system prompt extraction read it), and its text is also used as message content rendered by
 * every family, so odd bytes reach both the scanner and the renderers. */
#include "engine/chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct eng_chat_template tm;
    bool warn;
    eng_chat_template_detect(text, &tm, &warn);
    if (strlen(tm.default_system) >= sizeof(tm.default_system))
        abort();

    const struct eng_chat_message msgs[] = {
        {"system", text}, {"user", text}, {"assistant", text}, {"user", "x"}};
    struct eng_chat_render_opts o = {.add_generation_prompt = size % 2 == 0,
                                     .bos_token = "<s>",
                                     .eos_token = "</s>",
                                     .disable_thinking = size % 3 == 0};
    for (int f = 0; f <= ENG_CHAT_FAMILY_COUNT; f++) {
        struct eng_chat_template t = tm;
        if (f < ENG_CHAT_FAMILY_COUNT)
            t.family = (enum eng_chat_family)f;
        t.flags = f < ENG_CHAT_FAMILY_COUNT ? (unsigned)(size & 7) : tm.flags;
        char *out = NULL, err[128];
        if (eng_chat_render(&t, msgs, 4, &o, &out, NULL, err, sizeof(err)) == 0 && !out)
            abort();
        free(out);
    }
    free(text);
    return 0;
}
