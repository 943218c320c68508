/* config: table-driven settings (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "log.h"

typedef enum ctype { C_STR, C_INT, C_LONG, C_BOOL } ctype;

typedef struct centry {
    const char *name; /* file key; the flag is --name with '_' as '-', the variable ELBOD_NAME */
    ctype type;
    size_t offset, size;
    const char *def;
    long lo, hi;
    const char *help;
} centry;

#define S(n, d, h)                                                                         \
    {                                                                                      \
#n, C_STR, offsetof(daemon_config, n), sizeof(((daemon_config *)0)->n), d, 0, 0, h \
    }
#define I(n, d, lo, hi, h)                                               \
    {                                                                    \
#n, C_INT, offsetof(daemon_config, n), sizeof(int), d, lo, hi, h \
    }
#define L(n, d, lo, hi, h)                                                 \
    {                                                                      \
#n, C_LONG, offsetof(daemon_config, n), sizeof(long), d, lo, hi, h \
    }
#define B(n, d, h)                                                      \
    {                                                                   \
#n, C_BOOL, offsetof(daemon_config, n), sizeof(int), d, 0, 1, h \
    }

static const centry table[] = {
    S(host, "127.0.0.1", "address to listen on (a non-loopback address needs API keys)"),
    I(port, "8080", 0, 65535, "TCP port (0 picks a free one and logs it)"),
    S(data_dir, "elbod-data", "directory of the store (created if missing)"),
    S(config_path, "", "config file of `key = value` lines (flag --config, ELBOD_CONFIG)"),
    S(log_level, "info", "debug, info, warn or error"),
    S(log_format, "text", "text (key=value) or json"),
    I(http_threads, "2", 1, 64, "threads polling HTTP connections"),
    I(workers, "4", 1, 256, "threads that plan and wait on the store"),
    I(queue_limit, "256", 1, 100000, "requests waiting for a worker before 503"),
    L(max_body_bytes, "8388608", 1024, 1073741824, "largest request body (413 above)"),
    L(max_checkpoint_bytes, "268435456", 1024, 4294967296,
      "largest checkpoint import (PUT .../checkpoint)"),
    I(max_connections, "1024", 1, 100000,
      "open connections at most (beyond it, new ones wait in the listen backlog)"),
    I(max_connections_per_ip, "0", 0, 100000,
      "open connections from one client address at most (beyond it, new ones are closed at "
      "once); 0: no limit"),
    I(max_agent_inflight, "32", 0, 100000,
      "requests of one agent that may wait for or hold a worker (plans, plan-mode acts, "
      "submissions) before 429; 0: no limit"),
    I(max_agents, "64", 1, 100000, "agents at most"),
    I(max_sessions, "1024", 1, 1000000, "open sessions per agent at most"),
    I(session_idle_s, "900", 1, 604800, "seconds after which an idle session is closed"),
    I(max_episodes_per_request, "1000", 1, 1000000, "episodes or transitions per submission"),
    L(max_steps_per_request, "200000", 1, 100000000, "transitions per submission"),
    S(sync, "full",
      "full: fsync every commit; normal: WAL's default (faster, may lose the last "
      "commits on power loss, never on a crash of elbod)"),
    S(keys_file, "", "API keys file (see README, Authentication)"),
    B(allow_no_auth, "0", "serve a non-loopback address without API keys"),
    S(tls_cert, "", "TLS certificate chain (PEM file): serve HTTPS (with tls_key)"),
    S(tls_key, "", "TLS private key (PEM file, unencrypted) of tls_cert"),
};
#undef S
#undef I
#undef L
#undef B

#define NENTRIES (sizeof table / sizeof table[0])

static int set_value(daemon_config *c, const centry *e, const char *v, const char *origin,
                     FILE *err)
{
    char *p = (char *)c + e->offset;
    switch (e->type) {
    case C_STR:
        if (strlen(v) >= e->size) {
            fprintf(err, "elbod: %s: value for '%s' is too long\n", origin, e->name);
            return -1;
        }
        strcpy(p, v);
        return 0;
    case C_INT:
    case C_LONG:
    case C_BOOL: {
        long x;
        if (e->type == C_BOOL && (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))) {
            x = 1;
        } else if (e->type == C_BOOL &&
                   (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))) {
            x = 0;
        } else {
            char *end;
            errno = 0;
            x = strtol(v, &end, 10);
            if (errno || end == v || *end) {
                fprintf(err, "elbod: %s: '%s' needs an integer, got '%s'\n", origin, e->name, v);
                return -1;
            }
        }
        if (x < e->lo || x > e->hi) {
            fprintf(err, "elbod: %s: '%s' must be between %ld and %ld\n", origin, e->name, e->lo,
                    e->hi);
            return -1;
        }
        if (e->type == C_LONG)
            *(long *)p = x;
        else
            *(int *)p = (int)x;
        return 0;
    }
    }
    return -1;
}

static const centry *find(const char *name)
{
    for (size_t i = 0; i < NENTRIES; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

static void env_name(char *out, size_t n, const char *name)
{
    snprintf(out, n, "ELBOD_%s", strcmp(name, "config_path") == 0 ? "CONFIG" : name);
    for (char *q = out; *q; q++)
        *q = (char)toupper((unsigned char)*q);
}

static void flag_name(char *out, size_t n, const char *name)
{
    snprintf(out, n, "--%s", strcmp(name, "config_path") == 0 ? "config" : name);
    for (char *q = out + 2; *q; q++)
        if (*q == '_')
            *q = '-';
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int read_file(daemon_config *c, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "elbod: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        char origin[1200];
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        if (!eq) {
            fprintf(err, "elbod: %s: expected `key = value`\n", origin);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        const centry *e = find(key);
        if (!e || strcmp(key, "config_path") == 0) {
            fprintf(err, "elbod: %s: unknown key '%s' (see elbod --help)\n", origin, key);
            rc = -1;
            break;
        }
        if (set_value(c, e, val, origin, err)) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

void config_print_help(FILE *out)
{
    fprintf(out,
            "elbod %s - a daemon that hosts model-based reinforcement-learning agents\n\n"
            "Usage: elbod [options]\n\n"
            "Every setting can be given as a flag, as a `key = value` line in the config file,\n"
            "or as an environment variable. Precedence: flags, then the config file, then the\n"
            "environment, then the defaults shown.\n\n",
            ELBOD_VERSION);
    for (size_t i = 0; i < NENTRIES; i++) {
        char flag[64], env[64];
        flag_name(flag, sizeof flag, table[i].name);
        env_name(env, sizeof env, table[i].name);
        fprintf(out, "  %s <%s>\n      %s\n      file key: %s   env: %s   default: %s\n", flag,
                table[i].type == C_STR    ? "text"
                : table[i].type == C_BOOL ? "bool"
                                          : "n",
                table[i].help, strcmp(table[i].name, "config_path") == 0 ? "(none)" : table[i].name,
                env, table[i].def[0] ? table[i].def : "(empty)");
    }
    fprintf(out, "  --print-config\n      print the effective settings and exit\n"
                 "  --hash-key\n      print the keys-file hash of a key read from stdin\n"
                 "  --help, --version\n\n"
                 "Signals: SIGTERM/SIGINT stop cleanly (finish requests, checkpoint, exit 0);\n"
                 "SIGHUP reloads the config file's log level and the keys file.\n");
}

void config_print(const daemon_config *c, FILE *out)
{
    for (size_t i = 0; i < NENTRIES; i++) {
        const centry *e = &table[i];
        if (strcmp(e->name, "config_path") == 0)
            continue;
        const char *p = (const char *)c + e->offset;
        if (e->type == C_STR)
            fprintf(out, "%s = %s\n", e->name, p);
        else if (e->type == C_LONG)
            fprintf(out, "%s = %ld\n", e->name, *(const long *)p);
        else
            fprintf(out, "%s = %d\n", e->name, *(const int *)p);
    }
}

int config_load(daemon_config *c, int argc, char **argv, FILE *out, FILE *err)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NENTRIES; i++)
        if (set_value(c, &table[i], table[i].def, "default", err))
            return -1;
    /* Environment, lowest of the explicit sources. */
    for (size_t i = 0; i < NENTRIES; i++) {
        char env[64];
        env_name(env, sizeof env, table[i].name);
        const char *v = getenv(env);
        if (v && set_value(c, &table[i], v, env, err))
            return -1;
    }
    /* The config file named by a flag wins over the one named by the environment. */
    int print = 0;
    const char *cfg = c->config_path[0] ? c->config_path : NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_print_help(out);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            fprintf(out, "elbod %s\n", ELBOD_VERSION);
            return 1;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            cfg = argv[i] + 9;
    }
    if (cfg) {
        char path[1024];
        snprintf(path, sizeof path, "%s", cfg);
        if (read_file(c, path, err))
            return -1;
        snprintf(c->config_path, sizeof c->config_path, "%s", path);
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--print-config")) {
            print = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "elbod: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        char key[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof key) {
            fprintf(err, "elbod: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        memcpy(key, a + 2, kl);
        key[kl] = '\0';
        for (char *q = key; *q; q++)
            if (*q == '-')
                *q = '_';
        if (!strcmp(key, "config"))
            snprintf(key, sizeof key, "config_path");
        const centry *e = find(key);
        if (!e) {
            fprintf(err, "elbod: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (eq) {
            val = eq + 1;
        } else if (e->type == C_BOOL) {
            val = "1";
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(err, "elbod: option '%s' needs a value\n", a);
            return -1;
        }
        if (!strcmp(key, "config_path"))
            continue; /* already read */
        if (set_value(c, e, val, a, err))
            return -1;
    }
    if (log_level_from_name(c->log_level) < 0) {
        fprintf(err, "elbod: log_level must be debug, info, warn or error\n");
        return -1;
    }
    if (strcmp(c->log_format, "text") && strcmp(c->log_format, "json")) {
        fprintf(err, "elbod: log_format must be text or json\n");
        return -1;
    }
    if (strcmp(c->sync, "full") && strcmp(c->sync, "normal")) {
        fprintf(err, "elbod: sync must be full or normal\n");
        return -1;
    }
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        fprintf(err, "elbod: tls_cert and tls_key come together (both or neither)\n");
        return -1;
    }
    if (print) {
        config_print(c, out);
        return 1;
    }
    return 0;
}
