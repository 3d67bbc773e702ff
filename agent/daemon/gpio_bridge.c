/* The daemon's GPIO bridge (see daemon_parts.h and docs/gpio.md): opens [gpio]'s lines while
 * the agent is still root (before privsep_drop; the line descriptors keep working after it),
 * watches the inputs on the loop, keeps the LED and the fan in step with the engine, the
 * governor and the temperature, and carries out what the button and the power-loss input
 * ask: toggle quiet/balanced, stop cleanly, flush telemetry and restore the CPU settings. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/timeutil.h"
#include "daemon_parts.h"
#include "gpio.h"
#include "log.h"
#include "telemetry/store.h"

static void rearm(struct agent_daemon *d)
{
    if (!d->gpio_timer)
        return;
    uint64_t at = agent_gpio_next_deadline_ns(d->gpio);
    if (at == UINT64_MAX)
        agent_timer_set_interval(d->gpio_timer, 0);
    else
        agent_timer_set_deadline(d->gpio_timer, at);
}

void daemon_power_changed(struct agent_daemon *d, bool lost)
{
    d->power_lost = lost;
    if (!lost) {
        log_notice("gpio: power is back; the governor steers again");
        daemon_record_event(d, "power", "power restored");
        return;
    }
    log_warn("gpio: power lost: writing telemetry to disk and restoring the CPU frequency "
             "settings");
    daemon_record_event(d, "power", "power lost (UPS input): telemetry flushed, CPU restored");
    if (d->store) {
        int rc = tel_store_flush(d->store);
        if (rc < 0)
            log_err("gpio: power lost: telemetry flush: %s", strerror(-rc));
    }
    if (d->gov) {
        char err[512];
        if (gov_governor_restore(d->gov, err, sizeof(err)) < 0)
            log_err("gpio: power lost: governor restore: %s", err);
        daemon_governor_drain_events(d);
    }
}

void daemon_gpio_press(struct agent_daemon *d, enum agent_gpio_press press)
{
    if (press == AGENT_GPIO_PRESS_LONG) {
        log_notice("gpio: button held %d ms: shutting down", d->cfg.gpio.long_press_ms);
        daemon_record_event(d, "gpio", "button long press: shutdown");
        agent_loop_quit(d->loop);
        return;
    }
    const char *next = strcmp(d->cfg.governor.tunables.policy, "quiet") == 0 ? "balanced" : "quiet";
    char err[256] = "";
    if (daemon_governor_apply(d, next, NAN, err, sizeof(err)) < 0) {
        log_warn("gpio: button: cannot switch to %s: %s", next, err);
        return;
    }
    daemon_record_event(
        d, "gpio", strcmp(next, "quiet") == 0 ? "button: policy quiet" : "button: policy balanced");
}

static void hook_press(void *user, enum agent_gpio_press press)
{
    daemon_gpio_press(user, press);
}

static void hook_power(void *user, bool lost)
{
    daemon_power_changed(user, lost);
}

static void hook_warn(void *user, const char *msg)
{
    (void)user;
    log_warn("gpio: %s", msg);
}

void daemon_gpio_refresh(struct agent_daemon *d, uint64_t now_ns)
{
    if (!d->gpio)
        return;
    enum agent_phase phase = (enum agent_phase)atomic_load(&d->phase);
    struct agent_gpio_facts f = {
        .ready = d->ready,
        .generating = phase != AGENT_PHASE_IDLE,
        .throttling = d->gov && (d->last_tick.reasons & (GOV_REASON_THERMAL | GOV_REASON_TRIP)),
        .error = d->last_tick.safe_state || d->power_lost,
        /* on battery the governor's ticks are held, so its temperature is stale: unknown,
         * and the fan runs */
        .temp_c = d->power_lost ? NAN : d->last_temp_c,
    };
    agent_gpio_update(d->gpio, &f, now_ns);
    if (agent_gpio_next_deadline_ns(d->gpio) <= now_ns)
        agent_gpio_on_timer(d->gpio, now_ns);
    rearm(d);
}

static void on_gpio_timer(void *user, uint64_t now_ns)
{
    struct agent_daemon *d = user;
    agent_gpio_on_timer(d->gpio, now_ns);
    rearm(d);
}

static void on_gpio_fd(void *user, int fd, uint32_t events)
{
    (void)events;
    struct agent_daemon *d = user;
    agent_gpio_on_fd(d->gpio, fd, cmn_now_ns());
    rearm(d);
}

int daemon_start_gpio(struct agent_daemon *d)
{
    if (!d->cfg.gpio.enabled)
        return 0;
    struct agent_gpio_hooks hooks = {
        .press = hook_press,
        .power = hook_power,
        .warn = hook_warn,
        .user = d,
    };
    int rc = agent_gpio_open(&d->cfg.gpio, &hooks, cmn_now_ns(), &d->gpio);
    if (rc < 0) {
        log_err("gpio: %s", strerror(-rc));
        return rc;
    }
    int fds[4];
    unsigned n = agent_gpio_fds(d->gpio, fds, 4);
    for (unsigned i = 0; i < n; i++)
        if (agent_loop_add_fd(d->loop, fds[i], EPOLLIN, on_gpio_fd, d) < 0)
            return -EIO;
    if (agent_loop_add_timer(d->loop, 0, on_gpio_timer, d, &d->gpio_timer) < 0)
        return -ENOMEM;
    struct agent_gpio_state st;
    agent_gpio_state(d->gpio, &st);
    log_info("gpio: led %s; fan %s; fan PWM %s; button %s; power input %s",
             st.has_led ? st.led_where : "none", st.has_fan ? st.fan_where : "none",
             st.has_pwm ? st.pwm_where : "none", st.has_button ? st.button_where : "none",
             st.has_power ? st.power_where : "none");
    rearm(d);
    return 0;
}

void daemon_gpio_stop(struct agent_daemon *d)
{
    if (!d->gpio)
        return;
    int fds[4];
    unsigned n = agent_gpio_fds(d->gpio, fds, 4);
    for (unsigned i = 0; i < n; i++)
        agent_loop_del_fd(d->loop, fds[i]);
    if (d->gpio_timer)
        agent_timer_set_interval(d->gpio_timer, 0);
    agent_gpio_close(d->gpio);
    d->gpio = NULL;
}
