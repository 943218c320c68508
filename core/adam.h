/* adam: the Adam optimizer with global-norm gradient clipping, over one contiguous parameter
 * block (parameters, gradients and both moments are each one array of n floats). */
#ifndef ELBO_ADAM_H
#define ELBO_ADAM_H

#include <stddef.h>

typedef struct adam_cfg {
    float lr;           /* step size */
    float beta1, beta2; /* moment decay rates */
    float eps;          /* denominator floor */
    float clip_norm;    /* global gradient-norm clip; <= 0 disables clipping */
} adam_cfg;

/* The usual defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, clip 100. */
adam_cfg adam_defaults(void);

/* One Adam step number `step` (1-based, for bias correction). The gradients are scaled by
 * min(1, clip_norm / ||grads||) first. Returns the gradient norm before clipping; a non-finite
 * norm skips the update (parameters unchanged) and is returned as is. */
double adam_step(float *params, const float *grads, float *m, float *v, size_t n,
                 const adam_cfg *cfg, long step);

#endif
