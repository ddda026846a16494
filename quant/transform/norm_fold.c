/* Norm folding (step 1 of quant/transform/rotate.h). */
#include "quant/transform/rotate.h"

#include <stdlib.h>
#include <string.h>

#include "model/linear_inputs.h"
#include "quant/transform/rotate_mat.h"

/* Moves norm (scale g, LayerNorm bias beta when norm->b) into the linears
 * reading it: b <- b + W beta with the unscaled W, then W[:, j] *= g[j];
 * g <- 1 (beta is left for the caller to drop). A reader without a bias
 * tensor takes W beta in head_b ([out] fp64) when given, else fails. */
static int fold_one(xf_model_edit *e, const xf_norm *norm, const xf_linear *const *lins, int n,
                    double *head_b, xf_error *err)
{
    float *g;
    if (xf_model_edit_f32(e, norm->w, &g, err) != 0)
        return -1;
    const int64_t d = xf_tensor_numel(norm->w);
    float *beta = NULL;
    if (norm->b) {
        if (xf_tensor_numel(norm->b) != d)
            return xf_fail(err, "%s: %lld values, norm weight %s has %lld", norm->b->name,
                           (long long)xf_tensor_numel(norm->b), norm->w->name, (long long)d);
        beta = malloc((size_t)d * sizeof *beta);
        if (!beta)
            return xf_fail(err, "%s: out of memory", norm->b->name);
        if (xf_tensor_to_f32(norm->b, beta, err) != 0) {
            free(beta);
            return -1;
        }
    }
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        const xf_linear *lin = lins[k];
        if (!lin || !lin->w)
            continue;
        if (lin->in != d) {
            rc = xf_fail(err, "%s: %lld inputs, norm %s has %lld", lin->w->name,
                         (long long)lin->in, norm->w->name, (long long)d);
            break;
        }
        if (beta && !lin->b && !head_b) {
            rc = xf_fail(err, "%s: no bias to take LayerNorm bias %s", lin->w->name,
                         norm->b->name);
            break;
        }
        xf_rmat w, b = {0};
        if (xf_rmat_weight(&w, e, lin, err) != 0 ||
            (beta && lin->b && xf_rmat_tensor(&b, e, lin->b, 1, lin->out, err) != 0)) {
            xf_rmat_free(&w);
            xf_rmat_free(&b);
            rc = -1;
            break;
        }
        double *acc = beta ? (lin->b ? b.a : head_b) : NULL;
        for (int64_t r = 0; r < w.rows; r++) {
            double *row = w.a + r * w.cols;
            if (acc) {
                double s = 0.0;
                for (int64_t c = 0; c < w.cols; c++)
                    s += row[c] * (double)beta[c];
                acc[r] += s;
            }
            for (int64_t c = 0; c < w.cols; c++)
                row[c] *= (double)g[c];
        }
        xf_rmat_put(&w);
        if (b.a)
            xf_rmat_put(&b);
    }
    free(beta);
    if (rc != 0)
        return -1;
    for (int64_t j = 0; j < d; j++)
        g[j] = 1.0f;
    return 0;
}

/* The linears of layer L reading input `in`. */
static int readers_of(const xf_model_config *cfg, const xf_layer_weights *L, xf_lin_input in,
                      const xf_linear *lins[XF_IN_MAX_READERS])
{
    xf_linear_role r[XF_IN_MAX_READERS];
    const int n = xf_lin_input_readers(cfg, in, r);
    for (int k = 0; k < n; k++)
        lins[k] = &L->lin[r[k]];
    return n;
}

/* Every norm of the model into its readers; the final norm's LayerNorm
 * bias (if any) into head_b [vocab]. */
static int fold_all(xf_model_edit *e, double *head_b, int *norms, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    *norms = 0;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        const xf_layer_weights *L = &mw->layers[l];
        /* each norm into the readers of the input it produces */
        const xf_linear *attn[XF_IN_MAX_READERS], *mlp[XF_IN_MAX_READERS];
        const int na = readers_of(&mw->cfg, L, XF_IN_QKV, attn);
        const int nm = readers_of(&mw->cfg, L, XF_IN_MLP, mlp);
        if (fold_one(e, &L->attn_norm, attn, na, NULL, err) != 0 ||
            fold_one(e, &L->mlp_norm, mlp, nm, NULL, err) != 0)
            return -1;
        *norms += 2;
    }
    const xf_linear *head[1] = {&mw->lm_head};
    if (mw->final_norm.w) {
        if (fold_one(e, &mw->final_norm, head, 1, head_b, err) != 0)
            return -1;
        (*norms)++;
    }
    return 0;
}

/* The LayerNorm model as RMSNorm: the (folded) norm biases dropped, the
 * head's bias added, the config key that makes the model bind and run
 * that way (model/config.h). */
static int to_rmsnorm(xf_model_edit *e, const double *head_b, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    const int64_t L = mw->cfg.n_layers, vocab = mw->cfg.vocab;
    /* the names outlive the removals (they belong to the model's own set) */
    const char **drop = calloc((size_t)(2 * L + 1), sizeof *drop);
    if (!drop)
        return xf_fail(err, "%s: out of memory", e->m->path);
    size_t n = 0;
    for (int64_t l = 0; l < L; l++) {
        if (mw->layers[l].attn_norm.b)
            drop[n++] = mw->layers[l].attn_norm.b->name;
        if (mw->layers[l].mlp_norm.b)
            drop[n++] = mw->layers[l].mlp_norm.b->name;
    }
    if (mw->final_norm.b)
        drop[n++] = mw->final_norm.b->name;
    /* from here m->weights is stale until the config rebinds it */
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = xf_model_edit_remove(e, drop[i], err);
    free(drop);
    float *hb;
    if (rc == 0)
        rc = xf_model_edit_add_f32(e, "lm_head.bias", 1, &vocab, &hb, err);
    if (rc != 0)
        return -1;
    for (int64_t i = 0; i < vocab; i++)
        hb[i] = (float)head_b[i];
    return xf_model_edit_set_config(e, XF_CONFIG_NORM_KEY, json_string(XF_CONFIG_NORM_RMS),
                                    err);
}

int xf_rotate_fold_norms(xf_model_edit *e, json_t **record, xf_error *err)
{
    if (record)
        *record = NULL;
    xf_loaded_model *m = e->m;
    const xf_model_config *cfg = &m->cfg;
    if (cfg->layer_norm && !cfg->norm_before)
        return xf_fail(err, "%s: post-LN %s (do_layer_norm_before false) cannot be norm-folded: "
                            "its LayerNorms sit on the residual stream (no RMSNorm equivalent)",
                       m->path, cfg->model_type);
    bool untied = false;
    if (cfg->tie_embeddings) {
        /* the head must carry the final norm's scale, the embedding must
         * not (and, for LayerNorm models, the embedding is centred, the
         * head is not): give the head its own copy (always: a trained
         * final norm is never exactly 1, and one code path is easier to
         * trust) */
        if (xf_model_edit_untie_head(e, err) != 0)
            return -1;
        untied = true;
    }
    const bool layer_norm = cfg->layer_norm;
    double *head_b = NULL;
    if (layer_norm) {
        head_b = calloc((size_t)cfg->vocab, sizeof *head_b);
        if (!head_b)
            return xf_fail(err, "%s: out of memory", m->path);
    }
    int norms = 0;
    int rc = layer_norm ? xf_rotate_center_stream(e, err) : 0;
    if (rc == 0)
        rc = fold_all(e, head_b, &norms, err);
    if (rc == 0)
        rc = layer_norm ? to_rmsnorm(e, head_b, err) : xf_model_edit_commit(e, err);
    free(head_b);
    if (rc != 0) /* name the model once */
        return strncmp(err->msg, m->path, strlen(m->path)) == 0
                   ? -1
                   : xf_fail_prefix(err, "%s: norm folding", m->path);
    if (record)
        *record = json_pack("{s:b, s:i, s:b}", "untied_head", untied, "norms", norms,
                            "layernorm_to_rmsnorm", layer_norm);
    return 0;
}
