/* replay: the agent's experience, as episodes of steps, bounded in total steps, with sampling of
 * training sequences that never cross an episode boundary.
 *
 * A step k of an episode holds the observation x_k, the reward that arrived with it (the reward
 * of action k-1; none at k = 0), the action taken after it (none at the last step) and, when the
 * planner chose that action, the planner's distribution (mean and std in the pre-squash space u,
 * see dist.h). Gym-style episodes (T+1 observations, T actions, T rewards) and single steps from
 * sessions both land in this form.
 *
 * DESIGN (threads): one mutex guards everything. Request threads append (short copies); the
 * trainer samples, copying B sequences out under the lock, then trains without it. Nothing is
 * held across a training step or I/O. Eviction drops the oldest steps (whole oldest episodes,
 * or the head of the oldest when it alone exceeds the capacity).
 */
#ifndef ELBO_REPLAY_H
#define ELBO_REPLAY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct replay_episode replay_episode;

typedef struct replay {
    pthread_mutex_t lock;
    int obs_dim, act_dim;
    float act_low[32], act_high[32];
    long capacity;          /* max steps held */
    long steps;             /* steps held */
    long transitions;       /* steps that carry an action (what users call transitions) */
    uint64_t evicted_steps; /* dropped by the capacity so far */
    uint64_t appended_steps;
    replay_episode **eps; /* oldest first */
    int n_eps, cap_eps;
} replay_t;

/* A batch of B sequences of L steps, time-major: the row of (t, b) is t * B + b. Actions are
 * scaled to [-1, 1] (the model's action space); observations and rewards are raw. */
typedef struct replay_batch {
    int B, L, dx, da;
    float *obs;     /* (L, B, dx) x_t */
    float *rew;     /* (L, B) reward that arrived with x_t */
    float *act_in;  /* (L, B, da) a_{t-1}, zero at an episode's first step */
    float *act_out; /* (L, B, da) a_t, the action taken after x_t */
    float *dist;    /* (L, B, 2 da) planner mean and std of a_t in u-space */
    uint8_t *mask;  /* (L, B) the step exists */
    uint8_t *first; /* (L, B) the step starts its episode: the state resets */
    uint8_t *has_rew, *has_act, *has_dist;
    uint8_t *terminal; /* (L, B) the episode ended here by the environment (done) */
} replay_batch;

/* Creates an empty replay; NULL on allocation failure or bad dimensions. Free with replay_free. */
replay_t *replay_new(int obs_dim, int act_dim, const float *act_low, const float *act_high,
                     long capacity);
void replay_free(replay_t *r);

/* Error codes of this module (negative), and their text. */
#define REPLAY_ENOMEM (-1)
#define REPLAY_EINVAL (-2)
#define REPLAY_ENOEP  (-3)
const char *replay_strerror(int code);

/* Non-finite numbers (and planner stds <= 0) are refused with REPLAY_EINVAL: they would poison
 * the normaliser and every later training step.
 *
 * Appends a whole Gym-style episode: obs (T+1, dx), actions (T, da) raw, rewards (T), done, and
 * optionally the planner distribution of each action, dist (T, 2 da) or NULL. `id` names the
 * episode (any value unique among open episodes). Returns 0 or a negative code. */
int replay_add_episode(replay_t *r, uint64_t id, int T, const float *obs, const float *actions,
                       const float *rewards, const float *dist, int done);

/* Session form: appends one step to the open episode `id` (creating it when first != 0): the
 * observation x, the reward that came with it (ignored when first), and the action taken after
 * it with its planner distribution (a NULL action leaves the step without one: use it for the
 * last step of an episode). terminal != 0 closes the episode (done). Returns 0 or a code. */
int replay_add_step(replay_t *r, uint64_t id, int first, const float *x, float reward,
                    const float *action, const float *dist, int terminal);
/* Closes an open episode (the session ended without done). */
void replay_close_episode(replay_t *r, uint64_t id);

/* Batch buffers for B sequences of L steps; NULL on failure. */
replay_batch *replay_batch_new(int B, int L, int dx, int da);
void replay_batch_free(replay_batch *b);

/* Samples b->B sequences of up to b->L steps, uniformly over steps (except that a quarter of
 * the sequences drawn from an episode that ended with done finish at its end), copying them into b
 * (padding short episodes with mask 0). Returns 0, or REPLAY_EINVAL when the replay holds fewer
 * than 2 steps in any episode, or when the batch's dimensions differ from the replay's. */
int replay_sample(replay_t *r, replay_batch *b, rng_t *rng);

/* Counts, read under the lock. */
long replay_steps(replay_t *r);
long replay_transitions(replay_t *r);

#endif
