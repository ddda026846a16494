/* splitmix64: the one pseudo-random generator of xfquant's seeded choices
 * (Hadamard signs, the learned rotations' minibatches and rows). A plain
 * function of its state, so the same seed draws the same numbers on any
 * machine and thread count. */
#ifndef XF_CORE_SPLITMIX_H
#define XF_CORE_SPLITMIX_H

#include <stdint.h>

static inline uint64_t xf_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
