#include "core/gemm_tiled.h"

#include <omp.h>

#include "core/threads.h"

/* One body for both precisions: NAME(ta, tb, M, N, K, alpha, A, lda, B, ldb,
 * beta, C, ldc) over element type T with BLAS call GEMM. */
#define XF_GEMM_TILED(NAME, T, GEMM)                                                           \
    void NAME(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,         \
              T alpha, const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C,         \
              int64_t ldc)                                                                     \
    {                                                                                          \
        if (M <= 0 || N <= 0)                                                                  \
            return;                                                                            \
        const int64_t tm = XF_GEMM_TILE_M, tn = XF_GEMM_TILE_N;                                \
        const int64_t mt = (M + tm - 1) / tm, nt = (N + tn - 1) / tn, tiles = mt * nt;         \
        /* BLAS pinned to one thread for the tiles (nothing to do inside a                     \
         * parallel region: whoever opened it has done so) */                                  \
        const int nested = omp_in_parallel();                                                  \
        xf_threads_saved saved;                                                                \
        if (!nested)                                                                           \
            xf_threads_push_blas(1, &saved);                                                   \
        _Pragma("omp parallel for schedule(static) if (!nested && tiles > 1)")                 \
        for (int64_t t = 0; t < tiles; t++) {                                                  \
            const int64_t m0 = t / nt * tm, n0 = t % nt * tn;                                  \
            const int64_t mc = M - m0 < tm ? M - m0 : tm, nc = N - n0 < tn ? N - n0 : tn;      \
            const T *a = ta == CblasNoTrans ? A + m0 * lda : A + m0;                           \
            const T *b = tb == CblasNoTrans ? B + n0 : B + n0 * ldb;                           \
            GEMM(CblasRowMajor, ta, tb, (int)mc, (int)nc, (int)K, alpha, a, (int)lda, b,       \
                 (int)ldb, beta, C + m0 * ldc + n0, (int)ldc);                                 \
        }                                                                                      \
        if (!nested)                                                                           \
            xf_threads_pop(&saved);                                                            \
    }

XF_GEMM_TILED(xf_sgemm_tiled, float, cblas_sgemm)
XF_GEMM_TILED(xf_dgemm_tiled, double, cblas_dgemm)
