/* log: structured logs to stderr, one line per event: `ts=... level=... event=... key=value...`
 * (text) or one JSON object per line (json). Thread-safe; a line is written with one write(2).
 * Nothing secret is ever passed here (API keys are not logged). */
#ifndef ELBO_LOG_H
#define ELBO_LOG_H

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Level names "debug", "info", "warn", "error"; -1 for an unknown name. */
int log_level_from_name(const char *name);
void log_setup(log_level min_level, int json);
/* Logs `event` with a printf-style message formatted as key=value pairs by the caller, e.g.
 * log_msg(LOG_INFO, "listening", "addr=%s port=%d", host, port). */
void log_msg(log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
