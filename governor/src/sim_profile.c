/* Plant descriptions for the simulator: the JSON profile format (docs/governor-sim.md), the
 * built-in profiles shipped in governor/profiles/ and how they are found, the controller's view of
 * a profile cluster, and the workloads (built-in generators and JSON files). Every number is range
 * checked and an error names the field, so a user's own board description fails loudly instead of
 * simulating nonsense. */
#include "governor/sim.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the built-in profiles are looked for, in order: $EMBER_PROFILE_DIR; the data directory the
 * build was configured to install into (/usr/share/ember/profiles in the Debian package); the same
 * place relative to the running binary (<bin>/../share/ember/profiles: a tree installed with
 * another --prefix, or packaged from a build configured for /usr/local); and last the source tree,
 * for a binary run from its build directory. EMBER_GOV_PROFILE_DIR is left undefined in builds
 * made for packages (-DEMBER_SOURCE_TREE_DATA=OFF), so no build machine path is compiled in. */
#ifndef EMBER_GOV_PROFILE_INSTALL_DIR
#define EMBER_GOV_PROFILE_INSTALL_DIR "/usr/share/ember/profiles"
#endif

static const char *const builtin[] = {"rk3588", "rpi5", "n100", "ryzen", NULL};

const char *const *gov_sim_builtin_profiles(void)
{
    return builtin;
}

static bool dir_has(const char *dir, const char *file)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

/* <directory of the running binary>/../share/ember/profiles, or NULL. */
static const char *exe_relative_dir(char *buf, size_t len)
{
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) { /* /usr/bin/ember -> /usr */
        char *slash = strrchr(exe, '/');
        if (!slash)
            return NULL;
        *slash = '\0';
    }
    if ((size_t)snprintf(buf, len, "%s/share/ember/profiles", exe) >= len)
        return NULL;
    return buf;
}

const char *gov_sim_profile_dir(void)
{
    static char exe_dir[1100];
    const char *env = getenv("EMBER_PROFILE_DIR");
    if (env && *env)
        return env;
    if (dir_has(EMBER_GOV_PROFILE_INSTALL_DIR, "rk3588.json"))
        return EMBER_GOV_PROFILE_INSTALL_DIR;
    const char *rel = exe_relative_dir(exe_dir, sizeof(exe_dir));
    if (rel && dir_has(rel, "rk3588.json"))
        return rel;
#ifdef EMBER_GOV_PROFILE_DIR
    return EMBER_GOV_PROFILE_DIR;
#else
    return EMBER_GOV_PROFILE_INSTALL_DIR; /* absent: the error names where they belong */
#endif
}

static char *slurp(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4u << 20;
    char *buf = malloc(cap);
    size_t len = buf ? fread(buf, 1, cap - 1, f) : 0;
    if (!buf || ferror(f) || (len == cap - 1 && !feof(f))) {
        snprintf(err, err_len, "%s: %s", path,
                 !buf        ? "out of memory"
                 : ferror(f) ? "read error"
                             : "larger than 4 MiB");
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[len] = 0;
    fclose(f);
    return buf;
}

/* Number at key inside [lo, hi]; optional keys take def when absent (NAN def = required). */
static int num(const cJSON *o, const char *where, const char *key, double lo, double hi, double def,
               double *ret, char *err, size_t err_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (isnan(def)) {
            snprintf(err, err_len, "%s.%s: missing", where, key);
            return -EINVAL;
        }
        *ret = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        snprintf(err, err_len, "%s.%s: expected a number in %g..%g", where, key, lo, hi);
        return -EINVAL;
    }
    *ret = v->valuedouble;
    return 0;
}

static int boolean(const cJSON *o, const char *where, const char *key, bool def, bool *ret,
                   char *err, size_t err_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        snprintf(err, err_len, "%s.%s: expected true or false", where, key);
        return -EINVAL;
    }
    *ret = cJSON_IsTrue(v);
    return 0;
}

static const cJSON *section(const cJSON *root, const char *key, char *err, size_t err_len)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsObject(s))
        snprintf(err, err_len, "%s: missing object", key);
    return cJSON_IsObject(s) ? s : NULL;
}

static int parse_cluster(const cJSON *c, unsigned idx, struct gov_sim_cluster *k, char *err,
                         size_t err_len)
{
    char where[48];
    snprintf(where, sizeof(where), "clusters[%u]", idx);
    if (!cJSON_IsObject(c)) {
        snprintf(err, err_len, "%s: not an object", where);
        return -EINVAL;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
    if (!cJSON_IsString(name) || !*name->valuestring ||
        strlen(name->valuestring) >= sizeof(k->name)) {
        snprintf(err, err_len, "%s.name: a non-empty string shorter than %zu", where,
                 sizeof(k->name));
        return -EINVAL;
    }
    snprintf(k->name, sizeof(k->name), "%s", name->valuestring);
    double cpus, first, base, ipc, ceff, leak, leak_v, core_gbs;
    bool table;
    if (num(c, where, "cpus", 1, 64, NAN, &cpus, err, err_len) ||
        num(c, where, "first_cpu", 0, GOV_MAX_CPUS - 1, NAN, &first, err, err_len) ||
        num(c, where, "base_khz", 0, 1e8, 0, &base, err, err_len) ||
        num(c, where, "ipc", 0.01, 100, 1, &ipc, err, err_len) ||
        num(c, where, "ceff_nf", 0, 100, NAN, &ceff, err, err_len) ||
        num(c, where, "leak_w", 0, 100, NAN, &leak, err, err_len) ||
        num(c, where, "leak_ref_v", 0.1, 3, NAN, &leak_v, err, err_len) ||
        num(c, where, "core_gbs", 0, 1000, 0, &core_gbs, err, err_len) ||
        boolean(c, where, "frequency_table", true, &table, err, err_len) ||
        boolean(c, where, "exact", true, &k->exact, err, err_len) ||
        boolean(c, where, "boost", false, &k->boost_available, err, err_len) ||
        boolean(c, where, "engine", false, &k->engine, err, err_len))
        return -EINVAL;
    if (first + cpus > GOV_MAX_CPUS) {
        snprintf(err, err_len, "%s: CPUs beyond %d", where, GOV_MAX_CPUS);
        return -EINVAL;
    }
    k->n_cpus = (unsigned)cpus;
    k->first_cpu = (unsigned)first;
    k->base_khz = (uint32_t)base;
    k->ipc = ipc;
    k->ceff_nf = ceff;
    k->leak_w = leak;
    k->leak_ref_v = leak_v;
    k->core_gbs = core_gbs;
    k->continuous = !table;

    const cJSON *opp = cJSON_GetObjectItemCaseSensitive(c, "opp");
    int n = cJSON_IsArray(opp) ? cJSON_GetArraySize(opp) : -1;
    if (n < 2 || n > GOV_SIM_MAX_OPPS) {
        snprintf(err, err_len, "%s.opp: an array of 2..%d [kHz, mV] pairs", where,
                 GOV_SIM_MAX_OPPS);
        return -EINVAL;
    }
    const cJSON *e;
    k->n_opps = 0;
    cJSON_ArrayForEach(e, opp)
    {
        const cJSON *f = cJSON_GetArrayItem(e, 0), *v = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(f) ||
            !cJSON_IsNumber(v) || !(f->valuedouble >= 1000 && f->valuedouble <= 1e8) ||
            !(v->valuedouble >= 100 && v->valuedouble <= 3000)) {
            snprintf(err, err_len, "%s.opp[%u]: expected [kHz 1000..1e8, mV 100..3000]", where,
                     k->n_opps);
            return -EINVAL;
        }
        struct gov_sim_opp *o = &k->opps[k->n_opps];
        o->khz = (uint32_t)f->valuedouble;
        o->volt = v->valuedouble / 1000.0;
        if (k->n_opps &&
            (o->khz <= k->opps[k->n_opps - 1].khz || o->volt < k->opps[k->n_opps - 1].volt)) {
            snprintf(err, err_len, "%s.opp[%u]: frequencies must rise and voltages must not fall",
                     where, k->n_opps);
            return -EINVAL;
        }
        k->n_opps++;
    }
    if (k->base_khz && (k->base_khz < k->opps[0].khz || k->base_khz > k->opps[n - 1].khz)) {
        snprintf(err, err_len, "%s.base_khz: outside the OPP range", where);
        return -EINVAL;
    }
    return 0;
}

/* The optional memory-controller clock steps (the memory lever). */
static int parse_memory(const cJSON *root, struct gov_sim_profile *p, char *err, size_t err_len)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "memory");
    p->n_mem_mhz = 0;
    p->mem_extra_w = 0;
    if (!m)
        return 0;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(m, "mhz");
    int n = cJSON_IsArray(steps) ? cJSON_GetArraySize(steps) : -1;
    if (!cJSON_IsObject(m) || n < 2 || n > GOV_SIM_MAX_MEM) {
        snprintf(err, err_len, "memory.mhz: an array of 2..%d clock steps (MHz)", GOV_SIM_MAX_MEM);
        return -EINVAL;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, steps)
    {
        double prev = p->n_mem_mhz ? p->mem_mhz[p->n_mem_mhz - 1] : 0;
        if (!cJSON_IsNumber(v) || !(v->valuedouble > prev) || v->valuedouble > 100000) {
            snprintf(err, err_len, "memory.mhz[%u]: expected ascending MHz in 1..100000",
                     p->n_mem_mhz);
            return -EINVAL;
        }
        p->mem_mhz[p->n_mem_mhz++] = v->valuedouble;
    }
    if (num(m, "memory", "extra_w_at_top", 0, 100, NAN, &p->mem_extra_w, err, err_len) ||
        num(m, "memory", "peak_gbs", 0.1, 10000, NAN, &p->mem_peak_gbs, err, err_len) ||
        num(m, "memory", "upthreshold", 1, 100, 90, &p->mem_upthreshold, err, err_len) ||
        num(m, "memory", "downdifferential", 0, 99, 5, &p->mem_downdiff, err, err_len) ||
        num(m, "memory", "polling_ms", 1, 10000, 50, &p->mem_polling_ms, err, err_len))
        return -EINVAL;
    if (p->mem_downdiff >= p->mem_upthreshold) {
        snprintf(err, err_len, "memory.downdifferential: must be below upthreshold");
        return -EINVAL;
    }
    return 0;
}

/* The wall, the firmware limits' time window and the cited figures (all optional: a profile
 * without them models the package alone, wall = package). */
static int parse_plant(const cJSON *root, const cJSON *pw, const cJSON *th, const cJSON *pf,
                       struct gov_sim_profile *p, char *err, size_t err_len)
{
    const cJSON *wl = cJSON_GetObjectItemCaseSensitive(root, "wall");
    if (wl && !cJSON_IsObject(wl)) {
        snprintf(err, err_len, "wall: an object");
        return -EINVAL;
    }
    if (num(pw, "power", "pl2_w", 0, 10000, 0, &p->pl2_w, err, err_len) ||
        num(pw, "power", "pl_tau_s", 0, 3600, 0, &p->pl_tau_s, err, err_len) ||
        num(th, "thermal", "throttle_c", 0, 150, 0, &p->throttle_c, err, err_len) ||
        num(pf, "performance", "weights_gb", 0, 1000, 0, &p->weights_gb, err, err_len) ||
        num(pf, "performance", "prefill_batch_tokens", 1, 1e6, 64, &p->prefill_batch_tokens, err,
            err_len) ||
        num(wl, "wall", "board_w", 0, 1000, 0, &p->board_w, err, err_len) ||
        num(wl, "wall", "dram_idle_w", 0, 1000, 0, &p->dram_idle_w, err, err_len) ||
        num(wl, "wall", "dram_w_per_gbs", 0, 100, 0, &p->dram_w_per_gbs, err, err_len) ||
        num(wl, "wall", "psu_efficiency", 0.05, 1, 1, &p->psu_efficiency, err, err_len) ||
        num(wl, "wall", "psu_fixed_w", 0, 100, 0, &p->psu_fixed_w, err, err_len))
        return -EINVAL;
    if (parse_memory(root, p, err, err_len))
        return -EINVAL;
    if (p->pl2_w > 0 && p->pl2_w < p->firmware_power_limit_w) {
        snprintf(err, err_len, "power.pl2_w: below firmware_power_limit_w (PL1)");
        return -EINVAL;
    }
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(root, "references");
    if (!refs)
        return 0;
    int n = cJSON_IsArray(refs) ? cJSON_GetArraySize(refs) : -1;
    if (n < 0 || n > (int)(sizeof(p->refs) / sizeof(p->refs[0]))) {
        snprintf(err, err_len, "references: an array of at most %zu figures",
                 sizeof(p->refs) / sizeof(p->refs[0]));
        return -EINVAL;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, refs)
    {
        struct gov_sim_reference *x = &p->refs[p->n_refs];
        char where[32];
        snprintf(where, sizeof(where), "references[%u]", p->n_refs);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "figure");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(r, "source");
        static const char *const known[] = {"wall_idle_w",    "package_idle_w", "wall_load_w",
                                            "package_load_w", "sustained_mhz",  "load_temp_c",
                                            "decode_tok_s",   "prefill_tok_s"};
        bool ok = cJSON_IsString(f);
        for (size_t i = 0; ok && i < sizeof(known) / sizeof(known[0]); i++)
            if (strcmp(f->valuestring, known[i]) == 0)
                break;
            else if (i + 1 == sizeof(known) / sizeof(known[0]))
                ok = false;
        if (!ok) {
            snprintf(err, err_len,
                     "%s.figure: one of wall_idle_w, package_idle_w, wall_load_w, "
                     "package_load_w, sustained_mhz, load_temp_c, decode_tok_s, prefill_tok_s",
                     where);
            return -EINVAL;
        }
        if (!cJSON_IsString(src) || !*src->valuestring) {
            snprintf(err, err_len, "%s.source: a non-empty string (where the figure comes from)",
                     where);
            return -EINVAL;
        }
        if (num(r, where, "value", 1e-6, 1e6, NAN, &x->value, err, err_len) ||
            boolean(r, where, "estimate", false, &x->estimate, err, err_len))
            return -EINVAL;
        snprintf(x->figure, sizeof(x->figure), "%s", f->valuestring);
        snprintf(x->source, sizeof(x->source), "%s", src->valuestring);
        p->n_refs++;
    }
    return 0;
}

int gov_sim_profile_parse(const char *json, struct gov_sim_profile *p, char *err, size_t err_len)
{
    int rc = -EINVAL;
    memset(p, 0, sizeof(*p));
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        snprintf(err, err_len, "not a JSON object (near byte %ld)",
                 root ? 0L : (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : 0));
        goto fail;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!cJSON_IsString(s) || !*s->valuestring || strlen(s->valuestring) >= sizeof(p->name)) {
        snprintf(err, err_len, "name: a non-empty string shorter than %zu", sizeof(p->name));
        goto fail;
    }
    snprintf(p->name, sizeof(p->name), "%s", s->valuestring);
    s = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (cJSON_IsString(s))
        snprintf(p->description, sizeof(p->description), "%s", s->valuestring);

    const cJSON *pw = section(root, "power", err, err_len);
    const cJSON *th = pw ? section(root, "thermal", err, err_len) : NULL;
    const cJSON *pf = th ? section(root, "performance", err, err_len) : NULL;
    if (!pf)
        goto fail;
    if (num(pw, "power", "uncore_w", 0, 1000, NAN, &p->uncore_w, err, err_len) ||
        num(pw, "power", "idle_leak_fraction", 0, 1, NAN, &p->idle_leak_fraction, err, err_len) ||
        num(pw, "power", "leak_temp_coef", 0, 0.2, 0, &p->leak_temp_coef, err, err_len) ||
        num(pw, "power", "leak_ref_c", -40, 150, 25, &p->leak_ref_c, err, err_len) ||
        num(pw, "power", "firmware_power_limit_w", 0, 10000, 0, &p->firmware_power_limit_w, err,
            err_len) ||
        num(th, "thermal", "ambient_c", -40, 80, NAN, &p->ambient_c, err, err_len) ||
        num(th, "thermal", "r_jc", 0.001, 100, NAN, &p->r_jc, err, err_len) ||
        num(th, "thermal", "c_j", 0.001, 1e5, NAN, &p->c_j, err, err_len) ||
        num(th, "thermal", "r_ca", 0.001, 100, NAN, &p->r_ca, err, err_len) ||
        num(th, "thermal", "c_c", 0.001, 1e6, NAN, &p->c_c, err, err_len) ||
        num(th, "thermal", "passive_trip_c", 0, 150, 0, &p->passive_trip_c, err, err_len) ||
        num(th, "thermal", "tjmax_c", 50, 150, 105, &p->tjmax_c, err, err_len) ||
        num(pf, "performance", "prefill_tok_per_gcycle", 1e-6, 1e6, NAN, &p->prefill_tok_per_gcycle,
            err, err_len) ||
        num(pf, "performance", "decode_mem_ms", 0, 1e5, NAN, &p->decode_mem_ms, err, err_len) ||
        num(pf, "performance", "decode_gcycles_per_token", 0, 1e5, NAN,
            &p->decode_gcycles_per_token, err, err_len) ||
        num(pf, "performance", "decode_overlap", 0, 1, 0.8, &p->decode_overlap, err, err_len) ||
        num(pf, "performance", "engine_util_decode", 0, 1, 0.97, &p->engine_util_decode, err,
            err_len) ||
        num(pf, "performance", "activity_prefill", 0, 2, 1.0, &p->activity_prefill, err, err_len) ||
        num(pf, "performance", "activity_decode", 0, 2, 0.5, &p->activity_decode, err, err_len) ||
        num(pf, "performance", "activity_background", 0, 2, 0.3, &p->activity_background, err,
            err_len) ||
        num(pf, "performance", "background_mhz", 0, 1e5, 20, &p->background_mhz, err, err_len) ||
        parse_plant(root, pw, th, pf, p, err, err_len))
        goto fail;
    if (p->decode_mem_ms <= 0 && p->decode_gcycles_per_token <= 0) {
        snprintf(err, err_len,
                 "performance: decode needs decode_mem_ms or "
                 "decode_gcycles_per_token above 0");
        goto fail;
    }

    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(root, "clusters");
    int n = cJSON_IsArray(cl) ? cJSON_GetArraySize(cl) : -1;
    if (n < 1 || n > GOV_MAX_CLUSTERS) {
        snprintf(err, err_len, "clusters: an array of 1..%d clusters", GOV_MAX_CLUSTERS);
        goto fail;
    }
    const cJSON *c;
    bool any_engine = false;
    cJSON_ArrayForEach(c, cl)
    {
        struct gov_sim_cluster *k = &p->clusters[p->n_clusters];
        if (parse_cluster(c, p->n_clusters, k, err, err_len))
            goto fail;
        for (unsigned j = 0; j < p->n_clusters; j++) {
            const struct gov_sim_cluster *o = &p->clusters[j];
            if (k->first_cpu < o->first_cpu + o->n_cpus &&
                o->first_cpu < k->first_cpu + k->n_cpus) {
                snprintf(err, err_len, "clusters[%u]: CPUs overlap clusters[%u]", p->n_clusters, j);
                goto fail;
            }
        }
        any_engine |= k->engine;
        p->n_clusters++;
    }
    if (!any_engine) {
        snprintf(err, err_len, "clusters: no cluster has \"engine\": true");
        goto fail;
    }
    rc = 0;
fail:
    cJSON_Delete(root);
    return rc;
}

int gov_sim_profile_load(const char *name_or_path, struct gov_sim_profile *ret, char *err,
                         size_t err_len)
{
    char path[1024];
    size_t len = strlen(name_or_path);
    if (strchr(name_or_path, '/') || (len > 5 && strcmp(name_or_path + len - 5, ".json") == 0)) {
        snprintf(path, sizeof(path), "%s", name_or_path);
    } else {
        bool known = false;
        for (const char *const *b = builtin; *b; b++)
            known |= strcmp(*b, name_or_path) == 0;
        if (!known) {
            snprintf(err, err_len,
                     "unknown profile '%s' (built-in: rk3588, n100, ryzen; or a "
                     "FILE.json)",
                     name_or_path);
            return -ENOENT;
        }
        snprintf(path, sizeof(path), "%s/%s.json", gov_sim_profile_dir(), name_or_path);
    }
    char inner[256];
    char *json = slurp(path, err, err_len);
    if (!json)
        return -ENOENT;
    int rc = gov_sim_profile_parse(json, ret, inner, sizeof(inner));
    if (rc)
        snprintf(err, err_len, "%s: %s", path, inner);
    free(json);
    return rc;
}

void gov_sim_cluster_info(const struct gov_sim_profile *p, unsigned i, struct gov_cluster_info *ret)
{
    const struct gov_sim_cluster *k = &p->clusters[i];
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->name, sizeof(ret->name), "%s", k->name);
    ret->n_cpus = k->n_cpus;
    for (unsigned c = 0; c < k->n_cpus; c++)
        ret->cpus[c] = k->first_cpu + c;
    ret->cpuinfo_min_khz = k->opps[0].khz;
    ret->cpuinfo_max_khz = k->opps[k->n_opps - 1].khz;
    ret->base_khz = k->boost_available ? k->base_khz : 0;
    ret->boost_available = k->boost_available;
    ret->exact_freq = k->exact;
    if (!k->continuous) {
        ret->n_freqs = k->n_opps < GOV_MAX_FREQS ? k->n_opps : GOV_MAX_FREQS;
        for (unsigned f = 0; f < ret->n_freqs; f++)
            ret->freqs_khz[f] = k->opps[f].khz;
    }
}

/* ---- workloads ---- */

/* xorshift64*: deterministic across platforms, so a seed names one workload everywhere. The
 * draws of one request are taken into variables one statement at a time: the order in which C
 * evaluates a call's arguments is unspecified (GCC takes them right to left on x86-64 and left
 * to right on AArch64), so rnd() calls as arguments of one call gave the two architectures
 * different workloads. The statements draw in the order x86-64 always did (answer length first),
 * so the published results stay as they were. */
static double rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static unsigned rnd_between(uint64_t *s, unsigned lo, unsigned hi)
{
    return lo + (unsigned)(rnd(s) * (hi - lo + 1));
}

static int push(struct gov_sim_workload *w, size_t *cap, double at, unsigned prompt, unsigned gen)
{
    if (w->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct gov_sim_request *r = realloc(w->req, nc * sizeof(*r));
        if (!r)
            return -ENOMEM;
        w->req = r;
        *cap = nc;
    }
    w->req[w->n++] = (struct gov_sim_request){at, prompt, gen};
    return 0;
}

static int workload_json(const char *path, struct gov_sim_workload *w, char *err, size_t err_len)
{
    char *json = slurp(path, err, err_len);
    if (!json)
        return -ENOENT;
    int rc = -EINVAL;
    size_t cap = 0;
    cJSON *root = cJSON_Parse(json);
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(root, "requests"), *r;
    if (!cJSON_IsObject(root) || !cJSON_IsArray(reqs) || cJSON_GetArraySize(reqs) < 1) {
        snprintf(err, err_len,
                 "%s: expected {\"requests\": [{\"at_s\", \"prompt\", \"gen\"}, ...]}", path);
        goto fail;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    snprintf(w->name, sizeof(w->name), "%s", cJSON_IsString(name) ? name->valuestring : "file");
    char where[64];
    bool closed = false;
    double think = 0;
    if (boolean(root, path, "closed_loop", false, &closed, err, err_len) ||
        num(root, path, "think_s", 0, 1e6, 0, &think, err, err_len))
        goto fail;
    w->closed_loop = closed;
    w->think_s = think;
    double last = 0;
    cJSON_ArrayForEach(r, reqs)
    {
        snprintf(where, sizeof(where), "%s: requests[%zu]", path, w->n);
        double at, prompt, gen;
        if (num(r, where, "at_s", 0, 1e7, closed ? 0 : NAN, &at, err, err_len) ||
            num(r, where, "prompt", 1, 1e6, NAN, &prompt, err, err_len) ||
            num(r, where, "gen", 1, 1e6, NAN, &gen, err, err_len))
            goto fail;
        if (at < last) {
            snprintf(err, err_len, "%s.at_s: arrivals must not go back in time", where);
            goto fail;
        }
        last = at;
        if (push(w, &cap, at, (unsigned)prompt, (unsigned)gen)) {
            snprintf(err, err_len, "out of memory");
            rc = -ENOMEM;
            goto fail;
        }
    }
    rc = 0;
fail:
    cJSON_Delete(root);
    free(json);
    return rc;
}

int gov_sim_workload_load(const char *name_or_path, double duration_s, uint64_t seed,
                          struct gov_sim_workload *w, char *err, size_t err_len)
{
    memset(w, 0, sizeof(*w));
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ULL;
    size_t cap = 0;
    int rc = 0;
    if (strcmp(name_or_path, "chat") == 0) {
        /* a person chatting: a turn every 15..45 s; the conversation prefix is cached, so only
         * the new message is prefilled (20..200 tokens); answers of 50..400 tokens */
        snprintf(w->name, sizeof(w->name), "chat");
        for (double t = 2; t < duration_s && !rc; t += 15 + 30 * rnd(&s)) {
            unsigned gen = rnd_between(&s, 50, 400), prompt = rnd_between(&s, 20, 200);
            rc = push(w, &cap, t, prompt, gen);
        }
    } else if (strcmp(name_or_path, "burst") == 0) {
        /* a batch job every 120 s: 4 documents of 100..600 tokens, summaries of 50..250 */
        snprintf(w->name, sizeof(w->name), "burst");
        for (double t = 2; t < duration_s && !rc; t += 120)
            for (int k = 0; k < 4 && !rc; k++) {
                unsigned gen = rnd_between(&s, 50, 250), prompt = rnd_between(&s, 100, 600);
                rc = push(w, &cap, t, prompt, gen);
            }
    } else if (strcmp(name_or_path, "steady") == 0) {
        /* a saturated server: the next request starts as soon as the previous finishes */
        snprintf(w->name, sizeof(w->name), "steady");
        w->closed_loop = true;
        for (int k = 0; k < 100000 && !rc; k++) {
            unsigned gen = rnd_between(&s, 100, 300), prompt = rnd_between(&s, 50, 300);
            rc = push(w, &cap, 0, prompt, gen);
        }
    } else if (strchr(name_or_path, '/') || strstr(name_or_path, ".json")) {
        return workload_json(name_or_path, w, err, err_len);
    } else {
        snprintf(err, err_len, "unknown workload '%s' (chat, burst, steady or a FILE.json)",
                 name_or_path);
        return -ENOENT;
    }
    if (rc) {
        snprintf(err, err_len, "out of memory");
        gov_sim_workload_free(w);
    }
    return rc;
}

void gov_sim_workload_free(struct gov_sim_workload *w)
{
    if (!w)
        return;
    free(w->req);
    w->req = NULL;
    w->n = 0;
}
