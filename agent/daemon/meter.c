/* Energy meter with linear extrapolation between readings (see meter.h). */
#include "meter.h"

#include <math.h>

#include "common/timeutil.h"

void agent_meter_init(struct agent_meter *m)
{
    pthread_mutex_init(&m->lock, NULL);
    m->valid = false;
    m->t_ns = 0;
    m->energy_j = 0;
    m->power_w = NAN; /* unknown until a reading has one */
    m->served_j = -INFINITY;
}

void agent_meter_destroy(struct agent_meter *m)
{
    pthread_mutex_destroy(&m->lock);
}

void agent_meter_update(struct agent_meter *m, uint64_t now_ns, double energy_j, double power_w)
{
    pthread_mutex_lock(&m->lock);
    m->valid = true;
    m->t_ns = now_ns;
    m->energy_j = energy_j;
    if (isfinite(power_w))
        m->power_w = power_w;
    pthread_mutex_unlock(&m->lock);
}

double agent_meter_energy_at(struct agent_meter *m, uint64_t now_ns)
{
    pthread_mutex_lock(&m->lock);
    double e = NAN;
    if (m->valid) {
        double dt_s = now_ns > m->t_ns ? (double)(now_ns - m->t_ns) / (double)CMN_NS_PER_S : 0.0;
        /* without a known power, energy past the last reading is unknown, not zero watts */
        if (dt_s == 0)
            e = m->energy_j;
        else if (isfinite(m->power_w))
            e = m->energy_j + m->power_w * dt_s;
        if (isfinite(e)) {
            if (e < m->served_j)
                e = m->served_j;
            m->served_j = e;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return e;
}

double agent_meter_power(struct agent_meter *m)
{
    pthread_mutex_lock(&m->lock);
    double p = m->valid ? m->power_w : NAN;
    pthread_mutex_unlock(&m->lock);
    return p;
}
