/* layers: activations, layer norm, MLP and GRU cell (see layers.h for layouts). */
#include "layers.h"

#include <math.h>
#include <string.h>

#include "tensor.h"
#include "vmath.h"

/* The elementwise loops that run over every activation of a training step are compiled twice,
 * like vmath's (x86-64-v3 and the baseline), the loader picking the one the CPU supports. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ELBO_NO_CLONES)
#define LAYER_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LAYER_CLONES
#endif

static const char *const act_names[] = {"none", "tanh", "relu", "silu", "elu"};

const char *act_name(act_kind k)
{
    if ((int)k < 0 || (size_t)k >= sizeof act_names / sizeof act_names[0])
        return "?";
    return act_names[k];
}

int act_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++)
        if (strcmp(name, act_names[i]) == 0)
            return (int)i;
    return -1;
}

void act_forward(act_kind k, float *out, const float *in, size_t n)
{
    switch (k) {
    case ACT_NONE:
        if (out != in)
            memcpy(out, in, n * sizeof *out);
        break;
    case ACT_TANH:
        vm_tanh(out, in, n);
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            out[i] = in[i] > 0.0f ? in[i] : 0.0f;
        break;
    case ACT_SILU:
        vm_silu(out, in, n);
        break;
    case ACT_ELU:
        /* exp of min(x, 0) keeps the positive side from overflowing. It goes through a local
         * buffer, not `out`, so that in place (out == in) still sees the input. */
        for (size_t i = 0; i < n;) {
            float e[256];
            size_t m = n - i < 256 ? n - i : 256;
            for (size_t j = 0; j < m; j++)
                e[j] = in[i + j] < 0.0f ? in[i + j] : 0.0f;
            vm_exp(e, e, m);
            for (size_t j = 0; j < m; j++)
                out[i + j] = in[i + j] > 0.0f ? in[i + j] : e[j] - 1.0f;
            i += m;
        }
        break;
    }
}

/* d/dx x*s(x) = s + x*s*(1-s) = s*(1 + x - out). s is recovered from the forward's output as
 * out/x (a few ulp, like out itself): one division, where recomputing the sigmoid (exp and
 * division) made the backward 4-5x slower and about 5% of a training step. Near 0, where out/x
 * loses digits (0/0 at 0), s = 1/2 + x/4, whose error x^3/48 is below float rounding for
 * |x| < 1e-3. */
static inline float silu_grad(float dout, float x, float out)
{
    float s = fabsf(x) < 1e-3f ? 0.5f + 0.25f * x : out / x;
    return dout * s * (1.0f + x - out);
}

LAYER_CLONES static void silu_backward(float *din, const float *dout, const float *in,
                                       const float *out, size_t n, int accumulate)
{
    if (accumulate) {
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            din[i] += silu_grad(dout[i], in[i], out[i]);
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            din[i] = silu_grad(dout[i], in[i], out[i]);
    }
}

/* din = dout * act'(in), overwriting din: act_backward without the zeroing pass before it. */
static void act_grad(act_kind k, float *din, const float *dout, const float *in, const float *out,
                     size_t n)
{
    if (k == ACT_SILU) {
        silu_backward(din, dout, in, out, n, 0);
        return;
    }
    tensor_zero(din, n);
    act_backward(k, din, dout, in, out, n);
}

void act_backward(act_kind k, float *din, const float *dout, const float *in, const float *out,
                  size_t n)
{
    switch (k) {
    case ACT_NONE:
        for (size_t i = 0; i < n; i++)
            din[i] += dout[i];
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            din[i] += dout[i] * (1.0f - out[i] * out[i]);
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            din[i] += in[i] > 0.0f ? dout[i] : 0.0f;
        break;
    case ACT_SILU:
        silu_backward(din, dout, in, out, n, 1);
        break;
    case ACT_ELU:
        for (size_t i = 0; i < n; i++)
            din[i] += in[i] > 0.0f ? dout[i] : dout[i] * (out[i] + 1.0f);
        break;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int bt, int c)
{
    const float eps = 1e-5f;
    for (int i = 0; i < bt; i++) {
        const float *x = in + (size_t)i * c;
        float *y = out + (size_t)i * c;
        double m = 0.0, v = 0.0;
        for (int j = 0; j < c; j++)
            m += x[j];
        m /= c;
        for (int j = 0; j < c; j++)
            v += (x[j] - m) * (x[j] - m);
        v /= c;
        float rs = (float)(1.0 / sqrt(v + eps));
        float mf = (float)m;
        for (int j = 0; j < c; j++)
            y[j] = (x[j] - mf) * rs * gamma[j] + beta[j];
        mean[i] = mf;
        rstd[i] = rs;
    }
}

void layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *gamma, const float *mean, const float *rstd, int bt, int c)
{
    for (int i = 0; i < bt; i++) {
        const float *x = in + (size_t)i * c;
        const float *dy = dout + (size_t)i * c;
        float *dx = din + (size_t)i * c;
        float m = mean[i], rs = rstd[i];
        double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
        for (int j = 0; j < c; j++) {
            float xhat = (x[j] - m) * rs;
            float dnorm = dy[j] * gamma[j];
            dnorm_mean += dnorm;
            dnorm_norm_mean += (double)dnorm * xhat;
            dgamma[j] += dy[j] * xhat;
            dbeta[j] += dy[j];
        }
        float a = (float)(dnorm_mean / c), b = (float)(dnorm_norm_mean / c);
        for (int j = 0; j < c; j++) {
            float xhat = (x[j] - m) * rs;
            dx[j] += (dy[j] * gamma[j] - a - xhat * b) * rs;
        }
    }
}

/* ---- MLP ---------------------------------------------------------------------------------- */

int mlp_spec_make(mlp_spec *s, int n_layers, const int *dims, act_kind act, act_kind out_act,
                  int layer_norm)
{
    if (n_layers < 1 || n_layers > MLP_MAX_LAYERS)
        return -1;
    memset(s, 0, sizeof *s);
    s->n_layers = n_layers;
    for (int i = 0; i <= n_layers; i++) {
        if (dims[i] < 1 || dims[i] > (1 << 16))
            return -1;
        s->dims[i] = dims[i];
    }
    s->act = act;
    s->out_act = out_act;
    s->layer_norm = layer_norm ? 1 : 0;
    return 0;
}

static int mlp_is_hidden(const mlp_spec *s, int l)
{
    return l < s->n_layers - 1;
}

static int mlp_has_ln(const mlp_spec *s, int l)
{
    return s->layer_norm && mlp_is_hidden(s, l);
}

static size_t mlp_layer_params(const mlp_spec *s, int l)
{
    size_t in = (size_t)s->dims[l], out = (size_t)s->dims[l + 1];
    return out * in + out + (mlp_has_ln(s, l) ? 2 * out : 0);
}

size_t mlp_param_count(const mlp_spec *s)
{
    size_t n = 0;
    for (int l = 0; l < s->n_layers; l++)
        n += mlp_layer_params(s, l);
    return n;
}

/* Cache per hidden layer: lin (bt, d), [ln (bt, d), mean (bt), rstd (bt)], act output (bt, d).
 * The last layer keeps its pre-activation lin (bt, d) only; its output is `out`. */
static size_t mlp_layer_cache(const mlp_spec *s, int l, int bt)
{
    size_t d = (size_t)s->dims[l + 1] * (size_t)bt;
    if (!mlp_is_hidden(s, l))
        return d;
    return 2 * d + (mlp_has_ln(s, l) ? d + 2 * (size_t)bt : 0);
}

size_t mlp_cache_count(const mlp_spec *s, int bt)
{
    size_t n = 0;
    for (int l = 0; l < s->n_layers; l++)
        n += mlp_layer_cache(s, l, bt);
    return n;
}

static int mlp_max_dim(const mlp_spec *s)
{
    int m = 0;
    for (int l = 0; l <= s->n_layers; l++)
        m = s->dims[l] > m ? s->dims[l] : m;
    return m;
}

size_t mlp_scratch_count(const mlp_spec *s, int bt)
{
    return 3 * (size_t)mlp_max_dim(s) * (size_t)bt;
}

void init_uniform(float *x, size_t n, float bound, rng_t *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

void mlp_init(const mlp_spec *s, float *params, rng_t *r, float gain, float out_gain)
{
    float *p = params;
    for (int l = 0; l < s->n_layers; l++) {
        int in = s->dims[l], out = s->dims[l + 1];
        float bound = gain / sqrtf((float)in);
        if (!mlp_is_hidden(s, l))
            bound *= out_gain;
        init_uniform(p, (size_t)out * in, bound, r);
        p += (size_t)out * in;
        tensor_zero(p, (size_t)out);
        p += out;
        if (mlp_has_ln(s, l)) {
            for (int j = 0; j < out; j++)
                p[j] = 1.0f;
            p += out;
            tensor_zero(p, (size_t)out);
            p += out;
        }
    }
}

/* The forward pass; with first_done, layer 0's linear output is already at the start of cache. */
static void mlp_forward_impl(const mlp_spec *s, float *out, float *cache, const float *in,
                             const float *params, int bt, int first_done)
{
    const float *x = in;
    const float *p = params;
    float *c = cache;
    for (int l = 0; l < s->n_layers; l++) {
        int ic = s->dims[l], oc = s->dims[l + 1];
        size_t d = (size_t)oc * bt;
        const float *w = p, *b = p + (size_t)oc * ic;
        p += (size_t)oc * ic + oc;
        float *lin = c;
        c += d;
        if (l > 0 || !first_done)
            tensor_linear_forward(lin, x, w, b, bt, ic, oc);
        if (!mlp_is_hidden(s, l)) {
            act_forward(s->out_act, out, lin, d);
            break;
        }
        const float *pre = lin;
        if (mlp_has_ln(s, l)) {
            float *ln = c, *mean = c + d, *rstd = c + d + bt;
            c += d + 2 * (size_t)bt;
            layernorm_forward(ln, mean, rstd, lin, p, p + oc, bt, oc);
            p += 2 * (size_t)oc;
            pre = ln;
        }
        float *y = c;
        c += d;
        act_forward(s->act, y, pre, d);
        x = y;
    }
}

void mlp_forward(const mlp_spec *s, float *out, float *cache, const float *in, const float *params,
                 int bt)
{
    mlp_forward_impl(s, out, cache, in, params, bt, 0);
}

void mlp_forward_shifted(const mlp_spec *s, float *out, float *cache, const float *cache_from,
                         const float *delta, int col, int cols, const float *params, int bt)
{
    int ic = s->dims[0], oc = s->dims[1];
    size_t d = (size_t)oc * bt;
    if (cache != cache_from)
        memcpy(cache, cache_from, sizeof(float) * d);
    /* lin (bt, oc) += delta (bt, cols) w[:, col:col+cols]^T */
    tensor_gemm(cache, delta, params + col, bt, oc, cols, 0, 1, 1.0f, 1.0f, cols, ic, oc);
    mlp_forward_impl(s, out, cache, NULL, params, bt, 1);
}

void mlp_backward(const mlp_spec *s, float *din, float *dparams, const float *dout, const float *in,
                  const float *out, const float *params, const float *cache, float *scratch, int bt)
{
    /* Offsets of each layer's parameters and cache, walked forwards once. */
    size_t poff[MLP_MAX_LAYERS], coff[MLP_MAX_LAYERS];
    size_t pa = 0, ca = 0;
    for (int l = 0; l < s->n_layers; l++) {
        poff[l] = pa;
        coff[l] = ca;
        pa += mlp_layer_params(s, l);
        ca += mlp_layer_cache(s, l, bt);
    }
    size_t md = (size_t)mlp_max_dim(s) * bt;
    float *dy = scratch, *dpre = scratch + md, *dlin = scratch + 2 * md;

    /* dy holds the gradient of the current layer's output. */
    for (int l = s->n_layers - 1; l >= 0; l--) {
        int ic = s->dims[l], oc = s->dims[l + 1];
        size_t d = (size_t)oc * bt;
        const float *w = params + poff[l];
        float *dw = dparams + poff[l], *db = dw + (size_t)oc * ic;
        const float *lin = cache + coff[l];
        const float *x;
        if (l == 0) {
            x = in;
        } else {
            /* The previous hidden layer's activation output is the last block of its cache. */
            x = cache + coff[l - 1] + mlp_layer_cache(s, l - 1, bt) - (size_t)s->dims[l] * bt;
        }

        /* g: the gradient of the layer's linear output, written over (not accumulated into)
         * the scratch; a linear output layer's is dout itself. */
        const float *g = dlin;
        if (!mlp_is_hidden(s, l)) {
            if (s->out_act == ACT_NONE)
                g = dout;
            else
                act_grad(s->out_act, dlin, dout, lin, out, d);
        } else {
            const float *y = cache + coff[l] + mlp_layer_cache(s, l, bt) - d;
            if (mlp_has_ln(s, l)) {
                const float *ln = lin + d, *mean = lin + 2 * d, *rstd = mean + bt;
                const float *gamma = w + (size_t)oc * ic + oc;
                float *dgamma = db + oc, *dbeta = db + 2 * oc;
                act_grad(s->act, dpre, dy, ln, y, d);
                tensor_zero(dlin, d);
                layernorm_backward(dlin, dgamma, dbeta, dpre, lin, gamma, mean, rstd, bt, oc);
            } else {
                act_grad(s->act, dlin, dy, lin, y, d);
            }
        }
        tensor_linear_backward_weight(dw, db, g, x, bt, ic, oc);
        if (l > 0) /* dy = g w, overwriting: the previous layer's output gradient */
            tensor_gemm(dy, g, w, bt, ic, oc, 0, 0, 1.0f, 0.0f, 0, 0, 0);
        else if (din)
            tensor_linear_backward_input(din, g, w, bt, ic, oc);
    }
}

/* ---- GRU ---------------------------------------------------------------------------------- */

size_t gru_param_count(int ic, int hc)
{
    return 3 * (size_t)hc * ic + 3 * (size_t)hc * hc + 6 * (size_t)hc;
}

void gru_init(float *params, int ic, int hc, rng_t *r)
{
    float bound = 1.0f / sqrtf((float)hc);
    size_t nw = 3 * (size_t)hc * ic + 3 * (size_t)hc * hc;
    init_uniform(params, nw, bound, r);
    tensor_zero(params + nw, 6 * (size_t)hc);
}

LAYER_CLONES void gru_forward(float *h_out, float *cache, float *scratch, const float *x,
                              const float *h_prev, const float *params, int bt, int ic, int hc)
{
    const float *wx = params, *wh = wx + 3 * (size_t)hc * ic;
    const float *bx = wh + 3 * (size_t)hc * hc, *bh = bx + 3 * (size_t)hc;
    int g = 3 * hc;
    float *gx = scratch, *gh = scratch + (size_t)g * bt;
    tensor_linear_forward(gx, x, wx, bx, bt, ic, g);
    tensor_linear_forward(gh, h_prev, wh, bh, bt, hc, g);
    for (int i = 0; i < bt; i++) {
        float *gxi = gx + (size_t)i * g, *ghi = gh + (size_t)i * g;
        float *c = cache + (size_t)i * 4 * hc;
        float *r = c, *u = c + hc, *n = c + 2 * hc, *hn = c + 3 * hc;
        for (int j = 0; j < 2 * hc; j++)
            r[j] = gxi[j] + ghi[j]; /* r and u are adjacent in both layouts */
        vm_sigmoid(r, r, 2 * (size_t)hc);
        for (int j = 0; j < hc; j++) {
            hn[j] = ghi[2 * hc + j];
            n[j] = gxi[2 * hc + j] + r[j] * hn[j];
        }
        vm_tanh(n, n, (size_t)hc);
        const float *hp = h_prev + (size_t)i * hc;
        float *ho = h_out + (size_t)i * hc;
        for (int j = 0; j < hc; j++)
            ho[j] = n[j] + u[j] * (hp[j] - n[j]);
    }
}

LAYER_CLONES void gru_backward(float *dx, float *dh_prev, float *dparams, const float *dh,
                               const float *x, const float *h_prev, const float *params,
                               const float *cache, float *scratch, int bt, int ic, int hc)
{
    const float *wx = params, *wh = wx + 3 * (size_t)hc * ic;
    float *dwx = dparams, *dwh = dwx + 3 * (size_t)hc * ic;
    float *dbx = dwh + 3 * (size_t)hc * hc, *dbh = dbx + 3 * (size_t)hc;
    int g = 3 * hc;
    float *dgx = scratch, *dgh = scratch + (size_t)g * bt;
    for (int i = 0; i < bt; i++) {
        const float *c = cache + (size_t)i * 4 * hc;
        const float *r = c, *u = c + hc, *n = c + 2 * hc, *hn = c + 3 * hc;
        const float *hp = h_prev + (size_t)i * hc, *d = dh + (size_t)i * hc;
        float *gxi = dgx + (size_t)i * g, *ghi = dgh + (size_t)i * g;
        for (int j = 0; j < hc; j++) {
            float dn = d[j] * (1.0f - u[j]);
            float du = d[j] * (hp[j] - n[j]);
            float dan = dn * (1.0f - n[j] * n[j]);
            float dr = dan * hn[j];
            float dar = dr * r[j] * (1.0f - r[j]);
            float dau = du * u[j] * (1.0f - u[j]);
            gxi[j] = dar;
            gxi[hc + j] = dau;
            gxi[2 * hc + j] = dan;
            ghi[j] = dar;
            ghi[hc + j] = dau;
            ghi[2 * hc + j] = dan * r[j];
        }
        if (dh_prev) {
            float *dhp = dh_prev + (size_t)i * hc;
            for (int j = 0; j < hc; j++)
                dhp[j] += d[j] * u[j];
        }
    }
    tensor_linear_backward_weight(dwx, dbx, dgx, x, bt, ic, g);
    tensor_linear_backward_weight(dwh, dbh, dgh, h_prev, bt, hc, g);
    if (dx)
        tensor_linear_backward_input(dx, dgx, wx, bt, ic, g);
    if (dh_prev)
        tensor_linear_backward_input(dh_prev, dgh, wh, bt, hc, g);
}
