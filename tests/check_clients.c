/* check_clients: end-to-end tests of the C clients, elboctl and the example robots, against a
 * real daemon.
 *
 * Every test that needs a daemon starts the elbod named by ELBOD_BIN (build/elbod by default) on
 * a free 127.0.0.1 port with a fresh data directory and stops it by its PID (SIGTERM: exit status
 * 0 and a clean log), as tests/check_e2e.c does. The clients run as processes: the elboctl named
 * by ELBOCTL_BIN (build/elboctl by default; `make test-san` points it at build/san/elboctl) and the
 * robot next to it (ROBOT_PENDULUM_BIN, ROBOT_CARTPOLE_BIN override). Each test checks outputs
 * and the documented exit statuses: 0 ok, 1 usage, 2 connection, 3 rejected (4xx), 4 server
 * error, 5 bad input file.
 *
 * Agents are created with small models and planners so that the robots stay fast under ASan.
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define SMALL_MODEL   "\"model\":{\"h_dim\":16,\"z_dim\":4,\"hidden\":16,\"batch\":4,\"seq_len\":8}"
#define SMALL_PLANNER "\"planner\":{\"population\":64,\"horizon\":10,\"iterations\":2}"
#define ROBOT_ARGS    "{" SMALL_MODEL "," SMALL_PLANNER ",\"training\":{\"min_transitions\":50}}"

/* ---- small utilities ---------------------------------------------------------------------- */

/* A printf into one of a few rotating static buffers: valid until 8 more calls. */
static const char *P(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *f, ...)
{
    static char bufs[8][1024];
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

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, pl) == 0)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* ---- the test's directory and daemon ------------------------------------------------------ */

static char work[512];   /* this test's temporary directory: data, logs, files */
static pid_t daemon_pid; /* 0 when not running */
static int daemon_port;
static char url[64];

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static const char *elbod_bin(void)
{
    return env_or("ELBOD_BIN", "build/elbod");
}

static const char *elboctl_bin(void)
{
    return env_or("ELBOCTL_BIN", "build/elboctl");
}

/* The robot next to elboctl (build/robot_pendulum, build/san/robot_pendulum), unless named. */
static const char *robot_bin(const char *task)
{
    const char *var = strcmp(task, "pendulum") == 0 ? "ROBOT_PENDULUM_BIN" : "ROBOT_CARTPOLE_BIN";
    const char *v = getenv(var);
    if (v && *v)
        return v;
    static char buf[2][600];
    char *b = buf[strcmp(task, "pendulum") == 0 ? 0 : 1];
    const char *ctl = elboctl_bin();
    const char *slash = strrchr(ctl, '/');
    int dir_len = slash ? (int)(slash - ctl + 1) : 0;
    snprintf(b, sizeof buf[0], "%.*srobot_%s", dir_len, ctl, task);
    return b;
}

/* A port that was free a moment ago: bind 127.0.0.1:0, read the port, close. */
static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* The HTTP status of GET url/path, 0 when no answer came. */
static long http_status(const char *path)
{
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    curl_easy_setopt(c, CURLOPT_URL, P("%s%s", url, path));
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static const char *log_path(void)
{
    return P("%s/elbod.log", work);
}

/* Starts elbod on a free port with work/data, retrying when the port was taken meanwhile, and
 * waits for /readyz. */
static void daemon_start(void)
{
    ck_assert_msg(access(elbod_bin(), X_OK) == 0,
                  "%s is not an executable (build it with make, or set ELBOD_BIN)", elbod_bin());
    for (int attempt = 0; attempt < 5; attempt++) {
        daemon_port = test_free_port();
        snprintf(url, sizeof url, "http://127.0.0.1:%d", daemon_port);
        char port[16], data[600];
        snprintf(port, sizeof port, "%d", daemon_port);
        snprintf(data, sizeof data, "%s/data", work);
        long log_from = file_size(log_path());
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int fd = open(log_path(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
            }
            execl(elbod_bin(), elbod_bin(), "--host", "127.0.0.1", "--port", port, "--data-dir",
                  data, "--log-level", "info", (char *)NULL);
            _exit(127);
        }
        daemon_pid = pid;
        double until = test_now_s() + 60.0;
        int st = 0, exited = 0;
        while (test_now_s() < until) {
            if (waitpid(pid, &st, WNOHANG) == pid) {
                exited = 1;
                break;
            }
            if (http_status("/readyz") == 200)
                return;
            test_sleep_ms(20);
        }
        daemon_pid = 0;
        char *out = read_file_from(log_path(), log_from < 0 ? 0 : log_from);
        if (!exited) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            ck_abort_msg("elbod was not ready within 60 s; its output:\n%.2000s", out);
        }
        if (!strstr(out, "listen_failed"))
            ck_abort_msg("elbod exited at start (status 0x%x):\n%.2000s", (unsigned)st, out);
        free(out);
    }
    ck_abort_msg("elbod found no free port in 5 attempts");
}

/* SIGTERM: exit status 0 and a log free of sanitizer reports and errors. */
static void daemon_stop(void)
{
    ck_assert_int_gt(daemon_pid, 0);
    ck_assert_int_eq(kill(daemon_pid, SIGTERM), 0);
    int st = 0;
    double until = test_now_s() + 60.0;
    while (waitpid(daemon_pid, &st, WNOHANG) != daemon_pid) {
        if (test_now_s() > until) {
            kill(daemon_pid, SIGKILL);
            waitpid(daemon_pid, &st, 0);
            daemon_pid = 0;
            ck_abort_msg("elbod did not stop within 60 s of SIGTERM");
        }
        test_sleep_ms(10);
    }
    daemon_pid = 0;
    char *out = read_file_from(log_path(), 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "elbod stopped with 0x%x:\n%.3000s",
                  (unsigned)st, out);
    static const char *const bad[] = {"ERROR: AddressSanitizer", "runtime error", "LeakSanitizer",
                                      "level=error"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(strstr(out, bad[i]) == NULL, "elbod's log has \"%s\":\n%.3000s", bad[i], out);
    free(out);
}

static void setup(void)
{
    const char *tmp = env_or("TMPDIR", "/tmp");
    snprintf(work, sizeof work, "%s/elbo-clients-XXXXXX", tmp);
    ck_assert_msg(mkdtemp(work) != NULL, "mkdtemp: %s", strerror(errno));
    daemon_pid = 0;
    daemon_port = 0;
    url[0] = '\0';
}

static void teardown(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
    }
    if (work[0])
        test_rm_rf(work);
    work[0] = '\0';
}

/* ---- running the clients ------------------------------------------------------------------ */

static char *last_out, *last_err; /* the last run's stdout and stderr (malloc'd) */

/* Runs argv (argv[0] is the program) with stdin from stdin_path (NULL: /dev/null) and an
 * optional extra environment variable "NAME=value"; returns the exit status (128 + signal when
 * it was killed). Its output lands in last_out and last_err. */
static int run(const char *const *argv, const char *stdin_path, const char *env)
{
    free(last_out);
    free(last_err);
    last_out = last_err = NULL;
    const char *out_path = P("%s/run.out", work), *err_path = P("%s/run.err", work);
    char outp[600], errp[600];
    snprintf(outp, sizeof outp, "%s", out_path);
    snprintf(errp, sizeof errp, "%s", err_path);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0)
            _exit(126);
        dup2(in, STDIN_FILENO);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        unsetenv("ELBOD_URL");
        unsetenv("ELBOD_TOKEN");
        if (env)
            putenv((char *)env);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    double until = test_now_s() + 150.0;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (test_now_s() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            ck_abort_msg("%s %s did not finish within 150 s", argv[0], argv[1] ? argv[1] : "");
        }
        test_sleep_ms(5);
    }
    last_out = read_file_from(outp, 0);
    last_err = read_file_from(errp, 0);
    ck_assert_msg(strstr(last_err, "Sanitizer") == NULL &&
                      strstr(last_err, "runtime error") == NULL,
                  "%s reported a sanitizer error:\n%.3000s", argv[0], last_err);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 127, "could not run %s", argv[0]);
    return WEXITSTATUS(st);
}

/* Runs elboctl --url <daemon> args...; asserts the exit status; returns stdout (borrowed, valid
 * until the next run). */
static const char *ctl_at(int line, const char *stdin_path, int want, const char *const *args)
{
    const char *argv[48];
    int n = 0;
    argv[n++] = elboctl_bin();
    if (url[0]) {
        argv[n++] = "--url";
        argv[n++] = url;
    }
    char cmd[600] = "";
    for (int i = 0; args[i] && n < 47; i++) {
        argv[n++] = args[i];
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, " %s", args[i]);
    }
    argv[n] = NULL;
    int ex = run(argv, stdin_path, NULL);
    ck_assert_msg(ex == want,
                  "line %d: elboctl%s: exit status %d, expected %d\nstdout:\n%.2000s\nstderr:\n"
                  "%.2000s",
                  line, cmd, ex, want, last_out, last_err);
    return last_out;
}

#define CTL(want, ...) ctl_at(__LINE__, NULL, (want), (const char *const[]){__VA_ARGS__, NULL})
#define CTL_STDIN(in, want, ...) \
    ctl_at(__LINE__, (in), (want), (const char *const[]){__VA_ARGS__, NULL})

/* Parses a --json output (a new reference). */
static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    ck_assert_msg(v != NULL, "not JSON (%s): %.1000s", je.text, text);
    return v;
}

/* The value at a dotted path, borrowed. */
static json_t *jpath(json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *seg = buf; seg && v;) {
        char *dot = strchr(seg, '.');
        if (dot)
            *dot = '\0';
        v = json_object_get(v, seg);
        seg = dot ? dot + 1 : NULL;
    }
    ck_assert_msg(v != NULL, "no '%s' in the answer", path);
    return v;
}

static long long jint(json_t *o, const char *path)
{
    json_t *v = jpath(o, path);
    ck_assert_msg(json_is_integer(v), "'%s' is not an integer", path);
    return json_integer_value(v);
}

#define ASSERT_HAS(text, needle)                                                              \
    ck_assert_msg(strstr((text), (needle)) != NULL, "expected \"%s\" in:\n%.3000s", (needle), \
                  (text))

/* The transitions the agent has received (GET .../training). */
static long long transitions_total(const char *agent)
{
    json_t *t = parse(CTL(0, "--json", "training", agent));
    long long n = jint(t, "transitions_total");
    json_decref(t);
    return n;
}

/* ---- tests -------------------------------------------------------------------------------- */

static const char *const commands[] = {
    "create", "list",     "show",  "patch",  "delete",     "act",     "plan",   "session",
    "submit", "training", "pause", "resume", "checkpoint", "version", "health", "metrics"};

START_TEST(test_help_and_usage)
{
    char *out = strdup(CTL(0, "--help"));
    ck_assert_ptr_nonnull(out);
    ASSERT_HAS(out, "Exit status");
    ASSERT_HAS(out, "5  bad input file");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        ASSERT_HAS(out, P("  %s ", commands[i]));
        const char *h = CTL(0, commands[i], "--help");
        ASSERT_HAS(h, P("Usage: elboctl %s", commands[i]));
        ASSERT_HAS(h, "Exit status");
    }
    free(out);
    ASSERT_HAS(CTL(0, "help", "submit"), "episode,step,obs_0");
    ASSERT_HAS(CTL(0, "act", "--help"), "  --truncated ");
    /* session --help describes each option of open, not only in its usage line */
    out = strdup(CTL(0, "session", "--help"));
    ck_assert_ptr_nonnull(out);
    static const char *const session_opts[] = {"--obs V,..", "--mode M", "--explore",
                                               "--deadline-ms MS"};
    for (size_t i = 0; i < sizeof session_opts / sizeof session_opts[0]; i++)
        ASSERT_HAS(out, P("\n  %s ", session_opts[i]));
    free(out);
    CTL(1, NULL);                       /* no command */
    CTL(1, "frobnicate");               /* unknown command */
    CTL(1, "list", "--frobnicate");     /* unknown option */
    CTL(1, "show");                     /* missing argument */
    CTL(1, "show", "a", "b");           /* one too many */
    CTL(1, "act", "a");                 /* no --obs */
    CTL(1, "act", "a", "--obs", "1,x"); /* not numbers */
    CTL(1, "act", "a", "--obs", "1", "--mode", "dream");
    CTL(1, "act", "a", "--obs", "1", "--reward", "1");  /* --reward needs --session */
    CTL(1, "act", "a", "--obs", "1", "--truncated");    /* so does --truncated */
    CTL(1, "session", "open", "a", "--mode", "policy"); /* --mode chooses the first action */
    CTL(1, "--timeout", "soon", "list");
    CTL(1, "--url", "ftp://x", "list");
    CTL(1, "--url"); /* a global option without its value */
    CTL(1, "create", "--obs-dim", "three");
    CTL(1, "create", "--obs-dim", "3", "--low", "-1", "--high", "1"); /* no name */
    CTL(1, "create", "x", "--set", "novalue");
    CTL(1, "patch", "x"); /* nothing to change */
    CTL(1, "submit", "x", "f", "--format", "xml");
    CTL(1, "checkpoint", "save", "x", "f");
    CTL(1, "session", "reopen", "x");
    ck_assert_int_eq(run((const char *const[]){robot_bin("pendulum"), "--help", NULL}, NULL, NULL),
                     0);
    ASSERT_HAS(last_out, "--create-args");
    ASSERT_HAS(last_out, "p99_ms");
    /* the task is described inline, and the pointer is to elbod's own README */
    ASSERT_HAS(last_out, "[cos th, sin th, th_dot]");
    ASSERT_HAS(last_out, "Example robots");
    ck_assert_msg(strstr(last_out, "/work/") == NULL, "a path users lack:\n%s", last_out);
    ck_assert_int_eq(run((const char *const[]){robot_bin("cartpole"), "-h", NULL}, NULL, NULL), 0);
    ASSERT_HAS(last_out, "|x| <= 2.4");
    ck_assert_int_eq(
        run((const char *const[]){robot_bin("cartpole"), "--episodes", "0", NULL}, NULL, NULL), 1);
    ck_assert_int_eq(
        run((const char *const[]){robot_bin("cartpole"), "--warp", "9", NULL}, NULL, NULL), 1);
}
END_TEST

START_TEST(test_daemon_down)
{
    /* A port nobody listens on: every command that talks to elbod says 2. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d", test_free_port());
    CTL(2, "health");
    CTL(2, "list");
    CTL(2, "--json", "show", "a");
    CTL(2, "act", "a", "--obs", "1,0,0");
    CTL(2, "checkpoint", "export", "a", P("%s/ck", work));
    ck_assert_int_lt(file_size(P("%s/ck", work)), 0); /* nothing written */
    ASSERT_HAS(last_err, "could not connect");
    write_file(P("%s/eps.ndjson", work),
               "{\"observations\":[[1,0,0],[0,1,0]],\"actions\":[[1]],\"rewards\":[0]}\n");
    CTL(2, "submit", "a", P("%s/eps.ndjson", work));
    /* The environment names the daemon when --url does not. */
    const char *argv[] = {elboctl_bin(), "health", NULL};
    ck_assert_int_eq(run(argv, NULL, P("ELBOD_URL=%s", url)), 2);
    ck_assert_int_eq(
        run((const char *const[]){robot_bin("pendulum"), "--url", url, "--episodes", "1", NULL},
            NULL, NULL),
        2);
    /* A --csv file that cannot be written is found before anything else: 5, not 2. */
    const char *csv = P("%s/no/such/dir/r.csv", work);
    ck_assert_int_eq(
        run((const char *const[]){robot_bin("pendulum"), "--url", url, "--csv", csv, NULL}, NULL,
            NULL),
        5);
    ASSERT_HAS(last_err, "cannot write");
}
END_TEST

START_TEST(test_agents_and_acting)
{
    daemon_start();
    /* daemon */
    ASSERT_HAS(CTL(0, "health"), "health: ok");
    ASSERT_HAS(CTL(0, "health", "--ready"), "ready: ready");
    ASSERT_HAS(CTL(0, "version"), "api:");
    json_t *v = parse(CTL(0, "--json", "version"));
    ck_assert_str_eq(json_string_value(jpath(v, "name")), "elbod");
    json_decref(v);
    ASSERT_HAS(CTL(0, "metrics"), "elbod_up 1");
    ck_assert_int_eq(count_lines(CTL(0, "metrics", "--grep", "elbod_up"), "elbod_up "), 1);
    /* ELBOD_URL */
    const char *argv[] = {elboctl_bin(), "health", NULL};
    ck_assert_int_eq(run(argv, NULL, P("ELBOD_URL=%s", url)), 0);
    CTL(1, "--token", "a\nb", "health"); /* a token that would inject a header */
    ASSERT_HAS(CTL(0, "--token", "t0k3n", "--timeout", "5", "health"), "ok");

    /* create: flags, a file, refusals */
    ASSERT_HAS(CTL(0, "list"), "no agents");
    const char *out =
        CTL(0, "create", "p", "--obs-dim", "3", "--low", "-2", "--high", "2", "--set",
            "model.h_dim=16", "--set", "model.z_dim=4", "--set", "model.hidden=16", "--set",
            "planner.population=32", "--set", "planner.horizon=5", "--set", "planner.iterations=2",
            "--set", "planner.method=cem", "--set", "planner.elites=4");
    ASSERT_HAS(out, "created agent p");
    ASSERT_HAS(out, "planner.population:");
    ASSERT_HAS(out, "planner.method:");
    ASSERT_HAS(out, "cem");
    write_file(P("%s/q.json", work),
               "{\"name\":\"q\",\"observation_dim\":2,\"action_dim\":2,\"action_low\":[-1,-1],"
               "\"action_high\":[1,1]," SMALL_MODEL "," SMALL_PLANNER "}");
    json_t *q = parse(CTL(0, "--json", "create", "--file", P("%s/q.json", work)));
    ck_assert_int_eq(jint(q, "action_dim"), 2);
    ck_assert_int_eq(jint(q, "planner.population"), 64);
    json_decref(q);
    CTL(3, "create", "--file", P("%s/q.json", work)); /* agent_exists */
    ASSERT_HAS(last_err, "agent_exists");
    CTL(3, "create", "r", "--obs-dim", "3", "--low", "-1", "--high", "1", "--set",
        "planner.elites=500"); /* elites above the population */
    ASSERT_HAS(last_err, "planner.elites");
    CTL(5, "create", "--file", P("%s/missing.json", work));
    write_file(P("%s/bad.json", work), "{\"name\":\"r\",");
    CTL(5, "create", "--file", P("%s/bad.json", work));
    write_file(P("%s/arr.json", work), "[1,2]");
    CTL(5, "create", "--file", P("%s/arr.json", work));

    /* list, show, patch */
    out = CTL(0, "list");
    ASSERT_HAS(out, "NAME");
    ASSERT_HAS(out, "\np ");
    ASSERT_HAS(out, "\nq ");
    json_t *l = parse(CTL(0, "--json", "list"));
    ck_assert_int_eq(json_array_size(jpath(l, "agents")), 2);
    json_decref(l);
    out = CTL(0, "show", "p");
    ASSERT_HAS(out, "observation_dim:");
    ASSERT_HAS(out, "status.step:");
    CTL(3, "show", "nobody");
    ASSERT_HAS(last_err, "agent_not_found");
    out = CTL(0, "patch", "p", "--set", "planner.horizon=6", "--set", "training.train_ratio=2");
    ASSERT_HAS(out, "updated agent p");
    json_t *pa = parse(CTL(0, "--json", "show", "p"));
    ck_assert_int_eq(jint(pa, "planner.horizon"), 6);
    json_decref(pa);
    CTL(3, "patch", "p", "--set", "model.h_dim=32"); /* immutable */
    ASSERT_HAS(last_err, "immutable_field");

    /* acting */
    out = CTL(0, "act", "p", "--obs", "1,0,0");
    ASSERT_HAS(out, "action:");
    ASSERT_HAS(out, "model_version:");
    json_t *a = parse(CTL(0, "--json", "act", "p", "--obs", "[1, 0, 0]", "--mode", "policy"));
    ck_assert_int_eq(json_array_size(jpath(a, "action")), 1);
    ck_assert_str_eq(json_string_value(jpath(a, "mode")), "policy");
    double act = json_number_value(json_array_get(jpath(a, "action"), 0));
    ck_assert(act >= -2.0 && act <= 2.0);
    json_decref(a);
    CTL(3, "act", "p", "--obs", "1,0"); /* two values for three */
    ASSERT_HAS(last_err, "dimension_mismatch");
    CTL(3, "act", "nobody", "--obs", "1,0,0");

    out = CTL(0, "plan", "p", "--obs", "1,0,0", "--deadline-ms", "1000");
    ASSERT_HAS(out, "terms.objective:");
    ASSERT_HAS(out, "STEP");
    ck_assert_int_eq(count_lines(out, "5 "), 1); /* steps 0..5 of horizon 6 */
    json_t *pl = parse(CTL(0, "--json", "plan", "p", "--obs", "1,0,0"));
    ck_assert_int_eq(jint(pl, "plan.horizon"), 6);
    ck_assert_int_eq(json_array_size(jpath(pl, "plan.actions")), 6);
    json_decref(pl);

    /* sessions */
    json_t *s = parse(CTL(0, "--json", "session", "open", "p"));
    char sid[128];
    snprintf(sid, sizeof sid, "%s", json_string_value(jpath(s, "session_id")));
    json_decref(s);
    ck_assert_int_gt((int)strlen(sid), 0);
    json_t *r1 = parse(CTL(0, "--json", "act", "p", "--session", sid, "--obs", "1,0,0"));
    ck_assert_int_eq(jint(r1, "episode_step"), 0);
    json_decref(r1);
    out = CTL(0, "act", "p", "--session", sid, "--obs", "0.9,0.1,0.2", "--reward", "-0.5", "--mode",
              "policy");
    ASSERT_HAS(out, "episode_step:");
    json_t *r2 = parse(CTL(0, "--json", "act", "p", "--session", sid, "--obs", "0.8,0.2,0.3",
                           "--reward", "-0.4", "--done"));
    ck_assert(json_is_true(jpath(r2, "episode_done")));
    json_decref(r2);
    /* The next episode in the same session, stopped by a time limit at its second step. */
    CTL(0, "act", "p", "--session", sid, "--obs", "1,0,0");
    json_t *rt = parse(CTL(0, "--json", "act", "p", "--session", sid, "--obs", "0.9,0.1,0.2",
                           "--reward", "-0.3", "--truncated"));
    ck_assert(json_is_true(jpath(rt, "episode_done")));
    ck_assert_int_eq(jint(rt, "episode_step"), 1);
    ck_assert_str_eq(json_string_value(jpath(rt, "mode")), "policy");
    json_decref(rt);
    rt = parse(CTL(0, "--json", "act", "p", "--session", sid, "--obs", "1,0,0", "--no-record"));
    ck_assert_int_eq(jint(rt, "episode_step"), 0); /* a new episode began */
    json_decref(rt);
    json_t *r3 =
        parse(CTL(0, "--json", "plan", "p", "--session", sid)); /* from the session's state */
    ck_assert_str_eq(json_string_value(jpath(r3, "session_id")), sid);
    json_decref(r3);
    ASSERT_HAS(CTL(0, "session", "close", "p", sid), "closed session");
    CTL(3, "act", "p", "--session", sid, "--obs", "1,0,0");
    ASSERT_HAS(last_err, "session_not_found");
    out = CTL(0, "session", "open", "p", "--obs", "1,0,0", "--mode", "policy");
    ASSERT_HAS(out, "session_id:");
    ASSERT_HAS(out, "action:");
    /* Transitions: two steps of the first episode, one of the truncated one, and the open with
     * --obs. Steps: those, the terminal observation and the truncated one (without actions). */
    ck_assert_int_eq(transitions_total("p"), 4);
    json_t *tr = parse(CTL(0, "--json", "training", "p"));
    ck_assert_int_eq(jint(tr, "replay_steps"), 6);
    json_decref(tr);

    /* training */
    out = CTL(0, "training", "p");
    ASSERT_HAS(out, "transitions_total:");
    ASSERT_HAS(out, "terms.elbo:");
    ASSERT_HAS(CTL(0, "pause", "p"), "paused");
    json_t *t = parse(CTL(0, "--json", "training", "p"));
    ck_assert(json_is_true(jpath(t, "paused")));
    json_decref(t);
    t = parse(CTL(0, "--json", "resume", "p"));
    ck_assert(json_is_false(jpath(t, "paused")));
    json_decref(t);
    CTL(3, "pause", "nobody");

    /* checkpoints */
    const char *ck = P("%s/p.ckpt", work);
    char ckpath[600];
    snprintf(ckpath, sizeof ckpath, "%s", ck);
    ASSERT_HAS(CTL(0, "checkpoint", "export", "p", ckpath), "bytes to");
    ck_assert_int_gt(file_size(ckpath), 1000);
    ASSERT_HAS(CTL(0, "checkpoint", "import", "p", ckpath), "model_version");
    json_t *ci = parse(CTL(0, "--json", "checkpoint", "import", "p", ckpath));
    ck_assert_int_ge(jint(ci, "model_version"), 0);
    json_decref(ci);
    CTL(3, "checkpoint", "import", "q", ckpath); /* another shape */
    ASSERT_HAS(last_err, "checkpoint_mismatch");
    CTL(5, "checkpoint", "import", "p", P("%s/none.ckpt", work));
    CTL(5, "checkpoint", "export", "p", P("%s/no/such/dir/p.ckpt", work));
    CTL(3, "checkpoint", "export", "nobody", P("%s/x.ckpt", work));
    ck_assert_int_lt(file_size(P("%s/x.ckpt", work)), 0);
    write_file(P("%s/junk.ckpt", work), "not a checkpoint");
    CTL(3, "checkpoint", "import", "p", P("%s/junk.ckpt", work));
    ASSERT_HAS(last_err, "invalid_checkpoint");

    /* delete */
    ASSERT_HAS(CTL(0, "delete", "q"), "deleted agent q");
    CTL(3, "show", "q");
    CTL(3, "delete", "q");
    json_t *d = parse(CTL(0, "--json", "delete", "p"));
    ck_assert_str_eq(json_string_value(jpath(d, "deleted")), "p");
    json_decref(d);
    ASSERT_HAS(CTL(0, "list"), "no agents");
    daemon_stop();
}
END_TEST

START_TEST(test_submit)
{
    daemon_start();
    CTL(0, "create", "s", "--obs-dim", "3", "--act-dim", "1", "--low", "-2", "--high", "2", "--set",
        "model.h_dim=16", "--set", "model.z_dim=4", "--set", "model.hidden=16", "--set",
        "training.min_transitions=1000000");
    long long expect = 0;

    /* JSON: episodes, transitions, and a bare array */
    const char *f = P("%s/a.json", work);
    write_file(f, "{\"episodes\":[{\"observations\":[[1,0,0],[0.9,0.1,0.2],[0.8,0.2,0.3]],"
                  "\"actions\":[[0.5],[-0.3]],\"rewards\":[-0.1,-0.2],\"done\":true}]}");
    json_t *r = parse(CTL(0, "--json", "submit", "s", f));
    ck_assert_int_eq(jint(r, "accepted"), 2);
    json_decref(r);
    expect += 2;
    f = P("%s/t.json", work);
    write_file(f, "{\"transitions\":[{\"observation\":[1,0,0],\"action\":[1],\"reward\":1,"
                  "\"next_observation\":[0,0,1]},{\"observation\":[1,0,0],\"action\":[-1],"
                  "\"reward\":0,\"next_observation\":[0,1,0],\"done\":true}]}");
    ASSERT_HAS(CTL(0, "submit", "s", f), "accepted:   2");
    expect += 2;
    f = P("%s/arr.json", work);
    write_file(f, "[{\"observations\":[[1,0,0],[0,1,0]],\"actions\":[[1]],\"rewards\":[1]},"
                  "{\"observations\":[[1,0,0],[0,1,0]],\"actions\":[[1]],\"rewards\":[1]}]");
    ASSERT_HAS(CTL(0, "submit", "s", f), "2 episodes in 1 request");
    expect += 2;

    /* NDJSON, from standard input, with ids: a second submission stores nothing */
    f = P("%s/e.ndjson", work);
    write_file(f, "{\"observations\":[[1,0,0],[0,1,0]],\"actions\":[[1]],\"rewards\":[0]}\n"
                  "\n"
                  "{\"observations\":[[1,0,0],[0,1,0],[0,0,1]],\"actions\":[[1],[2]],"
                  "\"rewards\":[0,1],\"done\":true}\n");
    char nd[600];
    snprintf(nd, sizeof nd, "%s", f);
    r = parse(
        CTL_STDIN(nd, 0, "--json", "submit", "s", "-", "--format", "ndjson", "--id-prefix", "nd-"));
    ck_assert_int_eq(jint(r, "accepted"), 3);
    json_decref(r);
    expect += 3;
    r = parse(CTL(0, "--json", "submit", "s", nd, "--id-prefix", "nd-"));
    ck_assert_int_eq(jint(r, "accepted"), 0);
    ck_assert_int_eq(jint(r, "duplicates"), 2);
    json_decref(r);

    /* CSV */
    f = P("%s/e.csv", work);
    write_file(f, "episode,step,obs_0,obs_1,obs_2,action_0,reward,done\n"
                  "ep1,0,1.0,0.0,0.0,0.5,-0.1,0\n"
                  "ep1,1,0.99,0.1,0.2,-0.3,-0.2,0\n"
                  "ep1,2,0.98,0.2,0.3,,,1\n"
                  "# a comment\n"
                  "ep2,0,1.0,0.0,0.0,0.5,-0.1,0\r\n"
                  "ep2,1,0.99,0.1,0.2,,,0\r\n");
    r = parse(CTL(0, "--json", "submit", "s", f));
    ck_assert_int_eq(jint(r, "accepted"), 3);
    ck_assert_int_eq(jint(r, "episodes"), 2);
    json_decref(r);
    expect += 3;
    ck_assert_int_eq(transitions_total("s"), expect);

    /* A big CSV goes in batches, with progress on stderr. */
    size_t cap = 1 << 20, len = 0;
    char *big = malloc(cap);
    ck_assert_ptr_nonnull(big);
    len += (size_t)snprintf(big + len, cap - len, "episode,step,o0,o1,o2,a0,r,done\n");
    for (int e = 0; e < 40; e++)
        for (int k = 0; k <= 25; k++) {
            double o = sin(0.1 * k + e);
            if (k < 25)
                len += (size_t)snprintf(big + len, cap - len, "%d,%d,%.4f,%.4f,%d,%.3f,%.3f,0\n", e,
                                        k, o, cos(o), k, 0.1 * k, -o);
            else
                len += (size_t)snprintf(big + len, cap - len, "%d,%d,%.4f,%.4f,%d,,,%d\n", e, k, o,
                                        cos(o), k, e % 2);
        }
    ck_assert_uint_lt(len, cap);
    f = P("%s/big.csv", work);
    write_file(f, big);
    free(big);
    const char *out = CTL(0, "submit", "s", f, "--batch", "7");
    ASSERT_HAS(out, "40 episodes in 6 requests");
    ASSERT_HAS(out, "accepted:   1000");
    ASSERT_HAS(last_err, "batch 6/6");
    ASSERT_HAS(last_err, "1000 transitions (100%)");
    expect += 1000;
    CTL(0, "submit", "s", f, "--batch-bytes", "4096", "--quiet", "--id-prefix", "big-");
    ck_assert_int_eq((int)strlen(last_err), 0);
    expect += 1000;
    ck_assert_int_eq(transitions_total("s"), expect);

    /* Bad files: exit 5, and nothing stored. */
    CTL(5, "submit", "s", P("%s/none.json", work));
    ASSERT_HAS(last_err, "cannot open");
    f = P("%s/bad.json", work);
    write_file(f, "{\"episodes\":[{\"observations\":[[1,0,0]]");
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, "malformed JSON");
    f = P("%s/dims.json", work);
    write_file(f, "{\"episodes\":[{\"observations\":[[1,0],[0,1]],\"actions\":[[1]],"
                  "\"rewards\":[0]}]}");
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, "observations[0] has 2 values");
    f = P("%s/bad.ndjson", work);
    write_file(f, "{\"observations\":[[1,0,0],[0,1,0]],\"actions\":[[1]],\"rewards\":[0]}\n"
                  "{\"observations\":[[1,0,0],[0,1,0]],\"actions\":[[1,2]],\"rewards\":[0]}\n");
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, ":2:");
    f = P("%s/cols.csv", work);
    write_file(f, "ep1,0,1.0,0.0,0.5,-0.1,0\nep1,1,1.0,0.0,,,0\n"); /* two observations */
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, "7 columns, expected 8");
    f = P("%s/nofinal.csv", work);
    write_file(f, "ep1,0,1,0,0,0.5,-0.1,0\nep1,1,1,0,0,0.5,-0.1,0\n");
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, "final observation row");
    f = P("%s/steps.csv", work);
    write_file(f, "ep1,0,1,0,0,0.5,-0.1,0\nep1,2,1,0,0,,,0\n");
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, "step 2, expected 1");
    f = P("%s/nan.csv", work);
    write_file(f, "ep1,0,1,nan,0,0.5,-0.1,0\nep1,1,1,0,0,,,0\n");
    CTL(5, "submit", "s", f);
    f = P("%s/empty.csv", work);
    write_file(f, "episode,step,o0,o1,o2,a0,r,done\n");
    CTL(5, "submit", "s", f);
    /* Two episodes under one label would share one id with --id-prefix (the second dropped as
     * a duplicate): refused, naming the label and both lines. */
    f = P("%s/relabel.csv", work);
    write_file(f, "episode,step,o0,o1,o2,a0,r,done\n"
                  "ep1,0,1,0,0,0.5,-0.1,0\n"
                  "ep1,1,1,0,0,,,0\n"
                  "ep2,0,1,0,0,0.5,-0.1,0\n"
                  "ep2,1,1,0,0,,,0\n"
                  "ep1,0,0,1,0,0.5,-0.1,0\n"
                  "ep1,1,0,1,0,,,1\n");
    CTL(5, "submit", "s", f, "--id-prefix", "re-");
    ASSERT_HAS(last_err, "relabel.csv:6: episode label 'ep1' is used again");
    ASSERT_HAS(last_err, "began on line 2");
    CTL(5, "submit", "s", f);
    char longlabel[200];
    memset(longlabel, 'x', sizeof longlabel - 1);
    longlabel[sizeof longlabel - 1] = '\0';
    f = P("%s/long.csv", work);
    write_file(f, P("%s,0,1,0,0,0.5,-0.1,0\n%s,1,1,0,0,,,0\n", longlabel, longlabel));
    CTL(5, "submit", "s", f);
    ASSERT_HAS(last_err, "longer than 127 characters");
    ck_assert_int_eq(transitions_total("s"), expect);
    CTL(3, "submit", "nobody", P("%s/e.csv", work)); /* unknown agent */
    ASSERT_HAS(last_err, "agent_not_found");
    daemon_stop();
}
END_TEST

START_TEST(test_robots)
{
    daemon_start();
    const char *csv = P("%s/robot.csv", work);
    char csvp[600];
    snprintf(csvp, sizeof csvp, "%s", csv);
    const char *argv[] = {robot_bin("pendulum"),
                          "--url",
                          url,
                          "--agent",
                          "pend",
                          "--episodes",
                          "3",
                          "--seed",
                          "7",
                          "--csv",
                          csvp,
                          "--create-args",
                          ROBOT_ARGS,
                          NULL};
    double t0 = test_now_s();
    int ex = run(argv, NULL, NULL);
    ck_assert_msg(ex == 0, "robot_pendulum: exit %d\n%.2000s\n%.2000s", ex, last_out, last_err);
    ck_assert_int_eq(count_lines(last_out, "pendulum episode="), 3);
    for (int e = 0; e < 3; e++)
        ASSERT_HAS(last_out, P("pendulum episode=%d return=-", e));
    ASSERT_HAS(last_out, "steps=200 ");
    ASSERT_HAS(last_out, "p99_ms=");
    ASSERT_HAS(last_err, "created agent pend");
    fprintf(stderr, "clients: 3 pendulum episodes in %.1f s\n", test_now_s() - t0);
    char *rows = read_file_from(csvp, 0);
    ck_assert_int_eq(count_lines(rows, "task,seed,episode,return,steps,seconds,model_version,"
                                       "p50_ms,p99_ms"),
                     1);
    ck_assert_int_eq(count_lines(rows, "pendulum,7,"), 3);
    free(rows);
    /* The agent has the task's shape and the small settings, and got every step: 200
     * transitions per episode (the last observation is sent truncated, without an action). */
    json_t *a = parse(CTL(0, "--json", "show", "pend"));
    ck_assert_int_eq(jint(a, "observation_dim"), 3);
    ck_assert_int_eq(jint(a, "model.h_dim"), 16);
    ck_assert_int_eq(jint(a, "planner.population"), 64);
    ck_assert_int_eq(jint(a, "status.transitions_total"), 3 * 200);
    json_decref(a);

    /* Quiet: no lines; the CSV grows. The agent exists now. */
    const char *quiet[] = {robot_bin("pendulum"),
                           "--url",
                           url,
                           "--agent",
                           "pend",
                           "--episodes",
                           "1",
                           "--csv",
                           csvp,
                           "--quiet",
                           "--mode",
                           "policy",
                           NULL};
    ck_assert_int_eq(run(quiet, NULL, NULL), 0);
    ck_assert_int_eq((int)strlen(last_out), 0);
    rows = read_file_from(csvp, 0);
    ck_assert_int_eq(count_lines(rows, "pendulum,1,0,"), 1);
    free(rows);

    /* A --csv file that cannot be written: exit 5 before the first episode runs. */
    long long before = transitions_total("pend");
    const char *nocsv[] = {robot_bin("pendulum"),
                           "--url",
                           url,
                           "--agent",
                           "pend",
                           "--episodes",
                           "1",
                           "--csv",
                           P("%s/no/such/dir/r.csv", work),
                           NULL};
    ck_assert_int_eq(run(nocsv, NULL, NULL), 5);
    ASSERT_HAS(last_err, "cannot write");
    ck_assert_int_eq((int)strlen(last_out), 0);
    ck_assert_int_eq(transitions_total("pend"), before);

    /* The cart-pole in policy mode: one episode, at most 200 steps (early end off the track). */
    const char *cp[] = {
        robot_bin("cartpole"), "--url", url, "--episodes", "1", "--mode", "policy", "--create-args",
        "{" SMALL_MODEL "}",   NULL};
    ck_assert_int_eq(run(cp, NULL, NULL), 0);
    ck_assert_int_eq(count_lines(last_out, "cartpole episode=0 "), 1);
    json_t *c = parse(CTL(0, "--json", "show", "cartpole"));
    ck_assert_int_eq(jint(c, "observation_dim"), 5);
    ck_assert_int_eq(jint(c, "action_dim"), 1);
    json_decref(c);

    /* A robot on an agent of another shape refuses to run. */
    const char *wrong[] = {robot_bin("cartpole"), "--url", url, "--agent", "pend", NULL};
    ck_assert_int_eq(run(wrong, NULL, NULL), 1);
    ASSERT_HAS(last_err, "observation_dim 3");
    const char *badargs[] = {robot_bin("pendulum"), "--url", url, "--agent", "other",
                             "--create-args",       "[1]",   NULL};
    ck_assert_int_eq(run(badargs, NULL, NULL), 1);
    const char *refused[] = {robot_bin("pendulum"),
                             "--url",
                             url,
                             "--agent",
                             "other",
                             "--create-args",
                             "{\"planner\":{\"elites\":100000}}",
                             NULL};
    ck_assert_int_eq(run(refused, NULL, NULL), 3);
    ASSERT_HAS(last_err, "planner.elites");
    daemon_stop();
}
END_TEST

static void free_outputs(void)
{
    teardown();
    free(last_out);
    free(last_err);
    last_out = last_err = NULL;
}

Suite *clients_suite(void)
{
    Suite *s = suite_create("clients");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    TCase *tc = tcase_create("elboctl");
    tcase_add_checked_fixture(tc, setup, free_outputs);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_help_and_usage);
    tcase_add_test(tc, test_daemon_down);
    tcase_add_test(tc, test_agents_and_acting);
    tcase_add_test(tc, test_submit);
    suite_add_tcase(s, tc);

    tc = tcase_create("robots");
    tcase_add_checked_fixture(tc, setup, free_outputs);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_robots);
    suite_add_tcase(s, tc);
    return s;
}
