/* service: what the REST handlers ask of the daemon, as plain C calls and structs.
 *
 * api/ decodes and validates requests into these structs, makes one call, and encodes the
 * result; server/ implements the calls (agents, sessions, training, store). Nothing here knows
 * about HTTP or JSON. Every call returns 0 or fills a svc_error with the HTTP status, a stable
 * error code, a message and, where one field is at fault, its name.
 */
#ifndef ELBO_SERVICE_H
#define ELBO_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "core/elbo.h"
#include "core/model.h"
#include "core/planner.h"

#define SVC_NAME_MAX    64
#define SVC_SESSION_MAX 40

typedef struct svc_error {
    int status;        /* HTTP status */
    char code[40];     /* stable machine-readable code, e.g. "agent_not_found" */
    char message[320]; /* one sentence for people */
    char field[64];    /* the request field at fault, or "" */
} svc_error;

/* Fills e and returns -1 (handy as `return svc_fail(e, ...)`). */
int svc_fail(svc_error *e, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* How an agent trains in the background. */
typedef struct train_config {
    float train_ratio;       /* gradient steps per transition received (cap); 0 = no cap */
    int min_transitions;     /* transitions needed before training starts */
    float max_steps_per_sec; /* throttle; 0 = as fast as the trainer thread runs */
    int checkpoint_every_s;  /* periodic checkpoint interval */
} train_config;

void train_config_defaults(train_config *t);
int train_config_validate(const train_config *t, char *err, size_t errlen);

typedef struct agent_spec {
    char name[SVC_NAME_MAX + 1];
    model_config model;
    planner_config planner;
    train_config train;
} agent_spec;

/* Everything GET /v1/agents/{name} and GET .../training show. */
typedef struct agent_status {
    agent_spec spec;
    long step; /* training steps done = model version of the latest snapshot */
    long replay_steps, replay_transitions;
    uint64_t evicted_steps;
    long transitions_total; /* transitions received since creation */
    int paused, training;   /* paused by a user; a step ran in the last second */
    double steps_per_sec;
    double snapshot_age_s;
    long sessions;
    elbo_terms terms; /* of the latest training step */
    double grad_norm;
    long last_checkpoint_step;
    double last_checkpoint_age_s; /* < 0 when none */
} agent_status;

/* ---- agents ---- */
int svc_agent_create(const agent_spec *spec, agent_status *out, svc_error *e);
/* Calls cb for every agent (in name order); the status is valid during the call only. */
typedef void (*svc_agent_cb)(void *ctx, const agent_status *st);
int svc_agent_list(svc_agent_cb cb, void *ctx, svc_error *e);
int svc_agent_get(const char *name, agent_status *out, svc_error *e);
/* Settings that may change on a live agent: the planner, training, and the model's training
 * weights (not its shapes). `spec` holds the complete new settings (api merges the patch into
 * the current spec first). */
int svc_agent_update(const char *name, const agent_spec *spec, agent_status *out, svc_error *e);
int svc_agent_delete(const char *name, svc_error *e);
/* Pause (1) or resume (0) training. */
int svc_training_pause(const char *name, int pause, agent_status *out, svc_error *e);

/* ---- acting ---- */
typedef enum act_mode { ACT_MODE_PLAN = 0, ACT_MODE_POLICY = 1 } act_mode;

typedef struct act_request {
    const char *agent;
    const char *session; /* NULL: stateless (fresh filter state) */
    const float *obs;
    int obs_len;
    float reward;  /* reward of the previous action (sessions; ignored on an episode's first) */
    int done;      /* the observation ends the episode: the environment said so (sessions) */
    int truncated; /* the episode stops here without ending (a time limit; sessions) */
    act_mode mode;
    int explore;
    double deadline_ms; /* <= 0: none */
    int record;         /* sessions: record the transition (default 1) */
    int want_plan;      /* fill `plan` (POST .../plan) */
    int has_obs;        /* session open: an observation was given */
} act_request;

typedef struct act_result {
    float action[MODEL_MAX_ACT];
    int act_dim;
    long model_version;
    int degraded;   /* a deadline cut planning short */
    int iterations; /* planner refits (0 in policy mode) */
    double plan_ms;
    int episode_done;  /* the session's episode ended with this call */
    long episode_step; /* index of this observation within the session's episode */
    char session_id[SVC_SESSION_MAX + 1];
    act_mode mode;
    plan_result *plan; /* owned by the result when want_plan; free with svc_act_result_free */
} act_result;

void svc_act_result_free(act_result *r);

int svc_act(const act_request *req, act_result *out, svc_error *e);
/* Opens a session (with an optional first observation, answered like an act). */
int svc_session_open(const act_request *req, act_result *out, svc_error *e);
int svc_session_close(const char *agent, const char *session, svc_error *e);

/* ---- experience ---- */
typedef struct episode_in {
    const char *client_id; /* idempotency key or NULL */
    int T;                 /* transitions; observations hold T + 1 rows */
    float *obs;            /* (T+1, dx) */
    float *actions;        /* (T, da) */
    float *rewards;        /* (T) */
    float *dist;           /* (T, 2 da) planner mean/std in u-space, or NULL */
    int done;
} episode_in;

/* Commits the episodes durably, then feeds them to the agent. accepted counts transitions
 * newly stored, duplicates the episodes skipped because their id was seen before. */
int svc_transitions_submit(const char *agent, const episode_in *eps, int n, long *accepted,
                           long *duplicates, svc_error *e);

/* ---- checkpoints ---- */
/* A fresh checkpoint image of the agent (malloc'd; the caller frees it). */
int svc_checkpoint_export(const char *agent, unsigned char **buf, size_t *len, long *step,
                          svc_error *e);
int svc_checkpoint_import(const char *agent, const unsigned char *buf, size_t len, long *step,
                          svc_error *e);

/* ---- episode returns reported by clients ---- */
/* Kept in memory only: the last SVC_EPISODES_MAX reports of each agent, lost when the agent is
 * deleted or the daemon restarts. */
#define SVC_EPISODES_MAX 1000

typedef struct episode_report {
    long index;         /* 0, 1, ...: the order of the agent's reports */
    double ret;         /* the episode's return */
    long steps;         /* its length in steps */
    long model_version; /* the agent's model version when it was reported */
    double time;        /* when it was reported, Unix seconds */
} episode_report;

int svc_episode_report(const char *agent, double ret, long steps, episode_report *out,
                       svc_error *e);
/* Copies the agent's last reports (at most max, oldest first) to out; *n is how many, *total
 * how many the agent received in all. */
int svc_episode_list(const char *agent, episode_report *out, int max, int *n, long *total,
                     svc_error *e);

/* ---- daemon ---- */
int svc_ready(void);
/* Prometheus text; malloc'd. */
char *svc_metrics_text(size_t *len);
/* Per-request accounting for /metrics: route pattern, status, seconds. */
void svc_observe_request(const char *route, int status, double seconds);
/* Limits the api enforces. */
typedef struct svc_limits {
    size_t max_body_bytes;
    int max_episodes_per_request;
    long max_steps_per_request;
} svc_limits;
svc_limits svc_get_limits(void);

/* ---- authentication (server/auth.c) ---- */
/* The role a route needs; an API key's role includes the ones below it (admin > train > act). */
typedef enum svc_role {
    SVC_ROLE_NONE = 0, /* public: no key needed */
    SVC_ROLE_ACT,      /* act, plan, sessions, reads */
    SVC_ROLE_TRAIN,    /* submit transitions, pause and resume training */
    SVC_ROLE_ADMIN     /* create, change and delete agents, checkpoints */
} svc_role;
/* Whether a request with this Authorization header value (NULL when absent) may use a route that
 * needs `need`: 0 yes (always when the daemon has no keys file, or need is SVC_ROLE_NONE), 401
 * no key, a malformed header or an unknown key, 403 a known key whose role is below `need`. */
int svc_authorize(const char *authorization, svc_role need);

#endif
