/* GPTQ across the ranks of an MPI job (core/dist.h; docs/distributed.md):
 * which calibration windows each rank runs, and the window-ordered sums
 * that make the result the bytes of one process.
 *
 * Windows are dealt in units of lcm(seqlen, XF_HESSIAN_FLUSH_ROWS) tokens
 * (whole windows), contiguous ranges of units per rank in rank order, so
 * every rank's first token is a multiple of the Hessian's fp32 batch
 * (quant/weights/hessian.h): each rank computes exactly the batches one
 * process would, keeps them, and the fp64 sum runs along the ranks in
 * order, rank r adding its batches into the running sum received from
 * rank r - 1 (row slabs, so the chain is pipelined), the last rank
 * broadcasting the total. The sum is then, element by element, the
 * sequence of additions of one process: same bytes for any number of
 * ranks. GPTQv2's cross-covariance (one fp32 product per window) goes the
 * same way. */
#ifndef XF_PIPELINE_DIST_SUMS_H
#define XF_PIPELINE_DIST_SUMS_H

#include <stdint.h>

#include "core/dist.h"
#include "core/error.h"
#include "quant/weights/gptq_v2.h"
#include "quant/weights/hessian.h"

/* Windows per unit of work for windows of T tokens. */
int64_t xf_dist_unit_windows(int64_t T);

/* The windows of rank d->rank: [*first, *first + *count). Fails (naming
 * the numbers) when there are fewer units than ranks. */
int xf_dist_windows(const xf_dist *d, int64_t nsamples, int64_t T, int64_t *first,
                    int64_t *count, xf_error *err);

/* All ranks: h (deferred when d->size > 1, holding this rank's rows)
 * becomes the Hessian of every rank's rows, on every rank; finalize next.
 * One rank: nothing to do. */
int xf_dist_hessian_sum(xf_dist *d, xf_hessian *h, xf_error *err);
/* The same for a deferred cross-covariance. */
int xf_dist_cross_cov_sum(xf_dist *d, xf_cross_cov *c, xf_error *err);

/* Rank 0: all[nsamples * win] gets every rank's windows (mine: this rank's
 * count * win floats, placed at its first window); other ranks send
 * theirs. all is NULL except on rank 0. */
int xf_dist_gather_windows(xf_dist *d, const float *mine, float *all, int64_t nsamples, int64_t T,
                           size_t win, xf_error *err);
/* The reverse: rank 0's all[nsamples * win] dealt out, each rank's
 * windows into mine. */
int xf_dist_scatter_windows(xf_dist *d, const float *all, float *mine, int64_t nsamples,
                            int64_t T, size_t win, xf_error *err);

#endif
