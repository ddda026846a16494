/* model/model_edit, quant/transform/input_absmax, quant/transform/smooth: exact per-channel
 * activation smoothing.
 *
 * Exactness: fp32 logits of the smoothed model vs the original within 1e-5
 * relative (max |d| / max |logit|) on random HF models (llama with GQA and
 * F16 storage, qwen2 with q/k/v biases, OPT pre-LN and post-LN, GPT-2 with
 * fused Conv1D c_attn) and on ../shared/models/stories260K when present;
 * freeing the edit restores the original logits bit for bit. The factors
 * against the formula computed here by hand (a qkv channel, a GQA-shared o
 * channel, a down channel); alpha 0 (reader columns normalized to max 1)
 * and alpha 1 (smoothed activation maxima all 1); a planted outlier
 * channel flattened; inexact inputs skipped (GPT-2 down, post-LN qkv/mlp);
 * the edit round trip through the .xfq writer (edited tensors F32,
 * Conv1D transposed on write, the rest untouched); untying a tied head;
 * argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/log.h"
#include "formats/safetensors.h"
#include "model/forward.h"
#include "model/loader.h"
#include "model/model_edit.h"
#include "quant/transform/input_absmax.h"
#include "quant/transform/smooth.h"
#include "pipeline/xfq_out.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

#define EVAL_T 24
#define CALIB_N 4
#define CALIB_T 16
#define EXACT_TOL 1e-5

/* ---- helpers ---------------------------------------------------------------- */

static float *logits_of(const xf_model_weights *mw, const int32_t *tok, int64_t T)
{
    xf_runner r;
    xf_error err = {{0}};
    if (xf_runner_init(&r, mw, T, 0, &err) != 0)
        fail_msg("runner init: %s", err.msg);
    float *lg = malloc((size_t)(T * mw->cfg.vocab) * sizeof *lg);
    assert_non_null(lg);
    if (xf_runner_forward(&r, tok, T, lg, &err) != 0)
        fail_msg("forward: %s", err.msg);
    xf_runner_free(&r);
    return lg;
}

static void open_model(xf_loaded_model *m, const char *path)
{
    xf_error err = {{0}};
    if (xf_model_open(m, path, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
}

/* Writes spec under root/name and opens it. */
static void open_random(xf_loaded_model *m, const char *root, const char *name,
                        const xf_random_model_spec *s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    char *dir = xf_random_model_write(path, s);
    assert_non_null(dir);
    open_model(m, dir);
    free(dir);
}

/* A tensor of m as fp32 (stored layout). */
static float *tensor_f32(const xf_tensor *t)
{
    float *v = malloc((size_t)xf_tensor_numel(t) * sizeof *v);
    assert_non_null(v);
    xf_error err = {{0}};
    if (xf_tensor_to_f32(t, v, &err) != 0)
        fail_msg("%s", err.msg);
    return v;
}

/* W[o, i] of a linear given its stored fp32 values */
static float lin_at(const xf_linear *lin, const float *w, int64_t o, int64_t i)
{
    return lin->transposed ? w[i * lin->out + o] : w[o * lin->in + i];
}

static json_t *string_array_of(const json_t *rec, const char *key)
{
    json_t *a = json_object_get(rec, key);
    assert_non_null(a);
    return a;
}

static bool array_has(const json_t *a, const char *s)
{
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!strcmp(json_string_value(json_array_get(a, i)), s))
            return true;
    return false;
}

/* Smooths m (alpha, mask) on random calibration windows and returns the
 * relative logit difference to the unsmoothed model; checks that freeing
 * the edit restores the original logits exactly. *record (may be NULL)
 * receives the smoothing record. */
static double smooth_delta(xf_loaded_model *m, double alpha, unsigned mask, json_t **record,
                           const char *what)
{
    const xf_model_config *c = &m->cfg;
    int32_t *tok = xf_test_random_tokens(EVAL_T, c->vocab, 7);
    int32_t *cal = xf_test_random_tokens(CALIB_N * CALIB_T, c->vocab, 11);
    float *before = logits_of(&m->weights, tok, EVAL_T);
    xf_model_edit e;
    xf_error err = {{0}};
    if (xf_model_edit_init(&e, m, &err) != 0)
        fail_msg("%s: edit: %s", what, err.msg);
    json_t *rec = NULL;
    if (xf_smooth_model(m, &e, cal, CALIB_N, CALIB_T, alpha, mask, &rec, &err) != 0)
        fail_msg("%s: smooth: %s", what, err.msg);
    assert_non_null(rec);
    float *after = logits_of(&m->weights, tok, EVAL_T);
    double rd = xf_test_rel_diff(after, before, EVAL_T * c->vocab);
    print_message("%s alpha %.2f: smoothed logits differ by %.3g relative (%lld channels, "
                  "factors %.3g..%.3g)\n", what, alpha,
                  rd, (long long)json_integer_value(json_object_get(rec, "channels_smoothed")),
                  json_real_value(json_object_get(rec, "min_factor")),
                  json_real_value(json_object_get(rec, "max_factor")));
    xf_model_edit_free(&e);
    float *restored = logits_of(&m->weights, tok, EVAL_T);
    assert_memory_equal(restored, before, (size_t)(EVAL_T * c->vocab) * sizeof *before);
    free(restored);
    free(after);
    free(before);
    free(cal);
    free(tok);
    if (record)
        *record = rec;
    else
        json_decref(rec);
    return rd;
}

/* ---- exactness -------------------------------------------------------------- */

static void test_exact_random_models(void **state)
{
    (void)state;
    const xf_random_model_spec specs[] = {
        {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2, .heads = 4,
         .kv_heads = 2, .vocab = 64, .max_pos = 32, .f16 = true, .seed = 1},
        {.family = "qwen2", .hidden = 32, .intermediate = 48, .layers = 2, .heads = 4,
         .kv_heads = 1, .vocab = 64, .max_pos = 32, .seed = 3},
        {.family = "mistral", .hidden = 32, .intermediate = 40, .layers = 2, .heads = 2,
         .kv_heads = 1, .head_dim = 24, .vocab = 50, .max_pos = 32, .tied = true, .seed = 2},
        {.family = "opt", .hidden = 32, .layers = 2, .heads = 4, .vocab = 60, .max_pos = 32,
         .tied = true, .f16 = true, .seed = 4},
        {.family = "gpt2", .hidden = 32, .layers = 2, .heads = 4, .vocab = 70, .max_pos = 32,
         .tied = true, .f16 = true, .seed = 5},
    };
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_log_level lvl = xf_log_get_level();
    xf_log_set_level(XF_LOG_QUIET); /* GPT-2's down input is skipped with a warning */
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        xf_loaded_model m;
        open_random(&m, root, specs[k].family, &specs[k]);
        const double alphas[] = {0.5, 0.85};
        for (size_t a = 0; a < 2; a++) {
            json_t *rec;
            double rd = smooth_delta(&m, alphas[a], XF_SMOOTH_INPUTS_DEFAULT, &rec,
                                     specs[k].family);
            if (!(rd < EXACT_TOL))
                fail_msg("%s: smoothed logits differ by %g", specs[k].family, rd);
            const json_t *in = string_array_of(rec, "inputs");
            bool gpt2 = !strcmp(specs[k].family, "gpt2");
            assert_true(array_has(in, "qkv") && array_has(in, "o") && array_has(in, "mlp"));
            assert_int_equal(array_has(in, "down"), !gpt2);
            assert_int_equal(json_object_get(json_object_get(rec, "skipped"), "down") != NULL,
                             gpt2);
            assert_true(json_integer_value(json_object_get(rec, "channels_smoothed")) > 0);
            assert_true(json_real_value(json_object_get(rec, "max_factor")) != 1.0);
            json_decref(rec);
        }
        xf_model_close(&m);
    }
    xf_log_set_level(lvl);
    xf_test_rmtree(root);
    free(root);
}

/* OPT with do_layer_norm_before false (opt-350m style): the random OPT's
 * tensors minus the final LayerNorm (HF builds none post-LN), config
 * flipped. qkv/mlp cannot be smoothed exactly there: skipped, o/down done. */
static void test_exact_opt_post_ln(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "opt", .hidden = 32, .layers = 2, .heads = 4,
                              .vocab = 60, .max_pos = 32, .seed = 9};
    xf_loaded_model pre;
    open_random(&pre, root, "pre", &s);
    xf_tensor *keep = calloc(pre.tensors->n, sizeof *keep);
    assert_non_null(keep);
    size_t n = 0;
    for (size_t i = 0; i < pre.tensors->n; i++)
        if (!strstr(pre.tensors->items[i].name, "decoder.final_layer_norm."))
            keep[n++] = pre.tensors->items[i];
    assert_int_equal(n + 2, pre.tensors->n);
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/post", root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    xf_error err = {{0}};
    if (xf_safetensors_write(path, keep, n, NULL, &err) != 0)
        fail_msg("%s", err.msg);
    json_t *cfg = json_deep_copy(pre.config_json);
    json_object_set_new(cfg, "do_layer_norm_before", json_false());
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(json_dump_file(cfg, path, JSON_SORT_KEYS), 0);
    json_decref(cfg);
    free(keep);
    xf_model_close(&pre);

    xf_loaded_model m;
    open_model(&m, dir);
    assert_false(m.cfg.norm_before);
    xf_log_level lvl = xf_log_get_level();
    xf_log_set_level(XF_LOG_QUIET);
    json_t *rec;
    double rd = smooth_delta(&m, 0.5, XF_SMOOTH_INPUTS_DEFAULT, &rec, "opt post-LN");
    xf_log_set_level(lvl);
    if (!(rd < EXACT_TOL))
        fail_msg("opt post-LN: smoothed logits differ by %g", rd);
    const json_t *in = string_array_of(rec, "inputs"), *sk = json_object_get(rec, "skipped");
    assert_true(array_has(in, "o") && array_has(in, "down"));
    assert_false(array_has(in, "qkv") || array_has(in, "mlp"));
    assert_non_null(json_object_get(sk, "qkv"));
    assert_non_null(json_object_get(sk, "mlp"));
    json_decref(rec);
    xf_model_close(&m);
    xf_test_rmtree(root);
    free(root);
}

static void test_exact_stories260k(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(path, "models/stories260K");
    xf_loaded_model m;
    open_model(&m, path);
    const double alphas[] = {0.5, 0.8};
    for (size_t a = 0; a < 2; a++) {
        double rd = smooth_delta(&m, alphas[a], XF_SMOOTH_INPUTS_DEFAULT, NULL, "stories260K");
        if (!(rd < EXACT_TOL))
            fail_msg("stories260K: smoothed logits differ by %g", rd);
    }
    xf_model_close(&m);
}

/* ---- the factors --------------------------------------------------------------- */

/* Layer 1 of a llama with GQA (4 heads on 2 kv heads): the qkv factor of
 * channel 5 from the norm weight's change, the o factor of v channel
 * (kv head 1, dim 3) from o's columns of q heads 2 and 3, the down factor
 * of channel 9 from down's column, all against the formula. */
static void test_factor_formula(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 32,
                              .f16 = true, .seed = 21};
    xf_loaded_model m;
    open_random(&m, root, "llama", &s);
    const int64_t L = 1, hd = m.cfg.head_dim, H = m.cfg.hidden;
    const double alpha = 0.6;
    const xf_layer_weights *lw = &m.weights.layers[L];
    float *norm0 = tensor_f32(lw->attn_norm.w);
    float *q0 = tensor_f32(lw->lin[XF_LIN_Q].w), *k0 = tensor_f32(lw->lin[XF_LIN_K].w);
    float *v0 = tensor_f32(lw->lin[XF_LIN_V].w), *o0 = tensor_f32(lw->lin[XF_LIN_O].w);
    float *d0 = tensor_f32(lw->lin[XF_LIN_DOWN].w);
    int32_t *cal = xf_test_random_tokens(CALIB_N * CALIB_T, m.cfg.vocab, 11);
    xf_error err = {{0}};
    xf_act_absmax st;
    assert_int_equal(xf_act_absmax_measure(&st, &m.weights, cal, CALIB_N, CALIB_T, &err), 0);
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    if (xf_smooth_apply(&m, &e, &st, alpha, XF_SMOOTH_INPUTS_DEFAULT, NULL, &err) != 0)
        fail_msg("%s", err.msg);
    lw = &m.weights.layers[L];
    assert_int_equal(lw->attn_norm.w->dtype, XF_DTYPE_F32);
    float *norm1 = tensor_f32(lw->attn_norm.w), *o1 = tensor_f32(lw->lin[XF_LIN_O].w);
    float *v1 = tensor_f32(lw->lin[XF_LIN_V].w), *d1 = tensor_f32(lw->lin[XF_LIN_DOWN].w);

    /* qkv channel 5: w = max |q[:, 5]|, |k[:, 5]|, |v[:, 5]| */
    int64_t j = 5;
    double w = 0;
    for (int64_t o = 0; o < m.cfg.n_heads * hd; o++)
        w = fmax(w, fabs(q0[o * H + j]));
    for (int64_t o = 0; o < m.cfg.n_kv_heads * hd; o++)
        w = fmax(w, fmax(fabs(k0[o * H + j]), fabs(v0[o * H + j])));
    double sj = xf_act_absmax_row(&st, L, XF_IN_QKV)[j];
    double f = pow(sj, alpha) / pow(w, 1 - alpha);
    assert_true(fabs((double)norm0[j] / norm1[j] / f - 1) < 1e-6);

    /* o: v channel c = (kv head 1, dim 3) feeds o columns of q heads 2, 3 */
    int64_t d = 3, c = 1 * hd + d, qd = m.cfg.n_heads * hd;
    const float *so = xf_act_absmax_row(&st, L, XF_IN_O);
    double s_o = fmax(so[2 * hd + d], so[3 * hd + d]), w_o = 0;
    for (int64_t o = 0; o < H; o++)
        w_o = fmax(w_o, fmax(fabs(o0[o * qd + 2 * hd + d]), fabs(o0[o * qd + 3 * hd + d])));
    double f_o = pow(s_o, alpha) / pow(w_o, 1 - alpha);
    for (int64_t h = 2; h <= 3; h++)
        for (int64_t o = 0; o < H; o += 7)
            if (o0[o * qd + h * hd + d] != 0)
                assert_true(fabs((double)o1[o * qd + h * hd + d] / o0[o * qd + h * hd + d] / f_o -
                                 1) < 1e-6);
    /* v row c: divided by f_o (and its columns scaled by the qkv factors) */
    {
        double fq0 = pow(xf_act_absmax_row(&st, L, XF_IN_QKV)[0], alpha);
        double wq0 = 0;
        for (int64_t o = 0; o < qd; o++)
            wq0 = fmax(wq0, fabs(q0[o * H]));
        for (int64_t o = 0; o < m.cfg.n_kv_heads * hd; o++)
            wq0 = fmax(wq0, fmax(fabs(k0[o * H]), fabs(v0[o * H])));
        fq0 /= pow(wq0, 1 - alpha);
        assert_true(fabs((double)v1[c * H] / v0[c * H] / (fq0 / f_o) - 1) < 1e-6);
    }

    /* down channel 9 */
    int64_t r = 9, I = m.cfg.intermediate;
    double w_d = 0;
    for (int64_t o = 0; o < H; o++)
        w_d = fmax(w_d, fabs(d0[o * I + r]));
    double f_d = pow(xf_act_absmax_row(&st, L, XF_IN_DOWN)[r], alpha) / pow(w_d, 1 - alpha);
    assert_true(fabs((double)d1[r] / d0[r] / f_d - 1) < 1e-6);

    /* the pure function: guards and clamp */
    bool g, cl;
    assert_true(xf_smooth_factor(0.0, 2.0, 0.5, &g, &cl) == 1.0 && g && !cl);
    assert_true(xf_smooth_factor(3.0, 0.0, 0.5, &g, &cl) == 1.0 && g);
    assert_true(xf_smooth_factor(1e30, 1e-30, 0.5, &g, &cl) == XF_SMOOTH_FACTOR_MAX && cl && !g);
    assert_true(xf_smooth_factor(1e-30, 1e30, 0.5, &g, &cl) == XF_SMOOTH_FACTOR_MIN && cl);
    assert_true(fabs(xf_smooth_factor(4.0, 9.0, 0.5, &g, &cl) - 2.0 / 3.0) < 1e-15);

    free(norm0), free(norm1), free(q0), free(k0), free(v0), free(v1), free(o0), free(o1);
    free(d0), free(d1), free(cal);
    xf_act_absmax_free(&st);
    xf_model_edit_free(&e);
    xf_model_close(&m);
    xf_test_rmtree(root);
    free(root);
}

/* The max over the linears `roles` of layer l of |W[:, j]|, for every j. */
static void reader_colmax(const xf_model_weights *mw, int64_t l, const xf_linear_role *roles,
                          int n, double *w, int64_t in)
{
    memset(w, 0, (size_t)in * sizeof *w);
    for (int k = 0; k < n; k++) {
        const xf_linear *lin = &mw->layers[l].lin[roles[k]];
        float *v = tensor_f32(lin->w);
        for (int64_t o = 0; o < lin->out; o++)
            for (int64_t i = 0; i < in; i++)
                w[i] = fmax(w[i], fabs(lin_at(lin, v, o, i)));
        free(v);
    }
}

/* alpha 0: f = 1 / w, the readers' columns end with max 1; alpha 1: f = s,
 * the smoothed inputs end with abs-max 1 per channel (o: per GQA group). */
static void test_alpha_edges(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 32,
                              .seed = 31};
    xf_loaded_model m;
    open_random(&m, root, "llama", &s);
    const xf_model_config *c = &m.cfg;
    int32_t *cal = xf_test_random_tokens(CALIB_N * CALIB_T, c->vocab, 11);
    xf_error err = {{0}};

    /* alpha 0 on qkv and down (neither's readers are another input's producer) */
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    unsigned mask = (1u << XF_IN_QKV) | (1u << XF_IN_DOWN);
    if (xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 0.0, mask, NULL, &err) != 0)
        fail_msg("%s", err.msg);
    double *w = malloc((size_t)c->intermediate * sizeof *w);
    assert_non_null(w);
    const xf_linear_role qkv[3] = {XF_LIN_Q, XF_LIN_K, XF_LIN_V}, down = XF_LIN_DOWN;
    for (int64_t l = 0; l < c->n_layers; l++) {
        reader_colmax(&m.weights, l, qkv, 3, w, c->hidden);
        for (int64_t j = 0; j < c->hidden; j++)
            assert_true(fabs(w[j] - 1.0) < 1e-6);
        reader_colmax(&m.weights, l, &down, 1, w, c->intermediate);
        for (int64_t j = 0; j < c->intermediate; j++)
            assert_true(fabs(w[j] - 1.0) < 1e-6);
    }
    free(w);
    xf_model_edit_free(&e);

    /* alpha 1 on everything */
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    if (xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 1.0, XF_SMOOTH_INPUTS_DEFAULT, NULL,
                        &err) != 0)
        fail_msg("%s", err.msg);
    xf_act_absmax st;
    assert_int_equal(xf_act_absmax_measure(&st, &m.weights, cal, CALIB_N, CALIB_T, &err), 0);
    int64_t hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int in = 0; in < XF_IN_COUNT; in++) {
            const float *sm = xf_act_absmax_row(&st, l, (xf_lin_input)in);
            if (in != XF_IN_O) {
                for (int64_t j = 0; j < st.width[in]; j++)
                    if (!(fabs(sm[j] - 1.0) < 1e-4))
                        fail_msg("alpha 1: layer %lld %s channel %lld max %g", (long long)l,
                                 xf_lin_input_name((xf_lin_input)in), (long long)j, sm[j]);
                continue;
            }
            for (int64_t kv = 0; kv < c->n_kv_heads; kv++)
                for (int64_t d = 0; d < hd; d++) {
                    double g = 0;
                    for (int64_t h = kv * group; h < (kv + 1) * group; h++)
                        g = fmax(g, sm[h * hd + d]);
                    assert_true(fabs(g - 1.0) < 1e-4);
                }
        }
    }
    xf_act_absmax_free(&st);
    xf_model_edit_free(&e);
    free(cal);
    xf_model_close(&m);
    xf_test_rmtree(root);
    free(root);
}

/* ---- flattening --------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* max / median of one layer's per-channel maxima */
static double spread(const xf_act_absmax *st, int64_t l, xf_lin_input in)
{
    int64_t n = st->width[in];
    float *v = malloc((size_t)n * sizeof *v);
    assert_non_null(v);
    memcpy(v, xf_act_absmax_row(st, l, in), (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    double r = v[n - 1] / (double)v[n / 2];
    free(v);
    return r;
}

/* Outlier channels planted through a first edit (norm channel 7 of both
 * norms and up row 11, x40, in every layer); smoothing at alpha 0.5 must
 * cut the max/median ratio of the qkv, mlp and down inputs at least in
 * half, and stay exact. */
static void test_flattens_planted_outlier(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 32,
                              .seed = 41};
    xf_loaded_model m;
    open_random(&m, root, "llama", &s);
    const xf_model_config *c = &m.cfg;
    xf_error err = {{0}};
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    for (int64_t l = 0; l < c->n_layers; l++) {
        const xf_layer_weights *lw = &m.weights.layers[l];
        float *v;
        assert_int_equal(xf_model_edit_f32(&e, lw->attn_norm.w, &v, &err), 0);
        v[7] *= 40;
        assert_int_equal(xf_model_edit_f32(&e, lw->mlp_norm.w, &v, &err), 0);
        v[7] *= 40;
        assert_int_equal(xf_model_edit_f32(&e, lw->lin[XF_LIN_UP].w, &v, &err), 0);
        for (int64_t i = 0; i < c->hidden; i++)
            v[11 * c->hidden + i] *= 40;
    }
    assert_int_equal(xf_model_edit_commit(&e, &err), 0);
    int32_t *cal = xf_test_random_tokens(CALIB_N * CALIB_T, c->vocab, 11);
    int32_t *tok = xf_test_random_tokens(EVAL_T, c->vocab, 7);
    float *ref = logits_of(&m.weights, tok, EVAL_T);
    xf_act_absmax before, after;
    assert_int_equal(xf_act_absmax_measure(&before, &m.weights, cal, CALIB_N, CALIB_T, &err), 0);
    if (xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 0.5, XF_SMOOTH_INPUTS_DEFAULT, NULL,
                        &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(xf_act_absmax_measure(&after, &m.weights, cal, CALIB_N, CALIB_T, &err), 0);
    const xf_lin_input ins[3] = {XF_IN_QKV, XF_IN_MLP, XF_IN_DOWN};
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < 3; k++) {
            double b = spread(&before, l, ins[k]), a = spread(&after, l, ins[k]);
            print_message("layer %lld %s input: max/median %.2f -> %.2f\n", (long long)l,
                          xf_lin_input_name(ins[k]), b, a);
            assert_true(b > 5);
            assert_true(a < b / 2);
        }
    float *lg = logits_of(&m.weights, tok, EVAL_T);
    double rd = xf_test_rel_diff(lg, ref, EVAL_T * c->vocab);
    print_message("planted outliers: smoothed logits differ by %.3g relative\n", rd);
    assert_true(rd < EXACT_TOL);
    free(lg), free(ref), free(tok), free(cal);
    xf_act_absmax_free(&before);
    xf_act_absmax_free(&after);
    xf_model_edit_free(&e);
    xf_model_close(&m);
    xf_test_rmtree(root);
    free(root);
}

/* ---- the edit through the .xfq writer ------------------------------------------ */

static void write_xfq(const xf_loaded_model *m, const char *path)
{
    xf_quant_collector col;
    xf_quant_collector_init(&col);
    json_t *recipe = json_object(), *prov = json_object();
    xf_error err = {{0}};
    if (xf_quant_write_xfq(m, &col, recipe, prov, path, &err) != 0)
        fail_msg("write %s: %s", path, err.msg);
    json_decref(recipe);
    json_decref(prov);
    xf_quant_collector_free(&col);
}

/* GPT-2 (F16, Conv1D stored [in, out]): a LayerNorm weight and a c_attn
 * element edited; the .xfq holds them as F32 (c_attn transposed to
 * [out, in]), unedited non-Conv1D tensors as F16, and reloads with the edited
 * logits bit for bit. Then a smoothed qwen2 written and reloaded keeps
 * the original logits within 1e-5. */
static void test_edit_xfq_round_trip(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "gpt2", .hidden = 32, .layers = 2, .heads = 4,
                              .vocab = 70, .max_pos = 32, .f16 = true, .seed = 51};
    xf_loaded_model m;
    open_random(&m, root, "gpt2", &s);
    int32_t *tok = xf_test_random_tokens(EVAL_T, m.cfg.vocab, 7);
    xf_error err = {{0}};
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    const xf_linear *ca = &m.weights.layers[1].lin[XF_LIN_Q];
    assert_true(ca->transposed);
    float *v;
    assert_int_equal(xf_model_edit_f32(&e, m.weights.layers[0].attn_norm.w, &v, &err), 0);
    for (int64_t j = 0; j < m.cfg.hidden; j++)
        v[j] *= 2;
    float ln0 = v[3];
    assert_int_equal(xf_model_edit_f32(&e, ca->w, &v, &err), 0);
    float *again;
    assert_int_equal(xf_model_edit_f32(&e, ca->w, &again, &err), 0);
    assert_ptr_equal(v, again); /* converted once */
    v[2 * ca->out + 5] += 0.5f; /* W[5, 2], stored [in, out] */
    float w52 = v[2 * ca->out + 5];
    assert_int_equal(xf_model_edit_commit(&e, &err), 0);
    float *edited = logits_of(&m.weights, tok, EVAL_T);
    char xfq[600];
    snprintf(xfq, sizeof xfq, "%s/gpt2.xfq", root);
    write_xfq(&m, xfq);
    xf_model_edit_free(&e);
    xf_model_close(&m);

    xf_loaded_model q;
    open_model(&q, xfq);
    const xf_linear *qa = &q.weights.layers[1].lin[XF_LIN_Q];
    assert_false(qa->transposed);
    assert_int_equal(qa->w->dtype, XF_DTYPE_F32);
    assert_int_equal(qa->w->shape[0], 3 * 32);
    assert_int_equal(qa->w->shape[1], 32);
    assert_true(((const float *)qa->w->data)[5 * 32 + 2] == w52);
    assert_int_equal(q.weights.layers[0].attn_norm.w->dtype, XF_DTYPE_F32);
    assert_true(((const float *)q.weights.layers[0].attn_norm.w->data)[3] == ln0);
    assert_int_equal(q.weights.layers[0].attn_norm.b->dtype, XF_DTYPE_F16);
    assert_int_equal(q.weights.tok_embed->dtype, XF_DTYPE_F16);
    float *reloaded = logits_of(&q.weights, tok, EVAL_T);
    assert_memory_equal(reloaded, edited, (size_t)(EVAL_T * q.cfg.vocab) * sizeof *edited);
    free(reloaded);
    free(edited);
    xf_model_close(&q);
    free(tok);

    /* smoothed qwen2 (biases) through the writer */
    xf_random_model_spec sq = {.family = "qwen2", .hidden = 32, .intermediate = 48,
                               .layers = 2, .heads = 4, .kv_heads = 2, .vocab = 64,
                               .max_pos = 32, .f16 = true, .seed = 52};
    open_random(&m, root, "qwen2", &sq);
    tok = xf_test_random_tokens(EVAL_T, m.cfg.vocab, 7);
    int32_t *cal = xf_test_random_tokens(CALIB_N * CALIB_T, m.cfg.vocab, 11);
    float *ref = logits_of(&m.weights, tok, EVAL_T);
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    if (xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 0.5, XF_SMOOTH_INPUTS_DEFAULT, NULL,
                        &err) != 0)
        fail_msg("%s", err.msg);
    snprintf(xfq, sizeof xfq, "%s/qwen2.xfq", root);
    write_xfq(&m, xfq);
    xf_model_edit_free(&e);
    xf_model_close(&m);
    open_model(&q, xfq);
    assert_int_equal(q.weights.layers[1].lin[XF_LIN_V].b->dtype, XF_DTYPE_F32);
    assert_int_equal(q.weights.layers[1].lin[XF_LIN_K].b->dtype, XF_DTYPE_F16); /* untouched */
    float *lg = logits_of(&q.weights, tok, EVAL_T);
    double rd = xf_test_rel_diff(lg, ref, EVAL_T * q.cfg.vocab);
    print_message("qwen2 smoothed, written and reloaded: logits differ by %.3g relative\n", rd);
    assert_true(rd < EXACT_TOL);
    free(lg), free(ref), free(tok), free(cal);
    xf_model_close(&q);
    xf_test_rmtree(root);
    free(root);
}

/* A tied model given its own head: same logits, the head editable apart
 * from the embedding, written untied to the .xfq; freeing the edit ties
 * it back (binding and config). */
static void test_edit_untie_head(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "mistral", .hidden = 32, .intermediate = 40,
                              .layers = 1, .heads = 4, .kv_heads = 2, .vocab = 50,
                              .max_pos = 32, .tied = true, .f16 = true, .seed = 71};
    xf_loaded_model m;
    open_random(&m, root, "tied", &s);
    const json_t *cfg0 = m.config_json;
    int32_t *tok = xf_test_random_tokens(EVAL_T, m.cfg.vocab, 7);
    float *ref = logits_of(&m.weights, tok, EVAL_T);
    xf_error err = {{0}};
    xf_model_edit e;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    if (xf_model_edit_untie_head(&e, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(xf_model_edit_untie_head(&e, &err), 0); /* already untied: no-op */
    assert_false(m.cfg.tie_embeddings);
    assert_true(m.weights.lm_head.w != m.weights.tok_embed);
    assert_string_equal(m.weights.lm_head.w->name, "lm_head.weight");
    assert_int_equal(m.weights.lm_head.w->dtype, XF_DTYPE_F32);
    assert_true(json_is_false(json_object_get(m.config_json, "tie_word_embeddings")));
    float *lg = logits_of(&m.weights, tok, EVAL_T);
    assert_memory_equal(lg, ref, (size_t)(EVAL_T * m.cfg.vocab) * sizeof *lg);
    free(lg);
    /* the head alone changes: row 3 doubled */
    float *h;
    assert_int_equal(xf_model_edit_f32(&e, m.weights.lm_head.w, &h, &err), 0);
    for (int64_t j = 0; j < m.cfg.hidden; j++)
        h[3 * m.cfg.hidden + j] *= 2;
    assert_int_equal(xf_model_edit_commit(&e, &err), 0);
    assert_int_equal(m.weights.tok_embed->dtype, XF_DTYPE_F16); /* embedding untouched */
    float *edited = logits_of(&m.weights, tok, EVAL_T);
    for (int64_t t = 0; t < EVAL_T; t++)
        assert_true(fabsf(edited[t * m.cfg.vocab + 3] - 2 * ref[t * m.cfg.vocab + 3]) <
                    1e-5f * (1 + fabsf(ref[t * m.cfg.vocab + 3])));
    char xfq[600];
    snprintf(xfq, sizeof xfq, "%s/untied.xfq", root);
    write_xfq(&m, xfq);
    xf_model_edit_free(&e);
    assert_true(m.cfg.tie_embeddings);
    assert_ptr_equal(m.config_json, cfg0);
    assert_ptr_equal(m.weights.lm_head.w, m.weights.tok_embed);
    lg = logits_of(&m.weights, tok, EVAL_T);
    assert_memory_equal(lg, ref, (size_t)(EVAL_T * m.cfg.vocab) * sizeof *lg);
    free(lg);
    xf_model_close(&m);
    xf_loaded_model q;
    open_model(&q, xfq);
    assert_false(q.cfg.tie_embeddings);
    lg = logits_of(&q.weights, tok, EVAL_T);
    assert_memory_equal(lg, edited, (size_t)(EVAL_T * q.cfg.vocab) * sizeof *lg);
    free(lg);
    xf_model_close(&q);
    free(edited), free(ref), free(tok);
    xf_test_rmtree(root);
    free(root);
}

/* ---- errors ------------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    char *root = xf_test_tmpdir();
    assert_non_null(root);
    xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 1,
                              .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 32,
                              .seed = 61};
    xf_loaded_model m, m2;
    open_random(&m, root, "a", &s);
    open_random(&m2, root, "b", &s);
    int32_t *cal = xf_test_random_tokens(CALIB_N * CALIB_T, m.cfg.vocab, 11);
    xf_error err = {{0}};
    xf_model_edit e, e2;
    assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
    assert_int_equal(xf_model_edit_init(&e2, &m2, &err), 0);
    assert_int_equal(xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 1.5, 0xf, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "alpha"));
    assert_int_equal(xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, NAN, 0xf, NULL, &err), -1);
    assert_int_equal(xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 0.5, 0x30, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "mask"));
    assert_int_equal(xf_smooth_model(&m, &e2, cal, CALIB_N, CALIB_T, 0.5, 0xf, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "xf_model_edit"));
    cal[3] = (int32_t)m.cfg.vocab; /* out of range: the measurement fails, naming it */
    assert_int_equal(xf_smooth_model(&m, &e, cal, CALIB_N, CALIB_T, 0.5, 0xf, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "token"));
    xf_tensor ghost = {.name = "model.layers.9.nothing.weight", .dtype = XF_DTYPE_F32};
    float *v;
    assert_int_equal(xf_model_edit_f32(&e, &ghost, &v, &err), -1);
    assert_non_null(strstr(err.msg, "model.layers.9.nothing.weight"));
    assert_null(v);
    xf_model_edit_free(&e);
    xf_model_edit_free(&e); /* idempotent */
    /* closing the model first: the edit then only releases its memory */
    assert_int_equal(xf_model_edit_f32(&e2, m2.weights.layers[0].attn_norm.w, &v, &err), 0);
    xf_model_close(&m2);
    xf_model_edit_free(&e2);
    free(cal);
    xf_model_close(&m);
    xf_test_rmtree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_random_models),
        cmocka_unit_test(test_exact_opt_post_ln),
        cmocka_unit_test(test_exact_stories260k),
        cmocka_unit_test(test_factor_formula),
        cmocka_unit_test(test_alpha_edges),
        cmocka_unit_test(test_flattens_planted_outlier),
        cmocka_unit_test(test_edit_xfq_round_trip),
        cmocka_unit_test(test_edit_untie_head),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
