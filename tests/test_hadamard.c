/* Hadamard transforms (sim/hadamard.h). The reference for the fast
 * transforms is the entry formula of the header written out here (Sylvester
 * parity times base entry times sign), checked against the library's dense
 * matrix; the base matrices are checked exactly (+-1 entries, B B^T = m I,
 * integer arithmetic), so nothing below trusts the fast code. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "sim/hadamard.h"
#include "tests/support/test_util.h"

/* The orders QuaRot stores. */
static const int64_t REQUIRED[] = {12, 20, 28, 36, 40, 52, 60, 108, 140, 156, 172};
/* Composite sizes small enough for a dense R^T R. */
static const int64_t COMPOSITE[] = {344, 688, 768, 1024, 2 * 156, 8 * 28, 4 * 108};
/* LLM widths: checked against the reference on a few rows only. */
static const int64_t WIDE[] = {4096, 5120, 11008, 13824, 14336};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static double *xmalloc_d(size_t n)
{
    double *p = malloc(sizeof(double) * n);
    assert_non_null(p);
    return p;
}

/* ---- base matrices ---- */

static void check_base(int64_t m)
{
    int8_t *B = malloc((size_t)(m * m));
    assert_non_null(B);
    xf_error err = {{0}};
    if (xf_hadamard_base(m, B, &err) != 0)
        fail_msg("base %lld: %s", (long long)m, err.msg);
    for (int64_t i = 0; i < m * m; i++)
        assert_true(B[i] == 1 || B[i] == -1);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) {
            long dot = 0;
            for (int64_t k = 0; k < m; k++)
                dot += B[i * m + k] * B[j * m + k];
            if (dot != (i == j ? m : 0))
                fail_msg("base %lld: rows %lld, %lld have dot %ld", (long long)m, (long long)i, (long long)j, dot);
        }
    free(B);
}

static void test_base_orders(void **state)
{
    (void)state;
    /* Paley I (12, 20, 24, 28 over GF(27), 44, 60, 68, 108, 140, 344 over
     * GF(343)), Paley II (36, 52 over GF(25), 76, 100 over GF(49)),
     * Goethals-Seidel (156, 172), trivial (1, 2). */
    static const int64_t orders[] = {1, 2, 4, 12, 20, 24, 28, 36, 44, 52, 60, 68, 76, 100, 108, 140, 156, 172, 344};
    for (size_t i = 0; i < N_OF(orders); i++) {
        char desc[64];
        assert_true(xf_hadamard_base_available(orders[i], desc, (int)sizeof desc));
        check_base(orders[i]);
    }
    char desc[64];
    assert_true(xf_hadamard_base_available(28, desc, (int)sizeof desc));
    assert_string_equal(desc, "paley1 q=27");
    assert_true(xf_hadamard_base_available(52, desc, (int)sizeof desc));
    assert_string_equal(desc, "paley2 q=25");
    assert_true(xf_hadamard_base_available(172, desc, (int)sizeof desc));
    assert_string_equal(desc, "goethals-seidel t=43");
    /* 40 is 2 x 20, not a base order; 188 has no construction here */
    int8_t B[4];
    xf_error err = {{0}};
    assert_false(xf_hadamard_base_available(40, NULL, 0));
    assert_int_equal(xf_hadamard_base(188, B, &err), -1);
    assert_non_null(strstr(err.msg, "188"));
}

/* ---- factorization ---- */

static void test_factor(void **state)
{
    (void)state;
    static const struct {
        int64_t n, pow2, m;
    } cases[] = {{1, 1, 1},        {2, 2, 1},         {4096, 4096, 1},   {12, 1, 12},      {40, 2, 20},
                 {172, 1, 172},    {344, 2, 172},     {688, 4, 172},     {11008, 64, 172}, {14336, 512, 28},
                 {5120, 256, 20},  {13824, 128, 108}, {768, 64, 12},     {156, 1, 156},    {27648, 256, 108},
                 {18944, 128, 148}};
    for (size_t i = 0; i < N_OF(cases); i++) {
        int64_t p = 0, m = 0;
        xf_error err = {{0}};
        if (xf_hadamard_factor(cases[i].n, &p, &m, &err) != 0)
            fail_msg("%lld: %s", (long long)cases[i].n, err.msg);
        assert_int_equal(p, cases[i].pow2);
        assert_int_equal(m, cases[i].m);
        assert_int_equal(p * m, cases[i].n);
        assert_true(xf_hadamard_available(cases[i].n));
    }
    for (size_t i = 0; i < N_OF(REQUIRED); i++)
        assert_true(xf_hadamard_available(REQUIRED[i]));
}

static void test_unsupported(void **state)
{
    (void)state;
    static const int64_t bad[] = {0, -4, 3, 6, 10, 22, 188, 376};
    for (size_t i = 0; i < N_OF(bad); i++) {
        xf_error err = {{0}};
        xf_hadamard h;
        assert_false(xf_hadamard_available(bad[i]));
        assert_int_equal(xf_hadamard_init(&h, bad[i], &err), -1);
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)bad[i]);
        assert_non_null(strstr(err.msg, "hadamard"));
        assert_non_null(strstr(err.msg, num));
        assert_null(strchr(err.msg, '\n'));
        /* the dense form refuses too, with the same kind of message */
        xf_error err2 = {{0}};
        double out[1];
        assert_int_equal(xf_hadamard_dense(bad[i], NULL, out, &err2), -1);
        assert_non_null(strstr(err2.msg, num));
    }
    xf_error err = {{0}};
    float x[6] = {0};
    assert_int_equal(xf_fwht_rows_f32(x, 1, 6, &err), -1);
    assert_non_null(strstr(err.msg, "power of two"));
    xf_hadamard h;
    assert_int_equal(xf_hadamard_init(&h, 12, &err), 0);
    assert_int_equal(xf_hadamard_rows_f32(&h, x, -1, false, &err), -1);
    xf_hadamard_free(&h);
}

/* ---- reference entry formula ---- */

/* R[i][j] per the header, from the exactly checked base matrix B. */
typedef struct ref_had {
    int64_t n, m;
    int8_t *B;
    int8_t *s; /* NULL: plain */
} ref_had;

static void ref_open(ref_had *r, int64_t n, const uint64_t *seed)
{
    int64_t p;
    xf_error err = {{0}};
    r->n = n;
    if (xf_hadamard_factor(n, &p, &r->m, &err) != 0)
        fail_msg("%s", err.msg);
    r->B = malloc((size_t)(r->m * r->m));
    assert_non_null(r->B);
    assert_int_equal(xf_hadamard_base(r->m, r->B, &err), 0);
    r->s = NULL;
    if (seed) {
        /* splitmix64 as documented in the header, written out again */
        r->s = malloc((size_t)n);
        assert_non_null(r->s);
        uint64_t st = *seed;
        for (int64_t i = 0; i < n; i++) {
            uint64_t z = (st += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            z ^= z >> 31;
            r->s[i] = (z >> 63) ? -1 : 1;
        }
    }
}

static void ref_close(ref_had *r)
{
    free(r->B);
    free(r->s);
}

static double ref_entry(const ref_had *r, int64_t i, int64_t j)
{
    int64_t a = i / r->m, b = i % r->m, a2 = j / r->m, b2 = j % r->m;
    int par = 0;
    for (int64_t v = a & a2; v; v >>= 1)
        par ^= (int)(v & 1);
    double e = (par ? -1.0 : 1.0) * r->B[b * r->m + b2];
    if (r->s)
        e *= r->s[j];
    return e / sqrt((double)r->n);
}

/* y = x R (inverse: x R^T) in fp64 from the entry formula, with the loops
 * split along i = a*m + b so that large n stays fast. */
static void ref_apply(const ref_had *r, const double *x, double *y, int inverse)
{
    const int64_t n = r->n, m = r->m, P = n / m;
    const double scale = 1.0 / sqrt((double)n);
    for (int64_t j = 0; j < n; j++) {
        int64_t a2 = j / m, b2 = j % m;
        double acc = 0;
        for (int64_t a = 0; a < P; a++) {
            double part = 0;
            for (int64_t b = 0; b < m; b++) {
                int64_t i = a * m + b;
                /* forward R[i][j]; inverse R^T[i][j] = R[j][i] */
                double e = inverse ? r->B[b2 * m + b] * (r->s ? r->s[i] : 1)
                                   : r->B[b * m + b2] * (r->s ? r->s[j] : 1);
                part += x[i] * e;
            }
            acc += __builtin_parityll((unsigned long long)(a & a2)) ? -part : part;
        }
        y[j] = acc * scale;
    }
}

/* ---- dense form ---- */

/* R^T R = I (1e-10), sqrt(n) R entries exactly +-1, equal to the formula. */
static void check_dense(int64_t n, const uint64_t *seed)
{
    double *R = xmalloc_d((size_t)(n * n)), *G = xmalloc_d((size_t)(n * n));
    xf_error err = {{0}};
    if (xf_hadamard_dense(n, seed, R, &err) != 0)
        fail_msg("dense %lld: %s", (long long)n, err.msg);
    ref_had ref;
    ref_open(&ref, n, seed);
    double sq = sqrt((double)n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = R[i * n + j] * sq;
            if (fabs(fabs(v) - 1.0) > 1e-12 || R[i * n + j] != ref_entry(&ref, i, j))
                fail_msg("dense %lld: entry (%lld,%lld) = %g", (long long)n, (long long)i, (long long)j, v);
        }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, R, (int)n, R, (int)n, 0.0,
                G, (int)n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double d = fabs(G[i * n + j] - (i == j ? 1.0 : 0.0));
            worst = d > worst ? d : worst;
        }
    if (worst > 1e-10)
        fail_msg("dense %lld: |R^T R - I| = %g", (long long)n, worst);
    ref_close(&ref);
    free(R);
    free(G);
}

static void test_dense_orthogonal(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_OF(REQUIRED); i++)
        check_dense(REQUIRED[i], NULL);
    for (size_t i = 0; i < N_OF(COMPOSITE); i++)
        check_dense(COMPOSITE[i], NULL);
    for (int64_t n = 1; n <= 256; n *= 2)
        check_dense(n, NULL);
}

/* ---- fast transforms against the reference ---- */

static void check_fast(int64_t n, const uint64_t *seed, int64_t rows)
{
    xf_hadamard h;
    xf_error err = {{0}};
    int rc = seed ? xf_hadamard_init_random(&h, n, *seed, &err) : xf_hadamard_init(&h, n, &err);
    if (rc != 0)
        fail_msg("init %lld: %s", (long long)n, err.msg);
    ref_had ref;
    ref_open(&ref, n, seed);
    uint64_t rng = 1234 + (uint64_t)n;
    size_t total = (size_t)(rows * n);
    double *x = xmalloc_d(total), *y64 = xmalloc_d(total), *want = xmalloc_d((size_t)n);
    float *y32 = malloc(sizeof(float) * total);
    assert_non_null(y32);
    for (size_t i = 0; i < total; i++)
        x[i] = xf_test_rand_normal(&rng);
    for (int inverse = 0; inverse < 2; inverse++) {
        memcpy(y64, x, sizeof(double) * total);
        for (size_t i = 0; i < total; i++)
            y32[i] = (float)x[i];
        assert_int_equal(xf_hadamard_rows_f64(&h, y64, rows, inverse, &err), 0);
        assert_int_equal(xf_hadamard_rows_f32(&h, y32, rows, inverse, &err), 0);
        double e64 = 0, e32 = 0;
        for (int64_t r = 0; r < rows; r++) {
            ref_apply(&ref, x + r * n, want, inverse);
            for (int64_t j = 0; j < n; j++) {
                double d64 = fabs(y64[r * n + j] - want[j]), d32 = fabs((double)y32[r * n + j] - want[j]);
                e64 = d64 > e64 ? d64 : e64;
                e32 = d32 > e32 ? d32 : e32;
            }
        }
        if (e64 > 1e-12 || e32 > 1e-5)
            fail_msg("n=%lld %s%s: max error fp64 %g fp32 %g", (long long)n, inverse ? "inverse" : "forward",
                     seed ? " randomized" : "", e64, e32);
    }
    /* forward then inverse is the identity */
    memcpy(y64, x, sizeof(double) * total);
    for (size_t i = 0; i < total; i++)
        y32[i] = (float)x[i];
    assert_int_equal(xf_hadamard_rows_f64(&h, y64, rows, false, &err), 0);
    assert_int_equal(xf_hadamard_rows_f64(&h, y64, rows, true, &err), 0);
    assert_int_equal(xf_hadamard_rows_f32(&h, y32, rows, false, &err), 0);
    assert_int_equal(xf_hadamard_rows_f32(&h, y32, rows, true, &err), 0);
    for (size_t i = 0; i < total; i++) {
        assert_true(fabs(y64[i] - x[i]) < 1e-12);
        assert_true(fabs((double)y32[i] - x[i]) < 1e-5);
    }
    ref_close(&ref);
    xf_hadamard_free(&h);
    free(x);
    free(y64);
    free(y32);
    free(want);
}

static void test_fast_matches_reference(void **state)
{
    (void)state;
    for (int64_t n = 1; n <= 4096; n *= 2)
        check_fast(n, NULL, 3);
    for (size_t i = 0; i < N_OF(REQUIRED); i++)
        check_fast(REQUIRED[i], NULL, 5);
    for (size_t i = 0; i < N_OF(COMPOSITE); i++)
        check_fast(COMPOSITE[i], NULL, 2);
}

static void test_fast_wide(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_OF(WIDE); i++)
        check_fast(WIDE[i], NULL, 1);
    uint64_t seed = 7;
    check_fast(11008, &seed, 1);
}

/* Many rows: crosses the GEMM chunk size and the OpenMP threshold. */
static void test_many_rows(void **state)
{
    (void)state;
    static const int64_t sizes[] = {172, 1024, 688};
    for (size_t k = 0; k < N_OF(sizes); k++) {
        int64_t n = sizes[k], rows = 2000;
        xf_hadamard h;
        xf_error err = {{0}};
        uint64_t seed = 99;
        assert_int_equal(xf_hadamard_init_random(&h, n, seed, &err), 0);
        ref_had ref;
        ref_open(&ref, n, &seed);
        float *x = malloc(sizeof(float) * (size_t)(rows * n));
        double *row = xmalloc_d((size_t)n), *want = xmalloc_d((size_t)n);
        assert_non_null(x);
        uint64_t rng = 5;
        for (int64_t i = 0; i < rows * n; i++)
            x[i] = xf_test_rand_normal(&rng);
        /* remember three rows (first, middle, last) */
        const int64_t pick[3] = {0, rows / 2 + 1, rows - 1};
        double *orig = xmalloc_d((size_t)(3 * n));
        for (int p = 0; p < 3; p++)
            for (int64_t j = 0; j < n; j++)
                orig[p * n + j] = x[pick[p] * n + j];
        assert_int_equal(xf_hadamard_rows_f32(&h, x, rows, false, &err), 0);
        for (int p = 0; p < 3; p++) {
            ref_apply(&ref, orig + p * n, want, 0);
            for (int64_t j = 0; j < n; j++)
                assert_true(fabs((double)x[pick[p] * n + j] - want[j]) < 1e-5);
        }
        ref_close(&ref);
        xf_hadamard_free(&h);
        free(x);
        free(row);
        free(want);
        free(orig);
    }
}

/* ---- plain FWHT entry points ---- */

static void test_fwht_plain(void **state)
{
    (void)state;
    for (int64_t n = 1; n <= 2048; n *= 4) {
        ref_had ref;
        ref_open(&ref, n, NULL);
        double *x = xmalloc_d((size_t)(2 * n)), *y = xmalloc_d((size_t)(2 * n)), *want = xmalloc_d((size_t)n);
        float *yf = malloc(sizeof(float) * (size_t)(2 * n));
        assert_non_null(yf);
        uint64_t rng = 77;
        for (int64_t i = 0; i < 2 * n; i++) {
            x[i] = xf_test_rand_normal(&rng);
            y[i] = x[i];
            yf[i] = (float)x[i];
        }
        xf_error err = {{0}};
        assert_int_equal(xf_fwht_rows_f64(y, 2, n, &err), 0);
        assert_int_equal(xf_fwht_rows_f32(yf, 2, n, &err), 0);
        for (int r = 0; r < 2; r++) {
            ref_apply(&ref, x + r * n, want, 0);
            for (int64_t j = 0; j < n; j++) {
                assert_true(fabs(y[r * n + j] - want[j]) < 1e-12);
                assert_true(fabs((double)yf[r * n + j] - want[j]) < 1e-5);
            }
        }
        /* Sylvester normalized is an involution */
        assert_int_equal(xf_fwht_rows_f64(y, 2, n, &err), 0);
        for (int64_t i = 0; i < 2 * n; i++)
            assert_true(fabs(y[i] - x[i]) < 1e-12);
        ref_close(&ref);
        free(x);
        free(y);
        free(yf);
        free(want);
    }
}

/* ---- randomized ---- */

static void test_randomized(void **state)
{
    (void)state;
    static const int64_t sizes[] = {64, 172, 688};
    for (size_t k = 0; k < N_OF(sizes); k++) {
        int64_t n = sizes[k];
        uint64_t s1 = 1, s2 = 2;
        check_dense(n, &s1);
        check_fast(n, &s1, 3);
        double *R1 = xmalloc_d((size_t)(n * n)), *R1b = xmalloc_d((size_t)(n * n)),
               *R2 = xmalloc_d((size_t)(n * n)), *H = xmalloc_d((size_t)(n * n));
        xf_error err = {{0}};
        assert_int_equal(xf_hadamard_dense(n, &s1, R1, &err), 0);
        assert_int_equal(xf_hadamard_dense(n, &s1, R1b, &err), 0);
        assert_int_equal(xf_hadamard_dense(n, &s2, R2, &err), 0);
        assert_int_equal(xf_hadamard_dense(n, NULL, H, &err), 0);
        assert_memory_equal(R1, R1b, sizeof(double) * (size_t)(n * n));
        /* R = H diag(s): every column of R is +-(that column of H); seeds 1
         * and 2 flip different columns */
        int64_t differ = 0, flipped = 0;
        for (int64_t j = 0; j < n; j++) {
            double c1 = R1[j] / H[j], c2 = R2[j] / H[j];
            for (int64_t i = 0; i < n; i++) {
                assert_true(R1[i * n + j] == c1 * H[i * n + j]);
                assert_true(R2[i * n + j] == c2 * H[i * n + j]);
            }
            differ += c1 != c2;
            flipped += c1 < 0;
        }
        assert_true(differ > n / 8);
        assert_true(flipped > n / 8 && flipped < n - n / 8);
        free(R1);
        free(R1b);
        free(R2);
        free(H);
    }
    /* signs: the documented generator */
    int8_t s[16];
    xf_hadamard_signs(42, 16, s);
    ref_had ref;
    uint64_t seed = 42;
    ref_open(&ref, 16, &seed);
    assert_memory_equal(s, ref.s, 16);
    ref_close(&ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_orders),
        cmocka_unit_test(test_factor),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_dense_orthogonal),
        cmocka_unit_test(test_fast_matches_reference),
        cmocka_unit_test(test_fast_wide),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_fwht_plain),
        cmocka_unit_test(test_randomized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
