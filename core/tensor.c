/* tensor: the sgemm wrapper, FLOP accounting and elementwise helpers. */
#include "tensor.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Per-thread FLOP counter: each planner or trainer thread measures its own work. */
static _Thread_local uint64_t flop_count;

void tensor_set_blas_threads(int threads)
{
    openblas_set_num_threads(threads < 1 ? 1 : threads);
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
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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

void tensor_linear_backward_weight(float *dw, float *dbias, const float *dout, const float *in,
                                   int bt, int ic, int oc)
{
    tensor_gemm(dw, dout, in, oc, ic, bt, 1, 0, 1.0f, 1.0f, 0, 0, 0);
    if (dbias) {
        /* Column sums in double, walking the rows in order (contiguous and vectorised across
         * columns; a column-by-column walk strides through memory and cost as much as the
         * product). Each column still adds its rows in order, so the sums are unchanged. */
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
