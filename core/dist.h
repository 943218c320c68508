/* dist: diagonal Gaussian and tanh-squashed Gaussian distributions with gradients.
 *
 * A Gaussian is given by its mean mu and standard deviation std, both arrays of n floats owned by
 * the caller; networks produce std through gauss_std_forward (softplus plus a floor), which keeps
 * it positive with a well-behaved gradient. Sums run in double. Every *_backward accumulates
 * g * (derivative) into whichever gradient pointers are not NULL.
 *
 * The tanh-squashed Gaussian maps u ~ N(mu, std) to the action box by a = mid + half * tanh(u),
 * mid = (high + low) / 2, half = (high - low) / 2. Two such distributions over the same box share
 * the bijection, so their KL equals the KL of the Gaussians in u: the planner's action posterior
 * and the action prior are compared that way, exactly.
 */
#ifndef ELBO_DIST_H
#define ELBO_DIST_H

#include <stddef.h>

#define LOG_2PI 1.8378770664093453

/* std = softplus(raw) + min_std; backward: draw += dstd * sigmoid(raw). */
void gauss_std_forward(float *std, const float *raw, float min_std, size_t n);
void gauss_std_backward(float *draw, const float *dstd, const float *raw, size_t n);

/* Reparameterised sample z = mu + std * eps; backward: dmu += dz, dstd += dz * eps. */
void gauss_sample(float *z, const float *mu, const float *std, const float *eps, size_t n);
void gauss_sample_backward(float *dmu, float *dstd, const float *dz, const float *eps, size_t n);

/* Sum over n of log N(x; mu, std). */
double gauss_logpdf(const float *x, const float *mu, const float *std, size_t n);
void gauss_logpdf_backward(float *dx, float *dmu, float *dstd, float g, const float *x,
                           const float *mu, const float *std, size_t n);

/* Sum over n of the entropy 0.5 * log(2 pi e std^2). */
double gauss_entropy(const float *std, size_t n);
void gauss_entropy_backward(float *dstd, float g, const float *std, size_t n);

/* Sum over n of KL(N(mq, sq) || N(mp, sp)), analytic. */
double gauss_kl(const float *mq, const float *sq, const float *mp, const float *sp, size_t n);
void gauss_kl_backward(float *dmq, float *dsq, float *dmp, float *dsp, float g, const float *mq,
                       const float *sq, const float *mp, const float *sp, size_t n);

/* a (rows, da) = mid + half * tanh(u) for the box [low, high] (da floats each). */
void squash_forward(float *a, const float *u, const float *low, const float *high, int rows,
                    int da);
/* u = atanh((a - mid) / half), with the ratio clipped to +-(1 - 1e-6) so that an action on the
 * box edge maps to a finite u. */
void squash_inverse(float *u, const float *a, const float *low, const float *high, int rows,
                    int da);
/* Sum of log |da/du| = log(half * (1 - tanh(u)^2)) over rows*da, computed stably; backward:
 * du += g * (-2 tanh(u)). */
double squash_log_jacobian(const float *u, const float *low, const float *high, int rows, int da);
void squash_log_jacobian_backward(float *du, float g, const float *u, size_t n);

/* log density of the squashed action a (da floats) under u ~ N(mu, std):
 * log N(u; mu, std) - log |da/du|, with u = squash_inverse(a). Backward gives the gradient with
 * respect to mu and std (the action itself is data). */
double tanh_gauss_logpdf(const float *a, const float *mu, const float *std, const float *low,
                         const float *high, int da);
void tanh_gauss_logpdf_backward(float *dmu, float *dstd, float g, const float *a, const float *mu,
                                const float *std, const float *low, const float *high, int da);

#endif
