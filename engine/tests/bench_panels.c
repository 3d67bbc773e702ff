/* Panel kernel throughput (label bench, run by hand): each packed type's kernels of every kernel
 * set the CPU has, on a matrix larger than the caches, for 1 token (decode: weight GB/s) and 4
 * and 16 tokens (prefill: GMAC/s). CPU time per call (CLOCK_THREAD_CPUTIME_ID), best of reps, so
 * a busy machine disturbs it less than wall time would.
 *   engcore_bench_panels [rows=4096] [cols=4096] [reps=5] */
#include "kernels.h"
#include "pack.h"
#include "quant.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int64_t rows = argc > 1 ? atoll(argv[1]) : 4096, cols = argc > 2 ? atoll(argv[2]) : 4096;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    const uint32_t types[] = {GGUF_TT_F16, GGUF_TT_BF16, GGUF_TT_Q8_0, GGUF_TT_Q4_0};
    const struct eng_kernels *sets[] = {eng_kernels_scalar(), eng_kernels_avx2(),
                                        eng_kernels_avx512(), eng_kernels_neon()};
    float *xf = malloc(sizeof(float) * (size_t)cols * 16);
    for (int64_t i = 0; i < cols * 16; i++)
        xf[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    printf("%-7s %-5s %10s %12s %12s\n", "kernels", "type", "1 tok GB/s", "4 tok GMAC/s",
           "16 tok GMAC/s");
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        uint32_t type = types[ti];
        const struct eng_type_traits *tr = eng_type_traits(type);
        size_t rb = eng_row_bytes(type, cols), bytes = rb * (size_t)rows;
        char *plain = malloc(bytes), *packed = malloc(bytes);
        float *wrow = malloc(sizeof(float) * (size_t)cols);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t k = 0; k < cols; k++)
                wrow[k] = (float)(((r + 3) * (k + 5)) % 255) / 127.0f - 1.0f;
            tr->from_float(wrow, plain + (size_t)r * rb, cols);
        }
        eng_pack_matrix(type, cols, rows, plain, packed);
        int quant = tr->vec_dot_type == GGUF_TT_Q8_0;
        size_t arow = quant ? eng_row_bytes(GGUF_TT_Q8_0, cols) : sizeof(float) * (size_t)cols;
        size_t nb = (size_t)cols / QK8_0;
        char *act = malloc(arow * 16);
        float *ad = malloc(sizeof(float) * nb * 16);
        int32_t *as = malloc(sizeof(int32_t) * nb * 16);
        for (int t = 0; t < 16; t++) {
            if (quant) {
                eng_quant_q8_0(xf + (size_t)t * cols, act + (size_t)t * arow, cols);
                eng_act_q8_0_aux(act + (size_t)t * arow, cols, ad + nb * t, as + nb * t);
            } else {
                memcpy(act + (size_t)t * arow, xf + (size_t)t * cols, arow);
            }
        }
        struct eng_act ea = {act, arow, ad, as, nb};
        float *y = malloc(sizeof(float) * (size_t)rows * 16);
        for (size_t si = 0; si < sizeof(sets) / sizeof(sets[0]); si++) {
            if (!sets[si] || !sets[si]->panel[type])
                continue;
            const int toks[] = {1, 4, 16};
            double best[3];
            for (int k = 0; k < 3; k++) {
                best[k] = 1e30;
                int r_n = sets[si] == eng_kernels_scalar() ? 1 : reps;
                for (int r = 0; r < r_n; r++) {
                    double t0 = cpu_s();
                    sets[si]->panel[type](cols, packed, (int)(rows / ENG_PANEL), &ea, toks[k], y,
                                          (size_t)rows);
                    double dt = cpu_s() - t0;
                    best[k] = dt < best[k] ? dt : best[k];
                }
            }
            double macs = (double)rows * (double)cols;
            printf("%-7s %-5s %10.2f %12.2f %12.2f\n", sets[si]->name, tr->name,
                   (double)bytes / best[0] * 1e-9, 4 * macs / best[1] * 1e-9,
                   16 * macs / best[2] * 1e-9);
        }
        free(plain);
        free(packed);
        free(wrow);
        free(act);
        free(ad);
        free(as);
        free(y);
    }
    free(xf);
    return 0;
}
