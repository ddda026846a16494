/* SpinQuant's rotations as parameters of the whole quantized network
 * (docs/methods.md "SpinQuant"): R1 [hidden, hidden] on the residual
 * stream and one R2_l [head_dim, head_dim] per layer on v's output / o's
 * input, with the online down Hadamard H (R4) fixed. From the folded,
 * unrotated fp32 model (the base: norms folded, head untied) the
 * effective weights are (quant/transform/rotate.h's placement):
 *   q, k, gate, up   Q(W R1)
 *   v                Q(R2^T W_v[h] R1)      per kv head h (rows)
 *   o                Q(R1^T W_o[:, h] R2)   per q head h (columns)
 *   down             Q(R1^T W_down H)
 *   head             W_head R1              (full precision, as QuaRot)
 *   embedding        E R1                   (gathered rows, h0 = E[tok] R1)
 * Q = RTN fake quantization on the recipe's grid (per row and group,
 * quant/weights/grid.h), passed straight through by the gradient (its
 * rounding treated as a constant: SpinQuant's STE).
 * Gradients from the weight gradients G = dL/dW' (model/backward.h):
 *   readers  W' = W R:    dL/dR += W^T G
 *   writers  W' = R^T W:  dL/dR += W G^T
 * so  G1 += W^T G (q, k, gate, up, head; E[tok]^T dL/dh0 for the
 * embedding), (B^T W_v)^T G_v, (W_o B) G_o^T, (W_down H) G_down^T, and
 * G2_l += sum_h (W_v[h] R1) G_v[h]^T + (R1^T W_o[:, h])^T G_o[:, h], B the
 * block-diagonal R2. R need not be orthogonal for these formulas
 * (tests/test_e2e_rotation.c checks them against central differences of
 * an fp64 forward). Products are fp32 SGEMMs with R rounded to fp32; the
 * gradients G1, G2 are accumulated in fp64. */
#ifndef XF_QUANT_TRANSFORM_E2E_ROTATION_H
#define XF_QUANT_TRANSFORM_E2E_ROTATION_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/backward.h"
#include "model/weights.h"
#include "sim/hadamard.h"
#include "quant/weights/grid.h"

typedef struct xf_e2e_model {
    xf_model_config cfg;
    int n_layers;
    int64_t hidden, head_dim, vocab;
    xf_dense_layer *base;  /* [n_layers] folded, unrotated; down holds W_down H */
    xf_dense_head head;    /* base head (untied; norm weight as loaded) */
    float *embed;          /* [vocab, hidden] */
    xf_dense_layer *eff;   /* [n_layers] effective weights (xf_e2e_build) */
    xf_dense_head eff_head;
    float *R1f, *R2f;      /* fp32 copies of the last R1 [H, H], R2 [L, d, d] */
    float *tmp_v, *tmp_o;  /* [kv_dim, H] W_v R1 and [H, q_dim] R1^T W_o of the last build */
    float *scratch;        /* [H, H] */
    float *A, *dd;         /* [d, H], [d, d] */
} xf_e2e_model;

/* The optimiser's minibatch for step `step`: perm[0..b) are b distinct
 * windows of nwin, drawn from seed by a partial Fisher-Yates shuffle
 * (perm must hold nwin). SpinQuant e2e and OstQuant draw the same ones. */
void xf_e2e_pick_windows(uint64_t seed, int step, int64_t nwin, int64_t b, int64_t *perm);

/* The base from a folded model (the caller folded the norms; mw must stay
 * open only during the call). down_had: the online down Hadamard (fused
 * into the base down weights), or NULL. Refuses what the backward pass
 * does not cover and linear biases (one line naming `what`). */
int xf_e2e_model_init(xf_e2e_model *m, const xf_model_weights *mw, const xf_hadamard *down_had,
                      const char *what, xf_error *err);
void xf_e2e_model_free(xf_e2e_model *m);

/* Effective weights for R1 [H, H] and R2 [L, d, d] (NULL: identity, no
 * head-wise rotation), fake-quantized with c / group (c->bits 0: not
 * quantized; group <= 0: one grid per row). */
int xf_e2e_build(xf_e2e_model *m, const double *R1, const double *R2, const xf_grid_config *c,
                 int64_t group, xf_error *err);

/* RTN fake quantization of W [out, in] per row and group (group <= 0:
 * whole rows), in place, as xf_e2e_build. */
void xf_e2e_fake_quant(float *W, int64_t out, int64_t in, const xf_grid_config *c, int64_t group);

/* h0 [T, H] = E[tokens] R1 (the last build's R1). */
int xf_e2e_embed(const xf_e2e_model *m, const int32_t *tokens, int64_t T, float *h0,
                 xf_error *err);

/* G1 [H, H] += the embedding term E[tokens]^T dh0 of one window. */
void xf_e2e_grad_embed(xf_e2e_model *m, const int32_t *tokens, int64_t T, const float *dh0,
                       double *G1);

/* G1 += and G2 [L, d, d] += (G2 NULL: R2 not learned) the weight terms of
 * g (gradients of the effective weights of the last build). */
void xf_e2e_grad_weights(xf_e2e_model *m, const xf_grads *g, double *G1, double *G2);

#endif
