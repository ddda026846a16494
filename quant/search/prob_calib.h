/* Calibration of the log2 probability quantizer's base (AdaLog-style):
 * run calibration windows through a model, sample the post-softmax
 * attention probabilities (the causal entries, keys 0..i of each query
 * row, all layers and heads), and search the base on that sample
 * (sim/log2_quant.h, xf_log2_base_search).
 *
 * The windows are the first max_windows non-overlapping runs of T tokens
 * of `tokens`. Sampling is deterministic: every stride-th causal entry in
 * forward order, stride = ceil(total entries / max_samples). When `scheme`
 * is given, its activation and KV quantization are applied during the
 * pass (chained hooks), so the probabilities are those the quantized model
 * produces; its probability quantization is not (the sample is taken
 * before it). */
#ifndef XF_QUANT_SEARCH_PROB_CALIB_H
#define XF_QUANT_SEARCH_PROB_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/forward.h"
#include "sim/act_quant.h"

/* *sample is malloc'd (n_sample values). T <= the runner's max_T;
 * n_tokens >= T. scheme may be NULL. */
int xf_prob_sample_collect(xf_runner *r, const int32_t *tokens, int64_t n_tokens, int64_t T,
                           int64_t max_windows, const xf_act_scheme *scheme, size_t max_samples,
                           float **sample, int64_t *n_sample, xf_error *err);

/* How xf_log2_base_calibrate scores a candidate base:
 *   XF_LOG2_FIT_MSE       squared error of the probability sample (the
 *                         flat-sample search, xf_log2_base_search);
 *   XF_LOG2_FIT_LOGIT_KL  end to end: mean over positions of
 *                         KL(fp32 logits || logits with the scheme and
 *                         log2 probabilities at that base) on the windows
 *                         (one forward pass per candidate and window).
 * The sample MSE weighs the few large probabilities and ignores the mass
 * lost by the many small ones: on stories260K at 3 bits it picks base
 * 2^0.75, which doubles the held-out logit KL of base 2; the logit KL
 * objective picks bases that are also best on held-out text (2^0.5 at 4
 * bits, 2 at 3 bits; see bench/bench_log2.c). Prefer XF_LOG2_FIT_LOGIT_KL
 * when a runner is at hand. Ties keep the earlier candidate. */
typedef enum xf_log2_fit { XF_LOG2_FIT_MSE = 0, XF_LOG2_FIT_LOGIT_KL = 1 } xf_log2_fit;

/* Picks the log2 base for `bits` over the default candidates
 * (xf_log2_base_default). MSE: collects up to max_samples probabilities as
 * above; LOGIT_KL: max_samples is unused. *score (may be NULL) gets the
 * chosen base's objective (sum of squared errors, or mean KL in nats). */
int xf_log2_base_calibrate(xf_runner *r, const int32_t *tokens, int64_t n_tokens, int64_t T,
                           int64_t max_windows, const xf_act_scheme *scheme, int bits,
                           xf_log2_fit fit, size_t max_samples, double *log2_base, double *score,
                           xf_error *err);

#endif
