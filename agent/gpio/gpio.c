/* The appliance's GPIO (see gpio.h): the lines and the PWM channel joined to the decisions of
 * gpio_logic.c. libgpiod itself is reached only through gpio_chip.c. */
#include "gpio.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpio_chip.h"
#include "gpio_pwm.h"

#define NS_PER_MS 1000000ull

struct gpio_input {
    struct gpio_line *line;
    struct agent_gpio_debounce db;
};

struct agent_gpio {
    struct agent_gpio_hooks hooks;
    struct agent_gpio_fan_curve curve;
    uint64_t debounce_ns, long_ns;

    struct gpio_line *led, *fan;
    struct gpio_pwm *pwm;
    struct gpio_input button, power;
    struct agent_gpio_button btn;

    enum agent_gpio_led led_state;
    uint64_t led_since_ns;
    int led_level;        /* last written, -1 before the first write */
    uint64_t led_next_ns; /* the next slot boundary of a blinking pattern, else UINT64_MAX */

    bool fan_known, fan_on;
    double fan_duty_pct, temp_c;

    struct agent_gpio_facts facts; /* the last the daemon handed in */
    bool power_lost, power_report_pending;
    unsigned write_errors;
    bool write_warned;
};

static void warn(struct agent_gpio *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct agent_gpio *g, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (g->hooks.warn)
        g->hooks.warn(g->hooks.user, msg);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static bool plain_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isgraph((unsigned char)*s) || *s == ':')
            return false;
    return true;
}

int agent_gpio_parse_line(const char *text, const char *default_chip, char *chip, size_t chip_cap,
                          char *name, size_t name_cap, unsigned *offset)
{
    chip[0] = name[0] = '\0';
    *offset = 0;
    if (!text || !*text)
        return -ENOENT;
    const char *colon = strchr(text, ':');
    const char *line = colon ? colon + 1 : text;
    if (colon) {
        size_t n = (size_t)(colon - text);
        if (n == 0 || n >= chip_cap)
            return -EINVAL;
        memcpy(chip, text, n);
        chip[n] = '\0';
        if (!plain_name(chip))
            return -EINVAL;
    }
    if (all_digits(line)) {
        if (strlen(line) > 4)
            return -EINVAL;
        *offset = (unsigned)strtoul(line, NULL, 10);
        if (!colon) {
            if (!default_chip || !*default_chip || strlen(default_chip) >= chip_cap)
                return -EINVAL;
            snprintf(chip, chip_cap, "%s", default_chip);
        }
        return 0;
    }
    if (!plain_name(line) || strlen(line) >= name_cap)
        return -EINVAL;
    snprintf(name, name_cap, "%s", line);
    return 0;
}

static enum gpio_bias bias_of(const char *s)
{
    return strcmp(s, "pull-up") == 0     ? GPIO_BIAS_PULL_UP
           : strcmp(s, "pull-down") == 0 ? GPIO_BIAS_PULL_DOWN
           : strcmp(s, "disable") == 0   ? GPIO_BIAS_DISABLE
                                         : GPIO_BIAS_AS_IS;
}

/* Opens one function's line; on any problem, one warning naming the key and the line. */
static struct gpio_line *open_function(struct agent_gpio *g, const struct cfg_gpio *cfg,
                                       const char *key, const char *spec, bool active_low,
                                       enum gpio_line_mode mode, int initial)
{
    char chip[64], name[64], err[256];
    unsigned offset;
    int rc =
        agent_gpio_parse_line(spec, cfg->chip, chip, sizeof(chip), name, sizeof(name), &offset);
    if (rc == -ENOENT)
        return NULL; /* not configured */
    if (rc < 0) {
        warn(g, "[gpio] %s = %s: not OFFSET, CHIP:OFFSET, CHIP:NAME or NAME; the %s is off", key,
             spec, key);
        return NULL;
    }
    struct gpio_line_request r = {
        .chip = chip,
        .name = name[0] ? name : NULL,
        .offset = offset,
        .active_low = active_low,
        .bias = mode == GPIO_LINE_OUTPUT ? GPIO_BIAS_AS_IS : bias_of(cfg->input_bias),
        .mode = mode,
        .initial = initial,
        .consumer = "ember",
    };
    struct gpio_line *l = NULL;
    rc = gpio_line_open(&r, &l, err, sizeof(err));
    if (rc < 0) {
        warn(g, "[gpio] %s = %s: %s; the agent runs without its %s", key, spec, err, key);
        return NULL;
    }
    return l;
}

static void note_write(struct agent_gpio *g, int rc, const char *what)
{
    if (rc >= 0)
        return;
    g->write_errors++;
    if (!g->write_warned)
        warn(g, "%s: write failed: %s (further failures are only counted)", what, strerror(-rc));
    g->write_warned = true;
}

static void open_input(struct agent_gpio *g, const struct cfg_gpio *cfg, const char *key,
                       const char *spec, bool active_low, struct gpio_input *in)
{
    in->line = open_function(g, cfg, key, spec, active_low, GPIO_LINE_INPUT_EDGES, 0);
    if (!in->line)
        return;
    int level = gpio_line_get(in->line);
    if (level < 0) {
        warn(g, "[gpio] %s: %s: cannot read it: %s; the agent runs without its %s", key,
             gpio_line_where(in->line), strerror(-level), key);
        gpio_line_close(in->line);
        in->line = NULL;
        return;
    }
    agent_gpio_debounce_init(&in->db, level);
}

void agent_gpio_set_tunables(struct agent_gpio *g, const struct cfg_gpio *cfg)
{
    g->curve = (struct agent_gpio_fan_curve){
        .on_c = cfg->fan_on_temp_c,
        .off_c = cfg->fan_off_temp_c,
        .full_c = cfg->fan_full_temp_c,
        .min_duty_pct = cfg->fan_pwm_min_duty_pct,
    };
    g->long_ns = (uint64_t)cfg->long_press_ms * NS_PER_MS;
}

static void led_step(struct agent_gpio *g, uint64_t now_ns)
{
    if (!g->led)
        return;
    uint64_t slot =
        now_ns > g->led_since_ns ? (now_ns - g->led_since_ns) / AGENT_GPIO_LED_SLOT_NS : 0;
    uint16_t pat = agent_gpio_led_pattern(g->led_state);
    g->led_next_ns = pat != 0 && pat != 0xFFFF
                         ? g->led_since_ns + (slot + 1) * AGENT_GPIO_LED_SLOT_NS
                         : UINT64_MAX;
    int lit = agent_gpio_led_lit(g->led_state, slot);
    if (lit == g->led_level)
        return;
    int rc = gpio_line_set(g->led, lit);
    note_write(g, rc, gpio_line_where(g->led));
    if (rc == 0)
        g->led_level = lit;
}

static void led_show(struct agent_gpio *g, enum agent_gpio_led led, uint64_t now_ns)
{
    if (led == g->led_state)
        return;
    g->led_state = led;
    g->led_since_ns = now_ns; /* every pattern starts at its first slot */
    led_step(g, now_ns);
}

int agent_gpio_open(const struct cfg_gpio *cfg, const struct agent_gpio_hooks *hooks,
                    uint64_t now_ns, struct agent_gpio **ret)
{
    struct agent_gpio *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    if (hooks)
        g->hooks = *hooks;
    g->led_level = -1;
    g->led_next_ns = UINT64_MAX;
    g->led_state = AGENT_GPIO_LED_OFF;
    g->temp_c = NAN;
    g->facts.temp_c = NAN;
    g->debounce_ns = (uint64_t)cfg->debounce_ms * NS_PER_MS;
    agent_gpio_set_tunables(g, cfg);

    g->led = open_function(g, cfg, "led", cfg->led, cfg->led_active_low, GPIO_LINE_OUTPUT, 0);
    /* the fan runs until the first temperature says otherwise */
    g->fan = open_function(g, cfg, "fan", cfg->fan, cfg->fan_active_low, GPIO_LINE_OUTPUT, 1);
    if (cfg->fan_pwm_chip >= 0) {
        char err[512];
        int rc = gpio_pwm_open(cfg->pwm_sysfs_root, cfg->fan_pwm_chip, cfg->fan_pwm_channel,
                               (uint32_t)cfg->fan_pwm_period_ns, &g->pwm, err, sizeof(err));
        if (rc < 0)
            warn(g, "[gpio] fan_pwm_chip = %d: %s; the fan runs without PWM speed control",
                 cfg->fan_pwm_chip, err);
    }
    open_input(g, cfg, "button", cfg->button, cfg->button_active_low, &g->button);
    if (g->button.line)
        g->btn.pressed = g->button.db.stable; /* held at start: not a press */
    open_input(g, cfg, "power", cfg->power, cfg->power_active_low, &g->power);
    if (g->power.line && g->power.db.stable) {
        g->power_lost = true;
        g->power_report_pending = true; /* told at the first timer, once the daemon listens */
    }
    led_show(g, AGENT_GPIO_LED_STARTING, now_ns);
    *ret = g;
    return 0;
}

void agent_gpio_close(struct agent_gpio *g)
{
    if (!g)
        return;
    if (g->led)
        gpio_line_set(g->led, 0);
    if (g->fan)
        gpio_line_set(g->fan, 1); /* no one watches the temperature any more */
    gpio_line_close(g->led);
    gpio_line_close(g->fan);
    gpio_pwm_close(g->pwm);
    gpio_line_close(g->button.line);
    gpio_line_close(g->power.line);
    free(g);
}

static void fan_step(struct agent_gpio *g, double temp_c)
{
    bool on = agent_gpio_fan_next(g->fan_on, temp_c, &g->curve);
    double duty = agent_gpio_fan_duty(on, temp_c, &g->curve);
    if (g->fan && (!g->fan_known || on != g->fan_on))
        note_write(g, gpio_line_set(g->fan, on), gpio_line_where(g->fan));
    if (g->pwm && (!g->fan_known || fabs(duty - g->fan_duty_pct) >= 0.5))
        note_write(g, gpio_pwm_set_duty(g->pwm, duty), gpio_pwm_where(g->pwm));
    g->fan_known = true;
    g->fan_on = on;
    g->fan_duty_pct = duty;
}

/* The LED from the daemon's last facts and what the inputs say (power lost is an error). */
static void led_refresh(struct agent_gpio *g, uint64_t now_ns)
{
    struct agent_gpio_facts facts = g->facts;
    facts.error = facts.error || g->power_lost;
    led_show(g, agent_gpio_led_pick(&facts), now_ns);
    led_step(g, now_ns);
}

void agent_gpio_update(struct agent_gpio *g, const struct agent_gpio_facts *f, uint64_t now_ns)
{
    g->facts = *f;
    led_refresh(g, now_ns);
    g->temp_c = f->temp_c;
    fan_step(g, f->temp_c);
}

unsigned agent_gpio_fds(const struct agent_gpio *g, int *fds, unsigned cap)
{
    unsigned n = 0;
    if (g->button.line && n < cap)
        fds[n++] = gpio_line_fd(g->button.line);
    if (g->power.line && n < cap)
        fds[n++] = gpio_line_fd(g->power.line);
    return n;
}

static void input_changed(struct agent_gpio *g, struct gpio_input *in, uint64_t now_ns)
{
    if (in == &g->button) {
        enum agent_gpio_press p =
            agent_gpio_button_level(&g->btn, in->db.stable, now_ns, g->long_ns);
        if (p != AGENT_GPIO_PRESS_NONE && g->hooks.press)
            g->hooks.press(g->hooks.user, p);
    } else {
        g->power_lost = in->db.stable;
        g->power_report_pending = false;
        led_refresh(g, now_ns);
        if (g->hooks.power)
            g->hooks.power(g->hooks.user, g->power_lost);
    }
}

static void input_settle(struct agent_gpio *g, struct gpio_input *in, uint64_t now_ns)
{
    int level = gpio_line_get(in->line);
    if (level < 0) {
        in->db.armed = false; /* the next edge tries again */
        note_write(g, level, gpio_line_where(in->line));
        return;
    }
    if (agent_gpio_debounce_settle(&in->db, level))
        input_changed(g, in, now_ns);
}

void agent_gpio_on_fd(struct agent_gpio *g, int fd, uint64_t now_ns)
{
    struct gpio_input *ins[] = {&g->button, &g->power};
    for (size_t i = 0; i < 2; i++) {
        struct gpio_input *in = ins[i];
        if (!in->line || gpio_line_fd(in->line) != fd)
            continue;
        if (gpio_line_drain_events(in->line) <= 0)
            return;
        if (g->debounce_ns == 0)
            input_settle(g, in, now_ns);
        else
            agent_gpio_debounce_edge(&in->db, now_ns, g->debounce_ns);
    }
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t agent_gpio_next_deadline_ns(const struct agent_gpio *g)
{
    if (g->power_report_pending)
        return 0;
    uint64_t t = g->led ? g->led_next_ns : UINT64_MAX;
    if (g->button.line && g->button.db.armed)
        t = min_u64(t, g->button.db.deadline_ns);
    if (g->power.line && g->power.db.armed)
        t = min_u64(t, g->power.db.deadline_ns);
    if (g->button.line && g->btn.pressed && g->btn.armed_by_press && !g->btn.long_fired)
        t = min_u64(t, g->btn.long_at_ns);
    return t;
}

void agent_gpio_on_timer(struct agent_gpio *g, uint64_t now_ns)
{
    if (g->power_report_pending) {
        g->power_report_pending = false;
        led_refresh(g, now_ns);
        if (g->hooks.power)
            g->hooks.power(g->hooks.user, true);
    }
    struct gpio_input *ins[] = {&g->button, &g->power};
    for (size_t i = 0; i < 2; i++)
        if (ins[i]->line && ins[i]->db.armed && now_ns >= ins[i]->db.deadline_ns)
            input_settle(g, ins[i], now_ns);
    if (g->button.line && agent_gpio_button_time(&g->btn, now_ns) == AGENT_GPIO_PRESS_LONG &&
        g->hooks.press)
        g->hooks.press(g->hooks.user, AGENT_GPIO_PRESS_LONG);
    led_step(g, now_ns);
}

void agent_gpio_state(const struct agent_gpio *g, struct agent_gpio_state *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->has_led = g->led != NULL;
    ret->has_fan = g->fan != NULL;
    ret->has_pwm = g->pwm != NULL;
    ret->has_button = g->button.line != NULL;
    ret->has_power = g->power.line != NULL;
    ret->led = g->led_state;
    ret->fan_on = g->fan_on;
    ret->fan_duty_pct = g->fan_duty_pct;
    ret->button_pressed = g->btn.pressed;
    ret->power_lost = g->power_lost;
    ret->write_errors = g->write_errors;
    if (g->led)
        snprintf(ret->led_where, sizeof(ret->led_where), "%s", gpio_line_where(g->led));
    if (g->fan)
        snprintf(ret->fan_where, sizeof(ret->fan_where), "%s", gpio_line_where(g->fan));
    if (g->pwm)
        snprintf(ret->pwm_where, sizeof(ret->pwm_where), "%s", gpio_pwm_where(g->pwm));
    if (g->button.line)
        snprintf(ret->button_where, sizeof(ret->button_where), "%s",
                 gpio_line_where(g->button.line));
    if (g->power.line)
        snprintf(ret->power_where, sizeof(ret->power_where), "%s", gpio_line_where(g->power.line));
}
