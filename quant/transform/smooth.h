/* Per-channel activation smoothing (SmoothQuant; RepQuant's
 * reparameterization), exact in full precision: the per-channel abs-max
 * s_j of a linear input, measured on calibration windows, is migrated into
 * the weights so that a per-tensor or per-token activation quantizer sees
 * flatter channels. For an input x read by linears W (y = W x + b):
 *
 *   f_j = s_j^alpha / w_j^(1 - alpha),  w_j = max over the rows of every
 *         linear reading x of |W[:, j]|,
 *   x' = x / f (folded into whatever produces x),  W' = W diag(f),
 *
 * so W' x' = W x. Where x comes from:
 *   qkv, mlp  pre-LN norm: RMSNorm weight (LayerNorm weight AND bias) / f;
 *             readers q,k,v (GPT-2 c_attn) / gate,up (fc1, c_fc) scaled.
 *             Post-LN OPT (do_layer_norm_before false) is skipped with a
 *             warning: there the input is the residual stream itself, and
 *             no norm output feeds only the linears.
 *   o         v_proj: rows (and bias) of v / f, o columns * f. Input channel
 *             (head h, dim d) of o comes from v channel (kv head h / group,
 *             d), so with GQA one factor per v channel: s and w are the max
 *             over the q heads sharing that kv head. GPT-2: v is the last
 *             third of the fused c_attn output.
 *   down      Llama family: rows (and bias) of up / f (act(gate) * up is
 *             linear in up); OPT with ReLU: rows and bias of fc1 / f
 *             (relu(z / f) = relu(z) / f for f > 0). GPT-2 (GELU) and OPT
 *             with other activations are skipped with a warning: no exact
 *             migration exists.
 * Each edited tensor is rewritten once from the original values in fp64
 * (W'[o, i] = W[o, i] * f_col[i] / f_row[o]) and cast to fp32, so a weight
 * touched by two inputs (v: qkv columns, o rows) is rounded once.
 *
 * Guards: f_j = 1 when s_j or w_j is 0 (a channel never active in
 * calibration, or read by all-zero columns: nothing to migrate, and 0^0 /
 * x/0 would follow). f is clamped to [XF_SMOOTH_FACTOR_MIN,
 * XF_SMOOTH_FACTOR_MAX]: a nearly dead channel with alpha near 1 would
 * otherwise drive the norm weight toward fp32 underflow (w / f) and the
 * weight columns toward overflow, losing the exactness the transform is
 * for; real outlier channels are 1e1..1e3 above the others, far inside. */
#ifndef XF_QUANT_TRANSFORM_SMOOTH_H
#define XF_QUANT_TRANSFORM_SMOOTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/loader.h"
#include "model/model_edit.h"
#include "quant/transform/input_absmax.h"
#include "sim/act_quant.h"

#define XF_SMOOTH_FACTOR_MIN 1e-5
#define XF_SMOOTH_FACTOR_MAX 1e5
/* inputs_mask: bit (1u << xf_lin_input); the default smooths every input
 * that can be smoothed exactly in the architecture */
#define XF_SMOOTH_INPUTS_DEFAULT XF_IN_ALL

/* The factor of one channel (guards and clamp included); *guarded set when
 * s or w was 0 (f = 1), *clamped when the clamp applied (may be NULL). */
double xf_smooth_factor(double s, double w, double alpha, bool *guarded, bool *clamped);

/* NULL when input `in` can be smoothed exactly in this architecture, else
 * why not (one phrase). */
const char *xf_smooth_not_exact(const xf_model_config *cfg, xf_lin_input in);

/* Smooths m with measured maxima `stats` (xf_act_absmax_measure on m):
 * edits the affected tensors through `edit` (initialized on m) and commits.
 * alpha in [0, 1]. Inputs in inputs_mask that are not exact here are
 * skipped with a warning (and listed in the record). *record (may be NULL)
 * receives {"alpha", "inputs": [applied], "skipped": {input: why},
 * "channels_smoothed", "channels_guarded", "channels_clamped",
 * "min_factor", "max_factor", "factor_clamp": [min, max], "windows",
 * "seqlen", "per_input": {input: {"channels", "min_factor", "max_factor"}}}
 * (factors over channels with a formula factor; null when none). */
int xf_smooth_apply(xf_loaded_model *m, xf_model_edit *edit, const xf_act_absmax *stats,
                    double alpha, unsigned inputs_mask, json_t **record, xf_error *err);

/* The same with one alpha per layer and input: alphas [n_layers *
 * XF_IN_COUNT] (layer-major; NULL: `alpha` everywhere, which the record
 * reports either way). */
int xf_smooth_apply_alphas(xf_loaded_model *m, xf_model_edit *edit, const xf_act_absmax *stats,
                           double alpha, const double *alphas, unsigned inputs_mask,
                           json_t **record, xf_error *err);

/* The factor of every column of input `in` (width of the input) as
 * xf_smooth_apply computes it: s the channel maxima of the input, w the
 * column abs-max over every linear reading it; for o, one factor per v
 * channel (maxima over the q heads of its kv group) repeated on those
 * heads' columns. The searched smoothing (quant/search/smooth_search.h)
 * scores candidate alphas with it. */
void xf_smooth_column_factors(const xf_model_config *c, xf_lin_input in, const float *s,
                              const double *w, double alpha, double *f);

/* Measures the maxima on tokens [nsamples, T] (calibration windows, e.g.
 * xf_calib_set.tokens) with m as currently bound, then xf_smooth_apply. */
int xf_smooth_model(xf_loaded_model *m, xf_model_edit *edit, const int32_t *tokens,
                    int64_t nsamples, int64_t T, double alpha, unsigned inputs_mask,
                    json_t **record, xf_error *err);

#endif
