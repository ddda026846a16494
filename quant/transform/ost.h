/* OstQuant (docs/methods.md "OstQuant"): SpinQuant's rotations of
 * quant/transform/e2e_rotation.h with a learnable per-channel scaling
 * beside each orthogonal part, every pair exact in full precision:
 *   residual  R1 and, per layer, a scale s_a on the attention norm's output
 *             and s_m on the mlp norm's output: the norm weights take the
 *             scales (norm_w <- norm_w s), their readers' columns 1 / s:
 *               q, k        Q(W R1 D_a^-1)
 *               gate        Q(W R1 D_m^-1)
 *             (the residual stream itself is only rotated: RMSNorm is not
 *             invariant to a per-channel scale of its input, its weight is);
 *   v -> o    R2 per layer and a scale s_v per v output channel [kv_dim]:
 *               v           Q(S_v R2^T W_v[h] R1 D_a^-1)   rows x s_v
 *               o           Q(R1^T W_o[:, h] R2 S_v^-1)    columns / s_v of
 *                                                          the kv head read
 *             (attention mixes V over tokens, not channels: exact);
 *   up -> down  a scale s_u per intermediate channel (SwiGLU's product
 *             silu(g) * u is linear in u):
 *               up          Q(S_u W_up R1 D_m^-1)
 *               down        Q(R1^T W_down D_u^-1 H)    H the online Hadamard
 *   head and embedding as e2e_rotation.h (W_head R1, E R1).
 * Scales are parametrized by their logs (s = exp(l), positive). Weights
 * are RTN fake-quantized on the recipe's grid and passed straight through.
 *
 * Gradients from the effective weights' gradients G (model/backward.h),
 * W' the effective weight before quantization:
 *   dL/dl_a[j] = s_a[j] n_j dL/dnorm_w[j] - sum_{q,k,v} sum_i W'_ij G_ij
 *   (n the base norm weight; the same for l_m with gate, up)
 *   dL/dl_v[i] = sum_k W'_v[i,k] G_v[i,k] - sum_{o columns c reading i}
 *                sum_r W'_o[r,c] G_o[r,c]
 *   dL/dl_u[j] = sum_k W'_up[j,k] G_up[j,k] - sum_i M_ij (G_down H^T)_ij,
 *                M = R1^T W_down D_u^-1
 * and R1 / R2 from e2e_rotation.h's formulas applied to the pulled-back
 * gradients G D^-1 (readers), S_v G D_a^-1 (v), S_u G D_m^-1 (up),
 * G S_v^-1 (o), G_down H^T D_u^-1 (down). tests/test_ost.c checks them
 * against central differences of the fp64 reference forward. */
#ifndef XF_QUANT_TRANSFORM_OST_H
#define XF_QUANT_TRANSFORM_OST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/error.h"
#include "model/backward.h"
#include "model/model_edit.h"
#include "model/weights.h"
#include "sim/hadamard.h"
#include "sim/online.h"
#include "quant/transform/e2e_rotation.h"
#include "quant/transform/rotate.h"
#include "quant/weights/grid.h"

/* Adam's step on the log-scales (the peak of the run's cosine schedule;
 * the rotations keep --rotate-lr). A scale of e^0.01 per step at most is
 * small against the activation ranges the quantizers see. */
#define XF_OST_SCALE_LR 0.01

/* The parameters (or their gradients: same shapes). fp64, row-major. */
typedef struct xf_ost_params {
    int64_t H, d, L, kvd, NI;
    double *R1;      /* [H, H] */
    double *R2;      /* [L, d, d]; NULL: identity, not learned */
    double *la, *lm; /* [L, H] log-scales of the attn / mlp norm outputs */
    double *lv;      /* [L, kvd] log-scales of v's rows / o's columns */
    double *lu;      /* [L, NI] log-scales of up's rows / down's columns */
} xf_ost_params;

/* Shapes from cfg; R1 = I, R2 = I (when with_r2; else NULL), scales 1. */
int xf_ost_params_init(xf_ost_params *p, const xf_model_config *cfg, bool with_r2,
                       xf_error *err);
void xf_ost_params_free(xf_ost_params *p);
void xf_ost_params_zero(xf_ost_params *p); /* every array 0 (gradients) */

typedef struct xf_ost_model {
    xf_e2e_model m;           /* base without the down Hadamard (applied here) */
    const xf_hadamard *had;   /* the online down Hadamard or NULL */
    float **pre;              /* [L * XF_LIN_COUNT] effective weights before
                                 quantization (down: before H, i.e. M above) */
    float *sa, *sm, *sv, *su; /* exp of the last build's log-scales, fp32 */
} xf_ost_model;

/* As xf_e2e_model_init (down_had: the online down Hadamard, not fused). */
int xf_ost_model_init(xf_ost_model *om, const xf_model_weights *mw, const xf_hadamard *down_had,
                      const char *what, xf_error *err);
void xf_ost_model_free(xf_ost_model *om);

/* Effective weights of p into om->m.eff / eff_head (c NULL or bits 0: not
 * quantized). */
int xf_ost_build(xf_ost_model *om, const xf_ost_params *p, const xf_grid_config *c,
                 int64_t group, xf_error *err);

/* gp += the gradients of p from g (the last build's effective weights'
 * gradients; g is overwritten with the pulled-back gradients). gp->R2 NULL:
 * R2 not learned. The embedding's R1 term is xf_e2e_grad_embed(&om->m). */
void xf_ost_grad(xf_ost_model *om, xf_grads *g, xf_ost_params *gp, xf_error *err);

/* ---- fusing the learned scales into a model (exact rewrites) ---- */

/* up rows x s_u, down columns / s_u (exp(lu) [L, NI]); any basis of the
 * residual stream: run it before xf_rotate_apply's down Hadamard. */
int xf_ost_fuse_mlp_scales(xf_model_edit *e, const double *lu, xf_error *err);
/* On a model folded and rotated (xf_rotate_apply, xf_rotate_headwise):
 * norm weights x s_a / s_m, their readers' columns / s, v rows x s_v, o
 * columns / s_v. Commits the edit. */
int xf_ost_fuse_stream_scales(xf_model_edit *e, const double *la, const double *lm,
                              const double *lv, xf_error *err);

/* ---- the learner (quant/transform/ost_learn.c) ---- */

/* R1, R2 (when p->R2) and, when q->ost_scales, the scales, learned against
 * q->e2e_loss (ce, kl or kl-top with q->kl_top_k) of the whole
 * fake-quantized network as xf_learned_e2e (same start: the randomized
 * Hadamard of q->seed for R1, plain H_d for R2, scales 1; same schedule;
 * kept only if the loss on the windows drops). Adds "learned" to record. */
int xf_learned_ost(const xf_model_weights *mw, const xf_r1_request *q,
                   const xf_online_transforms *online, xf_ost_params *p, json_t *record,
                   xf_error *err);

#endif
