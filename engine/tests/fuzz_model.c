/* libFuzzer harness for model loading: the input is written to a memfd and loaded as a model
 * file, so the GGUF parser, hyper-parameter resolution and every tensor presence/type/shape check
 * see it; a model that loads is run for two tokens in a small context, so a shape the checks let
 * through cannot make the forward pass read out of bounds. */
#include "engine/engine.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_model", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[512];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct eng_model *m = NULL;
    if (eng_model_load(path, NULL, &m, err, sizeof(err)) == 0) {
        struct eng_context_params cp;
        eng_context_params_defaults(&cp);
        cp.n_ctx = 8;
        cp.n_threads = 1;
        struct eng_context *c = NULL;
        if (eng_context_new(m, &cp, &c, err, sizeof(err)) == 0) {
            int32_t toks[2] = {0, 1};
            struct eng_model_info info;
            eng_model_info(m, &info);
            if (info.n_vocab > 1 && eng_decode(c, toks, 2) == 0) {
                volatile float sink = eng_get_logits(c)[info.n_vocab - 1];
                (void)sink;
            }
        }
        eng_context_free(c);
    }
    eng_model_free(m);
    close(fd);
    return 0;
}
