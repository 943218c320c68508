/* elbo_client: a small C client of elbod's REST API (see elbo_client.h for the contract).
 *
 * Every request goes through request(): it resets the handle's CURL easy handle (which keeps its
 * open connection: keep-alive), sets the method, URL, headers, body and timeouts, collects the
 * answer into the handle's response buffer (hard cap: max_response_bytes) and turns transport
 * failures and error statuses into an ELBO_E* code with the details in c->err. The JSON layer on
 * top serialises borrowed request objects and parses answers into new references.
 */
#include "elbo_client.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct elbo_client {
    CURL *curl;
    char *url;         /* base URL without a trailing '/' */
    char *auth_header; /* "Authorization: Bearer ..." or NULL */
    long timeout_ms, connect_timeout_ms;
    size_t max_response;
    int use_env_proxy;
    elbo_act_options act; /* the options of elbo_session_act */
    elbo_error err;
    char curl_err[CURL_ERROR_SIZE];
    /* The last answer: body (NUL-terminated, len bytes without the NUL) and Content-Type. */
    char *body;
    size_t len, cap;
    int overflow; /* the body went over max_response */
    char content_type[128];
    double last_ms; /* round trip of the last request */
};

static const char *const error_names[] = {
    "ok",
    "bad argument",
    "out of memory",
    "could not connect to elbod",
    "request timed out",
    "elbod refused the request",
    "unexpected answer from elbod",
    "answer too large",
    "transfer failed",
};

const char *elbo_strerror(int rc)
{
    int i = -rc;
    if (i < 0 || (size_t)i >= sizeof error_names / sizeof error_names[0])
        return "unknown error";
    return error_names[i];
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Records a local failure in c->err and returns rc. */
static int fail(elbo_client *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(elbo_client *c, int rc, const char *fmt, ...)
{
    c->err.rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err.message, sizeof c->err.message, fmt, ap);
    va_end(ap);
    return rc;
}

static void clear_error(elbo_client *c)
{
    memset(&c->err, 0, sizeof c->err);
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

elbo_client *elbo_client_new(const char *base_url, const elbo_client_options *opt)
{
    elbo_client_options defaults = ELBO_CLIENT_OPTIONS_DEFAULT;
    if (!opt)
        opt = &defaults;
    if (!base_url || !*base_url)
        return NULL;
    if (opt->token && strpbrk(opt->token, "\r\n"))
        return NULL; /* a line break would inject headers */
    elbo_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->url = dup_string(base_url);
    if (!c->url)
        goto err;
    size_t n = strlen(c->url);
    while (n > 0 && c->url[n - 1] == '/')
        c->url[--n] = '\0';
    if (opt->token && *opt->token) {
        const char *prefix = "Authorization: Bearer ";
        size_t len = strlen(prefix) + strlen(opt->token) + 1;
        c->auth_header = malloc(len);
        if (!c->auth_header)
            goto err;
        snprintf(c->auth_header, len, "%s%s", prefix, opt->token);
    }
    c->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 0;
    c->connect_timeout_ms = opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : 5000;
    c->max_response = opt->max_response_bytes ? opt->max_response_bytes : (size_t)1 << 30;
    c->use_env_proxy = opt->use_env_proxy;
    elbo_act_options act = ELBO_ACT_OPTIONS_DEFAULT;
    c->act = act;
    c->curl = curl_easy_init();
    if (!c->curl)
        goto err;
    return c;
err:
    elbo_client_free(c);
    return NULL;
}

void elbo_client_free(elbo_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->url);
    free(c->auth_header);
    free(c->body);
    free(c);
}

const char *elbo_client_url(const elbo_client *c)
{
    return c->url;
}

const elbo_error *elbo_client_last_error(const elbo_client *c)
{
    return &c->err;
}

const char *elbo_client_last_body(const elbo_client *c, size_t *len)
{
    if (len)
        *len = c->body ? c->len : 0;
    return c->body ? c->body : "";
}

void elbo_client_set_act_options(elbo_client *c, const elbo_act_options *opt)
{
    elbo_act_options def = ELBO_ACT_OPTIONS_DEFAULT;
    c->act = opt ? *opt : def;
}

/* ---- transport ---------------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    elbo_client *c = ud;
    size_t n = size * nmemb;
    if (n > c->max_response - c->len || c->len + n > c->max_response) {
        c->overflow = 1;
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->body, cap);
        if (!p)
            return 0;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, ptr, n);
    c->len += n;
    c->body[c->len] = '\0';
    return n;
}

/* Copies the value of header `name` (with its colon) from a header line into out. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0)
        return;
    const char *v = line + k;
    size_t vl = n - k;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    elbo_client *c = ud;
    size_t n = size * nmemb;
    header_value(ptr, n, "X-Request-Id:", c->err.request_id, sizeof c->err.request_id);
    header_value(ptr, n, "Content-Type:", c->content_type, sizeof c->content_type);
    return n;
}

/* Fills c->err from an error answer: {"error":{"code","message","field"}} when it is one, else
 * the start of the body. */
static void parse_error_body(elbo_client *c)
{
    json_t *root = c->body ? json_loadb(c->body, c->len, 0, NULL) : NULL;
    json_t *e = root ? json_object_get(root, "error") : NULL;
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    if (code) {
        snprintf(c->err.code, sizeof c->err.code, "%s", code);
        snprintf(c->err.message, sizeof c->err.message, "%s", msg ? msg : "");
        snprintf(c->err.field, sizeof c->err.field, "%s", field ? field : "");
    } else {
        /* Not an error object (readyz's {"status":"starting"}, a proxy's page): keep its start,
         * on one line. */
        size_t k = 0;
        for (size_t i = 0; c->body && i < c->len && k + 1 < 200 && k + 1 < sizeof c->err.message;
             i++)
            c->err.message[k++] = (c->body[i] == '\n' || c->body[i] == '\r') ? ' ' : c->body[i];
        c->err.message[k] = '\0';
        if (k == 0)
            snprintf(c->err.message, sizeof c->err.message, "HTTP status %ld", c->err.status);
    }
    json_decref(root);
}

/* Maps a libcurl failure to a code and a message. */
static int transport_error(elbo_client *c, CURLcode rc)
{
    const char *detail = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return fail(c, ELBO_ECONNECT, "%s: %s", c->url, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return fail(c, ELBO_ETIMEOUT, "%s: %s", c->url, detail);
    case CURLE_OUT_OF_MEMORY:
        return fail(c, ELBO_ENOMEM, "out of memory in libcurl");
    case CURLE_WRITE_ERROR:
        if (c->overflow)
            return fail(c, ELBO_ETOOBIG, "the answer is larger than %zu bytes", c->max_response);
        return fail(c, ELBO_ENOMEM, "out of memory for the answer");
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return fail(c, ELBO_EARG, "bad URL '%s': %s", c->url, detail);
    default:
        return fail(c, ELBO_ETRANSFER, "%s: %s", c->url, detail);
    }
}

/* One request: method, path (already escaped, from '/'), an optional body of len bytes with its
 * Content-Type. The answer lands in c->body; 0 for a status below 400, else an ELBO_E* code. */
static int request(elbo_client *c, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len)
{
    clear_error(c);
    c->len = 0;
    if (c->body)
        c->body[0] = '\0';
    c->overflow = 0;
    c->content_type[0] = '\0';
    c->curl_err[0] = '\0';
    size_t ulen = strlen(c->url) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (!url)
        return fail(c, ELBO_ENOMEM, "out of memory");
    snprintf(url, ulen, "%s%s", c->url, path);

    struct curl_slist *h = NULL, *t = NULL;
    char ct[160];
    snprintf(ct, sizeof ct, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    /* "Content-Type:" alone removes curl's form default; "Expect:" skips the 100-continue
     * round trip of large bodies (checkpoints). */
    const char *lines[] = {ct, "Expect:", "Accept: application/json, */*", c->auth_header};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!lines[i])
            continue;
        t = curl_slist_append(h, lines[i]);
        if (!t) {
            curl_slist_free_all(h);
            free(url);
            return fail(c, ELBO_ENOMEM, "out of memory");
        }
        h = t;
    }

    CURL *k = c->curl;
    curl_easy_reset(k); /* keeps the open connection */
    curl_easy_setopt(k, CURLOPT_URL, url);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(k, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(k, CURLOPT_USERAGENT, "elbo_client/0.1");
    if (!c->use_env_proxy)
        curl_easy_setopt(k, CURLOPT_NOPROXY, "*");
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        /* POST, PUT, PATCH: always a body, possibly empty (Content-Length: 0). */
        curl_easy_setopt(k, CURLOPT_POST, 1L);
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(k, CURLOPT_HEADERDATA, c);

    double t0 = now_ms();
    CURLcode rc = curl_easy_perform(k);
    c->last_ms = now_ms() - t0;
    long status = 0;
    curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &status);
    /* The handle must not keep pointers into our stack or freed memory. */
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(k, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    free(url);
    c->err.status = status;
    if (rc != CURLE_OK)
        return transport_error(c, rc);
    if (status >= 400) {
        c->err.rc = ELBO_EHTTP;
        parse_error_body(c);
        return ELBO_EHTTP;
    }
    if (status < 200 || status >= 300)
        return fail(c, ELBO_EPROTO, "unexpected HTTP status %ld", status);
    return 0;
}

/* Parses the answer as a JSON object into *out (when out is not NULL). */
static int parse_answer(elbo_client *c, json_t **out)
{
    if (!out)
        return 0;
    json_error_t je;
    json_t *v = c->body ? json_loadb(c->body, c->len, 0, &je) : NULL;
    if (!v)
        return fail(c, ELBO_EPROTO, "the answer is not JSON: %s", c->body ? je.text : "empty");
    if (!json_is_object(v)) {
        json_decref(v);
        return fail(c, ELBO_EPROTO, "the answer is not a JSON object");
    }
    *out = v;
    return 0;
}

/* A request with a JSON body (borrowed; NULL: no body) and a JSON answer. */
static int request_json(elbo_client *c, const char *method, const char *path, const json_t *body,
                        json_t **out)
{
    if (out)
        *out = NULL;
    char *text = NULL;
    if (body) {
        if (!json_is_object(body)) {
            clear_error(c);
            return fail(c, ELBO_EARG, "the request body must be a JSON object");
        }
        /* 9 significant digits: every float reaches elbod (which computes in float) exactly. */
        text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (!text) {
            clear_error(c);
            return fail(c, ELBO_EARG, "the request body cannot be serialised (a NaN?)");
        }
    }
    int rc =
        request(c, method, path, text ? "application/json" : NULL, text, text ? strlen(text) : 0);
    free(text);
    if (rc)
        return rc;
    return parse_answer(c, out);
}

/* Appends s percent-encoded (everything but unreserved characters) to the buffer at *p. */
static void append_escaped(char **p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            *(*p)++ = (char)ch;
        } else {
            *(*p)++ = '%';
            *(*p)++ = hex[ch >> 4];
            *(*p)++ = hex[ch & 15];
        }
    }
}

/* "/v1/agents/<name>[/sessions/<session>]<tail>", names percent-encoded: malloc'd (the caller
 * frees it), NULL with c->err set for an empty name or no memory. */
static char *agent_path(elbo_client *c, const char *name, const char *session, const char *tail)
{
    clear_error(c);
    if (!name || !*name) {
        fail(c, ELBO_EARG, "the agent name is empty");
        return NULL;
    }
    if (session && !*session) {
        fail(c, ELBO_EARG, "the session id is empty");
        return NULL;
    }
    size_t cap = strlen("/v1/agents/") + 3 * strlen(name) + strlen("/sessions/") +
                 (session ? 3 * strlen(session) : 0) + strlen(tail) + 1;
    char *buf = malloc(cap);
    if (!buf) {
        fail(c, ELBO_ENOMEM, "out of memory");
        return NULL;
    }
    char *p = buf;
    memcpy(p, "/v1/agents/", 11);
    p += 11;
    append_escaped(&p, name);
    if (session) {
        memcpy(p, "/sessions/", 10);
        p += 10;
        append_escaped(&p, session);
    }
    size_t tl = strlen(tail);
    memcpy(p, tail, tl + 1);
    return buf;
}

/* A JSON request on an agent's route. */
static int agent_call(elbo_client *c, const char *method, const char *name, const char *session,
                      const char *tail, const json_t *body, json_t **out)
{
    if (out)
        *out = NULL;
    char *path = agent_path(c, name, session, tail);
    if (!path)
        return c->err.rc;
    int rc = request_json(c, method, path, body, out);
    free(path);
    return rc;
}

/* ---- daemon ------------------------------------------------------------------------------- */

int elbo_healthz(elbo_client *c, json_t **out)
{
    return request_json(c, "GET", "/healthz", NULL, out);
}

int elbo_readyz(elbo_client *c, json_t **out)
{
    return request_json(c, "GET", "/readyz", NULL, out);
}

int elbo_version(elbo_client *c, json_t **out)
{
    return request_json(c, "GET", "/v1/version", NULL, out);
}

int elbo_metrics(elbo_client *c, char **text, size_t *len)
{
    *text = NULL;
    if (len)
        *len = 0;
    int rc = request(c, "GET", "/metrics", NULL, NULL, 0);
    if (rc)
        return rc;
    char *t = malloc(c->len + 1);
    if (!t)
        return fail(c, ELBO_ENOMEM, "out of memory");
    if (c->len)
        memcpy(t, c->body, c->len);
    t[c->len] = '\0';
    *text = t;
    if (len)
        *len = c->len;
    return 0;
}

/* ---- agents ------------------------------------------------------------------------------- */

int elbo_agent_create(elbo_client *c, const json_t *spec, json_t **out)
{
    return request_json(c, "POST", "/v1/agents", spec, out);
}

int elbo_agent_create_box(elbo_client *c, const char *name, int obs_dim, int act_dim,
                          const double *low, const double *high, const json_t *extra, json_t **out)
{
    if (out)
        *out = NULL;
    clear_error(c);
    if (!name || !*name || obs_dim < 1 || act_dim < 1 || !low || !high)
        return fail(c, ELBO_EARG, "give a name, positive dimensions and the action box");
    if (extra && !json_is_object(extra))
        return fail(c, ELBO_EARG, "the extra settings must be a JSON object");
    json_t *spec = json_object(), *lo = json_array(), *hi = json_array();
    int bad = !spec || !lo || !hi;
    for (int i = 0; !bad && i < act_dim; i++) {
        if (!isfinite(low[i]) || !isfinite(high[i])) {
            json_decref(spec);
            json_decref(lo);
            json_decref(hi);
            return fail(c, ELBO_EARG, "the action box has a non-finite bound");
        }
        bad |= json_array_append_new(lo, json_real(low[i])) != 0;
        bad |= json_array_append_new(hi, json_real(high[i])) != 0;
    }
    if (!bad) {
        bad |= json_object_set_new(spec, "name", json_string(name)) != 0;
        bad |= json_object_set_new(spec, "observation_dim", json_integer(obs_dim)) != 0;
        bad |= json_object_set_new(spec, "action_dim", json_integer(act_dim)) != 0;
        bad |= json_object_set(spec, "action_low", lo) != 0;
        bad |= json_object_set(spec, "action_high", hi) != 0;
    }
    /* The shape wins over the same keys in extra; extra's values are shared, not copied. */
    if (!bad && extra)
        bad = json_object_update_missing(spec, (json_t *)extra) != 0;
    json_decref(lo);
    json_decref(hi);
    if (bad) {
        json_decref(spec);
        return fail(c, ELBO_ENOMEM, "out of memory (or a name that is not UTF-8)");
    }
    int rc = elbo_agent_create(c, spec, out);
    json_decref(spec);
    return rc;
}

int elbo_agents_list(elbo_client *c, json_t **out)
{
    return request_json(c, "GET", "/v1/agents", NULL, out);
}

int elbo_agent_get(elbo_client *c, const char *name, json_t **out)
{
    return agent_call(c, "GET", name, NULL, "", NULL, out);
}

int elbo_agent_patch(elbo_client *c, const char *name, const json_t *changes, json_t **out)
{
    if (!changes) {
        if (out)
            *out = NULL;
        clear_error(c);
        return fail(c, ELBO_EARG, "no changes given");
    }
    return agent_call(c, "PATCH", name, NULL, "", changes, out);
}

int elbo_agent_delete(elbo_client *c, const char *name, json_t **out)
{
    return agent_call(c, "DELETE", name, NULL, "", NULL, out);
}

/* ---- acting ------------------------------------------------------------------------------- */

static int need_body(elbo_client *c, const json_t *request, json_t **out)
{
    if (request)
        return 0;
    if (out)
        *out = NULL;
    clear_error(c);
    return fail(c, ELBO_EARG, "no request object given");
}

int elbo_act(elbo_client *c, const char *name, const json_t *request, json_t **out)
{
    int rc = need_body(c, request, out);
    return rc ? rc : agent_call(c, "POST", name, NULL, "/act", request, out);
}

int elbo_plan(elbo_client *c, const char *name, const json_t *request, json_t **out)
{
    int rc = need_body(c, request, out);
    return rc ? rc : agent_call(c, "POST", name, NULL, "/plan", request, out);
}

int elbo_session_open(elbo_client *c, const char *name, const json_t *request, json_t **out)
{
    return agent_call(c, "POST", name, NULL, "/sessions", request, out);
}

int elbo_session_act_json(elbo_client *c, const char *name, const char *session,
                          const json_t *request, json_t **out)
{
    int rc = need_body(c, request, out);
    if (!rc && !session)
        rc = fail(c, ELBO_EARG, "no session id given");
    return rc ? rc : agent_call(c, "POST", name, session, "/act", request, out);
}

int elbo_session_close(elbo_client *c, const char *name, const char *session, json_t **out)
{
    if (!session) {
        if (out)
            *out = NULL;
        clear_error(c);
        return fail(c, ELBO_EARG, "no session id given");
    }
    return agent_call(c, "DELETE", name, session, "", NULL, out);
}

/* ---- experience, training, checkpoints ---------------------------------------------------- */

int elbo_transitions_submit(elbo_client *c, const char *name, const json_t *body, json_t **out)
{
    int rc = need_body(c, body, out);
    return rc ? rc : agent_call(c, "POST", name, NULL, "/transitions", body, out);
}

int elbo_transitions_submit_raw(elbo_client *c, const char *name, const char *body, size_t len,
                                json_t **out)
{
    if (out)
        *out = NULL;
    char *path = agent_path(c, name, NULL, "/transitions");
    if (!path)
        return c->err.rc;
    if (!body) {
        free(path);
        return fail(c, ELBO_EARG, "no body given");
    }
    int rc = request(c, "POST", path, "application/json", body, len);
    free(path);
    return rc ? rc : parse_answer(c, out);
}

int elbo_training_get(elbo_client *c, const char *name, json_t **out)
{
    return agent_call(c, "GET", name, NULL, "/training", NULL, out);
}

static int training_action(elbo_client *c, const char *name, const char *action, json_t **out)
{
    json_t *body = json_pack("{s:s}", "action", action);
    if (!body) {
        if (out)
            *out = NULL;
        clear_error(c);
        return fail(c, ELBO_ENOMEM, "out of memory");
    }
    int rc = agent_call(c, "POST", name, NULL, "/training", body, out);
    json_decref(body);
    return rc;
}

int elbo_training_pause(elbo_client *c, const char *name, json_t **out)
{
    return training_action(c, name, "pause", out);
}

int elbo_training_resume(elbo_client *c, const char *name, json_t **out)
{
    return training_action(c, name, "resume", out);
}

int elbo_checkpoint_export(elbo_client *c, const char *name, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    char *path = agent_path(c, name, NULL, "/checkpoint");
    if (!path)
        return c->err.rc;
    int rc = request(c, "GET", path, NULL, NULL, 0);
    free(path);
    if (rc)
        return rc;
    if (strncasecmp(c->content_type, "application/octet-stream", 24) != 0)
        return fail(c, ELBO_EPROTO, "the checkpoint came as '%s', not application/octet-stream",
                    c->content_type);
    if (!c->body) {
        /* An empty file: still a malloc'd buffer, so that the caller can free it. */
        *data = malloc(1);
        if (!*data)
            return fail(c, ELBO_ENOMEM, "out of memory");
        return 0;
    }
    /* Hand the response buffer over instead of copying a megabyte-sized file. */
    *data = (unsigned char *)c->body;
    *len = c->len;
    c->body = NULL;
    c->len = c->cap = 0;
    return 0;
}

int elbo_checkpoint_import(elbo_client *c, const char *name, const void *data, size_t len,
                           json_t **out)
{
    if (out)
        *out = NULL;
    char *path = agent_path(c, name, NULL, "/checkpoint");
    if (!path)
        return c->err.rc;
    if (!data && len) {
        free(path);
        return fail(c, ELBO_EARG, "no checkpoint data given");
    }
    int rc = request(c, "PUT", path, "application/octet-stream", data ? data : "", len);
    free(path);
    return rc ? rc : parse_answer(c, out);
}

/* ---- convenience -------------------------------------------------------------------------- */

/* Appends n floats as a JSON array under key; -1 for a non-finite value or no memory. */
static int set_floats(json_t *o, const char *key, const float *x, int n)
{
    json_t *a = json_array();
    if (!a)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || json_array_append_new(a, json_real((double)x[i]))) {
            json_decref(a);
            return -1;
        }
    }
    return json_object_set_new(o, key, a);
}

/* The request object of an act: observation, options, and for sessions reward and done. */
static json_t *act_body(const float *obs, int dx, const float *reward, int done,
                        const elbo_act_options *opt)
{
    json_t *o = json_object();
    if (!o || set_floats(o, "observation", obs, dx))
        goto err;
    if (reward && (!isfinite(*reward) || json_object_set_new(o, "reward", json_real(*reward))))
        goto err;
    if (done && json_object_set_new(o, "done", json_true()))
        goto err;
    if (reward && opt->truncated && json_object_set_new(o, "truncated", json_true()))
        goto err;
    if (opt->mode && json_object_set_new(o, "mode", json_string(opt->mode)))
        goto err;
    if (opt->explore && json_object_set_new(o, "explore", json_true()))
        goto err;
    if (opt->deadline_ms > 0 && json_object_set_new(o, "deadline_ms", json_real(opt->deadline_ms)))
        goto err;
    if (reward && !opt->record && json_object_set_new(o, "record", json_false()))
        goto err;
    return o;
err:
    json_decref(o);
    return NULL;
}

/* Reads the action (da floats) and the rest of an action response. */
static int read_action(elbo_client *c, json_t *r, float *action, int da, elbo_act_info *info)
{
    json_t *a = json_object_get(r, "action");
    if (!json_is_array(a) || json_array_size(a) != (size_t)da)
        return fail(c, ELBO_EPROTO, "the answer's action has not %d values", da);
    for (int i = 0; i < da; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_number(v))
            return fail(c, ELBO_EPROTO, "the answer's action[%d] is not a number", i);
        action[i] = (float)json_number_value(v);
    }
    if (!info)
        return 0;
    memset(info, 0, sizeof *info);
    info->model_version = (long)json_integer_value(json_object_get(r, "model_version"));
    json_t *step = json_object_get(r, "episode_step");
    info->episode_step = step ? (long)json_integer_value(step) : -1;
    info->episode_done = json_is_true(json_object_get(r, "episode_done"));
    info->degraded = json_is_true(json_object_get(r, "degraded"));
    info->iterations = (int)json_integer_value(json_object_get(r, "iterations"));
    info->plan_ms = json_number_value(json_object_get(r, "plan_ms"));
    info->latency_ms = c->last_ms;
    const char *mode = json_string_value(json_object_get(r, "mode"));
    snprintf(info->mode, sizeof info->mode, "%s", mode ? mode : "");
    const char *rid = json_string_value(json_object_get(r, "request_id"));
    snprintf(info->request_id, sizeof info->request_id, "%s", rid ? rid : "");
    return 0;
}

static int act_common(elbo_client *c, const char *agent, const char *session, const float *obs,
                      int dx, const float *reward, int done, const elbo_act_options *opt,
                      float *action, int da, elbo_act_info *info)
{
    clear_error(c);
    if (!obs || dx < 1 || !action || da < 1)
        return fail(c, ELBO_EARG, "give the observation and room for the action");
    json_t *body = act_body(obs, dx, reward, done, opt ? opt : &c->act);
    if (!body)
        return fail(c, ELBO_EARG, "a non-finite number in the observation or reward");
    json_t *r = NULL;
    int rc = agent_call(c, "POST", agent, session, "/act", body, &r);
    json_decref(body);
    if (!rc)
        rc = read_action(c, r, action, da, info);
    json_decref(r);
    return rc;
}

int elbo_session_open_id(elbo_client *c, const char *agent, char *sid, size_t cap)
{
    if (sid && cap)
        sid[0] = '\0';
    json_t *r = NULL;
    int rc = elbo_session_open(c, agent, NULL, &r);
    if (rc)
        return rc;
    const char *id = json_string_value(json_object_get(r, "session_id"));
    if (!id)
        rc = fail(c, ELBO_EPROTO, "the answer has no session_id");
    else if (!sid || strlen(id) >= cap)
        rc = fail(c, ELBO_EARG, "the session id '%s' does not fit in %zu bytes", id, cap);
    else
        memcpy(sid, id, strlen(id) + 1);
    json_decref(r);
    return rc;
}

int elbo_session_act_ex(elbo_client *c, const char *agent, const char *session, const float *obs,
                        int dx, float reward, int done, const elbo_act_options *opt, float *action,
                        int da, elbo_act_info *info)
{
    if (!session) {
        clear_error(c);
        return fail(c, ELBO_EARG, "no session id given");
    }
    return act_common(c, agent, session, obs, dx, &reward, done, opt, action, da, info);
}

int elbo_session_act(elbo_client *c, const char *agent, const char *session, const float *obs,
                     int dx, float reward, int done, float *action, int da, long *model_version)
{
    elbo_act_info info;
    int rc = elbo_session_act_ex(c, agent, session, obs, dx, reward, done, NULL, action, da, &info);
    if (!rc && model_version)
        *model_version = info.model_version;
    return rc;
}

int elbo_act_obs(elbo_client *c, const char *agent, const float *obs, int dx,
                 const elbo_act_options *opt, float *action, int da, elbo_act_info *info)
{
    return act_common(c, agent, NULL, obs, dx, NULL, 0, opt, action, da, info);
}
