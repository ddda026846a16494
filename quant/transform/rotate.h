/* Exact weight transforms of the rotation methods (QuaRot, SpinQuant,
 * MambaQuant's KLT), applied to a model through model/model_edit.h before
 * quantization. docs/methods.md ("QuaRot") has the recipe.
 *
 * Conventions (sim/hadamard.h): activations are rows, a linear is
 * y = x W^T with W [out, in] (the logical layout; HF GPT-2 Conv1D weights
 * stored [in, out] are handled), and a rotation R [n, n] acts from the
 * right: x -> x R. Readers of a rotated space take W -> W R (then
 * (x R)(W R)^T = x W^T); writers into it take W -> R^T W and b -> b R.
 *
 * 1. Norm folding (xf_rotate_fold_norms): every RMSNorm scale g moves into
 *    the columns of the linears reading the norm (q/k/v or GPT-2's fused
 *    c_attn, gate/up or fc1/c_fc, the LM head), the norm weight becomes 1.
 *    The head of a tied model is untied first (model_edit.h). Exact in
 *    fp32 up to the rounding of W * g.
 *    LayerNorm models (pre-LN OPT, GPT-2; QuaRot / SliceGPT's Pre-LN ⇔
 *    Pre-RMSNorm equivalence) first get a zero-mean residual stream
 *    (xf_rotate_center_stream): every writer's output is centred across
 *    the hidden dimension with C = I - 11^T / hidden, token and position
 *    embedding rows E -> E C, o / out_proj / attn.c_proj and down / fc2 /
 *    mlp.c_proj W -> C W, b -> C b. The stream, their sum, is then
 *    zero-mean, so LayerNorm(x) = g * (x - mean) / sqrt(var + eps) + beta
 *    equals g * x / sqrt(mean(x^2) + eps) + beta. g folds as above and
 *    beta into the readers' biases, b <- b + W beta with the unscaled W
 *    (the head gets a bias lm_head.bias for the final norm's beta). What
 *    is left is a weightless, biasless RMSNorm with the LayerNorm's eps:
 *    the norm biases are dropped and the config gets "xfquant_norm":
 *    "rmsnorm" (model/config.h), so that the model, and the .xfq written
 *    from it, bind and run RMSNorms (after a rotation the stream is no
 *    longer zero-mean: a LayerNorm would break it). Post-LN OPT (norms on
 *    the stream itself) and OPT without linear biases are refused.
 * 2. Residual rotation R1 [hidden, hidden] (xf_rotate_apply): embedding
 *    rows E -> E R1 (learned positions too); readers (q, k, v or c_attn,
 *    gate, up, head) W -> W R1; writers (o, down) W -> R1^T W, biases
 *    b -> b R1. Exact because a weightless RMSNorm commutes with an
 *    orthogonal R1 (||x R1|| = ||x||).
 * 3. Head-wise rotation R2_l [head_dim, head_dim] on v/o of each layer l
 *    (fused, no online part): each kv head's v output slice
 *    y_h -> y_h R2_l (W_v -> R2_l^T W_v per head, bias too; the v third of
 *    GPT-2's c_attn outputs) and o's matching input columns of every q head
 *    W_o -> W_o R2_l. Attention mixes v rows linearly, so o's input arrives
 *    rotated and meets the rotated columns; one R2_l for all heads of a
 *    layer keeps GQA exact (a kv head serves several q heads). Any
 *    orthogonal R2_l is exact: --rotate hadamard/klt use the plain
 *    Hadamard H_d (fast transform), --rotate learned a Cayley-SGD R2_l per
 *    layer (xf_learned_r2).
 * 4. Online Hadamard before down_proj / fc2 / mlp.c_proj: W_down ->
 *    W_down H_I (fused), and x -> x H_I at run time (sim/online.h,
 *    recorded in the recipe). Exact for gated and plain (ReLU/GELU) MLPs
 *    alike: it acts after the activation.
 * All products are computed in fp64 from the fp32 values, then rounded
 * once to fp32 per step. Llama family, pre-LN OPT and GPT-2; fp32 logits
 * stay within 1e-4 relative (tests/test_rotate.c). */
#ifndef XF_QUANT_TRANSFORM_ROTATE_H
#define XF_QUANT_TRANSFORM_ROTATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model_edit.h"
#include "model/weights.h"
#include "sim/act_quant.h"
#include "sim/online.h"

typedef enum xf_rotate_kind {
    XF_ROTATE_NONE = 0,
    XF_ROTATE_HADAMARD, /* randomized Hadamard R1 (QuaRot) */
    XF_ROTATE_LEARNED,  /* R1 learned by Cayley SGD from a randomized Hadamard (SpinQuant) */
    XF_ROTATE_KLT,      /* eigenbasis of the residual covariance (MambaQuant), opt. x Hadamard */
} xf_rotate_kind;

/* "none", "hadamard", "learned", "klt"; parse: -1 if unknown. */
const char *xf_rotate_kind_name(xf_rotate_kind k);
int xf_rotate_kind_from_name(const char *name, xf_rotate_kind *out);

/* Can this model be rotated? Fails naming the reason (post-LN OPT, OPT
 * without linear biases, shapes without a Hadamard of that size). */
int xf_rotate_supported(const xf_model_config *cfg, bool online_down, const char *what,
                        xf_error *err);

/* What --rotate learned minimises: the whole quantized network's loss
 * (e2e, quant/transform/e2e_learn.c) or each rotated space's readers'
 * output error (local, r1_learn.c / r2_learn.c). */
typedef enum xf_rotate_objective {
    XF_ROTATE_OBJ_E2E = 0,
    XF_ROTATE_OBJ_LOCAL = 1,
} xf_rotate_objective;

/* The e2e loss: next-token cross-entropy of the calibration windows, or
 * KL divergence to the full-precision model's logits. */
typedef enum xf_rotate_loss {
    XF_ROTATE_LOSS_CE = 0,
    XF_ROTATE_LOSS_KL = 1,
    XF_ROTATE_LOSS_KL_TOP = 2, /* KL over the reference's top-k tokens (OstQuant) */
} xf_rotate_loss;

const char *xf_rotate_loss_name(xf_rotate_loss l);

/* How R1 is made (xf_rotation_r1). */
typedef struct xf_r1_request {
    xf_rotate_kind kind;
    uint64_t seed;             /* randomized Hadamard signs (hadamard, learned start, klt) */
    bool klt_hadamard;         /* klt: eigenbasis followed by the randomized Hadamard */
    int64_t steps;             /* learned: Cayley SGD steps */
    double lr;                 /* learned: learning rate */
    const int32_t *tokens;     /* calibration windows [nsamples, T] (klt, learned) */
    int64_t nsamples, T;
    /* learned objective: the quantizers the rotation is learned for */
    const xf_act_scheme *act;
    int weight_bits;
    bool weight_sym;
    int64_t weight_group;
    /* learned, objective e2e (xf_learned_e2e) */
    xf_rotate_loss e2e_loss;
    int64_t e2e_windows;       /* calibration windows the loss is measured on */
    int64_t e2e_batch;         /* windows per step */
    bool e2e_ste_scale;        /* activation/KV quantizers: scale STE (sim/act_hooks_grad.h) */
    /* OstQuant (quant/transform/ost.h, xf_learned_ost) */
    bool ost_scales;           /* learn the per-channel scales beside R1 / R2 */
    int64_t kl_top_k;          /* e2e_loss kl-top: the reference's top-k tokens */
} xf_r1_request;

/* R1 [hidden, hidden] (malloc'd, row-major fp64, orthogonal) for a model
 * whose norms are folded (xf_rotate_fold_norms). Adds what was computed
 * (e.g. eigenvalue spread, learned loss) to `record`. */
int xf_rotation_r1(const xf_model_weights *mw, const xf_r1_request *q, double **R1,
                   json_t *record, xf_error *err);

/* The learned R1 (quant/transform/r1_learn.c): Cayley SGD from the randomized
 * Hadamard of q->seed (quant/transform/rotation_learning.h). */
int xf_learned_r1(const xf_model_weights *mw, const xf_r1_request *q, double *R1,
                  json_t *record, xf_error *err);

/* Step 1. *record (may be NULL) gets {"untied_head": bool, "norms": n,
 * "layernorm_to_rmsnorm": bool}. Changes m's tensors and config for
 * LayerNorm models (see above); on failure free the edit. */
int xf_rotate_fold_norms(xf_model_edit *e, json_t **record, xf_error *err);
/* Step 1's centring of the residual writers (quant/transform/stream_center.c). */
int xf_rotate_center_stream(xf_model_edit *e, xf_error *err);

/* Steps 2-4 on a folded model: R1 [hidden, hidden] row-major fp64
 * (orthogonal; NULL: no residual rotation), head-wise v/o Hadamard when
 * headwise_vo, online down Hadamard when `online` (enabled in *online,
 * which the caller records in the recipe and gives to the hooks). */
int xf_rotate_apply(xf_model_edit *e, const double *R1, bool headwise_vo,
                    xf_online_transforms *online, xf_error *err);

/* Step 3 with a per-layer R2: R2[l] [head_dim, head_dim] row-major fp64,
 * orthogonal (checked: refused above 1e-6), for every layer l; on a model
 * given no head-wise Hadamard. Commits the edit. */
int xf_rotate_headwise(xf_model_edit *e, const double *const *R2, xf_error *err);

/* The learned R2 (quant/transform/r2_learn.c), SpinQuant's per-layer head-dim
 * rotation, for a model already folded and rotated by xf_rotate_apply
 * WITHOUT the head-wise Hadamard (online: the transforms it enabled, or
 * NULL). Per layer: o_proj's inputs captured on q's calibration windows
 * (full precision, online transforms applied), Cayley SGD from the
 * randomized Hadamard of seed q->seed + 1 + l on the block-diagonal term
 * (X_o, W_o) with the scheme's "o" activation quantizer and q's weight
 * grid, q->steps / q->lr; the result is kept only if it lowers that loss
 * (else the randomized Hadamard start). Applies them (xf_rotate_headwise)
 * and adds "learned_r2" (per-layer losses) to `record`. */
int xf_learned_r2(xf_model_edit *e, const xf_r1_request *q, const xf_online_transforms *online,
                  json_t *record, xf_error *err);

/* R1 [hidden, hidden] and, when R2 != NULL, R2 [n_layers, head_dim,
 * head_dim] learned jointly against the loss of the whole fake-quantized
 * network (quant/transform/e2e_learn.c, e2e_rotation.h) on a folded,
 * unrotated model; online: the transforms xf_rotate_apply will enable (the
 * down Hadamard is part of the objective), or NULL. Starts from the
 * randomized Hadamard of q->seed (R1) and the plain H_d (R2), the
 * --rotate hadamard rotations; keeps the result only if the calibration
 * loss drops. Adds "learned" to `record`. Llama family, bias-free. */
int xf_learned_e2e(const xf_model_weights *mw, const xf_r1_request *q,
                   const xf_online_transforms *online, double *R1, double *R2, json_t *record,
                   xf_error *err);

#endif
