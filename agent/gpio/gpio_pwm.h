/* A fan's PWM channel through the kernel's sysfs pwm class (Documentation/driver-api/pwm.rst):
 * ROOT/sys/class/pwm/pwmchipN/pwmM/{period,duty_cycle,enable}, exported through
 * pwmchipN/export when it is not. The attribute files are opened once, at start (before the
 * agent drops root), and written through those descriptors afterwards. */
#ifndef AGENT_GPIO_PWM_H
#define AGENT_GPIO_PWM_H

#include <stddef.h>
#include <stdint.h>

struct gpio_pwm;

/* root NULL or "" = "/". -ENOENT (no such chip, or the channel did not appear after export),
 * other -errno; err says which file. The channel is left enabled at duty 0. */
int gpio_pwm_open(const char *root, int chip, int channel, uint32_t period_ns,
                  struct gpio_pwm **ret, char *err, size_t err_len);
/* Duty cycle in percent of the period (clamped to 0..100). */
int gpio_pwm_set_duty(struct gpio_pwm *p, double pct);
/* Leaves the fan at full duty (a stopped agent no longer watches the temperature) and closes.
 * NULL is fine. */
void gpio_pwm_close(struct gpio_pwm *p);
/* "pwmchip0/pwm1" */
const char *gpio_pwm_where(const struct gpio_pwm *p);

#endif
