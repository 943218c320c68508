/* agents: hosted agents, sessions, trainers, and the service calls (see agents.h). */
#include "agents.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "api/config_json.h"
#include "api/service.h"
#include "core/agent.h"
#include "core/planner.h"
#include "core/tensor.h"
#include "core/vmath.h"
#include "log.h"
#include "metrics.h"

#define CHECKPOINT_MAX_BYTES (1u << 30)

typedef struct session {
    char id[SVC_SESSION_MAX + 1];
    pthread_mutex_t lock; /* held for one act */
    int refs;             /* under the agent's sess_lock */
    int closed;
    uint64_t episode_id;
    long step; /* observations seen in the current episode */
    float h[MODEL_MAX_STATE], z[MODEL_MAX_STATE];
    float last_action[MODEL_MAX_ACT];
    plan_state *plan;
    rng_t rng;
    double last_used;
    struct session *next;
} session;

typedef struct pool_entry {
    planner_ws *ws;
    unsigned gen;
} pool_entry;

typedef struct hosted {
    char name[SVC_NAME_MAX + 1];
    int refs;    /* under reg_lock */
    int deleted; /* under reg_lock */
    agent_t *agent;

    pthread_mutex_t spec_lock;
    agent_spec spec;
    unsigned spec_gen;

    pthread_mutex_t pool_lock;
    pool_entry *pool;
    int pool_n, pool_cap;

    pthread_mutex_t sess_lock;
    session *sessions;
    long n_sessions;

    pthread_mutex_t tlock;
    pthread_cond_t tcond;
    pthread_t thread;
    int thread_started;
    int stop, paused;
    long transitions_total;
    double steps_per_sec;
    double last_step_time, last_publish_time;
    long last_ckpt_step;
    double last_ckpt_time;

    atomic_ulong seq; /* seeds of stateless requests and sessions */

    struct episode_ring *episodes; /* returns clients reported (block "episode returns") */
} hosted;

static struct {
    pthread_mutex_t lock;
    hosted **items;
    int n, cap;
    const daemon_config *cfg;
    store_t *store;
    atomic_int ready;
    double start_time;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void train_config_defaults(train_config *t)
{
    t->train_ratio = 4.0f;
    t->min_transitions = 100;
    t->max_steps_per_sec = 0.0f;
    t->checkpoint_every_s = 60;
}

int train_config_validate(const train_config *t, char *err, size_t errlen)
{
    if (!(t->train_ratio >= 0 && t->train_ratio <= 1000)) {
        snprintf(err, errlen, "train_ratio: must be in [0, 1000] (0: no cap)");
        return -1;
    }
    if (t->min_transitions < 1 || t->min_transitions > 100000000) {
        snprintf(err, errlen, "min_transitions: must be between 1 and 100000000");
        return -1;
    }
    if (!(t->max_steps_per_sec >= 0 && t->max_steps_per_sec <= 1e6)) {
        snprintf(err, errlen, "max_steps_per_sec: must be in [0, 1e6] (0: unthrottled)");
        return -1;
    }
    if (t->checkpoint_every_s < 1 || t->checkpoint_every_s > 86400) {
        snprintf(err, errlen, "checkpoint_every_s: must be between 1 and 86400");
        return -1;
    }
    return 0;
}

void svc_act_result_free(act_result *r)
{
    plan_result_free(r->plan);
    r->plan = NULL;
}

svc_limits svc_get_limits(void)
{
    svc_limits l = {(size_t)reg.cfg->max_body_bytes, reg.cfg->max_episodes_per_request,
                    reg.cfg->max_steps_per_request};
    return l;
}

int svc_ready(void)
{
    return atomic_load(&reg.ready);
}

void agents_set_ready(int ready)
{
    atomic_store(&reg.ready, ready);
}

void svc_observe_request(const char *route, int status, double seconds)
{
    metrics_observe(route, "", status, seconds);
}

/* ---- registry ----------------------------------------------------------------------------- */

static hosted *get_agent(const char *name, svc_error *e)
{
    pthread_mutex_lock(&reg.lock);
    hosted *h = NULL;
    for (int i = 0; i < reg.n; i++)
        if (strcmp(reg.items[i]->name, name) == 0) {
            h = reg.items[i];
            h->refs++;
            break;
        }
    pthread_mutex_unlock(&reg.lock);
    if (!h && e)
        svc_fail(e, 404, "agent_not_found", "", "no agent named '%s'", name);
    return h;
}

static void session_free(session *s)
{
    if (!s)
        return;
    plan_state_free(s->plan);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void hosted_free(hosted *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->pool_n; i++)
        planner_ws_free(h->pool[i].ws);
    free(h->pool);
    session *s = h->sessions;
    while (s) {
        session *n = s->next;
        session_free(s);
        s = n;
    }
    free(h->episodes);
    agent_free(h->agent);
    pthread_mutex_destroy(&h->spec_lock);
    pthread_mutex_destroy(&h->pool_lock);
    pthread_mutex_destroy(&h->sess_lock);
    pthread_mutex_destroy(&h->tlock);
    pthread_cond_destroy(&h->tcond);
    free(h);
}

static void put_agent(hosted *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&reg.lock);
    int last = --h->refs == 0;
    pthread_mutex_unlock(&reg.lock);
    if (last)
        hosted_free(h);
}

/* ---- planner workspaces ------------------------------------------------------------------- */

static planner_ws *pool_get(hosted *h, const planner_config *pc, unsigned gen)
{
    pthread_mutex_lock(&h->pool_lock);
    planner_ws *ws = NULL;
    while (h->pool_n > 0) {
        pool_entry e = h->pool[--h->pool_n];
        if (e.gen == gen) {
            ws = e.ws;
            break;
        }
        planner_ws_free(e.ws); /* made for settings that have changed since */
    }
    pthread_mutex_unlock(&h->pool_lock);
    if (!ws)
        ws = planner_ws_new(&h->agent->model, pc);
    return ws;
}

static void pool_put(hosted *h, planner_ws *ws, unsigned gen)
{
    pthread_mutex_lock(&h->pool_lock);
    if (h->pool_n == h->pool_cap) {
        int cap = h->pool_cap ? 2 * h->pool_cap : 4;
        pool_entry *p = realloc(h->pool, sizeof *p * (size_t)cap);
        if (!p) {
            pthread_mutex_unlock(&h->pool_lock);
            planner_ws_free(ws);
            return;
        }
        h->pool = p;
        h->pool_cap = cap;
    }
    h->pool[h->pool_n++] = (pool_entry){ws, gen};
    pthread_mutex_unlock(&h->pool_lock);
}

/* ---- trainer ------------------------------------------------------------------------------ */

static int can_train(hosted *h, const train_config *tc, long step)
{
    if (h->paused || h->transitions_total < tc->min_transitions)
        return 0;
    return tc->train_ratio <= 0.0f || (double)step < tc->train_ratio * (double)h->transitions_total;
}

/* Writes a checkpoint of h to the store. Returns 0 or a STORE_E* / AGENT_E* code (logged). */
static int checkpoint_agent(hosted *h, const char *why)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (agent_checkpoint_save(h->agent, &buf, &len)) {
        log_msg(LOG_ERROR, "checkpoint_failed", "agent=%s reason=out_of_memory", h->name);
        return STORE_ENOMEM;
    }
    long step = agent_step(h->agent);
    int rc = store_put_checkpoint(reg.store, h->name, step, buf, len);
    free(buf);
    if (rc) {
        log_msg(LOG_ERROR, "checkpoint_failed", "agent=%s error=\"%s\"", h->name,
                store_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&h->tlock);
    h->last_ckpt_step = step;
    h->last_ckpt_time = now_s();
    pthread_mutex_unlock(&h->tlock);
    log_msg(LOG_DEBUG, "checkpoint", "agent=%s step=%ld bytes=%zu why=%s", h->name, step, len, why);
    return 0;
}

/* Trainers run at the daemon's own nice level plus TRAINER_NICE, like the plan workers
 * (server/http.c), whichever thread started them: a trainer created by a request on a (niced)
 * worker and one started at load time then compete alike, and neither starves the HTTP threads.
 * Linux keeps one nice value per thread; elsewhere the whole process would change, so no. */
#define TRAINER_NICE 5

static void set_trainer_priority(void)
{
#ifdef __linux__
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)getpid());
    if (errno == 0) {
        int level = base + TRAINER_NICE > 19 ? 19 : base + TRAINER_NICE;
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), level))
            log_msg(LOG_DEBUG, "trainer_nice_failed", "errno=%d", errno);
    }
#endif
}

static void *trainer_main(void *arg)
{
    hosted *h = arg;
    vm_thread_init();
    tensor_set_blas_threads(1);
    set_trainer_priority();
    double last_ckpt = now_s(), t_prev = now_s();
    for (;;) {
        train_config tc;
        pthread_mutex_lock(&h->spec_lock);
        tc = h->spec.train;
        pthread_mutex_unlock(&h->spec_lock);
        pthread_mutex_lock(&h->tlock);
        while (!h->stop && !can_train(h, &tc, h->agent->step)) {
            /* Idle (paused, capped or short of data): still save steps not yet checkpointed. */
            if (now_s() - last_ckpt >= tc.checkpoint_every_s &&
                h->last_ckpt_step != agent_step(h->agent))
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&h->tcond, &h->tlock, &ts);
            pthread_mutex_lock(&h->spec_lock);
            tc = h->spec.train;
            pthread_mutex_unlock(&h->spec_lock);
        }
        int stop = h->stop, idle = !can_train(h, &tc, h->agent->step);
        pthread_mutex_unlock(&h->tlock);
        if (stop)
            break;
        if (idle) {
            checkpoint_agent(h, "idle");
            last_ckpt = now_s();
            continue;
        }
        agent_train_stats st;
        int rc = agent_train_step(h->agent, &st);
        double t = now_s();
        if (rc == 0) {
            agent_publish(h->agent);
            pthread_mutex_lock(&h->tlock);
            double dt = t - t_prev;
            double inst = dt > 0 ? 1.0 / dt : 0.0;
            h->steps_per_sec =
                h->steps_per_sec == 0.0 ? inst : 0.95 * h->steps_per_sec + 0.05 * inst;
            h->last_step_time = t;
            h->last_publish_time = t;
            pthread_mutex_unlock(&h->tlock);
        } else if (rc == AGENT_ENUMERIC) {
            log_msg(LOG_WARN, "train_step_skipped", "agent=%s reason=\"%s\"", h->name,
                    agent_strerror(rc));
        } else {
            usleep(50000);
        }
        t_prev = t;
        if (t - last_ckpt >= tc.checkpoint_every_s) {
            checkpoint_agent(h, "periodic");
            last_ckpt = now_s();
        }
        if (tc.max_steps_per_sec > 0) {
            double wait = 1.0 / tc.max_steps_per_sec - (now_s() - t);
            if (wait > 0)
                usleep((useconds_t)(wait * 1e6));
        }
    }
    return NULL;
}

static int start_trainer(hosted *h)
{
    h->stop = 0; /* no trainer runs: stopped by stop_trainer, or none yet */
    if (pthread_create(&h->thread, NULL, trainer_main, h))
        return -1;
    h->thread_started = 1;
    return 0;
}

static void stop_trainer(hosted *h)
{
    if (!h->thread_started)
        return;
    pthread_mutex_lock(&h->tlock);
    h->stop = 1;
    pthread_cond_broadcast(&h->tcond);
    pthread_mutex_unlock(&h->tlock);
    pthread_join(h->thread, NULL);
    h->thread_started = 0;
}

static void notify_trainer(hosted *h, long transitions)
{
    pthread_mutex_lock(&h->tlock);
    h->transitions_total += transitions;
    pthread_cond_signal(&h->tcond);
    pthread_mutex_unlock(&h->tlock);
}

/* ---- creation and loading ----------------------------------------------------------------- */

static hosted *hosted_new(const agent_spec *spec, char *err, size_t errlen)
{
    hosted *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(h->name, sizeof h->name, "%s", spec->name);
    h->spec = *spec;
    h->refs = 1;
    h->last_ckpt_time = -1.0;
    h->last_publish_time = now_s();
    pthread_mutex_init(&h->spec_lock, NULL);
    pthread_mutex_init(&h->pool_lock, NULL);
    pthread_mutex_init(&h->sess_lock, NULL);
    pthread_mutex_init(&h->tlock, NULL);
    pthread_cond_init(&h->tcond, NULL);
    h->agent = agent_new(&spec->model, err, errlen);
    if (!h->agent) {
        hosted_free(h);
        return NULL;
    }
    return h;
}

static int registry_add(hosted *h)
{
    pthread_mutex_lock(&reg.lock);
    int rc = 0;
    if (reg.n == reg.cap) {
        int cap = reg.cap ? 2 * reg.cap : 16;
        hosted **p = realloc(reg.items, sizeof *p * (size_t)cap);
        if (!p)
            rc = -1;
        else {
            reg.items = p;
            reg.cap = cap;
        }
    }
    if (!rc)
        reg.items[reg.n++] = h;
    pthread_mutex_unlock(&reg.lock);
    return rc;
}

typedef struct load_ctx {
    hosted *h;
    int restored; /* a checkpoint set the normaliser: do not count the data twice */
    long steps, transitions;
} load_ctx;

static int load_steps_cb(void *ctx, const store_steps *ep)
{
    load_ctx *lc = ctx;
    agent_t *a = lc->h->agent;
    int dx = ep->dx, da = ep->da;
    for (int i = 0; i < ep->n; i++) {
        int k = ep->first_k + i;
        const float *act = ep->has_action[i] ? ep->action + (size_t)i * da : NULL;
        const float *dist = (act && ep->dist && ep->has_dist && ep->has_dist[i])
                                ? ep->dist + (size_t)i * 2 * da
                                : NULL;
        int terminal = ep->terminal && i == ep->n - 1;
        int rc = lc->restored
                     ? replay_add_step(a->replay, ep->episode_id, k == 0, ep->obs + (size_t)i * dx,
                                       ep->reward[i], act, dist, terminal)
                     : agent_add_step(a, ep->episode_id, k == 0, ep->obs + (size_t)i * dx,
                                      ep->reward[i], act, dist, terminal);
        if (rc)
            return rc;
        lc->steps++;
        lc->transitions += act != NULL;
    }
    replay_close_episode(a->replay, ep->episode_id);
    return 0;
}

static int load_agent_cb(void *ctx, const char *name, const char *config_json)
{
    (void)ctx;
    agent_spec spec;
    svc_error e = {0};
    if (agent_spec_from_text(config_json, &spec, &e)) {
        log_msg(LOG_ERROR, "agent_load_failed", "agent=%s reason=\"%s\"", name, e.message);
        return 0; /* keep loading the others */
    }
    char err[256];
    hosted *h = hosted_new(&spec, err, sizeof err);
    if (!h) {
        log_msg(LOG_ERROR, "agent_load_failed", "agent=%s reason=\"%s\"", name, err);
        return 0;
    }
    load_ctx lc = {h, 0, 0, 0};
    unsigned char *buf = NULL;
    size_t len = 0;
    long step = 0;
    int rc = store_get_checkpoint(reg.store, name, &buf, &len, &step);
    if (rc == 0) {
        if (agent_checkpoint_restore(h->agent, buf, len, err, sizeof err))
            log_msg(LOG_ERROR, "checkpoint_unusable", "agent=%s reason=\"%s\" (starting fresh)",
                    name, err);
        else
            lc.restored = 1;
        free(buf);
        h->last_ckpt_step = step;
        h->last_ckpt_time = now_s();
    }
    rc = store_load_steps(reg.store, name, spec.model.replay_capacity, load_steps_cb, &lc);
    if (rc)
        log_msg(LOG_ERROR, "replay_load_failed", "agent=%s error=\"%s\"", name,
                rc < 0 && rc >= STORE_ECLOSED ? store_strerror(rc) : replay_strerror(rc));
    long steps_total = 0, trans_total = 0;
    if (store_count(reg.store, name, &steps_total, &trans_total) == 0)
        h->transitions_total = trans_total;
    else
        h->transitions_total = lc.transitions;
    if (!lc.restored)
        agent_publish(h->agent);
    if (registry_add(h) || start_trainer(h)) {
        log_msg(LOG_ERROR, "agent_load_failed", "agent=%s reason=out_of_memory", name);
        return 0;
    }
    log_msg(LOG_INFO, "agent_loaded", "agent=%s model_version=%ld replay_steps=%ld transitions=%ld",
            name, agent_step(h->agent), lc.steps, h->transitions_total);
    return 0;
}

int agents_start(const daemon_config *cfg, store_t *store)
{
    reg.cfg = cfg;
    reg.store = store;
    reg.start_time = now_s();
    int rc = store_list_agents(store, load_agent_cb, NULL);
    if (rc) {
        log_msg(LOG_ERROR, "store_list_failed", "error=\"%s\"", store_strerror(rc));
        return -1;
    }
    return 0;
}

void agents_stop(void)
{
    pthread_mutex_lock(&reg.lock);
    hosted **items = reg.items;
    int n = reg.n;
    reg.items = NULL;
    reg.n = reg.cap = 0;
    pthread_mutex_unlock(&reg.lock);
    for (int i = 0; i < n; i++) {
        stop_trainer(items[i]);
        checkpoint_agent(items[i], "shutdown");
        put_agent(items[i]);
    }
    free(items);
}

/* ---- service: agents ---------------------------------------------------------------------- */

static void status_of(hosted *h, agent_status *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&h->spec_lock);
    st->spec = h->spec;
    pthread_mutex_unlock(&h->spec_lock);
    agent_train_stats ts = agent_last_stats(h->agent);
    st->step = agent_step(h->agent);
    st->terms = ts.terms;
    st->grad_norm = ts.grad_norm;
    replay_t *r = h->agent->replay;
    pthread_mutex_lock(&r->lock);
    st->replay_steps = r->steps;
    st->replay_transitions = r->transitions;
    st->evicted_steps = r->evicted_steps;
    pthread_mutex_unlock(&r->lock);
    double now = now_s();
    pthread_mutex_lock(&h->tlock);
    st->transitions_total = h->transitions_total;
    st->paused = h->paused;
    st->training = h->last_step_time > 0 && now - h->last_step_time < 1.0;
    st->steps_per_sec = st->training ? h->steps_per_sec : 0.0;
    st->snapshot_age_s = now - h->last_publish_time;
    st->last_checkpoint_step = h->last_ckpt_step;
    st->last_checkpoint_age_s = h->last_ckpt_time < 0 ? -1.0 : now - h->last_ckpt_time;
    pthread_mutex_unlock(&h->tlock);
    pthread_mutex_lock(&h->sess_lock);
    st->sessions = h->n_sessions;
    pthread_mutex_unlock(&h->sess_lock);
}

static int store_error(svc_error *e, int rc, const char *what)
{
    if (rc == STORE_EFULL)
        return svc_fail(e, 507, "storage_full", "", "%s: the disk is full", what);
    if (rc == STORE_ENOMEM)
        return svc_fail(e, 503, "out_of_memory", "", "%s: out of memory", what);
    if (rc == STORE_ENOENT)
        return svc_fail(e, 404, "agent_not_found", "", "%s: no such agent", what);
    return svc_fail(e, 500, "storage_error", "", "%s: %s", what, store_strerror(rc));
}

int svc_agent_create(const agent_spec *spec, agent_status *out, svc_error *e)
{
    hosted *old = get_agent(spec->name, NULL);
    if (old) {
        put_agent(old);
        return svc_fail(e, 409, "agent_exists", "name", "an agent named '%s' exists already",
                        spec->name);
    }
    pthread_mutex_lock(&reg.lock);
    int full = reg.n >= reg.cfg->max_agents;
    pthread_mutex_unlock(&reg.lock);
    if (full)
        return svc_fail(e, 429, "too_many_agents", "",
                        "this daemon hosts %d agents already (max_agents)", reg.cfg->max_agents);
    char err[256];
    hosted *h = hosted_new(spec, err, sizeof err);
    if (!h) /* out of memory, unless the spec was never validated */
        return model_config_validate(&spec->model, err, sizeof err)
                   ? svc_fail(e, 422, "invalid_config", "", "%s", err)
                   : svc_fail(e, 503, "out_of_memory", "", "out of memory");
    char *text = agent_spec_to_text(spec);
    if (!text) {
        hosted_free(h);
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    }
    int rc = store_put_agent(reg.store, spec->name, text);
    free(text);
    if (rc == STORE_EEXIST) {
        hosted_free(h);
        return svc_fail(e, 409, "agent_exists", "name", "an agent named '%s' exists already",
                        spec->name);
    }
    if (rc) {
        hosted_free(h);
        return store_error(e, rc, "saving the agent");
    }
    /* Stored: from here on a failure takes the stored agent away again, so that an error means
     * no agent (the trainer starts first: the registry never holds an agent that is freed). */
    int failed = start_trainer(h);
    if (!failed && registry_add(h)) {
        stop_trainer(h);
        failed = 1;
    }
    if (failed) {
        rc = store_delete_agent(reg.store, spec->name);
        if (rc)
            log_msg(LOG_ERROR, "agent_create_undo_failed", "agent=%s error=\"%s\"", spec->name,
                    store_strerror(rc));
        hosted_free(h);
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    }
    status_of(h, out);
    log_msg(LOG_INFO, "agent_created", "agent=%s obs_dim=%d act_dim=%d params=%zu", spec->name,
            spec->model.obs_dim, spec->model.act_dim, h->agent->model.n_params);
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(hosted *const *)a)->name, (*(hosted *const *)b)->name);
}

int svc_agent_list(svc_agent_cb cb, void *ctx, svc_error *e)
{
    pthread_mutex_lock(&reg.lock);
    int n = reg.n;
    hosted **copy = malloc(sizeof *copy * (size_t)(n ? n : 1));
    if (!copy) {
        pthread_mutex_unlock(&reg.lock);
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    }
    for (int i = 0; i < n; i++) {
        copy[i] = reg.items[i];
        copy[i]->refs++;
    }
    pthread_mutex_unlock(&reg.lock);
    qsort(copy, (size_t)n, sizeof *copy, cmp_name);
    for (int i = 0; i < n; i++) {
        agent_status st;
        status_of(copy[i], &st);
        cb(ctx, &st);
        put_agent(copy[i]);
    }
    free(copy);
    return 0;
}

int svc_agent_get(const char *name, agent_status *out, svc_error *e)
{
    hosted *h = get_agent(name, e);
    if (!h)
        return -1;
    status_of(h, out);
    put_agent(h);
    return 0;
}

int svc_agent_update(const char *name, const agent_spec *spec, agent_status *out, svc_error *e)
{
    hosted *h = get_agent(name, e);
    if (!h)
        return -1;
    char *text = agent_spec_to_text(spec);
    int rc = text ? store_update_agent(reg.store, name, text) : STORE_ENOMEM;
    free(text);
    if (rc) {
        put_agent(h);
        return store_error(e, rc, "saving the settings");
    }
    pthread_mutex_lock(&h->spec_lock);
    h->spec = *spec;
    h->spec_gen++;
    pthread_mutex_unlock(&h->spec_lock);
    /* Training weights of the model take effect from the next step. */
    pthread_mutex_lock(&h->agent->train_lock);
    model_config *mc = &h->agent->model.cfg;
    mc->obs_std = spec->model.obs_std;
    mc->reward_std = spec->model.reward_std;
    mc->min_std = spec->model.min_std;
    mc->free_nats = spec->model.free_nats;
    mc->beta_z = spec->model.beta_z;
    mc->beta_a = spec->model.beta_a;
    mc->overshoot = spec->model.overshoot;
    mc->discount = spec->model.discount;
    mc->lr = spec->model.lr;
    mc->clip_norm = spec->model.clip_norm;
    h->agent->adam.lr = spec->model.lr;
    h->agent->adam.clip_norm = spec->model.clip_norm;
    pthread_mutex_unlock(&h->agent->train_lock);
    pthread_mutex_lock(&h->tlock);
    pthread_cond_signal(&h->tcond);
    pthread_mutex_unlock(&h->tlock);
    status_of(h, out);
    put_agent(h);
    log_msg(LOG_INFO, "agent_updated", "agent=%s", name);
    return 0;
}

int svc_agent_delete(const char *name, svc_error *e)
{
    pthread_mutex_lock(&reg.lock);
    hosted *h = NULL;
    for (int i = 0; i < reg.n; i++)
        if (strcmp(reg.items[i]->name, name) == 0) {
            h = reg.items[i];
            reg.items[i] = reg.items[--reg.n];
            h->deleted = 1;
            break;
        }
    pthread_mutex_unlock(&reg.lock);
    if (!h)
        return svc_fail(e, 404, "agent_not_found", "", "no agent named '%s'", name);
    stop_trainer(h);
    int rc = store_delete_agent(reg.store, name);
    if (rc && rc != STORE_ENOENT) {
        /* Still stored (disk full, I/O error): the agent goes on as before, or it would be gone
         * until the next start brings it back. */
        pthread_mutex_lock(&reg.lock);
        h->deleted = 0;
        pthread_mutex_unlock(&reg.lock);
        int back = start_trainer(h) == 0;
        if (back && registry_add(h)) { /* the registry's reference goes back with it */
            stop_trainer(h);
            back = 0;
        }
        if (!back) {
            log_msg(LOG_ERROR, "agent_delete_undo_failed",
                    "agent=%s reason=\"out of memory: still stored, back at the next start\"",
                    name);
            put_agent(h);
        }
        return store_error(e, rc, "deleting the agent's data");
    }
    put_agent(h); /* the registry's reference; in-flight requests keep theirs */
    log_msg(LOG_INFO, "agent_deleted", "agent=%s", name);
    return 0;
}

int svc_training_pause(const char *name, int pause, agent_status *out, svc_error *e)
{
    hosted *h = get_agent(name, e);
    if (!h)
        return -1;
    pthread_mutex_lock(&h->tlock);
    h->paused = pause;
    pthread_cond_signal(&h->tcond);
    pthread_mutex_unlock(&h->tlock);
    status_of(h, out);
    put_agent(h);
    log_msg(LOG_INFO, pause ? "training_paused" : "training_resumed", "agent=%s", name);
    return 0;
}

/* ---- service: sessions and acting --------------------------------------------------------- */

static session *get_session(hosted *h, const char *id, svc_error *e)
{
    pthread_mutex_lock(&h->sess_lock);
    session *s = h->sessions;
    while (s && strcmp(s->id, id) != 0)
        s = s->next;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&h->sess_lock);
    if (!s)
        svc_fail(e, 404, "session_not_found", "", "no open session '%s' on agent '%s'", id,
                 h->name);
    return s;
}

static void put_session(hosted *h, session *s)
{
    pthread_mutex_lock(&h->sess_lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&h->sess_lock);
    if (last)
        session_free(s);
}

/* Unlinks s from the table (its reference with it); the caller holds sess_lock. */
static void unlink_session_locked(hosted *h, session *s)
{
    session **pp = &h->sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = s->next;
        h->n_sessions--;
        s->closed = 1;
    }
}

static void new_session_id(char *out, size_t n)
{
    static atomic_ulong counter;
    unsigned long c = atomic_fetch_add(&counter, 1);
    uint64_t r = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&r, sizeof r, 1, f) != 1)
            r = 0;
        fclose(f);
    }
    r ^= (uint64_t)now_s() * 1000003u ^ ((uint64_t)c << 40);
    snprintf(out, n, "s-%016llx%04lx", (unsigned long long)r, c & 0xffff);
}

/* Records step x (with reward and the chosen action) in replay and store: 0, or -1 when either
 * could not take it (logged). */
static int record_step(hosted *h, session *s, const float *obs, float reward, const float *action,
                       const float *dist, int terminal)
{
    agent_t *a = h->agent;
    int first = s->step == 0;
    int rc = agent_add_step(a, s->episode_id, first, obs, reward, action, dist, terminal);
    if (rc)
        log_msg(LOG_WARN, "record_failed", "agent=%s error=\"%s\"", h->name, replay_strerror(rc));
    int failed = rc != 0;
    uint8_t has_action = action != NULL, has_dist = dist != NULL;
    float zero[MODEL_MAX_ACT * 2] = {0};
    store_steps st = {.agent = h->name,
                      .episode_id = s->episode_id,
                      .first_k = (int)s->step,
                      .n = 1,
                      .dx = a->model.cfg.obs_dim,
                      .da = a->model.cfg.act_dim,
                      .obs = obs,
                      .reward = &reward,
                      .action = action ? action : zero,
                      .has_action = &has_action,
                      .dist = dist ? dist : zero,
                      .has_dist = &has_dist,
                      .terminal = terminal};
    rc = store_append_steps_async(reg.store, &st);
    if (rc)
        log_msg(LOG_WARN, "record_store_failed", "agent=%s error=\"%s\"", h->name,
                store_strerror(rc));
    if (action && !failed)
        notify_trainer(h, 1);
    return failed || rc ? -1 : 0;
}

/* Chooses the action from the filtered state (h0, z0): planning or the policy. */
static int choose(hosted *h, const agent_snapshot *snap, const agent_spec *spec, planner_ws *ws,
                  const float *h0, const float *z0, plan_state *prev, const act_request *q,
                  rng_t *rng, act_result *out, float *dist)
{
    const model_t *m = &h->agent->model;
    int da = m->cfg.act_dim;
    out->mode = q->mode;
    out->act_dim = da;
    if (q->mode == ACT_MODE_POLICY && !q->want_plan) {
        planner_policy(m, snap->params, ws, h0, z0, q->explore, rng, out->action, dist, dist + da);
        return 0;
    }
    plan_result *pr = plan_result_new(spec->planner.horizon, da, m->cfg.obs_dim);
    if (!pr)
        return -1;
    pr->predict = q->want_plan; /* an act answers with the action alone */
    if (planner_plan(m, &spec->planner, snap->params, &snap->norm, ws, h0, z0, prev, q->deadline_ms,
                     q->explore, rng, pr)) {
        plan_result_free(pr);
        return -1;
    }
    memcpy(out->action, pr->action, sizeof(float) * (size_t)da);
    memcpy(dist, pr->u0_mean, sizeof(float) * (size_t)da);
    memcpy(dist + da, pr->u0_std, sizeof(float) * (size_t)da);
    out->degraded = pr->degraded;
    out->iterations = pr->iterations;
    out->plan_ms = pr->ms;
    out->mode = ACT_MODE_PLAN;
    if (q->want_plan)
        out->plan = pr;
    else
        plan_result_free(pr);
    return 0;
}

int svc_act(const act_request *q, act_result *out, svc_error *e)
{
    memset(out, 0, sizeof *out);
    hosted *h = get_agent(q->agent, e);
    if (!h)
        return -1;
    const model_t *m = &h->agent->model;
    int rc = -1;
    session *s = NULL;
    agent_snapshot *snap = NULL;
    planner_ws *ws = NULL;
    if (q->has_obs && q->obs_len != m->cfg.obs_dim) {
        svc_fail(e, 422, "dimension_mismatch", "observation",
                 "'observation' has %d values, agent '%s' expects %d", q->obs_len, h->name,
                 m->cfg.obs_dim);
        goto out;
    }
    if (q->session) {
        s = get_session(h, q->session, e);
        if (!s)
            goto out;
        pthread_mutex_lock(&s->lock);
        if (s->closed) {
            pthread_mutex_unlock(&s->lock);
            svc_fail(e, 404, "session_not_found", "", "session '%s' was closed", q->session);
            goto out;
        }
    }
    agent_spec spec;
    unsigned gen;
    pthread_mutex_lock(&h->spec_lock);
    spec = h->spec;
    gen = h->spec_gen;
    pthread_mutex_unlock(&h->spec_lock);
    ws = pool_get(h, &spec.planner, gen);
    if (!ws) {
        svc_fail(e, 503, "out_of_memory", "", "out of memory for a planner workspace");
        goto unlock;
    }
    snap = agent_snapshot_acquire(h->agent);
    out->model_version = snap->version;
    int dh = m->cfg.h_dim, dz = m->cfg.z_dim, da = m->cfg.act_dim;
    float dist[2 * MODEL_MAX_ACT];
    model_ws *mws = planner_ws_model(ws);
    if (s && s->plan->horizon != spec.planner.horizon) {
        /* The planner's horizon changed (PATCH): the warm start no longer fits. */
        plan_state *p = plan_state_new(spec.planner.horizon, da);
        if (!p) {
            svc_fail(e, 503, "out_of_memory", "", "out of memory");
            goto unlock;
        }
        plan_state_free(s->plan);
        s->plan = p;
    }
    if (s && !q->want_plan) {
        /* Session act: filter, choose, record. */
        snprintf(out->session_id, sizeof out->session_id, "%s", s->id);
        int first = s->step == 0;
        model_filter_step(m, snap->params, &snap->norm, mws, s->h, s->z,
                          first ? NULL : s->last_action, q->obs, q->reward, first);
        out->episode_step = s->step;
        if (q->done || q->truncated) {
            /* The episode ends (done) or stops (truncated, e.g. a time limit) at this
             * observation: record it without an action, answer with the policy's action (the
             * client resets its environment), and start a new episode next call. */
            act_request pq = *q;
            pq.mode = ACT_MODE_POLICY;
            choose(h, snap, &spec, ws, s->h, s->z, NULL, &pq, &s->rng, out, dist);
            if (q->record)
                record_step(h, s, q->obs, q->reward, NULL, NULL, q->done);
            replay_close_episode(h->agent->replay, s->episode_id);
            out->episode_done = 1;
            s->step = 0;
            s->episode_id = store_next_episode_id(reg.store);
            s->plan->valid = 0;
        } else {
            if (choose(h, snap, &spec, ws, s->h, s->z, s->plan, q, &s->rng, out, dist)) {
                svc_fail(e, 503, "out_of_memory", "", "out of memory while planning");
                goto unlock;
            }
            if (!q->record || record_step(h, s, q->obs, q->reward, out->action, dist, 0)) {
                /* An unrecorded step, or one replay or store could not take (out of memory),
                 * breaks the episode's chain of transitions: what is recorded later continues as
                 * a new (mid-episode) episode, never spliced across the gap. */
                replay_close_episode(h->agent->replay, s->episode_id);
                s->episode_id = store_next_episode_id(reg.store);
            }
            memcpy(s->last_action, out->action, sizeof(float) * (size_t)da);
            s->step++;
        }
        s->last_used = now_s();
    } else {
        /* Stateless, or a plan from a session's state (read-only). */
        float h0[MODEL_MAX_STATE] = {0}, z0[MODEL_MAX_STATE] = {0};
        plan_state *prev = NULL;
        if (s) {
            snprintf(out->session_id, sizeof out->session_id, "%s", s->id);
            out->episode_step = s->step;
            memcpy(h0, s->h, sizeof(float) * (size_t)dh);
            memcpy(z0, s->z, sizeof(float) * (size_t)dz);
            if (q->has_obs)
                model_filter_step(m, snap->params, &snap->norm, mws, h0, z0,
                                  s->step ? s->last_action : NULL, q->obs, q->reward, s->step == 0);
        } else {
            model_filter_step(m, snap->params, &snap->norm, mws, h0, z0, NULL, q->obs, 0.0f, 1);
        }
        rng_t rng;
        rng_seed(&rng, m->cfg.seed, 0x5eed0000ull + atomic_fetch_add(&h->seq, 1));
        if (choose(h, snap, &spec, ws, h0, z0, prev, q, &rng, out, dist)) {
            svc_fail(e, 503, "out_of_memory", "", "out of memory while planning");
            goto unlock;
        }
    }
    rc = 0;
unlock:
    if (s)
        pthread_mutex_unlock(&s->lock);
out:
    agent_snapshot_release(h->agent, snap);
    if (ws)
        pool_put(h, ws, gen);
    if (s)
        put_session(h, s);
    put_agent(h);
    return rc;
}

int svc_session_open(const act_request *q, act_result *out, svc_error *e)
{
    memset(out, 0, sizeof *out);
    hosted *h = get_agent(q->agent, e);
    if (!h)
        return -1;
    const model_t *m = &h->agent->model;
    if (q->has_obs && q->obs_len != m->cfg.obs_dim) {
        put_agent(h);
        return svc_fail(e, 422, "dimension_mismatch", "observation",
                        "'observation' has %d values, agent '%s' expects %d", q->obs_len, h->name,
                        m->cfg.obs_dim);
    }
    pthread_mutex_lock(&h->spec_lock);
    int horizon = h->spec.planner.horizon;
    pthread_mutex_unlock(&h->spec_lock);
    session *s = calloc(1, sizeof *s);
    if (s)
        s->plan = plan_state_new(horizon, m->cfg.act_dim);
    if (!s || !s->plan) {
        free(s);
        put_agent(h);
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    new_session_id(s->id, sizeof s->id);
    s->episode_id = store_next_episode_id(reg.store);
    s->refs = 1; /* the table's */
    s->last_used = now_s();
    rng_seed(&s->rng, m->cfg.seed, 0x5e550000ull + atomic_fetch_add(&h->seq, 1));
    pthread_mutex_lock(&h->sess_lock);
    if (h->n_sessions >= reg.cfg->max_sessions) {
        pthread_mutex_unlock(&h->sess_lock);
        session_free(s);
        put_agent(h);
        return svc_fail(e, 429, "too_many_sessions", "",
                        "agent '%s' has %d open sessions (max_sessions); close some", q->agent,
                        reg.cfg->max_sessions);
    }
    s->next = h->sessions;
    h->sessions = s;
    h->n_sessions++;
    pthread_mutex_unlock(&h->sess_lock);
    char id[SVC_SESSION_MAX + 1];
    snprintf(id, sizeof id, "%s", s->id);
    put_agent(h);
    log_msg(LOG_DEBUG, "session_opened", "agent=%s session=%s", q->agent, id);
    if (!q->has_obs) {
        snprintf(out->session_id, sizeof out->session_id, "%s", id);
        hosted *h2 = get_agent(q->agent, NULL);
        if (h2) {
            out->model_version = agent_step(h2->agent);
            put_agent(h2);
        }
        return 0;
    }
    act_request aq = *q;
    aq.session = id;
    return svc_act(&aq, out, e);
}

int svc_session_close(const char *agent, const char *id, svc_error *e)
{
    hosted *h = get_agent(agent, e);
    if (!h)
        return -1;
    session *s = get_session(h, id, e);
    if (!s) {
        put_agent(h);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    replay_close_episode(h->agent->replay, s->episode_id);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&h->sess_lock);
    int linked = !s->closed;
    unlink_session_locked(h, s);
    if (linked)
        s->refs--; /* the table's reference */
    pthread_mutex_unlock(&h->sess_lock);
    put_session(h, s);
    put_agent(h);
    return 0;
}

int agents_expire_sessions(void)
{
    if (!reg.cfg)
        return 0;
    double now = now_s(), idle = reg.cfg->session_idle_s;
    int closed = 0;
    pthread_mutex_lock(&reg.lock);
    int n = reg.n;
    hosted **copy = malloc(sizeof *copy * (size_t)(n ? n : 1));
    for (int i = 0; copy && i < n; i++) {
        copy[i] = reg.items[i];
        copy[i]->refs++;
    }
    pthread_mutex_unlock(&reg.lock);
    if (!copy)
        return 0;
    for (int i = 0; i < n; i++) {
        hosted *h = copy[i];
        for (;;) {
            pthread_mutex_lock(&h->sess_lock);
            session *s = h->sessions;
            while (s && now - s->last_used < idle)
                s = s->next;
            if (s)
                s->refs++;
            pthread_mutex_unlock(&h->sess_lock);
            if (!s)
                break;
            char id[SVC_SESSION_MAX + 1];
            snprintf(id, sizeof id, "%s", s->id);
            put_session(h, s);
            svc_error e;
            if (svc_session_close(h->name, id, &e) == 0) {
                closed++;
                log_msg(LOG_INFO, "session_expired", "agent=%s session=%s", h->name, id);
            }
        }
        put_agent(h);
    }
    free(copy);
    return closed;
}

/* ---- service: experience ------------------------------------------------------------------ */

int svc_transitions_submit(const char *agent, const episode_in *eps, int n, long *accepted,
                           long *duplicates, svc_error *e)
{
    *accepted = 0;
    *duplicates = 0;
    hosted *h = get_agent(agent, e);
    if (!h)
        return -1;
    const model_config *c = &h->agent->model.cfg;
    int dx = c->obs_dim, da = c->act_dim, rc = -1;
    store_steps *st = calloc((size_t)n, sizeof *st);
    uint8_t *dup = calloc((size_t)n, 1);
    float **rew = calloc((size_t)n, sizeof *rew);
    float **act = calloc((size_t)n, sizeof *act);
    float **dist = calloc((size_t)n, sizeof *dist);
    uint8_t **has = calloc((size_t)n, sizeof *has);
    if (!st || !dup || !rew || !act || !dist || !has) {
        svc_fail(e, 503, "out_of_memory", "", "out of memory");
        goto out;
    }
    /* Episodes as steps: step k holds x_k, the reward of action k-1 and action k. */
    for (int i = 0; i < n; i++) {
        int T = eps[i].T;
        rew[i] = calloc((size_t)T + 1, sizeof(float));
        act[i] = calloc(((size_t)T + 1) * da, sizeof(float));
        has[i] = calloc(((size_t)T + 1) * 2, 1);
        dist[i] = eps[i].dist ? calloc(((size_t)T + 1) * 2 * da, sizeof(float)) : NULL;
        if (!rew[i] || !act[i] || !has[i] || (eps[i].dist && !dist[i])) {
            svc_fail(e, 503, "out_of_memory", "", "out of memory");
            goto out;
        }
        for (int k = 1; k <= T; k++)
            rew[i][k] = eps[i].rewards[k - 1];
        memcpy(act[i], eps[i].actions, sizeof(float) * (size_t)T * da);
        memset(has[i], 1, (size_t)T);
        if (dist[i]) {
            memcpy(dist[i], eps[i].dist, sizeof(float) * (size_t)T * 2 * da);
            memset(has[i] + T + 1, 1, (size_t)T);
        }
        st[i] = (store_steps){.agent = h->name,
                              .episode_id = store_next_episode_id(reg.store),
                              .client_id = eps[i].client_id,
                              .first_k = 0,
                              .n = T + 1,
                              .dx = dx,
                              .da = da,
                              .obs = eps[i].obs,
                              .reward = rew[i],
                              .action = act[i],
                              .has_action = has[i],
                              .dist = dist[i],
                              .has_dist = dist[i] ? has[i] + T + 1 : NULL,
                              .terminal = eps[i].done};
    }
    int src = store_put_episodes(reg.store, st, n, dup);
    if (src) {
        store_error(e, src, "storing the transitions");
        goto out;
    }
    /* Durable now: feed the agent. */
    long fed = 0;
    for (int i = 0; i < n; i++) {
        if (dup[i]) {
            (*duplicates)++;
            continue;
        }
        int r = agent_add_episode(h->agent, st[i].episode_id, eps[i].T, eps[i].obs, eps[i].actions,
                                  eps[i].rewards, eps[i].dist, eps[i].done);
        if (r)
            log_msg(LOG_WARN, "replay_add_failed", "agent=%s error=\"%s\"", h->name,
                    replay_strerror(r));
        fed += eps[i].T;
    }
    *accepted = fed;
    notify_trainer(h, fed);
    rc = 0;
out:
    for (int i = 0; i < n && rew; i++) {
        free(rew[i]);
        free(act ? act[i] : NULL);
        free(dist ? dist[i] : NULL);
        free(has ? has[i] : NULL);
    }
    free(st);
    free(dup);
    free(rew);
    free(act);
    free(dist);
    free(has);
    put_agent(h);
    return rc;
}

/* ---- service: checkpoints ----------------------------------------------------------------- */

int svc_checkpoint_export(const char *agent, unsigned char **buf, size_t *len, long *step,
                          svc_error *e)
{
    hosted *h = get_agent(agent, e);
    if (!h)
        return -1;
    int rc = agent_checkpoint_save(h->agent, buf, len);
    *step = agent_step(h->agent);
    put_agent(h);
    if (rc)
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    return 0;
}

int svc_checkpoint_import(const char *agent, const unsigned char *buf, size_t len, long *step,
                          svc_error *e)
{
    hosted *h = get_agent(agent, e);
    if (!h)
        return -1;
    char err[256];
    int rc = agent_checkpoint_restore(h->agent, buf, len, err, sizeof err);
    if (rc) {
        put_agent(h);
        if (rc == AGENT_EMISMATCH)
            return svc_fail(e, 409, "checkpoint_mismatch", "", "%s", err);
        if (rc == AGENT_ENOMEM)
            return svc_fail(e, 503, "out_of_memory", "", "out of memory");
        return svc_fail(e, 422, "invalid_checkpoint", "", "%s", err);
    }
    *step = agent_step(h->agent);
    int src = checkpoint_agent(h, "import");
    if (src) {
        put_agent(h);
        return store_error(e, src, "the checkpoint was loaded but could not be saved");
    }
    pthread_mutex_lock(&h->sess_lock);
    for (session *s = h->sessions; s; s = s->next)
        s->plan->valid = 0;
    pthread_mutex_unlock(&h->sess_lock);
    put_agent(h);
    log_msg(LOG_INFO, "checkpoint_imported", "agent=%s model_version=%ld", agent, *step);
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* The per-agent families. The exposition format wants each family as one group (its HELP and
 * TYPE lines, then the samples of every agent), so the statuses are read first and printed one
 * family at a time. */
static void agent_metrics(mbuf *b, hosted *const *hs, const agent_status *st, int n)
{
    static const char *const fam[][3] = {
        {"elbod_agent_training_steps_total", "counter", "Training steps (the model version)."},
        {"elbod_agent_training_steps_per_second", "gauge", "Recent training steps per second."},
        {"elbod_agent_replay_transitions", "gauge", "Transitions in the replay window."},
        {"elbod_agent_replay_steps", "gauge", "Steps in the replay window."},
        {"elbod_agent_replay_evicted_steps_total", "counter", "Steps evicted from the replay."},
        {"elbod_agent_transitions_received_total", "counter", "Transitions received."},
        {"elbod_agent_snapshot_age_seconds", "gauge", "Age of the parameter snapshot served."},
        {"elbod_agent_sessions", "gauge", "Open sessions."},
        {"elbod_agent_training_paused", "gauge", "1 while training is paused by a user."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2], fam[f][0], fam[f][1]);
        for (int i = 0; i < n; i++) {
            const agent_status *a = &st[i];
            double v[] = {
                (double)a->step,         a->steps_per_sec,         (double)a->replay_transitions,
                (double)a->replay_steps, (double)a->evicted_steps, (double)a->transitions_total,
                a->snapshot_age_s,       (double)a->sessions,      (double)a->paused};
            mbuf_printf(b, "%s{agent=\"%s\"} %.10g\n", fam[f][0], hs[i]->name, v[f]);
        }
    }
    mbuf_printf(b, "# HELP elbod_agent_elbo_term ELBO terms of the latest training step (per step "
                   "means).\n# TYPE elbod_agent_elbo_term gauge\n");
    for (int i = 0; i < n; i++) {
        const elbo_terms *t = &st[i].terms;
        const char *names[] = {"reward",  "info_gain",  "state_kl",      "action_kl", "elbo",
                               "obs_nll", "reward_nll", "overshoot_nll", "value_loss"};
        double vals[] = {t->reward,  t->info_gain,  t->state_kl,      t->action_kl, t->elbo,
                         t->obs_nll, t->reward_nll, t->overshoot_nll, t->value_loss};
        for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++)
            if (isfinite(vals[k]))
                mbuf_printf(b, "elbod_agent_elbo_term{agent=\"%s\",term=\"%s\"} %.6g\n",
                            hs[i]->name, names[k], vals[k]);
    }
}

char *svc_metrics_text(size_t *len)
{
    mbuf b = {0};
    metrics_render_http(&b);
    mbuf_printf(&b, "# HELP elbod_up 1 while the daemon serves.\n# TYPE elbod_up gauge\n"
                    "elbod_up 1\n");
    mbuf_printf(&b, "# TYPE elbod_uptime_seconds gauge\nelbod_uptime_seconds %.1f\n",
                now_s() - reg.start_time);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        mbuf_printf(&b, "# TYPE elbod_max_resident_bytes gauge\nelbod_max_resident_bytes %ld\n",
                    ru.ru_maxrss * 1024L);
    long rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss_pages) != 2)
            rss_pages = 0;
        fclose(f);
    }
    if (rss_pages)
        mbuf_printf(&b, "# TYPE elbod_resident_bytes gauge\nelbod_resident_bytes %ld\n",
                    rss_pages * sysconf(_SC_PAGESIZE));
    pthread_mutex_lock(&reg.lock);
    int n = reg.n;
    hosted **copy = malloc(sizeof *copy * (size_t)(n ? n : 1));
    for (int i = 0; copy && i < n; i++) {
        copy[i] = reg.items[i];
        copy[i]->refs++;
    }
    pthread_mutex_unlock(&reg.lock);
    agent_status *sts = copy ? malloc(sizeof *sts * (size_t)(n ? n : 1)) : NULL;
    for (int i = 0; sts && i < n; i++)
        status_of(copy[i], &sts[i]);
    if (sts)
        agent_metrics(&b, copy, sts, n);
    else
        b.failed = 1;
    for (int i = 0; copy && i < n; i++)
        put_agent(copy[i]);
    free(sts);
    free(copy);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- service: episode returns reported by clients ----------------------------------------- */

/* A ring of the last SVC_EPISODES_MAX reports of one agent, allocated at its first report and
 * freed with the agent. In memory only: nothing is stored. */
typedef struct episode_ring {
    long total; /* reports received; report i is in items[i % SVC_EPISODES_MAX] */
    episode_report items[SVC_EPISODES_MAX];
} episode_ring;

/* Guards every agent's ring (reports are rare: one per episode). */
static pthread_mutex_t episodes_lock = PTHREAD_MUTEX_INITIALIZER;

int svc_episode_report(const char *agent, double ret, long steps, episode_report *out, svc_error *e)
{
    hosted *h = get_agent(agent, e);
    if (!h)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    episode_report rep = {.ret = ret,
                          .steps = steps,
                          .model_version = agent_step(h->agent),
                          .time = ts.tv_sec + ts.tv_nsec / 1e9};
    int rc = 0;
    pthread_mutex_lock(&episodes_lock);
    if (!h->episodes)
        h->episodes = calloc(1, sizeof *h->episodes);
    if (h->episodes) {
        rep.index = h->episodes->total++;
        h->episodes->items[rep.index % SVC_EPISODES_MAX] = rep;
    } else {
        rc = svc_fail(e, 503, "out_of_memory", "", "out of memory");
    }
    pthread_mutex_unlock(&episodes_lock);
    put_agent(h);
    if (!rc && out)
        *out = rep;
    return rc;
}

int svc_episode_list(const char *agent, episode_report *out, int max, int *n, long *total,
                     svc_error *e)
{
    hosted *h = get_agent(agent, e);
    if (!h)
        return -1;
    *n = 0;
    *total = 0;
    pthread_mutex_lock(&episodes_lock);
    if (h->episodes) {
        long t = h->episodes->total;
        long k = t < SVC_EPISODES_MAX ? t : SVC_EPISODES_MAX;
        if (k > max)
            k = max > 0 ? max : 0;
        for (long i = t - k; i < t; i++)
            out[(*n)++] = h->episodes->items[i % SVC_EPISODES_MAX];
        *total = t;
    }
    pthread_mutex_unlock(&episodes_lock);
    put_agent(h);
    return 0;
}
