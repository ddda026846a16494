/* Round-to-nearest: fit grids on the weights, quantize each weight alone. */
#include "quant/rtn.h"

#include <math.h>
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
    xf_grid whole = {0};
    if (p->per_tensor) /* W is contiguous: one "row" of rows*cols values */
        whole = xf_grid_fit(&p->grid, W, rows * cols);
    const int64_t G = out->n_groups;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; r++) {
        const float *w = W + r * cols;
        uint8_t *c = out->codes + r * cols;
        for (int64_t gi = 0; gi < G; gi++) {
            int64_t j0 = gi * g, j1 = j0 + g < cols ? j0 + g : cols;
            xf_grid grid = p->per_tensor ? whole : xf_grid_fit(&p->grid, w + j0, j1 - j0);
            xf_qweight_set_grid(out, r, gi, &grid);
            for (int64_t j = j0; j < j1; j++)
                c[j] = xf_grid_quantize(&grid, w[j]);
        }
    }
    return 0;
}
