/* adam: Adam with global-norm clipping. */
#include "adam.h"

#include <math.h>

#include "tensor.h"

adam_cfg adam_defaults(void)
{
    adam_cfg c = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .clip_norm = 100.0f};
    return c;
}

double adam_step(float *params, const float *grads, float *m, float *v, size_t n,
                 const adam_cfg *cfg, long step)
{
    double norm = sqrt(tensor_sumsq(grads, n));
    if (!isfinite(norm))
        return norm;
    /* The scale stays in double: as a float, clip_norm / norm underflows (to zero, with FTZ) for
     * norms above about 1e38 * clip_norm, which would turn the clipped step into no step. */
    double scale = 1.0;
    if (cfg->clip_norm > 0.0f && norm > cfg->clip_norm)
        scale = cfg->clip_norm / norm;
    float b1 = cfg->beta1, b2 = cfg->beta2;
    float c1 = (float)(1.0 - pow(b1, (double)step));
    float c2 = (float)(1.0 - pow(b2, (double)step));
    float lr_t = cfg->lr * sqrtf(c2) / c1;
    float eps_t = cfg->eps * sqrtf(c2);
    for (size_t i = 0; i < n; i++) {
        float g = (float)(grads[i] * scale);
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps_t);
    }
    return norm;
}
