/* replay: episodes of steps with oldest-first eviction and sequence sampling (see replay.h). */
#include "replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct replay_episode {
    uint64_t id;
    int len, cap;
    int head_trimmed; /* step 0 is not the episode's real start (eviction or a lost session) */
    int closed;
    int terminal;
    float *obs;       /* (cap, dx) */
    float *rew;       /* (cap) */
    float *act;       /* (cap, da) raw */
    float *dist;      /* (cap, 2 da) */
    uint8_t *has_act; /* (cap) bit 0: action, bit 1: distribution */
};

const char *replay_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case REPLAY_ENOMEM:
        return "out of memory";
    case REPLAY_EINVAL:
        return "invalid argument";
    case REPLAY_ENOEP:
        return "no such open episode";
    default:
        return "unknown replay error";
    }
}

static void episode_free(replay_episode *e)
{
    if (!e)
        return;
    free(e->obs);
    free(e->rew);
    free(e->act);
    free(e->dist);
    free(e->has_act);
    free(e);
}

static int episode_reserve(replay_t *r, replay_episode *e, int need)
{
    if (need <= e->cap)
        return 0;
    int cap = e->cap ? e->cap : 16;
    while (cap < need)
        cap *= 2;
    size_t dx = (size_t)r->obs_dim, da = (size_t)r->act_dim;
    float *obs = realloc(e->obs, sizeof(float) * dx * cap);
    if (obs)
        e->obs = obs;
    float *rew = realloc(e->rew, sizeof(float) * cap);
    if (rew)
        e->rew = rew;
    float *act = realloc(e->act, sizeof(float) * da * cap);
    if (act)
        e->act = act;
    float *dist = realloc(e->dist, sizeof(float) * 2 * da * cap);
    if (dist)
        e->dist = dist;
    uint8_t *ha = realloc(e->has_act, (size_t)cap);
    if (ha)
        e->has_act = ha;
    if (!obs || !rew || !act || !dist || !ha)
        return REPLAY_ENOMEM;
    e->cap = cap;
    return 0;
}

replay_t *replay_new(int obs_dim, int act_dim, const float *act_low, const float *act_high,
                     long capacity)
{
    if (obs_dim < 1 || act_dim < 1 || act_dim > 32 || capacity < 2 || !act_low || !act_high)
        return NULL;
    /* An empty or non-finite box would make every scaled action NaN or infinite. */
    for (int i = 0; i < act_dim; i++)
        if (!isfinite(act_low[i]) || !isfinite(act_high[i]) || !(act_high[i] > act_low[i]))
            return NULL;
    replay_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL)) {
        free(r);
        return NULL;
    }
    r->obs_dim = obs_dim;
    r->act_dim = act_dim;
    for (int i = 0; i < act_dim; i++) {
        r->act_low[i] = act_low[i];
        r->act_high[i] = act_high[i];
    }
    r->capacity = capacity;
    return r;
}

void replay_free(replay_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_eps; i++)
        episode_free(r->eps[i]);
    free(r->eps);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static replay_episode *episode_new(replay_t *r, uint64_t id)
{
    if (r->n_eps == r->cap_eps) {
        int cap = r->cap_eps ? 2 * r->cap_eps : 16;
        replay_episode **eps = realloc(r->eps, sizeof *eps * (size_t)cap);
        if (!eps)
            return NULL;
        r->eps = eps;
        r->cap_eps = cap;
    }
    replay_episode *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->id = id;
    r->eps[r->n_eps++] = e;
    return e;
}

static int step_has_action(const replay_episode *e, int k)
{
    return e->has_act[k] & 1;
}

static void drop_oldest(replay_t *r)
{
    replay_episode *e = r->eps[0];
    r->steps -= e->len;
    for (int k = 0; k < e->len; k++)
        r->transitions -= step_has_action(e, k);
    r->evicted_steps += (uint64_t)e->len;
    episode_free(e);
    memmove(r->eps, r->eps + 1, sizeof *r->eps * (size_t)(r->n_eps - 1));
    r->n_eps--;
}

/* Drops `n` steps from the head of episode e (it alone is over the capacity). */
static void trim_head(replay_t *r, replay_episode *e, int n)
{
    size_t dx = (size_t)r->obs_dim, da = (size_t)r->act_dim;
    for (int k = 0; k < n; k++)
        r->transitions -= step_has_action(e, k);
    int keep = e->len - n;
    memmove(e->obs, e->obs + dx * n, sizeof(float) * dx * keep);
    memmove(e->rew, e->rew + n, sizeof(float) * keep);
    memmove(e->act, e->act + da * n, sizeof(float) * da * keep);
    memmove(e->dist, e->dist + 2 * da * n, sizeof(float) * 2 * da * keep);
    memmove(e->has_act, e->has_act + n, (size_t)keep);
    e->len = keep;
    e->head_trimmed = 1;
    r->steps -= n;
    r->evicted_steps += (uint64_t)n;
}

static void enforce_capacity(replay_t *r)
{
    while (r->steps > r->capacity && r->n_eps > 1)
        drop_oldest(r);
    if (r->steps > r->capacity && r->n_eps == 1)
        trim_head(r, r->eps[0], (int)(r->steps - r->capacity));
}

static void put_step(replay_t *r, replay_episode *e, const float *x, float reward,
                     const float *action, const float *dist)
{
    size_t dx = (size_t)r->obs_dim, da = (size_t)r->act_dim;
    int k = e->len++;
    memcpy(e->obs + dx * k, x, sizeof(float) * dx);
    e->rew[k] = k == 0 ? 0.0f : reward;
    e->has_act[k] = 0;
    if (action) {
        memcpy(e->act + da * k, action, sizeof(float) * da);
        e->has_act[k] = 1;
        r->transitions++;
        if (dist) {
            memcpy(e->dist + 2 * da * k, dist, sizeof(float) * 2 * da);
            e->has_act[k] |= 2;
        }
    } else {
        memset(e->act + da * k, 0, sizeof(float) * da);
    }
    r->steps++;
    r->appended_steps++;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* A planner distribution needs finite means and positive finite stds. */
static int dist_ok(const float *dist, int da)
{
    if (!all_finite(dist, 2 * (size_t)da))
        return 0;
    for (int j = 0; j < da; j++)
        if (!(dist[da + j] > 0.0f))
            return 0;
    return 1;
}

int replay_add_episode(replay_t *r, uint64_t id, int T, const float *obs, const float *actions,
                       const float *rewards, const float *dist, int done)
{
    if (T < 0 || !obs || (T > 0 && (!actions || !rewards)))
        return REPLAY_EINVAL;
    size_t dx = (size_t)r->obs_dim, da = (size_t)r->act_dim;
    /* Non-finite data would poison the normaliser and every later training step. */
    if (!all_finite(obs, dx * (size_t)(T + 1)) || !all_finite(actions, da * (size_t)T) ||
        !all_finite(rewards, (size_t)T))
        return REPLAY_EINVAL;
    for (int k = 0; dist && k < T; k++)
        if (!dist_ok(dist + 2 * da * k, (int)da))
            return REPLAY_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = REPLAY_ENOMEM;
    replay_episode *e = episode_new(r, id);
    if (!e)
        goto out;
    if (episode_reserve(r, e, T + 1)) {
        r->n_eps--;
        episode_free(e);
        goto out;
    }
    for (int k = 0; k <= T; k++)
        put_step(r, e, obs + dx * k, k > 0 ? rewards[k - 1] : 0.0f, k < T ? actions + da * k : NULL,
                 (k < T && dist) ? dist + 2 * da * k : NULL);
    e->closed = 1;
    e->terminal = done ? 1 : 0;
    enforce_capacity(r);
    rc = 0;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static replay_episode *find_open(replay_t *r, uint64_t id)
{
    for (int i = r->n_eps - 1; i >= 0; i--)
        if (r->eps[i]->id == id && !r->eps[i]->closed)
            return r->eps[i];
    return NULL;
}

int replay_add_step(replay_t *r, uint64_t id, int first, const float *x, float reward,
                    const float *action, const float *dist, int terminal)
{
    if (!x || !all_finite(x, (size_t)r->obs_dim) || (!first && !isfinite(reward)) ||
        (action && !all_finite(action, (size_t)r->act_dim)) ||
        (action && dist && !dist_ok(dist, r->act_dim)))
        return REPLAY_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = REPLAY_ENOMEM;
    replay_episode *e = find_open(r, id);
    if (first && e)
        e->closed = 1; /* a new episode under the same id ends the old one */
    if (first || !e) {
        e = episode_new(r, id);
        if (!e)
            goto out;
        /* A continuation whose episode was evicted starts mid-episode. */
        e->head_trimmed = first ? 0 : 1;
    }
    if (episode_reserve(r, e, e->len + 1))
        goto out;
    put_step(r, e, x, reward, action, dist);
    if (terminal) {
        e->closed = 1;
        e->terminal = 1;
    }
    enforce_capacity(r);
    rc = 0;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void replay_close_episode(replay_t *r, uint64_t id)
{
    pthread_mutex_lock(&r->lock);
    replay_episode *e = find_open(r, id);
    if (e)
        e->closed = 1;
    pthread_mutex_unlock(&r->lock);
}

replay_batch *replay_batch_new(int B, int L, int dx, int da)
{
    if (B < 1 || L < 1 || dx < 1 || da < 1)
        return NULL;
    replay_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    size_t n = (size_t)B * L;
    b->B = B;
    b->L = L;
    b->dx = dx;
    b->da = da;
    b->obs = calloc(n * dx, sizeof(float));
    b->rew = calloc(n, sizeof(float));
    b->act_in = calloc(n * da, sizeof(float));
    b->act_out = calloc(n * da, sizeof(float));
    b->dist = calloc(n * 2 * da, sizeof(float));
    b->mask = calloc(n, 1);
    b->first = calloc(n, 1);
    b->has_rew = calloc(n, 1);
    b->has_act = calloc(n, 1);
    b->has_dist = calloc(n, 1);
    b->terminal = calloc(n, 1);
    if (!b->obs || !b->rew || !b->act_in || !b->act_out || !b->dist || !b->mask || !b->first ||
        !b->has_rew || !b->has_act || !b->has_dist || !b->terminal) {
        replay_batch_free(b);
        return NULL;
    }
    return b;
}

void replay_batch_free(replay_batch *b)
{
    if (!b)
        return;
    free(b->obs);
    free(b->rew);
    free(b->act_in);
    free(b->act_out);
    free(b->dist);
    free(b->mask);
    free(b->first);
    free(b->has_rew);
    free(b->has_act);
    free(b->has_dist);
    free(b->terminal);
    free(b);
}

/* Scales a raw action into [-1, 1], clipping. */
static void scale_action(const replay_t *r, float *out, const float *a)
{
    for (int j = 0; j < r->act_dim; j++) {
        float mid = 0.5f * (r->act_high[j] + r->act_low[j]);
        float half = 0.5f * (r->act_high[j] - r->act_low[j]);
        float v = (a[j] - mid) / half;
        out[j] = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
    }
}

static void copy_sequence(const replay_t *r, replay_batch *b, int bi, const replay_episode *e,
                          int start)
{
    int B = b->B, dx = b->dx, da = b->da;
    for (int t = 0; t < b->L; t++) {
        size_t row = (size_t)t * B + bi;
        int k = start + t;
        if (k >= e->len) {
            b->mask[row] = 0;
            b->first[row] = b->has_rew[row] = b->has_act[row] = b->has_dist[row] = 0;
            b->terminal[row] = 0;
            memset(b->obs + row * dx, 0, sizeof(float) * dx);
            memset(b->act_in + row * da, 0, sizeof(float) * da);
            memset(b->act_out + row * da, 0, sizeof(float) * da);
            memset(b->dist + row * 2 * da, 0, sizeof(float) * 2 * da);
            b->rew[row] = 0.0f;
            continue;
        }
        int is_first = k == 0 && !e->head_trimmed;
        b->mask[row] = 1;
        b->first[row] = (uint8_t)is_first;
        b->has_rew[row] = k > 0;
        b->rew[row] = k > 0 ? e->rew[k] : 0.0f;
        memcpy(b->obs + row * dx, e->obs + (size_t)dx * k, sizeof(float) * dx);
        if (k > 0 && step_has_action(e, k - 1))
            scale_action(r, b->act_in + row * da, e->act + (size_t)da * (k - 1));
        else
            memset(b->act_in + row * da, 0, sizeof(float) * da);
        b->has_act[row] = (uint8_t)step_has_action(e, k);
        b->has_dist[row] = (e->has_act[k] & 2) ? 1 : 0;
        if (b->has_act[row])
            scale_action(r, b->act_out + row * da, e->act + (size_t)da * k);
        else
            memset(b->act_out + row * da, 0, sizeof(float) * da);
        if (b->has_dist[row])
            memcpy(b->dist + row * 2 * da, e->dist + (size_t)2 * da * k, sizeof(float) * 2 * da);
        else
            memset(b->dist + row * 2 * da, 0, sizeof(float) * 2 * da);
        b->terminal[row] = (uint8_t)(e->terminal && k == e->len - 1);
    }
}

int replay_sample(replay_t *r, replay_batch *b, rng_t *rng)
{
    /* The copies below write b->dx and b->da floats per row from rows of the replay's widths. */
    if (b->dx != r->obs_dim || b->da != r->act_dim)
        return REPLAY_EINVAL;
    pthread_mutex_lock(&r->lock);
    long usable = 0;
    for (int i = 0; i < r->n_eps; i++)
        if (r->eps[i]->len >= 2)
            usable += r->eps[i]->len;
    if (usable == 0) {
        pthread_mutex_unlock(&r->lock);
        return REPLAY_EINVAL;
    }
    for (int bi = 0; bi < b->B; bi++) {
        long pick = (long)rng_below(rng, (uint64_t)usable);
        const replay_episode *e = NULL;
        for (int i = 0; i < r->n_eps; i++) {
            if (r->eps[i]->len < 2)
                continue;
            if (pick < r->eps[i]->len) {
                e = r->eps[i];
                break;
            }
            pick -= r->eps[i]->len;
        }
        int start = 0;
        if (e->len > b->L)
            start = (int)rng_below(rng, (uint64_t)(e->len - b->L + 1));
        /* An episode's end is one step among many, yet it is what the episode-end head and the
         * value must learn (e.g. a cart leaving its track): a quarter of the sequences drawn from
         * an episode that ended by itself finish at that end. */
        if (e->terminal && e->len > b->L && rng_below(rng, 4) == 0)
            start = e->len - b->L;
        copy_sequence(r, b, bi, e, start);
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

long replay_steps(replay_t *r)
{
    pthread_mutex_lock(&r->lock);
    long n = r->steps;
    pthread_mutex_unlock(&r->lock);
    return n;
}

long replay_transitions(replay_t *r)
{
    pthread_mutex_lock(&r->lock);
    long n = r->transitions;
    pthread_mutex_unlock(&r->lock);
    return n;
}
