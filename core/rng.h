/* rng: seedable pseudo-random streams (xoshiro256**, seeded through splitmix64).
 *
 * A stream is a small value the caller owns; each thread uses its own, derived from one seed and a
 * stream number, so results depend only on (seed, stream) and never on thread scheduling.
 */
#ifndef ELBO_RNG_H
#define ELBO_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
    float spare; /* the second normal of the last Box-Muller pair */
    int has_spare;
} rng_t;

/* Seeds `r` for stream `stream` of `seed`: distinct streams are independent sequences. */
void rng_seed(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(rng_t *r);                        /* 64 uniform bits */
double rng_uniform(rng_t *r);                       /* uniform in [0, 1), 53 bits */
float rng_normal(rng_t *r);                         /* standard normal */
void rng_fill_normal(rng_t *r, float *x, size_t n); /* n standard normals */
void rng_fill_uniform(rng_t *r, float *x, size_t n, float lo, float hi);
uint64_t rng_below(rng_t *r, uint64_t n); /* uniform integer in [0, n), n > 0, unbiased */

#endif
