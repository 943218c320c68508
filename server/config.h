/* config: the daemon's settings, from one table that drives flags, the config file, environment
 * variables, validation and `elbod --help`.
 *
 * Precedence (DESIGN section 4): command-line flags, then the config file, then environment
 * variables, then the built-in defaults. Flag --data-dir, file key data_dir and variable
 * ELBOD_DATA_DIR name the same setting.
 */
#ifndef ELBO_CONFIG_H
#define ELBO_CONFIG_H

#include <stdio.h>

typedef struct daemon_config {
    char host[256];
    int port;
    char data_dir[1024];
    char config_path[1024];
    char log_level[16];
    char log_format[16];
    int http_threads;
    int workers;
    int queue_limit;
    long max_body_bytes;
    long max_checkpoint_bytes;
    int max_connections;
    int max_connections_per_ip; /* 0: no limit */
    int max_agent_inflight;     /* 0: no limit */
    int max_agents;
    int max_sessions;
    int session_idle_s;
    int max_episodes_per_request;
    long max_steps_per_request;
    char sync[16];
    char keys_file[1024];
    int allow_no_auth;
    char tls_cert[1024];
    char tls_key[1024];
} daemon_config;

/* Fills defaults, then reads the environment, the config file (--config or ELBOD_CONFIG) and the
 * flags. Returns 0 to run, 1 when --help or --version was printed (exit 0), -1 on an error
 * (printed to `err`, exit 2). */
int config_load(daemon_config *c, int argc, char **argv, FILE *out, FILE *err);

/* Prints the --help text (every flag, file key and variable with its default). */
void config_print_help(FILE *out);

/* Prints the effective settings as a config file. */
void config_print(const daemon_config *c, FILE *out);

#endif
