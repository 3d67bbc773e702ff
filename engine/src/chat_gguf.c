/* Reading a model's Jinja chat template (tokenizer.chat_template) straight from its GGUF file,
 * so a caller holding only a path can pick the template family before or without loading the
 * model. Only the header and metadata are parsed; tensor data is not touched. */
#include "engine/chat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

int eng_chat_template_read(const char *gguf_path, char **ret_jinja, char *err, size_t err_len)
{
    struct gguf_file *f = NULL;
    const char *t = NULL;
    *ret_jinja = NULL;
    int rc = gguf_open(gguf_path, &f, err, err_len);
    if (rc < 0)
        return rc;
    rc = gguf_get_str(f, "tokenizer.chat_template", &t);
    if (rc == -ENOENT) {
        rc = 0; /* no template: the caller falls back */
    } else if (rc < 0) {
        if (err && err_len)
            snprintf(err, err_len, "%s: tokenizer.chat_template: not a string", gguf_path);
    } else {
        *ret_jinja = strdup(t);
        if (!*ret_jinja)
            rc = -ENOMEM;
    }
    gguf_close(f);
    return rc;
}
