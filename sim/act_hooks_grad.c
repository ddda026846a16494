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

void xf_act_hooks_backward(const xf_act_hooks *h, xf_backward_hooks *bh)
{
    memset(bh, 0, sizeof *bh);
    bh->user = (void *)h;
    bh->on_linear_input_grad = online_transpose;
}
