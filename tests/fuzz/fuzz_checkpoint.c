/* fuzz_checkpoint: libFuzzer target for checkpoint loading (core/agent.c).
 *
 * Every input is given to agent_checkpoint_config and to agent_checkpoint_restore into one small
 * agent made once (3 observations, 1 action, h_dim 4, z_dim 2, hidden 4), twice: as it is, and
 * with its last four bytes replaced by the right CRC-32 (otherwise nearly every mutation stops at
 * the checksum). Checked (abort otherwise):
 *  - a configuration agent_checkpoint_config accepts passes model_config_validate;
 *  - a restore that succeeds round-trips: agent_checkpoint_save then gives back the same bytes
 *    after the configuration (normaliser, step, parameters, moments, random state), and the
 *    restored agent can filter an observation, plan and take a training step (what the daemon
 *    does next; the agent holds a little experience for that) under the sanitizers;
 *  - when the configuration is accepted and small, an agent made from it (as an import creating
 *    an agent would) takes the image or refuses it cleanly.
 * Seeds: tests/fuzz/corpus/fuzz_checkpoint/, images of agent_checkpoint_save (tests/fuzz/
 * gen_checkpoints.c writes them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent.h"
#include "core/planner.h"
#include "fuzz_agents.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static agent_t *agent;
static unsigned char *init_img; /* the agent as made, with experience: restored after training */
static size_t init_len;
static planner_config pcfg;
static planner_ws *pws;
static size_t cfg_end; /* offset of the normaliser in this agent's images */
static uint32_t crc_table[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    model_config c;
    fuzz_agent_config(&c, 0);
    char err[256];
    agent = agent_new(&c, err, sizeof err);
    if (!agent) {
        fprintf(stderr, "fuzz_checkpoint: agent_new: %s\n", err);
        abort();
    }
    /* Experience, so that a restored agent can take a training step. */
    float obs[13 * 3], act[12], rew[12];
    for (int ep = 0; ep < 3; ep++) {
        for (int i = 0; i < 13 * 3; i++)
            obs[i] = (float)((i * 7 + ep) % 11) / 5.0f - 1.0f;
        for (int i = 0; i < 12; i++) {
            act[i] = (float)(i % 5) / 2.0f - 1.0f;
            rew[i] = (float)(i % 3) - 1.0f;
        }
        if (agent_add_episode(agent, (uint64_t)ep + 1, 12, obs, act, rew, NULL, ep == 1))
            abort();
    }
    if (agent_checkpoint_save(agent, &init_img, &init_len))
        abort();
    planner_config_defaults(&pcfg);
    pcfg.horizon = 2;
    pcfg.population = 8;
    pcfg.elites = 2;
    pcfg.iterations = 2;
    pws = planner_ws_new(&agent->model, &pcfg);
    if (!pws)
        abort();
    /* magic, version, dims, bounds, 10 integers, 12 floats, the seed */
    cfg_end = 8 + 4 + 8 + 8 * (size_t)c.act_dim + 10 * 4 + 12 * 4 + 8;
    return 0;
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void fail(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_checkpoint: %s%s%s\n", what, err ? ": " : "", err ? err : "");
    abort();
}

/* What the daemon does with an agent after an import: filter an observation, plan, train. */
static void use_agent(void)
{
    agent_snapshot *s = agent_snapshot_acquire(agent);
    const model_t *m = s->model;
    float h[8] = {0}, z[8] = {0}, x[3] = {0.5f, -1.0f, 2.0f};
    model_filter_step(m, s->params, &s->norm, planner_ws_model(pws), h, z, NULL, x, 0.0f, 1);
    plan_result *res = plan_result_new(pcfg.horizon, m->cfg.act_dim, m->cfg.obs_dim);
    rng_t rng;
    rng_seed(&rng, 1, 2);
    if (!res || planner_plan(m, &pcfg, s->params, &s->norm, pws, h, z, NULL, 0, 1, &rng, res))
        fail("planning on the restored agent failed", NULL);
    plan_result_free(res);
    agent_snapshot_release(agent, s);
    agent_train_stats st;
    agent_train_step(agent, &st);
    /* Back to the state of LLVMFuzzerInitialize, so that no input depends on the one before. */
    char err[256];
    if (agent_checkpoint_restore(agent, init_img, init_len, err, sizeof err))
        fail("restoring the initial image failed", err);
}

static void try_image(const uint8_t *buf, size_t len)
{
    char err[256] = "";
    model_config c;
    int crc_ok = agent_checkpoint_config(buf, len, &c, err, sizeof err) == 0;
    if (crc_ok && model_config_validate(&c, err, sizeof err))
        fail("agent_checkpoint_config accepted an invalid configuration", err);

    if (agent_checkpoint_restore(agent, buf, len, err, sizeof err) == 0) {
        unsigned char *out = NULL;
        size_t out_len = 0;
        if (agent_checkpoint_save(agent, &out, &out_len))
            fail("agent_checkpoint_save failed", NULL);
        if (out_len != len || len < cfg_end + 4 ||
            memcmp(out + cfg_end, buf + cfg_end, len - 4 - cfg_end) != 0)
            fail("a restored image does not save back to the same state", NULL);
        free(out);
        use_agent();
    }

    /* An agent made from the image's own configuration, with small training buffers. */
    if (crc_ok && fuzz_config_small(&c)) {
        c.replay_capacity = c.seq_len = 2;
        c.batch = 1;
        c.overshoot_len = 1;
        c.info_samples = 1;
        agent_t *b = agent_new(&c, err, sizeof err);
        if (!b)
            fail("agent_new refused a configuration agent_checkpoint_config accepted", err);
        agent_checkpoint_restore(b, buf, len, err, sizeof err);
        agent_free(b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_image(data, size);
    if (size < 16)
        return 0;
    uint32_t crc = crc32_of(data, size - 4);
    uint8_t want[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16),
                       (uint8_t)(crc >> 24)};
    if (memcmp(data + size - 4, want, 4) == 0)
        return 0; /* already right: done above */
    uint8_t *fixed = malloc(size);
    memcpy(fixed, data, size);
    memcpy(fixed + size - 4, want, 4);
    try_image(fixed, size);
    free(fixed);
    return 0;
}
