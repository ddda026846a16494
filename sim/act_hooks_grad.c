/* Backward hooks of sim/act_hooks.h (see act_hooks_grad.h). */
#include "sim/act_hooks_grad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The scale STE of one group (act_hooks_grad.h): y the quantizer's input,
 * yq its output, d = dL/dyq in, dL/dy out. */
static void scale_group(const float *y, const float *yq, float *d, int64_t len, bool sym)
{
    int64_t jlo = 0, jhi = 0, jm = 0;
    for (int64_t j = 1; j < len; j++) {
        jlo = y[j] < y[jlo] ? j : jlo;
        jhi = y[j] > y[jhi] ? j : jhi;
        jm = fabsf(y[j]) > fabsf(y[jm]) ? j : jm;
    }
    double gs = 0.0; /* sum_j d_j (yq_j - y_j) = s * dL/ds */
    for (int64_t j = 0; j < len; j++)
        gs += (double)d[j] * ((double)yq[j] - y[j]);
    if (sym) {
        const float m = fabsf(y[jm]);
        if (m > 0.0f)
            d[jm] += (float)(gs / m) * (y[jm] > 0.0f ? 1.0f : -1.0f);
        return;
    }
    const float lo = y[jlo] < 0.0f ? y[jlo] : 0.0f, hi = y[jhi] > 0.0f ? y[jhi] : 0.0f;
    if (!(hi - lo > 0.0f))
        return;
    const float ds = (float)(gs / ((double)hi - lo));
    if (hi > 0.0f)
        d[jhi] += ds;
    if (lo < 0.0f)
        d[jlo] -= ds;
}

static void scale_rows(const float *y, const float *yq, float *d, int64_t rows, int64_t cols,
                       int64_t group, bool sym)
{
    for (int64_t t = 0; t < rows; t++)
        for (int64_t j0 = 0; j0 < cols; j0 += group)
            scale_group(y + t * cols + j0, yq + t * cols + j0, d + t * cols + j0, group, sym);
}

static int linear_input_grad(void *user, int layer, xf_linear_role role, const float *x_in,
                             const float *x_out, float *dx, int64_t rows, int64_t cols,
                             xf_error *err)
{
    const xf_act_hooks *h = user;
    const xf_act_scheme *s = &h->scheme;
    const xf_lin_input in = xf_lin_input_of_role(role);
    const bool online = h->online && role == XF_LIN_DOWN && h->online->down;
    if (online && cols != h->online->down_had.n)
        return xf_fail(err, "layer %d down input gradient: %lld channels, the online Hadamard "
                            "has %lld",
                       layer, (long long)cols, (long long)h->online->down_had.n);
    if (h->ste_scale && s->act_bits > 0 && (s->act_inputs & (1u << in))) {
        /* the quantizer's input: x_in after the online transform */
        float *y = malloc((size_t)(rows * cols) * sizeof *y);
        if (!y)
            return xf_fail(err, "layer %d: out of memory for the STE", layer);
        memcpy(y, x_in, (size_t)(rows * cols) * sizeof *y);
        if (online && xf_hadamard_rows_f32(&h->online->down_had, y, rows, false, err) != 0) {
            free(y);
            return -1;
        }
        scale_rows(y, x_out, dx, rows, cols, s->act_group > 0 ? s->act_group : cols, s->act_sym);
        free(y);
    }
    /* H orthogonal: H^T = H^-1 */
    if (online)
        return xf_hadamard_rows_f32(&h->online->down_had, dx, rows, true, err);
    return 0;
}

static int qkv_grad(void *user, int layer, const float *k_in, const float *v_in,
                    const float *k_out, const float *v_out, float *dq, float *dk, float *dv,
                    int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                    xf_error *err)
{
    const xf_act_hooks *h = user;
    const xf_act_scheme *s = &h->scheme;
    const bool qk = h->online && h->online->qk;
    const int64_t dim = n_kv_heads * head_dim;
    if (h->ste_scale && s->kv_bits > 0) {
        int64_t g;
        if (xf_act_scheme_kv_group(s, head_dim, &g, err) != 0)
            return xf_fail_prefix(err, "layer %d", layer);
        float *y = malloc((size_t)(T * dim) * sizeof *y);
        if (!y)
            return xf_fail(err, "layer %d: out of memory for the STE", layer);
        memcpy(y, k_in, (size_t)(T * dim) * sizeof *y);
        if (qk && xf_online_apply_heads(h->online, layer, y, T, n_kv_heads, head_dim, false,
                                        err) != 0) {
            free(y);
            return -1;
        }
        scale_rows(y, k_out, dk, T, dim, g, false);
        scale_rows(v_in, v_out, dv, T, dim, g, false);
        free(y);
    }
    if (qk && (xf_online_apply_heads(h->online, layer, dq, T, n_heads, head_dim, true, err) != 0 ||
               xf_online_apply_heads(h->online, layer, dk, T, n_kv_heads, head_dim, true, err) != 0))
        return -1;
    return 0;
}

void xf_act_hooks_backward(xf_act_hooks *h, bool scale, xf_backward_hooks *bh)
{
    memset(bh, 0, sizeof *bh);
    h->ste_scale = scale;
    bh->user = h;
    bh->on_linear_input_grad = linear_input_grad;
    bh->on_qkv_grad = qkv_grad;
}
