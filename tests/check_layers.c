/* check_layers: tests of core/layers and of the linear layer forms of core/tensor.
 *
 * Every backward is checked against central finite differences of the scalar loss
 * sum(out * R) for a fixed random R (so dL/dout = R), with respect to its inputs and to each of
 * its parameters; forwards are checked against naive references written out in double. Buffers
 * are allocated at their exact documented sizes and filled with NaN, so ASan catches a layer that
 * reaches past a cache or scratch and a NaN shows a layer that reads what it never wrote.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/layers.h"
#include "core/tensor.h"
#include "testutil.h"

/* Finite differences of a float forward. The numeric derivative carries the forward's rounding,
 * about 1e-7 * |loss| / h, and a truncation error of h^2 times a third derivative; at h = 5e-3
 * both stay near 1e-4 (measured over many seeds for every check here). The floor turns that
 * into a relative error of at most half the tolerance for near-zero entries; the gradients
 * checked are of order 0.03 to 2, so an error of 1% of a typical entry still fails. */
#define GC_H     5e-3f
#define GC_TOL   1e-2
#define GC_FLOOR 2e-2
#define GC_ALL   ((size_t)1 << 20) /* check every index */

/* ---- buffers ------------------------------------------------------------------------------ */

/* Every buffer a test allocates is registered here and freed by the fixture's teardown, so a
 * failing assertion (which leaves the test early) leaks nothing under CK_FORK=no. */
#define MAX_BUFS 96
static void *bufs[MAX_BUFS];
static int n_bufs;

static void free_bufs(void)
{
    for (int i = 0; i < n_bufs; i++)
        free(bufs[i]);
    n_bufs = 0;
}

/* n floats set to NaN: for outputs, caches and scratch. */
static float *buf(size_t n)
{
    ck_assert_int_lt(n_bufs, MAX_BUFS);
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    bufs[n_bufs++] = p;
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

/* n floats set to zero: for gradients. */
static float *zbuf(size_t n)
{
    float *p = buf(n);
    tensor_zero(p, n);
    return p;
}

static float *copy_of(const float *x, size_t n)
{
    float *p = buf(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void check_grad(loss_fn loss, void *ctx, float *x, const float *grad, size_t n, float h,
                       const char *what)
{
    /* A gradient that is zero everywhere would agree with anything constant: not a check. */
    ck_assert_msg(tensor_sumsq(grad, n) > 0.0, "%s: analytic gradient is all zero", what);
    gradcheck_result res = gradcheck(loss, ctx, x, grad, n, h, GC_ALL, GC_FLOOR);
    ck_assert_uint_eq(res.checked, n);
    ck_assert_grad(res, GC_TOL, what);
}

/* A backward that accumulates, called twice from zero, gives twice what one call gives. */
static void check_doubled(const float *twice, const float *once, size_t n, const char *what)
{
    ck_assert_msg(tensor_sumsq(once, n) > 0.0, "%s: gradient is all zero", what);
    for (size_t i = 0; i < n; i++) {
        double want = 2.0 * once[i];
        ck_assert_msg(fabs(twice[i] - want) <= 1e-5 * fabs(want) + 1e-7,
                      "%s: backward does not accumulate at %zu: %g after two calls, %g after one",
                      what, i, (double)twice[i], (double)once[i]);
    }
}

static void check_close(const float *got, const double *want, size_t n, double tol,
                        const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= tol * (1.0 + fabs(want[i])),
                      "%s: %g at %zu, reference %g", what, (double)got[i], i, want[i]);
}

static double sigmoid_d(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static double act_ref(act_kind k, double x)
{
    switch (k) {
    case ACT_NONE:
        return x;
    case ACT_TANH:
        return tanh(x);
    case ACT_RELU:
        return x > 0.0 ? x : 0.0;
    case ACT_SILU:
        return x * sigmoid_d(x);
    case ACT_ELU:
        return x > 0.0 ? x : expm1(x);
    }
    return NAN;
}

/* Values with |x| in [lo, hi] and random signs: keeps ReLU (and ELU's second derivative) away
 * from its kink at 0. */
static void fill_away_from_zero(float *x, size_t n, float lo, float hi, rng_t *r)
{
    fill_uniform(x, n, lo, hi, r);
    for (size_t i = 0; i < n; i++)
        if (rng_uniform(r) < 0.5)
            x[i] = -x[i];
}

/* The smallest standard deviation of the rows of x (rows, c). Layer norm divides by it, so rows
 * that are nearly constant make it steep and finite differences meaningless. */
static double min_row_std(const float *x, int rows, int c)
{
    double min_std = INFINITY;
    for (int i = 0; i < rows; i++) {
        double m = 0.0, v = 0.0;
        for (int j = 0; j < c; j++)
            m += x[i * c + j];
        m /= c;
        for (int j = 0; j < c; j++)
            v += (x[i * c + j] - m) * (x[i * c + j] - m);
        min_std = fmin(min_std, sqrt(v / c));
    }
    return min_std;
}

/* ---- linear layer (tensor.h) -------------------------------------------------------------- */

typedef struct linear_ctx {
    const float *in, *w, *b, *r;
    float *out;
    int bt, ic, oc;
} linear_ctx;

static double linear_loss(void *p)
{
    linear_ctx *c = p;
    tensor_linear_forward(c->out, c->in, c->w, c->b, c->bt, c->ic, c->oc);
    return tensor_dot(c->out, c->r, (size_t)c->bt * c->oc);
}

/* _i: 0 with a bias, 1 without. */
START_TEST(test_linear_forward_reference)
{
    const int bt = 3, ic = 5, oc = 4;
    rng_t rng;
    rng_seed(&rng, 101, (uint64_t)_i);
    float *in = buf((size_t)bt * ic), *w = buf((size_t)oc * ic), *b = _i == 0 ? buf(oc) : NULL;
    float *out = buf((size_t)bt * oc);
    fill_normal(in, (size_t)bt * ic, 1.0f, &rng);
    fill_normal(w, (size_t)oc * ic, 0.5f, &rng);
    if (b)
        fill_normal(b, oc, 1.0f, &rng);
    tensor_linear_forward(out, in, w, b, bt, ic, oc);
    double want[3 * 4];
    for (int i = 0; i < bt; i++)
        for (int o = 0; o < oc; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < ic; k++)
                s += (double)in[i * ic + k] * w[o * ic + k];
            want[i * oc + o] = s;
        }
    check_close(out, want, (size_t)bt * oc, 1e-6, "linear forward");
}
END_TEST

/* _i: 0 with a bias, 1 without. */
START_TEST(test_linear_grad)
{
    const int bt = 3, ic = 5, oc = 4;
    rng_t rng;
    rng_seed(&rng, 102, (uint64_t)_i);
    size_t nin = (size_t)bt * ic, nw = (size_t)oc * ic, nout = (size_t)bt * oc;
    float *in = buf(nin), *w = buf(nw), *b = _i == 0 ? buf(oc) : NULL;
    float *out = buf(nout), *r = buf(nout);
    fill_normal(in, nin, 1.0f, &rng);
    fill_normal(w, nw, 0.5f, &rng);
    if (b)
        fill_normal(b, oc, 1.0f, &rng);
    fill_normal(r, nout, 1.0f, &rng);

    float *din = zbuf(nin), *dw = zbuf(nw), *db = b ? zbuf(oc) : NULL;
    tensor_linear_backward_input(din, r, w, bt, ic, oc);
    tensor_linear_backward_weight(dw, db, r, in, bt, ic, oc);

    linear_ctx c = {in, w, b, r, out, bt, ic, oc};
    check_grad(linear_loss, &c, in, din, nin, GC_H, "linear din");
    check_grad(linear_loss, &c, w, dw, nw, GC_H, "linear dw");
    if (b)
        check_grad(linear_loss, &c, b, db, oc, GC_H, "linear dbias");
}
END_TEST

START_TEST(test_linear_accumulates)
{
    const int bt = 3, ic = 5, oc = 4;
    rng_t rng;
    rng_seed(&rng, 103, 0);
    size_t nin = (size_t)bt * ic, nw = (size_t)oc * ic, nout = (size_t)bt * oc;
    float *in = buf(nin), *w = buf(nw), *r = buf(nout);
    fill_normal(in, nin, 1.0f, &rng);
    fill_normal(w, nw, 0.5f, &rng);
    fill_normal(r, nout, 1.0f, &rng);
    float *din = zbuf(nin), *dw = zbuf(nw), *db = zbuf(oc);
    tensor_linear_backward_input(din, r, w, bt, ic, oc);
    tensor_linear_backward_weight(dw, db, r, in, bt, ic, oc);
    float *din1 = copy_of(din, nin), *dw1 = copy_of(dw, nw), *db1 = copy_of(db, oc);
    tensor_linear_backward_input(din, r, w, bt, ic, oc);
    tensor_linear_backward_weight(dw, db, r, in, bt, ic, oc);
    check_doubled(din, din1, nin, "linear din");
    check_doubled(dw, dw1, nw, "linear dw");
    check_doubled(db, db1, oc, "linear dbias");
}
END_TEST

/* ---- activations -------------------------------------------------------------------------- */

START_TEST(test_act_names)
{
    for (int k = ACT_NONE; k <= ACT_ELU; k++) {
        const char *name = act_name((act_kind)k);
        ck_assert_str_ne(name, "?");
        ck_assert_int_eq(act_from_name(name), k);
    }
    ck_assert_str_eq(act_name(ACT_NONE), "none");
    ck_assert_str_eq(act_name(ACT_TANH), "tanh");
    ck_assert_str_eq(act_name(ACT_RELU), "relu");
    ck_assert_str_eq(act_name(ACT_SILU), "silu");
    ck_assert_str_eq(act_name(ACT_ELU), "elu");
    ck_assert_str_eq(act_name((act_kind)(ACT_ELU + 1)), "?");
    ck_assert_str_eq(act_name((act_kind)-1), "?");
    ck_assert_int_eq(act_from_name("gelu"), -1);
    ck_assert_int_eq(act_from_name(""), -1);
    ck_assert_int_eq(act_from_name("?"), -1);
    ck_assert_int_eq(act_from_name("tanh "), -1);
    ck_assert_int_eq(act_from_name("relu6"), -1);
}
END_TEST

/* _i: the activation. Out of place against a double reference, then in place (allowed by the
 * contract) against out of place. */
START_TEST(test_act_forward_reference)
{
    act_kind k = (act_kind)_i;
    const size_t n = 300; /* more than one 256-float chunk, for chunked implementations */
    rng_t rng;
    rng_seed(&rng, 201, (uint64_t)_i);
    float *in = buf(n), *out = buf(n);
    fill_uniform(in, n, -6.0f, 6.0f, &rng);
    in[0] = 0.0f;
    in[1] = -0.0f;
    act_forward(k, out, in, n);
    for (size_t i = 0; i < n; i++) {
        double want = act_ref(k, in[i]);
        ck_assert_msg(fabs(out[i] - want) <= 1e-6 * (1.0 + fabs(want)),
                      "%s forward: %g at %zu (input %g), reference %g", act_name(k), (double)out[i],
                      i, (double)in[i], want);
    }

    float *io = copy_of(in, n);
    act_forward(k, io, io, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(io[i] == out[i], "%s in place: %g at %zu (input %g), out of place %g",
                      act_name(k), (double)io[i], i, (double)in[i], (double)out[i]);
}
END_TEST

typedef struct act_ctx {
    act_kind k;
    const float *in, *r;
    float *out;
    size_t n;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    act_forward(c->k, c->out, c->in, c->n);
    return tensor_dot(c->out, c->r, c->n);
}

/* _i: the activation. */
START_TEST(test_act_grad)
{
    act_kind k = (act_kind)_i;
    const size_t n = 3 * 7;
    rng_t rng;
    rng_seed(&rng, 202, (uint64_t)_i);
    float *in = buf(n), *out = buf(n), *r = buf(n), *din = zbuf(n);
    if (k == ACT_RELU || k == ACT_ELU)
        fill_away_from_zero(in, n, 0.1f, 3.0f, &rng);
    else
        fill_uniform(in, n, -3.0f, 3.0f, &rng);
    fill_normal(r, n, 1.0f, &rng);
    act_forward(k, out, in, n);
    act_backward(k, din, r, in, out, n);

    act_ctx c = {k, in, r, out, n};
    check_grad(act_loss, &c, in, din, n, GC_H, act_name(k));
}
END_TEST

/* _i: the activation. */
START_TEST(test_act_accumulates)
{
    act_kind k = (act_kind)_i;
    const size_t n = 3 * 7;
    rng_t rng;
    rng_seed(&rng, 203, (uint64_t)_i);
    float *in = buf(n), *out = buf(n), *r = buf(n), *din = zbuf(n);
    fill_away_from_zero(in, n, 0.1f, 3.0f, &rng);
    fill_normal(r, n, 1.0f, &rng);
    act_forward(k, out, in, n);
    act_backward(k, din, r, in, out, n);
    float *once = copy_of(din, n);
    act_backward(k, din, r, in, out, n);
    check_doubled(din, once, n, act_name(k));
}
END_TEST

/* ---- layer norm --------------------------------------------------------------------------- */

START_TEST(test_layernorm_forward)
{
    const int bt = 3, c = 6;
    size_t n = (size_t)bt * c;
    rng_t rng;
    rng_seed(&rng, 301, 0);
    float *in = buf(n), *out = buf(n), *mean = buf(bt), *rstd = buf(bt);
    float *ones = buf(c), *zeros = zbuf(c), *gamma = buf(c), *beta = buf(c);
    fill_normal(in, n, 2.0f, &rng);
    for (int i = 0; i < bt; i++)
        for (int j = 0; j < c; j++)
            in[i * c + j] += 3.0f * (float)(i - 1); /* rows with different means */
    for (int j = 0; j < c; j++)
        ones[j] = 1.0f;

    /* Without the affine part every row has mean 0 and variance 1 (up to eps / var). */
    layernorm_forward(out, mean, rstd, in, ones, zeros, bt, c);
    for (int i = 0; i < bt; i++) {
        double m = 0.0, v = 0.0, xm = 0.0, xv = 0.0;
        for (int j = 0; j < c; j++) {
            m += out[i * c + j];
            xm += in[i * c + j];
        }
        m /= c;
        xm /= c;
        for (int j = 0; j < c; j++) {
            v += (out[i * c + j] - m) * (out[i * c + j] - m);
            xv += (in[i * c + j] - xm) * (in[i * c + j] - xm);
        }
        v /= c;
        xv /= c;
        ck_assert_msg(fabs(m) < 1e-6, "row %d: normalised mean %g", i, m);
        ck_assert_msg(fabs(v - 1.0) < 1e-4, "row %d: normalised variance %g", i, v);
        /* The stored statistics are the row's mean and 1/sqrt(var + eps), eps small. */
        ck_assert_msg(fabs(mean[i] - xm) < 1e-5 * (1.0 + fabs(xm)), "row %d: mean %g, want %g", i,
                      (double)mean[i], xm);
        ck_assert_msg(fabs(rstd[i] * sqrt(xv) - 1.0) < 1e-4, "row %d: rstd %g, 1/std %g", i,
                      (double)rstd[i], 1.0 / sqrt(xv));
    }

    /* With gamma and beta: the normalised rows scaled and shifted per column. */
    fill_uniform(gamma, c, -1.5f, 1.5f, &rng);
    fill_normal(beta, c, 1.0f, &rng);
    float *out2 = buf(n);
    layernorm_forward(out2, mean, rstd, in, gamma, beta, bt, c);
    double want[3 * 6];
    for (int i = 0; i < bt; i++)
        for (int j = 0; j < c; j++)
            want[i * c + j] = (double)out[i * c + j] * gamma[j] + beta[j];
    check_close(out2, want, n, 1e-6, "layernorm affine");
}
END_TEST

typedef struct ln_ctx {
    const float *in, *gamma, *beta, *r;
    float *out, *mean, *rstd;
    int bt, c;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *x = p;
    layernorm_forward(x->out, x->mean, x->rstd, x->in, x->gamma, x->beta, x->bt, x->c);
    return tensor_dot(x->out, x->r, (size_t)x->bt * x->c);
}

static void ln_setup(ln_ctx *x, int bt, int c, uint64_t seed)
{
    size_t n = (size_t)bt * c;
    rng_t rng;
    rng_seed(&rng, seed, 0);
    float *in = buf(n), *gamma = buf(c), *beta = buf(c), *r = buf(n);
    /* Rows of spread at least 0.7 (see min_row_std), off centre. */
    for (int attempt = 0;; attempt++) {
        ck_assert_int_lt(attempt, 1000);
        fill_normal(in, n, 1.5f, &rng);
        if (min_row_std(in, bt, c) >= 0.7)
            break;
    }
    for (size_t i = 0; i < n; i++)
        in[i] += 0.5f;
    fill_away_from_zero(gamma, c, 0.5f, 1.5f, &rng);
    fill_normal(beta, c, 1.0f, &rng);
    fill_normal(r, n, 1.0f, &rng);
    *x = (ln_ctx){in, gamma, beta, r, buf(n), buf(bt), buf(bt), bt, c};
}

START_TEST(test_layernorm_grad)
{
    static const int shapes[][2] = {{3, 6}, {2, 3}, {1, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int bt = shapes[s][0], c = shapes[s][1];
        size_t n = (size_t)bt * c;
        ln_ctx x;
        ln_setup(&x, bt, c, 302 + s);
        float *din = zbuf(n), *dgamma = zbuf(c), *dbeta = zbuf(c);
        ln_loss(&x);
        layernorm_backward(din, dgamma, dbeta, x.r, x.in, x.gamma, x.mean, x.rstd, bt, c);
        check_grad(ln_loss, &x, (float *)x.in, din, n, GC_H, "layernorm din");
        check_grad(ln_loss, &x, (float *)x.gamma, dgamma, c, GC_H, "layernorm dgamma");
        check_grad(ln_loss, &x, (float *)x.beta, dbeta, c, GC_H, "layernorm dbeta");
    }
}
END_TEST

START_TEST(test_layernorm_accumulates)
{
    const int bt = 3, c = 5;
    size_t n = (size_t)bt * c;
    ln_ctx x;
    ln_setup(&x, bt, c, 310);
    float *din = zbuf(n), *dgamma = zbuf(c), *dbeta = zbuf(c);
    ln_loss(&x);
    layernorm_backward(din, dgamma, dbeta, x.r, x.in, x.gamma, x.mean, x.rstd, bt, c);
    float *din1 = copy_of(din, n), *dgamma1 = copy_of(dgamma, c), *dbeta1 = copy_of(dbeta, c);
    layernorm_backward(din, dgamma, dbeta, x.r, x.in, x.gamma, x.mean, x.rstd, bt, c);
    check_doubled(din, din1, n, "layernorm din");
    check_doubled(dgamma, dgamma1, c, "layernorm dgamma");
    check_doubled(dbeta, dbeta1, c, "layernorm dbeta");
}
END_TEST

/* ---- MLP ---------------------------------------------------------------------------------- */

typedef struct mlp_case {
    int n_layers;
    int dims[4];
    act_kind act, out_act;
    int layer_norm;
} mlp_case;

/* One layer; two and three layers with every hidden activation, out_act none and tanh, with and
 * without layer norm. Equal neighbouring widths are included so that a mixed-up buffer of the
 * right size still shows. */
static const mlp_case mlp_cases[] = {
    {1, {4, 3}, ACT_NONE, ACT_NONE, 0},       {1, {5, 4}, ACT_RELU, ACT_TANH, 1},
    {2, {4, 6, 3}, ACT_NONE, ACT_NONE, 1},    {2, {4, 6, 3}, ACT_TANH, ACT_NONE, 0},
    {2, {4, 6, 3}, ACT_TANH, ACT_TANH, 1},    {2, {3, 5, 2}, ACT_RELU, ACT_NONE, 0},
    {2, {3, 5, 2}, ACT_RELU, ACT_TANH, 1},    {2, {5, 4, 6}, ACT_SILU, ACT_TANH, 1},
    {2, {5, 4, 6}, ACT_ELU, ACT_NONE, 0},     {3, {4, 7, 5, 3}, ACT_SILU, ACT_NONE, 1},
    {3, {4, 7, 5, 3}, ACT_SILU, ACT_TANH, 0}, {3, {5, 6, 6, 4}, ACT_ELU, ACT_NONE, 1},
    {3, {5, 6, 6, 4}, ACT_ELU, ACT_TANH, 0},  {3, {6, 5, 5, 2}, ACT_RELU, ACT_TANH, 1},
    {3, {3, 4, 4, 4}, ACT_TANH, ACT_NONE, 1}, {3, {6, 5, 5, 2}, ACT_RELU, ACT_NONE, 0},
};
#define N_MLP_CASES ((int)(sizeof mlp_cases / sizeof mlp_cases[0]))
#define MLP_BT      3
#define REF_MAX     64 /* floats per activation in the reference: bt * widest layer */

static void mlp_case_spec(mlp_spec *s, int i)
{
    const mlp_case *c = &mlp_cases[i];
    ck_assert_int_eq(mlp_spec_make(s, c->n_layers, c->dims, c->act, c->out_act, c->layer_norm), 0);
}

/* The MLP composed by hand in double from the documented parameter layout: linear, layer norm
 * (eps 1e-5), activation. Returns the smallest |pre-activation| of the hidden layers, which is
 * how far the inputs are from a ReLU or ELU kink, and sets *ln_std (when not NULL) to the
 * smallest standard deviation of a row entering a layer norm. */
static double mlp_reference(const mlp_spec *s, double *out, const float *in, const float *params,
                            int bt, double *ln_std)
{
    double x[REF_MAX], y[REF_MAX];
    double margin = INFINITY, min_std = INFINITY;
    int w0 = s->dims[0];
    ck_assert_int_le(bt * w0, REF_MAX);
    for (int i = 0; i < bt * w0; i++)
        x[i] = in[i];
    const float *p = params;
    for (int l = 0; l < s->n_layers; l++) {
        int ic = s->dims[l], oc = s->dims[l + 1];
        int hidden = l < s->n_layers - 1;
        ck_assert_int_le(bt * oc, REF_MAX);
        const float *w = p, *b = p + oc * ic;
        p += oc * ic + oc;
        for (int i = 0; i < bt; i++)
            for (int o = 0; o < oc; o++) {
                double a = b[o];
                for (int k = 0; k < ic; k++)
                    a += (double)w[o * ic + k] * x[i * ic + k];
                y[i * oc + o] = a;
            }
        if (hidden && s->layer_norm) {
            const float *gamma = p, *beta = p + oc;
            p += 2 * oc;
            for (int i = 0; i < bt; i++) {
                double m = 0.0, v = 0.0;
                for (int o = 0; o < oc; o++)
                    m += y[i * oc + o];
                m /= oc;
                for (int o = 0; o < oc; o++)
                    v += (y[i * oc + o] - m) * (y[i * oc + o] - m);
                v /= oc;
                min_std = fmin(min_std, sqrt(v));
                for (int o = 0; o < oc; o++)
                    y[i * oc + o] = (y[i * oc + o] - m) / sqrt(v + 1e-5) * gamma[o] + beta[o];
            }
        }
        act_kind k = hidden ? s->act : s->out_act;
        for (int i = 0; i < bt * oc; i++) {
            if (hidden && fabs(y[i]) < margin)
                margin = fabs(y[i]);
            x[i] = act_ref(k, y[i]);
        }
    }
    for (int i = 0; i < bt * s->dims[s->n_layers]; i++)
        out[i] = x[i];
    if (ln_std)
        *ln_std = min_std;
    return margin;
}

typedef struct mlp_ctx {
    const mlp_spec *s;
    const float *in, *params, *r;
    float *out, *cache;
    int bt;
} mlp_ctx;

static double mlp_loss(void *p)
{
    mlp_ctx *c = p;
    mlp_forward(c->s, c->out, c->cache, c->in, c->params, c->bt);
    return tensor_dot(c->out, c->r, (size_t)c->bt * c->s->dims[c->s->n_layers]);
}

/* Parameters at a random point where no layer shrinks or saturates its signal, so that every
 * gradient block is of order one: weights of unit gain (variance 1/fan_in), biases and beta
 * small but away from their initial 0, gamma in +-[0.6, 1.4] rather than exactly 1. */
static void mlp_random_params(const mlp_spec *s, float *params, rng_t *r)
{
    float *p = params;
    for (int l = 0; l < s->n_layers; l++) {
        size_t ic = (size_t)s->dims[l], oc = (size_t)s->dims[l + 1];
        float bound = sqrtf(3.0f / (float)ic);
        fill_uniform(p, oc * ic, -bound, bound, r);
        p += oc * ic;
        fill_uniform(p, oc, -0.5f, 0.5f, r);
        p += oc;
        if (s->layer_norm && l < s->n_layers - 1) {
            fill_away_from_zero(p, oc, 0.6f, 1.4f, r);
            fill_uniform(p + oc, oc, -0.5f, 0.5f, r);
            p += 2 * oc;
        }
    }
    ck_assert_uint_eq((size_t)(p - params), mlp_param_count(s));
}

/* Random inputs and parameters (see mlp_random_params). The draw is repeated until every row
 * entering a layer norm has a spread of at least 0.5 and, with ReLU or ELU (whose second
 * derivative jumps at 0), every hidden pre-activation is at least 0.1 away from 0, far more than
 * a step moves it. */
static void mlp_setup(mlp_ctx *c, const mlp_spec *s, int bt, uint64_t seed)
{
    size_t nin = (size_t)bt * s->dims[0], np = mlp_param_count(s);
    size_t nout = (size_t)bt * s->dims[s->n_layers];
    float *in = buf(nin), *params = buf(np), *r = buf(nout);
    rng_t rng;
    int attempt = 0;
    for (;; attempt++) {
        ck_assert_int_lt(attempt, 1000);
        rng_seed(&rng, seed, (uint64_t)attempt);
        fill_normal(in, nin, 1.0f, &rng);
        mlp_random_params(s, params, &rng);
        double ref[REF_MAX], ln_std;
        double margin = mlp_reference(s, ref, in, params, bt, &ln_std);
        int kinked = s->act == ACT_RELU || s->act == ACT_ELU;
        if ((!kinked || margin >= 0.1) && ln_std >= 0.5)
            break;
    }
    fill_normal(r, nout, 1.0f, &rng);
    *c = (mlp_ctx){s, in, params, r, buf(nout), buf(mlp_cache_count(s, bt)), bt};
}

/* _i: the case. */
START_TEST(test_mlp_forward_reference)
{
    mlp_spec s;
    mlp_case_spec(&s, _i);
    mlp_ctx c;
    mlp_setup(&c, &s, MLP_BT, 400 + (uint64_t)_i);
    double want[REF_MAX];
    mlp_reference(&s, want, c.in, c.params, MLP_BT, NULL);
    mlp_forward(&s, c.out, c.cache, c.in, c.params, MLP_BT);
    check_close(c.out, want, (size_t)MLP_BT * s.dims[s.n_layers], 2e-5, "mlp forward");
}
END_TEST

/* _i: the case. mlp_forward_shifted from a first pass at `in` equals the reference MLP at the
 * input shifted in a column range (every range of each case), with the earlier cache kept. */
START_TEST(test_mlp_forward_shifted)
{
    mlp_spec s;
    mlp_case_spec(&s, _i);
    mlp_ctx c;
    mlp_setup(&c, &s, MLP_BT, 700 + (uint64_t)_i);
    int w0 = s.dims[0], nout = MLP_BT * s.dims[s.n_layers];
    float *keep = buf(mlp_cache_count(&s, MLP_BT)), *out0 = buf((size_t)nout);
    mlp_forward(&s, out0, keep, c.in, c.params, MLP_BT);
    rng_t rng;
    rng_seed(&rng, 71, (uint64_t)_i);
    for (int col = 0; col < w0; col++)
        for (int cols = 1; col + cols <= w0; cols++) {
            float delta[REF_MAX], in2[REF_MAX];
            fill_normal(delta, (size_t)MLP_BT * cols, 1.0f, &rng);
            memcpy(in2, c.in, sizeof(float) * (size_t)MLP_BT * w0);
            for (int b = 0; b < MLP_BT; b++)
                for (int j = 0; j < cols; j++)
                    in2[b * w0 + col + j] += delta[b * cols + j];
            double want[REF_MAX];
            mlp_reference(&s, want, in2, c.params, MLP_BT, NULL);
            mlp_forward_shifted(&s, c.out, c.cache, keep, delta, col, cols, c.params, MLP_BT);
            check_close(c.out, want, (size_t)nout, 2e-5, "mlp shifted forward");
        }
    /* the kept pass is untouched: shifting by zero gives its output back */
    float zero[REF_MAX] = {0};
    mlp_forward_shifted(&s, c.out, c.cache, keep, zero, 0, w0, c.params, MLP_BT);
    for (int i = 0; i < nout; i++)
        ck_assert_float_eq_tol(c.out[i], out0[i], 1e-6f);
}
END_TEST

/* _i: the case. */
START_TEST(test_mlp_grad)
{
    mlp_spec s;
    mlp_case_spec(&s, _i);
    const int bt = MLP_BT;
    mlp_ctx c;
    mlp_setup(&c, &s, bt, 500 + (uint64_t)_i);
    size_t nin = (size_t)bt * s.dims[0], np = mlp_param_count(&s);
    float *din = zbuf(nin), *dparams = zbuf(np), *scratch = buf(mlp_scratch_count(&s, bt));
    mlp_loss(&c);
    mlp_backward(&s, din, dparams, c.r, c.in, c.out, c.params, c.cache, scratch, bt);

    char what[64];
    snprintf(what, sizeof what, "mlp case %d din", _i);
    check_grad(mlp_loss, &c, (float *)c.in, din, nin, GC_H, what);
    /* Each layer's block on its own, so that a failure names the layer. */
    const float *p = c.params;
    for (int l = 0; l < s.n_layers; l++) {
        size_t ic = (size_t)s.dims[l], oc = (size_t)s.dims[l + 1];
        size_t nl = oc * ic + oc + (s.layer_norm && l < s.n_layers - 1 ? 2 * oc : 0);
        snprintf(what, sizeof what, "mlp case %d layer %d params", _i, l);
        check_grad(mlp_loss, &c, (float *)p, dparams + (p - c.params), nl, GC_H, what);
        p += nl;
    }
    ck_assert_uint_eq((size_t)(p - c.params), np);
}
END_TEST

/* _i: the case. Twice from zero doubles dparams and din; without din, dparams is the same. */
START_TEST(test_mlp_accumulates)
{
    mlp_spec s;
    mlp_case_spec(&s, _i);
    const int bt = MLP_BT;
    mlp_ctx c;
    mlp_setup(&c, &s, bt, 600 + (uint64_t)_i);
    size_t nin = (size_t)bt * s.dims[0], np = mlp_param_count(&s);
    float *din = zbuf(nin), *dparams = zbuf(np), *scratch = buf(mlp_scratch_count(&s, bt));
    mlp_loss(&c);
    mlp_backward(&s, din, dparams, c.r, c.in, c.out, c.params, c.cache, scratch, bt);
    float *din1 = copy_of(din, nin), *dparams1 = copy_of(dparams, np);
    mlp_backward(&s, din, dparams, c.r, c.in, c.out, c.params, c.cache, scratch, bt);
    check_doubled(din, din1, nin, "mlp din");
    check_doubled(dparams, dparams1, np, "mlp dparams");

    float *dparams_no_din = zbuf(np);
    mlp_backward(&s, NULL, dparams_no_din, c.r, c.in, c.out, c.params, c.cache, scratch, bt);
    for (size_t i = 0; i < np; i++)
        ck_assert_msg(dparams_no_din[i] == dparams1[i], "dparams[%zu] without din: %g, with %g", i,
                      (double)dparams_no_din[i], (double)dparams1[i]);
}
END_TEST

START_TEST(test_mlp_spec_make)
{
    mlp_spec s;
    int dims[MLP_MAX_LAYERS + 2];
    for (int i = 0; i < MLP_MAX_LAYERS + 2; i++)
        dims[i] = 3;

    /* n_layers out of range. */
    ck_assert_int_eq(mlp_spec_make(&s, 0, dims, ACT_TANH, ACT_NONE, 0), -1);
    ck_assert_int_eq(mlp_spec_make(&s, -1, dims, ACT_TANH, ACT_NONE, 0), -1);
    ck_assert_int_eq(mlp_spec_make(&s, MLP_MAX_LAYERS + 1, dims, ACT_TANH, ACT_NONE, 0), -1);

    /* A width out of range at the input, in the middle and at the output. */
    static const int bad[] = {0, -1, -100000, (1 << 16) + 1};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
        for (int at = 0; at <= 3; at++) {
            int d[4] = {4, 5, 6, 2};
            d[at] = bad[b];
            ck_assert_msg(mlp_spec_make(&s, 3, d, ACT_TANH, ACT_NONE, 0) == -1,
                          "width %d at %d accepted", bad[b], at);
        }

    /* The limits themselves are fine, and only dims[0..n_layers] is read. */
    int edge[MLP_MAX_LAYERS + 1];
    for (int i = 0; i <= MLP_MAX_LAYERS; i++)
        edge[i] = i == 0 ? 1 << 16 : 1;
    ck_assert_int_eq(mlp_spec_make(&s, MLP_MAX_LAYERS, edge, ACT_ELU, ACT_TANH, 7), 0);
    ck_assert_int_eq(s.n_layers, MLP_MAX_LAYERS);
    ck_assert_int_eq(s.dims[0], 1 << 16);
    ck_assert_int_eq(s.dims[MLP_MAX_LAYERS], 1);
    ck_assert_int_eq(s.act, ACT_ELU);
    ck_assert_int_eq(s.out_act, ACT_TANH);
    ck_assert_int_eq(s.layer_norm, 1);

    int one[2] = {7, 2};
    ck_assert_int_eq(mlp_spec_make(&s, 1, one, ACT_RELU, ACT_NONE, 0), 0);
    ck_assert_int_eq(s.n_layers, 1);
    ck_assert_int_eq(s.dims[0], 7);
    ck_assert_int_eq(s.dims[1], 2);
    ck_assert_int_eq(s.layer_norm, 0);
}
END_TEST

START_TEST(test_mlp_param_count)
{
    mlp_spec s;
    int d2[] = {4, 6, 3};
    ck_assert_int_eq(mlp_spec_make(&s, 2, d2, ACT_TANH, ACT_NONE, 0), 0);
    ck_assert_uint_eq(mlp_param_count(&s), 6 * 4 + 6 + 3 * 6 + 3);
    /* Layer norm adds gamma and beta to the hidden layers only. */
    ck_assert_int_eq(mlp_spec_make(&s, 2, d2, ACT_TANH, ACT_NONE, 1), 0);
    ck_assert_uint_eq(mlp_param_count(&s), 6 * 4 + 6 + 2 * 6 + 3 * 6 + 3);
    int d1[] = {5, 2};
    ck_assert_int_eq(mlp_spec_make(&s, 1, d1, ACT_TANH, ACT_NONE, 1), 0);
    ck_assert_uint_eq(mlp_param_count(&s), 2 * 5 + 2);
}
END_TEST

/* Weights uniform in +-gain/sqrt(fan_in) (last layer times out_gain), biases 0, gamma 1, beta 0. */
START_TEST(test_mlp_init)
{
    mlp_spec s;
    int dims[] = {16, 64, 32, 8};
    const float gain = 1.5f, out_gain = 0.1f;
    ck_assert_int_eq(mlp_spec_make(&s, 3, dims, ACT_SILU, ACT_NONE, 1), 0);
    size_t np = mlp_param_count(&s);
    float *params = buf(np);
    rng_t rng;
    rng_seed(&rng, 700, 0);
    mlp_init(&s, params, &rng, gain, out_gain);
    const float *p = params;
    for (int l = 0; l < s.n_layers; l++) {
        size_t ic = (size_t)dims[l], oc = (size_t)dims[l + 1];
        double bound = gain / sqrt((double)ic) * (l == s.n_layers - 1 ? out_gain : 1.0);
        double max_abs = 0.0, sum_abs = 0.0;
        for (size_t i = 0; i < oc * ic; i++) {
            max_abs = fmax(max_abs, fabs(p[i]));
            sum_abs += fabs(p[i]);
        }
        /* Uniform in [-bound, bound]: all inside, the largest near the edge, mean |w| bound / 2
         * (its standard error is below 0.02 bound with 256 or more weights). */
        ck_assert_msg(max_abs <= bound * (1.0 + 1e-6), "layer %d: |w| %g > bound %g", l, max_abs,
                      bound);
        ck_assert_msg(max_abs >= 0.95 * bound, "layer %d: max |w| %g, bound %g", l, max_abs, bound);
        double mean_abs = sum_abs / (double)(oc * ic);
        ck_assert_msg(fabs(mean_abs - bound / 2) < 0.1 * bound, "layer %d: mean |w| %g, bound %g",
                      l, mean_abs, bound);
        p += oc * ic;
        for (size_t j = 0; j < oc; j++)
            ck_assert_msg(p[j] == 0.0f, "layer %d: bias %zu is %g", l, j, (double)p[j]);
        p += oc;
        if (l < s.n_layers - 1) {
            for (size_t j = 0; j < oc; j++) {
                ck_assert_msg(p[j] == 1.0f, "layer %d: gamma %zu is %g", l, j, (double)p[j]);
                ck_assert_msg(p[oc + j] == 0.0f, "layer %d: beta %zu is %g", l, j,
                              (double)p[oc + j]);
            }
            p += 2 * oc;
        }
    }
    ck_assert_uint_eq((size_t)(p - params), np);
}
END_TEST

/* ---- GRU ---------------------------------------------------------------------------------- */

typedef struct gru_shape {
    int bt, ic, hc;
} gru_shape;

static const gru_shape gru_shapes[] = {{3, 4, 5}, {2, 3, 3}, {1, 6, 4}};
#define N_GRU_SHAPES ((int)(sizeof gru_shapes / sizeof gru_shapes[0]))

typedef struct gru_ctx {
    const float *x, *h_prev, *params, *r;
    float *h_out, *cache, *scratch;
    int bt, ic, hc;
} gru_ctx;

static double gru_loss(void *p)
{
    gru_ctx *c = p;
    gru_forward(c->h_out, c->cache, c->scratch, c->x, c->h_prev, c->params, c->bt, c->ic, c->hc);
    return tensor_dot(c->h_out, c->r, (size_t)c->bt * c->hc);
}

/* Parameters of unit gain (variance 1/fan_in), so that the gates neither saturate nor vanish,
 * and nonzero biases: gru_init zeroes them, but bh_n sits inside the reset gate's product and
 * must be checked at nonzero values. */
static void gru_random_params(float *params, int ic, int hc, rng_t *r)
{
    size_t g = 3 * (size_t)hc;
    fill_uniform(params, g * ic, -sqrtf(3.0f / ic), sqrtf(3.0f / ic), r);
    fill_uniform(params + g * ic, g * hc, -sqrtf(3.0f / hc), sqrtf(3.0f / hc), r);
    fill_uniform(params + g * ic + g * hc, 2 * g, -0.5f, 0.5f, r);
}

/* Random x, h_prev and parameters (see gru_random_params). */
static void gru_setup(gru_ctx *c, gru_shape sh, uint64_t seed)
{
    size_t nx = (size_t)sh.bt * sh.ic, nh = (size_t)sh.bt * sh.hc;
    size_t np = gru_param_count(sh.ic, sh.hc);
    rng_t rng;
    rng_seed(&rng, seed, 0);
    float *x = buf(nx), *h = buf(nh), *params = buf(np), *r = buf(nh);
    fill_normal(x, nx, 1.0f, &rng);
    fill_uniform(h, nh, -0.9f, 0.9f, &rng);
    gru_random_params(params, sh.ic, sh.hc, &rng);
    fill_normal(r, nh, 1.0f, &rng);
    *c = (gru_ctx){x, h, params, r, buf(nh), buf(4 * nh), buf(6 * nh), sh.bt, sh.ic, sh.hc};
}

START_TEST(test_gru_param_count)
{
    ck_assert_uint_eq(gru_param_count(4, 5), 3 * 5 * 4 + 3 * 5 * 5 + 3 * 5 + 3 * 5);
    ck_assert_uint_eq(gru_param_count(1, 1), 3 + 3 + 3 + 3);
}
END_TEST

/* _i: the shape. Every row against the gate equations written out in double, and the cache
 * against its documented contents (r, u, n, Wh_n h + bh_n). */
START_TEST(test_gru_forward_reference)
{
    gru_shape sh = gru_shapes[_i];
    gru_ctx c;
    gru_setup(&c, sh, 800 + (uint64_t)_i);
    gru_loss(&c);
    int ic = sh.ic, hc = sh.hc, g = 3 * hc;
    const float *wx = c.params, *wh = wx + g * ic, *bx = wh + g * hc, *bh = bx + g;
    for (int i = 0; i < sh.bt; i++) {
        const float *x = c.x + i * ic, *h = c.h_prev + i * hc;
        double want_h[8], want_cache[4 * 8], ax[3 * 8], ah[3 * 8];
        ck_assert_int_le(hc, 8);
        for (int j = 0; j < g; j++) {
            ax[j] = bx[j];
            ah[j] = bh[j];
            for (int k = 0; k < ic; k++)
                ax[j] += (double)wx[j * ic + k] * x[k];
            for (int k = 0; k < hc; k++)
                ah[j] += (double)wh[j * hc + k] * h[k];
        }
        for (int j = 0; j < hc; j++) {
            double r = sigmoid_d(ax[j] + ah[j]);
            double u = sigmoid_d(ax[hc + j] + ah[hc + j]);
            double n = tanh(ax[2 * hc + j] + r * ah[2 * hc + j]);
            want_h[j] = (1.0 - u) * n + u * h[j];
            want_cache[j] = r;
            want_cache[hc + j] = u;
            want_cache[2 * hc + j] = n;
            want_cache[3 * hc + j] = ah[2 * hc + j];
        }
        check_close(c.h_out + i * hc, want_h, hc, 1e-5, "gru h_out");
        check_close(c.cache + i * 4 * hc, want_cache, 4 * (size_t)hc, 1e-5, "gru cache");
    }
}
END_TEST

/* _i: the shape. */
START_TEST(test_gru_grad)
{
    gru_shape sh = gru_shapes[_i];
    gru_ctx c;
    gru_setup(&c, sh, 900 + (uint64_t)_i);
    int ic = sh.ic, hc = sh.hc, g = 3 * hc;
    size_t nx = (size_t)sh.bt * ic, nh = (size_t)sh.bt * hc, np = gru_param_count(ic, hc);
    float *dx = zbuf(nx), *dh_prev = zbuf(nh), *dparams = zbuf(np);
    gru_loss(&c);
    gru_backward(dx, dh_prev, dparams, c.r, c.x, c.h_prev, c.params, c.cache, c.scratch, sh.bt, ic,
                 hc);

    check_grad(gru_loss, &c, (float *)c.x, dx, nx, GC_H, "gru dx");
    check_grad(gru_loss, &c, (float *)c.h_prev, dh_prev, nh, GC_H, "gru dh_prev");
    /* The parameter blocks one by one, so that a failure names the block. */
    static const char *const names[] = {"gru dwx", "gru dwh", "gru dbx", "gru dbh"};
    size_t sizes[] = {(size_t)g * ic, (size_t)g * hc, (size_t)g, (size_t)g};
    size_t off = 0;
    for (int b = 0; b < 4; b++) {
        check_grad(gru_loss, &c, (float *)c.params + off, dparams + off, sizes[b], GC_H, names[b]);
        off += sizes[b];
    }
    ck_assert_uint_eq(off, np);
}
END_TEST

/* _i: the shape. Twice from zero doubles every gradient; NULL dx and dh_prev leave dparams as
 * it was with them. */
START_TEST(test_gru_accumulates)
{
    gru_shape sh = gru_shapes[_i];
    gru_ctx c;
    gru_setup(&c, sh, 1000 + (uint64_t)_i);
    int ic = sh.ic, hc = sh.hc;
    size_t nx = (size_t)sh.bt * ic, nh = (size_t)sh.bt * hc, np = gru_param_count(ic, hc);
    float *dx = zbuf(nx), *dh_prev = zbuf(nh), *dparams = zbuf(np);
    gru_loss(&c);
    gru_backward(dx, dh_prev, dparams, c.r, c.x, c.h_prev, c.params, c.cache, c.scratch, sh.bt, ic,
                 hc);
    float *dx1 = copy_of(dx, nx), *dh1 = copy_of(dh_prev, nh), *dp1 = copy_of(dparams, np);
    gru_backward(dx, dh_prev, dparams, c.r, c.x, c.h_prev, c.params, c.cache, c.scratch, sh.bt, ic,
                 hc);
    check_doubled(dx, dx1, nx, "gru dx");
    check_doubled(dh_prev, dh1, nh, "gru dh_prev");
    check_doubled(dparams, dp1, np, "gru dparams");

    float *dp_alone = zbuf(np);
    gru_backward(NULL, NULL, dp_alone, c.r, c.x, c.h_prev, c.params, c.cache, c.scratch, sh.bt, ic,
                 hc);
    for (size_t i = 0; i < np; i++)
        ck_assert_msg(dp_alone[i] == dp1[i], "dparams[%zu] without dx, dh_prev: %g, with %g", i,
                      (double)dp_alone[i], (double)dp1[i]);
}
END_TEST

/* Backprop through time: the cell unrolled over T steps from h0, loss sum_t sum(h_t * R_t). */
#define BPTT_T 4
typedef struct bptt_ctx {
    const float *x, *params, *r; /* x (T, bt, ic), r (T, bt, hc) */
    float *h;                    /* (T + 1, bt, hc); h[0] is the initial state */
    float *cache, *scratch;      /* cache (T, bt, 4hc) */
    int bt, ic, hc;
} bptt_ctx;

static double bptt_loss(void *p)
{
    bptt_ctx *c = p;
    size_t nx = (size_t)c->bt * c->ic, nh = (size_t)c->bt * c->hc;
    double loss = 0.0;
    for (int t = 0; t < BPTT_T; t++) {
        gru_forward(c->h + (t + 1) * nh, c->cache + t * 4 * nh, c->scratch, c->x + t * nx,
                    c->h + t * nh, c->params, c->bt, c->ic, c->hc);
        loss += tensor_dot(c->h + (t + 1) * nh, c->r + t * nh, nh);
    }
    return loss;
}

/* _i: the shape. */
START_TEST(test_gru_bptt_grad)
{
    gru_shape sh = gru_shapes[_i];
    int bt = sh.bt, ic = sh.ic, hc = sh.hc;
    size_t nx = (size_t)bt * ic, nh = (size_t)bt * hc, np = gru_param_count(ic, hc);
    rng_t rng;
    rng_seed(&rng, 1100 + (uint64_t)_i, 0);
    float *x = buf(BPTT_T * nx), *h = buf((BPTT_T + 1) * nh), *params = buf(np);
    float *r = buf(BPTT_T * nh);
    fill_normal(x, BPTT_T * nx, 1.0f, &rng);
    fill_uniform(h, nh, -0.9f, 0.9f, &rng);
    gru_random_params(params, ic, hc, &rng);
    fill_normal(r, BPTT_T * nh, 1.0f, &rng);
    bptt_ctx c = {x, params, r, h, buf(BPTT_T * 4 * nh), buf(6 * nh), bt, ic, hc};
    bptt_loss(&c);

    /* Backwards in time: dh collects R_t and what step t+1 sends back through dh_prev. The
     * scratch is shared by all steps, as a model would share it. */
    float *dx = zbuf(BPTT_T * nx), *dparams = zbuf(np), *dh = zbuf(nh), *dh_prev = buf(nh);
    for (int t = BPTT_T - 1; t >= 0; t--) {
        tensor_add(dh, r + t * nh, nh);
        tensor_zero(dh_prev, nh);
        gru_backward(dx + t * nx, dh_prev, dparams, dh, x + t * nx, h + t * nh, params,
                     c.cache + t * 4 * nh, c.scratch, bt, ic, hc);
        tensor_copy(dh, dh_prev, nh);
    }

    check_grad(bptt_loss, &c, params, dparams, np, GC_H, "gru bptt dparams");
    check_grad(bptt_loss, &c, h, dh, nh, GC_H, "gru bptt dh0");
    check_grad(bptt_loss, &c, x, dx, BPTT_T * nx, GC_H, "gru bptt dx");
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static TCase *new_case(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, NULL, free_bufs);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    int n_act = ACT_ELU + 1;

    TCase *tc = new_case(s, "linear");
    tcase_add_loop_test(tc, test_linear_forward_reference, 0, 2);
    tcase_add_loop_test(tc, test_linear_grad, 0, 2);
    tcase_add_test(tc, test_linear_accumulates);

    tc = new_case(s, "activations");
    tcase_add_test(tc, test_act_names);
    tcase_add_loop_test(tc, test_act_forward_reference, ACT_NONE, n_act);
    tcase_add_loop_test(tc, test_act_grad, ACT_NONE, n_act);
    tcase_add_loop_test(tc, test_act_accumulates, ACT_NONE, n_act);

    tc = new_case(s, "layernorm");
    tcase_add_test(tc, test_layernorm_forward);
    tcase_add_test(tc, test_layernorm_grad);
    tcase_add_test(tc, test_layernorm_accumulates);

    tc = new_case(s, "mlp");
    tcase_add_test(tc, test_mlp_spec_make);
    tcase_add_test(tc, test_mlp_param_count);
    tcase_add_test(tc, test_mlp_init);
    tcase_add_loop_test(tc, test_mlp_forward_reference, 0, N_MLP_CASES);
    tcase_add_loop_test(tc, test_mlp_forward_shifted, 0, N_MLP_CASES);
    tcase_add_loop_test(tc, test_mlp_grad, 0, N_MLP_CASES);
    tcase_add_loop_test(tc, test_mlp_accumulates, 0, N_MLP_CASES);

    tc = new_case(s, "gru");
    tcase_add_test(tc, test_gru_param_count);
    tcase_add_loop_test(tc, test_gru_forward_reference, 0, N_GRU_SHAPES);
    tcase_add_loop_test(tc, test_gru_grad, 0, N_GRU_SHAPES);
    tcase_add_loop_test(tc, test_gru_accumulates, 0, N_GRU_SHAPES);
    tcase_add_loop_test(tc, test_gru_bptt_grad, 0, N_GRU_SHAPES);
    return s;
}
