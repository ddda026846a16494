/* CPython's `random` module generator (MT19937, seeded like random.seed(int))
 * and randint(). The GPTQ reference picks its calibration windows with
 * `random.seed(seed); i = random.randint(0, n - seqlen - 1)`; using the very
 * same generator lets xfquant select the same windows from the same tokens. */
#ifndef XF_CALIB_PYRANDOM_H
#define XF_CALIB_PYRANDOM_H

#include <stdint.h>

typedef struct xf_pyrandom {
    uint32_t mt[624];
    int index;
} xf_pyrandom;

/* random.seed(seed) for a non-negative integer seed < 2^64. */
void xf_pyrandom_seed(xf_pyrandom *r, uint64_t seed);
uint32_t xf_pyrandom_u32(xf_pyrandom *r);
/* random.getrandbits(k), 1 <= k <= 32. */
uint32_t xf_pyrandom_getrandbits(xf_pyrandom *r, int k);
/* random.randint(a, b), b - a < 2^32. */
int64_t xf_pyrandom_randint(xf_pyrandom *r, int64_t a, int64_t b);

#endif
