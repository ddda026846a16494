/* QSUR from a covariance's eigenvalues (qsur.h). */
#include "quant/transform/qsur.h"

#include <lapacke.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

double xf_qsur_chi2(int64_t d)
{
    const double k = 2.0 / (9.0 * (double)d);
    const double c = 1.0 - k + XF_QSUR_Z * sqrt(k);
    return (double)d * c * c * c;
}

int xf_qsur_compute(const double *mean, const double *cov, int64_t d, xf_qsur *out,
                    xf_error *err)
{
    memset(out, 0, sizeof *out);
    if (d < 1 || d > 1 << 20)
        return xf_fail(err, "qsur: invalid width %lld", (long long)d);
    double *a = malloc((size_t)d * (size_t)d * sizeof *a), *w = malloc((size_t)d * sizeof *w);
    if (!a || !w) {
        free(a);
        free(w);
        return xf_fail(err, "qsur: out of memory for a %lld-wide covariance", (long long)d);
    }
    memcpy(a, cov, (size_t)d * (size_t)d * sizeof *a);
    /* one BLAS thread: LAPACK's results depend on OpenBLAS's thread count */
    xf_threads_saved saved;
    xf_threads_push_blas(1, &saved);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)d, a,
                                     (lapack_int)d, w);
    xf_threads_pop(&saved);
    free(a);
    if (info != 0) {
        free(w);
        return xf_fail(err, "qsur: eigenvalues of a %lld-wide covariance failed (info %d)",
                       (long long)d, (int)info);
    }
    const double chi2 = xf_qsur_chi2(d), chi = sqrt(chi2);
    double hi = -INFINITY, lo = INFINITY;
    for (int64_t j = 0; j < d; j++) {
        const double r = chi * sqrt(fmax(cov[j * d + j], 0.0));
        hi = fmax(hi, mean[j] + r);
        lo = fmin(lo, mean[j] - r);
    }
    out->chi2 = chi2;
    out->min_eig = w[0]; /* ascending */
    out->max_eig = w[d - 1];
    const double dd = (double)d;
    double log_vx = 0.5 * dd * log(M_PI) - lgamma(0.5 * dd + 1.0) + 0.5 * dd * log(chi2);
    bool singular = !(w[0] > 0.0) || !(hi > lo);
    for (int64_t i = 0; i < d && !singular; i++)
        log_vx += 0.5 * log(w[i]);
    free(w);
    if (singular) {
        out->log10 = -INFINITY;
        out->root = 0.0;
        return 0;
    }
    const double log_q = log_vx - dd * log(hi - lo);
    out->log10 = log_q / log(10.0);
    out->root = exp(log_q / dd);
    return 0;
}
