/* Raspberry Pi 5 PMIC rails (telemetry/src/pmic.c): the parser on a fixture in the format
 * `vcgencmd pmic_read_adc` prints (12 rails with current and voltage, two with a voltage only),
 * the power source running a configurable command (here a script that prints the fixture, as
 * the real command would), the failures that hand over to the next source with the reason
 * named, and the rails-to-wall relation. We have no Pi 5: the fixture's values are those of an
 * idle board in the documented format, not a recording from our own hardware. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ember_test.h"
#include "telemetry/power.h"
#include "telemetry/wall.h"

#ifndef FIXTURE
#error FIXTURE must name the pmic_read_adc fixture
#endif

static char dir[64];

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    *len = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    return buf;
}

static void script(const char *name, const char *body)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
}

/* The sum over the fixture's 12 rail pairs, computed by hand from its lines. */
#define FIXTURE_W 1.56539865792768

static void test_parse(void)
{
    size_t len = 0;
    char *text = slurp(FIXTURE, &len);
    CHECK(text != NULL);
    if (!text)
        return;
    double w = 0;
    int rails = 0;
    char err[160];
    CHECK_EQ_INT(tel_pmic_parse(text, len, &w, &rails, err, sizeof(err)), 0);
    CHECK_EQ_INT(rails, 12);
    CHECK_NEAR(w, FIXTURE_W, 1e-9);
    free(text);
    /* the short form some tools print; one rail */
    const char *s = "VDD_CORE_V=0.8000V\nVDD_CORE_A=2.5000A\n";
    CHECK_EQ_INT(tel_pmic_parse(s, strlen(s), &w, &rails, err, sizeof(err)), 0);
    CHECK_NEAR(w, 2.0, 1e-12);
    CHECK_EQ_INT(rails, 1);
    /* nothing usable: said so */
    s = "EXT5V_V volt(24)=5.12V\nBATT_V volt(25)=0.0V\n";
    CHECK_EQ_INT(tel_pmic_parse(s, strlen(s), &w, &rails, err, sizeof(err)), -EBADMSG);
    CHECK_CONTAINS(err, "no rail with both");
    s = "VDD_CORE_A current(7)=2.12V\nVDD_CORE_V volt(15)=0.80V\n"; /* unit mismatch: skipped */
    CHECK_EQ_INT(tel_pmic_parse(s, strlen(s), &w, &rails, err, sizeof(err)), -EBADMSG);
    s = "VDD_CORE_A current(7)=900A\nVDD_CORE_V volt(15)=0.80V\n";
    CHECK_EQ_INT(tel_pmic_parse(s, strlen(s), &w, &rails, err, sizeof(err)), -EBADMSG);
    CHECK_CONTAINS(err, "VDD_CORE_A");
}

static void test_source(void)
{
    char body[512], cmd[256];
    snprintf(body, sizeof(body), "[ \"$1\" = pmic_read_adc ] || exit 2\ncat '%s'", FIXTURE);
    script("vcgencmd", body);
    struct tel_power_params p;
    tel_power_params_defaults(&p);
    p.root = dir; /* an empty tree: no RAPL, hwmon or battery */
    snprintf(cmd, sizeof(cmd), "%s/vcgencmd pmic_read_adc", dir);
    p.pmic_command = cmd;
    struct tel_power *pw = NULL;
    char err[512];
    CHECK_EQ_INT(tel_power_new(&p, 0, 0, &pw, err, sizeof(err)), 0);
    if (!pw)
        return;
    CHECK_EQ_INT(tel_power_source(pw), TEL_SOURCE_PMIC);
    CHECK_STR(tel_source_scope(TEL_SOURCE_PMIC), "soc");
    CHECK_STR(tel_source_name(TEL_SOURCE_PMIC), "pmic");
    CHECK_CONTAINS(tel_power_describe(pw), "12 SoC rails");
    struct tel_power_reading r;
    CHECK_EQ_INT(tel_power_read(pw, 1000000000ULL, NULL, &r), 0);
    CHECK_EQ_INT(r.source, TEL_SOURCE_PMIC);
    CHECK_NEAR(r.power_w, FIXTURE_W, 1e-9);
    CHECK_NEAR(r.energy_j, FIXTURE_W, 1e-9);
    /* the command starts failing: the estimate takes over in the same reading */
    script("vcgencmd", "exit 1");
    CHECK_EQ_INT(tel_power_read(pw, 2000000000ULL, NULL, &r), 0);
    CHECK_EQ_INT(r.source, TEL_SOURCE_ESTIMATE);
    CHECK(r.switched);
    CHECK(r.energy_j >= FIXTURE_W);
    tel_power_free(pw);
    /* garbage output, or a missing program: not this source, the reason named */
    script("vcgencmd", "echo hello");
    p.sources_mask = 1u << TEL_SOURCE_PMIC;
    CHECK_EQ_INT(tel_power_new(&p, 0, 0, &pw, err, sizeof(err)), -ENODEV);
    CHECK_CONTAINS(err, "no rail with both");
    snprintf(cmd, sizeof(cmd), "%s/not-installed pmic_read_adc", dir);
    CHECK_EQ_INT(tel_power_new(&p, 0, 0, &pw, err, sizeof(err)), -ENODEV);
    CHECK_CONTAINS(err, "pmic");
    p.pmic_command = "";
    CHECK_EQ_INT(tel_power_new(&p, 0, 0, &pw, err, sizeof(err)), -ENODEV);
}

/* The rails-to-wall fit (wall.h) on the fixture: 1.1451 x 1.565 + 0.588 = 2.38 W on the board's
 * 5 V input, before the power supply. */
static void test_wall_relation(void)
{
    struct tel_wall_params wp;
    tel_wall_params_defaults(&wp);
    wp.psu_efficiency = 1.0;
    CHECK_NEAR(tel_wall_estimate_from_w(&wp, FIXTURE_W, TEL_SOURCE_PMIC), 2.380438003192986, 1e-9);
    wp.psu_efficiency = 0.86;
    CHECK_NEAR(tel_wall_estimate_from_w(&wp, FIXTURE_W, TEL_SOURCE_PMIC), 2.380438003192986 / 0.86,
               1e-9);
    /* any other package source: (package + board) / efficiency */
    CHECK_NEAR(tel_wall_estimate_from_w(&wp, 4.0, TEL_SOURCE_RAPL), (4.0 + wp.board_w) / 0.86,
               1e-9);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/telpmic_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_parse();
    test_source();
    test_wall_relation();
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", dir);
    if (system(rm) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return et_finish();
}
