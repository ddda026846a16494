/* Uniform grids and RTN against a scalar reference written here from the
 * specification (GPTQ reference Quantizer + fp16-rounded scales). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/half.h"
#include "quant/weights/grid.h"
#include "quant/weights/qweight.h"
#include "quant/weights/rtn.h"
#include "tests/support/test_util.h"

/* ---- scalar reference ---- */

typedef struct ref_grid {
    float scale;
    int zero, maxq;
} ref_grid;

/* round half to even, without rint */
static double round_half_even(double t)
{
    double fl = floor(t), frac = t - fl;
    if (frac > 0.5)
        return fl + 1.0;
    if (frac < 0.5)
        return fl;
    return fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;
}

static float fp16_round(float s) { return xf_f16_to_f32(xf_f32_to_f16(s)); }

static ref_grid ref_range(float lo, float hi, int bits, bool sym)
{
    ref_grid g = {.maxq = (1 << bits) - 1};
    if (sym) {
        float m = -lo > hi ? -lo : hi;
        lo = -m;
        hi = m;
    }
    if (lo == 0.0f && hi == 0.0f) {
        lo = -1.0f;
        hi = 1.0f;
    }
    g.scale = fp16_round((hi - lo) / (float)g.maxq);
    if (sym) {
        g.zero = (g.maxq + 1) / 2;
    } else {
        g.zero = (int)round_half_even((double)(-lo / g.scale));
        g.zero = g.zero < 0 ? 0 : g.zero > g.maxq ? g.maxq : g.zero;
    }
    return g;
}

static void ref_minmax(const float *x, int n, float *lo, float *hi)
{
    *lo = 0.0f;
    *hi = 0.0f;
    for (int i = 0; i < n; i++) {
        if (x[i] < *lo)
            *lo = x[i];
        if (x[i] > *hi)
            *hi = x[i];
    }
}

static int ref_quant(const ref_grid *g, float x)
{
    double q = round_half_even((double)(x / g->scale)) + g->zero;
    return q < 0 ? 0 : q > g->maxq ? g->maxq : (int)q;
}

static float ref_dequant(const ref_grid *g, int q) { return g->scale * (float)(q - g->zero); }

static double ref_err24(const ref_grid *g, const float *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += pow(fabs((double)x[i] - ref_dequant(g, ref_quant(g, x[i]))), 2.4);
    return s;
}

/* ---- data ---- */

enum { NCASES = 9 };

/* Row kind k of n values. */
static void make_row(int k, float *x, int n, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        float v = xf_test_rand_normal(rng);
        switch (k) {
        case 0: x[i] = v; break;
        case 1: x[i] = fabsf(v) * 3.0f; break;          /* all positive */
        case 2: x[i] = -fabsf(v) * 0.01f; break;        /* all negative, small */
        case 3: x[i] = 0.0f; break;                     /* degenerate */
        case 4: x[i] = (i % 3 == 0) ? 0.0f : v * 1e-3f; break;
        case 5: x[i] = v + (i == n / 2 ? 40.0f : 0.0f); break; /* outlier */
        case 6: x[i] = v * 300.0f; break;
        case 7: x[i] = (float)((int)(v * 4)) * 0.25f; break; /* many exact ties */
        default: x[i] = (i == 0) ? 0.7f : 0.0f; break;  /* one non-zero */
        }
    }
}

/* ---- tests ---- */

static void test_fit_matches_reference(void **state)
{
    (void)state;
    uint64_t rng = 11;
    enum { N = 67 };
    float x[N];
    for (int bits = 2; bits <= 8; bits++)
        for (int sym = 0; sym <= 1; sym++)
            for (int k = 0; k < NCASES; k++)
                for (int rep = 0; rep < 3; rep++) {
                    int n = rep == 2 ? 1 : N - rep * 30;
                    make_row(k, x, n, &rng);
                    xf_grid_config c = {.bits = bits, .sym = sym, .clip = XF_CLIP_NONE};
                    xf_grid g = xf_grid_fit(&c, x, n);
                    float lo, hi;
                    ref_minmax(x, n, &lo, &hi);
                    ref_grid r = ref_range(lo, hi, bits, sym);
                    assert_true(g.scale == r.scale);
                    assert_int_equal(g.zero, r.zero);
                    assert_int_equal(g.maxq, r.maxq);
                    if (sym)
                        assert_int_equal(g.zero, 1 << (bits - 1));
                    /* stored == used: the scale is an fp16 value */
                    assert_true(fp16_round(g.scale) == g.scale);
                    for (int i = 0; i < n; i++) {
                        uint8_t q = xf_grid_quantize(&g, x[i]);
                        assert_int_equal(q, ref_quant(&r, x[i]));
                        assert_true(xf_grid_dequantize(&g, q) == ref_dequant(&r, q));
                    }
                    if (k == 3) /* all zero: exact zeros back */
                        for (int i = 0; i < n; i++)
                            assert_true(xf_grid_dequantize(&g, xf_grid_quantize(&g, x[i])) == 0.0f);
                }
}

static void test_degenerate_range(void **state)
{
    (void)state;
    float z[5] = {0};
    xf_grid_config c = {.bits = 4, .sym = false};
    xf_grid g = xf_grid_fit(&c, z, 5);
    /* [-1, 1]: scale fp16(2/15), zero round(1/scale) = round(7.50..) = 8 */
    assert_true(g.scale == fp16_round(2.0f / 15.0f));
    assert_int_equal(g.zero, (int)round_half_even(1.0 / g.scale));
    c.sym = true;
    g = xf_grid_fit(&c, z, 5);
    assert_true(g.scale == fp16_round(2.0f / 15.0f));
    assert_int_equal(g.zero, 8);
}

static void test_round_half_even_and_clamp(void **state)
{
    (void)state;
    xf_grid g = {.scale = 0.5f, .zero = 8, .maxq = 15};
    assert_int_equal(xf_grid_quantize(&g, 0.25f), 8);   /* 0.5 -> 0 */
    assert_int_equal(xf_grid_quantize(&g, 0.75f), 10);  /* 1.5 -> 2 */
    assert_int_equal(xf_grid_quantize(&g, 1.25f), 10);  /* 2.5 -> 2 */
    assert_int_equal(xf_grid_quantize(&g, -0.25f), 8);  /* -0.5 -> -0 */
    assert_int_equal(xf_grid_quantize(&g, -0.75f), 6);  /* -1.5 -> -2 */
    assert_int_equal(xf_grid_quantize(&g, 100.0f), 15);
    assert_int_equal(xf_grid_quantize(&g, -100.0f), 0);
    assert_true(xf_grid_dequantize(&g, 15) == 3.5f);
    assert_true(xf_grid_dequantize(&g, 0) == -4.0f);
}

static void test_round_scale_limits(void **state)
{
    (void)state;
    assert_true(xf_grid_round_scale(1e-12f) == 5.9604644775390625e-08f);
    assert_true(xf_grid_round_scale(1e9f) == 65504.0f);
    assert_true(xf_grid_round_scale(0.1f) == fp16_round(0.1f));
    /* a row of tiny values still gets a valid positive scale */
    float x[3] = {1e-30f, -2e-30f, 0.0f};
    xf_grid_config c = {.bits = 3, .sym = false};
    xf_grid g = xf_grid_fit(&c, x, 3);
    assert_true(g.scale > 0.0f && isfinite(g.scale));
    assert_true(g.zero <= 7);
}

/* MSE clip: never worse than no clip in the 2.4-norm, the chosen grid is
 * the grid of one of the 80 shrink factors, and no factor is better. */
static void test_mse_clip(void **state)
{
    (void)state;
    uint64_t rng = 5;
    enum { N = 128 };
    float x[N];
    int shrunk = 0;
    for (int bits = 2; bits <= 8; bits += (bits < 4 ? 1 : 2))
        for (int sym = 0; sym <= 1; sym++)
            for (int k = 0; k < NCASES; k++) {
                make_row(k, x, N, &rng);
                xf_grid_config c = {.bits = bits, .sym = sym, .clip = XF_CLIP_MSE};
                xf_grid_config c0 = {.bits = bits, .sym = sym, .clip = XF_CLIP_NONE};
                xf_grid g = xf_grid_fit(&c, x, N), g0 = xf_grid_fit(&c0, x, N);
                ref_grid r = {.scale = g.scale, .zero = g.zero, .maxq = g.maxq};
                ref_grid r0 = {.scale = g0.scale, .zero = g0.zero, .maxq = g0.maxq};
                double e = ref_err24(&r, x, N), e0 = ref_err24(&r0, x, N);
                assert_true(e <= e0 * (1 + 1e-9) + 1e-30);
                float lo, hi;
                ref_minmax(x, N, &lo, &hi);
                if (sym) {
                    float m = -lo > hi ? -lo : hi;
                    lo = -m;
                    hi = m;
                }
                if (lo == 0.0f && hi == 0.0f) {
                    lo = -1.0f;
                    hi = 1.0f;
                }
                int found = -1;
                double best = INFINITY;
                for (int i = 0; i < 80; i++) {
                    float p = (float)(1.0 - i / 100.0);
                    ref_grid ri = ref_range(p * lo, p * hi, bits, sym);
                    double ei = ref_err24(&ri, x, N);
                    best = ei < best ? ei : best;
                    if (found < 0 && ri.scale == g.scale && ri.zero == g.zero)
                        found = i;
                }
                assert_true(found >= 0);
                assert_true(e <= best * (1 + 1e-6) + 1e-30);
                shrunk += found > 0;
                /* the clip grid is an fp16 value too */
                assert_true(fp16_round(g.scale) == g.scale);
            }
    assert_true(shrunk > 0); /* outlier rows do get clipped */
}

/* xf_grid_pow24_approx against powf(d, 2.4f), the term of the reference's
 * error: within XF_GRID_POW24_REL relative (the bound the MSE search's
 * filter relies on), and with a real margin (below a quarter of it), over
 * every 13th mantissa of exponents covering the five residues of e mod 5
 * at the bottom, middle and top of the range. */
static void test_pow24_approx_bound(void **state)
{
    (void)state;
    static const int exps[] = {-40, -39, -38, -37, -36, -9, -8, -7, -6, -5, 15, 16, 17, 18, 19};
    double worst = 0.0;
    for (size_t k = 0; k < sizeof exps / sizeof exps[0]; k++)
        for (uint32_t mu = 0; mu < (1u << 23); mu += (mu + 13 < (1u << 23) ? 13 : 1)) {
            uint32_t bits = (uint32_t)(exps[k] + 127) << 23 | mu;
            float d;
            memcpy(&d, &bits, sizeof d);
            double want = powf(d, 2.4f), got = xf_grid_pow24_approx(d);
            double rel = fabs(got - want) / want;
            worst = rel > worst ? rel : worst;
            if (!(rel <= XF_GRID_POW24_REL))
                fail_msg("d = %a: approx %a, powf %a", (double)d, got, want);
        }
    print_message("pow24 approx: worst relative error against powf %.3e\n", worst);
    assert_true(worst < XF_GRID_POW24_REL / 4);
}

/* The reference's MSE search verbatim: every candidate summed in order with
 * powf, the first strictly lowest wins. */
static xf_grid plain_mse_search(const xf_grid_config *c, const float *x, int n)
{
    float lo, hi;
    ref_minmax(x, n, &lo, &hi);
    if (c->sym) {
        float m = -lo > hi ? -lo : hi;
        lo = -m;
        hi = m;
    }
    if (lo == 0.0f && hi == 0.0f) {
        lo = -1.0f;
        hi = 1.0f;
    }
    xf_grid best = {0};
    double best_err = INFINITY;
    for (int i = 0; i < XF_GRID_MSE_STEPS; i++) {
        float p = (float)(1.0 - (double)i / XF_GRID_MSE_GRID);
        xf_grid g = xf_grid_from_range(p * lo, p * hi, c->bits, c->sym);
        double e = 0.0;
        for (int j = 0; j < n; j++)
            e += (double)powf(fabsf(x[j] - xf_grid_dequantize(&g, xf_grid_quantize(&g, x[j]))),
                              2.4f);
        if (e < best_err) {
            best_err = e;
            best = g;
        }
    }
    return best;
}

/* The filtered MSE search picks exactly the reference's grid: random rows
 * of every kind and length (the 32-term blocks and the padded tail, a
 * long row's heap copy), and rows
 * built for ties (values on a grid, two values, a constant), every width. */
static void test_mse_clip_exact(void **state)
{
    (void)state;
    uint64_t rng = 11;
    static const int lens[] = {1, 5, 31, 32, 33, 128, 129, 700, 1500};
    float x[1500];
    long rows = 0, shrunk = 0;
    for (int bits = 2; bits <= 8; bits++)
        for (int sym = 0; sym <= 1; sym++)
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
                for (int k = 0; k < NCASES + 3; k++) {
                    const int n = lens[li];
                    if (k < NCASES) {
                        make_row(k, x, n, &rng);
                    } else {
                        const float s = 0.0625f * (float)(1 + k - NCASES);
                        for (int i = 0; i < n; i++) { /* grid points, two values, constant */
                            int v = (int)(xf_test_rand_normal(&rng) * 4.0f);
                            x[i] = k == NCASES ? s * (float)v
                                   : k == NCASES + 1 ? (v > 0 ? s : -2.0f * s)
                                                     : s;
                        }
                    }
                    xf_grid_config c = {.bits = bits, .sym = sym, .clip = XF_CLIP_MSE};
                    xf_grid got = xf_grid_fit(&c, x, n), want = plain_mse_search(&c, x, n);
                    if (got.scale != want.scale || got.zero != want.zero ||
                        got.maxq != want.maxq)
                        fail_msg("bits %d sym %d n %d kind %d: scale %a zero %d, reference "
                                 "scale %a zero %d", bits, sym, n, k, (double)got.scale,
                                 got.zero, (double)want.scale, want.zero);
                    xf_grid_config c0 = c;
                    c0.clip = XF_CLIP_NONE;
                    shrunk += xf_grid_fit(&c0, x, n).scale != got.scale;
                    rows++;
                }
    print_message("MSE clip search: %ld rows equal to the reference's, %ld of them clipped\n",
                  rows, shrunk);
    assert_true(shrunk > rows / 10);
}

static void test_config_check(void **state)
{
    (void)state;
    xf_error err;
    xf_grid_config c = {.bits = 1};
    assert_int_equal(xf_grid_config_check(&c, "layer.w", &err), -1);
    assert_non_null(strstr(err.msg, "layer.w"));
    c.bits = 9;
    assert_int_equal(xf_grid_config_check(&c, "x", &err), -1);
    c.bits = 5;
    assert_int_equal(xf_grid_config_check(&c, "x", &err), 0);
    c.clip = (xf_clip)7;
    assert_int_equal(xf_grid_config_check(&c, "x", &err), -1);
    xf_clip cl;
    assert_int_equal(xf_clip_from_name("mse", &cl), 0);
    assert_int_equal(cl, XF_CLIP_MSE);
    assert_int_equal(xf_clip_from_name("max", &cl), -1);
}

/* RTN = the reference grid of every (row, group) and nearest codes. */
static void test_rtn_matches_reference(void **state)
{
    (void)state;
    enum { R = 9, C = 100 };
    uint64_t rng = 77;
    float *W = malloc(sizeof(float) * R * C), *dq = malloc(sizeof(float) * R * C);
    for (int r = 0; r < R; r++)
        make_row(r % NCASES, W + r * C, C, &rng);
    const int64_t groups[] = {-1, 32, 100, 7, 1};
    for (int gi = 0; gi < 5; gi++)
        for (int sym = 0; sym <= 1; sym++) {
            xf_rtn_params p = {.grid = {.bits = 3, .sym = sym}, .group = groups[gi]};
            xf_qweight q;
            xf_error err;
            assert_int_equal(xf_rtn_quantize(W, R, C, &p, &q, "t", &err), 0);
            int64_t g = groups[gi] <= 0 ? C : groups[gi];
            assert_int_equal(q.group_size, g);
            assert_null(q.perm);
            xf_qweight_dequantize(&q, dq);
            for (int r = 0; r < R; r++)
                for (int j0 = 0; j0 < C; j0 += (int)g) {
                    int n = j0 + g < C ? (int)g : C - j0;
                    float lo, hi;
                    ref_minmax(W + r * C + j0, n, &lo, &hi);
                    ref_grid rg = ref_range(lo, hi, 3, sym);
                    for (int j = j0; j < j0 + n; j++) {
                        assert_int_equal(q.codes[r * C + j], ref_quant(&rg, W[r * C + j]));
                        assert_true(dq[r * C + j] == ref_dequant(&rg, q.codes[r * C + j]));
                    }
                }
            xf_qweight_free(&q);
        }
    /* per tensor: one grid for all rows */
    xf_rtn_params pt = {.grid = {.bits = 4, .sym = false}, .group = 16, .per_tensor = true};
    xf_qweight q;
    assert_int_equal(xf_rtn_quantize(W, R, C, &pt, &q, "t", NULL), 0);
    assert_int_equal(q.n_groups, 1);
    float lo, hi;
    ref_minmax(W, R * C, &lo, &hi);
    ref_grid rg = ref_range(lo, hi, 4, false);
    for (int r = 0; r < R; r++) {
        assert_true(q.scales[r] == rg.scale);
        assert_int_equal(q.zeros[r], rg.zero);
    }
    xf_qweight_free(&q);
    /* a NaN weight is refused with the tensor's name */
    W[5] = NAN;
    xf_error err;
    assert_int_equal(xf_rtn_quantize(W, R, C, &pt, &q, "blk.0.w", &err), -1);
    assert_non_null(strstr(err.msg, "blk.0.w"));
    free(W);
    free(dq);
}

/* RTN streamed from the stored rows (fp16 and fp32 tensors) = RTN on the
 * whole fp32 conversion: same codes, scales and zeros; every row's error
 * is the squared distance to its dequantized row; a non-finite weight is
 * named by its position. */
static void test_rtn_rows_match_whole(void **state)
{
    (void)state;
    enum { R = 45, C = 100 };
    uint64_t rng = 91;
    float *W = malloc(sizeof(float) * R * C), *dq = malloc(sizeof(float) * C);
    uint16_t *H = malloc(sizeof(uint16_t) * R * C);
    double *row_err = malloc(sizeof(double) * R);
    for (int r = 0; r < R; r++)
        make_row(r % NCASES, W + r * C, C, &rng);
    xf_f32_to_f16_array(W, H, (size_t)R * C);
    xf_tensor t16 = {.name = "w16", .dtype = XF_DTYPE_F16, .ndim = 2, .shape = {R, C},
                     .data = H, .nbytes = sizeof(uint16_t) * R * C};
    xf_tensor t32 = {.name = "w32", .dtype = XF_DTYPE_F32, .ndim = 2, .shape = {R, C},
                     .data = W, .nbytes = sizeof(float) * R * C};
    float *W16 = malloc(sizeof(float) * R * C);
    xf_f16_to_f32_array(H, W16, (size_t)R * C);
    const int64_t groups[] = {-1, 32, 7};
    for (int k = 0; k < 2; k++)
        for (int gi = 0; gi < 3; gi++)
            for (int v = 0; v < 3; v++) {
                const xf_tensor *t = k ? &t32 : &t16;
                const float *Wf = k ? W : W16;
                xf_rtn_params p = {.grid = {.bits = v == 1 ? 3 : 4, .sym = v == 1,
                                            .clip = v == 2 ? XF_CLIP_MSE : XF_CLIP_NONE},
                                   .group = groups[gi]};
                assert_true(xf_rtn_streamable(&p, R, C));
                xf_qweight a, b;
                xf_error err;
                assert_int_equal(xf_rtn_quantize(Wf, R, C, &p, &a, "t", &err), 0);
                assert_int_equal(xf_rtn_quantize_rows(t, &p, &b, row_err, "t", &err), 0);
                assert_int_equal(a.n_groups, b.n_groups);
                assert_memory_equal(a.codes, b.codes, (size_t)R * C);
                assert_memory_equal(a.scales, b.scales, sizeof(float) * R * a.n_groups);
                assert_memory_equal(a.zeros, b.zeros, (size_t)R * a.n_groups);
                for (int r = 0; r < R; r++) {
                    xf_qweight_dequantize_row(&a, r, dq);
                    double naive = 0.0;
                    for (int j = 0; j < C; j++)
                        naive += ((double)Wf[r * C + j] - dq[j]) * ((double)Wf[r * C + j] - dq[j]);
                    assert_true(row_err[r] == xf_rtn_row_sq_error(Wf + r * C, dq, C));
                    assert_true(fabs(row_err[r] - naive) <= 1e-12 * naive);
                }
                xf_qweight_free(&a);
                xf_qweight_free(&b);
            }
    /* outliers, per-tensor and log2 grids need the whole tensor */
    xf_rtn_params po = {.grid = {.bits = 4}, .group = 32, .outliers = 0.01};
    assert_false(xf_rtn_streamable(&po, R, C));
    xf_qweight q;
    xf_error err;
    assert_int_equal(xf_rtn_quantize_rows(&t32, &po, &q, row_err, "t", &err), -1);
    /* the first non-finite weight in row-major order, whatever the threads */
    xf_rtn_params p = {.grid = {.bits = 4}, .group = 32};
    W[40 * C + 3] = INFINITY;
    W[17 * C + 60] = NAN;
    assert_int_equal(xf_rtn_quantize_rows(&t32, &p, &q, row_err, "blk.0.w", &err), -1);
    assert_non_null(strstr(err.msg, "blk.0.w"));
    assert_non_null(strstr(err.msg, "[17, 60]"));
    free(W);
    free(W16);
    free(H);
    free(dq);
    free(row_err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_matches_reference),
        cmocka_unit_test(test_degenerate_range),
        cmocka_unit_test(test_round_half_even_and_clamp),
        cmocka_unit_test(test_round_scale_limits),
        cmocka_unit_test(test_mse_clip),
        cmocka_unit_test(test_pow24_approx_bound),
        cmocka_unit_test(test_mse_clip_exact),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_rtn_matches_reference),
        cmocka_unit_test(test_rtn_rows_match_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
