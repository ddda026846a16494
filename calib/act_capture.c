#include "calib/act_capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "model/forward.h"

static const char *const input_names[XF_STATS_IN_COUNT] = {"qkv", "o", "mlp", "down"};

const char *xf_stats_input_name(xf_stats_input in)
{
    return (int)in >= 0 && in < XF_STATS_IN_COUNT ? input_names[in] : NULL;
}

/* The linear whose input shape stands for each input in this family. */
static xf_linear_role reader_role(const xf_model_config *cfg, xf_stats_input in)
{
    switch (in) {
    case XF_STATS_IN_QKV: return XF_LIN_Q;
    case XF_STATS_IN_O: return XF_LIN_O;
    case XF_STATS_IN_MLP: return cfg->family == XF_FAMILY_LLAMA ? XF_LIN_GATE : XF_LIN_UP;
    default: return XF_LIN_DOWN;
    }
}

static int input_of_role(xf_linear_role role)
{
    switch (role) {
    case XF_LIN_Q:
    case XF_LIN_K:
    case XF_LIN_V: return XF_STATS_IN_QKV;
    case XF_LIN_O: return XF_STATS_IN_O;
    case XF_LIN_GATE:
    case XF_LIN_UP: return XF_STATS_IN_MLP;
    case XF_LIN_DOWN: return XF_STATS_IN_DOWN;
    default: return -1;
    }
}

typedef struct capture {
    xf_model_act_stats *st;
    const char *model; /* for errors */
} capture;

static int on_input(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    capture *c = user;
    int in = input_of_role(role);
    if (in < 0 || layer < 0 || layer >= c->st->n_layers)
        return xf_fail(err, "%s: unexpected linear input (layer %d, role %d)", c->model, layer,
                       (int)role);
    xf_act_stats *s = &c->st->inputs[(int64_t)layer * XF_STATS_IN_COUNT + in];
    if (cols != s->cols)
        return xf_fail(err, "%s: layer %d %s input has %lld channels, expected %lld", c->model,
                       layer, input_names[in], (long long)cols, (long long)s->cols);
    xf_act_stats_add(s, x, rows);
    /* nothing after the last layer's down input is measured: skip the rest */
    bool last = layer == c->st->n_layers - 1 && in == XF_STATS_IN_DOWN;
    return last ? XF_HOOK_STOP : 0;
}

static int init_inputs(xf_model_act_stats *st, const xf_model_config *cfg, xf_error *err)
{
    st->inputs = calloc((size_t)st->n_layers * XF_STATS_IN_COUNT, sizeof *st->inputs);
    if (!st->inputs)
        return xf_fail(err, "%s: out of memory for activation statistics", cfg->model_type);
    for (int64_t l = 0; l < st->n_layers; l++)
        for (int in = 0; in < XF_STATS_IN_COUNT; in++) {
            int64_t out, width;
            if (!xf_forward_role_shape(cfg, reader_role(cfg, in), &out, &width))
                return xf_fail(err, "%s: no linear reads the %s input", cfg->model_type,
                               input_names[in]);
            char what[96];
            snprintf(what, sizeof what, "layer %lld %s input", (long long)l, input_names[in]);
            if (xf_act_stats_init(&st->inputs[l * XF_STATS_IN_COUNT + in], width, what, err) != 0)
                return -1;
        }
    return 0;
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
    xf_runner r;
    if (xf_runner_init(&r, mw, T, 0, err) != 0) {
        xf_model_act_stats_free(st);
        return -1;
    }
    capture c = {st, cfg->model_type};
    const xf_forward_hooks hooks = {.user = &c, .on_linear_input = on_input};
    xf_progress prog;
    xf_progress_init(&prog, "stats");
    int rc = 0;
    for (int64_t s = 0; s < nsamples && rc == 0; s++) {
        /* logits are never reached: the hook stops every pass (NULL buffer) */
        rc = xf_runner_forward_hooked(&r, tokens + s * T, T, &hooks, NULL, err);
        if (rc == XF_HOOK_STOP)
            rc = 0;
        else if (rc == 0)
            rc = xf_fail(err, "%s: the forward pass ended without reaching the last layer's "
                              "down input", cfg->model_type);
        st->windows = s + 1;
        st->tokens = st->windows * T;
        xf_progress_update(&prog, s + 1, nsamples, st->tokens, NULL);
    }
    xf_progress_finish(&prog);
    xf_runner_free(&r);
    if (rc != 0)
        xf_model_act_stats_free(st);
    return rc;
}

void xf_model_act_stats_free(xf_model_act_stats *st)
{
    if (st->inputs)
        for (int64_t i = 0; i < st->n_layers * XF_STATS_IN_COUNT; i++)
            xf_act_stats_free(&st->inputs[i]);
    free(st->inputs);
    memset(st, 0, sizeof *st);
}
