#include "quant/weights/gptq_v2.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_tiled.h"
#include "core/threads.h"

int xf_cross_cov_init(xf_cross_cov *c, int64_t d, xf_error *err)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->sum = calloc((size_t)(d * d), sizeof *c->sum);
    c->batch = malloc((size_t)(d * d) * sizeof *c->batch);
    if (!c->sum || !c->batch) {
        xf_cross_cov_free(c);
        return xf_fail(err, "out of memory for a %lld-wide cross-covariance", (long long)d);
    }
    return 0;
}

void xf_cross_cov_free(xf_cross_cov *c)
{
    for (int64_t k = 0; k < c->n_kept; k++)
        free(c->kept[k]);
    free(c->kept);
    free(c->sum);
    free(c->batch);
    free(c->diff);
    memset(c, 0, sizeof *c);
}

int xf_cross_cov_add(xf_cross_cov *c, const float *x_fp, const float *x_q, int64_t n,
                     xf_error *err)
{
    int64_t d = c->d;
    if (n > c->rows_cap) {
        float *nd = realloc(c->diff, (size_t)(n * d) * sizeof *nd);
        if (!nd)
            return xf_fail(err, "out of memory for %lld activation rows", (long long)n);
        c->diff = nd;
        c->rows_cap = n;
    }
    for (int64_t i = 0; i < n * d; i++)
        c->diff[i] = x_fp[i] - x_q[i];
    /* batch = diff^T x_q : [d, n] x [n, d] */
    xf_sgemm_tiled(CblasTrans, CblasNoTrans, d, d, n, 1.0f, c->diff, d, x_q, d, 0.0f, c->batch,
                   d);
    c->n += n;
    if (c->deferred) {
        if (c->n_kept == c->cap_kept) {
            int64_t cap = c->cap_kept ? 2 * c->cap_kept : 8;
            float **k = realloc(c->kept, (size_t)cap * sizeof *k);
            if (!k)
                return xf_fail(err, "out of memory for a %lld-wide cross-covariance", (long long)d);
            c->kept = k;
            c->cap_kept = cap;
        }
        float *p = malloc((size_t)(d * d) * sizeof *p);
        if (!p)
            return xf_fail(err, "out of memory for a %lld-wide cross-covariance", (long long)d);
        memcpy(p, c->batch, (size_t)(d * d) * sizeof *p);
        c->kept[c->n_kept++] = p;
        return 0;
    }
    for (int64_t i = 0; i < d * d; i++)
        c->sum[i] += c->batch[i];
    return 0;
}

void xf_cross_cov_defer(xf_cross_cov *c) { c->deferred = true; }

void xf_cross_cov_fold_kept(xf_cross_cov *c, int64_t i0, int64_t i1)
{
    const int64_t d = c->d;
    for (int64_t k = 0; k < c->n_kept; k++)
        for (int64_t i = i0 * d; i < i1 * d; i++)
            c->sum[i] += c->kept[k][i];
}

int xf_cross_cov_finalize(const xf_cross_cov *c, double *C, xf_error *err)
{
    if (c->n == 0)
        return xf_fail(err, "cross-covariance of no rows");
    double s = 2.0 / (double)c->n;
    for (int64_t i = 0; i < c->d * c->d; i++)
        C[i] = s * c->sum[i];
    return 0;
}

int xf_gptq_v2_correct(float *W, int64_t rows, int64_t d, const double *H, const double *C,
                       double damp, double *damp_used, const char *name, xf_error *err)
{
    double *Hd = malloc((size_t)(d * d) * sizeof *Hd);
    double *M = malloc((size_t)(d * d) * sizeof *M);
    float *Mf = malloc((size_t)(d * d) * sizeof *Mf);
    float *Wc = malloc((size_t)(rows * d) * sizeof *Wc);
    int rc = 0;
    if (!Hd || !M || !Mf || !Wc) {
        rc = xf_fail(err, "%s: out of memory for the GPTQv2 correction", name);
        goto out;
    }
    double mean = 0.0;
    for (int64_t i = 0; i < d; i++)
        mean += H[i * d + i] == 0.0 ? 1.0 : H[i * d + i];
    mean /= (double)d;
    for (double dmp = damp > 0 ? damp : 1e-6;; dmp *= 10.0) {
        memcpy(Hd, H, (size_t)(d * d) * sizeof *Hd);
        for (int64_t i = 0; i < d; i++) {
            if (Hd[i * d + i] == 0.0)
                Hd[i * d + i] = 1.0;
            Hd[i * d + i] += dmp * mean;
        }
        /* M^T = Hd^-1 C^T; Hd symmetric, so solve Hd X = C^T column-wise:
         * as row-major, C^T's rows are C's columns. */
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++)
                M[i * d + j] = C[j * d + i];
        /* one BLAS thread: LAPACK's results depend on OpenBLAS's thread count */
        xf_threads_saved saved;
        xf_threads_push_blas(1, &saved);
        const bool solved =
            LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, Hd, (lapack_int)d) == 0 &&
            LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, (lapack_int)d, Hd,
                           (lapack_int)d, M, (lapack_int)d) == 0;
        xf_threads_pop(&saved);
        if (solved) {
            bool finite = true;
            for (int64_t i = 0; i < d * d && finite; i++)
                finite = isfinite(M[i]);
            if (finite) {
                *damp_used = dmp;
                break;
            }
        }
        if (dmp * 10.0 > 1.0 + 1e-12) {
            rc = xf_fail(err, "%s: GPTQv2 correction: Hessian not positive definite even with "
                              "damp 1.0", name);
            goto out;
        }
    }
    /* M now holds (Hd^-1 C^T); the correction is W C Hd^-1 = W (Hd^-1 C^T)^T */
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++)
            Mf[i * d + j] = (float)M[j * d + i];
    memcpy(Wc, W, (size_t)(rows * d) * sizeof *Wc);
    xf_sgemm_tiled(CblasNoTrans, CblasNoTrans, rows, d, d, 1.0f, Wc, d, Mf, d, 1.0f, W, d);
    for (int64_t i = 0; i < rows * d; i++)
        if (!isfinite(W[i])) {
            rc = xf_fail(err, "%s: GPTQv2 correction produced a non-finite weight", name);
            break;
        }
out:
    free(Hd);
    free(M);
    free(Mf);
    free(Wc);
    return rc;
}
