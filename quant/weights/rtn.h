/* Round-to-nearest quantization of a weight matrix: every row of every
 * group gets its own grid (quant/weights/grid.h), fitted on the weights themselves. */
#ifndef XF_QUANT_WEIGHTS_RTN_H
#define XF_QUANT_WEIGHTS_RTN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "quant/weights/grid.h"
#include "quant/weights/qweight.h"

typedef struct xf_rtn_params {
    xf_grid_config grid;
    int64_t group;   /* columns per group; <= 0 (-1): per channel (one grid per row) */
    bool per_tensor; /* one grid for the whole tensor (overrides group); stored
                        as per-channel with the same scale/zero in every row */
    double outliers; /* fraction 0..1 of the weights kept in fp16 (dense-and-sparse) */
    bool log2_grid;  /* --weight-grid log2: every row/group on the log2 grid of
                        xf_log2_weight_row_codes (grid.sym/clip unused); no
                        per_tensor, no outliers */
} xf_rtn_params;

/* Quantizes W [rows, cols] (fp32, row-major, finite; not modified) into
 * *out (initialized here; free with xf_qweight_free). No permutation.
 * With p->outliers > 0: the round(outliers * rows * cols) weights whose
 * removal from their group's grid fit lowers its squared error most (their
 * own |w - dq(q(w))|^2 under the grid of all weights, plus the others' gain
 * for the range-setting ones; quant/weights/outliers.h) go to out->outliers
 * (fp16(w)), and the grids are refitted without them (their codes: the
 * zero point). Errors name `name` (the tensor). */
int xf_rtn_quantize(const float *W, int64_t rows, int64_t cols, const xf_rtn_params *p,
                    xf_qweight *out, const char *name, xf_error *err);

#endif
