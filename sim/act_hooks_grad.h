/* The backward hooks matching sim/act_hooks.h (model/backward.h): the
 * straight-through estimator of every quantizer (identity) and the
 * transpose of each linear online transform (sim/online.h): the down-input
 * Hadamard x -> x H pulls dL/d(x H) back to dL/dx = dL/d(x H) H^T, the
 * Q/K head Hadamard (R3) likewise per head. */
#ifndef XF_SIM_ACT_HOOKS_GRAD_H
#define XF_SIM_ACT_HOOKS_GRAD_H

#include "model/backward.h"
#include "sim/act_hooks.h"

/* Backward hooks for forward hooks h (borrowed: must outlive bh). */
void xf_act_hooks_backward(const xf_act_hooks *h, xf_backward_hooks *bh);

#endif
