#include "core/gemm_tiled.h"

#include <omp.h>

#include "core/threads.h"

void xf_sgemm_tiled(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    const int64_t tm = XF_GEMM_TILE_M, tn = XF_GEMM_TILE_N;
    const int64_t mt = (M + tm - 1) / tm, nt = (N + tn - 1) / tn, tiles = mt * nt;
    /* BLAS pinned to one thread for the tiles (nothing to do inside a
     * parallel region: whoever opened it has done so) */
    const int nested = omp_in_parallel();
    xf_threads_saved saved;
    if (!nested)
        xf_threads_push_blas(1, &saved);
#pragma omp parallel for schedule(static) if (!nested && tiles > 1)
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t m0 = t / nt * tm, n0 = t % nt * tn;
        const int64_t mc = M - m0 < tm ? M - m0 : tm, nc = N - n0 < tn ? N - n0 : tn;
        const float *a = ta == CblasNoTrans ? A + m0 * lda : A + m0;
        const float *b = tb == CblasNoTrans ? B + n0 : B + n0 * ldb;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)mc, (int)nc, (int)K, alpha, a, (int)lda, b,
                    (int)ldb, beta, C + m0 * ldc + n0, (int)ldc);
    }
    if (!nested)
        xf_threads_pop(&saved);
}

void xf_dgemm_tiled(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                    double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                    double beta, double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    const int64_t tm = XF_GEMM_TILE_M, tn = XF_GEMM_TILE_N;
    const int64_t mt = (M + tm - 1) / tm, nt = (N + tn - 1) / tn, tiles = mt * nt;
    /* BLAS pinned to one thread for the tiles (nothing to do inside a
     * parallel region: whoever opened it has done so) */
    const int nested = omp_in_parallel();
    xf_threads_saved saved;
    if (!nested)
        xf_threads_push_blas(1, &saved);
#pragma omp parallel for schedule(static) if (!nested && tiles > 1)
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t m0 = t / nt * tm, n0 = t % nt * tn;
        const int64_t mc = M - m0 < tm ? M - m0 : tm, nc = N - n0 < tn ? N - n0 : tn;
        const double *a = ta == CblasNoTrans ? A + m0 * lda : A + m0;
        const double *b = tb == CblasNoTrans ? B + n0 : B + n0 * ldb;
        cblas_dgemm(CblasRowMajor, ta, tb, (int)mc, (int)nc, (int)K, alpha, a, (int)lda, b,
                    (int)ldb, beta, C + m0 * ldc + n0, (int)ldc);
    }
    if (!nested)
        xf_threads_pop(&saved);
}
