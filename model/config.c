/* HF config.json -> xf_model_config, one parser per family. Every option
 * that would change the computation and that xfquant does not implement
 * (RoPE scaling, OPT's project_in/out, GPT-2's layer-index attention
 * scaling, ...) is refused rather than ignored. */
#include "model/config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/json_util.h"
#include "core/log.h"

/* Dims beyond this are certainly not a config we can run, and keeping them
 * small rules out overflow in products such as vocab * hidden. */
#define MAX_DIM (INT64_C(1) << 30)
#define MAX_LAYERS 4096

static int get_dim(const json_t *j, const char *key, int64_t *out, const char *what,
                   xf_error *err)
{
    if (xf_json_get_int(j, key, true, 0, out, what, err))
        return -1;
    if (*out <= 0 || *out > MAX_DIM)
        return xf_fail(err, "%s: \"%s\" = %lld is out of range (must be 1..%lld)", what, key,
                       (long long)*out, (long long)MAX_DIM);
    return 0;
}

static int get_opt_dim(const json_t *j, const char *key, int64_t dflt, int64_t *out,
                       const char *what, xf_error *err)
{
    if (xf_json_get_int(j, key, false, dflt, out, what, err))
        return -1;
    if (*out <= 0 || *out > MAX_DIM)
        return xf_fail(err, "%s: \"%s\" = %lld is out of range (must be 1..%lld)", what, key,
                       (long long)*out, (long long)MAX_DIM);
    return 0;
}

static int get_eps(const json_t *j, const char *key, double dflt, double *out, const char *what,
                   xf_error *err)
{
    if (xf_json_get_double(j, key, false, dflt, out, what, err))
        return -1;
    if (!(*out > 0.0) || !isfinite(*out))
        return xf_fail(err, "%s: \"%s\" must be a positive number", what, key);
    return 0;
}

/* bos/eos: an integer (negative = none), null/absent (-1), or a list (Llama 3.x lists several
 * eos ids; the first one is kept). */
static int get_token_id(const json_t *j, const char *key, int64_t *out, const char *what,
                        xf_error *err)
{
    const json_t *v = json_object_get(j, key);
    *out = -1;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return 0;
        v = json_array_get(v, 0);
    }
    if (!json_is_integer(v))
        return xf_fail(err, "%s: \"%s\" must be an integer", what, key);
    /* some configs write -1 for "none" */
    *out = json_integer_value(v) < 0 ? -1 : (int64_t)json_integer_value(v);
    return 0;
}

/* A flag that, when true, asks for something xfquant does not implement. */
static int refuse_flag(const json_t *j, const char *key, bool dflt, const char *why,
                       const char *what, xf_error *err)
{
    bool v;
    if (xf_json_get_bool(j, key, false, dflt, &v, what, err))
        return -1;
    if (v != dflt)
        return xf_fail(err, "%s: \"%s\": %s is not supported (%s)", what, key,
                       v ? "true" : "false", why);
    return 0;
}

static int check_heads(xf_model_config *c, const char *what, xf_error *err)
{
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return xf_fail(err,
                       "%s: num_key_value_heads (%lld) must divide num_attention_heads (%lld)",
                       what, (long long)c->n_kv_heads, (long long)c->n_heads);
    if (c->n_layers > MAX_LAYERS)
        return xf_fail(err, "%s: %lld layers is out of range (at most %d)", what,
                       (long long)c->n_layers, MAX_LAYERS);
    if (c->n_heads * c->head_dim > MAX_DIM)
        return xf_fail(err, "%s: heads * head_dim is too large", what);
    return 0;
}

static int parse_llama(xf_model_config *c, const json_t *j, const char *what, xf_error *err)
{
    bool is_llama = strcmp(c->model_type, "llama") == 0;
    bool is_qwen2 = strcmp(c->model_type, "qwen2") == 0;

    const json_t *rs = json_object_get(j, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        const char *type = NULL;
        if (json_is_object(rs)) {
            const json_t *t = json_object_get(rs, "rope_type");
            if (!json_is_string(t))
                t = json_object_get(rs, "type");
            if (json_is_string(t))
                type = json_string_value(t);
        }
        /* "default" is HF's name for plain RoPE */
        if (!type || strcmp(type, "default") != 0)
            return xf_fail(err, "%s: unsupported rope_scaling \"%s\"", what,
                           type ? type : "?");
    }

    const char *act;
    if (xf_json_get_string(j, "hidden_act", false, "silu", &act, what, err))
        return -1;
    if (strcmp(act, "silu") != 0)
        return xf_fail(err, "%s: unsupported hidden_act \"%s\" for %s (only \"silu\")", what, act,
                       c->model_type);

    if (get_dim(j, "hidden_size", &c->hidden, what, err) ||
        get_dim(j, "intermediate_size", &c->intermediate, what, err) ||
        get_dim(j, "num_hidden_layers", &c->n_layers, what, err) ||
        get_dim(j, "num_attention_heads", &c->n_heads, what, err) ||
        get_opt_dim(j, "num_key_value_heads", c->n_heads, &c->n_kv_heads, what, err) ||
        get_dim(j, "vocab_size", &c->vocab, what, err) ||
        get_dim(j, "max_position_embeddings", &c->max_pos, what, err))
        return -1;
    const json_t *hd = json_object_get(j, "head_dim");
    if (hd && !json_is_null(hd)) {
        if (get_dim(j, "head_dim", &c->head_dim, what, err))
            return -1;
    } else {
        if (c->hidden % c->n_heads != 0)
            return xf_fail(err, "%s: num_attention_heads (%lld) must divide hidden_size (%lld)",
                           what, (long long)c->n_heads, (long long)c->hidden);
        c->head_dim = c->hidden / c->n_heads;
    }
    if (c->head_dim % 2 != 0)
        return xf_fail(err, "%s: head_dim %lld must be even for rotary embeddings", what,
                       (long long)c->head_dim);
    if (check_heads(c, what, err))
        return -1;

    if (get_eps(j, "rms_norm_eps", 1e-6, &c->norm_eps, what, err) ||
        get_eps(j, "rope_theta", 10000.0, &c->rope_theta, what, err) ||
        xf_json_get_bool(j, "tie_word_embeddings", false, false, &c->tie_embeddings, what, err))
        return -1;

    if (is_qwen2) {
        /* Qwen2Attention: q/k/v always biased, o_proj never; MLP unbiased */
        c->qkv_bias = true;
        c->o_bias = false;
        c->mlp_bias = false;
    } else if (is_llama) {
        bool attn_bias, mlp_bias;
        if (xf_json_get_bool(j, "attention_bias", false, false, &attn_bias, what, err) ||
            xf_json_get_bool(j, "mlp_bias", false, false, &mlp_bias, what, err))
            return -1;
        c->qkv_bias = attn_bias;
        c->o_bias = attn_bias;
        c->mlp_bias = mlp_bias;
    } /* mistral: no biases anywhere */

    /* Sliding-window attention only matters for contexts longer than the
     * window; the windows xfquant evaluates are shorter, so only warn. */
    bool use_window = true;
    if (is_qwen2 && xf_json_get_bool(j, "use_sliding_window", false, false, &use_window, what, err))
        return -1;
    const json_t *sw = json_object_get(j, "sliding_window");
    if (use_window && json_is_integer(sw) && json_integer_value(sw) > 0 &&
        json_integer_value(sw) < c->max_pos)
        xf_log_warn("%s: sliding_window %lld < max_position_embeddings %lld is ignored "
                    "(full attention over each evaluation window)",
                    what, (long long)json_integer_value(sw), (long long)c->max_pos);

    c->layer_norm = false;
    c->norm_before = true;
    c->fused_qkv = false;
    c->pos_offset = 0;
    c->act = XF_ACT_SILU;
    return 0;
}

static int parse_opt(xf_model_config *c, const json_t *j, const char *what, xf_error *err)
{
    const char *act;
    if (xf_json_get_string(j, "activation_function", false, "relu", &act, what, err))
        return -1;
    if (strcmp(act, "relu") != 0)
        return xf_fail(err, "%s: unsupported activation_function \"%s\" for opt (only \"relu\")",
                       what, act);
    if (get_dim(j, "hidden_size", &c->hidden, what, err) ||
        get_dim(j, "ffn_dim", &c->intermediate, what, err) ||
        get_dim(j, "num_hidden_layers", &c->n_layers, what, err) ||
        get_dim(j, "num_attention_heads", &c->n_heads, what, err) ||
        get_dim(j, "vocab_size", &c->vocab, what, err) ||
        get_dim(j, "max_position_embeddings", &c->max_pos, what, err))
        return -1;
    int64_t proj;
    if (xf_json_get_int(j, "word_embed_proj_dim", false, c->hidden, &proj, what, err))
        return -1;
    if (proj != c->hidden)
        return xf_fail(err,
                       "%s: word_embed_proj_dim %lld != hidden_size %lld: project_in/project_out "
                       "not supported",
                       what, (long long)proj, (long long)c->hidden);
    if (c->hidden % c->n_heads != 0)
        return xf_fail(err, "%s: num_attention_heads (%lld) must divide hidden_size (%lld)", what,
                       (long long)c->n_heads, (long long)c->hidden);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->hidden / c->n_heads;
    if (check_heads(c, what, err))
        return -1;

    bool bias;
    if (xf_json_get_bool(j, "do_layer_norm_before", false, true, &c->norm_before, what, err) ||
        xf_json_get_bool(j, "enable_bias", false, true, &bias, what, err) ||
        xf_json_get_bool(j, "tie_word_embeddings", false, true, &c->tie_embeddings, what, err) ||
        refuse_flag(j, "layer_norm_elementwise_affine", true, "LayerNorm without weights", what,
                    err) ||
        refuse_flag(j, "_remove_final_layer_norm", false, "OPT without the final LayerNorm",
                    what, err))
        return -1;
    c->qkv_bias = c->o_bias = c->mlp_bias = bias;
    c->norm_eps = 1e-5; /* nn.LayerNorm default, not configurable in OPT */
    c->rope_theta = 0.0;
    c->layer_norm = true;
    c->fused_qkv = false;
    c->pos_offset = 2; /* OPTLearnedPositionalEmbedding */
    c->act = XF_ACT_RELU;
    return 0;
}

static int parse_gpt2(xf_model_config *c, const json_t *j, const char *what, xf_error *err)
{
    const char *act;
    if (xf_json_get_string(j, "activation_function", false, "gelu_new", &act, what, err))
        return -1;
    if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0)
        c->act = XF_ACT_GELU_TANH;
    else if (strcmp(act, "gelu") == 0)
        c->act = XF_ACT_GELU;
    else
        return xf_fail(err,
                       "%s: unsupported activation_function \"%s\" for gpt2 (supported: gelu_new, "
                       "gelu_pytorch_tanh, gelu)",
                       what, act);
    if (get_dim(j, "n_embd", &c->hidden, what, err) ||
        get_dim(j, "n_layer", &c->n_layers, what, err) ||
        get_dim(j, "n_head", &c->n_heads, what, err) ||
        get_dim(j, "vocab_size", &c->vocab, what, err) ||
        get_dim(j, "n_positions", &c->max_pos, what, err) ||
        get_opt_dim(j, "n_inner", 4 * c->hidden, &c->intermediate, what, err))
        return -1;
    if (c->hidden % c->n_heads != 0)
        return xf_fail(err, "%s: n_head (%lld) must divide n_embd (%lld)", what,
                       (long long)c->n_heads, (long long)c->hidden);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->hidden / c->n_heads;
    if (check_heads(c, what, err))
        return -1;
    if (get_eps(j, "layer_norm_epsilon", 1e-5, &c->norm_eps, what, err) ||
        xf_json_get_bool(j, "tie_word_embeddings", false, true, &c->tie_embeddings, what, err) ||
        refuse_flag(j, "scale_attn_weights", true, "attention without 1/sqrt(head_dim)", what,
                    err) ||
        refuse_flag(j, "scale_attn_by_inverse_layer_idx", false, "layer-index attention scaling",
                    what, err) ||
        refuse_flag(j, "add_cross_attention", false, "cross-attention", what, err))
        return -1;
    c->rope_theta = 0.0;
    c->qkv_bias = c->o_bias = c->mlp_bias = true;
    c->layer_norm = true;
    c->norm_before = true;
    c->fused_qkv = true;
    c->pos_offset = 0;
    return 0;
}

/* XF_CONFIG_NORM_KEY (config.h): the norms of a folded LayerNorm model. */
static int parse_norm_key(xf_model_config *c, const json_t *j, const char *what, xf_error *err)
{
    const json_t *v = json_object_get(j, XF_CONFIG_NORM_KEY);
    if (!v)
        return 0;
    if (!json_is_string(v) || strcmp(json_string_value(v), XF_CONFIG_NORM_RMS) != 0)
        return xf_fail(err, "%s: \"%s\" must be \"%s\"", what, XF_CONFIG_NORM_KEY,
                       XF_CONFIG_NORM_RMS);
    /* only a pre-LN LayerNorm model has an RMSNorm equivalent */
    if (!c->layer_norm || !c->norm_before)
        return xf_fail(err, "%s: \"%s\" applies to pre-LN LayerNorm models (opt, gpt2), not "
                            "this %s%s",
                       what, XF_CONFIG_NORM_KEY, c->norm_before ? "" : "post-LN ",
                       c->model_type);
    c->layer_norm = false;
    c->head_bias = true;
    return 0;
}

int xf_model_config_parse(xf_model_config *cfg, const json_t *config, const char *what,
                          xf_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_id = cfg->eos_id = -1;
    if (!json_is_object(config))
        return xf_fail(err, "%s: not a JSON object", what);
    const char *mt;
    if (xf_json_get_string(config, "model_type", true, NULL, &mt, what, err))
        return -1;

    static const struct {
        const char *name;
        xf_family family;
    } known[] = {
        {"llama", XF_FAMILY_LLAMA}, {"mistral", XF_FAMILY_LLAMA}, {"qwen2", XF_FAMILY_LLAMA},
        {"opt", XF_FAMILY_OPT},     {"gpt2", XF_FAMILY_GPT2},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(mt, known[i].name) == 0)
            cfg->family = known[i].family;
    if (!cfg->family)
        return xf_fail(err,
                       "%s: unsupported model_type \"%s\" (supported: llama, mistral, qwen2, opt, "
                       "gpt2)",
                       what, mt);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);

    int rc;
    switch (cfg->family) {
    case XF_FAMILY_LLAMA: rc = parse_llama(cfg, config, what, err); break;
    case XF_FAMILY_OPT: rc = parse_opt(cfg, config, what, err); break;
    default: rc = parse_gpt2(cfg, config, what, err); break;
    }
    if (rc || parse_norm_key(cfg, config, what, err))
        return -1;
    if (get_token_id(config, "bos_token_id", &cfg->bos_id, what, err) ||
        get_token_id(config, "eos_token_id", &cfg->eos_id, what, err))
        return -1;
    return 0;
}
