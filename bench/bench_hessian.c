/* Hessian accumulation benchmark: xf_hessian_add (ssyrk into an fp32
 * batch, flushed into fp64) vs a plain cblas_sgemm computing the same
 * X^T X products from the same batches.
 *
 * Usage: bench_hessian [--quick] [--threads N]
 *   default: width 4096, 8192 rows in batches of 2048; --quick: 1024, 4096 rows.
 * GFLOP/s count the flops each routine performs: ssyrk n*d*(d+1) (one
 * triangle), sgemm 2*n*d*d. Prints one "name: value" line per number. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "core/threads.h"
#include "quant/weights/hessian.h"


int main(int argc, char **argv)
{
    int quick = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    xf_threads_set(threads);
    const int64_t d = quick ? 1024 : 4096, N = quick ? 4096 : 8192, batch = quick ? 1024 : 2048;
    float *X = malloc(sizeof(float) * (size_t)(N * d));
    float *C = malloc(sizeof(float) * (size_t)(d * d));
    double *H = malloc(sizeof(double) * (size_t)(d * d));
    if (!X || !C || !H) {
        fprintf(stderr, "bench_hessian: out of memory\n");
        return 1;
    }
    uint64_t s = 7;
    for (int64_t i = 0; i < N * d; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        X[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    printf("threads: %d\n", xf_threads_get());
    printf("width: %lld\nrows: %lld\nbatch_rows: %lld\n", (long long)d, (long long)N,
           (long long)batch);

    xf_hessian h;
    xf_error err;
    for (int rep = 0; rep < 2; rep++) { /* the first round also warms up the buffers */
        if (xf_hessian_init(&h, d, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t = xf_now_seconds();
        for (int64_t r = 0; r < N; r += batch)
            if (xf_hessian_add(&h, X + r * d, batch, &err) != 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        double t_add = xf_now_seconds() - t;
        t = xf_now_seconds();
        if (xf_hessian_finalize(&h, H, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t_fin = xf_now_seconds() - t;
        xf_hessian_free(&h);

        memset(C, 0, sizeof(float) * (size_t)(d * d));
        t = xf_now_seconds();
        for (int64_t r = 0; r < N; r += batch)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)batch,
                        1.0f, X + r * d, (int)d, X + r * d, (int)d, 1.0f, C, (int)d);
        double t_gemm = xf_now_seconds() - t;
        if (rep == 0)
            continue;
        double gf_add = (double)N * d * (d + 1) / t_add / 1e9;
        double gf_gemm = 2.0 * (double)N * d * d / t_gemm / 1e9;
        printf("hessian_add_s: %.3f\n", t_add);
        printf("hessian_finalize_s: %.3f\n", t_fin);
        printf("hessian_add_gflops: %.1f\n", gf_add);
        printf("plain_sgemm_gflops: %.1f\n", gf_gemm);
        printf("hessian_vs_sgemm_gflops_ratio: %.2f\n", gf_add / gf_gemm);
        printf("hessian_vs_sgemm_time_ratio: %.2f\n", t_gemm / t_add);
    }
    free(X);
    free(C);
    free(H);
    return 0;
}
