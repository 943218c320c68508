/* testutil: shared helpers for the libcheck suites: the central finite-difference gradient
 * check, random fills and the list of suites. */
#ifndef ELBO_TESTUTIL_H
#define ELBO_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#include "core/rng.h"

/* A scalar loss computed from whatever the context points at (double accumulation). */
typedef double (*loss_fn)(void *ctx);

typedef struct gradcheck_result {
    double max_rel_err; /* worst |analytic - numeric| / max(|analytic| + |numeric|, floor) */
    size_t worst_index;
    double analytic, numeric; /* at the worst index */
    size_t checked;
} gradcheck_result;

/* Checks the analytic gradient `grad` of loss(ctx) with respect to the n floats at x by central
 * differences with step h, at up to max_checks indices spread over x (all when n <= max_checks).
 * x is restored afterwards. `floor` keeps tiny gradients from dominating the relative error. */
gradcheck_result gradcheck(loss_fn loss, void *ctx, float *x, const float *grad, size_t n, float h,
                           size_t max_checks, double floor);

/* Asserts that a gradcheck passed with max_rel_err <= tol, printing the worst entry otherwise. */
#define ck_assert_grad(res, tol, what)                                                      \
    ck_assert_msg((res).max_rel_err <= (tol),                                               \
                  "%s: gradient check failed: rel err %.3g at %zu (analytic %.6g, numeric " \
                  "%.6g)",                                                                  \
                  (what), (res).max_rel_err, (res).worst_index, (res).analytic, (res).numeric)

void fill_uniform(float *x, size_t n, float lo, float hi, rng_t *r);
void fill_normal(float *x, size_t n, float scale, rng_t *r);

/* Helpers of the suites that run a real elbod (e2e, auth, clients). */
double test_now_s(void);           /* monotonic seconds */
void test_sleep_ms(int ms);        /* sleeps, resuming after signals */
void test_rm_rf(const char *path); /* removes a file or a directory tree */
int test_free_port(void);          /* a free TCP port on 127.0.0.1 (bind to 0, read, close) */

/* Every suite; check_main.c runs them all (CK_RUN_SUITE=name runs one). */
Suite *vmath_suite(void);
Suite *tensor_suite(void);
Suite *rng_suite(void);
Suite *layers_suite(void);
Suite *dist_suite(void);
Suite *adam_suite(void);
Suite *params_suite(void);
Suite *elbo_suite(void);
Suite *replay_suite(void);
Suite *agent_suite(void);
Suite *planner_suite(void);
Suite *store_suite(void);
Suite *e2e_suite(void);
Suite *clients_suite(void);
Suite *auth_suite(void);

#endif
