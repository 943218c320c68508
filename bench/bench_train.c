/* bench_train: training steps per second of a default-sized agent (make bench-train).
 *
 * The agent: observation 5, action 1 in [-1, 1], h 128, z 16, hidden 128, batch 32, sequence 32,
 * everything else model_config_defaults. The replay holds synthetic episodes of a smooth random
 * process; the timed loop calls agent_train_step (batch sampling, noise, objective and gradient,
 * Adam, value target), as the daemon's trainer does. It then times sgemm alone on comparable
 * shapes, as this machine's ceiling.
 *
 * Usage: bench_train [--threads N] [--steps N] [--seconds S] [--warmup N] [--z-dim N]
 *                    [--dump PATH]
 * --dump writes one evaluation of the objective (inputs, noise, terms, gradients) after the
 * warm-up, for `torch_train.py --check PATH`, and exits. --no-ceiling skips the sgemm-alone
 * measurement (for profiling the step alone). --mixed-episodes fills the replay with short
 * episodes of random lengths instead (with --dump: checks the masks, resets and terminals).
 * --threads sets the BLAS threads (1 by default: the daemon's setting). Without --steps the step
 * count is chosen from the warm-up for about --seconds (6 by default).
 * The last line is `summary: c_steps_per_s=... ...` for the make target's glue script.
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
#include "core/rng.h"
#include "core/tensor.h"
#include "core/vmath.h"

#define N_EPISODES 20
#define EP_STEPS   200

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the process: on a shared machine it tells the step's own cost from the waiting. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

static float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* A smooth random process: a damped, driven oscillator seen through 5 channels. Actions are an
 * AR(1) process clipped to the box; the reward prefers the oscillator near rest. With `mixed`,
 * episodes are of random lengths (2 to 41 steps, every other one ending in done), so that
 * batches hold episode starts, ends and padding: what `--dump` uses to check every path. */
static int fill_replay(agent_t *a, int dx, int mixed)
{
    rng_t r;
    rng_seed(&r, 42, 7);
    float *obs = malloc(sizeof(float) * (size_t)(EP_STEPS + 1) * (size_t)dx);
    float *act = malloc(sizeof(float) * EP_STEPS);
    float *rew = malloc(sizeof(float) * EP_STEPS);
    if (!obs || !act || !rew) {
        free(obs);
        free(act);
        free(rew);
        return -1;
    }
    int rc = 0;
    for (int e = 0; e < N_EPISODES && rc == 0; e++) {
        float th = (float)(rng_uniform(&r) * 6.283185307179586), om = 0.0f, u = 0.0f;
        int T = mixed ? 2 + (int)rng_below(&r, 40) : EP_STEPS;
        for (int t = 0; t <= T; t++) {
            float *x = obs + (size_t)t * dx;
            x[0] = cosf(th);
            x[1] = sinf(th);
            x[2] = om;
            x[3] = 0.5f * x[0] * om;
            x[4] = 0.1f * rng_normal(&r);
            if (t == T)
                break;
            u = clampf(0.9f * u + 0.3f * rng_normal(&r), -1.0f, 1.0f);
            act[t] = u;
            om = 0.95f * om + 0.05f * (-9.8f * sinf(th) + 2.0f * u);
            th += 0.05f * om;
            rew[t] = x[0] - 0.1f * om * om - 0.01f * u * u;
        }
        rc = agent_add_episode(a, (uint64_t)e + 1, T, obs, act, rew, NULL, mixed && e % 2);
    }
    free(obs);
    free(act);
    free(rew);
    return rc;
}

/* GFLOP/s of repeated tensor_gemm on one shape, for about `seconds` (wall clock); *per_cpu gets
 * the same per CPU-second. */
static double gemm_gflops(int m, int n, int k, int trans_b, double seconds, double *per_cpu)
{
    *per_cpu = 0.0;
    float *a = params_alloc((size_t)m * k), *b = params_alloc((size_t)k * n);
    float *c = params_alloc((size_t)m * n);
    if (!a || !b || !c) {
        params_free(a);
        params_free(b);
        params_free(c);
        return 0.0;
    }
    rng_t r;
    rng_seed(&r, 3, 3);
    rng_fill_uniform(&r, a, (size_t)m * k, -1.0f, 1.0f);
    rng_fill_uniform(&r, b, (size_t)k * n, -1.0f, 1.0f);
    for (int i = 0; i < 3; i++)
        tensor_gemm(c, a, b, m, n, k, 0, trans_b, 1.0f, 0.0f, 0, 0, 0);
    long reps = 0;
    double c0 = cpu_s(), t0 = now_s(), t1 = t0;
    while (t1 - t0 < seconds) {
        for (int i = 0; i < 10; i++)
            tensor_gemm(c, a, b, m, n, k, 0, trans_b, 1.0f, 1.0f, 0, 0, 0);
        reps += 10;
        t1 = now_s();
    }
    double flop = 2.0 * m * n * k * (double)reps, cpu = cpu_s() - c0;
    params_free(a);
    params_free(b);
    params_free(c);
    *per_cpu = cpu > 0.0 ? flop / cpu * 1e-9 : 0.0;
    return flop / (t1 - t0) * 1e-9;
}

/* ---- the dump for torch_train.py --check ---------------------------------------------------- */

typedef struct dump {
    FILE *head, *data;
} dump;

static void dump_put(dump *d, const char *name, const float *x, size_t n)
{
    fprintf(d->head, "%s %zu\n", name, n);
    fwrite(x, sizeof(float), n, d->data);
}

static void dump_flags(dump *d, const char *name, const uint8_t *f, size_t n, float *tmp)
{
    for (size_t i = 0; i < n; i++)
        tmp[i] = f[i] ? 1.0f : 0.0f;
    dump_put(d, name, tmp, n);
}

/* One evaluation of the objective and its gradient on a fresh batch and noise, with everything
 * the PyTorch mirror needs to recompute it: shapes, parameters, value target, the normalised
 * batch, the noise (drawn from a copy of the stream elbo_sample_noise uses), terms, gradients. */
static int write_dump(agent_t *a, const char *path)
{
    const model_t *m = &a->model;
    const model_config *c = &m->cfg;
    int B = c->batch, L = c->seq_len, R = B * L, dx = c->obs_dim, da = c->act_dim, dz = c->z_dim;
    int D = c->overshoot_len < L - 1 ? c->overshoot_len : L - 1;
    int stride = D / 2 > 0 ? D / 2 : 1;
    int Ro = ((L - 2) / stride + 1) * B, Ri = (B < 4 ? B : 4) * L, K = c->info_samples;
    rng_t rng;
    rng_seed(&rng, 99, 1);
    if (replay_sample(a->replay, a->batch, &rng))
        return -1;
    const replay_batch *b = a->batch;
    rng_t copy = rng;
    elbo_sample_noise(a->ws, &rng);
    size_t n_q = (size_t)R * dz, n_os = (size_t)D * Ro * dz, n_info = (size_t)K * Ri * dz;
    size_t big = n_q + n_os + n_info + (size_t)R * dx;
    float *eps = params_alloc(big), *grads = params_alloc(m->n_params);
    elbo_terms t;
    int rc = -1;
    dump d = {NULL, NULL};
    char *data_path = malloc(strlen(path) + 6);
    if (!eps || !grads || !data_path)
        goto out;
    rng_fill_normal(&copy, eps, n_q + n_os + n_info);
    if (elbo_evaluate(m, a->params, a->target, grads, &a->norm, b, a->ws, NULL, &t))
        goto out;
    sprintf(data_path, "%s.data", path);
    d.head = fopen(path, "wb");
    d.data = fopen(data_path, "w+b");
    if (!d.head || !d.data)
        goto out;
    float cfg[8] = {(float)dx,        (float)da, (float)c->h_dim, (float)dz,
                    (float)c->hidden, (float)B,  (float)L,        (float)D};
    dump_put(&d, "config", cfg, 8);
    for (int g = 0; g < m->layout.n_groups; g++) {
        const param_group *pg = &m->layout.groups[g];
        char name[48];
        snprintf(name, sizeof name, "p_%s", pg->name);
        dump_put(&d, name, a->params + pg->offset, pg->count);
        snprintf(name, sizeof name, "g_%s", pg->name);
        dump_put(&d, name, grads + pg->offset, pg->count);
    }
    const param_group *vg = params_layout_find(&m->layout, "value");
    dump_put(&d, "t_value", a->target + vg->offset, vg->count);
    float *tmp = eps + n_q + n_os + n_info;
    for (int i = 0; i < R; i++)
        norm_obs(&a->norm, tmp + (size_t)i * dx, b->obs + (size_t)i * dx, dx);
    dump_put(&d, "xn", tmp, (size_t)R * dx);
    for (int i = 0; i < R; i++)
        tmp[i] = b->has_rew[i] ? norm_reward(&a->norm, b->rew[i]) : 0.0f;
    dump_put(&d, "rn", tmp, (size_t)R);
    dump_put(&d, "act_in", b->act_in, (size_t)R * da);
    dump_put(&d, "act_out", b->act_out, (size_t)R * da);
    dump_flags(&d, "mask", b->mask, (size_t)R, tmp);
    dump_flags(&d, "first", b->first, (size_t)R, tmp);
    dump_flags(&d, "has_rew", b->has_rew, (size_t)R, tmp);
    dump_flags(&d, "has_act", b->has_act, (size_t)R, tmp);
    dump_flags(&d, "has_dist", b->has_dist, (size_t)R, tmp);
    dump_flags(&d, "terminal", b->terminal, (size_t)R, tmp);
    dump_put(&d, "eps_q", eps, n_q);
    dump_put(&d, "eps_os", eps + n_q, n_os);
    dump_put(&d, "eps_info", eps + n_q + n_os, n_info);
    float terms[9] = {(float)t.loss,       (float)t.obs_nll,       (float)t.reward_nll,
                      (float)t.state_kl,   (float)t.overshoot_nll, (float)t.info_gain,
                      (float)t.actor_loss, (float)t.value_loss,    (float)t.cont_nll};
    dump_put(&d, "terms", terms, 9);
    /* The header, a `data` line, then the arrays: one file. */
    fprintf(d.head, "data\n");
    rewind(d.data);
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, d.data)) > 0)
        fwrite(buf, 1, got, d.head);
    rc = ferror(d.head) || ferror(d.data) ? -1 : 0;
out:
    if (d.head && fclose(d.head))
        rc = -1;
    if (d.data) {
        fclose(d.data);
        remove(data_path);
    }
    free(data_path);
    params_free(eps);
    params_free(grads);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_train [--threads N] [--steps N] [--seconds S] [--warmup N] "
                    "[--z-dim N] [--dump PATH] "
                    "[--no-ceiling] [--mixed-episodes]\n");
}

int main(int argc, char **argv)
{
    int threads = 1, steps = 0, warmup = 5, z_dim = 16;
    double seconds = 6.0;
    const char *dump_path = NULL;
    int ceiling = 1, mixed = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--threads") && v) {
            threads = atoi(v);
        } else if (!strcmp(argv[i], "--steps") && v) {
            steps = atoi(v);
        } else if (!strcmp(argv[i], "--seconds") && v) {
            seconds = atof(v);
        } else if (!strcmp(argv[i], "--warmup") && v) {
            warmup = atoi(v);
        } else if (!strcmp(argv[i], "--z-dim") && v) {
            z_dim = atoi(v);
        } else if (!strcmp(argv[i], "--no-ceiling")) {
            ceiling = 0;
            continue;
        } else if (!strcmp(argv[i], "--mixed-episodes")) {
            mixed = 1;
            continue;
        } else if (!strcmp(argv[i], "--dump") && v) {
            dump_path = v;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (threads < 1 || steps < 0 || warmup < 1 || seconds <= 0.0 || z_dim < 1) {
        usage();
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines as they come, also into a pipe */
    vm_thread_init();
    tensor_set_blas_threads(threads);

    model_config c;
    model_config_defaults(&c, 5, 1);
    c.act_low[0] = -1.0f;
    c.act_high[0] = 1.0f;
    c.h_dim = 128;
    c.z_dim = z_dim;
    c.hidden = 128;
    c.batch = 32;
    c.seq_len = 32;
    char err[256];
    agent_t *a = agent_new(&c, err, sizeof err);
    if (!a) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    if (fill_replay(a, c.obs_dim, mixed)) {
        fprintf(stderr, "bench_train: filling the replay failed\n");
        agent_free(a);
        return 1;
    }
    printf("bench_train: obs %d, act %d, h %d, z %d, hidden %d, head_layers %d, batch %d, seq %d, "
           "overshoot %d, info K %d; %zu parameters; BLAS threads %d\n",
           c.obs_dim, c.act_dim, c.h_dim, c.z_dim, c.hidden, c.head_layers, c.batch, c.seq_len,
           c.overshoot_len, c.info_samples, a->model.n_params, threads);
    if (mixed)
        printf("bench_train: replay of %d episodes of 2 to 41 steps\n", N_EPISODES);
    else
        printf("bench_train: replay of %d episodes x %d steps\n", N_EPISODES, EP_STEPS);

    agent_train_stats st;
    double w0 = now_s();
    for (int i = 0; i < warmup; i++) {
        int rc = agent_train_step(a, &st);
        if (rc) {
            fprintf(stderr, "bench_train: training step failed: %s\n", agent_strerror(rc));
            agent_free(a);
            return 1;
        }
    }
    double per_step = (now_s() - w0) / warmup;
    if (dump_path) {
        int rc = write_dump(a, dump_path);
        if (rc)
            fprintf(stderr, "bench_train: writing %s failed\n", dump_path);
        else
            printf("bench_train: wrote one evaluation of the objective to %s\n", dump_path);
        agent_free(a);
        return rc ? 1 : 0;
    }
    if (steps == 0) {
        steps = (int)ceil(seconds / per_step);
        steps = steps < 10 ? 10 : steps;
    }
    printf("bench_train: warm-up %d steps at %.2f ms/step; timing %d steps\n", warmup,
           per_step * 1e3, steps);
    fflush(stdout);

    double *ms = malloc(sizeof(double) * (size_t)steps);
    if (!ms) {
        agent_free(a);
        return 1;
    }
    double sample_ms = 0.0, compute_ms = 0.0, next_report = 2.0;
    tensor_flops_reset();
    double c0 = cpu_s();
    double t0 = now_s();
    for (int i = 0; i < steps; i++) {
        double s0 = now_s();
        int rc = agent_train_step(a, &st);
        double s1 = now_s();
        if (rc) {
            fprintf(stderr, "bench_train: training step failed: %s\n", agent_strerror(rc));
            free(ms);
            agent_free(a);
            return 1;
        }
        ms[i] = (s1 - s0) * 1e3;
        sample_ms += st.sample_ms;
        compute_ms += st.compute_ms;
        if (s1 - t0 >= next_report) {
            fprintf(stderr, "bench_train: %d/%d steps, %.1f s\n", i + 1, steps, s1 - t0);
            next_report += 2.0;
        }
    }
    double elapsed = now_s() - t0;
    double cpu_ms = (cpu_s() - c0) * 1e3 / steps;
    uint64_t flops = tensor_flops();
    double steps_per_s = steps / elapsed, mean_ms = elapsed * 1e3 / steps;
    double gflops = (double)flops / elapsed * 1e-9;
    double gflops_cpu = (double)flops / (cpu_ms * 1e-3 * steps) * 1e-9;
    qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
    double p50 = percentile(ms, steps, 50.0), p99 = percentile(ms, steps, 99.0);
    printf("bench_train: %d steps in %.2f s: %.2f steps/s, %.2f ms/step (p50 %.2f, p99 %.2f; "
           "batch sampling %.3f ms, objective + update %.2f ms); CPU time %.2f ms/step\n",
           steps, elapsed, steps_per_s, mean_ms, p50, p99, sample_ms / steps, compute_ms / steps,
           cpu_ms);
    printf("bench_train: sgemm %.3f GFLOP/step, %.1f GFLOP/s achieved in the step (%.1f per "
           "CPU-second); last loss %.3f, elbo %.3f\n",
           (double)flops / steps * 1e-9, gflops, gflops_cpu, st.terms.loss, st.terms.elbo);
    free(ms);
    agent_free(a);

    /* The ceiling: sgemm alone, a large layer-shaped product and the per-step shapes of the
     * recurrence (32 rows) and of its weight gradient (k = 32). */
    if (!ceiling) {
        printf("summary: c_steps_per_s=%.3f c_ms_per_step=%.3f c_p50_ms=%.3f c_p99_ms=%.3f "
               "c_cpu_ms_per_step=%.3f c_gflops=%.2f\n",
               steps_per_s, mean_ms, p50, p99, cpu_ms, gflops);
        return 0;
    }
    double big_cpu, fwd_cpu, wgrad_cpu;
    double ceil_big = gemm_gflops(1024, 384, 128, 1, 1.0, &big_cpu);
    double small_fwd = gemm_gflops(32, 384, 128, 1, 0.5, &fwd_cpu);
    double small_wgrad = gemm_gflops(384, 128, 32, 0, 0.5, &wgrad_cpu);
    printf("bench_train: sgemm alone, GFLOP/s (per CPU-second): (1024 x 128) x (128 x 384) %.1f "
           "(%.1f), the ceiling; (32 x 128) x (128 x 384) %.1f (%.1f); (384 x 32) x (32 x 128) "
           "%.1f (%.1f)\n",
           ceil_big, big_cpu, small_fwd, fwd_cpu, small_wgrad, wgrad_cpu);
    printf("bench_train: the step runs at %.0f%% of the sgemm ceiling (%.0f%% per CPU-second)\n",
           ceil_big > 0 ? 100.0 * gflops / ceil_big : 0.0,
           big_cpu > 0 ? 100.0 * gflops_cpu / big_cpu : 0.0);
    printf("summary: c_steps_per_s=%.3f c_ms_per_step=%.3f c_p50_ms=%.3f c_p99_ms=%.3f "
           "c_cpu_ms_per_step=%.3f c_gflops=%.2f sgemm_gflops=%.2f\n",
           steps_per_s, mean_ms, p50, p99, cpu_ms, gflops, ceil_big);
    return 0;
}
