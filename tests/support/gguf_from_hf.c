/* HF directory -> GGUF for tests (tests/support/gguf_from_hf.h). Reads the
 * HF side with xfquant's safetensors reader (tested elsewhere); everything
 * GGUF is written here from the documented layout. */
#include "tests/support/gguf_from_hf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "formats/hf_model.h"
#include "model/config.h"
#include "tests/support/gguf_build.h"
#include "tests/support/ggml_ref.h"

typedef struct name_pair {
    const char *hf, *gguf;
} name_pair;

static const name_pair llama_layer[] = {
    {"input_layernorm", "attn_norm"},  {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},    {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},     {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};
static const name_pair gpt2_layer[] = {
    {"ln_1", "attn_norm"}, {"attn.c_attn", "attn_qkv"}, {"attn.c_proj", "attn_output"},
    {"ln_2", "ffn_norm"},  {"mlp.c_fc", "ffn_up"},      {"mlp.c_proj", "ffn_down"},
};

/* GGUF name of an HF tensor; 0 = skip (buffers), -1 = unknown. */
static int gguf_name(bool gpt2, const char *hf, char *out, size_t cap, bool *conv1d)
{
    *conv1d = false;
    const char *suffix = strrchr(hf, '.');
    if (!suffix)
        return -1;
    static const name_pair llama_glob[] = {{"model.embed_tokens", "token_embd"},
                                           {"model.norm", "output_norm"},
                                           {"lm_head", "output"}};
    static const name_pair gpt2_glob[] = {{"transformer.wte", "token_embd"},
                                          {"transformer.wpe", "position_embd"},
                                          {"transformer.ln_f", "output_norm"},
                                          {"lm_head", "output"}};
    const name_pair *g = gpt2 ? gpt2_glob : llama_glob;
    size_t ng = gpt2 ? 4 : 3;
    for (size_t i = 0; i < ng; i++)
        if (strlen(g[i].hf) == (size_t)(suffix - hf) && !strncmp(hf, g[i].hf, (size_t)(suffix - hf))) {
            snprintf(out, cap, "%s%s", g[i].gguf, suffix);
            return 1;
        }
    const char *pre = gpt2 ? "transformer.h." : "model.layers.";
    if (strncmp(hf, pre, strlen(pre)) != 0)
        return -1;
    char *end;
    long layer = strtol(hf + strlen(pre), &end, 10);
    if (*end != '.')
        return -1;
    const char *mod = end + 1;
    if (strstr(mod, "rotary_emb") || (gpt2 && (!strcmp(mod, "attn.bias") ||
                                               !strcmp(mod, "attn.masked_bias"))))
        return 0;
    const name_pair *l = gpt2 ? gpt2_layer : llama_layer;
    size_t nl = gpt2 ? sizeof gpt2_layer / sizeof *l : sizeof llama_layer / sizeof *l;
    for (size_t i = 0; i < nl; i++)
        if (strlen(l[i].hf) == (size_t)(suffix - mod) && !strncmp(mod, l[i].hf, (size_t)(suffix - mod))) {
            snprintf(out, cap, "blk.%ld.%s%s", layer, l[i].gguf, suffix);
            *conv1d = gpt2 && strcmp(suffix, ".weight") == 0 && strncmp(l[i].hf, "ln_", 3) != 0;
            return 1;
        }
    return -1;
}

/* convert_hf_to_gguf.py's LlamaModel.permute: gguf_row[h hd + 2i + j] =
 * hf_row[h hd + j hd/2 + i] */
static void permute(float *x, int64_t rows, int64_t len, int64_t n_head)
{
    int64_t hd = rows / n_head;
    float *t = malloc((size_t)(rows * len) * sizeof *t);
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(t + (h * hd + 2 * i + j) * len, x + (h * hd + j * hd / 2 + i) * len,
                       (size_t)len * sizeof *x);
    memcpy(x, t, (size_t)(rows * len) * sizeof *x);
    free(t);
}

static void add_tensor(xf_gguf_build *b, const char *name, uint32_t type, int ndim,
                       const int64_t *ne, const float *v, int64_t n)
{
    size_t bytes = (size_t)(n / xf_ref_block_elems(type)) * xf_ref_block_bytes(type);
    uint8_t *d = malloc(bytes ? bytes : 1);
    if (type == 0)
        memcpy(d, v, bytes);
    else if (type == 1)
        for (int64_t i = 0; i < n; i++) {
            uint16_t hv = xf_f32_to_f16(v[i]);
            d[2 * i] = (uint8_t)hv, d[2 * i + 1] = (uint8_t)(hv >> 8);
        }
    else
        xf_ref_encode(type, v, n, d);
    xf_gguf_build_tensor(b, name, type, ndim, ne, d, bytes);
    free(d);
}

static const char *merge_token(const json_t *m, int part, size_t *len)
{
    if (json_is_array(m)) {
        const json_t *s = json_array_get(m, (size_t)part);
        *len = json_string_length(s);
        return json_string_value(s);
    }
    const char *s = json_string_value(m), *sp = strchr(s, ' ');
    if (part == 0) {
        *len = (size_t)(sp - s);
        return s;
    }
    *len = strlen(sp + 1);
    return sp + 1;
}

static const char *config_token(const json_t *cfg, const char *key)
{
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

/* tokenizer.json (SentencePiece-style BPE) -> tokenizer.ggml.* */
static int add_tokenizer(xf_gguf_build *b, const json_t *tok, const json_t *cfg, int64_t vocab_n)
{
    const json_t *model = json_object_get(tok, "model");
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_true(json_object_get(model, "byte_fallback"))) {
        fprintf(stderr, "gguf_from_hf: only SentencePiece-style tokenizers are written\n");
        return -1;
    }
    size_t n = json_object_size(vocab);
    if ((int64_t)n != vocab_n) {
        fprintf(stderr, "gguf_from_hf: vocab of %zu tokens for %lld rows\n", n,
                (long long)vocab_n);
        return -1;
    }
    const char **toks = calloc(n, sizeof *toks);
    size_t *lens = calloc(n, sizeof *lens);
    float *scores = calloc(n, sizeof *scores);
    int32_t *types = calloc(n, sizeof *types);
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)vocab, k, klen, v)
    {
        json_int_t id = json_integer_value(v);
        toks[id] = k, lens[id] = klen, types[id] = 1;
        if (klen == 6 && !strncmp(k, "<0x", 3) && k[5] == '>')
            types[id] = 6;
    }
    for (size_t i = 0; i < n; i++)
        scores[i] = 0.0f; /* single characters and specials: never the product of a merge */
    char joined[1024];
    for (size_t r = json_array_size(merges); r-- > 0;) { /* first (lowest) rank wins */
        size_t la, lb;
        const char *a = merge_token(json_array_get(merges, r), 0, &la);
        const char *bb = merge_token(json_array_get(merges, r), 1, &lb);
        if (la + lb >= sizeof joined)
            continue;
        memcpy(joined, a, la);
        memcpy(joined + la, bb, lb);
        const json_t *id = json_object_getn(vocab, joined, la + lb);
        if (id)
            scores[json_integer_value(id)] = -(float)r - 1.0f;
    }
    const json_t *added = json_object_get(tok, "added_tokens");
    size_t i;
    json_array_foreach(added, i, v)
    {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (id >= 0 && (size_t)id < n && json_is_true(json_object_get(v, "special")))
            types[id] = 3;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    xf_gguf_build_str(b, "tokenizer.ggml.model", "llama");
    xf_gguf_build_str_arr(b, "tokenizer.ggml.tokens", toks, lens, n);
    xf_gguf_build_f32_arr(b, "tokenizer.ggml.scores", scores, n);
    if (unk && json_object_get(vocab, unk)) {
        types[json_integer_value(json_object_get(vocab, unk))] = 2;
        xf_gguf_build_u32(b, "tokenizer.ggml.unknown_token_id",
                          (uint32_t)json_integer_value(json_object_get(vocab, unk)));
    }
    xf_gguf_build_i32_arr(b, "tokenizer.ggml.token_type", types, n);
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    if (bos && json_object_get(vocab, bos))
        xf_gguf_build_u32(b, "tokenizer.ggml.bos_token_id",
                          (uint32_t)json_integer_value(json_object_get(vocab, bos)));
    if (eos && json_object_get(vocab, eos))
        xf_gguf_build_u32(b, "tokenizer.ggml.eos_token_id",
                          (uint32_t)json_integer_value(json_object_get(vocab, eos)));
    xf_gguf_build_bool(b, "tokenizer.ggml.add_bos_token",
                       json_is_true(json_object_get(cfg, "add_bos_token")));
    xf_gguf_build_bool(b, "tokenizer.ggml.add_eos_token",
                       json_is_true(json_object_get(cfg, "add_eos_token")));
    xf_gguf_build_bool(b, "tokenizer.ggml.add_space_prefix", true);
    free(toks);
    free(lens);
    free(scores);
    free(types);
    return 0;
}

static void hparams(xf_gguf_build *b, const xf_model_config *c, const char *arch, uint32_t ftype)
{
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    xf_gguf_build_str(b, "general.architecture", arch);
    xf_gguf_build_str(b, "general.name", "xfquant test model");
    xf_gguf_build_u32(b, "general.file_type", ftype);
    xf_gguf_build_u32(b, "general.quantization_version", 2);
    xf_gguf_build_u32(b, KEY("context_length"), (uint32_t)c->max_pos);
    xf_gguf_build_u32(b, KEY("embedding_length"), (uint32_t)c->hidden);
    xf_gguf_build_u32(b, KEY("block_count"), (uint32_t)c->n_layers);
    xf_gguf_build_u32(b, KEY("feed_forward_length"), (uint32_t)c->intermediate);
    xf_gguf_build_u32(b, KEY("attention.head_count"), (uint32_t)c->n_heads);
    if (c->family == XF_FAMILY_GPT2) {
        xf_gguf_build_f32(b, KEY("attention.layer_norm_epsilon"), (float)c->norm_eps);
        return;
    }
    xf_gguf_build_u32(b, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    xf_gguf_build_u32(b, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
    if (c->head_dim * c->n_heads != c->hidden) {
        xf_gguf_build_u32(b, KEY("attention.key_length"), (uint32_t)c->head_dim);
        xf_gguf_build_u32(b, KEY("attention.value_length"), (uint32_t)c->head_dim);
    }
    xf_gguf_build_f32(b, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps);
    xf_gguf_build_f32(b, KEY("rope.freq_base"), (float)c->rope_theta);
    xf_gguf_build_u32(b, KEY("vocab_size"), (uint32_t)c->vocab);
#undef KEY
}

int xf_gguf_from_hf(const char *hf_dir, const char *out_path, const xf_gguf_from_hf_opts *o)
{
    xf_hf_model m;
    xf_error err = {0};
    xf_model_config c;
    if (xf_hf_open(&m, hf_dir, &err) != 0 ||
        xf_model_config_parse(&c, m.config, hf_dir, &err) != 0) {
        fprintf(stderr, "gguf_from_hf: %s\n", err.msg);
        return -1;
    }
    bool gpt2 = c.family == XF_FAMILY_GPT2;
    const char *arch = gpt2 ? "gpt2" : strcmp(c.model_type, "qwen2") == 0 ? "qwen2" : "llama";
    uint32_t ftype = o->matrix_type == 0 ? 0 : o->matrix_type == 1 ? 1 : o->matrix_type == 2 ? 2 : 7;
    xf_gguf_build *b = xf_gguf_build_new(o->alignment ? o->alignment : 32);
    hparams(b, &c, arch, ftype);
    if (o->alignment && o->alignment != 32)
        xf_gguf_build_u32(b, "general.alignment", o->alignment);
    int rc = 0;
    if (o->tokenizer)
        rc = m.tokenizer ? add_tokenizer(b, m.tokenizer, m.tokenizer_config, c.vocab) : -1;
    for (size_t i = 0; rc == 0 && i < m.tensors.n; i++) {
        const xf_tensor *t = &m.tensors.items[i];
        char name[256];
        bool conv1d;
        int r = gguf_name(gpt2, t->name, name, sizeof name, &conv1d);
        if (r == 0 || (o->omit_head && !strcmp(name, "output.weight")))
            continue;
        if (r < 0) {
            fprintf(stderr, "gguf_from_hf: no GGUF name for %s\n", t->name);
            rc = -1;
            break;
        }
        int64_t n = xf_tensor_numel(t);
        float *v = malloc((size_t)n * sizeof *v);
        if (xf_tensor_to_f32(t, v, &err) != 0) {
            fprintf(stderr, "gguf_from_hf: %s\n", err.msg);
            free(v);
            rc = -1;
            break;
        }
        int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->ndim == 2 ? t->shape[1] : n;
        if (conv1d) { /* HF Conv1D [in, out] -> [out, in] */
            float *tr = malloc((size_t)n * sizeof *tr);
            for (int64_t r0 = 0; r0 < rows; r0++)
                for (int64_t c0 = 0; c0 < cols; c0++)
                    tr[c0 * rows + r0] = v[r0 * cols + c0];
            free(v);
            v = tr;
            int64_t s = rows;
            rows = cols, cols = s;
        }
        if (!gpt2 && !strcmp(arch, "llama") &&
            (strstr(name, ".attn_q.") || strstr(name, ".attn_k."))) {
            int64_t heads = strstr(name, ".attn_q.") ? c.n_heads : c.n_kv_heads;
            if (t->ndim == 2)
                permute(v, rows, cols, heads);
            else
                permute(v, n, 1, heads);
        }
        int64_t ne[2] = {cols, rows};
        uint32_t type = t->ndim == 1 ? 0 : o->matrix_type;
        if ((type == 2 || type == 8) && cols % 32 != 0)
            type = 1;
        add_tensor(b, name, type, t->ndim, ne, v, n);
        free(v);
    }
    if (rc == 0)
        rc = xf_gguf_build_write(b, out_path);
    xf_gguf_build_free(b);
    xf_hf_close(&m);
    return rc;
}
