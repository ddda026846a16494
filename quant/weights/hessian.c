/* Hessian accumulation: ssyrk into an fp32 batch, periodically flushed into
 * an fp64 sum (see hessian.h). */
#include "quant/weights/hessian.h"

#include "quant/weights/grid.h"
#include "quant/weights/token_weight.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    free(h->sum);
    free(h->batch);
    memset(h, 0, sizeof *h);
}

/* sum += batch (upper triangles); batch = 0. */
static void flush(xf_hessian *h)
{
    if (h->pending == 0)
        return;
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
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)take, 1.0f, x + r0 * d,
                    (int)d, 1.0f, h->batch, (int)d);
        h->pending += take;
        h->n += take;
        r0 += take;
        if (h->pending >= XF_HESSIAN_FLUSH_ROWS)
            flush(h);
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
    flush(h);
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
