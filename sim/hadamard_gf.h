/* Finite fields GF(q), q = p^k, just far enough for the Paley
 * constructions: element encoding, subtraction and the quadratic character.
 * Internal to sim/hadamard*.c. */
#ifndef XF_SIM_HADAMARD_GF_H
#define XF_SIM_HADAMARD_GF_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* True if q = p^k with p prime and k >= 1; writes p and k. */
bool xf_gf_prime_power(int64_t q, int64_t *p, int *k);

/* Element encoding: a in [0, q) stands for the polynomial
 * sum_i d_i x^i where d_i are the base-p digits of a (d_0 least
 * significant), taken modulo a monic irreducible polynomial of degree k.
 * Addition and subtraction are digit-wise mod p and need no polynomial. */
int64_t xf_gf_sub(int64_t a, int64_t b, int64_t p);

/* chi[a] for every a in GF(q): 0 for a = 0, +1 for a nonzero square, -1
 * otherwise. Finds an irreducible polynomial of degree k by trial division.
 * Fails when q is not a prime power or chi cannot be allocated. */
int xf_gf_quadratic_character(int64_t q, int8_t *chi, xf_error *err);

#endif
