/* store: the SQLite backend of store.h - agents, experience and checkpoints of elbod in one
 * database, <data_dir>/elbod.db, in WAL mode.
 *
 * Schema (PRAGMA user_version = 1; `migrations` below brings any older file up to date):
 *   meta(key, value)            'episode_reserved': every episode id below it may have been
 *                               handed out by some run, so the next run starts above it.
 *   agents(id, name, config)    AUTOINCREMENT, so the id of a deleted agent is never reused.
 *   episodes(id = episode_id, agent_id, client_id, dx, da, n_steps, n_actions, terminal)
 *                               UNIQUE(agent_id, client_id) is the dedupe of submissions; the
 *                               counters spare store_count and store_load_steps a scan of steps.
 *   steps(episode_id, k, obs, reward, action, dist)  WITHOUT ROWID, keyed (episode_id, k).
 *   checkpoints(agent_id, step, data)                the latest one per agent.
 * Floats are little-endian float32 BLOBs (the reward too: a REAL column would turn -0.0 into 0
 * and NaN into NULL); a missing action or distribution is NULL. Deleting an agent cascades.
 *
 * DESIGN (threads). One writer thread owns the write connection and its prepared statements.
 * Every write is an operation (store_op) queued under `mu`; the writer takes the whole queue
 * (up to BATCH_MAX ops), runs it in one transaction with a SAVEPOINT per operation (a failing
 * operation is rolled back alone and the others commit), commits, then under `mu` marks the
 * batch done and wakes the synchronous callers, each of whom reads its own result. When SQLite
 * rolls the whole transaction back by itself (it does on SQLITE_FULL, and may on an I/O error)
 * the writer runs the batch again without the failed operation; each such restart fails one
 * more op for good, so it ends, and BATCH_MAX bounds what a disk-full batch can cost. A failing
 * COMMIT fails every operation of the batch and leaves the database as before it. Async
 * appends are copies owned by the queue (the writer frees them). Readers take a connection from
 * a small pool (`pool_mu` guards only the pool array) and query without any lock of ours; WAL
 * lets them run beside the writer. `active` counts the callers inside the store, so that
 * store_close waits for them; no call may start once store_close has been called.
 *
 * What store.h leaves open, decided here:
 * - store_put_episodes is all or nothing: an unknown agent (STORE_ENOENT) or any invalid
 *   episode fails the whole call and writes nothing. Episodes of one call may name different
 *   agents. Episode ids must come from store_next_episode_id (else STORE_EINVAL).
 * - store_steps arrays come in pairs, both set or both NULL: action/has_action, dist/has_dist.
 * - An async append that fails (unknown agent, a step index stored already, other dimensions
 *   than its episode's, disk full) is dropped; store_flush returns the first such error since
 *   the previous store_flush (whoever queued it), else 0. Its first chunk creates the episode;
 *   a client_id already stored for the agent makes the whole episode a silent duplicate.
 * - The async queue holds at most ASYNC_BYTES_MAX of copies: beyond, STORE_ENOMEM.
 * - store_load_steps delivers, per episode, its contiguous run of steps that ends with the
 *   latest one (a chunk lost to a failed write cuts the episode there), has_action always, and
 *   dist/has_dist NULL when the run holds no distribution. Actions and distributions of steps
 *   that have none read as zeros.
 * - store_list_agents and store_load_steps return a callback's non-zero value as is; callbacks
 *   may call the store (reads use another pooled connection), but not store_close.
 *
 * Errors: SQLITE_FULL -> STORE_EFULL, SQLITE_NOMEM -> STORE_ENOMEM, a constraint violated or a
 * value too big (caller data: an episode id or step index stored already) -> STORE_EINVAL,
 * anything else -> STORE_EIO.
 */
#include "server/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#ifdef ELBOD_TORTURE
#include "tests/torture/torture.h"
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "store.c binds floats in host byte order as little-endian blobs: add a byte swap here"
#endif

#define DB_NAME          "elbod.db"
#define BUSY_TIMEOUT_MS  5000
#define READ_POOL_MAX    4
#define BATCH_MAX        256                 /* ops per transaction */
#define ASYNC_BYTES_MAX  ((size_t)256 << 20) /* queued async copies: the act path's cap */
#define CHUNK_STEPS_MAX  (1 << 24)           /* steps in one store_steps */
#define DIM_MAX          (1 << 16)           /* dx, da */
#define ID_RESERVE       65536               /* episode ids reserved ahead on disk */
#define MAX_PAGES_LIFTED 1073741823L         /* SQLite 3.40's default max_page_count */

/* migrations[v] brings a database from user_version v to v + 1, in one transaction. */
static const char *const migrations[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES('episode_reserved', 1);"
    "CREATE TABLE agents(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    " config TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE episodes(id INTEGER PRIMARY KEY,"
    " agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE, client_id TEXT,"
    " dx INTEGER NOT NULL, da INTEGER NOT NULL, n_steps INTEGER NOT NULL,"
    " n_actions INTEGER NOT NULL, terminal INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " UNIQUE(agent_id, client_id));"
    /* (agent_id) is ordered by (agent_id, id): an agent's episodes newest first without a sort. */
    "CREATE INDEX episodes_by_agent ON episodes(agent_id);"
    "CREATE TABLE steps(episode_id INTEGER NOT NULL REFERENCES episodes(id) ON DELETE CASCADE,"
    " k INTEGER NOT NULL, obs BLOB NOT NULL, reward BLOB NOT NULL, action BLOB, dist BLOB,"
    " PRIMARY KEY(episode_id, k)) WITHOUT ROWID;"
    "CREATE TABLE checkpoints(agent_id INTEGER PRIMARY KEY"
    " REFERENCES agents(id) ON DELETE CASCADE, step INTEGER NOT NULL, data BLOB NOT NULL,"
    " created_at INTEGER NOT NULL);",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* The writer's statements, prepared once at open. */
enum {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_AGENT_ID,
    W_AGENT_PUT,
    W_AGENT_UPDATE,
    W_AGENT_DELETE,
    W_EPISODE_GET,
    W_EPISODE_PUT,
    W_EPISODE_EXTEND,
    W_STEP_PUT,
    W_CHECKPOINT_PUT,
    W_RESERVE,
    W_COUNT
};

static const char *const writer_sql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_SAVEPOINT] = "SAVEPOINT op",
    [W_RELEASE] = "RELEASE op",
    [W_ROLLBACK_TO] = "ROLLBACK TO op",
    [W_AGENT_ID] = "SELECT id FROM agents WHERE name = ?1",
    [W_AGENT_PUT] =
        "INSERT INTO agents(name, config, created_at, updated_at) VALUES(?1, ?2, ?3, ?3)"
        " ON CONFLICT(name) DO NOTHING",
    [W_AGENT_UPDATE] = "UPDATE agents SET config = ?2, updated_at = ?3 WHERE name = ?1",
    [W_AGENT_DELETE] = "DELETE FROM agents WHERE name = ?1",
    [W_EPISODE_GET] = "SELECT agent_id, dx, da FROM episodes WHERE id = ?1",
    [W_EPISODE_PUT] = "INSERT INTO episodes(id, agent_id, client_id, dx, da, n_steps, n_actions,"
                      " terminal, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                      " ON CONFLICT(agent_id, client_id) DO NOTHING",
    [W_EPISODE_EXTEND] = "UPDATE episodes SET n_steps = n_steps + ?2, n_actions = n_actions + ?3,"
                         " terminal = max(terminal, ?4) WHERE id = ?1",
    [W_STEP_PUT] = "INSERT INTO steps(episode_id, k, obs, reward, action, dist)"
                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [W_CHECKPOINT_PUT] = "INSERT INTO checkpoints(agent_id, step, data, created_at)"
                         " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(agent_id) DO UPDATE SET"
                         " step = excluded.step, data = excluded.data,"
                         " created_at = excluded.created_at",
    [W_RESERVE] = "UPDATE meta SET value = max(value, ?1) WHERE key = 'episode_reserved'",
};

typedef enum op_kind {
    OP_PUT_AGENT,
    OP_UPDATE_AGENT,
    OP_DELETE_AGENT,
    OP_PUT_EPISODES,
    OP_APPEND,
    OP_PUT_CHECKPOINT,
    OP_RESERVE_IDS,
    OP_MAX_PAGES,
    OP_FLUSH /* writes nothing: done once everything queued before it is */
} op_kind;

/* One queued write. A synchronous op lives on its caller's stack and its arguments are the
 * caller's (valid until done); an async op is one malloc holding its copied data, freed by the
 * writer. */
typedef struct store_op {
    struct store_op *next;
    op_kind kind;
    int async;
    int done;   /* under mu: the batch is finished and result final */
    int result; /* 0 or STORE_E* */
    int failed; /* writer only: excluded from the rest of the batch */
    const char *name;
    const char *config;
    const store_steps *eps; /* OP_PUT_EPISODES: n of them; OP_APPEND: &chunk */
    int n;
    uint8_t *dup;
    store_steps chunk; /* OP_APPEND: the copy, its arrays after this struct */
    long step;
    const unsigned char *buf;
    size_t len;
    long pages;     /* OP_MAX_PAGES */
    uint64_t value; /* OP_RESERVE_IDS: the new reservation */
    size_t bytes;   /* async: counted in async_bytes */
#ifdef ELBOD_TORTURE
    torture_req *torture; /* synchronous: the request whose allocations the writer counts */
#endif
} store_op;

struct store {
    char *db_path;
    sqlite3 *wdb; /* the writer thread's alone once it runs */
    sqlite3_stmt *ws[W_COUNT];
    pthread_t writer;
    int writer_started;
    int sync_inited; /* how many of the mutexes and conditions below exist */

    pthread_mutex_t mu;  /* guards the queue, the flags and the counters below */
    pthread_cond_t work; /* the writer waits here for ops or stop */
    pthread_cond_t done; /* synchronous callers wait here for their op */
    pthread_cond_t idle; /* store_close waits here for active == 0 */
    store_op *head, *tail;
    size_t async_bytes;
    int async_err; /* first error of an async op since the last store_flush */
    int active;    /* callers inside a function of the store */
    int closing;   /* new calls fail with STORE_ECLOSED */
    int stop;      /* the writer exits once the queue is empty */

    atomic_long commits, ops;
    _Atomic uint64_t next_id;  /* the next episode id to hand out */
    _Atomic uint64_t reserved; /* ids below it are reserved on disk */
    atomic_int reserving;      /* an OP_RESERVE_IDS is queued */

    pthread_mutex_t pool_mu; /* guards pool and npool only */
    sqlite3 *pool[READ_POOL_MAX];
    int npool;
};

const char *store_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case STORE_EEXIST:
        return "the agent already exists";
    case STORE_ENOENT:
        return "no such agent or checkpoint";
    case STORE_EIO:
        return "database or file-system error";
    case STORE_EFULL:
        return "disk full";
    case STORE_ENOMEM:
        return "out of memory";
    case STORE_EINVAL:
        return "invalid argument";
    case STORE_ECLOSED:
        return "the store is shutting down";
    default:
        return "unknown store error";
    }
}

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_FULL:
        return STORE_EFULL;
    case SQLITE_NOMEM:
        return STORE_ENOMEM;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
        return STORE_EINVAL;
    default:
        return STORE_EIO;
    }
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int64_t now_seconds(void)
{
    return (int64_t)time(NULL);
}

/* ---- statements --------------------------------------------------------------------------- */

/* Ends a use of st: resets it and drops its bindings (which may point at caller memory). */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows to completion. 0 or STORE_E*. */
static int stmt_run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    stmt_done(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

/* Runs SQL without parameters or wanted rows on db. 0 or STORE_E*. */
static int exec_sql(sqlite3 *db, const char *sql)
{
    return map_rc(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

/* A one-row integer query on db without parameters: *out, or fallback when it gives no row or
 * NULL. 0 or STORE_E*. */
static int query_int64(sqlite3 *db, const char *sql, int64_t fallback, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    *out = fallback;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_rc(rc);
}

/* ---- the writer's operations -------------------------------------------------------------- */

static int w_agent_id(store_t *s, const char *name, int64_t *id)
{
    sqlite3_stmt *st = s->ws[W_AGENT_ID];
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int res = rc == SQLITE_DONE ? STORE_ENOENT : map_rc(rc);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    stmt_done(st);
    return res;
}

/* Runs an agents statement bound to (name, config, now); *changed gets the rows it touched. */
static int w_agent_write(store_t *s, int which, const char *name, const char *config, int *changed)
{
    sqlite3_stmt *st = s->ws[which];
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && config)
        rc = sqlite3_bind_text(st, 2, config, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && config)
        rc = sqlite3_bind_int64(st, 3, now_seconds());
    if (rc != SQLITE_OK) {
        stmt_done(st);
        return map_rc(rc);
    }
    int res = stmt_run(st);
    *changed = res == 0 ? sqlite3_changes(s->wdb) : 0;
    return res;
}

/* Finds a session episode: 0 with its owner and dimensions, STORE_ENOENT when absent. */
static int w_episode_get(store_t *s, int64_t id, int64_t *agent_id, int *dx, int *da)
{
    sqlite3_stmt *st = s->ws[W_EPISODE_GET];
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int res = rc == SQLITE_DONE ? STORE_ENOENT : map_rc(rc);
    if (rc == SQLITE_ROW) {
        *agent_id = sqlite3_column_int64(st, 0);
        *dx = sqlite3_column_int(st, 1);
        *da = sqlite3_column_int(st, 2);
    }
    stmt_done(st);
    return res;
}

static int w_steps_put(store_t *s, const store_steps *c)
{
    sqlite3_stmt *st = s->ws[W_STEP_PUT];
    int obs_bytes = c->dx * (int)sizeof(float);
    int act_bytes = c->da * (int)sizeof(float);
    for (int i = 0; i < c->n; i++) {
        int has_a = c->has_action && c->has_action[i];
        int has_d = c->has_dist && c->has_dist[i];
        int rc = sqlite3_bind_int64(st, 1, (int64_t)c->episode_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 2, c->first_k + i);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob(st, 3, c->obs + (size_t)i * c->dx, obs_bytes, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob(st, 4, c->reward + i, (int)sizeof(float), SQLITE_STATIC);
        if (rc == SQLITE_OK && has_a)
            rc = sqlite3_bind_blob(st, 5, c->action + (size_t)i * c->da, act_bytes, SQLITE_STATIC);
        if (rc == SQLITE_OK && has_d)
            rc = sqlite3_bind_blob(st, 6, c->dist + (size_t)i * 2 * c->da, 2 * act_bytes,
                                   SQLITE_STATIC);
        if (rc != SQLITE_OK) {
            stmt_done(st);
            return map_rc(rc);
        }
        int res = stmt_run(st); /* unbound action/dist stay NULL: stmt_done cleared them */
        if (res)
            return res;
    }
    return 0;
}

/* Writes one chunk. put != 0: a whole submitted episode, new by definition, which its client_id
 * may make a duplicate (*dup = 1, nothing written). Otherwise a session's chunk: the first one
 * creates the episode, later ones extend it (same agent and dimensions, or STORE_EINVAL). */
static int w_chunk(store_t *s, int64_t agent_id, const store_steps *c, int put, uint8_t *dup)
{
    int64_t id = (int64_t)c->episode_id;
    int n_actions = 0;
    for (int i = 0; c->has_action && i < c->n; i++)
        n_actions += c->has_action[i] != 0;
    *dup = 0;

    int exists = 0;
    if (!put) {
        int64_t owner = 0;
        int dx = 0, da = 0;
        int res = w_episode_get(s, id, &owner, &dx, &da);
        if (res != 0 && res != STORE_ENOENT)
            return res;
        exists = res == 0;
        if (exists && (owner != agent_id || dx != c->dx || da != c->da))
            return STORE_EINVAL;
    }

    sqlite3_stmt *st = s->ws[exists ? W_EPISODE_EXTEND : W_EPISODE_PUT];
    int rc = sqlite3_bind_int64(st, 1, id);
    if (exists) {
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 2, c->n);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 3, n_actions);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 4, c->terminal != 0);
    } else {
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, agent_id);
        if (rc == SQLITE_OK && c->client_id)
            rc = sqlite3_bind_text(st, 3, c->client_id, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 4, c->dx);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 5, c->da);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 6, c->n);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 7, n_actions);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(st, 8, c->terminal != 0);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 9, now_seconds());
    }
    if (rc != SQLITE_OK) {
        stmt_done(st);
        return map_rc(rc);
    }
    int res = stmt_run(st);
    if (res)
        return res;
    if (!exists && sqlite3_changes(s->wdb) == 0) {
        *dup = 1; /* (agent, client_id) is stored already */
        return 0;
    }
    return w_steps_put(s, c);
}

static int w_put_episodes(store_t *s, store_op *op)
{
    const char *agent = NULL;
    int64_t agent_id = 0;
    for (int i = 0; i < op->n; i++) {
        const store_steps *c = &op->eps[i];
        if (!agent || strcmp(agent, c->agent) != 0) {
            int res = w_agent_id(s, c->agent, &agent_id);
            if (res)
                return res;
            agent = c->agent;
        }
        uint8_t dup = 0;
        int res = w_chunk(s, agent_id, c, 1, &dup);
        if (res)
            return res;
        if (op->dup)
            op->dup[i] = dup;
    }
    return 0;
}

static int w_put_checkpoint(store_t *s, store_op *op)
{
    int64_t agent_id = 0;
    int res = w_agent_id(s, op->name, &agent_id);
    if (res)
        return res;
    sqlite3_stmt *st = s->ws[W_CHECKPOINT_PUT];
    int rc = sqlite3_bind_int64(st, 1, agent_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, op->step);
    if (rc == SQLITE_OK)
        rc = op->len > 0 ? sqlite3_bind_blob64(st, 3, op->buf, op->len, SQLITE_STATIC)
                         : sqlite3_bind_zeroblob(st, 3, 0); /* empty, not NULL */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, now_seconds());
    if (rc != SQLITE_OK) {
        stmt_done(st);
        return map_rc(rc);
    }
    return stmt_run(st);
}

static int w_op(store_t *s, store_op *op)
{
    int changed = 0, res = 0;
    uint8_t dup = 0;
    int64_t agent_id = 0;
    switch (op->kind) {
    case OP_PUT_AGENT:
        res = w_agent_write(s, W_AGENT_PUT, op->name, op->config, &changed);
        return res ? res : changed ? 0 : STORE_EEXIST;
    case OP_UPDATE_AGENT:
        res = w_agent_write(s, W_AGENT_UPDATE, op->name, op->config, &changed);
        return res ? res : changed ? 0 : STORE_ENOENT;
    case OP_DELETE_AGENT:
        res = w_agent_write(s, W_AGENT_DELETE, op->name, NULL, &changed);
        return res ? res : changed ? 0 : STORE_ENOENT;
    case OP_PUT_EPISODES:
        return w_put_episodes(s, op);
    case OP_APPEND:
        res = w_agent_id(s, op->chunk.agent, &agent_id);
        return res ? res : w_chunk(s, agent_id, &op->chunk, 0, &dup);
    case OP_PUT_CHECKPOINT:
        return w_put_checkpoint(s, op);
    case OP_RESERVE_IDS:
        res = map_rc(sqlite3_bind_int64(s->ws[W_RESERVE], 1, (int64_t)op->value));
        return res ? res : stmt_run(s->ws[W_RESERVE]);
    case OP_MAX_PAGES: {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %ld",
                 op->pages > 0 ? op->pages : MAX_PAGES_LIFTED);
        return exec_sql(s->wdb, sql);
    }
    case OP_FLUSH:
        return 0;
    }
    return STORE_EINVAL;
}

/* Runs op inside the open transaction under a savepoint of its own. Returns non-zero when the
 * transaction is gone or unusable (SQLite rolled it back, or the savepoint could not be undone):
 * the batch must start again. */
static int w_op_isolated(store_t *s, store_op *op)
{
    int res = stmt_run(s->ws[W_SAVEPOINT]);
    if (res) {
        op->failed = 1;
        op->result = res;
        return 1;
    }
    res = w_op(s, op);
    if (res == 0)
        res = stmt_run(s->ws[W_RELEASE]);
    if (res == 0) {
        op->result = 0;
        return 0;
    }
    op->failed = 1;
    op->result = res;
    if (sqlite3_get_autocommit(s->wdb))
        return 1; /* SQLite rolled the whole transaction back */
    int undo = stmt_run(s->ws[W_ROLLBACK_TO]);
    if (undo == 0)
        undo = stmt_run(s->ws[W_RELEASE]);
    return undo != 0;
}

static void fail_pending(store_op *batch, int res)
{
    for (store_op *op = batch; op; op = op->next) {
        if (!op->failed && op->kind != OP_FLUSH) {
            op->failed = 1;
            op->result = res;
        }
    }
}

/* Runs a batch in one transaction; every op gets its result. */
static void w_batch(store_t *s, store_op *batch)
{
    int writes = 0;
    for (store_op *op = batch; op; op = op->next) {
        op->failed = 0;
        op->result = 0;
        writes += op->kind != OP_FLUSH;
    }
    if (writes == 0)
        return;
    atomic_fetch_add(&s->ops, writes);

    for (;;) {
        int res = stmt_run(s->ws[W_BEGIN]);
        if (res) {
            fail_pending(batch, res);
            return;
        }
        int restart = 0;
        for (store_op *op = batch; op && !restart; op = op->next) {
            if (!op->failed && op->kind != OP_FLUSH) {
                restart = w_op_isolated(s, op);
                res = op->result;
            }
        }
        if (!restart) {
            res = stmt_run(s->ws[W_COMMIT]);
            if (res == 0) {
                atomic_fetch_add(&s->commits, 1);
                return;
            }
        }
        if (!sqlite3_get_autocommit(s->wdb))
            stmt_run(s->ws[W_ROLLBACK]); /* the database is as before BEGIN */
        /* The ops still standing succeeded but were rolled back with the failed one: run them
         * again without it. A failed COMMIT fails them all. */
        if (!restart) {
            fail_pending(batch, res ? res : STORE_EIO);
            return;
        }
    }
}

/* Under mu: publishes the results of a finished batch and frees its async ops. */
static void finish_batch(store_t *s, store_op *batch)
{
    store_op *next = NULL;
    for (store_op *op = batch; op; op = next) {
        next = op->next;
        if (op->kind == OP_RESERVE_IDS) {
            if (op->result == 0)
                atomic_store(&s->reserved, op->value);
            atomic_store(&s->reserving, 0);
        }
        if (op->async) {
            if (op->result && !s->async_err)
                s->async_err = op->result;
            s->async_bytes -= op->bytes;
            free(op);
        } else {
            op->done = 1; /* the caller may free op from here on */
        }
    }
    pthread_cond_broadcast(&s->done);
}

static void *writer_main(void *arg)
{
    store_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->work, &s->mu);
        if (!s->head)
            break;
        store_op *batch = s->head, *last = batch;
        for (int i = 1; i < BATCH_MAX && last->next; i++)
            last = last->next;
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->mu);
#ifdef ELBOD_TORTURE
        /* The torture build counts the batch's allocations for the request of its first
         * synchronous op (which waits meanwhile): SQLite's work on its behalf. */
        store_op *first = batch;
        while (first && first->async)
            first = first->next;
        torture_arm(first ? first->torture : NULL);
        w_batch(s, batch);
        torture_arm(NULL);
#else
        w_batch(s, batch);
#endif
        pthread_mutex_lock(&s->mu);
        finish_batch(s, batch);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- queueing ----------------------------------------------------------------------------- */

/* Under mu. */
static void enqueue(store_t *s, store_op *op)
{
    op->next = NULL;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->work);
}

/* Queues a synchronous op and waits for its batch. Its result, or STORE_ECLOSED. For OP_FLUSH
 * the first async error since the last flush, if any. */
static int submit_wait(store_t *s, store_op *op)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return STORE_ECLOSED;
    }
    s->active++;
    op->async = 0;
    op->done = 0;
#ifdef ELBOD_TORTURE
    op->torture = torture_armed();
#endif
    enqueue(s, op);
    while (!op->done)
        pthread_cond_wait(&s->done, &s->mu);
    int res = op->result;
    if (op->kind == OP_FLUSH) {
        res = s->async_err;
        s->async_err = 0;
    }
    if (--s->active == 0 && s->closing)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    return res;
}

/* Queues an async op (malloc'd, op->bytes set); on failure the caller still owns it. */
static int submit_async(store_t *s, store_op *op)
{
    int res = 0;
    pthread_mutex_lock(&s->mu);
    if (s->closing)
        res = STORE_ECLOSED;
    else if (op->bytes > ASYNC_BYTES_MAX - s->async_bytes)
        res = STORE_ENOMEM; /* the disk does not keep up: refuse rather than grow without end */
    if (res == 0) {
        op->async = 1;
#ifdef ELBOD_TORTURE
        op->torture = NULL;
#endif
        s->async_bytes += op->bytes;
        enqueue(s, op);
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

/* Read calls register in `active` so that store_close waits for them. */
static int call_enter(store_t *s)
{
    pthread_mutex_lock(&s->mu);
    int closing = s->closing;
    if (!closing)
        s->active++;
    pthread_mutex_unlock(&s->mu);
    return closing ? STORE_ECLOSED : 0;
}

static void call_leave(store_t *s)
{
    pthread_mutex_lock(&s->mu);
    if (--s->active == 0 && s->closing)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* ---- open and close ----------------------------------------------------------------------- */

/* mkdir -p with mode 0750 for what it creates; 0, or -1 with the reason in err. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char *path = strdup(dir);
    if (!path) {
        set_err(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    int res = 0;
    for (char *p = path + 1;; p++) {
        int last = *p == '\0';
        if (*p != '/' && !last)
            continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST) {
            set_err(err, errlen, "cannot create the data directory %s: %s", path, strerror(errno));
            res = -1;
            break;
        }
        if (last)
            break;
        *p = '/';
    }
    struct stat st;
    if (res == 0 && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        set_err(err, errlen, "the data directory %s is not a directory", dir);
        res = -1;
    }
    free(path);
    return res;
}

/* Brings the schema to SCHEMA_VERSION. 0, or -1 with the reason in err. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int64_t version = 0;
    int res = exec_sql(db, "BEGIN IMMEDIATE");
    if (res == 0)
        res = query_int64(db, "PRAGMA user_version", 0, &version);
    if (res == 0 && version > SCHEMA_VERSION) {
        set_err(err, errlen, "%s: schema version %lld is newer than this elbod's (%d)", path,
                (long long)version, SCHEMA_VERSION);
        exec_sql(db, "ROLLBACK");
        return -1;
    }
    for (int64_t v = version; res == 0 && v < SCHEMA_VERSION; v++) {
        char sql[48];
        res = exec_sql(db, migrations[v]);
        snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)v + 1);
        if (res == 0)
            res = exec_sql(db, sql);
    }
    if (res == 0)
        res = exec_sql(db, "COMMIT");
    if (res) {
        set_err(err, errlen, "%s: cannot set up the schema: %s", path, sqlite3_errmsg(db));
        if (!sqlite3_get_autocommit(db))
            exec_sql(db, "ROLLBACK");
        return -1;
    }
    return 0;
}

/* Starts the episode ids of this run above every id stored or handed out before, and reserves
 * the next ID_RESERVE on disk. 0 or STORE_E*. */
static int init_episode_ids(store_t *s)
{
    int64_t max_id = 0, reserved = 1;
    int res = exec_sql(s->wdb, "BEGIN IMMEDIATE");
    if (res == 0)
        res = query_int64(s->wdb, "SELECT max(id) FROM episodes", 0, &max_id);
    if (res == 0)
        res = query_int64(s->wdb, "SELECT value FROM meta WHERE key = 'episode_reserved'", 1,
                          &reserved);
    uint64_t next = (uint64_t)(max_id + 1 > reserved ? max_id + 1 : reserved);
    if (next < 1)
        next = 1;
    if (res == 0) {
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE meta SET value = %llu WHERE key = 'episode_reserved'",
                 (unsigned long long)(next + ID_RESERVE));
        res = exec_sql(s->wdb, sql);
    }
    if (res == 0)
        res = exec_sql(s->wdb, "COMMIT");
    if (res) {
        if (!sqlite3_get_autocommit(s->wdb))
            exec_sql(s->wdb, "ROLLBACK");
        return res;
    }
    atomic_store(&s->next_id, next);
    atomic_store(&s->reserved, next + ID_RESERVE);
    return 0;
}

/* Frees everything of a store whose writer is not running (free(NULL)-safe). */
static void store_free(store_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->npool; i++)
        sqlite3_close(s->pool[i]);
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(s->ws[i]);
    sqlite3_close(s->wdb); /* the last connection: checkpoints the WAL into the database */
    for (store_op *op = s->head, *next = NULL; op; op = next) {
        next = op->next;
        if (op->async)
            free(op);
    }
    if (s->sync_inited > 4)
        pthread_mutex_destroy(&s->pool_mu);
    if (s->sync_inited > 3)
        pthread_cond_destroy(&s->idle);
    if (s->sync_inited > 2)
        pthread_cond_destroy(&s->done);
    if (s->sync_inited > 1)
        pthread_cond_destroy(&s->work);
    if (s->sync_inited > 0)
        pthread_mutex_destroy(&s->mu);
    free(s->db_path);
    free(s);
}

store_t *store_open(const char *dir, int sync_full, char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!dir || !*dir) {
        set_err(err, errlen, "no data directory given");
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        set_err(err, errlen, "SQLite %s was built without thread support", sqlite3_libversion());
        return NULL;
    }
    if (make_dirs(dir, err, errlen))
        return NULL;

    store_t *s = calloc(1, sizeof *s);
    size_t plen = strlen(dir) + sizeof "/" DB_NAME;
    char *path = malloc(plen);
    if (!s || !path) {
        free(s);
        free(path);
        set_err(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    snprintf(path, plen, "%s/%s", dir, DB_NAME);
    s->db_path = path;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto err_sync;
    s->sync_inited++;
    if (pthread_cond_init(&s->work, NULL) != 0)
        goto err_sync;
    s->sync_inited++;
    if (pthread_cond_init(&s->done, NULL) != 0)
        goto err_sync;
    s->sync_inited++;
    if (pthread_cond_init(&s->idle, NULL) != 0)
        goto err_sync;
    s->sync_inited++;
    if (pthread_mutex_init(&s->pool_mu, NULL) != 0)
        goto err_sync;
    s->sync_inited++;

    int rc = sqlite3_open_v2(
        path, &s->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto err_db;
    rc = sqlite3_busy_timeout(s->wdb, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        goto err_db;
    char mode[16] = "";
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->wdb, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        goto err_db;
    if (strcmp(mode, "wal") != 0) {
        set_err(err, errlen, "%s: cannot use WAL mode (journal mode %s)", path, mode);
        goto err;
    }
    rc = sqlite3_exec(s->wdb,
                      sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", NULL,
                      NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->wdb, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto err_db;
    if (migrate(s->wdb, path, err, errlen))
        goto err;
    if (init_episode_ids(s))
        goto err_db;
    for (int i = 0; i < W_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->wdb, writer_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i],
                                NULL);
        if (rc != SQLITE_OK)
            goto err_db;
    }
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        set_err(err, errlen, "%s: cannot start the writer thread", path);
        goto err;
    }
    s->writer_started = 1;
    return s;

err_sync:
    set_err(err, errlen, "%s: cannot create a mutex or condition", path);
    goto err;
err_db:
    if (s->wdb)
        set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(s->wdb));
    else
        set_err(err, errlen, "%s: out of memory", path);
err:
    store_free(s);
    return NULL;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    while (s->active > 0)
        pthread_cond_wait(&s->idle, &s->mu);
    s->stop = 1; /* the writer drains the queue first */
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    if (s->writer_started)
        pthread_join(s->writer, NULL);
    store_free(s);
}

/* ---- writes ------------------------------------------------------------------------------- */

static int name_ok(const char *name)
{
    return name && *name;
}

int store_put_agent(store_t *s, const char *name, const char *config_json)
{
    if (!s || !name_ok(name) || !config_json)
        return STORE_EINVAL;
    store_op op = {.kind = OP_PUT_AGENT, .name = name, .config = config_json};
    return submit_wait(s, &op);
}

int store_update_agent(store_t *s, const char *name, const char *config_json)
{
    if (!s || !name_ok(name) || !config_json)
        return STORE_EINVAL;
    store_op op = {.kind = OP_UPDATE_AGENT, .name = name, .config = config_json};
    return submit_wait(s, &op);
}

int store_delete_agent(store_t *s, const char *name)
{
    if (!s || !name_ok(name))
        return STORE_EINVAL;
    store_op op = {.kind = OP_DELETE_AGENT, .name = name};
    return submit_wait(s, &op);
}

/* Queues a raise of the on-disk reservation; the writer commits it with its next batch. */
static void reserve_ids(store_t *s)
{
    store_op *op = calloc(1, sizeof *op);
    if (op) {
        op->kind = OP_RESERVE_IDS;
        op->value = atomic_load(&s->next_id) + ID_RESERVE;
        op->bytes = sizeof *op;
    }
    if (!op || submit_async(s, op) != 0) {
        free(op);
        atomic_store(&s->reserving, 0); /* the next call tries again */
    }
}

uint64_t store_next_episode_id(store_t *s)
{
    if (!s)
        return 0;
    uint64_t id = atomic_fetch_add(&s->next_id, 1);
    /* Half the reservation left: raise it long before ids could outrun it. */
    if (id + ID_RESERVE / 2 >= atomic_load(&s->reserved) && !atomic_exchange(&s->reserving, 1))
        reserve_ids(s);
    /* A burst of ID_RESERVE / 2 ids within one commit did outrun it: wait for a reservation
     * that covers id, so that no restart can hand it out again. Twice at most: when the disk
     * refuses (full), the id is still unique within this run. */
    for (int round = 0; round < 2 && id >= atomic_load(&s->reserved); round++) {
        if (!atomic_exchange(&s->reserving, 1))
            reserve_ids(s); /* its value is above id: next_id is */
        if (call_enter(s) != 0)
            break;
        pthread_mutex_lock(&s->mu);
        while (id >= atomic_load(&s->reserved) && atomic_load(&s->reserving))
            pthread_cond_wait(&s->done, &s->mu);
        pthread_mutex_unlock(&s->mu);
        call_leave(s);
    }
    return id;
}

/* Checks a chunk against store.h's contract: 0 or STORE_EINVAL. The episode id must have come
 * from store_next_episode_id. Arrays come in pairs: action with has_action, dist with has_dist,
 * both or neither; a flag set needs its array. */
static int steps_check(store_t *s, const store_steps *c)
{
    if (!c || !name_ok(c->agent) || c->episode_id == 0 || c->episode_id > INT64_MAX ||
        c->episode_id >= atomic_load(&s->next_id))
        return STORE_EINVAL;
    if (c->n < 0 || c->n > CHUNK_STEPS_MAX || c->first_k < 0 || c->first_k > INT_MAX - c->n)
        return STORE_EINVAL;
    if (c->dx < 1 || c->dx > DIM_MAX || c->da < 0 || c->da > DIM_MAX)
        return STORE_EINVAL;
    if ((!c->action) != (!c->has_action) || (!c->dist) != (!c->has_dist))
        return STORE_EINVAL;
    if (c->n > 0 && (!c->obs || !c->reward))
        return STORE_EINVAL;
    for (int i = 0; i < c->n; i++) {
        if (((c->has_action && c->has_action[i]) || (c->has_dist && c->has_dist[i])) && c->da == 0)
            return STORE_EINVAL;
    }
    return 0;
}

int store_put_episodes(store_t *s, const store_steps *eps, int n, uint8_t *dup)
{
    if (!s || n < 0 || (n > 0 && !eps))
        return STORE_EINVAL;
    for (int i = 0; i < n; i++) {
        int res = steps_check(s, &eps[i]);
        if (res)
            return res;
    }
    if (dup)
        memset(dup, 0, (size_t)n);
    if (n == 0)
        return 0;
    store_op op = {.kind = OP_PUT_EPISODES, .eps = eps, .n = n, .dup = dup};
    int res = submit_wait(s, &op);
    if (res && dup)
        memset(dup, 0, (size_t)n); /* nothing was written */
    return res;
}

/* Copies n elements of size sz from src to *p (when src is set) and advances *p. */
static void *copy_in(char **p, const void *src, size_t n, size_t sz)
{
    if (!src)
        return NULL;
    void *dst = *p;
    memcpy(dst, src, n * sz);
    *p += n * sz;
    return dst;
}

int store_append_steps_async(store_t *s, const store_steps *steps)
{
    if (!s)
        return STORE_EINVAL;
    int res = steps_check(s, steps);
    if (res)
        return res;
    const store_steps *c = steps;
    size_t n = (size_t)c->n, dx = (size_t)c->dx, da = (size_t)c->da;
    /* The limits of steps_check keep these sums far from overflow on a 64-bit size_t. */
    uint64_t floats = (uint64_t)n * (dx + 1 + (c->action ? da : 0) + (c->dist ? 2 * da : 0));
    uint64_t bytes = sizeof(store_op) + floats * sizeof(float) + (c->has_action ? n : 0) +
                     (c->has_dist ? n : 0) + strlen(c->agent) + 1 +
                     (c->client_id ? strlen(c->client_id) + 1 : 0);
    if (bytes > ASYNC_BYTES_MAX)
        return STORE_ENOMEM;
    store_op *op = calloc(1, (size_t)bytes);
    if (!op)
        return STORE_ENOMEM;
    op->kind = OP_APPEND;
    op->bytes = (size_t)bytes;
    op->chunk = *c;
    /* Floats first: sizeof(store_op) keeps them aligned. */
    char *p = (char *)(op + 1);
    op->chunk.obs = copy_in(&p, c->obs, n * dx, sizeof(float));
    op->chunk.reward = copy_in(&p, c->reward, n, sizeof(float));
    op->chunk.action = copy_in(&p, c->action, n * da, sizeof(float));
    op->chunk.dist = copy_in(&p, c->dist, n * 2 * da, sizeof(float));
    op->chunk.has_action = copy_in(&p, c->has_action, n, 1);
    op->chunk.has_dist = copy_in(&p, c->has_dist, n, 1);
    op->chunk.agent = copy_in(&p, c->agent, strlen(c->agent) + 1, 1);
    op->chunk.client_id = copy_in(&p, c->client_id, c->client_id ? strlen(c->client_id) + 1 : 0, 1);
    op->eps = &op->chunk;
    res = submit_async(s, op);
    if (res)
        free(op);
    return res;
}

int store_flush(store_t *s)
{
    if (!s)
        return STORE_EINVAL;
    store_op op = {.kind = OP_FLUSH};
    return submit_wait(s, &op);
}

int store_put_checkpoint(store_t *s, const char *agent, long step, const unsigned char *buf,
                         size_t len)
{
    if (!s || !name_ok(agent) || (len > 0 && !buf))
        return STORE_EINVAL;
    store_op op = {.kind = OP_PUT_CHECKPOINT, .name = agent, .step = step, .buf = buf, .len = len};
    return submit_wait(s, &op);
}

int store_test_set_max_pages(store_t *s, long pages)
{
    if (!s)
        return STORE_EINVAL;
    store_op op = {.kind = OP_MAX_PAGES, .pages = pages};
    return submit_wait(s, &op);
}

void store_test_stats(store_t *s, long *commits, long *ops)
{
    if (commits)
        *commits = s ? atomic_load(&s->commits) : 0;
    if (ops)
        *ops = s ? atomic_load(&s->ops) : 0;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* A read connection from the pool, or a new one. 0 or STORE_E*. */
static int reader_get(store_t *s, sqlite3 **out)
{
    *out = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool > 0)
        *out = s->pool[--s->npool];
    pthread_mutex_unlock(&s->pool_mu);
    if (*out)
        return 0;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA query_only = ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        return map_rc(rc);
    }
    *out = db;
    return 0;
}

/* Returns a read connection to the pool (closing it when the pool is full). */
static void reader_put(store_t *s, sqlite3 *db)
{
    if (!db)
        return;
    if (!sqlite3_get_autocommit(db) && exec_sql(db, "ROLLBACK") != 0) {
        sqlite3_close(db); /* stuck in a transaction: not reusable */
        return;
    }
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool < READ_POOL_MAX) {
        s->pool[s->npool++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    sqlite3_close(db);
}

/* Looks an agent up on a read connection: 0 with *id, STORE_ENOENT, or STORE_E*. */
static int r_agent_id(sqlite3 *db, const char *name, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT id FROM agents WHERE name = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? STORE_ENOENT : map_rc(rc);
}

int store_list_agents(store_t *s, store_agent_cb cb, void *ctx)
{
    if (!s || !cb)
        return STORE_EINVAL;
    int res = call_enter(s);
    if (res)
        return res;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    res = reader_get(s, &db);
    if (res)
        goto out;
    int rc = sqlite3_prepare_v2(db, "SELECT name, config FROM agents ORDER BY id", -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *config = (const char *)sqlite3_column_text(st, 1);
        if (!name || !config) {
            rc = sqlite3_errcode(db) == SQLITE_NOMEM ? SQLITE_NOMEM : SQLITE_CORRUPT;
            break;
        }
        res = cb(ctx, name, config);
        if (res)
            goto out;
    }
    res = map_rc(rc);
out:
    sqlite3_finalize(st);
    reader_put(s, db);
    call_leave(s);
    return res;
}

/* An episode chosen by store_load_steps: its last `take` steps are wanted. */
typedef struct chosen_episode {
    int64_t id;
    int take, dx, da, terminal;
    char *client_id;
} chosen_episode;

/* The arrays handed to a store_load_steps callback, reused from episode to episode. */
enum { LB_OBS, LB_REWARD, LB_ACTION, LB_DIST, LB_HAS_ACTION, LB_HAS_DIST, LB_COUNT };
typedef struct load_buf {
    void *p[LB_COUNT];
    size_t cap[LB_COUNT]; /* bytes */
} load_buf;

/* Room for n steps of (dx, da). 0 or STORE_ENOMEM. */
static int load_buf_reserve(load_buf *b, size_t n, size_t dx, size_t da)
{
    if (n > SIZE_MAX / (sizeof(float) * (dx + 2 * da + 1)))
        return STORE_ENOMEM;
    size_t f = sizeof(float);
    size_t want[LB_COUNT] = {n * dx * f, n * f, n * da * f, n * 2 * da * f, n, n};
    for (int i = 0; i < LB_COUNT; i++) {
        if (want[i] <= b->cap[i])
            continue;
        void *p = realloc(b->p[i], want[i]);
        if (!p)
            return STORE_ENOMEM;
        b->p[i] = p;
        b->cap[i] = want[i];
    }
    return 0;
}

static void load_buf_free(load_buf *b)
{
    for (int i = 0; i < LB_COUNT; i++)
        free(b->p[i]);
}

/* Copies a float blob of exactly n floats (or NULL when allowed) into dst. 1 when present, 0
 * when NULL, or STORE_E* (a blob of the wrong size means a corrupt database). */
static int read_floats(sqlite3 *db, sqlite3_stmt *q, int col, float *dst, size_t n, int nullable)
{
    if (sqlite3_column_type(q, col) == SQLITE_NULL)
        return nullable ? 0 : STORE_EIO;
    const void *blob = sqlite3_column_blob(q, col);
    size_t bytes = (size_t)sqlite3_column_bytes(q, col);
    if (!blob)
        return sqlite3_errcode(db) == SQLITE_NOMEM ? STORE_ENOMEM : STORE_EIO;
    if (bytes != n * sizeof(float))
        return STORE_EIO;
    memcpy(dst, blob, bytes);
    return 1;
}

/* Reads the last ep->take steps of an episode into b (newest first from the back) and calls cb
 * with the contiguous run that ends the episode (a step lost to a failed write cuts it). */
static int load_episode(sqlite3 *db, sqlite3_stmt *q, const chosen_episode *ep, const char *agent,
                        load_buf *lb, store_steps_cb cb, void *ctx)
{
    size_t take = (size_t)ep->take, dx = (size_t)ep->dx, da = (size_t)ep->da;
    int res = load_buf_reserve(lb, take, dx, da);
    if (res)
        return res;
    float *obs = lb->p[LB_OBS];       /* (take, dx) */
    float *reward = lb->p[LB_REWARD]; /* (take) */
    float *action = lb->p[LB_ACTION]; /* (take, da) */
    float *dist = lb->p[LB_DIST];     /* (take, 2 da) */
    uint8_t *has_action = lb->p[LB_HAS_ACTION], *has_dist = lb->p[LB_HAS_DIST];
    int rc = sqlite3_bind_int64(q, 1, ep->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q, 2, ep->take);
    if (rc != SQLITE_OK) {
        stmt_done(q);
        return map_rc(rc);
    }
    size_t m = 0; /* rows read; row r lands at take - 1 - r */
    int64_t k = 0, dists = 0;
    while (m < take) {
        rc = sqlite3_step(q);
        if (rc != SQLITE_ROW)
            break;
        int64_t row_k = sqlite3_column_int64(q, 0);
        if (m > 0 && row_k != k - 1)
            break; /* a gap: keep the run after it */
        k = row_k;
        size_t i = take - 1 - m;
        res = read_floats(db, q, 1, obs + i * dx, dx, 0);
        if (res >= 0)
            res = read_floats(db, q, 2, reward + i, 1, 0);
        if (res >= 0) {
            res = read_floats(db, q, 3, action + i * da, da, 1);
            has_action[i] = res == 1;
            if (res == 0)
                memset(action + i * da, 0, da * sizeof(float));
        }
        if (res >= 0) {
            res = read_floats(db, q, 4, dist + i * 2 * da, 2 * da, 1);
            has_dist[i] = res == 1;
            dists += res == 1;
            if (res == 0)
                memset(dist + i * 2 * da, 0, 2 * da * sizeof(float));
        }
        if (res < 0) {
            stmt_done(q);
            return res;
        }
        m++;
    }
    stmt_done(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_rc(rc);
    if (m == 0)
        return 0;
    size_t off = take - m;
    store_steps out = {
        .agent = agent,
        .episode_id = (uint64_t)ep->id,
        .client_id = ep->client_id,
        .first_k = (int)k,
        .n = (int)m,
        .dx = ep->dx,
        .da = ep->da,
        .obs = obs + off * dx,
        .reward = reward + off,
        .action = action + off * da,
        .has_action = has_action + off,
        .dist = dists ? dist + off * 2 * da : NULL,
        .has_dist = dists ? has_dist + off : NULL,
        .terminal = ep->terminal,
    };
    return cb(ctx, &out);
}

int store_load_steps(store_t *s, const char *agent, long max_steps, store_steps_cb cb, void *ctx)
{
    if (!s || !name_ok(agent) || !cb || max_steps < 0)
        return STORE_EINVAL;
    int res = call_enter(s);
    if (res)
        return res;
    sqlite3 *db = NULL;
    sqlite3_stmt *q_eps = NULL, *q_steps = NULL;
    chosen_episode *chosen = NULL;
    size_t n_chosen = 0, cap_chosen = 0;
    load_buf buf = {0};
    int64_t agent_id = 0;

    res = reader_get(s, &db);
    if (res == 0)
        res = exec_sql(db, "BEGIN"); /* one snapshot for both passes */
    if (res == 0)
        res = r_agent_id(db, agent, &agent_id);
    if (res)
        goto out;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT id, n_steps, dx, da, terminal, client_id FROM episodes"
                                " WHERE agent_id = ?1 AND n_steps > 0 ORDER BY id DESC",
                                -1, &q_eps, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "SELECT k, obs, reward, action, dist FROM steps"
                                " WHERE episode_id = ?1 ORDER BY k DESC LIMIT ?2",
                                -1, &q_steps, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(q_eps, 1, agent_id);
    /* Pass 1, newest first: whole episodes while they fit, then the tail of the next one. */
    long left = max_steps;
    while (rc == SQLITE_OK && left > 0) {
        rc = sqlite3_step(q_eps);
        if (rc != SQLITE_ROW)
            break;
        rc = SQLITE_OK;
        int64_t n = sqlite3_column_int64(q_eps, 1);
        if (n_chosen == cap_chosen) {
            size_t cap = cap_chosen ? 2 * cap_chosen : 16;
            chosen_episode *more = realloc(chosen, cap * sizeof *chosen);
            if (!more) {
                res = STORE_ENOMEM;
                goto out;
            }
            chosen = more;
            cap_chosen = cap;
        }
        chosen_episode *ep = &chosen[n_chosen];
        const char *client_id = (const char *)sqlite3_column_text(q_eps, 5);
        ep->client_id = client_id ? strdup(client_id) : NULL;
        if (client_id && !ep->client_id) {
            res = STORE_ENOMEM;
            goto out;
        }
        n_chosen++;
        ep->id = sqlite3_column_int64(q_eps, 0);
        ep->take = (int)(n < left ? n : left);
        ep->dx = sqlite3_column_int(q_eps, 2);
        ep->da = sqlite3_column_int(q_eps, 3);
        ep->terminal = sqlite3_column_int(q_eps, 4);
        if (n > INT_MAX || ep->dx < 1 || ep->dx > DIM_MAX || ep->da < 0 || ep->da > DIM_MAX) {
            res = STORE_EIO; /* not something this module writes */
            goto out;
        }
        left -= ep->take;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        res = map_rc(rc);
        goto out;
    }
    /* Pass 2, oldest first. */
    for (size_t i = n_chosen; i-- > 0 && res == 0;)
        res = load_episode(db, q_steps, &chosen[i], agent, &buf, cb, ctx);
out:
    sqlite3_finalize(q_eps);
    sqlite3_finalize(q_steps);
    reader_put(s, db); /* ends the read transaction */
    for (size_t i = 0; i < n_chosen; i++)
        free(chosen[i].client_id);
    free(chosen);
    load_buf_free(&buf);
    call_leave(s);
    return res;
}

int store_count(store_t *s, const char *agent, long *steps, long *transitions)
{
    if (!s || !name_ok(agent))
        return STORE_EINVAL;
    int res = call_enter(s);
    if (res)
        return res;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t agent_id = 0;
    res = reader_get(s, &db);
    if (res == 0)
        res = exec_sql(db, "BEGIN");
    if (res == 0)
        res = r_agent_id(db, agent, &agent_id);
    if (res)
        goto out;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT coalesce(sum(n_steps), 0), coalesce(sum(n_actions), 0)"
                                " FROM episodes WHERE agent_id = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, agent_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (steps)
            *steps = (long)sqlite3_column_int64(st, 0);
        if (transitions)
            *transitions = (long)sqlite3_column_int64(st, 1);
    }
    res = rc == SQLITE_ROW ? 0 : map_rc(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
out:
    sqlite3_finalize(st);
    reader_put(s, db);
    call_leave(s);
    return res;
}

int store_get_checkpoint(store_t *s, const char *agent, unsigned char **buf, size_t *len,
                         long *step)
{
    if (!s || !name_ok(agent) || !buf || !len)
        return STORE_EINVAL;
    *buf = NULL;
    *len = 0;
    int res = call_enter(s);
    if (res)
        return res;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    res = reader_get(s, &db);
    if (res)
        goto out;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT c.step, c.data FROM checkpoints c"
                                " JOIN agents a ON a.id = c.agent_id WHERE a.name = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        res = rc == SQLITE_DONE ? STORE_ENOENT : map_rc(rc);
        goto out;
    }
    const void *data = sqlite3_column_blob(st, 1);
    size_t n = (size_t)sqlite3_column_bytes(st, 1);
    if (!data && n > 0) {
        res = STORE_ENOMEM;
        goto out;
    }
    unsigned char *copy = malloc(n > 0 ? n : 1);
    if (!copy) {
        res = STORE_ENOMEM;
        goto out;
    }
    if (n > 0)
        memcpy(copy, data, n);
    *buf = copy;
    *len = n;
    if (step)
        *step = (long)sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    reader_put(s, db);
    call_leave(s);
    return res;
}
