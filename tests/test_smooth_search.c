/* QQQ's searched smoothing (quant/search/smooth_search.h, --smooth search):
 * on a planted case (an outlier activation channel against a weight grid
 * of 4 bits, activations of 8) the search's errors equal a reference
 * computed here by hand for every grid alpha, its pick is their argmin
 * and an interior alpha; the searched smoothing of random models keeps the
 * fp32 logits within 1e-5 (exact in full precision) with the searched
 * alphas recorded; and `--smooth search` through the CLI on stories260K. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "model/forward.h"
#include "model/loader.h"
#include "model/model_edit.h"
#include "quant/search/smooth_search.h"
#include "quant/weights/qweight.h"
#include "quant/weights/rtn.h"
#include "sim/act_quant.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

#define D 16
#define N 256
#define OUT 24

static char *g_tmp;

/* E(alpha) by hand: f_j = s_j^a / w_j^(1-a); X / f per-token 8-bit symmetric;
 * W diag(f) per-channel 4-bit symmetric RTN; squared output error vs X W^T. */
static double reference_error(const float *X, const float *W, const float *s, double alpha)
{
    double w[D] = {0}, f[D];
    for (int o = 0; o < OUT; o++)
        for (int j = 0; j < D; j++)
            w[j] = fmax(w[j], fabs(W[o * D + j]));
    for (int j = 0; j < D; j++)
        f[j] = pow(s[j], alpha) / pow(w[j], 1.0 - alpha);
    static float xs[N * D], ws[OUT * D];
    for (int t = 0; t < N; t++) {
        for (int j = 0; j < D; j++)
            xs[t * D + j] = (float)(X[t * D + j] / f[j]);
        assert_int_equal(xf_act_quant_row(xs + t * D, D, 0, 8, true, 1.0f), 0);
    }
    for (int o = 0; o < OUT; o++)
        for (int j = 0; j < D; j++)
            ws[o * D + j] = (float)(W[o * D + j] * f[j]);
    xf_rtn_params p = {.grid = {.bits = 4, .sym = true, .clip = XF_CLIP_NONE}, .group = -1};
    xf_qweight q;
    xf_error err = {{0}};
    assert_int_equal(xf_rtn_quantize(ws, OUT, D, &p, &q, "ref", &err), 0);
    for (int o = 0; o < OUT; o++)
        xf_qweight_dequantize_row(&q, o, ws + o * D);
    xf_qweight_free(&q);
    double e = 0;
    for (int t = 0; t < N; t++)
        for (int o = 0; o < OUT; o++) {
            double y = 0, yq = 0;
            for (int j = 0; j < D; j++) {
                y += (double)X[t * D + j] * W[o * D + j];
                yq += (double)xs[t * D + j] * ws[o * D + j];
            }
            e += (yq - y) * (yq - y);
        }
    return e;
}

static void test_planted_case(void **state)
{
    (void)state;
    /* a llama layer's qkv input, 16 channels, one reader of 24 rows */
    xf_model_config cfg = {0};
    cfg.family = XF_FAMILY_LLAMA;
    cfg.hidden = D;
    cfg.intermediate = 32;
    cfg.n_heads = 2;
    cfg.n_kv_heads = 1;
    cfg.head_dim = 8;
    cfg.norm_before = true;
    static float X[N * D], W[OUT * D];
    float s[D] = {0};
    uint64_t rs = 7;
    for (int t = 0; t < N; t++)
        for (int j = 0; j < D; j++) {
            /* channel 3 carries outliers 40x the others, channel 11 is quiet */
            float scale = j == 3 ? 40.0f : j == 11 ? 0.05f : 1.0f;
            X[t * D + j] = scale * xf_test_rand_normal(&rs);
            s[j] = fmaxf(s[j], fabsf(X[t * D + j]));
        }
    for (int k = 0; k < OUT * D; k++)
        W[k] = 0.1f * xf_test_rand_normal(&rs);
    const float *Wp[1] = {W};
    const int64_t out[1] = {OUT};
    xf_act_scheme act;
    xf_act_scheme_default(&act);
    act.act_bits = 8; /* per token, symmetric, every input */
    const xf_grid_config grid = {.bits = 4, .sym = true, .clip = XF_CLIP_NONE};
    double e[XF_SMOOTH_SEARCH_GRID];
    int best = -1;
    xf_error err = {{0}};
    assert_int_equal(xf_smooth_search_input(&cfg, XF_IN_QKV, X, N, Wp, out, 1, s, &act, &grid, -1,
                                            e, &best, &err),
                     0);
    int want = 0;
    for (int k = 0; k < XF_SMOOTH_SEARCH_GRID; k++) {
        const double ref = reference_error(X, W, s, xf_smooth_search_alpha(k));
        if (fabs(e[k] - ref) > 1e-3 * ref)
            fail_msg("alpha %.2f: error %.6g, reference %.6g", xf_smooth_search_alpha(k), e[k],
                     ref);
        if (ref < reference_error(X, W, s, xf_smooth_search_alpha(want)))
            want = k;
    }
    print_message("planted: best alpha %.2f (error %.4g; 0.05: %.4g, 0.95: %.4g)\n",
                  xf_smooth_search_alpha(best), e[best], e[0], e[XF_SMOOTH_SEARCH_GRID - 1]);
    assert_int_equal(best, want);
    /* the planted outlier makes neither edge best: the search has work to do */
    assert_true(best > 0 && best < XF_SMOOTH_SEARCH_GRID - 1);
    assert_true(e[best] < 0.9 * e[0] && e[best] < 0.9 * e[XF_SMOOTH_SEARCH_GRID - 1]);
}

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

static void test_exact_random_models(void **state)
{
    (void)state;
    const xf_random_model_spec specs[] = {
        {.family = "llama", .hidden = 32, .intermediate = 48, .layers = 2, .heads = 4,
         .kv_heads = 2, .vocab = 64, .max_pos = 32, .f16 = true, .seed = 1},
        {.family = "opt", .hidden = 32, .layers = 2, .heads = 4, .vocab = 60, .max_pos = 32,
         .tied = true, .seed = 4},
    };
    xf_log_level lvl = xf_log_get_level();
    xf_log_set_level(XF_LOG_QUIET);
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", g_tmp, specs[k].family);
        char *dir = xf_random_model_write(path, &specs[k]);
        assert_non_null(dir);
        xf_loaded_model m;
        xf_error err = {{0}};
        assert_int_equal(xf_model_open(&m, dir, &err), 0);
        free(dir);
        int32_t *cal = xf_test_random_tokens(6 * 16, m.cfg.vocab, 3);
        int32_t *tok = xf_test_random_tokens(24, m.cfg.vocab, 9);
        float *before = logits_of(&m.weights, tok, 24);
        xf_model_edit e;
        assert_int_equal(xf_model_edit_init(&e, &m, &err), 0);
        xf_act_scheme act;
        xf_act_scheme_default(&act);
        act.act_bits = 8;
        const xf_grid_config grid = {.bits = 4, .sym = true, .clip = XF_CLIP_NONE};
        json_t *rec = NULL;
        if (xf_smooth_search_model(&m, &e, cal, 6, 16, &act, &grid, -1, XF_IN_ALL, &rec,
                                   &err) != 0)
            fail_msg("%s: %s", specs[k].family, err.msg);
        float *after = logits_of(&m.weights, tok, 24);
        const double rd = xf_test_rel_diff(after, before, 24 * m.cfg.vocab);
        if (!(rd < 1e-5))
            fail_msg("%s: searched smoothing moved the logits by %g", specs[k].family, rd);
        assert_string_equal(json_string_value(json_object_get(rec, "alpha")), "search");
        const json_t *qkv = json_object_get(json_object_get(rec, "alphas"), "qkv");
        assert_int_equal(json_array_size(qkv), m.cfg.n_layers);
        for (size_t l = 0; l < json_array_size(qkv); l++) {
            double a = json_real_value(json_array_get(qkv, l));
            assert_true(a >= 0.05 - 1e-12 && a <= 0.95 + 1e-12);
        }
        json_decref(rec);
        free(after);
        free(before);
        free(tok);
        free(cal);
        xf_model_edit_free(&e);
        xf_model_close(&m);
    }
    xf_log_set_level(lvl);
}

static void test_cli_shared(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_p, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_p);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    xf_cli_result r = xf_cli_run(g_tmp,
                                 "gptq --bits 4 --group -1 --sym --act-bits 8 --smooth search "
                                 "--nsamples 2 --seqlen 32 --calib %s %s %s/q.xfq",
                                 calib, model, g_tmp);
    if (r.code != 0)
        fail_msg("%s", r.err);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "info %s/q.xfq", g_tmp);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"smooth\":\"search\"")); /* the option */
    assert_non_null(strstr(r.out, "\"alphas\":{"));          /* the searched values */
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "gptq --smooth seek --calib %s %s %s/x.xfq", calib, model, g_tmp);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "search or a number"));
    xf_cli_result_free(&r);
}

static int setup(void **state)
{
    (void)state;
    return xf_test_tmpdir_setup(&g_tmp);
}

static int teardown(void **state)
{
    (void)state;
    return xf_test_tmpdir_teardown(&g_tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_case),
        cmocka_unit_test(test_exact_random_models),
        cmocka_unit_test(test_cli_shared),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
