/* auth: API keys - the keys file, bearer-token checks and roles (README, Authentication).
 *
 * The keys file holds one key per line, `name role sha256hex`: the key itself is never stored,
 * only the SHA-256 of its bytes (keys are random, so a plain hash is enough; they are not
 * passwords). A request's `Authorization: Bearer <key>` is hashed and compared with every
 * entry's hash in constant time; the matching entry's role decides. Roles include the ones
 * below them: admin > train > act.
 *
 * No key ever reaches the log: failures are logged at debug level with the reason and, for a
 * known key with too low a role, the key's name.
 *
 * DESIGN (threads): request threads check keys concurrently (svc_authorize) under a read lock
 * on the current key set; auth_reload (the main thread, on SIGHUP) parses the new file without
 * the lock, then swaps the set under the write lock and frees the old one after unlocking. The
 * lock is held only for the 32-byte comparisons. Whether authentication is on at all is fixed
 * at auth_start and read without the lock.
 */
#ifndef ELBO_AUTH_H
#define ELBO_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "api/service.h"

#define AUTH_HASH_HEX 64 /* hex digits of a SHA-256 */

/* Loads the keys file at `path` and turns authentication on; an empty path turns it off (every
 * request allowed). 0, or -1 with a one-line reason in err (the file cannot be read, a line is
 * malformed, a name or hash repeats, the file holds no key). */
int auth_start(const char *path, char *err, size_t errlen);

/* Re-reads the keys file (SIGHUP) and swaps the key set in. Authentication stays as auth_start
 * left it: 1 (nothing done) when it is off or `path` is empty, 0 when the new keys are in, -1
 * with the reason in err when the file is unusable (the old keys stay). */
int auth_reload(const char *path, char *err, size_t errlen);

/* Whether requests need keys. */
int auth_enabled(void);

/* What svc_authorize answers (0, 401 or 403), logging the refusals at debug level when `log`
 * is set. */
int auth_check(const char *authorization, svc_role need, int log);

/* Frees the key set; authentication is off afterwards. */
void auth_stop(void);

/* The SHA-256 of key[0..len) as 64 lowercase hex digits and a NUL, the keys file's form. */
void auth_hash_hex(const char *key, size_t len, char out[AUTH_HASH_HEX + 1]);

/* `elbod --hash-key`: reads one key from `in` (one line; trailing whitespace dropped) and prints
 * its hash to `out`. 0, or 2 with a message on `err` (no key, a key with spaces or control
 * characters, or longer than 4096 bytes). */
int auth_hash_key_main(FILE *in, FILE *out, FILE *err);

/* "act", "train", "admin" ("none" for SVC_ROLE_NONE). */
const char *auth_role_name(svc_role role);

/* Whether host (numeric IPv4/IPv6 or "localhost") is a loopback address: 127.0.0.0/8, ::1,
 * ::ffff:127.0.0.0/104, localhost. */
int auth_host_is_loopback(const char *host);

#endif
