/* vmath: vectorised elementwise math over float arrays.
 *
 * Scalar expf/tanhf calls cost more than the matrix products at our layer sizes, so every
 * activation runs through these loops, which the compiler vectorises (AVX2+FMA where the CPU has
 * it, chosen at load time; SSE2 otherwise). Accuracy: a few ulp of float against libm in double,
 * checked by tests/check_vmath.c. Inputs and outputs may alias (in place is fine).
 */
#ifndef ELBO_VMATH_H
#define ELBO_VMATH_H

#include <stddef.h>

void vm_exp(float *y, const float *x, size_t n);      /* y = exp(x), saturating at float range */
void vm_log(float *y, const float *x, size_t n);      /* y = log(x), x > 0 */
void vm_tanh(float *y, const float *x, size_t n);     /* y = tanh(x) */
void vm_sigmoid(float *y, const float *x, size_t n);  /* y = 1 / (1 + exp(-x)) */
void vm_softplus(float *y, const float *x, size_t n); /* y = log(1 + exp(x)) */
void vm_silu(float *y, const float *x, size_t n);     /* y = x * sigmoid(x) */

/* Sets flush-to-zero and denormals-are-zero on the calling thread. Denormals made the CPU 3-5x
 * slower in our measurements; every thread that does math calls this once. */
void vm_thread_init(void);

#endif
