/* Round-to-nearest quantization of a weight matrix: every row of every
 * group gets its own grid (quant/weights/grid.h), fitted on the weights themselves. */
#ifndef XF_QUANT_WEIGHTS_RTN_H
#define XF_QUANT_WEIGHTS_RTN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/tensor.h"
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
    bool razor;      /* --weight-grid razor: quant/weights/razor_weights.h with
                        grid.bits kept bits (group, sym, clip unused) */
    int64_t razor_group;
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

/* Whether xf_rtn_quantize_rows handles p on a [rows, cols] weight: one grid
 * per row and group, no outliers, uniform grid (the plain `rtn` recipe). */
bool xf_rtn_streamable(const xf_rtn_params *p, int64_t rows, int64_t cols);

/* xf_rtn_quantize on the rows of the 2-D tensor t ([rows, cols] as
 * stored) without an fp32 copy of it: OpenMP-parallel over rows, each row
 * converted (xf_tensor_row_to_f32), checked finite, fitted, quantized and
 * dequantized in a row buffer. The same codes and grids as
 * xf_rtn_quantize on xf_tensor_to_f32(t) (same fp32 operations per
 * element). row_err[rows] receives xf_rtn_row_sq_error of every row.
 * Needs xf_rtn_streamable(p, rows, cols). */
int xf_rtn_quantize_rows(const xf_tensor *t, const xf_rtn_params *p, xf_qweight *out,
                         double *row_err, const char *name, xf_error *err);

/* sum_j ((double)w[j] - dq[j])^2 in a fixed order that does not depend
 * on threads: 8 fp64 lanes (lane j % 8, each in column order), then
 * ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). */
double xf_rtn_row_sq_error(const float *w, const float *dq, int64_t n);

#endif
