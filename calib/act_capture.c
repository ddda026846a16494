#include "calib/act_capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "model/block_stream.h"

typedef struct capture {
    xf_model_act_stats *st;
    const char *model; /* for errors */
    const xf_forward_hooks *pre; /* or NULL */
} capture;

static int on_input(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    capture *c = user;
    if (c->pre && c->pre->on_linear_input &&
        c->pre->on_linear_input(c->pre->user, layer, role, x, rows, cols, err) != 0)
        return -1;
    xf_lin_input in = xf_lin_input_of_role(role);
    if (in >= XF_IN_COUNT || layer < 0 || layer >= c->st->n_layers)
        return xf_fail(err, "%s: unexpected linear input (layer %d, role %d)", c->model, layer,
                       (int)role);
    xf_act_stats *s = &c->st->inputs[(int64_t)layer * XF_IN_COUNT + in];
    if (cols != s->cols)
        return xf_fail(err, "%s: layer %d %s input has %lld channels, expected %lld", c->model,
                       layer, xf_lin_input_name(in), (long long)cols, (long long)s->cols);
    xf_act_stats_add(s, x, rows);
    if (c->st->cov)
        xf_act_cov_add(&c->st->cov[(int64_t)layer * XF_IN_COUNT + in], x, rows);
    return 0;
}

static int on_kv(void *user, int layer, float *k, float *v, int64_t T, int64_t n_kv_heads,
                 int64_t head_dim, xf_error *err)
{
    const capture *c = user;
    return c->pre->on_kv(c->pre->user, layer, k, v, T, n_kv_heads, head_dim, err);
}

static int on_probs(void *user, int layer, int64_t head, float *p, int64_t T_q, int64_t T_k,
                    xf_error *err)
{
    const capture *c = user;
    return c->pre->on_attn_probs(c->pre->user, layer, head, p, T_q, T_k, err);
}

static int init_inputs(xf_model_act_stats *st, const xf_model_config *cfg, bool cov,
                       xf_error *err)
{
    st->inputs = calloc((size_t)st->n_layers * XF_IN_COUNT, sizeof *st->inputs);
    if (cov)
        st->cov = calloc((size_t)st->n_layers * XF_IN_COUNT, sizeof *st->cov);
    if (!st->inputs || (cov && !st->cov))
        return xf_fail(err, "%s: out of memory for activation statistics", cfg->model_type);
    for (int64_t l = 0; l < st->n_layers; l++)
        for (int in = 0; in < XF_IN_COUNT; in++) {
            int64_t width = xf_lin_input_width(cfg, (xf_lin_input)in);
            const char *name = xf_lin_input_name((xf_lin_input)in);
            if (width < 1)
                return xf_fail(err, "%s: no linear reads the %s input", cfg->model_type, name);
            char what[96];
            snprintf(what, sizeof what, "layer %lld %s input", (long long)l, name);
            if (xf_act_stats_init(&st->inputs[l * XF_IN_COUNT + in], width, what, err) != 0)
                return -1;
            if (cov && xf_act_cov_init(&st->cov[l * XF_IN_COUNT + in], width, what, err) != 0)
                return -1;
        }
    return 0;
}

/* Block by block over all windows (model/block_stream.h); the last block
 * only up to its down input: nothing after it is measured. Each input's
 * statistics see the windows in order, as a window-by-window pass would. */
static int run_stream(capture *c, const xf_model_weights *mw, const int32_t *tokens,
                      int64_t nsamples, int64_t T, xf_error *err)
{
    const xf_model_config *cfg = &mw->cfg;
    xf_block_stream bs;
    if (xf_block_stream_init(&bs, mw, tokens, nsamples, T, XF_STREAM_KEEP_NONE, NULL,
                             cfg->model_type, err) != 0)
        return -1;
    xf_forward_hooks hooks = {.user = c, .on_linear_input = on_input};
    if (c->pre && c->pre->on_kv)
        hooks.on_kv = on_kv;
    if (c->pre && c->pre->on_attn_probs)
        hooks.on_attn_probs = on_probs;
    xf_progress prog;
    xf_progress_init(&prog, "stats: layer");
    int rc = 0;
    for (int l = 0; l < cfg->n_layers && rc == 0; l++) {
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, l, err) != 0) {
            rc = -1;
            break;
        }
        const xf_layer_point to = l == cfg->n_layers - 1 ? XF_AT_DOWN : XF_AT_END;
        rc = xf_block_stream_run(&bs, &dl, to, &hooks, err);
        xf_dense_layer_free(&dl);
        xf_progress_update(&prog, l + 1, cfg->n_layers, 0, NULL);
    }
    xf_progress_finish(&prog);
    xf_block_stream_free(&bs);
    return rc;
}

int xf_model_act_stats_collect(xf_model_act_stats *st, const xf_model_weights *mw,
                               const int32_t *tokens, int64_t nsamples, int64_t T,
                               xf_error *err)
{
    return xf_model_act_stats_collect_opts(st, mw, tokens, nsamples, T, NULL, err);
}

int xf_model_act_stats_collect_opts(xf_model_act_stats *st, const xf_model_weights *mw,
                                    const int32_t *tokens, int64_t nsamples, int64_t T,
                                    const xf_act_capture_opts *opts, xf_error *err)
{
    const xf_act_capture_opts none = {0};
    if (!opts)
        opts = &none;
    memset(st, 0, sizeof *st);
    const xf_model_config *cfg = &mw->cfg;
    if (cfg->n_layers < 1)
        return xf_fail(err, "%s: the model has no layers to measure", cfg->model_type);
    if (nsamples < 1 || T < 1)
        return xf_fail(err, "activation statistics need at least one window of one token");
    st->n_layers = cfg->n_layers;
    if (init_inputs(st, cfg, opts->covariance, err) != 0) {
        xf_model_act_stats_free(st);
        return -1;
    }
    capture c = {st, cfg->model_type, opts->pre};
    int rc = run_stream(&c, mw, tokens, nsamples, T, err);
    if (rc == 0) {
        st->windows = nsamples;
        st->tokens = nsamples * T;
    } else {
        xf_model_act_stats_free(st);
    }
    return rc;
}

void xf_model_act_stats_free(xf_model_act_stats *st)
{
    if (st->inputs)
        for (int64_t i = 0; i < st->n_layers * XF_IN_COUNT; i++)
            xf_act_stats_free(&st->inputs[i]);
    if (st->cov)
        for (int64_t i = 0; i < st->n_layers * XF_IN_COUNT; i++)
            xf_act_cov_free(&st->cov[i]);
    free(st->inputs);
    free(st->cov);
    memset(st, 0, sizeof *st);
}
