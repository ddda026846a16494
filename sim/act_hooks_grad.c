/* Backward hooks of sim/act_hooks.h (see act_hooks_grad.h). */
#include "sim/act_hooks_grad.h"

#include <string.h>

static int online_transpose(void *user, int layer, xf_linear_role role, float *dx, int64_t rows,
                            int64_t cols, xf_error *err)
{
    const xf_act_hooks *h = user;
    if (!h->online || role != XF_LIN_DOWN || !h->online->down)
        return 0;
    if (cols != h->online->down_had.n)
        return xf_fail(err, "layer %d down input gradient: %lld channels, the online Hadamard "
                            "has %lld",
                       layer, (long long)cols, (long long)h->online->down_had.n);
    /* H orthogonal: H^T = H^-1 */
    return xf_hadamard_rows_f32(&h->online->down_had, dx, rows, true, err);
}

static int qk_transpose(void *user, int layer, float *dq, float *dk, int64_t T, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, xf_error *err)
{
    const xf_act_hooks *h = user;
    if (!h->online || !h->online->qk)
        return 0;
    if (xf_online_apply_heads(h->online, layer, dq, T, n_heads, head_dim, true, err) != 0 ||
        xf_online_apply_heads(h->online, layer, dk, T, n_kv_heads, head_dim, true, err) != 0)
        return -1;
    return 0;
}

void xf_act_hooks_backward(const xf_act_hooks *h, xf_backward_hooks *bh)
{
    memset(bh, 0, sizeof *bh);
    bh->user = (void *)h;
    bh->on_linear_input_grad = online_transpose;
    bh->on_qk_grad = qk_transpose;
}
