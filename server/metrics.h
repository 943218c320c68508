/* metrics: request counters and latency histograms per route, and a growable text buffer for
 * the Prometheus exposition that agents.c completes with per-agent figures. Thread-safe. */
#ifndef ELBO_METRICS_H
#define ELBO_METRICS_H

#include <stddef.h>

typedef struct mbuf {
    char *p;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
} mbuf;

void mbuf_printf(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counts one request of `route` (a static pattern string) answered with `status`. `method` is
 * only read during the call. */
void metrics_observe(const char *route, const char *method, int status, double seconds);
/* Counts a request or connection refused by a limit: `reason` (a static string) is
 * payload_too_large, queue_full, agent_inflight or connection_limit. */
void metrics_rejected(const char *reason);
/* Sets the worker pool's gauges: requests waiting for a worker and requests being run by one. */
void metrics_worker_jobs(int queued, int running);
/* Appends the HTTP families to b. */
void metrics_render_http(mbuf *b);

#endif
