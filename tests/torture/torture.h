/* torture: fault injection for the torture build of elbod (build/torture/elbod, made by
 * tests/torture/torture.mk), as curl's torture tests and SQLite's OOM tests do it. Never part of
 * the release daemon: server/http.c and server/store.c call these hooks only when compiled with
 * -DELBOD_TORTURE, and tests/torture/torture_alloc.c (the interposed allocator) is linked into
 * that binary only.
 *
 * Allocation failures. A request that carries the header `X-Torture-Fail-At: N` (N >= 1) has
 * its N-th allocation fail (malloc, calloc, realloc, aligned_alloc, posix_memalign, memalign,
 * and so strdup and everything glibc, Jansson, SQLite and libmicrohttpd allocate with them),
 * counted only while a thread works on that request: from the first call of the access handler
 * to the response being queued, on the HTTP thread, on the worker that runs it, and on the
 * store's writer while it commits a batch that starts with the request's write. One
 * allocation fails, the ones after it succeed again; with `X-Torture-Fail-At: N+`, every one
 * from the N-th on fails (memory stays short). The response then carries
 * `X-Torture-Allocs: <allocations counted>` and `X-Torture-Injected: 0|1` (whether the N-th
 * allocation came), so that a driver raises N until nothing was injected.
 *
 * Disk full. With ELBOD_TORTURE_DISKFULL=<path> in the environment, while the file <path>
 * exists, every write (write, pwrite64, ftruncate64) that would make a regular file (fd > 2)
 * longer fails with ENOSPC, as on a full file system: overwrites within a file still succeed.
 *
 * DESIGN (threads): the request being counted is a thread-local pointer set by torture_arm; the
 * counter lives in the request (http.c's req_ctx), which only one thread handles at a time.
 */
#ifndef ELBO_TORTURE_H
#define ELBO_TORTURE_H

typedef struct torture_req {
    long fail_at; /* the allocation (1, 2, ...) of this request to fail; 0: none */
    long count;   /* allocations counted so far */
    int injected; /* the fail_at-th allocation came and was failed */
    int sticky;   /* every allocation from the fail_at-th on fails */
} torture_req;

/* The request's injection from its X-Torture-Fail-At header value (NULL: none). */
void torture_req_init(torture_req *t, const char *fail_at);
/* Counts the calling thread's allocations against t (NULL: stops counting). */
void torture_arm(torture_req *t);
/* The request the calling thread counts for, or NULL. */
torture_req *torture_armed(void);

#endif
