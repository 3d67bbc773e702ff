/* `ember governor sim` end to end through its command function: the table, --json (parsed back),
 * --csv and --svg files, and the usage errors (exit 2) for a bad policy, tunable, profile or
 * duration. stdout is redirected to a file so the output can be read back. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "ember_test.h"

static char out_path[512];

/* Runs cmd_governor_sim with stdout captured; returns the exit code, *ret_out the output. */
static int run(char **ret_out, int argc, char **argv)
{
    fflush(stdout);
    int saved = dup(1);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0)
        return -1;
    dup2(fd, 1);
    close(fd);
    int rc = cmd_governor_sim(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(out_path, "r");
    char *buf = calloc(1, 1 << 20);
    if (f && buf)
        buf[fread(buf, 1, (1 << 20) - 1, f)] = '\0';
    if (f)
        fclose(f);
    *ret_out = buf;
    return rc;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1 << 22);
    if (f && buf)
        buf[fread(buf, 1, (1 << 22) - 1, f)] = '\0';
    if (f)
        fclose(f);
    return buf;
}

int main(void)
{
    char csv[512], svg[512];
    snprintf(out_path, sizeof(out_path), "%s/gov_sim_cli.out", EMBER_BINARY_DIR);
    snprintf(csv, sizeof(csv), "%s/gov_sim_cli.csv", EMBER_BINARY_DIR);
    snprintf(svg, sizeof(svg), "%s/gov_sim_cli.svg", EMBER_BINARY_DIR);
    char *out = NULL;

    char *a1[] = {"sim",
                  "--profile",
                  "rk3588",
                  "--workload",
                  "chat",
                  "--policy",
                  "performance,balanced",
                  "--duration",
                  "120",
                  "--json",
                  "--csv",
                  csv,
                  "--svg",
                  svg,
                  NULL};
    CHECK_EQ_INT(run(&out, 14, a1), EMBER_EXIT_OK);
    cJSON *arr = cJSON_Parse(out ? out : "");
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 2);
    if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 2) {
        cJSON *perf = cJSON_GetArrayItem(arr, 0), *bal = cJSON_GetArrayItem(arr, 1);
        static const char *const keys[] = {"policy",
                                           "profile",
                                           "joules_per_token",
                                           "decode_tokens_per_s",
                                           "ttft_p99_ms",
                                           "avg_power_w",
                                           "peak_temp_c",
                                           "seconds_over_target",
                                           "freq_changes_per_min"};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            CHECK_MSG(cJSON_GetObjectItem(bal, keys[i]) != NULL, "missing %s", keys[i]);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(perf, "policy")), "performance");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(bal, "profile")), "rk3588");
        double jp = cJSON_GetNumberValue(cJSON_GetObjectItem(perf, "joules_per_token"));
        double jb = cJSON_GetNumberValue(cJSON_GetObjectItem(bal, "joules_per_token"));
        CHECK_MSG(jb < 0.8 * jp, "balanced %.4f J/token vs performance %.4f", jb, jp);
    }
    cJSON_Delete(arr);
    free(out);
    char *c = slurp(csv), *s = slurp(svg);
    CHECK(c && strncmp(c, "policy,t_s,phase,power_w,temp_c,mhz0,mhz1,mhz2\n", 47) == 0);
    CHECK_CONTAINS(c, "\nbalanced,");
    CHECK(s && strncmp(s, "<svg", 4) == 0);
    CHECK_CONTAINS(s, "balanced");
    free(c);
    free(s);

    char *a2[] = {"sim",        "--profile", "ryzen", "--policy",       "powersave",
                  "--duration", "30",        "--set", "power_cap_w=10", NULL};
    CHECK_EQ_INT(run(&out, 9, a2), EMBER_EXIT_OK);
    CHECK_CONTAINS(out, "J/token total");
    CHECK_CONTAINS(out, "powersave");
    CHECK_CONTAINS(out, "power cap 10.0 W");
    free(out);

    char *bad1[] = {"sim", "--policy", "turbo", NULL};
    char *bad2[] = {"sim", "--set", "up_threshold=200", NULL};
    char *bad3[] = {"sim", "--profile", "mars", NULL};
    char *bad4[] = {"sim", "--duration", "-5", NULL};
    char *bad5[] = {"sim", "--set", "min_mhz=2000", "--set", "max_mhz=1000", NULL};
    char *bad6[] = {"sim", "stray", NULL};
    CHECK_EQ_INT(run(&out, 3, bad1), EMBER_EXIT_USAGE);
    free(out);
    CHECK_EQ_INT(run(&out, 3, bad2), EMBER_EXIT_USAGE);
    free(out);
    CHECK_EQ_INT(run(&out, 3, bad3), EMBER_EXIT_USAGE);
    free(out);
    CHECK_EQ_INT(run(&out, 3, bad4), EMBER_EXIT_USAGE);
    free(out);
    CHECK_EQ_INT(run(&out, 5, bad5), EMBER_EXIT_USAGE);
    free(out);
    CHECK_EQ_INT(run(&out, 2, bad6), EMBER_EXIT_USAGE);
    free(out);
    char *help[] = {"sim", "--help", NULL};
    CHECK_EQ_INT(run(&out, 2, help), EMBER_EXIT_OK);
    CHECK_CONTAINS(out, "--profile");
    free(out);
    remove(csv);
    remove(svg);
    remove(out_path);
    return et_finish();
}
