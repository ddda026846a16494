/* Window ranges and window-ordered sums across ranks (dist_sums.h). */
#include "pipeline/dist_sums.h"

#include <stdlib.h>
#include <string.h>

/* Rows per slab of the chained sums: a few MB per message, so rank r + 1
 * adds slab k while rank r works on slab k + 1. */
#define SLAB_BYTES ((int64_t)4 << 20)

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int64_t xf_dist_unit_windows(int64_t T)
{
    return XF_HESSIAN_FLUSH_ROWS / gcd64(T, XF_HESSIAN_FLUSH_ROWS);
}

/* Units [u0, u1) of rank r of n over `units` units. */
static void units_of(int r, int n, int64_t units, int64_t *u0, int64_t *u1)
{
    *u0 = units * r / n;
    *u1 = units * (r + 1) / n;
}

static void range_of(int r, int n, int64_t nsamples, int64_t T, int64_t *first, int64_t *count)
{
    const int64_t uw = xf_dist_unit_windows(T), units = (nsamples + uw - 1) / uw;
    int64_t u0, u1;
    units_of(r, n, units, &u0, &u1);
    const int64_t w0 = u0 * uw, w1 = u1 * uw < nsamples ? u1 * uw : nsamples;
    *first = w0;
    *count = w1 - w0;
}

int xf_dist_windows(const xf_dist *d, int64_t nsamples, int64_t T, int64_t *first,
                    int64_t *count, xf_error *err)
{
    const int64_t uw = xf_dist_unit_windows(T), units = (nsamples + uw - 1) / uw;
    if (units < d->size)
        return xf_fail(err, "%d ranks, but %lld calibration windows of %lld tokens make only "
                            "%lld units of work (%lld windows each, whole multiples of %d "
                            "tokens: the Hessian's batches); use at most %lld ranks, more "
                            "--nsamples or a --seqlen dividing %d",
                       d->size, (long long)nsamples, (long long)T, (long long)units,
                       (long long)uw, XF_HESSIAN_FLUSH_ROWS, (long long)units,
                       XF_HESSIAN_FLUSH_ROWS);
    range_of(d->rank, d->size, nsamples, T, first, count);
    return 0;
}

/* Rows of a slab of a d-wide matrix of `elem`-byte elements. */
static int64_t slab_rows(int64_t d, int64_t elem)
{
    int64_t r = SLAB_BYTES / (d * elem);
    return r < 1 ? 1 : r;
}

/* The chain over rows [0, d) of the fp64 matrix sum [d, d]: rank r
 * receives each slab from r - 1, folds its kept terms in, passes it on;
 * the last rank broadcasts the total. upper: only j >= i matters (packed
 * on the wire). */
typedef void (*fold_fn)(void *acc, int64_t i0, int64_t i1);

static size_t slab_elems(int64_t d, int64_t i0, int64_t i1, bool upper)
{
    if (!upper)
        return (size_t)((i1 - i0) * d);
    size_t n = 0;
    for (int64_t i = i0; i < i1; i++)
        n += (size_t)(d - i);
    return n;
}

static void pack(const double *sum, int64_t d, int64_t i0, int64_t i1, bool upper, double *buf)
{
    if (!upper) {
        memcpy(buf, sum + i0 * d, (size_t)((i1 - i0) * d) * sizeof *buf);
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        memcpy(buf, sum + i * d + i, (size_t)(d - i) * sizeof *buf);
        buf += d - i;
    }
}

static void unpack(double *sum, int64_t d, int64_t i0, int64_t i1, bool upper, const double *buf)
{
    if (!upper) {
        memcpy(sum + i0 * d, buf, (size_t)((i1 - i0) * d) * sizeof *buf);
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        memcpy(sum + i * d + i, buf, (size_t)(d - i) * sizeof *buf);
        buf += d - i;
    }
}

static int chain(xf_dist *d, double *sum, int64_t dim, bool upper, fold_fn fold, void *acc,
                 xf_error *err)
{
    const int64_t rows = slab_rows(dim, sizeof(double));
    double *buf = malloc(slab_elems(dim, 0, rows < dim ? rows : dim, false) * sizeof *buf);
    if (!buf)
        return xf_fail(err, "out of memory for a %lld-wide sum", (long long)dim);
    int rc = 0;
    for (int64_t i0 = 0; i0 < dim && rc == 0; i0 += rows) {
        const int64_t i1 = i0 + rows < dim ? i0 + rows : dim;
        const size_t n = slab_elems(dim, i0, i1, upper) * sizeof *buf;
        if (d->rank > 0) {
            rc = xf_dist_recv(d, d->rank - 1, buf, n, err);
            if (rc == 0)
                unpack(sum, dim, i0, i1, upper, buf);
        }
        if (rc == 0)
            fold(acc, i0, i1);
        if (rc == 0 && d->rank < d->size - 1) {
            pack(sum, dim, i0, i1, upper, buf);
            rc = xf_dist_send(d, d->rank + 1, buf, n, err);
        }
    }
    /* the total, from the last rank, slab by slab */
    for (int64_t i0 = 0; i0 < dim && rc == 0; i0 += rows) {
        const int64_t i1 = i0 + rows < dim ? i0 + rows : dim;
        const size_t n = slab_elems(dim, i0, i1, upper) * sizeof *buf;
        if (d->rank == d->size - 1)
            pack(sum, dim, i0, i1, upper, buf);
        rc = xf_dist_bcast(d, d->size - 1, buf, n, err);
        if (rc == 0 && d->rank != d->size - 1)
            unpack(sum, dim, i0, i1, upper, buf);
    }
    free(buf);
    return rc;
}

static void fold_hessian(void *acc, int64_t i0, int64_t i1)
{
    xf_hessian_fold_kept(acc, i0, i1);
}

static void fold_cross(void *acc, int64_t i0, int64_t i1)
{
    xf_cross_cov_fold_kept(acc, i0, i1);
}

int xf_dist_hessian_sum(xf_dist *d, xf_hessian *h, xf_error *err)
{
    if (d->size == 1)
        return 0;
    int64_t n = xf_hessian_count(h);
    if (xf_hessian_seal(h, err) != 0 || xf_dist_sum_i64(d, &n, err) != 0 ||
        chain(d, h->sum, h->d, true, fold_hessian, h, err) != 0)
        return -1;
    xf_hessian_set_count(h, n);
    return 0;
}

int xf_dist_cross_cov_sum(xf_dist *d, xf_cross_cov *c, xf_error *err)
{
    if (d->size == 1)
        return 0;
    int64_t n = c->n;
    if (xf_dist_sum_i64(d, &n, err) != 0 || chain(d, c->sum, c->d, false, fold_cross, c, err) != 0)
        return -1;
    c->n = n;
    return 0;
}

int xf_dist_gather_windows(xf_dist *d, const float *mine, float *all, int64_t nsamples, int64_t T,
                           size_t win, xf_error *err)
{
    int64_t first, count;
    range_of(d->rank, d->size, nsamples, T, &first, &count);
    if (d->rank != 0)
        return xf_dist_send(d, 0, mine, (size_t)count * win * sizeof *mine, err);
    memcpy(all + (size_t)first * win, mine, (size_t)count * win * sizeof *mine);
    for (int r = 1; r < d->size; r++) {
        range_of(r, d->size, nsamples, T, &first, &count);
        if (xf_dist_recv(d, r, all + (size_t)first * win, (size_t)count * win * sizeof *all,
                         err) != 0)
            return -1;
    }
    return 0;
}

int xf_dist_scatter_windows(xf_dist *d, const float *all, float *mine, int64_t nsamples,
                            int64_t T, size_t win, xf_error *err)
{
    int64_t first, count;
    range_of(d->rank, d->size, nsamples, T, &first, &count);
    if (d->rank != 0)
        return xf_dist_recv(d, 0, mine, (size_t)count * win * sizeof *mine, err);
    memcpy(mine, all + (size_t)first * win, (size_t)count * win * sizeof *mine);
    for (int r = 1; r < d->size; r++) {
        range_of(r, d->size, nsamples, T, &first, &count);
        if (xf_dist_send(d, r, all + (size_t)first * win, (size_t)count * win * sizeof *all,
                         err) != 0)
            return -1;
    }
    return 0;
}
