/* http: libmicrohttpd wiring and the worker pool (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "auth.h"
#include "core/tensor.h"
#include "core/vmath.h"
#include "log.h"
#include "metrics.h"
#ifdef ELBOD_TORTURE
#include "tests/torture/torture.h"
#endif

typedef struct req_ctx {
    struct MHD_Connection *conn;
    char method[16];
    char *url;
    char *body;
    size_t len, cap;
    int too_large;
    int out_of_memory; /* its URL, a header or its body could not be kept: answered 503 */
    size_t cap_bytes;  /* this request's body limit */
    char content_type[128];
    int has_content_type;
    char request_id[40];
    char *authorization; /* the Authorization header (malloc'd), NULL when absent */
    int unauthorized;    /* refused by its API key before the body: the body is not read */
    double start;
#ifdef ELBOD_TORTURE
    torture_req torture; /* the torture build's allocation count (tests/torture/torture.h) */
#endif
    api_response resp;
    int deferred;        /* queued for a worker */
    atomic_int job_done; /* the worker filled resp */
    struct req_ctx *next_job;
    struct agent_load *load; /* the agent count this queued or running request holds, or NULL */
} req_ctx;

/* Requests of one agent queued for or held by a worker (max_agent_inflight), while there are
 * any: an entry is made by the first and freed with the last. */
typedef struct agent_load {
    char name[sizeof((api_response *)0)->limit_agent];
    int n;
    struct agent_load *next;
} agent_load;

#define LOAD_BUCKETS 64

static struct {
    struct MHD_Daemon *d;
    const daemon_config *cfg;
    char *tls_cert, *tls_key; /* PEM text of tls_cert and tls_key while TLS is on */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    req_ctx *head, *tail;
    int queued, running;             /* requests waiting for a worker, and being run by one */
    agent_load *loads[LOAD_BUCKETS]; /* under qlock */
    int stop;
    pthread_t *workers;
    int n_workers;
    atomic_int inflight;
    atomic_ulong seq;
    uint32_t boot;
} H = {.qlock = PTHREAD_MUTEX_INITIALIZER, .qcond = PTHREAD_COND_INITIALIZER};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#ifdef ELBOD_TORTURE
/* Tells the torture driver how many allocations the request made and whether the one it named
 * came (headers added uncounted). */
static void torture_report(struct MHD_Response *resp)
{
    torture_req *t = torture_armed();
    if (!t)
        return;
    torture_arm(NULL);
    char v[24];
    snprintf(v, sizeof v, "%ld", t->count);
    MHD_add_response_header(resp, "X-Torture-Allocs", v);
    MHD_add_response_header(resp, "X-Torture-Injected", t->injected ? "1" : "0");
    torture_arm(t);
}
#endif

/* The answer when a request's own cannot be made for want of memory: made by http_start, shared
 * by every connection that needs it (libmicrohttpd counts its references). Never an empty reply
 * or a dropped connection. */
static struct MHD_Response *oom_response;
static const char oom_text[] =
    "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory; retry shortly\"}}";

/* The *con_cls of a request whose state could not be allocated: answered with oom_response. */
static char oom_request;

static struct MHD_Response *make_oom_response(void)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof oom_text - 1, (void *)oom_text,
                                                             MHD_RESPMEM_PERSISTENT);
    if (r &&
        (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES ||
         MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1") != MHD_YES)) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

static enum MHD_Result send_out_of_memory(struct MHD_Connection *c, const char *route,
                                          const char *method, double start)
{
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, oom_response);
    metrics_observe(route, method, MHD_HTTP_SERVICE_UNAVAILABLE, now_s() - start);
    return ret;
}

static enum MHD_Result send_response(req_ctx *rc)
{
    api_response *r = &rc->resp;
    const char *route = r->route ? r->route : "unmatched";
    /* No body: api/ ran out of memory building even its error. */
    struct MHD_Response *resp =
        r->body ? MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE)
                : NULL;
    if (!resp)
        return send_out_of_memory(rc->conn, route, rc->method, rc->start);
    r->body = NULL; /* owned by libmicrohttpd now */
    int ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                     r->content_type ? r->content_type : "application/json") ==
                 MHD_YES &&
             MHD_add_response_header(resp, "X-Request-Id", rc->request_id) == MHD_YES;
    if (ok && r->cache_control)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, r->cache_control) ==
             MHD_YES;
    if (ok && r->www_authenticate)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate) ==
             MHD_YES;
    if (ok && r->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", r->retry_after);
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v) == MHD_YES;
    }
    if (!ok) {
        MHD_destroy_response(resp);
        return send_out_of_memory(rc->conn, route, rc->method, rc->start);
    }
#ifdef ELBOD_TORTURE
    torture_report(resp);
#endif
    enum MHD_Result ret = MHD_queue_response(rc->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    metrics_observe(route, rc->method, r->status, now_s() - rc->start);
    return ret;
}

static void fill_request(req_ctx *rc, api_request *q, int can_block)
{
    q->method = rc->method;
    q->path = rc->url;
    q->content_type = rc->has_content_type ? rc->content_type : NULL;
    q->body = rc->body;
    q->body_len = rc->len;
    q->request_id = rc->request_id;
    q->authorization = rc->authorization;
    q->can_block = can_block;
}

static unsigned load_bucket(const char *name)
{
    unsigned x = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        x = (x ^ *p) * 16777619u;
    return x % LOAD_BUCKETS;
}

/* Counts one more request of the agent `name` (under qlock). 0 with rc->load set; 1 when the
 * agent has max_agent_inflight requests queued or running already; -1 out of memory. */
static int load_acquire(req_ctx *rc, const char *name)
{
    agent_load **slot = &H.loads[load_bucket(name)];
    agent_load *l = *slot;
    while (l && strcmp(l->name, name) != 0)
        l = l->next;
    if (l && l->n >= H.cfg->max_agent_inflight)
        return 1;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l)
            return -1;
        snprintf(l->name, sizeof l->name, "%s", name);
        l->next = *slot;
        *slot = l;
    }
    l->n++;
    rc->load = l;
    return 0;
}

/* Gives back rc's count (under qlock); the agent's entry goes with its last request. */
static void load_release(req_ctx *rc)
{
    agent_load *l = rc->load;
    if (!l)
        return;
    rc->load = NULL;
    if (--l->n > 0)
        return;
    agent_load **p = &H.loads[load_bucket(l->name)];
    while (*p != l)
        p = &(*p)->next;
    *p = l->next;
    free(l);
}

/* Workers run WORKER_NICE steps below the HTTP threads: a plan is tens of milliseconds of CPU,
 * and with four of them running on a 2-core machine the polling threads waited their turn behind
 * them, so policy acts (answered on the polling threads) fell from ~15k to ~2.7k req/s with p50
 * 5 ms while plans ran. Niced, the workers still get every cycle the polling threads leave, so
 * plan throughput does not change (make bench-http, policy+plan). Linux keeps one nice value per
 * thread; elsewhere setpriority would renice the whole process, so it is left alone. */
#define WORKER_NICE 5

static void lower_priority(void)
{
#ifdef __linux__
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int level = getpriority(PRIO_PROCESS, tid) + WORKER_NICE;
    if (errno == 0 && setpriority(PRIO_PROCESS, tid, level > 19 ? 19 : level))
        log_msg(LOG_DEBUG, "worker_nice_failed", "errno=%d", errno);
#endif
}

static void *worker_main(void *arg)
{
    (void)arg;
    vm_thread_init();
    tensor_set_blas_threads(1);
    lower_priority();
    for (;;) {
        pthread_mutex_lock(&H.qlock);
        while (!H.head && !H.stop)
            pthread_cond_wait(&H.qcond, &H.qlock);
        if (!H.head && H.stop) {
            pthread_mutex_unlock(&H.qlock);
            break;
        }
        req_ctx *rc = H.head;
        H.head = rc->next_job;
        if (!H.head)
            H.tail = NULL;
        H.queued--;
        H.running++;
        metrics_worker_jobs(H.queued, H.running);
        pthread_mutex_unlock(&H.qlock);
        api_request q;
        fill_request(rc, &q, 1);
        const char *route = rc->resp.route;
#ifdef ELBOD_TORTURE
        torture_arm(&rc->torture);
        api_handle(&q, &rc->resp);
        torture_arm(NULL);
#else
        api_handle(&q, &rc->resp);
#endif
        if (!rc->resp.route || strcmp(rc->resp.route, "unmatched") == 0)
            rc->resp.route = route;
        if (rc->resp.defer) /* a handler may not defer twice */
            api_error(&rc->resp, 500, "internal", NULL, "request could not be scheduled");
        pthread_mutex_lock(&H.qlock);
        load_release(rc);
        H.running--;
        metrics_worker_jobs(H.queued, H.running);
        pthread_mutex_unlock(&H.qlock);
        atomic_store(&rc->job_done, 1);
        MHD_resume_connection(rc->conn);
    }
    return NULL;
}

/* Queues rc for a worker: 0; -2 when rc's agent has max_agent_inflight requests queued or
 * running already (checked first: that agent's clients, not the others', are to back off); -1
 * when the queue is full, the server is stopping, or memory ran out. */
static int enqueue(req_ctx *rc)
{
    pthread_mutex_lock(&H.qlock);
    int ret = H.stop ? -1 : 0;
    if (!ret && rc->resp.limit_agent[0] && H.cfg->max_agent_inflight > 0) {
        int busy = load_acquire(rc, rc->resp.limit_agent);
        ret = busy > 0 ? -2 : busy;
    }
    if (!ret && H.queued >= H.cfg->queue_limit) {
        load_release(rc);
        ret = -1;
    }
    if (ret) {
        pthread_mutex_unlock(&H.qlock);
        return ret;
    }
    rc->next_job = NULL;
    if (H.tail)
        H.tail->next_job = rc;
    else
        H.head = rc;
    H.tail = rc;
    H.queued++;
    metrics_worker_jobs(H.queued, H.running);
    pthread_cond_signal(&H.qcond);
    pthread_mutex_unlock(&H.qlock);
    return 0;
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_ctx *rc = *con_cls;
    if (!rc || *con_cls == &oom_request) {
        *con_cls = NULL;
        return;
    }
    api_response_free(&rc->resp);
    free(rc->body);
    free(rc->url);
    free(rc->authorization);
    free(rc);
    *con_cls = NULL;
    atomic_fetch_sub(&H.inflight, 1);
}

/* snprintf(dst, cap, "%s", src), without printf's machinery: on_request runs for every request,
 * and its three snprintf calls were 3% of the polling threads' time under load. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The request id: "%08x-%06lx" of the boot tag and the low 24 bits of the sequence number. */
static void format_request_id(char out[16], uint32_t boot, unsigned long seq)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        out[i] = hex[(boot >> (28 - 4 * i)) & 0xf];
    out[8] = '-';
    for (int i = 0; i < 6; i++)
        out[9 + i] = hex[(seq >> (20 - 4 * i)) & 0xf];
    out[15] = '\0';
}

static enum MHD_Result serve_request(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    if (*con_cls == &oom_request) {
        if (*upload_size) {
            *upload_size = 0;
            return MHD_YES;
        }
        return send_out_of_memory(c, "unmatched", method, now_s());
    }
    req_ctx *rc = *con_cls;
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc) {
            *con_cls = &oom_request; /* read the request, then answer 503 */
            return MHD_YES;
        }
        atomic_fetch_add(&H.inflight, 1);
        *con_cls = rc;
        rc->conn = c;
        rc->start = now_s();
        rc->url = strdup(url);
        copy_text(rc->method, sizeof rc->method, method);
        format_request_id(rc->request_id, H.boot, (unsigned long)atomic_fetch_add(&H.seq, 1));
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        if (ct) {
            copy_text(rc->content_type, sizeof rc->content_type, ct);
            rc->has_content_type = 1;
        }
        if (!rc->url) {
            rc->out_of_memory = 1;
            return MHD_YES;
        }
        /* With API keys on, a request its key does not allow is answered 401/403 without
         * reading its body. */
        if (auth_enabled()) {
            const char *au = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
            if (au && !(rc->authorization = strdup(au))) {
                rc->out_of_memory = 1;
                return MHD_YES;
            }
            if (auth_check(rc->authorization, (svc_role)api_route_role(method, url), 0) != 0) {
                rc->unauthorized = 1;
                return MHD_YES;
            }
        }
        /* Checkpoint imports may be larger than other bodies. */
        size_t ul = strlen(url);
        rc->cap_bytes = (size_t)H.cfg->max_body_bytes;
        if (strcmp(method, "PUT") == 0 && ul > 11 && strcmp(url + ul - 11, "/checkpoint") == 0 &&
            (size_t)H.cfg->max_checkpoint_bytes > rc->cap_bytes)
            rc->cap_bytes = (size_t)H.cfg->max_checkpoint_bytes;
        /* A declared body over the cap is refused before it is read. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)rc->cap_bytes)
            rc->too_large = 1;
        return MHD_YES;
    }
    if (rc->deferred) {
        if (!atomic_load(&rc->job_done))
            return MHD_YES; /* spurious call while suspended */
        return send_response(rc);
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rc->too_large || rc->unauthorized || rc->out_of_memory)
            return MHD_YES;
        if (rc->len + n > rc->cap_bytes) {
            rc->too_large = 1;
            free(rc->body);
            rc->body = NULL;
            rc->len = rc->cap = 0;
            return MHD_YES;
        }
        if (rc->len + n + 1 > rc->cap) {
            size_t cap = rc->cap ? rc->cap : 4096;
            while (cap < rc->len + n + 1)
                cap *= 2;
            char *p = realloc(rc->body, cap);
            if (!p) {
                rc->out_of_memory = 1;
                free(rc->body);
                rc->body = NULL;
                rc->len = rc->cap = 0;
                return MHD_YES;
            }
            rc->body = p;
            rc->cap = cap;
        }
        memcpy(rc->body + rc->len, upload_data, n);
        rc->len += n;
        rc->body[rc->len] = '\0';
        return MHD_YES;
    }
    rc->resp.route = "unmatched";
    if (rc->out_of_memory) {
        api_error(&rc->resp, 503, "out_of_memory", NULL, "out of memory; retry shortly");
        return send_response(rc);
    }
    if (rc->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "the request body is larger than %zu bytes (max_body_bytes, or "
                 "max_checkpoint_bytes for checkpoints)",
                 rc->cap_bytes);
        api_error(&rc->resp, 413, "payload_too_large", NULL, msg);
        metrics_rejected("payload_too_large");
        return send_response(rc);
    }
    api_request q;
    fill_request(rc, &q, 0);
    api_handle(&q, &rc->resp);
    if (!rc->resp.defer)
        return send_response(rc);
    rc->deferred = 1;
    MHD_suspend_connection(c);
    int queued = enqueue(rc);
    if (queued == -2) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "agent '%s' has %d requests waiting for or holding a worker "
                 "(max_agent_inflight); retry shortly",
                 rc->resp.limit_agent, H.cfg->max_agent_inflight);
        rc->resp.defer = 0;
        api_error(&rc->resp, 429, "agent_busy", NULL, msg);
        metrics_rejected("agent_inflight");
    } else if (queued) {
        rc->resp.defer = 0;
        api_error(&rc->resp, 503, "overloaded", NULL,
                  "too many requests are waiting for a worker; retry shortly");
        metrics_rejected("queue_full");
    }
    if (queued) {
        atomic_store(&rc->job_done, 1);
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* libmicrohttpd's access handler. In the torture build, the allocations of every call count for
 * its request, those of the first call (which makes the request's state) included. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
#ifdef ELBOD_TORTURE
    int fresh = *con_cls == NULL;
    req_ctx *rc = *con_cls == &oom_request ? NULL : *con_cls;
    torture_req first;
    if (fresh) {
        torture_req_init(&first,
                         MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Torture-Fail-At"));
        torture_arm(&first);
    } else if (rc) {
        torture_arm(&rc->torture);
    }
    enum MHD_Result ret =
        serve_request(cls, c, url, method, version, upload_data, upload_size, con_cls);
    if (fresh && *con_cls && *con_cls != &oom_request)
        ((req_ctx *)*con_cls)->torture = first;
    torture_arm(NULL);
    return ret;
#else
    return serve_request(cls, c, url, method, version, upload_data, upload_size, con_cls);
#endif
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* libmicrohttpd closes a connection over max_connections_per_ip at once and tells only its
     * logger ("Server reached connection limit. Closing inbound connection."). Over
     * max_connections it stops accepting instead (MHD_USE_ITC): new connections wait in the
     * listen backlog and nothing is refused. */
    if (strstr(msg, "reached connection limit"))
        metrics_rejected("connection_limit");
    log_msg(LOG_DEBUG, "http", "detail=\"%s\"", msg);
}

/* The whole of a PEM file (malloc'd, NUL-terminated; at most 1 MiB), or NULL (logged). */
static char *read_pem(const char *path, const char *setting)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc((1 << 20) + 1);
    size_t n = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    int bad = !f || !buf || ferror(f) || n == 0 || n == 1 << 20;
    if (f)
        fclose(f);
    if (bad) {
        log_msg(LOG_ERROR, "tls_failed", "%s=%s reason=\"cannot read it, or empty, or over 1 MiB\"",
                setting, path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void free_pem(char **pem)
{
    if (*pem)
        explicit_bzero(*pem, strlen(*pem));
    free(*pem);
    *pem = NULL;
}

int http_start(const daemon_config *cfg, int *bound_port)
{
    H.cfg = cfg;
    H.stop = 0;
    H.boot = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    if (!oom_response && !(oom_response = make_oom_response()))
        return -1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    /* poll(), not epoll: with epoll, MHD_quiesce_daemon (http_stop) races with the polling
     * threads over removing the listen socket from their epoll sets, and the loser aborts the
     * process ("Failed to remove listen FD from epoll set", libmicrohttpd 0.9.75): SIGTERM
     * would now and then end in SIGABRT before the shutdown checkpoint. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    const char *host = cfg->host;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        sl = sizeof *a6;
        flags |= MHD_USE_IPv6;
    } else {
        log_msg(LOG_ERROR, "bad_host", "host=%s reason=\"not a numeric IPv4 or IPv6 address\"",
                cfg->host);
        return -1;
    }
    (void)sl;
    /* HTTPS through libmicrohttpd's own TLS (GnuTLS), with the PEM text held until http_stop. */
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
    if (cfg->tls_cert[0]) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            log_msg(LOG_ERROR, "tls_failed", "reason=\"this libmicrohttpd was built without TLS\"");
            return -1;
        }
        H.tls_cert = read_pem(cfg->tls_cert, "tls_cert");
        H.tls_key = H.tls_cert ? read_pem(cfg->tls_key, "tls_key") : NULL;
        if (!H.tls_key) {
            free_pem(&H.tls_cert);
            return -1;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, H.tls_key};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, H.tls_cert};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    H.n_workers = cfg->workers;
    H.workers = calloc((size_t)H.n_workers, sizeof *H.workers);
    if (!H.workers)
        return -1;
    for (int i = 0; i < H.n_workers; i++)
        if (pthread_create(&H.workers[i], NULL, worker_main, NULL)) {
            H.n_workers = i;
            http_stop(0);
            return -1;
        }
    /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: it sets SO_REUSEPORT, which lets a second elbod
     * bind the same port and silently take half of the connections. libmicrohttpd's default
     * (SO_REUSEADDR) still lets a restarted daemon rebind at once. */
    /* The logger first: libmicrohttpd prints the messages of options before it to stderr. */
    H.d = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!H.d) {
        log_msg(LOG_ERROR, "listen_failed", "host=%s port=%d reason=\"address in use or not %s\"",
                cfg->host, cfg->port,
                H.tls_cert ? "available, or tls_cert and tls_key unusable" : "available");
        http_stop(0);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(H.d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : cfg->port;
    return 0;
}

void http_stop(double timeout_s)
{
    if (H.d) {
        MHD_quiesce_daemon(H.d);
        /* Let in-flight requests (including queued and running jobs) finish. */
        double until = now_s() + timeout_s;
        while (atomic_load(&H.inflight) > 0 && now_s() < until)
            usleep(10000);
    }
    pthread_mutex_lock(&H.qlock);
    H.stop = 1;
    pthread_cond_broadcast(&H.qcond);
    pthread_mutex_unlock(&H.qlock);
    for (int i = 0; i < H.n_workers; i++)
        pthread_join(H.workers[i], NULL);
    free(H.workers);
    H.workers = NULL;
    H.n_workers = 0;
    if (H.d) {
        MHD_stop_daemon(H.d);
        H.d = NULL;
    }
    free_pem(&H.tls_cert);
    free_pem(&H.tls_key);
    if (oom_response && !H.d) {
        MHD_destroy_response(oom_response);
        oom_response = NULL;
    }
}
