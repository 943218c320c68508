/* elbo: the training objective over a batch of sequences, its per-step terms and its gradients
 * by backpropagation through time.
 *
 * Per step t (DESIGN section 2), reported as means over the batch's steps:
 *   reward     r_t (raw units);
 *   info_gain  log p(x_t, r_t | h_t, z_t ~ q) - log p(x_t, r_t | h_t), the marginal estimated by
 *              log-mean-exp over K samples of the prior (on up to 4 sequences of the batch);
 *   state_kl   KL(q(z_t) || p(z_t)), analytic;
 *   action_kl  KL(q(a_t) || p(a_t)) against the planner's distribution when it was recorded, else
 *              the cross-entropy -log p(a_t | s_t) of the taken action (action_xent_fraction
 *              says how many steps used the cross-entropy);
 *   elbo       reward + info_gain - state_kl - action_kl.
 * The minimised loss (all means over valid steps):
 *   model:  -log p(x_t | s_t) - log p(r_t | s_t) - cont_weight * log p(c_t | s_t)
 *           + beta_z * max(state_kl, free_nats)       (c_t: the episode goes on after t)
 *           + overshoot * (-log-likelihood of x, r along open-loop prior rollouts of
 *             overshoot_len steps with the taken actions, from posterior states, with the
 *             episode-end term too);
 *   action prior: beta_a * action_kl (its input state is treated as data);
 *   value:  value_weight * 0.5 * (V(s_t) - G_t)^2, G_t the lambda-return of normalised rewards
 *           bootstrapped by the value head of `target_params` (input state treated as data).
 * Gradients of the model terms flow through time into every model parameter group.
 *
 * Ownership: the workspace holds every activation of one batch and the noise it uses; make one
 * per training thread. Nothing here locks.
 */
#ifndef ELBO_ELBO_H
#define ELBO_ELBO_H

#include "model.h"
#include "replay.h"
#include "rng.h"

typedef struct elbo_terms {
    double reward, info_gain, state_kl, action_kl, elbo;
    double obs_nll, reward_nll, cont_nll, overshoot_nll, value_loss, actor_loss;
    double action_xent_fraction;
    double loss; /* the minimised scalar */
    long steps;  /* valid steps in the batch */
} elbo_terms;

/* Which parts of the loss to include (all by default); the gradient tests isolate groups. */
typedef struct elbo_parts {
    int model, actor, value;
} elbo_parts;

typedef struct elbo_ws elbo_ws;

/* A workspace for batches of B sequences of L steps. NULL on failure; free with elbo_ws_free. */
elbo_ws *elbo_ws_new(const model_t *m, int B, int L);
void elbo_ws_free(elbo_ws *ws);

/* Draws the noise of the next evaluation (posterior, rollout and marginal samples). */
void elbo_sample_noise(elbo_ws *ws, rng_t *rng);

/* Evaluates the objective on batch b with the workspace's current noise (so that two calls give
 * the same value) and, when grads is not NULL, accumulates its gradient (m->n_params floats).
 * parts may be NULL (everything). target_params gives the value targets; NULL uses params.
 * Returns 0, or -1 when the batch holds no valid step or a value is not finite. */
int elbo_evaluate(const model_t *m, const float *params, const float *target_params, float *grads,
                  const model_norm *norm, const replay_batch *b, elbo_ws *ws,
                  const elbo_parts *parts, elbo_terms *out);

#endif
