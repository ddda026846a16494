/* Static (calibrated) activation quantizers of the post-norm inputs, as
 * RepQuant's re-parameterisation leaves them (quant/transform/repquant.h):
 * for each layer and each of the qkv and mlp inputs one scale s (per
 * tensor) and one integer zero point z_c per channel,
 *     q = clamp(rint(x_c / s) + z_c, 0, 2^b - 1);   x'_c = (q - z_c) * s
 * (true fp32 division, rint half-even; fp32 in this order). The scale is
 * shared by all tokens and channels, so an integer kernel multiplies the
 * codes directly; the zero points enter only as a constant per output
 * (W (q - z) = W q - W z, W z computed once), as a per-tensor zero point
 * would. Recorded in the .xfq recipe's "static_act" (strict reader);
 * applied by sim/act_hooks in place of the per-token quantizer of those
 * inputs. */
#ifndef XF_SIM_STATIC_ACT_H
#define XF_SIM_STATIC_ACT_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "model/linear_inputs.h"
#include "model/weights.h"

/* the two inputs it covers: qkv (slot 0) and mlp (slot 1) */
#define XF_STATIC_ACT_SLOTS 2

typedef struct xf_static_act {
    int64_t n_layers;   /* 0: none */
    int64_t width;      /* channels (hidden) */
    int bits;           /* 2..8 */
    float *scale[XF_STATIC_ACT_SLOTS];  /* [n_layers] */
    int32_t *zero[XF_STATIC_ACT_SLOTS]; /* [n_layers, width], in 0..2^bits-1 */
} xf_static_act;

/* The slot of an input (qkv 0, mlp 1), -1 for the others. */
int xf_static_act_slot(xf_lin_input in);
int xf_static_act_init(xf_static_act *s, int64_t n_layers, int64_t width, int bits,
                       xf_error *err);
void xf_static_act_free(xf_static_act *s);
/* Fake-quantizes row x[width] with layer l's quantizer of slot k. Returns
 * -1 on a non-finite value (x then partly written). */
int xf_static_act_row(const xf_static_act *s, int64_t l, int k, float *x);
/* {"bits", "qkv": [{"scale", "zero": [...]}, ...], "mlp": [...]}; NULL on
 * out of memory. */
json_t *xf_static_act_to_json(const xf_static_act *s);
/* Strict: every layer of cfg, width = hidden, scales finite > 0, zero
 * points integers in range; errors name `what` and the entry. */
int xf_static_act_from_json(xf_static_act *s, const json_t *j, const xf_model_config *cfg,
                            const char *what, xf_error *err);

#endif
