/* A zero-mean residual stream for LayerNorm models (step 1 of
 * quant/transform/rotate.h): every writer's output is centred across the hidden
 * dimension, so that the stream, their sum, is zero-mean everywhere and a
 * pre-LN LayerNorm equals an RMSNorm with the same weight and bias. */
#include "quant/transform/rotate.h"

#include "quant/transform/rotate_mat.h"

/* Embedding rows E -> E - rowmean(E) (token and learned positions). */
static int center_table(xf_model_edit *e, const xf_tensor *t, xf_error *err)
{
    xf_rmat a;
    if (t->ndim != 2)
        return xf_fail(err, "tensor %s: expected a 2-D embedding table", t->name);
    if (xf_rmat_tensor(&a, e, t, t->shape[0], t->shape[1], err) != 0) {
        xf_rmat_free(&a);
        return -1;
    }
    xf_rmat_center_rows(&a);
    xf_rmat_put(&a);
    return 0;
}

/* W [hidden, in] -> C W and b -> C b (C = I - 11^T / hidden). */
static int center_writer(xf_model_edit *e, const xf_linear *lin, xf_error *err)
{
    xf_rmat a;
    if (xf_rmat_weight(&a, e, lin, err) != 0 || xf_rmat_center_cols(&a, err) != 0) {
        xf_rmat_free(&a);
        return -1;
    }
    xf_rmat_put(&a);
    if (!lin->b)
        return 0;
    if (xf_rmat_tensor(&a, e, lin->b, 1, lin->out, err) != 0) {
        xf_rmat_free(&a);
        return -1;
    }
    xf_rmat_center_rows(&a);
    xf_rmat_put(&a);
    return 0;
}

int xf_rotate_center_stream(xf_model_edit *e, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    if (center_table(e, mw->tok_embed, err) != 0 ||
        (mw->pos_embed && center_table(e, mw->pos_embed, err) != 0))
        return -1;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++)
        if (center_writer(e, &mw->layers[l].lin[XF_LIN_O], err) != 0 ||
            center_writer(e, &mw->layers[l].lin[XF_LIN_DOWN], err) != 0)
            return -1;
    return 0;
}
