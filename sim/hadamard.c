/* Hadamard transform objects: set-up, the row transforms (kernels in
 * hadamard_rows.inc, instantiated for fp32 and fp64) and the dense form. */
#include "sim/hadamard.h"

#include <cblas.h>

#include "core/gemm_tiled.h"
#include "core/splitmix.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a call stays on one thread. */
#define XF_HADAMARD_PAR_ELEMS 32768
/* Rows per GEMM chunk of the base factor: about this many elements
 * (a 1 MiB fp32 scratch buffer). */
#define XF_HADAMARD_CHUNK_ELEMS (256 * 1024)

#define XF_T float
#define XF_SFX f32
#define XF_GEMM(order, ...) xf_sgemm_tiled(__VA_ARGS__)
#define XF_BASE base_f32
#include "sim/hadamard_rows.inc"
#undef XF_T
#undef XF_SFX
#undef XF_GEMM
#undef XF_BASE

#define XF_T double
#define XF_SFX f64
#define XF_GEMM(order, ...) xf_dgemm_tiled(__VA_ARGS__)
#define XF_BASE base_f64
#include "sim/hadamard_rows.inc"
#undef XF_T
#undef XF_SFX
#undef XF_GEMM
#undef XF_BASE

void xf_hadamard_signs(uint64_t seed, int64_t n, int8_t *s)
{
    uint64_t state = seed;
    for (int64_t i = 0; i < n; i++)
        s[i] = (xf_splitmix64(&state) >> 63) ? -1 : 1;
}

int xf_hadamard_init(xf_hadamard *h, int64_t n, xf_error *err)
{
    memset(h, 0, sizeof *h);
    int64_t pow2, m;
    if (xf_hadamard_factor(n, &pow2, &m, err) != 0)
        return -1;
    h->n = n;
    h->pow2 = pow2;
    h->m = m;
    if (m == 1) {
        snprintf(h->desc, sizeof h->desc, "sylvester %lld", (long long)n);
        return 0;
    }
    char bdesc[64];
    xf_hadamard_base_available(m, bdesc, (int)sizeof bdesc);
    snprintf(h->desc, sizeof h->desc, "%lld x %s (%lld)", (long long)pow2, bdesc, (long long)m);
    int8_t *B = malloc((size_t)(m * m));
    h->base_f32 = malloc(sizeof(float) * (size_t)(m * m));
    h->base_f64 = malloc(sizeof(double) * (size_t)(m * m));
    if (!B || !h->base_f32 || !h->base_f64) {
        free(B);
        xf_hadamard_free(h);
        return xf_fail(err, "hadamard %lld: out of memory for the base matrix of order %lld", (long long)n,
                       (long long)m);
    }
    if (xf_hadamard_base(m, B, err) != 0) {
        free(B);
        xf_hadamard_free(h);
        return xf_fail_prefix(err, "hadamard %lld", (long long)n);
    }
    for (int64_t i = 0; i < m * m; i++) {
        h->base_f32[i] = (float)B[i];
        h->base_f64[i] = (double)B[i];
    }
    free(B);
    return 0;
}

int xf_hadamard_init_random(xf_hadamard *h, int64_t n, uint64_t seed, xf_error *err)
{
    if (xf_hadamard_init(h, n, err) != 0)
        return -1;
    h->signs = malloc((size_t)n);
    if (!h->signs) {
        xf_hadamard_free(h);
        return xf_fail(err, "hadamard %lld: out of memory for the random signs", (long long)n);
    }
    xf_hadamard_signs(seed, n, h->signs);
    h->seed = seed;
    size_t len = strlen(h->desc);
    snprintf(h->desc + len, sizeof h->desc - len, ", random seed %llu", (unsigned long long)seed);
    return 0;
}

void xf_hadamard_free(xf_hadamard *h)
{
    if (!h)
        return;
    free(h->base_f32);
    free(h->base_f64);
    free(h->signs);
    memset(h, 0, sizeof *h);
}

void xf_hadamard_dense_of(const xf_hadamard *h, double *out)
{
    const int64_t n = h->n, m = h->m;
    const double scale = 1.0 / sqrt((double)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t a = i / m, b = i % m;
        for (int64_t j = 0; j < n; j++) {
            int64_t a2 = j / m, b2 = j % m;
            double v = (__builtin_popcountll((unsigned long long)(a & a2)) & 1) ? -scale : scale;
            if (m > 1)
                v *= h->base_f64[b * m + b2];
            if (h->signs)
                v *= h->signs[j];
            out[i * n + j] = v;
        }
    }
}

int xf_hadamard_dense(int64_t n, const uint64_t *seed, double *out, xf_error *err)
{
    xf_hadamard h;
    int rc = seed ? xf_hadamard_init_random(&h, n, *seed, err) : xf_hadamard_init(&h, n, err);
    if (rc != 0)
        return -1;
    if (!out) {
        xf_hadamard_free(&h);
        return xf_fail(err, "hadamard %lld: NULL output for the dense matrix", (long long)n);
    }
    xf_hadamard_dense_of(&h, out);
    xf_hadamard_free(&h);
    return 0;
}
