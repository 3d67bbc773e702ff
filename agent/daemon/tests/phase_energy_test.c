/* Exact phase attribution (agent/src/phase_energy.c): each phase interval is charged the meter's
 * energy between its own two readings, the parts add up to the interval's energy, a meter going
 * backwards charges nothing, and a worker switching phases while the main loop takes samples
 * loses and duplicates no joule (run under TSan too). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "ember_test.h"
#include "meter.h"
#include "phase_energy.h"

static void test_sequence(void)
{
    struct agent_phase_energy pe;
    agent_phase_energy_init(&pe);
    double out[AGENT_PHASES] = {-1, -1, -1};
    /* no meter yet */
    agent_phase_energy_switch(&pe, AGENT_PHASE_PREFILL, NAN);
    CHECK_EQ_INT(agent_phase_energy_take(&pe, NAN, out), -ENODATA);
    CHECK_EQ_INT(out[0], -1);
    /* first reading opens an interval in the current phase (prefill) */
    CHECK_EQ_INT(agent_phase_energy_take(&pe, 10, out), -ENODATA);
    agent_phase_energy_switch(&pe, AGENT_PHASE_DECODE, 13);
    agent_phase_energy_switch(&pe, AGENT_PHASE_IDLE, 18);
    CHECK_EQ_INT(agent_phase_energy_take(&pe, 20, out), 0);
    CHECK_NEAR(out[AGENT_PHASE_PREFILL], 3, 1e-12);
    CHECK_NEAR(out[AGENT_PHASE_DECODE], 5, 1e-12);
    CHECK_NEAR(out[AGENT_PHASE_IDLE], 2, 1e-12);
    /* the next interval starts where this one ended */
    agent_phase_energy_switch(&pe, AGENT_PHASE_PREFILL, 21);
    CHECK_EQ_INT(agent_phase_energy_take(&pe, 24, out), 0);
    CHECK_NEAR(out[AGENT_PHASE_IDLE], 1, 1e-12);
    CHECK_NEAR(out[AGENT_PHASE_PREFILL], 3, 1e-12);
    CHECK_NEAR(out[AGENT_PHASE_DECODE], 0, 1e-12);
    /* a reading older than the mark (the other thread read the meter first) charges nothing
     * and does not move the mark back, so nothing is counted twice */
    CHECK_EQ_INT(agent_phase_energy_take(&pe, 23.5, out), 0);
    CHECK_NEAR(out[0] + out[1] + out[2], 0, 1e-12);
    CHECK_EQ_INT(agent_phase_energy_take(&pe, 24.5, out), 0);
    CHECK_NEAR(out[AGENT_PHASE_PREFILL], 0.5, 1e-12);
    double tot[AGENT_PHASES];
    agent_phase_energy_totals(&pe, tot);
    CHECK_NEAR(tot[AGENT_PHASE_PREFILL], 6.5, 1e-12);
    CHECK_NEAR(tot[AGENT_PHASE_DECODE], 5, 1e-12);
    CHECK_NEAR(tot[AGENT_PHASE_IDLE], 3, 1e-12);
    agent_phase_energy_destroy(&pe);
}

/* a shared "meter": energy rises by 1 J per call, from both threads */
static atomic_long meter;
static struct agent_phase_energy shared;
static atomic_int stop;

static double read_meter(void)
{
    return (double)atomic_fetch_add(&meter, 1) + 1;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++)
        agent_phase_energy_switch(&shared, (enum agent_phase)(i % 3), read_meter());
    atomic_store(&stop, 1);
    return NULL;
}

static void test_threads(void)
{
    agent_phase_energy_init(&shared);
    double first = read_meter(), sum = 0, out[AGENT_PHASES];
    agent_phase_energy_take(&shared, first, out); /* opens */
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, worker, NULL), 0);
    while (!atomic_load(&stop))
        if (agent_phase_energy_take(&shared, read_meter(), out) == 0)
            sum += out[0] + out[1] + out[2];
    pthread_join(th, NULL);
    double last = read_meter();
    CHECK_EQ_INT(agent_phase_energy_take(&shared, last, out), 0);
    sum += out[0] + out[1] + out[2];
    /* readings from the two threads reach the lock in either order; every joule between the
     * first and the last reading is counted exactly once */
    CHECK_NEAR(sum, last - first, 1e-9);
    double tot[AGENT_PHASES];
    agent_phase_energy_totals(&shared, tot);
    CHECK_NEAR(tot[0] + tot[1] + tot[2], sum, 1e-6);
    agent_phase_energy_destroy(&shared);
}

/* The meter extrapolates with the last power; when power falls the next reading is below what
 * it handed out, and its total must still not go backwards (a request's energy would be
 * negative, and is then reported as unknown). */
static void test_meter_monotonic(void)
{
    struct agent_meter m;
    agent_meter_init(&m);
    CHECK(isnan(agent_meter_energy_at(&m, 1000)));
    agent_meter_update(&m, 1000000000ULL, 100, 8);
    double a = agent_meter_energy_at(&m, 1900000000ULL); /* 100 + 8 * 0.9 */
    CHECK_NEAR(a, 107.2, 1e-9);
    agent_meter_update(&m, 2000000000ULL, 104, 3); /* power fell: the real total is 104 */
    double b = agent_meter_energy_at(&m, 2000000000ULL);
    CHECK(b >= a);
    double c = agent_meter_energy_at(&m, 5000000000ULL); /* 104 + 3 * 3 = 113 */
    CHECK_NEAR(c, 113, 1e-9);
    agent_meter_destroy(&m);
}

int main(void)
{
    test_meter_monotonic();
    test_sequence();
    test_threads();
    return et_finish();
}
