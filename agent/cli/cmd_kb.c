/* `ember kb import|query|eval|stats`: builds and inspects the knowledge plugin's database
 * (plugins/knowledge/kb.h). The database is --db FILE, else [plugin.knowledge] database of the
 * configuration, else STATE_DIR/knowledge.db. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/timeutil.h"
#include "config.h"
#include "kb.h"
#include "log.h"

static const char kb_help[] =
    "usage: ember kb import [--db FILE] FILE...     add JSONL and Markdown files\n"
    "       ember kb query  [--db FILE] [-k N] TEXT  the entries a question retrieves\n"
    "       ember kb eval   [--db FILE] [-k N] [--min RATE] QUESTIONS.jsonl\n"
    "       ember kb stats  [--db FILE]              what the database holds\n"
    "\n"
    "The knowledge plugin's database (docs/plugins.md). --db FILE, else [plugin.knowledge]\n"
    "database of --config FILE (default " EMBER_DEFAULT_CONFIG "), else STATE_DIR/knowledge.db.\n"
    "'ember kb COMMAND --help' says more about each.\n";

static const char import_help[] =
    "usage: ember kb import [--db FILE] [--config FILE] FILE...\n"
    "\n"
    "Adds files to the knowledge base (created when missing), by extension:\n"
    "  .jsonl  one JSON object per line:\n"
    "          {\"type\":\"doc\",\"id\":ID,\"text\":TEXT[,\"title\":T][,\"entities\":[NAME...]]}\n"
    "          {\"type\":\"qa\",\"id\":ID,\"question\":Q,\"answer\":A[,\"entities\":[...]]}\n"
    "          {\"type\":\"relation\",\"subject\":NAME,\"predicate\":P,\"object\":NAME}\n"
    "          an entry replaces the one with the same id.\n"
    "  .md     one entry per heading's section, id BASENAME#anchor (long sections are split\n"
    "          into #anchor~2, ...); `code spans` become the entities a section mentions;\n"
    "          re-importing a file replaces what it gave before.\n"
    "All files go in one transaction: any bad line (reported as FILE:LINE: reason) imports\n"
    "nothing. Exit codes: 0 imported, 1 I/O or database error, 2 bad input or arguments.\n";

static const char query_help[] =
    "usage: ember kb query [--db FILE] [--config FILE] [-k N] [--text] QUESTION...\n"
    "\n"
    "Prints the N (default 3, at most 16) entries the knowledge plugin would add to a request\n"
    "with this question: rank, score, id, title ('+graph' when the entity hop found or lifted\n"
    "it); --text prints each entry's text too.\n";

static const char eval_help[] =
    "usage: ember kb eval [--db FILE] [--config FILE] [-k N] [--min RATE] QUESTIONS.jsonl\n"
    "\n"
    "Retrieval hit rate@N (default N 3): each line {\"question\":Q,\"expect\":[ID...]} is a hit\n"
    "when one of the first N entries retrieved is one of the expected ids (or a ~2, ~3 part of\n"
    "it). Prints every miss, the hit rate and the retrieval time per question. With --min\n"
    "RATE (0..1), exits 1 when the hit rate is below it.\n";

static const char stats_help[] = "usage: ember kb stats [--db FILE] [--config FILE]\n"
                                 "\n"
                                 "Counts of passages, Q&A pairs, entities, relations and "
                                 "mentions.\n";

struct kb_opts {
    const char *db;
    const char *config;
    int k;
    double min_rate;
    bool text;
};

/* --db, else the plugin's configured database, else STATE_DIR/knowledge.db. */
static int resolve_db(const struct kb_opts *o, char *out, size_t cap)
{
    if (o->db) {
        snprintf(out, cap, "%s", o->db);
        return 0;
    }
    struct agent_config cfg;
    int rc = agent_config_load_for_cli(o->config, &cfg);
    if (rc)
        return rc;
    snprintf(out, cap, "%s/knowledge.db", cfg.agent.state_dir);
    for (size_t i = 0; i < cfg.plugins.n_settings; i++)
        if (strcmp(cfg.plugins.settings[i].section, "plugin.knowledge") == 0 &&
            strcmp(cfg.plugins.settings[i].key, "database") == 0)
            snprintf(out, cap, "%s", cfg.plugins.settings[i].value);
    return 0;
}

static int open_db(const struct kb_opts *o, bool read_only, struct kb **ret)
{
    char path[1024], err[1024];
    int rc = resolve_db(o, path, sizeof(path));
    if (rc)
        return rc;
    rc = kb_open(path, read_only, ret, err, sizeof(err));
    if (rc < 0) {
        log_err("%s", err);
        if (rc == -ENOENT)
            agent_log_hint("build it with 'ember kb import --db %s FILE...'", path);
        return rc == -ENOENT || rc == -EINVAL ? EMBER_EXIT_USAGE : EMBER_EXIT_FAILURE;
    }
    return 0;
}

static int kb_import(const struct kb_opts *o, int argc, char **argv)
{
    if (argc == 0)
        return cli_usage_error("name the files to import (.jsonl, .md)");
    struct kb *kb;
    int rc = open_db(o, false, &kb);
    if (rc)
        return rc;
    char err[1024];
    if (kb_begin(kb, err, sizeof(err)) < 0) {
        log_err("%s", err);
        kb_close(kb);
        return EMBER_EXIT_FAILURE;
    }
    struct kb_import_stats total = {0};
    for (int i = 0; i < argc; i++) {
        struct kb_import_stats st = {0};
        rc = kb_import_file(kb, argv[i], &st, err, sizeof(err));
        if (rc < 0) {
            kb_rollback(kb);
            kb_close(kb);
            log_err("%s", err);
            log_err("nothing was imported (the import is all or nothing)");
            return rc == -EINVAL || rc == -ENOENT ? EMBER_EXIT_USAGE : EMBER_EXIT_FAILURE;
        }
        printf("%s: %zu passages, %zu Q&A pairs, %zu relations\n", argv[i], st.entries, st.qa,
               st.relations);
        total.entries += st.entries;
        total.qa += st.qa;
        total.relations += st.relations;
        total.entities += st.entities;
    }
    if (kb_commit(kb, err, sizeof(err)) < 0) {
        kb_rollback(kb);
        kb_close(kb);
        log_err("commit: %s; nothing was imported", err);
        return EMBER_EXIT_FAILURE;
    }
    printf("imported %zu passages, %zu Q&A pairs, %zu relations, %zu new entities\n", total.entries,
           total.qa, total.relations, total.entities);
    kb_close(kb);
    return EMBER_EXIT_OK;
}

static int kb_query(const struct kb_opts *o, int argc, char **argv)
{
    if (argc == 0)
        return cli_usage_error("give a question");
    char q[4096] = "";
    size_t at = 0;
    for (int i = 0; i < argc && at < sizeof(q); i++)
        at += (size_t)snprintf(q + at, sizeof(q) - at, "%s%s", i ? " " : "", argv[i]);
    struct kb *kb;
    int rc = open_db(o, true, &kb);
    if (rc)
        return rc;
    struct kb_hit hits[16];
    size_t n = 0;
    uint64_t t0 = cmn_now_ns();
    rc = kb_search(kb, q, (size_t)o->k, hits, &n);
    double ms = (double)(cmn_now_ns() - t0) / 1e6;
    if (rc < 0) {
        log_err("retrieval failed: %s", strerror(-rc));
        kb_close(kb);
        return EMBER_EXIT_FAILURE;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%zu  %7.3f  %s  %s%s\n", i + 1, hits[i].score, hits[i].key, hits[i].title,
               hits[i].via_graph ? "  +graph" : "");
        if (o->text)
            printf("%s\n\n", hits[i].body);
    }
    if (n == 0)
        printf("(no entry matches)\n");
    fprintf(stderr, "retrieved %zu in %.2f ms\n", n, ms);
    kb_hits_free(hits, n);
    kb_close(kb);
    return EMBER_EXIT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int kb_eval(const struct kb_opts *o, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage_error("name one questions file (.jsonl)");
    FILE *f = fopen(argv[0], "r");
    if (!f) {
        log_err("%s: %s", argv[0], strerror(errno));
        return EMBER_EXIT_USAGE;
    }
    struct kb *kb;
    int rc = open_db(o, true, &kb);
    if (rc) {
        fclose(f);
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0, total = 0, hit = 0;
    double *ms = NULL;
    int exit_code = EMBER_EXIT_OK;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        cJSON *j = cJSON_Parse(line);
        const char *q = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "question"));
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(j, "expect");
        if (!q || !cJSON_IsArray(expect) || cJSON_GetArraySize(expect) == 0) {
            log_err("%s:%u: want {\"question\": TEXT, \"expect\": [ID, ...]}", argv[0], lineno);
            cJSON_Delete(j);
            exit_code = EMBER_EXIT_USAGE;
            break;
        }
        struct kb_hit hits[16];
        size_t n = 0;
        uint64_t t0 = cmn_now_ns();
        rc = kb_search(kb, q, (size_t)o->k, hits, &n);
        double *grown = realloc(ms, (total + 1) * sizeof(*ms));
        if (!grown || rc < 0) {
            log_err("retrieval failed");
            cJSON_Delete(j);
            exit_code = EMBER_EXIT_FAILURE;
            break;
        }
        ms = grown;
        ms[total] = (double)(cmn_now_ns() - t0) / 1e6;
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            for (const cJSON *e = expect->child; e && !ok; e = e->next)
                ok = cJSON_IsString(e) && kb_key_matches(hits[i].key, e->valuestring);
        total++;
        hit += ok;
        if (!ok) {
            printf("miss  %s:%u  %s\n      expected %s; got", argv[0], lineno, q,
                   cJSON_GetStringValue(expect->child) ? expect->child->valuestring : "?");
            for (size_t i = 0; i < n; i++)
                printf(" %s", hits[i].key);
            printf("\n");
        }
        kb_hits_free(hits, n);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    kb_close(kb);
    if (exit_code != EMBER_EXIT_OK) {
        free(ms);
        return exit_code;
    }
    if (total == 0) {
        free(ms);
        log_err("%s: no questions", argv[0]);
        return EMBER_EXIT_USAGE;
    }
    qsort(ms, total, sizeof(*ms), cmp_double);
    double sum = 0;
    for (unsigned i = 0; i < total; i++)
        sum += ms[i];
    double rate = (double)hit / total;
    printf("hit rate@%d: %u/%u = %.1f%%   retrieval: mean %.2f ms, p95 %.2f ms, max %.2f ms\n",
           o->k, hit, total, 100.0 * rate, sum / total, ms[(size_t)(0.95 * (total - 1))],
           ms[total - 1]);
    free(ms);
    if (o->min_rate > 0 && rate < o->min_rate) {
        log_err("hit rate %.1f%% is below --min %.1f%%", 100.0 * rate, 100.0 * o->min_rate);
        return EMBER_EXIT_FAILURE;
    }
    return EMBER_EXIT_OK;
}

static int kb_stats(const struct kb_opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return cli_usage_error("unexpected argument '%s'", argv[0]);
    struct kb *kb;
    int rc = open_db(o, true, &kb);
    if (rc)
        return rc;
    struct kb_counts c;
    rc = kb_count(kb, &c);
    kb_close(kb);
    if (rc < 0) {
        log_err("cannot count the entries");
        return EMBER_EXIT_FAILURE;
    }
    printf("passages   %lld\nqa         %lld\nentities   %lld\nrelations  %lld\nmentions   %lld\n",
           c.docs, c.qa, c.entities, c.relations, c.mentions);
    return EMBER_EXIT_OK;
}

int cmd_kb(int argc, char **argv)
{
    static const struct option options[] = {
        {"db", required_argument, NULL, 'd'},  {"config", required_argument, NULL, 'c'},
        {"min", required_argument, NULL, 'm'}, {"text", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    if (argc < 2)
        return cli_usage_error("say what to do: import, query, eval or stats");
    const char *action = argv[1];
    const char *help = strcmp(action, "import") == 0  ? import_help
                       : strcmp(action, "query") == 0 ? query_help
                       : strcmp(action, "eval") == 0  ? eval_help
                       : strcmp(action, "stats") == 0 ? stats_help
                                                      : NULL;
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        fputs(kb_help, stdout);
        return EMBER_EXIT_OK;
    }
    if (!help)
        return cli_usage_error("unknown action '%s' (import, query, eval or stats)", action);
    struct kb_opts o = {.k = 3};
    optind = 1;
    opterr = 0;
    int opt;
    char *end;
    while ((opt = getopt_long(argc - 1, argv + 1, ":d:c:k:m:th", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            o.db = optarg;
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'k':
            o.k = (int)strtol(optarg, &end, 10);
            if (*end || o.k < 1 || o.k > 16)
                return cli_usage_error("-k: '%s' is not a number from 1 to 16", optarg);
            break;
        case 'm':
            o.min_rate = strtod(optarg, &end);
            if (*end || !(o.min_rate >= 0 && o.min_rate <= 1))
                return cli_usage_error("--min: '%s' is not a rate from 0 to 1", optarg);
            break;
        case 't':
            o.text = true;
            break;
        case 'h':
            fputs(help, stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv + 1);
        }
    }
    int rest = argc - 1 - optind;
    char **args = argv + 1 + optind;
    if (help == import_help)
        return kb_import(&o, rest, args);
    if (help == query_help)
        return kb_query(&o, rest, args);
    if (help == eval_help)
        return kb_eval(&o, rest, args);
    return kb_stats(&o, rest, args);
}
