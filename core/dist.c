/* dist: Gaussian and tanh-squashed Gaussian densities, KL and their gradients. */
#include "dist.h"

#include <math.h>

#include "vmath.h"

void gauss_std_forward(float *std, const float *raw, float min_std, size_t n)
{
    vm_softplus(std, raw, n);
    for (size_t i = 0; i < n; i++)
        std[i] += min_std;
}

void gauss_std_backward(float *draw, const float *dstd, const float *raw, size_t n)
{
    for (size_t i = 0; i < n;) {
        float s[256];
        size_t m = n - i < 256 ? n - i : 256;
        vm_sigmoid(s, raw + i, m);
        for (size_t j = 0; j < m; j++)
            draw[i + j] += dstd[i + j] * s[j];
        i += m;
    }
}

void gauss_sample(float *z, const float *mu, const float *std, const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        z[i] = mu[i] + std[i] * eps[i];
}

void gauss_sample_backward(float *dmu, float *dstd, const float *dz, const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dmu)
            dmu[i] += dz[i];
        if (dstd)
            dstd[i] += dz[i] * eps[i];
    }
}

double gauss_logpdf(const float *x, const float *mu, const float *std, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = ((double)x[i] - mu[i]) / std[i];
        s += -0.5 * d * d - log((double)std[i]) - 0.5 * LOG_2PI;
    }
    return s;
}

void gauss_logpdf_backward(float *dx, float *dmu, float *dstd, float g, const float *x,
                           const float *mu, const float *std, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float inv = 1.0f / std[i];
        float d = (x[i] - mu[i]) * inv;
        if (dx)
            dx[i] -= g * d * inv;
        if (dmu)
            dmu[i] += g * d * inv;
        if (dstd)
            dstd[i] += g * (d * d - 1.0f) * inv;
    }
}

double gauss_entropy(const float *std, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += 0.5 * (LOG_2PI + 1.0) + log((double)std[i]);
    return s;
}

void gauss_entropy_backward(float *dstd, float g, const float *std, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dstd[i] += g / std[i];
}

double gauss_kl(const float *mq, const float *sq, const float *mp, const float *sp, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double vq = (double)sq[i] * sq[i], vp = (double)sp[i] * sp[i];
        double dm = (double)mq[i] - mp[i];
        s += log((double)sp[i] / sq[i]) + (vq + dm * dm) / (2.0 * vp) - 0.5;
    }
    return s;
}

void gauss_kl_backward(float *dmq, float *dsq, float *dmp, float *dsp, float g, const float *mq,
                       const float *sq, const float *mp, const float *sp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float ivp = 1.0f / (sp[i] * sp[i]);
        float dm = mq[i] - mp[i];
        if (dmq)
            dmq[i] += g * dm * ivp;
        if (dmp)
            dmp[i] -= g * dm * ivp;
        if (dsq)
            dsq[i] += g * (sq[i] * ivp - 1.0f / sq[i]);
        if (dsp)
            dsp[i] += g * (1.0f / sp[i] - (sq[i] * sq[i] + dm * dm) * ivp / sp[i]);
    }
}

void squash_forward(float *a, const float *u, const float *low, const float *high, int rows, int da)
{
    size_t n = (size_t)rows * da;
    vm_tanh(a, u, n);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < da; j++) {
            float mid = 0.5f * (high[j] + low[j]), half = 0.5f * (high[j] - low[j]);
            a[(size_t)r * da + j] = mid + half * a[(size_t)r * da + j];
        }
}

void squash_inverse(float *u, const float *a, const float *low, const float *high, int rows, int da)
{
    const double lim = 1.0 - 1e-6;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < da; j++) {
            double mid = 0.5 * ((double)high[j] + low[j]), half = 0.5 * ((double)high[j] - low[j]);
            double y = (a[(size_t)r * da + j] - mid) / half;
            y = y > lim ? lim : (y < -lim ? -lim : y);
            u[(size_t)r * da + j] = (float)atanh(y);
        }
}

/* log(1 - tanh(u)^2) = 2 * (log 2 - |u| - log(1 + exp(-2|u|))), stable for large |u|. */
static double log_one_minus_tanh2(double u)
{
    double au = fabs(u);
    return 2.0 * (0.6931471805599453 - au - log1p(exp(-2.0 * au)));
}

double squash_log_jacobian(const float *u, const float *low, const float *high, int rows, int da)
{
    double s = 0.0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < da; j++) {
            double half = 0.5 * ((double)high[j] - low[j]);
            s += log(half) + log_one_minus_tanh2(u[(size_t)r * da + j]);
        }
    return s;
}

void squash_log_jacobian_backward(float *du, float g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        du[i] += g * -2.0f * tanhf(u[i]);
}

double tanh_gauss_logpdf(const float *a, const float *mu, const float *std, const float *low,
                         const float *high, int da)
{
    float u[64];
    double s = 0.0;
    /* Chunks of 64 keep the pre-image on the stack for any action dimension. */
    for (int j0 = 0; j0 < da; j0 += 64) {
        int m = da - j0 < 64 ? da - j0 : 64;
        squash_inverse(u, a + j0, low + j0, high + j0, 1, m);
        s += gauss_logpdf(u, mu + j0, std + j0, (size_t)m) -
             squash_log_jacobian(u, low + j0, high + j0, 1, m);
    }
    return s;
}

void tanh_gauss_logpdf_backward(float *dmu, float *dstd, float g, const float *a, const float *mu,
                                const float *std, const float *low, const float *high, int da)
{
    float u[64];
    for (int j0 = 0; j0 < da; j0 += 64) {
        int m = da - j0 < 64 ? da - j0 : 64;
        squash_inverse(u, a + j0, low + j0, high + j0, 1, m);
        gauss_logpdf_backward(NULL, dmu ? dmu + j0 : NULL, dstd ? dstd + j0 : NULL, g, u, mu + j0,
                              std + j0, (size_t)m);
    }
}
