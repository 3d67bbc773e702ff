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
        "                          [--csv OUT] [--svg OUT] [--json] [--oracle]\n"
        "                          [--sweep KEY=V1,V2,...]\n"
        "\n"
        "Runs the governor's controller (policy, thermal and power constraints, anti-flap)\n"
        "against a plant model and prints every policy side by side: joules per token\n"
        "(package, and the whole box at the wall), tokens/s, TTFT and per-token latency,\n"
        "power, temperature, frequency changes.\n"
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
        "  --oracle    also search the static clock per phase (prefill, decode), decode's\n"
        "              thread count and cluster (with thread_lever) and the memory clock,\n"
        "              for the lowest wall J/token within the latency budget, and show\n"
        "              every policy beside it (about 100 runs: use --duration to shorten)\n"
        "  --sweep     KEY=V1,V2,...: run the policies (default balanced) at every value of\n"
        "              a [governor] tunable and print the trade-off (J/token, decode\n"
        "              tokens/s, TTFT p99) instead of the side-by-side table\n"
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

/* --sweep KEY=V1,V2,...: every policy asked for at every value, as one trade-off table. */
static int run_sweep(const struct gov_sim_profile *prof, const struct gov_sim_workload *wl,
                     const struct gov_sim_options *opt, const char *spec, const char *const *list,
                     size_t n)
{
    char key[64], err[512];
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof(key) || !eq[1]) {
        cli_usage_error("--sweep: expected KEY=V1,V2,..., got '%s'", spec);
        return EMBER_EXIT_USAGE;
    }
    memcpy(key, spec, (size_t)(eq - spec));
    key[eq - spec] = 0;
    char *buf = strdup(eq + 1);
    const char *values[64];
    size_t nv = 0;
    char *save = NULL;
    for (char *tok = buf ? strtok_r(buf, ",", &save) : NULL; tok && nv < 64;
         tok = strtok_r(NULL, ",", &save))
        values[nv++] = tok;
    struct gov_sim_result *r = nv ? calloc(nv * n, sizeof(*r)) : NULL;
    int ret = EMBER_EXIT_FAILURE;
    if (!buf || !r) {
        log_err(nv || !buf ? "out of memory" : "--sweep: no values");
        goto done;
    }
    fprintf(stderr, "sweep: %zu values x %zu policies...\n", nv, n);
    int rc = gov_sim_sweep(prof, wl, opt, key, values, nv, list, n, r, err, sizeof(err));
    if (rc == -EINVAL) {
        cli_usage_error("%s", err);
        ret = EMBER_EXIT_USAGE;
        goto done;
    }
    if (rc) {
        log_err("%s", err);
        goto done;
    }
    gov_sim_write_sweep(stdout, key, values, nv, r, n);
    ret = EMBER_EXIT_OK;
done:
    free(r);
    free(buf);
    return ret;
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
        {"oracle", no_argument, NULL, 'O'},
        {"sweep", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *profile = "rk3588", *workload = "chat", *policies = "all";
    const char *csv_path = NULL, *svg_path = NULL;
    bool json = false, oracle = false, policies_given = false;
    const char *sweep = NULL;
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
    while ((o = getopt_long(argc, argv, ":p:w:P:d:a:s:nS:c:g:jOW:h", options, NULL)) != -1) {
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
            policies_given = true;
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
        case 'O':
            oracle = true;
            break;
        case 'W':
            sweep = optarg;
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

    if (sweep && (oracle || json || svg_path || csv_path)) {
        cli_usage_error("--sweep prints its own table: not with --oracle, --json, --csv or --svg");
        goto out;
    }
    if (sweep && !policies_given)
        policies = "balanced";
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

    if (sweep) {
        ret = run_sweep(prof, &wl, &opt, sweep, list, n);
        goto out;
    }
    res = calloc(n + 1, sizeof(*res));
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
    struct gov_sim_oracle *orc = NULL;
    if (oracle) {
        orc = malloc(sizeof(*orc));
        if (!orc)
            goto oom;
        fprintf(stderr, "oracle: searching static clocks and threads per phase...\n");
        if (gov_sim_oracle(prof, &wl, &opt, orc, err, sizeof(err))) {
            log_err("oracle: %s", err);
            free(orc);
            goto out;
        }
        res[n] = orc->result; /* shown as one more column */
    }
    size_t shown = n + (orc ? 1 : 0);
    if (json) {
        char *s = gov_sim_results_json(res, shown);
        if (!s)
            goto oom;
        puts(s);
        free(s);
    } else {
        gov_sim_write_table(stdout, res, shown);
        if (orc)
            gov_sim_write_oracle(stdout, orc, res, n, opt.tunables.decode_slowdown_max_pct);
    }
    free(orc);
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
