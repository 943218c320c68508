/* robot: the shared runner of the example robots (see robot.h).
 *
 * Per episode: open a session, reset the environment, then for every control step send the
 * observation with the reward of the previous action and apply the answer's action. When the
 * episode ends (a terminal state, or the step limit), the last observation goes in as well, so
 * that the last action's reward is recorded: with done=true when it is terminal, else with
 * truncated=true (the step limit). Then the session is closed.
 */
#include "robot.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clients/c/elbo_client.h"

#define EXIT_OK       0
#define EXIT_USAGE    1
#define EXIT_CONNECT  2
#define EXIT_REJECTED 3
#define EXIT_SERVER   4
#define EXIT_OUTPUT   5

/* ---- random stream ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double robot_uniform(robot_rng *r, double lo, double hi)
{
    double u = (double)(splitmix64(&r->s) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    return lo + (hi - lo) * u;
}

double robot_normal(robot_rng *r, double sd)
{
    /* Box-Muller; 1 - u keeps the logarithm finite. */
    double u1 = 1.0 - robot_uniform(r, 0.0, 1.0), u2 = robot_uniform(r, 0.0, 1.0);
    return sd * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct robot_opts {
    const char *url, *token, *agent, *csv, *create_args, *mode;
    long episodes, seed;
    double deadline_ms, timeout_s, wait_training_s;
    int explore, quiet;
} robot_opts;

static void usage(const robot_task *t, FILE *f)
{
    fprintf(
        f,
        "Usage: robot_%s [options]\n"
        "\n"
        "%s"
        "\n"
        "Simulates the %s task locally and controls it through elbod: one session per\n"
        "episode, one session act per step (observation, reward of the previous action;\n"
        "the last observation with done or truncated). Creates the agent when it is missing\n"
        "(observation_dim %d, action_dim %d, actions in [%g, %g]). Prints one line per\n"
        "episode:\n"
        "  %s episode=E return=R steps=N seconds=S model_version=V p50_ms=A p99_ms=B\n"
        "where p50_ms and p99_ms are the round-trip latencies of the episode's action\n"
        "requests (planning included).\n"
        "\n"
        "Options:\n"
        "  --url URL            elbod's address (default $ELBOD_URL, else "
        "http://127.0.0.1:8080)\n"
        "  --token TOKEN        bearer token (default $ELBOD_TOKEN)\n"
        "  --agent NAME         the agent (default %s)\n"
        "  --episodes N         episodes to run (default 10)\n"
        "  --seed S             seed of the environment's starts (default 1)\n"
        "  --mode plan|policy   plan (default) or the learned policy alone\n"
        "  --explore            sample actions instead of taking the mean\n"
        "  --deadline-ms MS     planning budget per step (default: none)\n"
        "  --create-args JSON   extra settings when the agent is created, e.g.\n"
        "                       '{\"planner\":{\"horizon\":20},\"training\":{\"train_ratio\":8}}'\n"
        "  --csv FILE           append one row per episode: task, seed, episode, return,\n"
        "                       steps, seconds, model_version, p50_ms, p99_ms\n"
        "  --timeout SECONDS    request timeout (default 60)\n"
        "  --wait-training SECONDS\n"
        "                       after each episode, wait (at most SECONDS) until the agent's\n"
        "                       trainer has caught up with its train_ratio cap, as a robot\n"
        "                       being reset would (default 0: go on at once)\n"
        "  --quiet              print nothing but errors (use with --csv)\n"
        "  -h, --help           this help\n"
        "\n"
        "Exit status: 0 ok, 1 usage error, 2 connection error, 3 request rejected (4xx),\n"
        "4 server error (5xx), 5 the --csv file cannot be written (checked before the first\n"
        "episode).\n"
        "\n"
        "More in elbod's README.md, section \"Example robots\" (under \"Clients\").\n",
        t->name, t->description, t->name, t->obs_dim, t->act_dim, t->act_low, t->act_high, t->name,
        t->name);
}

static int bad_usage(const robot_task *t, const char *what, const char *value)
{
    fprintf(stderr, "robot_%s: %s%s%s%s (see --help)\n", t->name, what, value ? " '" : "",
            value ? value : "", value ? "'" : "");
    return EXIT_USAGE;
}

static int parse_opts(int argc, char **argv, const robot_task *t, robot_opts *o, int *exit_now)
{
    memset(o, 0, sizeof *o);
    o->url = getenv("ELBOD_URL");
    if (!o->url || !*o->url)
        o->url = "http://127.0.0.1:8080";
    o->token = getenv("ELBOD_TOKEN");
    o->agent = t->name;
    o->episodes = 10;
    o->seed = 1;
    o->timeout_s = 60;
    *exit_now = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        static const char *const valued[] = {
            "--url",         "--token",       "--agent", "--episodes", "--seed",         "--mode",
            "--deadline-ms", "--create-args", "--csv",   "--timeout",  "--wait-training"};
        size_t k = 0;
        for (; k < sizeof valued / sizeof valued[0]; k++) {
            size_t n = strlen(valued[k]);
            if (strcmp(a, valued[k]) == 0) {
                if (i + 1 >= argc)
                    return bad_usage(t, "this option needs a value:", a);
                v = argv[++i];
                break;
            }
            if (strncmp(a, valued[k], n) == 0 && a[n] == '=') {
                v = a + n + 1;
                break;
            }
        }
        char *end = NULL;
        errno = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(t, stdout);
            *exit_now = 1;
            return EXIT_OK;
        } else if (strcmp(a, "--explore") == 0) {
            o->explore = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (!v) {
            return bad_usage(t, "unknown option", a);
        } else if (k == 0) {
            o->url = v;
        } else if (k == 1) {
            o->token = v;
        } else if (k == 2) {
            o->agent = v;
        } else if (k == 3) {
            o->episodes = strtol(v, &end, 10);
            if (errno || *end || !*v || o->episodes < 1 || o->episodes > 100000000)
                return bad_usage(t, "--episodes wants a positive integer, not", v);
        } else if (k == 4) {
            o->seed = strtol(v, &end, 10);
            if (errno || *end || !*v || o->seed < 0)
                return bad_usage(t, "--seed wants a non-negative integer, not", v);
        } else if (k == 5) {
            if (strcmp(v, "plan") && strcmp(v, "policy"))
                return bad_usage(t, "--mode is plan or policy, not", v);
            o->mode = v;
        } else if (k == 6) {
            o->deadline_ms = strtod(v, &end);
            if (errno || *end || !*v || !(o->deadline_ms >= 0) || !isfinite(o->deadline_ms))
                return bad_usage(t, "--deadline-ms wants milliseconds, not", v);
        } else if (k == 7) {
            o->create_args = v;
        } else if (k == 8) {
            o->csv = v;
        } else if (k == 9) {
            o->timeout_s = strtod(v, &end);
            if (errno || *end || !*v || !(o->timeout_s >= 0) || o->timeout_s > 1e6)
                return bad_usage(t, "--timeout wants seconds, not", v);
        } else {
            o->wait_training_s = strtod(v, &end);
            if (errno || *end || !*v || !(o->wait_training_s >= 0) || o->wait_training_s > 1e6)
                return bad_usage(t, "--wait-training wants seconds, not", v);
        }
    }
    return EXIT_OK;
}

/* ---- talking to elbod --------------------------------------------------------------------- */

/* Reports a failed request; returns the exit status. */
static int failed(const robot_task *t, elbo_client *c, const char *what, int rc)
{
    const elbo_error *e = elbo_client_last_error(c);
    if (rc == ELBO_EHTTP) {
        fprintf(stderr, "robot_%s: %s: HTTP %ld %s: %s%s%s\n", t->name, what, e->status, e->code,
                e->message, e->field[0] ? " field " : "", e->field);
        return e->status >= 500 ? EXIT_SERVER : EXIT_REJECTED;
    }
    fprintf(stderr, "robot_%s: %s: %s: %s\n", t->name, what, elbo_strerror(rc), e->message);
    return rc == ELBO_ECONNECT || rc == ELBO_ETIMEOUT || rc == ELBO_ETRANSFER ? EXIT_CONNECT
                                                                              : EXIT_SERVER;
}

/* Makes sure the agent exists with the task's shape: creates it when it is missing. */
static int ensure_agent(const robot_task *t, const robot_opts *o, elbo_client *c)
{
    json_t *extra = NULL;
    if (o->create_args) {
        json_error_t je;
        extra = json_loads(o->create_args, JSON_REJECT_DUPLICATES, &je);
        if (!extra || !json_is_object(extra)) {
            json_decref(extra);
            fprintf(stderr, "robot_%s: --create-args is not a JSON object: %s\n", t->name,
                    extra ? "another JSON value" : je.text);
            return EXIT_USAGE;
        }
    }
    json_t *agent = NULL;
    int rc = elbo_agent_get(c, o->agent, &agent);
    if (rc == ELBO_EHTTP && elbo_client_last_error(c)->status == 404) {
        double low[ROBOT_MAX_ACT], high[ROBOT_MAX_ACT];
        for (int j = 0; j < t->act_dim; j++) {
            low[j] = t->act_low;
            high[j] = t->act_high;
        }
        rc = elbo_agent_create_box(c, o->agent, t->obs_dim, t->act_dim, low, high, extra, &agent);
        if (!rc && !o->quiet)
            fprintf(stderr, "robot_%s: created agent %s\n", t->name, o->agent);
        if (rc == ELBO_EHTTP && elbo_client_last_error(c)->status == 409)
            rc = elbo_agent_get(c, o->agent, &agent); /* created meanwhile by another robot */
    } else if (!rc && extra && !o->quiet) {
        fprintf(stderr, "robot_%s: agent %s exists: --create-args ignored\n", t->name, o->agent);
    }
    json_decref(extra);
    if (rc)
        return failed(t, c, "agent", rc);
    long dx = (long)json_integer_value(json_object_get(agent, "observation_dim"));
    long da = (long)json_integer_value(json_object_get(agent, "action_dim"));
    json_decref(agent);
    if (dx != t->obs_dim || da != t->act_dim) {
        fprintf(stderr,
                "robot_%s: agent %s has observation_dim %ld and action_dim %ld; the %s task "
                "needs %d and %d (choose another --agent)\n",
                t->name, o->agent, dx, da, t->name, t->obs_dim, t->act_dim);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---- episodes ----------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (nearest rank) of n sorted values. */
static double quantile(const double *sorted, int n, double q)
{
    if (n <= 0)
        return 0.0;
    int k = (int)ceil(q * n) - 1;
    return sorted[k < 0 ? 0 : k >= n ? n - 1 : k];
}

typedef struct episode_result {
    double ret, seconds, p50_ms, p99_ms;
    int steps;
    long model_version;
} episode_result;

/* Runs episode e. 0, or the exit status of a failure. */
static int run_episode(const robot_task *t, const robot_opts *o, elbo_client *c, long e,
                       void *state, double *lat, episode_result *res)
{
    memset(res, 0, sizeof *res);
    robot_rng rng = {(uint64_t)o->seed * 0x100000001b3ull + (uint64_t)e};
    splitmix64(&rng.s); /* decorrelates neighbouring seeds */
    t->reset(state, &rng);
    float obs[ROBOT_MAX_OBS], action[ROBOT_MAX_ACT];
    t->observe(state, obs);

    char sid[128];
    double t0 = now_s();
    int rc = elbo_session_open_id(c, o->agent, sid, sizeof sid);
    if (rc)
        return failed(t, c, "session open", rc);
    elbo_act_options act = {
        .mode = o->mode, .explore = o->explore, .deadline_ms = o->deadline_ms, .record = 1};
    elbo_act_info info;
    float reward = 0.0f;
    int terminal = 0, steps = 0;
    double ret = 0.0;
    for (int k = 0; k < t->max_steps && !terminal; k++) {
        rc = elbo_session_act_ex(c, o->agent, sid, obs, t->obs_dim, reward, 0, &act, action,
                                 t->act_dim, &info);
        if (rc)
            break;
        lat[steps] = info.latency_ms;
        res->model_version = info.model_version;
        double r = t->step(state, action, &terminal);
        ret += r;
        reward = (float)r;
        steps++;
        t->observe(state, obs);
    }
    if (!rc) {
        /* The last observation with the last action's reward: done when terminal, else
         * truncated (the step limit); either way no action is recorded for it. */
        elbo_act_options last = act;
        last.mode = "policy";
        last.explore = 0;
        last.deadline_ms = 0;
        last.truncated = !terminal;
        rc = elbo_session_act_ex(c, o->agent, sid, obs, t->obs_dim, reward, terminal, &last, action,
                                 t->act_dim, &info);
        if (!rc)
            res->model_version = info.model_version;
    }
    int ex = rc ? failed(t, c, "session act", rc) : EXIT_OK;
    int crc = elbo_session_close(c, o->agent, sid, NULL);
    if (crc && !ex)
        ex = failed(t, c, "session close", crc);
    if (ex)
        return ex;
    res->seconds = now_s() - t0;
    res->ret = ret;
    res->steps = steps;
    qsort(lat, (size_t)steps, sizeof *lat, cmp_double);
    res->p50_ms = quantile(lat, steps, 0.50);
    res->p99_ms = quantile(lat, steps, 0.99);
    return EXIT_OK;
}

/* --wait-training: polls the training status until the trainer has done train_ratio steps per
 * transition received (or cannot train: paused, too few transitions, no cap), or the wait is
 * over. A robot being reset between episodes gives the learner this time; PETS-style loops train
 * between episodes the same way. */
static int wait_training(const robot_task *t, const robot_opts *o, elbo_client *c)
{
    json_t *agent = NULL;
    int rc = elbo_agent_get(c, o->agent, &agent);
    if (rc)
        return failed(t, c, "agent", rc);
    json_t *tc = json_object_get(agent, "training");
    double ratio = json_number_value(json_object_get(tc, "train_ratio"));
    long min_tr = (long)json_integer_value(json_object_get(tc, "min_transitions"));
    json_decref(agent);
    double until = now_s() + o->wait_training_s;
    for (;;) {
        json_t *st = NULL;
        rc = elbo_training_get(c, o->agent, &st);
        if (rc)
            return failed(t, c, "training", rc);
        double step = json_number_value(json_object_get(st, "step"));
        double trans = json_number_value(json_object_get(st, "transitions_total"));
        int paused = json_is_true(json_object_get(st, "paused"));
        json_decref(st);
        if (paused || ratio <= 0 || trans < (double)min_tr || step >= ratio * trans)
            return EXIT_OK;
        if (now_s() >= until) {
            if (!o->quiet)
                fprintf(stderr, "robot_%s: trainer at step %.0f of %.0f after %.0f s; going on\n",
                        t->name, step, ratio * trans, o->wait_training_s);
            return EXIT_OK;
        }
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* Whether the CSV file can be appended to: opens it for appending (creating it when missing) and
 * closes it, before any episode runs. EXIT_OK or EXIT_OUTPUT. */
static int check_csv(const robot_task *t, const robot_opts *o)
{
    FILE *f = fopen(o->csv, "a");
    if (!f || fclose(f)) {
        fprintf(stderr, "robot_%s: cannot write %s: %s\n", t->name, o->csv, strerror(errno));
        return EXIT_OUTPUT;
    }
    return EXIT_OK;
}

/* Appends the episode's row to the CSV file (with the header when the file is new or empty). */
static int append_csv(const robot_task *t, const robot_opts *o, long e, const episode_result *r)
{
    FILE *f = fopen(o->csv, "a");
    if (!f) {
        fprintf(stderr, "robot_%s: cannot open %s: %s\n", t->name, o->csv, strerror(errno));
        return EXIT_OUTPUT;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size == 0)
        fprintf(f, "task,seed,episode,return,steps,seconds,model_version,p50_ms,p99_ms\n");
    fprintf(f, "%s,%ld,%ld,%.4f,%d,%.3f,%ld,%.3f,%.3f\n", t->name, o->seed, e, r->ret, r->steps,
            r->seconds, r->model_version, r->p50_ms, r->p99_ms);
    if (fclose(f)) {
        fprintf(stderr, "robot_%s: cannot write %s: %s\n", t->name, o->csv, strerror(errno));
        return EXIT_OUTPUT;
    }
    return EXIT_OK;
}

int robot_main(int argc, char **argv, const robot_task *t)
{
    robot_opts o;
    int exit_now = 0;
    int ex = parse_opts(argc, argv, t, &o, &exit_now);
    if (ex || exit_now)
        return ex;
    if (t->obs_dim > ROBOT_MAX_OBS || t->act_dim > ROBOT_MAX_ACT)
        return EXIT_USAGE;
    if (o.csv && (ex = check_csv(t, &o)) != EXIT_OK)
        return ex; /* before any request: no episode runs for nothing */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    elbo_client_options copt = ELBO_CLIENT_OPTIONS_DEFAULT;
    copt.token = o.token;
    copt.timeout_ms = (long)(o.timeout_s * 1000.0);
    elbo_client *c = elbo_client_new(o.url, &copt);
    void *state = calloc(1, t->state_size);
    double *lat = calloc((size_t)t->max_steps, sizeof *lat);
    if (!c || !state || !lat) {
        fprintf(stderr, "robot_%s: cannot set up a client for %s\n", t->name, o.url);
        ex = EXIT_USAGE;
        goto out;
    }
    ex = ensure_agent(t, &o, c);
    for (long e = 0; !ex && e < o.episodes; e++) {
        episode_result r;
        ex = run_episode(t, &o, c, e, state, lat, &r);
        if (ex)
            break;
        if (!o.quiet) {
            printf("%s episode=%ld return=%.2f steps=%d seconds=%.2f model_version=%ld "
                   "p50_ms=%.2f p99_ms=%.2f\n",
                   t->name, e, r.ret, r.steps, r.seconds, r.model_version, r.p50_ms, r.p99_ms);
            fflush(stdout);
        }
        if (o.csv)
            ex = append_csv(t, &o, e, &r);
        if (!ex && o.wait_training_s > 0 && e + 1 < o.episodes)
            ex = wait_training(t, &o, c);
    }
out:
    free(lat);
    free(state);
    elbo_client_free(c);
    curl_global_cleanup();
    return ex;
}
