/* fp64 covariance of a linear input (act_cov.h). */
#include "calib/act_cov.h"

#include <cblas.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int xf_act_cov_init(xf_act_cov *c, int64_t d, const char *what, xf_error *err)
{
    memset(c, 0, sizeof *c);
    if (d < 1 || d > INT32_MAX / XF_ACT_COV_CHUNK)
        return xf_fail(err, "%s: covariance of %lld channels is not supported", what,
                       (long long)d);
    c->d = d;
    c->sum = calloc((size_t)d * (size_t)d, sizeof *c->sum);
    c->ch_sum = calloc((size_t)d, sizeof *c->ch_sum);
    c->buf = malloc((size_t)d * XF_ACT_COV_CHUNK * sizeof *c->buf);
    if (!c->sum || !c->ch_sum || !c->buf) {
        xf_act_cov_free(c);
        return xf_fail(err, "%s: out of memory for a %lld x %lld covariance", what,
                       (long long)d, (long long)d);
    }
    return 0;
}

void xf_act_cov_free(xf_act_cov *c)
{
    free(c->sum);
    free(c->ch_sum);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

static void flush(xf_act_cov *c, int64_t n)
{
    if (n == 0)
        return;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)c->d, (int)n, 1.0, c->buf,
                (int)c->d, 1.0, c->sum, (int)c->d);
}

void xf_act_cov_add(xf_act_cov *c, const float *x, int64_t rows)
{
    const int64_t d = c->d;
    int64_t n = 0;
    for (int64_t t = 0; t < rows; t++) {
        const float *row = x + t * d;
        bool finite = true;
        for (int64_t j = 0; j < d && finite; j++)
            finite = isfinite(row[j]);
        if (!finite) {
            c->skipped++;
            continue;
        }
        double *b = c->buf + n * d;
        for (int64_t j = 0; j < d; j++) {
            b[j] = (double)row[j];
            c->ch_sum[j] += b[j];
        }
        c->rows++;
        if (++n == XF_ACT_COV_CHUNK) {
            flush(c, n);
            n = 0;
        }
    }
    flush(c, n);
}

int xf_act_cov_finalize(const xf_act_cov *c, double *mean, double *cov, xf_error *err)
{
    const int64_t d = c->d;
    if (c->rows == 0)
        return xf_fail(err, "covariance (width %lld): no finite rows were added", (long long)d);
    const double inv = 1.0 / (double)c->rows;
    for (int64_t j = 0; j < d; j++)
        mean[j] = c->ch_sum[j] * inv;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i; j < d; j++) {
            double v = c->sum[i * d + j] * inv - mean[i] * mean[j];
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    return 0;
}
