/* The appliance's GPIO: a status LED, a fan (switched, optionally PWM), a push button and a
 * power-loss input, configured by [gpio] (docs/gpio.md). It does no I/O of its own accord and
 * owns no thread: the daemon's loop watches agent_gpio_fds(), arms a timer at
 * agent_gpio_next_deadline_ns() and calls back with the time, and hands in what the LED and the
 * fan should follow (agent_gpio_update). A function whose chip or line is missing or busy is
 * named in one warning and stays off; the others work. */
#ifndef AGENT_GPIO_H
#define AGENT_GPIO_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "gpio_logic.h"

struct agent_gpio;

struct agent_gpio_hooks {
    /* a debounced button press: short (toggle quiet/balanced) or long (clean shutdown) */
    void (*press)(void *user, enum agent_gpio_press press);
    /* the power-loss input changed (also once at start when it is asserted then) */
    void (*power)(void *user, bool lost);
    /* one line per function that could not be set up, naming the chip and line */
    void (*warn)(void *user, const char *msg);
    void *user;
};

/* Requests the configured lines (and opens the PWM channel). Returns 0 even when some or all
 * functions are off (each warned once); -ENOMEM only. The LED starts in "starting". */
int agent_gpio_open(const struct cfg_gpio *cfg, const struct agent_gpio_hooks *hooks,
                    uint64_t now_ns, struct agent_gpio **ret);
/* LED off, fan left running (full PWM duty), lines released. NULL is fine. */
void agent_gpio_close(struct agent_gpio *g);
/* The keys that change live (fan temperatures, PWM minimum duty, long-press time). */
void agent_gpio_set_tunables(struct agent_gpio *g, const struct cfg_gpio *cfg);

/* New facts: picks the LED pattern, steps the fan. Writes only what changes. */
void agent_gpio_update(struct agent_gpio *g, const struct agent_gpio_facts *f, uint64_t now_ns);
/* The descriptors to watch for input (EPOLLIN); returns how many were written (<= cap). */
unsigned agent_gpio_fds(const struct agent_gpio *g, int *fds, unsigned cap);
/* fd turned readable. */
void agent_gpio_on_fd(struct agent_gpio *g, int fd, uint64_t now_ns);
/* When agent_gpio_on_timer must run next (LED slot, debounce, long press); UINT64_MAX: never. */
uint64_t agent_gpio_next_deadline_ns(const struct agent_gpio *g);
void agent_gpio_on_timer(struct agent_gpio *g, uint64_t now_ns);

struct agent_gpio_state {
    bool has_led, has_fan, has_pwm, has_button, has_power;
    enum agent_gpio_led led;
    bool fan_on;
    double fan_duty_pct;
    bool button_pressed;
    bool power_lost;
    unsigned write_errors; /* failed line or PWM writes since open */
    char led_where[96], fan_where[96], pwm_where[64], button_where[96], power_where[96];
};
void agent_gpio_state(const struct agent_gpio *g, struct agent_gpio_state *ret);

/* A line setting as [gpio] writes it: "" (none), "OFFSET", "CHIP:OFFSET", "CHIP:NAME" or
 * "NAME". Fills chip (default_chip for a bare offset; "" for a bare name: every chip), name
 * ("" for an offset) and offset. -ENOENT for "" (no line), -EINVAL when malformed. */
int agent_gpio_parse_line(const char *text, const char *default_chip, char *chip, size_t chip_cap,
                          char *name, size_t name_cap, unsigned *offset);

#endif
