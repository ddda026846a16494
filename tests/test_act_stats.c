/* Activation statistics (calib/act_stats.h, calib/act_capture.h): a planted
 * outlier channel is found with its magnitude and energy share; kurtosis
 * against scalar references (Gaussian 3, uniform 1.8, Laplace 6, two-point
 * 1, a large mean offset that raw power sums would cancel); the top-1%
 * channel count; ties; non-finite values; the JSON shape; and the
 * model-level capture (widths per family, layer 0's q/k/v input against
 * RMSNorm of the embeddings computed here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/act_capture.h"
#include "calib/act_stats.h"
#include "model/loader.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static xf_act_stats make(int64_t cols)
{
    xf_act_stats s;
    xf_error err = {{0}};
    assert_int_equal(xf_act_stats_init(&s, cols, "test", &err), 0);
    return s;
}

/* Pearson kurtosis of v [n] in long double, two passes: the reference. */
static double ref_kurtosis(const float *v, size_t n)
{
    long double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += v[i];
    mean /= (long double)n;
    long double m2 = 0, m4 = 0;
    for (size_t i = 0; i < n; i++) {
        long double d = v[i] - mean;
        m2 += d * d;
        m4 += d * d * d * d;
    }
    m2 /= (long double)n;
    m4 /= (long double)n;
    return (double)(m4 / (m2 * m2));
}

/* Adds x [rows, cols] to s in blocks of uneven size (0 included), as
 * windows of different lengths would arrive. */
static void add_in_blocks(xf_act_stats *s, const float *x, int64_t rows)
{
    static const int64_t sizes[] = {0, 1, 7, 64, 3, 250};
    int64_t t = 0;
    for (size_t i = 0; t < rows; i = (i + 1) % (sizeof sizes / sizeof *sizes)) {
        int64_t b = sizes[i] < rows - t ? sizes[i] : rows - t;
        xf_act_stats_add(s, x + t * s->cols, b);
        t += b;
    }
}

static void test_planted_outlier(void **state)
{
    (void)state;
    const int64_t rows = 1000, cols = 200, planted = 37;
    float *x = malloc((size_t)(rows * cols) * sizeof *x);
    uint64_t rng = 11;
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = xf_test_rand_normal(&rng);
    for (int64_t t = 0; t < rows; t++)
        x[t * cols + planted] *= 50.0f;
    xf_act_stats s = make(cols);
    add_in_blocks(&s, x, rows);
    assert_int_equal(s.rows, rows);
    assert_int_equal(s.n, rows * cols);

    /* the references, straight from x */
    double want_max = 0, energy[200] = {0}, absmax[200] = {0};
    for (int64_t t = 0; t < rows; t++)
        for (int64_t c = 0; c < cols; c++) {
            double v = x[t * cols + c];
            energy[c] += v * v;
            absmax[c] = fmax(absmax[c], fabs(v));
        }
    want_max = absmax[planted];
    xf_act_channel top[5];
    assert_int_equal(xf_act_stats_top(&s, 5, top), 5);
    assert_int_equal(top[0].channel, planted);
    assert_true(top[0].absmax == want_max); /* a max is exact */
    assert_true(xf_act_stats_absmax(&s) == want_max);
    for (int i = 1; i < 5; i++) {
        assert_true(top[i].absmax <= top[i - 1].absmax);
        assert_true(top[i].absmax < 10.0); /* the rest are N(0, 1) */
    }
    /* median of 200: mean of the 100th and 101st largest */
    double sorted[200];
    memcpy(sorted, absmax, sizeof sorted);
    for (int i = 0; i < 200; i++)
        for (int j = i + 1; j < 200; j++)
            if (sorted[j] > sorted[i]) {
                double tmp = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = tmp;
            }
    double med = 0.5 * (sorted[99] + sorted[100]);
    assert_true(fabs(xf_act_stats_median_absmax(&s) - med) == 0.0);
    assert_true(fabs(top[0].ratio_to_median - want_max / med) < 1e-12 * want_max / med);
    assert_true(top[0].ratio_to_median > 30.0);

    /* top 1% of 200 = 2 channels: the planted one and the next by energy */
    double total = 0, e1 = 0, e2 = 0;
    for (int c = 0; c < 200; c++) {
        total += energy[c];
        if (energy[c] > e1) {
            e2 = e1;
            e1 = energy[c];
        } else if (energy[c] > e2) {
            e2 = energy[c];
        }
    }
    double share = xf_act_stats_top_pct_energy_share(&s);
    assert_true(fabs(share - (e1 + e2) / total) < 1e-12);
    /* expected from the distribution: (2500 + ~1) / (2500 + 199) */
    assert_true(fabs(share - 2501.0 / 2699.0) < 0.01);
    xf_act_stats_free(&s);
    free(x);
}

static void test_kurtosis_references(void **state)
{
    (void)state;
    const int64_t rows = 2000, cols = 250;
    const size_t n = (size_t)(rows * cols);
    float *x = malloc(n * sizeof *x);
    uint64_t rng = 5;
    struct {
        const char *name;
        double want, tol;
    } cases[] = {{"gaussian", 3.0, 0.03}, {"uniform", 1.8, 0.01}, {"laplace", 6.0, 0.15},
                 {"two-point", 1.0, 1e-12}, {"gaussian+1000", 3.0, 0.03}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (size_t i = 0; i < n; i++) {
            float u = xf_test_rand_uniform(&rng);
            switch (k) {
            case 0: x[i] = xf_test_rand_normal(&rng); break;
            case 1: x[i] = 2.0f * u - 1.0f; break;
            case 2: { /* inverse CDF of the standard Laplace */
                double p = u - 0.5;
                x[i] = (float)(p < 0 ? log1p(2.0 * p) : -log1p(-2.0 * p));
                break;
            }
            case 3: x[i] = i % 2 ? 1.0f : -1.0f; break;
            default: x[i] = 1000.0f + xf_test_rand_normal(&rng); break;
            }
        }
        xf_act_stats s = make(cols);
        add_in_blocks(&s, x, rows);
        double got = xf_act_stats_kurtosis(&s), ref = ref_kurtosis(x, n);
        if (fabs(got - ref) > 1e-9 * ref || fabs(got - cases[k].want) > cases[k].tol)
            print_message("%s: kurtosis %.12g, reference %.12g, expected %.3g\n", cases[k].name,
                          got, ref, cases[k].want);
        assert_true(fabs(got - ref) <= 1e-9 * ref);
        assert_true(fabs(got - cases[k].want) <= cases[k].tol);
        xf_act_stats_free(&s);
    }
    free(x);
}

static void test_top_pct_count(void **state)
{
    (void)state;
    const int64_t cols[] = {1, 2, 99, 100, 101, 200, 201, 256, 688, 4096, 11008};
    const int64_t want[] = {1, 1, 1, 1, 2, 2, 3, 3, 7, 41, 111};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++)
        assert_int_equal(xf_act_stats_top_pct_channels(cols[i]), want[i]);
    /* equal channels: the share is p / cols */
    xf_act_stats s = make(250);
    float row[250];
    for (int c = 0; c < 250; c++)
        row[c] = c % 2 ? -2.0f : 2.0f;
    for (int t = 0; t < 4; t++)
        xf_act_stats_add(&s, row, 1);
    assert_true(fabs(xf_act_stats_top_pct_energy_share(&s) - 3.0 / 250.0) < 1e-15);
    /* ties by abs-max: lower channel first; median ratio 1 */
    xf_act_channel top[3];
    assert_int_equal(xf_act_stats_top(&s, 3, top), 3);
    assert_int_equal(top[0].channel, 0);
    assert_int_equal(top[1].channel, 1);
    assert_int_equal(top[2].channel, 2);
    assert_true(top[0].ratio_to_median == 1.0);
    /* k larger than the width: all channels */
    xf_act_stats_free(&s);
    s = make(2);
    xf_act_stats_add(&s, (const float[]){1.0f, -3.0f}, 1);
    xf_act_channel all[4];
    assert_int_equal(xf_act_stats_top(&s, 4, all), 2);
    assert_int_equal(all[0].channel, 1);
    assert_true(all[0].absmax == 3.0 && all[1].absmax == 1.0);
    assert_true(all[0].ratio_to_median == 1.5); /* median of {3, 1} = 2 */
    xf_act_stats_free(&s);
}

static void test_nonfinite_and_empty(void **state)
{
    (void)state;
    xf_act_stats s = make(3);
    /* nothing added: no moments, no share */
    assert_true(isnan(xf_act_stats_kurtosis(&s)));
    assert_true(isnan(xf_act_stats_top_pct_energy_share(&s)));
    const float x[] = {1.0f, NAN, -2.0f, INFINITY, 0.5f, -1.0f};
    xf_act_stats_add(&s, x, 2);
    assert_int_equal(s.n_nonfinite, 2);
    assert_int_equal(s.n, 4);
    assert_true(xf_act_stats_absmax(&s) == 2.0);
    assert_true(fabs(s.mean - (1.0 + -2.0 + 0.5 + -1.0) / 4.0) < 1e-15);
    xf_act_stats_free(&s);
    /* all zeros: kurtosis undefined (null in JSON) */
    s = make(4);
    const float z[8] = {0};
    xf_act_stats_add(&s, z, 2);
    assert_true(isnan(xf_act_stats_kurtosis(&s)));
    json_t *j = xf_act_stats_json(&s, 2);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "kurtosis")));
    assert_true(json_is_null(json_object_get(j, "top1pct_energy_share")));
    json_t *t0 = json_array_get(json_object_get(j, "top_channels"), 0);
    assert_true(json_is_null(json_object_get(t0, "ratio_to_median")));
    json_decref(j);
    xf_act_stats_free(&s);
    xf_error err = {{0}};
    assert_int_equal(xf_act_stats_init(&s, 0, "layer 3 qkv input", &err), -1);
    assert_non_null(strstr(err.msg, "layer 3 qkv input"));
}

static void test_json_shape(void **state)
{
    (void)state;
    xf_act_stats s = make(10);
    float x[30];
    for (int i = 0; i < 30; i++)
        x[i] = (float)(i % 10) - 4.5f;
    x[27] = 40.0f;
    xf_act_stats_add(&s, x, 3);
    json_t *j = xf_act_stats_json(&s, 4);
    assert_non_null(j);
    const char *ints[] = {"width", "tokens", "values", "nonfinite", "top1pct_channels"};
    const json_int_t want[] = {10, 3, 30, 0, 1};
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(j, ints[i]);
        assert_true(json_is_integer(v));
        assert_int_equal(json_integer_value(v), want[i]);
    }
    const char *reals[] = {"absmax", "mean", "std", "kurtosis", "median_channel_absmax",
                           "top1pct_energy_share"};
    for (int i = 0; i < 6; i++)
        assert_true(json_is_real(json_object_get(j, reals[i])));
    assert_true(json_real_value(json_object_get(j, "absmax")) == 40.0);
    json_t *top = json_object_get(j, "top_channels");
    assert_int_equal(json_array_size(top), 4);
    json_t *t0 = json_array_get(top, 0);
    assert_int_equal(json_integer_value(json_object_get(t0, "channel")), 7);
    assert_true(json_real_value(json_object_get(t0, "absmax")) == 40.0);
    assert_true(json_is_real(json_object_get(t0, "ratio_to_median")));
    assert_int_equal(json_object_size(j), 12);
    json_decref(j);
    xf_act_stats_free(&s);
}

/* ---- model-level capture ----------------------------------------------- */

static char *g_tmp;

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

static void open_random(xf_loaded_model *m, const char *name, xf_random_model_spec spec)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    char *d = xf_random_model_write(dir, &spec);
    assert_non_null(d);
    xf_error err = {{0}};
    int rc = xf_model_open(m, d, &err);
    if (rc != 0)
        print_message("open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    free(d);
}

static void random_tokens(int32_t *tok, int64_t n, int64_t vocab, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)(xf_test_rand_u64(&seed) % (uint64_t)vocab);
}

/* Element i of an F32 tensor (random models are written in F32). */
static float elem(const xf_tensor *t, int64_t i)
{
    assert_int_equal(t->dtype, XF_DTYPE_F32);
    float v;
    memcpy(&v, (const char *)t->data + i * 4, 4);
    return v;
}

static void test_capture_llama(void **state)
{
    (void)state;
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 48,
                                 .layers = 3, .heads = 4, .kv_heads = 2, .head_dim = 12,
                                 .vocab = 50, .max_pos = 64, .seed = 3};
    xf_loaded_model m;
    open_random(&m, "llama", spec);
    const int64_t ns = 3, T = 16;
    int32_t tok[48];
    random_tokens(tok, ns * T, spec.vocab, 9);
    xf_model_act_stats st;
    xf_error err = {{0}};
    int rc = xf_model_act_stats_collect(&st, &m.weights, tok, ns, T, &err);
    if (rc != 0)
        print_message("collect: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(st.n_layers, 3);
    assert_int_equal(st.windows, ns);
    assert_int_equal(st.tokens, ns * T);
    /* widths: qkv hidden, o = heads * head_dim (48 != hidden), mlp hidden, down intermediate */
    const int64_t widths[XF_IN_COUNT] = {32, 48, 32, 48};
    for (int64_t l = 0; l < 3; l++)
        for (int in = 0; in < XF_IN_COUNT; in++) {
            const xf_act_stats *s = xf_model_act_stats_at(&st, l, in);
            assert_int_equal(s->cols, widths[in]);
            assert_int_equal(s->rows, ns * T);
            assert_true(xf_act_stats_absmax(s) > 0.0);
        }
    assert_string_equal(xf_lin_input_name(XF_IN_DOWN), "down");
    /* layer 0's q/k/v input is RMSNorm(embedding) * w: rebuild it here */
    const xf_layer_weights *lw = &m.weights.layers[0];
    const int64_t H = 32;
    double absmax[32] = {0}, energy[32] = {0};
    for (int64_t t = 0; t < ns * T; t++) {
        double ss = 0;
        for (int64_t c = 0; c < H; c++) {
            double e = elem(m.weights.tok_embed, tok[t] * H + c);
            ss += e * e;
        }
        double inv = 1.0 / sqrt(ss / (double)H + m.cfg.norm_eps);
        for (int64_t c = 0; c < H; c++) {
            double v = elem(m.weights.tok_embed, tok[t] * H + c) * inv * elem(lw->attn_norm.w, c);
            absmax[c] = fmax(absmax[c], fabs(v));
            energy[c] += v * v;
        }
    }
    const xf_act_stats *q = xf_model_act_stats_at(&st, 0, XF_IN_QKV);
    for (int64_t c = 0; c < H; c++) {
        assert_true(fabs(q->ch_absmax[c] - absmax[c]) <= 1e-5 * absmax[c]);
        assert_true(fabs(q->ch_energy[c] - energy[c]) <= 1e-5 * energy[c]);
    }
    xf_model_act_stats_free(&st);
    xf_model_close(&m);
}

/* OPT and GPT-2: the MLP input is fc1 / c_fc's (no gate), and GPT-2's
 * fused c_attn input is the qkv one. */
static void test_capture_opt_gpt2(void **state)
{
    (void)state;
    const char *fam[] = {"opt", "gpt2"};
    for (int f = 0; f < 2; f++) {
        xf_random_model_spec spec = {.family = fam[f], .hidden = 16, .layers = 2, .heads = 2,
                                     .vocab = 40, .max_pos = 32, .seed = 4};
        xf_loaded_model m;
        open_random(&m, fam[f], spec);
        int32_t tok[20];
        random_tokens(tok, 20, spec.vocab, 2);
        xf_model_act_stats st;
        xf_error err = {{0}};
        assert_int_equal(xf_model_act_stats_collect(&st, &m.weights, tok, 2, 10, &err), 0);
        const int64_t widths[XF_IN_COUNT] = {16, 16, 16, 64};
        for (int64_t l = 0; l < 2; l++)
            for (int in = 0; in < XF_IN_COUNT; in++) {
                assert_int_equal(xf_model_act_stats_at(&st, l, in)->cols, widths[in]);
                assert_int_equal(xf_model_act_stats_at(&st, l, in)->rows, 20);
            }
        xf_model_act_stats_free(&st);
        xf_model_close(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_outlier),
        cmocka_unit_test(test_kurtosis_references),
        cmocka_unit_test(test_top_pct_count),
        cmocka_unit_test(test_nonfinite_and_empty),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test_setup_teardown(test_capture_llama, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_opt_gpt2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
