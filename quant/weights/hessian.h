/* Hessian accumulator of one linear layer's input (width d):
 * H = (2/N) * sum over all N input rows x of x x^T.
 * Rows are accumulated with cblas_ssyrk into an fp32 batch buffer that is
 * added into an fp64 running sum every XF_HESSIAN_FLUSH_ROWS rows, so
 * millions of tokens do not lose precision the way one fp32 running sum
 * would (the reference keeps an fp32 running mean). Not thread-safe. */
#ifndef XF_QUANT_WEIGHTS_HESSIAN_H
#define XF_QUANT_WEIGHTS_HESSIAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* Rows summed in fp32 before they are added into the fp64 sum. */
#define XF_HESSIAN_FLUSH_ROWS 4096

typedef struct xf_hessian {
    int64_t d;
    int64_t n;       /* rows added so far */
    int64_t pending; /* rows in `batch` not yet added into `sum` */
    double *sum;     /* [d, d], upper triangle (row-major) */
    float *batch;    /* [d, d], upper triangle (row-major) */
    /* deferred (xf_hessian_defer): each full batch kept, packed upper
     * triangle, instead of being added into `sum` */
    bool deferred;
    float **kept;
    int64_t n_kept, cap_kept;
} xf_hessian;

/* d >= 1. Memory: 12 * d^2 bytes. */
int xf_hessian_init(xf_hessian *h, int64_t d, xf_error *err);
void xf_hessian_free(xf_hessian *h);

/* Adds n rows x[n, d] (fp32, row-major). Fails (nothing added) if a value
 * is not finite. n == 0 is a no-op. */
int xf_hessian_add(xf_hessian *h, const float *x, int64_t n, xf_error *err);

/* Adds n rows x[n, d] weighted by r[n] (RSQ, quant/weights/token_weight.h):
 * sum r_t x_t x_t^T through rows sqrt(r_t) x_t, so N still counts rows and
 * H = (2/N) sum r_t x_t x_t^T. r NULL: xf_hessian_add (the same bytes).
 * Fails (nothing added) on a non-finite value or a negative weight. */
int xf_hessian_add_weighted(xf_hessian *h, const float *x, const float *r, int64_t n,
                            xf_error *err);

/* Writes H = (2/N) * sum x x^T as a full symmetric fp64 [d, d] matrix.
 * Fails when no rows were added. The accumulator stays usable. */
int xf_hessian_finalize(xf_hessian *h, double *H, xf_error *err);

/* Rows added so far (N). */
int64_t xf_hessian_count(const xf_hessian *h);

/* Deferred sums, for a sum split across processes (pipeline/dist_sums.h).
 * The fp64 sum is, element by element, 0 + b_0 + b_1 + ... over the fp32
 * batches b_k of rows [4096 k, 4096 (k + 1)) in order, so a process whose
 * rows start at a multiple of XF_HESSIAN_FLUSH_ROWS of the whole input
 * computes its batches exactly as one process would; keeping them
 * (xf_hessian_defer, before any add) and adding them into the running sum
 * of the rows before it (xf_hessian_fold_kept) gives the same bytes as
 * one process. Memory: 2 d^2 bytes per kept batch. */
void xf_hessian_defer(xf_hessian *h);
/* Ends the last, partial batch (kept). */
int xf_hessian_seal(xf_hessian *h, xf_error *err);
/* sum[i, j] += kept batches in order, rows i0 <= i < i1, j >= i. */
void xf_hessian_fold_kept(xf_hessian *h, int64_t i0, int64_t i1);
/* The row count of the whole input (finalize divides by it). */
void xf_hessian_set_count(xf_hessian *h, int64_t n);

#endif
