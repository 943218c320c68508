/* agent: one learning agent: its model, replay, normaliser, optimizer state, training step and
 * the parameter snapshots that requests read.
 *
 * DESIGN (threads). Three kinds of callers:
 *  - request threads append experience (agent_add_*; the replay's and the normaliser's short
 *    locks) and read snapshots (agent_snapshot_acquire/release; a short lock around a pointer
 *    copy and a reference count, never held while training);
 *  - one trainer per agent calls agent_train_step and agent_publish; it holds train_lock for the
 *    duration of a step so that checkpoint export/import (admin operations) see a consistent
 *    state;
 *  - admin calls (agent_checkpoint_*) take train_lock, so they wait at most one training step.
 * A snapshot is immutable once published: parameters, normaliser and model version are copied
 * into it, and it is freed when the last reader releases it.
 */
#ifndef ELBO_AGENT_H
#define ELBO_AGENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "adam.h"
#include "elbo.h"
#include "model.h"
#include "replay.h"
#include "rng.h"

typedef struct agent_snapshot {
    int refs;             /* guarded by the agent's snap_lock */
    long version;         /* training step of these parameters */
    const model_t *model; /* the agent's (immutable) model description */
    model_norm norm;
    float *params;
} agent_snapshot;

typedef struct agent_train_stats {
    elbo_terms terms;
    double grad_norm;
    double sample_ms, compute_ms; /* time to draw the batch, time for the objective and update */
    long step;
} agent_train_stats;

typedef struct agent {
    model_t model;
    replay_t *replay;

    pthread_mutex_t norm_lock;
    model_norm norm;

    pthread_mutex_t train_lock; /* held by a training step and by checkpoint import/export */
    float *params, *grads, *adam_m, *adam_v, *target;
    long step;
    adam_cfg adam;
    rng_t rng;
    replay_batch *batch;
    elbo_ws *ws;

    pthread_mutex_t stats_lock;
    agent_train_stats last; /* the latest step's figures */

    pthread_mutex_t snap_lock;
    agent_snapshot *snap;
} agent_t;

/* Error codes (negative) and their text. */
#define AGENT_ENOMEM    (-1)
#define AGENT_EINVAL    (-2)
#define AGENT_ENODATA   (-3) /* not enough experience to train */
#define AGENT_ENUMERIC  (-4) /* the objective was not finite: step skipped */
#define AGENT_ECORRUPT  (-5) /* checkpoint truncated or corrupted */
#define AGENT_EMISMATCH (-6) /* checkpoint of another configuration */
#define AGENT_EIO       (-7)
const char *agent_strerror(int code);

/* Creates an agent from a config (validated here: NULL with the reason in err). The initial
 * snapshot (version 0) is published. Free with agent_free. */
agent_t *agent_new(const model_config *c, char *err, size_t errlen);
void agent_free(agent_t *a);

/* Experience (see replay.h for the shapes); they also update the normaliser. Return 0 or a
 * negative replay code. */
int agent_add_episode(agent_t *a, uint64_t id, int T, const float *obs, const float *actions,
                      const float *rewards, const float *dist, int done);
int agent_add_step(agent_t *a, uint64_t id, int first, const float *x, float reward,
                   const float *action, const float *dist, int terminal);

/* One training step: samples a batch, evaluates the objective, applies Adam and moves the value
 * target. Returns 0, AGENT_ENODATA or AGENT_ENUMERIC; stats may be NULL. */
int agent_train_step(agent_t *a, agent_train_stats *stats);
/* Publishes the current parameters as the snapshot requests read. Returns 0 or AGENT_ENOMEM. */
int agent_publish(agent_t *a);

/* The current snapshot with a reference taken; never NULL after agent_new. Release it with
 * agent_snapshot_release (NULL is fine). */
agent_snapshot *agent_snapshot_acquire(agent_t *a);
void agent_snapshot_release(agent_t *a, agent_snapshot *s);

/* The latest training figures. */
agent_train_stats agent_last_stats(agent_t *a);
long agent_step(agent_t *a);

/* Checkpoints: a versioned binary image (magic, format version, configuration, normaliser,
 * parameters, value target, optimizer moments, step, random state, CRC-32).
 * agent_checkpoint_save serialises into a malloc'd buffer (*buf, *len; the caller frees *buf).
 * agent_checkpoint_restore checks a whole image first and changes nothing unless it is valid and
 * of the same configuration; on success it also publishes a snapshot.
 * agent_checkpoint_config reads only the configuration of a valid image (to create an agent
 * from a file). */
int agent_checkpoint_save(agent_t *a, unsigned char **buf, size_t *len);
int agent_checkpoint_restore(agent_t *a, const unsigned char *buf, size_t len, char *err,
                             size_t errlen);
int agent_checkpoint_config(const unsigned char *buf, size_t len, model_config *c, char *err,
                            size_t errlen);

/* Writes len bytes to path atomically: a temporary file, fsync, rename, fsync of the directory.
 * Returns 0 or AGENT_EIO (errno is kept). */
int agent_write_file_atomic(const char *path, const unsigned char *buf, size_t len);
/* Reads a whole file of at most max_len bytes into a malloc'd buffer. 0 or AGENT_EIO. */
int agent_read_file(const char *path, size_t max_len, unsigned char **buf, size_t *len);

#endif
