/* Norm folding (step 1 of quant/rotate.h). */
#include "quant/rotate.h"

#include <string.h>

#include "quant/rotate_mat.h"

/* W[:, j] *= g[j] for every linear in lins, then g <- 1. */
static int fold_one(xf_model_edit *e, const xf_tensor *norm_w, const xf_linear *const *lins,
                    int n, xf_error *err)
{
    float *g;
    if (xf_model_edit_f32(e, norm_w, &g, err) != 0)
        return -1;
    int64_t d = xf_tensor_numel(norm_w);
    for (int k = 0; k < n; k++) {
        if (!lins[k] || !lins[k]->w)
            continue;
        xf_rmat w;
        if (lins[k]->in != d)
            return xf_fail(err, "%s: %lld inputs, norm %s has %lld", lins[k]->w->name,
                           (long long)lins[k]->in, norm_w->name, (long long)d);
        if (xf_rmat_weight(&w, e, lins[k], err) != 0)
            return -1;
        for (int64_t r = 0; r < w.rows; r++)
            for (int64_t c = 0; c < w.cols; c++)
                w.a[r * w.cols + c] *= (double)g[c];
        xf_rmat_put(&w);
    }
    for (int64_t j = 0; j < d; j++)
        g[j] = 1.0f;
    return 0;
}

int xf_rotate_fold_norms(xf_model_edit *e, json_t **record, xf_error *err)
{
    if (record)
        *record = NULL;
    xf_loaded_model *m = e->m;
    const xf_model_config *cfg = &m->cfg;
    if (cfg->layer_norm)
        return xf_fail(err, "%s: norm folding of LayerNorm models (%s) is not implemented: "
                            "only RMSNorm (llama family) models can be rotated",
                       m->path, cfg->model_type);
    bool untied = false;
    if (cfg->tie_embeddings) {
        /* the head must carry the final norm's scale, the embedding must
         * not: give the head its own copy (always: a trained final norm is
         * never exactly 1, and one code path is easier to trust) */
        if (xf_model_edit_untie_head(e, err) != 0)
            return -1;
        untied = true;
    }
    int norms = 0;
    for (int64_t l = 0; l < cfg->n_layers; l++) {
        const xf_layer_weights *L = &m->weights.layers[l];
        const xf_linear *attn[3] = {&L->lin[XF_LIN_Q], &L->lin[XF_LIN_K], &L->lin[XF_LIN_V]};
        const xf_linear *mlp[2] = {&L->lin[XF_LIN_GATE], &L->lin[XF_LIN_UP]};
        if (fold_one(e, L->attn_norm.w, attn, 3, err) != 0 ||
            fold_one(e, L->mlp_norm.w, mlp, 2, err) != 0)
            return -1;
        norms += 2;
    }
    const xf_linear *head[1] = {&m->weights.lm_head};
    if (m->weights.final_norm.w) {
        if (fold_one(e, m->weights.final_norm.w, head, 1, err) != 0)
            return -1;
        norms++;
    }
    if (xf_model_edit_commit(e, err) != 0)
        return -1;
    if (record)
        *record = json_pack("{s:b, s:i}", "untied_head", untied, "norms", norms);
    return 0;
}
