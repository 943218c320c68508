/* elbod: the daemon's entry point - settings, store, agents, HTTP, signals, clean shutdown.
 *
 * Signals are blocked in every thread and taken synchronously here (sigtimedwait), so that a
 * SIGTERM runs the shutdown on this thread: stop accepting, finish in-flight requests,
 * checkpoint every agent, close the store, exit 0. Threads that libraries started before main
 * (OpenBLAS's) do not block them: one that the kernel hands such a signal passes it on to this
 * thread (forward_signal), so that it is never fatal, even when this thread is not waiting for
 * it (a second SIGTERM during the shutdown used to kill elbod before its checkpoints).
 *
 * The same loop closes idle sessions and, once a minute, hands the heap's free pages back to the
 * kernel (malloc_trim): glibc keeps what each thread's arena freed, so the resident size
 * otherwise creeps up for minutes to the sum of the arenas' high-water marks and stays there
 * (`make bench-soak`: malloc held 79 MB for 37 MB in use, VmRSS 87 MB; with the trim VmRSS is
 * about 52 MB and flat).
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>

#include "agents.h"
#include "api/api.h"
#include "auth.h"
#include "config.h"
#include "core/tensor.h"
#include "core/vmath.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "store.h"

static pthread_t main_thread;

/* Runs in a thread that does not block SIGTERM, SIGINT and SIGHUP; the main thread blocks them,
 * so the signal waits there for sigtimedwait (or is dropped once the shutdown has begun).
 * pthread_kill is async-signal-safe. */
static void forward_signal(int sig)
{
    pthread_kill(main_thread, sig);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--hash-key") == 0)
        return auth_hash_key_main(stdin, stdout, stderr);
    daemon_config cfg;
    int rc = config_load(&cfg, argc, argv, stdout, stderr);
    if (rc)
        return rc > 0 ? 0 : 2;
    log_setup((log_level)log_level_from_name(cfg.log_level), strcmp(cfg.log_format, "json") == 0);
    api_init();

    /* API keys (README, Authentication): required beyond loopback unless explicitly waived. */
    char err[512];
    if (!cfg.keys_file[0] && !auth_host_is_loopback(cfg.host)) {
        if (!cfg.allow_no_auth) {
            log_msg(LOG_ERROR, "api_keys_required",
                    "host=%s reason=\"refusing to listen on a non-loopback address without API "
                    "keys: set keys_file (see README, Authentication), or allow_no_auth to serve "
                    "without them\"",
                    cfg.host);
            return 2;
        }
        log_msg(LOG_WARN, "no_api_keys",
                "host=%s reason=\"allow_no_auth: every client that reaches this address may use "
                "every route\"",
                cfg.host);
    }
    if (auth_start(cfg.keys_file, err, sizeof err)) {
        log_msg(LOG_ERROR, "keys_file_invalid", "reason=\"%s\"", err);
        return 2;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    main_thread = pthread_self();
    struct sigaction fwd;
    memset(&fwd, 0, sizeof fwd);
    fwd.sa_handler = forward_signal;
    sigemptyset(&fwd.sa_mask);
    fwd.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGINT, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);
    signal(SIGPIPE, SIG_IGN);
    vm_thread_init();
    tensor_set_blas_threads(1);

    store_t *store = store_open(cfg.data_dir, strcmp(cfg.sync, "full") == 0, err, sizeof err);
    if (!store) {
        log_msg(LOG_ERROR, "store_open_failed", "data_dir=%s reason=\"%s\"", cfg.data_dir, err);
        return 1;
    }
    if (agents_start(&cfg, store)) {
        store_close(store);
        return 1;
    }
    int port = 0;
    if (http_start(&cfg, &port)) {
        agents_stop();
        store_close(store);
        return 1;
    }
    agents_set_ready(1);
    log_msg(LOG_INFO, "listening", "addr=%s port=%d data_dir=%s version=%s pid=%ld", cfg.host, port,
            cfg.data_dir, ELBOD_VERSION, (long)getpid());
    char status[400];
    snprintf(status, sizeof status, "serving on %s port %d", cfg.host, port);
    notify_ready(status);

    for (int tick = 1;; tick++) {
        notify_watchdog();
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig < 0) {
            if (errno == EAGAIN)
                agents_expire_sessions();
#ifdef __GLIBC__
            if (tick % 60 == 0)
                malloc_trim(0);
#endif
            continue;
        }
        if (sig == SIGHUP) {
            notify_reloading();
            daemon_config fresh;
            FILE *devnull = fopen("/dev/null", "w");
            if (devnull && config_load(&fresh, argc, argv, devnull, devnull) == 0) {
                log_setup((log_level)log_level_from_name(fresh.log_level),
                          strcmp(fresh.log_format, "json") == 0);
                log_msg(LOG_INFO, "reloaded", "log_level=%s", fresh.log_level);
                char why[512];
                if (auth_reload(fresh.keys_file, why, sizeof why) < 0)
                    log_msg(LOG_WARN, "keys_reload_failed", "reason=\"%s; kept the old keys\"",
                            why);
            } else {
                log_msg(LOG_WARN, "reload_failed", "reason=\"config invalid; kept the old one\"");
            }
            if (devnull)
                fclose(devnull);
            notify_ready(status);
            continue;
        }
        log_msg(LOG_INFO, "shutting_down", "signal=%d", sig);
        notify_stopping("finishing requests, checkpointing agents");
        break;
    }
    agents_set_ready(0);
    http_stop(30.0);
    agents_stop();
    store_close(store);
    auth_stop();
    log_msg(LOG_INFO, "stopped", "status=clean");
    return 0;
}
