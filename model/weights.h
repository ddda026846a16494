/* Binds a tensor set (from an HF directory or an .xfq) to the roles of an
 * architecture: per-layer norms and linears, embeddings, head. Fails
 * listing the missing and the unexpected tensor names. */
#ifndef XF_MODEL_WEIGHTS_H
#define XF_MODEL_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/tensor.h"
#include "model/config.h"

typedef enum xf_linear_role {
    XF_LIN_Q = 0, /* GPT-2: the fused c_attn (q|k|v) */
    XF_LIN_K,
    XF_LIN_V,
    XF_LIN_O,
    XF_LIN_GATE,  /* llama family only */
    XF_LIN_UP,    /* OPT/GPT-2: fc1 / c_fc */
    XF_LIN_DOWN,  /* OPT/GPT-2: fc2 / c_proj */
    XF_LIN_COUNT
} xf_linear_role;

const char *xf_linear_role_name(xf_linear_role r); /* "q", "k", ... */

typedef struct xf_linear {
    const xf_tensor *w; /* NULL if the role is absent in this family */
    const xf_tensor *b; /* bias or NULL */
    bool transposed;    /* stored [in, out] (HF GPT-2 Conv1D) */
    int64_t out, in;    /* logical y = W x + b, W is [out, in]; a packed W's outliers
                           are in its view (w->packed.outliers) */
} xf_linear;

typedef struct xf_norm {
    const xf_tensor *w;
    const xf_tensor *b; /* LayerNorm bias or NULL */
} xf_norm;

typedef struct xf_layer_weights {
    xf_norm attn_norm; /* input_layernorm / self_attn_layer_norm / ln_1 */
    xf_norm mlp_norm;  /* post_attention_layernorm / final_layer_norm / ln_2 */
    xf_linear lin[XF_LIN_COUNT];
} xf_layer_weights;

typedef struct xf_model_weights {
    xf_model_config cfg;
    const xf_tensor *tok_embed; /* [vocab, hidden] */
    const xf_tensor *pos_embed; /* OPT/GPT-2 learned positions, else NULL */
    xf_norm final_norm;         /* w NULL for post-LN OPT (do_layer_norm_before false),
                                 * which HF builds without a final LayerNorm */
    xf_linear lm_head;          /* tied: w == tok_embed (see xf_model_bind); b: lm_head.bias
                                 * when cfg.head_bias (folded LayerNorm models) */
    xf_layer_weights *layers;   /* cfg.n_layers */
} xf_model_weights;

/* `transposed_conv1d`: true for HF GPT-2 files (Conv1D stores [in, out]);
 * false for .xfq files, which always store [out, in]. Packed weights are
 * always [out, in] (transposed false) whatever the flag.
 * Name prefixes are detected once per set: OPT "model.decoder." or
 * "decoder."; GPT-2 "transformer." or none; Llama family "model.".
 * Checks every tensor's shape against cfg and its dtype (floating point;
 * packed allowed for 2-D weights only). Ignores known non-weight buffers
 * (GPT-2 h.N.attn.bias / h.N.attn.masked_bias, Llama
 * layers.N.self_attn.rotary_emb.inv_freq); any other tensor not bound is
 * "unexpected" and fails the bind. A packed linear's (or untied LM head's)
 * outlier side table W.outliers.{row_ptr,col,val} is checked (complete,
 * consistent with W, and the table W's packed view carries, which every
 * conversion of W applies); side tables of any other tensor are
 * unexpected. Tied models: lm_head.w = tok_embed; a
 * stored lm_head.weight copy (common in tied checkpoints) is accepted and
 * shape-checked but not used. OPT/GPT-2 norms have a bias tensor only
 * while cfg->layer_norm (a folded model's RMSNorms have none, config.h's
 * XF_CONFIG_NORM_KEY); cfg->head_bias binds lm_head.bias. Views borrow
 * from `set` (keep it alive). */
int xf_model_bind(xf_model_weights *mw, const xf_model_config *cfg, const xf_tensor_set *set,
                  bool transposed_conv1d, const char *what, xf_error *err);
void xf_model_unbind(xf_model_weights *mw);

/* The HF tensor name of a role's weight, e.g. "model.layers.3.self_attn.q_proj.weight",
 * with the canonical prefix of save_pretrained ("model." for Llama/OPT,
 * "transformer." for GPT-2). -1 if the family has no such role (e.g. GATE
 * for OPT, K/V for GPT-2) or buf is too small. To name a tensor exactly as
 * the source set does (prefix included), use the bound lin.w->name. */
int xf_linear_weight_name(const xf_model_config *cfg, int layer, xf_linear_role role,
                          char *buf, size_t cap);

#endif
