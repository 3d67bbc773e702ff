/* The model directory registry (agent/models/registry.h) on a temporary directory holding the
 * shared stories260K files (F32 and Q8_0, one in a subdirectory), a hidden partial download, a
 * file of garbage, a truncated copy and a non-GGUF name: ids, metadata read from the headers,
 * broken files with the loader's own message, aliases, the [engine] model in and outside the
 * directory, and rescans that see files come and go. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ember_test.h"
#include "registry.h"

static char tmp[PATH_MAX];

static int copy_file(const char *from, const char *to, long limit)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return -1;
    }
    char buf[65536];
    size_t n;
    long total = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (limit >= 0 && total + (long)n > limit)
            n = (size_t)(limit - total);
        fwrite(buf, 1, n, out);
        total += (long)n;
        if (limit >= 0 && total >= limit)
            break;
    }
    fclose(in);
    return fclose(out);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void path_in(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", tmp, rel);
}

static void test_scan(const char *f32, const char *q8)
{
    char p[PATH_MAX + 64];
    path_in(p, sizeof(p), "stories260K.gguf");
    CHECK_EQ_INT(copy_file(f32, p, -1), 0);
    path_in(p, sizeof(p), "sub");
    mkdir(p, 0755);
    path_in(p, sizeof(p), "sub/stories260K-Q8_0.GGUF");
    CHECK_EQ_INT(copy_file(q8, p, -1), 0);
    path_in(p, sizeof(p), ".stories260K-F16.gguf.part"); /* a download in progress */
    CHECK_EQ_INT(copy_file(f32, p, 1000), 0);
    path_in(p, sizeof(p), "garbage.gguf");
    write_text(p, "this is not a model\n");
    path_in(p, sizeof(p), "truncated.gguf");
    CHECK_EQ_INT(copy_file(q8, p, 200000), 0);
    path_in(p, sizeof(p), "notes.txt");
    write_text(p, "not listed\n");

    struct agent_models *m = NULL;
    char err[512] = "";
    CHECK_EQ_INT(
        agent_models_new(tmp, "small=sub/stories260K-Q8_0 tiny=stories260K", &m, err, sizeof(err)),
        0);
    if (!m)
        return;
    CHECK_EQ_INT(agent_models_scan(m, err, sizeof(err)), 0);
    CHECK_EQ_INT(agent_models_count(m), 4);
    struct agent_model_entry e;
    /* sorted by id */
    CHECK_EQ_INT(agent_models_get(m, 0, &e), 0);
    CHECK_STR(e.id, "garbage");
    CHECK(!e.ok);
    CHECK_CONTAINS(e.error, "garbage.gguf");
    CHECK_EQ_INT(agent_models_get(m, 1, &e), 0);
    CHECK_STR(e.id, "stories260K");
    CHECK(e.ok);
    CHECK_STR(e.info.arch, "llama");
    CHECK_STR(e.info.file_type, "F32");
    CHECK(e.info.n_params > 200000 && e.info.n_params < 400000);
    CHECK(e.info.n_ctx_train > 0);
    CHECK(e.info.n_vocab == 512);
    CHECK(e.file_bytes > 1000000);
    CHECK_EQ_INT(agent_models_get(m, 2, &e), 0);
    CHECK_STR(e.id, "sub/stories260K-Q8_0");
    CHECK(e.ok);
    CHECK_STR(e.info.file_type, "Q8_0");
    CHECK_EQ_INT(agent_models_get(m, 3, &e), 0);
    CHECK_STR(e.id, "truncated");
    CHECK(!e.ok);
    CHECK_MSG(e.error[0] != '\0', "a truncated file says why");
    CHECK_EQ_INT(agent_models_get(m, 4, &e), -ENOENT);

    /* aliases and ids */
    CHECK_EQ_INT(agent_models_find(m, "small", &e), 0);
    CHECK_STR(e.id, "sub/stories260K-Q8_0");
    CHECK_EQ_INT(agent_models_find(m, "tiny", &e), 0);
    CHECK_STR(e.id, "stories260K");
    CHECK_EQ_INT(agent_models_find(m, "stories260K", &e), 0);
    CHECK_EQ_INT(agent_models_find(m, "nope", &e), -ENOENT);
    char aliases[128];
    agent_models_aliases_of(m, "stories260K", aliases, sizeof(aliases));
    CHECK_STR(aliases, "tiny");

    /* a rescan sees a file go and another come; an unchanged one is not probed again */
    path_in(p, sizeof(p), "garbage.gguf");
    CHECK_EQ_INT(unlink(p), 0);
    path_in(p, sizeof(p), "sub/deeper");
    mkdir(p, 0755);
    path_in(p, sizeof(p), "sub/deeper/again.gguf");
    CHECK_EQ_INT(copy_file(q8, p, -1), 0);
    CHECK_EQ_INT(agent_models_scan(m, err, sizeof(err)), 0);
    CHECK_EQ_INT(agent_models_count(m), 4);
    CHECK_EQ_INT(agent_models_find(m, "garbage", &e), -ENOENT);
    CHECK_EQ_INT(agent_models_find(m, "sub/deeper/again", &e), 0);
    CHECK(e.ok);
    agent_models_free(m);

    /* bad aliases are refused with the reason */
    m = NULL;
    CHECK_EQ_INT(agent_models_new(tmp, "x=", &m, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "NAME=ID");
    CHECK_EQ_INT(agent_models_new(tmp, "a=b a=c", &m, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "twice");
    CHECK_EQ_INT(agent_models_new(tmp, "sp@ce=b", &m, err, sizeof(err)), -EINVAL);
    CHECK(m == NULL);
}

static void test_engine_model(const char *f32)
{
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    snprintf(cfg.models.dir, sizeof(cfg.models.dir), "%s", tmp);
    /* outside the directory: listed under its configured id */
    snprintf(cfg.engine.model, sizeof(cfg.engine.model), "%s", f32);
    snprintf(cfg.api.model_name, sizeof(cfg.api.model_name), "main");
    struct agent_models *m = NULL;
    char err[512] = "";
    CHECK_EQ_INT(agent_models_open_config(&cfg, &m, err, sizeof(err)), 0);
    if (!m)
        return;
    struct agent_model_entry e;
    CHECK_EQ_INT(agent_models_find(m, "main", &e), 0);
    CHECK(e.engine && e.outside && e.ok);
    CHECK_EQ_INT(agent_models_find(m, "stories260K", &e), 0);
    CHECK(!e.engine);
    agent_models_free(m);

    /* inside: one entry, under the configured id, the directory name an alias */
    snprintf(cfg.engine.model, sizeof(cfg.engine.model), "%s/stories260K.gguf", tmp);
    size_t before;
    m = NULL;
    CHECK_EQ_INT(agent_models_open_config(&cfg, &m, err, sizeof(err)), 0);
    if (!m)
        return;
    before = agent_models_count(m);
    CHECK_EQ_INT(agent_models_find(m, "main", &e), 0);
    CHECK(e.engine && !e.outside);
    CHECK_EQ_INT(agent_models_find(m, "stories260K", &e), 0);
    CHECK_STR(e.id, "main");
    CHECK_EQ_INT(before, 4);
    agent_models_free(m);

    /* no directory at all: only the [engine] model, and no error */
    snprintf(cfg.models.dir, sizeof(cfg.models.dir), "%s/does-not-exist", tmp);
    m = NULL;
    CHECK_EQ_INT(agent_models_open_config(&cfg, &m, err, sizeof(err)), 0);
    if (m)
        CHECK_EQ_INT(agent_models_count(m), 1);
    agent_models_free(m);

    char id[128];
    cfg.api.model_name[0] = '\0';
    snprintf(cfg.engine.model, sizeof(cfg.engine.model), "/x/y/Model-Q4_0.gguf");
    agent_models_engine_id(&cfg, id, sizeof(id));
    CHECK_STR(id, "Model-Q4_0");
}

int main(void)
{
    char f32[PATH_MAX], q8[PATH_MAX];
    snprintf(f32, sizeof(f32), "%s/models/stories260K.gguf", et_shared_dir());
    snprintf(q8, sizeof(q8), "%s/models/stories260K-q8_0.gguf", et_shared_dir());
    if (access(f32, R_OK) != 0 || access(q8, R_OK) != 0) {
        printf("skip: %s or %s missing\n", f32, q8);
        return ET_SKIP;
    }
    snprintf(tmp, sizeof(tmp), "/tmp/ember-models-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_scan(f32, q8);
    test_engine_model(f32);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return et_finish();
}
