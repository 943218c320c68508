/* json: strict decoding helpers and small encoders (see json.h). */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void path(char *out, size_t n, const char *where, const char *key)
{
    if (where && *where)
        snprintf(out, n, "%s.%s", where, key);
    else
        snprintf(out, n, "%s", key);
}

int jd_check_keys(json_t *obj, const char *const *allowed, const char *where, svc_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        (void)v;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0) {
                ok = 1;
                break;
            }
        if (!ok) {
            char f[64];
            path(f, sizeof f, where, key);
            return svc_fail(e, 422, "unknown_field", f, "unknown field '%s'", f);
        }
    }
    return 0;
}

/* The value at key, or NULL (with an error when required). */
static json_t *get(json_t *obj, const char *key, const char *where, int required, int *rc,
                   svc_error *e)
{
    json_t *v = json_object_get(obj, key);
    *rc = 0;
    if (!v || json_is_null(v)) {
        if (required) {
            char f[64];
            path(f, sizeof f, where, key);
            *rc = svc_fail(e, 422, "missing_field", f, "missing required field '%s'", f);
        }
        return NULL;
    }
    return v;
}

int jd_double(json_t *obj, const char *key, const char *where, int required, double lo, double hi,
              double *out, svc_error *e)
{
    int rc;
    json_t *v = get(obj, key, where, required, &rc, e);
    if (!v)
        return rc;
    /* The field's path is formatted only for an error (the checks run on every request). */
    char f[64];
    if (!json_is_number(v)) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be a number", f);
    }
    double d = json_number_value(v);
    if (!isfinite(d)) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "non_finite_number", f, "'%s' must be finite", f);
    }
    if (d < lo || d > hi) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "out_of_range", f, "'%s' must be between %g and %g", f, lo, hi);
    }
    *out = d;
    return 1;
}

int jd_float(json_t *obj, const char *key, const char *where, int required, double lo, double hi,
             float *out, svc_error *e)
{
    double d;
    int rc = jd_double(obj, key, where, required, lo, hi, &d, e);
    if (rc == 1) {
        if (!isfinite((float)d)) {
            char f[64];
            path(f, sizeof f, where, key);
            return svc_fail(e, 422, "non_finite_number", f, "'%s' does not fit a float", f);
        }
        *out = (float)d;
    }
    return rc;
}

int jd_int(json_t *obj, const char *key, const char *where, int required, long lo, long hi,
           int *out, svc_error *e)
{
    int rc;
    json_t *v = get(obj, key, where, required, &rc, e);
    if (!v)
        return rc;
    char f[64];
    if (!json_is_integer(v)) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be an integer", f);
    }
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "out_of_range", f, "'%s' must be between %ld and %ld", f, lo, hi);
    }
    *out = (int)i;
    return 1;
}

int jd_bool(json_t *obj, const char *key, const char *where, int required, int *out, svc_error *e)
{
    int rc;
    json_t *v = get(obj, key, where, required, &rc, e);
    if (!v)
        return rc;
    if (!json_is_boolean(v)) {
        char f[64];
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be true or false", f);
    }
    *out = json_is_true(v);
    return 1;
}

int jd_string(json_t *obj, const char *key, const char *where, int required, size_t max_len,
              const char **out, svc_error *e)
{
    int rc;
    json_t *v = get(obj, key, where, required, &rc, e);
    if (!v)
        return rc;
    char f[64];
    if (!json_is_string(v)) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be a string", f);
    }
    if (json_string_length(v) > max_len) {
        path(f, sizeof f, where, key);
        return svc_fail(e, 422, "out_of_range", f, "'%s' is longer than %zu characters", f,
                        max_len);
    }
    *out = json_string_value(v);
    return 1;
}

int jd_float_array(json_t *arr, const char *field, float *out, int n, int max, int *got,
                   svc_error *e)
{
    if (!json_is_array(arr))
        return svc_fail(e, 422, "invalid_type", field, "'%s' must be an array of numbers", field);
    size_t len = json_array_size(arr);
    if (n >= 0 && len != (size_t)n)
        return svc_fail(e, 422, "dimension_mismatch", field, "'%s' has %zu values, expected %d",
                        field, len, n);
    if (n < 0 && len > (size_t)max)
        return svc_fail(e, 422, "dimension_mismatch", field,
                        "'%s' has %zu values, at most %d allowed", field, len, max);
    for (size_t i = 0; i < len; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_number(v))
            return svc_fail(e, 422, "invalid_type", field, "'%s[%zu]' must be a number", field, i);
        double d = json_number_value(v);
        float f = (float)d;
        if (!isfinite(d) || !isfinite(f))
            return svc_fail(e, 422, "non_finite_number", field,
                            "'%s[%zu]' must be a finite number within float range", field, i);
        out[i] = f;
    }
    if (got)
        *got = (int)len;
    return 0;
}

json_t *je_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *je_floats(const float *x, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, je_real(x[i]));
    return a;
}

json_t *je_matrix(const float *x, int rows, int cols)
{
    json_t *a = json_array();
    for (int r = 0; r < rows; r++)
        json_array_append_new(a, je_floats(x + (size_t)r * cols, cols));
    return a;
}

/* ---- direct writer --------------------------------------------------------------------------- */

static int jw_reserve(jw *w, size_t n)
{
    if (w->failed)
        return -1;
    if (w->len + n + 1 <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n + 1)
        cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p) {
        w->failed = 1;
        return -1;
    }
    w->p = p;
    w->cap = cap;
    return 0;
}

void jw_raw(jw *w, const char *s, size_t n)
{
    if (jw_reserve(w, n))
        return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

void jw_str(jw *w, const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f || s[n] == '"' ||
            s[n] == '\\') {
            w->failed = 1; /* escapes and UTF-8 checks: left to Jansson */
            return;
        }
    if (jw_reserve(w, n + 2))
        return;
    w->p[w->len++] = '"';
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len++] = '"';
    w->p[w->len] = '\0';
}

/* Jansson's jsonp_dtostr (the snprintf version, with precision 7) and its real dump. */
void jw_real(jw *w, double v)
{
    if (!isfinite(v)) {
        jw_raw(w, "null", 4);
        return;
    }
    if (v == 0.0) { /* plan_ms of every policy act: "%.7g" gives "0" or "-0" */
        if (signbit(v))
            JW_LIT(w, "-0.0");
        else
            JW_LIT(w, "0.0");
        return;
    }
    char buf[100];
    int n = snprintf(buf, sizeof buf, "%.7g", v);
    if (n < 0 || (size_t)n >= sizeof buf - 3) {
        w->failed = 1;
        return;
    }
    size_t len = (size_t)n;
    /* %g writes digits, '-', '+', 'e' and the locale's decimal point, which Jansson turns into
     * '.' (elbod never changes the "C" locale; this keeps the same bytes if it did). */
    for (size_t i = 0; i < len; i++)
        if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '-' || buf[i] == '+' || buf[i] == 'e' ||
              buf[i] == '.')) {
            buf[i] = '.';
            break;
        }
    if (!memchr(buf, '.', len) && !memchr(buf, 'e', len)) {
        buf[len++] = '.';
        buf[len++] = '0';
        buf[len] = '\0';
    }
    /* No '+' and no leading zeros in the exponent. */
    char *start = memchr(buf, 'e', len);
    if (start) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf));
            len -= (size_t)(end - start);
        }
    }
    jw_raw(w, buf, len);
}

void jw_int(jw *w, long long v)
{
    char buf[24];
    char *e = buf + sizeof buf, *p = e;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    jw_raw(w, p, (size_t)(e - p));
}

void jw_floats(jw *w, const float *x, int n)
{
    jw_raw(w, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            jw_raw(w, ",", 1);
        jw_real(w, x[i]);
    }
    jw_raw(w, "]", 1);
}

char *jw_finish(jw *w)
{
    if (w->failed || jw_reserve(w, 0)) {
        free(w->p);
        *w = (jw){0};
        return NULL;
    }
    char *t = w->p;
    *w = (jw){0};
    return t;
}
