/* Round-to-nearest: fit grids on the weights, quantize each weight alone. */
#include "quant/rtn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* Index of the first non-finite value, or -1 (fast scan, then locate). */
static int64_t first_nonfinite(const float *x, int64_t n)
{
    if (xf_all_finite(x, n))
        return -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}

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

/* Dense-and-sparse: score every weight in its group (quant/outliers.h),
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

int xf_rtn_quantize(const float *W, int64_t rows, int64_t cols, const xf_rtn_params *p,
                    xf_qweight *out, const char *name, xf_error *err)
{
    if (!name)
        name = "?";
    if (xf_grid_config_check(&p->grid, name, err) != 0)
        return -1;
    int64_t g = p->per_tensor ? cols : xf_group_size_resolve(p->group, cols);
    if (xf_qweight_init(out, rows, cols, p->grid.bits, g, !p->grid.sym, false, name, err) != 0)
        return -1;
    int64_t bad = first_nonfinite(W, rows * cols);
    if (bad >= 0) {
        xf_qweight_free(out);
        return xf_fail(err, "%s: non-finite weight at [%lld, %lld]", name,
                       (long long)(bad / cols), (long long)(bad % cols));
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
