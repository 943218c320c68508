/* robot_pendulum: the pendulum swing-up (the classic Pendulum-v1 formulation; README.md, Clients >
 * Example robots), simulated here and controlled through elbod. `robot_pendulum --help`. */
#include <math.h>

#include "clients/c/robot.h"

#define G          10.0
#define M          1.0
#define L          1.0
#define DT         0.05
#define MAX_SPEED  8.0
#define MAX_TORQUE 2.0

typedef struct pendulum {
    double th;    /* angle, 0 = upright */
    double thdot; /* angular velocity */
} pendulum;

static double clip(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The angle mapped to [-pi, pi). */
static double wrap(double th)
{
    double w = fmod(th + M_PI, 2.0 * M_PI);
    if (w < 0)
        w += 2.0 * M_PI;
    return w - M_PI;
}

static void pendulum_reset(void *state, robot_rng *rng)
{
    pendulum *p = state;
    p->th = robot_uniform(rng, -M_PI, M_PI);
    p->thdot = robot_uniform(rng, -1.0, 1.0);
}

static double pendulum_step(void *state, const float *action, int *terminal)
{
    pendulum *p = state;
    double u = clip((double)action[0], -MAX_TORQUE, MAX_TORQUE);
    double th = wrap(p->th);
    /* The reward of the state before the step. */
    double reward = -(th * th + 0.1 * p->thdot * p->thdot + 0.001 * u * u);
    p->thdot += (3.0 * G / (2.0 * L) * sin(p->th) + 3.0 / (M * L * L) * u) * DT;
    p->thdot = clip(p->thdot, -MAX_SPEED, MAX_SPEED);
    p->th += p->thdot * DT;
    *terminal = 0; /* no early end */
    return reward;
}

static void pendulum_observe(const void *state, float *obs)
{
    const pendulum *p = state;
    obs[0] = (float)cos(p->th);
    obs[1] = (float)sin(p->th);
    obs[2] = (float)p->thdot;
}

int main(int argc, char **argv)
{
    static const robot_task task = {
        .name = "pendulum",
        .description =
            "The pendulum swing-up (Pendulum-v1): a pendulum of length 1 m and mass 1 kg,\n"
            "starting at a random angle and speed, is to be swung up and held upright.\n"
            "  observation  [cos th, sin th, th_dot] (th = 0 upright, |th_dot| <= 8 rad/s)\n"
            "  action       the torque u in [-2, 2] N m, held for 0.05 s\n"
            "  reward       -(th^2 + 0.1 th_dot^2 + 0.001 u^2), th wrapped to [-pi, pi)\n"
            "  episode      200 steps, never terminal (the last is sent truncated)\n",
        .obs_dim = 3,
        .act_dim = 1,
        .act_low = -MAX_TORQUE,
        .act_high = MAX_TORQUE,
        .max_steps = 200,
        .state_size = sizeof(pendulum),
        .reset = pendulum_reset,
        .step = pendulum_step,
        .observe = pendulum_observe,
    };
    return robot_main(argc, argv, &task);
}
