/* api: routing, decoding, encoding and the error model of the REST surface (see api.h).
 *
 * Every handler has the same shape: decode and validate the body into a plain struct, make one
 * service call, encode the result. Route patterns are matched segment by segment; {name} and
 * {id} capture one segment each.
 */
#include "api.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_json.h"
#include "json.h"
#include "service.h"
#include "webui.h"

int svc_fail(svc_error *e, int status, const char *code, const char *field, const char *fmt, ...)
{
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Set when one of Jansson's allocations on this thread failed since api_handle began (api_init
 * routes them through json_malloc): a value built since then may lack members that
 * json_object_set_new and json_array_append_new dropped without a word, so it is not sent. */
static _Thread_local int json_oom;

static void *json_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        json_oom = 1;
    return p;
}

void api_init(void)
{
    json_set_alloc_funcs(json_malloc, free);
}

/* The error body when not even an error can be built. */
static const char oom_body[] =
    "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory; retry shortly\"}}";

void api_response_free(api_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

static void set_body(api_response *r, int status, char *body, const char *ctype)
{
    free(r->body);
    r->status = status;
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
    r->content_type = ctype;
}

/* Sends a JSON value (stolen) with a status; 503 when memory ran out while it was built. */
static void reply_json(api_response *r, int status, json_t *v)
{
    char *t = json_oom ? NULL : json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(v);
    if (!t || json_oom) {
        free(t);
        api_error(r, 503, "out_of_memory", NULL,
                  "out of memory while encoding the response; retry shortly");
        return;
    }
    set_body(r, status, t, "application/json");
}

/* A JSON string of s even when s is not valid UTF-8 (a path segment with %FF in it, a message
 * cut in the middle of a character), where json_string gives NULL: bytes >= 0x80 become '?'. */
static json_t *text_json(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char buf[512];
    size_t n = 0;
    for (; s[n] && n < sizeof buf - 1; n++)
        buf[n] = (unsigned char)s[n] >= 0x80 ? '?' : s[n];
    buf[n] = '\0';
    return json_string(buf);
}

void api_error(api_response *resp, int status, const char *code, const char *field,
               const char *message)
{
    json_oom = 0; /* this error replaces whatever was being built */
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "message", text_json(message));
    if (field && *field)
        json_object_set_new(err, "field", text_json(field));
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    char *t = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!t || json_oom) {
        /* Out of memory: a fixed body, or none (the server then sends its own 503). */
        free(t);
        t = strdup(oom_body);
        status = 503;
    }
    set_body(resp, status, t, "application/json");
    if (status == 429 || status == 503)
        resp->retry_after = 1;
}

static void reply_error(api_response *r, const svc_error *e)
{
    api_error(r, e->status ? e->status : 500, e->code[0] ? e->code : "internal", e->field,
              e->message[0] ? e->message : "internal error");
}

/* ---- request bodies ----------------------------------------------------------------------- */

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

/* Whether the parser stopped inside a signed NaN or Infinity: jansson reads "-Infinity" (what
 * Python's json module writes for -inf) as an invalid token near '-', not near 'Infinity'. */
static int signed_non_finite(const api_request *rq, const json_error_t *je)
{
    size_t p = je->position > 0 ? (size_t)je->position : 0;
    if (p == 0 || p >= rq->body_len || (rq->body[p - 1] != '-' && rq->body[p - 1] != '+'))
        return 0;
    const char *s = rq->body + p;
    size_t left = rq->body_len - p;
    return (left >= 8 && strncmp(s, "Infinity", 8) == 0) ||
           (left >= 3 && strncmp(s, "NaN", 3) == 0);
}

/* Parses the body as a JSON object. optional: an empty body gives an empty object. Returns a new
 * reference or NULL with the response filled. */
static json_t *parse_body(const api_request *rq, api_response *r, int optional)
{
    if (!rq->body || rq->body_len == 0) {
        if (optional)
            return json_object();
        api_error(r, 400, "empty_body", NULL, "this request needs a JSON body");
        return NULL;
    }
    if (!is_json_type(rq->content_type)) {
        api_error(r, 415, "unsupported_media_type", NULL,
                  "send the body as Content-Type: application/json");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
    /* Out of memory, the parser may even succeed with what it read wrong: Jansson's lexer drops
     * a character it cannot store (a key "observation_dim" became "observation_di"). */
    if (json_oom || (!root && json_error_code(&je) == json_error_out_of_memory)) {
        json_decref(root);
        api_error(r, 503, "out_of_memory", NULL, "out of memory while reading the request");
        return NULL;
    }
    if (!root) {
        char msg[256];
        if (strstr(je.text, "duplicate")) {
            snprintf(msg, sizeof msg, "duplicate key in JSON object (line %d, column %d): %s",
                     je.line, je.column, je.text);
            api_error(r, 400, "duplicate_key", NULL, msg);
        } else if (strstr(je.text, "NaN") || strstr(je.text, "Infinity") ||
                   strstr(je.text, "overflow") || signed_non_finite(rq, &je)) {
            snprintf(msg, sizeof msg, "numbers must be finite (NaN and Infinity are not JSON): %s",
                     je.text);
            api_error(r, 422, "non_finite_number", NULL, msg);
        } else {
            snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s", je.line,
                     je.column, je.text);
            api_error(r, 400, "invalid_json", NULL, msg);
        }
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        api_error(r, 422, "invalid_type", NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* ---- encoders ----------------------------------------------------------------------------- */

static json_t *terms_json(const elbo_terms *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "reward", je_real(t->reward));
    json_object_set_new(o, "info_gain", je_real(t->info_gain));
    json_object_set_new(o, "state_kl", je_real(t->state_kl));
    json_object_set_new(o, "action_kl", je_real(t->action_kl));
    json_object_set_new(o, "elbo", je_real(t->elbo));
    json_object_set_new(o, "obs_nll", je_real(t->obs_nll));
    json_object_set_new(o, "reward_nll", je_real(t->reward_nll));
    json_object_set_new(o, "cont_nll", je_real(t->cont_nll));
    json_object_set_new(o, "overshoot_nll", je_real(t->overshoot_nll));
    json_object_set_new(o, "value_loss", je_real(t->value_loss));
    json_object_set_new(o, "action_xent_fraction", je_real(t->action_xent_fraction));
    json_object_set_new(o, "loss", je_real(t->loss));
    return o;
}

static json_t *training_json(const agent_status *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer(st->step));
    json_object_set_new(o, "replay_size", json_integer(st->replay_transitions));
    json_object_set_new(o, "replay_steps", json_integer(st->replay_steps));
    json_object_set_new(o, "evicted_steps", json_integer((json_int_t)st->evicted_steps));
    json_object_set_new(o, "transitions_total", json_integer(st->transitions_total));
    json_object_set_new(o, "paused", json_boolean(st->paused));
    json_object_set_new(o, "training", json_boolean(st->training));
    json_object_set_new(o, "steps_per_sec", je_real(st->steps_per_sec));
    json_object_set_new(o, "snapshot_age_s", je_real(st->snapshot_age_s));
    json_object_set_new(o, "grad_norm", je_real(st->grad_norm));
    json_object_set_new(o, "last_checkpoint_step", json_integer(st->last_checkpoint_step));
    json_object_set_new(o, "last_checkpoint_age_s",
                        st->last_checkpoint_age_s < 0 ? json_null()
                                                      : je_real(st->last_checkpoint_age_s));
    json_object_set_new(o, "terms", terms_json(&st->terms));
    json_object_set_new(o, "action_kl_kind",
                        json_string(st->terms.action_xent_fraction > 0.5 ? "cross_entropy" : "kl"));
    return o;
}

static json_t *agent_json(const agent_status *st)
{
    json_t *o = agent_spec_encode(&st->spec);
    json_object_set_new(o, "sessions", json_integer(st->sessions));
    json_object_set_new(o, "status", training_json(st));
    return o;
}

static json_t *act_json(const api_request *rq, const act_result *res)
{
    json_t *o = json_object();
    json_object_set_new(o, "action", je_floats(res->action, res->act_dim));
    json_object_set_new(o, "model_version", json_integer(res->model_version));
    json_object_set_new(o, "request_id", json_string(rq->request_id ? rq->request_id : ""));
    json_object_set_new(o, "mode", json_string(res->mode == ACT_MODE_POLICY ? "policy" : "plan"));
    json_object_set_new(o, "degraded", json_boolean(res->degraded));
    json_object_set_new(o, "iterations", json_integer(res->iterations));
    json_object_set_new(o, "plan_ms", je_real(res->plan_ms));
    if (res->session_id[0]) {
        json_object_set_new(o, "session_id", json_string(res->session_id));
        json_object_set_new(o, "episode_step", json_integer(res->episode_step));
        json_object_set_new(o, "episode_done", json_boolean(res->episode_done));
    }
    if (res->plan) {
        const plan_result *p = res->plan;
        json_t *pl = json_object();
        json_object_set_new(pl, "horizon", json_integer(p->horizon));
        json_object_set_new(pl, "actions", je_matrix(p->mean, p->horizon, p->act_dim));
        json_object_set_new(pl, "action_std", je_matrix(p->std, p->horizon, p->act_dim));
        /* The same plan in the pre-squash space u, the form transitions' action_mean/std take. */
        json_object_set_new(pl, "u_mean", je_matrix(p->u_mean, p->horizon, p->act_dim));
        json_object_set_new(pl, "u_std", je_matrix(p->u_std, p->horizon, p->act_dim));
        json_object_set_new(pl, "predicted_rewards", je_floats(p->pred_reward, p->horizon));
        json_object_set_new(pl, "predicted_reward_std", je_floats(p->pred_reward_std, p->horizon));
        json_object_set_new(pl, "predicted_observations",
                            je_matrix(p->pred_obs, p->horizon, p->obs_dim));
        json_object_set_new(pl, "predicted_observation_std",
                            je_matrix(p->pred_obs_std, p->horizon, p->obs_dim));
        json_t *t = json_object();
        json_object_set_new(t, "expected_return", je_real(p->expected_return));
        json_object_set_new(t, "info_bonus", je_real(p->info_bonus));
        json_object_set_new(t, "action_logratio", je_real(p->action_logratio));
        json_object_set_new(t, "terminal_value", je_real(p->terminal_value));
        json_object_set_new(t, "objective", je_real(p->objective));
        json_object_set_new(pl, "terms", t);
        json_object_set_new(o, "plan", pl);
    }
    return o;
}

/* The act response without a plan, written directly: the same bytes as
 * json_dumps(act_json(rq, res), JSON_COMPACT | JSON_REAL_PRECISION(7)), several times faster
 * (policy acts are answered on the HTTP threads). NULL when it cannot (then act_json is used). */
static char *act_text(const api_request *rq, const act_result *res)
{
    if (res->plan)
        return NULL;
    jw w = {0};
    JW_LIT(&w, "{\"action\":");
    jw_floats(&w, res->action, res->act_dim);
    JW_LIT(&w, ",\"model_version\":");
    jw_int(&w, res->model_version);
    JW_LIT(&w, ",\"request_id\":");
    jw_str(&w, rq->request_id ? rq->request_id : "");
    if (res->mode == ACT_MODE_POLICY)
        JW_LIT(&w, ",\"mode\":\"policy\"");
    else
        JW_LIT(&w, ",\"mode\":\"plan\"");
    if (res->degraded)
        JW_LIT(&w, ",\"degraded\":true");
    else
        JW_LIT(&w, ",\"degraded\":false");
    JW_LIT(&w, ",\"iterations\":");
    jw_int(&w, res->iterations);
    JW_LIT(&w, ",\"plan_ms\":");
    jw_real(&w, res->plan_ms);
    if (res->session_id[0]) {
        JW_LIT(&w, ",\"session_id\":");
        jw_str(&w, res->session_id);
        JW_LIT(&w, ",\"episode_step\":");
        jw_int(&w, res->episode_step);
        if (res->episode_done)
            JW_LIT(&w, ",\"episode_done\":true");
        else
            JW_LIT(&w, ",\"episode_done\":false");
    }
    JW_LIT(&w, "}");
    return jw_finish(&w);
}

/* Sends an act response (200, or 201 for a session's first act). */
static void reply_act(api_response *r, int status, const api_request *rq, const act_result *res)
{
    char *t = act_text(rq, res);
    if (t)
        set_body(r, status, t, "application/json");
    else
        reply_json(r, status, act_json(rq, res));
}

/* ---- handlers ----------------------------------------------------------------------------- */

typedef struct route_args {
    char name[SVC_NAME_MAX + 1];
    char id[SVC_SESSION_MAX + 1];
} route_args;

_Static_assert(sizeof((api_response *)0)->limit_agent == SVC_NAME_MAX + 1,
               "api_response.limit_agent holds an agent name");

typedef void (*handler_fn)(const api_request *rq, const route_args *ra, api_response *r);

static void h_healthz(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    (void)ra;
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    reply_json(r, 200, o);
}

static void h_readyz(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    (void)ra;
    int ready = svc_ready();
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(ready ? "ready" : "starting"));
    reply_json(r, ready ? 200 : 503, o);
}

static void h_metrics(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    (void)ra;
    size_t len = 0;
    char *t = svc_metrics_text(&len);
    if (!t) {
        api_error(r, 503, "out_of_memory", NULL, "out of memory while rendering the metrics");
        return;
    }
    set_body(r, 200, t, "text/plain; version=0.0.4; charset=utf-8");
    r->body_len = len;
}

static void h_version(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    (void)ra;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string("elbod"));
    json_object_set_new(o, "version", json_string(ELBOD_VERSION));
    json_object_set_new(o, "api", json_string("v1"));
    json_object_set_new(o, "checkpoint_format", json_integer(2));
    reply_json(r, 200, o);
}

static void h_agent_create(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)ra;
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    agent_spec spec;
    svc_error e = {0};
    agent_status st;
    if (agent_spec_decode(root, &spec, &e) || svc_agent_create(&spec, &st, &e)) {
        json_decref(root);
        reply_error(r, &e);
        return;
    }
    json_decref(root);
    reply_json(r, 201, agent_json(&st));
    /* No memory for the answer: the client hears 503, so the agent goes again (a retry would be
     * refused 409 otherwise). */
    if (r->status != 201)
        svc_agent_delete(spec.name, &e);
}

static void list_cb(void *ctx, const agent_status *st)
{
    json_array_append_new((json_t *)ctx, agent_json(st));
}

static void h_agent_list(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    (void)ra;
    json_t *arr = json_array();
    svc_error e = {0};
    if (svc_agent_list(list_cb, arr, &e)) {
        json_decref(arr);
        reply_error(r, &e);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "agents", arr);
    reply_json(r, 200, o);
}

static void h_agent_get(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    agent_status st;
    svc_error e = {0};
    if (svc_agent_get(ra->name, &st, &e)) {
        reply_error(r, &e);
        return;
    }
    reply_json(r, 200, agent_json(&st));
}

static void h_agent_patch(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    agent_status st;
    svc_error e = {0};
    int rc = svc_agent_get(ra->name, &st, &e);
    if (!rc)
        rc = agent_spec_patch(root, &st.spec, &e);
    if (!rc)
        rc = svc_agent_update(ra->name, &st.spec, &st, &e);
    json_decref(root);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    reply_json(r, 200, agent_json(&st));
}

static void h_agent_delete(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    svc_error e = {0};
    if (svc_agent_delete(ra->name, &e)) {
        reply_error(r, &e);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "deleted", json_string(ra->name));
    reply_json(r, 200, o);
}

/* Decodes the common act fields. obs must hold MODEL_MAX_OBS floats. Returns 0 or -1. */
static int decode_act(json_t *root, act_request *q, float *obs, int obs_required, svc_error *e)
{
    json_t *o = json_object_get(root, "observation");
    if (!o) {
        if (obs_required)
            return svc_fail(e, 422, "missing_field", "observation",
                            "missing required field 'observation'");
    } else {
        if (jd_float_array(o, "observation", obs, -1, MODEL_MAX_OBS, &q->obs_len, e))
            return -1;
        q->obs = obs;
        q->has_obs = 1;
    }
    const char *mode = NULL;
    if (jd_string(root, "mode", "", 0, 16, &mode, e) < 0)
        return -1;
    if (mode && strcmp(mode, "plan") && strcmp(mode, "policy"))
        return svc_fail(e, 422, "invalid_value", "mode", "'mode' must be \"plan\" or \"policy\"");
    q->mode = mode && strcmp(mode, "policy") == 0 ? ACT_MODE_POLICY : ACT_MODE_PLAN;
    if (jd_bool(root, "explore", "", 0, &q->explore, e) < 0)
        return -1;
    if (jd_double(root, "deadline_ms", "", 0, 0.0, 600000.0, &q->deadline_ms, e) < 0)
        return -1;
    return 0;
}

static const char *const act_keys[] = {"observation", "mode", "explore", "deadline_ms", NULL};

static void h_act(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    float obs[MODEL_MAX_OBS];
    act_request q = {.agent = ra->name, .record = 1};
    act_result res = {0};
    svc_error e = {0};
    int rc = jd_check_keys(root, act_keys, "", &e);
    if (!rc)
        rc = decode_act(root, &q, obs, 1, &e);
    json_decref(root);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    if (q.mode == ACT_MODE_PLAN && !rq->can_block) {
        r->defer = 1;
        return;
    }
    if (svc_act(&q, &res, &e)) {
        reply_error(r, &e);
        return;
    }
    reply_act(r, 200, rq, &res);
    svc_act_result_free(&res);
}

static const char *const plan_keys[] = {"observation", "reward",      "session_id",
                                        "explore",     "deadline_ms", NULL};

static void h_plan(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    float obs[MODEL_MAX_OBS];
    act_request q = {.agent = ra->name, .want_plan = 1};
    act_result res = {0};
    svc_error e = {0};
    const char *sid = NULL;
    int rc = jd_check_keys(root, plan_keys, "", &e);
    if (!rc && jd_string(root, "session_id", "", 0, SVC_SESSION_MAX, &sid, &e) < 0)
        rc = -1;
    if (!rc)
        rc = decode_act(root, &q, obs, sid == NULL, &e);
    if (!rc && jd_float(root, "reward", "", 0, -1e30, 1e30, &q.reward, &e) < 0)
        rc = -1;
    char sbuf[SVC_SESSION_MAX + 1];
    if (!rc && sid) {
        snprintf(sbuf, sizeof sbuf, "%s", sid);
        q.session = sbuf;
    }
    json_decref(root);
    if (!rc)
        rc = svc_act(&q, &res, &e);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    reply_act(r, 200, rq, &res);
    svc_act_result_free(&res);
}

static void h_session_open(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 1);
    if (!root)
        return;
    float obs[MODEL_MAX_OBS];
    act_request q = {.agent = ra->name, .record = 1};
    act_result res = {0};
    svc_error e = {0};
    int rc = jd_check_keys(root, act_keys, "", &e);
    if (!rc)
        rc = decode_act(root, &q, obs, 0, &e);
    json_decref(root);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    if (q.has_obs && q.mode == ACT_MODE_PLAN && !rq->can_block) {
        r->defer = 1;
        return;
    }
    if (svc_session_open(&q, &res, &e)) {
        reply_error(r, &e);
        return;
    }
    if (!q.has_obs) {
        json_t *o = json_object();
        json_object_set_new(o, "session_id", json_string(res.session_id));
        json_object_set_new(o, "model_version", json_integer(res.model_version));
        json_object_set_new(o, "request_id", json_string(rq->request_id ? rq->request_id : ""));
        reply_json(r, 201, o);
    } else {
        reply_act(r, 201, rq, &res);
    }
    svc_act_result_free(&res);
    /* No memory for the answer: the client hears 503 and never learns the session's id. */
    if (r->status != 201)
        svc_session_close(ra->name, res.session_id, &e);
}

static const char *const session_act_keys[] = {
    "observation", "reward", "done", "truncated", "mode", "explore", "deadline_ms", "record", NULL};

static void h_session_act(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    float obs[MODEL_MAX_OBS];
    act_request q = {.agent = ra->name, .session = ra->id, .record = 1};
    act_result res = {0};
    svc_error e = {0};
    int rc = jd_check_keys(root, session_act_keys, "", &e);
    if (!rc)
        rc = decode_act(root, &q, obs, 1, &e);
    if (!rc && jd_float(root, "reward", "", 0, -1e30, 1e30, &q.reward, &e) < 0)
        rc = -1;
    if (!rc && jd_bool(root, "done", "", 0, &q.done, &e) < 0)
        rc = -1;
    if (!rc && jd_bool(root, "truncated", "", 0, &q.truncated, &e) < 0)
        rc = -1;
    if (!rc && jd_bool(root, "record", "", 0, &q.record, &e) < 0)
        rc = -1;
    json_decref(root);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    if (q.mode == ACT_MODE_PLAN && !q.done && !q.truncated && !rq->can_block) {
        r->defer = 1;
        return;
    }
    if (svc_act(&q, &res, &e)) {
        reply_error(r, &e);
        return;
    }
    reply_act(r, 200, rq, &res);
    svc_act_result_free(&res);
}

static void h_session_close(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    svc_error e = {0};
    if (svc_session_close(ra->name, ra->id, &e)) {
        reply_error(r, &e);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "closed", json_string(ra->id));
    reply_json(r, 200, o);
}

static const char *const episode_keys[] = {"id",   "observations", "actions",    "rewards",
                                           "done", "action_mean",  "action_std", NULL};
static const char *const transition_keys[] = {
    "id", "observation", "action", "reward", "next_observation", "done", NULL};

static void free_episodes(episode_in *eps, int n)
{
    for (int i = 0; eps && i < n; i++) {
        free(eps[i].obs);
        free(eps[i].actions);
        free(eps[i].rewards);
        free(eps[i].dist);
    }
    free(eps);
}

/* Reads rows x cols numbers from an array of arrays at `field`. */
static int decode_rows(json_t *arr, const char *field, int rows, int cols, float *out, svc_error *e)
{
    if (!json_is_array(arr))
        return svc_fail(e, 422, "invalid_type", field, "'%s' must be an array", field);
    if (json_array_size(arr) != (size_t)rows)
        return svc_fail(e, 422, "dimension_mismatch", field, "'%s' has %zu rows, expected %d",
                        field, json_array_size(arr), rows);
    for (int t = 0; t < rows; t++) {
        char f[96];
        snprintf(f, sizeof f, "%s[%d]", field, t);
        if (jd_float_array(json_array_get(arr, (size_t)t), f, out + (size_t)t * cols, cols, cols,
                           NULL, e))
            return -1;
    }
    return 0;
}

static int decode_episode(json_t *ep, int i, int dx, int da, episode_in *out, long *steps,
                          long max_steps, svc_error *e)
{
    char where[32], f[96];
    snprintf(where, sizeof where, "episodes[%d]", i);
    if (!json_is_object(ep))
        return svc_fail(e, 422, "invalid_type", where, "'%s' must be an object", where);
    if (jd_check_keys(ep, episode_keys, where, e))
        return -1;
    json_t *obs = json_object_get(ep, "observations"), *act = json_object_get(ep, "actions"),
           *rew = json_object_get(ep, "rewards");
    if (!obs || !act || !rew) {
        snprintf(f, sizeof f, "%s.%s", where, !obs ? "observations" : !act ? "actions" : "rewards");
        return svc_fail(e, 422, "missing_field", f, "missing required field '%s'", f);
    }
    if (!json_is_array(act)) {
        snprintf(f, sizeof f, "%s.actions", where);
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be an array", f);
    }
    int T = (int)json_array_size(act);
    if (T < 1) {
        snprintf(f, sizeof f, "%s.actions", where);
        return svc_fail(e, 422, "dimension_mismatch", f, "an episode needs at least one action");
    }
    *steps += T;
    if (*steps > max_steps)
        return svc_fail(e, 413, "too_many_transitions", where,
                        "more than %ld transitions in one request; split it", max_steps);
    out->T = T;
    out->obs = malloc(sizeof(float) * (size_t)(T + 1) * dx);
    out->actions = malloc(sizeof(float) * (size_t)T * da);
    out->rewards = malloc(sizeof(float) * (size_t)T);
    if (!out->obs || !out->actions || !out->rewards)
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    snprintf(f, sizeof f, "%s.observations", where);
    if (!json_is_array(obs) || json_array_size(obs) != (size_t)T + 1)
        return svc_fail(e, 422, "dimension_mismatch", f,
                        "'%s' must hold %d rows (one more than the actions)", f, T + 1);
    if (decode_rows(obs, f, T + 1, dx, out->obs, e))
        return -1;
    snprintf(f, sizeof f, "%s.actions", where);
    if (decode_rows(act, f, T, da, out->actions, e))
        return -1;
    snprintf(f, sizeof f, "%s.rewards", where);
    if (jd_float_array(rew, f, out->rewards, T, T, NULL, e))
        return -1;
    json_t *am = json_object_get(ep, "action_mean"), *as = json_object_get(ep, "action_std");
    if (am || as) {
        if (!am || !as) {
            snprintf(f, sizeof f, "%s.%s", where, am ? "action_std" : "action_mean");
            return svc_fail(e, 422, "missing_field", f,
                            "'action_mean' and 'action_std' come together");
        }
        out->dist = malloc(sizeof(float) * (size_t)T * 2 * da);
        float *tmp = malloc(sizeof(float) * (size_t)T * da);
        if (!out->dist || !tmp) {
            free(tmp);
            return svc_fail(e, 503, "out_of_memory", "", "out of memory");
        }
        snprintf(f, sizeof f, "%s.action_mean", where);
        int rc = decode_rows(am, f, T, da, tmp, e);
        for (int t = 0; !rc && t < T; t++)
            memcpy(out->dist + (size_t)t * 2 * da, tmp + (size_t)t * da, sizeof(float) * da);
        snprintf(f, sizeof f, "%s.action_std", where);
        if (!rc)
            rc = decode_rows(as, f, T, da, tmp, e);
        for (int t = 0; !rc && t < T; t++)
            for (int j = 0; j < da; j++) {
                float sd = tmp[(size_t)t * da + j];
                if (!(sd > 0.0f)) {
                    rc = svc_fail(e, 422, "out_of_range", f, "'%s' values must be > 0", f);
                    break;
                }
                out->dist[(size_t)t * 2 * da + da + j] = sd;
            }
        free(tmp);
        if (rc)
            return -1;
    }
    if (jd_bool(ep, "done", where, 0, &out->done, e) < 0)
        return -1;
    if (jd_string(ep, "id", where, 0, 128, &out->client_id, e) < 0)
        return -1;
    return 0;
}

/* A flat transition becomes a one-step episode. */
static int decode_transition(json_t *tr, int i, int dx, int da, episode_in *out, svc_error *e)
{
    char where[32], f[96];
    snprintf(where, sizeof where, "transitions[%d]", i);
    if (!json_is_object(tr))
        return svc_fail(e, 422, "invalid_type", where, "'%s' must be an object", where);
    if (jd_check_keys(tr, transition_keys, where, e))
        return -1;
    out->T = 1;
    out->obs = malloc(sizeof(float) * 2 * (size_t)dx);
    out->actions = malloc(sizeof(float) * (size_t)da);
    out->rewards = malloc(sizeof(float));
    if (!out->obs || !out->actions || !out->rewards)
        return svc_fail(e, 503, "out_of_memory", "", "out of memory");
    const char *names[] = {"observation", "next_observation", "action"};
    float *dst[] = {out->obs, out->obs + dx, out->actions};
    int dims[] = {dx, dx, da};
    for (int k = 0; k < 3; k++) {
        snprintf(f, sizeof f, "%s.%s", where, names[k]);
        json_t *v = json_object_get(tr, names[k]);
        if (!v)
            return svc_fail(e, 422, "missing_field", f, "missing required field '%s'", f);
        if (jd_float_array(v, f, dst[k], dims[k], dims[k], NULL, e))
            return -1;
    }
    if (jd_float(tr, "reward", where, 1, -1e30, 1e30, out->rewards, e) < 0)
        return -1;
    if (jd_bool(tr, "done", where, 0, &out->done, e) < 0)
        return -1;
    if (jd_string(tr, "id", where, 0, 128, &out->client_id, e) < 0)
        return -1;
    return 0;
}

static const char *const submit_keys[] = {"episodes", "transitions", NULL};

static void h_transitions(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    svc_error e = {0};
    agent_status st;
    episode_in *eps = NULL;
    int n = 0;
    int rc = jd_check_keys(root, submit_keys, "", &e);
    if (!rc)
        rc = svc_agent_get(ra->name, &st, &e);
    json_t *arr_e = json_object_get(root, "episodes"),
           *arr_t = json_object_get(root, "transitions");
    svc_limits lim = svc_get_limits();
    if (!rc && !arr_e && !arr_t)
        rc = svc_fail(&e, 422, "missing_field", "episodes",
                      "give 'episodes' (whole episodes) or 'transitions' (single steps)");
    if (!rc && arr_e && arr_t)
        rc = svc_fail(&e, 422, "invalid_value", "transitions",
                      "give either 'episodes' or 'transitions', not both");
    json_t *arr = arr_e ? arr_e : arr_t;
    const char *what = arr_e ? "episodes" : "transitions";
    if (!rc && !json_is_array(arr))
        rc = svc_fail(&e, 422, "invalid_type", what, "'%s' must be an array", what);
    if (!rc && json_array_size(arr) == 0)
        rc = svc_fail(&e, 422, "dimension_mismatch", what, "'%s' is empty", what);
    if (!rc && json_array_size(arr) > (size_t)lim.max_episodes_per_request)
        rc =
            svc_fail(&e, 413, "too_many_episodes", what,
                     "more than %d entries in one request; split it", lim.max_episodes_per_request);
    if (!rc) {
        n = (int)json_array_size(arr);
        eps = calloc((size_t)n, sizeof *eps);
        if (!eps)
            rc = svc_fail(&e, 503, "out_of_memory", "", "out of memory");
    }
    long steps = 0;
    int dx = st.spec.model.obs_dim, da = st.spec.model.act_dim;
    for (int i = 0; !rc && i < n; i++) {
        json_t *it = json_array_get(arr, (size_t)i);
        rc = arr_e ? decode_episode(it, i, dx, da, &eps[i], &steps, lim.max_steps_per_request, &e)
                   : decode_transition(it, i, dx, da, &eps[i], &e);
    }
    long accepted = 0, dups = 0;
    if (!rc)
        rc = svc_transitions_submit(ra->name, eps, n, &accepted, &dups, &e);
    json_decref(root); /* client ids are borrowed from root: used up to here */
    free_episodes(eps, n);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "accepted", json_integer(accepted));
    json_object_set_new(o, "duplicates", json_integer(dups));
    json_object_set_new(o, "episodes", json_integer(n));
    reply_json(r, 200, o);
}

static void h_training_get(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    agent_status st;
    svc_error e = {0};
    if (svc_agent_get(ra->name, &st, &e)) {
        reply_error(r, &e);
        return;
    }
    reply_json(r, 200, training_json(&st));
}

static const char *const training_keys[] = {"action", NULL};

static void h_training_post(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    svc_error e = {0};
    const char *action = NULL;
    agent_status st;
    int rc = jd_check_keys(root, training_keys, "", &e);
    if (!rc && jd_string(root, "action", "", 1, 16, &action, &e) < 0)
        rc = -1;
    if (!rc && strcmp(action, "pause") && strcmp(action, "resume"))
        rc = svc_fail(&e, 422, "invalid_value", "action",
                      "'action' must be \"pause\" or \"resume\"");
    if (!rc)
        rc = svc_training_pause(ra->name, strcmp(action, "pause") == 0, &st, &e);
    json_decref(root);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    reply_json(r, 200, training_json(&st));
}

/* ---- episode returns reported by clients ------------------------------------------------- */

static json_t *episode_json(const episode_report *ep)
{
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(ep->index));
    json_object_set_new(o, "return", je_real(ep->ret));
    json_object_set_new(o, "steps", json_integer(ep->steps));
    json_object_set_new(o, "model_version", json_integer(ep->model_version));
    json_object_set_new(o, "time", json_integer((json_int_t)ep->time));
    return o;
}

static const char *const report_keys[] = {"return", "steps", NULL};

static void h_episode_report(const api_request *rq, const route_args *ra, api_response *r)
{
    json_t *root = parse_body(rq, r, 0);
    if (!root)
        return;
    svc_error e = {0};
    double ret = 0.0;
    int steps = 0;
    episode_report ep;
    int rc = jd_check_keys(root, report_keys, "", &e);
    if (!rc && jd_double(root, "return", "", 1, -1e30, 1e30, &ret, &e) < 0)
        rc = -1;
    if (!rc && jd_int(root, "steps", "", 0, 0, 1000000000L, &steps, &e) < 0)
        rc = -1;
    json_decref(root);
    if (!rc)
        rc = svc_episode_report(ra->name, ret, steps, &ep, &e);
    if (rc) {
        reply_error(r, &e);
        return;
    }
    reply_json(r, 200, episode_json(&ep));
}

static void h_episodes_get(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    svc_error e = {0};
    episode_report *eps = malloc(sizeof *eps * SVC_EPISODES_MAX);
    int n = 0;
    long total = 0;
    if (!eps) {
        api_error(r, 503, "out_of_memory", NULL, "out of memory");
        return;
    }
    if (svc_episode_list(ra->name, eps, SVC_EPISODES_MAX, &n, &total, &e)) {
        free(eps);
        reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, episode_json(&eps[i]));
    free(eps);
    json_t *o = json_object();
    json_object_set_new(o, "episodes", arr);
    json_object_set_new(o, "total", json_integer(total));
    reply_json(r, 200, o);
}

/* ---- the dashboard's static files (api/webui.h) ------------------------------------------ */

static void h_ui(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    const web_asset *a = web_asset_find(ra->id[0] ? ra->id : "index.html");
    char *body = a ? malloc(a->len + 1) : NULL;
    if (!a || !body) {
        free(body);
        api_error(r, a ? 503 : 404, a ? "out_of_memory" : "not_found", NULL,
                  a ? "out of memory" : "no such file in the dashboard");
        return;
    }
    memcpy(body, a->data, a->len);
    free(r->body);
    r->status = 200;
    r->body = body;
    r->body_len = a->len;
    r->content_type = a->content_type;
    r->cache_control = a->cache_control;
}

static void h_ckpt_get(const api_request *rq, const route_args *ra, api_response *r)
{
    (void)rq;
    unsigned char *buf = NULL;
    size_t len = 0;
    long step = 0;
    svc_error e = {0};
    if (svc_checkpoint_export(ra->name, &buf, &len, &step, &e)) {
        reply_error(r, &e);
        return;
    }
    free(r->body);
    r->status = 200;
    r->body = (char *)buf;
    r->body_len = len;
    r->content_type = "application/octet-stream";
}

static void h_ckpt_put(const api_request *rq, const route_args *ra, api_response *r)
{
    const char *ct = rq->content_type;
    if (!ct || strncasecmp(ct, "application/octet-stream", 24) != 0) {
        api_error(r, 415, "unsupported_media_type", NULL,
                  "send the checkpoint as Content-Type: application/octet-stream");
        return;
    }
    if (!rq->body || rq->body_len == 0) {
        api_error(r, 400, "empty_body", NULL, "the checkpoint file is empty");
        return;
    }
    long step = 0;
    svc_error e = {0};
    if (svc_checkpoint_import(ra->name, (const unsigned char *)rq->body, rq->body_len, &step, &e)) {
        reply_error(r, &e);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "model_version", json_integer(step));
    reply_json(r, 200, o);
}

/* ---- routing ------------------------------------------------------------------------------ */

typedef enum run_kind { RUN_INLINE, RUN_WORKER, RUN_DECIDE } run_kind;

typedef struct route {
    const char *method;
    const char *pattern;
    handler_fn fn;
    run_kind run;
    svc_role role; /* the API key's role the route needs (README, Authentication) */
} route;

static const route routes[] = {
    {"GET", "/healthz", h_healthz, RUN_INLINE, SVC_ROLE_NONE},
    {"GET", "/readyz", h_readyz, RUN_INLINE, SVC_ROLE_NONE},
    {"GET", "/metrics", h_metrics, RUN_INLINE, SVC_ROLE_ACT},
    {"GET", "/v1/version", h_version, RUN_INLINE, SVC_ROLE_ACT},
    {"POST", "/v1/agents", h_agent_create, RUN_WORKER, SVC_ROLE_ADMIN},
    {"GET", "/v1/agents", h_agent_list, RUN_INLINE, SVC_ROLE_ACT},
    {"GET", "/v1/agents/{name}", h_agent_get, RUN_INLINE, SVC_ROLE_ACT},
    {"PATCH", "/v1/agents/{name}", h_agent_patch, RUN_WORKER, SVC_ROLE_ADMIN},
    {"DELETE", "/v1/agents/{name}", h_agent_delete, RUN_WORKER, SVC_ROLE_ADMIN},
    {"POST", "/v1/agents/{name}/act", h_act, RUN_DECIDE, SVC_ROLE_ACT},
    {"POST", "/v1/agents/{name}/plan", h_plan, RUN_WORKER, SVC_ROLE_ACT},
    {"POST", "/v1/agents/{name}/sessions", h_session_open, RUN_DECIDE, SVC_ROLE_ACT},
    {"POST", "/v1/agents/{name}/sessions/{id}/act", h_session_act, RUN_DECIDE, SVC_ROLE_ACT},
    {"DELETE", "/v1/agents/{name}/sessions/{id}", h_session_close, RUN_INLINE, SVC_ROLE_ACT},
    {"POST", "/v1/agents/{name}/transitions", h_transitions, RUN_WORKER, SVC_ROLE_TRAIN},
    {"GET", "/v1/agents/{name}/training", h_training_get, RUN_INLINE, SVC_ROLE_ACT},
    {"POST", "/v1/agents/{name}/training", h_training_post, RUN_INLINE, SVC_ROLE_TRAIN},
    {"GET", "/v1/agents/{name}/checkpoint", h_ckpt_get, RUN_WORKER, SVC_ROLE_ADMIN},
    {"PUT", "/v1/agents/{name}/checkpoint", h_ckpt_put, RUN_WORKER, SVC_ROLE_ADMIN},
    {"POST", "/v1/agents/{name}/episodes/report", h_episode_report, RUN_INLINE, SVC_ROLE_ACT},
    {"GET", "/v1/agents/{name}/episodes", h_episodes_get, RUN_INLINE, SVC_ROLE_ACT},
    /* The dashboard's static files: to stay open when API keys are required (a browser sends no
     * token when it loads a page; the pages send it with their own API calls). */
    {"GET", "/", h_ui, RUN_INLINE, SVC_ROLE_NONE},
    {"GET", "/ui/{file}", h_ui, RUN_INLINE, SVC_ROLE_NONE},
};

/* Matches path against pattern; captures {name} and {id}. 1 on a match. */
static int match(const char *pattern, const char *path, route_args *ra)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), sl = se ? (size_t)(se - s) : strlen(s);
        if (*p == '{') {
            char *dst = strncmp(p, "{name}", 6) == 0 ? ra->name : ra->id;
            size_t cap = dst == ra->name ? sizeof ra->name : sizeof ra->id;
            if (sl == 0 || sl >= cap)
                return 0;
            memcpy(dst, s, sl);
            dst[sl] = '\0';
        } else if (pl != sl || strncmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl;
        s += sl;
    }
    return *p == '\0' && *s == '\0';
}

/* The route a request is for, with its captures; NULL when none has that method, with
 * *path_matched set when one has the path. */
static const route *route_find(const char *method, const char *path, route_args *ra,
                               int *path_matched)
{
    *path_matched = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        memset(ra, 0, sizeof *ra);
        if (!match(routes[i].pattern, path, ra))
            continue;
        *path_matched = 1;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}

/* Checks the request's API key against the role the route needs (before deferring, so that a
 * refused request never waits for a worker). 1 when it may go on; 0 with a 401 or 403 in r. */
static int authorized(const api_request *rq, const route *rt, api_response *r)
{
    if (rt->role == SVC_ROLE_NONE)
        return 1;
    int st = svc_authorize(rq->authorization, rt->role);
    if (st == 0)
        return 1;
    if (st == 403) {
        static const char *const need[] = {"", "'act' or above", "'train' or above", "'admin'"};
        char msg[160];
        snprintf(msg, sizeof msg, "this API key's role may not do this: it needs the role %s",
                 need[rt->role]);
        api_error(r, 403, "forbidden", NULL, msg);
        return 0;
    }
    api_error(r, 401, "unauthorized", NULL,
              "this route needs an API key, sent as Authorization: Bearer <key>; none was sent, "
              "or it is not a known key");
    r->www_authenticate = "Bearer realm=\"elbod\"";
    return 0;
}

int api_route_role(const char *method, const char *path)
{
    route_args ra;
    int path_matched;
    const route *rt = route_find(method, path, &ra, &path_matched);
    return rt ? (int)rt->role : (int)SVC_ROLE_NONE;
}

int api_route_at(size_t i, const char **method, const char **pattern, int *role)
{
    if (i >= sizeof routes / sizeof routes[0])
        return -1;
    *method = routes[i].method;
    *pattern = routes[i].pattern;
    *role = (int)routes[i].role;
    return 0;
}

void api_handle(const api_request *rq, api_response *r)
{
    json_oom = 0;
    r->defer = 0;
    r->retry_after = 0;
    r->cache_control = NULL;
    r->www_authenticate = NULL;
    r->route = "unmatched";
    r->limit_agent[0] = '\0';
    route_args ra;
    int path_matched = 0;
    const route *rt = route_find(rq->method, rq->path, &ra, &path_matched);
    if (rt) {
        r->route = rt->pattern;
        if (rt->role != SVC_ROLE_ADMIN && ra.name[0])
            snprintf(r->limit_agent, sizeof r->limit_agent, "%s", ra.name);
        if (!authorized(rq, rt, r))
            return;
        if (rt->run == RUN_WORKER && !rq->can_block) {
            r->defer = 1;
            return;
        }
        rt->fn(rq, &ra, r);
        return;
    }
    if (path_matched)
        api_error(r, 405, "method_not_allowed", NULL, "this path does not take that method");
    else
        api_error(r, 404, "not_found", NULL, "no such route; see /v1/version and the README");
}
