/* export/gguf_ftype.h: the GGML type of each tensor for a llama-quantize
 * file type, against expectations worked out by hand from the rules as
 * docs/export.md ("File types: which GGML type each tensor gets") states
 * them (the derivations are in the comments). The check against
 * llama-quantize itself is the interop suite's tests/interop/gguf_ftype.sh.
 * Also export/gguf_names.h (HF -> GGUF names). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/gguf_ftype.h"
#include "export/gguf_names.h"
#include "formats/ggml_types.h"

/* A llama-shaped model's tensors in the order xfquant's exporter writes
 * them (export/gguf_export.c), F16 2-D and F32 1-D as `export --type f16`
 * writes them. */
typedef struct model {
    xf_gguf_tensor_desc *t;
    char (*names)[64];
    size_t n;
    xf_gguf_model_desc d;
} model;

static void add(model *m, const char *name, int ndim, int64_t ne0, int64_t ne1)
{
    snprintf(m->names[m->n], 64, "%s", name);
    m->t[m->n] = (xf_gguf_tensor_desc){.name = m->names[m->n], .ndim = ndim,
                                       .ne = {ne0, ndim > 1 ? ne1 : 1, 1, 1},
                                       .type = ndim > 1 ? XF_GGML_F16 : XF_GGML_F32};
    m->n++;
}

static model make(xf_gguf_arch arch, int layers, int64_t hidden, int64_t inter, int heads,
                  int kv_heads, int64_t vocab, int tied)
{
    model m = {0};
    const size_t cap = 3 + 9 * (size_t)layers + 4; /* + 4: tests add a few */
    m.t = calloc(cap, sizeof *m.t);
    m.names = calloc(cap, sizeof *m.names);
    assert_non_null(m.t);
    assert_non_null(m.names);
    m.d = (xf_gguf_model_desc){.arch = arch, .n_layer = layers, .n_head = heads,
                               .n_head_kv = kv_heads};
    const int64_t kv = hidden / heads * kv_heads;
    char b[64];
    add(&m, "token_embd.weight", 2, hidden, vocab);
    add(&m, "output_norm.weight", 1, hidden, 1);
    if (!tied)
        add(&m, "output.weight", 2, hidden, vocab);
    for (int l = 0; l < layers; l++) {
#define T(base, nd, a, c) (snprintf(b, sizeof b, "blk.%d." base ".weight", l), add(&m, b, nd, a, c))
        T("attn_norm", 1, hidden, 1);
        T("ffn_norm", 1, hidden, 1);
        T("attn_q", 2, hidden, hidden);
        T("attn_k", 2, hidden, kv);
        T("attn_v", 2, hidden, kv);
        T("ffn_gate", 2, hidden, inter);
        T("attn_output", 2, hidden, hidden);
        T("ffn_up", 2, hidden, inter);
        T("ffn_down", 2, inter, hidden);
#undef T
    }
    return m;
}

static void drop(model *m)
{
    free(m->t);
    free(m->names);
}

static uint32_t *plan(const model *m, xf_gguf_ftype ft)
{
    uint32_t *types = calloc(m->n, sizeof *types);
    xf_error err = {{0}};
    assert_non_null(types);
    if (xf_gguf_ftype_plan(ft, &m->d, m->t, m->n, types, &err) != 0)
        fail_msg("plan %s: %s", xf_gguf_ftype_name(ft), err.msg);
    return types;
}

static uint32_t type_of(const model *m, const uint32_t *types, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name))
            return types[i];
    fail_msg("no tensor %s", name);
    return 0;
}

static uint32_t layer_type(const model *m, const uint32_t *types, int l, const char *base)
{
    char b[64];
    snprintf(b, sizeof b, "blk.%d.%s.weight", l, base);
    return type_of(m, types, b);
}

static void expect(const model *m, const uint32_t *types, const char *name, uint32_t want)
{
    const uint32_t got = type_of(m, types, name);
    if (got != want)
        fail_msg("%s: %s, expected %s", name, xf_ggml_type_name(got), xf_ggml_type_name(want));
}

static void expect_layer(const model *m, const uint32_t *types, int l, const char *base,
                         uint32_t want)
{
    char b[64];
    snprintf(b, sizeof b, "blk.%d.%s.weight", l, base);
    expect(m, types, b, want);
}

/* Norms keep F32; attn_q/attn_k/ffn_gate/ffn_up: the default type (no rule
 * for these file types). */
static void expect_plain(const model *m, const uint32_t *types, uint32_t dflt)
{
    expect(m, types, "output_norm.weight", XF_GGML_F32);
    for (int l = 0; l < m->d.n_layer; l++) {
        expect_layer(m, types, l, "attn_norm", XF_GGML_F32);
        expect_layer(m, types, l, "ffn_norm", XF_GGML_F32);
        expect_layer(m, types, l, "attn_q", dflt);
        expect_layer(m, types, l, "attn_k", dflt);
        expect_layer(m, types, l, "ffn_gate", dflt);
        expect_layer(m, types, l, "ffn_up", dflt);
    }
}

/* use_more_bits(i, 32) = i < 4 || i >= 28 || (i - 4) % 3 == 2, listed. */
static const int more_bits_32[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};

static int in_list(int l, const int *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == l)
            return 1;
    return 0;
}

/* Llama-2-7B shape: 32 layers, 4096 wide, MLP 11008 = 43 * 256, no GQA. */
static void test_llama7b_q4_k_m(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 32, 4096, 11008, 32, 32, 32000, 0);
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q4_K_M);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect(&m, t, "token_embd.weight", XF_GGML_Q4_K);
    expect_plain(&m, t, XF_GGML_Q4_K);
    int n6 = 0;
    for (int l = 0; l < 32; l++) {
        const uint32_t want = in_list(l, more_bits_32, 16) ? XF_GGML_Q6_K : XF_GGML_Q4_K;
        expect_layer(&m, t, l, "attn_v", want);
        expect_layer(&m, t, l, "ffn_down", want);
        expect_layer(&m, t, l, "attn_output", XF_GGML_Q4_K);
        n6 += layer_type(&m, t, l, "ffn_down") == XF_GGML_Q6_K;
    }
    assert_int_equal(n6, 16);
    free(t);
    /* Q5_K_M: the same layers get Q6_K, the rest Q5_K */
    t = plan(&m, XF_GGUF_FTYPE_Q5_K_M);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect(&m, t, "token_embd.weight", XF_GGML_Q5_K);
    for (int l = 0; l < 32; l++) {
        const uint32_t want = in_list(l, more_bits_32, 16) ? XF_GGML_Q6_K : XF_GGML_Q5_K;
        expect_layer(&m, t, l, "attn_v", want);
        expect_layer(&m, t, l, "ffn_down", want);
    }
    free(t);
    drop(&m);
}

static void test_llama7b_q3_k(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 32, 4096, 11008, 32, 32, 32000, 0);
    /* Q3_K_M: attn_v Q5_K for the first 2 visited, then Q4_K; attn_output
     * Q4_K; ffn_down Q5_K below 32/16 = 2, then Q4_K (not falcon) */
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q3_K_M);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect(&m, t, "token_embd.weight", XF_GGML_Q3_K);
    expect_plain(&m, t, XF_GGML_Q3_K);
    for (int l = 0; l < 32; l++) {
        expect_layer(&m, t, l, "attn_v", l < 2 ? XF_GGML_Q5_K : XF_GGML_Q4_K);
        expect_layer(&m, t, l, "ffn_down", l < 2 ? XF_GGML_Q5_K : XF_GGML_Q4_K);
        expect_layer(&m, t, l, "attn_output", XF_GGML_Q4_K);
    }
    free(t);
    /* Q3_K_S: no rule but the output's */
    t = plan(&m, XF_GGUF_FTYPE_Q3_K_S);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect_plain(&m, t, XF_GGML_Q3_K);
    for (int l = 0; l < 32; l++) {
        expect_layer(&m, t, l, "attn_v", XF_GGML_Q3_K);
        expect_layer(&m, t, l, "ffn_down", XF_GGML_Q3_K);
        expect_layer(&m, t, l, "attn_output", XF_GGML_Q3_K);
    }
    free(t);
    /* Q3_K_L: attn_v, ffn_down, attn_output all Q5_K */
    t = plan(&m, XF_GGUF_FTYPE_Q3_K_L);
    for (int l = 0; l < 32; l++) {
        expect_layer(&m, t, l, "attn_v", XF_GGML_Q5_K);
        expect_layer(&m, t, l, "ffn_down", XF_GGML_Q5_K);
        expect_layer(&m, t, l, "attn_output", XF_GGML_Q5_K);
    }
    free(t);
    /* Q4_K_S: attn_v Q5_K for the first 4 visited, ffn_down below 32/8 */
    t = plan(&m, XF_GGUF_FTYPE_Q4_K_S);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    for (int l = 0; l < 32; l++) {
        expect_layer(&m, t, l, "attn_v", l < 4 ? XF_GGML_Q5_K : XF_GGML_Q4_K);
        expect_layer(&m, t, l, "ffn_down", l < 4 ? XF_GGML_Q5_K : XF_GGML_Q4_K);
        expect_layer(&m, t, l, "attn_output", XF_GGML_Q4_K);
    }
    free(t);
    drop(&m);
}

static void test_llama7b_other_types(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 32, 4096, 11008, 32, 32, 32000, 0);
    /* Q2_K without GQA: attn_v, ffn_down, attn_output Q3_K */
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q2_K);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect(&m, t, "token_embd.weight", XF_GGML_Q2_K);
    expect_plain(&m, t, XF_GGML_Q2_K);
    expect_layer(&m, t, 7, "attn_v", XF_GGML_Q3_K);
    expect_layer(&m, t, 7, "ffn_down", XF_GGML_Q3_K);
    expect_layer(&m, t, 7, "attn_output", XF_GGML_Q3_K);
    free(t);
    /* Q8_0: the output stays Q8_0 (the rule gives Q6_K only to others) */
    t = plan(&m, XF_GGUF_FTYPE_Q8_0);
    expect(&m, t, "output.weight", XF_GGML_Q8_0);
    expect_layer(&m, t, 31, "ffn_down", XF_GGML_Q8_0);
    free(t);
    /* legacy: everything the default, output Q6_K */
    const xf_gguf_ftype legacy[] = {XF_GGUF_FTYPE_Q4_0, XF_GGUF_FTYPE_Q4_1, XF_GGUF_FTYPE_Q5_0,
                                    XF_GGUF_FTYPE_Q5_1};
    const uint32_t dflt[] = {XF_GGML_Q4_0, XF_GGML_Q4_1, XF_GGML_Q5_0, XF_GGML_Q5_1};
    for (int k = 0; k < 4; k++) {
        t = plan(&m, legacy[k]);
        expect(&m, t, "output.weight", XF_GGML_Q6_K);
        expect(&m, t, "token_embd.weight", dflt[k]);
        expect_plain(&m, t, dflt[k]);
        for (int l = 0; l < 32; l++) {
            expect_layer(&m, t, l, "attn_v", dflt[k]);
            expect_layer(&m, t, l, "ffn_down", dflt[k]);
        }
        free(t);
    }
    /* Q6_K / Q5_K_S: all the default, output Q6_K */
    t = plan(&m, XF_GGUF_FTYPE_Q5_K_S);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect_layer(&m, t, 0, "attn_v", XF_GGML_Q5_K);
    expect_layer(&m, t, 0, "ffn_down", XF_GGML_Q5_K);
    free(t);
    /* IQ4_NL without GQA: ffn_down Q5_K below 32/8 (no imatrix) */
    t = plan(&m, XF_GGUF_FTYPE_IQ4_NL);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect(&m, t, "token_embd.weight", XF_GGML_IQ4_NL);
    for (int l = 0; l < 32; l++) {
        expect_layer(&m, t, l, "ffn_down", l < 4 ? XF_GGML_Q5_K : XF_GGML_IQ4_NL);
        expect_layer(&m, t, l, "attn_v", XF_GGML_IQ4_NL);
    }
    free(t);
    /* with an imatrix: no Q5_K for IQ4_NL; Q4_0's first 4 ffn_down Q4_1 */
    m.d.imatrix = true;
    t = plan(&m, XF_GGUF_FTYPE_IQ4_NL);
    expect_layer(&m, t, 0, "ffn_down", XF_GGML_IQ4_NL);
    free(t);
    t = plan(&m, XF_GGUF_FTYPE_Q4_0);
    for (int l = 0; l < 32; l++)
        expect_layer(&m, t, l, "ffn_down", l < 4 ? XF_GGML_Q4_1 : XF_GGML_Q4_0);
    free(t);
    t = plan(&m, XF_GGUF_FTYPE_Q5_0);
    expect_layer(&m, t, 3, "ffn_down", XF_GGML_Q5_1);
    expect_layer(&m, t, 4, "ffn_down", XF_GGML_Q5_0);
    free(t);
    drop(&m);
}

/* GQA 4 (32 heads, 8 kv heads): Q2_K's attn_v Q4_K; IQ4_XS's attn_v Q5_K. */
static void test_gqa(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 16, 2048, 5632, 32, 8, 32000, 0);
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q2_K);
    expect_layer(&m, t, 5, "attn_v", XF_GGML_Q4_K);
    expect_layer(&m, t, 5, "ffn_down", XF_GGML_Q3_K);
    free(t);
    t = plan(&m, XF_GGUF_FTYPE_IQ4_XS);
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    expect(&m, t, "token_embd.weight", XF_GGML_IQ4_XS);
    /* ffn_down below 16/8 = 2: Q5_K; 5632 = 22 * 256 */
    for (int l = 0; l < 16; l++) {
        expect_layer(&m, t, l, "attn_v", XF_GGML_Q5_K);
        expect_layer(&m, t, l, "ffn_down", l < 2 ? XF_GGML_Q5_K : XF_GGML_IQ4_XS);
    }
    free(t);
    /* GQA 2 is not >= 4: attn_v keeps IQ4_XS */
    m.d.n_head_kv = 16;
    t = plan(&m, XF_GGUF_FTYPE_IQ4_XS);
    expect_layer(&m, t, 5, "attn_v", XF_GGML_IQ4_XS);
    free(t);
    drop(&m);
}

/* 80 layers: llama with GQA and qwen2 are llama.cpp's "70B": attn_v that
 * the mix makes Q3_K or Q4_K becomes Q5_K; llama without GQA (65B) not. */
static void test_70b(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 80, 512, 1536, 8, 1, 512, 0);
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q3_K_S);
    expect_layer(&m, t, 40, "attn_v", XF_GGML_Q5_K);
    expect_layer(&m, t, 40, "attn_q", XF_GGML_Q3_K);
    free(t);
    t = plan(&m, XF_GGUF_FTYPE_Q4_K_M); /* Q6_K layers stay Q6_K, Q4_K ones bump */
    expect_layer(&m, t, 0, "attn_v", XF_GGML_Q6_K);
    expect_layer(&m, t, 11, "attn_v", XF_GGML_Q5_K); /* (11 - 10) % 3 != 2 */
    expect_layer(&m, t, 12, "attn_v", XF_GGML_Q6_K); /* (12 - 10) % 3 == 2 */
    free(t);
    m.d.n_head_kv = 8; /* 65B */
    t = plan(&m, XF_GGUF_FTYPE_Q3_K_S);
    expect_layer(&m, t, 40, "attn_v", XF_GGML_Q3_K);
    free(t);
    m.d.arch = XF_GGUF_ARCH_QWEN2; /* qwen2 80 layers: 70B whatever the heads */
    t = plan(&m, XF_GGUF_FTYPE_Q3_K_S);
    expect_layer(&m, t, 40, "attn_v", XF_GGML_Q5_K);
    free(t);
    drop(&m);
}

/* novels-5m's shape: 256 wide, MLP 688 (= 21.5 * 32), 6 layers. */
static void test_width_688(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 6, 256, 688, 8, 4, 2048, 0);
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q4_K_M);
    /* use_more_bits(i, 6): 6/8 = 0, 42/8 = 5: layers 2 and 5 */
    for (int l = 0; l < 6; l++) {
        const uint32_t hi = l == 2 || l == 5 ? XF_GGML_Q6_K : XF_GGML_Q4_K;
        expect_layer(&m, t, l, "attn_v", hi);
        /* Q6_K -> Q8_0 and Q4_K -> Q5_0 need 32 | 688: F16 */
        expect_layer(&m, t, l, "ffn_down", XF_GGML_F16);
        expect_layer(&m, t, l, "ffn_up", XF_GGML_Q4_K);
    }
    expect(&m, t, "output.weight", XF_GGML_Q6_K);
    free(t);
    t = plan(&m, XF_GGUF_FTYPE_IQ4_XS); /* IQ4_XS -> IQ4_NL needs 32: F16 */
    expect_layer(&m, t, 0, "ffn_down", XF_GGML_F16);
    free(t);
    /* Q4_0 / Q8_0 / IQ4_NL have no fallback: llama-quantize refuses the
     * file at the first such tensor it visits */
    const xf_gguf_ftype refused[] = {XF_GGUF_FTYPE_Q4_0, XF_GGUF_FTYPE_Q8_0,
                                     XF_GGUF_FTYPE_IQ4_NL, XF_GGUF_FTYPE_Q5_1};
    for (int k = 0; k < 4; k++) {
        uint32_t *ty = calloc(m.n, sizeof *ty);
        xf_error err = {{0}};
        assert_int_equal(xf_gguf_ftype_plan(refused[k], &m.d, m.t, m.n, ty, &err), -1);
        assert_non_null(strstr(err.msg, "blk.0.ffn_down.weight"));
        assert_non_null(strstr(err.msg, "688"));
        assert_null(strchr(err.msg, '\n'));
        free(ty);
    }
    drop(&m);
}

/* stories260K's shape: 64 wide, MLP 172, 5 layers, tied embeddings. */
static void test_width_64_tied(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 5, 64, 172, 8, 4, 512, 1);
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q4_K_M);
    /* tied: token_embd gets the output rule: 64 % 256 != 0 -> Q8_0 */
    expect(&m, t, "token_embd.weight", XF_GGML_Q8_0);
    /* use_more_bits(i, 5): 5/8 = 0, 35/8 = 4: layers 2 and 4 -> Q6_K ->
     * Q8_0; the others Q4_K -> Q5_0 (64 = 2 * 32) */
    for (int l = 0; l < 5; l++) {
        expect_layer(&m, t, l, "attn_v", l == 2 || l == 4 ? XF_GGML_Q8_0 : XF_GGML_Q5_0);
        expect_layer(&m, t, l, "attn_q", XF_GGML_Q5_0);
        expect_layer(&m, t, l, "ffn_down", XF_GGML_F16); /* 172: not even 32 */
    }
    free(t);
    t = plan(&m, XF_GGUF_FTYPE_Q3_K_M); /* Q3_K -> Q4_0, Q5_K -> Q5_1 */
    expect_layer(&m, t, 0, "attn_v", XF_GGML_Q5_1);
    expect_layer(&m, t, 2, "attn_v", XF_GGML_Q5_0);
    expect_layer(&m, t, 2, "attn_output", XF_GGML_Q5_0);
    expect_layer(&m, t, 2, "attn_q", XF_GGML_Q4_0);
    free(t);
    /* untied, 48 wide: output.weight is visited first and has no type */
    model w = make(XF_GGUF_ARCH_LLAMA, 2, 48, 256, 4, 4, 512, 0);
    uint32_t *ty = calloc(w.n, sizeof *ty);
    xf_error err = {{0}};
    assert_int_equal(xf_gguf_ftype_plan(XF_GGUF_FTYPE_Q4_K_M, &w.d, w.t, w.n, ty, &err), -1);
    assert_non_null(strstr(err.msg, "output.weight"));
    free(ty);
    drop(&w);
    drop(&m);
}

/* The counters follow llama-quantize's order (layer number, then name),
 * not the caller's: a list in reverse gives the same types. */
static void test_order(void **state)
{
    (void)state;
    assert_true(xf_gguf_quantize_order_cmp("blk.2.attn_v.weight", "blk.10.attn_v.weight") < 0);
    assert_true(xf_gguf_quantize_order_cmp("token_embd.weight", "blk.0.attn_k.weight") < 0);
    assert_true(xf_gguf_quantize_order_cmp("output.weight", "output_norm.weight") < 0);
    assert_true(xf_gguf_quantize_order_cmp("blk.3.ffn_down.weight", "blk.3.attn_v.weight") > 0);
    assert_int_equal(xf_gguf_quantize_order_cmp("blk.3.x", "blk.3.x"), 0);
    model m = make(XF_GGUF_ARCH_LLAMA, 12, 256, 768, 4, 4, 256, 0);
    uint32_t *fwd = plan(&m, XF_GGUF_FTYPE_Q3_K_M);
    model r = m;
    r.t = calloc(m.n, sizeof *r.t);
    assert_non_null(r.t);
    for (size_t i = 0; i < m.n; i++)
        r.t[i] = m.t[m.n - 1 - i];
    uint32_t *rev = plan(&r, XF_GGUF_FTYPE_Q3_K_M);
    for (size_t i = 0; i < m.n; i++)
        assert_int_equal(fwd[i], rev[m.n - 1 - i]);
    expect_layer(&m, fwd, 0, "attn_v", XF_GGML_Q5_K);
    expect_layer(&m, fwd, 1, "attn_v", XF_GGML_Q5_K);
    expect_layer(&m, fwd, 10, "attn_v", XF_GGML_Q4_K);
    free(r.t);
    free(fwd);
    free(rev);
    drop(&m);
}

static void test_plain_and_bad(void **state)
{
    (void)state;
    model m = make(XF_GGUF_ARCH_LLAMA, 2, 256, 512, 4, 4, 256, 0);
    /* a 2-D tensor with one row is 1-D to ggml: kept; a bias is kept; F32
     * 2-D tensors that are quantized do get the rule's type */
    add(&m, "blk.0.attn_q.bias", 1, 256, 1);
    m.t[m.n - 1].type = XF_GGML_F32;
    add(&m, "blk.1.odd.weight", 2, 256, 1);
    m.t[m.n - 1].type = XF_GGML_BF16;
    m.t[0].type = XF_GGML_F32; /* token_embd */
    uint32_t *t = plan(&m, XF_GGUF_FTYPE_Q5_K_M);
    expect(&m, t, "blk.0.attn_q.bias", XF_GGML_F32);
    expect(&m, t, "blk.1.odd.weight", XF_GGML_BF16);
    expect(&m, t, "token_embd.weight", XF_GGML_Q5_K);
    free(t);
    xf_gguf_tensor_desc one = {.name = "blk.0.ffn_norm.weight", .ndim = 2, .ne = {256, 256}};
    assert_false(xf_gguf_tensor_is_quantizable(&one));
    one.name = "position_embd.weight";
    assert_false(xf_gguf_tensor_is_quantizable(&one));
    one.name = "blk.0.attn_v.weight";
    assert_true(xf_gguf_tensor_is_quantizable(&one));
    one.ndim = 3;
    one.ne[2] = 1;
    assert_true(xf_gguf_tensor_is_quantizable(&one));
    /* duplicates and bad descs: one line naming the tensor */
    xf_error err = {{0}};
    uint32_t ty[2];
    xf_gguf_tensor_desc dup[2] = {{.name = "blk.0.attn_v.weight", .ndim = 2, .ne = {256, 256}},
                                  {.name = "blk.0.attn_v.weight", .ndim = 2, .ne = {256, 256}}};
    assert_int_equal(xf_gguf_ftype_plan(XF_GGUF_FTYPE_Q4_K_M, &m.d, dup, 2, ty, &err), -1);
    assert_non_null(strstr(err.msg, "blk.0.attn_v.weight: duplicate"));
    dup[1].name = "blk.0.attn_k.weight";
    dup[1].ndim = 5;
    assert_int_equal(xf_gguf_ftype_plan(XF_GGUF_FTYPE_Q4_K_M, &m.d, dup, 2, ty, &err), -1);
    assert_non_null(strstr(err.msg, "blk.0.attn_k.weight"));
    dup[1].ndim = 2;
    xf_gguf_model_desc bad = m.d;
    bad.n_layer = 0;
    assert_int_equal(xf_gguf_ftype_plan(XF_GGUF_FTYPE_Q4_K_M, &bad, dup, 2, ty, &err), -1);
    assert_int_equal(xf_gguf_ftype_plan(XF_GGUF_FTYPE_COUNT, &m.d, dup, 2, ty, &err), -1);
    drop(&m);
}

static void test_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        xf_gguf_ftype ft;
        uint32_t id, dflt;
    } want[] = {
        {"Q4_0", XF_GGUF_FTYPE_Q4_0, 2, XF_GGML_Q4_0},
        {"Q4_1", XF_GGUF_FTYPE_Q4_1, 3, XF_GGML_Q4_1},
        {"Q5_0", XF_GGUF_FTYPE_Q5_0, 8, XF_GGML_Q5_0},
        {"Q5_1", XF_GGUF_FTYPE_Q5_1, 9, XF_GGML_Q5_1},
        {"Q8_0", XF_GGUF_FTYPE_Q8_0, 7, XF_GGML_Q8_0},
        {"Q2_K", XF_GGUF_FTYPE_Q2_K, 10, XF_GGML_Q2_K},
        {"Q3_K_S", XF_GGUF_FTYPE_Q3_K_S, 11, XF_GGML_Q3_K},
        {"Q3_K_M", XF_GGUF_FTYPE_Q3_K_M, 12, XF_GGML_Q3_K},
        {"Q3_K_L", XF_GGUF_FTYPE_Q3_K_L, 13, XF_GGML_Q3_K},
        {"Q4_K_S", XF_GGUF_FTYPE_Q4_K_S, 14, XF_GGML_Q4_K},
        {"Q4_K_M", XF_GGUF_FTYPE_Q4_K_M, 15, XF_GGML_Q4_K},
        {"Q5_K_S", XF_GGUF_FTYPE_Q5_K_S, 16, XF_GGML_Q5_K},
        {"Q5_K_M", XF_GGUF_FTYPE_Q5_K_M, 17, XF_GGML_Q5_K},
        {"Q6_K", XF_GGUF_FTYPE_Q6_K, 18, XF_GGML_Q6_K},
        {"IQ4_NL", XF_GGUF_FTYPE_IQ4_NL, 25, XF_GGML_IQ4_NL},
        {"IQ4_XS", XF_GGUF_FTYPE_IQ4_XS, 30, XF_GGML_IQ4_XS},
    };
    assert_int_equal(sizeof want / sizeof want[0], XF_GGUF_FTYPE_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        xf_gguf_ftype ft;
        assert_int_equal(xf_gguf_ftype_from_name(want[i].name, &ft), 0);
        assert_int_equal(ft, want[i].ft);
        assert_string_equal(xf_gguf_ftype_name(ft), want[i].name);
        assert_int_equal(xf_gguf_ftype_llama_id(ft), want[i].id);
        assert_int_equal(xf_gguf_ftype_default_type(ft), want[i].dflt);
    }
    xf_gguf_ftype ft;
    assert_int_equal(xf_gguf_ftype_from_name("q4_k_m", &ft), 0);
    assert_int_equal(ft, XF_GGUF_FTYPE_Q4_K_M);
    assert_int_equal(xf_gguf_ftype_from_name("Q4_K", &ft), 0);
    assert_int_equal(ft, XF_GGUF_FTYPE_Q4_K_M);
    assert_int_equal(xf_gguf_ftype_from_name("q3_k", &ft), 0);
    assert_int_equal(ft, XF_GGUF_FTYPE_Q3_K_M);
    const char *unknown[] = {"Q4_K_X", "IQ2_XXS", "Q2_K_S", "F16", "", "Q4_K_M ", "15"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal(xf_gguf_ftype_from_name(unknown[i], &ft), -1);
    assert_int_equal(xf_gguf_ftype_from_name(NULL, &ft), -1);
    assert_string_equal(xf_gguf_ftype_name(XF_GGUF_FTYPE_COUNT), "?");
    xf_gguf_arch a;
    assert_int_equal(xf_gguf_arch_from_name("qwen2", &a), 0);
    assert_int_equal(a, XF_GGUF_ARCH_QWEN2);
    assert_int_equal(xf_gguf_arch_from_name("mistral", &a), -1);
}

static void expect_name(const char *arch, const char *hf, const char *gguf)
{
    char buf[64];
    const int rc = xf_gguf_tensor_name_for_hf(arch, hf, buf, sizeof buf);
    if (!gguf) {
        if (rc == 0)
            fail_msg("%s %s -> %s, expected none", arch, hf, buf);
        return;
    }
    if (rc != 0)
        fail_msg("%s %s: no GGUF name, expected %s", arch, hf, gguf);
    assert_string_equal(buf, gguf);
}

static void test_hf_names(void **state)
{
    (void)state;
    expect_name("llama", "model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight");
    expect_name("llama", "model.layers.12.mlp.down_proj.weight", "blk.12.ffn_down.weight");
    expect_name("llama", "model.layers.0.post_attention_layernorm.weight",
                "blk.0.ffn_norm.weight");
    expect_name("llama", "model.embed_tokens.weight", "token_embd.weight");
    expect_name("llama", "model.norm.weight", "output_norm.weight");
    expect_name("llama", "lm_head.weight", "output.weight");
    expect_name("qwen2", "model.layers.1.self_attn.q_proj.bias", "blk.1.attn_q.bias");
    expect_name("gpt2", "transformer.h.0.attn.c_attn.weight", "blk.0.attn_qkv.weight");
    expect_name("gpt2", "h.5.mlp.c_proj.bias", "blk.5.ffn_down.bias");
    expect_name("gpt2", "wpe.weight", "position_embd.weight");
    expect_name("llama", "model.layers.0.self_attn.rotary_emb.inv_freq", NULL);
    expect_name("llama", "transformer.h.0.attn.c_attn.weight", NULL);
    expect_name("mistral", "model.norm.weight", NULL);
    char small[8];
    assert_int_equal(xf_gguf_tensor_name_for_hf("llama", "model.norm.weight", small, sizeof small),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama7b_q4_k_m), cmocka_unit_test(test_llama7b_q3_k),
        cmocka_unit_test(test_llama7b_other_types), cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_70b), cmocka_unit_test(test_width_688),
        cmocka_unit_test(test_width_64_tied), cmocka_unit_test(test_order),
        cmocka_unit_test(test_plain_and_bad), cmocka_unit_test(test_names),
        cmocka_unit_test(test_hf_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
