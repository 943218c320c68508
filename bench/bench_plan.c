/* bench_plan: planning speed of a default-sized agent (make bench-plan).
 *
 * The agent: model_config_defaults for observation 3 and action 1 (h 64, z 16, hidden 64, two
 * hidden layers per head, value and continuation heads on), randomly initialised, in a state
 * filtered from one observation. Three planner settings, all with the planner defaults otherwise
 * (MPPI, the mutual-information bonus and the action-prior term on, terminal value, warm start from
 * the previous plan as a session does): light N 64, H 15, I 2; default = planner_config_defaults
 * (N 128, H 25, I 3 today); heavy N 1000, H 25, I 3. For each: plans per second, milliseconds per
 * plan (p50, p99; wall clock, and the thread's CPU time, which a loaded machine does not inflate),
 * the planner's GFLOP/s from the sgemm wrapper's FLOP counter, and, in the same run, cblas_sgemm
 * alone (through tensor_gemm) on exactly the sequence of matrix shapes one plan performs,
 * reproduced from the model's dimensions and checked against the planner's FLOP count. The sgemm
 * share is (time of those products alone) / (time of the plan): the fraction of the plan that the
 * matrix work would take at sgemm's own speed, which is also the ratio of the two GFLOP/s figures.
 *
 * One BLAS thread, as in the daemon (tensor_set_blas_threads(1), vm_thread_init()).
 * Usage: bench_plan [--seconds S] [--obs N] [--act N] [--only light|default|heavy]
 * (--only runs one setting, for profiling; the RESULT line then needs the default one.)
 * The last line is `RESULT default_p50_ms=... default_p99_ms=... sgemm_fraction=...`.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/agent.h"
#include "core/model.h"
#include "core/params.h"
#include "core/planner.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/vmath.h"

#define MAX_PLANS  100000
#define MAX_SHAPES 64 /* distinct weight matrices of the model */

static double now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

static double percentile(const double *sorted, int n, double p)
{
    int i = (int)ceil(p / 100.0 * n) - 1;
    i = i < 0 ? 0 : (i >= n ? n - 1 : i);
    return sorted[i];
}

/* ---- the matrix shapes of one plan ---------------------------------------------------------
 * Every product the planner makes is a layer's forward, out (rows, oc) = in (rows, ic) w^T. A
 * "layer" below is one weight matrix; a plan is a sequence of (layer, rows) calls. Buffers are
 * per layer, as the planner reuses its workspace for every step. */

typedef struct layer {
    int ic, oc, max_rows;
    float *a, *w, *c; /* (max_rows, ic), (oc, ic), (max_rows, oc) */
} layer;

typedef struct call {
    int layer, rows;
} call;

typedef struct shapes {
    int n_layers;
    layer layers[MAX_SHAPES];
    call *calls;
    size_t n_calls, cap;
    uint64_t flops;
    /* layer ids of the model's networks */
    int embed, gx, gh, prior[2], obs[MLP_MAX_LAYERS], rew[MLP_MAX_LAYERS], actor[MLP_MAX_LAYERS],
        value[MLP_MAX_LAYERS], cont[MLP_MAX_LAYERS];
    int obs_shift, rew_shift; /* z's columns of the decoder's first layers (shifted decodes) */
    int head_layers;          /* linear layers per head */
    int with_cont;            /* the continuation head is on */
    int mean_states;          /* planner_config.sample_states == 0 */
} shapes;

static int add_layer(shapes *s, int ic, int oc)
{
    layer *l = &s->layers[s->n_layers];
    l->ic = ic;
    l->oc = oc;
    return s->n_layers++;
}

static int push(shapes *s, int id, int rows)
{
    if (s->n_calls == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        call *c = realloc(s->calls, cap * sizeof *c);
        if (!c)
            return -1;
        s->calls = c;
        s->cap = cap;
    }
    s->calls[s->n_calls++] = (call){id, rows};
    layer *l = &s->layers[id];
    if (rows > l->max_rows)
        l->max_rows = rows;
    s->flops += 2ull * (uint64_t)rows * (uint64_t)l->ic * (uint64_t)l->oc;
    return 0;
}

static int push_head(shapes *s, const int *ids, int rows)
{
    for (int i = 0; i < s->head_layers; i++)
        if (push(s, ids[i], rows))
            return -1;
    return 0;
}

static void model_layers(shapes *s, const model_config *c)
{
    int dh = c->h_dim, dz = c->z_dim, da = c->act_dim, dx = c->obs_dim, hid = c->hidden;
    s->embed = add_layer(s, dz + da, hid);
    s->gx = add_layer(s, hid, 3 * dh);
    s->gh = add_layer(s, dh, 3 * dh);
    s->prior[0] = add_layer(s, dh, hid);
    s->prior[1] = add_layer(s, hid, 2 * dz);
    s->head_layers = c->head_layers + 1;
    s->with_cont = c->cont_weight > 0.0f;
    int outs[5] = {dx, 1, 2 * da, 1, 1};
    int *heads[5] = {s->obs, s->rew, s->actor, s->value, s->cont};
    for (int h = 0; h < 5; h++)
        for (int i = 0; i < s->head_layers; i++) {
            int ic = i == 0 ? dh + dz : hid;
            int oc = i == c->head_layers ? outs[h] : hid;
            heads[h][i] = add_layer(s, ic, oc);
        }
    s->obs_shift = add_layer(s, dz, hid);
    s->rew_shift = add_layer(s, dz, hid);
}

/* A decoder head at z + dz after one at z (model_decode_shifted): z's columns of the first layer,
 * then the other layers. */
static int push_head_shifted(shapes *s, int shift, const int *ids, int rows)
{
    if (push(s, shift, rows))
        return -1;
    for (int i = 1; i < s->head_layers; i++)
        if (push(s, ids[i], rows))
            return -1;
    return 0;
}

/* model_transition: embed, the GRU's two products, the state prior. */
static int push_transition(shapes *s, int rows)
{
    return push(s, s->embed, rows) || push(s, s->gx, rows) || push(s, s->gh, rows) ||
           push(s, s->prior[0], rows) || push(s, s->prior[1], rows);
}

/* One world step of the planner's latent world (mw_step): the transition, then the decoder at z
 * and, for the information bonus, shifted to the antithetic pair (two shifted decodes when the
 * particles follow the mean state), then the continuation head. */
static int push_step(shapes *s, int rows, int with_info)
{
    if (push_transition(s, rows))
        return -1;
    if (!with_info) {
        if (push_head(s, s->rew, rows))
            return -1;
    } else {
        if (push_head(s, s->obs, rows) || push_head(s, s->rew, rows))
            return -1;
        int shifted = s->mean_states ? 2 : 1;
        for (int i = 0; i < shifted; i++)
            if (push_head_shifted(s, s->obs_shift, s->obs, rows) ||
                push_head_shifted(s, s->rew_shift, s->rew, rows))
                return -1;
    }
    return s->with_cont ? push_head(s, s->cont, rows) : 0;
}

/* The products of planner_plan without a deadline, in its order (see core/planner.c). */
static int plan_shapes(shapes *s, const model_config *c, const planner_config *p)
{
    int N = p->population, H = p->horizon, P = 32; /* P: the prediction particles */
    int n_policy = (int)lroundf(p->policy_fraction * (float)(N - 1));
    int value = p->use_value && c->value_weight > 0.0f;
    s->mean_states = !p->sample_states;
    if (p->init_from_prior)
        for (int t = 0; t < H; t++)
            if (push_head(s, s->actor, 1) || push_step(s, 1, 0))
                return -1;
    for (int it = 0; it < p->iterations; it++) {
        for (int t = 0; t < H; t++) {
            if ((n_policy > 0 || p->beta_action > 0.0f) && push_head(s, s->actor, N))
                return -1;
            if (push_step(s, N, p->beta_info > 0.0f))
                return -1;
        }
        if (value && push_head(s, s->value, N))
            return -1;
    }
    for (int t = 0; t < H; t++)
        if (push_head(s, s->actor, P) || push_step(s, P, 1))
            return -1;
    if (value && push_head(s, s->value, P))
        return -1;
    return 0;
}

static int shapes_alloc(shapes *s, rng_t *r)
{
    for (int i = 0; i < s->n_layers; i++) {
        layer *l = &s->layers[i];
        size_t rows = (size_t)(l->max_rows > 0 ? l->max_rows : 1);
        l->a = params_alloc(rows * (size_t)l->ic);
        l->w = params_alloc((size_t)l->oc * (size_t)l->ic);
        l->c = params_alloc(rows * (size_t)l->oc);
        if (!l->a || !l->w || !l->c)
            return -1;
        rng_fill_uniform(r, l->a, rows * (size_t)l->ic, -1.0f, 1.0f);
        rng_fill_uniform(r, l->w, (size_t)l->oc * (size_t)l->ic, -0.1f, 0.1f);
    }
    return 0;
}

static void shapes_free(shapes *s)
{
    for (int i = 0; i < s->n_layers; i++) {
        params_free(s->layers[i].a);
        params_free(s->layers[i].w);
        params_free(s->layers[i].c);
    }
    free(s->calls);
}

/* The products alone, as tensor_linear_forward makes them (beta 1 onto the bias-filled output;
 * the bias copy itself is not timed). */
static void shapes_run(const shapes *s)
{
    for (size_t i = 0; i < s->n_calls; i++) {
        const layer *l = &s->layers[s->calls[i].layer];
        tensor_gemm(l->c, l->a, l->w, s->calls[i].rows, l->oc, l->ic, 0, 1, 1.0f, 1.0f, 0, 0, 0);
    }
}

/* ---- one setting ---------------------------------------------------------------------------- */

typedef struct setting {
    const char *name;
    int population, horizon, iterations;
} setting;

typedef struct figures {
    double plans_per_s, p50, p99, cpu_p50, gflops, sgemm_gflops, sgemm_ms, fraction;
    double mflop_per_plan;
    int plans;
} figures;

static int run_setting(const setting *st, const model_t *m, const float *params,
                       const model_norm *norm, const float *h, const float *z, double seconds,
                       double *lat, double *cpu, figures *fig)
{
    planner_config p;
    planner_config_defaults(&p);
    p.population = st->population;
    p.horizon = st->horizon;
    p.iterations = st->iterations;
    char err[128];
    if (planner_config_validate(&p, err, sizeof err)) {
        fprintf(stderr, "bench-plan: %s: %s\n", st->name, err);
        return -1;
    }
    planner_ws *ws = planner_ws_new(m, &p);
    plan_result *out = plan_result_new(p.horizon, m->cfg.act_dim, m->cfg.obs_dim);
    plan_state *prev = plan_state_new(p.horizon, m->cfg.act_dim);
    shapes sh;
    memset(&sh, 0, sizeof sh);
    int rc = -1;
    if (!ws || !out || !prev)
        goto done;
    model_layers(&sh, &m->cfg);
    rng_t r;
    rng_seed(&r, 1, 1);
    if (plan_shapes(&sh, &m->cfg, &p) || shapes_alloc(&sh, &r))
        goto done;

    printf("bench-plan: %-7s N %4d, H %2d, I %d: planning for %.1f s ...\n", st->name, p.population,
           p.horizon, p.iterations, seconds);
    fflush(stdout);
    /* Warm-up, and the check that the reproduced shapes are the planner's own. */
    for (int k = 0; k < 3; k++) {
        tensor_flops_reset();
        if (planner_plan(m, &p, params, norm, ws, h, z, prev, 0.0, 0, &r, out))
            goto done;
    }
    uint64_t plan_flops = tensor_flops();
    if (plan_flops != sh.flops) {
        fprintf(stderr, "bench-plan: %s: the planner made %llu FLOPs, the reproduced shapes %llu\n",
                st->name, (unsigned long long)plan_flops, (unsigned long long)sh.flops);
        goto done;
    }

    /* The plans, as a session makes them: warm-started from the previous one. */
    int n = 0;
    tensor_flops_reset();
    double t0 = now_ms(CLOCK_MONOTONIC), total = 0.0;
    while (n < MAX_PLANS && (n < 20 || total < seconds * 1e3)) {
        double a = now_ms(CLOCK_MONOTONIC), ca = now_ms(CLOCK_THREAD_CPUTIME_ID);
        if (planner_plan(m, &p, params, norm, ws, h, z, prev, 0.0, 0, &r, out))
            goto done;
        double b = now_ms(CLOCK_MONOTONIC), cb = now_ms(CLOCK_THREAD_CPUTIME_ID);
        lat[n] = b - a;
        cpu[n] = cb - ca;
        n++;
        total = b - t0;
    }
    uint64_t flops = tensor_flops();
    double cpu_total = 0.0;
    for (int i = 0; i < n; i++)
        cpu_total += cpu[i];

    /* sgemm alone on the same sequence, for about a third of the time. */
    shapes_run(&sh);
    int reps = 0;
    double s0 = now_ms(CLOCK_THREAD_CPUTIME_ID), s1 = s0;
    while (reps < 5 || s1 - s0 < seconds * 1e3 / 3) {
        shapes_run(&sh);
        reps++;
        s1 = now_ms(CLOCK_THREAD_CPUTIME_ID);
    }
    double sgemm_ms = (s1 - s0) / reps;

    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    qsort(cpu, (size_t)n, sizeof *cpu, cmp_double);
    fig->plans = n;
    fig->plans_per_s = n / (total / 1e3);
    fig->p50 = percentile(lat, n, 50);
    fig->p99 = percentile(lat, n, 99);
    fig->cpu_p50 = percentile(cpu, n, 50);
    /* GFLOP/s on CPU time: what the planner does with the core it gets. */
    fig->gflops = (double)flops / (cpu_total * 1e6);
    fig->mflop_per_plan = (double)plan_flops / 1e6;
    fig->sgemm_ms = sgemm_ms;
    fig->sgemm_gflops = (double)sh.flops / (sgemm_ms * 1e6);
    fig->fraction = sgemm_ms / (cpu_total / n);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "bench-plan: %s failed\n", st->name);
    shapes_free(&sh);
    planner_ws_free(ws);
    plan_result_free(out);
    plan_state_free(prev);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_plan [--seconds S] [--obs N] [--act N] [--only light|default|heavy]\n");
}

int main(int argc, char **argv)
{
    double seconds = 3.0;
    int obs_dim = 3, act_dim = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--seconds") == 0) {
            seconds = strtod(argv[++i], NULL);
        } else if (i + 1 < argc && strcmp(argv[i], "--obs") == 0) {
            obs_dim = (int)strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--act") == 0) {
            act_dim = (int)strtol(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--only") == 0) {
            only = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    if (!(seconds > 0.0 && seconds <= 600.0)) {
        usage();
        return 2;
    }
    vm_thread_init();
    tensor_set_blas_threads(1);

    model_config c;
    model_config_defaults(&c, obs_dim, act_dim);
    char err[128];
    agent_t *agent = agent_new(&c, err, sizeof err);
    if (!agent) {
        fprintf(stderr, "bench-plan: agent: %s\n", err);
        return 1;
    }
    agent_snapshot *snap = agent_snapshot_acquire(agent);
    const model_t *m = snap->model;
    float h[MODEL_MAX_STATE], z[MODEL_MAX_STATE], x[MODEL_MAX_OBS];
    rng_t r;
    rng_seed(&r, 3, 3);
    rng_fill_uniform(&r, x, (size_t)obs_dim, -1.0f, 1.0f);
    model_ws *mws = model_ws_new(m, 1);
    double *lat = malloc(sizeof(double) * MAX_PLANS), *cpu = malloc(sizeof(double) * MAX_PLANS);
    int rc = 1;
    if (!mws || !lat || !cpu)
        goto out;
    model_filter_step(m, snap->params, &snap->norm, mws, h, z, NULL, x, 0.0f, 1);

    double load = 0.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = 0.0;
        fclose(f);
    }
    printf("bench-plan: agent obs %d, act %d, h %d, z %d, hidden %d, head layers %d; one BLAS "
           "thread; load average %.2f%s\n",
           obs_dim, act_dim, c.h_dim, c.z_dim, c.hidden, c.head_layers, load,
           load > 0.7 ? " (other processes share the CPU: wall-clock figures are inflated, the "
                        "CPU-time ones much less)"
                      : "");

    /* Policy mode, for scale: the action prior alone. */
    planner_config pd;
    planner_config_defaults(&pd);
    planner_ws *pws = planner_ws_new(m, &pd);
    if (!pws)
        goto out;
    float action[MODEL_MAX_ACT];
    double pa = now_ms(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < 20000; i++)
        planner_policy(m, snap->params, pws, h, z, 0, &r, action, NULL, NULL);
    double policy_us = (now_ms(CLOCK_THREAD_CPUTIME_ID) - pa) / 20000 * 1e3;
    planner_ws_free(pws);

    /* "default" is whatever planner_config_defaults says, so the figures follow the defaults. */
    const setting settings[] = {
        {"light", 64, 15, 2},
        {"default", pd.population, pd.horizon, pd.iterations},
        {"heavy", 1000, 25, 3},
    };
    figures fig[3];
    int ran[3] = {0};
    for (int i = 0; i < 3; i++) {
        if (only && strcmp(only, settings[i].name) != 0)
            continue;
        if (run_setting(&settings[i], m, snap->params, &snap->norm, h, z, seconds, lat, cpu,
                        &fig[i]))
            goto out;
        ran[i] = 1;
    }

    printf("\n%-8s %5s %3s %2s %9s %9s %9s %9s %9s %9s %9s %9s %7s\n", "setting", "N", "H", "I",
           "plans/s", "p50 ms", "p99 ms", "cpu p50", "MFLOP", "GFLOP/s", "sgemm ms", "sgemm GF",
           "share");
    for (int i = 0; i < 3; i++) {
        if (!ran[i])
            continue;
        const setting *st = &settings[i];
        const figures *g = &fig[i];
        printf("%-8s %5d %3d %2d %9.1f %9.2f %9.2f %9.2f %9.1f %9.1f %9.2f %9.1f %7.2f\n", st->name,
               st->population, st->horizon, st->iterations, g->plans_per_s, g->p50, g->p99,
               g->cpu_p50, g->mflop_per_plan, g->gflops, g->sgemm_ms, g->sgemm_gflops, g->fraction);
    }
    rc = 0;
    if (!ran[1])
        goto out;
    const figures *d = &fig[1];
    printf("\nplans/s and p50/p99 are wall clock; `cpu p50` is the planning thread's CPU time. "
           "GFLOP/s is the planner's matrix work over its CPU time; `sgemm GF` is cblas_sgemm "
           "alone on the same shapes; `share` = sgemm time of those shapes / plan CPU time "
           "(= GFLOP/s ratio %.2f for default).\n",
           d->gflops / d->sgemm_gflops);
    printf("policy mode (action prior alone): %.1f us per action\n", policy_us);
    printf("targets: default plan p50 < 30 ms: %s (%.2f ms wall, %.2f ms CPU); matrix work >= "
           "50%% of sgemm: %s (%.2f)\n",
           d->p50 < 30.0 ? "met" : "MISSED", d->p50, d->cpu_p50,
           d->fraction >= 0.5 ? "met" : "MISSED", d->fraction);
    printf("RESULT default_p50_ms=%.2f default_p99_ms=%.2f sgemm_fraction=%.3f\n", d->p50, d->p99,
           d->fraction);
out:
    free(lat);
    free(cpu);
    model_ws_free(mws);
    agent_snapshot_release(agent, snap);
    agent_free(agent);
    return rc;
}
