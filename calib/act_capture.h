/* Activation statistics (act_stats.h) of every layer's linear inputs,
 * captured by running the full-precision model on calibration windows
 * (model/block_stream.h: the calibration stream, with an on_linear_input
 * hook).
 *
 * The four distinct inputs of a decoder layer, in the order the forward
 * pass reaches them, are the ones the hook exposes: the q/k/v input, the
 * attention output entering o_proj, the MLP input (llama gate/up, OPT fc1,
 * GPT-2 c_fc) and the down_proj / fc2 input: model/linear_inputs.h's
 * xf_lin_input, the kinds activation quantization names too. */
#ifndef XF_CALIB_ACT_CAPTURE_H
#define XF_CALIB_ACT_CAPTURE_H

#include <stdint.h>

#include "calib/act_cov.h"
#include "calib/act_stats.h"
#include "core/error.h"
#include "model/forward.h"
#include "model/linear_inputs.h"
#include "model/weights.h"

typedef struct xf_model_act_stats {
    int64_t n_layers;
    int64_t windows, tokens; /* what was run */
    xf_act_stats *inputs;    /* [n_layers * XF_IN_COUNT], layer-major */
    xf_act_cov *cov;         /* the same layout, or NULL (not asked for) */
} xf_model_act_stats;

/* What a collection measures besides the statistics. */
typedef struct xf_act_capture_opts {
    bool covariance;              /* each input's fp64 covariance (calib/act_cov.h) */
    const xf_forward_hooks *pre;  /* called first on every input, K/V and probabilities
                                     (a rotated .xfq's online transforms), or NULL */
} xf_act_capture_opts;

/* Runs windows 0..nsamples-1 of `tokens` ([nsamples, T], contiguous)
 * through mw block by block (holding [nsamples, T, hidden] hidden states)
 * and accumulates every input of every layer, windows in order. The
 * stream stops at the last layer's down input (the LM head and the last
 * down_proj are not needed). Shows a progress line on a TTY. */
int xf_model_act_stats_collect(xf_model_act_stats *st, const xf_model_weights *mw,
                               const int32_t *tokens, int64_t nsamples, int64_t T,
                               xf_error *err);
/* The same with opts (NULL: none). */
int xf_model_act_stats_collect_opts(xf_model_act_stats *st, const xf_model_weights *mw,
                                    const int32_t *tokens, int64_t nsamples, int64_t T,
                                    const xf_act_capture_opts *opts, xf_error *err);
void xf_model_act_stats_free(xf_model_act_stats *st);

static inline const xf_act_stats *xf_model_act_stats_at(const xf_model_act_stats *st,
                                                        int64_t layer, xf_lin_input in)
{
    return &st->inputs[layer * XF_IN_COUNT + in];
}

#endif
