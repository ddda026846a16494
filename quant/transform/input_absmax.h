/* Per-channel absolute maxima of the four distinct linear inputs of every
 * layer (qkv, o, mlp, down: model/linear_inputs.h), measured over
 * calibration windows with the model as it is bound (full precision, no
 * activation quantization). The statistic SmoothQuant-style smoothing
 * (quant/transform/smooth.h) migrates into the weights, and what its tests check is
 * flattened afterwards.
 *
 * Runs on the calibration stream like the GPTQ pipeline
 * (model/block_stream.h): the hidden states of all windows are kept
 * ([nsamples, T, hidden] floats) and each layer is densified once, so a
 * model larger than the runner's cache is not reloaded per window. */
#ifndef XF_QUANT_TRANSFORM_INPUT_ABSMAX_H
#define XF_QUANT_TRANSFORM_INPUT_ABSMAX_H

#include <stdint.h>

#include "core/error.h"
#include "model/weights.h"
#include "sim/act_quant.h"

typedef struct xf_act_absmax {
    int64_t n_layers;
    int64_t width[XF_IN_COUNT]; /* channels: hidden, n_heads * head_dim, hidden, intermediate */
    float *max[XF_IN_COUNT];    /* [n_layers, width] max |x[t, j]| over all tokens */
    int64_t windows, T;             /* what was measured */
} xf_act_absmax;

/* tokens: nsamples windows of T tokens, contiguous. Fails naming the layer
 * and input on a non-finite activation. */
int xf_act_absmax_measure(xf_act_absmax *a, const xf_model_weights *mw, const int32_t *tokens,
                          int64_t nsamples, int64_t T, xf_error *err);
void xf_act_absmax_free(xf_act_absmax *a);

/* The maxima of input `in` of layer `layer`: width[in] values. */
static inline const float *xf_act_absmax_row(const xf_act_absmax *a, int64_t layer,
                                             xf_lin_input in)
{
    return a->max[in] + layer * a->width[in];
}

#endif
