/* elbo: forward and backward passes of the training objective (see elbo.h).
 *
 * Layout: every per-step array is time-major, row = t * B + b, so one step's rows are contiguous
 * and the parts that do not feed the recurrence (prior, decoder heads, action prior, value) run
 * as single large matrix products over all L * B rows. Only the embedding, the GRU and the
 * posterior run step by step, and the backward's step only carries the gradient back in time:
 * the GRU's and the embedding's weight gradients are one product over all rows after the loop.
 * The decoder and episode-end heads run once over the main pass's rows and the overshooting
 * rollouts' rows together; a rollout's first step is the main pass's own transition (see the
 * overshooting forward), reused rather than computed again.
 */
#include "elbo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "tensor.h"

/* The elementwise loops over a step's GRU gates, compiled twice as in vmath.c (x86-64-v3 and the
 * baseline). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ELBO_NO_CLONES)
#define ELBO_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ELBO_CLONES
#endif

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
    float *xn, *rn;                                /* (R, dx), (R) */
    float *emb_in, *emb_lin, *emb;                 /* (R, dz+da), (R, H), (R, H) */
    float *h_prev, *gru_cache, *h;                 /* (R, dh), (R, 4dh), (R, dh) */
    float *gru_scratch;                            /* (max(B, Ro), 6dh) */
    float *post_in, *post_raw;                     /* (R, dh+dx+1), (R, 2dz) */
    float *post_lin, *post_act, *post_dlin;        /* posterior's hidden layer: (R, H) x3 */
    float *mu_q, *std_q, *z;                       /* (R, dz) */
    float *prior_cache, *prior_raw, *mu_p, *std_p; /* cache(R), (R, 2dz), (R, dz) x2 */
    float *kl;                                     /* (R) per-row state KL */
    /* The decoder and episode-end heads run over the main pass's R rows and the rollouts' packed
     * rows in one pass: each array below holds R + D * Ro rows, the rollouts' (os_*) from row R. */
    float *hz, *obs_cache, *obs_out, *rew_cache, *rew_out;
    float *cont_cache, *cont_out, *dcont;
    float *actor_cache, *actor_raw, *a_mu, *a_std; /* (R, 2da), (R, da) x2 */
    float *value_cache, *value_tcache;             /* online and target head caches */
    float *value_out, *value_tgt, *value_g;        /* (R) */
    uint8_t *value_has;                            /* (R) */

    /* overshooting */
    float *os_in, *os_emb_cache, *os_emb; /* per step: (Ro, dz+da), cache(Ro), (Ro, H) */
    float *os_gru_cache, *os_h;           /* (D, Ro, 4dh), (D, Ro, dh) */
    float *os_prior_cache, *os_prior_raw, *os_mu, *os_std, *os_z; /* per step */
    float *os_hz, *os_obs, *os_rew, *os_cont, *os_dcont;          /* rows R.. of hz, obs_out, ... */
    int *os_row; /* (D, Ro) main-pass row of the target, -1 when not valid */
    /* Rollout rows that can still matter: a rollout that left its sequence (or its episode)
     * stays out, so at step j only rows [0, os_n[j]) hold a live one (os_n never grows with j)
     * and the rest are not computed. The decoder heads see the live rows packed, step j's at
     * packed row os_off[j]; N = os_off[D] rows in all. */
    int *os_n, *os_off;

    /* info gain */
    float *info_hz, *info_obs, *info_rew, *info_cache, *info_z; /* (K * Ri, ...) */

    /* backward */
    float *dh, *dz, *dhz;                        /* (R, dh), (R, dz), heads' rows */
    float *dobs, *drew;                          /* heads' rows */
    float *dprior_raw, *dmu_p, *dstd_p;          /* (R, 2dz), (R, dz) x2 */
    float *dmu_q, *dstd_q, *dpost_raw;           /* (R, dz) x2, (R, 2dz) */
    float *dpost_act, *demb, *demb_in, *dh_prev; /* per step (max rows) */
    float *gru_dgx, *gru_dgh, *emb_dlin; /* main pass: GRU gate gradients (R, 3dh) x2, (R, H) */
    float *mlp_scratch;                  /* largest MLP backward scratch */
    float *dactor_raw, *dvalue;          /* (R, 2da), (R) */
    float *os_dh, *os_dz, *os_dhz, *os_dobs, *os_drew; /* (D, Ro, ...); heads' rows R.. */
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
    w->emb_lin = carve(c, R * H);
    w->emb = carve(c, R * H);
    w->h_prev = carve(c, R * dh);
    w->gru_cache = carve(c, R * 4 * dh);
    w->h = carve(c, R * dh);
    w->gru_scratch = carve(c, rmax * 6 * dh);
    w->post_in = carve(c, R * (dh + dx + 1));
    w->post_lin = carve(c, R * H);
    w->post_act = carve(c, R * H);
    w->post_dlin = carve(c, R * H);
    w->post_raw = carve(c, R * 2 * dz);
    w->mu_q = carve(c, R * dz);
    w->std_q = carve(c, R * dz);
    w->z = carve(c, R * dz);
    w->prior_cache = carve(c, mlp_cache_count(&m->prior, w->R));
    w->prior_raw = carve(c, R * 2 * dz);
    w->mu_p = carve(c, R * dz);
    w->std_p = carve(c, R * dz);
    w->kl = carve(c, R);
    size_t RH = R + D * Ro; /* the heads' rows */
    w->hz = carve(c, RH * (dh + dz));
    w->os_hz = w->hz ? w->hz + R * (dh + dz) : NULL;
    w->obs_cache = carve(c, mlp_cache_count(&m->obs_head, (int)RH));
    w->obs_out = carve(c, RH * dx);
    w->os_obs = w->obs_out ? w->obs_out + R * dx : NULL;
    w->rew_cache = carve(c, mlp_cache_count(&m->rew_head, (int)RH));
    w->rew_out = carve(c, RH);
    w->os_rew = w->rew_out ? w->rew_out + R : NULL;
    w->cont_cache = carve(c, mlp_cache_count(&m->cont_head, (int)RH));
    w->cont_out = carve(c, RH);
    w->os_cont = w->cont_out ? w->cont_out + R : NULL;
    w->dcont = carve(c, RH);
    w->os_dcont = w->dcont ? w->dcont + R : NULL;
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
    w->os_prior_cache = carve(c, D * mlp_cache_count(&m->prior, w->Ro));
    w->os_prior_raw = carve(c, D * Ro * 2 * dz);
    w->os_mu = carve(c, D * Ro * dz);
    w->os_std = carve(c, D * Ro * dz);
    w->os_z = carve(c, D * Ro * dz);

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
    w->dhz = carve(c, RH * (dh + dz));
    w->os_dhz = w->dhz ? w->dhz + R * (dh + dz) : NULL;
    w->dobs = carve(c, RH * dx);
    w->os_dobs = w->dobs ? w->dobs + R * dx : NULL;
    w->drew = carve(c, RH);
    w->os_drew = w->drew ? w->drew + R : NULL;
    w->dprior_raw = carve(c, R * 2 * dz);
    w->dmu_p = carve(c, R * dz);
    w->dstd_p = carve(c, R * dz);
    w->dmu_q = carve(c, R * dz);
    w->dstd_q = carve(c, R * dz);
    w->dpost_raw = carve(c, R * 2 * dz);
    w->dpost_act = carve(c, B * H);
    w->demb = carve(c, rmax * H);
    w->demb_in = carve(c, rmax * (dz + da));
    w->dh_prev = carve(c, rmax * dh);
    w->gru_dgx = carve(c, R * 3 * dh);
    w->gru_dgh = carve(c, R * 3 * dh);
    w->emb_dlin = carve(c, R * H);
    size_t scr = mlp_scratch_count(&m->embed, (int)rmax);
    scr = maxz(scr, mlp_scratch_count(&m->prior, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->obs_head, (int)RH));
    scr = maxz(scr, mlp_scratch_count(&m->rew_head, (int)RH));
    scr = maxz(scr, mlp_scratch_count(&m->cont_head, (int)RH));
    scr = maxz(scr, mlp_scratch_count(&m->actor, w->R));
    scr = maxz(scr, mlp_scratch_count(&m->value, w->R));
    w->mlp_scratch = carve(c, scr);
    w->dactor_raw = carve(c, R * 2 * da);
    w->dvalue = carve(c, R);
    w->os_dh = carve(c, D * Ro * dh);
    w->os_dz = carve(c, D * Ro * dz);
    w->os_dprior_raw = carve(c, Ro * 2 * dz);
    w->os_dmu = carve(c, Ro * dz);
    w->os_dstd = carve(c, Ro * dz);
}

elbo_ws *elbo_ws_new(const model_t *m, int B, int L)
{
    /* The main pass runs the embedding and the posterior as the layers model.c makes them (one
     * linear layer and its activation; a hidden layer and a linear output layer), see
     * elbo_evaluate. */
    if (B < 1 || L < 2 || m->embed.n_layers != 1 || m->embed.layer_norm || m->post.n_layers != 2 ||
        m->post.layer_norm || m->post.out_act != ACT_NONE)
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

/* The GRU cell's backward through its gates (core/layers.c's gru_backward without its products):
 * dgx, dgh (bt, 3hc), the gradients of Wx x + bx and of Wh h + bh, from dh (bt, hc) and the
 * forward's cache; dh_prev (bt, hc), when not NULL, is set to the path around the gates,
 * dh * u (the caller adds dgh Wh). */
ELBO_CLONES static void gru_gate_grads(float *dgx, float *dgh, float *dh_prev, const float *dh,
                                       const float *h_prev, const float *cache, int bt, int hc)
{
    int g = 3 * hc;
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
                dhp[j] = d[j] * u[j];
        }
    }
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
    const float *pw1 = params + m->off_post, *pw2 = pw1 + (size_t)H * dpi + H;
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
        /* The embedding (one linear layer and its activation, see elbo_ws_new) keeps its linear
         * output for the backward, which takes its weight gradient over all rows at once. */
        tensor_linear_forward(w->emb_lin + r0 * H, in, params + m->off_embed,
                              params + m->off_embed + (size_t)H * (dz + da), B, dz + da, H);
        act_forward(m->embed.out_act, w->emb + r0 * H, w->emb_lin + r0 * H, (size_t)B * H);
        gru_forward(w->h + r0 * dh, w->gru_cache + r0 * 4 * dh, w->gru_scratch, w->emb + r0 * H, hp,
                    params + m->off_gru, B, H, dh);
        float *pin = w->post_in + r0 * dpi;
        tensor_copy_cols(pin, dpi, w->h + r0 * dh, dh, B, dh);
        tensor_copy_cols(pin + dh, dpi, w->xn + r0 * dx, dx, B, dx);
        tensor_copy_cols(pin + dh + dx, dpi, w->rn + r0, 1, B, 1);
        /* The posterior's layers (as mlp_forward runs them) keep the hidden layer's linear output
         * and activation of every row: the backward takes the weight gradients over all rows. */
        tensor_linear_forward(w->post_lin + r0 * H, pin, pw1, pw1 + (size_t)H * dpi, B, dpi, H);
        act_forward(m->post.act, w->post_act + r0 * H, w->post_lin + r0 * H, (size_t)B * H);
        tensor_linear_forward(w->post_raw + r0 * 2 * dz, w->post_act + r0 * H, pw2,
                              pw2 + (size_t)2 * dz * H, B, H, 2 * dz);
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

    /* The heads' input [h, z] of every row; the heads run after the rollouts, on both. */
    concat2(w->hz, w->h, dh, w->z, dz, R);
    const int use_cont = parts->model && k->cont_weight > 0.0f;

    /* Overshooting: open-loop prior rollouts from posterior states. */
    double os_ll = 0.0;
    long n_os = 0;
    if (use_os) {
        int stride = D / 2 > 0 ? D / 2 : 1;
        for (int s = 0; s < w->n_starts; s++) {
            int t0 = s * stride;
            for (int bi = 0; bi < B; bi++) {
                size_t ro = (size_t)s * B + bi, row0 = (size_t)t0 * B + bi;
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
            if (j == 0) {
                /* The first step is the main pass's own transition: from the posterior state at
                 * t0 with the action taken into t0 + 1, as the main pass at t0 + 1 (which kept
                 * its state, as a live rollout's row there is no episode's first). Its h and
                 * prior are the main pass's rows, not computed again; the backward hands their
                 * gradient to those rows. (Dead rows get the same copy and stay unused.) */
                for (int ro = 0; ro < n; ro++) {
                    size_t row = (size_t)((ro / B) * stride + 1) * B + (size_t)(ro % B);
                    memcpy(w->os_h + (size_t)ro * dh, w->h + row * dh, sizeof(float) * dh);
                    memcpy(w->os_prior_raw + (size_t)ro * 2 * dz, w->prior_raw + row * 2 * dz,
                           sizeof(float) * 2 * dz);
                    memcpy(w->os_mu + (size_t)ro * dz, w->mu_p + row * dz, sizeof(float) * dz);
                    memcpy(w->os_std + (size_t)ro * dz, w->std_p + row * dz, sizeof(float) * dz);
                }
            } else {
                const float *hprev = w->os_h + (r0 - Ro) * dh, *zprev = w->os_z + (r0 - Ro) * dz;
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
            }
            gauss_sample(w->os_z + r0 * dz, w->os_mu + r0 * dz, w->os_std + r0 * dz,
                         w->eps_os + r0 * dz, (size_t)n * dz);
            concat2(w->os_hz + (size_t)w->os_off[j] * dhz, w->os_h + r0 * dh, dh, w->os_z + r0 * dz,
                    dz, n);
        }
    }

    /* Decoder and episode-end heads, over the main pass's rows and the rollouts' packed rows at
     * once (one product per layer instead of two). */
    const int RH = R + (use_os ? w->os_off[D] : 0);
    mlp_forward(&m->obs_head, w->obs_out, w->obs_cache, w->hz, params + m->off_obs, RH);
    mlp_forward(&m->rew_head, w->rew_out, w->rew_cache, w->hz, params + m->off_rew, RH);
    if (use_cont)
        mlp_forward(&m->cont_head, w->cont_out, w->cont_cache, w->hz, params + m->off_cont, RH);
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
    if (use_cont) {
        tensor_zero(w->dcont, (size_t)R);
        float g = -k->cont_weight * inv_valid;
        for (int i = 0; i < R; i++)
            if (b->mask[i])
                cont_ll += cont_loglik(w->cont_out[i], !b->terminal[i], w->dcont + i, g);
    }

    /* The rollouts' likelihoods. */
    if (use_os) {
        int N = w->os_off[D];
        if (use_cont)
            tensor_zero(w->os_dcont, (size_t)N);
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

    /* Heads, over the main pass's and the rollouts' rows. */
    tensor_zero(w->dhz, (size_t)RH * dhz);
    mlp_backward(&m->obs_head, w->dhz, grads + m->off_obs, w->dobs, w->hz, w->obs_out,
                 params + m->off_obs, w->obs_cache, scr, RH);
    mlp_backward(&m->rew_head, w->dhz, grads + m->off_rew, w->drew, w->hz, w->rew_out,
                 params + m->off_rew, w->rew_cache, scr, RH);
    if (use_cont)
        mlp_backward(&m->cont_head, w->dhz, grads + m->off_cont, w->dcont, w->hz, w->cont_out,
                     params + m->off_cont, w->cont_cache, scr, RH);
    tensor_copy_cols(w->dh, dh, w->dhz, dhz, R, dh);
    tensor_copy_cols(w->dz, dz, w->dhz + dh, dhz, R, dz);

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

    /* Overshooting rollouts, backwards. Their first step is the main pass's transition into
     * t0 + 1: its gradient (of h and of the prior's output) joins the main pass's rows there,
     * before the prior's backward over all rows and the recurrence below, which carry it on. */
    if (use_os) {
        size_t ec = mlp_cache_count(&m->embed, Ro), pc = mlp_cache_count(&m->prior, Ro);
        for (int j = 0; j < D; j++) {
            /* Unpack the heads' gradient into the step's live rows [0, n): the rows beyond are
             * never read (step j + 1 adds only into rows below its own n). */
            size_t r0 = (size_t)j * Ro, p0 = (size_t)w->os_off[j];
            int n = w->os_n[j];
            tensor_copy_cols(w->os_dh + r0 * dh, dh, w->os_dhz + p0 * dhz, dhz, n, dh);
            tensor_copy_cols(w->os_dz + r0 * dz, dz, w->os_dhz + p0 * dhz + dh, dhz, n, dz);
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
            if (j == 0) {
                /* Live rows only: a dead row's gradient is zero. */
                for (int ro = 0; ro < n; ro++) {
                    int row = w->os_row[ro];
                    if (row < 0)
                        continue;
                    tensor_add(w->dprior_raw + (size_t)row * 2 * dz,
                               w->os_dprior_raw + (size_t)ro * 2 * dz, 2 * (size_t)dz);
                    tensor_add(w->dh + (size_t)row * dh, dhj + (size_t)ro * dh, (size_t)dh);
                }
                break;
            }
            mlp_backward(&m->prior, dhj, grads + m->off_prior, w->os_dprior_raw, w->os_h + r0 * dh,
                         w->os_prior_raw + r0 * 2 * dz, params + m->off_prior,
                         w->os_prior_cache + (size_t)j * pc, scr, n);
            /* GRU: into the embedding and the previous h (rows [0, n) of step j - 1 are live). */
            tensor_zero(w->demb, (size_t)n * H);
            gru_backward(w->demb, w->os_dh + (r0 - Ro) * dh, grads + m->off_gru, dhj,
                         w->os_emb + r0 * H, w->os_h + (r0 - Ro) * dh, params + m->off_gru,
                         w->os_gru_cache + r0 * 4 * dh, w->gru_scratch, n, H, dh);
            tensor_zero(w->demb_in, (size_t)n * (dz + da));
            mlp_backward(&m->embed, w->demb_in, grads + m->off_embed, w->demb,
                         w->os_in + r0 * (dz + da), w->os_emb + r0 * H, params + m->off_embed,
                         w->os_emb_cache + (size_t)j * ec, scr, n);
            tensor_add_cols(w->os_dz + (r0 - Ro) * dz, dz, w->demb_in, dz + da, n, dz);
        }
    }
    mlp_backward(&m->prior, w->dh, grads + m->off_prior, w->dprior_raw, w->h, w->prior_raw,
                 params + m->off_prior, w->prior_cache, scr, R);

    /* Main recurrence, backwards through time. The step carries the gradient back only (through
     * the posterior, the GRU's gates and the embedding); the GRU's and the embedding's weight
     * gradients are one product over all R rows after the loop, not L products over B rows. */
    const int g3 = 3 * dh, de = dz + da;
    const float *wx = params + m->off_gru, *wh = wx + (size_t)g3 * H;
    const float *we = params + m->off_embed;
    for (int t = L - 1; t >= 0; t--) {
        size_t r0 = (size_t)t * B;
        /* z_t = mu_q + std_q * eps: its gradient goes to the posterior. */
        gauss_sample_backward(w->dmu_q + r0 * dz, w->dstd_q + r0 * dz, w->dz + r0 * dz,
                              w->eps_q + r0 * dz, (size_t)B * dz);
        join_raw_grad(w->dpost_raw + r0 * 2 * dz, w->dmu_q + r0 * dz, w->dstd_q + r0 * dz,
                      w->post_raw + r0 * 2 * dz, (size_t)B, dz);
        /* Posterior: through its output layer and activation into h (of its input [h, x, r], only
         * h's columns are needed), straight into dh. */
        float *pdlin = w->post_dlin + r0 * H;
        tensor_gemm(w->dpost_act, w->dpost_raw + r0 * 2 * dz, pw2, B, H, 2 * dz, 0, 0, 1.0f, 0.0f,
                    0, 0, 0);
        tensor_zero(pdlin, (size_t)B * H);
        act_backward(m->post.act, pdlin, w->dpost_act, w->post_lin + r0 * H, w->post_act + r0 * H,
                     (size_t)B * H);
        tensor_gemm(w->dh + r0 * dh, pdlin, pw1, B, dh, H, 0, 0, 1.0f, 1.0f, 0, dpi, 0);
        /* GRU and embedding: h_prev and z_prev are zero at t = 0 (no gradient to pass on). */
        float *dgx = w->gru_dgx + r0 * g3, *dgh = w->gru_dgh + r0 * g3;
        float *dlin = w->emb_dlin + r0 * H;
        gru_gate_grads(dgx, dgh, t > 0 ? w->dh_prev : NULL, w->dh + r0 * dh, w->h_prev + r0 * dh,
                       w->gru_cache + r0 * 4 * dh, B, dh);
        tensor_gemm(w->demb, dgx, wx, B, H, g3, 0, 0, 1.0f, 0.0f, 0, 0, 0);
        tensor_zero(dlin, (size_t)B * H);
        act_backward(m->embed.out_act, dlin, w->demb, w->emb_lin + r0 * H, w->emb + r0 * H,
                     (size_t)B * H);
        if (t == 0)
            continue;
        tensor_linear_backward_input(w->dh_prev, dgh, wh, B, dh, g3);
        /* Of the embedding's input [z, a], only z's columns are needed. */
        tensor_gemm(w->demb_in, dlin, we, B, dz, H, 0, 0, 1.0f, 0.0f, 0, de, 0);
        for (int bi = 0; bi < B; bi++) {
            size_t row = r0 + bi;
            if (b->first[row])
                continue;
            tensor_add(w->dh + (row - B) * dh, w->dh_prev + (size_t)bi * dh, (size_t)dh);
            tensor_add(w->dz + (row - B) * dz, w->demb_in + (size_t)bi * dz, (size_t)dz);
        }
    }
    /* Weight gradients in the layouts of layers.h: GRU wx, wh, bx, bh; embedding and posterior
     * layers w, b. */
    float *dwx = grads + m->off_gru, *dwh = dwx + (size_t)g3 * H;
    float *dbx = dwh + (size_t)g3 * dh, *dbh = dbx + g3;
    tensor_linear_backward_weight(dwx, dbx, w->gru_dgx, w->emb, R, H, g3);
    tensor_linear_backward_weight(dwh, dbh, w->gru_dgh, w->h_prev, R, dh, g3);
    float *dwe = grads + m->off_embed;
    tensor_linear_backward_weight(dwe, dwe + (size_t)H * de, w->emb_dlin, w->emb_in, R, de, H);
    float *dpw1 = grads + m->off_post, *dpw2 = dpw1 + (size_t)H * dpi + H;
    tensor_linear_backward_weight(dpw1, dpw1 + (size_t)H * dpi, w->post_dlin, w->post_in, R, dpi,
                                  H);
    tensor_linear_backward_weight(dpw2, dpw2 + (size_t)2 * dz * H, w->dpost_raw, w->post_act, R, H,
                                  2 * dz);
    return 0;
}
