/* check_planner: the planner of core/planner.c.
 *
 * The search is tested on hand-built worlds where the right answer is known: a linear-quadratic
 * world whose optimum over the action sequence is computed exactly (a linear system in double),
 * and a two-branch world where only the mutual-information bonus tells the branches apart. The
 * latent-model world is tested for its information estimate, the deadline, determinism and the
 * action box. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent.h"
#include "core/planner.h"
#include "testutil.h"

#define LQ_MAX_H 32

/* ---- a linear-quadratic world -------------------------------------------------------------
 * State s in R^2 per particle, s' = A s + B a, reward r = -scale * (s'^T Q s' + rho a^2) with
 * a = tanh(u) in [-1, 1]. The action prior is N(0, LQ_PRIOR_STD): it only supplies the roll-out
 * samples (beta_action = 0), and its mean 0 is where a cold q starts. */

#define LQ_PRIOR_STD 1.0f

typedef struct lq_world {
    double A[2][2], B[2], Q[2][2], rho, scale;
    double s0[2];
    int max_rows;
    float *s; /* (max_rows, 2) */
} lq_world;

static void lq_init(lq_world *w, int max_rows)
{
    memset(w, 0, sizeof *w);
    /* A lightly damped rotation: the state keeps moving unless the action steers it. */
    w->A[0][0] = 0.95;
    w->A[0][1] = 0.25;
    w->A[1][0] = -0.25;
    w->A[1][1] = 0.95;
    w->B[0] = 0.1;
    w->B[1] = 0.5;
    w->Q[0][0] = 1.0;
    w->Q[0][1] = 0.2;
    w->Q[1][0] = 0.2;
    w->Q[1][1] = 0.5;
    w->rho = 0.5;
    w->scale = 40.0;
    w->max_rows = max_rows;
    w->s = calloc((size_t)max_rows * 2, sizeof(float));
    ck_assert_ptr_nonnull(w->s);
}

static void lq_start(void *ctx, int rows)
{
    lq_world *w = ctx;
    ck_assert_int_le(rows, w->max_rows);
    for (int n = 0; n < rows; n++) {
        w->s[2 * n] = (float)w->s0[0];
        w->s[2 * n + 1] = (float)w->s0[1];
    }
}

static void lq_prior(void *ctx, int rows, float *mu, float *std)
{
    (void)ctx;
    for (int n = 0; n < rows; n++) {
        mu[n] = 0.0f;
        std[n] = LQ_PRIOR_STD;
    }
}

static void lq_step(void *ctx, int rows, const float *a, float *reward, float *info, rng_t *rng)
{
    lq_world *w = ctx;
    (void)rng;
    for (int n = 0; n < rows; n++) {
        double x = w->s[2 * n], v = w->s[2 * n + 1];
        double x2 = w->A[0][0] * x + w->A[0][1] * v + w->B[0] * a[n];
        double v2 = w->A[1][0] * x + w->A[1][1] * v + w->B[1] * a[n];
        double c = w->Q[0][0] * x2 * x2 + 2.0 * w->Q[0][1] * x2 * v2 + w->Q[1][1] * v2 * v2;
        reward[n] = (float)(-w->scale * (c + w->rho * (double)a[n] * a[n]));
        w->s[2 * n] = (float)x2;
        w->s[2 * n + 1] = (float)v2;
        if (info)
            info[n] = 0.0f;
    }
}

static plan_world lq_plan_world(lq_world *w)
{
    plan_world pw = {w, 1, lq_start, lq_prior, lq_step, NULL};
    return pw;
}

/* The undiscounted return of the action sequence a (H) from s0, in double. */
static double lq_return(const lq_world *w, const double *s0, const double *a, int H)
{
    double x = s0[0], v = s0[1], J = 0.0;
    for (int t = 0; t < H; t++) {
        double x2 = w->A[0][0] * x + w->A[0][1] * v + w->B[0] * a[t];
        double v2 = w->A[1][0] * x + w->A[1][1] * v + w->B[1] * a[t];
        double c = w->Q[0][0] * x2 * x2 + 2.0 * w->Q[0][1] * x2 * v2 + w->Q[1][1] * v2 * v2;
        J -= w->scale * (c + w->rho * a[t] * a[t]);
        x = x2;
        v = v2;
    }
    return J;
}

static double lq_return_f(const lq_world *w, const double *s0, const float *a, int H)
{
    double ad[LQ_MAX_H];
    for (int t = 0; t < H; t++)
        ad[t] = a[t];
    return lq_return(w, s0, ad, H);
}

/* Solves M x = b (n x n, row-major, both overwritten) by Gaussian elimination with partial
 * pivoting; x is written to b. */
static void solve_linear(double *M, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(M[r * n + c]) > fabs(M[piv * n + c]))
                piv = r;
        ck_assert(fabs(M[piv * n + c]) > 1e-12);
        if (piv != c) {
            for (int k = 0; k < n; k++) {
                double t = M[c * n + k];
                M[c * n + k] = M[piv * n + k];
                M[piv * n + k] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = M[r * n + c] / M[c * n + c];
            for (int k = c; k < n; k++)
                M[r * n + k] -= f * M[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        double s = b[c];
        for (int k = c + 1; k < n; k++)
            s -= M[c * n + k] * b[k];
        b[c] = s / M[c * n + c];
    }
}

/* The exact optimum over the H actions (unconstrained: the test checks it lies inside the box).
 * With s_{t+1} = f_t + sum_{k<=t} G_{t,k} a_k (f_t = A^{t+1} s0, G_{t,k} = A^{t-k} B), the
 * return is -scale * (a^T M a + 2 g^T a + const) with M = rho I + sum_t G_t^T Q G_t and
 * g = sum_t G_t^T Q f_t, so a* = -M^{-1} g. Returns J(a*). */
static double lq_optimum(const lq_world *w, const double *s0, int H, double *a_star)
{
    double f[LQ_MAX_H][2], G[LQ_MAX_H][LQ_MAX_H][2];
    double x = s0[0], v = s0[1];
    for (int t = 0; t < H; t++) {
        double x2 = w->A[0][0] * x + w->A[0][1] * v, v2 = w->A[1][0] * x + w->A[1][1] * v;
        f[t][0] = x = x2;
        f[t][1] = v = v2;
    }
    for (int k = 0; k < H; k++) {
        double gx = w->B[0], gv = w->B[1];
        for (int t = 0; t < H; t++) {
            if (t < k) {
                G[t][k][0] = G[t][k][1] = 0.0;
                continue;
            }
            G[t][k][0] = gx;
            G[t][k][1] = gv;
            double gx2 = w->A[0][0] * gx + w->A[0][1] * gv, gv2 = w->A[1][0] * gx + w->A[1][1] * gv;
            gx = gx2;
            gv = gv2;
        }
    }
    double M[LQ_MAX_H * LQ_MAX_H];
    for (int j = 0; j < H; j++) {
        a_star[j] = 0.0;
        for (int k = 0; k < H; k++) {
            double m = j == k ? w->rho : 0.0;
            for (int t = 0; t < H; t++)
                for (int p = 0; p < 2; p++)
                    for (int q = 0; q < 2; q++)
                        m += G[t][j][p] * w->Q[p][q] * G[t][k][q];
            M[j * H + k] = m;
        }
        for (int t = 0; t < H; t++)
            for (int p = 0; p < 2; p++)
                for (int q = 0; q < 2; q++)
                    a_star[j] -= G[t][j][p] * w->Q[p][q] * f[t][q];
    }
    solve_linear(M, a_star, H);
    return lq_return(w, s0, a_star, H);
}

/* The settings of the LQ tests: no action-prior pull, no information bonus, no value. */
static void lq_config(planner_config *p, plan_method method, int H, int N, int I)
{
    planner_config_defaults(p);
    p->method = method;
    p->horizon = H;
    p->population = N;
    p->iterations = I;
    p->elites = N / 10;
    p->beta_action = 0.0f;
    p->beta_info = 0.0f;
    p->use_value = 0;
    p->discount = 1.0f;
}

static const float unit_low[MODEL_MAX_ACT] = {-1.0f}, unit_high[MODEL_MAX_ACT] = {1.0f};

#define LQ_H 10

/* Iterations that reach 5% of the optimum robustly (measured over 40 seeds and the three start
 * states: CEM's worst gap 0.55% at 12 iterations; MPPI's 1.3% at 32, but 26% at 12). MPPI needs
 * more because its first refit collapses q: with N = 500 the weights exp(J / lambda) of a 10-step
 * sequence concentrate on a few samples, so q's std falls from 1 to about 0.3 in one iteration
 * (CEM keeps 0.8), and the mean then creeps. */
#define LQ_MPPI_ITERATIONS 32
#define LQ_CEM_ITERATIONS  12

START_TEST(test_lq_exact_optimum)
{
    /* The world is cheap: the sanitizer build runs every start state too (about 1 s). */
    static const double starts[][2] = {{0.4, -0.2}, {-0.3, 0.3}, {0.1, 0.4}};
    const int N = 500;
    lq_world w;
    lq_init(&w, N);
    plan_world pw = lq_plan_world(&w);
    for (int method = PLAN_MPPI; method <= PLAN_CEM; method++) {
        planner_config p;
        lq_config(&p, (plan_method)method, LQ_H, N, 0);
        p.iterations = method == PLAN_MPPI ? LQ_MPPI_ITERATIONS : LQ_CEM_ITERATIONS;
        int I = p.iterations;
        char err[128];
        ck_assert_int_eq(planner_config_validate(&p, err, sizeof err), 0);
        plan_search *s = plan_search_new(&p, 1);
        plan_result *out = plan_result_new(LQ_H, 1, 1);
        ck_assert_ptr_nonnull(s);
        ck_assert_ptr_nonnull(out);
        for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
            w.s0[0] = starts[i][0];
            w.s0[1] = starts[i][1];
            double a_star[LQ_MAX_H], zero[LQ_MAX_H] = {0};
            double J_star = lq_optimum(&w, w.s0, LQ_H, a_star);
            double J_zero = lq_return(&w, w.s0, zero, LQ_H);
            /* The fixture: the box does not bind, and acting matters (doing nothing costs at
             * least twice the optimum), so 5% of the optimum is a real test. */
            double a_max = 0.0;
            for (int t = 0; t < LQ_H; t++)
                a_max = fmax(a_max, fabs(a_star[t]));
            printf("planner lq s0=(%.2f,%.2f): max |a*| %.3f, J* %.5f, J(0) %.5f\n", w.s0[0],
                   w.s0[1], a_max, J_star, J_zero);
            ck_assert_msg(a_max < 0.6, "max |a*| = %g binds the box", a_max);
            ck_assert(J_zero < 2.0 * J_star);
            for (int seed = 1; seed <= 2; seed++) {
                rng_t r;
                rng_seed(&r, (uint64_t)seed, 11);
                ck_assert_int_eq(
                    planner_search(&p, &pw, s, NULL, 0.0, 0, &r, unit_low, unit_high, out), 0);
                ck_assert_int_eq(out->iterations, I);
                double J = lq_return_f(&w, w.s0, out->mean, LQ_H);
                printf("planner lq %s s0=(%.2f,%.2f) seed %d: optimum %.5f achieved %.5f "
                       "(gap %.2f%%)\n",
                       method == PLAN_MPPI ? "mppi" : "cem ", w.s0[0], w.s0[1], seed, J_star, J,
                       100.0 * (J_star - J) / fabs(J_star));
                ck_assert_msg(J <= J_star + 1e-6 * fabs(J_star), "beat the exact optimum?");
                ck_assert_msg(J_star - J <= 0.05 * fabs(J_star),
                              "%s: return %g not within 5%% of the optimum %g",
                              method == PLAN_MPPI ? "mppi" : "cem", J, J_star);
            }
        }
        plan_search_free(s);
        plan_result_free(out);
    }
    fflush(stdout);
    free(w.s);
}
END_TEST

/* Iterations (1..max_it) until the plan's return at w->s0 is within 5% of J_star; max_it + 1
 * when never. prev0 (may be NULL: a cold start) is copied so that every run starts alike. */
static int iterations_to_reach(lq_world *w, plan_method method, int N, const plan_state *prev0,
                               uint64_t seed, double J_star, int max_it)
{
    plan_world pw = lq_plan_world(w);
    plan_state *prev = plan_state_new(LQ_H, 1);
    plan_result *out = plan_result_new(LQ_H, 1, 1);
    ck_assert_ptr_nonnull(prev);
    ck_assert_ptr_nonnull(out);
    int reached = max_it + 1;
    for (int I = 1; I <= max_it && reached > max_it; I++) {
        planner_config p;
        lq_config(&p, method, LQ_H, N, I);
        plan_search *s = plan_search_new(&p, 1);
        ck_assert_ptr_nonnull(s);
        if (prev0) {
            memcpy(prev->u_mean, prev0->u_mean, sizeof(float) * LQ_H);
            memcpy(prev->u_std, prev0->u_std, sizeof(float) * LQ_H);
            prev->valid = prev0->valid;
        }
        rng_t r;
        rng_seed(&r, seed, 23);
        ck_assert_int_eq(
            planner_search(&p, &pw, s, prev0 ? prev : NULL, 0.0, 0, &r, unit_low, unit_high, out),
            0);
        double J = lq_return_f(w, w->s0, out->mean, LQ_H);
        if (J_star - J <= 0.05 * fabs(J_star))
            reached = I;
        plan_search_free(s);
    }
    plan_state_free(prev);
    plan_result_free(out);
    return reached;
}

START_TEST(test_lq_warm_start_needs_fewer_iterations)
{
    const int N = 500, max_it = 40, seeds = 6;
    lq_world w;
    lq_init(&w, N);
    plan_world pw = lq_plan_world(&w);
    for (int method = PLAN_MPPI; method <= PLAN_CEM; method++) {
        double warm_sum = 0.0, cold_sum = 0.0;
        for (int seed = 1; seed <= seeds; seed++) {
            /* Plan at s0 with the full budget, take the first action in the true world. */
            planner_config p;
            lq_config(&p, (plan_method)method, LQ_H, N,
                      method == PLAN_MPPI ? LQ_MPPI_ITERATIONS : LQ_CEM_ITERATIONS);
            plan_search *s = plan_search_new(&p, 1);
            plan_state *prev = plan_state_new(LQ_H, 1);
            plan_result *out = plan_result_new(LQ_H, 1, 1);
            ck_assert(s && prev && out);
            w.s0[0] = 1.0;
            w.s0[1] = -0.5;
            rng_t r;
            rng_seed(&r, (uint64_t)seed, 5);
            ck_assert_int_eq(planner_search(&p, &pw, s, prev, 0.0, 0, &r, unit_low, unit_high, out),
                             0);
            ck_assert_int_eq(prev->valid, 1);
            double a0 = out->action[0];
            double s1[2] = {w.A[0][0] * w.s0[0] + w.A[0][1] * w.s0[1] + w.B[0] * a0,
                            w.A[1][0] * w.s0[0] + w.A[1][1] * w.s0[1] + w.B[1] * a0};
            w.s0[0] = s1[0];
            w.s0[1] = s1[1];
            double a_star[LQ_MAX_H];
            double J_star = lq_optimum(&w, s1, LQ_H, a_star);
            int warm =
                iterations_to_reach(&w, (plan_method)method, N, prev, 100 + seed, J_star, max_it);
            int cold =
                iterations_to_reach(&w, (plan_method)method, N, NULL, 100 + seed, J_star, max_it);
            warm_sum += warm;
            cold_sum += cold;
            plan_search_free(s);
            plan_state_free(prev);
            plan_result_free(out);
        }
        printf("planner warm start %s: iterations to within 5%% of the optimum at s1, mean over "
               "%d seeds: warm %.2f, cold %.2f\n",
               method == PLAN_MPPI ? "mppi" : "cem ", seeds, warm_sum / seeds, cold_sum / seeds);
        /* The warm start carries the previous mean over and restarts the std at init_std. MPPI
         * scores that mean (row 0) and its sharp weights keep it: warm plans reach 5% in one
         * iteration (cold: 14.75 on average over 20 seeds). CEM averages its elites, drawn
         * around the mean with the full init_std, so its first refit mostly forgets where it
         * started: 5.10 iterations either way over 20 seeds. It must not be slower. */
        if (method == PLAN_MPPI)
            ck_assert_msg(warm_sum < cold_sum, "warm %g not fewer than cold %g", warm_sum / seeds,
                          cold_sum / seeds);
        else
            ck_assert_msg(warm_sum <= cold_sum + seeds, "warm %g slower than cold %g",
                          warm_sum / seeds, cold_sum / seeds);
        ck_assert(warm_sum / seeds <= max_it);
    }
    fflush(stdout);
    free(w.s);
}
END_TEST

/* ---- a two-branch world for the information bonus -------------------------------------------
 * The sign of the first action picks a branch, and the rest of the episode stays on it. Rewards
 * are mirror images: r = -(|a_0| - 1/2)^2 at the first step and -a^2/10 later, whatever the
 * branch. Only the information bonus differs: on the informative branch every state carries
 * I = 1 nat, on the other 0.01.
 *
 * How this maps to the paper (Marino & Yue): the variational objective's marginal-likelihood /
 * mutual-information term rewards visiting states where the internal (latent) state explains the
 * observations - states whose observations carry information about z. In planning as inference
 * that term enters the planning objective as beta_info * I_t next to the reward, so it biases
 * planning toward such states. With beta_info = 0 the two branches are equally good and the plan
 * has no systematic preference; with beta_info > 0 it must take the informative branch. */

typedef struct branch_world {
    int max_rows;
    float informative_sign; /* the first action's sign that leads to the informative branch */
    float *branch, *t;      /* (max_rows) */
} branch_world;

static void branch_start(void *ctx, int rows)
{
    branch_world *w = ctx;
    ck_assert_int_le(rows, w->max_rows);
    for (int n = 0; n < rows; n++)
        w->branch[n] = w->t[n] = 0.0f;
}

static void branch_step(void *ctx, int rows, const float *a, float *reward, float *info, rng_t *rng)
{
    branch_world *w = ctx;
    (void)rng;
    for (int n = 0; n < rows; n++) {
        if (w->t[n] == 0.0f) {
            w->branch[n] = a[n] >= 0.0f ? 1.0f : -1.0f;
            float d = fabsf(a[n]) - 0.5f;
            reward[n] = -d * d;
        } else {
            reward[n] = -0.1f * a[n] * a[n];
        }
        if (info)
            info[n] = w->branch[n] == w->informative_sign ? 1.0f : 0.01f;
        w->t[n] += 1.0f;
    }
}

static float branch_first_action(branch_world *w, plan_method method, float beta_info,
                                 uint64_t seed)
{
    planner_config p;
    planner_config_defaults(&p);
    p.method = method;
    p.horizon = 5;
    p.population = w->max_rows;
    p.iterations = 4;
    p.beta_info = beta_info;
    p.beta_action = 0.0f;
    p.use_value = 0;
    plan_world pw = {w, 1, branch_start, lq_prior, branch_step, NULL};
    plan_search *s = plan_search_new(&p, 1);
    plan_result *out = plan_result_new(p.horizon, 1, 1);
    ck_assert(s && out);
    rng_t r;
    rng_seed(&r, seed, 3);
    ck_assert_int_eq(planner_search(&p, &pw, s, NULL, 0.0, 0, &r, unit_low, unit_high, out), 0);
    float a0 = out->mean[0];
    ck_assert(out->action[0] == a0);
    plan_search_free(s);
    plan_result_free(out);
    return a0;
}

START_TEST(test_info_bonus_picks_informative_branch)
{
    const int seeds = 20;
    branch_world w = {200, -1.0f, calloc(200, sizeof(float)), calloc(200, sizeof(float))};
    ck_assert(w.branch && w.t);
    for (int method = PLAN_MPPI; method <= PLAN_CEM; method++) {
        const char *name = method == PLAN_MPPI ? "mppi" : "cem ";
        for (int side = 0; side < 2; side++) {
            w.informative_sign = side ? 1.0f : -1.0f;
            int toward0 = 0, toward1 = 0;
            double mean0 = 0.0, min1 = INFINITY;
            for (int seed = 1; seed <= seeds; seed++) {
                float a0 = branch_first_action(&w, (plan_method)method, 0.0f, (uint64_t)seed);
                float a1 = branch_first_action(&w, (plan_method)method, 0.5f, (uint64_t)seed);
                toward0 += a0 * w.informative_sign > 0.0f;
                toward1 += a1 * w.informative_sign > 0.0f;
                mean0 += a0 * w.informative_sign / seeds;
                min1 = fmin(min1, a1 * w.informative_sign);
            }
            printf("planner info %s (informative branch %+.0f): beta_info 0 -> %d/%d seeds "
                   "informative (mean first action toward it %+.3f); beta_info 0.5 -> %d/%d "
                   "(smallest first action toward it %+.3f)\n",
                   name, w.informative_sign, toward0, seeds, mean0, toward1, seeds, min1);
            /* No systematic preference without the bonus: neither branch gets more than 3/4. */
            ck_assert_msg(toward0 >= seeds / 4 && toward0 <= seeds - seeds / 4,
                          "%s: beta_info 0 prefers a branch (%d of %d)", name, toward0, seeds);
            /* With it, every seed commits to the informative branch. */
            ck_assert_int_eq(toward1, seeds);
            ck_assert_msg(min1 > 0.1, "%s: weak first action %g", name, min1);
        }
    }
    fflush(stdout);
    free(w.branch);
    free(w.t);
}
END_TEST

/* ---- the latent model as a world ----------------------------------------------------------- */

typedef struct latent_fixture {
    agent_t *agent;
    agent_snapshot *snap;
    planner_config p;
    planner_ws *ws;
    plan_result *out;
    float h[MODEL_MAX_STATE], z[MODEL_MAX_STATE];
} latent_fixture;

/* A default-size agent (observation 3, action 1) in a state filtered from one observation. */
static void latent_init(latent_fixture *f, const planner_config *p, float low, float high)
{
    memset(f, 0, sizeof *f);
    model_config c;
    model_config_defaults(&c, 3, 1);
    c.act_low[0] = low;
    c.act_high[0] = high;
    char err[128];
    f->agent = agent_new(&c, err, sizeof err);
    ck_assert_msg(f->agent != NULL, "agent_new: %s", err);
    f->snap = agent_snapshot_acquire(f->agent);
    f->p = *p;
    ck_assert_int_eq(planner_config_validate(&f->p, err, sizeof err), 0);
    f->ws = planner_ws_new(f->snap->model, &f->p);
    f->out = plan_result_new(f->p.horizon, 1, 3);
    ck_assert(f->ws && f->out);
    /* A state away from zero: one filtering step of an observation through the untrained model. */
    model_ws *mws = model_ws_new(f->snap->model, 1);
    ck_assert_ptr_nonnull(mws);
    float x[3] = {0.7f, -1.2f, 0.4f};
    model_filter_step(f->snap->model, f->snap->params, &f->snap->norm, mws, f->h, f->z, NULL, x,
                      0.0f, 1);
    model_ws_free(mws);
}

static void latent_free(latent_fixture *f)
{
    planner_ws_free(f->ws);
    plan_result_free(f->out);
    agent_snapshot_release(f->agent, f->snap);
    agent_free(f->agent);
}

static int plan_latent(latent_fixture *f, plan_state *prev, double deadline_ms, int explore,
                       uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 9);
    return planner_plan(f->snap->model, &f->p, f->snap->params, &f->snap->norm, f->ws, f->h, f->z,
                        prev, deadline_ms, explore, &r, f->out);
}

/* The plan's information bonus, estimated independently with many particles: along the plan's
 * mean actions, z ~ p(z | h) as the antithetic pair mu +- std * eps, and
 *   I_t = 1/2 sum_d log(1 + ((g_d(z+) - g_d(z-)) / 2)^2 / sigma_d^2)
 * over the decoded (normalised) observation and reward with their likelihood stds, counted with
 * the probability that the episode is still going (the continuation head, at the sampled z+). */
static double info_reference(const latent_fixture *f, int P, uint64_t seed)
{
    const model_t *m = f->snap->model;
    const model_config *c = &m->cfg;
    int dh = c->h_dim, dz = c->z_dim, dx = c->obs_dim, H = f->p.horizon;
    model_ws *mws = model_ws_new(m, P);
    size_t n_h = (size_t)P * dh, n_z = (size_t)P * dz;
    float *h = malloc(sizeof(float) * n_h), *h2 = malloc(sizeof(float) * n_h);
    float *z = malloc(sizeof(float) * n_z), *zm = malloc(sizeof(float) * n_z);
    float *mu = malloc(sizeof(float) * n_z), *sd = malloc(sizeof(float) * n_z);
    float *eps = malloc(sizeof(float) * n_z), *a = malloc(sizeof(float) * (size_t)P);
    float *x1 = malloc(sizeof(float) * (size_t)P * dx),
          *x2 = malloc(sizeof(float) * (size_t)P * dx);
    float *r1 = malloc(sizeof(float) * (size_t)P), *r2 = malloc(sizeof(float) * (size_t)P);
    float *alive = malloc(sizeof(float) * (size_t)P), *cont = malloc(sizeof(float) * (size_t)P);
    ck_assert(mws && h && h2 && z && zm && mu && sd && eps && a && x1 && x2 && r1 && r2 && alive &&
              cont);
    for (int n = 0; n < P; n++) {
        memcpy(h + (size_t)n * dh, f->h, sizeof(float) * (size_t)dh);
        memcpy(z + (size_t)n * dz, f->z, sizeof(float) * (size_t)dz);
        alive[n] = 1.0f;
    }
    rng_t r;
    rng_seed(&r, seed, 77);
    double total = 0.0, disc = 1.0;
    for (int t = 0; t < H; t++) {
        for (int n = 0; n < P; n++)
            a[n] = tanhf(f->out->u_mean[t]);
        model_transition(m, f->snap->params, mws, h2, mu, sd, h, z, a, P);
        float *tmp = h;
        h = h2;
        h2 = tmp;
        rng_fill_normal(&r, eps, n_z);
        for (size_t i = 0; i < n_z; i++) {
            z[i] = mu[i] + sd[i] * eps[i];
            zm[i] = mu[i] - sd[i] * eps[i];
        }
        model_decode(m, f->snap->params, mws, x1, r1, h, z, P);
        model_decode(m, f->snap->params, mws, x2, r2, h, zm, P);
        model_continue(m, f->snap->params, mws, cont, h, z, P);
        double sum = 0.0;
        for (int n = 0; n < P; n++) {
            double in = 0.0;
            for (int d = 0; d < dx; d++) {
                double half = 0.5 * ((double)x1[(size_t)n * dx + d] - x2[(size_t)n * dx + d]);
                in += 0.5 * log1p(half * half / ((double)c->obs_std * c->obs_std));
            }
            double half = 0.5 * ((double)r1[n] - r2[n]);
            in += 0.5 * log1p(half * half / ((double)c->reward_std * c->reward_std));
            sum += alive[n] * in;
            alive[n] *= cont[n];
        }
        total += disc * sum / P;
        disc *= f->p.discount;
    }
    model_ws_free(mws);
    free(h);
    free(h2);
    free(z);
    free(zm);
    free(mu);
    free(sd);
    free(eps);
    free(a);
    free(x1);
    free(x2);
    free(r1);
    free(r2);
    free(alive);
    free(cont);
    return total;
}

START_TEST(test_latent_info_bonus)
{
    planner_config p;
    planner_config_defaults(&p);
    p.beta_info = 1.0f;
    p.population = 100;
    p.iterations = 2;
    latent_fixture f;
    latent_init(&f, &p, -1.0f, 1.0f);
    ck_assert_int_eq(plan_latent(&f, NULL, 0.0, 0, 1), 0);
    double ref = info_reference(&f, 2048, 5);
    printf("planner latent info bonus: plan %.5f nats, independent 2048-particle estimate %.5f\n",
           f.out->info_bonus, ref);
    fflush(stdout);
    ck_assert(isfinite(f.out->info_bonus));
    ck_assert(f.out->info_bonus >= 0.0);
    /* A random decoder depends on z, so the estimate is positive; the plan's 32-particle
     * estimate agrees with the reference within its sampling error. */
    ck_assert(ref > 0.0);
    ck_assert_msg(fabs(f.out->info_bonus - ref) <= 0.35 * ref, "info bonus %g against %g",
                  f.out->info_bonus, ref);
    ck_assert(isfinite(f.out->expected_return) && isfinite(f.out->objective));
    ck_assert(isfinite(f.out->action_logratio) && f.out->action_logratio >= 0.0);
    latent_free(&f);
}
END_TEST

/* The run without a deadline does all its iterations; under the sanitizers (-O1, an iteration
 * of the default agent takes about 200 ms instead of 5 to 15) it does fewer of them. */
#if defined(__SANITIZE_ADDRESS__)
#define FULL_ITERATIONS 5
#else
#define FULL_ITERATIONS 50
#endif

START_TEST(test_deadline_honoured)
{
    planner_config p;
    planner_config_defaults(&p);
    p.iterations = 50;
    latent_fixture f;
    latent_init(&f, &p, -1.0f, 1.0f);

    /* A plan of one iteration (with the prior's rollout and the final predictions, which the
     * deadline also covers), measured separately: the slowest of three. */
    f.p.iterations = 1;
    double one = 0.0;
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(plan_latent(&f, NULL, 0.0, 0, 3), 0);
        one = fmax(one, f.out->ms);
    }
    f.p.iterations = 50;
    /* 15 ms, or three one-iteration plans where one takes longer (a loaded machine), so that at
     * least one iteration fits and several do not. */
    const double deadline = fmax(15.0, 3.0 * one);

    /* The planner stops when the next iteration would not fit, so it ends within the deadline
     * plus the predictions, or after one iteration when a single one does not fit. Generous
     * slack for a loaded machine: the larger of twice the deadline and the deadline plus 1.5
     * times that measured plan. */
    ck_assert_int_eq(plan_latent(&f, NULL, deadline, 0, 3), 0);
    double bound = fmax(2.0 * deadline, deadline + 1.5 * one);
    printf("planner deadline %.0f ms: %d iterations in %.2f ms (a one-iteration plan %.2f ms, "
           "bound %.2f ms), degraded %d\n",
           deadline, f.out->iterations, f.out->ms, one, bound, f.out->degraded);
    ck_assert_msg(f.out->ms < bound, "%.2f ms against a %.0f ms deadline", f.out->ms, deadline);
    ck_assert_int_eq(f.out->degraded, 1);
    ck_assert_int_lt(f.out->iterations, 50);
    ck_assert_int_ge(f.out->iterations, 1);

    f.p.iterations = FULL_ITERATIONS;
    ck_assert_int_eq(plan_latent(&f, NULL, 0.0, 0, 3), 0);
    printf("planner no deadline: %d iterations in %.2f ms\n", f.out->iterations, f.out->ms);
    ck_assert_int_eq(f.out->iterations, FULL_ITERATIONS);
    ck_assert_int_eq(f.out->degraded, 0);
    f.p.iterations = 50;

    /* A deadline already spent before the first iteration: the prior's plan, still valid. */
    ck_assert_int_eq(plan_latent(&f, NULL, 1e-3, 0, 3), 0);
    printf("planner deadline 1 us: %d iterations in %.3f ms\n", f.out->iterations, f.out->ms);
    fflush(stdout);
    ck_assert_int_le(f.out->iterations, 1);
    ck_assert_int_eq(f.out->degraded, 1);
    ck_assert(isfinite(f.out->action[0]));
    ck_assert(f.out->action[0] >= -1.0f && f.out->action[0] <= 1.0f);
    latent_free(&f);
}
END_TEST

static void assert_same_floats(const float *a, const float *b, size_t n, const char *what)
{
    ck_assert_msg(memcmp(a, b, sizeof(float) * n) == 0, "%s differs", what);
}

static void assert_same_plan(const plan_result *a, const plan_result *b)
{
    size_t ha = (size_t)a->horizon * a->act_dim, hx = (size_t)a->horizon * a->obs_dim;
    assert_same_floats(a->action, b->action, (size_t)a->act_dim, "action");
    assert_same_floats(a->u0_mean, b->u0_mean, (size_t)a->act_dim, "u0_mean");
    assert_same_floats(a->u0_std, b->u0_std, (size_t)a->act_dim, "u0_std");
    assert_same_floats(a->mean, b->mean, ha, "mean");
    assert_same_floats(a->std, b->std, ha, "std");
    assert_same_floats(a->u_mean, b->u_mean, ha, "u_mean");
    assert_same_floats(a->u_std, b->u_std, ha, "u_std");
    assert_same_floats(a->pred_reward, b->pred_reward, (size_t)a->horizon, "pred_reward");
    assert_same_floats(a->pred_reward_std, b->pred_reward_std, (size_t)a->horizon,
                       "pred_reward_std");
    assert_same_floats(a->pred_obs, b->pred_obs, hx, "pred_obs");
    assert_same_floats(a->pred_obs_std, b->pred_obs_std, hx, "pred_obs_std");
    ck_assert(memcmp(&a->expected_return, &b->expected_return, sizeof(double)) == 0);
    ck_assert(memcmp(&a->info_bonus, &b->info_bonus, sizeof(double)) == 0);
    ck_assert(memcmp(&a->action_logratio, &b->action_logratio, sizeof(double)) == 0);
    ck_assert(memcmp(&a->terminal_value, &b->terminal_value, sizeof(double)) == 0);
    ck_assert(memcmp(&a->objective, &b->objective, sizeof(double)) == 0);
    ck_assert_int_eq(a->iterations, b->iterations);
    ck_assert_int_eq(a->degraded, b->degraded);
}

START_TEST(test_same_seed_same_plan)
{
    for (int method = PLAN_MPPI; method <= PLAN_CEM; method++) {
        planner_config p;
        planner_config_defaults(&p);
        p.method = (plan_method)method;
        p.iterations = 3;
        p.population = 64;
        p.elites = 8;
        latent_fixture f;
        latent_init(&f, &p, -2.0f, 0.5f);
        plan_result *first = plan_result_new(p.horizon, 1, 3);
        plan_state *prev1 = plan_state_new(p.horizon, 1), *prev2 = plan_state_new(p.horizon, 1);
        ck_assert(first && prev1 && prev2);
        /* Cold, then warm from the plan just made: the same twice over. */
        ck_assert_int_eq(plan_latent(&f, prev1, 0.0, 1, 42), 0);
        plan_result *keep = f.out;
        f.out = first;
        ck_assert_int_eq(plan_latent(&f, prev2, 0.0, 1, 42), 0);
        assert_same_plan(keep, first);
        assert_same_floats(prev1->u_mean, prev2->u_mean, (size_t)p.horizon, "prev u_mean");
        assert_same_floats(prev1->u_std, prev2->u_std, (size_t)p.horizon, "prev u_std");
        ck_assert_int_eq(plan_latent(&f, prev1, 0.0, 1, 43), 0);
        f.out = keep;
        ck_assert_int_eq(plan_latent(&f, prev2, 0.0, 1, 43), 0);
        assert_same_plan(keep, first);
        /* A different seed gives a different plan (the check above is not vacuous). */
        ck_assert_int_eq(plan_latent(&f, NULL, 0.0, 1, 44), 0);
        ck_assert(memcmp(keep->u_mean, first->u_mean, sizeof(float) * (size_t)p.horizon) != 0);
        plan_result_free(first);
        plan_state_free(prev1);
        plan_state_free(prev2);
        latent_free(&f);
    }
}
END_TEST

/* predict = 0 (an act that returns only the action) plans exactly the same action, refits and
 * next warm start, and leaves the predictions and terms at 0; predict = 1 fills them. */
START_TEST(test_plan_without_predictions)
{
    planner_config p;
    planner_config_defaults(&p);
    p.population = 64;
    latent_fixture f;
    latent_init(&f, &p, -2.0f, 0.5f);
    plan_result *full = plan_result_new(p.horizon, 1, 3), *bare = plan_result_new(p.horizon, 1, 3);
    plan_state *prev1 = plan_state_new(p.horizon, 1), *prev2 = plan_state_new(p.horizon, 1);
    ck_assert(full && bare && prev1 && prev2);
    ck_assert_int_eq(full->predict, 1);
    bare->predict = 0;
    plan_result *own = f.out;
    f.out = full;
    ck_assert_int_eq(plan_latent(&f, prev1, 0.0, 1, 42), 0);
    f.out = bare;
    ck_assert_int_eq(plan_latent(&f, prev2, 0.0, 1, 42), 0);
    f.out = own;
    ck_assert_float_eq(full->action[0], bare->action[0]);
    ck_assert_int_eq(full->iterations, bare->iterations);
    assert_same_floats(full->u_mean, bare->u_mean, (size_t)p.horizon, "u_mean");
    assert_same_floats(prev1->u_mean, prev2->u_mean, (size_t)p.horizon, "prev u_mean");
    double filled = 0.0;
    for (int t = 0; t < p.horizon; t++) {
        ck_assert_float_eq(bare->pred_reward[t], 0.0f);
        ck_assert_float_eq(bare->pred_obs[(size_t)t * 3], 0.0f);
        filled += fabs(full->pred_obs[(size_t)t * 3]) + full->pred_reward_std[t];
    }
    ck_assert(filled > 0.0);
    ck_assert(bare->expected_return == 0.0 && bare->info_bonus == 0.0);
    ck_assert(full->info_bonus > 0.0);
    plan_result_free(full);
    plan_result_free(bare);
    plan_state_free(prev1);
    plan_state_free(prev2);
    latent_free(&f);
}
END_TEST

/* ---- basics -----------------------------------------------------------------------------------
 */

typedef enum { F_INT, F_FLOAT, F_METHOD } field_kind;

typedef struct bad_field {
    const char *field;
    field_kind kind;
    size_t offset;
    double value;
} bad_field;

#define BAD_INT(f, v)                               \
    {                                               \
#f, F_INT, offsetof(planner_config, f), (v) \
    }
#define BAD_FLOAT(f, v)                               \
    {                                                 \
#f, F_FLOAT, offsetof(planner_config, f), (v) \
    }

START_TEST(test_config_validate_table)
{
    static const bad_field cases[] = {
        {"method", F_METHOD, offsetof(planner_config, method), 2},
        BAD_INT(horizon, 0),
        BAD_INT(horizon, 201),
        BAD_INT(population, 1),
        BAD_INT(population, 20001),
        BAD_INT(iterations, 0),
        BAD_INT(iterations, 101),
        BAD_INT(elites, 0),
        BAD_INT(elites, 201), /* more than the population */
        BAD_FLOAT(policy_fraction, -0.1),
        BAD_FLOAT(policy_fraction, 1.5),
        BAD_FLOAT(policy_fraction, NAN),
        BAD_FLOAT(temperature, 0),
        BAD_FLOAT(temperature, 2e4),
        BAD_FLOAT(temperature, NAN),
        BAD_FLOAT(beta_info, -0.5),
        BAD_FLOAT(beta_info, 101),
        BAD_FLOAT(beta_info, NAN),
        BAD_FLOAT(beta_action, -0.5),
        BAD_FLOAT(beta_action, 101),
        BAD_FLOAT(discount, 0),
        BAD_FLOAT(discount, 1.01),
        BAD_FLOAT(init_std, 0),
        BAD_FLOAT(init_std, 11),
        BAD_FLOAT(min_std, 0),
        BAD_FLOAT(min_std, 2), /* above init_std */
        BAD_FLOAT(momentum, -0.1),
        BAD_FLOAT(momentum, 1),
    };
    planner_config def;
    planner_config_defaults(&def);
    char err[128];
    ck_assert_int_eq(planner_config_validate(&def, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        planner_config p = def;
        char *at = (char *)&p + cases[i].offset;
        if (cases[i].kind == F_INT)
            *(int *)at = (int)cases[i].value;
        else if (cases[i].kind == F_FLOAT)
            *(float *)at = (float)cases[i].value;
        else
            p.method = (plan_method)(int)cases[i].value;
        err[0] = '\0';
        ck_assert_msg(planner_config_validate(&p, err, sizeof err) == -1, "%s = %g accepted",
                      cases[i].field, cases[i].value);
        size_t len = strlen(cases[i].field);
        ck_assert_msg(strncmp(err, cases[i].field, len) == 0 && err[len] == ':',
                      "%s = %g: message \"%s\" does not name the field", cases[i].field,
                      cases[i].value, err);
    }
    /* The edges of the ranges are accepted. */
    planner_config p = def;
    p.horizon = 200;
    p.population = 2;
    p.elites = 2;
    p.iterations = 100;
    p.policy_fraction = 1.0f;
    p.discount = 1.0f;
    p.min_std = p.init_std;
    p.momentum = 0.0f;
    ck_assert_int_eq(planner_config_validate(&p, err, sizeof err), 0);
}
END_TEST

START_TEST(test_action_in_box)
{
    /* An asymmetric box, both methods, mean and sampled actions, several seeds. */
    const float low = -2.0f, high = 0.5f;
    for (int method = PLAN_MPPI; method <= PLAN_CEM; method++) {
        planner_config p;
        planner_config_defaults(&p);
        p.method = (plan_method)method;
        p.iterations = 2;
        p.population = 64;
        p.elites = 8;
        p.init_std = 3.0f; /* wide: many samples saturate the squash */
        latent_fixture f;
        latent_init(&f, &p, low, high);
        plan_state *prev = plan_state_new(p.horizon, 1);
        ck_assert_ptr_nonnull(prev);
        for (int seed = 1; seed <= 4; seed++)
            for (int explore = 0; explore <= 1; explore++) {
                ck_assert_int_eq(plan_latent(&f, prev, 0.0, explore, (uint64_t)seed), 0);
                ck_assert(f.out->action[0] >= low && f.out->action[0] <= high);
                if (!explore)
                    ck_assert(f.out->action[0] == f.out->mean[0]);
                for (int t = 0; t < p.horizon; t++) {
                    ck_assert(isfinite(f.out->mean[t]) && isfinite(f.out->std[t]));
                    ck_assert(f.out->mean[t] >= low && f.out->mean[t] <= high);
                    ck_assert(f.out->std[t] >= 0.0f && f.out->u_std[t] >= p.min_std);
                    ck_assert(isfinite(f.out->pred_reward[t]) && f.out->pred_reward_std[t] >= 0);
                }
            }
        plan_state_free(prev);
        latent_free(&f);
    }
}
END_TEST

START_TEST(test_policy_mode)
{
    planner_config p;
    planner_config_defaults(&p);
    const float low = -2.0f, high = 0.5f;
    latent_fixture f;
    latent_init(&f, &p, low, high);
    const model_t *m = f.snap->model;
    rng_t r;
    rng_seed(&r, 1, 2);
    float a1, a2, mu1, mu2, sd1, sd2;
    planner_policy(m, f.snap->params, f.ws, f.h, f.z, 0, &r, &a1, &mu1, &sd1);
    planner_policy(m, f.snap->params, f.ws, f.h, f.z, 0, &r, &a2, &mu2, &sd2);
    ck_assert(a1 == a2 && mu1 == mu2 && sd1 == sd2);
    ck_assert(a1 >= low && a1 <= high);
    ck_assert(sd1 > 0.0f);
    /* The mean action is the squashed prior mean. */
    ck_assert_float_eq_tol(a1, -0.75f + 1.25f * tanhf(mu1), 1e-6f);
    /* Exploring samples from the prior: draws differ, stay in the box, and repeat with the seed. */
    float draws[16];
    int distinct = 0;
    for (int k = 0; k < 16; k++) {
        planner_policy(m, f.snap->params, f.ws, f.h, f.z, 1, &r, &draws[k], NULL, NULL);
        ck_assert(draws[k] >= low && draws[k] <= high);
        distinct += k > 0 && draws[k] != draws[k - 1];
    }
    ck_assert_int_ge(distinct, 14);
    rng_t r1, r2;
    rng_seed(&r1, 9, 9);
    rng_seed(&r2, 9, 9);
    planner_policy(m, f.snap->params, f.ws, f.h, f.z, 1, &r1, &a1, NULL, NULL);
    planner_policy(m, f.snap->params, f.ws, f.h, f.z, 1, &r2, &a2, NULL, NULL);
    ck_assert(a1 == a2);
    latent_free(&f);
}
END_TEST

START_TEST(test_bad_arguments)
{
    planner_config p;
    planner_config_defaults(&p);
    latent_fixture f;
    latent_init(&f, &p, -1.0f, 1.0f);
    /* A plan_state or plan_result of another horizon is refused. */
    plan_state *other = plan_state_new(p.horizon + 1, 1);
    ck_assert_ptr_nonnull(other);
    ck_assert_int_eq(plan_latent(&f, other, 0.0, 0, 1), -1);
    plan_state_free(other);
    plan_result *keep = f.out;
    f.out = plan_result_new(p.horizon, 1, 2); /* wrong observation size */
    ck_assert_ptr_nonnull(f.out);
    ck_assert_int_eq(plan_latent(&f, NULL, 0.0, 0, 1), -1);
    plan_result_free(f.out);
    f.out = keep;
    /* A config of another population than the workspace's. */
    f.p.population = p.population + 1;
    ck_assert_int_eq(plan_latent(&f, NULL, 0.0, 0, 1), -1);
    latent_free(&f);
}
END_TEST

Suite *planner_suite(void)
{
    Suite *s = suite_create("planner");
    TCase *lq = tcase_create("linear_quadratic");
    tcase_set_timeout(lq, 60);
    tcase_add_test(lq, test_lq_exact_optimum);
    tcase_add_test(lq, test_lq_warm_start_needs_fewer_iterations);
    suite_add_tcase(s, lq);
    TCase *info = tcase_create("information");
    tcase_set_timeout(info, 60);
    tcase_add_test(info, test_info_bonus_picks_informative_branch);
    tcase_add_test(info, test_latent_info_bonus);
    suite_add_tcase(s, info);
    TCase *lat = tcase_create("latent");
    tcase_set_timeout(lat, 60);
    tcase_add_test(lat, test_deadline_honoured);
    tcase_add_test(lat, test_same_seed_same_plan);
    tcase_add_test(lat, test_plan_without_predictions);
    suite_add_tcase(s, lat);
    TCase *basics = tcase_create("basics");
    tcase_set_timeout(basics, 30);
    tcase_add_test(basics, test_config_validate_table);
    tcase_add_test(basics, test_action_in_box);
    tcase_add_test(basics, test_policy_mode);
    tcase_add_test(basics, test_bad_arguments);
    suite_add_tcase(s, basics);
    return s;
}
