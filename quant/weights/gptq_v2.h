/* GPTQv2 (asymmetric calibration). GPTQ minimizes ||(W - Q) X~|| on the
 * inputs X~ produced by the already quantized model; GPTQv2 targets the
 * full-precision output instead: min_Q ||W X - Q X~||^2 (X: inputs of the
 * full-precision model, columns = tokens). Its unconstrained optimum is
 *     W' = W X X~^T (X~ X~^T)^-1 = W + W (dX X~^T) H~^-1,   dX = X - X~,
 * and since W X - W' X~ is orthogonal to the row space of X~,
 *     ||W X - Q X~||^2 = ||(W' - Q) X~||^2 + const,
 * so running the ordinary GPTQ sweep on W' with H~ minimizes exactly the
 * GPTQv2 objective. This module accumulates C = (2/N) dX X~^T (scaled like
 * the Hessian) and applies the correction W <- W + W C (H~ + lambda I)^-1. */
#ifndef XF_QUANT_WEIGHTS_GPTQ_V2_H
#define XF_QUANT_WEIGHTS_GPTQ_V2_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef struct xf_cross_cov {
    int64_t d;
    int64_t n;       /* token rows added */
    double *sum;     /* [d, d] running sum of dX^T X~ (row-major) */
    float *batch;    /* [d, d] fp32 product of one add() */
    float *diff;     /* [rows_cap, d] scratch for X - X~ */
    int64_t rows_cap;
    /* deferred (xf_cross_cov_defer): each add()'s product kept instead of
     * being added into `sum` */
    bool deferred;
    float **kept;
    int64_t n_kept, cap_kept;
} xf_cross_cov;

int xf_cross_cov_init(xf_cross_cov *c, int64_t d, xf_error *err);
void xf_cross_cov_free(xf_cross_cov *c);
/* x_fp, x_q: [n, d] row-major inputs of the same tokens from the
 * full-precision and the quantized model. */
int xf_cross_cov_add(xf_cross_cov *c, const float *x_fp, const float *x_q, int64_t n,
                     xf_error *err);
/* Deferred sums, for a sum split across processes (pipeline/dist_sums.h):
 * `sum` is 0 + p_0 + p_1 + ... over the fp32 products p_k of the add()
 * calls in order (one per calibration window), so keeping each process's
 * products (xf_cross_cov_defer, before any add) and adding them into the
 * running sum of the windows before (xf_cross_cov_fold_kept) gives the
 * bytes of one process. Memory: 4 d^2 bytes per kept product. */
void xf_cross_cov_defer(xf_cross_cov *c);
/* sum rows i0 <= i < i1 += the kept products in order. */
void xf_cross_cov_fold_kept(xf_cross_cov *c, int64_t i0, int64_t i1);

/* C = (2/N) sum (x - x~) x~^T as fp64 [d, d] (C[i][j] = sum dx_i x~_j). */
int xf_cross_cov_finalize(const xf_cross_cov *c, double *C, xf_error *err);

/* W [rows, d] <- W + W C (H + lambda I)^-1 with lambda = damp * mean(diag H),
 * dead columns (H_ii == 0) taken as 1 like GPTQ; retries with damp x 10 up to
 * 1.0 if the factorization fails. *damp_used receives the damping used. */
int xf_gptq_v2_correct(float *W, int64_t rows, int64_t d, const double *H, const double *C,
                       double damp, double *damp_used, const char *name, xf_error *err);

#endif
