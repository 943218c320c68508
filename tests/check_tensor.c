/* check_tensor: tests of core/tensor: tensor_gemm against a naive double loop for every
 * transpose combination, odd shapes, alpha/beta, row strides and empty products; the three layer
 * forms; the per-thread FLOP counter; the elementwise helpers and the column copies. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"

/* A value no computation here produces: marks padding that must stay untouched. */
#define SENTINEL -12345.0f

/* An assertion for hot loops: libcheck's ck_assert records a mark point on every success, which
 * costs a pipe write per call. */
#define check_or_abort(cond, ...)      \
    do {                               \
        if (!(cond))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

static float *alloc_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_sentinel(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = SENTINEL;
}

/* op(a)[i][p] for a stored (m, k) with stride lda, or (k, m) when transposed. */
static double op_at(const float *a, int trans, int ld, int i, int p)
{
    return trans ? a[(size_t)p * ld + i] : a[(size_t)i * ld + p];
}

/* Checks c against alpha * op(a) op(b) + beta * c0 computed in double. The tolerance is the
 * standard bound for a float dot product of length k, (k + 2) eps times the sum of the absolute
 * terms, so any wrong index or missing term fails. Padding columns of c must be unchanged. */
static void check_gemm(const float *c, const float *c0, const float *a, const float *b, int m,
                       int n, int k, int ta, int tb, float alpha, float beta, int lda, int ldb,
                       int ldc, const char *what)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0.0, sabs = 0.0;
            for (int p = 0; p < k; p++) {
                double t = op_at(a, ta, lda, i, p) * op_at(b, tb, ldb, p, j);
                s += t;
                sabs += fabs(t);
            }
            double cprev = beta == 0.0f ? 0.0 : (double)beta * c0[(size_t)i * ldc + j];
            double want = (double)alpha * s + cprev;
            double scale = fabs((double)alpha) * sabs + fabs(cprev);
            double tol = (k + 2) * (double)FLT_EPSILON * scale + 1e-30;
            double got = c[(size_t)i * ldc + j];
            check_or_abort(fabs(got - want) <= tol,
                           "%s: m=%d n=%d k=%d ta=%d tb=%d alpha=%g beta=%g: c[%d][%d] = %.9g, "
                           "want %.9g (tol %.3g)",
                           what, m, n, k, ta, tb, alpha, beta, i, j, got, want, tol);
        }
        for (int j = n; j < ldc; j++)
            check_or_abort(c[(size_t)i * ldc + j] == c0[(size_t)i * ldc + j],
                           "%s: padding c[%d][%d] written", what, i, j);
    }
}

/* Runs one gemm case with random a, b, c (strides padded by the given extra columns) and checks
 * it. Passing 0 for lda/ldb/ldc (dense) is exercised when the extra padding is 0. */
static void run_gemm_case(int m, int n, int k, int ta, int tb, float alpha, float beta, int pad,
                          rng_t *r)
{
    int a_rows = ta ? k : m, a_cols = ta ? m : k;
    int b_rows = tb ? n : k, b_cols = tb ? k : n;
    int lda = a_cols + pad, ldb = b_cols + pad + 1, ldc = n + pad + 2;
    if (pad == 0) {
        ldb = b_cols;
        ldc = n;
    }
    float *a = alloc_floats((size_t)a_rows * lda);
    float *b = alloc_floats((size_t)b_rows * ldb);
    float *c = alloc_floats((size_t)m * ldc);
    float *c0 = alloc_floats((size_t)m * ldc);
    fill_uniform(a, (size_t)a_rows * lda, -1.0f, 1.0f, r);
    fill_uniform(b, (size_t)b_rows * ldb, -1.0f, 1.0f, r);
    fill_uniform(c, (size_t)m * ldc, -1.0f, 1.0f, r);
    for (int i = 0; i < m; i++)
        for (int j = n; j < ldc; j++)
            c[(size_t)i * ldc + j] = SENTINEL;
    memcpy(c0, c, sizeof(float) * (size_t)m * ldc);
    tensor_gemm(c, a, b, m, n, k, ta, tb, alpha, beta, pad ? lda : 0, pad ? ldb : 0, pad ? ldc : 0);
    check_gemm(c, c0, a, b, m, n, k, ta, tb, alpha, beta, lda, ldb, ldc, "gemm");
    free(a);
    free(b);
    free(c);
    free(c0);
}

static const int gemm_shapes[][3] = {
    {1, 1, 1},  {7, 13, 5},  {33, 17, 65}, {2, 1, 3},   {1, 9, 40},
    {17, 1, 1}, {5, 128, 1}, {64, 64, 64}, {3, 100, 7}, {31, 33, 127},
};
#define N_SHAPES ((int)(sizeof gemm_shapes / sizeof gemm_shapes[0]))

START_TEST(test_gemm_transposes)
{
    /* _i is the transpose combination: 0 NN, 1 NT, 2 TN, 3 TT. */
    int ta = _i >> 1, tb = _i & 1;
    rng_t r;
    rng_seed(&r, 100, (uint64_t)_i);
    for (int s = 0; s < N_SHAPES; s++)
        run_gemm_case(gemm_shapes[s][0], gemm_shapes[s][1], gemm_shapes[s][2], ta, tb, 1.0f, 0.0f,
                      0, &r);
}
END_TEST

START_TEST(test_gemm_alpha_beta)
{
    const float ab[][2] = {{1.0f, 1.0f}, {0.5f, -1.5f}, {-2.0f, 1.0f}, {0.0f, 2.0f}, {3.0f, 0.25f}};
    rng_t r;
    rng_seed(&r, 101, 0);
    for (int t = 0; t < 4; t++)
        for (size_t q = 0; q < sizeof ab / sizeof ab[0]; q++)
            for (int s = 0; s < N_SHAPES; s += 2)
                run_gemm_case(gemm_shapes[s][0], gemm_shapes[s][1], gemm_shapes[s][2], t >> 1,
                              t & 1, ab[q][0], ab[q][1], 0, &r);
}
END_TEST

START_TEST(test_gemm_strided)
{
    rng_t r;
    rng_seed(&r, 102, 0);
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < N_SHAPES; s++)
            for (int pad = 1; pad <= 5; pad += 4)
                run_gemm_case(gemm_shapes[s][0], gemm_shapes[s][1], gemm_shapes[s][2], t >> 1,
                              t & 1, 0.75f, (s & 1) ? 0.0f : -0.5f, pad, &r);
}
END_TEST

START_TEST(test_gemm_beta_zero_ignores_c)
{
    /* beta = 0 overwrites c: NaN garbage in c must not leak into the result. */
    rng_t r;
    rng_seed(&r, 103, 0);
    enum { M = 5, N = 6, K = 7 };
    float a[M * K], b[K * N], c[M * N], c0[M * N];
    fill_uniform(a, M * K, -1.0f, 1.0f, &r);
    fill_uniform(b, K * N, -1.0f, 1.0f, &r);
    for (int i = 0; i < M * N; i++)
        c[i] = NAN;
    memcpy(c0, c, sizeof c);
    tensor_gemm(c, a, b, M, N, K, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    ck_assert(tensor_all_finite(c, M * N));
    check_gemm(c, c0, a, b, M, N, K, 0, 0, 1.0f, 0.0f, K, N, N, "gemm beta 0");
}
END_TEST

START_TEST(test_gemm_empty)
{
    float c[12], c0[12];
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    for (int i = 0; i < 12; i++)
        c[i] = (float)i - 3.0f;
    memcpy(c0, c, sizeof c);
    tensor_flops_reset();
    /* k = 0: the product is empty, c = beta c (row stride honoured). */
    tensor_gemm(c, a, b, 2, 3, 0, 0, 0, 1.0f, 2.0f, 0, 0, 4);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            ck_assert_float_eq(c[i * 4 + j], j < 3 ? 2.0f * c0[i * 4 + j] : c0[i * 4 + j]);
    /* k = 0 and beta = 0: zeros, even over NaN. */
    for (int i = 0; i < 12; i++)
        c[i] = NAN;
    tensor_gemm(c, a, b, 3, 4, 0, 1, 1, 1.0f, 0.0f, 0, 0, 0);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(c[i], 0.0f);
    /* m = 0 or n = 0: nothing is touched. */
    memcpy(c, c0, sizeof c);
    tensor_gemm(c, a, b, 0, 3, 2, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    tensor_gemm(c, a, b, 3, 0, 2, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    tensor_gemm(c, a, b, -1, 3, 2, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    ck_assert_mem_eq(c, c0, sizeof c);
    ck_assert_uint_eq(tensor_flops(), 0);
}
END_TEST

/* out (bt, oc) = in (bt, ic) w^T + bias, in double. */
static void ref_linear(double *out, const float *in, const float *w, const float *bias, int bt,
                       int ic, int oc)
{
    for (int i = 0; i < bt; i++)
        for (int o = 0; o < oc; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int p = 0; p < ic; p++)
                s += (double)in[(size_t)i * ic + p] * w[(size_t)o * ic + p];
            out[(size_t)i * oc + o] = s;
        }
}

/* |got - want| <= tol over n, tol scaled for dot products of length len of O(1) values. */
static void check_close(const float *got, const double *want, size_t n, double tol,
                        const char *what)
{
    for (size_t i = 0; i < n; i++)
        check_or_abort(fabs(got[i] - want[i]) <= tol * (1.0 + fabs(want[i])),
                       "%s[%zu] = %.9g, want %.9g", what, i, (double)got[i], want[i]);
}

/* (bt, ic, oc); oc = 300 and 600 cross the 256-column chunks of the bias sums. */
static const int linear_shapes[][3] = {{1, 1, 1},  {1, 7, 3},   {9, 5, 11}, {32, 48, 16},
                                       {3, 65, 1}, {5, 3, 300}, {2, 1, 600}};
#define N_LINEAR ((int)(sizeof linear_shapes / sizeof linear_shapes[0]))

START_TEST(test_linear_forward)
{
    rng_t r;
    rng_seed(&r, 200, 0);
    for (int s = 0; s < N_LINEAR; s++) {
        int bt = linear_shapes[s][0], ic = linear_shapes[s][1], oc = linear_shapes[s][2];
        float *in = alloc_floats((size_t)bt * ic), *w = alloc_floats((size_t)oc * ic);
        float *bias = alloc_floats((size_t)oc), *out = alloc_floats((size_t)bt * oc);
        double *want = malloc(sizeof(double) * (size_t)bt * oc);
        ck_assert_ptr_nonnull(want);
        fill_uniform(in, (size_t)bt * ic, -1.0f, 1.0f, &r);
        fill_uniform(w, (size_t)oc * ic, -1.0f, 1.0f, &r);
        fill_uniform(bias, (size_t)oc, -2.0f, 2.0f, &r);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            /* out is overwritten: garbage (NaN) before the call must not matter. */
            for (int i = 0; i < bt * oc; i++)
                out[i] = NAN;
            tensor_linear_forward(out, in, w, with_bias ? bias : NULL, bt, ic, oc);
            ref_linear(want, in, w, with_bias ? bias : NULL, bt, ic, oc);
            check_close(out, want, (size_t)bt * oc, (ic + 2) * (double)FLT_EPSILON,
                        with_bias ? "forward with bias" : "forward without bias");
        }
        free(in);
        free(w);
        free(bias);
        free(out);
        free(want);
    }
}
END_TEST

START_TEST(test_linear_forward_empty_input)
{
    /* ic = 0: the output is the bias (or zero), whatever was there. */
    float out[6], bias[3] = {1.0f, -2.0f, 3.0f}, dummy[1] = {0};
    for (int i = 0; i < 6; i++)
        out[i] = NAN;
    tensor_linear_forward(out, dummy, dummy, bias, 2, 0, 3);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(out[i], bias[i % 3]);
    for (int i = 0; i < 6; i++)
        out[i] = NAN;
    tensor_linear_forward(out, dummy, dummy, NULL, 2, 0, 3);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(out[i], 0.0f);
}
END_TEST

START_TEST(test_linear_backward_input)
{
    rng_t r;
    rng_seed(&r, 201, 0);
    for (int s = 0; s < N_LINEAR; s++) {
        int bt = linear_shapes[s][0], ic = linear_shapes[s][1], oc = linear_shapes[s][2];
        float *dout = alloc_floats((size_t)bt * oc), *w = alloc_floats((size_t)oc * ic);
        float *din = alloc_floats((size_t)bt * ic);
        double *want = malloc(sizeof(double) * (size_t)bt * ic);
        ck_assert_ptr_nonnull(want);
        fill_uniform(dout, (size_t)bt * oc, -1.0f, 1.0f, &r);
        fill_uniform(w, (size_t)oc * ic, -1.0f, 1.0f, &r);
        fill_uniform(din, (size_t)bt * ic, -1.0f, 1.0f, &r);
        /* din += dout w: the previous contents are kept. */
        for (int i = 0; i < bt; i++)
            for (int p = 0; p < ic; p++) {
                double acc = din[(size_t)i * ic + p];
                for (int o = 0; o < oc; o++)
                    acc += (double)dout[(size_t)i * oc + o] * w[(size_t)o * ic + p];
                want[(size_t)i * ic + p] = acc;
            }
        tensor_linear_backward_input(din, dout, w, bt, ic, oc);
        check_close(din, want, (size_t)bt * ic, (oc + 3) * (double)FLT_EPSILON, "din");
        free(dout);
        free(w);
        free(din);
        free(want);
    }
}
END_TEST

START_TEST(test_linear_backward_weight)
{
    rng_t r;
    rng_seed(&r, 202, 0);
    for (int s = 0; s < N_LINEAR; s++) {
        int bt = linear_shapes[s][0], ic = linear_shapes[s][1], oc = linear_shapes[s][2];
        float *dout = alloc_floats((size_t)bt * oc), *in = alloc_floats((size_t)bt * ic);
        float *dw = alloc_floats((size_t)oc * ic), *dbias = alloc_floats((size_t)oc);
        double *want_w = malloc(sizeof(double) * (size_t)oc * ic);
        double *want_b = malloc(sizeof(double) * (size_t)oc);
        ck_assert(want_w && want_b);
        fill_uniform(dout, (size_t)bt * oc, -1.0f, 1.0f, &r);
        fill_uniform(in, (size_t)bt * ic, -1.0f, 1.0f, &r);
        fill_uniform(dw, (size_t)oc * ic, -1.0f, 1.0f, &r);
        fill_uniform(dbias, (size_t)oc, -1.0f, 1.0f, &r);
        /* dw += dout^T in, dbias += column sums of dout: previous contents kept. */
        for (int o = 0; o < oc; o++) {
            double sb = dbias[o];
            for (int i = 0; i < bt; i++)
                sb += dout[(size_t)i * oc + o];
            want_b[o] = sb;
            for (int p = 0; p < ic; p++) {
                double acc = dw[(size_t)o * ic + p];
                for (int i = 0; i < bt; i++)
                    acc += (double)dout[(size_t)i * oc + o] * in[(size_t)i * ic + p];
                want_w[(size_t)o * ic + p] = acc;
            }
        }
        float *dw_nobias = alloc_floats((size_t)oc * ic);
        memcpy(dw_nobias, dw, sizeof(float) * (size_t)oc * ic);
        tensor_linear_backward_weight(dw, dbias, dout, in, bt, ic, oc);
        check_close(dw, want_w, (size_t)oc * ic, (bt + 3) * (double)FLT_EPSILON, "dw");
        /* The bias sums run in double: one rounding. */
        check_close(dbias, want_b, (size_t)oc, 2.0 * FLT_EPSILON, "dbias");
        /* dbias may be NULL. */
        tensor_linear_backward_weight(dw_nobias, NULL, dout, in, bt, ic, oc);
        check_close(dw_nobias, want_w, (size_t)oc * ic, (bt + 3) * (double)FLT_EPSILON,
                    "dw (no bias)");
        free(dout);
        free(in);
        free(dw);
        free(dbias);
        free(dw_nobias);
        free(want_w);
        free(want_b);
    }
}
END_TEST

START_TEST(test_linear_bias_sum_double)
{
    /* 2^20 rows of 0.1: a float running sum drifts by ~1e-2 relative; a double sum does not. */
    enum { BT = 1 << 20 };
    float *dout = alloc_floats(BT), *in = alloc_floats(BT);
    for (int i = 0; i < BT; i++) {
        dout[i] = 0.1f;
        in[i] = 0.0f;
    }
    float dw = 0.0f, dbias = 0.0f;
    tensor_linear_backward_weight(&dw, &dbias, dout, in, BT, 1, 1);
    double want = (double)BT * 0.1f;
    ck_assert_double_le(fabs(dbias - want), FLT_EPSILON * want);
    ck_assert_float_eq(dw, 0.0f);
    free(dout);
    free(in);
}
END_TEST

START_TEST(test_flops)
{
    float a[7 * 13], b[13 * 5], c[7 * 5];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    tensor_flops_reset();
    ck_assert_uint_eq(tensor_flops(), 0);
    tensor_gemm(c, a, b, 7, 5, 13, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    ck_assert_uint_eq(tensor_flops(), 2ull * 7 * 5 * 13);
    tensor_gemm(c, a, b, 5, 7, 13, 1, 1, 1.0f, 0.0f, 0, 0, 0);
    ck_assert_uint_eq(tensor_flops(), 4ull * 7 * 5 * 13);
    /* The layer forms count their products: 2 bt ic oc each. */
    tensor_flops_reset();
    float in[3 * 13], w[5 * 13], out[3 * 5], bias[5] = {0};
    memset(in, 0, sizeof in);
    memset(w, 0, sizeof w);
    tensor_linear_forward(out, in, w, bias, 3, 13, 5);
    ck_assert_uint_eq(tensor_flops(), 2ull * 3 * 13 * 5);
    tensor_linear_backward_input(in, out, w, 3, 13, 5);
    tensor_linear_backward_weight(w, bias, out, in, 3, 13, 5);
    ck_assert_uint_eq(tensor_flops(), 6ull * 3 * 13 * 5);
    tensor_flops_reset();
    ck_assert_uint_eq(tensor_flops(), 0);
}
END_TEST

static void *flops_thread(void *arg)
{
    uint64_t *result = arg;
    float a[16] = {0}, b[16] = {0}, c[16];
    tensor_flops_reset();
    tensor_gemm(c, a, b, 4, 4, 4, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    *result = tensor_flops();
    return NULL;
}

START_TEST(test_flops_per_thread)
{
    float a[9] = {0}, b[9] = {0}, c[9];
    tensor_flops_reset();
    tensor_gemm(c, a, b, 3, 3, 3, 0, 0, 1.0f, 0.0f, 0, 0, 0);
    uint64_t other = 0;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, flops_thread, &other), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_uint_eq(other, 2ull * 4 * 4 * 4);
    ck_assert_uint_eq(tensor_flops(), 2ull * 3 * 3 * 3);
}
END_TEST

START_TEST(test_elementwise)
{
    enum { N = 37 };
    rng_t r;
    rng_seed(&r, 300, 0);
    float x[N + 1], y[N + 1], y0[N], a[N], b[N];
    fill_uniform(x, N, -2.0f, 2.0f, &r);
    fill_uniform(y0, N, -2.0f, 2.0f, &r);
    fill_uniform(a, N, -2.0f, 2.0f, &r);
    fill_uniform(b, N, -2.0f, 2.0f, &r);
    y[N] = SENTINEL;

    memcpy(y, y0, sizeof y0);
    tensor_zero(y, N);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(y[i], 0.0f);
    tensor_copy(y, x, N);
    ck_assert_mem_eq(y, x, sizeof(float) * N);
    memcpy(y, y0, sizeof y0);
    tensor_add(y, x, N);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(y[i], y0[i] + x[i]);
    memcpy(y, y0, sizeof y0);
    tensor_axpy(y, -0.75f, x, N);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq_tol(y[i], y0[i] + -0.75f * x[i], 4.0f * FLT_EPSILON);
    memcpy(y, y0, sizeof y0);
    tensor_scale(y, 3.5f, N);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(y[i], y0[i] * 3.5f);
    tensor_mul(y, a, b, N);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(y[i], a[i] * b[i]);
    /* In place: y = y * b. */
    memcpy(y, a, sizeof a);
    tensor_mul(y, y, b, N);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(y[i], a[i] * b[i]);
    ck_assert_float_eq(y[N], SENTINEL);

    double s = 0.0, d = 0.0, q = 0.0;
    for (int i = 0; i < N; i++) {
        s += x[i];
        d += (double)a[i] * b[i];
        q += (double)x[i] * x[i];
    }
    ck_assert_double_eq_tol(tensor_sum(x, N), s, 1e-12);
    ck_assert_double_eq_tol(tensor_dot(a, b, N), d, 1e-12);
    ck_assert_double_eq_tol(tensor_sumsq(x, N), q, 1e-12);
}
END_TEST

START_TEST(test_elementwise_empty)
{
    float y[3] = {1.0f, 2.0f, 3.0f}, x[3] = {4.0f, 5.0f, 6.0f};
    tensor_zero(y, 0);
    tensor_copy(y, x, 0);
    tensor_add(y, x, 0);
    tensor_axpy(y, 2.0f, x, 0);
    tensor_scale(y, 0.0f, 0);
    tensor_mul(y, x, x, 0);
    ck_assert(y[0] == 1.0f && y[1] == 2.0f && y[2] == 3.0f);
    ck_assert_double_eq(tensor_sum(x, 0), 0.0);
    ck_assert_double_eq(tensor_dot(x, x, 0), 0.0);
    ck_assert_double_eq(tensor_sumsq(x, 0), 0.0);
    ck_assert_int_eq(tensor_all_finite(x, 0), 1);
}
END_TEST

START_TEST(test_sums_in_double)
{
    /* 2^22 terms of 0.1f: a float accumulator stalls far from the answer; double is exact to
     * within a few ulp of double. */
    enum { N = 1 << 22 };
    float *x = alloc_floats(N);
    for (int i = 0; i < N; i++)
        x[i] = 0.1f;
    double want = (double)N * 0.1f;
    ck_assert_double_le(fabs(tensor_sum(x, N) - want), 1e-9 * want);
    ck_assert_double_le(fabs(tensor_dot(x, x, N) - (double)N * 0.1f * 0.1f), 1e-9 * want);
    ck_assert_double_le(fabs(tensor_sumsq(x, N) - (double)N * 0.1f * 0.1f), 1e-9 * want);
    /* Large values whose squares overflow float but not double. */
    x[0] = 3e38f;
    x[1] = -3e38f;
    ck_assert_double_eq_tol(tensor_sumsq(x, 2) / 1e77, 2.0 * 9.0 * 1e76 / 1e77, 1e-6);
    free(x);
}
END_TEST

START_TEST(test_all_finite)
{
    enum { N = 17 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)i - 8.0f;
    ck_assert_int_eq(tensor_all_finite(x, N), 1);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const int pos[3] = {0, 8, N - 1};
    for (int b = 0; b < 3; b++)
        for (int p = 0; p < 3; p++) {
            float keep = x[pos[p]];
            x[pos[p]] = bad[b];
            ck_assert_int_eq(tensor_all_finite(x, N), 0);
            /* Only the first n are looked at. */
            ck_assert_int_eq(tensor_all_finite(x, (size_t)pos[p]), 1);
            x[pos[p]] = keep;
        }
    x[3] = FLT_MAX;
    x[4] = -FLT_MAX;
    x[5] = FLT_MIN / 4.0f; /* a denormal (or 0 under FTZ): finite either way */
    ck_assert_int_eq(tensor_all_finite(x, N), 1);
}
END_TEST

START_TEST(test_copy_add_cols)
{
    /* Build [h, z] rows (width 3 + 4 inside a row stride of 9), then scatter gradients back. */
    enum { ROWS = 5, HW = 3, ZW = 4, LD = 9 };
    float h[ROWS * HW], z[ROWS * ZW], cat[ROWS * LD];
    for (int i = 0; i < ROWS * HW; i++)
        h[i] = (float)(100 + i);
    for (int i = 0; i < ROWS * ZW; i++)
        z[i] = (float)(200 + i);
    fill_sentinel(cat, ROWS * LD);
    tensor_copy_cols(cat, LD, h, HW, ROWS, HW);
    tensor_copy_cols(cat + HW, LD, z, ZW, ROWS, ZW);
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < LD; c++) {
            float want = c < HW ? h[r * HW + c] : (c < HW + ZW ? z[r * ZW + c - HW] : SENTINEL);
            ck_assert_float_eq(cat[r * LD + c], want);
        }
    /* Gradients: dh += dcat[:, :3], dz += dcat[:, 3:7]. */
    float dcat[ROWS * LD], dh[ROWS * HW], dz[ROWS * ZW];
    for (int i = 0; i < ROWS * LD; i++)
        dcat[i] = 0.5f * (float)i;
    for (int i = 0; i < ROWS * HW; i++)
        dh[i] = 1.0f;
    for (int i = 0; i < ROWS * ZW; i++)
        dz[i] = -1.0f;
    tensor_add_cols(dh, HW, dcat, LD, ROWS, HW);
    tensor_add_cols(dz, ZW, dcat + HW, LD, ROWS, ZW);
    for (int r = 0; r < ROWS; r++) {
        for (int c = 0; c < HW; c++)
            ck_assert_float_eq(dh[r * HW + c], 1.0f + dcat[r * LD + c]);
        for (int c = 0; c < ZW; c++)
            ck_assert_float_eq(dz[r * ZW + c], -1.0f + dcat[r * LD + HW + c]);
    }
    /* rows = 0 or cols = 0: nothing happens. */
    float keep[ROWS * LD];
    memcpy(keep, cat, sizeof cat);
    tensor_copy_cols(cat, LD, z, ZW, 0, ZW);
    tensor_copy_cols(cat, LD, z, ZW, ROWS, 0);
    tensor_add_cols(cat, LD, z, ZW, 0, ZW);
    tensor_add_cols(cat, LD, z, ZW, ROWS, 0);
    ck_assert_mem_eq(cat, keep, sizeof cat);
}
END_TEST

Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");

    TCase *tc = tcase_create("gemm");
    tcase_add_loop_test(tc, test_gemm_transposes, 0, 4);
    tcase_add_test(tc, test_gemm_alpha_beta);
    tcase_add_test(tc, test_gemm_strided);
    tcase_add_test(tc, test_gemm_beta_zero_ignores_c);
    suite_add_tcase(s, tc);

    tc = tcase_create("linear");
    tcase_add_test(tc, test_linear_forward);
    tcase_add_test(tc, test_linear_backward_input);
    tcase_add_test(tc, test_linear_backward_weight);
    tcase_add_test(tc, test_linear_bias_sum_double);
    suite_add_tcase(s, tc);

    tc = tcase_create("flops");
    tcase_add_test(tc, test_flops);
    tcase_add_test(tc, test_flops_per_thread);
    suite_add_tcase(s, tc);

    tc = tcase_create("elementwise");
    tcase_add_test(tc, test_elementwise);
    tcase_add_test(tc, test_sums_in_double);
    tcase_add_test(tc, test_all_finite);
    tcase_add_test(tc, test_copy_add_cols);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_gemm_empty);
    tcase_add_test(tc, test_linear_forward_empty_input);
    tcase_add_test(tc, test_elementwise_empty);
    suite_add_tcase(s, tc);

    return s;
}
