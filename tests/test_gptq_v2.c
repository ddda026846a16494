/* GPTQv2's weight correction W' = W + W C H~^-1: with identical activation
 * streams it changes nothing; otherwise W' minimizes ||W X - W' X~|| (the
 * normal equations hold), so GPTQ on W' targets the full-precision output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quant/weights/gptq_v2.h"
#include "quant/weights/hessian.h"
#include "tests/support/test_util.h"

enum { D = 24, N = 400, ROWS = 7 };

/* X~ = X + noise, X correlated through a random mixing. */
static void make_streams(float *x, float *xq, uint64_t seed, float noise)
{
    uint64_t s = seed;
    float mix[D * D];
    for (int i = 0; i < D * D; i++)
        mix[i] = xf_test_rand_normal(&s) / sqrtf((float)D);
    for (int t = 0; t < N; t++) {
        float z[D];
        for (int i = 0; i < D; i++)
            z[i] = xf_test_rand_normal(&s);
        for (int i = 0; i < D; i++) {
            double acc = 0;
            for (int j = 0; j < D; j++)
                acc += mix[i * D + j] * z[j];
            x[t * D + i] = (float)acc;
            xq[t * D + i] = (float)acc + noise * xf_test_rand_normal(&s);
        }
    }
}

static void stats(const float *x, const float *xq, double *H, double *C)
{
    xf_hessian h;
    xf_cross_cov c;
    assert_int_equal(xf_hessian_init(&h, D, NULL), 0);
    assert_int_equal(xf_cross_cov_init(&c, D, NULL), 0);
    /* in two batches, as the pipeline adds one window at a time */
    assert_int_equal(xf_hessian_add(&h, xq, N / 2, NULL), 0);
    assert_int_equal(xf_hessian_add(&h, xq + (N / 2) * D, N - N / 2, NULL), 0);
    assert_int_equal(xf_cross_cov_add(&c, x, xq, N / 2, NULL), 0);
    assert_int_equal(xf_cross_cov_add(&c, x + (N / 2) * D, xq + (N / 2) * D, N - N / 2, NULL), 0);
    assert_int_equal(xf_hessian_finalize(&h, H, NULL), 0);
    assert_int_equal(xf_cross_cov_finalize(&c, C, NULL), 0);
    xf_hessian_free(&h);
    xf_cross_cov_free(&c);
}

static void test_identical_streams_change_nothing(void **state)
{
    (void)state;
    float *x = malloc(sizeof(float) * N * D), *xq = malloc(sizeof(float) * N * D);
    make_streams(x, xq, 3, 0.0f);
    double *H = malloc(sizeof(double) * D * D), *C = malloc(sizeof(double) * D * D);
    stats(x, xq, H, C);
    for (int i = 0; i < D * D; i++)
        assert_true(C[i] == 0.0);
    float W[ROWS * D], W0[ROWS * D];
    uint64_t s = 9;
    for (int i = 0; i < ROWS * D; i++)
        W[i] = W0[i] = xf_test_rand_normal(&s);
    double used;
    assert_int_equal(xf_gptq_v2_correct(W, ROWS, D, H, C, 0.01, &used, "w", NULL), 0);
    assert_memory_equal(W, W0, sizeof W);
    free(x);
    free(xq);
    free(H);
    free(C);
}

/* sum over tokens of |W x - W' x~|^2 */
static double target_error(const float *W, const float *Wp, const float *x, const float *xq)
{
    double e = 0;
    for (int t = 0; t < N; t++)
        for (int r = 0; r < ROWS; r++) {
            double a = 0, b = 0;
            for (int i = 0; i < D; i++) {
                a += (double)W[r * D + i] * x[t * D + i];
                b += (double)Wp[r * D + i] * xq[t * D + i];
            }
            e += (a - b) * (a - b);
        }
    return e;
}

static void test_correction_solves_normal_equations(void **state)
{
    (void)state;
    float *x = malloc(sizeof(float) * N * D), *xq = malloc(sizeof(float) * N * D);
    make_streams(x, xq, 5, 0.3f);
    double *H = malloc(sizeof(double) * D * D), *C = malloc(sizeof(double) * D * D);
    stats(x, xq, H, C);
    float W[ROWS * D], Wp[ROWS * D];
    uint64_t s = 11;
    for (int i = 0; i < ROWS * D; i++)
        W[i] = Wp[i] = xf_test_rand_normal(&s);
    double used;
    assert_int_equal(xf_gptq_v2_correct(Wp, ROWS, D, H, C, 1e-6, &used, "w", NULL), 0);
    double e_plain = target_error(W, W, x, xq), e_corr = target_error(W, Wp, x, xq);
    assert_true(e_corr < 0.9 * e_plain);
    /* normal equations: (W X - W' X~) X~^T = 0, relative to the scale of W X X~^T */
    double worst = 0, scale = 0;
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < D; j++) {
            double g = 0, m = 0;
            for (int t = 0; t < N; t++) {
                double a = 0, b = 0;
                for (int i = 0; i < D; i++) {
                    a += (double)W[r * D + i] * x[t * D + i];
                    b += (double)Wp[r * D + i] * xq[t * D + i];
                }
                g += (a - b) * xq[t * D + j];
                m += fabs(a * xq[t * D + j]);
            }
            worst = fmax(worst, fabs(g));
            scale = fmax(scale, m);
        }
    assert_true(worst < 1e-3 * scale);
    /* any other W'' does worse: perturb one entry each way */
    for (int k = 0; k < 5; k++) {
        float Wq[ROWS * D];
        memcpy(Wq, Wp, sizeof Wq);
        Wq[(k * 29) % (ROWS * D)] += (k & 1) ? 0.05f : -0.05f;
        assert_true(target_error(W, Wq, x, xq) > e_corr);
    }
    free(x);
    free(xq);
    free(H);
    free(C);
}

/* The cross-covariance of an MPI job (pipeline/dist_sums.h) without MPI:
 * windows split between two deferred accumulators, the second adding its
 * kept products into the first's running sum: the bytes of one. */
static void test_cross_cov_split_sum(void **state)
{
    (void)state;
    enum { D = 16, T = 40, WINDOWS = 7, SPLIT = 3 };
    float *x = malloc(sizeof(float) * T * WINDOWS * D), *xq = malloc(sizeof(float) * T * WINDOWS * D);
    uint64_t rng = 77;
    for (int i = 0; i < T * WINDOWS * D; i++) {
        x[i] = xf_test_rand_normal(&rng);
        xq[i] = x[i] + 0.1f * xf_test_rand_normal(&rng);
    }
    double *ref = malloc(sizeof(double) * D * D), *C = malloc(sizeof(double) * D * D);
    xf_error err;
    xf_cross_cov one, a, b;
    assert_int_equal(xf_cross_cov_init(&one, D, &err), 0);
    assert_int_equal(xf_cross_cov_init(&a, D, &err), 0);
    assert_int_equal(xf_cross_cov_init(&b, D, &err), 0);
    xf_cross_cov_defer(&a);
    xf_cross_cov_defer(&b);
    for (int w = 0; w < WINDOWS; w++) {
        const size_t o = (size_t)w * T * D;
        assert_int_equal(xf_cross_cov_add(&one, x + o, xq + o, T, &err), 0);
        assert_int_equal(xf_cross_cov_add(w < SPLIT ? &a : &b, x + o, xq + o, T, &err), 0);
    }
    assert_int_equal(xf_cross_cov_finalize(&one, ref, &err), 0);
    xf_cross_cov_fold_kept(&a, 0, D);
    memcpy(b.sum, a.sum, sizeof(double) * D * D);
    xf_cross_cov_fold_kept(&b, 0, 5);
    xf_cross_cov_fold_kept(&b, 5, D);
    b.n = one.n;
    assert_int_equal(xf_cross_cov_finalize(&b, C, &err), 0);
    assert_memory_equal(C, ref, sizeof(double) * D * D);
    xf_cross_cov_free(&one);
    xf_cross_cov_free(&a);
    xf_cross_cov_free(&b);
    free(x);
    free(xq);
    free(ref);
    free(C);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_streams_change_nothing),
        cmocka_unit_test(test_correction_solves_normal_equations),
        cmocka_unit_test(test_cross_cov_split_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
