/* The GPIO decisions (see gpio_logic.h): pattern table, fan curve, debouncer, press timing. */
#include "gpio_logic.h"

#include <math.h>
#include <stddef.h>

/* Five states a person can tell apart across a room, without counting fast: steady, slow
 * blink, fast blink, two flashes, three flashes. */
static const struct {
    const char *name;
    uint16_t pattern;
} led_table[AGENT_GPIO_LED_COUNT] = {
    [AGENT_GPIO_LED_OFF] = {"off", 0x0000},
    [AGENT_GPIO_LED_STARTING] = {"starting", 0xFF00},     /* 1 s on, 1 s off */
    [AGENT_GPIO_LED_READY] = {"ready", 0xFFFF},           /* steady on */
    [AGENT_GPIO_LED_GENERATING] = {"generating", 0xAAAA}, /* 4 Hz blink */
    [AGENT_GPIO_LED_THROTTLING] = {"throttling", 0xA000}, /* two flashes, then dark */
    [AGENT_GPIO_LED_ERROR] = {"error", 0xA800},           /* three flashes, then dark */
};

enum agent_gpio_led agent_gpio_led_pick(const struct agent_gpio_facts *f)
{
    if (f->error)
        return AGENT_GPIO_LED_ERROR;
    if (!f->ready)
        return AGENT_GPIO_LED_STARTING;
    if (f->throttling)
        return AGENT_GPIO_LED_THROTTLING;
    if (f->generating)
        return AGENT_GPIO_LED_GENERATING;
    return AGENT_GPIO_LED_READY;
}

uint16_t agent_gpio_led_pattern(enum agent_gpio_led led)
{
    return (unsigned)led < AGENT_GPIO_LED_COUNT ? led_table[led].pattern : 0;
}

const char *agent_gpio_led_name(enum agent_gpio_led led)
{
    return (unsigned)led < AGENT_GPIO_LED_COUNT ? led_table[led].name : "?";
}

bool agent_gpio_led_lit(enum agent_gpio_led led, uint64_t slot)
{
    unsigned bit = AGENT_GPIO_LED_SLOTS - 1 - (unsigned)(slot % AGENT_GPIO_LED_SLOTS);
    return agent_gpio_led_pattern(led) >> bit & 1;
}

bool agent_gpio_fan_next(bool on, double temp_c, const struct agent_gpio_fan_curve *c)
{
    if (!isfinite(temp_c))
        return true; /* blind: cooling is the safe side */
    if (temp_c >= c->on_c)
        return true;
    if (temp_c <= c->off_c)
        return false;
    return on;
}

double agent_gpio_fan_duty(bool on, double temp_c, const struct agent_gpio_fan_curve *c)
{
    if (!on)
        return 0;
    if (!isfinite(temp_c) || temp_c >= c->full_c)
        return 100;
    if (temp_c <= c->on_c)
        return c->min_duty_pct;
    double f = (temp_c - c->on_c) / (c->full_c - c->on_c);
    return c->min_duty_pct + f * (100 - c->min_duty_pct);
}

void agent_gpio_debounce_init(struct agent_gpio_debounce *d, int level)
{
    *d = (struct agent_gpio_debounce){.stable = level ? 1 : 0};
}

void agent_gpio_debounce_edge(struct agent_gpio_debounce *d, uint64_t now_ns, uint64_t debounce_ns)
{
    d->armed = true;
    d->deadline_ns = now_ns + debounce_ns;
}

bool agent_gpio_debounce_settle(struct agent_gpio_debounce *d, int level)
{
    d->armed = false;
    level = level ? 1 : 0;
    if (level == d->stable)
        return false; /* a bounce that came back */
    d->stable = level;
    return true;
}

enum agent_gpio_press agent_gpio_button_level(struct agent_gpio_button *b, int level,
                                              uint64_t now_ns, uint64_t long_ns)
{
    if (level) {
        b->pressed = true;
        b->armed_by_press = true;
        b->long_fired = false;
        b->long_at_ns = now_ns + long_ns;
        return AGENT_GPIO_PRESS_NONE;
    }
    bool was = b->pressed && b->armed_by_press;
    b->pressed = false;
    b->armed_by_press = false;
    if (was && !b->long_fired)
        return AGENT_GPIO_PRESS_SHORT;
    return AGENT_GPIO_PRESS_NONE;
}

enum agent_gpio_press agent_gpio_button_time(struct agent_gpio_button *b, uint64_t now_ns)
{
    if (b->pressed && b->armed_by_press && !b->long_fired && now_ns >= b->long_at_ns) {
        b->long_fired = true;
        return AGENT_GPIO_PRESS_LONG;
    }
    return AGENT_GPIO_PRESS_NONE;
}
