/* Per-token weights of a GPTQ Hessian (RSQ, docs/methods.md "RSQ"):
 * H = (2/N) * sum_t r_t x_t x_t^T, the tokens a layer's reconstruction
 * should favour weighted up. The importance is attention concentration
 * (AttnCon): the attention probability a token receives, summed over the
 * heads and the queries of one block's attention,
 *
 *   c_t = sum_h sum_q P_h[q, t],
 *
 * min-max normalised within each window to [XF_TOKEN_WEIGHT_R_MIN,
 * XF_TOKEN_WEIGHT_R_MAX] (the paper's 0.005 and 1), then scaled to mean 1
 * within the window, so that a weighted Hessian keeps the scale of the
 * uniform one and damping (relative to mean diag H) means the same. A
 * window whose concentration is flat (max == min) gets weight 1 for
 * every token. Everything in fp64 in token order; the weights are fp32. */
#ifndef XF_QUANT_WEIGHTS_TOKEN_WEIGHT_H
#define XF_QUANT_WEIGHTS_TOKEN_WEIGHT_H

#include <stdint.h>

#include "core/error.h"

#define XF_TOKEN_WEIGHT_R_MIN 0.005
#define XF_TOKEN_WEIGHT_R_MAX 1.0

/* acc[k] += sum over rows q of p[q, k] for a causal probability matrix p
 * [T_q, T_k] row-major (rows in order, fp64). */
void xf_attn_concentration_add(double *acc, const float *p, int64_t T_q, int64_t T_k);

/* r [T] (fp32) from the concentrations c [T] of one window: min-max onto
 * [r_min, r_max] (0 <= r_min <= r_max, r_max > 0), then scaled to mean 1.
 * Fails on a non-finite or negative concentration. */
int xf_token_weights_from_concentration(const double *c, int64_t T, double r_min, double r_max,
                                        float *r, xf_error *err);

/* out[t, :] = sqrt(r[t]) * x[t, :] (x, out [n, d]; may alias): rows whose
 * outer products sum to sum_t r_t x_t x_t^T. Fails (nothing written past
 * the bad row) on a weight that is negative or not finite. */
int xf_token_weight_scale_rows(const float *x, const float *r, int64_t n, int64_t d, float *out,
                               xf_error *err);

#endif
