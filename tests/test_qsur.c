/* QSUR (quant/transform/qsur.h) on covariances with closed forms, the fp64
 * covariance accumulator (calib/act_cov.h) against a naive sum, and
 * `xfquant stats --qsur` before and after a Hadamard rotation on
 * stories260K. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "calib/act_cov.h"
#include "quant/transform/qsur.h"
#include "support/cli_run.h"
#include "support/test_util.h"

static char *g_tmp;

static void expect_qsur(const double *mean, const double *cov, int d, double want)
{
    xf_qsur q;
    xf_error err = {0};
    assert_int_equal(xf_qsur_compute(mean, cov, d, &q, &err), 0);
    if (fabs(q.log10 - log10(want)) > 1e-12)
        fail_msg("QSUR %.15g, expected %.15g", pow(10.0, q.log10), want);
    assert_true(fabs(q.root - pow(want, 1.0 / d)) < 1e-12);
}

/* Zero mean: QSUR = pi^(d/2) / (2^d Gamma(d/2 + 1)) * sqrt(det S) / max_j S_jj^(d/2). */
static void test_closed_forms(void **state)
{
    (void)state;
    const double zero[3] = {0, 0, 0};
    /* d = 2, S = diag(4, 1): (pi / 4) * 2 / 4 = pi / 8 */
    const double s2[4] = {4, 0, 0, 1};
    expect_qsur(zero, s2, 2, M_PI / 8.0);
    /* the same rotated by 45 degrees: diag 2.5, 2.5, off-diagonal 1.5 (eigenvalues 4, 1):
     * (pi / 4) * 2 / 2.5 = pi / 5, higher: the rotation spreads the wide axis */
    const double r2[4] = {2.5, 1.5, 1.5, 2.5};
    expect_qsur(zero, r2, 2, M_PI / 5.0);
    /* d = 3, S = 7 I: the ball in its cube, (4/3) pi / 8 = pi / 6, whatever the scale */
    const double s3[9] = {7, 0, 0, 0, 7, 0, 0, 0, 7};
    expect_qsur(zero, s3, 3, M_PI / 6.0);
    /* a mean shifts the range: d = 2, S = I, mean (1, 0): the ellipse pi chi2 in the
     * square of side 1 + 2 chi (channel 0 reaches 1 + chi, channel 1 down to -chi) */
    const double mean[2] = {1, 0}, id[4] = {1, 0, 0, 1};
    const double chi2 = 2.0 * pow(1.0 - 1.0 / 9.0 + XF_QSUR_Z * sqrt(1.0 / 9.0), 3.0);
    assert_true(fabs(xf_qsur_chi2(2) - chi2) < 1e-12);
    assert_true(fabs(chi2 - 9.2103) < 0.02); /* the exact 0.99 quantile of chi2(2) */
    expect_qsur(mean, id, 2, M_PI * chi2 / pow(1.0 + 2.0 * sqrt(chi2), 2.0));
    /* singular: -inf, root 0 */
    const double sing[4] = {1, 1, 1, 1};
    xf_qsur q;
    xf_error err = {0};
    assert_int_equal(xf_qsur_compute(zero, sing, 2, &q, &err), 0);
    assert_true(isinf(q.log10) && q.log10 < 0);
    assert_true(q.root == 0.0);
}

static void test_covariance_naive(void **state)
{
    (void)state;
    const int N = 600, d = 9;
    float *X = xf_test_correlated_inputs(N, d, 21);
    for (int t = 0; t < N; t++)
        X[t * d + 2] += 3.0f; /* a mean */
    X[17 * d + 4] = NAN;      /* row 17 left out */
    xf_act_cov c;
    xf_error err = {0};
    assert_int_equal(xf_act_cov_init(&c, d, "test", &err), 0);
    xf_act_cov_add(&c, X, 300);
    xf_act_cov_add(&c, X + 300 * d, N - 300);
    assert_int_equal(c.rows, N - 1);
    assert_int_equal(c.skipped, 1);
    double mean[9], cov[81];
    assert_int_equal(xf_act_cov_finalize(&c, mean, cov, &err), 0);
    double m[9] = {0}, s[81] = {0};
    for (int t = 0; t < N; t++) {
        if (t == 17)
            continue;
        for (int i = 0; i < d; i++)
            m[i] += X[t * d + i];
    }
    for (int i = 0; i < d; i++)
        m[i] /= N - 1;
    for (int t = 0; t < N; t++) {
        if (t == 17)
            continue;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                s[i * d + j] += (X[t * d + i] - m[i]) * (X[t * d + j] - m[j]);
    }
    for (int k = 0; k < d * d; k++)
        assert_true(fabs(cov[k] - s[k] / (N - 1)) < 1e-9 * (1.0 + fabs(s[k] / (N - 1))));
    for (int i = 0; i < d; i++)
        assert_true(fabs(mean[i] - m[i]) < 1e-12);
    xf_act_cov_free(&c);
    free(X);
}

/* mean qsur root of the qkv inputs in a stats --qsur --json report */
static double qkv_root(const char *json_text)
{
    json_error_t je;
    json_t *j = json_loads(json_text, 0, &je);
    assert_non_null(j);
    double sum = 0;
    int n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(j, "inputs"), i, row)
    {
        json_t *q = json_object_get(row, "qsur");
        assert_non_null(q);
        double r = json_real_value(json_object_get(q, "root"));
        assert_true(r > 0.0 && r < 1.0);
        if (!strcmp(json_string_value(json_object_get(row, "input")), "qkv")) {
            sum += r;
            n++;
        }
    }
    json_decref(j);
    assert_true(n > 0);
    return sum / n;
}

static void test_stats_before_after(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_p, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_p);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    char rot[4200];
    snprintf(rot, sizeof rot, "%s/rot.xfq", g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "rtn --bits 8 --group -1 --rotate hadamard %s %s", model,
                                 rot);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    r = xf_cli_run(g_tmp, "stats %s --calib %s --nsamples 4 --seqlen 128 --qsur --json", model,
                   calib);
    if (r.code != 0)
        fail_msg("%s", r.err);
    const double before = qkv_root(r.out);
    xf_cli_result_free(&r);
    /* the rotated .xfq runs with its online transforms */
    r = xf_cli_run(g_tmp, "stats %s --calib %s --nsamples 4 --seqlen 128 --qsur --json", rot,
                   calib);
    if (r.code != 0)
        fail_msg("%s", r.err);
    const double after = qkv_root(r.out);
    xf_cli_result_free(&r);
    /* the residual stream's outlier channels spread by the rotation */
    assert_true(after > before * 1.2);
    /* without --qsur the report has none */
    r = xf_cli_run(g_tmp, "stats %s --calib %s --nsamples 2 --seqlen 32 --json", model, calib);
    assert_int_equal(r.code, 0);
    assert_null(strstr(r.out, "qsur"));
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
        cmocka_unit_test(test_closed_forms),
        cmocka_unit_test(test_covariance_naive),
        cmocka_unit_test(test_stats_before_after),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
