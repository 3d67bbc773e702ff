/* AMD Zen package energy (issue 12): since Linux 5.8 the AMD RAPL driver registers its counters
 * with powercap under the same intel-rapl names as Intel's, as zone intel-rapl:0 "package-0"
 * with subzone intel-rapl:0:0 "core" and no DRAM zone; the counter is 32 bits of 15.3 uJ units,
 * so max_energy_range_uj is 65532610987 (about 65.5 kJ: under a minute at full load on a big
 * part). A recorded-shape fixture of that layout: the package is the figure, the core is
 * reported but not added, a wrap at max_energy_range_uj is unfolded. (amd_energy's hwmon
 * layout, Esocket/Ecore labels, is covered by telstore_power_test.) */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/power.h"

#define NS   1000000000ULL
#define ZONE "sys/class/powercap/intel-rapl:0"
#define CORE "sys/class/powercap/intel-rapl:0:0" /* the class lists every zone flat */
#define MAXR 65532610987ULL

static char root[64];

static void put(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(const char *rel, const char *fmt, ...)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/telzen_XXXXXX");
    if (!mkdtemp(root))
        return 1;
    put(ZONE "/name", "package-0\n");
    put(ZONE "/enabled", "1\n");
    put(ZONE "/energy_uj", "%llu\n", 1000000000ULL);
    put(ZONE "/max_energy_range_uj", "%llu\n", MAXR);
    put(CORE "/name", "core\n");
    put(CORE "/energy_uj", "%llu\n", 400000000ULL);
    put(CORE "/max_energy_range_uj", "%llu\n", MAXR);

    struct tel_power_params p;
    tel_power_params_defaults(&p);
    p.root = root;
    p.pmic_command = "";
    struct tel_power *pw = NULL;
    char err[512];
    CHECK_EQ_INT(tel_power_new(&p, 0, 0, &pw, err, sizeof(err)), 0);
    if (!pw)
        return et_finish();
    CHECK_EQ_INT(tel_power_source(pw), TEL_SOURCE_RAPL);
    CHECK_STR(tel_source_scope(TEL_SOURCE_RAPL), "package");
    CHECK_CONTAINS(tel_power_describe(pw), "package-0");
    /* 1 s at 45 W package, 30 W of it in the cores */
    put(ZONE "/energy_uj", "%llu\n", 1045000000ULL);
    put(CORE "/energy_uj", "%llu\n", 430000000ULL);
    struct tel_power_reading r;
    CHECK_EQ_INT(tel_power_read(pw, NS, NULL, &r), 0);
    CHECK_NEAR(r.power_w, 45.0, 1e-9);
    CHECK_NEAR(r.package_w, 45.0, 1e-9);
    CHECK_NEAR(r.core_w, 30.0, 1e-9);
    CHECK(isnan(r.dram_w)); /* Zen's RAPL has no DRAM domain */
    CHECK_NEAR(r.energy_j, 45.0, 1e-9);
    /* the 32-bit counter wraps: 10 J before the top, 35 J after it -> 45 J */
    put(ZONE "/energy_uj", "%llu\n", MAXR - 10000000ULL);
    CHECK_EQ_INT(tel_power_read(pw, 2 * NS, NULL, &r), 0);
    double before = r.energy_j;
    put(ZONE "/energy_uj", "%llu\n", 35000000ULL);
    CHECK_EQ_INT(tel_power_read(pw, 3 * NS, NULL, &r), 0);
    CHECK_NEAR(r.energy_j - before, 45.0, 1e-6);
    CHECK_NEAR(r.power_w, 45.0, 1e-6);
    tel_power_free(pw);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", root);
    if (system(rm) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return et_finish();
}
