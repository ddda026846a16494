/* The backward pass of the fp32 forward (llama family: RMSNorm, RoPE, GQA
 * causal softmax attention, SwiGLU MLP, residual, final norm, head), for
 * learning transforms against the loss of the whole (fake-quantized)
 * network (SpinQuant's R1/R2, quant/transform/e2e_learn.c).
 *
 * Two calls per window:
 *   xf_tape_forward   the forward pass of model/forward.c (same kernels,
 *                     same hooks, same order, so the same logits bytes)
 *                     that also records what the backward pass needs: each
 *                     norm's input, every linear's input AFTER its hook
 *                     (the values the linears actually read: online
 *                     transforms and activation quantizers applied), Q
 *                     after RoPE, K and V after on_kv, the softmax
 *                     probabilities before and after on_attn_probs, the
 *                     gate and up outputs;
 *   xf_tape_backward  given dL/dlogits, accumulates dL/dW (and dL/db, the
 *                     norm weights' gradients) of every linear into an
 *                     xf_grads, in the [out, in] layout of xf_dense_layer,
 *                     and writes dL/dh0 (h0 = the embedded input, so row t
 *                     is dL/d(embedding row of token t)).
 * The input h0 [T, hidden] is given by the caller (xf_tape_embed gathers
 * token rows of an fp32 embedding matrix), so that a transform of the
 * embedding (E R1) can be differentiated by the caller.
 *
 * Hooks (the quantizers live in sim/, above this layer): the forward
 * calls the same xf_forward_hooks as xf_forward_layer. The backward treats
 * every hook as the identity (the straight-through estimator of a
 * quantizer), except where xf_backward_hooks.on_linear_input_grad is set:
 * it receives dL/d(hooked input) of each linear input and must turn it
 * into dL/d(input before the hook) in place. A linear online transform
 * x -> x H (sim/online.h's down-input Hadamard) pulls back as
 * dx -> dx H^T; a quantizer stays the identity.
 *
 * Precision: fp32 activations and gradients (cblas_sgemm), like the
 * forward; the losses (xf_loss_*) are summed in fp64. tests/test_backward.c
 * checks every gradient against central differences of an fp64 forward. */
#ifndef XF_MODEL_BACKWARD_H
#define XF_MODEL_BACKWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/forward.h"

/* What one layer's forward left for its backward (owned by the tape). */
typedef struct xf_tape_layer {
    float *h_in;   /* [T, hidden] layer input (residual stream) */
    float *xq;     /* [T, hidden] qkv input after its hook */
    float *q;      /* [T, q_dim] Q after RoPE and on_q */
    float *k, *v;  /* [T, kv_dim] after on_kv */
    float *p;      /* [n_heads, T, T] softmax output (before on_attn_probs) */
    float *pq;     /* [n_heads, T, T] after on_attn_probs; NULL: = p */
    float *ao;     /* [T, q_dim] o input after its hook */
    float *h_mid;  /* [T, hidden] residual after attention */
    float *xm;     /* [T, hidden] mlp input after its hook */
    float *g, *u;  /* [T, intermediate] gate and up outputs */
    float *ad;     /* [T, intermediate] down input after its hook */
    /* the same inputs BEFORE their hooks (for backward hooks whose
     * pull-back depends on them, e.g. a quantizer's scale STE) */
    float *xq0, *ao0, *xm0, *ad0; /* linear inputs */
    float *k0, *v0;               /* K (after RoPE), V before on_kv */
} xf_tape_layer;

typedef struct xf_tape {
    xf_model_config cfg;
    int64_t max_T, T;     /* T: the last forward's tokens */
    int n_layers;
    bool probs_hooked;    /* pq allocated */
    xf_tape_layer *layers;
    float *h_fin, *x_fin; /* [T, hidden] final norm input and output */
    float *rope_cos, *rope_sin; /* [max_T, head_dim / 2] (model/ops.h's tables) */
    /* backward scratch */
    float *dh, *dx, *dq, *dk, *dv, *dao, *dg, *du, *dP;
} xf_tape;

/* Refuses (one line) what the backward pass does not cover: families
 * other than llama, LayerNorm, fused q/k/v, activations other than SiLU. */
int xf_backward_supported(const xf_model_config *cfg, const char *what, xf_error *err);

/* Buffers for windows of up to max_T tokens. probs_hooked: also keep the
 * post-hook probabilities (needed when on_attn_probs changes them). */
int xf_tape_init(xf_tape *tp, const xf_model_config *cfg, int64_t max_T, bool probs_hooked,
                 xf_error *err);
void xf_tape_free(xf_tape *tp);

/* h0 [T, hidden] = rows tokens[t] of embed [vocab, hidden]; fails on an
 * out-of-range token id. */
int xf_tape_embed(const float *embed, int64_t vocab, int64_t hidden, const int32_t *tokens,
                  int64_t T, float *h0, xf_error *err);

/* Forward from h0 [T, hidden] through layers[0..n_layers-1] and the head
 * to logits [T, vocab], recording the tape. ws: a workspace of the same
 * config with max_T >= T. hooks may be NULL. */
int xf_tape_forward(xf_tape *tp, xf_workspace *ws, const xf_dense_layer *layers,
                    const xf_dense_head *hd, const float *h0, int64_t T,
                    const xf_forward_hooks *hooks, float *logits, xf_error *err);

typedef struct xf_backward_hooks {
    void *user;
    /* dL/d(hooked input) -> dL/d(input before the hook), in place; role as
     * in xf_forward_hooks.on_linear_input. NULL: identity. */
    /* x_in / x_out: the input before / after the forward hook. */
    int (*on_linear_input_grad)(void *user, int layer, xf_linear_role role, const float *x_in,
                                const float *x_out, float *dx, int64_t rows, int64_t cols,
                                xf_error *err);
    /* dL/d(Q after on_q), dL/d(K, V after on_kv) -> dL/d(Q, K after RoPE,
     * V), in place ([T, n_heads * head_dim], [T, n_kv_heads * head_dim]);
     * k_in, v_in / k_out, v_out: K and V before / after on_kv. NULL:
     * identity. */
    int (*on_qkv_grad)(void *user, int layer, const float *k_in, const float *v_in,
                       const float *k_out, const float *v_out, float *dq, float *dk, float *dv,
                       int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                       xf_error *err);
} xf_backward_hooks;

/* Gradients, accumulated (+=) by xf_tape_backward; arrays of the shapes of
 * the dense layers / head, NULL where the role (bias) is absent. */
typedef struct xf_layer_grads {
    float *w[XF_LIN_COUNT], *b[XF_LIN_COUNT];
    int64_t out[XF_LIN_COUNT], in[XF_LIN_COUNT]; /* 0 when absent */
    float *attn_norm_w, *mlp_norm_w; /* [hidden] */
} xf_layer_grads;

typedef struct xf_grads {
    int n_layers;
    int64_t hidden, vocab;
    xf_layer_grads *layers;
    float *head_w, *head_b, *norm_w; /* [vocab, hidden], [vocab] or NULL, [hidden] */
} xf_grads;

/* Zeroed gradients shaped like layers[0..n-1] and hd. */
int xf_grads_init(xf_grads *g, const xf_dense_layer *layers, int n_layers,
                  const xf_dense_head *hd, xf_error *err);
void xf_grads_zero(xf_grads *g);
void xf_grads_free(xf_grads *g);

/* The backward pass of the last xf_tape_forward (same layers, head and
 * hooks' transforms): g += dL/dparams, dh0 [T, hidden] = dL/dh0 (may be
 * NULL). dlogits [T, vocab]. bh may be NULL. */
int xf_tape_backward(xf_tape *tp, const xf_dense_layer *layers, const xf_dense_head *hd,
                     const float *dlogits, const xf_backward_hooks *bh, xf_grads *g,
                     float *dh0, xf_error *err);

/* ---- losses (fp64 sums) ---- */

/* Next-token cross-entropy of logits [T, vocab]: positions 0..T-2 predict
 * tokens[1..T-1]. *loss += scale * sum_t CE_t; dlogits (overwritten,
 * [T, vocab], row T-1 zero) = scale * dL/dlogits. */
void xf_loss_next_token_ce(const float *logits, const int32_t *tokens, int64_t T, int64_t vocab,
                           double scale, double *loss, float *dlogits);
/* KL(p_ref || p) summed over the T positions, p = softmax(logits), p_ref =
 * softmax(ref_logits). *loss += scale * sum_t KL_t; dlogits = scale *
 * (p - p_ref). */
void xf_loss_kl(const float *logits, const float *ref_logits, int64_t T, int64_t vocab,
                double scale, double *loss, float *dlogits);

/* KL-Top (OstQuant): per position, KL(p_ref || p) over the k tokens with
 * the largest reference logits only, both distributions renormalised over
 * them (model/loss_kl_top.c). xf_kl_top_reference: idx [T, k] those
 * tokens (descending, ties to the lower id) and logp [T, k] the reference
 * log-probabilities over them; 1 <= k <= vocab. xf_loss_kl_top: *loss +=
 * scale * sum_t KL_t; dlogits [T, vocab] (overwritten) = scale * (p - p_ref)
 * on the k tokens, 0 elsewhere. */
void xf_kl_top_reference(const float *ref_logits, int64_t T, int64_t V, int64_t k, int32_t *idx,
                         float *logp);
void xf_loss_kl_top(const float *logits, const int32_t *idx, const float *logp, int64_t T,
                    int64_t V, int64_t k, double scale, double *loss, float *dlogits);

#endif
