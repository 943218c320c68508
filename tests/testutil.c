/* testutil: the finite-difference gradient check and fills. */
#include "testutil.h"

#include <math.h>

gradcheck_result gradcheck(loss_fn loss, void *ctx, float *x, const float *grad, size_t n, float h,
                           size_t max_checks, double floor)
{
    gradcheck_result res = {0};
    size_t stride = n <= max_checks ? 1 : n / max_checks;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        /* The step actually taken in float, not the nominal h. */
        double step = (double)(keep + h) - (double)(keep - h);
        double num = (lp - lm) / step;
        double ana = grad[i];
        double denom = fabs(ana) + fabs(num);
        if (denom < floor)
            denom = floor;
        double rel = fabs(ana - num) / denom;
        if (rel > res.max_rel_err || res.checked == 0) {
            if (rel >= res.max_rel_err) {
                res.max_rel_err = rel;
                res.worst_index = i;
                res.analytic = ana;
                res.numeric = num;
            }
        }
        res.checked++;
    }
    return res;
}

void fill_uniform(float *x, size_t n, float lo, float hi, rng_t *r)
{
    rng_fill_uniform(r, x, n, lo, hi);
}

void fill_normal(float *x, size_t n, float scale, rng_t *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * rng_normal(r);
}
