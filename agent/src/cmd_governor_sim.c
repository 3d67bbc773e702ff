/* `ember governor sim`: runs the governor's own controller against a plant model (a built-in or
 * user profile) over a workload, for every policy asked for, and prints them side by side (or as
 * JSON), optionally with a CSV trace and an SVG chart. `ember governor` dispatches `sim` here. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/fileio.h"
#include "log.h"
#include "governor/policy.h"
#include "governor/sim.h"

static void sim_usage(FILE *out)
{
    fprintf(
        out,
        "usage: ember governor sim [--profile NAME|FILE.json] [--workload chat|burst|steady|FILE]\n"
        "                          [--policy all|NAME[,NAME...]] [--duration S] [--ambient C]\n"
        "                          [--set KEY=VALUE]... [--no-calibration] [--seed N]\n"
        "                          [--csv OUT] [--svg OUT] [--json]\n"
        "\n"
        "Runs the governor's controller (policy, thermal and power constraints, anti-flap)\n"
        "against a plant model and prints every policy side by side: joules per token,\n"
        "tokens/s, TTFT and per-token latency, power, temperature, frequency changes.\n"
        "\n"
        "  --profile   built-in rk3588 (default), rpi5, n100, ryzen, or a profile JSON file\n"
        "              (format: docs/governor-sim.md)\n"
        "  --workload  chat (default), burst, steady, or a workload JSON file\n"
        "  --policy    all (default) or a comma-separated list\n"
        "  --duration  simulated seconds (default 600)\n"
        "  --ambient   ambient temperature in C (default: the profile's)\n"
        "  --set       any [governor] tunable, e.g. --set power_cap_w=3 --set\n"
        "              thermal_target_c=60 (repeatable)\n"
        "  --no-calibration  balanced/efficiency start without a calibration curve and\n"
        "              find the decode knee online\n"
        "  --seed      workload generator seed (default 1)\n"
        "  --csv/--svg write a trace (every 100 ms) / a chart per policy\n"
        "  --json      instead of the table, one line: a JSON array with one object per\n"
        "              policy (docs/governor-sim.md)\n"
        "Built-in profiles are read from %s.\n",
        gov_sim_profile_dir());
}

static int add_policy(const char **list, size_t *n, const char *name)
{
    if (!gov_policy_find(name)) {
        cli_usage_error("--policy: unknown policy '%s'", name);
        return -EINVAL;
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i], name) == 0)
            return 0;
    list[(*n)++] = name;
    return 0;
}

static int write_file(const char *path, const char *what, FILE **ret)
{
    *ret = cmn_fopen_write(path);
    if (!*ret) {
        log_err("%s %s: %s", what, path, strerror(errno));
        return -errno;
    }
    return 0;
}

int cmd_governor_sim(int argc, char **argv)
{
    static const struct option options[] = {
        {"profile", required_argument, NULL, 'p'},
        {"workload", required_argument, NULL, 'w'},
        {"policy", required_argument, NULL, 'P'},
        {"duration", required_argument, NULL, 'd'},
        {"ambient", required_argument, NULL, 'a'},
        {"set", required_argument, NULL, 's'},
        {"no-calibration", no_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 'S'},
        {"csv", required_argument, NULL, 'c'},
        {"svg", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *profile = "rk3588", *workload = "chat", *policies = "all";
    const char *csv_path = NULL, *svg_path = NULL;
    bool json = false;
    unsigned long long seed = 1;
    char err[512];
    int ret = EMBER_EXIT_USAGE;
    struct gov_sim_options opt;
    gov_sim_options_defaults(&opt);

    struct gov_sim_profile *prof = malloc(sizeof(*prof));
    struct gov_sim_result *res = NULL;
    struct gov_sim_trace *traces = NULL;
    struct gov_sim_workload wl = {0};
    char *policy_buf = NULL;
    FILE *csv = NULL, *svg = NULL;
    const char *list[32];
    size_t n = 0;
    if (!prof) {
        log_err("out of memory");
        return EMBER_EXIT_FAILURE;
    }

    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":p:w:P:d:a:s:nS:c:g:jh", options, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'p':
            profile = optarg;
            break;
        case 'w':
            workload = optarg;
            break;
        case 'P':
            policies = optarg;
            break;
        case 'd':
            opt.duration_s = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.duration_s > 0 && opt.duration_s <= 86400)) {
                cli_usage_error("--duration: '%s' must be more than 0 and at most 86400 s", optarg);
                goto out;
            }
            break;
        case 'a':
            opt.ambient_c = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.ambient_c >= -40 && opt.ambient_c <= 80)) {
                cli_usage_error("--ambient: '%s' is not a temperature in -40..80 C", optarg);
                goto out;
            }
            break;
        case 's': {
            char key[64];
            const char *eq = strchr(optarg, '=');
            if (!eq || (size_t)(eq - optarg) >= sizeof(key)) {
                cli_usage_error("--set: expected KEY=VALUE, got '%s'", optarg);
                goto out;
            }
            memcpy(key, optarg, (size_t)(eq - optarg));
            key[eq - optarg] = 0;
            if (gov_tunables_set(&opt.tunables, key, eq + 1, err, sizeof(err))) {
                cli_usage_error("--set: %s", err);
                goto out;
            }
            break;
        }
        case 'n':
            opt.calibrated = false;
            break;
        case 'S':
            seed = strtoull(optarg, &end, 10);
            if (*end || !*optarg) {
                cli_usage_error("--seed: '%s' is not a number", optarg);
                goto out;
            }
            break;
        case 'c':
            csv_path = optarg;
            break;
        case 'g':
            svg_path = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            sim_usage(stdout);
            ret = EMBER_EXIT_OK;
            goto out;
        default:
            cli_option_error(o, argv);
            goto out;
        }
    }
    if (optind < argc) {
        cli_usage_error("unexpected argument '%s'", argv[optind]);
        goto out;
    }
    const char *key;
    if (gov_tunables_validate(&opt.tunables, &key, err, sizeof(err))) {
        cli_usage_error("%s", err);
        goto out;
    }

    if (strcmp(policies, "all") == 0) {
        for (const struct gov_policy_ops *const *p = gov_policy_list(); *p && n < 32; p++)
            list[n++] = (*p)->name;
    } else {
        policy_buf = strdup(policies);
        if (!policy_buf)
            goto oom;
        char *save = NULL;
        for (char *tok = strtok_r(policy_buf, ",", &save); tok && n < 32;
             tok = strtok_r(NULL, ",", &save))
            if (add_policy(list, &n, tok))
                goto out;
        if (!n) {
            cli_usage_error("--policy: no policy named");
            goto out;
        }
    }

    if (gov_sim_profile_load(profile, prof, err, sizeof(err))) {
        log_err("profile: %s", err);
        goto out;
    }
    if (gov_sim_workload_load(workload, opt.duration_s, seed, &wl, err, sizeof(err))) {
        log_err("workload: %s", err);
        goto out;
    }
    if ((csv_path && write_file(csv_path, "--csv", &csv)) ||
        (svg_path && write_file(svg_path, "--svg", &svg))) {
        ret = EMBER_EXIT_FAILURE;
        goto out;
    }

    res = calloc(n, sizeof(*res));
    traces = calloc(n, sizeof(*traces));
    if (!res || !traces)
        goto oom;
    ret = EMBER_EXIT_FAILURE;
    for (size_t i = 0; i < n; i++) {
        if (gov_sim_run(prof, &wl, list[i], &opt, &res[i], (csv || svg) ? &traces[i] : NULL, err,
                        sizeof(err))) {
            log_err("%s: %s", list[i], err);
            goto out;
        }
    }
    if (json) {
        char *s = gov_sim_results_json(res, n);
        if (!s)
            goto oom;
        puts(s);
        free(s);
    } else {
        gov_sim_write_table(stdout, res, n);
    }
    if (csv)
        gov_sim_write_csv(csv, res, traces, n, prof->n_clusters);
    if (svg)
        gov_sim_write_svg(svg, res, traces, n, prof);
    /* both files are closed whatever happens to the first */
    int close_csv = csv ? fclose(csv) : 0;
    int close_svg = svg ? fclose(svg) : 0;
    if (close_csv || close_svg) {
        csv = svg = NULL;
        log_err("writing the trace failed: %s", strerror(errno));
        goto out;
    }
    csv = svg = NULL;
    ret = EMBER_EXIT_OK;
    goto out;
oom:
    log_err("out of memory");
    ret = EMBER_EXIT_FAILURE;
out:
    if (csv)
        fclose(csv);
    if (svg)
        fclose(svg);
    for (size_t i = 0; traces && i < n; i++)
        gov_sim_trace_free(&traces[i]);
    free(traces);
    free(res);
    free(policy_buf);
    gov_sim_workload_free(&wl);
    free(prof);
    return ret;
}
