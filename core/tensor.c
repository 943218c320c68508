/* tensor: the sgemm wrapper, FLOP accounting and elementwise helpers. */
#include "tensor.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* The column sums of the bias gradients run over every row of a layer's gradient: compiled twice
 * (x86-64-v3 and the baseline), the loader picking the one the CPU supports, as in vmath.c. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ELBO_NO_CLONES)
#define TENSOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TENSOR_CLONES
#endif

/* Per-thread FLOP counter: each planner or trainer thread measures its own work. */
static _Thread_local uint64_t flop_count;

void tensor_set_blas_threads(int threads)
{
    openblas_set_num_threads(threads < 1 ? 1 : threads);
}

/* c (m, n; row stride ldc) = alpha a b^T + beta c for vectors a (m; stride sa) and b (n; stride
 * sb); beta = 0 overwrites c. */
TENSOR_CLONES static void outer(float *c, const float *a, size_t sa, const float *b, size_t sb,
                                int m, int n, float alpha, float beta, size_t ldc)
{
    for (int i = 0; i < m; i++) {
        float ai = a[(size_t)i * sa];
        float *restrict ci = c + (size_t)i * ldc;
        if (beta == 0.0f && sb == 1) {
            const float *restrict bv = b;
#pragma omp simd
            for (int j = 0; j < n; j++)
                ci[j] = alpha * (ai * bv[j]);
        } else if (beta == 0.0f) {
            for (int j = 0; j < n; j++)
                ci[j] = alpha * (ai * b[(size_t)j * sb]);
        } else {
            for (int j = 0; j < n; j++)
                ci[j] = beta * ci[j] + alpha * (ai * b[(size_t)j * sb]);
        }
    }
}

void tensor_gemm(float *c, const float *a, const float *b, int m, int n, int k, int trans_a,
                 int trans_b, float alpha, float beta, int lda, int ldb, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        /* An empty product: only the beta scaling remains. */
        int ld = ldc ? ldc : n;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ld + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ld + j];
        return;
    }
    if (!lda)
        lda = trans_a ? m : k;
    if (!ldb)
        ldb = trans_b ? k : n;
    if (!ldc)
        ldc = n;
    if (k == 1) {
        /* An outer product (the input gradient of a one-output layer): sgemm ran it at 1/20 of
         * its speed on larger k. */
        outer(c, a, trans_a ? 1 : (size_t)lda, b, trans_b ? (size_t)ldb : 1, m, n, alpha, beta,
              (size_t)ldc);
        flop_count += 2ull * (uint64_t)m * (uint64_t)n;
        return;
    }
    if ((m == 1 || n == 1) && beta == 0.0f) {
        /* sgemv scales c by beta, and 0 times a NaN left in c is NaN: beta = 0 must overwrite. */
        for (int i = 0; i < (n == 1 ? m : n); i++)
            c[(size_t)i * (n == 1 ? ldc : 1)] = 0.0f;
    }
    if (n == 1) {
        /* A matrix times a vector (a head's one output, its weight gradient): sgemm ran these
         * 10-20x slower than sgemv. c's column (stride ldc) = op(a) times op(b)'s column. */
        cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_a ? k : m,
                    trans_a ? m : k, alpha, a, lda, b, trans_b ? 1 : ldb, beta, c, ldc);
    } else if (m == 1) {
        /* c's row = op(a)'s row times op(b), i.e. c^T = op(b)^T op(a)^T. */
        cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, trans_b ? n : k,
                    trans_b ? k : n, alpha, b, ldb, a, trans_a ? lda : 1, beta, c, 1);
    } else {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc);
    }
    flop_count += 2ull * (uint64_t)m * (uint64_t)n * (uint64_t)k;
}

void tensor_linear_forward(float *out, const float *in, const float *w, const float *bias, int bt,
                           int ic, int oc)
{
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < bt; i++)
            memcpy(out + (size_t)i * oc, bias, sizeof(float) * (size_t)oc);
        beta = 1.0f;
    }
    tensor_gemm(out, in, w, bt, oc, ic, 0, 1, 1.0f, beta, 0, 0, 0);
}

void tensor_linear_backward_input(float *din, const float *dout, const float *w, int bt, int ic,
                                  int oc)
{
    tensor_gemm(din, dout, w, bt, ic, oc, 0, 0, 1.0f, 1.0f, 0, 0, 0);
}

/* dbias (oc) += column sums of dout (bt, oc), in double. */
TENSOR_CLONES static void bias_grad(float *dbias, const float *dout, int bt, int oc)
{
    /* Column sums in double, walking the rows in order (contiguous and vectorised across
     * columns; a column-by-column walk strides through memory and cost as much as the product).
     * Each column still adds its rows in order, so the sums are unchanged. */
    enum { CHUNK = 256 };
    double acc[CHUNK];
    for (int o0 = 0; o0 < oc; o0 += CHUNK) {
        int w = oc - o0 < CHUNK ? oc - o0 : CHUNK;
        for (int j = 0; j < w; j++)
            acc[j] = 0.0;
        for (int i = 0; i < bt; i++) {
            const float *row = dout + (size_t)i * oc + o0;
#pragma omp simd
            for (int j = 0; j < w; j++)
                acc[j] += row[j];
        }
        for (int j = 0; j < w; j++)
            dbias[o0 + j] += (float)acc[j];
    }
}

void tensor_linear_backward_weight(float *dw, float *dbias, const float *dout, const float *in,
                                   int bt, int ic, int oc)
{
    tensor_gemm(dw, dout, in, oc, ic, bt, 1, 0, 1.0f, 1.0f, 0, 0, 0);
    if (dbias)
        bias_grad(dbias, dout, bt, oc);
}

uint64_t tensor_flops(void)
{
    return flop_count;
}

void tensor_flops_reset(void)
{
    flop_count = 0;
}

void tensor_zero(float *x, size_t n)
{
    memset(x, 0, n * sizeof *x);
}

void tensor_copy(float *dst, const float *src, size_t n)
{
    memmove(dst, src, n * sizeof *dst);
}

void tensor_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void tensor_axpy(float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void tensor_scale(float *y, float a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] *= a;
}

void tensor_mul(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

double tensor_sum(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

double tensor_dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

double tensor_sumsq(const float *x, size_t n)
{
    return tensor_dot(x, x, n);
}

int tensor_all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

void tensor_copy_cols(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * ld_dst, src + (size_t)r * ld_src, sizeof(float) * (size_t)cols);
}

void tensor_add_cols(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        float *d = dst + (size_t)r * ld_dst;
        const float *s = src + (size_t)r * ld_src;
        for (int c = 0; c < cols; c++)
            d[c] += s[c];
    }
}
