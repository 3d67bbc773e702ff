/* `ember governor status|set|restore|calibrate|sim`: the governor from the command line. status
 * reads the hardware and sensors without writing anything; set applies one policy once (the
 * originals are saved first, `restore` undoes it); restore writes back a saved state (also what
 * systemd's ExecStopPost runs); calibrate steps the CPUs through a ladder of frequencies running
 * a fixed prefill + decode workload on a model and writes the curve `balanced` and `efficiency`
 * use; sim is the simulator (cmd_governor_sim.c). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calib_profile.h"
#include "commands.h"
#include "common/fileio.h"
#include "common/timeutil.h"
#include "config.h"
#include "engine/engine.h"
#include "gov_config.h"
#include "governor/governor.h"
#include "log.h"
#include "telemetry/power.h"

static void governor_usage(FILE *out)
{
    fprintf(
        out,
        "usage: ember governor status [--json] [--root DIR] [--config FILE]\n"
        "       ember governor set POLICY [--root DIR] [--saved FILE] [--config FILE]\n"
        "       ember governor restore [--root DIR] [--saved FILE] [--config FILE]\n"
        "       ember governor calibrate -m MODEL [--out FILE] [--steps N] [--prefill N]\n"
        "                                [--decode N] [--threads N] [--root DIR] [--config FILE]\n"
        "       ember governor sim [...]   (see ember governor sim --help)\n"
        "\n"
        "status     policies, frequencies, temperatures and active constraints (no writes)\n"
        "set        apply POLICY once; the original settings are saved first\n"
        "restore    write back the settings saved before ember's first change\n"
        "calibrate  measure tokens/s and watts at a ladder of frequencies for balanced and\n"
        "           efficiency (needs permission to set frequencies)\n"
        "sim        run every policy against a plant model\n"
        "\n"
        "Common options: --root DIR reads DIR/sys and DIR/proc instead of / (fake trees);\n"
        "--saved FILE overrides [governor] saved_path (whose default, under a root other than\n"
        "/, is DIR/run/ember/governor.saved); --config FILE (default " EMBER_DEFAULT_CONFIG ").\n"
        "Exit codes: 0 ok, 1 failure, 2 usage, 3 this machine cannot do it.\n");
}

struct gov_cli {
    const char *config;
    const char *root;
    const char *saved;
    const char *out;
    const char *model;
    const char *profile_out, *base; /* calibrate: a simulator profile too, on this base */
    bool json;
    int steps, prefill, decode, threads;
    struct agent_config cfg;
    struct gov_governor_params params;
    char root_abs[PATH_MAX], saved_path[PATH_MAX];
};

enum {
    OPT_ROOT = 1000,
    OPT_SAVED,
    OPT_CONFIG,
    OPT_JSON,
    OPT_OUT,
    OPT_STEPS,
    OPT_PREFILL,
    OPT_DECODE,
    OPT_THREADS,
    OPT_PROFILE_OUT,
    OPT_BASE
};

static int parse_positive(const char *name, const char *v, int lo, int hi, int *ret)
{
    int64_t x;
    if (cmn_parse_i64(v, &x) || x < lo || x > hi) {
        cli_usage_error("%s: '%s' is not a number in %d..%d", name, v, lo, hi);
        return -EINVAL;
    }
    *ret = (int)x;
    return 0;
}

/* Parses the options of a sub-command (argv[0] is its name) and loads the configuration.
 * Returns -1 to go on, or an exit code. *pos receives the first positional argument. */
static int parse_common(int argc, char **argv, struct gov_cli *c, const char *shortopts,
                        void (*usage)(FILE *), const char **pos)
{
    static const struct option options[] = {
        {"root", required_argument, NULL, OPT_ROOT},
        {"saved", required_argument, NULL, OPT_SAVED},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"json", no_argument, NULL, OPT_JSON},
        {"out", required_argument, NULL, OPT_OUT},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"prefill", required_argument, NULL, OPT_PREFILL},
        {"decode", required_argument, NULL, OPT_DECODE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"profile-out", required_argument, NULL, OPT_PROFILE_OUT},
        {"base", required_argument, NULL, OPT_BASE},
        {"model", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 1;
    opterr = 0;
    char opts[16];
    snprintf(opts, sizeof(opts), ":%s", shortopts);
    while ((opt = getopt_long(argc, argv, opts, options, NULL)) != -1) {
        switch (opt) {
        case OPT_ROOT:
            c->root = optarg;
            break;
        case OPT_SAVED:
            c->saved = optarg;
            break;
        case OPT_CONFIG:
            c->config = optarg;
            break;
        case OPT_JSON:
            c->json = true;
            break;
        case OPT_OUT:
            c->out = optarg;
            break;
        case 'm':
            c->model = optarg;
            break;
        case OPT_PROFILE_OUT:
            c->profile_out = optarg;
            break;
        case OPT_BASE:
            c->base = optarg;
            break;
        case OPT_STEPS:
            if (parse_positive("--steps", optarg, 2, GOV_CALIB_MAX_POINTS, &c->steps))
                return EMBER_EXIT_USAGE;
            break;
        case OPT_PREFILL:
            if (parse_positive("--prefill", optarg, 2, 4096, &c->prefill))
                return EMBER_EXIT_USAGE;
            break;
        case OPT_DECODE:
            if (parse_positive("--decode", optarg, 1, 4096, &c->decode))
                return EMBER_EXIT_USAGE;
            break;
        case OPT_THREADS:
            if (parse_positive("--threads", optarg, 0, 1024, &c->threads))
                return EMBER_EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv);
        }
    }
    *pos = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind + 1]);
    int rc = agent_config_load_for_cli(c->config, &c->cfg);
    if (rc)
        return rc;
    struct gov_governor_params *p = &c->params;
    gov_governor_params_defaults(p);
    const char *key = NULL;
    char err[256] = "";
    p->tunables = c->cfg.governor.tunables;
    if (gov_tunables_validate(&p->tunables, &key, err, sizeof(err))) {
        log_err("[governor] %s: %s", key ? key : "?", err);
        return EMBER_EXIT_USAGE;
    }
    int r =
        agent_governor_paths(&c->cfg.governor, c->root, c->saved, c->root_abs, sizeof(c->root_abs),
                             c->saved_path, sizeof(c->saved_path), err, sizeof(err));
    if (r < 0) {
        if (c->root)
            return cli_usage_error("--root %s", err);
        log_err("[governor] sysfs_root %s", err);
        return EMBER_EXIT_USAGE;
    }
    p->sysfs_root = c->root_abs;
    p->saved_path = c->saved_path;
    p->calibration_path = c->cfg.governor.calibration_path;
    return -1;
}

static void drain_events(struct gov_governor *g)
{
    struct gov_event e;
    while (gov_events_pop(gov_governor_events(g), &e)) {
        if (e.kind == GOV_EVENT_RESTORED || e.kind == GOV_EVENT_POLICY_CHANGED)
            log_info("%s", e.detail);
        else
            log_warn("%s: %s", gov_event_kind_name(e.kind), e.detail);
    }
}

/* Opening failures: no cpufreq is "this machine cannot", the rest are failures. */
static int open_exit(int r, const char *what, const char *err)
{
    if (r == -ENOENT) {
        log_err("%s: %s", what, err);
        return EMBER_EXIT_UNSUPPORTED;
    }
    log_err("%s", err);
    return r == -EINVAL || r == -ERANGE ? EMBER_EXIT_USAGE : EMBER_EXIT_FAILURE;
}

static void mhz(char *buf, size_t cap, uint32_t khz)
{
    if (khz)
        snprintf(buf, cap, "%u", (unsigned)((khz + 500) / 1000));
    else
        snprintf(buf, cap, "-");
}

static void temp(char *buf, size_t cap, double c)
{
    if (isfinite(c))
        snprintf(buf, cap, "%.1f C", c);
    else
        snprintf(buf, cap, "-");
}

static void print_status(const struct gov_status *s, const char *writable_why)
{
    char a[32], b[32], c[32], d[32], e[32], f[32], r[128];
    printf("policy     %s (configured)\n", s->policy);
    printf("backend    %s, root %s, p-state driver status: %s\n", s->backend, s->sysfs_root,
           s->pstate_status);
    if (writable_why[0])
        printf("control    monitor only: %s\n", writable_why);
    else if (s->originals_saved)
        printf("control    ember changed these settings; originals saved in %s\n", s->saved_path);
    else
        printf("control    frequencies can be set; nothing changed by ember\n");
    printf("boost      %s\n", s->boost < 0 ? "not available" : s->boost ? "on" : "off");
    temp(a, sizeof(a), s->cpu_temp_c);
    temp(b, sizeof(b), s->passive_trip_c);
    temp(c, sizeof(c), s->critical_trip_c);
    temp(d, sizeof(d), s->thermal_target_c);
    printf("cpu temp   %s (passive trip %s, critical %s, thermal target %s)\n", a, b, c, d);
    if (isfinite(s->power_cap_w))
        printf("power cap  %.1f W\n", s->power_cap_w);
    if (s->safe_state)
        printf("SAFE STATE %s\n", s->safe_reason);
    printf("\n%-14s %-8s %-15s %-11s %6s %6s %6s %6s %6s %5s %7s %7s  %s\n", "cluster", "cpus",
           "driver", "governor", "hwmin", "hwmax", "min", "max", "cur", "util", "temp", "target",
           "reasons");
    for (unsigned k = 0; k < s->n_clusters; k++) {
        const struct gov_status_cluster *x = &s->c[k];
        mhz(a, sizeof(a), x->cpuinfo_min_khz);
        mhz(b, sizeof(b), x->cpuinfo_max_khz);
        mhz(c, sizeof(c), x->scaling_min_khz);
        mhz(d, sizeof(d), x->scaling_max_khz);
        mhz(e, sizeof(e), x->cur_khz);
        mhz(f, sizeof(f), x->target_khz);
        gov_reasons_format(x->reasons, r, sizeof(r));
        char util[16];
        if (isfinite(x->util))
            snprintf(util, sizeof(util), "%3.0f%%", x->util * 100);
        else
            snprintf(util, sizeof(util), "-");
        char tc[16];
        temp(tc, sizeof(tc), x->temp_c);
        printf("%-14s %-8s %-15s %-11s %6s %6s %6s %6s %6s %5s %7s %7s  %s\n", x->name, x->cpus,
               x->driver, x->hw_governor, a, b, c, d, e, util, tc, f, r);
    }
    printf("(MHz; target is what the configured policy would set now)\n");
    if (s->n_zones) {
        printf("\n%-16s %-20s %9s %9s\n", "zone", "type", "temp", "passive");
        for (unsigned k = 0; k < s->n_zones; k++) {
            temp(a, sizeof(a), s->zones[k].temp_c);
            temp(b, sizeof(b), s->zones[k].passive_trip_c);
            printf("%-16s %-20s %9s %9s%s\n", s->zones[k].name, s->zones[k].type, a, b,
                   s->zones[k].valid ? "" : "  (invalid reading)");
        }
    }
    for (unsigned k = 0; k < s->n_conflicts; k++)
        printf("%sconflict   %s (pid %d): %s\n", k ? "" : "\n", s->conflicts[k].comm,
               s->conflicts[k].pid, s->conflicts[k].why);
}

static void status_usage(FILE *out)
{
    fprintf(out, "usage: ember governor status [--json] [--root DIR] [--config FILE]\n"
                 "Reads the cpufreq policies, sensors and the configured policy's current choice;\n"
                 "writes nothing. --json prints one object (the same as GET /v1/governor).\n");
}

static int governor_status(int argc, char **argv)
{
    struct gov_cli c = {0};
    const char *pos = NULL;
    int rc = parse_common(argc, argv, &c, "h", status_usage, &pos);
    if (rc >= 0)
        return rc;
    if (pos)
        return cli_usage_error("unexpected argument '%s'", pos);
    c.params.monitor_only = true;
    c.params.skip_crash_restore = true;
    struct gov_governor *g = NULL;
    char err[512] = "", why[512] = "";
    int r = gov_governor_new(&c.params, &g, err, sizeof(err));
    if (r)
        return open_exit(r, "no CPU frequency control here", err);
    if (!gov_backend_writable(gov_governor_backend(g), why, sizeof(why)))
        log_notice("monitor-only: %s", why);
    /* Two reads 200 ms apart: utilisation is a difference of /proc/stat counters. */
    uint64_t t0 = cmn_now_ns();
    gov_governor_tick(g, t0, GOV_PHASE_IDLE, NAN, NAN, NULL);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    gov_governor_tick(g, cmn_now_ns(), GOV_PHASE_IDLE, NAN, NAN, NULL);
    drain_events(g);
    struct gov_status *s = calloc(1, sizeof(*s));
    if (!s) {
        gov_governor_free(g);
        return EMBER_EXIT_FAILURE;
    }
    gov_governor_status(g, s);
    s->monitor_only = why[0] != 0;
    snprintf(s->monitor_reason, sizeof(s->monitor_reason), "%.250s", why);
    s->originals_saved = access(s->saved_path, F_OK) == 0;
    if (c.json) {
        char *json = gov_status_to_json(s);
        if (json)
            printf("%s\n", json);
        free(json);
    } else {
        print_status(s, why);
    }
    free(s);
    gov_governor_free(g);
    return EMBER_EXIT_OK;
}

static void set_usage(FILE *out)
{
    fprintf(out, "usage: ember governor set POLICY [--root DIR] [--saved FILE] [--config FILE]\n"
                 "Applies POLICY once, as of now (idle). The original settings are saved first;\n"
                 "`ember governor restore` undoes it. A running agent is switched through its API\n"
                 "(PUT /v1/governor) or MQTT (governor/set) instead. Policies:");
    for (const struct gov_policy_ops *const *p = gov_policy_list(); *p; p++)
        fprintf(out, " %s", (*p)->name);
    fprintf(out, "\n");
}

static int writable_or_exit(struct gov_governor *g)
{
    char why[512] = "";
    if (gov_backend_writable(gov_governor_backend(g), why, sizeof(why)))
        return -1;
    log_err("cannot set CPU frequencies: %s", why);
    return EMBER_EXIT_UNSUPPORTED;
}

static int governor_set(int argc, char **argv)
{
    struct gov_cli c = {0};
    const char *policy = NULL;
    int rc = parse_common(argc, argv, &c, "h", set_usage, &policy);
    if (rc >= 0)
        return rc;
    char names[256] = "";
    size_t used = 0;
    for (const struct gov_policy_ops *const *p = gov_policy_list(); *p && used < sizeof(names); p++)
        used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "",
                                 (*p)->name);
    if (!policy)
        return cli_usage_error("which policy? (%s)", names);
    if (!gov_policy_find(policy))
        return cli_usage_error("unknown policy '%s' (%s)", policy, names);
    snprintf(c.params.tunables.policy, sizeof(c.params.tunables.policy), "%s", policy);
    /* the settings an earlier `set` left are intended, and the file it saved holds the
     * originals: keep it, do not call that a crash */
    c.params.adopt_saved = true;
    struct gov_governor *g = NULL;
    char err[512] = "";
    int r = gov_governor_new(&c.params, &g, err, sizeof(err));
    if (r)
        return open_exit(r, "cannot set CPU frequencies", err);
    if ((rc = writable_or_exit(g)) >= 0) {
        drain_events(g);
        gov_governor_free(g);
        return rc;
    }
    struct gov_tick_result res;
    r = gov_governor_tick(g, cmn_now_ns(), GOV_PHASE_IDLE, NAN, NAN, &res);
    drain_events(g);
    struct gov_status *s = calloc(1, sizeof(*s));
    if (s) {
        gov_governor_status(g, s);
        for (unsigned k = 0; k < s->n_clusters; k++)
            printf("%-14s cpus %-8s %u MHz\n", s->c[k].name, s->c[k].cpus,
                   (unsigned)(res.c[k].khz / 1000));
        printf("boost %s; originals saved in %s (ember governor restore undoes this)\n",
               res.boost ? "on" : "off", s->saved_path);
        free(s);
    }
    gov_governor_free(g);
    if (r || res.monitor_only) {
        log_err("%s was not fully applied (%s)", policy, r ? strerror(-r) : "monitor-only");
        return EMBER_EXIT_FAILURE;
    }
    return EMBER_EXIT_OK;
}

static void restore_usage(FILE *out)
{
    fprintf(out, "usage: ember governor restore [--root DIR] [--saved FILE] [--config FILE]\n"
                 "Writes back the CPU frequency settings saved before ember's first change and\n"
                 "removes the saved file. Nothing to do (exit 0) when there is no saved file.\n");
}

static int governor_restore(int argc, char **argv)
{
    struct gov_cli c = {0};
    const char *pos = NULL;
    int rc = parse_common(argc, argv, &c, "h", restore_usage, &pos);
    if (rc >= 0)
        return rc;
    if (pos)
        return cli_usage_error("unexpected argument '%s'", pos);
    const char *saved = c.params.saved_path;
    if (access(saved, F_OK) != 0) {
        printf("nothing to restore (no %s)\n", saved);
        return EMBER_EXIT_OK;
    }
    struct gov_backend_params bp = {.sysfs_root = c.params.sysfs_root};
    struct gov_backend *b = NULL;
    char err[512] = "", why[512] = "";
    int r = gov_backend_open(&bp, &b, err, sizeof(err));
    if (r)
        return open_exit(r, "cannot set CPU frequencies", err);
    if (!gov_backend_writable(b, why, sizeof(why))) {
        log_err("cannot restore CPU frequency settings: %s", why);
        gov_backend_free(b);
        return EMBER_EXIT_UNSUPPORTED;
    }
    struct gov_events ev;
    gov_events_init(&ev);
    unsigned writes = 0;
    r = gov_saved_restore_file(b, saved, &ev, &writes, err, sizeof(err));
    struct gov_event e;
    while (gov_events_pop(&ev, &e))
        if (e.kind != GOV_EVENT_RESTORED)
            log_warn("%s: %s", gov_event_kind_name(e.kind), e.detail);
    gov_backend_free(b);
    if (r) {
        log_err("%s: %s", saved, err);
        return EMBER_EXIT_FAILURE;
    }
    printf("restored %u value(s) from %s\n", writes, saved);
    return EMBER_EXIT_OK;
}

/* ---- calibrate ---- */

static volatile sig_atomic_t calib_stop;

static void calib_signal(int sig)
{
    (void)sig;
    calib_stop = 1;
}

static void calibrate_usage(FILE *out)
{
    fprintf(out,
            "usage: ember governor calibrate -m MODEL [--out FILE] [--steps N] [--prefill N]\n"
            "                                [--decode N] [--threads N] [--root DIR]\n"
            "                                [--saved FILE] [--config FILE]\n"
            "                                [--profile-out FILE [--base PROFILE]]\n"
            "Pins the CPUs to a ladder of frequencies (every available one up to --steps, default\n"
            "16; evenly spaced on continuous-range drivers), runs a fixed workload on MODEL at\n"
            "each (a prefill of --prefill tokens, default 128, then --decode single-token steps,\n"
            "default 32; best of three), measures tokens/s and, where RAPL, hwmon or a battery\n"
            "reports it, the watts during decode, and writes the curve to --out (default\n"
            "[governor] calibration_path). The original settings are restored afterwards.\n"
            "--profile-out also writes a simulator profile for `ember governor sim --profile\n"
            "FILE`: this machine's clusters, frequencies and measured engine speed (fitted to\n"
            "the plant's model; the fit is printed per point), the model's size, and voltages,\n"
            "power, thermal and wall terms from --base (a built-in profile or a profile file,\n"
            "default rk3588; those stay estimates for this machine).\n"
            "Exits 3 when the frequency cannot be set here (no cpufreq, no permission).\n");
}

/* Frequency of cluster c at step s of n: the same rank across every cluster's table. */
static uint32_t ladder_khz(const struct gov_cluster_info *c, unsigned s, unsigned n)
{
    if (c->n_freqs > 0) {
        unsigned idx = n > 1 ? (unsigned)((double)s * (c->n_freqs - 1) / (n - 1) + 0.5) : 0;
        return c->freqs_khz[idx < c->n_freqs ? idx : c->n_freqs - 1];
    }
    double span = (double)c->cpuinfo_max_khz - c->cpuinfo_min_khz;
    return (uint32_t)(c->cpuinfo_min_khz + (n > 1 ? span * s / (n - 1) : 0) + 0.5);
}

struct calib_run {
    struct eng_context *ctx;
    int32_t n_vocab;
    int prefill, decode;
    struct tel_power *power;
};

/* One run of the workload: prefill tok/s, decode tok/s, decode watts (NAN when unknown). */
static int calib_run_once(struct calib_run *cr, struct gov_calib_point *pt)
{
    int32_t *tok = malloc(sizeof(*tok) * (size_t)cr->prefill);
    if (!tok)
        return -ENOMEM;
    for (int i = 0; i < cr->prefill; i++)
        tok[i] = (int32_t)(((uint64_t)i * 7919u + 13u) % (uint64_t)cr->n_vocab);
    eng_kv_clear(cr->ctx);
    uint64_t t0 = cmn_now_ns();
    int r = eng_decode(cr->ctx, tok, (size_t)cr->prefill);
    uint64_t t1 = cmn_now_ns();
    free(tok);
    if (r)
        return r;
    struct tel_power_reading pr;
    if (cr->power)
        tel_power_read(cr->power, cmn_now_ns(), NULL, &pr);
    uint64_t t2 = cmn_now_ns();
    for (int i = 0; i < cr->decode && r == 0; i++) {
        int32_t t = (int32_t)(((uint64_t)i * 104729u + 7u) % (uint64_t)cr->n_vocab);
        r = eng_decode(cr->ctx, &t, 1);
    }
    uint64_t t3 = cmn_now_ns();
    if (r)
        return r;
    pt->prefill_tok_s = cr->prefill / ((double)(t1 - t0) / 1e9);
    pt->decode_tok_s = cr->decode / ((double)(t3 - t2) / 1e9);
    pt->watts = NAN;
    /* a source that has not measured anything yet reads 0 W: that is unknown, not free */
    if (cr->power && tel_power_read(cr->power, cmn_now_ns(), NULL, &pr) == 0 &&
        isfinite(pr.power_w) && pr.power_w > 0)
        pt->watts = pr.power_w;
    return 0;
}

/* The best of three runs: short runs are disturbed by other work and the page cache, never
 * sped up, so the fastest is the closest to what the frequency allows. Watts come from the
 * fastest decode. */
static int calib_measure(struct calib_run *cr, struct gov_calib_point *pt)
{
    struct gov_calib_point best = {.prefill_tok_s = 0, .decode_tok_s = 0, .watts = NAN};
    for (int k = 0; k < 3; k++) {
        struct gov_calib_point p = {0};
        int r = calib_run_once(cr, &p);
        if (r)
            return r;
        if (p.prefill_tok_s > best.prefill_tok_s)
            best.prefill_tok_s = p.prefill_tok_s;
        if (p.decode_tok_s > best.decode_tok_s) {
            best.decode_tok_s = p.decode_tok_s;
            best.watts = p.watts;
        }
    }
    pt->prefill_tok_s = best.prefill_tok_s;
    pt->decode_tok_s = best.decode_tok_s;
    pt->watts = best.watts;
    return 0;
}

static int governor_calibrate(int argc, char **argv)
{
    struct gov_cli c = {.steps = 16, .prefill = 128, .decode = 32};
    const char *pos = NULL;
    int rc = parse_common(argc, argv, &c, "m:h", calibrate_usage, &pos);
    if (rc >= 0)
        return rc;
    if (pos)
        return cli_usage_error("unexpected argument '%s'", pos);
    if (!c.model)
        return cli_usage_error("-m MODEL is required");
    const char *out = c.out ? c.out : c.params.calibration_path;
    if (!out || !*out)
        return cli_usage_error("no --out and no [governor] calibration_path");
    if (c.base && !c.profile_out)
        return cli_usage_error("--base is for --profile-out");
    c.params.calibration_path = NULL; /* the curve being replaced must not be loaded */
    struct gov_governor *g = NULL;
    struct eng_model *model = NULL;
    struct calib_run cr = {.prefill = c.prefill, .decode = c.decode};
    struct gov_calibration *cal = NULL;
    char err[512] = "";
    int r = gov_governor_new(&c.params, &g, err, sizeof(err));
    if (r)
        return open_exit(r, "cannot set CPU frequencies", err);
    if ((rc = writable_or_exit(g)) >= 0)
        goto out;
    rc = EMBER_EXIT_FAILURE;

    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    if ((r = eng_model_load(c.model, &mp, &model, err, sizeof(err)))) {
        log_err("%s", err);
        goto out;
    }
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = (uint32_t)(c.prefill + c.decode + 8);
    cp.n_threads = (uint32_t)c.threads;
    if ((r = eng_context_new(model, &cp, &cr.ctx, err, sizeof(err)))) {
        log_err("%s", err);
        goto out;
    }
    cr.n_vocab = eng_n_vocab(cr.ctx);
    struct tel_power_params pp;
    tel_power_params_defaults(&pp);
    pp.root = c.params.sysfs_root;
    pp.sources_mask = (1u << TEL_SOURCE_RAPL) | (1u << TEL_SOURCE_HWMON) |
                      (1u << TEL_SOURCE_BATTERY); /* measured only, never the estimate */
    if (tel_power_new(&pp, cmn_now_ns(), 0, &cr.power, err, sizeof(err)) == 0)
        log_info("power from %s", tel_power_describe(cr.power));
    else
        log_notice("no power sensor (%s); the curve has no watts", err);

    const struct gov_controller *ctl = gov_governor_controller(g);
    unsigned ncl = gov_controller_n_clusters(ctl);
    unsigned steps = 0;
    for (unsigned k = 0; k < ncl; k++) {
        const struct gov_cluster_info *ci = gov_controller_cluster(ctl, k);
        unsigned n = ci->n_freqs ? ci->n_freqs : (unsigned)c.steps;
        steps = n > steps ? n : steps;
    }
    if (steps > (unsigned)c.steps)
        steps = (unsigned)c.steps;
    cal = calloc(1, sizeof(*cal));
    if (!cal)
        goto out;
    snprintf(cal->model, sizeof(cal->model), "%s", c.model);
    time_t now = time(NULL);
    strftime(cal->created, sizeof(cal->created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cal->n_clusters = ncl;
    for (unsigned k = 0; k < ncl; k++)
        snprintf(cal->cluster_names[k], GOV_NAME_MAX, "%s", gov_controller_cluster(ctl, k)->name);

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = calib_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    printf("%-8s %-24s %12s %12s %8s\n", "step", "MHz per cluster", "prefill t/s", "decode t/s",
           "watts");
    int failed = 0;
    for (unsigned s = 0; s < steps && !calib_stop && !failed; s++) {
        uint32_t khz[GOV_MAX_CLUSTERS];
        bool boost = false;
        for (unsigned k = 0; k < ncl; k++) {
            const struct gov_cluster_info *ci = gov_controller_cluster(ctl, k);
            khz[k] = ladder_khz(ci, s, steps);
            boost |= ci->base_khz && khz[k] > ci->base_khz;
        }
        r = gov_governor_pin(g, khz, ncl, boost);
        drain_events(g);
        if (r) {
            log_err("setting step %u failed: %s", s, strerror(-r));
            failed = 1;
            break;
        }
        struct gov_calib_point *pt = &cal->points[cal->n_points];
        memcpy(pt->khz, khz, sizeof(pt->khz));
        if ((r = calib_measure(&cr, pt))) {
            log_err("the workload failed at step %u: %s", s, strerror(-r));
            failed = 1;
            break;
        }
        cal->n_points++;
        char list[128] = "";
        size_t len = 0;
        for (unsigned k = 0; k < ncl && len < sizeof(list); k++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%u", k ? "/" : "",
                                    (unsigned)(khz[k] / 1000));
        char w[16] = "unknown";
        if (isfinite(pt->watts))
            snprintf(w, sizeof(w), "%.2f", pt->watts);
        printf("%-8u %-24s %12.1f %12.1f %8s\n", s, list, pt->prefill_tok_s, pt->decode_tok_s, w);
        fflush(stdout);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    /* Whatever happened, give the machine back. */
    if ((r = gov_governor_restore(g, err, sizeof(err))))
        log_err("restoring the original settings failed: %s (run `ember "
                "governor restore`)",
                err);
    drain_events(g);
    if (calib_stop) {
        log_err("interrupted; nothing written");
        goto out;
    }
    if (failed || r)
        goto out;
    if ((r = gov_calibration_save(cal, out, err, sizeof(err)))) {
        log_err("%s", err);
        goto out;
    }
    printf("curve with %u points written to %s\n", cal->n_points, out);
    if (c.profile_out) {
        if ((r = calib_profile_write(c.base ? c.base : "rk3588", cal, ctl, c.model, c.profile_out,
                                     err, sizeof(err)))) {
            log_err("profile: %s", err);
            goto out;
        }
        printf("profile written to %s (ember governor sim --profile %s)\n", c.profile_out,
               c.profile_out);
    }
    rc = EMBER_EXIT_OK;
out:
    free(cal);
    tel_power_free(cr.power);
    eng_context_free(cr.ctx);
    eng_model_free(model);
    gov_governor_free(g);
    return rc;
}

int cmd_governor(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } subs[] = {
        {"status", governor_status},       {"set", governor_set},     {"restore", governor_restore},
        {"calibrate", governor_calibrate}, {"sim", cmd_governor_sim},
    };
    if (argc < 2)
        return cli_usage_error("say what to do: status, set, restore, calibrate or sim");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        governor_usage(stdout);
        return EMBER_EXIT_OK;
    }
    for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
        if (strcmp(argv[1], subs[k].name) == 0) {
            char name[32];
            snprintf(name, sizeof(name), "governor %s", subs[k].name);
            agent_log_set_command(name);
            return subs[k].run(argc - 1, argv + 1);
        }
    return cli_usage_error("unknown sub-command '%s' (status, set, restore, calibrate, sim)",
                           argv[1]);
}
