/* Fast Hadamard transform vs the same rotation applied as a dense matrix
 * product, in the same run: a batch of rows X [rows, n] becomes X * R with
 * xf_hadamard_rows_f32 (O(n log n + n*m) per row) and with cblas_sgemm
 * against the dense fp32 R (O(n^2) per row); one row also against sgemv
 * (memory-bound: reads all of R). R is built by transforming identity rows.
 *
 * Usage: bench_hadamard [--rows N] [--threads N] [--quick]
 *   widths 4096 (pure Sylvester) and 11008 (= 64 * 172, Goethals-Seidel
 *   base); default 256 rows; --quick: widths 1024 and 688, 64 rows.
 * Prints one "name: value" line per number. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/threads.h"
#include "sim/hadamard.h"


static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_hadamard: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void check(int rc, const xf_error *err)
{
    if (rc != 0) {
        fprintf(stderr, "bench_hadamard: %s\n", err->msg);
        exit(1);
    }
}

/* Seconds per call: repeats until at least min_s has passed, keeps the best
 * of three such rounds. */
typedef void (*bench_fn)(void *ctx);
static double time_it(bench_fn fn, void *ctx, double min_s)
{
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        double t0 = xf_now_seconds(), t;
        do {
            fn(ctx);
            reps++;
            t = xf_now_seconds() - t0;
        } while (t < min_s);
        best = t / reps < best ? t / reps : best;
    }
    return best;
}

typedef struct ctx {
    xf_hadamard h;
    int64_t n, rows;
    float *X, *Y, *R;
} ctx;

static void run_fast(void *p)
{
    ctx *c = p;
    xf_error err;
    memcpy(c->Y, c->X, sizeof(float) * (size_t)(c->rows * c->n));
    check(xf_hadamard_rows_f32(&c->h, c->Y, c->rows, false, &err), &err);
}

static void run_fast_one(void *p)
{
    ctx *c = p;
    xf_error err;
    memcpy(c->Y, c->X, sizeof(float) * (size_t)c->n);
    check(xf_hadamard_rows_f32(&c->h, c->Y, 1, false, &err), &err);
}

static void run_gemm(void *p)
{
    ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->rows, (int)c->n, (int)c->n, 1.0f, c->X,
                (int)c->n, c->R, (int)c->n, 0.0f, c->Y, (int)c->n);
}

static void run_gemv(void *p)
{
    ctx *c = p;
    /* y = x R  <=>  y = R^T x */
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)c->n, (int)c->n, 1.0f, c->R, (int)c->n, c->X, 1, 0.0f, c->Y, 1);
}

static void bench_width(int64_t n, int64_t rows)
{
    ctx c = {.n = n, .rows = rows};
    xf_error err;
    check(xf_hadamard_init(&c.h, n, &err), &err);
    size_t batch = (size_t)(rows * n);
    c.X = xmalloc(sizeof(float) * batch);
    c.Y = xmalloc(sizeof(float) * batch);
    c.R = xmalloc(sizeof(float) * (size_t)(n * n));
    uint64_t st = 12345;
    for (size_t i = 0; i < batch; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        c.X[i] = (float)((double)(st >> 11) / 9007199254740992.0 - 0.5);
    }
    /* dense R: row i = forward(e_i) */
    memset(c.R, 0, sizeof(float) * (size_t)(n * n));
    for (int64_t i = 0; i < n; i++)
        c.R[i * n + i] = 1.0f;
    check(xf_hadamard_rows_f32(&c.h, c.R, n, false, &err), &err);

    printf("width: %lld (%s), rows: %lld\n", (long long)n, c.h.desc, (long long)rows);
    double t_fast = time_it(run_fast, &c, 0.2);
    float *fast_out = xmalloc(sizeof(float) * batch);
    memcpy(fast_out, c.Y, sizeof(float) * batch);
    double t_gemm = time_it(run_gemm, &c, 0.3);
    double maxdiff = 0;
    for (size_t i = 0; i < batch; i++) {
        double d = fabs((double)fast_out[i] - (double)c.Y[i]);
        maxdiff = d > maxdiff ? d : maxdiff;
    }
    double t_fast1 = time_it(run_fast_one, &c, 0.1);
    double t_gemv = time_it(run_gemv, &c, 0.2);
    printf("  fast batch ms: %.3f (%.2f us/row)\n", 1e3 * t_fast, 1e6 * t_fast / (double)rows);
    printf("  dense sgemm batch ms: %.3f (%.1f GFLOP/s)\n", 1e3 * t_gemm,
           2.0 * (double)rows * (double)n * (double)n / t_gemm * 1e-9);
    printf("  batch speedup (sgemm / fast): %.1f\n", t_gemm / t_fast);
    printf("  max |fast - sgemm|: %.2e\n", maxdiff);
    printf("  fast one row us: %.2f\n", 1e6 * t_fast1);
    printf("  dense sgemv one row us: %.1f\n", 1e6 * t_gemv);
    printf("  one-row speedup (sgemv / fast): %.1f\n", t_gemv / t_fast1);
    free(fast_out);
    free(c.X);
    free(c.Y);
    free(c.R);
    xf_hadamard_free(&c.h);
}

int main(int argc, char **argv)
{
    int64_t rows = 256;
    int threads = 0;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_hadamard [--rows N] [--threads N] [--quick]\n");
            return 1;
        }
    }
    if (rows < 1) {
        fprintf(stderr, "bench_hadamard: --rows must be >= 1\n");
        return 1;
    }
    xf_threads_set(threads);
    printf("threads: %d\n", xf_threads_get());
    if (quick) {
        bench_width(1024, 64);
        bench_width(688, 64);
    } else {
        bench_width(4096, rows);
        bench_width(11008, rows);
    }
    return 0;
}
