/* check_store: server/store.c on real SQLite databases in mkdtemp directories under /tmp: agents,
 * bit-exact round trips of episodes through store_load_steps (trimmed tails included), dedupe
 * by client_id, async appends, group commit under concurrent writers, persistence across
 * reopen, checkpoints, counts, argument and open errors, and disk-full handling.
 *
 * Every stored float is a function of (seed, k, j) that mixes in the values a careless encoding
 * loses (-0.0, a denormal, NaN with a payload, infinities), so a loaded episode says by itself
 * what it should hold and comparisons are of bits, never of values.
 */
#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/store.h"
#include "testutil.h"

#define DX 3
#define DA 2

/* ---- directories -------------------------------------------------------------------------- */

static char *tmpdir_new(void)
{
    char *dir = strdup("/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            rm_rf(child);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void tmpdir_free(char *dir)
{
    rm_rf(dir);
    free(dir);
}

static store_t *open_store(const char *dir, int sync_full)
{
    char err[256];
    store_t *s = store_open(dir, sync_full, err, sizeof err);
    ck_assert_msg(s != NULL, "store_open(%s): %s", dir, err);
    return s;
}

/* One integer from SQL run on the database behind the store's back (a WAL reader). */
static long sql_long(const char *dir, const char *sql)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/elbod.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    long v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- episodes ----------------------------------------------------------------------------- */

static float bits_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float value(uint32_t seed, int k, int j)
{
    uint32_t h = seed * 2654435761u ^ ((uint32_t)k + 1u) * 40503u ^ ((uint32_t)j + 7u) * 97u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    switch (h % 11) {
    case 0:
        return -0.0f;
    case 1:
        return bits_float(0x00000001u); /* the smallest denormal */
    case 2:
        return bits_float(0x7fc01234u); /* NaN with a payload */
    case 3:
        return bits_float(0xff800000u); /* -inf */
    default:
        return (float)(h % 100003u) / 7.0f - 7000.0f;
    }
}

/* dist_mode: 0 no distributions, 1 one with every action, 2 at even steps only. */
typedef struct episode {
    store_steps st;
    float *obs, *reward, *action, *dist;
    uint8_t *has_action, *has_dist;
    char client_id[48];
} episode;

static void episode_make(episode *e, const char *agent, uint64_t id, const char *client_id,
                         int first_k, int n, int dx, int da, uint32_t seed, int dist_mode,
                         int terminal)
{
    memset(e, 0, sizeof *e);
    e->obs = calloc((size_t)n * dx + 1, sizeof(float));
    e->reward = calloc((size_t)n + 1, sizeof(float));
    e->action = calloc((size_t)n * da + 1, sizeof(float));
    e->has_action = calloc((size_t)n + 1, 1);
    ck_assert(e->obs && e->reward && e->action && e->has_action);
    if (dist_mode) {
        e->dist = calloc((size_t)n * 2 * da + 1, sizeof(float));
        e->has_dist = calloc((size_t)n + 1, 1);
        ck_assert(e->dist && e->has_dist);
    }
    for (int i = 0; i < n; i++) {
        int k = first_k + i;
        for (int j = 0; j < dx; j++)
            e->obs[(size_t)i * dx + j] = value(seed, k, j);
        e->reward[i] = value(seed, k, 100);
        /* No action after the last observation of a finished episode, nor every 5th step. */
        e->has_action[i] = !(terminal && i == n - 1) && k % 5 != 4;
        for (int j = 0; j < da; j++)
            e->action[(size_t)i * da + j] = e->has_action[i] ? value(seed, k, 200 + j) : 0.0f;
        if (dist_mode) {
            e->has_dist[i] = e->has_action[i] && (dist_mode == 1 || k % 2 == 0);
            for (int j = 0; j < 2 * da; j++)
                e->dist[(size_t)i * 2 * da + j] = e->has_dist[i] ? value(seed, k, 300 + j) : 0.0f;
        }
    }
    if (client_id)
        snprintf(e->client_id, sizeof e->client_id, "%s", client_id);
    e->st = (store_steps){.agent = agent,
                          .episode_id = id,
                          .client_id = client_id ? e->client_id : NULL,
                          .first_k = first_k,
                          .n = n,
                          .dx = dx,
                          .da = da,
                          .obs = e->obs,
                          .reward = e->reward,
                          .action = e->action,
                          .has_action = e->has_action,
                          .dist = e->dist,
                          .has_dist = e->has_dist,
                          .terminal = terminal};
}

static void episode_free(episode *e)
{
    free(e->obs);
    free(e->reward);
    free(e->action);
    free(e->dist);
    free(e->has_action);
    free(e->has_dist);
    memset(e, 0, sizeof *e);
}

/* The chunk of e holding steps [from, from + n). */
static store_steps episode_chunk(const episode *e, int from, int n, int terminal)
{
    store_steps c = e->st;
    int dx = c.dx, da = c.da;
    c.first_k = e->st.first_k + from;
    c.n = n;
    c.obs = e->obs + (size_t)from * dx;
    c.reward = e->reward + from;
    c.action = e->action + (size_t)from * da;
    c.has_action = e->has_action + from;
    c.dist = e->dist ? e->dist + (size_t)from * 2 * da : NULL;
    c.has_dist = e->has_dist ? e->has_dist + from : NULL;
    c.terminal = terminal;
    return c;
}

/* Asserts that got holds the steps of want from step index `from` on, bit for bit. */
static void assert_same_steps(const store_steps *got, const episode *want, int from)
{
    const store_steps *w = &want->st;
    int dx = w->dx, da = w->da;
    ck_assert_uint_eq(got->episode_id, w->episode_id);
    ck_assert_int_eq(got->first_k, w->first_k + from);
    ck_assert_int_eq(got->n, w->n - from);
    ck_assert_int_eq(got->dx, dx);
    ck_assert_int_eq(got->da, da);
    ck_assert_int_eq(got->terminal != 0, w->terminal != 0);
    if (w->client_id)
        ck_assert_str_eq(got->client_id, w->client_id);
    else
        ck_assert_ptr_null(got->client_id);
    ck_assert_str_eq(got->agent, w->agent);
    for (int i = 0; i < got->n; i++) {
        int wi = from + i;
        ck_assert_msg(
            memcmp(got->obs + (size_t)i * dx, want->obs + (size_t)wi * dx, sizeof(float) * dx) == 0,
            "obs of episode %llu step %d differ", (unsigned long long)w->episode_id,
            got->first_k + i);
        ck_assert(memcmp(got->reward + i, want->reward + wi, sizeof(float)) == 0);
        ck_assert_int_eq(got->has_action[i], want->has_action[wi]);
        if (want->has_action[wi])
            ck_assert(memcmp(got->action + (size_t)i * da, want->action + (size_t)wi * da,
                             sizeof(float) * da) == 0);
        int want_dist = want->has_dist && want->has_dist[wi];
        int got_dist = got->dist && got->has_dist && got->has_dist[i];
        ck_assert_int_eq(got_dist, want_dist);
        if (want_dist)
            ck_assert(memcmp(got->dist + (size_t)i * 2 * da, want->dist + (size_t)wi * 2 * da,
                             sizeof(float) * 2 * da) == 0);
    }
}

/* Deep copies of what store_load_steps delivered. */
typedef struct loaded {
    episode *eps;
    int n, cap;
    int stop_after; /* > 0: the callback returns 99 after that many episodes */
} loaded;

static int collect(void *ctx, const store_steps *ep)
{
    loaded *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->eps = realloc(l->eps, sizeof *l->eps * (size_t)l->cap);
        ck_assert_ptr_nonnull(l->eps);
    }
    episode *e = &l->eps[l->n++];
    int n = ep->n, dx = ep->dx, da = ep->da;
    memset(e, 0, sizeof *e);
    e->obs = malloc(sizeof(float) * ((size_t)n * dx + 1));
    e->reward = malloc(sizeof(float) * ((size_t)n + 1));
    e->action = malloc(sizeof(float) * ((size_t)n * da + 1));
    e->has_action = malloc((size_t)n + 1);
    ck_assert(e->obs && e->reward && e->action && e->has_action);
    memcpy(e->obs, ep->obs, sizeof(float) * (size_t)n * dx);
    memcpy(e->reward, ep->reward, sizeof(float) * (size_t)n);
    memcpy(e->action, ep->action, sizeof(float) * (size_t)n * da);
    memcpy(e->has_action, ep->has_action, (size_t)n);
    if (ep->dist) {
        ck_assert_ptr_nonnull(ep->has_dist);
        e->dist = malloc(sizeof(float) * ((size_t)n * 2 * da + 1));
        e->has_dist = malloc((size_t)n + 1);
        ck_assert(e->dist && e->has_dist);
        memcpy(e->dist, ep->dist, sizeof(float) * (size_t)n * 2 * da);
        memcpy(e->has_dist, ep->has_dist, (size_t)n);
    }
    if (ep->client_id)
        snprintf(e->client_id, sizeof e->client_id, "%s", ep->client_id);
    e->st = *ep;
    e->st.agent = NULL; /* borrowed: gone after the call */
    e->st.client_id = ep->client_id ? e->client_id : NULL;
    e->st.obs = e->obs;
    e->st.reward = e->reward;
    e->st.action = e->action;
    e->st.has_action = e->has_action;
    e->st.dist = e->dist;
    e->st.has_dist = e->has_dist;
    return l->stop_after > 0 && l->n >= l->stop_after ? 99 : 0;
}

static void loaded_free(loaded *l)
{
    for (int i = 0; i < l->n; i++)
        episode_free(&l->eps[i]);
    free(l->eps);
    memset(l, 0, sizeof *l);
}

/* Loads an agent's window into l (emptied first) and checks the order of the episodes. */
static void load(store_t *s, const char *agent, long max_steps, loaded *l)
{
    loaded_free(l);
    ck_assert_int_eq(store_load_steps(s, agent, max_steps, collect, l), 0);
    for (int i = 1; i < l->n; i++)
        ck_assert_uint_gt(l->eps[i].st.episode_id, l->eps[i - 1].st.episode_id);
}

/* assert_same_steps against a loaded copy (whose agent name is gone, and whose client_id
 * pointer realloc may have moved with the array). */
static void assert_loaded(const episode *got, const episode *want, int from)
{
    store_steps g = got->st;
    g.agent = want->st.agent;
    g.client_id = got->st.client_id ? got->client_id : NULL;
    assert_same_steps(&g, want, from);
}

static void assert_counts(store_t *s, const char *agent, long steps, long transitions)
{
    long st = -1, tr = -1;
    ck_assert_int_eq(store_count(s, agent, &st, &tr), 0);
    ck_assert_int_eq(st, steps);
    ck_assert_int_eq(tr, transitions);
}

static long episode_transitions(const episode *e)
{
    long t = 0;
    for (int i = 0; i < e->st.n; i++)
        t += e->has_action[i] != 0;
    return t;
}

/* ---- agents ------------------------------------------------------------------------------- */

typedef struct agent_list {
    char names[8][32];
    char configs[8][64];
    int n;
    int stop_at; /* > 0: return 7 at that agent */
} agent_list;

static int list_cb(void *ctx, const char *name, const char *config)
{
    agent_list *l = ctx;
    ck_assert_int_lt(l->n, 8);
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    snprintf(l->configs[l->n], sizeof l->configs[0], "%s", config);
    l->n++;
    return l->stop_at > 0 && l->n == l->stop_at ? 7 : 0;
}

START_TEST(test_agents)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "alpha", "{\"v\":1}"), 0);
    ck_assert_int_eq(store_put_agent(s, "alpha", "{\"v\":9}"), STORE_EEXIST);
    ck_assert_int_eq(store_update_agent(s, "alpha", "{\"v\":2}"), 0);
    ck_assert_int_eq(store_update_agent(s, "nobody", "{}"), STORE_ENOENT);
    ck_assert_int_eq(store_put_agent(s, "beta", "{\"b\":true}"), 0);
    ck_assert_int_eq(store_put_agent(s, "gamma", "{}"), 0);

    agent_list l = {0};
    ck_assert_int_eq(store_list_agents(s, list_cb, &l), 0);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.names[0], "alpha");
    ck_assert_str_eq(l.configs[0], "{\"v\":2}");
    ck_assert_str_eq(l.names[1], "beta");
    ck_assert_str_eq(l.configs[1], "{\"b\":true}");
    ck_assert_str_eq(l.names[2], "gamma");

    /* A non-zero return stops the walk and comes back. */
    agent_list stop = {.stop_at = 2};
    ck_assert_int_eq(store_list_agents(s, list_cb, &stop), 7);
    ck_assert_int_eq(stop.n, 2);

    ck_assert_int_eq(store_delete_agent(s, "nobody"), STORE_ENOENT);
    ck_assert_int_eq(store_delete_agent(s, "alpha"), 0);
    ck_assert_int_eq(store_delete_agent(s, "alpha"), STORE_ENOENT);
    ck_assert_int_eq(store_update_agent(s, "alpha", "{}"), STORE_ENOENT);
    /* Re-created, it comes last: creation order. */
    ck_assert_int_eq(store_put_agent(s, "alpha", "{\"v\":3}"), 0);
    agent_list l2 = {0};
    ck_assert_int_eq(store_list_agents(s, list_cb, &l2), 0);
    ck_assert_int_eq(l2.n, 3);
    ck_assert_str_eq(l2.names[0], "beta");
    ck_assert_str_eq(l2.names[1], "gamma");
    ck_assert_str_eq(l2.names[2], "alpha");
    ck_assert_str_eq(l2.configs[2], "{\"v\":3}");
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_delete_cascades)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    ck_assert_int_eq(store_put_agent(s, "b", "{}"), 0);
    episode ea, eb, es;
    episode_make(&ea, "a", store_next_episode_id(s), "x", 0, 6, DX, DA, 1, 1, 1);
    episode_make(&eb, "b", store_next_episode_id(s), "x", 0, 4, DX, DA, 2, 0, 0);
    episode_make(&es, "a", store_next_episode_id(s), NULL, 0, 3, DX, DA, 3, 2, 0);
    ck_assert_int_eq(store_put_episodes(s, &ea.st, 1, NULL), 0);
    ck_assert_int_eq(store_put_episodes(s, &eb.st, 1, NULL), 0);
    ck_assert_int_eq(store_append_steps_async(s, &es.st), 0);
    ck_assert_int_eq(store_flush(s), 0);
    const unsigned char ck[] = {1, 2, 3};
    ck_assert_int_eq(store_put_checkpoint(s, "a", 5, ck, sizeof ck), 0);
    ck_assert_int_eq(store_put_checkpoint(s, "b", 6, ck, sizeof ck), 0);
    ck_assert_int_eq(sql_long(dir, "SELECT count(*) FROM steps"), 13);

    ck_assert_int_eq(store_delete_agent(s, "a"), 0);
    ck_assert_int_eq(sql_long(dir, "SELECT count(*) FROM episodes"), 1);
    ck_assert_int_eq(sql_long(dir, "SELECT count(*) FROM steps"), 4);
    ck_assert_int_eq(sql_long(dir, "SELECT count(*) FROM checkpoints"), 1);
    long steps = 0;
    ck_assert_int_eq(store_count(s, "a", &steps, NULL), STORE_ENOENT);
    loaded l = {0};
    ck_assert_int_eq(store_load_steps(s, "a", 100, collect, &l), STORE_ENOENT);
    unsigned char *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, NULL), STORE_ENOENT);

    /* A new agent of the same name starts empty; the other agent is untouched. */
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    assert_counts(s, "a", 0, 0);
    load(s, "a", 100, &l);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, NULL), STORE_ENOENT);
    load(s, "b", 100, &l);
    ck_assert_int_eq(l.n, 1);
    assert_loaded(&l.eps[0], &eb, 0);
    /* The client id of a deleted agent's episode is free again. */
    episode ea2;
    episode_make(&ea2, "a", store_next_episode_id(s), "x", 0, 2, DX, DA, 4, 0, 1);
    uint8_t dup = 9;
    ck_assert_int_eq(store_put_episodes(s, &ea2.st, 1, &dup), 0);
    ck_assert_int_eq(dup, 0);

    loaded_free(&l);
    episode_free(&ea);
    episode_free(&eb);
    episode_free(&es);
    episode_free(&ea2);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

/* ---- experience --------------------------------------------------------------------------- */

START_TEST(test_round_trip)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    episode e[4];
    episode_make(&e[0], "a", store_next_episode_id(s), "gym-1", 0, 9, DX, DA, 11, 1, 1);
    episode_make(&e[1], "a", store_next_episode_id(s), NULL, 0, 7, DX, DA, 12, 0, 0);
    episode_make(&e[2], "a", store_next_episode_id(s), "gym-2", 0, 12, DX, DA, 13, 2, 1);
    /* Another shape: an observation-only episode (da = 0, no actions at all). */
    episode_make(&e[3], "a", store_next_episode_id(s), NULL, 0, 3, 5, 0, 14, 0, 0);
    e[3].st.action = NULL;
    e[3].st.has_action = NULL;
    memset(e[3].has_action, 0, 3);
    store_steps eps[4] = {e[0].st, e[1].st, e[2].st, e[3].st};
    uint8_t dup[4] = {9, 9, 9, 9};
    ck_assert_int_eq(store_put_episodes(s, eps, 4, dup), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(dup[i], 0);

    loaded l = {0};
    load(s, "a", 1000, &l);
    ck_assert_int_eq(l.n, 4);
    for (int i = 0; i < 4; i++)
        assert_loaded(&l.eps[i], &e[i], 0);
    /* No distribution anywhere in an episode: NULL, as store.h allows. */
    ck_assert_ptr_null(l.eps[1].st.dist);
    ck_assert_ptr_null(l.eps[1].st.has_dist);
    long transitions = 0;
    for (int i = 0; i < 4; i++)
        transitions += episode_transitions(&e[i]);
    assert_counts(s, "a", 9 + 7 + 12 + 3, transitions);

    /* A callback's non-zero return stops the walk and is returned. */
    loaded_free(&l);
    l.stop_after = 2;
    ck_assert_int_eq(store_load_steps(s, "a", 1000, collect, &l), 99);
    ck_assert_int_eq(l.n, 2);

    loaded_free(&l);
    for (int i = 0; i < 4; i++)
        episode_free(&e[i]);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_load_window)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    ck_assert_int_eq(store_put_agent(s, "other", "{}"), 0);
    episode e[3], o;
    const int len[3] = {5, 7, 4};
    for (int i = 0; i < 3; i++) {
        episode_make(&e[i], "a", store_next_episode_id(s), NULL, 0, len[i], DX, DA, 20 + i, i,
                     i != 2);
        ck_assert_int_eq(store_put_episodes(s, &e[i].st, 1, NULL), 0);
        /* Interleaved with another agent's episodes, which must not count. */
        episode_make(&o, "other", store_next_episode_id(s), NULL, 0, 50, DX, DA, 30 + i, 0, 1);
        ck_assert_int_eq(store_put_episodes(s, &o.st, 1, NULL), 0);
        episode_free(&o);
    }
    loaded l = {0};
    load(s, "a", 0, &l);
    ck_assert_int_eq(l.n, 0);

    load(s, "a", 4, &l); /* the newest alone, whole */
    ck_assert_int_eq(l.n, 1);
    assert_loaded(&l.eps[0], &e[2], 0);

    load(s, "a", 6, &l); /* + the last 2 of the middle one */
    ck_assert_int_eq(l.n, 2);
    assert_loaded(&l.eps[0], &e[1], 5);
    ck_assert_int_eq(l.eps[0].st.first_k, 5);
    ck_assert_int_eq(l.eps[0].st.terminal, 1);
    assert_loaded(&l.eps[1], &e[2], 0);

    load(s, "a", 11, &l); /* two whole */
    ck_assert_int_eq(l.n, 2);
    assert_loaded(&l.eps[0], &e[1], 0);
    assert_loaded(&l.eps[1], &e[2], 0);

    load(s, "a", 12, &l); /* + the last step of the oldest */
    ck_assert_int_eq(l.n, 3);
    assert_loaded(&l.eps[0], &e[0], 4);
    ck_assert_int_eq(l.eps[0].st.first_k, 4);
    assert_loaded(&l.eps[1], &e[1], 0);
    assert_loaded(&l.eps[2], &e[2], 0);

    load(s, "a", 1L << 40, &l); /* everything */
    ck_assert_int_eq(l.n, 3);
    for (int i = 0; i < 3; i++)
        assert_loaded(&l.eps[i], &e[i], 0);

    loaded_free(&l);
    for (int i = 0; i < 3; i++)
        episode_free(&e[i]);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_dedupe)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    ck_assert_int_eq(store_put_agent(s, "b", "{}"), 0);
    episode e[8];
    const char *cid[8] = {"x", "y", "y", "z", "z", NULL, NULL, "x"};
    for (int i = 0; i < 8; i++)
        episode_make(&e[i], i == 7 ? "b" : "a", store_next_episode_id(s), cid[i], 0, 3 + i, DX, DA,
                     40 + i, 1, 1);

    uint8_t dup[6];
    store_steps first[2] = {e[0].st, e[1].st};
    ck_assert_int_eq(store_put_episodes(s, first, 2, dup), 0);
    ck_assert_int_eq(dup[0], 0);
    ck_assert_int_eq(dup[1], 0);
    /* y again (across calls), z twice (within the call), NULLs never, x under another agent. */
    store_steps second[6] = {e[2].st, e[3].st, e[4].st, e[5].st, e[6].st, e[7].st};
    memset(dup, 9, sizeof dup);
    ck_assert_int_eq(store_put_episodes(s, second, 6, dup), 0);
    const uint8_t want_dup[6] = {1, 0, 1, 0, 0, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(dup[i] == want_dup[i], "dup[%d] = %d", i, dup[i]);

    loaded l = {0};
    load(s, "a", 1000, &l);
    const int kept[5] = {0, 1, 3, 5, 6};
    ck_assert_int_eq(l.n, 5);
    for (int i = 0; i < 5; i++)
        assert_loaded(&l.eps[i], &e[kept[i]], 0); /* y is the first y's data */
    assert_counts(s, "a", 3 + 4 + 6 + 8 + 9,
                  episode_transitions(&e[0]) + episode_transitions(&e[1]) +
                      episode_transitions(&e[3]) + episode_transitions(&e[5]) +
                      episode_transitions(&e[6]));
    load(s, "b", 1000, &l);
    ck_assert_int_eq(l.n, 1);

    /* A call naming an unknown agent fails whole: its valid episode is not written either. */
    episode fresh, ghost;
    episode_make(&fresh, "a", store_next_episode_id(s), "w", 0, 2, DX, DA, 50, 0, 1);
    episode_make(&ghost, "ghost", store_next_episode_id(s), "w", 0, 2, DX, DA, 51, 0, 1);
    store_steps bad[2] = {fresh.st, ghost.st};
    memset(dup, 9, sizeof dup);
    ck_assert_int_eq(store_put_episodes(s, bad, 2, dup), STORE_ENOENT);
    ck_assert_int_eq(dup[0], 0);
    load(s, "a", 1000, &l);
    ck_assert_int_eq(l.n, 5);
    /* ... and the client id is still free. */
    ck_assert_int_eq(store_put_episodes(s, &fresh.st, 1, dup), 0);
    ck_assert_int_eq(dup[0], 0);

    loaded_free(&l);
    for (int i = 0; i < 8; i++)
        episode_free(&e[i]);
    episode_free(&fresh);
    episode_free(&ghost);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_async_appends)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    /* Three sessions, interleaved in chunks of 1 to 3 steps; the last stays open. */
    enum { SESSIONS = 3 };
    const int len[SESSIONS] = {10, 7, 5};
    episode e[SESSIONS];
    int sent[SESSIONS] = {0};
    for (int i = 0; i < SESSIONS; i++)
        episode_make(&e[i], "a", store_next_episode_id(s), NULL, 0, len[i], DX, DA, 60 + i, i,
                     i < 2);
    for (int round = 0, left = 1; left; round++) {
        left = 0;
        for (int i = 0; i < SESSIONS; i++) {
            int n = 1 + (round + i) % 3;
            if (sent[i] + n > len[i])
                n = len[i] - sent[i];
            if (n <= 0)
                continue;
            int last = sent[i] + n == len[i];
            store_steps c = episode_chunk(&e[i], sent[i], n, last && e[i].st.terminal);
            ck_assert_int_eq(store_append_steps_async(s, &c), 0);
            sent[i] += n;
            left |= sent[i] < len[i];
        }
    }
    ck_assert_int_eq(store_flush(s), 0);
    loaded l = {0};
    load(s, "a", 1000, &l);
    ck_assert_int_eq(l.n, SESSIONS);
    for (int i = 0; i < SESSIONS; i++)
        assert_loaded(&l.eps[i], &e[i], 0);
    long transitions = 0;
    for (int i = 0; i < SESSIONS; i++)
        transitions += episode_transitions(&e[i]);
    assert_counts(s, "a", 22, transitions);

    /* Failing appends do not poison the ones around them, which may share their batch: an
     * unknown agent, a step stored already, other dimensions for an existing episode. */
    episode more;
    episode_make(&more, "a", store_next_episode_id(s), NULL, 0, 8, DX, DA, 70, 1, 1);
    store_steps ghost = episode_chunk(&more, 0, 2, 0);
    ghost.agent = "ghost";
    store_steps again = episode_chunk(&e[0], 3, 2, 0);
    store_steps wider = episode_chunk(&e[2], 0, 1, 0);
    wider.first_k = 5;
    wider.dx = 2;
    store_steps good1 = episode_chunk(&more, 0, 4, 0), good2 = episode_chunk(&more, 4, 4, 1);
    ck_assert_int_eq(store_append_steps_async(s, &good1), 0);
    ck_assert_int_eq(store_append_steps_async(s, &ghost), 0);
    ck_assert_int_eq(store_append_steps_async(s, &again), 0);
    ck_assert_int_eq(store_append_steps_async(s, &wider), 0);
    ck_assert_int_eq(store_append_steps_async(s, &good2), 0);
    int flushed = store_flush(s);
    ck_assert_msg(flushed == STORE_ENOENT || flushed == STORE_EINVAL, "flush: %s",
                  store_strerror(flushed));
    ck_assert_int_eq(store_flush(s), 0); /* the error was reported once */
    load(s, "a", 1000, &l);
    ck_assert_int_eq(l.n, SESSIONS + 1);
    for (int i = 0; i < SESSIONS; i++)
        assert_loaded(&l.eps[i], &e[i], 0);
    assert_loaded(&l.eps[SESSIONS], &more, 0);

    /* The session still open goes on (a later chunk extends it) and then ends. */
    episode tail;
    episode_make(&tail, "a", e[2].st.episode_id, NULL, 5, 3, DX, DA, 60 + 2, 2, 1);
    ck_assert_int_eq(store_append_steps_async(s, &tail.st), 0);
    ck_assert_int_eq(store_flush(s), 0);
    load(s, "a", 1000, &l);
    ck_assert_int_eq(l.eps[2].st.n, 8);
    ck_assert_int_eq(l.eps[2].st.terminal, 1);

    /* store_close commits what is still queued. */
    episode late;
    episode_make(&late, "a", store_next_episode_id(s), NULL, 0, 40, DX, DA, 71, 2, 1);
    for (int i = 0; i < 40; i++) {
        store_steps c = episode_chunk(&late, i, 1, i == 39);
        ck_assert_int_eq(store_append_steps_async(s, &c), 0);
    }
    store_close(s);
    s = open_store(dir, 0);
    load(s, "a", 1000, &l);
    ck_assert_int_eq(l.n, SESSIONS + 2);
    assert_loaded(&l.eps[SESSIONS + 1], &late, 0);

    loaded_free(&l);
    for (int i = 0; i < SESSIONS; i++)
        episode_free(&e[i]);
    episode_free(&more);
    episode_free(&tail);
    episode_free(&late);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_persistence)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 1);
    ck_assert_int_eq(store_put_agent(s, "a", "{\"p\":1}"), 0);
    ck_assert_int_eq(store_put_agent(s, "b", "{}"), 0);
    episode e[4];
    episode_make(&e[0], "a", store_next_episode_id(s), "c0", 0, 6, DX, DA, 80, 1, 1);
    episode_make(&e[1], "a", store_next_episode_id(s), NULL, 0, 4, DX, DA, 81, 2, 0);
    ck_assert_int_eq(store_put_episodes(s, &e[0].st, 1, NULL), 0);
    ck_assert_int_eq(store_append_steps_async(s, &e[1].st), 0);
    unsigned char ck[300];
    for (size_t i = 0; i < sizeof ck; i++)
        ck[i] = (unsigned char)(i * 7);
    ck_assert_int_eq(store_put_checkpoint(s, "a", 42, ck, sizeof ck), 0);
    uint64_t last = store_next_episode_id(s);
    store_close(s);

    s = open_store(dir, 1);
    uint64_t next = store_next_episode_id(s);
    ck_assert_uint_gt(next, last);
    agent_list al = {0};
    ck_assert_int_eq(store_list_agents(s, list_cb, &al), 0);
    ck_assert_int_eq(al.n, 2);
    ck_assert_str_eq(al.configs[0], "{\"p\":1}");
    loaded l = {0};
    load(s, "a", 100, &l);
    ck_assert_int_eq(l.n, 2);
    assert_loaded(&l.eps[0], &e[0], 0);
    assert_loaded(&l.eps[1], &e[1], 0);
    unsigned char *buf = NULL;
    size_t len = 0;
    long step = 0;
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, &step), 0);
    ck_assert_int_eq(step, 42);
    ck_assert_uint_eq(len, sizeof ck);
    ck_assert(memcmp(buf, ck, len) == 0);
    free(buf);
    /* The client id is remembered across the restart. */
    uint8_t dup = 0;
    episode_make(&e[2], "a", next, "c0", 0, 2, DX, DA, 82, 0, 1);
    ck_assert_int_eq(store_put_episodes(s, &e[2].st, 1, &dup), 0);
    ck_assert_int_eq(dup, 1);
    /* The session episode goes on after the restart. */
    episode_make(&e[3], "a", e[1].st.episode_id, NULL, 4, 3, DX, DA, 81, 2, 1);
    ck_assert_int_eq(store_append_steps_async(s, &e[3].st), 0);
    ck_assert_int_eq(store_flush(s), 0);
    assert_counts(s, "a", 13,
                  episode_transitions(&e[0]) + episode_transitions(&e[1]) +
                      episode_transitions(&e[3]));

    /* Ids stay above everything once handed out, even after the episodes are deleted. */
    uint64_t high = 0;
    for (int i = 0; i < 1000; i++)
        high = store_next_episode_id(s);
    ck_assert_int_eq(store_delete_agent(s, "a"), 0);
    store_close(s);
    s = open_store(dir, 0);
    ck_assert_uint_gt(store_next_episode_id(s), high);
    store_close(s);

    loaded_free(&l);
    for (int i = 0; i < 4; i++)
        episode_free(&e[i]);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_episode_ids_reserved_ahead)
{
    /* Far more ids than one reservation: the writer raises it in the background, so a reopen
     * (here without a single episode stored) still starts above every id handed out. */
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    uint64_t prev = 0;
    int increasing = 1;
    for (int i = 0; i < 200000; i++) {
        uint64_t id = store_next_episode_id(s);
        increasing &= id > prev;
        prev = id;
    }
    ck_assert(increasing);
    ck_assert_int_eq(store_flush(s), 0);
    store_close(s);
    s = open_store(dir, 0);
    ck_assert_uint_gt(store_next_episode_id(s), prev);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_checkpoints)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    unsigned char *buf = NULL;
    size_t len = 0;
    long step = 0;
    ck_assert_int_eq(store_put_checkpoint(s, "a", 1, (const unsigned char *)"x", 1), STORE_ENOENT);
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, &step), STORE_ENOENT);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    ck_assert_int_eq(store_put_agent(s, "b", "{}"), 0);
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, &step), STORE_ENOENT);
    ck_assert_ptr_null(buf);

    size_t big_len = (size_t)3 << 20;
    unsigned char *big = malloc(big_len);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 24);
    ck_assert_int_eq(store_put_checkpoint(s, "a", 1000, big, big_len), 0);
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, &step), 0);
    ck_assert_int_eq(step, 1000);
    ck_assert_uint_eq(len, big_len);
    ck_assert(memcmp(buf, big, len) == 0);
    free(buf);

    const unsigned char small[] = "replaced";
    ck_assert_int_eq(store_put_checkpoint(s, "a", 2000, small, sizeof small), 0);
    ck_assert_int_eq(store_get_checkpoint(s, "a", &buf, &len, &step), 0);
    ck_assert_int_eq(step, 2000);
    ck_assert_uint_eq(len, sizeof small);
    ck_assert(memcmp(buf, small, len) == 0);
    free(buf);
    ck_assert_int_eq(store_get_checkpoint(s, "b", &buf, &len, &step), STORE_ENOENT);
    ck_assert_int_eq(sql_long(dir, "SELECT count(*) FROM checkpoints"), 1);

    /* An empty checkpoint is a checkpoint. */
    ck_assert_int_eq(store_put_checkpoint(s, "b", 7, NULL, 0), 0);
    ck_assert_int_eq(store_get_checkpoint(s, "b", &buf, &len, NULL), 0);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, 0);
    free(buf);

    free(big);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

/* ---- concurrency -------------------------------------------------------------------------- */

#define GC_THREADS 8
#define GC_PUTS    50
#define GC_STEPS   4

typedef struct gc_shared {
    store_t *s;
    atomic_int writers_left;
    atomic_int errors;
    atomic_long count_reads;
} gc_shared;

typedef struct gc_thread {
    pthread_t tid;
    gc_shared *sh;
    int index;
} gc_thread;

static uint32_t gc_seed(int thread, int i)
{
    return 1000u + (uint32_t)thread * GC_PUTS + (uint32_t)i;
}

static void *gc_writer(void *arg)
{
    gc_thread *t = arg;
    for (int i = 0; i < GC_PUTS; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "t%d-%d", t->index, i);
        episode e;
        episode_make(&e, "a", store_next_episode_id(t->sh->s), cid, 0, GC_STEPS, DX, DA,
                     gc_seed(t->index, i), i % 3, 1);
        uint8_t dup = 9;
        if (store_put_episodes(t->sh->s, &e.st, 1, &dup) != 0 || dup != 0)
            atomic_fetch_add(&t->sh->errors, 1);
        episode_free(&e);
    }
    atomic_fetch_sub(&t->sh->writers_left, 1);
    return NULL;
}

/* Counts while the writers run: never an error, never going backwards. */
static void *gc_reader(void *arg)
{
    gc_thread *t = arg;
    long prev = 0;
    while (atomic_load(&t->sh->writers_left) > 0) {
        long steps = 0, transitions = 0;
        if (store_count(t->sh->s, "a", &steps, &transitions) != 0 || steps < prev ||
            transitions > steps)
            atomic_fetch_add(&t->sh->errors, 1);
        prev = steps;
        atomic_fetch_add(&t->sh->count_reads, 1);
    }
    return NULL;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(test_group_commit)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 1); /* synchronous=FULL: every commit is an fsync */
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    gc_shared sh = {.s = s};
    atomic_store(&sh.writers_left, GC_THREADS);
    gc_thread th[GC_THREADS + 1];
    long commits0 = 0, ops0 = 0, commits1 = 0, ops1 = 0;
    store_test_stats(s, &commits0, &ops0);
    double t0 = seconds_now();
    for (int i = 0; i <= GC_THREADS; i++) {
        th[i] = (gc_thread){.sh = &sh, .index = i};
        ck_assert_int_eq(
            pthread_create(&th[i].tid, NULL, i < GC_THREADS ? gc_writer : gc_reader, &th[i]), 0);
    }
    for (int i = 0; i <= GC_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i].tid, NULL), 0);
    double dt = seconds_now() - t0;
    store_test_stats(s, &commits1, &ops1);
    ck_assert_int_eq(atomic_load(&sh.errors), 0);
    long puts = GC_THREADS * GC_PUTS, commits = commits1 - commits0;
    printf("store group commit: %d threads x %d synchronous puts (fsync per commit) in %.3f s: "
           "%.0f puts/s, %ld commits, %.0f commits/s, %.1f puts per commit; %ld concurrent "
           "counts\n",
           GC_THREADS, GC_PUTS, dt, (double)puts / dt, commits, (double)commits / dt,
           (double)puts / (double)(commits ? commits : 1), atomic_load(&sh.count_reads));
    ck_assert_int_eq(ops1 - ops0, puts);
    ck_assert_int_ge(commits, 1);
    ck_assert_int_lt(commits, puts); /* some puts shared a commit */

    /* Every put exactly once, intact. */
    static uint8_t seen[GC_THREADS][GC_PUTS];
    memset(seen, 0, sizeof seen);
    loaded l = {0};
    load(s, "a", 1L << 30, &l);
    ck_assert_int_eq(l.n, (int)puts);
    for (int i = 0; i < l.n; i++) {
        int t = -1, j = -1;
        ck_assert_ptr_nonnull(l.eps[i].st.client_id);
        ck_assert_int_eq(sscanf(l.eps[i].client_id, "t%d-%d", &t, &j), 2);
        ck_assert(t >= 0 && t < GC_THREADS && j >= 0 && j < GC_PUTS);
        ck_assert_int_eq(seen[t][j], 0);
        seen[t][j] = 1;
        episode want;
        episode_make(&want, "a", l.eps[i].st.episode_id, l.eps[i].client_id, 0, GC_STEPS, DX, DA,
                     gc_seed(t, j), j % 3, 1);
        assert_loaded(&l.eps[i], &want, 0);
        episode_free(&want);
    }
    assert_counts(s, "a", puts * GC_STEPS, puts * (GC_STEPS - 1));
    loaded_free(&l);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */

START_TEST(test_open_errors)
{
    char *dir = tmpdir_new();
    char path[4096], err[256];
    /* A regular file where a directory should be, or under the path. */
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    err[0] = '\0';
    ck_assert_ptr_null(store_open(path, 0, err, sizeof err));
    ck_assert_msg(strlen(err) > 0, "no reason given");
    snprintf(path, sizeof path, "%s/file/sub", dir);
    err[0] = '\0';
    ck_assert_ptr_null(store_open(path, 0, err, sizeof err));
    ck_assert_msg(strstr(err, "file/sub") || strstr(err, "file"), "reason: %s", err);
    ck_assert_ptr_null(store_open("", 0, err, sizeof err));
    ck_assert_ptr_null(store_open(NULL, 0, NULL, 0));

    /* Missing directories are created, 0750 (less what the umask takes away). */
    snprintf(path, sizeof path, "%s/x/y/data", dir);
    store_t *s = open_store(path, 0);
    store_close(s);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    mode_t mask = umask(0);
    umask(mask);
    ck_assert_int_eq(st.st_mode & 0777, 0750 & ~mask);

    /* A database from a newer elbod is refused, not touched. */
    char db[4200];
    snprintf(db, sizeof db, "%s/elbod.db", path);
    sqlite3 *raw = NULL;
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    err[0] = '\0';
    ck_assert_ptr_null(store_open(path, 0, err, sizeof err));
    ck_assert_msg(strstr(err, "schema version 99") != NULL, "reason: %s", err);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_invalid_arguments)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    ck_assert_int_eq(store_put_agent(s, NULL, "{}"), STORE_EINVAL);
    ck_assert_int_eq(store_put_agent(s, "", "{}"), STORE_EINVAL);
    ck_assert_int_eq(store_put_agent(s, "b", NULL), STORE_EINVAL);
    ck_assert_int_eq(store_put_agent(NULL, "b", "{}"), STORE_EINVAL);
    ck_assert_int_eq(store_delete_agent(s, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_list_agents(s, NULL, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_count(s, "nobody", NULL, NULL), STORE_ENOENT);
    ck_assert_int_eq(store_load_steps(s, "nobody", 10, collect, NULL), STORE_ENOENT);
    ck_assert_int_eq(store_load_steps(s, "a", -1, collect, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_put_checkpoint(s, "a", 1, NULL, 5), STORE_EINVAL);
    ck_assert_int_eq(store_put_episodes(s, NULL, 1, NULL), STORE_EINVAL);
    ck_assert_int_eq(store_put_episodes(s, NULL, 0, NULL), 0);

    episode e;
    episode_make(&e, "a", store_next_episode_id(s), NULL, 0, 4, DX, DA, 90, 1, 1);
    store_steps bad[10];
    for (int i = 0; i < 10; i++)
        bad[i] = e.st;
    bad[0].episode_id = 0;
    bad[1].episode_id = e.st.episode_id + 1000000; /* never handed out */
    bad[2].n = -1;
    bad[3].dx = 0;
    bad[4].has_action = NULL; /* action without its flags */
    bad[5].dist = NULL;       /* flags without their array */
    bad[6].first_k = -2;
    bad[7].obs = NULL;
    bad[8].da = 0; /* actions flagged but no action dimension */
    bad[9].agent = "";
    for (int i = 0; i < 10; i++) {
        ck_assert_msg(store_put_episodes(s, &bad[i], 1, NULL) == STORE_EINVAL, "put bad[%d]", i);
        ck_assert_msg(store_append_steps_async(s, &bad[i]) == STORE_EINVAL, "append bad[%d]", i);
    }
    /* The same episode id twice: the second is refused by the database, not by a check. */
    store_steps twice[2] = {e.st, e.st};
    ck_assert_int_eq(store_put_episodes(s, twice, 2, NULL), STORE_EINVAL);
    assert_counts(s, "a", 0, 0);
    ck_assert_str_eq(store_strerror(STORE_EFULL), "disk full");
    ck_assert_str_eq(store_strerror(0), "ok");
    ck_assert_ptr_nonnull(store_strerror(12345));
    episode_free(&e);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_disk_full)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 0);
    ck_assert_int_eq(store_put_agent(s, "a", "{}"), 0);
    ck_assert_int_eq(store_put_agent(s, "b", "{}"), 0);
    enum { BIG_DX = 256, BIG_N = 100, FILLER = 8, TRIES = 60 }; /* ~100 KB per episode */
    episode keep[TRIES + 6];
    int n_keep = 0;
    episode_make(&keep[n_keep], "a", store_next_episode_id(s), "k0", 0, 9, DX, DA, 100, 1, 1);
    ck_assert_int_eq(store_put_episodes(s, &keep[n_keep++].st, 1, NULL), 0);
    for (int i = 0; i < FILLER; i++) {
        episode f;
        episode_make(&f, "b", store_next_episode_id(s), NULL, 0, BIG_N, BIG_DX, DA, 110 + i, 0, 1);
        ck_assert_int_eq(store_put_episodes(s, &f.st, 1, NULL), 0);
        episode_free(&f);
    }

    /* A little data to delete later, to make room for small writes. */
    ck_assert_int_eq(store_put_agent(s, "c", "{}"), 0);
    episode room;
    episode_make(&room, "c", store_next_episode_id(s), NULL, 0, 40, BIG_DX, DA, 120, 0, 1);
    ck_assert_int_eq(store_put_episodes(s, &room.st, 1, NULL), 0);
    episode_free(&room);

    /* Freeze the file at its size: writes fill the free pages, then fail. */
    ck_assert_int_eq(store_test_set_max_pages(s, 1), 0);
    int rc = 0, tries = 0;
    while (rc == 0 && tries++ < TRIES) {
        episode *e = &keep[n_keep];
        char cid[16];
        snprintf(cid, sizeof cid, "k%d", n_keep);
        episode_make(e, "a", store_next_episode_id(s), cid, 0, BIG_N, BIG_DX, DA, 200 + n_keep, 1,
                     1);
        rc = store_put_episodes(s, &e->st, 1, NULL);
        if (rc == 0)
            n_keep++;
        else
            episode_free(e);
    }
    ck_assert_msg(rc == STORE_EFULL, "expected disk full, got %s after %d puts", store_strerror(rc),
                  tries);
    /* Async appends meet the same wall; store_flush reports it. */
    episode lost;
    episode_make(&lost, "a", store_next_episode_id(s), NULL, 0, BIG_N, BIG_DX, DA, 300, 0, 1);
    ck_assert_int_eq(store_append_steps_async(s, &lost.st), 0);
    ck_assert_int_eq(store_flush(s), STORE_EFULL);
    /* Small writes that need no new page still go through (here a config update). */
    ck_assert_int_eq(store_update_agent(s, "a", "{\"still\":1}"), 0);

    /* With a few pages free again, small appends queued between failing big ones (in the same
     * batches, mostly: SQLite drops the whole transaction on SQLITE_FULL, and the writer runs
     * the batch again without the failed one) all land. */
    ck_assert_int_eq(store_delete_agent(s, "c"), 0);
    episode small[4], huge[4];
    for (int i = 0; i < 4; i++) {
        episode_make(&small[i], "a", store_next_episode_id(s), NULL, 0, 3, DX, DA, 500 + i, 1, 1);
        episode_make(&huge[i], "a", store_next_episode_id(s), NULL, 0, 4 * BIG_N, BIG_DX, DA,
                     600 + i, 0, 1);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(store_append_steps_async(s, &small[i].st), 0);
        ck_assert_int_eq(store_append_steps_async(s, &huge[i].st), 0);
    }
    ck_assert_int_eq(store_flush(s), STORE_EFULL);
    for (int i = 0; i < 4; i++) {
        keep[n_keep++] = small[i];
        episode_free(&huge[i]);
    }

    /* Everything acknowledged before is intact; nothing of the failed writes is there. */
    loaded l = {0};
    load(s, "a", 1L << 30, &l);
    ck_assert_int_eq(l.n, n_keep);
    for (int i = 0; i < n_keep; i++)
        assert_loaded(&l.eps[i], &keep[i], 0);

    /* Space freed by a deletion is reused. */
    ck_assert_int_eq(store_delete_agent(s, "b"), 0);
    episode *e = &keep[n_keep];
    episode_make(e, "a", store_next_episode_id(s), "after", 0, BIG_N, BIG_DX, DA, 400, 2, 1);
    ck_assert_int_eq(store_put_episodes(s, &e->st, 1, NULL), 0);
    n_keep++;
    ck_assert_int_eq(store_test_set_max_pages(s, 0), 0);
    store_close(s);

    s = open_store(dir, 0);
    load(s, "a", 1L << 30, &l);
    ck_assert_int_eq(l.n, n_keep);
    for (int i = 0; i < n_keep; i++)
        assert_loaded(&l.eps[i], &keep[i], 0);
    printf("store disk full: %d episodes of %d KB fitted in the free pages before STORE_EFULL\n",
           n_keep - 6, (int)(BIG_N * BIG_DX * sizeof(float) / 1024));

    loaded_free(&l);
    for (int i = 0; i < n_keep; i++)
        episode_free(&keep[i]);
    episode_free(&lost);
    store_close(s);
    tmpdir_free(dir);
}
END_TEST

Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("normal");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_agents);
    tcase_add_test(tc, test_delete_cascades);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_load_window);
    tcase_add_test(tc, test_dedupe);
    tcase_add_test(tc, test_async_appends);
    tcase_add_test(tc, test_persistence);
    tcase_add_test(tc, test_episode_ids_reserved_ahead);
    tcase_add_test(tc, test_checkpoints);
    suite_add_tcase(s, tc);

    TCase *tl = tcase_create("concurrency");
    tcase_set_timeout(tl, 120);
    tcase_add_test(tl, test_group_commit);
    suite_add_tcase(s, tl);

    TCase *te = tcase_create("errors");
    tcase_set_timeout(te, 60);
    tcase_add_test(te, test_open_errors);
    tcase_add_test(te, test_invalid_arguments);
    tcase_add_test(te, test_disk_full);
    suite_add_tcase(s, te);
    return s;
}
