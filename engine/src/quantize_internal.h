/* State shared by the parts of eng_quantize (quantize.c: plan and output; quantize_calib.c:
 * importance statistics). Private to the engine. */
#ifndef ENGINE_QUANTIZE_INTERNAL_H
#define ENGINE_QUANTIZE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/quantize.h"
#include "gguf.h"

struct qz_tensor {
    const struct gguf_tensor *t;
    int is_weight;     /* a matrix to quantize (2-D or more, not a norm) */
    uint32_t out_type; /* enum gguf_tensor_type */
    const char *why;
    float *imp;                /* ne[0] mean squared activations from calibration, or NULL */
    double rel_err;            /* of out_type; -1 when not measured */
    double rel[GGUF_TT_COUNT]; /* mixed: relative error of each candidate, -1 if not one */
    double err[GGUF_TT_COUNT]; /* mixed: the planner's cost of each candidate (rel scaled by the
                                  probe's output sensitivity), -1 if not one */
    uint32_t probe_type;       /* mixed: the block type the end-to-end probe tries; 0 = none */
    double probe_kl;           /* mean KL divergence of the model's output with this matrix
                                  alone stored as probe_type; -1 when not probed */
};

struct qz {
    const struct eng_quantize_params *p;
    struct gguf_file *f;
    struct qz_tensor *ts;
    int n;
    size_t calib_tokens;
    char *err;
    size_t err_len;
};

/* Fills ts[].imp by running the model in_path over the calibration text. */
int qz_calibrate(struct qz *q, const char *in_path);
const char *qz_builtin_calib_text(size_t *ret_len);
/* End-to-end sensitivity: for every matrix with a probe_type, runs the first calibration
 * tokens through the model with only that matrix replaced by its round trip through probe_type
 * (in a private copy-on-write view of the mapping) and records the output's KL divergence from
 * the unmodified model in probe_kl. */
int qz_probe(struct qz *q, const char *in_path);

#endif
