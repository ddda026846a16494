/* Fast orthonormal Hadamard transforms for the rotation methods (QuaRot,
 * SpinQuant): the residual rotation, the online down_proj / head-dim
 * transforms and the random Hadamard starting point of SpinQuant.
 *
 * Supported sizes: n = 2^k * m where m is 1 (pure power of two) or the
 * order of a Hadamard matrix xfquant constructs directly ("base order"):
 *   - Paley I:  m = q + 1,      q a prime power, q = 3 mod 4 (12, 20, 28,
 *               44, 60, 108, 140, 344, ...);
 *   - Paley II: m = 2 (q + 1),  q a prime power, q = 1 mod 4 (36, 52, 76,
 *               100, ...);
 *   - Goethals-Seidel arrays from stored circulant rows: m = 156 (4*39)
 *               and m = 172 (4*43).
 * m is at most XF_HADAMARD_MAX_BASE. xf_hadamard_factor picks the smallest
 * base order that works, so 40 = 2 * 20, 11008 = 64 * 172, 14336 = 512 * 28,
 * 5120 = 256 * 20, 688 = 4 * 172.
 *
 * Index convention (one definition used by every function here): element
 * i of a length-n vector is written i = a*m + b with a in [0, 2^k) (the
 * slow index, stride m) and b in [0, m) (the fast, contiguous index).
 * The normalized matrix is
 *     H[a*m + b][a'*m + b'] = S[a][a'] * B[b][b'] / sqrt(n),
 * i.e. H = (S (x) B) / sqrt(n) (Kronecker product, S on the slow index,
 * B on the fast index), with S the Sylvester matrix
 * S[a][a'] = (-1)^popcount(a & a') and B the +-1 base matrix of order m
 * (xf_hadamard_base). The randomized transform is R = H * diag(s), with s
 * a +-1 vector drawn from a seed (see xf_hadamard_signs).
 *
 * Transforms act on ROWS from the right: forward maps a row x to x * R
 * (so a weight W [out, n] becomes W * R and activations X become X * R, as
 * in QuaRot's W*Q), inverse maps x to x * R^T. R is orthogonal, so
 * inverse(forward(x)) = x. The dense matrix of xf_hadamard_dense is R
 * itself: forward(e_i) = row i of it. */
#ifndef XF_SIM_HADAMARD_H
#define XF_SIM_HADAMARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* Largest base order m built (B is stored as an m x m matrix and costs
 * O(n*m) per row). */
#define XF_HADAMARD_MAX_BASE 1024

/* ---- plain fast Walsh-Hadamard transform (powers of two) ---- */

/* In place, each of the `rows` rows of x[rows, n] becomes x * S_n / sqrt(n)
 * (S_n Sylvester, symmetric, so this is its own inverse). n must be a
 * power of two (1 included). O(n log n) per row, OpenMP over rows. */
int xf_fwht_rows_f32(float *x, int64_t rows, int64_t n, xf_error *err);
int xf_fwht_rows_f64(double *x, int64_t rows, int64_t n, xf_error *err);

/* ---- which sizes are supported ---- */

/* Writes n = pow2 * m with m the smallest supported base order (m = 1 for
 * powers of two). Returns 0, or -1 with a message saying why n is not
 * supported (n < 1; n > 2 not a multiple of 4; no base order found). */
int xf_hadamard_factor(int64_t n, int64_t *pow2, int64_t *m, xf_error *err);
/* Same test without the message. */
bool xf_hadamard_available(int64_t n);

/* True if m is a base order built directly (1, 2, Paley I/II, stored
 * Goethals-Seidel); writes a short description ("paley1 q=27") to desc
 * when desc != NULL (cap >= 48 is enough). */
bool xf_hadamard_base_available(int64_t m, char *desc, int cap);
/* The unnormalized +-1 base matrix B[m, m] (row-major), B * B^T = m * I.
 * Fails for orders that are not base orders. */
int xf_hadamard_base(int64_t m, int8_t *B, xf_error *err);

/* ---- the transform object ---- */

typedef struct xf_hadamard {
    int64_t n;          /* transform size = pow2 * m */
    int64_t pow2;       /* Sylvester factor, applied by butterflies */
    int64_t m;          /* base order, 1 for powers of two */
    float *base_f32;    /* [m, m] +-1, NULL when m == 1 */
    double *base_f64;   /* [m, m] +-1, NULL when m == 1 */
    int8_t *signs;      /* [n] +-1 of diag(s); NULL: not randomized */
    uint64_t seed;      /* the seed of signs (meaningful when signs != NULL) */
    char desc[96];      /* e.g. "2^6 x goethals-seidel t=43 (172)" */
} xf_hadamard;

/* The plain transform H of size n. */
int xf_hadamard_init(xf_hadamard *h, int64_t n, xf_error *err);
/* The randomized transform R = H * diag(s), s = xf_hadamard_signs(seed). */
int xf_hadamard_init_random(xf_hadamard *h, int64_t n, uint64_t seed, xf_error *err);
void xf_hadamard_free(xf_hadamard *h);

/* s[0..n) in {+1, -1} from a seed with splitmix64: state = seed; for each
 * i: state += 0x9e3779b97f4a7c15, z = mix(state) (the splitmix64 output
 * function), s[i] = -1 if the top bit of z is set, else +1. */
void xf_hadamard_signs(uint64_t seed, int64_t n, int8_t *s);

/* In place on the `rows` contiguous rows of x[rows, h->n]: forward
 * (inverse == false) x <- x * R, inverse x <- x * R^T. O(n log n + n*m)
 * per row. Powers of two: butterflies in place, OpenMP over rows. Otherwise
 * the base factor runs as one BLAS GEMM per chunk of rows (BLAS threads)
 * into a scratch buffer, the butterflies on the calling thread (see
 * hadamard_rows.inc for why). Fails only on bad arguments or when the
 * scratch buffer cannot be allocated (x is then unchanged). Thread-safe for
 * concurrent calls on the same h. */
int xf_hadamard_rows_f32(const xf_hadamard *h, float *x, int64_t rows, bool inverse, xf_error *err);
int xf_hadamard_rows_f64(const xf_hadamard *h, double *x, int64_t rows, bool inverse, xf_error *err);

/* Dense R [n, n] (row-major, fp64) from the entry formula above (not from
 * running the fast transform), into out. */
void xf_hadamard_dense_of(const xf_hadamard *h, double *out);
/* Same for size n, randomized with *seed when seed != NULL; out holds n*n. */
int xf_hadamard_dense(int64_t n, const uint64_t *seed, double *out, xf_error *err);

#endif
