/* model: the agent's networks (the latent world model of DESIGN section 2) and their inference.
 *
 * Latent state s_t = (h_t, z_t): h deterministic (GRU), z stochastic (diagonal Gaussian).
 *   transition   h_t = GRU(h_{t-1}, embed([z_{t-1}, a_{t-1}]))
 *   state prior  p(z_t | h_t)            = N(prior(h_t))
 *   posterior    q(z_t | h_t, x_t, r_t)  = N(post([h_t, x_t, r_t]))
 *   likelihood   p(x_t | s_t) = N(obs_head([h_t, z_t]), obs_std),
 *                p(r_t | s_t) = N(rew_head([h_t, z_t]), reward_std)
 *   action prior p(a_t | s_t): u ~ N(actor([h_t, z_t])), a = squash(u) into the action box
 *   value        V(s_t) = value_head([h_t, z_t]), the learned terminal value for planning
 *   continuation p(the episode goes on after s_t) = sigmoid(cont_head([h_t, z_t])), so that
 *                planning knows which actions end an episode (no reward after the end)
 * Observations and rewards enter the networks normalised (running mean and std, model_norm).
 *
 * This module owns the configuration, the parameter layout and the batched inference passes used
 * by filtering and planning (no caches, no gradients); elbo.c has the training passes.
 * Ownership: a model_t is plain data (config + layout) that the caller embeds; parameter blocks
 * and workspaces are separate allocations, freed by their *_free functions.
 */
#ifndef ELBO_MODEL_H
#define ELBO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "params.h"

#define MODEL_MAX_OBS    256
#define MODEL_MAX_ACT    32
#define MODEL_MAX_STATE  1024
#define MODEL_MAX_HIDDEN 1024

/* Everything that shapes an agent's model and its training. Planner settings live in planner.h. */
typedef struct model_config {
    int obs_dim, act_dim;
    float act_low[MODEL_MAX_ACT], act_high[MODEL_MAX_ACT];
    int h_dim;          /* deterministic state size */
    int z_dim;          /* stochastic state size */
    int hidden;         /* width of every hidden layer */
    int head_layers;    /* hidden layers in the decoder, reward, actor and value heads (1..4) */
    act_kind act;       /* hidden activation */
    float obs_std;      /* likelihood std of the normalised observation */
    float reward_std;   /* likelihood std of the normalised reward */
    float min_std;      /* floor of every predicted std */
    float free_nats;    /* state KL below this (per step) gives no gradient */
    float beta_z;       /* weight of state_kl in the model objective */
    float beta_a;       /* weight of action_kl in the action prior's objective */
    float overshoot;    /* weight of the open-loop (prior rollout) likelihood */
    int overshoot_len;  /* steps of each open-loop rollout */
    float value_weight; /* weight of the value regression; 0 turns the value head off */
    float cont_weight;  /* weight of the episode-end likelihood; 0 turns the head off */
    float discount;     /* discount of rewards for the value target and planning */
    int info_samples;   /* K: prior samples for the marginal in info_gain */
    int seq_len, batch; /* training sequences */
    float lr, clip_norm;
    int replay_capacity; /* steps (observations) kept in memory for training */
    uint64_t seed;
} model_config;

/* The defaults a user gets when giving only dimensions and bounds. */
void model_config_defaults(model_config *c, int obs_dim, int act_dim);
/* Validates c; returns 0, or -1 with a message naming the field in err (errlen bytes). */
int model_config_validate(const model_config *c, char *err, size_t errlen);

/* Running normaliser of observations and rewards (Welford, double). */
typedef struct model_norm {
    double count;
    double obs_mean[MODEL_MAX_OBS], obs_m2[MODEL_MAX_OBS];
    double rew_count, rew_mean, rew_m2;
} model_norm;

void norm_init(model_norm *n);
void norm_update_obs(model_norm *n, const float *x, int dx);
void norm_update_reward(model_norm *n, float r);
/* Normalised observation x~ = (x - mean) / std (std floored, 1 before any data). */
void norm_obs(const model_norm *n, float *out, const float *x, int dx);
void norm_obs_inverse(const model_norm *n, float *out, const float *xn, int dx);
float norm_reward(const model_norm *n, float r); /* r / std: scaled, not centred */
float norm_reward_inverse(const model_norm *n, float rn);
float norm_reward_scale(const model_norm *n); /* the std rewards are divided by */

/* Network shapes and the parameter layout. */
typedef struct model {
    model_config cfg;
    mlp_spec embed, prior, post, obs_head, rew_head, actor, value, cont_head;
    param_layout layout;
    size_t off_embed, off_gru, off_prior, off_post, off_obs, off_rew, off_actor, off_value;
    size_t off_cont;
    size_t n_params;
} model_t;

/* Builds the shapes and layout from a validated config. Returns 0 or -1. */
int model_init(model_t *m, const model_config *c);
/* Initialises a parameter block of m->n_params floats from the config's seed. */
void model_init_params(const model_t *m, float *params);

/* Scratch for the inference passes on up to max_rows rows at once. One per thread. */
typedef struct model_ws model_ws;
model_ws *model_ws_new(const model_t *m, int max_rows);
void model_ws_free(model_ws *ws);

/* Transition and prior for rows rows: h (rows, dh) from h_prev, z_prev (rows, dz), a (rows, da);
 * prior mean and std (rows, dz). h may not alias h_prev. */
void model_transition(const model_t *m, const float *params, model_ws *ws, float *h,
                      float *prior_mu, float *prior_std, const float *h_prev, const float *z_prev,
                      const float *a, int rows);
/* Posterior from h (rows, dh), normalised x (rows, dx) and r (rows): mean and std (rows, dz). */
void model_posterior(const model_t *m, const float *params, model_ws *ws, float *mu, float *std,
                     const float *h, const float *xn, const float *rn, int rows);
/* Decoded means: obs (rows, dx) and reward (rows), both normalised; either may be NULL. */
void model_decode(const model_t *m, const float *params, model_ws *ws, float *obs, float *rew,
                  const float *h, const float *z, int rows);
/* model_decode of both heads (obs and rew must both be given) that keeps the heads' caches in ws,
 * and then the decoder at (h, z + dz) for the same rows: only dz's part of the first layers is
 * computed again (the planner's antithetic pair shares h). */
void model_decode_keep(const model_t *m, const float *params, model_ws *ws, float *obs, float *rew,
                       const float *h, const float *z, int rows);
void model_decode_shifted(const model_t *m, const float *params, model_ws *ws, float *obs,
                          float *rew, const float *dz, int rows);
/* Action prior in u-space: mean and std (rows, da). */
void model_actor(const model_t *m, const float *params, model_ws *ws, float *mu, float *std,
                 const float *h, const float *z, int rows);
/* Learned value (rows), in normalised reward units; zeros when the value head is off. */
void model_value(const model_t *m, const float *params, model_ws *ws, float *v, const float *h,
                 const float *z, int rows);

/* Probability that the episode continues after each state (rows); ones when the head is off. */
void model_continue(const model_t *m, const float *params, model_ws *ws, float *p, const float *h,
                    const float *z, int rows);

/* One filtering step for sessions: from s_{t-1} = (h, z), the action a_{t-1} (NULL at an
 * episode's first step: zeros) and the raw observation x_t and reward r_t, computes s_t in place
 * (z = posterior mean). first != 0 resets the state first. */
void model_filter_step(const model_t *m, const float *params, const model_norm *norm, model_ws *ws,
                       float *h, float *z, const float *a_prev, const float *x, float r, int first);

#endif
