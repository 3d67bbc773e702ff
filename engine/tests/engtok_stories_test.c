/* stories260K: the prompts' stored prompt_ids (BOS + the model's SentencePiece tokenization) must
 * come out of eng_tokenize with add_special, and the stored generations must detokenize to the
 * stored texts (completion_text keeps the leading space; bos_greedy text drops it). */
#include "ember_test.h"

#include "engine/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = 0;
    fclose(f);
    return buf;
}

/* Streams ids through the detokenizer and compares with expect. */
static void check_detok(const struct eng_vocab *v, const cJSON *ids, unsigned flags,
                        const char *expect, const char *what)
{
    struct eng_detok d;
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    eng_detok_init(&d, v, flags);
    const cJSON *id;
    cJSON_ArrayForEach(id, ids)
    {
        CHECK_EQ_INT(eng_detok_push(&d, (int32_t)id->valueint, buf + n, cap - n - 1, &k), 0);
        n += k;
    }
    CHECK_EQ_INT(eng_detok_flush(&d, buf + n, cap - n - 1, &k), 0);
    n += k;
    buf[n] = 0;
    CHECK_MSG(!strcmp(buf, expect), "%s: got \"%s\"\nexpected \"%s\"", what, buf, expect);
    free(buf);
}

int main(void)
{
    char path[4096], err[512];
    struct eng_vocab *v = NULL;

    snprintf(path, sizeof(path), "%s/vectors/stories260K.json", et_shared_dir());
    char *json = read_all(path);
    if (!json) {
        fprintf(stderr, "skip: %s not readable\n", path);
        return ET_SKIP;
    }
    cJSON *root = cJSON_Parse(json);
    CHECK(root != NULL);
    const cJSON *models = cJSON_GetObjectItem(root, "models");
    const cJSON *model;
    int n_prompts = 0;
    cJSON_ArrayForEach(model, models)
    {
        const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(model, "file"));
        CHECK(file != NULL);
        if (!file)
            continue;
        snprintf(path, sizeof(path), "%s/models/%s", et_shared_dir(), file);
        int rc = eng_vocab_load_file(path, &v, err, sizeof(err));
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            continue;
        CHECK_EQ_INT(eng_vocab_type(v), ENG_VOCAB_SPM);
        CHECK_EQ_INT(eng_vocab_n_tokens(v), 512);
        CHECK_EQ_INT(eng_vocab_bos(v), 1);
        CHECK_EQ_INT(eng_vocab_eos(v), 2);
        CHECK(eng_vocab_add_bos(v));
        CHECK(!eng_vocab_add_eos(v));

        const cJSON *prompt;
        cJSON_ArrayForEach(prompt, cJSON_GetObjectItem(model, "prompts"))
        {
            const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(prompt, "text"));
            const cJSON *expect = cJSON_GetObjectItem(prompt, "prompt_ids");
            int32_t ids[1024];
            size_t n = 0;
            CHECK_EQ_INT(eng_tokenize(v, text, strlen(text), true, false, ids, 1024, &n), 0);
            bool same = (int)n == cJSON_GetArraySize(expect);
            for (size_t i = 0; same && i < n; i++)
                same = ids[i] == cJSON_GetArrayItem(expect, (int)i)->valueint;
            CHECK_MSG(same, "%s: prompt \"%s\" tokenized differently (%zu ids)", file, text, n);
            n_prompts++;
            check_detok(v, cJSON_GetObjectItem(prompt, "ids"), 0,
                        cJSON_GetStringValue(cJSON_GetObjectItem(prompt, "completion_text")),
                        "completion_text");
        }
        const cJSON *greedy = cJSON_GetObjectItem(model, "bos_greedy");
        check_detok(v, cJSON_GetObjectItem(greedy, "ids"), ENG_DETOK_STRIP_LEADING_SPACE,
                    cJSON_GetStringValue(cJSON_GetObjectItem(greedy, "text")), "bos_greedy");
        eng_vocab_free(v);
        v = NULL;
    }
    printf("%d prompts checked\n", n_prompts);
    CHECK(n_prompts > 0);
    cJSON_Delete(root);
    free(json);
    return et_finish();
}
