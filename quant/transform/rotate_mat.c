#include "quant/transform/rotate_mat.h"

#include <cblas.h>

#include "core/gemm_tiled.h"
#include <stdlib.h>
#include <string.h>

static int alloc(xf_rmat *m, int64_t rows, int64_t cols, const char *name, xf_error *err)
{
    m->rows = rows;
    m->cols = cols;
    m->a = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *m->a);
    if (!m->a)
        return xf_fail(err, "tensor %s: out of memory for an fp64 copy", name);
    return 0;
}

int xf_rmat_weight(xf_rmat *m, xf_model_edit *e, const xf_linear *lin, xf_error *err)
{
    memset(m, 0, sizeof *m);
    if (xf_model_edit_f32(e, lin->w, &m->store, err) != 0 ||
        alloc(m, lin->out, lin->in, lin->w->name, err) != 0)
        return -1;
    m->transposed = lin->transposed;
    for (int64_t r = 0; r < lin->out; r++)
        for (int64_t c = 0; c < lin->in; c++)
            m->a[r * lin->in + c] = m->transposed ? m->store[c * lin->out + r]
                                                  : m->store[r * lin->in + c];
    return 0;
}

int xf_rmat_tensor(xf_rmat *m, xf_model_edit *e, const xf_tensor *t, int64_t rows,
                   int64_t cols, xf_error *err)
{
    memset(m, 0, sizeof *m);
    if (xf_tensor_numel(t) != rows * cols)
        return xf_fail(err, "tensor %s: expected %lld x %lld values", t->name, (long long)rows,
                       (long long)cols);
    if (xf_model_edit_f32(e, t, &m->store, err) != 0 || alloc(m, rows, cols, t->name, err) != 0)
        return -1;
    for (int64_t i = 0; i < rows * cols; i++)
        m->a[i] = m->store[i];
    return 0;
}

void xf_rmat_put(xf_rmat *m)
{
    if (m->a && m->store)
        for (int64_t r = 0; r < m->rows; r++)
            for (int64_t c = 0; c < m->cols; c++) {
                float v = (float)m->a[r * m->cols + c];
                if (m->transposed)
                    m->store[c * m->rows + r] = v;
                else
                    m->store[r * m->cols + c] = v;
            }
    xf_rmat_free(m);
}

void xf_rmat_free(xf_rmat *m)
{
    free(m->a);
    memset(m, 0, sizeof *m);
}

int xf_rmat_right(xf_rmat *m, const double *R, xf_error *err)
{
    double *out = malloc((size_t)(m->rows * m->cols > 0 ? m->rows * m->cols : 1) * sizeof *out);
    if (!out)
        return xf_fail(err, "out of memory for a %lld x %lld rotation product",
                       (long long)m->rows, (long long)m->cols);
    xf_dgemm_tiled(CblasNoTrans, CblasNoTrans, (int)m->rows, (int)m->cols,
                (int)m->cols, 1.0, m->a, (int)m->cols, R, (int)m->cols, 0.0, out, (int)m->cols);
    free(m->a);
    m->a = out;
    return 0;
}

int xf_rmat_left_t(xf_rmat *m, const double *R, xf_error *err)
{
    double *out = malloc((size_t)(m->rows * m->cols > 0 ? m->rows * m->cols : 1) * sizeof *out);
    if (!out)
        return xf_fail(err, "out of memory for a %lld x %lld rotation product",
                       (long long)m->rows, (long long)m->cols);
    xf_dgemm_tiled(CblasTrans, CblasNoTrans, (int)m->rows, (int)m->cols,
                (int)m->rows, 1.0, R, (int)m->rows, m->a, (int)m->cols, 0.0, out, (int)m->cols);
    free(m->a);
    m->a = out;
    return 0;
}

void xf_rmat_center_rows(xf_rmat *m)
{
    for (int64_t r = 0; r < m->rows; r++) {
        double *a = m->a + r * m->cols, mean = 0.0;
        for (int64_t c = 0; c < m->cols; c++)
            mean += a[c];
        mean /= (double)m->cols;
        for (int64_t c = 0; c < m->cols; c++)
            a[c] -= mean;
    }
}

int xf_rmat_center_cols(xf_rmat *m, xf_error *err)
{
    double *mean = calloc((size_t)(m->cols > 0 ? m->cols : 1), sizeof *mean);
    if (!mean)
        return xf_fail(err, "out of memory for %lld column means", (long long)m->cols);
    /* row-major passes: the column means in fp64, then subtracted */
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t c = 0; c < m->cols; c++)
            mean[c] += m->a[r * m->cols + c];
    for (int64_t c = 0; c < m->cols; c++)
        mean[c] /= (double)m->rows;
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t c = 0; c < m->cols; c++)
            m->a[r * m->cols + c] -= mean[c];
    free(mean);
    return 0;
}
