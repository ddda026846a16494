/* The block-by-block calibration stream (block_stream.h). */
#include "model/block_stream.h"

#include <stdlib.h>
#include <string.h>

/* The widest input a resumable stream keeps per window: every input but
 * down's, which is recomputed from the MLP input (block_stream.h). */
static int64_t widest_kept_input(const xf_model_config *cfg)
{
    int64_t w = 0;
    for (int in = 0; in < XF_IN_COUNT; in++) {
        if (in == XF_IN_DOWN)
            continue;
        int64_t c = xf_lin_input_width(cfg, (xf_lin_input)in);
        w = c > w ? c : w;
    }
    return w;
}

/* Allocates h (and pending) for ns windows of T tokens; fails on overflow. */
static int alloc_states(xf_block_stream *bs, bool resumable, const char *what, xf_error *err)
{
    const size_t win = (size_t)(bs->T * bs->hidden), pwin = (size_t)(bs->T * bs->keep_in);
    const size_t ns = (size_t)bs->ns;
    if (win > SIZE_MAX / sizeof(float) / ns || pwin > SIZE_MAX / sizeof(float) / ns)
        return xf_fail(err, "%s: %lld calibration windows of %lld tokens are too large", what,
                       (long long)bs->ns, (long long)bs->T);
    bs->h = malloc(ns * win * sizeof *bs->h);
    if (resumable)
        bs->pending = malloc(ns * pwin * sizeof *bs->pending);
    if (!bs->h || (resumable && !bs->pending))
        return xf_fail(err, "%s: out of memory for %lld x %lld x %lld calibration activations%s",
                       what, (long long)bs->ns, (long long)bs->T, (long long)bs->hidden,
                       resumable ? " and their pending linear inputs" : "");
    return 0;
}

static int init_shape(xf_block_stream *bs, const xf_model_config *cfg, int64_t nsamples,
                      int64_t T, bool resumable, const char *what, xf_error *err)
{
    memset(bs, 0, sizeof *bs);
    if (nsamples < 1 || T < 1)
        return xf_fail(err, "%s: a calibration stream needs at least one window of one token "
                            "(%lld x %lld)",
                       what, (long long)nsamples, (long long)T);
    bs->ns = nsamples;
    bs->T = T;
    bs->hidden = cfg->hidden;
    bs->keep_in = widest_kept_input(cfg);
    bs->at = XF_AT_START;
    if (xf_workspace_init(&bs->ws, cfg, T, what, err) != 0)
        return -1;
    if (alloc_states(bs, resumable, what, err) != 0) {
        xf_block_stream_free(bs);
        return -1;
    }
    return 0;
}

int xf_block_stream_init(xf_block_stream *bs, const xf_model_weights *mw, const int32_t *tokens,
                         int64_t nsamples, int64_t T, bool resumable, const char *what,
                         xf_error *err)
{
    if (init_shape(bs, &mw->cfg, nsamples, T, resumable, what, err) != 0)
        return -1;
    for (int64_t s = 0; s < nsamples; s++)
        if (xf_forward_embed(&bs->ws, mw, tokens + s * T, T, bs->h + (size_t)(s * T * bs->hidden),
                             err) != 0) {
            xf_block_stream_free(bs);
            return -1;
        }
    return 0;
}

int xf_block_stream_copy(xf_block_stream *dst, const xf_block_stream *src, xf_error *err)
{
    if (init_shape(dst, &src->ws.cfg, src->ns, src->T, src->pending != NULL, src->ws.cfg.model_type,
                   err) != 0)
        return -1;
    const size_t n = (size_t)(src->ns * src->T);
    memcpy(dst->h, src->h, n * (size_t)src->hidden * sizeof *dst->h);
    if (src->pending && src->at != XF_AT_START)
        memcpy(dst->pending, src->pending, n * (size_t)src->keep_in * sizeof *dst->pending);
    dst->layer = src->layer;
    dst->at = src->at;
    return 0;
}

void xf_block_stream_free(xf_block_stream *bs)
{
    xf_workspace_free(&bs->ws);
    free(bs->h);
    free(bs->pending);
    memset(bs, 0, sizeof *bs);
}

static float *pending_slot(const xf_block_stream *bs, int64_t s)
{
    return bs->pending + (size_t)(s * bs->T * bs->keep_in);
}

static int check_run(const xf_block_stream *bs, const xf_dense_layer *dl, xf_layer_point to,
                     xf_error *err)
{
    const char *what = bs->ws.cfg.model_type;
    if (dl->layer != bs->layer)
        return xf_fail(err, "%s: calibration stream stands in block %d, not %d", what, bs->layer,
                       dl->layer);
    if (to <= bs->at || to > XF_AT_END)
        return xf_fail(err, "%s: block %d: calibration stream cannot run from point %d to %d",
                       what, bs->layer, (int)bs->at, (int)to);
    if (bs->at != XF_AT_START && !bs->pending)
        return xf_fail(err, "%s: block %d: this calibration stream does not resume inside a "
                            "block",
                       what, bs->layer);
    return 0;
}

/* The point whose input a resumable stream keeps while it stands at `at`:
 * at the down input, the MLP input it is computed from. */
static xf_layer_point kept_point(const xf_block_stream *bs, xf_layer_point at)
{
    return bs->pending && at == XF_AT_DOWN ? XF_AT_MLP : at;
}

/* One window from the kept point of `from` to the kept point of `to`, its
 * kept input put back into and taken out of the workspace around the
 * span: a resumable stream stopping at the down input stops at the MLP
 * input (nothing to run when it stands there already) and resumes from
 * it, recomputing the down input. */
static int run_window(xf_block_stream *bs, const xf_dense_layer *dl, int64_t s,
                      xf_layer_point from, xf_layer_point to, const xf_forward_hooks *hooks,
                      xf_error *err)
{
    from = kept_point(bs, from);
    to = kept_point(bs, to);
    if (from == to)
        return 0;
    const int64_t T = bs->T;
    int64_t cols;
    float *buf = xf_forward_pending_input(&bs->ws, from, &cols);
    if (buf)
        memcpy(buf, pending_slot(bs, s), (size_t)(T * cols) * sizeof *buf);
    float *h = bs->h + (size_t)(s * T * bs->hidden);
    int rc = xf_forward_layer_span(&bs->ws, dl, h, T, from, to, hooks, err);
    if (rc == XF_HOOK_STOP)
        return xf_fail(err, "%s: block %d: a hook stopped the calibration stream in window %lld",
                       bs->ws.cfg.model_type, bs->layer, (long long)s);
    if (rc != 0)
        return -1;
    buf = xf_forward_pending_input(&bs->ws, to, &cols);
    if (buf && bs->pending)
        memcpy(pending_slot(bs, s), buf, (size_t)(T * cols) * sizeof *buf);
    return 0;
}

int xf_block_stream_run(xf_block_stream *bs, const xf_dense_layer *dl, xf_layer_point to,
                        const xf_forward_hooks *hooks, xf_error *err)
{
    if (check_run(bs, dl, to, err) != 0)
        return -1;
    for (int64_t s = 0; s < bs->ns; s++)
        if (run_window(bs, dl, s, bs->at, to, hooks, err) != 0)
            return -1;
    if (to == XF_AT_END) {
        bs->layer++;
        bs->at = XF_AT_START;
    } else {
        bs->at = to;
    }
    return 0;
}

int xf_block_stream_input(xf_block_stream *bs, const xf_dense_layer *dl,
                          const xf_forward_hooks *hooks, int64_t s, const float **x,
                          int64_t *cols, xf_error *err)
{
    const char *what = bs->ws.cfg.model_type;
    *x = NULL;
    *cols = 0;
    if (!bs->pending)
        return xf_fail(err, "%s: block %d: this calibration stream keeps no pending inputs", what,
                       bs->layer);
    if (bs->at == XF_AT_START)
        return xf_fail(err, "%s: block %d: the calibration stream stands at no linear input",
                       what, bs->layer);
    if (dl->layer != bs->layer)
        return xf_fail(err, "%s: calibration stream stands in block %d, not %d", what, bs->layer,
                       dl->layer);
    if (s < 0 || s >= bs->ns)
        return xf_fail(err, "%s: no calibration window %lld of %lld", what, (long long)s,
                       (long long)bs->ns);
    if (bs->at != XF_AT_DOWN) {
        xf_forward_pending_input(&bs->ws, bs->at, cols);
        *x = pending_slot(bs, s);
        return 0;
    }
    /* the down input: the window's MLP input through the MLP up to down,
     * into the workspace (h is only read by spans that reach the end) */
    int64_t c;
    float *buf = xf_forward_pending_input(&bs->ws, XF_AT_MLP, &c);
    memcpy(buf, pending_slot(bs, s), (size_t)(bs->T * c) * sizeof *buf);
    float *h = bs->h + (size_t)(s * bs->T * bs->hidden);
    int rc = xf_forward_layer_span(&bs->ws, dl, h, bs->T, XF_AT_MLP, XF_AT_DOWN, hooks, err);
    if (rc == XF_HOOK_STOP)
        return xf_fail(err, "%s: block %d: a hook stopped the down input of window %lld", what,
                       bs->layer, (long long)s);
    if (rc != 0)
        return -1;
    *x = xf_forward_pending_input(&bs->ws, XF_AT_DOWN, cols);
    return 0;
}

const float *xf_block_stream_hidden(const xf_block_stream *bs, int64_t s)
{
    return s >= 0 && s < bs->ns ? bs->h + (size_t)(s * bs->T * bs->hidden) : NULL;
}
