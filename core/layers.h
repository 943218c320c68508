/* layers: activations, layer norm, multi-layer perceptrons and the GRU cell, each with a forward
 * that stores what its backward needs and a backward that accumulates (+=) into its gradients.
 *
 * Ownership: every buffer is the caller's. Parameters of a layer live in one contiguous span of
 * the model's parameter block, laid out as documented per layer, so that a whole model's
 * parameters, gradients and Adam moments are each one allocation with named views. The linear map
 * itself is tensor_linear_forward / tensor_linear_backward_* (tensor.h).
 */
#ifndef ELBO_LAYERS_H
#define ELBO_LAYERS_H

#include <stddef.h>

#include "rng.h"

typedef enum act_kind { ACT_NONE = 0, ACT_TANH, ACT_RELU, ACT_SILU, ACT_ELU } act_kind;

/* Name of an activation ("none", "tanh", "relu", "silu", "elu"), and the reverse; the reverse
 * returns -1 for an unknown name. */
const char *act_name(act_kind k);
int act_from_name(const char *name);

/* out = act(in) over n floats (in place allowed). */
void act_forward(act_kind k, float *out, const float *in, size_t n);
/* din += dout * act'(in), using the forward's input `in` and output `out`. */
void act_backward(act_kind k, float *din, const float *dout, const float *in, const float *out,
                  size_t n);

/* Layer norm over rows of width c: out = (in - mean) * rstd * gamma + beta.
 * in, out (bt, c); gamma, beta (c); mean, rstd (bt) are stored for the backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int bt, int c);
/* din (bt, c) +=, dgamma (c) +=, dbeta (c) += from dout (bt, c). */
void layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                        const float *gamma, const float *mean, const float *rstd, int bt, int c);

/* A multi-layer perceptron: dims[0] -> dims[1] -> ... -> dims[n_layers]; hidden layers are
 * linear, optional layer norm, then `act`; the last layer is linear then `out_act`.
 * Parameters, per layer l in order: w (dims[l+1], dims[l]), b (dims[l+1]), and for hidden layers
 * with layer norm gamma (dims[l+1]), beta (dims[l+1]). */
#define MLP_MAX_LAYERS 6
typedef struct mlp_spec {
    int n_layers;
    int dims[MLP_MAX_LAYERS + 1];
    act_kind act;
    act_kind out_act;
    int layer_norm;
} mlp_spec;

/* Fills a spec; returns 0, or -1 when n_layers or a width is out of range. */
int mlp_spec_make(mlp_spec *s, int n_layers, const int *dims, act_kind act, act_kind out_act,
                  int layer_norm);
size_t mlp_param_count(const mlp_spec *s);
/* Floats of forward cache for a batch of bt rows, and of scratch for the backward. */
size_t mlp_cache_count(const mlp_spec *s, int bt);
size_t mlp_scratch_count(const mlp_spec *s, int bt);
/* Initialises weights uniformly in +-1/sqrt(fan_in) scaled by `gain` (biases 0, gamma 1). The last
 * layer's weights are further scaled by `out_gain` (small values start heads near zero). */
void mlp_init(const mlp_spec *s, float *params, rng_t *r, float gain, float out_gain);
/* out (bt, dims[n]) from in (bt, dims[0]); cache must hold mlp_cache_count floats. */
void mlp_forward(const mlp_spec *s, float *out, float *cache, const float *in, const float *params,
                 int bt);
/* The forward pass for an input that differs from one already run only in columns col..col+cols:
 * in' = in + delta in those columns (delta (bt, cols)). cache_from is the earlier pass's cache
 * (it may be cache itself); layer 0's product then costs cols instead of dims[0] columns. The
 * result equals mlp_forward(in') up to rounding. */
void mlp_forward_shifted(const mlp_spec *s, float *out, float *cache, const float *cache_from,
                         const float *delta, int col, int cols, const float *params, int bt);
/* Accumulates dparams and, when din is not NULL, din (bt, dims[0]) from dout (bt, dims[n]). `out`
 * is the forward's output; scratch must hold mlp_scratch_count floats. */
void mlp_backward(const mlp_spec *s, float *din, float *dparams, const float *dout, const float *in,
                  const float *out, const float *params, const float *cache, float *scratch,
                  int bt);

/* GRU cell, gates ordered (reset r, update u, candidate n):
 *   r = sigmoid(Wx_r x + bx_r + Wh_r h + bh_r),  u = sigmoid(... _u ...),
 *   n = tanh(Wx_n x + bx_n + r * (Wh_n h + bh_n)),  h' = (1 - u) * n + u * h.
 * Parameters in order: wx (3hc, ic), wh (3hc, hc), bx (3hc), bh (3hc).
 * x (bt, ic), h_prev (bt, hc), h_out (bt, hc); cache (bt, 4hc) keeps r, u, n and Wh_n h + bh_n;
 * scratch holds 6*bt*hc floats. */
size_t gru_param_count(int ic, int hc);
void gru_init(float *params, int ic, int hc, rng_t *r);
void gru_forward(float *h_out, float *cache, float *scratch, const float *x, const float *h_prev,
                 const float *params, int bt, int ic, int hc);
/* Accumulates dparams, dx (bt, ic) when not NULL and dh_prev (bt, hc) when not NULL, from
 * dh (bt, hc). */
void gru_backward(float *dx, float *dh_prev, float *dparams, const float *dh, const float *x,
                  const float *h_prev, const float *params, const float *cache, float *scratch,
                  int bt, int ic, int hc);

/* Fills n floats uniformly in [-bound, bound]. */
void init_uniform(float *x, size_t n, float bound, rng_t *r);

#endif
