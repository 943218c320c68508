/* check_vmath: tests of core/vmath against libm in double.
 *
 * Accuracy: dense grids over each function's working range plus every float in windows around
 * the kernels' branch points, against a double reference. The error bounds are set just above
 * what the Cephes kernels achieve (measured over all 2^32 floats), so a wrong polynomial
 * coefficient, range-reduction constant or branch threshold fails:
 *   exp, log: relative error <= 1e-7;  tanh: absolute <= 1e-7 and relative <= 1.6e-7;
 *   sigmoid: absolute <= 1e-7, relative <= 2.5e-7;  softplus: relative <= 2.7e-7;
 *   SiLU: relative <= 3e-7.
 * (Measured maxima: exp 8.2e-8, log 8.1e-8, tanh 7.9e-8 absolute and 1.42e-7 relative, sigmoid
 * 8.9e-8 absolute and 2.0e-7 relative, softplus 2.25e-7, SiLU 2.49e-7.)
 * Results below FLT_MIN may flush to zero (the daemon runs with FTZ/DAZ, which check_main sets
 * through vm_thread_init), so an absolute floor of FLT_MIN (times |x| for SiLU) applies there.
 *
 * Edge cases: zeros, tiny and huge arguments, infinities and NaN, the saturation regions, in-place
 * use, lengths that are not a multiple of the vector width, n = 0 and unaligned arrays. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/vmath.h"

/* An assertion for hot loops: libcheck's ck_assert records a mark point on every success, which
 * costs a pipe write per call. */
#define check_or_abort(cond, ...)      \
    do {                               \
        if (!(cond))                   \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

typedef void (*vm_fn)(float *y, const float *x, size_t n);
typedef double (*ref_fn)(double x);

static double ref_exp(double x)
{
    return exp(x);
}

static double ref_log(double x)
{
    return log(x);
}

static double ref_tanh(double x)
{
    return tanh(x);
}

static double ref_sigmoid(double x)
{
    return x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

static double ref_softplus(double x)
{
    return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double ref_silu(double x)
{
    return x * ref_sigmoid(x);
}

/* A function under test with its reference and error bounds: each result must satisfy
 * |y - ref| <= rel_tol |ref| + floor (floor scaled by |x| when floor_times_x), and, when abs_tol
 * is set, |y - ref| <= abs_tol. */
typedef struct vm_case {
    const char *name;
    vm_fn f;
    ref_fn ref;
    double rel_tol;
    double abs_tol;
    double floor;
    int floor_times_x;
} vm_case;

static const vm_case case_exp = {"exp", vm_exp, ref_exp, 1e-7, 0.0, FLT_MIN, 0};
static const vm_case case_log = {"log", vm_log, ref_log, 1e-7, 0.0, 0.0, 0};
static const vm_case case_tanh = {"tanh", vm_tanh, ref_tanh, 1.6e-7, 1e-7, 0.0, 0};
static const vm_case case_sigmoid = {"sigmoid", vm_sigmoid, ref_sigmoid, 2.5e-7, 1e-7, FLT_MIN, 0};
static const vm_case case_softplus = {"softplus", vm_softplus, ref_softplus, 2.7e-7, 0.0, FLT_MIN,
                                      0};
static const vm_case case_silu = {"silu", vm_silu, ref_silu, 3e-7, 0.0, FLT_MIN, 1};

/* Worst errors seen over a set of points (relative where |ref| >= 1e-30, away from the floors). */
typedef struct err_stats {
    double max_rel, max_abs;
    float x_rel, x_abs;
} err_stats;

/* Evaluates c over x[0..n) in one call and checks every result against the reference; special
 * values (NaN, a result that overflows float) must match exactly. */
static err_stats check_points(const vm_case *c, const float *x, size_t n)
{
    err_stats st = {0};
    float *y = malloc((n ? n : 1) * sizeof *y);
    ck_assert_ptr_nonnull(y);
    c->f(y, x, n);
    for (size_t i = 0; i < n; i++) {
        double r = c->ref(x[i]);
        if (isnan(r)) {
            check_or_abort(isnan(y[i]), "%s(%.9g) = %.9g, want NaN", c->name, x[i], y[i]);
            continue;
        }
        float rf = (float)r;
        if (isinf(rf)) {
            check_or_abort(y[i] == rf, "%s(%.9g) = %.9g, want %g", c->name, x[i], y[i], rf);
            continue;
        }
        check_or_abort(isfinite(y[i]), "%s(%.9g) = %g, want %.9g", c->name, x[i], y[i], r);
        double err = fabs((double)y[i] - r);
        double floor = c->floor * (c->floor_times_x ? fmax(1.0, fabs(x[i])) : 1.0);
        check_or_abort(err <= c->rel_tol * fabs(r) + floor,
                       "%s(%.9g) = %.9g, want %.12g: error %.3g, relative %.3g > %.3g", c->name,
                       x[i], y[i], r, err, err / fabs(r), c->rel_tol);
        if (c->abs_tol > 0.0)
            check_or_abort(err <= c->abs_tol, "%s(%.9g) = %.9g, want %.12g: abs error %.3g > %.3g",
                           c->name, x[i], y[i], r, err, c->abs_tol);
        if (fabs(r) >= 1e-30 && err / fabs(r) > st.max_rel) {
            st.max_rel = err / fabs(r);
            st.x_rel = x[i];
        }
        if (err > st.max_abs) {
            st.max_abs = err;
            st.x_abs = x[i];
        }
    }
    free(y);
    return st;
}

/* n points evenly spaced over [lo, hi] (rounded to float). */
static err_stats check_linear_grid(const vm_case *c, double lo, double hi, size_t n)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * (double)i / (double)(n - 1));
    err_stats st = check_points(c, x, n);
    free(x);
    return st;
}

/* n points geometrically spaced over [lo, hi], lo > 0, with sign `sign`. */
static err_stats check_geometric_grid(const vm_case *c, double lo, double hi, size_t n, double sign)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    double l0 = log(lo), l1 = log(hi);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sign * exp(l0 + (l1 - l0) * (double)i / (double)(n - 1)));
    err_stats st = check_points(c, x, n);
    free(x);
    return st;
}

/* Every float within `ulps` steps of x0 (both sides). */
static void check_window(const vm_case *c, float x0, int ulps)
{
    size_t n = 2 * (size_t)ulps + 1;
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    float lo = x0;
    for (int i = 0; i < ulps; i++)
        lo = nextafterf(lo, -INFINITY);
    x[0] = lo;
    for (size_t i = 1; i < n; i++)
        x[i] = nextafterf(x[i - 1], INFINITY);
    check_points(c, x, n);
    free(x);
}

enum { GRID = 1 << 20 };

START_TEST(test_exp_accuracy)
{
    err_stats st = check_linear_grid(&case_exp, -87.33, 88.72, 2 * GRID);
    ck_assert_double_gt(st.max_rel, 1e-8); /* the check really compares something */
    check_linear_grid(&case_exp, -1.0, 1.0, GRID);
    check_linear_grid(&case_exp, -120.0, 120.0, GRID / 4); /* both saturation regions */
    check_geometric_grid(&case_exp, 1.2e-38, 1e-2, GRID / 8, 1.0);
    check_geometric_grid(&case_exp, 1.2e-38, 1e-2, GRID / 8, -1.0);
    /* The clamp points at the top and bottom of the range, and the reduction's branch edges. */
    check_window(&case_exp, 88.7228394f, 1 << 15);
    check_window(&case_exp, -87.3365402f, 1 << 15);
    check_window(&case_exp, 0.0f, 1 << 12);
    check_window(&case_exp, 0.34657359f, 1 << 12); /* ln(2) / 2: n switches from 0 to 1 */
    check_window(&case_exp, -0.34657359f, 1 << 12);
}
END_TEST

START_TEST(test_log_accuracy)
{
    err_stats st = check_geometric_grid(&case_log, FLT_MIN, FLT_MAX, 2 * GRID, 1.0);
    ck_assert_double_gt(st.max_rel, 1e-8);
    check_linear_grid(&case_log, 0.5, 2.0, GRID);
    check_linear_grid(&case_log, 1e-6, 1000.0, GRID / 2);
    /* Around 1 (cancellation), sqrt(1/2) and sqrt(2) (the mantissa switch), and the ends. */
    check_window(&case_log, 1.0f, 1 << 15);
    check_window(&case_log, 0.70710678f, 1 << 14);
    check_window(&case_log, 1.41421356f, 1 << 14);
    check_window(&case_log, FLT_MAX, 1 << 12);
    const float ends[] = {FLT_MIN, 2.0f * FLT_MIN, FLT_MAX, 1e-30f, 1e30f, 0.5f, 2.0f, 10.0f};
    check_points(&case_log, ends, sizeof ends / sizeof ends[0]);
}
END_TEST

START_TEST(test_tanh_accuracy)
{
    err_stats st = check_linear_grid(&case_tanh, -12.0, 12.0, 2 * GRID);
    ck_assert_double_gt(st.max_abs, 1e-8);
    check_linear_grid(&case_tanh, -1.0, 1.0, GRID);
    check_linear_grid(&case_tanh, -100.0, 100.0, GRID / 4);
    check_geometric_grid(&case_tanh, 1.2e-38, 1.0, GRID / 8, 1.0);
    check_geometric_grid(&case_tanh, 1.2e-38, 1.0, GRID / 8, -1.0);
    /* The switch from the odd polynomial to the exp form, and the clamp at 9. */
    check_window(&case_tanh, 0.625f, 1 << 16);
    check_window(&case_tanh, -0.625f, 1 << 16);
    check_window(&case_tanh, 9.0f, 1 << 16);
    check_window(&case_tanh, -9.0f, 1 << 16);
}
END_TEST

START_TEST(test_sigmoid_accuracy)
{
    err_stats st = check_linear_grid(&case_sigmoid, -90.0, 90.0, 2 * GRID);
    ck_assert_double_gt(st.max_rel, 1e-8);
    check_linear_grid(&case_sigmoid, -10.0, 10.0, GRID);
    check_linear_grid(&case_sigmoid, -120.0, 120.0, GRID / 4);
    check_geometric_grid(&case_sigmoid, 1.2e-38, 1.0, GRID / 8, 1.0);
    check_geometric_grid(&case_sigmoid, 1.2e-38, 1.0, GRID / 8, -1.0);
    check_window(&case_sigmoid, 0.0f, 1 << 14);
    check_window(&case_sigmoid, -87.3365402f, 1 << 14);
}
END_TEST

START_TEST(test_softplus_accuracy)
{
    err_stats st = check_linear_grid(&case_softplus, -90.0, 90.0, 2 * GRID);
    ck_assert_double_gt(st.max_rel, 1e-8);
    check_linear_grid(&case_softplus, -10.0, 10.0, GRID);
    check_linear_grid(&case_softplus, -120.0, 120.0, GRID / 4);
    check_geometric_grid(&case_softplus, 1.2e-38, 1.0, GRID / 8, 1.0);
    check_geometric_grid(&case_softplus, 1.2e-38, 1.0, GRID / 8, -1.0);
    check_window(&case_softplus, 0.0f, 1 << 14);
    check_window(&case_softplus, 17.0f, 1 << 14); /* where exp(-x) stops mattering */
    check_window(&case_softplus, -17.0f, 1 << 14);
}
END_TEST

START_TEST(test_silu_accuracy)
{
    err_stats st = check_linear_grid(&case_silu, -90.0, 90.0, 2 * GRID);
    ck_assert_double_gt(st.max_rel, 1e-8);
    check_linear_grid(&case_silu, -10.0, 10.0, GRID);
    check_linear_grid(&case_silu, -120.0, 120.0, GRID / 4);
    check_geometric_grid(&case_silu, 1.2e-38, 1.0, GRID / 8, 1.0);
    check_geometric_grid(&case_silu, 1.2e-38, 1.0, GRID / 8, -1.0);
    check_window(&case_silu, 0.0f, 1 << 14);
}
END_TEST

/* Runs f on one value. */
static float eval1(vm_fn f, float x)
{
    float y;
    f(&y, &x, 1);
    return y;
}

START_TEST(test_exp_edges)
{
    ck_assert_float_eq(eval1(vm_exp, 0.0f), 1.0f);
    ck_assert_float_eq(eval1(vm_exp, -0.0f), 1.0f);
    ck_assert_float_eq(eval1(vm_exp, 1e-30f), 1.0f);
    ck_assert_float_eq(eval1(vm_exp, -FLT_MIN), 1.0f);
    /* Overflow saturates at +inf from just above ln(FLT_MAX); the largest finite results are
     * accurate (the window test checks every float there). */
    const float big[] = {88.7228394f, 88.8f, 89.0f, 100.0f, 1e10f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        ck_assert_msg(isinf(eval1(vm_exp, big[i])) && eval1(vm_exp, big[i]) > 0,
                      "exp(%g) is not +inf", big[i]);
    ck_assert(isfinite(eval1(vm_exp, 88.7228317f)));
    ck_assert_float_gt(eval1(vm_exp, 88.7228317f), 3.4e38f);
    /* Underflow: zero (or a value below FLT_MIN), never negative or NaN. */
    const float small[] = {-87.34f, -88.0f, -100.0f, -104.0f, -1e10f, -FLT_MAX, -INFINITY};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        float y = eval1(vm_exp, small[i]);
        ck_assert_msg(y >= 0.0f && y < FLT_MIN, "exp(%g) = %g", small[i], y);
    }
    ck_assert_float_eq(eval1(vm_exp, -INFINITY), 0.0f);
    ck_assert_float_nan(eval1(vm_exp, NAN));
    ck_assert_float_nan(eval1(vm_exp, -NAN));
    /* exp(1) and exp(-1) to the bound. */
    ck_assert_double_le(fabs(eval1(vm_exp, 1.0f) - M_E), 1e-7 * M_E);
    ck_assert_double_le(fabs(eval1(vm_exp, -1.0f) - 1.0 / M_E), 1e-7 / M_E);
}
END_TEST

START_TEST(test_log_edges)
{
    ck_assert_float_eq(eval1(vm_log, 1.0f), 0.0f);
    ck_assert(isinf(eval1(vm_log, 0.0f)) && eval1(vm_log, 0.0f) < 0);
    ck_assert(isinf(eval1(vm_log, -0.0f)) && eval1(vm_log, -0.0f) < 0);
    ck_assert(isinf(eval1(vm_log, INFINITY)) && eval1(vm_log, INFINITY) > 0);
    const float neg[] = {-FLT_MIN, -1e-30f, -0.5f, -1.0f, -1e30f, -FLT_MAX, -INFINITY};
    for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++)
        ck_assert_msg(isnan(eval1(vm_log, neg[i])), "log(%g) is not NaN", neg[i]);
    ck_assert_float_nan(eval1(vm_log, NAN));
    /* Exact powers of two: k ln 2. */
    for (int k = -126; k <= 127; k++) {
        float x = ldexpf(1.0f, k);
        double want = k * M_LN2;
        check_or_abort(fabs(eval1(vm_log, x) - want) <= 1e-7 * fabs(want),
                       "log(2^%d) = %.9g, want %.9g", k, eval1(vm_log, x), want);
    }
    ck_assert_double_le(fabs(eval1(vm_log, FLT_MIN) - log(FLT_MIN)), 1e-7 * fabs(log(FLT_MIN)));
    ck_assert_double_le(fabs(eval1(vm_log, FLT_MAX) - log(FLT_MAX)), 1e-7 * log(FLT_MAX));
    /* Denormal inputs read as zero under DAZ (-inf); in any case nothing above log(FLT_MIN). */
    float den = FLT_MIN / 8.0f;
    ck_assert_float_le(eval1(vm_log, den), eval1(vm_log, FLT_MIN));
}
END_TEST

START_TEST(test_tanh_edges)
{
    ck_assert_float_eq(eval1(vm_tanh, 0.0f), 0.0f);
    ck_assert_float_eq(eval1(vm_tanh, -0.0f), 0.0f);
    /* Tiny arguments: tanh(x) = x to float precision. */
    const float tiny[] = {FLT_MIN, 1e-30f, 1e-10f, 1e-5f, -1e-5f, -1e-30f, -FLT_MIN};
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++)
        ck_assert_float_eq(eval1(vm_tanh, tiny[i]), tiny[i]);
    /* Saturation: within 1e-7 of +-1, never beyond, sign kept. */
    const float big[] = {9.0f, 9.5f, 10.0f, 20.0f, 88.0f, 1e10f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        float yp = eval1(vm_tanh, big[i]), yn = eval1(vm_tanh, -big[i]);
        ck_assert_msg(yp <= 1.0f && yp >= 1.0f - 1e-7f, "tanh(%g) = %.9g", big[i], yp);
        ck_assert_msg(yn >= -1.0f && yn <= -1.0f + 1e-7f, "tanh(%g) = %.9g", -big[i], yn);
    }
    ck_assert_float_nan(eval1(vm_tanh, NAN));
}
END_TEST

START_TEST(test_tanh_odd_monotone)
{
    /* tanh(-x) = -tanh(x) exactly, and the results never decrease along a fine grid that crosses
     * both branch points. */
    enum { N = 200001 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *xn = malloc(N * sizeof *xn);
    float *yn = malloc(N * sizeof *yn);
    ck_assert(x && y && xn && yn);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(-10.0 + 20.0 * i / (N - 1));
        xn[i] = -x[i];
    }
    vm_tanh(y, x, N);
    vm_tanh(yn, xn, N);
    for (int i = 0; i < N; i++) {
        check_or_abort(yn[i] == -y[i], "tanh(%.9g) = %.9g but tanh(%.9g) = %.9g", x[i], y[i], xn[i],
                       yn[i]);
        check_or_abort(i == 0 || y[i] >= y[i - 1], "tanh decreases at %.9g", x[i]);
        check_or_abort(fabsf(y[i]) <= 1.0f, "|tanh(%.9g)| > 1", x[i]);
    }
    free(x);
    free(y);
    free(xn);
    free(yn);
}
END_TEST

START_TEST(test_sigmoid_edges)
{
    ck_assert_float_eq(eval1(vm_sigmoid, 0.0f), 0.5f);
    ck_assert_float_eq(eval1(vm_sigmoid, -0.0f), 0.5f);
    ck_assert_float_eq(eval1(vm_sigmoid, 1e-30f), 0.5f);
    const float big[] = {20.0f, 88.0f, 89.0f, 1e10f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        ck_assert_float_eq(eval1(vm_sigmoid, big[i]), 1.0f);
        float yn = eval1(vm_sigmoid, -big[i]);
        ck_assert_msg(yn >= 0.0f && yn <= 2.1e-9f, "sigmoid(%g) = %g", -big[i], yn);
    }
    ck_assert_float_eq(eval1(vm_sigmoid, -INFINITY), 0.0f);
    ck_assert_float_eq(eval1(vm_sigmoid, -100.0f), 0.0f);
    ck_assert_float_nan(eval1(vm_sigmoid, NAN));
    /* sigmoid(x) + sigmoid(-x) = 1, values in [0, 1], monotone. */
    enum { N = 100001 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *yn = malloc(N * sizeof *yn);
    ck_assert(x && y && yn);
    for (int i = 0; i < N; i++)
        x[i] = (float)(-40.0 + 80.0 * i / (N - 1));
    vm_sigmoid(y, x, N);
    for (int i = 0; i < N; i++)
        x[i] = -x[i];
    vm_sigmoid(yn, x, N);
    for (int i = 0; i < N; i++) {
        check_or_abort(fabs((double)y[i] + yn[i] - 1.0) <= 1.2e-7, "sigmoid(%g) + sigmoid(%g) - 1",
                       -x[i], x[i]);
        check_or_abort(y[i] >= 0.0f && y[i] <= 1.0f, "sigmoid(%g) = %g", -x[i], y[i]);
        check_or_abort(i == 0 || y[i] >= y[i - 1], "sigmoid decreases at %g", -x[i]);
    }
    free(x);
    free(y);
    free(yn);
}
END_TEST

START_TEST(test_softplus_edges)
{
    ck_assert_double_le(fabs(eval1(vm_softplus, 0.0f) - M_LN2), 1e-7);
    const float big[] = {20.0f, 50.0f, 88.0f, 89.0f, 1000.0f, 1e10f, FLT_MAX};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        ck_assert_float_eq(eval1(vm_softplus, big[i]), big[i]);
        float yn = eval1(vm_softplus, -big[i]);
        ck_assert_msg(yn >= 0.0f && yn <= 2.1e-9f, "softplus(%g) = %g", -big[i], yn);
    }
    ck_assert(isinf(eval1(vm_softplus, INFINITY)) && eval1(vm_softplus, INFINITY) > 0);
    ck_assert_float_eq(eval1(vm_softplus, -INFINITY), 0.0f);
    ck_assert_float_nan(eval1(vm_softplus, NAN));
    /* softplus(x) - softplus(-x) = x, and softplus(x) >= max(x, 0) up to rounding. */
    enum { N = 100001 };
    float x[2], y[2];
    for (int i = 0; i < N; i++) {
        x[0] = (float)(-30.0 + 60.0 * i / (N - 1));
        x[1] = -x[0];
        vm_softplus(y, x, 2);
        double d = (double)y[0] - y[1];
        check_or_abort(fabs(d - x[0]) <= 6e-7 * (1.0 + fabs(x[0])),
                       "softplus(%g) - softplus(%g) = %.9g", x[0], x[1], d);
        check_or_abort(y[0] >= 0.0f && y[0] >= x[0] * (1.0f - 1e-7f), "softplus(%g) = %.9g", x[0],
                       y[0]);
    }
}
END_TEST

START_TEST(test_silu_edges)
{
    ck_assert_float_eq(eval1(vm_silu, 0.0f), 0.0f);
    ck_assert_float_eq(eval1(vm_silu, 1e-30f), 5e-31f);
    const float big[] = {20.0f, 88.0f, 1000.0f, 1e10f, FLT_MAX};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        ck_assert_float_eq(eval1(vm_silu, big[i]), big[i]);
        float yn = eval1(vm_silu, -big[i]);
        ck_assert_msg(yn <= 0.0f && yn >= -5e-8f, "silu(%g) = %g", -big[i], yn);
    }
    ck_assert(isinf(eval1(vm_silu, INFINITY)) && eval1(vm_silu, INFINITY) > 0);
    ck_assert_float_nan(eval1(vm_silu, NAN));
    /* The minimum of x sigmoid(x) is -0.278464542761074 at x = -1.278464542761074. */
    ck_assert_double_le(fabs(eval1(vm_silu, -1.27846454f) + 0.278464542761074), 1e-7);
}
END_TEST

static const vm_case *const all_cases[] = {&case_exp,     &case_log,      &case_tanh,
                                           &case_sigmoid, &case_softplus, &case_silu};
#define N_CASES (sizeof all_cases / sizeof all_cases[0])

/* Random arguments in each function's useful range (positive for log). */
static void fill_args(float *x, size_t n, const vm_case *c, rng_t *r)
{
    if (c == &case_log)
        fill_uniform(x, n, 1e-3f, 50.0f, r);
    else
        fill_uniform(x, n, -30.0f, 30.0f, r);
}

START_TEST(test_in_place)
{
    /* y and x may be the same array: the results are those of separate arrays. */
    enum { N = 1003 };
    rng_t r;
    rng_seed(&r, 1, 0);
    float x[N], y[N], z[N];
    for (size_t k = 0; k < N_CASES; k++) {
        const vm_case *c = all_cases[k];
        fill_args(x, N, c, &r);
        c->f(y, x, N);
        memcpy(z, x, sizeof x);
        c->f(z, z, N);
        ck_assert_msg(memcmp(y, z, sizeof y) == 0, "%s in place differs", c->name);
    }
}
END_TEST

START_TEST(test_tail_lengths)
{
    /* Every length 0..67 (vector bodies plus every remainder) gives, element by element, exactly
     * the results of single-element calls, and writes nothing past n. */
    enum { MAXN = 67 };
    rng_t r;
    rng_seed(&r, 2, 0);
    float x[MAXN + 1], y[MAXN + 1], one[MAXN];
    for (size_t k = 0; k < N_CASES; k++) {
        const vm_case *c = all_cases[k];
        fill_args(x, MAXN, c, &r);
        for (int i = 0; i < MAXN; i++)
            one[i] = eval1(c->f, x[i]);
        for (int n = 0; n <= MAXN; n++) {
            for (int i = 0; i <= MAXN; i++)
                y[i] = -999.0f;
            c->f(y, x, (size_t)n);
            for (int i = 0; i < n; i++)
                check_or_abort(y[i] == one[i], "%s n=%d: y[%d] = %.9g, single call %.9g", c->name,
                               n, i, y[i], one[i]);
            for (int i = n; i <= MAXN; i++)
                check_or_abort(y[i] == -999.0f, "%s n=%d: wrote y[%d]", c->name, n, i);
        }
    }
}
END_TEST

START_TEST(test_unaligned)
{
    /* Arrays at every float offset from a 64-byte boundary give the same results. */
    enum { N = 45, PAD = 16 };
    rng_t r;
    rng_seed(&r, 3, 0);
    float xs[N + PAD], ys[N + PAD], want[N];
    float xref[N];
    for (size_t k = 0; k < N_CASES; k++) {
        const vm_case *c = all_cases[k];
        fill_args(xref, N, c, &r);
        c->f(want, xref, N);
        for (int ox = 0; ox < PAD; ox += 3)
            for (int oy = 0; oy < PAD; oy += 5) {
                memcpy(xs + ox, xref, sizeof xref);
                c->f(ys + oy, xs + ox, N);
                ck_assert_msg(memcmp(ys + oy, want, sizeof want) == 0,
                              "%s with offsets %d/%d differs", c->name, ox, oy);
            }
    }
}
END_TEST

START_TEST(test_empty)
{
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f}, y[4] = {5.0f, 6.0f, 7.0f, 8.0f};
    for (size_t k = 0; k < N_CASES; k++) {
        all_cases[k]->f(y, x, 0);
        ck_assert(y[0] == 5.0f && y[1] == 6.0f && y[2] == 7.0f && y[3] == 8.0f);
    }
}
END_TEST

START_TEST(test_special_values_in_bulk)
{
    /* NaN and infinities mixed into a long array do not disturb their neighbours (the kernels
     * are branch-free selects). */
    enum { N = 64 };
    float x[N], y[N], want[N];
    for (size_t k = 0; k < N_CASES; k++) {
        const vm_case *c = all_cases[k];
        for (int i = 0; i < N; i++)
            x[i] = c == &case_log ? 0.5f + 0.25f * (float)i : -4.0f + 0.125f * (float)i;
        c->f(want, x, N);
        x[3] = NAN;
        x[10] = INFINITY;
        x[17] = -INFINITY;
        x[40] = 0.0f;
        c->f(y, x, N);
        for (int i = 0; i < N; i++) {
            if (i == 3 || i == 10 || i == 17 || i == 40)
                continue;
            ck_assert_msg(y[i] == want[i], "%s: element %d changed", c->name, i);
        }
        ck_assert_msg(isnan(y[3]), "%s(NaN) = %g", c->name, y[3]);
    }
}
END_TEST

Suite *vmath_suite(void)
{
    Suite *s = suite_create("vmath");

    TCase *tc = tcase_create("accuracy");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_exp_accuracy);
    tcase_add_test(tc, test_log_accuracy);
    tcase_add_test(tc, test_tanh_accuracy);
    tcase_add_test(tc, test_sigmoid_accuracy);
    tcase_add_test(tc, test_softplus_accuracy);
    tcase_add_test(tc, test_silu_accuracy);
    suite_add_tcase(s, tc);

    tc = tcase_create("edges");
    tcase_add_test(tc, test_exp_edges);
    tcase_add_test(tc, test_log_edges);
    tcase_add_test(tc, test_tanh_edges);
    tcase_add_test(tc, test_tanh_odd_monotone);
    tcase_add_test(tc, test_sigmoid_edges);
    tcase_add_test(tc, test_softplus_edges);
    tcase_add_test(tc, test_silu_edges);
    tcase_add_test(tc, test_special_values_in_bulk);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_test(tc, test_in_place);
    tcase_add_test(tc, test_tail_lengths);
    tcase_add_test(tc, test_unaligned);
    tcase_add_test(tc, test_empty);
    suite_add_tcase(s, tc);

    return s;
}
