/* check_replay: core/replay.c: how Gym episodes and session steps land, sampling that never
 * crosses an episode boundary, capacity and eviction, errors, and appends racing with sampling.
 *
 * Every stored value is a function of (serial, k): the observation is (serial, k), the reward
 * that arrives with x_k, the raw action after x_k and its planner distribution are computed from
 * the pair. A sampled batch therefore says by itself which episode and step each row came from,
 * and verify_batch checks every row against what the replay must have copied there. `serial`
 * names an episode uniquely (session ids are reused across episodes, serials are not); its
 * residues choose the episode's kind: done when even, planner distributions by (serial / 2) % 3
 * (0 never, 1 at every step, 2 at even steps only, which only sessions can record).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/replay.h"
#include "testutil.h"

#define DX 2
#define DA 2

static const float box_low[DA] = {-2.0f, 0.0f};
static const float box_high[DA] = {2.0f, 10.0f};

/* ---- the encoding ------------------------------------------------------------------------- */

static int serial_done(int serial)
{
    return serial % 2 == 0;
}

static int serial_dist_mode(int serial)
{
    return (serial / 2) % 3;
}

static int dist_recorded(int serial, int k)
{
    int mode = serial_dist_mode(serial);
    return mode == 1 || (mode == 2 && k % 2 == 0);
}

/* The raw action after x_k; both dimensions leave the box at times, so clipping is exercised. */
static void raw_action(float *a, int serial, int k)
{
    a[0] = 3.0f * sinf(0.7f * (float)k + (float)serial);
    a[1] = 5.0f + 6.0f * cosf(1.3f * (float)k + 0.5f * (float)serial);
}

/* The action as the model sees it: scaled to [-1, 1] and clipped, as replay.h documents. */
static void scaled_action(float *a, int serial, int k)
{
    raw_action(a, serial, k);
    for (int j = 0; j < DA; j++) {
        float mid = 0.5f * (box_high[j] + box_low[j]);
        float half = 0.5f * (box_high[j] - box_low[j]);
        float v = (a[j] - mid) / half;
        a[j] = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
    }
}

/* The reward that arrives with x_k (the reward of action k - 1), k >= 1. */
static float reward_of(int serial, int k)
{
    return (float)(serial % 1000) * 100.0f + (float)k;
}

static void dist_of(float *d, int serial, int k)
{
    d[0] = 0.1f * (float)k;
    d[1] = -0.1f * (float)k;
    d[2] = 1.0f + 0.001f * (float)serial;
    d[3] = 2.0f + 0.5f * (float)k;
}

/* ---- building episodes -------------------------------------------------------------------- */

/* What the replay must hold for one episode: its stored steps are original steps offset ..
 * offset + len - 1; the first n_act of the original steps carry an action. */
typedef struct ep_info {
    int present; /* 0: never stored, or evicted */
    int len, n_act, done, offset;
    int seen, seen_first, seen_last; /* sampling coverage: any step, the first, the last */
} ep_info;

/* A Gym-style episode of T actions (T + 1 observations) under replay id `id`. Distributions
 * are recorded for every action when the serial's mode is 1 (mode 2 is for sessions only). */
static int add_gym(replay_t *r, uint64_t id, int serial, int T, ep_info *info)
{
    float *obs = malloc(sizeof(float) * DX * (size_t)(T + 1));
    float *act = malloc(sizeof(float) * DA * (size_t)(T + 1));
    float *rew = malloc(sizeof(float) * (size_t)(T + 1));
    float *dist = malloc(sizeof(float) * 2 * DA * (size_t)(T + 1));
    ck_assert(obs && act && rew && dist);
    int mode = serial_dist_mode(serial);
    ck_assert_msg(mode != 2, "Gym episodes record distributions for all steps or none");
    for (int k = 0; k <= T; k++) {
        obs[DX * k] = (float)serial;
        obs[DX * k + 1] = (float)k;
        raw_action(act + DA * k, serial, k);
        dist_of(dist + 2 * DA * k, serial, k);
        if (k > 0)
            rew[k - 1] = reward_of(serial, k);
    }
    int rc =
        replay_add_episode(r, id, T, obs, act, rew, mode == 1 ? dist : NULL, serial_done(serial));
    free(obs);
    free(act);
    free(rew);
    free(dist);
    if (rc == 0 && info) {
        info[serial] = (ep_info){0};
        info[serial].present = 1;
        info[serial].len = T + 1;
        info[serial].n_act = T;
        info[serial].done = serial_done(serial);
    }
    return rc;
}

/* A session episode of n steps under replay id `id`, appended one step at a time. A done episode
 * ends with a step without action and terminal set; otherwise every step has an action and the
 * session closes the episode after the last one. */
typedef struct session {
    uint64_t id;
    int serial, k, n;
} session;

static int session_advance(replay_t *r, session *s)
{
    int k = s->k, done = serial_done(s->serial);
    float x[DX] = {(float)s->serial, (float)k};
    float a[DA], d[2 * DA];
    raw_action(a, s->serial, k);
    dist_of(d, s->serial, k);
    int last = k == s->n - 1;
    const float *action = (last && done) ? NULL : a;
    const float *dist = (action && dist_recorded(s->serial, k)) ? d : NULL;
    int rc = replay_add_step(r, s->id, k == 0, x, k > 0 ? reward_of(s->serial, k) : -99.0f, action,
                             dist, last && done);
    if (rc)
        return rc;
    s->k++;
    if (last && !done)
        replay_close_episode(r, s->id);
    return 0;
}

static void session_info(const session *s, ep_info *info)
{
    ep_info *e = &info[s->serial];
    *e = (ep_info){0};
    e->present = 1;
    e->len = s->n;
    e->done = serial_done(s->serial);
    e->n_act = e->done ? s->n - 1 : s->n;
}

/* ---- checking a batch --------------------------------------------------------------------- */

static int near(float a, float b)
{
    return fabsf(a - b) <= 1e-6f * (1.0f + fabsf(b));
}

static int all_zero(const float *x, int n)
{
    for (int i = 0; i < n; i++)
        if (x[i] != 0.0f)
            return 0;
    return 1;
}

#define FAIL(...)                                                                            \
    do {                                                                                     \
        int n_ = snprintf(err, errlen, "seq %d t %d (serial %d, k %d): ", bi, t, serial, k); \
        if (n_ > 0 && (size_t)n_ < errlen)                                                   \
            snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__);                            \
        return -1;                                                                           \
    } while (0)

/* Checks every row of b. With info (indexed by serial, n_info entries) the flags are checked
 * exactly against the stored episodes; without it (episodes evicted concurrently) every value
 * that is flagged as present must still be the right one and the flags must be consistent.
 * Returns 0, or -1 with the first violation in err. Never asserts: threads call it. */
static int verify_batch(const replay_batch *b, ep_info *info, int n_info, char *err, size_t errlen)
{
    const int B = b->B, L = b->L;
    for (int bi = 0; bi < B; bi++) {
        int t = 0, serial = -1, k = -1;
        if (!b->mask[bi])
            FAIL("a sequence starts with padding");
        serial = (int)b->obs[(size_t)bi * DX];
        int k0 = (int)b->obs[(size_t)bi * DX + 1];
        ep_info *e = NULL;
        if (info) {
            if (serial < 0 || serial >= n_info || !info[serial].present)
                FAIL("sampled an episode that is not stored");
            e = &info[serial];
            e->seen = 1;
        }
        int padding = 0;
        for (t = 0; t < L; t++) {
            size_t row = (size_t)t * B + bi;
            k = k0 + t;
            const float *obs = b->obs + row * DX;
            const float *ain = b->act_in + row * DA, *aout = b->act_out + row * DA;
            const float *dist = b->dist + row * 2 * DA;
            if (!b->mask[row]) {
                padding = 1;
                if (b->first[row] || b->has_rew[row] || b->has_act[row] || b->has_dist[row] ||
                    b->terminal[row] || b->rew[row] != 0.0f || !all_zero(obs, DX) ||
                    !all_zero(ain, DA) || !all_zero(aout, DA) || !all_zero(dist, 2 * DA))
                    FAIL("a padding row carries data or flags");
                continue;
            }
            if (padding)
                FAIL("a valid row after padding");
            if ((int)obs[0] != serial || obs[0] != (float)serial || obs[1] != (float)k)
                FAIL("not the next step of the same episode: obs (%g, %g)", obs[0], obs[1]);
            int kr = e ? k - e->offset : -1; /* index within the stored episode */
            if (e && (kr < 0 || kr >= e->len))
                FAIL("step outside the stored episode (stored index %d, len %d)", kr, e->len);
            /* first: only at the episode's real start. */
            if (b->first[row] != (k == 0))
                FAIL("first is %d", b->first[row]);
            if (e && k == 0)
                e->seen_first = 1;
            /* Reward: none at a stored episode's first step, the right one elsewhere. */
            if (k == 0 && b->has_rew[row])
                FAIL("has_rew at an episode's first step");
            if (t > 0 && !b->has_rew[row])
                FAIL("has_rew missing inside a sequence");
            if (e && b->has_rew[row] != (kr > 0))
                FAIL("has_rew %d at stored index %d", b->has_rew[row], kr);
            if (b->has_rew[row] ? b->rew[row] != reward_of(serial, k) : b->rew[row] != 0.0f)
                FAIL("reward %g", b->rew[row]);
            /* Action after x_k, scaled into [-1, 1]. */
            if (e && b->has_act[row] != (k < e->n_act))
                FAIL("has_act %d, %d actions", b->has_act[row], e->n_act);
            float want[DA];
            scaled_action(want, serial, k);
            for (int j = 0; j < DA; j++) {
                if (!(aout[j] >= -1.0f && aout[j] <= 1.0f) || !(ain[j] >= -1.0f && ain[j] <= 1.0f))
                    FAIL("action outside [-1, 1]");
                if (b->has_act[row] ? !near(aout[j], want[j]) : aout[j] != 0.0f)
                    FAIL("act_out[%d] %g, want %g", j, aout[j], b->has_act[row] ? want[j] : 0.0f);
            }
            /* Action before x_k: the previous row's act_out inside a sequence; at t = 0 the
             * stored previous action, or zeros at a stored episode's first step. */
            if (t > 0) {
                if (memcmp(ain, b->act_out + (row - B) * DA, sizeof(float) * DA) != 0)
                    FAIL("act_in differs from the previous act_out");
            } else if (b->has_rew[row]) {
                scaled_action(want, serial, k - 1);
                for (int j = 0; j < DA; j++)
                    if (!near(ain[j], want[j]))
                        FAIL("act_in[%d] %g, want %g", j, ain[j], want[j]);
            } else if (!all_zero(ain, DA)) {
                FAIL("act_in not zero at a stored episode's first step");
            }
            /* Planner distribution: copied only where it was recorded. */
            int want_dist = b->has_act[row] && dist_recorded(serial, k);
            if (b->has_dist[row] != want_dist)
                FAIL("has_dist %d, want %d", b->has_dist[row], want_dist);
            float d[2 * DA];
            dist_of(d, serial, k);
            for (int j = 0; j < 2 * DA; j++)
                if (want_dist ? dist[j] != d[j] : dist[j] != 0.0f)
                    FAIL("dist[%d] %g", j, dist[j]);
            /* terminal: only the last step of a done episode. */
            if (b->terminal[row] && !serial_done(serial))
                FAIL("terminal in an episode that did not end by done");
            if (b->terminal[row] && t + 1 < L && b->mask[row + B])
                FAIL("terminal before the episode's last step");
            if (e && b->terminal[row] != (e->done && kr == e->len - 1))
                FAIL("terminal %d at stored index %d of %d", b->terminal[row], kr, e->len);
        }
        if (e) {
            int want_valid = e->len - (k0 - e->offset);
            want_valid = want_valid < L ? want_valid : L;
            int valid = 0;
            for (t = 0; t < L; t++)
                valid += b->mask[(size_t)t * B + bi];
            k = k0;
            if (valid != want_valid)
                FAIL("%d valid rows, want %d", valid, want_valid);
            /* Episodes of at least L steps give whole sequences (no padding at the end). */
            if (e->len >= L && valid != L)
                FAIL("%d valid rows from an episode of %d steps", valid, e->len);
            if (k0 - e->offset + valid == e->len)
                e->seen_last = 1;
        }
    }
    return 0;
}

/* Samples n batches, verifying each (ck_assert: main thread only). */
static void sample_and_verify(replay_t *r, replay_batch *b, rng_t *rng, int n, ep_info *info,
                              int n_info)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(replay_sample(r, b, rng), 0);
        int rc = verify_batch(b, info, n_info, err, sizeof err);
        ck_assert_msg(rc == 0, "batch %d: %s", i, err);
    }
}

static replay_t *new_replay(long capacity)
{
    replay_t *r = replay_new(DX, DA, box_low, box_high, capacity);
    ck_assert_ptr_nonnull(r);
    return r;
}

static replay_batch *new_batch(int B, int L)
{
    replay_batch *b = replay_batch_new(B, L, DX, DA);
    ck_assert_ptr_nonnull(b);
    return b;
}

/* The first serial >= from that a Gym episode can use (distribution mode not 2), done as given. */
static int gym_serial(int from, int done)
{
    int s = from;
    while (serial_dist_mode(s) == 2 || serial_done(s) != done)
        s++;
    return s;
}

/* ---- normal use --------------------------------------------------------------------------- */

START_TEST(test_gym_episode_layout)
{
    replay_t *r = new_replay(1000);
    ep_info info[16] = {{0}};
    int s_done = gym_serial(2, 1);   /* 2: done, with distributions */
    int s_open = gym_serial(1, 0);   /* 1: not done, no distributions */
    int s_single = gym_serial(4, 1); /* an episode of a single observation */
    ck_assert_int_eq(add_gym(r, 7, s_done, 4, info), 0);
    ck_assert_int_eq(add_gym(r, 8, s_open, 6, info), 0);
    ck_assert_int_eq(add_gym(r, 9, s_single, 0, info), 0);
    ck_assert_int_eq(replay_steps(r), 5 + 7 + 1);
    ck_assert_int_eq(replay_transitions(r), 4 + 6);
    ck_assert_uint_eq(r->appended_steps, 13);
    ck_assert_uint_eq(r->evicted_steps, 0);

    /* Sequences longer than the episodes: every sample is a whole episode plus padding. */
    replay_batch *b = new_batch(3, 10);
    rng_t rng;
    rng_seed(&rng, 1, 0);
    sample_and_verify(r, b, &rng, 200, info, 16);
    ck_assert(info[s_done].seen_first && info[s_open].seen_first);
    ck_assert_msg(!info[s_single].seen, "a one-step episode has no transition to train on");

    /* One exact sequence, written out: the done episode from its start. */
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(replay_sample(r, b, &rng), 0);
        if (b->obs[0] == (float)s_done)
            break;
    }
    ck_assert(b->obs[0] == (float)s_done);
    const int B = 3;
    for (int t = 0; t < 10; t++) {
        size_t row = (size_t)t * B;
        ck_assert_int_eq(b->mask[row], t <= 4);
        ck_assert_int_eq(b->first[row], t == 0);
        ck_assert_int_eq(b->has_rew[row], t >= 1 && t <= 4);
        ck_assert_int_eq(b->has_act[row], t < 4);
        ck_assert_int_eq(b->has_dist[row], t < 4);
        ck_assert_int_eq(b->terminal[row], t == 4);
    }
    ck_assert(b->rew[3 * B] == reward_of(s_done, 3));
    float want[DA];
    scaled_action(want, s_done, 2);
    ck_assert_float_eq_tol(b->act_out[(size_t)2 * B * DA], want[0], 1e-6f);
    ck_assert_float_eq_tol(b->act_in[(size_t)3 * B * DA + 1], want[1], 1e-6f);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

START_TEST(test_session_steps_layout)
{
    replay_t *r = new_replay(1000);
    ep_info info[64] = {{0}};
    /* Three sessions interleaved step by step: each episode must stay whole and separate.
     * 10: done, distributions at even steps; 13: not done, none; 14: done, at every step. */
    session s[3] = {{100, 10, 0, 7}, {101, 13, 0, 12}, {102, 14, 0, 9}};
    long steps = 0, transitions = 0;
    for (int round = 0; round < 12; round++)
        for (int i = 0; i < 3; i++)
            if (s[i].k < s[i].n)
                ck_assert_int_eq(session_advance(r, &s[i]), 0);
    for (int i = 0; i < 3; i++) {
        session_info(&s[i], info);
        steps += info[s[i].serial].len;
        transitions += info[s[i].serial].n_act;
    }
    ck_assert_int_eq(replay_steps(r), steps);
    ck_assert_int_eq(replay_transitions(r), transitions);

    /* Session ids are reused. Under id 101 an episode is left open after 3 steps (35, never
     * closed); a first step under 101 then starts another episode and ends the open one, which
     * keeps its 3 steps. */
    session cut = {101, 35, 0, 1000};
    for (int j = 0; j < 3; j++)
        ck_assert_int_eq(session_advance(r, &cut), 0);
    info[35] = (ep_info){.present = 1, .len = 3, .n_act = 3};
    session s2[2] = {{100, 20, 0, 5}, {101, 23, 0, 6}};
    for (int round = 0; round < 6; round++)
        for (int i = 0; i < 2; i++)
            if (s2[i].k < s2[i].n)
                ck_assert_int_eq(session_advance(r, &s2[i]), 0);
    for (int i = 0; i < 2; i++)
        session_info(&s2[i], info);

    replay_batch *b = new_batch(8, 6);
    rng_t rng;
    rng_seed(&rng, 2, 0);
    sample_and_verify(r, b, &rng, 400, info, 64);
    int serials[] = {10, 13, 14, 20, 23, 35};
    for (size_t i = 0; i < sizeof serials / sizeof serials[0]; i++)
        ck_assert_msg(info[serials[i]].seen_first, "episode %d never sampled from its start",
                      serials[i]);
    ck_assert_int_eq(replay_steps(r), steps + 5 + 6 + 3);
    ck_assert_int_eq(replay_transitions(r), transitions + 4 + 6 + 3);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

START_TEST(test_sampling_boundaries)
{
    replay_t *r = new_replay(100000);
    enum { N = 40 };
    ep_info info[N] = {{0}};
    rng_t gen;
    rng_seed(&gen, 3, 0);
    /* Gym episodes and session episodes of 1..40 steps, all kinds of ends and distributions. */
    for (int serial = 0; serial < N; serial++) {
        int n = 1 + (int)rng_below(&gen, 40);
        if (serial % 4 != 3 && serial_dist_mode(serial) != 2) {
            ck_assert_int_eq(add_gym(r, (uint64_t)serial, serial, n - 1, info), 0);
            continue;
        }
        session a = {1000, serial, 0, n};
        while (a.k < a.n)
            ck_assert_int_eq(session_advance(r, &a), 0);
        session_info(&a, info);
    }
    long steps = 0, transitions = 0;
    for (int i = 0; i < N; i++) {
        steps += info[i].len;
        transitions += info[i].n_act;
    }
    ck_assert_int_eq(replay_steps(r), steps);
    ck_assert_int_eq(replay_transitions(r), transitions);

    replay_batch *b = new_batch(16, 12);
    rng_t rng;
    rng_seed(&rng, 4, 0);
    sample_and_verify(r, b, &rng, 1000, info, N);
    for (int i = 0; i < N; i++) {
        if (info[i].len < 2) {
            ck_assert_msg(!info[i].seen, "episode %d of one step sampled", i);
            continue;
        }
        ck_assert_msg(info[i].seen_first && info[i].seen_last,
                      "episode %d (len %d) never sampled from its start or up to its end", i,
                      info[i].len);
    }
    /* The batch's contents are overwritten completely: a longer L over the same replay. */
    replay_batch *b2 = new_batch(5, 45);
    sample_and_verify(r, b2, &rng, 200, info, N);
    replay_batch_free(b2);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

START_TEST(test_batch_overwrites_previous)
{
    /* A short episode sampled after a long one into the same batch leaves no stale rows. */
    replay_t *r = new_replay(1000);
    ep_info info[8] = {{0}};
    ck_assert_int_eq(add_gym(r, 1, gym_serial(2, 1), 30, info), 0);
    replay_batch *b = new_batch(2, 8);
    rng_t rng;
    rng_seed(&rng, 5, 0);
    sample_and_verify(r, b, &rng, 5, info, 8);
    replay_free(r);
    r = new_replay(1000);
    memset(info, 0, sizeof info);
    ck_assert_int_eq(add_gym(r, 1, gym_serial(3, 0), 2, info), 0);
    sample_and_verify(r, b, &rng, 5, info, 8);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

/* ---- capacity ----------------------------------------------------------------------------- */

START_TEST(test_capacity_whole_episodes)
{
    replay_t *r = new_replay(20);
    ep_info info[64] = {{0}};
    int serials[5];
    for (int i = 0; i < 5; i++) {
        serials[i] = gym_serial(i == 0 ? 0 : serials[i - 1] + 1, i % 2);
        ck_assert_int_eq(add_gym(r, (uint64_t)i, serials[i], 5, info), 0); /* 6 steps each */
        ck_assert(replay_steps(r) <= 20);
    }
    /* 3 x 6 = 18 kept; the two oldest went whole. */
    info[serials[0]].present = info[serials[1]].present = 0;
    ck_assert_int_eq(replay_steps(r), 18);
    ck_assert_int_eq(replay_transitions(r), 15);
    ck_assert_uint_eq(r->evicted_steps, 12);
    ck_assert_uint_eq(r->appended_steps, 30);
    replay_batch *b = new_batch(4, 4);
    rng_t rng;
    rng_seed(&rng, 6, 0);
    /* Exactly at the capacity nothing goes. */
    replay_t *full = new_replay(20);
    for (int i = 0, serial = 100; i < 4; i++) {
        serial = gym_serial(serial + 1, i % 2);
        ck_assert_int_eq(add_gym(full, (uint64_t)i, serial, 4, NULL), 0);
    }
    ck_assert_int_eq(replay_steps(full), 20);
    ck_assert_uint_eq(full->evicted_steps, 0);
    replay_free(full);
    sample_and_verify(r, b, &rng, 300, info, 64);
    for (int i = 2; i < 5; i++)
        ck_assert(info[serials[i]].seen_first);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

START_TEST(test_capacity_head_trim)
{
    replay_t *r = new_replay(20);
    ep_info info[64] = {{0}};
    int small = gym_serial(0, 0), big = gym_serial(small + 1, 1);
    ck_assert_int_eq(add_gym(r, 1, small, 5, info), 0);
    /* One episode of 30 steps alone exceeds the capacity: the older one goes, then its head. */
    ck_assert_int_eq(add_gym(r, 2, big, 29, info), 0);
    info[small].present = 0;
    info[big].offset = 10;
    info[big].len = 20;
    ck_assert_int_eq(replay_steps(r), 20);
    ck_assert_int_eq(replay_transitions(r), 19); /* steps 10..28 have actions, 29 ends it */
    ck_assert_uint_eq(r->evicted_steps, 6 + 10);
    replay_batch *b = new_batch(4, 8);
    rng_t rng;
    rng_seed(&rng, 7, 0);
    sample_and_verify(r, b, &rng, 300, info, 64);
    ck_assert(info[big].seen);
    ck_assert_msg(!info[big].seen_first, "first set in an episode whose start was evicted");
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

START_TEST(test_capacity_sessions)
{
    replay_t *r = new_replay(20);
    ep_info info[64] = {{0}};
    replay_batch *b = new_batch(4, 6);
    rng_t rng;
    rng_seed(&rng, 8, 0);
    /* A session longer than the capacity keeps its newest 20 steps as it grows. */
    session s = {5, 3, 0, 33};
    while (s.k < s.n) {
        ck_assert_int_eq(session_advance(r, &s), 0);
        ck_assert_int_le(replay_steps(r), 20);
        ck_assert_int_eq(replay_steps(r), s.k < 20 ? s.k : 20);
    }
    session_info(&s, info);
    info[3].offset = 13;
    info[3].len = 20;
    ck_assert_uint_eq(r->evicted_steps, 13);
    ck_assert_int_eq(replay_transitions(r), 20); /* 3 is not done: every step has an action */
    sample_and_verify(r, b, &rng, 200, info, 64);
    ck_assert(!info[3].seen_first);

    /* An open session is the oldest episode: Gym episodes push it out, and its continuation
     * starts a new stored episode that does not claim to be an episode start. */
    replay_free(r);
    r = new_replay(20);
    memset(info, 0, sizeof info);
    session open = {6, 9, 0, 14}; /* 9: not done */
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(session_advance(r, &open), 0);
    int g1 = gym_serial(20, 1);
    ck_assert_int_eq(add_gym(r, 1, g1, 9, info), 0); /* 8 + 10 = 18 */
    ck_assert_int_eq(replay_steps(r), 18);
    int g2 = gym_serial(g1 + 1, 0);
    ck_assert_int_eq(add_gym(r, 2, g2, 4, info), 0); /* 23: the open session goes */
    ck_assert_int_eq(replay_steps(r), 15);
    ck_assert_uint_eq(r->evicted_steps, 8);
    while (open.k < open.n)
        ck_assert_int_eq(session_advance(r, &open), 0); /* 6 more steps: 21, g1 goes */
    ck_assert_int_eq(replay_steps(r), 11);
    ck_assert_uint_eq(r->evicted_steps, 18);
    info[g1].present = 0;
    info[9] = (ep_info){.present = 1, .len = 6, .n_act = 14, .offset = 8};
    sample_and_verify(r, b, &rng, 300, info, 64);
    ck_assert(info[9].seen && !info[9].seen_first);
    ck_assert(info[g2].seen_first);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */

START_TEST(test_errors)
{
    float lo[DA] = {-1, -1}, hi[DA] = {1, 1}, bad_hi[DA] = {1, -1};
    ck_assert_ptr_null(replay_new(0, DA, lo, hi, 100));
    ck_assert_ptr_null(replay_new(DX, 0, lo, hi, 100));
    ck_assert_ptr_null(replay_new(DX, 33, lo, hi, 100));
    ck_assert_ptr_null(replay_new(DX, DA, lo, hi, 1));
    ck_assert_ptr_null(replay_new(DX, DA, NULL, hi, 100));
    ck_assert_ptr_null(replay_new(DX, DA, lo, bad_hi, 100));
    replay_free(NULL);
    replay_batch_free(NULL);
    ck_assert_ptr_null(replay_batch_new(0, 4, DX, DA));
    ck_assert_ptr_null(replay_batch_new(2, 0, DX, DA));

    replay_t *r = new_replay(100);
    float obs[3 * DX] = {0}, act[2 * DA] = {0}, rew[2] = {0};
    ck_assert_int_eq(replay_add_episode(r, 1, -1, obs, act, rew, NULL, 0), REPLAY_EINVAL);
    ck_assert_int_eq(replay_add_episode(r, 1, 2, NULL, act, rew, NULL, 0), REPLAY_EINVAL);
    ck_assert_int_eq(replay_add_episode(r, 1, 2, obs, NULL, rew, NULL, 0), REPLAY_EINVAL);
    ck_assert_int_eq(replay_add_episode(r, 1, 2, obs, act, NULL, NULL, 0), REPLAY_EINVAL);
    ck_assert_int_eq(replay_add_step(r, 1, 1, NULL, 0.0f, act, NULL, 0), REPLAY_EINVAL);
    ck_assert_int_eq(replay_steps(r), 0);
    ck_assert_int_eq(replay_transitions(r), 0);
    replay_close_episode(r, 12345); /* no such episode: nothing happens */

    /* Sampling with nothing to sample fails cleanly and leaves the batch as it was. */
    replay_batch *b = new_batch(2, 4);
    rng_t rng;
    rng_seed(&rng, 9, 0);
    ck_assert_int_eq(replay_sample(r, b, &rng), REPLAY_EINVAL);
    ck_assert_int_eq(replay_add_episode(r, 1, 0, obs, NULL, NULL, NULL, 1), 0);
    ck_assert_int_eq(replay_add_step(r, 2, 1, obs, 0.0f, act, NULL, 0), 0);
    ck_assert_int_eq(replay_steps(r), 2);
    ck_assert_int_eq(replay_sample(r, b, &rng), REPLAY_EINVAL); /* two episodes of one step */
    for (int i = 0; i < 2 * 4; i++)
        ck_assert_int_eq(b->mask[i], 0);
    /* A batch of other dimensions than the replay's is refused, not overrun. */
    ck_assert_int_eq(replay_add_step(r, 2, 0, obs, 1.0f, NULL, NULL, 1), 0);
    ck_assert_int_eq(replay_sample(r, b, &rng), 0);
    replay_batch *wide = replay_batch_new(2, 4, DX + 1, DA);
    replay_batch *narrow = replay_batch_new(2, 4, DX, DA - 1);
    ck_assert_ptr_nonnull(wide);
    ck_assert_ptr_nonnull(narrow);
    ck_assert_int_eq(replay_sample(r, wide, &rng), REPLAY_EINVAL);
    ck_assert_int_eq(replay_sample(r, narrow, &rng), REPLAY_EINVAL);
    replay_batch_free(wide);
    replay_batch_free(narrow);

    ck_assert_str_eq(replay_strerror(0), "ok");
    ck_assert_str_eq(replay_strerror(REPLAY_ENOMEM), "out of memory");
    ck_assert_str_eq(replay_strerror(REPLAY_EINVAL), "invalid argument");
    ck_assert_str_eq(replay_strerror(REPLAY_ENOEP), "no such open episode");
    ck_assert_str_eq(replay_strerror(-42), "unknown replay error");
    ck_assert_str_eq(replay_strerror(7), "unknown replay error");
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

START_TEST(test_continuation_without_start)
{
    /* A step for an id with no open episode and first == 0 (the session's start was lost):
     * stored as an episode that does not begin at a reset. */
    replay_t *r = new_replay(100);
    ep_info info[64] = {{0}};
    session s = {77, 5, 4, 10}; /* starts at k = 4 */
    while (s.k < s.n)
        ck_assert_int_eq(session_advance(r, &s), 0);
    info[5] = (ep_info){.present = 1, .len = 6, .n_act = 10, .offset = 4};
    ck_assert_int_eq(replay_steps(r), 6);
    replay_batch *b = new_batch(3, 8);
    rng_t rng;
    rng_seed(&rng, 10, 0);
    sample_and_verify(r, b, &rng, 50, info, 64);
    ck_assert(info[5].seen && !info[5].seen_first);
    replay_batch_free(b);
    replay_free(r);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------------ */

#define STRESS_CAPACITY 3000

typedef struct stress {
    replay_t *r;
    atomic_int stop;
    atomic_long appended;
    atomic_int errors;
    char err[256]; /* the first error, written by whoever sets errors from 0 */
    long batches;
} stress;

typedef struct stress_thread {
    stress *st;
    int index;
    pthread_t tid;
} stress_thread;

static void stress_fail(stress *st, const char *msg)
{
    if (atomic_fetch_add(&st->errors, 1) == 0)
        snprintf(st->err, sizeof st->err, "%s", msg);
}

/* Gym appender: episodes of 0..60 actions, serials unique to the thread. */
static void *gym_thread(void *arg)
{
    stress_thread *th = arg;
    stress *st = th->st;
    rng_t rng;
    rng_seed(&rng, 11, (uint64_t)th->index);
    int serial = th->index * 1000000;
    while (!atomic_load(&st->stop)) {
        serial = gym_serial(serial + 1, (int)rng_below(&rng, 2));
        int T = (int)rng_below(&rng, 61);
        if (add_gym(st->r, (uint64_t)serial, serial, T, NULL)) {
            stress_fail(st, "replay_add_episode failed");
            break;
        }
        atomic_fetch_add(&st->appended, T + 1);
    }
    return NULL;
}

/* Session appender: three open sessions per thread, stepped in random order. */
static void *session_thread(void *arg)
{
    stress_thread *th = arg;
    stress *st = th->st;
    rng_t rng;
    rng_seed(&rng, 12, (uint64_t)th->index);
    int serial = th->index * 1000000;
    session s[3];
    for (int i = 0; i < 3; i++)
        s[i] = (session){(uint64_t)(th->index * 10 + i), ++serial, 0, 1 + (int)rng_below(&rng, 50)};
    while (!atomic_load(&st->stop)) {
        session *p = &s[rng_below(&rng, 3)];
        if (session_advance(st->r, p)) {
            stress_fail(st, "replay_add_step failed");
            break;
        }
        atomic_fetch_add(&st->appended, 1);
        if (p->k == p->n)
            *p = (session){p->id, ++serial, 0, 1 + (int)rng_below(&rng, 50)};
    }
    return NULL;
}

static void *sampler_thread(void *arg)
{
    stress_thread *th = arg;
    stress *st = th->st;
    rng_t rng;
    rng_seed(&rng, 13, 0);
    replay_batch *b = replay_batch_new(8, 16, DX, DA);
    if (!b) {
        stress_fail(st, "replay_batch_new failed");
        return NULL;
    }
    char err[256];
    while (!atomic_load(&st->stop)) {
        int rc = replay_sample(st->r, b, &rng);
        if (rc == REPLAY_EINVAL)
            continue; /* nothing to sample yet */
        if (rc) {
            stress_fail(st, "replay_sample failed");
            break;
        }
        st->batches++;
        if (verify_batch(b, NULL, 0, err, sizeof err)) {
            stress_fail(st, err);
            break;
        }
        if (replay_steps(st->r) > STRESS_CAPACITY) {
            stress_fail(st, "more steps than the capacity");
            break;
        }
        if (replay_transitions(st->r) > STRESS_CAPACITY) {
            stress_fail(st, "more transitions than the capacity");
            break;
        }
    }
    replay_batch_free(b);
    return NULL;
}

START_TEST(test_concurrent_append_and_sample)
{
    stress st;
    memset(&st, 0, sizeof st);
    st.r = new_replay(STRESS_CAPACITY);
    atomic_init(&st.stop, 0);
    atomic_init(&st.appended, 0);
    atomic_init(&st.errors, 0);
    stress_thread th[5];
    void *(*fn[5])(void *) = {gym_thread, gym_thread, session_thread, session_thread,
                              sampler_thread};
    for (int i = 0; i < 5; i++) {
        th[i] = (stress_thread){&st, i + 1, 0};
        ck_assert_int_eq(pthread_create(&th[i].tid, NULL, fn[i], &th[i]), 0);
    }
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&st.stop, 1);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pthread_join(th[i].tid, NULL), 0);
    ck_assert_msg(atomic_load(&st.errors) == 0, "%d errors, first: %s", atomic_load(&st.errors),
                  st.err);
    long appended = atomic_load(&st.appended);
    long steps = replay_steps(st.r), transitions = replay_transitions(st.r);
    printf("replay stress: %ld steps appended, %llu evicted, %ld kept (%ld transitions), "
           "%ld batches sampled\n",
           appended, (unsigned long long)st.r->evicted_steps, steps, transitions, st.batches);
    ck_assert_uint_eq(st.r->appended_steps, (uint64_t)appended);
    ck_assert_uint_eq(st.r->appended_steps - st.r->evicted_steps, (uint64_t)steps);
    ck_assert_int_le(steps, STRESS_CAPACITY);
    ck_assert_int_gt(steps, STRESS_CAPACITY - 200); /* eviction removes no more than needed */
    ck_assert(transitions >= 0 && transitions <= steps);
    ck_assert_uint_gt(st.r->evicted_steps, 0);
    ck_assert_int_gt(st.batches, 0);
    /* The survivors, sampled quietly. */
    replay_batch *b = new_batch(16, 20);
    rng_t rng;
    rng_seed(&rng, 14, 0);
    sample_and_verify(st.r, b, &rng, 200, NULL, 0);
    replay_batch_free(b);
    replay_free(st.r);
}
END_TEST

Suite *replay_suite(void)
{
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("normal");
    tcase_add_test(tc, test_gym_episode_layout);
    tcase_add_test(tc, test_session_steps_layout);
    tcase_add_test(tc, test_sampling_boundaries);
    tcase_add_test(tc, test_batch_overwrites_previous);
    tcase_add_test(tc, test_continuation_without_start);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("limits");
    tcase_add_test(tl, test_capacity_whole_episodes);
    tcase_add_test(tl, test_capacity_head_trim);
    tcase_add_test(tl, test_capacity_sessions);
    suite_add_tcase(s, tl);
    TCase *te = tcase_create("errors");
    tcase_add_test(te, test_errors);
    suite_add_tcase(s, te);
    TCase *tt = tcase_create("threads");
    tcase_set_timeout(tt, 30);
    tcase_add_test(tt, test_concurrent_append_and_sample);
    suite_add_tcase(s, tt);
    return s;
}
