/* vmath: vectorised exp, log, tanh, sigmoid, softplus, SiLU over float arrays.
 *
 * The kernels are the classic Cephes single-precision range reductions and minimax polynomials,
 * written branch-free (selects instead of ifs) so that each loop vectorises. Every public loop
 * is compiled twice (x86-64-v3, i.e. AVX2+FMA, and the baseline) and the dynamic loader picks the
 * one the CPU supports: the release build does not assume -march.
 */
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ELBO_NO_CLONES)
#define VM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* Multiplications and additions may fuse into FMA instructions (in the x86-64-v3 clones; the
 * baseline has none, so its results are unchanged): the polynomials run 25-35% faster and stay
 * within tests/check_vmath.c's bounds. ISO C mode (-std=c11) does not contract by itself. */
#pragma GCC optimize("fp-contract=fast")
#else
#define VM_CLONES
#endif

static inline float bits_to_float(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t float_to_bits(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* Round to nearest integer with the 1.5 * 2^23 trick: exact for |x| < 2^22 and vectorisable
 * without SSE4.1's roundps. */
static inline float round_nearest(float x)
{
    const float magic = 12582912.0f;
    return (x + magic) - magic;
}

static inline float exp_kernel(float x)
{
    const float hi = 88.72283935546875f, lo = -87.33654022216797f;
    float xc = x > hi ? hi : (x < lo ? lo : x);
    xc = xc == xc ? xc : 0.0f; /* NaN: computed on 0, replaced by NaN at the end */
    float n = round_nearest(xc * 1.44269504088896341f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * z + r + 1.0f;
    /* 2^n as two factors so that n = 128 (x near the top of the range) does not overflow the
     * exponent field. */
    int32_t ni = (int32_t)n;
    int32_t n1 = ni / 2, n2 = ni - n1;
    y = y * bits_to_float((n1 + 127) << 23) * bits_to_float((n2 + 127) << 23);
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* exp_kernel's polynomial on the reduced argument, scaled by 2^n for -126 <= n <= 127, where 2^n
 * is one normal float: the single scaling is exact, or the one rounding into the subnormal range,
 * so it gives what exp_kernel's two factors give. */
static inline float exp_core(float xc)
{
    float n = round_nearest(xc * 1.44269504088896341f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * z + r + 1.0f;
    return y * bits_to_float(((int32_t)n + 127) << 23);
}

/* exp_kernel for x <= 0 or NaN, the same bit for bit with less work (the sigmoid's, SiLU's and
 * softplus's exp(-|x|)): no overflow side, and the NaN test and the clamp at lo are one select
 * (x >= lo is false for both). */
static inline float exp_nonpos_kernel(float x)
{
    const float lo = -87.33654022216797f;
    float y = exp_core(x >= lo ? x : lo);
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* exp_kernel for 0 <= x <= 18 or NaN (tanh's exp(2|x|)), the same bit for bit: no clamp. */
static inline float exp_small_kernel(float x)
{
    float y = exp_core(x == x ? x : 0.0f);
    return x != x ? x : y;
}

static inline float log_kernel(float x)
{
    int32_t bits = float_to_bits(x);
    float e = (float)(((bits >> 23) & 0xff) - 126);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f000000); /* mantissa in [0.5, 1) */
    int small = m < 0.707106781186547524f;
    e = small ? e - 1.0f : e;
    float t = small ? m + m - 1.0f : m - 1.0f;
    float z = t * t;
    float p = 7.0376836292e-2f;
    p = p * t + -1.1514610310e-1f;
    p = p * t + 1.1676998740e-1f;
    p = p * t + -1.2420140846e-1f;
    p = p * t + 1.4249322787e-1f;
    p = p * t + -1.6668057665e-1f;
    p = p * t + 2.0000714765e-1f;
    p = p * t + -2.4999993993e-1f;
    p = p * t + 3.3333331174e-1f;
    float y = p * t * z;
    y = y + e * -2.12194440e-4f;
    y = y - 0.5f * z;
    y = t + y + e * 0.693359375f;
    y = x == INFINITY ? INFINITY : y;
    y = x == 0.0f ? -INFINITY : y;
    y = x < 0.0f ? NAN : y;
    return x != x ? x : y;
}

static inline float tanh_kernel(float x)
{
    float ax = fabsf(x);
    /* Small |x|: odd polynomial, accurate where 1 - 2/(e^2x + 1) would cancel. */
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z + -5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z + -3.33332819422e-1f;
    float small = p * z * x + x;
    float ac = ax > 9.0f ? 9.0f : ax;
    float big = 1.0f - 2.0f / (exp_small_kernel(ac + ac) + 1.0f);
    big = copysignf(big, x);
    return ax < 0.625f ? small : big;
}

static inline float sigmoid_kernel(float x)
{
    float e = exp_nonpos_kernel(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

static inline float log1p_small(float e)
{
    /* log(1 + e) for e in [0, 1], corrected for the rounding of 1 + e (Goldberg's trick). */
    float u = 1.0f + e;
    float d = u - 1.0f;
    float l = log_kernel(u);
    return d == 0.0f ? e : l * (e / d);
}

VM_CLONES void vm_exp(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = exp_kernel(x[i]);
}

VM_CLONES void vm_log(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = log_kernel(x[i]);
}

VM_CLONES void vm_tanh(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = tanh_kernel(x[i]);
}

VM_CLONES void vm_sigmoid(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = sigmoid_kernel(x[i]);
}

VM_CLONES void vm_softplus(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float pos = v > 0.0f ? v : 0.0f;
        y[i] = pos + log1p_small(exp_nonpos_kernel(-fabsf(v)));
    }
}

VM_CLONES void vm_silu(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * sigmoid_kernel(x[i]);
}

void vm_thread_init(void)
{
#if defined(__SSE__)
    /* FTZ (bit 15) and DAZ (bit 6). */
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}
