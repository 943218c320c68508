/* robot_cartpole: the cart-pole swing-up (classic cart-pole dynamics, explicit Euler; README.md,
 * Clients > Example robots), simulated here and controlled through elbod. `robot_cartpole
 * --help`. */
#include <math.h>

#include "clients/c/robot.h"

#define GRAVITY    9.8
#define MASSCART   1.0
#define MASSPOLE   0.1
#define LENGTH     0.5 /* half the pole */
#define FORCE_MAG  10.0
#define TAU        0.01 /* physics step */
#define SUBSTEPS   5    /* physics steps per control step: a control period of 0.05 s */
#define X_LIMIT    2.4
#define TOTAL_MASS (MASSCART + MASSPOLE)
#define PM_L       (MASSPOLE * LENGTH)

typedef struct cartpole {
    double x, xdot;   /* cart position and velocity */
    double th, thdot; /* pole angle (0 = upright) and angular velocity */
} cartpole;

static void cartpole_reset(void *state, robot_rng *rng)
{
    cartpole *c = state;
    c->x = robot_normal(rng, 0.05);
    c->xdot = robot_normal(rng, 0.05);
    c->th = M_PI + robot_normal(rng, 0.05); /* hanging down */
    c->thdot = robot_normal(rng, 0.05);
}

static double cartpole_step(void *state, const float *action, int *terminal)
{
    cartpole *c = state;
    double u = action[0] < -1.0f ? -1.0 : action[0] > 1.0f ? 1.0 : (double)action[0];
    double force = FORCE_MAG * u;
    for (int k = 0; k < SUBSTEPS; k++) {
        double s = sin(c->th), co = cos(c->th);
        double temp = (force + PM_L * c->thdot * c->thdot * s) / TOTAL_MASS;
        double thacc =
            (GRAVITY * s - co * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * co * co / TOTAL_MASS));
        double xacc = temp - PM_L * thacc * co / TOTAL_MASS;
        c->x += TAU * c->xdot;
        c->xdot += TAU * xacc;
        c->th += TAU * c->thdot;
        c->thdot += TAU * thacc;
    }
    *terminal = fabs(c->x) > X_LIMIT;
    /* The reward of the state after the control step: 1 when upright. */
    return (1.0 + cos(c->th)) / 2.0;
}

static void cartpole_observe(const void *state, float *obs)
{
    const cartpole *c = state;
    obs[0] = (float)c->x;
    obs[1] = (float)c->xdot;
    obs[2] = (float)cos(c->th);
    obs[3] = (float)sin(c->th);
    obs[4] = (float)c->thdot;
}

int main(int argc, char **argv)
{
    static const robot_task task = {
        .name = "cartpole",
        .description =
            "The cart-pole swing-up: a pole (0.1 kg, 1 m) hinged on a cart (1 kg) starts\n"
            "hanging down and is to be swung up and balanced while the cart stays on its\n"
            "track.\n"
            "  observation  [x, x_dot, cos th, sin th, th_dot] (th = 0 upright)\n"
            "  action       u in [-1, 1]: a force of 10 u N on the cart for 0.05 s\n"
            "  reward       (1 + cos th) / 2 after the step: 1 upright, 0 hanging\n"
            "  episode      200 steps; terminal when the cart leaves |x| <= 2.4 m\n",
        .obs_dim = 5,
        .act_dim = 1,
        .act_low = -1.0,
        .act_high = 1.0,
        .max_steps = 200,
        .state_size = sizeof(cartpole),
        .reset = cartpole_reset,
        .step = cartpole_step,
        .observe = cartpole_observe,
    };
    return robot_main(argc, argv, &task);
}
