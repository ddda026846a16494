/* Round-to-nearest: fit grids on the weights, quantize each weight alone. */
#include "quant/weights/rtn.h"

#include "quant/weights/razor_weights.h"
#include "sim/log2_quant.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* Fits every grid of out (group g) on the weights not in mask (NULL: all)
 * and quantizes; masked weights get their group's zero point (the code of
 * 0). With a mask, scratch holds omp_get_max_threads() * g floats (each
 * thread gathers a group's kept values there) and, per tensor, whole_tmp
 * rows * cols floats. */
static void fit_and_quantize(const float *W, int64_t rows, int64_t cols, const xf_rtn_params *p,
                             int64_t g, const uint8_t *mask, float *scratch, float *whole_tmp,
                             xf_qweight *out)
{
    xf_grid whole = {0};
    if (p->per_tensor) /* W is contiguous: one "row" of rows*cols values */
        whole = xf_outliers_fit(&p->grid, W, mask, rows * cols, whole_tmp);
    const int64_t G = out->n_groups;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; r++) {
        const float *w = W + r * cols;
        const uint8_t *mr = mask ? mask + r * cols : NULL;
        float *tmp = mask ? scratch + (size_t)omp_get_thread_num() * (size_t)g : NULL;
        uint8_t *c = out->codes + r * cols;
        for (int64_t gi = 0; gi < G; gi++) {
            int64_t j0 = gi * g, j1 = j0 + g < cols ? j0 + g : cols;
            xf_grid grid = p->per_tensor ? whole
                           : mr ? xf_outliers_fit(&p->grid, w + j0, mr + j0, j1 - j0, tmp)
                                : xf_grid_fit(&p->grid, w + j0, j1 - j0);
            xf_qweight_set_grid(out, r, gi, &grid);
            for (int64_t j = j0; j < j1; j++)
                c[j] = xf_grid_quantize(&grid, w[j]);
            for (int64_t j = j0; mr && j < j1; j++)
                if (mr[j])
                    c[j] = grid.zero;
        }
    }
}

/* Dense-and-sparse: score every weight in its group (quant/weights/outliers.h),
 * take the `count` best, refit without them (see rtn.h). */
static int quantize_with_outliers(const float *W, int64_t rows, int64_t cols,
                                  const xf_rtn_params *p, int64_t g, int64_t count,
                                  xf_qweight *out, const char *name, xf_error *err)
{
    const size_t n = (size_t)rows * (size_t)cols;
    float *score = malloc(n * sizeof *score);
    uint8_t *mask = malloc(n);
    float *whole_tmp = p->per_tensor ? malloc(n * sizeof *whole_tmp) : NULL;
    float *scratch = malloc((size_t)omp_get_max_threads() * (size_t)g * sizeof *scratch);
    int rc = -1;
    if (!score || !mask || !scratch || (p->per_tensor && !whole_tmp)) {
        xf_fail(err, "%s: out of memory for the outlier selection", name);
        goto out;
    }
    if (p->per_tensor) {
        xf_outliers_score_group(&p->grid, W, NULL, (int64_t)n, score);
    } else {
#pragma omp parallel for schedule(dynamic, 8)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j0 = 0; j0 < cols; j0 += g) {
                int64_t j1 = j0 + g < cols ? j0 + g : cols;
                xf_outliers_score_group(&p->grid, W + r * cols + j0, NULL, j1 - j0,
                                        score + r * cols + j0);
            }
    }
    if (xf_outliers_select(score, (int64_t)n, count, mask, name, err) != 0)
        goto out;
    fit_and_quantize(W, rows, cols, p, g, mask, scratch, whole_tmp, out);
    rc = xf_outliers_init_from_mask(&out->outliers, mask, W, NULL, rows, cols, name, err);
out:
    free(score);
    free(mask);
    free(whole_tmp);
    free(scratch);
    return rc;
}

/* Every group of every row on its own log2 grid; dequantized values are
 * xf_log2_weight_row_codes' output, scales fp16-exact by construction. */
static int quantize_log2(const float *W, xf_qweight *out)
{
    const int64_t cols = out->cols, g = out->group_size;
    int oom = 0;
    out->log2 = true;
#pragma omp parallel reduction(| : oom)
    {
        float *tmp = malloc((size_t)g * sizeof *tmp);
        oom |= !tmp;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < out->rows; r++) {
            for (int64_t j0 = 0, gi = 0; j0 < cols; j0 += g, gi++) {
                int64_t n = cols - j0 < g ? cols - j0 : g;
                float s = tmp ? xf_log2_weight_row_codes(W + r * cols + j0, n, out->bits,
                                                         out->codes + r * cols + j0, tmp)
                              : 0.0f;
                /* an all-zero group: every code is the zero code, any scale works */
                out->scales[r * out->n_groups + gi] = s > 0.0f ? s : 1.0f;
            }
        }
        free(tmp);
    }
    return oom ? -1 : 0;
}

int xf_rtn_quantize(const float *W, int64_t rows, int64_t cols, const xf_rtn_params *p,
                    xf_qweight *out, const char *name, xf_error *err)
{
    if (!name)
        name = "?";
    if (xf_grid_config_check(&p->grid, name, err) != 0)
        return -1;
    if (p->razor) {
        if (p->per_tensor || p->outliers > 0.0 || p->log2_grid)
            return xf_fail(err, "%s: the razor weight grid supports neither per-tensor grids, "
                                "outliers nor log2", name);
        int64_t bad = xf_first_nonfinite(W, rows * cols);
        if (bad >= 0)
            return xf_fail(err, "%s: non-finite weight at [%lld, %lld]", name,
                           (long long)(bad / cols), (long long)(bad % cols));
        return xf_razor_weights_quantize(W, rows, cols, p->grid.bits, p->razor_group, out, name,
                                         err);
    }
    if (p->log2_grid && (p->per_tensor || p->outliers > 0.0))
        return xf_fail(err, "%s: the log2 weight grid supports neither per-tensor grids nor "
                            "outliers", name);
    int64_t g = p->per_tensor ? cols : xf_group_size_resolve(p->group, cols);
    if (xf_qweight_init(out, rows, cols, p->grid.bits, g, !p->grid.sym && !p->log2_grid, false,
                        name, err) != 0)
        return -1;
    int64_t bad = xf_first_nonfinite(W, rows * cols);
    if (bad >= 0) {
        xf_qweight_free(out);
        return xf_fail(err, "%s: non-finite weight at [%lld, %lld]", name,
                       (long long)(bad / cols), (long long)(bad % cols));
    }
    if (p->log2_grid) {
        if (quantize_log2(W, out) != 0) {
            xf_qweight_free(out);
            return xf_fail(err, "%s: out of memory", name);
        }
        return 0;
    }
    const int64_t count = xf_outliers_count(p->outliers, rows * cols);
    if (count == 0) {
        fit_and_quantize(W, rows, cols, p, g, NULL, NULL, NULL, out);
        return 0;
    }
    if (quantize_with_outliers(W, rows, cols, p, g, count, out, name, err) != 0) {
        xf_qweight_free(out);
        return -1;
    }
    return 0;
}

bool xf_rtn_streamable(const xf_rtn_params *p, int64_t rows, int64_t cols)
{
    return !p->per_tensor && !p->log2_grid && !p->razor && xf_outliers_count(p->outliers, rows * cols) == 0;
}

double xf_rtn_row_sq_error(const float *w, const float *dq, int64_t n)
{
    double l[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) {
            double d = (double)w[j + k] - dq[j + k];
            l[k] += d * d;
        }
    for (int k = 0; j < n; j++, k++) {
        double d = (double)w[j] - dq[j];
        l[k] += d * d;
    }
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* One row of xf_rtn_quantize_rows: w (fp32, finite) -> codes and grids of
 * row r, dq its dequantized values (as xf_qweight_dequantize_row). */
static void quantize_row(const float *w, int64_t r, const xf_rtn_params *p, xf_qweight *out,
                         float *dq)
{
    const int64_t cols = out->cols, g = out->group_size;
    uint8_t *c = out->codes + r * cols;
    for (int64_t gi = 0, j0 = 0; j0 < cols; gi++, j0 += g) {
        const int64_t j1 = j0 + g < cols ? j0 + g : cols;
        const xf_grid grid = xf_grid_fit(&p->grid, w + j0, j1 - j0);
        xf_qweight_set_grid(out, r, gi, &grid);
        for (int64_t j = j0; j < j1; j++)
            c[j] = xf_grid_quantize(&grid, w[j]);
        const xf_grid st = xf_qweight_grid(out, r, gi); /* as stored: what readers see */
        for (int64_t j = j0; j < j1; j++)
            dq[j] = xf_grid_dequantize(&st, c[j]);
    }
}

int xf_rtn_quantize_rows(const xf_tensor *t, const xf_rtn_params *p, xf_qweight *out,
                         double *row_err, const char *name, xf_error *err)
{
    if (!name)
        name = "?";
    if (xf_grid_config_check(&p->grid, name, err) != 0)
        return -1;
    if (t->ndim != 2)
        return xf_fail(err, "%s: expected 2 dimensions, has %d", name, t->ndim);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    if (!xf_rtn_streamable(p, rows, cols))
        return xf_fail(err, "%s: per-tensor, log2 or outlier RTN needs the whole tensor", name);
    const int64_t g = xf_group_size_resolve(p->group, cols);
    if (xf_qweight_init(out, rows, cols, p->grid.bits, g, !p->grid.sym, false, name, err) != 0)
        return -1;
    int64_t bad = -1;     /* first non-finite weight, row-major (any thread count) */
    int64_t bad_conv = -1; /* first row that failed to convert */
    xf_error conv_err = {0};
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        float *w = malloc((size_t)cols * sizeof *w);
        float *dq = malloc((size_t)cols * sizeof *dq);
        oom |= !w || !dq;
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < rows; r++) {
            row_err[r] = 0.0;
            if (!w || !dq)
                continue;
            xf_error e = {0};
            if (xf_tensor_row_to_f32(t, r, w, &e) != 0) {
#pragma omp critical
                if (bad_conv < 0 || r < bad_conv) {
                    bad_conv = r;
                    conv_err = e;
                }
                continue;
            }
            int64_t b = xf_first_nonfinite(w, cols);
            if (b >= 0) {
#pragma omp critical
                if (bad < 0 || r * cols + b < bad)
                    bad = r * cols + b;
                continue;
            }
            quantize_row(w, r, p, out, dq);
            row_err[r] = xf_rtn_row_sq_error(w, dq, cols);
        }
        free(w);
        free(dq);
    }
    int rc = 0;
    if (oom)
        rc = xf_fail(err, "%s: out of memory", name);
    else if (bad_conv >= 0) {
        if (err)
            *err = conv_err;
        rc = -1;
    } else if (bad >= 0)
        rc = xf_fail(err, "%s: non-finite weight at [%lld, %lld]", name,
                     (long long)(bad / cols), (long long)(bad % cols));
    if (rc != 0)
        xf_qweight_free(out);
    return rc;
}
