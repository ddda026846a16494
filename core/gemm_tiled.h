/* Matrix products whose results do not depend on the thread count.
 *
 * OpenBLAS's own threading changes the sums: the same cblas_sgemm (for
 * instance 256 x 688 times 688 x 256, the shape of a down_proj over 256
 * tokens) gives other bits with 2 threads than with 1, so a quantized file
 * written with --threads 2 differed from one written with --threads 1.
 * Here C is cut into tiles whose sizes depend only on the shape (M, N),
 * each tile is one single-threaded cblas_sgemm, and the tiles are spread
 * over OpenMP threads: every tile is computed the same way whatever the
 * thread count. Inside an OpenMP parallel region (evaluation runs windows
 * side by side) the tiles run one after the other on the calling thread,
 * with the same results.
 *
 * Row-major, as cblas_sgemm(CblasRowMajor, ta, tb, ...): C[M, N] =
 * alpha * op(A) op(B) + beta * C. */
#ifndef XF_CORE_GEMM_TILED_H
#define XF_CORE_GEMM_TILED_H

#include <cblas.h>
#include <stdint.h>

/* Tile sizes: at most this many rows / columns of C per BLAS call. */
enum { XF_GEMM_TILE_M = 128, XF_GEMM_TILE_N = 256 };

void xf_sgemm_tiled(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc);
/* The same in fp64 (cblas_dgemm). */
void xf_dgemm_tiled(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                    double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                    double beta, double *C, int64_t ldc);

#endif
