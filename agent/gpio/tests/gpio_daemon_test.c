/* The daemon's GPIO bridge (agent/daemon/gpio_bridge.c) with real parts around the fake chip
 * library: the real event loop watches the fake lines' event descriptors and timers; a real
 * governor steers a copy of a fake sysfs tree; a real SQLite telemetry store holds samples that
 * a power loss must put on disk at once. Checked: the LED follows the daemon's state (starting,
 * ready, generating blinks from the loop's timer, throttling, error), the fan follows the
 * temperature, a short press toggles quiet/balanced on the governor, the power-loss input
 * flushes the store (read back through a second SQLite connection) and restores the CPU
 * settings (read back from the tree) and holds the governor, and a long press stops the loop. */
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "daemon_parts.h"
#include "ember_test.h"
#include "fake_gpiod.h"
#include "govhw_util.h"
#include "telemetry/store.h"

#define MS 1000000ull

static void on_quit(void *user, uint64_t now_ns)
{
    (void)now_ns;
    agent_loop_quit(user);
}

/* Runs the real loop for ms milliseconds (or until something quits it); returns ms spent. */
static double run_loop(struct agent_daemon *d, unsigned ms)
{
    struct agent_timer *t;
    uint64_t t0 = cmn_now_ns();
    if (agent_loop_add_timer(d->loop, 0, on_quit, d->loop, &t) < 0)
        abort();
    agent_timer_set_deadline(t, t0 + ms * MS);
    agent_loop_run(d->loop);
    agent_timer_set_interval(t, 0);
    return (double)(cmn_now_ns() - t0) / 1e6;
}

static long count_rows(const char *db, const char *sql)
{
    sqlite3 *c;
    long n = -1;
    if (sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(c);
    return n;
}

static const char *gov_file(const char *root, const char *file)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpufreq/policy0/%s", file);
    return govhw_get(root, rel);
}

int main(void)
{
    CHECK_MSG(dlopen("libgpiod.so.2", RTLD_NOW | RTLD_NOLOAD) == NULL,
              "the real libgpiod is loaded: the fake lacks a function gpio_chip.c calls");
    static const char *const names[8] = {"LED", "FAN", "BUTTON", "UPS", NULL, NULL, NULL, NULL};
    fake_gpiod_reset();
    fake_gpiod_add_chip("pinctrl-test", 8, names);

    char root[PATH_MAX], saved[PATH_MAX + 32], db[PATH_MAX + 32], err[512];
    if (govhw_copy_tree("acpi-cpufreq-4c", root, sizeof(root)) != 0) {
        fprintf(stderr, "skip: the shared fake sysfs tree acpi-cpufreq-4c is missing\n");
        return ET_SKIP;
    }
    snprintf(saved, sizeof(saved), "%s/governor.saved", root);
    snprintf(db, sizeof(db), "%s/telemetry.db", root);

    struct agent_daemon *d = calloc(1, sizeof(*d));
    agent_config_defaults(&d->cfg);
    pthread_mutex_init(&d->shared_lock, NULL);
    d->last_temp_c = NAN;
    atomic_init(&d->phase, AGENT_PHASE_IDLE);
    CHECK_EQ_INT(agent_loop_new(&d->loop), 0);

    struct cfg_gpio *c = &d->cfg.gpio;
    c->enabled = true;
    snprintf(c->led, sizeof(c->led), "LED");
    snprintf(c->fan, sizeof(c->fan), "gpiochip0:1");
    snprintf(c->button, sizeof(c->button), "gpiochip0:BUTTON");
    snprintf(c->power, sizeof(c->power), "3");
    c->debounce_ms = 20;
    c->long_press_ms = 500;

    /* a real governor on the copied tree, steering (performance pins userspace) */
    struct gov_governor_params gp;
    gov_governor_params_defaults(&gp);
    gp.sysfs_root = root;
    gp.saved_path = saved;
    snprintf(gp.tunables.policy, sizeof(gp.tunables.policy), "performance");
    d->cfg.governor.tunables = gp.tunables;
    CHECK_MSG(gov_governor_new(&gp, &d->gov, err, sizeof(err)) == 0, "governor: %s", err);
    /* a real store that commits only when told to */
    struct tel_store_params sp;
    tel_store_params_defaults(&sp);
    sp.commit_interval_ms = 3600 * 1000;
    sp.commit_rows = 1000;
    CHECK_MSG(tel_store_open(db, &sp, &d->store, err, sizeof(err)) == 0, "store: %s", err);
    if (!d->gov || !d->store)
        return et_finish();

    CHECK_EQ_INT(daemon_start_gpio(d), 0);
    CHECK(d->gpio != NULL);
    struct agent_gpio_state st;
    agent_gpio_state(d->gpio, &st);
    CHECK(st.has_led && st.has_fan && st.has_button && st.has_power);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_STARTING);

    /* the first governor tick writes: originals saved, policy0 pinned */
    daemon_governor_tick(d, cmn_now_ns());
    CHECK_STR(gov_file(root, "scaling_governor"), "userspace");
    CHECK(access(saved, F_OK) == 0);

    /* READY: steady on; generating: the loop's timer blinks it */
    d->ready = true;
    daemon_gpio_refresh(d, cmn_now_ns());
    agent_gpio_state(d->gpio, &st);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_READY);
    CHECK_EQ_INT(fake_gpiod_output(0, 0), 1);
    atomic_store(&d->phase, AGENT_PHASE_DECODE);
    daemon_gpio_refresh(d, cmn_now_ns());
    unsigned w0 = fake_gpiod_writes(0, 0);
    run_loop(d, 1000);
    unsigned blinks = fake_gpiod_writes(0, 0) - w0;
    CHECK_MSG(blinks >= 6 && blinks <= 9, "%u LED writes in 1 s of generating (4 Hz: 8)", blinks);
    d->last_tick.reasons = GOV_REASON_THERMAL;
    daemon_gpio_refresh(d, cmn_now_ns());
    agent_gpio_state(d->gpio, &st);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_THROTTLING);
    d->last_tick.safe_state = true;
    daemon_gpio_refresh(d, cmn_now_ns());
    agent_gpio_state(d->gpio, &st);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_ERROR);
    d->last_tick = (struct gov_tick_result){0};
    atomic_store(&d->phase, AGENT_PHASE_IDLE);

    /* the fan from the sampled temperature */
    d->last_temp_c = 72;
    daemon_gpio_refresh(d, cmn_now_ns());
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    d->last_temp_c = 55;
    daemon_gpio_refresh(d, cmn_now_ns());
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1); /* between thresholds: stays on */
    d->last_temp_c = 45;
    daemon_gpio_refresh(d, cmn_now_ns());
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 0);

    /* short presses through the loop: performance -> quiet -> balanced */
    for (int i = 0; i < 2; i++) {
        fake_gpiod_input(0, 2, 1);
        run_loop(d, 100);
        fake_gpiod_input(0, 2, 0);
        run_loop(d, 100);
        struct gov_status gs;
        gov_governor_status(d->gov, &gs);
        CHECK_STR(gs.policy, i == 0 ? "quiet" : "balanced");
        CHECK_STR(d->cfg.governor.tunables.policy, i == 0 ? "quiet" : "balanced");
    }
    daemon_governor_tick(d, cmn_now_ns());
    CHECK(access(saved, F_OK) == 0);

    /* samples waiting in memory, none on disk yet */
    for (int i = 0; i < 25; i++) {
        struct tel_sample s = {.ts_ns = cmn_wall_ns(), .power_w = 5.0 + i, .temp_c = 50};
        snprintf(s.phase, sizeof(s.phase), "idle");
        tel_store_append_sample(d->store, &s, NULL);
    }
    CHECK_EQ_INT(count_rows(db, "SELECT count(*) FROM samples"), 0);

    /* power lost: flushed and restored at once, through the loop */
    fake_gpiod_input(0, 3, 1);
    run_loop(d, 150);
    CHECK(d->power_lost);
    CHECK_EQ_INT(count_rows(db, "SELECT count(*) FROM samples"), 25);
    CHECK_EQ_INT(count_rows(db, "SELECT count(*) FROM events WHERE kind = 'power' AND detail "
                                "LIKE 'power lost%'"),
                 1);
    CHECK_STR(gov_file(root, "scaling_governor"), "schedutil");
    CHECK(access(saved, F_OK) != 0);
    /* held: ticks on battery write nothing */
    daemon_governor_tick(d, cmn_now_ns());
    CHECK_STR(gov_file(root, "scaling_governor"), "schedutil");
    /* the LED says error at once; the fan runs (the temperature is stale while ticks are held) */
    agent_gpio_state(d->gpio, &st);
    CHECK_EQ_INT(st.led, AGENT_GPIO_LED_ERROR);
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 0); /* 45 C before the loss */
    daemon_gpio_refresh(d, cmn_now_ns());
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    /* power back: the governor steers again (and saves the originals again first) */
    fake_gpiod_input(0, 3, 0);
    run_loop(d, 150);
    CHECK(!d->power_lost);
    daemon_governor_tick(d, cmn_now_ns());
    CHECK_STR(gov_file(root, "scaling_governor"), "userspace");
    CHECK(access(saved, F_OK) == 0);

    /* a long press stops the loop by itself, at long_press_ms (+ debounce) */
    fake_gpiod_input(0, 2, 1);
    double ms = run_loop(d, 5000);
    CHECK_MSG(ms >= 500 && ms < 2000, "long press ended the loop after %.0f ms", ms);
    fake_gpiod_input(0, 2, 0);
    tel_store_flush(d->store);
    CHECK_EQ_INT(count_rows(db, "SELECT count(*) FROM events WHERE detail LIKE '%long press%'"), 1);

    /* stop: LED off and released, fan left running */
    char gerr[512];
    gov_governor_restore(d->gov, gerr, sizeof(gerr));
    daemon_gpio_stop(d);
    CHECK(!fake_gpiod_requested(0, 0));
    CHECK_EQ_INT(fake_gpiod_output(0, 0), 0);
    CHECK_EQ_INT(fake_gpiod_output(0, 1), 1);
    CHECK_EQ_INT(fake_gpiod_open_chips(), 0);

    tel_store_close(d->store);
    gov_governor_free(d->gov);
    agent_loop_free(d->loop);
    free(d->gov_json);
    pthread_mutex_destroy(&d->shared_lock);
    free(d);
    fake_gpiod_reset();
    govhw_rm_rf(root);
    return et_finish();
}
