/* Model loading: opens the GGUF, resolves the architecture's hyper-parameters from
 * "<arch>.*" keys, checks every tensor the forward pass needs for presence, type and shape, and
 * builds the model description. Weights are used in place in their quant blocks; where they live
 * is decided by place_weight() alone. Defaults when a key is missing (documented for users):
 * context_length 2048, head_count_kv = head_count, key/value_length = embedding_length /
 * head_count, rope.dimension_count = key_length, rope.freq_base 10000, rope.scaling none,
 * layer_norm_rms_epsilon 1e-5 (llama) or 1e-6 (qwen2, qwen3). RoPE ordering: NORM (adjacent
 * pairs) for llama, NEOX (half split) for qwen2/qwen3, as llama.cpp assigns them. */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels.h"
#include "pack.h"
#include "quant.h"
#include "tokenizer_internal.h"

void eng_model_params_defaults(struct eng_model_params *p)
{
    memset(p, 0, sizeof(*p));
}

struct loader {
    struct eng_model *m;
    char *err;
    size_t err_len;
    const struct eng_model_params *params;
    size_t placed, to_place; /* bytes of matrices copied so far, of all (progress) */
    size_t used;             /* bytes of m->weights handed out */
};

/* How a matrix is used, which decides where it lives. */
enum placement {
    PLACE_COPY,   /* streamed by dot products: copied */
    PLACE_PACK,   /* streamed by panel kernels: copied and packed where the type allows */
    PLACE_LOOKUP, /* only rows looked up (an untied token embedding): left in the file mapping */
};

/* The one place that decides where a weight's bytes live. With use_mmap: in the read-only file
 * mapping (page cache shared with other processes, nothing copied). Otherwise copied into the
 * model's anonymous huge-page region, packed into row-interleaved panels where the type has a
 * packed layout (pack.h); the file pages just read are dropped from this process again, so the
 * resident size stays about one copy of the weights. A matrix that is only looked up row by row
 * stays in the file mapping, where just the rows of the tokens seen become resident (TinyLlama's
 * embedding is 125 MiB in F16, of which a chat touches a few hundred 4 KiB rows). */
static int place_weight(struct loader *L, const struct gguf_tensor *t, enum placement how,
                        const void **ret, int *ret_packed)
{
    struct eng_model *m = L->m;
    *ret = t->data;
    *ret_packed = 0;
    if (!m->weights || how == PLACE_LOOKUP)
        return 0;
    int pack = how == PLACE_PACK;
    size_t need = (t->size + 63) & ~(size_t)63;
    if (need > m->weights_size - L->used) {
        snprintf(L->err, L->err_len, "model: tensor '%s': no room left in the weight region",
                 t->name);
        return -EFAULT;
    }
    char *dst = (char *)m->weights + L->used;
    /* packed where the running kernel set streams panels of this type */
    pack = pack && eng_pack_supported(t->type) && eng_kernels_best()->panel[t->type];
    if (pack)
        eng_pack_matrix(t->type, t->ne[0], t->ne[1], t->data, dst);
    else
        memcpy(dst, t->data, t->size);
    L->used += need;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)t->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t b = ((uintptr_t)t->data + t->size) & ~((uintptr_t)page - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
    *ret = dst;
    *ret_packed = pack;
    L->placed += t->size;
    const struct eng_model_params *p = L->params;
    if (p->progress &&
        p->progress(0.3f + 0.7f * (float)L->placed / (float)L->to_place, p->progress_user))
        return -ECANCELED;
    return 0;
}

static long mem_available_mib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

/* Reserves the anonymous region for every matrix of the file (but an embedding that is only
 * looked up, skip_name), 2 MiB aligned so that transparent huge pages can back it (fewer TLB
 * misses while streaming weights). */
static int reserve_weights(struct loader *L, const char *skip_name)
{
    struct eng_model *m = L->m;
    size_t total = 0;
    for (int i = 0; i < gguf_n_tensors(m->gguf); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(m->gguf, i);
        if (t->n_dims == 2 && !(skip_name && strcmp(t->name, skip_name) == 0)) {
            total += (t->size + 63) & ~(size_t)63;
            L->to_place += t->size;
        }
    }
    if (!total)
        return 0;
    long avail = mem_available_mib();
    if (avail >= 0 && (long)(total >> 20) > avail) {
        snprintf(L->err, L->err_len,
                 "model: the weights need %zu MiB of memory but only %ld MiB are available; "
                 "compute on the file mapping instead ([engine] mmap = true, ember run --mmap)",
                 total >> 20, avail);
        return -ENOMEM;
    }
    size_t huge = (size_t)2 << 20, size = (total + huge - 1) & ~(huge - 1);
    char *raw = mmap(NULL, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        snprintf(L->err, L->err_len, "model: cannot map %zu MiB for the weights: %s", size >> 20,
                 strerror(errno));
        return -ENOMEM;
    }
    char *aligned = (char *)(((uintptr_t)raw + huge - 1) & ~((uintptr_t)huge - 1));
    if (aligned > raw)
        munmap(raw, (size_t)(aligned - raw));
    munmap(aligned + size, (size_t)(raw + huge - aligned));
    madvise(aligned, size, MADV_HUGEPAGE); /* advice only: fine where THP is off */
    m->weights = aligned;
    m->weights_size = size;
    return 0;
}

static int req_u32(struct loader *L, const char *arch, const char *suffix, int32_t *ret)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    int r = gguf_get_u32(L->m->gguf, key, &v);
    if (r == -ENOENT) {
        snprintf(L->err, L->err_len, "model: required key '%s' is missing", key);
        return -EINVAL;
    }
    if (r || v == 0 || v > (1u << 30)) {
        snprintf(L->err, L->err_len, "model: key '%s': %s", key,
                 r ? "not an unsigned integer" : "out of range (1..2^30)");
        return -EINVAL;
    }
    *ret = (int32_t)v;
    return 0;
}

static int opt_u32(struct loader *L, const char *arch, const char *suffix, int32_t def,
                   int32_t *ret)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    int r = gguf_get_u32(L->m->gguf, key, &v);
    if (r == -ENOENT) {
        *ret = def;
        return 0;
    }
    if (r || v > (1u << 30)) {
        snprintf(L->err, L->err_len, "model: key '%s': %s", key,
                 r ? "not an unsigned integer" : "out of range");
        return -EINVAL;
    }
    *ret = (int32_t)v;
    return 0;
}

static int opt_f32(struct loader *L, const char *arch, const char *suffix, float def, float *ret)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    int r = gguf_get_f32(L->m->gguf, key, ret);
    if (r == -ENOENT) {
        *ret = def;
        return 0;
    }
    if (r || !(*ret > 0) || *ret > 1e12f) {
        snprintf(L->err, L->err_len, "model: key '%s': %s", key,
                 r ? "not a number" : "must be a positive finite number");
        return -EINVAL;
    }
    return 0;
}

static int load_hparams(struct loader *L, const char *arch)
{
    struct eng_hparams *hp = &L->m->hp;
    int r;
    if ((r = opt_u32(L, arch, "context_length", 2048, &hp->n_ctx_train)) ||
        (r = req_u32(L, arch, "embedding_length", &hp->n_embd)) ||
        (r = req_u32(L, arch, "block_count", &hp->n_layer)) ||
        (r = req_u32(L, arch, "feed_forward_length", &hp->n_ff)) ||
        (r = req_u32(L, arch, "attention.head_count", &hp->n_head)) ||
        (r = opt_u32(L, arch, "attention.head_count_kv", hp->n_head, &hp->n_head_kv)))
        return r;
    /* sanity bounds far above any published model, so absurd values fail here and not in a
     * multi-terabyte allocation */
    if (hp->n_layer > 4096 || hp->n_head > 4096 || hp->n_embd > (1 << 20) || hp->n_ff > (1 << 22)) {
        snprintf(L->err, L->err_len,
                 "model: %s hyper-parameters out of range (block_count %d, head_count %d, "
                 "embedding_length %d, feed_forward_length %d)",
                 arch, hp->n_layer, hp->n_head, hp->n_embd, hp->n_ff);
        return -EINVAL;
    }
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv) {
        snprintf(L->err, L->err_len,
                 "model: %s.attention.head_count %d is not a multiple of head_count_kv %d", arch,
                 hp->n_head, hp->n_head_kv);
        return -EINVAL;
    }
    int32_t hd = hp->n_embd / hp->n_head;
    if ((r = opt_u32(L, arch, "attention.key_length", hd, &hp->head_dim_k)) ||
        (r = opt_u32(L, arch, "attention.value_length", hd, &hp->head_dim_v)) ||
        (r = opt_u32(L, arch, "rope.dimension_count", hp->head_dim_k, &hp->n_rot)))
        return r;
    if (hp->head_dim_k == 0 || hp->head_dim_v == 0 || hp->n_rot > hp->head_dim_k || hp->n_rot % 2) {
        snprintf(L->err, L->err_len,
                 "model: head dims k=%d v=%d with rope.dimension_count %d are inconsistent",
                 hp->head_dim_k, hp->head_dim_v, hp->n_rot);
        return -EINVAL;
    }
    float eps_def = hp->arch == ENG_ARCH_LLAMA ? 1e-5f : 1e-6f;
    if ((r = opt_f32(L, arch, "attention.layer_norm_rms_epsilon", eps_def, &hp->eps)) ||
        (r = opt_f32(L, arch, "rope.freq_base", 10000.0f, &hp->rope_freq_base)))
        return r;
    hp->rope_freq_scale = 1.0f;
    char key[128];
    const char *scaling = NULL;
    snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
    if (gguf_get_str(L->m->gguf, key, &scaling) == 0 && strcmp(scaling, "none") != 0) {
        if (strcmp(scaling, "linear") != 0) {
            snprintf(L->err, L->err_len, "model: %s = '%s' is not supported (none, linear)", key,
                     scaling);
            return -EINVAL;
        }
        float factor;
        if ((r = opt_f32(L, arch, "rope.scaling.factor", 1.0f, &factor)))
            return r;
        hp->rope_freq_scale = 1.0f / factor;
    }
    float factor_old;
    snprintf(key, sizeof(key), "%s.rope.scale_linear", arch);
    if (gguf_get_f32(L->m->gguf, key, &factor_old) == 0 && factor_old > 0)
        hp->rope_freq_scale = 1.0f / factor_old;
    hp->rope_neox = hp->arch != ENG_ARCH_LLAMA;
    return 0;
}

static const struct gguf_tensor *find(struct loader *L, const char *name, int required)
{
    const struct gguf_tensor *t = gguf_find_tensor(L->m->gguf, name);
    if (!t && required)
        snprintf(L->err, L->err_len, "model: tensor '%s' is missing", name);
    return t;
}

/* A matrix with ne0 == in and ne1 == out (out < 0: any). */
static int get_matrix(struct loader *L, const char *name, int64_t in, int64_t out,
                      enum placement how, struct eng_weight *w)
{
    const struct gguf_tensor *t = find(L, name, 1);
    if (!t)
        return -EINVAL;
    const struct eng_type_traits *tr = eng_type_traits(t->type);
    if (!tr || tr->blck == 0 || t->type == GGUF_TT_Q8_K) {
        snprintf(L->err, L->err_len, "model: tensor '%s': weight type %s is not supported", name,
                 gguf_tensor_type_name(t->type));
        return -EINVAL;
    }
    if (t->n_dims != 2 || t->ne[0] != in || (out >= 0 && t->ne[1] != out)) {
        snprintf(L->err, L->err_len,
                 "model: tensor '%s': shape [%lld, %lld] (n_dims %u), expected [%lld, %lld]", name,
                 (long long)t->ne[0], (long long)t->ne[1], t->n_dims, (long long)in,
                 (long long)out);
        return -EINVAL;
    }
    const void *data;
    int packed, r = place_weight(L, t, how, &data, &packed);
    if (r)
        return r;
    size_t align = t->type == GGUF_TT_F32 ? 4 : 2;
    if ((uintptr_t)data % align) {
        snprintf(L->err, L->err_len, "model: tensor '%s': data is not %zu-byte aligned", name,
                 align);
        return -EINVAL;
    }
    w->data = data;
    w->type = t->type;
    w->packed = packed;
    w->ne0 = t->ne[0];
    w->ne1 = t->ne[1];
    w->row_bytes = eng_row_bytes(t->type, t->ne[0]);
    return 0;
}

/* A vector of n elements converted to an owned F32 array; NULL *ret when optional and absent. */
static int get_vector(struct loader *L, const char *name, int64_t n, int required, float **ret)
{
    *ret = NULL;
    const struct gguf_tensor *t = find(L, name, required);
    if (!t)
        return required ? -EINVAL : 0;
    const struct eng_type_traits *tr = eng_type_traits(t->type);
    int64_t count = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (!tr || !tr->to_float || count != n || (int64_t)(n % tr->blck)) {
        snprintf(L->err, L->err_len, "model: tensor '%s': %lld elements of type %s, expected %lld",
                 name, (long long)count, gguf_tensor_type_name(t->type), (long long)n);
        return -EINVAL;
    }
    float *v = malloc((size_t)n * sizeof(float));
    if (!v)
        return -ENOMEM;
    tr->to_float(t->data, v, n);
    *ret = v;
    return 0;
}

static int load_tensors(struct loader *L)
{
    struct eng_model *m = L->m;
    struct eng_hparams *hp = &m->hp;
    int r;
    const struct gguf_tensor *te = find(L, "token_embd.weight", 1);
    if (!te)
        return -EINVAL;
    if (te->n_dims != 2 || te->ne[1] <= 0 || te->ne[1] > INT32_MAX) {
        snprintf(L->err, L->err_len, "model: tensor 'token_embd.weight': bad shape");
        return -EINVAL;
    }
    hp->n_vocab = (int32_t)te->ne[1];
    int tied = !gguf_find_tensor(m->gguf, "output.weight");
    if (!L->params->use_mmap && (r = reserve_weights(L, tied ? NULL : "token_embd.weight")))
        return r;
    /* the embedding is copied and packed only when it is also the output matrix (rows are then
     * looked up in the panels) */
    if ((r = get_matrix(L, "token_embd.weight", hp->n_embd, hp->n_vocab,
                        tied ? PLACE_PACK : PLACE_LOOKUP, &m->tok_embd)))
        return r;
    if (!eng_type_traits(m->tok_embd.type)->to_float) {
        snprintf(L->err, L->err_len, "model: token_embd.weight: cannot dequantize %s",
                 gguf_tensor_type_name(m->tok_embd.type));
        return -EINVAL;
    }
    if (!tied) {
        if ((r = get_matrix(L, "output.weight", hp->n_embd, hp->n_vocab, PLACE_PACK, &m->output)))
            return r;
    } else {
        m->output = m->tok_embd; /* tied embeddings */
    }
    if ((r = get_vector(L, "output_norm.weight", hp->n_embd, 1, &m->output_norm)) ||
        (r = get_vector(L, "rope_freqs.weight", hp->n_rot / 2, 0, &m->rope_freqs)))
        return r;
    m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
    if (!m->layers)
        return -ENOMEM;
    int64_t qdim = (int64_t)hp->n_head * hp->head_dim_k;
    int64_t kdim = (int64_t)hp->n_head_kv * hp->head_dim_k;
    int64_t vdim = (int64_t)hp->n_head_kv * hp->head_dim_v;
    int64_t odim = (int64_t)hp->n_head * hp->head_dim_v;
    for (int i = 0; i < hp->n_layer; i++) {
        struct eng_layer *l = &m->layers[i];
        char n[96];
#define NAME(s) (snprintf(n, sizeof(n), "blk.%d." s, i), n)
        if ((r = get_vector(L, NAME("attn_norm.weight"), hp->n_embd, 1, &l->attn_norm)) ||
            (r = get_vector(L, NAME("ffn_norm.weight"), hp->n_embd, 1, &l->ffn_norm)) ||
            (r = get_matrix(L, NAME("attn_q.weight"), hp->n_embd, qdim, PLACE_PACK, &l->wq)) ||
            (r = get_matrix(L, NAME("attn_k.weight"), hp->n_embd, kdim, PLACE_PACK, &l->wk)) ||
            (r = get_matrix(L, NAME("attn_v.weight"), hp->n_embd, vdim, PLACE_PACK, &l->wv)) ||
            (r = get_matrix(L, NAME("attn_output.weight"), odim, hp->n_embd, PLACE_PACK, &l->wo)) ||
            (r = get_matrix(L, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, PLACE_PACK,
                            &l->w_gate)) ||
            (r = get_matrix(L, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, PLACE_PACK,
                            &l->w_up)) ||
            (r = get_matrix(L, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, PLACE_PACK,
                            &l->w_down)))
            return r;
        /* qwen2 has Q/K/V biases; llama files sometimes carry them too (optional there) */
        int need_bias = hp->arch == ENG_ARCH_QWEN2;
        if ((r = get_vector(L, NAME("attn_q.bias"), qdim, need_bias, &l->bq)) ||
            (r = get_vector(L, NAME("attn_k.bias"), kdim, need_bias, &l->bk)) ||
            (r = get_vector(L, NAME("attn_v.bias"), vdim, need_bias, &l->bv)))
            return r;
        if (hp->arch == ENG_ARCH_QWEN3 &&
            ((r = get_vector(L, NAME("attn_q_norm.weight"), hp->head_dim_k, 1, &l->q_norm)) ||
             (r = get_vector(L, NAME("attn_k_norm.weight"), hp->head_dim_k, 1, &l->k_norm))))
            return r;
#undef NAME
    }
    return 0;
}

static void fill_info(struct eng_model *m)
{
    struct eng_model_info *in = &m->info;
    const struct eng_hparams *hp = &m->hp;
    const char *s;
    if (gguf_get_str(m->gguf, "general.name", &s) == 0)
        snprintf(in->name, sizeof(in->name), "%s", s);
    in->n_vocab = hp->n_vocab;
    in->n_ctx_train = hp->n_ctx_train;
    in->n_embd = hp->n_embd;
    in->n_layer = hp->n_layer;
    in->n_head = hp->n_head;
    in->n_head_kv = hp->n_head_kv;
    in->n_ff = hp->n_ff;
    in->rope_freq_base = hp->rope_freq_base;
    in->size_bytes = gguf_file_size(m->gguf);
    /* the type holding most weight bytes names the file's type */
    uint64_t bytes_by_type[GGUF_TT_COUNT] = {0};
    for (int i = 0; i < gguf_n_tensors(m->gguf); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(m->gguf, i);
        in->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        in->weight_bytes += t->size;
        if (strcmp(t->name, "token_embd.weight") != 0 ||
            !gguf_find_tensor(m->gguf, "output.weight"))
            in->stream_bytes += t->size;
        if (t->n_dims == 2)
            bytes_by_type[t->type] += t->size;
    }
    uint32_t best = 0;
    for (uint32_t t = 0; t < GGUF_TT_COUNT; t++)
        if (bytes_by_type[t] > bytes_by_type[best])
            best = t;
    snprintf(in->file_type, sizeof(in->file_type), "%s",
             gguf_n_tensors(m->gguf) ? gguf_tensor_type_name(best) : "none");
    in->bos_id = m->vocab ? eng_vocab_bos(m->vocab) : -1;
    in->eos_id = m->vocab ? eng_vocab_eos(m->vocab) : -1;
}

/* The header checks the loader and the probe share: the architecture must be named and be one
 * we run (unless only the vocabulary is wanted), and a tokenizer, when the file has one, must
 * load. Fills m->info.arch, m->hp.arch and m->vocab; *ret_arch points into the GGUF header. */
static int read_arch_and_vocab(struct eng_model *m, const char *path, bool any_arch,
                               const char **ret_arch, char *err, size_t err_len)
{
    const char *arch;
    if (gguf_get_str(m->gguf, "general.architecture", &arch) != 0) {
        snprintf(err, err_len, "%s: model: key 'general.architecture' is missing", path);
        return -EINVAL;
    }
    snprintf(m->info.arch, sizeof(m->info.arch), "%s", arch);
    if (strcmp(arch, "llama") == 0)
        m->hp.arch = ENG_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0)
        m->hp.arch = ENG_ARCH_QWEN2;
    else if (strcmp(arch, "qwen3") == 0)
        m->hp.arch = ENG_ARCH_QWEN3;
    else if (!any_arch) {
        snprintf(err, err_len,
                 "%s: model: architecture '%s' is not supported (llama, qwen2, qwen3)", path, arch);
        return -EINVAL;
    }
    if (gguf_find_key(m->gguf, "tokenizer.ggml.model") >= 0) {
        char verr[256];
        int r = eng_vocab_load_gguf(m->gguf, &m->vocab, verr, sizeof(verr));
        if (r) {
            snprintf(err, err_len, "%s: %s", path, verr);
            return r;
        }
    }
    *ret_arch = arch;
    return 0;
}

int eng_model_load(const char *path, const struct eng_model_params *params,
                   struct eng_model **ret_model, char *err, size_t err_len)
{
    struct eng_model_params defaults;
    if (!params) {
        eng_model_params_defaults(&defaults);
        params = &defaults;
    }
    *ret_model = NULL;
    if (err && err_len)
        err[0] = '\0';
    char dummy[8];
    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    struct eng_model *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    struct loader L = {m, err, err_len, params, 0, 0, 0};
    int r = gguf_open(path, &m->gguf, err, err_len);
    if (r)
        goto fail;
    if (params->progress && params->progress(0.1f, params->progress_user)) {
        r = -ECANCELED;
        goto cancelled;
    }
    const char *arch;
    r = read_arch_and_vocab(m, path, params->vocab_only, &arch, err, err_len);
    if (r)
        goto fail;
    if (params->progress && params->progress(0.3f, params->progress_user)) {
        r = -ECANCELED;
        goto cancelled;
    }
    if (!params->vocab_only) {
        char merr[384] = "";
        L.err = merr;
        L.err_len = sizeof(merr);
        r = load_hparams(&L, arch);
        if (!r)
            r = load_tensors(&L);
        if (r == -ECANCELED)
            goto cancelled;
        if (r) {
            snprintf(err, err_len, "%s: %s", path,
                     r == -ENOMEM && !merr[0] ? "out of memory" : merr);
            goto fail;
        }
        if (m->weights)
            mprotect(m->weights, m->weights_size, PROT_READ); /* weights never change */
        else /* the mapping will be read front to back on the first token */
            madvise((void *)gguf_base(m->gguf), gguf_file_size(m->gguf), MADV_WILLNEED);
    }
    fill_info(m);
    if (params->progress && params->progress(1.0f, params->progress_user)) {
        r = -ECANCELED;
        goto cancelled;
    }
    *ret_model = m;
    return 0;
cancelled:
    snprintf(err, err_len, "%s: load cancelled", path);
fail:
    eng_model_free(m);
    return r;
}

/* Header only: the same checks eng_model_load makes before it touches tensor data (the GGUF
 * layout, the architecture, the tokenizer and the hyper-parameters), so a listing of many files
 * costs a few page reads each and names the same problem the loader would. */
int eng_model_probe(const char *path, struct eng_model_info *ret, char *err, size_t err_len)
{
    char dummy[8];
    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = '\0';
    memset(ret, 0, sizeof(*ret));
    struct eng_model *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    struct eng_model_params params;
    eng_model_params_defaults(&params);
    struct loader L = {m, err, err_len, &params, 0, 0, 0};
    const char *arch;
    int r = gguf_open(path, &m->gguf, err, err_len);
    if (r)
        goto out;
    r = read_arch_and_vocab(m, path, false, &arch, err, err_len);
    if (r)
        goto out;
    char merr[384] = "";
    L.err = merr;
    L.err_len = sizeof(merr);
    r = load_hparams(&L, arch);
    if (r) {
        snprintf(err, err_len, "%s: %s", path, merr);
        goto out;
    }
    const struct gguf_tensor *emb = gguf_find_tensor(m->gguf, "output.weight");
    if (!emb)
        emb = gguf_find_tensor(m->gguf, "token_embd.weight");
    m->hp.n_vocab = emb && emb->n_dims == 2 ? (int32_t)emb->ne[1] : 0;
    fill_info(m);
    *ret = m->info;
out:
    eng_model_free(m);
    return r;
}

void eng_model_free(struct eng_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (int i = 0; i < m->hp.n_layer; i++) {
            struct eng_layer *l = &m->layers[i];
            free(l->attn_norm);
            free(l->ffn_norm);
            free(l->bq);
            free(l->bk);
            free(l->bv);
            free(l->q_norm);
            free(l->k_norm);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->rope_freqs);
    eng_vocab_free(m->vocab);
    if (m->weights)
        munmap(m->weights, m->weights_size);
    gguf_close(m->gguf);
    free(m);
}

void eng_model_info(const struct eng_model *model, struct eng_model_info *ret)
{
    *ret = model->info;
}

const struct eng_vocab *eng_model_vocab(const struct eng_model *model)
{
    return model->vocab;
}
