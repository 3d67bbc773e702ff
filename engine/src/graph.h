/* The forward pass as a graph of ops, built once per context from the model's description, then
 * fused and given a memory plan. The model code (graph.c) decides which ops a layer has (biases,
 * per-head norms) and knows nothing of kernels; a backend (forward.c, the CPU) runs each op kind
 * behind one table, so another backend would replace that table and touch no model code.
 *
 * Fusion merges ops that need not round-trip memory, with exactly the arithmetic of the unfused
 * ops (logits are bit-identical either way; a test checks it):
 *   - an RMSNorm feeding matrix products becomes their input transform (normalised rows go
 *     straight into the activation conversion), a SwiGLU likewise for the down projection;
 *   - matrix products sharing an input (Q/K/V, gate/up) become one pass over their rows;
 *   - bias adds and the residual add happen inside the matrix product while its outputs are in
 *     cache (no separate pass, no temporary buffer);
 *   - RoPE of Q and K and the KV-cache write become one op.
 * Private to the engine. */
#ifndef ENGINE_GRAPH_H
#define ENGINE_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum eng_op_kind {
    ENG_OP_EMBED,     /* out = token-embedding rows */
    ENG_OP_RMSNORM,   /* out = rmsnorm(in) * vec[0] */
    ENG_OP_MATMUL,    /* out[i] = W[i] in, i < n_w (all sharing the input) */
    ENG_OP_ADD_BIAS,  /* out[0] += vec[0] per row */
    ENG_OP_HEAD_NORM, /* qwen3: per-head rmsnorm of Q (out[0], vec[0]) and K (out[1], vec[1]) */
    ENG_OP_ROPE,      /* rotate out[0] in place (n_heads heads) */
    ENG_OP_STORE_KV,  /* write K (in), V (in2) rows into the layer's cache */
    ENG_OP_ROPE_KV,   /* fused: RoPE of Q (out[0]) and K (in), then K and V (in2) into the cache */
    ENG_OP_ATTENTION, /* out = causal attention of Q (in) over the layer's cache */
    ENG_OP_ADD,       /* out[0] += in */
    ENG_OP_SWIGLU,    /* out = silu(in) * in2 */
    ENG_OP_KIND_COUNT
};

/* Fusion flags of ENG_OP_MATMUL. */
enum {
    ENG_MM_PRE_NORM = 1 << 0,   /* input rows are rmsnorm(in) * vec_norm */
    ENG_MM_PRE_SWIGLU = 1 << 1, /* input rows are silu(in) * in2 */
    ENG_MM_POST_BIAS = 1 << 2,  /* out[i] += bias[i] per row */
    ENG_MM_POST_ADD = 1 << 3,   /* out[0] = out[0] + product (residual), no temporary */
    ENG_MM_LAST_ROWS = 1 << 4,  /* only the rows whose logits are wanted (see forward.c) */
    ENG_MM_TO_LOGITS = 1 << 5,  /* out[0] is the context's logits buffer */
};

#define ENG_GRAPH_MAX_W 3

struct eng_op {
    enum eng_op_kind kind;
    int layer; /* -1: not a layer op */
    int in, in2;
    int out[ENG_GRAPH_MAX_W];
    int n_w;
    const struct eng_weight *w[ENG_GRAPH_MAX_W];
    const float *vec[ENG_GRAPH_MAX_W]; /* norm weights, biases */
    const float *vec_norm;             /* ENG_MM_PRE_NORM */
    int n_heads;                       /* ROPE, HEAD_NORM */
    unsigned flags;
};

/* An activation tensor: n_batch rows of `width` floats (the plan's row count). */
struct eng_gtensor {
    const char *name;
    int64_t width;
    size_t offset;   /* into the context's activation arena, after planning */
    int first, last; /* ops that produce it first and read it last (liveness) */
};

struct eng_graph {
    struct eng_op *ops;
    int n_ops, cap_ops;
    struct eng_gtensor *t;
    int n_t, cap_t;
    int x;       /* the residual stream */
    size_t peak; /* bytes of the activation arena after eng_graph_plan */
};

/* The unfused graph of one forward step over up to n_rows tokens. -ENOMEM on failure. */
int eng_graph_build(const struct eng_model *m, struct eng_graph *g);
void eng_graph_free(struct eng_graph *g);
/* Merges ops as described above (in place). */
void eng_graph_fuse(struct eng_graph *g);
/* Assigns arena offsets to the tensors (first fit by liveness) for n_rows rows each, and sets
 * g->peak. 0 or -ENOMEM. */
int eng_graph_plan(struct eng_graph *g, size_t n_rows);
/* Tensors the ops still use (fusion leaves some unreferenced). */
int eng_graph_live_tensors(const struct eng_graph *g);

#endif
