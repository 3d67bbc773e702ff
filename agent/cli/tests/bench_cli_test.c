/* Integration test of `ember bench` (the binary, given as argv[1]): --help; every kind of bad
 * argument exits 2 naming the flag and the value; a missing model exits 1 naming the file; real
 * runs on ../shared/models/stories260K.gguf with tiny -p/-n/-r print one JSON object per thread
 * count whose fields parse and are sane (positive speeds, threads echoed), a human table, and a
 * generation-only run (-p 0) whose prompt fields are null. */
#include "ember_test.h"

#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_buf[1 << 16], err_buf[1 << 16];

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    if (f) {
        n = fread(buf, 1, cap - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
}

/* Runs a shell command line with stdout and stderr captured; returns the exit status. */
static int run(const char *cmdline)
{
    char full[8192], out_path[] = "/tmp/ember_bench_out_XXXXXX",
                     err_path[] = "/tmp/ember_bench_err_XXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path);
    if (fo < 0 || fe < 0)
        return -1;
    close(fo);
    close(fe);
    snprintf(full, sizeof(full), "%s >%s 2>%s", cmdline, out_path, err_path);
    int st = system(full);
    slurp(out_path, out_buf, sizeof(out_buf));
    slurp(err_path, err_buf, sizeof(err_buf));
    unlink(out_path);
    unlink(err_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The JSON Lines of out_buf into lines[] (at most cap); returns how many parsed. */
static int parse_lines(cJSON **lines, int cap)
{
    int n = 0;
    char *save = NULL;
    for (char *l = strtok_r(out_buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(l);
        CHECK_MSG(j != NULL, "not JSON: %s", l);
        if (j && n < cap)
            lines[n++] = j;
        else
            cJSON_Delete(j);
    }
    return n;
}

/* One configuration line of a -p 8 -n 4 -r 2 run. */
static void check_line(const cJSON *j, const char *model, int threads)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "model");
    CHECK(cJSON_IsString(s) && strcmp(s->valuestring, model) == 0);
    s = cJSON_GetObjectItemCaseSensitive(j, "type");
    CHECK(cJSON_IsString(s) && strcmp(s->valuestring, "F32") == 0);
    s = cJSON_GetObjectItemCaseSensitive(j, "kernels");
    CHECK(cJSON_IsString(s) && strstr(s->valuestring, "kernels:"));
    CHECK_EQ_INT(num(j, "threads"), threads);
    CHECK_EQ_INT(num(j, "n_prompt"), 8);
    CHECK_EQ_INT(num(j, "n_gen"), 4);
    CHECK_EQ_INT(num(j, "repetitions"), 2);
    static const char *const positive[] = {
        "pp_tokens_per_s", "tg_tokens_per_s", "ttft_ms",      "peak_rss_mb",
        "roofline_pct",    "bandwidth_gbps",  "stream_bytes", "roofline_tokens_per_s"};
    for (size_t i = 0; i < sizeof(positive) / sizeof(positive[0]); i++)
        CHECK_MSG(num(j, positive[i]) > 0, "%s = %g", positive[i], num(j, positive[i]));
    CHECK(num(j, "pp_stddev") >= 0);
    CHECK(num(j, "tg_stddev") >= 0);
    /* a prefill of 8 tokens cannot take longer than the whole time to first token */
    CHECK(num(j, "ttft_ms") >= 8 * 1000.0 / num(j, "pp_tokens_per_s") * 0.999);
    /* the model is ~1 MiB, a process with it loaded is well under 1 GiB */
    CHECK(num(j, "peak_rss_mb") < 1024);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_EMBER\n", argv[0]);
        return 2;
    }
    const char *ember = argv[1];
    char model[1024], cmd[4096];
    snprintf(model, sizeof(model), "%s/models/stories260K.gguf", et_shared_dir());
    if (access(model, R_OK) != 0) {
        fprintf(stderr, "skip: %s missing\n", model);
        return ET_SKIP;
    }

    snprintf(cmd, sizeof(cmd), "'%s' bench --help", ember);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK_CONTAINS(out_buf, "--json");
    CHECK_CONTAINS(out_buf, "--bandwidth");
    CHECK_CONTAINS(out_buf, "-t, --threads LIST");

    /* bad arguments: exit 2, the message names the flag and the value */
    static const struct {
        const char *args, *want;
    } bad[] = {
        {"-t 0", "-t: '0'"},
        {"-t 1,x", "'x' in '1,x'"},
        {"-t 1,,2", "'' in '1,,2'"},
        {"-t 999", "-t: '999'"},
        {"-p -3", "-p: '-3'"},
        {"-n 1.5", "-n: '1.5'"},
        {"-r 0", "-r: '0'"},
        {"--bandwidth 0", "--bandwidth: '0'"},
        {"-t 1,2 --bandwidth 1,2,3", "3 values for 2 thread counts"},
        {"-p 0 -n 0", "nothing to measure"},
        {"extra", "unexpected argument 'extra'"},
        {"--no-such-flag", "ember bench: error: unknown option '--no-such-flag'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' %s", ember, model, bad[i].args);
        CHECK_EQ_INT(run(cmd), 2);
        CHECK_CONTAINS(err_buf, bad[i].want);
        CHECK_STR(out_buf, "");
        /* one error line and a hint, never the whole help (issue 21) */
        CHECK(strstr(err_buf, "usage: ember bench") == NULL);
    }
    if (access("/etc/ember/ember.conf", F_OK) != 0) {
        snprintf(cmd, sizeof(cmd), "'%s' bench -p 8", ember);
        CHECK_EQ_INT(run(cmd), 2);
        CHECK_CONTAINS(err_buf, "no model");
    }
    snprintf(cmd, sizeof(cmd), "'%s' bench -m /nonexistent/model.gguf -p 8 -n 4 --bandwidth 10",
             ember);
    CHECK_EQ_INT(run(cmd), 1);
    CHECK_CONTAINS(err_buf, "/nonexistent/model.gguf");

    /* a real run: one JSON object per thread count, bandwidth measured */
    snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' -p 8 -n 4 -r 2 -t 1,2 --json", ember, model);
    CHECK_EQ_INT(run(cmd), 0);
    cJSON *lines[4] = {0};
    int n = parse_lines(lines, 4);
    CHECK_EQ_INT(n, 2);
    for (int i = 0; i < n; i++)
        check_line(lines[i], model, i + 1);
    for (int i = 0; i < n; i++)
        cJSON_Delete(lines[i]);

    /* the human table, bandwidth given: one row per thread count and test */
    snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' -p 8 -n 4 -r 1 -t 2 --bandwidth 12.5", ember,
             model);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK_CONTAINS(out_buf, "memory read bandwidth (given): 12.5 GB/s with 2 threads");
    CHECK_CONTAINS(out_buf, "| stories260K.gguf");
    CHECK_CONTAINS(out_buf, "|       2 |     pp8 |");
    CHECK_CONTAINS(out_buf, "|       2 |     tg4 |");
    CHECK_CONTAINS(out_buf, "peak RSS MiB");

    /* generation only: the prompt fields are null, not zero */
    snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' -p 0 -n 4 -r 1 -t 1 --json --bandwidth 10",
             ember, model);
    CHECK_EQ_INT(run(cmd), 0);
    n = parse_lines(lines, 4);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lines[0], "pp_tokens_per_s")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lines[0], "ttft_ms")));
        CHECK(num(lines[0], "tg_tokens_per_s") > 0);
        CHECK_NEAR(num(lines[0], "bandwidth_gbps"), 10, 1e-9);
        cJSON_Delete(lines[0]);
    }

    /* --graph: fusion leaves fewer ops and less activation memory; nothing is timed */
    snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' -p 64 --graph --json", ember, model);
    CHECK_EQ_INT(run(cmd), 0);
    n = parse_lines(lines, 4);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK(num(lines[0], "ops_fused") > 0);
        CHECK(num(lines[0], "ops_fused") < num(lines[0], "ops_unfused"));
        CHECK(num(lines[0], "activation_bytes_fused") < num(lines[0], "activation_bytes_unfused"));
        CHECK_NEAR(num(lines[0], "n_batch"), 64, 0);
        cJSON_Delete(lines[0]);
    }
    snprintf(cmd, sizeof(cmd), "'%s' bench -m '%s' -p 16 --graph", ember, model);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK_CONTAINS(out_buf, "activation MiB (peak)");
    CHECK_CONTAINS(out_buf, "for 16 tokens per step");
    return et_finish();
}
