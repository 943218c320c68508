/* api: the REST surface of elbod - routing, request decoding and validation (Jansson, strict),
 * response encoding and the error model. It never touches sockets: server/http.c hands it a
 * complete request and sends back the response it fills.
 *
 * Handlers may be called on the HTTP polling thread (can_block = 0), where they must not plan,
 * wait for the disk or take long locks. A handler that needs to do such work sets
 * resp->defer = 1 and returns; the server runs it again on a worker thread with can_block = 1.
 */
#ifndef ELBO_API_H
#define ELBO_API_H

#include <stddef.h>

typedef struct api_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* "/v1/agents/x/act", without the query */
    const char *content_type; /* NULL when absent */
    const char *body;         /* NULL when empty */
    size_t body_len;
    const char *request_id;    /* set by the server, echoed in responses */
    const char *authorization; /* Authorization header; NULL when absent or keys are off */
    int can_block;
} api_request;

typedef struct api_response {
    int status;
    char *body; /* malloc'd; freed by api_response_free */
    size_t body_len;
    const char *content_type;     /* static string */
    int retry_after;              /* seconds for a Retry-After header, 0 for none */
    const char *cache_control;    /* static string for a Cache-Control header, NULL for none */
    const char *www_authenticate; /* static string for a WWW-Authenticate header (401) or NULL */
    int defer;                    /* run again on a worker thread */
    const char *route; /* the matched route pattern for metrics ("unmatched" otherwise) */
    /* The agent ({name} of the route) whose limit of requests in flight (max_agent_inflight) a
     * deferred request counts against; "" when it counts against none (routes without an agent,
     * and the admin routes, so that an operator can always pause, change or delete a busy
     * agent). Set by api_handle; the server enforces the limit. */
    char limit_agent[65];
} api_response;

/* Once at startup, before any thread uses Jansson: routes Jansson's allocations through the api,
 * so that a response built while memory ran out is answered 503 instead of sent with members
 * missing. Without it, api_handle works the same but cannot tell. */
void api_init(void);

/* Routes and handles one request, filling resp (its previous contents are overwritten). */
void api_handle(const api_request *req, api_response *resp);
void api_response_free(api_response *resp);

/* The role (svc_role) the route that method and path match needs; SVC_ROLE_NONE when none
 * matches. Lets the server refuse a request before reading its body (api_handle checks too). */
int api_route_role(const char *method, const char *path);

/* The route table, for tests: the i-th route's method, pattern and the role (svc_role) it needs.
 * 0, or -1 when i is past the end. */
int api_route_at(size_t i, const char **method, const char **pattern, int *role);

/* An error response in the project's shape: {"error": {"code", "message", "field"}}. */
void api_error(api_response *resp, int status, const char *code, const char *field,
               const char *message);

/* The version elbod reports. */
#define ELBOD_VERSION "0.1.0"

#endif
