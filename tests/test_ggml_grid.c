/* GGML block grids (quant/weights/ggml_grid.h): the values the quantizer uses are
 * exactly what the blocks decode to, by xfquant's ggml decoder and by the
 * tests' own element-by-element decoder (tests/support/ggml_ref.c); header
 * decode round trip; fits no worse than the plain range rule. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/half.h"
#include "formats/ggml_dequant.h"
#include "quant/weights/ggml_grid.h"
#include "quant/weights/gptq.h"
#include "tests/support/ggml_ref.h"

static const uint32_t all_types[] = {XF_GGML_Q4_0, XF_GGML_Q4_1, XF_GGML_Q5_0,  XF_GGML_Q5_1,
                                     XF_GGML_Q8_0, XF_GGML_IQ4_NL, XF_GGML_Q2_K, XF_GGML_Q3_K,
                                     XF_GGML_Q4_K, XF_GGML_Q5_K, XF_GGML_Q6_K, XF_GGML_IQ4_XS};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f;
}
static float nrand(void)
{
    float u = urand() + 1e-7f, v = urand();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* Rows of different character: gaussian, heavy-tailed, all positive, all
 * negative, constant, zeros, tiny, sparse. */
static void fill_row(float *x, int64_t n, int kind)
{
    for (int64_t i = 0; i < n; i++) {
        float g = nrand();
        switch (kind % 8) {
        case 0: x[i] = 0.02f * g; break;
        case 1: x[i] = 0.02f * g * (urand() < 0.02f ? 20.0f : 1.0f); break;
        case 2: x[i] = fabsf(g) + 0.5f; break;
        case 3: x[i] = -fabsf(g) - 0.5f; break;
        case 4: x[i] = 0.37f; break;
        case 5: x[i] = 0.0f; break;
        case 6: x[i] = 1e-6f * g; break;
        default: x[i] = urand() < 0.9f ? 0.0f : g; break;
        }
    }
}

/* For every type and row kind: RTN on the grid; the dequantized values it
 * reports == xf_ggml_dequant of its bytes == the reference decoder's, bit
 * for bit; and the decoded header == the fitted sub-blocks. */
static void test_values_are_ggml_values(void **state)
{
    (void)state;
    const int64_t n = 512;
    float *x = malloc(n * sizeof *x), *imp = malloc(n * sizeof *imp);
    float *dq = malloc(n * sizeof *dq), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint8_t *blk = malloc(n * 2);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const xf_ggml_grid_traits *t = xf_ggml_grid_traits_of(all_types[ti]);
        const xf_ggml_type_traits *gt = xf_ggml_traits(all_types[ti]);
        assert_non_null(t);
        for (int kind = 0; kind < 16; kind++) {
            fill_row(x, n, kind);
            for (int64_t i = 0; i < n; i++)
                imp[i] = kind >= 8 ? 0.1f + urand() : 1.0f;
            const size_t nbytes = xf_ggml_row_bytes(gt, n);
            memset(blk, 0xAB, nbytes);
            xf_ggml_grid_quantize_row(t, x, kind >= 8 ? imp : NULL, n, blk, dq);
            xf_error err = {0};
            assert_int_equal(xf_ggml_dequant(gt, blk, a, n, "t", &err), 0);
            xf_ref_decode(all_types[ti], blk, n, b);
            for (int64_t i = 0; i < n; i++) {
                if (memcmp(&dq[i], &a[i], 4) != 0 || memcmp(&dq[i], &b[i], 4) != 0)
                    fail_msg("%s kind %d element %lld: solver %.9g, ggml_dequant %.9g, ref %.9g",
                             gt->name, kind, (long long)i, dq[i], a[i], b[i]);
                assert_true(isfinite(dq[i]));
            }
            /* header decode == the fit's sub-blocks: re-fit block 0 and compare */
            xf_ggml_sub fit[XF_GGML_GRID_MAX_SUB], dec[XF_GGML_GRID_MAX_SUB];
            uint8_t one[256];
            xf_ggml_grid_fit(t, x, NULL, one, fit);
            xf_ggml_grid_decode(t, one, dec);
            for (int k = 0; k < t->block / t->sub; k++) {
                assert_memory_equal(&fit[k].dl, &dec[k].dl, 4);
                assert_memory_equal(&fit[k].ml, &dec[k].ml, 4);
            }
            /* constant and zero rows are represented closely */
            if (kind % 8 == 5)
                for (int64_t i = 0; i < n; i++)
                    assert_true(dq[i] == 0.0f);
            if (kind % 8 == 4)
                for (int64_t i = 0; i < n; i++)
                    if (!(fabsf(dq[i] - 0.37f) < 0.37f * 0.02f))
                        fail_msg("%s kind %d: constant 0.37 became %.9g at %lld", gt->name, kind,
                                 dq[i], (long long)i);
        }
    }
    free(x);
    free(imp);
    free(dq);
    free(a);
    free(b);
    free(blk);
}

/* Every code of every element lands where the decoder reads it: a block
 * whose header gives sub-block scale 1 (and min 0) decodes each element to
 * its level, for codes set in scrambled order. */
static void test_put_code_positions(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const xf_ggml_grid_traits *t = xf_ggml_grid_traits_of(all_types[ti]);
        const xf_ggml_type_traits *gt = xf_ggml_traits(all_types[ti]);
        float x[256], y[256];
        uint8_t blk[256];
        xf_ggml_sub subs[XF_GGML_GRID_MAX_SUB];
        int codes[256];
        /* values that sit on integer levels of a unit-ish grid */
        for (int j = 0; j < t->block; j++) {
            codes[j] = (int)(urand() * (float)t->n_codes);
            x[j] = xf_ggml_grid_level(t, codes[j]);
        }
        xf_ggml_grid_fit(t, x, NULL, blk, subs);
        for (int jj = 0; jj < t->block; jj++) {
            const int j = (jj * 37) % t->block; /* any order */
            float v;
            const int c = xf_ggml_grid_code(t, &subs[j / t->sub], x[j], &v);
            xf_ggml_grid_put_code(t, blk, j, c);
            codes[j] = c;
        }
        xf_error err = {0};
        assert_int_equal(xf_ggml_dequant(gt, blk, y, t->block, "t", &err), 0);
        for (int j = 0; j < t->block; j++) {
            const float v = xf_ggml_grid_value(t, &subs[j / t->sub], codes[j]);
            if (memcmp(&v, &y[j], 4) != 0)
                fail_msg("%s element %d code %d: %.9g, decoded %.9g", gt->name, j, codes[j], v,
                         y[j]);
        }
    }
}

/* Fits are at least as good as the plain range rule (one fp16 scale from
 * the block's extreme value, the scheme llama.cpp uses without an imatrix
 * for Q4_0/Q8_0): summed squared error over many gaussian blocks. */
static void test_fit_beats_range_rule(void **state)
{
    (void)state;
    const uint32_t types[] = {XF_GGML_Q4_0, XF_GGML_Q5_0, XF_GGML_Q8_0};
    const int levels_neg[] = {-8, -16, -127};
    for (size_t ti = 0; ti < 3; ti++) {
        const xf_ggml_grid_traits *t = xf_ggml_grid_traits_of(types[ti]);
        double e_fit = 0.0, e_range = 0.0;
        float x[32], dq[32];
        uint8_t blk[64];
        for (int b = 0; b < 2000; b++) {
            fill_row(x, 32, b % 2);
            xf_ggml_grid_quantize_row(t, x, NULL, 32, blk, dq);
            float m = 0.0f;
            for (int i = 0; i < 32; i++)
                m = fabsf(x[i]) > fabsf(m) ? x[i] : m;
            xf_ggml_sub g = {xf_f16_to_f32(xf_f32_to_f16(m / (float)levels_neg[ti])), 0.0f};
            for (int i = 0; i < 32; i++) {
                float v;
                xf_ggml_grid_code(t, &g, x[i], &v);
                e_range += ((double)x[i] - v) * ((double)x[i] - v);
                e_fit += ((double)x[i] - dq[i]) * ((double)x[i] - dq[i]);
            }
        }
        assert_true(e_fit <= e_range);
        print_message("%s: squared error fit %.6g, range rule %.6g (%.1f%% lower)\n",
                      xf_ggml_traits(types[ti])->name, e_fit, e_range,
                      100.0 * (1.0 - e_fit / e_range));
    }
}

/* Importance weights shift the error to the unimportant elements. */
static void test_importance_is_used(void **state)
{
    (void)state;
    const uint32_t types[] = {XF_GGML_Q4_K, XF_GGML_Q3_K, XF_GGML_Q4_0, XF_GGML_IQ4_XS};
    for (size_t ti = 0; ti < 4; ti++) {
        const xf_ggml_grid_traits *t = xf_ggml_grid_traits_of(types[ti]);
        float x[256], imp[256], dq1[256], dq2[256];
        uint8_t blk[256];
        double w_plain = 0.0, w_imp = 0.0;
        for (int rep = 0; rep < 50; rep++) {
            fill_row(x, 256, 0);
            for (int i = 0; i < 256; i++)
                imp[i] = i % 4 == 0 ? 100.0f : 1.0f;
            xf_ggml_grid_quantize_row(t, x, NULL, 256, blk, dq1);
            xf_ggml_grid_quantize_row(t, x, imp, 256, blk, dq2);
            for (int i = 0; i < 256; i++) {
                w_plain += imp[i] * ((double)x[i] - dq1[i]) * ((double)x[i] - dq1[i]);
                w_imp += imp[i] * ((double)x[i] - dq2[i]) * ((double)x[i] - dq2[i]);
            }
        }
        print_message("%s: weighted error %.6g without importance, %.6g with\n",
                      xf_ggml_traits(types[ti])->name, w_plain, w_imp);
        assert_true(w_imp < w_plain);
    }
}

/* A correlated Hessian H = X^T X / T + small ridge of random inputs with a
 * few heavy channels (what makes GPTQ differ from round-to-nearest). */
static void random_hessian(double *H, int64_t n, int64_t T)
{
    float *X = malloc((size_t)(T * n) * sizeof *X);
    for (int64_t t = 0; t < T; t++) {
        const float common = nrand();
        for (int64_t j = 0; j < n; j++)
            X[t * n + j] = (0.6f * common + nrand()) * (j % 17 == 0 ? 4.0f : 1.0f);
    }
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b <= a; b++) {
            double s = 0.0;
            for (int64_t t = 0; t < T; t++)
                s += (double)X[t * n + a] * X[t * n + b];
            H[a * n + b] = H[b * n + a] = s / (double)T;
        }
    free(X);
}

/* tr((W - Q) H (W - Q)^T): the layer-output error GPTQ minimises. */
static double output_error(const float *W, const float *Q, const double *H, int64_t rows,
                           int64_t n)
{
    double tot = 0.0;
    double *e = malloc((size_t)n * sizeof *e);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < n; j++)
            e[j] = (double)W[r * n + j] - Q[r * n + j];
        for (int64_t a = 0; a < n; a++) {
            double s = 0.0;
            for (int64_t b = 0; b < n; b++)
                s += H[a * n + b] * e[b];
            tot += e[a] * s;
        }
    }
    free(e);
    return tot;
}

/* GPTQ on every GGML grid: the solver's W == the blocks' decoded values,
 * bit for bit; the output error beats round-to-nearest on the same grid
 * with diag(H) importance (llama-quantize's imatrix rule); static-group
 * act-order works; the forms GGUF cannot hold are refused. */
static void test_gptq_on_ggml_grids(void **state)
{
    (void)state;
    const int64_t rows = 24, n = 512;
    double *H = malloc((size_t)(n * n) * sizeof *H);
    float *W0 = malloc((size_t)(rows * n) * sizeof *W0), *W = malloc((size_t)(rows * n) * sizeof *W);
    float *dq = malloc((size_t)(rows * n) * sizeof *dq), *rtn = malloc((size_t)(rows * n) * sizeof *rtn);
    float *imp = malloc((size_t)n * sizeof *imp);
    uint8_t *row = malloc(2 * (size_t)n);
    random_hessian(H, n, 2 * n);
    for (int64_t j = 0; j < n; j++)
        imp[j] = (float)H[j * n + j];
    fill_row(W0, rows * n, 1);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const xf_ggml_grid_traits *t = xf_ggml_grid_traits_of(all_types[ti]);
        const xf_ggml_type_traits *gt = xf_ggml_traits(all_types[ti]);
        for (int static_ao = 0; static_ao < 2; static_ao++) {
            xf_gptq_params p;
            xf_gptq_params_default(&p);
            p.ggml = t;
            p.act_order = p.static_groups = static_ao;
            memcpy(W, W0, (size_t)(rows * n) * sizeof *W);
            xf_qweight q;
            xf_gptq_stats st;
            xf_error err = {0};
            if (xf_gptq_solve(W, rows, n, H, &p, &q, &st, "w", &err) != 0)
                fail_msg("%s: %s", gt->name, err.msg);
            assert_ptr_equal(q.ggml, t);
            xf_qweight_dequantize(&q, dq);
            for (int64_t i = 0; i < rows * n; i++)
                if (memcmp(&W[i], &dq[i], 4) != 0)
                    fail_msg("%s element %lld: solver %.9g, blocks decode to %.9g", gt->name,
                             (long long)i, W[i], dq[i]);
            xf_qweight_packed pk;
            assert_int_equal(xf_qweight_export(&q, "w", &pk, &err), 0);
            assert_int_equal(pk.tensor.dtype, XF_DTYPE_GGML);
            assert_int_equal(pk.tensor.ggml_type, all_types[ti]);
            assert_int_equal(pk.tensor.nbytes, (size_t)rows * xf_ggml_row_bytes(gt, n));
            xf_ref_decode(all_types[ti], pk.buf, rows * n, rtn);
            assert_memory_equal(rtn, W, (size_t)(rows * n) * sizeof *W);
            xf_qweight_packed_free(&pk);
            xf_qweight_free(&q);
            for (int64_t r = 0; r < rows; r++)
                xf_ggml_grid_quantize_row(t, W0 + r * n, imp, n, row, rtn + r * n);
            const double e_gptq = output_error(W0, W, H, rows, n);
            const double e_rtn = output_error(W0, rtn, H, rows, n);
            print_message("%s%s: output error GPTQ %.5g, RTN+diag(H) %.5g (%.2fx)\n", gt->name,
                          static_ao ? " act-order static" : "", e_gptq, e_rtn, e_rtn / e_gptq);
            assert_true(e_gptq < e_rtn);
        }
    }
    /* refusals: permuted act-order, outliers, widths that are not whole blocks */
    xf_gptq_params p;
    xf_gptq_params_default(&p);
    p.ggml = xf_ggml_grid_traits_of(XF_GGML_Q4_K);
    xf_qweight q;
    xf_error err = {0};
    p.act_order = true;
    memcpy(W, W0, (size_t)(rows * n) * sizeof *W);
    assert_int_equal(xf_gptq_solve(W, rows, n, H, &p, &q, NULL, "w", &err), -1);
    assert_non_null(strstr(err.msg, "static groups"));
    p.act_order = false;
    p.outliers = 0.01;
    assert_int_equal(xf_gptq_solve(W, rows, n, H, &p, &q, NULL, "w", &err), -1);
    assert_non_null(strstr(err.msg, "outliers"));
    p.outliers = 0.0;
    double *H2 = malloc(320 * 320 * sizeof *H2);
    random_hessian(H2, 320, 400);
    assert_int_equal(xf_gptq_solve(W, rows, 320, H2, &p, &q, NULL, "w", &err), -1);
    assert_non_null(strstr(err.msg, "multiple of the q4_K block size 256"));
    assert_memory_equal(W, W0, (size_t)(rows * n) * sizeof *W); /* untouched on failure */
    free(H2);
    free(H);
    free(W0);
    free(W);
    free(dq);
    free(rtn);
    free(imp);
    free(row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_are_ggml_values),
        cmocka_unit_test(test_put_code_positions),
        cmocka_unit_test(test_fit_beats_range_rule),
        cmocka_unit_test(test_importance_is_used),
        cmocka_unit_test(test_gptq_on_ggml_grids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
