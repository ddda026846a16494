/* RSQ's token-weighted Hessians (quant/weights/token_weight.h,
 * xf_hessian_add_weighted, pipeline/token_weights.h, --token-weight):
 * the weighted Hessian against a naive fp64 reference, uniform weights
 * giving the unweighted bytes, the concentration and weights of a
 * hand-made attention pattern, and the whole pipeline on stories260K
 * (uniform = today's bytes; attention concentration recorded, different,
 * the same bytes for 1 and 2 threads). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/loader.h"
#include "quant/weights/hessian.h"
#include "quant/weights/token_weight.h"
#include "support/cli_run.h"
#include "support/test_util.h"

static char *g_tmp;

/* H = 2/N sum r_t x_t x_t^T, written out in fp64 */
static double *naive_weighted(const float *X, const float *r, int N, int d)
{
    double *H = calloc((size_t)d * (size_t)d, sizeof *H);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                H[i * d + j] += (double)r[t] * (double)X[t * d + i] * (double)X[t * d + j];
    for (int k = 0; k < d * d; k++)
        H[k] *= 2.0 / N;
    return H;
}

static void test_weighted_hessian_matches_naive(void **state)
{
    (void)state;
    const int N = 700, d = 24;
    float *X = xf_test_correlated_inputs(N, d, 11);
    float *r = malloc((size_t)N * sizeof *r);
    uint64_t rs = 5;
    for (int t = 0; t < N; t++) /* a wide range, like the normalised weights */
        r[t] = 0.01f + 3.0f * xf_test_rand_uniform(&rs);
    xf_hessian h;
    xf_error err = {0};
    assert_int_equal(xf_hessian_init(&h, d, &err), 0);
    /* uneven chunks, as windows arrive */
    int done = 0;
    const int chunks[] = {1, 255, 44, 400};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        assert_int_equal(xf_hessian_add_weighted(&h, X + done * d, r + done, chunks[c], &err), 0);
        done += chunks[c];
    }
    assert_int_equal(done, N);
    assert_int_equal(xf_hessian_count(&h), N);
    double *H = malloc((size_t)d * d * sizeof *H);
    assert_int_equal(xf_hessian_finalize(&h, H, &err), 0);
    double *ref = naive_weighted(X, r, N, d);
    double num = 0, den = 0;
    for (int k = 0; k < d * d; k++) {
        num += (H[k] - ref[k]) * (H[k] - ref[k]);
        den += ref[k] * ref[k];
    }
    /* fp32 rows sqrt(r) x and fp32 SYRK partial sums: a few fp32 ulps */
    assert_true(sqrt(num / den) < 1e-6);
    /* and it is not the unweighted Hessian */
    double *plain = xf_test_hessian(X, N, d);
    double pn = 0;
    for (int k = 0; k < d * d; k++)
        pn += (plain[k] - ref[k]) * (plain[k] - ref[k]);
    assert_true(sqrt(pn / den) > 1e-2);
    free(plain);
    free(ref);
    free(H);
    xf_hessian_free(&h);
    free(r);
    free(X);
}

static void test_uniform_weights_same_bytes(void **state)
{
    (void)state;
    const int N = 300, d = 16;
    float *X = xf_test_correlated_inputs(N, d, 3);
    float *ones = malloc((size_t)N * sizeof *ones);
    for (int t = 0; t < N; t++)
        ones[t] = 1.0f;
    xf_hessian a, b, c;
    xf_error err = {0};
    assert_int_equal(xf_hessian_init(&a, d, &err), 0);
    assert_int_equal(xf_hessian_init(&b, d, &err), 0);
    assert_int_equal(xf_hessian_init(&c, d, &err), 0);
    assert_int_equal(xf_hessian_add(&a, X, N, &err), 0);
    assert_int_equal(xf_hessian_add_weighted(&b, X, ones, N, &err), 0);
    assert_int_equal(xf_hessian_add_weighted(&c, X, NULL, N, &err), 0);
    double *Ha = malloc((size_t)d * d * sizeof *Ha), *Hb = malloc((size_t)d * d * sizeof *Hb),
           *Hc = malloc((size_t)d * d * sizeof *Hc);
    assert_int_equal(xf_hessian_finalize(&a, Ha, &err), 0);
    assert_int_equal(xf_hessian_finalize(&b, Hb, &err), 0);
    assert_int_equal(xf_hessian_finalize(&c, Hc, &err), 0);
    assert_memory_equal(Ha, Hb, (size_t)d * d * sizeof *Ha);
    assert_memory_equal(Ha, Hc, (size_t)d * d * sizeof *Ha);
    /* a negative weight is refused and adds nothing */
    ones[7] = -1.0f;
    assert_int_equal(xf_hessian_add_weighted(&a, X, ones, N, &err), -1);
    assert_non_null(strstr(err.msg, "weight"));
    assert_int_equal(xf_hessian_count(&a), N);
    free(Ha);
    free(Hb);
    free(Hc);
    xf_hessian_free(&a);
    xf_hessian_free(&b);
    xf_hessian_free(&c);
    free(ones);
    free(X);
}

/* Two heads over 4 tokens: one spreading its attention, one an attention
 * sink on token 0. Concentration = column sums over heads and queries. */
static void test_concentration_hand_made(void **state)
{
    (void)state;
    const float p0[16] = {1.0f,  0,    0,    0,     /* causal rows */
                          0.5f,  0.5f, 0,    0,    /**/
                          0.25f, 0.25f, 0.5f, 0,   /**/
                          0.1f,  0.2f, 0.3f, 0.4f};
    const float p1[16] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
    double c[4] = {0};
    xf_attn_concentration_add(c, p0, 4, 4);
    xf_attn_concentration_add(c, p1, 4, 4);
    /* by hand: head 0 gives 1.85, 0.95, 0.8, 0.4; head 1 gives 4, 0, 0, 0 */
    const double want_c[4] = {5.85, 0.95, 0.8, 0.4};
    for (int t = 0; t < 4; t++)
        assert_true(fabs(c[t] - want_c[t]) < 1e-6);
    float r[4];
    xf_error err = {0};
    assert_int_equal(xf_token_weights_from_concentration(c, 4, 0.005, 1.0, r, &err), 0);
    /* min-max onto [0.005, 1]: 1, 0.005 + 0.55/5.45*0.995, 0.005 + 0.4/5.45*0.995,
     * 0.005; their sum 1.1884404; scaled to mean 1 (x 4 / sum) */
    const double raw[4] = {1.0, 0.005 + 0.55 / 5.45 * 0.995, 0.005 + 0.4 / 5.45 * 0.995, 0.005};
    const double sum = raw[0] + raw[1] + raw[2] + raw[3];
    assert_true(fabs(sum - 1.1884404) < 1e-6);
    for (int t = 0; t < 4; t++)
        assert_true(fabs((double)r[t] - raw[t] * 4.0 / sum) < 1e-6);
    assert_true(r[0] > 3.36 && r[0] < 3.37); /* the sink dominates */
    double mean = (r[0] + r[1] + r[2] + r[3]) / 4.0;
    assert_true(fabs(mean - 1.0) < 1e-6);
    /* flat concentration: every weight 1 */
    const double flat[3] = {2.0, 2.0, 2.0};
    assert_int_equal(xf_token_weights_from_concentration(flat, 3, 0.005, 1.0, r, &err), 0);
    for (int t = 0; t < 3; t++)
        assert_true(r[t] == 1.0f);
    /* bad input */
    const double bad[2] = {1.0, -0.5};
    assert_int_equal(xf_token_weights_from_concentration(bad, 2, 0.005, 1.0, r, &err), -1);
    assert_non_null(strstr(err.msg, "token 1"));
    assert_int_equal(xf_token_weights_from_concentration(flat, 3, 2.0, 1.0, r, &err), -1);
}

/* ---- the pipeline on stories260K ------------------------------------------ */

static char *tmp_path(const char *name)
{
    size_t n = strlen(g_tmp) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_tmp, name);
    return p;
}

/* Same tensors, byte for byte (the provenance records the command line,
 * so the files themselves differ by the flag's text) and the same recipe. */
static void expect_same_tensors(const char *a, const char *b)
{
    xf_loaded_model ma, mb;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&ma, a, &err), 0);
    assert_int_equal(xf_model_open(&mb, b, &err), 0);
    assert_int_equal(ma.tensors->n, mb.tensors->n);
    for (size_t i = 0; i < ma.tensors->n; i++) {
        const xf_tensor *ta = &ma.tensors->items[i], *tb = &mb.tensors->items[i];
        assert_string_equal(ta->name, tb->name);
        assert_int_equal(ta->nbytes, tb->nbytes);
        assert_memory_equal(ta->data, tb->data, ta->nbytes);
    }
    xf_model_close(&ma);
    xf_model_close(&mb);
    xf_cli_result ra = xf_cli_run(g_tmp, "info %s", a), rb = xf_cli_run(g_tmp, "info %s", b);
    const char *pa = strstr(ra.out, "recipe:"), *pb = strstr(rb.out, "recipe:");
    assert_non_null(pa);
    assert_non_null(pb);
    assert_int_equal(strcspn(pa, "\n"), strcspn(pb, "\n"));
    assert_memory_equal(pa, pb, strcspn(pa, "\n"));
    xf_cli_result_free(&ra);
    xf_cli_result_free(&rb);
}

/* How many tensors of a and b differ in their bytes. */
static int tensors_differing(const char *a, const char *b)
{
    xf_loaded_model ma, mb;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&ma, a, &err), 0);
    assert_int_equal(xf_model_open(&mb, b, &err), 0);
    assert_int_equal(ma.tensors->n, mb.tensors->n);
    int n = 0;
    for (size_t i = 0; i < ma.tensors->n; i++) {
        const xf_tensor *ta = &ma.tensors->items[i], *tb = &mb.tensors->items[i];
        n += ta->nbytes != tb->nbytes || memcmp(ta->data, tb->data, ta->nbytes) != 0;
    }
    xf_model_close(&ma);
    xf_model_close(&mb);
    return n;
}

static void quantize(const char *model, const char *calib, const char *out, const char *extra)
{
    xf_cli_result r = xf_cli_run(g_tmp,
                                 "gptq --bits 3 --group 32 --nsamples 6 --seqlen 64 --calib %s "
                                 "%s %s %s",
                                 calib, model, out, extra);
    if (r.code != 0)
        fail_msg("gptq %s: %s", extra, r.err);
    xf_cli_result_free(&r);
}

static void test_pipeline_shared(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_p, "models/stories260K");
    char model[4096];
    snprintf(model, sizeof model, "%s", model_p);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    char *plain = tmp_path("plain.xfq"), *uni = tmp_path("uniform.xfq");
    char *a1 = tmp_path("attn1.xfq"), *a2 = tmp_path("attn2.xfq");
    quantize(model, calib, plain, "");
    quantize(model, calib, uni, "--token-weight uniform");
    expect_same_tensors(plain, uni); /* the default: today's bytes */
    quantize(model, calib, a1, "--token-weight attn-concentration --threads 1");
    quantize(model, calib, a2, "--token-weight attn-concentration --threads 2");
    /* every quantized linear (5 blocks x 7) sees other Hessians */
    assert_int_equal(tensors_differing(plain, a1), 35);
    expect_same_tensors(a1, a2);
    /* the per-query variant weighs other tokens: other tensors again */
    char *m1 = tmp_path("mean.xfq");
    quantize(model, calib, m1, "--token-weight attn-concentration-mean");
    assert_int_equal(tensors_differing(a1, m1), 35);
    free(m1);
    xf_cli_result r = xf_cli_run(g_tmp, "info %s", a1); /* the recipe line */
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"token_weight\":\"attn-concentration\""));
    xf_cli_result_free(&r);
    /* rtn has no Hessian to weight */
    r = xf_cli_run(g_tmp, "rtn --token-weight attn-concentration %s %s", model, uni);
    assert_int_equal(r.code, 2);
    xf_cli_result_free(&r);
    free(plain);
    free(uni);
    free(a1);
    free(a2);
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
        cmocka_unit_test(test_weighted_hessian_matches_naive),
        cmocka_unit_test(test_uniform_weights_same_bytes),
        cmocka_unit_test(test_concentration_hand_made),
        cmocka_unit_test(test_pipeline_shared),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
