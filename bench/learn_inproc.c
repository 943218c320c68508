/* learn_inproc: the agent learning the reference tasks in one process, without HTTP - the tool
 * for tuning defaults quickly. Each environment step: filter, plan, record; then training steps
 * until steps = ratio * transitions (the daemon's trainer does the same in the background).
 *
 * Build: make learn-inproc. Usage: build/learn_inproc [pendulum|cartpole] [episodes] [seed]
 * [key=value ...]; keys: ratio (training steps per transition), h, z, hidden, lr, obs_std,
 * reward_std, batch, seq, overshoot, free_nats, value (value_weight), horizon, population,
 * iterations, beta_info, beta_action, temperature, use_value, sample (sample_states),
 * prior_init (0: zero-mean planner init), policy_fraction, method (0 MPPI, 1 CEM), policy (1: act
 * with the policy only), true_model (1: plan with the true dynamics, the planner's ceiling).
 * TRACE=E prints every step from episode E on: position, angle, action, planned return, terminal
 * value, P(continue), and every third planned reward and observation[0] (x for the cart-pole).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/agent.h"
#include "core/planner.h"
#include "core/tensor.h"
#include "core/vmath.h"

typedef struct env {
    int kind; /* 0 pendulum, 1 cartpole */
    double s[4];
    int t;
    rng_t rng;
} env;

static double wrap(double th)
{
    th = fmod(th + M_PI, 2 * M_PI);
    if (th < 0)
        th += 2 * M_PI;
    return th - M_PI;
}

static void env_obs(const env *e, float *x)
{
    if (e->kind == 0) {
        x[0] = (float)cos(e->s[0]);
        x[1] = (float)sin(e->s[0]);
        x[2] = (float)e->s[1];
    } else {
        x[0] = (float)e->s[0];
        x[1] = (float)e->s[1];
        x[2] = (float)cos(e->s[2]);
        x[3] = (float)sin(e->s[2]);
        x[4] = (float)e->s[3];
    }
}

static void env_reset(env *e)
{
    e->t = 0;
    if (e->kind == 0) {
        e->s[0] = (2 * rng_uniform(&e->rng) - 1) * M_PI;
        e->s[1] = 2 * rng_uniform(&e->rng) - 1;
    } else {
        e->s[0] = 0.05 * rng_normal(&e->rng);
        e->s[1] = 0.05 * rng_normal(&e->rng);
        e->s[2] = M_PI + 0.05 * rng_normal(&e->rng);
        e->s[3] = 0.05 * rng_normal(&e->rng);
    }
}

/* Returns the reward; *done on early termination. */
static double env_step(env *e, double u, int *done)
{
    *done = 0;
    e->t++;
    if (e->kind == 0) {
        u = u > 2 ? 2 : (u < -2 ? -2 : u);
        double th = e->s[0], thd = e->s[1];
        double r = -(wrap(th) * wrap(th) + 0.1 * thd * thd + 0.001 * u * u);
        thd += (3 * 10.0 / 2 * sin(th) + 3.0 * u) * 0.05;
        thd = thd > 8 ? 8 : (thd < -8 ? -8 : thd);
        th += thd * 0.05;
        e->s[0] = th;
        e->s[1] = thd;
        return r;
    }
    u = u > 1 ? 1 : (u < -1 ? -1 : u);
    double F = 10.0 * u, g = 9.8, mc = 1.0, mp = 0.1, l = 0.5, tm = mc + mp, pml = mp * l;
    for (int k = 0; k < 5; k++) {
        double x = e->s[0], xd = e->s[1], th = e->s[2], thd = e->s[3];
        double temp = (F + pml * thd * thd * sin(th)) / tm;
        double thacc =
            (g * sin(th) - cos(th) * temp) / (l * (4.0 / 3.0 - mp * cos(th) * cos(th) / tm));
        double xacc = temp - pml * thacc * cos(th) / tm;
        e->s[0] = x + 0.01 * xd;
        e->s[1] = xd + 0.01 * xacc;
        e->s[2] = th + 0.01 * thd;
        e->s[3] = thd + 0.01 * thacc;
    }
    if (fabs(e->s[0]) > 2.4)
        *done = 1;
    return (1 + cos(e->s[2])) / 2;
}

/* The true dynamics as a plan_world: the planner's ceiling with the same search settings. */
typedef struct true_world {
    const env *start;
    env *rows;
    int n;
    float scale; /* rewards divided by this, as the agent's normaliser does */
} true_world;

static void tw_start(void *ctx, int rows)
{
    true_world *w = ctx;
    for (int i = 0; i < rows; i++)
        w->rows[i] = *w->start;
}

static void tw_prior(void *ctx, int rows, float *mu, float *std)
{
    (void)ctx;
    for (int i = 0; i < rows; i++) {
        mu[i] = 0.0f;
        std[i] = 1.0f;
    }
}

static void tw_step(void *ctx, int rows, const float *a, float *reward, float *info, rng_t *rng)
{
    true_world *w = ctx;
    (void)rng;
    for (int i = 0; i < rows; i++) {
        int done;
        double hi = w->rows[i].kind ? 1.0 : 2.0;
        if (w->rows[i].t < 0) { /* ended: no more reward */
            reward[i] = 0.0f;
            if (info)
                info[i] = 0.0f;
            continue;
        }
        reward[i] = (float)(env_step(&w->rows[i], a[i] * hi, &done) / w->scale);
        if (done)
            w->rows[i].t = -1;
        if (info)
            info[i] = 0.0f;
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    vm_thread_init();
    tensor_set_blas_threads(1);
    int kind = argc > 1 && strcmp(argv[1], "cartpole") == 0;
    int episodes = argc > 2 ? atoi(argv[2]) : 10;
    int seed = argc > 3 ? atoi(argv[3]) : 1;
    int dx = kind ? 5 : 3;
    model_config c;
    model_config_defaults(&c, dx, 1);
    c.act_low[0] = kind ? -1 : -2;
    c.act_high[0] = kind ? 1 : 2;
    c.seed = (uint64_t)seed;
    planner_config p;
    planner_config_defaults(&p);
    double ratio = 2.0;
    int policy_only = 0, true_model = 0;
    for (int i = 4; i < argc; i++) {
        char k[64];
        double v;
        if (sscanf(argv[i], "%63[^=]=%lf", k, &v) != 2)
            continue;
        if (!strcmp(k, "ratio"))
            ratio = v;
        else if (!strcmp(k, "h"))
            c.h_dim = (int)v;
        else if (!strcmp(k, "z"))
            c.z_dim = (int)v;
        else if (!strcmp(k, "hidden"))
            c.hidden = (int)v;
        else if (!strcmp(k, "lr"))
            c.lr = (float)v;
        else if (!strcmp(k, "obs_std"))
            c.obs_std = (float)v;
        else if (!strcmp(k, "reward_std"))
            c.reward_std = (float)v;
        else if (!strcmp(k, "batch"))
            c.batch = (int)v;
        else if (!strcmp(k, "seq"))
            c.seq_len = (int)v;
        else if (!strcmp(k, "overshoot"))
            c.overshoot = (float)v;
        else if (!strcmp(k, "free_nats"))
            c.free_nats = (float)v;
        else if (!strcmp(k, "value"))
            c.value_weight = (float)v;
        else if (!strcmp(k, "horizon"))
            p.horizon = (int)v;
        else if (!strcmp(k, "population"))
            p.population = (int)v;
        else if (!strcmp(k, "iterations"))
            p.iterations = (int)v;
        else if (!strcmp(k, "beta_info"))
            p.beta_info = (float)v;
        else if (!strcmp(k, "beta_action"))
            p.beta_action = (float)v;
        else if (!strcmp(k, "temperature"))
            p.temperature = (float)v;
        else if (!strcmp(k, "use_value"))
            p.use_value = (int)v;
        else if (!strcmp(k, "sample"))
            p.sample_states = (int)v;
        else if (!strcmp(k, "prior_init"))
            p.init_from_prior = (int)v;
        else if (!strcmp(k, "policy_fraction"))
            p.policy_fraction = (float)v;
        else if (!strcmp(k, "method"))
            p.method = (plan_method)(int)v;
        else if (!strcmp(k, "true_model"))
            true_model = (int)v;
        else if (!strcmp(k, "policy"))
            policy_only = (int)v;
        else
            fprintf(stderr, "unknown key %s\n", k);
    }
    char err[256];
    agent_t *a = agent_new(&c, err, sizeof err);
    if (!a || planner_config_validate(&p, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    planner_ws *ws = planner_ws_new(&a->model, &p);
    plan_result *pr = plan_result_new(p.horizon, 1, dx);
    plan_state *ps = plan_state_new(p.horizon, 1);
    plan_search *search = plan_search_new(&p, 1);
    env e = {.kind = kind};
    rng_seed(&e.rng, (uint64_t)seed, 99);
    rng_t prng;
    rng_seed(&prng, (uint64_t)seed, 5);
    long transitions = 0;
    double plan_ms_sum = 0;
    long plans = 0;
    for (int ep = 0; ep < episodes; ep++) {
        env_reset(&e);
        float h[MODEL_MAX_STATE] = {0}, z[MODEL_MAX_STATE] = {0}, x[8], a_prev[1] = {0};
        float reward = 0.0f;
        double ret = 0, t0 = now_ms(), train_ms = 0;
        ps->valid = 0;
        uint64_t id = (uint64_t)ep + 1;
        int done = 0, steps = 0;
        for (int t = 0; t < 200 && !done; t++) {
            env_obs(&e, x);
            agent_snapshot *s = agent_snapshot_acquire(a);
            model_filter_step(&a->model, s->params, &s->norm, planner_ws_model(ws), h, z,
                              t ? a_prev : NULL, x, reward, t == 0);
            float act[1], dist[2];
            if (ep == 0 && !true_model) {
                act[0] = (float)((2 * rng_uniform(&prng) - 1) * c.act_high[0]);
                dist[0] = 0;
                dist[1] = 1;
            } else if (true_model) {
                static env rows[20000];
                true_world tw = {&e, rows, p.population, kind ? 0.3f : 3.0f};
                plan_world w = {&tw, 1, tw_start, tw_prior, tw_step, NULL};
                planner_config tp = p;
                tp.beta_info = 0;
                tp.beta_action = 0;
                tp.policy_fraction = 0;
                tp.init_from_prior = 0;
                planner_search(&tp, &w, search, ps, 0, 0, &prng, c.act_low, c.act_high, pr);
                act[0] = pr->action[0];
                dist[0] = pr->u0_mean[0];
                dist[1] = pr->u0_std[0];
            } else if (policy_only) {
                planner_policy(&a->model, s->params, ws, h, z, 0, &prng, act, dist, dist + 1);
            } else {
                double p0 = now_ms();
                planner_plan(&a->model, &p, s->params, &s->norm, ws, h, z, ps, 0, 0, &prng, pr);
                if (getenv("TRACE") && ep >= atoi(getenv("TRACE"))) {
                    float cp;
                    model_continue(&a->model, s->params, planner_ws_model(ws), &cp, h, z, 1);
                    printf("  t %3d x %6.2f th %6.2f a %5.2f ret %7.3f V %6.2f cont %.3f pr:", t,
                           e.s[0], e.kind ? e.s[2] : e.s[0], pr->action[0], pr->expected_return,
                           pr->terminal_value, cp);
                    for (int k = 0; k < p.horizon; k += 3)
                        printf(" %.2f", pr->pred_reward[k]);
                    printf(" x:");
                    for (int k = 0; k < p.horizon; k += 3)
                        printf(" %.2f", pr->pred_obs[(size_t)k * dx]);
                    printf("\n");
                }
                plan_ms_sum += now_ms() - p0;
                plans++;
                act[0] = pr->action[0];
                dist[0] = pr->u0_mean[0];
                dist[1] = pr->u0_std[0];
            }
            agent_snapshot_release(a, s);
            agent_add_step(a, id, t == 0, x, reward, act, ep == 0 ? NULL : dist, 0);
            transitions++;
            reward = (float)env_step(&e, act[0], &done);
            ret += reward;
            a_prev[0] = act[0];
            steps++;
            double tt = now_ms();
            while (transitions >= 100 && a->step < ratio * transitions) {
                if (agent_train_step(a, NULL))
                    break;
            }
            agent_publish(a);
            train_ms += now_ms() - tt;
        }
        env_obs(&e, x);
        agent_add_step(a, id, 0, x, reward, NULL, NULL, done);
        replay_close_episode(a->replay, id);
        agent_train_stats st = agent_last_stats(a);
        printf("episode %2d return %8.1f steps %3d train_steps %6ld elbo %8.3f obs_nll %7.3f "
               "rew_nll %7.3f cont %6.3f os_nll %7.3f kl %6.3f value %7.4f wall %.1fs (train "
               "%.1fs) plan "
               "%.1fms\n",
               ep, ret, steps, a->step, st.terms.elbo, st.terms.obs_nll, st.terms.reward_nll,
               st.terms.cont_nll, st.terms.overshoot_nll, st.terms.state_kl, st.terms.value_loss,
               (now_ms() - t0) / 1e3, train_ms / 1e3, plans ? plan_ms_sum / plans : 0.0);
        fflush(stdout);
    }
    plan_result_free(pr);
    plan_search_free(search);
    plan_state_free(ps);
    planner_ws_free(ws);
    agent_free(a);
    return 0;
}
