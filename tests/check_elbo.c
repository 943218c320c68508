/* check_elbo: the training objective of core/elbo.c: finite-difference gradient of the whole
 * objective for every parameter group, term definitions, and determinism. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/elbo.h"
#include "core/tensor.h"
#include "testutil.h"

typedef struct fixture {
    model_t m;
    model_norm norm;
    replay_t *rp;
    replay_batch *b;
    elbo_ws *ws;
    float *params, *target, *grads;
    elbo_parts parts;
} fixture;

static void tiny_config(model_config *c)
{
    model_config_defaults(c, 2, 1);
    c->act_low[0] = -2.0f;
    c->act_high[0] = 2.0f;
    c->h_dim = 3;
    c->z_dim = 2;
    c->hidden = 4;
    c->head_layers = 1;
    c->act = ACT_TANH;
    c->free_nats = 0.0f;
    c->obs_std = 0.5f;
    c->reward_std = 0.5f;
    c->overshoot = 0.7f;
    c->overshoot_len = 2;
    c->value_weight = 0.5f;
    c->info_samples = 3;
    c->seq_len = 5;
    c->batch = 2;
    c->seed = 7;
}

/* Two episodes: one terminal of 3 steps with planner distributions, one of 6 without. */
static void fill_replay(fixture *f, rng_t *r)
{
    float obs[7 * 2], act[6], rew[6], dist[6 * 2];
    for (int ep = 0; ep < 2; ep++) {
        int T = ep == 0 ? 3 : 6;
        fill_normal(obs, (size_t)(T + 1) * 2, 1.0f, r);
        fill_uniform(act, (size_t)T, -1.9f, 1.9f, r);
        fill_normal(rew, (size_t)T, 1.0f, r);
        for (int t = 0; t < T; t++) {
            dist[2 * t] = 0.3f * rng_normal(r);
            dist[2 * t + 1] = 0.5f + 0.3f * (float)rng_uniform(r);
        }
        ck_assert_int_eq(replay_add_episode(f->rp, (uint64_t)ep, T, obs, act, rew,
                                            ep == 0 ? dist : NULL, ep == 0),
                         0);
        for (int t = 0; t <= T; t++)
            norm_update_obs(&f->norm, obs + 2 * t, 2);
        for (int t = 0; t < T; t++)
            norm_update_reward(&f->norm, rew[t]);
    }
}

static void fixture_init(fixture *f, const model_config *c)
{
    memset(f, 0, sizeof *f);
    char err[128];
    ck_assert_int_eq(model_config_validate(c, err, sizeof err), 0);
    ck_assert_int_eq(model_init(&f->m, c), 0);
    norm_init(&f->norm);
    f->rp = replay_new(c->obs_dim, c->act_dim, c->act_low, c->act_high, 1000);
    f->b = replay_batch_new(c->batch, c->seq_len, c->obs_dim, c->act_dim);
    f->ws = elbo_ws_new(&f->m, c->batch, c->seq_len);
    f->params = params_alloc(f->m.n_params);
    f->target = params_alloc(f->m.n_params);
    f->grads = params_alloc(f->m.n_params);
    ck_assert_ptr_nonnull(f->rp);
    ck_assert_ptr_nonnull(f->b);
    ck_assert_ptr_nonnull(f->ws);
    model_init_params(&f->m, f->params);
    rng_t r;
    rng_seed(&r, 42, 1);
    /* Larger random weights than the initialiser's so every path carries signal. */
    fill_normal(f->params, f->m.n_params, 0.4f, &r);
    fill_normal(f->target, f->m.n_params, 0.4f, &r);
    fill_replay(f, &r);
    /* Pin the batch: sequence 0 is the terminal episode, sequence 1 the longer one. */
    ck_assert_int_eq(replay_sample(f->rp, f->b, &r), 0);
    elbo_sample_noise(f->ws, &r);
    f->parts = (elbo_parts){1, 1, 1};
}

static void fixture_free(fixture *f)
{
    replay_free(f->rp);
    replay_batch_free(f->b);
    elbo_ws_free(f->ws);
    params_free(f->params);
    params_free(f->target);
    params_free(f->grads);
}

static double loss_of(void *ctx)
{
    fixture *f = ctx;
    elbo_terms t;
    ck_assert_int_eq(
        elbo_evaluate(&f->m, f->params, f->target, NULL, &f->norm, f->b, f->ws, &f->parts, &t), 0);
    return t.loss;
}

static void check_group(fixture *f, const char *group, elbo_parts parts)
{
    f->parts = parts;
    tensor_zero(f->grads, f->m.n_params);
    elbo_terms t;
    ck_assert_int_eq(
        elbo_evaluate(&f->m, f->params, f->target, f->grads, &f->norm, f->b, f->ws, &f->parts, &t),
        0);
    const param_group *g = params_layout_find(&f->m.layout, group);
    ck_assert_ptr_nonnull(g);
    double gn = tensor_sumsq(f->grads + g->offset, g->count);
    ck_assert_msg(gn > 0.0, "%s: zero gradient", group);
    gradcheck_result res = gradcheck(loss_of, f, f->params + g->offset, f->grads + g->offset,
                                     g->count, 1e-2f, 400, 1e-3);
    ck_assert_grad(res, 2e-2, group);
}

START_TEST(test_gradient_model_groups)
{
    static const char *groups[] = {"embed", "gru", "prior", "posterior", "obs_head", "reward_head"};
    model_config c;
    tiny_config(&c);
    fixture f;
    fixture_init(&f, &c);
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        check_group(&f, groups[i], (elbo_parts){1, 0, 0});
    fixture_free(&f);
}
END_TEST

START_TEST(test_gradient_actor_and_value)
{
    model_config c;
    tiny_config(&c);
    fixture f;
    fixture_init(&f, &c);
    check_group(&f, "action_prior", (elbo_parts){0, 1, 0});
    check_group(&f, "value", (elbo_parts){0, 0, 1});
    /* With everything on, the actor and value gradients are unchanged (their inputs are data). */
    check_group(&f, "action_prior", (elbo_parts){1, 1, 1});
    check_group(&f, "value", (elbo_parts){1, 1, 1});
    fixture_free(&f);
}
END_TEST

START_TEST(test_gradient_without_overshoot_relu_free)
{
    model_config c;
    tiny_config(&c);
    c.overshoot = 0.0f;
    c.act = ACT_SILU;
    c.head_layers = 2;
    fixture f;
    fixture_init(&f, &c);
    check_group(&f, "gru", (elbo_parts){1, 0, 0});
    check_group(&f, "posterior", (elbo_parts){1, 0, 0});
    check_group(&f, "obs_head", (elbo_parts){1, 0, 0});
    fixture_free(&f);
}
END_TEST

START_TEST(test_terms_consistent)
{
    model_config c;
    tiny_config(&c);
    fixture f;
    fixture_init(&f, &c);
    elbo_terms t, t2;
    ck_assert_int_eq(elbo_evaluate(&f.m, f.params, NULL, NULL, &f.norm, f.b, f.ws, NULL, &t), 0);
    ck_assert_double_eq_tol(t.elbo, t.reward + t.info_gain - t.state_kl - t.action_kl, 1e-9);
    ck_assert(t.state_kl >= 0.0);
    ck_assert(t.steps > 0);
    ck_assert(isfinite(t.info_gain));
    /* Same noise, same numbers. */
    ck_assert_int_eq(elbo_evaluate(&f.m, f.params, NULL, NULL, &f.norm, f.b, f.ws, NULL, &t2), 0);
    ck_assert(t.loss == t2.loss && t.info_gain == t2.info_gain);
    fixture_free(&f);
}
END_TEST

Suite *elbo_suite(void)
{
    Suite *s = suite_create("elbo");
    TCase *tc = tcase_create("gradients");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gradient_model_groups);
    tcase_add_test(tc, test_gradient_actor_and_value);
    tcase_add_test(tc, test_gradient_without_overshoot_relu_free);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("terms");
    tcase_add_test(tt, test_terms_consistent);
    suite_add_tcase(s, tt);
    return s;
}
