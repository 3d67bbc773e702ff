/* The decisions behind the appliance's GPIO, free of any I/O so tests drive them with chosen
 * times: which LED pattern a state shows, when the fan runs and how fast, and what a bouncing
 * input's edges amount to. Times are CLOCK_MONOTONIC nanoseconds. */
#ifndef AGENT_GPIO_LOGIC_H
#define AGENT_GPIO_LOGIC_H

#include <stdbool.h>
#include <stdint.h>

/* ---- the status LED ---- */

enum agent_gpio_led {
    AGENT_GPIO_LED_OFF,
    AGENT_GPIO_LED_STARTING,
    AGENT_GPIO_LED_READY,
    AGENT_GPIO_LED_GENERATING,
    AGENT_GPIO_LED_THROTTLING,
    AGENT_GPIO_LED_ERROR,
    AGENT_GPIO_LED_COUNT
};

/* A pattern is 16 slots of 125 ms (a 2 s cycle), bit 15 first: 1 = lit. */
#define AGENT_GPIO_LED_SLOT_NS (125ull * 1000 * 1000)
#define AGENT_GPIO_LED_SLOTS   16

/* What the daemon knows; the LED shows the most urgent. */
struct agent_gpio_facts {
    bool ready;      /* READY=1 was sent */
    bool generating; /* the engine is in prefill or decode */
    bool throttling; /* the governor's thermal controller (or trip margin) holds the CPU back */
    bool error;      /* something needs a person: governor safe state, power lost, ... */
    double temp_c;   /* CPU temperature, NaN when unknown */
};

enum agent_gpio_led agent_gpio_led_pick(const struct agent_gpio_facts *f);
uint16_t agent_gpio_led_pattern(enum agent_gpio_led led);
const char *agent_gpio_led_name(enum agent_gpio_led led);
/* Lit or not, slot slots into the pattern's cycle. */
bool agent_gpio_led_lit(enum agent_gpio_led led, uint64_t slot);

/* ---- the fan ---- */

struct agent_gpio_fan_curve {
    double on_c, off_c, full_c; /* off_c < on_c < full_c */
    double min_duty_pct;
};

/* The next on/off state from the current one (hysteresis: on at >= on_c, off at <= off_c,
 * unchanged between). An unknown temperature (NaN) runs the fan. */
bool agent_gpio_fan_next(bool on, double temp_c, const struct agent_gpio_fan_curve *c);
/* PWM duty for a fan in that state: 0 off; min_duty_pct at on_c or below, rising linearly to
 * 100 at full_c; 100 for an unknown temperature. */
double agent_gpio_fan_duty(bool on, double temp_c, const struct agent_gpio_fan_curve *c);

/* ---- debounced inputs ---- */

/* A level counts once it has held debounce_ns after the last edge: an edge (re)arms the
 * deadline; at the deadline the level is read and compared with the stable one. */
struct agent_gpio_debounce {
    int stable; /* the accepted logical level */
    bool armed;
    uint64_t deadline_ns;
};

void agent_gpio_debounce_init(struct agent_gpio_debounce *d, int level);
void agent_gpio_debounce_edge(struct agent_gpio_debounce *d, uint64_t now_ns, uint64_t debounce_ns);
/* At or after the deadline: with the level read now, returns true when the stable level
 * changed (d->stable is the new one). */
bool agent_gpio_debounce_settle(struct agent_gpio_debounce *d, int level);

/* A button's presses from its debounced level. */
enum agent_gpio_press { AGENT_GPIO_PRESS_NONE, AGENT_GPIO_PRESS_SHORT, AGENT_GPIO_PRESS_LONG };

struct agent_gpio_button {
    bool pressed;
    bool long_fired;
    bool armed_by_press; /* the press began while we watched (not held at start) */
    uint64_t long_at_ns;
};

/* A debounced level change: a release before the long-press time is a short press. */
enum agent_gpio_press agent_gpio_button_level(struct agent_gpio_button *b, int level,
                                              uint64_t now_ns, uint64_t long_ns);
/* Time passing: a press held to its long-press time is a long press (once). */
enum agent_gpio_press agent_gpio_button_time(struct agent_gpio_button *b, uint64_t now_ns);

#endif
