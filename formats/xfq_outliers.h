/* Outlier side tables of packed weights (dense-and-sparse, SpQR family):
 * for a packed tensor NAME, the CSR triple NAME.outliers.row_ptr (I32
 * [rows+1]), NAME.outliers.col (I32 [nnz], logical columns) and
 * NAME.outliers.val (F16 [nnz]), whose values REPLACE the dense dequantized
 * ones. Spec: docs/xfq-format.md, "Outlier side tables". Views only.
 * On disk the table is three tensors beside the weight; in memory the
 * weight's packed view carries it (xf_packed_view.outliers, attached here
 * once checked), so that every conversion to fp32 includes it. */
#ifndef XF_FORMATS_XFQ_OUTLIERS_H
#define XF_FORMATS_XFQ_OUTLIERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/tensor.h"

#define XFQ_OUTLIERS_INFIX ".outliers."

typedef enum xfq_outliers_part {
    XFQ_OUTLIERS_ROW_PTR = 0,
    XFQ_OUTLIERS_COL,
    XFQ_OUTLIERS_VAL,
    XFQ_OUTLIERS_NPARTS
} xfq_outliers_part;

/* The side table of one weight (borrowed views; all NULL when it has none). */
typedef struct xf_sparse_outliers {
    const xf_tensor *row_ptr, *col, *val;
} xf_sparse_outliers;

/* "row_ptr", "col", "val". */
const char *xfq_outliers_part_name(xfq_outliers_part p);

/* Writes "<weight>.outliers.<part>" into buf; -1 if it does not fit. */
int xfq_outliers_name(const char *weight, xfq_outliers_part p, char *buf, size_t cap);

/* If `name` is a side-table part, returns the part and sets *weight_len to
 * the length of the weight's name (the prefix); else -1. */
int xfq_outliers_parse_name(const char *name, size_t *weight_len);

/* The parts of `weight`'s table found in s (missing parts NULL). */
void xfq_outliers_find(const xf_tensor_set *s, const char *weight, xf_sparse_outliers *out);

static inline bool xfq_outliers_any(const xf_sparse_outliers *o)
{
    return o->row_ptr || o->col || o->val;
}

/* Full check of one table against its weight `w` (may be NULL: then the
 * table has no weight, an error): all parts present, w packed, storage
 * types, shapes, row_ptr monotone from 0 to nnz, columns in range and
 * strictly increasing per row, values finite. Errors read
 * "<what>: tensor <part>: ..." ("tensor <part>: ..." when what is NULL). */
int xfq_outliers_check(const xf_sparse_outliers *o, const xf_tensor *w, const char *what,
                       xf_error *err);

/* Checks every side table of a (name-sorted) set: each part belongs to a
 * complete triple whose weight is present and packed, and passes
 * xfq_outliers_check. */
int xfq_outliers_check_set(const xf_tensor_set *s, const char *what, xf_error *err);

/* Entries of a checked table (0 for none) and the bytes of its three
 * parts (what it adds to the weight's storage). */
int64_t xfq_outliers_nnz(const xf_sparse_outliers *o);
size_t xfq_outliers_bytes(const xf_sparse_outliers *o);

/* Points w's packed view at the checked table o (none: clears it). */
void xfq_outliers_attach(const xf_sparse_outliers *o, xf_tensor *w);
/* Attaches every packed weight's table in a set whose tables passed
 * xfq_outliers_check_set (the .xfq reader, after its checks). */
void xfq_outliers_attach_set(xf_tensor_set *s);

/* The table a packed weight's view carries is its side table o: both
 * absent, or the same entries. Fails naming w otherwise: a view carrying
 * outliers the file would not hold, or a side table its view ignores. */
int xfq_outliers_check_carried(const xf_sparse_outliers *o, const xf_tensor *w, const char *what,
                               xf_error *err);
/* The same for every packed weight of a (name-sorted) set. */
int xfq_outliers_check_carried_set(const xf_tensor_set *s, const char *what, xf_error *err);

#endif
