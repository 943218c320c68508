/* elboctl: the command-line client of elbod, built on elbo_client.
 *
 * `elboctl [global options] <command> [options] [args]`; `elboctl --help` lists the commands and
 * `elboctl <command> --help` explains one. Output is human-readable (aligned `key: value` lines,
 * tables) unless --json asks for the server's JSON as is. The exit status says what went wrong
 * (EXIT_* below, documented in --help), so scripts can tell a typo from a dead daemon.
 *
 * One command table drives parsing, option checking and help. Every command is a function
 * run_<name>(ctx, cmdline) returning an exit status.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/c/elbo_client.h"

#define EXIT_OK       0
#define EXIT_USAGE    1
#define EXIT_CONNECT  2
#define EXIT_REJECTED 3
#define EXIT_SERVER   4
#define EXIT_INPUT    5

#define DEFAULT_URL    "http://127.0.0.1:8080"
#define MAX_FILE_BYTES ((size_t)4 << 30) /* input files above are refused */
#define MAX_POS        8
#define MAX_OPTS       128
#define JSON_OUT_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

/* ---- command line ------------------------------------------------------------------------- */

typedef struct opt_spec {
    const char *name; /* without the leading "--" */
    int takes_value;
} opt_spec;

typedef struct cmdline {
    const char *pos[MAX_POS];
    int npos;
    const char *names[MAX_OPTS];
    const char *vals[MAX_OPTS];
    int nopts;
} cmdline;

typedef struct ctx {
    elbo_client *client;
    int json;        /* --json: the server's JSON as is */
    const char *cmd; /* for messages */
} ctx;

typedef struct command {
    const char *name;
    int (*run)(ctx *x, const cmdline *cl);
    int min_pos, max_pos;
    const opt_spec *opts;
    const char *usage;   /* the arguments, after "elboctl <name> " */
    const char *summary; /* one line for the command list */
    const char *help;    /* the rest of `elboctl <name> --help` */
} command;

/* The last value of an option, or NULL. */
static const char *opt_get(const cmdline *cl, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < cl->nopts; i++)
        if (strcmp(cl->names[i], name) == 0)
            v = cl->vals[i] ? cl->vals[i] : "";
    return v;
}

static int opt_has(const cmdline *cl, const char *name)
{
    return opt_get(cl, name) != NULL;
}

static void errorf(const ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errorf(const ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "elboctl: %s%s", x && x->cmd ? x->cmd : "", x && x->cmd ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int usage_error(const ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "elboctl: %s%s", x && x->cmd ? x->cmd : "", x && x->cmd ? ": " : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see elboctl %s%s--help)\n", x && x->cmd ? x->cmd : "",
            x && x->cmd ? " " : "");
    return EXIT_USAGE;
}

/* Reports a failed request and returns its exit status. */
static int request_failed(const ctx *x, int rc)
{
    const elbo_error *e = elbo_client_last_error(x->client);
    if (rc == ELBO_EHTTP) {
        if (x->json) {
            size_t len = 0;
            const char *body = elbo_client_last_body(x->client, &len);
            if (len) {
                fwrite(body, 1, len, stdout);
                fputc('\n', stdout);
            }
        }
        if (e->code[0])
            errorf(x, "%s (HTTP %ld %s%s%s)", e->message, e->status, e->code,
                   e->field[0] ? ", field " : "", e->field);
        else
            errorf(x, "HTTP %ld: %s", e->status, e->message);
        return e->status >= 500 ? EXIT_SERVER : EXIT_REJECTED;
    }
    errorf(x, "%s: %s", elbo_strerror(rc), e->message);
    switch (rc) {
    case ELBO_ECONNECT:
    case ELBO_ETIMEOUT:
    case ELBO_ETRANSFER:
        return EXIT_CONNECT;
    case ELBO_EARG:
        return EXIT_USAGE;
    default:
        return EXIT_SERVER;
    }
}

/* Parses a decimal integer in [lo, hi]; 0 or -1. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Parses a finite number; 0 or -1. */
static int parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* A list of numbers: "1,0,0", "1 0 0" or a JSON array "[1,0,0]". Returns a new JSON array or
 * NULL. */
static json_t *parse_numbers(const char *s)
{
    json_t *a = json_array();
    if (!a || !s)
        goto err;
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '[')
        p++;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',')
            p++;
        if (*p == '\0' || *p == ']')
            break;
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v))
            goto err;
        if (*end && *end != ',' && *end != ']' && !isspace((unsigned char)*end))
            goto err;
        if (json_array_append_new(a, json_real(v)))
            goto err;
        p = end;
    }
    if (*p == ']') {
        p++;
        while (isspace((unsigned char)*p))
            p++;
        if (*p)
            goto err;
    }
    if (json_array_size(a) == 0)
        goto err;
    return a;
err:
    json_decref(a);
    return NULL;
}

/* ---- files -------------------------------------------------------------------------------- */

/* Reads a whole file ("-": standard input) into a malloc'd, NUL-terminated buffer. 0, or -1 with
 * a message printed. */
static int read_input(const ctx *x, const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        errorf(x, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        errorf(x, "%s is a directory", path);
        if (f != stdin)
            fclose(f);
        return -1;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -1;
    while (!rc) {
        if (n + 1 >= cap) {
            if (cap >= MAX_FILE_BYTES) {
                errorf(x, "%s is larger than %zu bytes", path, MAX_FILE_BYTES);
                rc = -1;
                break;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                rc = -1;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                errorf(x, "cannot read %s: %s", path, strerror(errno));
                rc = -1;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (rc) {
        if (!buf)
            errorf(x, "out of memory reading %s", path);
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

/* Reads a file holding one JSON object. NULL (message printed) when it is missing or not one. */
static json_t *read_json_object(const ctx *x, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (read_input(x, path, &text, &len))
        return NULL;
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!v) {
        errorf(x, "%s:%d:%d: malformed JSON: %s", path, je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        errorf(x, "%s: expected a JSON object", path);
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Writes len bytes to path atomically: a temporary file in the same directory, fsync, rename,
 * fsync of the directory. "-" writes to standard output. 0, or -1 with a message printed. */
static int write_output(const ctx *x, const char *path, const void *data, size_t len)
{
    if (strcmp(path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout)) {
            errorf(x, "cannot write to standard output: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) {
        errorf(x, "out of memory");
        return -1;
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        errorf(x, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    int rc = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -1;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!rc && fsync(fd))
        rc = -1;
    if (close(fd))
        rc = -1;
    if (!rc && rename(tmp, path))
        rc = -1;
    if (rc) {
        errorf(x, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    /* The rename is durable once the directory is synced. */
    char *dcopy = strdup(path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

/* Prints the last answer's body as is (the --json output). */
static void print_raw_body(const ctx *x)
{
    size_t len = 0;
    const char *body = elbo_client_last_body(x->client, &len);
    fwrite(body, 1, len, stdout);
    if (len == 0 || body[len - 1] != '\n')
        fputc('\n', stdout);
}

/* One value on one line: numbers as the server wrote them (7 significant digits), arrays in
 * brackets, null as "-". */
static void put_value(FILE *f, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        fprintf(f, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        fprintf(f, "%.7g", json_real_value(v));
        break;
    case JSON_TRUE:
        fputs("true", f);
        break;
    case JSON_FALSE:
        fputs("false", f);
        break;
    case JSON_NULL:
        fputs("-", f);
        break;
    case JSON_STRING:
        fputs(json_string_value(v), f);
        break;
    case JSON_ARRAY:
        fputc('[', f);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                fputs(", ", f);
            put_value(f, json_array_get(v, i));
        }
        fputc(']', f);
        break;
    case JSON_OBJECT: {
        char *s = json_dumps(v, JSON_OUT_FLAGS);
        fputs(s ? s : "{...}", f);
        free(s);
        break;
    }
    }
}

/* The widest dotted key of the object's scalars (nested objects flattened). */
static size_t kv_width(const json_t *o, size_t prefix_len)
{
    size_t w = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        size_t kl = prefix_len + strlen(k);
        size_t kw = json_is_object(v) && json_object_size(v) ? kv_width(v, kl + 1) : kl;
        if (kw > w)
            w = kw;
    }
    return w;
}

/* Prints the object as aligned "key: value" lines; nested objects as "outer.inner: value". */
static void kv_print_prefixed(FILE *f, const json_t *o, const char *prefix, int width)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(v) && json_object_size(v)) {
            kv_print_prefixed(f, v, key, width);
            continue;
        }
        fprintf(f, "%s:%*s", key, (int)(width - strlen(key)) + 1, "");
        put_value(f, v);
        fputc('\n', f);
    }
}

static void kv_print(const json_t *o)
{
    int width = (int)kv_width(o, 0) + 1;
    kv_print_prefixed(stdout, o, "", width);
}

/* ---- the commands ------------------------------------------------------------------------- */

/* Applies "section.key=value" to the object: the value is JSON when it parses as JSON (numbers,
 * true, false, null, "quoted", [..], {..}), else a string. 0, or -1 with a message. */
static int apply_set(const ctx *x, json_t *root, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    char path[256];
    size_t pl = eq ? (size_t)(eq - assignment) : 0;
    if (!eq || pl == 0 || pl >= sizeof path) {
        usage_error(x, "--set wants section.key=value, not '%s'", assignment);
        return -1;
    }
    memcpy(path, assignment, pl);
    path[pl] = '\0';
    const char *text = eq + 1;
    json_t *val = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!val)
        val = json_string(text);
    if (!val) {
        usage_error(x, "--set %s: the value is not UTF-8", path);
        return -1;
    }
    json_t *obj = root;
    char *seg = path;
    for (char *dot = strchr(seg, '.'); dot; dot = strchr(seg, '.')) {
        *dot = '\0';
        json_t *child = json_object_get(obj, seg);
        if (!*seg || (child && !json_is_object(child))) {
            json_decref(val);
            usage_error(x, "--set: '%s' is not a section", seg);
            return -1;
        }
        if (!child) {
            child = json_object();
            json_object_set_new(obj, seg, child);
        }
        obj = child;
        seg = dot + 1;
    }
    if (!*seg) {
        json_decref(val);
        usage_error(x, "--set wants section.key=value, not '%s'", assignment);
        return -1;
    }
    json_object_set_new(obj, seg, val);
    return 0;
}

static int apply_sets(const ctx *x, json_t *root, const cmdline *cl)
{
    for (int i = 0; i < cl->nopts; i++)
        if (strcmp(cl->names[i], "set") == 0 && apply_set(x, root, cl->vals[i]))
            return -1;
    return 0;
}

/* Prints an agent object: its settings and status, or the raw JSON with --json. */
static void print_agent(const ctx *x, const json_t *agent)
{
    if (x->json)
        print_raw_body(x);
    else
        kv_print(agent);
}

/* A list of n bounds from "v" (repeated) or "v1,v2,..". */
static json_t *bounds(const char *s, long n)
{
    json_t *a = parse_numbers(s);
    if (a && n > 0 && json_array_size(a) == 1 && n > 1) {
        for (long i = 1; i < n; i++)
            json_array_append(a, json_array_get(a, 0));
    }
    return a;
}

static int run_create(ctx *x, const cmdline *cl)
{
    const char *file = opt_get(cl, "file");
    json_t *spec = file ? read_json_object(x, file) : json_object();
    if (!spec)
        return file ? EXIT_INPUT : EXIT_SERVER;
    int ex = EXIT_USAGE;
    const char *name = cl->npos > 0 ? cl->pos[0] : opt_get(cl, "name");
    if (name)
        json_object_set_new(spec, "name", json_string(name));
    long dims[2] = {0, 0};
    const char *dim_opts[2] = {"obs-dim", "act-dim"};
    const char *dim_keys[2] = {"observation_dim", "action_dim"};
    for (int i = 0; i < 2; i++) {
        const char *v = opt_get(cl, dim_opts[i]);
        if (!v)
            continue;
        if (parse_long(v, 1, 1000000, &dims[i])) {
            usage_error(x, "--%s wants a positive integer, not '%s'", dim_opts[i], v);
            goto out;
        }
        json_object_set_new(spec, dim_keys[i], json_integer(dims[i]));
    }
    long act_dim =
        dims[1] ? dims[1] : (long)json_integer_value(json_object_get(spec, "action_dim"));
    const char *box_opts[2] = {"low", "high"};
    const char *box_keys[2] = {"action_low", "action_high"};
    for (int i = 0; i < 2; i++) {
        const char *v = opt_get(cl, box_opts[i]);
        if (!v)
            continue;
        json_t *a = bounds(v, act_dim);
        if (!a) {
            usage_error(x, "--%s wants numbers like -1 or -1,-2, not '%s'", box_opts[i], v);
            goto out;
        }
        json_object_set_new(spec, box_keys[i], a);
        if (!json_object_get(spec, "action_dim"))
            json_object_set_new(spec, "action_dim", json_integer((json_int_t)json_array_size(a)));
    }
    if (apply_sets(x, spec, cl))
        goto out;
    if (!json_string_value(json_object_get(spec, "name"))) {
        usage_error(x, "give the agent's name (NAME, --name, or \"name\" in --file)");
        goto out;
    }
    json_t *agent = NULL;
    int rc = elbo_agent_create(x->client, spec, &agent);
    if (rc) {
        ex = request_failed(x, rc);
        goto out;
    }
    if (!x->json)
        printf("created agent %s\n", json_string_value(json_object_get(agent, "name")));
    print_agent(x, agent);
    json_decref(agent);
    ex = EXIT_OK;
out:
    json_decref(spec);
    return ex;
}

/* A cell of the agent table. */
static void cell(char *out, size_t cap, const json_t *v)
{
    if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, cap, "%.4g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(out, cap, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(out, cap, "-");
}

static int run_list(ctx *x, const cmdline *cl)
{
    (void)cl;
    json_t *r = NULL;
    int rc = elbo_agents_list(x->client, &r);
    if (rc)
        return request_failed(x, rc);
    if (x->json) {
        print_raw_body(x);
        json_decref(r);
        return EXIT_OK;
    }
    json_t *agents = json_object_get(r, "agents");
    size_t n = json_array_size(agents);
    if (n == 0) {
        printf("no agents\n");
        json_decref(r);
        return EXIT_OK;
    }
    enum { NCOL = 8 };
    static const char *const head[NCOL] = {"NAME", "OBS",         "ACT",      "SESSIONS",
                                           "STEP", "TRANSITIONS", "TRAINING", "PAUSED"};
    static const char *const paths[NCOL][2] = {
        {"name", NULL},         {"observation_dim", NULL}, {"action_dim", NULL},
        {"sessions", NULL},     {"status", "step"},        {"status", "transitions_total"},
        {"status", "training"}, {"status", "paused"}};
    char(*cells)[NCOL][72] = calloc(n, sizeof *cells);
    if (!cells) {
        json_decref(r);
        errorf(x, "out of memory");
        return EXIT_SERVER;
    }
    size_t width[NCOL];
    for (int j = 0; j < NCOL; j++)
        width[j] = strlen(head[j]);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(agents, i);
        for (int j = 0; j < NCOL; j++) {
            json_t *v = json_object_get(a, paths[j][0]);
            if (paths[j][1])
                v = json_object_get(v, paths[j][1]);
            cell(cells[i][j], sizeof cells[i][j], v);
            if (strlen(cells[i][j]) > width[j])
                width[j] = strlen(cells[i][j]);
        }
    }
    /* Left-aligned columns; the last one unpadded. */
    for (int j = 0; j < NCOL; j++)
        printf("%-*s%s", j + 1 < NCOL ? (int)width[j] : 0, head[j], j + 1 < NCOL ? "  " : "\n");
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < NCOL; j++)
            printf("%-*s%s", j + 1 < NCOL ? (int)width[j] : 0, cells[i][j],
                   j + 1 < NCOL ? "  " : "\n");
    free(cells);
    json_decref(r);
    return EXIT_OK;
}

static int run_show(ctx *x, const cmdline *cl)
{
    json_t *r = NULL;
    int rc = elbo_agent_get(x->client, cl->pos[0], &r);
    if (rc)
        return request_failed(x, rc);
    print_agent(x, r);
    json_decref(r);
    return EXIT_OK;
}

static int run_patch(ctx *x, const cmdline *cl)
{
    const char *file = opt_get(cl, "file");
    json_t *changes = file ? read_json_object(x, file) : json_object();
    if (!changes)
        return file ? EXIT_INPUT : EXIT_SERVER;
    int ex = EXIT_USAGE;
    if (apply_sets(x, changes, cl))
        goto out;
    if (json_object_size(changes) == 0) {
        usage_error(x, "nothing to change: give --set section.key=value or --file FILE");
        goto out;
    }
    json_t *r = NULL;
    int rc = elbo_agent_patch(x->client, cl->pos[0], changes, &r);
    if (rc) {
        ex = request_failed(x, rc);
        goto out;
    }
    if (!x->json)
        printf("updated agent %s\n", cl->pos[0]);
    print_agent(x, r);
    json_decref(r);
    ex = EXIT_OK;
out:
    json_decref(changes);
    return ex;
}

static int run_delete(ctx *x, const cmdline *cl)
{
    json_t *r = NULL;
    int rc = elbo_agent_delete(x->client, cl->pos[0], &r);
    if (rc)
        return request_failed(x, rc);
    if (x->json)
        print_raw_body(x);
    else
        printf("deleted agent %s\n", json_string_value(json_object_get(r, "deleted")));
    json_decref(r);
    return EXIT_OK;
}

/* Builds the body of act, plan and session open from the options. NULL after a usage error. */
static json_t *act_request(const ctx *x, const cmdline *cl, int obs_required)
{
    json_t *q = json_object();
    const char *obs = opt_get(cl, "obs");
    if (!obs && obs_required) {
        usage_error(x, "give the observation with --obs v1,v2,...");
        goto err;
    }
    if (obs) {
        json_t *a = parse_numbers(obs);
        if (!a) {
            usage_error(x, "--obs wants finite numbers like 1,0,0, not '%s'", obs);
            goto err;
        }
        json_object_set_new(q, "observation", a);
    }
    const char *mode = opt_get(cl, "mode");
    if (mode) {
        if (strcmp(mode, "plan") && strcmp(mode, "policy")) {
            usage_error(x, "--mode is plan or policy, not '%s'", mode);
            goto err;
        }
        json_object_set_new(q, "mode", json_string(mode));
    }
    if (opt_has(cl, "explore"))
        json_object_set_new(q, "explore", json_true());
    const char *dl = opt_get(cl, "deadline-ms");
    if (dl) {
        double v = 0;
        if (parse_double(dl, &v) || v < 0) {
            usage_error(x, "--deadline-ms wants a number of milliseconds, not '%s'", dl);
            goto err;
        }
        json_object_set_new(q, "deadline_ms", json_real(v));
    }
    const char *rw = opt_get(cl, "reward");
    if (rw) {
        double v = 0;
        if (parse_double(rw, &v)) {
            usage_error(x, "--reward wants a finite number, not '%s'", rw);
            goto err;
        }
        json_object_set_new(q, "reward", json_real(v));
    }
    if (opt_has(cl, "done"))
        json_object_set_new(q, "done", json_true());
    if (opt_has(cl, "truncated"))
        json_object_set_new(q, "truncated", json_true());
    if (opt_has(cl, "no-record"))
        json_object_set_new(q, "record", json_false());
    return q;
err:
    json_decref(q);
    return NULL;
}

/* The action response without its plan, as key: value lines. */
static void print_action(const json_t *r)
{
    json_t *copy = json_copy((json_t *)r);
    if (!copy)
        return;
    json_object_del(copy, "plan");
    kv_print(copy);
    json_decref(copy);
}

static int run_act(ctx *x, const cmdline *cl)
{
    const char *sid = opt_get(cl, "session");
    if (!sid && (opt_has(cl, "reward") || opt_has(cl, "done") || opt_has(cl, "truncated") ||
                 opt_has(cl, "no-record")))
        return usage_error(x, "--reward, --done, --truncated and --no-record need --session ID");
    json_t *q = act_request(x, cl, 1);
    if (!q)
        return EXIT_USAGE;
    json_t *r = NULL;
    int rc = sid ? elbo_session_act_json(x->client, cl->pos[0], sid, q, &r)
                 : elbo_act(x->client, cl->pos[0], q, &r);
    json_decref(q);
    if (rc)
        return request_failed(x, rc);
    if (x->json)
        print_raw_body(x);
    else
        print_action(r);
    json_decref(r);
    return EXIT_OK;
}

/* "a, b" of one row of a matrix, or "-". */
static void row_text(char *out, size_t cap, const json_t *row, int prec)
{
    size_t k = 0;
    out[0] = '\0';
    if (json_is_number(row)) {
        snprintf(out, cap, "%.*g", prec, json_number_value(row));
        return;
    }
    for (size_t i = 0; i < json_array_size(row) && k + 1 < cap; i++) {
        int w = snprintf(out + k, cap - k, "%s%.*g", i ? "," : "", prec,
                         json_number_value(json_array_get(row, i)));
        if (w < 0)
            break;
        k += (size_t)w;
    }
    if (!out[0])
        snprintf(out, cap, "-");
}

static int run_plan(ctx *x, const cmdline *cl)
{
    const char *sid = opt_get(cl, "session");
    if (opt_has(cl, "mode"))
        return usage_error(x, "plan always plans: no --mode");
    json_t *q = act_request(x, cl, sid == NULL);
    if (!q)
        return EXIT_USAGE;
    if (sid)
        json_object_set_new(q, "session_id", json_string(sid));
    json_t *r = NULL;
    int rc = elbo_plan(x->client, cl->pos[0], q, &r);
    json_decref(q);
    if (rc)
        return request_failed(x, rc);
    if (x->json) {
        print_raw_body(x);
        json_decref(r);
        return EXIT_OK;
    }
    print_action(r);
    json_t *plan = json_object_get(r, "plan");
    json_t *terms = json_object_get(plan, "terms");
    if (terms) {
        json_t *t = json_pack("{s:O}", "terms", terms);
        if (t) {
            kv_print(t);
            json_decref(t);
        }
    }
    json_t *acts = json_object_get(plan, "actions"), *astd = json_object_get(plan, "action_std");
    json_t *rew = json_object_get(plan, "predicted_rewards");
    json_t *rstd = json_object_get(plan, "predicted_reward_std");
    json_t *obs = json_object_get(plan, "predicted_observations");
    size_t h = json_array_size(acts);
    printf("\n%-4s  %-18s  %-18s  %-10s  %-10s  %s\n", "STEP", "ACTION", "ACTION_STD", "REWARD",
           "REWARD_STD", "PREDICTED_OBSERVATION");
    for (size_t i = 0; i < h; i++) {
        char a[128], as[128], ro[128];
        row_text(a, sizeof a, json_array_get(acts, i), 5);
        row_text(as, sizeof as, json_array_get(astd, i), 3);
        row_text(ro, sizeof ro, json_array_get(obs, i), 4);
        printf("%-4zu  %-18s  %-18s  %-10.4g  %-10.3g  %s\n", i, a, as,
               json_number_value(json_array_get(rew, i)),
               json_number_value(json_array_get(rstd, i)), ro);
    }
    json_decref(r);
    return EXIT_OK;
}

static int run_session(ctx *x, const cmdline *cl)
{
    const char *what = cl->pos[0];
    json_t *r = NULL;
    int rc;
    if (strcmp(what, "open") == 0) {
        if (cl->npos != 2)
            return usage_error(x, "usage: elboctl session open NAME [--obs v,..]");
        if (!opt_has(cl, "obs") &&
            (opt_has(cl, "mode") || opt_has(cl, "explore") || opt_has(cl, "deadline-ms")))
            return usage_error(x, "--mode, --explore and --deadline-ms need --obs (they choose "
                                  "the first action)");
        json_t *q = act_request(x, cl, 0);
        if (!q)
            return EXIT_USAGE;
        rc = elbo_session_open(x->client, cl->pos[1], json_object_size(q) ? q : NULL, &r);
        json_decref(q);
    } else if (strcmp(what, "close") == 0) {
        if (cl->npos != 3)
            return usage_error(x, "usage: elboctl session close NAME SESSION_ID");
        if (cl->nopts)
            return usage_error(x, "session close takes no options");
        rc = elbo_session_close(x->client, cl->pos[1], cl->pos[2], &r);
    } else {
        return usage_error(x, "unknown session command '%s': open or close", what);
    }
    if (rc)
        return request_failed(x, rc);
    if (x->json)
        print_raw_body(x);
    else if (json_object_get(r, "closed"))
        printf("closed session %s\n", json_string_value(json_object_get(r, "closed")));
    else
        print_action(r);
    json_decref(r);
    return EXIT_OK;
}

/* ---- submit ------------------------------------------------------------------------------- */

/* One episode or transition of the file, serialised. */
typedef struct entry {
    char *json;
    size_t len;
    long steps;
} entry;

typedef struct entries {
    entry *e;
    size_t n, cap;
    int transitions; /* 1: flat transitions, 0: episodes */
} entries;

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->n; i++)
        free(es->e[i].json);
    free(es->e);
    memset(es, 0, sizeof *es);
}

/* Serialises v (borrowed) as the next entry. 0 or -1 (out of memory). */
static int entries_add(entries *es, const json_t *v, long steps)
{
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 256;
        entry *p = realloc(es->e, cap * sizeof *p);
        if (!p)
            return -1;
        es->e = p;
        es->cap = cap;
    }
    char *s = json_dumps(v, JSON_OUT_FLAGS);
    if (!s)
        return -1;
    es->e[es->n++] = (entry){s, strlen(s), steps};
    return 0;
}

/* Checks that a is an array of `rows` rows of `cols` numbers (rows < 0: any number of rows, at
 * least one, returned in *got). 0, or -1 with the problem in msg. */
static int check_rows(const json_t *a, long rows, int cols, const char *what, long *got, char *msg,
                      size_t cap)
{
    if (!json_is_array(a)) {
        snprintf(msg, cap, "'%s' is missing or not an array", what);
        return -1;
    }
    long n = (long)json_array_size(a);
    if (rows >= 0 && n != rows) {
        snprintf(msg, cap, "'%s' has %ld rows, expected %ld", what, n, rows);
        return -1;
    }
    if (rows < 0 && n < 1) {
        snprintf(msg, cap, "'%s' is empty", what);
        return -1;
    }
    for (long t = 0; t < n; t++) {
        const json_t *row = json_array_get(a, (size_t)t);
        if (!json_is_array(row) || json_array_size(row) != (size_t)cols) {
            snprintf(msg, cap, "%s[%ld] has %zu values, the agent expects %d", what, t,
                     json_is_array(row) ? json_array_size(row) : (size_t)0, cols);
            return -1;
        }
        for (int j = 0; j < cols; j++)
            if (!json_is_number(json_array_get(row, (size_t)j))) {
                snprintf(msg, cap, "%s[%ld][%d] is not a number", what, t, j);
                return -1;
            }
    }
    if (got)
        *got = n;
    return 0;
}

/* Checks one episode's shapes against the agent's; its number of transitions in *steps. */
static int check_episode(const json_t *ep, int dx, int da, long *steps, char *msg, size_t cap)
{
    if (!json_is_object(ep)) {
        snprintf(msg, cap, "an episode must be a JSON object");
        return -1;
    }
    long T = 0;
    if (check_rows(json_object_get(ep, "actions"), -1, da, "actions", &T, msg, cap) ||
        check_rows(json_object_get(ep, "observations"), T + 1, dx, "observations", NULL, msg, cap))
        return -1;
    const json_t *rw = json_object_get(ep, "rewards");
    if (!json_is_array(rw) || (long)json_array_size(rw) != T) {
        snprintf(msg, cap, "'rewards' must hold %ld numbers (one per action)", T);
        return -1;
    }
    for (long t = 0; t < T; t++)
        if (!json_is_number(json_array_get(rw, (size_t)t))) {
            snprintf(msg, cap, "rewards[%ld] is not a number", t);
            return -1;
        }
    const json_t *am = json_object_get(ep, "action_mean"), *as = json_object_get(ep, "action_std");
    if ((am && check_rows(am, T, da, "action_mean", NULL, msg, cap)) ||
        (as && check_rows(as, T, da, "action_std", NULL, msg, cap)))
        return -1;
    *steps = T;
    return 0;
}

static int check_transition(const json_t *tr, int dx, int da, char *msg, size_t cap)
{
    if (!json_is_object(tr)) {
        snprintf(msg, cap, "a transition must be a JSON object");
        return -1;
    }
    static const char *const keys[] = {"observation", "next_observation", "action"};
    int dims[] = {dx, dx, da};
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(tr, keys[k]);
        if (!json_is_array(v) || json_array_size(v) != (size_t)dims[k]) {
            snprintf(msg, cap, "'%s' must hold %d numbers", keys[k], dims[k]);
            return -1;
        }
        for (int j = 0; j < dims[k]; j++)
            if (!json_is_number(json_array_get(v, (size_t)j))) {
                snprintf(msg, cap, "%s[%d] is not a number", keys[k], j);
                return -1;
            }
    }
    if (!json_is_number(json_object_get(tr, "reward"))) {
        snprintf(msg, cap, "'reward' is missing or not a number");
        return -1;
    }
    return 0;
}

/* Gives an entry without an id the id "<prefix><index>" (when a prefix is set). */
static void add_id(json_t *v, const char *prefix, size_t index)
{
    if (!prefix || json_object_get(v, "id"))
        return;
    char id[160];
    snprintf(id, sizeof id, "%s%zu", prefix, index);
    json_object_set_new(v, "id", json_string(id));
}

/* A JSON file: {"episodes":[..]}, {"transitions":[..]} or [..episodes..]. */
static int load_json(const ctx *x, const char *path, const char *text, size_t len, int dx, int da,
                     const char *id_prefix, entries *es)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        errorf(x, "%s:%d:%d: malformed JSON: %s", path, je.line, je.column, je.text);
        return -1;
    }
    json_t *arr = root;
    if (json_is_object(root)) {
        json_t *eps = json_object_get(root, "episodes"),
               *trs = json_object_get(root, "transitions");
        if ((eps != NULL) == (trs != NULL) || json_object_size(root) != 1) {
            errorf(x,
                   "%s: expected {\"episodes\":[...]}, {\"transitions\":[...]} or an array of "
                   "episodes",
                   path);
            json_decref(root);
            return -1;
        }
        arr = eps ? eps : trs;
        es->transitions = trs != NULL;
    }
    if (!json_is_array(arr)) {
        errorf(x, "%s: expected an array of %s", path,
               es->transitions ? "transitions" : "episodes");
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        char msg[256];
        long steps = 1;
        int bad = es->transitions ? check_transition(v, dx, da, msg, sizeof msg)
                                  : check_episode(v, dx, da, &steps, msg, sizeof msg);
        if (bad) {
            errorf(x, "%s: %s %zu: %s", path, es->transitions ? "transition" : "episode", i, msg);
            json_decref(root);
            return -1;
        }
        add_id(v, id_prefix, i);
        if (entries_add(es, v, steps)) {
            errorf(x, "out of memory");
            json_decref(root);
            return -1;
        }
    }
    json_decref(root);
    return 0;
}

/* The next line of text (in place: the newline becomes NUL); NULL at the end. */
static char *next_line(char **cursor, char *end)
{
    char *s = *cursor;
    if (s >= end)
        return NULL;
    char *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = end;
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r')
        s[n - 1] = '\0';
    return s;
}

static int blank(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

/* NDJSON: one episode object per line. */
static int load_ndjson(const ctx *x, const char *path, char *text, size_t len, int dx, int da,
                       const char *id_prefix, entries *es)
{
    char *cur = text, *end = text + len, *line;
    long lineno = 0;
    while ((line = next_line(&cur, end)) != NULL) {
        lineno++;
        if (blank(line))
            continue;
        json_error_t je;
        json_t *v = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        if (!v) {
            errorf(x, "%s:%ld:%d: malformed JSON: %s", path, lineno, je.column, je.text);
            return -1;
        }
        char msg[256];
        long steps = 0;
        if (check_episode(v, dx, da, &steps, msg, sizeof msg)) {
            errorf(x, "%s:%ld: %s", path, lineno, msg);
            json_decref(v);
            return -1;
        }
        add_id(v, id_prefix, es->n);
        int rc = entries_add(es, v, steps);
        json_decref(v);
        if (rc) {
            errorf(x, "out of memory");
            return -1;
        }
    }
    if (es->n == 0) {
        errorf(x, "%s: no episodes", path);
        return -1;
    }
    return 0;
}

/* The CSV episode being read. */
typedef struct csv_episode {
    char label[128];
    json_t *obs, *act, *rew;
    long next_step;
    int final_seen; /* its final observation row was read */
    int done;
    long first_line;
} csv_episode;

static void csv_episode_reset(csv_episode *ep)
{
    json_decref(ep->obs);
    json_decref(ep->act);
    json_decref(ep->rew);
    memset(ep, 0, sizeof *ep);
}

/* Turns the finished CSV episode into an entry. */
static int csv_finish(const ctx *x, const char *path, csv_episode *ep, const char *id_prefix,
                      entries *es)
{
    if (!ep->final_seen) {
        errorf(x,
               "%s:%ld: episode '%s' ends without its final observation row (a row with the "
               "action and reward columns empty)",
               path, ep->first_line, ep->label);
        return -1;
    }
    long T = (long)json_array_size(ep->act);
    if (T < 1) {
        errorf(x, "%s:%ld: episode '%s' has no action", path, ep->first_line, ep->label);
        return -1;
    }
    json_t *v = json_pack("{s:O,s:O,s:O,s:b}", "observations", ep->obs, "actions", ep->act,
                          "rewards", ep->rew, "done", ep->done);
    if (v && id_prefix) {
        char id[300];
        snprintf(id, sizeof id, "%s%s", id_prefix, ep->label);
        json_object_set_new(v, "id", json_string(id));
    }
    int rc = v ? entries_add(es, v, T) : -1;
    json_decref(v);
    if (rc)
        errorf(x, "out of memory");
    return rc;
}

/* Splits a CSV line at commas (no quoting: the fields are numbers and labels), trimming spaces.
 * Returns the number of fields (up to max; max + 1 means more). */
static int csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*p))
            p++;
        size_t l = strlen(p);
        while (l && isspace((unsigned char)p[l - 1]))
            p[--l] = '\0';
        if (n < max)
            fields[n] = p;
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return n > max ? max + 1 : n;
}

/* A CSV number field into a new JSON real; NULL when it is not a finite number. */
static json_t *csv_number(const char *s)
{
    double v;
    return parse_double(s, &v) ? NULL : json_real(v);
}

static int csv_flag(const char *s, int *out)
{
    if (!*s || strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0) {
        *out = 0;
        return 0;
    }
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0) {
        *out = 1;
        return 0;
    }
    return -1;
}

/* CSV: a row per step, "episode,step,obs_0..obs_{dx-1},action_0..action_{da-1},reward,done";
 * an episode's last row is its final observation with the action and reward cells empty. Each
 * episode has its own label: a label that comes back after another episode began is refused, as
 * it would be two episodes under one name (and one id with --id-prefix: the second would be
 * dropped as a duplicate). */
static int load_csv(const ctx *x, const char *path, char *text, size_t len, int dx, int da,
                    const char *id_prefix, entries *es)
{
    int ncol = 2 + dx + da + 2;
    char **f = malloc(sizeof(char *) * (size_t)(ncol + 1));
    json_t *seen = json_object(); /* label -> the line its episode began on */
    if (!f || !seen) {
        free(f);
        json_decref(seen);
        errorf(x, "out of memory");
        return -1;
    }
    csv_episode ep;
    memset(&ep, 0, sizeof ep);
    int in_episode = 0, rc = -1;
    char *cur = text, *end = text + len, *line;
    long lineno = 0;
    while ((line = next_line(&cur, end)) != NULL) {
        lineno++;
        if (blank(line) || line[0] == '#')
            continue;
        int n = csv_split(line, f, ncol);
        if (lineno == 1 && n >= 1 && strcasecmp(f[0], "episode") == 0)
            continue; /* the header */
        if (n != ncol) {
            errorf(x,
                   "%s:%ld: %s%d columns, expected %d (episode, step, %d observation, %d action, "
                   "reward, done)",
                   path, lineno, n > ncol ? "more than " : "", n > ncol ? ncol : n, ncol, dx, da);
            goto out;
        }
        long step = 0;
        if (parse_long(f[1], 0, 1L << 40, &step)) {
            errorf(x, "%s:%ld: step '%s' is not a non-negative integer", path, lineno, f[1]);
            goto out;
        }
        if (in_episode && strcmp(f[0], ep.label) == 0) {
            if (ep.final_seen) {
                errorf(x, "%s:%ld: episode '%s' continues after its final observation row", path,
                       lineno, ep.label);
                goto out;
            }
        } else {
            if (in_episode && csv_finish(x, path, &ep, id_prefix, es))
                goto out;
            if (strlen(f[0]) >= sizeof ep.label) {
                errorf(x, "%s:%ld: episode label longer than %zu characters", path, lineno,
                       sizeof ep.label - 1);
                goto out;
            }
            json_t *before = json_object_get(seen, f[0]);
            if (before) {
                errorf(x,
                       "%s:%ld: episode label '%s' is used again: an episode of that label began "
                       "on line %lld; give every episode its own label",
                       path, lineno, f[0], (long long)json_integer_value(before));
                goto out;
            }
            if (json_object_set_new_nocheck(seen, f[0], json_integer(lineno))) {
                errorf(x, "out of memory");
                goto out;
            }
            csv_episode_reset(&ep);
            snprintf(ep.label, sizeof ep.label, "%s", f[0]);
            ep.obs = json_array();
            ep.act = json_array();
            ep.rew = json_array();
            ep.first_line = lineno;
            in_episode = 1;
        }
        if (step != ep.next_step) {
            errorf(x, "%s:%ld: episode '%s': step %ld, expected %ld", path, lineno, ep.label, step,
                   ep.next_step);
            goto out;
        }
        ep.next_step++;
        json_t *o = json_array();
        for (int j = 0; j < dx; j++) {
            json_t *v = csv_number(f[2 + j]);
            if (!v) {
                errorf(x, "%s:%ld: observation %d '%s' is not a finite number", path, lineno, j,
                       f[2 + j]);
                json_decref(o);
                goto out;
            }
            json_array_append_new(o, v);
        }
        json_array_append_new(ep.obs, o);
        int empty = 0;
        for (int j = 0; j < da + 1; j++)
            empty += f[2 + dx + j][0] == '\0';
        int done = 0;
        if (csv_flag(f[ncol - 1], &done)) {
            errorf(x, "%s:%ld: done '%s' is not 0, 1, true or false", path, lineno, f[ncol - 1]);
            goto out;
        }
        if (empty == da + 1) {
            ep.final_seen = 1;
            ep.done = done;
            continue;
        }
        if (empty) {
            errorf(x,
                   "%s:%ld: give all %d action cells and the reward, or none of them (the "
                   "final observation row)",
                   path, lineno, da);
            goto out;
        }
        if (done) {
            errorf(x,
                   "%s:%ld: done belongs on the final observation row (empty action and "
                   "reward)",
                   path, lineno);
            goto out;
        }
        json_t *a = json_array();
        for (int j = 0; j <= da; j++) {
            const char *cellv = f[2 + dx + j];
            json_t *v = csv_number(cellv);
            if (!v) {
                errorf(x, "%s:%ld: %s '%s' is not a finite number", path, lineno,
                       j < da ? "action" : "reward", cellv);
                json_decref(a);
                goto out;
            }
            if (j < da)
                json_array_append_new(a, v);
            else
                json_array_append_new(ep.rew, v);
        }
        json_array_append_new(ep.act, a);
    }
    if (in_episode && csv_finish(x, path, &ep, id_prefix, es))
        goto out;
    if (es->n == 0) {
        errorf(x, "%s: no episodes", path);
        goto out;
    }
    rc = 0;
out:
    csv_episode_reset(&ep);
    json_decref(seen);
    free(f);
    return rc;
}

/* The format from --format, the file name, or the content. */
static const char *guess_format(const char *path, const char *text)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".csv") == 0)
        return "csv";
    if (dot && (strcasecmp(dot, ".ndjson") == 0 || strcasecmp(dot, ".jsonl") == 0))
        return "ndjson";
    if (dot && strcasecmp(dot, ".json") == 0)
        return "json";
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '[')
        return "json";
    if (*text == '{') {
        /* One object over the whole file is JSON; one per line is NDJSON. */
        json_t *v = json_loads(text, 0, NULL);
        json_decref(v);
        return v ? "json" : "ndjson";
    }
    return "csv";
}

static void progress(int tty, size_t batch, size_t nbatch, size_t sent, size_t total, long steps)
{
    fprintf(stderr, "%ssubmit: batch %zu/%zu, %zu/%zu entries, %ld transitions (%.0f%%)%s",
            tty ? "\r" : "", batch, nbatch, sent, total, steps,
            total ? 100.0 * (double)sent / (double)total : 100.0, tty ? "" : "\n");
    if (tty && batch == nbatch)
        fputc('\n', stderr);
    fflush(stderr);
}

static int run_submit(ctx *x, const cmdline *cl)
{
    const char *name = cl->pos[0], *path = cl->pos[1];
    const char *format = opt_get(cl, "format");
    const char *id_prefix = opt_get(cl, "id-prefix");
    long max_eps = 1000, max_steps = 100000, max_bytes = 4L << 20;
    if (format && strcmp(format, "json") && strcmp(format, "ndjson") && strcmp(format, "csv"))
        return usage_error(x, "--format is json, ndjson or csv, not '%s'", format);
    if ((opt_get(cl, "batch") && parse_long(opt_get(cl, "batch"), 1, 1000000, &max_eps)) ||
        (opt_get(cl, "batch-steps") &&
         parse_long(opt_get(cl, "batch-steps"), 1, 100000000, &max_steps)) ||
        (opt_get(cl, "batch-bytes") &&
         parse_long(opt_get(cl, "batch-bytes"), 1024, 1L << 30, &max_bytes)))
        return usage_error(x, "--batch, --batch-steps and --batch-bytes want positive integers");
    char *text = NULL;
    size_t len = 0;
    if (read_input(x, path, &text, &len))
        return EXIT_INPUT;
    if (!format)
        format = guess_format(path, text);
    /* A malformed JSON file is reported before the agent is looked up. */
    if (strcmp(format, "json") == 0) {
        json_error_t je;
        json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!v) {
            errorf(x, "%s:%d:%d: malformed JSON: %s", path, je.line, je.column, je.text);
            free(text);
            return EXIT_INPUT;
        }
        json_decref(v);
    }
    json_t *agent = NULL;
    int rc = elbo_agent_get(x->client, name, &agent);
    if (rc) {
        free(text);
        return request_failed(x, rc);
    }
    int dx = (int)json_integer_value(json_object_get(agent, "observation_dim"));
    int da = (int)json_integer_value(json_object_get(agent, "action_dim"));
    json_decref(agent);
    entries es;
    memset(&es, 0, sizeof es);
    int bad;
    if (strcmp(format, "json") == 0)
        bad = load_json(x, path, text, len, dx, da, id_prefix, &es);
    else if (strcmp(format, "ndjson") == 0)
        bad = load_ndjson(x, path, text, len, dx, da, id_prefix, &es);
    else
        bad = load_csv(x, path, text, len, dx, da, id_prefix, &es);
    free(text);
    if (bad || es.n == 0) {
        if (!bad)
            errorf(x, "%s: nothing to submit", path);
        entries_free(&es);
        return EXIT_INPUT;
    }

    /* Batches: consecutive entries up to max_eps entries, max_steps transitions and max_bytes
     * of body (an entry larger than that goes alone). */
    const char *key = es.transitions ? "transitions" : "episodes";
    size_t nbatch = 0;
    for (size_t i = 0; i < es.n;) {
        size_t bytes = strlen(key) + 8 + es.e[i].len;
        long steps = es.e[i].steps;
        size_t j = i + 1;
        while (j < es.n && (long)(j - i) < max_eps && steps + es.e[j].steps <= max_steps &&
               bytes + es.e[j].len + 1 <= (size_t)max_bytes) {
            bytes += es.e[j].len + 1;
            steps += es.e[j].steps;
            j++;
        }
        nbatch++;
        i = j;
    }
    int show_progress = nbatch > 1 && !opt_has(cl, "quiet");
    int tty = isatty(STDERR_FILENO);
    long accepted = 0, duplicates = 0, episodes = 0, sent_steps = 0;
    size_t batch = 0, sent = 0;
    int ex = EXIT_OK;
    char *body = NULL;
    for (size_t i = 0; i < es.n;) {
        size_t bytes = strlen(key) + 8 + es.e[i].len;
        long steps = es.e[i].steps;
        size_t j = i + 1;
        while (j < es.n && (long)(j - i) < max_eps && steps + es.e[j].steps <= max_steps &&
               bytes + es.e[j].len + 1 <= (size_t)max_bytes) {
            bytes += es.e[j].len + 1;
            steps += es.e[j].steps;
            j++;
        }
        free(body);
        body = malloc(bytes + 1);
        if (!body) {
            errorf(x, "out of memory");
            ex = EXIT_SERVER;
            break;
        }
        size_t k = (size_t)snprintf(body, bytes + 1, "{\"%s\":[", key);
        for (size_t m = i; m < j; m++) {
            if (m > i)
                body[k++] = ',';
            memcpy(body + k, es.e[m].json, es.e[m].len);
            k += es.e[m].len;
        }
        body[k++] = ']';
        body[k++] = '}';
        body[k] = '\0';
        json_t *r = NULL;
        rc = elbo_transitions_submit_raw(x->client, name, body, k, &r);
        batch++;
        if (rc) {
            if (show_progress && tty)
                fputc('\n', stderr);
            ex = request_failed(x, rc);
            errorf(x,
                   "batch %zu of %zu failed; %zu of %zu entries (%ld transitions) were stored "
                   "before it",
                   batch, nbatch, sent, es.n, sent_steps);
            break;
        }
        accepted += (long)json_integer_value(json_object_get(r, "accepted"));
        duplicates += (long)json_integer_value(json_object_get(r, "duplicates"));
        episodes += (long)json_integer_value(json_object_get(r, "episodes"));
        json_decref(r);
        sent += j - i;
        sent_steps += steps;
        if (show_progress)
            progress(tty, batch, nbatch, sent, es.n, sent_steps);
        i = j;
    }
    free(body);
    if (ex == EXIT_OK) {
        if (x->json && nbatch == 1) {
            print_raw_body(x);
        } else if (x->json) {
            printf("{\"accepted\":%ld,\"duplicates\":%ld,\"episodes\":%ld}\n", accepted, duplicates,
                   episodes);
        } else {
            printf("submitted %s to %s: %zu %s%s in %zu request%s\n", path, name, es.n,
                   es.transitions ? "transition" : "episode", es.n == 1 ? "" : "s", nbatch,
                   nbatch == 1 ? "" : "s");
            printf("accepted:   %ld\nduplicates: %ld\n", accepted, duplicates);
        }
    }
    entries_free(&es);
    return ex;
}

/* ---- training, checkpoints, daemon -------------------------------------------------------- */

static int run_training(ctx *x, const cmdline *cl)
{
    json_t *r = NULL;
    int rc = elbo_training_get(x->client, cl->pos[0], &r);
    if (rc)
        return request_failed(x, rc);
    print_agent(x, r);
    json_decref(r);
    return EXIT_OK;
}

static int pause_resume(ctx *x, const cmdline *cl, int pause)
{
    json_t *r = NULL;
    int rc = pause ? elbo_training_pause(x->client, cl->pos[0], &r)
                   : elbo_training_resume(x->client, cl->pos[0], &r);
    if (rc)
        return request_failed(x, rc);
    if (x->json) {
        print_raw_body(x);
    } else {
        printf("training of %s %s (step %lld)\n", cl->pos[0], pause ? "paused" : "resumed",
               (long long)json_integer_value(json_object_get(r, "step")));
    }
    json_decref(r);
    return EXIT_OK;
}

static int run_pause(ctx *x, const cmdline *cl)
{
    return pause_resume(x, cl, 1);
}

static int run_resume(ctx *x, const cmdline *cl)
{
    return pause_resume(x, cl, 0);
}

static int run_checkpoint(ctx *x, const cmdline *cl)
{
    const char *what = cl->pos[0];
    if (cl->npos != 3)
        return usage_error(x, "usage: elboctl checkpoint export|import NAME FILE");
    const char *name = cl->pos[1], *path = cl->pos[2];
    if (strcmp(what, "export") == 0) {
        unsigned char *data = NULL;
        size_t len = 0;
        int rc = elbo_checkpoint_export(x->client, name, &data, &len);
        if (rc)
            return request_failed(x, rc);
        int bad = write_output(x, path, data, len);
        free(data);
        if (bad)
            return EXIT_INPUT;
        if (strcmp(path, "-") == 0)
            return EXIT_OK;
        if (x->json) {
            json_t *o =
                json_pack("{s:s,s:s,s:I}", "agent", name, "file", path, "bytes", (json_int_t)len);
            char *s = o ? json_dumps(o, JSON_OUT_FLAGS) : NULL;
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(o);
        } else {
            printf("exported %s: %zu bytes to %s\n", name, len, path);
        }
        return EXIT_OK;
    }
    if (strcmp(what, "import") == 0) {
        char *data = NULL;
        size_t len = 0;
        if (read_input(x, path, &data, &len))
            return EXIT_INPUT;
        json_t *r = NULL;
        int rc = elbo_checkpoint_import(x->client, name, data, len, &r);
        free(data);
        if (rc)
            return request_failed(x, rc);
        if (x->json)
            print_raw_body(x);
        else
            printf("imported %s into %s: model_version %lld\n", path, name,
                   (long long)json_integer_value(json_object_get(r, "model_version")));
        json_decref(r);
        return EXIT_OK;
    }
    return usage_error(x, "unknown checkpoint command '%s': export or import", what);
}

static int run_version(ctx *x, const cmdline *cl)
{
    (void)cl;
    json_t *r = NULL;
    int rc = elbo_version(x->client, &r);
    if (rc)
        return request_failed(x, rc);
    if (x->json) {
        print_raw_body(x);
    } else {
        json_object_set_new(r, "url", json_string(elbo_client_url(x->client)));
        kv_print(r);
    }
    json_decref(r);
    return EXIT_OK;
}

static int run_health(ctx *x, const cmdline *cl)
{
    json_t *r = NULL;
    int ready = opt_has(cl, "ready");
    int rc = ready ? elbo_readyz(x->client, &r) : elbo_healthz(x->client, &r);
    if (rc)
        return request_failed(x, rc);
    if (x->json)
        print_raw_body(x);
    else
        printf("%s: %s\n", ready ? "ready" : "health",
               json_string_value(json_object_get(r, "status")));
    json_decref(r);
    return EXIT_OK;
}

static int run_metrics(ctx *x, const cmdline *cl)
{
    char *text = NULL;
    size_t len = 0;
    int rc = elbo_metrics(x->client, &text, &len);
    if (rc)
        return request_failed(x, rc);
    const char *grep = opt_get(cl, "grep");
    if (!grep) {
        fwrite(text, 1, len, stdout);
    } else {
        char *cur = text, *end = text + len, *line;
        while ((line = next_line(&cur, end)) != NULL)
            if (line[0] != '#' && strstr(line, grep))
                printf("%s\n", line);
    }
    free(text);
    return EXIT_OK;
}

/* ---- the command table -------------------------------------------------------------------- */

static const opt_spec no_opts[] = {{NULL, 0}};
static const opt_spec create_opts[] = {{"file", 1}, {"name", 1}, {"obs-dim", 1}, {"act-dim", 1},
                                       {"low", 1},  {"high", 1}, {"set", 1},     {NULL, 0}};
static const opt_spec patch_opts[] = {{"file", 1}, {"set", 1}, {NULL, 0}};
static const opt_spec act_opts[] = {
    {"obs", 1},    {"mode", 1}, {"explore", 0},   {"deadline-ms", 1}, {"session", 1},
    {"reward", 1}, {"done", 0}, {"truncated", 0}, {"no-record", 0},   {NULL, 0}};
static const opt_spec plan_opts[] = {{"obs", 1},     {"session", 1},     {"reward", 1},
                                     {"explore", 0}, {"deadline-ms", 1}, {"mode", 1},
                                     {NULL, 0}};
static const opt_spec session_opts[] = {
    {"obs", 1}, {"mode", 1}, {"explore", 0}, {"deadline-ms", 1}, {NULL, 0}};
static const opt_spec submit_opts[] = {{"format", 1},      {"batch", 1},     {"batch-steps", 1},
                                       {"batch-bytes", 1}, {"id-prefix", 1}, {"quiet", 0},
                                       {NULL, 0}};
static const opt_spec health_opts[] = {{"ready", 0}, {NULL, 0}};
static const opt_spec metrics_opts[] = {{"grep", 1}, {NULL, 0}};

static const command commands[] = {
    {"create", run_create, 0, 1, create_opts,
     "[NAME] (--file FILE | --name NAME --obs-dim N --act-dim N --low L --high H) "
     "[--set section.key=value]...",
     "create an agent",
     "Creates an agent. Its specification comes from --file (a JSON object as POST /v1/agents\n"
     "takes it), from flags, or both: flags and then --set override the file.\n"
     "\n"
     "  --file FILE          the agent as JSON, e.g. {\"name\":\"p\",\"observation_dim\":3,...}\n"
     "  --name NAME          the agent's name (or give NAME as the argument)\n"
     "  --obs-dim N          observation_dim\n"
     "  --act-dim N          action_dim (default: the number of --low values)\n"
     "  --low L, --high H    the action box: one value for every action, or v1,v2,..\n"
     "  --set S.K=V          a setting, e.g. --set planner.horizon=20 --set "
     "model.activation=tanh;\n"
     "                       V is read as JSON when it parses, else as a string (repeatable)\n"
     "\n"
     "Example: elboctl create pendulum --obs-dim 3 --low -2 --high 2 --set "
     "training.train_ratio=8\n"},
    {"list", run_list, 0, 0, no_opts, "", "list agents",
     "Lists the agents with their shapes, open sessions and training state.\n"},
    {"show", run_show, 1, 1, no_opts, "NAME", "show one agent's settings and status",
     "Prints every setting of the agent (model, planner, training) and its training status.\n"},
    {"patch", run_patch, 1, 1, patch_opts, "NAME [--set section.key=value]... [--file FILE]",
     "change live settings",
     "Changes planner and training settings, and the model's training weights, of a live agent.\n"
     "\n"
     "  --set S.K=V          a change, e.g. --set planner.horizon=20 (repeatable)\n"
     "  --file FILE          the changes as a JSON object, e.g. "
     "{\"training\":{\"train_ratio\":8}}\n"},
    {"delete", run_delete, 1, 1, no_opts, "NAME", "delete an agent and its stored data",
     "Deletes the agent, its sessions, its stored experience and its checkpoints.\n"},
    {"act", run_act, 1, 1, act_opts,
     "NAME --obs V,.. [--mode plan|policy] [--explore] [--deadline-ms MS] [--session ID "
     "[--reward R] [--done | --truncated] [--no-record]]",
     "one action for an observation",
     "Asks for an action. Without --session it is stateless (nothing recorded); with --session\n"
     "it is the session's next step, recorded for training.\n"
     "\n"
     "  --obs V,..           the observation: numbers separated by commas, or a JSON array\n"
     "  --mode M             plan (default: run the planner) or policy (the learned prior alone)\n"
     "  --explore            sample the action instead of taking the mean\n"
     "  --deadline-ms MS     time budget of the planner\n"
     "  --session ID         act in this session (see elboctl session open)\n"
     "  --reward R           session: the reward of the previous action\n"
     "  --done               session: this observation ends the episode (a terminal state);\n"
     "                       the next act starts a new episode in the session\n"
     "  --truncated          session: the episode stops at this observation without ending\n"
     "                       (a time limit): it is recorded with its reward, without an\n"
     "                       action and not as terminal; the next act starts a new episode\n"
     "  --no-record          session: do not record the step for training\n"},
    {"plan", run_plan, 1, 1, plan_opts,
     "NAME (--obs V,.. | --session ID [--obs V,.. [--reward R]]) [--explore] [--deadline-ms MS]",
     "a whole plan with predictions",
     "Plans from an observation (or a session's state, read-only) and prints the planned\n"
     "actions with the rewards and observations the model predicts, and the objective's terms.\n"
     "\n"
     "  --obs V,..           the observation\n"
     "  --session ID         plan from this session's state (nothing recorded)\n"
     "  --reward R           with --session and --obs: the reward of the previous action\n"
     "  --explore            sample the first action\n"
     "  --deadline-ms MS     time budget of the planner\n"},
    {"session", run_session, 2, 3, session_opts,
     "open NAME [--obs V,.. [--mode M] [--explore] [--deadline-ms MS]] | close NAME ID",
     "open or close a session",
     "open: opens a session (one per running episode of a robot) and prints its session_id;\n"
     "      with --obs also its first action (recorded as the episode's first step). Act in\n"
     "      the session with elboctl act NAME --session ID.\n"
     "close: closes the session; its running episode ends without a terminal state.\n"
     "\n"
     "Options of open (--mode, --explore and --deadline-ms only with --obs):\n"
     "  --obs V,..           the episode's first observation: numbers separated by commas,\n"
     "                       or a JSON array; the answer then carries the first action\n"
     "  --mode M             plan (default: run the planner) or policy (the learned prior\n"
     "                       alone) for that first action\n"
     "  --explore            sample the first action instead of taking the mean\n"
     "  --deadline-ms MS     time budget of the planner for the first action\n"
     "\n"
     "Example: SID=$(elboctl --json session open pendulum | sed -E "
     "'s/.*\"session_id\":\"([^\"]+)\".*/\\1/')\n"},
    {"submit", run_submit, 2, 2, submit_opts,
     "NAME FILE [--format json|ndjson|csv] [--batch N] [--batch-steps N] [--batch-bytes N] "
     "[--id-prefix P] [--quiet]",
     "submit experience from a file",
     "Submits experience gathered elsewhere for training. FILE ('-': standard input) is checked\n"
     "whole against the agent's dimensions before anything is sent, then sent in batches, with\n"
     "a progress line on stderr when there is more than one.\n"
     "\n"
     "Formats (--format, else from the extension .json/.ndjson/.jsonl/.csv, else the content):\n"
     "  json    {\"episodes\":[...]} or {\"transitions\":[...]} as POST .../transitions takes\n"
     "          them, or an array of episodes\n"
     "  ndjson  one episode object per line: {\"observations\":[[..],..],\"actions\":[[..],..],\n"
     "          \"rewards\":[..],\"done\":false}\n"
     "  csv     one row per step, columns:\n"
     "            episode,step,obs_0,..,obs_<dx-1>,action_0,..,action_<da-1>,reward,done\n"
     "          episode: a label shared by the consecutive rows of one episode, and by no\n"
     "          other episode of the file (a label used again is an error); step: 0, 1, ..\n"
     "          A step row holds the observation, the action taken at it and that action's\n"
     "          reward, with done 0. Every episode ends with one final observation row whose\n"
     "          action and reward cells are empty and whose done (0/1) says whether it is\n"
     "          terminal. So T actions take T + 1 rows. A first line starting with 'episode' is\n"
     "          a header; empty lines and lines starting with '#' are skipped. Example (dx 3,\n"
     "          da 1):\n"
     "            episode,step,obs_0,obs_1,obs_2,action_0,reward,done\n"
     "            ep1,0,1.0,0.0,0.0,0.5,-0.1,0\n"
     "            ep1,1,0.99,0.1,0.2,-0.3,-0.2,0\n"
     "            ep1,2,0.98,0.2,0.3,,,1\n"
     "\n"
     "  --format F           json, ndjson or csv\n"
     "  --batch N            entries per request at most (default 1000)\n"
     "  --batch-steps N      transitions per request at most (default 100000)\n"
     "  --batch-bytes N      request body size at most (default 4194304)\n"
     "  --id-prefix P        give entries without an id the id P<index> (CSV: P<episode label>),\n"
     "                       so that submitting the same file again stores nothing twice\n"
     "  --quiet              no progress line\n"},
    {"training", run_training, 1, 1, no_opts, "NAME", "training status",
     "Prints the training status: step (the model version), replay, speed and the latest ELBO\n"
     "terms.\n"},
    {"pause", run_pause, 1, 1, no_opts, "NAME", "pause training",
     "Pauses the agent's gradient steps (acting and recording go on).\n"},
    {"resume", run_resume, 1, 1, no_opts, "NAME", "resume training",
     "Resumes the agent's gradient steps.\n"},
    {"checkpoint", run_checkpoint, 3, 3, no_opts, "export NAME FILE | import NAME FILE",
     "export or import the learned state",
     "export: writes the agent's checkpoint to FILE ('-': standard output), atomically.\n"
     "import: loads FILE into an existing agent of the same shape.\n"},
    {"version", run_version, 0, 0, no_opts, "", "daemon, API and checkpoint format versions",
     "Prints elbod's version, its API version and checkpoint format.\n"},
    {"health", run_health, 0, 0, health_opts, "[--ready]", "liveness (or readiness)",
     "Asks /healthz (or /readyz with --ready; not ready gives exit status 4).\n"},
    {"metrics", run_metrics, 0, 0, metrics_opts, "[--grep TEXT]", "Prometheus metrics",
     "Prints /metrics; --grep keeps the sample lines containing TEXT.\n"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char global_help[] =
    "Global options (anywhere on the command line):\n"
    "  --url URL            elbod's address (default $ELBOD_URL, else " DEFAULT_URL ")\n"
    "  --token TOKEN        bearer token sent with every request (default $ELBOD_TOKEN)\n"
    "  --json               print the server's JSON as is (machine output; on an error\n"
    "                       status the server's error object, with the message on stderr)\n"
    "  --timeout SECONDS    request timeout (default 60; 0: none)\n"
    "  -h, --help           help; elboctl COMMAND --help for a command's\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  usage error (unknown command or option, bad option value)\n"
    "  2  connection error (elbod not reachable, timeout)\n"
    "  3  the server rejected the request (HTTP 4xx: unknown agent, invalid settings, ...)\n"
    "  4  server error (HTTP 5xx, not ready) or an answer that is not what the API promises\n"
    "  5  bad input file (missing, unreadable, malformed, wrong dimensions) or an output file\n"
    "     that cannot be written\n";

static void print_help(FILE *f)
{
    fprintf(f, "elboctl: the command-line client of elbod\n\n"
               "Usage: elboctl [global options] COMMAND [options] [arguments]\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n%s", global_help);
}

static void print_command_help(const command *c)
{
    printf("Usage: elboctl %s %s\n\n%s\n%s", c->name, c->usage, c->help, global_help);
}

/* Whether argv[i] is a global option; consumes it (and its value) into the globals. -1 when its
 * value is missing. */
typedef struct globals {
    const char *url, *token, *timeout;
    int json, help;
} globals;

static int take_global(int argc, char **argv, int *i, globals *g)
{
    static const char *const valued[] = {"--url", "--token", "--timeout"};
    const char *a = argv[*i];
    if (strcmp(a, "--json") == 0) {
        g->json = 1;
        return 1;
    }
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(valued[k]);
        const char *v = NULL;
        if (strcmp(a, valued[k]) == 0) {
            if (*i + 1 >= argc)
                return -1;
            v = argv[++*i];
        } else if (strncmp(a, valued[k], n) == 0 && a[n] == '=') {
            v = a + n + 1;
        } else {
            continue;
        }
        if (k == 0)
            g->url = v;
        else if (k == 1)
            g->token = v;
        else
            g->timeout = v;
        return 1;
    }
    return 0;
}

/* Parses a command's arguments against its option table. */
static int parse_command(const ctx *x, const command *c, int n, char **args, cmdline *cl)
{
    memset(cl, 0, sizeof *cl);
    int only_pos = 0;
    for (int i = 0; i < n; i++) {
        const char *a = args[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (cl->npos >= MAX_POS)
                return usage_error(x, "too many arguments");
            cl->pos[cl->npos++] = a;
            continue;
        }
        const char *nm = a + 2, *eq = strchr(nm, '=');
        size_t nl = eq ? (size_t)(eq - nm) : strlen(nm);
        const opt_spec *o = c->opts;
        while (o->name && (strlen(o->name) != nl || strncmp(o->name, nm, nl) != 0))
            o++;
        if (!o->name)
            return usage_error(x, "unknown option '%.*s'", (int)(nl + 2), a);
        const char *v = NULL;
        if (o->takes_value) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < n)
                v = args[++i];
            else
                return usage_error(x, "--%s needs a value", o->name);
        } else if (eq) {
            return usage_error(x, "--%s takes no value", o->name);
        }
        if (cl->nopts >= MAX_OPTS)
            return usage_error(x, "too many options");
        cl->names[cl->nopts] = o->name;
        cl->vals[cl->nopts++] = v;
    }
    if (cl->npos < c->min_pos || cl->npos > c->max_pos)
        return usage_error(x, "%s arguments; usage: elboctl %s %s",
                           cl->npos < c->min_pos ? "missing" : "too many", c->name, c->usage);
    return 0;
}

int main(int argc, char **argv)
{
    globals g = {0};
    g.url = getenv("ELBOD_URL");
    g.token = getenv("ELBOD_TOKEN");
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest)
        return EXIT_SERVER;
    int nrest = 0;
    ctx x = {0};
    for (int i = 1; i < argc; i++) {
        int t = take_global(argc, argv, &i, &g);
        if (t < 0) {
            free(rest);
            return usage_error(&x, "%s needs a value", argv[i]);
        }
        if (t == 0)
            rest[nrest++] = argv[i];
    }
    const command *c = NULL;
    int ex = EXIT_OK;
    if (nrest == 0 || strcmp(rest[0], "--help") == 0 || strcmp(rest[0], "-h") == 0 ||
        strcmp(rest[0], "help") == 0) {
        if (nrest >= 2 && strcmp(rest[0], "help") == 0) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i].name, rest[1]) == 0)
                    c = &commands[i];
            if (c) {
                print_command_help(c);
                free(rest);
                return EXIT_OK;
            }
        }
        print_help(nrest == 0 ? stderr : stdout);
        free(rest);
        return nrest == 0 ? EXIT_USAGE : EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, rest[0]) == 0)
            c = &commands[i];
    if (!c) {
        ex = usage_error(&x, "unknown command '%s'", rest[0]);
        free(rest);
        return ex;
    }
    x.cmd = c->name;
    for (int i = 1; i < nrest; i++)
        if (strcmp(rest[i], "--help") == 0 || strcmp(rest[i], "-h") == 0) {
            print_command_help(c);
            free(rest);
            return EXIT_OK;
        }
    cmdline cl;
    if (parse_command(&x, c, nrest - 1, rest + 1, &cl)) {
        free(rest);
        return EXIT_USAGE;
    }
    elbo_client_options opt = ELBO_CLIENT_OPTIONS_DEFAULT;
    opt.token = g.token;
    if (g.timeout) {
        double s = 0;
        if (parse_double(g.timeout, &s) || s < 0 || s > 1e6) {
            free(rest);
            return usage_error(&x, "--timeout wants seconds, not '%s'", g.timeout);
        }
        opt.timeout_ms = (long)(s * 1000.0 + 0.5);
        if (s > 0 && opt.timeout_ms == 0)
            opt.timeout_ms = 1;
    }
    const char *url = g.url && *g.url ? g.url : DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        free(rest);
        return usage_error(&x, "--url wants http://host:port, not '%s'", url);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    x.client = elbo_client_new(url, &opt);
    x.json = g.json;
    if (!x.client) {
        errorf(&x, "cannot set up a client for %s (a line break in the token?)", url);
        ex = EXIT_USAGE;
    } else {
        ex = c->run(&x, &cl);
    }
    elbo_client_free(x.client);
    curl_global_cleanup();
    free(rest);
    if (fflush(stdout) && ex == EXIT_OK)
        ex = EXIT_INPUT;
    return ex;
}
