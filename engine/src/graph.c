/* Building, fusing and planning the forward graph (graph.h). The builder writes the llama family's
 * layer as the textbook sequence of small ops; fusion then rewrites adjacent ops by pattern; the
 * planner lays the remaining tensors into one arena by liveness. */
#include "graph.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static int new_tensor(struct eng_graph *g, const char *name, int64_t width)
{
    if (g->n_t == g->cap_t) {
        int cap = g->cap_t ? 2 * g->cap_t : 64;
        struct eng_gtensor *t = realloc(g->t, sizeof(*t) * (size_t)cap);
        if (!t)
            return -1;
        g->t = t;
        g->cap_t = cap;
    }
    g->t[g->n_t] = (struct eng_gtensor){.name = name, .width = width, .first = -1, .last = -1};
    return g->n_t++;
}

static struct eng_op *new_op(struct eng_graph *g, enum eng_op_kind kind, int layer)
{
    if (g->n_ops == g->cap_ops) {
        int cap = g->cap_ops ? 2 * g->cap_ops : 64;
        struct eng_op *o = realloc(g->ops, sizeof(*o) * (size_t)cap);
        if (!o)
            return NULL;
        g->ops = o;
        g->cap_ops = cap;
    }
    struct eng_op *o = &g->ops[g->n_ops++];
    *o = (struct eng_op){.kind = kind, .layer = layer, .in = -1, .in2 = -1, .out = {-1, -1, -1}};
    return o;
}

/* Small helpers that append one op each; they return 0 or -ENOMEM. */
static int op_unary(struct eng_graph *g, enum eng_op_kind kind, int layer, int in, int out,
                    const float *vec)
{
    struct eng_op *o = new_op(g, kind, layer);
    if (!o)
        return -ENOMEM;
    o->in = in;
    o->out[0] = out;
    o->vec[0] = vec;
    return 0;
}

static int op_matmul(struct eng_graph *g, int layer, int in, int out, const struct eng_weight *w,
                     unsigned flags)
{
    struct eng_op *o = new_op(g, ENG_OP_MATMUL, layer);
    if (!o)
        return -ENOMEM;
    o->in = in;
    o->out[0] = out;
    o->w[0] = w;
    o->n_w = 1;
    o->flags = flags;
    return 0;
}

static int op_rope(struct eng_graph *g, int layer, int t, int n_heads)
{
    struct eng_op *o = new_op(g, ENG_OP_ROPE, layer);
    if (!o)
        return -ENOMEM;
    o->out[0] = t;
    o->n_heads = n_heads;
    return 0;
}

static int build_layer(const struct eng_model *m, struct eng_graph *g, int l)
{
    const struct eng_hparams *hp = &m->hp;
    const struct eng_layer *L = &m->layers[l];
    int64_t d = hp->n_embd, qdim = (int64_t)hp->n_head * hp->head_dim_k;
    int64_t kdim = (int64_t)hp->n_head_kv * hp->head_dim_k;
    int64_t vdim = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int64_t odim = (int64_t)hp->n_head * hp->head_dim_v;
    int xn = new_tensor(g, "attn_norm", d), q = new_tensor(g, "q", qdim);
    int k = new_tensor(g, "k", kdim), v = new_tensor(g, "v", vdim);
    int att = new_tensor(g, "attn_out", odim), o = new_tensor(g, "attn_proj", d);
    int xn2 = new_tensor(g, "ffn_norm", d), gate = new_tensor(g, "gate", hp->n_ff);
    int up = new_tensor(g, "up", hp->n_ff), h = new_tensor(g, "swiglu", hp->n_ff);
    int down = new_tensor(g, "ffn_down", d);
    if (down < 0)
        return -ENOMEM;
    int x = g->x, r = 0;
    r |= op_unary(g, ENG_OP_RMSNORM, l, x, xn, L->attn_norm);
    r |= op_matmul(g, l, xn, q, &L->wq, 0);
    r |= op_matmul(g, l, xn, k, &L->wk, 0);
    r |= op_matmul(g, l, xn, v, &L->wv, 0);
    if (L->bq) {
        r |= op_unary(g, ENG_OP_ADD_BIAS, l, -1, q, L->bq);
        r |= op_unary(g, ENG_OP_ADD_BIAS, l, -1, k, L->bk);
        r |= op_unary(g, ENG_OP_ADD_BIAS, l, -1, v, L->bv);
    }
    if (L->q_norm) {
        struct eng_op *hn = new_op(g, ENG_OP_HEAD_NORM, l);
        if (!hn)
            return -ENOMEM;
        hn->out[0] = q;
        hn->out[1] = k;
        hn->vec[0] = L->q_norm;
        hn->vec[1] = L->k_norm;
    }
    r |= op_rope(g, l, q, hp->n_head);
    r |= op_rope(g, l, k, hp->n_head_kv);
    struct eng_op *st = new_op(g, ENG_OP_STORE_KV, l);
    if (!st)
        return -ENOMEM;
    st->in = k;
    st->in2 = v;
    r |= op_unary(g, ENG_OP_ATTENTION, l, q, att, NULL);
    r |= op_matmul(g, l, att, o, &L->wo, 0);
    r |= op_unary(g, ENG_OP_ADD, l, o, x, NULL);
    r |= op_unary(g, ENG_OP_RMSNORM, l, x, xn2, L->ffn_norm);
    r |= op_matmul(g, l, xn2, gate, &L->w_gate, 0);
    r |= op_matmul(g, l, xn2, up, &L->w_up, 0);
    struct eng_op *sw = new_op(g, ENG_OP_SWIGLU, l);
    if (!sw)
        return -ENOMEM;
    sw->in = gate;
    sw->in2 = up;
    sw->out[0] = h;
    r |= op_matmul(g, l, h, down, &L->w_down, 0);
    r |= op_unary(g, ENG_OP_ADD, l, down, x, NULL);
    return r ? -ENOMEM : 0;
}

int eng_graph_build(const struct eng_model *m, struct eng_graph *g)
{
    memset(g, 0, sizeof(*g));
    const struct eng_hparams *hp = &m->hp;
    g->x = new_tensor(g, "x", hp->n_embd);
    if (g->x < 0 || op_unary(g, ENG_OP_EMBED, -1, -1, g->x, NULL))
        goto fail;
    for (int l = 0; l < hp->n_layer; l++)
        if (build_layer(m, g, l))
            goto fail;
    int xo = new_tensor(g, "output_norm", hp->n_embd);
    if (xo < 0 || op_unary(g, ENG_OP_RMSNORM, -1, g->x, xo, m->output_norm))
        goto fail;
    g->ops[g->n_ops - 1].flags = ENG_MM_LAST_ROWS;
    if (op_matmul(g, -1, xo, -1, &m->output, ENG_MM_LAST_ROWS | ENG_MM_TO_LOGITS))
        goto fail;
    return 0;
fail:
    eng_graph_free(g);
    return -ENOMEM;
}

void eng_graph_free(struct eng_graph *g)
{
    free(g->ops);
    free(g->t);
    memset(g, 0, sizeof(*g));
}

/* ---- fusion ---- */

/* How many ops read tensor t (as in, in2, or an in-place out). */
static int readers(const struct eng_graph *g, int t)
{
    int n = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const struct eng_op *o = &g->ops[i];
        n += o->in == t;
        n += o->in2 == t;
    }
    return n;
}

static void remove_op(struct eng_graph *g, int i)
{
    memmove(&g->ops[i], &g->ops[i + 1], sizeof(g->ops[0]) * (size_t)(g->n_ops - i - 1));
    g->n_ops--;
}

static int same_act(const struct eng_weight *a, const struct eng_weight *b)
{
    return eng_type_traits(a->type)->vec_dot_type == eng_type_traits(b->type)->vec_dot_type;
}

/* Q/K/V and gate/up: consecutive products of one input become one op. */
static void merge_matmuls(struct eng_graph *g)
{
    for (int i = 0; i + 1 < g->n_ops; i++) {
        struct eng_op *a = &g->ops[i], *b = &g->ops[i + 1];
        if (a->kind != ENG_OP_MATMUL || b->kind != ENG_OP_MATMUL || a->in != b->in || a->flags ||
            b->flags || a->n_w + b->n_w > ENG_GRAPH_MAX_W || !same_act(a->w[0], b->w[0]))
            continue;
        for (int k = 0; k < b->n_w; k++) {
            a->w[a->n_w] = b->w[k];
            a->out[a->n_w++] = b->out[k];
        }
        remove_op(g, i + 1);
        i--;
    }
}

static void fold_biases(struct eng_graph *g)
{
    for (int i = 0; i + 1 < g->n_ops; i++) {
        struct eng_op *mm = &g->ops[i];
        if (mm->kind != ENG_OP_MATMUL)
            continue;
        while (i + 1 < g->n_ops && g->ops[i + 1].kind == ENG_OP_ADD_BIAS) {
            const struct eng_op *b = &g->ops[i + 1];
            int k = 0;
            while (k < mm->n_w && mm->out[k] != b->out[0])
                k++;
            if (k == mm->n_w || mm->vec[k])
                break;
            mm->vec[k] = b->vec[0];
            mm->flags |= ENG_MM_POST_BIAS;
            remove_op(g, i + 1);
        }
    }
}

/* An op producing a tensor that only the next product reads becomes that product's input
 * transform (RMSNorm, SwiGLU). */
static void fold_inputs(struct eng_graph *g)
{
    for (int i = 0; i + 1 < g->n_ops; i++) {
        struct eng_op *p = &g->ops[i], *mm = &g->ops[i + 1];
        if (mm->kind != ENG_OP_MATMUL || mm->in != p->out[0] || readers(g, p->out[0]) != 1 ||
            (mm->flags & (ENG_MM_PRE_NORM | ENG_MM_PRE_SWIGLU)))
            continue;
        if (p->kind == ENG_OP_RMSNORM) {
            mm->flags |= ENG_MM_PRE_NORM | (p->flags & ENG_MM_LAST_ROWS);
            mm->vec_norm = p->vec[0];
            mm->in = p->in;
        } else if (p->kind == ENG_OP_SWIGLU) {
            mm->flags |= ENG_MM_PRE_SWIGLU;
            mm->in = p->in;
            mm->in2 = p->in2;
        } else {
            continue;
        }
        remove_op(g, i);
    }
}

/* A single product whose output only feeds the next residual add accumulates into the stream. */
static void fold_residuals(struct eng_graph *g)
{
    for (int i = 0; i + 1 < g->n_ops; i++) {
        struct eng_op *mm = &g->ops[i], *add = &g->ops[i + 1];
        if (mm->kind != ENG_OP_MATMUL || add->kind != ENG_OP_ADD || mm->n_w != 1 ||
            add->in != mm->out[0] || readers(g, mm->out[0]) != 1 ||
            (mm->flags & (ENG_MM_POST_BIAS | ENG_MM_TO_LOGITS)))
            continue;
        mm->flags |= ENG_MM_POST_ADD;
        mm->out[0] = add->out[0];
        remove_op(g, i + 1);
    }
}

static void fold_rope_kv(struct eng_graph *g)
{
    for (int i = 0; i + 2 < g->n_ops; i++) {
        struct eng_op *rq = &g->ops[i], *rk = &g->ops[i + 1], *st = &g->ops[i + 2];
        if (rq->kind != ENG_OP_ROPE || rk->kind != ENG_OP_ROPE || st->kind != ENG_OP_STORE_KV ||
            st->in != rk->out[0])
            continue;
        rq->kind = ENG_OP_ROPE_KV;
        rq->in = st->in;
        rq->in2 = st->in2;
        remove_op(g, i + 1);
        remove_op(g, i + 1);
    }
}

void eng_graph_fuse(struct eng_graph *g)
{
    merge_matmuls(g);
    fold_biases(g);
    fold_inputs(g);
    fold_residuals(g);
    fold_rope_kv(g);
}

/* ---- memory plan ---- */

static void touch(struct eng_graph *g, int t, int op)
{
    if (t < 0)
        return;
    if (g->t[t].first < 0)
        g->t[t].first = op;
    g->t[t].last = op;
}

int eng_graph_live_tensors(const struct eng_graph *g)
{
    int n = 0;
    for (int i = 0; i < g->n_t; i++)
        n += g->t[i].first >= 0;
    return n;
}

int eng_graph_plan(struct eng_graph *g, size_t n_rows)
{
    for (int i = 0; i < g->n_t; i++)
        g->t[i].first = g->t[i].last = -1;
    for (int i = 0; i < g->n_ops; i++) {
        const struct eng_op *o = &g->ops[i];
        touch(g, o->in, i);
        touch(g, o->in2, i);
        for (int k = 0; k < ENG_GRAPH_MAX_W; k++)
            touch(g, o->out[k], i);
    }
    g->t[g->x].first = 0; /* the residual stream lives throughout */
    g->t[g->x].last = g->n_ops;
    /* first fit in order of first use; a tensor's space is free again after its last use */
    int *order = malloc(sizeof(int) * (size_t)g->n_t);
    if (!order)
        return -ENOMEM;
    int n = 0;
    for (int i = 0; i < g->n_t; i++)
        if (g->t[i].first >= 0)
            order[n++] = i;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && g->t[order[b]].first < g->t[order[b - 1]].first; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    size_t peak = 0;
    for (int a = 0; a < n; a++) {
        struct eng_gtensor *t = &g->t[order[a]];
        size_t size = ((size_t)t->width * n_rows * sizeof(float) + 63) & ~(size_t)63;
        size_t off = 0;
        for (int moved = 1; moved;) { /* lowest offset clear of every placed, still-live tensor */
            moved = 0;
            for (int b = 0; b < a; b++) {
                const struct eng_gtensor *u = &g->t[order[b]];
                size_t us = ((size_t)u->width * n_rows * sizeof(float) + 63) & ~(size_t)63;
                if (u->last < t->first)
                    continue;
                if (off < u->offset + us && u->offset < off + size) {
                    off = u->offset + us;
                    moved = 1;
                }
            }
        }
        t->offset = off;
        peak = off + size > peak ? off + size : peak;
    }
    free(order);
    g->peak = peak;
    return 0;
}
