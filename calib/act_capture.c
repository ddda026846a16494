#include "calib/act_capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "model/block_stream.h"

typedef struct capture {
    xf_model_act_stats *st;
    const char *model; /* for errors */
} capture;

static int on_input(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    capture *c = user;
    xf_lin_input in = xf_lin_input_of_role(role);
    if (in >= XF_IN_COUNT || layer < 0 || layer >= c->st->n_layers)
        return xf_fail(err, "%s: unexpected linear input (layer %d, role %d)", c->model, layer,
                       (int)role);
    xf_act_stats *s = &c->st->inputs[(int64_t)layer * XF_IN_COUNT + in];
    if (cols != s->cols)
        return xf_fail(err, "%s: layer %d %s input has %lld channels, expected %lld", c->model,
                       layer, xf_lin_input_name(in), (long long)cols, (long long)s->cols);
    xf_act_stats_add(s, x, rows);
    return 0;
}

static int init_inputs(xf_model_act_stats *st, const xf_model_config *cfg, xf_error *err)
{
    st->inputs = calloc((size_t)st->n_layers * XF_IN_COUNT, sizeof *st->inputs);
    if (!st->inputs)
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
    const xf_forward_hooks hooks = {.user = c, .on_linear_input = on_input};
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
    memset(st, 0, sizeof *st);
    const xf_model_config *cfg = &mw->cfg;
    if (cfg->n_layers < 1)
        return xf_fail(err, "%s: the model has no layers to measure", cfg->model_type);
    if (nsamples < 1 || T < 1)
        return xf_fail(err, "activation statistics need at least one window of one token");
    st->n_layers = cfg->n_layers;
    if (init_inputs(st, cfg, err) != 0) {
        xf_model_act_stats_free(st);
        return -1;
    }
    capture c = {st, cfg->model_type};
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
    free(st->inputs);
    memset(st, 0, sizeof *st);
}
