/* Quantizing a GGUF model: every 2-D weight of an F32/F16/BF16 file converted to one block type
 * (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, or F16/BF16/F32), or, for "mixed", each weight to the type an
 * importance-weighted sensitivity measurement picks under a bits-per-weight budget. Metadata is
 * copied from the input; the plan is stored in it (ember.quantize.*). The output is written to
 * a temporary file beside it, synced and renamed, so a failure never leaves a partial output.
 *
 * Mixed precision, in three steps:
 *  1. calibration: the engine's forward pass runs over calibration text and, for every matrix,
 *     accumulates the mean square of each input channel (an importance matrix);
 *  2. sensitivity: each matrix is quantized to every candidate type whose block fits its rows,
 *     and the importance-weighted squared error of the result, relative to the weighted energy
 *     of the matrix (the fraction of its output signal lost to quantization noise), is measured;
 *  3. choice: starting from the cheapest candidates, the upgrade that removes the most error per
 *     extra bit is taken while the whole file stays within the budget.
 * Weights whose rows fit no block size stay in a float type; 1-D tensors (norms) are copied. */
#ifndef ENGINE_QUANTIZE_H
#define ENGINE_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* Called with the stage ("calibrating", "measuring", "writing") and the fraction of it done;
 * return nonzero to cancel (eng_quantize then returns -ECANCELED). */
typedef int (*eng_quantize_progress_fn)(const char *stage, float fraction, void *user);

struct eng_quantize_params {
    const char *type;  /* "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32", "mixed" */
    double target_bpw; /* mixed: budget in bits per weight over all tensors; 0 = 5.0 */
    /* calibration text (UTF-8); NULL = a built-in English text. Used by mixed, and by the other
     * types when calib_given is set (importance-weighted scales). */
    const char *calib_text;
    size_t calib_len;
    int calib_given;
    uint32_t calib_tokens; /* most tokens of calibration text used; 0 = 2048 */
    uint32_t n_threads;    /* 0 = online CPUs */
    int allow_requantize;  /* accept already quantized input tensors (dequantized first) */
    /* single block type: every matrix gets it (only rows that fit no block fall back), as
     * llama-quantize --pure. 0: llama-quantize's default mixture for that type (the output
     * projection in Q6_K or Q8_0; for Q4_K/Q5_K some attn_v and ffn_down in Q6_K). */
    int pure;
    eng_quantize_progress_fn progress;
    void *progress_user;
};

void eng_quantize_params_defaults(struct eng_quantize_params *p);

struct eng_quantize_tensor {
    char name[96];
    char type_in[8], type_out[8];
    int64_t n_elements;
    double rel_err;  /* importance-weighted relative error of type_out; < 0 when not measured */
    const char *why; /* "plan", "type", "1-D", "rows do not fit a block", "kept", or the
                        default mixture's rule ("output projection", ...) */
};

struct eng_quantize_result {
    struct eng_quantize_tensor *tensors;
    int n_tensors;
    uint64_t in_bytes, out_bytes; /* file sizes */
    uint64_t n_elements;          /* all tensors */
    double bpw;                   /* bits of tensor data per element, all tensors */
    double min_bpw;               /* mixed: the smallest budget the shapes allow */
    size_t calib_tokens;          /* tokens the calibration ran over (0: none) */
    char note[256];               /* a warning worth printing ("" if none) */
};

/* Quantizes in_path into out_path. Errors (-errno, with "what and where" in err): -EINVAL for a
 * non-GGUF or malformed input, an unknown type or a tensor type the engine cannot read; -EPERM
 * for already quantized input without allow_requantize; -EEXIST when out_path is in_path; the
 * I/O error of creating, writing or syncing the output (-ENOSPC on a full disk), after which no
 * output and no temporary file remain. result (may be NULL) is filled on success. */
int eng_quantize(const char *in_path, const char *out_path, const struct eng_quantize_params *p,
                 struct eng_quantize_result *result, char *err, size_t err_len);
void eng_quantize_result_free(struct eng_quantize_result *r);

/* The plan ember quantize stored in a loaded model, summarised as e.g.
 * "mixed, 5.02 bpw (target 5.00): Q8_0 x12, Q4_K x60, F16 x5" into buf; -ENOENT when the model
 * was not made by ember quantize. */
int eng_model_quant_plan(const struct eng_model *model, char *buf, size_t len);

#endif
