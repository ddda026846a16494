/* Dense-and-sparse weights (SpQR, Dettmers et al. 2023; the ReQuant family):
 * a fraction of each tensor's weights, those the grid represents worst, is
 * kept in fp16 in a sparse CSR side table and left out of the grid fit, so
 * they neither widen the range nor cost accuracy. The table travels with
 * the quantized weight (xf_qweight.outliers) into the .xfq, where it is
 * stored as NAME.outliers.{row_ptr,col,val} (docs/xfq-format.md, "Outlier
 * side tables"); its entries REPLACE the dense dequantized values.
 *
 * Who picks what: every weight is scored by how much its group's squared
 * error drops when it leaves the grid fit and is kept exactly
 * (xf_outliers_score_group): its own error (w - dq(q(w)))^2 under the grid
 * fitted on all weights, plus, for the values that set the range, what the
 * others gain from the narrower grid (SpQR's leave-one-out criterion; the
 * plain |w - dq(q(w))| would miss a planted outlier at the range end, whose
 * own rounding error is no larger than anyone's). RTN weighs every error
 * by 1 (quant/weights/rtn.c), GPTQ by 1 / U_jj^2, the SpQR sensitivity
 * (quant/weights/gptq.c). Both take the `count` largest scores of the whole tensor
 * (xf_outliers_select), then refit the grids without them
 * (xf_outliers_fit). The codes at outlier positions are the group's zero
 * point (the code of 0). */
#ifndef XF_QUANT_WEIGHTS_OUTLIERS_H
#define XF_QUANT_WEIGHTS_OUTLIERS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "quant/weights/grid.h"

/* The side table of one [rows, cols] weight, in logical column order.
 * Zeroed (all NULL, nnz 0) means none. */
typedef struct xf_outliers {
    int64_t rows, cols, nnz;
    int32_t *row_ptr; /* [rows + 1]; NULL when there is no table */
    int32_t *col;     /* [nnz], strictly increasing within a row */
    float *val;       /* [nnz], exactly fp16 values */
} xf_outliers;

/* round(frac * n) clamped to [0, n] (frac outside [0, 1] is clamped). */
int64_t xf_outliers_count(double frac, int64_t n);

/* Marks (mask[i] = 1, others 0) the `count` entries with the largest
 * scores of score[0..n); ties go to the lower index, so the choice is
 * deterministic. Scores must not be NaN. O(n) expected. */
int xf_outliers_select(const float *score, int64_t n, int64_t count, uint8_t *mask,
                       const char *name, xf_error *err);

/* Scores of one group of n values x[i] (error weights wt[i], NULL: 1): the
 * weighted squared error the group saves when x[i] is kept exactly and
 * left out of the grid fit. For most values that is their own error,
 *   score[i] = wt_i (x_i - dq_G(q_G(x_i)))^2, G the grid of all n values;
 * leaving them out does not move a min/max grid. The range-setting values
 * are "peeled": every way of keeping the a largest and the b smallest
 * values (a + b <= 4) is tried, with the errors of all the others under
 * the narrower grid counted, and each of those values scores the best
 * average marginal saving of keeping it (and the next ones on its side)
 * on top of the larger ones. So several outliers in one group, which only
 * pay off together, all rank high, and the ordinary value behind an
 * outlier does not inherit the outlier's saving.
 * Grids are min/max fits here (the MSE clip search is left out of the
 * scoring). Cost: about 15 passes over the group. */
void xf_outliers_score_group(const xf_grid_config *c, const float *x, const float *wt, int64_t n,
                             float *score);

/* The grid of the values x[i] with !mask[i] (mask NULL: all), gathered in
 * tmp[n]. With nothing left (every entry an outlier) the grid is that of
 * the range [0, 0] (xf_grid_from_range): any grid would do, its codes are
 * all replaced. */
xf_grid xf_outliers_fit(const xf_grid_config *c, const float *x, const uint8_t *mask, int64_t n,
                        float *tmp);

/* Builds the table of the masked entries of W [rows, cols], values
 * fp16(W). Logical column j of row r is mask/W[r * cols + pos[j]] (pos NULL:
 * j, i.e. both in logical order; GPTQ passes its quantization-order rows
 * with pos = the inverse of its permutation). Fails (naming `name`) when a
 * value does not fit in fp16 or nnz exceeds the I32 range. mask NULL or
 * empty: a zeroed (no) table. */
int xf_outliers_init_from_mask(xf_outliers *o, const uint8_t *mask, const float *W,
                               const int32_t *pos, int64_t rows, int64_t cols, const char *name,
                               xf_error *err);
void xf_outliers_free(xf_outliers *o);

/* Replaces the table's entries in row r (cols values) of a dense weight. */
void xf_outliers_apply_row(const xf_outliers *o, int64_t r, float *row);

#endif
