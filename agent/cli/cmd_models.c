/* `ember models list|show|rm`: the installed models of [models] dir (agent/models/registry.h),
 * read from their headers only. Whether a model is loaded is asked of a running agent over its
 * own API (GET /v1/models on [api] listen and port, one second at most); when none answers,
 * that column says "-" (null in JSON). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "engine/chat.h"
#include "log.h"
#include "registry.h"

static void models_usage(FILE *out)
{
    fprintf(out,
            "usage: ember models list [--json] [--dir DIR] [--config FILE]\n"
            "       ember models show ID [--json] [--dir DIR] [--config FILE]\n"
            "       ember models rm ID [--dir DIR] [--config FILE]\n"
            "\n"
            "The installed models: every *.gguf file in [models] dir (default\n"
            "/var/lib/ember/models) or below it, named by its path there without .gguf, plus\n"
            "the [engine] model. Only file headers are read.\n"
            "\n"
            "  list        id, architecture, quantization, parameters, size, training context,\n"
            "              and whether a running agent has it loaded; a file that cannot be\n"
            "              read is listed as broken with the loader's message\n"
            "  show ID     everything the header says, the aliases and the chat template\n"
            "  rm ID       delete the model's file (an ID or an alias)\n"
            "\n"
            "  --json          one JSON document instead of text\n"
            "  --dir DIR       the model directory (default: [models] dir)\n"
            "  --config FILE   configuration (default " EMBER_DEFAULT_CONFIG ")\n"
            "  -h, --help      this text\n"
            "\n"
            "Models are downloaded with `ember pull` (docs/models.md).\n"
            "Exit codes: 0 ok, 1 the model or directory cannot be read or removed, 2 usage error\n"
            "or unknown ID.\n");
}

struct models_opts {
    bool json;
    const char *dir, *config;
    const char *id;
};

static int parse_opts(int argc, char **argv, bool want_id, struct models_opts *o)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'j':
            o->json = true;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'h':
            models_usage(stdout);
            return -1;
        default:
            return cli_option_error(opt, argv);
        }
    }
    if (want_id) {
        if (optind >= argc)
            return cli_usage_error("say which model (an id from 'ember models list')");
        o->id = argv[optind++];
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* The registry the configuration (and --dir) describes; logs and returns an exit code. */
static int open_registry(const struct models_opts *o, struct agent_config *cfg,
                         struct agent_models **ret)
{
    int rc = agent_config_load_for_cli(o->config, cfg);
    if (rc)
        return rc;
    if (o->dir) {
        if (strlen(o->dir) >= sizeof(cfg->models.dir))
            return cli_usage_error("--dir: path too long");
        snprintf(cfg->models.dir, sizeof(cfg->models.dir), "%s", o->dir);
    }
    char err[512] = "";
    rc = agent_models_open_config(cfg, ret, err, sizeof(err));
    if (rc == -EINVAL) {
        log_err("%s", err);
        return EMBER_EXIT_USAGE;
    }
    if (rc < 0) {
        log_err("%s", err[0] ? err : strerror(-rc));
        return EMBER_EXIT_FAILURE;
    }
    if (access(cfg->models.dir, F_OK) != 0 && o->dir)
        log_warn("%s: %s", cfg->models.dir, strerror(errno));
    return 0;
}

/* What every sub-command starts with: its options, then the registry. Returns 0 to go on, -1
 * when --help was printed (exit 0), else the exit code (after a message). */
static int models_begin(int argc, char **argv, bool want_id, bool json_ok, struct models_opts *o,
                        struct agent_config *cfg, struct agent_models **ret)
{
    int rc = parse_opts(argc, argv, want_id, o);
    if (rc)
        return rc;
    if (o->json && !json_ok)
        return cli_usage_error("%s takes no --json", argv[0]);
    return open_registry(o, cfg, ret);
}

/* ---- what a running agent has loaded ---- */

struct body {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    struct body *b = user;
    size_t add = size * n;
    if (b->len + add > (1u << 22))
        return 0; /* no model list is this long */
    char *grown = realloc(b->data, b->len + add + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, p, add);
    b->len += add;
    grown[b->len] = '\0';
    b->data = grown;
    return add;
}

/* The agent's GET /v1/models as parsed JSON, or NULL when no agent answers. */
static cJSON *agent_models_json(const struct agent_config *cfg)
{
    if (!cfg->api.enabled)
        return NULL;
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    char url[256];
    const char *host = cfg->api.listen;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    bool v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof(url), "http://%s%s%s:%d/v1/models", v6 ? "[" : "", host, v6 ? "]" : "",
             cfg->api.port);
    struct body b = {0};
    struct curl_slist *hdr = NULL;
    char auth[CFG_STR_SMALL + 32];
    if (cfg->api.bearer_token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->api.bearer_token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    long status = 0;
    cJSON *json = NULL;
    if (curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200 &&
        b.data)
        json = cJSON_Parse(b.data);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    free(b.data);
    return json;
}

/* 1 loaded, 0 not, -1 unknown (no agent answered). */
static int loaded_state(const cJSON *agent, const char *id)
{
    if (!agent)
        return -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(agent, "data"))
    {
        const char *mid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "id"));
        if (mid && strcmp(mid, id) == 0)
            return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "loaded")) ? 1 : 0;
    }
    return 0;
}

/* ---- formatting ---- */

static void human_count(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000000ull)
        snprintf(buf, len, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, len, "%.1fM", (double)n / 1e6);
    else if (n >= 1000ull)
        snprintf(buf, len, "%.1fK", (double)n / 1e3);
    else
        snprintf(buf, len, "%llu", (unsigned long long)n);
}

static void human_bytes(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000000ull)
        snprintf(buf, len, "%.2f GB", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, len, "%.1f MB", (double)n / 1e6);
    else
        snprintf(buf, len, "%.1f kB", (double)n / 1e3);
}

static cJSON *entry_json(struct agent_models *m, const struct agent_model_entry *e, int loaded)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", e->id);
    cJSON_AddStringToObject(o, "path", e->path);
    cJSON_AddStringToObject(o, "status", e->ok ? "ok" : "broken");
    if (!e->ok)
        cJSON_AddStringToObject(o, "error", e->error);
    cJSON_AddNumberToObject(o, "size_bytes", (double)e->file_bytes);
    if (e->ok) {
        cJSON_AddStringToObject(o, "architecture", e->info.arch);
        cJSON_AddStringToObject(o, "quantization", e->info.file_type);
        cJSON_AddNumberToObject(o, "parameters", (double)e->info.n_params);
        cJSON_AddNumberToObject(o, "context_length", e->info.n_ctx_train);
    }
    if (loaded < 0)
        cJSON_AddNullToObject(o, "loaded");
    else
        cJSON_AddBoolToObject(o, "loaded", loaded);
    char aliases[512];
    agent_models_aliases_of(m, e->id, aliases, sizeof(aliases));
    cJSON *arr = cJSON_AddArrayToObject(o, "aliases");
    for (char *save = NULL, *t = strtok_r(aliases, " ", &save); t; t = strtok_r(NULL, " ", &save))
        cJSON_AddItemToArray(arr, cJSON_CreateString(t));
    if (e->outside)
        cJSON_AddBoolToObject(o, "engine_model", true);
    return o;
}

static int print_json(cJSON *o)
{
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) {
        log_err("out of memory");
        return EMBER_EXIT_FAILURE;
    }
    puts(text);
    free(text);
    return EMBER_EXIT_OK;
}

/* ---- sub-commands ---- */

static int models_list(int argc, char **argv)
{
    struct models_opts o;
    struct agent_config cfg;
    struct agent_models *m = NULL;
    int rc = models_begin(argc, argv, false, true, &o, &cfg, &m);
    if (rc)
        return rc < 0 ? EMBER_EXIT_OK : rc;
    cJSON *agent = agent_models_json(&cfg);
    size_t n = agent_models_count(m);
    if (o.json) {
        cJSON *arr = cJSON_CreateArray();
        struct agent_model_entry e;
        for (size_t i = 0; agent_models_get(m, i, &e) == 0; i++)
            cJSON_AddItemToArray(arr, entry_json(m, &e, loaded_state(agent, e.id)));
        cJSON_Delete(agent);
        agent_models_free(m);
        return print_json(arr);
    }
    if (n == 0) {
        printf("no models in %s (ember pull URL downloads one)\n",
               cfg.models.dir[0] ? cfg.models.dir : "(no directory)");
    } else {
        printf("%-32s %-7s %-7s %8s %10s %7s %s\n", "ID", "ARCH", "QUANT", "PARAMS", "SIZE",
               "CONTEXT", "LOADED");
        struct agent_model_entry e;
        for (size_t i = 0; agent_models_get(m, i, &e) == 0; i++) {
            char size[32], params[32];
            human_bytes(e.file_bytes, size, sizeof(size));
            int loaded = loaded_state(agent, e.id);
            if (!e.ok) {
                printf("%-32s broken: %s\n", e.id, e.error);
                continue;
            }
            human_count(e.info.n_params, params, sizeof(params));
            printf("%-32s %-7s %-7s %8s %10s %7d %s\n", e.id, e.info.arch, e.info.file_type, params,
                   size, e.info.n_ctx_train,
                   loaded < 0 ? "-"
                   : loaded   ? "yes"
                              : "no");
        }
        if (!agent)
            printf("(no agent answered on %s:%d: LOADED unknown)\n", cfg.api.listen, cfg.api.port);
    }
    cJSON_Delete(agent);
    agent_models_free(m);
    return EMBER_EXIT_OK;
}

static int find_or_fail(struct agent_models *m, const char *id, struct agent_model_entry *e)
{
    if (agent_models_find(m, id, e) == 0)
        return 0;
    log_err("no model '%s' (ember models list shows the installed ones)", id);
    return EMBER_EXIT_USAGE;
}

static int models_show(int argc, char **argv)
{
    struct models_opts o;
    struct agent_config cfg;
    struct agent_models *m = NULL;
    int rc = models_begin(argc, argv, true, true, &o, &cfg, &m);
    if (rc)
        return rc < 0 ? EMBER_EXIT_OK : rc;
    struct agent_model_entry e;
    rc = find_or_fail(m, o.id, &e);
    if (rc) {
        agent_models_free(m);
        return rc;
    }
    char *tmpl = NULL, err[512] = "";
    if (e.ok)
        eng_chat_template_read(e.path, &tmpl, err, sizeof(err));
    cJSON *agent = agent_models_json(&cfg);
    int loaded = loaded_state(agent, e.id);
    cJSON_Delete(agent);
    if (o.json) {
        cJSON *obj = entry_json(m, &e, loaded);
        if (e.ok) {
            cJSON_AddStringToObject(obj, "name", e.info.name);
            cJSON_AddNumberToObject(obj, "embedding_length", e.info.n_embd);
            cJSON_AddNumberToObject(obj, "block_count", e.info.n_layer);
            cJSON_AddNumberToObject(obj, "head_count", e.info.n_head);
            cJSON_AddNumberToObject(obj, "head_count_kv", e.info.n_head_kv);
            cJSON_AddNumberToObject(obj, "feed_forward_length", e.info.n_ff);
            cJSON_AddNumberToObject(obj, "vocab_size", e.info.n_vocab);
            cJSON_AddNumberToObject(obj, "rope_freq_base", e.info.rope_freq_base);
            cJSON_AddNumberToObject(obj, "weight_bytes", (double)e.info.weight_bytes);
            if (tmpl)
                cJSON_AddStringToObject(obj, "chat_template", tmpl);
            else
                cJSON_AddNullToObject(obj, "chat_template");
        }
        free(tmpl);
        agent_models_free(m);
        return print_json(obj);
    }
    char aliases[512], size[32], params[32];
    agent_models_aliases_of(m, e.id, aliases, sizeof(aliases));
    human_bytes(e.file_bytes, size, sizeof(size));
    printf("id             %s\n", e.id);
    printf("file           %s%s\n", e.path, e.outside ? "  ([engine] model)" : "");
    if (aliases[0])
        printf("aliases        %s\n", aliases);
    printf("size           %s (%llu bytes)\n", size, (unsigned long long)e.file_bytes);
    printf("loaded         %s\n", loaded < 0 ? "- (no agent answered)" : loaded ? "yes" : "no");
    if (!e.ok) {
        printf("status         broken: %s\n", e.error);
    } else {
        human_count(e.info.n_params, params, sizeof(params));
        printf("name           %s\n", e.info.name[0] ? e.info.name : "-");
        printf("architecture   %s\n", e.info.arch);
        printf("quantization   %s\n", e.info.file_type);
        printf("parameters     %s (%llu)\n", params, (unsigned long long)e.info.n_params);
        printf("context        %d tokens (training)\n", e.info.n_ctx_train);
        printf("layers         %d, embedding %d, heads %d (kv %d), feed-forward %d\n",
               e.info.n_layer, e.info.n_embd, e.info.n_head, e.info.n_head_kv, e.info.n_ff);
        printf("vocabulary     %d tokens\n", e.info.n_vocab);
        printf("rope base      %g\n", (double)e.info.rope_freq_base);
        if (tmpl)
            printf("chat template\n%s\n", tmpl);
        else
            printf("chat template  none in the file (ChatML is used)%s%s\n", err[0] ? ": " : "",
                   err);
    }
    free(tmpl);
    agent_models_free(m);
    return EMBER_EXIT_OK;
}

static int models_rm(int argc, char **argv)
{
    struct models_opts o;
    struct agent_config cfg;
    struct agent_models *m = NULL;
    int rc = models_begin(argc, argv, true, false, &o, &cfg, &m);
    if (rc)
        return rc < 0 ? EMBER_EXIT_OK : rc;
    struct agent_model_entry e;
    rc = find_or_fail(m, o.id, &e);
    agent_models_free(m);
    if (rc)
        return rc;
    if (e.outside) {
        log_err("'%s' is the [engine] model %s, not a file of the model directory; change the "
                "configuration instead",
                e.id, e.path);
        return EMBER_EXIT_FAILURE;
    }
    if (unlink(e.path) < 0) {
        log_err("%s: %s", e.path, strerror(errno));
        return EMBER_EXIT_FAILURE;
    }
    printf("removed %s (%s)\n", e.id, e.path);
    return EMBER_EXIT_OK;
}

int cmd_models(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } subs[] = {
        {"list", models_list}, {"ls", models_list}, {"show", models_show}, {"rm", models_rm}};
    if (argc < 2)
        return cli_usage_error("say what to do: list, show ID or rm ID");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        models_usage(stdout);
        return EMBER_EXIT_OK;
    }
    for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
        if (strcmp(argv[1], subs[k].name) == 0) {
            char name[32];
            snprintf(name, sizeof(name), "models %s", subs[k].name);
            agent_log_set_command(name);
            return subs[k].run(argc - 1, argv + 1);
        }
    return cli_usage_error("unknown sub-command '%s' (list, show, rm)", argv[1]);
}
