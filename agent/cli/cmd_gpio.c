/* `ember gpio status|test`: the [gpio] lines from the command line. status resolves every
 * configured line (chip, offset, name, who holds it) without requesting anything and lists the
 * machine's chips; test requests the configured lines itself (stop the agent first) and
 * exercises them: the LED through its five patterns, the fan on, through its PWM duties and off,
 * and the button and power inputs watched for presses and changes, printed as they come. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common/timeutil.h"
#include "config.h"
#include "gpio.h"
#include "gpio_chip.h"
#include "log.h"

static void gpio_usage(FILE *out)
{
    fprintf(out,
            "usage: ember gpio status [--all] [--config FILE]\n"
            "       ember gpio test [led|fan|button|power|all] [--seconds N] [--config FILE]\n"
            "\n"
            "status  where each [gpio] line is (chip, offset, name), whether it exists and who\n"
            "        holds it, the PWM channel's settings, and the machine's GPIO chips (with\n"
            "        --all every line, else named or used ones). Requests nothing.\n"
            "test    requests the configured lines (the agent must not hold them: stop it\n"
            "        first) and exercises them: led shows each pattern (starting, ready,\n"
            "        generating, throttling, error) for N seconds; fan runs on, at minimum and\n"
            "        full PWM duty, then off, N seconds each; button and power are watched for\n"
            "        N seconds, printing every debounced press or change. Default: all\n"
            "        configured functions, N = 4.\n"
            "\n"
            "Lines come from [gpio] in --config FILE (default " EMBER_DEFAULT_CONFIG
            "), used even\n"
            "while [gpio] enabled = false. See docs/gpio.md.\n"
            "Exit codes: 0 ok, 1 a line failed, 2 usage, 3 a function asked for is not on this\n"
            "machine (missing chip or line, busy line).\n");
}

static const char *const functions[] = {"led", "fan", "button", "power"};

static const char *spec_of(const struct cfg_gpio *c, unsigned i)
{
    return i == 0 ? c->led : i == 1 ? c->fan : i == 2 ? c->button : c->power;
}

static bool low_of(const struct cfg_gpio *c, unsigned i)
{
    return i == 0   ? c->led_active_low
           : i == 1 ? c->fan_active_low
           : i == 2 ? c->button_active_low
                    : c->power_active_low;
}

static void print_chip(void *user, const struct gpio_chip_info *chip,
                       const struct gpio_line_info *lines, unsigned n)
{
    bool all = *(bool *)user;
    printf("  %s [%s] %u lines\n", chip->name, chip->label, chip->n_lines);
    for (unsigned i = 0; i < n; i++) {
        const struct gpio_line_info *l = &lines[i];
        if (!all && !l->name[0] && !l->used)
            continue;
        printf("    %3u %-20s %-6s%s%s%s\n", l->offset, l->name[0] ? l->name : "-",
               l->output ? "output" : "input", l->active_low ? " active-low" : "",
               l->used ? " used by " : "", l->used ? (l->consumer[0] ? l->consumer : "?") : "");
    }
}

static void print_pwm(const struct cfg_gpio *c)
{
    if (c->fan_pwm_chip < 0) {
        printf("%-7s not configured\n", "pwm");
        return;
    }
    const char *root = c->pwm_sysfs_root[0] ? c->pwm_sysfs_root : "/";
    const char *sep = root[strlen(root) - 1] == '/' ? "" : "/";
    char dir[1100];
    snprintf(dir, sizeof(dir), "%s%ssys/class/pwm/pwmchip%d", root, sep, c->fan_pwm_chip);
    if (access(dir, F_OK) != 0) {
        printf("%-7s pwmchip%d/pwm%d: missing: no PWM chip %s\n", "pwm", c->fan_pwm_chip,
               c->fan_pwm_channel, dir);
        return;
    }
    printf("%-7s pwmchip%d/pwm%d under %s:", "pwm", c->fan_pwm_chip, c->fan_pwm_channel, root);
    const char *attrs[] = {"period", "duty_cycle", "enable"};
    for (unsigned i = 0; i < 3; i++) {
        char path[1200], buf[64] = "";
        snprintf(path, sizeof(path), "%s%ssys/class/pwm/pwmchip%d/pwm%d/%s", root, sep,
                 c->fan_pwm_chip, c->fan_pwm_channel, attrs[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            printf(" %s unreadable (%s)", attrs[i], strerror(errno));
            continue;
        }
        if (fgets(buf, sizeof(buf), f))
            buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
        printf(" %s %s", attrs[i], buf);
    }
    printf("\n");
}

static int gpio_status(const struct agent_config *cfg, bool all)
{
    const struct cfg_gpio *c = &cfg->gpio;
    printf("[gpio] enabled = %s, chip = %s, debounce %d ms, long press %d ms, fan %g/%g C\n",
           c->enabled ? "true" : "false", c->chip, c->debounce_ms, c->long_press_ms,
           c->fan_on_temp_c, c->fan_off_temp_c);
    for (unsigned i = 0; i < 4; i++) {
        const char *spec = spec_of(c, i);
        char chip[64], name[64], err[256], where[128];
        unsigned offset;
        int rc =
            agent_gpio_parse_line(spec, c->chip, chip, sizeof(chip), name, sizeof(name), &offset);
        if (rc == -ENOENT) {
            printf("%-7s not configured\n", functions[i]);
            continue;
        }
        if (rc < 0) {
            printf("%-7s %s: malformed (OFFSET, CHIP:OFFSET, CHIP:NAME or NAME)\n", functions[i],
                   spec);
            continue;
        }
        struct gpio_line_request r = {
            .chip = chip, .name = name[0] ? name : NULL, .offset = offset};
        struct gpio_line_info info;
        rc = gpio_line_lookup(&r, &info, where, sizeof(where), err, sizeof(err));
        if (rc < 0)
            printf("%-7s %s: missing: %s\n", functions[i], spec, err);
        else
            printf("%-7s %s%s: %s\n", functions[i], where, low_of(c, i) ? " active-low" : "",
                   info.used ? (strcmp(info.consumer, "ember") == 0
                                    ? "held by ember (the agent is running)"
                                    : "busy (held by another consumer)")
                             : "free");
        if (rc == 0 && info.used && strcmp(info.consumer, "ember") != 0)
            printf("        held by \"%s\"\n", info.consumer);
    }
    print_pwm(c);
    printf("chips:\n");
    int n = gpio_chips_list(print_chip, &all);
    if (n < 0) {
        log_err("cannot list GPIO chips: %s", strerror(-n));
        return EMBER_EXIT_FAILURE;
    }
    if (n == 0)
        printf("  none: this machine has no GPIO chips (/dev/gpiochip*)\n");
    return EMBER_EXIT_OK;
}

/* ---- test ---- */

struct test_run {
    unsigned warnings;
    unsigned presses;
};

static void on_press(void *user, enum agent_gpio_press p)
{
    struct test_run *t = user;
    t->presses++;
    printf("  button: %s press\n", p == AGENT_GPIO_PRESS_LONG ? "long" : "short");
    fflush(stdout);
}

static void on_power(void *user, bool lost)
{
    (void)user;
    printf("  power: %s\n", lost ? "LOST (input asserted)" : "present");
    fflush(stdout);
}

static void on_warn(void *user, const char *msg)
{
    struct test_run *t = user;
    t->warnings++;
    log_warn("%s", msg);
    if (strstr(msg, "used by ember"))
        agent_log_hint("the agent holds the lines: stop it first (systemctl stop ember)");
}

/* Runs the GPIO object's timers and inputs for seconds, as the agent's loop would. */
static void run_for(struct agent_gpio *g, double seconds)
{
    uint64_t end = cmn_now_ns() + (uint64_t)(seconds * 1e9);
    for (;;) {
        uint64_t now = cmn_now_ns();
        if (now >= end)
            break;
        uint64_t due = agent_gpio_next_deadline_ns(g);
        if (due <= now) {
            agent_gpio_on_timer(g, now);
            continue;
        }
        uint64_t until = due < end ? due : end;
        int fds[4];
        unsigned n = agent_gpio_fds(g, fds, 4);
        struct pollfd p[4];
        for (unsigned i = 0; i < n; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        int ms = (int)((until - now + 999999) / 1000000);
        if (poll(p, n, ms) > 0)
            for (unsigned i = 0; i < n; i++)
                if (p[i].revents & POLLIN)
                    agent_gpio_on_fd(g, p[i].fd, cmn_now_ns());
    }
}

static int gpio_test(const struct agent_config *cfg, const char *what, double seconds)
{
    struct cfg_gpio c = cfg->gpio;
    /* only the functions asked for are requested */
    for (unsigned i = 0; i < 4; i++) {
        if (strcmp(what, "all") == 0 || strcmp(what, functions[i]) == 0)
            continue;
        char *spec = i == 0 ? c.led : i == 1 ? c.fan : i == 2 ? c.button : c.power;
        spec[0] = '\0';
        if (i == 1)
            c.fan_pwm_chip = -1;
    }
    struct test_run t = {0};
    struct agent_gpio_hooks hooks = {
        .press = on_press, .power = on_power, .warn = on_warn, .user = &t};
    struct agent_gpio *g;
    if (agent_gpio_open(&c, &hooks, cmn_now_ns(), &g) < 0) {
        log_err("out of memory");
        return EMBER_EXIT_FAILURE;
    }
    struct agent_gpio_state st;
    agent_gpio_state(g, &st);
    bool any = st.has_led || st.has_fan || st.has_pwm || st.has_button || st.has_power;
    if (!any) {
        agent_gpio_close(g);
        if (t.warnings == 0)
            log_err("no [gpio] line configured for '%s' (see ember gpio status)", what);
        return EMBER_EXIT_UNSUPPORTED;
    }
    double cool = c.fan_off_temp_c - 1, warm = c.fan_on_temp_c, hot = c.fan_full_temp_c;
    if (st.has_led) {
        static const struct {
            const char *label;
            struct agent_gpio_facts f;
        } steps[] = {
            {"starting (1 s on, 1 s off)", {.temp_c = NAN}},
            {"ready (steady)", {.ready = true, .temp_c = NAN}},
            {"generating (4 Hz blink)", {.ready = true, .generating = true, .temp_c = NAN}},
            {"throttling (two flashes)", {.ready = true, .throttling = true, .temp_c = NAN}},
            {"error (three flashes)", {.ready = true, .error = true, .temp_c = NAN}},
        };
        printf("led %s:\n", st.led_where);
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            printf("  %s for %g s\n", steps[i].label, seconds);
            fflush(stdout);
            struct agent_gpio_facts f = steps[i].f;
            f.temp_c = hot; /* the fan (when also tested) stays on meanwhile */
            agent_gpio_update(g, &f, cmn_now_ns());
            run_for(g, seconds);
        }
    }
    if (st.has_fan || st.has_pwm) {
        printf("fan %s%s%s:\n", st.has_fan ? st.fan_where : "",
               st.has_fan && st.has_pwm ? " + " : "", st.has_pwm ? st.pwm_where : "");
        const double temps[] = {warm, hot, cool};
        const char *labels[] = {"on (minimum duty)", "on (full duty)", "off"};
        for (unsigned i = 0; i < 3; i++) {
            struct agent_gpio_facts f = {.ready = true, .temp_c = temps[i]};
            agent_gpio_update(g, &f, cmn_now_ns());
            agent_gpio_state(g, &st);
            printf("  %s: as at %.0f C, duty %.0f%%, for %g s\n", labels[i], temps[i],
                   st.fan_duty_pct, seconds);
            fflush(stdout);
            run_for(g, seconds);
        }
    }
    if (st.has_button || st.has_power) {
        printf("watching%s%s%s%s for %g s (press the button, pull the power)...\n",
               st.has_button ? " button " : "", st.has_button ? st.button_where : "",
               st.has_power ? " power " : "", st.has_power ? st.power_where : "", seconds);
        fflush(stdout);
        struct agent_gpio_facts f = {.ready = true, .temp_c = hot};
        agent_gpio_update(g, &f, cmn_now_ns());
        run_for(g, seconds);
        if (st.has_button)
            printf("  %u press(es)\n", t.presses);
    }
    agent_gpio_state(g, &st);
    unsigned errors = st.write_errors;
    agent_gpio_close(g);
    printf("done%s\n", errors ? "" : ": every write succeeded");
    if (errors) {
        log_err("%u line write(s) failed", errors);
        return EMBER_EXIT_FAILURE;
    }
    return t.warnings ? EMBER_EXIT_UNSUPPORTED : EMBER_EXIT_OK;
}

int cmd_gpio(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2)
        return cli_usage_error("say what to do: status or test");
    const char *action = argv[1];
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        gpio_usage(stdout);
        return EMBER_EXIT_OK;
    }
    if (strcmp(action, "status") != 0 && strcmp(action, "test") != 0)
        return cli_usage_error("unknown action '%s' (status or test)", action);
    const char *path = NULL;
    double seconds = 4;
    bool all = false;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, ":c:s:ah", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 's': {
            char *end;
            seconds = strtod(optarg, &end);
            if (*end || !(seconds >= 0.1 && seconds <= 3600))
                return cli_usage_error("--seconds: '%s' is not a number in 0.1..3600", optarg);
            break;
        }
        case 'a':
            all = true;
            break;
        case 'h':
            gpio_usage(stdout);
            return EMBER_EXIT_OK;
        default:
            return cli_option_error(opt, argv + 1);
        }
    }
    const char *what = "all";
    if (optind + 1 < argc) {
        what = argv[optind + 1];
        if (strcmp(action, "status") == 0)
            return cli_usage_error("unexpected argument '%s'", what);
        bool known = strcmp(what, "all") == 0;
        for (unsigned i = 0; i < 4; i++)
            known = known || strcmp(what, functions[i]) == 0;
        if (!known)
            return cli_usage_error("unknown function '%s' (led, fan, button, power or all)", what);
        if (optind + 2 < argc)
            return cli_usage_error("unexpected argument '%s'", argv[optind + 2]);
    }
    struct agent_config cfg;
    int rc = agent_config_load_for_cli(path, &cfg);
    if (rc != EMBER_EXIT_OK)
        return rc;
    return strcmp(action, "status") == 0 ? gpio_status(&cfg, all) : gpio_test(&cfg, what, seconds);
}
