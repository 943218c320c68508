/* stub_service: every call of api/service.h over fixed fake data, for the api fuzzer.
 *
 * No daemon, no store, no disk, no threads: a handful of fake agents and one open session, and
 * cheap checks in the spirit of server/agents.c (unknown agent 404, observation length 422,
 * existing name 409...). Every array the api decoded is read in full, so that AddressSanitizer
 * sees a decoder that allocated or filled less than it promised. Numbers the request carried are
 * echoed into the results, so that the encoders see them too.
 */
#include "stub_service.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/service.h"
#include "core/agent.h"
#include "core/planner.h"

/* A 64-character name: the longest a route may capture. */
#define STUB_LONG_NAME "a234567890123456789012345678901234567890123456789012345678901234"

typedef struct fake_agent {
    const char *name;
    int obs_dim, act_dim;
    int cem;
} fake_agent;

static const fake_agent fakes[] = {
    {STUB_LONG_NAME, 1, 1, 0},
    {"arm", 17, 6, 1},
    {"pendulum", 3, 1, 0},
    {"wide", MODEL_MAX_OBS, MODEL_MAX_ACT, 0},
};
#define N_FAKES (int)(sizeof fakes / sizeof fakes[0])

const char *const stub_agent_names[STUB_N_NAMES] = {
    "pendulum", "arm", "wide", STUB_LONG_NAME, "ghost", "p.e-n_d", "x", "pendulum2",
};

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static const fake_agent *find(const char *name)
{
    for (int i = 0; i < N_FAKES; i++)
        if (strcmp(fakes[i].name, name) == 0)
            return &fakes[i];
    return NULL;
}

static void fake_spec(const fake_agent *f, agent_spec *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", f->name);
    model_config_defaults(&s->model, f->obs_dim, f->act_dim);
    for (int i = 0; i < f->act_dim; i++) {
        s->model.act_low[i] = -1.0f - (float)i;
        s->model.act_high[i] = 2.0f + (float)i;
    }
    planner_config_defaults(&s->planner);
    if (f->cem)
        s->planner.method = PLAN_CEM;
    train_config_defaults(&s->train);
}

/* spec may point into st (api/api.c's PATCH passes &st.spec and &st): copied first. */
static void fake_status(const agent_spec *spec, agent_status *st)
{
    agent_spec copy = *spec;
    memset(st, 0, sizeof *st);
    st->spec = copy;
    st->step = 1234;
    st->replay_steps = 5000;
    st->replay_transitions = 4990;
    st->evicted_steps = 77;
    st->transitions_total = 5067;
    st->training = 1;
    st->steps_per_sec = 123.456;
    st->snapshot_age_s = 0.25;
    st->sessions = 1;
    st->terms = (elbo_terms){.reward = -1.5f,
                             .info_gain = 0.25f,
                             .state_kl = 3.0f,
                             .action_kl = 0.5f,
                             .elbo = -10.0f,
                             .obs_nll = 4.0f,
                             .reward_nll = 1.0f,
                             .cont_nll = 0.1f,
                             .overshoot_nll = 2.0f,
                             .value_loss = 0.3f,
                             .action_xent_fraction = 0.75f,
                             .loss = NAN}; /* encoded as null */
    st->grad_norm = INFINITY;              /* likewise */
    st->last_checkpoint_step = 1200;
    st->last_checkpoint_age_s = spec->name[0] == 'a' ? -1.0 : 12.5;
}

static const fake_agent *get(const char *name, svc_error *e)
{
    if (!name || strlen(name) > SVC_NAME_MAX) {
        svc_fail(e, 500, "internal", "", "stub: bad agent name pointer or length");
        return NULL;
    }
    const fake_agent *f = find(name);
    if (!f)
        svc_fail(e, 404, "agent_not_found", "", "no agent named '%s'", name);
    return f;
}

void train_config_defaults(train_config *t)
{
    t->train_ratio = 4.0f;
    t->min_transitions = 100;
    t->max_steps_per_sec = 0.0f;
    t->checkpoint_every_s = 60;
}

/* The same rules as server/agents.c. */
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

int svc_agent_create(const agent_spec *spec, agent_status *out, svc_error *e)
{
    if (find(spec->name))
        return svc_fail(e, 409, "agent_exists", "name", "an agent named '%s' exists", spec->name);
    char err[256];
    if (model_config_validate(&spec->model, err, sizeof err) ||
        planner_config_validate(&spec->planner, err, sizeof err) ||
        train_config_validate(&spec->train, err, sizeof err))
        return svc_fail(e, 500, "internal", "", "stub: api passed an invalid spec: %s", err);
    fake_status(spec, out);
    out->step = 0;
    out->sessions = 0;
    return 0;
}

int svc_agent_list(svc_agent_cb cb, void *ctx, svc_error *e)
{
    (void)e;
    for (int i = 0; i < N_FAKES; i++) {
        agent_spec s;
        agent_status st;
        fake_spec(&fakes[i], &s);
        fake_status(&s, &st);
        cb(ctx, &st);
    }
    return 0;
}

int svc_agent_get(const char *name, agent_status *out, svc_error *e)
{
    const fake_agent *f = get(name, e);
    if (!f)
        return -1;
    agent_spec s;
    fake_spec(f, &s);
    fake_status(&s, out);
    return 0;
}

int svc_agent_update(const char *name, const agent_spec *spec, agent_status *out, svc_error *e)
{
    const fake_agent *f = get(name, e);
    if (!f)
        return -1;
    agent_spec cur;
    fake_spec(f, &cur);
    /* Shapes never change through a PATCH. */
    const model_config *a = &cur.model, *b = &spec->model;
    if (strcmp(spec->name, name) || a->obs_dim != b->obs_dim || a->act_dim != b->act_dim ||
        a->h_dim != b->h_dim || a->z_dim != b->z_dim || a->hidden != b->hidden ||
        a->head_layers != b->head_layers || a->act != b->act || a->seed != b->seed ||
        a->replay_capacity != b->replay_capacity)
        return svc_fail(e, 500, "internal", "", "stub: PATCH changed an immutable setting");
    fake_status(spec, out);
    return 0;
}

int svc_agent_delete(const char *name, svc_error *e)
{
    return get(name, e) ? 0 : -1;
}

int svc_training_pause(const char *name, int pause, agent_status *out, svc_error *e)
{
    if (svc_agent_get(name, out, e))
        return -1;
    out->paused = pause != 0;
    out->training = !out->paused;
    return 0;
}

void svc_act_result_free(act_result *r)
{
    plan_result_free(r->plan);
    r->plan = NULL;
}

/* Checks what every act-like call shares and fills the action from the observation. */
static const fake_agent *act_common(const act_request *q, act_result *out, svc_error *e)
{
    memset(out, 0, sizeof *out);
    const fake_agent *f = get(q->agent, e);
    if (!f)
        return NULL;
    if (q->has_obs && (!q->obs || q->obs_len != f->obs_dim)) {
        svc_fail(e, 422, "dimension_mismatch", "observation",
                 "'observation' has %d values, agent '%s' expects %d", q->obs_len, f->name,
                 f->obs_dim);
        return NULL;
    }
    if ((q->has_obs && !all_finite(q->obs, (size_t)q->obs_len)) || !isfinite(q->reward) ||
        (q->deadline_ms < 0 || q->deadline_ms > 600000.0) ||
        (q->mode != ACT_MODE_PLAN && q->mode != ACT_MODE_POLICY)) {
        svc_fail(e, 500, "internal", "", "stub: api passed an unchecked value");
        return NULL;
    }
    out->act_dim = f->act_dim;
    for (int i = 0; i < f->act_dim; i++)
        out->action[i] = q->has_obs ? q->obs[i % q->obs_len] : 0.5f;
    out->model_version = 1234;
    out->mode = q->mode;
    out->iterations = q->mode == ACT_MODE_PLAN ? 4 : 0;
    out->plan_ms = q->deadline_ms > 0 ? q->deadline_ms / 2 : 3.5;
    out->degraded = q->deadline_ms > 0 && q->deadline_ms < 1;
    return f;
}

int svc_act(const act_request *q, act_result *out, svc_error *e)
{
    const fake_agent *f = act_common(q, out, e);
    if (!f)
        return -1;
    if (q->session) {
        if (strcmp(q->session, STUB_SESSION) != 0)
            return svc_fail(e, 404, "session_not_found", "", "no session '%s'", q->session);
        if (!q->want_plan) {
            snprintf(out->session_id, sizeof out->session_id, "%s", q->session);
            out->episode_step = 7;
            out->episode_done = q->done || q->truncated;
        }
    } else if (!q->has_obs) {
        return svc_fail(e, 500, "internal", "", "stub: stateless act without an observation");
    }
    if (q->want_plan) {
        int H = 3 + f->act_dim % 5;
        plan_result *p = plan_result_new(H, f->act_dim, f->obs_dim);
        if (!p)
            return svc_fail(e, 503, "out_of_memory", "", "out of memory");
        for (int t = 0; t < H; t++) {
            for (int j = 0; j < f->act_dim; j++) {
                size_t k = (size_t)t * f->act_dim + j;
                p->mean[k] = out->action[j];
                p->std[k] = 0.1f * (float)t;
                p->u_mean[k] = out->action[j] * 1e30f; /* overflows to inf: encoded as null */
                p->u_std[k] = 1.0f;
            }
            p->pred_reward[t] = q->reward;
            p->pred_reward_std[t] = t == 0 ? NAN : 1.0f;
            for (int j = 0; j < f->obs_dim; j++) {
                size_t k = (size_t)t * f->obs_dim + j;
                p->pred_obs[k] = q->has_obs ? q->obs[j] : 0.0f;
                p->pred_obs_std[k] = 3.4e38f;
            }
        }
        p->expected_return = q->reward;
        p->info_bonus = 1e-300;
        p->action_logratio = -0.0;
        p->terminal_value = 0.0;
        p->objective = -INFINITY;
        out->plan = p;
    }
    return 0;
}

int svc_session_open(const act_request *q, act_result *out, svc_error *e)
{
    const fake_agent *f = act_common(q, out, e);
    if (!f)
        return -1;
    if (q->session)
        return svc_fail(e, 500, "internal", "", "stub: session open with a session id");
    snprintf(out->session_id, sizeof out->session_id, "%s", STUB_SESSION);
    return 0;
}

int svc_session_close(const char *agent, const char *session, svc_error *e)
{
    if (!get(agent, e))
        return -1;
    if (!session || strlen(session) > SVC_SESSION_MAX)
        return svc_fail(e, 500, "internal", "", "stub: bad session id");
    if (strcmp(session, STUB_SESSION) != 0)
        return svc_fail(e, 404, "session_not_found", "", "no session '%s'", session);
    return 0;
}

int svc_transitions_submit(const char *agent, const episode_in *eps, int n, long *accepted,
                           long *duplicates, svc_error *e)
{
    *accepted = 0;
    *duplicates = 0;
    const fake_agent *f = get(agent, e);
    if (!f)
        return -1;
    svc_limits lim = svc_get_limits();
    if (n < 1 || n > lim.max_episodes_per_request || !eps)
        return svc_fail(e, 500, "internal", "", "stub: %d episodes passed", n);
    int dx = f->obs_dim, da = f->act_dim;
    long steps = 0;
    for (int i = 0; i < n; i++) {
        const episode_in *ep = &eps[i];
        if (ep->T < 1 || !ep->obs || !ep->actions || !ep->rewards)
            return svc_fail(e, 500, "internal", "", "stub: episode %d is incomplete", i);
        steps += ep->T;
        /* Every value must be there (ASan) and finite. */
        if (!all_finite(ep->obs, (size_t)(ep->T + 1) * dx) ||
            !all_finite(ep->actions, (size_t)ep->T * da) ||
            !all_finite(ep->rewards, (size_t)ep->T) ||
            (ep->dist && !all_finite(ep->dist, (size_t)ep->T * 2 * da)))
            return svc_fail(e, 500, "internal", "", "stub: a non-finite value passed");
        for (size_t k = 0; ep->dist && k < (size_t)ep->T * 2 * da; k++)
            if (k % (2 * (size_t)da) >= (size_t)da && !(ep->dist[k] > 0))
                return svc_fail(e, 500, "internal", "", "stub: a std <= 0 passed");
        if (ep->client_id && strlen(ep->client_id) > 128)
            return svc_fail(e, 500, "internal", "", "stub: client id too long");
        if (ep->client_id && strncmp(ep->client_id, "dup", 3) == 0)
            (*duplicates)++;
        else
            *accepted += ep->T;
    }
    if (steps > lim.max_steps_per_request)
        return svc_fail(e, 500, "internal", "", "stub: %ld steps passed", steps);
    return 0;
}

int svc_checkpoint_export(const char *agent, unsigned char **buf, size_t *len, long *step,
                          svc_error *e)
{
    if (!get(agent, e))
        return -1;
    static const unsigned char img[] = "ELBOCKPT\002\0\0\0 a fake checkpoint\n";
    unsigned char *p = malloc(sizeof img);
    if (!p)
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    memcpy(p, img, sizeof img);
    *buf = p;
    *len = sizeof img;
    *step = 1234;
    return 0;
}

int svc_checkpoint_import(const char *agent, const unsigned char *buf, size_t len, long *step,
                          svc_error *e)
{
    const fake_agent *f = get(agent, e);
    if (!f)
        return -1;
    if (!buf || len == 0)
        return svc_fail(e, 500, "internal", "", "stub: empty checkpoint passed");
    /* The header checks of the real import (pure: no agent, no disk). */
    model_config c;
    char err[256] = "";
    if (agent_checkpoint_config(buf, len, &c, err, sizeof err))
        return svc_fail(e, 422, "invalid_checkpoint", "", "%s", err);
    if (c.obs_dim != f->obs_dim || c.act_dim != f->act_dim)
        return svc_fail(e, 409, "checkpoint_mismatch", "", "checkpoint of another shape");
    *step = 99;
    return 0;
}

int svc_episode_report(const char *agent, double ret, long steps, episode_report *out, svc_error *e)
{
    if (!get(agent, e))
        return -1;
    if (!isfinite(ret) || steps < 0)
        return svc_fail(e, 500, "internal", "", "stub: api passed an unchecked report");
    if (out)
        *out = (episode_report){
            .index = 41, .ret = ret, .steps = steps, .model_version = 1234, .time = 1.7e9};
    return 0;
}

int svc_episode_list(const char *agent, episode_report *out, int max, int *n, long *total,
                     svc_error *e)
{
    const fake_agent *f = get(agent, e);
    if (!f)
        return -1;
    if (!out || max < 1 || max > SVC_EPISODES_MAX)
        return svc_fail(e, 500, "internal", "", "stub: bad episode list buffer");
    /* "wide" has a full ring: the largest list there is. */
    int k = f->obs_dim == MODEL_MAX_OBS ? max : f->act_dim;
    for (int i = 0; i < k; i++)
        out[i] = (episode_report){.index = 5000 - k + i,
                                  .ret = i % 7 == 3 ? NAN : -100.5 + i,
                                  .steps = 200,
                                  .model_version = 10 * i,
                                  .time = 1.7e9 + i};
    *n = k;
    *total = 5000;
    return 0;
}

int stub_keys_required;

int svc_authorize(const char *authorization, svc_role need)
{
    if (need == SVC_ROLE_NONE || !stub_keys_required)
        return 0;
    if (!authorization)
        return 401;
    if (strcmp(authorization, "Bearer " STUB_ADMIN_KEY) == 0)
        return 0;
    if (strcmp(authorization, "Bearer " STUB_ACT_KEY) == 0)
        return need <= SVC_ROLE_ACT ? 0 : 403;
    return 401;
}

int svc_ready(void)
{
    return 1;
}

char *svc_metrics_text(size_t *len)
{
    static const char text[] = "# TYPE elbod_up gauge\nelbod_up 1\n"
                               "elbod_agent_replay_steps{agent=\"pendulum\"} 5000\n";
    char *t = malloc(sizeof text);
    if (!t)
        return NULL;
    memcpy(t, text, sizeof text);
    *len = sizeof text - 1;
    return t;
}

void svc_observe_request(const char *route, int status, double seconds)
{
    (void)route;
    (void)status;
    (void)seconds;
}

svc_limits svc_get_limits(void)
{
    /* Small limits, so that the 413 paths are in reach of short inputs. */
    svc_limits l = {1 << 20, 16, 64};
    return l;
}
