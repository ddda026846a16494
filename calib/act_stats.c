#include "calib/act_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int xf_act_stats_init(xf_act_stats *s, int64_t cols, const char *what, xf_error *err)
{
    memset(s, 0, sizeof *s);
    if (cols < 1)
        return xf_fail(err, "%s: activation statistics need at least one channel, got %lld",
                       what, (long long)cols);
    s->cols = cols;
    s->ch_absmax = calloc((size_t)cols, sizeof *s->ch_absmax);
    s->ch_energy = calloc((size_t)cols, sizeof *s->ch_energy);
    if (!s->ch_absmax || !s->ch_energy) {
        xf_act_stats_free(s);
        return xf_fail(err, "%s: out of memory for activation statistics of %lld channels", what,
                       (long long)cols);
    }
    return 0;
}

void xf_act_stats_free(xf_act_stats *s)
{
    free(s->ch_absmax);
    free(s->ch_energy);
    memset(s, 0, sizeof *s);
}

void xf_act_stats_add(xf_act_stats *s, const float *x, int64_t rows)
{
    const int64_t cols = s->cols;
    const size_t total = (size_t)rows * (size_t)cols;
    /* pass 1: per-channel maxima and energies, the block's count and mean */
    int64_t nb = 0;
    double sum = 0.0;
    for (int64_t t = 0; t < rows; t++) {
        const float *row = x + (size_t)t * (size_t)cols;
        for (int64_t c = 0; c < cols; c++) {
            double v = row[c];
            if (!isfinite(v)) {
                s->n_nonfinite++;
                continue;
            }
            double a = fabs(v);
            if (a > s->ch_absmax[c])
                s->ch_absmax[c] = a;
            s->ch_energy[c] += v * v;
            sum += v;
            nb++;
        }
    }
    s->rows += rows;
    if (nb == 0)
        return;
    /* pass 2: the block's central moments about its own mean */
    const double mean_b = sum / (double)nb;
    double m2b = 0.0, m3b = 0.0, m4b = 0.0;
    for (size_t i = 0; i < total; i++) {
        double v = x[i];
        if (!isfinite(v))
            continue;
        double d = v - mean_b, d2 = d * d;
        m2b += d2;
        m3b += d2 * d;
        m4b += d2 * d2;
    }
    /* Pebay (2008), pairwise combination of (n, mean, M2, M3, M4) */
    if (s->n == 0) {
        s->n = nb;
        s->mean = mean_b;
        s->m2 = m2b;
        s->m3 = m3b;
        s->m4 = m4b;
        return;
    }
    const double na = (double)s->n, nbd = (double)nb, n = na + nbd;
    const double delta = mean_b - s->mean, d2 = delta * delta;
    const double m4 = s->m4 + m4b + d2 * d2 * na * nbd * (na * na - na * nbd + nbd * nbd) / (n * n * n) +
                      6.0 * d2 * (na * na * m2b + nbd * nbd * s->m2) / (n * n) +
                      4.0 * delta * (na * m3b - nbd * s->m3) / n;
    const double m3 = s->m3 + m3b + d2 * delta * na * nbd * (na - nbd) / (n * n) +
                      3.0 * delta * (na * m2b - nbd * s->m2) / n;
    const double m2 = s->m2 + m2b + d2 * na * nbd / n;
    s->mean += delta * nbd / n;
    s->m2 = m2;
    s->m3 = m3;
    s->m4 = m4;
    s->n += nb;
}

double xf_act_stats_absmax(const xf_act_stats *s)
{
    double m = 0.0;
    for (int64_t c = 0; c < s->cols; c++)
        if (s->ch_absmax[c] > m)
            m = s->ch_absmax[c];
    return m;
}

double xf_act_stats_std(const xf_act_stats *s)
{
    return s->n > 0 ? sqrt(s->m2 / (double)s->n) : NAN;
}

double xf_act_stats_kurtosis(const xf_act_stats *s)
{
    if (s->n == 0 || !(s->m2 > 0.0))
        return NAN;
    /* m4/n / (m2/n)^2 = n m4 / m2^2 */
    return (double)s->n * s->m4 / (s->m2 * s->m2);
}

static int cmp_double_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* A sorted (descending) copy of v [n], or NULL when out of memory. */
static double *sorted_desc(const double *v, int64_t n)
{
    double *c = malloc((size_t)n * sizeof *c);
    if (!c)
        return NULL;
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double_desc);
    return c;
}

double xf_act_stats_median_absmax(const xf_act_stats *s)
{
    double *c = sorted_desc(s->ch_absmax, s->cols);
    if (!c)
        return NAN;
    int64_t n = s->cols;
    double med = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return med;
}

int64_t xf_act_stats_top_pct_channels(int64_t cols)
{
    int64_t p = (cols + 99) / 100;
    return p < 1 ? 1 : p;
}

double xf_act_stats_top_pct_energy_share(const xf_act_stats *s)
{
    double *c = sorted_desc(s->ch_energy, s->cols);
    if (!c)
        return NAN;
    int64_t p = xf_act_stats_top_pct_channels(s->cols);
    /* both sums from the largest down, so the share cannot exceed 1 by rounding */
    double top = 0.0, total = 0.0;
    for (int64_t i = 0; i < s->cols; i++) {
        total += c[i];
        if (i + 1 == p)
            top = total;
    }
    free(c);
    return total > 0.0 ? top / total : NAN;
}

typedef struct {
    double v;
    int64_t c;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? 1 : -1;
    return (x->c > y->c) - (x->c < y->c);
}

int64_t xf_act_stats_top(const xf_act_stats *s, int64_t k, xf_act_channel *top)
{
    if (k <= 0)
        return 0;
    ranked *r = malloc((size_t)s->cols * sizeof *r);
    if (!r)
        return -1;
    for (int64_t c = 0; c < s->cols; c++)
        r[c] = (ranked){s->ch_absmax[c], c};
    qsort(r, (size_t)s->cols, sizeof *r, cmp_ranked);
    double med = xf_act_stats_median_absmax(s);
    int64_t n = k < s->cols ? k : s->cols;
    for (int64_t i = 0; i < n; i++)
        top[i] = (xf_act_channel){r[i].c, r[i].v, med > 0.0 ? r[i].v / med : NAN};
    free(r);
    return n;
}

/* A JSON number, or null for NaN/Inf (JSON has neither). */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *xf_act_stats_json(const xf_act_stats *s, int64_t k)
{
    if (k < 0)
        k = 0;
    xf_act_channel *top = malloc((size_t)(k > 0 ? k : 1) * sizeof *top);
    int64_t nt = top ? xf_act_stats_top(s, k, top) : -1;
    json_t *arr = json_array();
    if (nt < 0 || !arr) {
        free(top);
        json_decref(arr);
        return NULL;
    }
    for (int64_t i = 0; i < nt; i++)
        json_array_append_new(arr, json_pack("{s:I, s:o, s:o}", "channel",
                                             (json_int_t)top[i].channel, "absmax",
                                             num(top[i].absmax), "ratio_to_median",
                                             num(top[i].ratio_to_median)));
    free(top);
    double mean = s->n > 0 ? s->mean : NAN;
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o}", "width",
                     (json_int_t)s->cols, "tokens", (json_int_t)s->rows, "values",
                     (json_int_t)s->n, "nonfinite", (json_int_t)s->n_nonfinite, "absmax",
                     num(xf_act_stats_absmax(s)), "mean", num(mean), "std",
                     num(xf_act_stats_std(s)), "kurtosis", num(xf_act_stats_kurtosis(s)),
                     "median_channel_absmax", num(xf_act_stats_median_absmax(s)),
                     "top1pct_channels", (json_int_t)xf_act_stats_top_pct_channels(s->cols),
                     "top1pct_energy_share", num(xf_act_stats_top_pct_energy_share(s)),
                     "top_channels", arr);
}
