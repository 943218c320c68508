/* store: elbod's durable store behind a small interface - agents, experience (episodes of
 * steps), checkpoints - so that a PostgreSQL backend can follow SQLite without touching callers.
 *
 * The SQLite backend keeps one database, <data_dir>/elbod.db, in WAL mode. DESIGN (threads): one
 * writer thread owns the write connection and commits queued work in groups (group commit: every
 * operation queued while a commit runs goes into the next transaction), so a synchronous put
 * returns once its transaction is durable and many concurrent submissions share one fsync.
 * Reads use short-lived connections of their own (WAL readers never block the writer). No lock
 * of this module is held while SQLite does I/O on behalf of a caller, except the writer's own.
 *
 * Errors are negative STORE_E* codes (store_strerror); a disk-full or I/O error fails the
 * operations of that transaction only and leaves the database as it was before it.
 */
#ifndef ELBO_STORE_H
#define ELBO_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

#define STORE_EEXIST  (-1) /* the agent already exists */
#define STORE_ENOENT  (-2) /* no such agent / checkpoint */
#define STORE_EIO     (-3) /* SQLite or file-system error */
#define STORE_EFULL   (-4) /* disk full */
#define STORE_ENOMEM  (-5)
#define STORE_EINVAL  (-6)
#define STORE_ECLOSED (-7) /* the store is shutting down */
const char *store_strerror(int code);

/* Opens (creating when needed) the store in directory dir (created with mode 0750 if missing).
 * sync_full != 0 fsyncs every commit (synchronous=FULL); otherwise WAL's NORMAL. NULL on
 * failure with the reason in err. Close with store_close, which commits what is queued. */
store_t *store_open(const char *dir, int sync_full, char *err, size_t errlen);
void store_close(store_t *s);

/* ---- agents: a name and its configuration as an opaque JSON text ---- */
int store_put_agent(store_t *s, const char *name, const char *config_json);    /* EEXIST */
int store_update_agent(store_t *s, const char *name, const char *config_json); /* ENOENT */
/* Deletes the agent with all its experience and checkpoints. ENOENT when absent. */
int store_delete_agent(store_t *s, const char *name);
/* Calls cb for every agent in creation order; a non-zero return from cb stops the walk and is
 * returned. */
typedef int (*store_agent_cb)(void *ctx, const char *name, const char *config_json);
int store_list_agents(store_t *s, store_agent_cb cb, void *ctx);

/* ---- experience ---- */
/* A run of consecutive steps of one episode: step k holds the observation x_k, the reward that
 * arrived with it (none at k = 0), and the action taken after it (when has_action[k]) with the
 * planner's distribution (when has_dist[k]; 2 * da floats: mean then std in u-space). */
typedef struct store_steps {
    const char *agent;
    uint64_t episode_id;   /* from store_next_episode_id */
    const char *client_id; /* idempotency key of a submitted episode, or NULL */
    int first_k;           /* episode index of the first step here */
    int n;                 /* steps */
    int dx, da;
    const float *obs;          /* (n, dx) */
    const float *reward;       /* (n) */
    const float *action;       /* (n, da) */
    const uint8_t *has_action; /* (n) */
    const float *dist;         /* (n, 2 da) or NULL */
    const uint8_t *has_dist;   /* (n) or NULL */
    int terminal;              /* the episode ended with the last step here (done) */
} store_steps;

/* A fresh episode id, unique across restarts. */
uint64_t store_next_episode_id(store_t *s);

/* Commits whole episodes in one group commit and returns once durable. dup (n entries, may be
 * NULL) receives 1 for each episode whose client_id this agent had already stored (nothing is
 * written for it) and 0 otherwise. ENOENT for an unknown agent. */
int store_put_episodes(store_t *s, const store_steps *eps, int n, uint8_t *dup);

/* Queues steps of a session's episode for the next group commit and returns at once (the act
 * path must not wait for the disk). The data is copied. */
int store_append_steps_async(store_t *s, const store_steps *steps);
/* Waits until everything queued so far is committed (tests, shutdown). */
int store_flush(store_t *s);

/* Reloads an agent's replay window: the most recent episodes holding at most max_steps steps
 * in total (whole episodes, plus the tail of the oldest one when it alone does not fit), in
 * episode order, one callback per episode with its steps (first_k may be > 0 for a tail). */
typedef int (*store_steps_cb)(void *ctx, const store_steps *ep);
int store_load_steps(store_t *s, const char *agent, long max_steps, store_steps_cb cb, void *ctx);
/* Steps and transitions (steps with an action) stored for an agent. */
int store_count(store_t *s, const char *agent, long *steps, long *transitions);

/* ---- checkpoints: the latest per agent, replaced atomically ---- */
int store_put_checkpoint(store_t *s, const char *agent, long step, const unsigned char *buf,
                         size_t len);
/* The latest checkpoint: *buf is malloc'd (the caller frees it). ENOENT when there is none. */
int store_get_checkpoint(store_t *s, const char *agent, unsigned char **buf, size_t *len,
                         long *step);

/* ---- test only ---- */
/* Caps the database at `pages` pages (PRAGMA max_page_count on the write connection, never below
 * its current size, so 1 freezes it) or lifts the cap when pages <= 0, so that tests can make
 * writes fail with STORE_EFULL. Runs on the writer like a write and returns once in effect. */
int store_test_set_max_pages(store_t *s, long pages);
/* Transactions committed and write operations run by the writer since store_open. */
void store_test_stats(store_t *s, long *commits, long *ops);

#endif
