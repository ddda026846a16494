/* HF config parsing, HF model directories and the binding of tensor names
 * to roles: every family on generated random models (sharded or not, tied
 * or not), error messages for bad configs, missing/unexpected/misshapen
 * tensors and broken directories, and the two shared models. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/half.h"
#include "core/json_util.h"
#include "formats/hf_model.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

/* ---- helpers ---- */

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

/* Parses `text`, expects success. */
static void config_ok(const char *text, xf_model_config *c)
{
    json_t *j = parse(text);
    xf_error err = {{0}};
    int rc = xf_model_config_parse(c, j, "config.json", &err);
    if (rc)
        print_message("unexpected error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    json_decref(j);
}

/* Parses `text`, expects failure with a message containing `needle`. */
static void config_fails(const char *text, const char *needle)
{
    json_t *j = parse(text);
    xf_model_config c;
    xf_error err = {{0}};
    assert_int_equal(xf_model_config_parse(&c, j, "config.json", &err), -1);
    if (!strstr(err.msg, needle))
        print_message("message \"%s\" lacks \"%s\"\n", err.msg, needle);
    assert_non_null(strstr(err.msg, needle));
    assert_null(strchr(err.msg, '\n'));
    json_decref(j);
}

static const char *LLAMA_CFG =
    "{\"model_type\": \"llama\", \"hidden_size\": 256, \"intermediate_size\": 688,"
    " \"num_hidden_layers\": 6, \"num_attention_heads\": 8, \"num_key_value_heads\": 4,"
    " \"vocab_size\": 2048, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 500000.0, \"hidden_act\": \"silu\", \"tie_word_embeddings\": false,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2, \"rope_scaling\": null%s}";

static char *llama_with(const char *extra)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, LLAMA_CFG, extra);
    return buf;
}

/* ---- config ---- */

static void test_config_llama(void **state)
{
    (void)state;
    xf_model_config c;
    config_ok(llama_with(""), &c);
    assert_string_equal(c.model_type, "llama");
    assert_int_equal(c.family, XF_FAMILY_LLAMA);
    assert_int_equal(c.hidden, 256);
    assert_int_equal(c.intermediate, 688);
    assert_int_equal(c.n_layers, 6);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.vocab, 2048);
    assert_int_equal(c.max_pos, 256);
    assert_true(fabs(c.norm_eps - 1e-5) < 1e-12);
    assert_true(c.rope_theta == 500000.0);
    assert_false(c.tie_embeddings);
    assert_false(c.qkv_bias || c.o_bias || c.mlp_bias || c.layer_norm || c.fused_qkv);
    assert_true(c.norm_before);
    assert_int_equal(c.act, XF_ACT_SILU);
    assert_int_equal(c.pos_offset, 0);
    assert_int_equal(c.bos_id, 1);
    assert_int_equal(c.eos_id, 2);

    /* defaults: kv heads = heads, rope_theta 10000, no bos/eos, untied */
    config_ok("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 96,"
              " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100,"
              " \"max_position_embeddings\": 64}",
              &c);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 16);
    assert_true(c.rope_theta == 10000.0);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.eos_id, -1);
    assert_false(c.tie_embeddings);

    /* head_dim given and != hidden/heads (Mistral-Nemo style); biases; eos list */
    config_ok(llama_with(", \"head_dim\": 48, \"attention_bias\": true, \"mlp_bias\": true,"
                         " \"eos_token_id\": [7, 8], \"rope_scaling\": {\"rope_type\": \"default\"}"),
              &c);
    assert_int_equal(c.head_dim, 48);
    assert_true(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert_int_equal(c.eos_id, 7);
}

static void test_config_qwen2_mistral(void **state)
{
    (void)state;
    xf_model_config c;
    config_ok("{\"model_type\": \"qwen2\", \"hidden_size\": 896, \"intermediate_size\": 4864,"
              " \"num_hidden_layers\": 24, \"num_attention_heads\": 14, \"num_key_value_heads\": 2,"
              " \"vocab_size\": 151936, \"max_position_embeddings\": 32768,"
              " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true,"
              " \"use_sliding_window\": false, \"sliding_window\": 32768, \"hidden_act\": \"silu\","
              " \"bos_token_id\": 151643, \"eos_token_id\": 151643}",
              &c);
    assert_string_equal(c.model_type, "qwen2");
    assert_int_equal(c.family, XF_FAMILY_LLAMA);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.n_kv_heads, 2);
    assert_true(c.tie_embeddings);
    assert_true(c.qkv_bias);
    assert_false(c.o_bias);
    assert_false(c.mlp_bias);
    assert_int_equal(c.bos_id, 151643);

    /* mistral: sliding window shorter than the context is accepted (warning only) */
    config_ok("{\"model_type\": \"mistral\", \"hidden_size\": 4096, \"intermediate_size\": 14336,"
              " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
              " \"vocab_size\": 32000, \"max_position_embeddings\": 32768, \"rms_norm_eps\": 1e-05,"
              " \"sliding_window\": 4096, \"hidden_act\": \"silu\"}",
              &c);
    assert_string_equal(c.model_type, "mistral");
    assert_int_equal(c.head_dim, 128);
    assert_false(c.qkv_bias || c.o_bias || c.mlp_bias || c.tie_embeddings);
}

static void test_config_opt(void **state)
{
    (void)state;
    const char *opt125 =
        "{\"model_type\": \"opt\", \"activation_function\": \"relu\", \"hidden_size\": 768,"
        " \"ffn_dim\": 3072, \"num_hidden_layers\": 12, \"num_attention_heads\": 12,"
        " \"vocab_size\": 50272, \"max_position_embeddings\": 2048, \"do_layer_norm_before\": true,"
        " \"word_embed_proj_dim\": 768, \"enable_bias\": true, \"bos_token_id\": 2,"
        " \"eos_token_id\": 2, \"pad_token_id\": 1}";
    xf_model_config c;
    config_ok(opt125, &c);
    assert_int_equal(c.family, XF_FAMILY_OPT);
    assert_int_equal(c.hidden, 768);
    assert_int_equal(c.intermediate, 3072);
    assert_int_equal(c.n_layers, 12);
    assert_int_equal(c.n_heads, 12);
    assert_int_equal(c.n_kv_heads, 12);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.vocab, 50272);
    assert_int_equal(c.max_pos, 2048);
    assert_true(c.tie_embeddings); /* default for OPT */
    assert_true(c.qkv_bias && c.o_bias && c.mlp_bias && c.layer_norm && c.norm_before);
    assert_false(c.fused_qkv);
    assert_int_equal(c.pos_offset, 2);
    assert_int_equal(c.act, XF_ACT_RELU);
    assert_true(fabs(c.norm_eps - 1e-5) < 1e-12);
    assert_int_equal(c.bos_id, 2);

    /* opt-350m: project_in/out */
    config_fails("{\"model_type\": \"opt\", \"hidden_size\": 1024, \"ffn_dim\": 4096,"
                 " \"num_hidden_layers\": 24, \"num_attention_heads\": 16, \"vocab_size\": 50272,"
                 " \"max_position_embeddings\": 2048, \"do_layer_norm_before\": false,"
                 " \"word_embed_proj_dim\": 512}",
                 "project_in/project_out not supported");
    /* post-LN OPT without projection, bias off */
    config_ok("{\"model_type\": \"opt\", \"hidden_size\": 64, \"ffn_dim\": 128,"
              " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100,"
              " \"max_position_embeddings\": 32, \"do_layer_norm_before\": false,"
              " \"enable_bias\": false}",
              &c);
    assert_false(c.norm_before);
    assert_false(c.qkv_bias || c.o_bias || c.mlp_bias);
    config_fails("{\"model_type\": \"opt\", \"hidden_size\": 64, \"ffn_dim\": 128,"
                 " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100,"
                 " \"max_position_embeddings\": 32, \"activation_function\": \"gelu\"}",
                 "activation_function \"gelu\"");
}

static void test_config_gpt2(void **state)
{
    (void)state;
    const char *gpt2 =
        "{\"model_type\": \"gpt2\", \"activation_function\": \"%s\", \"n_embd\": 768,"
        " \"n_layer\": 12, \"n_head\": 12, \"n_inner\": %s, \"vocab_size\": 50257,"
        " \"n_positions\": 1024, \"n_ctx\": 1024, \"layer_norm_epsilon\": 1e-05,"
        " \"bos_token_id\": 50256, \"eos_token_id\": 50256}";
    char buf[1024];
    xf_model_config c;
    snprintf(buf, sizeof buf, gpt2, "gelu_new", "null");
    config_ok(buf, &c);
    assert_int_equal(c.family, XF_FAMILY_GPT2);
    assert_int_equal(c.hidden, 768);
    assert_int_equal(c.intermediate, 3072);
    assert_int_equal(c.n_layers, 12);
    assert_int_equal(c.n_heads, 12);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.vocab, 50257);
    assert_int_equal(c.max_pos, 1024);
    assert_int_equal(c.act, XF_ACT_GELU_TANH);
    assert_true(c.fused_qkv && c.tie_embeddings && c.layer_norm && c.norm_before);
    assert_true(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert_int_equal(c.pos_offset, 0);
    assert_int_equal(c.eos_id, 50256);

    snprintf(buf, sizeof buf, gpt2, "gelu", "1000");
    config_ok(buf, &c);
    assert_int_equal(c.act, XF_ACT_GELU);
    assert_int_equal(c.intermediate, 1000);

    snprintf(buf, sizeof buf, gpt2, "swish", "null");
    config_fails(buf, "unsupported activation_function \"swish\"");
}

static void test_config_errors(void **state)
{
    (void)state;
    json_t *j = parse("{\"model_type\": \"bert\", \"hidden_size\": 768}");
    xf_model_config c;
    xf_error err = {{0}};
    assert_int_equal(xf_model_config_parse(&c, j, "config.json", &err), -1);
    assert_string_equal(err.msg, "config.json: unsupported model_type \"bert\" (supported: llama, "
                                 "mistral, qwen2, opt, gpt2)");
    json_decref(j);

    config_fails("{\"hidden_size\": 8}", "model_type");
    config_fails("[1, 2]", "config.json");
    config_fails(llama_with(", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"),
                 "unsupported rope_scaling \"linear\"");
    config_fails(llama_with(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}"),
                 "unsupported rope_scaling \"llama3\"");
    config_fails(llama_with(", \"hidden_act\": \"gelu\""), "hidden_act \"gelu\"");
    config_fails(llama_with(", \"hidden_size\": 0"), "hidden_size");
    config_fails(llama_with(", \"num_hidden_layers\": -3"), "num_hidden_layers");
    config_fails(llama_with(", \"vocab_size\": \"many\""), "vocab_size");
    config_fails(llama_with(", \"num_attention_heads\": 7"), "must divide hidden_size");
    config_fails(llama_with(", \"num_key_value_heads\": 3"), "num_key_value_heads (3)");
    config_fails(llama_with(", \"head_dim\": 33"), "head_dim 33");
    config_fails(llama_with(", \"eos_token_id\": \"</s>\""), "eos_token_id");
    config_fails("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                 " \"num_attention_heads\": 4, \"vocab_size\": 100, \"max_position_embeddings\": 8}",
                 "intermediate_size");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 10, \"n_layer\": 1, \"n_head\": 3,"
                 " \"vocab_size\": 10, \"n_positions\": 8}",
                 "n_head (3) must divide n_embd (10)");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 12, \"n_layer\": 1, \"n_head\": 3,"
                 " \"vocab_size\": 10, \"n_positions\": 8, \"scale_attn_by_inverse_layer_idx\": true}",
                 "scale_attn_by_inverse_layer_idx");
}

/* ---- random models ---- */

typedef struct fixture {
    char *tmp;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->tmp = xf_test_tmpdir();
    if (!f->tmp)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    xf_test_rmtree(f->tmp);
    free(f->tmp);
    free(f);
    return 0;
}

static xf_random_model_spec spec_for(const char *family, bool tied, int shards, bool f16)
{
    bool llama = strcmp(family, "opt") != 0 && strcmp(family, "gpt2") != 0;
    /* gpt2: n_inner null (-> 4 * hidden) */
    int inter = strcmp(family, "gpt2") == 0 ? 0 : 48;
    xf_random_model_spec s = {.family = family, .hidden = 32, .intermediate = inter, .layers = 2,
                              .heads = 4, .kv_heads = llama ? 2 : 0, .vocab = 40, .max_pos = 16,
                              .tied = tied, .f16 = f16, .shards = shards, .seed = 7};
    return s;
}

static char *write_model(fixture *f, const char *name, const xf_random_model_spec *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", f->tmp, name);
    char *dir = xf_random_model_write(path, s);
    assert_non_null(dir);
    return dir;
}

static void open_ok(xf_hf_model *m, const char *path)
{
    xf_error err = {{0}};
    int rc = xf_hf_open(m, path, &err);
    if (rc)
        print_message("xf_hf_open: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void parse_model_config(const xf_hf_model *m, xf_model_config *c)
{
    xf_error err = {{0}};
    int rc = xf_model_config_parse(c, m->config, "config.json", &err);
    if (rc)
        print_message("config: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void bind_ok(xf_model_weights *mw, const xf_model_config *c, const xf_tensor_set *set,
                    bool conv1d)
{
    xf_error err = {{0}};
    int rc = xf_model_bind(mw, c, set, conv1d, "model", &err);
    if (rc)
        print_message("bind: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void bind_fails(const xf_model_config *c, const xf_tensor_set *set, bool conv1d,
                       char *msg_out)
{
    xf_model_weights mw;
    xf_error err = {{0}};
    assert_int_equal(xf_model_bind(&mw, c, set, conv1d, "model", &err), -1);
    assert_null(mw.layers);
    assert_null(strchr(err.msg, '\n'));
    strcpy(msg_out, err.msg);
}

static void expect_linear(const xf_linear *l, const char *name, int64_t out, int64_t in,
                          bool bias, bool transposed)
{
    assert_non_null(l->w);
    assert_string_equal(l->w->name, name);
    assert_int_equal(l->out, out);
    assert_int_equal(l->in, in);
    assert_int_equal(l->transposed, transposed);
    assert_int_equal(l->w->ndim, 2);
    assert_int_equal(l->w->shape[0], transposed ? in : out);
    assert_int_equal(l->w->shape[1], transposed ? out : in);
    if (bias) {
        assert_non_null(l->b);
        assert_int_equal(l->b->ndim, 1);
        assert_int_equal(l->b->shape[0], out);
    } else {
        assert_null(l->b);
    }
}

static void expect_norm(const xf_norm *n, const char *wname, bool bias, int64_t dim)
{
    assert_non_null(n->w);
    assert_string_equal(n->w->name, wname);
    assert_int_equal(n->w->shape[0], dim);
    if (bias)
        assert_non_null(n->b);
    else
        assert_null(n->b);
}

/* Checks a bound random model against the spec, with names written out
 * from the HF layout of each family. */
static void check_bound(const xf_model_weights *mw, const xf_random_model_spec *s)
{
    char n[256];
    int64_t h = s->hidden, in = s->intermediate ? s->intermediate : 4 * h;
    assert_non_null(mw->tok_embed);
    assert_int_equal(mw->tok_embed->shape[0], s->vocab);
    assert_int_equal(mw->tok_embed->shape[1], h);
    assert_int_equal(mw->lm_head.out, s->vocab);
    assert_int_equal(mw->lm_head.in, h);
    if (s->tied) {
        assert_ptr_equal(mw->lm_head.w, mw->tok_embed);
    } else {
        assert_non_null(mw->lm_head.w);
        assert_string_equal(mw->lm_head.w->name, "lm_head.weight");
    }
    for (int i = 0; i < s->layers; i++) {
        const xf_layer_weights *L = &mw->layers[i];
        if (strcmp(s->family, "opt") == 0) {
            const char *roles[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
            for (int r = 0; r < 4; r++) {
                snprintf(n, sizeof n, "model.decoder.layers.%d.self_attn.%s.weight", i, roles[r]);
                expect_linear(&L->lin[r], n, h, h, true, false);
            }
            assert_null(L->lin[XF_LIN_GATE].w);
            snprintf(n, sizeof n, "model.decoder.layers.%d.fc1.weight", i);
            expect_linear(&L->lin[XF_LIN_UP], n, in, h, true, false);
            snprintf(n, sizeof n, "model.decoder.layers.%d.fc2.weight", i);
            expect_linear(&L->lin[XF_LIN_DOWN], n, h, in, true, false);
            snprintf(n, sizeof n, "model.decoder.layers.%d.self_attn_layer_norm.weight", i);
            expect_norm(&L->attn_norm, n, true, h);
            snprintf(n, sizeof n, "model.decoder.layers.%d.final_layer_norm.weight", i);
            expect_norm(&L->mlp_norm, n, true, h);
        } else if (strcmp(s->family, "gpt2") == 0) {
            snprintf(n, sizeof n, "transformer.h.%d.attn.c_attn.weight", i);
            expect_linear(&L->lin[XF_LIN_Q], n, 3 * h, h, true, true);
            assert_null(L->lin[XF_LIN_K].w);
            assert_null(L->lin[XF_LIN_V].w);
            assert_null(L->lin[XF_LIN_GATE].w);
            snprintf(n, sizeof n, "transformer.h.%d.attn.c_proj.weight", i);
            expect_linear(&L->lin[XF_LIN_O], n, h, h, true, true);
            snprintf(n, sizeof n, "transformer.h.%d.mlp.c_fc.weight", i);
            expect_linear(&L->lin[XF_LIN_UP], n, in, h, true, true);
            snprintf(n, sizeof n, "transformer.h.%d.mlp.c_proj.weight", i);
            expect_linear(&L->lin[XF_LIN_DOWN], n, h, in, true, true);
            snprintf(n, sizeof n, "transformer.h.%d.ln_1.weight", i);
            expect_norm(&L->attn_norm, n, true, h);
            snprintf(n, sizeof n, "transformer.h.%d.ln_2.weight", i);
            expect_norm(&L->mlp_norm, n, true, h);
        } else {
            bool qb = strcmp(s->family, "qwen2") == 0;
            int64_t kvd = (int64_t)(s->kv_heads ? s->kv_heads : s->heads) * (h / s->heads);
            const char *mods[XF_LIN_COUNT] = {"self_attn.q_proj", "self_attn.k_proj",
                                              "self_attn.v_proj", "self_attn.o_proj",
                                              "mlp.gate_proj",    "mlp.up_proj",
                                              "mlp.down_proj"};
            int64_t outs[XF_LIN_COUNT] = {h, kvd, kvd, h, in, in, h};
            int64_t ins[XF_LIN_COUNT] = {h, h, h, h, h, h, in};
            for (int r = 0; r < XF_LIN_COUNT; r++) {
                snprintf(n, sizeof n, "model.layers.%d.%s.weight", i, mods[r]);
                expect_linear(&L->lin[r], n, outs[r], ins[r], qb && r <= XF_LIN_V, false);
            }
            snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", i);
            expect_norm(&L->attn_norm, n, false, h);
            snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", i);
            expect_norm(&L->mlp_norm, n, false, h);
        }
    }
    if (strcmp(s->family, "opt") == 0) {
        assert_non_null(mw->pos_embed);
        assert_int_equal(mw->pos_embed->shape[0], s->max_pos + 2);
        expect_norm(&mw->final_norm, "model.decoder.final_layer_norm.weight", true, h);
    } else if (strcmp(s->family, "gpt2") == 0) {
        assert_non_null(mw->pos_embed);
        assert_int_equal(mw->pos_embed->shape[0], s->max_pos);
        expect_norm(&mw->final_norm, "transformer.ln_f.weight", true, h);
    } else {
        assert_null(mw->pos_embed);
        expect_norm(&mw->final_norm, "model.norm.weight", false, h);
    }
}

static void test_bind_random_models(void **state)
{
    fixture *f = *state;
    const char *families[] = {"llama", "mistral", "qwen2", "opt", "gpt2"};
    for (int fi = 0; fi < 5; fi++) {
        for (int variant = 0; variant < 4; variant++) {
            bool tied = variant & 1, sharded = variant & 2;
            xf_random_model_spec s = spec_for(families[fi], tied, sharded ? 2 : 1, variant == 1);
            char name[64];
            snprintf(name, sizeof name, "%s-%d", families[fi], variant);
            char *dir = write_model(f, name, &s);
            xf_hf_model m;
            open_ok(&m, dir);
            assert_int_equal(m.n_shards, sharded ? 2 : 1);
            assert_null(m.tokenizer);
            assert_null(m.tokenizer_config);
            xf_model_config c;
            parse_model_config(&m, &c);
            assert_string_equal(c.model_type, families[fi]);
            assert_int_equal(c.tie_embeddings, tied);
            assert_int_equal(c.hidden, s.hidden);
            assert_int_equal(c.n_layers, s.layers);
            xf_model_weights mw;
            bind_ok(&mw, &c, &m.tensors, true);
            check_bound(&mw, &s);
            xf_model_unbind(&mw);
            assert_null(mw.layers);
            xf_hf_close(&m);
            free(dir);
        }
    }
}

/* The generator: the same tensor values whether sharded or not, F16 the
 * rounded F32 values, statistics as documented. */
static void test_random_model_values(void **state)
{
    fixture *f = *state;
    xf_random_model_spec a = spec_for("llama", false, 1, false);
    xf_random_model_spec b = spec_for("llama", false, 2, true);
    char *da = write_model(f, "va", &a), *db = write_model(f, "vb", &b);
    xf_hf_model ma, mb;
    open_ok(&ma, da);
    open_ok(&mb, db);
    assert_int_equal(ma.tensors.n, mb.tensors.n);
    assert_int_equal(ma.tensors.n, 2 * 9 + 3);
    for (size_t i = 0; i < ma.tensors.n; i++) {
        const xf_tensor *ta = &ma.tensors.items[i], *tb = &mb.tensors.items[i];
        assert_string_equal(ta->name, tb->name);
        assert_int_equal(ta->dtype, XF_DTYPE_F32);
        assert_int_equal(tb->dtype, XF_DTYPE_F16);
        int64_t n = xf_tensor_numel(ta);
        const float *fa = ta->data;
        const uint16_t *hb = tb->data;
        double sum = 0, sq = 0;
        for (int64_t k = 0; k < n; k++) {
            assert_int_equal(hb[k], xf_f32_to_f16(fa[k]));
            sum += fa[k];
            sq += (double)fa[k] * fa[k];
        }
        double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
        if (strstr(ta->name, "norm"))
            assert_true(fabs(mean - 1.0) < 0.05 && sd < 0.1);
        else if (n >= 1000)
            assert_true(fabs(mean) < 0.005 && sd > 0.015 && sd < 0.025);
    }
    xf_hf_close(&ma);
    xf_hf_close(&mb);
    free(da);
    free(db);
}

/* A mutable copy of a tensor set: names owned, views shared. */
typedef struct set_copy {
    xf_tensor *items;
    char **names;
    size_t n, cap;
} set_copy;

static void copy_add(set_copy *c, const xf_tensor *t, const char *name)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->items = realloc(c->items, c->cap * sizeof *c->items);
        c->names = realloc(c->names, c->cap * sizeof *c->names);
    }
    c->names[c->n] = strdup(name);
    c->items[c->n] = *t;
    c->items[c->n].name = c->names[c->n];
    c->n++;
}

/* Copies `src` without the tensors whose name contains `drop` (if any),
 * replacing a leading `strip` prefix. */
static set_copy copy_set(const xf_tensor_set *src, const char *drop, const char *strip)
{
    set_copy c = {0};
    for (size_t i = 0; i < src->n; i++) {
        const char *nm = src->items[i].name;
        if (drop && strstr(nm, drop))
            continue;
        if (strip && strncmp(nm, strip, strlen(strip)) == 0)
            nm += strlen(strip);
        copy_add(&c, &src->items[i], nm);
    }
    return c;
}

static void copy_to_set(set_copy *c, xf_tensor_set *s)
{
    xf_error err = {{0}};
    assert_int_equal(xf_tensor_set_init(s, c->items, c->n, "copy", &err), 0);
}

static void copy_free(set_copy *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->names[i]);
    free(c->names);
    free(c->items);
}

static void open_random(fixture *f, const char *name, const xf_random_model_spec *s,
                        xf_hf_model *m, xf_model_config *c)
{
    char *dir = write_model(f, name, s);
    open_ok(m, dir);
    parse_model_config(m, c);
    free(dir);
}

static void test_bind_missing_and_extra(void **state)
{
    fixture *f = *state;
    xf_random_model_spec s = spec_for("llama", false, 1, false);
    s.layers = 3;
    xf_hf_model m;
    xf_model_config c;
    open_random(f, "miss", &s, &m, &c);
    char msg[XF_ERROR_MSG_MAX];

    /* one missing tensor */
    set_copy cp = copy_set(&m.tensors, "layers.1.mlp.up_proj", NULL);
    xf_tensor_set set;
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_non_null(strstr(msg, "missing tensors"));
    assert_non_null(strstr(msg, "model.layers.1.mlp.up_proj.weight"));
    assert_null(strstr(msg, "more)"));
    assert_null(strstr(msg, "unexpected"));
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* many missing: the whole attention of 3 layers (12) -> at most 10 names + "(+N more)" */
    cp = copy_set(&m.tensors, "self_attn", NULL);
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_non_null(strstr(msg, "model.layers.0.self_attn.q_proj.weight"));
    assert_non_null(strstr(msg, "(+2 more)"));
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* the untied head missing */
    cp = copy_set(&m.tensors, "lm_head", NULL);
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_non_null(strstr(msg, "lm_head.weight"));
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* extra tensors, and one missing, in the same line */
    cp = copy_set(&m.tensors, "model.norm.weight", NULL);
    copy_add(&cp, &m.tensors.items[0], "model.layers.0.self_attn.q_norm.weight");
    copy_add(&cp, &m.tensors.items[0], "rotary.cache");
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_non_null(strstr(msg, "missing tensors for llama: model.norm.weight"));
    assert_non_null(strstr(msg, "unexpected tensors: model.layers.0.self_attn.q_norm.weight, "
                                "rotary.cache"));
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* legitimate buffers are not extra: rotary inv_freq (old Llama files) */
    cp = copy_set(&m.tensors, NULL, NULL);
    copy_add(&cp, &m.tensors.items[0], "model.layers.2.self_attn.rotary_emb.inv_freq");
    copy_to_set(&cp, &set);
    xf_model_weights mw;
    bind_ok(&mw, &c, &set, false);
    xf_model_unbind(&mw);
    xf_tensor_set_free(&set);
    copy_free(&cp);
    xf_hf_close(&m);
}

static void test_bind_wrong_shape_and_dtype(void **state)
{
    fixture *f = *state;
    xf_random_model_spec s = spec_for("qwen2", true, 1, true);
    xf_hf_model m;
    xf_model_config c;
    open_random(f, "shape", &s, &m, &c);
    char msg[XF_ERROR_MSG_MAX];
    xf_tensor_set set;

    set_copy cp = copy_set(&m.tensors, NULL, NULL);
    for (size_t i = 0; i < cp.n; i++)
        if (strcmp(cp.items[i].name, "model.layers.1.self_attn.k_proj.weight") == 0) {
            cp.items[i].shape[0] = 32; /* a full-attention k_proj where GQA expects 16 rows */
        }
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_string_equal(msg, "model: tensor model.layers.1.self_attn.k_proj.weight: expected "
                             "shape [16, 32], got [32, 32]");
    xf_tensor_set_free(&set);
    copy_free(&cp);

    cp = copy_set(&m.tensors, NULL, NULL);
    for (size_t i = 0; i < cp.n; i++)
        if (strcmp(cp.items[i].name, "model.layers.0.self_attn.v_proj.bias") == 0)
            cp.items[i].ndim = 2, cp.items[i].shape[1] = 1;
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_non_null(strstr(msg, "model.layers.0.self_attn.v_proj.bias: expected shape [16], "
                                "got [16, 1]"));
    xf_tensor_set_free(&set);
    copy_free(&cp);

    cp = copy_set(&m.tensors, NULL, NULL);
    for (size_t i = 0; i < cp.n; i++)
        if (strcmp(cp.items[i].name, "model.norm.weight") == 0)
            cp.items[i].dtype = XF_DTYPE_I16;
    copy_to_set(&cp, &set);
    bind_fails(&c, &set, false, msg);
    assert_non_null(strstr(msg, "model.norm.weight: dtype I16"));
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* tied, but a copy of the head is stored anyway: accepted, head = embedding */
    cp = copy_set(&m.tensors, NULL, NULL);
    copy_add(&cp, xf_tensor_set_find(&m.tensors, "model.embed_tokens.weight"), "lm_head.weight");
    copy_to_set(&cp, &set);
    xf_model_weights mw;
    bind_ok(&mw, &c, &set, false);
    assert_ptr_equal(mw.lm_head.w, mw.tok_embed);
    assert_string_equal(mw.tok_embed->name, "model.embed_tokens.weight");
    xf_model_unbind(&mw);
    xf_tensor_set_free(&set);
    copy_free(&cp);
    xf_hf_close(&m);
}

static void test_bind_gpt2_opt_variants(void **state)
{
    fixture *f = *state;
    char msg[XF_ERROR_MSG_MAX];
    xf_tensor_set set;
    xf_model_weights mw;

    /* GPT-2 without the "transformer." prefix (the original hub files), plus masked_bias */
    xf_random_model_spec s = spec_for("gpt2", true, 1, false);
    xf_hf_model m;
    xf_model_config c;
    open_random(f, "g", &s, &m, &c);
    set_copy cp = copy_set(&m.tensors, NULL, "transformer.");
    copy_add(&cp, &m.tensors.items[0], "h.1.attn.masked_bias");
    copy_to_set(&cp, &set);
    bind_ok(&mw, &c, &set, true);
    assert_string_equal(mw.layers[1].lin[XF_LIN_Q].w->name, "h.1.attn.c_attn.weight");
    assert_string_equal(mw.pos_embed->name, "wpe.weight");
    assert_true(mw.layers[1].lin[XF_LIN_Q].transposed);
    xf_model_unbind(&mw);
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* HF GPT-2 files bound as if [out, in] (.xfq convention) fail naming c_attn */
    bind_fails(&c, &m.tensors, false, msg);
    assert_non_null(strstr(msg, "transformer.h.0.attn.c_attn.weight: expected shape [96, 32], "
                                "got [32, 96]"));

    /* .xfq convention: weights transposed to [out, in] bind with transposed = false */
    cp = copy_set(&m.tensors, NULL, NULL);
    for (size_t i = 0; i < cp.n; i++)
        if (strstr(cp.items[i].name, ".weight") && cp.items[i].ndim == 2 &&
            !strstr(cp.items[i].name, "wte") && !strstr(cp.items[i].name, "wpe")) {
            int64_t t = cp.items[i].shape[0];
            cp.items[i].shape[0] = cp.items[i].shape[1];
            cp.items[i].shape[1] = t;
        }
    copy_to_set(&cp, &set);
    bind_ok(&mw, &c, &set, false);
    assert_false(mw.layers[0].lin[XF_LIN_UP].transposed);
    assert_int_equal(mw.layers[0].lin[XF_LIN_UP].w->shape[0], 4 * 32);
    xf_model_unbind(&mw);
    xf_tensor_set_free(&set);
    copy_free(&cp);
    xf_hf_close(&m);

    /* OPT saved from OPTModel: "decoder.*" without "model." */
    s = spec_for("opt", true, 2, true);
    open_random(f, "o", &s, &m, &c);
    cp = copy_set(&m.tensors, NULL, "model.");
    copy_to_set(&cp, &set);
    bind_ok(&mw, &c, &set, false);
    assert_string_equal(mw.layers[0].lin[XF_LIN_O].w->name,
                        "decoder.layers.0.self_attn.out_proj.weight");
    assert_ptr_equal(mw.lm_head.w, mw.tok_embed);
    xf_model_unbind(&mw);
    xf_tensor_set_free(&set);
    copy_free(&cp);

    /* post-LN OPT: no final LayerNorm expected; a stored one would be unexpected */
    c.norm_before = false;
    bind_fails(&c, &m.tensors, false, msg);
    assert_non_null(strstr(msg, "unexpected tensors for opt: model.decoder.final_layer_norm.bias, "
                                "model.decoder.final_layer_norm.weight"));
    cp = copy_set(&m.tensors, "model.decoder.final_layer_norm", NULL);
    copy_to_set(&cp, &set);
    bind_ok(&mw, &c, &set, false);
    assert_null(mw.final_norm.w);
    xf_model_unbind(&mw);
    xf_tensor_set_free(&set);
    copy_free(&cp);
    xf_hf_close(&m);
}

static void test_weight_names(void **state)
{
    (void)state;
    xf_model_config c = {.family = XF_FAMILY_LLAMA, .n_layers = 4};
    char buf[128];
    assert_int_equal(xf_linear_weight_name(&c, 3, XF_LIN_Q, buf, sizeof buf), 0);
    assert_string_equal(buf, "model.layers.3.self_attn.q_proj.weight");
    assert_int_equal(xf_linear_weight_name(&c, 0, XF_LIN_GATE, buf, sizeof buf), 0);
    assert_string_equal(buf, "model.layers.0.mlp.gate_proj.weight");
    assert_int_equal(xf_linear_weight_name(&c, 0, XF_LIN_DOWN, buf, 10), -1);
    assert_int_equal(xf_linear_weight_name(&c, 4, XF_LIN_Q, buf, sizeof buf), -1);
    c.family = XF_FAMILY_OPT;
    assert_int_equal(xf_linear_weight_name(&c, 1, XF_LIN_O, buf, sizeof buf), 0);
    assert_string_equal(buf, "model.decoder.layers.1.self_attn.out_proj.weight");
    assert_int_equal(xf_linear_weight_name(&c, 1, XF_LIN_DOWN, buf, sizeof buf), 0);
    assert_string_equal(buf, "model.decoder.layers.1.fc2.weight");
    assert_int_equal(xf_linear_weight_name(&c, 1, XF_LIN_GATE, buf, sizeof buf), -1);
    c.family = XF_FAMILY_GPT2;
    assert_int_equal(xf_linear_weight_name(&c, 2, XF_LIN_Q, buf, sizeof buf), 0);
    assert_string_equal(buf, "transformer.h.2.attn.c_attn.weight");
    assert_int_equal(xf_linear_weight_name(&c, 2, XF_LIN_DOWN, buf, sizeof buf), 0);
    assert_string_equal(buf, "transformer.h.2.mlp.c_proj.weight");
    assert_int_equal(xf_linear_weight_name(&c, 2, XF_LIN_K, buf, sizeof buf), -1);
    assert_string_equal(xf_linear_role_name(XF_LIN_Q), "q");
    assert_string_equal(xf_linear_role_name(XF_LIN_GATE), "gate");
    assert_string_equal(xf_linear_role_name(XF_LIN_DOWN), "down");
}

/* ---- directories ---- */

static void open_fails(const char *path, const char *needle)
{
    xf_hf_model m;
    xf_error err = {{0}};
    assert_int_equal(xf_hf_open(&m, path, &err), -1);
    if (!strstr(err.msg, needle))
        print_message("message \"%s\" lacks \"%s\"\n", err.msg, needle);
    assert_non_null(strstr(err.msg, needle));
    assert_null(m.shards);
    assert_null(m.config);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void test_open_errors(void **state)
{
    fixture *f = *state;
    char msg[4200];

    xf_random_model_spec s = spec_for("llama", true, 2, false);
    char *dir = write_model(f, "broken", &s);
    char *cfg = join(dir, "config.json");
    {
        char *d2 = join(f->tmp, "noconfig");
        xf_random_model_spec s2 = spec_for("gpt2", true, 1, false);
        char *m2 = xf_random_model_write(d2, &s2);
        assert_non_null(m2);
        char *c2 = join(d2, "config.json");
        remove(c2);
        snprintf(msg, sizeof msg, "%s: no config.json", d2);
        open_fails(d2, msg);
        /* config present, no weights */
        char *w2 = join(d2, "model.safetensors");
        rename(w2, c2); /* not JSON: a parse error naming config.json */
        open_fails(d2, "config.json: invalid JSON");
        free(xf_test_write_file(d2, "config.json", "{}", 2));
        snprintf(msg, sizeof msg,
                 "%s: no model.safetensors or model.safetensors.index.json (pytorch_model.bin "
                 "is not supported: convert to safetensors)",
                 d2);
        open_fails(d2, msg);
        free(m2);
        free(c2);
        free(w2);
        free(d2);
    }
    open_fails("/nonexistent/model", "no such file");
    open_fails(cfg, "not a model directory or a .safetensors file");

    /* index naming a tensor its shard lacks */
    char *index_path = join(dir, "model.safetensors.index.json");
    xf_error err = {{0}};
    json_t *index = xf_json_load_file(index_path, &err);
    assert_non_null(index);
    json_t *map = json_object_get(index, "weight_map");
    json_object_set_new(map, "model.ghost.weight", json_string("model-00001-of-00002.safetensors"));
    assert_int_equal(json_dump_file(index, index_path, 0), 0);
    open_fails(dir, "tensor \"model.ghost.weight\" is mapped to model-00001-of-00002.safetensors");

    /* a shard tensor absent from the weight_map */
    json_object_del(map, "model.ghost.weight");
    json_object_del(map, "model.norm.weight");
    assert_int_equal(json_dump_file(index, index_path, 0), 0);
    open_fails(dir, "tensor \"model.norm.weight\" of model-0000");
    open_fails(dir, "is not listed in the weight_map");

    /* a shard name that leaves the directory */
    json_object_set_new(map, "model.norm.weight", json_string("../elsewhere.safetensors"));
    assert_int_equal(json_dump_file(index, index_path, 0), 0);
    open_fails(dir, "weight_map[\"model.norm.weight\"] must be the file name of a shard");

    /* a missing shard file */
    json_object_set_new(map, "model.norm.weight", json_string("model-00003-of-00002.safetensors"));
    assert_int_equal(json_dump_file(index, index_path, 0), 0);
    open_fails(dir, "model-00003-of-00002.safetensors");
    json_decref(index);
    free(index_path);
    free(cfg);
    free(dir);
}

static void test_open_safetensors_path(void **state)
{
    fixture *f = *state;
    xf_random_model_spec s = spec_for("opt", false, 2, false);
    char *dir = write_model(f, "sharded", &s);
    char *shard = join(dir, "model-00002-of-00002.safetensors");
    xf_hf_model m;
    open_ok(&m, shard); /* a listed shard opens the whole indexed model */
    assert_int_equal(m.n_shards, 2);
    assert_string_equal(m.dir, dir);
    xf_model_config c;
    parse_model_config(&m, &c);
    xf_model_weights mw;
    bind_ok(&mw, &c, &m.tensors, false);
    xf_model_unbind(&mw);
    size_t n_all = m.tensors.n;
    xf_hf_close(&m);

    /* a .safetensors not in the index: just that file */
    xf_hf_model one;
    open_ok(&one, dir); /* sanity */
    xf_hf_close(&one);
    xf_random_model_spec s1 = spec_for("opt", false, 1, false);
    char *single = write_model(f, "single", &s1);
    char *file = join(single, "model.safetensors");
    open_ok(&m, file);
    assert_int_equal(m.n_shards, 1);
    assert_int_equal(m.tensors.n, n_all);
    xf_hf_close(&m);
    free(file);
    free(single);
    free(shard);
    free(dir);
}

/* ---- shared models ---- */

static void check_shared(const char *path, size_t n_tensors, int64_t n_params, bool tied)
{
    xf_hf_model m;
    open_ok(&m, path);
    assert_int_equal(m.tensors.n, n_tensors);
    int64_t params = 0;
    for (size_t i = 0; i < m.tensors.n; i++)
        params += xf_tensor_numel(&m.tensors.items[i]);
    assert_int_equal(params, n_params);
    assert_non_null(m.tokenizer);
    assert_non_null(m.tokenizer_config);
    xf_model_config c;
    parse_model_config(&m, &c);
    assert_int_equal(c.tie_embeddings, tied);
    xf_model_weights mw;
    bind_ok(&mw, &c, &m.tensors, true);
    if (tied)
        assert_ptr_equal(mw.lm_head.w, mw.tok_embed);
    else
        assert_string_equal(mw.lm_head.w->name, "lm_head.weight");
    assert_int_equal(mw.layers[c.n_layers - 1].lin[XF_LIN_K].out, c.n_kv_heads * c.head_dim);
    assert_int_equal(mw.tok_embed->dtype, XF_DTYPE_F16);
    xf_model_unbind(&mw);
    xf_hf_close(&m);
}

static void test_shared_stories260k(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(dir, "models/stories260K");
    char *d = strdup(dir);
    check_shared(d, 47, 260032, true);
    char *file = join(d, "model.safetensors");
    check_shared(file, 47, 260032, true);
    free(file);
    free(d);
}

static void test_shared_novels5m(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(dir, "models/novels-5m");
    char *d = strdup(dir);
    check_shared(d, 57, 5401856, false);
    char *file = join(d, "model.safetensors");
    check_shared(file, 57, 5401856, false);
    free(file);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_llama),
        cmocka_unit_test(test_config_qwen2_mistral),
        cmocka_unit_test(test_config_opt),
        cmocka_unit_test(test_config_gpt2),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_weight_names),
        cmocka_unit_test_setup_teardown(test_bind_random_models, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_model_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_missing_and_extra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_wrong_shape_and_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_gpt2_opt_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_safetensors_path, setup, teardown),
        cmocka_unit_test(test_shared_stories260k),
        cmocka_unit_test(test_shared_novels5m),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
