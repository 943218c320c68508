/* check_e2e: end-to-end tests of elbod, driven over HTTP exactly as users drive it.
 *
 * Every test starts a real daemon (the binary named by ELBOD_BIN, build/elbod by default; `make
 * test-san` points it at build/san/elbod) on a free loopback port with a fresh data directory,
 * waits for /readyz, talks to it with libcurl, and stops it by its PID: SIGTERM must give exit
 * status 0 and a stderr (kept in <data dir>/elbod.stderr) free of sanitizer reports and errors.
 *
 * No daemon outlives a failed test: the checked teardown kills what is still running (no-fork
 * runs), and every daemon gets PR_SET_PDEATHSIG so that it dies with the forked test process that
 * started it. A failed forked test leaves its data directory behind for inspection.
 *
 * Agents are created with small models and planners (SMALL_MODEL) so that planning and training
 * stay fast under ASan. Every request goes to 127.0.0.1 (curl ignores proxy settings).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---- small utilities ---------------------------------------------------------------------- */

/* A malloc'd printf; the caller frees it. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* A printf into one of a few rotating static buffers: for paths, valid until 8 more calls. */
static const char *P(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *f, ...)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

/* The whole file from byte `from` on (malloc'd, NUL-terminated; "" when unreadable). */
static char *read_file_from(const char *path, long from)
{
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    size_t len = 0;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end > from && fseek(f, from, SEEK_SET) == 0) {
            s = malloc((size_t)(end - from) + 1);
            if (s)
                len = fread(s, 1, (size_t)(end - from), f);
        }
    }
    if (f)
        fclose(f);
    if (!s)
        s = malloc(1);
    ck_assert_ptr_nonnull(s);
    s[len] = '\0';
    return s;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* ---- daemons ------------------------------------------------------------------------------ */

#define MAX_DAEMONS 4

typedef struct elbod {
    pid_t pid; /* 0 when not running */
    int port;
    char dir[512];     /* the data directory (ours: removed by the teardown) */
    char logpath[600]; /* the daemon's stdout and stderr, appended over restarts */
    long log_from;     /* where the current run's output starts in logpath */
} elbod;

static elbod procs[MAX_DAEMONS];
static int cur_port; /* the daemon http() talks to */

static const char *elbod_bin(void)
{
    const char *b = getenv("ELBOD_BIN");
    return b && *b ? b : "build/elbod";
}

/* A port that was free a moment ago: bind 127.0.0.1:0, read the port, close. */
/* Starts the binary on d's data directory and the given port, output appended to its log. */
static pid_t spawn(const elbod *d, int port, const char *const *extra)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    const char *argv[40];
    int n = 0;
    argv[n++] = elbod_bin();
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = portbuf;
    argv[n++] = "--data-dir";
    argv[n++] = d->dir;
    argv[n++] = "--log-level";
    argv[n++] = "info";
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Dies with the test process that started it, whatever happens to that process. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(d->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to timeout_s for pid to exit; 1 with its status, 0 when it still runs. */
static int wait_exit(pid_t pid, double timeout_s, int *status)
{
    double until = test_now_s() + timeout_s;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        ck_assert_msg(r == 0, "waitpid(%ld): %s", (long)pid, strerror(errno));
        if (test_now_s() > until)
            return 0;
        test_sleep_ms(10);
    }
}

static int http(const char *method, const char *path, const char *content_type, const char *body,
                size_t len, long *status, char **resp_body);

/* Starts a daemon on d->dir (kept when d->dir is set, a new temporary directory otherwise) with
 * extra flags, retrying on another port when the chosen one was taken meanwhile, and waits until
 * /readyz answers 200. Makes it the daemon http() talks to. */
static void daemon_start(elbod *d, const char *const *extra)
{
    /* A build running next to the tests may be relinking the binary: give it a moment. */
    for (int i = 0; i < 100 && access(elbod_bin(), X_OK) != 0; i++)
        test_sleep_ms(100);
    ck_assert_msg(access(elbod_bin(), X_OK) == 0,
                  "%s is not an executable (build it with make, or set ELBOD_BIN)", elbod_bin());
    if (!d->dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(d->dir, sizeof d->dir, "%s/elbod-e2e-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        ck_assert_msg(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
        snprintf(d->logpath, sizeof d->logpath, "%s/elbod.stderr", d->dir);
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = test_free_port();
        d->log_from = file_size(d->logpath);
        d->pid = spawn(d, d->port, extra);
        cur_port = d->port;
        double until = test_now_s() + 60.0;
        int exited = 0, st = 0;
        while (test_now_s() < until) {
            pid_t r = waitpid(d->pid, &st, WNOHANG);
            if (r == d->pid) {
                exited = 1;
                break;
            }
            long code = 0;
            char *text = NULL;
            if (http("GET", "/readyz", NULL, NULL, 0, &code, &text) == 0 && code == 200) {
                free(text);
                return;
            }
            free(text);
            test_sleep_ms(20);
        }
        char *out = read_file_from(d->logpath, d->log_from);
        if (!exited) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            d->pid = 0;
            ck_abort_msg("elbod (%s) was not ready within 60 s; its output:\n%.2000s", elbod_bin(),
                         out);
        }
        d->pid = 0;
        /* The port was taken meanwhile, or the binary was being relinked (exec failed). */
        int retry =
            strstr(out, "listen_failed") != NULL || (WIFEXITED(st) && WEXITSTATUS(st) == 127);
        if (!retry)
            ck_abort_msg("elbod (%s) exited at start (status 0x%x); its output:\n%.2000s",
                         elbod_bin(), (unsigned)st, out);
        free(out);
        test_sleep_ms(100);
    }
    ck_abort_msg("elbod did not start in 5 attempts (ports taken, or %s missing)", elbod_bin());
}

/* Fails when the current run's output shows a sanitizer report or an error line. */
static void check_log_clean(const elbod *d)
{
    static const char *const bad[] = {"ERROR: AddressSanitizer", "runtime error", "LeakSanitizer",
                                      "level=error"};
    char *out = read_file_from(d->logpath, d->log_from);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *at = strstr(out, bad[i]);
        ck_assert_msg(at == NULL, "elbod output (%s) contains \"%s\":\n%.3000s", d->logpath, bad[i],
                      at ? (at - out > 200 ? at - 200 : out) : "");
    }
    free(out);
}

/* SIGTERM, then the exit status must be 0 and the output clean. */
static void daemon_stop(elbod *d)
{
    ck_assert_int_gt(d->pid, 0);
    ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
    int st = 0;
    if (!wait_exit(d->pid, 60.0, &st)) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        d->pid = 0;
        ck_abort_msg("elbod did not stop within 60 s of SIGTERM (%s)", d->logpath);
    }
    d->pid = 0;
    char *out = read_file_from(d->logpath, d->log_from);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "elbod stopped with status 0x%x after SIGTERM, not exit 0; its output:\n%.3000s",
                  (unsigned)st, out);
    free(out);
    check_log_clean(d);
}

/* SIGKILL, as a crash would. */
static void daemon_kill9(elbod *d)
{
    ck_assert_int_gt(d->pid, 0);
    ck_assert_int_eq(kill(d->pid, SIGKILL), 0);
    int st = 0;
    ck_assert_int_eq(waitpid(d->pid, &st, 0), d->pid);
    d->pid = 0;
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x after SIGKILL",
                  (unsigned)st);
    check_log_clean(d);
}

static void daemon_assert_alive(elbod *d, const char *after)
{
    int st = 0;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        d->pid = 0;
        char *out = read_file_from(d->logpath, d->log_from);
        ck_abort_msg("elbod died (status 0x%x) after %s; its output:\n%.3000s", (unsigned)st, after,
                     out);
    }
}

static void e2e_setup(void)
{
    memset(procs, 0, sizeof procs);
    cur_port = 0;
}

/* Kills what a failed test left running and removes the data directories. */
static void e2e_teardown(void)
{
    for (int i = 0; i < MAX_DAEMONS; i++) {
        elbod *d = &procs[i];
        if (d->pid > 0) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
        }
        if (d->dir[0])
            test_rm_rf(d->dir);
        memset(d, 0, sizeof *d);
    }
}

/* ---- HTTP --------------------------------------------------------------------------------- */

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    growbuf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, ptr, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* Headers of the last answer, and its body length (bodies may hold NUL bytes). */
static char last_request_id[64];
static char last_content_type[128];
static size_t last_len;
static int send_chunked; /* the next request goes without Content-Length (chunked) */

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
    (void)ud;
    size_t n = size * nmemb;
    header_value(ptr, n, "X-Request-Id:", last_request_id, sizeof last_request_id);
    header_value(ptr, n, "Content-Type:", last_content_type, sizeof last_content_type);
    return n;
}

/* One request to the current daemon: method, path, Content-Type (NULL: none at all), body (NULL:
 * none) of len bytes. Fills the status and the answer (malloc'd, NUL-terminated, its length in
 * last_len; the caller frees it). 0, or -1 when no answer came (connection refused, timeout). */
static int http(const char *method, const char *path, const char *content_type, const char *body,
                size_t len, long *status, char **resp_body)
{
    char url[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", cur_port, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    growbuf b = {0};
    struct curl_slist *h = NULL;
    char ct[200];
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "");
    h = curl_slist_append(h, ct); /* "Content-Type:" alone removes curl's default */
    h = curl_slist_append(h, "Expect:");
    if (send_chunked)
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    last_request_id[0] = '\0';
    last_content_type[0] = '\0';
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!b.p) {
        b.p = malloc(1);
        ck_assert_ptr_nonnull(b.p);
        b.p[0] = '\0';
    }
    last_len = b.len;
    *resp_body = b.p;
    return rc == CURLE_OK ? 0 : -1;
}

/* Fails the test for a request that got no answer, with the daemon's fate and output. */
static void no_answer(const char *method, const char *path)
{
    for (int i = 0; i < MAX_DAEMONS; i++) {
        elbod *d = &procs[i];
        if (d->pid <= 0 || d->port != cur_port)
            continue;
        int st = 0;
        if (waitpid(d->pid, &st, WNOHANG) != d->pid)
            break;
        d->pid = 0;
        char *out = read_file_from(d->logpath, d->log_from);
        const char *at = strstr(out, "ERROR: ");
        ck_abort_msg("%s %s: no answer: elbod died (status 0x%x); its output:\n%.3000s", method,
                     path, (unsigned)st, at ? at : out);
    }
    ck_abort_msg("%s %s: no answer from elbod (port %d)", method, path, cur_port);
}

/* Sends body (JSON, or nothing when NULL), asserts the status and returns the parsed answer (a
 * new reference). */
static json_t *call(const char *method, const char *path, const char *body, long want)
{
    long status = 0;
    char *text = NULL;
    int rc = http(method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
                  &status, &text);
    if (rc != 0)
        no_answer(method, path);
    ck_assert_msg(status == want, "%s %s: status %ld, expected %ld: %.600s (sent %.300s)", method,
                  path, status, want, text, body ? body : "");
    ck_assert_msg(strncmp(last_content_type, "application/json", 16) == 0,
                  "%s %s: Content-Type '%s'", method, path, last_content_type);
    ck_assert_msg(last_request_id[0] != '\0', "%s %s: no X-Request-Id header", method, path);
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    ck_assert_msg(v != NULL, "%s %s: the answer is not JSON (%s): %.300s", method, path, je.text,
                  text);
    free(text);
    return v;
}

/* Like call, with the body given printf-style. */
static json_t *callf(const char *method, const char *path, long want, const char *f, ...)
    __attribute__((format(printf, 4, 5)));
static json_t *callf(const char *method, const char *path, long want, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *body = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(body);
    va_start(ap, f);
    vsnprintf(body, (size_t)n + 1, f, ap);
    va_end(ap);
    json_t *v = call(method, path, body, want);
    free(body);
    return v;
}

/* ---- JSON access -------------------------------------------------------------------------- */

/* The value at a dotted path ("status.terms.elbo"), borrowed; NULL when absent. */
static json_t *jpath(json_t *o, const char *path)
{
    char key[128];
    const char *p = path;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        ck_assert_uint_lt(n, sizeof key);
        memcpy(key, p, n);
        key[n] = '\0';
        o = json_is_object(o) ? json_object_get(o, key) : NULL;
        p += n + (dot ? 1 : 0);
    }
    return o;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    return s ? s : fmt("(unprintable)");
}

static long long jint(json_t *o, const char *path)
{
    json_t *v = jpath(o, path);
    if (!json_is_integer(v)) {
        char *s = dump(o);
        ck_abort_msg("'%s' is not an integer in %.800s", path, s);
    }
    return json_integer_value(v);
}

/* A number (finite: elbod writes non-finite values as null). */
static double jnum(json_t *o, const char *path)
{
    json_t *v = jpath(o, path);
    if (!json_is_number(v)) {
        char *s = dump(o);
        ck_abort_msg("'%s' is not a number in %.800s", path, s);
    }
    double x = json_number_value(v);
    ck_assert_msg(isfinite(x), "'%s' is not finite", path);
    return x;
}

static const char *jstr(json_t *o, const char *path)
{
    json_t *v = jpath(o, path);
    if (!json_is_string(v)) {
        char *s = dump(o);
        ck_abort_msg("'%s' is not a string in %.800s", path, s);
    }
    return json_string_value(v);
}

static int jbool(json_t *o, const char *path)
{
    json_t *v = jpath(o, path);
    if (!json_is_boolean(v)) {
        char *s = dump(o);
        ck_abort_msg("'%s' is not a boolean in %.800s", path, s);
    }
    return json_is_true(v);
}

/* Asserts that `path` is an array of n finite numbers (or, with cols > 0, of n rows of cols). */
static json_t *jarray(json_t *o, const char *path, size_t n, size_t cols)
{
    json_t *a = jpath(o, path);
    ck_assert_msg(json_is_array(a), "'%s' is not an array", path);
    ck_assert_msg(json_array_size(a) == n, "'%s' has %zu entries, expected %zu", path,
                  json_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(a, i);
        if (cols == 0) {
            ck_assert_msg(json_is_number(row), "'%s[%zu]' is not a number", path, i);
            continue;
        }
        ck_assert_msg(json_is_array(row) && json_array_size(row) == cols,
                      "'%s[%zu]' is not an array of %zu", path, i, cols);
        for (size_t j = 0; j < cols; j++)
            ck_assert_msg(json_is_number(json_array_get(row, j)), "'%s[%zu][%zu]' not a number",
                          path, i, j);
    }
    return a;
}

/* ---- agents and experience ---------------------------------------------------------------- */

/* Small enough to plan and train quickly under ASan. */
#define SMALL_MODEL                                                                 \
    "\"model\":{\"h_dim\":16,\"z_dim\":4,\"hidden\":16,\"batch\":4,\"seq_len\":8}," \
    "\"planner\":{\"population\":32,\"horizon\":5,\"iterations\":2}"

/* Creates an agent with dx observations and one action in [-2, 2]; training is a JSON object
 * (NULL: min_transitions 20). Returns the 201 answer. */
static json_t *create_agent(const char *name, int dx, const char *training)
{
    return callf("POST", "/v1/agents", 201,
                 "{\"name\":\"%s\",\"observation_dim\":%d,\"action_dim\":1,\"action_low\":[-2],"
                 "\"action_high\":[2]," SMALL_MODEL ",\"training\":%s}",
                 name, dx, training ? training : "{\"min_transitions\":20}");
}

static double obs_value(int serial, int k, int j)
{
    return 0.8 * sin(0.3 * k + 1.1 * j + 0.7 * serial);
}

static double act_value(int serial, int k)
{
    return 1.5 * sin(0.5 * k + 0.3 * serial);
}

static json_t *obs_row(int serial, int k, int dx)
{
    json_t *r = json_array();
    for (int j = 0; j < dx; j++)
        json_array_append_new(r, json_real(obs_value(serial, k, j)));
    return r;
}

/* {"episodes":[...]}: n episodes "<prefix>-<first + i>" of T transitions each (dx observations,
 * one action); every other one ends with done, every third carries planner distributions. */
static char *episodes_body(const char *prefix, int first, int n, int T, int dx)
{
    json_t *eps = json_array();
    for (int i = 0; i < n; i++) {
        int serial = first + i;
        json_t *ep = json_object(), *obs = json_array(), *act = json_array(), *rew = json_array();
        char id[96];
        snprintf(id, sizeof id, "%s-%d", prefix, serial);
        json_object_set_new(ep, "id", json_string(id));
        for (int k = 0; k <= T; k++)
            json_array_append_new(obs, obs_row(serial, k, dx));
        for (int k = 0; k < T; k++) {
            json_array_append_new(act, json_pack("[f]", act_value(serial, k)));
            json_array_append_new(rew, json_real(cos(0.2 * k + serial)));
        }
        json_object_set_new(ep, "observations", obs);
        json_object_set_new(ep, "actions", act);
        json_object_set_new(ep, "rewards", rew);
        json_object_set_new(ep, "done", json_boolean(serial % 2 == 0));
        if (serial % 3 == 0) {
            json_t *mean = json_array(), *std = json_array();
            for (int k = 0; k < T; k++) {
                json_array_append_new(mean, json_pack("[f]", 0.5 * act_value(serial, k)));
                json_array_append_new(std, json_pack("[f]", 0.3));
            }
            json_object_set_new(ep, "action_mean", mean);
            json_object_set_new(ep, "action_std", std);
        }
        json_array_append_new(eps, ep);
    }
    json_t *root = json_pack("{s:o}", "episodes", eps);
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(root);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* {"transitions":[...]}: n flat transitions "<prefix>-<first + i>". */
static char *transitions_body(const char *prefix, int first, int n, int dx)
{
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        int serial = first + i;
        char id[96];
        snprintf(id, sizeof id, "%s-%d", prefix, serial);
        json_t *tr =
            json_pack("{s:s, s:o, s:[f], s:f, s:o, s:b}", "id", id, "observation",
                      obs_row(serial, 0, dx), "action", act_value(serial, 0), "reward",
                      0.25 * serial, "next_observation", obs_row(serial, 1, dx), "done", i % 2);
        ck_assert_ptr_nonnull(tr);
        json_array_append_new(arr, tr);
    }
    json_t *root = json_pack("{s:o}", "transitions", arr);
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(root);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Submits a body to the agent's transitions and checks the counts it acknowledges. */
static void submit(const char *agent, char *body, long accepted, long duplicates)
{
    json_t *r = call("POST", P("/v1/agents/%s/transitions", agent), body, 200);
    ck_assert_msg(jint(r, "accepted") == accepted && jint(r, "duplicates") == duplicates,
                  "transitions: accepted %lld duplicates %lld, expected %ld and %ld",
                  jint(r, "accepted"), jint(r, "duplicates"), accepted, duplicates);
    json_decref(r);
}

static json_t *training(const char *agent)
{
    return call("GET", P("/v1/agents/%s/training", agent), NULL, 200);
}

static long long replay_size(const char *agent)
{
    json_t *t = training(agent);
    long long n = jint(t, "replay_size");
    json_decref(t);
    return n;
}

/* Polls GET .../training until step >= min_step; returns the step. */
static long long wait_step(const char *agent, long long min_step, double timeout_s)
{
    double until = test_now_s() + timeout_s;
    for (;;) {
        json_t *t = training(agent);
        long long step = jint(t, "step");
        if (step >= min_step) {
            json_decref(t);
            return step;
        }
        if (test_now_s() > until) {
            char *s = dump(t);
            ck_abort_msg("agent %s: step %lld after %.0f s, expected >= %lld: %.1000s", agent, step,
                         timeout_s, min_step, s);
        }
        json_decref(t);
        test_sleep_ms(25);
    }
}

/* Asserts that the action is one finite number in the agent's box [-2, 2]. */
static void check_action(json_t *r)
{
    json_t *a = jarray(r, "action", 1, 0);
    double x = json_number_value(json_array_get(a, 0));
    ck_assert_msg(x >= -2.0 && x <= 2.0, "action %g outside [-2, 2]", x);
}

/* ---- the agent lifecycle ------------------------------------------------------------------ */

START_TEST(test_agent_lifecycle)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);

    json_t *a = create_agent("alpha", 3, NULL);
    ck_assert_str_eq(jstr(a, "name"), "alpha");
    ck_assert_int_eq(jint(a, "observation_dim"), 3);
    ck_assert_int_eq(jint(a, "action_dim"), 1);
    ck_assert_double_eq(json_number_value(json_array_get(jarray(a, "action_low", 1, 0), 0)), -2.0);
    ck_assert_double_eq(json_number_value(json_array_get(jarray(a, "action_high", 1, 0), 0)), 2.0);
    ck_assert_int_eq(jint(a, "model.h_dim"), 16);
    ck_assert_int_eq(jint(a, "model.z_dim"), 4);
    ck_assert_int_eq(jint(a, "model.hidden"), 16);
    ck_assert_int_eq(jint(a, "model.batch"), 4);
    ck_assert_int_eq(jint(a, "model.seq_len"), 8);
    ck_assert_int_eq(jint(a, "planner.population"), 32);
    ck_assert_int_eq(jint(a, "planner.horizon"), 5);
    ck_assert_int_eq(jint(a, "planner.iterations"), 2);
    ck_assert_int_eq(jint(a, "training.min_transitions"), 20);
    ck_assert_int_eq(jint(a, "sessions"), 0);
    ck_assert_int_eq(jint(a, "status.step"), 0);
    ck_assert_int_eq(jint(a, "status.replay_size"), 0);
    ck_assert(!jbool(a, "status.paused"));
    json_t *b = create_agent("beta", 2, NULL);
    json_decref(b);

    /* list, in name order; get returns what create described */
    json_t *l = call("GET", "/v1/agents", NULL, 200);
    json_t *arr = jpath(l, "agents");
    ck_assert(json_is_array(arr));
    ck_assert_uint_eq(json_array_size(arr), 2);
    ck_assert_str_eq(jstr(json_array_get(arr, 0), "name"), "alpha");
    ck_assert_str_eq(jstr(json_array_get(arr, 1), "name"), "beta");
    ck_assert_int_eq(jint(json_array_get(arr, 1), "observation_dim"), 2);
    json_decref(l);
    json_t *g = call("GET", "/v1/agents/alpha", NULL, 200);
    const char *sections[] = {"model", "planner", "training", "action_low", "action_high"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(json_equal(jpath(a, sections[i]), jpath(g, sections[i])),
                      "GET shows another '%s' than create", sections[i]);
    json_decref(g);

    /* PATCH: planner, training and the model's training weights change on a live agent */
    json_t *p = call("PATCH", "/v1/agents/alpha",
                     "{\"planner\":{\"horizon\":7,\"population\":48},"
                     "\"training\":{\"min_transitions\":30,\"max_steps_per_sec\":10},"
                     "\"model\":{\"lr\":0.002}}",
                     200);
    ck_assert_int_eq(jint(p, "planner.horizon"), 7);
    ck_assert_int_eq(jint(p, "planner.population"), 48);
    ck_assert_int_eq(jint(p, "training.min_transitions"), 30);
    ck_assert_double_eq_tol(jnum(p, "training.max_steps_per_sec"), 10.0, 1e-6);
    ck_assert_double_eq_tol(jnum(p, "model.lr"), 0.002, 1e-7);
    ck_assert_int_eq(jint(p, "planner.iterations"), 2); /* untouched settings stay */
    ck_assert_int_eq(jint(p, "model.h_dim"), 16);
    json_decref(p);
    g = call("GET", "/v1/agents/alpha", NULL, 200);
    ck_assert_int_eq(jint(g, "planner.horizon"), 7);
    ck_assert_int_eq(jint(g, "training.min_transitions"), 30);
    json_decref(g);
    json_t *plan = call("POST", "/v1/agents/alpha/plan", "{\"observation\":[0.1,0.2,0.3]}", 200);
    ck_assert_int_eq(jint(plan, "plan.horizon"), 7); /* the planner uses the new horizon */
    jarray(plan, "plan.actions", 7, 1);
    json_decref(plan);

    /* shapes are refused, and a refused PATCH changes nothing */
    json_t *e = call("PATCH", "/v1/agents/alpha", "{\"model\":{\"h_dim\":32}}", 422);
    ck_assert_str_eq(jstr(e, "error.code"), "immutable_field");
    ck_assert_str_eq(jstr(e, "error.field"), "model.h_dim");
    json_decref(e);
    e = call("PATCH", "/v1/agents/alpha", "{\"observation_dim\":4}", 422);
    ck_assert_str_eq(jstr(e, "error.code"), "immutable_field");
    ck_assert_str_eq(jstr(e, "error.field"), "observation_dim");
    json_decref(e);
    e = call("PATCH", "/v1/agents/alpha",
             "{\"planner\":{\"horizon\":9},\"training\":{\"min_transitions\":0}}", 422);
    ck_assert_str_eq(jstr(e, "error.code"), "invalid_config");
    ck_assert_str_eq(jstr(e, "error.field"), "training.min_transitions");
    json_decref(e);
    g = call("GET", "/v1/agents/alpha", NULL, 200);
    ck_assert_int_eq(jint(g, "model.h_dim"), 16);
    ck_assert_int_eq(jint(g, "observation_dim"), 3);
    ck_assert_int_eq(jint(g, "planner.horizon"), 7);
    ck_assert_int_eq(jint(g, "training.min_transitions"), 30);
    json_decref(g);

    /* delete removes the agent and its data: a re-created agent of that name starts empty */
    char *ep = episodes_body("life", 0, 1, 5, 3);
    submit("alpha", ep, 5, 0);
    json_t *del = call("DELETE", "/v1/agents/alpha", NULL, 200);
    ck_assert_str_eq(jstr(del, "deleted"), "alpha");
    json_decref(del);
    e = call("GET", "/v1/agents/alpha", NULL, 404);
    ck_assert_str_eq(jstr(e, "error.code"), "agent_not_found");
    json_decref(e);
    json_decref(call("POST", "/v1/agents/alpha/act", "{\"observation\":[0,0,0]}", 404));
    json_decref(call("GET", "/v1/agents/alpha/training", NULL, 404));
    json_decref(call("DELETE", "/v1/agents/alpha", NULL, 404));
    l = call("GET", "/v1/agents", NULL, 200);
    ck_assert_uint_eq(json_array_size(jpath(l, "agents")), 1);
    ck_assert_str_eq(jstr(json_array_get(jpath(l, "agents"), 0), "name"), "beta");
    json_decref(l);
    json_t *again = create_agent("alpha", 3, NULL);
    ck_assert_int_eq(jint(again, "status.replay_size"), 0);
    ck_assert_int_eq(jint(again, "planner.horizon"), 5);
    json_decref(again);
    submit("alpha", ep, 5, 0); /* the old episode id is forgotten with the old agent */
    free(ep);

    json_decref(a);
    daemon_stop(d);
}
END_TEST

/* ---- acting: stateless and in sessions ---------------------------------------------------- */

START_TEST(test_act_forms)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_decref(create_agent("actor", 3, "{\"min_transitions\":1000}"));

    /* stateless, plan mode (the default) */
    json_t *r = call("POST", "/v1/agents/actor/act", "{\"observation\":[0.1,-0.2,0.3]}", 200);
    check_action(r);
    ck_assert_str_eq(jstr(r, "mode"), "plan");
    ck_assert_int_eq(jint(r, "model_version"), 0);
    ck_assert_int_ge(jint(r, "iterations"), 1);
    ck_assert(!jbool(r, "degraded"));
    ck_assert_double_ge(jnum(r, "plan_ms"), 0.0);
    ck_assert_str_eq(jstr(r, "request_id"), last_request_id);
    ck_assert_ptr_null(jpath(r, "session_id"));
    ck_assert_ptr_null(jpath(r, "plan"));
    json_decref(r);
    /* policy mode, exploring, with a deadline */
    r = call("POST", "/v1/agents/actor/act", "{\"observation\":[0.1,-0.2,0.3],\"mode\":\"policy\"}",
             200);
    check_action(r);
    ck_assert_str_eq(jstr(r, "mode"), "policy");
    ck_assert_int_eq(jint(r, "iterations"), 0);
    json_decref(r);
    r = call("POST", "/v1/agents/actor/act",
             "{\"observation\":[0.1,-0.2,0.3],\"explore\":true,\"deadline_ms\":200}", 200);
    check_action(r);
    json_decref(r);
    r = call("POST", "/v1/agents/actor/act",
             "{\"observation\":[0.1,-0.2,0.3],\"mode\":\"policy\",\"explore\":true}", 200);
    check_action(r);
    json_decref(r);

    /* a session opened without an observation, then N steps with rewards, then done */
    json_t *s = call("POST", "/v1/agents/actor/sessions", NULL, 201);
    char sid[64];
    snprintf(sid, sizeof sid, "%s", jstr(s, "session_id"));
    ck_assert_int_eq(jint(s, "model_version"), 0);
    ck_assert_str_eq(jstr(s, "request_id"), last_request_id);
    json_decref(s);
    json_t *g = call("GET", "/v1/agents/actor", NULL, 200);
    ck_assert_int_eq(jint(g, "sessions"), 1);
    json_decref(g);
    const char *sact = P("/v1/agents/actor/sessions/%s/act", sid);
    char sact_path[256];
    snprintf(sact_path, sizeof sact_path, "%s", sact);
    const int N = 6;
    long expected_transitions = 0;
    for (int k = 0; k < N; k++) {
        r = callf("POST", sact_path, 200, "{\"observation\":[%g,%g,%g],\"reward\":%g%s}",
                  obs_value(1, k, 0), obs_value(1, k, 1), obs_value(1, k, 2), 0.1 * k,
                  k % 2 ? ",\"mode\":\"policy\"" : "");
        check_action(r);
        ck_assert_str_eq(jstr(r, "session_id"), sid);
        ck_assert_int_eq(jint(r, "episode_step"), k);
        ck_assert(!jbool(r, "episode_done"));
        ck_assert_str_eq(jstr(r, "mode"), k % 2 ? "policy" : "plan");
        json_decref(r);
        expected_transitions++;
    }
    r = call("POST", sact_path, "{\"observation\":[0.5,0.5,0.5],\"reward\":1.0,\"done\":true}",
             200);
    ck_assert(jbool(r, "episode_done"));
    ck_assert_int_eq(jint(r, "episode_step"), N);
    check_action(r);
    json_decref(r);
    /* the next observation starts a new episode */
    for (int k = 0; k < 2; k++) {
        r = call("POST", sact_path, "{\"observation\":[0.0,0.1,0.2]}", 200);
        ck_assert_int_eq(jint(r, "episode_step"), k);
        ck_assert(!jbool(r, "episode_done"));
        json_decref(r);
        expected_transitions++;
    }
    /* a step that is not recorded still advances the episode */
    r = call("POST", sact_path, "{\"observation\":[0.0,0.1,0.2],\"record\":false}", 200);
    ck_assert_int_eq(jint(r, "episode_step"), 2);
    json_decref(r);

    /* a session opened with its first observation answers like an act */
    s = call("POST", "/v1/agents/actor/sessions",
             "{\"observation\":[0.3,0.2,0.1],\"mode\":\"policy\"}", 201);
    check_action(s);
    ck_assert_str_eq(jstr(s, "mode"), "policy");
    ck_assert_int_eq(jint(s, "episode_step"), 0);
    char sid2[64];
    snprintf(sid2, sizeof sid2, "%s", jstr(s, "session_id"));
    ck_assert_str_ne(sid2, sid);
    json_decref(s);
    expected_transitions++;
    r = callf("POST", P("/v1/agents/actor/sessions/%s/act", sid2), 200,
              "{\"observation\":[0.3,0.2,0.0],\"reward\":0.5}");
    ck_assert_int_eq(jint(r, "episode_step"), 1);
    json_decref(r);
    expected_transitions++;

    /* every recorded action counts as a transition received */
    json_t *t = training("actor");
    ck_assert_int_eq(jint(t, "transitions_total"), expected_transitions);
    json_decref(t);
    g = call("GET", "/v1/agents/actor", NULL, 200);
    ck_assert_int_eq(jint(g, "sessions"), 2);
    json_decref(g);

    /* closing: the session is gone, the other one stays */
    json_t *c = call("DELETE", P("/v1/agents/actor/sessions/%s", sid), NULL, 200);
    ck_assert_str_eq(jstr(c, "closed"), sid);
    json_decref(c);
    json_t *e = call("POST", sact_path, "{\"observation\":[0,0,0]}", 404);
    ck_assert_str_eq(jstr(e, "error.code"), "session_not_found");
    json_decref(e);
    json_decref(call("DELETE", P("/v1/agents/actor/sessions/%s", sid), NULL, 404));
    g = call("GET", "/v1/agents/actor", NULL, 200);
    ck_assert_int_eq(jint(g, "sessions"), 1);
    json_decref(g);
    json_decref(call("POST", P("/v1/agents/actor/sessions/%s/act", sid2),
                     "{\"observation\":[0,0,0]}", 200));
    daemon_stop(d);
}
END_TEST

/* ---- POST .../plan ------------------------------------------------------------------------ */

static void check_plan(json_t *r, int horizon, int dx)
{
    ck_assert_int_eq(jint(r, "plan.horizon"), horizon);
    jarray(r, "plan.actions", (size_t)horizon, 1);
    json_t *sd = jarray(r, "plan.action_std", (size_t)horizon, 1);
    for (int k = 0; k < horizon; k++)
        ck_assert_double_gt(json_number_value(json_array_get(json_array_get(sd, (size_t)k), 0)),
                            0.0);
    jarray(r, "plan.predicted_rewards", (size_t)horizon, 0);
    jarray(r, "plan.predicted_reward_std", (size_t)horizon, 0);
    jarray(r, "plan.predicted_observations", (size_t)horizon, (size_t)dx);
    jarray(r, "plan.predicted_observation_std", (size_t)horizon, (size_t)dx);
    const char *terms[] = {"expected_return", "info_bonus", "action_logratio", "terminal_value",
                           "objective"};
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++)
        jnum(r, P("plan.terms.%s", terms[i]));
    check_action(r);
    ck_assert_str_eq(jstr(r, "mode"), "plan");
}

START_TEST(test_plan)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_decref(create_agent("planner", 3, "{\"min_transitions\":1000}"));
    json_t *r = call("POST", "/v1/agents/planner/plan", "{\"observation\":[0.2,0.1,-0.4]}", 200);
    check_plan(r, 5, 3);
    ck_assert_str_eq(jstr(r, "request_id"), last_request_id);
    json_decref(r);
    r = call("POST", "/v1/agents/planner/plan",
             "{\"observation\":[0.2,0.1,-0.4],\"explore\":true,\"deadline_ms\":500}", 200);
    check_plan(r, 5, 3);
    json_decref(r);

    /* from a session's state: the session does not advance */
    json_t *s = call("POST", "/v1/agents/planner/sessions", "{\"observation\":[0.1,0.1,0.1]}", 201);
    char sid[64];
    snprintf(sid, sizeof sid, "%s", jstr(s, "session_id"));
    json_decref(s);
    r = callf("POST", "/v1/agents/planner/plan", 200, "{\"session_id\":\"%s\"}", sid);
    check_plan(r, 5, 3);
    ck_assert_str_eq(jstr(r, "session_id"), sid);
    ck_assert_int_eq(jint(r, "episode_step"), 1);
    json_decref(r);
    r = callf("POST", "/v1/agents/planner/plan", 200,
              "{\"session_id\":\"%s\",\"observation\":[0.2,0.2,0.2]}", sid);
    check_plan(r, 5, 3);
    json_decref(r);
    r = call("POST", P("/v1/agents/planner/sessions/%s/act", sid), "{\"observation\":[0,0,0]}",
             200);
    ck_assert_int_eq(jint(r, "episode_step"), 1);
    json_decref(r);
    json_t *e = call("POST", "/v1/agents/planner/plan", "{\"session_id\":\"s-0000\"}", 404);
    ck_assert_str_eq(jstr(e, "error.code"), "session_not_found");
    json_decref(e);
    e = call("POST", "/v1/agents/planner/plan", "{}", 422);
    ck_assert_str_eq(jstr(e, "error.code"), "missing_field");
    ck_assert_str_eq(jstr(e, "error.field"), "observation");
    json_decref(e);
    daemon_stop(d);
}
END_TEST

/* ---- experience, training, pause/resume, metrics ------------------------------------------ */

/* Checks the Prometheus text format line by line: HELP/TYPE comments, `name{labels} value`
 * samples, one TYPE per family, declared before its samples, each family's samples together. */
static void check_prometheus(const char *text)
{
    char seen[128][96]; /* families whose samples have ended */
    int n_seen = 0;
    char current[96] = "";
    char typed[128][96];
    int n_typed = 0;
    const char *line = text;
    int lineno = 0;
    while (*line) {
        const char *eol = strchr(line, '\n');
        ck_assert_msg(eol != NULL, "metrics: the last line has no newline");
        size_t len = (size_t)(eol - line);
        char buf[512];
        ck_assert_uint_lt(len, sizeof buf);
        memcpy(buf, line, len);
        buf[len] = '\0';
        lineno++;
        line = eol + 1;
        if (buf[0] == '#') {
            char kind[8], name[96];
            ck_assert_msg(sscanf(buf, "# %7s %95s", kind, name) == 2 &&
                              (strcmp(kind, "HELP") == 0 || strcmp(kind, "TYPE") == 0),
                          "metrics line %d: bad comment '%s'", lineno, buf);
            if (strcmp(kind, "TYPE") == 0) {
                for (int i = 0; i < n_typed; i++)
                    ck_assert_msg(strcmp(typed[i], name) != 0, "metrics: second TYPE for %s", name);
                ck_assert_int_lt(n_typed, 128);
                snprintf(typed[n_typed++], sizeof typed[0], "%s", name);
            }
            continue;
        }
        ck_assert_msg(len > 0, "metrics line %d is empty", lineno);
        size_t k = strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
        ck_assert_msg(k > 0 && k < sizeof current, "metrics line %d: bad name: %s", lineno, buf);
        char name[96];
        memcpy(name, buf, k);
        name[k] = '\0';
        const char *p = buf + k;
        if (*p == '{') {
            /* label="value" pairs, comma separated; values may hold any character but '"' */
            const char *q = p + 1;
            while (*q != '}') {
                size_t lk =
                    strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
                ck_assert_msg(lk > 0 && q[lk] == '=' && q[lk + 1] == '"',
                              "metrics line %d: bad label: %s", lineno, buf);
                q += lk + 2;
                while (*q && *q != '"')
                    q += q[0] == '\\' && q[1] ? 2 : 1;
                ck_assert_msg(*q == '"', "metrics line %d: unclosed label value: %s", lineno, buf);
                q++;
                ck_assert_msg(*q == ',' || *q == '}', "metrics line %d: bad labels: %s", lineno,
                              buf);
                if (*q == ',')
                    q++;
            }
            p = q + 1;
        }
        ck_assert_msg(*p == ' ', "metrics line %d: no value: %s", lineno, buf);
        char *end;
        strtod(p + 1, &end);
        ck_assert_msg(end != p + 1 && *end == '\0', "metrics line %d: bad value: %s", lineno, buf);
        /* families: the name without the histogram suffixes */
        char family[96];
        snprintf(family, sizeof family, "%s", name);
        const char *suffixes[] = {"_bucket", "_sum", "_count"};
        for (size_t i = 0; i < 3; i++) {
            size_t fl = strlen(family), sl = strlen(suffixes[i]);
            if (fl > sl && strcmp(family + fl - sl, suffixes[i]) == 0) {
                char base[96];
                snprintf(base, sizeof base, "%.*s", (int)(fl - sl), family);
                for (int t = 0; t < n_typed; t++)
                    if (strcmp(typed[t], base) == 0)
                        snprintf(family, sizeof family, "%s", base);
            }
        }
        int declared = 0;
        for (int t = 0; t < n_typed; t++)
            declared |= strcmp(typed[t], family) == 0;
        ck_assert_msg(declared, "metrics line %d: %s has no TYPE before it", lineno, family);
        if (strcmp(family, current) != 0) {
            for (int i = 0; i < n_seen; i++)
                ck_assert_msg(strcmp(seen[i], family) != 0,
                              "metrics line %d: the samples of %s are not together: %s", lineno,
                              family, buf);
            if (current[0]) {
                ck_assert_int_lt(n_seen, 128);
                snprintf(seen[n_seen++], sizeof seen[0], "%s", current);
            }
            snprintf(current, sizeof current, "%s", family);
        }
    }
}

/* The value of the sample that starts with `prefix` (name and labels), or NAN when absent. */
static double metric_value(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return NAN;
}

static char *get_metrics(void)
{
    long status = 0;
    char *text = NULL;
    ck_assert_int_eq(http("GET", "/metrics", NULL, NULL, 0, &status, &text), 0);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(strncmp(last_content_type, "text/plain", 10) == 0, "metrics Content-Type '%s'",
                  last_content_type);
    check_prometheus(text);
    return text;
}

START_TEST(test_transitions_training_metrics)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    /* No cap on steps per transition, throttled to keep the machine free for requests. */
    json_decref(create_agent(
        "learner", 3, "{\"min_transitions\":20,\"train_ratio\":0,\"max_steps_per_sec\":100}"));
    json_decref(create_agent("other", 2, NULL));

    /* whole episodes; training waits for min_transitions */
    char *b0 = episodes_body("ep", 0, 1, 10, 3);
    submit("learner", b0, 10, 0);
    json_t *t = training("learner");
    ck_assert_int_eq(jint(t, "replay_size"), 10);
    ck_assert_int_eq(jint(t, "transitions_total"), 10);
    json_decref(t);
    test_sleep_ms(300);
    t = training("learner");
    ck_assert_int_eq(jint(t, "step"), 0);
    ck_assert(!jbool(t, "training"));
    json_decref(t);
    char *b12 = episodes_body("ep", 1, 2, 10, 3);
    submit("learner", b12, 20, 0);
    ck_assert_int_eq(replay_size("learner"), 30);

    /* re-submitting the same episode ids gives duplicates, not double counting */
    char *b02 = episodes_body("ep", 0, 3, 10, 3);
    submit("learner", b02, 0, 3);
    submit("learner", b0, 0, 1);
    ck_assert_int_eq(replay_size("learner"), 30);
    char *b23 = episodes_body("ep", 2, 2, 10, 3); /* ep-2 is known, ep-3 is new */
    submit("learner", b23, 10, 1);
    ck_assert_int_eq(replay_size("learner"), 40);

    /* flat transitions, likewise */
    char *tr = transitions_body("tr", 0, 4, 3);
    submit("learner", tr, 4, 0);
    submit("learner", tr, 0, 4);
    char *tr2 = transitions_body("tr", 3, 2, 3); /* tr-3 known, tr-4 new */
    submit("learner", tr2, 1, 1);
    t = training("learner");
    ck_assert_int_eq(jint(t, "replay_size"), 45);
    ck_assert_int_eq(jint(t, "transitions_total"), 45);
    json_decref(t);
    /* the ids are per agent */
    char *other = episodes_body("ep", 0, 1, 10, 2);
    submit("other", other, 10, 0);
    ck_assert_int_eq(replay_size("learner"), 45);
    free(b0);
    free(b12);
    free(b02);
    free(b23);
    free(tr);
    free(tr2);
    free(other);

    /* training progresses, and its terms are finite */
    long long s1 = wait_step("learner", 1, 30.0);
    wait_step("learner", s1 + 3, 30.0);
    t = training("learner");
    const char *terms[] = {"reward", "info_gain", "state_kl", "action_kl", "elbo", "loss"};
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++)
        jnum(t, P("terms.%s", terms[i]));
    ck_assert_double_ne(jnum(t, "terms.elbo"), 0.0);
    ck_assert_double_gt(jnum(t, "grad_norm"), 0.0);
    ck_assert(!jbool(t, "paused"));
    json_decref(t);

    /* pause: the step stops moving; resume: it moves again */
    t = call("POST", "/v1/agents/learner/training", "{\"action\":\"pause\"}", 200);
    ck_assert(jbool(t, "paused"));
    long long pause_step = jint(t, "step");
    json_decref(t);
    /* A step already running may still finish (one at most); then the step stays put, where
     * unpaused training would have made some 50 steps in each 500 ms. */
    long long paused_at = -1;
    for (double until = test_now_s() + 10.0; test_now_s() < until;) {
        t = training("learner");
        long long a = jint(t, "step");
        ck_assert(jbool(t, "paused"));
        json_decref(t);
        test_sleep_ms(500);
        t = training("learner");
        long long b = jint(t, "step");
        json_decref(t);
        if (a == b) {
            paused_at = b;
            break;
        }
    }
    ck_assert_msg(paused_at >= 0, "training went on for 10 s after the pause");
    ck_assert_msg(paused_at <= pause_step + 1, "%lld steps after the pause",
                  paused_at - pause_step);
    char *m = get_metrics();
    ck_assert_double_eq(metric_value(m, "elbod_agent_training_paused{agent=\"learner\"}"), 1.0);
    free(m);
    t = call("POST", "/v1/agents/learner/training", "{\"action\":\"resume\"}", 200);
    ck_assert(!jbool(t, "paused"));
    json_decref(t);
    long long resumed = wait_step("learner", paused_at + 2, 30.0);

    /* metrics */
    json_decref(call("GET", "/healthz", NULL, 200));
    m = get_metrics();
    ck_assert_ptr_nonnull(strstr(m, "# TYPE elbod_http_requests_total counter"));
    ck_assert_double_ge(
        metric_value(m,
                     "elbod_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"),
        1.0);
    ck_assert_double_ge(metric_value(m, "elbod_http_requests_total{route=\"/v1/agents/{name}/"
                                        "transitions\",method=\"POST\",status=\"200\"}"),
                        9.0);
    double steps = metric_value(m, "elbod_agent_training_steps_total{agent=\"learner\"}");
    ck_assert_msg(steps >= (double)resumed, "elbod_agent_training_steps_total %g < %lld", steps,
                  resumed);
    ck_assert_double_eq(metric_value(m, "elbod_agent_training_steps_total{agent=\"other\"}"), 0.0);
    ck_assert_double_eq(metric_value(m, "elbod_agent_replay_transitions{agent=\"learner\"}"), 45.0);
    ck_assert_double_eq(metric_value(m, "elbod_agent_training_paused{agent=\"learner\"}"), 0.0);
    for (size_t i = 0; i < 5; i++) {
        double v =
            metric_value(m, P("elbod_agent_elbo_term{agent=\"learner\",term=\"%s\"}", terms[i]));
        ck_assert_msg(isfinite(v), "no finite elbod_agent_elbo_term for %s", terms[i]);
    }
    ck_assert_ptr_nonnull(strstr(m, "elbod_http_request_duration_seconds_bucket{"));
    free(m);
    daemon_stop(d);
}
END_TEST

/* ---- daemon endpoints and request ids ----------------------------------------------------- */

START_TEST(test_daemon_endpoints)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_t *h = call("GET", "/healthz", NULL, 200);
    ck_assert_str_eq(jstr(h, "status"), "ok");
    json_decref(h);
    char id1[64];
    snprintf(id1, sizeof id1, "%s", last_request_id);
    json_t *r = call("GET", "/readyz", NULL, 200);
    ck_assert_str_eq(jstr(r, "status"), "ready");
    json_decref(r);
    ck_assert_str_ne(last_request_id, id1); /* every request gets its own id */
    json_t *v = call("GET", "/v1/version", NULL, 200);
    ck_assert_str_eq(jstr(v, "name"), "elbod");
    ck_assert_str_eq(jstr(v, "api"), "v1");
    ck_assert(strlen(jstr(v, "version")) > 0);
    json_decref(v);
    json_t *l = call("GET", "/v1/agents", NULL, 200);
    ck_assert_uint_eq(json_array_size(jpath(l, "agents")), 0);
    json_decref(l);
    /* errors carry a request id too */
    json_t *e = call("GET", "/v1/agents/ghost", NULL, 404);
    ck_assert(last_request_id[0] != '\0');
    json_decref(e);
    /* the request id in an act answer is the one in its header */
    json_decref(create_agent("ids", 2, NULL));
    char seen[8][64];
    for (int i = 0; i < 8; i++) {
        json_t *a = call(
            "POST", "/v1/agents/ids/act",
            i % 2 ? "{\"observation\":[0,1]}" : "{\"observation\":[0,1],\"mode\":\"policy\"}", 200);
        ck_assert_str_eq(jstr(a, "request_id"), last_request_id);
        snprintf(seen[i], sizeof seen[i], "%s", last_request_id);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(seen[j], seen[i]);
        json_decref(a);
    }
    daemon_stop(d);
}
END_TEST

/* A second daemon on a port in use must fail to start, not share the port. */
START_TEST(test_port_clash)
{
    elbod *a = &procs[0], *b = &procs[1];
    daemon_start(a, NULL);
    json_decref(create_agent("first", 2, NULL));
    const char *tmp = getenv("TMPDIR");
    snprintf(b->dir, sizeof b->dir, "%s/elbod-e2e-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(b->dir));
    snprintf(b->logpath, sizeof b->logpath, "%s/elbod.stderr", b->dir);
    b->pid = spawn(b, a->port, NULL);
    int st = 0;
    int exited = wait_exit(b->pid, 30.0, &st);
    if (exited)
        b->pid = 0;
    char *out = read_file_from(b->logpath, 0);
    ck_assert_msg(exited, "a second elbod on port %d did not fail: it shares the port", a->port);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "second elbod: status 0x%x", (unsigned)st);
    ck_assert_msg(strstr(out, "listen_failed") != NULL, "second elbod said: %.1000s", out);
    free(out);
    /* the first one still answers, with its own agents, on every connection */
    for (int i = 0; i < 8; i++)
        json_decref(call("GET", "/v1/agents/first", NULL, 200));
    daemon_stop(a);
}
END_TEST

/* ---- checkpoints -------------------------------------------------------------------------- */

/* GET .../checkpoint: the binary image (malloc'd, length in *len). */
static unsigned char *get_checkpoint(const char *agent, size_t *len)
{
    long status = 0;
    char *body = NULL;
    ck_assert_int_eq(
        http("GET", P("/v1/agents/%s/checkpoint", agent), NULL, NULL, 0, &status, &body), 0);
    ck_assert_msg(status == 200, "GET checkpoint: %ld %.300s", status, body);
    ck_assert_str_eq(last_content_type, "application/octet-stream");
    *len = last_len;
    ck_assert_uint_gt(*len, 64);
    return (unsigned char *)body;
}

/* PUT .../checkpoint; returns the answer for want. */
static json_t *put_checkpoint(const char *agent, const void *buf, size_t len, long want)
{
    long status = 0;
    char *body = NULL;
    ck_assert_int_eq(http("PUT", P("/v1/agents/%s/checkpoint", agent), "application/octet-stream",
                          buf, len, &status, &body),
                     0);
    ck_assert_msg(status == want, "PUT checkpoint: %ld, expected %ld: %.300s", status, want, body);
    json_t *v = json_loads(body, 0, NULL);
    ck_assert_ptr_nonnull(v);
    free(body);
    return v;
}

static double policy_action(const char *agent, const char *obs)
{
    json_t *r = callf("POST", P("/v1/agents/%s/act", agent), 200,
                      "{\"observation\":%s,\"mode\":\"policy\"}", obs);
    double a = json_number_value(json_array_get(jpath(r, "action"), 0));
    json_decref(r);
    return a;
}

START_TEST(test_checkpoint)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_decref(create_agent("ck", 3, "{\"min_transitions\":20,\"train_ratio\":1}"));
    char *eps = episodes_body("ck", 0, 3, 10, 3);
    submit("ck", eps, 30, 0);
    free(eps);
    long long step = wait_step("ck", 30, 60.0); /* train_ratio 1: stops at 30 steps */
    ck_assert_int_eq(step, 30);
    const char *obs = "[0.3,-0.1,0.2]";
    double a_ck = policy_action("ck", obs);

    size_t len = 0;
    unsigned char *img = get_checkpoint("ck", &len);
    json_t *r = put_checkpoint("ck", img, len, 200);
    ck_assert_int_eq(jint(r, "model_version"), step);
    json_decref(r);
    r = call("POST", "/v1/agents/ck/act", "{\"observation\":[0,0,0]}", 200);
    ck_assert_int_eq(jint(r, "model_version"), step);
    json_decref(r);

    /* the image carries the model: a fresh agent of the same shape acts the same after import */
    json_decref(create_agent("clone", 3, "{\"min_transitions\":1000}"));
    r = put_checkpoint("clone", img, len, 200);
    ck_assert_int_eq(jint(r, "model_version"), step);
    json_decref(r);
    ck_assert_double_eq(policy_action("clone", obs), a_ck);

    /* a corrupted copy (one byte flipped, truncated, garbage) is refused and changes nothing */
    unsigned char *bad = malloc(len);
    ck_assert_ptr_nonnull(bad);
    size_t where[] = {len / 2, len - 1, 8};
    for (size_t i = 0; i < 3; i++) {
        memcpy(bad, img, len);
        bad[where[i]] ^= 0x5a;
        r = put_checkpoint("ck", bad, len, 422);
        ck_assert_str_eq(jstr(r, "error.code"), "invalid_checkpoint");
        json_decref(r);
    }
    r = put_checkpoint("ck", img, len / 2, 422);
    ck_assert_str_eq(jstr(r, "error.code"), "invalid_checkpoint");
    json_decref(r);
    r = put_checkpoint("ck", "not a checkpoint", 16, 422);
    ck_assert_str_eq(jstr(r, "error.code"), "invalid_checkpoint");
    json_decref(r);
    free(bad);

    /* a checkpoint of an agent with other dimensions: 409 */
    json_decref(create_agent("wide", 4, NULL));
    size_t wlen = 0;
    unsigned char *wide = get_checkpoint("wide", &wlen);
    r = put_checkpoint("ck", wide, wlen, 409);
    ck_assert_str_eq(jstr(r, "error.code"), "checkpoint_mismatch");
    json_decref(r);
    r = put_checkpoint("wide", img, len, 409);
    ck_assert_str_eq(jstr(r, "error.code"), "checkpoint_mismatch");
    json_decref(r);
    free(wide);

    /* wrong content type, empty body, unknown agent */
    long status = 0;
    char *body = NULL;
    ck_assert_int_eq(http("PUT", "/v1/agents/ck/checkpoint", "application/json", (char *)img, len,
                          &status, &body),
                     0);
    ck_assert_int_eq(status, 415);
    free(body);
    r = put_checkpoint("ck", "", 0, 400);
    ck_assert_str_eq(jstr(r, "error.code"), "empty_body");
    json_decref(r);
    r = put_checkpoint("nobody", img, len, 404);
    ck_assert_str_eq(jstr(r, "error.code"), "agent_not_found");
    json_decref(r);
    json_decref(call("GET", "/v1/agents/nobody/checkpoint", NULL, 404));

    /* after all that, ck is the agent it was */
    r = call("POST", "/v1/agents/ck/act", "{\"observation\":[0,0,0]}", 200);
    ck_assert_int_eq(jint(r, "model_version"), step);
    json_decref(r);
    ck_assert_double_eq(policy_action("ck", obs), a_ck);
    size_t len2 = 0;
    unsigned char *img2 = get_checkpoint("ck", &len2);
    ck_assert_uint_eq(len2, len);
    free(img2);
    free(img);
    daemon_stop(d);
}
END_TEST

/* ---- training while requests are served --------------------------------------------------- */

START_TEST(test_training_while_acting)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_decref(create_agent(
        "busy", 3, "{\"min_transitions\":20,\"train_ratio\":0,\"max_steps_per_sec\":20}"));
    json_t *s = call("POST", "/v1/agents/busy/sessions", NULL, 201);
    char sact[256];
    snprintf(sact, sizeof sact, "/v1/agents/busy/sessions/%s/act", jstr(s, "session_id"));
    json_decref(s);
    char *eps = episodes_body("busy", 0, 4, 10, 3);
    submit("busy", eps, 40, 0);
    free(eps);
    /* keep acting (stateless and in the session) while the trainer publishes new versions */
    long long first = -1, last = -1;
    int advances = 0, acts = 0;
    double until = test_now_s() + 20.0;
    while (advances < 2 && test_now_s() < until) {
        json_t *r;
        if (acts % 2)
            r = callf("POST", sact, 200, "{\"observation\":[%g,%g,%g],\"reward\":0.1}",
                      obs_value(3, acts, 0), obs_value(3, acts, 1), obs_value(3, acts, 2));
        else
            r = call("POST", "/v1/agents/busy/act", "{\"observation\":[0.1,0.2,0.3]}", 200);
        check_action(r);
        long long v = jint(r, "model_version");
        json_decref(r);
        ck_assert_msg(v >= last, "model_version went back from %lld to %lld", last, v);
        if (first < 0)
            first = v;
        else if (v > last)
            advances++;
        last = v;
        acts++;
    }
    ck_assert_msg(advances >= 2,
                  "model_version advanced %d times in 20 s of acting (%d acts, %lld "
                  "-> %lld)",
                  advances, acts, first, last);
    daemon_stop(d);
}
END_TEST

/* ---- durability --------------------------------------------------------------------------- */

START_TEST(test_restart_keeps_state)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_decref(create_agent(
        "keep", 3, "{\"min_transitions\":20,\"train_ratio\":1,\"checkpoint_every_s\":3600}"));
    char *eps = episodes_body("keep", 0, 3, 10, 3);
    submit("keep", eps, 30, 0);
    json_decref(call("PATCH", "/v1/agents/keep", "{\"planner\":{\"horizon\":6}}", 200));
    long long step = wait_step("keep", 30, 60.0); /* train_ratio 1: stops at 30 */
    ck_assert_int_eq(step, 30);
    json_t *before = call("GET", "/v1/agents/keep", NULL, 200);
    ck_assert_int_eq(jint(before, "status.last_checkpoint_step"), 0); /* none written yet */
    const char *obs = "[-0.2,0.4,0.1]";
    double a_before = policy_action("keep", obs);
    ck_assert_double_eq(policy_action("keep", obs), a_before); /* deterministic */
    daemon_stop(d); /* SIGTERM: exit 0, and a checkpoint is written */

    daemon_start(d, NULL); /* the same data directory */
    json_t *after = call("GET", "/v1/agents/keep", NULL, 200);
    const char *keys[] = {"model", "planner", "training", "observation_dim", "action_low"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(json_equal(jpath(before, keys[i]), jpath(after, keys[i])),
                      "'%s' changed over the restart", keys[i]);
    ck_assert_int_eq(jint(after, "planner.horizon"), 6);
    ck_assert_int_eq(jint(after, "status.replay_size"), 30);
    ck_assert_int_eq(jint(after, "status.transitions_total"), 30);
    ck_assert_int_eq(jint(after, "status.last_checkpoint_step"), step);
    ck_assert_int_eq(jint(after, "status.step"), step);
    json_t *r = call("POST", "/v1/agents/keep/act", "{\"observation\":[0,0,0]}", 200);
    ck_assert_int_eq(jint(r, "model_version"), step);
    json_decref(r);
    ck_assert_double_eq(policy_action("keep", obs), a_before); /* the same parameters */
    submit("keep", eps, 0, 3);                                 /* the episode ids survived too */
    ck_assert_int_eq(replay_size("keep"), 30);
    free(eps);
    json_decref(before);
    json_decref(after);
    daemon_stop(d);
}
END_TEST

/* More SIGTERMs while elbod shuts down (an impatient operator, a supervisor signalling the whole
 * process group) change nothing: the shutdown finishes and elbod exits 0. They used to be fatal:
 * the main thread no longer waits for them then, and the kernel handed them to a thread OpenBLAS
 * started before main, which does not block them. */
START_TEST(test_sigterm_during_shutdown)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    json_decref(create_agent("t", 3, NULL));
    char *eps = episodes_body("t", 0, 2, 5, 3);
    submit("t", eps, 10, 0);
    free(eps);
    ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
    double until = test_now_s() + 30.0;
    for (;;) {
        char *out = read_file_from(d->logpath, d->log_from);
        int started = strstr(out, "event=shutting_down") != NULL;
        free(out);
        if (started)
            break;
        ck_assert_msg(test_now_s() < until, "no shutting_down within 30 s of SIGTERM");
        test_sleep_ms(1);
    }
    for (int i = 0; i < 3; i++) {
        if (kill(d->pid, i == 1 ? SIGINT : SIGTERM) != 0)
            break; /* gone already */
        test_sleep_ms(1);
    }
    int st = 0;
    if (!wait_exit(d->pid, 60.0, &st)) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        d->pid = 0;
        ck_abort_msg("elbod did not stop within 60 s of SIGTERM (%s)", d->logpath);
    }
    d->pid = 0;
    char *out = read_file_from(d->logpath, d->log_from);
    ck_assert_msg(
        WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "elbod ended with status 0x%x after more SIGTERMs during its shutdown, not exit 0; "
        "its output:\n%.3000s",
        (unsigned)st, out);
    ck_assert_msg(strstr(out, "event=stopped status=clean") != NULL,
                  "no clean stop in the output:\n%.3000s", out);
    free(out);
    check_log_clean(d);
}
END_TEST

START_TEST(test_kill9_loses_nothing)
{
    elbod *d = &procs[0];
    daemon_start(d, NULL);
    /* Training runs flat out and checkpoints every second, so the kill may hit either. */
    json_decref(create_agent(
        "crash", 3, "{\"min_transitions\":20,\"train_ratio\":0,\"checkpoint_every_s\":1}"));
    const int K = 12;
    long acked = 0;
    char *bodies[12];
    for (int i = 0; i < K; i++) {
        bodies[i] = episodes_body(P("crash%d", i), 0, 2, 5, 3);
        submit("crash", bodies[i], 10, 0);
        acked += 10;
        if (i == K / 2) {
            /* wait for a periodic checkpoint, so that the restart has one to load */
            double until = test_now_s() + 30.0;
            long long ck = 0;
            while (ck == 0 && test_now_s() < until) {
                json_t *t = training("crash");
                ck = jint(t, "last_checkpoint_step");
                json_decref(t);
                test_sleep_ms(50);
            }
            ck_assert_msg(ck > 0, "no periodic checkpoint within 30 s");
        }
    }
    daemon_kill9(d); /* right after the last acknowledgement */

    daemon_start(d, NULL);
    char *out = read_file_from(d->logpath, d->log_from);
    const char *bad = strstr(out, "checkpoint_unusable");
    if (!bad)
        bad = strstr(out, "load_failed");
    ck_assert_msg(bad == NULL, "the restart after kill -9 did not load cleanly: %.2000s", bad);
    free(out);
    json_t *t = training("crash");
    ck_assert_int_eq(jint(t, "replay_size"), acked);
    ck_assert_int_eq(jint(t, "transitions_total"), acked);
    ck_assert_int_gt(jint(t, "last_checkpoint_step"), 0);
    json_decref(t);
    json_t *r = call("POST", "/v1/agents/crash/act", "{\"observation\":[0,0,0]}", 200);
    ck_assert_int_gt(jint(r, "model_version"), 0);
    json_decref(r);
    for (int i = 0; i < K; i++) {
        submit("crash", bodies[i], 0, 2);
        free(bodies[i]);
    }
    ck_assert_int_eq(replay_size("crash"), acked);
    daemon_stop(d);
}
END_TEST

/* ---- bad requests ------------------------------------------------------------------------- */

#define JSON     "application/json"
#define OCTET    "application/octet-stream"
#define OBS_OK   "{\"observation\":[1,0,0]}"
#define CREATE_U "{\"name\":\"u\",\"observation_dim\":3,\"action_dim\":1,\"action_low\":[-2],"
#define BOX      "\"action_low\":[-2],\"action_high\":[2]"
#define U_OK     CREATE_U "\"action_high\":[2]"
#define EP(o, a, r) \
    "{\"episodes\":[{\"id\":\"x\",\"observations\":" o ",\"actions\":" a ",\"rewards\":" r "}]}"
#define TR(o, a, r, n)                                                        \
    "{\"transitions\":[{\"observation\":" o ",\"action\":" a ",\"reward\":" r \
    ",\"next_observation\":" n "}]}"

enum { BODY_AS_IS, BODY_TOO_LARGE, BODY_TOO_LARGE_CHUNKED, BODY_TOO_DEEP };

typedef struct bad_case {
    const char *method, *path; /* {sid} in the path is the open session's id */
    const char *content_type;  /* NULL: no Content-Type header */
    const char *body;          /* NULL: no body */
    int special;               /* BODY_*: a generated body instead */
    long status;
    const char *code;
    const char *field; /* NULL: not checked */
} bad_case;

/* The agent "t" has 3 observations and one action; the daemon takes bodies (checkpoints too) of
 * 4096 bytes at most. */
static const bad_case bad_cases[] = {
    /* malformed JSON: 400 invalid_json */
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,", 0, 400, "invalid_json", NULL},
    {"POST", "/v1/agents", JSON, "{\"name\":\"u\" \"observation_dim\":3}", 0, 400, "invalid_json",
     NULL},
    {"POST", "/v1/agents/t/transitions", JSON, "{'episodes':[]}", 0, 400, "invalid_json", NULL},
    {"POST", "/v1/agents/t/act", JSON, "\"observation\"", 0, 400, "invalid_json", NULL},
    {"POST", "/v1/agents/t/act", JSON, OBS_OK " trailing", 0, 400, "invalid_json", NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"mode\":\"\xff\"}", 0, 400,
     "invalid_json", NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,nan]}", 0, 400, "invalid_json", NULL},
    {"POST", "/v1/agents/t/act", JSON, NULL, BODY_TOO_DEEP, 400, "invalid_json", NULL},
    {"PATCH", "/v1/agents/t", JSON, "{\"planner\":{\"horizon\":5}", 0, 400, "invalid_json", NULL},
    /* a JSON body that is not an object */
    {"POST", "/v1/agents/t/act", JSON, "[1,0,0]", 0, 422, "invalid_type", NULL},
    {"POST", "/v1/agents", JSON, "[]", 0, 422, "invalid_type", NULL},
    /* wrong content type: 415 */
    {"POST", "/v1/agents/t/act", "text/plain", OBS_OK, 0, 415, "unsupported_media_type", NULL},
    {"POST", "/v1/agents/t/act", NULL, OBS_OK, 0, 415, "unsupported_media_type", NULL},
    {"POST", "/v1/agents/t/act", "application/jsonx", OBS_OK, 0, 415, "unsupported_media_type",
     NULL},
    {"POST", "/v1/agents", "application/x-www-form-urlencoded", "name=u", 0, 415,
     "unsupported_media_type", NULL},
    {"POST", "/v1/agents/t/sessions/{sid}/act", "text/json", OBS_OK, 0, 415,
     "unsupported_media_type", NULL},
    {"PUT", "/v1/agents/t/checkpoint", JSON, "{}", 0, 415, "unsupported_media_type", NULL},
    /* duplicate keys: 400 duplicate_key */
    {"POST", "/v1/agents", JSON, U_OK ",\"name\":\"v\"}", 0, 400, "duplicate_key", NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"observation\":[0,0,0]}", 0, 400,
     "duplicate_key", NULL},
    {"POST", "/v1/agents/t/transitions", JSON,
     "{\"transitions\":[{\"observation\":[0,0,0],\"action\":[0],\"action\":[1],\"reward\":0,"
     "\"next_observation\":[0,0,0]}]}",
     0, 400, "duplicate_key", NULL},
    {"PATCH", "/v1/agents/t", JSON, "{\"planner\":{\"horizon\":5,\"horizon\":6}}", 0, 400,
     "duplicate_key", NULL},
    /* unknown fields: 422 unknown_field */
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"obs\":1}", 0, 422,
     "unknown_field", "obs"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"hdim\":16}}", 0, 422, "unknown_field",
     "model.hdim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"color\":\"red\"}", 0, 422, "unknown_field", "color"},
    {"PATCH", "/v1/agents/t", JSON, "{\"planner\":{\"horizonn\":5}}", 0, 422, "unknown_field",
     "planner.horizonn"},
    {"PATCH", "/v1/agents/t", JSON, "{\"trainning\":{}}", 0, 422, "unknown_field", "trainning"},
    {"POST", "/v1/agents/t/transitions", JSON,
     "{\"episodes\":[{\"observations\":[[0,0,0],[1,1,1]],\"actions\":[[0]],\"rewards\":[0],"
     "\"extra\":1}]}",
     0, 422, "unknown_field", "episodes[0].extra"},
    {"POST", "/v1/agents/t/transitions", JSON, "{\"episode\":[]}", 0, 422, "unknown_field",
     "episode"},
    {"POST", "/v1/agents/t/sessions/{sid}/act", JSON, "{\"observation\":[1,0,0],\"rewardd\":1}", 0,
     422, "unknown_field", "rewardd"},
    {"POST", "/v1/agents/t/training", JSON, "{\"action\":\"pause\",\"now\":true}", 0, 422,
     "unknown_field", "now"},
    {"POST", "/v1/agents/t/plan", JSON, "{\"observation\":[1,0,0],\"x\":0}", 0, 422,
     "unknown_field", "x"},
    /* wrong observation dimension: 422 dimension_mismatch */
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0]}", 0, 422, "dimension_mismatch",
     "observation"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0,0]}", 0, 422, "dimension_mismatch",
     "observation"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[]}", 0, 422, "dimension_mismatch",
     "observation"},
    {"POST", "/v1/agents/t/sessions/{sid}/act", JSON, "{\"observation\":[1,0]}", 0, 422,
     "dimension_mismatch", "observation"},
    {"POST", "/v1/agents/t/sessions", JSON, "{\"observation\":[1]}", 0, 422, "dimension_mismatch",
     "observation"},
    {"POST", "/v1/agents/t/plan", JSON, "{\"observation\":[1,0]}", 0, 422, "dimension_mismatch",
     "observation"},
    {"POST", "/v1/agents/t/transitions", JSON, EP("[[0,0,0],[1,1]]", "[[0]]", "[0]"), 0, 422,
     "dimension_mismatch", "episodes[0].observations[1]"},
    {"POST", "/v1/agents/t/transitions", JSON, EP("[[0,0,0]]", "[[0]]", "[0]"), 0, 422,
     "dimension_mismatch", "episodes[0].observations"},
    {"POST", "/v1/agents/t/transitions", JSON, EP("[[0,0,0],[1,1,1]]", "[[0,1]]", "[0]"), 0, 422,
     "dimension_mismatch", "episodes[0].actions[0]"},
    {"POST", "/v1/agents/t/transitions", JSON, EP("[[0,0,0],[1,1,1]]", "[[0]]", "[0,1]"), 0, 422,
     "dimension_mismatch", "episodes[0].rewards"},
    {"POST", "/v1/agents/t/transitions", JSON, TR("[0,0,0]", "[0]", "0", "[0,0]"), 0, 422,
     "dimension_mismatch", "transitions[0].next_observation"},
    /* NaN, Infinity, overflow: 422 non_finite_number */
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[NaN,0,0]}", 0, 422, "non_finite_number",
     NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[Infinity,0,0]}", 0, 422,
     "non_finite_number", NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[-Infinity,0,0]}", 0, 422,
     "non_finite_number", NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1e999,0,0]}", 0, 422, "non_finite_number",
     NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[-1e999,0,0]}", 0, 422,
     "non_finite_number", NULL},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1e39,0,0]}", 0, 422, "non_finite_number",
     "observation"},
    {"POST", "/v1/agents/t/sessions/{sid}/act", JSON, "{\"observation\":[1,0,0],\"reward\":1e999}",
     0, 422, "non_finite_number", NULL},
    {"POST", "/v1/agents/t/transitions", JSON, EP("[[0,0,0],[1,1,1]]", "[[0]]", "[NaN]"), 0, 422,
     "non_finite_number", NULL},
    {"POST", "/v1/agents/t/transitions", JSON, TR("[0,0,0]", "[1e40]", "0", "[0,0,0]"), 0, 422,
     "non_finite_number", "transitions[0].action"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"lr\":Infinity}}", 0, 422, "non_finite_number",
     NULL},
    {"PATCH", "/v1/agents/t", JSON, "{\"planner\":{\"temperature\":-Infinity}}", 0, 422,
     "non_finite_number", NULL},
    /* strings (and other types) where numbers go: 422 invalid_type */
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[\"1\",0,0]}", 0, 422, "invalid_type",
     "observation"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":\"1,0,0\"}", 0, 422, "invalid_type",
     "observation"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"deadline_ms\":\"10\"}", 0, 422,
     "invalid_type", "deadline_ms"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"explore\":1}", 0, 422,
     "invalid_type", "explore"},
    {"POST", "/v1/agents/t/sessions/{sid}/act", JSON, "{\"observation\":[1,0,0],\"reward\":\"1\"}",
     0, 422, "invalid_type", "reward"},
    {"POST", "/v1/agents/t/sessions/{sid}/act", JSON, "{\"observation\":[1,0,0],\"done\":\"yes\"}",
     0, 422, "invalid_type", "done"},
    {"POST", "/v1/agents", JSON,
     "{\"name\":\"u\",\"observation_dim\":\"3\",\"action_dim\":1," BOX "}", 0, 422, "invalid_type",
     "observation_dim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"h_dim\":\"16\"}}", 0, 422, "invalid_type",
     "model.h_dim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"h_dim\":16.5}}", 0, 422, "invalid_type",
     "model.h_dim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"planner\":{\"use_value\":1}}", 0, 422, "invalid_type",
     "planner.use_value"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":16}", 0, 422, "invalid_type", "model"},
    {"PATCH", "/v1/agents/t", JSON, "{\"planner\":{\"horizon\":\"5\"}}", 0, 422, "invalid_type",
     "planner.horizon"},
    {"POST", "/v1/agents/t/transitions", JSON, EP("[[0,0,0],[1,1,1]]", "[[0]]", "[\"1\"]"), 0, 422,
     "invalid_type", "episodes[0].rewards"},
    {"POST", "/v1/agents/t/transitions", JSON, TR("[0,0,0]", "[0]", "\"0\"", "[0,0,0]"), 0, 422,
     "invalid_type", "transitions[0].reward"},
    {"POST", "/v1/agents/t/transitions", JSON, "{\"episodes\":{}}", 0, 422, "invalid_type",
     "episodes"},
    /* empty bodies: 400 empty_body */
    {"POST", "/v1/agents/t/act", JSON, "", 0, 400, "empty_body", NULL},
    {"POST", "/v1/agents", JSON, "", 0, 400, "empty_body", NULL},
    {"POST", "/v1/agents/t/transitions", JSON, "", 0, 400, "empty_body", NULL},
    {"PATCH", "/v1/agents/t", JSON, "", 0, 400, "empty_body", NULL},
    {"POST", "/v1/agents/t/training", JSON, "", 0, 400, "empty_body", NULL},
    {"POST", "/v1/agents/t/plan", JSON, "", 0, 400, "empty_body", NULL},
    {"POST", "/v1/agents/t/sessions/{sid}/act", JSON, "", 0, 400, "empty_body", NULL},
    {"PUT", "/v1/agents/t/checkpoint", OCTET, "", 0, 400, "empty_body", NULL},
    /* oversized bodies: 413 payload_too_large */
    {"POST", "/v1/agents/t/act", JSON, NULL, BODY_TOO_LARGE, 413, "payload_too_large", NULL},
    {"POST", "/v1/agents/t/transitions", JSON, NULL, BODY_TOO_LARGE_CHUNKED, 413,
     "payload_too_large", NULL},
    {"PUT", "/v1/agents/t/checkpoint", OCTET, NULL, BODY_TOO_LARGE, 413, "payload_too_large", NULL},
    /* unknown agent: 404 agent_not_found */
    {"GET", "/v1/agents/nope", NULL, NULL, 0, 404, "agent_not_found", NULL},
    {"PATCH", "/v1/agents/nope", JSON, "{\"planner\":{\"horizon\":5}}", 0, 404, "agent_not_found",
     NULL},
    {"DELETE", "/v1/agents/nope", NULL, NULL, 0, 404, "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/act", JSON, OBS_OK, 0, 404, "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/act", JSON, "{\"observation\":[1,0,0],\"mode\":\"policy\"}", 0, 404,
     "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/plan", JSON, OBS_OK, 0, 404, "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/sessions", JSON, "{}", 0, 404, "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/sessions/{sid}/act", JSON, OBS_OK, 0, 404, "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/transitions", JSON, EP("[[0,0,0],[1,1,1]]", "[[0]]", "[0]"), 0, 404,
     "agent_not_found", NULL},
    {"GET", "/v1/agents/nope/training", NULL, NULL, 0, 404, "agent_not_found", NULL},
    {"POST", "/v1/agents/nope/training", JSON, "{\"action\":\"pause\"}", 0, 404, "agent_not_found",
     NULL},
    {"GET", "/v1/agents/nope/checkpoint", NULL, NULL, 0, 404, "agent_not_found", NULL},
    {"PUT", "/v1/agents/nope/checkpoint", OCTET, "xxxx", 0, 404, "agent_not_found", NULL},
    /* unknown session: 404 session_not_found */
    {"POST", "/v1/agents/t/sessions/s-0000/act", JSON, OBS_OK, 0, 404, "session_not_found", NULL},
    {"DELETE", "/v1/agents/t/sessions/s-0000", NULL, NULL, 0, 404, "session_not_found", NULL},
    {"POST", "/v1/agents/t/plan", JSON, "{\"session_id\":\"s-0000\"}", 0, 404, "session_not_found",
     NULL},
    /* duplicate agent name: 409 agent_exists */
    {"POST", "/v1/agents", JSON, "{\"name\":\"t\",\"observation_dim\":3,\"action_dim\":1," BOX "}",
     0, 409, "agent_exists", "name"},
    {"POST", "/v1/agents", JSON,
     "{\"name\":\"t\",\"observation_dim\":5,\"action_dim\":2,\"action_low\":[0,0],"
     "\"action_high\":[1,1]}",
     0, 409, "agent_exists", "name"},
    /* unknown routes: 404 */
    {"GET", "/ui/nothing.js", NULL, NULL, 0, 404, "not_found", NULL},
    {"GET", "/v1", NULL, NULL, 0, 404, "not_found", NULL},
    {"GET", "/v2/agents", NULL, NULL, 0, 404, "not_found", NULL},
    {"GET", "/v1/agents/t/nothing", NULL, NULL, 0, 404, "not_found", NULL},
    {"GET", "/v1/agents/t/training/", NULL, NULL, 0, 404, "not_found", NULL},
    {"POST", "/v1/agents/t/sessions/{sid}/act/more", JSON, OBS_OK, 0, 404, "not_found", NULL},
    {"GET",
     "/v1/agents/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     NULL, NULL, 0, 404, NULL, NULL},
    /* wrong methods: 405 */
    {"PUT", "/v1/agents", JSON, "{}", 0, 405, "method_not_allowed", NULL},
    {"DELETE", "/healthz", NULL, NULL, 0, 405, "method_not_allowed", NULL},
    {"POST", "/metrics", NULL, NULL, 0, 405, "method_not_allowed", NULL},
    {"GET", "/v1/agents/t/act", NULL, NULL, 0, 405, "method_not_allowed", NULL},
    {"POST", "/v1/agents/t", JSON, "{}", 0, 405, "method_not_allowed", NULL},
    {"GET", "/v1/agents/t/sessions", NULL, NULL, 0, 405, "method_not_allowed", NULL},
    {"PATCH", "/v1/agents/t/checkpoint", OCTET, "xx", 0, 405, "method_not_allowed", NULL},
    {"DELETE", "/v1/agents/t/training", NULL, NULL, 0, 405, "method_not_allowed", NULL},
    /* invalid configuration values: 422 invalid_config naming the field */
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"h_dim\":0}}", 0, 422, "invalid_config",
     "model.h_dim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"z_dim\":100000}}", 0, 422, "invalid_config",
     "model.z_dim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"lr\":0}}", 0, 422, "invalid_config",
     "model.lr"},
    {"POST", "/v1/agents", JSON, U_OK ",\"planner\":{\"horizon\":0}}", 0, 422, "invalid_config",
     "planner.horizon"},
    {"POST", "/v1/agents", JSON, U_OK ",\"planner\":{\"population\":1}}", 0, 422, "invalid_config",
     "planner.population"},
    {"POST", "/v1/agents", JSON, U_OK ",\"training\":{\"min_transitions\":0}}", 0, 422,
     "invalid_config", "training.min_transitions"},
    {"POST", "/v1/agents", JSON, U_OK ",\"training\":{\"train_ratio\":-1}}", 0, 422,
     "invalid_config", "training.train_ratio"},
    {"POST", "/v1/agents", JSON,
     "{\"name\":\"u\",\"observation_dim\":3,\"action_dim\":1,\"action_low\":[2],"
     "\"action_high\":[-2]}",
     0, 422, "invalid_config", "action_high"},
    {"PATCH", "/v1/agents/t", JSON, "{\"planner\":{\"horizon\":0}}", 0, 422, "invalid_config",
     "planner.horizon"},
    {"PATCH", "/v1/agents/t", JSON, "{\"training\":{\"checkpoint_every_s\":0}}", 0, 422,
     "invalid_config", "training.checkpoint_every_s"},
    /* shapes of a live agent: 422 immutable_field */
    {"PATCH", "/v1/agents/t", JSON, "{\"model\":{\"h_dim\":32}}", 0, 422, "immutable_field",
     "model.h_dim"},
    {"PATCH", "/v1/agents/t", JSON, "{\"observation_dim\":4}", 0, 422, "immutable_field",
     "observation_dim"},
    {"PATCH", "/v1/agents/t", JSON, "{\"name\":\"t2\"}", 0, 422, "immutable_field", "name"},
    /* other values out of their domain */
    {"POST", "/v1/agents", JSON,
     "{\"name\":\"bad name\",\"observation_dim\":3,\"action_dim\":1," BOX "}", 0, 422,
     "invalid_value", "name"},
    {"POST", "/v1/agents", JSON,
     "{\"name\":\"../etc\",\"observation_dim\":3,\"action_dim\":1," BOX "}", 0, 422,
     "invalid_value", "name"},
    {"POST", "/v1/agents", JSON, "{\"observation_dim\":3,\"action_dim\":1," BOX "}", 0, 422,
     "missing_field", "name"},
    {"POST", "/v1/agents", JSON, "{\"name\":\"u\",\"observation_dim\":0,\"action_dim\":1," BOX "}",
     0, 422, "out_of_range", "observation_dim"},
    {"POST", "/v1/agents", JSON, U_OK ",\"model\":{\"activation\":\"sigmoid\"}}", 0, 422,
     "invalid_value", "model.activation"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"mode\":\"walk\"}", 0, 422,
     "invalid_value", "mode"},
    {"POST", "/v1/agents/t/act", JSON, "{\"observation\":[1,0,0],\"deadline_ms\":-1}", 0, 422,
     "out_of_range", "deadline_ms"},
    {"POST", "/v1/agents/t/act", JSON, "{}", 0, 422, "missing_field", "observation"},
    {"POST", "/v1/agents/t/training", JSON, "{\"action\":\"stop\"}", 0, 422, "invalid_value",
     "action"},
    {"POST", "/v1/agents/t/training", JSON, "{}", 0, 422, "missing_field", "action"},
    {"POST", "/v1/agents/t/transitions", JSON, "{}", 0, 422, "missing_field", "episodes"},
    {"POST", "/v1/agents/t/transitions", JSON, "{\"transitions\":[]}", 0, 422, "dimension_mismatch",
     "transitions"},
    {"POST", "/v1/agents/t/transitions", JSON, "{\"episodes\":[],\"transitions\":[]}", 0, 422,
     "invalid_value", "transitions"},
    {"POST", "/v1/agents/t/transitions", JSON,
     "{\"episodes\":[{\"observations\":[[0,0,0]],\"actions\":[],\"rewards\":[]}]}", 0, 422,
     "dimension_mismatch", "episodes[0].actions"},
    {"POST", "/v1/agents/t/transitions", JSON,
     "{\"episodes\":[{\"observations\":[[0,0,0],[1,1,1]],\"actions\":[[0]],\"rewards\":[0],"
     "\"action_mean\":[[0]],\"action_std\":[[0]]}]}",
     0, 422, "out_of_range", "episodes[0].action_std"},
    {"PUT", "/v1/agents/t/checkpoint", OCTET, "not a checkpoint at all", 0, 422,
     "invalid_checkpoint", NULL},
};

/* Replaces {sid} in s by sid (into out). */
static const char *expand(const char *s, const char *sid, char *out, size_t cap)
{
    const char *at = strstr(s, "{sid}");
    if (!at)
        return s;
    snprintf(out, cap, "%.*s%s%s", (int)(at - s), s, sid, at + 5);
    return out;
}

/* A generated body for the BODY_* cases (malloc'd; length in *len). */
static char *special_body(int special, size_t *len)
{
    size_t n = special == BODY_TOO_DEEP ? 3000 : 5000;
    char *b = malloc(n + 1);
    ck_assert_ptr_nonnull(b);
    if (special == BODY_TOO_DEEP) {
        memset(b, '[', n); /* deeper than the parser's limit, within the body limit */
    } else {
        /* valid JSON, only too long */
        memset(b, ' ', n);
        memcpy(b, OBS_OK, strlen(OBS_OK));
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* Checks the error shape {"error":{"code","message"[,"field"]}}, its code and field. */
static void check_error_shape(const bad_case *c, const char *what, const char *text)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    ck_assert_msg(root != NULL, "%s: the answer is not JSON: %.300s", what, text);
    ck_assert_msg(json_is_object(root) && json_object_size(root) == 1, "%s: not an error: %.300s",
                  what, text);
    json_t *err = json_object_get(root, "error");
    ck_assert_msg(json_is_object(err), "%s: no error object: %.300s", what, text);
    const char *key;
    json_t *v;
    json_object_foreach(err, key, v)
    {
        ck_assert_msg(strcmp(key, "code") == 0 || strcmp(key, "message") == 0 ||
                          strcmp(key, "field") == 0,
                      "%s: unexpected key '%s' in the error", what, key);
        ck_assert_msg(json_is_string(v), "%s: error.%s is not a string", what, key);
    }
    ck_assert_msg(json_is_string(json_object_get(err, "code")), "%s: no error.code", what);
    ck_assert_msg(json_string_length(json_object_get(err, "message")) > 0, "%s: no error.message",
                  what);
    const char *code = json_string_value(json_object_get(err, "code"));
    ck_assert_msg(!c->code || strcmp(code, c->code) == 0, "%s: code '%s', expected '%s': %.300s",
                  what, code, c->code, text);
    if (c->field) {
        json_t *f = json_object_get(err, "field");
        ck_assert_msg(f && strcmp(json_string_value(f), c->field) == 0,
                      "%s: field '%s', expected '%s': %.300s", what,
                      f ? json_string_value(f) : "(none)", c->field, text);
    }
    json_decref(root);
}

START_TEST(test_bad_requests)
{
    elbod *d = &procs[0];
    const char *flags[] = {"--max-body-bytes", "4096", "--max-checkpoint-bytes", "4096", NULL};
    daemon_start(d, flags);
    json_decref(create_agent("t", 3, NULL));
    char *eps = episodes_body("t", 0, 2, 5, 3);
    submit("t", eps, 10, 0);
    free(eps);
    json_t *s = call("POST", "/v1/agents/t/sessions", OBS_OK, 201);
    char sid[64];
    snprintf(sid, sizeof sid, "%s", jstr(s, "session_id"));
    json_decref(s);
    json_t *before = call("GET", "/v1/agents/t", NULL, 200);

    size_t n_cases = sizeof bad_cases / sizeof bad_cases[0];
    for (size_t i = 0; i < n_cases; i++) {
        const bad_case *c = &bad_cases[i];
        char pathbuf[512];
        const char *path = expand(c->path, sid, pathbuf, sizeof pathbuf);
        char what[700];
        snprintf(what, sizeof what, "case %zu: %s %s (%.80s)", i, c->method, path,
                 c->body ? c->body : "generated body");
        char *gen = NULL;
        const char *body = c->body;
        size_t len = body ? strlen(body) : 0;
        if (c->special) {
            gen = special_body(c->special, &len);
            body = gen;
        }
        send_chunked = c->special == BODY_TOO_LARGE_CHUNKED;
        long status = 0;
        char *text = NULL;
        int rc = http(c->method, path, c->content_type, body, len, &status, &text);
        send_chunked = 0;
        free(gen);
        if (rc != 0)
            no_answer(c->method, what);
        ck_assert_msg(status == c->status, "%s: status %ld, expected %ld: %.300s", what, status,
                      c->status, text);
        ck_assert_msg(strncmp(last_content_type, "application/json", 16) == 0,
                      "%s: Content-Type '%s'", what, last_content_type);
        ck_assert_msg(last_request_id[0] != '\0', "%s: no X-Request-Id", what);
        check_error_shape(c, what, text);
        free(text);
        daemon_assert_alive(d, what);
    }

    /* the daemon still answers, and the agent and its session are intact */
    json_decref(call("GET", "/healthz", NULL, 200));
    json_t *l = call("GET", "/v1/agents", NULL, 200);
    ck_assert_msg(json_array_size(jpath(l, "agents")) == 1, "a bad request created an agent");
    json_decref(l);
    json_t *after = call("GET", "/v1/agents/t", NULL, 200);
    const char *keys[] = {"model",      "planner",    "training",   "observation_dim",
                          "action_dim", "action_low", "action_high"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(json_equal(jpath(before, keys[i]), jpath(after, keys[i])),
                      "'%s' of agent t changed", keys[i]);
    ck_assert_int_eq(jint(after, "status.replay_size"), jint(before, "status.replay_size"));
    ck_assert_int_eq(jint(after, "status.transitions_total"),
                     jint(before, "status.transitions_total"));
    ck_assert_int_eq(jint(after, "sessions"), 1);
    json_decref(before);
    json_decref(after);
    json_t *r = call("POST", "/v1/agents/t/act", OBS_OK, 200);
    check_action(r);
    json_decref(r);
    r = call("POST", P("/v1/agents/t/sessions/%s/act", sid), "{\"observation\":[0,1,0]}", 200);
    ck_assert_int_eq(jint(r, "episode_step"), 1);
    json_decref(r);
    char *m = get_metrics();
    ck_assert_double_eq(metric_value(m, "elbod_http_rejected_total{reason=\"payload_too_large\"}"),
                        3.0);
    free(m);
    daemon_stop(d);
}
END_TEST

/* ---- per-agent and connection limits ------------------------------------------------------ */

/* One request of a batch sent all at once (curl multi): its answer and Retry-After header. */
typedef struct batch_req {
    const char *path, *body;
    CURL *c;
    struct curl_slist *h;
    growbuf answer;
    char retry_after[16];
    long status;
} batch_req;

static size_t batch_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    batch_req *b = ud;
    size_t n = size * nmemb;
    header_value(ptr, n, "Retry-After:", b->retry_after, sizeof b->retry_after);
    return n;
}

/* Sends every request of reqs at once, each on a connection of its own, and waits for all the
 * answers (60 s at most); fills their status, answer and Retry-After. */
static void send_batch(batch_req *reqs, int n)
{
    CURLM *m = curl_multi_init();
    ck_assert_ptr_nonnull(m);
    char url[600];
    for (int i = 0; i < n; i++) {
        batch_req *b = &reqs[i];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", cur_port, b->path);
        b->c = curl_easy_init();
        ck_assert_ptr_nonnull(b->c);
        b->h = curl_slist_append(NULL, "Content-Type: application/json");
        b->h = curl_slist_append(b->h, "Expect:");
        curl_easy_setopt(b->c, CURLOPT_URL, url);
        curl_easy_setopt(b->c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(b->c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(b->c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(b->c, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(b->c, CURLOPT_POSTFIELDS, b->body);
        curl_easy_setopt(b->c, CURLOPT_HTTPHEADER, b->h);
        curl_easy_setopt(b->c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(b->c, CURLOPT_WRITEDATA, &b->answer);
        curl_easy_setopt(b->c, CURLOPT_HEADERFUNCTION, batch_header);
        curl_easy_setopt(b->c, CURLOPT_HEADERDATA, b);
        ck_assert_int_eq(curl_multi_add_handle(m, b->c), CURLM_OK);
    }
    int running = 1;
    while (running) {
        ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
        if (running)
            ck_assert_int_eq(curl_multi_poll(m, NULL, 0, 100, NULL), CURLM_OK);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK)
            no_answer("POST", "a request of the batch");
    for (int i = 0; i < n; i++) {
        batch_req *b = &reqs[i];
        curl_easy_getinfo(b->c, CURLINFO_RESPONSE_CODE, &b->status);
        curl_multi_remove_handle(m, b->c);
        curl_easy_cleanup(b->c);
        curl_slist_free_all(b->h);
        if (!b->answer.p)
            b->answer.p = fmt("%s", "");
    }
    curl_multi_cleanup(m);
}

/* One agent's clients may not hold more than max_agent_inflight workers or queue places: the
 * excess is answered 429 agent_busy with Retry-After at once, other agents and policy acts are
 * served meanwhile, and the agent is served again once its requests are done. */
START_TEST(test_agent_inflight_limit)
{
    elbod *d = &procs[0];
    const char *flags[] = {"--max-agent-inflight", "2", NULL};
    daemon_start(d, flags);
    /* Plans of a few hundred milliseconds: the batch arrives while the first ones still run. */
    json_decref(
        callf("POST", "/v1/agents", 201,
              "{\"name\":\"hog\",\"observation_dim\":3,\"action_dim\":1,\"action_low\":[-2],"
              "\"action_high\":[2],\"planner\":{\"population\":400,\"horizon\":20,"
              "\"iterations\":4}}"));
    json_decref(create_agent("calm", 3, NULL));
    json_t *s = call("POST", "/v1/agents/hog/sessions", NULL, 201);
    char sact[256];
    snprintf(sact, sizeof sact, "/v1/agents/hog/sessions/%s/act", jstr(s, "session_id"));
    json_decref(s);

    /* 12 planning requests of hog (plan, plan-mode act, plan-mode session act), one plan of
     * calm, one policy act of hog (answered inline: never counted) */
    enum { N_HOG = 12, N = N_HOG + 2 };
    batch_req reqs[N];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < N_HOG; i++) {
        reqs[i].path = i % 3 == 0   ? "/v1/agents/hog/plan"
                       : i % 3 == 1 ? "/v1/agents/hog/act"
                                    : sact;
        reqs[i].body = i % 3 == 2 ? "{\"observation\":[1,0,0],\"reward\":0}" : OBS_OK;
    }
    reqs[N_HOG] = (batch_req){.path = "/v1/agents/calm/plan", .body = OBS_OK};
    reqs[N_HOG + 1] = (batch_req){.path = "/v1/agents/hog/act",
                                  .body = "{\"observation\":[1,0,0],\"mode\":\"policy\"}"};
    send_batch(reqs, N);

    int ok = 0, busy = 0;
    for (int i = 0; i < N_HOG; i++) {
        batch_req *b = &reqs[i];
        if (b->status == 200) {
            ok++;
        } else {
            ck_assert_msg(b->status == 429,
                          "hog request %d (%s): status %ld, expected 200 or 429: "
                          "%.300s",
                          i, b->path, b->status, b->answer.p);
            json_t *e = json_loads(b->answer.p, 0, NULL);
            ck_assert_msg(e != NULL, "the 429 answer is not JSON: %.300s", b->answer.p);
            ck_assert_str_eq(jstr(e, "error.code"), "agent_busy");
            ck_assert_msg(strstr(jstr(e, "error.message"), "max_agent_inflight") != NULL,
                          "the 429 message does not name the setting: %s",
                          jstr(e, "error.message"));
            json_decref(e);
            ck_assert_str_eq(b->retry_after, "1");
            busy++;
        }
    }
    for (int i = N_HOG; i < N; i++)
        ck_assert_msg(reqs[i].status == 200,
                      "%s during the flood: status %ld, expected 200: %.300s", reqs[i].path,
                      reqs[i].status, reqs[i].answer.p);
    for (int i = 0; i < N; i++)
        free(reqs[i].answer.p);
    ck_assert_msg(busy >= 1,
                  "%d planning requests of one agent at once with max_agent_inflight 2: "
                  "none was refused (%d answered)",
                  N_HOG, ok);
    ck_assert_msg(ok >= 2, "only %d of %d planning requests were served (limit 2)", ok, N_HOG);

    char *m = get_metrics();
    ck_assert_double_eq(metric_value(m, "elbod_http_rejected_total{reason=\"agent_inflight\"}"),
                        (double)busy);
    free(m);

    /* served again once its requests are done */
    for (int i = 0; i < 3; i++) {
        json_t *r = call("POST", "/v1/agents/hog/plan", OBS_OK, 200);
        check_action(r);
        json_decref(r);
    }
    json_decref(callf("POST", sact, 200, "{\"observation\":[0,1,0],\"reward\":0.5}"));
    json_decref(call("GET", "/healthz", NULL, 200));
    daemon_stop(d);
}
END_TEST

/* Reads from fd until `want` shows up (1), the peer closes or resets (0), or 10 s pass (-1). */
static int recv_until(int fd, const char *want)
{
    char buf[4096];
    size_t len = 0;
    double until = test_now_s() + 10.0;
    while (test_now_s() < until) {
        struct timeval tv = {0, 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return 0;
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            if (strstr(buf, want))
                return 1;
            if (len == sizeof buf - 1)
                len = 0;
        }
    }
    return -1;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

/* max_connections_per_ip: a client address's connection beyond it is closed at once (counted in
 * /metrics); the address is served again when it closes some. */
START_TEST(test_connection_limit_per_ip)
{
    elbod *d = &procs[0];
    const char *flags[] = {"--max-connections-per-ip", "2", NULL};
    daemon_start(d, flags);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int fds[3];
    for (int i = 0; i < 3; i++) {
        /* The connections of daemon_start's /readyz polls may still count for a moment after
         * they closed: the two allowed ones retry until they are served. */
        double until = test_now_s() + 10.0;
        int got;
        do {
            if (i < 2 && test_now_s() > until)
                ck_abort_msg("connection %d of 2 (the limit) was not served", i + 1);
            fds[i] = connect_local(d->port);
            ck_assert_int_eq(send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL),
                             (ssize_t)sizeof req - 1);
            got = recv_until(fds[i], "\"status\":\"ok\"");
            if (i < 2 && got != 1) {
                close(fds[i]);
                test_sleep_ms(50);
            }
        } while (i < 2 && got != 1);
        if (i == 2)
            ck_assert_msg(got == 0,
                          "the third connection from one address with max_connections_per_ip 2 "
                          "was not closed (%d)",
                          got);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    /* served again once the connections are closed (the daemon notices within a poll) */
    long status = 0;
    char *text = NULL;
    double until = test_now_s() + 10.0;
    while (http("GET", "/metrics", NULL, NULL, 0, &status, &text) != 0 || status != 200) {
        free(text);
        text = NULL;
        ck_assert_msg(test_now_s() < until, "no answer after the connections were closed");
        test_sleep_ms(50);
    }
    ck_assert_msg(metric_value(text, "elbod_http_rejected_total{reason=\"connection_limit\"}") >=
                      1.0,
                  "the refused connection is not counted:\n%.2000s", text);
    free(text);
    daemon_stop(d);
}
END_TEST

Suite *e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_agent_lifecycle);
    tcase_add_test(tc, test_act_forms);
    tcase_add_test(tc, test_plan);
    tcase_add_test(tc, test_transitions_training_metrics);
    tcase_add_test(tc, test_daemon_endpoints);
    tcase_add_test(tc, test_port_clash);
    tcase_add_test(tc, test_checkpoint);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_training_while_acting);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_agent_inflight_limit);
    tcase_add_test(tc, test_connection_limit_per_ip);
    suite_add_tcase(s, tc);

    tc = tcase_create("durability");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_restart_keeps_state);
    tcase_add_test(tc, test_kill9_loses_nothing);
    tcase_add_test(tc, test_sigterm_during_shutdown);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_requests");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_bad_requests);
    suite_add_tcase(s, tc);
    return s;
}
