/* planner: MPPI / CEM over the latent model with the action prior (see planner.h). */
#include "planner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist.h"
#include "params.h"
#include "tensor.h"
#include "vmath.h"

#define PRED_PARTICLES 32

void planner_config_defaults(planner_config *p)
{
    memset(p, 0, sizeof *p);
    p->method = PLAN_MPPI;
    p->horizon = 25;
    p->population = 128;
    p->iterations = 2;
    p->elites = 16;
    p->policy_fraction = 0.1f;
    p->temperature = 1.0f;
    p->beta_info = 0.1f;
    p->beta_action = 0.01f;
    p->discount = 0.99f;
    p->init_std = 1.0f;
    p->min_std = 0.05f;
    p->momentum = 0.1f;
    p->use_value = 1;
    p->sample_states = 1;
    p->warm_start = 1;
    p->init_from_prior = 1;
}

#define CHECK(cond, field, ...)                            \
    do {                                                   \
        if (!(cond)) {                                     \
            snprintf(err, errlen, field ": " __VA_ARGS__); \
            return -1;                                     \
        }                                                  \
    } while (0)

int planner_config_validate(const planner_config *p, char *err, size_t errlen)
{
    CHECK(p->method == PLAN_MPPI || p->method == PLAN_CEM, "method", "must be mppi or cem");
    CHECK(p->horizon >= 1 && p->horizon <= 200, "horizon", "must be between 1 and 200");
    CHECK(p->population >= 2 && p->population <= 20000, "population",
          "must be between 2 and 20000");
    CHECK(p->iterations >= 1 && p->iterations <= 100, "iterations", "must be between 1 and 100");
    CHECK(p->elites >= 1 && p->elites <= p->population, "elites",
          "must be between 1 and the population");
    CHECK(p->policy_fraction >= 0 && p->policy_fraction <= 1, "policy_fraction",
          "must be in [0, 1]");
    CHECK(p->temperature > 0 && p->temperature <= 1e4, "temperature", "must be in (0, 1e4]");
    CHECK(p->beta_info >= 0 && p->beta_info <= 100, "beta_info", "must be in [0, 100]");
    CHECK(p->beta_action >= 0 && p->beta_action <= 100, "beta_action", "must be in [0, 100]");
    CHECK(p->discount > 0 && p->discount <= 1, "discount", "must be in (0, 1]");
    CHECK(p->init_std > 0 && p->init_std <= 10, "init_std", "must be in (0, 10]");
    CHECK(p->min_std > 0 && p->min_std <= p->init_std, "min_std", "must be in (0, init_std]");
    CHECK(p->momentum >= 0 && p->momentum < 1, "momentum", "must be in [0, 1)");
    return 0;
}

plan_state *plan_state_new(int horizon, int act_dim)
{
    plan_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->horizon = horizon;
    s->act_dim = act_dim;
    s->u_mean = calloc((size_t)horizon * act_dim, sizeof(float));
    s->u_std = calloc((size_t)horizon * act_dim, sizeof(float));
    if (!s->u_mean || !s->u_std) {
        plan_state_free(s);
        return NULL;
    }
    return s;
}

void plan_state_free(plan_state *s)
{
    if (!s)
        return;
    free(s->u_mean);
    free(s->u_std);
    free(s);
}

plan_result *plan_result_new(int horizon, int act_dim, int obs_dim)
{
    plan_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t ha = (size_t)horizon * act_dim, hx = (size_t)horizon * obs_dim;
    r->horizon = horizon;
    r->act_dim = act_dim;
    r->obs_dim = obs_dim;
    r->predict = 1;
    r->mean = calloc(ha, sizeof(float));
    r->std = calloc(ha, sizeof(float));
    r->u_mean = calloc(ha, sizeof(float));
    r->u_std = calloc(ha, sizeof(float));
    r->pred_reward = calloc((size_t)horizon, sizeof(float));
    r->pred_reward_std = calloc((size_t)horizon, sizeof(float));
    r->pred_obs = calloc(hx, sizeof(float));
    r->pred_obs_std = calloc(hx, sizeof(float));
    if (!r->mean || !r->std || !r->u_mean || !r->u_std || !r->pred_reward || !r->pred_reward_std ||
        !r->pred_obs || !r->pred_obs_std) {
        plan_result_free(r);
        return NULL;
    }
    return r;
}

void plan_result_free(plan_result *r)
{
    if (!r)
        return;
    free(r->mean);
    free(r->std);
    free(r->u_mean);
    free(r->u_std);
    free(r->pred_reward);
    free(r->pred_reward_std);
    free(r->pred_obs);
    free(r->pred_obs_std);
    free(r);
}

/* ---- the search, on any world ---------------------------------------------------------- */

struct plan_search {
    int N, H, da;
    float *block;
    float *u;                         /* (H, N, da) */
    float *a, *a_mu, *a_std, *eps_u;  /* (N, da) */
    float *rew, *info, *val;          /* (N) */
    float *q_mean, *q_std, *pri_mean; /* (H, da) */
    double *J, *w;                    /* (N) */
    int *order;                       /* (N) */
};

plan_search *plan_search_new(const planner_config *p, int act_dim)
{
    plan_search *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t N = (size_t)p->population, H = (size_t)p->horizon, da = (size_t)act_dim;
    s->N = p->population;
    s->H = p->horizon;
    s->da = act_dim;
    /* Per-particle buffers also serve the PRED_PARTICLES rows of the final prediction. */
    size_t R = N > PRED_PARTICLES ? N : PRED_PARTICLES;
    size_t sizes[] = {H * N * da, R * da, R * da, R * da, R * da, R, R, R, H * da, H * da, H * da};
    float **ptrs[] = {&s->u,    &s->a,   &s->a_mu,   &s->a_std, &s->eps_u,   &s->rew,
                      &s->info, &s->val, &s->q_mean, &s->q_std, &s->pri_mean};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += (sizes[i] + 15) & ~(size_t)15;
    s->block = params_alloc(total);
    s->J = calloc(N, sizeof(double));
    s->w = calloc(N, sizeof(double));
    s->order = calloc(N, sizeof(int));
    if (!s->block || !s->J || !s->w || !s->order) {
        plan_search_free(s);
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *ptrs[i] = s->block + off;
        off += (sizes[i] + 15) & ~(size_t)15;
    }
    return s;
}

void plan_search_free(plan_search *s)
{
    if (!s)
        return;
    params_free(s->block);
    free(s->J);
    free(s->w);
    free(s->order);
    free(s);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* sin and cos of 2 pi v for v in [-1/2, 1/2): reflected into [-pi/2, pi/2], then Taylor series
 * to the x^11 and x^12 terms (errors below 6e-8 and 7e-9). Plain arithmetic and selects, so the
 * loops calling it vectorise. */
static inline void sincos_2pi(float v, float *s, float *c)
{
    float a = v < 0.0f ? -v : v;
    int flip = a > 0.25f;
    float vr = flip ? (v < 0.0f ? -0.5f : 0.5f) - v : v;
    float t = 6.28318530717958648f * vr, t2 = t * t;
    float ps = -2.50521084e-8f;
    ps = ps * t2 + 2.75573192e-6f;
    ps = ps * t2 - 1.98412698e-4f;
    ps = ps * t2 + 8.33333333e-3f;
    ps = ps * t2 - 1.66666667e-1f;
    float pc = 2.08767570e-9f;
    pc = pc * t2 - 2.75573192e-7f;
    pc = pc * t2 + 2.48015873e-5f;
    pc = pc * t2 - 1.38888889e-3f;
    pc = pc * t2 + 4.16666667e-2f;
    pc = pc * t2 - 0.5f;
    *s = t + t * t2 * ps;
    float cr = 1.0f + t2 * pc;
    *c = flip ? -cr : cr;
}

/* n standard normals: Box-Muller on pairs of 24-bit uniforms, in float, in passes that vectorise
 * (x[i] and x[i + n/2] are a pair). rng_fill_normal draws each pair with a double log, sqrt and
 * sincos, which took about 8% of a default plan; this takes a fraction of that. Deterministic for
 * a given rng state (its stream differs from rng_fill_normal's). */
static void fill_normal(rng_t *rng, float *x, size_t n)
{
    size_t h = n / 2;
    float *rad = x, *ang = x + h;
    for (size_t i = 0; i < h; i++) {
        uint64_t b = rng_next(rng);
        rad[i] = ((float)(uint32_t)(b >> 40) + 0.5f) * 0x1p-24f;            /* (0, 1) */
        ang[i] = (float)(uint32_t)((b >> 16) & 0xffffff) * 0x1p-24f - 0.5f; /* [-1/2, 1/2) */
    }
    /* sqrt(-2 log u) as exp(log(-2 log u) / 2): sqrtf itself does not vectorise (errno). */
    vm_log(rad, rad, h);
#pragma omp simd
    for (size_t i = 0; i < h; i++)
        rad[i] = -2.0f * rad[i];
    vm_log(rad, rad, h);
#pragma omp simd
    for (size_t i = 0; i < h; i++)
        rad[i] = 0.5f * rad[i];
    vm_exp(rad, rad, h);
#pragma omp simd
    for (size_t i = 0; i < h; i++) {
        float sn, cs;
        sincos_2pi(ang[i], &sn, &cs);
        float r = rad[i];
        rad[i] = r * cs;
        ang[i] = r * sn;
    }
    if (n & 1)
        x[n - 1] = rng_normal(rng);
}

/* Sum over da of log N(u; m1, s1) - log N(u; m2, s2). */
static double log_ratio(const float *u, const float *m1, const float *s1, const float *m2,
                        const float *s2, int da)
{
    return gauss_logpdf(u, m1, s1, (size_t)da) - gauss_logpdf(u, m2, s2, (size_t)da);
}

/* One rollout of all N particles: draws the actions (row 0: q's mean; rows 1..n_policy: the
 * action prior; the rest: q), rolls the world and scores J. */
static void rollout_score(const planner_config *p, const plan_world *w, plan_search *s,
                          int n_policy, rng_t *rng)
{
    int N = p->population, H = p->horizon, da = s->da;
    w->start(w->ctx, N);
    for (int n = 0; n < N; n++)
        s->J[n] = 0.0;
    double disc = 1.0;
    int want_prior = n_policy > 0 || p->beta_action > 0.0f;
    for (int t = 0; t < H; t++) {
        const float *qm = s->q_mean + (size_t)t * da, *qs = s->q_std + (size_t)t * da;
        float *u = s->u + (size_t)t * N * da;
        if (want_prior)
            w->prior(w->ctx, N, s->a_mu, s->a_std);
        fill_normal(rng, s->eps_u, (size_t)N * da);
        for (int n = 0; n < N; n++) {
            float *un = u + (size_t)n * da;
            const float *e = s->eps_u + (size_t)n * da;
            const float *pm = s->a_mu + (size_t)n * da, *ps = s->a_std + (size_t)n * da;
            for (int j = 0; j < da; j++) {
                if (n == 0)
                    un[j] = qm[j]; /* the current mean is always scored */
                else if (n <= n_policy)
                    un[j] = pm[j] + ps[j] * e[j];
                else
                    un[j] = qm[j] + qs[j] * e[j];
            }
            if (p->beta_action > 0.0f)
                s->J[n] -= p->beta_action * log_ratio(un, qm, qs, pm, ps, da);
        }
        vm_tanh(s->a, u, (size_t)N * da);
        w->step(w->ctx, N, s->a, s->rew, p->beta_info > 0.0f ? s->info : NULL, rng);
        for (int n = 0; n < N; n++)
            s->J[n] += disc * (s->rew[n] + (p->beta_info > 0.0f ? p->beta_info * s->info[n] : 0));
        disc *= p->discount;
    }
    if (p->use_value && w->value) {
        w->value(w->ctx, N, s->val);
        for (int n = 0; n < N; n++)
            s->J[n] += disc * s->val[n];
    }
}

/* Indices of J sorted by decreasing score (ties by index): Shell sort, no qsort_r needed. */
static void sort_by_score(int *order, int n, const double *J)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            int v = order[i], j = i;
            while (j >= gap && (J[order[j - gap]] < J[v] ||
                                (J[order[j - gap]] == J[v] && order[j - gap] > v))) {
                order[j] = order[j - gap];
                j -= gap;
            }
            order[j] = v;
        }
}

/* Refits q from the scored samples: exponentiated weights (MPPI) or elites (CEM). */
static void refit(const planner_config *p, plan_search *s)
{
    int N = p->population, H = p->horizon, da = s->da;
    double *w = s->w;
    for (int n = 0; n < N; n++)
        w[n] = 0.0;
    if (p->method == PLAN_CEM) {
        sort_by_score(s->order, N, s->J);
        for (int i = 0; i < p->elites; i++)
            w[s->order[i]] = 1.0 / p->elites;
    } else {
        double mx = -INFINITY;
        for (int n = 0; n < N; n++)
            mx = s->J[n] > mx ? s->J[n] : mx;
        double sum = 0.0;
        for (int n = 0; n < N; n++) {
            w[n] = exp((s->J[n] - mx) / p->temperature);
            sum += w[n];
        }
        for (int n = 0; n < N; n++)
            w[n] /= sum;
    }
    for (int t = 0; t < H; t++)
        for (int j = 0; j < da; j++) {
            double mean = 0.0, var = 0.0;
            const float *u = s->u + (size_t)t * N * da + j;
            for (int n = 0; n < N; n++)
                mean += w[n] * u[(size_t)n * da];
            for (int n = 0; n < N; n++) {
                double d = u[(size_t)n * da] - mean;
                var += w[n] * d * d;
            }
            size_t k = (size_t)t * da + j;
            float sd = p->momentum * s->q_std[k] + (1.0f - p->momentum) * (float)sqrt(var);
            s->q_mean[k] = p->momentum * s->q_mean[k] + (1.0f - p->momentum) * (float)mean;
            s->q_std[k] = sd < p->min_std ? p->min_std : sd;
        }
}

/* The action prior's mean rolled from the start with the world's mean transitions: the nominal
 * sequence that initialises q. */
static void prior_rollout(const planner_config *p, const plan_world *w, plan_search *s)
{
    int da = s->da;
    w->start(w->ctx, 1);
    for (int t = 0; t < p->horizon; t++) {
        w->prior(w->ctx, 1, s->a_mu, s->a_std);
        memcpy(s->pri_mean + (size_t)t * da, s->a_mu, sizeof(float) * (size_t)da);
        vm_tanh(s->a, s->a_mu, (size_t)da);
        w->step(w->ctx, 1, s->a, s->rew, NULL, NULL);
    }
}

int planner_search(const planner_config *p, const plan_world *w, plan_search *s, plan_state *prev,
                   double deadline_ms, int explore, rng_t *rng, const float *act_low,
                   const float *act_high, plan_result *out)
{
    int H = p->horizon, da = w->act_dim;
    if (s->H != H || s->N != p->population || s->da != da || out->horizon != H ||
        out->act_dim != da || (prev && (prev->horizon != H || prev->act_dim != da)))
        return -1;
    double t0 = now_ms();
    if (p->init_from_prior)
        prior_rollout(p, w, s);
    int warm = p->warm_start && prev && prev->valid;
    for (int t = 0; t < H; t++)
        for (int j = 0; j < da; j++) {
            size_t k = (size_t)t * da + j;
            if (warm && t + 1 < H) {
                s->q_mean[k] = prev->u_mean[k + da];
                /* Only the mean carries over: a std that collapsed on the last plan would keep
                 * the search from leaving it (PETS and TD-MPC reset it too). */
                s->q_std[k] = p->init_std;
            } else {
                s->q_mean[k] = p->init_from_prior ? s->pri_mean[k] : 0.0f;
                s->q_std[k] = p->init_std;
            }
        }
    int n_policy = (int)lroundf(p->policy_fraction * (float)(p->population - 1));
    double best = -INFINITY, per_iter = 0.0;
    int it = 0;
    out->degraded = 0;
    for (; it < p->iterations; it++) {
        double now = now_ms();
        /* Stop when the next iteration would not fit (the slowest so far as the estimate). */
        if (deadline_ms > 0 && (now - t0) + per_iter > deadline_ms) {
            out->degraded = 1;
            break;
        }
        rollout_score(p, w, s, n_policy, rng);
        for (int n = 0; n < p->population; n++)
            best = s->J[n] > best ? s->J[n] : best;
        refit(p, s);
        double dt = now_ms() - now;
        per_iter = dt > per_iter ? dt : per_iter;
    }
    out->iterations = it;
    out->objective = best;
    for (int t = 0; t < H; t++)
        for (int j = 0; j < da; j++) {
            size_t k = (size_t)t * da + j;
            float mid = 0.5f * (act_high[j] + act_low[j]);
            float half = 0.5f * (act_high[j] - act_low[j]);
            float th = tanhf(s->q_mean[k]);
            out->u_mean[k] = s->q_mean[k];
            out->u_std[k] = s->q_std[k];
            out->mean[k] = mid + half * th;
            out->std[k] = half * (1.0f - th * th) * s->q_std[k];
        }
    for (int j = 0; j < da; j++) {
        float u = s->q_mean[j];
        if (explore)
            u += s->q_std[j] * rng_normal(rng);
        out->u0_mean[j] = s->q_mean[j];
        out->u0_std[j] = s->q_std[j];
        float mid = 0.5f * (act_high[j] + act_low[j]);
        float half = 0.5f * (act_high[j] - act_low[j]);
        out->action[j] = mid + half * tanhf(u);
    }
    if (prev) {
        memcpy(prev->u_mean, s->q_mean, sizeof(float) * (size_t)H * da);
        memcpy(prev->u_std, s->q_std, sizeof(float) * (size_t)H * da);
        prev->valid = 1;
    }
    out->ms = now_ms() - t0;
    return 0;
}

/* ---- the latent model as a world ---------------------------------------------------------- */

struct planner_ws {
    const model_t *m;
    const float *params;
    const model_norm *norm;
    const float *h0, *z0;
    int N, dh, dz, dx;
    int sample_states;
    model_ws *mws;
    plan_search *search;
    float *block;
    float *h, *h2, *z, *zm, *mu_p, *std_p, *eps; /* (N, dh|dz) */
    float *obs, *obs2, *rew2, *pred_tmp;         /* (N, dx), (N, dx), (N), (N) */
    float *alive, *cont;                         /* (N): P(episode still going), P(goes on) */
};

planner_ws *planner_ws_new(const model_t *m, const planner_config *p)
{
    planner_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    const model_config *c = &m->cfg;
    int N = p->population < PRED_PARTICLES ? PRED_PARTICLES : p->population;
    ws->m = m;
    ws->N = N;
    ws->dh = c->h_dim;
    ws->dz = c->z_dim;
    ws->dx = c->obs_dim;
    size_t n = (size_t)N, dh = (size_t)c->h_dim, dz = (size_t)c->z_dim, dx = (size_t)c->obs_dim;
    size_t sizes[] = {n * dh, n * dh, n * dz, n * dz, n * dz, n * dz, n * dz,
                      n * dx, n * dx, n,      n,      n,      n};
    float **ptrs[] = {&ws->h,        &ws->h2,    &ws->z,   &ws->zm,   &ws->mu_p,
                      &ws->std_p,    &ws->eps,   &ws->obs, &ws->obs2, &ws->rew2,
                      &ws->pred_tmp, &ws->alive, &ws->cont};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += (sizes[i] + 15) & ~(size_t)15;
    ws->block = params_alloc(total);
    ws->mws = model_ws_new(m, N);
    ws->search = plan_search_new(p, c->act_dim);
    if (!ws->block || !ws->mws || !ws->search) {
        planner_ws_free(ws);
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *ptrs[i] = ws->block + off;
        off += (sizes[i] + 15) & ~(size_t)15;
    }
    return ws;
}

void planner_ws_free(planner_ws *ws)
{
    if (!ws)
        return;
    model_ws_free(ws->mws);
    plan_search_free(ws->search);
    params_free(ws->block);
    free(ws);
}

model_ws *planner_ws_model(planner_ws *ws)
{
    return ws->mws;
}

static void mw_start(void *ctx, int rows)
{
    planner_ws *ws = ctx;
    for (int n = 0; n < rows; n++) {
        ws->alive[n] = 1.0f;
        memcpy(ws->h + (size_t)n * ws->dh, ws->h0, sizeof(float) * (size_t)ws->dh);
        memcpy(ws->z + (size_t)n * ws->dz, ws->z0, sizeof(float) * (size_t)ws->dz);
    }
}

static void mw_prior(void *ctx, int rows, float *mu, float *std)
{
    planner_ws *ws = ctx;
    model_actor(ws->m, ws->params, ws->mws, mu, std, ws->h, ws->z, rows);
}

/* Gaussian-channel estimate of I(x, r; z | h) per row from decoder means at z+ and z-. */
static void info_bonus(const model_config *c, const float *obs, const float *obs2, const float *rew,
                       const float *rew2, float *out, int rows)
{
    float ivx = 1.0f / (c->obs_std * c->obs_std), ivr = 1.0f / (c->reward_std * c->reward_std);
    int dx = c->obs_dim;
    for (int n = 0; n < rows; n++) {
        double s = 0.0;
        for (int d = 0; d < dx; d++) {
            float half = 0.5f * (obs[(size_t)n * dx + d] - obs2[(size_t)n * dx + d]);
            s += log1p((double)half * half * ivx);
        }
        float half = 0.5f * (rew[n] - rew2[n]);
        s += log1p((double)half * half * ivr);
        out[n] = (float)(0.5 * s);
    }
}

/* Transition, then z from the prior (a sample with rng, the mean without), then the decoder. */
static void mw_step(void *ctx, int rows, const float *a, float *reward, float *info, rng_t *rng)
{
    planner_ws *ws = ctx;
    const model_t *m = ws->m;
    model_transition(m, ws->params, ws->mws, ws->h2, ws->mu_p, ws->std_p, ws->h, ws->z, a, rows);
    float *t = ws->h;
    ws->h = ws->h2;
    ws->h2 = t;
    size_t nz = (size_t)rows * ws->dz;
    if (rng)
        fill_normal(rng, ws->eps, nz);
    if (rng && ws->sample_states)
        gauss_sample(ws->z, ws->mu_p, ws->std_p, ws->eps, nz);
    else
        memcpy(ws->z, ws->mu_p, sizeof(float) * nz);
    if (!info || !rng) {
        model_decode(m, ws->params, ws->mws, NULL, reward, ws->h, ws->z, rows);
        if (info)
            memset(info, 0, sizeof(float) * (size_t)rows);
    } else {
        model_decode_keep(m, ws->params, ws->mws, ws->obs, reward, ws->h, ws->z, rows);
        const float *rew_plus = reward;
        /* The pair z+ = mu + std eps, z- = mu - std eps shares h: the second decode is the
         * first shifted by z- - z+ (only z's columns of the first layers are multiplied). */
        if (!ws->sample_states) {
            /* The particle follows the mean; the bonus still needs an antithetic pair:
             * z+ = z + std eps, z- = z - std eps. */
            for (size_t i = 0; i < nz; i++)
                ws->zm[i] = ws->std_p[i] * ws->eps[i];
            model_decode_shifted(m, ws->params, ws->mws, ws->obs, ws->pred_tmp, ws->zm, rows);
            rew_plus = ws->pred_tmp;
            for (size_t i = 0; i < nz; i++)
                ws->zm[i] = -ws->zm[i];
            model_decode_shifted(m, ws->params, ws->mws, ws->obs2, ws->rew2, ws->zm, rows);
        } else {
            for (size_t i = 0; i < nz; i++)
                ws->zm[i] = -2.0f * ws->std_p[i] * ws->eps[i];
            model_decode_shifted(m, ws->params, ws->mws, ws->obs2, ws->rew2, ws->zm, rows);
        }
        info_bonus(&m->cfg, ws->obs, ws->obs2, rew_plus, ws->rew2, info, rows);
    }
    /* The episode may end: what arrives at this state counts with the probability that the
     * episode was still going; after it, with the probability that it goes on. */
    if (m->cfg.cont_weight > 0.0f) {
        model_continue(m, ws->params, ws->mws, ws->cont, ws->h, ws->z, rows);
        for (int n = 0; n < rows; n++) {
            reward[n] *= ws->alive[n];
            if (info)
                info[n] *= ws->alive[n];
            ws->alive[n] *= ws->cont[n];
        }
    }
}

static void mw_value(void *ctx, int rows, float *v)
{
    planner_ws *ws = ctx;
    model_value(ws->m, ws->params, ws->mws, v, ws->h, ws->z, rows);
    for (int n = 0; n < rows; n++)
        v[n] *= ws->alive[n];
}

/* Predictions of the final mean plan over prior samples, and its terms. */
static void predict(const planner_config *p, planner_ws *ws, rng_t *rng, plan_result *out)
{
    const model_t *m = ws->m;
    const model_config *c = &m->cfg;
    const model_norm *norm = ws->norm;
    plan_search *s = ws->search;
    int P = PRED_PARTICLES, H = p->horizon, da = c->act_dim, dx = c->obs_dim;
    float rs = norm_reward_scale(norm);
    float *a = s->a, *rew = s->rew, *info = s->info; /* N >= P rows each */
    float *amu = s->a_mu, *asd = s->a_std;
    mw_start(ws, P);
    double disc = 1.0, ret = 0.0, ib = 0.0, lr = 0.0;
    for (int t = 0; t < H; t++) {
        const float *qm = s->q_mean + (size_t)t * da, *qs = s->q_std + (size_t)t * da;
        model_actor(m, ws->params, ws->mws, amu, asd, ws->h, ws->z, P);
        for (int n = 0; n < P; n++) {
            lr += gauss_kl(qm, qs, amu + (size_t)n * da, asd + (size_t)n * da, (size_t)da) / P;
            for (int j = 0; j < da; j++)
                a[(size_t)n * da + j] = tanhf(qm[j]);
        }
        mw_step(ws, P, a, rew, info, rng);
        double rsum = 0.0, rsq = 0.0, isum = 0.0;
        float xo[MODEL_MAX_OBS];
        double xs[MODEL_MAX_OBS] = {0}, xq[MODEL_MAX_OBS] = {0};
        for (int n = 0; n < P; n++) {
            double r = norm_reward_inverse(norm, rew[n]);
            rsum += r;
            rsq += r * r;
            isum += info[n];
            norm_obs_inverse(norm, xo, ws->obs + (size_t)n * dx, dx);
            for (int d = 0; d < dx; d++) {
                xs[d] += xo[d];
                xq[d] += (double)xo[d] * xo[d];
            }
        }
        double rm = rsum / P;
        out->pred_reward[t] = (float)rm;
        out->pred_reward_std[t] = (float)sqrt(fmax(rsq / P - rm * rm, 0.0));
        for (int d = 0; d < dx; d++) {
            double xm = xs[d] / P;
            out->pred_obs[(size_t)t * dx + d] = (float)xm;
            out->pred_obs_std[(size_t)t * dx + d] = (float)sqrt(fmax(xq[d] / P - xm * xm, 0.0));
        }
        ret += disc * rm;
        ib += disc * isum / P;
        disc *= p->discount;
    }
    out->expected_return = ret;
    out->info_bonus = ib;
    out->action_logratio = lr;
    out->terminal_value = 0.0;
    if (p->use_value && c->value_weight > 0.0f) {
        mw_value(ws, P, s->val);
        double v = 0.0;
        for (int n = 0; n < P; n++)
            v += s->val[n];
        out->terminal_value = disc * (v / P) * rs;
    }
}

int planner_plan(const model_t *m, const planner_config *p, const float *params,
                 const model_norm *norm, planner_ws *ws, const float *h, const float *z,
                 plan_state *prev, double deadline_ms, int explore, rng_t *rng, plan_result *out)
{
    if (ws->m != m || out->obs_dim != m->cfg.obs_dim)
        return -1;
    ws->params = params;
    ws->norm = norm;
    ws->h0 = h;
    ws->z0 = z;
    ws->sample_states = p->sample_states;
    plan_world w = {ws,       m->cfg.act_dim, mw_start,
                    mw_prior, mw_step,        m->cfg.value_weight > 0.0f ? mw_value : NULL};
    double t0 = now_ms();
    int rc = planner_search(p, &w, ws->search, prev, deadline_ms, explore, rng, m->cfg.act_low,
                            m->cfg.act_high, out);
    if (rc)
        return rc;
    if (out->predict)
        predict(p, ws, rng, out);
    out->ms = now_ms() - t0;
    return 0;
}

void planner_policy(const model_t *m, const float *params, planner_ws *ws, const float *h,
                    const float *z, int explore, rng_t *rng, float *action, float *u_mean,
                    float *u_std)
{
    const model_config *c = &m->cfg;
    int da = c->act_dim;
    float mu[MODEL_MAX_ACT], sd[MODEL_MAX_ACT];
    model_actor(m, params, ws->mws, mu, sd, h, z, 1);
    for (int j = 0; j < da; j++) {
        float u = mu[j];
        if (explore)
            u += sd[j] * rng_normal(rng);
        float mid = 0.5f * (c->act_high[j] + c->act_low[j]);
        float half = 0.5f * (c->act_high[j] - c->act_low[j]);
        action[j] = mid + half * tanhf(u);
        if (u_mean)
            u_mean[j] = mu[j];
        if (u_std)
            u_std[j] = sd[j];
    }
}
