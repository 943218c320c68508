/* model: configuration, layout, normaliser and the inference passes (see model.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "rng.h"
#include "tensor.h"
#include "vmath.h"

void model_config_defaults(model_config *c, int obs_dim, int act_dim)
{
    memset(c, 0, sizeof *c);
    c->obs_dim = obs_dim;
    c->act_dim = act_dim;
    for (int i = 0; i < MODEL_MAX_ACT; i++) {
        c->act_low[i] = -1.0f;
        c->act_high[i] = 1.0f;
    }
    c->h_dim = 64;
    c->z_dim = 16;
    c->hidden = 64;
    c->head_layers = 2;
    c->act = ACT_SILU;
    c->obs_std = 0.1f;
    c->reward_std = 0.1f;
    c->min_std = 0.05f;
    c->free_nats = 1.0f;
    c->beta_z = 1.0f;
    c->beta_a = 1.0f;
    c->overshoot = 1.0f;
    c->overshoot_len = 10;
    c->value_weight = 1.0f;
    c->cont_weight = 1.0f;
    c->discount = 0.99f;
    c->info_samples = 4;
    c->seq_len = 32;
    c->batch = 16;
    c->lr = 1e-3f;
    c->clip_norm = 100.0f;
    c->replay_capacity = 100000;
    c->seed = 1;
}

#define CHECK_RANGE(cond, field, ...)                      \
    do {                                                   \
        if (!(cond)) {                                     \
            snprintf(err, errlen, field ": " __VA_ARGS__); \
            return -1;                                     \
        }                                                  \
    } while (0)

int model_config_validate(const model_config *c, char *err, size_t errlen)
{
    CHECK_RANGE(c->obs_dim >= 1 && c->obs_dim <= MODEL_MAX_OBS, "observation_dim",
                "must be between 1 and %d", MODEL_MAX_OBS);
    CHECK_RANGE(c->act_dim >= 1 && c->act_dim <= MODEL_MAX_ACT, "action_dim",
                "must be between 1 and %d", MODEL_MAX_ACT);
    for (int i = 0; i < c->act_dim; i++) {
        CHECK_RANGE(isfinite(c->act_low[i]) && isfinite(c->act_high[i]), "action_low",
                    "bounds must be finite numbers");
        CHECK_RANGE(c->act_high[i] > c->act_low[i], "action_high",
                    "must be greater than action_low in every dimension (dimension %d)", i);
    }
    CHECK_RANGE(c->h_dim >= 1 && c->h_dim <= MODEL_MAX_STATE, "h_dim", "must be between 1 and %d",
                MODEL_MAX_STATE);
    CHECK_RANGE(c->z_dim >= 1 && c->z_dim <= MODEL_MAX_STATE, "z_dim", "must be between 1 and %d",
                MODEL_MAX_STATE);
    CHECK_RANGE(c->hidden >= 1 && c->hidden <= MODEL_MAX_HIDDEN, "hidden",
                "must be between 1 and %d", MODEL_MAX_HIDDEN);
    CHECK_RANGE(c->head_layers >= 1 && c->head_layers <= 4, "head_layers",
                "must be between 1 and 4");
    CHECK_RANGE(c->act >= ACT_TANH && c->act <= ACT_ELU, "activation",
                "must be tanh, relu, silu or elu");
    CHECK_RANGE(c->obs_std > 0 && c->obs_std <= 10, "obs_std", "must be in (0, 10]");
    CHECK_RANGE(c->reward_std > 0 && c->reward_std <= 10, "reward_std", "must be in (0, 10]");
    CHECK_RANGE(c->min_std > 0 && c->min_std <= 1, "min_std", "must be in (0, 1]");
    CHECK_RANGE(c->free_nats >= 0 && c->free_nats <= 100, "free_nats", "must be in [0, 100]");
    CHECK_RANGE(c->beta_z >= 0 && c->beta_z <= 100, "beta_z", "must be in [0, 100]");
    CHECK_RANGE(c->beta_a >= 0 && c->beta_a <= 100, "beta_a", "must be in [0, 100]");
    CHECK_RANGE(c->overshoot >= 0 && c->overshoot <= 100, "overshoot", "must be in [0, 100]");
    CHECK_RANGE(c->overshoot_len >= 1 && c->overshoot_len <= 256, "overshoot_len",
                "must be between 1 and 256");
    CHECK_RANGE(c->value_weight >= 0 && c->value_weight <= 100, "value_weight",
                "must be in [0, 100]");
    CHECK_RANGE(c->cont_weight >= 0 && c->cont_weight <= 100, "cont_weight", "must be in [0, 100]");
    CHECK_RANGE(c->discount > 0 && c->discount <= 1, "discount", "must be in (0, 1]");
    CHECK_RANGE(c->info_samples >= 1 && c->info_samples <= 64, "info_samples",
                "must be between 1 and 64");
    CHECK_RANGE(c->seq_len >= 2 && c->seq_len <= 512, "seq_len", "must be between 2 and 512");
    CHECK_RANGE(c->batch >= 1 && c->batch <= 1024, "batch", "must be between 1 and 1024");
    CHECK_RANGE(c->lr > 0 && c->lr <= 1, "lr", "must be in (0, 1]");
    CHECK_RANGE(c->clip_norm >= 0 && c->clip_norm <= 1e6, "clip_norm", "must be in [0, 1e6]");
    CHECK_RANGE(c->replay_capacity >= c->seq_len && c->replay_capacity <= 50000000,
                "replay_capacity", "must be between seq_len and 50000000");
    return 0;
}

/* ---- normaliser --------------------------------------------------------------------------- */

#define NORM_STD_FLOOR 1e-2

void norm_init(model_norm *n)
{
    memset(n, 0, sizeof *n);
}

void norm_update_obs(model_norm *n, const float *x, int dx)
{
    n->count += 1.0;
    for (int i = 0; i < dx; i++) {
        double d = x[i] - n->obs_mean[i];
        n->obs_mean[i] += d / n->count;
        n->obs_m2[i] += d * (x[i] - n->obs_mean[i]);
    }
}

void norm_update_reward(model_norm *n, float r)
{
    n->rew_count += 1.0;
    double d = r - n->rew_mean;
    n->rew_mean += d / n->rew_count;
    n->rew_m2 += d * (r - n->rew_mean);
}

static double norm_std(double m2, double count)
{
    if (count < 2.0)
        return 1.0;
    double s = sqrt(m2 / (count - 1.0));
    return s < NORM_STD_FLOOR ? NORM_STD_FLOOR : s;
}

void norm_obs(const model_norm *n, float *out, const float *x, int dx)
{
    for (int i = 0; i < dx; i++)
        out[i] = (float)((x[i] - n->obs_mean[i]) / norm_std(n->obs_m2[i], n->count));
}

void norm_obs_inverse(const model_norm *n, float *out, const float *xn, int dx)
{
    for (int i = 0; i < dx; i++)
        out[i] = (float)(xn[i] * norm_std(n->obs_m2[i], n->count) + n->obs_mean[i]);
}

/* Rewards are scaled, not centred: a reward of 0 stays 0, so that "no more reward" after an
 * episode's end means the same in both units (the value target of a terminal state is 0). */
float norm_reward(const model_norm *n, float r)
{
    return (float)(r / norm_std(n->rew_m2, n->rew_count));
}

float norm_reward_inverse(const model_norm *n, float rn)
{
    return (float)(rn * norm_std(n->rew_m2, n->rew_count));
}

float norm_reward_scale(const model_norm *n)
{
    return (float)norm_std(n->rew_m2, n->rew_count);
}

/* ---- shapes and layout -------------------------------------------------------------------- */

static int head_spec(mlp_spec *s, const model_config *c, int in, int out)
{
    int dims[MLP_MAX_LAYERS + 1];
    dims[0] = in;
    for (int i = 1; i <= c->head_layers; i++)
        dims[i] = c->hidden;
    dims[c->head_layers + 1] = out;
    return mlp_spec_make(s, c->head_layers + 1, dims, c->act, ACT_NONE, 0);
}

int model_init(model_t *m, const model_config *c)
{
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    int dh = c->h_dim, dz = c->z_dim, dx = c->obs_dim, da = c->act_dim, hid = c->hidden;
    int embed_dims[2] = {dz + da, hid};
    if (mlp_spec_make(&m->embed, 1, embed_dims, ACT_NONE, c->act, 0))
        return -1;
    int prior_dims[3] = {dh, hid, 2 * dz};
    if (mlp_spec_make(&m->prior, 2, prior_dims, c->act, ACT_NONE, 0))
        return -1;
    int post_dims[3] = {dh + dx + 1, hid, 2 * dz};
    if (mlp_spec_make(&m->post, 2, post_dims, c->act, ACT_NONE, 0))
        return -1;
    if (head_spec(&m->obs_head, c, dh + dz, dx) || head_spec(&m->rew_head, c, dh + dz, 1) ||
        head_spec(&m->actor, c, dh + dz, 2 * da) || head_spec(&m->value, c, dh + dz, 1) ||
        head_spec(&m->cont_head, c, dh + dz, 1))
        return -1;
    params_layout_init(&m->layout);
    m->off_embed = params_layout_add(&m->layout, "embed", mlp_param_count(&m->embed));
    m->off_gru = params_layout_add(&m->layout, "gru", gru_param_count(hid, dh));
    m->off_prior = params_layout_add(&m->layout, "prior", mlp_param_count(&m->prior));
    m->off_post = params_layout_add(&m->layout, "posterior", mlp_param_count(&m->post));
    m->off_obs = params_layout_add(&m->layout, "obs_head", mlp_param_count(&m->obs_head));
    m->off_rew = params_layout_add(&m->layout, "reward_head", mlp_param_count(&m->rew_head));
    m->off_actor = params_layout_add(&m->layout, "action_prior", mlp_param_count(&m->actor));
    m->off_value = params_layout_add(&m->layout, "value", mlp_param_count(&m->value));
    m->off_cont = params_layout_add(&m->layout, "continue_head", mlp_param_count(&m->cont_head));
    m->n_params = m->layout.total;
    return 0;
}

void model_init_params(const model_t *m, float *params)
{
    rng_t r;
    rng_seed(&r, m->cfg.seed, 0x9a7a);
    tensor_zero(params, m->n_params);
    mlp_init(&m->embed, params + m->off_embed, &r, 1.0f, 1.0f);
    gru_init(params + m->off_gru, m->cfg.hidden, m->cfg.h_dim, &r);
    mlp_init(&m->prior, params + m->off_prior, &r, 1.0f, 0.1f);
    mlp_init(&m->post, params + m->off_post, &r, 1.0f, 0.1f);
    mlp_init(&m->obs_head, params + m->off_obs, &r, 1.0f, 0.1f);
    mlp_init(&m->rew_head, params + m->off_rew, &r, 1.0f, 0.1f);
    mlp_init(&m->actor, params + m->off_actor, &r, 1.0f, 0.1f);
    mlp_init(&m->value, params + m->off_value, &r, 1.0f, 0.1f);
    mlp_init(&m->cont_head, params + m->off_cont, &r, 1.0f, 0.1f);
    /* The output bias (the block's last float) starts at "the episode goes on" (p = 0.98). */
    params[m->off_cont + mlp_param_count(&m->cont_head) - 1] = 4.0f;
}

/* ---- inference passes --------------------------------------------------------------------- */

struct model_ws {
    int max_rows;
    float *cache;               /* the largest MLP cache for max_rows */
    float *gru;                 /* GRU cache (rows, 4dh) + scratch (rows, 6dh) */
    float *in;                  /* concatenated inputs (rows, max input width) */
    float *out;                 /* raw head outputs (rows, max output width) */
    float *emb;                 /* (rows, hidden) */
    float *keep_obs, *keep_rew; /* model_decode_keep's decoder caches */
};

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

model_ws *model_ws_new(const model_t *m, int max_rows)
{
    model_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    const model_config *c = &m->cfg;
    size_t rows = (size_t)max_rows;
    size_t cache = mlp_cache_count(&m->embed, max_rows);
    cache = max_size(cache, mlp_cache_count(&m->prior, max_rows));
    cache = max_size(cache, mlp_cache_count(&m->post, max_rows));
    cache = max_size(cache, mlp_cache_count(&m->obs_head, max_rows));
    cache = max_size(cache, mlp_cache_count(&m->actor, max_rows));
    size_t in_w = (size_t)(c->h_dim + c->obs_dim + 1);
    in_w = max_size(in_w, (size_t)(c->h_dim + c->z_dim));
    in_w = max_size(in_w, (size_t)(c->z_dim + c->act_dim));
    size_t out_w = max_size((size_t)(2 * c->z_dim), (size_t)(2 * c->act_dim));
    out_w = max_size(out_w, (size_t)c->obs_dim + 1);
    ws->max_rows = max_rows;
    ws->cache = params_alloc(cache);
    ws->gru = params_alloc(rows * 10 * (size_t)c->h_dim);
    ws->in = params_alloc(rows * in_w);
    ws->out = params_alloc(rows * out_w);
    ws->emb = params_alloc(rows * (size_t)c->hidden);
    ws->keep_obs = params_alloc(mlp_cache_count(&m->obs_head, max_rows));
    ws->keep_rew = params_alloc(mlp_cache_count(&m->rew_head, max_rows));
    if (!ws->cache || !ws->gru || !ws->in || !ws->out || !ws->emb || !ws->keep_obs ||
        !ws->keep_rew) {
        model_ws_free(ws);
        return NULL;
    }
    return ws;
}

void model_ws_free(model_ws *ws)
{
    if (!ws)
        return;
    params_free(ws->cache);
    params_free(ws->gru);
    params_free(ws->in);
    params_free(ws->out);
    params_free(ws->emb);
    params_free(ws->keep_obs);
    params_free(ws->keep_rew);
    free(ws);
}

/* Splits raw (rows, 2d) into mean (rows, d) and std = softplus(raw) + min_std. */
static void split_gauss(float *mu, float *std, const float *raw, int rows, int d, float min_std)
{
    for (int i = 0; i < rows; i++) {
        memcpy(mu + (size_t)i * d, raw + (size_t)i * 2 * d, sizeof(float) * (size_t)d);
        memcpy(std + (size_t)i * d, raw + (size_t)i * 2 * d + d, sizeof(float) * (size_t)d);
    }
    gauss_std_forward(std, std, min_std, (size_t)rows * d);
}

void model_transition(const model_t *m, const float *params, model_ws *ws, float *h,
                      float *prior_mu, float *prior_std, const float *h_prev, const float *z_prev,
                      const float *a, int rows)
{
    const model_config *c = &m->cfg;
    int dz = c->z_dim, da = c->act_dim, dh = c->h_dim;
    tensor_copy_cols(ws->in, dz + da, z_prev, dz, rows, dz);
    tensor_copy_cols(ws->in + dz, dz + da, a, da, rows, da);
    mlp_forward(&m->embed, ws->emb, ws->cache, ws->in, params + m->off_embed, rows);
    float *gcache = ws->gru, *gscratch = ws->gru + (size_t)rows * 4 * dh;
    gru_forward(h, gcache, gscratch, ws->emb, h_prev, params + m->off_gru, rows, c->hidden, dh);
    if (prior_mu) {
        mlp_forward(&m->prior, ws->out, ws->cache, h, params + m->off_prior, rows);
        split_gauss(prior_mu, prior_std, ws->out, rows, dz, c->min_std);
    }
}

void model_posterior(const model_t *m, const float *params, model_ws *ws, float *mu, float *std,
                     const float *h, const float *xn, const float *rn, int rows)
{
    const model_config *c = &m->cfg;
    int dh = c->h_dim, dx = c->obs_dim, w = dh + dx + 1;
    tensor_copy_cols(ws->in, w, h, dh, rows, dh);
    tensor_copy_cols(ws->in + dh, w, xn, dx, rows, dx);
    tensor_copy_cols(ws->in + dh + dx, w, rn, 1, rows, 1);
    mlp_forward(&m->post, ws->out, ws->cache, ws->in, params + m->off_post, rows);
    split_gauss(mu, std, ws->out, rows, c->z_dim, c->min_std);
}

static void concat_hz(const model_t *m, model_ws *ws, const float *h, const float *z, int rows)
{
    int dh = m->cfg.h_dim, dz = m->cfg.z_dim;
    tensor_copy_cols(ws->in, dh + dz, h, dh, rows, dh);
    tensor_copy_cols(ws->in + dh, dh + dz, z, dz, rows, dz);
}

void model_decode(const model_t *m, const float *params, model_ws *ws, float *obs, float *rew,
                  const float *h, const float *z, int rows)
{
    concat_hz(m, ws, h, z, rows);
    if (obs)
        mlp_forward(&m->obs_head, obs, ws->cache, ws->in, params + m->off_obs, rows);
    if (rew)
        mlp_forward(&m->rew_head, rew, ws->cache, ws->in, params + m->off_rew, rows);
}

void model_decode_keep(const model_t *m, const float *params, model_ws *ws, float *obs, float *rew,
                       const float *h, const float *z, int rows)
{
    concat_hz(m, ws, h, z, rows);
    mlp_forward(&m->obs_head, obs, ws->keep_obs, ws->in, params + m->off_obs, rows);
    mlp_forward(&m->rew_head, rew, ws->keep_rew, ws->in, params + m->off_rew, rows);
}

void model_decode_shifted(const model_t *m, const float *params, model_ws *ws, float *obs,
                          float *rew, const float *dz, int rows)
{
    int dh = m->cfg.h_dim, nz = m->cfg.z_dim;
    mlp_forward_shifted(&m->obs_head, obs, ws->cache, ws->keep_obs, dz, dh, nz, params + m->off_obs,
                        rows);
    mlp_forward_shifted(&m->rew_head, rew, ws->cache, ws->keep_rew, dz, dh, nz, params + m->off_rew,
                        rows);
}

void model_actor(const model_t *m, const float *params, model_ws *ws, float *mu, float *std,
                 const float *h, const float *z, int rows)
{
    concat_hz(m, ws, h, z, rows);
    mlp_forward(&m->actor, ws->out, ws->cache, ws->in, params + m->off_actor, rows);
    split_gauss(mu, std, ws->out, rows, m->cfg.act_dim, m->cfg.min_std);
}

void model_value(const model_t *m, const float *params, model_ws *ws, float *v, const float *h,
                 const float *z, int rows)
{
    if (m->cfg.value_weight <= 0.0f) {
        tensor_zero(v, (size_t)rows);
        return;
    }
    concat_hz(m, ws, h, z, rows);
    mlp_forward(&m->value, v, ws->cache, ws->in, params + m->off_value, rows);
}

void model_continue(const model_t *m, const float *params, model_ws *ws, float *p, const float *h,
                    const float *z, int rows)
{
    if (m->cfg.cont_weight <= 0.0f) {
        for (int i = 0; i < rows; i++)
            p[i] = 1.0f;
        return;
    }
    concat_hz(m, ws, h, z, rows);
    mlp_forward(&m->cont_head, p, ws->cache, ws->in, params + m->off_cont, rows);
    vm_sigmoid(p, p, (size_t)rows);
}

void model_filter_step(const model_t *m, const float *params, const model_norm *norm, model_ws *ws,
                       float *h, float *z, const float *a_prev, const float *x, float r, int first)
{
    const model_config *c = &m->cfg;
    float h_new[MODEL_MAX_STATE], mu[MODEL_MAX_STATE], sd[MODEL_MAX_STATE];
    float a0[MODEL_MAX_ACT] = {0};
    float xn[MODEL_MAX_OBS];
    if (first) {
        tensor_zero(h, (size_t)c->h_dim);
        tensor_zero(z, (size_t)c->z_dim);
        a_prev = NULL;
        r = 0.0f; /* no reward arrives with an episode's first observation */
    }
    if (!a_prev) {
        a_prev = a0;
    }
    /* The model takes actions in the box scaled to [-1, 1]. */
    float as[MODEL_MAX_ACT];
    for (int i = 0; i < c->act_dim; i++) {
        float mid = 0.5f * (c->act_high[i] + c->act_low[i]);
        float half = 0.5f * (c->act_high[i] - c->act_low[i]);
        as[i] = a_prev == a0 ? 0.0f : (a_prev[i] - mid) / half;
    }
    model_transition(m, params, ws, h_new, NULL, NULL, h, z, as, 1);
    norm_obs(norm, xn, x, c->obs_dim);
    float rn = norm_reward(norm, r);
    model_posterior(m, params, ws, mu, sd, h_new, xn, &rn, 1);
    memcpy(h, h_new, sizeof(float) * (size_t)c->h_dim);
    memcpy(z, mu, sizeof(float) * (size_t)c->z_dim);
}
