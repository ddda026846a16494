/* The covariance of one linear input's activations (rows = tokens, cols =
 * channels), accumulated in fp64: what the quantization-space utilisation
 * (QSUR, quant/transform/qsur.h) of the input is computed from.
 *
 *   mean_j = (1/n) sum_t x[t, j],  cov = (1/n) sum_t x_t x_t^T - mean mean^T
 *
 * over the n rows whose values are all finite (a row with a NaN/Inf is
 * counted in `skipped` and left out). The sums of x x^T are taken with
 * cblas_dsyrk on the block converted to double, so nothing is lost to fp32
 * partial sums. Memory: 8 * cols^2 bytes. Not thread-safe; blocks in
 * order give the same numbers whatever the thread count (one BLAS call per
 * block, its reduction over the block's rows). */
#ifndef XF_CALIB_ACT_COV_H
#define XF_CALIB_ACT_COV_H

#include <stdint.h>

#include "core/error.h"

typedef struct xf_act_cov {
    int64_t d;
    int64_t rows;    /* finite rows accumulated */
    int64_t skipped; /* rows with a non-finite value */
    double *sum;     /* [d, d] upper triangle (row-major) of sum x x^T */
    double *ch_sum;  /* [d] */
    double *buf;     /* conversion scratch: XF_ACT_COV_CHUNK rows */
} xf_act_cov;

#define XF_ACT_COV_CHUNK 256

int xf_act_cov_init(xf_act_cov *c, int64_t d, const char *what, xf_error *err);
void xf_act_cov_free(xf_act_cov *c);
/* Adds x [rows, d] row-major. Never fails. */
void xf_act_cov_add(xf_act_cov *c, const float *x, int64_t rows);
/* mean [d] and the full symmetric cov [d, d]; fails when no row was added. */
int xf_act_cov_finalize(const xf_act_cov *c, double *mean, double *cov, xf_error *err);

#endif
