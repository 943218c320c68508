/* json: strict decoding helpers and small encoders (see json.h). */
#include "json.h"

#include <math.h>
#include <stdio.h>
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
    char f[64];
    path(f, sizeof f, where, key);
    if (!json_is_number(v))
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be a number", f);
    double d = json_number_value(v);
    if (!isfinite(d))
        return svc_fail(e, 422, "non_finite_number", f, "'%s' must be finite", f);
    if (d < lo || d > hi)
        return svc_fail(e, 422, "out_of_range", f, "'%s' must be between %g and %g", f, lo, hi);
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
    path(f, sizeof f, where, key);
    if (!json_is_integer(v))
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be an integer", f);
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return svc_fail(e, 422, "out_of_range", f, "'%s' must be between %ld and %ld", f, lo, hi);
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
    path(f, sizeof f, where, key);
    if (!json_is_string(v))
        return svc_fail(e, 422, "invalid_type", f, "'%s' must be a string", f);
    if (json_string_length(v) > max_len)
        return svc_fail(e, 422, "out_of_range", f, "'%s' is longer than %zu characters", f,
                        max_len);
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
