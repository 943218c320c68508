/* auth: API keys, bearer-token checks and roles (see auth.h). */
#include "auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define AUTH_NAME_MAX 64    /* bytes of a key's name */
#define AUTH_KEYS_MAX 10000 /* entries of a keys file */
#define AUTH_KEY_MAX  4096  /* bytes of a key (a bearer token) */
#define AUTH_LINE_MAX 1024  /* bytes of a keys file's line */

typedef struct auth_key {
    char name[AUTH_NAME_MAX + 1];
    svc_role role;
    uint8_t hash[SHA256_DIGEST_SIZE];
} auth_key;

typedef struct auth_keyset {
    int n;
    auth_key *keys; /* (n) */
} auth_keyset;

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static auth_keyset *current; /* under lock; NULL when authentication is off */
static atomic_int enabled;   /* set by auth_start only */

static const char *const role_names[] = {"none", "act", "train", "admin"};

const char *auth_role_name(svc_role role)
{
    return role >= SVC_ROLE_NONE && role <= SVC_ROLE_ADMIN ? role_names[role] : "none";
}

static void sha256(const char *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, (const uint8_t *)data);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

void auth_hash_hex(const char *key, size_t len, char out[AUTH_HASH_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t h[SHA256_DIGEST_SIZE];
    sha256(key, len, h);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[AUTH_HASH_HEX] = '\0';
}

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void keyset_free(auth_keyset *ks)
{
    if (!ks)
        return;
    free(ks->keys);
    free(ks);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.@", s[i]))
            return 0;
    return 1;
}

/* Parses one non-comment line "name role hash" into k; 0, or -1 with the reason in err. */
static int parse_line(char *s, auth_key *k, char *err, size_t errlen)
{
    char *f[4];
    int nf = 0;
    for (char *p = s; *p && nf < 4;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        f[nf++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (nf != 3) {
        snprintf(err, errlen, "expected `name role sha256hex` (3 fields), found %d", nf);
        return -1;
    }
    if (!valid_name(f[0])) {
        snprintf(err, errlen, "a name is 1-%d letters, digits, '-', '_', '.' or '@'",
                 AUTH_NAME_MAX);
        return -1;
    }
    snprintf(k->name, sizeof k->name, "%s", f[0]);
    k->role = SVC_ROLE_NONE;
    for (int r = SVC_ROLE_ACT; r <= SVC_ROLE_ADMIN; r++)
        if (strcmp(f[1], role_names[r]) == 0)
            k->role = (svc_role)r;
    if (k->role == SVC_ROLE_NONE) {
        snprintf(err, errlen, "key '%s': the role must be act, train or admin", k->name);
        return -1;
    }
    if (strlen(f[2]) != AUTH_HASH_HEX) {
        snprintf(err, errlen,
                 "key '%s': the third field must be the key's SHA-256 as 64 hex digits "
                 "(elbod --hash-key), not the key itself",
                 k->name);
        return -1;
    }
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        int hi = hex_digit((unsigned char)f[2][2 * i]),
            lo = hex_digit((unsigned char)f[2][2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errlen, "key '%s': the hash holds a character that is not a hex digit",
                     k->name);
            return -1;
        }
        k->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Reads a keys file into a new key set (the caller frees it with keyset_free); NULL with the
 * reason in err. */
static auth_keyset *keyset_load(const char *path, char *err, size_t errlen)
{
    char why[200];
    auth_keyset *ks = calloc(1, sizeof *ks);
    FILE *f = fopen(path, "r");
    if (!ks || !f) {
        snprintf(err, errlen, "cannot read the keys file %s: %s", path,
                 ks ? strerror(errno) : "out of memory");
        goto err;
    }
    int cap = 0, lineno = 0;
    char line[AUTH_LINE_MAX + 2];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno, AUTH_LINE_MAX);
            goto err;
        }
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        if (ks->n == AUTH_KEYS_MAX) {
            snprintf(err, errlen, "%s: more than %d keys", path, AUTH_KEYS_MAX);
            goto err;
        }
        if (ks->n == cap) {
            cap = cap ? 2 * cap : 16;
            auth_key *p = realloc(ks->keys, sizeof *p * (size_t)cap);
            if (!p) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto err;
            }
            ks->keys = p;
        }
        auth_key *k = &ks->keys[ks->n];
        if (parse_line(s, k, why, sizeof why)) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            goto err;
        }
        for (int i = 0; i < ks->n; i++) {
            const auth_key *o = &ks->keys[i];
            if (strcmp(o->name, k->name) == 0 || memcmp(o->hash, k->hash, sizeof k->hash) == 0) {
                snprintf(err, errlen, "%s:%d: key '%s' repeats the %s of key '%s'", path, lineno,
                         k->name, strcmp(o->name, k->name) == 0 ? "name" : "hash", o->name);
                goto err;
            }
        }
        ks->n++;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read the keys file %s", path);
        goto err;
    }
    if (ks->n == 0) {
        snprintf(err, errlen, "the keys file %s holds no key", path);
        goto err;
    }
    fclose(f);
    return ks;
err:
    if (f)
        fclose(f);
    keyset_free(ks);
    return NULL;
}

static void keyset_swap(auth_keyset *ks)
{
    pthread_rwlock_wrlock(&lock);
    auth_keyset *old = current;
    current = ks;
    pthread_rwlock_unlock(&lock);
    keyset_free(old);
}

int auth_start(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        keyset_swap(NULL);
        atomic_store(&enabled, 0);
        return 0;
    }
    auth_keyset *ks = keyset_load(path, err, errlen);
    if (!ks)
        return -1;
    log_msg(LOG_INFO, "api_keys", "keys=%d keys_file=%s", ks->n, path);
    keyset_swap(ks);
    atomic_store(&enabled, 1);
    return 0;
}

int auth_reload(const char *path, char *err, size_t errlen)
{
    if (!atomic_load(&enabled) || !path || !*path)
        return 1;
    auth_keyset *ks = keyset_load(path, err, errlen);
    if (!ks)
        return -1;
    log_msg(LOG_INFO, "api_keys_reloaded", "keys=%d keys_file=%s", ks->n, path);
    keyset_swap(ks);
    return 0;
}

int auth_enabled(void)
{
    return atomic_load(&enabled);
}

void auth_stop(void)
{
    atomic_store(&enabled, 0);
    keyset_swap(NULL);
}

/* The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 6750);
 * NULL when the value has another shape. */
static const char *bearer_token(const char *v, size_t *len)
{
    if (!v || strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return NULL;
    const char *t = v + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = 0;
    while (t[n] && (unsigned char)t[n] > ' ' && t[n] != 0x7f)
        n++;
    const char *rest = t + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (n == 0 || n > AUTH_KEY_MAX || *rest)
        return NULL;
    *len = n;
    return t;
}

int svc_authorize(const char *authorization, svc_role need)
{
    return auth_check(authorization, need, 1);
}

int auth_check(const char *authorization, svc_role need, int log)
{
    if (need == SVC_ROLE_NONE || !atomic_load(&enabled))
        return 0;
    size_t len = 0;
    const char *tok = bearer_token(authorization, &len);
    if (!tok) {
        if (log)
            log_msg(LOG_DEBUG, "auth_failed", "reason=%s",
                    authorization ? "malformed_authorization" : "no_authorization");
        return 401;
    }
    uint8_t h[SHA256_DIGEST_SIZE];
    sha256(tok, len, h);
    /* Every entry is compared, in constant time, and the match is selected without a branch:
     * the time taken does not depend on which entry matched, or on how much of a hash did. */
    unsigned role = 0;
    int which = -1;
    char name[AUTH_NAME_MAX + 1] = "";
    pthread_rwlock_rdlock(&lock);
    const auth_keyset *ks = current;
    for (int i = 0; ks && i < ks->n; i++) {
        unsigned mask = 0u - (unsigned)(memeql_sec(h, ks->keys[i].hash, sizeof h) != 0);
        role |= mask & (unsigned)ks->keys[i].role;
        which = (int)((mask & (unsigned)i) | (~mask & (unsigned)which));
    }
    if (which >= 0 && (int)role < (int)need)
        memcpy(name, ks->keys[which].name, sizeof name);
    pthread_rwlock_unlock(&lock);
    if (which < 0) {
        if (log)
            log_msg(LOG_DEBUG, "auth_failed", "reason=unknown_key");
        return 401;
    }
    if ((int)role < (int)need) {
        if (log)
            log_msg(LOG_DEBUG, "auth_denied", "key=%s role=%s needs=%s", name,
                    auth_role_name((svc_role)role), auth_role_name(need));
        return 403;
    }
    return 0;
}

int auth_hash_key_main(FILE *in, FILE *out, FILE *err)
{
    char key[AUTH_KEY_MAX + 2];
    size_t n = fread(key, 1, sizeof key - 1, in);
    key[n] = '\0';
    /* One line: what follows a newline must be blank (a trailing newline is fine). */
    char *nl = memchr(key, '\n', n);
    size_t len = nl ? (size_t)(nl - key) : n;
    for (size_t i = len; i < n; i++)
        if (!isspace((unsigned char)key[i])) {
            fprintf(err, "elbod: --hash-key reads one key, on one line\n");
            return 2;
        }
    while (len && isspace((unsigned char)key[len - 1]))
        len--;
    if (len == 0 || len > AUTH_KEY_MAX) {
        fprintf(err, "elbod: --hash-key reads a key of 1-%d bytes from stdin\n", AUTH_KEY_MAX);
        return 2;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] <= ' ' || key[i] == 0x7f) {
            fprintf(err, "elbod: a key may not hold spaces or control characters (it travels "
                         "in an HTTP header)\n");
            return 2;
        }
    char hex[AUTH_HASH_HEX + 1];
    auth_hash_hex(key, len, hex);
    explicit_bzero(key, sizeof key);
    fprintf(out, "%s\n", hex);
    return 0;
}

int auth_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0;
}
