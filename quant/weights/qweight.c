/* Quantized-weight container: allocation, dequantization and export to a
 * packed .xfq tensor. */
#include "quant/weights/qweight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "formats/ggml_dequant.h"
#include "formats/xfq_outliers.h"
#include "formats/xfq_pack.h"

int64_t xf_group_size_resolve(int64_t group, int64_t cols)
{
    return (group <= 0 || group >= cols) ? cols : group;
}

int xf_qweight_init(xf_qweight *q, int64_t rows, int64_t cols, int bits, int64_t group_size,
                    bool asym, bool with_perm, const char *what, xf_error *err)
{
    memset(q, 0, sizeof *q);
    if (bits < XF_GRID_MIN_BITS || bits > XF_GRID_MAX_BITS)
        return xf_fail(err, "%s: bit width %d outside [%d, %d]", what, bits, XF_GRID_MIN_BITS,
                       XF_GRID_MAX_BITS);
    if (rows < 1 || cols < 1 || cols > INT32_MAX)
        return xf_fail(err, "%s: invalid weight shape [%lld, %lld]", what, (long long)rows,
                       (long long)cols);
    if (group_size < 1 || group_size > cols)
        return xf_fail(err, "%s: group size %lld outside [1, %lld]", what,
                       (long long)group_size, (long long)cols);
    int64_t n_groups = (cols + group_size - 1) / group_size;
    size_t ncodes, ngrid;
    if (__builtin_mul_overflow((size_t)rows, (size_t)cols, &ncodes) ||
        __builtin_mul_overflow((size_t)rows, (size_t)n_groups, &ngrid) ||
        ngrid > SIZE_MAX / sizeof(float))
        return xf_fail(err, "%s: weight shape [%lld, %lld] too large", what, (long long)rows,
                       (long long)cols);
    q->rows = rows;
    q->cols = cols;
    q->bits = bits;
    q->group_size = group_size;
    q->n_groups = n_groups;
    q->asym = asym;
    q->codes = calloc(ncodes, 1);
    q->scales = calloc(ngrid, sizeof(float));
    q->zeros = malloc(ngrid);
    q->perm = with_perm ? malloc((size_t)cols * sizeof(int32_t)) : NULL;
    if (!q->codes || !q->scales || !q->zeros || (with_perm && !q->perm)) {
        xf_qweight_free(q);
        return xf_fail(err, "%s: out of memory for a [%lld, %lld] quantized weight", what,
                       (long long)rows, (long long)cols);
    }
    memset(q->zeros, asym ? 0 : 1 << (bits - 1), ngrid);
    if (with_perm)
        for (int64_t j = 0; j < cols; j++)
            q->perm[j] = (int32_t)j;
    return 0;
}

int xf_qweight_init_ggml(xf_qweight *q, int64_t rows, int64_t cols, const xf_ggml_grid_traits *t,
                         const char *what, xf_error *err)
{
    memset(q, 0, sizeof *q);
    const xf_ggml_type_traits *gt = xf_ggml_traits(t->type);
    if (rows < 1 || cols < 1 || cols > INT32_MAX || cols % t->block != 0)
        return xf_fail(err, "%s: weight shape [%lld, %lld] does not fit %s blocks of %d", what,
                       (long long)rows, (long long)cols, gt->name, t->block);
    const size_t row_bytes = xf_ggml_row_bytes(gt, cols);
    if ((size_t)rows > SIZE_MAX / row_bytes)
        return xf_fail(err, "%s: weight shape [%lld, %lld] too large", what, (long long)rows,
                       (long long)cols);
    q->blocks = calloc((size_t)rows * row_bytes, 1);
    if (!q->blocks)
        return xf_fail(err, "%s: out of memory for a [%lld, %lld] %s weight", what,
                       (long long)rows, (long long)cols, gt->name);
    q->rows = rows;
    q->cols = cols;
    q->ggml = t;
    q->row_bytes = row_bytes;
    q->group_size = t->block;
    q->n_groups = cols / t->block;
    q->bits = (int)(xf_ggml_bits_per_weight(gt) + 0.5);
    return 0;
}

void xf_qweight_free(xf_qweight *q)
{
    free(q->blocks);
    free(q->codes);
    free(q->scales);
    free(q->zeros);
    free(q->perm);
    xf_outliers_free(&q->outliers);
    memset(q, 0, sizeof *q);
}

void xf_qweight_dequantize_row(const xf_qweight *q, int64_t r, float *dst)
{
    if (q->ggml) {
        xf_ggml_to_f32(xf_ggml_traits(q->ggml->type))(q->blocks + (size_t)r * q->row_bytes, dst,
                                                      q->cols);
        return;
    }
    const uint8_t *c = q->codes + r * q->cols;
    for (int64_t j0 = 0, gi = 0; j0 < q->cols; j0 += q->group_size, gi++) {
        int64_t j1 = j0 + q->group_size < q->cols ? j0 + q->group_size : q->cols;
        xf_grid g = xf_qweight_grid(q, r, gi);
        if (q->log2) /* never permuted: export refuses it */
            for (int64_t j = j0; j < j1; j++)
                dst[j] = xfq_log2_code_value(c[j], q->bits, g.scale);
        else if (q->perm)
            for (int64_t j = j0; j < j1; j++)
                dst[q->perm[j]] = xf_grid_dequantize(&g, c[j]);
        else
            for (int64_t j = j0; j < j1; j++)
                dst[j] = xf_grid_dequantize(&g, c[j]);
    }
    xf_outliers_apply_row(&q->outliers, r, dst);
}

void xf_qweight_dequantize(const xf_qweight *q, float *dst)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < q->rows; r++)
        xf_qweight_dequantize_row(q, r, dst + r * q->cols);
}

xf_dtype xf_qweight_dtype(int bits) { return xf_dtype_packed_for_bits(bits, false); }

xf_dtype xf_qweight_log2_dtype(int bits) { return xf_dtype_packed_for_bits(bits, true); }

static void plain_1d(xf_tensor *t, const char *name, xf_dtype dt, int64_t n, const void *data)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dt;
    t->ndim = 1;
    t->shape[0] = n;
    t->data = data;
    t->nbytes = (size_t)n * xf_dtype_size(dt);
}

/* The side table of q as three plain tensors (docs/xfq-format.md,
 * "Outlier side tables"). */
static int export_outliers(const xf_qweight *q, const char *name, xf_qweight_packed *out,
                           xf_error *err)
{
    const xf_outliers *o = &q->outliers;
    if (!o->row_ptr || o->nnz == 0)
        return 0;
    const size_t n_ptr = (size_t)q->rows + 1, nnz = (size_t)o->nnz;
    const size_t name_len = strlen(name) + sizeof XFQ_OUTLIERS_INFIX + 8;
    out->side_buf = malloc((n_ptr + nnz) * sizeof(int32_t) + nnz * sizeof(uint16_t));
    out->side_names = malloc(3 * name_len);
    if (!out->side_buf || !out->side_names)
        return xf_fail(err, "%s: out of memory for its outlier table", name);
    int32_t *row_ptr = (int32_t *)(void *)out->side_buf;
    int32_t *col = row_ptr + n_ptr;
    uint16_t *val = (uint16_t *)(void *)(col + nnz);
    memcpy(row_ptr, o->row_ptr, n_ptr * sizeof *row_ptr);
    memcpy(col, o->col, nnz * sizeof *col);
    xf_f32_to_f16_array(o->val, val, nnz);
    const xfq_outliers_part parts[3] = {XFQ_OUTLIERS_ROW_PTR, XFQ_OUTLIERS_COL, XFQ_OUTLIERS_VAL};
    for (int p = 0; p < 3; p++) {
        char *nm = out->side_names + (size_t)p * name_len;
        if (xfq_outliers_name(name, parts[p], nm, name_len) != 0)
            return xf_fail(err, "%s: outlier table name too long", name);
    }
    plain_1d(&out->side[0], out->side_names, XF_DTYPE_I32, (int64_t)n_ptr, row_ptr);
    plain_1d(&out->side[1], out->side_names + name_len, XF_DTYPE_I32, (int64_t)nnz, col);
    plain_1d(&out->side[2], out->side_names + 2 * name_len, XF_DTYPE_F16, (int64_t)nnz, val);
    out->n_side = 3;
    /* the packed view carries its table: conversions of out->tensor include it */
    const xf_sparse_outliers so = {&out->side[0], &out->side[1], &out->side[2]};
    xfq_outliers_attach(&so, &out->tensor);
    return 0;
}

size_t xf_qweight_packed_bytes(const xf_qweight_packed *p)
{
    size_t n = p->tensor.nbytes;
    for (int i = 0; i < p->n_side; i++)
        n += p->side[i].nbytes;
    return n;
}

/* The blocks as an XF_DTYPE_GGML tensor. Their finiteness (an fp16 d field
 * could hold Inf/NaN) is checked once, by the .xfq writer
 * (formats/xfq_write.c), before any file is created. */
static int export_ggml(const xf_qweight *q, const char *name, xf_qweight_packed *out,
                       xf_error *err)
{
    const size_t nbytes = (size_t)q->rows * q->row_bytes;
    out->buf = malloc(nbytes ? nbytes : 1);
    out->name = strdup(name);
    if (!out->buf || !out->name) {
        xf_qweight_packed_free(out);
        return xf_fail(err, "%s: out of memory for %zu GGML bytes", name, nbytes);
    }
    memcpy(out->buf, q->blocks, nbytes);
    xf_tensor *t = &out->tensor;
    t->name = out->name;
    t->dtype = XF_DTYPE_GGML;
    t->ggml_type = (uint32_t)q->ggml->type;
    t->ndim = 2;
    t->shape[0] = q->rows;
    t->shape[1] = q->cols;
    t->data = out->buf;
    t->nbytes = nbytes;
    return 0;
}

int xf_qweight_export(const xf_qweight *q, const char *name, xf_qweight_packed *out,
                      xf_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "?";
    if (q->ggml)
        return export_ggml(q, name, out, err);
    xf_dtype dt = q->log2 ? xf_qweight_log2_dtype(q->bits) : xf_qweight_dtype(q->bits);
    if (dt == XF_DTYPE_INVALID)
        return xf_fail(err, "%s: %d-bit weights have no packed storage type (2, 3, 4 or 8)",
                       name, q->bits);
    if (q->log2 && (q->asym || q->perm || q->outliers.nnz > 0))
        return xf_fail(err, "%s: log2-grid weights cannot have zero points, a perm or outliers",
                       name);
    xfq_packed_layout lay;
    if (xfq_packed_layout_compute(q->rows, q->cols, q->bits, q->group_size, q->asym,
                                  q->perm != NULL, &lay, name, err) != 0)
        return -1;
    const size_t ngrid = (size_t)(q->rows * q->n_groups);
    for (size_t i = 0; i < ngrid; i++) {
        float s = q->scales[i];
        if (!(s > 0.0f && s <= 65504.0f) || xf_f16_to_f32(xf_f32_to_f16(s)) != s)
            return xf_fail(err, "%s: scale %g of row %zu is not a positive fp16 value", name,
                           (double)s, i / (size_t)q->n_groups);
    }
    out->buf = calloc(lay.total_bytes, 1); /* zero padding between parts */
    out->name = strdup(name);
    if (!out->buf || !out->name) {
        xf_qweight_packed_free(out);
        return xf_fail(err, "%s: out of memory for %zu packed bytes", name, lay.total_bytes);
    }
    uint8_t *codes = out->buf + lay.codes_offset;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < q->rows; r++)
        xfq_pack_row(q->codes + r * q->cols, q->cols, q->bits, codes + (size_t)r * lay.row_bytes);
    uint16_t *scales = (uint16_t *)(void *)(out->buf + lay.scales_offset);
    xf_f32_to_f16_array(q->scales, scales, ngrid);
    uint8_t *zeros = NULL;
    if (q->asym) {
        zeros = out->buf + lay.zeros_offset;
        memcpy(zeros, q->zeros, ngrid);
    }
    int32_t *perm = NULL;
    if (q->perm) {
        perm = (int32_t *)(void *)(out->buf + lay.perm_offset);
        memcpy(perm, q->perm, (size_t)q->cols * sizeof(int32_t));
    }
    xf_tensor *t = &out->tensor;
    t->name = out->name;
    t->dtype = dt;
    t->ndim = 2;
    t->shape[0] = q->rows;
    t->shape[1] = q->cols;
    t->data = out->buf;
    t->nbytes = lay.total_bytes;
    t->packed.bits = q->bits;
    t->packed.group_size = q->group_size;
    t->packed.n_groups = q->n_groups;
    t->packed.asym = q->asym;
    t->packed.codes = codes;
    t->packed.row_bytes = lay.row_bytes;
    t->packed.scales = scales;
    t->packed.zeros = zeros;
    t->packed.perm = perm;
    if (export_outliers(q, out->name, out, err) != 0) {
        xf_qweight_packed_free(out);
        return -1;
    }
    return 0;
}

void xf_qweight_packed_free(xf_qweight_packed *p)
{
    free(p->buf);
    free(p->name);
    free(p->side_buf);
    free(p->side_names);
    memset(p, 0, sizeof *p);
}
