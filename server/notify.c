/* notify: sd_notify(3) for systemd's Type=notify services (see notify.h). */
#include "notify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static uint64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s && *s;
}

static void send_state(const char *state, const char *status)
{
    if (!enabled())
        return;
    char msg[512];
    if (status && *status)
        snprintf(msg, sizeof msg, "%s\nSTATUS=%s", state, status);
    else
        snprintf(msg, sizeof msg, "%s", state);
    sd_notify(0, msg);
}

void notify_ready(const char *status)
{
    send_state("READY=1", status);
}

void notify_reloading(void)
{
    char msg[64];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)now_usec());
    send_state(msg, "reloading the configuration");
}

void notify_stopping(const char *status)
{
    send_state("STOPPING=1", status);
}

/* Only the main thread calls this (see notify.h): no locking. */
void notify_watchdog(void)
{
    static int checked, wanted;
    if (!enabled())
        return;
    if (!checked) {
        checked = 1;
        uint64_t usec = 0;
        wanted = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
    }
    if (wanted)
        sd_notify(0, "WATCHDOG=1");
}
