#include "calib/pyrandom.h"

#define MT_N 624
#define MT_M 397

static void init_genrand(xf_pyrandom *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = MT_N;
}

/* MT19937 init_by_array, as CPython's random_seed() calls it. */
static void init_by_array(xf_pyrandom *r, const uint32_t *key, int key_len)
{
    init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = MT_N > key_len ? MT_N : key_len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] +
                   (uint32_t)j;
        i++;
        j++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
        if (j >= key_len)
            j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000u;
    r->index = MT_N;
}

void xf_pyrandom_seed(xf_pyrandom *r, uint64_t seed)
{
    /* CPython splits abs(seed) into 32-bit words, least significant first;
     * seed 0 is the one-word key {0}. */
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    init_by_array(r, key, key[1] ? 2 : 1);
}

uint32_t xf_pyrandom_u32(xf_pyrandom *r)
{
    if (r->index >= MT_N) {
        for (int k = 0; k < MT_N; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % MT_N] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint32_t xf_pyrandom_getrandbits(xf_pyrandom *r, int k)
{
    return xf_pyrandom_u32(r) >> (32 - k);
}

int64_t xf_pyrandom_randint(xf_pyrandom *r, int64_t a, int64_t b)
{
    uint64_t n = (uint64_t)(b - a) + 1; /* randrange(a, b + 1) -> a + _randbelow(n) */
    int k = 0;
    while (k < 64 && (n >> k))
        k++; /* bit_length(n) */
    if (k > 32)
        k = 32; /* callers keep b - a < 2^32 */
    uint32_t v;
    do
        v = xf_pyrandom_getrandbits(r, k);
    while ((uint64_t)v >= n);
    return a + (int64_t)v;
}
