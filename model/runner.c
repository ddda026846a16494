/* The whole model, tokens -> logits: embeddings looked up from the bound
 * tensors, fp32 layers cached when they fit the budget (else streamed one
 * at a time), fp32 final norm and head. */
#include "model/forward.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

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

static void slots_free(xf_runner *r)
{
    for (int i = 0; i < r->n_slots; i++) {
        xf_workspace_free(&r->slots[i].ws);
        free(r->slots[i].h);
    }
    free(r->slots);
    r->slots = NULL;
    r->n_slots = 0;
}

void xf_runner_free(xf_runner *r)
{
    slots_free(r);
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

/* One window through the cached layers on slot s (no hooks). */
static int window_forward(const xf_runner *r, xf_workspace *ws, float *h, const int32_t *tokens,
                          int64_t T, int64_t first_row, float *logits, xf_error *err)
{
    const xf_model_weights *mw = r->mw;
    if (xf_forward_embed(ws, mw, tokens, T, h, err) != 0)
        return -1;
    for (int l = 0; l < mw->cfg.n_layers; l++)
        if (xf_forward_layer(ws, &r->layers[l], h, T, NULL, err) != 0)
            return -1;
    return xf_forward_final_rows(ws, &r->head, h, T, first_row, logits, err);
}

/* At least n slots (threads 1.. of forward_windows), made in the calling thread before any parallel region. */
static int slots_reserve(xf_runner *r, int n, xf_error *err)
{
    if (r->n_slots >= n)
        return 0;
    slots_free(r);
    r->slots = calloc((size_t)n, sizeof *r->slots);
    if (!r->slots)
        return xf_fail(err, "%s: out of memory for %d window slots", r->mw->cfg.model_type, n);
    const int64_t max_T = r->ws.max_T, H = r->mw->cfg.hidden;
    for (int i = 0; i < n; i++, r->n_slots++) {
        if (xf_workspace_init_scores(&r->slots[i].ws, &r->mw->cfg, max_T,
                                     XF_WORKSPACE_SCORE_BYTES / (size_t)(n + 1), r->mw->cfg.model_type,
                                     err) != 0)
            goto fail;
        r->slots[i].h = malloc((size_t)max_T * (size_t)H * sizeof(float));
        if (!r->slots[i].h) {
            r->n_slots++; /* its workspace is freed with the others */
            xf_fail(err, "%s: out of memory for hidden states", r->mw->cfg.model_type);
            goto fail;
        }
    }
    return 0;
fail:
    slots_free(r);
    return -1;
}

int xf_runner_forward_windows(xf_runner *r, const int32_t *tokens, int64_t n, int64_t T,
                              int64_t first_row, float *logits, xf_error *err)
{
    if (n < 1)
        return xf_fail(err, "forward: %lld windows", (long long)n);
    if (T < 1 || T > r->ws.max_T || first_row < 0 || first_row >= T)
        return xf_fail(err, "forward: %lld tokens from row %lld, the workspace holds 1..%lld",
                       (long long)T, (long long)first_row, (long long)r->ws.max_T);
    const size_t per = (size_t)(T - first_row) * (size_t)r->mw->cfg.vocab;
    if (!r->layers) {
        /* layers streamed (each loaded, run and freed in turn) one window at
         * a time, the products on every thread */
        for (int64_t w = 0; w < n; w++) {
            if (xf_forward_embed(&r->ws, r->mw, tokens + w * T, T, r->h, err) != 0)
                return -1;
            for (int l = 0; l < r->mw->cfg.n_layers; l++) {
                xf_dense_layer dl;
                if (xf_dense_layer_init(&dl, r->mw, l, err) != 0)
                    return -1;
                int rc = xf_forward_layer(&r->ws, &dl, r->h, T, NULL, err);
                xf_dense_layer_free(&dl);
                if (rc != 0)
                    return -1;
            }
            if (xf_forward_final_rows(&r->ws, &r->head, r->h, T, first_row,
                                      logits + (size_t)w * per, err) != 0)
                return -1;
        }
        return 0;
    }
    int threads = omp_get_max_threads();
    if (threads > n)
        threads = (int)n;
    if (threads > 1 && slots_reserve(r, threads - 1, err) != 0)
        return -1;
    /* one window per thread, each on its own slot with single-threaded BLAS
     * (never a threaded BLAS call from inside the parallel region), also
     * with one thread or one window: OpenBLAS's threaded products differ
     * from its single-threaded ones in the last bits, and each window's
     * bytes must not depend on the thread count */
    xf_threads_saved saved;
    xf_threads_push_blas(1, &saved);
    /* each thread keeps its first failure (its windows come in increasing
     * order); the first failing window overall is reported */
    int64_t *failed = malloc((size_t)threads * sizeof *failed);
    xf_error *errs = calloc((size_t)threads, sizeof *errs);
    if (!failed || !errs) {
        free(failed);
        free(errs);
        xf_threads_pop(&saved);
        return xf_fail(err, "%s: out of memory", r->mw->cfg.model_type);
    }
    for (int t = 0; t < threads; t++)
        failed[t] = n;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t w = 0; w < n; w++) {
        const int tid = omp_get_thread_num();
        if (failed[tid] < n)
            continue;
        /* thread 0 on the runner's own scratch, the others on slots */
        xf_workspace *ws = tid == 0 ? &r->ws : &r->slots[tid - 1].ws;
        float *h = tid == 0 ? r->h : r->slots[tid - 1].h;
        if (window_forward(r, ws, h, tokens + w * T, T, first_row, logits + (size_t)w * per,
                           &errs[tid]) != 0)
            failed[tid] = w;
    }
    xf_threads_pop(&saved);
    int first = 0;
    for (int t = 1; t < threads; t++)
        if (failed[t] < failed[first])
            first = t;
    const int rc = failed[first] < n ? -1 : 0;
    if (rc != 0 && err)
        *err = errs[first];
    free(failed);
    free(errs);
    return rc;
}

xf_dense_layer *xf_runner_cached_layer(xf_runner *r, int l)
{
    if (!r->layers || l < 0 || l >= r->mw->cfg.n_layers)
        return NULL;
    return &r->layers[l];
}
