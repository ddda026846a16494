/* Outlier selection (top-k scores), masked grid fits and the CSR side
 * table of dense-and-sparse quantization (see outliers.h). */
#include "quant/weights/outliers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"

int64_t xf_outliers_count(double frac, int64_t n)
{
    if (!(frac > 0.0) || n <= 0)
        return 0;
    if (frac >= 1.0)
        return n;
    int64_t k = (int64_t)llround(frac * (double)n);
    return k < 0 ? 0 : k > n ? n : k;
}

static void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

static float median3(float x, float y, float z)
{
    if (x > y)
        swapf(&x, &y);
    if (y > z)
        swapf(&y, &z);
    return x > y ? x : y;
}

/* The k-th smallest (0-based) of a[0..n) by quickselect; a is permuted.
 * The three-way partition keeps runs of equal scores (exactly
 * representable weights all score 0) linear. */
static float kth_smallest(float *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        const float pivot = median3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        int64_t lt = lo, i = lo, gt = hi; /* [lo,lt) < pivot, [lt,gt) == pivot, [gt,hi) > */
        while (i < gt) {
            if (a[i] < pivot)
                swapf(&a[lt++], &a[i++]);
            else if (a[i] > pivot)
                swapf(&a[i], &a[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return pivot;
    }
    return a[lo];
}

int xf_outliers_select(const float *score, int64_t n, int64_t count, uint8_t *mask,
                       const char *name, xf_error *err)
{
    if (count <= 0 || count >= n) {
        memset(mask, count > 0 ? 1 : 0, (size_t)(n > 0 ? n : 0));
        return 0;
    }
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp)
        return xf_fail(err, "%s: out of memory selecting %lld outliers", name ? name : "?",
                       (long long)count);
    memcpy(tmp, score, (size_t)n * sizeof *tmp);
    const float thr = kth_smallest(tmp, n, n - count); /* the count-th largest */
    free(tmp);
    int64_t taken = 0;
    for (int64_t i = 0; i < n; i++) {
        mask[i] = score[i] > thr;
        taken += mask[i];
    }
    for (int64_t i = 0; i < n && taken < count; i++) /* ties at the threshold: lowest index */
        if (score[i] == thr) {
            mask[i] = 1;
            taken++;
        }
    return 0;
}

/* Values peeled off each group's range by xf_outliers_score_group. */
#define XF_OUTLIERS_PEEL 4

static double sq_err(const xf_grid *g, float v)
{
    const double e = (double)v - (double)xf_grid_dequantize(g, xf_grid_quantize(g, v));
    return e * e;
}

/* The order of the peel: by value, ties by index (a total order, so the
 * k largest and the k smallest of a group are well defined and disjoint
 * whenever they fit). */
static bool above(const float *x, int64_t i, int64_t j)
{
    return x[i] > x[j] || (x[i] == x[j] && i > j);
}

/* The k largest (top, descending) and k smallest (bot, ascending) of x. */
static void extremes(const float *x, int64_t n, int k, int64_t *top, int64_t *bot)
{
    int nt = 0, nb = 0;
    for (int64_t i = 0; i < n; i++) {
        int p = nt < k ? nt++ : k;
        while (p > 0 && above(x, i, top[p - 1])) {
            if (p < k)
                top[p] = top[p - 1];
            p--;
        }
        if (p < k)
            top[p] = i;
        p = nb < k ? nb++ : k;
        while (p > 0 && above(x, bot[p - 1], i)) {
            if (p < k)
                bot[p] = bot[p - 1];
            p--;
        }
        if (p < k)
            bot[p] = i;
    }
}

void xf_outliers_score_group(const xf_grid_config *c, const float *x, const float *wt, int64_t n,
                             float *score)
{
    /* min/max grids: the score is a ranking heuristic, and the MSE clip
     * search would cost 80 fits per candidate peel */
    xf_grid_config mm = *c;
    mm.clip = XF_CLIP_NONE;
    const xf_grid g = xf_grid_fit(&mm, x, n);
    double base = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = (wt ? (double)wt[i] : 1.0) * sq_err(&g, x[i]);
        score[i] = (float)e;
        base += e;
    }
    const int K = n - 1 < XF_OUTLIERS_PEEL ? (int)(n - 1) : XF_OUTLIERS_PEEL;
    if (K < 1)
        return;
    int64_t top[XF_OUTLIERS_PEEL + 1], bot[XF_OUTLIERS_PEEL + 1];
    extremes(x, n, K + 1, top, bot);
    /* G[a][b]: the error saved by keeping the a largest and b smallest
     * exactly (their own errors and the others' gain from the narrower grid) */
    double G[XF_OUTLIERS_PEEL + 1][XF_OUTLIERS_PEEL + 1] = {{0.0}};
    for (int a = 0; a <= K; a++)
        for (int b = 0; a + b <= K; b++) {
            if (a + b == 0)
                continue;
            /* the rest lies within [x[bot[b]], x[top[a]]]: its min/max grid */
            const float range[2] = {x[bot[b]], x[top[a]]};
            const xf_grid h = xf_grid_fit(&mm, range, 2);
            double err = 0.0;
            for (int64_t j = 0; j < n; j++)
                if (!above(x, j, top[a]) && !above(x, bot[b], j))
                    err += (wt ? (double)wt[j] : 1.0) * sq_err(&h, x[j]);
            G[a][b] = base - err;
        }
    /* top[i] scores the best average marginal saving of keeping top[i..a)
     * on top of a peel that already keeps top[0..i) and bot[0..b): a value
     * that only pays off with the next one shares in its saving, and one
     * behind a big outlier does not inherit that outlier's saving */
    for (int i = 0; i < K; i++) {
        double bt = -HUGE_VAL, bb = -HUGE_VAL;
        for (int b = 0; i + b < K; b++)
            for (int a = i + 1; a + b <= K; a++) {
                bt = fmax(bt, (G[a][b] - G[i][b]) / (double)(a - i));
                bb = fmax(bb, (G[b][a] - G[b][i]) / (double)(a - i));
            }
        score[top[i]] = fmaxf(score[top[i]], (float)bt);
        score[bot[i]] = fmaxf(score[bot[i]], (float)bb);
    }
}

xf_grid xf_outliers_fit(const xf_grid_config *c, const float *x, const uint8_t *mask, int64_t n,
                        float *tmp)
{
    if (!mask)
        return xf_grid_fit(c, x, n);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!mask[i])
            tmp[m++] = x[i];
    return m > 0 ? xf_grid_fit(c, tmp, m) : xf_grid_from_range(0.0f, 0.0f, c->bits, c->sym);
}

int xf_outliers_init_from_mask(xf_outliers *o, const uint8_t *mask, const float *W,
                               const int32_t *pos, int64_t rows, int64_t cols, const char *name,
                               xf_error *err)
{
    memset(o, 0, sizeof *o);
    if (!name)
        name = "?";
    const int64_t n = rows * cols;
    int64_t nnz = 0;
    for (int64_t i = 0; mask && i < n; i++)
        nnz += mask[i] != 0;
    if (nnz == 0)
        return 0;
    if (nnz > INT32_MAX)
        return xf_fail(err, "%s: %lld outliers exceed the I32 index range of the side table",
                       name, (long long)nnz);
    o->rows = rows;
    o->cols = cols;
    o->nnz = nnz;
    o->row_ptr = malloc((size_t)(rows + 1) * sizeof *o->row_ptr);
    o->col = malloc((size_t)nnz * sizeof *o->col);
    o->val = malloc((size_t)nnz * sizeof *o->val);
    if (!o->row_ptr || !o->col || !o->val) {
        xf_outliers_free(o);
        return xf_fail(err, "%s: out of memory for %lld outliers", name, (long long)nnz);
    }
    int32_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        o->row_ptr[r] = k;
        for (int64_t j = 0; j < cols; j++) {
            const int64_t at = r * cols + (pos ? pos[j] : j);
            if (!mask[at])
                continue;
            const float v = xf_f16_to_f32(xf_f32_to_f16(W[at]));
            if (!isfinite(v)) {
                float w = W[at];
                xf_outliers_free(o);
                return xf_fail(err, "%s: outlier [%lld, %lld] = %g does not fit in fp16", name,
                               (long long)r, (long long)j, (double)w);
            }
            o->col[k] = (int32_t)j;
            o->val[k] = v;
            k++;
        }
    }
    o->row_ptr[rows] = k;
    return 0;
}

void xf_outliers_free(xf_outliers *o)
{
    free(o->row_ptr);
    free(o->col);
    free(o->val);
    memset(o, 0, sizeof *o);
}

void xf_outliers_apply_row(const xf_outliers *o, int64_t r, float *row)
{
    if (!o->row_ptr)
        return;
    for (int32_t k = o->row_ptr[r]; k < o->row_ptr[r + 1]; k++)
        row[o->col[k]] = o->val[k];
}
