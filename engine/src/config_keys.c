/* The engine's configuration keys (see config_keys.h). Ranges are the ones the engine checks:
 * the sampler's own (eng_sampler_ranges), ENG_N_CTX_MAX for positions in the context; the rest
 * bound what a small machine can run sensibly. */
#include "engine/config_keys.h"

#include <pthread.h>

#include "engine/chat.h"
#include "engine/engine.h"
#include "engine/sampler.h"

static const struct cmn_range threads = {0, 512, false};
static const struct cmn_range context_length = {64, ENG_N_CTX_MAX, false};
static const struct cmn_range batch_size = {1, 8192, false};
static const struct cmn_range positions = {0, ENG_N_CTX_MAX, false};
static const struct cmn_range max_tokens = {1, ENG_N_CTX_MAX, false};
static const struct cmn_range seed = {-1, 4294967295.0, false};

static const char *const kv_types[] = {"f16", "f32", NULL};
/* "auto", the chat template families (filled once from chat.c's list), then the names of the
 * Mistral V3 variants, which eng_chat_template_from_name also takes. */
static const char *chat_templates[ENG_CHAT_FAMILY_COUNT + 4];

#define S (&eng_sampler_ranges)

static const struct cmn_key_desc keys[] = {
    {"threads", CMN_KEY_INT, &threads, NULL, "0",
     "Compute threads for the kernels; 0 = one per online CPU core."},
    {"context_length", CMN_KEY_INT, &context_length, NULL, "2048",
     "Context window in tokens (KV cache size); capped by the model's own."},
    {"batch_size", CMN_KEY_INT, &batch_size, NULL, "512",
     "Prompt tokens processed per prefill step."},
    {"kv_cache", CMN_KEY_ENUM, NULL, kv_types, "f16",
     "KV cache precision: f16 halves its memory; f32 is exact (for comparisons)."},
    {"mmap", CMN_KEY_BOOL, NULL, NULL, "false",
     "Compute on the model file's mapping instead of copying the weights into memory. The copy "
     "(default) uses huge pages and row-interleaved layouts and is faster; mmap needs no second "
     "copy for boxes short of RAM."},
    {"chat_template", CMN_KEY_ENUM, NULL, chat_templates, "auto",
     "Chat template; auto = recognise the model's tokenizer.chat_template (ChatML if unknown)."},
    {"temperature", CMN_KEY_DOUBLE, &S->temperature, NULL, "0.8",
     "Default sampling temperature for requests that do not set one (0 = greedy)."},
    {"top_k", CMN_KEY_INT, &S->top_k, NULL, "40", "Default top-k (0 = off)."},
    {"top_p", CMN_KEY_DOUBLE, &S->top_p, NULL, "0.95",
     "Default nucleus (top-p) threshold (1 = off)."},
    {"min_p", CMN_KEY_DOUBLE, &S->min_p, NULL, "0.05", "Default min-p threshold (0 = off)."},
    {"repeat_penalty", CMN_KEY_DOUBLE, &S->repeat_penalty, NULL, "1",
     "Default repetition penalty over the last repeat_last_n tokens (1 = off)."},
    {"repeat_last_n", CMN_KEY_INT, &S->penalty_last_n, NULL, "64",
     "How many recent tokens the repetition and presence penalties look at."},
    {"presence_penalty", CMN_KEY_DOUBLE, &S->presence_penalty, NULL, "0",
     "Default presence penalty (0 = off)."},
    {"frequency_penalty", CMN_KEY_DOUBLE, &S->frequency_penalty, NULL, "0",
     "Default frequency penalty: subtracted once per occurrence in the window (0 = off)."},
    {"context_shift", CMN_KEY_BOOL, NULL, NULL, "false",
     "When the context fills up during a reply, drop the older half (after keep_tokens) and go "
     "on instead of ending the reply with finish_reason length."},
    {"keep_tokens", CMN_KEY_INT, &positions, NULL, "0",
     "Leading tokens (e.g. the system prompt) a context shift never drops."},
    {"max_tokens", CMN_KEY_INT, &max_tokens, NULL, "512",
     "Generated tokens per request: the default, and the ceiling for what a request (HTTP or "
     "MQTT ask) may ask for."},
    {"seed", CMN_KEY_INT, &seed, NULL, "-1",
     "Default sampling seed; -1 = a fresh random seed per request."},
};

static pthread_once_t filled = PTHREAD_ONCE_INIT;

static void fill_chat_templates(void)
{
    size_t n = 0;
    chat_templates[n++] = "auto";
    for (int f = 0; f < ENG_CHAT_FAMILY_COUNT; f++)
        chat_templates[n++] = eng_chat_family_name((enum eng_chat_family)f);
    chat_templates[n++] = "mistral-v3";
    chat_templates[n++] = "mistral-v3-tekken";
    chat_templates[n] = NULL;
}

const struct cmn_key_desc *eng_config_keys(size_t *ret_n)
{
    pthread_once(&filled, fill_chat_templates);
    *ret_n = sizeof(keys) / sizeof(keys[0]);
    return keys;
}
