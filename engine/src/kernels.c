/* Kernel dispatch and the scalar forward-pass ops. CPU features come from CPUID plus XGETBV (an
 * instruction set is only usable when the OS saves its registers) on x86, from the kernel's
 * hardware capabilities (getauxval(AT_HWCAP)) on AArch64, detected once; the tables are built
 * once under pthread_once so any thread may ask for them. */
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ENG_X86 1
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
/* the AArch64 HWCAP bits (Linux's uapi asm/hwcap.h), for C libraries that lack the names */
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1UL << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

static unsigned cpu_flags;
static struct eng_kernels k_scalar, k_avx2, k_avx512, k_neon;
static const struct eng_kernels *k_best;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#ifdef ENG_X86
static uint64_t xgetbv0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static unsigned detect(void)
{
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int osxsave = (c >> 27) & 1;
    int fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return 0;
    uint64_t xcr0 = xgetbv0();
    int os_avx = (xcr0 & 6) == 6, os_avx512 = (xcr0 & 0xE6) == 0xE6;
    if (!os_avx)
        return 0;
    if (fma)
        f |= ENG_CPU_FMA;
    if (f16c)
        f |= ENG_CPU_F16C;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if ((b >> 5) & 1)
            f |= ENG_CPU_AVX2;
        if (os_avx512) {
            if ((b >> 16) & 1)
                f |= ENG_CPU_AVX512F;
            if ((b >> 17) & 1)
                f |= ENG_CPU_AVX512DQ;
            if ((b >> 30) & 1)
                f |= ENG_CPU_AVX512BW;
            if ((b >> 31) & 1)
                f |= ENG_CPU_AVX512VL;
            if ((c >> 11) & 1)
                f |= ENG_CPU_AVX512VNNI;
        }
    }
    return f;
}
#elif defined(__aarch64__)
static unsigned detect(void)
{
    unsigned long hw = getauxval(AT_HWCAP);
    unsigned f = 0;
    if (hw & HWCAP_ASIMD)
        f |= ENG_CPU_ASIMD;
    if (hw & HWCAP_ASIMDDP)
        f |= ENG_CPU_ASIMDDP;
    if (hw & HWCAP_FPHP)
        f |= ENG_CPU_FPHP;
    if (hw & HWCAP_ASIMDHP)
        f |= ENG_CPU_ASIMDHP;
    return f;
}
#else
static unsigned detect(void)
{
    return 0;
}
#endif

static void scalar_axpy_f16(int n, float a, const eng_fp16 *x, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] += a * eng_fp16_to_fp32(x[i]);
}

static void scalar_axpy_f32(int n, float a, const float *x, float *y)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void scalar_attn_scores_f16(int hd, const eng_fp16 *k, size_t stride, int n_pos,
                                   const float *q, float scale, float *out)
{
    for (int p = 0; p < n_pos; p++)
        out[p] = eng_dot_f16_ref(hd, k + (size_t)p * stride, q) * scale;
}

static void scalar_attn_values_f16(int hd, const eng_fp16 *v, size_t stride, int n_pos,
                                   const float *w, float *out)
{
    for (int i = 0; i < hd; i++)
        out[i] = 0;
    for (int p = 0; p < n_pos; p++)
        scalar_axpy_f16(hd, w[p], v + (size_t)p * stride, out);
}

static void scalar_f32_to_f16(const float *x, eng_fp16 *y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = eng_fp32_to_fp16(x[i]);
}

#define AVX2_NEED (ENG_CPU_AVX2 | ENG_CPU_FMA | ENG_CPU_F16C)
#define AVX512_NEED \
    (AVX2_NEED | ENG_CPU_AVX512F | ENG_CPU_AVX512BW | ENG_CPU_AVX512VL | ENG_CPU_AVX512DQ)

static void init(void)
{
    cpu_flags = detect();
    k_scalar.name = "scalar";
    for (uint32_t t = 0; t < GGUF_TT_COUNT; t++) {
        const struct eng_type_traits *tr = eng_type_traits(t);
        k_scalar.dot[t] = tr ? tr->vec_dot_ref : NULL;
        k_scalar.panel[t] = eng_panel_ref(t);
    }
    k_scalar.quant_q8_0 = eng_quant_q8_0;
    k_scalar.quant_q8_K = eng_quant_q8_K;
    k_scalar.axpy_f16 = scalar_axpy_f16;
    k_scalar.axpy_f32 = scalar_axpy_f32;
    k_scalar.f32_to_f16 = scalar_f32_to_f16;
    k_scalar.attn_scores_f16 = scalar_attn_scores_f16;
    k_scalar.attn_values_f16 = scalar_attn_values_f16;
    k_scalar.exp_sum = eng_exp_sum;
    k_best = &k_scalar;
#ifdef ENG_X86
    if ((cpu_flags & AVX2_NEED) == AVX2_NEED) {
        k_avx2 = k_scalar;
        k_avx2.name = "avx2";
        eng_kernels_fill_avx2(&k_avx2);
        eng_panels_fill_avx2(&k_avx2);
        k_best = &k_avx2;
    }
    if ((cpu_flags & AVX512_NEED) == AVX512_NEED) {
        k_avx512 = k_avx2;
        k_avx512.name = "avx512";
        eng_kernels_fill_avx512(&k_avx512, cpu_flags);
        eng_panels_fill_avx512(&k_avx512, cpu_flags);
        k_best = &k_avx512;
    }
#endif
#if defined(__aarch64__)
    if (cpu_flags & ENG_CPU_ASIMD) {
        k_neon = k_scalar;
        k_neon.name = "neon";
        eng_kernels_fill_neon(&k_neon, cpu_flags);
        eng_panels_fill_neon(&k_neon, cpu_flags);
        k_neon.int8_dot = cpu_flags & ENG_CPU_ASIMDDP ? "sdot" : "vmull";
        k_best = &k_neon;
    }
#endif
    /* EMBER_KERNELS forces a set for comparisons; one this build or CPU cannot run leaves the
     * best set in place, and eng_kernels_best()->name then differs from the request (tests skip
     * by name on that) */
    const char *force = getenv("EMBER_KERNELS");
    const struct eng_kernels *sets[] = {&k_scalar, &k_avx2, &k_avx512, &k_neon};
    for (size_t i = 0; force && i < sizeof(sets) / sizeof(sets[0]); i++)
        if (sets[i]->name && strcmp(force, sets[i]->name) == 0)
            k_best = sets[i];
}

unsigned eng_cpu_features(void)
{
    pthread_once(&once, init);
    return cpu_flags;
}

const struct eng_kernels *eng_kernels_scalar(void)
{
    pthread_once(&once, init);
    return &k_scalar;
}

const struct eng_kernels *eng_kernels_avx2(void)
{
    pthread_once(&once, init);
    return k_avx2.name ? &k_avx2 : NULL;
}

const struct eng_kernels *eng_kernels_avx512(void)
{
    pthread_once(&once, init);
    return k_avx512.name ? &k_avx512 : NULL;
}

const struct eng_kernels *eng_kernels_neon(void)
{
    pthread_once(&once, init);
    return k_neon.name ? &k_neon : NULL;
}

const struct eng_kernels *eng_kernels_best(void)
{
    pthread_once(&once, init);
    return k_best;
}

/* ---- forward-pass ops ---- */

void eng_rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void eng_rope_angles(float *cs, int n_rot, int pos, float freq_base, float freq_scale,
                     const float *freq_factors)
{
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * freq_scale * pow(freq_base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= freq_factors[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

void eng_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox)
{
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float a = v[i0], b = v[i1];
            v[i0] = a * c - b * s;
            v[i1] = a * s + b * c;
        }
    }
}

void eng_rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
              float freq_scale, const float *freq_factors, int neox)
{
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * freq_scale * pow(freq_base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= freq_factors[i];
        float c = (float)cos(theta), s = (float)sin(theta);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float a = v[i0], b = v[i1];
            v[i0] = a * c - b * s;
            v[i1] = a * s + b * c;
        }
    }
}

void eng_softmax(float *x, int n)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

float eng_exp_sum(float *x, int n, float sub)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - sub);
        sum += x[i];
    }
    return (float)sum;
}

void eng_swiglu(float *out, const float *gate, const float *up, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
