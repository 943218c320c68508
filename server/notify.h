/* notify: readiness and liveness for systemd (Type=notify units, systemd/elbod.service), by
 * libsystemd's sd_notify(3). Every call is a no-op when NOTIFY_SOCKET is unset, i.e. when elbod
 * was not started by systemd as a notify service (a shell, a container, the tests).
 *
 * The daemon's main thread sends READY=1 once it serves, RELOADING=1 then READY=1 around a
 * SIGHUP reload, STOPPING=1 when it starts shutting down, and WATCHDOG=1 from its main loop when
 * the unit sets WatchdogSec= (the loop wakes every second: WatchdogSec= must be 3 s or more). */
#ifndef ELBO_NOTIFY_H
#define ELBO_NOTIFY_H

/* READY=1, with `status` (may be NULL) shown by `systemctl status`. */
void notify_ready(const char *status);

/* RELOADING=1 (with the MONOTONIC_USEC= that systemd 253+ asks for); follow with notify_ready. */
void notify_reloading(void);

/* STOPPING=1, with `status` (may be NULL). */
void notify_stopping(const char *status);

/* WATCHDOG=1 if the service manager asks for pings (WatchdogSec=, sd_watchdog_enabled(3));
 * otherwise nothing. The main loop calls it on every wake-up, at least once a second. */
void notify_watchdog(void);

#endif
