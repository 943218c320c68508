/* agent: training, snapshots and checkpoints of one agent (see agent.h for the threading). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tensor.h"

#define TARGET_TAU 0.01f /* value target: exponential moving average of the value head */

const char *agent_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case AGENT_ENOMEM:
        return "out of memory";
    case AGENT_EINVAL:
        return "invalid argument";
    case AGENT_ENODATA:
        return "not enough experience to train";
    case AGENT_ENUMERIC:
        return "training objective not finite";
    case AGENT_ECORRUPT:
        return "checkpoint truncated or corrupted";
    case AGENT_EMISMATCH:
        return "checkpoint of a different agent configuration";
    case AGENT_EIO:
        return "input/output error";
    default:
        return "unknown agent error";
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void snapshot_free(agent_snapshot *s)
{
    if (!s)
        return;
    params_free(s->params);
    free(s);
}

agent_t *agent_new(const model_config *c, char *err, size_t errlen)
{
    if (model_config_validate(c, err, errlen))
        return NULL;
    agent_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->norm_lock, NULL);
    pthread_mutex_init(&a->train_lock, NULL);
    pthread_mutex_init(&a->stats_lock, NULL);
    pthread_mutex_init(&a->snap_lock, NULL);
    if (model_init(&a->model, c)) {
        snprintf(err, errlen, "model: invalid shapes");
        goto fail;
    }
    norm_init(&a->norm);
    size_t n = a->model.n_params;
    a->params = params_alloc(n);
    a->grads = params_alloc(n);
    a->adam_m = params_alloc(n);
    a->adam_v = params_alloc(n);
    a->target = params_alloc(n);
    a->replay = replay_new(c->obs_dim, c->act_dim, c->act_low, c->act_high, c->replay_capacity);
    a->batch = replay_batch_new(c->batch, c->seq_len, c->obs_dim, c->act_dim);
    a->ws = elbo_ws_new(&a->model, c->batch, c->seq_len);
    if (!a->params || !a->grads || !a->adam_m || !a->adam_v || !a->target || !a->replay ||
        !a->batch || !a->ws) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    model_init_params(&a->model, a->params);
    tensor_copy(a->target, a->params, n);
    a->adam = adam_defaults();
    a->adam.lr = c->lr;
    a->adam.clip_norm = c->clip_norm;
    rng_seed(&a->rng, c->seed, 0x7a1);
    if (agent_publish(a)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return a;
fail:
    agent_free(a);
    return NULL;
}

void agent_free(agent_t *a)
{
    if (!a)
        return;
    replay_free(a->replay);
    replay_batch_free(a->batch);
    elbo_ws_free(a->ws);
    params_free(a->params);
    params_free(a->grads);
    params_free(a->adam_m);
    params_free(a->adam_v);
    params_free(a->target);
    /* Readers must have released their snapshots before the agent goes. */
    snapshot_free(a->snap);
    pthread_mutex_destroy(&a->norm_lock);
    pthread_mutex_destroy(&a->train_lock);
    pthread_mutex_destroy(&a->stats_lock);
    pthread_mutex_destroy(&a->snap_lock);
    free(a);
}

int agent_add_episode(agent_t *a, uint64_t id, int T, const float *obs, const float *actions,
                      const float *rewards, const float *dist, int done)
{
    int rc = replay_add_episode(a->replay, id, T, obs, actions, rewards, dist, done);
    if (rc)
        return rc;
    int dx = a->model.cfg.obs_dim;
    pthread_mutex_lock(&a->norm_lock);
    for (int t = 0; t <= T; t++)
        norm_update_obs(&a->norm, obs + (size_t)t * dx, dx);
    for (int t = 0; t < T; t++)
        norm_update_reward(&a->norm, rewards[t]);
    pthread_mutex_unlock(&a->norm_lock);
    return 0;
}

int agent_add_step(agent_t *a, uint64_t id, int first, const float *x, float reward,
                   const float *action, const float *dist, int terminal)
{
    int rc = replay_add_step(a->replay, id, first, x, reward, action, dist, terminal);
    if (rc)
        return rc;
    pthread_mutex_lock(&a->norm_lock);
    norm_update_obs(&a->norm, x, a->model.cfg.obs_dim);
    if (!first)
        norm_update_reward(&a->norm, reward);
    pthread_mutex_unlock(&a->norm_lock);
    return 0;
}

int agent_train_step(agent_t *a, agent_train_stats *stats)
{
    agent_train_stats st;
    memset(&st, 0, sizeof st);
    pthread_mutex_lock(&a->train_lock);
    double t0 = now_ms();
    int rc = replay_sample(a->replay, a->batch, &a->rng);
    if (rc) {
        pthread_mutex_unlock(&a->train_lock);
        return AGENT_ENODATA;
    }
    model_norm norm;
    pthread_mutex_lock(&a->norm_lock);
    norm = a->norm;
    pthread_mutex_unlock(&a->norm_lock);
    elbo_sample_noise(a->ws, &a->rng);
    /* A cached Box-Muller normal is not part of a checkpoint: drop it so that a restored agent
     * continues with exactly the same numbers. */
    a->rng.has_spare = 0;
    double t1 = now_ms();
    size_t n = a->model.n_params;
    tensor_zero(a->grads, n);
    rc = elbo_evaluate(&a->model, a->params, a->target, a->grads, &norm, a->batch, a->ws, NULL,
                       &st.terms);
    if (rc == 0) {
        st.grad_norm =
            adam_step(a->params, a->grads, a->adam_m, a->adam_v, n, &a->adam, a->step + 1);
        if (!isfinite(st.grad_norm))
            rc = -1;
    }
    if (rc == 0) {
        a->step++;
        /* The value target follows the value head slowly (only that group matters). */
        const param_group *g = params_layout_find(&a->model.layout, "value");
        float *tg = a->target + g->offset;
        const float *p = a->params + g->offset;
        for (size_t i = 0; i < g->count; i++)
            tg[i] += TARGET_TAU * (p[i] - tg[i]);
    }
    st.step = a->step;
    st.sample_ms = t1 - t0;
    st.compute_ms = now_ms() - t1;
    pthread_mutex_unlock(&a->train_lock);
    if (rc)
        return AGENT_ENUMERIC;
    pthread_mutex_lock(&a->stats_lock);
    a->last = st;
    pthread_mutex_unlock(&a->stats_lock);
    if (stats)
        *stats = st;
    return 0;
}

/* Builds a snapshot of the current state; the caller holds train_lock or is the trainer. */
static agent_snapshot *snapshot_make(agent_t *a)
{
    agent_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->params = params_alloc(a->model.n_params);
    if (!s->params) {
        free(s);
        return NULL;
    }
    tensor_copy(s->params, a->params, a->model.n_params);
    pthread_mutex_lock(&a->norm_lock);
    s->norm = a->norm;
    pthread_mutex_unlock(&a->norm_lock);
    s->version = a->step;
    s->model = &a->model;
    s->refs = 1; /* the agent's own reference */
    return s;
}

static void snapshot_swap(agent_t *a, agent_snapshot *s)
{
    pthread_mutex_lock(&a->snap_lock);
    agent_snapshot *old = a->snap;
    a->snap = s;
    int last = 0;
    if (old)
        last = --old->refs == 0;
    pthread_mutex_unlock(&a->snap_lock);
    if (last)
        snapshot_free(old);
}

int agent_publish(agent_t *a)
{
    agent_snapshot *s = snapshot_make(a);
    if (!s)
        return AGENT_ENOMEM;
    snapshot_swap(a, s);
    return 0;
}

agent_snapshot *agent_snapshot_acquire(agent_t *a)
{
    pthread_mutex_lock(&a->snap_lock);
    agent_snapshot *s = a->snap;
    s->refs++;
    pthread_mutex_unlock(&a->snap_lock);
    return s;
}

void agent_snapshot_release(agent_t *a, agent_snapshot *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&a->snap_lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&a->snap_lock);
    if (last)
        snapshot_free(s);
}

agent_train_stats agent_last_stats(agent_t *a)
{
    pthread_mutex_lock(&a->stats_lock);
    agent_train_stats s = a->last;
    pthread_mutex_unlock(&a->stats_lock);
    return s;
}

long agent_step(agent_t *a)
{
    pthread_mutex_lock(&a->snap_lock);
    long v = a->snap->version;
    pthread_mutex_unlock(&a->snap_lock);
    return v;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

#define CKPT_MAGIC   "ELBOCKPT"
#define CKPT_VERSION 2u /* 2: the episode-end head and its weight */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* A bounded little-endian writer and reader. The writer's first pass (buf NULL) measures. */
typedef struct wbuf {
    unsigned char *p;
    size_t len;
} wbuf;

static void put_bytes(wbuf *w, const void *src, size_t n)
{
    if (w->p)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_u32(wbuf *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put_bytes(w, b, 4);
}

static void put_u64(wbuf *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_f32(wbuf *w, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}

static void put_f64(wbuf *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(w, v);
}

typedef struct rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} rbuf;

static const unsigned char *get_bytes(rbuf *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *q = r->p + r->pos;
    r->pos += n;
    return q;
}

static uint32_t get_u32(rbuf *r)
{
    const unsigned char *b = get_bytes(r, 4);
    if (!b)
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(rbuf *r)
{
    uint64_t lo = get_u32(r);
    uint64_t hi = get_u32(r);
    return lo | hi << 32;
}

static float get_f32(rbuf *r)
{
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static double get_f64(rbuf *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

/* The configuration, field by field in a fixed order (the format's version covers the order). */
static void put_config(wbuf *w, const model_config *c)
{
    put_u32(w, (uint32_t)c->obs_dim);
    put_u32(w, (uint32_t)c->act_dim);
    for (int i = 0; i < c->act_dim; i++) {
        put_f32(w, c->act_low[i]);
        put_f32(w, c->act_high[i]);
    }
    int ints[] = {c->h_dim,    c->z_dim,          c->hidden,       c->head_layers,
                  (int)c->act, c->overshoot_len,  c->info_samples, c->seq_len,
                  c->batch,    c->replay_capacity};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        put_u32(w, (uint32_t)ints[i]);
    float fl[] = {c->obs_std,  c->reward_std, c->min_std,   c->free_nats,
                  c->beta_z,   c->beta_a,     c->overshoot, c->value_weight,
                  c->discount, c->lr,         c->clip_norm, c->cont_weight};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
        put_f32(w, fl[i]);
    put_u64(w, c->seed);
}

static int get_config(rbuf *r, model_config *c)
{
    memset(c, 0, sizeof *c);
    c->obs_dim = (int)get_u32(r);
    c->act_dim = (int)get_u32(r);
    if (r->bad || c->act_dim < 1 || c->act_dim > MODEL_MAX_ACT)
        return -1;
    for (int i = 0; i < c->act_dim; i++) {
        c->act_low[i] = get_f32(r);
        c->act_high[i] = get_f32(r);
    }
    int *ints[] = {&c->h_dim, &c->z_dim,          &c->hidden,       &c->head_layers,
                   NULL,      &c->overshoot_len,  &c->info_samples, &c->seq_len,
                   &c->batch, &c->replay_capacity};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int v = (int)get_u32(r);
        if (ints[i])
            *ints[i] = v;
        else
            c->act = (act_kind)v;
    }
    float *fl[] = {&c->obs_std,  &c->reward_std, &c->min_std,   &c->free_nats,
                   &c->beta_z,   &c->beta_a,     &c->overshoot, &c->value_weight,
                   &c->discount, &c->lr,         &c->clip_norm, &c->cont_weight};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
        *fl[i] = get_f32(r);
    c->seed = get_u64(r);
    return r->bad ? -1 : 0;
}

/* Fields that change the shapes or the meaning of the parameters must match on restore;
 * training settings (learning rate, weights, batch...) may differ. */
static int config_compatible(const model_config *a, const model_config *b)
{
    if (a->obs_dim != b->obs_dim || a->act_dim != b->act_dim || a->h_dim != b->h_dim ||
        a->z_dim != b->z_dim || a->hidden != b->hidden || a->head_layers != b->head_layers ||
        a->act != b->act || (a->cont_weight > 0) != (b->cont_weight > 0) ||
        (a->value_weight > 0) != (b->value_weight > 0))
        return 0;
    for (int i = 0; i < a->act_dim; i++)
        if (a->act_low[i] != b->act_low[i] || a->act_high[i] != b->act_high[i])
            return 0;
    return 1;
}

static void put_norm(wbuf *w, const model_norm *n, int dx)
{
    put_f64(w, n->count);
    for (int i = 0; i < dx; i++) {
        put_f64(w, n->obs_mean[i]);
        put_f64(w, n->obs_m2[i]);
    }
    put_f64(w, n->rew_count);
    put_f64(w, n->rew_mean);
    put_f64(w, n->rew_m2);
}

static void get_norm(rbuf *r, model_norm *n, int dx)
{
    norm_init(n);
    n->count = get_f64(r);
    for (int i = 0; i < dx; i++) {
        n->obs_mean[i] = get_f64(r);
        n->obs_m2[i] = get_f64(r);
    }
    n->rew_count = get_f64(r);
    n->rew_mean = get_f64(r);
    n->rew_m2 = get_f64(r);
}

/* Finite statistics with non-negative counts and second moments. */
static int norm_valid(const model_norm *n, int dx)
{
    if (!(n->count >= 0 && n->rew_count >= 0 && isfinite(n->count) && isfinite(n->rew_count) &&
          isfinite(n->rew_mean) && n->rew_m2 >= 0 && isfinite(n->rew_m2)))
        return 0;
    for (int i = 0; i < dx; i++)
        if (!isfinite(n->obs_mean[i]) || !(n->obs_m2[i] >= 0) || !isfinite(n->obs_m2[i]))
            return 0;
    return 1;
}

static void put_floats(wbuf *w, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_f32(w, x[i]);
}

static void get_floats(rbuf *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = get_f32(r);
}

static void put_image(wbuf *w, agent_t *a, const model_norm *norm)
{
    const model_config *c = &a->model.cfg;
    size_t n = a->model.n_params;
    put_bytes(w, CKPT_MAGIC, 8);
    put_u32(w, CKPT_VERSION);
    put_config(w, c);
    put_norm(w, norm, c->obs_dim);
    put_u64(w, (uint64_t)a->step);
    put_u64(w, (uint64_t)n);
    put_floats(w, a->params, n);
    put_floats(w, a->target, n);
    put_floats(w, a->adam_m, n);
    put_floats(w, a->adam_v, n);
    for (int i = 0; i < 4; i++)
        put_u64(w, a->rng.s[i]);
}

int agent_checkpoint_save(agent_t *a, unsigned char **buf, size_t *len)
{
    pthread_mutex_lock(&a->train_lock);
    model_norm norm;
    pthread_mutex_lock(&a->norm_lock);
    norm = a->norm;
    pthread_mutex_unlock(&a->norm_lock);
    wbuf w = {NULL, 0};
    put_image(&w, a, &norm);
    size_t body = w.len;
    unsigned char *p = malloc(body + 4);
    if (!p) {
        pthread_mutex_unlock(&a->train_lock);
        return AGENT_ENOMEM;
    }
    w.p = p;
    w.len = 0;
    put_image(&w, a, &norm);
    pthread_mutex_unlock(&a->train_lock);
    put_u32(&w, crc32_of(p, body));
    *buf = p;
    *len = w.len;
    return 0;
}

/* Checks magic, version and checksum; positions r after the version. */
static int check_image(rbuf *r, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    if (len < 8 + 4 + 4 || memcmp(buf, CKPT_MAGIC, 8) != 0) {
        snprintf(err, errlen, "not an elbod checkpoint (bad magic or too short)");
        return AGENT_ECORRUPT;
    }
    r->p = buf;
    r->len = len - 4;
    r->pos = 8;
    r->bad = 0;
    uint32_t version = get_u32(r);
    if (version != CKPT_VERSION) {
        snprintf(err, errlen, "checkpoint format version %u, this elbod reads version %u", version,
                 CKPT_VERSION);
        return AGENT_ECORRUPT;
    }
    rbuf tail = {buf, len, len - 4, 0};
    uint32_t want = get_u32(&tail);
    if (crc32_of(buf, len - 4) != want) {
        snprintf(err, errlen, "checkpoint checksum mismatch (file truncated or corrupted)");
        return AGENT_ECORRUPT;
    }
    return 0;
}

int agent_checkpoint_config(const unsigned char *buf, size_t len, model_config *c, char *err,
                            size_t errlen)
{
    rbuf r;
    int rc = check_image(&r, buf, len, err, errlen);
    if (rc)
        return rc;
    if (get_config(&r, c) || model_config_validate(c, err, errlen)) {
        if (r.bad)
            snprintf(err, errlen, "checkpoint configuration truncated");
        return AGENT_ECORRUPT;
    }
    return 0;
}

int agent_checkpoint_restore(agent_t *a, const unsigned char *buf, size_t len, char *err,
                             size_t errlen)
{
    rbuf r;
    int rc = check_image(&r, buf, len, err, errlen);
    if (rc)
        return rc;
    model_config c;
    if (get_config(&r, &c)) {
        snprintf(err, errlen, "checkpoint configuration truncated");
        return AGENT_ECORRUPT;
    }
    if (!config_compatible(&c, &a->model.cfg)) {
        snprintf(err, errlen,
                 "checkpoint is of another model shape (dimensions, sizes or action bounds "
                 "differ)");
        return AGENT_EMISMATCH;
    }
    model_norm norm;
    get_norm(&r, &norm, c.obs_dim);
    uint64_t step_u = get_u64(&r);
    uint64_t n = get_u64(&r);
    if (r.bad || n != a->model.n_params || r.len - r.pos != 4 * 4 * n + 32) {
        snprintf(err, errlen, "checkpoint parameter block has the wrong size");
        return AGENT_ECORRUPT;
    }
    /* A valid checksum says the bytes are the ones written, not that they make sense: a step out
     * of range or a non-finite number would break every later training step. */
    if (step_u > (1ull << 53) || !norm_valid(&norm, c.obs_dim)) {
        snprintf(err, errlen, "checkpoint step or normaliser out of range");
        return AGENT_ECORRUPT;
    }
    float *tmp = params_alloc(4 * n);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return AGENT_ENOMEM;
    }
    get_floats(&r, tmp, 4 * n);
    int finite = tensor_all_finite(tmp, 4 * n);
    for (size_t i = 3 * n; finite && i < 4 * n; i++)
        finite = tmp[i] >= 0.0f; /* second moments */
    if (!finite) {
        params_free(tmp);
        snprintf(err, errlen, "checkpoint holds non-finite parameters or optimizer state");
        return AGENT_ECORRUPT;
    }
    /* Everything is checked: now replace the state under the training lock. */
    pthread_mutex_lock(&a->train_lock);
    tensor_copy(a->params, tmp, n);
    tensor_copy(a->target, tmp + n, n);
    tensor_copy(a->adam_m, tmp + 2 * n, n);
    tensor_copy(a->adam_v, tmp + 3 * n, n);
    params_free(tmp);
    for (int i = 0; i < 4; i++)
        a->rng.s[i] = get_u64(&r);
    a->rng.has_spare = 0;
    a->step = (long)step_u;
    pthread_mutex_lock(&a->norm_lock);
    a->norm = norm;
    pthread_mutex_unlock(&a->norm_lock);
    rc = agent_publish(a);
    pthread_mutex_unlock(&a->train_lock);
    return rc;
}

int agent_write_file_atomic(const char *path, const unsigned char *buf, size_t len)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return AGENT_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return AGENT_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return AGENT_EIO;
        }
        off += (size_t)n;
    }
    if (fsync(fd) || close(fd)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return AGENT_EIO;
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return AGENT_EIO;
    }
    /* Make the rename itself durable. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int agent_read_file(const char *path, size_t max_len, unsigned char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return AGENT_EIO;
    struct stat st;
    if (fstat(fd, &st) || st.st_size < 0 || (size_t)st.st_size > max_len) {
        close(fd);
        errno = EFBIG;
        return AGENT_EIO;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return AGENT_ENOMEM;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t k = read(fd, p + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    close(fd);
    if (off != n) {
        free(p);
        return AGENT_EIO;
    }
    *buf = p;
    *len = n;
    return 0;
}
