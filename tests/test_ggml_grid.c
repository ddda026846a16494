/* GGML block grids (quant/ggml_grid.h): the values the quantizer uses are
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
#include "quant/ggml_grid.h"
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
                    assert_true(fabsf(dq[i] - 0.37f) < 0.37f * 0.02f);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_are_ggml_values),
        cmocka_unit_test(test_put_code_positions),
        cmocka_unit_test(test_fit_beats_range_rule),
        cmocka_unit_test(test_importance_is_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
