/* Linear weights of an edited model as fp64 matrices in the logical
 * [out, in] layout, whatever the stored layout (HF GPT-2 Conv1D [in, out]),
 * and the fp64 products the rotations need. Used by quant/transform/rotate*.c. */
#ifndef XF_QUANT_TRANSFORM_ROTATE_MAT_H
#define XF_QUANT_TRANSFORM_ROTATE_MAT_H

#include <stdint.h>

#include "core/error.h"
#include "model/model_edit.h"
#include "model/weights.h"

typedef struct xf_rmat {
    double *a;             /* [rows, cols] row-major */
    int64_t rows, cols;
    float *store;          /* the edited fp32 buffer it came from */
    bool transposed;       /* store is [cols, rows] */
} xf_rmat;

/* Logical [out, in] of a linear's weight (lin->transposed honoured). */
int xf_rmat_weight(xf_rmat *m, xf_model_edit *e, const xf_linear *lin, xf_error *err);
/* A plain tensor as [rows, cols] (1-D tensors: one row). */
int xf_rmat_tensor(xf_rmat *m, xf_model_edit *e, const xf_tensor *t, int64_t rows,
                   int64_t cols, xf_error *err);
/* Writes a back (rounded to fp32) and frees a. */
void xf_rmat_put(xf_rmat *m);
void xf_rmat_free(xf_rmat *m);

/* a <- a R (R [cols, cols]). */
int xf_rmat_right(xf_rmat *m, const double *R, xf_error *err);
/* a <- R^T a (R [rows, rows]). */
int xf_rmat_left_t(xf_rmat *m, const double *R, xf_error *err);

/* a <- a C with C = I - 11^T / cols: every row minus its mean (embedding
 * rows, a residual writer's bias seen as [1, hidden]). */
void xf_rmat_center_rows(xf_rmat *m);
/* a <- C a with C = I - 11^T / rows: every column minus its mean (a
 * residual writer's weight [hidden, in]: its outputs become zero-mean). */
int xf_rmat_center_cols(xf_rmat *m, xf_error *err);

#endif
