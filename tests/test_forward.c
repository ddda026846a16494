/* model/forward: logits of small random in-memory models (llama GQA
 * untied/tied, wide heads, MQA, qwen2 biases, OPT pre/post-LN, GPT-2 with
 * Conv1D [in, out] weights) against the naive scalar reference of
 * tests/support/naive_forward.c; GQA == MHA with repeated kv heads;
 * causality; hooks (order, shapes, mutation); streaming == cached layers;
 * several windows at once: the same bytes for any thread count;
 * errors; random HF model directories opened by model/loader (the
 * binder's conventions: prefixes, Conv1D flags, tied heads, F16); the
 * calibration stream (stop, replace readers, resume == rerun per input)
 * and the linear-input table. */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/block_stream.h"
#include "model/forward.h"
#include "model/loader.h"
#include "tests/support/naive_forward.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

/* ---- toy models: F32 tensor views over malloc'd arrays ------------------ */

#define TOY_MAX_TENSORS 256

typedef struct toy {
    xf_model_weights mw;
    xf_tensor tensors[TOY_MAX_TENSORS]; /* stable addresses for the views */
    float *data[TOY_MAX_TENSORS];
    char names[TOY_MAX_TENSORS][64];
    int n;
    uint64_t rng;
} toy;

/* A new tensor [rows, cols] (cols == 0: 1-D [rows]) of mean + std * N(0,1). */
static const xf_tensor *toy_tensor(toy *m, int64_t rows, int64_t cols, float mean, float std)
{
    assert_true(m->n < TOY_MAX_TENSORS);
    int i = m->n++;
    int64_t n = rows * (cols ? cols : 1);
    float *d = malloc((size_t)n * sizeof *d);
    assert_non_null(d);
    for (int64_t j = 0; j < n; j++)
        d[j] = mean + std * xf_test_rand_normal(&m->rng);
    snprintf(m->names[i], sizeof m->names[i], "toy.%d", i);
    xf_tensor *t = &m->tensors[i];
    memset(t, 0, sizeof *t);
    t->name = m->names[i];
    t->dtype = XF_DTYPE_F32;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->data = d;
    t->nbytes = (size_t)n * sizeof *d;
    m->data[i] = d;
    return t;
}

static void toy_linear(toy *m, xf_linear *l, int64_t out, int64_t in, bool bias, bool transposed)
{
    float std = 1.0f / sqrtf((float)in);
    l->w = transposed ? toy_tensor(m, in, out, 0, std) : toy_tensor(m, out, in, 0, std);
    l->b = bias ? toy_tensor(m, out, 0, 0, 0.1f) : NULL;
    l->transposed = transposed;
    l->out = out;
    l->in = in;
}

static void toy_norm(toy *m, xf_norm *nm, int64_t H, bool bias)
{
    nm->w = toy_tensor(m, H, 0, 1.0f, 0.1f);
    nm->b = bias ? toy_tensor(m, H, 0, 0.0f, 0.1f) : NULL;
}

static toy *toy_build(const xf_model_config *c, uint64_t seed)
{
    toy *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->rng = seed;
    m->mw.cfg = *c;
    const int64_t H = c->hidden, I = c->intermediate, hd = c->head_dim;
    const int64_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const bool tr = c->family == XF_FAMILY_GPT2; /* HF Conv1D stores [in, out] */
    m->mw.tok_embed = toy_tensor(m, c->vocab, H, 0, 1.0f);
    if (c->family != XF_FAMILY_LLAMA)
        m->mw.pos_embed = toy_tensor(m, c->max_pos + c->pos_offset, H, 0, 0.5f);
    m->mw.layers = calloc((size_t)c->n_layers, sizeof *m->mw.layers);
    assert_non_null(m->mw.layers);
    for (int l = 0; l < c->n_layers; l++) {
        xf_layer_weights *lw = &m->mw.layers[l];
        toy_norm(m, &lw->attn_norm, H, c->layer_norm);
        toy_norm(m, &lw->mlp_norm, H, c->layer_norm);
        if (c->fused_qkv) {
            toy_linear(m, &lw->lin[XF_LIN_Q], qd + 2 * kvd, H, c->qkv_bias, tr);
        } else {
            toy_linear(m, &lw->lin[XF_LIN_Q], qd, H, c->qkv_bias, tr);
            toy_linear(m, &lw->lin[XF_LIN_K], kvd, H, c->qkv_bias, tr);
            toy_linear(m, &lw->lin[XF_LIN_V], kvd, H, c->qkv_bias, tr);
        }
        toy_linear(m, &lw->lin[XF_LIN_O], H, qd, c->o_bias, tr);
        if (c->family == XF_FAMILY_LLAMA)
            toy_linear(m, &lw->lin[XF_LIN_GATE], I, H, c->mlp_bias, tr);
        toy_linear(m, &lw->lin[XF_LIN_UP], I, H, c->mlp_bias, tr);
        toy_linear(m, &lw->lin[XF_LIN_DOWN], H, I, c->mlp_bias, tr);
    }
    if (c->norm_before)
        toy_norm(m, &m->mw.final_norm, H, c->layer_norm);
    m->mw.lm_head.out = c->vocab;
    m->mw.lm_head.in = H;
    if (c->tie_embeddings)
        m->mw.lm_head.w = m->mw.tok_embed;
    else
        m->mw.lm_head.w = toy_tensor(m, c->vocab, H, 0, 1.0f / sqrtf((float)H));
    return m;
}

static void toy_free(toy *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->data[i]);
    free(m->mw.layers);
    free(m);
}

/* ---- configs ------------------------------------------------------------- */

static xf_model_config cfg_llama(int64_t nh, int64_t nkv, int64_t hd, bool tied)
{
    xf_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.family = XF_FAMILY_LLAMA;
    c.hidden = 32;
    c.intermediate = 48;
    c.n_layers = 2;
    c.n_heads = nh;
    c.n_kv_heads = nkv;
    c.head_dim = hd;
    c.vocab = 61;
    c.max_pos = 64;
    c.norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_embeddings = tied;
    c.norm_before = true;
    c.act = XF_ACT_SILU;
    c.bos_id = c.eos_id = -1;
    return c;
}

static xf_model_config cfg_qwen2(void)
{
    xf_model_config c = cfg_llama(4, 2, 8, false);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    c.qkv_bias = true;
    c.rope_theta = 1000000.0;
    c.norm_eps = 1e-6;
    return c;
}

static xf_model_config cfg_opt(bool pre_ln)
{
    xf_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "opt");
    c.family = XF_FAMILY_OPT;
    c.hidden = 32;
    c.intermediate = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 4;
    c.head_dim = 8;
    c.vocab = 53;
    c.max_pos = 48;
    c.norm_eps = 1e-5;
    c.tie_embeddings = true;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.layer_norm = true;
    c.norm_before = pre_ln;
    c.pos_offset = 2;
    c.act = XF_ACT_RELU;
    c.bos_id = c.eos_id = -1;
    return c;
}

static xf_model_config cfg_gpt2(void)
{
    xf_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "gpt2");
    c.family = XF_FAMILY_GPT2;
    c.hidden = 32;
    c.intermediate = 128;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 4;
    c.head_dim = 8;
    c.vocab = 57;
    c.max_pos = 48;
    c.norm_eps = 1e-5;
    c.tie_embeddings = true;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.layer_norm = true;
    c.norm_before = true;
    c.fused_qkv = true;
    c.act = XF_ACT_GELU_TANH;
    c.bos_id = c.eos_id = -1;
    return c;
}

/* ---- helpers --------------------------------------------------------------- */

static float *runner_logits(const xf_model_weights *mw, const int32_t *tok, int64_t T,
                            size_t cache_bytes)
{
    xf_runner r;
    xf_error err = {{0}};
    if (xf_runner_init(&r, mw, 64, cache_bytes, &err) != 0)
        fail_msg("runner init: %s", err.msg);
    float *lg = malloc((size_t)(T * mw->cfg.vocab) * sizeof *lg);
    assert_non_null(lg);
    if (xf_runner_forward(&r, tok, T, lg, &err) != 0)
        fail_msg("forward: %s", err.msg);
    xf_runner_free(&r);
    return lg;
}

/* Runner logits vs the naive reference at T = 1 and T = 37 (two
 * attention row blocks), within 1e-4 relative. */
static void check_vs_naive(const xf_model_config *c, uint64_t seed)
{
    toy *m = toy_build(c, seed);
    const int64_t Ts[] = {1, 37};
    for (size_t k = 0; k < sizeof Ts / sizeof *Ts; k++) {
        int64_t T = Ts[k];
        int32_t *tok = xf_test_random_tokens(T, c->vocab, seed + 100 + (uint64_t)T);
        float *lg = runner_logits(&m->mw, tok, T, 0);
        float *ref = malloc((size_t)(T * c->vocab) * sizeof *ref);
        assert_non_null(ref);
        xf_error err = {{0}};
        if (xf_naive_forward(&m->mw, tok, T, ref, &err) != 0)
            fail_msg("naive: %s", err.msg);
        double rd = xf_test_rel_diff(lg, ref, T * c->vocab);
        if (!(rd < 1e-4))
            fail_msg("%s T=%lld: relative difference %g to the naive reference", c->model_type,
                     (long long)T, rd);
        /* the logits are not degenerate: they vary across the vocabulary */
        double spread = 0;
        for (int64_t v = 1; v < c->vocab; v++)
            spread = fmax(spread, fabs((double)ref[v] - ref[0]));
        assert_true(spread > 0.1);
        free(tok);
        free(lg);
        free(ref);
    }
    toy_free(m);
}

/* ---- logits vs the naive reference -------------------------------------- */

static void test_llama_gqa_untied(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    check_vs_naive(&c, 1);
}

static void test_llama_tied(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, true);
    check_vs_naive(&c, 2);
}

static void test_llama_wide_heads_mqa(void **state)
{
    (void)state;
    /* head_dim * n_heads (64) != hidden (32), one kv head (MQA) */
    xf_model_config c = cfg_llama(4, 1, 16, false);
    check_vs_naive(&c, 3);
}

static void test_qwen2_qkv_bias(void **state)
{
    (void)state;
    xf_model_config c = cfg_qwen2();
    check_vs_naive(&c, 4);
}

static void test_opt_pre_ln(void **state)
{
    (void)state;
    xf_model_config c = cfg_opt(true);
    check_vs_naive(&c, 5);
}

static void test_opt_post_ln(void **state)
{
    (void)state;
    xf_model_config c = cfg_opt(false);
    check_vs_naive(&c, 6);
}

static void test_gpt2_conv1d(void **state)
{
    (void)state;
    xf_model_config c = cfg_gpt2();
    check_vs_naive(&c, 7);
}

static void test_gelu_erf_activation(void **state)
{
    (void)state;
    xf_model_config c = cfg_gpt2();
    c.act = XF_ACT_GELU;
    check_vs_naive(&c, 8);
}

/* ---- invariances ----------------------------------------------------------- */

/* GQA (4 heads, 2 kv heads) == MHA built by repeating each kv head's k/v
 * rows for the query heads that share it. */
static void test_gqa_equals_repeated_mha(void **state)
{
    (void)state;
    xf_model_config cg = cfg_llama(4, 2, 8, false);
    toy *g = toy_build(&cg, 11);
    xf_model_config cm = cg;
    cm.n_kv_heads = 4;
    toy *m = toy_build(&cm, 11); /* same tensor count and order, so the same values */
    const int64_t H = cg.hidden, hd = cg.head_dim, group = cg.n_heads / cg.n_kv_heads;
    for (int l = 0; l < cg.n_layers; l++) {
        /* copy everything from g, then repeat k/v rows */
        const xf_layer_weights *lg = &g->mw.layers[l];
        xf_layer_weights *lm = &m->mw.layers[l];
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            if (r == XF_LIN_K || r == XF_LIN_V || !lg->lin[r].w)
                continue;
            memcpy((void *)lm->lin[r].w->data, lg->lin[r].w->data, lg->lin[r].w->nbytes);
        }
        memcpy((void *)lm->attn_norm.w->data, lg->attn_norm.w->data, lg->attn_norm.w->nbytes);
        memcpy((void *)lm->mlp_norm.w->data, lg->mlp_norm.w->data, lg->mlp_norm.w->nbytes);
        for (int r = XF_LIN_K; r <= XF_LIN_V; r++) {
            const float *src = lg->lin[r].w->data;
            float *dst = (float *)lm->lin[r].w->data;
            for (int64_t h = 0; h < cm.n_kv_heads; h++)
                memcpy(dst + h * hd * H, src + (h / group) * hd * H,
                       (size_t)(hd * H) * sizeof *dst);
        }
    }
    memcpy((void *)m->mw.tok_embed->data, g->mw.tok_embed->data, g->mw.tok_embed->nbytes);
    memcpy((void *)m->mw.final_norm.w->data, g->mw.final_norm.w->data,
           g->mw.final_norm.w->nbytes);
    memcpy((void *)m->mw.lm_head.w->data, g->mw.lm_head.w->data, g->mw.lm_head.w->nbytes);

    int64_t T = 29;
    int32_t *tok = xf_test_random_tokens(T, cg.vocab, 12);
    float *a = runner_logits(&g->mw, tok, T, 0);
    float *b = runner_logits(&m->mw, tok, T, 0);
    double rd = xf_test_rel_diff(a, b, T * cg.vocab);
    if (!(rd < 1e-5))
        fail_msg("GQA vs repeated MHA: relative difference %g", rd);
    free(a);
    free(b);
    free(tok);
    toy_free(g);
    toy_free(m);
}

/* Changing token t changes no logits before t, and does change row t. */
static void test_causality(void **state)
{
    (void)state;
    const xf_model_config cfgs[] = {cfg_llama(4, 2, 8, false), cfg_opt(false), cfg_gpt2()};
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        const xf_model_config *c = &cfgs[k];
        toy *m = toy_build(c, 20 + k);
        int64_t T = 40, t = 23, V = c->vocab;
        int32_t *tok = xf_test_random_tokens(T, V, 21);
        float *a = runner_logits(&m->mw, tok, T, 0);
        tok[t] = (tok[t] + 7) % (int32_t)V;
        float *b = runner_logits(&m->mw, tok, T, 0);
        double before = xf_test_rel_diff(b, a, t * V);
        double at = xf_test_rel_diff(b + t * V, a + t * V, V);
        if (!(before <= 1e-6))
            fail_msg("%s: logits before the changed token moved by %g", c->model_type, before);
        if (!(at > 1e-3))
            fail_msg("%s: logits at the changed token did not change (%g)", c->model_type, at);
        free(a);
        free(b);
        free(tok);
        toy_free(m);
    }
}

/* xf_runner_forward_windows: the same bytes for 1, 2 and 3 threads and
 * for windows passed one per call or all at once (the evaluator's
 * thread-count invariance rests on it); the rows equal xf_runner_forward's
 * rows from first_row on up to rounding; streamed layers agree too. */
static void test_windows_any_threads(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    toy *m = toy_build(&c, 40);
    const int64_t T = 37, n = 5, first = 11, V = c.vocab, per = (T - first) * V;
    int32_t *tok = xf_test_random_tokens(n * T, V, 41);
    const int saved = omp_get_max_threads();
    xf_error err = {{0}};
    float *out[4];
    const int threads[4] = {1, 1, 2, 3};
    for (int k = 0; k < 4; k++) {
        out[k] = malloc((size_t)(n * per) * sizeof *out[k]);
        assert_non_null(out[k]);
        omp_set_num_threads(threads[k]);
        xf_runner r;
        assert_int_equal(xf_runner_init(&r, &m->mw, T, 0, &err), 0);
        if (k == 0) { /* one window per call */
            for (int64_t w = 0; w < n; w++)
                assert_int_equal(xf_runner_forward_windows(&r, tok + w * T, 1, T, first,
                                                           out[k] + w * per, &err),
                                 0);
        } else {
            assert_int_equal(xf_runner_forward_windows(&r, tok, n, T, first, out[k], &err), 0);
        }
        xf_runner_free(&r);
    }
    omp_set_num_threads(saved);
    for (int k = 1; k < 4; k++)
        if (memcmp(out[0], out[k], (size_t)(n * per) * sizeof(float)) != 0)
            fail_msg("windows with %d threads differ from one at a time", threads[k]);
    float *full = malloc((size_t)(T * V) * sizeof *full);
    assert_non_null(full);
    for (int64_t w = 0; w < n; w++) {
        xf_runner r;
        assert_int_equal(xf_runner_init(&r, &m->mw, T, 0, &err), 0);
        assert_int_equal(xf_runner_forward(&r, tok + w * T, T, full, &err), 0);
        xf_runner_free(&r);
        double rd = xf_test_rel_diff(out[0] + w * per, full + first * V, per);
        if (!(rd < 1e-5))
            fail_msg("window %lld: rows differ from xf_runner_forward by %g", (long long)w, rd);
    }
    xf_runner r;
    assert_int_equal(xf_runner_init(&r, &m->mw, T, 1, &err), 0); /* layers streamed */
    assert_int_equal(xf_runner_forward_windows(&r, tok, n, T, first, out[1], &err), 0);
    xf_runner_free(&r);
    double rd = xf_test_rel_diff(out[1], out[0], n * per);
    if (!(rd < 1e-5))
        fail_msg("streamed layers: windows differ by %g", rd);
    /* a first row outside the window fails */
    assert_int_equal(xf_runner_init(&r, &m->mw, T, 0, &err), 0);
    assert_int_equal(xf_runner_forward_windows(&r, tok, n, T, T, out[1], &err), -1);
    assert_non_null(strstr(err.msg, "from row 37"));
    xf_runner_free(&r);
    for (int k = 0; k < 4; k++)
        free(out[k]);
    free(full);
    free(tok);
    toy_free(m);
}

/* Cached layers and one-layer-at-a-time streaming give the same logits. */
static void test_streaming_equals_cached(void **state)
{
    (void)state;
    xf_model_config c = cfg_qwen2();
    toy *m = toy_build(&c, 30);
    int64_t T = 17;
    int32_t *tok = xf_test_random_tokens(T, c.vocab, 31);
    xf_runner r;
    xf_error err = {{0}};
    assert_int_equal(xf_runner_init(&r, &m->mw, T, 1, &err), 0);
    assert_null(xf_runner_cached_layer(&r, 0));
    float *s = malloc((size_t)(T * c.vocab) * sizeof *s);
    assert_non_null(s);
    assert_int_equal(xf_runner_forward(&r, tok, T, s, &err), 0);
    xf_runner_free(&r);
    float *a = runner_logits(&m->mw, tok, T, 0);
    assert_true(xf_test_rel_diff(s, a, T * c.vocab) == 0.0);
    free(s);
    free(a);
    free(tok);
    toy_free(m);
}

/* ---- hooks ------------------------------------------------------------------ */

typedef struct hook_event {
    int kind; /* 0: linear input, 1: kv */
    int layer;
    int role;
    int64_t a, b, c;
} hook_event;

typedef struct hook_log {
    hook_event ev[64];
    int n;
    int zero_down_layer; /* -1: none */
    int fail_at;         /* event index at which to fail, -1: never */
} hook_log;

static int log_linear(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                      int64_t cols, xf_error *err)
{
    hook_log *lg = user;
    if (lg->n == lg->fail_at)
        return xf_fail(err, "hook: refused");
    assert_true(lg->n < 64);
    lg->ev[lg->n++] = (hook_event){0, layer, (int)role, rows, cols, 0};
    if (role == XF_LIN_DOWN && layer == lg->zero_down_layer)
        memset(x, 0, (size_t)(rows * cols) * sizeof *x);
    return 0;
}

static int log_kv(void *user, int layer, float *k, float *v, int64_t T, int64_t n_kv,
                  int64_t hd, xf_error *err)
{
    hook_log *lg = user;
    (void)k;
    (void)v;
    if (lg->n == lg->fail_at)
        return xf_fail(err, "hook: refused");
    assert_true(lg->n < 64);
    lg->ev[lg->n++] = (hook_event){1, layer, -1, T, n_kv, hd};
    return 0;
}

static void check_hook_sequence(const xf_model_config *c, const xf_linear_role mlp_role)
{
    toy *m = toy_build(c, 40);
    int64_t T = 9;
    int32_t *tok = xf_test_random_tokens(T, c->vocab, 41);
    hook_log lg = {.zero_down_layer = -1, .fail_at = -1};
    xf_forward_hooks hooks = {.user = &lg, .on_linear_input = log_linear, .on_kv = log_kv};
    xf_runner r;
    xf_error err = {{0}};
    assert_int_equal(xf_runner_init(&r, &m->mw, T, 0, &err), 0);
    float *lgts = malloc((size_t)(T * c->vocab) * sizeof *lgts);
    assert_non_null(lgts);
    assert_int_equal(xf_runner_forward_hooked(&r, tok, T, &hooks, lgts, &err), 0);
    const int64_t qd = c->n_heads * c->head_dim;
    assert_int_equal(lg.n, 5 * c->n_layers);
    for (int l = 0; l < c->n_layers; l++) {
        const hook_event *e = &lg.ev[5 * l];
        const hook_event want[5] = {
            {0, l, XF_LIN_Q, T, c->hidden, 0},
            {1, l, -1, T, c->n_kv_heads, c->head_dim},
            {0, l, XF_LIN_O, T, qd, 0},
            {0, l, (int)mlp_role, T, c->hidden, 0},
            {0, l, XF_LIN_DOWN, T, c->intermediate, 0},
        };
        for (int i = 0; i < 5; i++) {
            assert_int_equal(e[i].kind, want[i].kind);
            assert_int_equal(e[i].layer, want[i].layer);
            assert_int_equal(e[i].role, want[i].role);
            assert_int_equal(e[i].a, want[i].a);
            assert_int_equal(e[i].b, want[i].b);
            assert_int_equal(e[i].c, want[i].c);
        }
    }
    /* NULL hooks and NULL members give the plain forward */
    float *plain = malloc((size_t)(T * c->vocab) * sizeof *plain);
    assert_non_null(plain);
    assert_int_equal(xf_runner_forward(&r, tok, T, plain, &err), 0);
    assert_true(xf_test_rel_diff(lgts, plain, T * c->vocab) == 0.0);
    xf_forward_hooks empty = {.user = NULL};
    assert_int_equal(xf_runner_forward_hooked(&r, tok, T, &empty, lgts, &err), 0);
    assert_true(xf_test_rel_diff(lgts, plain, T * c->vocab) == 0.0);
    /* a failing hook aborts with its message, naming the layer */
    lg.n = 0;
    lg.fail_at = 7;
    assert_int_equal(xf_runner_forward_hooked(&r, tok, T, &hooks, lgts, &err), -1);
    assert_non_null(strstr(err.msg, "hook: refused"));
    assert_non_null(strstr(err.msg, "layer 1"));
    free(plain);
    free(lgts);
    xf_runner_free(&r);
    free(tok);
    toy_free(m);
}

static void test_hooks_llama(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    check_hook_sequence(&c, XF_LIN_GATE);
}

static void test_hooks_opt_gpt2(void **state)
{
    (void)state;
    xf_model_config c = cfg_opt(true);
    check_hook_sequence(&c, XF_LIN_UP);
    c = cfg_gpt2();
    check_hook_sequence(&c, XF_LIN_UP);
}

/* A hook zeroing layer 0's DOWN input == zeroed down weights: the MLP adds
 * nothing (but its bias). Also shows the matmul reads x after the hook. */
static void check_zero_down(const xf_model_config *c)
{
    toy *m = toy_build(c, 50);
    int64_t T = 12, H = c->hidden;
    int32_t *tok = xf_test_random_tokens(T, c->vocab, 51);
    xf_error err = {{0}};
    xf_workspace ws;
    xf_dense_layer dl;
    assert_int_equal(xf_workspace_init(&ws, c, T, "toy", &err), 0);
    assert_int_equal(xf_dense_layer_init(&dl, &m->mw, 0, &err), 0);
    float *h1 = malloc((size_t)(T * H) * sizeof *h1), *h2 = malloc((size_t)(T * H) * sizeof *h2);
    float *h0 = malloc((size_t)(T * H) * sizeof *h0);
    assert_true(h1 && h2 && h0);
    assert_int_equal(xf_forward_embed(&ws, &m->mw, tok, T, h0, &err), 0);

    hook_log lg = {.zero_down_layer = 0, .fail_at = -1};
    xf_forward_hooks hooks = {.user = &lg, .on_linear_input = log_linear};
    memcpy(h1, h0, (size_t)(T * H) * sizeof *h0);
    assert_int_equal(xf_forward_layer(&ws, &dl, h1, T, &hooks, &err), 0);

    /* the caller replaces the down weights by zeros (a new malloc'd array) */
    free(dl.w[XF_LIN_DOWN]);
    dl.w[XF_LIN_DOWN] = calloc((size_t)(dl.out[XF_LIN_DOWN] * dl.in[XF_LIN_DOWN]), sizeof(float));
    assert_non_null(dl.w[XF_LIN_DOWN]);
    memcpy(h2, h0, (size_t)(T * H) * sizeof *h0);
    assert_int_equal(xf_forward_layer(&ws, &dl, h2, T, NULL, &err), 0);
    assert_true(xf_test_rel_diff(h1, h2, T * H) == 0.0);
    /* and the layer did something (attention), so the check is not vacuous */
    assert_true(xf_test_rel_diff(h1, h0, T * H) > 1e-3);

    xf_dense_layer_free(&dl);
    xf_workspace_free(&ws);
    free(h0);
    free(h1);
    free(h2);
    free(tok);
    toy_free(m);
}

static void test_hook_zero_down(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    check_zero_down(&c);
    c = cfg_opt(true);
    check_zero_down(&c);
    c = cfg_opt(false);
    check_zero_down(&c);
}

/* Layer-level calls compose to the runner's logits. */
static void test_layer_api_matches_runner(void **state)
{
    (void)state;
    xf_model_config c = cfg_gpt2();
    toy *m = toy_build(&c, 60);
    int64_t T = 21, H = c.hidden, V = c.vocab;
    int32_t *tok = xf_test_random_tokens(T, V, 61);
    xf_error err = {{0}};
    xf_workspace ws;
    xf_dense_head hd;
    assert_int_equal(xf_workspace_init(&ws, &c, 32, "toy", &err), 0);
    assert_int_equal(xf_dense_head_init(&hd, &m->mw, &err), 0);
    float *h = malloc((size_t)(T * H) * sizeof *h), *lg = malloc((size_t)(T * V) * sizeof *lg);
    assert_true(h && lg);
    assert_int_equal(xf_forward_embed(&ws, &m->mw, tok, T, h, &err), 0);
    for (int l = 0; l < c.n_layers; l++) {
        xf_dense_layer dl;
        assert_int_equal(xf_dense_layer_init(&dl, &m->mw, l, &err), 0);
        assert_true(xf_dense_layer_bytes(&m->mw, l) > 0);
        assert_int_equal(xf_forward_layer(&ws, &dl, h, T, NULL, &err), 0);
        xf_dense_layer_free(&dl);
    }
    assert_int_equal(xf_forward_final(&ws, &hd, h, T, lg, &err), 0);
    float *ref = runner_logits(&m->mw, tok, T, 0);
    assert_true(xf_test_rel_diff(lg, ref, T * V) == 0.0);
    free(ref);
    free(h);
    free(lg);
    xf_dense_head_free(&hd);
    xf_workspace_free(&ws);
    free(tok);
    toy_free(m);
}

/* ---- HF directories through the loader and binder ------------------------ */

static void test_hf_random_models(void **state)
{
    (void)state;
    const xf_random_model_spec specs[] = {
        {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2, .heads = 4,
         .kv_heads = 2, .vocab = 64, .max_pos = 32, .f16 = true, .seed = 1},
        {.family = "mistral", .hidden = 32, .intermediate = 40, .layers = 1, .heads = 4,
         .kv_heads = 1, .head_dim = 16, .vocab = 50, .max_pos = 32, .tied = true, .seed = 2},
        {.family = "qwen2", .hidden = 32, .intermediate = 48, .layers = 2, .heads = 4,
         .kv_heads = 2, .vocab = 64, .max_pos = 32, .seed = 3},
        {.family = "opt", .hidden = 32, .layers = 2, .heads = 4, .vocab = 60, .max_pos = 32,
         .tied = true, .f16 = true, .seed = 4},
        {.family = "gpt2", .hidden = 32, .layers = 2, .heads = 4, .vocab = 70, .max_pos = 32,
         .tied = true, .seed = 5},
    };
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", root, specs[k].family);
        char *dir = xf_random_model_write(path, &specs[k]);
        assert_non_null(dir);
        xf_loaded_model m;
        xf_error err = {{0}};
        if (xf_model_open(&m, dir, &err) != 0)
            fail_msg("%s: %s", specs[k].family, err.msg);
        const xf_model_config *c = &m.weights.cfg;
        int64_t T = 20;
        int32_t *tok = xf_test_random_tokens(T, c->vocab, 80 + k);
        float *lg = runner_logits(&m.weights, tok, T, 0);
        float *ref = malloc((size_t)(T * c->vocab) * sizeof *ref);
        assert_non_null(ref);
        if (xf_naive_forward(&m.weights, tok, T, ref, &err) != 0)
            fail_msg("naive %s: %s", specs[k].family, err.msg);
        double rd = xf_test_rel_diff(lg, ref, T * c->vocab);
        if (!(rd < 1e-4))
            fail_msg("%s: relative difference %g to the naive reference", specs[k].family, rd);
        free(ref);
        free(lg);
        free(tok);
        xf_model_close(&m);
        free(dir);
    }
    xf_test_rmtree(root);
    free(root);
}

/* ---- errors -------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    toy *m = toy_build(&c, 70);
    xf_error err = {{0}};
    xf_runner r;
    assert_int_equal(xf_runner_init(&r, &m->mw, 8, 0, &err), 0);
    float *lg = malloc((size_t)(9 * c.vocab) * sizeof *lg);
    assert_non_null(lg);
    int32_t tok[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* T beyond the workspace, T == 0 */
    assert_int_equal(xf_runner_forward(&r, tok, 9, lg, &err), -1);
    assert_non_null(strstr(err.msg, "9 tokens"));
    assert_int_equal(xf_runner_forward(&r, tok, 0, lg, &err), -1);
    /* token ids out of range */
    tok[3] = (int32_t)c.vocab;
    assert_int_equal(xf_runner_forward(&r, tok, 8, lg, &err), -1);
    assert_non_null(strstr(err.msg, "token id"));
    tok[3] = -1;
    assert_int_equal(xf_runner_forward(&r, tok, 8, lg, &err), -1);
    tok[3] = 4;
    assert_int_equal(xf_runner_forward(&r, tok, 8, lg, &err), 0);
    xf_runner_free(&r);
    free(lg);

    /* a weight of the wrong shape is refused, naming the tensor */
    const xf_tensor *q = m->mw.layers[1].lin[XF_LIN_Q].w;
    xf_tensor *qm = (xf_tensor *)q;
    xf_tensor qsave = *qm;
    qm->shape[0] = 16;
    qm->shape[1] = 64;
    xf_dense_layer dl;
    assert_int_equal(xf_dense_layer_init(&dl, &m->mw, 1, &err), -1);
    assert_non_null(strstr(err.msg, q->name));
    assert_int_equal(xf_runner_init(&r, &m->mw, 8, 0, &err), -1);
    *qm = qsave;
    /* a missing role, an unexpected role */
    const xf_tensor *gate = m->mw.layers[0].lin[XF_LIN_GATE].w;
    m->mw.layers[0].lin[XF_LIN_GATE].w = NULL;
    assert_int_equal(xf_dense_layer_init(&dl, &m->mw, 0, &err), -1);
    assert_non_null(strstr(err.msg, "gate"));
    m->mw.layers[0].lin[XF_LIN_GATE].w = gate;
    m->mw.cfg.family = XF_FAMILY_OPT; /* no gate in OPT */
    m->mw.cfg.layer_norm = false;
    assert_int_equal(xf_dense_layer_init(&dl, &m->mw, 0, &err), -1);
    assert_non_null(strstr(err.msg, "unexpected"));
    m->mw.cfg = c;
    /* layer index out of range */
    assert_int_equal(xf_dense_layer_init(&dl, &m->mw, 2, &err), -1);
    /* a swapped-in array of the wrong shape is caught by the layer forward */
    xf_workspace ws;
    assert_int_equal(xf_workspace_init(&ws, &c, 8, "toy", &err), 0);
    assert_int_equal(xf_dense_layer_init(&dl, &m->mw, 0, &err), 0);
    dl.in[XF_LIN_DOWN] = 47;
    float h[8 * 32] = {0};
    assert_int_equal(xf_forward_layer(&ws, &dl, h, 8, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "down"));
    xf_dense_layer_free(&dl);
    xf_workspace_free(&ws);
    /* bad head arithmetic */
    xf_model_config bad = c;
    bad.n_kv_heads = 3;
    assert_int_equal(xf_workspace_init(&ws, &bad, 8, "toy", &err), -1);
    assert_non_null(strstr(err.msg, "kv heads"));
    bad = c;
    bad.head_dim = 7;
    assert_int_equal(xf_workspace_init(&ws, &bad, 8, "toy", &err), -1);
    toy_free(m);
}

/* ---- the calibration stream (model/block_stream.h) ------------------------ */

/* A hook that changes every linear input (rounds it to multiples of 1/8,
 * as an activation quantizer would): the stream must resume from the
 * changed values. With `stop_at` >= 0 it also copies that input of layer
 * `layer` into `copy` and stops the pass (the pre-stream way of capturing
 * one input: rerun the block from its start for each capture). */
typedef struct round_hook {
    int layer;
    int stop_at; /* xf_lin_input, or -1 */
    float *copy;
} round_hook;

static int round_input(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                       int64_t cols, xf_error *err)
{
    (void)err;
    round_hook *r = user;
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = rintf(x[i] * 8.0f) / 8.0f;
    if (r->stop_at >= 0 && layer == r->layer && (int)xf_lin_input_of_role(role) == r->stop_at) {
        memcpy(r->copy, x, (size_t)(rows * cols) * sizeof *x);
        return XF_HOOK_STOP;
    }
    return 0;
}

/* What true-sequential GPTQ does to the readers of an input once it has
 * their Hessian: replace their weights (here: scaled by 0.75). */
static void replace_readers(const xf_model_config *c, xf_dense_layer *dl, xf_lin_input in)
{
    xf_linear_role r[XF_IN_MAX_READERS];
    int n = xf_lin_input_readers(c, in, r);
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < dl->out[r[k]] * dl->in[r[k]]; i++)
            dl->w[r[k]][i] *= 0.75f;
}

/* The stream, stopping at every input and replacing its readers, gives
 * bit for bit the inputs and block outputs of rerunning each block from
 * its start for every input (xf_forward_layer with a stopping hook), with
 * the same replacements: each part runs once instead of once per later
 * input, nothing else changes. The down input, which the stream does not
 * keep, is computed from the kept MLP input with the replaced gate/up
 * (fc1) weights each time it is read and on resuming; reads repeat
 * byte for byte, in any window order. */
static void check_stream_resumes(const xf_model_config *c, uint64_t seed, const char *spill_dir,
                                 xf_stream_keep keep)
{
    toy *m = toy_build(c, seed);
    const int64_t ns = 3, T = 13, H = c->hidden;
    int32_t *tok = xf_test_random_tokens(ns * T, c->vocab, seed + 1);
    xf_error err = {{0}};
    xf_block_stream bs;
    assert_int_equal(xf_block_stream_init(&bs, &m->mw, tok, ns, T, keep, spill_dir, "toy", &err), 0);
    assert_int_equal(bs.h_buf.spilled, spill_dir != NULL);
    xf_workspace ws;
    assert_int_equal(xf_workspace_init(&ws, c, T, "toy", &err), 0);
    float *h_ref = malloc((size_t)(ns * T * H) * sizeof *h_ref);
    float *tmp = malloc((size_t)(T * H) * sizeof *tmp);
    /* besides h, the stream keeps no input wider than q/k/v's, o's and the
     * MLP's: the down input is recomputed from the MLP input */
    int64_t widest = 0;
    for (int in = 0; in < XF_IN_COUNT; in++)
        if (xf_lin_input_width(c, (xf_lin_input)in) > widest)
            widest = xf_lin_input_width(c, (xf_lin_input)in);
    assert_true(c->intermediate > H && widest == c->intermediate);
    if (keep == XF_STREAM_KEEP_ALL)
        assert_int_equal(bs.keep_in, widest);
    else
        assert_int_equal(bs.keep_in, xf_lin_input_width(c, XF_IN_O) > H
                                         ? xf_lin_input_width(c, XF_IN_O)
                                         : H);
    float *x_ref = malloc((size_t)(T * widest) * sizeof *x_ref);
    assert_true(h_ref && tmp && x_ref);
    for (int64_t s = 0; s < ns; s++)
        assert_int_equal(xf_forward_embed(&ws, &m->mw, tok + s * T, T, h_ref + s * T * H, &err), 0);
    round_hook plain = {.stop_at = -1};
    const xf_forward_hooks hooks = {.user = &plain, .on_linear_input = round_input};
    for (int l = 0; l < c->n_layers; l++) {
        xf_dense_layer dl, dl_ref;
        assert_int_equal(xf_dense_layer_init(&dl, &m->mw, l, &err), 0);
        assert_int_equal(xf_dense_layer_init(&dl_ref, &m->mw, l, &err), 0);
        for (int in = 0; in < XF_IN_COUNT; in++) {
            assert_int_equal(xf_block_stream_run(&bs, &dl, xf_layer_point_at(in), &hooks, &err), 0);
            round_hook cap = {.layer = l, .stop_at = in, .copy = x_ref};
            const xf_forward_hooks stop = {.user = &cap, .on_linear_input = round_input};
            for (int64_t s = 0; s < ns; s++) {
                memcpy(tmp, h_ref + s * T * H, (size_t)(T * H) * sizeof *tmp);
                assert_int_equal(xf_forward_layer(&ws, &dl_ref, tmp, T, &stop, &err), XF_HOOK_STOP);
                int64_t cols;
                const float *x;
                assert_int_equal(xf_block_stream_input(&bs, &dl, &hooks, s, &x, &cols, &err), 0);
                assert_non_null(x);
                assert_int_equal(cols, xf_lin_input_width(c, (xf_lin_input)in));
                assert_memory_equal(x, x_ref, (size_t)(T * cols) * sizeof *x);
            }
            /* reading again (the down input: computed again, from the
             * replaced gate/up) gives the same bytes, window by window */
            for (int64_t s = ns - 1; s >= 0; s--) {
                int64_t cols;
                const float *x;
                assert_int_equal(xf_block_stream_input(&bs, &dl, &hooks, s, &x, &cols, &err), 0);
                memcpy(tmp, h_ref + s * T * H, (size_t)(T * H) * sizeof *tmp);
                round_hook cap2 = {.layer = l, .stop_at = in, .copy = x_ref};
                const xf_forward_hooks stop2 = {.user = &cap2, .on_linear_input = round_input};
                assert_int_equal(xf_forward_layer(&ws, &dl_ref, tmp, T, &stop2, &err), XF_HOOK_STOP);
                assert_memory_equal(x, x_ref, (size_t)(T * cols) * sizeof *x);
            }
            replace_readers(c, &dl, (xf_lin_input)in);
            replace_readers(c, &dl_ref, (xf_lin_input)in);
        }
        assert_int_equal(xf_block_stream_run(&bs, &dl, XF_AT_END, &hooks, &err), 0);
        for (int64_t s = 0; s < ns; s++) {
            assert_int_equal(xf_forward_layer(&ws, &dl_ref, h_ref + s * T * H, T, &hooks, &err), 0);
            assert_memory_equal(xf_block_stream_hidden(&bs, s), h_ref + s * T * H,
                                (size_t)(T * H) * sizeof(float));
        }
        xf_dense_layer_free(&dl);
        xf_dense_layer_free(&dl_ref);
    }
    assert_int_equal(bs.layer, c->n_layers);
    free(h_ref);
    free(tmp);
    free(x_ref);
    xf_workspace_free(&ws);
    xf_block_stream_free(&bs);
    free(tok);
    toy_free(m);
}

static void test_stream_resumes(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    check_stream_resumes(&c, 80, NULL, XF_STREAM_KEEP_NARROW);
    /* keeping the down input instead of recomputing it: the same bytes */
    check_stream_resumes(&c, 80, NULL, XF_STREAM_KEEP_ALL);
    /* the same with the states spilled to a file: the same bytes */
    char *dir = xf_test_tmpdir();
    assert_non_null(dir);
    check_stream_resumes(&c, 80, dir, XF_STREAM_KEEP_NARROW);
    check_stream_resumes(&c, 80, dir, XF_STREAM_KEEP_ALL);
    assert_int_equal(xf_test_dir_entries(dir), 0); /* the spill file is gone */
    xf_test_rmtree(dir);
    free(dir);
    c = cfg_qwen2();
    check_stream_resumes(&c, 81, NULL, XF_STREAM_KEEP_NARROW);
    c = cfg_opt(true);
    check_stream_resumes(&c, 82, NULL, XF_STREAM_KEEP_NARROW);
    c = cfg_opt(false);
    check_stream_resumes(&c, 83, NULL, XF_STREAM_KEEP_NARROW);
    c = cfg_gpt2();
    check_stream_resumes(&c, 84, NULL, XF_STREAM_KEEP_NARROW);
    check_stream_resumes(&c, 84, NULL, XF_STREAM_KEEP_ALL);
}

static int stop_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                     int64_t cols, xf_error *err)
{
    (void)user, (void)layer, (void)role, (void)x, (void)rows, (void)cols, (void)err;
    return XF_HOOK_STOP;
}

static void test_stream_errors(void **state)
{
    (void)state;
    xf_model_config c = cfg_llama(4, 2, 8, false);
    toy *m = toy_build(&c, 90);
    const int64_t T = 7;
    int32_t *tok = xf_test_random_tokens(2 * T, c.vocab, 91);
    xf_error err = {{0}};
    xf_block_stream bs, once;
    xf_dense_layer d0, d1;
    int64_t cols, cols2;
    const xf_forward_hooks stop = {.on_linear_input = stop_hook}, stop_early = stop;
    assert_int_equal(xf_dense_layer_init(&d0, &m->mw, 0, &err), 0);
    assert_int_equal(xf_dense_layer_init(&d1, &m->mw, 1, &err), 0);
    assert_int_equal(
        xf_block_stream_init(&bs, &m->mw, tok, 0, T, XF_STREAM_KEEP_NARROW, NULL, "toy", &err), -1);
    assert_non_null(strstr(err.msg, "toy"));
    assert_int_equal(
        xf_block_stream_init(&bs, &m->mw, tok, 2, T, XF_STREAM_KEEP_NARROW, NULL, "toy", &err), 0);
    const float *xa, *xb;
    assert_int_equal(xf_block_stream_input(&bs, &d0, NULL, 0, &xa, &cols, &err), -1);
    assert_non_null(strstr(err.msg, "no linear input"));
    /* not the block in progress */
    assert_int_equal(xf_block_stream_run(&bs, &d1, XF_AT_END, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "block 0"));
    assert_int_equal(xf_block_stream_run(&bs, &d0, XF_AT_MLP, NULL, &err), 0);
    /* never backwards, never in place */
    assert_int_equal(xf_block_stream_run(&bs, &d0, XF_AT_O, NULL, &err), -1);
    assert_int_equal(xf_block_stream_run(&bs, &d0, XF_AT_MLP, NULL, &err), -1);
    /* a copy stands where its source stands, with the same states */
    assert_int_equal(xf_block_stream_copy(&once, &bs, &err), 0);
    assert_int_equal(xf_block_stream_input(&once, &d0, NULL, 1, &xa, &cols, &err), 0);
    assert_int_equal(xf_block_stream_input(&bs, &d0, NULL, 1, &xb, &cols2, &err), 0);
    assert_memory_equal(xa, xb, (size_t)(T * c.hidden) * sizeof(float));
    /* reading needs the block in progress and a window of the stream */
    assert_int_equal(xf_block_stream_input(&bs, &d1, NULL, 0, &xa, &cols, &err), -1);
    assert_non_null(strstr(err.msg, "block 0"));
    assert_int_equal(xf_block_stream_input(&bs, &d0, NULL, 2, &xa, &cols, &err), -1);
    assert_null(xa);
    /* at the down input a copy stands at the MLP input it computes it from */
    assert_int_equal(xf_block_stream_run(&once, &d0, XF_AT_DOWN, NULL, &err), 0);
    assert_int_equal(xf_block_stream_input(&once, &d0, NULL, 1, &xa, &cols, &err), 0);
    assert_int_equal(cols, c.intermediate);
    xf_block_stream copy;
    assert_int_equal(xf_block_stream_copy(&copy, &once, &err), 0);
    assert_int_equal(xf_block_stream_input(&copy, &d0, NULL, 1, &xb, &cols2, &err), 0);
    assert_memory_equal(xa, xb, (size_t)(T * c.intermediate) * sizeof(float));
    /* a down-input hook that fails there fails the read, naming the window */
    assert_int_equal(xf_block_stream_input(&copy, &d0, &stop_early, 1, &xb, &cols2, &err), -1);
    assert_non_null(strstr(err.msg, "window 1"));
    assert_int_equal(xf_block_stream_run(&copy, &d0, XF_AT_END, NULL, &err), 0);
    xf_block_stream_free(&copy);
    assert_int_equal(xf_block_stream_run(&once, &d0, XF_AT_END, NULL, &err), 0);
    assert_int_equal(once.layer, 1);
    xf_block_stream_free(&once);
    /* a hook may not stop a stream: the windows would stand apart */
    assert_int_equal(xf_block_stream_run(&bs, &d0, XF_AT_END, &stop, &err), -1);
    assert_non_null(strstr(err.msg, "stopped"));
    xf_block_stream_free(&bs);
    /* a stream that is not resumable may stop at an input, not resume */
    assert_int_equal(
        xf_block_stream_init(&bs, &m->mw, tok, 2, T, XF_STREAM_KEEP_NONE, NULL, "toy", &err), 0);
    assert_int_equal(xf_block_stream_input(&bs, &d0, NULL, 0, &xa, &cols, &err), -1);
    assert_int_equal(xf_block_stream_run(&bs, &d0, XF_AT_QKV, NULL, &err), 0);
    assert_int_equal(xf_block_stream_input(&bs, &d0, NULL, 0, &xa, &cols, &err), -1);
    assert_non_null(strstr(err.msg, "keeps no pending"));
    assert_int_equal(xf_block_stream_run(&bs, &d0, XF_AT_END, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "resume"));
    xf_block_stream_free(&bs);
    xf_dense_layer_free(&d0);
    xf_dense_layer_free(&d1);
    free(tok);
    toy_free(m);
}

/* model/linear_inputs.h: the one table of inputs and their readers. */
static void test_linear_inputs(void **state)
{
    (void)state;
    xf_linear_role r[XF_IN_MAX_READERS];
    xf_model_config c = cfg_llama(4, 2, 8, false);
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_QKV, r), 3);
    assert_true(r[0] == XF_LIN_Q && r[1] == XF_LIN_K && r[2] == XF_LIN_V);
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_MLP, r), 2);
    assert_true(r[0] == XF_LIN_GATE && r[1] == XF_LIN_UP);
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_O, r), 1);
    assert_int_equal(r[0], XF_LIN_O);
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_DOWN, r), 1);
    assert_int_equal(r[0], XF_LIN_DOWN);
    assert_int_equal(xf_lin_input_width(&c, XF_IN_O), c.n_heads * c.head_dim);
    assert_int_equal(xf_lin_input_width(&c, XF_IN_DOWN), c.intermediate);
    c = cfg_opt(true);
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_QKV, r), 3);
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_MLP, r), 1);
    assert_int_equal(r[0], XF_LIN_UP);
    assert_int_equal(xf_lin_input_hook_role(&c, XF_IN_MLP), XF_LIN_UP);
    c = cfg_gpt2();
    assert_int_equal(xf_lin_input_readers(&c, XF_IN_QKV, r), 1);
    assert_int_equal(r[0], XF_LIN_Q);
    assert_int_equal(xf_lin_input_width(&c, XF_IN_QKV), c.hidden);
    assert_int_equal(xf_lin_input_of_role(XF_LIN_K), XF_IN_QKV);
    assert_int_equal(xf_lin_input_of_role(XF_LIN_GATE), XF_IN_MLP);
    assert_int_equal(xf_lin_input_of_role(XF_LIN_COUNT), XF_IN_COUNT);
    for (int in = 0; in < XF_IN_COUNT; in++) {
        xf_lin_input back;
        assert_int_equal(xf_lin_input_from_name(xf_lin_input_name((xf_lin_input)in), &back), 0);
        assert_int_equal(back, in);
    }
    xf_lin_input none;
    assert_int_equal(xf_lin_input_from_name("gate", &none), -1);
    assert_null(xf_lin_input_name(XF_IN_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_gqa_untied),
        cmocka_unit_test(test_llama_tied),
        cmocka_unit_test(test_llama_wide_heads_mqa),
        cmocka_unit_test(test_qwen2_qkv_bias),
        cmocka_unit_test(test_opt_pre_ln),
        cmocka_unit_test(test_opt_post_ln),
        cmocka_unit_test(test_gpt2_conv1d),
        cmocka_unit_test(test_gelu_erf_activation),
        cmocka_unit_test(test_gqa_equals_repeated_mha),
        cmocka_unit_test(test_causality),
        cmocka_unit_test(test_streaming_equals_cached),
        cmocka_unit_test(test_windows_any_threads),
        cmocka_unit_test(test_hooks_llama),
        cmocka_unit_test(test_hooks_opt_gpt2),
        cmocka_unit_test(test_hook_zero_down),
        cmocka_unit_test(test_layer_api_matches_runner),
        cmocka_unit_test(test_hf_random_models),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_stream_resumes),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_linear_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
