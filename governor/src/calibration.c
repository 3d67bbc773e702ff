/* The calibration curve on disk: JSON with the clusters it was measured on and one row per
 * frequency step (the frequency of every cluster, prefill and decode tokens/s, package watts).
 * `ember governor calibrate` writes it, `balanced` and `efficiency` read it. Parsing is strict
 * (bad types, negative or non-finite numbers, unsorted or too many points are errors naming the
 * point) because a wrong curve silently costs energy or latency. */
#include "governor/policy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

#define CALIB_VERSION 1

static int get_opt_number(const cJSON *o, const char *key, double *ret, char *err, size_t err_len,
                          unsigned idx)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *ret = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        snprintf(err, err_len, "points[%u].%s: not a non-negative number", idx, key);
        return -EINVAL;
    }
    *ret = v->valuedouble;
    return 0;
}

/* Points order by their frequency vector, first cluster first: a ladder that raises every
 * cluster together (a small cluster repeating its top step while a big one still climbs) stays
 * in ladder order. */
static int cmp_point(const void *a, const void *b)
{
    const struct gov_calib_point *pa = a, *pb = b;
    for (unsigned c = 0; c < GOV_MAX_CLUSTERS; c++)
        if (pa->khz[c] != pb->khz[c])
            return pa->khz[c] < pb->khz[c] ? -1 : 1;
    return 0;
}

int gov_calibration_parse(const char *json, struct gov_calibration *ret, char *err, size_t err_len)
{
    int rc = -EINVAL;
    memset(ret, 0, sizeof(*ret));
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, err_len, "not a JSON object");
        goto fail;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (ver && (!cJSON_IsNumber(ver) || ver->valueint != CALIB_VERSION)) {
        snprintf(err, err_len, "version: only %d is understood", CALIB_VERSION);
        goto fail;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(s))
        snprintf(ret->model, sizeof(ret->model), "%s", s->valuestring);
    s = cJSON_GetObjectItemCaseSensitive(root, "created");
    if (cJSON_IsString(s))
        snprintf(ret->created, sizeof(ret->created), "%s", s->valuestring);

    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(root, "clusters");
    if (cl) {
        if (!cJSON_IsArray(cl) || cJSON_GetArraySize(cl) < 1 ||
            cJSON_GetArraySize(cl) > GOV_MAX_CLUSTERS) {
            snprintf(err, err_len, "clusters: an array of 1..%d names", GOV_MAX_CLUSTERS);
            goto fail;
        }
        const cJSON *c;
        cJSON_ArrayForEach(c, cl)
        {
            if (!cJSON_IsString(c) || strlen(c->valuestring) >= GOV_NAME_MAX) {
                snprintf(err, err_len, "clusters[%u]: a name shorter than %d", ret->n_clusters,
                         GOV_NAME_MAX);
                goto fail;
            }
            snprintf(ret->cluster_names[ret->n_clusters++], GOV_NAME_MAX, "%s", c->valuestring);
        }
    } else {
        ret->n_clusters = 1;
        snprintf(ret->cluster_names[0], GOV_NAME_MAX, "policy0");
    }

    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(root, "points");
    if (!cJSON_IsArray(pts) || cJSON_GetArraySize(pts) < 1) {
        snprintf(err, err_len, "points: a non-empty array is required");
        goto fail;
    }
    if (cJSON_GetArraySize(pts) > GOV_CALIB_MAX_POINTS) {
        snprintf(err, err_len, "points: more than %d", GOV_CALIB_MAX_POINTS);
        goto fail;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, pts)
    {
        unsigned i = ret->n_points;
        struct gov_calib_point *pt = &ret->points[i];
        if (!cJSON_IsObject(p)) {
            snprintf(err, err_len, "points[%u]: not an object", i);
            goto fail;
        }
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(p, "khz");
        if (cJSON_IsNumber(k)) {
            /* one number: every cluster ran at it */
            if (!(k->valuedouble >= 1 && k->valuedouble <= 1e9)) {
                snprintf(err, err_len, "points[%u].khz: out of range", i);
                goto fail;
            }
            for (unsigned c = 0; c < ret->n_clusters; c++)
                pt->khz[c] = (uint32_t)k->valuedouble;
        } else if (cJSON_IsArray(k) && (unsigned)cJSON_GetArraySize(k) == ret->n_clusters) {
            unsigned c = 0;
            const cJSON *kv;
            cJSON_ArrayForEach(kv, k)
            {
                if (!cJSON_IsNumber(kv) || !(kv->valuedouble >= 1 && kv->valuedouble <= 1e9)) {
                    snprintf(err, err_len, "points[%u].khz[%u]: out of range", i, c);
                    goto fail;
                }
                pt->khz[c++] = (uint32_t)kv->valuedouble;
            }
        } else {
            snprintf(err, err_len, "points[%u].khz: a number or an array of %u numbers", i,
                     ret->n_clusters);
            goto fail;
        }
        if (get_opt_number(p, "prefill_tok_s", &pt->prefill_tok_s, err, err_len, i) ||
            get_opt_number(p, "decode_tok_s", &pt->decode_tok_s, err, err_len, i) ||
            get_opt_number(p, "watts", &pt->watts, err, err_len, i))
            goto fail;
        ret->n_points++;
    }
    qsort(ret->points, ret->n_points, sizeof(ret->points[0]), cmp_point);
    for (unsigned i = 1; i < ret->n_points; i++) {
        if (cmp_point(&ret->points[i], &ret->points[i - 1]) == 0) {
            snprintf(err, err_len, "points: two points at the same frequencies (%u kHz, ...)",
                     ret->points[i].khz[0]);
            goto fail;
        }
    }
    rc = 0;
fail:
    cJSON_Delete(root);
    if (rc)
        memset(ret, 0, sizeof(*ret));
    return rc;
}

int gov_calibration_load(const char *path, struct gov_calibration *ret, char *err, size_t err_len)
{
    char *buf = NULL;
    int rc;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = -errno;
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return rc;
    }
    size_t cap = 1 << 20, len = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        snprintf(err, err_len, "%s: out of memory", path);
        goto fail;
    }
    len = fread(buf, 1, cap - 1, f);
    if (ferror(f)) {
        rc = -EIO;
        snprintf(err, err_len, "%s: read error", path);
        goto fail;
    }
    if (len == cap - 1 && !feof(f)) {
        rc = -EFBIG;
        snprintf(err, err_len, "%s: larger than 1 MiB", path);
        goto fail;
    }
    buf[len] = 0;
    char inner[200];
    rc = gov_calibration_parse(buf, ret, inner, sizeof(inner));
    if (rc)
        snprintf(err, err_len, "%s: %s", path, inner);
fail:
    free(buf);
    fclose(f);
    return rc;
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

char *gov_calibration_to_json(const struct gov_calibration *cal)
{
    char *out = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON *cl, *pts;
    if (!cJSON_AddNumberToObject(root, "version", CALIB_VERSION) ||
        !cJSON_AddStringToObject(root, "model", cal->model) ||
        !cJSON_AddStringToObject(root, "created", cal->created) ||
        !(cl = cJSON_AddArrayToObject(root, "clusters")) ||
        !(pts = cJSON_AddArrayToObject(root, "points")))
        goto fail;
    for (unsigned c = 0; c < cal->n_clusters && c < GOV_MAX_CLUSTERS; c++) {
        cJSON *s = cJSON_CreateString(cal->cluster_names[c]);
        if (!s || !cJSON_AddItemToArray(cl, s))
            goto fail;
    }
    for (unsigned i = 0; i < cal->n_points && i < GOV_CALIB_MAX_POINTS; i++) {
        const struct gov_calib_point *pt = &cal->points[i];
        cJSON *o = cJSON_CreateObject(), *k;
        if (!o || !cJSON_AddItemToArray(pts, o) || !(k = cJSON_AddArrayToObject(o, "khz")))
            goto fail;
        for (unsigned c = 0; c < cal->n_clusters && c < GOV_MAX_CLUSTERS; c++) {
            cJSON *n = cJSON_CreateNumber(pt->khz[c]);
            if (!n || !cJSON_AddItemToArray(k, n))
                goto fail;
        }
        cJSON *a = num_or_null(pt->prefill_tok_s), *b = num_or_null(pt->decode_tok_s),
              *w = num_or_null(pt->watts);
        if (!a || !cJSON_AddItemToObject(o, "prefill_tok_s", a)) {
            cJSON_Delete(b), cJSON_Delete(w);
            goto fail;
        }
        if (!b || !cJSON_AddItemToObject(o, "decode_tok_s", b)) {
            cJSON_Delete(w);
            goto fail;
        }
        if (!w || !cJSON_AddItemToObject(o, "watts", w))
            goto fail;
    }
    out = cJSON_Print(root);
fail:
    cJSON_Delete(root);
    return out;
}

int gov_calibration_save(const struct gov_calibration *cal, const char *path, char *err,
                         size_t err_len)
{
    char *json = gov_calibration_to_json(cal);
    if (!json) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -ENOMEM;
    }
    /* The curve is the agent's: root's `ember governor calibrate` writing into the agent's
     * /var/lib/ember hands the file to the directory's owner. */
    int rc = cmn_write_file_for_dir_owner(path, json, strlen(json));
    if (rc)
        snprintf(err, err_len, "%s: %s", path, strerror(-rc));
    free(json);
    return rc;
}
