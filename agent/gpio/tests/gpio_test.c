/* The GPIO part against the fake chip library (fake_gpiod.c linked in place of libgpiod): line
 * specs, the LED pattern of every state (read back from the fake line slot by slot, also
 * active-low), fan hysteresis over a temperature sequence with PWM duties in a fake sysfs tree,
 * debounced short and long presses, the power-loss input, and bad configurations (unknown chip,
 * busy line, unknown name, malformed spec, failing writes) each named in one warning while the
 * other functions keep working. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ember_test.h"
#include "fake_gpiod.h"
#include "gpio.h"

#define MS 1000000ull
#define T0 (1000ull * 1000 * MS) /* an arbitrary monotonic start */

static char warnings[8][512];
static unsigned n_warnings;
static unsigned n_short, n_long, n_power_lost, n_power_back;

static void on_warn(void *user, const char *msg)
{
    (void)user;
    if (n_warnings < 8)
        snprintf(warnings[n_warnings], sizeof(warnings[0]), "%s", msg);
    n_warnings++;
}

static void on_press(void *user, enum agent_gpio_press p)
{
    (void)user;
    if (p == AGENT_GPIO_PRESS_SHORT)
        n_short++;
    else if (p == AGENT_GPIO_PRESS_LONG)
        n_long++;
}

static void on_power(void *user, bool lost)
{
    (void)user;
    if (lost)
        n_power_lost++;
    else
        n_power_back++;
}

static const struct agent_gpio_hooks hooks = {
    .press = on_press, .power = on_power, .warn = on_warn};

static void reset_counts(void)
{
    n_warnings = n_short = n_long = n_power_lost = n_power_back = 0;
    memset(warnings, 0, sizeof(warnings));
}

static const char *const names0[8] = {"STATUS_LED", "FAN", "BUTTON", "UPS_ONBATT",
                                      NULL,         NULL,  NULL,     NULL};

static void setup_chips(void)
{
    fake_gpiod_reset();
    fake_gpiod_add_chip("pinctrl-test", 8, names0);
    fake_gpiod_add_chip("expander", 4, NULL);
    reset_counts();
}

static struct cfg_gpio base_cfg(void)
{
    struct agent_config all;
    agent_config_defaults(&all);
    struct cfg_gpio c = all.gpio;
    c.enabled = true;
    return c;
}

/* Runs the object's timers up to `until` the way the daemon's loop does. */
static void advance(struct agent_gpio *g, uint64_t until)
{
    for (int guard = 0; guard < 100000; guard++) {
        uint64_t due = agent_gpio_next_deadline_ns(g);
        if (due > until)
            return;
        agent_gpio_on_timer(g, due);
    }
    CHECK_MSG(0, "timer loop did not settle");
}

/* The LED's physical level in each 125 ms slot over two cycles from `from`, as '1'/'0'. */
static void sample_led(struct agent_gpio *g, uint64_t from, int chip, unsigned off, bool low,
                       char *out)
{
    for (unsigned s = 0; s < 2 * AGENT_GPIO_LED_SLOTS; s++) {
        advance(g, from + s * AGENT_GPIO_LED_SLOT_NS + AGENT_GPIO_LED_SLOT_NS / 2);
        int level = fake_gpiod_output(chip, off);
        out[s] = level < 0 ? '?' : (char)('0' + (level ^ (low ? 1 : 0)));
    }
    out[2 * AGENT_GPIO_LED_SLOTS] = '\0';
}

/* The patterns docs/gpio.md promises, one 2 s cycle in 125 ms slots, written out by hand. */
static const char *const documented[AGENT_GPIO_LED_COUNT] = {
    [AGENT_GPIO_LED_OFF] = "0000000000000000",
    [AGENT_GPIO_LED_STARTING] = "1111111100000000",   /* 1 s on, 1 s off */
    [AGENT_GPIO_LED_READY] = "1111111111111111",      /* steady */
    [AGENT_GPIO_LED_GENERATING] = "1010101010101010", /* 4 Hz */
    [AGENT_GPIO_LED_THROTTLING] = "1010000000000000", /* two flashes */
    [AGENT_GPIO_LED_ERROR] = "1010100000000000",      /* three flashes */
};

static void expected_led(enum agent_gpio_led led, char *out)
{
    snprintf(out, 2 * AGENT_GPIO_LED_SLOTS + 1, "%s%s", documented[led], documented[led]);
}

static void test_parse(void)
{
    char chip[64], name[64];
    unsigned off;
    CHECK_EQ_INT(agent_gpio_parse_line("", "gpiochip0", chip, 64, name, 64, &off), -ENOENT);
    CHECK_EQ_INT(agent_gpio_parse_line("17", "gpiochip0", chip, 64, name, 64, &off), 0);
    CHECK_STR(chip, "gpiochip0");
    CHECK_EQ_INT(off, 17);
    CHECK_STR(name, "");
    CHECK_EQ_INT(agent_gpio_parse_line("gpiochip2:5", "gpiochip0", chip, 64, name, 64, &off), 0);
    CHECK_STR(chip, "gpiochip2");
    CHECK_EQ_INT(off, 5);
    CHECK_EQ_INT(agent_gpio_parse_line("gpiochip1:FAN_EN", "x", chip, 64, name, 64, &off), 0);
    CHECK_STR(chip, "gpiochip1");
    CHECK_STR(name, "FAN_EN");
    CHECK_EQ_INT(agent_gpio_parse_line("STATUS_LED", "gpiochip0", chip, 64, name, 64, &off), 0);
    CHECK_STR(chip, "");
    CHECK_STR(name, "STATUS_LED");
    const char *bad[] = {":3", "gpiochip0:", "a b", "chip:x:y", "99999", "gpiochip0:1 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(agent_gpio_parse_line(bad[i], "gpiochip0", chip, 64, name, 64, &off) == -EINVAL,
                  "'%s' accepted", bad[i]);
}

static void test_led_patterns(bool active_low)
{
    setup_chips();
    struct cfg_gpio c = base_cfg();
    snprintf(c.led, sizeof(c.led), "STATUS_LED"); /* by name, on any chip */
    c.led_active_low = active_low;
    struct agent_gpio *g;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 0);
    CHECK(fake_gpiod_requested(0, 0));
    char got[40], want[40], seen[AGENT_GPIO_LED_COUNT][40];
    /* starting is shown from open */
    sample_led(g, T0, 0, 0, active_low, got);
    expected_led(AGENT_GPIO_LED_STARTING, want);
    CHECK_STR(got, want);
    snprintf(seen[AGENT_GPIO_LED_STARTING], 40, "%s", got);
    static const struct {
        enum agent_gpio_led led;
        struct agent_gpio_facts f;
    } states[] = {
        {AGENT_GPIO_LED_READY, {.ready = true}},
        {AGENT_GPIO_LED_GENERATING, {.ready = true, .generating = true}},
        {AGENT_GPIO_LED_THROTTLING, {.ready = true, .generating = true, .throttling = true}},
        {AGENT_GPIO_LED_ERROR, {.ready = true, .throttling = true, .error = true}},
        {AGENT_GPIO_LED_STARTING, {.ready = false}},
    };
    uint64_t t = T0 + 10000 * MS + 37 * MS; /* not on a slot boundary */
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct agent_gpio_facts f = states[i].f;
        f.temp_c = NAN;
        CHECK_EQ_INT(agent_gpio_led_pick(&f), states[i].led);
        advance(g, t);
        agent_gpio_update(g, &f, t);
        sample_led(g, t, 0, 0, active_low, got);
        expected_led(states[i].led, want);
        CHECK_MSG(strcmp(got, want) == 0, "%s: got %s want %s", agent_gpio_led_name(states[i].led),
                  got, want);
        snprintf(seen[states[i].led], 40, "%s", got);
        if (states[i].led == AGENT_GPIO_LED_READY) /* steady: no wake-ups */
            CHECK(agent_gpio_next_deadline_ns(g) == UINT64_MAX);
        t += 20000 * MS + 11 * MS;
    }
    /* five patterns a person can tell apart: pairwise different, none dark */
    for (int a = AGENT_GPIO_LED_STARTING; a < AGENT_GPIO_LED_COUNT; a++) {
        CHECK(strchr(seen[a], '1') != NULL);
        for (int b = a + 1; b < AGENT_GPIO_LED_COUNT; b++)
            CHECK_MSG(strcmp(seen[a], seen[b]) != 0, "%s == %s", agent_gpio_led_name(a),
                      agent_gpio_led_name(b));
    }
    /* the same facts again write nothing */
    struct agent_gpio_facts ready = {.ready = true, .temp_c = NAN};
    agent_gpio_update(g, &ready, t);
    unsigned writes = fake_gpiod_writes(0, 0);
    for (int i = 1; i <= 10; i++)
        agent_gpio_update(g, &ready, t + (uint64_t)i * 300 * MS);
    CHECK_EQ_INT(fake_gpiod_writes(0, 0), writes);
    agent_gpio_close(g);
    CHECK(!fake_gpiod_requested(0, 0)); /* released, dark */
    CHECK_EQ_INT(fake_gpiod_output(0, 0), active_low ? 1 : 0);
    CHECK_EQ_INT(fake_gpiod_open_chips(), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK_MSG(0, "cannot write %s", path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

static long read_num(const char *dir, const char *attr)
{
    char path[512], buf[64] = "";
    snprintf(path, sizeof(path), "%s/%s", dir, attr);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    char *end;
    long v = strtol(buf, &end, 10);
    return end == buf || (*end && *end != '\n') ? -2 : v;
}

static void make_pwm_tree(char *root, size_t cap, char *pwm0, size_t pcap)
{
    snprintf(root, cap, "%s/gpio-pwm-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root))
        abort();
    char p[600];
    const char *dirs[] = {"sys",
                          "sys/class",
                          "sys/class/pwm",
                          "sys/class/pwm/pwmchip0",
                          "sys/class/pwm/pwmchip0/pwm0",
                          "sys/class/pwm/pwmchip1"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
    }
    snprintf(pwm0, pcap, "%s/sys/class/pwm/pwmchip0/pwm0", root);
    const char *files[][2] = {{"sys/class/pwm/pwmchip0/export", ""},
                              {"sys/class/pwm/pwmchip0/npwm", "1\n"},
                              {"sys/class/pwm/pwmchip0/pwm0/period", "0\n"},
                              {"sys/class/pwm/pwmchip0/pwm0/duty_cycle", "0\n"},
                              {"sys/class/pwm/pwmchip0/pwm0/enable", "0\n"},
                              {"sys/class/pwm/pwmchip1/export", ""}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", root, files[i][0]);
        write_text(p, files[i][1]);
    }
}

static void rm_rf(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_fan(void)
{
    setup_chips();
    char root[512], pwm0[600];
    make_pwm_tree(root, sizeof(root), pwm0, sizeof(pwm0));
    struct cfg_gpio c = base_cfg();
    snprintf(c.fan, sizeof(c.fan), "1"); /* offset on [gpio] chip */
    c.fan_on_temp_c = 60;
    c.fan_off_temp_c = 50;
    c.fan_full_temp_c = 75;
    c.fan_pwm_min_duty_pct = 30;
    c.fan_pwm_chip = 0;
    c.fan_pwm_channel = 0;
    c.fan_pwm_period_ns = 40000;
    snprintf(c.pwm_sysfs_root, sizeof(c.pwm_sysfs_root), "%s", root);
    struct agent_gpio *g;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 0);
    CHECK_EQ_INT(read_num(pwm0, "period"), 40000);
    CHECK_EQ_INT(read_num(pwm0, "enable"), 1);
    static const struct {
        double temp;
        int on;
        long duty_ns;
    } seq[] = {
        {40, 0, 0},     {55, 0, 0},     {59.9, 0, 0},     {60, 1, 12000}, {67.5, 1, 26000},
        {80, 1, 40000}, {55, 1, 12000}, {50.1, 1, 12000}, {50, 0, 0},     {45, 0, 0},
        {58, 0, 0},     {61, 1, 13867}, {NAN, 1, 40000},  {49, 0, 0},
    };
    uint64_t t = T0;
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        struct agent_gpio_facts f = {.ready = true, .temp_c = seq[i].temp};
        agent_gpio_update(g, &f, t += 1000 * MS);
        CHECK_MSG(fake_gpiod_output(0, 1) == seq[i].on, "step %zu (%.1f C): fan %d, want %d", i,
                  seq[i].temp, fake_gpiod_output(0, 1), seq[i].on);
        CHECK_MSG(read_num(pwm0, "duty_cycle") == seq[i].duty_ns,
                  "step %zu (%.1f C): duty %ld, want %ld", i, seq[i].temp,
                  read_num(pwm0, "duty_cycle"), seq[i].duty_ns);
    }
    /* live tunables: a lower on-threshold switches it on at 49 */
    c.fan_on_temp_c = 45;
    c.fan_off_temp_c = 40;
    agent_gpio_set_tunables(g, &c);
    agent_gpio_update(g, &(struct agent_gpio_facts){.ready = true, .temp_c = 49}, t += 1000 * MS);
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    agent_gpio_close(g);
    /* a stopped agent leaves the fan running, at full duty */
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    CHECK_EQ_INT(read_num(pwm0, "duty_cycle"), 40000);

    /* active-low fan line: physical level inverted */
    setup_chips();
    c = base_cfg();
    snprintf(c.fan, sizeof(c.fan), "gpiochip0:FAN");
    c.fan_active_low = true;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    agent_gpio_update(g, &(struct agent_gpio_facts){.ready = true, .temp_c = 70}, T0 + MS);
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 0);
    agent_gpio_update(g, &(struct agent_gpio_facts){.ready = true, .temp_c = 30}, T0 + 2 * MS);
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    agent_gpio_close(g);

    /* a channel that is not exported is exported; one that does not appear is named */
    setup_chips();
    c = base_cfg();
    c.fan_pwm_chip = 1;
    c.fan_pwm_channel = 0;
    snprintf(c.pwm_sysfs_root, sizeof(c.pwm_sysfs_root), "%s", root);
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    char exp[700];
    snprintf(exp, sizeof(exp), "%s/sys/class/pwm/pwmchip1", root);
    CHECK_EQ_INT(read_num(exp, "export"), 0);
    CHECK_EQ_INT(n_warnings, 1);
    CHECK_CONTAINS(warnings[0], "pwmchip1/pwm0 did not appear after export");
    struct agent_gpio_state st;
    agent_gpio_state(g, &st);
    CHECK(!st.has_pwm);
    agent_gpio_close(g);
    /* and a missing PWM chip */
    reset_counts();
    c.fan_pwm_chip = 7;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 1);
    CHECK_CONTAINS(warnings[0], "no PWM chip");
    CHECK_CONTAINS(warnings[0], "pwmchip7");
    agent_gpio_close(g);
    rm_rf(root);
}

static void test_button(void)
{
    setup_chips();
    struct cfg_gpio c = base_cfg();
    snprintf(c.button, sizeof(c.button), "gpiochip0:2");
    c.button_active_low = true; /* a switch to ground: pressed reads low */
    c.debounce_ms = 30;
    c.long_press_ms = 3000;
    fake_gpiod_input(0, 2, 1); /* idle: high */
    struct agent_gpio *g;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    int fds[4];
    CHECK_EQ_INT(agent_gpio_fds(g, fds, 4), 1);
    int fd = fds[0];
    uint64_t t = T0 + 1000 * MS;
    /* a bouncing press: low, high, low within a few ms, then held 500 ms */
    fake_gpiod_input(0, 2, 0);
    agent_gpio_on_fd(g, fd, t);
    fake_gpiod_input(0, 2, 1);
    agent_gpio_on_fd(g, fd, t + 3 * MS);
    fake_gpiod_input(0, 2, 0);
    agent_gpio_on_fd(g, fd, t + 6 * MS);
    CHECK(agent_gpio_next_deadline_ns(g) == t + 36 * MS); /* restarted by the last edge */
    advance(g, t + 35 * MS);
    struct agent_gpio_state st;
    agent_gpio_state(g, &st);
    CHECK(!st.button_pressed);
    advance(g, t + 36 * MS);
    agent_gpio_state(g, &st);
    CHECK(st.button_pressed);
    fake_gpiod_input(0, 2, 1);
    agent_gpio_on_fd(g, fd, t + 500 * MS);
    advance(g, t + 600 * MS);
    CHECK_EQ_INT(n_short, 1);
    CHECK_EQ_INT(n_long, 0);

    /* a glitch shorter than the debounce time is no press */
    t += 2000 * MS;
    fake_gpiod_input(0, 2, 0);
    agent_gpio_on_fd(g, fd, t);
    fake_gpiod_input(0, 2, 1);
    agent_gpio_on_fd(g, fd, t + 10 * MS);
    advance(g, t + 500 * MS);
    CHECK_EQ_INT(n_short, 1);

    /* a long press fires once at long_press_ms, while still held; its release is no short */
    t += 2000 * MS;
    fake_gpiod_input(0, 2, 0);
    agent_gpio_on_fd(g, fd, t);
    advance(g, t + 30 * MS + 2999 * MS);
    CHECK_EQ_INT(n_long, 0);
    advance(g, t + 30 * MS + 3000 * MS);
    CHECK_EQ_INT(n_long, 1);
    advance(g, t + 10000 * MS);
    CHECK_EQ_INT(n_long, 1);
    fake_gpiod_input(0, 2, 1);
    agent_gpio_on_fd(g, fd, t + 11000 * MS);
    advance(g, t + 12000 * MS);
    CHECK_EQ_INT(n_short, 1);
    CHECK_EQ_INT(n_long, 1);
    agent_gpio_close(g);

    /* held at start: its release is not a press */
    setup_chips();
    fake_gpiod_input(0, 2, 0);
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    agent_gpio_fds(g, fds, 4);
    fake_gpiod_input(0, 2, 1);
    agent_gpio_on_fd(g, fds[0], T0 + 100 * MS);
    advance(g, T0 + 5000 * MS);
    CHECK_EQ_INT(n_short + n_long, 0);
    agent_gpio_close(g);

    /* debounce 0: every edge counts at once */
    setup_chips();
    c.debounce_ms = 0;
    c.button_active_low = false;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    agent_gpio_fds(g, fds, 4);
    fake_gpiod_input(0, 2, 1);
    agent_gpio_on_fd(g, fds[0], T0 + MS);
    fake_gpiod_input(0, 2, 0);
    agent_gpio_on_fd(g, fds[0], T0 + 2 * MS);
    CHECK_EQ_INT(n_short, 1);
    agent_gpio_close(g);
}

static void test_power(void)
{
    setup_chips();
    struct cfg_gpio c = base_cfg();
    snprintf(c.power, sizeof(c.power), "UPS_ONBATT");
    snprintf(c.led, sizeof(c.led), "0");
    struct agent_gpio *g;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    int fds[4];
    CHECK_EQ_INT(agent_gpio_fds(g, fds, 4), 1);
    struct agent_gpio_facts ready = {.ready = true, .temp_c = 40};
    agent_gpio_update(g, &ready, T0 + MS);
    CHECK(agent_gpio_next_deadline_ns(g) == UINT64_MAX);
    fake_gpiod_input(0, 3, 1);
    agent_gpio_on_fd(g, fds[0], T0 + 100 * MS);
    advance(g, T0 + 200 * MS);
    CHECK_EQ_INT(n_power_lost, 1);
    /* power lost is an error on the LED, whatever else the daemon says */
    agent_gpio_update(g, &ready, T0 + 300 * MS);
    struct agent_gpio_state st;
    agent_gpio_state(g, &st);
    CHECK(st.power_lost);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_ERROR);
    fake_gpiod_input(0, 3, 0);
    agent_gpio_on_fd(g, fds[0], T0 + 1000 * MS);
    advance(g, T0 + 1100 * MS);
    CHECK_EQ_INT(n_power_back, 1);
    agent_gpio_update(g, &ready, T0 + 1200 * MS);
    agent_gpio_state(g, &st);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_READY);
    agent_gpio_close(g);

    /* asserted at start: told at the first timer, once */
    setup_chips();
    fake_gpiod_input(0, 3, 1);
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_power_lost, 0);
    CHECK(agent_gpio_next_deadline_ns(g) == 0);
    advance(g, T0 + MS);
    CHECK_EQ_INT(n_power_lost, 1);
    advance(g, T0 + 5000 * MS);
    CHECK_EQ_INT(n_power_lost, 1);
    agent_gpio_close(g);
}

static void test_bad_config(void)
{
    setup_chips();
    fake_gpiod_set_busy(0, 2, "gpio-keys");
    struct cfg_gpio c = base_cfg();
    snprintf(c.led, sizeof(c.led), "gpiochip7:3"); /* unknown chip */
    snprintf(c.fan, sizeof(c.fan), "gpiochip0:1"); /* fine */
    snprintf(c.button, sizeof(c.button), "2");     /* busy */
    snprintf(c.power, sizeof(c.power), "NO_SUCH"); /* unknown name */
    struct agent_gpio *g;
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 3); /* one per broken function, none for the fan */
    CHECK_CONTAINS(warnings[0], "[gpio] led = gpiochip7:3");
    CHECK_CONTAINS(warnings[0], "GPIO chip 'gpiochip7': no such chip");
    CHECK_CONTAINS(warnings[1], "[gpio] button = 2");
    CHECK_CONTAINS(warnings[1], "gpiochip0:2 (BUTTON) is busy (used by gpio-keys)");
    CHECK_CONTAINS(warnings[2], "no GPIO line named 'NO_SUCH'");
    struct agent_gpio_state st;
    agent_gpio_state(g, &st);
    CHECK(!st.has_led && st.has_fan && !st.has_button && !st.has_power);
    CHECK_STR(st.fan_where, "gpiochip0:1 (FAN)");
    /* the fan works without the others; nothing more is warned as time passes */
    agent_gpio_update(g, &(struct agent_gpio_facts){.ready = true, .temp_c = 90}, T0 + MS);
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    advance(g, T0 + 60000 * MS);
    CHECK_EQ_INT(n_warnings, 3);
    agent_gpio_close(g);
    CHECK_EQ_INT(fake_gpiod_open_chips(), 0);

    /* offset past the chip's end, malformed spec */
    reset_counts();
    c = base_cfg();
    snprintf(c.led, sizeof(c.led), "gpiochip1:9");
    snprintf(c.fan, sizeof(c.fan), "gpiochip0:");
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 2);
    CHECK_CONTAINS(warnings[0], "GPIO chip gpiochip1 has no line 9 (it has 4)");
    CHECK_CONTAINS(warnings[1], "[gpio] fan = gpiochip0:: not OFFSET");
    agent_gpio_close(g);

    /* failing writes: counted, warned once, the LED keeps trying */
    reset_counts();
    c = base_cfg();
    snprintf(c.led, sizeof(c.led), "expander:0"); /* chip by label */
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 0);
    fake_gpiod_fail_set(3, EIO);
    for (int i = 1; i <= 8; i++)
        advance(g, T0 + (uint64_t)i * 1000 * MS);
    agent_gpio_state(g, &st);
    CHECK_EQ_INT(st.write_errors, 3);
    CHECK_EQ_INT(n_warnings, 1);
    CHECK_CONTAINS(warnings[0], "gpiochip1:0: write failed");
    agent_gpio_close(g);

    /* nothing configured: nothing requested, nothing warned */
    reset_counts();
    c = base_cfg();
    CHECK_EQ_INT(agent_gpio_open(&c, &hooks, T0, &g), 0);
    CHECK_EQ_INT(n_warnings, 0);
    CHECK(agent_gpio_next_deadline_ns(g) == UINT64_MAX);
    agent_gpio_close(g);
}

int main(void)
{
    /* The fake stands in for libgpiod: if the real one were loaded, one of its functions was
     * used in place of a missing fake. */
    CHECK_MSG(dlopen("libgpiod.so.2", RTLD_NOW | RTLD_NOLOAD) == NULL,
              "the real libgpiod is loaded: the fake lacks a function gpio_chip.c calls");
    test_parse();
    test_led_patterns(false);
    test_led_patterns(true);
    test_fan();
    test_button();
    test_power();
    test_bad_config();
    fake_gpiod_reset();
    return et_finish();
}
