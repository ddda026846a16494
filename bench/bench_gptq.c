/* GPTQ solver benchmark: blocked (lazy batch) sweep vs the plain unblocked
 * sweep (block = 1: every column updates all columns right of it), and the
 * GFLOP/s of the trailing-update SGEMMs vs the same SGEMM calls made plainly.
 *
 * Usage: bench_gptq [--quick] [--threads N] [--ggml | --factor]
 *   default shapes 4096x4096 and 4096x11008, --quick 1024x1024 and 1024x2752.
 * The unblocked sweep runs on all rows of 4096x4096; for 4096x11008 it is
 * timed on the first 1024 rows (rows are independent, the cost is linear in
 * them; 1024 x 11008 fp32 = 45 MB, still far larger than the caches, so
 * the rank-1 updates stay memory-bound as with all rows) and scaled to all
 * rows. --quick runs small shapes only as a smoke test: its matrices fit in
 * cache and its speedups mean little.
 * --factor: instead, the three factorization routes in the same run: the
 * 4/3 n^3 path of the reference (Cholesky of H, inverse from it, Cholesky
 * again: dpotrf + dpotri + dpotrf), the inverse form (reversed Cholesky +
 * triangular inverse: the solver before the Cholesky form) and the Cholesky
 * form (reversed Cholesky only, the default): seconds of each factor, of
 * its sweep and of both, their ratios, how many fp32 U entries differ
 * between the baseline and the inverse form, and how many codes differ
 * between the routes. The inverse and Cholesky routes alternate 3 times on
 * 4096x4096 (minimum of each), once on 4096x11008 (rows x cols, H is
 * cols x cols); with --quick 1024x1024 and 1024x2752, once each.
 * --ggml: instead, the sweep on llama.cpp's block grids (quant/weights/ggml_grid.h:
 * one block fit per row and block, on the updated weights) against the plain
 * 4-bit grid (asymmetric, groups of 128) with the same factorization, in the
 * same run: sweep seconds of each and their ratio.
 * Prints one "name: value" line per number. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/threads.h"
#include "quant/weights/gptq.h"
#include "quant/weights/hessian.h"


static uint64_t rng_state = 12345;
static float rand_normal(void)
{
    /* splitmix64 + Box-Muller; quality is irrelevant here */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double u1 = ((z >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(z & 0xffffff) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_gptq: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* H of N correlated input rows: x = z * s + (z2 M) with a rank-64 mixing. */
static double *synthetic_hessian(int64_t d, int64_t N)
{
    const int64_t K = 64, chunk = 512;
    float *M = xmalloc(sizeof(float) * (size_t)(K * d));
    float *s = xmalloc(sizeof(float) * (size_t)d);
    float *X = xmalloc(sizeof(float) * (size_t)(chunk * d));
    float *Z2 = xmalloc(sizeof(float) * (size_t)(chunk * K));
    for (int64_t i = 0; i < K * d; i++)
        M[i] = rand_normal() / 8.0f;
    for (int64_t j = 0; j < d; j++)
        s[j] = expf(0.5f * rand_normal());
    xf_hessian h;
    xf_error err;
    double *H = xmalloc(sizeof(double) * (size_t)(d * d));
    if (xf_hessian_init(&h, d, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        for (int64_t i = 0; i < chunk * d; i++)
            X[i] = rand_normal() * s[i % d];
        for (int64_t i = 0; i < chunk * K; i++)
            Z2[i] = rand_normal();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)chunk, (int)d, (int)K, 1.0f,
                    Z2, (int)K, M, (int)d, 1.0f, X, (int)d);
        if (xf_hessian_add(&h, X, chunk, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
    }
    if (xf_hessian_finalize(&h, H, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    xf_hessian_free(&h);
    free(M);
    free(s);
    free(X);
    free(Z2);
    return H;
}

static void run_shape(int64_t rows, int64_t cols, int64_t sub_rows)
{
    char tag[64];
    snprintf(tag, sizeof tag, "%lldx%lld", (long long)rows, (long long)cols);
    const int64_t N = 2048;
    double t = xf_now_seconds();
    double *H = synthetic_hessian(cols, N);
    printf("%s hessian_build_s: %.2f\n", tag, xf_now_seconds() - t);
    float *W = xmalloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++)
        W[i] = rand_normal() * 0.02f;

    xf_gptq_params p;
    xf_gptq_params_default(&p);
    xf_error err;
    xf_gptq_factor f;
    if (xf_gptq_factor_init(&f, H, cols, &p, tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    free(H);
    printf("%s factor_s: %.2f\n", tag, f.seconds);

    /* blocked sweep on all rows */
    float *Wb = xmalloc(sizeof(float) * (size_t)(rows * cols));
    memcpy(Wb, W, sizeof(float) * (size_t)(rows * cols));
    xf_qweight qb;
    xf_gptq_stats sb;
    if (xf_gptq_solve_factored(Wb, rows, &f, &p, &qb, &sb, tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    printf("%s blocked_sweep_s: %.3f\n", tag, sb.seconds_sweep);
    printf("%s blocked_total_s: %.3f\n", tag, sb.seconds_sweep + f.seconds);
    double gemm_gf = sb.gemm_flops / sb.seconds_gemm / 1e9;
    printf("%s trailing_sgemm_gflops: %.1f\n", tag, gemm_gf);
    printf("%s trailing_sgemm_share_of_sweep: %.2f\n", tag, sb.seconds_gemm / sb.seconds_sweep);

    /* the same SGEMM calls, made plainly on fresh buffers */
    const int64_t B = p.block;
    float *E = xmalloc(sizeof(float) * (size_t)(rows * B));
    float *C = xmalloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * B; i++)
        E[i] = rand_normal();
    memcpy(C, W, sizeof(float) * (size_t)(rows * cols));
    double plain_s = 0, plain_flops = 0;
    for (int64_t i1 = 0; i1 + B < cols; i1 += B) {
        int64_t i2 = i1 + B;
        t = xf_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(cols - i2), (int)B,
                    -1.0f, E, (int)B, f.F + i1 * cols + i2, (int)cols, 1.0f, C + i2, (int)cols);
        plain_s += xf_now_seconds() - t;
        plain_flops += 2.0 * (double)rows * (double)B * (double)(cols - i2);
    }
    double plain_gf = plain_flops / plain_s / 1e9;
    printf("%s plain_sgemm_same_shapes_gflops: %.1f\n", tag, plain_gf);
    printf("%s trailing_vs_plain_sgemm: %.2f\n", tag, gemm_gf / plain_gf);
    /* and one large square SGEMM, for scale */
    int64_t sq = cols < rows ? cols : rows;
    t = xf_now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)sq, (int)sq, (int)sq, 1.0f, W,
                (int)sq, C, (int)sq, 0.0f, Wb, (int)sq);
    printf("%s square_sgemm_%lld_gflops: %.1f\n", tag, (long long)sq,
           2.0 * (double)sq * sq * sq / (xf_now_seconds() - t) / 1e9);

    /* unblocked (block = 1) and blocked on a row subset */
    float *Wu = xmalloc(sizeof(float) * (size_t)(sub_rows * cols));
    memcpy(Wu, W, sizeof(float) * (size_t)(sub_rows * cols));
    xf_gptq_params pu = p;
    pu.block = 1;
    xf_qweight qu;
    xf_gptq_stats su;
    if (xf_gptq_solve_factored(Wu, sub_rows, &f, &pu, &qu, &su, tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    double unblocked = su.seconds_sweep * (double)rows / (double)sub_rows;
    printf("%s unblocked_rows_timed: %lld\n", tag, (long long)sub_rows);
    printf("%s unblocked_sweep_s_scaled: %.2f\n", tag, unblocked);
    printf("%s sweep_speedup: %.1f\n", tag, unblocked / sb.seconds_sweep);
    printf("%s total_speedup_incl_factor: %.1f\n", tag,
           (unblocked + f.seconds) / (sb.seconds_sweep + f.seconds));
    int64_t same = 0;
    for (int64_t i = 0; i < sub_rows * cols; i++)
        same += qu.codes[i] == qb.codes[i];
    printf("%s codes_equal_blocked_vs_unblocked_pct: %.4f\n", tag,
           100.0 * (double)same / (double)(sub_rows * cols));

    xf_qweight_free(&qb);
    xf_qweight_free(&qu);
    xf_gptq_factor_free(&f);
    free(W);
    free(Wb);
    free(Wu);
    free(E);
    free(C);
}

/* --factor baseline: U (fp32 [n, n] row-major, upper) the way the reference
 * computes it: A = P^T H P + lambda I, A = R^T R, A^-1 from R, A^-1 = U^T U
 * (dpotrf + dpotri + dpotrf, 1/3 + 2/3 + 1/3 n^3). Same dead-column rule and
 * damping as quant/weights/gptq_factor.c, one attempt (the synthetic H is
 * positive definite). Column-major 'U' on the row-major symmetric A is the
 * same matrix; U[a][b] ends at A[b*n + a]. Returns seconds. */
static double factor_4_3(const double *H, int64_t n, const int32_t *perm, double damp,
                         double *A, float *U)
{
    double t = xf_now_seconds(), mean = 0.0;
    for (int64_t i = 0; i < n; i++)
        mean += H[i * n + i] == 0.0 ? 1.0 : H[i * n + i];
    mean /= (double)n;
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < n; a++) {
        const double *h = H + (int64_t)perm[a] * n;
        for (int64_t b = 0; b < n; b++)
            A[a * n + b] = h[perm[b]];
        if (A[a * n + a] == 0.0)
            A[a * n + a] = 1.0;
        A[a * n + a] += damp * mean;
    }
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)n, A, (lapack_int)n) != 0 ||
        LAPACKE_dpotri(LAPACK_COL_MAJOR, 'U', (lapack_int)n, A, (lapack_int)n) != 0 ||
        LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)n, A, (lapack_int)n) != 0) {
        fprintf(stderr, "bench_gptq: 4/3 n^3 baseline factorization failed\n");
        exit(1);
    }
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++)
            U[a * n + b] = b < a ? 0.0f : (float)A[b * n + a];
    return xf_now_seconds() - t;
}

/* One [rows, cols] case of --factor / --ggml: a synthetic Hessian, random
 * weights (W, and Wb for a sweep to overwrite), 4-bit g128 parameters and
 * the factorization (exits on failure). */
typedef struct shape_case {
    char tag[64];
    double *H;
    float *W, *Wb;
    xf_gptq_params p;
    xf_gptq_factor f;
} shape_case;

static void shape_case_init(shape_case *c, int64_t rows, int64_t cols)
{
    snprintf(c->tag, sizeof c->tag, "%lldx%lld", (long long)rows, (long long)cols);
    c->H = synthetic_hessian(cols, 2048);
    c->W = xmalloc(sizeof(float) * (size_t)(rows * cols));
    c->Wb = xmalloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++)
        c->W[i] = rand_normal() * 0.02f;
    xf_gptq_params_default(&c->p);
    c->p.group = 128;
    xf_error err;
    if (xf_gptq_factor_init(&c->f, c->H, cols, &c->p, c->tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
}

static void shape_case_free(shape_case *c)
{
    xf_gptq_factor_free(&c->f);
    free(c->H);
    free(c->W);
    free(c->Wb);
}

/* Factor + blocked sweep of one route; the factor is kept in *f, the
 * codes in *q. Exits on failure. */
static void factor_and_sweep(const shape_case *c, int64_t rows, int64_t cols, bool inverse,
                             xf_gptq_factor *f, xf_qweight *q, double *factor_s, double *sweep_s,
                             double *loss)
{
    xf_gptq_params p = c->p;
    p.inverse_factor = inverse;
    xf_error err;
    if (xf_gptq_factor_init(f, c->H, cols, &p, c->tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    memcpy(c->Wb, c->W, sizeof(float) * (size_t)(rows * cols));
    xf_gptq_stats st;
    if (xf_gptq_solve_factored(c->Wb, rows, f, &p, q, &st, c->tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    *factor_s = f->seconds;
    *sweep_s = st.seconds_sweep;
    *loss = st.loss;
}

static int64_t codes_equal(const xf_qweight *a, const xf_qweight *b, int64_t count)
{
    int64_t same = 0;
    for (int64_t i = 0; i < count; i++)
        same += a->codes[i] == b->codes[i];
    return same;
}

/* --factor: three routes to the sweep's factor, each followed by its blocked
 * sweep, in the same run: the 4/3 n^3 baseline (reference U, inverse-form
 * sweep), the inverse form (one reversed Cholesky + one triangular inverse,
 * inverse-form sweep: the solver before the Cholesky form) and the Cholesky
 * form (one reversed Cholesky, no inverse: the default). The inverse and
 * Cholesky routes alternate `reps` times; the minimum of each is printed. */
static void run_factor_shape(int64_t rows, int64_t cols, int reps)
{
    shape_case c;
    shape_case_init(&c, rows, cols);
    const char *tag = c.tag;
    double *H = c.H;
    xf_gptq_factor f = c.f;
    if (f.retries != 0 || f.dead_columns != 0) {
        fprintf(stderr, "bench_gptq: synthetic Hessian needed retries / has dead columns\n");
        exit(1);
    }
    double *A = xmalloc(sizeof(double) * (size_t)(cols * cols));
    float *U_old = xmalloc(sizeof(float) * (size_t)(cols * cols));
    float *d_old = xmalloc(sizeof(float) * (size_t)cols);
    /* where the inverse form's time goes: its two LAPACK calls alone */
    double mean = 0.0;
    for (int64_t i = 0; i < cols; i++)
        mean += H[i * cols + i];
    mean /= (double)cols;
    for (int64_t a = 0; a < cols; a++)
        for (int64_t b = 0; b < cols; b++)
            A[a * cols + b] = H[(cols - 1 - a) * cols + (cols - 1 - b)] +
                              (a == b ? f.damp_used * mean : 0.0);
    double t = xf_now_seconds();
    LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)cols, A, (lapack_int)cols);
    double potrf_s = xf_now_seconds() - t;
    t = xf_now_seconds();
    LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int)cols, A, (lapack_int)cols);
    double trtri_s = xf_now_seconds() - t;
    double old_s = factor_4_3(H, cols, f.perm, f.damp_used, A, U_old);
    free(A);
    for (int64_t i = 0; i < cols; i++)
        d_old[i] = U_old[i * cols + i];
    xf_error err;
    /* the 4/3 baseline's sweep: its U in the inverse form */
    xf_gptq_factor g = f;
    g.inverse = true;
    g.F = U_old;
    g.d = d_old;
    xf_gptq_params pinv = c.p;
    pinv.inverse_factor = true;
    xf_qweight q_old;
    xf_gptq_stats st;
    memcpy(c.Wb, c.W, sizeof(float) * (size_t)(rows * cols));
    if (xf_gptq_solve_factored(c.Wb, rows, &g, &pinv, &q_old, &st, tag, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    const double old_sweep = st.seconds_sweep, old_loss = st.loss;

    double fs[2] = {1e30, 1e30}, ss[2] = {1e30, 1e30}, tot[2] = {1e30, 1e30}, loss[2];
    xf_qweight q[2] = {0};
    xf_gptq_factor fk[2] = {0};
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < 2; k++) { /* k = 0: inverse form, 1: Cholesky form */
            xf_qweight_free(&q[k]);
            xf_gptq_factor_free(&fk[k]);
            double a, b;
            factor_and_sweep(&c, rows, cols, k == 0, &fk[k], &q[k], &a, &b, &loss[k]);
            fs[k] = fmin(fs[k], a);
            ss[k] = fmin(ss[k], b);
            tot[k] = fmin(tot[k], a + b);
        }
    int64_t differ = 0, d_differ = 0;
    double maxu = 0.0, maxd = 0.0;
    for (int64_t i = 0; i < cols * cols; i++) {
        differ += U_old[i] != fk[0].F[i];
        maxu = fmax(maxu, fabs((double)U_old[i]));
        maxd = fmax(maxd, fabs((double)U_old[i] - (double)fk[0].F[i]));
    }
    for (int64_t i = 0; i < cols; i++)
        d_differ += fk[0].d[i] != fk[1].d[i];
    const int64_t N = rows * cols;
    printf("%s reps: %d (minimum of each route)\n", tag, reps);
    printf("%s factor_4_3_baseline_s: %.3f (sweep %.3f, total %.3f)\n", tag, old_s, old_sweep,
           old_s + old_sweep);
    printf("%s inverse_form_factor_s: %.3f (dpotrf alone %.3f, dtrtri alone %.3f)\n", tag, fs[0],
           potrf_s, trtri_s);
    printf("%s inverse_form_sweep_s: %.3f\n", tag, ss[0]);
    printf("%s inverse_form_factor_plus_sweep_s: %.3f\n", tag, tot[0]);
    printf("%s cholesky_form_factor_s: %.3f\n", tag, fs[1]);
    printf("%s cholesky_form_sweep_s: %.3f\n", tag, ss[1]);
    printf("%s cholesky_form_factor_plus_sweep_s: %.3f\n", tag, tot[1]);
    printf("%s cholesky_vs_inverse_factor: %.2f\n", tag, fs[1] / fs[0]);
    printf("%s cholesky_vs_inverse_factor_plus_sweep: %.2f\n", tag, tot[1] / tot[0]);
    printf("%s cholesky_vs_4_3_baseline_factor_plus_sweep: %.2f\n", tag,
           tot[1] / (old_s + old_sweep));
    printf("%s inverse_form_fp32_U_entries_differing_from_baseline: %lld of %lld (max |diff| / "
           "max |U| %.2e)\n", tag, (long long)differ, (long long)(cols * cols), maxd / maxu);
    printf("%s U_ii_differing_cholesky_vs_inverse: %lld of %lld\n", tag, (long long)d_differ,
           (long long)cols);
    printf("%s gptq_loss baseline: %.9g inverse_form: %.9g cholesky_form: %.9g\n", tag, old_loss,
           loss[0], loss[1]);
    printf("%s codes_equal_pct inverse_vs_baseline: %.4f cholesky_vs_inverse: %.4f\n", tag,
           100.0 * (double)codes_equal(&q[0], &q_old, N) / (double)N,
           100.0 * (double)codes_equal(&q[1], &q[0], N) / (double)N);
    for (int k = 0; k < 2; k++) {
        xf_qweight_free(&q[k]);
        xf_gptq_factor_free(&fk[k]);
    }
    xf_qweight_free(&q_old);
    free(U_old);
    free(d_old);
    shape_case_free(&c);
}

/* --ggml: plain 4-bit g128 sweep vs the GGML grids on one factorization. */
static void run_ggml_shape(int64_t rows, int64_t cols)
{
    shape_case c;
    shape_case_init(&c, rows, cols);
    const char *tag = c.tag;
    float *W = c.W, *Wb = c.Wb;
    xf_gptq_params p = c.p;
    xf_error err;
    xf_gptq_factor f = c.f;
    printf("%s factor_s: %.2f\n", tag, f.seconds);
    static const uint32_t types[] = {0 /* plain */, XF_GGML_Q4_K, XF_GGML_Q6_K, XF_GGML_Q3_K,
                                     XF_GGML_IQ4_XS, XF_GGML_Q4_0};
    double plain = 0.0;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        p.ggml = types[k] ? xf_ggml_grid_traits_of(types[k]) : NULL;
        memcpy(Wb, W, sizeof(float) * (size_t)(rows * cols));
        xf_qweight q;
        xf_gptq_stats st;
        if (xf_gptq_solve_factored(Wb, rows, &f, &p, &q, &st, tag, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        const char *name = types[k] ? xf_ggml_traits(types[k])->name : "plain_4bit_g128";
        printf("%s %s_sweep_s: %.3f\n", tag, name, st.seconds_sweep);
        if (!types[k])
            plain = st.seconds_sweep;
        else
            printf("%s %s_vs_plain_sweep: %.2f (with the factorization: %.2f)\n", tag, name,
                   st.seconds_sweep / plain, (st.seconds_sweep + f.seconds) / (plain + f.seconds));
        xf_qweight_free(&q);
    }
    shape_case_free(&c);
}

int main(int argc, char **argv)
{
    int quick = 0, threads = 0, ggml = 0, factor = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ggml") == 0)
            ggml = 1;
        else if (strcmp(argv[i], "--factor") == 0)
            factor = 1;
        else {
            fprintf(stderr, "usage: %s [--quick] [--threads N] [--ggml | --factor]\n", argv[0]);
            return 2;
        }
    }
    xf_threads_set(threads);
    printf("threads: %d\n", xf_threads_get());
    if (factor) {
        run_factor_shape(quick ? 1024 : 4096, quick ? 1024 : 4096, quick ? 1 : 3);
        run_factor_shape(quick ? 1024 : 4096, quick ? 2752 : 11008, 1);
        return 0;
    }
    if (ggml) {
        run_ggml_shape(quick ? 1024 : 4096, quick ? 1024 : 4096);
        run_ggml_shape(quick ? 1024 : 4096, quick ? 2816 : 11008);
        return 0;
    }
    if (quick) {
        run_shape(1024, 1024, 1024);
        run_shape(1024, 2752, 256);
    } else {
        run_shape(4096, 4096, 4096);
        run_shape(4096, 11008, 1024);
    }
    return 0;
}
