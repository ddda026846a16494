/* The block-by-block calibration stream (block_stream.h). */
#include "model/block_stream.h"

#include <stdlib.h>
#include <string.h>

int64_t xf_block_stream_kept_width(const xf_model_config *cfg, xf_stream_keep keep)
{
    int64_t w = 0;
    for (int in = 0; in < XF_IN_COUNT && keep != XF_STREAM_KEEP_NONE; in++) {
        if (in == XF_IN_DOWN && keep != XF_STREAM_KEEP_ALL)
            continue; /* recomputed from the MLP input (block_stream.h) */
        int64_t c = xf_lin_input_width(cfg, (xf_lin_input)in);
        w = c > w ? c : w;
    }
    return w;
}

/* Allocates h (and pending) for ns windows of T tokens, in memory or in a
 * spill file (core/state_buffer.h); fails on overflow. */
static int alloc_states(xf_block_stream *bs, bool resumable, const char *spill_dir,
                        const char *what, xf_error *err)
{
    const size_t win = (size_t)(bs->T * bs->hidden), pwin = (size_t)(bs->T * bs->keep_in);
    const size_t ns = (size_t)bs->ns;
    if (win > SIZE_MAX / sizeof(float) / ns || pwin > SIZE_MAX / sizeof(float) / ns)
        return xf_fail(err, "%s: %lld calibration windows of %lld tokens are too large", what,
                       (long long)bs->ns, (long long)bs->T);
    if (xf_state_buffer_init(&bs->h_buf, ns * win, spill_dir, what, err) != 0)
        return -1;
    bs->h = bs->h_buf.data;
    if (resumable) {
        if (xf_state_buffer_init(&bs->pending_buf, ns * pwin, spill_dir, what, err) != 0)
            return -1;
        bs->pending = bs->pending_buf.data;
    }
    return 0;
}

static int init_shape(xf_block_stream *bs, const xf_model_config *cfg, int64_t nsamples,
                      int64_t T, xf_stream_keep keep, const char *spill_dir, const char *what,
                      xf_error *err)
{
    memset(bs, 0, sizeof *bs);
    if (nsamples < 1 || T < 1)
        return xf_fail(err, "%s: a calibration stream needs at least one window of one token "
                            "(%lld x %lld)",
                       what, (long long)nsamples, (long long)T);
    bs->ns = nsamples;
    bs->T = T;
    bs->hidden = cfg->hidden;
    bs->keep_down = keep == XF_STREAM_KEEP_ALL;
    bs->keep_in = xf_block_stream_kept_width(cfg, keep == XF_STREAM_KEEP_NONE
                                                       ? XF_STREAM_KEEP_NARROW
                                                       : keep);
    bs->at = XF_AT_START;
    bs->touched = -1;
    if (spill_dir && !(bs->spill_dir = strdup(spill_dir)))
        return xf_fail(err, "%s: out of memory", what);
    if (xf_workspace_init(&bs->ws, cfg, T, what, err) != 0) {
        xf_block_stream_free(bs);
        return -1;
    }
    if (alloc_states(bs, keep != XF_STREAM_KEEP_NONE, spill_dir, what, err) != 0) {
        xf_block_stream_free(bs);
        return -1;
    }
    return 0;
}

int xf_block_stream_init(xf_block_stream *bs, const xf_model_weights *mw, const int32_t *tokens,
                         int64_t nsamples, int64_t T, xf_stream_keep keep,
                         const char *spill_dir, const char *what, xf_error *err)
{
    if (init_shape(bs, &mw->cfg, nsamples, T, keep, spill_dir, what, err) != 0)
        return -1;
    for (int64_t s = 0; s < nsamples; s++) {
        if (xf_forward_embed(&bs->ws, mw, tokens + s * T, T, bs->h + (size_t)(s * T * bs->hidden),
                             err) != 0) {
            xf_block_stream_free(bs);
            return -1;
        }
        xf_state_buffer_release(&bs->h_buf, (size_t)(s * T * bs->hidden), (size_t)(T * bs->hidden));
    }
    return 0;
}

int xf_block_stream_copy(xf_block_stream *dst, const xf_block_stream *src, xf_error *err)
{
    const xf_stream_keep keep = !src->pending ? XF_STREAM_KEEP_NONE
                                : src->keep_down ? XF_STREAM_KEEP_ALL
                                                 : XF_STREAM_KEEP_NARROW;
    if (init_shape(dst, &src->ws.cfg, src->ns, src->T, keep,
                   src->h_buf.spilled ? src->spill_dir : NULL, src->ws.cfg.model_type, err) != 0)
        return -1;
    const size_t win = (size_t)(src->T * src->hidden), pwin = (size_t)(src->T * src->keep_in);
    const bool with_pending = src->pending && src->at != XF_AT_START;
    for (size_t s = 0; s < (size_t)src->ns; s++) { /* window by window: spills stay bounded */
        memcpy(dst->h + s * win, src->h + s * win, win * sizeof *dst->h);
        xf_state_buffer_release(&dst->h_buf, s * win, win);
        xf_state_buffer_release(&src->h_buf, s * win, win);
        if (with_pending) {
            memcpy(dst->pending + s * pwin, src->pending + s * pwin, pwin * sizeof *dst->pending);
            xf_state_buffer_release(&dst->pending_buf, s * pwin, pwin);
            xf_state_buffer_release(&src->pending_buf, s * pwin, pwin);
        }
    }
    dst->layer = src->layer;
    dst->at = src->at;
    return 0;
}

void xf_block_stream_free(xf_block_stream *bs)
{
    xf_workspace_free(&bs->ws);
    xf_state_buffer_free(&bs->h_buf);
    xf_state_buffer_free(&bs->pending_buf);
    free(bs->spill_dir);
    memset(bs, 0, sizeof *bs);
}

/* A spilled stream is done with window s for now: its pages leave the
 * resident set (core/state_buffer.h). */
static void release_window(const xf_block_stream *bs, int64_t s)
{
    const size_t win = (size_t)(bs->T * bs->hidden), pwin = (size_t)(bs->T * bs->keep_in);
    xf_state_buffer_release(&bs->h_buf, (size_t)s * win, win);
    xf_state_buffer_release(&bs->pending_buf, (size_t)s * pwin, pwin);
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
 * at the down input, the MLP input it is computed from (unless the stream
 * keeps the down input itself). */
static xf_layer_point kept_point(const xf_block_stream *bs, xf_layer_point at)
{
    return bs->pending && !bs->keep_down && at == XF_AT_DOWN ? XF_AT_MLP : at;
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
    release_window(bs, s);
    return 0;
}

int xf_block_stream_run(xf_block_stream *bs, const xf_dense_layer *dl, xf_layer_point to,
                        const xf_forward_hooks *hooks, xf_error *err)
{
    if (check_run(bs, dl, to, err) != 0)
        return -1;
    if (bs->touched >= 0)
        release_window(bs, bs->touched);
    bs->touched = -1;
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
    if (bs->touched >= 0 && bs->touched != s) /* the previous *x is no longer valid */
        release_window(bs, bs->touched);
    bs->touched = s;
    if (bs->at != XF_AT_DOWN || bs->keep_down) {
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

int xf_block_stream_peek(xf_block_stream *bs, const xf_dense_layer *dl, int64_t s,
                         xf_layer_point to, const xf_forward_hooks *hooks, float *scratch,
                         xf_error *err)
{
    const char *what = bs->ws.cfg.model_type;
    if (dl->layer != bs->layer)
        return xf_fail(err, "%s: calibration stream stands in block %d, not %d", what, bs->layer,
                       dl->layer);
    if (bs->at != XF_AT_START || to <= XF_AT_START || to > XF_AT_END)
        return xf_fail(err, "%s: block %d: a look ahead runs from the block start", what,
                       bs->layer);
    if (s < 0 || s >= bs->ns)
        return xf_fail(err, "%s: no calibration window %lld of %lld", what, (long long)s,
                       (long long)bs->ns);
    const size_t win = (size_t)(bs->T * bs->hidden);
    memcpy(scratch, bs->h + (size_t)s * win, win * sizeof *scratch);
    release_window(bs, s);
    int rc = xf_forward_layer_span(&bs->ws, dl, scratch, bs->T, XF_AT_START, to, hooks, err);
    if (rc == XF_HOOK_STOP)
        return xf_fail(err, "%s: block %d: a hook stopped the look ahead of window %lld", what,
                       bs->layer, (long long)s);
    return rc;
}

const float *xf_block_stream_hidden(const xf_block_stream *bs, int64_t s)
{
    return s >= 0 && s < bs->ns ? bs->h + (size_t)(s * bs->T * bs->hidden) : NULL;
}

int xf_block_stream_restore(xf_block_stream *bs, int layer, const float *h, xf_error *err)
{
    if (layer < 0 || layer > bs->ws.cfg.n_layers)
        return xf_fail(err, "%s: no block %d to restore a calibration stream at",
                       bs->ws.cfg.model_type, layer);
    const size_t win = (size_t)(bs->T * bs->hidden);
    for (size_t s = 0; s < (size_t)bs->ns; s++) {
        memcpy(bs->h + s * win, h + s * win, win * sizeof *bs->h);
        xf_state_buffer_release(&bs->h_buf, s * win, win);
    }
    bs->layer = layer;
    bs->at = XF_AT_START;
    bs->touched = -1;
    return 0;
}
