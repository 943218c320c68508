/* check_dist: tests of core/dist.
 *
 * Values: the Gaussian log density, entropy and KL against closed forms evaluated independently in
 * double (and against numerical integrals), the squash bijection and its log-Jacobian (stable at
 * large |u|), the tanh-squashed density (which must integrate to 1 over the box) and sample
 * statistics. Gradients: a central finite-difference check (tests/testutil.h) of every backward,
 * with respect to every input it has a gradient for, including that backward accumulates and
 * skips NULL outputs. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/dist.h"

/* An assertion for hot loops: libcheck's ck_assert records a mark point on every success, which
 * costs a pipe write per call. */
#define check_or_abort(cond, ...)      \
    do {                               \
        if (!(cond))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* Gradient checks: central differences with step GC_H on float inputs, against losses summed in
 * double. The backward functions compute in float (relative error ~1e-6) and the truncation error
 * at this step is ~1e-5, so GC_TOL leaves a wide margin while a wrong sign, factor or term (an
 * O(1) error) fails. GC_FLOOR keeps near-zero gradients from dominating. */
#define GC_H     1e-3f
#define GC_TOL   2e-3
#define GC_FLOOR 1e-2

/* More than gauss_std_backward's chunk of 256 and tanh_gauss_logpdf's chunk of 64. */
enum { DN = 300, DA = 150 };

typedef struct dist_ctx {
    size_t n;
    float g;
    float x[DN], mu[DN], std[DN];
    float raw[DN], w[DN], eps[DN];
    float mq[DN], sq[DN], mp[DN], sp[DN];
    float u[DN], a[DN], low[DN], high[DN];
    int rows, da;
} dist_ctx;

/* Random but well-conditioned inputs for every function. */
static void ctx_init(dist_ctx *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    rng_t r;
    rng_seed(&r, seed, 0);
    c->n = DN;
    c->g = 0.7f;
    fill_uniform(c->mu, DN, -1.0f, 1.0f, &r);
    fill_uniform(c->std, DN, 0.3f, 2.0f, &r);
    rng_fill_normal(&r, c->eps, DN);
    for (int i = 0; i < DN; i++)
        c->x[i] = c->mu[i] + 1.5f * c->std[i] * c->eps[i];
    fill_uniform(c->raw, DN, -4.0f, 4.0f, &r);
    fill_uniform(c->w, DN, -1.0f, 1.0f, &r);
    fill_uniform(c->mq, DN, -1.0f, 1.0f, &r);
    fill_uniform(c->mp, DN, -1.0f, 1.0f, &r);
    fill_uniform(c->sq, DN, 0.3f, 2.0f, &r);
    fill_uniform(c->sp, DN, 0.3f, 2.0f, &r);
    /* u up to +-6, plus a few far out where 1 - tanh^2 underflows in double. */
    fill_uniform(c->u, DN, -6.0f, 6.0f, &r);
    c->u[0] = 15.0f;
    c->u[1] = -30.0f;
    c->u[2] = 0.0f;
    fill_uniform(c->low, DA, -2.0f, -0.5f, &r);
    fill_uniform(c->high, DA, 0.5f, 3.0f, &r);
    c->rows = DN / DA;
    c->da = DA;
    /* Actions strictly inside the box: the squash of moderate pre-images. */
    float u0[DA];
    fill_uniform(u0, DA, -2.5f, 2.5f, &r);
    squash_forward(c->a, u0, c->low, c->high, 1, DA);
}

/* ---- Closed forms and numerical integrals ---- */

static double ref_logpdf1(double x, double mu, double s)
{
    double z = (x - mu) / s;
    return -0.5 * z * z - log(s) - 0.5 * log(2.0 * M_PI);
}

/* KL(N(m1, s1) || N(m2, s2)) written as 0.5 (s1^2/s2^2 + (m2 - m1)^2/s2^2 - 1 + 2 ln(s2/s1)). */
static double ref_kl1(double m1, double s1, double m2, double s2)
{
    double r = s1 / s2, dm = (m2 - m1) / s2;
    return 0.5 * (r * r + dm * dm - 1.0 - 2.0 * log(r));
}

START_TEST(test_logpdf_closed_form)
{
    dist_ctx c;
    ctx_init(&c, 1);
    double want = 0.0;
    for (size_t i = 0; i < c.n; i++)
        want += ref_logpdf1(c.x[i], c.mu[i], c.std[i]);
    double got = gauss_logpdf(c.x, c.mu, c.std, c.n);
    ck_assert_double_le(fabs(got - want), 1e-12 * fabs(want));
    /* Known values. */
    float zero = 0.0f, one = 1.0f, two = 2.0f, three = 3.0f;
    ck_assert_double_eq_tol(gauss_logpdf(&zero, &zero, &one, 1), -0.91893853320467274, 1e-15);
    ck_assert_double_eq_tol(gauss_logpdf(&one, &zero, &one, 1), -1.4189385332046727, 1e-15);
    ck_assert_double_eq_tol(gauss_logpdf(&three, &one, &two, 1),
                            -0.5 - log(2.0) - 0.91893853320467274, 1e-15);
    ck_assert_double_eq(gauss_logpdf(&zero, &zero, &one, 0), 0.0);
}
END_TEST

START_TEST(test_logpdf_normalised)
{
    /* The density integrates to 1 (trapezoid over +-10 sd). */
    const float ms[3][2] = {{0.0f, 1.0f}, {2.5f, 0.1f}, {-3.0f, 4.0f}};
    for (int k = 0; k < 3; k++) {
        float mu = ms[k][0], s = ms[k][1];
        enum { N = 20001 };
        double lo = mu - 10.0 * s, hi = mu + 10.0 * s, h = (hi - lo) / (N - 1), sum = 0.0;
        for (int i = 0; i < N; i++) {
            float x = (float)(lo + h * i);
            double p = exp(gauss_logpdf(&x, &mu, &s, 1));
            sum += (i == 0 || i == N - 1) ? 0.5 * p : p;
        }
        ck_assert_double_eq_tol(sum * h, 1.0, 1e-6);
    }
}
END_TEST

START_TEST(test_entropy_closed_form)
{
    dist_ctx c;
    ctx_init(&c, 2);
    double want = 0.0;
    for (size_t i = 0; i < c.n; i++)
        want += 0.5 * log(2.0 * M_PI * M_E * (double)c.std[i] * c.std[i]);
    ck_assert_double_le(fabs(gauss_entropy(c.std, c.n) - want), 1e-12 * fabs(want));
    float one = 1.0f;
    ck_assert_double_eq_tol(gauss_entropy(&one, 1), 1.4189385332046727, 1e-15);
    ck_assert_double_eq(gauss_entropy(&one, 0), 0.0);
    /* And as -integral p log p, for a narrow and a wide density. */
    const float ss[2] = {0.05f, 3.0f};
    for (int k = 0; k < 2; k++) {
        enum { N = 20001 };
        float mu = 0.3f, s = ss[k];
        double lo = mu - 12.0 * s, h = 24.0 * s / (N - 1), sum = 0.0;
        for (int i = 0; i < N; i++) {
            double x = lo + h * i, lp = ref_logpdf1(x, mu, s), p = exp(lp);
            sum += ((i == 0 || i == N - 1) ? 0.5 : 1.0) * -p * lp;
        }
        ck_assert_double_eq_tol(gauss_entropy(&s, 1), sum * h, 1e-7);
    }
}
END_TEST

START_TEST(test_kl_closed_form)
{
    dist_ctx c;
    ctx_init(&c, 3);
    double want = 0.0;
    for (size_t i = 0; i < c.n; i++)
        want += ref_kl1(c.mq[i], c.sq[i], c.mp[i], c.sp[i]);
    double got = gauss_kl(c.mq, c.sq, c.mp, c.sp, c.n);
    ck_assert_double_le(fabs(got - want), 1e-11 * fabs(want));
    /* Known value: KL(N(0, 1) || N(1, 2)) = ln 2 + (1 + 1) / 8 - 1/2. */
    float m0 = 0.0f, m1 = 1.0f, s1 = 1.0f, s2 = 2.0f;
    ck_assert_double_eq_tol(gauss_kl(&m0, &s1, &m1, &s2, 1), log(2.0) + 0.25 - 0.5, 1e-15);
    ck_assert_double_eq(gauss_kl(&m0, &s1, &m1, &s2, 0), 0.0);
}
END_TEST

START_TEST(test_kl_numerical_integral)
{
    /* KL(q || p) = integral q (log q - log p), by trapezoid over +-12 sd of q. */
    const float cases[4][4] = {{0.0f, 1.0f, 0.0f, 1.0f},
                               {0.0f, 1.0f, 1.0f, 2.0f},
                               {1.5f, 0.2f, -0.5f, 0.7f},
                               {-2.0f, 3.0f, 0.0f, 1.5f}};
    for (int k = 0; k < 4; k++) {
        float mq = cases[k][0], sq = cases[k][1], mp = cases[k][2], sp = cases[k][3];
        enum { N = 40001 };
        double lo = mq - 12.0 * sq, h = 24.0 * sq / (N - 1), sum = 0.0;
        for (int i = 0; i < N; i++) {
            double x = lo + h * i, lq = ref_logpdf1(x, mq, sq), lp = ref_logpdf1(x, mp, sp);
            sum += ((i == 0 || i == N - 1) ? 0.5 : 1.0) * exp(lq) * (lq - lp);
        }
        ck_assert_double_eq_tol(gauss_kl(&mq, &sq, &mp, &sp, 1), sum * h, 1e-7);
    }
}
END_TEST

START_TEST(test_kl_identical_zero_and_nonnegative)
{
    dist_ctx c;
    ctx_init(&c, 4);
    ck_assert_double_le(fabs(gauss_kl(c.mq, c.sq, c.mq, c.sq, c.n)), 1e-12);
    /* KL >= 0 over wide random pairs, = 0 only for equal ones; and it is a sum over dimensions. */
    rng_t r;
    rng_seed(&r, 44, 0);
    double total = 0.0;
    float mq[1000], sq[1000], mp[1000], sp[1000];
    for (int i = 0; i < 1000; i++) {
        mq[i] = 10.0f * (float)rng_uniform(&r) - 5.0f;
        mp[i] = 10.0f * (float)rng_uniform(&r) - 5.0f;
        sq[i] = (float)exp(9.0 * rng_uniform(&r) - 4.5); /* 0.01 .. 90 */
        sp[i] = (float)exp(9.0 * rng_uniform(&r) - 4.5);
        double kl = gauss_kl(&mq[i], &sq[i], &mp[i], &sp[i], 1);
        check_or_abort(kl > 0.0, "KL(N(%g, %g) || N(%g, %g)) = %g", mq[i], sq[i], mp[i], sp[i], kl);
        total += kl;
    }
    ck_assert_double_le(fabs(gauss_kl(mq, sq, mp, sp, 1000) - total), 1e-12 * total);
    /* Nearly identical: small and non-negative. */
    float a = 0.3f, b = nextafterf(0.3f, 1.0f), s = 1.0f;
    double kl = gauss_kl(&a, &s, &b, &s, 1);
    ck_assert(kl >= 0.0 && kl < 1e-14);
}
END_TEST

START_TEST(test_kl_monte_carlo)
{
    /* KL(q || p) = E_q[log q(z) - log p(z)], with z = mq + sq eps drawn through gauss_sample. */
    enum { N = 1 << 16 };
    static float z[N], eps[N], mq[N], sq[N], mp[N], sp[N];
    rng_t r;
    rng_seed(&r, 45, 0);
    rng_fill_normal(&r, eps, N);
    for (int i = 0; i < N; i++) {
        mq[i] = 0.5f;
        sq[i] = 0.8f;
        mp[i] = -0.2f;
        sp[i] = 1.3f;
    }
    gauss_sample(z, mq, sq, eps, N);
    double s = 0.0, s2 = 0.0;
    for (int i = 0; i < N; i++) {
        double d = gauss_logpdf(&z[i], &mq[i], &sq[i], 1) - gauss_logpdf(&z[i], &mp[i], &sp[i], 1);
        s += d;
        s2 += d * d;
    }
    double mean = s / N, se = sqrt((s2 / N - mean * mean) / N);
    ck_assert_double_le(fabs(mean - gauss_kl(mq, sq, mp, sp, 1)), 6.0 * se);
}
END_TEST

START_TEST(test_std_forward)
{
    dist_ctx c;
    ctx_init(&c, 5);
    float std[DN];
    const float min_std = 0.1f;
    gauss_std_forward(std, c.raw, min_std, c.n);
    for (size_t i = 0; i < c.n; i++) {
        double x = c.raw[i];
        double want = (x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))) + min_std;
        ck_assert_double_le(fabs(std[i] - want), 4e-7 * want);
        ck_assert_float_ge(std[i], min_std);
    }
    /* Extremes: the floor holds far left, std ~ raw far right. */
    const float raw[5] = {-100.0f, -INFINITY, 100.0f, 1e30f, 0.0f};
    float out[5];
    gauss_std_forward(out, raw, min_std, 5);
    ck_assert_float_eq_tol(out[0], min_std, 1e-9f);
    ck_assert_float_eq(out[1], min_std);
    ck_assert_float_eq_tol(out[2], 100.1f, 1e-5f);
    ck_assert_float_eq(out[3], 1e30f);
    ck_assert_float_eq_tol(out[4], (float)M_LN2 + min_std, 1e-7f);
    /* In place. */
    float inplace[DN];
    memcpy(inplace, c.raw, sizeof inplace);
    gauss_std_forward(inplace, inplace, min_std, c.n);
    ck_assert_mem_eq(inplace, std, sizeof inplace);
}
END_TEST

START_TEST(test_sample_statistics)
{
    enum { N = 1 << 18 };
    static float z[N], mu[N], std[N], eps[N];
    rng_t r;
    rng_seed(&r, 6, 0);
    rng_fill_normal(&r, eps, N);
    for (int i = 0; i < N; i++) {
        mu[i] = 1.5f;
        std[i] = 0.3f;
    }
    gauss_sample(z, mu, std, eps, N);
    double s = 0.0, s2 = 0.0;
    for (int i = 0; i < N; i++) {
        check_or_abort(z[i] == mu[i] + std[i] * eps[i], "z[%d] != mu + std eps", i);
        s += z[i];
        s2 += ((double)z[i] - 1.5) * ((double)z[i] - 1.5);
    }
    double mean = s / N, var = s2 / N;
    ck_assert_double_le(fabs(mean - 1.5), 6.0 * 0.3 / sqrt(N));
    ck_assert_double_le(fabs(var - 0.09), 6.0 * 0.09 * sqrt(2.0 / N));
}
END_TEST

/* ---- The squash ---- */

START_TEST(test_squash_forward_values_and_bounds)
{
    dist_ctx c;
    ctx_init(&c, 7);
    float a[DN];
    squash_forward(a, c.u, c.low, c.high, c.rows, c.da);
    for (int r = 0; r < c.rows; r++)
        for (int j = 0; j < c.da; j++) {
            double mid = 0.5 * ((double)c.high[j] + c.low[j]);
            double half = 0.5 * ((double)c.high[j] - c.low[j]);
            float got = a[r * c.da + j];
            double want = mid + half * tanh((double)c.u[r * c.da + j]);
            check_or_abort(fabs(got - want) <= 4.0 * FLT_EPSILON * (fabs(mid) + half),
                           "squash row %d col %d: %.9g, want %.9g", r, j, got, want);
            check_or_abort(got >= c.low[j] && got <= c.high[j], "squash %.9g outside [%g, %g]", got,
                           c.low[j], c.high[j]);
        }
    /* Far out, at infinity and in place, the action stays in the box. */
    const float low[3] = {-1.0f, 0.0f, 10.0f}, high[3] = {1.0f, 1.0f, 20.0f};
    float u[6] = {1e4f, -1e4f, INFINITY, -INFINITY, 50.0f, -50.0f};
    squash_forward(u, u, low, high, 2, 3);
    for (int i = 0; i < 6; i++) {
        ck_assert(u[i] >= low[i % 3] && u[i] <= high[i % 3]);
        ck_assert_double_le(fabs(u[i] - (i == 0 || i == 2 || i == 4 ? high : low)[i % 3]),
                            1e-6 * (1.0 + fabs(high[i % 3])));
    }
}
END_TEST

START_TEST(test_squash_round_trip)
{
    /* u -> a -> u: the error is the float error of a divided by da/du = half (1 - tanh^2). */
    enum { N = 2001 };
    const float low[1] = {-2.0f}, high[1] = {3.0f};
    float u[N], a[N], back[N];
    for (int i = 0; i < N; i++)
        u[i] = (float)(-6.0 + 12.0 * i / (N - 1));
    squash_forward(a, u, low, high, N, 1);
    squash_inverse(back, a, low, high, N, 1);
    for (int i = 0; i < N; i++) {
        double t = tanh((double)u[i]), slope = 2.5 * (1.0 - t * t);
        double tol = 4.0 * FLT_EPSILON * 3.0 / slope + 2.0 * FLT_EPSILON * fabs(u[i]);
        check_or_abort(fabs(back[i] - u[i]) <= tol, "u %.9g -> a %.9g -> u %.9g (tol %.3g)", u[i],
                       a[i], back[i], tol);
    }
    /* a -> u -> a over the inside of the box. */
    for (int i = 0; i < N; i++)
        a[i] = (float)(-2.0 + 5.0 * (i + 0.5) / N);
    squash_inverse(u, a, low, high, N, 1);
    squash_forward(back, u, low, high, N, 1);
    for (int i = 0; i < N; i++)
        check_or_abort(fabs(back[i] - a[i]) <= 8.0 * FLT_EPSILON * 3.0, "a %.9g -> %.9g", a[i],
                       back[i]);
}
END_TEST

START_TEST(test_squash_inverse_edges)
{
    /* On or beyond the box edge, the ratio is clipped to 1 - 1e-6: a finite u. */
    const double uedge = atanh(1.0 - 1e-6);
    const float low[2] = {-1.0f, 0.0f}, high[2] = {1.0f, 4.0f};
    const float a[8] = {1.0f, 4.0f, -1.0f, 0.0f, 5.0f, 100.0f, -7.0f, -1.0f};
    float u[8];
    squash_inverse(u, a, low, high, 4, 2);
    const double want[8] = {uedge, uedge, -uedge, -uedge, uedge, uedge, -uedge, -uedge};
    for (int i = 0; i < 8; i++) {
        ck_assert(isfinite(u[i]));
        ck_assert_double_eq_tol(u[i], want[i], 1e-5);
    }
    /* The middle of the box maps to 0. */
    const float mid[2] = {0.0f, 2.0f};
    squash_inverse(u, mid, low, high, 1, 2);
    ck_assert_float_eq(u[0], 0.0f);
    ck_assert_float_eq(u[1], 0.0f);
}
END_TEST

/* log(half (1 - tanh(u)^2)) in double without the cancellation: -2 log cosh u while cosh is
 * finite, and log 4 - 2|u| beyond (where exp(-2|u|) is far below double precision). */
static double ref_log_jacobian1(double u, double half)
{
    double au = fabs(u);
    return log(half) + (au < 300.0 ? -2.0 * log(cosh(au)) : log(4.0) - 2.0 * au);
}

START_TEST(test_log_jacobian_values)
{
    dist_ctx c;
    ctx_init(&c, 8);
    double want = 0.0;
    for (int r = 0; r < c.rows; r++)
        for (int j = 0; j < c.da; j++)
            want += ref_log_jacobian1(c.u[r * c.da + j], 0.5 * ((double)c.high[j] - c.low[j]));
    double got = squash_log_jacobian(c.u, c.low, c.high, c.rows, c.da);
    ck_assert_double_le(fabs(got - want), 1e-12 * fabs(want));
    /* Moderate u: the direct formula in double agrees. */
    const float low[1] = {-0.5f}, high[1] = {2.0f};
    for (int i = -50; i <= 50; i++) {
        float u = 0.1f * (float)i;
        double t = tanh((double)u), direct = log(1.25 * (1.0 - t * t));
        double v = squash_log_jacobian(&u, low, high, 1, 1);
        check_or_abort(fabs(v - direct) <= 1e-12 * (1.0 + fabs(direct)), "u=%g: %.15g vs %.15g", u,
                       v, direct);
    }
}
END_TEST

START_TEST(test_log_jacobian_large_u)
{
    /* Where 1 - tanh(u)^2 rounds to 0 in double (|u| > 19), the result stays finite and exact. */
    const float us[] = {19.0f, 20.0f, -25.0f, 50.0f, -100.0f, 400.0f, 1000.0f, -1e4f, 1e6f};
    const float low[1] = {-1.0f}, high[1] = {1.0f};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        double v = squash_log_jacobian(&us[i], low, high, 1, 1);
        double want = ref_log_jacobian1(us[i], 1.0);
        ck_assert_msg(isfinite(v), "log-Jacobian at u=%g is %g", us[i], v);
        ck_assert_msg(fabs(v - want) <= 1e-12 * fabs(want), "u=%g: %.17g, want %.17g", us[i], v,
                      want);
    }
    ck_assert_double_eq(squash_log_jacobian(us, low, high, 0, 1), 0.0);
}
END_TEST

/* ---- The tanh-squashed density ---- */

/* log density of a (da) in double: y = (a - mid)/half clipped like squash_inverse, u = atanh y,
 * log N(u; mu, std) - log(half (1 - y^2)). Also returns a bound on the effect of rounding u to
 * float, which the implementation does. */
static double ref_tanh_gauss(const float *a, const float *mu, const float *std, const float *low,
                             const float *high, int da, double *tol)
{
    double s = 0.0, bound = 1e-12;
    for (int j = 0; j < da; j++) {
        double mid = 0.5 * ((double)high[j] + low[j]), half = 0.5 * ((double)high[j] - low[j]);
        double y = (a[j] - mid) / half;
        y = fmin(fmax(y, -(1.0 - 1e-6)), 1.0 - 1e-6);
        double u = atanh(y);
        s += ref_logpdf1(u, mu[j], std[j]) - log(half) - log1p(-y * y);
        double slope = fabs((u - mu[j]) / ((double)std[j] * std[j])) + 2.0;
        bound += slope * fabs(u) * FLT_EPSILON;
    }
    *tol = bound;
    return s;
}

START_TEST(test_tanh_gauss_values)
{
    dist_ctx c;
    ctx_init(&c, 9);
    double tol;
    double want = ref_tanh_gauss(c.a, c.mu, c.std, c.low, c.high, c.da, &tol);
    double got = tanh_gauss_logpdf(c.a, c.mu, c.std, c.low, c.high, c.da);
    ck_assert_msg(fabs(got - want) <= tol, "tanh_gauss_logpdf %.12g, want %.12g (tol %.3g)", got,
                  want, tol);
    /* It is exactly the Gaussian log density of the pre-image minus the log-Jacobian there. */
    float u[DA];
    squash_inverse(u, c.a, c.low, c.high, 1, c.da);
    double parts =
        gauss_logpdf(u, c.mu, c.std, (size_t)c.da) - squash_log_jacobian(u, c.low, c.high, 1, c.da);
    ck_assert_double_le(fabs(got - parts), 1e-12 * (1.0 + fabs(got)));
    /* And a sum over dimensions: the chunks of 64 do not shift anything. */
    double per_dim = 0.0;
    for (int j = 0; j < c.da; j++)
        per_dim += tanh_gauss_logpdf(c.a + j, c.mu + j, c.std + j, c.low + j, c.high + j, 1);
    ck_assert_double_le(fabs(got - per_dim), 1e-12 * (1.0 + fabs(got)));
}
END_TEST

START_TEST(test_tanh_gauss_integrates_to_one)
{
    /* da = 1: the density over the box integrates to 1 (trapezoid; the density vanishes at the
     * edges for these std, and the mass beyond the clip at 1 - 1e-6 is below 1e-9). */
    const float cases[4][4] = {
        {0.0f, 0.5f, -1.0f, 1.0f},
        {0.8f, 0.3f, -2.0f, 3.0f},
        {-1.0f, 1.0f, 0.0f, 1.0f},
        {2.0f, 0.7f, -0.5f, 0.5f},
    };
    for (int k = 0; k < 4; k++) {
        float mu = cases[k][0], s = cases[k][1], lo = cases[k][2], hi = cases[k][3];
        enum { N = 400001 };
        double h = ((double)hi - lo) / (N - 1), sum = 0.0;
        for (int i = 0; i < N; i++) {
            float a = (float)(lo + h * i);
            double p = exp(tanh_gauss_logpdf(&a, &mu, &s, &lo, &hi, 1));
            sum += (i == 0 || i == N - 1) ? 0.5 * p : p;
        }
        ck_assert_msg(fabs(sum * h - 1.0) < 1e-4, "mu=%g std=%g box [%g, %g]: integral %.9g", mu, s,
                      lo, hi, sum * h);
    }
}
END_TEST

/* ---- Gradient checks ---- */

static double loss_std(void *p)
{
    dist_ctx *c = p;
    float std[DN];
    gauss_std_forward(std, c->raw, 0.1f, c->n);
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++)
        s += (double)c->w[i] * std[i];
    return s;
}

START_TEST(test_grad_std)
{
    dist_ctx c;
    ctx_init(&c, 20);
    float draw[DN] = {0};
    gauss_std_backward(draw, c.w, c.raw, c.n); /* dL/dstd = w */
    /* A larger step for the float softplus inside the loss. */
    gradcheck_result res = gradcheck(loss_std, &c, c.raw, draw, c.n, 1e-2f, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_std_backward draw");
}
END_TEST

/* L = sum w z + 0.5 sum z^2 with z = mu + std eps; dL/dz = w + z. */
static double loss_sample(void *p)
{
    dist_ctx *c = p;
    float z[DN];
    gauss_sample(z, c->mu, c->std, c->eps, c->n);
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++)
        s += (double)c->w[i] * z[i] + 0.5 * (double)z[i] * z[i];
    return s;
}

START_TEST(test_grad_sample)
{
    dist_ctx c;
    ctx_init(&c, 21);
    float z[DN], dz[DN], dmu[DN] = {0}, dstd[DN] = {0};
    gauss_sample(z, c.mu, c.std, c.eps, c.n);
    for (size_t i = 0; i < c.n; i++)
        dz[i] = c.w[i] + z[i];
    gauss_sample_backward(dmu, dstd, dz, c.eps, c.n);
    /* The loss is quadratic in z, so central differences have no truncation error: a large step
     * only shrinks the rounding noise of the float z. */
    gradcheck_result res = gradcheck(loss_sample, &c, c.mu, dmu, c.n, 1e-2f, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_sample_backward dmu");
    res = gradcheck(loss_sample, &c, c.std, dstd, c.n, 1e-2f, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_sample_backward dstd");
}
END_TEST

static double loss_logpdf(void *p)
{
    dist_ctx *c = p;
    return c->g * gauss_logpdf(c->x, c->mu, c->std, c->n);
}

START_TEST(test_grad_logpdf)
{
    dist_ctx c;
    ctx_init(&c, 22);
    float dx[DN] = {0}, dmu[DN] = {0}, dstd[DN] = {0};
    gauss_logpdf_backward(dx, dmu, dstd, c.g, c.x, c.mu, c.std, c.n);
    gradcheck_result res = gradcheck(loss_logpdf, &c, c.x, dx, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_logpdf_backward dx");
    res = gradcheck(loss_logpdf, &c, c.mu, dmu, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_logpdf_backward dmu");
    res = gradcheck(loss_logpdf, &c, c.std, dstd, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_logpdf_backward dstd");
}
END_TEST

static double loss_entropy(void *p)
{
    dist_ctx *c = p;
    return c->g * gauss_entropy(c->std, c->n);
}

START_TEST(test_grad_entropy)
{
    dist_ctx c;
    ctx_init(&c, 23);
    c.g = -1.3f;
    float dstd[DN] = {0};
    gauss_entropy_backward(dstd, c.g, c.std, c.n);
    gradcheck_result res = gradcheck(loss_entropy, &c, c.std, dstd, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_entropy_backward dstd");
}
END_TEST

static double loss_kl(void *p)
{
    dist_ctx *c = p;
    return c->g * gauss_kl(c->mq, c->sq, c->mp, c->sp, c->n);
}

START_TEST(test_grad_kl)
{
    dist_ctx c;
    ctx_init(&c, 24);
    float dmq[DN] = {0}, dsq[DN] = {0}, dmp[DN] = {0}, dsp[DN] = {0};
    gauss_kl_backward(dmq, dsq, dmp, dsp, c.g, c.mq, c.sq, c.mp, c.sp, c.n);
    gradcheck_result res = gradcheck(loss_kl, &c, c.mq, dmq, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_kl_backward dmq");
    res = gradcheck(loss_kl, &c, c.sq, dsq, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_kl_backward dsq");
    res = gradcheck(loss_kl, &c, c.mp, dmp, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_kl_backward dmp");
    res = gradcheck(loss_kl, &c, c.sp, dsp, c.n, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "gauss_kl_backward dsp");
}
END_TEST

static double loss_log_jacobian(void *p)
{
    dist_ctx *c = p;
    return c->g * squash_log_jacobian(c->u, c->low, c->high, c->rows, c->da);
}

START_TEST(test_grad_log_jacobian)
{
    dist_ctx c;
    ctx_init(&c, 25);
    float du[DN] = {0};
    squash_log_jacobian_backward(du, c.g, c.u, (size_t)c.rows * c.da);
    gradcheck_result res =
        gradcheck(loss_log_jacobian, &c, c.u, du, (size_t)c.rows * c.da, GC_H, DN, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "squash_log_jacobian_backward du");
}
END_TEST

static double loss_tanh_gauss(void *p)
{
    dist_ctx *c = p;
    return c->g * tanh_gauss_logpdf(c->a, c->mu, c->std, c->low, c->high, c->da);
}

START_TEST(test_grad_tanh_gauss)
{
    dist_ctx c;
    ctx_init(&c, 26);
    float dmu[DA] = {0}, dstd[DA] = {0};
    tanh_gauss_logpdf_backward(dmu, dstd, c.g, c.a, c.mu, c.std, c.low, c.high, c.da);
    gradcheck_result res = gradcheck(loss_tanh_gauss, &c, c.mu, dmu, DA, GC_H, DA, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "tanh_gauss_logpdf_backward dmu");
    res = gradcheck(loss_tanh_gauss, &c, c.std, dstd, DA, GC_H, DA, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "tanh_gauss_logpdf_backward dstd");
}
END_TEST

START_TEST(test_grad_tanh_gauss_near_edge)
{
    /* Actions close to the box edge (large |u|) and a narrow std: still the right gradient. */
    dist_ctx c;
    ctx_init(&c, 27);
    const int da = 8;
    for (int j = 0; j < da; j++) {
        float half = 0.5f * (c.high[j] - c.low[j]), mid = 0.5f * (c.high[j] + c.low[j]);
        c.a[j] = mid + half * ((j & 1) ? -0.9995f : 0.9995f);
        c.mu[j] = (j & 1) ? -3.5f : 3.5f;
        c.std[j] = 0.2f + 0.1f * (float)j;
    }
    c.da = da;
    float dmu[8] = {0}, dstd[8] = {0};
    tanh_gauss_logpdf_backward(dmu, dstd, c.g, c.a, c.mu, c.std, c.low, c.high, da);
    gradcheck_result res = gradcheck(loss_tanh_gauss, &c, c.mu, dmu, da, GC_H, da, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "tanh_gauss_logpdf_backward dmu near the edge");
    res = gradcheck(loss_tanh_gauss, &c, c.std, dstd, da, GC_H, da, GC_FLOOR);
    ck_assert_grad(res, GC_TOL, "tanh_gauss_logpdf_backward dstd near the edge");
}
END_TEST

/* ---- Backward contract: accumulate, NULL outputs, empty input ---- */

/* Checks after[i] == before[i] + fresh[i] (the same float addition the backward does). */
static void check_accumulated(const char *what, const float *before, const float *fresh,
                              const float *after, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_or_abort(after[i] == before[i] + fresh[i], "%s[%zu]: %.9g, want %.9g + %.9g", what, i,
                       after[i], before[i], fresh[i]);
}

START_TEST(test_backward_accumulates)
{
    dist_ctx c;
    ctx_init(&c, 30);
    rng_t r;
    rng_seed(&r, 31, 0);
    enum { K = 4 };
    static float pre[K][DN], acc[K][DN], fresh[K][DN];
    for (int k = 0; k < K; k++)
        fill_uniform(pre[k], DN, -1.0f, 1.0f, &r);
#define RESET()                         \
    do {                                \
        memcpy(acc, pre, sizeof acc);   \
        memset(fresh, 0, sizeof fresh); \
    } while (0)

    RESET();
    gauss_std_backward(acc[0], c.w, c.raw, c.n);
    gauss_std_backward(fresh[0], c.w, c.raw, c.n);
    check_accumulated("std draw", pre[0], fresh[0], acc[0], c.n);

    RESET();
    gauss_sample_backward(acc[0], acc[1], c.w, c.eps, c.n);
    gauss_sample_backward(fresh[0], fresh[1], c.w, c.eps, c.n);
    check_accumulated("sample dmu", pre[0], fresh[0], acc[0], c.n);
    check_accumulated("sample dstd", pre[1], fresh[1], acc[1], c.n);

    RESET();
    gauss_logpdf_backward(acc[0], acc[1], acc[2], c.g, c.x, c.mu, c.std, c.n);
    gauss_logpdf_backward(fresh[0], fresh[1], fresh[2], c.g, c.x, c.mu, c.std, c.n);
    check_accumulated("logpdf dx", pre[0], fresh[0], acc[0], c.n);
    check_accumulated("logpdf dmu", pre[1], fresh[1], acc[1], c.n);
    check_accumulated("logpdf dstd", pre[2], fresh[2], acc[2], c.n);

    RESET();
    gauss_entropy_backward(acc[0], c.g, c.std, c.n);
    gauss_entropy_backward(fresh[0], c.g, c.std, c.n);
    check_accumulated("entropy dstd", pre[0], fresh[0], acc[0], c.n);

    RESET();
    gauss_kl_backward(acc[0], acc[1], acc[2], acc[3], c.g, c.mq, c.sq, c.mp, c.sp, c.n);
    gauss_kl_backward(fresh[0], fresh[1], fresh[2], fresh[3], c.g, c.mq, c.sq, c.mp, c.sp, c.n);
    for (int k = 0; k < 4; k++)
        check_accumulated("kl", pre[k], fresh[k], acc[k], c.n);

    RESET();
    squash_log_jacobian_backward(acc[0], c.g, c.u, c.n);
    squash_log_jacobian_backward(fresh[0], c.g, c.u, c.n);
    check_accumulated("log-Jacobian du", pre[0], fresh[0], acc[0], c.n);

    RESET();
    tanh_gauss_logpdf_backward(acc[0], acc[1], c.g, c.a, c.mu, c.std, c.low, c.high, c.da);
    tanh_gauss_logpdf_backward(fresh[0], fresh[1], c.g, c.a, c.mu, c.std, c.low, c.high, c.da);
    check_accumulated("tanh_gauss dmu", pre[0], fresh[0], acc[0], (size_t)c.da);
    check_accumulated("tanh_gauss dstd", pre[1], fresh[1], acc[1], (size_t)c.da);
    /* Nothing beyond da is written. */
    ck_assert_mem_eq(acc[0] + c.da, pre[0] + c.da, sizeof(float) * (DN - (size_t)c.da));
#undef RESET
}
END_TEST

START_TEST(test_backward_null_outputs)
{
    /* Each gradient pointer may be NULL; the others get exactly what they get with all present. */
    dist_ctx c;
    ctx_init(&c, 32);
    float all[4][DN], one[DN];
    memset(all, 0, sizeof all);
    gauss_sample_backward(all[0], all[1], c.w, c.eps, c.n);
    for (int k = 0; k < 2; k++) {
        memset(one, 0, sizeof one);
        gauss_sample_backward(k == 0 ? one : NULL, k == 1 ? one : NULL, c.w, c.eps, c.n);
        ck_assert_mem_eq(one, all[k], sizeof one);
    }
    memset(all, 0, sizeof all);
    gauss_logpdf_backward(all[0], all[1], all[2], c.g, c.x, c.mu, c.std, c.n);
    for (int k = 0; k < 3; k++) {
        memset(one, 0, sizeof one);
        gauss_logpdf_backward(k == 0 ? one : NULL, k == 1 ? one : NULL, k == 2 ? one : NULL, c.g,
                              c.x, c.mu, c.std, c.n);
        ck_assert_mem_eq(one, all[k], sizeof one);
    }
    memset(all, 0, sizeof all);
    gauss_kl_backward(all[0], all[1], all[2], all[3], c.g, c.mq, c.sq, c.mp, c.sp, c.n);
    for (int k = 0; k < 4; k++) {
        memset(one, 0, sizeof one);
        gauss_kl_backward(k == 0 ? one : NULL, k == 1 ? one : NULL, k == 2 ? one : NULL,
                          k == 3 ? one : NULL, c.g, c.mq, c.sq, c.mp, c.sp, c.n);
        ck_assert_mem_eq(one, all[k], sizeof one);
    }
    memset(all, 0, sizeof all);
    tanh_gauss_logpdf_backward(all[0], all[1], c.g, c.a, c.mu, c.std, c.low, c.high, c.da);
    for (int k = 0; k < 2; k++) {
        memset(one, 0, sizeof one);
        tanh_gauss_logpdf_backward(k == 0 ? one : NULL, k == 1 ? one : NULL, c.g, c.a, c.mu, c.std,
                                   c.low, c.high, c.da);
        ck_assert_mem_eq(one, all[k], sizeof one);
    }
}
END_TEST

START_TEST(test_backward_chunks)
{
    /* tanh_gauss_logpdf_backward over da = 150 (three chunks) equals da = 1 dimension by
     * dimension. */
    dist_ctx c;
    ctx_init(&c, 33);
    float dmu[DA] = {0}, dstd[DA] = {0}, dmu1[DA] = {0}, dstd1[DA] = {0};
    tanh_gauss_logpdf_backward(dmu, dstd, c.g, c.a, c.mu, c.std, c.low, c.high, DA);
    for (int j = 0; j < DA; j++)
        tanh_gauss_logpdf_backward(dmu1 + j, dstd1 + j, c.g, c.a + j, c.mu + j, c.std + j,
                                   c.low + j, c.high + j, 1);
    ck_assert_mem_eq(dmu, dmu1, sizeof dmu);
    ck_assert_mem_eq(dstd, dstd1, sizeof dstd);
}
END_TEST

START_TEST(test_empty)
{
    float x[2] = {0.5f, 1.0f}, g[2] = {3.0f, 4.0f};
    const float lo[1] = {-1.0f}, hi[1] = {1.0f};
    ck_assert_double_eq(gauss_logpdf(x, x, x + 1, 0), 0.0);
    ck_assert_double_eq(gauss_entropy(x + 1, 0), 0.0);
    ck_assert_double_eq(gauss_kl(x, x + 1, x, x + 1, 0), 0.0);
    ck_assert_double_eq(squash_log_jacobian(x, lo, hi, 0, 1), 0.0);
    ck_assert_double_eq(tanh_gauss_logpdf(x, x, x + 1, lo, hi, 0), 0.0);
    gauss_std_backward(g, x, x, 0);
    gauss_sample_backward(g, g, x, x, 0);
    gauss_logpdf_backward(g, g, g, 1.0f, x, x, x + 1, 0);
    gauss_entropy_backward(g, 1.0f, x + 1, 0);
    gauss_kl_backward(g, g, g, g, 1.0f, x, x + 1, x, x + 1, 0);
    squash_log_jacobian_backward(g, 1.0f, x, 0);
    tanh_gauss_logpdf_backward(g, g, 1.0f, x, x, x + 1, lo, hi, 0);
    ck_assert(g[0] == 3.0f && g[1] == 4.0f);
}
END_TEST

START_TEST(test_narrow_and_wide_std)
{
    /* Very small and very large std: finite, and still the closed forms. */
    const float mu[4] = {0.0f, 1.0f, -2.0f, 5.0f}, s[4] = {1e-4f, 1e-3f, 1e3f, 1e4f};
    const float x[4] = {1e-3f, 1.002f, 500.0f, -1e4f};
    double want = 0.0;
    for (int i = 0; i < 4; i++)
        want += ref_logpdf1(x[i], mu[i], s[i]);
    double got = gauss_logpdf(x, mu, s, 4);
    ck_assert(isfinite(got));
    ck_assert_double_le(fabs(got - want), 1e-12 * fabs(want));
    double kl = gauss_kl(mu, s, mu + 2, s + 2, 2);
    ck_assert(isfinite(kl));
    ck_assert_double_le(
        fabs(kl - ref_kl1(mu[0], s[0], mu[2], s[2]) - ref_kl1(mu[1], s[1], mu[3], s[3])),
        1e-10 * kl);
}
END_TEST

Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");

    TCase *tc = tcase_create("gaussian");
    tcase_add_test(tc, test_logpdf_closed_form);
    tcase_add_test(tc, test_logpdf_normalised);
    tcase_add_test(tc, test_entropy_closed_form);
    tcase_add_test(tc, test_kl_closed_form);
    tcase_add_test(tc, test_kl_numerical_integral);
    tcase_add_test(tc, test_kl_identical_zero_and_nonnegative);
    tcase_add_test(tc, test_kl_monte_carlo);
    tcase_add_test(tc, test_std_forward);
    tcase_add_test(tc, test_sample_statistics);
    suite_add_tcase(s, tc);

    tc = tcase_create("squash");
    tcase_add_test(tc, test_squash_forward_values_and_bounds);
    tcase_add_test(tc, test_squash_round_trip);
    tcase_add_test(tc, test_log_jacobian_values);
    tcase_add_test(tc, test_tanh_gauss_values);
    tcase_add_test(tc, test_tanh_gauss_integrates_to_one);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradients");
    tcase_add_test(tc, test_grad_std);
    tcase_add_test(tc, test_grad_sample);
    tcase_add_test(tc, test_grad_logpdf);
    tcase_add_test(tc, test_grad_entropy);
    tcase_add_test(tc, test_grad_kl);
    tcase_add_test(tc, test_grad_log_jacobian);
    tcase_add_test(tc, test_grad_tanh_gauss);
    tcase_add_test(tc, test_grad_tanh_gauss_near_edge);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_backward_accumulates);
    tcase_add_test(tc, test_backward_null_outputs);
    tcase_add_test(tc, test_backward_chunks);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_squash_inverse_edges);
    tcase_add_test(tc, test_log_jacobian_large_u);
    tcase_add_test(tc, test_narrow_and_wide_std);
    suite_add_tcase(s, tc);

    return s;
}
