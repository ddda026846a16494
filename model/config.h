/* Architecture description parsed from an HF config.json. One struct for
 * every supported family; fields a family lacks keep neutral values. */
#ifndef XF_MODEL_CONFIG_H
#define XF_MODEL_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef enum xf_family {
    XF_FAMILY_LLAMA = 1, /* llama, mistral, qwen2 */
    XF_FAMILY_OPT,
    XF_FAMILY_GPT2,
} xf_family;

typedef enum xf_activation {
    XF_ACT_SILU = 1,   /* SwiGLU MLP: down(silu(gate(x)) * up(x)) */
    XF_ACT_RELU,       /* OPT: fc2(relu(fc1(x))) */
    XF_ACT_GELU_TANH,  /* GPT-2 "gelu_new" */
    XF_ACT_GELU,       /* exact erf GELU */
} xf_activation;

typedef struct xf_model_config {
    char model_type[32]; /* "llama", "mistral", "qwen2", "opt", "gpt2" */
    xf_family family;
    int64_t hidden;
    int64_t intermediate;
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;
    int64_t vocab;
    int64_t max_pos;
    double norm_eps;
    double rope_theta;      /* llama family */
    bool tie_embeddings;
    bool qkv_bias;          /* q/k/v have biases (qwen2, OPT, GPT-2) */
    bool o_bias;            /* o_proj has a bias (OPT, GPT-2) */
    bool mlp_bias;          /* fc1/fc2 biases (OPT, GPT-2) */
    bool layer_norm;        /* LayerNorm (OPT, GPT-2) instead of RMSNorm; false for an OPT or
                             * GPT-2 whose norms were folded (XF_CONFIG_NORM_KEY) */
    bool head_bias;         /* lm_head.bias [vocab] (folded LayerNorm models: the final
                             * norm's bias, quant/transform/rotate.h) */
    bool norm_before;       /* pre-LN (OPT do_layer_norm_before; always true otherwise) */
    bool fused_qkv;         /* GPT-2 c_attn: one [3*hidden, hidden] linear */
    int64_t pos_offset;     /* learned position table offset (OPT: 2) */
    xf_activation act;
    int64_t bos_id, eos_id; /* -1 if unknown */
} xf_model_config;

/* An xfquant key of config.json, written by norm folding (quant/transform/rotate.h)
 * into the config of an OPT (pre-LN) or GPT-2 model whose LayerNorms were
 * turned into RMSNorms: "xfquant_norm": "rmsnorm" means every norm is an
 * RMSNorm x / sqrt(mean(x^2) + eps) * w (eps: the family's LayerNorm
 * epsilon) with no bias tensor, and the LM head has a bias lm_head.bias.
 * Refused on other families, on post-LN OPT and with any other value. */
#define XF_CONFIG_NORM_KEY "xfquant_norm"
#define XF_CONFIG_NORM_RMS "rmsnorm"

/* Parses config.json; unknown model_type or unsupported options
 * (e.g. rope_scaling, OPT project_in) fail with a clear message naming
 * `what` (the file). */
int xf_model_config_parse(xf_model_config *cfg, const json_t *config, const char *what,
                          xf_error *err);

#endif
