/* AArch64 only: NEON's forward pass performs exactly the scalar set's operations (docs/engine.md,
 * "NEON"): its panels, activation quantizers and F16-cache attention kernels are the reference's
 * arithmetic, and the ops without NEON kernels are shared scalar code. So the logits must be
 * those of EMBER_KERNELS=scalar, bit for bit, for every stories260K file (F32, F16, Q8_0, Q4_0):
 * a batched prefill of 40 tokens (multi-token tiles) and 20 one-token steps (the four-panel
 * decode path), each with the weights copied and packed and with [engine] mmap (plain rows read
 * by the row dots, panels packed on the fly). The kernel set is chosen once per process, so the
 * scalar run happens in a child forked before the engine is touched, into shared memory. Under
 * scripts/cross this runs with qemu's cortex-a76 and max (sdot) and cortex-a53 (vmull). */
#include "ember_test.h"
#include "engine/engine.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_PREFILL 40
#define N_DECODE  20
#define N_STEPS   (N_PREFILL + N_DECODE)
#define MAX_VOCAB 512

static const char *const files[] = {"stories260K.gguf", "stories260K-f16.gguf",
                                    "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"};
#define N_FILES (sizeof(files) / sizeof(files[0]))
#define N_RUNS  (2 * N_FILES) /* each file copied and under mmap */

/* The logits of one file and load mode: N_STEPS rows of MAX_VOCAB. Returns 0 or a message. */
static const char *run(const char *path, int use_mmap, float *out)
{
    static char err[256];
    struct eng_model_params mp;
    eng_model_params_defaults(&mp);
    mp.use_mmap = use_mmap;
    struct eng_model *m;
    if (eng_model_load(path, &mp, &m, err, sizeof(err)))
        return err;
    struct eng_context_params cp;
    eng_context_params_defaults(&cp);
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.n_batch = N_PREFILL;
    cp.logits_all = 1;
    struct eng_context *c;
    if (eng_context_new(m, &cp, &c, err, sizeof(err))) {
        eng_model_free(m);
        return err;
    }
    const char *bad = NULL;
    if (eng_n_vocab(c) != MAX_VOCAB) {
        bad = "unexpected vocabulary size";
        goto out;
    }
    int32_t tok[N_STEPS];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    tok[0] = 1; /* BOS */
    for (int i = 1; i < N_STEPS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)(3 + (s >> 33) % (MAX_VOCAB - 3));
    }
    if (eng_decode(c, tok, N_PREFILL)) {
        bad = "prefill failed";
        goto out;
    }
    for (int t = 0; t < N_PREFILL; t++)
        memcpy(out + (size_t)t * MAX_VOCAB, eng_get_logits_ith(c, (size_t)t),
               sizeof(float) * MAX_VOCAB);
    for (int t = N_PREFILL; t < N_STEPS; t++) {
        if (eng_decode(c, &tok[t], 1)) {
            bad = "decode failed";
            goto out;
        }
        memcpy(out + (size_t)t * MAX_VOCAB, eng_get_logits(c), sizeof(float) * MAX_VOCAB);
    }
out:
    eng_context_free(c);
    eng_model_free(m);
    return bad;
}

static int run_all(float *out, int *status, const char *kernels)
{
    char path[1024];
    for (size_t f = 0; f < N_FILES; f++) {
        snprintf(path, sizeof(path), "%s/models/%s", et_shared_dir(), files[f]);
        for (int mm = 0; mm < 2; mm++) {
            const char *e = run(path, mm, out + (2 * f + (size_t)mm) * N_STEPS * MAX_VOCAB);
            status[2 * f + (size_t)mm] = e == NULL;
            if (e)
                fprintf(stderr, "%s %s%s: %s\n", kernels, files[f], mm ? " (mmap)" : "", e);
        }
    }
    return 0;
}

int main(void)
{
    char path[1024];
    for (size_t f = 0; f < N_FILES; f++) {
        snprintf(path, sizeof(path), "%s/models/%s", et_shared_dir(), files[f]);
        if (access(path, R_OK) != 0) {
            printf("SKIPPED: %s is missing (../shared/models)\n", path);
            return ET_SKIP;
        }
    }
    size_t floats = N_RUNS * (size_t)N_STEPS * MAX_VOCAB;
    size_t bytes = sizeof(float) * floats + sizeof(int) * N_RUNS;
    float *ref = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(ref != MAP_FAILED);
    if (ref == MAP_FAILED)
        return et_finish();
    int *ref_ok = (int *)(ref + floats);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setenv("EMBER_KERNELS", "scalar", 1);
        run_all(ref, ref_ok, "scalar");
        _exit(strstr(eng_cpu_features_string(), "kernels: scalar") ? 0 : 3);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "scalar child: status %d", st);

    unsetenv("EMBER_KERNELS");
    printf("cpu: %s\n", eng_cpu_features_string());
    if (!strstr(eng_cpu_features_string(), "kernels: neon")) {
        printf("SKIPPED: no NEON kernel set here (%s)\n", eng_cpu_features_string());
        return ET_SKIP;
    }
    float *got = malloc(sizeof(float) * floats);
    int got_ok[N_RUNS];
    CHECK(got != NULL);
    if (!got)
        return et_finish();
    run_all(got, got_ok, "neon");
    for (size_t r = 0; r < N_RUNS; r++) {
        const char *name = files[r / 2], *mode = r % 2 ? "mmap" : "copied";
        CHECK_MSG(ref_ok[r] && got_ok[r], "%s (%s) did not run", name, mode);
        if (!ref_ok[r] || !got_ok[r])
            continue;
        int first = -1, n_diff = 0;
        const float *a = ref + r * N_STEPS * MAX_VOCAB, *b = got + r * N_STEPS * MAX_VOCAB;
        for (int i = 0; i < N_STEPS * MAX_VOCAB; i++)
            if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
                n_diff++;
                if (first < 0)
                    first = i;
            }
        CHECK_MSG(n_diff == 0, "%s (%s): %d logits differ, first at token %d: %.9g vs %.9g", name,
                  mode, n_diff, first / MAX_VOCAB, first >= 0 ? b[first] : 0.0,
                  first >= 0 ? a[first] : 0.0);
        printf("%-22s %-6s %d tokens x %d logits, neon == scalar bit for bit: %s\n", name, mode,
               N_STEPS, MAX_VOCAB, n_diff ? "NO" : "yes");
    }
    free(got);
    munmap(ref, bytes);
    return et_finish();
}
