/* OstQuant's learned scales fused into the model (quant/transform/ost.h):
 * exact rewrites of the weights, like smoothing. The rotations are fused
 * by rotate_apply.c; the mlp scales go in before the down Hadamard is
 * fused (the scale sits before it), the stream and v/o scales after the
 * rotations (they act in the rotated bases). */
#include "quant/transform/ost.h"

#include <math.h>
#include <stdlib.h>

#include "model/linear_inputs.h"
#include "quant/transform/rotate_mat.h"

/* W [out, in]: row r x exp(lr[r]) (lr NULL: none), column j x exp(-lc[map(j)]) */
static int scale_linear(xf_model_edit *e, const xf_linear *lin, const double *lr,
                        const double *lc, int64_t d, int64_t rep, xf_error *err)
{
    xf_rmat w;
    if (!lin->w)
        return 0;
    if (lin->b)
        return xf_fail(err, "%s: OstQuant scales cover bias-free linears only", lin->w->name);
    if (xf_rmat_weight(&w, e, lin, err) != 0)
        return -1;
    for (int64_t r = 0; r < w.rows; r++)
        for (int64_t j = 0; j < w.cols; j++) {
            const int64_t jc = d > 0 ? (j / d / rep) * d + j % d : j;
            w.a[r * w.cols + j] *= (lr ? exp(lr[r]) : 1.0) * (lc ? exp(-lc[jc]) : 1.0);
        }
    xf_rmat_put(&w);
    return 0;
}

int xf_ost_fuse_mlp_scales(xf_model_edit *e, const double *lu, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    const int64_t NI = mw->cfg.intermediate;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        const xf_layer_weights *L = &mw->layers[l];
        if (scale_linear(e, &L->lin[XF_LIN_UP], lu + l * NI, NULL, 0, 1, err) != 0 ||
            scale_linear(e, &L->lin[XF_LIN_DOWN], NULL, lu + l * NI, 0, 1, err) != 0)
            return -1;
    }
    return 0;
}

static int scale_norm(xf_model_edit *e, const xf_norm *n, const double *ls, int64_t H,
                      xf_error *err)
{
    float *g;
    if (n->b)
        return xf_fail(err, "%s: OstQuant scales need RMSNorm (no bias)", n->w->name);
    if (xf_model_edit_f32(e, n->w, &g, err) != 0)
        return -1;
    for (int64_t j = 0; j < H; j++)
        g[j] = (float)((double)g[j] * exp(ls[j]));
    return 0;
}

int xf_ost_fuse_stream_scales(xf_model_edit *e, const double *la, const double *lm,
                              const double *lv, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    const xf_model_config *c = &mw->cfg;
    const int64_t H = c->hidden, d = c->head_dim, kvd = c->n_kv_heads * d;
    const int64_t rep = c->n_heads / c->n_kv_heads;
    for (int64_t l = 0; l < c->n_layers; l++) {
        const xf_layer_weights *L = &mw->layers[l];
        const xf_lin_input ins[2] = {XF_IN_QKV, XF_IN_MLP};
        const double *ls[2] = {la + l * H, lm + l * H};
        const xf_norm *norms[2] = {&L->attn_norm, &L->mlp_norm};
        for (int i = 0; i < 2; i++) {
            xf_linear_role r[XF_IN_MAX_READERS];
            const int n = xf_lin_input_readers(c, ins[i], r);
            if (scale_norm(e, norms[i], ls[i], H, err) != 0)
                return -1;
            for (int k = 0; k < n; k++)
                if (scale_linear(e, &L->lin[r[k]], NULL, ls[i], 0, 1, err) != 0)
                    return -1;
        }
        if (scale_linear(e, &L->lin[XF_LIN_V], lv + l * kvd, NULL, 0, 1, err) != 0 ||
            scale_linear(e, &L->lin[XF_LIN_O], NULL, lv + l * kvd, d, rep, err) != 0)
            return -1;
    }
    return xf_model_edit_commit(e, err);
}
