/* robot: the shared runner of the example robots (robot_pendulum, robot_cartpole).
 *
 * A robot_task is one control task (the README's "Example robots" section, under "Clients",
 * describes both), simulated locally: its shape, its episode length, a description for --help,
 * and reset/step/observe over an opaque state. robot_main parses the
 * robots' common flags, creates the agent when it is missing, and runs episodes through elbod's
 * sessions exactly as a real robot would: one session per episode, one session act per step
 * (the observation, the reward of the previous action, done), one line per episode.
 *
 * The environment is deterministic given --seed: episode e starts from a random stream seeded by
 * (seed, e) and the dynamics use no randomness.
 */
#ifndef ELBO_ROBOT_H
#define ELBO_ROBOT_H

#include <stddef.h>
#include <stdint.h>

/* A small deterministic random stream (splitmix64). */
typedef struct robot_rng {
    uint64_t s;
} robot_rng;

/* A uniform number in [lo, hi). */
double robot_uniform(robot_rng *r, double lo, double hi);

/* A normal number with mean 0 and standard deviation sd. */
double robot_normal(robot_rng *r, double sd);

#define ROBOT_MAX_OBS 16
#define ROBOT_MAX_ACT 4

typedef struct robot_task {
    const char *name;         /* the task, also the default agent name: "pendulum" */
    const char *description;  /* for --help: observation, action, reward, episode; lines of at
                               * most 78 characters, each ending in \n */
    int obs_dim, act_dim;     /* at most ROBOT_MAX_OBS and ROBOT_MAX_ACT */
    double act_low, act_high; /* the action box, the same for every action */
    int max_steps;            /* control steps per episode */
    size_t state_size;        /* bytes of the state */
    /* Starts an episode: fills state from the random stream. */
    void (*reset)(void *state, robot_rng *rng);
    /* Applies one action (act_dim floats, clipped by the task) and returns its reward; sets
     * *terminal when the new state ends the episode. */
    double (*step)(void *state, const float *action, int *terminal);
    /* Writes the observation (obs_dim floats) of the state. */
    void (*observe)(const void *state, float *obs);
} robot_task;

/* Runs the robot with the command line of argv (see --help). Returns the process exit status:
 * 0 ok, 1 usage error, 2 connection error, 3 the server refused a request (4xx), 4 server error
 * (5xx), 5 the --csv file cannot be written. Prints the episode lines on stdout, the rest on
 * stderr. */
int robot_main(int argc, char **argv, const robot_task *task);

#endif
