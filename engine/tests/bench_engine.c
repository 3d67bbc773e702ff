/* Engine throughput bench, comparable with llama-bench's pp/tg: loads a model, then per repetition
 * prefills n_prompt random tokens as one batch (prompt tokens/s) and, from an empty cache again
 * (as llama-bench's tg test), decodes n_gen tokens one at a time feeding back the argmax
 * (generation tokens/s). Also prints load time and resident memory
 * after load and after the first forward pass against the file size.
 *   engcore_bench MODEL [threads=2] [n_prompt=128] [n_gen=64] [reps=3] [fused|unfused]
 * Not a ctest-timed test (label bench): exits 0 unless the engine fails. */
#include "common/timeutil.h"
#include "engine/engine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [threads] [n_prompt] [n_gen] [reps]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2, n_prompt = argc > 3 ? atoi(argv[3]) : 128;
    int n_gen = argc > 4 ? atoi(argv[4]) : 64, reps = argc > 5 ? atoi(argv[5]) : 3;
    char err[512];
    long rss0 = rss_kib();
    uint64_t t0 = cmn_now_ns();
    struct eng_model *m = NULL;
    if (eng_model_load(argv[1], NULL, &m, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint64_t t_load = cmn_now_ns() - t0;
    long rss_load = rss_kib();
    struct eng_model_info info;
    eng_model_info(m, &info);
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_threads = (uint32_t)threads;
    cp.no_fusion = argc > 6 && strcmp(argv[6], "unfused") == 0;
    cp.n_ctx = (uint32_t)(n_prompt + n_gen + 8);
    cp.n_batch = (uint32_t)(n_prompt > 0 ? n_prompt : 1);
    struct eng_context *c = NULL;
    if (eng_context_new(m, &cp, &c, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        eng_model_free(m);
        return 1;
    }
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    uint64_t seed = 42;
    for (int i = 0; i < n_prompt + 1; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((seed >> 33) % (uint64_t)info.n_vocab);
    }
    /* warm-up: touches every weight page once */
    eng_decode(c, toks, 1);
    long rss_first = rss_kib();
    double pp_sum = 0, tg_sum = 0;
    for (int r = 0; r < reps; r++) {
        eng_kv_clear(c);
        uint64_t a = cmn_now_ns();
        if (n_prompt > 0 && eng_decode(c, toks, (size_t)n_prompt)) {
            fprintf(stderr, "prefill failed\n");
            return 1;
        }
        uint64_t b = cmn_now_ns();
        /* generation from an empty cache, as llama-bench's tg test does */
        eng_kv_clear(c);
        eng_decode(c, toks, 1);
        uint64_t g0 = cmn_now_ns();
        for (int i = 0; i < n_gen; i++) {
            int32_t t = argmax(eng_get_logits(c), info.n_vocab);
            if (eng_decode(c, &t, 1)) {
                fprintf(stderr, "decode failed\n");
                return 1;
            }
        }
        uint64_t g1 = cmn_now_ns();
        if (n_prompt > 0)
            pp_sum += n_prompt / ((double)(b - a) / 1e9);
        tg_sum += n_gen / ((double)(g1 - g0) / 1e9);
    }
    printf("model %s (%s %s, %d layers, n_embd %d), %s\n", argv[1], info.arch, info.file_type,
           info.n_layer, info.n_embd, eng_cpu_features_string());
    printf("load %.1f ms; file %.1f MiB; RSS +%.1f MiB after load, +%.1f MiB after first token\n",
           (double)t_load / 1e6, (double)info.size_bytes / 1048576.0,
           (double)(rss_load - rss0) / 1024.0, (double)(rss_first - rss0) / 1024.0);
    printf("threads %d: pp%d %.1f tok/s, tg%d %.1f tok/s (mean of %d)\n", threads, n_prompt,
           pp_sum / reps, n_gen, tg_sum / reps, reps);
    free(toks);
    eng_context_free(c);
    eng_model_free(m);
    return 0;
}
