/* check_adam: tests of core/adam: single steps against the textbook update computed in double
 * (bias correction, eps placement), global-norm clipping, the skip on non-finite gradients and
 * convergence on an ill-conditioned quadratic. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "core/adam.h"
#include "core/tensor.h"

/* The textbook Adam step (Kingma and Ba, algorithm 1) in double, with the gradient scaled by
 * `scale` first: m and v are updated in place, the new parameter values are written to p. */
static void ref_adam_step(double *p, const float *g, double *m, double *v, size_t n,
                          const adam_cfg *cfg, long step, double scale)
{
    double b1 = cfg->beta1, b2 = cfg->beta2;
    for (size_t i = 0; i < n; i++) {
        double gi = (double)g[i] * scale;
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        double mhat = m[i] / (1.0 - pow(b1, (double)step));
        double vhat = v[i] / (1.0 - pow(b2, (double)step));
        p[i] -= cfg->lr * mhat / (sqrt(vhat) + cfg->eps);
    }
}

/* Asserts |got - want| <= rtol * |want| + atol, naming the array and index. */
static void check_close_array(const char *what, const float *got, const double *want, size_t n,
                              double rtol, double atol)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        ck_assert_msg(err <= rtol * fabs(want[i]) + atol, "%s[%zu]: got %.9g, want %.9g (err %.3g)",
                      what, i, (double)got[i], want[i], err);
    }
}

static double norm2(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

START_TEST(test_defaults)
{
    adam_cfg c = adam_defaults();
    ck_assert_float_eq(c.lr, 1e-3f);
    ck_assert_float_eq(c.beta1, 0.9f);
    ck_assert_float_eq(c.beta2, 0.999f);
    ck_assert_float_eq(c.eps, 1e-8f);
    ck_assert_float_eq(c.clip_norm, 100.0f);
}
END_TEST

START_TEST(test_first_step_by_hand)
{
    /* Step 1 from zero moments: mhat = g and vhat = g^2 exactly, so every parameter moves by
     * lr * g / (|g| + eps), i.e. lr against the sign of its gradient; a zero gradient stays. */
    float p[5] = {1.0f, -2.0f, 0.5f, 3.0f, 7.0f};
    const float g[5] = {0.1f, -0.2f, 4.0f, 0.0f, -1e-3f};
    float m[5] = {0}, v[5] = {0};
    adam_cfg cfg = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 0.0f};
    double norm = adam_step(p, g, m, v, 5, &cfg, 1);
    ck_assert_double_eq_tol(norm, sqrt(0.01 + 0.04 + 16.0 + 1e-6), 1e-6);
    const double want_p[5] = {0.99, -1.99, 0.49, 3.0, 7.0 + 0.01 * (1e-3 / (1e-3 + 1e-8))};
    check_close_array("p", p, want_p, 5, 1.5e-7, 1e-7);
    /* m = (1 - beta1) g and v = (1 - beta2) g^2 (with the betas as the floats they are). */
    double want_m[5], want_v[5];
    for (int i = 0; i < 5; i++) {
        want_m[i] = (1.0 - (double)cfg.beta1) * g[i];
        want_v[i] = (1.0 - (double)cfg.beta2) * g[i] * g[i];
    }
    check_close_array("m", m, want_m, 5, 1e-6, 0.0);
    check_close_array("v", v, want_v, 5, 1e-6, 0.0);
}
END_TEST

START_TEST(test_steps_match_reference)
{
    /* Twenty chained steps from random moments against the double reference. eps is large
     * enough to matter for the small gradients, so a misplaced eps (inside the sqrt, or not
     * bias-corrected) is caught as well as a wrong bias correction. */
    enum { N = 37 };
    rng_t r;
    rng_seed(&r, 7, 0);
    float p[N], g[N], m[N], v[N];
    double pr[N], mr[N], vr[N];
    fill_normal(p, N, 1.0f, &r);
    fill_normal(m, N, 0.01f, &r);
    fill_uniform(v, N, 1e-6f, 1e-4f, &r);
    for (int i = 0; i < N; i++) {
        pr[i] = p[i];
        mr[i] = m[i];
        vr[i] = v[i];
    }
    adam_cfg cfg = {.lr = 0.05f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-3f, .clip_norm = 0.0f};
    for (long step = 3; step < 23; step++) {
        fill_normal(g, N, 0.01f, &r);
        double norm = adam_step(p, g, m, v, N, &cfg, step);
        ck_assert_double_eq_tol(norm, norm2(g, N), 1e-12 * norm);
        ref_adam_step(pr, g, mr, vr, N, &cfg, step, 1.0);
        /* m is a difference of terms of size 1e-2 that may cancel: an absolute floor. */
        check_close_array("m", m, mr, N, 1e-5, 1e-8);
        check_close_array("v", v, vr, N, 1e-5, 1e-15);
        check_close_array("p", p, pr, N, 1e-6, 1e-6);
    }
}
END_TEST

START_TEST(test_clip_scales_gradient)
{
    /* ||g|| = 50 > clip 5: the step uses g * 5 / 50 and returns 50. */
    enum { N = 4 };
    float p[N] = {0.5f, -0.5f, 1.0f, 2.0f}, m[N] = {0.2f, -0.1f, 0.0f, 0.05f};
    float v[N] = {0.01f, 0.02f, 0.001f, 0.5f};
    const float g[N] = {30.0f, -40.0f, 0.0f, 0.0f};
    double pr[N], mr[N], vr[N], pu[N], mu[N], vu[N];
    for (int i = 0; i < N; i++) {
        pr[i] = pu[i] = p[i];
        mr[i] = mu[i] = m[i];
        vr[i] = vu[i] = v[i];
    }
    adam_cfg cfg = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 5.0f};
    float m0[N];
    memcpy(m0, m, sizeof m);
    double norm = adam_step(p, g, m, v, N, &cfg, 4);
    ck_assert_double_eq_tol(norm, 50.0, 1e-9);
    ref_adam_step(pr, g, mr, vr, N, &cfg, 4, 0.1);
    check_close_array("m", m, mr, N, 1e-6, 1e-9);
    check_close_array("v", v, vr, N, 1e-6, 1e-12);
    check_close_array("p", p, pr, N, 1e-6, 1e-7);
    /* The applied gradient, read back from the first moment: (m - beta1 m0) / (1 - beta1). */
    for (int i = 0; i < 2; i++) {
        double b1 = cfg.beta1;
        double applied = ((double)m[i] - b1 * m0[i]) / (1.0 - b1);
        ck_assert_double_eq_tol(applied, 0.1 * g[i], 1e-4);
    }
    /* And the clipped step really differs from the unclipped one. */
    ref_adam_step(pu, g, mu, vu, N, &cfg, 4, 1.0);
    ck_assert_double_gt(fabs(pu[0] - pr[0]), 1e-3);
}
END_TEST

START_TEST(test_clip_inactive)
{
    enum { N = 3 };
    const float g[N] = {3.0f, 0.0f, -4.0f}; /* norm 5 */
    adam_cfg cfgs[3] = {
        {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 6.0f},
        {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 0.0f},
        {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = -1.0f},
    };
    for (int c = 0; c < 3; c++) {
        float p[N] = {1.0f, 2.0f, 3.0f}, m[N] = {0.1f, 0.2f, -0.3f}, v[N] = {0.4f, 0.5f, 0.6f};
        double pr[N], mr[N], vr[N];
        for (int i = 0; i < N; i++) {
            pr[i] = p[i];
            mr[i] = m[i];
            vr[i] = v[i];
        }
        double norm = adam_step(p, g, m, v, N, &cfgs[c], 2);
        ck_assert_double_eq_tol(norm, 5.0, 1e-12);
        ref_adam_step(pr, g, mr, vr, N, &cfgs[c], 2, 1.0);
        check_close_array("m", m, mr, N, 1e-6, 1e-9);
        check_close_array("p", p, pr, N, 1e-6, 1e-7);
    }
}
END_TEST

START_TEST(test_clip_huge_gradient)
{
    /* Gradients near FLT_MAX: the norm is taken in double, so it is finite and the clipped step is
     * an ordinary one. */
    enum { N = 4 };
    float p[N] = {0}, m[N] = {0}, v[N] = {0};
    const float g[N] = {3e38f, -3e38f, 1e38f, 0.0f};
    adam_cfg cfg = adam_defaults();
    cfg.clip_norm = 1.0f;
    double norm = adam_step(p, g, m, v, N, &cfg, 1);
    ck_assert(isfinite(norm));
    ck_assert_double_eq_tol(norm / 1e38, sqrt(9.0 + 9.0 + 1.0), 1e-6);
    ck_assert(tensor_all_finite(p, N) && tensor_all_finite(m, N) && tensor_all_finite(v, N));
    ck_assert_float_eq_tol(p[0], -1e-3f, 1e-9f);
    ck_assert_float_eq_tol(p[1], 1e-3f, 1e-9f);
    ck_assert_float_eq(p[3], 0.0f);
}
END_TEST

START_TEST(test_nonfinite_skips)
{
    enum { N = 9 };
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        for (int pos = 0; pos < N; pos += 4) {
            float p[N], m[N], v[N], g[N];
            for (int i = 0; i < N; i++) {
                p[i] = 0.1f * (float)i;
                m[i] = 0.01f * (float)i;
                v[i] = 0.001f * (float)(i + 1);
                g[i] = 1.0f;
            }
            g[pos] = bad[b];
            float p0[N], m0[N], v0[N];
            memcpy(p0, p, sizeof p);
            memcpy(m0, m, sizeof m);
            memcpy(v0, v, sizeof v);
            adam_cfg cfg = adam_defaults();
            double norm = adam_step(p, g, m, v, N, &cfg, 10);
            ck_assert_msg(!isfinite(norm), "bad gradient %g at %d: norm %g", bad[b], pos, norm);
            if (b == 0)
                ck_assert(isnan(norm));
            else
                ck_assert(isinf(norm) && norm > 0);
            ck_assert_mem_eq(p, p0, sizeof p);
            ck_assert_mem_eq(m, m0, sizeof m);
            ck_assert_mem_eq(v, v0, sizeof v);
        }
    }
}
END_TEST

START_TEST(test_empty)
{
    float p[1] = {1.0f}, m[1] = {2.0f}, v[1] = {3.0f};
    const float g[1] = {4.0f};
    adam_cfg cfg = adam_defaults();
    ck_assert_double_eq(adam_step(p, g, m, v, 0, &cfg, 1), 0.0);
    ck_assert(p[0] == 1.0f && m[0] == 2.0f && v[0] == 3.0f);
}
END_TEST

START_TEST(test_late_step)
{
    /* At a large step number the bias corrections are 1: the update is lr m / (sqrt(v) + eps). */
    enum { N = 5 };
    float p[N] = {1, 2, 3, 4, 5}, m[N] = {0.1f, -0.2f, 0.3f, 0.0f, 1.0f};
    float v[N] = {0.04f, 0.01f, 0.09f, 1.0f, 0.25f};
    const float g[N] = {0.5f, 0.5f, -0.5f, 0.0f, 2.0f};
    double pr[N], mr[N], vr[N];
    for (int i = 0; i < N; i++) {
        pr[i] = p[i];
        mr[i] = m[i];
        vr[i] = v[i];
    }
    adam_cfg cfg = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 0.0f};
    adam_step(p, g, m, v, N, &cfg, 1000000);
    ref_adam_step(pr, g, mr, vr, N, &cfg, 1000000, 1.0);
    check_close_array("p", p, pr, N, 1e-6, 1e-7);
    ck_assert(tensor_all_finite(p, N));
}
END_TEST

/* Sum a_i (x_i - c_i)^2 with a_i from 1e-3 to 1e3 (condition number 1e6). */
enum { QN = 12 };
static double quad_loss(const float *x, const double *a, const double *c, float *grad)
{
    double f = 0.0;
    for (int i = 0; i < QN; i++) {
        double d = (double)x[i] - c[i];
        f += a[i] * d * d;
        if (grad)
            grad[i] = (float)(2.0 * a[i] * d);
    }
    return f;
}

START_TEST(test_minimises_quadratic)
{
    double a[QN], c[QN];
    for (int i = 0; i < QN; i++) {
        a[i] = pow(10.0, -3.0 + 6.0 * i / (QN - 1));
        c[i] = -3.0 + 6.0 * ((i * 5) % QN) / QN;
    }
    float x[QN] = {0}, g[QN], m[QN] = {0}, v[QN] = {0};
    adam_cfg cfg = adam_defaults(); /* clip 100: the stiff coordinates start clipped */
    double f0 = quad_loss(x, a, c, NULL);
    for (long step = 1; step <= 1500; step++) {
        quad_loss(x, a, c, g);
        cfg.lr = (float)(0.1 * pow(0.995, (double)step));
        double norm = adam_step(x, g, m, v, QN, &cfg, step);
        ck_assert(isfinite(norm));
    }
    double f = quad_loss(x, a, c, NULL);
    ck_assert_msg(f < 1e-9 * f0, "loss %g from %g", f, f0);
    for (int i = 0; i < QN; i++)
        ck_assert_msg(fabs(x[i] - c[i]) < 1e-4, "x[%d] = %.7g, want %.7g (a = %g)", i, x[i], c[i],
                      a[i]);
}
END_TEST

Suite *adam_suite(void)
{
    Suite *s = suite_create("adam");

    TCase *tc = tcase_create("step");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_first_step_by_hand);
    tcase_add_test(tc, test_steps_match_reference);
    tcase_add_test(tc, test_minimises_quadratic);
    suite_add_tcase(s, tc);

    tc = tcase_create("clip");
    tcase_add_test(tc, test_clip_scales_gradient);
    tcase_add_test(tc, test_clip_inactive);
    tcase_add_test(tc, test_clip_huge_gradient);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_nonfinite_skips);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_late_step);
    suite_add_tcase(s, tc);

    return s;
}
