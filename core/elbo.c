/* elbo: forward and backward passes of the training objective (see elbo.h).
 *
 * Layout: every per-step array is time-major, row = t * B + b, so one step's rows are contiguous
 * and the parts that do not feed the recurrence (prior, decoder heads, action prior, value) run
 * as single large matrix products over all L * B rows. Only the embedding, the GRU and the
 * posterior run step by step.
 */
#include "elbo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "tensor.h"

#define VALUE_LAMBDA 0.95f
#define INFO_SEQS    4

static const float unit_low[MODEL_MAX_ACT] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
static const float unit_high[MODEL_MAX_ACT] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

struct elbo_ws {
    int B, L, R;         /* R = L * B rows of the main pass */
    int n_starts, D, Ro; /* overshooting: start points, steps, rows per step (n_starts * B) */
    int Ri, K;           /* info gain: rows (up to INFO_SEQS sequences) and prior samples */
    int z_dim;
    float *block;
    size_t block_floats;

    /* noise */
    float *eps_q;    /* (R, dz) */
    float *eps_os;   /* (D, Ro, dz) */
    float *eps_info; /* (K, Ri, dz) */

    /* main pass */
    float *xn, *rn;                                        /* (R, dx), (R) */
    float *emb_in, *emb_cache, *emb;                       /* (R, dz+da), cache(R), (R, H) */
    float *h_prev, *gru_cache, *h;                         /* (R, dh), (R, 4dh), (R, dh) */
    float *gru_scratch;                                    /* (max(B, Ro), 6dh) */
    float *post_in, *post_cache, *post_raw;                /* (R, dh+dx+1), cache(R), (R, 2dz) */
    float *mu_q, *std_q, *z;                               /* (R, dz) */
    float *prior_cache, *prior_raw, *mu_p, *std_p;         /* cache(R), (R, 2dz), (R, dz) x2 */
    float *kl;                                             /* (R) per-row state KL */
    float *hz, *obs_cache, *obs_out, *rew_cache, *rew_out; /* heads over R rows */
    float *cont_cache, *cont_out, *dcont;                  /* episode-end head over R rows */
    float *actor_cache, *actor_raw, *a_mu, *a_std;         /* (R, 2da), (R, da) x2 */
    float *value_cache, *value_tcache;                     /* online and target head caches */
    float *value_out, *value_tgt, *value_g;                /* (R) */
    uint8_t *value_has;                                    /* (R) */

    /* overshooting */
    float *os_in, *os_emb_cache, *os_emb;       /* per step: (Ro, dz+da), cache(Ro), (Ro, H) */
    float *os_gru_cache, *os_h, *os_h0, *os_z0; /* (D, Ro, 4dh), (D, Ro, dh), (Ro, dh), (Ro, dz) */
    float *os_prior_cache, *os_prior_raw, *os_mu, *os_std, *os_z; /* per step */
    float *os_hz, *os_obs_cache, *os_obs, *os_rew_cache, *os_rew; /* heads over D * Ro rows */
    float *os_cont_cache, *os_cont, *os_dcont;
    int *os_row; /* (D, Ro) main-pass row of the target, -1 when not valid */
    /* Rollout rows that can still matter: a rollout that left its sequence (or its episode)
     * stays out, so at step j only rows [0, os_n[j]) hold a live one (os_n never grows with j)
     * and the rest are not computed. The decoder heads see the live rows packed, step j's at
     * packed row os_off[j]; N = os_off[D] rows in all. */
    int *os_n, *os_off;

    /* info gain */
    float *info_hz, *info_obs, *info_rew, *info_cache, *info_z; /* (K * Ri, ...) */

    /* backward */
    float *dh, *dz, *dhz;                              /* (R, dh), (R, dz), (R, dh+dz) */
    float *dobs, *drew;                                /* (R, dx), (R) */
    float *dprior_raw, *dmu_p, *dstd_p;                /* (R, 2dz), (R, dz) x2 */
    float *dmu_q, *dstd_q, *dpost_raw;                 /* (R, dz) x2, (R, 2dz) */
    float *dpost_in, *demb, *demb_in, *dh_prev;        /* per step (max rows) */
    float *mlp_scratch;                                /* largest MLP backward scratch */
    float *dactor_raw, *dvalue;                        /* (R, 2da), (R) */
    float *os_dh, *os_dz, *os_dhz, *os_dobs, *os_drew; /* (D, Ro, ...) */
    float *os_dprior_raw, *os_dmu, *os_dstd;           /* per step (Ro, ...) */
};

typedef struct carver {
    float *base;
    size_t used;
} carver;

static float *carve(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15;
    return p;
}

static size_t maxz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static void ws_layout(elbo_ws *w, const model_t *m, carver *c)
{
    const model_config *k = &m->cfg;
    size_t R = (size_t)w->R, B = (size_t)w->B, Ro = (size_t)w->Ro, D = (size_t)w->D;
    size_t dx = (size_t)k->obs_dim, da = (size_t)k->act_dim, dh = (size_t)k->h_dim;
    size_t dz = (size_t)k->z_dim, H = (size_t)k->hidden, Ri = (size_t)w->Ri, K = (size_t)w->K;
    size_t rmax = maxz(B, Ro);
    w->eps_q = carve(c, R * dz);
    w->eps_os = carve(c, D * Ro * dz);
    w->eps_info = carve(c, K * Ri * dz);
    w->xn = carve(c, R * dx);
    w->rn = carve(c, R);
    w->emb_in = carve(c, R * (dz + da));
    w->emb_cache = carve(c, mlp_cache_count(&m->embed, w->R));
    w->emb = carve(c, R * H);
    w->h_prev = carve(c, R * dh);
    w->gru_cache = carve(c, R * 4 * dh);
    w->h = carve(c, R * dh);
    w->gru_scratch = carve(c, rmax * 6 * dh);
    w->post_in = carve(c, R * (dh + dx + 1));
    w->post_cache = carve(c, mlp_cache_count(&m->post, w->R));
    w->post_raw = carve(c, R * 2 * dz);
    w->mu_q = carve(c, R * dz);
    w->std_q = carve(c, R * dz);
    w->z = carve(c, R * dz);
    w->prior_cache = carve(c, mlp_cache_count(&m->prior, w->R));
    w->prior_raw = carve(c, R * 2 * dz);
    w->mu_p = carve(c, R * dz);
    w->std_p = carve(c, R * dz);
    w->kl = carve(c, R);
    w->hz = carve(c, R * (dh + dz));
    w->obs_cache = carve(c, mlp_cache_count(&m->obs_head, w->R));
    w->obs_out = carve(c, R * dx);
    w->rew_cache = carve(c, mlp_cache_count(&m->rew_head, w->R));
    w->rew_out = carve(c, R);
    w->cont_cache = carve(c, mlp_cache_count(&m->cont_head, w->R));
    w->cont_out = carve(c, R);
    w->dcont = carve(c, R);
    w->actor_cache = carve(c, mlp_cache_count(&m->actor, w->R));
    w->actor_raw = carve(c, R * 2 * da);
    w->a_mu = carve(c, R * da);
    w->a_std = carve(c, R * da);
    w->value_cache = carve(c, mlp_cache_count(&m->value, w->R));
    w->value_tcache = carve(c, mlp_cache_count(&m->value, w->R));
    w->value_out = carve(c, R);
    w->value_tgt = carve(c, R);
    w->value_g = carve(c, R);

    w->os_in = carve(c, D * Ro * (dz + da));
    w->os_emb_cache = carve(c, D * mlp_cache_count(&m->embed, w->Ro));
    w->os_emb = carve(c, D * Ro * H);
    w->os_gru_cache = carve(c, D * Ro * 4 * dh);
    w->os_h = carve(c, D * Ro * dh);
    w->os_h0 = carve(c, Ro * dh);
    w->os_z0 = carve(c, Ro * dz);
    w->os_prior_cache = carve(c, D * mlp_cache_count(&m->prior, w->Ro));
    w->os_prior_raw = carve(c, D * Ro * 2 * dz);
    w->os_mu = carve(c, D * Ro * dz);
    w->os_std = carve(c, D * Ro * dz);
    w->os_z = carve(c, D * Ro * dz);
    w->os_hz = carve(c, D * Ro * (dh + dz));
    w->os_obs_cache = carve(c, mlp_cache_count(&m->obs_head, w->D * w->Ro));
    w->os_obs = carve(c, D * Ro * dx);
    w->os_rew_cache = carve(c, mlp_cache_count(&m->rew_head, w->D * w->Ro));
    w->os_rew = carve(c, D * Ro);
    w->os_cont_cache = carve(c, mlp_cache_count(&m->cont_head, w->D * w->Ro));
    w->os_cont = carve(c, D * Ro);
    w->os_dcont = carve(c, D * Ro);

    size_t info_rows = K * Ri;
    w->info_hz = carve(c, info_rows * (dh + dz));
    w->info_obs = carve(c, info_rows * dx);
    w->info_rew = carve(c, info_rows);
    w->info_z = carve(c, info_rows * dz);
    size_t icache = maxz(mlp_cache_count(&m->obs_head, (int)info_rows),
                         mlp_cache_count(&m->rew_head, (int)info_rows));
    w->info_cache = carve(c, icache);

    w->dh = carve(c, R * dh);
    w->dz = carve(c, R * dz);
    w->dhz = carve(c, R * (dh + dz));
    w->dobs = carve(c, R * dx);
    w->drew = carve(c, R);
    w->dprior_raw = carve(c, R * 2 * dz);
    w->dmu_p = carve(c, R * dz);
    w->dstd_p = carve(c, R * dz);
    w->dmu_q = carve(c, R * dz);
    w->dstd_q = carve(c, R * dz);
    w->dpost_raw = carve(c, R * 2 * dz);
    w->dpost_in = carve(c, rmax * (dh + dx + 1));
    w->demb = carve(c, rmax * H);
    w->demb_in = carve(c, rmax * (dz + da));
    w->dh_prev = carve(c, rmax * dh);
    size_t scr = mlp_scratch_count(&m->embed, (int)rmax);
    scr = maxz(scr, mlp_scratch_count(&m->post, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->prior, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->obs_head, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->rew_head, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->actor, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->value, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->obs_head, w->D * w->Ro));
    scr = maxz(scr, mlp_scratch_count(&m->rew_head, w->D * w->Ro));
    scr = maxz(scr, mlp_scratch_count(&m->cont_head, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->cont_head, w->D * w->Ro));
    w->mlp_scratch = carve(c, scr);
    w->dactor_raw = carve(c, R * 2 * da);
    w->dvalue = carve(c, R);
    w->os_dh = carve(c, D * Ro * dh);
    w->os_dz = carve(c, D * Ro * dz);
    w->os_dhz = carve(c, D * Ro * (dh + dz));
    w->os_dobs = carve(c, D * Ro * dx);
    w->os_drew = carve(c, D * Ro);
    w->os_dprior_raw = carve(c, Ro * 2 * dz);
    w->os_dmu = carve(c, Ro * dz);
    w->os_dstd = carve(c, Ro * dz);
}

elbo_ws *elbo_ws_new(const model_t *m, int B, int L)
{
    if (B < 1 || L < 2)
        return NULL;
    elbo_ws *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    const model_config *k = &m->cfg;
    w->B = B;
    w->L = L;
    w->R = B * L;
    w->D = k->overshoot_len < L - 1 ? k->overshoot_len : L - 1;
    /* Start points every D/2 steps (at least every step for D = 1), from t0 = 0 to L - 2. */
    int stride = w->D / 2 > 0 ? w->D / 2 : 1;
    w->n_starts = (L - 2) / stride + 1;
    w->Ro = w->n_starts * B;
    w->Ri = (B < INFO_SEQS ? B : INFO_SEQS) * L;
    w->K = k->info_samples;
    w->z_dim = k->z_dim;
    carver c = {NULL, 0};
    ws_layout(w, m, &c);
    w->block_floats = c.used;
    w->block = params_alloc(c.used);
    w->os_row = malloc(sizeof(int) * (size_t)w->D * (size_t)w->Ro);
    w->os_n = malloc(sizeof(int) * (size_t)w->D);
    w->os_off = malloc(sizeof(int) * ((size_t)w->D + 1));
    w->value_has = malloc((size_t)w->R);
    if (!w->block || !w->os_row || !w->os_n || !w->os_off || !w->value_has) {
        elbo_ws_free(w);
        return NULL;
    }
    c.base = w->block;
    c.used = 0;
    ws_layout(w, m, &c);
    return w;
}

void elbo_ws_free(elbo_ws *ws)
{
    if (!ws)
        return;
    params_free(ws->block);
    free(ws->os_row);
    free(ws->os_n);
    free(ws->os_off);
    free(ws->value_has);
    free(ws);
}

void elbo_sample_noise(elbo_ws *ws, rng_t *rng)
{
    size_t dz = (size_t)ws->z_dim;
    rng_fill_normal(rng, ws->eps_q, (size_t)ws->R * dz);
    rng_fill_normal(rng, ws->eps_os, (size_t)ws->D * ws->Ro * dz);
    rng_fill_normal(rng, ws->eps_info, (size_t)ws->K * ws->Ri * dz);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void split_raw(float *mu, float *std, const float *raw, size_t rows, int d, float min_std)
{
    for (size_t i = 0; i < rows; i++) {
        memcpy(mu + i * d, raw + i * 2 * d, sizeof(float) * (size_t)d);
        memcpy(std + i * d, raw + i * 2 * d + d, sizeof(float) * (size_t)d);
    }
    gauss_std_forward(std, std, min_std, rows * (size_t)d);
}

/* draw (rows, 2d) = [dmu, dstd * sigmoid(raw_std)] */
static void join_raw_grad(float *draw, const float *dmu, const float *dstd, const float *raw,
                          size_t rows, int d)
{
    for (size_t i = 0; i < rows; i++) {
        memcpy(draw + i * 2 * d, dmu + i * d, sizeof(float) * (size_t)d);
        memset(draw + i * 2 * d + d, 0, sizeof(float) * (size_t)d);
        gauss_std_backward(draw + i * 2 * d + d, dstd + i * d, raw + i * 2 * d + d, (size_t)d);
    }
}

/* Fixed-std Gaussian log-density of x (n) around mu; adds g * d/dmu into dmu when not NULL. */
static double fixed_logpdf(const float *x, const float *mu, float std, size_t n, float *dmu,
                           float g)
{
    double s = 0.0;
    float iv = 1.0f / (std * std);
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mu[i];
        s += -0.5 * d * d * iv - log(std) - 0.5 * LOG_2PI;
        if (dmu)
            dmu[i] += g * (float)d * iv;
    }
    return s;
}

/* Bernoulli log-likelihood of "the episode goes on" (y = 1) or ends (y = 0) under the logit;
 * adds g * d/dlogit into *dlogit. */
static double cont_loglik(float logit, int y, float *dlogit, float g)
{
    double l = logit;
    /* log sigmoid(l) = -softplus(-l); log(1 - sigmoid(l)) = -softplus(l) */
    double sp = l > 0 ? l + log1p(exp(-l)) : log1p(exp(l)); /* softplus(l) */
    double ll = y ? -(sp - l) : -sp;
    double sig = 1.0 / (1.0 + exp(-l));
    if (dlogit)
        *dlogit += g * (float)(y - sig);
    return ll;
}

static void concat2(float *dst, const float *a, int wa, const float *b, int wb, int rows)
{
    tensor_copy_cols(dst, wa + wb, a, wa, rows, wa);
    tensor_copy_cols(dst + wa, wa + wb, b, wb, rows, wb);
}

/* ---- the passes --------------------------------------------------------------------------- */

int elbo_evaluate(const model_t *m, const float *params, const float *target_params, float *grads,
                  const model_norm *norm, const replay_batch *b, elbo_ws *w,
                  const elbo_parts *parts, elbo_terms *out)
{
    const model_config *k = &m->cfg;
    const int B = w->B, L = w->L, R = w->R, Ro = w->Ro, D = w->D;
    const int dx = k->obs_dim, da = k->act_dim, dh = k->h_dim, dz = k->z_dim, H = k->hidden;
    const int dhz = dh + dz, dpi = dh + dx + 1;
    elbo_parts all = {1, 1, 1};
    if (!parts)
        parts = &all;
    if (!target_params)
        target_params = params;
    const int use_value = parts->value && k->value_weight > 0.0f;
    const int use_os = parts->model && k->overshoot > 0.0f;
    memset(out, 0, sizeof *out);

    /* Normalised inputs and counts. */
    long n_valid = 0, n_rew = 0, n_act = 0, n_xent = 0;
    double reward_sum = 0.0;
    for (int i = 0; i < R; i++) {
        norm_obs(norm, w->xn + (size_t)i * dx, b->obs + (size_t)i * dx, dx);
        w->rn[i] = b->has_rew[i] ? norm_reward(norm, b->rew[i]) : 0.0f;
        if (!b->mask[i])
            continue;
        n_valid++;
        if (b->has_rew[i]) {
            n_rew++;
            reward_sum += b->rew[i];
        }
        if (b->has_act[i]) {
            n_act++;
            n_xent += !b->has_dist[i];
        }
    }
    if (n_valid == 0)
        return -1;
    const float inv_valid = 1.0f / (float)n_valid;

    /* Main pass, step by step: embedding, GRU, posterior, sample. */
    for (int t = 0; t < L; t++) {
        size_t r0 = (size_t)t * B;
        float *in = w->emb_in + r0 * (dz + da);
        float *hp = w->h_prev + r0 * dh;
        for (int bi = 0; bi < B; bi++) {
            size_t row = r0 + bi;
            int keep = t > 0 && !b->first[row];
            float *dst = in + (size_t)bi * (dz + da);
            if (keep) {
                memcpy(dst, w->z + (row - B) * dz, sizeof(float) * dz);
                memcpy(hp + (size_t)bi * dh, w->h + (row - B) * dh, sizeof(float) * dh);
            } else {
                memset(dst, 0, sizeof(float) * dz);
                memset(hp + (size_t)bi * dh, 0, sizeof(float) * dh);
            }
            memcpy(dst + dz, b->act_in + row * da, sizeof(float) * da);
        }
        mlp_forward(&m->embed, w->emb + r0 * H,
                    w->emb_cache + (size_t)t * mlp_cache_count(&m->embed, B), in,
                    params + m->off_embed, B);
        gru_forward(w->h + r0 * dh, w->gru_cache + r0 * 4 * dh, w->gru_scratch, w->emb + r0 * H, hp,
                    params + m->off_gru, B, H, dh);
        float *pin = w->post_in + r0 * dpi;
        tensor_copy_cols(pin, dpi, w->h + r0 * dh, dh, B, dh);
        tensor_copy_cols(pin + dh, dpi, w->xn + r0 * dx, dx, B, dx);
        tensor_copy_cols(pin + dh + dx, dpi, w->rn + r0, 1, B, 1);
        mlp_forward(&m->post, w->post_raw + r0 * 2 * dz,
                    w->post_cache + (size_t)t * mlp_cache_count(&m->post, B), pin,
                    params + m->off_post, B);
        split_raw(w->mu_q + r0 * dz, w->std_q + r0 * dz, w->post_raw + r0 * 2 * dz, (size_t)B, dz,
                  k->min_std);
        gauss_sample(w->z + r0 * dz, w->mu_q + r0 * dz, w->std_q + r0 * dz, w->eps_q + r0 * dz,
                     (size_t)B * dz);
    }

    /* Prior over all rows, state KL. */
    mlp_forward(&m->prior, w->prior_raw, w->prior_cache, w->h, params + m->off_prior, R);
    split_raw(w->mu_p, w->std_p, w->prior_raw, (size_t)R, dz, k->min_std);
    double kl_sum = 0.0, kl_loss = 0.0;
    for (int i = 0; i < R; i++) {
        size_t o = (size_t)i * dz;
        w->kl[i] =
            (float)gauss_kl(w->mu_q + o, w->std_q + o, w->mu_p + o, w->std_p + o, (size_t)dz);
        if (!b->mask[i])
            continue;
        kl_sum += w->kl[i];
        kl_loss += w->kl[i] > k->free_nats ? w->kl[i] : k->free_nats;
    }

    /* Decoder heads over all rows. */
    concat2(w->hz, w->h, dh, w->z, dz, R);
    mlp_forward(&m->obs_head, w->obs_out, w->obs_cache, w->hz, params + m->off_obs, R);
    mlp_forward(&m->rew_head, w->rew_out, w->rew_cache, w->hz, params + m->off_rew, R);
    double obs_ll = 0.0, rew_ll = 0.0;
    tensor_zero(w->dobs, (size_t)R * dx);
    tensor_zero(w->drew, (size_t)R);
    for (int i = 0; i < R; i++) {
        if (!b->mask[i])
            continue;
        obs_ll += fixed_logpdf(w->xn + (size_t)i * dx, w->obs_out + (size_t)i * dx, k->obs_std,
                               (size_t)dx, w->dobs + (size_t)i * dx, -inv_valid);
        if (b->has_rew[i])
            rew_ll +=
                fixed_logpdf(w->rn + i, w->rew_out + i, k->reward_std, 1, w->drew + i, -inv_valid);
    }

    /* Episode end: a Bernoulli likelihood of "goes on" at every step (weight cont_weight). */
    double cont_ll = 0.0;
    const int use_cont = parts->model && k->cont_weight > 0.0f;
    if (use_cont) {
        mlp_forward(&m->cont_head, w->cont_out, w->cont_cache, w->hz, params + m->off_cont, R);
        tensor_zero(w->dcont, (size_t)R);
        float g = -k->cont_weight * inv_valid;
        for (int i = 0; i < R; i++)
            if (b->mask[i])
                cont_ll += cont_loglik(w->cont_out[i], !b->terminal[i], w->dcont + i, g);
    }

    /* Overshooting: open-loop prior rollouts from posterior states. */
    double os_ll = 0.0;
    long n_os = 0;
    if (use_os) {
        int stride = D / 2 > 0 ? D / 2 : 1;
        for (int s = 0; s < w->n_starts; s++) {
            int t0 = s * stride;
            for (int bi = 0; bi < B; bi++) {
                size_t ro = (size_t)s * B + bi, row0 = (size_t)t0 * B + bi;
                memcpy(w->os_h0 + ro * dh, w->h + row0 * dh, sizeof(float) * dh);
                memcpy(w->os_z0 + ro * dz, w->z + row0 * dz, sizeof(float) * dz);
                int alive = b->mask[row0];
                for (int j = 0; j < D; j++) {
                    int t = t0 + 1 + j;
                    int ok = alive && t < L;
                    size_t row = (size_t)t * B + bi;
                    ok = ok && b->mask[row] && !b->first[row] && b->has_act[row - B];
                    alive = ok;
                    w->os_row[(size_t)j * Ro + ro] = ok ? (int)row : -1;
                    float *in = w->os_in + ((size_t)j * Ro + ro) * (dz + da);
                    if (ok)
                        memcpy(in + dz, b->act_in + row * da, sizeof(float) * da);
                    else
                        memset(in + dz, 0, sizeof(float) * da);
                }
            }
        }
        /* Live rows per step (see os_n): a dead row adds nothing to the loss or the gradient. */
        w->os_off[0] = 0;
        for (int j = 0; j < D; j++) {
            int n = 0;
            for (int ro = 0; ro < Ro; ro++)
                if (w->os_row[(size_t)j * Ro + ro] >= 0)
                    n = ro + 1;
            w->os_n[j] = n;
            w->os_off[j + 1] = w->os_off[j] + n;
        }
        size_t ec = mlp_cache_count(&m->embed, Ro), pc = mlp_cache_count(&m->prior, Ro);
        for (int j = 0; j < D && w->os_n[j] > 0; j++) {
            size_t r0 = (size_t)j * Ro;
            int n = w->os_n[j];
            const float *hprev = j == 0 ? w->os_h0 : w->os_h + (r0 - Ro) * dh;
            const float *zprev = j == 0 ? w->os_z0 : w->os_z + (r0 - Ro) * dz;
            float *in = w->os_in + r0 * (dz + da);
            tensor_copy_cols(in, dz + da, zprev, dz, n, dz);
            mlp_forward(&m->embed, w->os_emb + r0 * H, w->os_emb_cache + (size_t)j * ec, in,
                        params + m->off_embed, n);
            gru_forward(w->os_h + r0 * dh, w->os_gru_cache + r0 * 4 * dh, w->gru_scratch,
                        w->os_emb + r0 * H, hprev, params + m->off_gru, n, H, dh);
            mlp_forward(&m->prior, w->os_prior_raw + r0 * 2 * dz,
                        w->os_prior_cache + (size_t)j * pc, w->os_h + r0 * dh,
                        params + m->off_prior, n);
            split_raw(w->os_mu + r0 * dz, w->os_std + r0 * dz, w->os_prior_raw + r0 * 2 * dz,
                      (size_t)n, dz, k->min_std);
            gauss_sample(w->os_z + r0 * dz, w->os_mu + r0 * dz, w->os_std + r0 * dz,
                         w->eps_os + r0 * dz, (size_t)n * dz);
            concat2(w->os_hz + (size_t)w->os_off[j] * dhz, w->os_h + r0 * dh, dh, w->os_z + r0 * dz,
                    dz, n);
        }
        int N = w->os_off[D];
        mlp_forward(&m->obs_head, w->os_obs, w->os_obs_cache, w->os_hz, params + m->off_obs, N);
        mlp_forward(&m->rew_head, w->os_rew, w->os_rew_cache, w->os_hz, params + m->off_rew, N);
        if (use_cont) {
            mlp_forward(&m->cont_head, w->os_cont, w->os_cont_cache, w->os_hz, params + m->off_cont,
                        N);
            tensor_zero(w->os_dcont, (size_t)N);
        }
        for (int i = 0; i < D * Ro; i++)
            n_os += w->os_row[i] >= 0;
        tensor_zero(w->os_dobs, (size_t)N * dx);
        tensor_zero(w->os_drew, (size_t)N);
        float g = n_os ? -k->overshoot / (float)n_os : 0.0f;
        for (int j = 0; j < D; j++)
            for (int ro = 0; ro < w->os_n[j]; ro++) {
                int row = w->os_row[(size_t)j * Ro + ro];
                size_t i = (size_t)w->os_off[j] + ro; /* packed row */
                if (row < 0)
                    continue;
                os_ll += fixed_logpdf(w->xn + (size_t)row * dx, w->os_obs + i * dx, k->obs_std,
                                      (size_t)dx, w->os_dobs + i * dx, g);
                if (b->has_rew[row])
                    os_ll += fixed_logpdf(w->rn + row, w->os_rew + i, k->reward_std, 1,
                                          w->os_drew + i, g);
                if (use_cont)
                    os_ll += k->cont_weight * cont_loglik(w->os_cont[i], !b->terminal[row],
                                                          w->os_dcont + i, g * k->cont_weight);
            }
    }

    /* Information gain (reported): log p(x, r | h, z_q) - log mean_k p(x, r | h, z_k ~ prior),
     * on the first INFO_SEQS sequences at every step. */
    double info_sum = 0.0;
    long n_info = 0;
    {
        int nb = B < INFO_SEQS ? B : INFO_SEQS, K = w->K;
        int Ri = nb * L;
        for (int kk = 0; kk < K; kk++)
            for (int t = 0; t < L; t++)
                for (int bi = 0; bi < nb; bi++) {
                    size_t row = (size_t)t * B + bi;
                    size_t ir = (size_t)kk * Ri + (size_t)t * nb + bi;
                    gauss_sample(w->info_z + ir * dz, w->mu_p + row * dz, w->std_p + row * dz,
                                 w->eps_info + ir * dz, (size_t)dz);
                    memcpy(w->info_hz + ir * dhz, w->h + row * dh, sizeof(float) * dh);
                    memcpy(w->info_hz + ir * dhz + dh, w->info_z + ir * dz, sizeof(float) * dz);
                }
        int rows = K * Ri;
        mlp_forward(&m->obs_head, w->info_obs, w->info_cache, w->info_hz, params + m->off_obs,
                    rows);
        mlp_forward(&m->rew_head, w->info_rew, w->info_cache, w->info_hz, params + m->off_rew,
                    rows);
        for (int t = 0; t < L; t++)
            for (int bi = 0; bi < nb; bi++) {
                size_t row = (size_t)t * B + bi;
                if (!b->mask[row])
                    continue;
                double lq = fixed_logpdf(w->xn + row * dx, w->obs_out + row * dx, k->obs_std,
                                         (size_t)dx, NULL, 0.0f);
                if (b->has_rew[row])
                    lq += fixed_logpdf(w->rn + row, w->rew_out + row, k->reward_std, 1, NULL, 0.0f);
                double lk[64], mx = -INFINITY;
                for (int kk = 0; kk < K; kk++) {
                    size_t ir = (size_t)kk * Ri + (size_t)t * nb + bi;
                    lk[kk] = fixed_logpdf(w->xn + row * dx, w->info_obs + ir * dx, k->obs_std,
                                          (size_t)dx, NULL, 0.0f);
                    if (b->has_rew[row])
                        lk[kk] += fixed_logpdf(w->rn + row, w->info_rew + ir, k->reward_std, 1,
                                               NULL, 0.0f);
                    mx = lk[kk] > mx ? lk[kk] : mx;
                }
                double se = 0.0;
                for (int kk = 0; kk < K; kk++)
                    se += exp(lk[kk] - mx);
                info_sum += lq - (mx + log(se / K));
                n_info++;
            }
    }

    /* Action prior on the (detached) states: KL to the planner's distribution, or the
     * cross-entropy of the taken action. */
    double act_sum = 0.0;
    mlp_forward(&m->actor, w->actor_raw, w->actor_cache, w->hz, params + m->off_actor, R);
    split_raw(w->a_mu, w->a_std, w->actor_raw, (size_t)R, da, k->min_std);
    tensor_zero(w->dactor_raw, (size_t)R * 2 * da);
    {
        float g = n_act ? k->beta_a / (float)n_act : 0.0f;
        float dmu[MODEL_MAX_ACT], dsd[MODEL_MAX_ACT];
        for (int i = 0; i < R; i++) {
            if (!b->mask[i] || !b->has_act[i])
                continue;
            const float *mu = w->a_mu + (size_t)i * da, *sd = w->a_std + (size_t)i * da;
            memset(dmu, 0, sizeof dmu);
            memset(dsd, 0, sizeof dsd);
            if (b->has_dist[i]) {
                const float *qm = b->dist + (size_t)i * 2 * da, *qs = qm + da;
                act_sum += gauss_kl(qm, qs, mu, sd, (size_t)da);
                gauss_kl_backward(NULL, NULL, dmu, dsd, g, qm, qs, mu, sd, (size_t)da);
            } else {
                const float *a = b->act_out + (size_t)i * da;
                act_sum -= tanh_gauss_logpdf(a, mu, sd, unit_low, unit_high, da);
                tanh_gauss_logpdf_backward(dmu, dsd, -g, a, mu, sd, unit_low, unit_high, da);
            }
            float *dr = w->dactor_raw + (size_t)i * 2 * da;
            memcpy(dr, dmu, sizeof(float) * da);
            gauss_std_backward(dr + da, dsd, w->actor_raw + (size_t)i * 2 * da + da, (size_t)da);
        }
    }

    /* Value: lambda-returns of normalised rewards, bootstrapped by the target value head. */
    double value_sse = 0.0;
    long n_value = 0;
    if (use_value) {
        mlp_forward(&m->value, w->value_out, w->value_cache, w->hz, params + m->off_value, R);
        mlp_forward(&m->value, w->value_tgt, w->value_tcache, w->hz, target_params + m->off_value,
                    R);
        const float gamma = k->discount, lam = VALUE_LAMBDA;
        for (int bi = 0; bi < B; bi++) {
            float G = 0.0f;
            int next_ok = 0; /* G holds the return of step t + 1 */
            for (int t = L - 1; t >= 0; t--) {
                size_t row = (size_t)t * B + bi;
                w->value_has[row] = 0;
                if (!b->mask[row]) {
                    next_ok = 0;
                    continue;
                }
                float target;
                int has;
                if (b->terminal[row]) {
                    target = 0.0f;
                    has = 1;
                } else if (next_ok) {
                    size_t nrow = row + B;
                    float vn = b->terminal[nrow] ? 0.0f : w->value_tgt[nrow];
                    target = w->rn[nrow] + gamma * ((1.0f - lam) * vn + lam * G);
                    has = 1;
                } else {
                    target = w->value_tgt[row];
                    has = 0;
                }
                G = target;
                next_ok = 1;
                w->value_g[row] = target;
                w->value_has[row] = (uint8_t)has;
                n_value += has;
            }
        }
        for (int i = 0; i < R; i++) {
            w->dvalue[i] = 0.0f;
            if (!w->value_has[i])
                continue;
            float d = w->value_out[i] - w->value_g[i];
            value_sse += 0.5 * (double)d * d;
        }
        float g = n_value ? k->value_weight / (float)n_value : 0.0f;
        for (int i = 0; i < R; i++)
            if (w->value_has[i])
                w->dvalue[i] = g * (w->value_out[i] - w->value_g[i]);
    }

    /* Terms and loss. */
    out->steps = n_valid;
    out->reward = n_rew ? reward_sum / n_rew : 0.0;
    out->state_kl = kl_sum / n_valid;
    out->info_gain = n_info ? info_sum / n_info : 0.0;
    out->action_kl = n_act ? act_sum / n_act : 0.0;
    out->action_xent_fraction = n_act ? (double)n_xent / n_act : 0.0;
    out->elbo = out->reward + out->info_gain - out->state_kl - out->action_kl;
    out->obs_nll = -obs_ll / n_valid;
    out->reward_nll = -rew_ll / n_valid;
    out->cont_nll = -cont_ll / n_valid;
    out->overshoot_nll = n_os ? -os_ll / n_os : 0.0;
    out->actor_loss = n_act ? k->beta_a * act_sum / n_act : 0.0;
    out->value_loss = n_value ? value_sse / n_value : 0.0;
    double loss = 0.0;
    if (parts->model)
        loss += out->obs_nll + out->reward_nll + k->cont_weight * out->cont_nll +
                k->beta_z * kl_loss / n_valid + (use_os ? k->overshoot * out->overshoot_nll : 0.0);
    if (parts->actor)
        loss += out->actor_loss;
    if (use_value)
        loss += k->value_weight * out->value_loss;
    out->loss = loss;
    if (!isfinite(loss))
        return -1;
    if (!grads)
        return 0;

    /* ---- backward ---- */
    float *scr = w->mlp_scratch;
    if (parts->actor)
        mlp_backward(&m->actor, NULL, grads + m->off_actor, w->dactor_raw, w->hz, w->actor_raw,
                     params + m->off_actor, w->actor_cache, scr, R);
    if (use_value) {
        mlp_backward(&m->value, NULL, grads + m->off_value, w->dvalue, w->hz, w->value_out,
                     params + m->off_value, w->value_cache, scr, R);
    }
    if (!parts->model)
        return 0;

    /* Heads of the main pass. */
    tensor_zero(w->dhz, (size_t)R * dhz);
    mlp_backward(&m->obs_head, w->dhz, grads + m->off_obs, w->dobs, w->hz, w->obs_out,
                 params + m->off_obs, w->obs_cache, scr, R);
    mlp_backward(&m->rew_head, w->dhz, grads + m->off_rew, w->drew, w->hz, w->rew_out,
                 params + m->off_rew, w->rew_cache, scr, R);
    if (use_cont)
        mlp_backward(&m->cont_head, w->dhz, grads + m->off_cont, w->dcont, w->hz, w->cont_out,
                     params + m->off_cont, w->cont_cache, scr, R);
    tensor_zero(w->dh, (size_t)R * dh);
    tensor_zero(w->dz, (size_t)R * dz);
    tensor_add_cols(w->dh, dh, w->dhz, dhz, R, dh);
    tensor_add_cols(w->dz, dz, w->dhz + dh, dhz, R, dz);

    /* State KL (free nats: no gradient below the floor) into prior and posterior. */
    tensor_zero(w->dmu_p, (size_t)R * dz);
    tensor_zero(w->dstd_p, (size_t)R * dz);
    tensor_zero(w->dmu_q, (size_t)R * dz);
    tensor_zero(w->dstd_q, (size_t)R * dz);
    {
        float g = k->beta_z * inv_valid;
        for (int i = 0; i < R; i++) {
            if (!b->mask[i] || !(w->kl[i] > k->free_nats))
                continue;
            size_t o = (size_t)i * dz;
            gauss_kl_backward(w->dmu_q + o, w->dstd_q + o, w->dmu_p + o, w->dstd_p + o, g,
                              w->mu_q + o, w->std_q + o, w->mu_p + o, w->std_p + o, (size_t)dz);
        }
    }
    join_raw_grad(w->dprior_raw, w->dmu_p, w->dstd_p, w->prior_raw, (size_t)R, dz);
    mlp_backward(&m->prior, w->dh, grads + m->off_prior, w->dprior_raw, w->h, w->prior_raw,
                 params + m->off_prior, w->prior_cache, scr, R);

    /* Overshooting rollouts, backwards, ending in the gradient of their start states. */
    if (use_os) {
        int N = w->os_off[D];
        tensor_zero(w->os_dhz, (size_t)N * dhz);
        mlp_backward(&m->obs_head, w->os_dhz, grads + m->off_obs, w->os_dobs, w->os_hz, w->os_obs,
                     params + m->off_obs, w->os_obs_cache, scr, N);
        mlp_backward(&m->rew_head, w->os_dhz, grads + m->off_rew, w->os_drew, w->os_hz, w->os_rew,
                     params + m->off_rew, w->os_rew_cache, scr, N);
        if (use_cont)
            mlp_backward(&m->cont_head, w->os_dhz, grads + m->off_cont, w->os_dcont, w->os_hz,
                         w->os_cont, params + m->off_cont, w->os_cont_cache, scr, N);
        size_t ec = mlp_cache_count(&m->embed, Ro), pc = mlp_cache_count(&m->prior, Ro);
        float *dh0 = w->dh_prev; /* gradient of the start states, rows Ro */
        for (int j = 0; j < D; j++) {
            /* Unpack the heads' gradient into the step's rows (dead rows stay zero). */
            size_t r0 = (size_t)j * Ro, p0 = (size_t)w->os_off[j];
            int n = w->os_n[j];
            tensor_zero(w->os_dh + r0 * dh, (size_t)Ro * dh);
            tensor_zero(w->os_dz + r0 * dz, (size_t)Ro * dz);
            tensor_add_cols(w->os_dh + r0 * dh, dh, w->os_dhz + p0 * dhz, dhz, n, dh);
            tensor_add_cols(w->os_dz + r0 * dz, dz, w->os_dhz + p0 * dhz + dh, dhz, n, dz);
        }
        for (int j = D - 1; j >= 0; j--) {
            size_t r0 = (size_t)j * Ro;
            int n = w->os_n[j];
            if (n == 0)
                continue;
            float *dhj = w->os_dh + r0 * dh, *dzj = w->os_dz + r0 * dz;
            /* z = mu + std * eps through the prior. */
            tensor_zero(w->os_dmu, (size_t)n * dz);
            tensor_zero(w->os_dstd, (size_t)n * dz);
            gauss_sample_backward(w->os_dmu, w->os_dstd, dzj, w->eps_os + r0 * dz, (size_t)n * dz);
            join_raw_grad(w->os_dprior_raw, w->os_dmu, w->os_dstd, w->os_prior_raw + r0 * 2 * dz,
                          (size_t)n, dz);
            mlp_backward(&m->prior, dhj, grads + m->off_prior, w->os_dprior_raw, w->os_h + r0 * dh,
                         w->os_prior_raw + r0 * 2 * dz, params + m->off_prior,
                         w->os_prior_cache + (size_t)j * pc, scr, n);
            /* GRU: into the embedding and the previous h (rows [0, n) of step j - 1 are live). */
            const float *hprev = j == 0 ? w->os_h0 : w->os_h + (r0 - Ro) * dh;
            float *dhprev = j == 0 ? dh0 : w->os_dh + (r0 - Ro) * dh;
            if (j == 0)
                tensor_zero(dh0, (size_t)n * dh);
            tensor_zero(w->demb, (size_t)n * H);
            gru_backward(w->demb, dhprev, grads + m->off_gru, dhj, w->os_emb + r0 * H, hprev,
                         params + m->off_gru, w->os_gru_cache + r0 * 4 * dh, w->gru_scratch, n, H,
                         dh);
            tensor_zero(w->demb_in, (size_t)n * (dz + da));
            mlp_backward(&m->embed, w->demb_in, grads + m->off_embed, w->demb,
                         w->os_in + r0 * (dz + da), w->os_emb + r0 * H, params + m->off_embed,
                         w->os_emb_cache + (size_t)j * ec, scr, n);
            if (j > 0) {
                tensor_add_cols(w->os_dz + (r0 - Ro) * dz, dz, w->demb_in, dz + da, n, dz);
            } else {
                /* Start states are the main pass's (h, z) at t0: hand the gradient back. */
                int stride = D / 2 > 0 ? D / 2 : 1;
                for (int s = 0; s < w->n_starts; s++)
                    for (int bi = 0; bi < B; bi++) {
                        size_t ro = (size_t)s * B + bi, row0 = (size_t)s * stride * B + bi;
                        if (ro >= (size_t)n)
                            continue;
                        tensor_add(w->dh + row0 * dh, dh0 + ro * dh, (size_t)dh);
                        tensor_add(w->dz + row0 * dz, w->demb_in + ro * (dz + da), (size_t)dz);
                    }
            }
        }
    }

    /* Main recurrence, backwards through time. */
    size_t ecb = mlp_cache_count(&m->embed, B), pcb = mlp_cache_count(&m->post, B);
    for (int t = L - 1; t >= 0; t--) {
        size_t r0 = (size_t)t * B;
        /* z_t = mu_q + std_q * eps: its gradient goes to the posterior. */
        gauss_sample_backward(w->dmu_q + r0 * dz, w->dstd_q + r0 * dz, w->dz + r0 * dz,
                              w->eps_q + r0 * dz, (size_t)B * dz);
        join_raw_grad(w->dpost_raw + r0 * 2 * dz, w->dmu_q + r0 * dz, w->dstd_q + r0 * dz,
                      w->post_raw + r0 * 2 * dz, (size_t)B, dz);
        tensor_zero(w->dpost_in, (size_t)B * dpi);
        mlp_backward(&m->post, w->dpost_in, grads + m->off_post, w->dpost_raw + r0 * 2 * dz,
                     w->post_in + r0 * dpi, w->post_raw + r0 * 2 * dz, params + m->off_post,
                     w->post_cache + (size_t)t * pcb, scr, B);
        tensor_add_cols(w->dh + r0 * dh, dh, w->dpost_in, dpi, B, dh);
        /* GRU and embedding. */
        tensor_zero(w->demb, (size_t)B * H);
        tensor_zero(w->dh_prev, (size_t)B * dh);
        gru_backward(w->demb, w->dh_prev, grads + m->off_gru, w->dh + r0 * dh, w->emb + r0 * H,
                     w->h_prev + r0 * dh, params + m->off_gru, w->gru_cache + r0 * 4 * dh,
                     w->gru_scratch, B, H, dh);
        tensor_zero(w->demb_in, (size_t)B * (dz + da));
        mlp_backward(&m->embed, w->demb_in, grads + m->off_embed, w->demb,
                     w->emb_in + r0 * (dz + da), w->emb + r0 * H, params + m->off_embed,
                     w->emb_cache + (size_t)t * ecb, scr, B);
        if (t == 0)
            continue;
        for (int bi = 0; bi < B; bi++) {
            size_t row = r0 + bi;
            if (b->first[row])
                continue;
            tensor_add(w->dh + (row - B) * dh, w->dh_prev + (size_t)bi * dh, (size_t)dh);
            tensor_add(w->dz + (row - B) * dz, w->demb_in + (size_t)bi * (dz + da), (size_t)dz);
        }
    }
    return 0;
}
