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
    const char *request_id; /* set by the server, echoed in responses */
    int can_block;
} api_request;

typedef struct api_response {
    int status;
    char *body; /* malloc'd; freed by api_response_free */
    size_t body_len;
    const char *content_type; /* static string */
    int retry_after;          /* seconds for a Retry-After header, 0 for none */
    int defer;                /* run again on a worker thread */
    const char *route;        /* the matched route pattern for metrics ("unmatched" otherwise) */
} api_response;

/* Routes and handles one request, filling resp (its previous contents are overwritten). */
void api_handle(const api_request *req, api_response *resp);
void api_response_free(api_response *resp);

/* An error response in the project's shape: {"error": {"code", "message", "field"}}. */
void api_error(api_response *resp, int status, const char *code, const char *field,
               const char *message);

/* The version elbod reports. */
#define ELBOD_VERSION "0.1.0"

#endif
