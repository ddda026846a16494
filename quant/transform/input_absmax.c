#include "quant/transform/input_absmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/forward.h"

typedef struct absmax_ctx {
    xf_act_absmax *a;
} absmax_ctx;

static int absmax_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                       int64_t cols, xf_error *err)
{
    xf_act_absmax *a = ((absmax_ctx *)user)->a;
    xf_act_input in = xf_act_input_of_role(role);
    if (cols != a->width[in])
        return xf_fail(err, "layer %d %s input: %lld channels, expected %lld", layer,
                       xf_act_input_name(in), (long long)cols, (long long)a->width[in]);
    float *m = a->max[in] + (int64_t)layer * cols;
    for (int64_t t = 0; t < rows; t++) {
        const float *row = x + t * cols;
        for (int64_t j = 0; j < cols; j++) {
            float v = fabsf(row[j]);
            if (!(v <= m[j])) /* NaN sticks, and is reported below */
                m[j] = v;
        }
    }
    return 0;
}

static int check_finite(const xf_act_absmax *a, xf_error *err)
{
    for (int in = 0; in < XF_ACT_IN_COUNT; in++)
        for (int64_t l = 0; l < a->n_layers; l++) {
            const float *m = xf_act_absmax_row(a, l, (xf_act_input)in);
            for (int64_t j = 0; j < a->width[in]; j++)
                if (!isfinite(m[j]))
                    return xf_fail(err, "layer %lld %s input: channel %lld is not finite",
                                   (long long)l, xf_act_input_name((xf_act_input)in),
                                   (long long)j);
        }
    return 0;
}

void xf_act_absmax_free(xf_act_absmax *a)
{
    for (int in = 0; in < XF_ACT_IN_COUNT; in++)
        free(a->max[in]);
    memset(a, 0, sizeof *a);
}

int xf_act_absmax_measure(xf_act_absmax *a, const xf_model_weights *mw, const int32_t *tokens,
                          int64_t nsamples, int64_t T, xf_error *err)
{
    memset(a, 0, sizeof *a);
    const xf_model_config *c = &mw->cfg;
    if (nsamples < 1 || T < 1)
        return xf_fail(err, "activation maxima: %lld windows of %lld tokens", (long long)nsamples,
                       (long long)T);
    a->n_layers = c->n_layers;
    a->windows = nsamples;
    a->T = T;
    a->width[XF_ACT_IN_QKV] = c->hidden;
    a->width[XF_ACT_IN_O] = c->n_heads * c->head_dim;
    a->width[XF_ACT_IN_MLP] = c->hidden;
    a->width[XF_ACT_IN_DOWN] = c->intermediate;
    for (int in = 0; in < XF_ACT_IN_COUNT; in++) {
        a->max[in] = calloc((size_t)(a->n_layers * a->width[in]), sizeof *a->max[in]);
        if (!a->max[in]) {
            xf_act_absmax_free(a);
            return xf_fail(err, "activation maxima: out of memory");
        }
    }
    size_t win = (size_t)(T * c->hidden);
    if (win > SIZE_MAX / sizeof(float) / (size_t)nsamples) {
        xf_act_absmax_free(a);
        return xf_fail(err, "activation maxima: %lld windows of %lld tokens are too large",
                       (long long)nsamples, (long long)T);
    }
    float *h = malloc((size_t)nsamples * win * sizeof *h);
    xf_workspace ws;
    if (!h) {
        xf_act_absmax_free(a);
        return xf_fail(err, "activation maxima: out of memory for %lld x %lld x %lld hidden "
                            "states", (long long)nsamples, (long long)T, (long long)c->hidden);
    }
    if (xf_workspace_init(&ws, c, T, "activation maxima", err) != 0) {
        free(h);
        xf_act_absmax_free(a);
        return -1;
    }
    absmax_ctx ctx = {a};
    xf_forward_hooks hooks = {.user = &ctx, .on_linear_input = absmax_hook};
    int rc = 0;
    for (int64_t s = 0; s < nsamples && rc == 0; s++)
        rc = xf_forward_embed(&ws, mw, tokens + s * T, T, h + (size_t)s * win, err);
    /* layer-major: each layer densified once, all windows through it */
    for (int64_t l = 0; l < c->n_layers && rc == 0; l++) {
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, (int)l, err) != 0) {
            rc = -1;
            break;
        }
        for (int64_t s = 0; s < nsamples && rc == 0; s++)
            rc = xf_forward_layer(&ws, &dl, h + (size_t)s * win, T, &hooks, err) == 0 ? 0 : -1;
        xf_dense_layer_free(&dl);
    }
    xf_workspace_free(&ws);
    free(h);
    if (rc == 0)
        rc = check_finite(a, err);
    if (rc != 0)
        xf_act_absmax_free(a);
    return rc;
}
