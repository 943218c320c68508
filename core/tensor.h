/* tensor: row-major float matrices and the one wrapper over cblas_sgemm.
 *
 * Every matrix product in elbod goes through tensor_gemm (or the three layer-shaped forms below,
 * which call it), so BLAS threading, shapes and counting of FLOPs live in one place. Arrays are
 * plain row-major `float *` owned by the caller; shapes are written in the comments as (rows,
 * cols).
 */
#ifndef ELBO_TENSOR_H
#define ELBO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* Sets OpenBLAS to `threads` threads (our own threads already use the cores, so elbod uses 1:
 * OpenBLAS's threading made small products 2-6x slower on the 2-core machines we measured). */
void tensor_set_blas_threads(int threads);

/* c (m, n) = alpha * op(a) * op(b) + beta * c, with op(a) (m, k) and op(b) (k, n); trans_a/trans_b
 * say whether a/b are stored transposed. lda/ldb/ldc are the row strides of the stored arrays
 * (0 means dense). */
void tensor_gemm(float *c, const float *a, const float *b, int m, int n, int k, int trans_a,
                 int trans_b, float alpha, float beta, int lda, int ldb, int ldc);

/* The layer forms, for a linear map with weight w (oc, ic) and bias (oc) or NULL:
 * forward:      out (bt, oc) = in (bt, ic) w^T + bias        (out is overwritten)
 * input grad:   din (bt, ic) += dout (bt, oc) w
 * weight grad:  dw (oc, ic) += dout^T in,  dbias (oc) += column sums of dout (double sums) */
void tensor_linear_forward(float *out, const float *in, const float *w, const float *bias, int bt,
                           int ic, int oc);
void tensor_linear_backward_input(float *din, const float *dout, const float *w, int bt, int ic,
                                  int oc);
void tensor_linear_backward_weight(float *dw, float *dbias, const float *dout, const float *in,
                                   int bt, int ic, int oc);

/* Floating-point operations performed by tensor_gemm on the calling thread since the last reset
 * (2*m*n*k per call): what the benchmarks divide by time. */
uint64_t tensor_flops(void);
void tensor_flops_reset(void);

/* Elementwise helpers over n floats. */
void tensor_zero(float *x, size_t n);
void tensor_copy(float *dst, const float *src, size_t n);
void tensor_add(float *y, const float *x, size_t n);                 /* y += x */
void tensor_axpy(float *y, float a, const float *x, size_t n);       /* y += a * x */
void tensor_scale(float *y, float a, size_t n);                      /* y *= a */
void tensor_mul(float *y, const float *a, const float *b, size_t n); /* y = a * b */
double tensor_sum(const float *x, size_t n);                         /* double accumulation */
double tensor_dot(const float *a, const float *b, size_t n);         /* double accumulation */
double tensor_sumsq(const float *x, size_t n);                       /* double accumulation */
int tensor_all_finite(const float *x, size_t n);                     /* 1 when no NaN or Inf */

/* Copies a (rows, cols) block between row-strided arrays: dst[r*ld_dst + c] = src[r*ld_src + c].
 * Used to build concatenated layer inputs such as [h, z]. */
void tensor_copy_cols(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols);
/* The reverse direction for gradients: dst[r*ld_dst + c] += src[r*ld_src + c]. */
void tensor_add_cols(float *dst, int ld_dst, const float *src, int ld_src, int rows, int cols);

#endif
