#include "quant/transform/input_absmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/block_stream.h"

typedef struct absmax_ctx {
    xf_act_absmax *a;
} absmax_ctx;

static int absmax_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                       int64_t cols, xf_error *err)
{
    xf_act_absmax *a = ((absmax_ctx *)user)->a;
    xf_lin_input in = xf_lin_input_of_role(role);
    if (in >= XF_IN_COUNT || cols != a->width[in])
        return xf_fail(err, "layer %d %s input: %lld channels, expected %lld", layer,
                       xf_lin_input_name(in), (long long)cols, (long long)a->width[in]);
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
    for (int in = 0; in < XF_IN_COUNT; in++)
        for (int64_t l = 0; l < a->n_layers; l++) {
            const float *m = xf_act_absmax_row(a, l, (xf_lin_input)in);
            for (int64_t j = 0; j < a->width[in]; j++)
                if (!isfinite(m[j]))
                    return xf_fail(err, "layer %lld %s input: channel %lld is not finite",
                                   (long long)l, xf_lin_input_name((xf_lin_input)in),
                                   (long long)j);
        }
    return 0;
}

void xf_act_absmax_free(xf_act_absmax *a)
{
    for (int in = 0; in < XF_IN_COUNT; in++)
        free(a->max[in]);
    memset(a, 0, sizeof *a);
}

/* Every window through every block (model/block_stream.h), the hook
 * taking the maxima; each block densified once. */
static int run_stream(xf_act_absmax *a, const xf_model_weights *mw, const int32_t *tokens,
                      int64_t nsamples, int64_t T, xf_error *err)
{
    xf_block_stream bs;
    if (xf_block_stream_init(&bs, mw, tokens, nsamples, T, XF_STREAM_KEEP_NONE, NULL,
                             "activation maxima", err) != 0)
        return -1;
    absmax_ctx ctx = {a};
    const xf_forward_hooks hooks = {.user = &ctx, .on_linear_input = absmax_hook};
    int rc = 0;
    for (int l = 0; l < mw->cfg.n_layers && rc == 0; l++) {
        xf_dense_layer dl;
        if (xf_dense_layer_init(&dl, mw, l, err) != 0) {
            rc = -1;
            break;
        }
        rc = xf_block_stream_run(&bs, &dl, XF_AT_END, &hooks, err);
        xf_dense_layer_free(&dl);
    }
    xf_block_stream_free(&bs);
    return rc;
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
    for (int in = 0; in < XF_IN_COUNT; in++) {
        a->width[in] = xf_lin_input_width(c, (xf_lin_input)in);
        a->max[in] = calloc((size_t)(a->n_layers * a->width[in]), sizeof *a->max[in]);
        if (!a->max[in]) {
            xf_act_absmax_free(a);
            return xf_fail(err, "activation maxima: out of memory");
        }
    }
    int rc = run_stream(a, mw, tokens, nsamples, T, err);
    if (rc == 0)
        rc = check_finite(a, err);
    if (rc != 0)
        xf_act_absmax_free(a);
    return rc;
}
