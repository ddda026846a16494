/* Hessian accumulation: ssyrk into an fp32 batch, periodically flushed into
 * an fp64 sum (see hessian.h). */
#include "quant/weights/hessian.h"

#include "quant/weights/grid.h"
#include "quant/weights/token_weight.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

int xf_hessian_init(xf_hessian *h, int64_t d, xf_error *err)
{
    memset(h, 0, sizeof *h);
    size_t n2;
    if (d < 1 || d > INT32_MAX || __builtin_mul_overflow((size_t)d, (size_t)d, &n2) ||
        n2 > SIZE_MAX / sizeof(double))
        return xf_fail(err, "hessian: invalid input width %lld", (long long)d);
    h->d = d;
    h->sum = calloc(n2, sizeof(double));
    h->batch = calloc(n2, sizeof(float));
    if (!h->sum || !h->batch) {
        xf_hessian_free(h);
        return xf_fail(err, "hessian: out of memory for a %lld x %lld accumulator", (long long)d,
                       (long long)d);
    }
    return 0;
}

void xf_hessian_free(xf_hessian *h)
{
    for (int64_t k = 0; k < h->n_kept; k++)
        free(h->kept[k]);
    free(h->kept);
    free(h->sum);
    free(h->batch);
    memset(h, 0, sizeof *h);
}

/* Offset of row i's diagonal in a packed upper triangle of width d. */
static size_t packed_row(int64_t d, int64_t i)
{
    return (size_t)i * (size_t)d - (size_t)i * (size_t)(i - 1) / 2;
}

/* Deferred: batch (upper) -> a kept packed copy; batch = 0. */
static int keep_batch(xf_hessian *h)
{
    const int64_t d = h->d;
    if (h->n_kept == h->cap_kept) {
        int64_t cap = h->cap_kept ? 2 * h->cap_kept : 8;
        float **k = realloc(h->kept, (size_t)cap * sizeof *k);
        if (!k)
            return -1;
        h->kept = k;
        h->cap_kept = cap;
    }
    float *p = malloc(packed_row(d, d) * sizeof *p);
    if (!p)
        return -1;
    for (int64_t i = 0; i < d; i++) {
        memcpy(p + packed_row(d, i), h->batch + i * d + i, (size_t)(d - i) * sizeof *p);
        memset(h->batch + i * d + i, 0, (size_t)(d - i) * sizeof *p);
    }
    h->kept[h->n_kept++] = p;
    h->pending = 0;
    return 0;
}

/* sum += batch (upper triangles); batch = 0 (deferred: the batch kept). */
static int flush(xf_hessian *h)
{
    if (h->pending == 0)
        return 0;
    if (h->deferred)
        return keep_batch(h);
    const int64_t d = h->d;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < d; i++) {
        double *s = h->sum + i * d;
        float *b = h->batch + i * d;
        for (int64_t j = i; j < d; j++) {
            s[j] += (double)b[j];
            b[j] = 0.0f;
        }
    }
    h->pending = 0;
    return 0;
}

void xf_hessian_defer(xf_hessian *h) { h->deferred = true; }

int xf_hessian_seal(xf_hessian *h, xf_error *err)
{
    if (flush(h) != 0)
        return xf_fail(err, "hessian: out of memory for a %lld-wide batch", (long long)h->d);
    return 0;
}

void xf_hessian_fold_kept(xf_hessian *h, int64_t i0, int64_t i1)
{
    const int64_t d = h->d;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = i0; i < i1; i++) {
        double *s = h->sum + i * d;
        for (int64_t k = 0; k < h->n_kept; k++) {
            const float *b = h->kept[k] + packed_row(d, i) - (size_t)i;
            for (int64_t j = i; j < d; j++)
                s[j] += (double)b[j];
        }
    }
}

void xf_hessian_set_count(xf_hessian *h, int64_t n) { h->n = n; }

/* C(upper) += X^T X, X [k, d]: tiles of the upper triangle fixed by d, each
 * one single-threaded BLAS call (ssyrk on the diagonal, sgemm above it),
 * spread over OpenMP threads. OpenBLAS's own threading of one ssyrk would
 * make the sums depend on the thread count (core/gemm_tiled.h). */
static void add_upper_tiles(float *C, const float *X, int64_t d, int64_t k)
{
    enum { TILE = 256 };
    const int64_t nt = (d + TILE - 1) / TILE, tiles = nt * (nt + 1) / 2;
    xf_threads_saved saved;
    xf_threads_push_blas(1, &saved);
#pragma omp parallel for schedule(dynamic, 1) if (tiles > 1)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t bi = 0, rest = t; /* t-th upper tile, row by row */
        while (rest >= nt - bi) {
            rest -= nt - bi;
            bi++;
        }
        const int64_t bj = bi + rest;
        const int64_t i0 = bi * TILE, j0 = bj * TILE;
        const int64_t ic = d - i0 < TILE ? d - i0 : TILE, jc = d - j0 < TILE ? d - j0 : TILE;
        if (bi == bj)
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)ic, (int)k, 1.0f, X + i0,
                        (int)d, 1.0f, C + i0 * d + i0, (int)d);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ic, (int)jc, (int)k, 1.0f,
                        X + i0, (int)d, X + j0, (int)d, 1.0f, C + i0 * d + j0, (int)d);
    }
    xf_threads_pop(&saved);
}

int xf_hessian_add(xf_hessian *h, const float *x, int64_t n, xf_error *err)
{
    const int64_t d = h->d;
    if (n < 0)
        return xf_fail(err, "hessian: negative row count %lld", (long long)n);
    if (n == 0)
        return 0;
    /* One bad activation would silently poison the whole Hessian. (A plain
     * loop: an OpenMP region right before the BLAS call would leave its
     * threads spinning against OpenBLAS's.) */
    for (int64_t r = 0; r < n; r++)
        if (!xf_all_finite(x + r * d, d))
            return xf_fail(err, "hessian (width %lld): input row %lld has a non-finite value",
                           (long long)d, (long long)r);
    /* Chunks keep each fp32 partial sum short even for one huge call. */
    for (int64_t r0 = 0; r0 < n;) {
        int64_t take = n - r0;
        if (take > XF_HESSIAN_FLUSH_ROWS - h->pending)
            take = XF_HESSIAN_FLUSH_ROWS - h->pending;
        /* batch(upper) += X^T X for X = x[r0 : r0 + take, :] */
        add_upper_tiles(h->batch, x + r0 * d, d, take);
        h->pending += take;
        h->n += take;
        r0 += take;
        if (h->pending >= XF_HESSIAN_FLUSH_ROWS && flush(h) != 0)
            return xf_fail(err, "hessian: out of memory for a %lld-wide batch", (long long)d);
    }
    return 0;
}

int xf_hessian_add_weighted(xf_hessian *h, const float *x, const float *r, int64_t n,
                            xf_error *err)
{
    if (!r || n <= 0)
        return xf_hessian_add(h, x, n, err);
    size_t cells;
    if (__builtin_mul_overflow((size_t)n, (size_t)h->d, &cells) || cells > SIZE_MAX / sizeof(float))
        return xf_fail(err, "hessian (width %lld): %lld weighted rows are too many",
                       (long long)h->d, (long long)n);
    float *xs = malloc(cells * sizeof *xs);
    if (!xs)
        return xf_fail(err, "hessian (width %lld): out of memory for %lld weighted rows",
                       (long long)h->d, (long long)n);
    int rc = xf_token_weight_scale_rows(x, r, n, h->d, xs, err);
    if (rc == 0)
        rc = xf_hessian_add(h, xs, n, err);
    free(xs);
    return rc;
}

int xf_hessian_finalize(xf_hessian *h, double *H, xf_error *err)
{
    if (h->n == 0)
        return xf_fail(err, "hessian (width %lld): no input rows were added", (long long)h->d);
    if (flush(h) != 0)
        return xf_fail(err, "hessian: out of memory for a %lld-wide batch", (long long)h->d);
    const int64_t d = h->d;
    const double f = 2.0 / (double)h->n;
    /* 64x64 tiles on and above the diagonal, each written to both halves:
     * the mirrored (column) accesses stay inside one tile. */
    const int64_t T = 64, nt = (d + T - 1) / T;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bi = 0; bi < nt; bi++)
        for (int64_t bj = bi; bj < nt; bj++) {
            int64_t i1 = (bi + 1) * T < d ? (bi + 1) * T : d;
            int64_t j1 = (bj + 1) * T < d ? (bj + 1) * T : d;
            for (int64_t i = bi * T; i < i1; i++)
                for (int64_t j = (bi == bj ? i : bj * T); j < j1; j++) {
                    double v = f * h->sum[i * d + j];
                    H[i * d + j] = v;
                    H[j * d + i] = v;
                }
        }
    return 0;
}

int64_t xf_hessian_count(const xf_hessian *h) { return h->n; }
