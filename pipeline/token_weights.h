/* RSQ's token weights on the quantized calibration stream: for each
 * window, the attention concentration (quant/weights/token_weight.h) of
 * the block the stream stands at, computed from the block's input on the
 * quantized stream with its weights as they are at the block start (none
 * of its linears quantized yet) and the stream's own hooks (activation
 * quantizers, online transforms), as RSQ computes it from the layer about
 * to be quantized on the quantized model's inputs. One look ahead per
 * window and block (model/block_stream.h xf_block_stream_peek) to the o
 * input; the stream itself does not move. The weights then scale every
 * Hessian of the block (q/k/v, o, MLP, down). */
#ifndef XF_PIPELINE_TOKEN_WEIGHTS_H
#define XF_PIPELINE_TOKEN_WEIGHTS_H

#include "core/error.h"
#include "model/block_stream.h"

/* r [bs->ns * bs->T]: window s's weights at r + s * T. hooks: the stream's
 * (may be NULL). The stream must stand at block dl's start. per_query:
 * each token's concentration divided by the T - t queries that see it
 * (causal), the mean attention it receives, before the normalisation:
 * RSQ's sum favours early positions by construction. */
int xf_stream_token_weights(xf_block_stream *bs, const xf_dense_layer *dl,
                            const xf_forward_hooks *hooks, bool per_query, float *r,
                            xf_error *err);

#endif
