/* QQQ's adaptive smoothing strength (--smooth search): one SmoothQuant
 * alpha per layer and smoothed input (quant/transform/smooth.h), each the
 * one of a grid that minimises the output error of the quantized layer on
 * calibration tokens, then the smoothing applied with those alphas (exact
 * in full precision, as with a fixed alpha). docs/methods.md "QQQ".
 *
 * For input x of layer l (captured from the full-precision model on the
 * first XF_SMOOTH_SEARCH_WINDOWS calibration windows, X [n, d]) and the
 * linears W_r reading it, candidate alpha gives the column factors f
 * (xf_smooth_column_factors, from the channel maxima measured on all
 * windows, as the fixed smoothing uses) and the error
 *
 *   E(alpha) = sum_r || Qa(X diag(f)^-1) Qw(W_r diag(f))^T - X W_r^T ||_F^2
 *
 * with Qa the scheme's per-token activation quantizer (bits, sym, group,
 * clip of that input; none when the input is not quantized) and Qw round
 * to nearest on the weight grid (bits, group, sym; the proxy for the GPTQ
 * that follows, as QQQ scores its smoothing). The smallest E wins; ties
 * keep the smaller alpha. Grid: 0.05, 0.10, ..., 0.95. The products are
 * cblas_sgemm calls, E summed in fp64 in row order. */
#ifndef XF_QUANT_SEARCH_SMOOTH_SEARCH_H
#define XF_QUANT_SEARCH_SMOOTH_SEARCH_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "model/loader.h"
#include "model/model_edit.h"
#include "quant/weights/grid.h"
#include "sim/act_quant.h"

#define XF_SMOOTH_SEARCH_WINDOWS 8
#define XF_SMOOTH_SEARCH_GRID 19

/* The grid's alpha k (0..XF_SMOOTH_SEARCH_GRID-1): 0.05 (k + 1). */
double xf_smooth_search_alpha(int k);

/* E(alpha) of every grid alpha for one input: X [n, d], readers W[r]
 * [out[r], d] (fp32, row-major), s [d] the channel maxima; err [GRID]
 * receives E. Returns the index of the smallest (ties: the first). */
int xf_smooth_search_input(const xf_model_config *cfg, xf_lin_input in, const float *X,
                           int64_t n, const float *const *W, const int64_t *out, int n_readers,
                           const float *s, const xf_act_scheme *act, const xf_grid_config *grid,
                           int64_t group, double *err_out, int *best, xf_error *err);

/* Searches every layer's alphas on tokens [nsamples, T] with m as bound,
 * then smooths m through edit (xf_smooth_apply_alphas). *record: the
 * smoothing's record with "alpha": "search", "alphas": {input: [per
 * layer]}, "search": {"grid", "windows", "weight_bits", "weight_group",
 * "act_bits"}. */
int xf_smooth_search_model(xf_loaded_model *m, xf_model_edit *edit, const int32_t *tokens,
                           int64_t nsamples, int64_t T, const xf_act_scheme *act,
                           const xf_grid_config *grid, int64_t group, unsigned inputs_mask,
                           json_t **record, xf_error *err);

#endif
