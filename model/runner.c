/* The whole model, tokens -> logits: embeddings looked up from the bound
 * tensors, fp32 layers cached when they fit the budget (else streamed one
 * at a time), fp32 final norm and head. */
#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

int xf_runner_init(xf_runner *r, const xf_model_weights *mw, int64_t max_T, size_t cache_bytes,
                   xf_error *err)
{
    memset(r, 0, sizeof *r);
    r->mw = mw;
    const xf_model_config *cfg = &mw->cfg;
    if (cfg->n_layers < 0 || (cfg->n_layers > 0 && !mw->layers))
        return xf_fail(err, "%s: %lld layers but no layer weights bound", cfg->model_type,
                       (long long)cfg->n_layers);
    if (xf_workspace_init(&r->ws, cfg, max_T, cfg->model_type, err) != 0)
        return -1;
    if (xf_dense_head_init(&r->head, mw, err) != 0)
        goto fail;
    r->h = malloc((size_t)max_T * (size_t)cfg->hidden * sizeof *r->h);
    if (!r->h) {
        xf_fail(err, "%s: out of memory for hidden states", cfg->model_type);
        goto fail;
    }
    if (cache_bytes == 0)
        cache_bytes = XF_RUNNER_DEFAULT_CACHE_BYTES;
    size_t total = 0;
    for (int l = 0; l < cfg->n_layers; l++)
        total += xf_dense_layer_bytes(mw, l);
    if (total <= cache_bytes && cfg->n_layers > 0) {
        r->layers = calloc((size_t)cfg->n_layers, sizeof *r->layers);
        if (!r->layers) {
            xf_fail(err, "%s: out of memory for the layer cache", cfg->model_type);
            goto fail;
        }
        for (int l = 0; l < cfg->n_layers; l++)
            if (xf_dense_layer_init(&r->layers[l], mw, l, err) != 0)
                goto fail;
    }
    return 0;
fail:
    xf_runner_free(r);
    return -1;
}

void xf_runner_free(xf_runner *r)
{
    if (r->layers && r->mw)
        for (int l = 0; l < r->mw->cfg.n_layers; l++)
            xf_dense_layer_free(&r->layers[l]);
    free(r->layers);
    free(r->h);
    xf_dense_head_free(&r->head);
    xf_workspace_free(&r->ws);
    memset(r, 0, sizeof *r);
}

int xf_runner_forward_hooked(xf_runner *r, const int32_t *tokens, int64_t T,
                             const xf_forward_hooks *hooks, float *logits, xf_error *err)
{
    const xf_model_weights *mw = r->mw;
    if (xf_forward_embed(&r->ws, mw, tokens, T, r->h, err) != 0)
        return -1;
    for (int l = 0; l < mw->cfg.n_layers; l++) {
        if (r->layers) {
            int rc = xf_forward_layer(&r->ws, &r->layers[l], r->h, T, hooks, err);
            if (rc != 0)
                return rc < 0 ? -1 : rc; /* XF_HOOK_STOP ends the pass, logits unset */
            continue;
        }
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, l, err) != 0)
            return -1;
        int rc = xf_forward_layer(&r->ws, &dl, r->h, T, hooks, err);
        xf_dense_layer_free(&dl);
        if (rc != 0)
            return rc < 0 ? -1 : rc;
    }
    return xf_forward_final(&r->ws, &r->head, r->h, T, logits, err);
}

int xf_runner_forward(xf_runner *r, const int32_t *tokens, int64_t T, float *logits,
                      xf_error *err)
{
    return xf_runner_forward_hooked(r, tokens, T, NULL, logits, err);
}

xf_dense_layer *xf_runner_cached_layer(xf_runner *r, int l)
{
    if (!r->layers || l < 0 || l >= r->mw->cfg.n_layers)
        return NULL;
    return &r->layers[l];
}
