/* Writer of small random HF model directories (see random_model.h). The
 * tensor names and shapes here are written out from the HF modelling code
 * of each family independently of model/weights.c, so that binding tests
 * check one against the other. */
#include "tests/support/random_model.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/half.h"
#include "formats/safetensors.h"
#include "tests/support/test_util.h"

typedef enum { K_WEIGHT, K_NORM, K_BIAS, K_MASK } value_kind;

typedef struct gen_tensor {
    char name[128];
    int ndim;
    int64_t shape[4];
    value_kind kind;
} gen_tensor;

typedef struct gen_list {
    gen_tensor *items;
    size_t n, cap;
} gen_list;

static int add(gen_list *l, value_kind kind, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add(gen_list *l, value_kind kind, int64_t d0, int64_t d1, const char *fmt, ...)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        gen_tensor *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return -1;
        l->items = p;
        l->cap = cap;
    }
    gen_tensor *t = &l->items[l->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->kind = kind;
    if (kind == K_MASK) { /* GPT-2 causal mask buffer [1, 1, n, n] */
        t->ndim = 4;
        t->shape[0] = t->shape[1] = 1;
        t->shape[2] = t->shape[3] = d0;
    } else {
        t->ndim = d1 ? 2 : 1;
        t->shape[0] = d0;
        t->shape[1] = d1;
    }
    return 0;
}

/* A linear stored like nn.Linear: weight [out, in], bias [out]. */
static int add_linear(gen_list *l, const char *base, int64_t out, int64_t in, bool bias)
{
    if (add(l, K_WEIGHT, out, in, "%s.weight", base))
        return -1;
    return bias ? add(l, K_BIAS, out, 0, "%s.bias", base) : 0;
}

/* GPT-2 Conv1D: weight [in, out], bias [out]. */
static int add_conv1d(gen_list *l, const char *base, int64_t out, int64_t in)
{
    if (add(l, K_WEIGHT, in, out, "%s.weight", base))
        return -1;
    return add(l, K_BIAS, out, 0, "%s.bias", base);
}

static int add_layer_norm(gen_list *l, const char *base, int64_t dim)
{
    if (add(l, K_NORM, dim, 0, "%s.weight", base))
        return -1;
    return add(l, K_BIAS, dim, 0, "%s.bias", base);
}

typedef struct dims {
    int64_t h, inter, layers, heads, kv, hd, vocab, pos;
} dims;

static int list_llama(gen_list *l, const xf_random_model_spec *s, const dims *d)
{
    bool qkv_bias = strcmp(s->family, "qwen2") == 0;
    char b[128];
    int rc = add(l, K_WEIGHT, d->vocab, d->h, "model.embed_tokens.weight");
    for (int64_t i = 0; i < d->layers && !rc; i++) {
        const char *p = b;
        rc |= add(l, K_NORM, d->h, 0, "model.layers.%lld.input_layernorm.weight", (long long)i);
        snprintf(b, sizeof b, "model.layers.%lld.self_attn.q_proj", (long long)i);
        rc |= add_linear(l, p, d->heads * d->hd, d->h, qkv_bias);
        snprintf(b, sizeof b, "model.layers.%lld.self_attn.k_proj", (long long)i);
        rc |= add_linear(l, p, d->kv * d->hd, d->h, qkv_bias);
        snprintf(b, sizeof b, "model.layers.%lld.self_attn.v_proj", (long long)i);
        rc |= add_linear(l, p, d->kv * d->hd, d->h, qkv_bias);
        snprintf(b, sizeof b, "model.layers.%lld.self_attn.o_proj", (long long)i);
        rc |= add_linear(l, p, d->h, d->heads * d->hd, false);
        rc |= add(l, K_NORM, d->h, 0, "model.layers.%lld.post_attention_layernorm.weight",
                  (long long)i);
        snprintf(b, sizeof b, "model.layers.%lld.mlp.gate_proj", (long long)i);
        rc |= add_linear(l, p, d->inter, d->h, false);
        snprintf(b, sizeof b, "model.layers.%lld.mlp.up_proj", (long long)i);
        rc |= add_linear(l, p, d->inter, d->h, false);
        snprintf(b, sizeof b, "model.layers.%lld.mlp.down_proj", (long long)i);
        rc |= add_linear(l, p, d->h, d->inter, false);
    }
    rc |= add(l, K_NORM, d->h, 0, "model.norm.weight");
    if (!s->tied)
        rc |= add(l, K_WEIGHT, d->vocab, d->h, "lm_head.weight");
    return rc ? -1 : 0;
}

static int list_opt(gen_list *l, const xf_random_model_spec *s, const dims *d)
{
    char b[128];
    int rc = add(l, K_WEIGHT, d->vocab, d->h, "model.decoder.embed_tokens.weight");
    rc |= add(l, K_WEIGHT, d->pos + 2, d->h, "model.decoder.embed_positions.weight");
    static const char *const proj[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
    for (int64_t i = 0; i < d->layers && !rc; i++) {
        for (int k = 0; k < 4; k++) {
            snprintf(b, sizeof b, "model.decoder.layers.%lld.self_attn.%s", (long long)i, proj[k]);
            rc |= add_linear(l, b, d->h, d->h, true);
        }
        snprintf(b, sizeof b, "model.decoder.layers.%lld.self_attn_layer_norm", (long long)i);
        rc |= add_layer_norm(l, b, d->h);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.fc1", (long long)i);
        rc |= add_linear(l, b, d->inter, d->h, true);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.fc2", (long long)i);
        rc |= add_linear(l, b, d->h, d->inter, true);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.final_layer_norm", (long long)i);
        rc |= add_layer_norm(l, b, d->h);
    }
    rc |= add_layer_norm(l, "model.decoder.final_layer_norm", d->h);
    if (!s->tied)
        rc |= add(l, K_WEIGHT, d->vocab, d->h, "lm_head.weight");
    return rc ? -1 : 0;
}

static int list_gpt2(gen_list *l, const xf_random_model_spec *s, const dims *d)
{
    char b[128];
    int rc = add(l, K_WEIGHT, d->vocab, d->h, "transformer.wte.weight");
    rc |= add(l, K_WEIGHT, d->pos, d->h, "transformer.wpe.weight");
    for (int64_t i = 0; i < d->layers && !rc; i++) {
        snprintf(b, sizeof b, "transformer.h.%lld.ln_1", (long long)i);
        rc |= add_layer_norm(l, b, d->h);
        rc |= add(l, K_MASK, d->pos, 0, "transformer.h.%lld.attn.bias", (long long)i);
        snprintf(b, sizeof b, "transformer.h.%lld.attn.c_attn", (long long)i);
        rc |= add_conv1d(l, b, 3 * d->h, d->h);
        snprintf(b, sizeof b, "transformer.h.%lld.attn.c_proj", (long long)i);
        rc |= add_conv1d(l, b, d->h, d->h);
        snprintf(b, sizeof b, "transformer.h.%lld.ln_2", (long long)i);
        rc |= add_layer_norm(l, b, d->h);
        snprintf(b, sizeof b, "transformer.h.%lld.mlp.c_fc", (long long)i);
        rc |= add_conv1d(l, b, d->inter, d->h);
        snprintf(b, sizeof b, "transformer.h.%lld.mlp.c_proj", (long long)i);
        rc |= add_conv1d(l, b, d->h, d->inter);
    }
    rc |= add_layer_norm(l, "transformer.ln_f", d->h);
    if (!s->tied)
        rc |= add(l, K_WEIGHT, d->vocab, d->h, "lm_head.weight");
    return rc ? -1 : 0;
}

/* ---- config.json ---- */

static void set_int(json_t *o, const char *k, int64_t v) { json_object_set_new(o, k, json_integer(v)); }
static void set_real(json_t *o, const char *k, double v) { json_object_set_new(o, k, json_real(v)); }
static void set_str(json_t *o, const char *k, const char *v) { json_object_set_new(o, k, json_string(v)); }
static void set_bool(json_t *o, const char *k, bool v) { json_object_set_new(o, k, json_boolean(v)); }

static json_t *arch(const char *name)
{
    json_t *a = json_array();
    json_array_append_new(a, json_string(name));
    return a;
}

static json_t *make_config(const xf_random_model_spec *s, const dims *d)
{
    json_t *c = json_object();
    const char *dtype = s->f16 ? "float16" : "float32";
    if (strcmp(s->family, "opt") == 0) {
        json_object_set_new(c, "architectures", arch("OPTForCausalLM"));
        set_str(c, "model_type", "opt");
        set_str(c, "activation_function", "relu");
        set_real(c, "activation_dropout", 0.0);
        set_real(c, "attention_dropout", 0.0);
        set_bool(c, "do_layer_norm_before", true);
        set_real(c, "dropout", 0.1);
        set_bool(c, "enable_bias", true);
        set_int(c, "ffn_dim", d->inter);
        set_int(c, "hidden_size", d->h);
        set_real(c, "init_std", 0.02);
        set_real(c, "layerdrop", 0.0);
        set_bool(c, "layer_norm_elementwise_affine", true);
        set_int(c, "max_position_embeddings", d->pos);
        set_int(c, "num_attention_heads", d->heads);
        set_int(c, "num_hidden_layers", d->layers);
        set_int(c, "pad_token_id", 1);
        set_int(c, "bos_token_id", 2);
        set_int(c, "eos_token_id", 2);
        set_int(c, "vocab_size", d->vocab);
        set_int(c, "word_embed_proj_dim", d->h);
        if (!s->tied) /* real OPT configs leave the (true) default implicit */
            set_bool(c, "tie_word_embeddings", false);
    } else if (strcmp(s->family, "gpt2") == 0) {
        json_object_set_new(c, "architectures", arch("GPT2LMHeadModel"));
        set_str(c, "model_type", "gpt2");
        set_str(c, "activation_function", "gelu_new");
        set_real(c, "attn_pdrop", 0.1);
        set_int(c, "bos_token_id", d->vocab - 1);
        set_int(c, "eos_token_id", d->vocab - 1);
        set_real(c, "embd_pdrop", 0.1);
        set_real(c, "initializer_range", 0.02);
        set_real(c, "layer_norm_epsilon", 1e-5);
        set_int(c, "n_ctx", d->pos);
        set_int(c, "n_embd", d->h);
        set_int(c, "n_head", d->heads);
        if (s->intermediate)
            set_int(c, "n_inner", d->inter);
        else
            json_object_set_new(c, "n_inner", json_null());
        set_int(c, "n_layer", d->layers);
        set_int(c, "n_positions", d->pos);
        set_real(c, "resid_pdrop", 0.1);
        set_bool(c, "scale_attn_weights", true);
        set_int(c, "vocab_size", d->vocab);
        if (!s->tied)
            set_bool(c, "tie_word_embeddings", false);
    } else {
        bool qwen2 = strcmp(s->family, "qwen2") == 0, mistral = strcmp(s->family, "mistral") == 0;
        json_object_set_new(c, "architectures",
                            arch(qwen2 ? "Qwen2ForCausalLM"
                                       : mistral ? "MistralForCausalLM" : "LlamaForCausalLM"));
        set_str(c, "model_type", s->family);
        set_str(c, "hidden_act", "silu");
        set_int(c, "hidden_size", d->h);
        set_int(c, "intermediate_size", d->inter);
        set_int(c, "num_hidden_layers", d->layers);
        set_int(c, "num_attention_heads", d->heads);
        set_int(c, "num_key_value_heads", d->kv);
        if (s->head_dim)
            set_int(c, "head_dim", d->hd);
        set_int(c, "vocab_size", d->vocab);
        set_int(c, "max_position_embeddings", d->pos);
        set_real(c, "initializer_range", 0.02);
        set_real(c, "rms_norm_eps", qwen2 ? 1e-6 : 1e-5);
        set_real(c, "rope_theta", qwen2 || mistral ? 1000000.0 : 10000.0);
        json_object_set_new(c, "rope_scaling", json_null());
        set_bool(c, "tie_word_embeddings", s->tied);
        set_bool(c, "use_cache", true);
        set_int(c, "bos_token_id", 1);
        set_int(c, "eos_token_id", 2);
        if (qwen2) {
            set_bool(c, "use_sliding_window", false);
            set_int(c, "sliding_window", d->pos);
            set_int(c, "max_window_layers", d->layers);
        } else if (mistral) {
            json_object_set_new(c, "sliding_window", json_null());
        } else {
            set_bool(c, "attention_bias", false);
            set_bool(c, "mlp_bias", false);
            set_int(c, "pretraining_tp", 1);
        }
    }
    set_str(c, "torch_dtype", dtype);
    set_str(c, "transformers_version", "4.44.0");
    return c;
}

/* ---- values ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void fill(const gen_tensor *g, uint64_t seed, float *v, int64_t n)
{
    uint64_t st = seed ^ name_hash(g->name);
    if (g->kind == K_MASK) { /* lower-triangular ones */
        int64_t p = g->shape[2];
        for (int64_t r = 0; r < p; r++)
            for (int64_t c = 0; c < p; c++)
                v[r * p + c] = c <= r ? 1.0f : 0.0f;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float z = xf_test_rand_normal(&st);
        v[i] = g->kind == K_WEIGHT ? 0.02f * z : g->kind == K_NORM ? 1.0f + 0.05f * z : 0.01f * z;
    }
}

/* Materializes g into t (data malloc'd, owned by the caller). */
static int materialize(const gen_tensor *g, const xf_random_model_spec *s, xf_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->name = g->name;
    t->ndim = g->ndim;
    memcpy(t->shape, g->shape, sizeof g->shape);
    int64_t n = xf_tensor_numel(t);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return -1;
    fill(g, s->seed, v, n);
    if (s->f16) {
        uint16_t *h = malloc((size_t)n * sizeof *h);
        if (!h) {
            free(v);
            return -1;
        }
        xf_f32_to_f16_array(v, h, (size_t)n);
        free(v);
        t->dtype = XF_DTYPE_F16;
        t->data = h;
        t->nbytes = (size_t)n * 2;
    } else {
        t->dtype = XF_DTYPE_F32;
        t->data = v;
        t->nbytes = (size_t)n * 4;
    }
    return 0;
}

/* ---- writing ---- */

static int write_shard(const char *dir, const char *file, const xf_tensor *t, size_t n)
{
    char *path = malloc(strlen(dir) + strlen(file) + 2);
    if (!path)
        return -1;
    sprintf(path, "%s/%s", dir, file);
    json_t *meta = json_object();
    set_str(meta, "format", "pt");
    xf_error err = {{0}};
    int rc = xf_safetensors_write(path, t, n, meta, &err);
    if (rc)
        fprintf(stderr, "random_model: %s\n", err.msg);
    json_decref(meta);
    free(path);
    return rc;
}

static int write_json(const char *dir, const char *file, const json_t *j)
{
    char *path = malloc(strlen(dir) + strlen(file) + 2);
    if (!path)
        return -1;
    sprintf(path, "%s/%s", dir, file);
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (rc)
        fprintf(stderr, "random_model: cannot write %s\n", path);
    free(path);
    return rc ? -1 : 0;
}

static void remove_file(const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    unlink(path);
}

static int check_spec(const xf_random_model_spec *s, dims *d)
{
    static const char *const families[] = {"llama", "mistral", "qwen2", "opt", "gpt2"};
    bool known = false;
    for (size_t i = 0; s->family && i < 5; i++)
        known |= strcmp(s->family, families[i]) == 0;
    if (!known) {
        fprintf(stderr, "random_model: unknown family \"%s\"\n", s->family ? s->family : "(null)");
        return -1;
    }
    bool llama = strcmp(s->family, "opt") != 0 && strcmp(s->family, "gpt2") != 0;
    d->h = s->hidden;
    d->layers = s->layers;
    d->heads = s->heads;
    d->kv = s->kv_heads ? s->kv_heads : s->heads;
    d->vocab = s->vocab;
    d->pos = s->max_pos;
    d->inter = s->intermediate ? s->intermediate : 4 * (int64_t)s->hidden;
    d->hd = s->head_dim ? s->head_dim : (s->heads > 0 ? s->hidden / s->heads : 0);
    bool ok = d->h > 0 && d->layers > 0 && d->heads > 0 && d->kv > 0 && d->vocab > 2 &&
              d->pos > 0 && d->inter > 0 && d->hd > 0 && d->heads % d->kv == 0 &&
              (s->head_dim || d->h % d->heads == 0) && s->shards >= 0 && s->shards <= 99999 &&
              (!llama || s->intermediate > 0) &&
              (llama || (d->kv == d->heads && s->head_dim == 0));
    if (!ok)
        fprintf(stderr, "random_model: inconsistent spec for %s\n", s->family);
    return ok ? 0 : -1;
}

char *xf_random_model_write(const char *dir, const xf_random_model_spec *spec)
{
    dims d;
    if (check_spec(spec, &d))
        return NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "random_model: cannot create %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    gen_list l = {0};
    int rc;
    if (strcmp(spec->family, "opt") == 0)
        rc = list_opt(&l, spec, &d);
    else if (strcmp(spec->family, "gpt2") == 0)
        rc = list_gpt2(&l, spec, &d);
    else
        rc = list_llama(&l, spec, &d);

    xf_tensor *t = rc ? NULL : calloc(l.n, sizeof *t);
    size_t made = 0;
    if (!t)
        rc = -1;
    for (; rc == 0 && made < l.n; made++)
        if (materialize(&l.items[made], spec, &t[made]))
            rc = -1;

    json_t *config = rc ? NULL : make_config(spec, &d);
    if (config)
        rc = write_json(dir, "config.json", config);
    remove_file(dir, "model.safetensors");
    remove_file(dir, "model.safetensors.index.json");
    if (rc == 0 && spec->shards >= 2) {
        /* shards of about equal bytes, tensors in list order, named like
         * save_pretrained's; the index maps each tensor to its file */
        int ns = spec->shards;
        size_t total = 0;
        for (size_t i = 0; i < l.n; i++)
            total += t[i].nbytes;
        json_t *index = json_object(), *meta = json_object(), *map = json_object();
        size_t first = 0, acc = 0;
        for (int k = 0; k < ns && rc == 0; k++) {
            char file[64];
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, ns);
            size_t last = first;
            /* take tensors until this shard's share is reached; the last takes the rest */
            while (last < l.n && (k == ns - 1 || acc + t[last].nbytes / 2 <=
                                                     total / (size_t)ns * (size_t)(k + 1)))
                acc += t[last++].nbytes;
            if (last == first && last < l.n)
                acc += t[last++].nbytes;
            rc = write_shard(dir, file, t + first, last - first);
            for (size_t i = first; i < last; i++)
                json_object_set_new(map, t[i].name, json_string(file));
            first = last;
        }
        set_int(meta, "total_size", (int64_t)total);
        json_object_set_new(index, "metadata", meta);
        json_object_set_new(index, "weight_map", map);
        if (rc == 0)
            rc = write_json(dir, "model.safetensors.index.json", index);
        json_decref(index);
    } else if (rc == 0) {
        rc = write_shard(dir, "model.safetensors", t, l.n);
    }

    json_decref(config);
    for (size_t i = 0; i < made; i++)
        free((void *)t[i].data);
    free(t);
    free(l.items);
    return rc ? NULL : strdup(dir);
}
