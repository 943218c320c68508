/* gen_checkpoints: writes the seed checkpoints of fuzz_checkpoint into a directory.
 *
 * Real images of agent_checkpoint_save of the tiny agents of fuzz_agents.h, fresh and after a few
 * training steps on made-up experience, and mutated copies of them (truncated, bad magic, other
 * format version, a flipped parameter byte with and without a fixed checksum, a wrong parameter
 * count, another observation size). Usage: gen_checkpoints DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent.h"
#include "fuzz_agents.h"

static const char *dir;

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void fix_crc(unsigned char *p, size_t len)
{
    uint32_t c = crc32_of(p, len - 4);
    for (int i = 0; i < 4; i++)
        p[len - 4 + i] = (unsigned char)(c >> (8 * i));
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void write_seed(const char *name, const unsigned char *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
        fprintf(stderr, "gen_checkpoints: cannot write %s\n", path);
        exit(1);
    }
}

/* A few episodes of made-up experience and some training steps. */
static void train_a_little(agent_t *a)
{
    const model_config *c = &a->model.cfg;
    int T = 12, dx = c->obs_dim, da = c->act_dim;
    float obs[13 * 3], act[12 * 2], rew[12];
    for (int ep = 0; ep < 3; ep++) {
        for (int t = 0; t <= T; t++)
            for (int j = 0; j < dx; j++)
                obs[t * dx + j] = (float)((t * 7 + j * 3 + ep) % 11) / 5.0f - 1.0f;
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < da; j++)
                act[t * da + j] = (float)((t + j) % 5) / 2.0f - 1.0f;
            rew[t] = (float)(t % 3) - 1.0f;
        }
        if (agent_add_episode(a, (uint64_t)ep + 1, T, obs, act, rew, NULL, ep == 1))
            exit(1);
    }
    for (int s = 0; s < 5; s++)
        if (agent_train_step(a, NULL) == 0)
            agent_publish(a);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_checkpoints DIR\n");
        return 2;
    }
    dir = argv[1];
    for (int v = 0; v < FUZZ_AGENT_VARIANTS; v++) {
        model_config c;
        fuzz_agent_config(&c, v);
        char err[256], name[64];
        agent_t *a = agent_new(&c, err, sizeof err);
        if (!a) {
            fprintf(stderr, "gen_checkpoints: %s\n", err);
            return 1;
        }
        unsigned char *buf;
        size_t len;
        if (v == 0 || v == 2) {
            agent_checkpoint_save(a, &buf, &len);
            snprintf(name, sizeof name, "ckpt_v%d_fresh", v);
            write_seed(name, buf, len);
            free(buf);
        }
        train_a_little(a);
        agent_checkpoint_save(a, &buf, &len);
        snprintf(name, sizeof name, "ckpt_v%d_trained", v);
        write_seed(name, buf, len);
        if (v == 0) {
            size_t cfg_end = 8 + 4 + 8 + 8 * (size_t)c.act_dim + 10 * 4 + 12 * 4 + 8;
            unsigned char *m = malloc(len);
            write_seed("mut_truncated", buf, len / 2);
            write_seed("mut_header_only", buf, cfg_end + 20);
            memcpy(m, buf, len);
            m[0] = 'X';
            write_seed("mut_bad_magic", m, len);
            memcpy(m, buf, len);
            put_u32(m + 8, 1);
            fix_crc(m, len);
            write_seed("mut_version_1", m, len);
            memcpy(m, buf, len);
            m[len / 2] ^= 0x40;
            write_seed("mut_bad_crc", m, len);
            fix_crc(m, len);
            write_seed("mut_flipped_param_crc_fixed", m, len);
            /* the parameter count sits after the normaliser (8 + 2 * 8 * dx + 24) and the step */
            size_t n_at = cfg_end + 8 + 16 * (size_t)c.obs_dim + 24 + 8;
            memcpy(m, buf, len);
            put_u32(m + n_at, (uint32_t)a->model.n_params + 1);
            fix_crc(m, len);
            write_seed("mut_param_count", m, len);
            memcpy(m, buf, len);
            put_u32(m + 12, 4);
            fix_crc(m, len);
            write_seed("mut_obs_dim_4", m, len);
            free(m);
        }
        free(buf);
        agent_free(a);
    }
    return 0;
}
