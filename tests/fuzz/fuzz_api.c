/* fuzz_api: libFuzzer target for the request decoding and response encoding of every route.
 *
 * Input: one header line "KNI METHOD PATTERN", then the request body (the rest, possibly empty).
 *   K (byte - '0'): bits 0-2 the Content-Type (ctypes below); bit 3 a first call with
 *     can_block = 0, then again with 1 when deferred, as server/http.c does; bits 4-6 another
 *     method instead of METHOD (methods below; 0 keeps METHOD);
 *   N (byte - '0') mod 9: what {name} becomes: a name of the stub (stub_service.h; the first four
 *     are agents) or (8) a 65-character one, longer than any route captures;
 *   I (byte - '0'): bits 0-2 what {id} (and any other {...}) becomes (ids below); bits 3-4 the
 *     API key: 0 none and the stub requires none, 1 an admin key, 2 an act key, 3 none where the
 *     stub requires one (so '0' none needed, '8' admin, '@' act, 'H' missing);
 *   PATTERN: a route pattern of api/api.c, e.g. /v1/agents/{name}/sessions/{id}/act, or any path.
 * So "000 POST /v1/agents/{name}/transitions\n{...}" posts JSON to the pendulum agent. The route
 * table comes from api_route_at, so a new route is known here without an edit; the seeds
 * (tests/fuzz/make_api_seeds.py) cover every route of api/api.c.
 *
 * The service layer is tests/fuzz/stub_service.c. Checked on every response (abort otherwise):
 * no 500 (the stub answers 500 when the api passed it something it should have refused), a body
 * and a content type, JSON bodies that parse, errors in the {"error": {"code", "message"}} shape,
 * Retry-After exactly with 429 and 503, WWW-Authenticate exactly with 401, no deferral at
 * can_block = 1, and for a pattern of the table with its own method and names that fit, that
 * api_handle reports that pattern and api_route_role its role.
 * FUZZ_API_VERBOSE=1 prints every request and the start of its response (to check seeds).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "stub_service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct troute {
    const char *method, *pattern;
    int role;
} troute;

static troute routes[64];
static size_t n_routes;

static const char *const ctypes[8] = {
    "application/json",
    "application/json; charset=utf-8",
    NULL,
    "application/octet-stream",
    "Application/JSON",
    "text/plain",
    "application/jsonp",
    "application/octet-streamX",
};
static const char *const methods[8] = {NULL,    "GET",  "POST", "PUT",
                                       "PATCH", "HEAD", "get",  "DELETE"};
#define LONG_NAME "b2345678901234567890123456789012345678901234567890123456789012345"
static const char *const keys[4] = {NULL, "Bearer " STUB_ADMIN_KEY, "Bearer " STUB_ACT_KEY,
                                    "Basic Zm9vOmJhcg=="};
static const char *const ids[8] = {
    STUB_SESSION, "s-closed", "0123456789012345678901234567890123456789",  "s", "index.html",
    "style.css",  "..",       "01234567890123456789012345678901234567890",
};

static void fail(const char *what, const api_request *rq, const api_response *r)
{
    fprintf(stderr, "fuzz_api: %s\n  %s %s (ctype %s, can_block %d) -> %d %.*s\n", what, rq->method,
            rq->path, rq->content_type ? rq->content_type : "(none)", rq->can_block, r->status,
            r->body ? (int)(r->body_len > 2000 ? 2000 : r->body_len) : 6,
            r->body ? r->body : "(null)");
    abort();
}

/* Fills {name} and every other {...} of pattern. 0, or -1 when it does not fit. */
static int expand(const char *pattern, size_t plen, const char *name, const char *id, char *out,
                  size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < plen;) {
        const char *val = NULL, *close = NULL;
        size_t skip = 1;
        if (pattern[i] == '{' && (close = memchr(pattern + i, '}', plen - i))) {
            skip = (size_t)(close - (pattern + i)) + 1;
            val = skip == 6 && strncmp(pattern + i, "{name}", 6) == 0 ? name : id;
        }
        size_t len = val ? strlen(val) : 1;
        if (n + len + 1 > cap)
            return -1;
        memcpy(out + n, val ? val : pattern + i, len);
        n += len;
        i += skip;
    }
    out[n] = '\0';
    return 0;
}

static void check(const api_request *rq, const api_response *r, const troute *want)
{
    if (r->defer) {
        if (rq->can_block)
            fail("deferred at can_block = 1", rq, r);
        return;
    }
    if (r->status < 200 || r->status > 599)
        fail("status out of range", rq, r);
    if (r->status == 500)
        fail("500: the api passed the service something it should have refused", rq, r);
    if (!r->body || r->body_len == 0 || !r->content_type)
        fail("no body or no content type", rq, r);
    if ((r->status == 429 || r->status == 503) != (r->retry_after > 0))
        fail("Retry-After does not go with the status", rq, r);
    if ((r->status == 401) != (r->www_authenticate != NULL))
        fail("WWW-Authenticate does not go with the status", rq, r);
    if (want && (strcmp(r->route, want->pattern) != 0 ||
                 api_route_role(rq->method, rq->path) != want->role))
        fail("the route table and api_handle disagree", rq, r);
    if (strncmp(r->content_type, "application/json", 16) != 0)
        return;
    if (strlen(r->body) != r->body_len)
        fail("JSON body length differs from its string length", rq, r);
    json_error_t je;
    json_t *v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(v))
        fail("response body is not a JSON object", rq, r);
    if (r->status >= 400) {
        json_t *err = json_object_get(v, "error");
        if (!json_is_object(err) || !json_is_string(json_object_get(err, "code")) ||
            !json_is_string(json_object_get(err, "message")))
            fail("error response without error.code and error.message", rq, r);
    }
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!n_routes)
        while (n_routes < sizeof routes / sizeof routes[0] &&
               api_route_at(n_routes, &routes[n_routes].method, &routes[n_routes].pattern,
                            &routes[n_routes].role) == 0)
            n_routes++;
    /* "KNI METHOD PATTERN\n" */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    if (hlen < 6 || memchr(data, '\0', hlen))
        return 0; /* the server never hands over strings with a NUL inside */
    const char *line = (const char *)data;
    const char *sp = memchr(line + 4, ' ', hlen - 4);
    if (!sp || sp == line + 4)
        return 0;
    unsigned opt = (uint8_t)(data[0] - '0');
    unsigned iname = (uint8_t)(data[1] - '0') % (STUB_N_NAMES + 1);
    unsigned iid = (uint8_t)(data[2] - '0') & 7, ikey = ((uint8_t)(data[2] - '0') >> 3) & 3;
    const char *name = iname < STUB_N_NAMES ? stub_agent_names[iname] : LONG_NAME;
    char method[16], path[1024];
    size_t mlen = (size_t)(sp - (line + 4));
    const char *pattern = sp + 1;
    size_t plen = hlen - (size_t)(pattern - line);
    if (mlen >= sizeof method || plen >= 512 ||
        expand(pattern, plen, name, ids[iid], path, sizeof path))
        return 0;
    memcpy(method, line + 4, mlen);
    method[mlen] = '\0';
    const troute *want = NULL;
    for (size_t i = 0; i < n_routes; i++)
        if (strlen(routes[i].pattern) == plen && strncmp(routes[i].pattern, pattern, plen) == 0 &&
            strcmp(routes[i].method, method) == 0)
            want = &routes[i];
    if (iname >= STUB_N_NAMES || strlen(ids[iid]) > 40)
        want = NULL; /* too long to capture: no route matches */
    if (methods[(opt >> 4) & 7]) {
        snprintf(method, sizeof method, "%s", methods[(opt >> 4) & 7]);
        want = NULL;
    }
    stub_keys_required = ikey != 0;
    /* The body in its own allocation of exactly its length (no terminating NUL), so that
     * AddressSanitizer catches a read past its end. */
    size_t body_len = nl ? size - hlen - 1 : 0;
    char *b = body_len ? malloc(body_len) : NULL;
    if (body_len)
        memcpy(b, nl + 1, body_len);
    api_request rq = {.method = method,
                      .path = path,
                      .content_type = ctypes[opt & 7],
                      .body = b,
                      .body_len = body_len,
                      .request_id = "fuzz-0001",
                      .authorization = keys[ikey],
                      .can_block = (opt & 8) ? 0 : 1};
    api_response r = {0};
    api_handle(&rq, &r);
    check(&rq, &r, want);
    if (r.defer) {
        api_response_free(&r);
        rq.can_block = 1;
        api_handle(&rq, &r);
        check(&rq, &r, want);
    }
    if (getenv("FUZZ_API_VERBOSE"))
        fprintf(stderr, "%s %s -> %d %.*s\n", rq.method, rq.path, r.status,
                (int)(r.body_len > 160 ? 160 : r.body_len), r.body);
    api_response_free(&r);
    free(b);
    return 0;
}
