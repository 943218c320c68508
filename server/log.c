/* log: structured log lines (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static log_level min_level = LOG_INFO;
static int json_lines;
static const char *const names[] = {"debug", "info", "warn", "error"};

int log_level_from_name(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_setup(log_level level, int json)
{
    min_level = level;
    json_lines = json;
}

void log_msg(log_level level, const char *event, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[1024], line[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    int n;
    if (json_lines) {
        /* The message's key=value pairs go in one "msg" string (quotes escaped). */
        char esc[1100];
        size_t j = 0;
        for (size_t i = 0; msg[i] && j + 2 < sizeof esc; i++) {
            if (msg[i] == '"' || msg[i] == '\\')
                esc[j++] = '\\';
            esc[j++] = msg[i] == '\n' ? ' ' : msg[i];
        }
        esc[j] = '\0';
        n = snprintf(line, sizeof line,
                     "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":\"%s\",\"msg\":\"%s\"}\n",
                     when, ts.tv_nsec / 1000000, names[level], event, esc);
    } else {
        n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s event=%s %s\n", when,
                     ts.tv_nsec / 1000000, names[level], event, msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
