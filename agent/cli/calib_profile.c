/* A simulator profile from a calibration run. What a calibration measures on this machine goes
 * in: the clusters (names, CPUs, frequency tables or continuous ranges), the engine's decode and
 * prefill speed at every step (fitted to the plant's model), and the model's size. What it cannot
 * measure comes from a base profile and stays labelled as the base's: voltages and capacitance
 * (mapped by rank, fastest cluster to fastest), power, thermal and wall terms. */
#include "calib_profile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "governor/sim.h"

#define PROFILE_MAX_BYTES (1u << 20)

/* The base profile's JSON text: a built-in name or a file (gov_sim_profile_load's rule). */
static char *read_base(const char *base, char *err, size_t err_len)
{
    char path[1024];
    size_t len = strlen(base);
    if (strchr(base, '/') || (len > 5 && strcmp(base + len - 5, ".json") == 0))
        snprintf(path, sizeof(path), "%s", base);
    else
        snprintf(path, sizeof(path), "%s/%s.json", gov_sim_profile_dir(), base);
    char *buf = malloc(PROFILE_MAX_BYTES);
    if (!buf)
        return NULL;
    int rc = cmn_read_file(path, buf, PROFILE_MAX_BYTES, NULL);
    if (rc) {
        snprintf(err, err_len, "base profile %s: %s", path, strerror(-rc));
        free(buf);
        return NULL;
    }
    return buf;
}

/* The base cluster of the same rank by top frequency (fastest to fastest; a machine with more
 * clusters than the base maps the extra ones to the base's slowest). */
static unsigned base_rank_match(const struct gov_sim_profile *bp, const struct gov_controller *ctl,
                                unsigned k)
{
    unsigned n = gov_controller_n_clusters(ctl), rank = 0;
    uint32_t top = gov_controller_cluster(ctl, k)->cpuinfo_max_khz;
    for (unsigned j = 0; j < n; j++) {
        uint32_t o = gov_controller_cluster(ctl, j)->cpuinfo_max_khz;
        rank += o > top || (o == top && j < k);
    }
    unsigned order[GOV_MAX_CLUSTERS];
    for (unsigned i = 0; i < bp->n_clusters; i++)
        order[i] = i;
    for (unsigned i = 0; i < bp->n_clusters; i++) /* by top OPP, descending */
        for (unsigned j = i + 1; j < bp->n_clusters; j++) {
            const struct gov_sim_cluster *a = &bp->clusters[order[i]], *b = &bp->clusters[order[j]];
            if (b->opps[b->n_opps - 1].khz > a->opps[a->n_opps - 1].khz) {
                unsigned t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
    return order[rank < bp->n_clusters ? rank : bp->n_clusters - 1];
}

/* The base cluster's voltage at the same relative position in its own range (mV). */
static double base_mv(const struct gov_sim_cluster *b, double pos)
{
    double lo = b->opps[0].khz, hi = b->opps[b->n_opps - 1].khz;
    double khz = lo + pos * (hi - lo);
    for (unsigned i = 1; i < b->n_opps; i++)
        if (khz <= b->opps[i].khz) {
            double f = (khz - b->opps[i - 1].khz) / (b->opps[i].khz - b->opps[i - 1].khz);
            return 1000 * (b->opps[i - 1].volt + f * (b->opps[i].volt - b->opps[i - 1].volt));
        }
    return 1000 * b->opps[b->n_opps - 1].volt;
}

static cJSON *cluster_json(const struct gov_cluster_info *ci, const struct gov_sim_cluster *b)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", ci->name);
    cJSON_AddNumberToObject(c, "cpus", ci->n_cpus);
    cJSON_AddNumberToObject(c, "first_cpu", ci->cpus[0]);
    cJSON_AddBoolToObject(c, "engine", b->engine);
    cJSON_AddNumberToObject(c, "ipc", b->ipc);
    cJSON_AddNumberToObject(c, "ceff_nf", b->ceff_nf);
    cJSON_AddNumberToObject(c, "leak_w", b->leak_w);
    cJSON_AddNumberToObject(c, "leak_ref_v", b->leak_ref_v);
    cJSON_AddBoolToObject(c, "frequency_table", ci->n_freqs > 0);
    cJSON_AddBoolToObject(c, "exact", ci->exact_freq);
    cJSON_AddBoolToObject(c, "boost", ci->boost_available);
    if (ci->base_khz && ci->base_khz > ci->cpuinfo_min_khz && ci->base_khz < ci->cpuinfo_max_khz)
        cJSON_AddNumberToObject(c, "base_khz", ci->base_khz);
    cJSON *opp = cJSON_AddArrayToObject(c, "opp");
    uint32_t lo = ci->cpuinfo_min_khz, hi = ci->cpuinfo_max_khz;
    unsigned n = ci->n_freqs ? ci->n_freqs : 2;
    if (n > GOV_SIM_MAX_OPPS)
        n = GOV_SIM_MAX_OPPS;
    for (unsigned i = 0; i < n; i++) {
        uint32_t khz = ci->n_freqs ? ci->freqs_khz[i] : (i ? hi : lo);
        double pos = hi > lo ? (double)(khz - lo) / (hi - lo) : 1;
        cJSON *e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateNumber(khz));
        cJSON_AddItemToArray(e, cJSON_CreateNumber(round(base_mv(b, pos))));
        cJSON_AddItemToArray(opp, e);
    }
    return c;
}

/* Engine capacity in Gcycles/s of the reference core at a point (the plant's own rule). */
static double capacity(const cJSON *clusters, const struct gov_calib_point *pt)
{
    double cap = 0;
    unsigned i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, clusters)
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "engine")))
            cap += cJSON_GetObjectItemCaseSensitive(c, "cpus")->valuedouble *
                   cJSON_GetObjectItemCaseSensitive(c, "ipc")->valuedouble * pt->khz[i] / 1e6;
        i++;
    }
    return cap;
}

struct speed_fit {
    double mem_s, gcycles, prefill_per_gcycle;
    unsigned n_decode, n_prefill;
};

/* Decode time per token as the plant models it with no overlap: t = mem + gcycles / capacity,
 * a least-squares line of t against 1/capacity (a negative part is clamped at 0 and the other
 * refitted). Prefill is compute-bound in the plant (tokens/s proportional to capacity): its
 * tokens/s per Gcycle/s is taken at the highest point that measured it, so the ceiling, where
 * prefill runs under every policy, is reproduced exactly. */
static void fit_speed(const cJSON *clusters, const struct gov_calibration *cal, struct speed_fit *f)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, sp = 0;
    memset(f, 0, sizeof(*f));
    for (unsigned i = 0; i < cal->n_points; i++) {
        const struct gov_calib_point *pt = &cal->points[i];
        double cap = capacity(clusters, pt);
        if (!(cap > 0))
            continue;
        if (isfinite(pt->decode_tok_s) && pt->decode_tok_s > 0) {
            double x = 1 / cap, y = 1 / pt->decode_tok_s;
            sx += x, sy += y, sxx += x * x, sxy += x * y;
            f->n_decode++;
        }
        if (isfinite(pt->prefill_tok_s) && pt->prefill_tok_s > 0) {
            sp = pt->prefill_tok_s / cap; /* points ascend: the last one is the highest */
            f->n_prefill++;
        }
    }
    f->prefill_per_gcycle = sp;
    if (!f->n_decode)
        return;
    double n = f->n_decode, den = n * sxx - sx * sx;
    double b = fabs(den) > 1e-18 ? (n * sxy - sx * sy) / den : 0;
    double a = (sy - b * sx) / n;
    if (b < 0) /* faster at lower clocks is noise: no clock-dependent part */
        b = 0, a = sy / n;
    if (a < 0) /* no clock-independent part */
        a = 0, b = sxx > 0 ? sxy / sxx : 0;
    f->mem_s = a;
    f->gcycles = b;
}

static void add_reference(cJSON *refs, const char *figure, double value, const char *source)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "figure", figure);
    cJSON_AddNumberToObject(r, "value", value);
    cJSON_AddBoolToObject(r, "estimate", false);
    cJSON_AddStringToObject(r, "source", source);
    cJSON_AddItemToArray(refs, r);
}

static void set_number(cJSON *obj, const char *key, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddNumberToObject(obj, key, v);
}

int calib_profile_write(const char *base, const struct gov_calibration *cal,
                        const struct gov_controller *ctl, const char *model_path, const char *out,
                        char *err, size_t err_len)
{
    struct gov_sim_profile *bp = malloc(sizeof(*bp));
    char *text = NULL, *json = NULL;
    cJSON *root = NULL;
    int rc = -ENOMEM;
    if (!bp)
        goto done;
    char inner[256];
    if ((rc = gov_sim_profile_load(base, bp, inner, sizeof(inner)))) {
        snprintf(err, err_len, "base profile: %s", inner);
        goto done;
    }
    if (!(text = read_base(base, err, err_len))) {
        rc = -EIO;
        goto done;
    }
    if (!(root = cJSON_Parse(text)) || !cJSON_IsObject(root)) {
        snprintf(err, err_len, "base profile %s: not a JSON object", base);
        rc = -EINVAL;
        goto done;
    }
    /* the machine's clusters */
    cJSON_DeleteItemFromObjectCaseSensitive(root, "clusters");
    cJSON *clusters = cJSON_AddArrayToObject(root, "clusters");
    unsigned ncl = gov_controller_n_clusters(ctl);
    bool any_engine = false;
    for (unsigned k = 0; k < ncl; k++) {
        const struct gov_sim_cluster *b = &bp->clusters[base_rank_match(bp, ctl, k)];
        any_engine |= b->engine;
        cJSON_AddItemToArray(clusters, cluster_json(gov_controller_cluster(ctl, k), b));
    }
    if (!any_engine) { /* the base's engine clusters all mapped away: the engine runs on all */
        cJSON *c;
        cJSON_ArrayForEach(c, clusters)
            cJSON_ReplaceItemInObjectCaseSensitive(c, "engine", cJSON_CreateTrue());
    }
    /* the measured speed */
    struct speed_fit f;
    fit_speed(clusters, cal, &f);
    if (!f.n_decode || !f.n_prefill || !(f.mem_s > 0 || f.gcycles > 0)) {
        snprintf(err, err_len, "the curve has no usable decode and prefill speeds to fit");
        rc = -EINVAL;
        goto done;
    }
    cJSON *perf = cJSON_GetObjectItemCaseSensitive(root, "performance");
    if (!cJSON_IsObject(perf)) {
        snprintf(err, err_len, "base profile %s: no performance object", base);
        rc = -EINVAL;
        goto done;
    }
    set_number(perf, "decode_mem_ms", f.mem_s * 1e3);
    set_number(perf, "decode_gcycles_per_token", f.gcycles);
    set_number(perf, "decode_overlap", 0);
    set_number(perf, "prefill_tok_per_gcycle", f.prefill_per_gcycle);
    struct stat st;
    if (model_path && stat(model_path, &st) == 0 && st.st_size > 0)
        set_number(perf, "weights_gb", (double)st.st_size / 1e9);
    /* what it is and where each part comes from */
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "Measured by `ember governor calibrate` on %s with %s (%u points): clusters, "
             "frequencies and engine speed from this machine; voltages, capacitance, power, "
             "thermal and wall terms from the base profile '%s' (estimates for this machine).",
             cal->created, cal->model, cal->n_points, bp->name);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "description");
    cJSON_AddStringToObject(root, "description", buf);
    const char *slash = strrchr(out, '/');
    snprintf(buf, sizeof(buf), "%s", slash ? slash + 1 : out);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
    buf[31] = '\0'; /* the profile name's limit */
    cJSON_DeleteItemFromObjectCaseSensitive(root, "name");
    cJSON_AddStringToObject(root, "name", buf);
    cJSON *sources = cJSON_GetObjectItemCaseSensitive(root, "sources");
    if (cJSON_IsArray(sources)) {
        snprintf(buf, sizeof(buf),
                 "decode/prefill speed: `ember governor calibrate` %s (t = %.3f ms + %.4f "
                 "Gcycles / capacity per decode token); the rest: base profile %s",
                 cal->created, f.mem_s * 1e3, f.gcycles, bp->name);
        cJSON_AddItemToArray(sources, cJSON_CreateString(buf));
    }
    /* the measured top point is what the profile must reproduce */
    const struct gov_calib_point *top = &cal->points[cal->n_points - 1];
    cJSON_DeleteItemFromObjectCaseSensitive(root, "references");
    cJSON *refs = cJSON_AddArrayToObject(root, "references");
    snprintf(buf, sizeof(buf), "ember governor calibrate %s, top step", cal->created);
    if (isfinite(top->decode_tok_s) && top->decode_tok_s > 0)
        add_reference(refs, "decode_tok_s", top->decode_tok_s, buf);
    if (isfinite(top->prefill_tok_s) && top->prefill_tok_s > 0)
        add_reference(refs, "prefill_tok_s", top->prefill_tok_s, buf);

    if (!(json = cJSON_Print(root)))
        goto done;
    size_t len = strlen(json);
    json[len] = '\n';
    if ((rc = cmn_write_file_for_dir_owner(out, json, len + 1))) {
        snprintf(err, err_len, "%s: %s", out, strerror(-rc));
        goto done;
    }
    /* what the profile models at every measured point */
    printf("%-24s %14s %14s %14s %14s\n", "profile fit: MHz", "decode meas.", "decode model",
           "prefill meas.", "prefill model");
    for (unsigned i = 0; i < cal->n_points; i++) {
        const struct gov_calib_point *pt = &cal->points[i];
        double cap = capacity(clusters, pt);
        char list[64] = "";
        size_t l = 0;
        for (unsigned k = 0; k < ncl && l < sizeof(list); k++)
            l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%u", k ? "/" : "",
                                  (unsigned)(pt->khz[k] / 1000));
        printf("%-24s %14.1f %14.1f %14.1f %14.1f\n", list, pt->decode_tok_s,
               1 / (f.mem_s + f.gcycles / cap), pt->prefill_tok_s, f.prefill_per_gcycle * cap);
    }
    rc = 0;
done:
    if (rc == -ENOMEM && !*err)
        snprintf(err, err_len, "out of memory");
    free(json);
    cJSON_Delete(root);
    free(text);
    free(bp);
    return rc;
}
