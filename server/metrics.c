/* metrics: per-route request counters and latency histograms (see metrics.h).
 *
 * DESIGN (threads): one mutex guards the small table of series; an observation is a few
 * additions under it. Rendering copies nothing: it formats under the same lock (microseconds).
 */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mbuf_printf(mbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1.0,  5.0};
#define NB   (sizeof buckets / sizeof buckets[0])
#define MAXS 96

typedef struct series {
    const char *route, *method;
    int status;
    unsigned long count;
} series;

typedef struct hist {
    const char *route, *method;
    unsigned long b[NB + 1];
    unsigned long count;
    double sum;
} hist;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static series counts[MAXS];
static int n_counts;
static hist hists[MAXS];
static int n_hists;
static const char *reject_reason[16];
static unsigned long reject_count[16];
static int n_reject;
static atomic_int jobs_queued, jobs_running; /* set by the worker pool, without the lock */

/* The method as a static string: the caller's buffer dies with its request (the table keeps the
 * pointer), and unknown methods share one label so that clients cannot grow the series. */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET",    "POST", "PUT",     "PATCH",
                                        "DELETE", "HEAD", "OPTIONS", ""};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

void metrics_observe(const char *route, const char *method, int status, double seconds)
{
    method = method_label(method ? method : "");
    pthread_mutex_lock(&lock);
    int i;
    for (i = 0; i < n_counts; i++)
        if (counts[i].route == route && counts[i].status == status &&
            strcmp(counts[i].method, method) == 0)
            break;
    if (i == n_counts && n_counts < MAXS)
        counts[n_counts++] = (series){route, method, status, 0};
    if (i < n_counts)
        counts[i].count++;
    for (i = 0; i < n_hists; i++)
        if (hists[i].route == route && strcmp(hists[i].method, method) == 0)
            break;
    if (i == n_hists && n_hists < MAXS) {
        memset(&hists[i], 0, sizeof hists[i]);
        hists[i].route = route;
        hists[i].method = method;
        n_hists++;
    }
    if (i < n_hists) {
        size_t k = 0;
        while (k < NB && seconds > buckets[k])
            k++;
        hists[i].b[k]++;
        hists[i].count++;
        hists[i].sum += seconds;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_rejected(const char *reason)
{
    pthread_mutex_lock(&lock);
    int i;
    for (i = 0; i < n_reject; i++)
        if (strcmp(reject_reason[i], reason) == 0)
            break;
    if (i == n_reject && n_reject < 16)
        reject_reason[n_reject++] = reason;
    if (i < n_reject)
        reject_count[i]++;
    pthread_mutex_unlock(&lock);
}

void metrics_worker_jobs(int queued, int running)
{
    atomic_store(&jobs_queued, queued);
    atomic_store(&jobs_running, running);
}

void metrics_render_http(mbuf *b)
{
    pthread_mutex_lock(&lock);
    mbuf_printf(b, "# HELP elbod_http_requests_total HTTP requests answered, by route and "
                   "status.\n# TYPE elbod_http_requests_total counter\n");
    for (int i = 0; i < n_counts; i++)
        mbuf_printf(b, "elbod_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %lu\n",
                    counts[i].route, counts[i].method, counts[i].status, counts[i].count);
    mbuf_printf(b, "# HELP elbod_http_request_duration_seconds Time from the full request to "
                   "the response, by route.\n# TYPE elbod_http_request_duration_seconds "
                   "histogram\n");
    for (int i = 0; i < n_hists; i++) {
        unsigned long cum = 0;
        for (size_t k = 0; k < NB; k++) {
            cum += hists[i].b[k];
            mbuf_printf(b,
                        "elbod_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\","
                        "le=\"%g\"} %lu\n",
                        hists[i].route, hists[i].method, buckets[k], cum);
        }
        mbuf_printf(b,
                    "elbod_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le="
                    "\"+Inf\"} %lu\n",
                    hists[i].route, hists[i].method, hists[i].count);
        mbuf_printf(b, "elbod_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n",
                    hists[i].route, hists[i].method, hists[i].sum);
        mbuf_printf(b,
                    "elbod_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %lu\n",
                    hists[i].route, hists[i].method, hists[i].count);
    }
    mbuf_printf(b, "# HELP elbod_http_rejected_total Requests and connections refused by a "
                   "limit, by reason.\n# TYPE elbod_http_rejected_total counter\n");
    for (int i = 0; i < n_reject; i++)
        mbuf_printf(b, "elbod_http_rejected_total{reason=\"%s\"} %lu\n", reject_reason[i],
                    reject_count[i]);
    mbuf_printf(b,
                "# HELP elbod_http_worker_jobs Requests waiting for a worker (queued) and being "
                "run by one (running).\n# TYPE elbod_http_worker_jobs gauge\n"
                "elbod_http_worker_jobs{state=\"queued\"} %d\n"
                "elbod_http_worker_jobs{state=\"running\"} %d\n",
                atomic_load(&jobs_queued), atomic_load(&jobs_running));
    pthread_mutex_unlock(&lock);
}
