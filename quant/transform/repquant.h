/* RepQuant's calibration / inference decoupling for the post-norm inputs
 * (qkv and mlp) of pre-norm models. See docs/methods.md ("RepQuant").
 *
 * Calibration: channel c of the input gets an asymmetric b-bit quantizer
 * with dual clipping bounds lo_c <= 0 <= hi_c,
 *     s_c = (hi_c - lo_c) / (2^b - 1),  z_c = rint(-lo_c / s_c),
 *     Q_c(x) = (clamp(rint(x / s_c) + z_c, 0, 2^b - 1) - z_c) s_c,
 * the bounds fitted on calibration tokens to minimise the error of the
 * readers' outputs, sum_t || W (Q(x_t) - x_t) ||^2 with W the readers
 * stacked (q, k, v or gate, up): bounds lo = a min_c, hi = b max_c with
 * (a, b) from a grid, one channel at a time (coordinate descent through
 * the Gram matrix G = W^T W, the change of the loss of one channel's
 * candidate computed in O(tokens)), two sweeps over the channels.
 *
 * Inference (exact re-parameterisation): one scale s~ (the geometric mean
 * of the s_c) and r_c = s_c / s~. With x' = x / r (r folded into the norm:
 * gamma / r, LayerNorm beta / r) and W' = W diag(r),
 *     Q~(x')_c = (clamp(rint(x'_c / s~) + z_c, 0, 2^b - 1) - z_c) s~
 * satisfies r_c Q~(x')_c = Q_c(x_c) in exact arithmetic (x'_c / s~ =
 * x_c / s_c), so W' Q~(x') = W Q(x): the static per-tensor-scale
 * quantizer of sim/static_act.h (its zero points stay per channel; an
 * integer kernel adds W' z s~ as a constant). In fp32 the two differ only
 * where x / s_c lies within rounding of a half-integer. In full precision
 * the fold is exact (W' x' = W x). */
#ifndef XF_QUANT_TRANSFORM_REPQUANT_H
#define XF_QUANT_TRANSFORM_REPQUANT_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "model/loader.h"
#include "model/model_edit.h"
#include "sim/static_act.h"

/* Calibration tokens kept per input and layer (evenly strided). */
#define XF_REPQUANT_MAX_TOKENS 2048

/* The per-channel quantizer of bounds (lo, hi) on x[0..n) in place. */
void xf_repquant_channel_quant(float *x, int64_t n, float lo, float hi, int bits);

/* Fits lo[C], hi[C] for X [N, C] (row-major) and the readers' Gram matrix
 * G [C, C] (fp64); *loss0 / *loss1 the objective at the min/max bounds and
 * at the fit. Fails on out of memory. */
int xf_repquant_fit(const float *X, int64_t N, int64_t C, const double *G, int bits, float *lo,
                    float *hi, double *loss0, double *loss1, xf_error *err);

/* The re-parameterisation of fitted bounds: *scale = s~, zero[C], r[C]. */
void xf_repquant_reparam(const float *lo, const float *hi, int64_t C, int bits, float *scale,
                         int32_t *zero, double *r);

/* The whole transform on m through edit (committed here): calibration
 * windows tokens [nsamples, T], the model as bound (after smoothing or
 * rotation). *sa receives the static quantizers (free with
 * xf_static_act_free), *record what was done. Pre-norm models with
 * [out, in] readers only. */
int xf_repquant_model(xf_loaded_model *m, xf_model_edit *edit, const int32_t *tokens,
                      int64_t nsamples, int64_t T, int bits, xf_static_act *sa, json_t **record,
                      xf_error *err);

#endif
