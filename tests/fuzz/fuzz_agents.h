/* fuzz_agents: the tiny agent configurations of the checkpoint fuzzer and its seeds. */
#ifndef ELBO_FUZZ_AGENTS_H
#define ELBO_FUZZ_AGENTS_H

#include "core/model.h"

#define FUZZ_AGENT_VARIANTS 4

/* Variant 0 is the fuzzer's own agent (3 observations, 1 action in [-2, 2], h_dim 4, z_dim 2,
 * hidden 4); 3 differs from it only in training settings (its images restore into it); 1 has
 * other heads and activation, 2 other dimensions (their images are refused by it). */
static inline void fuzz_agent_config(model_config *c, int variant)
{
    int dx = variant == 2 ? 2 : 3, da = variant == 2 ? 2 : 1;
    model_config_defaults(c, dx, da);
    for (int i = 0; i < da; i++) {
        c->act_low[i] = -2.0f;
        c->act_high[i] = 2.0f;
    }
    c->h_dim = 4;
    c->z_dim = 2;
    c->hidden = 4;
    c->seq_len = 4;
    c->batch = 2;
    c->replay_capacity = 64;
    c->overshoot_len = 2;
    c->info_samples = 2;
    if (variant == 1) {
        c->act = ACT_RELU;
        c->value_weight = 0.0f;
        c->cont_weight = 0.0f;
        c->head_layers = 1;
    } else if (variant == 2) {
        c->act = ACT_TANH;
        c->head_layers = 3;
    } else if (variant == 3) {
        c->lr = 3e-4f;
        c->batch = 3;
        c->seed = 42;
    }
}

/* Shapes small enough to build an agent for every input. */
static inline int fuzz_config_small(const model_config *c)
{
    return c->obs_dim <= 16 && c->act_dim <= 4 && c->h_dim <= 16 && c->z_dim <= 16 &&
           c->hidden <= 16;
}

#endif
