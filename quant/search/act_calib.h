/* Calibration of an activation scheme's data-dependent parameters on a
 * model and calibration windows, before weight quantization:
 *   - per-input clip ratios (--act-clip search): one output-MSE search per
 *     input kind (qkv, o, mlp, down) over all layers (quant/search/clip_search.h),
 *     run on the full-precision model (inputs captured before any
 *     activation quantization: the search asks how to clip the values the
 *     layer would see, and keeping the stream fp makes the four searches
 *     independent of each other's outcome);
 *   - the log2 base of the attention-probability quantizer
 *     (--attn-prob-base search): end-to-end logit-KL objective
 *     (quant/search/prob_calib.h, XF_LOG2_FIT_LOGIT_KL) with the rest of the
 *     scheme applied.
 * Both use at most `max_windows` of the calibration windows, because each
 * candidate costs a pass over them (11 clip ratios, 8 bases). */
#ifndef XF_QUANT_SEARCH_ACT_CALIB_H
#define XF_QUANT_SEARCH_ACT_CALIB_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "model/weights.h"
#include "sim/act_quant.h"

#define XF_ACT_CALIB_CLIP_WINDOWS 16
#define XF_ACT_CALIB_BASE_WINDOWS 4

/* Sets s->act_clip_input[] for every quantized input kind (s->act_bits > 0).
 * tokens: nsamples windows of T tokens, contiguous. *record (may be NULL)
 * gets {"windows": n, "inputs": {"qkv": {"ratio": r, "err": e}, ...}}. */
int xf_act_clip_calibrate(const xf_model_weights *mw, const int32_t *tokens, int64_t nsamples,
                          int64_t T, int64_t max_windows, xf_act_scheme *s, json_t **record,
                          xf_error *err);

/* Sets s->attn_prob_log2_base (s->attn_prob_bits > 0, log2 quantizer). */
int xf_attn_prob_base_calibrate(const xf_model_weights *mw, const int32_t *tokens,
                                int64_t nsamples, int64_t T, int64_t max_windows,
                                xf_act_scheme *s, json_t **record, xf_error *err);

#endif
