/* The backward hooks matching sim/act_hooks.h (model/backward.h): each
 * quantizer passes the gradient straight through (STE), and each linear
 * online transform (sim/online.h) is pulled back by its transpose: the
 * down-input Hadamard x -> x H gives dL/dx = dL/d(x H) H^T, the Q/K head
 * Hadamard (R3) likewise per head.
 *
 * STE variants of a quantized group xq = x + s r (its rounding residual r
 * in steps held fixed):
 *   identity  dL/dx = dL/dxq (SpinQuant's STE: the step s is a constant);
 *   scale     s also follows the range it was fitted on (s proportional
 *             to max |x| of the group when symmetric, to max(x, 0) -
 *             min(x, 0) when not; the clip ratio is a constant factor), so
 *             sum_j dL/dxq_j r_j flows into the value(s) that set the
 *             range, as quant/transform/rotation_learning.h's
 *             XF_LROT_STE_SCALE: the gradient then sees that shrinking a
 *             token's largest value refines the grid of all the others,
 *             which is what a rotation is for.
 * Applied to the linear inputs the scheme quantizes and to K / V (not to
 * the attention probabilities: identity). */
#ifndef XF_SIM_ACT_HOOKS_GRAD_H
#define XF_SIM_ACT_HOOKS_GRAD_H

#include <stdbool.h>

#include "model/backward.h"
#include "sim/act_hooks.h"

/* Backward hooks for forward hooks h (borrowed: must outlive bh); scale:
 * the scale STE, else identity (recorded in h->ste_scale). */
void xf_act_hooks_backward(xf_act_hooks *h, bool scale, xf_backward_hooks *bh);

#endif
