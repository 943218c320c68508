/* json: strict decoding helpers over Jansson that report errors as svc_error (status 422 with
 * the offending field's path, e.g. "episodes[2].rewards[7]"), and small encoding helpers. */
#ifndef ELBO_JSON_H
#define ELBO_JSON_H

#include <jansson.h>

#include "service.h"

/* Every key of obj must be in allowed (NULL-terminated); otherwise 422 unknown_field. `where`
 * prefixes the field path ("" at the top level). */
int jd_check_keys(json_t *obj, const char *const *allowed, const char *where, svc_error *e);

/* Typed getters. A missing key is an error only when required (422 missing_field); a wrong type
 * is 422 invalid_type; a number out of [lo, hi] is 422 out_of_range. Return 1 when the key was
 * present and read, 0 when absent (and not required), -1 on error. */
int jd_double(json_t *obj, const char *key, const char *where, int required, double lo, double hi,
              double *out, svc_error *e);
int jd_float(json_t *obj, const char *key, const char *where, int required, double lo, double hi,
             float *out, svc_error *e);
int jd_int(json_t *obj, const char *key, const char *where, int required, long lo, long hi,
           int *out, svc_error *e);
int jd_bool(json_t *obj, const char *key, const char *where, int required, int *out, svc_error *e);
int jd_string(json_t *obj, const char *key, const char *where, int required, size_t max_len,
              const char **out, svc_error *e);

/* Reads a JSON array of exactly n finite numbers (n < 0: any length up to max, count in *got)
 * into out. Errors: invalid_type, dimension_mismatch, non_finite_number (a value that does not
 * fit a float). `field` is the array's path. */
int jd_float_array(json_t *arr, const char *field, float *out, int n, int max, int *got,
                   svc_error *e);

/* Encoding: a JSON array of n floats (non-finite values become null). New reference. */
json_t *je_floats(const float *x, int n);
/* A JSON array of rows arrays of cols floats. New reference. */
json_t *je_matrix(const float *x, int rows, int cols);
/* A real that is null when not finite. New reference. */
json_t *je_real(double v);

/* ---- a direct writer for the hottest responses (act) --------------------------------------
 *
 * Writes the bytes json_dumps(..., JSON_COMPACT | JSON_REAL_PRECISION(7)) writes for the same
 * values, without building Jansson values (allocations, a hash table per object) first. */
typedef struct jw {
    char *p;
    size_t len, cap;
    int failed; /* out of memory, or a string this writer does not handle: use Jansson */
} jw;

/* Appends n bytes as they are; JW_LIT a string literal. */
void jw_raw(jw *w, const char *s, size_t n);
#define JW_LIT(w, lit) jw_raw((w), "" lit, sizeof(lit) - 1)
/* A string of printable ASCII (anything else fails the writer; Jansson then escapes it). */
void jw_str(jw *w, const char *s);
/* A real as Jansson writes it with precision 7 (null when not finite, as je_real). */
void jw_real(jw *w, double v);
/* An integer (json_int_t). */
void jw_int(jw *w, long long v);
/* An array of n floats, each as jw_real (je_floats). */
void jw_floats(jw *w, const float *x, int n);
/* The NUL-terminated text (owned by the caller), or NULL when the writer failed (then freed). */
char *jw_finish(jw *w);

#endif
