/* GGUF hyper-parameters -> config.json keys, and GGUF tensor names -> HF
 * names (model/gguf_model.h). Only the translation lives here; ranges and
 * consistency are checked by model/config.c on the result, as for an HF
 * directory. Keys are llama.cpp's (src/llama-arch.cpp LLM_KV_*). */
#include "model/gguf_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value stored as f32: the shortest decimal that reads back as the same
 * float, so 1e-5 written by convert_hf_to_gguf.py becomes 1e-05 again (the
 * double the HF config holds), not 9.99999974738e-06. */
static json_t *f32_value(double v)
{
    float f = (float)v;
    if ((double)f != v)
        return json_real(v); /* an f64 key */
    char buf[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    return json_real(strtod(buf, NULL));
}

typedef struct kmap {
    const char *gguf;  /* after "ARCH." */
    const char *hf;
    bool required;
} kmap;

static int put_uint(json_t *cfg, const xf_gguf_file *f, const char *arch, const kmap *k,
                    xf_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k->gguf);
    if (!xf_gguf_find(f, key)) {
        if (k->required)
            return xf_fail(err, "%s: missing key %s", f->path, key);
        return 0;
    }
    uint64_t v;
    if (xf_gguf_get_uint(f, key, true, 0, &v, err))
        return -1;
    if (v > (uint64_t)INT64_MAX / 2)
        return xf_fail(err, "%s: key %s: %llu is out of range", f->path, key,
                       (unsigned long long)v);
    json_object_set_new(cfg, k->hf, json_integer((json_int_t)v));
    return 0;
}

static int put_float(json_t *cfg, const xf_gguf_file *f, const char *arch, const char *gkey,
                     const char *hf, bool required, xf_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, gkey);
    if (!xf_gguf_find(f, key))
        return required ? xf_fail(err, "%s: missing key %s", f->path, key) : 0;
    double v;
    if (xf_gguf_get_float(f, key, true, 0, &v, err))
        return -1;
    json_object_set_new(cfg, hf, f32_value(v));
    return 0;
}

/* Rows of token_embd.weight: the vocabulary size of the model. */
static int embedding_rows(const xf_gguf_file *f, int64_t *rows, xf_error *err)
{
    const xf_gguf_tensor *t = xf_gguf_find_tensor(f, "token_embd.weight");
    if (!t)
        return xf_fail(err, "%s: missing tensor token_embd.weight", f->path);
    if (t->n_dims != 2)
        return xf_fail(err, "%s: tensor token_embd.weight: n_dims = %u, expected 2", f->path,
                       t->n_dims);
    *rows = t->ne[1];
    return 0;
}

static int llama_keys(json_t *cfg, const xf_gguf_file *f, const char *arch, xf_error *err)
{
    static const kmap ints[] = {
        {"embedding_length", "hidden_size", true},
        {"feed_forward_length", "intermediate_size", true},
        {"block_count", "num_hidden_layers", true},
        {"attention.head_count", "num_attention_heads", true},
        {"attention.head_count_kv", "num_key_value_heads", false},
        {"context_length", "max_position_embeddings", true},
        {"attention.key_length", "head_dim", false},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (put_uint(cfg, f, arch, &ints[i], err))
            return -1;
    if (put_float(cfg, f, arch, "attention.layer_norm_rms_epsilon", "rms_norm_eps", true, err) ||
        put_float(cfg, f, arch, "rope.freq_base", "rope_theta", false, err))
        return -1;

    /* llama.cpp rotates rope.dimension_count dims of each head; HF rotates
     * the whole head: partial rotary would be computed differently */
    char key[128];
    snprintf(key, sizeof key, "%s.rope.dimension_count", arch);
    if (xf_gguf_find(f, key)) {
        uint64_t n_rot, heads, hidden;
        int64_t hd = json_integer_value(json_object_get(cfg, "head_dim"));
        if (xf_gguf_get_uint(f, key, true, 0, &n_rot, err))
            return -1;
        heads = (uint64_t)json_integer_value(json_object_get(cfg, "num_attention_heads"));
        hidden = (uint64_t)json_integer_value(json_object_get(cfg, "hidden_size"));
        if (hd <= 0 && heads > 0)
            hd = (int64_t)(hidden / heads);
        if ((int64_t)n_rot != hd)
            return xf_fail(err, "%s: %s = %llu differs from the head size %lld (partial rotary "
                                "embeddings are not supported)",
                           f->path, key, (unsigned long long)n_rot, (long long)hd);
    }
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    xf_gguf_str st;
    if (xf_gguf_get_str(f, key, false, &st, err))
        return -1;
    if (st.ptr && !(st.len == 4 && memcmp(st.ptr, "none", 4) == 0))
        return xf_fail(err, "%s: %s = \"%.*s\": RoPE scaling is not supported", f->path, key,
                       (int)st.len, st.ptr);
    if (xf_gguf_find_tensor(f, "rope_freqs.weight"))
        return xf_fail(err, "%s: tensor rope_freqs.weight (Llama-3 RoPE frequency scaling) is "
                            "not supported",
                       f->path);

    json_object_set_new(cfg, "hidden_act", json_string("silu"));
    if (strcmp(arch, "llama") == 0) {
        json_object_set_new(cfg, "attention_bias",
                            json_boolean(xf_gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL));
        json_object_set_new(cfg, "mlp_bias",
                            json_boolean(xf_gguf_find_tensor(f, "blk.0.ffn_up.bias") != NULL));
    }
    return 0;
}

static int gpt2_keys(json_t *cfg, const xf_gguf_file *f, xf_error *err)
{
    static const kmap ints[] = {
        {"embedding_length", "n_embd", true},
        {"feed_forward_length", "n_inner", false},
        {"block_count", "n_layer", true},
        {"attention.head_count", "n_head", true},
        {"context_length", "n_positions", true},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (put_uint(cfg, f, "gpt2", &ints[i], err))
            return -1;
    if (put_float(cfg, f, "gpt2", "attention.layer_norm_epsilon", "layer_norm_epsilon", true,
                  err))
        return -1;
    /* ggml_gelu is the tanh approximation, HF GPT-2's "gelu_new" */
    json_object_set_new(cfg, "activation_function", json_string("gelu_new"));
    return 0;
}

static int token_id_key(json_t *cfg, const xf_gguf_file *f, const char *gkey, const char *hf,
                        xf_error *err)
{
    if (!xf_gguf_find(f, gkey))
        return 0;
    uint64_t v;
    if (xf_gguf_get_uint(f, gkey, true, 0, &v, err))
        return -1;
    json_object_set_new(cfg, hf, json_integer(v > INT32_MAX ? -1 : (json_int_t)v));
    return 0;
}

json_t *xf_gguf_config_json(const xf_gguf_file *f, xf_error *err)
{
    xf_gguf_str a;
    if (xf_gguf_get_str(f, "general.architecture", true, &a, err))
        return NULL;
    char arch[32];
    if (!((a.len == 5 && memcmp(a.ptr, "llama", 5) == 0) ||
          (a.len == 5 && memcmp(a.ptr, "qwen2", 5) == 0) ||
          (a.len == 4 && memcmp(a.ptr, "gpt2", 4) == 0))) {
        xf_fail(err, "%s: general.architecture \"%.*s\" is not supported (llama, qwen2, gpt2)",
                f->path, (int)(a.len > 64 ? 64 : a.len), a.ptr);
        return NULL;
    }
    snprintf(arch, sizeof arch, "%.*s", (int)a.len, a.ptr);
    int64_t rows = 0;
    if (embedding_rows(f, &rows, err))
        return NULL;
    json_t *cfg = json_object();
    json_object_set_new(cfg, "model_type", json_string(arch));
    json_object_set_new(cfg, "vocab_size", json_integer(rows));
    json_object_set_new(cfg, "tie_word_embeddings",
                        json_boolean(xf_gguf_find_tensor(f, "output.weight") == NULL));
    int rc = strcmp(arch, "gpt2") == 0 ? gpt2_keys(cfg, f, err) : llama_keys(cfg, f, arch, err);
    if (rc == 0)
        rc = token_id_key(cfg, f, "tokenizer.ggml.bos_token_id", "bos_token_id", err) ||
             token_id_key(cfg, f, "tokenizer.ggml.eos_token_id", "eos_token_id", err);
    if (rc) {
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}

/* ---- tensor names ---- */

typedef struct nmap {
    const char *gguf;
    const char *hf;
} nmap;

static const nmap llama_global[] = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
};
static const nmap llama_layer[] = {
    {"attn_norm", "input_layernorm"},  {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},     {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};
static const nmap gpt2_global[] = {
    {"token_embd", "transformer.wte"},
    {"position_embd", "transformer.wpe"},
    {"output_norm", "transformer.ln_f"},
    {"output", "lm_head"},
};
static const nmap gpt2_layer[] = {
    {"attn_norm", "ln_1"},     {"attn_qkv", "attn.c_attn"}, {"attn_output", "attn.c_proj"},
    {"ffn_norm", "ln_2"},      {"ffn_up", "mlp.c_fc"},      {"ffn_down", "mlp.c_proj"},
};

static const char *lookup(const nmap *m, size_t n, const char *base, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(m[i].gguf) == len && memcmp(m[i].gguf, base, len) == 0)
            return m[i].hf;
    return NULL;
}

int xf_gguf_hf_name(const char *arch, const char *name, char *buf, size_t cap)
{
    bool gpt2 = strcmp(arch, "gpt2") == 0;
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0))
        return -1;
    int n;
    if (strncmp(name, "blk.", 4) == 0) {
        char *end;
        long layer = strtol(name + 4, &end, 10);
        if (end == name + 4 || *end != '.' || layer < 0 || layer > 100000)
            return -1;
        const char *base = end + 1;
        const char *hf = gpt2 ? lookup(gpt2_layer, sizeof gpt2_layer / sizeof gpt2_layer[0],
                                       base, (size_t)(dot - base))
                              : lookup(llama_layer, sizeof llama_layer / sizeof llama_layer[0],
                                       base, (size_t)(dot - base));
        if (!hf)
            return -1;
        n = snprintf(buf, cap, gpt2 ? "transformer.h.%ld.%s%s" : "model.layers.%ld.%s%s", layer,
                     hf, dot);
    } else {
        const char *hf = gpt2 ? lookup(gpt2_global, sizeof gpt2_global / sizeof gpt2_global[0],
                                       name, (size_t)(dot - name))
                              : lookup(llama_global, sizeof llama_global / sizeof llama_global[0],
                                       name, (size_t)(dot - name));
        if (!hf)
            return -1;
        n = snprintf(buf, cap, "%s%s", hf, dot);
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
