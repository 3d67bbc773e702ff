/* The knowledge base on a real SQLite file: JSONL import of documents, Q&A pairs and relations;
 * a malformed line names its line number and leaves nothing imported (not even the good lines
 * before it); Markdown split by headings (anchors as GitHub makes them, headings in code fences
 * ignored, long sections split, re-import replacing); BM25 retrieval, and the one-hop entity lift
 * that brings up an entry the words alone do not find. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ember_test.h"
#include "kb.h"

static struct kb_counts counts(struct kb *kb)
{
    struct kb_counts c = {0};
    CHECK_EQ_INT(kb_count(kb, &c), 0);
    return c;
}

static int import(struct kb *kb, const char *name, const char *text, bool md, char *err,
                  size_t err_len)
{
    struct kb_import_stats st = {0};
    if (kb_begin(kb, err, err_len) < 0)
        return -EIO;
    int rc = md ? kb_import_markdown(kb, name, text, strlen(text), &st, err, err_len)
                : kb_import_jsonl(kb, name, text, strlen(text), &st, err, err_len);
    if (rc < 0) {
        kb_rollback(kb);
        return rc;
    }
    return kb_commit(kb, err, err_len);
}

static bool top_is(struct kb *kb, const char *q, const char *key, size_t k)
{
    struct kb_hit hits[8];
    size_t n = 0;
    if (kb_search(kb, q, k, hits, &n) < 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, "  %s -> %zu %s %.3f%s\n", q, i + 1, hits[i].key, hits[i].score,
                hits[i].via_graph ? " +graph" : "");
        found |= kb_key_matches(hits[i].key, key);
    }
    kb_hits_free(hits, n);
    return found;
}

int main(void)
{
    char path[] = "/tmp/ember-kb-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    unlink(path);
    struct kb *kb = NULL;
    char err[512];
    CHECK_EQ_INT(kb_open(path, false, &kb, err, sizeof(err)), 0);

    /* ---- JSONL ---- */
    const char *good =
        "{\"type\":\"doc\",\"id\":\"fan\",\"title\":\"Fan\",\"text\":\"The fan spins up above "
        "the on temperature and stops below the off temperature.\",\"entities\":[\"fan\"]}\n"
        "\n"
        "{\"type\":\"qa\",\"id\":\"qa-cap\",\"question\":\"How do I limit the power draw?\","
        "\"answer\":\"Set power_cap_w in the governor "
        "section.\",\"entities\":[\"power_cap_w\"]}\r\n"
        "{\"type\":\"doc\",\"id\":\"rapl\",\"text\":\"Package energy counters are read from "
        "intel-rapl.\",\"entities\":[\"RAPL\"]}\n"
        "{\"type\":\"relation\",\"subject\":\"power_cap_w\",\"predicate\":\"measured by\","
        "\"object\":\"rapl\"}\n";
    CHECK_EQ_INT(import(kb, "good.jsonl", good, false, err, sizeof(err)), 0);
    struct kb_counts c = counts(kb);
    CHECK_EQ_INT(c.docs, 2);
    CHECK_EQ_INT(c.qa, 1);
    CHECK_EQ_INT(c.relations, 1);
    CHECK_EQ_INT(c.entities, 3); /* fan, power_cap_w, rapl (names compare in lower case) */
    CHECK(top_is(kb, "why does the fan spin", "fan", 1));
    CHECK(top_is(kb, "how can I limit power", "qa-cap", 1));
    /* One hop: "power_cap_w" names an entity related to "rapl"; no word of the question is
     * in the rapl entry, only the graph brings it up. */
    CHECK(top_is(kb, "what checks power_cap_w", "rapl", 3));
    CHECK(!top_is(kb, "what checks the cap", "rapl", 3));

    /* A bad line: its number, and nothing of the file imported. */
    struct {
        const char *text, *want;
    } bad[] = {
        {"{\"type\":\"doc\",\"id\":\"new1\",\"text\":\"fine\"}\n{\"type\":\"doc\",\"id\":\"x\"",
         "bad.jsonl:2: not valid JSON"},
        {"{\"type\":\"doc\",\"id\":\"new1\",\"text\":\"fine\"}\n\n{\"type\":\"doc\",\"text\":"
         "\"t\"}",
         "bad.jsonl:3: missing \"id\""},
        {"{\"type\":\"poem\",\"id\":\"p\",\"text\":\"t\"}", "bad.jsonl:1: \"type\" must be"},
        {"{\"type\":\"doc\",\"id\":\"d\",\"text\":\"t\",\"txet\":1}",
         "bad.jsonl:1: unknown field \"txet\""},
        {"{\"type\":\"doc\",\"id\":\"d\",\"text\":7}", "bad.jsonl:1: \"text\" must be a string"},
        {"{\"type\":\"doc\",\"id\":\"d\",\"text\":\"t\"} {}", "bad.jsonl:1: text after"},
        {"[1,2]", "bad.jsonl:1: not a JSON object"},
        {"{\"type\":\"relation\",\"subject\":\"a\",\"predicate\":\"p\"}",
         "bad.jsonl:1: missing \"object\""},
        {"{\"type\":\"doc\",\"id\":\"d\",\"text\":\"t\",\"entities\":\"fan\"}",
         "bad.jsonl:1: \"entities\" must be an array"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK_EQ_INT(import(kb, "bad.jsonl", bad[i].text, false, err, sizeof(err)), -EINVAL);
        CHECK_CONTAINS(err, bad[i].want);
        struct kb_counts after = counts(kb);
        CHECK_EQ_INT(after.docs, 2);
        CHECK_EQ_INT(after.qa, 1);
        CHECK_EQ_INT(after.entities, 3);
    }
    /* a NUL byte inside a line */
    const char nul[] = "{\"type\":\"doc\",\"id\":\"n\",\"text\":\"a\"}\n{\"type\"\0}\n";
    struct kb_import_stats st = {0};
    CHECK_EQ_INT(kb_begin(kb, err, sizeof(err)), 0);
    CHECK_EQ_INT(kb_import_jsonl(kb, "nul.jsonl", nul, sizeof(nul) - 1, &st, err, sizeof(err)),
                 -EINVAL);
    kb_rollback(kb);
    CHECK_CONTAINS(err, "nul.jsonl:2: a NUL byte");
    CHECK_EQ_INT(counts(kb).docs, 2);
    /* the same id replaces */
    CHECK_EQ_INT(import(kb, "again.jsonl",
                        "{\"type\":\"doc\",\"id\":\"fan\",\"text\":\"The blower runs when hot.\"}",
                        false, err, sizeof(err)),
                 0);
    CHECK_EQ_INT(counts(kb).docs, 2);
    CHECK(top_is(kb, "blower", "fan", 1));

    /* ---- Markdown ---- */
    char md[8192];
    int n = snprintf(md, sizeof(md),
                     "# The Box\n\nIntro about the box.\n\n## Status LED\n\nThe `led` blinks "
                     "while generating.\n\n```sh\n# not a heading\necho hi\n```\n\n## Status "
                     "LED\n\nSecond section with the same title.\n\n### Fan & Cooling!\n\n");
    for (int i = 0; i < 60; i++) /* a long section: split at blank lines */
        n += snprintf(md + n, sizeof(md) - (size_t)n, "Paragraph %d about airflow and cooling.\n\n",
                      i);
    CHECK_EQ_INT(import(kb, "docs/box.md", md, true, err, sizeof(err)), 0);
    CHECK(top_is(kb, "intro box", "box.md#the-box", 2));
    CHECK(top_is(kb, "led blinks generating", "box.md#status-led", 1));
    CHECK(top_is(kb, "second section same title", "box.md#status-led-1", 1));
    CHECK(!top_is(kb, "echo hi not heading", "box.md#not-a-heading", 3));
    CHECK(top_is(kb, "paragraph 55 airflow", "box.md#fan--cooling", 3));
    long long docs_before = counts(kb).docs;
    CHECK(docs_before >= 2 + 5); /* the fan section was split */
    /* the same file again replaces its entries, it does not add to them */
    CHECK_EQ_INT(import(kb, "docs/box.md", md, true, err, sizeof(err)), 0);
    CHECK_EQ_INT(counts(kb).docs, docs_before);
    CHECK(top_is(kb, "led", "box.md#status-led", 3)); /* `led` is an entity of that section */

    kb_close(kb);
    /* read-only opening of what was written; a missing file says so */
    CHECK_EQ_INT(kb_open(path, true, &kb, err, sizeof(err)), 0);
    CHECK(top_is(kb, "blower", "fan", 1));
    kb_close(kb);
    unlink(path);
    CHECK_EQ_INT(kb_open("/nonexistent/kb.db", true, &kb, err, sizeof(err)), -ENOENT);
    return et_finish();
}
