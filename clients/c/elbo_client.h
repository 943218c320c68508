/* elbo_client: a small C client of elbod's REST API (libcurl + Jansson), for robots, games and
 * tools such as elboctl.
 *
 * One elbo_client handle holds the base URL, an optional bearer token, the timeouts and one CURL
 * easy handle, reused for every request so that the connection stays open (keep-alive). A handle
 * is not thread-safe: use one per thread. The library never exits or aborts the process and never
 * prints.
 *
 * Errors. Every fallible function returns an int: 0 on success or a negative ELBO_E* code
 * (elbo_strerror names it). The details of the last failure (the HTTP status, the server's
 * error code, message and field, the request id) stay in the handle until the next request:
 * elbo_client_last_error. ELBO_EHTTP means the server answered with a status >= 400.
 *
 * Ownership. JSON results come back through `json_t **out` as new references (the caller calls
 * json_decref); *out is NULL on failure. JSON arguments are borrowed (never stolen). Byte results
 * (checkpoints, metrics) are malloc'd and freed by the caller with free(). Strings passed in are
 * copied or only read during the call.
 *
 * Thread note: libcurl wants curl_global_init(CURL_GLOBAL_DEFAULT) called once before threads
 * start; a single-threaded program may skip it (curl_easy_init does it on first use).
 */
#ifndef ELBO_CLIENT_H
#define ELBO_CLIENT_H

#include <jansson.h>
#include <stddef.h>

/* Status codes: 0 or one of these (negative). */
#define ELBO_OK        0
#define ELBO_EARG      -1 /* a bad argument (NULL, a non-finite number, a dimension that is off) */
#define ELBO_ENOMEM    -2 /* out of memory */
#define ELBO_ECONNECT  -3 /* no connection: refused, unreachable, name not resolved, reset */
#define ELBO_ETIMEOUT  -4 /* the request timed out */
#define ELBO_EHTTP     -5 /* the server answered with an error status (see elbo_error) */
#define ELBO_EPROTO    -6 /* the answer was not what the API promises (not JSON, missing field) */
#define ELBO_ETOOBIG   -7 /* the answer is larger than max_response_bytes */
#define ELBO_ETRANSFER -8 /* another transfer error of libcurl */

/* A short English description of an ELBO_E* code (static storage). */
const char *elbo_strerror(int rc);

/* The details of the last failed request. */
typedef struct elbo_error {
    int rc;              /* the ELBO_E* code, 0 after a success */
    long status;         /* the HTTP status, 0 when no answer came */
    char code[64];       /* the server's error.code ("agent_not_found"), "" when none */
    char message[512];   /* the server's error.message, or a local description */
    char field[160];     /* the server's error.field, "" when none */
    char request_id[64]; /* the X-Request-Id of the answer, "" when none */
} elbo_error;

typedef struct elbo_client_options {
    const char *token;         /* bearer token (sent as Authorization), NULL for none */
    long timeout_ms;           /* whole request; 0 = no limit. Default 60000 */
    long connect_timeout_ms;   /* connection set-up; default 5000 */
    size_t max_response_bytes; /* answers above are refused (ELBO_ETOOBIG); default 1 GiB */
    int use_env_proxy;         /* 1: honour http_proxy & co.; 0 (default): connect directly */
} elbo_client_options;

/* The defaults above, for a designated initialiser or a copy to modify. */
#define ELBO_CLIENT_OPTIONS_DEFAULT                                     \
    {                                                                   \
        .token = NULL, .timeout_ms = 60000, .connect_timeout_ms = 5000, \
        .max_response_bytes = (size_t)1 << 30, .use_env_proxy = 0       \
    }

typedef struct elbo_client elbo_client;

/* A client of the daemon at base_url ("http://127.0.0.1:8080"; a trailing '/' is ignored).
 * opt may be NULL (defaults). The strings are copied. Returns NULL when out of memory, when
 * base_url is NULL or empty, when the token holds a line break, or when libcurl cannot start.
 * Free with elbo_client_free. */
elbo_client *elbo_client_new(const char *base_url, const elbo_client_options *opt);

/* Frees the handle and closes its connection. NULL is a no-op. */
void elbo_client_free(elbo_client *c);

/* The base URL in use, without a trailing '/' (borrowed from c). */
const char *elbo_client_url(const elbo_client *c);

/* The last request's error details (borrowed from c, valid until its next request). */
const elbo_error *elbo_client_last_error(const elbo_client *c);

/* The raw body of the last answer, error answers included (borrowed, valid until the next
 * request; NUL-terminated, *len without the NUL). "" when there was none. */
const char *elbo_client_last_body(const elbo_client *c, size_t *len);

/* ---- daemon ------------------------------------------------------------------------------- */

/* GET /healthz, /readyz, /v1/version: the answer's JSON in *out. A 503 of /readyz (not ready)
 * is ELBO_EHTTP. */
int elbo_healthz(elbo_client *c, json_t **out);
int elbo_readyz(elbo_client *c, json_t **out);
int elbo_version(elbo_client *c, json_t **out);

/* GET /metrics: the Prometheus text, malloc'd and NUL-terminated, in *text (its length in *len
 * when len is not NULL). The caller frees *text. */
int elbo_metrics(elbo_client *c, char **text, size_t *len);

/* ---- agents ------------------------------------------------------------------------------- */

/* POST /v1/agents with spec (a JSON object, borrowed): the created agent in *out. */
int elbo_agent_create(elbo_client *c, const json_t *spec, json_t **out);

/* Creates an agent from its shape: name, observation and action dimensions, the action box
 * (act_dim values each) and optional extra fields (a JSON object, borrowed, merged over the
 * shape: "model", "planner", "training"). The created agent in *out (out may be NULL). */
int elbo_agent_create_box(elbo_client *c, const char *name, int obs_dim, int act_dim,
                          const double *low, const double *high, const json_t *extra, json_t **out);

/* GET /v1/agents: {"agents":[...]} in *out. */
int elbo_agents_list(elbo_client *c, json_t **out);

/* GET, PATCH (changes: a JSON object, borrowed) and DELETE /v1/agents/{name}. */
int elbo_agent_get(elbo_client *c, const char *name, json_t **out);
int elbo_agent_patch(elbo_client *c, const char *name, const json_t *changes, json_t **out);
int elbo_agent_delete(elbo_client *c, const char *name, json_t **out);

/* ---- acting ------------------------------------------------------------------------------- */

/* POST /v1/agents/{name}/act (stateless) and /plan with a request object (borrowed): the action
 * response in *out. */
int elbo_act(elbo_client *c, const char *name, const json_t *request, json_t **out);
int elbo_plan(elbo_client *c, const char *name, const json_t *request, json_t **out);

/* POST /v1/agents/{name}/sessions; request (borrowed) may be NULL (no body). The answer, with
 * "session_id", in *out. */
int elbo_session_open(elbo_client *c, const char *name, const json_t *request, json_t **out);

/* POST /v1/agents/{name}/sessions/{id}/act with a request object (borrowed). */
int elbo_session_act_json(elbo_client *c, const char *name, const char *session,
                          const json_t *request, json_t **out);

/* DELETE /v1/agents/{name}/sessions/{id}: {"closed":id} in *out (out may be NULL). */
int elbo_session_close(elbo_client *c, const char *name, const char *session, json_t **out);

/* ---- experience, training, checkpoints ---------------------------------------------------- */

/* POST /v1/agents/{name}/transitions with {"episodes":[...]} or {"transitions":[...]}
 * (borrowed): {"accepted","duplicates","episodes"} in *out. */
int elbo_transitions_submit(elbo_client *c, const char *name, const json_t *body, json_t **out);

/* The same with a body that is already serialised JSON (len bytes, read during the call). */
int elbo_transitions_submit_raw(elbo_client *c, const char *name, const char *body, size_t len,
                                json_t **out);

/* GET /v1/agents/{name}/training, and POST it with {"action":"pause"} or "resume": the training
 * status in *out. */
int elbo_training_get(elbo_client *c, const char *name, json_t **out);
int elbo_training_pause(elbo_client *c, const char *name, json_t **out);
int elbo_training_resume(elbo_client *c, const char *name, json_t **out);

/* GET /v1/agents/{name}/checkpoint: the file's bytes, malloc'd, in *data and *len. The caller
 * frees *data. */
int elbo_checkpoint_export(elbo_client *c, const char *name, unsigned char **data, size_t *len);

/* PUT /v1/agents/{name}/checkpoint with len bytes (read during the call): {"model_version":n} in
 * *out (out may be NULL). */
int elbo_checkpoint_import(elbo_client *c, const char *name, const void *data, size_t len,
                           json_t **out);

/* ---- convenience for robots: no JSON at the call site ------------------------------------- */

/* How the convenience acting functions ask for actions. */
typedef struct elbo_act_options {
    const char *mode;   /* "plan" or "policy"; NULL: the server's default (plan) */
    int explore;        /* 1: sample the action instead of taking the mean */
    double deadline_ms; /* planning budget, 0 = none */
    int record;         /* sessions: 1 (default) records the step for training */
    int truncated;      /* sessions: the episode stops at this observation without ending
                         * (a time limit): recorded without an action, next call starts anew */
} elbo_act_options;

#define ELBO_ACT_OPTIONS_DEFAULT                                                    \
    {                                                                               \
        .mode = NULL, .explore = 0, .deadline_ms = 0.0, .record = 1, .truncated = 0 \
    }

/* What an action response said besides the action. */
typedef struct elbo_act_info {
    long model_version;
    long episode_step; /* sessions; -1 otherwise */
    int episode_done;  /* sessions: 1 when this observation ended the episode */
    int degraded;      /* the deadline cut planning short */
    int iterations;    /* planner refits (0 in policy mode) */
    double plan_ms;    /* planning time on the server */
    double latency_ms; /* the request's round trip, measured here */
    char mode[8];      /* "plan" or "policy" */
    char request_id[64];
} elbo_act_info;

/* Sets the options elbo_session_act uses (copied; mode must be a static string or outlive c).
 * Until then it uses ELBO_ACT_OPTIONS_DEFAULT. */
void elbo_client_set_act_options(elbo_client *c, const elbo_act_options *opt);

/* Opens a session without an observation and copies its id into sid (cap bytes, at least 40 are
 * enough). */
int elbo_session_open_id(elbo_client *c, const char *agent, char *sid, size_t cap);

/* One session step: sends the observation (dx floats), the reward of the previous action and
 * whether this observation ends the episode, with the client's act options; writes the da
 * floats of the answer's action into action and its model version into *model_version (may be
 * NULL). ELBO_EPROTO when the action has not da values; ELBO_EARG for a non-finite number. */
int elbo_session_act(elbo_client *c, const char *agent, const char *session, const float *obs,
                     int dx, float reward, int done, float *action, int da, long *model_version);

/* The same with explicit options (NULL: the client's) and the whole answer in *info (may be
 * NULL). */
int elbo_session_act_ex(elbo_client *c, const char *agent, const char *session, const float *obs,
                        int dx, float reward, int done, const elbo_act_options *opt, float *action,
                        int da, elbo_act_info *info);

/* A stateless action for an observation (POST .../act), with options (NULL: the client's). */
int elbo_act_obs(elbo_client *c, const char *agent, const float *obs, int dx,
                 const elbo_act_options *opt, float *action, int da, elbo_act_info *info);

#endif
