/* session_csv: appends one CSV line per finished request ([plugin.session_csv] file). */
#include <ember/plugin.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int csv_init(const struct ember_plugin_config *cfg, void **state, char *err, size_t len)
{
    const char *path = NULL;
    for (size_t i = 0; i < cfg->n_settings; i++)
        if (strcmp(cfg->settings[i].key, "file") == 0)
            path = cfg->settings[i].value;
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f) {
        snprintf(err, len, "file: %s", path ? strerror(errno) : "not set");
        return -EINVAL;
    }
    setvbuf(f, NULL, _IOLBF, 0); /* a whole line per write: readable while the agent runs */
    *state = f;
    return 0;
}

static void csv_shutdown(void *state)
{
    fclose(state);
}

static void csv_telemetry(void *state, const struct ember_plugin_telemetry *t)
{
    if (t->kind == EMBER_PLUGIN_SESSION) /* the loop thread: a line is quick enough */
        fprintf(state, "%llu,%llu,%llu,%.1f,%.4f,%s\n", (unsigned long long)t->ts_ns,
                (unsigned long long)t->prompt_tokens, (unsigned long long)t->gen_tokens,
                t->duration_ms, t->session_energy_j, t->policy);
}

EMBER_PLUGIN_EXPORT const struct ember_plugin ember_plugin = {
    .abi_version = EMBER_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct ember_plugin),
    .name = "session_csv",
    .version = "1",
    .init = csv_init,
    .shutdown = csv_shutdown,
    .on_telemetry = csv_telemetry,
};
