/* http: the libmicrohttpd front end - connections, bodies with a hard cap, request ids, the
 * worker pool that runs blocking handlers, and responses.
 *
 * DESIGN (threads): libmicrohttpd's internal polling threads (epoll, a pool of http_threads)
 * read requests and call api_handle with can_block = 0. A handler that must plan or wait for the
 * store asks to be deferred: the connection is suspended and the request queued for one of
 * `workers` threads, which runs it with can_block = 1 and resumes the connection. So a plan of
 * tens of milliseconds never stalls other connections. The queue is bounded: when full the
 * request is answered 503 with Retry-After at once. So is each agent's share of it: a request
 * of an agent that has max_agent_inflight requests queued or running already is answered 429
 * `agent_busy` with Retry-After at once, so that one agent's clients cannot take every worker
 * and every queue place from the others. The queue, the per-agent counts (a small hash table of
 * the agents that have requests queued or running) and the stop flag are under one mutex, held
 * for a few pointer moves. Connections: at most max_connections (libmicrohttpd stops accepting
 * beyond it) and max_connections_per_ip (closed at once beyond it, counted in /metrics).
 */
#ifndef ELBO_HTTP_H
#define ELBO_HTTP_H

#include "config.h"

/* Starts listening. Returns 0 or -1 (logged). *bound_port receives the actual port. */
int http_start(const daemon_config *cfg, int *bound_port);
/* Stops accepting new connections, waits for in-flight requests (up to timeout_s), then stops
 * the HTTP threads and the workers. */
void http_stop(double timeout_s);

#endif
