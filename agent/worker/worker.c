/* The engine worker thread (see worker.h): a bounded FIFO of requests, one context, chat
 * rendering with the model's template, and prompt-prefix reuse so a conversation's next turn
 * only prefills what is new. */
#include "worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "config.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

#define QUEUE_CAP_MAX 4096

/* One loaded model: its context (KV cache, kernel threads), chat template and the prompt
 * tokens its cache holds. The [engine] model's slot borrows the daemon's model and is never
 * unloaded; the others are loaded on demand and unloaded after keep-alive or for room. */
struct slot {
    char id[128];
    struct eng_model *owned; /* loaded here (NULL: the [engine] model, borrowed) */
    const struct eng_model *model;
    const struct eng_vocab *vocab;
    struct eng_context *ctx;
    struct eng_chat_template tmpl;
    char bos_text[64], eos_text[64];
    bool pinned;           /* the [engine] model: stays loaded */
    uint64_t bytes;        /* memory it holds (weights, KV cache, buffers), as counted */
    uint64_t last_used_ns; /* for least-recently-used eviction */
    uint64_t expires_ns;   /* unload when idle past this; 0 = never */

    /* Prompt reuse at the token level: the tokens the KV cache holds, in order. A new prompt
     * that starts with them only prefills the rest (a conversation's next turn). */
    int32_t *kv_tokens;
    size_t n_kv_tokens;
    int32_t *prompt_buf; /* tokenized prompt, n_ctx + 1 entries */
    int32_t *gen_tokens; /* tokens sampled in the running request, n_ctx entries */
    size_t n_ctx;
    /* the vocabulary's index for constrained sampling, built on the first request with a
     * grammar (tool_choice required/named, response_format) */
    struct eng_grammar_vocab *gvocab;
    uint64_t threads_seq; /* the thread-lever request last applied to ctx (worker thread) */
};

#define MAX_SLOTS 16

struct agent_worker {
    struct slot *cur;              /* the model of the running request (worker thread) */
    struct slot *slots[MAX_SLOTS]; /* loaded models; changed under lock by the worker only */
    size_t n_slots;
    char model_id[128]; /* the [engine] model's id, "" when none */
    struct agent_worker_hooks hooks;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;          /* CLOCK_MONOTONIC */
    struct agent_request **queue; /* ring of QUEUE_CAP_MAX */
    size_t q_head, q_len;
    size_t queue_depth; /* accepted waiting requests (live config) */
    bool stopping;
    struct agent_request *running;

    /* sampling and limits from the config, swapped under lock on reload */
    struct cfg_engine defaults;
    struct cfg_models models; /* keep_alive_s, max_loaded_bytes (live) */
    uint64_t phys_bytes;      /* physical memory, for the default budget */
    size_t n_gen_tokens;      /* of the running request (worker thread) */

    /* stats (under lock) */
    uint64_t requests, total_prompt_tokens, total_gen_tokens;
    uint64_t loads, unloads, evictions;
    enum agent_phase phase;
    /* tokens sampled so far, counted as they come (telemetry samples attribute them to the
     * interval and phase they were generated in, not to the request's end) */
    _Atomic uint64_t live_gen_tokens;

    /* the thread lever (agent_worker_set_threads): asked under lock, numbered by threads_seq,
     * applied by the worker thread between tokens; engine_* is what runs (under lock) */
    _Atomic uint64_t threads_seq;
    uint32_t want_threads;
    uint64_t want_cpus;
    uint32_t engine_threads, engine_max_threads;
    uint64_t engine_cpus;
    char threads_error[160];
};

/* Records what a context runs now, for agent_worker_stats. Worker thread (or setup). */
static void note_threads(struct agent_worker *w, const struct slot *s)
{
    uint32_t n = 0, max = 0;
    uint64_t cpus = 0;
    eng_context_threads(s->ctx, &n, &cpus, &max);
    pthread_mutex_lock(&w->lock);
    w->engine_threads = n;
    w->engine_cpus = cpus;
    w->engine_max_threads = max;
    pthread_mutex_unlock(&w->lock);
}

/* Between tokens (the context's pool is idle): carries out the latest thread-lever request on
 * the running model's context. The count is capped at the context's threads ([engine] threads
 * is the ceiling); a refused setting is kept in threads_error and the context runs on as it
 * was. */
static void apply_threads(struct agent_worker *w, struct slot *s)
{
    uint64_t seq = atomic_load(&w->threads_seq);
    if (!s || !s->ctx || seq == s->threads_seq)
        return;
    pthread_mutex_lock(&w->lock);
    uint32_t n = w->want_threads;
    uint64_t cpus = w->want_cpus;
    pthread_mutex_unlock(&w->lock);
    uint32_t max = 0;
    eng_context_threads(s->ctx, NULL, NULL, &max);
    char err[160] = "";
    int rc = eng_context_set_threads(s->ctx, n > max ? max : n, cpus, err, sizeof(err));
    s->threads_seq = seq;
    pthread_mutex_lock(&w->lock);
    snprintf(w->threads_error, sizeof(w->threads_error), "%s", rc < 0 ? err : "");
    pthread_mutex_unlock(&w->lock);
    note_threads(w, s);
}

static void set_phase(struct agent_worker *w, enum agent_phase phase)
{
    pthread_mutex_lock(&w->lock);
    bool changed = w->phase != phase;
    w->phase = phase;
    pthread_mutex_unlock(&w->lock);
    if (changed && w->hooks.phase)
        w->hooks.phase(w->hooks.user, phase);
}

static void obs_prefill_begin(void *user, size_t n_tokens)
{
    (void)n_tokens;
    struct agent_worker *w = user;
    set_phase(w, AGENT_PHASE_PREFILL);
    apply_threads(w, w->cur); /* before the batch's first matrix product */
}

static void obs_prefill_end(void *user, size_t n_tokens, uint64_t dur_ns)
{
    (void)n_tokens;
    (void)dur_ns;
    set_phase(user, AGENT_PHASE_DECODE);
}

static void obs_token(void *user, int32_t token)
{
    struct agent_worker *w = user;
    if (w->n_gen_tokens < w->cur->n_ctx)
        w->cur->gen_tokens[w->n_gen_tokens++] = token; /* only the worker thread touches these */
    atomic_fetch_add(&w->live_gen_tokens, 1);
    set_phase(w, AGENT_PHASE_DECODE);
    apply_threads(w, w->cur); /* between two decode steps */
}

static void obs_idle(void *user)
{
    set_phase(user, AGENT_PHASE_IDLE);
}

/* ---- one request ---- */

struct run_state {
    struct agent_worker *w;
    struct agent_request *req;
    struct eng_tool_parser *tools; /* tools offered: the output is parsed for calls */
    uint64_t n_pieces;             /* text pieces sent so far */
};

static int sink_text(void *user, const char *text, size_t len)
{
    struct run_state *rs = user;
    if (rs->w->hooks.text)
        rs->w->hooks.text(rs->w->hooks.user, text, len, rs->n_pieces++);
    return rs->req->sink.on_text ? rs->req->sink.on_text(rs->req->sink.user, text, len) : 0;
}

static int sink_call(void *user, const char *name, const char *arguments)
{
    struct run_state *rs = user;
    return rs->req->sink.on_tool_call
               ? rs->req->sink.on_tool_call(rs->req->sink.user, name, arguments)
               : 0;
}

static int on_text(void *user, const char *text, size_t len)
{
    struct run_state *rs = user;
    if (atomic_load(&rs->req->cancel))
        return 1;
    if (rs->tools)
        return eng_tool_parser_push(rs->tools, text, len) ? 1 : 0;
    return sink_text(rs, text, len);
}

static bool offers_tools(const struct agent_request *req)
{
    return req->kind == AGENT_REQ_CHAT && req->tools.tools_json &&
           req->tools.choice != AGENT_TOOLS_NONE;
}

/* The function names of the request's tools, for the output parser (malloc'd array of
 * pointers into *ret_json, which the caller frees with it). */
static int tool_names(const struct agent_request *req, cJSON **ret_json, const char ***ret,
                      size_t *ret_n)
{
    cJSON *t = cJSON_Parse(req->tools.tools_json);
    size_t n = (size_t)cJSON_GetArraySize(t), k = 0;
    const char **names = calloc(n ? n : 1, sizeof(*names));
    if (!t || !names) {
        cJSON_Delete(t);
        free(names);
        return -ENOMEM;
    }
    for (const cJSON *x = t->child; x; x = x->next) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(x, "function"), "name"));
        if (name)
            names[k++] = name;
    }
    *ret_json = t;
    *ret = names;
    *ret_n = k;
    return 0;
}

/* The grammar the request's output must follow (NULL when none): a call of the tools in the
 * template family's syntax, or the response_format. */
static int request_grammar(struct agent_worker *w, const struct agent_request *req,
                           struct eng_grammar **ret, char *err, size_t err_len)
{
    *ret = NULL;
    const struct agent_tools *t = &req->tools;
    char *text = NULL;
    int rc = 0;
    if (req->kind == AGENT_REQ_CHAT && t->tools_json &&
        (t->choice == AGENT_TOOLS_REQUIRED || t->choice == AGENT_TOOLS_NAMED)) {
        int syntax = 0;
        if (eng_chat_tool_syntax(&w->cur->tmpl, &syntax) < 0) {
            snprintf(err, err_len, "the model's chat template (%s) has no tool-call syntax",
                     eng_chat_family_name(w->cur->tmpl.family));
            return -EINVAL;
        }
        rc = eng_tools_grammar(t->tools_json, 0,
                               t->choice == AGENT_TOOLS_NAMED ? t->choice_name : NULL,
                               (enum eng_tool_syntax)syntax, t->parallel, &text, err, err_len);
    } else if (t->format_grammar) {
        text = strdup(t->format_grammar);
        rc = text ? 0 : -ENOMEM;
    }
    if (rc < 0 || !text)
        return rc;
    rc = eng_grammar_parse(text, 0, ret, err, err_len);
    free(text);
    if (rc == 0 && !w->cur->gvocab) {
        rc = eng_grammar_vocab_new(w->cur->vocab, &w->cur->gvocab);
        if (rc < 0) {
            snprintf(err, err_len, "indexing the vocabulary for constrained sampling failed");
            eng_grammar_free(*ret);
            *ret = NULL;
        }
    }
    return rc;
}

static int should_cancel(void *user)
{
    struct run_state *rs = user;
    return atomic_load(&rs->req->cancel) ? 1 : 0;
}

static uint64_t fresh_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
        seed = cmn_wall_ns() ^ (cmn_now_ns() << 17);
    return seed;
}

static void fill_sampling(const struct cfg_engine *d, const struct agent_sampling *s,
                          struct eng_sampler_params *p, int32_t *ret_max_tokens)
{
    eng_sampler_params_defaults(p);
    p->temperature = (float)(s->has_temperature ? s->temperature : d->temperature);
    p->top_k = s->has_top_k ? s->top_k : d->top_k;
    p->top_p = (float)(s->has_top_p ? s->top_p : d->top_p);
    p->min_p = (float)(s->has_min_p ? s->min_p : d->min_p);
    p->repeat_penalty = (float)(s->has_repeat_penalty ? s->repeat_penalty : d->repeat_penalty);
    p->presence_penalty =
        (float)(s->has_presence_penalty ? s->presence_penalty : d->presence_penalty);
    p->frequency_penalty =
        (float)(s->has_frequency_penalty ? s->frequency_penalty : d->frequency_penalty);
    p->penalty_last_n = d->repeat_last_n;
    if (s->has_seed)
        p->seed = s->seed;
    else if (d->seed >= 0)
        p->seed = (uint64_t)d->seed;
    else
        p->seed = fresh_seed();
    /* [engine] max_tokens is the operator's ceiling, not only a default: a client cannot hold the
     * single engine longer by asking for more. */
    *ret_max_tokens =
        s->has_max_tokens && s->max_tokens < d->max_tokens ? s->max_tokens : d->max_tokens;
}

/* Renders the request's prompt text (malloc'd) and, for a chat, where the messages' own text is
 * in it (*ret_spans, malloc'd): control tokens count only in the template's markup. */
static int render_prompt(struct agent_worker *w, const struct agent_request *req, char **ret,
                         struct eng_text_span **ret_spans, size_t *ret_n_spans, char *err,
                         size_t err_len)
{
    *ret_spans = NULL;
    *ret_n_spans = 0;
    if (req->kind == AGENT_REQ_COMPLETION) {
        *ret = strdup(req->prompt ? req->prompt : "");
        return *ret ? 0 : -ENOMEM;
    }
    struct eng_chat_message msgs[AGENT_MAX_MESSAGES];
    struct eng_chat_message_tools mt[AGENT_MAX_MESSAGES];
    struct eng_chat_tool_call *calls[AGENT_MAX_MESSAGES] = {0};
    const char *call_ids[AGENT_MAX_MESSAGES];
    bool any_calls = false, any_ids = false;
    int rc = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        msgs[i] = (struct eng_chat_message){req->messages[i].role, req->messages[i].content};
        call_ids[i] = req->messages[i].tool_call_id;
        any_ids = any_ids || call_ids[i];
        size_t n = req->tools.n_calls[i];
        mt[i] = (struct eng_chat_message_tools){NULL, 0};
        if (!n)
            continue;
        calls[i] = calloc(n, sizeof(*calls[i]));
        if (!calls[i]) {
            rc = -ENOMEM;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            calls[i][k] =
                (struct eng_chat_tool_call){req->tools.calls[i][k].id, req->tools.calls[i][k].name,
                                            req->tools.calls[i][k].arguments};
        mt[i] = (struct eng_chat_message_tools){calls[i], n};
        any_calls = true;
    }
    char today[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(today, sizeof(today), "%d %b %Y", localtime_r(&now, &tm));
    struct eng_chat_render_opts ro = {.add_generation_prompt = true,
                                      .bos_token = w->cur->bos_text,
                                      .eos_token = w->cur->eos_text,
                                      .date_string = today,
                                      .tools = offers_tools(req) ? req->tools.tools_json : NULL,
                                      .message_tools = any_calls ? mt : NULL,
                                      .tool_call_ids = any_ids ? call_ids : NULL};
    if (rc == 0)
        rc = eng_chat_render_spans(&w->cur->tmpl, msgs, req->n_messages, &ro, ret, NULL, ret_spans,
                                   ret_n_spans, err, err_len);
    for (size_t i = 0; i < req->n_messages; i++)
        free(calls[i]);
    return rc;
}

/* ---- loaded models ---- */

static void model_event(struct agent_worker *w, const char *kind, const char *id,
                        const char *detail)
{
    if (w->hooks.model_event)
        w->hooks.model_event(w->hooks.user, kind, id, detail);
}

static void slot_free(struct slot *s)
{
    if (!s)
        return;
    eng_context_free(s->ctx);
    eng_grammar_vocab_free(s->gvocab);
    free(s->kv_tokens);
    free(s->prompt_buf);
    free(s->gen_tokens);
    eng_model_free(s->owned);
    free(s);
}

static void token_text(const struct eng_vocab *vocab, int32_t id, char *buf, size_t cap)
{
    size_t n = 0;
    const char *t = id >= 0 ? eng_token_text(vocab, id, &n) : NULL;
    snprintf(buf, cap, "%.*s", t ? (int)n : 0, t ? t : "");
}

/* The context length a model gets: [engine] context_length, capped by the model's own. */
static uint32_t context_for(const struct cfg_engine *e, const struct eng_model_info *mi)
{
    uint32_t n = (uint32_t)e->context_length;
    if (mi->n_ctx_train > 0 && n > (uint32_t)mi->n_ctx_train)
        n = (uint32_t)mi->n_ctx_train;
    return n;
}

/* KV cache bytes of a context of n_ctx positions (K and V for every layer). */
static uint64_t kv_bytes(const struct cfg_engine *e, const struct eng_model_info *mi,
                         uint32_t n_ctx)
{
    uint64_t head_dim = mi->n_head > 0 ? (uint64_t)mi->n_embd / (uint64_t)mi->n_head : 0;
    uint64_t elt = strcmp(e->kv_cache, "f32") == 0 ? 4 : 2;
    return (uint64_t)n_ctx * (uint64_t)mi->n_layer * (uint64_t)mi->n_head_kv * head_dim * 2 * elt;
}

uint64_t agent_worker_model_bytes(struct agent_worker *w, const struct eng_model_info *mi)
{
    pthread_mutex_lock(&w->lock);
    struct cfg_engine e = w->defaults;
    pthread_mutex_unlock(&w->lock);
    return mi->weight_bytes + kv_bytes(&e, mi, context_for(&e, mi));
}

/* Builds a model's context and everything a request needs beside it. template_name: a family
 * name, or "auto" to recognise the file's own template (path). */
static int slot_open(struct agent_worker *w, struct slot *s, const struct cfg_engine *e,
                     const char *template_name, const char *path, char *err, size_t err_len)
{
    s->vocab = eng_model_vocab(s->model);
    if (!s->vocab) {
        snprintf(err, err_len, "%s: the model has no tokenizer", path);
        return -EINVAL;
    }
    struct eng_model_info mi;
    eng_model_info(s->model, &mi);
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = context_for(e, &mi);
    cp.n_threads = (uint32_t)e->threads;
    cp.n_batch = (uint32_t)e->batch_size;
    cp.kv_f32 = strcmp(e->kv_cache, "f32") == 0;
    int rc = eng_context_new(s->model, &cp, &s->ctx, err, err_len);
    if (rc < 0)
        return rc;
    static const struct eng_observer obs = {
        .prefill_begin = obs_prefill_begin,
        .prefill_end = obs_prefill_end,
        .token = obs_token,
        .idle = obs_idle,
    };
    eng_set_observer(s->ctx, &obs, w);
    s->n_ctx = eng_n_ctx(s->ctx);
    s->kv_tokens = calloc(s->n_ctx + 1, sizeof(int32_t));
    s->prompt_buf = calloc(s->n_ctx + 1, sizeof(int32_t));
    s->gen_tokens = calloc(s->n_ctx + 1, sizeof(int32_t));
    if (!s->kv_tokens || !s->prompt_buf || !s->gen_tokens)
        return -ENOMEM;
    eng_chat_template_from_name("chatml", &s->tmpl);
    if (strcmp(template_name, "auto") != 0) {
        eng_chat_template_from_name(template_name, &s->tmpl);
    } else {
        char *jinja = NULL, terr[256];
        if (eng_chat_template_read(path, &jinja, terr, sizeof(terr)) == 0 && jinja) {
            bool warn = false;
            eng_chat_template_detect(jinja, &s->tmpl, &warn);
        }
        free(jinja);
    }
    token_text(s->vocab, eng_vocab_bos(s->vocab), s->bos_text, sizeof(s->bos_text));
    token_text(s->vocab, eng_vocab_eos(s->vocab), s->eos_text, sizeof(s->eos_text));
    struct eng_graph_stats gs;
    eng_graph_stats(s->ctx, &gs);
    s->bytes = mi.weight_bytes + kv_bytes(e, &mi, (uint32_t)s->n_ctx) + gs.act_bytes_fused +
               gs.scratch_bytes;
    return 0;
}

static struct slot *find_slot(const struct agent_worker *w, const char *id)
{
    for (size_t i = 0; i < w->n_slots; i++)
        if (strcmp(w->slots[i]->id, id) == 0)
            return w->slots[i];
    return NULL;
}

/* [models] max_loaded_bytes, or half of physical memory when it is 0. */
static uint64_t budget_bytes(const struct agent_worker *w, const struct cfg_models *mc)
{
    return mc->max_loaded_bytes > 0 ? (uint64_t)mc->max_loaded_bytes : w->phys_bytes / 2;
}

/* Unloads the least recently used model that is not pinned: 0, or -ENOENT when none is left. */
static int evict_one(struct agent_worker *w, const char *for_id)
{
    pthread_mutex_lock(&w->lock);
    size_t victim = SIZE_MAX;
    for (size_t i = 0; i < w->n_slots; i++)
        if (!w->slots[i]->pinned &&
            (victim == SIZE_MAX || w->slots[i]->last_used_ns < w->slots[victim]->last_used_ns))
            victim = i;
    struct slot *s = NULL;
    if (victim != SIZE_MAX) {
        s = w->slots[victim];
        w->slots[victim] = w->slots[--w->n_slots];
        w->evictions++;
    }
    pthread_mutex_unlock(&w->lock);
    if (!s)
        return -ENOENT;
    char detail[192];
    snprintf(detail, sizeof(detail), "least recently used; making room for %s", for_id);
    model_event(w, "evict", s->id, detail);
    slot_free(s);
    malloc_trim(0);
    return 0;
}

/* Loads the file at path as model id, first unloading least recently used models until it fits
 * the memory budget (need: its estimated bytes). The governor sees the LOADING phase: reading a
 * file is I/O-bound and gains nothing from a boost. */
static int load_model(struct agent_worker *w, const char *id, const char *path, uint64_t need,
                      char *err, size_t err_len)
{
    pthread_mutex_lock(&w->lock);
    struct cfg_engine e = w->defaults;
    struct cfg_models mc = w->models;
    uint64_t used = 0, pinned = 0;
    for (size_t i = 0; i < w->n_slots; i++) {
        used += w->slots[i]->bytes;
        if (w->slots[i]->pinned)
            pinned += w->slots[i]->bytes;
    }
    pthread_mutex_unlock(&w->lock);
    uint64_t budget = budget_bytes(w, &mc);
    if (pinned + need > budget) {
        snprintf(err, err_len,
                 "model '%s' needs about %.0f MB but the memory budget ([models] "
                 "max_loaded_bytes) is %.0f MB%s",
                 id, (double)need / 1e6, (double)budget / 1e6,
                 pinned ? ", part of it held by the [engine] model" : "");
        return -EFBIG;
    }
    while (used + need > budget || w->n_slots == MAX_SLOTS) {
        if (evict_one(w, id) < 0)
            break;
        used = 0;
        for (size_t i = 0; i < w->n_slots; i++)
            used += w->slots[i]->bytes;
    }
    struct slot *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    snprintf(s->id, sizeof(s->id), "%s", id);
    set_phase(w, AGENT_PHASE_LOADING);
    uint64_t t0 = cmn_now_ns();
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.use_mmap = e.mmap;
    int rc = eng_model_load(path, &mp, &s->owned, err, err_len);
    if (rc == 0) {
        s->model = s->owned;
        /* models loaded on demand recognise their own template; a name in [engine]
         * chat_template is for the [engine] model */
        rc = slot_open(w, s, &e, "auto", path, err, err_len);
    }
    set_phase(w, AGENT_PHASE_IDLE);
    if (rc < 0) {
        slot_free(s);
        model_event(w, "load_failed", id, err);
        return rc;
    }
    s->last_used_ns = cmn_now_ns();
    /* the estimate left out the compute buffers: now that they are known, make room for them */
    for (;;) {
        used = 0;
        for (size_t i = 0; i < w->n_slots; i++)
            used += w->slots[i]->bytes;
        if (used + s->bytes <= budget || evict_one(w, id) < 0)
            break;
    }
    pthread_mutex_lock(&w->lock);
    w->slots[w->n_slots++] = s;
    w->loads++;
    pthread_mutex_unlock(&w->lock);
    char detail[192];
    snprintf(detail, sizeof(detail), "loaded in %.1f ms, %.1f MB (%llu bytes)",
             (double)(s->last_used_ns - t0) / 1e6, (double)s->bytes / 1e6,
             (unsigned long long)s->bytes);
    model_event(w, "load", id, detail);
    return 0;
}

/* Points w->cur at the request's model, loading it when it is not loaded. */
static int select_model(struct agent_worker *w, const struct agent_request *req, bool *loaded_now,
                        char *err, size_t err_len)
{
    const char *id = req->model_id[0] ? req->model_id : w->model_id;
    w->cur = find_slot(w, id);
    if (w->cur)
        return 0;
    if (!req->model_path) {
        snprintf(err, err_len, "no model is loaded");
        return -ENODEV;
    }
    int rc = load_model(w, id, req->model_path, req->model_bytes, err, err_len);
    if (rc < 0)
        return rc;
    *loaded_now = true;
    w->cur = find_slot(w, id);
    return w->cur ? 0 : -EIO;
}

/* After a request: how long its model stays loaded (the request's keep_alive, else
 * [models] keep_alive_s; negative: for ever). The [engine] model always stays. */
static void keep_alive(struct agent_worker *w, struct slot *s, const struct agent_request *req)
{
    uint64_t now = cmn_now_ns();
    s->last_used_ns = now;
    if (s->pinned)
        return;
    pthread_mutex_lock(&w->lock);
    int64_t ms = req->has_keep_alive          ? req->keep_alive_ms
                 : w->models.keep_alive_s < 0 ? -1
                                              : (int64_t)w->models.keep_alive_s * 1000;
    s->expires_ns = ms < 0 ? 0 : now + (uint64_t)ms * 1000000ull; /* 0 ms: once idle */
    pthread_mutex_unlock(&w->lock);
}

static void run_request(struct agent_worker *w, struct agent_request *req)
{
    /* energy stays unknown (null in every output) unless the meter measured it */
    struct agent_result res = {
        .finish = AGENT_FINISH_ERROR, .energy_j = NAN, .avg_power_w = NAN, .j_per_token = NAN};
    struct run_state rs = {.w = w, .req = req};
    struct cfg_engine d;
    pthread_mutex_lock(&w->lock);
    d = w->defaults;
    pthread_mutex_unlock(&w->lock);
    if (w->hooks.policy)
        w->hooks.policy(w->hooks.user, res.policy, sizeof(res.policy));

    uint64_t start_ns = cmn_now_ns();
    double e0 = w->hooks.energy_j ? w->hooks.energy_j(w->hooks.user, start_ns) : NAN;
    char *prompt = NULL;
    struct eng_text_span *spans = NULL;
    size_t n_spans = 0;
    struct eng_grammar *grammar = NULL;
    cJSON *names_json = NULL;
    int rc;
    bool loaded_now = false;
    if (w->hooks.before_request)
        w->hooks.before_request(w->hooks.user, req);
    res.sources_json = req->plugin_sources;
    if (req->plugin_answer) {
        /* a plugin answered: its text is the reply; no model is loaded or run */
        sink_text(&rs, req->plugin_answer, strlen(req->plugin_answer));
        res.finish = AGENT_FINISH_STOP;
        goto done;
    }
    rc = select_model(w, req, &loaded_now, res.error_msg, sizeof(res.error_msg));
    if (rc < 0) {
        res.error = rc;
        res.load_failed = rc != -ENODEV;
        goto done;
    }
    snprintf(res.model, sizeof(res.model), "%s", w->cur->id);
    apply_threads(w, w->cur);
    note_threads(w, w->cur); /* this model's context is the one that runs now */
    if (loaded_now) {
        /* the load is reported apart (load_ms); energy and time per token start here */
        uint64_t now_ns = cmn_now_ns();
        res.load_ms = (double)(now_ns - start_ns) / 1e6;
        start_ns = now_ns;
        e0 = w->hooks.energy_j ? w->hooks.energy_j(w->hooks.user, start_ns) : NAN;
    }
    rc = render_prompt(w, req, &prompt, &spans, &n_spans, res.error_msg, sizeof(res.error_msg));
    if (rc < 0) {
        res.error = rc;
        goto done;
    }

    struct eng_gen_params gp;
    eng_gen_params_defaults(&gp);
    fill_sampling(&d, &req->sampling, &gp.sampling, &gp.max_tokens);
    gp.n_batch = (uint32_t)d.batch_size;
    gp.ctx_full = d.context_shift ? ENG_CTX_FULL_SHIFT : ENG_CTX_FULL_STOP;
    gp.n_keep = (uint32_t)d.keep_tokens;
    gp.parse_special = req->kind == AGENT_REQ_CHAT; /* template markup, never user text alone */
    for (size_t i = 0; i < req->n_stop && i < AGENT_MAX_STOP && i < ENG_GEN_MAX_STOP; i++)
        gp.stop[gp.n_stop++] = req->stop[i];
    gp.on_text = on_text;
    gp.should_cancel = should_cancel;
    gp.user = &rs;
    rc = request_grammar(w, req, &grammar, res.error_msg, sizeof(res.error_msg));
    if (rc < 0) {
        res.error = rc;
        goto done;
    }
    gp.grammar = grammar;
    gp.grammar_vocab = w->cur->gvocab;
    if (offers_tools(req)) {
        int syntax = 0;
        const char **names = NULL;
        size_t n_names = 0;
        struct eng_tool_parser_cb cb = {sink_text, sink_call, &rs};
        if (eng_chat_tool_syntax(&w->cur->tmpl, &syntax) < 0) {
            rc = res.error = -EINVAL;
            snprintf(res.error_msg, sizeof(res.error_msg),
                     "the model's chat template (%s) has no tool-call syntax",
                     eng_chat_family_name(w->cur->tmpl.family));
            goto done;
        }
        rc = tool_names(req, &names_json, &names, &n_names);
        if (rc == 0)
            rc = eng_tool_parser_new(syntax, names, n_names, &cb, &rs.tools);
        free(names);
        if (rc < 0) {
            res.error = rc;
            goto done;
        }
    }

    /* Tokenize the whole prompt, then skip what the KV cache already holds. */
    bool add_bos =
        !(w->cur->bos_text[0] && strncmp(prompt, w->cur->bos_text, strlen(w->cur->bos_text)) == 0);
    size_t n_prompt = 0;
    rc = gp.parse_special
             ? eng_tokenize_spans(w->cur->vocab, prompt, strlen(prompt), add_bos, spans, n_spans,
                                  w->cur->prompt_buf, w->cur->n_ctx + 1, &n_prompt)
             : eng_tokenize(w->cur->vocab, prompt, strlen(prompt), add_bos, false,
                            w->cur->prompt_buf, w->cur->n_ctx + 1, &n_prompt);
    if (rc == -ENOSPC || n_prompt > w->cur->n_ctx) {
        res.error = -ENOSPC;
        snprintf(res.error_msg, sizeof(res.error_msg),
                 "the prompt is longer than the context window (%zu tokens)", w->cur->n_ctx);
        goto done;
    }
    if (rc < 0) {
        res.error = rc;
        snprintf(res.error_msg, sizeof(res.error_msg), "cannot tokenize the prompt");
        goto done;
    }
    size_t common = 0;
    while (common < w->cur->n_kv_tokens && common < n_prompt &&
           w->cur->kv_tokens[common] == w->cur->prompt_buf[common])
        common++;
    if (common == n_prompt && common > 0)
        common--; /* at least one token must be decoded to get fresh logits */
    if (eng_kv_trim(w->cur->ctx, common) < 0)
        common = 0;
    w->cur->n_kv_tokens = 0; /* invalid until this generation ends cleanly */
    w->n_gen_tokens = 0;
    gp.prompt = NULL;
    gp.prompt_tokens = w->cur->prompt_buf + common;
    gp.n_prompt_tokens = n_prompt - common;
    gp.keep_kv = common > 0;
    gp.history_tokens = w->cur->prompt_buf; /* penalties see the cached prefix too */
    gp.n_history_tokens = common;

    struct eng_gen_result gr;
    rc = eng_generate(w->cur->ctx, w->cur->vocab, &gp, &gr, res.error_msg, sizeof(res.error_msg));
    if (rc < 0) {
        res.error = rc;
        goto done;
    }
    if (rs.tools) {
        if (gr.reason != ENG_STOP_CANCELLED)
            eng_tool_parser_finish(rs.tools); /* decides what was held back */
        res.n_tool_calls = eng_tool_parser_n_calls(rs.tools);
    }
    /* Without a context shift the cache holds the prompt then the sampled tokens in order
     * (the last sampled one may not have been decoded). */
    size_t expect = n_prompt + w->n_gen_tokens; /* a context shift leaves fewer */
    if (w->n_gen_tokens < w->cur->n_ctx && (gr.kv_used == expect || gr.kv_used + 1 == expect)) {
        memcpy(w->cur->kv_tokens, w->cur->prompt_buf, n_prompt * sizeof(int32_t));
        memcpy(w->cur->kv_tokens + n_prompt, w->cur->gen_tokens,
               (gr.kv_used - n_prompt) * sizeof(int32_t));
        w->cur->n_kv_tokens = gr.kv_used;
    }
    switch (gr.reason) {
    case ENG_STOP_EOG:
    case ENG_STOP_STRING:
        res.finish = AGENT_FINISH_STOP;
        break;
    case ENG_STOP_CANCELLED:
        res.finish = AGENT_FINISH_CANCELLED;
        break;
    default:
        res.finish = AGENT_FINISH_LENGTH;
        break;
    }
    res.prompt_tokens = gr.stats.prompt_tokens;
    res.gen_tokens = gr.stats.gen_tokens;
    res.ttft_ms = (double)gr.stats.ttft_ns / 1e6;
    if (gr.stats.prefill_ns)
        res.prefill_tokens_per_s =
            (double)gr.stats.prompt_tokens * 1e9 / (double)gr.stats.prefill_ns;
    if (gr.stats.decode_ns && gr.stats.gen_tokens > 1)
        res.decode_tokens_per_s =
            (double)(gr.stats.gen_tokens - 1) * 1e9 / (double)gr.stats.decode_ns;
    res.prompt_tokens = n_prompt; /* the whole prompt, also what came from the cache */
    res.cached_tokens = common;

done:;
    uint64_t end_ns = cmn_now_ns();
    res.duration_ms = (double)(end_ns - start_ns) / 1e6;
    double e1 = w->hooks.energy_j ? w->hooks.energy_j(w->hooks.user, end_ns) : NAN;
    if (isfinite(e0) && isfinite(e1) && e1 >= e0) {
        res.energy_j = e1 - e0;
        res.avg_power_w = res.duration_ms > 0 ? res.energy_j / (res.duration_ms / 1e3) : NAN;
        /* joules per generated token, the one definition every output uses */
        res.j_per_token = res.gen_tokens ? res.energy_j / (double)res.gen_tokens : NAN;
    }
    free(prompt);
    free(spans);
    eng_grammar_free(grammar);
    eng_tool_parser_free(rs.tools);
    cJSON_Delete(names_json);
    set_phase(w, AGENT_PHASE_IDLE);
    pthread_mutex_lock(&w->lock);
    w->requests++;
    w->total_prompt_tokens += res.prompt_tokens;
    w->total_gen_tokens += res.gen_tokens;
    pthread_mutex_unlock(&w->lock);
    if (w->cur) /* before on_done, after which req belongs to the front end again */
        keep_alive(w, w->cur, req);
    w->cur = NULL;
    if (req->sink.on_done)
        req->sink.on_done(req->sink.user, &res);
    res.sources_json = NULL; /* the request may be gone once on_done returned */
    if (w->hooks.request_done)
        w->hooks.request_done(w->hooks.user, &res);
}

/* Unloads the models whose keep-alive has run out (locked on entry and exit; the frees happen
 * unlocked, so a submit never waits for them). */
static void unload_expired(struct agent_worker *w, uint64_t now_ns)
{
    struct slot *gone[MAX_SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < w->n_slots;) {
        struct slot *s = w->slots[i];
        if (!s->pinned && s->expires_ns && s->expires_ns <= now_ns) {
            gone[n++] = s;
            w->slots[i] = w->slots[--w->n_slots];
            w->unloads++;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        model_event(w, "unload", gone[i]->id, "keep-alive ended");
        slot_free(gone[i]);
    }
    if (n)
        malloc_trim(0); /* the heap's freed pages back to the system (RSS returns) */
    pthread_mutex_lock(&w->lock);
}

/* The earliest keep-alive end among loaded models (locked), 0 when none ends. */
static uint64_t next_expiry(const struct agent_worker *w)
{
    uint64_t next = 0;
    for (size_t i = 0; i < w->n_slots; i++) {
        const struct slot *s = w->slots[i];
        if (!s->pinned && s->expires_ns && (!next || s->expires_ns < next))
            next = s->expires_ns;
    }
    return next;
}

static void *worker_main(void *arg)
{
    struct agent_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stopping && w->q_len == 0) {
            uint64_t next = next_expiry(w);
            if (!next) {
                pthread_cond_wait(&w->cond, &w->lock);
                continue;
            }
            if (cmn_now_ns() >= next) {
                unload_expired(w, cmn_now_ns());
                continue;
            }
            struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
            pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        }
        if (w->q_len == 0 && w->stopping)
            break;
        struct agent_request *req = w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % QUEUE_CAP_MAX;
        w->q_len--;
        w->running = req;
        pthread_mutex_unlock(&w->lock);
        run_request(w, req);
        pthread_mutex_lock(&w->lock);
        w->running = NULL;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- setup ---- */

int agent_worker_new(const struct eng_model *model, const struct agent_config *cfg,
                     const struct agent_worker_hooks *hooks, struct agent_worker **ret, char *err,
                     size_t err_len)
{
    struct agent_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->queue = calloc(QUEUE_CAP_MAX, sizeof(*w->queue)); // NOLINT(bugprone-sizeof-expression)
    if (!w->queue) {
        free(w);
        return -ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* keep-alive deadlines are monotonic */
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (hooks)
        w->hooks = *hooks;
    w->defaults = cfg->engine;
    w->models = cfg->models;
    w->queue_depth = (size_t)cfg->api.queue_depth;
    /* Models come and go: allocations of 64 KiB and more get their own mappings, returned to
     * the system when freed. (glibc otherwise raises this threshold to the largest block freed
     * and keeps such blocks in its heaps, so RSS would stay up after an unload.) Process-wide;
     * small allocations are unaffected. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    w->phys_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    int rc = 0;
    if (model) {
        struct slot *s = calloc(1, sizeof(*s));
        if (!s) {
            rc = -ENOMEM;
            goto fail;
        }
        s->model = model;
        s->pinned = true;
        w->slots[w->n_slots++] = s;
        rc = slot_open(w, s, &cfg->engine, cfg->engine.chat_template, cfg->engine.model, err,
                       err_len);
        if (rc < 0)
            goto fail;
        if (cfg->api.model_name[0]) {
            snprintf(w->model_id, sizeof(w->model_id), "%.*s", (int)sizeof(w->model_id) - 1,
                     cfg->api.model_name);
        } else {
            const char *base = strrchr(cfg->engine.model, '/');
            base = base ? base + 1 : cfg->engine.model;
            snprintf(w->model_id, sizeof(w->model_id), "%.*s", (int)sizeof(w->model_id) - 1, base);
            char *dot = strrchr(w->model_id, '.');
            if (dot && strcmp(dot, ".gguf") == 0)
                *dot = '\0';
        }
        snprintf(s->id, sizeof(s->id), "%s", w->model_id);
        note_threads(w, s);
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        rc = -EAGAIN;
        snprintf(err, err_len, "cannot start the engine worker thread");
        goto fail;
    }
    w->thread_started = true;
    *ret = w;
    return 0;
fail:
    agent_worker_free(w, 0);
    return rc;
}

static void fail_request(struct agent_request *req, int error, const char *msg)
{
    struct agent_result res = {.finish = AGENT_FINISH_CANCELLED,
                               .error = error,
                               .energy_j = NAN,
                               .avg_power_w = NAN,
                               .j_per_token = NAN};
    snprintf(res.error_msg, sizeof(res.error_msg), "%s", msg);
    if (req->sink.on_done)
        req->sink.on_done(req->sink.user, &res);
}

void agent_worker_free(struct agent_worker *w, int timeout_ms)
{
    if (!w)
        return;
    if (w->thread_started) {
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        /* Queued requests never started: tell their clients now. */
        while (w->q_len) {
            struct agent_request *req = w->queue[w->q_head];
            w->q_head = (w->q_head + 1) % QUEUE_CAP_MAX;
            w->q_len--;
            pthread_mutex_unlock(&w->lock);
            fail_request(req, -ESHUTDOWN, "the agent is shutting down");
            pthread_mutex_lock(&w->lock);
        }
        pthread_cond_broadcast(&w->cond);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (w->running) {
            if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT) {
                if (w->running)
                    atomic_store(&w->running->cancel, true);
                while (w->running)
                    pthread_cond_wait(&w->cond, &w->lock);
            }
        }
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    for (size_t i = 0; i < w->n_slots; i++)
        slot_free(w->slots[i]);
    if (w->n_slots > (w->model_id[0] ? 1u : 0u))
        malloc_trim(0);
    free(w->queue);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

int agent_worker_submit(struct agent_worker *w, struct agent_request *req)
{
    if (!req->model_path && !(req->model_id[0] ? req->model_id : w->model_id)[0])
        return -ENODEV; /* no model named, and no [engine] model to default to */
    if (req->kind == AGENT_REQ_CHAT && req->n_messages == 0)
        return -EINVAL;
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    size_t waiting_allowed = w->queue_depth;
    if (w->stopping)
        rc = -ESHUTDOWN;
    else if (w->q_len >= waiting_allowed + (w->running ? 0 : 1) || w->q_len >= QUEUE_CAP_MAX)
        rc = -EBUSY;
    if (rc == 0) {
        req->enqueued_ns = cmn_now_ns();
        w->queue[(w->q_head + w->q_len) % QUEUE_CAP_MAX] = req;
        w->q_len++;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void agent_worker_set_config(struct agent_worker *w, const struct agent_config *cfg)
{
    pthread_mutex_lock(&w->lock);
    /* Only live keys change; batch size and context stay as the context was built. */
    int batch = w->defaults.batch_size, ctx_len = w->defaults.context_length;
    w->defaults = cfg->engine;
    w->defaults.batch_size = batch;
    w->defaults.context_length = ctx_len;
    w->queue_depth = (size_t)cfg->api.queue_depth;
    w->models = cfg->models;
    pthread_cond_broadcast(&w->cond); /* a keep-alive may have changed */
    pthread_mutex_unlock(&w->lock);
}

void agent_worker_stats(struct agent_worker *w, struct agent_worker_stats *ret)
{
    pthread_mutex_lock(&w->lock);
    ret->queue_depth = w->q_len;
    ret->busy = w->running != NULL;
    ret->requests = w->requests;
    ret->prompt_tokens = w->total_prompt_tokens;
    ret->gen_tokens = w->total_gen_tokens;
    ret->phase = w->phase;
    ret->loads = w->loads;
    ret->unloads = w->unloads;
    ret->evictions = w->evictions;
    ret->n_loaded = w->n_slots;
    ret->loaded_bytes = 0;
    for (size_t i = 0; i < w->n_slots; i++)
        ret->loaded_bytes += w->slots[i]->bytes;
    pthread_mutex_unlock(&w->lock);
    ret->live_gen_tokens = atomic_load(&w->live_gen_tokens);
    pthread_mutex_lock(&w->lock);
    ret->engine_threads = w->engine_threads;
    ret->engine_max_threads = w->engine_max_threads;
    ret->engine_cpus = w->engine_cpus;
    snprintf(ret->threads_error, sizeof(ret->threads_error), "%s", w->threads_error);
    pthread_mutex_unlock(&w->lock);
}

void agent_worker_set_threads(struct agent_worker *w, uint32_t n_threads, uint64_t cpu_mask)
{
    pthread_mutex_lock(&w->lock);
    w->want_threads = n_threads;
    w->want_cpus = cpu_mask;
    atomic_fetch_add(&w->threads_seq, 1);
    pthread_mutex_unlock(&w->lock);
}

const char *agent_worker_model_id(const struct agent_worker *w)
{
    return w->model_id;
}

size_t agent_worker_loaded(struct agent_worker *w, char (*ids)[128], size_t cap)
{
    pthread_mutex_lock(&w->lock);
    size_t n = 0;
    for (size_t i = 0; i < w->n_slots && n < cap; i++)
        snprintf(ids[n++], 128, "%s", w->slots[i]->id);
    pthread_mutex_unlock(&w->lock);
    return n;
}
