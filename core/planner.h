/* planner: planning as inference over action sequences (DESIGN section 3), and the policy mode.
 *
 * The action posterior q(u_{0:H}) is a diagonal Gaussian over an H-step sequence in the
 * pre-squash space u (actions a = squash(u) into the box, see dist.h), so that its log-ratio to
 * the action prior p(u_t | s_t) is exact. Each of I iterations draws N sequences - a share of
 * them from the action prior itself as the roll-out policy, the rest from q - rolls the prior
 * dynamics forward for all N together (one matrix product per layer per step), scores
 *   J = sum_t gamma^t (r_t + beta_info * I_t) - beta_action * sum_t log q(u_t) / p(u_t | s_t)
 *       + gamma^H V(s_H)
 * and refits q by exponentiated weights (MPPI, temperature lambda: lambda = 1 is the paper's
 * likelihood exp(r) exactly) or by elites (CEM). q starts from the action prior's rollout and,
 * when given, the previous plan shifted by one step.
 *
 * I_t, the mutual-information bonus of the planning objective, is the information the
 * observation and reward at step t carry about the stochastic state z_t:
 *   I(x_t, r_t; z_t | h_t) ~= 1/2 sum_d log(1 + Var_z[g_d(h_t, z_t)] / sigma_d^2),
 * the Gaussian-channel value for the decoder means g with likelihood stds sigma, with the variance
 * over z ~ p(z_t | h_t) estimated from an antithetic pair of samples (z = mu +- std * eps).
 *
 * Ownership: a planner_ws is scratch for one thread, sized for one planner configuration. A
 * plan_result is allocated by plan_result_new and holds the outputs. Nothing here locks; the
 * caller passes an immutable parameter snapshot.
 */
#ifndef ELBO_PLANNER_H
#define ELBO_PLANNER_H

#include <stdint.h>

#include "model.h"
#include "rng.h"

typedef enum plan_method { PLAN_MPPI = 0, PLAN_CEM = 1 } plan_method;

typedef struct planner_config {
    plan_method method;
    int horizon;           /* H steps */
    int population;        /* N sequences per iteration */
    int iterations;        /* I refits (fewer when a deadline cuts in) */
    int elites;            /* CEM: sequences kept per refit */
    float policy_fraction; /* share of the N drawn from the action prior (roll-out policy) */
    float temperature;     /* MPPI lambda, in units of the normalised return */
    float beta_info;       /* weight of the mutual-information bonus */
    float beta_action;     /* weight of the log-ratio to the action prior */
    float discount;        /* gamma */
    float init_std;        /* std of q in u-space at the start of every plan (a warm start
                            * carries the previous mean over, not its std) */
    float min_std;         /* floor of q's std */
    float momentum;        /* share of the old mean kept at each refit */
    int use_value;         /* add gamma^H V(s_H) */
    int sample_states;     /* roll particles with prior samples of z (else the prior mean) */
    int warm_start;        /* start from the previous plan shifted by one step */
    int init_from_prior;   /* start from the action prior's rollout (else zero-mean) */
} planner_config;

/* The defaults agents get: MPPI, population 128, horizon 25 (1.25 s at 20 Hz: shorter horizons
 * were measured to cost swing-ups), 3 iterations (see README, Agent settings). */
void planner_config_defaults(planner_config *p);
/* 0, or -1 with the offending field named in err. */
int planner_config_validate(const planner_config *p, char *err, size_t errlen);

/* A previous plan for warm starts: u-space mean and std (H, da); valid = 0 when none. */
typedef struct plan_state {
    int valid, horizon, act_dim;
    float *u_mean, *u_std;
} plan_state;

plan_state *plan_state_new(int horizon, int act_dim);
void plan_state_free(plan_state *s);

typedef struct plan_result {
    int horizon, act_dim, obs_dim;
    float action[MODEL_MAX_ACT];  /* the action to take now, in the box */
    float u0_mean[MODEL_MAX_ACT]; /* q(u_0): what action_kl training compares the prior with */
    float u0_std[MODEL_MAX_ACT];
    float *mean, *std;     /* (H, da) the plan in the action box (delta-method std) */
    float *u_mean, *u_std; /* (H, da) the plan in u-space */
    float *pred_reward, *pred_reward_std; /* (H) raw units, over prior samples of the mean plan */
    float *pred_obs, *pred_obs_std;       /* (H, dx) raw units */
    double expected_return; /* sum_t gamma^t r_t of the mean plan (raw reward units) */
    double info_bonus;      /* sum_t gamma^t I_t of the mean plan (nats) */
    double action_logratio; /* sum_t log q / p of the final q against the prior (nats) */
    double terminal_value;  /* gamma^H V(s_H) (raw reward units), 0 when unused */
    double objective;       /* best weighted objective J seen (normalised units) */
    int iterations;         /* refits completed */
    double ms;              /* time used */
    int degraded;           /* the deadline cut the iterations short */
    int predict;            /* set by the caller (plan_result_new: 1): 0 skips the predictions
                               (pred_*, expected_return, info_bonus, action_logratio,
                               terminal_value stay 0), which an act that returns only the action
                               does not need: 32 particles over the horizon, ~11% of a plan */
} plan_result;

plan_result *plan_result_new(int horizon, int act_dim, int obs_dim);
void plan_result_free(plan_result *r);

/* The planner's view of a world model, so that the same search runs on the latent model and on
 * hand-built worlds (the tests' linear-quadratic and branching models). Rows are independent
 * particles; actions are normalised to [-1, 1] (a = tanh(u)); rewards are in the units the
 * objective uses. */
typedef struct plan_world {
    void *ctx;
    int act_dim;
    /* Puts `rows` particles at the start state. */
    void (*start)(void *ctx, int rows);
    /* The action prior p(u | s) at the current particles: mean and std (rows, act_dim). */
    void (*prior)(void *ctx, int rows, float *mu, float *std);
    /* Advances the particles by a (rows, act_dim); writes the reward (rows) and, when info is not
     * NULL, the information bonus I (rows). */
    void (*step)(void *ctx, int rows, const float *a, float *reward, float *info, rng_t *rng);
    /* The terminal value (rows), or NULL when the world has none. */
    void (*value)(void *ctx, int rows, float *v);
} plan_world;

/* Scratch of the search itself (the latent model's rollout buffers live in planner_ws). */
typedef struct plan_search plan_search;
plan_search *plan_search_new(const planner_config *p, int act_dim);
void plan_search_free(plan_search *s);

/* The search alone, on any world: fills q (u_mean, u_std of out), action, u0_*, iterations,
 * objective, degraded and ms of out; the prediction fields are left as they are. */
int planner_search(const planner_config *p, const plan_world *w, plan_search *s, plan_state *prev,
                   double deadline_ms, int explore, rng_t *rng, const float *act_low,
                   const float *act_high, plan_result *out);

typedef struct planner_ws planner_ws;
/* Scratch for plans of this configuration on this model; NULL on failure. */
planner_ws *planner_ws_new(const model_t *m, const planner_config *p);
void planner_ws_free(planner_ws *ws);
/* The model scratch inside ws (rows >= population), for filtering with the same workspace. */
model_ws *planner_ws_model(planner_ws *ws);

/* Plans from the filtered state (h, z) with parameters `params` and normaliser `norm`.
 * prev may be NULL; when given and valid it warm-starts q, and on return it holds this plan
 * (for the next call). deadline_ms <= 0 means no deadline. explore != 0 samples the returned
 * action from q(u_0) instead of taking its mean. Returns 0 or -1 (bad arguments). */
int planner_plan(const model_t *m, const planner_config *p, const float *params,
                 const model_norm *norm, planner_ws *ws, const float *h, const float *z,
                 plan_state *prev, double deadline_ms, int explore, rng_t *rng, plan_result *out);

/* Policy mode: the action prior alone. action (da) in the box, u_mean and u_std (da) of
 * p(u | s) (either may be NULL). explore != 0 samples instead of taking the mean. */
void planner_policy(const model_t *m, const float *params, planner_ws *ws, const float *h,
                    const float *z, int explore, rng_t *rng, float *action, float *u_mean,
                    float *u_std);

#endif
