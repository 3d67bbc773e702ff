/* The agent's [governor] keys and the governor's tunable table agree: every tunable has a key
 * with the same default and range, defaults translate cleanly, and the governor's own rules
 * surface as file:line config errors. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "config.h"
#include "ember_test.h"
#include "gov_config.h"

static const struct cfg_key *agent_key(const char *name)
{
    for (const struct cfg_key *k = agent_config_keys; k->section; k++)
        if (strcmp(k->section, "governor") == 0 && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

int main(void)
{
    size_t n;
    const struct gov_tunable_desc *table = gov_tunable_table(&n);
    CHECK(n > 10);
    for (size_t i = 0; i < n; i++) {
        const struct cfg_key *k = agent_key(table[i].key);
        CHECK_MSG(k != NULL, "governor tunable %s has no [governor] config key", table[i].key);
        if (!k)
            continue;
        if (table[i].type == GOV_TUNABLE_STRING)
            continue;
        double a = strtod(k->def, NULL), b = strtod(table[i].default_value, NULL);
        CHECK_MSG(fabs(a - b) < 1e-9, "%s default: config %s, governor %s", table[i].key, k->def,
                  table[i].default_value);
        /* the range is the governor's own, read from its table (never a copy) */
        struct cmn_range r;
        bool zero_off;
        agent_config_key_range(k, &r, &zero_off);
        CHECK_MSG(r.max == table[i].max && r.min == table[i].min &&
                      zero_off == table[i].zero_means_off,
                  "%s range: config %g..%g, governor %g..%g", table[i].key, r.min, r.max,
                  table[i].min, table[i].max);
    }

    struct agent_config cfg;
    agent_config_defaults(&cfg);
    struct gov_tunables t;
    char err[256];
    CHECK_EQ_INT(agent_governor_tunables(&cfg.governor, &t, NULL, err, sizeof(err)), 0);
    CHECK_STR(t.policy, "balanced");
    CHECK_EQ_INT(t.tick_ms, 100);
    CHECK_NEAR(t.thermal_target_c, 85, 1e-9);

    cfg.governor.power_cap_w = 12.5;
    snprintf(cfg.governor.policy, sizeof(cfg.governor.policy), "ondemand");
    CHECK_EQ_INT(agent_governor_tunables(&cfg.governor, &t, NULL, err, sizeof(err)), 0);
    CHECK_NEAR(t.power_cap_w, 12.5, 1e-9);
    CHECK_STR(t.policy, "ondemand");

    /* thermal_target_c 10 is inside the config's 0..125 but the governor wants 0 or 30..125. */
    const char *text = "[governor]\npolicy = quiet\nthermal_target_c = 10\n";
    CHECK_EQ_INT(agent_config_parse(text, strlen(text), "g.conf", &cfg, err, sizeof(err)), -EINVAL);
    CHECK_CONTAINS(err, "g.conf:3: [governor] thermal_target_c:");
    return et_finish();
}
