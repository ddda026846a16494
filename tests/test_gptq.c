/* GPTQ, the Hessian accumulator and the quantized-weight container.
 * The main check compares the blocked solver with a plain column-by-column
 * GPTQ written here in fp64 (own Cholesky and inverse, no LAPACK). The
 * grids in that reference come from quant/weights/grid.h, tested on its own in
 * test_grid.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "formats/xfq_pack.h"
#include "quant/weights/gptq.h"
#include "quant/weights/hessian.h"
#include "quant/weights/qweight.h"
#include "quant/weights/rtn.h"
#include "tests/support/test_util.h"

/* ---- test data ---- */

static float *make_weights(int rows, int cols, uint64_t seed)
{
    uint64_t rng = seed;
    float *W = malloc(sizeof(float) * rows * cols);
    for (int i = 0; i < rows * cols; i++)
        W[i] = xf_test_rand_normal(&rng) * 0.1f;
    return W;
}

/* ---- plain fp64 reference GPTQ ---- */

/* A = L L^T in place (lower; upper zeroed). -1 if not positive definite. */
static int ref_chol(double *A, int n)
{
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++)
            s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0))
            return -1;
        double ljj = sqrt(s);
        A[j * n + j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++)
                t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / ljj;
        }
        for (int i = 0; i < j; i++)
            A[i * n + j] = 0;
    }
    return 0;
}

/* Ainv = L^-T L^-1 from the lower factor L. */
static void ref_inverse_from_chol(const double *L, double *Ainv, int n)
{
    double *Y = calloc((size_t)n * n, sizeof(double)); /* Y = L^-1, lower */
    for (int c = 0; c < n; c++)
        for (int i = c; i < n; i++) {
            double t = (i == c) ? 1.0 : 0.0;
            for (int k = c; k < i; k++)
                t -= L[i * n + k] * Y[k * n + c];
            Y[i * n + c] = t / L[i * n + i];
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double t = 0;
            for (int k = i > j ? i : j; k < n; k++)
                t += Y[k * n + i] * Y[k * n + j];
            Ainv[i * n + j] = t;
        }
    free(Y);
}

typedef struct ref_result {
    uint8_t *codes;  /* [rows, n] storage order */
    float *scales;   /* [rows, G] */
    uint8_t *zeros;
    int32_t perm[1024];
    bool has_perm;
} ref_result;

/* GPTQ exactly as docs/methods.md states it, one column at a time, fp64,
 * with the layout contract of quant/weights/gptq.h. */
static void ref_gptq(const float *W0, int rows, int n, const double *H0, const xf_gptq_params *p,
                     ref_result *o)
{
    double *H = malloc(sizeof(double) * n * n);
    memcpy(H, H0, sizeof(double) * n * n);
    double *W = malloc(sizeof(double) * rows * n);
    for (int i = 0; i < rows * n; i++)
        W[i] = W0[i];
    for (int i = 0; i < n; i++)
        if (H[i * n + i] == 0) {
            H[i * n + i] = 1;
            for (int r = 0; r < rows; r++)
                W[r * n + i] = 0;
        }
    int perm[1024];
    for (int i = 0; i < n; i++)
        perm[i] = i;
    if (p->act_order) /* insertion sort: stable, descending diagonal */
        for (int i = 1; i < n; i++) {
            int v = perm[i], k = i;
            while (k > 0 && H[perm[k - 1] * n + perm[k - 1]] < H[v * n + v]) {
                perm[k] = perm[k - 1];
                k--;
            }
            perm[k] = v;
        }
    double *A = malloc(sizeof(double) * n * n), *Hinv = malloc(sizeof(double) * n * n);
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += H[i * n + i] / n;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            A[a * n + b] = H[perm[a] * n + perm[b]] + (a == b ? p->damp * mean : 0.0);
    assert_int_equal(ref_chol(A, n), 0);
    ref_inverse_from_chol(A, Hinv, n);
    assert_int_equal(ref_chol(Hinv, n), 0); /* Hinv = L L^T; U = L^T */
    double *U = A;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            U[a * n + b] = Hinv[b * n + a];

    int g = (p->group <= 0 || p->group >= n) ? n : (int)p->group;
    bool per_channel = g == n, stat = p->static_groups && !per_channel;
    bool identity = true;
    for (int i = 0; i < n; i++)
        identity &= perm[i] == i;
    o->has_perm = p->act_order && !per_channel && !stat && !identity;
    memcpy(o->perm, perm, sizeof(int) * n);
    int G = (n + g - 1) / g;
    o->codes = malloc((size_t)rows * n);
    o->scales = malloc(sizeof(float) * rows * G);
    o->zeros = malloc((size_t)rows * G);
    xf_grid *grids = malloc(sizeof(xf_grid) * rows * G);
    float *tmp = malloc(sizeof(float) * n);
    if (stat) /* logical groups, original (dead-zeroed) weights */
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < G; k++) {
                int len = (k + 1) * g < n ? g : n - k * g;
                for (int j = 0; j < len; j++)
                    tmp[j] = (float)W[r * n + k * g + j];
                grids[r * G + k] = xf_grid_fit(&p->grid, tmp, len);
            }
    double *Wp = malloc(sizeof(double) * rows * n);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            Wp[r * n + i] = W[r * n + perm[i]];
    for (int i = 0; i < n; i++) {
        int gi = per_channel ? 0 : stat ? perm[i] / g : i / g;
        int store = o->has_perm ? i : perm[i];
        bool fit = per_channel ? i == 0 : (!stat && i % g == 0);
        for (int r = 0; r < rows; r++) {
            double *w = Wp + r * n;
            if (fit) {
                int len = i + g < n ? g : n - i;
                for (int j = 0; j < len; j++)
                    tmp[j] = (float)w[i + j];
                grids[r * G + gi] = xf_grid_fit(&p->grid, tmp, len);
            }
            const xf_grid *gr = &grids[r * G + gi];
            uint8_t c = xf_grid_quantize(gr, (float)w[i]);
            double q = xf_grid_dequantize(gr, c);
            double e = (w[i] - q) / U[i * n + i];
            o->codes[r * n + store] = c;
            for (int j = i + 1; j < n; j++)
                w[j] -= e * U[i * n + j];
        }
    }
    for (int r = 0; r < rows * G; r++) {
        o->scales[r] = grids[r].scale;
        o->zeros[r] = grids[r].zero;
    }
    free(H);
    free(W);
    free(A);
    free(Hinv);
    free(grids);
    free(tmp);
    free(Wp);
}

static void ref_free(ref_result *o)
{
    free(o->codes);
    free(o->scales);
    free(o->zeros);
}

/* ---- tests ---- */

static void test_matches_plain_reference(void **state)
{
    (void)state;
    enum { ROWS = 48, COLS = 200, N = 512 };
    float *X = xf_test_correlated_inputs(N, COLS, 3);
    double *H = xf_test_hessian(X, N, COLS);
    float *W = make_weights(ROWS, COLS, 4);
    const int64_t blocks[] = {1, 7, 32, 128, 256};
    struct { int64_t group; bool stat; bool sym; xf_clip clip; int bits; } modes[] = {
        {-1, false, false, XF_CLIP_NONE, 4}, {32, false, false, XF_CLIP_NONE, 3},
        {32, true, true, XF_CLIP_NONE, 4},   {32, false, true, XF_CLIP_MSE, 4},
        {24, false, false, XF_CLIP_NONE, 4}}; /* group starts inside sub-blocks */
    /* per factor form: [0] Cholesky (the default), [1] inverse */
    long total[2] = {0}, off[2] = {0}, scale_off[2] = {0};
    for (int inv = 0; inv < 2; inv++) {
        for (int m = 0; m < 5; m++)
            for (int act = 0; act <= 1; act++) {
                xf_gptq_params p;
                xf_gptq_params_default(&p);
                p.grid.bits = modes[m].bits;
                p.grid.sym = modes[m].sym;
                p.grid.clip = modes[m].clip;
                p.group = modes[m].group;
                p.static_groups = modes[m].stat;
                p.act_order = act;
                p.inverse_factor = inv;
                ref_result ref;
                ref_gptq(W, ROWS, COLS, H, &p, &ref);
                for (int b = 0; b < 5; b++) {
                    p.block = blocks[b];
                    float *Wq = xf_test_copy_f32(W, ROWS * COLS);
                    xf_qweight q;
                    xf_gptq_stats st;
                    xf_error err;
                    assert_int_equal(xf_gptq_solve(Wq, ROWS, COLS, H, &p, &q, &st, "l", &err), 0);
                    assert_int_equal(q.perm != NULL, ref.has_perm);
                    if (q.perm)
                        assert_memory_equal(q.perm, ref.perm, sizeof(int32_t) * COLS);
                    long mism = 0;
                    for (int i = 0; i < ROWS * COLS; i++) {
                        int d = abs((int)q.codes[i] - (int)ref.codes[i]);
                        assert_true(d <= 1);
                        mism += d != 0;
                    }
                    for (int i = 0; i < ROWS * q.n_groups; i++)
                        scale_off[inv] += q.scales[i] != ref.scales[i] || q.zeros[i] != ref.zeros[i];
                    total[inv] += ROWS * COLS;
                    off[inv] += mism;
                    assert_true(mism <= ROWS * COLS / 200); /* at most 0.5% per solve */
                    assert_true(st.loss > 0 && isfinite(st.loss));
                    xf_qweight_free(&q);
                    free(Wq);
                }
                ref_free(&ref);
            }
    }
    for (int inv = 0; inv < 2; inv++) {
        print_message("blocked vs plain fp64 GPTQ (%s form): %ld of %ld codes differ by one "
                      "(%.4f%%), %ld grids differ\n", inv ? "inverse" : "Cholesky", off[inv],
                      total[inv], 100.0 * off[inv] / total[inv], scale_off[inv]);
        assert_true(off[inv] * 1000 <= total[inv]); /* at most 0.1% overall */
    }
    free(X);
    free(H);
    free(W);
}

/* H = I: no error feedback, so GPTQ is RTN. */
static void test_identity_hessian_is_rtn(void **state)
{
    (void)state;
    enum { ROWS = 20, COLS = 96 };
    double *H = calloc(COLS * COLS, sizeof(double));
    for (int i = 0; i < COLS; i++)
        H[i * COLS + i] = 1.0;
    float *W = make_weights(ROWS, COLS, 9);
    const int64_t groups[] = {-1, 32, 20};
    for (int gi = 0; gi < 3; gi++)
        for (int v = 0; v < 8; v++) {
            xf_gptq_params p;
            xf_gptq_params_default(&p);
            p.group = groups[gi];
            p.grid.sym = v & 1;
            p.act_order = (v >> 1) & 1;
            p.grid.clip = (v >> 2) & 1 ? XF_CLIP_MSE : XF_CLIP_NONE;
            p.block = 16;
            xf_rtn_params rp = {.grid = p.grid, .group = p.group};
            xf_qweight a, b;
            float *Wq = xf_test_copy_f32(W, ROWS * COLS);
            assert_int_equal(xf_gptq_solve(Wq, ROWS, COLS, H, &p, &a, NULL, "l", NULL), 0);
            assert_int_equal(xf_rtn_quantize(W, ROWS, COLS, &rp, &b, "l", NULL), 0);
            assert_null(a.perm);
            assert_memory_equal(a.codes, b.codes, ROWS * COLS);
            assert_memory_equal(a.scales, b.scales, sizeof(float) * ROWS * a.n_groups);
            assert_memory_equal(a.zeros, b.zeros, ROWS * a.n_groups);
            xf_qweight_free(&a);
            xf_qweight_free(&b);
            free(Wq);
        }
    free(H);
    free(W);
}

static double output_error(const float *W, const float *Q, const float *X, int rows, int cols,
                           int N)
{
    double s = 0;
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < N; t++) {
            double y = 0;
            for (int j = 0; j < cols; j++)
                y += ((double)W[r * cols + j] - Q[r * cols + j]) * X[t * cols + j];
            s += y * y;
        }
    return s;
}

/* GPTQ's layer output error is below RTN's, for every seed. */
static void test_beats_rtn(void **state)
{
    (void)state;
    enum { ROWS = 32, COLS = 128, N = 384 };
    for (uint64_t seed = 1; seed <= 5; seed++) {
        float *X = xf_test_correlated_inputs(N, COLS, 100 + seed);
        double *H = xf_test_hessian(X, N, COLS);
        float *W = make_weights(ROWS, COLS, 200 + seed);
        for (int v = 0; v < 2; v++) {
            xf_gptq_params p;
            xf_gptq_params_default(&p);
            p.grid.bits = 3;
            p.group = v ? 32 : -1;
            p.act_order = v;
            xf_rtn_params rp = {.grid = p.grid, .group = p.group};
            float *Wq = xf_test_copy_f32(W, ROWS * COLS), *Qr = malloc(sizeof(float) * ROWS * COLS);
            xf_qweight a, b;
            assert_int_equal(xf_gptq_solve(Wq, ROWS, COLS, H, &p, &a, NULL, "l", NULL), 0);
            assert_int_equal(xf_rtn_quantize(W, ROWS, COLS, &rp, &b, "l", NULL), 0);
            xf_qweight_dequantize(&b, Qr);
            double eg = output_error(W, Wq, X, ROWS, COLS, N);
            double er = output_error(W, Qr, X, ROWS, COLS, N);
            if (seed == 1)
                print_message("output error (%s): GPTQ %.4g, RTN %.4g\n",
                              v ? "g32 act-order" : "per channel", eg, er);
            assert_true(eg < er);
            xf_qweight_free(&a);
            xf_qweight_free(&b);
            free(Wq);
            free(Qr);
        }
        free(X);
        free(H);
        free(W);
    }
}

static bool all_finite(const float *x, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

/* ---- the factor against the reference's 4/3 n^3 path ---- */

/* U the way the reference computes it, in fp64: dead diagonals 1, stable
 * descending-diagonal order when act_order, A = P^T H P + damp*mean(diag) I,
 * A = L L^T, A^-1 = L^-T L^-1, A^-1 = L2 L2^T, U = L2^T (upper, A^-1 = U^T U).
 * Returns -1 (U unset) when a Cholesky fails. */
static int ref_factor_U(const double *H0, int n, bool act_order, double damp, int *perm,
                        double *U)
{
    double *d = malloc(sizeof(double) * n), mean = 0;
    for (int i = 0; i < n; i++) {
        d[i] = H0[i * n + i] == 0 ? 1.0 : H0[i * n + i];
        mean += d[i] / n;
        perm[i] = i;
    }
    if (act_order) /* insertion sort: stable, descending diagonal */
        for (int i = 1; i < n; i++) {
            int v = perm[i], k = i;
            while (k > 0 && d[perm[k - 1]] < d[v]) {
                perm[k] = perm[k - 1];
                k--;
            }
            perm[k] = v;
        }
    double *A = malloc(sizeof(double) * n * n), *Ainv = malloc(sizeof(double) * n * n);
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            A[a * n + b] = a == b ? d[perm[a]] + damp * mean : H0[perm[a] * n + perm[b]];
    int rc = ref_chol(A, n);
    if (rc == 0) {
        ref_inverse_from_chol(A, Ainv, n);
        rc = ref_chol(Ainv, n);
    }
    if (rc == 0)
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                U[a * n + b] = Ainv[b * n + a];
    free(d);
    free(A);
    free(Ainv);
    return rc;
}

/* The inverse form, one reversed Cholesky + one triangular inverse
 * (quant/weights/gptq_factor.c), gives the reference's U: every fp32 entry
 * within its own rounding (2^-24 relative) plus 1e-10 * max |U| of the fp64
 * reference, the same order, dead columns and, on an indefinite H, the same
 * single retry. The Cholesky form: the same order, dead columns, retry and
 * diagonal d = U_ii, and F = -Ut diag(Ut)^-1 with Ut = U^-1: with U' =
 * diag(U)^-1 U (unit upper), -U' F = U' Ut diag(U) = I, each entry within
 * the fp32 rounding of F (2^-23 relative, with margin) of the sum of
 * |U'_ik F_kj| it is formed from. */
static void check_cholesky_form(const xf_gptq_factor *f, const double *U, int n, double maxu)
{
    for (int a = 0; a < n; a++) {
        double ref = U[a * n + a];
        assert_true(fabs(f->d[a] - ref) <= 0x1p-24 * fabs(ref) + 1e-10 * maxu);
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            if (b < a) {
                assert_true(f->F[a * n + b] == 0.0f);
                continue;
            }
            double s = 0.0, mag = 0.0;
            for (int k = a; k <= b; k++) {
                double t = U[a * n + k] / U[a * n + a] * f->F[k * n + b];
                s -= t;
                mag += fabs(t);
            }
            assert_true(fabs(s - (a == b)) <= 0x1p-22 * mag + 1e-12);
        }
}

static void check_factor_matches_reference(const double *H, int n, bool act_order, double damp,
                                           int expect_retries, double expect_damp)
{
    for (int inverse = 0; inverse < 2; inverse++) {
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.act_order = act_order;
        p.damp = damp;
        p.inverse_factor = inverse;
        xf_gptq_factor f;
        xf_error err;
        assert_int_equal(xf_gptq_factor_init(&f, H, n, &p, "w", &err), 0);
        assert_int_equal(f.retries, expect_retries);
        assert_true(fabs(f.damp_used - expect_damp) <= 1e-12 * expect_damp);
        int perm[256];
        double *U = malloc(sizeof(double) * n * n), maxu = 0;
        if (expect_retries > 0) /* the reference path fails at the first damp too */
            assert_int_equal(ref_factor_U(H, n, act_order, damp, perm, U), -1);
        assert_int_equal(ref_factor_U(H, n, act_order, f.damp_used, perm, U), 0);
        int64_t dead = 0;
        for (int i = 0; i < n; i++) {
            assert_int_equal(f.perm[i], perm[i]);
            assert_int_equal(f.dead[i], H[i * n + i] == 0);
            dead += H[i * n + i] == 0;
        }
        assert_int_equal(f.dead_columns, dead);
        for (int i = 0; i < n * n; i++)
            maxu = fmax(maxu, fabs(U[i]));
        assert_int_equal(f.inverse, inverse);
        if (!inverse)
            check_cholesky_form(&f, U, n, maxu);
        for (int a = 0; inverse && a < n; a++)
            for (int b = 0; b < n; b++) {
                double ref = U[a * n + b], got = f.F[a * n + b];
                if (b < a)
                    assert_true(got == 0.0 && ref == 0.0);
                else
                    assert_true(fabs(got - ref) <= 0x1p-24 * fabs(ref) + 1e-10 * maxu);
                if (a == b)
                    assert_true(f.d[a] == got);
            }
        free(U);
        xf_gptq_factor_free(&f);
    }
}

static void test_factor_matches_reference_path(void **state)
{
    (void)state;
    enum { N = 120, S = 600 };
    uint64_t rng = 7;
    float *X = make_weights(S, N, 11);
    for (int r = 0; r < S; r++) /* unequal column scales: act-order has work to do */
        for (int j = 0; j < N; j++)
            X[r * N + j] *= 0.2f + (float)(j % 13);
    double *H = xf_test_hessian(X, S, N);
    for (int act = 0; act < 2; act++)
        check_factor_matches_reference(H, N, act, 0.01, 0, 0.01);
    /* dead inputs: rows and columns 3, 50, 119 of H zero */
    const int dead[] = {3, 50, 119};
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < N; j++)
            H[dead[k] * N + j] = H[j * N + dead[k]] = 0.0;
    for (int act = 0; act < 2; act++)
        check_factor_matches_reference(H, N, act, 0.01, 0, 0.01);

    /* indefinite: H = Q diag(lam) Q^T, lam[0] = -0.05 * mean(diag H) (0.01 of
     * damping is not enough, 0.1 is): one retry, with either path */
    double *Q = malloc(sizeof(double) * N * N), lam[N], m = 0;
    for (int i = 0; i < N * N; i++)
        Q[i] = xf_test_rand_normal(&rng);
    for (int i = 0; i < N; i++) { /* Gram-Schmidt on the rows, twice */
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < i; k++) {
                double d = 0;
                for (int j = 0; j < N; j++)
                    d += Q[i * N + j] * Q[k * N + j];
                for (int j = 0; j < N; j++)
                    Q[i * N + j] -= d * Q[k * N + j];
            }
        double nrm = 0;
        for (int j = 0; j < N; j++)
            nrm += Q[i * N + j] * Q[i * N + j];
        for (int j = 0; j < N; j++)
            Q[i * N + j] /= sqrt(nrm);
    }
    for (int i = 1; i < N; i++) {
        lam[i] = 0.5 + xf_test_rand_uniform(&rng);
        m += lam[i];
    }
    m /= N + 0.05; /* mean(lam) = m with lam[0] = -0.05 m */
    lam[0] = -0.05 * m;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++)
                s += Q[k * N + i] * lam[k] * Q[k * N + j];
            H[i * N + j] = s;
        }
    xf_log_level lvl = xf_log_get_level();
    xf_log_set_level(XF_LOG_QUIET);
    for (int act = 0; act < 2; act++)
        check_factor_matches_reference(H, N, act, 0.01, 1, 0.1);
    xf_log_set_level(lvl);
    free(Q);
    free(X);
    free(H);
    /* groups wider than 512 fitted in the sweep take the inverse form (the
     * Cholesky form's group-block inverses would cost n g^2 / 6) */
    enum { W = 700 };
    double *Hw = calloc((size_t)W * W, sizeof *Hw);
    for (int i = 0; i < W; i++)
        Hw[i * W + i] = 1.0 + (double)(i % 7);
    const struct { int64_t group; bool stat; bool inverse; } wide[] = {
        {600, false, true}, {512, false, false}, {-1, false, false}, {600, true, false}};
    for (int k = 0; k < 4; k++) {
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.group = wide[k].group;
        p.static_groups = wide[k].stat;
        xf_gptq_factor f;
        assert_int_equal(xf_gptq_factor_init(&f, Hw, W, &p, "w", NULL), 0);
        assert_int_equal(f.inverse, wide[k].inverse);
        xf_gptq_factor_free(&f);
    }
    free(Hw);
}

static void test_singular_hessian_retries(void **state)
{
    (void)state;
    enum { ROWS = 16, COLS = 100, K = 30, N = 300 };
    /* rank-deficient X = Z A with Z [N, K], A [K, COLS] */
    uint64_t rng = 42;
    float *Z = make_weights(N, K, 1), *A = make_weights(K, COLS, 2);
    float *X = calloc(N * COLS, sizeof(float));
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < COLS; j++)
                X[r * COLS + j] += Z[r * K + k] * A[k * COLS + j];
    double *H = xf_test_hessian(X, N, COLS);
    float *W = make_weights(ROWS, COLS, 3);
    xf_gptq_params p;
    xf_gptq_params_default(&p);
    p.damp = 0.0; /* no damping: the singular H must fail and be retried */
    xf_log_level lvl = xf_log_get_level();
    xf_log_set_level(XF_LOG_QUIET);
    float *Wq = xf_test_copy_f32(W, ROWS * COLS);
    xf_qweight q;
    xf_gptq_stats st;
    xf_error err;
    assert_int_equal(xf_gptq_solve(Wq, ROWS, COLS, H, &p, &q, &st, "l", &err), 0);
    assert_true(st.retries > 0 && st.damp_used > p.damp);
    assert_true(all_finite(Wq, ROWS * COLS) && isfinite(st.loss) && isfinite(st.qerr));
    xf_qweight_free(&q);
    free(Wq);

    /* indefinite H = Q diag(lam) Q^T with one eigenvalue -0.05 * mean(diag):
     * damp 0.01 cannot fix it, 0.1 can (mean(diag) = mean(lam)). */
    double *Qm = calloc(COLS * COLS, sizeof(double)), lam[COLS], mean = 0;
    for (int i = 0; i < COLS * COLS; i++)
        Qm[i] = xf_test_rand_normal(&rng);
    for (int i = 0; i < COLS; i++) { /* Gram-Schmidt on the rows */
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < i; k++) {
                double d = 0;
                for (int j = 0; j < COLS; j++)
                    d += Qm[i * COLS + j] * Qm[k * COLS + j];
                for (int j = 0; j < COLS; j++)
                    Qm[i * COLS + j] -= d * Qm[k * COLS + j];
            }
        double nrm = 0;
        for (int j = 0; j < COLS; j++)
            nrm += Qm[i * COLS + j] * Qm[i * COLS + j];
        for (int j = 0; j < COLS; j++)
            Qm[i * COLS + j] /= sqrt(nrm);
    }
    for (int trial = 0; trial < 2; trial++) {
        mean = 0;
        for (int i = 1; i < COLS; i++) {
            lam[i] = 0.5 + xf_test_rand_uniform(&rng);
            mean += lam[i];
        }
        /* mean(lam) = m with lam[0] = -c*m: m = S / (COLS + c) */
        double c = trial == 0 ? 0.05 : 5.0;
        mean /= (COLS + c);
        lam[0] = -c * mean;
        for (int i = 0; i < COLS; i++)
            for (int j = 0; j < COLS; j++) {
                double s = 0;
                for (int k = 0; k < COLS; k++)
                    s += Qm[k * COLS + i] * lam[k] * Qm[k * COLS + j];
                H[i * COLS + j] = s;
            }
        xf_gptq_params_default(&p);
        Wq = xf_test_copy_f32(W, ROWS * COLS);
        int rc = xf_gptq_solve(Wq, ROWS, COLS, H, &p, &q, &st, "blk.3.mlp.up", &err);
        if (trial == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(st.retries, 1);
            assert_true(fabs(st.damp_used - 0.1) < 1e-12);
            assert_true(all_finite(Wq, ROWS * COLS));
            xf_qweight_free(&q);
        } else { /* beyond max_damp 1.0: an error naming the tensor, W untouched */
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err.msg, "blk.3.mlp.up"));
            assert_memory_equal(Wq, W, sizeof(float) * ROWS * COLS);
            assert_null(q.codes);
        }
        free(Wq);
    }
    xf_log_set_level(lvl);
    free(Qm);
    free(Z);
    free(A);
    free(X);
    free(H);
    free(W);
}

static void test_dead_columns(void **state)
{
    (void)state;
    enum { ROWS = 12, COLS = 64, N = 200 };
    float *X = xf_test_correlated_inputs(N, COLS, 8);
    for (int r = 0; r < N; r++)
        X[r * COLS + 5] = X[r * COLS + 40] = 0.0f;
    double *H = xf_test_hessian(X, N, COLS);
    float *W = make_weights(ROWS, COLS, 9);
    for (int act = 0; act <= 1; act++) {
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.act_order = act;
        p.group = 16;
        float *Wq = xf_test_copy_f32(W, ROWS * COLS);
        xf_qweight q;
        xf_gptq_stats st;
        assert_int_equal(xf_gptq_solve(Wq, ROWS, COLS, H, &p, &q, &st, "l", NULL), 0);
        assert_int_equal(st.dead_columns, 2);
        double dead_err = 0;
        for (int r = 0; r < ROWS; r++) {
            assert_true(Wq[r * COLS + 5] == 0.0f && Wq[r * COLS + 40] == 0.0f);
            dead_err += (double)W[r * COLS + 5] * W[r * COLS + 5] +
                        (double)W[r * COLS + 40] * W[r * COLS + 40];
        }
        assert_true(st.qerr >= dead_err); /* qerr is against the input W */
        xf_qweight_free(&q);
        free(Wq);
    }
    free(X);
    free(H);
    free(W);
}

/* Same input, same bytes; the packed export dequantizes to the solver's Q. */
static void test_determinism_and_export(void **state)
{
    (void)state;
    enum { ROWS = 24, COLS = 150, N = 300 };
    float *X = xf_test_correlated_inputs(N, COLS, 21);
    double *H = xf_test_hessian(X, N, COLS);
    float *W = make_weights(ROWS, COLS, 22);
    struct { int bits; bool sym, act, stat; int64_t group; } cfg[] = {
        {4, false, true, false, 32}, {3, true, true, true, 32}, {2, false, false, false, -1},
        {8, true, true, false, -1},  {4, true, true, false, 50}};
    float *d1 = malloc(sizeof(float) * ROWS * COLS), *d2 = malloc(sizeof(float) * ROWS * COLS);
    for (int c = 0; c < 5; c++) {
        xf_gptq_params p;
        xf_gptq_params_default(&p);
        p.grid.bits = cfg[c].bits;
        p.grid.sym = cfg[c].sym;
        p.act_order = cfg[c].act;
        p.static_groups = cfg[c].stat;
        p.group = cfg[c].group;
        p.block = 64;
        float *A = xf_test_copy_f32(W, ROWS * COLS), *B = xf_test_copy_f32(W, ROWS * COLS);
        xf_qweight qa, qb;
        xf_gptq_stats sa, sb;
        assert_int_equal(xf_gptq_solve(A, ROWS, COLS, H, &p, &qa, &sa, "l", NULL), 0);
        assert_int_equal(xf_gptq_solve(B, ROWS, COLS, H, &p, &qb, &sb, "l", NULL), 0);
        assert_memory_equal(A, B, sizeof(float) * ROWS * COLS);
        assert_memory_equal(qa.codes, qb.codes, ROWS * COLS);
        assert_memory_equal(qa.scales, qb.scales, sizeof(float) * ROWS * qa.n_groups);
        assert_memory_equal(qa.zeros, qb.zeros, ROWS * qa.n_groups);
        assert_true(sa.loss == sb.loss && sa.qerr == sb.qerr);
        if (c == 0 || c == 4)
            assert_non_null(qa.perm); /* act-order + groups: permuted storage */
        else
            assert_null(qa.perm);
        /* in-place result == container dequantization == packed dequantization */
        xf_qweight_dequantize(&qa, d1);
        assert_memory_equal(d1, A, sizeof(float) * ROWS * COLS);
        xf_qweight_packed pk;
        xf_error err;
        assert_int_equal(xf_qweight_export(&qa, "blk.0.attn.q", &pk, &err), 0);
        assert_string_equal(pk.tensor.name, "blk.0.attn.q");
        assert_int_equal(pk.tensor.packed.asym, !cfg[c].sym);
        assert_int_equal(xf_tensor_to_f32(&pk.tensor, d2, &err), 0);
        assert_memory_equal(d1, d2, sizeof(float) * ROWS * COLS);
        /* qerr is ||W - Q||^2 */
        double qe = 0;
        for (int i = 0; i < ROWS * COLS; i++)
            qe += ((double)W[i] - A[i]) * ((double)W[i] - A[i]);
        assert_true(fabs(qe - sa.qerr) <= 1e-9 * qe);
        xf_qweight_packed_free(&pk);
        xf_qweight_free(&qa);
        xf_qweight_free(&qb);
        free(A);
        free(B);
    }
    /* 5-bit codes have no storage type */
    xf_rtn_params rp = {.grid = {.bits = 5}, .group = -1};
    xf_qweight q5;
    xf_qweight_packed pk;
    xf_error err;
    assert_int_equal(xf_rtn_quantize(W, ROWS, COLS, &rp, &q5, "l", NULL), 0);
    assert_int_equal(xf_qweight_export(&q5, "w5", &pk, &err), -1);
    assert_non_null(strstr(err.msg, "w5"));
    xf_qweight_free(&q5);
    free(d1);
    free(d2);
    free(X);
    free(H);
    free(W);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    enum { ROWS = 4, COLS = 8 };
    double H[COLS * COLS] = {0};
    for (int i = 0; i < COLS; i++)
        H[i * COLS + i] = 1.0;
    float W[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++)
        W[i] = (float)i * 0.01f;
    xf_gptq_params p;
    xf_gptq_params_default(&p);
    xf_qweight q;
    xf_error err;
    p.block = 0;
    assert_int_equal(xf_gptq_solve(W, ROWS, COLS, H, &p, &q, NULL, "w.a", &err), -1);
    assert_non_null(strstr(err.msg, "w.a"));
    xf_gptq_params_default(&p);
    p.grid.bits = 9;
    assert_int_equal(xf_gptq_solve(W, ROWS, COLS, H, &p, &q, NULL, "w.b", &err), -1);
    xf_gptq_params_default(&p);
    W[3] = INFINITY;
    assert_int_equal(xf_gptq_solve(W, ROWS, COLS, H, &p, &q, NULL, "w.c", &err), -1);
    assert_non_null(strstr(err.msg, "w.c"));
    W[3] = 0.0f;
    H[9] = NAN;
    assert_int_equal(xf_gptq_solve(W, ROWS, COLS, H, &p, &q, NULL, "w.d", &err), -1);
    assert_non_null(strstr(err.msg, "w.d"));
    H[9] = 0.0;
    /* a factor made without act-order cannot serve an act-order solve */
    xf_gptq_factor f;
    assert_int_equal(xf_gptq_factor_init(&f, H, COLS, &p, "w.e", &err), 0);
    p.act_order = true;
    assert_int_equal(xf_gptq_solve_factored(W, ROWS, &f, &p, &q, NULL, "w.e", &err), -1);
    xf_gptq_factor_free(&f);
}

static void test_hessian_accumulator(void **state)
{
    (void)state;
    enum { D = 24, N = 5000 }; /* more rows than one fp32 batch holds */
    float *X = xf_test_correlated_inputs(N, D, 31);
    double *ref = xf_test_hessian(X, N, D), *H = malloc(sizeof(double) * D * D);
    xf_hessian h;
    xf_error err;
    assert_int_equal(xf_hessian_init(&h, D, &err), 0);
    assert_int_equal(xf_hessian_finalize(&h, H, &err), -1); /* nothing added */
    const int chunks[] = {1, 99, 0, 4000, 900};
    int at = 0;
    for (int c = 0; c < 5; c++) {
        assert_int_equal(xf_hessian_add(&h, X + at * D, chunks[c], &err), 0);
        at += chunks[c];
    }
    assert_int_equal(at, N);
    float bad[D] = {0};
    bad[7] = NAN;
    assert_int_equal(xf_hessian_add(&h, bad, 1, &err), -1);
    assert_int_equal(xf_hessian_count(&h), N);
    assert_int_equal(xf_hessian_finalize(&h, H, &err), 0);
    double maxdiag = 0;
    for (int i = 0; i < D; i++)
        maxdiag = fmax(maxdiag, ref[i * D + i]);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            assert_true(H[i * D + j] == H[j * D + i]);
            assert_true(fabs(H[i * D + j] - ref[i * D + j]) <= 1e-5 * maxdiag);
        }
    xf_hessian_free(&h);
    free(X);
    free(ref);
    free(H);
}

/* The sum of an MPI job (pipeline/dist_sums.h) without MPI: rows split
 * at multiples of XF_HESSIAN_FLUSH_ROWS into deferred accumulators, the
 * running sum handed from one to the next, which adds its kept batches:
 * the same bytes as one accumulator over all rows, added window by window
 * (windows of 512 rows, as a calibration stream adds them). */
static void test_hessian_split_sum(void **state)
{
    (void)state;
    enum { D = 24, W = 512, N = 3 * XF_HESSIAN_FLUSH_ROWS + 3 * W };
    float *X = xf_test_correlated_inputs(N, D, 37);
    double *ref = malloc(sizeof(double) * D * D), *H = malloc(sizeof(double) * D * D);
    xf_error err;
    xf_hessian one;
    assert_int_equal(xf_hessian_init(&one, D, &err), 0);
    for (int r = 0; r < N; r += W)
        assert_int_equal(xf_hessian_add(&one, X + r * D, W, &err), 0);
    assert_int_equal(xf_hessian_finalize(&one, ref, &err), 0);
    xf_hessian_free(&one);
    /* two and three parts */
    const int cuts[2][4] = {{0, 2 * XF_HESSIAN_FLUSH_ROWS, N, -1},
                            {0, XF_HESSIAN_FLUSH_ROWS, 2 * XF_HESSIAN_FLUSH_ROWS, N}};
    for (int c = 0; c < 2; c++) {
        const int parts = cuts[c][3] < 0 ? 2 : 3;
        xf_hessian h[3];
        for (int k = 0; k < parts; k++) {
            assert_int_equal(xf_hessian_init(&h[k], D, &err), 0);
            xf_hessian_defer(&h[k]);
            for (int r = cuts[c][k]; r < cuts[c][k + 1]; r += W)
                assert_int_equal(xf_hessian_add(&h[k], X + r * D, W, &err), 0);
            assert_int_equal(xf_hessian_seal(&h[k], &err), 0);
            if (k > 0) /* the running sum of the parts before */
                memcpy(h[k].sum, h[k - 1].sum, sizeof(double) * D * D);
            xf_hessian_fold_kept(&h[k], 0, D / 2); /* in two slabs, as on the wire */
            xf_hessian_fold_kept(&h[k], D / 2, D);
        }
        xf_hessian_set_count(&h[parts - 1], N);
        assert_int_equal(xf_hessian_finalize(&h[parts - 1], H, &err), 0);
        assert_memory_equal(H, ref, sizeof(double) * D * D);
        for (int k = 0; k < parts; k++)
            xf_hessian_free(&h[k]);
    }
    free(X);
    free(ref);
    free(H);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_plain_reference),
        cmocka_unit_test(test_identity_hessian_is_rtn),
        cmocka_unit_test(test_beats_rtn),
        cmocka_unit_test(test_factor_matches_reference_path),
        cmocka_unit_test(test_singular_hessian_retries),
        cmocka_unit_test(test_dead_columns),
        cmocka_unit_test(test_determinism_and_export),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_hessian_accumulator),
        cmocka_unit_test(test_hessian_split_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
